//! Decode attention over the paged cache (flash-decoding): `nq` query tokens per sequence (1 to a few),
//! GQA-aware (a block reads each K/V page of its kv head once for all its query heads and tokens), split
//! along the sequence (splits sized to fill the device), then a merge: by the last block of each row group
//! to finish, inside the decode launch (up to [`FUSE_MAX_SPLITS`] splits), or by a merge kernel (skipped
//! with one split: the decode kernel then writes the output). One launch serves sequences of different
//! lengths.
//!
//! Two kernels share that split and the parts: `attn_decode` (SIMT: per-lane dot products, every target)
//! and `attn_decode_mc` (the target's matrix cores through attn_mm.h's MMSync / MMAmd fragments, 16 query
//! rows per block). A plan picks the matrix-core kernel where the target has matrix cores, except for
//! short batches at head dims of 128 and more ([`DecodeKernel::for_batch`]; `ROCMFORGE_DECODE=simt`
//! keeps the SIMT kernel, `=mc` the matrix-core one).

use super::prefill::check_shapes;
use super::rope::{Rope, RopeStyle};
use super::{check_dtype16, AttnParams, Batch, PagedCache, DTYPES16, DTYPE_PARAM, HEAD_DIM_PARAM};
use crate::error::{Error, Result};
use crate::gpu::Target;
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_preamble, no_rules, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::quantized::gemv_q8;
use crate::ops::Element;

/// Up to this many bytes of K and V in a batch (sequences x the longest context x kv heads x head_dim x
/// 2 x 2 bytes), head dims of 128 and more decode on the SIMT kernel ([`DecodeKernel::for_batch`]).
/// H200, bf16, the attention bench's decode rows (ninth session), SIMT time / matrix-core time: MQA
/// 4/1 hd256 B = 1 at contexts 64-4096 (up to 4 MiB) 0.70-0.90, B = 8 at 128 and 512 0.69-0.74; GQA
/// 32/8 hd128 B = 1 at 256 (1 MiB) 0.84, at 1024 (4 MiB) 0.97; beyond, the matrix-core kernel won:
/// hd128 B = 1 at 4096 (16 MiB) 1.32, B = 16 x 4096 1.35, MQA hd256 B = 16 x 8192 1.49 (eighth
/// session). At hd64 it won at every size (1.16-1.56).
pub const SIMT_MAX_KV_BYTES: usize = 4 << 20;
/// Query rows (heads of a kv group x tokens) one block handles.
pub const ROWS: &[i64] = &[1, 4, 8];
/// Waves per decode block (`DEC_NW` in attn_decode.hip).
const NW: usize = 4;
/// SIMT decode blocks to aim for per compute unit (over batch x kv heads x row groups x splits): enough
/// that the last, partial round of blocks costs little, few enough that the parts stay small.
const BLOCKS_PER_CU: usize = 8;
/// Up to this many splits, the decode launch merges its own parts (the last block of each row group to
/// finish reads every split's part of its rows): one launch instead of two, which is what a short decode
/// step, bound by launches, wants. With more parts per row the merge kernel's grid of one block per row
/// spreads that reading over the device.
pub const FUSE_MAX_SPLITS: usize = 16;

/// Tokens one block reads per iteration of its waves: the kernel's `DEC_NW * TPW * KT` (a wave reads
/// TPW = wave / pow2ceil(head_dim / 8) tokens per 16-byte load and KT tokens per lane per iteration).
pub fn chunk_tokens(head_dim: usize, rows: usize, wave: usize) -> usize {
    let tpw = (wave / (head_dim / 8).next_power_of_two()).max(1);
    let kt = if rows >= 8 { 2 } else { 4 };
    NW * tpw * kt
}

/// cp.async stages per wave on NVIDIA sm_80+ (`DEC_ST` in attn_decode.hip).
const STAGES: usize = 4;

/// Dynamic shared memory of a decode block: the per-wave cp.async ring of K/V rows where the target
/// has it (matrix cores of the mma.sync kind, the kernel's `RF_MMA_SYNC`), none elsewhere.
pub fn shared_bytes(target: &crate::gpu::Target, rows: usize) -> usize {
    if target.matrix_cores() != crate::gpu::MatrixCores::MmaSync {
        return 0;
    }
    let kt = if rows >= 8 { 2 } else { 4 };
    NW * STAGES * kt * 2 * target.wave_size as usize * 16
}

/// SIMT splits per sequence: fill the device with about `BLOCKS_PER_CU` blocks per compute unit
/// (`ROCMFORGE_DECODE_BLOCKS_PER_CU` overrides it, for experiments), each split at least two block
/// iterations long.
pub fn split_count(blocks_per_split: usize, cus: usize, max_len: usize, chunk: usize) -> usize {
    let per_cu = std::env::var("ROCMFORGE_DECODE_BLOCKS_PER_CU")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(BLOCKS_PER_CU);
    let want = (per_cu * cus).div_ceil(blocks_per_split.max(1));
    want.min(max_len.div_ceil(2 * chunk)).max(1)
}

/// Splits for the matrix-core kernel, whose blocks (16 rows, K/V stages of 40-76 KiB) are few per compute
/// unit: `n` blocks per split (sequences x kv heads x row groups), `capacity` blocks resident on the
/// device at once, splits of whole block iterations of `chunk` tokens. The count that minimizes rounds of
/// blocks x (a wave's tiles + 2 tiles' worth of fixed cost: Q, the first copy's latency, the merge),
/// the smallest on a tie: it keeps the last round full (H200, eighth session, hd128 4096 tokens x 16
/// sequences: 3 splits 384 blocks 0.083 ms, 4 splits 512 blocks 0.102 ms, 5 splits 0.086 ms).
///
/// More than one split also pays the merge (the last block of a row group reads every split's part):
/// [`MC_MERGE_COST`] block iterations once, which keeps short contexts in one split (H200, thirteenth
/// session: SmolLM2 tg128 from an empty cache 1608-1631 t/s with one split against 1515-1531 with the
/// two the rule gave without it; at depth 1024 the rule's 16 splits 1384-1402 against one 1136-1151).
pub fn mc_split_count(n: usize, capacity: usize, max_len: usize, chunk: usize) -> usize {
    let chunk = chunk.max(1);
    let max_s = max_len.div_ceil(chunk).max(1);
    let merge = env_merge_cost().unwrap_or(MC_MERGE_COST);
    (1..=max_s)
        .min_by_key(|&s| {
            let rounds = (n.max(1) * s).div_ceil(capacity.max(1));
            rounds * (max_len.div_ceil(s).div_ceil(chunk) + 2) + if s > 1 { merge } else { 0 }
        })
        .unwrap_or(1)
}

/// The merge's cost in block iterations in [`mc_split_count`].
pub const MC_MERGE_COST: usize = 2;

/// `ROCMFORGE_DECODE_MERGE_COST=N`: the merge's cost in [`mc_split_count`] (0: the rule before the
/// merge was counted), for experiments.
fn env_merge_cost() -> Option<usize> {
    std::env::var("ROCMFORGE_DECODE_MERGE_COST")
        .ok()?
        .trim()
        .parse::<usize>()
        .ok()
}

pub static FAMILY: Family = Family {
    name: "attn_decode",
    doc: "flash-decoding split kernel over the paged cache (GQA rows per block, partial results)",
    body: "attn_decode.hip",
    instance: "attn_decode.inst",
    params: &[
        HEAD_DIM_PARAM,
        DTYPE_PARAM,
        ParamDef {
            name: "rows",
            kind: ParamKind::Int {
                prefix: "r",
                values: ROWS,
            },
            doc: "query rows per block",
        },
    ],
    validate: no_rules,
    applies: any_target,
    preamble: |_| append_preamble(),
};

/// What the decode kernels' fused append needs before their body: rope.hip (`rope_pairs`, with which they
/// rotate the block's query rows and the appended K rows as kv_append's `rope_group` does).
fn append_preamble() -> String {
    ["rope.hip"]
        .iter()
        .map(|f| crate::jit::template::template_text(f).unwrap_or_else(|e| format!("#error {e}\n")))
        .collect()
}

/// Threads of an `attn_merge` block and the columns of a row it merges (`MG_THREADS`, `MG_COLS` in
/// attn_merge.hip): the grid is rows x head_dim / MERGE_COLS blocks.
const MERGE_THREADS: u32 = 256;
const MERGE_COLS: usize = 16;

pub static MERGE: Family = Family {
    name: "attn_merge",
    doc: "merge of flash-decoding partial results",
    body: "attn_merge.hip",
    instance: "attn_merge.inst",
    params: &[ParamDef {
        name: "dtype",
        kind: ParamKind::Choice { values: DTYPES16 },
        doc: "output element type",
    }],
    validate: no_rules,
    applies: any_target,
    preamble: no_preamble,
};

/// Matrix paths of the matrix-core decode kernel (`attn_decode_mc`).
pub const MC_PATHS: &[&str] = &["mma_sync", "mfma", "wmma"];
/// Its tile sets ([`McTiles::of`]).
pub const MC_TILE_SETS: &[&str] = &["std", "wide"];

pub static MC_FAMILY: Family = Family {
    name: "attn_decode_mc",
    doc: "flash-decoding split kernel on the matrix cores (16 GQA rows per block, partial results)",
    body: "attn_decode.hip",
    instance: "attn_decode_mc.inst",
    params: &[
        HEAD_DIM_PARAM,
        DTYPE_PARAM,
        ParamDef {
            name: "path",
            kind: ParamKind::Choice { values: MC_PATHS },
            doc: "matrix path (the target's matrix cores)",
        },
        ParamDef {
            name: "tiles",
            kind: ParamKind::Choice { values: MC_TILE_SETS },
            doc: "tile set: std (fits 99 KiB of shared memory), wide (more waves a block, 140 KiB; mma_sync at head_dim 128 / 256)",
        },
    ],
    validate: |s| match (s.str("path"), s.wave()) {
        ("mfma", 32) => Err("the mfma path needs wave64".into()),
        ("wmma", 64) | ("mma_sync", 64) => Err(format!("the {} path needs wave32", s.str("path"))),
        ("wmma", _) if s.int("head_dim") > 128 => Err(WMMA_HD256.into()),
        (path, _) if s.str("tiles") == "wide" && !McTiles::has_wide(path, s.int("head_dim") as usize) => {
            Err("wide tiles exist for the mma_sync path at head_dim 128 and 256 only".into())
        }
        _ => Ok(()),
    },
    applies: |s, t| {
        super::prefill::native_path(t) == s.str("path")
            && (s.str("tiles") == "std" || McTiles::wide_fits(t, s.str("path"), s.int("head_dim") as usize))
    },
    preamble: |s| {
        let t = McTiles::of(s.str("path"), s.int("head_dim") as usize, s.str("tiles") == "wide");
        format!(
            "#define RF_DMC_BN {}\n#define RF_DMC_NW {}\n#define RF_DMC_ST {}\n#define RF_ATTN_LPR 1\n#define RF_ATTN_CSPLIT 1\n",
            t.bn, t.nwarp, t.stages
        ) + &super::mm_header()
            + &append_preamble()
    },
};

/// Why RDNA runs head_dim 256 on the SIMT decode kernel: a wave32 lane would hold O's 128 accumulators
/// of its 16 rows beside the fragments, and gfx1100 / gfx1200 spill (HIP 6.4, `compile --report`).
const WMMA_HD256: &str = "the wmma decode path holds at most head_dim 128 (a wave32 lane's O of 16 rows at 256 spills on RDNA); the SIMT kernel serves 256";

/// Tiles of the matrix-core decode kernel; the one place they are decided (the kernel reads them as
/// `RF_DMC_*` defines, the launcher sizes grid, splits and shared memory from them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McTiles {
    /// Keys per tile (a wave's unit of work; a multiple of 16).
    pub bn: usize,
    /// Waves per block, each over its own tiles.
    pub nwarp: usize,
    /// K/V stages per wave: the cp.async ring on mma_sync (stages - 1 tiles in flight), 1 elsewhere.
    pub stages: usize,
    /// Dynamic shared memory bytes: Q's 16 rows, then every wave's stages and P scratch.
    pub shared: usize,
}

impl McTiles {
    /// The standard set fits the 64 KiB of LDS AMD gives a workgroup and the 99 KiB of sm_86/89 (H200
    /// sweep, eighth session, `ROCMFORGE_DECODE_MC_TILES`: docs/runs/s8/d/sweep.txt):
    /// - mma_sync: head_dim 64: 32-key tiles, 4 waves, 2 stages (6 % faster than 16-key tiles at
    ///   B=16); 80-128: 16 keys, 2 waves, 3 stages (two tiles in flight a wave; 2-4 % faster than 4
    ///   waves of 2 stages at B=16-64); 256: 16 keys, 2 waves, 2 stages (76 KiB).
    /// - mfma / wmma (one stage, a tile loaded through registers): 16 keys, 4 waves (2 at 256).
    ///
    /// `wide` (mma_sync at head_dim 128 and 256, where the device gives a block 140 KiB: sm_80, sm_90):
    /// 4 waves of 2 stages, hd128 with 32-key tiles, hd256 with 16 (H200 sweep, eleventh session, call
    /// A: B=16 ctx 4096 hd128 82 % of copy against 76 %; MQA hd256 B=16 ctx 8192 63 % against 53 %).
    ///
    /// `ROCMFORGE_DECODE_MC_TILES=bn,nwarp,stages` replaces either set, for experiments (the instance's
    /// source, and so its cache key, changes with them; its name does not).
    pub fn of(path: &str, head_dim: usize, wide: bool) -> McTiles {
        let (mut bn, mut nwarp, mut stages) = match (path, head_dim) {
            ("mma_sync", 128) if wide => (32, 4, 2),
            ("mma_sync", 256) if wide => (16, 4, 2),
            ("mma_sync", 64) => (32, 4, 2),
            ("mma_sync", 80..=128) => (16, 2, 3),
            ("mma_sync", _) => (16, 2, 2),
            (_, hd) => (16, if hd > 128 { 2 } else { 4 }, 1),
        };
        if let Some((b, w, st)) = env_mc_tiles() {
            if path == "mma_sync" || st == 1 {
                (bn, nwarp, stages) = (b, w, st);
            }
        }
        let ld = head_dim + 8;
        let scratch = if path == "mma_sync" {
            0
        } else {
            16 * (bn + 8) * 2
        };
        let shared = 16 * ld * 2 + nwarp * (stages * 2 * bn * ld * 2 + scratch);
        McTiles {
            bn,
            nwarp,
            stages,
            shared,
        }
    }

    /// Whether a wide tile set exists for `path` at `head_dim`.
    pub fn has_wide(path: &str, head_dim: usize) -> bool {
        path == "mma_sync" && matches!(head_dim, 128 | 256)
    }

    /// Whether `t` runs the wide tiles of `path` at `head_dim`: they exist and fit the shared memory
    /// a block of `t` may opt into.
    pub fn wide_fits(t: &Target, path: &str, head_dim: usize) -> bool {
        Self::has_wide(path, head_dim)
            && Self::of(path, head_dim, true).shared <= t.shared_per_block_optin as usize
    }
}

/// `ROCMFORGE_DECODE_MC_TILES=bn,nwarp,stages` when it parses to a shape the kernel takes (bn a
/// multiple of 16 up to 64, 1-8 waves, 1-4 stages); anything else is ignored.
fn env_mc_tiles() -> Option<(usize, usize, usize)> {
    let v = std::env::var("ROCMFORGE_DECODE_MC_TILES").ok()?;
    let n: Vec<usize> = v
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    match n[..] {
        [b, w, st]
            if b % 16 == 0
                && (16..=64).contains(&b)
                && (1..=8).contains(&w)
                && (1..=4).contains(&st) =>
        {
            Some((b, w, st))
        }
        _ => None,
    }
}

/// `ROCMFORGE_DECODE_SPLITS=N`: N splits per sequence instead of the rule's (for experiments; clamped to
/// one tile of keys per split at least); anything but a positive number is ignored.
fn env_splits() -> Option<usize> {
    std::env::var("ROCMFORGE_DECODE_SPLITS")
        .ok()?
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
}

/// What `ROCMFORGE_DECODE` asks for, parsed here only (for [`DecodeKernel::native`] and
/// [`DecodeKernel::for_batch`], at plan time): `simt` or `mc`; anything else leaves the choice to the
/// rules.
#[derive(Clone, Copy, PartialEq)]
enum DecodeOverride {
    Simt,
    Mc,
}

fn decode_override() -> Option<DecodeOverride> {
    match std::env::var("ROCMFORGE_DECODE").as_deref().map(str::trim) {
        Ok("simt") => Some(DecodeOverride::Simt),
        Ok("mc") => Some(DecodeOverride::Mc),
        _ => None,
    }
}

/// Which decode kernel a plan launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKernel {
    /// `attn_decode`: per-lane dot products, every target.
    Simt,
    /// `attn_decode_mc` on this matrix path (an entry of [`MC_PATHS`]).
    Mc(&'static str),
}

impl DecodeKernel {
    /// The matrix-core kernel where the target has matrix cores for `head_dim` (RDNA: up to 128),
    /// unless `ROCMFORGE_DECODE=simt`.
    pub fn native(t: &Target, head_dim: usize) -> DecodeKernel {
        Self::native_with(t, head_dim, decode_override())
    }

    fn native_with(t: &Target, head_dim: usize, o: Option<DecodeOverride>) -> DecodeKernel {
        let path = super::prefill::native_path(t);
        let simt = o == Some(DecodeOverride::Simt);
        if path == "scalar" || simt || (path == "wmma" && head_dim > 128) {
            DecodeKernel::Simt
        } else {
            DecodeKernel::Mc(path)
        }
    }

    /// The kernel for a batch of `nseq` sequences of up to `max_kv` keys over `n_kv_heads` heads:
    /// [`Self::native`], except that head dims of 128 and more with at most [`SIMT_MAX_KV_BYTES`]
    /// of K and V keep the SIMT kernel, which spreads a short context over more lanes
    /// (`ROCMFORGE_DECODE=mc` forces the matrix-core kernel wherever it runs).
    pub fn for_batch(
        t: &Target,
        head_dim: usize,
        n_kv_heads: usize,
        nseq: usize,
        max_kv: usize,
    ) -> DecodeKernel {
        let o = decode_override();
        let k = Self::native_with(t, head_dim, o);
        let kv_bytes = nseq * max_kv * n_kv_heads * head_dim * 4;
        if Self::short_batch_simt(k, head_dim, o) && kv_bytes <= SIMT_MAX_KV_BYTES {
            DecodeKernel::Simt
        } else {
            k
        }
    }

    /// Whether [`Self::for_batch`] can turn the target's kernel `k` into the SIMT one for short batches.
    fn short_batch_simt(k: DecodeKernel, head_dim: usize, o: Option<DecodeOverride>) -> bool {
        matches!(k, DecodeKernel::Mc(_)) && head_dim >= 128 && o != Some(DecodeOverride::Mc)
    }

    /// Every kernel [`Self::for_batch`] can pick for `head_dim` on `t` (what a model compiles).
    pub fn candidates(t: &Target, head_dim: usize) -> Vec<DecodeKernel> {
        let o = decode_override();
        let k = Self::native_with(t, head_dim, o);
        let mut v = vec![k];
        if Self::short_batch_simt(k, head_dim, o) {
            v.push(DecodeKernel::Simt);
        }
        v
    }

    /// Query rows (of one kv head's G heads x nq tokens) per block, for `rows_total` of them.
    pub fn rows(self, rows_total: usize) -> usize {
        match self {
            DecodeKernel::Mc(_) => 16,
            DecodeKernel::Simt => ROWS
                .iter()
                .map(|&r| r as usize)
                .find(|&r| r >= rows_total)
                .unwrap_or(8),
        }
    }

    /// The instance this kernel runs on `t` for `rows_total` rows per kv head.
    pub fn spec(
        self,
        head_dim: usize,
        dtype: &str,
        rows_total: usize,
        t: &Target,
    ) -> Result<KernelSpec> {
        match self {
            DecodeKernel::Simt => spec(head_dim, dtype, self.rows(rows_total), t.wave_size),
            DecodeKernel::Mc(path) => KernelSpec::new(
                &MC_FAMILY,
                &[
                    ("head_dim", head_dim.into()),
                    ("dtype", dtype.into()),
                    ("path", path.into()),
                    (
                        "tiles",
                        if McTiles::wide_fits(t, path, head_dim) {
                            "wide"
                        } else {
                            "std"
                        }
                        .into(),
                    ),
                ],
                t.wave_size,
            ),
        }
    }
}

pub fn spec(head_dim: usize, dtype: &str, rows: usize, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("head_dim", head_dim.into()),
            ("dtype", dtype.into()),
            ("rows", rows.into()),
        ],
        wave,
    )
}

/// How a decode batch is split, with its scratch buffers. Build once per batch shape, reuse.
pub struct DecodePlan {
    pub kernel: DecodeKernel,
    pub head_dim: usize,
    pub nq: usize,
    pub hq: usize,
    pub rows: usize,
    pub row_groups: usize,
    pub splits: usize,
    pub split_tokens: usize,
    /// Waves per block and dynamic shared bytes of the kernel's launch (decided with the plan).
    waves: usize,
    shared: usize,
    /// Merge the parts inside the decode launch (set from [`FUSE_MAX_SPLITS`]; a caller may clear it
    /// to compare with the merge kernel).
    pub fused_merge: bool,
    o_part: Buffer<f32>,
    ml_part: Buffer<f32>,
    /// Blocks finished per (sequence, kv head, row group), zero between launches.
    counters: Buffer<i32>,
}

impl DecodePlan {
    /// Kernel launches one [`decode`] call makes.
    pub fn launches(&self) -> usize {
        if self.splits > 1 && !self.fused_merge {
            2
        } else {
            1
        }
    }
}

impl DecodePlan {
    /// `batch` must have the same number `nq` of query tokens in every sequence; the kernel of
    /// [`DecodeKernel::for_batch`].
    pub fn new(
        dev: &Device,
        batch: &Batch,
        hq: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Result<DecodePlan> {
        let kernel = DecodeKernel::for_batch(
            dev.target(),
            head_dim,
            n_kv_heads,
            batch.nseq(),
            batch.max_kv_len(),
        );
        Self::with_kernel(dev, batch, hq, n_kv_heads, head_dim, kernel)
    }

    /// The same with the kernel chosen by the caller (the SIMT kernel runs on every target; `Mc` only
    /// on its matrix path's targets).
    pub fn with_kernel(
        dev: &Device,
        batch: &Batch,
        hq: usize,
        n_kv_heads: usize,
        head_dim: usize,
        kernel: DecodeKernel,
    ) -> Result<DecodePlan> {
        if let DecodeKernel::Mc(path) = kernel {
            if super::prefill::native_path(dev.target()) != path {
                return Err(Error::op(
                    "attn_decode",
                    format!(
                        "the {path} decode kernel does not run on {}",
                        dev.target().full_name()
                    ),
                ));
            }
            if path == "wmma" && head_dim > 128 {
                return Err(Error::op("attn_decode", WMMA_HD256));
            }
        }
        let nseq = batch.nseq();
        let nq = batch.max_q_len();
        if nq == 0 || batch.total_q() != nq * nseq {
            return Err(Error::op(
                "attn_decode",
                format!(
                    "every sequence needs the same number of query tokens (got {:?})",
                    batch.cu_q_host
                ),
            ));
        }
        if n_kv_heads == 0 || hq % n_kv_heads != 0 {
            return Err(Error::op(
                "attn_decode",
                format!("{hq} query heads is not a multiple of {n_kv_heads} kv heads"),
            ));
        }
        let rows_total = hq / n_kv_heads * nq;
        let rows = kernel.rows(rows_total);
        let row_groups = rows_total.div_ceil(rows);
        let t = dev.target();
        let (chunk, waves, shared) = match kernel {
            DecodeKernel::Simt => (
                chunk_tokens(head_dim, rows, t.wave_size as usize),
                NW,
                shared_bytes(t, rows),
            ),
            DecodeKernel::Mc(path) => {
                let m = McTiles::of(path, head_dim, McTiles::wide_fits(t, path, head_dim));
                (m.bn * m.nwarp, m.nwarp, m.shared)
            }
        };
        let max_len = batch.max_kv_len().max(1);
        let cus = if t.compute_units > 0 {
            t.compute_units as usize
        } else {
            108
        };
        let blocks_per_split = nseq * n_kv_heads * row_groups;
        let splits = match kernel {
            DecodeKernel::Simt => split_count(blocks_per_split, cus, max_len, chunk),
            DecodeKernel::Mc(_) => {
                // blocks resident per compute unit as shared memory allows (the per-block opt-in
                // limit standing in for the unit's)
                let smem = t.shared_per_block_optin.max(t.shared_per_block) as usize;
                let resident = (smem / shared.max(1)).clamp(1, 8);
                mc_split_count(blocks_per_split, resident * cus, max_len, chunk)
            }
        };
        let splits = env_splits()
            .unwrap_or(splits)
            .clamp(1, max_len.div_ceil(chunk));
        let split_tokens = max_len.div_ceil(splits).div_ceil(chunk) * chunk;
        let splits = max_len.div_ceil(split_tokens);
        let nrows = nseq * nq * hq;
        // one split: the decode kernel writes the output itself (no parts, no merge)
        let parts = if splits > 1 { splits } else { 0 };
        let mut counters = dev.alloc::<i32>(nseq * n_kv_heads * row_groups)?;
        counters.fill_bytes(0)?;
        Ok(DecodePlan {
            kernel,
            head_dim,
            nq,
            hq,
            rows,
            row_groups,
            splits,
            split_tokens,
            waves,
            shared,
            fused_merge: splits <= FUSE_MAX_SPLITS,
            o_part: dev.alloc((nrows * parts * head_dim).max(1))?,
            ml_part: dev.alloc((nrows * parts * 2).max(1))?,
            counters,
        })
    }
}

/// Decode attention: `out` `[nseq * nq][hq][head_dim]`; query i of sequence b is at position kv_len - nq + i.
///
/// With `q8`, the kernel that writes `out` also writes it quantized to 8 bits there, in the layout of
/// [`gemv_q8::quantize_x`] for a `(nseq * nq) × (hq * head_dim)` matrix (bit-equal to quantizing
/// `out` with it): the next GEMV's input without a launch of its own.
#[allow(clippy::too_many_arguments)]
pub fn decode<T: Element>(
    dev: &Device,
    stream: &Stream,
    q: &Buffer<T>,
    cache: &PagedCache<T>,
    batch: &Batch,
    plan: &mut DecodePlan,
    out: &mut Buffer<T>,
    p: &AttnParams,
    q8: Option<&mut Buffer<u8>>,
) -> Result<()> {
    decode_impl(dev, stream, q, cache, None, batch, plan, out, p, q8)
}

/// The step's new K and V rows for [`decode_append`]: `k_new` / `v_new` `[nseq * nq][n_kv_heads][head_dim]`
/// (row b * nq + i is sequence b's token i, written at slot kv_len - nq + i), `pos` one position per
/// row, `rope` the rotation of K and Q (None: neither rotates).
pub struct DecodeAppend<'a, T: bytemuck::Pod> {
    pub k_new: &'a Buffer<T>,
    pub v_new: &'a Buffer<T>,
    pub pos: &'a Buffer<i32>,
    pub rope: Option<&'a Rope>,
}

/// [`kv_cache::append_rope_q`](super::kv_cache::append_rope_q) and [`decode`] in one launch: the decode
/// blocks whose split holds a new token's slot write its K (rotated) and V into the cache before reading
/// it, and every block rotates the query rows it loads (`q` stays as given, unrotated). `batch.kv_lens`
/// counts the new tokens. The cache and the output equal those of the two launches (the same arithmetic;
/// `gpu_attention` checks both).
#[allow(clippy::too_many_arguments)]
pub fn decode_append<T: Element>(
    dev: &Device,
    stream: &Stream,
    q: &Buffer<T>,
    cache: &mut PagedCache<T>,
    new: &DecodeAppend<T>,
    batch: &Batch,
    plan: &mut DecodePlan,
    out: &mut Buffer<T>,
    p: &AttnParams,
    q8: Option<&mut Buffer<u8>>,
) -> Result<()> {
    let l = cache.layout;
    let rows = batch.total_q() * l.n_kv_heads * l.head_dim;
    if new.k_new.len() != rows || new.v_new.len() != rows || new.pos.len() < batch.total_q() {
        return Err(Error::op(
            "attn_decode",
            format!(
                "the fused append needs k_new and v_new of {} tokens x {} kv heads x {} ({rows} elements; got {} and {}) and a position per token ({} given)",
                batch.total_q(),
                l.n_kv_heads,
                l.head_dim,
                new.k_new.len(),
                new.v_new.len(),
                new.pos.len()
            ),
        ));
    }
    if let Some(r) = new.rope {
        r.validate("attn_decode", l.head_dim)?;
    }
    decode_impl(dev, stream, q, cache, Some(new), batch, plan, out, p, q8)
}

#[allow(clippy::too_many_arguments)]
fn decode_impl<T: Element>(
    dev: &Device,
    stream: &Stream,
    q: &Buffer<T>,
    cache: &PagedCache<T>,
    new: Option<&DecodeAppend<T>>,
    batch: &Batch,
    plan: &mut DecodePlan,
    out: &mut Buffer<T>,
    p: &AttnParams,
    q8: Option<&mut Buffer<u8>>,
) -> Result<()> {
    check_dtype16("attn_decode", T::DTYPE)?;
    let l = cache.layout;
    check_shapes("attn_decode", q, out, &l, cache.nseq(), batch, plan.hq, p)?;
    let (xq, xs) = match q8 {
        None => (0, 0),
        Some(b) => {
            let (m, cols) = (batch.total_q(), plan.hq * l.head_dim);
            if b.len() < gemv_q8::act_bytes(m, cols)
                || b.device_ptr() % 16 != 0
                || l.head_dim % 16 != 0
            {
                return Err(Error::op(
                    "attn_decode",
                    format!(
                        "the 8-bit output needs {} bytes at a 16-byte aligned address and a head_dim that is a multiple of 16",
                        gemv_q8::act_bytes(m, cols)
                    ),
                ));
            }
            let base = b.device_ptr();
            (base, base + (m * cols) as u64)
        }
    };
    if batch.max_q_len() != plan.nq || batch.total_q() != plan.nq * batch.nseq() {
        return Err(Error::op("attn_decode", "batch does not match the plan"));
    }
    let parts = if plan.splits > 1 { plan.splits } else { 0 };
    if plan.split_tokens * plan.splits < batch.max_kv_len()
        || plan.o_part.len() != (batch.total_q() * plan.hq * parts * l.head_dim).max(1)
        || plan.counters.len() < batch.nseq() * l.n_kv_heads * plan.row_groups
    {
        return Err(Error::op(
            "attn_decode",
            "plan was built for a smaller batch",
        ));
    }
    if plan.head_dim != l.head_dim {
        return Err(Error::op(
            "attn_decode",
            format!(
                "plan was built for head_dim {}, the cache has {}",
                plan.head_dim, l.head_dim
            ),
        ));
    }
    let wave = dev.target().wave_size;
    let rows_total = plan.hq / l.n_kv_heads * plan.nq;
    let kern = Jit::global().kernel(
        dev,
        &plan
            .kernel
            .spec(l.head_dim, T::DTYPE, rows_total, dev.target())?,
    )?;
    // the fused append's rotation: -1 no append, 0 append without RoPE, 1 normal, 2 neox
    let (rope_code, n_rot, log2_base) = match new {
        None => (-1i32, 0i32, 0.0f32),
        Some(DecodeAppend { rope: None, .. }) => (0, 0, 0.0),
        Some(DecodeAppend { rope: Some(r), .. }) => (
            match r.style {
                RopeStyle::Normal => 1,
                RopeStyle::Neox => 2,
            },
            r.n_rot as i32,
            r.log2_base(),
        ),
    };
    let grid = [
        plan.splits as u32,
        (l.n_kv_heads * plan.row_groups) as u32,
        batch.nseq() as u32,
    ];
    let cfg = LaunchConfig {
        grid,
        block: [plan.waves as u32 * wave, 1, 1],
        shared_bytes: plan.shared as u32,
    };
    kern.launch(
        stream,
        cfg,
        &[
            q.into(),
            (&cache.k).into(),
            (&cache.v).into(),
            (&cache.block_tables).into(),
            (&batch.kv_lens).into(),
            (l.max_pages as i32).into(),
            (l.page_size as i32).into(),
            (plan.nq as i32).into(),
            (plan.hq as i32).into(),
            (l.n_kv_heads as i32).into(),
            p.scale.into(),
            p.softcap.into(),
            p.window.into(),
            (plan.split_tokens as i32).into(),
            (&mut plan.o_part).into(),
            (&mut plan.ml_part).into(),
            (&mut *out).into(),
            (&mut plan.counters).into(),
            (plan.fused_merge as i32).into(),
            Arg::Ptr(xq),
            Arg::Ptr(xs),
            new.map_or(Arg::Ptr(0), |a| a.k_new.into()),
            new.map_or(Arg::Ptr(0), |a| a.v_new.into()),
            new.map_or(Arg::Ptr(0), |a| a.pos.into()),
            rope_code.into(),
            n_rot.into(),
            log2_base.into(),
        ],
    )?;
    if plan.splits == 1 || plan.fused_merge {
        return Ok(());
    }
    let merge = Jit::global().kernel(
        dev,
        &KernelSpec::new(&MERGE, &[("dtype", T::DTYPE.into())], wave)?,
    )?;
    let rows = batch.total_q() * plan.hq;
    let cfg = LaunchConfig {
        grid: [rows as u32, l.head_dim.div_ceil(MERGE_COLS) as u32, 1],
        block: [MERGE_THREADS, 1, 1],
        shared_bytes: 0,
    };
    merge.launch(
        stream,
        cfg,
        &[
            (&plan.o_part).into(),
            (&plan.ml_part).into(),
            (&mut *out).into(),
            (plan.splits as i32).into(),
            (l.head_dim as i32).into(),
            Arg::Ptr(xq),
            Arg::Ptr(xs),
        ],
    )
}

/// CPU reference of decode, written independently of the prefill reference: for each query row, gather
/// the visible keys of the sequence in order and take softmax(q.K^T * scale) V in f64.
#[allow(clippy::too_many_arguments)]
pub fn decode_ref(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    l: &super::PagedLayout,
    block_tables: &[i32],
    kv_lens: &[i32],
    nq: usize,
    hq: usize,
    p: &AttnParams,
) -> Vec<f32> {
    let hd = l.head_dim;
    let g = hq / l.n_kv_heads;
    let mut out = vec![0.0f32; q.len()];
    for (b, &kv) in kv_lens.iter().enumerate() {
        for i in 0..nq {
            let last = kv as i64 - nq as i64 + i as i64;
            let first = if p.window > 0 {
                (last - p.window as i64 + 1).max(0)
            } else {
                0
            };
            for h in 0..hq {
                let row = (b * nq + i) * hq + h;
                let qr = &q[row * hd..][..hd];
                let keys: Vec<usize> = (first.max(0) as usize..=last.max(-1) as usize)
                    .filter(|_| last >= 0)
                    .collect();
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&t| {
                        let kr = &k_cache[l.token_offset(block_tables, b, h / g, t)..][..hd];
                        let s = qr
                            .iter()
                            .zip(kr)
                            .map(|(a, c)| *a as f64 * *c as f64)
                            .sum::<f64>()
                            * p.scale as f64;
                        if p.softcap > 0.0 {
                            p.softcap as f64 * (s / p.softcap as f64).tanh()
                        } else {
                            s
                        }
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (d, o) in out[row * hd..][..hd].iter_mut().enumerate() {
                    let acc: f64 = keys
                        .iter()
                        .zip(&scores)
                        .map(|(&t, s)| {
                            (s - m).exp() / z
                                * v_cache[l.token_offset(block_tables, b, h / g, t) + d] as f64
                        })
                        .sum();
                    *o = acc as f32;
                }
            }
        }
    }
    out
}
