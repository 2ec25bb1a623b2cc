//! Attention area on the CPU: references against each other and hand-computed values, spec validation,
//! and every instance compiling for the targets available here.

mod common;

use common::*;
use half::bf16;
use rocmforge::jit::{cache, DiskCache, Jit, KernelSpec};
use rocmforge::ops::attention::rope::{Rope, RopeStyle};
use rocmforge::ops::attention::{
    self, decode, kv_cache, prefill, rope, softmax, AttnParams, PagedLayout,
};

#[test]
fn rope_conventions_by_hand() {
    // head_dim 8, n_rot 8, base 10000, pos 1: pair i turns by 10000^(-2i/8).
    let x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
    let ang = |i: usize| 10000f64.powf(-(2.0 * i as f64) / 8.0);
    for style in [RopeStyle::Normal, RopeStyle::Neox] {
        let r = Rope {
            style,
            n_rot: 8,
            base: 10000.0,
        };
        let mut y = x.clone();
        rope::rope_ref(&mut y, &[1], 1, 8, &r);
        for i in 0..4 {
            let (i0, i1) = if style == RopeStyle::Normal {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + 4)
            };
            let (s, c) = ang(i).sin_cos();
            let (a, b) = (x[i0] as f64, x[i1] as f64);
            assert!(
                (y[i0] as f64 - (a * c - b * s)).abs() < 1e-5,
                "{style:?} pair {i}"
            );
            assert!(
                (y[i1] as f64 - (a * s + b * c)).abs() < 1e-5,
                "{style:?} pair {i}"
            );
        }
    }
    // pos 0 is the identity; partial rotary leaves the tail alone
    let r = Rope {
        style: RopeStyle::Neox,
        n_rot: 8,
        base: 500000.0,
    };
    let x: Vec<f32> = (0..16).map(|v| v as f32 * 0.5).collect();
    let mut y = x.clone();
    rope::rope_ref(&mut y, &[0], 1, 16, &r);
    assert_eq!(x, y);
    let mut y = x.clone();
    rope::rope_ref(&mut y, &[7], 1, 16, &r);
    assert_eq!(&x[8..], &y[8..]);
    assert_ne!(&x[..8], &y[..8]);
    assert!(Rope {
        style: RopeStyle::Normal,
        n_rot: 12,
        base: 1e4
    }
    .validate("rope", 64)
    .is_err());
    assert!(Rope {
        style: RopeStyle::Normal,
        n_rot: 72,
        base: 1e4
    }
    .validate("rope", 64)
    .is_err());
}

/// A random paged cache: pages shuffled, lengths given.
pub fn random_cache(
    kv_lens: &[i32],
    page: usize,
    hkv: usize,
    hd: usize,
    seed: u64,
) -> (PagedLayout, Vec<i32>, Vec<f32>, Vec<f32>) {
    let max_pages = kv_lens
        .iter()
        .map(|&l| (l as usize).div_ceil(page))
        .max()
        .unwrap_or(1)
        .max(1);
    let num_pages = max_pages * kv_lens.len() + 3;
    let mut ids: Vec<i32> = (0..num_pages as i32).collect();
    // deterministic shuffle
    let r = rand_f32(num_pages, seed);
    ids.sort_by(|a, b| r[*a as usize].partial_cmp(&r[*b as usize]).unwrap());
    let bt: Vec<i32> = ids[..max_pages * kv_lens.len()].to_vec();
    let l = PagedLayout {
        num_pages,
        page_size: page,
        n_kv_heads: hkv,
        head_dim: hd,
        max_pages,
    };
    (
        l,
        bt,
        rand_f32(l.elements(), seed + 1),
        rand_f32(l.elements(), seed + 2),
    )
}

/// softmax(QK^T) V on contiguous K/V with an explicit mask, via the softmax reference.
fn naive(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    m: usize,
    hd: usize,
    scale: f32,
    mask: impl Fn(usize, usize) -> bool,
) -> Vec<f32> {
    let mut s = vec![0f32; n * m];
    let mut add = vec![0f32; n * m];
    for i in 0..n {
        for j in 0..m {
            s[i * m + j] = (0..hd)
                .map(|d| q[i * hd + d] as f64 * k[j * hd + d] as f64)
                .sum::<f64>() as f32;
            add[i * m + j] = if mask(i, j) { 0.0 } else { f32::NEG_INFINITY };
        }
    }
    let p = softmax::softmax_ref::<f32>(&s, m, n, scale, false, Some(&add), true);
    let mut o = vec![0f32; n * hd];
    for i in 0..n {
        for d in 0..hd {
            o[i * hd + d] = (0..m)
                .map(|j| p[i * m + j] as f64 * v[j * hd + d] as f64)
                .sum::<f64>() as f32;
        }
    }
    o
}

#[test]
fn prefill_ref_matches_naive_and_decode_ref() {
    let (hd, hkv, hq, page) = (16, 1, 2, 4);
    let kv_lens = [9, 13];
    let q_lens = [5, 13];
    let (l, bt, kc, vc) = random_cache(&kv_lens, page, hkv, hd, 7);
    let cu = [0, 5, 18];
    let q = rand_f32(18 * hq * hd, 3);
    for (causal, window, softcap) in [
        (true, 0, 0.0),
        (false, 0, 0.0),
        (true, 4, 0.0),
        (true, 0, 0.5),
    ] {
        let p = AttnParams {
            causal,
            scale: 0.3,
            softcap,
            window,
        };
        let got = prefill::attention_ref(&q, &kc, &vc, &l, &bt, &cu, &kv_lens, hq, &p, |_| true);
        if softcap == 0.0 {
            for b in 0..2 {
                let (n, m) = (q_lens[b], kv_lens[b] as usize);
                for h in 0..hq {
                    let gather = |c: &[f32]| {
                        (0..m)
                            .flat_map(|t| c[l.token_offset(&bt, b, 0, t)..][..hd].to_vec())
                            .collect::<Vec<f32>>()
                    };
                    let qh: Vec<f32> = (0..n)
                        .flat_map(|i| q[((cu[b] as usize + i) * hq + h) * hd..][..hd].to_vec())
                        .collect();
                    let off = m - n;
                    let want = naive(
                        &qh,
                        &gather(&kc),
                        &gather(&vc),
                        n,
                        m,
                        hd,
                        p.scale,
                        |i, j| {
                            (!causal || j <= off + i)
                                && (window <= 0 || j as i64 > (off + i) as i64 - window as i64)
                        },
                    );
                    let gh: Vec<f32> = (0..n)
                        .flat_map(|i| got[((cu[b] as usize + i) * hq + h) * hd..][..hd].to_vec())
                        .collect();
                    assert!(
                        rel_err(&gh, &want) < 1e-5,
                        "seq {b} head {h} causal {causal} window {window}"
                    );
                }
            }
        }
        if causal {
            // decode (last token of each sequence) against the prefill reference
            let ql: Vec<f32> = [4usize, 17]
                .iter()
                .flat_map(|&t| q[t * hq * hd..][..hq * hd].to_vec())
                .collect();
            let d = decode::decode_ref(&ql, &kc, &vc, &l, &bt, &kv_lens, 1, hq, &p);
            let want: Vec<f32> = [4usize, 17]
                .iter()
                .flat_map(|&t| got[t * hq * hd..][..hq * hd].to_vec())
                .collect();
            assert!(
                rel_err(&d, &want) < 1e-6,
                "decode vs prefill window {window} softcap {softcap}"
            );
        }
    }
}

#[test]
fn kv_append_ref_places_rows_and_rotates() {
    let (hd, hkv, page) = (16, 2, 4);
    let ctx = [3, 0];
    let cu = [0, 2, 7];
    let (l, bt, _, _) = random_cache(&[5, 5], page, hkv, hd, 11);
    let kn: Vec<bf16> = rand_f32(7 * hkv * hd, 1)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let vn: Vec<bf16> = rand_f32(7 * hkv * hd, 2)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let pos = [3, 4, 0, 1, 2, 3, 4];
    let r = Rope {
        style: RopeStyle::Neox,
        n_rot: 8,
        base: 10000.0,
    };
    let mut kc = vec![bf16::ZERO; l.elements()];
    let mut vc = kc.clone();
    kv_cache::append_ref(
        &l,
        &bt,
        &kn,
        &vn,
        &pos,
        &cu,
        &ctx,
        Some(&r),
        &mut kc,
        &mut vc,
    )
    .unwrap();
    // token 1 of sequence 1 (new row 3) sits at slot 1; V copied, K rotated by position 1
    let o = l.token_offset(&bt, 1, 1, 1);
    assert_eq!(&vc[o..o + hd], &vn[(3 * hkv + 1) * hd..][..hd]);
    let mut want = kn[(3 * hkv + 1) * hd..][..hd].to_vec();
    rope::rotate_row(&mut want, 1, &r);
    assert_eq!(&kc[o..o + hd], &want[..]);
    // overflowing the block table is an error
    assert!(kv_cache::append_ref(
        &l,
        &bt,
        &kn,
        &vn,
        &pos,
        &cu,
        &[7, 0],
        None,
        &mut kc,
        &mut vc
    )
    .is_err());
}

#[test]
fn softmax_ref_masks() {
    let x = [1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5];
    let y = softmax::softmax_ref(&x, 3, 2, 1.0, true, None, true);
    // row 0 (q 0 of 2, cols 3) sees cols 0..=1; row 1 sees all
    let e = (1f32.exp(), 2f32.exp());
    assert!((y[0] - e.0 / (e.0 + e.1)).abs() < 1e-6 && y[2] == 0.0);
    assert!((y[3] - 1.0 / 3.0).abs() < 1e-6);
    let sm = softmax::softmax_ref(
        &x,
        3,
        1,
        2.0,
        false,
        Some(&[0.0, f32::NEG_INFINITY, 1.0]),
        false,
    );
    assert_eq!(
        sm,
        vec![2.0, f32::NEG_INFINITY, 7.0, 1.0, f32::NEG_INFINITY, 2.0]
    );
}

#[test]
fn spec_validation() {
    let e = prefill::spec(100, "bf16", true, "scalar", 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("64, 80, 96, 128, 256"), "{e}");
    let e = attention::check_head_dim("attn_prefill", 112)
        .unwrap_err()
        .to_string();
    assert!(e.contains("64, 80, 96, 128, 256"), "{e}");
    assert!(prefill::spec(128, "f32", true, "scalar", 32).is_err());
    assert!(prefill::spec(128, "bf16", true, "mfma", 32).is_err());
    assert!(prefill::spec(128, "bf16", true, "mma_sync", 64).is_err());
    assert!(decode::spec(128, "bf16", 5, 32)
        .unwrap_err()
        .to_string()
        .contains("1, 4, 8"));
    // the matrix-core decode kernel: its tiles fit every target's shared memory (AMD's 64 KiB LDS,
    // sm_86/89's 99 KiB; the wide set, on targets that give a block more, what they give), and the
    // waves' area holds dec_finish's partial rows after the loop
    for hd in [64usize, 80, 96, 128, 256] {
        for (name, path) in [
            ("sm_86", "mma_sync"),
            ("sm_90", "mma_sync"),
            ("gfx942", "mfma"),
            ("gfx1100", "wmma"),
        ] {
            let t = rocmforge::gpu::Target::named(name).unwrap();
            let k = decode::DecodeKernel::Mc(path);
            let spec = k.spec(hd, "bf16", 8, &t);
            if path == "wmma" && hd > 128 {
                let e = spec.unwrap_err().to_string();
                assert!(e.contains("SIMT"), "{e}");
                continue;
            }
            let wide = name == "sm_90" && (hd == 128 || hd == 256);
            assert_eq!(
                decode::McTiles::wide_fits(&t, path, hd),
                wide,
                "{name} hd{hd}"
            );
            let set = if wide { "wide" } else { "std" };
            assert_eq!(
                spec.unwrap().uri(),
                format!("attn_decode_mc.hd{hd}.bf16.{path}.{set}.w{}", t.wave_size)
            );
            let tl = decode::McTiles::of(path, hd, wide);
            let limit = if wide {
                t.shared_per_block_optin as usize
            } else {
                (99 * 1024).min(t.shared_per_block_optin as usize)
            };
            assert!(tl.shared <= limit, "{name} hd{hd}: {tl:?}");
            let waves_area = tl.shared - 16 * (hd + 8) * 2;
            assert!(
                waves_area >= tl.nwarp * 16 * (hd + 2) * 4,
                "{name} hd{hd}: {tl:?}"
            );
            assert!(tl.bn % 16 == 0 && (tl.stages >= 2) == (path == "mma_sync"));
        }
    }
    // wide tiles only where they exist
    let mut p = vec![("head_dim", 64usize.into()), ("dtype", "bf16".into())];
    p.push(("path", "mma_sync".into()));
    p.push(("tiles", "wide".into()));
    let e = rocmforge::jit::KernelSpec::new(&decode::MC_FAMILY, &p, 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("head_dim 128 and 256"), "{e}");
    assert_eq!(decode::DecodeKernel::Mc("mfma").rows(3), 16);
    assert_eq!(decode::DecodeKernel::Simt.rows(3), 4);
    // matrix-core decode splits: whole rounds of resident blocks (H200: 132 CUs x 3 blocks at hd128,
    // x 2 at hd256), whole tiles, the fixed cost of a split counted
    assert_eq!(decode::mc_split_count(16 * 8, 396, 4096, 64), 3); // 384 blocks, one round
    assert_eq!(decode::mc_split_count(64 * 8, 396, 2048, 64), 3);
    assert_eq!(decode::mc_split_count(1, 264, 128, 32), 4); // a short context: one tile per wave
    assert_eq!(decode::mc_split_count(1, 264, 32768, 32), 256); // 128 tokens (4 tiles) a split
    assert_eq!(decode::mc_split_count(1, 264, 1, 32), 1);
    assert_eq!(decode::mc_split_count(0, 0, 0, 0), 1);
    // the merge counted: SmolLM2 (3 blocks a split, 128-key block iterations) keeps a 256-token
    // context in one split, and splits longer ones
    assert_eq!(decode::mc_split_count(3, 264, 256, 128), 1);
    assert_eq!(decode::mc_split_count(3, 264, 512, 128), 4);
    assert_eq!(decode::mc_split_count(3, 264, 2048, 128), 16);
    // short batches at head_dim >= 128 keep the SIMT kernel (at most 4 MiB of K and V)
    let h200 = rocmforge::gpu::Target::named("sm_90").unwrap();
    let simt = decode::DecodeKernel::Simt;
    let mc = decode::DecodeKernel::Mc("mma_sync");
    assert_eq!(
        decode::DecodeKernel::for_batch(&h200, 128, 8, 1, 1024),
        simt
    ); // 4 MiB
    assert_eq!(decode::DecodeKernel::for_batch(&h200, 128, 8, 1, 2048), mc);
    assert_eq!(
        decode::DecodeKernel::for_batch(&h200, 256, 1, 1, 4096),
        simt
    );
    assert_eq!(decode::DecodeKernel::for_batch(&h200, 256, 1, 16, 8192), mc);
    assert_eq!(decode::DecodeKernel::for_batch(&h200, 64, 3, 1, 64), mc);
    assert_eq!(
        prefill::spec(128, "bf16", true, "mma_sync", 32)
            .unwrap()
            .uri(),
        "attn_prefill.hd128.bf16.causal.mma_sync.pipe.w32"
    );
    // tiles fit the shared memory of every target family
    for hd in [64usize, 80, 96, 128, 256] {
        for (path, wave, limit) in [
            ("scalar", 32, 65536),
            ("scalar", 64, 65536),
            ("mfma", 64, 65536),
            ("wmma", 32, 65536),
            // sm_80's opt-in (163 KiB): the mma_sync defaults may use more than the 99 KiB of sm_86 /
            // sm_89, which run PipeConfig::fitting's smaller tiles (checked below)
            ("mma_sync", 32, 163 * 1024),
        ] {
            let t = prefill::tiles(path, hd, wave);
            assert!(t.shared <= limit, "{path} hd{hd}: {t:?}");
        }
        let small = prefill::PipeConfig::fitting(hd, 99 * 1024)
            .unwrap_or_else(|| panic!("hd{hd}: no tiles fit 99 KiB"));
        assert!(small.tiles(hd).shared <= 99 * 1024, "hd{hd}: {small}");
        // the mma_sync pipeline (attn_prefill_mma), default and small tiles: rows per block, Q
        // staging, and the cp.async chunk map of ap_copy_kv (v = thread + it * NT -> row v / NV,
        // chunk v % NV; with NT % NV == 0 spelled row thread / NV + it * NT / NV, chunk thread % NV)
        // covering every 16-byte chunk of a BN-key tile exactly once
        for t in [prefill::tiles("mma_sync", hd, 32), small.tiles(hd)] {
            if !t.pipe {
                continue;
            }
            assert_eq!(t.bm, 16 * t.mt * t.nwarp, "hd{hd}: {t:?}");
            assert!(
                t.bn % 16 == 0 && (!t.qreg || t.bm <= 4 * t.bn),
                "hd{hd}: {t:?}"
            );
            let (ld, nv, nt) = (hd + 8, hd / 8, t.nwarp * 32);
            assert!(
                (1..=2).contains(&t.stages) && !(t.qreg && t.stages == 1),
                "hd{hd}: {t:?}"
            );
            let rows = 2 * t.stages * t.bn + if t.qreg { 0 } else { t.bm };
            assert_eq!(t.shared, rows * ld * 2, "hd{hd}: {t:?}");
            let mut seen = vec![0u32; t.bn * nv];
            for thread in 0..nt {
                for it in 0..(t.bn * nv).div_ceil(nt) {
                    let v = thread + it * nt;
                    if v < t.bn * nv {
                        let (r, c) = (v / nv, v % nv);
                        if nt % nv == 0 {
                            assert_eq!((r, c), (thread / nv + it * (nt / nv), thread % nv));
                        }
                        assert!(r < t.bn && (r * ld + c * 8) * 2 % 16 == 0);
                        seen[r * nv + c] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "hd{hd}: {t:?}");
        }
    }
}

#[test]
fn every_instance_compiles_for_available_targets() {
    let dir = tempfile::tempdir().unwrap();
    let jit = Jit::new(DiskCache::new(
        Some(dir.path().to_path_buf()),
        cache::DEFAULT_MAX_BYTES,
    ));
    for t in available_targets() {
        for fam in attention::families() {
            let specs = KernelSpec::enumerate(fam, t.wave_size);
            // a representative subset per family keeps this test short on 2 cores: every dtype / path /
            // flag of head_dim 128, plus one instance of every other head_dim
            let chosen: Vec<_> = specs
                .into_iter()
                .filter(|s| s.check_target(&t).is_ok())
                .filter(|s| {
                    s.get("head_dim")
                        .and_then(|v| v.as_int())
                        .map_or(true, |hd| {
                            hd == 128
                                || (s.str("dtype") == "bf16"
                                    && !s.flag("causal")
                                    && s.int("rows") <= 4)
                        })
                })
                .collect();
            assert!(!chosen.is_empty(), "{} has no instance for {t}", fam.name);
            for s in chosen {
                let c = jit
                    .compile(&s, &t)
                    .unwrap_or_else(|e| panic!("{s} on {t}: {e}"));
                let res = rocmforge::gpu::codeobj::resources(&c.image).unwrap();
                let k = res.iter().find(|k| k.name == s.symbol()).unwrap();
                if t.vendor == rocmforge::gpu::Vendor::Amd {
                    assert!(!k.spills(), "{s} on {t} spills: {k:?}");
                }
            }
        }
    }
}
