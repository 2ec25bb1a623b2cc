//! K-quants (256-element super-blocks): q2_K, q3_K, q4_K, q5_K, q6_K, q8_K.
//!
//! Quantizers reproduce llama.cpp's reference quantizers (`quantize_row_q*_K_ref`) including the
//! scale searches (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`) with the same f32
//! operation order, so results are bit-identical to ggml's reference path.

use half::f16;

use super::blocks::{
    read_blocks, write_blocks, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K,
};
use super::nearest_int;

const GROUP_MAX_EPS: f32 = 1e-15;

/// `make_qx_quants` with `qw == NULL`; returns the scale, `l` gets values in `0..2*nmax`.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], rmse_type: i32) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let weight = |v: f32| -> f32 {
        match rmse_type {
            1 => v * v,
            2 => 1.0,
            3 => v.abs(),
            _ => v.abs().sqrt(),
        }
    };
    let mut iscale = -(nmax as f32) / max;
    if rmse_type == 0 {
        for (o, &v) in l_out.iter_mut().zip(x) {
            let l = nearest_int(iscale * v);
            *o = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
        }
        return 1.0 / iscale;
    }
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (o, &v) in l_out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = (l + nmax) as i8;
        let w = weight(v);
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            let w = weight(v);
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                let l = nearest_int(iscale * v);
                *o = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants` with `do_rmse = true`; `l_out` gets values in `0..2*nmax`.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (o, &v) in l_out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (i, &v) in x.iter().enumerate() {
            let w = v * v;
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for o in l_out.iter_mut() {
        *o += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// `make_qkx2_quants`: returns (scale, the_min) with `l_out` in `0..=nmax`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut laux = [0u8; 32];
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// 6-bit scale `j` and min of the q4_K / q5_K 12-byte scale array.
#[inline]
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

pub(super) fn quant_q2_k(src: &[f32], out: &mut [u8]) {
    let mut blocks = Vec::with_capacity(src.len() / QK_K);
    for x in src.chunks_exact(QK_K) {
        let mut b = BlockQ2K {
            scales: [0; 16],
            qs: [0; 64],
            d: f16::ZERO,
            dmin: f16::ZERO,
        };
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let (mut max_scale, mut max_min) = (0f32, 0f32);
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            let mut w = [0f32; 16];
            for (wi, &v) in w.iter_mut().zip(xs) {
                *wi = v.abs();
            }
            let (s, m) =
                make_qkx2_quants(3, xs, &w, &mut l[16 * j..16 * j + 16], -0.5, 0.1, 15, true);
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for j in 0..16 {
                b.scales[j] = nearest_int(iscale * scales[j]) as u8;
            }
            b.d = f16::from_f32(max_scale / 15.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for j in 0..16 {
                b.scales[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
            }
            b.dmin = f16::from_f32(max_min / 15.0);
        }
        for j in 0..16 {
            let d = b.d.to_f32() * (b.scales[j] & 0xF) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = b.dmin.to_f32() * (b.scales[j] >> 4) as f32;
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b.qs);
        blocks.push(b);
    }
    write_blocks(&blocks, out);
}

pub(super) fn quant_q3_k(src: &[f32], out: &mut [u8]) {
    let mut blocks = Vec::with_capacity(src.len() / QK_K);
    for x in src.chunks_exact(QK_K) {
        let mut b = BlockQ3K {
            hmask: [0; 32],
            qs: [0; 64],
            scales: [0; 12],
            d: f16::ZERO,
        };
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0f32, 0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let s = scales[j].abs();
            if s > amax {
                amax = s;
                max_scale = scales[j];
            }
        }
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for j in 0..16 {
                let li = nearest_int(iscale * scales[j]) as i8;
                let li = (li.clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    b.scales[j] = li & 0xF;
                } else {
                    b.scales[j - 8] |= (li & 0xF) << 4;
                }
                b.scales[j % 4 + 8] |= (li >> 4) << (2 * (j / 4));
            }
            b.d = f16::from_f32(1.0 / iscale);
        }
        for j in 0..16 {
            let lo = if j < 8 {
                b.scales[j] & 0xF
            } else {
                b.scales[j - 8] >> 4
            };
            let sc = (lo | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
            let d = b.d.to_f32() * sc as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-4, 3) + 4) as i8;
            }
        }
        let mut lu = [0u8; QK_K];
        for j in 0..QK_K {
            let mut v = l[j] as u8;
            if v > 3 {
                b.hmask[j % 32] |= 1 << (j / 32);
                v -= 4;
            }
            lu[j] = v;
        }
        pack_2bit(&lu, &mut b.qs);
        blocks.push(b);
    }
    write_blocks(&blocks, out);
}

/// Shared q4_K / q5_K scale search; returns (d, dmin, scales, L).
fn qk45_scales(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut w = [0f32; 32];
        for (wi, &v) in w.iter_mut().zip(xs) {
            *wi = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &w,
            &mut l[32 * j..32 * j + 32],
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &sc);
        let dd = d.to_f32() * s as f32;
        if dd == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dd).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, sc, l)
}

pub(super) fn quant_q4_k(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ4K> = src
        .chunks_exact(QK_K)
        .map(|x| {
            let (d, dmin, scales, l) = qk45_scales(x, 15, -1.0, 20);
            let mut qs = [0u8; 128];
            for (c, j) in (0..QK_K).step_by(64).enumerate() {
                for k in 0..32 {
                    qs[32 * c + k] = l[j + k] | (l[j + k + 32] << 4);
                }
            }
            BlockQ4K {
                d,
                dmin,
                scales,
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn quant_q5_k(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockQ5K> = src
        .chunks_exact(QK_K)
        .map(|x| {
            let (d, dmin, scales, l) = qk45_scales(x, 31, -0.5, 15);
            let mut qs = [0u8; 128];
            let mut qh = [0u8; 32];
            let (mut m1, mut m2) = (1u8, 2u8);
            for (c, n) in (0..QK_K).step_by(64).enumerate() {
                for j in 0..32 {
                    let mut l1 = l[n + j];
                    if l1 > 15 {
                        l1 -= 16;
                        qh[j] |= m1;
                    }
                    let mut l2 = l[n + j + 32];
                    if l2 > 15 {
                        l2 -= 16;
                        qh[j] |= m2;
                    }
                    qs[32 * c + j] = l1 | (l2 << 4);
                }
                m1 = m1.wrapping_shl(2);
                m2 = m2.wrapping_shl(2);
            }
            BlockQ5K {
                d,
                dmin,
                scales,
                qh,
                qs,
            }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn quant_q6_k(src: &[f32], out: &mut [u8]) {
    let mut blocks = Vec::with_capacity(src.len() / QK_K);
    for x in src.chunks_exact(QK_K) {
        let mut b = BlockQ6K {
            ql: [0; 128],
            qh: [0; 64],
            scales: [0; 16],
            d: f16::ZERO,
        };
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs) = (0f32, 0f32);
        for ib in 0..16 {
            let s = make_qx_quants(
                32,
                &x[16 * ib..16 * ib + 16],
                &mut l[16 * ib..16 * ib + 16],
                1,
            );
            scales[ib] = s;
            if s.abs() > max_abs {
                max_abs = s.abs();
                max_scale = s;
            }
        }
        if max_abs < GROUP_MAX_EPS {
            blocks.push(b);
            continue;
        }
        let iscale = -128.0 / max_scale;
        b.d = f16::from_f32(1.0 / iscale);
        for ib in 0..16 {
            b.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        }
        for j in 0..16 {
            let d = b.d.to_f32() * b.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-32, 31) + 32) as i8;
            }
        }
        for (h, j) in (0..QK_K).step_by(128).enumerate() {
            for k in 0..32 {
                let q = |o: usize| l[j + k + o] as u8;
                b.ql[64 * h + k] = (q(0) & 0xF) | ((q(64) & 0xF) << 4);
                b.ql[64 * h + k + 32] = (q(32) & 0xF) | ((q(96) & 0xF) << 4);
                b.qh[32 * h + k] =
                    (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
            }
        }
        blocks.push(b);
    }
    write_blocks(&blocks, out);
}

pub(super) fn quant_q8_k(src: &[f32], out: &mut [u8]) {
    let mut blocks = Vec::with_capacity(src.len() / QK_K);
    for x in src.chunks_exact(QK_K) {
        let mut b = BlockQ8K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; 16],
        };
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax != 0.0 {
            let iscale = -127.0 / max;
            for (q, &v) in b.qs.iter_mut().zip(x) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            for j in 0..16 {
                b.bsums[j] = b.qs[16 * j..16 * j + 16]
                    .iter()
                    .map(|&q| q as i32)
                    .sum::<i32>() as i16;
            }
            b.d = 1.0 / iscale;
        }
        blocks.push(b);
    }
    write_blocks(&blocks, out);
}

pub(super) fn dequant_q2_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ2K>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        for (e, o) in y.iter_mut().enumerate() {
            let (half, r) = (e / 128, e % 128);
            let q = (b.qs[32 * half + r % 32] >> (2 * (r / 32))) & 3;
            let sc = b.scales[e / 16];
            let dl = d * (sc & 0xF) as f32;
            let ml = dmin * (sc >> 4) as f32;
            *o = dl * q as f32 - ml;
        }
    }
}

pub(super) fn dequant_q3_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ3K>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK_K))
    {
        let d = b.d.to_f32();
        let mut dl = [0f32; 16];
        for (j, v) in dl.iter_mut().enumerate() {
            let lo = if j < 8 {
                b.scales[j] & 0xF
            } else {
                b.scales[j - 8] >> 4
            };
            let sc = (lo | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
            *v = d * sc as f32;
        }
        for (e, o) in y.iter_mut().enumerate() {
            let (half, r) = (e / 128, e % 128);
            let ql = ((b.qs[32 * half + r % 32] >> (2 * (r / 32))) & 3) as i32;
            let hb = (b.hmask[e % 32] >> (e / 32)) & 1;
            let q = ql - if hb == 0 { 4 } else { 0 };
            *o = dl[e / 16] * q as f32;
        }
    }
}

fn dequant_q45(
    d: f16,
    dmin: f16,
    scales: &[u8; 12],
    mut q: impl FnMut(usize) -> u8,
    y: &mut [f32],
) {
    let (d, dmin) = (d.to_f32(), dmin.to_f32());
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, scales);
        let dl = d * s as f32;
        let ml = dmin * m as f32;
        for k in 0..32 {
            let e = 32 * j + k;
            y[e] = dl * q(e) as f32 - ml;
        }
    }
}

pub(super) fn dequant_q4_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ4K>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK_K))
    {
        let q = |e: usize| (b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0xF;
        dequant_q45(b.d, b.dmin, &b.scales, q, y);
    }
}

pub(super) fn dequant_q5_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ5K>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK_K))
    {
        let q = |e: usize| {
            let lo = (b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0xF;
            let hi = (b.qh[e % 32] >> (e / 32)) & 1;
            lo | (hi << 4)
        };
        dequant_q45(b.d, b.dmin, &b.scales, q, y);
    }
}

pub(super) fn dequant_q6_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ6K>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK_K))
    {
        let d = b.d.to_f32();
        for (e, o) in y.iter_mut().enumerate() {
            let (h, r) = (e / 128, e % 128);
            let lo = (b.ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
            let hi = (b.qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
            let q = (lo | (hi << 4)) as i32 - 32;
            *o = (d * b.scales[e / 16] as f32) * q as f32;
        }
    }
}

pub(super) fn dequant_q8_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockQ8K>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK_K))
    {
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = b.d * q as f32;
        }
    }
}
