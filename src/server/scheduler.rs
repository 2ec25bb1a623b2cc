//! The continuous-batching scheduler. It owns the [`Engine`] on one dedicated thread; HTTP
//! handlers send it [`Request`]s over a channel and read [`Event`]s from a per-request channel.
//!
//! Every step runs the decode token of every running sequence (oldest first) plus prefill chunks of
//! admitted sequences (oldest first) up to the engine's token budget (`max_batch_tokens`), so a long
//! prompt never stalls running streams. KV pages are allocated per sequence as it grows. When a
//! running sequence needs a page and none is free, the newest sequence not yet in the step is
//! preempted: its pages are freed and it goes back to the queue with its prompt and generated
//! tokens, to be recomputed when pages are free again (its sampler, text decoder and stop matcher
//! are kept, so the client sees one uninterrupted stream). A sequence whose client has gone away
//! (its event receiver dropped) is freed before the next step. Prompts start from the longest cached
//! prefix ([`Engine::open_with_prefix`]).
//!
//! Sequences are computed row by row independently of what else is in the step, so batching,
//! chunking and preemption do not change any sequence's tokens.

use super::metrics::{Metrics, SchedulerGauges};
use crate::error::{Error, Result};
use crate::model::engine::{Engine, StepInput, Want};
use crate::model::kv::SeqId;
use crate::model::sampler::{logprobs, Sampler, SamplingParams, StopMatcher};
use crate::model::tokenizer::{StreamDecoder, Tokenizer};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// One generation request, with its prompt already tokenized and its parameters validated.
#[derive(Debug)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    /// Log-probabilities: `None` = off; `Some(k)` = the chosen token's and the `k` most likely.
    pub logprobs: Option<usize>,
    /// Keep generating past end-of-generation tokens (load generators).
    pub ignore_eos: bool,
    /// Where the tokens go; dropping the receiver cancels the request.
    pub events: UnboundedSender<Event>,
    /// When the HTTP request arrived (time to first token is measured from here).
    pub arrived: Instant,
}

/// Log-probabilities of one generated token.
#[derive(Debug, Clone)]
pub struct TokenLogprobs {
    pub logprob: f32,
    /// The most likely tokens: (text of the token, log-probability), most likely first.
    pub top: Vec<(String, f32)>,
}

/// One generated token.
#[derive(Debug, Clone)]
pub struct TokenOut {
    pub id: u32,
    /// The token's own text (as decoded alone, special tokens included).
    pub piece: String,
    pub logprobs: Option<TokenLogprobs>,
}

/// Why a request finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-generation token or a stop string.
    Stop,
    /// max_tokens, or the context is full.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// The last event of a successful request.
#[derive(Debug, Clone)]
pub struct Finished {
    pub reason: Finish,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV came from cached prefix pages at admission.
    pub cached_tokens: usize,
    /// Times the sequence was preempted and recomputed.
    pub preemptions: u32,
}

/// What a request's receiver gets.
#[derive(Debug, Clone)]
pub enum Event {
    /// Text that became final (may be empty: held back by a stop string or an incomplete UTF-8
    /// character) and the token that produced it (`None` for text released at the end).
    Delta {
        text: String,
        token: Option<TokenOut>,
    },
    /// Generation ended; nothing follows.
    Done(Finished),
    /// The request failed (an engine error, or the server shutting down); nothing follows.
    Error { message: String, shutdown: bool },
}

enum Command {
    Submit(Box<Request>),
    CancelAll(String),
    Shutdown,
}

/// The sending side of the scheduler; cheap to clone.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: Sender<Command>,
}

impl SchedulerHandle {
    /// Queue a request; false when the scheduler has stopped.
    pub fn submit(&self, r: Request) -> bool {
        self.tx.send(Command::Submit(Box::new(r))).is_ok()
    }
    /// End every queued and running request with an error event (shutdown grace expired).
    pub fn cancel_all(&self, why: &str) {
        let _ = self.tx.send(Command::CancelAll(why.to_string()));
    }
    /// Cancel what is left and stop the thread.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}

/// Start the scheduler thread; it owns `engine` until [`SchedulerHandle::shutdown`] (or until every
/// handle is dropped).
pub fn spawn(
    engine: Engine,
    tokenizer: Arc<Tokenizer>,
    metrics: Arc<Metrics>,
) -> Result<(SchedulerHandle, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let join = std::thread::Builder::new()
        .name("rocmforge-scheduler".into())
        .spawn(move || {
            let mut s = Scheduler {
                engine,
                tok: &tokenizer,
                metrics,
                waiting: VecDeque::new(),
                active: Vec::new(),
                next_key: 0,
            };
            s.run(rx);
        })
        .map_err(|e| Error::op("server", format!("starting the scheduler thread: {e}")))?;
    Ok((SchedulerHandle { tx }, join))
}

/// A request being served.
struct Seq<'t> {
    /// Arrival order: smaller is older.
    key: u64,
    req: Request,
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
    /// The engine sequence while it holds pages.
    eid: Option<SeqId>,
    /// Tokens of `tokens` whose KV is in the cache.
    computed: usize,
    /// Tokens this step feeds.
    planned: usize,
    sampler: Sampler,
    decoder: StreamDecoder<'t>,
    stops: StopMatcher,
    /// Greedy without penalties or log-probabilities: the device argmax is enough.
    argmax_ok: bool,
    cached_tokens: Option<usize>,
    preemptions: u32,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
}

impl Seq<'_> {
    fn remaining(&self) -> usize {
        self.tokens.len() - self.computed
    }
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
    fn gone(&self) -> bool {
        self.req.events.is_closed()
    }
}

struct Scheduler<'t> {
    engine: Engine,
    tok: &'t Tokenizer,
    metrics: Arc<Metrics>,
    /// Requests without pages, oldest first (preempted ones go back in arrival order).
    waiting: VecDeque<Seq<'t>>,
    /// Requests holding pages, oldest first.
    active: Vec<Seq<'t>>,
    next_key: u64,
}

impl<'t> Scheduler<'t> {
    fn run(&mut self, rx: Receiver<Command>) {
        'outer: loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                self.publish();
                match rx.recv() {
                    Ok(c) => {
                        if !self.command(c) {
                            break 'outer;
                        }
                    }
                    Err(_) => break 'outer,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(c) => {
                        if !self.command(c) {
                            break 'outer;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break 'outer,
                }
            }
            self.drop_cancelled();
            self.admit();
            self.step();
            self.publish();
        }
        self.cancel_all("the server is shutting down", true);
        self.publish();
    }

    /// Handle one command; false = stop.
    fn command(&mut self, c: Command) -> bool {
        match c {
            Command::Submit(r) => {
                self.submit(*r);
                true
            }
            Command::CancelAll(why) => {
                self.cancel_all(&why, true);
                true
            }
            Command::Shutdown => false,
        }
    }

    fn submit(&mut self, req: Request) {
        let sampler = match Sampler::new(req.params.clone()) {
            Ok(s) => s,
            Err(e) => {
                let _ = req.events.send(Event::Error {
                    message: e.to_string(),
                    shutdown: false,
                });
                self.metrics.finished("error");
                return;
            }
        };
        let p = &req.params;
        let argmax_ok = p.is_greedy()
            && p.repetition_penalty == 1.0
            && p.presence_penalty == 0.0
            && p.frequency_penalty == 0.0
            && req.logprobs.is_none();
        let stops = StopMatcher::new(&p.stop);
        self.metrics.prompt_tokens(req.prompt.len());
        let key = self.next_key;
        self.next_key += 1;
        self.waiting.push_back(Seq {
            key,
            tokens: req.prompt.clone(),
            prompt_len: req.prompt.len(),
            req,
            eid: None,
            computed: 0,
            planned: 0,
            sampler,
            decoder: StreamDecoder::new(self.tok, true),
            stops,
            argmax_ok,
            cached_tokens: None,
            preemptions: 0,
            first_token: None,
            last_token: None,
        });
    }

    fn release(&mut self, s: &mut Seq<'t>) {
        if let Some(id) = s.eid.take() {
            self.engine.free(id);
        }
    }

    fn cancel_all(&mut self, why: &str, shutdown: bool) {
        let mut all: Vec<Seq<'t>> = self.active.drain(..).collect();
        all.extend(self.waiting.drain(..));
        for mut s in all {
            self.release(&mut s);
            let _ = s.req.events.send(Event::Error {
                message: why.to_string(),
                shutdown,
            });
            self.metrics.finished("shutdown");
        }
    }

    /// Free the sequences whose client has gone away.
    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].gone() {
                let mut s = self.active.remove(i);
                self.release(&mut s);
                self.metrics.finished("cancelled");
            } else {
                i += 1;
            }
        }
        let before = self.waiting.len();
        self.waiting.retain(|s| !s.gone());
        for _ in self.waiting.len()..before {
            self.metrics.finished("cancelled");
        }
    }

    fn pages_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.engine.limits.page_size)
    }

    fn pages_needed(&self, s: &Seq, extra: usize) -> usize {
        match s.eid {
            Some(id) => self.engine.pages_needed(id, extra),
            None => self.pages_for(s.computed + extra),
        }
    }

    /// Move queued requests to the running set, oldest first, while a sequence slot is free and
    /// the free pages cover what the running sequences still need plus the newcomer's prompt.
    fn admit(&mut self) {
        while self.active.len() < self.engine.limits.max_seqs {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let need = self.pages_for(front.tokens.len() + 1);
            if !self.active.is_empty() {
                let committed: usize = self
                    .active
                    .iter()
                    .map(|s| self.pages_needed(s, s.remaining() + 1))
                    .sum();
                if self.engine.free_pages() < committed + need {
                    break;
                }
            }
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            let (id, reused) = self.engine.open_with_prefix(&s.tokens);
            s.eid = Some(id);
            s.computed = reused;
            if s.cached_tokens.is_none() {
                s.cached_tokens = Some(reused);
            }
            let at = self.active.partition_point(|a| a.key < s.key);
            self.active.insert(at, s);
        }
    }

    /// Free a running sequence's pages and queue it again (in arrival order) for recomputation.
    fn preempt(&mut self, i: usize) {
        let mut s = self.active.remove(i);
        self.release(&mut s);
        s.computed = 0;
        s.planned = 0;
        s.preemptions += 1;
        self.metrics.preempted();
        let at = self
            .waiting
            .iter()
            .position(|w| w.key > s.key)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, s);
    }

    /// Choose what each running sequence feeds this step; returns whether anything runs.
    fn plan(&mut self) -> bool {
        let limits = self.engine.limits;
        loop {
            for s in self.active.iter_mut() {
                s.planned = 0;
            }
            let mut budget = limits.max_batch_tokens;
            let mut planned_pages = 0usize;
            // decodes, oldest first; make room by preempting the newest unplanned sequences
            let mut i = 0;
            while i < self.active.len() && budget > 0 {
                if self.active[i].remaining() != 1 {
                    i += 1;
                    continue;
                }
                let need = self.pages_needed(&self.active[i], 1);
                let mut preempted_self = false;
                while need > self.engine.free_pages().saturating_sub(planned_pages) {
                    // i itself is unplanned, so there is always a candidate at or after i
                    let Some(j) = (0..self.active.len())
                        .rev()
                        .find(|&j| self.active[j].planned == 0)
                    else {
                        break;
                    };
                    self.preempt(j);
                    if j == i {
                        preempted_self = true;
                        break;
                    }
                }
                if preempted_self {
                    continue;
                }
                if need > self.engine.free_pages().saturating_sub(planned_pages) {
                    break;
                }
                self.active[i].planned = 1;
                planned_pages += need;
                budget -= 1;
                i += 1;
            }
            // prefill chunks, oldest first, as far as the budget and the free pages go
            let ps = limits.page_size;
            for i in 0..self.active.len() {
                if budget == 0 {
                    break;
                }
                let s = &self.active[i];
                if s.planned > 0 || s.remaining() <= 1 {
                    continue;
                }
                let avail = self.engine.free_pages().saturating_sub(planned_pages);
                let cap = (s.computed.div_ceil(ps) + avail) * ps - s.computed;
                let n = s.remaining().min(budget).min(cap);
                if n == 0 {
                    continue;
                }
                let need = self.pages_needed(s, n);
                if need > avail {
                    continue;
                }
                self.active[i].planned = n;
                planned_pages += need;
                budget -= n;
            }
            if self.active.iter().any(|s| s.planned > 0) {
                return true;
            }
            match self.active.len() {
                0 => return false,
                1 => {
                    // Alone and still no room: it cannot fit (the HTTP layer refuses such requests).
                    let mut s = self.active.remove(0);
                    self.release(&mut s);
                    let _ = s.req.events.send(Event::Error {
                        message: format!(
                            "the sequence of {} tokens does not fit in the KV cache ({} pages of {} tokens)",
                            s.tokens.len(),
                            limits.num_pages,
                            limits.page_size
                        ),
                        shutdown: false,
                    });
                    self.metrics.finished("error");
                    return false;
                }
                n => self.preempt(n - 1),
            }
        }
    }

    fn step(&mut self) {
        if !self.plan() {
            return;
        }
        let planned: Vec<usize> = (0..self.active.len())
            .filter(|&i| self.active[i].planned > 0)
            .collect();
        let wants_last = |s: &Seq| s.computed + s.planned == s.tokens.len();
        let argmax_only = planned
            .iter()
            .map(|&i| &self.active[i])
            .filter(|s| wants_last(s))
            .all(|s| s.argmax_ok);
        let result = {
            let mut inputs = Vec::with_capacity(planned.len());
            for &i in &planned {
                let s = &self.active[i];
                // every admitted sequence holds an engine sequence
                let seq = s.eid.unwrap_or(SeqId::MAX);
                inputs.push(StepInput {
                    seq,
                    tokens: &s.tokens[s.computed..s.computed + s.planned],
                    want: if wants_last(s) {
                        Want::Last
                    } else {
                        Want::Nothing
                    },
                });
            }
            self.engine.step(&inputs, argmax_only)
        };
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                // Fail the sequences of this step; the others keep going.
                tracing::error!("engine step failed: {e}");
                for &i in planned.iter().rev() {
                    let mut s = self.active.remove(i);
                    self.release(&mut s);
                    let _ = s.req.events.send(Event::Error {
                        message: format!("generation failed: {e}"),
                        shutdown: false,
                    });
                    self.metrics.finished("error");
                }
                return;
            }
        };
        let mut finished: Vec<(usize, std::result::Result<Finish, String>)> = Vec::new();
        for (k, &i) in planned.iter().enumerate() {
            let tok = self.tok;
            let s = &mut self.active[i];
            let last = wants_last(s);
            s.computed += s.planned;
            s.planned = 0;
            if !last {
                continue;
            }
            let (next, lp) = match out.last_logits(k) {
                Some(row) if !s.argmax_ok => {
                    let mut r = row.to_vec();
                    let t = s.sampler.sample(&mut r, &s.tokens);
                    let lp = s.req.logprobs.map(|n| {
                        let (l, top) = logprobs(row, t, n);
                        TokenLogprobs {
                            logprob: l,
                            top: top.into_iter().map(|(id, l)| (piece(tok, id), l)).collect(),
                        }
                    });
                    (t, lp)
                }
                _ => match out.last_argmax(k) {
                    Some(t) => (t, None),
                    None => {
                        finished.push((i, Err("the step returned no output".into())));
                        continue;
                    }
                },
            };
            if let Some(r) = accept(s, tok, &self.metrics, self.engine.limits.ctx_size, next, lp) {
                finished.push((i, r));
            }
        }
        for (i, r) in finished.into_iter().rev() {
            let mut s = self.active.remove(i);
            self.release(&mut s);
            match r {
                Ok(reason) => {
                    // text held back by the decoder or the stop matcher
                    let (tail, _) = s.stops.push(&s.decoder.finish());
                    let rest = tail + &s.stops.flush();
                    if !rest.is_empty() {
                        let _ = s.req.events.send(Event::Delta {
                            text: rest,
                            token: None,
                        });
                    }
                    let _ = s.req.events.send(Event::Done(Finished {
                        reason,
                        prompt_tokens: s.prompt_len,
                        completion_tokens: s.generated(),
                        cached_tokens: s.cached_tokens.unwrap_or(0),
                        preemptions: s.preemptions,
                    }));
                    self.metrics.finished(reason.as_str());
                    let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1e3;
                    let now = Instant::now();
                    tracing::info!(
                        "request done ({}): {} prompt tokens ({} cached) + {} generated; first token after {:.1} ms, {:.1} ms in all, {} preemptions",
                        reason.as_str(),
                        s.prompt_len,
                        s.cached_tokens.unwrap_or(0),
                        s.generated(),
                        s.first_token.map_or(0.0, |t| ms(s.req.arrived, t)),
                        ms(s.req.arrived, now),
                        s.preemptions
                    );
                }
                Err(message) => {
                    let _ = s.req.events.send(Event::Error {
                        message,
                        shutdown: false,
                    });
                    self.metrics.finished("error");
                }
            }
        }
    }

    fn publish(&self) {
        self.metrics.publish(SchedulerGauges {
            running: self.active.len(),
            waiting: self.waiting.len(),
            kv: self.engine.kv_stats(),
            steps: self.engine.steps,
            step_tokens: self.engine.tokens_processed,
        });
    }
}

/// A token's own text, special tokens included.
fn piece(tok: &Tokenizer, id: u32) -> String {
    tok.decode(&[id], false).unwrap_or_default()
}

/// Take a sampled token into a sequence: send its text, record timings; the finish reason when
/// generation ends here.
fn accept(
    s: &mut Seq,
    tok: &Tokenizer,
    metrics: &Metrics,
    ctx: usize,
    next: u32,
    lp: Option<TokenLogprobs>,
) -> Option<std::result::Result<Finish, String>> {
    let now = Instant::now();
    let (ttft, itl) = match s.last_token {
        None => (Some(now.duration_since(s.req.arrived)), None),
        Some(t) => (None, Some(now.duration_since(t))),
    };
    s.last_token = Some(now);
    s.first_token.get_or_insert(now);
    if !s.req.ignore_eos && tok.is_eog(next) {
        return Some(Ok(Finish::Stop));
    }
    metrics.token(ttft, itl);
    s.tokens.push(next);
    let text = match s.decoder.push(next) {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("decoding token {next}: {e}"))),
    };
    let (emit, hit) = s.stops.push(&text);
    let token = TokenOut {
        id: next,
        piece: if lp.is_some() {
            piece(tok, next)
        } else {
            String::new()
        },
        logprobs: lp,
    };
    let _ = s.req.events.send(Event::Delta {
        text: emit,
        token: Some(token),
    });
    if hit {
        return Some(Ok(Finish::Stop));
    }
    if s.generated() >= s.req.params.max_tokens || s.tokens.len() >= ctx {
        return Some(Ok(Finish::Length));
    }
    None
}
