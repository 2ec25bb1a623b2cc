//! MLP area on the CPU: references, spec validation, the BLAS loader's error, and that every instance
//! of the norm / act / embed / qgemm families compiles for every target whose compiler is here.

mod common;

use common::*;
use half::{bf16, f16};
use rocmforge::gpu::{blas, Target, Vendor};
use rocmforge::jit::{cache, DiskCache, Jit, KernelSpec};
use rocmforge::ops::mlp::{activation, embedding, norm, qgemm};
use rocmforge::ops::Element;
use rocmforge::quant::{self, QuantType};

#[test]
fn norm_references_agree_with_direct_formulas() {
    let hidden = 1000;
    let x: Vec<f32> = rand_f32(3 * hidden, 1);
    let w: Vec<f32> = rand_f32(hidden, 2);
    let b: Vec<f32> = rand_f32(hidden, 3);
    let o = norm::rms_norm_ref(&x, &w, 1e-6, hidden);
    for r in 0..3 {
        let row = &x[r * hidden..(r + 1) * hidden];
        let rms = (row.iter().map(|v| v * v).sum::<f32>() / hidden as f32 + 1e-6).sqrt();
        for i in [0, 17, 999] {
            assert!((o[r * hidden + i] - row[i] / rms * w[i]).abs() < 1e-5);
        }
    }
    let l = norm::layer_norm_ref(&x, &w, &b, 1e-5, hidden);
    // normalised rows have mean 0 and variance 1 before the affine part
    let z: Vec<f64> = (0..hidden).map(|i| ((l[i] - b[i]) / w[i]) as f64).collect();
    let mean = z.iter().sum::<f64>() / hidden as f64;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / hidden as f64;
    assert!(
        mean.abs() < 1e-3 && (var - 1.0).abs() < 1e-2,
        "{mean} {var}"
    );
    // residual variant: h rounded to the element type
    let xh: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let (_, h) = norm::rms_norm_residual_ref(&xh, &xh, &xh[..hidden], 0.0, hidden);
    assert_eq!(h[5], bf16::from_f32(xh[5].to_f32() * 2.0));
}

#[test]
fn activation_references() {
    for x in [-3.0, -0.5, 0.0, 0.25, 2.0] {
        let want = x / (1.0 + (-x as f64).exp()) * 1.5;
        assert!((activation::Act::SwiGlu.apply(x, 1.5) - want).abs() < 1e-12);
    }
    // GELU forms agree to ~1e-3 (the tanh form is an approximation of the erf form)
    for i in -40..40 {
        let x = i as f64 / 10.0;
        assert!(
            (activation::Act::GeluTanh.apply(x, 0.0) - activation::Act::GeluErf.apply(x, 0.0))
                .abs()
                < 1e-3
        );
    }
    assert!((activation::erf(0.1) - 0.1124629160182849).abs() < 1e-15);
}

#[test]
fn qgemm_reference_matches_dequantized_product() {
    let (m, n, k) = (3, 5, 256);
    let x: Vec<f16> = rand_f32(m * k, 4).into_iter().map(f16::from_f32).collect();
    let wf = rand_f32(n * k, 5);
    let wq = quant::quantize_to_vec(QuantType::Q4_K, &wf).unwrap();
    let wd = quant::dequantize_to_vec(QuantType::Q4_K, &wq, n * k).unwrap();
    let y = qgemm::qgemm_ref(&x, &wd, None, m, n, k);
    let direct: f64 = (0..k)
        .map(|i| x[k + i].to_f64() * wd[2 * k + i] as f64)
        .sum();
    assert!((y[n + 2] - direct).abs() < 1e-9);
    let e = embedding::embed_ref(&wd, k, &[4, 0, 5]);
    assert_eq!(&e[..k], &wd[4 * k..]);
    assert!(e[2 * k].is_nan());
}

#[test]
fn spec_validation_names_supported_values() {
    let e = norm::spec(norm::NormKind::Rms, "f64", 4096, 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("supported: f32, f16, bf16"), "{e}");
    let e = KernelSpec::new(
        &norm::FAMILY,
        &[
            ("kind", "rms".into()),
            ("dtype", "f16".into()),
            ("block", 256.into()),
            ("vec", 4.into()),
        ],
        32,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("supported 1 or 8"), "{e}");
    let e = KernelSpec::new(
        &activation::FAMILY,
        &[
            ("kind", "relu".into()),
            ("dtype", "f16".into()),
            ("vec", 8.into()),
        ],
        32,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("swiglu, gelu_tanh, gelu_erf, add"), "{e}");
    let t = Target::named("sm_90").unwrap();
    let e = qgemm::spec(QuantType::Q4_0, &t, Some("mma"), (32, 32, 4, 32))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("supported: m16.n32.x8.k256, m32.n32.x8.k256, m64.n32.x8.k256, m64.n64.x8.k256, m128.n128.x8.k64"),
        "{e}"
    );
    let e = qgemm::check_shape(QuantType::Q4_0, 16, 4096, 4008)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of 32"), "{e}");
    assert!(embedding::spec("q4_K", "f16", 1000, 32).is_ok()); // shape errors come from the launcher
                                                               // instance counts stay modest (CI compiles them all)
    let count = |f| KernelSpec::enumerate(f, 32).len() + KernelSpec::enumerate(f, 64).len();
    assert_eq!(count(&norm::FAMILY), 108);
    assert_eq!(count(&activation::FAMILY), 48);
    assert_eq!(count(&embedding::FAMILY), 144);
    assert_eq!(count(&qgemm::FAMILY), 21 * (5 + 3 + 3 + 2));
}

#[test]
fn blas_loader_gives_a_clear_error_or_loads() {
    for v in [Vendor::Nvidia, Vendor::Amd] {
        match blas::probe(v) {
            Ok(path) => assert!(path.contains("blas"), "{path}"),
            Err(e) => {
                let s = e.to_string();
                let want = if v == Vendor::Nvidia {
                    "libcublas.so.13"
                } else {
                    "libhipblas.so.3"
                };
                assert!(s.contains("not found; tried:") && s.contains(want), "{s}");
                if v == Vendor::Nvidia {
                    assert!(s.contains("/usr/local/cuda/lib64/libcublas.so.12"), "{s}");
                }
            }
        }
    }
}

/// Every instance of the MLP families, for each available target (wave of the target), compiles.
#[test]
fn every_instance_compiles_for_available_targets() {
    let dir = tempfile::tempdir().unwrap();
    let jit = Jit::new(DiskCache::new(
        Some(dir.path().to_path_buf()),
        cache::DEFAULT_MAX_BYTES,
    ));
    let mut work = Vec::new();
    for t in available_targets() {
        for f in rocmforge::ops::mlp::families() {
            for s in KernelSpec::enumerate(f, t.wave_size) {
                if (f.applies)(&s, &t) {
                    work.push((s, t.clone()));
                }
            }
        }
    }
    assert!(work.len() > 100, "{}", work.len());
    let res = jit.compile_many(&work, || {});
    let failed: Vec<String> = res
        .iter()
        .zip(&work)
        .filter_map(|(r, (s, t))| r.as_ref().err().map(|e| format!("{s} on {t}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        work.len(),
        failed.join("\n")
    );
}

#[test]
fn element_roundtrip_used_by_references() {
    assert_eq!(<f16 as Element>::from_f32(1.5).to_f32(), 1.5);
    assert_eq!(QuantType::from_name("q4_K").unwrap().name(), "q4_K");
}
