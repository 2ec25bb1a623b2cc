//! CPU quantization tests.
//!
//! # Bit-exact cross-check against gguf-py (`gguf_py_crosscheck`)
//! The test writes seeded random rows (normal, uniform, outliers, all-zero blocks, tiny values,
//! rows of 256*k elements) to a temp dir and runs `python3 tools/quant_crosscheck.py DIR`, which
//! quantizes / dequantizes them with `gguf.quants`; bytes and f32 bits must match exactly. If
//! python3, numpy or gguf is missing the test FAILS and says to run `pip install gguf numpy`.
//!
//! Coverage by gguf-py 0.19.0 (the installed version when this was written):
//! * quantize AND dequantize: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 (GGUF).
//! * dequantize only: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (gguf-py has no K-quant quantizers). Their
//!   dequantizers are checked on our quantizer's output and on random block bytes.
//! * neither: Q8_1 (gguf-py's `GGML_QUANT_SIZES` even lists the old 40-byte layout; ggml's
//!   `block_q8_1` is 36 bytes: half d, half s, int8 qs[32]) and Q8_K (quantize/dequantize absent).
//! * OCP MX fp4/fp6/fp8 (our own formats, no GGUF id): absent.
//!
//! What is checked instead where gguf-py lacks a format:
//! * K-quant, Q8_1 and Q8_K quantizers: bit-exact against ggml's C `quantize_row_*_ref` in
//!   `ggml_c_reference_crosscheck` when env `ROCMFORGE_GGML_QUANTS_LIB` points at a build of
//!   llama.cpp's `ggml-quants.c` (verified passing when written); always: round-trip error bounds
//!   (proptest), gguf-py dequantize cross-check of their output, all-zero blocks, and
//!   hand-computed Q8_1 / Q8_K vectors (`q8_1_and_q8_k_known`).
//! * OCP MX: known vectors from the spec tables (`ocp_mx_known_vectors`): all 16 E2M1 codes,
//!   E4M3 max 448 and saturation, E5M2 max 57344, E2M3 max 7.5, E3M2 max 28, E8M0 127 → 1.0,
//!   scale rule, NaN/Inf handling, and the documented packed layouts.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rocmforge::quant::{self, QuantType};

const PY_QUANT: &[QuantType] = &[
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::MXFP4,
];
const PY_DEQUANT_ONLY: &[QuantType] = &[
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// gguf-py's enum name for a GGUF type.
fn py_name(t: QuantType) -> String {
    match t {
        QuantType::MXFP4 => "MXFP4".into(),
        _ => t.name().to_ascii_uppercase(),
    }
}

fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A row of `n` values drawn from distribution `kind`.
fn gen_row(rng: &mut StdRng, kind: usize, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|_| match kind {
            0 => normal(rng),
            1 => rng.gen_range(-1.0f32..1.0),
            2 => normal(rng) * 0.02,
            3 => rng.gen_range(0.0f32..5.0),
            4 => normal(rng) * 1e-4,
            _ => normal(rng) * 30.0,
        })
        .collect();
    // Outliers.
    if kind == 2 || kind == 5 {
        for _ in 0..n / 64 + 1 {
            let i = rng.gen_range(0..n);
            v[i] = normal(rng) * 50.0;
        }
    }
    // Some all-zero 32- and 256-blocks.
    if kind % 2 == 0 && n >= 512 {
        v[32..64].fill(0.0);
        v[256..512].fill(0.0);
    }
    v
}

fn write_f32(path: &Path, v: &[f32]) {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, b).unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

struct Case {
    name: String,
    ty: QuantType,
    n: usize,
    input: Option<Vec<f32>>,
    rs_bytes: Vec<u8>,
    ops: Vec<&'static str>,
}

#[test]
fn gguf_py_crosscheck() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let mut cases: Vec<Case> = Vec::new();
    for &ty in PY_QUANT.iter().chain(PY_DEQUANT_ONLY) {
        let quant_too = PY_QUANT.contains(&ty);
        for kind in 0..6 {
            let n = 256 * (1 + kind % 4) * if kind == 1 { 4 } else { 1 };
            let x = gen_row(&mut rng, kind, n);
            let rs_bytes = quant::quantize_to_vec(ty, &x).unwrap();
            let ops = if quant_too {
                vec!["quantize", "dequantize"]
            } else {
                vec!["dequantize"]
            };
            cases.push(Case {
                name: format!("{}_d{kind}", ty.name()),
                ty,
                n,
                input: Some(x),
                rs_bytes,
                ops,
            });
        }
        // Random block bytes (dequantize only).
        let n = 512;
        let mut raw = vec![0u8; ty.row_bytes(n).unwrap()];
        rng.fill(&mut raw[..]);
        cases.push(Case {
            name: format!("{}_raw", ty.name()),
            ty,
            n,
            input: None,
            rs_bytes: raw,
            ops: vec!["dequantize"],
        });
    }
    // MXFP4 edge inputs: amax just below / at powers of two, ties between codes.
    let mut edge = vec![0f32; 128];
    edge[0] = 8.0 * (1.0 - f32::EPSILON / 2.0);
    edge[32] = 4.0;
    for (i, v) in edge[33..64].iter_mut().enumerate() {
        *v = (i as f32 - 15.0) * 0.25;
    }
    edge[64] = 1.0e-30;
    edge[96] = -6.0;
    edge[97] = 5.0;
    edge[98] = -2.5;
    for &ty in PY_QUANT {
        let rs_bytes = quant::quantize_to_vec(ty, &edge).unwrap();
        cases.push(Case {
            name: format!("{}_edge", ty.name()),
            ty,
            n: edge.len(),
            input: Some(edge.clone()),
            rs_bytes,
            ops: vec!["quantize", "dequantize"],
        });
    }

    let mut manifest = Vec::new();
    for c in &cases {
        if let Some(x) = &c.input {
            write_f32(&dir.path().join(format!("{}.f32", c.name)), x);
        }
        std::fs::write(dir.path().join(format!("{}.q.rs", c.name)), &c.rs_bytes).unwrap();
        manifest.push(
            serde_json::json!({"name": c.name, "type": py_name(c.ty), "n": c.n, "ops": c.ops}),
        );
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();

    let out = Command::new("python3")
        .arg("tools/quant_crosscheck.py")
        .arg(dir.path())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            panic!("cannot run python3 ({e}); install Python 3 and run `pip install gguf numpy`")
        }
    };
    assert!(
        out.status.success(),
        "tools/quant_crosscheck.py failed (status {:?}); if gguf/numpy are missing run `pip install gguf numpy`\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let res: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    eprintln!("gguf-py version {}", res["gguf_version"]);
    let results = &res["results"];

    let mut failures = Vec::new();
    let mut checked = 0;
    for c in &cases {
        for op in &c.ops {
            let key = format!("{}:{op}", c.name);
            let status = results[&key].as_str().unwrap_or("missing");
            if status != "ok" {
                failures.push(format!("{key}: gguf-py did not run it: {status}"));
                continue;
            }
            checked += 1;
            if *op == "quantize" {
                let py = std::fs::read(dir.path().join(format!("{}.q.py", c.name))).unwrap();
                if py != c.rs_bytes {
                    let first = py.iter().zip(&c.rs_bytes).position(|(a, b)| a != b);
                    let bb = c.ty.block_bytes();
                    let blk = first.map(|p| p / bb);
                    failures.push(format!(
                        "{key}: bytes differ (len py {} rs {}), first at byte {first:?} (block {blk:?}): py {:?} rs {:?}",
                        py.len(),
                        c.rs_bytes.len(),
                        blk.map(|b| &py[b * bb..((b + 1) * bb).min(py.len())]),
                        blk.map(|b| &c.rs_bytes[b * bb..((b + 1) * bb).min(c.rs_bytes.len())]),
                    ));
                }
            } else {
                let py = read_f32(&dir.path().join(format!("{}.dq.py", c.name)));
                let rs = quant::dequantize_to_vec(c.ty, &c.rs_bytes, c.n).unwrap();
                let bad: Vec<_> = (0..c.n)
                    .filter(|&i| !same_f32(py[i], rs[i]))
                    .take(3)
                    .collect();
                if !bad.is_empty() {
                    let show: Vec<_> = bad.iter().map(|&i| (i, py[i], rs[i])).collect();
                    failures.push(format!("{key}: values differ (idx, py, rs): {show:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 100, "only {checked} checks ran");
}

/// Bit-exact check of the quantizers gguf-py lacks (K-quants, Q8_1, Q8_K), and of all other GGUF
/// quantizers, against ggml's C reference (`quantize_row_*_ref`). The library is built from
/// llama.cpp's `ggml/src/ggml-quants.c` by `tools/build_ggml_ref.sh` (README's test command does
/// it); `ROCMFORGE_GGML_QUANTS_LIB` may name another build. Without the library this test fails.
#[test]
fn ggml_c_reference_crosscheck() {
    let lib = std::env::var("ROCMFORGE_GGML_QUANTS_LIB")
        .unwrap_or_else(|_| "target/ggml-ref/libggml_quants_ref.so".into());
    assert!(
        std::path::Path::new(&lib).exists(),
        "{lib} missing: run `tools/build_ggml_ref.sh` (or set ROCMFORGE_GGML_QUANTS_LIB) to build ggml's reference quantizers"
    );
    std::env::set_var(
        "ROCMFORGE_GGML_QUANTS_LIB",
        std::fs::canonicalize(&lib).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let mut manifest = Vec::new();
    let mut cases = Vec::new();
    let types: Vec<QuantType> = QuantType::all()
        .filter(|t| t.ggml_id().is_some() && t.block_elems() > 1)
        .collect();
    for &ty in &types {
        for kind in 0..6 {
            let n = 256 * (1 + kind % 4) * 4;
            let x = gen_row(&mut rng, kind, n);
            let name = format!("{}_c{kind}", ty.name());
            write_f32(&dir.path().join(format!("{name}.f32")), &x);
            manifest.push(serde_json::json!({"name": name, "type": py_name(ty), "n": n, "ops": ["quantize_ggml"]}));
            cases.push((name, ty, quant::quantize_to_vec(ty, &x).unwrap()));
        }
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg("tools/quant_crosscheck.py")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bad = Vec::new();
    for (name, ty, rs) in &cases {
        let c = std::fs::read(dir.path().join(format!("{name}.q.c"))).unwrap();
        if &c != rs {
            let p = c.iter().zip(rs).position(|(a, b)| a != b);
            bad.push(format!("{name} ({ty}): first differing byte {p:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn ocp_mx_known_vectors() {
    use quant::mx::{e8m0_to_f32, E2M1, E2M3, E3M2, E4M3, E5M2};
    // E2M1: all 16 codes.
    let e2m1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    for c in 0u8..16 {
        let want = if c < 8 {
            e2m1[c as usize]
        } else {
            -e2m1[c as usize - 8]
        };
        assert_eq!(E2M1.decode(c), want, "E2M1 code {c}");
    }
    assert_eq!(E4M3.decode(0x7E), 448.0);
    assert_eq!(E4M3.encode(448.0), 0x7E);
    assert_eq!(E4M3.encode(500.0), 0x7E, "E4M3 saturates");
    assert_eq!(E4M3.decode(0x01), 2f64.powi(-9), "E4M3 min subnormal");
    assert_eq!(E5M2.decode(0x7B), 57344.0);
    assert_eq!(E5M2.encode(1e30), 0x7B, "E5M2 saturates");
    assert_eq!(E5M2.decode(0x01), 2f64.powi(-16));
    assert_eq!(E2M3.decode(0x1F), 7.5);
    assert_eq!(E2M3.decode(0x01), 0.125);
    assert_eq!(E3M2.decode(0x1F), 28.0);
    assert_eq!(E3M2.decode(0x01), 0.0625);
    assert_eq!(e8m0_to_f32(127), 1.0);
    assert_eq!(e8m0_to_f32(128), 2.0);

    // Block: amax 6 → shared exp floor(log2 6) - 2 = 0 → e = 127; elements exact.
    let mut x = [0f32; 32];
    for (i, v) in x.iter_mut().enumerate() {
        *v = e2m1[i % 8] as f32 * if i % 16 >= 8 { -1.0 } else { 1.0 };
    }
    let q = quant::quantize_to_vec(QuantType::MX_FP4, &x).unwrap();
    assert_eq!(q[0], 127);
    // Sequential packing: element 0 low nibble, element 1 high nibble.
    assert_eq!(q[1], 0x10);
    assert_eq!(q[4], 0x76);
    assert_eq!(
        quant::dequantize_to_vec(QuantType::MX_FP4, &q, 32).unwrap(),
        x
    );

    // FP8 E4M3: amax 448 → e = 127 + 8 - 8 = 127 ; 1000 → floor(log2)=9 → e = 128.
    let mut x = [1.0f32; 32];
    x[0] = 448.0;
    let q = quant::quantize_to_vec(QuantType::MX_FP8_E4M3, &x).unwrap();
    assert_eq!(q[0], 127);
    assert_eq!(q[1], 0x7E);
    assert_eq!(q[2], 0x38, "1.0 in E4M3");
    x[0] = 1000.0;
    let q = quant::quantize_to_vec(QuantType::MX_FP8_E4M3, &x).unwrap();
    assert_eq!(q[0], 128);
    // E5M2 / E3M2 / E2M3 scale rule.
    let q = quant::quantize_to_vec(QuantType::MX_FP8_E5M2, &x).unwrap();
    assert_eq!(q[0], 127 + 9 - 15);
    let q = quant::quantize_to_vec(QuantType::MX_FP6_E3M2, &x).unwrap();
    assert_eq!(q[0], 127 + 9 - 4);
    let q = quant::quantize_to_vec(QuantType::MX_FP6_E2M3, &x).unwrap();
    assert_eq!(q[0], 127 + 9 - 2);
    // FP6 packing: 4 elements in 3 bytes, little-endian 6-bit fields.
    let mut x = [0f32; 32];
    x[0] = 7.5;
    x[1] = 1.0;
    let q = quant::quantize_to_vec(QuantType::MX_FP6_E2M3, &x).unwrap();
    assert_eq!(q[0], 127);
    let w = u32::from_le_bytes([q[1], q[2], q[3], 0]);
    assert_eq!(w & 63, 0x1F);
    assert_eq!((w >> 6) & 63, 0x08, "1.0 in E2M3");
    let y = quant::dequantize_to_vec(QuantType::MX_FP6_E2M3, &q, 32).unwrap();
    assert_eq!(&y[..3], &[7.5, 1.0, 0.0]);

    // All zero → e = 0, zero elements.
    let q = quant::quantize_to_vec(QuantType::MX_FP8_E5M2, &[0f32; 32]).unwrap();
    assert!(q.iter().all(|&b| b == 0));
    // NaN / Inf → scale 0xFF, dequantizes to NaN.
    for ty in [
        QuantType::MX_FP4,
        QuantType::MX_FP6_E3M2,
        QuantType::MX_FP8_E4M3,
    ] {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = [1f32; 32];
            x[5] = bad;
            let q = quant::quantize_to_vec(ty, &x).unwrap();
            assert_eq!(q[0], 0xFF, "{ty}");
            let y = quant::dequantize_to_vec(ty, &q, 32).unwrap();
            assert!(y.iter().all(|v| v.is_nan()));
        }
    }
}

#[test]
fn q8_1_and_q8_k_known() {
    let mut x = [0f32; 32];
    for (i, v) in x.iter_mut().enumerate() {
        *v = i as f32 - 16.0;
    }
    // amax 16 → d = 16/127, q = round(x*127/16)
    let q = quant::quantize_to_vec(QuantType::Q8_1, &x).unwrap();
    assert_eq!(q.len(), 36);
    let d = half::f16::from_le_bytes([q[0], q[1]]).to_f32();
    assert_eq!(d, half::f16::from_f32(16.0 / 127.0).to_f32());
    let qs: Vec<i8> = q[4..].iter().map(|&b| b as i8).collect();
    assert_eq!(qs[0], -127);
    assert_eq!(qs[16], 0);
    assert_eq!(qs[17], 8); // 1 * 127/16 = 7.94 → 8
    let sum: i32 = qs.iter().map(|&v| v as i32).sum();
    let s = half::f16::from_le_bytes([q[2], q[3]]).to_f32();
    assert_eq!(
        s,
        half::f16::from_f32(sum as f32 * (16.0f32 / 127.0)).to_f32()
    );

    let mut x = [0f32; 256];
    x[3] = -2.0;
    x[200] = 1.0;
    let q = quant::quantize_to_vec(QuantType::Q8_K, &x).unwrap();
    assert_eq!(q.len(), 292);
    let d = f32::from_le_bytes([q[0], q[1], q[2], q[3]]);
    assert_eq!(d, 1.0 / (-127.0f32 / -2.0));
    assert_eq!(q[4 + 3] as i8, -127);
    assert_eq!(q[4 + 200] as i8, 64); // 63.5 → 64 (ties to even)
    let bsum0 = i16::from_le_bytes([q[260], q[261]]);
    assert_eq!(bsum0, -127);
    let y = quant::dequantize_to_vec(QuantType::Q8_K, &q, 256).unwrap();
    assert_eq!(y[3], -2.0);
}

#[test]
fn zero_blocks_quantize_to_zero_values() {
    for ty in QuantType::all() {
        let n = ty.block_elems().max(256);
        let q = quant::quantize_to_vec(ty, &vec![0f32; n]).unwrap();
        let y = quant::dequantize_to_vec(ty, &q, n).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{ty}: {:?}", &y[..4]);
    }
}

/// Error bound as a fraction of the block's |max| (K-quants: of the 256-super-block's).
fn bound(ty: QuantType) -> f32 {
    match ty {
        QuantType::F32 => 0.0,
        QuantType::F16 => 1.0 / 1024.0,
        QuantType::BF16 => 1.0 / 128.0,
        QuantType::Q4_0 => 0.13,
        QuantType::Q4_1 => 0.08,
        QuantType::Q5_0 => 0.07,
        QuantType::Q5_1 => 0.04,
        QuantType::Q8_0 | QuantType::Q8_1 => 0.0045,
        QuantType::Q8_K => 0.0045,
        QuantType::Q2_K => 0.5,
        QuantType::Q3_K => 0.3,
        QuantType::Q4_K => 0.15,
        QuantType::Q5_K => 0.07,
        QuantType::Q6_K => 0.035,
        QuantType::MXFP4 | QuantType::MX_FP4 => 0.5,
        QuantType::MX_FP6_E2M3 => 0.13,
        QuantType::MX_FP6_E3M2 | QuantType::MX_FP8_E4M3 | QuantType::MX_FP8_E5M2 => 0.26,
    }
}

fn any_type() -> impl Strategy<Value = QuantType> {
    let all: Vec<QuantType> = QuantType::all().collect();
    proptest::sample::select(all)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_error_bounded(ty in any_type(), seed in any::<u64>(), kind in 0usize..6, scale_exp in -8i32..8) {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = 512;
        let s = 2f32.powi(scale_exp);
        let x: Vec<f32> = gen_row(&mut rng, kind, n).iter().map(|v| v * s).collect();
        let q = quant::quantize_to_vec(ty, &x).unwrap();
        let y = quant::dequantize_to_vec(ty, &q, n).unwrap();
        let blk = if ty.block_elems() == 1 { 1 } else { ty.block_elems() };
        for (xb, yb) in x.chunks(blk).zip(y.chunks(blk)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in xb.iter().zip(yb) {
                prop_assert!(!b.is_nan());
                let err = (a - b).abs();
                // f16 scales lose relative precision 2^-11 and underflow below 2^-24.
                let f16_floor = match ty {
                    QuantType::F32 | QuantType::BF16 | QuantType::Q8_K => 0.0,
                    _ if ty.is_ocp_mx() || ty == QuantType::MXFP4 => 0.0,
                    QuantType::F16 => 2f32.powi(-25),
                    // f16 (super-)scales are subnormal below 2^-14: absolute error of d (2^-25)
                    // times the largest scale*level product of the format.
                    QuantType::Q4_K => 2f32.powi(-24) * 2048.0,
                    QuantType::Q5_K | QuantType::Q6_K => 2f32.powi(-24) * 4096.0,
                    _ => 2f32.powi(-24) * 128.0,
                };
                let tol = bound(ty) * amax * 1.0001 + amax * 2e-3 * (ty.block_elems() > 1) as u8 as f32 + f16_floor;
                prop_assert!(err <= tol, "{ty}: x={a} y={b} err={err} amax={amax} tol={tol}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(ty in any_type(), bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let bb = ty.block_bytes();
        let nb = bytes.len() / bb;
        let n = nb * ty.block_elems();
        let mut out = vec![0f32; n];
        prop_assert!(quant::dequantize(ty, &bytes[..nb * bb], &mut out).is_ok());
        // Mis-sized inputs are errors, not panics.
        if bytes.len() % bb != 0 {
            prop_assert!(quant::dequantize(ty, &bytes, &mut out).is_err());
        }
        // Unaligned start.
        if nb > 0 && bytes.len() > nb * bb {
            prop_assert!(quant::dequantize(ty, &bytes[1..1 + nb * bb], &mut out).is_ok());
        }
    }

    #[test]
    fn finite_scales_give_nan_free_output(ty in any_type(), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let l = ty.layout();
        let mut bytes = vec![0u8; l.block_bytes * 4];
        rng.fill(&mut bytes[..]);
        for blk in bytes.chunks_mut(l.block_bytes) {
            let mut off = 0;
            for f in l.fields {
                let fb = &mut blk[off..off + f.bytes()];
                match f.c_type {
                    "half" => for h in fb.chunks_mut(2) { if h[1] & 0x7c == 0x7c { h[1] &= !0x40; } },
                    "float" => for w in fb.chunks_mut(4) { if w[3] & 0x7f == 0x7f && w[2] & 0x80 != 0 { w[3] &= !0x40; } },
                    "uint16_t" if ty == QuantType::BF16 => for h in fb.chunks_mut(2) { if h[1] & 0x7f == 0x7f && h[0] & 0x80 != 0 { h[1] &= !0x40; } },
                    _ => {}
                }
                if ty.is_ocp_mx() && f.name == "e" && fb[0] == 0xFF { fb[0] = 0xFE; }
                if f.name == "qs" && ty == QuantType::MX_FP8_E4M3 {
                    for c in fb.iter_mut() { if *c & 0x7F == 0x7F { *c &= !1; } }
                }
                if f.name == "qs" && ty == QuantType::MX_FP8_E5M2 {
                    for c in fb.iter_mut() { if (*c >> 2) & 31 == 31 { *c &= !0x04; } }
                }
                off += f.bytes();
            }
        }
        let y = quant::dequantize_to_vec(ty, &bytes, 4 * l.block_elems).unwrap();
        prop_assert!(y.iter().all(|v| !v.is_nan()), "{ty}");
    }
}
