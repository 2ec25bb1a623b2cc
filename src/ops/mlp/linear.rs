//! Linear layer y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias), x/y f16, W f16/bf16/f32 or any quantized
//! format (bytes + [`QuantType`]). Three ways, chosen by [`LinearPath`]:
//!
//! * decode (M ≤ 8): the fused dequant-GEMV of `ops::quantized::gemv`;
//! * prefill: the fused quantized GEMM of [`super::qgemm`];
//! * fallback and baseline: dequantize W to f16 (the embedding kernel with no ids), then the vendor
//!   BLAS GEMM (cuBLAS / hipBLAS, f32 accumulation) — [`linear_blas`].

use super::{activation, embedding, qgemm};
use crate::error::{Error, Result};
use crate::gpu::blas::{Blas, BlasType};
use crate::gpu::{Buffer, Device, Stream};
use crate::quant::QuantType;
use half::f16;

/// Rows of x at or below which decode uses the fused GEMV.
pub const GEMV_MAX_ROWS: usize = 8;

/// How to compute a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearPath {
    /// GEMV for M ≤ [`GEMV_MAX_ROWS`], the fused GEMM above.
    Auto,
    /// The fused dequant-GEMV (decode).
    Gemv,
    /// The fused quantized GEMM.
    Qgemm,
}

/// y = x · Wᵀ (+ bias) on the path `path` picks (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn linear(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<f16>,
    w: &Buffer<u8>,
    fmt: QuantType,
    (m, n, k): (usize, usize, usize),
    bias: Option<&Buffer<f16>>,
    y: &mut Buffer<f16>,
    path: LinearPath,
) -> Result<()> {
    let gemv = match path {
        LinearPath::Auto => m <= GEMV_MAX_ROWS,
        LinearPath::Gemv => true,
        LinearPath::Qgemm => false,
    };
    if gemv {
        gemv_dispatch(dev, stream, fmt, w, (m, n, k), x, y)?;
        if let Some(b) = bias {
            activation::add_bias(dev, stream, y, b, n)?;
        }
        Ok(())
    } else {
        qgemm::qgemm(dev, stream, x, w, fmt, (m, n, k), bias, y, None, None)
    }
}

/// Bytes of an [N, K] matrix of `fmt`, or an error naming the mismatch.
fn weight_bytes(fmt: QuantType, n: usize, k: usize) -> Result<usize> {
    fmt.row_bytes(k)
        .map(|r| r * n)
        .map_err(|e| Error::op("linear", e.to_string()))
}

/// Dequantize + vendor BLAS: W is dequantized into `scratch` (f16, at least N·K elements; unused for
/// f16 weights, which go to the BLAS as they are), then y = x · Wᵀ with f32 accumulation, then the
/// bias is added. The baseline the fused GEMM is measured against, and the fallback where it does
/// not apply.
#[allow(clippy::too_many_arguments)]
pub fn linear_blas(
    dev: &Device,
    stream: &Stream,
    blas: &Blas,
    x: &Buffer<f16>,
    w: &Buffer<u8>,
    fmt: QuantType,
    (m, n, k): (usize, usize, usize),
    bias: Option<&Buffer<f16>>,
    y: &mut Buffer<f16>,
    scratch: &mut Buffer<f16>,
) -> Result<()> {
    super::check_len("linear", "x", x, m * k)?;
    super::check_len("linear", "y", y, m * n)?;
    super::check_len("linear", "w (bytes)", w, weight_bytes(fmt, n, k)?)?;
    let wptr = match fmt {
        QuantType::F16 => w.device_ptr(),
        QuantType::F32 | QuantType::BF16 => {
            return Err(Error::op(
                "linear",
                format!("{fmt} weights: convert to f16 first (the BLAS path takes f16 W)"),
            ));
        }
        _ => {
            super::check_len("linear", "scratch (dequantized W)", scratch, n * k)?;
            embedding::dequant_rows(dev, stream, fmt, w, k, scratch)?;
            scratch.device_ptr()
        }
    };
    blas.linear(
        stream,
        m,
        n,
        k,
        x.device_ptr(),
        wptr,
        BlasType::F16,
        y.device_ptr(),
        BlasType::F16,
    )?;
    if let Some(b) = bias {
        activation::add_bias(dev, stream, y, b, n)?;
    }
    Ok(())
}

/// The decode GEMV (`ops::quantized::gemv`: x [M, K] and y [M, N] are its batch-major layouts).
fn gemv_dispatch(
    dev: &Device,
    stream: &Stream,
    fmt: QuantType,
    w: &Buffer<u8>,
    (m, n, k): (usize, usize, usize),
    x: &Buffer<f16>,
    y: &mut Buffer<f16>,
) -> Result<()> {
    use crate::ops::quantized::gemv::{self, GemvConfig};
    use crate::ops::Element;
    let t = dev.target();
    let mut cfg = GemvConfig::default_for_shape(fmt, f16::DTYPE, m, (n, k), t);
    // the default instance may still be compiling in the background: its stand-in runs
    if let Some(fb) = gemv::spec(fmt, f16::DTYPE, m, cfg, t.wave_size)
        .ok()
        .and_then(|s| crate::jit::Jit::global().substitute(t, &s))
    {
        cfg = crate::ops::fallback::gemv_config(&fb);
    }
    gemv::gemv_with(dev, stream, fmt, w, n, k, x, m, y, cfg)
}
