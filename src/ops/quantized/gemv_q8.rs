//! Decode GEMV on 8-bit activations: `y = W · x` with `x` first quantized to int8 per 16 elements
//! ([`quantize_x`], family `q8_act`) and `W` in its GGUF block format, multiplied with integer dot
//! products (dp4a on NVIDIA, `sdot4`/`sudot4` on AMD) — four instructions per 16 weights instead of
//! a float decode and sixteen FMAs, so that the kernel stays at the memory roofline where the
//! float GEMV ([`super::gemv`]) is bound by instruction issue. `templates/gemv_q8.hip` explains the
//! lane units each format is cut into.
//!
//! Quantized x (see [`act_bytes`]): `batch × cols` int8 codes, then per 16 elements the f32 pair
//! (d, d·Σq) with d = amax/127 of those 16 elements. The CPU reference
//! [`quantize_x_ref`] gives the same bytes (same f32 operations, round half to even).

use super::{check_matrix, preamble};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream, Target};
use crate::jit::spec::{any_target, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::Element;
use crate::quant::QuantType;
use half::f16;

pub use super::gemv::GluAct;

/// Formats with an integer decoder (`rf_w8` in `templates/gemv_q8.hip`).
pub const FORMATS: &[&str] = &[
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "mxfp4",
];
/// Compiled batch sizes: a call with `batch` right-hand sides uses the smallest one ≥ `batch`.
pub const BATCHES: &[i64] = &[1, 2, 4, 8];
/// Most right-hand sides per call.
pub const MAX_BATCH: usize = 8;
/// Rows of W per block.
pub const ROWS: &[i64] = &[1, 2, 4];
/// Waves per block (per sub-block of the forms with an 8-bit output: [`FUSED_WAVES`]).
pub const WAVES: &[i64] = &[4];
/// Waves per sub-block of the forms with an 8-bit output: as many as make a block of 512 threads.
pub const FUSED_WAVES: &[i64] = &[1, 2, 4];
/// Output dtypes.
pub const DTYPES: &[&str] = &["f32", "f16"];
/// What a launch does besides `y = W x` ([`Fuse`]; batch 1, f16 y): `none`; `norm`: x is an
/// RMSNorm's 8-bit output without its 1/rms, applied here from the producer's sums of squares;
/// `resid`: the residual add and the next RMSNorm's 8-bit output (without 1/rms) from y;
/// `norm_silu` / `norm_gelu`: `norm`'s input, W is gate and up stacked, y the gated activation
/// and its 8-bit copy.
pub const FUSES: &[&str] = &["none", "norm", "resid", "norm_silu", "norm_gelu"];

/// The integer-dot GEMV family: (format, y dtype, compiled batch, rows per block, waves).
pub static FAMILY: Family = Family {
    name: "gemv_q8",
    doc: "y = W x with x quantized to int8 per 16 (q8_act) and W in a GGUF format; integer dot products",
    body: "gemv_q8.hip",
    instance: "gemv_q8.inst",
    params: &[
        ParamDef { name: "format", kind: ParamKind::Choice { values: FORMATS }, doc: "block format of W" },
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of y" },
        ParamDef { name: "batch", kind: ParamKind::Int { prefix: "b", values: BATCHES }, doc: "right-hand sides compiled for (calls may pass fewer)" },
        ParamDef { name: "rows", kind: ParamKind::Int { prefix: "r", values: ROWS }, doc: "rows of W per block (tunable; rows x batch <= 8, <= 4 for q2_K/q3_K)" },
        ParamDef { name: "waves", kind: ParamKind::Int { prefix: "w", values: FUSED_WAVES }, doc: "waves per block (4; per sub-block of the fused forms with an 8-bit output)" },
        ParamDef { name: "fuse", kind: ParamKind::Choice { values: FUSES }, doc: "fused input norm / output epilogue (batch 1, f16)" },
    ],
    validate: |s| {
        let (r, b) = (s.int("rows"), s.int("batch"));
        let lim = max_acc(s.str("format"));
        let fuse = s.str("fuse");
        if fuse != "none" && (b != 1 || s.str("dtype") != "f16") {
            return Err(format!("fuse {fuse} is compiled for batch 1 and f16 y only"));
        }
        // a block of the forms with an 8-bit output makes 16 rows: 16 / rows sub-blocks of `waves`
        // waves, 512 threads (registers for 4 rows x 2 matrices on every target)
        let waves = s.int("waves");
        if out_form(fuse) {
            if 16 / r * waves * s.wave() as i64 != FUSED_BLOCK {
                return Err(format!(
                    "fuse {fuse}: 16 / rows {r} sub-blocks of {waves} waves of {} are not {FUSED_BLOCK} threads",
                    s.wave()
                ));
            }
        } else if waves != 4 {
            return Err(format!("{waves} waves: the plain and norm forms run 4"));
        }
        // in blocks of 512 threads (fewer registers a thread) the forms with an 8-bit output take
        // at most half the format's accumulators, the gated ones (a gate and an up row for each
        // output row) a quarter: more spill on RDNA2
        let r = match fuse {
            "resid" => 2 * r,
            f if f.starts_with("norm_") => 4 * r,
            _ => r,
        };
        if r * b > lim {
            return Err(format!(
                "rows {r} x batch {b} exceeds {lim} accumulators per thread for {}",
                s.str("format")
            ));
        }
        Ok(())
    },
    applies: any_target,
    preamble,
};

/// Threads of a block of the fused forms with an 8-bit output.
const FUSED_BLOCK: i64 = 512;

/// Whether a fused form writes an 8-bit output (its blocks make whole groups of 16 rows).
fn out_form(fuse: &str) -> bool {
    fuse == "resid" || fuse.starts_with("norm_")
}

/// Most rows × batch accumulators per thread for `format`: the K-quants with four 16-element
/// segments per lane unit (q2_K, q3_K) need more registers per row and spill above 4 on RDNA3/4.
fn max_acc(format: &str) -> i64 {
    if matches!(format, "q2_K" | "q3_K") {
        4
    } else {
        8
    }
}

/// The activation quantizer: x (f32/f16/bf16) → int8 codes and per-16 (d, d·Σq).
pub static ACT_FAMILY: Family = Family {
    name: "q8_act",
    doc: "x -> int8 per 16 elements (d = amax/127) with (d, d*sum q), the input of gemv_q8",
    body: "gemv_q8.hip",
    instance: "q8_act.inst",
    params: &[ParamDef {
        name: "dtype",
        kind: ParamKind::Choice {
            values: crate::ops::DTYPES,
        },
        doc: "element type of x",
    }],
    validate: crate::jit::spec::no_rules,
    applies: any_target,
    preamble,
};

/// Launch configuration a caller (or the tuner) may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemvQ8Config {
    pub rows: usize,
    pub waves: usize,
}

impl GemvQ8Config {
    /// The default for a call on a matrix of `n_rows` rows: a tuned entry where the database has
    /// one, else the most rows per block the batch allows (4 at batch ≤ 2, 2 at ≤ 4, 1 above: the
    /// H200 sweep in docs/PERF.md) that still gives every compute unit 4 blocks (small matrices
    /// take fewer rows per block).
    pub fn default_for(
        ty: QuantType,
        dtype: &str,
        batch: usize,
        n_rows: usize,
        target: &Target,
    ) -> GemvQ8Config {
        let cands = Self::candidates(ty, batch);
        if let Some(rows) = crate::jit::tunedb::gemv_q8_rows(target, ty.name(), dtype, batch)
            .filter(|&rows| cands.iter().any(|c| c.rows == rows))
        {
            return GemvQ8Config { rows, waves: 4 };
        }
        let cus = if target.compute_units > 0 {
            target.compute_units as usize
        } else {
            128
        };
        let mut rows = match batch {
            0..=2 => 4,
            3..=4 => 2,
            _ => 1,
        };
        while rows > 1 && (n_rows / rows < 4 * cus || !cands.iter().any(|c| c.rows == rows)) {
            rows /= 2;
        }
        GemvQ8Config { rows, waves: 4 }
    }

    /// Every valid configuration for `batch` right-hand sides of a `ty` matrix.
    pub fn candidates(ty: QuantType, batch: usize) -> Vec<GemvQ8Config> {
        let b = compiled_batch(batch).unwrap_or(MAX_BATCH as i64);
        let lim = max_acc(ty.name());
        ROWS.iter()
            .filter(|&&r| r * b <= lim)
            .flat_map(|&r| {
                WAVES.iter().map(move |&w| GemvQ8Config {
                    rows: r as usize,
                    waves: w as usize,
                })
            })
            .collect()
    }
}

/// Whether `ty` has an integer decoder.
pub fn supports(ty: QuantType) -> bool {
    FORMATS.contains(&ty.name())
}

/// The compiled batch size used for `batch` right-hand sides.
pub fn compiled_batch(batch: usize) -> Result<i64> {
    BATCHES
        .iter()
        .copied()
        .find(|&b| b as usize >= batch && batch >= 1)
        .ok_or_else(|| {
            Error::op(
                "gemv_q8",
                format!("batch {batch} is outside 1..={MAX_BATCH}"),
            )
        })
}

/// Bytes of quantized activations for `batch × cols` (cols a multiple of 32).
pub fn act_bytes(batch: usize, cols: usize) -> usize {
    batch * cols + batch * cols / 2
}

/// Spec of one gemv_q8 kernel.
pub fn spec(
    ty: QuantType,
    dtype: &str,
    batch: usize,
    cfg: GemvQ8Config,
    wave: u32,
) -> Result<KernelSpec> {
    spec_fused(ty, dtype, batch, cfg, "none", wave)
}

/// Spec of one gemv_q8 kernel with a fused form ([`FUSES`]).
pub fn spec_fused(
    ty: QuantType,
    dtype: &str,
    batch: usize,
    cfg: GemvQ8Config,
    fuse: &str,
    wave: u32,
) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("format", ty.name().into()),
            ("dtype", dtype.into()),
            ("batch", compiled_batch(batch)?.into()),
            ("rows", (cfg.rows as i64).into()),
            ("waves", (cfg.waves as i64).into()),
            ("fuse", fuse.into()),
        ],
        wave,
    )
}

/// Spec of the activation quantizer for x of `dtype`.
pub fn act_spec(dtype: &str, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(&ACT_FAMILY, &[("dtype", dtype.into())], wave)
}

fn check_cols(cols: usize) -> Result<()> {
    if cols == 0 || cols % 32 != 0 || cols > i32::MAX as usize {
        return Err(Error::op(
            "gemv_q8",
            format!("cols {cols} must be a positive multiple of 32 below 2^31"),
        ));
    }
    Ok(())
}

/// Quantize `x` (`batch × cols`) into `xq` (at least [`act_bytes`] bytes, 16-byte aligned).
pub fn quantize_x<T: Element>(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<T>,
    batch: usize,
    cols: usize,
    xq: &mut Buffer<u8>,
) -> Result<()> {
    check_cols(cols)?;
    if batch == 0 || x.len() < batch * cols {
        return Err(Error::op(
            "q8_act",
            format!(
                "x has {} elements; batch {batch} x cols {cols} needs {}",
                x.len(),
                batch * cols
            ),
        ));
    }
    if xq.len() < act_bytes(batch, cols) || xq.device_ptr() % 16 != 0 {
        return Err(Error::op(
            "q8_act",
            format!(
                "the quantized-x buffer needs {} bytes at a 16-byte aligned address; it has {} at {:#x}",
                act_bytes(batch, cols),
                xq.len(),
                xq.device_ptr()
            ),
        ));
    }
    let k = Jit::global().kernel(dev, &act_spec(T::DTYPE, dev.target().wave_size)?)?;
    let lc = LaunchConfig {
        grid: [cols.div_ceil(256) as u32, batch as u32, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    };
    let base = xq.device_ptr();
    k.launch(
        stream,
        lc,
        &[
            x.into(),
            Arg::Ptr(base),
            Arg::Ptr(base + (batch * cols) as u64),
            (cols as i32).into(),
        ],
    )
}

/// `y = W · x` from quantized x ([`quantize_x`] of the same `batch × cols`).
#[allow(clippy::too_many_arguments)]
pub fn gemv_q8<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    xq: &Buffer<u8>,
    batch: usize,
    y: &mut Buffer<T>,
    cfg: Option<GemvQ8Config>,
) -> Result<()> {
    if !supports(ty) {
        return Err(Error::op(
            "gemv_q8",
            format!(
                "{ty} has no integer decoder (formats: {})",
                FORMATS.join(", ")
            ),
        ));
    }
    check_cols(cols)?;
    check_matrix("gemv_q8", ty, rows, cols, w.len())?;
    compiled_batch(batch)?;
    if rows > i32::MAX as usize {
        return Err(Error::op("gemv_q8", format!("{rows} rows exceed 2^31")));
    }
    if y.len() < batch * rows {
        return Err(Error::op(
            "gemv_q8",
            format!(
                "y has {} elements; batch {batch} x rows {rows} needs {}",
                y.len(),
                batch * rows
            ),
        ));
    }
    if xq.len() < act_bytes(batch, cols) || xq.device_ptr() % 16 != 0 {
        return Err(Error::op(
            "gemv_q8",
            format!(
                "quantized x must hold {} bytes at a 16-byte aligned address",
                act_bytes(batch, cols)
            ),
        ));
    }
    if w.device_ptr() % 16 != 0 {
        return Err(Error::op(
            "gemv_q8",
            "W must start at a 16-byte aligned device address",
        ));
    }
    let target = dev.target();
    let cfg = cfg.unwrap_or_else(|| GemvQ8Config::default_for(ty, T::DTYPE, batch, rows, target));
    let k = Jit::global().kernel(dev, &spec(ty, T::DTYPE, batch, cfg, target.wave_size)?)?;
    let grid = u32::try_from(rows.div_ceil(cfg.rows))
        .map_err(|_| Error::op("gemv_q8", format!("{rows} rows need too many blocks")))?;
    let lc = LaunchConfig {
        grid: [grid, 1, 1],
        block: [(cfg.waves as u32) * target.wave_size, 1, 1],
        shared_bytes: 0,
    };
    let base = xq.device_ptr();
    k.launch(
        stream,
        lc,
        &[
            w.into(),
            Arg::Ptr(base),
            Arg::Ptr(base + (batch * cols) as u64),
            Arg::from(&*y),
            (rows as i32).into(),
            (cols as i32).into(),
            (batch as i32).into(),
        ],
    )
}

/// A fused launch's input: x is the 8-bit output of a `resid` launch ([`FusedOut::Resid`]), an
/// RMSNorm without its 1/rms, which this launch applies from the producer's per-16 sums of squares.
pub struct NormIn<'a> {
    /// The producer's sums of squares, one per 16 elements of the normalized row (`cols / 16`).
    pub ss: &'a Buffer<f32>,
    /// The RMSNorm's epsilon: 1/rms = (Σ ss / cols + eps)^(−1/2).
    pub eps: f32,
}

/// A fused launch's output (batch 1). The forms with an 8-bit copy run blocks of 16 rows (16 / rows
/// sub-blocks of the plain kernel's block), which quantize their rows themselves.
pub enum FusedOut<'a> {
    /// `y` (f16, `rows`), scaled by [`NormIn`]'s 1/rms.
    Plain(&'a mut Buffer<f16>),
    /// The residual add and the next norm's input: `x += f16(y)` (the f32 residual stream, in
    /// place), then `q8` = the 8-bit copy of `x · w` (the norm weight; 1/rms is left to the next
    /// launch's [`NormIn`]) and `ss` = the sums of squares of `x` per 16 rows.
    Resid {
        x: &'a mut Buffer<f32>,
        w: &'a Buffer<f32>,
        q8: &'a mut Buffer<u8>,
        ss: &'a mut Buffer<f32>,
    },
    /// W is gate (rows `0..rows`) and up (`rows..2·rows`) stacked: `y = f16(act(f16(gate)) ·
    /// f16(up))` (`glue::gated`'s arithmetic) and its 8-bit copy `q8`, the down projection's input.
    Glu {
        act: GluAct,
        y: &'a mut Buffer<f16>,
        q8: &'a mut Buffer<u8>,
    },
}

impl FusedOut<'_> {
    fn fuse(&self, norm: bool) -> Option<&'static str> {
        match (self, norm) {
            (FusedOut::Plain(_), true) => Some("norm"),
            (FusedOut::Resid { .. }, false) => Some("resid"),
            (
                FusedOut::Glu {
                    act: GluAct::Silu, ..
                },
                true,
            ) => Some("norm_silu"),
            (
                FusedOut::Glu {
                    act: GluAct::GeluTanh,
                    ..
                },
                true,
            ) => Some("norm_gelu"),
            _ => None,
        }
    }
}

/// The configuration of a fused launch of `rows` output rows: `norm` takes
/// [`GemvQ8Config::default_for`]; the forms with an 8-bit output run blocks of 16 rows and 512
/// threads: `resid` 4 rows a sub-block, the gated forms 2 (4 matrix rows, as the plain kernel's
/// default on the stacked gate/up matrix), half that for q2_K and q3_K, on wave64 never fewer
/// than 2 (no gated form of q2_K and q3_K there).
/// `ROCMFORGE_Q8_FUSED_ROWS` overrides the rows of the gated forms (experiments).
pub fn fused_config(ty: QuantType, rows: usize, fuse: &str, target: &Target) -> GemvQ8Config {
    if !out_form(fuse) {
        return GemvQ8Config::default_for(ty, "f16", 1, rows, target);
    }
    let glu = fuse.starts_with("norm_");
    // q2_K / q3_K: half the rows (their four segments a unit take more registers)
    let lim = match glu {
        true => max_acc(ty.name()) / 4,
        false => max_acc(ty.name()) / 2,
    };
    let mut r = if glu { 2 } else { 4 };
    if glu {
        if let Some(v) = std::env::var("ROCMFORGE_Q8_FUSED_ROWS")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| ROWS.contains(v))
        {
            r = v;
        }
    }
    let wave = target.wave_size.max(1) as i64;
    r = r.min(lim).max(16 * wave / FUSED_BLOCK);
    GemvQ8Config {
        rows: r as usize,
        waves: (FUSED_BLOCK / (16 / r * wave)).max(1) as usize,
    }
}

/// Spec of the fused launch [`gemv_q8_fused`] makes for these arguments.
pub fn fused_spec(
    ty: QuantType,
    rows: usize,
    fuse: &str,
    cfg: Option<GemvQ8Config>,
    target: &Target,
) -> Result<KernelSpec> {
    let cfg = cfg.unwrap_or_else(|| fused_config(ty, rows, fuse, target));
    spec_fused(ty, "f16", 1, cfg, fuse, target.wave_size)
}

fn need(what: &str, ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(Error::op("gemv_q8", format!("{what}: {}", msg()))),
    }
}

/// `y = W · x` at batch 1 with a fused input norm and/or output epilogue ([`NormIn`],
/// [`FusedOut`]); `xq` is the 8-bit x ([`act_bytes`]`(1, cols)`). Every form but `Plain` without
/// `norm` (which is [`gemv_q8`]) has an instance: `Resid` takes no `norm`, `Glu` needs one.
#[allow(clippy::too_many_arguments)]
pub fn gemv_q8_fused(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    xq: &Buffer<u8>,
    norm: Option<&NormIn>,
    out: FusedOut,
    cfg: Option<GemvQ8Config>,
) -> Result<()> {
    let fuse = out.fuse(norm.is_some()).ok_or_else(|| {
        Error::op(
            "gemv_q8",
            match &out {
                FusedOut::Resid { .. } => "the residual epilogue takes a plain input (no NormIn)",
                FusedOut::Glu { .. } => "the gated epilogue needs a NormIn input",
                FusedOut::Plain(_) => "a plain launch without NormIn is gemv_q8 itself",
            },
        )
    })?;
    let glu = matches!(out, FusedOut::Glu { .. });
    need("format", supports(ty), || {
        format!(
            "{ty} has no integer decoder (formats: {})",
            FORMATS.join(", ")
        )
    })?;
    check_cols(cols)?;
    let mat_rows = if glu { 2 * rows } else { rows };
    check_matrix("gemv_q8", ty, mat_rows, cols, w.len())?;
    need("rows", rows <= i32::MAX as usize / 2, || {
        format!("{rows} rows exceed 2^30")
    })?;
    need("W", w.device_ptr() % 16 == 0, || {
        "must start at a 16-byte aligned address".into()
    })?;
    need(
        "x",
        xq.len() >= act_bytes(1, cols) && xq.device_ptr() % 16 == 0,
        || {
            format!(
                "quantized x must hold {} bytes at a 16-byte aligned address",
                act_bytes(1, cols)
            )
        },
    )?;
    let plain = matches!(out, FusedOut::Plain(_));
    need("rows", plain || rows % 16 == 0, || {
        format!("{rows} output rows: the 8-bit output needs a multiple of 16")
    })?;
    let (ss_in, eps) = match norm {
        Some(n) => {
            need("norm", n.ss.len() >= cols / 16, || {
                format!("{} sums of squares for {} groups", n.ss.len(), cols / 16)
            })?;
            need("norm", n.eps.is_finite() && n.eps >= 0.0, || {
                format!("eps {}", n.eps)
            })?;
            (n.ss.device_ptr(), n.eps)
        }
        None => (0, 0.0),
    };
    let q8_ok = |q: &Buffer<u8>| q.len() >= act_bytes(1, rows) && q.device_ptr() % 16 == 0;
    let q8_msg = || {
        format!(
            "the 8-bit output needs {} bytes at a 16-byte aligned address",
            act_bytes(1, rows)
        )
    };
    // y, residual x, norm weight, 8-bit output, sums of squares out
    let (y, xres, nw, oq, ss_out) = match &out {
        FusedOut::Plain(y) => {
            need("y", y.len() >= rows, || {
                format!("{} elements for {rows} rows", y.len())
            })?;
            (y.device_ptr(), 0, 0, 0, 0)
        }
        FusedOut::Resid { x, w, q8, ss } => {
            need("x", x.len() >= rows && w.len() >= rows, || {
                format!(
                    "residual {} and norm weight {} elements for {rows} rows",
                    x.len(),
                    w.len()
                )
            })?;
            need("q8", q8_ok(q8), q8_msg)?;
            need("ss", ss.len() >= rows / 16, || {
                format!("{} sums for {} groups", ss.len(), rows / 16)
            })?;
            (
                0,
                x.device_ptr(),
                w.device_ptr(),
                q8.device_ptr(),
                ss.device_ptr(),
            )
        }
        FusedOut::Glu { y, q8, .. } => {
            need("y", y.len() >= rows, || {
                format!("{} elements for {rows} rows", y.len())
            })?;
            need("q8", q8_ok(q8), q8_msg)?;
            (y.device_ptr(), 0, 0, q8.device_ptr(), 0)
        }
    };
    let target = dev.target();
    let spec = fused_spec(ty, rows, fuse, cfg, target)?;
    let r = spec.int("rows") as usize;
    let k = Jit::global().kernel(dev, &spec)?;
    // the forms with an 8-bit output: blocks of 16 rows, 16 / r sub-blocks
    let (per_block, subs) = match plain {
        true => (r, 1),
        false => (16, 16 / r),
    };
    let lc = LaunchConfig {
        grid: [rows.div_ceil(per_block) as u32, 1, 1],
        block: [
            (subs * spec.int("waves") as usize) as u32 * target.wave_size,
            1,
            1,
        ],
        shared_bytes: 0,
    };
    let base = xq.device_ptr();
    let os = if oq == 0 { 0 } else { oq + rows as u64 };
    k.launch(
        stream,
        lc,
        &[
            w.into(),
            Arg::Ptr(base),
            Arg::Ptr(base + cols as u64),
            Arg::Ptr(y),
            (rows as i32).into(),
            (cols as i32).into(),
            // batch 1 passed at run time: the main loop is then the plain instance's code
            1i32.into(),
            Arg::Ptr(ss_in),
            eps.into(),
            Arg::Ptr(xres),
            Arg::Ptr(nw),
            Arg::Ptr(oq),
            Arg::Ptr(os),
            Arg::Ptr(ss_out),
        ],
    )
}

/// CPU reference of a `resid` launch's outputs from the GEMV's f16 output `y16`: the residual
/// stream after the add (`x + y16`), the 8-bit copy of `x · w` (codes and per-16 pairs, as
/// [`quantize_x_ref`]) and the per-16 sums of squares of x (the kernel's 16-lane tree order).
pub fn resid_ref(
    x: &[f32],
    y16: &[f16],
    w: &[f32],
) -> Result<(Vec<f32>, Vec<i8>, Vec<[f32; 2]>, Vec<f32>)> {
    if x.len() != y16.len() || x.len() != w.len() || x.len() % 16 != 0 {
        return Err(Error::op(
            "gemv_q8",
            format!(
                "resid_ref: x {}, y {}, w {} (equal, a multiple of 16)",
                x.len(),
                y16.len(),
                w.len()
            ),
        ));
    }
    let xs: Vec<f32> = x.iter().zip(y16).map(|(a, b)| a + b.to_f32()).collect();
    let v: Vec<f32> = xs.iter().zip(w).map(|(a, b)| a * b).collect();
    let (q, s) = quantize_x_ref(&v, 1, v.len())?;
    let ss = xs
        .chunks_exact(16)
        .map(|g| {
            let mut t: Vec<f32> = g.iter().map(|v| v * v).collect();
            for m in [8, 4, 2, 1] {
                t = (0..16).map(|l| t[l] + t[l ^ m]).collect();
            }
            t[0]
        })
        .collect();
    Ok((xs, q, s, ss))
}

/// CPU reference of [`quantize_x`]: the int8 codes and the per-16 (d, d·Σq) pairs.
pub fn quantize_x_ref(x: &[f32], batch: usize, cols: usize) -> Result<(Vec<i8>, Vec<[f32; 2]>)> {
    check_cols(cols)?;
    if x.len() != batch * cols {
        return Err(Error::op(
            "q8_act",
            format!("x has {} elements, want {}", x.len(), batch * cols),
        ));
    }
    let mut q = vec![0i8; batch * cols];
    let mut s = vec![[0f32; 2]; batch * cols / 16];
    for ((xb, qb), sb) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)).zip(&mut s) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (o, v) in qb.iter_mut().zip(xb) {
            *o = (v * id).round_ties_even() as i8;
        }
        let sum: i32 = qb.iter().map(|&v| v as i32).sum();
        *sb = [d, d * sum as f32];
    }
    Ok((q, s))
}

/// CPU reference of [`gemv_q8`] in f64: W dequantized times the dequantized codes (d·q), which is
/// what the integer kernel computes exactly up to f32 rounding. Returns `batch × rows`.
pub fn gemv_q8_ref(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
) -> Result<Vec<f64>> {
    let row_bytes = check_matrix("gemv_q8", ty, rows, cols, w.len())?;
    let (q, s) = quantize_x_ref(x, batch, cols)?;
    let xd: Vec<f64> = q
        .iter()
        .enumerate()
        .map(|(i, &v)| s[i / 16][0] as f64 * v as f64)
        .collect();
    super::gemv::dense_product_ref(ty, w, row_bytes, rows, cols, &xd, batch)
}
