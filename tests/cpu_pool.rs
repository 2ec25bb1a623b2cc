//! The arithmetic behind device pools and buffer views, without a device: bump allocation and its
//! alignment, exhaustion errors, view bounds and reinterpretation checks.

use half::f16;
use rocmforge::gpu::pool::{sub_range, view_as_range, Bump, POOL_ALIGN};

#[test]
fn bump_aligns_every_allocation_to_256_bytes() {
    let mut b = Bump::new(4096);
    assert_eq!(b.capacity(), 4096);
    assert_eq!(b.alloc(3, 1).unwrap(), 0);
    assert_eq!(b.used(), 3);
    assert_eq!(b.free(), 4096 - 256);
    assert_eq!(b.alloc_for::<f32>(10).unwrap(), 256);
    assert_eq!(b.used(), 256 + 40);
    assert_eq!(b.alloc_for::<f16>(1).unwrap(), 512);
    assert_eq!(b.alloc_for::<u8>(256).unwrap(), 768);
    // exactly at a boundary: no gap
    assert_eq!(b.used(), 1024);
    assert_eq!(b.alloc_for::<u64>(1).unwrap(), 1024);
    for off in [0usize, 256, 512, 768, 1024] {
        assert_eq!(off % POOL_ALIGN, 0);
    }
}

#[test]
fn bump_honours_larger_alignments_and_rejects_bad_ones() {
    let mut b = Bump::new(1 << 20);
    b.alloc(1, 1).unwrap();
    assert_eq!(b.alloc(8, 4096).unwrap(), 4096);
    assert_eq!(b.alloc(8, 16).unwrap(), 4096 + 256);
    let e = b.alloc(8, 48).unwrap_err().to_string();
    assert!(e.contains("power of two"), "{e}");
}

#[test]
fn bump_zero_bytes_take_no_space() {
    let mut b = Bump::new(512);
    b.alloc(10, 1).unwrap();
    let used = b.used();
    let off = b.alloc(0, 1).unwrap();
    assert_eq!(off, 256);
    assert_eq!(b.used(), used);
    // even when the pool is exactly full
    b.alloc(256, 1).unwrap();
    assert_eq!(b.used(), 512);
    assert_eq!(b.alloc_for::<f32>(0).unwrap(), 512);
    assert_eq!(b.free(), 0);
}

#[test]
fn bump_exhaustion_names_requested_and_free_bytes() {
    let mut b = Bump::new(4096);
    b.alloc_for::<f32>(1000).unwrap(); // 4000 bytes
    let e = b.alloc_for::<f32>(1).unwrap_err().to_string();
    assert!(
        e.contains("4 bytes requested") && e.contains("0 bytes free"),
        "{e}"
    );
    assert!(e.contains("f32"), "{e}");
    // a failed allocation reserves nothing
    assert_eq!(b.used(), 4000);
    let mut b = Bump::new(1000);
    b.alloc(100, 1).unwrap();
    let e = b.alloc(800, 1).unwrap_err().to_string();
    assert!(
        e.contains("800 bytes requested") && e.contains("744 bytes free"),
        "{e}"
    );
    assert_eq!(b.alloc(744, 1).unwrap(), 256);
    assert_eq!(b.used(), 1000);
    b.reset();
    assert_eq!(b.used(), 0);
    assert_eq!(b.alloc(1000, 1).unwrap(), 0);
}

#[test]
fn bump_overflow_is_an_error_not_a_wrap() {
    let mut b = Bump::new(usize::MAX);
    b.alloc(usize::MAX - 100, 1).unwrap();
    assert!(b.alloc(1, 1).is_err());
    assert!(b.alloc_for::<u64>(usize::MAX / 4).is_err());
    let e = Bump::new(16)
        .alloc_for::<f32>(usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("overflow"), "{e}");
}

#[test]
fn bump_sizes_a_pool_by_dry_run() {
    // a plan's allocations replayed on an unbounded Bump give the capacity the pool needs
    let sizes = [1000usize, 7, 4096, 1, 300];
    let mut dry = Bump::new(usize::MAX);
    for s in sizes {
        dry.alloc(s, 1).unwrap();
    }
    let mut real = Bump::new(dry.used());
    for s in sizes {
        real.alloc(s, 1).unwrap();
    }
    assert_eq!(real.free(), 0);
}

#[test]
fn view_bounds() {
    assert_eq!(sub_range(10, 0, 10).unwrap(), 0..10);
    assert_eq!(sub_range(10, 3, 4).unwrap(), 3..7);
    assert_eq!(sub_range(10, 10, 0).unwrap(), 10..10);
    let e = sub_range(10, 8, 3).unwrap_err().to_string();
    assert!(
        e.contains("3 elements at offset 8") && e.contains("buffer of 10"),
        "{e}"
    );
    assert!(sub_range(10, 11, 0).is_err());
    assert!(sub_range(10, usize::MAX, 2).is_err());
}

#[test]
fn view_as_checks_bounds_and_alignment() {
    let base = 0x7f00_0000_0000u64; // 256-aligned like every device allocation
    assert_eq!(view_as_range::<f32>(1024, base, 0, 256).unwrap(), 0..1024);
    assert_eq!(view_as_range::<f32>(1024, base, 4, 255).unwrap(), 4..1024);
    assert_eq!(view_as_range::<f16>(1024, base, 2, 3).unwrap(), 2..8);
    let e = view_as_range::<f32>(1024, base, 4, 256)
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside a buffer of 1024 bytes"), "{e}");
    let e = view_as_range::<f32>(1024, base, 2, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("4-byte aligned"), "{e}");
    assert!(view_as_range::<u64>(1024, base, 12, 1).is_err());
    assert!(view_as_range::<u64>(1024, base + 8, 8, 1).is_ok());
    // misaligned parent address
    assert!(view_as_range::<f32>(1024, base + 2, 0, 1).is_err());
    // empty views are never misaligned
    assert!(view_as_range::<f32>(1024, base, 3, 0).is_ok());
    assert!(view_as_range::<u8>(16, base, 0, usize::MAX).is_err());
}
