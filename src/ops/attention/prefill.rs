//! Prefill attention (FlashAttention-2 style) over the paged cache: causal or not, GQA/MQA, ragged
//! batches, chunked prefill (queries are the last q_len of each sequence's kv_len tokens), sliding window
//! and logit soft-cap. One kernel text with a matrix path per target (`path`): `scalar` (portable, every
//! target), `mma_sync` (NVIDIA sm_80+), `mfma` (CDNA, wave64), `wmma` (RDNA3/RDNA4, wave32).

use super::{
    check_cache_covers, check_dtype16, check_head_dim, AttnParams, Batch, PagedCache, PagedLayout,
    DTYPES16, HEAD_DIMS,
};
use crate::error::{Error, Result};
use crate::gpu::{Buffer, Device, LaunchConfig, MatrixCores, Stream, Target};
use crate::jit::spec::{ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::Element;

/// Matrix paths of the prefill kernel.
pub const PATHS: &[&str] = &["scalar", "mma_sync", "mfma", "wmma"];

pub static FAMILY: Family = Family {
    name: "attn_prefill",
    doc: "FlashAttention-2 prefill over a paged KV cache (ragged, GQA, causal, window, soft-cap)",
    body: "attn_prefill.hip",
    instance: "attn_prefill.inst",
    params: &[
        ParamDef {
            name: "head_dim",
            kind: ParamKind::Int {
                prefix: "hd",
                values: HEAD_DIMS,
            },
            doc: "head size",
        },
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES16 },
            doc: "Q/K/V/O element type",
        },
        ParamDef {
            name: "causal",
            kind: ParamKind::Flag {
                on: "causal",
                off: "full",
            },
            doc: "causal mask",
        },
        ParamDef {
            name: "path",
            kind: ParamKind::Choice { values: PATHS },
            doc: "matrix path (scalar runs everywhere)",
        },
        ParamDef {
            name: "pipe",
            kind: ParamKind::Flag {
                on: "pipe",
                off: "loop",
            },
            doc: "mma_sync only: the pipelined tile loop (cp.async double buffer, 128-row blocks); loop = the shared tile loop",
        },
    ],
    validate: |s| match (s.str("path"), s.wave()) {
        ("mfma", 32) => Err("the mfma path needs wave64".into()),
        ("wmma", 64) | ("mma_sync", 64) => Err(format!("the {} path needs wave32", s.str("path"))),
        (p, _) if s.flag("pipe") && p != "mma_sync" => {
            Err(format!("the pipelined tile loop is mma_sync's; {p} has none"))
        }
        _ => Ok(()),
    },
    applies: |s, t| path_applies(s.str("path"), t),
    preamble: |s| {
        let t = tiles_for(
            s.str("path"),
            s.int("head_dim") as usize,
            s.wave(),
            s.flag("pipe"),
        );
        format!(
            "#define RF_ATTN_BM {}\n#define RF_ATTN_BN {}\n#define RF_ATTN_NWARP {}\n#define RF_ATTN_LPR {}\n\
             #define RF_ATTN_CSPLIT {}\n#define RF_ATTN_MT {}\n#define RF_ATTN_QREG {}\n#define RF_ATTN_PIPE {}\n",
            t.bm,
            t.bn,
            t.nwarp,
            t.lpr,
            t.csplit,
            t.mt,
            t.qreg as u8,
            (t.stages > 1) as u8
        )
    },
};

fn path_applies(path: &str, t: &Target) -> bool {
    match path {
        "scalar" => true,
        "mma_sync" => t.matrix_cores() == MatrixCores::MmaSync,
        "mfma" => t.matrix_cores() == MatrixCores::Mfma,
        "wmma" => t.matrix_cores() == MatrixCores::Wmma,
        _ => false,
    }
}

/// The fastest path a target has.
pub fn native_path(t: &Target) -> &'static str {
    match t.matrix_cores() {
        MatrixCores::MmaSync => "mma_sync",
        MatrixCores::Mfma => "mfma",
        MatrixCores::Wmma => "wmma",
        MatrixCores::None => "scalar",
    }
}

/// Block tiling of one instance; the one place these numbers are decided (the kernel gets them as
/// defines through the family preamble, the launcher uses them for the grid and shared memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiles {
    /// Query rows per block.
    pub bm: usize,
    /// Keys per K/V tile.
    pub bn: usize,
    /// Waves per block.
    pub nwarp: usize,
    /// Scalar path: lanes per query row.
    pub lpr: usize,
    /// Waves sharing one set of query rows, each holding 1/csplit of the O columns (WMMA at large
    /// head sizes, where a wave's full O row block would not fit in registers).
    pub csplit: usize,
    /// mma_sync pipeline: m16 tiles (16 query rows each) per wave (bm = 16 * mt * nwarp).
    pub mt: usize,
    /// mma_sync pipeline: Q fragments kept in registers (Q staged in K/V stage 1: bm <= 2 * bn).
    pub qreg: bool,
    /// K/V shared-memory stages: 2 = the cp.async pipeline of the mma_sync path
    /// (`attn_prefill_mma`); 1 = the shared tile loop (every other path).
    pub stages: usize,
    /// Dynamic shared memory bytes.
    pub shared: usize,
}

/// Whether the mma_sync path runs its pipelined tile loop (`attn_prefill_mma`: cp.async double
/// buffer, Q in registers, 128-row blocks): yes unless `ROCMFORGE_ATTN_PIPELINE=0|off`, which goes
/// back to the shared tile loop with MMSync fragments (64 x 64 tiles).
pub fn mma_sync_pipeline() -> bool {
    !matches!(
        std::env::var("ROCMFORGE_ATTN_PIPELINE")
            .as_deref()
            .map(str::trim),
        Ok("0") | Ok("off")
    )
}

/// The tiles `path` runs with by default (see [`mma_sync_pipeline`]).
pub fn tiles(path: &str, hd: usize, wave: u32) -> Tiles {
    tiles_for(path, hd, wave, path == "mma_sync" && mma_sync_pipeline())
}

/// The tiles of `path`, with the pipelined tile loop or not (mma_sync only).
pub fn tiles_for(path: &str, hd: usize, wave: u32, pipe: bool) -> Tiles {
    let wave = wave as usize;
    let ld = hd + 8;
    if path == "mma_sync" && pipe {
        // (bm, bn, nwarp, mt, qreg); registers (f32 S, f32 O, u32 Q fragments per lane):
        // mt * bn / 2 + mt * hd / 2 + (qreg ? mt * hd / 4 : 0), under 255 with no spills for every
        // head_dim, dtype and mask on sm_80 / sm_90 (`rocmforge compile --report --deny-spills`).
        // Tried and left out for spills (sm_90 unless said): mt 2 with qreg at hd96 (8 B, bf16) and
        // hd128 (56-88 B); hd128 at 128x32 4w mt 2 without qreg (spill-free on sm_90, 8 B on sm_80
        // bf16: halves K/V shared-memory reads per mma, worth a timing); __launch_bounds__(.., 2) for
        // 8-wave hd128 (128 registers: 216-264 B).
        let (bm, bn, nwarp, mt, qreg) = match hd {
            64 => (128, 64, 4, 2, true),
            80 => (128, 32, 4, 2, true),
            96 => (128, 32, 4, 2, false),
            128 => (128, 64, 8, 1, true),
            _ => (64, 32, 4, 1, false),
        };
        let rows = 4 * bn + if qreg { 0 } else { bm };
        return Tiles {
            bm,
            bn,
            nwarp,
            lpr: 1,
            csplit: 1,
            mt,
            qreg,
            stages: 2,
            shared: rows * ld * 2,
        };
    }
    let (bm, bn, nwarp, lpr, csplit, scratch) = match path {
        "scalar" => {
            let lpr = (wave / 16).max(hd.div_ceil(32)).next_power_of_two();
            let rw = wave / lpr;
            (rw * 4, 32, 4, lpr, 1, rw * 32 * 4)
        }
        "mma_sync" => (64, if hd > 128 { 32 } else { 64 }, 4, 1, 1, 0),
        _ => {
            // WMMA fragments hold 8 accumulators a lane (MFMA 4) and RDNA has no AGPRs: 32-key tiles,
            // and from hd128 on two waves share 16 query rows, each accumulating half of O (gfx1100
            // spilled at hd128 and both RDNA targets at hd256 with whole rows per wave); k loop of Q.K^T
            // not unrolled (attn_prefill.hip).
            let wmma = path == "wmma";
            let csplit = if wmma && hd >= 128 { 2 } else { 1 };
            let nwarp = if hd > 128 && !wmma { 2 } else { 4 };
            let bn = match (wmma, hd) {
                (true, 256) => 16, // gfx1100 causal still spilled 64 B with 32 keys
                (true, _) | (false, 256) => 32,
                _ => 64,
            };
            (16 * nwarp / csplit, bn, nwarp, 1, csplit, 16 * (bn + 8) * 2)
        }
    };
    Tiles {
        bm,
        bn,
        nwarp,
        lpr,
        csplit,
        mt: 1,
        qreg: false,
        stages: 1,
        shared: (bm + 2 * bn) * ld * 2 + nwarp * scratch,
    }
}

pub fn spec(
    head_dim: usize,
    dtype: &str,
    causal: bool,
    path: &str,
    wave: u32,
) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("head_dim", head_dim.into()),
            ("dtype", dtype.into()),
            ("causal", causal.into()),
            ("path", path.into()),
            ("pipe", (path == "mma_sync" && mma_sync_pipeline()).into()),
        ],
        wave,
    )
}

/// Check the shapes shared by prefill and decode; returns (hq, total_q).
pub(crate) fn check_shapes<T: bytemuck::Pod>(
    op: &'static str,
    q: &Buffer<T>,
    out: &Buffer<T>,
    l: &PagedLayout,
    nseq_table: usize,
    batch: &Batch,
    hq: usize,
    p: &AttnParams,
) -> Result<()> {
    check_head_dim(op, l.head_dim)?;
    l.validate(op)?;
    if hq == 0 || hq % l.n_kv_heads != 0 {
        return Err(Error::op(
            op,
            format!(
                "{hq} query heads is not a multiple of {} kv heads",
                l.n_kv_heads
            ),
        ));
    }
    let n = batch.total_q() * hq * l.head_dim;
    if q.len() != n || out.len() != n {
        return Err(Error::op(
            op,
            format!(
                "q has {} and out {} elements; need {} tokens x {hq} heads x {}",
                q.len(),
                out.len(),
                batch.total_q(),
                l.head_dim
            ),
        ));
    }
    if !(p.scale.is_finite() && p.softcap >= 0.0 && p.softcap.is_finite()) {
        return Err(Error::op(
            op,
            format!("bad scale {} or softcap {}", p.scale, p.softcap),
        ));
    }
    check_cache_covers(op, l, nseq_table, &batch.kv_lens_host)
}

/// Prefill attention: `out[t][h] = softmax(q[t][h] . K^T * scale) V` over the sequence's cached keys.
/// `path` picks the matrix path (None: the target's native one).
pub fn prefill<T: Element>(
    dev: &Device,
    stream: &Stream,
    q: &Buffer<T>,
    cache: &PagedCache<T>,
    batch: &Batch,
    hq: usize,
    out: &mut Buffer<T>,
    p: &AttnParams,
    path: Option<&str>,
) -> Result<()> {
    check_dtype16("attn_prefill", T::DTYPE)?;
    let l = cache.layout;
    check_shapes("attn_prefill", q, out, &l, cache.nseq(), batch, hq, p)?;
    let t = dev.target();
    let path = path.unwrap_or_else(|| native_path(t));
    if !path_applies(path, t) {
        return Err(Error::op(
            "attn_prefill",
            format!(
                "path {path} does not run on {t}; use scalar or {}",
                native_path(t)
            ),
        ));
    }
    if batch.total_q() == 0 {
        return Ok(());
    }
    let tl = tiles(path, l.head_dim, t.wave_size);
    let kern = Jit::global().kernel(
        dev,
        &spec(l.head_dim, T::DTYPE, p.causal, path, t.wave_size)?,
    )?;
    let grid = [
        batch.max_q_len().div_ceil(tl.bm) as u32,
        hq as u32,
        batch.nseq() as u32,
    ];
    let cfg = LaunchConfig {
        grid,
        block: [(tl.nwarp as u32) * t.wave_size, 1, 1],
        shared_bytes: tl.shared as u32,
    };
    kern.launch(
        stream,
        cfg,
        &[
            q.into(),
            (&cache.k).into(),
            (&cache.v).into(),
            (&mut *out).into(),
            (&batch.cu_q).into(),
            (&batch.kv_lens).into(),
            (&cache.block_tables).into(),
            (l.max_pages as i32).into(),
            (l.page_size as i32).into(),
            (hq as i32).into(),
            (l.n_kv_heads as i32).into(),
            p.scale.into(),
            p.softcap.into(),
            p.window.into(),
        ],
    )
}

/// CPU reference (f64) over the paged cache, for the query tokens `t` with `keep(t)` (others stay 0).
/// `q`, `k_cache`, `v_cache` as f32; returns `[total_q][hq][head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    l: &PagedLayout,
    block_tables: &[i32],
    cu_q: &[i32],
    kv_lens: &[i32],
    hq: usize,
    p: &AttnParams,
    keep: impl Fn(usize) -> bool,
) -> Vec<f32> {
    let hd = l.head_dim;
    let g = hq / l.n_kv_heads;
    let mut out = vec![0.0f32; q.len()];
    let mut sc = Vec::new();
    for b in 0..kv_lens.len() {
        let (q0, q1, kv) = (cu_q[b] as usize, cu_q[b + 1] as usize, kv_lens[b] as usize);
        for t in q0..q1 {
            if !keep(t) {
                continue;
            }
            let pos = (kv - (q1 - q0) + (t - q0)) as i64;
            for h in 0..hq {
                let qr = &q[(t * hq + h) * hd..][..hd];
                sc.clear();
                for key in 0..kv {
                    let vis = (!p.causal || key as i64 <= pos)
                        && (p.window <= 0 || key as i64 > pos - p.window as i64);
                    if !vis {
                        continue;
                    }
                    let kr = &k_cache[l.token_offset(block_tables, b, h / g, key)..][..hd];
                    let mut s = qr
                        .iter()
                        .zip(kr)
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
                        * p.scale as f64;
                    if p.softcap > 0.0 {
                        s = p.softcap as f64 * (s / p.softcap as f64).tanh();
                    }
                    sc.push((key, s));
                }
                let m = sc.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|x| (x.1 - m).exp()).sum();
                let o = &mut out[(t * hq + h) * hd..][..hd];
                let mut acc = vec![0.0f64; hd];
                for &(key, s) in &sc {
                    let w = (s - m).exp() / z;
                    let vr = &v_cache[l.token_offset(block_tables, b, h / g, key)..][..hd];
                    for d in 0..hd {
                        acc[d] += w * vr[d] as f64;
                    }
                }
                for d in 0..hd {
                    o[d] = acc[d] as f32;
                }
            }
        }
    }
    out
}
