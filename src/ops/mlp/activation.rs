//! Elementwise MLP activations: SwiGLU (silu(gate) · up, from separate tensors or one fused
//! gate_up [rows, 2·I] projection read in place), GELU (tanh and erf forms) and add.
//! f32 arithmetic and one rounding to the element type; 16-byte accesses when the row allows.

use super::{check_len, rows_of, vec_ok, vec_width};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_preamble, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};

/// The activation family.
pub static FAMILY: Family = Family {
    name: "act",
    doc:
        "SwiGLU (separate or fused gate_up), GELU tanh/erf, add: elementwise over rows with strides",
    body: "activation.hip",
    instance: "activation.inst",
    params: &[
        ParamDef {
            name: "kind",
            kind: ParamKind::Choice {
                values: &["swiglu", "gelu_tanh", "gelu_erf", "add"],
            },
            doc: "which function",
        },
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "element type",
        },
        ParamDef {
            name: "vec",
            kind: ParamKind::Int {
                prefix: "v",
                values: &[1, 4, 8],
            },
            doc: "elements per access (16 bytes or 1)",
        },
    ],
    validate: |s| vec_ok(s.str("dtype"), s.int("vec")),
    applies: any_target,
    preamble: no_preamble,
};

/// Which activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// silu(a) · b
    SwiGlu,
    /// 0.5·a·(1 + tanh(√(2/π)(a + 0.044715a³)))
    GeluTanh,
    /// 0.5·a·(1 + erf(a/√2))
    GeluErf,
    /// a + b
    Add,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Act::SwiGlu => "swiglu",
            Act::GeluTanh => "gelu_tanh",
            Act::GeluErf => "gelu_erf",
            Act::Add => "add",
        }
    }
    /// The function in f64 (CPU reference).
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Act::SwiGlu => a / (1.0 + (-a).exp()) * b,
            Act::GeluTanh => {
                0.5 * a
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (a + 0.044715 * a * a * a)).tanh())
            }
            Act::GeluErf => 0.5 * a * (1.0 + erf(a / std::f64::consts::SQRT_2)),
            Act::Add => a + b,
        }
    }
}

/// erf to about 1e-15 (Abramowitz–Stegun 7.1.26 is too coarse for a reference; this is the series /
/// continued fraction pair).
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series: erf x = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
        let mut sum = 0.0f64;
        let mut term = x;
        let mut n = 0.0f64;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 3.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc by Lentz's continued fraction for large |x|
        let z = x.abs();
        let mut f = z;
        let (mut c, mut d) = (z, 0.0f64);
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = z + a * d;
            c = z + a / c;
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let erfc = (-z * z).exp() / (f * std::f64::consts::PI.sqrt());
        (1.0 - erfc).copysign(x)
    }
}

/// The instance for rows of `cols` elements.
pub fn spec(act: Act, dtype: &str, cols: usize, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("kind", act.name().into()),
            ("dtype", dtype.into()),
            ("vec", vec_width(dtype, cols).into()),
        ],
        wave,
    )
}

#[allow(clippy::too_many_arguments)]
fn launch<T: Element>(
    dev: &Device,
    stream: &Stream,
    act: Act,
    rows: usize,
    cols: usize,
    a: (u64, usize),
    b: (u64, usize),
    out: &mut Buffer<T>,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let s = spec(act, T::DTYPE, cols, dev.target().wave_size)?;
    // strides are multiples of the vector when cols is (fused gate_up: 2·cols)
    let vec = s.int("vec") as usize;
    if a.1 % vec != 0 || b.1 % vec != 0 {
        return Err(Error::op(
            "act",
            format!("row strides {} / {} not multiples of {vec}", a.1, b.1),
        ));
    }
    let k = Jit::global().kernel(dev, &s)?;
    let vectors = rows * cols / vec;
    let cfg = LaunchConfig::linear(vectors.min(1 << 22), 256);
    k.launch(
        stream,
        cfg,
        &[
            (rows as i64).into(),
            (cols as i32).into(),
            Arg::Ptr(a.0),
            (a.1 as i64).into(),
            Arg::Ptr(b.0),
            (b.1 as i64).into(),
            Arg::from(&*out),
        ],
    )
}

/// out = silu(gate) · up, all [rows, cols] with cols = `inter`.
pub fn swiglu<T: Element>(
    dev: &Device,
    stream: &Stream,
    gate: &Buffer<T>,
    up: &Buffer<T>,
    inter: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    let rows = rows_of("swiglu", gate.len(), inter)?;
    check_len("swiglu", "up", up, gate.len())?;
    check_len("swiglu", "out", out, gate.len())?;
    launch(
        dev,
        stream,
        Act::SwiGlu,
        rows,
        inter,
        (gate.device_ptr(), inter),
        (up.device_ptr(), inter),
        out,
    )
}

/// out[r, :] = silu(gate_up[r, :inter]) · gate_up[r, inter:], gate_up [rows, 2·inter].
pub fn swiglu_fused<T: Element>(
    dev: &Device,
    stream: &Stream,
    gate_up: &Buffer<T>,
    inter: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    let rows = rows_of("swiglu", gate_up.len(), 2 * inter)?;
    check_len("swiglu", "out", out, rows * inter)?;
    let up = gate_up.device_ptr() + (inter * std::mem::size_of::<T>()) as u64;
    launch(
        dev,
        stream,
        Act::SwiGlu,
        rows,
        inter,
        (gate_up.device_ptr(), 2 * inter),
        (up, 2 * inter),
        out,
    )
}

/// out = gelu(x) (tanh or erf form, `act` is [`Act::GeluTanh`] or [`Act::GeluErf`]).
pub fn gelu<T: Element>(
    dev: &Device,
    stream: &Stream,
    act: Act,
    x: &Buffer<T>,
    cols: usize,
    out: &mut Buffer<T>,
) -> Result<()> {
    if !matches!(act, Act::GeluTanh | Act::GeluErf) {
        return Err(Error::op("gelu", format!("{act:?} is not a GELU")));
    }
    let rows = rows_of("gelu", x.len(), cols)?;
    check_len("gelu", "out", out, x.len())?;
    launch(
        dev,
        stream,
        act,
        rows,
        cols,
        (x.device_ptr(), cols),
        (0, cols),
        out,
    )
}

/// out = a + b (elementwise, same length).
pub fn add<T: Element>(
    dev: &Device,
    stream: &Stream,
    a: &Buffer<T>,
    b: &Buffer<T>,
    out: &mut Buffer<T>,
) -> Result<()> {
    check_len("add", "b", b, a.len())?;
    check_len("add", "out", out, a.len())?;
    // one row, or rows of 4096 when that divides (keeps the column count inside i32)
    let cols = if a.len() % 4096 == 0 { 4096 } else { a.len() };
    let rows = rows_of("add", a.len(), cols.max(1))?;
    launch(
        dev,
        stream,
        Act::Add,
        rows,
        cols,
        (a.device_ptr(), cols),
        (b.device_ptr(), cols),
        out,
    )
}

/// y[r, :] += bias for every row of y [rows, n] (the bias of a linear layer computed without one).
pub fn add_bias<T: Element>(
    dev: &Device,
    stream: &Stream,
    y: &mut Buffer<T>,
    bias: &Buffer<T>,
    n: usize,
) -> Result<()> {
    let rows = rows_of("add_bias", y.len(), n)?;
    check_len("add_bias", "bias", bias, n)?;
    let yp = y.device_ptr();
    // each element is read and written by the same thread, so y may be both input and output
    launch(
        dev,
        stream,
        Act::Add,
        rows,
        n,
        (yp, n),
        (bias.device_ptr(), 0),
        y,
    )
}

/// CPU reference: `act` over [rows, cols] with row strides (f64), before rounding to `T`.
pub fn act_ref<T: Element>(
    act: Act,
    rows: usize,
    cols: usize,
    a: &[T],
    a_stride: usize,
    b: &[T],
    b_stride: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let x = a[r * a_stride + c].to_f32() as f64;
            let y = b
                .get(r * b_stride + c)
                .map(|v| v.to_f32() as f64)
                .unwrap_or(0.0);
            out.push(act.apply(x, y) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_functions() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (-2.0, -0.9953222650189527),
            (3.0, 0.9999779095030014),
        ] {
            assert!((erf(x) - want).abs() < 1e-13, "erf({x}) = {}", erf(x));
        }
        assert!((Act::SwiGlu.apply(1.0, 2.0) - 2.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
        assert!((Act::GeluErf.apply(1.0, 0.0) - 0.8413447460685429).abs() < 1e-13);
        assert!((Act::GeluTanh.apply(1.0, 0.0) - 0.8411919906082768).abs() < 1e-12);
        let g = [1.0f32, 2.0, 3.0, 4.0];
        let o = act_ref(Act::SwiGlu, 2, 1, &g, 2, &g[1..], 2);
        assert!((o[1] as f64 - Act::SwiGlu.apply(3.0, 4.0)).abs() < 1e-6);
    }
}
