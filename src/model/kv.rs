//! KV pages: which page of the paged cache holds which tokens of which sequence. Backend-neutral
//! bookkeeping (the backends own the K/V memory and read it through block tables).
//!
//! Pages are reference counted. A page that is full is registered under a hash of the whole token
//! prefix it ends (so equal prompt prefixes map to equal pages) and can be adopted by a new sequence
//! with the same prefix; only full pages are shared, and a sequence only ever writes its last,
//! unshared page, so sharing needs no copy-on-write. Freed registered pages stay in the index until
//! their memory is handed out again (they are reused last).

use crate::error::{Error, Result};
use std::collections::{HashMap, VecDeque};

/// Identifies a sequence of a [`super::Model`].
pub type SeqId = u64;

/// Token-prefix hash of a full page, chained with the hash of the page before it.
fn page_hash(prev: u64, tokens: &[u32]) -> u64 {
    // FNV-1a over the previous hash and the tokens: cheap, deterministic across runs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ prev.rotate_left(17);
    for &t in tokens {
        for b in t.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// One sequence's pages and tokens.
#[derive(Debug, Clone, Default)]
pub struct SeqPages {
    /// Page ids, in order.
    pub pages: Vec<u32>,
    /// Tokens whose K/V are in the cache, in order.
    pub tokens: Vec<u32>,
    /// Chained hash of each full page (same length as the full pages).
    hashes: Vec<u64>,
}

impl SeqPages {
    /// Tokens with K/V in the cache.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Counters for reports and /metrics.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct KvStats {
    pub pages_total: usize,
    pub pages_used: usize,
    pub pages_free: usize,
    pub page_size: usize,
    /// Tokens whose K/V were taken from cached pages instead of computed.
    pub prefix_tokens_reused: u64,
    pub prefix_pages_cached: usize,
}

/// The page allocator and prefix index.
#[derive(Debug)]
pub struct KvPages {
    page_size: usize,
    refs: Vec<u32>,
    /// Pages with no reference, unregistered ones first (handed out first).
    free: VecDeque<u32>,
    hash_of: Vec<Option<u64>>,
    index: HashMap<u64, u32>,
    reused: u64,
}

impl KvPages {
    pub fn new(num_pages: usize, page_size: usize) -> Result<KvPages> {
        if num_pages == 0 || page_size == 0 || num_pages > u32::MAX as usize {
            return Err(Error::Model(format!(
                "KV cache of {num_pages} pages of {page_size} tokens"
            )));
        }
        Ok(KvPages {
            page_size,
            refs: vec![0; num_pages],
            free: (0..num_pages as u32).collect(),
            hash_of: vec![None; num_pages],
            index: HashMap::new(),
            reused: 0,
        })
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }
    pub fn num_pages(&self) -> usize {
        self.refs.len()
    }
    pub fn free_pages(&self) -> usize {
        self.free.len()
    }

    pub fn stats(&self) -> KvStats {
        KvStats {
            pages_total: self.refs.len(),
            pages_used: self.refs.len() - self.free.len(),
            pages_free: self.free.len(),
            page_size: self.page_size,
            prefix_tokens_reused: self.reused,
            prefix_pages_cached: self.index.len(),
        }
    }

    /// Pages needed to hold `tokens` tokens.
    pub fn pages_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.page_size)
    }

    fn take_page(&mut self) -> Option<u32> {
        let p = self.free.pop_front()?;
        if let Some(h) = self.hash_of[p as usize].take() {
            if self.index.get(&h) == Some(&p) {
                self.index.remove(&h);
            }
        }
        self.refs[p as usize] = 1;
        Some(p)
    }

    /// Make room for `extra` more tokens in `seq` (pages allocated on demand). On failure nothing
    /// changes and the error says how many pages were missing.
    pub fn reserve(&mut self, seq: &mut SeqPages, extra: usize) -> Result<()> {
        let need = self.pages_for(seq.len() + extra);
        let missing = need.saturating_sub(seq.pages.len());
        if missing > self.free.len() {
            return Err(Error::Model(format!(
                "KV cache full: {missing} more pages needed, {} free of {}",
                self.free.len(),
                self.refs.len()
            )));
        }
        for _ in 0..missing {
            if let Some(p) = self.take_page() {
                seq.pages.push(p);
            }
        }
        Ok(())
    }

    /// Record that `tokens` were written after the sequence's current tokens (call after the
    /// forward pass). Registers pages that became full in the prefix index.
    pub fn commit(&mut self, seq: &mut SeqPages, tokens: &[u32]) {
        let before_full = seq.tokens.len() / self.page_size;
        seq.tokens.extend_from_slice(tokens);
        let after_full = seq.tokens.len() / self.page_size;
        for i in before_full..after_full {
            let prev = if i == 0 { 0 } else { seq.hashes[i - 1] };
            let h = page_hash(
                prev,
                &seq.tokens[i * self.page_size..(i + 1) * self.page_size],
            );
            seq.hashes.push(h);
            let p = seq.pages[i];
            if let std::collections::hash_map::Entry::Vacant(e) = self.index.entry(h) {
                e.insert(p);
                self.hash_of[p as usize] = Some(h);
            }
        }
    }

    /// Start a sequence for `prompt`, adopting cached full pages of its longest cached prefix.
    /// At least one prompt token is always left to compute (its logits are needed).
    pub fn open_with_prefix(&mut self, prompt: &[u32]) -> SeqPages {
        let mut seq = SeqPages::default();
        let usable = prompt.len().saturating_sub(1) / self.page_size;
        let mut prev = 0u64;
        for i in 0..usable {
            let toks = &prompt[i * self.page_size..(i + 1) * self.page_size];
            let h = page_hash(prev, toks);
            let Some(&p) = self.index.get(&h) else { break };
            if self.refs[p as usize] == 0 {
                if let Some(pos) = self.free.iter().position(|&f| f == p) {
                    self.free.remove(pos);
                }
            }
            self.refs[p as usize] += 1;
            seq.pages.push(p);
            seq.hashes.push(h);
            seq.tokens.extend_from_slice(toks);
            prev = h;
        }
        self.reused += seq.tokens.len() as u64;
        seq
    }

    /// Drop a sequence's references; pages no longer referenced become free (registered ones are
    /// kept in the index and handed out last).
    pub fn release(&mut self, seq: &mut SeqPages) {
        for &p in &seq.pages {
            let r = &mut self.refs[p as usize];
            *r = r.saturating_sub(1);
            if *r == 0 {
                if self.hash_of[p as usize].is_some() {
                    self.free.push_back(p);
                } else {
                    self.free.push_front(p);
                }
            }
        }
        seq.pages.clear();
        seq.tokens.clear();
        seq.hashes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_pages_are_shared_and_freed() {
        let mut kv = KvPages::new(8, 4).unwrap();
        let prompt: Vec<u32> = (0..10).collect();
        let mut a = kv.open_with_prefix(&prompt);
        assert_eq!(a.len(), 0);
        kv.reserve(&mut a, 10).unwrap();
        kv.commit(&mut a, &prompt);
        assert_eq!(kv.stats().pages_used, 3);
        let mut b = kv.open_with_prefix(&prompt);
        assert_eq!(b.len(), 8, "two full pages reused");
        assert_eq!(b.pages, a.pages[..2].to_vec());
        kv.reserve(&mut b, 2).unwrap();
        assert_eq!(kv.stats().pages_used, 4);
        kv.release(&mut a);
        assert_eq!(kv.stats().pages_used, 3);
        kv.release(&mut b);
        assert_eq!(kv.stats().pages_used, 0);
        // the registered pages survive in the index until reused
        let c = kv.open_with_prefix(&prompt);
        assert_eq!(c.len(), 8);
    }

    #[test]
    fn reserve_fails_cleanly() {
        let mut kv = KvPages::new(2, 4).unwrap();
        let mut a = SeqPages::default();
        assert!(kv.reserve(&mut a, 9).is_err());
        assert!(a.pages.is_empty());
        assert_eq!(kv.free_pages(), 2);
        kv.reserve(&mut a, 8).unwrap();
        assert_eq!(kv.free_pages(), 0);
    }

    #[test]
    fn whole_prompt_never_fully_reused() {
        let mut kv = KvPages::new(4, 4).unwrap();
        let p: Vec<u32> = (0..8).collect();
        let mut a = SeqPages::default();
        kv.reserve(&mut a, 8).unwrap();
        kv.commit(&mut a, &p);
        let b = kv.open_with_prefix(&p);
        assert_eq!(
            b.len(),
            4,
            "the last page is recomputed so its last token has logits"
        );
    }
}
