//! The typed description of a model, read from GGUF metadata through its architecture's table, and
//! the check that every tensor the forward pass reads is there with the shape and type it needs.

use super::arch::{self, Activation, ArchTable, Presence};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::ops::attention::rope::RopeStyle;
use crate::quant::QuantType;

/// Per-layer attention settings (sliding window layers differ from global ones).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LayerConfig {
    /// Keys visible to a query at position p are those > p - window; 0 = all.
    pub window: usize,
    pub rope_base: f32,
}

/// Everything the forward pass needs, in one place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelConfig {
    pub arch: String,
    pub name: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    #[serde(skip)]
    pub rope_style: RopeStyle,
    /// Rotated dims of each head (the first `n_rot`).
    pub n_rot: usize,
    pub activation: Activation,
    pub qkv_bias: bool,
    pub qk_norm: bool,
    pub post_norms: bool,
    /// Token embeddings are multiplied by this (gemma: sqrt(d_model)); 1 otherwise.
    pub embed_scale: f32,
    /// `output.weight` absent: logits use `token_embd.weight`.
    pub tied_output: bool,
    /// Attention score scale (1/sqrt(head_dim)).
    pub attn_scale: f32,
    /// tanh soft-cap of attention scores and of the final logits (0 = none).
    pub attn_softcap: f32,
    pub final_softcap: f32,
    pub layers: Vec<LayerConfig>,
}

/// Names of one layer's tensors (as llama.cpp's converters write them, the same for every
/// architecture).
pub fn layer_tensor(layer: usize, what: &str) -> String {
    format!("blk.{layer}.{what}")
}

fn key(arch: &str, k: &str) -> String {
    format!("{arch}.{k}")
}

fn req_u(g: &GgufFile, arch: &str, k: &str) -> Result<usize> {
    let full = key(arch, k);
    match g.get(&full) {
        None => Err(Error::Model(format!("missing key `{full}`"))),
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            Error::Model(format!(
                "key `{full}` is {v:?}, expected an unsigned integer"
            ))
        }),
    }
}

fn opt_u(g: &GgufFile, arch: &str, k: &str) -> Result<Option<usize>> {
    let full = key(arch, k);
    match g.get(&full) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
            Error::Model(format!(
                "key `{full}` is {v:?}, expected an unsigned integer"
            ))
        }),
    }
}

fn opt_f(g: &GgufFile, arch: &str, k: &str) -> Result<Option<f32>> {
    let full = key(arch, k);
    match g.get(&full) {
        None => Ok(None),
        Some(v) => v
            .as_f32()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| {
                Error::Model(format!("key `{full}` is {v:?}, expected a finite number"))
            }),
    }
}

impl ModelConfig {
    /// Read and validate the model description (hyperparameters and tensors).
    pub fn from_gguf(g: &GgufFile) -> Result<ModelConfig> {
        let arch_name = g
            .get_str("general.architecture")
            .map_err(|_| Error::Model("missing key `general.architecture`".into()))?;
        let t = arch::lookup(arch_name)?;
        let a = t.name;
        let n_layers = req_u(g, a, "block_count")?;
        let d_model = req_u(g, a, "embedding_length")?;
        let d_ff = req_u(g, a, "feed_forward_length")?;
        let n_heads = req_u(g, a, "attention.head_count")?;
        let n_kv_heads = opt_u(g, a, "attention.head_count_kv")?.unwrap_or(n_heads);
        if n_layers == 0 || d_model == 0 || d_ff == 0 || n_heads == 0 || n_kv_heads == 0 {
            return Err(Error::Model(format!(
                "zero hyperparameter: block_count {n_layers}, embedding_length {d_model}, feed_forward_length {d_ff}, head_count {n_heads}, head_count_kv {n_kv_heads}"
            )));
        }
        if n_heads % n_kv_heads != 0 {
            return Err(Error::Model(format!(
                "`{a}.attention.head_count` {n_heads} is not a multiple of `{a}.attention.head_count_kv` {n_kv_heads}"
            )));
        }
        let head_dim = match opt_u(g, a, "attention.key_length")? {
            Some(k) => k,
            None if d_model % n_heads == 0 => d_model / n_heads,
            None => {
                return Err(Error::Model(format!(
                    "`{a}.attention.key_length` missing and embedding_length {d_model} is not a multiple of head_count {n_heads}"
                )))
            }
        };
        if let Some(v) = opt_u(g, a, "attention.value_length")? {
            if v != head_dim {
                return Err(Error::Model(format!(
                    "`{a}.attention.value_length` {v} differs from key_length {head_dim}; only equal K/V head sizes are supported"
                )));
            }
        }
        if head_dim == 0 || head_dim % 8 != 0 {
            return Err(Error::Model(format!(
                "head dimension {head_dim} must be a positive multiple of 8"
            )));
        }
        let n_rot = opt_u(g, a, "rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot == 0 || n_rot > head_dim || n_rot % 8 != 0 {
            return Err(Error::Model(format!(
                "`{a}.rope.dimension_count` {n_rot} must be a positive multiple of 8 and at most the head dimension {head_dim}"
            )));
        }
        let rope_base = opt_f(g, a, "rope.freq_base")?.unwrap_or(10000.0);
        if rope_base <= 1.0 {
            return Err(Error::Model(format!(
                "`{a}.rope.freq_base` {rope_base} must be > 1"
            )));
        }
        check_rope_scaling(g, a)?;
        if g.tensor_info("rope_freqs.weight").is_some() {
            return Err(Error::Model(
                "per-dimension RoPE frequency factors (`rope_freqs.weight`, llama-3.1-style scaling) are not supported".into(),
            ));
        }
        let rms_eps = opt_f(g, a, "attention.layer_norm_rms_epsilon")?.unwrap_or(t.default_rms_eps);
        if !(rms_eps > 0.0) {
            return Err(Error::Model(format!(
                "`{a}.attention.layer_norm_rms_epsilon` {rms_eps} must be > 0"
            )));
        }
        let context_length = opt_u(g, a, "context_length")?.unwrap_or(4096).max(1);
        let window = opt_u(g, a, "attention.sliding_window")?.unwrap_or(0);
        let layers = (0..n_layers)
            .map(|i| {
                let sliding = match t.swa_pattern {
                    Some(p) => (i + 1) % p != 0,
                    None => true,
                };
                if window > 0 && sliding {
                    LayerConfig {
                        window,
                        rope_base: t.swa_rope_base.unwrap_or(rope_base),
                    }
                } else {
                    LayerConfig {
                        window: 0,
                        rope_base,
                    }
                }
            })
            .collect();
        let vocab_size = vocab_size(g, a, d_model)?;
        let mut c = ModelConfig {
            arch: a.to_string(),
            name: g
                .get("general.name")
                .and_then(|v| v.as_str())
                .unwrap_or(a)
                .to_string(),
            n_layers,
            d_model,
            d_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            context_length,
            rms_eps,
            rope_style: t.rope_style,
            n_rot,
            activation: t.activation,
            qkv_bias: false,
            qk_norm: t.qk_norm == Presence::Required,
            post_norms: t.post_norms,
            embed_scale: if t.embed_scale_sqrt_d {
                (d_model as f32).sqrt()
            } else {
                1.0
            },
            tied_output: g.tensor_info("output.weight").is_none(),
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            attn_softcap: opt_f(g, a, "attn_logit_softcapping")?.unwrap_or(0.0),
            final_softcap: opt_f(g, a, "final_logit_softcapping")?.unwrap_or(0.0),
            layers,
        };
        c.qkv_bias = match t.qkv_bias {
            Presence::Required => true,
            Presence::Absent => false,
            Presence::Optional => g.tensor_info(&layer_tensor(0, "attn_q.bias")).is_some(),
        };
        c.check_tensors(g, t)?;
        Ok(c)
    }

    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Every tensor the forward pass reads, with its expected GGUF shape (`ne0` first: the row
    /// length, then rows) and whether it is a norm/bias vector (read as f32).
    pub fn tensor_list(&self) -> Vec<(String, Vec<u64>)> {
        let d = self.d_model as u64;
        let mut v = vec![(
            "token_embd.weight".to_string(),
            vec![d, self.vocab_size as u64],
        )];
        v.push(("output_norm.weight".into(), vec![d]));
        if !self.tied_output {
            v.push(("output.weight".into(), vec![d, self.vocab_size as u64]));
        }
        let (q, kv, ff, hd) = (
            self.q_dim() as u64,
            self.kv_dim() as u64,
            self.d_ff as u64,
            self.head_dim as u64,
        );
        for l in 0..self.n_layers {
            let mut add = |n: &str, s: Vec<u64>| v.push((layer_tensor(l, n), s));
            add("attn_norm.weight", vec![d]);
            add("attn_q.weight", vec![d, q]);
            add("attn_k.weight", vec![d, kv]);
            add("attn_v.weight", vec![d, kv]);
            add("attn_output.weight", vec![q, d]);
            if self.qkv_bias {
                add("attn_q.bias", vec![q]);
                add("attn_k.bias", vec![kv]);
                add("attn_v.bias", vec![kv]);
            }
            if self.qk_norm {
                add("attn_q_norm.weight", vec![hd]);
                add("attn_k_norm.weight", vec![hd]);
            }
            if self.post_norms {
                add("post_attention_norm.weight", vec![d]);
                add("post_ffw_norm.weight", vec![d]);
            }
            add("ffn_norm.weight", vec![d]);
            add("ffn_gate.weight", vec![d, ff]);
            add("ffn_up.weight", vec![d, ff]);
            add("ffn_down.weight", vec![ff, d]);
        }
        v
    }

    fn check_tensors(&self, g: &GgufFile, t: &ArchTable) -> Result<()> {
        for (name, shape) in self.tensor_list() {
            let info = g.tensor_info(&name).ok_or_else(|| {
                Error::Model(format!(
                    "missing tensor `{name}` (architecture {}, expected shape {shape:?})",
                    t.name
                ))
            })?;
            check_shape(info, &shape)?;
            let vector = shape.len() == 1;
            if vector && !matches!(info.ty, QuantType::F32 | QuantType::F16 | QuantType::BF16) {
                return Err(Error::Model(format!(
                    "tensor `{name}` is {}; norm and bias vectors must be f32, f16 or bf16",
                    info.ty
                )));
            }
            if !vector && info.ty.ggml_id().is_none() {
                return Err(Error::Model(format!(
                    "tensor `{name}` has type {}, which GGUF models do not use",
                    info.ty
                )));
            }
        }
        if t.qk_norm == Presence::Absent
            && g.tensor_info(&layer_tensor(0, "attn_q_norm.weight"))
                .is_some()
        {
            return Err(Error::Model(format!(
                "tensor `blk.0.attn_q_norm.weight` present but architecture {} has no q/k norm",
                t.name
            )));
        }
        Ok(())
    }
}

fn check_shape(info: &TensorInfo, want: &[u64]) -> Result<()> {
    // GGUF may store a vector as [n] or [n, 1]; a matrix exactly as [cols, rows].
    let got: Vec<u64> = {
        let mut s = info.shape.clone();
        while s.len() > want.len() && s.last() == Some(&1) {
            s.pop();
        }
        s
    };
    if got != want {
        return Err(Error::Model(format!(
            "tensor `{}` has shape {:?}, expected {:?}",
            info.name, info.shape, want
        )));
    }
    Ok(())
}

fn check_rope_scaling(g: &GgufFile, a: &str) -> Result<()> {
    let ty = g
        .get(&key(a, "rope.scaling.type"))
        .and_then(|v| v.as_str())
        .unwrap_or("none");
    let factor = opt_f(g, a, "rope.scaling.factor")?.unwrap_or(1.0);
    if ty != "none" && factor != 1.0 {
        return Err(Error::Model(format!(
            "RoPE scaling `{ty}` with factor {factor} (`{a}.rope.scaling.*`) is not supported"
        )));
    }
    Ok(())
}

/// The vocabulary size: `{arch}.vocab_size` when present and consistent, else `token_embd`'s
/// row count, checked against the token list.
fn vocab_size(g: &GgufFile, a: &str, d_model: usize) -> Result<usize> {
    let emb = g.tensor_info("token_embd.weight").ok_or_else(|| {
        Error::Model("missing tensor `token_embd.weight` (token embeddings)".into())
    })?;
    if emb.shape.len() != 2 || emb.shape[0] as usize != d_model {
        return Err(Error::Model(format!(
            "tensor `token_embd.weight` has shape {:?}, expected [{d_model}, vocab]",
            emb.shape
        )));
    }
    let rows = emb.shape[1] as usize;
    if let Some(k) = opt_u(g, a, "vocab_size")? {
        if k != rows {
            tracing::warn!(
                "`{a}.vocab_size` {k} disagrees with token_embd rows {rows}; using {rows}"
            );
        }
    }
    if let Some(tokens) = g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        if tokens.len() > rows {
            return Err(Error::Model(format!(
                "the token list has {} entries but token_embd.weight only {rows} rows",
                tokens.len()
            )));
        }
    }
    Ok(rows)
}
