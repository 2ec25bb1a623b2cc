//! Synthetic GGUF models: a real architecture's metadata and tensor shapes, chosen quantization
//! types and random weights with valid scales (see [`random`]), so that large models can be
//! benchmarked, here and with llama.cpp's `llama-bench`, without carrying their weights.
//!
//! A file is planned first ([`plan`]: metadata, tokenizer, tensor names/shapes/types), then
//! written ([`write`]): the header, then every tensor's data generated in pieces of about 4 MiB in
//! parallel (rayon) and written in place at its offset, so memory stays small whatever the model
//! size. Each piece has its own generator seeded from (seed, tensor, piece): the bytes depend on
//! the seed only, not on the thread count.
//!
//! Metadata written for every architecture: `general.{architecture,type,name,file_type,
//! quantization_version,alignment}`; `{arch}.{context_length,embedding_length,block_count,
//! feed_forward_length,attention.head_count,attention.head_count_kv,rope.freq_base,
//! attention.layer_norm_rms_epsilon,vocab_size}`; `{arch}.rope.dimension_count` for llama/qwen2
//! (llama.cpp requires it to equal the head size for llama); `{arch}.attention.{key_length,
//! value_length,sliding_window}` for gemma3 (llama.cpp requires the sliding window for gemma3);
//! and the `tokenizer.*` keys (see [`vocab`]).
//!
//! Types (`--type`): one format for every matrix, or `q4_k_m`, llama.cpp's Q4_K_M mix as its
//! `llama_tensor_get_type` picks it for dense models: q4_K by default; q6_K for `output.weight`
//! (and for `token_embd.weight` when the output is tied to it — an untied `token_embd` stays
//! q4_K, as in llama.cpp's Q4_K_M files); q6_K for `attn_v` and `ffn_down` of the layers where
//! `i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2`; q5_K for a fused `attn_qkv`. Then, as
//! llama.cpp, a matrix whose rows are not a whole number of blocks falls back: q2_K/q3_K → q4_0,
//! q4_K → q5_0, q5_K → q5_1, q6_K → q8_0, and anything still not fitting → f16 (this is why
//! gemma3-270m's 640-wide matrices are q5_0/q8_0 in its Q4_K_M file). Vectors are f32.

mod presets;
mod random;
mod vocab;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use presets::{preset, Preset, PRESETS};
pub use random::TensorKind;
pub use vocab::VocabStyle;

pub use write::write;

use super::{GgufFile, Value};
use crate::error::{Error, Result};
use crate::quant::QuantType;

/// Data alignment of synthetic files (`general.alignment`).
pub const ALIGNMENT: u64 = 32;
/// Standard deviation of the dequantized matrix weights.
pub const MATRIX_STD: f32 = 0.02;
/// Bytes generated per piece of work.
const PIECE_BYTES: usize = 4 << 20;

/// `--type` values.
pub const SUPPORTED_TYPES: &[&str] = &[
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "mxfp4", "f16",
    "bf16", "f32", "q4_k_m",
];

/// How matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeChoice {
    /// One format for every matrix.
    Uniform(QuantType),
    /// llama.cpp's Q4_K_M mix (see the module documentation).
    Q4KM,
}

impl TypeChoice {
    /// Parse a `--type` value (case-insensitive).
    pub fn parse(s: &str) -> Result<TypeChoice> {
        let bad = || {
            err(format!(
                "unsupported --type `{s}` (supported: {})",
                SUPPORTED_TYPES.join(", ")
            ))
        };
        if s.eq_ignore_ascii_case("q4_k_m") {
            return Ok(TypeChoice::Q4KM);
        }
        let t = QuantType::from_name(s).map_err(|_| bad())?;
        if SUPPORTED_TYPES.iter().any(|n| *n == t.name()) {
            Ok(TypeChoice::Uniform(t))
        } else {
            Err(bad())
        }
    }

    /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_MOSTLY_*`) for this choice.
    pub fn file_type(self) -> u32 {
        match self {
            TypeChoice::Q4KM => 15,
            TypeChoice::Uniform(t) => match t {
                QuantType::F32 => 0,
                QuantType::F16 => 1,
                QuantType::Q4_0 => 2,
                QuantType::Q4_1 => 3,
                QuantType::Q8_0 => 7,
                QuantType::Q5_0 => 8,
                QuantType::Q5_1 => 9,
                QuantType::Q2_K => 10,
                QuantType::Q3_K => 11,
                QuantType::Q4_K => 14,
                QuantType::Q5_K => 16,
                QuantType::Q6_K => 18,
                QuantType::BF16 => 32,
                QuantType::MXFP4 => 38,
                _ => 1024, // LLAMA_FTYPE_GUESSED
            },
        }
    }
}

/// Where the architecture comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// One of [`PRESETS`].
    Preset(String),
    /// Another GGUF: its architecture metadata and tensor shapes (and types unless a type is given).
    Like(PathBuf),
}

/// Everything `rocmforge gguf synth` takes.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub source: Source,
    /// None: q4_k_m for a preset, the file's own types for `--like`.
    pub types: Option<TypeChoice>,
    /// Copy every `tokenizer.*` key of this GGUF.
    pub tokenizer_from: Option<PathBuf>,
    /// Embedding rows (and token count); default: the tokenizer's count, else the source's.
    pub vocab: Option<usize>,
    /// Block count (fewer layers than the source for small test files).
    pub layers: Option<usize>,
    pub seed: u64,
}

/// One planned tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthTensor {
    pub name: String,
    /// GGML order (`shape[0]` is the row length).
    pub shape: Vec<u64>,
    pub ty: QuantType,
    pub kind: TensorKind,
}

/// A planned file: metadata in file order and tensors in file order.
#[derive(Clone, Debug)]
pub struct SynthPlan {
    pub arch: String,
    pub n_layers: usize,
    pub vocab: usize,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<SynthTensor>,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct SynthSummary {
    pub path: PathBuf,
    pub arch: String,
    pub n_layers: usize,
    pub vocab: usize,
    pub tensors: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// Tensor count per type name.
    pub types: BTreeMap<String, usize>,
}

fn err(message: String) -> Error {
    Error::Gguf {
        path: "<synth>".into(),
        message,
    }
}

/// Plan and write `out`.
pub fn synth(out: &Path, opts: &SynthOptions) -> Result<SynthSummary> {
    let p = plan(opts)?;
    write(&p, out, opts.seed)
}

/// Layer index of a `blk.N.*` tensor.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

fn kind_of(name: &str, shape: &[u64]) -> TensorKind {
    if shape.iter().filter(|&&d| d > 1).count() >= 2 {
        TensorKind::Matrix
    } else if name.ends_with(".bias") {
        TensorKind::Bias
    } else if name.contains("norm") {
        TensorKind::Norm
    } else {
        TensorKind::Vector
    }
}

/// llama.cpp's `use_more_bits`.
fn use_more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// llama.cpp's fallback for rows that are not a whole number of blocks.
fn fallback(ty: QuantType, row: u64) -> QuantType {
    let fits = |t: QuantType| row % t.block_elems() as u64 == 0;
    if fits(ty) {
        return ty;
    }
    let alt = match ty {
        QuantType::Q2_K | QuantType::Q3_K => QuantType::Q4_0,
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        _ => QuantType::F16,
    };
    if fits(alt) {
        alt
    } else {
        QuantType::F16
    }
}

/// The storage type of a tensor under `choice`.
fn choose_type(choice: TypeChoice, t: &SynthTensor, n_layers: usize, tied: bool) -> QuantType {
    if t.kind != TensorKind::Matrix {
        return QuantType::F32;
    }
    let ty = match choice {
        TypeChoice::Uniform(ty) => ty,
        TypeChoice::Q4KM => {
            let n = &t.name;
            let more = || layer_of(n).is_some_and(|i| use_more_bits(i, n_layers));
            if n == "output.weight" || (tied && n == "token_embd.weight") {
                QuantType::Q6_K
            } else if n.contains("attn_qkv.weight") {
                QuantType::Q5_K
            } else if (n.contains("attn_v.weight") || n.contains("ffn_down")) && more() {
                QuantType::Q6_K
            } else {
                QuantType::Q4_K
            }
        }
    };
    fallback(ty, t.shape[0])
}

/// Every `tokenizer.*` key of a file, and its token count.
fn tokenizer_keys(g: &GgufFile) -> Vec<(String, Value)> {
    g.metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .cloned()
        .collect()
}

fn open_tokenizer_source(path: &Path) -> Result<(Vec<(String, Value)>, usize)> {
    let g = GgufFile::open(path)?;
    let kvs = tokenizer_keys(&g);
    let n = vocab::token_count(&kvs).ok_or_else(|| {
        err(format!(
            "--tokenizer-from {}: the file has no tokenizer.ggml.tokens",
            path.display()
        ))
    })?;
    Ok((kvs, n))
}

fn check_counts(vocab: Option<usize>, layers: Option<usize>) -> Result<()> {
    if vocab == Some(0) {
        return Err(err("--vocab must be at least 1".into()));
    }
    if layers == Some(0) {
        return Err(err("--layers must be at least 1".into()));
    }
    Ok(())
}

/// Plan a file: metadata, tokenizer and tensors.
pub fn plan(opts: &SynthOptions) -> Result<SynthPlan> {
    check_counts(opts.vocab, opts.layers)?;
    let tok_from = match &opts.tokenizer_from {
        Some(p) => Some((open_tokenizer_source(p)?, p.display().to_string())),
        None => None,
    };
    let mut plan = match &opts.source {
        Source::Preset(name) => plan_preset(preset(name)?, opts, tok_from)?,
        Source::Like(path) => plan_like(path, opts, tok_from)?,
    };
    for (k, v) in plan.metadata.iter_mut() {
        if k == "general.alignment" {
            *v = Value::U32(ALIGNMENT as u32);
        }
    }
    if !plan.metadata.iter().any(|(k, _)| k == "general.alignment") {
        plan.metadata
            .push(("general.alignment".into(), Value::U32(ALIGNMENT as u32)));
    }
    Ok(plan)
}

type TokSource = Option<((Vec<(String, Value)>, usize), String)>;

fn plan_preset(p: &Preset, opts: &SynthOptions, tok_from: TokSource) -> Result<SynthPlan> {
    let n_layers = opts.layers.unwrap_or(p.n_layers);
    let vocab = opts
        .vocab
        .or(tok_from.as_ref().map(|t| t.0 .1))
        .unwrap_or(p.vocab);
    let tokenizer = match tok_from {
        Some(((mut kvs, _), from)) => {
            vocab::pad(&mut kvs, vocab, &from)?;
            kvs
        }
        None => vocab::synthetic(p.vocab_style, vocab)?,
    };
    let choice = opts.types.unwrap_or(TypeChoice::Q4KM);
    let a = p.arch;
    let u = |x: usize| Value::U32(x as u32);
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.type".into(), Value::String("model".into())),
        (
            "general.name".into(),
            Value::String(format!("synthetic {}", p.name)),
        ),
        ("general.file_type".into(), Value::U32(choice.file_type())),
        ("general.quantization_version".into(), Value::U32(2)),
        ("general.alignment".into(), Value::U32(ALIGNMENT as u32)),
        (format!("{a}.context_length"), u(p.context)),
        (format!("{a}.embedding_length"), u(p.d_model)),
        (format!("{a}.block_count"), u(n_layers)),
        (format!("{a}.feed_forward_length"), u(p.d_ff)),
        (format!("{a}.attention.head_count"), u(p.n_heads)),
        (format!("{a}.attention.head_count_kv"), u(p.n_kv_heads)),
        (format!("{a}.rope.freq_base"), Value::F32(p.rope_base)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(p.rms_eps),
        ),
        (format!("{a}.vocab_size"), u(vocab)),
    ];
    if p.head_dim * p.n_heads != p.d_model || p.arch == "gemma3" {
        md.push((format!("{a}.attention.key_length"), u(p.head_dim)));
        md.push((format!("{a}.attention.value_length"), u(p.head_dim)));
    }
    if p.arch != "gemma3" {
        md.push((format!("{a}.rope.dimension_count"), u(p.head_dim)));
    }
    if let Some(w) = p.sliding_window {
        md.push((format!("{a}.attention.sliding_window"), u(w)));
    }
    md.extend(tokenizer);

    let (d, q, kv, ff, hd) = (
        p.d_model as u64,
        (p.n_heads * p.head_dim) as u64,
        (p.n_kv_heads * p.head_dim) as u64,
        p.d_ff as u64,
        p.head_dim as u64,
    );
    let mut shapes: Vec<(String, Vec<u64>)> =
        vec![("token_embd.weight".into(), vec![d, vocab as u64])];
    for l in 0..n_layers {
        let mut add = |n: &str, s: Vec<u64>| shapes.push((format!("blk.{l}.{n}"), s));
        add("attn_norm.weight", vec![d]);
        add("attn_q.weight", vec![d, q]);
        add("attn_k.weight", vec![d, kv]);
        add("attn_v.weight", vec![d, kv]);
        if p.qkv_bias {
            add("attn_q.bias", vec![q]);
            add("attn_k.bias", vec![kv]);
            add("attn_v.bias", vec![kv]);
        }
        if p.qk_norm {
            add("attn_q_norm.weight", vec![hd]);
            add("attn_k_norm.weight", vec![hd]);
        }
        add("attn_output.weight", vec![q, d]);
        if p.post_norms {
            add("post_attention_norm.weight", vec![d]);
        }
        add("ffn_norm.weight", vec![d]);
        add("ffn_gate.weight", vec![d, ff]);
        add("ffn_up.weight", vec![d, ff]);
        add("ffn_down.weight", vec![ff, d]);
        if p.post_norms {
            add("post_ffw_norm.weight", vec![d]);
        }
    }
    shapes.push(("output_norm.weight".into(), vec![d]));
    if !p.tied {
        shapes.push(("output.weight".into(), vec![d, vocab as u64]));
    }
    let tensors = shapes
        .into_iter()
        .map(|(name, shape)| {
            let mut t = SynthTensor {
                kind: kind_of(&name, &shape),
                name,
                shape,
                ty: QuantType::F32,
            };
            t.ty = choose_type(choice, &t, n_layers, p.tied);
            t
        })
        .collect();
    Ok(SynthPlan {
        arch: a.to_string(),
        n_layers,
        vocab,
        metadata: md,
        tensors,
    })
}

fn plan_like(path: &Path, opts: &SynthOptions, tok_from: TokSource) -> Result<SynthPlan> {
    let g = GgufFile::open(path)?;
    let gerr = |m: String| Error::Gguf {
        path: path.display().to_string(),
        message: m,
    };
    let arch = g.architecture()?.to_string();
    let count_key = format!("{arch}.block_count");
    let orig_layers = g.get_u32(&count_key)? as usize;
    let n_layers = opts.layers.unwrap_or(orig_layers);
    if n_layers > orig_layers {
        return Err(gerr(format!(
            "--layers {n_layers} is more than the file's {orig_layers} layers (use a preset to grow a model)"
        )));
    }
    let emb = g
        .tensor_info("token_embd.weight")
        .ok_or_else(|| gerr("no tensor token_embd.weight".into()))?;
    if emb.shape.len() != 2 {
        return Err(gerr(format!(
            "token_embd.weight has shape {:?}, expected [d_model, vocab]",
            emb.shape
        )));
    }
    let orig_vocab = emb.shape[1] as usize;
    let vocab = opts
        .vocab
        .or(tok_from.as_ref().map(|t| t.0 .1))
        .unwrap_or(orig_vocab);
    let own = tokenizer_keys(&g);
    let tokenizer = match tok_from {
        Some(((mut kvs, _), from)) => {
            vocab::pad(&mut kvs, vocab, &from)?;
            kvs
        }
        None => match vocab::token_count(&own) {
            Some(n) if n <= vocab => {
                let mut kvs = own;
                vocab::pad(&mut kvs, vocab, &path.display().to_string())?;
                kvs
            }
            _ => {
                let spm = g
                    .get("tokenizer.ggml.model")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m == "llama");
                let style = if spm {
                    VocabStyle::SentencePiece
                } else {
                    VocabStyle::ByteLevel {
                        pre: "default",
                        specials: &["<s>", "</s>"],
                        bos: 0,
                        eos: 1,
                        add_bos: true,
                    }
                };
                vocab::synthetic(style, vocab)?
            }
        },
    };
    let mut md = Vec::new();
    for (k, v) in g.metadata() {
        if k.starts_with("tokenizer.") {
            continue;
        }
        let v = if *k == count_key {
            Value::U32(n_layers as u32)
        } else if *k == format!("{arch}.vocab_size") {
            Value::U32(vocab as u32)
        } else if *k == "general.file_type" && opts.types.is_some() {
            Value::U32(opts.types.map(TypeChoice::file_type).unwrap_or(1024))
        } else if *k == "general.name" {
            Value::String(format!("synthetic {}", v.as_str().unwrap_or(&arch)))
        } else {
            match v {
                // per-layer arrays follow the block count
                Value::Array(et, items)
                    if n_layers != orig_layers
                        && k.starts_with(&format!("{arch}."))
                        && items.len() == orig_layers =>
                {
                    Value::Array(*et, items[..n_layers].to_vec())
                }
                other => other.clone(),
            }
        };
        md.push((k.clone(), v));
    }
    if let Some(c) = opts.types {
        if !md.iter().any(|(k, _)| k == "general.file_type") {
            md.push(("general.file_type".into(), Value::U32(c.file_type())));
        }
    }
    md.extend(tokenizer);
    let tied = g.tensor_info("output.weight").is_none();
    let mut tensors = Vec::new();
    for t in g.tensors() {
        if layer_of(&t.name).is_some_and(|l| l >= n_layers) {
            continue;
        }
        let mut shape = t.shape.clone();
        if (t.name == "token_embd.weight" || t.name == "output.weight")
            && shape.len() == 2
            && shape[1] as usize == orig_vocab
        {
            shape[1] = vocab as u64;
        }
        let mut st = SynthTensor {
            kind: kind_of(&t.name, &shape),
            name: t.name.clone(),
            shape,
            ty: t.ty,
        };
        st.ty = match opts.types {
            Some(c) => choose_type(c, &st, n_layers, tied),
            None if st.kind != TensorKind::Matrix
                && !matches!(t.ty, QuantType::F32 | QuantType::F16 | QuantType::BF16) =>
            {
                QuantType::F32
            }
            None => t.ty,
        };
        tensors.push(st);
    }
    Ok(SynthPlan {
        arch,
        n_layers,
        vocab,
        metadata: md,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_matches_llama_cpp_rule() {
        // 32 layers: the first 4, the last 4, and every third from layer 6
        let picked: Vec<usize> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            picked,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn fallbacks() {
        assert_eq!(fallback(QuantType::Q4_K, 576), QuantType::Q5_0);
        assert_eq!(fallback(QuantType::Q6_K, 640), QuantType::Q8_0);
        assert_eq!(fallback(QuantType::Q6_K, 1024), QuantType::Q6_K);
        assert_eq!(fallback(QuantType::Q2_K, 96), QuantType::Q4_0);
        assert_eq!(fallback(QuantType::Q4_0, 48), QuantType::F16);
    }

    #[test]
    fn parse_types() {
        assert_eq!(TypeChoice::parse("Q4_K_M").unwrap(), TypeChoice::Q4KM);
        assert_eq!(
            TypeChoice::parse("q6_k").unwrap(),
            TypeChoice::Uniform(QuantType::Q6_K)
        );
        let e = TypeChoice::parse("q8_1").unwrap_err().to_string();
        assert!(e.contains("q8_1") && e.contains("q4_k_m"), "{e}");
        assert!(TypeChoice::parse("mx_fp4").is_err());
    }
}
