//! The emulation of AMD targets on NVIDIA GPUs (issue 13), without a GPU: emulated target names and
//! their errors, the cache keys of emulated instances, the matrix-core layout mapping the emulation
//! renders (checked against AMD's calculator tables in tests/data/amd_layouts, read here
//! independently), and every registered instance compiling with NVRTC for every emulated target.

mod common;

use rand::{Rng, SeedableRng};
use rocmforge::gpu::{self, MatrixCores, Target, Vendor};
use rocmforge::jit::emulate::{self, MmaLayout};
use rocmforge::jit::{cache, Jit, KernelSpec};
use rocmforge::Error;
use serde_json::Value;
use std::path::PathBuf;

/// The four emulated targets of CI (gfx950 renders gfx942's tables).
const CI_TARGETS: [&str; 4] = [
    "gfx90a@sm_90",
    "gfx942@sm_90",
    "gfx1100@sm_90",
    "gfx1200@sm_90",
];

fn data(file: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/amd_layouts")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[test]
fn emulated_targets_render_as_amd_and_compile_for_the_host() {
    let t = Target::named("gfx942@sm_90").unwrap();
    assert_eq!(
        (t.vendor, t.wave_size, t.matrix_cores(), t.backend_vendor()),
        (Vendor::Amd, 64, MatrixCores::Mfma, Vendor::Nvidia)
    );
    assert_eq!(
        (t.full_name().as_str(), t.compile_arch(), t.shared_per_block),
        ("gfx942@sm_90", "sm_90", 65536)
    );
    // wave64 emulation: 15 waves of 64 per block at most (one named barrier each)
    assert_eq!(t.max_threads_per_block, 960);
    let s = rocmforge::ops::sampling::spec_for(&t, "f16", 262144).unwrap();
    assert_eq!(
        s.int("block"),
        512,
        "the largest argmax block under 960 threads"
    );
    let native =
        rocmforge::ops::sampling::spec_for(&Target::named("gfx942").unwrap(), "f16", 262144);
    assert_eq!(native.unwrap().int("block"), 1024);
    // launches the AMD target (or the emulation) could not run are refused with the reason
    assert_eq!(t.emulation_refuses_block([960, 1, 1]), None);
    let why = t.emulation_refuses_block([1024, 1, 1]).unwrap();
    assert!(
        why.contains("16 waves of 64") && why.contains("at most 15"),
        "{why}"
    );
    assert_eq!(t.emulation_refuses_shared(65536 + 4096), None);
    let why = t.emulation_refuses_shared(65536 + 8192).unwrap();
    assert!(why.contains("65536 bytes of LDS of gfx942"), "{why}");
    assert_eq!(
        Target::named("gfx942")
            .unwrap()
            .emulation_refuses_block([1024, 1, 1]),
        None
    );
    let t = Target::named("gfx1100@sm_80").unwrap();
    assert_eq!(t.max_threads_per_block, 1024);
    assert_eq!(t.emulation_refuses_block([1024, 1, 1]), None);
    assert_eq!((t.wave_size, t.matrix_cores()), (32, MatrixCores::Wmma));
    assert_eq!(Target::named("gfx1200@sm_90").unwrap().gfx_number(), 0x1200);
    assert_eq!(
        Target::named("gfx90a:sramecc+@sm_90").unwrap().full_name(),
        "gfx90a:sramecc+@sm_90"
    );
    // the plain targets are unchanged
    assert!(!Target::named("gfx942").unwrap().is_emulated());
    assert_eq!(Target::named("sm_90").unwrap().compile_arch(), "sm_90");
    for (bad, why) in [
        (
            "gfx1030@sm_90",
            "emulated targets: gfx90a, gfx942, gfx950, gfx1100, gfx1200",
        ),
        ("gfx942@gfx90a", "not an NVIDIA target"),
        ("sm_80@sm_90", "is not an AMD target"),
        ("gfx942@sm_60", "sm_70 or newer"),
        ("gfx942@sm_90@sm_90", "one AMD target @ one NVIDIA target"),
    ] {
        match Target::named(bad) {
            Err(e @ Error::BadEmulation { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains(why) && m.contains("cannot emulate"),
                    "{bad}: {m}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(
        Target::named("gfx942@cuda"),
        Err(Error::BadTarget(_))
    ));
}

#[test]
fn emulated_sources_differ_from_native_and_keep_the_amd_parameters() {
    let native = Target::named("gfx942").unwrap();
    let emu = Target::named("gfx942@sm_90").unwrap();
    let spec = rocmforge::ops::smoke::spec("wave_reduce", "f32", 256, 64).unwrap();
    let a = rocmforge::jit::template::render(&spec, &native).unwrap();
    let b = rocmforge::jit::template::render(&spec, &emu).unwrap();
    for s in [&a, &b] {
        assert!(s.contains("#define RF_WAVE 64") && s.contains("#define RF_MFMA 1"));
        assert!(s.contains("#define RF_GFX 0x942"));
    }
    assert!(!a.contains("RF_EMULATE") && b.contains("#define RF_EMULATE 1"));
    assert!(b.contains("rf_emu_mma<64, 16, 16, 16, 4, 4, 4, false, (cbsz) | (abid) | (blgp)>"));
    assert!(b.contains("prelude: AMD target emulated on an NVIDIA GPU"));
    // emulated instances have their own cache keys (source and target string differ)
    let ka = cache::cache_key(&a, &[], &native.full_name(), "x");
    let kb = cache::cache_key(&b, &[], &emu.full_name(), "x");
    assert_ne!(ka, kb);
}

/// Every table of every emulated arch: the packed tables the device code indexes, read back, give
/// for each (row, k) a lane/element that the calculator's table says holds A[row][k] (likewise B),
/// and for each lane/element of D the calculator's (row, col); then D = A B + C through the
/// emulation's own computation (the CPU mirror of rf_emu_mma) on seeded random inputs.
#[test]
fn emulated_layouts_match_the_calculator_tables() {
    let ix = data("index.json");
    let mut checked = 0;
    for arch in ["gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1200"] {
        let layouts = emulate::layouts(arch).unwrap();
        let want_tables: Vec<&Value> = ix["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["arch"] == emulate::table_arch(arch))
            .collect();
        assert_eq!(layouts.len(), want_tables.len(), "{arch}");
        assert!(layouts.len() >= 2, "{arch}: f16 and bf16 instructions");
        let rendered = emulate::render_tables(arch).unwrap();
        for (l, t) in layouts.iter().zip(&want_tables) {
            let table = data(t["file"].as_str().unwrap());
            assert_eq!(l.builtin, table["builtin"].as_str().unwrap());
            assert!(rendered.contains(&format!("#define {}(", l.builtin)));
            // holders of each element, straight from the calculator's slots
            let holders = |m: &str| -> std::collections::HashMap<(u64, u64), Vec<(u64, u64)>> {
                let mut h: std::collections::HashMap<(u64, u64), Vec<(u64, u64)>> =
                    Default::default();
                for s in table["matrices"][m]["slots"].as_array().unwrap() {
                    let v: Vec<u64> = s
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect();
                    h.entry((v[4], v[5])).or_default().push((v[0], v[1]));
                }
                h
            };
            let (ha, hb, hd) = (holders("A"), holders("B"), holders("D"));
            let ta = MmaLayout::packed_src(&l.a_src);
            for row in 0..l.m {
                for k in 0..l.k {
                    let p = ta[row * l.k + k];
                    let at = ((p >> 8) as u64, (p & 255) as u64);
                    assert!(
                        ha[&(row as u64, k as u64)].contains(&at),
                        "{arch} {} A",
                        l.builtin
                    );
                }
            }
            let tb = MmaLayout::packed_src(&l.b_src);
            for k in 0..l.k {
                for col in 0..l.n {
                    let p = tb[k * l.n + col];
                    let at = ((p >> 8) as u64, (p & 255) as u64);
                    assert!(
                        hb[&(k as u64, col as u64)].contains(&at),
                        "{arch} {} B",
                        l.builtin
                    );
                }
            }
            let td = l.packed_dst();
            for lane in 0..l.wave {
                for e in 0..l.vc {
                    let rc = td[lane * l.vc + e] as usize;
                    let (row, col) = ((rc / l.n) as u64, (rc % l.n) as u64);
                    assert_eq!(hd[&(row, col)], vec![(lane as u64, e as u64)], "{arch} D");
                }
            }
            // D = A B + C on random inputs, A/B/C placed per the calculator's slots
            let mut rng = rand::rngs::StdRng::seed_from_u64(13 + checked);
            let mut am = vec![vec![0f32; l.k]; l.m];
            let mut bm = vec![vec![0f32; l.n]; l.k];
            let mut cm = vec![vec![0f32; l.n]; l.m];
            am.iter_mut()
                .chain(bm.iter_mut())
                .chain(cm.iter_mut())
                .flatten()
                .for_each(|x| *x = rng.gen_range(-8i32..8) as f32);
            let place = |m: &str, vlen: usize, val: &dyn Fn(usize, usize) -> f32| {
                let mut lanes = vec![vec![f32::NAN; vlen]; l.wave];
                for s in table["matrices"][m]["slots"].as_array().unwrap() {
                    let v: Vec<usize> = s
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap() as usize)
                        .collect();
                    lanes[v[0]][v[1]] = val(v[4], v[5]);
                }
                lanes
            };
            let a = place("A", l.va, &|r, c| am[r][c]);
            let b = place("B", l.vb, &|r, c| bm[r][c]);
            let c = place("C", l.vc, &|r, c| cm[r][c]);
            let d = l.emulate(&a, &b, &c);
            for s in table["matrices"]["D"]["slots"].as_array().unwrap() {
                let v: Vec<usize> = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as usize)
                    .collect();
                let want: f32 =
                    (0..l.k).map(|k| am[v[4]][k] * bm[k][v[5]]).sum::<f32>() + cm[v[4]][v[5]];
                assert_eq!(
                    d[v[0]][v[1]], want,
                    "{arch} {} D[{}][{}]",
                    l.builtin, v[4], v[5]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} tables checked");
}

#[test]
fn emitted_device_tables_are_the_packed_layouts() {
    for arch in ["gfx90a", "gfx942", "gfx1100", "gfx1200"] {
        let rendered = emulate::render_tables(arch).unwrap();
        for (i, l) in emulate::layouts(arch).unwrap().iter().enumerate() {
            let read = |name: &str| -> Vec<u32> {
                let key = format!("rf_emu_t{i}_{name}[");
                let at = rendered.find(&key).unwrap();
                let body = &rendered[at..];
                let open = body.find('{').unwrap();
                let close = body.find('}').unwrap();
                body[open + 1..close]
                    .split(',')
                    .map(|x| x.trim().parse().unwrap())
                    .collect()
            };
            let widen16 = |v: Vec<u16>| v.into_iter().map(u32::from).collect::<Vec<_>>();
            assert_eq!(
                read("a"),
                widen16(MmaLayout::packed_src(&l.a_src)),
                "{arch}"
            );
            assert_eq!(
                read("b"),
                widen16(MmaLayout::packed_src(&l.b_src)),
                "{arch}"
            );
            assert_eq!(
                read("d"),
                l.packed_dst()
                    .into_iter()
                    .map(u32::from)
                    .collect::<Vec<_>>(),
                "{arch}"
            );
        }
    }
}

/// The CPU reference of the dot4 check kernel, on hand-computed cases of the ISA semantics.
#[test]
fn dot4_reference_has_the_isa_semantics() {
    use rocmforge::ops::mma_check::dot4_reference;
    // bytes 4, 3, 2, 1 (low first) times ones, plus 10
    assert_eq!(dot4_reference(0x01020304, 0x01010101, 10), [20, 20, 20, 20]);
    // signed bytes: -1 * -1 four times; unsigned: 255 * 255 four times; mixed: -1 * 255 four times
    assert_eq!(dot4_reference(-1, -1, 0), [4, 4, 260100, -1020]);
    let m = 0x80808080u32 as i32; // four bytes of -128 (128 unsigned)
    let [wrap, clamp, u, su] = dot4_reference(m, m, i32::MAX);
    assert_eq!(wrap, i32::MIN + 65535); // 65536 + MAX wraps
    assert_eq!(clamp, i32::MAX);
    assert_eq!(u as u32, 0x7fff_ffff + 65536); // no unsigned overflow
    assert_eq!(su, i32::MAX - 65536); // -128 * 128 four times
    let [_, clamp, u, _] = dot4_reference(-1, -1, -2);
    assert_eq!((clamp, u as u32), (2, u32::MAX)); // unsigned saturates
}

/// Emulated targets whose every instance the test below compiles: one per wave size and matrix-core
/// kind (CDNA's MFMA at wave 64, RDNA3's WMMA at wave 32). Their siblings (gfx90a, gfx1200) render the
/// same kernel text with their own builtin tables and matrix-core variants, so they compile every
/// family on a stride of [`SIBLING_STRIDE`] instances: every family, table and prelude path, at an
/// eighth of the time (the whole set took about 25 of CI's 50 minutes on a 2-core host).
const EVERY_INSTANCE: [&str; 2] = ["gfx942@sm_90", "gfx1100@sm_90"];
const SIBLING_STRIDE: usize = 8;

/// `rocmforge compile --all` for the emulated targets, through the library: every registered
/// instance renders as for its AMD target and compiles with NVRTC and the emulation prelude
/// ([`EVERY_INSTANCE`]; the sibling targets a stride of each family).
#[test]
fn every_instance_compiles_for_every_emulated_target() {
    let nvrtc = match gpu::compiler(Vendor::Nvidia) {
        Ok(c) => c,
        Err(e) => panic!("NVRTC is needed (bash tools/setup.sh): {e}"),
    };
    // the process-wide JIT and its disk cache (ROCMFORGE_CACHE_DIR): CI starts from an empty one
    let jit = Jit::global();
    let mut work = Vec::new();
    for name in CI_TARGETS {
        let t = Target::named(name).unwrap();
        nvrtc.check_target(&t).unwrap();
        let n0 = work.len();
        let stride = if EVERY_INSTANCE.contains(&name) {
            1
        } else {
            SIBLING_STRIDE
        };
        for fam in rocmforge::ops::families() {
            for s in KernelSpec::enumerate(fam, t.wave_size)
                .into_iter()
                .filter(|s| (fam.applies)(s, &t))
                .step_by(stride)
            {
                work.push((s, t.clone()));
            }
        }
        assert!(
            work.len() - n0 > 50,
            "{name}: {} instances",
            work.len() - n0
        );
    }
    let results = jit.compile_many(&work, || {});
    let failed: Vec<String> = work
        .iter()
        .zip(&results)
        .filter_map(|((s, t), r)| r.as_ref().err().map(|e| format!("{s} [{t}]: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} emulated instances failed:\n{}",
        failed.len(),
        work.len(),
        failed
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Cross-lane intrinsics and other AMD builtins live in the preludes (which the emulation replaces),
/// never in a kernel template: a template using one directly would run unemulated (or not compile)
/// on an emulated target. The matrix-core builtins are the exception: the templates call them under
/// RF_MFMA / RF_WMMA, and prelude_emu.h's tables define each of them (tests/cpu_amd_layouts.rs lists
/// them). NVIDIA-only inline PTX stays behind RF_MMA_SYNC / RF_NVIDIA, which emulation never defines.
#[test]
fn no_lane_intrinsics_in_templates_outside_the_preludes() {
    const FORBIDDEN: [&str; 10] = [
        "__shfl",
        "__ballot",
        "__syncwarp",
        "__activemask",
        "__lane_id",
        "__any",
        "__all",
        "readfirstlane",
        "__reduce_",
        "__match_",
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut bad = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("prelude_") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in FORBIDDEN {
                if code.contains(f) {
                    bad.push(format!("{name}:{}: {f}: {}", i + 1, line.trim()));
                }
            }
            let mut rest = code;
            while let Some(at) = rest.find("__builtin_amdgcn_") {
                let tail = &rest[at + "__builtin_amdgcn_".len()..];
                if !(tail.starts_with("mfma_") || tail.starts_with("wmma_")) {
                    bad.push(format!("{name}:{}: {}", i + 1, line.trim()));
                }
                rest = tail;
            }
        }
    }
    assert!(
        bad.is_empty(),
        "move these into the preludes (prelude_hip.h / prelude_cuda.h, with an emulation in prelude_emu.h):\n{}",
        bad.join("\n")
    );
}

/// On the HIP stand-in (tools/hip-standin) the HIP backend runs its gcnArchName target emulated with
/// an AMD runtime: hipRTC (the stand-in's, over NVRTC) must accept it whatever comgr's target list,
/// without `-DRF_AMD` (the source defines RF_EMULATE), and NVRTC must refuse it.
#[test]
fn emulated_targets_on_the_hip_standin_go_to_hiprtc() {
    let mut t = Target::named("gfx1100@sm_90").unwrap();
    t.emulation.as_mut().unwrap().runtime = Vendor::Amd;
    assert_eq!(t.backend_vendor(), Vendor::Amd);
    if let Ok(hiprtc) = gpu::compiler(Vendor::Amd) {
        // Debian's HIP 5.2 hipRTC does not know gfx1100, but an emulated target compiles for the host
        hiprtc.check_target(&t).unwrap();
        assert!(!hiprtc.base_options(&t).iter().any(|o| o == "-DRF_AMD=1"));
    }
    if let Ok(nvrtc) = gpu::compiler(Vendor::Nvidia) {
        assert!(nvrtc.check_target(&t).is_err());
    }
}
