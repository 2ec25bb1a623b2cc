//! Block quantization formats, defined once.
//!
//! * [`QuantType`] names every format (GGML type ids for the GGUF ones).
//! * [`BlockLayout`] (in [`LAYOUTS`]) describes each block struct field by field; GPU kernels
//!   include the text of [`BlockLayout::c_struct`], so there is no second hand-written copy.
//! * [`dequantize`] / [`quantize`] convert on the CPU. GGUF formats follow llama.cpp's
//!   `quantize_row_*_ref` / `dequantize_row_*` numerics (bit-exact with gguf-py where it has the
//!   format); the OCP MX formats follow the OCP MX v1.0 spec (see [`mx`]).
//!
//! Byte order is little-endian throughout (as in GGUF); this module assumes a little-endian host.

#![allow(non_camel_case_types)]

pub mod blocks;
mod float;
mod kquants;
mod legacy;
pub mod mx;

pub use blocks::{c_type_size, BlockLayout, Field, LAYOUTS, QK32, QK_K};

use crate::error::{Error, Result};

/// Every format this crate knows. GGUF formats carry their GGML type id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuantType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    BF16,
    /// GGUF's MXFP4 (type 39, gpt-oss): E8M0 byte + 16 bytes, q4_0-style nibble order.
    MXFP4,
    /// OCP MX v1.0 FP4 (E2M1), no GGUF id.
    MX_FP4,
    /// OCP MX v1.0 FP6 E2M3, no GGUF id.
    MX_FP6_E2M3,
    /// OCP MX v1.0 FP6 E3M2, no GGUF id.
    MX_FP6_E3M2,
    /// OCP MX v1.0 FP8 E4M3, no GGUF id.
    MX_FP8_E4M3,
    /// OCP MX v1.0 FP8 E5M2, no GGUF id.
    MX_FP8_E5M2,
}

const ALL: [QuantType; 21] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
    QuantType::Q8_K,
    QuantType::BF16,
    QuantType::MXFP4,
    QuantType::MX_FP4,
    QuantType::MX_FP6_E2M3,
    QuantType::MX_FP6_E3M2,
    QuantType::MX_FP8_E4M3,
    QuantType::MX_FP8_E5M2,
];

impl QuantType {
    /// All formats, in table order.
    pub fn all() -> impl Iterator<Item = QuantType> + Clone {
        ALL.iter().copied()
    }

    /// Index into [`LAYOUTS`].
    fn index(self) -> usize {
        self as usize
    }

    /// The layout table row of this format.
    pub fn layout(self) -> &'static BlockLayout {
        &LAYOUTS[self.index()]
    }

    /// Lower-case name (`"q4_0"`, `"q4_K"`, `"bf16"`, `"mxfp4"`, `"mx_fp6_e2m3"`...).
    pub fn name(self) -> &'static str {
        self.layout().name
    }

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        self.layout().block_elems
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.layout().block_bytes
    }

    /// GGML type id, or `None` for our own OCP MX formats.
    pub fn ggml_id(self) -> Option<u32> {
        Some(match self {
            QuantType::F32 => 0,
            QuantType::F16 => 1,
            QuantType::Q4_0 => 2,
            QuantType::Q4_1 => 3,
            QuantType::Q5_0 => 6,
            QuantType::Q5_1 => 7,
            QuantType::Q8_0 => 8,
            QuantType::Q8_1 => 9,
            QuantType::Q2_K => 10,
            QuantType::Q3_K => 11,
            QuantType::Q4_K => 12,
            QuantType::Q5_K => 13,
            QuantType::Q6_K => 14,
            QuantType::Q8_K => 15,
            QuantType::BF16 => 30,
            QuantType::MXFP4 => 39,
            _ => return None,
        })
    }

    /// The format with this GGML type id.
    pub fn from_ggml_id(id: u32) -> Result<QuantType> {
        QuantType::all()
            .find(|t| t.ggml_id() == Some(id))
            .ok_or_else(|| {
                Error::Quant(format!(
                    "unsupported GGML type id {id} (not one of: {})",
                    supported_ids()
                ))
            })
    }

    /// The format with this name (as [`QuantType::name`], case-insensitive).
    pub fn from_name(name: &str) -> Result<QuantType> {
        QuantType::all()
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::Quant(format!("unknown quantization format `{name}`")))
    }

    /// Bytes taken by `n_elems` elements; error unless `n_elems` is a multiple of the block.
    pub fn row_bytes(self, n_elems: usize) -> Result<usize> {
        let l = self.layout();
        if n_elems % l.block_elems != 0 {
            return Err(Error::Quant(format!(
                "{} elements is not a multiple of the {} block size {}",
                n_elems, l.name, l.block_elems
            )));
        }
        (n_elems / l.block_elems)
            .checked_mul(l.block_bytes)
            .ok_or_else(|| {
                Error::Quant(format!("{} bytes for {n_elems} elements overflow", l.name))
            })
    }

    /// Whether this is one of our OCP MX formats (no GGUF id).
    pub fn is_ocp_mx(self) -> bool {
        self.ggml_id().is_none()
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn supported_ids() -> String {
    QuantType::all()
        .filter_map(|t| t.ggml_id().map(|id| format!("{id}={}", t.name())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check `bytes`/`elems` agree for `ty`; returns the block count.
fn check_lengths(ty: QuantType, n_bytes: usize, n_elems: usize, what: &str) -> Result<usize> {
    let l = ty.layout();
    let want = ty.row_bytes(n_elems)?;
    if n_bytes != want {
        return Err(Error::Quant(format!(
            "{what} {}: {n_elems} elements need {want} bytes, got {n_bytes}",
            l.name
        )));
    }
    Ok(n_elems / l.block_elems)
}

/// Dequantize `bytes` (whole blocks of `ty`) into `out`; `out.len()` elements are produced and
/// `bytes.len()` must be exactly their size. `bytes` may have any alignment.
pub fn dequantize(ty: QuantType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    check_lengths(ty, bytes.len(), out.len(), "dequantize")?;
    match ty {
        QuantType::F32 | QuantType::F16 | QuantType::BF16 => float::dequantize(ty, bytes, out),
        QuantType::Q4_0 => legacy::dequant_q4_0(bytes, out),
        QuantType::Q4_1 => legacy::dequant_q4_1(bytes, out),
        QuantType::Q5_0 => legacy::dequant_q5_0(bytes, out),
        QuantType::Q5_1 => legacy::dequant_q5_1(bytes, out),
        QuantType::Q8_0 => legacy::dequant_q8_0(bytes, out),
        QuantType::Q8_1 => legacy::dequant_q8_1(bytes, out),
        QuantType::Q2_K => kquants::dequant_q2_k(bytes, out),
        QuantType::Q3_K => kquants::dequant_q3_k(bytes, out),
        QuantType::Q4_K => kquants::dequant_q4_k(bytes, out),
        QuantType::Q5_K => kquants::dequant_q5_k(bytes, out),
        QuantType::Q6_K => kquants::dequant_q6_k(bytes, out),
        QuantType::Q8_K => kquants::dequant_q8_k(bytes, out),
        QuantType::MXFP4 => mx::dequant_mxfp4_gguf(bytes, out),
        QuantType::MX_FP4
        | QuantType::MX_FP6_E2M3
        | QuantType::MX_FP6_E3M2
        | QuantType::MX_FP8_E4M3
        | QuantType::MX_FP8_E5M2 => mx::dequant_ocp(ty, bytes, out),
    }
    Ok(())
}

/// Dequantize into a new vector of `n_elems` elements.
pub fn dequantize_to_vec(ty: QuantType, bytes: &[u8], n_elems: usize) -> Result<Vec<f32>> {
    check_lengths(ty, bytes.len(), n_elems, "dequantize")?;
    let mut out = vec![0f32; n_elems];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

/// Dequantize row `row` of a row-major matrix with `row_elems` elements per row.
pub fn dequantize_row(
    ty: QuantType,
    bytes: &[u8],
    row_elems: usize,
    row: usize,
    out: &mut [f32],
) -> Result<()> {
    let rb = ty.row_bytes(row_elems)?;
    let start = row
        .checked_mul(rb)
        .filter(|s| s.checked_add(rb).is_some_and(|e| e <= bytes.len()))
        .ok_or_else(|| {
            Error::Quant(format!(
                "row {row} of {rb} bytes is outside {} bytes",
                bytes.len()
            ))
        })?;
    if out.len() != row_elems {
        return Err(Error::Quant(format!(
            "row output has {} elements, want {row_elems}",
            out.len()
        )));
    }
    dequantize(ty, &bytes[start..start + rb], out)
}

/// Quantize `src` into `out` (`out.len()` must be exactly `ty.row_bytes(src.len())`).
/// Rows are independent per block, so any whole number of blocks may be passed at once.
pub fn quantize(ty: QuantType, src: &[f32], out: &mut [u8]) -> Result<()> {
    check_lengths(ty, out.len(), src.len(), "quantize")?;
    match ty {
        QuantType::F32 | QuantType::F16 | QuantType::BF16 => float::quantize(ty, src, out),
        QuantType::Q4_0 => legacy::quant_q4_0(src, out),
        QuantType::Q4_1 => legacy::quant_q4_1(src, out),
        QuantType::Q5_0 => legacy::quant_q5_0(src, out),
        QuantType::Q5_1 => legacy::quant_q5_1(src, out),
        QuantType::Q8_0 => legacy::quant_q8_0(src, out),
        QuantType::Q8_1 => legacy::quant_q8_1(src, out),
        QuantType::Q2_K => kquants::quant_q2_k(src, out),
        QuantType::Q3_K => kquants::quant_q3_k(src, out),
        QuantType::Q4_K => kquants::quant_q4_k(src, out),
        QuantType::Q5_K => kquants::quant_q5_k(src, out),
        QuantType::Q6_K => kquants::quant_q6_k(src, out),
        QuantType::Q8_K => kquants::quant_q8_k(src, out),
        QuantType::MXFP4 => mx::quant_mxfp4_gguf(src, out),
        QuantType::MX_FP4
        | QuantType::MX_FP6_E2M3
        | QuantType::MX_FP6_E3M2
        | QuantType::MX_FP8_E4M3
        | QuantType::MX_FP8_E5M2 => mx::quant_ocp(ty, src, out),
    }
    Ok(())
}

/// Quantize into a new byte vector.
pub fn quantize_to_vec(ty: QuantType, src: &[f32]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; ty.row_bytes(src.len())?];
    quantize(ty, src, &mut out)?;
    Ok(out)
}

/// `round(x)` to nearest, ties to even, as llama.cpp's `nearest_int` (valid for |x| < 2^22;
/// other inputs give an unspecified value but never panic).
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12582912.0f32;
    ((v.to_bits() as i32) & 0x007f_ffff) - 0x0040_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for t in QuantType::all() {
            if let Some(id) = t.ggml_id() {
                assert_eq!(QuantType::from_ggml_id(id).unwrap(), t);
            }
            assert_eq!(QuantType::from_name(t.name()).unwrap(), t);
        }
        assert!(QuantType::from_ggml_id(4).is_err());
        assert!(QuantType::from_ggml_id(999)
            .unwrap_err()
            .to_string()
            .contains("999"));
    }

    #[test]
    fn row_bytes_checks() {
        assert_eq!(QuantType::Q4_0.row_bytes(64).unwrap(), 36);
        assert!(QuantType::Q4_K.row_bytes(128).is_err());
        assert_eq!(QuantType::BF16.row_bytes(3).unwrap(), 6);
    }

    #[test]
    fn nearest_int_ties_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
    }

    #[test]
    fn length_errors() {
        let mut out = [0f32; 32];
        assert!(dequantize(QuantType::Q4_0, &[0u8; 17], &mut out).is_err());
        let mut b = [0u8; 18];
        assert!(quantize(QuantType::Q4_0, &[0f32; 31], &mut b).is_err());
    }
}
