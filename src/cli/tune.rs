//! `rocmforge tune`: sweep the tunable parameters of gemv and qgemm on the device, keep the winners
//! in the tuning database (`jit::tunedb`), and move databases between machines (`export` / `import`).

use clap::{Args, Subcommand, ValueEnum};
use half::f16;
use indicatif::{ProgressBar, ProgressStyle};
use rocmforge::error::{Error, Result};
use rocmforge::gguf::GgufFile;
use rocmforge::gpu::blas::Blas;
use rocmforge::gpu::{codeobj, Buffer, Device, Target};
use rocmforge::jit::tune::{
    self, Candidate, Failure, Measured, ShapeResult, SweepBackend, TuneShape,
};
use rocmforge::jit::tunedb::{self, DeviceKey, TuneDb, TuneMode};
use rocmforge::jit::{Jit, KernelSpec, Origin};
use rocmforge::ops::mlp::{embedding, linear, qgemm};
use rocmforge::ops::quantized::gemv::{self, GemvConfig};
use rocmforge::ops::quantized::gemv_q8::{self, GemvQ8Config};
use rocmforge::quant::{self, QuantType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneArgs {
    #[command(subcommand)]
    op: Option<TuneOp>,
    /// Which family to sweep.
    #[arg(long, value_enum, default_value_t = FamilyArg::All)]
    family: FamilyArg,
    /// Sweep exactly the formats, shapes and batch buckets this GGUF model runs.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Write one SVG per family (time against configuration, one line per shape) into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Sweep shapes the database already has an entry for (by default they are skipped, so a
    /// second run does no tuning).
    #[arg(long)]
    retune: bool,
}

#[derive(Subcommand)]
enum TuneOp {
    /// Write this device's tuning database to FILE (to import on machines with the same device).
    Export {
        file: PathBuf,
        /// Without a GPU: the target of the database to export (e.g. gfx90a:sramecc+:xnack-).
        #[arg(long)]
        target: Option<String>,
    },
    /// Merge the tuning database FILE into this machine's (refused if it was tuned on another device key).
    Import { file: PathBuf },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FamilyArg {
    Gemv,
    /// The decode GEMV on 8-bit activations (integer dot products).
    GemvQ8,
    Qgemm,
    All,
}

pub fn run(a: TuneArgs) -> Result<i32> {
    match a.op {
        Some(TuneOp::Export { file, target }) => export(&file, target.as_deref()),
        Some(TuneOp::Import { file }) => import(&file),
        None => sweep_all(&a),
    }
}

fn tune_dir() -> Result<PathBuf> {
    TuneDb::default_dir()
        .ok_or_else(|| Error::op("tune", "no cache directory: set ROCMFORGE_CACHE_DIR"))
}

/// The database to export: the device's when a GPU is present, else the one file of `target` (or the
/// only file) in the tuning directory.
fn export(file: &Path, target: Option<&str>) -> Result<i32> {
    let db = match (Device::open(), target) {
        (Ok(dev), None) => TuneDb::open(DeviceKey::for_target(dev.target())),
        _ => {
            let dir = tune_dir()?;
            let found: Vec<(PathBuf, DeviceKey)> = tunedb::list(&dir)
                .into_iter()
                .filter_map(|(p, k)| k.ok().map(|k| (p, k)))
                .filter(|(_, k)| target.map_or(true, |t| k.target == t))
                .collect();
            match found.as_slice() {
                [(_, k)] => TuneDb::open_in(Some(dir), k.clone()),
                [] => {
                    return Err(Error::op(
                        "tune",
                        format!(
                            "no valid tuning database{} in {}",
                            target.map(|t| format!(" for {t}")).unwrap_or_default(),
                            dir.display()
                        ),
                    ))
                }
                many => {
                    let names: Vec<String> = many
                        .iter()
                        .map(|(_, k)| format!("{} ({})", k.target, k.device))
                        .collect();
                    return Err(Error::op(
                        "tune",
                        format!(
                            "several tuning databases, pick one with --target: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let n = db.export(file)?;
    println!(
        "exported {n} entries ({} on {}, {}) to {}",
        db.key().device,
        db.key().target,
        db.key().compiler,
        file.display()
    );
    Ok(0)
}

/// Merge FILE into the local database of its device key; with a GPU present the key must be the
/// device's own.
fn import(file: &Path) -> Result<i32> {
    let theirs = tunedb::file_key(file)?;
    let key = match Device::open() {
        Ok(dev) => DeviceKey::for_target(dev.target()),
        Err(_) => theirs.clone(),
    };
    let dir = tune_dir()?;
    let local = dir.join(key.file_name());
    if let Ok(existing) = tunedb::file_key(&local) {
        let diff = existing.differences(&key);
        if !diff.is_empty() {
            return Err(Error::op(
                "tune",
                format!(
                    "{} holds another device key's database ({}); refusing to import over it",
                    local.display(),
                    diff.join(", ")
                ),
            ));
        }
    }
    let mut db = TuneDb::open_in(Some(dir), key);
    let n = db.import(file)?;
    if !db.save()? {
        return Err(Error::op(
            "tune",
            format!(
                "could not write {}: {}",
                local.display(),
                db.degraded().unwrap_or("unknown reason")
            ),
        ));
    }
    println!(
        "imported {n} entries into {} ({} entries now)",
        local.display(),
        db.len()
    );
    Ok(0)
}

/// Whether `rocmforge tune` writes the database: writing is what the command is for, so it does unless
/// `ROCMFORGE_TUNE` says otherwise (`readonly`); the run-time default `readonly` is for everything else.
fn tune_writes() -> bool {
    match std::env::var("ROCMFORGE_TUNE") {
        Err(_) => true,
        Ok(v) if v.trim().is_empty() => true,
        Ok(_) => TuneMode::current() == TuneMode::On,
    }
}

fn no_gpu(e: Error) -> Error {
    tracing::info!("no device: {e}");
    Error::op("tune", "no GPU: tuning measures kernels on the device")
}

fn sweep_all(a: &TuneArgs) -> Result<i32> {
    if TuneMode::current() == TuneMode::Off {
        return Err(Error::op(
            "tune",
            "ROCMFORGE_TUNE=off: the tuning database is disabled",
        ));
    }
    let dev = Device::open().map_err(no_gpu)?;
    let target = dev.target().clone();
    let key = DeviceKey::for_target(&target);
    // Sweeps compare against the built-in defaults: an empty database for this target meanwhile.
    tunedb::install(TuneDb::open_in(None, key.clone()));
    let mut db = TuneDb::open(key);
    // dequantize + vendor BLAS competes with the qgemm tiles when the library loads (and the model
    // would use it: not on emulated targets, not with ROCMFORGE_PREFILL_BLAS=off)
    let blas = if rocmforge::model::gpu::prefill_blas_policy(&target) {
        Blas::new(&dev).ok()
    } else {
        None
    };
    let mut plan = plan(a, &target, blas.is_some())?;
    let before = plan.len();
    if !a.retune {
        plan.retain(|s| db.get(&s.shape.family, &s.shape.bucket).is_none());
    }
    if plan.len() < before {
        eprintln!(
            "{} of {before} shapes already tuned for this device (--retune sweeps them again)",
            before - plan.len()
        );
    }
    let total: usize = plan.iter().map(|s| s.cands.len()).sum();
    let t0 = std::time::Instant::now();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} candidates, {elapsed} elapsed, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::new();
    for s in &plan {
        bar.set_message(s.shape.label.clone());
        let r = match &s.work {
            Work::Gemv {
                ty,
                batch,
                rows,
                cols,
            } => {
                let b = GemvBench::new(&dev, *ty, *batch, *rows, *cols)?;
                tune::sweep(&b, &s.shape, &s.cands, s.default, &|_| bar.inc(1))
            }
            Work::GemvQ8 {
                ty,
                batch,
                rows,
                cols,
            } => {
                let b = GemvQ8Bench::new(&dev, *ty, *batch, *rows, *cols)?;
                tune::sweep(&b, &s.shape, &s.cands, s.default, &|_| bar.inc(1))
            }
            Work::Qgemm { ty, m, n, k } => {
                let b = QgemmBench::new(&dev, *ty, *m, *n, *k, blas.as_ref())?;
                tune::sweep(&b, &s.shape, &s.cands, s.default, &|_| bar.inc(1))
            }
        };
        r.record(&mut db);
        results.push(r);
    }
    bar.finish_and_clear();
    tunedb::uninstall(&target.full_name());
    let saved = if tune_writes() { db.save()? } else { false };
    let summary = format!(
        "swept {} of {before} shapes ({total} candidates) in {:.1} s: {} kernels compiled, {} from the disk cache",
        plan.len(),
        t0.elapsed().as_secs_f64(),
        COMPILED.load(Ordering::Relaxed),
        CACHED.load(Ordering::Relaxed)
    );
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "device": db.key(),
                "saved": saved,
                "shapes": before,
                "shapes_swept": plan.len(),
                "candidates": total,
                "kernels_compiled": COMPILED.load(Ordering::Relaxed),
                "kernels_cached": CACHED.load(Ordering::Relaxed),
                "results": results,
            }))
            .map_err(|e| Error::op("tune", e.to_string()))?
        );
    } else {
        print_tables(&results);
        println!("\n{summary}");
        match (saved, db.path()) {
            (true, Some(p)) => println!("\nsaved {} entries to {}", db.len(), p.display()),
            _ if !tune_writes() => {
                println!("\nnot saved: ROCMFORGE_TUNE=readonly (unset it or set ROCMFORGE_TUNE=on to write the database)")
            }
            _ => println!(
                "\nnot saved: {}",
                db.degraded().unwrap_or("no cache directory")
            ),
        }
    }
    if let Some(dir) = &a.plot {
        for f in plot(dir, &results)? {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(0)
}

enum Work {
    Gemv {
        ty: QuantType,
        batch: usize,
        rows: usize,
        cols: usize,
    },
    GemvQ8 {
        ty: QuantType,
        batch: usize,
        rows: usize,
        cols: usize,
    },
    Qgemm {
        ty: QuantType,
        m: usize,
        n: usize,
        k: usize,
    },
}

struct Planned {
    shape: TuneShape,
    cands: Vec<Candidate>,
    default: usize,
    work: Work,
}

/// The matrices to tune on: per quantized format of the model, its most frequent matrix shape (the
/// per-layer weights that dominate a step; ties go to the larger), or a 4096² default set.
fn matrices(model: Option<&Path>) -> Result<Vec<(QuantType, usize, usize)>> {
    let Some(p) = model else {
        return Ok([
            QuantType::Q4_0,
            QuantType::Q8_0,
            QuantType::Q4_K,
            QuantType::Q6_K,
        ]
        .into_iter()
        .map(|t| (t, 4096, 4096))
        .collect());
    };
    let g = GgufFile::open(p)?;
    let mut count: BTreeMap<(&'static str, usize, usize), (QuantType, usize)> = BTreeMap::new();
    for t in g.tensors() {
        if t.shape.len() != 2 || matches!(t.ty.name(), "f32" | "f16" | "bf16") {
            continue;
        }
        let (cols, rows) = (t.shape[0] as usize, t.shape[1] as usize);
        count
            .entry((t.ty.name(), rows, cols))
            .or_insert((t.ty, 0))
            .1 += 1;
    }
    let mut best: BTreeMap<&'static str, (QuantType, usize, usize, usize)> = BTreeMap::new();
    for ((name, rows, cols), (ty, n)) in count {
        let e = best.entry(name).or_insert((ty, rows, cols, n));
        if (n, rows * cols) > (e.3, e.1 * e.2) {
            *e = (ty, rows, cols, n);
        }
    }
    if best.is_empty() {
        return Err(Error::Model(format!(
            "{}: no quantized 2-D tensors to tune for",
            p.display()
        )));
    }
    Ok(best.into_values().map(|(t, r, c, _)| (t, r, c)).collect())
}

fn plan(a: &TuneArgs, target: &Target, blas: bool) -> Result<Vec<Planned>> {
    let mats = matrices(a.model.as_deref())?;
    let mut out = Vec::new();
    let param = |k: &str, v: String| (k.to_string(), v);
    if matches!(a.family, FamilyArg::Gemv | FamilyArg::All) {
        for &(ty, rows, cols) in &mats {
            for batch in 1..=gemv::MAX_BATCH {
                let def = GemvConfig::default_for(ty, "f16", batch, target);
                let cs = GemvConfig::candidates(ty, "f16", batch);
                let Some(default) = cs.iter().position(|c| *c == def) else {
                    continue;
                };
                out.push(Planned {
                    shape: TuneShape {
                        family: "gemv".into(),
                        bucket: tunedb::gemv_bucket(ty.name(), "f16", batch),
                        label: format!("{ty} f16 b{batch} {rows}x{cols}"),
                    },
                    cands: cs
                        .iter()
                        .map(|c| Candidate {
                            label: format!("r{}", c.rows),
                            params: [param("rows", c.rows.to_string())].into(),
                        })
                        .collect(),
                    default,
                    work: Work::Gemv {
                        ty,
                        batch,
                        rows,
                        cols,
                    },
                });
            }
        }
    }
    // gemv_q8: with --model only when that model's decode runs on 8-bit activations (q8_policy), for
    // the step sizes it runs there (1..=Q8_MAX_ROWS tokens); without, batches 1, 2, 4 and 8
    let q8_batches: Vec<usize> = match a.model.as_deref() {
        Some(p) if matches!(a.family, FamilyArg::All) => {
            if rocmforge::model::gpu::q8_policy(&GgufFile::open(p)?) {
                (1..=rocmforge::model::gpu::Q8_MAX_ROWS).collect()
            } else {
                Vec::new()
            }
        }
        Some(_) => (1..=rocmforge::model::gpu::Q8_MAX_ROWS).collect(),
        None => gemv_q8::BATCHES.iter().map(|&b| b as usize).collect(),
    };
    if matches!(a.family, FamilyArg::GemvQ8 | FamilyArg::All) {
        for &(ty, rows, cols) in &mats {
            if !gemv_q8::supports(ty) || cols % 32 != 0 {
                continue;
            }
            for &batch in &q8_batches {
                let def = GemvQ8Config::default_for(ty, "f16", batch, rows, target);
                let cs = GemvQ8Config::candidates(ty, batch);
                let Some(default) = cs.iter().position(|c| *c == def) else {
                    continue;
                };
                out.push(Planned {
                    shape: TuneShape {
                        family: "gemv_q8".into(),
                        bucket: tunedb::gemv_bucket(ty.name(), "f16", batch),
                        label: format!("{ty} q8 b{batch} {rows}x{cols}"),
                    },
                    cands: cs
                        .iter()
                        .map(|c| Candidate {
                            label: format!("r{}", c.rows),
                            params: [param("rows", c.rows.to_string())].into(),
                        })
                        .collect(),
                    default,
                    work: Work::GemvQ8 {
                        ty,
                        batch,
                        rows,
                        cols,
                    },
                });
            }
        }
    }
    if matches!(a.family, FamilyArg::Qgemm | FamilyArg::All) {
        let path = qgemm::path_for(target);
        // the bucket's tile does not depend on the format: tune on the largest matrix's format
        if let Some(&(ty, n, k)) = mats.iter().max_by_key(|m| m.1 * m.2) {
            for m in [16usize, 128, 256, 1024] {
                let def = qgemm::default_tile(path, m);
                let tiles = qgemm::tiles(path);
                let Some(mut default) = tiles.iter().position(|t| *t == def) else {
                    continue;
                };
                // the model's built-in choice for this matrix (dequantize + BLAS from a row
                // threshold that depends on its size)
                if blas && rocmforge::model::gpu::prefill_blas_default(m, n, k, None) {
                    default = tiles.len();
                }
                out.push(Planned {
                    shape: TuneShape {
                        family: "qgemm".into(),
                        bucket: tunedb::qgemm_bucket(path, m),
                        label: format!("{ty} {path} M{m} {n}x{k}"),
                    },
                    cands: tiles
                        .iter()
                        .map(|t| Candidate {
                            label: format!("m{}.n{}.x{}.k{}", t.0, t.1, t.2, t.3),
                            params: [
                                param("bm", t.0.to_string()),
                                param("bn", t.1.to_string()),
                                param("warps", t.2.to_string()),
                                param("bk", t.3.to_string()),
                            ]
                            .into(),
                        })
                        .chain(blas.then(|| Candidate {
                            label: "dequant+blas".into(),
                            params: [param("path", "blas".to_string())].into(),
                        }))
                        .collect(),
                    default,
                    work: Work::Qgemm { ty, m, n, k },
                });
            }
        }
    }
    Ok(out)
}

fn rand_vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Relative L2 error of `got` against `want` (infinite when anything is not finite).
fn rel_err(got: impl Iterator<Item = f64>, want: &[f64]) -> f64 {
    let (mut num, mut den, mut n) = (0f64, 0f64, 0usize);
    for (g, w) in got.zip(want) {
        if !g.is_finite() {
            return f64::INFINITY;
        }
        num += (g - w).powi(2);
        den += w.powi(2);
        n += 1;
    }
    if n != want.len() {
        return f64::INFINITY;
    }
    (num / den.max(1e-30)).sqrt()
}

/// Random `rows × cols` weights of `ty`, and device copies enough to rotate past L2.
fn weights(
    dev: &Device,
    ty: QuantType,
    rows: usize,
    cols: usize,
) -> Result<(Vec<u8>, Vec<Buffer<u8>>)> {
    let tile_rows = rows.min(256);
    let q = quant::quantize_to_vec(ty, &rand_vals(tile_rows * cols, ty as u64 + 1))?;
    let want = ty.row_bytes(cols)? * rows;
    let mut bytes = Vec::with_capacity(want + q.len());
    while bytes.len() < want {
        bytes.extend_from_slice(&q);
    }
    bytes.truncate(want);
    let l2 = (dev.target().l2_bytes as usize).max(64 << 20);
    let copies = (2 * l2).div_ceil(want.max(1)).clamp(1, 16);
    let bufs = (0..copies)
        .map(|_| dev.upload(&bytes))
        .collect::<Result<Vec<_>>>()?;
    Ok((bytes, bufs))
}

/// Candidate kernels compiled and found in the disk cache by this process's sweeps.
static COMPILED: AtomicUsize = AtomicUsize::new(0);
static CACHED: AtomicUsize = AtomicUsize::new(0);

/// Compile candidates with `compile_many`; a compile error or a spilling code object fails the candidate.
fn compile_specs(
    target: &Target,
    specs: Vec<Result<KernelSpec>>,
) -> Vec<std::result::Result<(), Failure>> {
    let work: Vec<(usize, (KernelSpec, Target))> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().ok().map(|s| (i, (s.clone(), target.clone()))))
        .collect();
    let pairs: Vec<(KernelSpec, Target)> = work.iter().map(|w| w.1.clone()).collect();
    let results = Jit::global().compile_many(&pairs, || {});
    for c in results.iter().flatten() {
        match c.origin {
            Origin::Compiled => COMPILED.fetch_add(1, Ordering::Relaxed),
            _ => CACHED.fetch_add(1, Ordering::Relaxed),
        };
    }
    let mut compiled = results.into_iter();
    let mut out = Vec::with_capacity(specs.len());
    for s in specs {
        let r = match s {
            Err(e) => Err(Failure::Compile(e.to_string())),
            Ok(spec) => match compiled.next() {
                None => Err(Failure::Compile("no result from the compiler".into())),
                Some(Err(e)) => Err(Failure::Compile(e.to_string())),
                Some(Ok(c)) => match codeobj::resources(&c.image) {
                    Ok(res) => match res.iter().find(|k| k.name == spec.symbol() && k.spills()) {
                        Some(k) => Err(Failure::Spills(format!(
                            "{} VGPR / {} SGPR spills, {} B scratch",
                            k.vgpr_spills, k.sgpr_spills, k.scratch_bytes
                        ))),
                        None => Ok(()),
                    },
                    Err(_) => Ok(()),
                },
            },
        };
        out.push(r);
    }
    out
}

/// Time `run(i)` (i: the rotation index) with device events: 3 warm-up calls, then the median and
/// spread of 30.
fn time(dev: &Device, mut run: impl FnMut(usize) -> Result<()>) -> Result<(f64, f64)> {
    let stream = dev.default_stream();
    for i in 0..3 {
        run(i)?;
    }
    let (a, b) = (dev.create_event()?, dev.create_event()?);
    let mut t = Vec::with_capacity(30);
    for i in 0..30 {
        a.record(&stream)?;
        run(i)?;
        b.record(&stream)?;
        t.push(b.elapsed_ms_since(&a)? as f64);
    }
    Ok(tune::median_spread(&mut t))
}

/// Check one candidate, then time it: y poisoned with NaN (a kernel that writes nothing cannot
/// pass), one run on the first weight copy, the relative error of the elements `pick` takes from y
/// against `want`, then [`time`] over the rotated copies.
fn check_and_time(
    dev: &Device,
    y: &Mutex<Buffer<f16>>,
    w: &[Buffer<u8>],
    want: &[f64],
    tol: f64,
    pick: impl Fn(&[f16]) -> Vec<f64>,
    mut run: impl FnMut(&mut Buffer<f16>, &Buffer<u8>) -> Result<()>,
) -> std::result::Result<Measured, Failure> {
    let mut y = y.lock().map_err(|_| Failure::Run("poisoned".into()))?;
    let mut go = || -> Result<Measured> {
        y.fill_bytes(0xff)?;
        run(&mut y, &w[0])?;
        dev.synchronize()?;
        let max_err = rel_err(pick(&y.to_vec()?).into_iter(), want);
        let (median_ms, spread_ms) = time(dev, |i| run(&mut y, &w[i % w.len()]))?;
        Ok(Measured {
            median_ms,
            spread_ms,
            max_err,
            tol,
        })
    };
    go().map_err(|e| Failure::Run(e.to_string()))
}

/// Every element of y, for [`check_and_time`].
fn all(y: &[f16]) -> Vec<f64> {
    y.iter().map(|v| v.to_f64()).collect()
}

struct GemvBench<'a> {
    dev: &'a Device,
    ty: QuantType,
    batch: usize,
    rows: usize,
    cols: usize,
    w: Vec<Buffer<u8>>,
    x: Buffer<f16>,
    y: Mutex<Buffer<f16>>,
    want: Vec<f64>,
}

impl<'a> GemvBench<'a> {
    fn new(dev: &'a Device, ty: QuantType, batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let (bytes, w) = weights(dev, ty, rows, cols)?;
        let xf = rand_vals(batch * cols, 7 + batch as u64);
        let xh: Vec<f16> = xf.iter().map(|&v| f16::from_f32(v)).collect();
        let xr: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
        let want = gemv::gemv_ref(ty, &bytes, rows, cols, &xr, batch)?;
        Ok(GemvBench {
            dev,
            ty,
            batch,
            rows,
            cols,
            w,
            x: dev.upload(&xh)?,
            y: Mutex::new(dev.alloc(batch * rows)?),
            want,
        })
    }
    fn cfg(c: &Candidate) -> std::result::Result<GemvConfig, Failure> {
        c.params
            .get("rows")
            .and_then(|r| r.parse().ok())
            .map(|rows| GemvConfig { rows })
            .ok_or_else(|| Failure::Run(format!("{}: no rows parameter", c.label)))
    }
}

impl SweepBackend for GemvBench<'_> {
    fn compile(&self, _: &TuneShape, cands: &[Candidate]) -> Vec<std::result::Result<(), Failure>> {
        let wave = self.dev.target().wave_size;
        let specs = cands
            .iter()
            .map(|c| {
                let cfg = Self::cfg(c).map_err(|e| Error::op("tune", e.to_string()))?;
                gemv::spec(self.ty, "f16", self.batch, cfg, wave)
            })
            .collect();
        compile_specs(self.dev.target(), specs)
    }
    fn measure(&self, _: &TuneShape, c: &Candidate) -> std::result::Result<Measured, Failure> {
        let cfg = Self::cfg(c)?;
        let run = |y: &mut Buffer<f16>, w: &Buffer<u8>| {
            gemv::gemv_with(
                self.dev,
                &self.dev.default_stream(),
                self.ty,
                w,
                self.rows,
                self.cols,
                &self.x,
                self.batch,
                y,
                cfg,
            )
        };
        check_and_time(self.dev, &self.y, &self.w, &self.want, 2e-3, all, run)
    }
}

/// The 8-bit-activation GEMV: x quantized once (as the model's glue kernels do before each GEMV),
/// then the integer kernel timed on rotated weights.
struct GemvQ8Bench<'a> {
    dev: &'a Device,
    ty: QuantType,
    batch: usize,
    rows: usize,
    cols: usize,
    w: Vec<Buffer<u8>>,
    xq: Buffer<u8>,
    y: Mutex<Buffer<f16>>,
    want: Vec<f64>,
}

impl<'a> GemvQ8Bench<'a> {
    fn new(dev: &'a Device, ty: QuantType, batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let (bytes, w) = weights(dev, ty, rows, cols)?;
        let xh: Vec<f16> = rand_vals(batch * cols, 7 + batch as u64)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let xr: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
        let want = gemv_q8::gemv_q8_ref(ty, &bytes, rows, cols, &xr, batch)?;
        let x = dev.upload(&xh)?;
        let mut xq = dev.alloc::<u8>(gemv_q8::act_bytes(batch, cols))?;
        gemv_q8::quantize_x(dev, &dev.default_stream(), &x, batch, cols, &mut xq)?;
        Ok(GemvQ8Bench {
            dev,
            ty,
            batch,
            rows,
            cols,
            w,
            xq,
            y: Mutex::new(dev.alloc(batch * rows)?),
            want,
        })
    }
    fn cfg(c: &Candidate) -> std::result::Result<GemvQ8Config, Failure> {
        c.params
            .get("rows")
            .and_then(|r| r.parse().ok())
            .map(|rows| GemvQ8Config { rows, waves: 4 })
            .ok_or_else(|| Failure::Run(format!("{}: no rows parameter", c.label)))
    }
}

impl SweepBackend for GemvQ8Bench<'_> {
    fn compile(&self, _: &TuneShape, cands: &[Candidate]) -> Vec<std::result::Result<(), Failure>> {
        let wave = self.dev.target().wave_size;
        let specs = cands
            .iter()
            .map(|c| {
                let cfg = Self::cfg(c).map_err(|e| Error::op("tune", e.to_string()))?;
                gemv_q8::spec(self.ty, "f16", self.batch, cfg, wave)
            })
            .collect();
        compile_specs(self.dev.target(), specs)
    }
    fn measure(&self, _: &TuneShape, c: &Candidate) -> std::result::Result<Measured, Failure> {
        let cfg = Self::cfg(c)?;
        let run = |y: &mut Buffer<f16>, w: &Buffer<u8>| {
            gemv_q8::gemv_q8(
                self.dev,
                &self.dev.default_stream(),
                self.ty,
                w,
                self.rows,
                self.cols,
                &self.xq,
                self.batch,
                y,
                Some(cfg),
            )
        };
        check_and_time(self.dev, &self.y, &self.w, &self.want, 2e-3, all, run)
    }
}

/// Rows of M checked against the CPU reference (the first and last 16: every M regime's edge tiles).
fn check_rows(m: usize) -> Vec<usize> {
    let set: std::collections::BTreeSet<usize> =
        (0..m.min(16)).chain(m.saturating_sub(16)..m).collect();
    set.into_iter().collect()
}

struct QgemmBench<'a> {
    dev: &'a Device,
    ty: QuantType,
    dims: (usize, usize, usize),
    /// The dequantize + BLAS candidate: the handle and the f16 scratch W is dequantized into.
    blas: Option<(&'a Blas, Mutex<Buffer<f16>>)>,
    w: Vec<Buffer<u8>>,
    x: Buffer<f16>,
    y: Mutex<Buffer<f16>>,
    want: Vec<f64>,
}

impl<'a> QgemmBench<'a> {
    fn new(
        dev: &'a Device,
        ty: QuantType,
        m: usize,
        n: usize,
        k: usize,
        blas: Option<&'a Blas>,
    ) -> Result<Self> {
        qgemm::check_shape(ty, m, n, k)?;
        let (bytes, w) = weights(dev, ty, n, k)?;
        let xh: Vec<f16> = rand_vals(m * k, 11)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let w_deq = quant::dequantize_to_vec(ty, &bytes, n * k)?;
        let sub: Vec<f16> = check_rows(m)
            .iter()
            .flat_map(|&r| xh[r * k..(r + 1) * k].iter().copied())
            .collect();
        let want = qgemm::qgemm_ref(&sub, &w_deq, None, check_rows(m).len(), n, k);
        Ok(QgemmBench {
            dev,
            ty,
            dims: (m, n, k),
            blas: match blas {
                Some(b) => Some((b, Mutex::new(dev.alloc::<f16>(n * k)?))),
                None => None,
            },
            w,
            x: dev.upload(&xh)?,
            y: Mutex::new(dev.alloc(m * n)?),
            want,
        })
    }
    fn is_blas(c: &Candidate) -> bool {
        c.params.get("path").map(String::as_str) == Some("blas")
    }
    fn tile(c: &Candidate) -> std::result::Result<qgemm::Tile, Failure> {
        let p = |k: &str| c.params.get(k).and_then(|v| v.parse::<i64>().ok());
        match (p("bm"), p("bn"), p("warps"), p("bk")) {
            (Some(a), Some(b), Some(w), Some(k)) => Ok((a, b, w, k)),
            _ => Err(Failure::Run(format!("{}: incomplete tile", c.label))),
        }
    }
}

impl SweepBackend for QgemmBench<'_> {
    fn compile(&self, _: &TuneShape, cands: &[Candidate]) -> Vec<std::result::Result<(), Failure>> {
        let t = self.dev.target();
        let specs = cands
            .iter()
            .map(|c| {
                if Self::is_blas(c) {
                    // the dequantization kernel of that path
                    return embedding::spec(self.ty.name(), "f16", self.dims.2, t.wave_size);
                }
                let tile = Self::tile(c).map_err(|e| Error::op("tune", e.to_string()))?;
                qgemm::spec(self.ty, t, None, tile)
            })
            .collect();
        compile_specs(t, specs)
    }
    fn measure(&self, _: &TuneShape, c: &Candidate) -> std::result::Result<Measured, Failure> {
        let mut blas = if Self::is_blas(c) {
            match &self.blas {
                Some((b, scratch)) => Some((
                    *b,
                    scratch
                        .lock()
                        .map_err(|_| Failure::Run("poisoned".into()))?,
                )),
                None => return Err(Failure::Run("no vendor BLAS loaded".into())),
            }
        } else {
            None
        };
        let tile = if blas.is_some() {
            None
        } else {
            Some(Self::tile(c)?)
        };
        let (m, n, _) = self.dims;
        let run = |y: &mut Buffer<f16>, w: &Buffer<u8>| {
            let stream = self.dev.default_stream();
            if let Some((b, scratch)) = blas.as_mut() {
                return linear::linear_blas(
                    self.dev, &stream, b, &self.x, w, self.ty, self.dims, None, y, scratch,
                );
            }
            qgemm::qgemm(
                self.dev, &stream, &self.x, w, self.ty, self.dims, None, y, None, tile,
            )
        };
        let pick = |got: &[f16]| -> Vec<f64> {
            check_rows(m)
                .iter()
                .flat_map(|&r| got[r * n..(r + 1) * n].iter().map(|v| v.to_f64()))
                .collect()
        };
        check_and_time(self.dev, &self.y, &self.w, &self.want, 1e-2, pick, run)
    }
}

fn print_tables(results: &[ShapeResult]) {
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    let mut family = "";
    for r in results {
        if r.shape.family != family {
            family = &r.shape.family;
            println!("\n{family}");
            println!(
                "{:<36} {:<18} {:>10} {:<18} {:>10} {:>8}",
                "shape", "default", "ms", "best", "ms", "speedup"
            );
        }
        let d = &r.outcomes[r.default].candidate.label;
        let b = r
            .winner
            .map(|i| r.outcomes[i].candidate.label.as_str())
            .unwrap_or("(default)");
        println!(
            "{:<36} {:<18} {:>10} {:<18} {:>10} {:>8}",
            r.shape.label,
            d,
            ms(r.default_ms()),
            b,
            ms(r.best_ms()),
            r.speedup()
                .map(|s| format!("{s:.2}x"))
                .unwrap_or_else(|| "-".into())
        );
        for o in &r.outcomes {
            if let Err(f) = &o.result {
                println!("    {} rejected: {f}", o.candidate.label);
            }
        }
    }
}

/// One SVG per family: median time (ms) against the candidate configuration, one line per shape.
fn plot(dir: &Path, results: &[ShapeResult]) -> Result<Vec<PathBuf>> {
    use plotters::prelude::*;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut families: Vec<&str> = results.iter().map(|r| r.shape.family.as_str()).collect();
    families.dedup();
    let mut written = Vec::new();
    for fam in families {
        let rs: Vec<&ShapeResult> = results.iter().filter(|r| r.shape.family == fam).collect();
        let labels: Vec<String> = {
            let mut l: Vec<String> = Vec::new();
            for r in &rs {
                for o in &r.outcomes {
                    if !l.contains(&o.candidate.label) {
                        l.push(o.candidate.label.clone());
                    }
                }
            }
            l
        };
        let ymax = rs
            .iter()
            .flat_map(|r| {
                r.outcomes
                    .iter()
                    .filter_map(|o| o.result.as_ref().ok().map(|m| m.median_ms))
            })
            .fold(0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let path = dir.join(format!("tune-{fam}.svg"));
        let err = |e: &dyn std::fmt::Display| Error::op("tune", format!("{}: {e}", path.display()));
        let root = SVGBackend::new(&path, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = labels.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{fam}: median time per configuration"),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..(n as f64 - 0.5).max(0.5), 0f64..ymax)
            .map_err(|e| err(&e))?;
        let lab = labels.clone();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                lab.get(x.round().max(0.0) as usize)
                    .cloned()
                    .unwrap_or_default()
            })
            .y_desc("ms")
            .draw()
            .map_err(|e| err(&e))?;
        for (si, r) in rs.iter().enumerate() {
            let color = Palette99::pick(si).to_rgba();
            let pts: Vec<(f64, f64)> = r
                .outcomes
                .iter()
                .filter_map(|o| {
                    let x = labels.iter().position(|l| *l == o.candidate.label)? as f64;
                    o.result.as_ref().ok().map(|m| (x, m.median_ms))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color))
                .map_err(|e| err(&e))?
                .label(r.shape.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        written.push(path.clone());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocmforge::jit::tune::Outcome;

    fn result(family: &str, label: &str, times: &[(&str, Option<f64>)]) -> ShapeResult {
        ShapeResult {
            shape: TuneShape {
                family: family.into(),
                bucket: "b".into(),
                label: label.into(),
            },
            outcomes: times
                .iter()
                .map(|(l, t)| Outcome {
                    candidate: Candidate {
                        label: l.to_string(),
                        params: BTreeMap::new(),
                    },
                    result: t
                        .map(|ms| Measured {
                            median_ms: ms,
                            spread_ms: 0.0,
                            max_err: 0.0,
                            tol: 1.0,
                        })
                        .ok_or(Failure::Compile("x".into())),
                })
                .collect(),
            default: 0,
            winner: None,
        }
    }

    #[test]
    fn plot_writes_one_svg_per_family() {
        let d = tempfile::tempdir().unwrap();
        let rs = vec![
            result(
                "gemv",
                "q4_0 b1",
                &[("r8", Some(0.02)), ("r4", Some(0.015))],
            ),
            result("gemv", "q4_0 b8", &[("r2", Some(0.05)), ("r16", None)]),
            result(
                "qgemm",
                "M16",
                &[
                    ("m16.n16.x4.k256", Some(0.3)),
                    ("m32.n32.x4.k256", Some(0.4)),
                ],
            ),
        ];
        let files = plot(d.path(), &rs).unwrap();
        assert_eq!(files.len(), 2);
        for f in files {
            let svg = std::fs::read_to_string(&f).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("polyline"),
                "{}",
                f.display()
            );
        }
    }

    #[test]
    fn check_rows_cover_both_ends() {
        assert_eq!(check_rows(4), vec![0, 1, 2, 3]);
        let r = check_rows(100);
        assert_eq!((r.len(), r[0], r[31]), (32, 0, 99));
    }
}
