//! `rocmforge gguf synth`: synthetic GGUF models. Every file written here must open with our reader
//! and with gguf-py (same tensor names, types, shapes and keys), be accepted by ModelConfig, carry a
//! vocabulary our Tokenizer loads and round-trips, and hold weights that dequantize to finite values
//! of the intended spread. The same seed gives the same bytes. The real models under `.model/`
//! (`bash tools/models.sh`; env ROCMFORGE_MODEL_DIR overrides the folder) are used as
//! `--tokenizer-from` and `--like` sources.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rocmforge::gguf::synth::{self, Source, SynthOptions, TensorKind, TypeChoice, SUPPORTED_TYPES};
use rocmforge::gguf::{GgufFile, Value};
use rocmforge::model::config::ModelConfig;
use rocmforge::model::tokenizer::Tokenizer;
use rocmforge::quant::{self, QuantType};

fn model_dir() -> PathBuf {
    std::env::var_os("ROCMFORGE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".model"))
}

fn real_model(file: &str) -> PathBuf {
    let p = model_dir().join(file);
    assert!(
        p.exists(),
        "{} is missing: run `bash tools/models.sh` (or set ROCMFORGE_MODEL_DIR)",
        p.display()
    );
    p
}

fn preset(
    name: &str,
    ty: Option<&str>,
    vocab: Option<usize>,
    layers: Option<usize>,
) -> SynthOptions {
    SynthOptions {
        source: Source::Preset(name.into()),
        types: ty.map(|t| TypeChoice::parse(t).unwrap()),
        tokenizer_from: None,
        vocab,
        layers,
        seed: 1,
    }
}

fn tensor_type(g: &GgufFile, name: &str) -> QuantType {
    g.tensor_info(name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .ty
}

/// Every tensor dequantizes to finite values with the spread its kind should have.
fn check_values(g: &GgufFile) {
    for t in g.tensors() {
        let v = g.tensor(&t.name).unwrap();
        let x = v.dequantize_f32().unwrap();
        assert!(
            x.iter().all(|v| v.is_finite()),
            "{}: non-finite values",
            t.name
        );
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let matrix = t.shape.iter().filter(|&&d| d > 1).count() >= 2;
        let what = format!(
            "{} ({} {:?}): mean {mean:.5} std {std:.5} max|x| {amax}",
            t.name, t.ty, t.shape
        );
        if matrix {
            assert!((0.013..0.028).contains(&std), "{what}");
            assert!(mean.abs() < 0.005, "{what}");
            assert!(amax < 0.2, "{what}");
            // quantized values are not all alike
            let distinct = x[..x.len().min(4096)]
                .iter()
                .map(|v| v.to_bits())
                .collect::<std::collections::HashSet<_>>()
                .len();
            assert!(distinct > 8, "{what}: only {distinct} distinct values");
        } else if t.name.ends_with(".bias") {
            assert!(mean.abs() < 0.005 && amax < 0.1, "{what}");
        } else {
            assert!((0.95..1.05).contains(&mean) && std < 0.1, "{what}");
            assert_eq!(t.ty, QuantType::F32, "{what}");
        }
    }
}

/// What gguf-py reads: tensors (name, type, shape) and scalar keys.
fn gguf_py(path: &Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys, gguf
r = gguf.GGUFReader(sys.argv[1])
kv = {}
for k, f in r.fields.items():
    if k.startswith("GGUF.") or f.types[0] == gguf.GGUFValueType.ARRAY:
        continue
    v = f.contents()
    kv[k] = v if isinstance(v, (str, bool)) else float(v)
print(json.dumps({
    "tensors": [[t.name, t.tensor_type.name, [int(d) for d in t.shape]] for t in r.tensors],
    "kv": kv,
    "tokens": len(r.fields["tokenizer.ggml.tokens"].contents()),
}))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "gguf-py could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// gguf-py sees the same tensors and scalar keys as our reader.
fn check_gguf_py(path: &Path, g: &GgufFile) {
    let py = gguf_py(path);
    let tensors = py["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), g.tensors().len());
    for (p, t) in tensors.iter().zip(g.tensors()) {
        assert_eq!(p[0].as_str(), Some(t.name.as_str()));
        assert!(
            p[1].as_str().unwrap().eq_ignore_ascii_case(t.ty.name()),
            "{}: gguf-py says {}, we say {}",
            t.name,
            p[1],
            t.ty
        );
        let shape: Vec<u64> = p[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(shape, t.shape, "{}", t.name);
    }
    let kv = py["kv"].as_object().unwrap();
    let mut scalars = 0;
    for (k, v) in g.metadata() {
        let want = match v {
            Value::String(s) => serde_json::json!(s),
            Value::Bool(b) => serde_json::json!(b),
            Value::Array(..) => continue,
            other => serde_json::json!(other.as_f64().or(other.as_int().map(|i| i as f64))),
        };
        let got = kv.get(k).unwrap_or_else(|| panic!("gguf-py lacks {k}"));
        match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-6 * b.abs(), "{k}: {a} vs {b}"),
            _ => assert_eq!(got, &want, "{k}"),
        }
        scalars += 1;
    }
    assert_eq!(scalars, kv.len(), "gguf-py sees other keys: {kv:?}");
    let tokens = g.get_array("tokenizer.ggml.tokens").unwrap().len();
    assert_eq!(py["tokens"].as_u64(), Some(tokens as u64));
}

/// Encode → decode gives the text back.
fn check_tokenizer(g: &GgufFile) -> Tokenizer {
    let tok = Tokenizer::from_gguf(g).unwrap();
    for text in [
        "Hello world! Synthetic text, 123 tokens.",
        "  spaces,\nnew lines\tand tabs; unicode: héllo wörld — 日本語 🙂",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert!(!ids.is_empty());
        assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        let with_special = tok.encode(text, true).unwrap();
        assert_eq!(tok.decode(&with_special, true).unwrap(), text);
    }
    tok
}

fn check_all(path: &Path) -> (GgufFile, ModelConfig) {
    let g = GgufFile::open(path).unwrap();
    assert_eq!(g.alignment(), 32);
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    check_values(&g);
    check_gguf_py(path, &g);
    (g, cfg)
}

/// The type a matrix of `rows`-long rows gets when `ty` is asked for (llama.cpp's fallbacks).
fn expected(ty: QuantType, row: u64) -> QuantType {
    if row % ty.block_elems() as u64 == 0 {
        return ty;
    }
    match ty {
        QuantType::Q2_K | QuantType::Q3_K => QuantType::Q4_0,
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        _ => QuantType::F16,
    }
}

#[test]
fn every_type_on_a_small_smollm2() {
    let dir = tempfile::tempdir().unwrap();
    for name in SUPPORTED_TYPES.iter().filter(|t| **t != "q4_k_m") {
        let ty = QuantType::from_name(name).unwrap();
        let path = dir.path().join(format!("smol-{name}.gguf"));
        let s = synth::synth(
            &path,
            &preset("smollm2-135m", Some(name), Some(640), Some(1)),
        )
        .unwrap();
        assert_eq!((s.n_layers, s.vocab, s.arch.as_str()), (1, 640, "llama"));
        let (g, cfg) = check_all(&path);
        assert_eq!(
            (
                cfg.n_layers,
                cfg.d_model,
                cfg.d_ff,
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.head_dim
            ),
            (1, 576, 1536, 9, 3, 64)
        );
        assert_eq!(cfg.vocab_size, 640);
        assert!(cfg.tied_output);
        assert_eq!(
            g.get_u32("general.file_type").unwrap(),
            TypeChoice::Uniform(ty).file_type()
        );
        // 576-wide rows fall back for K-quants; 1536-wide ffn_down rows take every type
        assert_eq!(
            tensor_type(&g, "blk.0.attn_q.weight"),
            expected(ty, 576),
            "{name}"
        );
        assert_eq!(tensor_type(&g, "blk.0.ffn_down.weight"), ty, "{name}");
        assert_eq!(
            tensor_type(&g, "token_embd.weight"),
            expected(ty, 576),
            "{name}"
        );
        assert_eq!(tensor_type(&g, "blk.0.attn_norm.weight"), QuantType::F32);
        check_tokenizer(&g);
    }
}

#[test]
fn q4_k_m_mix_smollm2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smol.gguf");
    synth::synth(&path, &preset("smollm2-135m", None, Some(1024), Some(2))).unwrap();
    let (g, cfg) = check_all(&path);
    assert_eq!((cfg.n_layers, cfg.vocab_size), (2, 1024));
    assert_eq!(g.get_u32("general.file_type").unwrap(), 15);
    // use_more_bits(i, 2) holds for layer 1 only; 576-wide rows fall back (q4_K→q5_0, q6_K→q8_0)
    let want = [
        ("token_embd.weight", QuantType::Q8_0),
        ("blk.0.attn_q.weight", QuantType::Q5_0),
        ("blk.0.attn_v.weight", QuantType::Q5_0),
        ("blk.1.attn_v.weight", QuantType::Q8_0),
        ("blk.0.ffn_down.weight", QuantType::Q4_K),
        ("blk.1.ffn_down.weight", QuantType::Q6_K),
        ("blk.1.ffn_up.weight", QuantType::Q5_0),
        ("output_norm.weight", QuantType::F32),
    ];
    for (n, t) in want {
        assert_eq!(tensor_type(&g, n), t, "{n}");
    }
    assert!(g.tensor_info("output.weight").is_none());
    let tok = check_tokenizer(&g);
    assert_eq!(tok.vocab_size(), 1024);
    assert_eq!(g.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    // the merge list is consistent: every merge joins two tokens into a token
    let tokens: std::collections::HashSet<&str> = g
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .into_iter()
        .collect();
    let merges = g.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len(), 1024 - 3 - 256);
    for m in merges {
        let (a, b) = m.split_once(' ').unwrap();
        assert!(tokens.contains(a) && tokens.contains(b));
        assert!(tokens.contains(format!("{a}{b}").as_str()), "{m}");
    }
}

#[test]
fn q4_k_m_mix_gemma3_full_vocab() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gemma.gguf");
    let s = synth::synth(&path, &preset("gemma3-270m", None, None, Some(2))).unwrap();
    assert_eq!(s.vocab, 262144);
    let (g, cfg) = check_all(&path);
    assert_eq!(cfg.arch, "gemma3");
    assert_eq!(
        (cfg.n_layers, cfg.head_dim, cfg.n_heads, cfg.n_kv_heads),
        (2, 256, 4, 1)
    );
    assert!(cfg.qk_norm && cfg.post_norms && cfg.tied_output);
    assert_eq!(cfg.layers[0].window, 512);
    assert_eq!(cfg.vocab_size, 262144);
    for (n, t) in [
        ("token_embd.weight", QuantType::Q8_0),
        ("blk.0.attn_q.weight", QuantType::Q5_0),
        ("blk.0.attn_output.weight", QuantType::Q4_K),
        ("blk.0.ffn_down.weight", QuantType::Q4_K),
        ("blk.1.ffn_down.weight", QuantType::Q6_K),
        ("blk.1.attn_v.weight", QuantType::Q8_0),
        ("blk.1.post_ffw_norm.weight", QuantType::F32),
    ] {
        assert_eq!(tensor_type(&g, n), t, "{n}");
    }
    let tok = check_tokenizer(&g);
    assert_eq!(tok.vocab_size(), 262144);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(2), Some(1)));
    assert_eq!(tok.token_piece(3 + 1 + 0x41), Some("<0x41>"));
    assert_eq!(tok.encode("hi", true).unwrap()[0], 2, "adds BOS");
}

#[test]
fn large_byte_level_vocab() {
    // llama-3-sized synthetic BPE vocabulary (on a small body): loads, merges consistent, round trip
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big-vocab.gguf");
    synth::synth(
        &path,
        &preset("smollm2-135m", Some("q4_0"), Some(128256), Some(1)),
    )
    .unwrap();
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(ModelConfig::from_gguf(&g).unwrap().vocab_size, 128256);
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    let set: std::collections::HashSet<&str> = tokens.iter().copied().collect();
    assert_eq!(set.len(), 128256, "tokens are distinct");
    let tok = check_tokenizer(&g);
    // merged pieces are used: text costs fewer tokens than bytes
    let text = "the quick brown fox jumps over the lazy dog and then some more words follow";
    let n = tok.encode(text, false).unwrap().len();
    assert!(
        n < text.len() * 3 / 4,
        "{n} tokens for {} bytes",
        text.len()
    );
}

#[test]
fn q4_k_m_types_match_the_real_gemma3_file() {
    // The real gemma-3-270m Q4_K_M file was made by llama.cpp: our rule must pick the same types.
    let real = GgufFile::open(real_model("gemma-3-270m-q4_k_m.gguf")).unwrap();
    let plan = synth::plan(&preset("gemma3-270m", Some("q4_k_m"), Some(1024), None)).unwrap();
    assert_eq!(plan.tensors.len(), real.tensors().len());
    for t in &plan.tensors {
        let r = real
            .tensor_info(&t.name)
            .unwrap_or_else(|| panic!("{} not in the real file", t.name));
        assert_eq!(t.ty, r.ty, "{}", t.name);
        if t.name != "token_embd.weight" {
            assert_eq!(t.shape, r.shape, "{}", t.name);
        }
    }
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = preset("smollm2-135m", Some("q4_k_m"), Some(600), Some(2));
    let a = dir.path().join("a.gguf");
    let b = dir.path().join("b.gguf");
    let c = dir.path().join("c.gguf");
    synth::synth(&a, &o).unwrap();
    synth::synth(&b, &o).unwrap();
    o.seed = 2;
    synth::synth(&c, &o).unwrap();
    let (ba, bb, bc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(ba, bb);
    assert_eq!(ba.len(), bc.len());
    let (ga, gc) = (GgufFile::open(&a).unwrap(), GgufFile::open(&c).unwrap());
    assert_eq!(ga.data_offset(), gc.data_offset());
    assert_eq!(
        ba[..ga.data_offset()],
        bc[..gc.data_offset()],
        "headers agree"
    );
    for t in ga.tensors() {
        let (x, y) = (ga.tensor(&t.name).unwrap(), gc.tensor(&t.name).unwrap());
        let same = x
            .bytes()
            .iter()
            .zip(y.bytes())
            .filter(|(p, q)| p == q)
            .count();
        assert!(
            same * 2 < x.bytes().len(),
            "{}: {same} of {} bytes equal across seeds",
            t.name,
            x.bytes().len()
        );
    }
    // no temporary file is left behind
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn tokenizer_from_the_real_smollm2() {
    let src_path = real_model("smollm2-135m-instruct-q4_1.gguf");
    let src = GgufFile::open(&src_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = preset("smollm2-135m", Some("q8_0"), None, Some(1));
    o.tokenizer_from = Some(src_path.clone());
    let path = dir.path().join("tok.gguf");
    let s = synth::synth(&path, &o).unwrap();
    assert_eq!(s.vocab, 49152);
    let (g, cfg) = check_all(&path);
    assert_eq!(cfg.vocab_size, 49152);
    let keys = |f: &GgufFile| -> Vec<(String, Value)> {
        f.metadata()
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .cloned()
            .collect()
    };
    assert_eq!(keys(&g), keys(&src), "every tokenizer.* key is copied");
    let (ours, theirs) = (
        Tokenizer::from_gguf(&g).unwrap(),
        Tokenizer::from_gguf(&src).unwrap(),
    );
    let text = "<|im_start|>user\nHow many r's are in strawberry? 12345<|im_end|>";
    assert_eq!(
        ours.encode(text, true).unwrap(),
        theirs.encode(text, true).unwrap()
    );

    // more rows than tokens: the vocabulary is padded with [PADn] (type UNUSED)
    o.vocab = Some(49216);
    let padded = dir.path().join("padded.gguf");
    synth::synth(&padded, &o).unwrap();
    let g = GgufFile::open(&padded).unwrap();
    assert_eq!(ModelConfig::from_gguf(&g).unwrap().vocab_size, 49216);
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49216);
    assert_eq!(tokens[49215], "[PAD49215]");
    let types = g.get_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(types.len(), 49216);
    assert_eq!(types[49200].as_int(), Some(5));
    let tok = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!(
        tok.encode(text, true).unwrap(),
        theirs.encode(text, true).unwrap()
    );

    // fewer rows than tokens: refused, naming both counts
    o.vocab = Some(1000);
    let e = synth::synth(&dir.path().join("small.gguf"), &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("49152") && e.contains("1000"), "{e}");
}

#[test]
fn like_the_real_gemma3() {
    let real_path = real_model("gemma-3-270m-q4_k_m.gguf");
    let real = GgufFile::open(&real_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = SynthOptions {
        source: Source::Like(real_path.clone()),
        types: None,
        tokenizer_from: None,
        vocab: None,
        layers: Some(2),
        seed: 5,
    };
    let path = dir.path().join("like.gguf");
    synth::synth(&path, &o).unwrap();
    let g = GgufFile::open(&path).unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    assert_eq!(
        (cfg.n_layers, cfg.vocab_size, cfg.d_model),
        (2, 262144, 640)
    );
    check_values(&g);
    // the kept tensors have the real file's types and shapes
    let kept: Vec<_> = real
        .tensors()
        .iter()
        .filter(|t| {
            !t.name.starts_with("blk.")
                || t.name.starts_with("blk.0.")
                || t.name.starts_with("blk.1.")
        })
        .collect();
    assert_eq!(kept.len(), g.tensors().len());
    for r in kept {
        let t = g.tensor_info(&r.name).unwrap();
        assert_eq!((t.ty, &t.shape), (r.ty, &r.shape), "{}", r.name);
    }
    // metadata: the same but the block count and name; the tokenizer is copied
    for (k, v) in real.metadata() {
        match k.as_str() {
            "gemma3.block_count" => assert_eq!(g.get_u32(k).unwrap(), 2),
            "general.name" => assert_eq!(g.get_str(k).unwrap(), "synthetic Gemma 3 270m"),
            _ => assert_eq!(g.get(k), Some(v), "{k}"),
        }
    }

    // with --type and a small --vocab: uniform q8_0 and a synthetic SentencePiece vocabulary
    let o = SynthOptions {
        types: Some(TypeChoice::parse("q8_0").unwrap()),
        vocab: Some(2048),
        layers: Some(1),
        ..o
    };
    let small = dir.path().join("like-small.gguf");
    synth::synth(&small, &o).unwrap();
    let (g, cfg) = check_all(&small);
    assert_eq!((cfg.n_layers, cfg.vocab_size), (1, 2048));
    assert_eq!(g.get_u32("general.file_type").unwrap(), 7);
    for t in g.tensors() {
        let matrix = t.shape.len() == 2;
        assert_eq!(
            t.ty,
            if matrix {
                QuantType::Q8_0
            } else {
                QuantType::F32
            },
            "{}",
            t.name
        );
    }
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "llama");
    check_tokenizer(&g);

    // more layers than the file has: refused
    let o = SynthOptions {
        layers: Some(19),
        ..o
    };
    let e = synth::plan(&o).unwrap_err().to_string();
    assert!(e.contains("19") && e.contains("18"), "{e}");
}

#[test]
fn plan_errors_name_the_problem() {
    let e = synth::plan(&preset("llama-9", None, None, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("llama-9") && e.contains("llama-3-8b") && e.contains("gemma3-270m"),
        "{e}"
    );
    let e = synth::plan(&preset("smollm2-135m", None, None, Some(0)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--layers"), "{e}");
    let e = synth::plan(&preset("smollm2-135m", None, Some(100), Some(1)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("100") && e.contains("256"), "{e}");
    let e = TypeChoice::parse("q8_K").unwrap_err().to_string();
    assert!(e.contains("q8_K") && e.contains("q4_k_m"), "{e}");
}

#[test]
fn presets_describe_their_models() {
    let dir = tempfile::tempdir().unwrap();
    for (name, arch, layers, vocab, tied, bias, params) in [
        ("llama-3-8b", "llama", 32, 128256, false, false, 8.03e9),
        ("qwen2.5-7b", "qwen2", 28, 152064, false, true, 7.62e9),
        ("smollm2-135m", "llama", 30, 49152, true, false, 1.35e8),
        ("gemma3-270m", "gemma3", 18, 262144, true, false, 2.68e8),
    ] {
        let plan = synth::plan(&preset(name, None, Some(512), None)).unwrap();
        assert_eq!(
            (plan.arch.as_str(), plan.n_layers),
            (arch, layers),
            "{name}"
        );
        let p = synth::preset(name).unwrap();
        assert_eq!(p.vocab, vocab);
        let has = |n: &str| plan.tensors.iter().any(|t| t.name == n);
        assert_eq!(has("output.weight"), !tied, "{name}");
        assert_eq!(has("blk.0.attn_q.bias"), bias, "{name}");
        // parameter count with the real vocabulary, within 2% of the published size
        let emb = (p.d_model * vocab) as f64 * if tied { 1.0 } else { 2.0 };
        let body: f64 = plan
            .tensors
            .iter()
            .filter(|t| t.name.starts_with("blk.") || t.name == "output_norm.weight")
            .map(|t| t.shape.iter().product::<u64>() as f64)
            .sum();
        let total = emb + body;
        assert!(
            (total / params - 1.0).abs() < 0.02,
            "{name}: {total:.3e} parameters, expected about {params:.3e}"
        );
        assert!(plan
            .tensors
            .iter()
            .all(|t| (t.kind == TensorKind::Matrix) == (t.shape.len() == 2)));

        // one layer of it, written: our reader, gguf-py, ModelConfig and the tokenizer accept it
        let path = dir.path().join(format!("{name}.gguf"));
        synth::synth(&path, &preset(name, None, Some(1024), Some(1))).unwrap();
        let (g, cfg) = check_all(&path);
        assert_eq!(
            (cfg.n_layers, cfg.vocab_size, cfg.qkv_bias),
            (1, 1024, bias),
            "{name}"
        );
        assert_eq!(cfg.tied_output, tied, "{name}");
        assert_eq!(
            cfg.head_dim * cfg.n_heads,
            if arch == "gemma3" { 1024 } else { cfg.d_model }
        );
        check_tokenizer(&g);
    }
}

#[test]
fn cli_writes_the_same_file_as_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cli.gguf");
    let bin = common::cli_bin();
    let status = Command::new(&bin)
        .args(["gguf", "synth", "--preset", "smollm2-135m", "--layers", "1"])
        .args(["--vocab", "600", "--type", "q6_K", "--seed", "9", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let lib = dir.path().join("lib.gguf");
    let mut o = preset("smollm2-135m", Some("q6_K"), Some(600), Some(1));
    o.seed = 9;
    synth::synth(&lib, &o).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&lib).unwrap());

    for (args, want) in [
        (vec!["--preset", "smollm2-135m", "--type", "q8_1"], "q8_1"),
        (vec!["--preset", "nope"], "smollm2-135m"),
        (vec!["--type", "q8_0"], "--preset"),
    ] {
        let o = Command::new(&bin)
            .args(["gguf", "synth", "--out"])
            .arg(dir.path().join("bad.gguf"))
            .args(&args)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want), "{args:?}: {e}");
    }
    assert!(!dir.path().join("bad.gguf").exists());
    // the written file dequantizes through the library's quant module too
    let g = GgufFile::open(&out).unwrap();
    let t = g.tensor("blk.0.ffn_down.weight").unwrap();
    let mut y = vec![0f32; t.info().n_elems() as usize];
    quant::dequantize(t.ty(), t.bytes(), &mut y).unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
}
