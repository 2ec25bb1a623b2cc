//! One table per architecture: what the forward pass needs to know about a `general.architecture`
//! that the GGUF's hyperparameters do not say. The forward pass reads the resulting
//! [`super::config::ModelConfig`]; it never tests an architecture's name.

use crate::ops::attention::rope::RopeStyle;

/// The gated activation of the feed-forward block: `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Activation {
    /// silu(gate) · up (llama, mistral, qwen2, qwen3).
    Silu,
    /// gelu_tanh(gate) · up (gemma3).
    GeluTanh,
}

/// Whether a tensor family must be present, may be, or must not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    Absent,
}

/// What an architecture is, beyond its GGUF hyperparameters.
#[derive(Debug)]
pub struct ArchTable {
    /// `general.architecture`.
    pub name: &'static str,
    /// Pairing convention of RoPE as the GGUF stores Q/K (llama's converter permutes Q/K to the
    /// "normal" pairing; the others keep HF's rotate_half, i.e. NeoX).
    pub rope_style: RopeStyle,
    pub activation: Activation,
    /// `blk.N.attn_{q,k,v}.bias`.
    pub qkv_bias: Presence,
    /// `blk.N.attn_{q,k}_norm.weight`: RMSNorm over each head before RoPE.
    pub qk_norm: Presence,
    /// `blk.N.post_attention_norm` and `blk.N.post_ffw_norm` (normalize each block's output
    /// before the residual add).
    pub post_norms: bool,
    /// Token embeddings are multiplied by sqrt(embedding_length).
    pub embed_scale_sqrt_d: bool,
    /// Sliding-window layers: every `pattern`-th layer (1-based) is global, the others use the
    /// window from `{arch}.attention.sliding_window`. None: every layer uses the window if the key
    /// is present (mistral), else none.
    pub swa_pattern: Option<usize>,
    /// RoPE base of the sliding-window layers when it differs from `rope.freq_base`.
    pub swa_rope_base: Option<f32>,
    /// RMSNorm epsilon when `{arch}.attention.layer_norm_rms_epsilon` is absent.
    pub default_rms_eps: f32,
}

const LLAMA: ArchTable = ArchTable {
    name: "llama",
    rope_style: RopeStyle::Normal,
    activation: Activation::Silu,
    qkv_bias: Presence::Optional,
    qk_norm: Presence::Absent,
    post_norms: false,
    embed_scale_sqrt_d: false,
    swa_pattern: None,
    swa_rope_base: None,
    default_rms_eps: 1e-5,
};

/// Every supported architecture.
pub static ARCHS: &[ArchTable] = &[
    LLAMA,
    ArchTable {
        name: "mistral",
        ..LLAMA
    },
    ArchTable {
        name: "qwen2",
        rope_style: RopeStyle::Neox,
        qkv_bias: Presence::Required,
        default_rms_eps: 1e-6,
        ..LLAMA
    },
    ArchTable {
        name: "qwen3",
        rope_style: RopeStyle::Neox,
        qkv_bias: Presence::Absent,
        qk_norm: Presence::Required,
        default_rms_eps: 1e-6,
        ..LLAMA
    },
    ArchTable {
        name: "gemma3",
        rope_style: RopeStyle::Neox,
        activation: Activation::GeluTanh,
        qkv_bias: Presence::Absent,
        qk_norm: Presence::Required,
        post_norms: true,
        embed_scale_sqrt_d: true,
        swa_pattern: Some(6),
        swa_rope_base: Some(10000.0),
        default_rms_eps: 1e-6,
    },
];

/// The table of `name`, or an error listing the supported ones.
pub fn lookup(name: &str) -> crate::Result<&'static ArchTable> {
    ARCHS.iter().find(|a| a.name == name).ok_or_else(|| {
        crate::Error::Model(format!(
            "unsupported architecture `{name}` (general.architecture); supported: {}",
            ARCHS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        ))
    })
}
