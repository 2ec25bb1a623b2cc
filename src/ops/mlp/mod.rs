//! MLP ops: RMSNorm/LayerNorm, activations, embedding, linear layers (GEMV/GEMM/BLAS).

use crate::jit::Family;

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![]
}
