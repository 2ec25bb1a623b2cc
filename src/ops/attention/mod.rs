//! Attention ops: RoPE, paged KV cache, prefill (FlashAttention) and decode attention, softmax.
//!
//! Shared host-side shapes live here: [`PagedCache`] (the page layout every kernel of this area reads),
//! [`Batch`] (ragged sequences: query offsets and KV lengths, on host and device) and [`AttnParams`].
//!
//! Paged cache layout, K and V alike: `[num_pages][n_kv_heads][page_size][head_dim]` of f16/bf16. Token
//! `t` of sequence `b` lives in page `block_tables[b * max_pages + t / page_size]`, row `t % page_size`;
//! a page holds `page_size` consecutive tokens of every kv head, each head's rows contiguous.

pub mod decode;
pub mod kv_cache;
pub mod prefill;
pub mod rope;
pub mod softmax;

use crate::error::{Error, Result};
use crate::gpu::{Buffer, Device};
use crate::jit::spec::{ParamDef, ParamKind};
use crate::jit::Family;

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![
        &rope::FAMILY,
        &kv_cache::FAMILY,
        &prefill::FAMILY,
        &decode::FAMILY,
        &decode::MERGE,
        &decode::MC_FAMILY,
        &softmax::FAMILY,
    ]
}

/// `attn_mm.h` (the matrix paths prefill and the matrix-core decode share), for a family preamble
/// after the `RF_ATTN_*` defines it reads; a missing template renders as an `#error` naming it.
pub(crate) fn mm_header() -> String {
    crate::jit::template::template_text("attn_mm.h").unwrap_or_else(|e| format!("#error {e}\n"))
}

/// Head sizes the attention kernels are built for.
pub const HEAD_DIMS: &[i64] = &[64, 80, 96, 128, 256];
/// Storage types of the KV cache and attention inputs.
pub const DTYPES16: &[&str] = &["f16", "bf16"];

// The head_dim and dtype parameters of the attention families (prefill, decode).
pub(super) const HEAD_DIM_PARAM: ParamDef = ParamDef {
    name: "head_dim",
    kind: ParamKind::Int {
        prefix: "hd",
        values: HEAD_DIMS,
    },
    doc: "head size",
};
pub(super) const DTYPE_PARAM: ParamDef = ParamDef {
    name: "dtype",
    kind: ParamKind::Choice { values: DTYPES16 },
    doc: "Q/K/V/O element type",
};

/// Error unless `head_dim` is supported, listing the supported sizes.
pub fn check_head_dim(op: &'static str, head_dim: usize) -> Result<()> {
    if HEAD_DIMS.contains(&(head_dim as i64)) {
        return Ok(());
    }
    let list: Vec<String> = HEAD_DIMS.iter().map(|v| v.to_string()).collect();
    Err(Error::op(
        op,
        format!(
            "unsupported head_dim {head_dim}; supported: {}",
            list.join(", ")
        ),
    ))
}

/// Error unless `dtype` is f16 or bf16.
pub fn check_dtype16(op: &'static str, dtype: &str) -> Result<()> {
    if DTYPES16.contains(&dtype) {
        Ok(())
    } else {
        Err(Error::op(
            op,
            format!("unsupported dtype {dtype}; supported: f16, bf16"),
        ))
    }
}

/// Attention options shared by prefill and decode.
#[derive(Debug, Clone, Copy)]
pub struct AttnParams {
    /// Queries see keys up to their own position (decode is always causal).
    pub causal: bool,
    /// Score scale, usually 1/sqrt(head_dim).
    pub scale: f32,
    /// Scores become `softcap * tanh(s / softcap)` when > 0.
    pub softcap: f32,
    /// When > 0, a query at position p sees only keys > p - window.
    pub window: i32,
}

impl AttnParams {
    /// Plain scaled-dot-product attention with scale 1/sqrt(head_dim).
    pub fn new(head_dim: usize, causal: bool) -> AttnParams {
        AttnParams {
            causal,
            scale: 1.0 / (head_dim as f32).sqrt(),
            softcap: 0.0,
            window: 0,
        }
    }
}

/// Shape of a paged KV cache (see the module docs for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedLayout {
    pub num_pages: usize,
    pub page_size: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Columns of the block table (pages per sequence at most).
    pub max_pages: usize,
}

impl PagedLayout {
    /// Elements of one of the K or V cache tensors.
    pub fn elements(&self) -> usize {
        self.num_pages * self.n_kv_heads * self.page_size * self.head_dim
    }
    /// Element offset of (page, head, row) in a cache tensor.
    pub fn offset(&self, page: usize, head: usize, row: usize) -> usize {
        ((page * self.n_kv_heads + head) * self.page_size + row) * self.head_dim
    }
    /// Element offset of token `t` of sequence `b` for kv head `h` (host-side block table).
    pub fn token_offset(&self, block_tables: &[i32], b: usize, h: usize, t: usize) -> usize {
        let page = block_tables[b * self.max_pages + t / self.page_size] as usize;
        self.offset(page, h, t % self.page_size)
    }
    pub fn validate(&self, op: &'static str) -> Result<()> {
        check_head_dim(op, self.head_dim)?;
        if self.page_size == 0 || self.n_kv_heads == 0 || self.max_pages == 0 || self.num_pages == 0
        {
            return Err(Error::op(op, format!("empty paged cache {self:?}")));
        }
        if self.elements() > i32::MAX as usize * 8 {
            return Err(Error::op(
                op,
                "cache too large for 64-bit offsets of this build",
            ));
        }
        Ok(())
    }
}

/// A paged K/V cache on the device.
pub struct PagedCache<T: bytemuck::Pod> {
    pub layout: PagedLayout,
    pub k: Buffer<T>,
    pub v: Buffer<T>,
    /// `[nseq][max_pages]` page ids.
    pub block_tables: Buffer<i32>,
}

impl<T: bytemuck::Pod> PagedCache<T> {
    /// Allocate K and V (uninitialised) and upload the block table.
    pub fn new(dev: &Device, layout: PagedLayout, block_tables: &[i32]) -> Result<Self> {
        layout.validate("paged_cache")?;
        if block_tables.len() % layout.max_pages != 0 {
            return Err(Error::op(
                "paged_cache",
                format!(
                    "block table of {} entries is not rows of {}",
                    block_tables.len(),
                    layout.max_pages
                ),
            ));
        }
        if let Some(bad) = block_tables
            .iter()
            .find(|&&p| p < 0 || p as usize >= layout.num_pages)
        {
            return Err(Error::op(
                "paged_cache",
                format!("page id {bad} outside 0..{}", layout.num_pages),
            ));
        }
        Ok(PagedCache {
            layout,
            k: dev.alloc(layout.elements())?,
            v: dev.alloc(layout.elements())?,
            block_tables: dev.upload(block_tables)?,
        })
    }
    /// Sequences the block table has rows for.
    pub fn nseq(&self) -> usize {
        self.block_tables.len() / self.layout.max_pages
    }
}

/// A ragged batch: query tokens of sequence b are `cu_q[b] .. cu_q[b+1]`, the last of its `kv_lens[b]` tokens.
pub struct Batch {
    pub cu_q_host: Vec<i32>,
    pub kv_lens_host: Vec<i32>,
    pub cu_q: Buffer<i32>,
    pub kv_lens: Buffer<i32>,
}

impl Batch {
    /// Validate and upload. Every sequence needs `kv_len >= q_len`.
    pub fn new(dev: &Device, cu_q: &[i32], kv_lens: &[i32]) -> Result<Batch> {
        Self::check(cu_q, kv_lens)?;
        Ok(Batch {
            cu_q_host: cu_q.to_vec(),
            kv_lens_host: kv_lens.to_vec(),
            cu_q: dev.upload(cu_q)?,
            kv_lens: dev.upload(kv_lens)?,
        })
    }
    /// The host-side checks of [`Batch::new`].
    pub fn check(cu_q: &[i32], kv_lens: &[i32]) -> Result<()> {
        if cu_q.len() != kv_lens.len() + 1 || kv_lens.is_empty() || cu_q[0] != 0 {
            return Err(Error::op(
                "batch",
                format!(
                    "cu_q ({} entries, first {:?}) must be 0 then one offset per sequence ({})",
                    cu_q.len(),
                    cu_q.first(),
                    kv_lens.len()
                ),
            ));
        }
        for b in 0..kv_lens.len() {
            let q = cu_q[b + 1] - cu_q[b];
            if q < 0 || kv_lens[b] < q {
                return Err(Error::op(
                    "batch",
                    format!("sequence {b}: q_len {q} with kv_len {}", kv_lens[b]),
                ));
            }
        }
        Ok(())
    }
    pub fn nseq(&self) -> usize {
        self.kv_lens_host.len()
    }
    pub fn total_q(&self) -> usize {
        *self.cu_q_host.last().unwrap_or(&0) as usize
    }
    pub fn max_q_len(&self) -> usize {
        self.cu_q_host
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0)
    }
    pub fn max_kv_len(&self) -> usize {
        self.kv_lens_host.iter().copied().max().unwrap_or(0).max(0) as usize
    }
}

/// Check the block table covers every sequence's KV length.
pub(crate) fn check_cache_covers(
    op: &'static str,
    layout: &PagedLayout,
    nseq_table: usize,
    batch_kv: &[i32],
) -> Result<()> {
    if nseq_table < batch_kv.len() {
        return Err(Error::op(
            op,
            format!(
                "block table has {nseq_table} rows for {} sequences",
                batch_kv.len()
            ),
        ));
    }
    let cap = layout.max_pages * layout.page_size;
    if let Some((b, l)) = batch_kv.iter().enumerate().find(|(_, &l)| l as usize > cap) {
        return Err(Error::op(
            op,
            format!("sequence {b} needs {l} tokens; the block table holds {cap}"),
        ));
    }
    Ok(())
}
