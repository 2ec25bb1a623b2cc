//! Device pools and views, pinned host memory with stream-ordered copies, and stream capture into
//! graphs replayed with fresh inputs, each checked against the CPU.
//! Run on a GPU machine: `cargo test --release --test gpu_graph -- --include-ignored`.

mod common;

use common::*;
use half::{bf16, f16};
use rocmforge::gpu::{Buffer, Device, PinnedBuffer, Stream};
use rocmforge::ops::{smoke, Element};
use serial_test::serial;

fn assert_bits<T: Element>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) =
        (0..got.len()).find(|&i| bytemuck::bytes_of(&got[i]) != bytemuck::bytes_of(&want[i]))
    {
        panic!(
            "{what}: first difference at {i}: got {:?}, want {:?}",
            got[i], want[i]
        );
    }
}

fn rand_t<T: Element>(n: usize, seed: u64) -> Vec<T> {
    rand_f32(n, seed).into_iter().map(T::from_f32).collect()
}

/// The step that is captured: y += 2x; z += -0.5y; z += 1.5x; w = 0; w += z.
fn chain(
    dev: &Device,
    s: &Stream,
    x: &Buffer<f32>,
    y: &mut Buffer<f32>,
    z: &mut Buffer<f32>,
    w: &mut Buffer<f32>,
) -> rocmforge::Result<()> {
    smoke::axpy(dev, s, 2.0, x, y)?;
    smoke::axpy(dev, s, -0.5, y, z)?;
    smoke::axpy(dev, s, 1.5, x, z)?;
    w.fill_bytes_async(0, s)?;
    smoke::axpy(dev, s, 1.0, z, w)
}

fn chain_ref(x: &[f32], y: &mut [f32], z: &mut [f32], w: &mut [f32]) {
    smoke::axpy_ref(2.0, x, y);
    smoke::axpy_ref(-0.5, y, z);
    smoke::axpy_ref(1.5, x, z);
    w.iter_mut().for_each(|v| *v = 0.0);
    smoke::axpy_ref(1.0, z, w);
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn graph_replays_axpy_chain_with_fresh_inputs() {
    let dev = device();
    let (before, pinned_before) = (dev.allocated_bytes(), dev.pinned_bytes());
    {
        let n = 50_001;
        let s = dev.create_stream_nonblocking().unwrap();
        let pool = dev.pool(4 * (4 * n + 1024)).unwrap();
        let (x0, y0, z0) = (rand_f32(n, 1), rand_f32(n, 2), rand_f32(n, 3));
        let mut dx = pool.upload(&x0).unwrap();
        let mut dy = pool.upload(&y0).unwrap();
        let mut dz = pool.upload(&z0).unwrap();
        let mut dw = pool.alloc::<f32>(n).unwrap();
        dw.fill_bytes(0xff).unwrap();

        // warm-up outside the capture: compiles and loads the kernel
        {
            let wx = dev.upload(&x0).unwrap();
            let mut wy = dev.upload(&y0).unwrap();
            dev.synchronize().unwrap();
            smoke::axpy(&dev, &s, 1.0, &wx, &mut wy).unwrap();
            s.synchronize().unwrap();
        }
        dev.synchronize().unwrap(); // the synchronous uploads above are on the default stream

        s.begin_capture().unwrap();
        assert!(s.is_capturing().unwrap());
        chain(&dev, &s, &dx, &mut dy, &mut dz, &mut dw).unwrap();
        let graph = s.end_capture().unwrap();
        assert!(!s.is_capturing().unwrap());
        let exec = graph.instantiate().unwrap();
        drop(graph); // the executable graph does not need it

        // capturing ran nothing
        s.synchronize().unwrap();
        assert_bits(&dy.to_vec().unwrap(), &y0, "y after capture");
        assert_bits(&dz.to_vec().unwrap(), &z0, "z after capture");

        let mut host_x = dev.alloc_pinned::<f32>(n).unwrap();
        let mut host_z = dev.alloc_pinned::<f32>(n).unwrap();
        let mut host_w = dev.alloc_pinned::<f32>(n).unwrap();
        let (mut y, mut z, mut w) = (y0.clone(), z0.clone(), vec![0f32; n]);
        for r in 0..8u64 {
            let x = rand_f32(n, 100 + r);
            if r % 2 == 0 {
                // waits for the previous copy out of host_x before overwriting it
                host_x.as_mut_slice().copy_from_slice(&x);
                dx.copy_from_pinned(0, &host_x, 0..n, &s).unwrap();
            } else {
                dx.copy_from_host_async(&x, &s).unwrap();
            }
            exec.launch(&s).unwrap();
            dz.copy_to_host_async(&mut host_z, &s).unwrap();
            dw.copy_to_host_async(&mut host_w, &s).unwrap();
            chain_ref(&x, &mut y, &mut z, &mut w);
            // the accessors wait for the copies: no stream synchronize here
            assert_bits(host_z.as_slice(), &z, &format!("replay {r}: z"));
            assert_bits(host_w.as_slice(), &w, &format!("replay {r}: w"));
            s.synchronize().unwrap();
            assert_bits(&dy.to_vec().unwrap(), &y, &format!("replay {r}: y"));
        }
        // back-to-back replays without new input run in order, each once
        exec.launch(&s).unwrap();
        exec.launch(&s).unwrap();
        let x_last = rand_f32(n, 107);
        chain_ref(&x_last, &mut y, &mut z, &mut w);
        chain_ref(&x_last, &mut y, &mut z, &mut w);
        dz.copy_to_host_async(&mut host_z, &s).unwrap();
        assert_bits(host_z.as_slice(), &z, "two more replays: z");
        // a replay on another stream (the default one) is fine too
        s.synchronize().unwrap();
        exec.launch(&dev.default_stream()).unwrap();
        dev.synchronize().unwrap();
        chain_ref(&x_last, &mut y, &mut z, &mut w);
        assert_bits(&dw.to_vec().unwrap(), &w, "replay on the default stream: w");
        drop(exec);
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
    assert_eq!(
        dev.pinned_bytes(),
        pinned_before,
        "pinned memory not returned"
    );
}

fn axpy_on_views<T: Element>(dev: &Device, s: &Stream, x: &mut Buffer<T>, y: &mut Buffer<T>) {
    let n = x.len();
    let xs: Vec<T> = rand_t(n, 11);
    let ys: Vec<T> = rand_t(n, 12);
    x.copy_from_host_async(&xs, s).unwrap();
    y.copy_from_host_async(&ys, s).unwrap();
    smoke::axpy(dev, s, 0.75, x, y).unwrap();
    s.synchronize().unwrap();
    let mut want = ys.clone();
    smoke::axpy_ref(0.75, &xs, &mut want);
    assert_bits(
        &y.to_vec().unwrap(),
        &want,
        &format!("axpy on views, {}", T::DTYPE),
    );
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn pool_views_as_kernel_operands() {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.create_stream_nonblocking().unwrap();
    let cap = 1 << 20;
    let pool = dev.pool(cap).unwrap();
    assert_eq!(pool.capacity(), cap);
    assert_eq!(
        dev.allocated_bytes(),
        before + cap as i64,
        "the pool counts once"
    );

    // views of several types and odd sizes, with guard bytes between them
    let mut guards: Vec<Buffer<u8>> = Vec::new();
    let mut guard = |pool: &rocmforge::gpu::Pool| {
        let mut g = pool.alloc::<u8>(3).unwrap();
        g.fill_bytes(0xab).unwrap();
        guards.push(g);
    };
    guard(&pool);
    let mut x32 = pool.alloc::<f32>(1001).unwrap();
    guard(&pool);
    let mut y32 = pool.alloc::<f32>(1001).unwrap();
    guard(&pool);
    let mut x16 = pool.alloc::<f16>(777).unwrap();
    guard(&pool);
    let mut y16 = pool.alloc::<f16>(777).unwrap();
    guard(&pool);
    let arena = pool.alloc::<u8>(8192).unwrap();
    guard(&pool);
    for p in [
        x32.device_ptr(),
        y32.device_ptr(),
        x16.device_ptr(),
        y16.device_ptr(),
        arena.device_ptr(),
    ] {
        assert_eq!(p % 256, 0, "pool allocation at {p:#x} not 256-byte aligned");
    }
    assert!(pool.used() >= 2 * 4004 + 2 * 1554 + 8192 && pool.used() <= cap);
    assert_eq!(pool.live_views(), 11);
    assert_eq!(
        dev.allocated_bytes(),
        before + cap as i64,
        "views do not count"
    );
    dev.synchronize().unwrap(); // the guards were filled on the default stream

    axpy_on_views(&dev, &s, &mut x32, &mut y32);
    axpy_on_views(&dev, &s, &mut x16, &mut y16);
    // typed views inside a byte arena: bf16 at byte 256 and at byte 2 (2-byte aligned is enough)
    let mut xb = arena.view_as::<bf16>(256, 1000).unwrap();
    let mut yb = arena.view_as::<bf16>(2 + 4096, 1000).unwrap();
    axpy_on_views(&dev, &s, &mut xb, &mut yb);
    let e = arena.view_as::<f32>(2, 4).unwrap_err().to_string();
    assert!(e.contains("aligned"), "{e}");
    let e = arena.view_as::<f32>(8000, 100).unwrap_err().to_string();
    assert!(e.contains("outside"), "{e}");
    for (i, g) in guards.iter().enumerate() {
        assert_eq!(g.to_vec().unwrap(), vec![0xab; 3], "guard {i} overwritten");
    }

    // a view of an ordinary buffer: only its range changes
    let base: Vec<f32> = rand_f32(2000, 21);
    let xs: Vec<f32> = rand_f32(500, 22);
    let big = dev.upload(&base).unwrap();
    let xv = dev.upload(&xs).unwrap();
    let owned = dev.allocated_bytes();
    let mut mid = big.view(100, 500).unwrap();
    assert_eq!(dev.allocated_bytes(), owned, "a view does not count");
    assert!(big.view(1900, 101).is_err());
    dev.synchronize().unwrap();
    smoke::axpy(&dev, &s, -2.0, &xv, &mut mid).unwrap();
    s.synchronize().unwrap();
    let mut want = base.clone();
    smoke::axpy_ref(-2.0, &xs, &mut want[100..600]);
    assert_bits(&big.to_vec().unwrap(), &want, "axpy on a view of a buffer");
    // a view keeps its parent's memory alive
    drop(big);
    assert_eq!(dev.allocated_bytes(), owned);
    assert_bits(
        &mid.to_vec().unwrap(),
        &want[100..600],
        "view after parent dropped",
    );
    drop(mid);
    drop(xv);
    assert_eq!(dev.allocated_bytes(), before + cap as i64);

    // the pool's memory is returned once the pool and its last view are gone
    drop(pool);
    assert_eq!(
        dev.allocated_bytes(),
        before + cap as i64,
        "views keep the pool alive"
    );
    let x16_after = x16.to_vec().unwrap();
    assert_eq!(x16_after.len(), 777);
    drop((x32, y32, x16, y16, xb, yb, arena, guards));
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn pool_exhaustion_reset_and_release() {
    let dev = device();
    let before = dev.allocated_bytes();
    {
        let pool = dev.pool(4096).unwrap();
        let a = pool.alloc::<f32>(1000).unwrap();
        assert_eq!(pool.used(), 4000);
        let e = pool.alloc::<f32>(1).unwrap_err().to_string();
        assert!(
            e.contains("4 bytes requested") && e.contains("0 bytes free"),
            "{e}"
        );
        let e = pool.reset().unwrap_err().to_string();
        assert!(e.contains("1 views"), "{e}");
        let v = a.view(10, 10).unwrap();
        drop(a);
        assert!(
            pool.reset().is_err(),
            "a view of a view still uses the pool"
        );
        drop(v);
        pool.reset().unwrap();
        assert_eq!(pool.used(), 0);
        let whole = pool.alloc::<f32>(1024).unwrap();
        assert_eq!(whole.bytes(), 4096);
        assert!(pool.alloc::<u8>(1).is_err());
        let empty = pool.alloc::<f32>(0).unwrap();
        assert!(empty.is_empty());
    }
    // a pool larger than the device is the driver's error, and nothing is counted
    let e = dev.pool(1 << 50).unwrap_err().to_string();
    assert!(e.contains("Malloc") || e.contains("MemAlloc"), "{e}");
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn pinned_round_trip_with_async_copies() {
    let dev = device();
    let (before, pinned_before) = (dev.allocated_bytes(), dev.pinned_bytes());
    {
        let n = 100_003;
        let data: Vec<f16> = rand_t(n, 31);
        let src = PinnedBuffer::from_slice(&dev, &data).unwrap();
        assert_eq!(src.len(), n);
        assert_eq!(dev.pinned_bytes(), pinned_before + 2 * n as i64);
        let s1 = dev.create_stream_nonblocking().unwrap();
        let s2 = dev.create_stream_nonblocking().unwrap();

        // upload on s1, download on s2 ordered by an event
        let mut d = dev.alloc::<f16>(n).unwrap();
        d.copy_from_pinned(0, &src, 0..n, &s1).unwrap();
        let ev = dev.create_event().unwrap();
        ev.record(&s1).unwrap();
        s2.wait_event(&ev).unwrap();
        let mut back = dev.alloc_pinned::<f16>(n).unwrap();
        assert!(back.as_slice().iter().all(|v| v.to_bits() == 0), "zeroed");
        d.copy_to_host_async(&mut back, &s2).unwrap();
        assert_bits(back.as_slice(), &data, "pinned round trip");

        // sub-ranges: device-to-device, pinned-to-device, device-to-pinned
        let mut e = dev.alloc::<f16>(n).unwrap();
        e.fill_bytes_async(0, &s1).unwrap();
        e.copy_range_from(10, &d, 1000..2000, &s1).unwrap();
        e.copy_from_pinned(5000, &src, 7..10, &s1).unwrap();
        let mut want = vec![f16::ZERO; n];
        want[10..1010].copy_from_slice(&data[1000..2000]);
        want[5000..5003].copy_from_slice(&data[7..10]);
        let mut part = dev.alloc_pinned::<f16>(6000).unwrap();
        e.copy_to_pinned(0..5500, &mut part, 300, &s1).unwrap();
        let got = part.as_slice();
        assert!(got[..300].iter().all(|v| v.to_bits() == 0));
        assert_bits(&got[300..5800], &want[..5500], "ranges");
        assert!(got[5800..].iter().all(|v| v.to_bits() == 0));
        s1.synchronize().unwrap();
        assert_bits(&e.to_vec().unwrap(), &want, "device ranges");

        // ranges are checked
        assert!(e.copy_to_pinned(0..10, &mut part, 5995, &s1).is_err());
        assert!(e.copy_from_pinned(n - 1, &src, 0..2, &s1).is_err());
        assert!(e.copy_from_pinned(0, &src, 0..n + 1, &s1).is_err());
        assert!(e.copy_range_from(0, &d, n - 5..n + 1, &s1).is_err());
        assert!(d.copy_to_host_async(&mut part, &s1).is_err());

        // pageable source, async on a stream
        let fresh: Vec<f16> = rand_t(n, 32);
        d.copy_from_host_async(&fresh, &s2).unwrap();
        d.copy_to_host_async(&mut back, &s2).unwrap();
        assert_bits(back.as_slice(), &fresh, "pageable upload");

        // a pinned buffer written by the host after a tracked upload: the write waits
        let mut staged = PinnedBuffer::from_slice(&dev, &data).unwrap();
        d.copy_from_pinned(0, &staged, 0..n, &s1).unwrap();
        staged.as_mut_slice().fill(f16::ONE);
        s1.synchronize().unwrap();
        assert_bits(
            &d.to_vec().unwrap(),
            &data,
            "upload before the host overwrote",
        );
        let empty = dev.alloc_pinned::<f32>(0).unwrap();
        assert!(empty.as_slice().is_empty());
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
    assert_eq!(
        dev.pinned_bytes(),
        pinned_before,
        "pinned memory not returned"
    );
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn capture_on_default_stream_is_refused() {
    let dev = device();
    let before = dev.allocated_bytes();
    {
        let null = dev.default_stream();
        let e = null.begin_capture().unwrap_err().to_string();
        assert!(e.contains("default (null) stream"), "{e}");
        assert!(null.end_capture().is_err());
        assert!(!null.is_capturing().unwrap());

        let s = dev.create_stream_nonblocking().unwrap();
        assert!(s.end_capture().is_err(), "end without begin");
        assert!(!s.is_capturing().unwrap());

        let x = dev.upload(&[1.0f32; 64]).unwrap();
        let mut y = dev.upload(&[0.5f32; 64]).unwrap();
        let mut short = dev.alloc::<f32>(32).unwrap();
        dev.synchronize().unwrap();
        // warm-up, then a recording that fails: the capture is ended, the stream usable
        smoke::axpy(&dev, &s, 1.0, &x, &mut y).unwrap();
        let r = s.capture(|s| {
            smoke::axpy(&dev, s, 1.0, &x, &mut y)?;
            smoke::axpy(&dev, s, 1.0, &x, &mut short)
        });
        let e = r
            .expect_err("a failing recording fails the capture")
            .to_string();
        assert!(e.contains("axpy"), "{e}");
        assert!(!s.is_capturing().unwrap());

        // device-to-host copies are refused inside a capture, which stays valid
        let mut host = dev.alloc_pinned::<f32>(64).unwrap();
        let g = s
            .capture(|s| {
                let e = x.copy_to_host_async(&mut host, s).unwrap_err().to_string();
                assert!(e.contains("not captured"), "{e}");
                smoke::axpy(&dev, s, 2.0, &x, &mut y)
            })
            .unwrap();
        let exec = g.instantiate().unwrap();
        exec.launch(&s).unwrap();
        y.copy_to_host_async(&mut host, &s).unwrap();
        // y: 0.5, +1 (warm-up), +2 (the replay); the failed capture's launch never ran
        assert!(
            host.as_slice().iter().all(|&v| v == 3.5),
            "{:?}",
            &host.as_slice()[..4]
        );

        // a stream dropped while capturing ends its capture; the device stays usable
        let t = dev.create_stream_nonblocking().unwrap();
        t.begin_capture().unwrap();
        smoke::axpy(&dev, &t, 1.0, &x, &mut y).unwrap();
        drop(t);
        dev.synchronize().unwrap();
        assert!(y.to_vec().unwrap().iter().all(|&v| v == 3.5));
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}
