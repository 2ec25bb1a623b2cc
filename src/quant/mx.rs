//! Microscaling formats: GGUF's MXFP4 and our OCP MX v1.0 formats.
//!
//! # OCP MX v1.0 (our `mx_*` types; layouts in [`super::blocks`])
//! 32 elements share one E8M0 scale `X = 2^(e-127)` (`e = 255` is NaN).
//! * Scale rule (spec §6.3): `shared_exp = floor(log2(amax)) - emax_elem`, clamped to
//!   `[-127, 127]`, `e = shared_exp + 127`. `emax_elem`: E2M1 2, E2M3 2, E3M2 4, E4M3 8, E5M2 15.
//!   An all-zero block gets `e = 0`.
//! * Elements: `x / X` converted with round-to-nearest-even, saturating to the largest finite
//!   magnitude (E2M1 6, E2M3 7.5, E3M2 28, E4M3 448, E5M2 57344), subnormals kept.
//! * NaN or ±Inf anywhere in a block's input: the scale byte is `0xFF` (NaN) and element codes are
//!   0; dequantizing a block whose scale is `0xFF` yields NaN for all 32 elements.
//! * Element NaN/Inf codes (E4M3 `S.1111.111`; E5M2 exponent 31) decode to NaN/±Inf; the quantizer
//!   never produces them.
//!
//! # GGUF MXFP4 (type 39)
//! `e` byte then 16 nibble bytes (element `j` low nibble of `qs[j]`, element `j+16` high nibble).
//! Value = `kvalue[q] * 2^(e-128)` with `kvalue = 2 * E2M1 = {0,1,2,3,4,6,8,12, -0,-1,...,-12}`.
//! The quantizer matches ggml's `quantize_row_mxfp4_ref` / gguf-py: `e = floor(log2f(amax)) - 2
//! + 127` (0 when amax is 0; also 0 when that would be negative, i.e. amax < 2^-125, where the C
//! code's conversion is undefined), then each element takes the code minimizing
//! `|kvalue*d - x|`, the lowest code winning ties.

use super::blocks::{
    read_blocks, write_blocks, BlockMxFp4, BlockMxFp6, BlockMxFp8, BlockMxfp4Gguf, QK32,
};
use super::QuantType;

/// A small floating-point element format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiniFloat {
    /// Exponent bits.
    pub ebits: u32,
    /// Mantissa bits.
    pub mbits: u32,
    /// Exponent bias.
    pub bias: i32,
    /// Largest finite magnitude.
    pub max: f64,
    /// Exponent of `max` (the spec's `emax_elem`).
    pub emax: i32,
    /// Code of `+max`.
    pub max_code: u8,
    /// Code used for NaN, if the format has one.
    pub nan_code: Option<u8>,
}

/// FP4 E2M1.
pub const E2M1: MiniFloat = MiniFloat {
    ebits: 2,
    mbits: 1,
    bias: 1,
    max: 6.0,
    emax: 2,
    max_code: 0x7,
    nan_code: None,
};
/// FP6 E2M3.
pub const E2M3: MiniFloat = MiniFloat {
    ebits: 2,
    mbits: 3,
    bias: 1,
    max: 7.5,
    emax: 2,
    max_code: 0x1F,
    nan_code: None,
};
/// FP6 E3M2.
pub const E3M2: MiniFloat = MiniFloat {
    ebits: 3,
    mbits: 2,
    bias: 3,
    max: 28.0,
    emax: 4,
    max_code: 0x1F,
    nan_code: None,
};
/// FP8 E4M3 (OCP "FN": no Inf, NaN = S.1111.111).
pub const E4M3: MiniFloat = MiniFloat {
    ebits: 4,
    mbits: 3,
    bias: 7,
    max: 448.0,
    emax: 8,
    max_code: 0x7E,
    nan_code: Some(0x7F),
};
/// FP8 E5M2 (IEEE-like: Inf and NaN).
pub const E5M2: MiniFloat = MiniFloat {
    ebits: 5,
    mbits: 2,
    bias: 15,
    max: 57344.0,
    emax: 15,
    max_code: 0x7B,
    nan_code: Some(0x7F),
};

/// floor(log2(a)) of a positive finite f64, exactly.
fn floor_log2(a: f64) -> i32 {
    let bits = a.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32;
    if e == 0 {
        let m = bits & ((1u64 << 52) - 1);
        (63 - m.leading_zeros() as i32) - 1074
    } else {
        e - 1023
    }
}

#[inline]
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

impl MiniFloat {
    fn sign_bit(&self) -> u8 {
        1 << (self.ebits + self.mbits)
    }

    /// Encode with round-to-nearest-even, saturating to ±max. NaN → `nan_code` (or 0).
    pub fn encode(&self, v: f64) -> u8 {
        if v.is_nan() {
            return self.nan_code.unwrap_or(0);
        }
        let sign = if v.is_sign_negative() {
            self.sign_bit()
        } else {
            0
        };
        let a = v.abs();
        if a >= self.max {
            return sign | self.max_code;
        }
        if a == 0.0 {
            return sign;
        }
        let emin = 1 - self.bias;
        let mb = self.mbits as i32;
        let e = floor_log2(a).max(emin);
        let q = pow2(e - mb);
        let r = (a / q).round_ties_even() * q;
        if r >= self.max {
            return sign | self.max_code;
        }
        if r == 0.0 {
            return sign;
        }
        let el = floor_log2(r);
        let code = if el < emin {
            (r / pow2(emin - mb)) as u8
        } else {
            let man = (r / pow2(el - mb)) as u32 - (1 << mb);
            (((el + self.bias) as u32) << mb | man) as u8
        };
        sign | code
    }

    /// Decode a code (upper unused bits ignored).
    pub fn decode(&self, code: u8) -> f64 {
        let mb = self.mbits;
        let e = ((code >> mb) as u32 & ((1 << self.ebits) - 1)) as i32;
        let m = (code as u32 & ((1 << mb) - 1)) as f64;
        let neg = code & self.sign_bit() != 0;
        let emask = (1 << self.ebits) - 1;
        let mag = if self.ebits == 4 && e == emask && m as u32 == 7 {
            f64::NAN
        } else if self.ebits == 5 && e == emask {
            if m == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        } else if e == 0 {
            m * pow2(1 - self.bias - mb as i32)
        } else {
            (1.0 + m / (1u32 << mb) as f64) * pow2(e - self.bias)
        };
        if neg {
            -mag
        } else {
            mag
        }
    }
}

/// E8M0 byte → scale (`2^(e-127)`; 255 → NaN).
pub fn e8m0_to_f32(e: u8) -> f32 {
    if e == 255 {
        f32::NAN
    } else {
        pow2(e as i32 - 127) as f32
    }
}

/// The element format of an OCP MX type.
pub fn element_format(ty: QuantType) -> Option<MiniFloat> {
    match ty {
        QuantType::MX_FP4 => Some(E2M1),
        QuantType::MX_FP6_E2M3 => Some(E2M3),
        QuantType::MX_FP6_E3M2 => Some(E3M2),
        QuantType::MX_FP8_E4M3 => Some(E4M3),
        QuantType::MX_FP8_E5M2 => Some(E5M2),
        _ => None,
    }
}

/// OCP shared-scale byte for a block (see module docs).
pub fn ocp_scale(fmt: &MiniFloat, x: &[f32]) -> u8 {
    let mut amax = 0f32;
    for &v in x {
        if !v.is_finite() {
            return 0xFF;
        }
        amax = amax.max(v.abs());
    }
    if amax == 0.0 {
        return 0;
    }
    let se = (floor_log2(amax as f64) - fmt.emax).clamp(-127, 127);
    (se + 127) as u8
}

fn ocp_block_codes(fmt: &MiniFloat, x: &[f32]) -> (u8, [u8; QK32]) {
    let e = ocp_scale(fmt, x);
    let mut codes = [0u8; QK32];
    if e != 0xFF {
        let inv = pow2(127 - e as i32);
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = fmt.encode(v as f64 * inv);
        }
    }
    (e, codes)
}

fn pack_fp6(codes: &[u8; QK32]) -> [u8; 24] {
    let mut qs = [0u8; 24];
    for g in 0..8 {
        let mut w = 0u32;
        for k in 0..4 {
            w |= ((codes[4 * g + k] & 63) as u32) << (6 * k);
        }
        qs[3 * g..3 * g + 3].copy_from_slice(&w.to_le_bytes()[..3]);
    }
    qs
}

pub(super) fn quant_ocp(ty: QuantType, src: &[f32], out: &mut [u8]) {
    let Some(fmt) = element_format(ty) else {
        return;
    };
    match ty {
        QuantType::MX_FP4 => {
            let blocks: Vec<BlockMxFp4> = src
                .chunks_exact(QK32)
                .map(|x| {
                    let (e, c) = ocp_block_codes(&fmt, x);
                    let mut qs = [0u8; 16];
                    for (i, q) in qs.iter_mut().enumerate() {
                        *q = (c[2 * i] & 15) | ((c[2 * i + 1] & 15) << 4);
                    }
                    BlockMxFp4 { e, qs }
                })
                .collect();
            write_blocks(&blocks, out);
        }
        QuantType::MX_FP6_E2M3 | QuantType::MX_FP6_E3M2 => {
            let blocks: Vec<BlockMxFp6> = src
                .chunks_exact(QK32)
                .map(|x| {
                    let (e, c) = ocp_block_codes(&fmt, x);
                    BlockMxFp6 {
                        e,
                        qs: pack_fp6(&c),
                    }
                })
                .collect();
            write_blocks(&blocks, out);
        }
        _ => {
            let blocks: Vec<BlockMxFp8> = src
                .chunks_exact(QK32)
                .map(|x| {
                    let (e, qs) = ocp_block_codes(&fmt, x);
                    BlockMxFp8 { e, qs }
                })
                .collect();
            write_blocks(&blocks, out);
        }
    }
}

fn decode_block(fmt: &MiniFloat, e: u8, code: impl Fn(usize) -> u8, y: &mut [f32]) {
    if e == 0xFF {
        y.fill(f32::NAN);
        return;
    }
    let s = pow2(e as i32 - 127);
    for (i, o) in y.iter_mut().enumerate() {
        *o = (fmt.decode(code(i)) * s) as f32;
    }
}

pub(super) fn dequant_ocp(ty: QuantType, bytes: &[u8], out: &mut [f32]) {
    let Some(fmt) = element_format(ty) else {
        return;
    };
    match ty {
        QuantType::MX_FP4 => {
            for (b, y) in read_blocks::<BlockMxFp4>(bytes)
                .iter()
                .zip(out.chunks_exact_mut(QK32))
            {
                decode_block(&fmt, b.e, |i| (b.qs[i / 2] >> (4 * (i % 2))) & 15, y);
            }
        }
        QuantType::MX_FP6_E2M3 | QuantType::MX_FP6_E3M2 => {
            for (b, y) in read_blocks::<BlockMxFp6>(bytes)
                .iter()
                .zip(out.chunks_exact_mut(QK32))
            {
                let code = |i: usize| {
                    let g = 3 * (i / 4);
                    let w = u32::from_le_bytes([b.qs[g], b.qs[g + 1], b.qs[g + 2], 0]);
                    ((w >> (6 * (i % 4))) & 63) as u8
                };
                decode_block(&fmt, b.e, code, y);
            }
        }
        _ => {
            for (b, y) in read_blocks::<BlockMxFp8>(bytes)
                .iter()
                .zip(out.chunks_exact_mut(QK32))
            {
                decode_block(&fmt, b.e, |i| b.qs[i], y);
            }
        }
    }
}

/// Doubled E2M1 values, GGUF MXFP4 code order.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `2^(e-128)` (half the E8M0 value), as ggml's `ggml_e8m0_to_fp32_half`.
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000u32 << e)
    } else {
        f32::from_bits(((e as u32) - 1) << 23)
    }
}

pub(super) fn quant_mxfp4_gguf(src: &[f32], out: &mut [u8]) {
    let blocks: Vec<BlockMxfp4Gguf> = src
        .chunks_exact(QK32)
        .map(|x| {
            let mut amax = 0f32;
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                }
            }
            let e = if amax > 0.0 {
                (amax.log2().floor() - 2.0 + 127.0) as u8
            } else {
                0
            };
            let d = e8m0_to_f32_half(e);
            let best = |v: f32| -> u8 {
                let mut bi = 0u8;
                let mut be = (KVALUES_MXFP4[0] as f32 * d - v).abs();
                for (i, &k) in KVALUES_MXFP4.iter().enumerate().skip(1) {
                    let err = (k as f32 * d - v).abs();
                    if err < be {
                        bi = i as u8;
                        be = err;
                    }
                }
                bi
            };
            let mut qs = [0u8; 16];
            for j in 0..16 {
                qs[j] = best(x[j]) | (best(x[j + 16]) << 4);
            }
            BlockMxfp4Gguf { e, qs }
        })
        .collect();
    write_blocks(&blocks, out);
}

pub(super) fn dequant_mxfp4_gguf(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in read_blocks::<BlockMxfp4Gguf>(bytes)
        .iter()
        .zip(out.chunks_exact_mut(QK32))
    {
        let d = e8m0_to_f32_half(b.e);
        for j in 0..16 {
            y[j] = d * KVALUES_MXFP4[(b.qs[j] & 15) as usize] as f32;
            y[j + 16] = d * KVALUES_MXFP4[(b.qs[j] >> 4) as usize] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2m1_codes() {
        let want = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        for (c, &w) in want.iter().enumerate() {
            assert_eq!(E2M1.decode(c as u8), w);
            assert_eq!(E2M1.decode(c as u8 | 8), -w);
            assert_eq!(E2M1.encode(w), c as u8);
        }
    }

    #[test]
    fn maxima_and_saturation() {
        assert_eq!(E4M3.decode(0x7E), 448.0);
        assert!(E4M3.decode(0x7F).is_nan());
        assert_eq!(E4M3.encode(1e6), 0x7E);
        assert_eq!(E4M3.encode(-1e6), 0xFE);
        assert_eq!(E5M2.decode(0x7B), 57344.0);
        assert_eq!(E5M2.decode(0x7C), f64::INFINITY);
        assert_eq!(E5M2.encode(1e9), 0x7B);
        assert_eq!(E2M3.decode(0x1F), 7.5);
        assert_eq!(E3M2.decode(0x1F), 28.0);
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert!(e8m0_to_f32(255).is_nan());
        assert_eq!(e8m0_to_f32(0), 2f32.powi(-127));
    }

    #[test]
    fn encode_decode_all_codes() {
        for fmt in [E2M1, E2M3, E3M2, E4M3, E5M2] {
            let n = 1u32 << (1 + fmt.ebits + fmt.mbits);
            for c in 0..n {
                let v = fmt.decode(c as u8);
                if v.is_finite() {
                    let back = fmt.encode(v);
                    assert_eq!(fmt.decode(back), v, "{fmt:?} code {c}");
                }
            }
        }
    }

    #[test]
    fn ties_to_even() {
        // E2M1: 2.5 is between 2 (code 4, even mantissa) and 3 (code 5) -> 2.
        assert_eq!(E2M1.encode(2.5), 4);
        assert_eq!(E2M1.encode(3.5), 6);
        // E4M3 subnormal step 2^-9: 1.5 * 2^-9 ties to 2 * 2^-9.
        assert_eq!(E4M3.encode(1.5 * 2f64.powi(-9)), 2);
    }
}
