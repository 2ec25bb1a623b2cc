//! Embedding lookup: out[i, :] = table[ids[i], :] from a float (f32/f16/bf16) or quantized table
//! (rows dequantized on the fly through `dequant8`), output f32/f16/bf16. An id outside the table
//! gives a row of NaN (never an out-of-bounds read). The same kernel with no ids dequantizes whole
//! weight matrices (the first step of the BLAS fallback of [`super::linear`]).

use super::{check_len, quant_preamble};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};
use crate::quant::QuantType;

/// Table formats: every format of the dequant8 contract (one list for the whole crate).
const TABLES: &[&str] = crate::ops::quantized::FORMATS;

fn is_float(t: &str) -> bool {
    matches!(t, "f32" | "f16" | "bf16")
}

/// The embedding family.
pub static FAMILY: Family = Family {
    name: "embed",
    doc: "embedding lookup / row dequantization from a float or quantized table",
    body: "embedding.hip",
    instance: "embedding.inst",
    params: &[
        ParamDef {
            name: "table",
            kind: ParamKind::Choice { values: TABLES },
            doc: "table element type or quant format",
        },
        ParamDef {
            name: "out",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "output element type",
        },
        ParamDef {
            name: "vec",
            kind: ParamKind::Int {
                prefix: "v",
                values: &[1, 8],
            },
            doc: "elements per thread (quantized tables: 8)",
        },
    ],
    validate: |s| {
        if !is_float(s.str("table")) && s.int("vec") != 8 {
            return Err(format!(
                "quantized tables ({}) are read 8 elements per thread: vec must be 8",
                s.str("table")
            ));
        }
        Ok(())
    },
    applies: any_target,
    preamble: |s| {
        if is_float(s.str("table")) {
            String::new()
        } else {
            quant_preamble()
        }
    },
};

/// The instance for a table of `dim`-element rows.
pub fn spec(table: &str, out: &str, dim: usize, wave: u32) -> Result<KernelSpec> {
    let vec = if !is_float(table) || dim % 8 == 0 {
        8
    } else {
        1
    };
    KernelSpec::new(
        &FAMILY,
        &[
            ("table", table.into()),
            ("out", out.into()),
            ("vec", (vec as i64).into()),
        ],
        wave,
    )
}

/// Rows per launch (grid x).
const MAX_ROWS: usize = 1 << 30;

#[allow(clippy::too_many_arguments)]
fn launch<O: Element>(
    dev: &Device,
    stream: &Stream,
    table: &str,
    table_ptr: u64,
    vocab: usize,
    dim: usize,
    ids: Option<&Buffer<i32>>,
    rows: usize,
    out: &mut Buffer<O>,
) -> Result<()> {
    const OP: &str = "embedding";
    if dim == 0 || dim > i32::MAX as usize || vocab > i32::MAX as usize {
        return Err(Error::op(
            OP,
            format!("dim {dim} / vocab {vocab} out of range"),
        ));
    }
    check_len(OP, "out", out, rows * dim)?;
    if rows == 0 {
        return Ok(());
    }
    let s = spec(table, O::DTYPE, dim, dev.target().wave_size)?;
    let k = Jit::global().kernel(dev, &s)?;
    let per_block = 256 * s.int("vec") as usize;
    let mut r0 = 0;
    while r0 < rows {
        let n = (rows - r0).min(MAX_ROWS);
        let cfg = LaunchConfig {
            grid: [n as u32, dim.div_ceil(per_block) as u32, 1],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        let ids_ptr = ids.map(|b| b.device_ptr() + 4 * r0 as u64).unwrap_or(0);
        let out_ptr = out.device_ptr() + (r0 * dim * std::mem::size_of::<O>()) as u64;
        k.launch(
            stream,
            cfg,
            &[
                (dim as i32).into(),
                (vocab as i32).into(),
                Arg::Ptr(ids_ptr),
                (r0 as i64).into(),
                Arg::Ptr(table_ptr),
                Arg::Ptr(out_ptr),
            ],
        )?;
        r0 += n;
    }
    Ok(())
}

/// out[i, :] = table[ids[i], :] for a float table of `dim`-element rows.
pub fn embed<T: Element, O: Element>(
    dev: &Device,
    stream: &Stream,
    table: &Buffer<T>,
    dim: usize,
    ids: &Buffer<i32>,
    out: &mut Buffer<O>,
) -> Result<()> {
    let vocab = super::rows_of("embedding", table.len(), dim)?;
    launch(
        dev,
        stream,
        T::DTYPE,
        table.device_ptr(),
        vocab,
        dim,
        Some(ids),
        ids.len(),
        out,
    )
}

/// Row bytes of a quantized table, checked against the buffer; returns the row count.
fn quant_rows(fmt: QuantType, table: &Buffer<u8>, dim: usize) -> Result<usize> {
    if is_float(fmt.name()) {
        return Err(Error::op(
            "embedding",
            format!("{fmt} is not a quantized format (use embed for float tables)"),
        ));
    }
    let rb = fmt
        .row_bytes(dim)
        .map_err(|e| Error::op("embedding", e.to_string()))?;
    if table.is_empty() || table.len() % rb != 0 {
        return Err(Error::op(
            "embedding",
            format!(
                "table of {} bytes is not whole rows of {rb} bytes ({dim} {fmt} elements)",
                table.len()
            ),
        ));
    }
    Ok(table.len() / rb)
}

/// out[i, :] = dequant(table[ids[i], :]) for a quantized table (`dim` a multiple of the block size).
pub fn embed_quant<O: Element>(
    dev: &Device,
    stream: &Stream,
    fmt: QuantType,
    table: &Buffer<u8>,
    dim: usize,
    ids: &Buffer<i32>,
    out: &mut Buffer<O>,
) -> Result<()> {
    let vocab = quant_rows(fmt, table, dim)?;
    launch(
        dev,
        stream,
        fmt.name(),
        table.device_ptr(),
        vocab,
        dim,
        Some(ids),
        ids.len(),
        out,
    )
}

/// Dequantize every row of a quantized [rows, dim] matrix into `out`.
pub fn dequant_rows<O: Element>(
    dev: &Device,
    stream: &Stream,
    fmt: QuantType,
    table: &Buffer<u8>,
    dim: usize,
    out: &mut Buffer<O>,
) -> Result<()> {
    let rows = quant_rows(fmt, table, dim)?;
    launch(
        dev,
        stream,
        fmt.name(),
        table.device_ptr(),
        rows,
        dim,
        None,
        rows,
        out,
    )
}

/// CPU reference: rows of `table` (already in f32) picked by `ids`; NaN rows for invalid ids.
pub fn embed_ref(table: &[f32], dim: usize, ids: &[i32]) -> Vec<f32> {
    let vocab = table.len() / dim.max(1);
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        if id >= 0 && (id as usize) < vocab {
            out.extend_from_slice(&table[id as usize * dim..(id as usize + 1) * dim]);
        } else {
            out.extend(std::iter::repeat_n(f32::NAN, dim));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            spec("f16", "f32", 576, 32).unwrap().uri(),
            "embed.f16.f32.v8.w32"
        );
        assert_eq!(
            spec("bf16", "f16", 1001, 64).unwrap().uri(),
            "embed.bf16.f16.v1.w64"
        );
        assert_eq!(
            spec("q4_K", "f16", 4096, 32).unwrap().uri(),
            "embed.q4_K.f16.v8.w32"
        );
        assert!(KernelSpec::new(
            &FAMILY,
            &[
                ("table", "q8_0".into()),
                ("out", "f16".into()),
                ("vec", 1.into())
            ],
            32
        )
        .is_err());
        let r = embed_ref(&[1.0, 2.0, 3.0, 4.0], 2, &[1, -1]);
        assert_eq!(&r[..2], &[3.0, 4.0]);
        assert!(r[2].is_nan() && r[3].is_nan());
        for t in TABLES {
            assert!(QuantType::from_name(t).is_ok(), "{t}");
        }
    }
}
