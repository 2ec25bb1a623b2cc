//! Compile and cache latency on the device: cold NVRTC/hipRTC compile of a smoke kernel, a disk-cache
//! hit including module load, and an in-process hit. Prints one table; goals from the foundation issue.

use rocmforge::gpu::Device;
use rocmforge::jit::{cache, DiskCache, Jit, Origin};
use rocmforge::ops::smoke;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> rocmforge::Result<()> {
    let dev = Device::open()?;
    let t = dev.target().clone();
    let spec = smoke::spec("axpy", "f32", 256, t.wave_size)?;
    let compiler = rocmforge::gpu::compiler(t.vendor)?;
    println!(
        "device {} ({}), compiler {}",
        t.name,
        t.full_name(),
        compiler.describe()
    );

    // Cold: no disk cache, a fresh JIT each time, so every call renders and compiles.
    let cold = Jit::new(DiskCache::new(None, 0));
    cold.compile(&spec, &t)?; // load the compiler library once, outside the timing
    let mut ms = Vec::new();
    for _ in 0..15 {
        let t0 = Instant::now();
        let c = cold.compile(&spec, &t)?;
        assert_eq!(c.origin, Origin::Compiled);
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let cold_ms = median(ms);

    // Disk hit: render + key + read + verify + module load + function lookup.
    let dir = tempfile::tempdir().map_err(|e| rocmforge::Error::io("tempdir", e))?;
    let warm = Jit::new(DiskCache::new(
        Some(dir.path().to_path_buf()),
        cache::DEFAULT_MAX_BYTES,
    ));
    warm.kernel(&dev, &spec)?;
    let mut ms = Vec::new();
    for _ in 0..200 {
        warm.clear_memory();
        let t0 = Instant::now();
        warm.kernel(&dev, &spec)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let disk_ms = median(ms);

    // In-process hit.
    warm.kernel(&dev, &spec)?;
    let n = 1_000_000;
    let t0 = Instant::now();
    for _ in 0..n {
        std::hint::black_box(warm.kernel(&dev, std::hint::black_box(&spec))?);
    }
    let mem_us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;

    println!(
        "{:<40} {:>12} {:>12} {:>6}",
        "jit_cache", "median", "goal", "met"
    );
    println!(
        "{:<40} {:>9.2} ms {:>9} ms {:>6}",
        format!("cold compile {}", spec.uri()),
        cold_ms,
        100,
        cold_ms <= 100.0
    );
    println!(
        "{:<40} {:>9.3} ms {:>9} ms {:>6}",
        "disk hit + module load",
        disk_ms,
        1,
        disk_ms <= 1.0
    );
    println!(
        "{:<40} {:>9.3} us {:>9} us {:>6}",
        "in-process hit",
        mem_us,
        1,
        mem_us <= 1.0
    );
    Ok(())
}
