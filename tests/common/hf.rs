//! The HF transformers reference check (data made by tools/hf_reference.py, committed under
//! tests/data/hf/<model>/): teacher-forced logits and greedy continuations, for any device.

use rocmforge::model::engine::{StepInput, Want};
use rocmforge::model::{DeviceChoice, LoadOptions, Model};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
pub struct Prompt {
    pub name: String,
    pub prompt_ids: Vec<u32>,
    pub continuation_ids: Vec<u32>,
    pub topk_positions: Vec<usize>,
    pub topk_ids: Vec<Vec<u32>>,
    pub topk_logits: Vec<Vec<f32>>,
    pub top1_top2_gap: Vec<f32>,
    pub full_positions: Vec<usize>,
    pub full_rows_offset: usize,
}

#[derive(Deserialize)]
pub struct Reference {
    pub vocab_size: usize,
    pub prompts: Vec<Prompt>,
}

pub fn data_dir(model: &str) -> PathBuf {
    PathBuf::from("tests/data/hf").join(model)
}

pub fn load_reference(model: &str) -> (Reference, Vec<f32>) {
    let dir = data_dir(model);
    let r: Reference =
        serde_json::from_slice(&std::fs::read(dir.join("ref.json")).expect("ref.json"))
            .expect("parse ref.json");
    let raw = std::fs::read(dir.join("logits.f16")).expect("logits.f16");
    let full = raw
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    (r, full)
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += *x as f64 * *y as f64;
        aa += (*x as f64).powi(2);
        bb += (*y as f64).powi(2);
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-30)
}

fn argmax(r: &[f32]) -> u32 {
    rocmforge::model::argmax(r)
}

/// Check `file` (under .model/) on `device` against the committed reference of `model`.
/// Returns a summary line (printed by the caller) and panics when a goal of the issue is missed.
pub fn check(model: &str, file: &str, device: DeviceChoice) -> String {
    let (r, full) = load_reference(model);
    let dir = std::env::var("ROCMFORGE_MODEL_DIR").unwrap_or_else(|_| ".model".into());
    let path = PathBuf::from(dir).join(file);
    assert!(
        path.exists(),
        "{} missing: run `bash tools/models.sh`",
        path.display()
    );
    let max_len = r
        .prompts
        .iter()
        .map(|p| p.prompt_ids.len() + p.continuation_ids.len())
        .max()
        .unwrap_or(0);
    let mut m = Model::load(
        &path,
        &LoadOptions {
            device,
            ctx_size: Some(max_len + 16),
            max_batch_tokens: 512,
            ..Default::default()
        },
    )
    .expect("load");
    assert_eq!(m.engine.config.vocab_size, r.vocab_size);
    let vocab = r.vocab_size;
    let (mut pos_total, mut top1_same, mut cos_min, mut cos_n) = (0usize, 0usize, 1f64, 0usize);
    let mut greedy_ok = 0usize;
    let mut report = Vec::new();
    for p in &r.prompts {
        // teacher forcing: the prompt, then HF's continuation, logits for the last positions
        let mut seq_ids = p.prompt_ids.clone();
        seq_ids.extend_from_slice(&p.continuation_ids);
        let first = *p.topk_positions.first().expect("positions");
        let s = m.engine.open();
        // positions before `first` need no logits
        if first > 0 {
            m.engine
                .prefill(s, &seq_ids[..first], Want::Nothing)
                .expect("prefill");
        }
        let n_pos = p.topk_positions.len();
        let tail = &seq_ids[first..first + n_pos];
        let out = m.engine.prefill(s, tail, Want::All).expect("prefill");
        let logits = out.logits_of(0).expect("logits");
        m.engine.free(s);
        for (i, &pos) in p.topk_positions.iter().enumerate() {
            let row = &logits[i * vocab..(i + 1) * vocab];
            pos_total += 1;
            if argmax(row) == p.topk_ids[i][0] {
                top1_same += 1;
            }
            if let Some(j) = p.full_positions.iter().position(|&f| f == pos) {
                let hf = &full[(p.full_rows_offset + j) * vocab..][..vocab];
                let c = cosine(row, hf);
                cos_min = cos_min.min(c);
                cos_n += 1;
            }
        }
        // free-running greedy: 32 tokens
        let s = m.engine.open();
        let out = m
            .engine
            .prefill(s, &p.prompt_ids, Want::Last)
            .expect("prefill");
        let mut next = out.last_argmax(0).expect("argmax");
        let mut gen = vec![next];
        while gen.len() < 32 {
            let o = m
                .engine
                .step(
                    &[StepInput {
                        seq: s,
                        tokens: &[next],
                        want: Want::Last,
                    }],
                    true,
                )
                .expect("decode");
            next = o.last_argmax(0).expect("argmax");
            gen.push(next);
        }
        m.engine.free(s);
        let div = gen
            .iter()
            .zip(&p.continuation_ids)
            .position(|(a, b)| a != b);
        match div {
            None => greedy_ok += 1,
            Some(k) => report.push(format!(
                "{}: diverges at token {k} (ours {}, HF {}; HF top1-top2 gap there {:.4})",
                p.name,
                gen[k],
                p.continuation_ids[k],
                p.top1_top2_gap.get(k).copied().unwrap_or(f32::NAN)
            )),
        }
    }
    let frac = top1_same as f64 / pos_total as f64;
    let summary = format!(
        "{model} on {}: top-1 equal at {top1_same}/{pos_total} positions ({:.2} %), cosine min {cos_min:.6} over {cos_n} full rows, greedy 32 tokens equal on {greedy_ok}/{} prompts{}{}",
        m.engine.backend_name(),
        frac * 100.0,
        r.prompts.len(),
        if report.is_empty() { "" } else { "; " },
        report.join("; ")
    );
    assert!(frac >= 0.99, "{summary}");
    assert!(cos_min >= 0.999, "{summary}");
    assert!(
        greedy_ok + 1 >= r.prompts.len() && greedy_ok >= 7.min(r.prompts.len()),
        "{summary}"
    );
    summary
}
