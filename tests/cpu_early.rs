//! Serving while compiling, without a GPU: the deferred-compile state machine (stand-ins while
//! pending, landing, generation, waiting), the stand-in table against real model plans, and a
//! deferred compile through the JIT with the real run-time compilers.

mod common;

use common::*;
use rocmforge::gguf::GgufFile;
use rocmforge::gpu::{codeobj, Target};
use rocmforge::jit::early::SlotState;
use rocmforge::jit::{cache, Deferred, DiskCache, Jit, KernelSpec};
use rocmforge::model::config::ModelConfig;
use rocmforge::model::engine::EngineLimits;
use rocmforge::model::gpu::plan_specs;
use rocmforge::model::warmup;
use rocmforge::ops::fallback::fallback;
use rocmforge::ops::mlp::qgemm;
use rocmforge::ops::quantized::gemv;
use rocmforge::quant::QuantType;
use std::time::Duration;

fn sm90() -> Target {
    Target::named("sm_90").unwrap()
}

fn mma_and_simt() -> (KernelSpec, KernelSpec) {
    let t = sm90();
    let s = qgemm::spec(QuantType::Q8_0, &t, Some("mma"), (16, 32, 8, 256)).unwrap();
    let fb = fallback(&s, &t).unwrap().expect("qgemm mma has a stand-in");
    (s, fb)
}

#[test]
fn pending_instances_stand_in_until_taken() {
    let d = Deferred::default();
    let (s, fb) = mma_and_simt();
    let t = "sm_90";
    assert_eq!(d.fallback(t, &s), None, "not deferred: no stand-in");
    d.register(t, &s, &fb).unwrap();
    assert_eq!(d.pending_for(t), 1);
    assert_eq!(d.pending_for("sm_80"), 0);
    assert_eq!(d.fallback(t, &s).as_ref(), Some(&fb));
    assert_eq!(
        d.fallback("sm_80", &s),
        None,
        "another target is not deferred"
    );
    assert_eq!(d.generation(), 0);
    assert_eq!(d.status().pending, 1);
    d.land(t, s.uri(), Ok(vec![1, 2, 3]));
    assert_eq!(d.generation(), 1, "a landing moves the generation");
    assert_eq!(d.pending_for(t), 0);
    // landed but not loaded: the stand-in stays until someone takes it (between steps)
    assert_eq!(d.fallback(t, &s).as_ref(), Some(&fb));
    let taken = d.take_ready(t);
    assert_eq!(taken, vec![(s.uri().to_string(), vec![1, 2, 3])]);
    assert!(d.take_ready(t).is_empty(), "taken once");
    assert_eq!(d.fallback(t, &s), None, "taken: the instance itself runs");
    let st = d.status();
    assert_eq!((st.pending, st.landed, st.failed), (0, 1, 0));
}

#[test]
fn a_failed_compile_keeps_the_stand_in_and_the_generation() {
    let d = Deferred::default();
    let (s, fb) = mma_and_simt();
    d.register("sm_90", &s, &fb).unwrap();
    d.land("sm_90", s.uri(), Err("ptxas: out of registers".into()));
    assert_eq!(d.generation(), 0, "nothing landed");
    assert_eq!(d.fallback("sm_90", &s).as_ref(), Some(&fb));
    assert!(matches!(
        d.state("sm_90", s.uri()),
        Some(SlotState::Failed(e)) if e.contains("registers")
    ));
    assert_eq!(
        d.take_or_wait("sm_90", s.uri()),
        None,
        "the caller compiles it itself"
    );
    assert_eq!(d.status().failed, 1);
}

#[test]
fn register_rejects_self_and_chained_stand_ins() {
    let d = Deferred::default();
    let (s, fb) = mma_and_simt();
    assert!(d.register("sm_90", &s, &s).is_err());
    d.register("sm_90", &fb, &s).unwrap();
    assert!(
        d.register("sm_90", &s, &fb).is_err(),
        "the stand-in is itself deferred"
    );
}

#[test]
fn a_lookup_of_a_pending_instance_waits_for_it() {
    let d = std::sync::Arc::new(Deferred::default());
    let (s, fb) = mma_and_simt();
    d.register("sm_90", &s, &fb).unwrap();
    let d2 = d.clone();
    let uri = s.uri().to_string();
    let t0 = std::time::Instant::now();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        d2.land("sm_90", &uri, Ok(vec![7]));
    });
    assert_eq!(d.take_or_wait("sm_90", s.uri()), Some(vec![7]));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    h.join().unwrap();
    d.wait_all(); // nothing pending: returns at once
    assert_eq!(d.fallback("sm_90", &s), None);
}

fn plans(target: &Target) -> Vec<(String, Vec<KernelSpec>)> {
    let mut files: Vec<std::path::PathBuf> = ["qwen2", "qwen3", "mistral"]
        .iter()
        .map(|a| format!("tests/data/tiny/{a}.gguf").into())
        .collect();
    // the real models, where tools/models.sh put them
    for m in [
        ".model/smollm2-135m-instruct-q4_1.gguf",
        ".model/gemma-3-270m-q4_k_m.gguf",
    ] {
        if std::path::Path::new(m).is_file() {
            files.push(m.into());
        }
    }
    files
        .iter()
        .map(|f| {
            let g = GgufFile::open(f).unwrap();
            let cfg = ModelConfig::from_gguf(&g).unwrap();
            let limits = EngineLimits {
                ctx_size: 256,
                page_size: 16,
                num_pages: 16,
                max_batch_tokens: 512,
                max_seqs: 1,
            };
            (
                f.display().to_string(),
                plan_specs(&cfg, &g, target, &limits).unwrap(),
            )
        })
        .collect()
}

#[test]
fn stand_ins_are_the_same_op_on_the_portable_path() {
    for name in ["sm_90", "gfx90a", "gfx1100"] {
        let t = Target::named(name).unwrap();
        for (file, specs) in plans(&t) {
            let mut with = 0;
            for s in &specs {
                let Some(fb) = fallback(s, &t).unwrap() else {
                    continue;
                };
                with += 1;
                assert_ne!(fb.uri(), s.uri());
                assert!((fb.family().applies)(&fb, &t), "{file}: {fb} on {t}");
                assert_eq!(fallback(&fb, &t).unwrap(), None, "{fb}: no chains");
                let same = |k: &str| assert_eq!(s.get(k), fb.get(k), "{s} vs {fb}: {k}");
                match s.family().name {
                    "qgemm" => {
                        same("wfmt");
                        assert_eq!(fb.str("path"), "simt");
                    }
                    "gemv" => {
                        same("format");
                        same("dtype");
                        assert_eq!(fb.family().name, "gemv_wave");
                        assert_eq!(s.int("batch"), 1, "gemv_wave stands in at batch 1");
                    }
                    f => panic!("unexpected stand-in for family {f}"),
                }
            }
            // every plan has its prefill GEMM on a matrix path
            assert!(with >= 1, "{file} on {t}: {with} instances with a stand-in");
        }
    }
}

#[test]
fn the_warmup_split_defers_only_what_is_missing() {
    let t = sm90();
    for (file, specs) in plans(&t) {
        let (now, later) = warmup::split(&specs, &t, |_| false).unwrap();
        assert!(!later.is_empty(), "{file}");
        for (s, fb) in &later {
            assert!(!now.contains(s), "{file}: {s} is deferred and warmed");
            assert!(now.contains(fb), "{file}: the stand-in {fb} is warmed");
        }
        for s in &specs {
            assert!(
                now.contains(s) || later.iter().any(|(d, _)| d == s),
                "{file}: {s} neither warmed nor deferred"
            );
        }
        // a warm cache defers nothing: exactly the plan is warmed
        let (now, later) = warmup::split(&specs, &t, |_| true).unwrap();
        assert!(later.is_empty());
        assert_eq!(now, specs);
    }
}

#[test]
fn group_size_spreads_instances_over_the_cores() {
    let cores = rayon::current_num_threads();
    assert_eq!(warmup::group_size(1), 1);
    assert_eq!(warmup::group_size(cores), 1);
    assert!(warmup::group_size(1000) <= rocmforge::jit::GROUP);
    assert!(warmup::group_size(3 * cores) >= 3.min(rocmforge::jit::GROUP));
}

#[test]
#[serial_test::serial]
fn a_deferred_compile_lands_through_the_jit() {
    for t in available_targets() {
        let dir = tempfile::tempdir().unwrap();
        let jit: &'static Jit = Box::leak(Box::new(Jit::new(DiskCache::new(
            Some(dir.path().to_path_buf()),
            cache::DEFAULT_MAX_BYTES,
        ))));
        let path = qgemm::path_for(&t);
        assert_ne!(path, "simt", "{t} has matrix cores");
        let s = qgemm::spec(QuantType::Q4_K, &t, Some(path), qgemm::tiles(path)[0]).unwrap();
        let fb = fallback(&s, &t).unwrap().unwrap();
        assert!(!jit.cached(&s, &t));
        let g0 = jit.generation();
        let h = jit.defer(&t, &[(s.clone(), fb.clone())], 1).unwrap();
        // pending or landed, not loaded: ops launch the stand-in
        assert_eq!(jit.substitute(&t, &s).as_ref(), Some(&fb));
        h.join().unwrap();
        jit.deferred().wait_all();
        assert_eq!(jit.generation(), g0 + 1, "{t}: one landing");
        assert!(
            jit.cached(&s, &t),
            "{t}: the landed instance reached the disk cache"
        );
        let image = jit
            .deferred()
            .take_or_wait(&t.full_name(), s.uri())
            .expect("landed code object");
        let names: Vec<String> = codeobj::resources(&image)
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert!(names.contains(&s.symbol()), "{t}: {names:?}");
        assert_eq!(
            jit.substitute(&t, &s),
            None,
            "{t}: taken, the instance runs"
        );
    }
}

#[test]
fn held_landings_are_not_handed_out() {
    let d = Deferred::default();
    let (s, fb) = mma_and_simt();
    d.register("sm_90", &s, &fb).unwrap();
    d.hold(true);
    d.land("sm_90", s.uri(), Ok(vec![5]));
    assert!(d.take_ready("sm_90").is_empty(), "held");
    assert_eq!(d.fallback("sm_90", &s).as_ref(), Some(&fb));
    let g = d.generation();
    d.hold(false);
    assert!(
        d.generation() > g,
        "releasing makes graph holders look again"
    );
    assert_eq!(d.take_ready("sm_90").len(), 1);
    assert_eq!(d.fallback("sm_90", &s), None);
}

#[test]
fn the_plan_uses_tuned_entries_and_reports_them() {
    use rocmforge::jit::tunedb::{self, DeviceKey, Entry, TuneDb, TuneMode};
    if TuneMode::current() == TuneMode::Off {
        eprintln!("ROCMFORGE_TUNE=off: database lookups are disabled, nothing to check");
        return;
    }
    // gfx1030 (no matrix cores): no other test here plants a database for it
    let t = Target::named("gfx1030").unwrap();
    let g = GgufFile::open("tests/data/tiny/qwen2.gguf").unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    let limits = EngineLimits {
        ctx_size: 256,
        page_size: 16,
        num_pages: 16,
        max_batch_tokens: 512,
        max_seqs: 1,
    };
    let fmt = g.tensor("blk.0.attn_q.weight").unwrap().ty();
    let bucket = tunedb::gemv_bucket(fmt.name(), "f16", 1);
    let mut db = TuneDb::open_in(None, DeviceKey::new(&t, "test"));
    db.insert(
        "gemv",
        &bucket,
        Entry {
            config: [("rows".to_string(), "4".to_string())].into(),
            shape: "64x64".into(),
            is_default: false,
            default_ms: 1.0,
            best_ms: 0.5,
            spread_ms: 0.01,
            date: tunedb::today(),
        },
    );
    tunedb::install(db);
    let specs = plan_specs(&cfg, &g, &t, &limits).unwrap();
    tunedb::uninstall(&t.full_name());
    let tuned = gemv::spec(fmt, "f16", 1, gemv::GemvConfig { rows: 4 }, t.wave_size).unwrap();
    assert!(specs.contains(&tuned), "the plan has the tuned {tuned}");
    let want = format!("gemv/{bucket}: rows=4");
    assert!(
        tunedb::used().contains(&want),
        "{want} not reported: {:?}",
        tunedb::used()
    );
    // the tuned gemv rows 4 compiles slowly: it is deferred behind gemv_wave
    let (_, later) = warmup::split(&specs, &t, |_| false).unwrap();
    assert!(later
        .iter()
        .any(|(s, fb)| s == &tuned && fb.family().name == "gemv_wave"));
}

#[test]
fn an_abandoned_instance_wakes_its_waiters() {
    let d = std::sync::Arc::new(Deferred::default());
    let (s, fb) = mma_and_simt();
    d.register("sm_90", &s, &fb).unwrap();
    let d2 = d.clone();
    let uri = s.uri().to_string();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        d2.abandon("sm_90", &uri, "panicked");
    });
    assert_eq!(d.take_or_wait("sm_90", s.uri()), None);
    d.wait_all();
    h.join().unwrap();
    assert_eq!(d.status().failed, 1);
    assert_eq!(d.fallback("sm_90", &s).as_ref(), Some(&fb));
    // landing after abandoning is harmless (and is not undone by a late abandon)
    d.land("sm_90", s.uri(), Ok(vec![1]));
    d.abandon("sm_90", s.uri(), "late");
    assert!(matches!(
        d.state("sm_90", s.uri()),
        Some(SlotState::Ready(_))
    ));
}

#[test]
fn the_table_is_idle_once_everything_is_taken() {
    let d = Deferred::default();
    assert!(d.is_idle());
    let (s, fb) = mma_and_simt();
    d.register("sm_90", &s, &fb).unwrap();
    assert!(!d.is_idle());
    d.land("sm_90", s.uri(), Ok(vec![1]));
    assert!(!d.is_idle(), "landed, not taken");
    d.take_ready("sm_90");
    assert!(d.is_idle());
    assert_eq!(d.fallback("sm_90", &s), None);
    // a failed instance keeps the table busy: its stand-in must keep answering
    d.register("sm_90", &s, &fb).unwrap();
    d.land("sm_90", s.uri(), Err("no".into()));
    assert!(!d.is_idle());
    assert_eq!(d.fallback("sm_90", &s).as_ref(), Some(&fb));
}
