//! The model runtime on the GPU: against the CPU backend (logits cosine over 256 decode steps),
//! against HF transformers (SmolLM2), batched decode with graphs equal to single-sequence decode, and
//! no device allocation inside decode steps. Models: .model/ (ROCMFORGE_MODEL_DIR); for Gemma 3 the
//! real file when present, else ROCMFORGE_TEST_GEMMA (a `rocmforge gguf synth --preset gemma3-270m`
//! file with the real shapes and quant types, random weights).

mod common;

use rocmforge::model::engine::{Engine, StepInput, Want};
use rocmforge::model::{DeviceChoice, LoadOptions, Model};
use serial_test::serial;
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    PathBuf::from(std::env::var("ROCMFORGE_MODEL_DIR").unwrap_or_else(|_| ".model".into()))
}
fn smollm() -> PathBuf {
    let p = model_dir().join("smollm2-135m-instruct-q4_1.gguf");
    assert!(p.exists(), "{} missing", p.display());
    p
}
fn gemma() -> PathBuf {
    let real = model_dir().join("gemma-3-270m-q4_k_m.gguf");
    if real.exists() {
        return real;
    }
    let p = PathBuf::from(std::env::var("ROCMFORGE_TEST_GEMMA").expect("no Gemma 3 model: set ROCMFORGE_TEST_GEMMA"));
    assert!(p.exists(), "{} missing", p.display());
    p
}

fn engine(path: &PathBuf, device: DeviceChoice, max_seqs: usize) -> Engine {
    let opts = LoadOptions { device, ctx_size: Some(512), max_seqs, max_batch_tokens: 256, ..Default::default() };
    match Model::load(path, &opts) {
        Ok(m) => m.engine,
        Err(e) => panic!("loading {} on {device:?}: {e}", path.display()),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += *x as f64 * *y as f64;
        aa += (*x as f64).powi(2);
        bb += (*y as f64).powi(2);
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-30)
}

/// Prefill a prompt on both backends (every position's logits), then 256 decode steps feeding the
/// CPU's greedy token to both; cosine of every logits row ≥ 0.9999.
fn gpu_vs_cpu(path: &PathBuf) {
    let _ = common::device();
    let mut cpu = engine(path, DeviceChoice::Cpu, 1);
    let mut gpu = engine(path, DeviceChoice::Gpu(None, 0), 1);
    let vocab = cpu.config.vocab_size as u32;
    let prompt: Vec<u32> = (0..40u32).map(|i| (i * 7919 + 13) % vocab.min(30000)).collect();
    let (sc, sg) = (cpu.open(), gpu.open());
    let lc = cpu.prefill(sc, &prompt, Want::All).unwrap();
    let lg = gpu.prefill(sg, &prompt, Want::All).unwrap();
    let v = vocab as usize;
    let mut worst = 1f64;
    for i in 0..prompt.len() {
        worst = worst.min(cosine(&lc.logits_of(0).unwrap()[i * v..][..v], &lg.logits_of(0).unwrap()[i * v..][..v]));
    }
    assert!(worst >= 0.9999, "prefill cosine {worst}");
    let mut next = lc.last_argmax(0).unwrap();
    let mut agree = 0;
    for step in 0..256 {
        let a = cpu.step(&[StepInput { seq: sc, tokens: &[next], want: Want::Last }], false).unwrap();
        let b = gpu.step(&[StepInput { seq: sg, tokens: &[next], want: Want::Last }], false).unwrap();
        let c = cosine(a.last_logits(0).unwrap(), b.last_logits(0).unwrap());
        worst = worst.min(c);
        assert!(c >= 0.9999, "decode step {step}: cosine {c}");
        if a.last_argmax(0) == b.last_argmax(0) {
            agree += 1;
        }
        next = a.last_argmax(0).unwrap();
    }
    let k = gpu.counters();
    eprintln!(
        "{}: GPU vs CPU cosine min {worst:.6} over prefill + 256 decode steps; greedy agree {agree}/256; launches per decode step {}, graph replays {}",
        path.display(),
        k.launches_last_step,
        k.graph_replays
    );
    assert!(k.graph_replays >= 250, "decode steps should replay graphs: {k:?}");
    assert!(agree >= 250, "greedy tokens agree on {agree}/256 steps");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_equals_cpu_smollm2() {
    gpu_vs_cpu(&smollm());
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_equals_cpu_gemma3() {
    gpu_vs_cpu(&gemma());
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_matches_hf_smollm2() {
    let _ = common::device();
    let s = common::hf::check("smollm2-135m-instruct-q4_1", "smollm2-135m-instruct-q4_1.gguf", DeviceChoice::Gpu(None, 0));
    eprintln!("{s}");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_matches_hf_gemma3() {
    let _ = common::device();
    if !model_dir().join("gemma-3-270m-q4_k_m.gguf").exists() {
        panic!("the real Gemma 3 file is not on this machine (ROCMFORGE_MODEL_DIR)");
    }
    let s = common::hf::check("gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf", DeviceChoice::Gpu(None, 0));
    eprintln!("{s}");
}

/// Sequences of different lengths decoding together (graphs replayed) give the tokens each gives
/// alone, and decode steps allocate no device memory once their shape has been seen.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_batched_decode_equals_single_and_does_not_allocate() {
    let dev = common::device();
    let path = smollm();
    let prompts: Vec<Vec<u32>> = [3usize, 17, 40, 100].iter().map(|&n| (0..n as u32).map(|i| (i * 31 + n as u32) % 20000).collect()).collect();
    // alone
    let mut alone = Vec::new();
    let mut e = engine(&path, DeviceChoice::Gpu(None, 0), 4);
    for p in &prompts {
        let s = e.open();
        let mut next = e.prefill(s, p, Want::Last).unwrap().last_argmax(0).unwrap();
        let mut toks = vec![next];
        for _ in 0..40 {
            next = e.step(&[StepInput { seq: s, tokens: &[next], want: Want::Last }], true).unwrap().last_argmax(0).unwrap();
            toks.push(next);
        }
        e.free(s);
        alone.push(toks);
    }
    // together
    let seqs: Vec<_> = prompts.iter().map(|_| e.open()).collect();
    let mut nexts: Vec<u32> = Vec::new();
    for (s, p) in seqs.iter().zip(&prompts) {
        nexts.push(e.prefill(*s, p, Want::Last).unwrap().last_argmax(0).unwrap());
    }
    let mut together: Vec<Vec<u32>> = nexts.iter().map(|&n| vec![n]).collect();
    let mut alloc_after_warmup = None;
    for step in 0..40 {
        let inputs: Vec<StepInput> = seqs.iter().zip(&nexts).map(|(s, n)| StepInput { seq: *s, tokens: std::slice::from_ref(n), want: Want::Last }).collect();
        let out = e.step(&inputs, true).unwrap();
        for i in 0..seqs.len() {
            nexts[i] = out.last_argmax(i).unwrap();
            together[i].push(nexts[i]);
        }
        if step == 2 {
            alloc_after_warmup = Some(dev.allocated_bytes());
        }
    }
    assert_eq!(Some(dev.allocated_bytes()), alloc_after_warmup, "decode steps allocated device memory");
    for i in 0..prompts.len() {
        let same = alone[i].iter().zip(&together[i]).take_while(|(a, b)| a == b).count();
        assert!(same >= 30, "sequence {i}: batched decode diverges from single at token {same}: {:?} vs {:?}", alone[i], together[i]);
    }
    let k = e.counters();
    assert!(k.graph_replays > 0, "{k:?}");
    eprintln!("batched decode: {k:?}");
}
