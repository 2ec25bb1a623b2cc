//! Fused dequant × vector: `y = W · x` for a quantized `W` (`rows × cols`, row-major blocks) and a
//! batch of 1..=8 right-hand sides (`x` is `batch × cols`, `y` is `batch × rows`). W is read once,
//! decoded in registers, never written out.

use super::{check_matrix, preamble, FORMATS};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};
use crate::quant::{self, QuantType};

/// Compiled batch sizes: a call with `batch` right-hand sides uses the smallest one ≥ `batch`.
pub const BATCHES: &[i64] = &[1, 4, 8];
/// Most right-hand sides per call.
pub const MAX_BATCH: usize = 8;
/// Waves per block (fixed in the instance template).
pub const WAVES_PER_BLOCK: usize = 4;

/// The gemv family: (format, x/y dtype, compiled batch, rows per wave).
pub static FAMILY: Family = Family {
    name: "gemv",
    doc: "y = W x with W quantized (any format), x/y f32/f16/bf16, 1..8 right-hand sides; f32 accumulation",
    body: "gemv.hip",
    instance: "gemv.inst",
    params: &[
        ParamDef { name: "format", kind: ParamKind::Choice { values: FORMATS }, doc: "block format of W" },
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of x and y" },
        ParamDef { name: "batch", kind: ParamKind::Int { prefix: "b", values: BATCHES }, doc: "right-hand sides compiled for (calls may pass fewer)" },
        ParamDef { name: "rows", kind: ParamKind::Int { prefix: "r", values: &[1, 2] }, doc: "rows of W per wave (tunable)" },
    ],
    validate: |s| {
        QuantType::from_name(s.str("format")).map_err(|e| e.to_string())?;
        if s.int("rows") > 1 && s.int("batch") > 1 {
            return Err(format!("rows per wave {} needs batch 1 (accumulators: rows x batch <= 2)", s.int("rows")));
        }
        Ok(())
    },
    applies: any_target,
    preamble,
};

/// Launch configuration a caller (or the tuner) may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemvConfig {
    /// Rows of W per wave: 1 or 2 (2 only for batch 1).
    pub rows_per_wave: usize,
}

impl GemvConfig {
    /// The default for a batch size.
    pub fn for_batch(batch: usize) -> GemvConfig {
        GemvConfig {
            rows_per_wave: if batch == 1 { 2 } else { 1 },
        }
    }
}

/// The compiled batch size used for `batch` right-hand sides.
pub fn compiled_batch(batch: usize) -> Result<i64> {
    BATCHES
        .iter()
        .copied()
        .find(|&b| b as usize >= batch && batch >= 1)
        .ok_or_else(|| Error::op("gemv", format!("batch {batch} is outside 1..={MAX_BATCH}")))
}

/// Spec of one gemv kernel.
pub fn spec(
    ty: QuantType,
    dtype: &str,
    batch: usize,
    cfg: GemvConfig,
    wave: u32,
) -> Result<KernelSpec> {
    let b = compiled_batch(batch)?;
    KernelSpec::new(
        &FAMILY,
        &[
            ("format", ty.name().into()),
            ("dtype", dtype.into()),
            ("batch", b.into()),
            ("rows", (cfg.rows_per_wave as i64).into()),
        ],
        wave,
    )
}

/// Validate shapes: W `rows × cols` of `ty` in `w_bytes`, x `batch × cols`, y `batch × rows`.
pub fn check(
    ty: QuantType,
    rows: usize,
    cols: usize,
    batch: usize,
    w_bytes: usize,
    x_len: usize,
    y_len: usize,
) -> Result<()> {
    check_matrix("gemv", ty, rows, cols, w_bytes)?;
    compiled_batch(batch)?;
    if x_len != batch * cols {
        return Err(Error::op(
            "gemv",
            format!(
                "x has {x_len} elements; batch {batch} x cols {cols} needs {}",
                batch * cols
            ),
        ));
    }
    if y_len != batch * rows {
        return Err(Error::op(
            "gemv",
            format!(
                "y has {y_len} elements; batch {batch} x rows {rows} needs {}",
                batch * rows
            ),
        ));
    }
    if rows > i32::MAX as usize || cols > i32::MAX as usize {
        return Err(Error::op(
            "gemv",
            format!("{rows} x {cols} exceeds 2^31 rows or columns"),
        ));
    }
    Ok(())
}

/// `y = W · x` with the default configuration for the batch size.
#[allow(clippy::too_many_arguments)]
pub fn gemv<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
) -> Result<()> {
    gemv_with(
        dev,
        stream,
        ty,
        w,
        rows,
        cols,
        x,
        batch,
        y,
        GemvConfig::for_batch(batch),
    )
}

/// `y = W · x` with an explicit configuration.
#[allow(clippy::too_many_arguments)]
pub fn gemv_with<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
    cfg: GemvConfig,
) -> Result<()> {
    check(ty, rows, cols, batch, w.len(), x.len(), y.len())?;
    let wave = dev.target().wave_size;
    let k = Jit::global().kernel(dev, &spec(ty, T::DTYPE, batch, cfg, wave)?)?;
    let rows_per_block = WAVES_PER_BLOCK * cfg.rows_per_wave;
    let grid = rows.div_ceil(rows_per_block);
    let grid = u32::try_from(grid)
        .map_err(|_| Error::op("gemv", format!("{rows} rows need too many blocks")))?;
    let lc = LaunchConfig {
        grid: [grid, 1, 1],
        block: [WAVES_PER_BLOCK as u32 * wave, 1, 1],
        shared_bytes: 0,
    };
    k.launch(
        stream,
        lc,
        &[
            w.into(),
            x.into(),
            Arg::from(&*y),
            (rows as i32).into(),
            (cols as i32).into(),
            (batch as i32).into(),
        ],
    )
}

/// CPU reference in f64: W dequantized by [`crate::quant::dequantize`], `x` as f32 (`batch × cols`);
/// returns `batch × rows`.
pub fn gemv_ref(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
) -> Result<Vec<f64>> {
    let row_bytes = check_matrix("gemv", ty, rows, cols, w.len())?;
    if x.len() != batch * cols {
        return Err(Error::op(
            "gemv",
            format!("x has {} elements, want {}", x.len(), batch * cols),
        ));
    }
    let mut y = vec![0f64; batch * rows];
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        quant::dequantize(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut row)?;
        for b in 0..batch {
            let xb = &x[b * cols..(b + 1) * cols];
            y[b * rows + r] = row.iter().zip(xb).map(|(a, c)| *a as f64 * *c as f64).sum();
        }
    }
    Ok(y)
}
