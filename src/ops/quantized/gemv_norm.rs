//! A batch-1 GEMV that makes its own input: `y = W · RMSNorm(x + r)` (or, with the gated epilogue,
//! `act(gate · h) ⊙ (up · h)` over a stacked `[gate; up]`), where `x` is a decoder's f32 residual
//! stream and `r` the f16 output of the projection before. Every block of the `gemv_wave` kernel
//! computes the residual add and the norm of the whole row into shared memory (the arithmetic of
//! [`crate::ops::glue::resid_norm`]) and block 0 writes `x + r` to `x_out`.
//!
//! In a small model's decode step this takes the place of a `resid_norm` launch: one launch and one
//! dependent memory round trip fewer a norm, and the norm's latency overlaps the L2 prefetch of the
//! weights the GEMV reads. It pays where the row is short (every block reads it again from L2:
//! [`max_cols`]) and the GEMV is the float `gemv_wave` one.

use super::gemv::{self, GemvConfig, GluAct, WAVES_PER_BLOCK, WAVE_ROWS};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream, Target};
use crate::jit::{Jit, KernelSpec};
use crate::quant::QuantType;
use half::f16;

const OP: &str = "gemv_norm";

/// Elements of the row each thread keeps in registers (`RF_GEMV_NORM_EPT`, templates/gemv_wave.hip).
pub const NORM_EPT: usize = 8;

/// The longest row the prologue takes on a target of `wave` lanes (its threads' registers).
pub fn max_cols(wave: u32) -> usize {
    NORM_EPT * WAVES_PER_BLOCK * wave as usize
}

/// The residual add and norm in front of the GEMV.
pub struct NormIn<'a> {
    /// The residual stream (f32, `cols`), read.
    pub x: &'a Buffer<f32>,
    /// The rows added to it (f16, `cols`): the previous projection's output.
    pub r: &'a Buffer<f16>,
    /// The weight of an RMSNorm applied to `r` before the add (Gemma's post-norms), or none.
    pub post: Option<&'a Buffer<f32>>,
    /// The RMSNorm's weight (f32, `cols`).
    pub w: &'a Buffer<f32>,
    pub eps: f32,
}

/// Whether [`gemv_norm`] takes a matrix of `ty` with `cols` columns (and `glu`) on `target`, as
/// the same kernel its unfused GEMV would run: the batch-1 default there is `gemv_wave` (the tuned
/// choice included), the format has its epilogue, and the row fits [`max_cols`].
pub fn applies(ty: QuantType, cols: usize, glu: Option<GluAct>, target: &Target) -> bool {
    let cfg = match glu {
        Some(_) => GemvConfig::default_for_glu(ty, "f16", 1, target),
        None => GemvConfig::default_for(ty, "f16", 1, target),
    };
    cfg.rows == WAVE_ROWS
        && cols <= max_cols(target.wave_size)
        && cols % 32 == 0
        && spec(ty, glu, false, target.wave_size).is_ok()
}

/// The instance of [`gemv_norm`].
pub fn spec(ty: QuantType, glu: Option<GluAct>, post: bool, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &gemv::WAVE_FAMILY,
        &[
            ("format", ty.name().into()),
            ("dtype", "f16".into()),
            ("glu", glu.map_or("none", GluAct::name).into()),
            ("norm", if post { "rms_post" } else { "rms" }.into()),
        ],
        wave,
    )
}

/// `x_out = x + r'` (r' = r, or RMSNorm(r) · post), `h = f16(RMSNorm(x_out) · w)`, then
/// `y = W · h` (`rows_out × cols` of `ty`) or, with `glu`, `y = act(gate · h) ⊙ (up · h)` over the
/// stacked `[gate; up]` (`2·rows_out × cols`). One row (batch 1); `x_out` must not overlap `x`.
#[allow(clippy::too_many_arguments)]
pub fn gemv_norm(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows_out: usize,
    cols: usize,
    n: &NormIn,
    x_out: &mut Buffer<f32>,
    y: &mut Buffer<f16>,
    glu: Option<GluAct>,
) -> Result<()> {
    match glu {
        Some(_) => gemv::check_glu(ty, rows_out, cols, 1, w.len(), cols, y.len())?,
        None => gemv::check(ty, rows_out, cols, 1, w.len(), cols, y.len())?,
    }
    let wave = dev.target().wave_size;
    if cols > max_cols(wave) || cols % 32 != 0 {
        return Err(Error::op(
            OP,
            format!(
                "rows of {cols} elements: the prologue takes multiples of 32 up to {} on wave{wave}",
                max_cols(wave)
            ),
        ));
    }
    for (what, len) in [
        ("x", n.x.len()),
        ("r", n.r.len()),
        ("norm weight", n.w.len()),
        ("x_out", x_out.len()),
    ]
    .into_iter()
    .chain(n.post.map(|p| ("post-norm weight", p.len())))
    {
        if len < cols {
            return Err(Error::op(
                OP,
                format!("{what} has {len} elements for a row of {cols}"),
            ));
        }
    }
    let (a, b) = (n.x.device_ptr(), x_out.device_ptr());
    let bytes = (cols * 4) as u64;
    if a < b + bytes && b < a + bytes {
        return Err(Error::op(
            OP,
            "x_out overlaps x (other blocks still read x while block 0 writes x_out)",
        ));
    }
    if w.device_ptr() % 16 != 0 {
        return Err(Error::op(
            OP,
            "W must start at a 16-byte aligned device address",
        ));
    }
    let spec = spec(ty, glu, n.post.is_some(), wave)?;
    let k = Jit::global().kernel(dev, &spec)?;
    let grid = u32::try_from(rows_out.div_ceil(WAVE_ROWS))
        .map_err(|_| Error::op(OP, format!("{rows_out} rows need too many blocks")))?;
    k.launch(
        stream,
        LaunchConfig {
            grid: [grid, 1, 1],
            block: [WAVES_PER_BLOCK as u32 * wave, 1, 1],
            shared_bytes: 0,
        },
        &[
            w.into(),
            n.x.into(),
            n.r.into(),
            Arg::Ptr(n.post.map_or(0, |p| p.device_ptr())),
            n.w.into(),
            Arg::from(&*x_out),
            Arg::from(&*y),
            (rows_out as i32).into(),
            (cols as i32).into(),
            n.eps.into(),
        ],
    )
}

/// CPU reference of [`gemv_norm`]: `x` becomes `x_out` (f32, [`crate::ops::glue::resid_norm_ref`]),
/// h is rounded to f16 as the kernel stores it, and the product is the f64 one of
/// [`gemv::gemv_ref`] / [`gemv::gemv_glu_ref`]. Returns y (`rows_out`).
#[allow(clippy::too_many_arguments)]
pub fn gemv_norm_ref(
    ty: QuantType,
    w: &[u8],
    rows_out: usize,
    x: &mut [f32],
    r: &[f32],
    post: Option<&[f32]>,
    nw: &[f32],
    eps: f32,
    glu: Option<GluAct>,
) -> Result<Vec<f64>> {
    let cols = x.len();
    let h: Vec<f32> = crate::ops::glue::resid_norm_ref(x, cols, 1.0, Some(r), post, nw, eps)
        .into_iter()
        .map(|v| f16::from_f32(v).to_f32())
        .collect();
    match glu {
        Some(act) => gemv::gemv_glu_ref(ty, w, rows_out, cols, &h, 1, act),
        None => gemv::gemv_ref(ty, w, rows_out, cols, &h, 1),
    }
}
