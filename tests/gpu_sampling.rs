//! Device argmax against its CPU reference: every dtype, vocabularies from 1 to 262144, 1..8 rows,
//! with planted ties (the lowest index must win), NaNs (below every number), ±0 and ±∞.
//! The output is poisoned first, and entries past `rows` must stay poisoned (the kernel writes
//! nothing else).

mod common;

use common::*;
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rocmforge::gpu::Buffer;
use rocmforge::ops::sampling::{argmax_prepare, argmax_ref, argmax_rows};
use rocmforge::ops::Element;
use serial_test::serial;

const VOCABS: [usize; 5] = [1, 17, 1000, 49152, 262144];
const POISON: i32 = -1; // 0xffffffff
const EXTRA: usize = 3; // output entries past the last row, which must stay poisoned

/// Rows of random logits, each with its own kind of trap:
/// 0: ties at the maximum (several copies, the first somewhere in the middle);
/// 1: NaNs everywhere plus a tie; 2: the maximum at the very last element; 3: all NaN;
/// 4: −∞ and NaN only (−∞ must win); 5: −0 and +0 as the maximum (equal: the first wins);
/// 6: +∞ twice; 7: all equal.
fn logits<T: Element>(rows: usize, vocab: usize, seed: u64) -> Vec<T> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v: Vec<f32> = rand_f32(rows * vocab, seed)
        .iter()
        .map(|x| x * 10.0)
        .collect();
    for row in 0..rows {
        let x = &mut v[row * vocab..(row + 1) * vocab];
        let kind = (row + seed as usize) % 8;
        let top = 20.0f32;
        match kind {
            0 => {
                let first = r.gen_range(0..vocab);
                for _ in 0..4 {
                    let j = r.gen_range(first..vocab);
                    x[j] = top;
                }
                x[first] = top;
            }
            1 => {
                for _ in 0..(vocab / 10).max(1) {
                    let j = r.gen_range(0..vocab);
                    x[j] = f32::NAN;
                }
                let a = r.gen_range(0..vocab);
                let b = r.gen_range(0..vocab);
                x[a] = top;
                x[b] = top;
            }
            2 => x[vocab - 1] = top,
            3 => x.iter_mut().for_each(|e| *e = f32::NAN),
            4 => x.iter_mut().enumerate().for_each(|(j, e)| {
                *e = if (j + row) % 3 == 0 {
                    f32::NEG_INFINITY
                } else {
                    f32::NAN
                }
            }),
            5 => {
                x.iter_mut().for_each(|e| *e = -e.abs() - 1.0);
                let a = r.gen_range(0..vocab);
                let b = r.gen_range(0..vocab);
                x[a] = -0.0;
                x[b] = 0.0;
            }
            6 => {
                let a = r.gen_range(0..vocab);
                let b = r.gen_range(0..vocab);
                x[a] = f32::INFINITY;
                x[b] = f32::INFINITY;
                x[r.gen_range(0..vocab)] = f32::NAN;
            }
            _ => x.iter_mut().for_each(|e| *e = 0.5),
        }
    }
    // bf16/f16 rounding makes more ties among the random values: the reference sees the same data
    v.iter().map(|&x| T::from_f32(x)).collect()
}

fn poisoned(n: usize) -> Buffer<i32> {
    let mut b = device().alloc::<i32>(n).unwrap();
    b.fill_bytes(0xff).unwrap();
    b
}

fn argmax_all<T: Element>(seed: u64) {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    for (vi, &vocab) in VOCABS.iter().enumerate() {
        argmax_prepare::<T>(&dev, vocab).unwrap();
        for rows in 1..=8usize {
            let sd = seed + 1000 * vi as u64 + rows as u64;
            let x: Vec<T> = logits(rows, vocab, sd);
            let dx = dev.upload(&x).unwrap();
            let mut out = poisoned(rows + EXTRA);
            argmax_rows(&dev, &s, &dx, rows, vocab, &mut out).unwrap();
            let got = out.to_vec().unwrap();
            let want = argmax_ref(&x, rows, vocab);
            assert_eq!(want.len(), rows);
            assert_eq!(
                &got[..rows],
                &want[..],
                "{} vocab={vocab} rows={rows} seed={sd}",
                T::DTYPE
            );
            assert!(
                got[rows..].iter().all(|&g| g == POISON),
                "{} vocab={vocab} rows={rows}: wrote past the rows: {:?}",
                T::DTYPE,
                &got[rows..]
            );
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn argmax_f32() {
    argmax_all::<f32>(1);
}
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn argmax_f16() {
    argmax_all::<f16>(2);
}
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn argmax_bf16() {
    argmax_all::<bf16>(3);
}

/// A logits buffer sized for a larger batch: only the first `rows` rows are read and written, and
/// the same launch on another stream gives the same answer.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn argmax_partial_batch_and_stream() {
    let dev = device();
    let before = dev.allocated_bytes();
    let vocab = 32000;
    {
        let s = dev.create_stream().unwrap();
        let x: Vec<f32> = logits(8, vocab, 77);
        let dx = dev.upload(&x).unwrap();
        let want = argmax_ref(&x, 8, vocab);
        for rows in [0usize, 1, 3, 8] {
            let mut out = poisoned(8);
            argmax_rows(&dev, &s, &dx, rows, vocab, &mut out).unwrap();
            s.synchronize().unwrap();
            let got = out.to_vec().unwrap();
            assert_eq!(&got[..rows], &want[..rows], "rows={rows}");
            assert!(
                got[rows..].iter().all(|&g| g == POISON),
                "rows={rows}: {got:?}"
            );
        }
        // shape errors are errors, not launches
        let mut out = poisoned(2);
        assert!(argmax_rows(&dev, &s, &dx, 3, vocab, &mut out).is_err());
        assert!(argmax_rows(&dev, &s, &dx, 9, vocab, &mut poisoned(9)).is_err());
        assert!(argmax_rows(&dev, &s, &dx, 1, 0, &mut out).is_err());
        s.synchronize().unwrap();
        assert!(out.to_vec().unwrap().iter().all(|&g| g == POISON));
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}
