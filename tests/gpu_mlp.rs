//! MLP ops on the device against their CPU references: norms, activations, embedding, the fused
//! quantized GEMM, the linear dispatch (GEMV / qgemm) and dequantize + vendor BLAS.
//! Outputs are poisoned (0xff = NaN) first, so an unwritten element fails the check.

mod common;

use common::*;
use half::{bf16, f16};
use rocmforge::gpu::blas::Blas;
use rocmforge::gpu::Buffer;
use rocmforge::ops::mlp::activation::{self, Act};
use rocmforge::ops::mlp::{embedding, linear, norm, qgemm};
use rocmforge::ops::Element;
use rocmforge::quant::{self, QuantType};
use serial_test::serial;

const HIDDEN: [usize; 4] = [576, 4096, 5120, 1000];
const ROWS: [usize; 4] = [1, 7, 64, 513];

fn to<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}
fn f32s<T: Element>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}
/// The reference rounded through T, as the kernel's single rounding does.
fn rounded<T: Element>(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| T::from_f32(x).to_f32()).collect()
}
fn norms<T: Element>(seed: u64) {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    for (hi, &hidden) in HIDDEN.iter().enumerate() {
        for (ri, &rows) in ROWS.iter().enumerate() {
            let sd = seed + 100 * hi as u64 + 10 * ri as u64;
            let n = rows * hidden;
            let x: Vec<T> = to(&rand_f32(n, sd).iter().map(|v| v * 3.0).collect::<Vec<_>>());
            let r: Vec<T> = to(&rand_f32(n, sd + 1));
            let w: Vec<T> = to(&rand_f32(hidden, sd + 2));
            let b: Vec<T> = to(&rand_f32(hidden, sd + 3));
            let (dx, dw, db) = (
                dev.upload(&x).unwrap(),
                dev.upload(&w).unwrap(),
                dev.upload(&b).unwrap(),
            );
            let tag = format!("{} hidden={hidden} rows={rows}", T::DTYPE);

            let mut out = poisoned::<T>(n);
            norm::rms_norm(&dev, &s, &dx, &dw, 1e-6, hidden, &mut out).unwrap();
            let e = rel_err(
                &f32s(&out.to_vec().unwrap()),
                &rounded::<T>(&norm::rms_norm_ref(&x, &w, 1e-6, hidden)),
            );
            assert!(e < 1e-3, "rms {tag}: {e}");

            let mut out = poisoned::<T>(n);
            let mut dr = dev.upload(&r).unwrap();
            norm::rms_norm_residual(&dev, &s, &dx, &mut dr, &dw, 1e-6, hidden, &mut out).unwrap();
            let (want, h) = norm::rms_norm_residual_ref(&x, &r, &w, 1e-6, hidden);
            let e = rel_err(&f32s(&out.to_vec().unwrap()), &rounded::<T>(&want));
            assert!(e < 1e-3, "rms_add {tag}: {e}");
            assert_eq!(
                bytemuck::cast_slice::<T, u8>(&dr.to_vec().unwrap()),
                bytemuck::cast_slice::<T, u8>(&h),
                "residual {tag}"
            );

            let mut out = poisoned::<T>(n);
            norm::layer_norm(&dev, &s, &dx, &dw, &db, 1e-5, hidden, &mut out).unwrap();
            let e = rel_err(
                &f32s(&out.to_vec().unwrap()),
                &rounded::<T>(&norm::layer_norm_ref(&x, &w, &b, 1e-5, hidden)),
            );
            assert!(e < 1e-3, "layer {tag}: {e}");
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn norm_f32() {
    norms::<f32>(1);
}
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn norm_f16() {
    norms::<f16>(2);
}
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn norm_bf16() {
    norms::<bf16>(3);
}

fn activations<T: Element>(seed: u64) {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    for (ci, &cols) in [576usize, 4096, 5120, 1000, 17].iter().enumerate() {
        for &rows in &ROWS {
            let sd = seed + 10 * ci as u64 + rows as u64;
            let n = rows * cols;
            let g: Vec<T> = to(&rand_f32(n, sd).iter().map(|v| v * 4.0).collect::<Vec<_>>());
            let u: Vec<T> = to(&rand_f32(n, sd + 1));
            let (dg, du) = (dev.upload(&g).unwrap(), dev.upload(&u).unwrap());
            let tag = format!("{} cols={cols} rows={rows}", T::DTYPE);
            let check = |name: &str, out: &Buffer<T>, want: Vec<f32>| {
                let e = rel_err(&f32s(&out.to_vec().unwrap()), &rounded::<T>(&want));
                assert!(e < 1e-3, "{name} {tag}: {e}");
            };
            let mut out = poisoned::<T>(n);
            activation::swiglu(&dev, &s, &dg, &du, cols, &mut out).unwrap();
            check(
                "swiglu",
                &out,
                activation::act_ref(Act::SwiGlu, rows, cols, &g, cols, &u, cols),
            );
            // fused gate_up [rows, 2·cols]
            let gu: Vec<T> = (0..rows)
                .flat_map(|r| {
                    g[r * cols..(r + 1) * cols]
                        .iter()
                        .chain(&u[r * cols..(r + 1) * cols])
                        .copied()
                })
                .collect();
            let dgu = dev.upload(&gu).unwrap();
            let mut out = poisoned::<T>(n);
            activation::swiglu_fused(&dev, &s, &dgu, cols, &mut out).unwrap();
            check(
                "swiglu_fused",
                &out,
                activation::act_ref(
                    Act::SwiGlu,
                    rows,
                    cols,
                    &gu,
                    2 * cols,
                    &gu[cols..],
                    2 * cols,
                ),
            );
            for act in [Act::GeluTanh, Act::GeluErf] {
                let mut out = poisoned::<T>(n);
                activation::gelu(&dev, &s, act, &dg, cols, &mut out).unwrap();
                check(
                    &format!("{act:?}"),
                    &out,
                    activation::act_ref(act, rows, cols, &g, cols, &[], cols),
                );
            }
            let mut out = poisoned::<T>(n);
            activation::add(&dev, &s, &dg, &du, &mut out).unwrap();
            check(
                "add",
                &out,
                activation::act_ref(Act::Add, 1, n, &g, n, &u, n),
            );
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn activation_f32() {
    activations::<f32>(10);
}
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn activation_f16() {
    activations::<f16>(20);
}
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn activation_bf16() {
    activations::<bf16>(30);
}

fn embed_float<T: Element, O: Element>(seed: u64) {
    let dev = device();
    let s = dev.default_stream();
    for &dim in &[576usize, 1000, 4096, 17] {
        let vocab = 300;
        let table: Vec<T> = to(&rand_f32(vocab * dim, seed + dim as u64));
        let mut ids: Vec<i32> = rand_f32(64, seed)
            .iter()
            .map(|v| ((v + 1.0) * 150.0) as i32)
            .collect();
        ids[3] = -1;
        ids[9] = vocab as i32;
        ids[10] = vocab as i32 - 1;
        let (dt, di) = (dev.upload(&table).unwrap(), dev.upload(&ids).unwrap());
        let mut out = poisoned::<O>(ids.len() * dim);
        embedding::embed(&dev, &s, &dt, dim, &di, &mut out).unwrap();
        let got = f32s(&out.to_vec().unwrap());
        let want = rounded::<O>(&embedding::embed_ref(&f32s(&table), dim, &ids));
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "embed {}→{} dim={dim} at {i}: {a} vs {b}",
                T::DTYPE,
                O::DTYPE
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn embedding_float_tables() {
    embed_float::<f32, f16>(1);
    embed_float::<f16, f32>(2);
    embed_float::<bf16, bf16>(3);
    embed_float::<f16, f16>(4);
    embed_float::<bf16, f32>(5);
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn embedding_quantized_tables_every_format() {
    let dev = device();
    let s = dev.default_stream();
    let (vocab, dim) = (40, 512);
    let ids: Vec<i32> = vec![0, 39, 7, 7, -3, 12, 40, 1];
    let di = dev.upload(&ids).unwrap();
    let quantized = rocmforge::ops::quantized::FORMATS
        .iter()
        .filter(|f| !matches!(**f, "f32" | "f16" | "bf16"));
    for name in quantized {
        let fmt = QuantType::from_name(name).unwrap();
        let tf = rand_f32(vocab * dim, 77);
        let tq = quant::quantize_to_vec(fmt, &tf).unwrap();
        let td = quant::dequantize_to_vec(fmt, &tq, vocab * dim).unwrap();
        let dt = dev.upload(&tq).unwrap();
        let mut out = poisoned::<f32>(ids.len() * dim);
        embedding::embed_quant(&dev, &s, fmt, &dt, dim, &di, &mut out).unwrap();
        let got = out.to_vec().unwrap();
        let want = embedding::embed_ref(&td, dim, &ids);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "embed {name} at {i}: {a} vs {b}"
            );
        }
        // the whole-matrix dequantization used by the BLAS fallback, to f16
        let mut all = poisoned::<f16>(vocab * dim);
        embedding::dequant_rows(&dev, &s, fmt, &dt, dim, &mut all).unwrap();
        let g = f32s(&all.to_vec().unwrap());
        assert_eq!(g, rounded::<f16>(&td), "dequant_rows {name}");
    }
}

/// (m, n, k) shapes: awkward M and N, K a multiple of 256 (K-quants).
const GEMM_SHAPES: [(usize, usize, usize); 6] = [
    (1, 1000, 512),
    (7, 576, 1024),
    (16, 4096, 512),
    (64, 1000, 768),
    (100, 130, 256),
    (513, 576, 512),
];

fn gemm_case(
    fmt: QuantType,
    (m, n, k): (usize, usize, usize),
    seed: u64,
) -> (Vec<f16>, Vec<u8>, Vec<f32>, Vec<f16>) {
    let x: Vec<f16> = rand_f32(m * k, seed)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let wq = quant::quantize_to_vec(fmt, &rand_f32(n * k, seed + 1)).unwrap();
    let wd = quant::dequantize_to_vec(fmt, &wq, n * k).unwrap();
    let bias: Vec<f16> = rand_f32(n, seed + 2)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    (x, wq, wd, bias)
}

fn check_gemm(tag: &str, got: &[f16], want: &[f64]) {
    let g: Vec<f32> = got.iter().map(|v| v.to_f32()).collect();
    let w: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    let e = rel_err(&g, &w);
    assert!(e < 1e-3, "{tag}: rel err {e}");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn qgemm_every_tile_against_f64() {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    let path = qgemm::path_for(dev.target());
    let fmts = [
        QuantType::Q4_0,
        QuantType::Q4_K,
        QuantType::Q8_0,
        QuantType::MXFP4,
        QuantType::F16,
        QuantType::Q5_1,
        QuantType::Q6_K,
        QuantType::MX_FP8_E4M3,
        QuantType::BF16,
    ];
    for (fi, &fmt) in fmts.iter().enumerate() {
        for (si, &(m, n, k)) in GEMM_SHAPES.iter().enumerate() {
            let (x, wq, wd, bias) = gemm_case(fmt, (m, n, k), 1000 + 10 * fi as u64 + si as u64);
            let want = qgemm::qgemm_ref(&x, &wd, Some(&bias), m, n, k);
            let (dx, dw, db) = (
                dev.upload(&x).unwrap(),
                dev.upload(&wq).unwrap(),
                dev.upload(&bias).unwrap(),
            );
            let mut runs: Vec<(&str, qgemm::Tile)> =
                qgemm::tiles(path).iter().map(|&t| (path, t)).collect();
            if path != "simt" {
                runs.push(("simt", qgemm::tiles("simt")[0]));
            }
            for (p, tile) in runs {
                let mut y = poisoned::<f16>(m * n);
                qgemm::qgemm(
                    &dev,
                    &s,
                    &dx,
                    &dw,
                    fmt,
                    (m, n, k),
                    Some(&db),
                    &mut y,
                    Some(p),
                    Some(tile),
                )
                .unwrap();
                check_gemm(
                    &format!("qgemm {fmt} {p} {tile:?} m={m} n={n} k={k}"),
                    &y.to_vec().unwrap(),
                    &want,
                );
            }
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn linear_dispatch_gemv_and_qgemm() {
    let dev = device();
    let s = dev.default_stream();
    for (i, &(m, n, k)) in [
        (1usize, 1000usize, 512usize),
        (8, 576, 1024),
        (9, 576, 1024),
        (64, 1000, 768),
    ]
    .iter()
    .enumerate()
    {
        for fmt in [QuantType::Q4_K, QuantType::Q8_0] {
            let (x, wq, wd, bias) = gemm_case(fmt, (m, n, k), 3000 + i as u64);
            let want = qgemm::qgemm_ref(&x, &wd, Some(&bias), m, n, k);
            let (dx, dw, db) = (
                dev.upload(&x).unwrap(),
                dev.upload(&wq).unwrap(),
                dev.upload(&bias).unwrap(),
            );
            let mut y = poisoned::<f16>(m * n);
            linear::linear(
                &dev,
                &s,
                &dx,
                &dw,
                fmt,
                (m, n, k),
                Some(&db),
                &mut y,
                linear::LinearPath::Auto,
            )
            .unwrap();
            check_gemm(
                &format!("linear auto {fmt} m={m}"),
                &y.to_vec().unwrap(),
                &want,
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn dequant_plus_blas_against_f64() {
    let dev = device();
    let s = dev.default_stream();
    let blas = Blas::new(&dev).unwrap();
    eprintln!("BLAS: {}", blas.describe());
    for (i, &(m, n, k)) in GEMM_SHAPES.iter().enumerate() {
        for fmt in [
            QuantType::F16,
            QuantType::Q4_0,
            QuantType::Q4_K,
            QuantType::MXFP4,
        ] {
            let (x, wq, wd, bias) = gemm_case(fmt, (m, n, k), 5000 + i as u64);
            let want = qgemm::qgemm_ref(&x, &wd, Some(&bias), m, n, k);
            let (dx, dw, db) = (
                dev.upload(&x).unwrap(),
                dev.upload(&wq).unwrap(),
                dev.upload(&bias).unwrap(),
            );
            let mut scratch = dev.alloc::<f16>(n * k).unwrap();
            let mut y = poisoned::<f16>(m * n);
            linear::linear_blas(
                &dev,
                &s,
                &blas,
                &dx,
                &dw,
                fmt,
                (m, n, k),
                Some(&db),
                &mut y,
                &mut scratch,
            )
            .unwrap();
            check_gemm(
                &format!("dequant+BLAS {fmt} m={m} n={n} k={k}"),
                &y.to_vec().unwrap(),
                &want,
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn shape_errors_are_reported_before_launch() {
    let dev = device();
    let s = dev.default_stream();
    let x = dev.alloc::<f16>(10).unwrap();
    let w = dev.alloc::<f16>(4).unwrap();
    let mut o = dev.alloc::<f16>(10).unwrap();
    let e = norm::rms_norm(&dev, &s, &x, &w, 1e-6, 5, &mut o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight has 4 elements, expected 5"), "{e}");
    let e = norm::rms_norm(&dev, &s, &x, &w, 1e-6, 4, &mut o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a whole number of rows"), "{e}");
    let wq = dev.alloc::<u8>(18).unwrap();
    let mut y = dev.alloc::<f16>(1).unwrap();
    let e = qgemm::qgemm(
        &dev,
        &s,
        &x,
        &wq,
        QuantType::Q4_0,
        (1, 1, 10),
        None,
        &mut y,
        None,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("multiple of 32"), "{e}");
}
