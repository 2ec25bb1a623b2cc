//! MLP ops: RMSNorm/LayerNorm, activations, embedding, linear layers (GEMV/GEMM/BLAS).
//!
//! One file per op: [`norm`] (RMSNorm, RMSNorm fused with the residual add, LayerNorm),
//! [`activation`] (SwiGLU, GELU, add), [`embedding`] (float and quantized tables; also the
//! dequantize-to-f16 step of the BLAS fallback), [`qgemm`] (fused dequantize × GEMM on matrix cores)
//! and [`linear`] (y = x·Wᵀ + b: dispatch to GEMV, the fused GEMM or dequantize + vendor BLAS).

pub mod activation;
pub mod embedding;
pub mod linear;
pub mod norm;
pub mod qgemm;

use crate::error::{Error, Result};
use crate::gpu::Buffer;
use crate::jit::Family;

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![
        &norm::FAMILY,
        &activation::FAMILY,
        &embedding::FAMILY,
        &qgemm::FAMILY,
    ]
}

/// Elements per vector access: 16 bytes' worth when `n` (the contiguous extent) allows it, else 1.
pub(crate) fn vec_width(dtype: &str, n: usize) -> i64 {
    let w = match dtype {
        "f32" => 4,
        _ => 8,
    };
    if n % w == 0 {
        w as i64
    } else {
        1
    }
}

/// The vector widths a dtype's instances exist for (1 and 16 bytes).
pub(crate) fn vec_ok(dtype: &str, vec: i64) -> std::result::Result<(), String> {
    let full = if dtype == "f32" { 4 } else { 8 };
    if vec == 1 || vec == full {
        Ok(())
    } else {
        Err(format!(
            "vec {vec} for {dtype}: supported 1 or {full} (16-byte accesses)"
        ))
    }
}

/// Error unless `b` holds exactly `want` elements.
pub(crate) fn check_len<T: bytemuck::Pod>(
    op: &'static str,
    what: &str,
    b: &Buffer<T>,
    want: usize,
) -> Result<()> {
    if b.len() != want {
        return Err(Error::op(
            op,
            format!("{what} has {} elements, expected {want}", b.len()),
        ));
    }
    Ok(())
}

/// `rows` = len / hidden, or an error naming the mismatch.
pub(crate) fn rows_of(op: &'static str, len: usize, hidden: usize) -> Result<usize> {
    if hidden == 0 || len % hidden != 0 {
        return Err(Error::op(
            op,
            format!("{len} elements is not a whole number of rows of {hidden}"),
        ));
    }
    if hidden > i32::MAX as usize || len / hidden > i32::MAX as usize {
        return Err(Error::op(
            op,
            format!("{} rows of {hidden} exceed the 2^31 limits", len / hidden),
        ));
    }
    Ok(len / hidden)
}

/// Source that gives a kernel the block structs and the `rf_fmt_<name>` dequantizers.
pub(crate) fn quant_preamble() -> String {
    crate::ops::quantized::quant_preamble()
}
