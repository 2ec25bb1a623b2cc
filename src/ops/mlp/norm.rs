//! RMSNorm (optionally fused with the residual add) and LayerNorm over the last dimension.
//!
//! * `rms`:     out = x / sqrt(mean(x²) + eps) · w
//! * `rms_add`: h = x + r (rounded to the element type), r ← h, out = rms(h) · w
//! * `layer`:   out = (x − mean) / sqrt(var + eps) · w + b
//!
//! One block per row, f32 accumulation, 16-byte accesses when the hidden size allows them.

use super::{check_len, rows_of, vec_ok, vec_width};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_preamble, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};

/// The norm family.
pub static FAMILY: Family = Family {
    name: "norm",
    doc: "RMSNorm, RMSNorm fused with the residual add, LayerNorm (one block per row, f32 accumulation)",
    body: "norm.hip",
    instance: "norm.inst",
    params: &[
        ParamDef { name: "kind", kind: ParamKind::Choice { values: &["rms", "rms_add", "layer"] }, doc: "which normalisation" },
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of x, residual, weight, bias and out" },
        ParamDef { name: "block", kind: ParamKind::Int { prefix: "b", values: &[128, 256, 512] }, doc: "threads per block (one row)" },
        ParamDef { name: "vec", kind: ParamKind::Int { prefix: "v", values: &[1, 4, 8] }, doc: "elements per access (16 bytes or 1)" },
    ],
    validate: |s| vec_ok(s.str("dtype"), s.int("vec")),
    applies: any_target,
    preamble: no_preamble,
};

/// Which normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    Rms,
    RmsAdd,
    Layer,
}

impl NormKind {
    fn name(self) -> &'static str {
        match self {
            NormKind::Rms => "rms",
            NormKind::RmsAdd => "rms_add",
            NormKind::Layer => "layer",
        }
    }
}

const BLOCKS: [usize; 3] = [128, 256, 512];

/// The instance for `hidden` elements per row: 16-byte vectors when `hidden` allows, and the smallest
/// block whose threads hold the row in registers (four vectors each; capped at 512 threads, longer rows re-read the rest). Small
/// blocks let many rows be in flight per multiprocessor.
pub fn spec(kind: NormKind, dtype: &str, hidden: usize, wave: u32) -> Result<KernelSpec> {
    let vec = vec_width(dtype, hidden);
    let nvec = hidden / vec as usize;
    let block = BLOCKS
        .iter()
        .copied()
        .find(|b| 4 * b >= nvec)
        .unwrap_or(512);
    KernelSpec::new(
        &FAMILY,
        &[
            ("kind", kind.name().into()),
            ("dtype", dtype.into()),
            ("block", block.into()),
            ("vec", vec.into()),
        ],
        wave,
    )
}

#[allow(clippy::too_many_arguments)]
fn launch<T: Element>(
    dev: &Device,
    stream: &Stream,
    kind: NormKind,
    hidden: usize,
    eps: f32,
    x: &Buffer<T>,
    residual: Option<&mut Buffer<T>>,
    w: &Buffer<T>,
    b: Option<&Buffer<T>>,
    out: &mut Buffer<T>,
) -> Result<()> {
    const OP: &str = "norm";
    let rows = rows_of(OP, x.len(), hidden)?;
    check_len(OP, "weight", w, hidden)?;
    check_len(OP, "out", out, x.len())?;
    if let Some(b) = b {
        check_len(OP, "bias", b, hidden)?;
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::op(
            OP,
            format!("eps must be finite and ≥ 0, got {eps}"),
        ));
    }
    let rp = match residual {
        Some(r) => {
            check_len(OP, "residual", r, x.len())?;
            r.device_ptr()
        }
        None => 0,
    };
    if rows == 0 {
        return Ok(());
    }
    let s = spec(kind, T::DTYPE, hidden, dev.target().wave_size)?;
    let k = Jit::global().kernel(dev, &s)?;
    let cfg = LaunchConfig {
        grid: [rows as u32, 1, 1],
        block: [s.int("block") as u32, 1, 1],
        shared_bytes: 0,
    };
    let bp = b.map(|b| b.device_ptr()).unwrap_or(0);
    k.launch(
        stream,
        cfg,
        &[
            (hidden as i32).into(),
            eps.into(),
            x.into(),
            Arg::Ptr(rp),
            w.into(),
            Arg::Ptr(bp),
            Arg::from(&*out),
        ],
    )
}

/// out = RMSNorm(x) · weight, rows of `hidden` elements.
pub fn rms_norm<T: Element>(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<T>,
    weight: &Buffer<T>,
    eps: f32,
    hidden: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    launch(
        dev,
        stream,
        NormKind::Rms,
        hidden,
        eps,
        x,
        None,
        weight,
        None,
        out,
    )
}

/// residual ← x + residual; out = RMSNorm(residual) · weight (the add and the norm in one pass).
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_residual<T: Element>(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<T>,
    residual: &mut Buffer<T>,
    weight: &Buffer<T>,
    eps: f32,
    hidden: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    launch(
        dev,
        stream,
        NormKind::RmsAdd,
        hidden,
        eps,
        x,
        Some(residual),
        weight,
        None,
        out,
    )
}

/// out = LayerNorm(x) · weight + bias.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm<T: Element>(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<T>,
    weight: &Buffer<T>,
    bias: &Buffer<T>,
    eps: f32,
    hidden: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    launch(
        dev,
        stream,
        NormKind::Layer,
        hidden,
        eps,
        x,
        None,
        weight,
        Some(bias),
        out,
    )
}

/// CPU reference of [`rms_norm`] (f64), before rounding to `T`.
pub fn rms_norm_ref<T: Element>(x: &[T], w: &[T], eps: f32, hidden: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(hidden) {
        let ms = row.iter().map(|v| (v.to_f32() as f64).powi(2)).sum::<f64>() / hidden as f64;
        let s = 1.0 / (ms + eps as f64).sqrt();
        out.extend(
            row.iter()
                .zip(w)
                .map(|(v, w)| (v.to_f32() as f64 * s * w.to_f32() as f64) as f32),
        );
    }
    out
}

/// CPU reference of [`rms_norm_residual`]: (out before rounding, the new residual in `T`).
pub fn rms_norm_residual_ref<T: Element>(
    x: &[T],
    r: &[T],
    w: &[T],
    eps: f32,
    hidden: usize,
) -> (Vec<f32>, Vec<T>) {
    let h: Vec<T> = x
        .iter()
        .zip(r)
        .map(|(a, b)| T::from_f32(a.to_f32() + b.to_f32()))
        .collect();
    (rms_norm_ref(&h, w, eps, hidden), h)
}

/// CPU reference of [`layer_norm`] (f64, two-pass variance), before rounding to `T`.
pub fn layer_norm_ref<T: Element>(x: &[T], w: &[T], b: &[T], eps: f32, hidden: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(hidden) {
        let mean = row.iter().map(|v| v.to_f32() as f64).sum::<f64>() / hidden as f64;
        let var = row
            .iter()
            .map(|v| (v.to_f32() as f64 - mean).powi(2))
            .sum::<f64>()
            / hidden as f64;
        let s = 1.0 / (var + eps as f64).sqrt();
        out.extend(row.iter().zip(w.iter().zip(b)).map(|(v, (w, b))| {
            ((v.to_f32() as f64 - mean) * s * w.to_f32() as f64 + b.to_f32() as f64) as f32
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_vector_and_block() {
        let s = spec(NormKind::Rms, "f16", 4096, 32).unwrap();
        assert_eq!(s.uri(), "norm.rms.f16.b128.v8.w32");
        assert_eq!(
            spec(NormKind::Layer, "f32", 1001, 64).unwrap().uri(),
            "norm.layer.f32.b256.v1.w64"
        );
        assert_eq!(
            spec(NormKind::RmsAdd, "bf16", 576, 32)
                .unwrap()
                .int("block"),
            128
        );
        assert!(KernelSpec::new(
            &FAMILY,
            &[
                ("kind", "rms".into()),
                ("dtype", "f32".into()),
                ("block", 128.into()),
                ("vec", 8.into())
            ],
            32
        )
        .is_err());
    }

    #[test]
    fn references() {
        let x = [3.0f32, 4.0];
        let o = rms_norm_ref(&x, &[1.0, 2.0], 0.0, 2);
        let s = (12.5f64).sqrt();
        assert!((o[0] as f64 - 3.0 / s).abs() < 1e-6 && (o[1] as f64 - 8.0 / s).abs() < 1e-6);
        let l = layer_norm_ref(&x, &[1.0, 1.0], &[0.5, 0.5], 0.0, 2);
        assert!((l[0] + 0.5).abs() < 1e-6 && (l[1] - 1.5).abs() < 1e-6);
        let (_, h) = rms_norm_residual_ref(&x, &[1.0, 1.0], &[1.0, 1.0], 0.0, 2);
        assert_eq!(h, vec![4.0, 5.0]);
    }
}
