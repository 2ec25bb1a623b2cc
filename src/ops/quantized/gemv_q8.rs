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
/// Waves per block.
pub const WAVES: &[i64] = &[4];
/// Output dtypes.
pub const DTYPES: &[&str] = &["f32", "f16"];

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
        ParamDef { name: "waves", kind: ParamKind::Int { prefix: "w", values: WAVES }, doc: "waves per block" },
    ],
    validate: |s| {
        let (r, b) = (s.int("rows"), s.int("batch"));
        let lim = max_acc(s.str("format"));
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
    KernelSpec::new(
        &FAMILY,
        &[
            ("format", ty.name().into()),
            ("dtype", dtype.into()),
            ("batch", compiled_batch(batch)?.into()),
            ("rows", (cfg.rows as i64).into()),
            ("waves", (cfg.waves as i64).into()),
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
