//! The model runtime on the GPU: against the CPU backend (logits cosine over 256 decode steps),
//! against HF transformers (SmolLM2), batched decode with graphs equal to single-sequence decode, and
//! no device allocation inside decode steps. Models: .model/ (ROCMFORGE_MODEL_DIR); for Gemma 3 the
//! real file when present, else ROCMFORGE_TEST_GEMMA (a `rocmforge gguf synth --preset gemma3-270m`
//! file with the real shapes and quant types, random weights), likewise ROCMFORGE_TEST_SMOLLM2 for the
//! SmolLM2 tests against the CPU (the HF comparison needs the real file).

mod common;

use rocmforge::model::engine::{Engine, StepInput, Want};
use rocmforge::model::{DeviceChoice, GpuOptions, LoadOptions, Model};
use serial_test::serial;
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    PathBuf::from(std::env::var("ROCMFORGE_MODEL_DIR").unwrap_or_else(|_| ".model".into()))
}
/// The real SmolLM2 file, else ROCMFORGE_TEST_SMOLLM2 (a `rocmforge gguf synth --preset smollm2-135m
/// --type q4_1` file: the real shapes, random weights) for the tests that compare with the CPU backend.
fn smollm() -> PathBuf {
    let p = model_dir().join("smollm2-135m-instruct-q4_1.gguf");
    if p.exists() {
        return p;
    }
    let s = PathBuf::from(std::env::var("ROCMFORGE_TEST_SMOLLM2").unwrap_or_default());
    assert!(
        s.exists(),
        "{} missing (or set ROCMFORGE_TEST_SMOLLM2 to a synthetic file)",
        p.display()
    );
    s
}
fn gemma() -> PathBuf {
    let real = model_dir().join("gemma-3-270m-q4_k_m.gguf");
    if real.exists() {
        return real;
    }
    let p = PathBuf::from(
        std::env::var("ROCMFORGE_TEST_GEMMA").expect("no Gemma 3 model: set ROCMFORGE_TEST_GEMMA"),
    );
    assert!(p.exists(), "{} missing", p.display());
    p
}

fn engine(path: &PathBuf, device: DeviceChoice, max_seqs: usize) -> Engine {
    engine_with(path, device, max_seqs, GpuOptions::default())
}

/// With GPU switches set in the load options (never by mutating the environment: the model's
/// compile threads read it concurrently, and glibc's setenv racing getenv corrupts the heap).
fn engine_with(path: &PathBuf, device: DeviceChoice, max_seqs: usize, gpu: GpuOptions) -> Engine {
    let opts = LoadOptions {
        device,
        ctx_size: Some(512),
        max_seqs,
        max_batch_tokens: 256,
        gpu,
        ..Default::default()
    };
    match Model::load(path, &opts) {
        Ok(m) => m.engine,
        Err(e) => panic!("loading {} on {device:?}: {e}", path.display()),
    }
}

use common::hf::cosine;

/// Least cosine of a decode step's logits to the CPU's on the default path (f16 activations for these
/// small models: see `q8_policy` in src/model/gpu.rs).
const DECODE_COS: f64 = 0.9999;
/// The same with 8-bit activations forced (ROCMFORGE_Q8=on: int8 per 16 elements as llama.cpp's
/// mmvq does, against the f32 CPU backend), and the least greedy agreement over 256 steps.
const Q8_DECODE_COS: f64 = 0.995;
const Q8_AGREE: usize = 240;

/// Prefill a prompt on both backends (every position's logits), then 256 decode steps feeding the
/// CPU's greedy token to both; cosine of every prefill logits row ≥ 0.9999, of every decode row ≥
/// `min_cos`, greedy tokens equal on ≥ `min_agree` steps.
fn gpu_vs_cpu(path: &PathBuf, min_cos: f64, min_agree: usize, gpu_opts: GpuOptions) -> usize {
    let _ = common::device();
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        ctx_size: Some(512),
        max_batch_tokens: 256,
        ..Default::default()
    };
    let cpu_model = Model::load(path, &opts).unwrap();
    // a real text prompt (the model's own tokenizer), continued greedily by the CPU for 256 steps
    let prompt = cpu_model
        .tokenize("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable metal type, oil-based ink and a wooden screw press. Within fifty years")
        .unwrap();
    let mut cpu = cpu_model.engine;
    let mut gpu = engine_with(path, DeviceChoice::Gpu(None, 0), 1, gpu_opts);
    let vocab = cpu.config.vocab_size as u32;
    let (sc, sg) = (cpu.open(), gpu.open());
    let lc = cpu.prefill(sc, &prompt, Want::All).unwrap();
    let lg = gpu.prefill(sg, &prompt, Want::All).unwrap();
    let v = vocab as usize;
    let mut worst = 1f64;
    for i in 0..prompt.len() {
        worst = worst.min(cosine(
            &lc.logits_of(0).unwrap()[i * v..][..v],
            &lg.logits_of(0).unwrap()[i * v..][..v],
        ));
    }
    assert!(worst >= 0.9999, "prefill cosine {worst}");
    let mut next = lc.last_argmax(0).unwrap();
    let mut agree = 0;
    let mut dworst = 1f64;
    for step in 0..256 {
        let a = cpu
            .step(
                &[StepInput {
                    seq: sc,
                    tokens: &[next],
                    want: Want::Last,
                }],
                false,
            )
            .unwrap();
        let b = gpu
            .step(
                &[StepInput {
                    seq: sg,
                    tokens: &[next],
                    want: Want::Last,
                }],
                false,
            )
            .unwrap();
        let c = cosine(a.last_logits(0).unwrap(), b.last_logits(0).unwrap());
        if c < dworst {
            dworst = c;
            eprintln!("decode step {step}: cosine {c:.6}");
        }
        if a.last_argmax(0) == b.last_argmax(0) {
            agree += 1;
        }
        next = a.last_argmax(0).unwrap();
    }
    let k = gpu.counters();
    eprintln!(
        "{}: GPU vs CPU cosine min {worst:.6} over the prefill, {dworst:.6} over 256 decode steps; greedy agree {agree}/256; launches per decode step {}, graph replays {}",
        path.display(),
        k.launches_last_step,
        k.graph_replays
    );
    assert!(
        k.graph_replays >= 250,
        "decode steps should replay graphs: {k:?}"
    );
    assert!(dworst >= min_cos, "decode cosine {dworst}");
    assert!(
        agree >= min_agree,
        "greedy tokens agree on {agree}/256 steps"
    );
    k.launches_last_step
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_equals_cpu_smollm2() {
    gpu_vs_cpu(&smollm(), DECODE_COS, 250, GpuOptions::default());
}

/// The decode path on 8-bit activations, forced on a model the default keeps on f16: the fused
/// path (the residual adds, norms and gated activation in the GEMVs' epilogues, gemv_q8_fused)
/// and, with the fusions off, gemv_q8 with the glue kernels quantizing their outputs.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_q8_decode_close_to_cpu_smollm2() {
    let q8 = |fuse| GpuOptions {
        q8: Some(true),
        fuse,
        ..Default::default()
    };
    let fused = gpu_vs_cpu(&smollm(), Q8_DECODE_COS, Q8_AGREE, q8(None));
    let plain = gpu_vs_cpu(&smollm(), Q8_DECODE_COS, Q8_AGREE, q8(Some(false)));
    // the fused path: the two residual norms and the gated activation of each of the 30 layers
    // are no launches of their own
    assert!(
        fused + 3 * 30 <= plain,
        "launches a step: fused {fused}, unfused {plain}"
    );
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_equals_cpu_gemma3() {
    gpu_vs_cpu(&gemma(), DECODE_COS, 250, GpuOptions::default());
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_matches_hf_smollm2() {
    let _ = common::device();
    let s = common::hf::check(
        "smollm2-135m-instruct-q4_1",
        "smollm2-135m-instruct-q4_1.gguf",
        DeviceChoice::Gpu(None, 0),
    );
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
    let s = common::hf::check(
        "gemma-3-270m-q4_k_m",
        "gemma-3-270m-q4_k_m.gguf",
        DeviceChoice::Gpu(None, 0),
    );
    eprintln!("{s}");
}

/// Logits rows of `prompts` over `steps` decode steps, one sequence at a time or all together.
/// The token fed at step k is `streams[i][k]` (teacher forcing) when given, else the greedy one.
/// Returns the tokens fed and the logits of every step.
fn decode_rows(
    e: &mut Engine,
    prompts: &[Vec<u32>],
    streams: Option<&[Vec<u32>]>,
    steps: usize,
    together: bool,
) -> (Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>) {
    if !together {
        let mut toks = Vec::new();
        let mut rows = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let st = streams.map(|s| vec![s[i].clone()]);
            let (t, r) = decode_rows(e, std::slice::from_ref(p), st.as_deref(), steps, true);
            toks.extend(t);
            rows.extend(r);
        }
        return (toks, rows);
    }
    let seqs: Vec<_> = prompts.iter().map(|_| e.open()).collect();
    let mut rows: Vec<Vec<Vec<f32>>> = vec![Vec::new(); seqs.len()];
    let mut fed: Vec<Vec<u32>> = vec![Vec::new(); seqs.len()];
    let mut nexts = Vec::new();
    for (i, (s, p)) in seqs.iter().zip(prompts).enumerate() {
        let o = e.prefill(*s, p, Want::Last).unwrap();
        rows[i].push(o.last_logits(0).unwrap().to_vec());
        nexts.push(o.last_argmax(0).unwrap());
    }
    for k in 0..steps {
        for i in 0..seqs.len() {
            if let Some(st) = streams {
                nexts[i] = st[i][k];
            }
            fed[i].push(nexts[i]);
        }
        let inputs: Vec<StepInput> = seqs
            .iter()
            .zip(&nexts)
            .map(|(s, n)| StepInput {
                seq: *s,
                tokens: std::slice::from_ref(n),
                want: Want::Last,
            })
            .collect();
        let o = e.step(&inputs, false).unwrap();
        for i in 0..seqs.len() {
            rows[i].push(o.last_logits(i).unwrap().to_vec());
            nexts[i] = o.last_argmax(i).unwrap();
        }
    }
    for s in seqs {
        e.free(s);
    }
    (fed, rows)
}

/// Sequences of different lengths decoding alone and together (graphs replayed, also ones captured
/// on other sequences) give the CPU backend's logits (cosine ≥ [`DECODE_COS`] at every step, fed the CPU's
/// greedy tokens), and decode steps allocate no device memory once their shape has been seen.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gpu_batched_decode_equals_cpu_and_does_not_allocate() {
    let dev = common::device();
    let path = smollm();
    let prompts: Vec<Vec<u32>> = [3usize, 17, 40, 100]
        .iter()
        .map(|&n| (0..n as u32).map(|i| (i * 31 + n as u32) % 20000).collect())
        .collect();
    let steps = 24;
    let (streams, want) = decode_rows(
        &mut engine(&path, DeviceChoice::Cpu, 4),
        &prompts,
        None,
        steps,
        true,
    );
    let mut worst = 1f64;
    for graphs in ["1", "0"] {
        let g = GpuOptions {
            graphs: Some(graphs == "1"),
            ..Default::default()
        };
        let mut e = engine_with(&path, DeviceChoice::Gpu(None, 0), 4, g);
        let (_, alone) = decode_rows(&mut e, &prompts, Some(&streams), steps, false);
        let before = dev.allocated_bytes();
        let (_, together) = decode_rows(&mut e, &prompts, Some(&streams), steps, true);
        let (_, again) = decode_rows(&mut e, &prompts, Some(&streams), steps, true);
        assert_eq!(
            dev.allocated_bytes(),
            before,
            "decode steps of seen shapes allocated device memory"
        );
        for (name, got) in [
            ("alone", &alone),
            ("together", &together),
            ("together again", &again),
        ] {
            for i in 0..prompts.len() {
                for k in 0..=steps {
                    let c = cosine(&got[i][k], &want[i][k]);
                    worst = worst.min(c);
                    assert!(
                        c >= DECODE_COS,
                        "graphs={graphs} {name}: sequence {i} step {k}: cosine {c} to the CPU"
                    );
                }
            }
        }
        eprintln!("graphs={graphs}: {:?}", e.counters());
        if graphs == "1" {
            assert!(e.counters().graph_replays > 0);
        }
    }
    eprintln!("batched decode: cosine to the CPU ≥ {worst:.6} alone, together and with graphs replayed across sequences");
}
