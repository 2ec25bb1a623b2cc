//! RoPE in place on Q `[tokens][n_q_heads][head_dim]` and K `[tokens][n_kv_heads][head_dim]`, with a
//! per-token position array. Conventions: `normal` (llama.cpp normal / GPT-J, pairs (2i, 2i+1)) and
//! `neox` (pairs (i, i + n_rot/2)); only the first `n_rot` dims rotate (partial rotary), pair i by
//! `pos * base^(-2i/n_rot)`.

use crate::error::{Error, Result};
use crate::gpu::{Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_preamble, no_rules, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};

pub static FAMILY: Family = Family {
    name: "rope",
    doc: "rotary position embedding in place on Q and K (normal / neox, partial rotary, per-token positions)",
    body: "rope.hip",
    instance: "rope.inst",
    params: &[
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of Q and K" },
        ParamDef { name: "style", kind: ParamKind::Choice { values: &["normal", "neox"] }, doc: "pairing convention" },
    ],
    validate: no_rules,
    applies: any_target,
    preamble: no_preamble,
};

/// Pairing convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1): llama.cpp "normal", GPT-J.
    Normal,
    /// Pairs (i, i + n_rot/2): GPT-NeoX, HF rotate_half.
    Neox,
}

impl RopeStyle {
    pub fn name(self) -> &'static str {
        match self {
            RopeStyle::Normal => "normal",
            RopeStyle::Neox => "neox",
        }
    }
}

/// RoPE settings.
#[derive(Debug, Clone, Copy)]
pub struct Rope {
    pub style: RopeStyle,
    /// Rotated dims (the first n_rot of each head), a multiple of 8, at most head_dim.
    pub n_rot: usize,
    /// Frequency base (10000 for llama 2, 500000 for llama 3 ...).
    pub base: f32,
}

impl Rope {
    pub fn validate(&self, op: &'static str, head_dim: usize) -> Result<()> {
        if self.n_rot == 0 || self.n_rot % 8 != 0 || self.n_rot > head_dim || head_dim % 8 != 0 {
            return Err(Error::op(op, format!("n_rot {} must be a positive multiple of 8 and at most head_dim {head_dim} (a multiple of 8)", self.n_rot)));
        }
        if !(self.base > 1.0 && self.base.is_finite()) {
            return Err(Error::op(
                op,
                format!("frequency base {} must be finite and > 1", self.base),
            ));
        }
        Ok(())
    }
    pub(crate) fn log2_base(&self) -> f32 {
        self.base.log2()
    }
    /// The angle of pair `i` at position `pos`, computed exactly as the kernels do (f32).
    pub fn angle(&self, pair: usize, pos: i32) -> f32 {
        let inv = (-((2 * pair) as f32 / self.n_rot as f32) * self.log2_base()).exp2();
        pos as f32 * inv
    }
}

pub fn spec(dtype: &str, style: RopeStyle, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[("dtype", dtype.into()), ("style", style.name().into())],
        wave,
    )
}

/// Rotate Q and K in place. `q` holds `tokens * hq * head_dim` elements, `k` `tokens * hk * head_dim`.
#[allow(clippy::too_many_arguments)]
pub fn rope<T: Element>(
    dev: &Device,
    stream: &Stream,
    q: &mut Buffer<T>,
    k: &mut Buffer<T>,
    pos: &Buffer<i32>,
    hq: usize,
    hk: usize,
    head_dim: usize,
    r: &Rope,
) -> Result<()> {
    r.validate("rope", head_dim)?;
    let tokens = pos.len();
    if q.len() != tokens * hq * head_dim || k.len() != tokens * hk * head_dim {
        return Err(Error::op(
            "rope",
            format!(
                "q has {} and k {} elements; {tokens} tokens x ({hq}, {hk}) heads x {head_dim}",
                q.len(),
                k.len()
            ),
        ));
    }
    if tokens == 0 || q.len() + k.len() > i32::MAX as usize {
        return if tokens == 0 {
            Ok(())
        } else {
            Err(Error::op("rope", "more than 2^31 elements"))
        };
    }
    let kern = Jit::global().kernel(dev, &spec(T::DTYPE, r.style, dev.target().wave_size)?)?;
    let items = tokens * (hq + hk) * (r.n_rot / 8);
    let blocks = items.div_ceil(256).min(65535 * 16);
    let cfg = LaunchConfig {
        grid: [blocks as u32, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    };
    kern.launch(
        stream,
        cfg,
        &[
            (&*q).into(),
            (&*k).into(),
            pos.into(),
            (tokens as i32).into(),
            (hq as i32).into(),
            (hk as i32).into(),
            (head_dim as i32).into(),
            (r.n_rot as i32).into(),
            r.log2_base().into(),
        ],
    )
}

/// The (i0, i1) element indices of rotated pair `i`.
pub fn pair_indices(style: RopeStyle, n_rot: usize, i: usize) -> (usize, usize) {
    match style {
        RopeStyle::Normal => (2 * i, 2 * i + 1),
        RopeStyle::Neox => (i, i + n_rot / 2),
    }
}

/// CPU reference, in place on `x` `[tokens][heads][head_dim]`: angle in f32 as the kernel computes it,
/// sine/cosine and the rotation in f64, rounded through `T`.
pub fn rope_ref<T: Element>(x: &mut [T], pos: &[i32], heads: usize, head_dim: usize, r: &Rope) {
    for (t, &p) in pos.iter().enumerate() {
        for h in 0..heads {
            let row = &mut x[(t * heads + h) * head_dim..][..head_dim];
            rotate_row(row, p, r);
        }
    }
}

/// Rotate one head row in place (CPU).
pub fn rotate_row<T: Element>(row: &mut [T], pos: i32, r: &Rope) {
    for i in 0..r.n_rot / 2 {
        let (i0, i1) = pair_indices(r.style, r.n_rot, i);
        let (s, c) = (r.angle(i, pos) as f64).sin_cos();
        let (a, b) = (row[i0].to_f32() as f64, row[i1].to_f32() as f64);
        row[i0] = T::from_f32((a * c - b * s) as f32);
        row[i1] = T::from_f32((a * s + b * c) as f32);
    }
}
