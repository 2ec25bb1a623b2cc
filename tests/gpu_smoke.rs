//! Smoke kernels on the device against the CPU, and the cache across processes.
//! Run on a GPU machine: `cargo test --test gpu_smoke -- --include-ignored` (or `bash .gpu/run.sh`).

mod common;

use common::*;
use half::{bf16, f16};
use rocmforge::ops::{smoke, Element};
use serial_test::serial;

const SIZES: [usize; 6] = [1, 17, 64, 1000, 4097, 1 << 20];

fn run_dtype<T: Element>(seed: u64) {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    let w = dev.target().wave_size as usize;
    for (i, &n) in SIZES.iter().enumerate() {
        let x: Vec<T> = rand_f32(n, seed + i as u64)
            .into_iter()
            .map(T::from_f32)
            .collect();
        let y0: Vec<T> = rand_f32(n, seed + 100 + i as u64)
            .into_iter()
            .map(T::from_f32)
            .collect();
        let dx = dev.upload(&x).unwrap();
        let mut dy = dev.upload(&y0).unwrap();
        smoke::axpy(&dev, &s, -1.25, &dx, &mut dy).unwrap();
        let mut want = y0.clone();
        smoke::axpy_ref(-1.25, &x, &mut want);
        let got = dy.to_vec().unwrap();
        // one rounding through T of the same f32 expression: bit-exact
        assert_eq!(
            bytemuck::cast_slice::<T, u8>(&got),
            bytemuck::cast_slice::<T, u8>(&want),
            "axpy {} n={n}",
            T::DTYPE
        );

        let mut out = dev.alloc::<f32>(n.div_ceil(w)).unwrap();
        out.fill_bytes(0xff).unwrap(); // NaN poison: an unwritten element fails the check
        smoke::wave_reduce(&dev, &s, &dx, &mut out).unwrap();
        let e = rel_err(&out.to_vec().unwrap(), &smoke::wave_reduce_ref(&x, w));
        assert!(e < 1e-5, "wave_reduce {} n={n}: rel err {e}", T::DTYPE);

        for rows in [1usize, 3] {
            let xr: Vec<T> = rand_f32(rows * n, seed + 200)
                .into_iter()
                .map(T::from_f32)
                .collect();
            let dxr = dev.upload(&xr).unwrap();
            let mut o = dev.alloc::<f32>(rows).unwrap();
            o.fill_bytes(0xff).unwrap();
            smoke::block_reduce(&dev, &s, n, &dxr, &mut o).unwrap();
            let e = rel_err(&o.to_vec().unwrap(), &smoke::block_reduce_ref(&xr, n));
            assert!(
                e < 1e-5,
                "block_reduce {} rows={rows} n={n}: rel err {e}",
                T::DTYPE
            );
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn smoke_f32() {
    run_dtype::<f32>(1);
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn smoke_f16() {
    run_dtype::<f16>(2);
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn smoke_bf16() {
    run_dtype::<bf16>(3);
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn launch_limits_are_checked() {
    let dev = device();
    let spec = smoke::spec("axpy", "f32", 256, dev.target().wave_size).unwrap();
    let k = rocmforge::jit::Jit::global().kernel(&dev, &spec).unwrap();
    let x = dev.alloc::<f32>(16).unwrap();
    let too_big = rocmforge::gpu::LaunchConfig {
        grid: [1, 1, 1],
        block: [2048, 1, 1],
        shared_bytes: 0,
    };
    let e = k
        .launch(
            &dev.default_stream(),
            too_big,
            &[16i32.into(), 1.0f32.into(), (&x).into(), (&x).into()],
        )
        .unwrap_err();
    assert!(e.to_string().contains("threads"), "{e}");
    let too_much_shared = rocmforge::gpu::LaunchConfig {
        grid: [1, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 16 << 20,
    };
    assert!(k
        .launch(&dev.default_stream(), too_much_shared, &[])
        .is_err());
    // The driver's view of the kernel agrees with what we read from the cubin / code object.
    let c = rocmforge::jit::Jit::global()
        .compile(&spec, dev.target())
        .unwrap();
    let declared = rocmforge::gpu::codeobj::resources(&c.image)
        .unwrap()
        .into_iter()
        .find(|r| r.name == spec.symbol())
        .unwrap();
    assert_eq!(
        declared.vgprs,
        k.attrs().registers,
        "{declared:?} vs {:?}",
        k.attrs()
    );
    assert_eq!(declared.scratch_bytes, k.attrs().local_bytes);
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn second_process_loads_from_disk_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = std::process::Command::new(cli_bin())
            .arg("selftest")
            .env("ROCMFORGE_CACHE_DIR", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let first = run();
    let second = run();
    let rows = |t: &str, origin: &str| {
        t.lines()
            .filter(|l| l.starts_with("smoke.") && l.contains(origin))
            .count()
    };
    assert_eq!(rows(&first, "Compiled"), 9, "{first}");
    assert_eq!(rows(&second, "Disk"), 9, "{second}");
    assert_eq!(rows(&second, "Compiled"), 0, "{second}");
}
