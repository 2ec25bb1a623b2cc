//! The integer-dot GEMV (`ops::quantized::gemv_q8`) on the GPU against its CPU references: the
//! activation quantizer bit-exact (codes and per-16 pairs), and the GEMV within f32 rounding of the
//! f64 product of the dequantized weights and the dequantized codes, for every format it supports,
//! every configuration, batches 1..8 and awkward shapes; outputs poisoned before each run.

mod common;
use common::*;

use half::{bf16, f16};
use rocmforge::gpu::{Buffer, Device};
use rocmforge::ops::quantized::gemv_q8::{self, GemvQ8Config};
use rocmforge::ops::quantized::kernel_qk;
use rocmforge::ops::Element;
use rocmforge::quant::{self, QuantType};

fn quantize_on_gpu<T: Element>(dev: &Device, x: &[f32], batch: usize, cols: usize) -> Buffer<u8> {
    let xt: Vec<T> = x.iter().map(|v| T::from_f32(*v)).collect();
    let xb = dev.upload(&xt).unwrap();
    let mut q: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(batch, cols)).unwrap();
    q.fill_bytes(0xa5).unwrap();
    let s = dev.default_stream();
    gemv_q8::quantize_x(dev, &s, &xb, batch, cols, &mut q).unwrap();
    s.synchronize().unwrap();
    q
}

fn check_act<T: Element>(dev: &Device, x: &[f32], batch: usize, cols: usize) {
    // the reference sees x as the kernel does: rounded to T
    let xr: Vec<f32> = x.iter().map(|v| T::from_f32(*v).to_f32()).collect();
    let (q, s) = gemv_q8::quantize_x_ref(&xr, batch, cols).unwrap();
    let got = quantize_on_gpu::<T>(dev, x, batch, cols).to_vec().unwrap();
    let n = batch * cols;
    for (i, (&g, &w)) in got[..n].iter().zip(&q).enumerate() {
        assert_eq!(g as i8, w, "{} code {i} of {batch}x{cols}", T::DTYPE);
    }
    for (i, pair) in got[n..].chunks_exact(8).enumerate() {
        let d = f32::from_le_bytes(pair[..4].try_into().unwrap());
        let sm = f32::from_le_bytes(pair[4..].try_into().unwrap());
        assert_eq!(
            (d.to_bits(), sm.to_bits()),
            (s[i][0].to_bits(), s[i][1].to_bits()),
            "{} pair {i} of {batch}x{cols}: got ({d}, {sm}) want {:?}",
            T::DTYPE,
            s[i]
        );
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn activation_quantizer_bit_exact() {
    let dev = device();
    for (batch, cols) in [(1usize, 32usize), (3, 96), (8, 4096), (1, 14336), (5, 544)] {
        let mut x = rand_f32(batch * cols, (batch * 7 + cols) as u64);
        // varied scales, an all-zero block and exact ties
        for (i, v) in x.iter_mut().enumerate() {
            *v *= [1.0, 1e-3, 37.0, 1e-6][(i / 32) % 4];
        }
        x[..32].iter_mut().for_each(|v| *v = 0.0);
        if cols >= 64 {
            x[32] = 127.0;
            x[33] = 0.5;
            x[34] = -1.5;
        }
        check_act::<f32>(&dev, &x, batch, cols);
        check_act::<f16>(&dev, &x, batch, cols);
        check_act::<bf16>(&dev, &x, batch, cols);
    }
}

fn run<T: Element>(
    dev: &Device,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    xq: &Buffer<u8>,
    batch: usize,
    cfg: GemvQ8Config,
) -> Vec<f32> {
    let mut y: Buffer<T> = dev.alloc(batch * rows).unwrap();
    y.fill_bytes(0xff).unwrap();
    let s = dev.default_stream();
    gemv_q8::gemv_q8(dev, &s, ty, w, rows, cols, xq, batch, &mut y, Some(cfg)).unwrap();
    s.synchronize().unwrap();
    y.to_vec()
        .unwrap()
        .into_iter()
        .map(|v| v.to_f32())
        .collect()
}

fn check(dev: &Device, ty: QuantType, bytes: &[u8], rows: usize, cols: usize, what: &str) {
    let w = dev.upload(bytes).unwrap();
    for batch in [1usize, 2, 3, 5, 8] {
        let x = rand_f32(batch * cols, (rows * 31 + cols + batch) as u64);
        let xq = quantize_on_gpu::<f32>(dev, &x, batch, cols);
        let want: Vec<f32> = gemv_q8::gemv_q8_ref(ty, bytes, rows, cols, &x, batch)
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        for cfg in GemvQ8Config::candidates(ty, batch) {
            let e = rel_err(&run::<f32>(dev, ty, &w, rows, cols, &xq, batch, cfg), &want);
            assert!(
                e <= 1e-5,
                "{what} {ty} {rows}x{cols} batch {batch} {cfg:?} f32: rel err {e}"
            );
            let e = rel_err(&run::<f16>(dev, ty, &w, rows, cols, &xq, batch, cfg), &want);
            assert!(
                e <= 1e-3,
                "{what} {ty} {rows}x{cols} batch {batch} {cfg:?} f16: rel err {e}"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn every_format_random() {
    let dev = device();
    let before = dev.allocated_bytes();
    // ROCMFORGE_TEST_FORMATS=q4_K,q6_K narrows the run (for compute-sanitizer)
    let only = std::env::var("ROCMFORGE_TEST_FORMATS").ok();
    for (i, name) in gemv_q8::FORMATS.iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|f| f == *name))
        {
            continue;
        }
        let ty = QuantType::from_name(name).unwrap();
        let qk = kernel_qk(ty);
        let many = if qk >= 256 { 67 } else { 301 };
        for (rows, nb) in [(1usize, 1usize), (17, 3), (1000, 2), (33, 16), (40, many)] {
            let cols = nb * qk;
            let mut v = rand_f32(rows * cols, 11 + i as u64);
            v.iter_mut().enumerate().for_each(|(j, x)| {
                *x *= [1.0, 1e-3, 37.0][(j / cols) % 3] * (1.0 + (j % 7) as f32)
            });
            let bytes = quant::quantize_to_vec(ty, &v).unwrap();
            check(&dev, ty, &bytes, rows, cols, "random");
        }
    }
    assert_eq!(dev.allocated_bytes(), before);
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn bad_input_is_rejected_before_launch() {
    let dev = device();
    let s = dev.default_stream();
    let w = dev.upload(&[0u8; 36]).unwrap();
    let xq: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(1, 64)).unwrap();
    let mut y: Buffer<f32> = dev.alloc(1).unwrap();
    // cols not a multiple of 32
    let e =
        gemv_q8::gemv_q8(&dev, &s, QuantType::Q4_0, &w, 1, 48, &xq, 1, &mut y, None).unwrap_err();
    assert!(e.to_string().contains("multiple of 32"), "{e}");
    // a format without an integer decoder
    let wf = dev.upload(&[0u8; 128]).unwrap();
    let e =
        gemv_q8::gemv_q8(&dev, &s, QuantType::F16, &wf, 1, 64, &xq, 1, &mut y, None).unwrap_err();
    assert!(e.to_string().contains("no integer decoder"), "{e}");
    // quantized x too short for the batch
    let w2 = dev.upload(&[0u8; 72]).unwrap();
    let mut y2: Buffer<f32> = dev.alloc(8).unwrap();
    let e =
        gemv_q8::gemv_q8(&dev, &s, QuantType::Q4_0, &w2, 2, 64, &xq, 4, &mut y2, None).unwrap_err();
    assert!(e.to_string().contains("quantized x"), "{e}");
}
