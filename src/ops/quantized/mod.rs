//! Quantized-weight ops: dequantization and fused dequant × vector (GEMV).

use crate::jit::Family;

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![]
}
