//! Attention ops: RoPE, paged KV cache, prefill (FlashAttention) and decode attention, softmax.

use crate::jit::Family;

/// Kernel families of this area.
pub fn families() -> Vec<&'static Family> {
    vec![]
}
