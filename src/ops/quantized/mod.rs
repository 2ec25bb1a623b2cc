//! Quantized-weight ops: dequantization and fused dequant × vector (GEMV).
//!
//! Both families decode blocks with `templates/quant_dequant.h`, whose per-format tag structs
//! (`rf_fmt_<name>` with `QK`, `BYTES`, `dequant8`) are also meant for other families' fused
//! kernels: put [`quant_preamble`] into a family's `preamble` to get the block structs (rendered
//! from the layout table in [`crate::quant`]) and the decoders.

pub mod dequant;
pub mod gemv;
pub mod gemv_norm;
pub mod gemv_q8;

use crate::error::{Error, Result};
use crate::jit::template::template_text;
use crate::jit::{Family, KernelSpec};
use crate::quant::QuantType;

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![
        &dequant::FAMILY,
        &gemv::FAMILY,
        &gemv::WAVE_FAMILY,
        &gemv::WAVE_GROUP_FAMILY,
        &gemv_q8::FAMILY,
        &gemv_q8::ACT_FAMILY,
    ]
}

/// Every format name, as spec values (`QuantType::name`), in table order.
pub const FORMATS: &[&str] = &[
    "f32",
    "f16",
    "q4_0",
    "q4_1",
    "q5_0",
    "q5_1",
    "q8_0",
    "q8_1",
    "q2_K",
    "q3_K",
    "q4_K",
    "q5_K",
    "q6_K",
    "q8_K",
    "bf16",
    "mxfp4",
    "mx_fp4",
    "mx_fp6_e2m3",
    "mx_fp6_e3m2",
    "mx_fp8_e4m3",
    "mx_fp8_e5m2",
];

/// Elements per block as the kernels see it: the layout's block, except the float formats, which
/// the kernels take 8 elements at a time (`rf_fmt_f32::QK == 8`).
pub fn kernel_qk(ty: QuantType) -> usize {
    ty.block_elems().max(8)
}

/// Source every quantized kernel needs before its body: `half`, the block struct of every format
/// (from [`crate::quant::BlockLayout::c_struct`]), `quant_dequant.h` (float decoders) and
/// `quant_w8.h` (integer decoders). A missing template renders
/// as an `#error` line, so the compile fails with the reason.
pub fn quant_preamble() -> String {
    let mut s = String::from("\n// ---- quant block structs (rendered from the layout table) ----\ntypedef __half half;\n");
    // HIP 5.2's hipRTC has no <stdint.h> types (NVRTC gets them from prelude_cuda.h); these match
    // what any hipRTC that does define them uses, so a repeated typedef is harmless.
    s.push_str("#if defined(RF_GFX)\ntypedef signed char int8_t;\ntypedef unsigned char uint8_t;\ntypedef short int16_t;\ntypedef unsigned short uint16_t;\ntypedef unsigned int uint32_t;\n#endif\n");
    for ty in QuantType::all() {
        let l = ty.layout();
        s.push_str(&l.c_struct());
        s.push('\n');
        // Field offsets, from the same table (NVRTC has no constexpr offsetof).
        let mut off = 0;
        for f in l.fields {
            s.push_str(&format!(
                "constexpr int rf_off_{}_{} = {off};\n",
                l.c_name(),
                f.name
            ));
            off += f.bytes();
        }
    }
    for name in ["quant_dequant.h", "quant_w8.h"] {
        match template_text(name) {
            Ok(t) => s.push_str(&t),
            Err(e) => s.push_str(&format!(
                "#error \"{name}: {}\"\n",
                e.to_string().replace('"', "'")
            )),
        }
    }
    s
}

/// Family `preamble` hook (the spec does not change the text).
pub fn preamble(_: &KernelSpec) -> String {
    quant_preamble()
}

/// Check a `rows × cols` matrix of `ty` held in `w_bytes` bytes; returns the bytes of one row.
pub fn check_matrix(
    op: &'static str,
    ty: QuantType,
    rows: usize,
    cols: usize,
    w_bytes: usize,
) -> Result<usize> {
    let qk = kernel_qk(ty);
    if rows == 0 || cols == 0 {
        return Err(Error::op(op, format!("empty matrix {rows} x {cols}")));
    }
    if cols % qk != 0 {
        return Err(Error::op(
            op,
            format!("cols {cols} is not a multiple of the {ty} block of {qk} elements"),
        ));
    }
    let row_bytes = (cols / qk) * (ty.block_bytes() * qk / ty.block_elems());
    let want = row_bytes
        .checked_mul(rows)
        .ok_or_else(|| Error::op(op, format!("{rows} x {cols} overflows")))?;
    if w_bytes != want {
        return Err(Error::op(
            op,
            format!("a {rows} x {cols} {ty} matrix takes {want} bytes; the buffer has {w_bytes}"),
        ));
    }
    Ok(row_bytes)
}
