//! `rocmforge gguf info FILE`, `rocmforge gguf dequant FILE --tensor NAME --out OUT.f32 [--device]`
//! and `rocmforge gguf synth --out FILE (--preset NAME | --like FILE) [--type T] ...`.

use clap::Subcommand;
use rocmforge::error::{Error, Result};
use rocmforge::gguf::{synth, GgufFile, Value};
use rocmforge::gpu::Device;
use rocmforge::ops::quantized::dequant;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum GgufOp {
    /// Metadata and tensors (name, type, shape) of a GGUF file.
    Info { file: PathBuf },
    /// Write one tensor as raw little-endian f32.
    Dequant {
        file: PathBuf,
        /// Tensor name (see `rocmforge gguf info`).
        #[arg(long)]
        tensor: String,
        /// Output file (raw little-endian f32, `shape[0]` fastest).
        #[arg(long)]
        out: PathBuf,
        /// Dequantize with the GPU kernel instead of the CPU.
        #[arg(long)]
        device: bool,
    },
    /// Write a GGUF with an architecture's shapes and metadata and random weights (for benchmarks).
    Synth {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Architecture preset: llama-3-8b, qwen2.5-7b, smollm2-135m, gemma3-270m.
        #[arg(long, required_unless_present = "like", conflicts_with = "like")]
        preset: Option<String>,
        /// Copy the architecture metadata and tensor shapes (and types, unless --type) of this GGUF.
        #[arg(long)]
        like: Option<PathBuf>,
        /// Matrix type: q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K mxfp4 f16 bf16 f32, or
        /// q4_k_m (llama.cpp's Q4_K_M mix; the default for presets).
        #[arg(long = "type")]
        ty: Option<String>,
        /// Copy every tokenizer.* key of this GGUF (the vocabulary size follows it unless --vocab).
        #[arg(long)]
        tokenizer_from: Option<PathBuf>,
        /// Embedding rows and token count (a copied vocabulary is padded with [PADn] tokens).
        #[arg(long)]
        vocab: Option<usize>,
        /// Block count (fewer layers for small files).
        #[arg(long)]
        layers: Option<usize>,
        /// Seed of the random weights (same seed, same bytes).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

pub fn run(op: GgufOp) -> Result<i32> {
    match op {
        GgufOp::Info { file } => info(&file),
        GgufOp::Dequant {
            file,
            tensor,
            out,
            device,
        } => dequant_cmd(&file, &tensor, &out, device),
        GgufOp::Synth {
            out,
            preset,
            like,
            ty,
            tokenizer_from,
            vocab,
            layers,
            seed,
        } => {
            let source = match (preset, like) {
                (_, Some(l)) => synth::Source::Like(l),
                (Some(p), None) => synth::Source::Preset(p),
                (None, None) => {
                    return Err(Error::Gguf {
                        path: out.display().to_string(),
                        message: "give --preset NAME or --like FILE".into(),
                    })
                }
            };
            let opts = synth::SynthOptions {
                source,
                types: ty.as_deref().map(synth::TypeChoice::parse).transpose()?,
                tokenizer_from,
                vocab,
                layers,
                seed,
            };
            synth_cmd(&out, &opts)
        }
    }
}

fn synth_cmd(out: &Path, opts: &synth::SynthOptions) -> Result<i32> {
    let s = synth::synth(out, opts)?;
    let types: Vec<String> = s.types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
    eprintln!(
        "{}: {} arch, {} layers, vocab {}, {} tensors ({}), {:.2} GiB in {:.2} s ({:.2} GiB/s)",
        s.path.display(),
        s.arch,
        s.n_layers,
        s.vocab,
        s.tensors,
        types.join(", "),
        s.bytes as f64 / (1u64 << 30) as f64,
        s.seconds,
        s.bytes as f64 / (1u64 << 30) as f64 / s.seconds.max(1e-9)
    );
    Ok(0)
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 60 => format!(
            "{:?}...",
            &s[..s.char_indices().nth(60).map(|c| c.0).unwrap_or(s.len())]
        ),
        Value::String(s) => format!("{s:?}"),
        Value::Array(t, items) => {
            let head: Vec<String> = items.iter().take(4).map(short).collect();
            format!(
                "[{:?} x {}] [{}{}]",
                t,
                items.len(),
                head.join(", "),
                if items.len() > 4 { ", ..." } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}

fn info(file: &Path) -> Result<i32> {
    use std::fmt::Write as _;
    let f = GgufFile::open(file)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: GGUF v{}, alignment {}, {} metadata keys, {} tensors",
        file.display(),
        f.version(),
        f.alignment(),
        f.metadata().len(),
        f.tensors().len()
    );
    for (k, v) in f.metadata() {
        let _ = writeln!(s, "  {k:<40} {}", short(v));
    }
    s.push_str("tensors:\n");
    for t in f.tensors() {
        let _ = writeln!(
            s,
            "  {:<40} {:<12} {:?}  ({} bytes)",
            t.name,
            t.ty.name(),
            t.shape,
            t.n_bytes()
        );
    }
    // a closed pipe (`| head`) is not an error
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), s.as_bytes());
    Ok(0)
}

fn dequant_cmd(file: &Path, name: &str, out: &Path, device: bool) -> Result<i32> {
    let f = GgufFile::open(file)?;
    let Some(info) = f.tensor_info(name) else {
        let names: Vec<&str> = f
            .tensors()
            .iter()
            .take(8)
            .map(|t| t.name.as_str())
            .collect();
        return Err(Error::Gguf {
            path: file.display().to_string(),
            message: format!(
                "no tensor named `{name}`; it has {} tensors, e.g. {}",
                f.tensors().len(),
                names.join(", ")
            ),
        });
    };
    let view = f.tensor(name)?;
    let values = if device {
        let cols = info.shape.first().copied().unwrap_or(1) as usize;
        let n = usize::try_from(info.n_elems())
            .map_err(|_| Error::Quant(format!("tensor {name} too large")))?;
        let rows = n / cols.max(1);
        let dev = Device::shared()?;
        let w = dev.upload(view.bytes())?;
        let mut o = dev.alloc::<f32>(n)?;
        dequant::dequant(&dev, &dev.default_stream(), info.ty, &w, rows, cols, &mut o)?;
        o.to_vec()?
    } else {
        view.dequantize_f32()?
    };
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out, &bytes).map_err(|e| Error::io(out, e))?;
    eprintln!(
        "{name}: {} {:?} -> {} ({} f32, {})",
        info.ty.name(),
        info.shape,
        out.display(),
        values.len(),
        if device { "device" } else { "cpu" }
    );
    Ok(0)
}
