//! Prefill attention (FlashAttention-2 style) over the paged cache: causal or not, GQA/MQA, ragged
//! batches, chunked prefill (queries are the last q_len of each sequence's kv_len tokens), sliding window
//! and logit soft-cap. One kernel text with a matrix path per target (`path`): `scalar` (portable, every
//! target), `mma_sync` (NVIDIA sm_80+), `mfma` (CDNA, wave64), `wmma` (RDNA3/RDNA4, wave32).

use super::{
    check_cache_covers, check_dtype16, check_head_dim, AttnParams, Batch, PagedCache, PagedLayout,
    DTYPE_PARAM, HEAD_DIMS, HEAD_DIM_PARAM,
};
use crate::error::{Error, Result};
use crate::gpu::{Buffer, Device, LaunchConfig, MatrixCores, Stream, Target};
use crate::jit::spec::{ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::Element;

/// Matrix paths of the prefill kernel.
pub const PATHS: &[&str] = &["scalar", "mma_sync", "mfma", "wmma"];

// FAMILY and PIPE_FAMILY share their parameters up to here (their instances' URIs start alike).
const CAUSAL_PARAM: ParamDef = ParamDef {
    name: "causal",
    kind: ParamKind::Flag {
        on: "causal",
        off: "full",
    },
    doc: "causal mask",
};

pub static FAMILY: Family = Family {
    name: "attn_prefill",
    doc: "FlashAttention-2 prefill over a paged KV cache (ragged, GQA, causal, window, soft-cap)",
    body: "attn_prefill.hip",
    instance: "attn_prefill.inst",
    params: &[
        HEAD_DIM_PARAM,
        DTYPE_PARAM,
        CAUSAL_PARAM,
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
        let rpf = register_prefetch(s.str("path"), s.int("head_dim") as usize, s.str("dtype"));
        // the pipelined loop's P split and exp2 form are PipeConfig::default_for's (the AMD paths and
        // the shared loop always split a bf16 P and ignore both defines)
        let hd = s.int("head_dim") as usize;
        let d = PipeConfig::default_for(hd);
        if s.str("path") == "mma_sync" && s.flag("pipe") {
            preamble_of(&t, d.psplit, d.ffma, false)
        } else {
            preamble_of(&t, true, false, rpf)
        }
    },
};

/// Whether the shared tile loop (one stage) of `path` loads the next K/V tile into registers while the
/// current one is computed (`RF_ATTN_RPF`): the AMD matrix paths (MFMA, WMMA), whose one LDS stage
/// would otherwise wait for every tile's global loads, at head dims 64, 128 and 256. Not at hd80 / hd96
/// (HIP 5.2's compiler takes minutes on those instances with it, gfx90a), nor for WMMA with bf16 (it
/// spills on gfx1100, HIP 6.4: 28-168 bytes of scratch, where the bf16 P split already holds more
/// registers than f16's P).
fn register_prefetch(path: &str, hd: usize, dtype: &str) -> bool {
    match path {
        "mfma" => hd.is_power_of_two(),
        "wmma" => hd.is_power_of_two() && dtype != "bf16",
        _ => false,
    }
}

/// The defines the kernel reads its tiles and choices from (`RF_ATTN_*`, see attn_prefill.hip).
fn preamble_of(t: &Tiles, psplit: bool, ffma: bool, rpf: bool) -> String {
    let defines = format!(
        "#define RF_ATTN_BM {}\n#define RF_ATTN_BN {}\n#define RF_ATTN_NWARP {}\n#define RF_ATTN_LPR {}\n\
         #define RF_ATTN_CSPLIT {}\n#define RF_ATTN_MT {}\n#define RF_ATTN_QREG {}\n#define RF_ATTN_PIPE {}\n\
         #define RF_ATTN_PSPLIT {}\n#define RF_ATTN_FFMA {}\n#define RF_ATTN_RPF {}\n#define RF_ATTN_KV1 {}\n",
        t.bm,
        t.bn,
        t.nwarp,
        t.lpr,
        t.csplit,
        t.mt,
        t.qreg as u8,
        t.pipe as u8,
        psplit as u8,
        ffma as u8,
        rpf as u8,
        (t.pipe && t.stages == 1) as u8
    );
    defines + &super::mm_header()
}

/// Values the explicit pipelined tiles may take (`PIPE_FAMILY`; combinations checked by
/// [`PipeConfig::check`]).
const PIPE_BM: &[i64] = &[16, 32, 48, 64, 96, 128, 192, 256];
const PIPE_BN: &[i64] = &[16, 32, 48, 64, 96, 128, 192, 256];
const PIPE_NWARP: &[i64] = &[1, 2, 4, 8, 16];
const PIPE_MT: &[i64] = &[1, 2, 3, 4];
/// Largest dynamic shared memory of any NVIDIA target (sm_90's opt-in, 227 KiB); the device's own limit
/// is checked when launching.
const PIPE_MAX_SHARED: usize = 227 * 1024;

/// The mma_sync pipelined tile loop with explicit tiles and choices ([`PipeConfig`]): what
/// [`PrefillOptions::pipe`] and `ROCMFORGE_ATTN_TILES` build, for experiments and the bench's sweep.
/// Same kernel text and instance template as [`FAMILY`]; not in `ops::families()`, so `compile --all`
/// does not enumerate its (many) combinations. A configuration equal to the default builds [`FAMILY`]'s
/// instance instead (one code object, one URI).
pub static PIPE_FAMILY: Family = Family {
    name: "attn_prefill_mma",
    doc: "prefill attention, the mma_sync pipelined tile loop with explicit tiles (experiments)",
    body: "attn_prefill.hip",
    instance: "attn_prefill.inst",
    params: &[
        HEAD_DIM_PARAM,
        DTYPE_PARAM,
        CAUSAL_PARAM,
        ParamDef {
            name: "bm",
            kind: ParamKind::Int {
                prefix: "m",
                values: PIPE_BM,
            },
            doc: "query rows per block (16 * mt * nwarp)",
        },
        ParamDef {
            name: "bn",
            kind: ParamKind::Int {
                prefix: "n",
                values: PIPE_BN,
            },
            doc: "keys per K/V tile",
        },
        ParamDef {
            name: "nwarp",
            kind: ParamKind::Int {
                prefix: "x",
                values: PIPE_NWARP,
            },
            doc: "waves per block",
        },
        ParamDef {
            name: "mt",
            kind: ParamKind::Int {
                prefix: "t",
                values: PIPE_MT,
            },
            doc: "m16 tiles per wave",
        },
        ParamDef {
            name: "qreg",
            kind: ParamKind::Flag {
                on: "qreg",
                off: "qsmem",
            },
            doc: "Q fragments in registers (else read from shared memory every tile)",
        },
        ParamDef {
            name: "psplit",
            kind: ParamKind::Flag {
                on: "split",
                off: "nosplit",
            },
            doc: "bf16: P as hi + lo bf16 parts in P.V (f16: always off)",
        },
        ParamDef {
            name: "ffma",
            kind: ParamKind::Flag {
                on: "ffma",
                off: "fmul",
            },
            doc: "exp2 of s * c - m * c in one FFMA, scores left unscaled (positive scale, no soft-cap)",
        },
        ParamDef {
            name: "stages",
            kind: ParamKind::Int {
                prefix: "s",
                values: &[1, 2],
            },
            doc: "K/V stages: 2 = K+V double buffer, 1 = one K and one V buffer (FlashAttention-2's scheme)",
        },
    ],
    validate: |s| {
        if s.wave() != 32 {
            return Err("the mma_sync path needs wave32".into());
        }
        if s.flag("psplit") && s.str("dtype") != "bf16" {
            return Err("only a bf16 P is split (psplit needs dtype bf16)".into());
        }
        PipeConfig::of_spec(s).check(s.int("head_dim") as usize)
    },
    applies: |_, t| t.matrix_cores() == MatrixCores::MmaSync,
    preamble: |s| {
        let c = PipeConfig::of_spec(s);
        preamble_of(&c.tiles(s.int("head_dim") as usize), c.psplit, c.ffma, false)
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
    /// The mma_sync path's pipelined tile loop (`attn_prefill_mma`, cp.async copies); else the shared
    /// tile loop (every other path).
    pub pipe: bool,
    /// K/V shared-memory stages. Pipelined loop: 2 = a K+V double buffer, 1 = one K and one V buffer
    /// each copied under the other's math (FlashAttention-2's scheme, `RF_ATTN_KV1`). Shared tile
    /// loop: 1.
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
        return PipeConfig::default_for(hd).tiles(hd);
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
        pipe: false,
        stages: 1,
        shared: (bm + 2 * bn) * ld * 2 + nwarp * scratch,
    }
}

/// Configuration of the mma_sync pipelined tile loop (`attn_prefill_mma`): its tiles and two choices
/// of its inner loop. [`PipeConfig::default_for`] runs unless [`PrefillOptions::pipe`] or
/// `ROCMFORGE_ATTN_TILES` ([`env_pipe_config`]) say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipeConfig {
    /// Query rows per block: 16 * mt * nwarp.
    pub bm: usize,
    /// Keys per K/V tile (a multiple of 16).
    pub bn: usize,
    /// Waves per block.
    pub nwarp: usize,
    /// m16 tiles (16 query rows each) per wave: each K/V fragment read from shared memory feeds mt mma.
    pub mt: usize,
    /// Q fragments kept in registers (Q staged in the K/V stages: bm <= 4 * bn); else Q has its own
    /// shared-memory rows and is read with ldmatrix at every K tile.
    pub qreg: bool,
    /// bf16 only: P split into hi + lo bf16 parts for P.V (two mma per V fragment; ~2^-16 instead of
    /// ~2^-9 relative rounding of P). Ignored (off) for f16, whose P is never split.
    pub psplit: bool,
    /// Scores left unscaled and exp2 taking one FFMA (`s * c - m * c`, c = scale * log2(e)) instead of a
    /// multiply per score and a subtract (FlashAttention-2's form). Applies with a positive scale and no
    /// soft-cap; otherwise the kernel keeps the multiply.
    pub ffma: bool,
    /// K/V stages: 2 (a double buffer of K and V tiles, one barrier a tile) or 1 (one K and one V
    /// buffer, each copied under the other half's math, two barriers a tile: FlashAttention-2's
    /// scheme, for large head sizes where two stages leave one block an SM). 1 needs Q in shared memory.
    pub stages: usize,
}

impl PipeConfig {
    /// The configuration the pipelined loop runs with at `hd` unless told otherwise.
    pub fn default_for(hd: usize) -> PipeConfig {
        // (bm, bn, nwarp, mt, qreg); registers (f32 S, f32 O, u32 Q fragments per lane):
        // mt * bn / 2 + mt * hd / 2 + (qreg ? mt * hd / 4 : 0), under 255 with no spills for every
        // head_dim, dtype and mask on sm_80 / sm_90 (`rocmforge compile --report --deny-spills`).
        // Tried and left out for spills (sm_90 unless said): mt 2 with qreg at hd96 (8 B, bf16) and
        // hd128 (56-88 B); hd128 at 128x32 4w mt 2 without qreg (spill-free on sm_90, 8 B on sm_80
        // bf16: halves K/V shared-memory reads per mma, worth a timing); __launch_bounds__(.., 2) for
        // 8-wave hd128 (128 registers: 216-264 B).
        //
        // hd64 and hd128 from the bench's sweep (H200, bf16, seventh session of 2026-11-30,
        // docs/PERF.md, call C): hd128 FA2's 128x64 4w mt 2 with Q in shared memory and exp2's FFMA
        // form, 1.78 / 3.19 ms causal / full vs 1.93 / 3.52 for 128x32 (which the fourth session
        // chose when 128x64 spilled); it needs 104448 bytes of shared memory, over the 99 KiB sm_86 /
        // sm_89 give a block, where `fitting` falls back to 128x32. hd64 FA2's 128x128 4w mt 2 with Q
        // in shared memory and FFMA (92160 bytes) 0.576 ms (call D) vs 0.596 for 64x64 4w mt 1 qreg
        // and 0.627 for 128x64 8w mt 1 (the fourth session's choice); with Q in registers 128x128
        // spills. hd80 / hd96 (call F): the same 128x64 4w mt 2 Q-in-shared-memory FFMA shape, 1.209 /
        // 1.323 ms vs 1.409 / 1.590 for the 128x32 tiles they had (67584 / 79872 bytes, under sm_86's
        // 99 KiB). hd256 (seventeenth session, call A): FA2's 64x64 4w mt 1 with one K and one V buffer
        // (stages 1, 101376 bytes: two blocks an SM) 2.00 ms vs 2.33 for 64x32 with two stages (the two
        // stages of 64x64 need 169 KiB, one block an SM: 2.87).
        //
        // bf16 P is not split into hi + lo (psplit off): rounding P to bf16 as torch's kernels do
        // measured 2.06e-3 against an f64 reference vs torch's own bf16 SDPA 2.07e-3 (the bar
        // is 1.25x torch's), and the split cost 10-15 % of the time.
        let (bm, bn, nwarp, mt, qreg, ffma, stages) = match hd {
            64 => (128, 128, 4, 2, false, true, 2),
            80 | 96 => (128, 64, 4, 2, false, true, 2),
            128 => (128, 64, 4, 2, false, true, 2),
            _ => (64, 64, 4, 1, false, true, 1),
        };
        PipeConfig {
            bm,
            bn,
            nwarp,
            mt,
            qreg,
            psplit: false,
            ffma,
            stages,
        }
    }

    /// The default at `hd` if its shared memory fits `limit` bytes, else the first smaller
    /// configuration that does (hd128: 128x32 tiles, 69632 bytes, for the 99 KiB of sm_86 / sm_89;
    /// hd256: 64x32 with one K/V stage, 67584 bytes);
    /// None when nothing fits.
    pub fn fitting(hd: usize, limit: usize) -> Option<PipeConfig> {
        let d = PipeConfig::default_for(hd);
        let mut smaller = d;
        smaller.bn = 32;
        [d, smaller]
            .into_iter()
            .find(|c| c.check(hd).is_ok() && c.tiles(hd).shared <= limit)
    }

    /// Tiles `(bm, bn, nwarp, mt, qreg)` with the defaults' choices (bf16 P split on, FFMA form off).
    pub fn new(bm: usize, bn: usize, nwarp: usize, mt: usize, qreg: bool) -> PipeConfig {
        PipeConfig {
            bm,
            bn,
            nwarp,
            mt,
            qreg,
            psplit: true,
            ffma: false,
            stages: 2,
        }
    }

    /// The configuration of a [`PIPE_FAMILY`] spec.
    fn of_spec(s: &KernelSpec) -> PipeConfig {
        PipeConfig {
            bm: s.int("bm") as usize,
            bn: s.int("bn") as usize,
            nwarp: s.int("nwarp") as usize,
            mt: s.int("mt") as usize,
            qreg: s.flag("qreg"),
            psplit: s.flag("psplit"),
            ffma: s.flag("ffma"),
            stages: s.int("stages") as usize,
        }
    }

    /// As the kernel runs it for `dtype`: an f16 P is never split.
    pub fn for_dtype(mut self, dtype: &str) -> PipeConfig {
        self.psplit &= dtype == "bf16";
        self
    }

    /// The block tiling (launch geometry and shared memory) of this configuration at `hd`.
    pub fn tiles(&self, hd: usize) -> Tiles {
        let rows = 2 * self.stages * self.bn + if self.qreg { 0 } else { self.bm };
        Tiles {
            bm: self.bm,
            bn: self.bn,
            nwarp: self.nwarp,
            lpr: 1,
            csplit: 1,
            mt: self.mt,
            qreg: self.qreg,
            pipe: true,
            stages: self.stages,
            shared: rows * (hd + 8) * 2,
        }
    }

    /// The kernel's static_asserts (attn_prefill_mma), checked before rendering: `bm == 16 * mt *
    /// nwarp`, `bn % 16 == 0`, Q staged in the K/V stages (`qreg => bm <= 4 * bn`), and the shared
    /// memory within what any NVIDIA target allows (the device's own limit is checked at launch).
    pub fn check(&self, hd: usize) -> std::result::Result<(), String> {
        let c = self;
        for (name, v, list) in [
            ("bm", c.bm, PIPE_BM),
            ("bn", c.bn, PIPE_BN),
            ("nwarp", c.nwarp, PIPE_NWARP),
            ("mt", c.mt, PIPE_MT),
        ] {
            if !list.contains(&(v as i64)) {
                let l: Vec<String> = list.iter().map(|x| x.to_string()).collect();
                return Err(format!("{name} {v} not one of {}", l.join(", ")));
            }
        }
        if c.bm != 16 * c.mt * c.nwarp {
            return Err(format!(
                "bm {} must be 16 * mt * nwarp = 16 * {} * {}",
                c.bm, c.mt, c.nwarp
            ));
        }
        if c.bn % 16 != 0 {
            return Err(format!("bn {} must be a multiple of 16", c.bn));
        }
        if !(1..=2).contains(&c.stages) {
            return Err(format!("stages {} must be 1 or 2", c.stages));
        }
        if c.qreg && c.stages == 1 {
            return Err(
                "qreg stages Q in the second K/V stage; one stage (stages 1) has none".into(),
            );
        }
        if c.qreg && c.bm > 4 * c.bn {
            return Err(format!(
                "qreg stages Q in the K/V stages: needs bm {} <= 4 * bn {}",
                c.bm, c.bn
            ));
        }
        let shared = c.tiles(hd).shared;
        if shared > PIPE_MAX_SHARED {
            return Err(format!(
                "{shared} bytes of shared memory at hd{hd}; at most {PIPE_MAX_SHARED}"
            ));
        }
        Ok(())
    }

    /// Parse `bm,bn,nwarp,mt,qreg[,psplit[,ffma[,stages]]]` (flags as 0/1, true/false, on/off, yes/no;
    /// psplit defaults to on, ffma to off, stages to 2), e.g. `128,64,4,2,0` or `64,64,4,1,0,0,1,1`.
    pub fn parse(text: &str) -> std::result::Result<PipeConfig, String> {
        let f: Vec<&str> = text.split(',').map(str::trim).collect();
        if !(5..=8).contains(&f.len()) {
            return Err(format!(
                "`{text}`: {} fields; expected bm,bn,nwarp,mt,qreg[,psplit[,ffma[,stages]]]",
                f.len()
            ));
        }
        let num = |i: usize, name: &str| {
            f[i].parse::<usize>()
                .map_err(|_| format!("`{text}`: {name} `{}` is not a number", f[i]))
        };
        let flag = |i: usize, name: &str, default: bool| match f.get(i).copied() {
            None => Ok(default),
            Some("1" | "true" | "on" | "yes") => Ok(true),
            Some("0" | "false" | "off" | "no") => Ok(false),
            Some(x) => Err(format!("`{text}`: {name} `{x}` is not 0/1")),
        };
        Ok(PipeConfig {
            bm: num(0, "bm")?,
            bn: num(1, "bn")?,
            nwarp: num(2, "nwarp")?,
            mt: num(3, "mt")?,
            qreg: flag(4, "qreg", false)?,
            psplit: flag(5, "psplit", true)?,
            ffma: flag(6, "ffma", false)?,
            stages: if f.len() > 7 { num(7, "stages")? } else { 2 },
        })
    }
}

impl std::fmt::Display for PipeConfig {
    /// `128x64 8w mt1 qreg split fmul` (one K/V stage: ` kv1` after it)
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} {}w mt{} {} {} {}{}",
            self.bm,
            self.bn,
            self.nwarp,
            self.mt,
            if self.qreg { "qreg" } else { "qsmem" },
            if self.psplit { "split" } else { "nosplit" },
            if self.ffma { "ffma" } else { "fmul" },
            if self.stages == 1 { " kv1" } else { "" }
        )
    }
}

/// `ROCMFORGE_ATTN_TILES`: the pipelined mma_sync configuration for head size `hd`, if the variable
/// names one. Entries separated by `;` (or spaces), each `bm,bn,nwarp,mt,qreg[,psplit[,ffma]]` for
/// every head size or `hdN:...` for one (which wins), e.g. `hd128:128,64,4,2,0;hd64:64,64,4,1,1,0`.
/// A malformed or invalid value is an error naming the variable (never silently the default).
/// Ignored where the pipelined loop does not run (other paths, `ROCMFORGE_ATTN_PIPELINE=0`).
pub fn env_pipe_config(hd: usize) -> Result<Option<PipeConfig>> {
    const VAR: &str = "ROCMFORGE_ATTN_TILES";
    let Ok(text) = std::env::var(VAR) else {
        return Ok(None);
    };
    parse_tiles_var(&text, hd).map_err(|why| {
        Error::op(
            "attn_prefill",
            format!(
                "{VAR}={text}: {why} (format: [hdN:]bm,bn,nwarp,mt,qreg[,psplit[,ffma]] entries separated by ';')"
            ),
        )
    })
}

/// [`env_pipe_config`]'s parser: every entry is parsed and checked (at its own head size, or at `hd`
/// for one without), so a typo fails whatever head size asks.
fn parse_tiles_var(text: &str, hd: usize) -> std::result::Result<Option<PipeConfig>, String> {
    let (mut any, mut mine) = (None, None);
    for entry in text
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter(|e| !e.is_empty())
    {
        let (at, cfg) = match entry.split_once(':') {
            Some((h, c)) => {
                let n = h.trim().trim_start_matches("hd");
                let at: usize = n
                    .parse()
                    .map_err(|_| format!("`{h}` is not a head size (hd64, hd128, ...)"))?;
                if !HEAD_DIMS.contains(&(at as i64)) {
                    return Err(format!("no head size {at}"));
                }
                (Some(at), c)
            }
            None => (None, entry),
        };
        let c = PipeConfig::parse(cfg)?;
        c.check(at.unwrap_or(hd))?;
        match at {
            Some(at) if at == hd => mine = Some(c),
            Some(_) => {}
            None => any = Some(c),
        }
    }
    Ok(mine.or(any))
}

/// The instance `prefill` runs: the pipelined mma_sync configuration from `ROCMFORGE_ATTN_TILES` when
/// it names one (mma_sync with the pipeline on), else the path's default tiles.
pub fn spec(
    head_dim: usize,
    dtype: &str,
    causal: bool,
    path: &str,
    wave: u32,
) -> Result<KernelSpec> {
    let cfg = if path == "mma_sync" && mma_sync_pipeline() {
        env_pipe_config(head_dim)?
    } else {
        None
    };
    spec_with(head_dim, dtype, causal, path, wave, cfg)
}

/// The instance `prefill` runs on target `t` without explicit tiles: [`spec`], unless the default
/// tiles need more shared memory than `t` gives a block (hd128's 104448 bytes on sm_86 / sm_89), then
/// the largest configuration that fits ([`PipeConfig::fitting`]). What the model runtime compiles.
pub fn spec_on(
    head_dim: usize,
    dtype: &str,
    causal: bool,
    path: &str,
    t: &Target,
) -> Result<KernelSpec> {
    let s = spec(head_dim, dtype, causal, path, t.wave_size)?;
    let limit = t.shared_per_block_optin as usize;
    if s.family().name != FAMILY.name
        || !s.flag("pipe")
        || spec_tiles(&s).shared <= limit
        || t.is_emulated()
    {
        return Ok(s);
    }
    match PipeConfig::fitting(head_dim, limit) {
        Some(c) => spec_with(head_dim, dtype, causal, path, t.wave_size, Some(c)),
        None => Ok(s), // refused at launch, naming both sizes
    }
}

/// [`spec`] with an explicit pipelined mma_sync configuration (`None`: the path's default tiles and
/// `ROCMFORGE_ATTN_PIPELINE`, not `ROCMFORGE_ATTN_TILES`). `Some` needs path `mma_sync`; it is the
/// default instance ([`FAMILY`]) when equal to the default, else a [`PIPE_FAMILY`] one (its URI names
/// the tiles, e.g. `attn_prefill_mma.hd128.bf16.causal.m128.n64.x4.t2.qsmem.nosplit.fmul.s2.w32`).
pub fn spec_with(
    head_dim: usize,
    dtype: &str,
    causal: bool,
    path: &str,
    wave: u32,
    pipe: Option<PipeConfig>,
) -> Result<KernelSpec> {
    let default = |pipe: bool| {
        KernelSpec::new(
            &FAMILY,
            &[
                ("head_dim", head_dim.into()),
                ("dtype", dtype.into()),
                ("causal", causal.into()),
                ("path", path.into()),
                ("pipe", pipe.into()),
            ],
            wave,
        )
    };
    let Some(c) = pipe else {
        return default(path == "mma_sync" && mma_sync_pipeline());
    };
    if path != "mma_sync" {
        return Err(Error::InvalidSpec {
            spec: FAMILY.name.into(),
            reason: format!(
                "pipelined tiles ({c}) are the mma_sync path's; path {path} has its own tiles"
            ),
        });
    }
    let c = c.for_dtype(dtype);
    if c == PipeConfig::default_for(head_dim).for_dtype(dtype) {
        return default(true);
    }
    KernelSpec::new(
        &PIPE_FAMILY,
        &[
            ("head_dim", head_dim.into()),
            ("dtype", dtype.into()),
            ("causal", causal.into()),
            ("bm", c.bm.into()),
            ("bn", c.bn.into()),
            ("nwarp", c.nwarp.into()),
            ("mt", c.mt.into()),
            ("qreg", c.qreg.into()),
            ("psplit", c.psplit.into()),
            ("ffma", c.ffma.into()),
            ("stages", c.stages.into()),
        ],
        wave,
    )
}

/// The tiles an instance of [`FAMILY`] or [`PIPE_FAMILY`] was rendered with (launch geometry).
pub fn spec_tiles(s: &KernelSpec) -> Tiles {
    let hd = s.int("head_dim") as usize;
    if s.family().name == PIPE_FAMILY.name {
        PipeConfig::of_spec(s).tiles(hd)
    } else {
        tiles_for(s.str("path"), hd, s.wave(), s.flag("pipe"))
    }
}

/// Choices of one [`prefill_with`] call beyond the shapes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrefillOptions<'a> {
    /// Matrix path (None: the target's native one).
    pub path: Option<&'a str>,
    /// The mma_sync pipelined loop's configuration (None: `ROCMFORGE_ATTN_TILES` if set, else the
    /// default). Needs the mma_sync path.
    pub pipe: Option<PipeConfig>,
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
#[allow(clippy::too_many_arguments)]
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
    let o = PrefillOptions { path, pipe: None };
    prefill_with(dev, stream, q, cache, batch, hq, out, p, &o)
}

/// [`prefill`] with [`PrefillOptions`] (the path, and explicit pipelined mma_sync tiles).
#[allow(clippy::too_many_arguments)]
pub fn prefill_with<T: Element>(
    dev: &Device,
    stream: &Stream,
    q: &Buffer<T>,
    cache: &PagedCache<T>,
    batch: &Batch,
    hq: usize,
    out: &mut Buffer<T>,
    p: &AttnParams,
    opts: &PrefillOptions,
) -> Result<()> {
    check_dtype16("attn_prefill", T::DTYPE)?;
    let l = cache.layout;
    check_shapes("attn_prefill", q, out, &l, cache.nseq(), batch, hq, p)?;
    let t = dev.target();
    let path = opts.path.unwrap_or_else(|| native_path(t));
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
    // the kernels index a page of all kv heads and the block table with 32-bit integers
    if l.n_kv_heads * l.page_size * l.head_dim > i32::MAX as usize
        || l.max_pages * cache.nseq() > i32::MAX as usize
    {
        return Err(Error::op(
            "attn_prefill",
            format!(
                "a page of {} kv heads x {} tokens x {} (or a block table of {} x {} entries) exceeds 2^31 elements",
                l.n_kv_heads,
                l.page_size,
                l.head_dim,
                cache.nseq(),
                l.max_pages
            ),
        ));
    }
    let limit = t.shared_per_block_optin as usize;
    let sp = match opts.pipe {
        Some(c) => spec_with(l.head_dim, T::DTYPE, p.causal, path, t.wave_size, Some(c))?,
        None => spec_on(l.head_dim, T::DTYPE, p.causal, path, t)?,
    };
    let tl = spec_tiles(&sp);
    if tl.shared > limit && !t.is_emulated() {
        return Err(Error::op(
            "attn_prefill",
            format!(
                "{sp} needs {} bytes of shared memory; {t} allows {}",
                tl.shared, t.shared_per_block_optin
            ),
        ));
    }
    let kern = Jit::global().kernel(dev, &sp)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_config_parse_and_check() {
        let c = PipeConfig::parse("128, 64,4,2,0").unwrap();
        assert_eq!(c, PipeConfig::new(128, 64, 4, 2, false));
        assert!(c.psplit && !c.ffma);
        let c = PipeConfig::parse("64,64,4,1,1,off,1").unwrap();
        assert!(c.qreg && !c.psplit && c.ffma);
        assert_eq!(c.to_string(), "64x64 4w mt1 qreg nosplit ffma");
        for bad in [
            "",
            "128,64,4,2",
            "128,64,4,2,0,1,1,2,1",
            "128,64,4,2,0,1,1,x",
            "128,x,4,2,0",
            "128,64,4,2,maybe",
        ] {
            assert!(PipeConfig::parse(bad).is_err(), "{bad}");
        }
        assert!(PipeConfig::new(128, 64, 4, 2, false).check(128).is_ok());
        for (c, what) in [
            (PipeConfig::new(128, 64, 4, 1, true), "16 * mt * nwarp"),
            (PipeConfig::new(64, 24, 4, 1, true), "not one of"),
            (PipeConfig::new(256, 32, 8, 2, true), "bm 256 <= 4 * bn 32"),
            (
                PipeConfig::new(256, 256, 8, 2, false),
                "bytes of shared memory",
            ),
            (PipeConfig::new(80, 64, 5, 1, true), "bm 80 not one of"),
        ] {
            let e = c.check(128).unwrap_err();
            assert!(e.contains(what), "{c}: {e}");
        }
        for hd in [64usize, 80, 96, 128, 256] {
            let d = PipeConfig::default_for(hd);
            assert!(d.check(hd).is_ok(), "hd{hd}");
            assert_eq!(d.tiles(hd), tiles_for("mma_sync", hd, 32, true));
        }
    }

    #[test]
    fn default_tiles_fit_smaller_gpus() {
        // hd128's default (128x64, 104448 bytes) fits sm_80 / sm_90, not the 99 KiB of sm_86 / sm_89
        let d = PipeConfig::default_for(128);
        assert_eq!(d.tiles(128).shared, 104448);
        assert_eq!(PipeConfig::fitting(128, 227 * 1024), Some(d));
        let f = PipeConfig::fitting(128, 99 * 1024).unwrap();
        assert_eq!((f.bm, f.bn, f.nwarp, f.mt), (128, 32, 4, 2));
        assert!(f.tiles(128).shared <= 99 * 1024);
        assert_eq!(PipeConfig::fitting(128, 16 * 1024), None);
        // the instance the runtime compiles: the default on sm_90, the 128x32 tiles on sm_86
        let on = |t: &str| {
            spec_on(128, "bf16", true, "mma_sync", &Target::named(t).unwrap())
                .unwrap()
                .uri()
                .to_string()
        };
        assert_eq!(
            on("sm_90"),
            "attn_prefill.hd128.bf16.causal.mma_sync.pipe.w32"
        );
        assert!(on("sm_86").contains(".m128.n32.x4.t2."), "{}", on("sm_86"));
        for hd in [64usize, 80, 96, 256] {
            assert_eq!(
                PipeConfig::fitting(hd, 99 * 1024),
                Some(PipeConfig::default_for(hd)),
                "hd{hd}"
            );
        }
    }

    #[test]
    fn tiles_variable() {
        assert_eq!(parse_tiles_var("", 128).unwrap(), None);
        let v = "hd128:128,64,4,2,0; 64,64,4,1,1,0";
        assert_eq!(
            parse_tiles_var(v, 128).unwrap(),
            Some(PipeConfig::new(128, 64, 4, 2, false))
        );
        let mut c = PipeConfig::new(64, 64, 4, 1, true);
        c.psplit = false;
        assert_eq!(parse_tiles_var(v, 64).unwrap(), Some(c));
        assert_eq!(parse_tiles_var("hd64:64,64,4,1,1", 128).unwrap(), None);
        // every entry is checked, whatever head size asks
        assert!(parse_tiles_var("hd64:64,64,4,1,1;hd128:128,64,4,1,1", 64).is_err());
        assert!(parse_tiles_var("hd100:64,64,4,1,1", 64).is_err());
        assert!(parse_tiles_var("hdx:64,64,4,1,1", 64).is_err());
        assert!(parse_tiles_var("128,64,4,2", 64).is_err());
        // one K/V stage: an eighth field; it needs Q in shared memory
        let kv1 = parse_tiles_var("hd256:64,64,4,1,0,0,1,1", 256)
            .unwrap()
            .unwrap();
        assert_eq!((kv1.stages, kv1.ffma, kv1.qreg), (1, true, false));
        assert_eq!(kv1.tiles(256).shared, (2 * 64 + 64) * 264 * 2);
        assert!(kv1.to_string().ends_with(" kv1"), "{kv1}");
        assert!(parse_tiles_var("64,64,4,1,1,0,1,1", 256).is_err());
        assert!(parse_tiles_var("64,64,4,1,0,0,1,3", 256).is_err());
    }

    #[test]
    fn explicit_tiles_name_their_instance() {
        let d = PipeConfig::default_for(128);
        // the default configuration is the default instance
        let s = spec_with(128, "bf16", true, "mma_sync", 32, Some(d)).unwrap();
        assert_eq!(s.uri(), "attn_prefill.hd128.bf16.causal.mma_sync.pipe.w32");
        let mut c = PipeConfig::new(128, 64, 4, 2, false);
        c.psplit = false;
        let s = spec_with(128, "bf16", true, "mma_sync", 32, Some(c)).unwrap();
        assert_eq!(
            s.uri(),
            "attn_prefill_mma.hd128.bf16.causal.m128.n64.x4.t2.qsmem.nosplit.fmul.s2.w32"
        );
        assert_eq!(spec_tiles(&s), c.tiles(128));
        assert_eq!(spec_tiles(&s).shared, (4 * 64 + 128) * 136 * 2);
        // f16 never splits P: the split flag is dropped, so split on/off is one instance
        let f = spec_with(64, "f16", false, "mma_sync", 32, Some(c)).unwrap();
        c.psplit = true;
        let g = spec_with(64, "f16", false, "mma_sync", 32, Some(c)).unwrap();
        assert_eq!(f.uri(), g.uri());
        assert!(f.uri().contains(".nosplit."), "{f}");
        let mut d16 = PipeConfig::default_for(64);
        d16.psplit = false;
        assert_eq!(
            spec_with(64, "f16", true, "mma_sync", 32, Some(d16))
                .unwrap()
                .uri(),
            "attn_prefill.hd64.f16.causal.mma_sync.pipe.w32"
        );
        // every choice is part of the name
        let mut e = d;
        e.ffma = true;
        let s1 = spec_with(128, "bf16", true, "mma_sync", 32, Some(e)).unwrap();
        e.psplit = !e.psplit;
        let s2 = spec_with(128, "bf16", true, "mma_sync", 32, Some(e)).unwrap();
        assert_ne!(s1.uri(), s2.uri());
        // errors: other paths, wave64, invalid tiles
        assert!(spec_with(128, "bf16", true, "scalar", 32, Some(d)).is_err());
        assert!(spec_with(128, "bf16", true, "mma_sync", 64, Some(c)).is_err());
        let e = spec_with(
            128,
            "bf16",
            true,
            "mma_sync",
            32,
            Some(PipeConfig::new(128, 64, 4, 1, true)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("16 * mt * nwarp"), "{e}");
    }

    #[test]
    fn explicit_tiles_render() {
        let t = Target::named("sm_90").unwrap();
        let mut c = PipeConfig::new(64, 64, 4, 1, true);
        c.psplit = false;
        c.ffma = true;
        let s = spec_with(128, "bf16", true, "mma_sync", 32, Some(c)).unwrap();
        let src = crate::jit::template::render(&s, &t).unwrap();
        for d in [
            "#define RF_ATTN_BM 64\n",
            "#define RF_ATTN_BN 64\n",
            "#define RF_ATTN_NWARP 4\n",
            "#define RF_ATTN_MT 1\n",
            "#define RF_ATTN_QREG 1\n",
            "#define RF_ATTN_PIPE 1\n",
            "#define RF_ATTN_PSPLIT 0\n",
            "#define RF_ATTN_FFMA 1\n",
        ] {
            assert!(src.contains(d), "{d}");
        }
        assert!(src.contains("attn_prefill_mma<rf_bf16, 128, true>("));
        // the default instance: PipeConfig::default_for's choices (no bf16 P split, exp2 as one FFMA)
        let d = spec(128, "bf16", true, "mma_sync", 32).unwrap();
        let src = crate::jit::template::render(&d, &t).unwrap();
        assert!(src.contains("#define RF_ATTN_PSPLIT 0\n#define RF_ATTN_FFMA 1\n"));
        assert!(src.contains("#define RF_ATTN_NWARP 4\n#define RF_ATTN_LPR 1\n"));
        // the AMD paths and the shared loop always split
        let d = spec(128, "bf16", true, "mfma", 64).unwrap();
        let src = crate::jit::template::render(&d, &Target::named("gfx942").unwrap()).unwrap();
        assert!(src.contains("#define RF_ATTN_PSPLIT 1\n"));
    }
}
