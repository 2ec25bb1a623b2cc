//! Dequantize kernels: a quantized matrix (or a set of its rows, for embedding lookups) to
//! f32 / f16 / bf16, bit-exactly as [`crate::quant::dequantize`] (rounded once to f16 / bf16).

use super::{check_matrix, preamble, FORMATS};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};
use crate::quant::{self, QuantType};

/// The dequant family: one instance per (format, output dtype).
pub static FAMILY: Family = Family {
    name: "dequant",
    doc:
        "quantized rows (whole tensor or gathered by index) to f32/f16/bf16, bit-exact with the CPU",
    body: "dequant.hip",
    instance: "dequant.inst",
    params: &[
        ParamDef {
            name: "format",
            kind: ParamKind::Choice { values: FORMATS },
            doc: "block format of the input",
        },
        ParamDef {
            name: "out",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "output element type",
        },
    ],
    validate: |s| {
        QuantType::from_name(s.str("format"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    },
    applies: any_target,
    preamble,
};

const BLOCK: u32 = 256;

/// Octets (8 elements) one block of the whole-tensor kernel decodes per tile: 256 threads times
/// as many octets each (1..=4) as keep the tile within 8 KiB of W. Mirrors `rf_dq_tile` in
/// `templates/dequant.hip` (the kernel loops over tiles, so a mismatch costs speed, not results).
pub fn tile_octets(ty: QuantType) -> usize {
    let opb = super::kernel_qk(ty) / 8;
    let bytes = ty.block_bytes() * super::kernel_qk(ty) / ty.block_elems();
    let u = 8192 / (BLOCK as usize * (bytes / opb).max(1));
    BLOCK as usize * u.clamp(1, 4)
}

/// Spec of one dequant kernel.
pub fn spec(ty: QuantType, out: &str, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[("format", ty.name().into()), ("out", out.into())],
        wave,
    )
}

/// Validate a dequant call: `w` holds `src_rows × cols` of `ty`, `out` has `out_rows × cols`
/// elements. Returns nothing; every problem is an error naming it.
pub fn check(
    ty: QuantType,
    src_rows: usize,
    cols: usize,
    w_bytes: usize,
    out_rows: usize,
    out_len: usize,
) -> Result<()> {
    check_matrix("dequant", ty, src_rows, cols, w_bytes)?;
    let want = out_rows
        .checked_mul(cols)
        .ok_or_else(|| Error::op("dequant", "output size overflows"))?;
    if out_len != want {
        return Err(Error::op(
            "dequant",
            format!("output has {out_len} elements, {out_rows} rows of {cols} need {want}"),
        ));
    }
    if want / 8 > (i32::MAX / 2) as usize || src_rows > i32::MAX as usize {
        return Err(Error::op(
            "dequant",
            format!("{out_rows} x {cols} is too large for one launch (more than 2^30 octets)"),
        ));
    }
    Ok(())
}

fn launch<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    src_rows: usize,
    cols: usize,
    idx: Option<&Buffer<i32>>,
    out_rows: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    let k = Jit::global().kernel(dev, &spec(ty, T::DTYPE, dev.target().wave_size)?)?;
    let octets = out_rows * cols / 8;
    let per_block = if idx.is_some() {
        BLOCK as usize
    } else {
        tile_octets(ty)
    };
    if idx.is_none() && w.device_ptr() % 16 != 0 {
        return Err(Error::op(
            "dequant",
            "W must start at a 16-byte aligned device address",
        ));
    }
    let grid = octets
        .div_ceil(per_block)
        .clamp(1, dev.target().max_grid[0] as usize);
    let cfg = LaunchConfig {
        grid: [grid as u32, 1, 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
    };
    let idx_arg = idx.map(Arg::from).unwrap_or(Arg::Ptr(0));
    k.launch(
        stream,
        cfg,
        &[
            w.into(),
            idx_arg,
            (src_rows as i32).into(),
            (out_rows as i32).into(),
            (cols as i32).into(),
            Arg::from(&*out),
        ],
    )
}

/// Dequantize a whole `rows × cols` matrix (`rows` rows of `cols` elements) into `out`.
pub fn dequant<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    check(ty, rows, cols, w.len(), rows, out.len())?;
    launch(dev, stream, ty, w, rows, cols, None, rows, out)
}

/// Gather rows: `out` row r = dequantized row `idx[r]` of the `rows × cols` matrix `w` (an index
/// outside `0..rows` gives a row of NaN).
pub fn dequant_rows<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    idx: &Buffer<i32>,
    out: &mut Buffer<T>,
) -> Result<()> {
    check(ty, rows, cols, w.len(), idx.len(), out.len())?;
    if idx.is_empty() {
        return Ok(());
    }
    launch(dev, stream, ty, w, rows, cols, Some(idx), idx.len(), out)
}

/// CPU reference: rows `idx` (or all rows) of the `rows × cols` matrix, as f32.
pub fn dequant_ref(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    idx: Option<&[i32]>,
) -> Result<Vec<f32>> {
    let row_bytes = check_matrix("dequant", ty, rows, cols, w.len())?;
    let all: Vec<i32> = (0..rows as i32).collect();
    let idx = idx.unwrap_or(&all);
    let mut out = vec![0f32; idx.len() * cols];
    for (o, &r) in out.chunks_exact_mut(cols).zip(idx) {
        if r < 0 || r as usize >= rows {
            o.fill(f32::NAN);
            continue;
        }
        let start = r as usize * row_bytes;
        quant::dequantize(ty, &w[start..start + row_bytes], o)?;
    }
    Ok(out)
}
