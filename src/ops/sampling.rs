//! Sampling on the device: greedy argmax over logits rows (no full-vocabulary copy to the host).
//!
//! `out[r]` = the index of the largest element of row `r` of `logits [rows][vocab]`. NaN counts as
//! smaller than every number (−∞ included); ties (+0 and −0 are equal) go to the lowest index, as
//! `torch.argmax` and the CPU sampler ([`crate::model::sampler`]) break them. One block per row reads
//! the row once with 16-byte loads when `vocab` allows and reduces (key, index) pairs over the block
//! with the wave-size-agnostic shuffles of the prelude.
//!
//! The launch does no allocation and no host synchronisation: once the kernel is loaded
//! ([`argmax_prepare`]), [`argmax_rows`] is a single kernel launch and can be recorded into a graph.

use crate::error::{Error, Result};
use crate::gpu::{Buffer, Device, LaunchConfig, Stream, Target};
use crate::jit::spec::{any_target, no_preamble, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::mlp::{vec_ok, vec_width};
use crate::ops::{Element, DTYPES};

/// The argmax family.
pub static FAMILY: Family = Family {
    name: "argmax",
    doc: "greedy argmax over logits rows (one block per row; NaN lowest, ties to the lowest index)",
    body: "sampling.hip",
    instance: "sampling.inst",
    params: &[
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "element type of the logits",
        },
        ParamDef {
            name: "block",
            kind: ParamKind::Int {
                prefix: "b",
                values: &BLOCKS,
            },
            doc: "threads per block (one row)",
        },
        ParamDef {
            name: "vec",
            kind: ParamKind::Int {
                prefix: "v",
                values: &[1, 4, 8],
            },
            doc: "elements per load (16 bytes or 1); must divide the vocabulary",
        },
    ],
    validate: |s| vec_ok(s.str("dtype"), s.int("vec")),
    applies: any_target,
    preamble: no_preamble,
};

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![&FAMILY]
}

const OP: &str = "argmax";
const BLOCKS: [i64; 4] = [128, 256, 512, 1024];
/// Loads of 16 bytes each thread should have to make (about) before a larger block is taken.
const LOADS_PER_THREAD: usize = 8;

/// The instance for rows of `vocab` elements: 16-byte loads when `vocab` allows, and the smallest
/// block giving each thread at most [`LOADS_PER_THREAD`] loads (1024 threads for longer rows: one
/// block per row, so large vocabularies want every thread a block can have).
pub fn spec(dtype: &str, vocab: usize, wave: u32) -> Result<KernelSpec> {
    spec_capped(dtype, vocab, wave, u32::MAX)
}

/// [`spec`] for `t`: blocks no larger than the target allows (an emulated wave64 target runs at most
/// 960 threads per block; every real target takes 1024).
pub fn spec_for(t: &Target, dtype: &str, vocab: usize) -> Result<KernelSpec> {
    spec_capped(dtype, vocab, t.wave_size, t.max_threads_per_block)
}

fn spec_capped(dtype: &str, vocab: usize, wave: u32, max_threads: u32) -> Result<KernelSpec> {
    let vec = vec_width(dtype, vocab);
    let nvec = vocab / vec as usize;
    let fits: Vec<i64> = BLOCKS
        .iter()
        .copied()
        .filter(|&b| b <= max_threads as i64)
        .collect();
    let block = fits
        .iter()
        .copied()
        .find(|&b| b as usize * LOADS_PER_THREAD >= nvec)
        .or(fits.last().copied())
        .unwrap_or(BLOCKS[0]);
    KernelSpec::new(
        &FAMILY,
        &[
            ("dtype", dtype.into()),
            ("block", block.into()),
            ("vec", vec.into()),
        ],
        wave,
    )
}

fn check_vocab(vocab: usize) -> Result<()> {
    if vocab == 0 {
        return Err(Error::op(OP, "vocab is 0: an empty row has no argmax"));
    }
    if vocab > i32::MAX as usize {
        return Err(Error::op(
            OP,
            format!("vocab {vocab} exceeds 2^31 − 1 (indices are i32)"),
        ));
    }
    Ok(())
}

/// Compile (or fetch from the cache) and load the kernel [`argmax_rows`] uses for `T` and `vocab` on
/// `dev`, so that a later launch, e.g. one recorded into a graph, does nothing but launch.
pub fn argmax_prepare<T: Element>(dev: &Device, vocab: usize) -> Result<()> {
    check_vocab(vocab)?;
    let s = spec_for(dev.target(), T::DTYPE, vocab)?;
    Jit::global().kernel(dev, &s).map(|_| ())
}

/// `out[r]` = argmax of row `r` of `logits [rows][vocab]`, for `r < rows`, on `stream`.
///
/// Reads the first `rows · vocab` elements of `logits` and writes the first `rows` entries of `out`
/// and nothing else, so buffers sized for a larger batch (as a captured graph keeps them) can be
/// passed. No allocation, no host synchronisation.
pub fn argmax_rows<T: Element>(
    dev: &Device,
    stream: &Stream,
    logits: &Buffer<T>,
    rows: usize,
    vocab: usize,
    out: &mut Buffer<i32>,
) -> Result<()> {
    check_vocab(vocab)?;
    let need = rows
        .checked_mul(vocab)
        .ok_or_else(|| Error::op(OP, format!("{rows} rows × {vocab} overflows")))?;
    if logits.len() < need {
        return Err(Error::op(
            OP,
            format!(
                "logits has {} elements, {rows} rows of {vocab} need {need}",
                logits.len()
            ),
        ));
    }
    if out.len() < rows {
        return Err(Error::op(
            OP,
            format!("out has {} entries, {rows} rows need {rows}", out.len()),
        ));
    }
    if rows == 0 {
        return Ok(());
    }
    let max_grid = dev.target().max_grid[0] as usize;
    if rows > max_grid {
        return Err(Error::op(
            OP,
            format!("{rows} rows exceed the device's {max_grid} blocks per launch"),
        ));
    }
    let s = spec_for(dev.target(), T::DTYPE, vocab)?;
    let k = Jit::global().kernel(dev, &s)?;
    let cfg = LaunchConfig {
        grid: [rows as u32, 1, 1],
        block: [s.int("block") as u32, 1, 1],
        shared_bytes: 0,
    };
    k.launch(
        stream,
        cfg,
        &[logits.into(), (vocab as i32).into(), (&*out).into()],
    )
}

/// Ordered key of a float: `a > b` as numbers, with NaN below everything and −0 = +0, exactly when
/// `key(a) > key(b)`. The kernel computes the same key.
fn order_key(v: f32) -> u32 {
    let mut u = v.to_bits();
    let mag = u & 0x7fff_ffff;
    if mag > 0x7f80_0000 {
        return 0;
    }
    if mag == 0 {
        u = 0;
    }
    if u & 0x8000_0000 != 0 {
        !u
    } else {
        u | 0x8000_0000
    }
}

/// Index of the largest element of `row` (NaN lowest, ties to the lowest index); 0 for an empty row.
pub fn argmax_slice<T: Element>(row: &[T]) -> usize {
    let mut best = 0usize;
    let mut best_key = 0u32;
    for (i, v) in row.iter().enumerate() {
        let k = order_key(v.to_f32());
        if k > best_key {
            best_key = k;
            best = i;
        }
    }
    best
}

/// CPU reference of [`argmax_rows`]: one index per row of `logits [rows][vocab]` (rows beyond the
/// data, or every row when `vocab` is 0, give no entry).
pub fn argmax_ref<T: Element>(logits: &[T], rows: usize, vocab: usize) -> Vec<i32> {
    if vocab == 0 {
        return Vec::new();
    }
    logits
        .chunks_exact(vocab)
        .take(rows)
        .map(|r| argmax_slice(r) as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn picks_vector_and_block() {
        assert_eq!(
            spec("f32", 262144, 32).unwrap().uri(),
            "argmax.f32.b1024.v4.w32"
        );
        assert_eq!(
            spec("bf16", 1000, 64).unwrap().uri(),
            "argmax.bf16.b128.v8.w64"
        );
        assert_eq!(spec("f16", 17, 32).unwrap().uri(), "argmax.f16.b128.v1.w32");
        assert_eq!(spec("f16", 49152, 64).unwrap().int("block"), 1024);
        assert_eq!(spec("f32", 1, 64).unwrap().int("vec"), 1);
        assert!(KernelSpec::new(
            &FAMILY,
            &[
                ("dtype", "f16".into()),
                ("block", 256.into()),
                ("vec", 4.into())
            ],
            32
        )
        .is_err());
    }

    #[test]
    fn key_orders_like_numbers() {
        let vals = [
            f32::NEG_INFINITY,
            -f32::MAX,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            0.0,
            1e-45,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{} vs {}", w[0], w[1]);
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
        assert_eq!(order_key(f32::NAN), 0);
        assert_eq!(order_key(-f32::NAN), 0);
        assert!(order_key(f32::NEG_INFINITY) > 0);
    }

    #[test]
    fn reference() {
        let nan = f32::NAN;
        let x = [
            1.0,
            3.0,
            3.0,
            2.0, // tie → 1
            nan,
            nan,
            nan,
            nan, // all NaN → 0
            nan,
            f32::NEG_INFINITY,
            nan,
            f32::NEG_INFINITY, // −∞ beats NaN → 1
            -0.0,
            0.0,
            -1.0,
            nan, // −0 = +0 → 0
        ];
        assert_eq!(argmax_ref(&x, 4, 4), vec![1, 0, 1, 0]);
        let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(argmax_ref(&h, 4, 4), vec![1, 0, 1, 0]);
        let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(argmax_ref(&b, 4, 4), vec![1, 0, 1, 0]);
        assert_eq!(argmax_ref(&x, 2, 8), vec![1, 4]);
        assert!(argmax_ref(&x, 3, 0).is_empty());
        assert_eq!(argmax_slice::<f32>(&[]), 0);
    }
}
