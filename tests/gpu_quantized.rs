//! Quantized ops on the GPU against the CPU: dequant bit-exact for every format (f32 out; f16/bf16
//! equal to rounding the CPU f32), gather by row index, and gemv within 1e-3 relative error of an
//! f64 product, on random data and on real SmolLM2 tensors (subset GGUF named by
//! ROCMFORGE_TEST_GGUF; see tools/make_smollm2_subset.py); the fused gate/up GEMV with its gated
//! activation (gemv_glu) against its f64 reference.

mod common;
use common::*;

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rocmforge::gguf::GgufFile;
use rocmforge::gpu::{Buffer, Device};
use rocmforge::ops::quantized::{dequant, gemv, kernel_qk};
use rocmforge::ops::Element;
use rocmforge::quant::{self, QuantType};

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Quantized data: the CPU quantizer on random values of varied scale, then (second half of the
/// rows) random bytes, which reach every code (NaN/Inf scales included).
fn quant_data(ty: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut v = rand_f32(rows * cols, seed);
    for (i, x) in v.iter_mut().enumerate() {
        *x *= [1.0, 1e-3, 37.0, 1e-6][(i / cols) % 4];
    }
    let mut b = quant::quantize_to_vec(ty, &v).unwrap();
    if rows > 1 && !matches!(ty, QuantType::F32 | QuantType::F16 | QuantType::BF16) {
        let rb = b.len() / rows;
        let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ 0xabc);
        for x in &mut b[rb * (rows / 2)..] {
            *x = r.gen();
        }
    }
    b
}

fn run_dequant<T: Element>(
    dev: &Device,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    idx: Option<&Buffer<i32>>,
) -> Vec<T> {
    let n_out = idx.map(|i| i.len()).unwrap_or(rows) * cols;
    let mut out: Buffer<T> = dev.alloc(n_out).unwrap();
    out.fill_bytes(0xff).unwrap();
    let s = dev.default_stream();
    match idx {
        None => dequant::dequant(dev, &s, ty, w, rows, cols, &mut out).unwrap(),
        Some(i) => dequant::dequant_rows(dev, &s, ty, w, rows, cols, i, &mut out).unwrap(),
    }
    s.synchronize().unwrap();
    out.to_vec().unwrap()
}

fn check_dequant(dev: &Device, ty: QuantType, bytes: &[u8], rows: usize, cols: usize, what: &str) {
    let w = dev.upload(bytes).unwrap();
    let want = dequant::dequant_ref(ty, bytes, rows, cols, None).unwrap();
    let got: Vec<f32> = run_dequant(dev, ty, &w, rows, cols, None);
    let bad = got.iter().zip(&want).position(|(a, b)| !same(*a, *b));
    assert!(
        bad.is_none(),
        "{what} {ty} {rows}x{cols} f32: element {:?}: got {} want {}",
        bad,
        got[bad.unwrap()],
        want[bad.unwrap()]
    );
    let got: Vec<f16> = run_dequant(dev, ty, &w, rows, cols, None);
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| same(a.to_f32(), f16::from_f32(*b).to_f32())),
        "{what} {ty} f16"
    );
    let got: Vec<bf16> = run_dequant(dev, ty, &w, rows, cols, None);
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| same(a.to_f32(), bf16::from_f32(*b).to_f32())),
        "{what} {ty} bf16"
    );
    // gather: rows in a scrambled order, repeats and out-of-range indices (NaN rows)
    let idx: Vec<i32> = vec![(rows - 1) as i32, 0, rows as i32, (rows / 2) as i32, -1, 0];
    let ib = dev.upload(&idx).unwrap();
    let want = dequant::dequant_ref(ty, bytes, rows, cols, Some(&idx)).unwrap();
    let got: Vec<f32> = run_dequant(dev, ty, &w, rows, cols, Some(&ib));
    assert!(
        got.iter().zip(&want).all(|(a, b)| same(*a, *b)),
        "{what} {ty} gather"
    );
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn dequant_bit_exact_every_format() {
    let dev = device();
    let before = dev.allocated_bytes();
    for (i, ty) in QuantType::all().enumerate() {
        let qk = kernel_qk(ty);
        // the last shape spans several tiles of the whole-tensor kernel, the last one partial
        let tiles = match qk {
            8 => 163,
            32 => 41,
            _ => 5,
        };
        for (rows, nb) in [(1, 1), (17, 3), (6, 2), (50, tiles)] {
            let cols = nb * qk;
            check_dequant(
                &dev,
                ty,
                &quant_data(ty, rows, cols, i as u64 * 100 + rows as u64),
                rows,
                cols,
                "random",
            );
        }
    }
    assert_eq!(dev.allocated_bytes(), before);
}

fn run_gemv<T: Element>(
    dev: &Device,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    cfg: gemv::GemvConfig,
) -> Vec<f32> {
    let xt: Vec<T> = x.iter().map(|v| T::from_f32(*v)).collect();
    let xb = dev.upload(&xt).unwrap();
    let mut y: Buffer<T> = dev.alloc(batch * rows).unwrap();
    y.fill_bytes(0xff).unwrap();
    let s = dev.default_stream();
    gemv::gemv_with(dev, &s, ty, w, rows, cols, &xb, batch, &mut y, cfg).unwrap();
    s.synchronize().unwrap();
    y.to_vec()
        .unwrap()
        .into_iter()
        .map(|v| v.to_f32())
        .collect()
}

/// gemv of `bytes` against random x in every dtype and batch 1, 3, 8; f32 within `tol`, f16 and bf16
/// within the rounding of x and y to those types.
fn check_gemv(
    dev: &Device,
    ty: QuantType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    tol: f64,
    what: &str,
) {
    let w = dev.upload(bytes).unwrap();
    for batch in [1usize, 3, 8] {
        let x = rand_f32(batch * cols, (rows * 31 + cols + batch) as u64);
        let want: Vec<f32> = gemv::gemv_ref(ty, bytes, rows, cols, &x, batch)
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        for cfg in gemv::GemvConfig::candidates(ty, "f32", batch) {
            let got = run_gemv::<f32>(dev, ty, &w, rows, cols, &x, batch, cfg);
            let e = rel_err(&got, &want);
            assert!(
                e <= tol,
                "{what} {ty} {rows}x{cols} batch {batch} {cfg:?} f32: rel err {e}"
            );
        }
        // x rounded to the dtype first, so only the kernel's arithmetic and y's rounding remain
        let xh: Vec<f32> = x.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
        let want_h: Vec<f32> = gemv::gemv_ref(ty, bytes, rows, cols, &xh, batch)
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        for cfg in gemv::GemvConfig::candidates(ty, "f16", batch) {
            let e = rel_err(
                &run_gemv::<f16>(dev, ty, &w, rows, cols, &xh, batch, cfg),
                &want_h,
            );
            // the mma tile (rows 16) rounds each weight to f16 before the product, as dequantize +
            // f16 BLAS does: up to 2^-11 per weight on top of y's rounding
            let lim = if cfg.rows == 16 { 3e-3 } else { 1e-3 };
            assert!(
                e <= tol.max(lim),
                "{what} {ty} {rows}x{cols} batch {batch} {cfg:?} f16: rel err {e}"
            );
        }
        let xb: Vec<f32> = x.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
        let want_b: Vec<f32> = gemv::gemv_ref(ty, bytes, rows, cols, &xb, batch)
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        for cfg in gemv::GemvConfig::candidates(ty, "bf16", batch) {
            let e = rel_err(
                &run_gemv::<bf16>(dev, ty, &w, rows, cols, &xb, batch, cfg),
                &want_b,
            );
            // y rounded to bf16 alone is up to 2^-9 relative
            assert!(
                e <= 4e-3,
                "{what} {ty} {rows}x{cols} batch {batch} {cfg:?} bf16: rel err {e}"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn gemv_every_format_random() {
    let dev = device();
    // ROCMFORGE_TEST_FORMATS=q4_1,q8_0 narrows the formats (for the sanitizer's slow runs)
    let only = std::env::var("ROCMFORGE_TEST_FORMATS").ok();
    let wanted = |ty: QuantType| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|f| f == ty.name()))
    };
    // every instance the loop below runs, compiled in parallel first (the loop would compile them one
    // by one: minutes on emulated AMD targets, whose instances are larger)
    let t = dev.target().clone();
    let work: Vec<(rocmforge::jit::KernelSpec, rocmforge::gpu::Target)> = QuantType::all()
        .filter(|&ty| wanted(ty))
        .flat_map(|ty| {
            [1usize, 3, 8].into_iter().flat_map(move |b| {
                ["f32", "f16", "bf16"].into_iter().flat_map(move |d| {
                    gemv::GemvConfig::candidates(ty, d, b)
                        .into_iter()
                        .filter_map(move |c| gemv::spec(ty, d, b, c, t.wave_size).ok())
                })
            })
        })
        .map(|s| (s, dev.target().clone()))
        .collect();
    for r in rocmforge::jit::Jit::global().compile_many(&work, || {}) {
        r.unwrap();
    }
    let before = dev.allocated_bytes();
    for (i, ty) in QuantType::all().enumerate().filter(|&(_, ty)| wanted(ty)) {
        let qk = kernel_qk(ty);
        // the last shape spans many chunks per wave (prefetch loop, partial last chunk)
        let many = if qk >= 256 { 67 } else { 301 };
        for (rows, nb) in [(1, 1), (17, 3), (1000, 2), (33, 16), (40, many)] {
            let cols = nb * qk;
            let mut v = rand_f32(rows * cols, 7 + i as u64);
            v.iter_mut()
                .enumerate()
                .for_each(|(j, x)| *x *= 1.0 + (j % 7) as f32);
            let bytes = quant::quantize_to_vec(ty, &v).unwrap();
            check_gemv(&dev, ty, &bytes, rows, cols, 1e-3, "random");
        }
    }
    assert_eq!(dev.allocated_bytes(), before);
}

/// gemv_glu into the first `batch × rows_out` elements of a larger poisoned buffer (NaN in f16 and
/// bf16); returns them, after checking that the tail was not written.
#[allow(clippy::too_many_arguments)]
fn run_gemv_glu<T: Element>(
    dev: &Device,
    ty: QuantType,
    w: &Buffer<u8>,
    rows_out: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    act: gemv::GluAct,
    cfg: Option<gemv::GemvConfig>,
) -> Vec<f32> {
    const GUARD: usize = 64;
    let n = batch * rows_out;
    let xt: Vec<T> = x.iter().map(|v| T::from_f32(*v)).collect();
    let xb = dev.upload(&xt).unwrap();
    let mut all: Buffer<T> = dev.alloc(n + GUARD).unwrap();
    all.fill_bytes(0xff).unwrap();
    let mut y = all.view(0, n).unwrap();
    let s = dev.default_stream();
    match cfg {
        Some(c) => gemv::gemv_glu_with(dev, &s, ty, w, rows_out, cols, &xb, batch, &mut y, act, c),
        None => gemv::gemv_glu(dev, &s, ty, w, rows_out, cols, &xb, batch, &mut y, act),
    }
    .unwrap();
    s.synchronize().unwrap();
    let v: Vec<f32> = all
        .to_vec()
        .unwrap()
        .into_iter()
        .map(|v| v.to_f32())
        .collect();
    assert!(
        v[n..].iter().all(|t| t.is_nan()),
        "{ty} {rows_out}x{cols} batch {batch} {act}: written past y"
    );
    v[..n].to_vec()
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn gemv_glu_matches_reference() {
    use gemv::{GemvConfig, GluAct};
    let dev = device();
    let t = dev.target().clone();
    let fmts = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q8_0,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
        QuantType::MXFP4,
        QuantType::F16,
    ];
    let acts = [GluAct::Silu, GluAct::GeluTanh];
    let batches = [1usize, 2, 3];
    // every instance below, compiled in parallel first
    let mut work = Vec::new();
    for &ty in &fmts {
        for d in gemv::GLU_DTYPES {
            for &b in &batches {
                for c in GemvConfig::glu_candidates(ty, d, b) {
                    for &a in &acts {
                        let s = gemv::spec_with_glu(ty, d, b, c, Some(a), t.wave_size).unwrap();
                        if !work.iter().any(|(w, _)| w == &s) {
                            work.push((s, t.clone()));
                        }
                    }
                }
            }
        }
    }
    for r in rocmforge::jit::Jit::global().compile_many(&work, || {}) {
        r.unwrap();
    }
    let before = dev.allocated_bytes();
    let mut checked = 0;
    for (i, &ty) in fmts.iter().enumerate() {
        let qk = kernel_qk(ty);
        // odd block counts (partial chunks), and many chunks per wave (prefetch loop)
        let many = if qk >= 256 { 67 } else { 301 };
        for (rows_out, nb) in [(1, 1), (17, 3), (1000, 2), (33, 5), (40, many)] {
            let cols = nb * qk;
            // values of varied scale per row, about unit-variance sums (the gate where the
            // activations bend, not far in their flat tails)
            let scale = 1.0 / (cols as f32).sqrt();
            let mut v = rand_f32(2 * rows_out * cols, 11 + i as u64);
            for (j, x) in v.iter_mut().enumerate() {
                *x *= scale * [1.0, 0.5, 2.0, 0.25][(j / cols) % 4];
            }
            let bytes = quant::quantize_to_vec(ty, &v).unwrap();
            let w = dev.upload(&bytes).unwrap();
            for &batch in &batches {
                let x = rand_f32(batch * cols, (rows_out * 31 + cols + batch) as u64);
                for &act in &acts {
                    let what = format!("{ty} {rows_out}x{cols} batch {batch} {act}");
                    // x rounded to the dtype first: only the kernel's arithmetic and y's rounding remain
                    let xh: Vec<f32> = x.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
                    let want: Vec<f32> =
                        gemv::gemv_glu_ref(ty, &bytes, rows_out, cols, &xh, batch, act)
                            .unwrap()
                            .into_iter()
                            .map(|v| v as f32)
                            .collect();
                    let mut cfgs: Vec<Option<GemvConfig>> = vec![None];
                    cfgs.extend(
                        GemvConfig::glu_candidates(ty, "f16", batch)
                            .into_iter()
                            .map(Some),
                    );
                    for cfg in cfgs {
                        let got =
                            run_gemv_glu::<f16>(&dev, ty, &w, rows_out, cols, &xh, batch, act, cfg);
                        let e = rel_err(&got, &want);
                        assert!(e <= 1e-3, "{what} {cfg:?} f16: rel err {e}");
                        checked += 1;
                    }
                    let xb: Vec<f32> = x.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
                    let want: Vec<f32> =
                        gemv::gemv_glu_ref(ty, &bytes, rows_out, cols, &xb, batch, act)
                            .unwrap()
                            .into_iter()
                            .map(|v| v as f32)
                            .collect();
                    for cfg in GemvConfig::glu_candidates(ty, "bf16", batch) {
                        let got = run_gemv_glu::<bf16>(
                            &dev,
                            ty,
                            &w,
                            rows_out,
                            cols,
                            &xb,
                            batch,
                            act,
                            Some(cfg),
                        );
                        let e = rel_err(&got, &want);
                        // y rounded to bf16 alone is up to 2^-9 relative
                        assert!(e <= 4e-3, "{what} {cfg:?} bf16: rel err {e}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked >= fmts.len() * 5 * 3 * 2 * 3, "{checked} runs");
    // bad input is an error before anything is launched
    let s = dev.default_stream();
    let w = dev.upload(&[0u8; 3 * 34]).unwrap(); // 3 rows of one q8_0 block: odd
    let x: Buffer<f16> = dev.alloc(32).unwrap();
    let mut y: Buffer<f16> = dev.alloc(1).unwrap();
    let e = gemv::gemv_glu(
        &dev,
        &s,
        QuantType::Q8_0,
        &w,
        1,
        32,
        &x,
        1,
        &mut y,
        GluAct::Silu,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("odd"), "{e}");
    let xf: Buffer<f32> = dev.alloc(32).unwrap();
    let mut yf: Buffer<f32> = dev.alloc(1).unwrap();
    let w2 = dev.upload(&[0u8; 2 * 34]).unwrap();
    let e = gemv::gemv_glu(
        &dev,
        &s,
        QuantType::Q8_0,
        &w2,
        1,
        32,
        &xf,
        1,
        &mut yf,
        GluAct::Silu,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("f16 or bf16"), "{e}");
    drop((w, x, y, xf, yf, w2));
    assert_eq!(dev.allocated_bytes(), before);
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn bad_shapes_are_rejected_before_launch() {
    let dev = device();
    let w = dev.upload(&[0u8; 36]).unwrap();
    let x = dev.upload(&[0f32; 48]).unwrap();
    let mut y: Buffer<f32> = dev.alloc(1).unwrap();
    let s = dev.default_stream();
    let e = gemv::gemv(&dev, &s, QuantType::Q4_0, &w, 1, 48, &x, 1, &mut y)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple"), "{e}");
    let mut o: Buffer<f32> = dev.alloc(63).unwrap();
    assert!(dequant::dequant(&dev, &s, QuantType::Q4_0, &w, 1, 64, &mut o).is_err());
}

fn subset_path() -> String {
    match std::env::var("ROCMFORGE_TEST_GGUF") {
        Ok(p) if std::path::Path::new(&p).exists() => p,
        Ok(p) => panic!("ROCMFORGE_TEST_GGUF={p} does not exist (make it with tools/make_smollm2_subset.py)"),
        Err(_) => panic!("ROCMFORGE_TEST_GGUF is not set: point it at the SmolLM2 subset GGUF (tools/make_smollm2_subset.py)"),
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn smollm2_real_tensors() {
    let dev = device();
    let f = GgufFile::open(subset_path()).unwrap();
    let mut n = 0;
    for t in f.tensors() {
        if t.shape.len() != 2 {
            continue;
        }
        let (cols, rows) = (t.shape[0] as usize, t.shape[1] as usize);
        let bytes = f.tensor(&t.name).unwrap().bytes().to_vec();
        check_dequant(&dev, t.ty, &bytes, rows, cols, &t.name);
        check_gemv(&dev, t.ty, &bytes, rows, cols, 1e-3, &t.name);
        // and the same rows re-quantized to the other gemv formats of interest
        let vals = quant::dequantize_to_vec(t.ty, &bytes, rows * cols).unwrap();
        for ty in [
            QuantType::Q4_0,
            QuantType::Q8_0,
            QuantType::Q4_K,
            QuantType::Q6_K,
            QuantType::MXFP4,
        ] {
            if cols % ty.block_elems() == 0 {
                let q = quant::quantize_to_vec(ty, &vals).unwrap();
                check_gemv(
                    &dev,
                    ty,
                    &q,
                    rows,
                    cols,
                    1e-3,
                    &format!("{} as {ty}", t.name),
                );
            }
        }
        n += 1;
    }
    assert!(n >= 2, "the subset has {n} matrices");
}
