//! [`Model`]: load a GGUF model on a device (the GPU or the CPU), with its tokenizer and chat
//! template, and generate text. The pieces below it ([`Engine`], the backends, the sampler) are
//! public for callers that schedule many sequences themselves (the server).

use super::chat::{no_template_error, ChatMessage, ChatTemplate};
use super::config::ModelConfig;
use super::cpu::CpuBackend;
use super::engine::{Engine, EngineLimits, StepInput, Want};
use super::sampler::{Sampler, SamplingParams, StopMatcher};
use super::tokenizer::{StreamDecoder, Tokenizer};
use super::Backend;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::gpu::Vendor;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first GPU of either vendor, else the CPU.
    Auto,
    Cpu,
    Gpu(Option<Vendor>, u32),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (name, ord) = s.split_once(':').unwrap_or((s.as_str(), "0"));
        let ord: u32 = ord
            .parse()
            .map_err(|_| Error::Model(format!("device `{s}`: bad ordinal `{ord}`")))?;
        Ok(match name {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "gpu" => DeviceChoice::Gpu(None, ord),
            "cuda" | "nvidia" => DeviceChoice::Gpu(Some(Vendor::Nvidia), ord),
            "hip" | "amd" | "rocm" => DeviceChoice::Gpu(Some(Vendor::Amd), ord),
            _ => {
                return Err(Error::Model(format!(
                    "device `{s}`: expected cpu, cuda[:N], hip[:N], gpu or auto"
                )))
            }
        })
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    /// Tokens per sequence (default: the model's context length, at most 4096).
    pub ctx_size: Option<usize>,
    /// Sequences that can be live at once (KV pages are sized for `max_seqs × ctx_size` unless
    /// `kv_tokens` says otherwise).
    pub max_seqs: usize,
    /// Total KV capacity in tokens, shared by all sequences (default `max_seqs × ctx_size`).
    pub kv_tokens: Option<usize>,
    /// Tokens per step at most (longer prompts are prefilled in chunks of this).
    pub max_batch_tokens: usize,
    pub page_size: usize,
    /// Progress bars and the load report on stderr.
    pub verbose: bool,
    /// Serving while compiling: start with fast-compiling stand-ins for specialized instances that
    /// are not in the disk cache, and swap those in as their background compiles land (default on;
    /// `ROCMFORGE_EARLY=off` or `--no-early-serve` turn it off).
    pub early: bool,
    /// GPU backend switches that otherwise come from the environment.
    pub gpu: GpuOptions,
}

/// Overrides of the GPU backend's environment switches, for embedders and tests (setting variables
/// in a running multi-threaded process races with the threads that read them). `None`: the
/// environment variable, else the built-in policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// Decode steps replayed as captured graphs (`ROCMFORGE_GRAPHS`, default on).
    pub graphs: Option<bool>,
    /// Small steps' GEMVs on 8-bit activations (`ROCMFORGE_Q8`, default: models over 1 GiB).
    pub q8: Option<bool>,
    /// Decode-step fusions that save launches: the gated activation in the gate/up GEMV's epilogue,
    /// the flash-decoding merge and RoPE with the KV append inside the attention launch, the
    /// residual add and RMSNorm inside the float GEMVs that consume them (on 8-bit activations:
    /// in the epilogues of the GEMVs that produce the residual), all with `Some(true)`,
    /// none with `Some(false)`; `None`: `ROCMFORGE_FUSE` = `glu`, `merge`, `on` or `off` (and
    /// `ROCMFORGE_FUSE_APPEND=off`, `ROCMFORGE_FUSE_NORM=off`), and unset the GLU epilogue, the
    /// append and the norms always and the in-launch merge with the matrix-core decode kernel.
    pub fuse: Option<bool>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: DeviceChoice::Auto,
            ctx_size: None,
            max_seqs: 1,
            kv_tokens: None,
            max_batch_tokens: 512,
            page_size: 16,
            verbose: false,
            early: crate::jit::early::enabled_by_env(),
            gpu: GpuOptions::default(),
        }
    }
}

/// Timings of a load, and its kernel warm-up (GPU; zeros on the CPU).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadStats {
    pub total_ms: f64,
    /// Instances the model's plan names (tuned configurations where the database has them).
    pub kernels: usize,
    /// Instances made ready during the load: compiled (0 with a warm cache) and from the disk cache.
    pub kernels_compiled: usize,
    pub kernels_cached: usize,
    /// Instances warmed at load (the plan, or with `early` its stand-ins in place of deferred ones).
    pub kernels_warmed: usize,
    /// Specialized instances left to compile in the background (serving while compiling).
    pub kernels_deferred: usize,
    /// Serving while compiling was on.
    pub early: bool,
    /// Wall time of the warm-up compiles, from the start of the load.
    pub compile_ms: f64,
    /// Wall time of the weight upload, and how much of the compile time it overlapped.
    pub upload_ms: f64,
    pub overlap_ms: f64,
    /// Tuned entries the plan used (`family/bucket: name=value ...`).
    pub tuned: Vec<String>,
}

impl LoadStats {
    /// One line for `-v` output and logs.
    pub fn warmup_line(&self) -> String {
        let mut s = format!(
            "kernels: {} instances ({} compiled, {} from the disk cache), compile {:.0} ms wall, {:.0} ms of it overlapping the {:.0} ms weight upload",
            self.kernels,
            self.kernels_compiled,
            self.kernels_cached,
            self.compile_ms,
            self.overlap_ms,
            self.upload_ms
        );
        if self.kernels_deferred > 0 {
            s += &format!(
                "; serving early: {} stand-ins warmed, {} specialized instances compiling in the background",
                self.kernels_warmed, self.kernels_deferred
            );
        }
        if self.tuned.is_empty() {
            s += "; no tuned entries";
        } else {
            s += &format!(
                "; {} tuned entries: {}",
                self.tuned.len(),
                self.tuned.join(", ")
            );
        }
        s
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// max_tokens or the context size.
    Length,
    /// The callback asked to stop.
    Cancelled,
}

/// Timings and counts of one generation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub prompt_ms: f64,
    pub generated_tokens: usize,
    pub generate_ms: f64,
}

/// A loaded model.
pub struct Model {
    pub path: PathBuf,
    pub engine: Engine,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    pub load_stats: LoadStats,
}

/// The backend a device choice gives (the GPU backend lives in `model::gpu`).
fn make_backend(
    g: &GgufFile,
    cfg: &ModelConfig,
    opts: &LoadOptions,
    limits: &EngineLimits,
    stats: &mut LoadStats,
) -> Result<Box<dyn Backend>> {
    let cpu = |g: &GgufFile| -> Result<Box<dyn Backend>> {
        Ok(Box::new(CpuBackend::new(
            g,
            cfg,
            limits.num_pages,
            limits.page_size,
        )?))
    };
    match opts.device {
        DeviceChoice::Cpu => cpu(g),
        DeviceChoice::Gpu(vendor, ord) => {
            let dev = match vendor {
                Some(v) => crate::gpu::Device::open_vendor(v, ord)?,
                None => crate::gpu::Device::open()?,
            };
            Ok(Box::new(super::gpu::GpuBackend::new(
                &dev,
                g,
                cfg,
                limits,
                opts.verbose,
                opts.early,
                opts.gpu,
                stats,
            )?))
        }
        DeviceChoice::Auto => match crate::gpu::Device::open() {
            Ok(dev) => Ok(Box::new(super::gpu::GpuBackend::new(
                &dev,
                g,
                cfg,
                limits,
                opts.verbose,
                opts.early,
                opts.gpu,
                stats,
            )?)),
            Err(e) => {
                if opts.verbose {
                    eprintln!("no GPU ({e}); running on the CPU");
                }
                cpu(g)
            }
        },
    }
}

impl Model {
    /// Load `path` as `opts` say. Every problem with the file is an error naming it.
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model> {
        let t0 = Instant::now();
        let path = path.as_ref();
        let g = GgufFile::open(path)?;
        let cfg = ModelConfig::from_gguf(&g)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(Error::Model(format!(
                "the tokenizer has {} tokens but the model only {} embedding rows",
                tokenizer.vocab_size(),
                cfg.vocab_size
            )));
        }
        let chat_template = ChatTemplate::from_gguf(&g)?;
        let ctx_size = opts.ctx_size.unwrap_or(cfg.context_length.min(4096)).max(1);
        if ctx_size > cfg.context_length {
            tracing::warn!(
                "context size {ctx_size} exceeds the model's trained context {}",
                cfg.context_length
            );
        }
        if opts.page_size == 0 || opts.max_seqs == 0 || opts.max_batch_tokens == 0 {
            return Err(Error::Model(
                "page size, max sequences and max batch tokens must be positive".into(),
            ));
        }
        let kv_tokens = opts.kv_tokens.unwrap_or(ctx_size * opts.max_seqs);
        let limits = EngineLimits {
            ctx_size,
            page_size: opts.page_size,
            num_pages: kv_tokens.div_ceil(opts.page_size).max(1),
            max_batch_tokens: opts.max_batch_tokens,
            max_seqs: opts.max_seqs,
        };
        let mut load_stats = LoadStats::default();
        let backend = make_backend(&g, &cfg, opts, &limits, &mut load_stats)?;
        let engine = Engine::new(cfg, limits, backend)?;
        load_stats.total_ms = t0.elapsed().as_secs_f64() * 1e3;
        if opts.verbose {
            eprintln!(
                "loaded {} ({}, {} layers, d {}, heads {}/{}, head_dim {}, vocab {}) on {} in {:.0} ms; {}; KV {} pages x {} tokens",
                engine.config.name,
                engine.config.arch,
                engine.config.n_layers,
                engine.config.d_model,
                engine.config.n_heads,
                engine.config.n_kv_heads,
                engine.config.head_dim,
                engine.config.vocab_size,
                engine.backend_name(),
                load_stats.total_ms,
                engine.memory(),
                limits.num_pages,
                limits.page_size
            );
            if load_stats.kernels > 0 {
                eprintln!("{}", load_stats.warmup_line());
            }
        }
        Ok(Model {
            path: path.to_path_buf(),
            engine,
            tokenizer,
            chat_template,
            load_stats,
        })
    }

    /// The prompt text for a conversation (the model's chat template, generation prompt added).
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        match &self.chat_template {
            Some(t) => t.render(messages, true),
            None => Err(no_template_error(&self.engine.config.name)),
        }
    }

    /// Tokenize a prompt; BOS as the model's tokenizer adds it.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true)
    }

    /// Generate from `prompt` (token ids). `on_text` receives the text as it completes (stop
    /// strings held back and removed) and returns false to cancel.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &SamplingParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<(Vec<u32>, GenerateStats, FinishReason)> {
        params.validate()?;
        if prompt.is_empty() {
            return Err(Error::Model("empty prompt".into()));
        }
        let ctx = self.engine.limits.ctx_size;
        if prompt.len() >= ctx {
            return Err(Error::Model(format!(
                "prompt of {} tokens does not fit the context size {ctx} (leave room for at least one generated token; raise --ctx-size)",
                prompt.len()
            )));
        }
        let mut sampler = Sampler::new(params.clone())?;
        let device_greedy = params.is_greedy()
            && params.repetition_penalty == 1.0
            && params.presence_penalty == 0.0
            && params.frequency_penalty == 0.0;
        let seq = self.engine.open();
        let result = (|| {
            let mut stats = GenerateStats {
                prompt_tokens: prompt.len(),
                ..Default::default()
            };
            let t0 = Instant::now();
            let out = self.engine.prefill(seq, prompt, Want::Last)?;
            let mut history: Vec<u32> = prompt.to_vec();
            let mut next = match out.last_logits(0) {
                Some(l) if !device_greedy => sampler.sample(&mut l.to_vec(), &history),
                _ => out
                    .last_argmax(0)
                    .ok_or_else(|| Error::Model("prefill returned no output".into()))?,
            };
            stats.prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
            let t1 = Instant::now();
            let mut generated = Vec::new();
            let mut dec = StreamDecoder::new(&self.tokenizer, true);
            let mut stops = StopMatcher::new(&params.stop);
            let mut reason = FinishReason::Length;
            loop {
                if self.tokenizer.is_eog(next) {
                    reason = FinishReason::Stop;
                    break;
                }
                generated.push(next);
                history.push(next);
                let piece = dec.push(next)?;
                let (emit, hit) = stops.push(&piece);
                if !emit.is_empty() && !on_text(&emit) {
                    reason = FinishReason::Cancelled;
                    break;
                }
                if hit {
                    reason = FinishReason::Stop;
                    break;
                }
                if generated.len() >= params.max_tokens
                    || self.engine.seq_len(seq).unwrap_or(ctx) + 1 > ctx
                {
                    break;
                }
                let out = self.engine.step(
                    &[StepInput {
                        seq,
                        tokens: &[next],
                        want: Want::Last,
                    }],
                    device_greedy,
                )?;
                next = match out.last_logits(0) {
                    Some(l) if !device_greedy => sampler.sample(&mut l.to_vec(), &history),
                    _ => out
                        .last_argmax(0)
                        .ok_or_else(|| Error::Model("decode returned no output".into()))?,
                };
            }
            if reason != FinishReason::Cancelled {
                let (tail, _) = stops.push(&dec.finish());
                let rest = tail + &stops.flush();
                if !rest.is_empty() {
                    on_text(&rest);
                }
            }
            stats.generated_tokens = generated.len();
            stats.generate_ms = t1.elapsed().as_secs_f64() * 1e3;
            Ok((generated, stats, reason))
        })();
        self.engine.free(seq);
        result
    }
}
