//! `rocmforge run`, `chat` and `bench`: run a GGUF model from the command line.

use clap::Args;
use rocmforge::error::{Error, Result};
use rocmforge::model::chat::ChatMessage;
use rocmforge::model::engine::{StepInput, Want};
use rocmforge::model::sampler::SamplingParams;
use rocmforge::model::{DeviceChoice, LoadOptions, Model};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Options shared by run, chat and bench: where and how the model is loaded.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// cpu, cuda[:N], hip[:N], gpu or auto (first GPU, else the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Tokens per sequence (default: the model's context length, at most 4096).
    #[arg(long, short = 'c')]
    pub ctx_size: Option<usize>,
    /// Tokens per forward step at most (longer prompts are prefilled in chunks).
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Compile every specialized kernel before answering (default: start with fast-compiling
    /// stand-ins for those not in the disk cache and swap them in as they compile; also
    /// ROCMFORGE_EARLY=off).
    #[arg(long)]
    pub no_early_serve: bool,
}

impl ModelArgs {
    /// Serving while compiling: on unless `--no-early-serve` or ROCMFORGE_EARLY=off.
    pub fn early(&self) -> bool {
        !self.no_early_serve && rocmforge::jit::early::enabled_by_env()
    }

    fn load(&self, max_seqs: usize, verbose: bool) -> Result<Model> {
        let device: DeviceChoice = self.device.parse()?;
        Model::load(
            &self.model,
            &LoadOptions {
                device,
                ctx_size: self.ctx_size,
                max_seqs,
                max_batch_tokens: self.batch,
                verbose,
                early: self.early(),
                ..Default::default()
            },
        )
    }
}

/// Sampling options (llama.cpp's names and defaults).
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Same seed, same tokens.
    #[arg(long, short = 's')]
    pub seed: Option<u64>,
    /// Stop when this text is generated (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

impl SampleArgs {
    fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            max_tokens: self.n_predict,
            stop: self.stop.clone(),
            ..SamplingParams::default()
        }
    }
}

fn print_timings(load_ms: f64, st: &rocmforge::model::runtime::GenerateStats) {
    let per = |ms: f64, n: usize| {
        if n == 0 {
            (0.0, 0.0)
        } else {
            (ms / n as f64, n as f64 * 1e3 / ms.max(1e-9))
        }
    };
    let (pp, pps) = per(st.prompt_ms, st.prompt_tokens);
    let (tp, tps) = per(st.generate_ms, st.generated_tokens);
    eprintln!();
    eprintln!("load time        = {load_ms:10.2} ms");
    eprintln!(
        "prompt eval time = {:10.2} ms / {:5} tokens ({pp:8.2} ms per token, {pps:9.2} tokens per second)",
        st.prompt_ms, st.prompt_tokens
    );
    eprintln!(
        "eval time        = {:10.2} ms / {:5} runs   ({tp:8.2} ms per token, {tps:9.2} tokens per second)",
        st.generate_ms, st.generated_tokens
    );
}

/// `rocmforge run MODEL -p PROMPT`.
pub fn run(m: &ModelArgs, prompt: &str, chat: bool, s: &SampleArgs, verbose: bool) -> Result<i32> {
    let t0 = Instant::now();
    let mut model = m.load(1, verbose)?;
    let text = if chat {
        model.render_chat(&[ChatMessage::new("user", prompt)])?
    } else {
        prompt.to_string()
    };
    let ids = model.tokenize(&text)?;
    print!("{prompt}");
    let mut out = std::io::stdout();
    let _ = out.flush();
    let mut first: Option<f64> = None;
    let (_, stats, _) = model.generate(&ids, &s.params(), |t| {
        first.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
        print!("{t}");
        out.flush().is_ok()
    })?;
    println!();
    print_timings(model.load_stats.total_ms, &stats);
    if let Some(ms) = first {
        eprintln!("first token      = {ms:10.2} ms after start (load and prompt eval: time to first token)");
    }
    // let the background compiles finish so that they reach the disk cache for the next run
    let pending = rocmforge::jit::Jit::global().deferred().status().pending;
    if pending > 0 {
        if verbose {
            eprintln!(
                "waiting for {pending} background kernel compiles (they fill the disk cache)"
            );
        }
        rocmforge::jit::Jit::global().deferred().wait_all();
    }
    Ok(0)
}

/// `rocmforge chat MODEL`: read user turns from stdin, stream the answers.
pub fn chat(m: &ModelArgs, system: Option<&str>, s: &SampleArgs, verbose: bool) -> Result<i32> {
    let mut model = m.load(1, verbose)?;
    if model.chat_template.is_none() {
        return Err(rocmforge::model::chat::no_template_error(
            &model.engine.config.name,
        ));
    }
    let mut messages = Vec::new();
    if let Some(sys) = system {
        messages.push(ChatMessage::new("system", sys));
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("stdin", e))?
            == 0
        {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            continue;
        }
        if line == "/exit" || line == "/quit" {
            break;
        }
        messages.push(ChatMessage::new("user", line));
        let ids = model.tokenize(&model.render_chat(&messages)?)?;
        let mut answer = String::new();
        let (_, stats, _) = model.generate(&ids, &s.params(), |t| {
            answer.push_str(t);
            print!("{t}");
            out.flush().is_ok()
        })?;
        println!();
        if verbose {
            print_timings(0.0, &stats);
        }
        messages.push(ChatMessage::new("assistant", answer));
    }
    Ok(0)
}

#[derive(serde::Serialize)]
struct BenchRow {
    model: String,
    backend: String,
    test: String,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    reps: usize,
    avg_ts: f64,
    stddev_ts: f64,
    samples_ts: Vec<f64>,
}

/// `rocmforge bench MODEL`: prompt processing (ppN: one N-token prompt) and generation (tgN: N
/// tokens from an empty context, greedy on the device), like llama-bench; with `parallel` B > 1
/// also tgN@B: B sequences decoded together, one token each per step (B·N tokens); random token ids.
/// With a depth D > 0 (llama-bench's -d) each test starts after D tokens already in every sequence's
/// cache (prefilled, not timed): `pp512 @ d4096`, `tg128 @ d4096`. Without -c the context is made
/// long enough for the deepest test.
#[allow(clippy::too_many_arguments)]
pub fn bench(
    m: &ModelArgs,
    prompts: &[usize],
    gens: &[usize],
    depths: &[usize],
    parallel: &[usize],
    reps: usize,
    json: bool,
    verbose: bool,
) -> Result<i32> {
    if parallel.contains(&0) {
        return Err(rocmforge::Error::op(
            "bench",
            "--parallel: every sequence count must be at least 1",
        ));
    }
    let deepest = depths.iter().copied().max().unwrap_or(0);
    let mut m = m.clone();
    if m.ctx_size.is_none() && deepest > 0 {
        let longest = prompts.iter().chain(gens).copied().max().unwrap_or(0);
        m.ctx_size = Some((deepest + longest).max(4096));
    }
    let t0 = Instant::now();
    let mut model = m.load(parallel.iter().copied().max().unwrap_or(1), verbose)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    // measure the specialized kernels, not their stand-ins
    let t1 = Instant::now();
    rocmforge::jit::Jit::global().deferred().wait_all();
    let deferred_wait_ms = t1.elapsed().as_secs_f64() * 1e3;
    let vocab = model
        .tokenizer
        .vocab_size()
        .min(model.engine.config.vocab_size) as u64;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand_tok = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % vocab) as u32
    };
    let mut rows = Vec::new();
    let mut run_test = |model: &mut Model,
                        depth: usize,
                        n_prompt: usize,
                        n_gen: usize,
                        par: usize|
     -> Result<BenchRow> {
        let mut samples = Vec::new();
        for rep in 0..reps + 1 {
            let toks: Vec<u32> = (0..n_prompt.max(par)).map(|_| rand_tok()).collect();
            let ctx: Vec<u32> = (0..depth).map(|_| rand_tok()).collect();
            let seqs: Vec<_> = (0..par).map(|_| model.engine.open()).collect();
            // the depth, not timed
            let filled = seqs.iter().try_for_each(|&seq| {
                if depth > 0 {
                    model.engine.prefill(seq, &ctx, Want::Last).map(|_| ())
                } else {
                    Ok(())
                }
            });
            if let Err(e) = filled {
                for seq in seqs {
                    model.engine.free(seq);
                }
                return Err(e);
            }
            let t = Instant::now();
            let res = (|| -> Result<()> {
                if n_prompt > 0 {
                    model.engine.prefill(seqs[0], &toks, Want::Last)?;
                } else {
                    let mut next: Vec<u32> = toks[..par].to_vec();
                    for _ in 0..n_gen {
                        let inputs: Vec<StepInput> = seqs
                            .iter()
                            .zip(&next)
                            .map(|(&seq, tok)| StepInput {
                                seq,
                                tokens: std::slice::from_ref(tok),
                                want: Want::Last,
                            })
                            .collect();
                        let out = model.engine.step(&inputs, true)?;
                        next = (0..par).map(|i| out.last_argmax(i).unwrap_or(0)).collect();
                    }
                }
                Ok(())
            })();
            let secs = t.elapsed().as_secs_f64();
            for seq in seqs {
                model.engine.free(seq);
            }
            res?;
            if rep > 0 {
                // the first run warms up (kernel loads, graph capture)
                samples.push((n_prompt + n_gen * par) as f64 / secs);
            }
        }
        let avg = samples.iter().sum::<f64>() / samples.len() as f64;
        let sd = (samples.iter().map(|s| (s - avg).powi(2)).sum::<f64>()
            / (samples.len().max(2) - 1) as f64)
            .sqrt();
        let test = if n_prompt > 0 {
            format!("pp{n_prompt}")
        } else if par > 1 {
            format!("tg{n_gen}@{par}")
        } else {
            format!("tg{n_gen}")
        };
        Ok(BenchRow {
            model: model.engine.config.name.clone(),
            backend: model.engine.backend_name(),
            test: if depth > 0 {
                format!("{test} @ d{depth}")
            } else {
                test
            },
            n_prompt,
            n_gen,
            n_depth: depth,
            reps,
            avg_ts: avg,
            stddev_ts: sd,
            samples_ts: samples,
        })
    };
    for &d in depths {
        for &p in prompts {
            if p > 0 {
                rows.push(run_test(&mut model, d, p, 0, 1)?);
            }
        }
        for &g in gens {
            for &par in parallel {
                if g > 0 {
                    rows.push(run_test(&mut model, d, 0, g, par)?);
                }
            }
        }
    }
    if json {
        let v = serde_json::json!({
            "model": model.path.display().to_string(),
            "load_ms": load_ms,
            "kernels_compiled": model.load_stats.kernels_compiled,
            "kernels_cached": model.load_stats.kernels_cached,
            "load": model.load_stats,
            "deferred_wait_ms": deferred_wait_ms,
            "memory": model.engine.memory(),
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "load {load_ms:.0} ms ({} kernels compiled, {} from the disk cache); {}",
            model.load_stats.kernels_compiled,
            model.load_stats.kernels_cached,
            model.engine.memory()
        );
        // (-v: the load printed its warm-up report on stderr)
        if verbose && model.load_stats.kernels_deferred > 0 {
            eprintln!(
                "waited {deferred_wait_ms:.0} ms for the deferred specialized kernels before measuring"
            );
        }
        println!("| model | backend | test | t/s |");
        println!("| --- | --- | --- | --- |");
        for r in &rows {
            println!(
                "| {} | {} | {} | {:.2} ± {:.2} |",
                r.model, r.backend, r.test, r.avg_ts, r.stddev_ts
            );
        }
    }
    Ok(0)
}
