//! Append new K/V rows to the paged cache, optionally rotating K (RoPE) on the way in one kernel.
//! Layout: see [`super`] (`[pages][n_kv_heads][page_size][head_dim]`).

use super::rope::{rotate_row, Rope};
use super::{check_dtype16, PagedCache, PagedLayout, DTYPES16};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_rules, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::Element;

pub static FAMILY: Family = Family {
    name: "kv_append",
    doc: "append new K/V rows of a ragged batch to the paged cache, with RoPE on K fused (or not)",
    body: "kv_cache.hip",
    instance: "kv_cache.inst",
    params: &[
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES16 },
            doc: "cache and input element type",
        },
        ParamDef {
            name: "rope",
            kind: ParamKind::Choice {
                values: &["none", "normal", "neox"],
            },
            doc: "RoPE applied to K while appending",
        },
    ],
    validate: no_rules,
    applies: any_target,
    preamble: |_| {
        crate::jit::template::template_text("rope.hip").unwrap_or_else(|e| format!("#error {e}\n"))
    },
};

pub fn spec(dtype: &str, rope: Option<&Rope>, wave: u32) -> Result<KernelSpec> {
    let r = rope.map(|r| r.style.name()).unwrap_or("none");
    KernelSpec::new(
        &FAMILY,
        &[("dtype", dtype.into()), ("rope", r.into())],
        wave,
    )
}

/// The new tokens of one append: `cu_new[b] .. cu_new[b+1]` are sequence b's rows of `k_new`/`v_new`
/// (`[tokens][n_kv_heads][head_dim]`), written at slots `ctx_lens[b]..` (lengths before the append),
/// with positions `pos` (one per new token, used by RoPE).
pub struct Append<'a, T: bytemuck::Pod> {
    pub k_new: &'a Buffer<T>,
    pub v_new: &'a Buffer<T>,
    pub pos: &'a Buffer<i32>,
    pub cu_new: &'a Buffer<i32>,
    pub ctx_lens: &'a Buffer<i32>,
    /// Host copies for validation: offsets and lengths before the append.
    pub cu_new_host: &'a [i32],
    pub ctx_lens_host: &'a [i32],
}

fn check(l: &PagedLayout, nseq_table: usize, cu: &[i32], ctx: &[i32], tokens: usize) -> Result<()> {
    if cu.len() != ctx.len() + 1 || cu.first() != Some(&0) || cu.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::op(
            "kv_append",
            format!(
                "cu_new must be 0 then non-decreasing offsets, one per sequence ({} sequences)",
                ctx.len()
            ),
        ));
    }
    if *cu.last().unwrap_or(&0) as usize != tokens {
        return Err(Error::op(
            "kv_append",
            format!(
                "cu_new ends at {:?} but k_new holds {tokens} tokens",
                cu.last()
            ),
        ));
    }
    let after: Vec<i32> = ctx
        .iter()
        .zip(cu.windows(2))
        .map(|(c, w)| c + w[1] - w[0])
        .collect();
    if ctx.iter().any(|&c| c < 0) {
        return Err(Error::op("kv_append", "negative context length"));
    }
    super::check_cache_covers("kv_append", l, nseq_table, &after)
}

/// Append (and rotate K when `rope` is given).
pub fn append<T: Element>(
    dev: &Device,
    stream: &Stream,
    cache: &mut PagedCache<T>,
    a: &Append<T>,
    rope: Option<&Rope>,
) -> Result<()> {
    append_impl(dev, stream, cache, a, rope, None)
}

/// Append with RoPE on K, and rotate the same tokens' queries `q` (`[tokens][hq][head_dim]`) in place
/// in the same launch (what a step otherwise does with `rope::rope` before the append).
pub fn append_rope_q<T: Element>(
    dev: &Device,
    stream: &Stream,
    cache: &mut PagedCache<T>,
    a: &Append<T>,
    rope: &Rope,
    q: &mut Buffer<T>,
    hq: usize,
) -> Result<()> {
    append_impl(dev, stream, cache, a, Some(rope), Some((q, hq)))
}

fn append_impl<T: Element>(
    dev: &Device,
    stream: &Stream,
    cache: &mut PagedCache<T>,
    a: &Append<T>,
    rope: Option<&Rope>,
    q: Option<(&mut Buffer<T>, usize)>,
) -> Result<()> {
    check_dtype16("kv_append", T::DTYPE)?;
    let l = cache.layout;
    l.validate("kv_append")?;
    let row = l.n_kv_heads * l.head_dim;
    let tokens = a.k_new.len() / row;
    if a.k_new.len() != tokens * row || a.v_new.len() != a.k_new.len() || a.pos.len() != tokens {
        return Err(Error::op(
            "kv_append",
            format!(
                "k_new {} / v_new {} elements, pos {}: need tokens x {} and one position per token",
                a.k_new.len(),
                a.v_new.len(),
                a.pos.len(),
                row
            ),
        ));
    }
    check(&l, cache.nseq(), a.cu_new_host, a.ctx_lens_host, tokens)?;
    if let Some(r) = rope {
        r.validate("kv_append", l.head_dim)?;
    }
    if tokens == 0 {
        return Ok(());
    }
    let hq = q.as_ref().map(|(_, h)| *h).unwrap_or(0);
    if let Some((qb, _)) = &q {
        if hq == 0 || qb.len() != tokens * hq * l.head_dim {
            return Err(Error::op(
                "kv_append",
                format!(
                    "q has {} elements: need tokens {tokens} x {hq} heads x {} (hq > 0)",
                    qb.len(),
                    l.head_dim
                ),
            ));
        }
    }
    let kern = Jit::global().kernel(dev, &spec(T::DTYPE, rope, dev.target().wave_size)?)?;
    let items = tokens * (l.n_kv_heads + hq) * (l.head_dim / 8);
    let cfg = LaunchConfig {
        grid: [items.div_ceil(256).min(65535 * 16) as u32, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    };
    let nseq = a.ctx_lens_host.len() as i32;
    let (n_rot, lb) = rope
        .map(|r| (r.n_rot as i32, r.log2_base()))
        .unwrap_or((0, 0.0));
    kern.launch(
        stream,
        cfg,
        &[
            a.k_new.into(),
            a.v_new.into(),
            a.pos.into(),
            a.cu_new.into(),
            a.ctx_lens.into(),
            (&cache.block_tables).into(),
            nseq.into(),
            (l.max_pages as i32).into(),
            (l.page_size as i32).into(),
            (l.n_kv_heads as i32).into(),
            (l.head_dim as i32).into(),
            n_rot.into(),
            lb.into(),
            (&mut cache.k).into(),
            (&mut cache.v).into(),
            match q {
                Some((qb, _)) => qb.into(),
                None => Arg::Ptr(0),
            },
            (hq as i32).into(),
        ],
    )
}

/// CPU reference of [`append`] on host copies of the cache.
#[allow(clippy::too_many_arguments)]
pub fn append_ref<T: Element>(
    l: &PagedLayout,
    block_tables: &[i32],
    k_new: &[T],
    v_new: &[T],
    pos: &[i32],
    cu_new: &[i32],
    ctx_lens: &[i32],
    rope: Option<&Rope>,
    k_cache: &mut [T],
    v_cache: &mut [T],
) -> Result<()> {
    let row = l.n_kv_heads * l.head_dim;
    check(
        l,
        block_tables.len() / l.max_pages,
        cu_new,
        ctx_lens,
        k_new.len() / row.max(1),
    )?;
    for b in 0..ctx_lens.len() {
        for t in cu_new[b] as usize..cu_new[b + 1] as usize {
            let slot = ctx_lens[b] as usize + t - cu_new[b] as usize;
            for h in 0..l.n_kv_heads {
                let dst = l.token_offset(block_tables, b, h, slot);
                let src = (t * l.n_kv_heads + h) * l.head_dim;
                v_cache[dst..dst + l.head_dim].copy_from_slice(&v_new[src..src + l.head_dim]);
                let kd = &mut k_cache[dst..dst + l.head_dim];
                kd.copy_from_slice(&k_new[src..src + l.head_dim]);
                if let Some(r) = rope {
                    rotate_row(kd, pos[t], r);
                }
            }
        }
    }
    Ok(())
}
