//! Smoke kernels: axpy, a wave-level reduction and a block reduction. They prove the whole path
//! (render → compile → cache → load → launch) on a device and are what `rocmforge selftest` runs.

use super::{Element, DTYPES};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, Stream};
use crate::jit::spec::{any_target, no_preamble, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};

/// The smoke family.
pub static FAMILY: Family = Family {
    name: "smoke",
    doc: "axpy, wave reduction and block reduction (device and toolchain checks)",
    body: "smoke.hip",
    instance: "smoke.inst",
    params: &[
        ParamDef {
            name: "kind",
            kind: ParamKind::Choice {
                values: &["axpy", "wave_reduce", "block_reduce"],
            },
            doc: "which kernel",
        },
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "element type of x (and y)",
        },
        ParamDef {
            name: "block",
            kind: ParamKind::Int {
                prefix: "b",
                values: &[64, 128, 256, 512],
            },
            doc: "threads per block",
        },
    ],
    validate: |s| {
        if s.int("block") % s.wave() as i64 != 0 {
            return Err(format!(
                "block {} is not a multiple of the wave size {}",
                s.int("block"),
                s.wave()
            ));
        }
        Ok(())
    },
    applies: any_target,
    preamble: no_preamble,
};

/// Spec of one smoke kernel.
pub fn spec(kind: &str, dtype: &str, block: u32, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("kind", kind.into()),
            ("dtype", dtype.into()),
            ("block", (block as i64).into()),
        ],
        wave,
    )
}

const BLOCK: u32 = 256;

/// y = a * x + y on the device.
pub fn axpy<T: Element>(
    dev: &Device,
    stream: &Stream,
    a: f32,
    x: &Buffer<T>,
    y: &mut Buffer<T>,
) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::op(
            "axpy",
            format!("x has {} elements, y {}", x.len(), y.len()),
        ));
    }
    let n = i32::try_from(x.len()).map_err(|_| Error::op("axpy", "more than 2^31 elements"))?;
    let k = Jit::global().kernel(dev, &spec("axpy", T::DTYPE, BLOCK, dev.target().wave_size)?)?;
    let blocks = (x.len().div_ceil(BLOCK as usize)).clamp(1, 65535 * 8);
    let cfg = LaunchConfig {
        grid: [blocks as u32, 1, 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
    };
    k.launch(stream, cfg, &[n.into(), a.into(), x.into(), Arg::from(&*y)])
}

/// out[w] = sum of the w-th wave-sized chunk of x; `out` has ceil(n / wave) elements.
pub fn wave_reduce<T: Element>(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<T>,
    out: &mut Buffer<f32>,
) -> Result<()> {
    let w = dev.target().wave_size as usize;
    if out.len() != x.len().div_ceil(w) {
        return Err(Error::op(
            "wave_reduce",
            format!(
                "out has {} elements, needs ceil({} / {w})",
                out.len(),
                x.len()
            ),
        ));
    }
    let n =
        i32::try_from(x.len()).map_err(|_| Error::op("wave_reduce", "more than 2^31 elements"))?;
    let k = Jit::global().kernel(dev, &spec("wave_reduce", T::DTYPE, BLOCK, w as u32)?)?;
    k.launch(
        stream,
        LaunchConfig::linear(x.len().max(1), BLOCK),
        &[n.into(), x.into(), Arg::from(&*out)],
    )
}

/// out[r] = sum of row r of x (rows of `row` elements); one block per row.
pub fn block_reduce<T: Element>(
    dev: &Device,
    stream: &Stream,
    row: usize,
    x: &Buffer<T>,
    out: &mut Buffer<f32>,
) -> Result<()> {
    if row == 0 || x.len() % row != 0 || out.len() != x.len() / row {
        return Err(Error::op(
            "block_reduce",
            format!(
                "x of {} elements is not {} rows of {row}",
                x.len(),
                out.len()
            ),
        ));
    }
    let k = Jit::global().kernel(
        dev,
        &spec("block_reduce", T::DTYPE, BLOCK, dev.target().wave_size)?,
    )?;
    let cfg = LaunchConfig {
        grid: [out.len() as u32, 1, 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
    };
    k.launch(
        stream,
        cfg,
        &[(row as i32).into(), x.into(), Arg::from(&*out)],
    )
}

/// CPU reference of [`axpy`]: one fused multiply-add in f32 (GPU compilers contract `a*x+y`),
/// rounded through `T` as the kernel does.
pub fn axpy_ref<T: Element>(a: f32, x: &[T], y: &mut [T]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = T::from_f32(a.mul_add(xi.to_f32(), yi.to_f32()));
    }
}

/// CPU reference of [`wave_reduce`] (f64 sums).
pub fn wave_reduce_ref<T: Element>(x: &[T], wave: usize) -> Vec<f32> {
    x.chunks(wave)
        .map(|c| c.iter().map(|v| v.to_f32() as f64).sum::<f64>() as f32)
        .collect()
}

/// CPU reference of [`block_reduce`] (f64 sums).
pub fn block_reduce_ref<T: Element>(x: &[T], row: usize) -> Vec<f32> {
    x.chunks(row)
        .map(|c| c.iter().map(|v| v.to_f32() as f64).sum::<f64>() as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::Target;

    #[test]
    fn spec_uri_and_validation() {
        let s = spec("block_reduce", "bf16", 256, 64).unwrap();
        assert_eq!(s.uri(), "smoke.block_reduce.bf16.b256.w64");
        assert_eq!(s.symbol(), "rf_smoke_block_reduce_bf16_b256_w64");
        let e = spec("axpy", "f64", 256, 32).unwrap_err().to_string();
        assert!(e.contains("supported: f32, f16, bf16"), "{e}");
        let e = spec("axpy", "f32", 96, 32).unwrap_err().to_string();
        assert!(e.contains("supported: 64, 128, 256, 512"), "{e}");
        let e = spec("axpy", "f32", 64, 48).unwrap_err().to_string();
        assert!(e.contains("wave size 48"), "{e}");
        assert!(spec("axpy", "f32", 64, 64).is_ok());
        // every enumerated instance renders for a wave-64 and a wave-32 target
        for (w, t) in [(64, "gfx90a"), (32, "sm_90"), (32, "gfx1100")] {
            let t = Target::named(t).unwrap();
            let all = KernelSpec::enumerate(&FAMILY, w);
            assert_eq!(all.len(), 3 * 3 * 4);
            for s in all {
                let src = crate::jit::template::render(&s, &t).unwrap();
                assert!(src.contains(&s.symbol()));
            }
        }
    }

    #[test]
    fn references() {
        let x: Vec<f32> = (0..70).map(|i| i as f32).collect();
        assert_eq!(wave_reduce_ref(&x, 32), vec![496.0, 1520.0, 399.0]);
        assert_eq!(block_reduce_ref(&x[..60], 30), vec![435.0, 1335.0]);
        let mut y = vec![1.0f32; 3];
        axpy_ref(2.0, &x[..3], &mut y);
        assert_eq!(y, vec![1.0, 3.0, 5.0]);
    }
}
