//! Sampling: greedy, temperature, top-k, top-p, min-p, penalties, seeds, stop conditions.
//!
//! The transforms run in llama.cpp's default order: penalties (repetition over the last
//! `penalty_last_n` tokens of the history, then OpenAI's presence/frequency formula) → top-k →
//! temperature-scaled softmax → top-p → min-p → draw. Temperature 0 (or top-k 1) is greedy: the
//! argmax after penalties, NaN below every number, ties to the lowest index, the same rule as the
//! device argmax ([`crate::ops::sampling`]).
//!
//! [`logprobs`] gives OpenAI-style log-probabilities from the raw logits, and [`StopMatcher`] cuts a
//! streamed text at the first stop string without ever emitting part of one.

use crate::error::{Error, Result};
use crate::ops::sampling::argmax_slice;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::collections::HashMap;

/// What the sampler does with a row of logits, and when generation stops.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature; 0 = greedy.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest most-likely set whose probability reaches `top_p`; 1 = off.
    pub top_p: f32,
    /// Keep tokens at least `min_p` times as likely as the most likely one; 0 = off.
    pub min_p: f32,
    /// Divide positive logits / multiply negative ones of recent tokens by this; 1 = off.
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every token in the recent window (OpenAI); 0 = off.
    pub presence_penalty: f32,
    /// Subtracted per occurrence in the recent window (OpenAI); 0 = off.
    pub frequency_penalty: f32,
    /// How many of the last tokens of the history the penalties look at; 0 = penalties off.
    pub penalty_last_n: usize,
    /// RNG seed: the same seed gives the same tokens; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Generation ends before the first occurrence of any of these strings.
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    /// The defaults of llama.cpp's command line: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
    /// penalties off (window 64), no seed; at most 512 new tokens.
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: None,
            max_tokens: 512,
            stop: Vec::new(),
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (temperature 0, every filter off), otherwise the defaults.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Self::default()
        }
    }

    /// Whether the draw is the argmax (after penalties): temperature 0, or top-k 1.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    /// Refuse values with no meaning: a clear error naming the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32, range: &str| {
            Err(Error::op(
                "sampling",
                format!("{what} = {v} is invalid; expected {range}"),
            ))
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(
                "temperature",
                self.temperature,
                "a finite number ≥ 0 (0 = greedy)",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p, "0 < top_p ≤ 1 (1 = off)");
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return bad("min_p", self.min_p, "0 ≤ min_p ≤ 1 (0 = off)");
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(
                "repetition_penalty",
                self.repetition_penalty,
                "a finite number > 0 (1 = off)",
            );
        }
        if !self.presence_penalty.is_finite() {
            return bad(
                "presence_penalty",
                self.presence_penalty,
                "a finite number (0 = off)",
            );
        }
        if !self.frequency_penalty.is_finite() {
            return bad(
                "frequency_penalty",
                self.frequency_penalty,
                "a finite number (0 = off)",
            );
        }
        if let Some(i) = self.stop.iter().position(|s| s.is_empty()) {
            return Err(Error::op(
                "sampling",
                format!("stop string {i} is empty; stop strings must have at least one character"),
            ));
        }
        Ok(())
    }

    fn penalties_on(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repetition_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }
}

/// Draws tokens from logits with [`SamplingParams`]; owns a seeded RNG and reusable buffers.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Candidates (token, logit, then weight), reused between calls.
    cand: Vec<(u32, f64)>,
    counts: HashMap<u32, u32>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Larger logit first, then lower index (candidates hold no NaN).
fn by_logit_desc(a: &(u32, f64), b: &(u32, f64)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

impl Sampler {
    /// A sampler for `params` (validated), seeded from `params.seed` or, without one, from the OS.
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.validate()?;
        let rng = match params.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Ok(Sampler {
            params,
            rng,
            cand: Vec::new(),
            counts: HashMap::new(),
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Pick the next token from one row of logits; `history` = prompt + generated ids (for
    /// penalties). Applies the penalties to `logits` in place. An empty row gives token 0.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        if !self.filter(logits, history) {
            return argmax_slice(logits) as u32;
        }
        let total: f64 = self.cand.iter().map(|c| c.1).sum();
        let mut r = self.rng.gen::<f64>() * total;
        for &(t, w) in &self.cand {
            if r < w {
                return t;
            }
            r -= w;
        }
        // rounding left r ≥ the last weight: the last kept token
        self.cand.last().map(|c| c.0).unwrap_or(0)
    }

    /// The distribution [`Sampler::sample`] draws from: the kept tokens with their probabilities
    /// (renormalised, summing to 1; most likely first when top-k or top-p sorted them). Greedy and
    /// degenerate rows (no finite logit, or a +∞ one) give the argmax with probability 1. Applies the
    /// penalties to `logits` in place, as `sample` does; draws nothing.
    pub fn distribution(&mut self, logits: &mut [f32], history: &[u32]) -> Vec<(u32, f32)> {
        if logits.is_empty() {
            return Vec::new();
        }
        if !self.filter(logits, history) {
            return vec![(argmax_slice(logits) as u32, 1.0)];
        }
        let total: f64 = self.cand.iter().map(|c| c.1).sum();
        self.cand
            .iter()
            .map(|&(t, w)| (t, (w / total) as f32))
            .collect()
    }

    /// Penalties, then (unless the draw is the argmax) fill `self.cand` with the kept tokens and their
    /// unnormalised weights. `false` = take the argmax of `logits`.
    fn filter(&mut self, logits: &mut [f32], history: &[u32]) -> bool {
        self.apply_penalties(logits, history);
        let p = &self.params;
        if p.is_greedy() {
            return false;
        }
        self.cand.clear();
        // −∞ and NaN have probability 0; +0.0 added makes −0 equal to +0 in the ordering.
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan() && **l != f32::NEG_INFINITY)
                .map(|(i, &l)| (i as u32, l as f64 + 0.0)),
        );
        let max = self
            .cand
            .iter()
            .map(|c| c.1)
            .fold(f64::NEG_INFINITY, f64::max);
        if self.cand.is_empty() || max == f64::INFINITY {
            return false;
        }
        // top-k
        let mut sorted = false;
        if p.top_k > 0 && p.top_k < self.cand.len() {
            self.cand.select_nth_unstable_by(p.top_k - 1, by_logit_desc);
            self.cand.truncate(p.top_k);
            self.cand.sort_unstable_by(by_logit_desc);
            sorted = true;
        }
        // temperature-scaled softmax, unnormalised: the most likely token has weight 1
        let t = p.temperature as f64;
        let mut total = 0.0f64;
        for c in self.cand.iter_mut() {
            c.1 = ((c.1 - max) / t).exp();
            total += c.1;
        }
        // top-p: the shortest most-likely prefix whose probability reaches top_p
        if p.top_p < 1.0 {
            if !sorted {
                self.cand.sort_unstable_by(by_logit_desc);
            }
            let target = p.top_p as f64 * total;
            let mut cum = 0.0f64;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += c.1;
                if cum >= target {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        // min-p: at least min_p times the most likely token's probability (its weight is 1)
        if p.min_p > 0.0 {
            let floor = p.min_p as f64;
            self.cand.retain(|c| c.1 >= floor);
        }
        !self.cand.is_empty()
    }

    /// Repetition penalty (llama.cpp: divide a positive logit, multiply a negative one), then
    /// `logit −= count · frequency + [count > 0] · presence` (OpenAI), for every token among the last
    /// `penalty_last_n` of `history`. Ids outside the row are ignored.
    fn apply_penalties(&mut self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if !p.penalties_on() {
            return;
        }
        let window = &history[history.len().saturating_sub(p.penalty_last_n)..];
        self.counts.clear();
        for &t in window {
            *self.counts.entry(t).or_insert(0) += 1;
        }
        for (&t, &n) in &self.counts {
            let Some(l) = logits.get_mut(t as usize) else {
                continue;
            };
            if p.repetition_penalty != 1.0 {
                *l = if *l <= 0.0 {
                    *l * p.repetition_penalty
                } else {
                    *l / p.repetition_penalty
                };
            }
            *l -= n as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }
}

/// Log-probabilities for OpenAI `logprobs`, from the raw logits (before any sampling transform):
/// the chosen token's and the `n` most likely `(id, logprob)`, most likely first, ties to the lower
/// id. NaN logits count as −∞; a chosen id outside the row gets −∞. A row with +∞ logits spreads
/// the probability evenly over them; a row with no logit above −∞ gives −∞ everywhere.
pub fn logprobs(logits: &[f32], chosen: u32, n: usize) -> (f32, Vec<(u32, f32)>) {
    let clean = |l: f32| if l.is_nan() { f32::NEG_INFINITY } else { l };
    let max = logits
        .iter()
        .map(|&l| clean(l))
        .fold(f32::NEG_INFINITY, f32::max);
    let lp: Box<dyn Fn(f32) -> f32> = if max == f32::INFINITY {
        let k = logits.iter().filter(|&&l| l == f32::INFINITY).count() as f64;
        let v = -(k.ln()) as f32;
        Box::new(move |l: f32| {
            if l == f32::INFINITY {
                v
            } else {
                f32::NEG_INFINITY
            }
        })
    } else if max == f32::NEG_INFINITY {
        Box::new(|_| f32::NEG_INFINITY)
    } else {
        let m = max as f64;
        let sum: f64 = logits.iter().map(|&l| (clean(l) as f64 - m).exp()).sum();
        let lse = m + sum.ln();
        Box::new(move |l: f32| (clean(l) as f64 - lse) as f32)
    };
    let chosen_lp = logits
        .get(chosen as usize)
        .map(|&l| lp(l))
        .unwrap_or(f32::NEG_INFINITY);
    let n = n.min(logits.len());
    if n == 0 {
        return (chosen_lp, Vec::new());
    }
    let key = |i: &u32| clean(logits[*i as usize]) + 0.0;
    let cmp = |a: &u32, b: &u32| key(b).total_cmp(&key(a)).then(a.cmp(b));
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    if n < ids.len() {
        ids.select_nth_unstable_by(n - 1, cmp);
        ids.truncate(n);
    }
    ids.sort_unstable_by(cmp);
    let top = ids
        .into_iter()
        .map(|i| (i, lp(logits[i as usize])))
        .collect();
    (chosen_lp, top)
}

/// Stop strings over streamed text. [`StopMatcher::push`] returns the text that is safe to emit:
/// everything but a tail that could still grow into a stop string; once a stop string appears, the
/// text before it and `true`. Works on `str`, so cuts fall on character boundaries.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
            stopped: false,
        }
    }

    /// Add generated text; returns (text safe to emit now, whether a stop string was hit). After a
    /// hit the returned text ends just before the stop string, and later pushes return `("", true)`.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.pending.push_str(text);
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(pos) = hit {
            self.pending.truncate(pos);
            self.stopped = true;
            return (std::mem::take(&mut self.pending), true);
        }
        let cut = self.pending.len() - self.held();
        let out = self.pending[..cut].to_string();
        self.pending.replace_range(..cut, "");
        (out, false)
    }

    /// The text held back (generation ended without a stop string); empty after a stop.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Whether a stop string was hit.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Length in bytes of the longest tail of `pending` that is a proper prefix of a stop string.
    fn held(&self) -> usize {
        let longest = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let len = self.pending.len();
        for (start, _) in self.pending.char_indices() {
            if len - start >= longest {
                continue;
            }
            let tail = &self.pending[start..];
            if self.stops.iter().any(|s| s.starts_with(tail)) {
                return len - start;
            }
        }
        0
    }
}
