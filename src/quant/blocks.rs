//! The block structs, one per format, and the layout table that describes them field by field.
//!
//! Every struct is `#[repr(C)]`, has no padding (checked by `bytemuck`'s derive and by the size
//! asserts below) and mirrors the C struct that [`BlockLayout::c_struct`] renders for GPU kernels.
//! The unit test `layout_matches_structs` ties the table to the structs: for every format the sum
//! of the field sizes equals `size_of` of the Rust struct and the table's `block_bytes`.
//!
//! Layouts of our own OCP MX v1.0 formats (no GGUF id), 32 elements per block:
//! * `mx_fp4`      — `uint8_t e; uint8_t qs[16];` element `2i` in the low nibble of `qs[i]`,
//!   element `2i+1` in the high nibble (sequential packing; GGUF's `mxfp4` differs, see below).
//! * `mx_fp6_e2m3` / `mx_fp6_e3m2` — `uint8_t e; uint8_t qs[24];` each group of 4 elements
//!   `4g..4g+3` lives in bytes `3g..3g+2`, read as a little-endian 24-bit word `w`; element
//!   `4g+k` is `(w >> 6k) & 63`.
//! * `mx_fp8_e4m3` / `mx_fp8_e5m2` — `uint8_t e; uint8_t qs[32];` one byte per element.
//!
//! `e` is the E8M0 shared scale: `2^(e-127)`, `e = 255` is NaN.
//!
//! GGUF's `mxfp4` (type 39, as in gpt-oss files): `uint8_t e; uint8_t qs[16];` element `j` in the
//! low nibble of `qs[j]`, element `j+16` in the high nibble of `qs[j]` (same order as `q4_0`).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::QuantType;

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;
/// Elements per legacy / MX block.
pub const QK32: usize = 32;

macro_rules! block {
    ($(#[$m:meta])* $name:ident, $size:expr, { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
        pub struct $name { $(pub $field: $ty),* }
        const _: () = assert!(std::mem::size_of::<$name>() == $size);
    };
}

block!(/// One `f32` element.
    BlockF32, 4, { v: f32 });
block!(/// One IEEE half element.
    BlockF16, 2, { v: f16 });
block!(/// One bfloat16 element (raw bits).
    BlockBF16, 2, { v: u16 });
block!(/// `q4_0`: `x = d * (q - 8)`.
    BlockQ4_0, 18, { d: f16, qs: [u8; 16] });
block!(/// `q4_1`: `x = d * q + m`.
    BlockQ4_1, 20, { d: f16, m: f16, qs: [u8; 16] });
block!(/// `q5_0`: `x = d * (q - 16)`, fifth bits in `qh` (little-endian u32, bit j = element j).
    BlockQ5_0, 22, { d: f16, qh: [u8; 4], qs: [u8; 16] });
block!(/// `q5_1`: `x = d * q + m`.
    BlockQ5_1, 24, { d: f16, m: f16, qh: [u8; 4], qs: [u8; 16] });
block!(/// `q8_0`: `x = d * q`.
    BlockQ8_0, 34, { d: f16, qs: [i8; 32] });
block!(/// `q8_1`: `x = d * q`, `s = d * sum(q)`.
    BlockQ8_1, 36, { d: f16, s: f16, qs: [i8; 32] });
block!(/// `q2_K`: 16 sub-blocks of 16, 4-bit scale and min each.
    BlockQ2K, 84, { scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16 });
block!(/// `q3_K`: 16 sub-blocks of 16, 6-bit signed scales.
    BlockQ3K, 110, { hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16 });
block!(/// `q4_K`: 8 sub-blocks of 32, 6-bit scales and mins.
    BlockQ4K, 144, { d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128] });
block!(/// `q5_K`: 8 sub-blocks of 32, 6-bit scales and mins, fifth bit in `qh`.
    BlockQ5K, 176, { d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128] });
block!(/// `q6_K`: 16 sub-blocks of 16, 8-bit signed scales.
    BlockQ6K, 210, { ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16 });
block!(/// `q8_K`: f32 scale, 256 int8, 16 partial sums.
    BlockQ8K, 292, { d: f32, qs: [i8; 256], bsums: [i16; 16] });
block!(/// GGUF `mxfp4` (gpt-oss).
    BlockMxfp4Gguf, 17, { e: u8, qs: [u8; 16] });
block!(/// OCP MX FP4 (E2M1), sequential nibble packing.
    BlockMxFp4, 17, { e: u8, qs: [u8; 16] });
block!(/// OCP MX FP6 (E2M3 or E3M2), 4 elements per 3 bytes.
    BlockMxFp6, 25, { e: u8, qs: [u8; 24] });
block!(/// OCP MX FP8 (E4M3 or E5M2).
    BlockMxFp8, 33, { e: u8, qs: [u8; 32] });

/// One field of a block struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name, as in the C struct.
    pub name: &'static str,
    /// C type: `half`, `float`, `uint8_t`, `int8_t`, `uint16_t`, `int16_t`.
    pub c_type: &'static str,
    /// Array length (1 renders as a scalar).
    pub count: usize,
}

impl Field {
    /// Bytes taken by this field.
    pub fn bytes(&self) -> usize {
        c_type_size(self.c_type) * self.count
    }
}

/// Size in bytes of one of the C types used in [`Field::c_type`] (0 for an unknown name).
pub fn c_type_size(c_type: &str) -> usize {
    match c_type {
        "uint8_t" | "int8_t" => 1,
        "half" | "uint16_t" | "int16_t" => 2,
        "float" => 4,
        _ => 0,
    }
}

/// Layout of one block format: the single definition both the CPU code and GPU kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// The format.
    pub ty: QuantType,
    /// Lower-case name (GGML's name for GGUF types), used in `block_<name>`.
    pub name: &'static str,
    /// Elements per block.
    pub block_elems: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Fields in memory order.
    pub fields: &'static [Field],
}

impl BlockLayout {
    /// C struct name: `block_<name>`.
    pub fn c_name(&self) -> String {
        format!("block_{}", self.name)
    }

    /// Render the C struct definition, e.g. `struct block_q4_0 { half d; uint8_t qs[16]; };`.
    /// `half` must be defined by the including source (HIP/CUDA `__half`).
    pub fn c_struct(&self) -> String {
        let mut s = format!("struct {} {{", self.c_name());
        for f in self.fields {
            if f.count == 1 {
                s.push_str(&format!(" {} {};", f.c_type, f.name));
            } else {
                s.push_str(&format!(" {} {}[{}];", f.c_type, f.name, f.count));
            }
        }
        s.push_str(" };");
        s
    }

    /// Sum of the field sizes (equals `block_bytes`; checked by a unit test).
    pub fn fields_bytes(&self) -> usize {
        self.fields.iter().map(Field::bytes).sum()
    }
}

const fn f(name: &'static str, c_type: &'static str, count: usize) -> Field {
    Field {
        name,
        c_type,
        count,
    }
}

const fn lay(
    ty: QuantType,
    name: &'static str,
    block_elems: usize,
    block_bytes: usize,
    fields: &'static [Field],
) -> BlockLayout {
    BlockLayout {
        ty,
        name,
        block_elems,
        block_bytes,
        fields,
    }
}

/// THE layout table, one row per [`QuantType`], in [`QuantType::all`] order.
pub static LAYOUTS: [BlockLayout; 21] = [
    lay(QuantType::F32, "f32", 1, 4, &[f("v", "float", 1)]),
    lay(QuantType::F16, "f16", 1, 2, &[f("v", "half", 1)]),
    lay(
        QuantType::Q4_0,
        "q4_0",
        32,
        18,
        &[f("d", "half", 1), f("qs", "uint8_t", 16)],
    ),
    lay(
        QuantType::Q4_1,
        "q4_1",
        32,
        20,
        &[f("d", "half", 1), f("m", "half", 1), f("qs", "uint8_t", 16)],
    ),
    lay(
        QuantType::Q5_0,
        "q5_0",
        32,
        22,
        &[
            f("d", "half", 1),
            f("qh", "uint8_t", 4),
            f("qs", "uint8_t", 16),
        ],
    ),
    lay(
        QuantType::Q5_1,
        "q5_1",
        32,
        24,
        &[
            f("d", "half", 1),
            f("m", "half", 1),
            f("qh", "uint8_t", 4),
            f("qs", "uint8_t", 16),
        ],
    ),
    lay(
        QuantType::Q8_0,
        "q8_0",
        32,
        34,
        &[f("d", "half", 1), f("qs", "int8_t", 32)],
    ),
    lay(
        QuantType::Q8_1,
        "q8_1",
        32,
        36,
        &[f("d", "half", 1), f("s", "half", 1), f("qs", "int8_t", 32)],
    ),
    lay(
        QuantType::Q2_K,
        "q2_K",
        256,
        84,
        &[
            f("scales", "uint8_t", 16),
            f("qs", "uint8_t", 64),
            f("d", "half", 1),
            f("dmin", "half", 1),
        ],
    ),
    lay(
        QuantType::Q3_K,
        "q3_K",
        256,
        110,
        &[
            f("hmask", "uint8_t", 32),
            f("qs", "uint8_t", 64),
            f("scales", "uint8_t", 12),
            f("d", "half", 1),
        ],
    ),
    lay(
        QuantType::Q4_K,
        "q4_K",
        256,
        144,
        &[
            f("d", "half", 1),
            f("dmin", "half", 1),
            f("scales", "uint8_t", 12),
            f("qs", "uint8_t", 128),
        ],
    ),
    lay(
        QuantType::Q5_K,
        "q5_K",
        256,
        176,
        &[
            f("d", "half", 1),
            f("dmin", "half", 1),
            f("scales", "uint8_t", 12),
            f("qh", "uint8_t", 32),
            f("qs", "uint8_t", 128),
        ],
    ),
    lay(
        QuantType::Q6_K,
        "q6_K",
        256,
        210,
        &[
            f("ql", "uint8_t", 128),
            f("qh", "uint8_t", 64),
            f("scales", "int8_t", 16),
            f("d", "half", 1),
        ],
    ),
    lay(
        QuantType::Q8_K,
        "q8_K",
        256,
        292,
        &[
            f("d", "float", 1),
            f("qs", "int8_t", 256),
            f("bsums", "int16_t", 16),
        ],
    ),
    lay(QuantType::BF16, "bf16", 1, 2, &[f("v", "uint16_t", 1)]),
    lay(
        QuantType::MXFP4,
        "mxfp4",
        32,
        17,
        &[f("e", "uint8_t", 1), f("qs", "uint8_t", 16)],
    ),
    lay(
        QuantType::MX_FP4,
        "mx_fp4",
        32,
        17,
        &[f("e", "uint8_t", 1), f("qs", "uint8_t", 16)],
    ),
    lay(
        QuantType::MX_FP6_E2M3,
        "mx_fp6_e2m3",
        32,
        25,
        &[f("e", "uint8_t", 1), f("qs", "uint8_t", 24)],
    ),
    lay(
        QuantType::MX_FP6_E3M2,
        "mx_fp6_e3m2",
        32,
        25,
        &[f("e", "uint8_t", 1), f("qs", "uint8_t", 24)],
    ),
    lay(
        QuantType::MX_FP8_E4M3,
        "mx_fp8_e4m3",
        32,
        33,
        &[f("e", "uint8_t", 1), f("qs", "uint8_t", 32)],
    ),
    lay(
        QuantType::MX_FP8_E5M2,
        "mx_fp8_e5m2",
        32,
        33,
        &[f("e", "uint8_t", 1), f("qs", "uint8_t", 32)],
    ),
];

/// `size_of` of the Rust block struct for a format.
pub fn rust_block_size(ty: QuantType) -> usize {
    use std::mem::size_of;
    match ty {
        QuantType::F32 => size_of::<BlockF32>(),
        QuantType::F16 => size_of::<BlockF16>(),
        QuantType::BF16 => size_of::<BlockBF16>(),
        QuantType::Q4_0 => size_of::<BlockQ4_0>(),
        QuantType::Q4_1 => size_of::<BlockQ4_1>(),
        QuantType::Q5_0 => size_of::<BlockQ5_0>(),
        QuantType::Q5_1 => size_of::<BlockQ5_1>(),
        QuantType::Q8_0 => size_of::<BlockQ8_0>(),
        QuantType::Q8_1 => size_of::<BlockQ8_1>(),
        QuantType::Q2_K => size_of::<BlockQ2K>(),
        QuantType::Q3_K => size_of::<BlockQ3K>(),
        QuantType::Q4_K => size_of::<BlockQ4K>(),
        QuantType::Q5_K => size_of::<BlockQ5K>(),
        QuantType::Q6_K => size_of::<BlockQ6K>(),
        QuantType::Q8_K => size_of::<BlockQ8K>(),
        QuantType::MXFP4 => size_of::<BlockMxfp4Gguf>(),
        QuantType::MX_FP4 => size_of::<BlockMxFp4>(),
        QuantType::MX_FP6_E2M3 | QuantType::MX_FP6_E3M2 => size_of::<BlockMxFp6>(),
        QuantType::MX_FP8_E4M3 | QuantType::MX_FP8_E5M2 => size_of::<BlockMxFp8>(),
    }
}

/// Read blocks of type `T` from bytes of any alignment: a zero-copy cast where alignment allows,
/// else an unaligned copy. `bytes.len()` must be a multiple of `size_of::<T>()` (callers check).
pub(crate) fn read_blocks<T: Pod>(bytes: &[u8]) -> std::borrow::Cow<'_, [T]> {
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            let n = std::mem::size_of::<T>();
            std::borrow::Cow::Owned(
                bytes
                    .chunks_exact(n)
                    .map(bytemuck::pod_read_unaligned::<T>)
                    .collect(),
            )
        }
    }
}

/// Write blocks into bytes of any alignment. `out.len()` must equal `blocks.len() * size_of::<T>()`.
pub(crate) fn write_blocks<T: Pod>(blocks: &[T], out: &mut [u8]) {
    let src: &[u8] = bytemuck::cast_slice(blocks);
    let n = src.len().min(out.len());
    out[..n].copy_from_slice(&src[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_structs() {
        for (i, l) in LAYOUTS.iter().enumerate() {
            assert_eq!(l.ty, QuantType::all().nth(i).unwrap(), "table order");
            assert_eq!(l.fields_bytes(), l.block_bytes, "{}", l.name);
            assert_eq!(rust_block_size(l.ty), l.block_bytes, "{}", l.name);
            for fl in l.fields {
                assert!(c_type_size(fl.c_type) > 0, "{}: {}", l.name, fl.c_type);
            }
        }
    }

    #[test]
    fn c_struct_renders() {
        assert_eq!(
            QuantType::Q4_0.layout().c_struct(),
            "struct block_q4_0 { half d; uint8_t qs[16]; };"
        );
        assert_eq!(
            QuantType::Q8_K.layout().c_struct(),
            "struct block_q8_K { float d; int8_t qs[256]; int16_t bsums[16]; };"
        );
    }

    #[test]
    fn unaligned_read() {
        let mut buf = vec![0u8; 1 + 2 * 292];
        buf[1..5].copy_from_slice(&1.5f32.to_le_bytes());
        let b = read_blocks::<BlockQ8K>(&buf[1..]);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].d, 1.5);
    }
}
