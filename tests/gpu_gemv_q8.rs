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

/// The integer formats with their index, narrowed by ROCMFORGE_TEST_FORMATS=q4_K,q6_K (for
/// compute-sanitizer and the emulated targets).
fn test_formats() -> Vec<(usize, QuantType)> {
    let only = std::env::var("ROCMFORGE_TEST_FORMATS").ok();
    gemv_q8::FORMATS
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            !only
                .as_ref()
                .is_some_and(|o| !o.split(',').any(|f| f == **n))
        })
        .map(|(i, n)| (i, QuantType::from_name(n).unwrap()))
        .collect()
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn every_format_random() {
    let dev = device();
    let before = dev.allocated_bytes();
    for (i, ty) in test_formats() {
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

// ---- the fused forms (gemv_q8_fused): a decode layer's residual add, norm and gated activation ----

fn upload_f32(dev: &Device, v: &[f32]) -> Buffer<f32> {
    dev.upload(v).unwrap()
}

/// Codes and per-16 pairs of a batch-1 8-bit buffer of `n` elements.
fn split_q8(b: &[u8], n: usize) -> (Vec<i8>, Vec<[u32; 2]>) {
    let q = b[..n].iter().map(|&v| v as i8).collect();
    let s = b[n..n + n / 2]
        .chunks_exact(8)
        .map(|p| {
            [
                u32::from_le_bytes(p[..4].try_into().unwrap()),
                u32::from_le_bytes(p[4..].try_into().unwrap()),
            ]
        })
        .collect();
    (q, s)
}

fn bits(v: &[[f32; 2]]) -> Vec<[u32; 2]> {
    v.iter().map(|p| [p[0].to_bits(), p[1].to_bits()]).collect()
}

fn quantized(ty: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut v = rand_f32(rows * cols, seed);
    v.iter_mut()
        .enumerate()
        .for_each(|(j, x)| *x *= [1.0, 0.05, 3.0][(j / cols) % 3]);
    quant::quantize_to_vec(ty, &v).unwrap()
}

/// The configurations of a fused form this device's wave size has instances for.
fn fused_cfgs(dev: &Device, ty: QuantType, fuse: &str) -> Vec<GemvQ8Config> {
    let mut v = Vec::new();
    for &rows in gemv_q8::ROWS {
        for &waves in gemv_q8::FUSED_WAVES {
            let c = GemvQ8Config {
                rows: rows as usize,
                waves: waves as usize,
            };
            if gemv_q8::spec_fused(ty, "f16", 1, c, fuse, dev.target().wave_size).is_ok() {
                v.push(c);
            }
        }
    }
    assert!(!v.is_empty(), "{ty} {fuse}: no configuration");
    v
}

/// One format and shape through the three fused forms, each against the launches it replaces
/// (bit for bit where the arithmetic is the same) and the f64 product.
#[allow(clippy::too_many_arguments)]
fn check_fused(
    dev: &Device,
    ty: QuantType,
    rows: usize,
    cols: usize,
    ff: usize,
    act: gemv_q8::GluAct,
    seed: u64,
) {
    let s = dev.default_stream();
    let eps = 1e-5f32;
    let what = format!("{ty} {rows}x{cols} ff {ff} {act:?}");
    // ---- resid: y = W x, x_res += f16(y), 8-bit copy of x_res * w and sums of squares
    let wb = quantized(ty, rows, cols, seed);
    let w = dev.upload(&wb).unwrap();
    let xin = rand_f32(cols, seed + 1);
    let xq = quantize_on_gpu::<f32>(dev, &xin, 1, cols);
    let xres: Vec<f32> = rand_f32(rows, seed + 2).iter().map(|v| v * 4.0).collect();
    let nw: Vec<f32> = rand_f32(rows, seed + 3)
        .iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    let nwb = upload_f32(dev, &nw);
    let mut y16: Buffer<f16> = dev.alloc(rows).unwrap();
    y16.fill_bytes(0xff).unwrap();
    gemv_q8::gemv_q8(dev, &s, ty, &w, rows, cols, &xq, 1, &mut y16, None).unwrap();
    s.synchronize().unwrap();
    let y16 = y16.to_vec().unwrap();
    let (x_want, _, _, ss_want) = gemv_q8::resid_ref(&xres, &y16, &nw).unwrap();
    let zero = vec![f16::ZERO; rows];
    // another summation order (waves a row) moves y by rounding relative to its largest terms
    let ymax = y16.iter().fold(0f32, |m, v| m.max(v.to_f32().abs()));
    let mut q1: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(1, rows.max(ff))).unwrap();
    let mut ss: Buffer<f32> = dev.alloc(rows / 16 + 1).unwrap();
    let mut xr = upload_f32(dev, &xres);
    for cfg in fused_cfgs(dev, ty, "resid") {
        xr.copy_from_host(&xres).unwrap();
        q1.fill_bytes(0xa5).unwrap();
        ss.fill_bytes(0xff).unwrap();
        let out = gemv_q8::FusedOut::Resid {
            x: &mut xr,
            w: &nwb,
            q8: &mut q1,
            ss: &mut ss,
        };
        gemv_q8::gemv_q8_fused(dev, &s, ty, &w, rows, cols, &xq, None, out, Some(cfg)).unwrap();
        s.synchronize().unwrap();
        // x + f16(y): bit for bit where the GEMV sums in the plain launch's order (4 waves a row),
        // else within one f16 rounding of y
        let xg = xr.to_vec().unwrap();
        for (i, (g, e)) in xg.iter().zip(&x_want).enumerate() {
            let tol = if cfg.waves == 4 { 0.0 } else { ymax * 1e-3 };
            assert!(
                (g - e).abs() <= tol,
                "{what} {cfg:?} resid x[{i}]: {g} want {e}"
            );
        }
        // the 8-bit copy and the sums of squares of the launch's own x, bit for bit
        let (_, q_want, s_want, ss_want) = gemv_q8::resid_ref(&xg, &zero, &nw).unwrap();
        let (q, p) = split_q8(&q1.to_vec().unwrap(), rows);
        assert_eq!(q, q_want, "{what} {cfg:?} resid codes");
        assert_eq!(p, bits(&s_want), "{what} {cfg:?} resid pairs");
        let sg = ss.to_vec().unwrap();
        for (i, e) in ss_want.iter().enumerate() {
            assert_eq!(
                sg[i].to_bits(),
                e.to_bits(),
                "{what} {cfg:?} sum of squares {i}"
            );
        }
        assert_eq!(
            sg[rows / 16].to_bits(),
            u32::MAX,
            "{what}: a sum past the groups was written"
        );
    }
    // ---- norm: W2 (ff2 x rows) on that 8-bit norm output, 1/rms applied in the launch
    let inv =
        1.0 / ((ss_want.iter().map(|&v| v as f64).sum::<f64>() / rows as f64 + eps as f64).sqrt());
    let h: Vec<f32> = x_want
        .iter()
        .zip(&nw)
        .map(|(x, w)| (*x as f64 * *w as f64 * inv) as f32)
        .collect();
    let n2 = 2 * ff;
    let w2b = quantized(ty, n2, rows, seed + 4);
    let w2 = dev.upload(&w2b).unwrap();
    let want: Vec<f32> = gemv_q8::gemv_q8_ref(ty, &w2b, n2, rows, &h, 1)
        .unwrap()
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let nin = gemv_q8::NormIn { ss: &ss, eps };
    let mut gu: Buffer<f16> = dev.alloc(n2).unwrap();
    for cfg in fused_cfgs(dev, ty, "norm") {
        gu.fill_bytes(0xff).unwrap();
        let out = gemv_q8::FusedOut::Plain(&mut gu);
        gemv_q8::gemv_q8_fused(dev, &s, ty, &w2, n2, rows, &q1, Some(&nin), out, Some(cfg))
            .unwrap();
        s.synchronize().unwrap();
        let got: Vec<f32> = gu.to_vec().unwrap().iter().map(|v| v.to_f32()).collect();
        let e = rel_err(&got, &want);
        assert!(
            e <= 4e-3,
            "{what} {cfg:?} norm: rel err {e} to the f64 product of the normalized row"
        );
    }
    // ---- norm + gated: the same stacked matrix as gate (rows 0..ff) and up, against gated()
    let mut a_want: Buffer<f16> = dev.alloc(ff).unwrap();
    let mut q_chain: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(1, ff)).unwrap();
    let (gt, up) = (gu.view(0, ff).unwrap(), gu.view(ff, ff).unwrap());
    let gelu = matches!(act, gemv_q8::GluAct::GeluTanh);
    rocmforge::ops::glue::gated(
        dev,
        &s,
        &gt,
        &up,
        &mut a_want,
        1,
        ff,
        gelu,
        Some(&mut q_chain),
    )
    .unwrap();
    s.synchronize().unwrap();
    let a_want = a_want.to_vec().unwrap();
    let (qc, pc) = split_q8(&q_chain.to_vec().unwrap(), ff);
    let mut a: Buffer<f16> = dev.alloc(ff).unwrap();
    let mut q3: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(1, ff)).unwrap();
    let form = match act {
        gemv_q8::GluAct::Silu => "norm_silu",
        gemv_q8::GluAct::GeluTanh => "norm_gelu",
    };
    for cfg in fused_cfgs(dev, ty, form) {
        a.fill_bytes(0xff).unwrap();
        q3.fill_bytes(0xa5).unwrap();
        let out = gemv_q8::FusedOut::Glu {
            act,
            y: &mut a,
            q8: &mut q3,
        };
        gemv_q8::gemv_q8_fused(dev, &s, ty, &w2, ff, rows, &q1, Some(&nin), out, Some(cfg))
            .unwrap();
        s.synchronize().unwrap();
        // bit for bit against the GEMV + gated() where the sums run in the same order (4 waves a
        // row), else within an f16 rounding of gate and of up; the 8-bit copy of its own output
        let ag = a.to_vec().unwrap();
        let gt = gu.to_vec().unwrap();
        let amax = |v: &[f16]| v.iter().fold(0f32, |m, x| m.max(x.to_f32().abs()));
        let (gmax, umax) = (amax(&gt[..ff]), amax(&gt[ff..]));
        for (i, (g, e)) in ag.iter().zip(&a_want).enumerate() {
            let (g, e) = (g.to_f32(), e.to_f32());
            let scale = gmax.max(1.0) * umax;
            let tol = if cfg.waves == 4 {
                0.0
            } else {
                scale * 4e-3 + 1e-5
            };
            assert!(
                (g - e).abs() <= tol,
                "{what} {cfg:?} gated a[{i}]: {g} want {e}"
            );
        }
        let own: Vec<f32> = ag.iter().map(|v| v.to_f32()).collect();
        let (qo, po) = gemv_q8::quantize_x_ref(&own, 1, ff).unwrap();
        let (q, p) = split_q8(&q3.to_vec().unwrap(), ff);
        assert_eq!(q, qo, "{what} {cfg:?} gated codes");
        assert_eq!(p, bits(&po), "{what} {cfg:?} gated pairs");
        if cfg.waves == 4 {
            assert_eq!(
                (q, p),
                (qc.clone(), pc.clone()),
                "{what} {cfg:?} gated against gated()"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn fused_forms_match_the_launches_they_replace() {
    let dev = device();
    let before = dev.allocated_bytes();
    for (i, ty) in test_formats() {
        let qk = kernel_qk(ty);
        // rows: one group of 16, several, the 8B's width; cols: one block, an odd count
        for (j, &(rows, nb, ff)) in [
            (16usize, 1usize, 16usize),
            (48, 3, 80),
            (1008, 17, 496),
            (4096, 16 * 256 / qk, 1024),
        ]
        .iter()
        .enumerate()
        {
            // the norm's input rows (the next matrix's cols) must hold whole blocks
            if rows % qk != 0 {
                continue;
            }
            let act = [gemv_q8::GluAct::Silu, gemv_q8::GluAct::GeluTanh][j % 2];
            check_fused(&dev, ty, rows, nb * qk, ff, act, 100 * i as u64 + j as u64);
        }
    }
    assert_eq!(dev.allocated_bytes(), before);
}

fn resid_out<'a>(
    x: &'a mut Buffer<f32>,
    w: &'a Buffer<f32>,
    q8: &'a mut Buffer<u8>,
    ss: &'a mut Buffer<f32>,
) -> gemv_q8::FusedOut<'a> {
    gemv_q8::FusedOut::Resid { x, w, q8, ss }
}

#[test]
#[ignore = "needs a GPU"]
#[serial_test::serial]
fn fused_forms_reject_bad_input() {
    let dev = device();
    let s = dev.default_stream();
    let (rows, cols) = (32usize, 64usize);
    let w = dev
        .upload(&quantized(QuantType::Q4_0, rows, cols, 1))
        .unwrap();
    let xq: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(1, cols)).unwrap();
    let mut x: Buffer<f32> = dev.alloc(rows).unwrap();
    let nw: Buffer<f32> = dev.alloc(rows).unwrap();
    let mut q8: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(1, rows)).unwrap();
    let mut ss: Buffer<f32> = dev.alloc(rows / 16).unwrap();
    let mut y: Buffer<f16> = dev.alloc(rows).unwrap();
    let ssn: Buffer<f32> = dev.alloc(cols / 16).unwrap();
    let nin = gemv_q8::NormIn {
        ss: &ssn,
        eps: 1e-6,
    };
    let run = |norm: Option<&gemv_q8::NormIn>, out: gemv_q8::FusedOut, rows: usize| {
        gemv_q8::gemv_q8_fused(
            &dev,
            &s,
            QuantType::Q4_0,
            &w,
            rows,
            cols,
            &xq,
            norm,
            out,
            None,
        )
        .unwrap_err()
        .to_string()
    };
    let e = run(Some(&nin), resid_out(&mut x, &nw, &mut q8, &mut ss), rows);
    assert!(e.contains("plain input"), "{e}");
    let e = run(
        None,
        gemv_q8::FusedOut::Glu {
            act: gemv_q8::GluAct::Silu,
            y: &mut y,
            q8: &mut q8,
        },
        rows / 2,
    );
    assert!(e.contains("needs a NormIn"), "{e}");
    let e = run(None, gemv_q8::FusedOut::Plain(&mut y), rows);
    assert!(e.contains("gemv_q8 itself"), "{e}");
    // 8-bit outputs are whole groups of 16 rows (W of 24 rows)
    let w24 = dev
        .upload(&quantized(QuantType::Q4_0, 24, cols, 2))
        .unwrap();
    let e = gemv_q8::gemv_q8_fused(
        &dev,
        &s,
        QuantType::Q4_0,
        &w24,
        24,
        cols,
        &xq,
        None,
        resid_out(&mut x, &nw, &mut q8, &mut ss),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("multiple of 16"), "{e}");
    // too short an 8-bit output, too few sums for the norm's input
    let mut q8s: Buffer<u8> = dev.alloc(rows).unwrap();
    let e = run(None, resid_out(&mut x, &nw, &mut q8s, &mut ss), rows);
    assert!(e.contains("8-bit output"), "{e}");
    let short: Buffer<f32> = dev.alloc(1).unwrap();
    let nin2 = gemv_q8::NormIn {
        ss: &short,
        eps: 1e-6,
    };
    let e = run(Some(&nin2), gemv_q8::FusedOut::Plain(&mut y), rows);
    assert!(e.contains("sums of squares"), "{e}");
}
