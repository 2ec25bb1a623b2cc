//! MLP benchmarks: RMSNorm (+residual) and SwiGLU in GB/s against the copy-bandwidth ceiling and
//! torch (eager and torch.compile), and the fused quantized GEMM against dequantize + cuBLAS and an
//! f16 cuBLAS GEMM (ours through the BLAS loader, and torch.matmul), all measured in the same run.
//! `cargo bench --bench mlp` on a GPU machine (or `bash .gpu/run.sh`).

#[path = "common/mod.rs"]
mod common;

use common::*;
use half::f16;
use rocmforge::gpu::blas::{Blas, BlasType};
use rocmforge::gpu::{Buffer, Device, Stream};
use rocmforge::ops::mlp::{activation, linear, norm, qgemm};
use rocmforge::quant::{self, QuantType};
use rocmforge::Result;

const NORM_SHAPES: [(usize, usize); 3] = [(8192, 4096), (16384, 5120), (513, 4096)];
const SWIGLU_SHAPES: [(usize, usize); 2] = [(4096, 14336), (16384, 4096)];
const GEMM_M: [usize; 4] = [16, 64, 256, 1024];
const GEMM_NK: [(usize, usize); 2] = [(4096, 4096), (14336, 4096)];
const GEMM_FMTS: [QuantType; 4] = [
    QuantType::Q4_0,
    QuantType::Q4_K,
    QuantType::Q8_0,
    QuantType::MXFP4,
];

fn rand_h(dev: &Device, n: usize, seed: u64) -> Result<Buffer<f16>> {
    let mut x = 0x9E3779B97F4A7C15u64 ^ seed;
    let v: Vec<f16> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f16::from_f32(((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect();
    dev.upload(&v)
}

/// Copies of something of `bytes` bytes so that the set exceeds the L2 (2..=16 copies, ≥ 160 MB).
fn copies(bytes: usize) -> usize {
    (160usize << 20).div_ceil(bytes.max(1)).clamp(2, 16)
}

fn peer(key: &str, p: &Option<serde_json::Value>) -> Option<f64> {
    p.as_ref().and_then(|j| j.get(key)).and_then(|v| v.as_f64())
}

fn fmt_ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs
        .map(|t| format!("{:.2}x", t / ours))
        .unwrap_or_else(|| "-".into())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mlp bench failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let dev = match Device::shared() {
        Ok(d) => d,
        Err(e) => {
            println!("mlp bench: no GPU ({e}); nothing to measure");
            return Ok(());
        }
    };
    let s = dev.default_stream();
    println!("device: {} ({})", dev.target().name, dev.target());
    let copy = copy_bandwidth_gbs(&dev)?;
    println!("copy bandwidth ceiling (D2D, read+write): {copy:.0} GB/s");

    let req = serde_json::json!({
        "norm": NORM_SHAPES.iter().map(|&(r, h)| vec![r, h]).collect::<Vec<_>>(),
        "swiglu": SWIGLU_SHAPES.iter().map(|&(r, i)| vec![r, i]).collect::<Vec<_>>(),
        "gemm": GEMM_NK.iter().flat_map(|&(n, k)| GEMM_M.iter().map(move |&m| vec![m, n, k])).collect::<Vec<_>>(),
    });
    let peers = match run_peer("peer_mlp.py", &[req.to_string()]) {
        Ok(j) => {
            println!("peer: torch {} on {}", j["torch"], j["device"]);
            Some(j)
        }
        Err(e) => {
            println!("peer: unavailable ({e})");
            None
        }
    };

    println!(
        "\n{:<28} {:>14} {:>10} {:>9} {:>8} {:>12} {:>12}",
        "op", "shape", "ms", "GB/s", "% copy", "vs eager", "vs compile"
    );
    for &(rows, hidden) in &NORM_SHAPES {
        let n = rows * hidden;
        let nb = copies(n * 2);
        let xs: Vec<Buffer<f16>> = (0..nb)
            .map(|i| rand_h(&dev, n, i as u64))
            .collect::<Result<_>>()?;
        let mut rs: Vec<Buffer<f16>> = (0..nb)
            .map(|i| rand_h(&dev, n, 100 + i as u64))
            .collect::<Result<_>>()?;
        let w = rand_h(&dev, hidden, 7)?;
        let mut out = dev.alloc::<f16>(n)?;
        let key = format!("{rows}x{hidden}");
        let ms = time_ms(&dev, 3, 30, |i| {
            norm::rms_norm(&dev, &s, &xs[i % nb], &w, 1e-6, hidden, &mut out)
        })?;
        let gbs = (2 * n * 2) as f64 / (ms * 1e-3) / 1e9;
        println!(
            "{:<28} {:>14} {:>10.4} {:>9.0} {:>7.1}% {:>12} {:>12}",
            "rms_norm f16",
            key,
            ms,
            gbs,
            100.0 * gbs / copy,
            fmt_ratio(ms, peer(&format!("rms_eager_{key}"), &peers)),
            fmt_ratio(ms, peer(&format!("rms_compile_{key}"), &peers))
        );
        let ms = time_ms(&dev, 3, 30, |i| {
            norm::rms_norm_residual(
                &dev,
                &s,
                &xs[i % nb],
                &mut rs[i % nb],
                &w,
                1e-6,
                hidden,
                &mut out,
            )
        })?;
        let gbs = (4 * n * 2) as f64 / (ms * 1e-3) / 1e9;
        println!(
            "{:<28} {:>14} {:>10.4} {:>9.0} {:>7.1}% {:>12} {:>12}",
            "add+rms_norm f16",
            key,
            ms,
            gbs,
            100.0 * gbs / copy,
            fmt_ratio(ms, peer(&format!("rms_add_eager_{key}"), &peers)),
            fmt_ratio(ms, peer(&format!("rms_add_compile_{key}"), &peers))
        );
    }
    for &(rows, inter) in &SWIGLU_SHAPES {
        let n = rows * inter;
        let nb = copies(n * 2);
        let gs: Vec<Buffer<f16>> = (0..nb)
            .map(|i| rand_h(&dev, n, 200 + i as u64))
            .collect::<Result<_>>()?;
        let us: Vec<Buffer<f16>> = (0..nb)
            .map(|i| rand_h(&dev, n, 300 + i as u64))
            .collect::<Result<_>>()?;
        let mut out = dev.alloc::<f16>(n)?;
        let key = format!("{rows}x{inter}");
        let ms = time_ms(&dev, 3, 30, |i| {
            activation::swiglu(&dev, &s, &gs[i % nb], &us[i % nb], inter, &mut out)
        })?;
        let gbs = (3 * n * 2) as f64 / (ms * 1e-3) / 1e9;
        println!(
            "{:<28} {:>14} {:>10.4} {:>9.0} {:>7.1}% {:>12} {:>12}",
            "swiglu f16",
            key,
            ms,
            gbs,
            100.0 * gbs / copy,
            fmt_ratio(ms, peer(&format!("swiglu_eager_{key}"), &peers)),
            fmt_ratio(ms, peer(&format!("swiglu_compile_{key}"), &peers))
        );
        drop((gs, us));
        let nbf = copies(2 * n * 2);
        let gus: Vec<Buffer<f16>> = (0..nbf)
            .map(|i| rand_h(&dev, 2 * n, 400 + i as u64))
            .collect::<Result<_>>()?;
        let ms = time_ms(&dev, 3, 30, |i| {
            activation::swiglu_fused(&dev, &s, &gus[i % nbf], inter, &mut out)
        })?;
        let gbs = (3 * n * 2) as f64 / (ms * 1e-3) / 1e9;
        println!(
            "{:<28} {:>14} {:>10.4} {:>9.0} {:>7.1}% {:>12} {:>12}",
            "swiglu f16 (fused gate_up)",
            key,
            ms,
            gbs,
            100.0 * gbs / copy,
            "-",
            "-"
        );
    }

    let blas = match Blas::new(&dev) {
        Ok(b) => {
            println!("\nBLAS: {}", b.describe());
            Some(b)
        }
        Err(e) => {
            println!("\nBLAS unavailable ({e}): no dequant+BLAS or f16 BLAS rows");
            None
        }
    };
    println!(
        "{:<8} {:>6} {:>12} {:>10} {:>8} {:>12} {:>9} {:>11} {:>11} {:>10}",
        "W",
        "M",
        "N x K",
        "qgemm ms",
        "TFLOP/s",
        "dq+BLAS ms",
        "speedup",
        "f16 BLAS ms",
        "torch.mm ms",
        "qgemm/f16"
    );
    for &(n, k) in &GEMM_NK {
        // f16 weights for the f16 BLAS GEMM, rotated
        let nw16 = copies(n * k * 2);
        let w16: Vec<Buffer<f16>> = (0..nw16)
            .map(|i| rand_h(&dev, n * k, 500 + i as u64))
            .collect::<Result<_>>()?;
        let mut scratch = dev.alloc::<f16>(n * k)?;
        for &fmt in &GEMM_FMTS {
            // quantize 512 random rows once and repeat them to N rows (content does not change timing)
            let base_rows = 512;
            let src: Vec<f32> = (0..base_rows * k)
                .map(|i| {
                    ((i as u32).wrapping_mul(2654435761) >> 8) as f32 / (1u32 << 24) as f32 * 2.0
                        - 1.0
                })
                .collect();
            let q = quant::quantize_to_vec(fmt, &src)?;
            let wq: Vec<u8> = q
                .iter()
                .copied()
                .cycle()
                .take(q.len() / base_rows * n)
                .collect();
            let nq = copies(wq.len());
            let ws: Vec<Buffer<u8>> = (0..nq).map(|_| dev.upload(&wq)).collect::<Result<_>>()?;
            for &m in &GEMM_M {
                let x = rand_h(&dev, m * k, m as u64)?;
                let mut y = dev.alloc::<f16>(m * n)?;
                let flops = 2.0 * (m * n * k) as f64;
                let tq = time_ms(&dev, 3, 20, |i| {
                    qgemm::qgemm(
                        &dev,
                        &s,
                        &x,
                        &ws[i % nq],
                        fmt,
                        (m, n, k),
                        None,
                        &mut y,
                        None,
                        None,
                    )
                })?;
                let (tdq, t16) = match &blas {
                    Some(b) => (
                        Some(time_ms(&dev, 3, 20, |i| {
                            linear::linear_blas(
                                &dev,
                                &s,
                                b,
                                &x,
                                &ws[i % nq],
                                fmt,
                                (m, n, k),
                                None,
                                &mut y,
                                &mut scratch,
                            )
                        })?),
                        Some(time_ms(&dev, 3, 20, |i| {
                            b.linear(
                                &s,
                                m,
                                n,
                                k,
                                x.device_ptr(),
                                w16[i % nw16].device_ptr(),
                                BlasType::F16,
                                y.device_ptr(),
                                BlasType::F16,
                            )
                        })?),
                    ),
                    None => (None, None),
                };
                let tt = peer(&format!("matmul_{m}x{n}x{k}"), &peers);
                let f = |v: Option<f64>| v.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into());
                println!(
                    "{:<8} {:>6} {:>12} {:>10.4} {:>8.1} {:>12} {:>9} {:>11} {:>11} {:>10}",
                    fmt.name(),
                    m,
                    format!("{n}x{k}"),
                    tq,
                    flops / (tq * 1e-3) / 1e12,
                    f(tdq),
                    tdq.map(|t| format!("{:.2}x", t / tq))
                        .unwrap_or_else(|| "-".into()),
                    f(t16),
                    f(tt),
                    t16.or(tt)
                        .map(|t| format!("{:.2}", tq / t))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    // tile sweep (q4_0: a format without a minimum; q4_K: with one): every tile at every M, to tune
    // default_tile
    let path = qgemm::path_for(dev.target());
    for fmt in [QuantType::Q4_0, QuantType::Q4_K] {
        tile_sweep(&dev, &s, path, fmt)?;
    }
    Ok(())
}

fn tile_sweep(dev: &Device, s: &Stream, path: &str, fmt: QuantType) -> Result<()> {
    println!("\ntile sweep, {fmt}, path {path} (ms; * = default)");
    for &(n, k) in &GEMM_NK {
        let src: Vec<f32> = (0..512 * k)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761) >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        let q = quant::quantize_to_vec(fmt, &src)?;
        let wq: Vec<u8> = q.iter().copied().cycle().take(q.len() / 512 * n).collect();
        let nq = copies(wq.len());
        let ws: Vec<Buffer<u8>> = (0..nq).map(|_| dev.upload(&wq)).collect::<Result<_>>()?;
        for &m in &GEMM_M {
            let x = rand_h(dev, m * k, m as u64)?;
            let mut y = dev.alloc::<f16>(m * n)?;
            let mut row = format!("M={m:<5} {n}x{k}:");
            for &t in qgemm::tiles(path) {
                let ms = time_ms(dev, 2, 10, |i| {
                    qgemm::qgemm(
                        dev,
                        s,
                        &x,
                        &ws[i % nq],
                        fmt,
                        (m, n, k),
                        None,
                        &mut y,
                        Some(path),
                        Some(t),
                    )
                })?;
                let star = if t == qgemm::default_tile(path, m) {
                    "*"
                } else {
                    ""
                };
                row.push_str(&format!("  m{}n{}x{}k{}={ms:.4}{star}", t.0, t.1, t.2, t.3));
            }
            println!("{row}");
        }
    }
    Ok(())
}
