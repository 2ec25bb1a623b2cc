//! The engine: a model's forward pass on one backend plus its sequences and KV pages. This is the
//! library API the CLI and the server drive: open a sequence, run steps of ragged batches (prefill
//! chunks and decode tokens of many sequences at once), read logits or greedy tokens, free the
//! sequence.

use super::batch::ForwardBatch;
use super::config::ModelConfig;
use super::kv::{KvPages, KvStats, SeqId, SeqPages};
use super::{Backend, MemoryReport};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Which outputs a step input wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// No output (a prefill chunk that is not the prompt's last).
    Nothing,
    /// The output of the input's last token (what sampling needs).
    Last,
    /// The output of every token (teacher forcing, scoring).
    All,
}

/// New tokens for one sequence in a step.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    pub seq: SeqId,
    pub tokens: &'a [u32],
    pub want: Want,
}

/// The outputs of a step: for input i, rows `rows[i]` of `logits` (each `vocab` long) and
/// `argmax`.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    pub vocab: usize,
    pub rows: Vec<std::ops::Range<usize>>,
    /// Empty when the step asked for argmax only.
    pub logits: Vec<f32>,
    pub argmax: Vec<u32>,
}

impl StepOutput {
    /// Logits of input `i`'s last wanted row.
    pub fn last_logits(&self, i: usize) -> Option<&[f32]> {
        let r = self.rows.get(i)?;
        if r.is_empty() || self.logits.is_empty() {
            return None;
        }
        Some(&self.logits[(r.end - 1) * self.vocab..r.end * self.vocab])
    }
    /// All wanted logits rows of input `i`, concatenated.
    pub fn logits_of(&self, i: usize) -> Option<&[f32]> {
        let r = self.rows.get(i)?;
        if self.logits.is_empty() {
            return None;
        }
        Some(&self.logits[r.start * self.vocab..r.end * self.vocab])
    }
    /// Greedy token of input `i`'s last wanted row.
    pub fn last_argmax(&self, i: usize) -> Option<u32> {
        let r = self.rows.get(i)?;
        if r.is_empty() {
            return None;
        }
        self.argmax.get(r.end - 1).copied()
    }
}

/// Limits fixed at load.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EngineLimits {
    /// Tokens per sequence at most (prompt + generated).
    pub ctx_size: usize,
    pub page_size: usize,
    pub num_pages: usize,
    /// Tokens in one step at most (prefill chunks are cut to this).
    pub max_batch_tokens: usize,
    /// Sequences in one step at most.
    pub max_seqs: usize,
}

/// A model on a backend, with its sequences.
pub struct Engine {
    pub config: ModelConfig,
    pub limits: EngineLimits,
    backend: Box<dyn Backend>,
    kv: KvPages,
    seqs: HashMap<SeqId, SeqPages>,
    next: SeqId,
    /// Forward steps run and tokens processed (for reports and /metrics).
    pub steps: u64,
    pub tokens_processed: u64,
}

impl Engine {
    pub fn new(
        config: ModelConfig,
        limits: EngineLimits,
        backend: Box<dyn Backend>,
    ) -> Result<Engine> {
        Ok(Engine {
            kv: KvPages::new(limits.num_pages, limits.page_size)?,
            config,
            limits,
            backend,
            seqs: HashMap::new(),
            next: 1,
            steps: 0,
            tokens_processed: 0,
        })
    }

    pub fn backend_name(&self) -> String {
        self.backend.name()
    }
    pub fn memory(&self) -> MemoryReport {
        self.backend.memory()
    }
    pub fn counters(&self) -> super::BackendCounters {
        self.backend.counters()
    }
    pub fn kv_stats(&self) -> KvStats {
        self.kv.stats()
    }
    pub fn backend_mut(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// A new, empty sequence.
    pub fn open(&mut self) -> SeqId {
        let id = self.next;
        self.next += 1;
        self.seqs.insert(id, SeqPages::default());
        id
    }

    /// A new sequence that starts with the cached pages of `prompt`'s longest cached prefix; returns
    /// it and the number of prompt tokens already in the cache (feed only the rest).
    pub fn open_with_prefix(&mut self, prompt: &[u32]) -> (SeqId, usize) {
        let id = self.next;
        self.next += 1;
        let s = self.kv.open_with_prefix(prompt);
        let n = s.len();
        self.seqs.insert(id, s);
        (id, n)
    }

    /// Free a sequence and its pages (unknown ids are ignored).
    pub fn free(&mut self, id: SeqId) {
        if let Some(mut s) = self.seqs.remove(&id) {
            self.kv.release(&mut s);
        }
    }

    /// Tokens of a sequence that are in the cache.
    pub fn seq_len(&self, id: SeqId) -> Option<usize> {
        self.seqs.get(&id).map(|s| s.len())
    }
    pub fn seq_tokens(&self, id: SeqId) -> Option<&[u32]> {
        self.seqs.get(&id).map(|s| s.tokens.as_slice())
    }
    pub fn live_sequences(&self) -> usize {
        self.seqs.len()
    }

    /// Pages a sequence would need to grow by `extra` tokens.
    pub fn pages_needed(&self, id: SeqId, extra: usize) -> usize {
        let Some(s) = self.seqs.get(&id) else {
            return 0;
        };
        self.kv
            .pages_for(s.len() + extra)
            .saturating_sub(s.pages.len())
    }
    pub fn free_pages(&self) -> usize {
        self.kv.free_pages()
    }

    /// Run one forward step. Every input's tokens are appended to its sequence. `argmax_only`:
    /// return greedy tokens without copying logits to the host.
    pub fn step(&mut self, inputs: &[StepInput], argmax_only: bool) -> Result<StepOutput> {
        if inputs.is_empty() {
            return Ok(StepOutput {
                vocab: self.config.vocab_size,
                ..Default::default()
            });
        }
        let total: usize = inputs.iter().map(|i| i.tokens.len()).sum();
        if total > self.limits.max_batch_tokens || inputs.len() > self.limits.max_seqs {
            return Err(Error::Model(format!(
                "step of {total} tokens in {} sequences exceeds the limits ({} tokens, {} sequences)",
                inputs.len(),
                self.limits.max_batch_tokens,
                self.limits.max_seqs
            )));
        }
        for (i, inp) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|o| o.seq == inp.seq) {
                return Err(Error::Model(format!(
                    "sequence {} twice in one step",
                    inp.seq
                )));
            }
            let s = self
                .seqs
                .get(&inp.seq)
                .ok_or_else(|| Error::Model(format!("no sequence {}", inp.seq)))?;
            if s.len() + inp.tokens.len() > self.limits.ctx_size {
                return Err(Error::Model(format!(
                    "sequence of {} tokens plus {} new exceeds the context size {}",
                    s.len(),
                    inp.tokens.len(),
                    self.limits.ctx_size
                )));
            }
            if inp.tokens.is_empty() && inp.want != Want::Nothing {
                return Err(Error::Model(
                    "an input wants output but has no tokens".into(),
                ));
            }
        }
        // pages first, all or nothing
        let need: usize = inputs
            .iter()
            .map(|i| self.pages_needed(i.seq, i.tokens.len()))
            .sum();
        if need > self.kv.free_pages() {
            return Err(Error::Model(format!(
                "KV cache full: the step needs {need} more pages, {} free of {}",
                self.kv.free_pages(),
                self.kv.num_pages()
            )));
        }
        let max_pages = self.limits.ctx_size.div_ceil(self.limits.page_size);
        let mut b = ForwardBatch {
            max_pages,
            cu: vec![0],
            ..Default::default()
        };
        let mut rows = Vec::with_capacity(inputs.len());
        let mut nrows = 0;
        for inp in inputs {
            let s = self
                .seqs
                .get_mut(&inp.seq)
                .ok_or_else(|| Error::Model(format!("no sequence {}", inp.seq)))?;
            self.kv.reserve(s, inp.tokens.len())?;
            let base = b.tokens.len();
            b.tokens.extend_from_slice(inp.tokens);
            b.cu.push(b.tokens.len() as i32);
            b.ctx_lens.push(s.len() as i32);
            let mut row = vec![0i32; max_pages];
            for (r, &p) in row.iter_mut().zip(&s.pages) {
                *r = p as i32;
            }
            b.block_tables.extend(row);
            let n = inp.tokens.len();
            let start = nrows;
            match inp.want {
                Want::Nothing => {}
                Want::Last => b.out_rows.push(base + n - 1),
                Want::All => b.out_rows.extend(base..base + n),
            }
            nrows = b.out_rows.len();
            rows.push(start..nrows);
        }
        let res = self.backend.forward(&b, !argmax_only)?;
        for inp in inputs {
            if let Some(s) = self.seqs.get_mut(&inp.seq) {
                self.kv.commit(s, inp.tokens);
            }
        }
        self.steps += 1;
        self.tokens_processed += total as u64;
        Ok(StepOutput {
            vocab: self.config.vocab_size,
            rows,
            logits: res.logits,
            argmax: res.argmax,
        })
    }

    /// Feed `tokens` to one sequence in chunks of at most `max_batch_tokens`; returns the outputs
    /// `want` asks for (for `All`, every token's logits in order).
    pub fn prefill(&mut self, id: SeqId, tokens: &[u32], want: Want) -> Result<StepOutput> {
        let chunk = self.limits.max_batch_tokens.max(1);
        let mut acc = StepOutput {
            vocab: self.config.vocab_size,
            rows: vec![0..0],
            ..Default::default()
        };
        let n = tokens.len().div_ceil(chunk);
        for (ci, part) in tokens.chunks(chunk).enumerate() {
            let w = match want {
                Want::All => Want::All,
                Want::Last if ci + 1 == n => Want::Last,
                _ => Want::Nothing,
            };
            let out = self.step(
                &[StepInput {
                    seq: id,
                    tokens: part,
                    want: w,
                }],
                false,
            )?;
            acc.logits.extend_from_slice(&out.logits);
            acc.argmax.extend_from_slice(&out.argmax);
        }
        acc.rows = vec![0..acc.argmax.len()];
        Ok(acc)
    }
}
