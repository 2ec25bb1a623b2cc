//! Quantized ops: dequant GB/s per format (to f16) and fused GEMV (batch 1 and 8) against the copy
//! ceiling and an f16 torch/cuBLAS GEMV of the same shape, all measured in the same run.
//! W copies are rotated so the working set exceeds L2.

#[path = "common/mod.rs"]
mod common;

use common::{rand_vals, weights};
use rocmforge::gpu::{Buffer, Device};
use rocmforge::jit::tune;
use rocmforge::ops::quantized::{dequant, gemv};
use rocmforge::quant::QuantType;

fn main() -> rocmforge::Result<()> {
    let dev = Device::shared()?;
    let s = dev.default_stream();
    let copy = common::copy_bandwidth_gbs(&dev)?;
    println!(
        "device {}  copy ceiling {copy:.0} GB/s (read+write, 1 GiB device copy)",
        dev.target().name
    );

    println!(
        "\n{:<34} {:>12} {:>10} {:>9} {:>8}",
        "dequant (to f16)", "shape", "ms", "GB/s", "% copy"
    );
    for (rows, cols) in [(4096usize, 4096usize), (14336, 4096)] {
        let mut out: Buffer<half::f16> = dev.alloc(rows * cols)?;
        for ty in QuantType::all() {
            let ws = weights(&dev, ty, rows, cols)?;
            let n = ws.len();
            let ms = common::time_ms(&dev, 2, 15, |_| {
                for w in &ws {
                    dequant::dequant(&dev, &s, ty, w, rows, cols, &mut out)?;
                }
                Ok(())
            })? / n as f64;
            let bytes = (ws[0].len() + rows * cols * 2) as f64;
            let gbs = bytes / (ms * 1e-3) / 1e9;
            println!(
                "{:<34} {:>12} {:>10.4} {:>9.0} {:>7.1}%",
                format!("dequant.{}.f16", ty.name()),
                format!("{rows}x{cols}"),
                ms,
                gbs,
                100.0 * gbs / copy
            );
        }
    }

    println!(
        "\n{:<30} {:>11} {:>5} {:>9} {:>9} {:>8} {:>10} {:>9}",
        "gemv (x,y f16)", "shape", "batch", "ms", "W GB/s", "% copy", "torch ms", "vs torch"
    );
    let mut summary = Vec::new();
    for (rows, cols) in [(4096usize, 4096usize), (14336, 4096), (4096, 14336)] {
        let peer = common::run_peer("peer_gemv.py", &[rows.to_string(), cols.to_string()]);
        if let Err(e) = &peer {
            println!("peer failed: {e}");
        }
        for ty in [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q8_0,
            QuantType::Q4_K,
            QuantType::Q6_K,
            QuantType::MXFP4,
        ] {
            let ws = weights(&dev, ty, rows, cols)?;
            let n = ws.len();
            let mut best = [f64::NAN; 2];
            let mut best_cfg = [0usize; 2];
            for (bi, batch) in [1usize, 8].into_iter().enumerate() {
                let x = dev.upload(
                    &rand_vals(batch * cols, 9)
                        .iter()
                        .map(|v| half::f16::from_f32(*v))
                        .collect::<Vec<_>>(),
                )?;
                let y = std::cell::RefCell::new(dev.alloc::<half::f16>(batch * rows)?);
                // autotune: every valid configuration, fastest first
                let cands: Vec<(String, Box<dyn FnMut() -> rocmforge::Result<()> + '_>)> =
                    gemv::GemvConfig::candidates(ty, "f16", batch)
                        .into_iter()
                        .map(|cfg| {
                            let (ws, x, y, s, dev) = (&ws, &x, &y, &s, &dev);
                            let f: Box<dyn FnMut() -> rocmforge::Result<()> + '_> =
                                Box::new(move || {
                                    let mut y = y.borrow_mut();
                                    for w in ws {
                                        gemv::gemv_with(
                                            dev, s, ty, w, rows, cols, x, batch, &mut y, cfg,
                                        )?;
                                    }
                                    Ok(())
                                });
                            (format!("r{}", cfg.rows), f)
                        })
                        .collect();
                let timings = tune::pick_fastest(&dev, cands)?;
                for (k, t) in timings.iter().enumerate() {
                    let ms = t.median_ms / n as f64;
                    if k == 0 {
                        best[bi] = ms;
                        best_cfg[bi] = t.label[1..].parse().unwrap_or(0);
                    }
                    let gbs = ws[0].len() as f64 / (ms * 1e-3) / 1e9;
                    let (pms, ratio) = match &peer {
                        Ok(p) => {
                            let pm = p[format!("b{batch}_ms")].as_f64().unwrap_or(f64::NAN);
                            (format!("{pm:.4}"), format!("{:.2}x", pm / ms))
                        }
                        Err(_) => ("-".into(), "-".into()),
                    };
                    println!(
                        "{:<30} {:>11} {:>5} {:>9.4} {:>9.0} {:>7.1}% {:>10} {:>9}{}",
                        format!("gemv.{}.f16.{}", ty.name(), t.label),
                        format!("{rows}x{cols}"),
                        batch,
                        ms,
                        gbs,
                        100.0 * gbs / copy,
                        pms,
                        ratio,
                        if k == 0 { "  best" } else { "" }
                    );
                }
            }
            let gbs = ws[0].len() as f64 / (best[0] * 1e-3) / 1e9;
            summary.push(format!(
                "{:<8} {:>11}  b1 r{:<2} {:>8.4} ms {:>5.1}% copy   b8 r{:<2} {:>8.4} ms   b8/b1 {:.2}",
                ty.name(),
                format!("{rows}x{cols}"),
                best_cfg[0],
                best[0],
                100.0 * gbs / copy,
                best_cfg[1],
                best[1],
                best[1] / best[0]
            ));
        }
    }
    println!("\nbest per shape (f16 x/y):");
    for l in summary {
        println!("{l}");
    }
    Ok(())
}
