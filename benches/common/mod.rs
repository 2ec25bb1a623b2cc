//! Shared bench helpers: device-event timing, the copy-bandwidth ceiling, peers run through Python.
//! Include with `#[path = "common/mod.rs"] mod common;`.
#![allow(dead_code)]

use rocmforge::gpu::{Buffer, Device};
use rocmforge::quant::{self, QuantType};
use rocmforge::Result;

/// Median milliseconds of `f` over `iters` runs after `warmup` runs, timed with device events on the
/// default stream (each run between two events).
pub fn time_ms(
    dev: &Device,
    warmup: usize,
    iters: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<f64> {
    rocmforge::jit::tune::time_median(dev, warmup, iters, {
        let mut i = 0usize;
        move || {
            i += 1;
            f(i)
        }
    })
}

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written), over a 1 GiB buffer.
pub fn copy_bandwidth_gbs(dev: &Device) -> Result<f64> {
    let n = (1usize << 30) / 4;
    let src: Buffer<f32> = dev.alloc(n)?;
    let mut dst: Buffer<f32> = dev.alloc(n)?;
    let s = dev.default_stream();
    let ms = time_ms(dev, 3, 20, |_| dst.copy_from(&src, &s))?;
    Ok(2.0 * (n * 4) as f64 / (ms * 1e-3) / 1e9)
}

/// Run `python3 SCRIPT ARGS...` (a peer benchmark such as torch) and parse the JSON it prints last.
/// The script is looked for under `tools/` and `.gpu/tools/`. Errors are returned, not hidden.
/// `ROCMFORGE_BENCH_PEER=off` skips the peer (its ratio then reads as an error), for sweeps.
pub fn run_peer(script: &str, args: &[String]) -> std::result::Result<serde_json::Value, String> {
    if std::env::var("ROCMFORGE_BENCH_PEER").is_ok_and(|v| v.trim() == "off") {
        return Err("peer off (ROCMFORGE_BENCH_PEER=off)".into());
    }
    let path = ["tools", ".gpu/tools"]
        .iter()
        .map(|d| std::path::Path::new(d).join(script))
        .find(|p| p.exists())
        .ok_or(format!("{script} not found under tools/ or .gpu/tools/"))?;
    let out = std::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or(format!("{script} printed no JSON"))?;
    serde_json::from_str(last).map_err(|e| format!("{script}: {e}"))
}

/// Bytes of rotated weight copies: past the L2 of any current GPU.
pub const ROTATE_BYTES: usize = 256 << 20;

pub fn rand_vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Device copies (enough to pass [`ROTATE_BYTES`]) of a random `rows × cols` matrix quantized to `ty`.
pub fn weights(
    dev: &Device,
    ty: QuantType,
    rows: usize,
    cols: usize,
) -> rocmforge::Result<Vec<Buffer<u8>>> {
    // quantize one row block and tile it (quantizing 58M values per format on the CPU is slow)
    let tile_rows = rows.min(256);
    let q = quant::quantize_to_vec(ty, &rand_vals(tile_rows * cols, ty as u64 + 1))?;
    let mut bytes = Vec::with_capacity(q.len() * rows.div_ceil(tile_rows));
    while bytes.len() < ty.row_bytes(cols)? * rows {
        bytes.extend_from_slice(&q);
    }
    bytes.truncate(ty.row_bytes(cols)? * rows);
    let copies = ROTATE_BYTES.div_ceil(bytes.len()).clamp(2, 64);
    (0..copies).map(|_| dev.upload(&bytes)).collect()
}
