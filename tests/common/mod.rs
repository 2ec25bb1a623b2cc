//! Shared helpers for the integration tests: seeded random data, error measures, and the device.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rocmforge::gpu::{self, Device, Target, Vendor};

/// Seeded uniform values in [-1, 1).
pub fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-1.0f32..1.0)).collect()
}

/// ‖got − want‖ / ‖want‖, infinite when `got` has a NaN or Inf.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    if got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((*a as f64) - (*b as f64)).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// The shared device. GPU tests are `#[ignore = "needs a GPU"]`; when run, a missing device fails them.
pub fn device() -> Device {
    match Device::shared() {
        Ok(d) => d,
        Err(e) => panic!("GPU test run without a usable GPU: {e}"),
    }
}

/// Targets whose compiler is available here, one per vendor (hipRTC gfx90a, NVRTC sm_80).
pub fn available_targets() -> Vec<Target> {
    let mut v = Vec::new();
    for (vendor, name) in [(Vendor::Amd, "gfx90a"), (Vendor::Nvidia, "sm_80")] {
        if let Ok(c) = gpu::compiler(vendor) {
            let t = Target::named(name).unwrap();
            if c.check_target(&t).is_ok() {
                v.push(t);
            }
        }
    }
    assert!(
        !v.is_empty(),
        "no run-time compiler found: install hipRTC (apt install libamdhip64-dev) or NVRTC (pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12); see README"
    );
    v
}

/// Path of the CLI binary: ROCMFORGE_BIN (GPU machines), else the one cargo built.
pub fn cli_bin() -> String {
    std::env::var("ROCMFORGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rocmforge").to_string())
}

/// The HF transformers reference check of the model runtime.
pub mod hf;

/// A device buffer of `n` elements filled with 0xff bytes (NaN as floats), so an element a kernel does
/// not write fails the comparison.
pub fn poisoned<T: bytemuck::Pod>(n: usize) -> gpu::Buffer<T> {
    let mut b = device().alloc::<T>(n).unwrap();
    b.fill_bytes(0xff).unwrap();
    b
}
