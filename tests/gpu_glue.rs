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
