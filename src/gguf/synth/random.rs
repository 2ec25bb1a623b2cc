//! Random tensor contents for synthetic models, generated directly in each storage format.
//!
//! Quantized blocks are made from random quant bits plus scales chosen so that the dequantized
//! values have the requested standard deviation (and, for formats with a min, zero mean): no f32
//! tensor is ever materialized, so an 8B model is written at the speed of the random generator.
//! The block structs are the crate's own ([`crate::quant::blocks`]); nothing here restates a layout.
//!
//! Per format, with `q` uniform over its levels and `S(n) = sqrt((n^2-1)/12)` the standard
//! deviation of `n` uniform integer levels:
//! * `q4_0`, `q5_0`, `q8_0`: `d = σ / S(levels)`; `q8_0` keeps `q` in -127..=127 as ggml does.
//! * `q4_1`, `q5_1`: the same `d`, `m = -d * (levels-1)/2` (centered).
//! * `q2_K`, `q4_K`, `q5_K`: sub-block scales `s` drawn from the upper half of their range, the
//!   sub-block min equal to `s` and `dmin = d * (levels-1)/2`, so every sub-block is centered.
//! * `q3_K`, `q6_K`: signed sub-block scales of random sign from the upper half of their range.
//! * `mxfp4`: the E8M0 exponent nearest to `σ / rms(kvalues)`.
//!
//! Every block's σ is the target times a factor in [0.8, 1.2), so scales vary as in real files.

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::quant::blocks::{
    BlockMxfp4Gguf, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use crate::quant::mx::KVALUES_MXFP4;
use crate::quant::QuantType;

/// xoshiro256++ seeded through splitmix64: fast, small, and the same on every platform.
#[derive(Clone, Debug)]
pub(super) struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit value from a list of words (the seed of one piece of work).
pub(super) fn mix(words: &[u64]) -> u64 {
    let mut acc = 0x243F_6A88_85A3_08D3u64;
    for &w in words {
        let mut x = acc ^ w;
        acc = splitmix64(&mut x);
    }
    acc
}

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    #[inline]
    pub(super) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Random bytes.
    pub(super) fn fill(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let w = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&w[..rest.len()]);
        }
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(super) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub(super) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = (hi - lo + 1) as u64;
        lo + (((self.next_u64() >> 32) * span) >> 32) as u32
    }

    /// Approximately standard normal: the sum of four 16-bit uniforms, rescaled (Irwin-Hall).
    #[inline]
    pub(super) fn normal(&mut self) -> f32 {
        let w = self.next_u64();
        let s: u32 = (0..4).map(|k| ((w >> (16 * k)) & 0xFFFF) as u32).sum();
        // four uniforms in [0,1): mean 2, variance 1/3
        (s as f32 / 65536.0 - 2.0) * 3f32.sqrt()
    }

    /// Index in `0..n` biased towards small values (density ~ 1/sqrt(i)).
    #[inline]
    pub(super) fn biased_index(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u) * n as f32) as usize % n.max(1)
    }
}

/// What a tensor holds, which decides the distribution of its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A weight matrix (or embedding): zero mean, std [`super::MATRIX_STD`].
    Matrix,
    /// A norm weight: near 1 (gemma's GGUF stores `1 + w`, so near 1 as well).
    Norm,
    /// A bias: small, near 0.
    Bias,
    /// Any other vector (e.g. RoPE frequency factors): near 1.
    Vector,
}

/// Standard deviation of `n` equally likely consecutive integers.
fn levels_std(n: u32) -> f32 {
    (((n as f64 * n as f64 - 1.0) / 12.0).sqrt()) as f32
}

fn push<T: bytemuck::Pod>(out: &mut Vec<u8>, b: &T) {
    out.extend_from_slice(bytemuck::bytes_of(b));
}

/// Append `n_blocks` random blocks of `ty` (elements for f32/f16/bf16) to `out`.
pub(super) fn fill(
    ty: QuantType,
    kind: TensorKind,
    sigma: f32,
    n_blocks: usize,
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.reserve(n_blocks * ty.block_bytes());
    let float_value = |rng: &mut Rng| -> f32 {
        match kind {
            TensorKind::Matrix => sigma * rng.normal(),
            TensorKind::Norm => 1.0 + 0.02 * rng.normal(),
            TensorKind::Bias => 0.01 * rng.normal(),
            TensorKind::Vector => 1.0 + 0.01 * rng.normal(),
        }
    };
    if matches!(ty, QuantType::F32 | QuantType::F16 | QuantType::BF16) {
        for _ in 0..n_blocks {
            let v = float_value(rng);
            match ty {
                QuantType::F32 => out.extend_from_slice(&v.to_le_bytes()),
                QuantType::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                _ => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
            }
        }
        return Ok(());
    }
    if kind != TensorKind::Matrix {
        return Err(Error::Quant(format!(
            "synthetic {kind:?} tensors are stored as f32/f16/bf16, not {ty}"
        )));
    }
    let h = f16::from_f32;
    // σ of one block: the target with ±20% spread.
    let sb = |rng: &mut Rng| sigma * (0.8 + 0.4 * rng.unit());
    let (s16, s32, s64) = (levels_std(16), levels_std(32), levels_std(64));
    match ty {
        QuantType::Q4_0 => {
            for _ in 0..n_blocks {
                let mut b = BlockQ4_0 {
                    d: h(sb(rng) / s16),
                    qs: [0; 16],
                };
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        QuantType::Q4_1 => {
            for _ in 0..n_blocks {
                let d = sb(rng) / s16;
                let mut b = BlockQ4_1 {
                    d: h(d),
                    m: h(-7.5 * d),
                    qs: [0; 16],
                };
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        QuantType::Q5_0 => {
            for _ in 0..n_blocks {
                let mut b = BlockQ5_0 {
                    d: h(sb(rng) / s32),
                    qh: [0; 4],
                    qs: [0; 16],
                };
                rng.fill(&mut b.qh);
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        QuantType::Q5_1 => {
            for _ in 0..n_blocks {
                let d = sb(rng) / s32;
                let mut b = BlockQ5_1 {
                    d: h(d),
                    m: h(-15.5 * d),
                    qh: [0; 4],
                    qs: [0; 16],
                };
                rng.fill(&mut b.qh);
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        QuantType::Q8_0 => {
            let s = levels_std(255);
            for _ in 0..n_blocks {
                let mut raw = [0u8; 32];
                rng.fill(&mut raw);
                let b = BlockQ8_0 {
                    d: h(sb(rng) / s),
                    qs: raw.map(|x| if x == 0x80 { -127 } else { x as i8 }),
                };
                push(out, &b);
            }
        }
        QuantType::Q2_K => {
            let s4 = levels_std(4);
            for _ in 0..n_blocks {
                let d = sb(rng) / (11.5 * s4);
                let mut b = BlockQ2K {
                    scales: [0; 16],
                    qs: [0; 64],
                    d: h(d),
                    dmin: h(1.5 * d),
                };
                for s in b.scales.iter_mut() {
                    let sc = rng.range(8, 15) as u8;
                    *s = sc | (sc << 4);
                }
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        QuantType::Q3_K => {
            let s8 = levels_std(8);
            for _ in 0..n_blocks {
                let mut b = BlockQ3K {
                    hmask: [0; 32],
                    qs: [0; 64],
                    scales: [0; 12],
                    d: h(sb(rng) / (23.5 * s8)),
                };
                for j in 0..16 {
                    let mag = rng.range(16, 31) as i32;
                    let sc = if rng.next_u64() & 1 == 0 { mag } else { -mag };
                    let l = (sc + 32) as u8;
                    if j < 8 {
                        b.scales[j] |= l & 0xF;
                    } else {
                        b.scales[j - 8] |= (l & 0xF) << 4;
                    }
                    b.scales[8 + j % 4] |= (l >> 4) << (2 * (j / 4));
                }
                rng.fill(&mut b.hmask);
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        QuantType::Q4_K | QuantType::Q5_K => {
            let five = ty == QuantType::Q5_K;
            let (sq, half) = if five { (s32, 15.5) } else { (s16, 7.5) };
            for _ in 0..n_blocks {
                let d = sb(rng) / (47.5 * sq);
                let mut sc = [0u8; 12];
                for j in 0..8 {
                    // scale and min equal: each sub-block is centered on zero
                    let l = rng.range(32, 63) as u8;
                    if j < 4 {
                        sc[j] = l;
                        sc[j + 4] = l;
                    } else {
                        sc[j + 4] = (l & 0xF) | ((l & 0xF) << 4);
                        sc[j - 4] |= (l >> 4) << 6;
                        sc[j] |= (l >> 4) << 6;
                    }
                }
                if five {
                    let mut b = BlockQ5K {
                        d: h(d),
                        dmin: h(half * d),
                        scales: sc,
                        qh: [0; 32],
                        qs: [0; 128],
                    };
                    rng.fill(&mut b.qh);
                    rng.fill(&mut b.qs);
                    push(out, &b);
                } else {
                    let mut b = BlockQ4K {
                        d: h(d),
                        dmin: h(half * d),
                        scales: sc,
                        qs: [0; 128],
                    };
                    rng.fill(&mut b.qs);
                    push(out, &b);
                }
            }
        }
        QuantType::Q6_K => {
            for _ in 0..n_blocks {
                let mut b = BlockQ6K {
                    ql: [0; 128],
                    qh: [0; 64],
                    scales: [0; 16],
                    d: h(sb(rng) / (95.5 * s64)),
                };
                for s in b.scales.iter_mut() {
                    let mag = rng.range(64, 127) as i8;
                    *s = if rng.next_u64() & 1 == 0 { mag } else { -mag };
                }
                rng.fill(&mut b.ql);
                rng.fill(&mut b.qh);
                push(out, &b);
            }
        }
        QuantType::MXFP4 => {
            let rms = (KVALUES_MXFP4
                .iter()
                .map(|&k| (k as f32) * (k as f32))
                .sum::<f32>()
                / 16.0)
                .sqrt();
            for _ in 0..n_blocks {
                // value = 2^(e-128) * kvalue
                let e = (128.0 + (sb(rng) / rms).log2()).round().clamp(2.0, 254.0) as u8;
                let mut b = BlockMxfp4Gguf { e, qs: [0; 16] };
                rng.fill(&mut b.qs);
                push(out, &b);
            }
        }
        other => {
            return Err(Error::Quant(format!(
                "synthetic weights in {other} are not supported (supported: {})",
                super::SUPPORTED_TYPES.join(", ")
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_uniform() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        let mut r = Rng::new(1);
        let n = 100_000;
        let (mut s, mut s2) = (0f64, 0f64);
        for _ in 0..n {
            let x = r.normal() as f64;
            s += x;
            s2 += x * x;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "var {var}");
        for _ in 0..1000 {
            let v = r.range(3, 5);
            assert!((3..=5).contains(&v));
        }
    }
}
