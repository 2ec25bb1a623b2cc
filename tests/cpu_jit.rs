//! The JIT and its disk cache, with the real run-time compilers and no GPU. Serial: one test sets
//! ROCMFORGE_TEMPLATE_DIR, which every render in the process reads.

mod common;

use common::*;
use rocmforge::gpu::{codeobj, Target};
use rocmforge::jit::{cache, DiskCache, Jit, KernelSpec, Origin};
use rocmforge::ops::smoke;
use rocmforge::Error;
use std::process::Command;

fn jit_in(dir: &std::path::Path) -> Jit {
    Jit::new(DiskCache::new(
        Some(dir.to_path_buf()),
        cache::DEFAULT_MAX_BYTES,
    ))
}

#[test]
#[serial_test::serial]
fn compiles_through_the_cache_and_detects_corruption() {
    for t in available_targets() {
        let dir = tempfile::tempdir().unwrap();
        let jit = jit_in(dir.path());
        let spec = smoke::spec("block_reduce", "bf16", 256, t.wave_size).unwrap();
        let first = jit.compile(&spec, &t).unwrap();
        assert_eq!(first.origin, Origin::Compiled);
        let res = codeobj::resources(&first.image).unwrap();
        let k = res
            .iter()
            .find(|k| k.name == spec.symbol())
            .expect("kernel in code object");
        assert!(
            k.vgprs > 0 && k.shared_bytes >= 4 * 256 / t.wave_size,
            "{k:?}"
        );
        assert!(!k.spills(), "{k:?}");
        let second = jit.compile(&spec, &t).unwrap();
        assert_eq!((second.origin, &second.image), (Origin::Disk, &first.image));

        let path = jit
            .disk()
            .path_of(spec.uri(), &t.full_name(), &first.key)
            .unwrap();
        // byte-flipped entry: detected, recompiled, same code object
        let mut data = std::fs::read(&path).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
        std::fs::write(&path, &data).unwrap();
        let third = jit.compile(&spec, &t).unwrap();
        assert_eq!(
            (third.origin, &third.image),
            (Origin::Compiled, &first.image)
        );
        // truncated entry: likewise
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..data.len() * 2 / 3]).unwrap();
        let fourth = jit.compile(&spec, &t).unwrap();
        assert_eq!(
            (fourth.origin, &fourth.image),
            (Origin::Compiled, &first.image)
        );
        assert_eq!(jit.disk().verify_all(), (1, 0));
    }
}

#[test]
#[serial_test::serial]
fn unwritable_cache_dir_still_compiles() {
    let t = available_targets().remove(0);
    // /proc refuses new directories even to root, so this holds however the tests are run.
    let jit = jit_in(std::path::Path::new("/proc/rocmforge-test-cache"));
    let spec = smoke::spec("axpy", "f32", 128, t.wave_size).unwrap();
    let c = jit.compile(&spec, &t).unwrap();
    assert_eq!(c.origin, Origin::Compiled);
    assert!(jit.disk().disabled_reason().is_some());
    assert_eq!(jit.compile(&spec, &t).unwrap().origin, Origin::Compiled);
    // A regular file where the cache directory should be: same degradation.
    let f = tempfile::NamedTempFile::new().unwrap();
    let jit = jit_in(&f.path().join("sub"));
    assert_eq!(jit.compile(&spec, &t).unwrap().origin, Origin::Compiled);
}

#[test]
#[serial_test::serial]
fn eviction_keeps_the_store_under_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let bound = 40_000u64;
    let disk = DiskCache::new(Some(dir.path().to_path_buf()), bound);
    for i in 0..30 {
        let code = vec![i as u8; 3000];
        disk.get_or_compile(
            &format!("fake.k{i}.w32"),
            "sm_90",
            &format!("{i:064x}"),
            "test",
            || Ok(code),
        )
        .unwrap();
        assert!(
            disk.total_bytes() <= bound,
            "store {} over bound {bound} after entry {i}",
            disk.total_bytes()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // the newest entry survives, the oldest is gone
    let (code, o) = disk
        .get_or_compile(
            "fake.k29.w32",
            "sm_90",
            &format!("{:064x}", 29),
            "test",
            || Ok(vec![]),
        )
        .unwrap();
    assert_eq!((o, code.len()), (Origin::Disk, 3000));
    let (_, o) = disk
        .get_or_compile(
            "fake.k0.w32",
            "sm_90",
            &format!("{:064x}", 0),
            "test",
            || Ok(vec![0; 3000]),
        )
        .unwrap();
    assert_eq!(o, Origin::Compiled);
}

#[test]
#[serial_test::serial]
fn eight_processes_compile_one_entry() {
    let t = available_targets().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let uri = smoke::spec("block_reduce", "f16", 512, t.wave_size)
        .unwrap()
        .uri()
        .to_string();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(cli_bin())
                .args(["compile", "--target", &t.full_name(), "--kernel", &uri])
                .env("ROCMFORGE_CACHE_DIR", dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn rocmforge")
        })
        .collect();
    let mut compiled = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let row = text
            .lines()
            .find(|l| l.starts_with(&t.full_name()))
            .expect("summary row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], "1", "{row}");
        compiled += cols[2].parse::<u32>().unwrap();
    }
    assert_eq!(
        compiled, 1,
        "exactly one process compiles; the others wait and load its entry"
    );
    let disk = DiskCache::new(Some(dir.path().to_path_buf()), cache::DEFAULT_MAX_BYTES);
    let list = disk.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].ok);
}

#[test]
#[serial_test::serial]
fn bad_targets_and_specs_are_clear_errors() {
    assert!(matches!(Target::named("gfx90z"), Err(Error::BadTarget(_))));
    assert!(matches!(Target::named("rtx4090"), Err(Error::BadTarget(_))));
    let t = available_targets().remove(0);
    let jit = jit_in(tempfile::tempdir().unwrap().path());
    // wave size that the target does not run
    let wrong = smoke::spec("axpy", "f32", 256, if t.wave_size == 32 { 64 } else { 32 }).unwrap();
    let e = jit.compile(&wrong, &t).unwrap_err().to_string();
    assert!(e.contains("wave size"), "{e}");
    let e = KernelSpec::from_strings(&smoke::FAMILY, &[("kind".into(), "axpy".into())], 32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing parameter `dtype`") && e.contains("f32, f16, bf16"),
        "{e}"
    );
}

#[test]
#[serial_test::serial]
fn template_override_and_compile_error_report() {
    let t = available_targets().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let body = rocmforge::jit::template::template_text("smoke.hip").unwrap();
    let broken = body.replacen("y[i] = rf_from_f32<T>", "y[i] = rf_from_f32_typo<T>", 1);
    std::fs::write(dir.path().join("smoke.hip"), broken).unwrap();
    std::env::set_var("ROCMFORGE_TEMPLATE_DIR", dir.path());
    let jit = jit_in(&dir.path().join("cache"));
    let spec = smoke::spec("axpy", "f32", 256, t.wave_size).unwrap();
    let r = jit.compile(&spec, &t);
    std::env::remove_var("ROCMFORGE_TEMPLATE_DIR");
    match r {
        Err(Error::Compile {
            uri,
            log,
            excerpt,
            options,
            ..
        }) => {
            assert_eq!(uri, spec.uri());
            assert!(log.contains("rf_from_f32_typo"), "{log}");
            assert!(
                excerpt.contains("rf_from_f32_typo") && excerpt.contains('>'),
                "{excerpt}"
            );
            assert!(!options.is_empty());
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    // and with the override gone the embedded template compiles
    assert!(jit.compile(&spec, &t).is_ok());
}

#[test]
#[serial_test::serial]
fn every_registered_instance_renders_for_every_target() {
    for name in [
        "gfx90a", "gfx1030", "gfx1100", "gfx1200", "gfx942", "gfx950", "sm_80", "sm_90",
    ] {
        let t = Target::named(name).unwrap();
        for fam in rocmforge::ops::families() {
            for s in KernelSpec::enumerate(fam, t.wave_size)
                .into_iter()
                .filter(|s| (fam.applies)(s, &t))
            {
                let src = rocmforge::jit::template::render(&s, &t).unwrap();
                assert!(src.contains(&s.symbol()), "{}", s.uri());
            }
        }
    }
}

#[test]
#[serial_test::serial]
fn grouped_compile_gives_each_instance_its_kernel() {
    for t in available_targets() {
        let dir = tempfile::tempdir().unwrap();
        let jit = jit_in(dir.path());
        let work: Vec<(KernelSpec, Target)> = ["axpy", "wave_reduce", "block_reduce"]
            .iter()
            .flat_map(|k| ["f32", "bf16"].map(|d| smoke::spec(k, d, 128, t.wave_size).unwrap()))
            .map(|s| (s, t.clone()))
            .collect();
        let first = jit.compile_many(&work, || {});
        for ((s, _), r) in work.iter().zip(&first) {
            let c = r.as_ref().unwrap();
            assert_eq!(c.origin, Origin::Compiled, "{s}");
            let names: Vec<String> = codeobj::resources(&c.image)
                .unwrap()
                .into_iter()
                .map(|k| k.name)
                .collect();
            assert!(names.contains(&s.symbol()), "{s}: {names:?}");
        }
        // every instance now has its own verified entry, found by a single-instance lookup
        for (s, t) in &work {
            assert_eq!(jit.compile(s, t).unwrap().origin, Origin::Disk, "{s}");
        }
        assert_eq!(jit.disk().verify_all(), (work.len(), 0));
        // a group with one broken instance still compiles the others and names the broken one
        let bad = smoke::spec("axpy", "f16", 128, if t.wave_size == 32 { 64 } else { 32 }).unwrap();
        let mut mixed = work.clone();
        mixed.push((bad.clone(), t.clone()));
        let r = jit.compile_many(&mixed, || {});
        assert!(r[..work.len()].iter().all(|x| x.is_ok()));
        let e = r.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(e.contains(bad.uri()) && e.contains("wave size"), "{e}");
    }
}

/// Kernels may be launched as programmatic dependents of the previous kernel (Device::pdl on NVIDIA
/// sm_90+): each must wait for it before anything else, so every kernel of every instance template
/// starts with RF_KERNEL_PROLOGUE (or RF_KERNEL_PROLOGUE_PREFETCH, which prefetches data no kernel
/// writes before the same wait). A kernel without it could read its inputs before they are written.
#[test]
fn every_kernel_starts_with_the_prologue() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut kernels = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("inst") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, _) in text.match_indices("RF_GLOBAL") {
            let rest = &text[i..];
            // the body starts after the parameter list's ") {"
            let open = rest
                .find(") {\n")
                .unwrap_or_else(|| panic!("{}: no body", p.display()));
            let body = rest[open + 3..].trim_start();
            assert!(
                body.starts_with("RF_KERNEL_PROLOGUE();")
                    || body.starts_with("RF_KERNEL_PROLOGUE_PREFETCH("),
                "{}: a kernel does not start with RF_KERNEL_PROLOGUE[_PREFETCH]()",
                p.display()
            );
            kernels += 1;
        }
    }
    assert!(kernels >= 20, "only {kernels} kernels found");
    for prelude in ["prelude_cuda.h", "prelude_hip.h"] {
        let t = std::fs::read_to_string(dir.join(prelude)).unwrap();
        assert!(t.contains("#define RF_KERNEL_PROLOGUE()"), "{prelude}");
        assert!(
            t.contains("#define RF_KERNEL_PROLOGUE_PREFETCH(...)"),
            "{prelude}"
        );
    }
}
