//! The integer-dot decode GEMV (`gemv_q8`) per format at 4096x4096, 4096x14336 and 14336x4096
//! (rows x cols), batches 1, 2, 4, 8, against the copy ceiling and the float GEMVs (`gemv`: its
//! default at batch 1, and its mma tile — rows 16, f16 x dequantized into mma.sync fragments — at
//! every batch), all in the same run:
//!  * rotated: weight copies past L2, the GEMV alone (x already quantized) — "% copy" is weight
//!    bytes per second over the device copy bandwidth;
//!  * warm: one weight copy, L2-warm as llama.cpp's `test-backend-ops perf -o MUL_MAT` measures,
//!    activation quantization included (µs per call), to compare with its MUL_MAT lines
//!    (m = rows, n = batch, k = cols).
//!
//! Each shape also times device copies moving the weight bytes (half read, half written), rotated the
//! same way: the copy ceiling at that size, with the fill and drain a GEMV of it pays too.
//!
//! The summary's `bB/b1` is the fastest kernel at batch B over the fastest at batch 1 (issue 10:
//! ≤ 1.3), each named (q8 = gemv_q8, mma = the mma tile, fl = gemv's batch-1 default).
//!
//! `cargo bench --bench gemv_q8 [-- FORMAT,...]`; `ROCMFORGE_BENCH_GEMV_SHAPES=4096x14336,...` and
//! `ROCMFORGE_BENCH_GEMV_BATCHES=1,2` narrow the sweep, `ROCMFORGE_BENCH_GEMV_FLOAT=off` leaves out the
//! float GEMVs (their columns print NaN), `ROCMFORGE_BENCH_GEMV_EVERY=1` prints every configuration's time.

#[path = "common/mod.rs"]
mod common;

use common::{rand_vals, weights};
use half::f16;
use rocmforge::gpu::{Buffer, Device};
use rocmforge::jit::tune;
use rocmforge::ops::quantized::gemv;
use rocmforge::ops::quantized::gemv_q8::{self, GemvQ8Config};
use rocmforge::quant::QuantType;

fn main() -> rocmforge::Result<()> {
    let dev = Device::shared()?;
    let s = dev.default_stream();
    let copy = common::copy_bandwidth_gbs(&dev)?;
    println!(
        "device {}  copy ceiling {copy:.0} GB/s (read+write, 1 GiB device copy)",
        dev.target().name
    );
    let only: Option<Vec<String>> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.split(',').map(String::from).collect());
    println!(
        "\n{:<8} {:>11} {:>5} {:>4} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "format",
        "rows x cols",
        "batch",
        "cfg",
        "rot us",
        "% copy",
        "warm us",
        "mma us",
        "mma %copy",
        "fl b1 us"
    );
    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.to_string())
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mut shapes = Vec::new();
    for v in list(
        "ROCMFORGE_BENCH_GEMV_SHAPES",
        "4096x4096,4096x14336,14336x4096",
    ) {
        let bad = || {
            rocmforge::Error::op(
                "gemv_q8 bench",
                format!("ROCMFORGE_BENCH_GEMV_SHAPES: `{v}` is not ROWSxCOLS"),
            )
        };
        let (r, c) = v.split_once('x').ok_or_else(bad)?;
        shapes.push((
            r.parse::<usize>().map_err(|_| bad())?,
            c.parse::<usize>().map_err(|_| bad())?,
        ));
    }
    let mut batches = Vec::new();
    for v in list("ROCMFORGE_BENCH_GEMV_BATCHES", "1,2,4,8") {
        batches.push(v.parse::<usize>().map_err(|_| {
            rocmforge::Error::op(
                "gemv_q8 bench",
                format!("ROCMFORGE_BENCH_GEMV_BATCHES: `{v}` is not a batch"),
            )
        })?);
    }
    let float = std::env::var("ROCMFORGE_BENCH_GEMV_FLOAT").map_or(true, |v| v != "off");
    let every = std::env::var("ROCMFORGE_BENCH_GEMV_EVERY").is_ok_and(|v| v == "1");
    let mut summary = Vec::new();
    for (rows, cols) in shapes {
        for name in gemv_q8::FORMATS {
            if only.as_ref().is_some_and(|o| !o.iter().any(|f| f == name)) {
                continue;
            }
            let ty = QuantType::from_name(name)?;
            let ws = weights(&dev, ty, rows, cols)?;
            let n = ws.len();
            let wbytes = ws[0].len() as f64;
            // the ceiling at this size: device copies moving the weight bytes (half read, half
            // written), rotated over as many buffers, so fill and drain cost what they cost a GEMV
            let half = ws[0].len() / 2;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                pairs.push((dev.alloc::<u8>(half)?, dev.alloc::<u8>(half)?));
            }
            let copy_us =
                1e3 * common::time_ms(&dev, 3, 20, |_| {
                    for (src, dst) in pairs.iter_mut() {
                        dst.copy_from(src, &s)?;
                    }
                    Ok(())
                })? / n as f64;
            drop(pairs);
            let size_copy = 2.0 * half as f64 / (copy_us * 1e-6) / 1e9;
            println!(
                "{:<8} {:>11} copy of the same bytes {copy_us:.2} us = {size_copy:.0} GB/s ({:.1}% of the 1 GiB copy)",
                name,
                format!("{rows}x{cols}"),
                100.0 * size_copy / copy
            );
            let mut line = format!("{:<8} {:>11}", name, format!("{rows}x{cols}"));
            let mut b1 = f64::NAN;
            for &batch in &batches {
                let xh: Vec<f16> = rand_vals(batch * cols, 9 + batch as u64)
                    .iter()
                    .map(|v| f16::from_f32(*v))
                    .collect();
                let x = dev.upload(&xh)?;
                let mut xq: Buffer<u8> = dev.alloc(gemv_q8::act_bytes(batch, cols))?;
                gemv_q8::quantize_x(&dev, &s, &x, batch, cols, &mut xq)?;
                let y = std::cell::RefCell::new(dev.alloc::<f16>(batch * rows)?);
                let cands: Vec<(String, Box<dyn FnMut() -> rocmforge::Result<()> + '_>)> =
                    GemvQ8Config::candidates(ty, batch)
                        .into_iter()
                        .map(|cfg| {
                            let (ws, xq, y, s, dev) = (&ws, &xq, &y, &s, &dev);
                            let f: Box<dyn FnMut() -> rocmforge::Result<()> + '_> =
                                Box::new(move || {
                                    let mut y = y.borrow_mut();
                                    for w in ws {
                                        gemv_q8::gemv_q8(
                                            dev,
                                            s,
                                            ty,
                                            w,
                                            rows,
                                            cols,
                                            xq,
                                            batch,
                                            &mut y,
                                            Some(cfg),
                                        )?;
                                    }
                                    Ok(())
                                });
                            (format!("r{}w{}", cfg.rows, cfg.waves), f)
                        })
                        .collect();
                // gemv_q8 has no instance for some batches (q2_K, q3_K above 4 right-hand sides)
                let (label, rot_us, warm_us) = if cands.is_empty() {
                    ("-".to_string(), f64::NAN, f64::NAN)
                } else {
                    let timings = tune::pick_fastest(&dev, cands)?;
                    if every {
                        let all: Vec<String> = timings
                            .iter()
                            .map(|t| format!("{} {:.2}", t.label, 1e3 * t.median_ms / n as f64))
                            .collect();
                        println!(
                            "  {name} {rows}x{cols} b{batch} every config (us): {}",
                            all.join(", ")
                        );
                    }
                    let best = &timings[0];
                    let cfg = GemvQ8Config {
                        rows: best.label[1..2].parse().unwrap_or(1),
                        waves: best.label[3..].parse().unwrap_or(4),
                    };
                    let rot_us = 1e3 * best.median_ms / n as f64;
                    // L2-warm, activation quantization included (what MUL_MAT does)
                    let warm_us =
                        1e3 * common::time_ms(&dev, 5, 50, |_| {
                            let mut y = y.borrow_mut();
                            for _ in 0..10 {
                                gemv_q8::quantize_x(&dev, &s, &x, batch, cols, &mut xq)?;
                                gemv_q8::gemv_q8(
                                    &dev,
                                    &s,
                                    ty,
                                    &ws[0],
                                    rows,
                                    cols,
                                    &xq,
                                    batch,
                                    &mut y,
                                    Some(cfg),
                                )?;
                            }
                            Ok(())
                        })? / 10.0;
                    (best.label.clone(), rot_us, warm_us)
                };
                // the float GEMVs, rotated: the mma tile (every batch) and the default (batch 1)
                let float_us = |cfg: Option<gemv::GemvConfig>| -> rocmforge::Result<f64> {
                    Ok(1e3
                        * common::time_ms(&dev, 2, 15, |_| {
                            let mut y = y.borrow_mut();
                            for w in &ws {
                                match cfg {
                                    Some(c) => gemv::gemv_with(
                                        &dev, &s, ty, w, rows, cols, &x, batch, &mut y, c,
                                    )?,
                                    None => {
                                        gemv::gemv(&dev, &s, ty, w, rows, cols, &x, batch, &mut y)?
                                    }
                                }
                            }
                            Ok(())
                        })?
                        / n as f64)
                };
                let mma = gemv::GemvConfig { rows: 16 };
                let mma_us =
                    if float && gemv::GemvConfig::candidates(ty, "f16", batch).contains(&mma) {
                        float_us(Some(mma))?
                    } else {
                        f64::NAN
                    };
                let fl_us = if float && batch == 1 {
                    float_us(None)?
                } else {
                    f64::NAN
                };
                if float && every && batch == 1 {
                    // the two batch-1 float kernels (the default picks by shape: wave_groups_pay)
                    let mut all = Vec::new();
                    for r in [gemv::WAVE_ROWS, gemv::WAVE_GROUP_ROWS] {
                        let us = float_us(Some(gemv::GemvConfig { rows: r }))?;
                        all.push(format!("r{r} {us:.2}"));
                    }
                    println!(
                        "  {name} {rows}x{cols} b1 float (us; r8 gemv_wave, r32 gemv_wave_g): {}",
                        all.join(", ")
                    );
                }
                let pct_of = |us: f64| 100.0 * wbytes / (us * 1e-6) / 1e9 / copy;
                let pct = pct_of(rot_us);
                println!(
                    "{:<8} {:>11} {:>5} {:>4} {:>9.2} {:>6.1}% {:>10.2} {:>9.2} {:>8.1}% {:>9.2}",
                    name,
                    format!("{rows}x{cols}"),
                    batch,
                    label,
                    rot_us,
                    pct,
                    warm_us,
                    mma_us,
                    pct_of(mma_us),
                    fl_us
                );
                // the fastest kernel at this batch (NaN never wins)
                let (who, us) = [("q8", rot_us), ("mma", mma_us), ("fl", fl_us)]
                    .into_iter()
                    .filter(|(_, v)| v.is_finite())
                    .fold(("-", f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
                if batch == 1 {
                    b1 = us;
                    line.push_str(&format!(
                        " b1 {us:>7.2} us {:>5.1}% copy ({who}) q8 warm {warm_us:>7.2}",
                        pct_of(us)
                    ));
                } else {
                    line.push_str(&format!("  b{batch}/b1 {:.2} ({who})", us / b1));
                }
            }
            summary.push(line);
        }
    }
    println!("\nsummary (rotated, fastest kernel per batch: us and % of copy at batch 1; batch-B time over batch 1; q8 warm us incl. quantizing x):");
    for l in summary {
        println!("{l}");
    }
    Ok(())
}
