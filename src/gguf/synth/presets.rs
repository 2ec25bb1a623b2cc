//! The architecture presets of `rocmforge gguf synth`.

use super::{err, VocabStyle};
use crate::error::Result;

/// An architecture's shape, as a preset.
#[derive(Clone, Debug)]
pub struct Preset {
    pub name: &'static str,
    /// `general.architecture`.
    pub arch: &'static str,
    pub n_layers: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// No `output.weight`: logits use `token_embd.weight`.
    pub tied: bool,
    pub qkv_bias: bool,
    pub qk_norm: bool,
    /// `post_attention_norm` / `post_ffw_norm` in every layer.
    pub post_norms: bool,
    /// `{arch}.attention.sliding_window`.
    pub sliding_window: Option<usize>,
    pub vocab_style: VocabStyle,
}

const LLAMA3_SPECIALS: &[&str] = &[
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
];
const CHATML_SPECIALS: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Every preset.
pub static PRESETS: &[Preset] = &[
    Preset {
        name: "llama-3-8b",
        arch: "llama",
        n_layers: 32,
        d_model: 4096,
        d_ff: 14336,
        n_heads: 32,
        n_kv_heads: 8,
        head_dim: 128,
        vocab: 128256,
        context: 8192,
        rope_base: 500000.0,
        rms_eps: 1e-5,
        tied: false,
        qkv_bias: false,
        qk_norm: false,
        post_norms: false,
        sliding_window: None,
        vocab_style: VocabStyle::ByteLevel {
            pre: "llama-bpe",
            specials: LLAMA3_SPECIALS,
            bos: 0,
            eos: 1,
            add_bos: true,
        },
    },
    Preset {
        name: "qwen2.5-7b",
        arch: "qwen2",
        n_layers: 28,
        d_model: 3584,
        d_ff: 18944,
        n_heads: 28,
        n_kv_heads: 4,
        head_dim: 128,
        vocab: 152064,
        context: 32768,
        rope_base: 1.0e6,
        rms_eps: 1e-6,
        tied: false,
        qkv_bias: true,
        qk_norm: false,
        post_norms: false,
        sliding_window: None,
        vocab_style: VocabStyle::ByteLevel {
            pre: "qwen2",
            specials: CHATML_SPECIALS,
            bos: 0,
            eos: 0,
            add_bos: false,
        },
    },
    Preset {
        name: "smollm2-135m",
        arch: "llama",
        n_layers: 30,
        d_model: 576,
        d_ff: 1536,
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
        vocab: 49152,
        context: 8192,
        rope_base: 100000.0,
        rms_eps: 1e-5,
        tied: true,
        qkv_bias: false,
        qk_norm: false,
        post_norms: false,
        sliding_window: None,
        vocab_style: VocabStyle::ByteLevel {
            pre: "smollm",
            specials: CHATML_SPECIALS,
            bos: 1,
            eos: 2,
            add_bos: false,
        },
    },
    Preset {
        name: "gemma3-270m",
        arch: "gemma3",
        n_layers: 18,
        d_model: 640,
        d_ff: 2048,
        n_heads: 4,
        n_kv_heads: 1,
        head_dim: 256,
        vocab: 262144,
        context: 32768,
        rope_base: 1.0e6,
        rms_eps: 1e-6,
        tied: true,
        qkv_bias: false,
        qk_norm: true,
        post_norms: true,
        sliding_window: Some(512),
        vocab_style: VocabStyle::SentencePiece,
    },
];

/// The preset called `name`, or an error listing them.
pub fn preset(name: &str) -> Result<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            err(format!(
                "unknown preset `{name}` (presets: {})",
                PRESETS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}
