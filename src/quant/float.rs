//! F32 / F16 / BF16 "formats" (one element per block).

use half::f16;

use super::QuantType;

/// f32 → bf16 bits, round to nearest even; NaN becomes a quiet NaN keeping sign and top payload
/// (same as ggml's `ggml_compute_fp32_to_bf16` and gguf-py).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let n = x.to_bits();
    if n & 0x7fff_ffff > 0x7f80_0000 {
        return (((n & 0xffff_0000) | (64 << 16)) >> 16) as u16;
    }
    ((n as u64 + (0x7fff + ((n as u64 >> 16) & 1))) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

pub(super) fn dequantize(ty: QuantType, bytes: &[u8], out: &mut [f32]) {
    match ty {
        QuantType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        QuantType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
    }
}

pub(super) fn quantize(ty: QuantType, src: &[f32], out: &mut [u8]) {
    match ty {
        QuantType::F32 => {
            for (x, c) in src.iter().zip(out.chunks_exact_mut(4)) {
                c.copy_from_slice(&x.to_le_bytes());
            }
        }
        QuantType::F16 => {
            for (x, c) in src.iter().zip(out.chunks_exact_mut(2)) {
                c.copy_from_slice(&f16::from_f32(*x).to_le_bytes());
            }
        }
        _ => {
            for (x, c) in src.iter().zip(out.chunks_exact_mut(2)) {
                c.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
            }
        }
    }
}
