//! The model's glue kernels (`resid_norm`, `gated`) on the device against their CPU references
//! (`ops::glue::*_ref`) on seeded random rows. Outputs are poisoned (0xff = NaN) first, so an unwritten
//! element fails; the 8-bit outputs must equal `gemv_q8::quantize_x_ref` of the f16 output bit for bit.
//! Row lengths cover a row shorter than the block, the small models' rows (576, 640), the edge of the
//! register-resident form (1024 on 256 threads, 4096 on 1024) and rows past it (5120, 8192: the loop
//! form), and 1000 (not a multiple of 32: no 8-bit output).

mod common;

use common::*;
use half::f16;
use rocmforge::gpu::Buffer;
use rocmforge::ops::glue;
use rocmforge::ops::quantized::gemv_q8;
use serial_test::serial;

const DIMS: [usize; 9] = [32, 96, 576, 640, 1000, 1024, 4096, 5120, 8192];
const ROWS: [usize; 3] = [1, 3, 17];

fn f16s(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// The 8-bit output in `q8` (codes, then the per-16 pairs) against the quantization of `out`.
fn check_q8(q8: &Buffer<u8>, out: &[f16], rows: usize, d: usize, tag: &str) {
    let got = q8.to_vec().unwrap();
    let h: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
    let (codes, pairs) = gemv_q8::quantize_x_ref(&h, rows, d).unwrap();
    let n = rows * d;
    assert_eq!(
        &got[..n],
        bytemuck::cast_slice::<i8, u8>(&codes),
        "8-bit codes {tag}"
    );
    assert_eq!(
        &got[n..n + n / 2],
        bytemuck::cast_slice::<[f32; 2], u8>(&pairs),
        "8-bit scales {tag}"
    );
}

/// The f16 output `got` against the f32 reference `want` (rounded to f16 as the kernel rounds), and with
/// `q8` its 8-bit copy in `dq`.
fn check_out(got: &[f16], want: &[f32], dq: Option<&Buffer<u8>>, rows: usize, d: usize, tag: &str) {
    let e = rel_err(
        &got.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
        &rounded(want),
    );
    assert!(e < 1e-3, "{tag}: {e}");
    if let Some(dq) = dq {
        check_q8(dq, got, rows, d, tag);
    }
}

/// One resid_norm case: `r`, `post` (needs r), `norm` (the f16 output) and `q8` switched on or off.
#[allow(clippy::too_many_arguments)]
fn resid_case(
    rows: usize,
    d: usize,
    seed: u64,
    r: bool,
    post: bool,
    norm: bool,
    q8: bool,
    scale: f32,
) {
    let dev = device();
    let s = dev.default_stream();
    let n = rows * d;
    let x0: Vec<f32> = rand_f32(n, seed).iter().map(|v| v * 2.0).collect();
    let rv = rounded(&rand_f32(n, seed + 1));
    let pw: Vec<f32> = rand_f32(d, seed + 2).iter().map(|v| 1.0 + v).collect();
    let w: Vec<f32> = rand_f32(d, seed + 3)
        .iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    let tag = format!("rows={rows} d={d} r={r} post={post} norm={norm} q8={q8} scale={scale}");

    let mut dx = dev.upload(&x0).unwrap();
    let dr = dev.upload(&f16s(&rv)).unwrap();
    let dp = dev.upload(&pw).unwrap();
    let dw = dev.upload(&w).unwrap();
    let mut out = poisoned::<f16>(n);
    let mut dq = poisoned::<u8>(gemv_q8::act_bytes(rows, d));
    glue::resid_norm(
        &dev,
        &s,
        &mut dx,
        rows,
        d,
        scale,
        r.then_some(&dr),
        post.then_some(&dp),
        &dw,
        1e-6,
        norm.then_some(&mut out),
        q8.then_some(&mut dq),
    )
    .unwrap_or_else(|e| panic!("{tag}: {e}"));

    let mut xr = x0.clone();
    let want = glue::resid_norm_ref(
        &mut xr,
        d,
        scale,
        r.then_some(&rv[..]),
        post.then_some(&pw[..]),
        &w,
        1e-6,
    );
    let got_x = dx.to_vec().unwrap();
    let e = rel_err(&got_x, &xr);
    assert!(e < 1e-5, "residual stream {tag}: {e}");
    if norm {
        let tag = format!("normed output {tag}");
        check_out(
            &out.to_vec().unwrap(),
            &want,
            q8.then_some(&dq),
            rows,
            d,
            &tag,
        );
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn resid_norm_matches_reference() {
    let dev = device();
    let before = dev.allocated_bytes();
    for (di, &d) in DIMS.iter().enumerate() {
        for (ri, &rows) in ROWS.iter().enumerate() {
            let seed = 1000 * di as u64 + 100 * ri as u64;
            let q8 = d % 32 == 0;
            // a decoder layer's residual add and the next norm (8-bit output where the row allows)
            resid_case(rows, d, seed, true, false, true, q8, 1.0);
            // Gemma 3: the post-norm on r before the add
            resid_case(rows, d, seed + 10, true, true, true, false, 1.0);
            // the first norm: no r, the embedding scale
            resid_case(rows, d, seed + 20, false, false, true, q8, 0.75);
            // the last residual add: no norm
            resid_case(rows, d, seed + 30, true, false, false, false, 1.0);
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gated_matches_reference() {
    let dev = device();
    let s = dev.default_stream();
    for (ci, &cols) in [32usize, 96, 1000, 1536, 14336].iter().enumerate() {
        for (ri, &rows) in ROWS.iter().enumerate() {
            for gelu in [false, true] {
                let seed = 7000 + 100 * ci as u64 + 10 * ri as u64 + gelu as u64;
                let n = rows * cols;
                let g = rounded(
                    &rand_f32(n, seed)
                        .iter()
                        .map(|v| 4.0 * v)
                        .collect::<Vec<_>>(),
                );
                let u = rounded(&rand_f32(n, seed + 1));
                let (dg, du) = (
                    dev.upload(&f16s(&g)).unwrap(),
                    dev.upload(&f16s(&u)).unwrap(),
                );
                let mut out = poisoned::<f16>(n);
                let q8 = cols % 32 == 0;
                let mut dq = poisoned::<u8>(gemv_q8::act_bytes(rows, cols));
                let tag = format!("rows={rows} cols={cols} gelu={gelu}");
                glue::gated(
                    &dev,
                    &s,
                    &dg,
                    &du,
                    &mut out,
                    rows,
                    cols,
                    gelu,
                    q8.then_some(&mut dq),
                )
                .unwrap_or_else(|e| panic!("{tag}: {e}"));
                let want = glue::gated_ref(&g, &u, gelu);
                let tag = format!("gated {tag}");
                check_out(
                    &out.to_vec().unwrap(),
                    &want,
                    q8.then_some(&dq),
                    rows,
                    cols,
                    &tag,
                );
            }
        }
    }
}

/// `gemv_norm` (the residual add and RMSNorm made inside the blocks of the batch-1 GEMV that consumes
/// them): against its CPU reference (the f64 product of the f16-rounded norm output), and against the two
/// launches it replaces (`resid_norm`, then `gemv` / `gemv_glu` of the same `gemv_wave` instance): the
/// same f32 operations but the norm's sums in another order, so equal up to a rounding of h. Formats of
/// 32- and 256-element blocks (mxfp4 is refused), with and without the GLU epilogue and Gemma's post-norm,
/// rows from 32 to the prologue's limit, outputs of 1..1000 rows; y and x_out poisoned, guards after them.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn gemv_norm_matches_reference_and_two_launches() {
    use rocmforge::ops::quantized::gemv::{self, GemvConfig, GluAct};
    use rocmforge::ops::quantized::{gemv_norm, kernel_qk};
    use rocmforge::quant::{self, QuantType};
    const GUARD: usize = 64;
    let dev = device();
    let s = dev.default_stream();
    let wave = dev.target().wave_size;
    let before = dev.allocated_bytes();
    let fmts = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q8_0,
        QuantType::Q6_K,
        QuantType::Q5_K,
    ];
    let max = gemv_norm::max_cols(wave);
    let mut cases = 0;
    for (fi, &ty) in fmts.iter().enumerate() {
        let qk = kernel_qk(ty);
        let glus: &[Option<GluAct>] = if qk > 32 {
            &[None]
        } else {
            &[None, Some(GluAct::Silu), Some(GluAct::GeluTanh)]
        };
        for &cols in &[32usize, 64, 576, 640, max] {
            if cols % qk != 0 {
                continue;
            }
            for &rows_out in &[1usize, 17, 96, 1000] {
                for &glu in glus {
                    for post in [false, true] {
                        let seed = 9000 + 1000 * fi as u64 + cols as u64 + 7 * rows_out as u64;
                        let tag = format!("{ty} {rows_out}x{cols} glu={glu:?} post={post}");
                        let wrows = if glu.is_some() {
                            2 * rows_out
                        } else {
                            rows_out
                        };
                        let scale = 1.0 / (cols as f32).sqrt();
                        let wv: Vec<f32> = rand_f32(wrows * cols, seed)
                            .iter()
                            .enumerate()
                            .map(|(j, v)| v * scale * [1.0, 0.5, 2.0, 0.25][(j / cols) % 4])
                            .collect();
                        let wb = quant::quantize_to_vec(ty, &wv).unwrap();
                        let x0: Vec<f32> =
                            rand_f32(cols, seed + 1).iter().map(|v| 2.0 * v).collect();
                        let rv = rounded(&rand_f32(cols, seed + 2));
                        let pw: Vec<f32> =
                            rand_f32(cols, seed + 3).iter().map(|v| 1.0 + v).collect();
                        let nw: Vec<f32> = rand_f32(cols, seed + 4)
                            .iter()
                            .map(|v| 1.0 + 0.5 * v)
                            .collect();
                        let w = dev.upload(&wb).unwrap();
                        let dx = dev.upload(&x0).unwrap();
                        let dr = dev.upload(&f16s(&rv)).unwrap();
                        let dp = dev.upload(&pw).unwrap();
                        let dn = dev.upload(&nw).unwrap();
                        let xo_all = poisoned::<f32>(cols + GUARD);
                        let y_all = poisoned::<f16>(rows_out + GUARD);
                        let mut xo = xo_all.view(0, cols).unwrap();
                        let mut y = y_all.view(0, rows_out).unwrap();
                        let n = gemv_norm::NormIn {
                            x: &dx,
                            r: &dr,
                            post: post.then_some(&dp),
                            w: &dn,
                            eps: 1e-6,
                        };
                        gemv_norm::gemv_norm(
                            &dev, &s, ty, &w, rows_out, cols, &n, &mut xo, &mut y, glu,
                        )
                        .unwrap_or_else(|e| panic!("{tag}: {e}"));
                        s.synchronize().unwrap();
                        let xo_got = xo_all.to_vec().unwrap();
                        let y_got: Vec<f32> =
                            y_all.to_vec().unwrap().iter().map(|v| v.to_f32()).collect();
                        assert!(
                            xo_got[cols..].iter().all(|v| v.is_nan()),
                            "{tag}: written past x_out"
                        );
                        assert!(
                            y_got[rows_out..].iter().all(|v| v.is_nan()),
                            "{tag}: written past y"
                        );
                        let (xo_got, y_got) = (&xo_got[..cols], &y_got[..rows_out]);

                        // the CPU reference
                        let mut xr = x0.clone();
                        let want = gemv_norm::gemv_norm_ref(
                            ty,
                            &wb,
                            rows_out,
                            &mut xr,
                            &rv,
                            post.then_some(&pw[..]),
                            &nw,
                            1e-6,
                            glu,
                        )
                        .unwrap();
                        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
                        let e = rel_err(xo_got, &xr);
                        assert!(e < 1e-6, "{tag}: x_out rel err {e}");
                        let e = rel_err(y_got, &want);
                        assert!(e < 2e-3, "{tag}: y against the reference, rel err {e}");

                        // the two launches it replaces
                        let mut dx2 = dev.upload(&x0).unwrap();
                        let mut h = poisoned::<f16>(cols);
                        glue::resid_norm(
                            &dev,
                            &s,
                            &mut dx2,
                            1,
                            cols,
                            1.0,
                            Some(&dr),
                            post.then_some(&dp),
                            &dn,
                            1e-6,
                            Some(&mut h),
                            None,
                        )
                        .unwrap();
                        let mut y2 = poisoned::<f16>(rows_out);
                        let c = GemvConfig {
                            rows: gemv::WAVE_ROWS,
                        };
                        match glu {
                            Some(a) => gemv::gemv_glu_with(
                                &dev, &s, ty, &w, rows_out, cols, &h, 1, &mut y2, a, c,
                            ),
                            None => {
                                gemv::gemv_with(&dev, &s, ty, &w, rows_out, cols, &h, 1, &mut y2, c)
                            }
                        }
                        .unwrap();
                        s.synchronize().unwrap();
                        let x2 = dx2.to_vec().unwrap();
                        let e = rel_err(xo_got, &x2);
                        assert!(e < 1e-6, "{tag}: x_out against resid_norm's, rel err {e}");
                        let y2: Vec<f32> =
                            y2.to_vec().unwrap().iter().map(|v| v.to_f32()).collect();
                        let e = rel_err(y_got, &y2);
                        assert!(e < 1e-3, "{tag}: y against the two launches, rel err {e}");
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases >= 200, "{cases} cases");
    // bad input is an error before anything is launched
    let w = dev.upload(&vec![0u8; 4 * 34]).unwrap();
    let x: Buffer<f32> = dev.alloc(64).unwrap();
    let r: Buffer<f16> = dev.alloc(64).unwrap();
    let nw: Buffer<f32> = dev.alloc(64).unwrap();
    let n = gemv_norm::NormIn {
        x: &x,
        r: &r,
        post: None,
        w: &nw,
        eps: 1e-6,
    };
    // the error of one q8_0 call (W rows x cols) into x_out
    let refused =
        |w: &Buffer<u8>, rows: usize, cols: usize, n: &gemv_norm::NormIn, xo: &mut Buffer<f32>| {
            let mut y: Buffer<f16> = dev.alloc(rows).unwrap();
            gemv_norm::gemv_norm(
                &dev,
                &s,
                QuantType::Q8_0,
                w,
                rows,
                cols,
                n,
                xo,
                &mut y,
                None,
            )
            .unwrap_err()
            .to_string()
        };
    let mut same = x.view(0, 64).unwrap();
    let e = refused(&w, 2, 64, &n, &mut same);
    assert!(e.contains("overlaps"), "{e}");
    let mut short: Buffer<f32> = dev.alloc(32).unwrap();
    let e = refused(&w, 2, 64, &n, &mut short);
    assert!(e.contains("x_out has 32"), "{e}");
    let big = max + 32;
    let wb = dev.upload(&vec![0u8; big / 32 * 34]).unwrap();
    let xb: Buffer<f32> = dev.alloc(big).unwrap();
    let mut xob: Buffer<f32> = dev.alloc(big).unwrap();
    let e = refused(&wb, 1, big, &gemv_norm::NormIn { x: &xb, ..n }, &mut xob);
    assert!(e.contains("prologue"), "{e}");
    drop((w, x, r, nw, same, short, wb, xb, xob));
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}
