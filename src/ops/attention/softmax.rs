//! Row softmax and scale+mask over `x [rows][cols]`, standalone. Rows are `[batch][q_len]`; masks are
//! `causal` (row r sees cols <= r % q_len + cols - q_len) or `additive` (`mask [q_len][cols]` f32).

use crate::error::{Error, Result};
use crate::gpu::{Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_preamble, no_rules, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};

pub static FAMILY: Family = Family {
    name: "softmax",
    doc: "row softmax(x * scale + mask) or scale+mask alone (causal or additive mask)",
    body: "softmax.hip",
    instance: "softmax.inst",
    params: &[
        ParamDef {
            name: "kind",
            kind: ParamKind::Choice {
                values: &["softmax", "scale_mask"],
            },
            doc: "softmax, or only scale and mask",
        },
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "element type of x and y",
        },
        ParamDef {
            name: "mask",
            kind: ParamKind::Choice {
                values: &["none", "causal", "additive"],
            },
            doc: "mask",
        },
    ],
    validate: no_rules,
    applies: any_target,
    preamble: no_preamble,
};

/// The mask of a softmax / scale-mask call.
pub enum Mask<'a> {
    None,
    Causal,
    /// `[q_len][cols]` f32 added to the scaled scores.
    Additive(&'a Buffer<f32>),
}

impl Mask<'_> {
    fn name(&self) -> &'static str {
        match self {
            Mask::None => "none",
            Mask::Causal => "causal",
            Mask::Additive(_) => "additive",
        }
    }
}

/// `y = softmax(x * scale + mask)` per row (`softmax = true`) or `y = x * scale + mask`.
#[allow(clippy::too_many_arguments)]
pub fn softmax<T: Element>(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<T>,
    y: &mut Buffer<T>,
    cols: usize,
    q_len: usize,
    scale: f32,
    mask: &Mask,
    softmax: bool,
) -> Result<()> {
    if cols == 0
        || x.len() % cols != 0
        || y.len() != x.len()
        || q_len == 0
        || (x.len() / cols) % q_len != 0
    {
        return Err(Error::op(
            "softmax",
            format!(
                "x {} / y {} elements are not rows of {cols} in batches of q_len {q_len}",
                x.len(),
                y.len()
            ),
        ));
    }
    if matches!(mask, Mask::Causal) && q_len > cols {
        return Err(Error::op(
            "softmax",
            format!("causal mask needs q_len {q_len} <= cols {cols}"),
        ));
    }
    if let Mask::Additive(m) = mask {
        if m.len() != q_len * cols {
            return Err(Error::op(
                "softmax",
                format!(
                    "additive mask has {} elements, needs {q_len} x {cols}",
                    m.len()
                ),
            ));
        }
    }
    let rows = x.len() / cols;
    if rows == 0 {
        return Ok(());
    }
    let kind = if softmax { "softmax" } else { "scale_mask" };
    let s = KernelSpec::new(
        &FAMILY,
        &[
            ("kind", kind.into()),
            ("dtype", T::DTYPE.into()),
            ("mask", mask.name().into()),
        ],
        dev.target().wave_size,
    )?;
    let k = Jit::global().kernel(dev, &s)?;
    let mptr = match mask {
        Mask::Additive(m) => (*m).into(),
        _ => x.into(),
    };
    let cfg = LaunchConfig {
        grid: [rows as u32, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    };
    k.launch(
        stream,
        cfg,
        &[
            x.into(),
            (&mut *y).into(),
            mptr,
            (cols as i32).into(),
            (q_len as i32).into(),
            scale.into(),
        ],
    )
}

/// CPU reference (f64), rounded through `T`. `mask`: None, or Some(additive `[q_len][cols]`); `causal`.
pub fn softmax_ref<T: Element>(
    x: &[T],
    cols: usize,
    q_len: usize,
    scale: f32,
    causal: bool,
    additive: Option<&[f32]>,
    softmax: bool,
) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    for (r, row) in x.chunks(cols).enumerate() {
        let qi = r % q_len;
        let v: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(c, e)| {
                let s = (e.to_f32() * scale) as f64;
                if causal && c > qi + cols - q_len {
                    f64::NEG_INFINITY
                } else if let Some(m) = additive {
                    s + m[qi * cols + c] as f64
                } else {
                    s
                }
            })
            .collect();
        if !softmax {
            y.extend(v.iter().map(|&s| T::from_f32(s as f32)));
            continue;
        }
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mu = if m == f64::NEG_INFINITY { 0.0 } else { m };
        let z: f64 = v.iter().map(|s| (s - mu).exp()).sum();
        y.extend(v.iter().map(|s| {
            T::from_f32(if z > 0.0 {
                ((s - mu).exp() / z) as f32
            } else {
                0.0
            })
        }));
    }
    y
}
