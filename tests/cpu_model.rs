//! The model runtime on the CPU backend: architecture tables against the real models, clear errors
//! for models it cannot run, engine invariants (batching, chunking and prefix reuse never change
//! results) on a small random-weight llama written here, and end-to-end generation on SmolLM2.

mod common;

use rocmforge::gguf::{GgufFile, GgufWriter, Value};
use rocmforge::model::config::ModelConfig;
use rocmforge::model::cpu::CpuBackend;
use rocmforge::model::engine::{Engine, EngineLimits, StepInput, Want};
use rocmforge::model::sampler::SamplingParams;
use rocmforge::model::{DeviceChoice, LoadOptions, Model};
use rocmforge::quant::QuantType;
use std::path::PathBuf;
use std::process::Command;

fn model_path(name: &str) -> PathBuf {
    let dir = std::env::var("ROCMFORGE_MODEL_DIR").unwrap_or_else(|_| ".model".into());
    let p = PathBuf::from(dir).join(name);
    assert!(
        p.exists(),
        "{} missing: run `bash tools/models.sh`",
        p.display()
    );
    p
}
fn smollm() -> PathBuf {
    model_path("smollm2-135m-instruct-q4_1.gguf")
}
fn gemma() -> PathBuf {
    model_path("gemma-3-270m-q4_k_m.gguf")
}

/// A small llama-architecture model with random weights (no tokenizer): 2 layers, d 128,
/// 2 query heads and 1 KV head of 64, vocab 96. `tweak` edits metadata or tensors before writing.
fn tiny_llama(
    tweak: impl FnOnce(&mut GgufWriter, &mut Vec<(String, Vec<u64>)>),
) -> tempfile::NamedTempFile {
    let (d, ff, vocab, hd) = (128u64, 256u64, 96u64, 64u64);
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()));
    for (k, v) in [
        ("llama.block_count", 2u32),
        ("llama.embedding_length", d as u32),
        ("llama.feed_forward_length", ff as u32),
        ("llama.attention.head_count", 2),
        ("llama.attention.head_count_kv", 1),
        ("llama.context_length", 256),
    ] {
        w.add_kv(k, Value::U32(v));
    }
    w.add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![d, vocab]),
        ("output_norm.weight".into(), vec![d]),
        ("output.weight".into(), vec![d, vocab]),
    ];
    for l in 0..2 {
        for (n, s) in [
            ("attn_norm.weight", vec![d]),
            ("attn_q.weight", vec![d, 2 * hd]),
            ("attn_k.weight", vec![d, hd]),
            ("attn_v.weight", vec![d, hd]),
            ("attn_output.weight", vec![2 * hd, d]),
            ("ffn_norm.weight", vec![d]),
            ("ffn_gate.weight", vec![d, ff]),
            ("ffn_up.weight", vec![d, ff]),
            ("ffn_down.weight", vec![ff, d]),
        ] {
            tensors.push((format!("blk.{l}.{n}"), s));
        }
    }
    tweak(&mut w, &mut tensors);
    for (i, (name, shape)) in tensors.iter().enumerate() {
        let n: u64 = shape.iter().product();
        let data: Vec<f32> = if shape.len() == 1 {
            common::rand_f32(n as usize, 100 + i as u64)
                .iter()
                .map(|v| 1.0 + 0.2 * v)
                .collect()
        } else {
            let s = 1.0 / (shape[0] as f32).sqrt();
            common::rand_f32(n as usize, 100 + i as u64)
                .iter()
                .map(|v| v * s * 1.7)
                .collect()
        };
        let ty = if shape.len() == 1 {
            QuantType::F32
        } else {
            QuantType::Q8_0
        };
        w.add_f32_tensor(name.clone(), shape, ty, &data).unwrap();
    }
    let f = tempfile::NamedTempFile::new().unwrap();
    w.write(f.path()).unwrap();
    f
}

fn tiny_engine(max_batch: usize, max_seqs: usize) -> Engine {
    let f = tiny_llama(|_, _| {});
    let g = GgufFile::open(f.path()).unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    let limits = EngineLimits {
        ctx_size: 128,
        page_size: 16,
        num_pages: 64,
        max_batch_tokens: max_batch,
        max_seqs,
    };
    let be = CpuBackend::new(&g, &cfg, limits.num_pages, limits.page_size).unwrap();
    Engine::new(cfg, limits, Box::new(be)).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn config_of_the_real_models() {
    let g = GgufFile::open(smollm()).unwrap();
    let c = ModelConfig::from_gguf(&g).unwrap();
    assert_eq!(
        (
            c.n_layers,
            c.d_model,
            c.d_ff,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim
        ),
        (30, 576, 1536, 9, 3, 64)
    );
    assert_eq!(c.vocab_size, 49152);
    assert!(c.tied_output && !c.qk_norm && !c.post_norms && !c.qkv_bias);
    assert_eq!(
        c.rope_style,
        rocmforge::ops::attention::rope::RopeStyle::Normal
    );
    assert!(c
        .layers
        .iter()
        .all(|l| l.window == 0 && l.rope_base == 100000.0));

    let g = GgufFile::open(gemma()).unwrap();
    let c = ModelConfig::from_gguf(&g).unwrap();
    assert_eq!(
        (
            c.n_layers,
            c.d_model,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.vocab_size
        ),
        (18, 640, 4, 1, 256, 262144)
    );
    assert!(c.tied_output && c.qk_norm && c.post_norms);
    assert_eq!(c.activation, rocmforge::model::arch::Activation::GeluTanh);
    assert!((c.embed_scale - 640f32.sqrt()).abs() < 1e-4);
    for (i, l) in c.layers.iter().enumerate() {
        let global = (i + 1) % 6 == 0;
        assert_eq!(l.window, if global { 0 } else { 512 }, "layer {i}");
        assert_eq!(l.rope_base, if global { 1e6 } else { 1e4 }, "layer {i}");
    }
}

#[test]
fn models_it_cannot_run_are_clear_errors() {
    let cases: Vec<(
        &str,
        Box<dyn FnOnce(&mut GgufWriter, &mut Vec<(String, Vec<u64>)>)>,
    )> = vec![
        (
            "unsupported architecture `gptj`",
            Box::new(|w, _| {
                w.add_kv("general.architecture", Value::String("gptj".into()));
            }),
        ),
        (
            "missing key `llama.block_count`",
            Box::new(|w, _| {
                w.add_kv("llama.block_count", Value::String("two".into()));
            }),
        ),
        (
            "missing tensor `blk.1.ffn_up.weight`",
            Box::new(|_, t| {
                t.retain(|(n, _)| n != "blk.1.ffn_up.weight");
            }),
        ),
        (
            "tensor `blk.0.attn_k.weight` has shape",
            Box::new(|_, t| {
                for (n, s) in t.iter_mut() {
                    if n == "blk.0.attn_k.weight" {
                        *s = vec![128, 128];
                    }
                }
            }),
        ),
        (
            "is not a multiple of",
            Box::new(|w, _| {
                w.add_kv("llama.attention.head_count_kv", Value::U32(3));
            }),
        ),
    ];
    for (want, tweak) in cases {
        let f = tiny_llama(tweak);
        let e = GgufFile::open(f.path()).and_then(|g| ModelConfig::from_gguf(&g).map(|_| ()));
        let msg = e.expect_err(want).to_string();
        // "missing key" covers a key of the wrong type too: the message names the key either way
        let ok = msg.contains(want)
            || (want.starts_with("missing key") && msg.contains("llama.block_count"));
        assert!(ok, "expected `{want}` in `{msg}`");
    }
}

#[test]
fn batching_chunking_and_prefix_reuse_do_not_change_results() {
    let a: Vec<u32> = (0..37).map(|i| (i * 7 + 3) % 96).collect();
    let b: Vec<u32> = (0..5).map(|i| (i * 11 + 1) % 96).collect();
    // alone, one step each
    let mut e = tiny_engine(64, 4);
    let sa = e.open();
    let la = e
        .step(
            &[StepInput {
                seq: sa,
                tokens: &a,
                want: Want::All,
            }],
            false,
        )
        .unwrap();
    let sb = e.open();
    let lb = e
        .step(
            &[StepInput {
                seq: sb,
                tokens: &b,
                want: Want::Last,
            }],
            false,
        )
        .unwrap();
    let da = e
        .step(
            &[StepInput {
                seq: sa,
                tokens: &[5],
                want: Want::Last,
            }],
            false,
        )
        .unwrap();
    let db = e
        .step(
            &[StepInput {
                seq: sb,
                tokens: &[9],
                want: Want::Last,
            }],
            false,
        )
        .unwrap();
    // together: one ragged prefill step, then one decode step of both
    let mut e2 = tiny_engine(64, 4);
    let (ta, tb) = (e2.open(), e2.open());
    let both = e2
        .step(
            &[
                StepInput {
                    seq: ta,
                    tokens: &a,
                    want: Want::All,
                },
                StepInput {
                    seq: tb,
                    tokens: &b,
                    want: Want::Last,
                },
            ],
            false,
        )
        .unwrap();
    assert!(max_abs_diff(both.logits_of(0).unwrap(), la.logits_of(0).unwrap()) < 1e-4);
    assert!(max_abs_diff(both.last_logits(1).unwrap(), lb.last_logits(0).unwrap()) < 1e-4);
    let dec = e2
        .step(
            &[
                StepInput {
                    seq: tb,
                    tokens: &[9],
                    want: Want::Last,
                },
                StepInput {
                    seq: ta,
                    tokens: &[5],
                    want: Want::Last,
                },
            ],
            false,
        )
        .unwrap();
    assert!(max_abs_diff(dec.last_logits(1).unwrap(), da.last_logits(0).unwrap()) < 1e-4);
    assert!(max_abs_diff(dec.last_logits(0).unwrap(), db.last_logits(0).unwrap()) < 1e-4);
    // chunked prefill (chunks of 8) gives the same last logits
    let mut e3 = tiny_engine(8, 4);
    let sc = e3.open();
    let lc = e3.prefill(sc, &a, Want::All).unwrap();
    assert_eq!(lc.argmax.len(), a.len());
    assert!(max_abs_diff(lc.logits_of(0).unwrap(), la.logits_of(0).unwrap()) < 1e-4);
    // prefix reuse: the second sequence takes a's first two full pages from the cache
    let mut long = a.clone();
    long.extend_from_slice(&[1, 2, 3]);
    let (sd, reused) = e.open_with_prefix(&long);
    assert_eq!(reused, 32);
    assert!(e.kv_stats().prefix_tokens_reused >= 32);
    let ld = e
        .step(
            &[StepInput {
                seq: sd,
                tokens: &long[reused..],
                want: Want::Last,
            }],
            false,
        )
        .unwrap();
    let mut e4 = tiny_engine(64, 4);
    let se = e4.open();
    let le = e4
        .step(
            &[StepInput {
                seq: se,
                tokens: &long,
                want: Want::Last,
            }],
            false,
        )
        .unwrap();
    assert!(max_abs_diff(ld.last_logits(0).unwrap(), le.last_logits(0).unwrap()) < 1e-4);
    // freeing returns every page
    for s in [sa, sb, sd] {
        e.free(s);
    }
    let st = e.kv_stats();
    assert_eq!(st.pages_used, 0, "{st:?}");
}

#[test]
fn engine_refuses_bad_steps() {
    let mut e = tiny_engine(16, 2);
    let s = e.open();
    let too_long: Vec<u32> = vec![1; 17];
    assert!(e
        .step(
            &[StepInput {
                seq: s,
                tokens: &too_long,
                want: Want::Last
            }],
            false
        )
        .is_err());
    assert!(
        e.step(
            &[StepInput {
                seq: s,
                tokens: &[200],
                want: Want::Last
            }],
            false
        )
        .is_err(),
        "token outside the vocabulary"
    );
    assert!(e
        .step(
            &[StepInput {
                seq: 999,
                tokens: &[1],
                want: Want::Last
            }],
            false
        )
        .is_err());
    assert!(e
        .step(
            &[
                StepInput {
                    seq: s,
                    tokens: &[1],
                    want: Want::Last
                },
                StepInput {
                    seq: s,
                    tokens: &[1],
                    want: Want::Last
                }
            ],
            false
        )
        .is_err());
    // past the context size
    for _ in 0..8 {
        e.step(
            &[StepInput {
                seq: s,
                tokens: &[1; 16],
                want: Want::Nothing,
            }],
            false,
        )
        .unwrap();
    }
    let err = e
        .step(
            &[StepInput {
                seq: s,
                tokens: &[1],
                want: Want::Last,
            }],
            false,
        )
        .unwrap_err();
    assert!(err.to_string().contains("context size"), "{err}");
}

#[test]
fn smollm2_knows_the_capital_of_france_on_the_cpu() {
    let mut m = Model::load(
        smollm(),
        &LoadOptions {
            device: DeviceChoice::Cpu,
            ctx_size: Some(256),
            ..Default::default()
        },
    )
    .unwrap();
    let ids = m.tokenize("The capital of France is").unwrap();
    let mut text = String::new();
    let p = SamplingParams {
        max_tokens: 8,
        ..SamplingParams::greedy()
    };
    let (toks, stats, _) = m
        .generate(&ids, &p, |t| {
            text.push_str(t);
            true
        })
        .unwrap();
    assert!(text.contains("Paris"), "generated {text:?}");
    assert_eq!(stats.generated_tokens, toks.len());
    // same seed, same tokens (sampling on)
    let p = SamplingParams {
        max_tokens: 12,
        seed: Some(7),
        temperature: 0.9,
        ..Default::default()
    };
    let a = m.generate(&ids, &p, |_| true).unwrap().0;
    let b = m.generate(&ids, &p, |_| true).unwrap().0;
    assert_eq!(a, b);
}

fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(common::cli_bin()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    (out.status.code().unwrap_or(-1), err)
}

/// `rocmforge bench SMOLLM2 --device cpu -r 1 --json ARGS...`: its result rows, each with a positive t/s.
fn bench_rows(args: &[&str]) -> Vec<serde_json::Value> {
    let m = smollm();
    let out = Command::new(common::cli_bin())
        .args([
            "bench",
            m.to_str().unwrap(),
            "--device",
            "cpu",
            "-r",
            "1",
            "--json",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["results"].as_array().unwrap().clone();
    for r in &rows {
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0, "{r}");
    }
    rows
}

/// One field of every row.
fn field(rows: &[serde_json::Value], key: &str) -> Vec<serde_json::Value> {
    rows.iter().map(|r| r[key].clone()).collect()
}

#[test]
fn cli_bench_decodes_parallel_sequences() {
    let rows = bench_rows(&["-p", "0", "-n", "3", "--parallel", "1,3"]);
    assert_eq!(field(&rows, "test"), ["tg3", "tg3@3"]);
    let m = smollm();
    let (code, err) = cli(&[
        "bench",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "--parallel",
        "0",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--parallel"), "{err}");
}

#[test]
fn cli_bench_at_a_context_depth() {
    let rows = bench_rows(&["-p", "4", "-n", "2", "-d", "0,20"]);
    assert_eq!(
        field(&rows, "test"),
        ["pp4", "tg2", "pp4 @ d20", "tg2 @ d20"]
    );
    assert_eq!(field(&rows, "n_depth"), [0, 0, 20, 20]);
    // a depth past the context asked for is a one-line error naming the context
    let m = smollm();
    let (code, err) = cli(&[
        "bench",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "-p",
        "0",
        "-n",
        "2",
        "-d",
        "40",
        "-c",
        "32",
        "-r",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("context size 32"), "{err}");
}

#[test]
fn cli_bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "this is not a model").unwrap();
    let trunc = dir.path().join("trunc.gguf");
    let bytes = std::fs::read(smollm()).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() / 3]).unwrap();
    let gptj = tiny_llama(|w, _| {
        w.add_kv("general.architecture", Value::String("gptj".into()));
    });
    let sm = smollm();
    let gm = gemma();
    let long = "word ".repeat(200);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "/no/such/model.gguf", "-p", "hi", "--device", "cpu"],
            "/no/such/model.gguf",
        ),
        (
            vec!["run", text.to_str().unwrap(), "-p", "hi", "--device", "cpu"],
            "GGUF",
        ),
        (
            vec![
                "run",
                trunc.to_str().unwrap(),
                "-p",
                "hi",
                "--device",
                "cpu",
            ],
            "GGUF",
        ),
        (
            vec![
                "run",
                gptj.path().to_str().unwrap(),
                "-p",
                "hi",
                "--device",
                "cpu",
            ],
            "unsupported architecture",
        ),
        (
            vec![
                "run",
                sm.to_str().unwrap(),
                "-p",
                &long,
                "--device",
                "cpu",
                "--ctx-size",
                "64",
            ],
            "context size",
        ),
        (
            vec!["run", sm.to_str().unwrap(), "-p", "hi", "--device", "tpu"],
            "device",
        ),
        (
            vec!["chat", "--device", "cpu", gm.to_str().unwrap()],
            "chat template",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = cli(&args);
        assert_ne!(code, 0, "{args:?} succeeded");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {err}");
        assert!(err.contains(want), "{args:?}: expected `{want}` in {err}");
    }
}

#[test]
fn cli_run_streams_and_reports_timings() {
    let (code, err) = cli(&[
        "run",
        smollm().to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "6",
        "--temp",
        "0",
        "--device",
        "cpu",
        "-c",
        "128",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("prompt eval time") && err.contains("tokens per second"),
        "{err}"
    );
    let out = Command::new(common::cli_bin())
        .args([
            "run",
            smollm().to_str().unwrap(),
            "-p",
            "The capital of France is",
            "-n",
            "6",
            "--temp",
            "0",
            "--device",
            "cpu",
            "-c",
            "128",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("The capital of France is") && text.contains("Paris"),
        "{text}"
    );
}

#[test]
fn cli_chat_answers_from_stdin() {
    use std::io::Write;
    let mut child = Command::new(common::cli_bin())
        .args([
            "chat",
            smollm().to_str().unwrap(),
            "--device",
            "cpu",
            "-n",
            "24",
            "--temp",
            "0",
            "-c",
            "512",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Paris"), "chat answered {text:?}");
}
