//! Legacy 32-element formats: q4_0, q4_1, q5_0, q5_1, q8_0, q8_1.
//!
//! Quantizers follow llama.cpp's `quantize_row_*_ref` arithmetic step by step (f32 math, same
//! operation order), so the bytes equal gguf-py's / ggml's.

use half::f16;

use super::blocks::{
    read_blocks, write_blocks, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
    QK32,
};

const H: usize = QK32 / 2;

/// (amax, signed value with the largest magnitude; first one wins ties).
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut mn, mut mx) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < mn {
            mn = v;
        }
        if v > mx {
            mx = v;
        }
    }
    (mn, mx)
}

#[inline]
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

pub(super) fn quant_q4_0(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ4_0> = src
        .chunks_exact(QK32)
        .map(|x| {
            let (_, max) = signed_absmax(x);
            let d = max / -8.0;
            let id = inv(d);
            let mut qs = [0u8; 16];
            for j in 0..H {
                let a = ((x[j] * id + 8.5) as i32).min(15) as u8;
                let b = ((x[j + H] * id + 8.5) as i32).min(15) as u8;
                qs[j] = (a & 15) | ((b & 15) << 4);
            }
            BlockQ4_0 {
                d: f16::from_f32(d),
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn quant_q4_1(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ4_1> = src
        .chunks_exact(QK32)
        .map(|x| {
            let (mn, mx) = min_max(x);
            let d = (mx - mn) / 15.0;
            let id = inv(d);
            let mut qs = [0u8; 16];
            for j in 0..H {
                let a = (((x[j] - mn) * id + 0.5) as i32).min(15) as u8;
                let b = (((x[j + H] - mn) * id + 0.5) as i32).min(15) as u8;
                qs[j] = (a & 15) | ((b & 15) << 4);
            }
            BlockQ4_1 {
                d: f16::from_f32(d),
                m: f16::from_f32(mn),
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn quant_q5_0(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ5_0> = src
        .chunks_exact(QK32)
        .map(|x| {
            let (_, max) = signed_absmax(x);
            let d = max / -16.0;
            let id = inv(d);
            let mut qs = [0u8; 16];
            let mut qh = 0u32;
            for j in 0..H {
                let a = ((x[j] * id + 16.5) as i32).min(31) as u32;
                let b = ((x[j + H] * id + 16.5) as i32).min(31) as u32;
                qs[j] = ((a & 15) | ((b & 15) << 4)) as u8;
                qh |= ((a >> 4) & 1) << j;
                qh |= ((b >> 4) & 1) << (j + H);
            }
            BlockQ5_0 {
                d: f16::from_f32(d),
                qh: qh.to_le_bytes(),
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn quant_q5_1(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ5_1> = src
        .chunks_exact(QK32)
        .map(|x| {
            let (mn, mx) = min_max(x);
            let d = (mx - mn) / 31.0;
            let id = inv(d);
            let mut qs = [0u8; 16];
            let mut qh = 0u32;
            for j in 0..H {
                let a = (((x[j] - mn) * id + 0.5) as i32).clamp(0, 31) as u32;
                let b = (((x[j + H] - mn) * id + 0.5) as i32).clamp(0, 31) as u32;
                qs[j] = ((a & 15) | ((b & 15) << 4)) as u8;
                qh |= ((a >> 4) & 1) << j;
                qh |= ((b >> 4) & 1) << (j + H);
            }
            BlockQ5_1 {
                d: f16::from_f32(d),
                m: f16::from_f32(mn),
                qh: qh.to_le_bytes(),
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

/// Shared q8_0 / q8_1 core: (d, qs).
#[inline]
fn q8_core(x: &[f32]) -> (f32, [i8; 32]) {
    let mut amax = 0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = inv(d);
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    (d, qs)
}

pub(super) fn quant_q8_0(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ8_0> = src
        .chunks_exact(QK32)
        .map(|x| {
            let (d, qs) = q8_core(x);
            BlockQ8_0 {
                d: f16::from_f32(d),
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn quant_q8_1(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ8_1> = src
        .chunks_exact(QK32)
        .map(|x| {
            let (d, qs) = q8_core(x);
            let sum: i32 = qs.iter().map(|&q| q as i32).sum();
            BlockQ8_1 {
                d: f16::from_f32(d),
                s: f16::from_f32(sum as f32 * d),
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn dequant_q4_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ4_0>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let d = b.d.to_f32();
        for j in 0..H {
            y[j] = d * ((b.qs[j] & 15) as i32 - 8) as f32;
            y[j + H] = d * ((b.qs[j] >> 4) as i32 - 8) as f32;
        }
    }
}

pub(super) fn dequant_q4_1(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ4_1>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for j in 0..H {
            y[j] = d * (b.qs[j] & 15) as f32 + m;
            y[j + H] = d * (b.qs[j] >> 4) as f32 + m;
        }
    }
}

#[inline]
fn q5_vals(qh: [u8; 4], qs: &[u8; 16], j: usize) -> (u32, u32) {
    let qh = u32::from_le_bytes(qh);
    let a = (qs[j] & 15) as u32 | (((qh >> j) & 1) << 4);
    let b = (qs[j] >> 4) as u32 | (((qh >> (j + H)) & 1) << 4);
    (a, b)
}

pub(super) fn dequant_q5_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ5_0>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let d = b.d.to_f32();
        for j in 0..H {
            let (a, c) = q5_vals(b.qh, &b.qs, j);
            y[j] = d * (a as i32 - 16) as f32;
            y[j + H] = d * (c as i32 - 16) as f32;
        }
    }
}

pub(super) fn dequant_q5_1(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ5_1>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for j in 0..H {
            let (a, c) = q5_vals(b.qh, &b.qs, j);
            y[j] = d * a as f32 + m;
            y[j + H] = d * c as f32 + m;
        }
    }
}

pub(super) fn dequant_q8_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ8_0>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let d = b.d.to_f32();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

pub(super) fn dequant_q8_1(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ8_1>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let d = b.d.to_f32();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}
