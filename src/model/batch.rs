//! One forward step's input, the same for every backend: a ragged batch of new tokens per sequence
//! (a prefill chunk or one decode token), where they go in the paged cache, and which rows need
//! logits.

use crate::error::{Error, Result};

/// What a step returns for the rows it was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Full logits rows (f32) on the host.
    Logits,
    /// Only the greedy (argmax) token of each row, picked on the device.
    Argmax,
}

/// A ragged batch of new tokens.
#[derive(Debug, Clone, Default)]
pub struct ForwardBatch {
    /// New tokens of every sequence, concatenated.
    pub tokens: Vec<u32>,
    /// Sequence b's new tokens are `tokens[cu[b]..cu[b+1]]`.
    pub cu: Vec<i32>,
    /// Tokens already in the cache for each sequence (the new ones go at positions ctx..).
    pub ctx_lens: Vec<i32>,
    /// `[nseq][max_pages]` page ids (rows padded with 0).
    pub block_tables: Vec<i32>,
    pub max_pages: usize,
    /// Indices into `tokens` of the rows whose logits (or argmax) are wanted, ascending.
    pub out_rows: Vec<usize>,
}

impl ForwardBatch {
    pub fn nseq(&self) -> usize {
        self.ctx_lens.len()
    }
    pub fn total(&self) -> usize {
        self.tokens.len()
    }
    /// Position of every new token.
    pub fn positions(&self) -> Vec<i32> {
        let mut p = Vec::with_capacity(self.tokens.len());
        for b in 0..self.nseq() {
            for i in 0..(self.cu[b + 1] - self.cu[b]) {
                p.push(self.ctx_lens[b] + i);
            }
        }
        p
    }
    /// Sequence index of every new token.
    pub fn seq_of_token(&self) -> Vec<usize> {
        let mut s = Vec::with_capacity(self.tokens.len());
        for b in 0..self.nseq() {
            s.extend(std::iter::repeat_n(
                b,
                (self.cu[b + 1] - self.cu[b]) as usize,
            ));
        }
        s
    }
    /// KV lengths after the step.
    pub fn kv_lens(&self) -> Vec<i32> {
        (0..self.nseq())
            .map(|b| self.ctx_lens[b] + self.cu[b + 1] - self.cu[b])
            .collect()
    }
    /// Structural checks (the model builds batches; this guards the backends).
    pub fn validate(&self, vocab: usize, page_size: usize, num_pages: usize) -> Result<()> {
        let n = self.nseq();
        let bad = |m: String| Err(Error::Model(format!("forward batch: {m}")));
        if self.cu.len() != n + 1 || self.cu.first() != Some(&0) {
            return bad(format!(
                "cu has {} entries for {n} sequences",
                self.cu.len()
            ));
        }
        if self.cu.windows(2).any(|w| w[1] < w[0])
            || *self.cu.last().unwrap_or(&0) as usize != self.tokens.len()
        {
            return bad("cu is not a non-decreasing cover of the tokens".into());
        }
        if self.block_tables.len() != n * self.max_pages {
            return bad(format!(
                "block table has {} entries for {n} x {} pages",
                self.block_tables.len(),
                self.max_pages
            ));
        }
        if let Some(t) = self.tokens.iter().find(|&&t| t as usize >= vocab) {
            return bad(format!("token id {t} outside the vocabulary of {vocab}"));
        }
        for (b, &kv) in self.kv_lens().iter().enumerate() {
            if self.ctx_lens[b] < 0 || kv as usize > self.max_pages * page_size {
                return bad(format!(
                    "sequence {b} needs {kv} tokens; its table holds {}",
                    self.max_pages * page_size
                ));
            }
            let used = (kv as usize).div_ceil(page_size);
            let row = &self.block_tables[b * self.max_pages..][..used];
            if row.iter().any(|&p| p < 0 || p as usize >= num_pages) {
                return bad(format!("sequence {b} has a page id outside 0..{num_pages}"));
            }
        }
        if self.out_rows.windows(2).any(|w| w[1] <= w[0])
            || self
                .out_rows
                .last()
                .is_some_and(|&r| r >= self.tokens.len())
        {
            return bad("output rows must be ascending token indices".into());
        }
        Ok(())
    }
}
