//! The tuning database and the sweep's selection logic, without a GPU: concurrent writers, corrupt
//! and foreign files, an unwritable directory, export/import, a planted wrong-but-fast candidate, the
//! spread rule, and ops' default choices with and without an entry.

use rocmforge::gpu::Target;
use rocmforge::jit::tune::{self, Candidate, Failure, Measured, SweepBackend, TuneShape};
use rocmforge::jit::tunedb::{self, DeviceKey, Entry, TuneDb, TuneMode};
use rocmforge::ops::mlp::qgemm;
use rocmforge::ops::quantized::gemv::GemvConfig;
use rocmforge::quant::QuantType;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

fn key(device: &str, compiler: &str) -> DeviceKey {
    DeviceKey {
        device: device.into(),
        target: "gfx90a:sramecc+:xnack-".into(),
        driver: "60443484".into(),
        compiler: compiler.into(),
        crate_version: env!("CARGO_PKG_VERSION").into(),
    }
}

fn entry(cfg: &[(&str, &str)], is_default: bool) -> Entry {
    Entry {
        config: cfg
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        shape: "4096x4096".into(),
        is_default,
        default_ms: 1.0,
        best_ms: 0.5,
        spread_ms: 0.01,
        date: tunedb::today(),
    }
}

const CHILD_DIR: &str = "ROCMFORGE_TEST_TUNE_CHILD_DIR";
const CHILD_ID: &str = "ROCMFORGE_TEST_TUNE_CHILD_ID";
const PER_WRITER: usize = 6;

/// Body of one writer process (a no-op unless spawned by `concurrent_writers_keep_every_entry`).
#[test]
fn writer_child() {
    let (Some(dir), Ok(id)) = (std::env::var_os(CHILD_DIR), std::env::var(CHILD_ID)) else {
        return;
    };
    let mut db = TuneDb::open_in(Some(PathBuf::from(dir)), key("MI210", "hipRTC 6.4"));
    for i in 0..PER_WRITER {
        db.insert(
            "gemv",
            &format!("w{id}.e{i}"),
            entry(&[("rows", "4")], false),
        );
        assert!(db.save().unwrap(), "save must reach the disk");
    }
}

#[test]
fn concurrent_writers_keep_every_entry() {
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let kids: Vec<_> = (0..8)
        .map(|id| {
            std::process::Command::new(&exe)
                .args(["writer_child", "--exact", "--test-threads=1"])
                .env(CHILD_DIR, d.path())
                .env(CHILD_ID, id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success(), "a writer process failed");
    }
    let db = TuneDb::open_in(Some(d.path().into()), key("MI210", "hipRTC 6.4"));
    assert_eq!(
        db.len(),
        8 * PER_WRITER,
        "entries lost: {:?}",
        db.entries().keys()
    );
    for id in 0..8 {
        for i in 0..PER_WRITER {
            assert!(
                db.get("gemv", &format!("w{id}.e{i}")).is_some(),
                "w{id}.e{i} missing"
            );
        }
    }
}

#[test]
fn corrupt_file_is_ignored_then_rewritten() {
    let d = tempfile::tempdir().unwrap();
    let k = key("MI210", "hipRTC 6.4");
    let mut db = TuneDb::open_in(Some(d.path().into()), k.clone());
    db.insert("gemv", "q4_0.f16.b1", entry(&[("rows", "4")], false));
    assert!(db.save().unwrap());
    let path = db.path().unwrap();
    // flip one digit inside the body: valid JSON, wrong checksum
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replacen("\"4\"", "\"2\"", 1);
    assert_ne!(text, bad);
    std::fs::write(&path, bad).unwrap();
    assert!(
        TuneDb::open_in(Some(d.path().into()), k.clone()).is_empty(),
        "checksum must be checked"
    );
    // not JSON at all
    std::fs::write(&path, b"\x00garbage{").unwrap();
    let mut db = TuneDb::open_in(Some(d.path().into()), k.clone());
    assert!(db.is_empty());
    db.insert("gemv", "q8_0.f16.b1", entry(&[("rows", "8")], false));
    assert!(
        db.save().unwrap(),
        "a corrupt file is replaced by the next write"
    );
    let db = TuneDb::open_in(Some(d.path().into()), k);
    assert_eq!(db.len(), 1);
    assert_eq!(db.get("gemv", "q8_0.f16.b1").unwrap().config["rows"], "8");
}

#[test]
fn unwritable_directory_keeps_the_database_in_memory() {
    let d = tempfile::tempdir().unwrap();
    // a directory under a regular file cannot be created (works as root too, unlike chmod)
    let file = d.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let mut db = TuneDb::open_in(Some(file.join("tune")), key("MI210", "hipRTC 6.4"));
    db.insert("gemv", "q4_0.f16.b1", entry(&[("rows", "4")], false));
    assert!(
        !db.save().unwrap(),
        "save must report it stayed in memory, not fail"
    );
    assert!(db.degraded().is_some());
    assert_eq!(db.get("gemv", "q4_0.f16.b1").unwrap().config["rows"], "4");
}

#[test]
fn database_of_another_device_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let mine = key("MI210", "hipRTC 6.4");
    let mut db = TuneDb::open_in(Some(d.path().into()), mine.clone());
    db.insert("gemv", "q4_0.f16.b1", entry(&[("rows", "4")], false));
    assert!(db.save().unwrap());
    // same file name (device and target), another compiler: ignored
    let other_compiler = key("MI210", "hipRTC 5.2");
    assert_eq!(other_compiler.file_name(), mine.file_name());
    assert!(TuneDb::open_in(Some(d.path().into()), other_compiler.clone()).is_empty());
    // a file of another device planted under our name: ignored too
    let other_dev = key("MI250X", "hipRTC 6.4");
    let mut theirs = TuneDb::open_in(Some(d.path().into()), other_dev.clone());
    theirs.insert("gemv", "q8_0.f16.b1", entry(&[("rows", "8")], false));
    assert!(theirs.save().unwrap());
    std::fs::copy(theirs.path().unwrap(), db.path().unwrap()).unwrap();
    assert!(TuneDb::open_in(Some(d.path().into()), mine.clone()).is_empty());
    // and our next write replaces it with ours only
    let mut db = TuneDb::open_in(Some(d.path().into()), mine.clone());
    db.insert("gemv", "q4_0.f16.b1", entry(&[("rows", "4")], false));
    assert!(db.save().unwrap());
    let db = TuneDb::open_in(Some(d.path().into()), mine);
    assert_eq!(
        db.entries().keys().cloned().collect::<Vec<_>>(),
        ["gemv/q4_0.f16.b1"]
    );
}

#[test]
fn export_import_round_trip_and_foreign_refusal() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let k = key("MI210", "hipRTC 6.4");
    let mut src = TuneDb::open_in(Some(a.path().into()), k.clone());
    src.insert("gemv", "q4_0.f16.b1", entry(&[("rows", "4")], false));
    src.insert(
        "qgemm",
        "mfma.m128",
        entry(
            &[("bm", "64"), ("bn", "64"), ("warps", "4"), ("bk", "64")],
            false,
        ),
    );
    let file = a.path().join("export.json");
    assert_eq!(src.export(&file).unwrap(), 2);
    let mut dst = TuneDb::open_in(Some(b.path().into()), k.clone());
    assert_eq!(dst.import(&file).unwrap(), 2);
    assert!(dst.save().unwrap());
    let back = TuneDb::open_in(Some(b.path().into()), k);
    assert_eq!(back.entries(), src.entries());
    // another device's export is refused, naming the difference
    let mut other = TuneDb::open_in(Some(b.path().into()), key("MI300X", "hipRTC 6.4"));
    let e = other.import(&file).unwrap_err().to_string();
    assert!(e.contains("another device") && e.contains("MI300X"), "{e}");
    assert!(other.is_empty());
    // a corrupt export is refused too
    std::fs::write(&file, b"{}").unwrap();
    assert!(TuneDb::open_in(None, key("MI210", "hipRTC 6.4"))
        .import(&file)
        .is_err());
}

/// A fake device: each candidate label maps to (median ms, spread ms, max error); `bad-compile`
/// fails to compile. Records the order of calls so the test can see compile and measure interleave.
struct Fake {
    runs: BTreeMap<String, (f64, f64, f64)>,
    log: Mutex<Vec<String>>,
}

impl SweepBackend for Fake {
    fn compile(&self, _: &TuneShape, cands: &[Candidate]) -> Vec<Result<(), Failure>> {
        cands
            .iter()
            .map(|c| {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("compile {}", c.label));
                if c.label == "bad-compile" {
                    Err(Failure::Compile("error: expected ';'".into()))
                } else {
                    Ok(())
                }
            })
            .collect()
    }
    fn measure(&self, _: &TuneShape, c: &Candidate) -> Result<Measured, Failure> {
        self.log
            .lock()
            .unwrap()
            .push(format!("measure {}", c.label));
        let (ms, spread, err) = self.runs[&c.label];
        Ok(Measured {
            median_ms: ms,
            spread_ms: spread,
            max_err: err,
            tol: 1e-2,
        })
    }
}

fn cand(label: &str) -> Candidate {
    Candidate {
        label: label.into(),
        params: [("rows".to_string(), label.to_string())].into(),
    }
}

fn shape() -> TuneShape {
    TuneShape {
        family: "gemv".into(),
        bucket: "q4_0.f16.b1".into(),
        label: "q4_0 f16 b1 4096x4096".into(),
    }
}

fn run_fake(runs: &[(&str, f64, f64, f64)]) -> tune::ShapeResult {
    let fake = Fake {
        runs: runs
            .iter()
            .map(|&(l, a, b, c)| (l.to_string(), (a, b, c)))
            .collect(),
        log: Mutex::new(Vec::new()),
    };
    let cands: Vec<Candidate> = runs.iter().map(|r| cand(r.0)).collect();
    let seen = Mutex::new(0usize);
    let r = tune::sweep(&fake, &shape(), &cands, 0, &|_| *seen.lock().unwrap() += 1);
    assert_eq!(
        *seen.lock().unwrap(),
        cands.len(),
        "progress once per candidate"
    );
    r
}

#[test]
fn wrong_but_fast_candidate_never_wins() {
    // "fast-wrong" is 10× faster than anything but its output is off by 0.5 (tolerance 1e-2)
    let r = run_fake(&[
        ("default", 1.0, 0.01, 1e-4),
        ("fast-wrong", 0.1, 0.001, 0.5),
        ("nan", 0.05, 0.0, f64::NAN),
        ("bad-compile", 0.01, 0.0, 0.0),
        ("good", 0.8, 0.01, 1e-3),
    ]);
    assert_eq!(
        r.winner,
        Some(4),
        "the fastest *correct* candidate wins: {r:?}"
    );
    assert!(matches!(
        r.outcomes[1].result,
        Err(Failure::Mismatch { .. })
    ));
    assert!(matches!(
        r.outcomes[2].result,
        Err(Failure::Mismatch { .. })
    ));
    assert!(matches!(r.outcomes[3].result, Err(Failure::Compile(_))));
    let e = r.entry().unwrap();
    assert_eq!(e.config["rows"], "good");
    assert!(!e.is_default);
    assert!((r.speedup().unwrap() - 1.25).abs() < 1e-9);
    // with no other correct candidate, the default stays
    let r = run_fake(&[
        ("default", 1.0, 0.01, 1e-4),
        ("fast-wrong", 0.1, 0.001, 0.5),
    ]);
    assert_eq!(r.winner, None);
    assert!(r.entry().unwrap().is_default);
    // a default that fails itself gives no entry at all
    let r = run_fake(&[("default", 1.0, 0.01, 0.5), ("good", 0.5, 0.01, 0.0)]);
    assert_eq!((r.winner, r.entry()), (None, None));
}

#[test]
fn winner_within_the_spread_keeps_the_default() {
    // 0.97 vs 1.0 with a spread of 0.05: noise, not a win
    let r = run_fake(&[("default", 1.0, 0.05, 0.0), ("slightly", 0.97, 0.01, 0.0)]);
    assert_eq!(r.winner, None);
    // the candidate's own spread counts too
    let r = run_fake(&[("default", 1.0, 0.01, 0.0), ("noisy", 0.9, 0.2, 0.0)]);
    assert_eq!(r.winner, None);
    // beyond the spread it wins
    let r = run_fake(&[("default", 1.0, 0.05, 0.0), ("clear", 0.9, 0.01, 0.0)]);
    assert_eq!(r.winner, Some(1));
    let mut db = TuneDb::open_in(None, key("MI210", "hipRTC 6.4"));
    assert!(r.record(&mut db));
    assert_eq!(
        db.get("gemv", "q4_0.f16.b1").unwrap().config["rows"],
        "clear"
    );
    // median/spread helper
    let (m, s) = tune::median_spread(&mut [5.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m, 3.0);
    assert!(s > 0.0);
}

#[test]
fn ops_default_changes_only_with_an_entry() {
    if TuneMode::current() == TuneMode::Off {
        eprintln!("ROCMFORGE_TUNE=off: database lookups are disabled, nothing to check");
        return;
    }
    let sm90 = Target::named("sm_90").unwrap();
    let rows = |ty, b| GemvConfig::default_for(ty, "f16", b, &sm90).rows;
    tunedb::uninstall(&sm90.full_name());
    let mut empty = TuneDb::open_in(None, DeviceKey::new(&sm90, "test"));
    empty.insert("gemv", "q8_0.f16.b3", entry(&[("rows", "16")], false));
    tunedb::install(empty);
    let before = (
        rows(QuantType::Q4_0, 1),
        rows(QuantType::Q8_0, 1),
        rows(QuantType::Q4_0, 8),
    );
    assert_eq!(
        before,
        (8, 8, 16),
        "built-in defaults with no entry for these buckets"
    );
    let tile_before = (
        qgemm::default_tile("mma", 100),
        qgemm::default_tile("mma", 8),
    );
    assert_eq!(tile_before, ((64, 64, 8, 256), (16, 32, 8, 256)));

    let mut db = TuneDb::open_in(None, DeviceKey::new(&sm90, "test"));
    db.insert(
        "gemv",
        &tunedb::gemv_bucket("q4_0", "f16", 1),
        entry(&[("rows", "4")], false),
    );
    db.insert(
        "gemv",
        &tunedb::gemv_bucket("q4_0", "f16", 8),
        entry(&[("rows", "2")], false),
    );
    // an entry that kept the default, and one that is no longer a valid candidate: both ignored
    db.insert(
        "gemv",
        &tunedb::gemv_bucket("q8_0", "f16", 1),
        entry(&[("rows", "4")], true),
    );
    db.insert(
        "gemv",
        &tunedb::gemv_bucket("q6_K", "f16", 1),
        entry(&[("rows", "2")], false),
    );
    db.insert(
        "qgemm",
        &tunedb::qgemm_bucket("mma", 100),
        entry(
            &[("bm", "128"), ("bn", "128"), ("warps", "8"), ("bk", "64")],
            false,
        ),
    );
    // dequantize + BLAS won the 9-16 row bucket
    db.insert(
        "qgemm",
        &tunedb::qgemm_bucket("mma", 16),
        entry(&[("path", "blas")], false),
    );
    tunedb::install(db);
    assert_eq!(tunedb::linear_blas("mma", 16), Some(true), "BLAS won");
    assert_eq!(tunedb::linear_blas("mma", 100), Some(false), "a tile won");
    assert_eq!(tunedb::linear_blas("mma", 300), None, "no entry");
    assert_eq!(rows(QuantType::Q4_0, 1), 4, "tuned entry used");
    assert_eq!(rows(QuantType::Q4_0, 8), 2, "tuned entry used");
    assert_eq!(
        rows(QuantType::Q8_0, 1),
        8,
        "is_default entry keeps the built-in default"
    );
    assert_eq!(rows(QuantType::Q6_K, 1), 8, "invalid tuned rows ignored");
    assert_eq!(rows(QuantType::Q4_0, 2), 16, "other bucket unchanged");
    let sm80 = Target::named("sm_80").unwrap();
    assert_eq!(
        GemvConfig::default_for(QuantType::Q4_0, "f16", 1, &sm80).rows,
        8,
        "other target unchanged"
    );
    assert_eq!(
        qgemm::default_tile("mma", 100),
        (128, 128, 8, 64),
        "tuned tile used"
    );
    assert_eq!(
        qgemm::default_tile("mma", 8),
        (16, 32, 8, 256),
        "other M regime unchanged"
    );
    assert_eq!(
        qgemm::default_tile("simt", 100),
        (64, 64, 4, 64),
        "other path unchanged"
    );
    tunedb::uninstall(&sm90.full_name());
    assert_eq!(
        qgemm::default_tile("mma", 100),
        (64, 64, 8, 256),
        "default back without the entry"
    );
}

#[test]
fn lookup_is_fast() {
    if TuneMode::current() == TuneMode::Off {
        return;
    }
    // a target no other test uses
    let t = Target::named("sm_86").unwrap();
    let mut db = TuneDb::open_in(None, DeviceKey::new(&t, "test"));
    for b in 1..=8 {
        db.insert(
            "gemv",
            &tunedb::gemv_bucket("q4_K", "f16", b),
            entry(&[("rows", "4")], false),
        );
    }
    tunedb::install(db);
    let n = 200_000;
    let t0 = std::time::Instant::now();
    let mut hits = 0;
    for i in 0..n {
        hits += usize::from(tunedb::gemv_rows(&t, "q4_K", "f16", 1 + i % 8) == Some(4));
    }
    let per = t0.elapsed().as_secs_f64() / n as f64 * 1e9;
    eprintln!("tuning database lookup: {per:.0} ns");
    assert_eq!(hits, n);
    // the target is ≤ 1 µs; the bound is loose for a loaded CI machine and debug builds
    assert!(per < 10_000.0, "lookup took {per:.0} ns");
    tunedb::uninstall(&t.full_name());
}

#[test]
fn mode_parses() {
    assert_eq!(TuneMode::parse(None).unwrap(), TuneMode::ReadOnly);
    assert_eq!(TuneMode::parse(Some("off")).unwrap(), TuneMode::Off);
    assert_eq!(TuneMode::parse(Some("on")).unwrap(), TuneMode::On);
    assert_eq!(
        TuneMode::parse(Some("readonly")).unwrap(),
        TuneMode::ReadOnly
    );
    assert!(TuneMode::parse(Some("yes please")).is_err());
}

fn cli() -> std::process::Command {
    let bin = std::env::var("ROCMFORGE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_rocmforge").to_string());
    let mut c = std::process::Command::new(bin);
    c.env_remove("ROCMFORGE_TUNE");
    c
}

fn has_gpu() -> bool {
    rocmforge::gpu::Device::open().is_ok()
}

#[test]
fn cli_tune_without_gpu_is_one_clear_line() {
    if has_gpu() {
        eprintln!("a GPU is present: `tune` would sweep; checked on machines without one");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["tune", "--family", "gemv"])
        .env("ROCMFORGE_CACHE_DIR", d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no GPU: tuning measures kernels on the device"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn cli_export_import_round_trip_and_refusal() {
    if has_gpu() {
        eprintln!("a GPU is present: export/import use its key; checked on machines without one");
        return;
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let k = key("MI210", "hipRTC 6.4");
    let mut db = TuneDb::open_in(Some(a.path().join("tune")), k.clone());
    db.insert("gemv", "q4_0.f16.b1", entry(&[("rows", "4")], false));
    assert!(db.save().unwrap());
    let file = a.path().join("fleet.json");
    let out = cli()
        .args(["tune", "export"])
        .arg(&file)
        .env("ROCMFORGE_CACHE_DIR", a.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli()
        .args(["tune", "import"])
        .arg(&file)
        .env("ROCMFORGE_CACHE_DIR", b.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = TuneDb::open_in(Some(b.path().join("tune")), k.clone());
    assert_eq!(back.entries(), db.entries());
    // a machine whose database under that name has another compiler refuses the import
    let c = tempfile::tempdir().unwrap();
    let mut other = TuneDb::open_in(Some(c.path().join("tune")), key("MI210", "hipRTC 5.2"));
    other.insert("gemv", "q8_0.f16.b1", entry(&[("rows", "8")], false));
    assert!(other.save().unwrap());
    let out = cli()
        .args(["tune", "import"])
        .arg(&file)
        .env("ROCMFORGE_CACHE_DIR", c.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("another device key"),
        "{err}"
    );
    let kept = TuneDb::open_in(Some(c.path().join("tune")), key("MI210", "hipRTC 5.2"));
    assert_eq!(kept.len(), 1, "the local database is untouched");
}

/// Measured times are arbitrary f64 values: a saved database must read back with its checksum intact
/// (it once did not: JSON float parsing that is not round-trip exact changed the re-serialized body).
#[test]
fn measured_floats_survive_save_and_reload() {
    let d = tempfile::tempdir().unwrap();
    let k = key("NVIDIA H200", "NVRTC 13.0");
    let mut db = TuneDb::open_in(Some(d.path().into()), k.clone());
    let mut x = 0.0085123456789f64;
    for i in 0..200 {
        let mut e = entry(&[("rows", "4")], i % 3 == 0);
        x = (x * 1.618_033_988_749_895 + 1.0 / 3.0).fract() * 0.37;
        e.default_ms = x;
        e.best_ms = x * std::f64::consts::FRAC_1_SQRT_2;
        e.spread_ms = x / 97.0;
        db.insert("gemv", &format!("q4_0.f16.b{i}"), e);
    }
    assert!(db.save().unwrap());
    let back = TuneDb::open_in(Some(d.path().into()), k);
    assert_eq!(back.len(), 200, "the saved database was rejected on reload");
}
