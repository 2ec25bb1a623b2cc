//! Tiny random-weight qwen2 (QKV bias), qwen3 (q/k norm) and mistral models, made with HF
//! transformers and converted by llama.cpp's convert_hf_to_gguf.py (tools/make_tiny_models.py): the
//! CPU backend's logits at every position are within 1e-3 relative of HF's.

mod common;

use base64::Engine as _;
use rocmforge::model::engine::Want;
use rocmforge::model::{DeviceChoice, LoadOptions, Model};
use serde::Deserialize;

#[derive(Deserialize)]
struct Seq {
    name: String,
    ids: Vec<u32>,
    logits_f32_b64: String,
    argmax: Vec<u32>,
}

#[derive(Deserialize)]
struct Ref {
    sequences: Vec<Seq>,
    gguf_architecture: String,
}

fn check(arch: &str) {
    let dir = std::path::Path::new("tests/data/tiny");
    let r: Ref =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{arch}.ref.json"))).unwrap())
            .unwrap();
    let mut m = Model::load(
        dir.join(format!("{arch}.gguf")),
        &LoadOptions {
            device: DeviceChoice::Cpu,
            ctx_size: Some(64),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{arch}: {e}"));
    assert_eq!(m.engine.config.arch, r.gguf_architecture);
    let vocab = m.engine.config.vocab_size;
    for s in &r.sequences {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&s.logits_f32_b64)
            .unwrap();
        let want: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(want.len(), s.ids.len() * vocab);
        let seq = m.engine.open();
        let out = m.engine.prefill(seq, &s.ids, Want::All).unwrap();
        m.engine.free(seq);
        let got = out.logits_of(0).unwrap();
        for p in 0..s.ids.len() {
            let e = common::rel_err(&got[p * vocab..][..vocab], &want[p * vocab..][..vocab]);
            assert!(
                e <= 1e-3,
                "{arch} {} position {p}: relative error {e:.2e}",
                s.name
            );
        }
        assert_eq!(out.argmax, s.argmax, "{arch} {}", s.name);
        eprintln!(
            "{arch} {}: {} positions within 1e-3 of HF (worst {:.2e})",
            s.name,
            s.ids.len(),
            (0..s.ids.len())
                .map(|p| common::rel_err(&got[p * vocab..][..vocab], &want[p * vocab..][..vocab]))
                .fold(0.0, f64::max)
        );
    }
}

#[test]
fn qwen2_with_qkv_bias_matches_hf() {
    check("qwen2");
}

#[test]
fn qwen3_with_qk_norm_matches_hf() {
    check("qwen3");
}

#[test]
fn mistral_matches_hf() {
    check("mistral");
}
