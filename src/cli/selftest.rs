//! `rocmforge selftest`: the smoke kernels through the whole path, checked against the CPU.

use rocmforge::error::Result;
use rocmforge::gpu::{self, Device, Target};
use rocmforge::jit::{Jit, Origin};
use rocmforge::ops::{smoke, Element};
use std::time::Instant;

fn rand_vec<T: Element>(n: usize, seed: u64) -> Vec<T> {
    use rand::{Rng, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| T::from_f32(r.gen_range(-1.0f32..1.0)))
        .collect()
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    if got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    (num / den.max(1e-30)).sqrt()
}

fn check_dtype<T: Element>(dev: &Device, n: usize, seed: u64) -> Result<(f64, f64, f64)> {
    let s = dev.default_stream();
    let w = dev.target().wave_size as usize;
    let x = rand_vec::<T>(n, seed);
    let y0 = rand_vec::<T>(n, seed + 1);
    let dx = dev.upload(&x)?;
    let mut dy = dev.upload(&y0)?;
    smoke::axpy(dev, &s, 0.5, &dx, &mut dy)?;
    let mut want = y0.clone();
    smoke::axpy_ref(0.5, &x, &mut want);
    let got: Vec<f32> = dy.to_vec()?.into_iter().map(|v| v.to_f32()).collect();
    let e1 = rel_err(&got, &want.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
    let mut out = dev.alloc::<f32>(n.div_ceil(w))?;
    out.fill_bytes(0xff)?;
    smoke::wave_reduce(dev, &s, &dx, &mut out)?;
    let e2 = rel_err(&out.to_vec()?, &smoke::wave_reduce_ref(&x, w));
    let rows = 3usize;
    let xr = rand_vec::<T>(rows * n, seed + 2);
    let dxr = dev.upload(&xr)?;
    let mut outr = dev.alloc::<f32>(rows)?;
    outr.fill_bytes(0xff)?;
    smoke::block_reduce(dev, &s, n, &dxr, &mut outr)?;
    let e3 = rel_err(&outr.to_vec()?, &smoke::block_reduce_ref(&xr, n));
    Ok((e1, e2, e3))
}

pub fn run(_json: bool) -> Result<i32> {
    match Device::shared() {
        Ok(dev) => on_device(&dev),
        Err(e) => {
            println!("no GPU found ({e})");
            println!("compile-only self-test for gfx90a, gfx1030 and sm_90 (nothing is run):");
            compile_only()
        }
    }
}

fn on_device(dev: &Device) -> Result<i32> {
    let t = dev.target();
    println!(
        "device: {} ({}, wave {})",
        t.name,
        t.full_name(),
        t.wave_size
    );
    let jit = Jit::global();
    println!("{:<36} {:>8} {:>10}", "kernel", "origin", "ms");
    for kind in ["axpy", "wave_reduce", "block_reduce"] {
        for dt in ["f32", "f16", "bf16"] {
            let spec = smoke::spec(kind, dt, 256, t.wave_size)?;
            let t0 = Instant::now();
            let c = jit.compile(&spec, t)?;
            let _k = jit.kernel(dev, &spec)?;
            println!(
                "{:<36} {:>8} {:>10.2}",
                spec.uri(),
                format!("{:?}", c.origin),
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    let mut bad = 0;
    println!(
        "{:<8} {:>8} {:>12} {:>12} {:>12}",
        "dtype", "n", "axpy", "wave_sum", "block_sum"
    );
    for n in [1usize, 17, 1000, 100_003] {
        for (dt, r) in [
            ("f32", check_dtype::<f32>(dev, n, n as u64)?),
            ("f16", check_dtype::<half::f16>(dev, n, n as u64)?),
            ("bf16", check_dtype::<half::bf16>(dev, n, n as u64)?),
        ] {
            // axpy rounds through the element type exactly as the reference does; sums are f32 vs f64.
            let ok = r.0 <= 1e-6 && r.1 <= 1e-5 && r.2 <= 1e-5;
            bad += !ok as usize;
            println!(
                "{dt:<8} {n:>8} {:>12.2e} {:>12.2e} {:>12.2e} {}",
                r.0,
                r.1,
                r.2,
                if ok { "ok" } else { "MISMATCH" }
            );
        }
    }
    let t0 = Instant::now();
    let spec = smoke::spec("axpy", "f32", 256, t.wave_size)?;
    let iters = 10000;
    for _ in 0..iters {
        jit.kernel(dev, &spec)?;
    }
    println!(
        "in-process cache hit: {:.0} ns",
        t0.elapsed().as_secs_f64() * 1e9 / iters as f64
    );
    println!(
        "{}",
        if bad == 0 {
            "selftest: all kernels match the CPU"
        } else {
            "selftest: MISMATCHES"
        }
    );
    Ok(if bad == 0 { 0 } else { 1 })
}

fn compile_only() -> Result<i32> {
    let jit = Jit::global();
    let mut failed = 0;
    let mut ran = 0;
    for name in ["gfx90a", "gfx1030", "sm_90"] {
        let t = Target::named(name)?;
        let comp =
            match gpu::compiler(t.backend_vendor()).and_then(|c| c.check_target(&t).map(|_| c)) {
                Ok(c) => c,
                Err(e) => {
                    println!("{name:<8} unavailable: {e}");
                    continue;
                }
            };
        for kind in ["axpy", "wave_reduce", "block_reduce"] {
            let spec = smoke::spec(kind, "bf16", 256, t.wave_size)?;
            let t0 = Instant::now();
            match jit.compile(&spec, &t) {
                Ok(c) => {
                    ran += 1;
                    let res = gpu::codeobj::resources(&c.image)?
                        .into_iter()
                        .find(|k| k.name == spec.symbol())
                        .unwrap_or_default();
                    let how = if c.origin == Origin::Compiled {
                        "compiled"
                    } else {
                        "cached"
                    };
                    println!(
                        "{name:<8} {:<34} {how:<9} {:>8.1} ms  {:>6} B  regs {:>3}  lds {:>5}  scratch {}   [{}]",
                        spec.uri(),
                        t0.elapsed().as_secs_f64() * 1e3,
                        c.image.len(),
                        k_regs(&res),
                        res.shared_bytes,
                        res.scratch_bytes,
                        comp.describe()
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("{name:<8} {:<34} FAILED: {e}", spec.uri());
                }
            }
        }
    }
    if ran == 0 {
        println!("no compiler found: install hipRTC (apt libamdhip64-dev) or NVRTC (pip nvidia-cuda-nvrtc-cu12)");
        return Ok(1);
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn k_regs(r: &gpu::codeobj::KernelResources) -> u32 {
    r.vgprs
}
