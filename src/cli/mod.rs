//! Command-line front end.

mod compile;
mod gguf;
mod run;
mod selftest;
mod tune;

use clap::{Parser, Subcommand};
use rocmforge::error::Result;
use rocmforge::gpu::{self, Device, Vendor};
use rocmforge::jit::{self, Jit, KernelSpec};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "rocmforge",
    version,
    about = "GPU kernels specialized and compiled at run time (hipRTC / NVRTC), with a verified disk cache"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Devices, targets, limits, compilers and the cache.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Compile kernel instances for targets that need not be present (fills the cache).
    Compile {
        /// Comma-separated targets: gfx90a, gfx1030, gfx1100, gfx942, gfx950, sm_80, sm_90 ...
        /// `gfx942@sm_90` (gfx90a, gfx942, gfx950, gfx1100, gfx1200 @ an NVIDIA sm_XY): the AMD
        /// instances emulated on that NVIDIA GPU, a test/debug mode (never for speed; README).
        #[arg(long, value_delimiter = ',', required = true)]
        target: Vec<String>,
        /// Every registered instance.
        #[arg(long, conflicts_with = "kernel")]
        all: bool,
        /// Exactly the instances this GGUF model runs (warms a fleet's cache for it).
        #[arg(long, conflicts_with_all = ["all", "kernel"])]
        model: Option<std::path::PathBuf>,
        /// Only instances whose URI matches this pattern (`*` wildcards; plain text matches a substring).
        #[arg(long)]
        kernel: Option<String>,
        /// Per kernel and target: registers, LDS/shared, scratch and spills the code object declares.
        #[arg(long)]
        report: bool,
        /// Write the report as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Fail when an instance spills registers or uses scratch (AMD) / local memory (NVIDIA).
        #[arg(long)]
        deny_spills: bool,
        /// With --model: compile as a load that serves while compiling does, the warm-up set
        /// (stand-ins in place of specialized instances missing from the cache) first, then the
        /// deferred specialized instances, and print the wall time of each.
        #[arg(long, requires = "model")]
        early: bool,
        /// Instances per translation unit (default 8; with --model about one group per core).
        /// Larger groups pay the compiler's fixed cost fewer times: HIP 6.4's hipRTC compiles one
        /// program at a time in a process, so there they shorten the wall time.
        #[arg(long)]
        group: Option<usize>,
    },
    /// Inspect and manage the disk cache.
    Cache {
        #[command(subcommand)]
        op: CacheOp,
    },
    /// Print the rendered source of one kernel instance.
    Render {
        /// Family name (see `rocmforge kernels`).
        kernel: String,
        /// Parameter values, `name=value`.
        #[arg(long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// Target to render for (default: the device's, else sm_90).
        #[arg(long)]
        target: Option<String>,
    },
    /// List kernel families and their parameter spaces.
    Kernels,
    /// Compile and run the smoke kernels on the device against the CPU (compile-only without a GPU).
    Selftest {
        #[arg(long)]
        json: bool,
    },
    /// Run a GGUF model on a prompt, streaming the text; llama.cpp-style timings at the end.
    Run {
        #[command(flatten)]
        model: run::ModelArgs,
        /// The prompt.
        #[arg(short = 'p', long)]
        prompt: String,
        /// Wrap the prompt as a user message in the model's chat template.
        #[arg(long)]
        chat: bool,
        #[command(flatten)]
        sample: run::SampleArgs,
        /// Load report and progress on stderr.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Interactive chat with the model's chat template (one user turn per line; /exit ends).
    Chat {
        #[command(flatten)]
        model: run::ModelArgs,
        /// A system message.
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        sample: run::SampleArgs,
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Prompt processing and generation speed (ppN / tgN), like llama-bench.
    Bench {
        #[command(flatten)]
        model: run::ModelArgs,
        /// Prompt lengths (pp tests).
        #[arg(
            short = 'p',
            long = "n-prompt",
            value_delimiter = ',',
            default_value = "512"
        )]
        prompts: Vec<usize>,
        /// Generation lengths (tg tests).
        #[arg(
            short = 'n',
            long = "n-gen",
            value_delimiter = ',',
            default_value = "128"
        )]
        gens: Vec<usize>,
        /// Context depths: each test runs after this many tokens already in the cache (prefilled,
        /// not timed), like llama-bench's -d.
        #[arg(
            short = 'd',
            long = "n-depth",
            value_delimiter = ',',
            default_value = "0"
        )]
        depths: Vec<usize>,
        /// Sequences decoded together in the tg tests (tgN@B: B sequences, N steps, B·N tokens),
        /// like llama-batched-bench's -npl.
        #[arg(long = "parallel", value_delimiter = ',', default_value = "1")]
        parallel: Vec<usize>,
        /// Timed repetitions (after one warm-up run).
        #[arg(short = 'r', long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        json: bool,
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// OpenAI-compatible HTTP server (completions and chat, streamed or whole) with continuous batching.
    Serve {
        #[command(flatten)]
        model: run::ModelArgs,
        /// Address to bind (loopback by default).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port (0 = any free port; the address is printed).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Sequences generated together at most (also the sequences in one step).
        #[arg(long, default_value_t = 16)]
        max_seqs: usize,
        /// KV cache capacity in tokens, shared by all sequences (default: max-seqs x ctx-size).
        #[arg(long)]
        kv_tokens: Option<usize>,
        /// Requests queued beyond --max-seqs before new ones get 429.
        #[arg(long, default_value_t = 256)]
        max_queue: usize,
        /// Require `Authorization: Bearer KEY` on /v1/*.
        #[arg(long)]
        api_key: Option<String>,
        /// The model name clients pass (default: the file name without .gguf).
        #[arg(long)]
        alias: Option<String>,
        /// Seconds running requests may continue after SIGINT/SIGTERM.
        #[arg(long, default_value_t = 30)]
        shutdown_grace: u64,
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Sweep gemv/qgemm configurations on the device into the tuning database; export/import it.
    Tune(tune::TuneArgs),
    /// Inspect a GGUF file or dequantize one of its tensors.
    Gguf {
        #[command(subcommand)]
        op: gguf::GgufOp,
    },
}

#[derive(Subcommand)]
enum CacheOp {
    /// Entry count and bytes.
    Stats,
    /// Every entry with its kernel, target and checksum status.
    List,
    /// Check every checksum; remove corrupt entries.
    Verify,
    /// Remove every entry.
    Clear,
    /// Evict least-recently-used entries down to the bound.
    Gc,
}

fn parse_kv(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected name=value, got `{s}`"))
}

pub fn run() -> Result<i32> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Info { json } => info(json),
        Cmd::Compile {
            target,
            all,
            model,
            kernel,
            report,
            json,
            deny_spills,
            early,
            group,
        } => compile::run(
            &target,
            all,
            model.as_deref(),
            kernel.as_deref(),
            report,
            json.as_deref(),
            deny_spills,
            early,
            group,
        ),
        Cmd::Cache { op } => cache(op),
        Cmd::Render {
            kernel,
            params,
            target,
        } => render(&kernel, &params, target.as_deref()),
        Cmd::Kernels => kernels(),
        Cmd::Selftest { json } => selftest::run(json),
        Cmd::Gguf { op } => gguf::run(op),
        Cmd::Tune(a) => tune::run(a),
        Cmd::Run {
            model,
            prompt,
            chat,
            sample,
            verbose,
        } => run::run(&model, &prompt, chat, &sample, verbose),
        Cmd::Chat {
            model,
            system,
            sample,
            verbose,
        } => run::chat(&model, system.as_deref(), &sample, verbose),
        Cmd::Bench {
            model,
            prompts,
            gens,
            depths,
            parallel,
            reps,
            json,
            verbose,
        } => run::bench(
            &model, &prompts, &gens, &depths, &parallel, reps, json, verbose,
        ),
        Cmd::Serve {
            model,
            host,
            port,
            max_seqs,
            kv_tokens,
            max_queue,
            api_key,
            alias,
            shutdown_grace,
            verbose,
        } => {
            rocmforge::server::serve_cli(rocmforge::server::ServeOptions {
                load: rocmforge::model::LoadOptions {
                    device: model.device.parse()?,
                    ctx_size: model.ctx_size,
                    max_seqs,
                    kv_tokens,
                    // every running sequence's decode token fits in one step
                    max_batch_tokens: model.batch.max(max_seqs),
                    verbose,
                    early: model.early(),
                    ..Default::default()
                },
                model: model.model,
                server: rocmforge::server::ServerConfig {
                    host,
                    port,
                    api_key,
                    model_id: alias,
                    max_queue,
                    shutdown_grace: std::time::Duration::from_secs(shutdown_grace),
                    ..Default::default()
                },
            })
        }
    }
}

fn info(as_json: bool) -> Result<i32> {
    let dev = Device::open();
    let mut compilers = Vec::new();
    for v in [Vendor::Amd, Vendor::Nvidia] {
        match gpu::compiler(v) {
            Ok(c) => compilers.push(json!({"vendor": v.to_string(), "found": true, "compiler": c.describe(), "version": c.version(), "targets": c.supported_targets()})),
            Err(e) => compilers.push(json!({"vendor": v.to_string(), "found": false, "error": e.to_string()})),
        }
    }
    let disk = Jit::global().disk();
    let entries = disk.entries();
    let cache = json!({
        "dir": disk.root().map(|p| p.display().to_string()),
        "entries": entries.len(),
        "bytes": entries.iter().map(|e| e.1).sum::<u64>(),
        "max_bytes": disk.max_bytes(),
        "disabled": disk.disabled_reason(),
    });
    let device = match &dev {
        Ok(d) => serde_json::to_value(d.target()).unwrap_or_default(),
        Err(e) => json!({"error": e.to_string()}),
    };
    if as_json {
        let v = json!({"device": device, "compilers": compilers, "cache": cache, "version": env!("CARGO_PKG_VERSION")});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    println!("rocmforge {}", env!("CARGO_PKG_VERSION"));
    match &dev {
        Ok(d) => {
            let t = d.target();
            println!("device {}:{}  {}", t.vendor, d.ordinal(), t.name);
            println!(
                "  target        {}  (wave {}, matrix cores {:?})",
                t.full_name(),
                t.wave_size,
                t.matrix_cores()
            );
            println!(
                "  compute units {}   clock {} MHz   memory {:.1} GiB   L2 {} MiB",
                t.compute_units,
                t.clock_khz / 1000,
                t.mem_bytes as f64 / (1u64 << 30) as f64,
                t.l2_bytes >> 20
            );
            println!(
                "  per block     {} threads, {} KiB shared ({} KiB opt-in), {} registers",
                t.max_threads_per_block,
                t.shared_per_block / 1024,
                t.shared_per_block_optin / 1024,
                t.regs_per_block
            );
            println!("  driver        {}", t.driver_version);
            if let Some(e) = &t.emulation {
                let how = match e.runtime {
                    Vendor::Amd => "HIP stand-in: libamdhip64 and hipRTC over CUDA",
                    Vendor::Nvidia => "ROCMFORGE_EMULATE",
                };
                println!(
                    "  EMULATION     {} kernels on the NVIDIA {} ({how}): a test/debug mode for AMD lane logic and layouts, not for speed",
                    t.arch, e.host_arch
                );
            }
        }
        Err(e) => println!("device: none ({e})"),
    }
    for c in &compilers {
        if c["found"] == true {
            println!(
                "compiler {}: {}",
                c["vendor"].as_str().unwrap_or(""),
                c["compiler"].as_str().unwrap_or("")
            );
        } else {
            println!(
                "compiler {}: not found: {}",
                c["vendor"].as_str().unwrap_or(""),
                c["error"].as_str().unwrap_or("")
            );
        }
    }
    println!(
        "cache {}: {} entries, {:.1} MiB of {:.0} MiB{}",
        cache["dir"].as_str().unwrap_or("(none)"),
        cache["entries"],
        cache["bytes"].as_u64().unwrap_or(0) as f64 / 1048576.0,
        disk.max_bytes() as f64 / 1048576.0,
        disk.disabled_reason()
            .map(|r| format!("  [{r}]"))
            .unwrap_or_default()
    );
    Ok(0)
}

fn cache(op: CacheOp) -> Result<i32> {
    let disk = Jit::global().disk();
    let root = disk
        .root()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(disabled)".into());
    match op {
        CacheOp::Stats => {
            let e = disk.entries();
            println!(
                "{root}: {} entries, {} bytes (bound {} bytes)",
                e.len(),
                e.iter().map(|x| x.1).sum::<u64>(),
                disk.max_bytes()
            );
        }
        CacheOp::List => {
            for e in disk.list() {
                match e.meta {
                    Some(m) => println!(
                        "{:<48} {:<22} {:>8} B  {:>8.1} ms  {}",
                        m.uri, m.target, e.bytes, m.compile_ms, m.compiler
                    ),
                    None => println!("{:<48} CORRUPT {}", e.path.display(), e.bytes),
                }
            }
        }
        CacheOp::Verify => {
            let (good, bad) = disk.verify_all();
            println!("{root}: {good} entries verified, {bad} corrupt entries removed");
        }
        CacheOp::Clear => println!("{root}: removed {} entries", disk.clear()?),
        CacheOp::Gc => println!(
            "{root}: evicted {} entries; now {} bytes",
            disk.enforce_bound()?,
            disk.total_bytes()
        ),
    }
    Ok(0)
}

fn render(kernel: &str, params: &[(String, String)], target: Option<&str>) -> Result<i32> {
    let fam = rocmforge::ops::family(kernel)?;
    let t = match target {
        Some(t) => gpu::Target::named(t)?,
        None => Device::open()
            .map(|d| d.target().clone())
            .or_else(|_| gpu::Target::named("sm_90"))?,
    };
    let spec = KernelSpec::from_strings(fam, params, t.wave_size)?;
    print!("{}", jit::template::render(&spec, &t)?);
    Ok(0)
}

fn kernels() -> Result<i32> {
    for f in rocmforge::ops::families() {
        println!("{}: {}", f.name, f.doc);
        for p in f.params {
            let vals = match p.kind {
                jit::ParamKind::Int { values, .. } => values
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                jit::ParamKind::Choice { values } => values.join(", "),
                jit::ParamKind::Flag { on, off } => format!("{on} | {off}"),
            };
            println!("  {:<12} {{{vals}}}  {}", p.name, p.doc);
        }
        println!(
            "  instances: {} (wave 32), {} (wave 64)",
            KernelSpec::enumerate(f, 32).len(),
            KernelSpec::enumerate(f, 64).len()
        );
    }
    Ok(0)
}
