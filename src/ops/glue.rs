//! Model glue: the small kernels between a decoder layer's big ops (templates/glue.hip), each with
//! its CPU reference. The residual stream is f32; matrix-product inputs and outputs are f16.
//!
//! * [`resid_norm`]: `x = x·scale + post_norm(r)` (r and its RMSNorm optional), then
//!   `out = RMSNorm(x)·w` in f16 — one kernel per residual add + next norm.
//! * [`gated`]: `out = act(gate) · up` (SiLU or GELU-tanh).
//! * [`gather_rows`]: the f16 rows whose logits are wanted.

use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream, Target};
use crate::jit::spec::{any_target, no_preamble, no_rules, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use half::f16;

pub static FAMILY: Family = Family {
    name: "glue",
    doc: "residual add + RMSNorm to f16 (with optional post-norm and scale), gated activations, row gather",
    body: "glue.hip",
    instance: "glue.inst",
    params: &[
        ParamDef {
            name: "kind",
            kind: ParamKind::Choice {
                values: &["resid_norm", "gated_silu", "gated_gelu", "gather"],
            },
            doc: "which kernel",
        },
        ParamDef {
            name: "block",
            kind: ParamKind::Int {
                prefix: "b",
                values: &[256, 512, 1024],
            },
            doc: "threads per block: resid_norm 1024 for rows over 1024 elements (one row per block: a decode step's row spread over more threads; 512 on emulated wave64 targets, which run at most 15 waves per block), 256 for shorter rows and the other kinds",
        },
    ],
    validate: no_rules,
    applies: any_target,
    preamble: no_preamble,
};

const OP: &str = "glue";

/// Threads per block of each kernel kind on `target`, for rows of `d` elements (resid_norm).
pub fn block_of(kind: &str, target: &Target, d: usize) -> u32 {
    if kind != "resid_norm" || d <= RESID_NORM_SMALL {
        256
    } else if target.max_threads_per_block >= 1024 {
        1024
    } else {
        // e.g. emulated wave64 targets: at most 15 waves of 64 per block (EMU_MAX_WAVES64)
        512
    }
}

/// Rows up to this many elements get a 256-thread resid_norm block: a small model's decode row
/// (SmolLM2 576, Gemma 3 270M 640) gains nothing from 1024 threads but the wider block reductions.
pub const RESID_NORM_SMALL: usize = 1024;

/// The spec of one glue kernel for `target` and rows of `d` elements (see [`block_of`]).
pub fn spec(kind: &str, target: &Target, d: usize) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("kind", kind.into()),
            ("block", (block_of(kind, target, d) as i64).into()),
        ],
        target.wave_size,
    )
}

fn kernel(dev: &Device, kind: &str, d: usize) -> Result<std::sync::Arc<crate::gpu::Kernel>> {
    Jit::global().kernel(dev, &spec(kind, dev.target(), d)?)
}

/// One block per row.
fn rows_cfg(rows: usize, kind: &str, target: &Target, d: usize) -> Result<LaunchConfig> {
    let grid =
        u32::try_from(rows).map_err(|_| Error::op(OP, format!("{rows} rows exceed the grid")))?;
    Ok(LaunchConfig {
        grid: [grid, 1, 1],
        block: [block_of(kind, target, d), 1, 1],
        shared_bytes: 0,
    })
}

fn check(what: &str, len: usize, want: usize) -> Result<()> {
    if len != want {
        return Err(Error::op(
            OP,
            format!("{what} has {len} elements, expected {want}"),
        ));
    }
    Ok(())
}

/// The residual step of a decoder layer, in place on `x` `[rows][d]` (f32): see the module docs.
/// `r` with `post_w` applies RMSNorm·post_w to r before the add; `out` None skips the norm; `q8`
/// also writes out quantized to 8 bits (the input of a following `gemv_q8`).
#[allow(clippy::too_many_arguments)]
pub fn resid_norm(
    dev: &Device,
    stream: &Stream,
    x: &mut Buffer<f32>,
    rows: usize,
    d: usize,
    scale: f32,
    r: Option<&Buffer<f16>>,
    post_w: Option<&Buffer<f32>>,
    w: &Buffer<f32>,
    eps: f32,
    out: Option<&mut Buffer<f16>>,
    q8: Option<&mut Buffer<u8>>,
) -> Result<()> {
    if x.len() < rows * d {
        return Err(Error::op(
            OP,
            format!("x has {} elements for {rows} rows of {d}", x.len()),
        ));
    }
    check("norm weight", w.len(), d)?;
    if let Some(r) = r {
        if r.len() < rows * d {
            return Err(Error::op(
                OP,
                format!("r has {} elements for {rows} rows of {d}", r.len()),
            ));
        }
    }
    if let Some(p) = post_w {
        check("post-norm weight", p.len(), d)?;
        if r.is_none() {
            return Err(Error::op(OP, "a post-norm weight needs r"));
        }
    }
    let op = match &out {
        Some(o) if o.len() < rows * d => {
            return Err(Error::op(
                OP,
                format!("out has {} elements for {rows} rows of {d}", o.len()),
            ))
        }
        Some(o) => o.device_ptr(),
        None => 0,
    };
    if q8.is_some() && out.is_none() {
        return Err(Error::op(OP, "8-bit output needs the f16 output"));
    }
    let (qp, sp) = q8_ptrs(q8, rows, d)?;
    if rows == 0 {
        return Ok(());
    }
    kernel(dev, "resid_norm", d)?.launch(
        stream,
        rows_cfg(rows, "resid_norm", dev.target(), d)?,
        &[
            Arg::from(&*x),
            Arg::Ptr(r.map_or(0, |b| b.device_ptr())),
            Arg::Ptr(post_w.map_or(0, |b| b.device_ptr())),
            w.into(),
            Arg::Ptr(op),
            Arg::Ptr(qp),
            Arg::Ptr(sp),
            (d as i32).into(),
            eps.into(),
            scale.into(),
        ],
    )
}

/// Device pointers of the 8-bit output (codes, then the per-16 pairs; see
/// [`crate::ops::quantized::gemv_q8::act_bytes`]) for `rows × d`, or nulls.
fn q8_ptrs(q8: Option<&mut Buffer<u8>>, rows: usize, d: usize) -> Result<(u64, u64)> {
    let Some(q) = q8 else {
        return Ok((0, 0));
    };
    let need = crate::ops::quantized::gemv_q8::act_bytes(rows, d);
    if d % 32 != 0 || q.len() < need || q.device_ptr() % 16 != 0 {
        return Err(Error::op(
            OP,
            format!("8-bit output of {rows} rows of {d} needs rows of a multiple of 32 and {need} bytes at a 16-byte aligned address"),
        ));
    }
    Ok((q.device_ptr(), q.device_ptr() + (rows * d) as u64))
}

/// out = act(gate) · up over `rows` rows of `cols` (f16); `gelu` picks GELU-tanh, else SiLU. With
/// `q8`, out is also written quantized to 8 bits (the input of a following `gemv_q8`).
#[allow(clippy::too_many_arguments)]
pub fn gated(
    dev: &Device,
    stream: &Stream,
    gate: &Buffer<f16>,
    up: &Buffer<f16>,
    out: &mut Buffer<f16>,
    rows: usize,
    cols: usize,
    gelu: bool,
    q8: Option<&mut Buffer<u8>>,
) -> Result<()> {
    for (n, b) in [("gate", gate.len()), ("up", up.len()), ("out", out.len())] {
        if b < rows * cols {
            return Err(Error::op(
                OP,
                format!("{n} has {b} elements for {rows} rows of {cols}"),
            ));
        }
    }
    let (qp, sp) = q8_ptrs(q8, rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    let kind = if gelu { "gated_gelu" } else { "gated_silu" };
    let k = kernel(dev, kind, cols)?;
    let (gx, gy) = (
        u32::try_from(cols.div_ceil(block_of(kind, dev.target(), cols) as usize)),
        u32::try_from(rows),
    );
    let (Ok(gx), Ok(gy)) = (gx, gy) else {
        return Err(Error::op(
            OP,
            format!("{rows} rows of {cols} exceed the grid"),
        ));
    };
    if gy > 65535 {
        return Err(Error::op(
            OP,
            format!("{rows} rows exceed the grid's y (65535)"),
        ));
    }
    k.launch(
        stream,
        LaunchConfig {
            grid: [gx, gy, 1],
            block: [block_of(kind, dev.target(), cols), 1, 1],
            shared_bytes: 0,
        },
        &[
            gate.into(),
            up.into(),
            Arg::from(&*out),
            Arg::Ptr(qp),
            Arg::Ptr(sp),
            (cols as i32).into(),
        ],
    )
}

/// out[i] = x[rows[i]] for `n` rows of `cols` (f16). Row ids must be valid rows of x (the caller
/// builds them; they are not checked on the device).
pub fn gather_rows(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<f16>,
    rows: &Buffer<i32>,
    n: usize,
    cols: usize,
    out: &mut Buffer<f16>,
) -> Result<()> {
    if rows.len() < n || out.len() < n * cols {
        return Err(Error::op(
            OP,
            format!("gather of {n} rows of {cols}: index or output too small"),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    kernel(dev, "gather", cols)?.launch(
        stream,
        rows_cfg(n, "gather", dev.target(), cols)?,
        &[
            x.into(),
            rows.into(),
            Arg::from(&*out),
            (cols as i32).into(),
        ],
    )
}

/// CPU reference of [`resid_norm`]: updates `x` and returns the normalized rows (f32, before the
/// f16 rounding).
#[allow(clippy::too_many_arguments)]
pub fn resid_norm_ref(
    x: &mut [f32],
    d: usize,
    scale: f32,
    r: Option<&[f32]>,
    post_w: Option<&[f32]>,
    w: &[f32],
    eps: f32,
) -> Vec<f32> {
    let rms = |v: &[f32]| {
        1.0 / ((v.iter().map(|a| (*a as f64) * (*a as f64)).sum::<f64>() / d as f64) as f32 + eps)
            .sqrt()
    };
    let mut out = vec![0f32; x.len()];
    for (i, row) in x.chunks_mut(d).enumerate() {
        let add: Option<Vec<f32>> = r.map(|r| {
            let rr = &r[i * d..(i + 1) * d];
            match post_w {
                Some(p) => {
                    let s = rms(rr);
                    rr.iter().zip(p).map(|(a, g)| a * s * g).collect()
                }
                None => rr.to_vec(),
            }
        });
        for (j, v) in row.iter_mut().enumerate() {
            *v = *v * scale + add.as_ref().map_or(0.0, |a| a[j]);
        }
        let s = rms(row);
        for (j, v) in row.iter().enumerate() {
            out[i * d + j] = v * s * w[j];
        }
    }
    out
}

/// CPU reference of [`gated`].
pub fn gated_ref(gate: &[f32], up: &[f32], gelu: bool) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| {
            let a = if gelu {
                0.5 * g
                    * (1.0
                        + ((2.0 / std::f32::consts::PI).sqrt() * (g + 0.044715 * g * g * g)).tanh())
            } else {
                g / (1.0 + (-g).exp())
            };
            a * u
        })
        .collect()
}
