//! Attention kernels on the device against the CPU references (seeded random shapes, poisoned outputs).
//! Run on a GPU machine: `cargo test --release --test gpu_attention -- --include-ignored`.

mod common;

use common::*;
use half::{bf16, f16};
use rocmforge::gpu::{Buffer, Device};
use rocmforge::ops::attention::rope::{Rope, RopeStyle};
use rocmforge::ops::attention::{
    decode, kv_cache, prefill, rope, softmax, AttnParams, Batch, PagedCache, PagedLayout,
};
use rocmforge::ops::quantized::gemv_q8;
use rocmforge::ops::Element;
use serial_test::serial;

fn tv<T: Element>(n: usize, seed: u64) -> Vec<T> {
    rand_f32(n, seed).into_iter().map(T::from_f32).collect()
}
fn f32s<T: Element>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}
fn tol(dtype: &str) -> f64 {
    if dtype == "f32" {
        2e-4 // RoPE angles: exp2f/sincosf vs the host's, times positions up to 5000
    } else {
        2e-3
    }
}

/// Failures collected so that one run reports every failing case, not only the first.
static FAILS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
fn fail(msg: String) {
    eprintln!("FAIL {msg}");
    FAILS.lock().unwrap().push(msg);
}
fn check_fails() {
    let f = std::mem::take(&mut *FAILS.lock().unwrap());
    assert!(f.is_empty(), "{} failing cases:\n{}", f.len(), f.join("\n"));
}

/// Random page assignment (shuffled) for sequences of the given lengths.
fn layout(
    kv_lens: &[i32],
    page: usize,
    hkv: usize,
    hd: usize,
    seed: u64,
) -> (PagedLayout, Vec<i32>) {
    let max_pages = kv_lens
        .iter()
        .map(|&l| (l as usize).div_ceil(page))
        .max()
        .unwrap_or(1)
        .max(1);
    let num_pages = max_pages * kv_lens.len() + 2;
    let r = rand_f32(num_pages, seed);
    let mut ids: Vec<i32> = (0..num_pages as i32).collect();
    ids.sort_by(|a, b| r[*a as usize].partial_cmp(&r[*b as usize]).unwrap());
    (
        PagedLayout {
            num_pages,
            page_size: page,
            n_kv_heads: hkv,
            head_dim: hd,
            max_pages,
        },
        ids[..max_pages * kv_lens.len()].to_vec(),
    )
}

fn rope_case<T: Element>(
    tokens: usize,
    hq: usize,
    hk: usize,
    hd: usize,
    n_rot: usize,
    style: RopeStyle,
    seed: u64,
) {
    let dev = device();
    let s = dev.default_stream();
    let r = Rope {
        style,
        n_rot,
        base: 10000.0,
    };
    let pos: Vec<i32> = rand_f32(tokens, seed)
        .iter()
        .map(|v| ((v + 1.0) * 2500.0) as i32)
        .collect();
    let q: Vec<T> = tv(tokens * hq * hd, seed + 1);
    let k: Vec<T> = tv(tokens * hk * hd, seed + 2);
    let (mut dq, mut dk, dp) = (
        dev.upload(&q).unwrap(),
        dev.upload(&k).unwrap(),
        dev.upload(&pos).unwrap(),
    );
    rope::rope(&dev, &s, &mut dq, &mut dk, &dp, hq, hk, hd, &r).unwrap();
    let (mut wq, mut wk) = (q.clone(), k.clone());
    rope::rope_ref(&mut wq, &pos, hq, hd, &r);
    rope::rope_ref(&mut wk, &pos, hk, hd, &r);
    for (got, want, name) in [
        (dq.to_vec().unwrap(), wq, "q"),
        (dk.to_vec().unwrap(), wk, "k"),
    ] {
        let e = rel_err(&f32s(&got), &f32s(&want));
        if !(e < tol(T::DTYPE)) {
            fail(format!(
                "rope {} {style:?} {name} tokens={tokens} hd={hd} n_rot={n_rot}: {e}",
                T::DTYPE
            ));
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn rope_matches_reference() {
    for (i, &tokens) in [1usize, 17, 1000].iter().enumerate() {
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            for (hd, n_rot) in [(64, 64), (128, 128), (80, 32), (256, 64)] {
                let seed = 10 * i as u64 + hd as u64;
                rope_case::<f32>(tokens, 8, 2, hd, n_rot, style, seed);
                rope_case::<f16>(tokens, 7, 1, hd, n_rot, style, seed);
                rope_case::<bf16>(tokens, 4, 4, hd, n_rot, style, seed);
            }
        }
    }
    check_fails();
}

fn append_case<T: Element>(
    ctx: &[i32],
    new: &[i32],
    page: usize,
    hkv: usize,
    hd: usize,
    rope: Option<Rope>,
    seed: u64,
) {
    let dev = device();
    let s = dev.default_stream();
    let after: Vec<i32> = ctx.iter().zip(new).map(|(a, b)| a + b).collect();
    let (l, bt) = layout(&after, page, hkv, hd, seed);
    let mut cu = vec![0i32];
    for n in new {
        cu.push(cu.last().unwrap() + n);
    }
    let tokens = *cu.last().unwrap() as usize;
    let kn: Vec<T> = tv(tokens * hkv * hd, seed + 1);
    let vn: Vec<T> = tv(tokens * hkv * hd, seed + 2);
    let pos: Vec<i32> = (0..ctx.len())
        .flat_map(|b| ctx[b]..ctx[b] + new[b])
        .collect();
    let k0: Vec<T> = tv(l.elements(), seed + 3);
    let v0: Vec<T> = tv(l.elements(), seed + 4);
    let mut cache = PagedCache::<T>::new(&dev, l, &bt).unwrap();
    cache.k.copy_from_host(&k0).unwrap();
    cache.v.copy_from_host(&v0).unwrap();
    let (dkn, dvn, dpos, dcu, dctx) = (
        dev.upload(&kn).unwrap(),
        dev.upload(&vn).unwrap(),
        dev.upload(&pos).unwrap(),
        dev.upload(&cu).unwrap(),
        dev.upload(ctx).unwrap(),
    );
    let a = kv_cache::Append {
        k_new: &dkn,
        v_new: &dvn,
        pos: &dpos,
        cu_new: &dcu,
        ctx_lens: &dctx,
        cu_new_host: &cu,
        ctx_lens_host: ctx,
    };
    // with RoPE, the fused form also rotates the queries of the same tokens (3 query heads per KV
    // head), checked against rope_ref; q poisoned nowhere: it is rotated in place
    let hq = 3 * hkv;
    let qh: Vec<T> = tv(tokens * hq * hd, seed + 5);
    let mut dq = dev.upload(&qh).unwrap();
    match &rope {
        Some(r) if tokens > 0 => {
            kv_cache::append_rope_q(&dev, &s, &mut cache, &a, r, &mut dq, hq).unwrap()
        }
        _ => kv_cache::append(&dev, &s, &mut cache, &a, rope.as_ref()).unwrap(),
    }
    if let Some(r) = &rope {
        let mut wq = qh.clone();
        rope::rope_ref(&mut wq, &pos, hq, hd, r);
        let e = rel_err(&f32s(&dq.to_vec().unwrap()), &f32s(&wq));
        assert!(
            e < 1e-3,
            "Q rotated in the append {} rope {:?} page {page}: {e}",
            T::DTYPE,
            r.style
        );
    }
    let (mut wk, mut wv) = (k0, v0);
    kv_cache::append_ref(
        &l,
        &bt,
        &kn,
        &vn,
        &pos,
        &cu,
        ctx,
        rope.as_ref(),
        &mut wk,
        &mut wv,
    )
    .unwrap();
    let gv = cache.v.to_vec().unwrap();
    assert_eq!(
        bytemuck::cast_slice::<T, u8>(&gv),
        bytemuck::cast_slice::<T, u8>(&wv),
        "V append page {page}"
    );
    let e = rel_err(&f32s(&cache.k.to_vec().unwrap()), &f32s(&wk));
    assert!(
        e < 1e-3,
        "K append {} rope {:?} page {page}: {e}",
        T::DTYPE,
        rope.map(|r| r.style)
    );
}

/// The RoPE settings the append and fused-append tests run: none, normal over 64 dims, neox over 128.
const ROPES: [Option<Rope>; 3] = [
    None,
    Some(Rope {
        style: RopeStyle::Normal,
        n_rot: 64,
        base: 10000.0,
    }),
    Some(Rope {
        style: RopeStyle::Neox,
        n_rot: 128,
        base: 500000.0,
    }),
];

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn kv_append_matches_reference() {
    for page in [16usize, 64] {
        for (i, rope) in ROPES.into_iter().enumerate() {
            let seed = 100 + i as u64 + page as u64;
            append_case::<bf16>(&[0, 17, 1000, 5], &[17, 1, 64, 0], page, 8, 128, rope, seed);
            append_case::<f16>(&[3, 0], &[1000, 2], page, 2, 128, rope, seed + 7);
        }
        append_case::<bf16>(
            &[63],
            &[4097],
            page,
            1,
            80,
            Some(Rope {
                style: RopeStyle::Neox,
                n_rot: 32,
                base: 10000.0,
            }),
            9,
        );
    }
}

#[derive(Clone)]
struct AttnCase {
    q_lens: Vec<i32>,
    kv_lens: Vec<i32>,
    hd: usize,
    hkv: usize,
    g: usize,
    page: usize,
    p: AttnParams,
}

/// A case's random inputs (paged layout, block tables, cumulative query lengths, Q, K, V) and the
/// rows compared with the reference: every row of short cases; of long ones every 37th and each
/// sequence's last (the f64 reference is O(q * kv * hd)).
struct CaseInputs<T> {
    l: PagedLayout,
    bt: Vec<i32>,
    hq: usize,
    cu: Vec<i32>,
    q: Vec<T>,
    kc: Vec<T>,
    vc: Vec<T>,
    rows: Vec<usize>,
}

impl<T: Element> CaseInputs<T> {
    fn new(c: &AttnCase, seed: u64) -> CaseInputs<T> {
        let (l, bt) = layout(&c.kv_lens, c.page, c.hkv, c.hd, seed);
        let hq = c.hkv * c.g;
        let mut cu = vec![0i32];
        for q in &c.q_lens {
            cu.push(cu.last().unwrap() + q);
        }
        let total = *cu.last().unwrap() as usize;
        let rows = (0..total)
            .filter(|&t| total < 300 || t % 37 == 0 || cu.contains(&(t as i32 + 1)))
            .collect();
        CaseInputs {
            q: tv(total * hq * c.hd, seed + 1),
            kc: tv(l.elements(), seed + 2),
            vc: tv(l.elements(), seed + 3),
            l,
            bt,
            hq,
            cu,
            rows,
        }
    }

    /// The paged cache, batch, queries and an output buffer on the device.
    fn upload(&self, dev: &Device, c: &AttnCase) -> (PagedCache<T>, Batch, Buffer<T>, Buffer<T>) {
        let mut cache = PagedCache::<T>::new(dev, self.l, &self.bt).unwrap();
        cache.k.copy_from_host(&self.kc).unwrap();
        cache.v.copy_from_host(&self.vc).unwrap();
        let batch = Batch::new(dev, &self.cu, &c.kv_lens).unwrap();
        let dq = dev.upload(&self.q).unwrap();
        let out = dev.alloc::<T>(self.q.len()).unwrap();
        (cache, batch, dq, out)
    }

    /// The compared rows of an output `[tokens][hq][hd]`.
    fn pick(&self, v: &[f32]) -> Vec<f32> {
        let n = self.hq * self.l.head_dim;
        self.rows
            .iter()
            .flat_map(|&t| v[t * n..][..n].to_vec())
            .collect()
    }

    /// The f64 reference at the compared rows.
    fn reference(&self, c: &AttnCase) -> Vec<f32> {
        let want = prefill::attention_ref(
            &f32s(&self.q),
            &f32s(&self.kc),
            &f32s(&self.vc),
            &self.l,
            &self.bt,
            &self.cu,
            &c.kv_lens,
            self.hq,
            &c.p,
            |t| self.rows.binary_search(&t).is_ok(),
        );
        self.pick(&want)
    }
}

/// Build a random cache and queries; run prefill (path) or decode; compare sampled rows to the reference.
fn attn_case<T: Element>(c: &AttnCase, path: Option<&str>, decode_mode: bool, seed: u64) {
    let dev = device();
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    let inp = CaseInputs::<T>::new(c, seed);
    let hq = inp.hq;
    {
        let (cache, batch, dq, mut out) = inp.upload(&dev, c);
        out.fill_bytes(0xff).unwrap();
        let mut extra = Vec::new();
        if decode_mode {
            // path: None = the target's native decode kernel, Some("simt") = the SIMT kernel
            let kernel = match path {
                Some("simt") => decode::DecodeKernel::Simt,
                _ => decode::DecodeKernel::native(dev.target(), c.hd),
            };
            let mut plan =
                decode::DecodePlan::with_kernel(&dev, &batch, hq, c.hkv, c.hd, kernel).unwrap();
            // with splits, both merges (in the decode launch, by the merge kernel), each launched twice
            // (the in-launch merge's counters must be back at zero for the second launch)
            // the second launch of each also writes the 8-bit copy of the output, which must equal
            // the CPU quantization of the output it wrote
            let fused = plan.fused_merge;
            let (m, cols) = (c.q_lens.iter().sum::<i32>() as usize, hq * c.hd);
            let mut q8 = dev.alloc::<u8>(gemv_q8::act_bytes(m, cols)).unwrap();
            for (i, f) in [!fused, fused].into_iter().enumerate() {
                if i == 0 && plan.splits == 1 {
                    continue;
                }
                plan.fused_merge = f;
                for with_q8 in [false, true] {
                    out.fill_bytes(0xff).unwrap();
                    q8.fill_bytes(0x5a).unwrap();
                    let q8_arg = if with_q8 { Some(&mut q8) } else { None };
                    decode::decode(
                        &dev, &s, &dq, &cache, &batch, &mut plan, &mut out, &c.p, q8_arg,
                    )
                    .unwrap();
                }
                let got_out = f32s(&out.to_vec().unwrap());
                let (wq, ws) = gemv_q8::quantize_x_ref(&got_out, m, cols).unwrap();
                let bytes = q8.to_vec().unwrap();
                let gq: Vec<i8> = bytes[..m * cols].iter().map(|&b| b as i8).collect();
                let gs: Vec<f32> = bytes[m * cols..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let ws: Vec<f32> = ws.iter().flatten().copied().collect();
                if gq != wq || gs.iter().zip(&ws).any(|(a, b)| a.to_bits() != b.to_bits()) {
                    let bad = gq.iter().zip(&wq).position(|(a, b)| a != b);
                    fail(format!(
                        "decode 8-bit output (fused merge {f}, splits {}) differs from quantizing its output: q{:?} kv{:?} hd{} g{}; first code mismatch at {bad:?}",
                        plan.splits, c.q_lens, c.kv_lens, c.hd, c.g
                    ));
                }
                if i == 0 {
                    extra.push((f, got_out));
                }
            }
        } else {
            prefill::prefill(&dev, &s, &dq, &cache, &batch, hq, &mut out, &c.p, path).unwrap();
        }
        let got = f32s(&out.to_vec().unwrap());
        for (f, other) in &extra {
            let e = rel_err(other, &got);
            if !(e < tol(T::DTYPE)) {
                fail(format!(
                    "decode merge fused={f} vs fused={}: q{:?} kv{:?} hd{} g{}: rel diff {e}",
                    !f, c.q_lens, c.kv_lens, c.hd, c.g
                ));
            }
        }
        if !got.iter().all(|v| v.is_finite()) {
            fail(format!(
                "NaN/unwritten output {:?} hd{} g{} {:?}",
                c.q_lens, c.hd, c.g, path
            ));
        }
        let e = rel_err(&inp.pick(&got), &inp.reference(c));
        let what = if decode_mode {
            format!("decode {}", path.unwrap_or("native"))
        } else {
            format!("prefill {}", path.unwrap_or("native"))
        };
        // The pipelined mma.sync prefill rounds a bf16 P to bf16 for P.V as torch's kernels do (no
        // hi + lo split: PipeConfig::default_for): 3e-3 there; every other path keeps 2e-3.
        let rounds_p = !decode_mode
            && T::DTYPE == "bf16"
            && path.unwrap_or(prefill::native_path(dev.target())) == "mma_sync"
            && prefill::mma_sync_pipeline();
        let limit = if rounds_p { 3e-3 } else { tol(T::DTYPE) };
        if !(e < limit) {
            fail(format!(
                "{what} {} q{:?} kv{:?} hd{} g{} hkv{} page{} {:?}: rel err {e}",
                T::DTYPE,
                c.q_lens,
                c.kv_lens,
                c.hd,
                c.g,
                c.hkv,
                c.page,
                c.p
            ));
        }
        eprintln!(
            "{what} {} q{:?} kv{:?} hd{} g{} page{} causal{} w{} cap{}: rel err {e:.2e}",
            T::DTYPE,
            c.q_lens,
            c.kv_lens,
            c.hd,
            c.g,
            c.page,
            c.p.causal,
            c.p.window,
            c.p.softcap
        );
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

fn prefill_cases() -> Vec<AttnCase> {
    let mut v = Vec::new();
    let hds = [64usize, 80, 96, 128, 256];
    for (i, &hd) in hds.iter().enumerate() {
        let g = [1usize, 4, 7, 8][i % 4];
        let page = if i % 2 == 0 { 16 } else { 64 };
        // ragged batch, chunked prefill (cached prefixes), lengths 1, 2, 17, 64, 1000
        let mut p = AttnParams::new(hd, i % 2 == 0);
        v.push(AttnCase {
            q_lens: vec![1, 2, 17, 64, 1000],
            kv_lens: vec![1, 40, 17, 100, 1003],
            hd,
            hkv: 2,
            g,
            page,
            p,
        });
        p.causal = !p.causal;
        v.push(AttnCase {
            q_lens: vec![17, 1],
            kv_lens: vec![17, 2],
            hd,
            hkv: 1,
            g: 4,
            page,
            p,
        });
    }
    // page sizes that are not powers of two (the copy's division path), smaller than a key tile
    // (a tile spans pages) and not dividing it
    v.push(AttnCase {
        q_lens: vec![17, 300],
        kv_lens: vec![40, 333],
        hd: 128,
        hkv: 2,
        g: 4,
        page: 24,
        p: AttnParams::new(128, true),
    });
    v.push(AttnCase {
        q_lens: vec![100],
        kv_lens: vec![1003],
        hd: 64,
        hkv: 1,
        g: 8,
        page: 40,
        p: AttnParams::new(64, false),
    });
    // long sequence, window and soft-cap
    v.push(AttnCase {
        q_lens: vec![4097],
        kv_lens: vec![4097],
        hd: 128,
        hkv: 1,
        g: 2,
        page: 16,
        p: AttnParams::new(128, true),
    });
    v.push(AttnCase {
        q_lens: vec![4097],
        kv_lens: vec![4097],
        hd: 256,
        hkv: 1,
        g: 1,
        page: 64,
        p: AttnParams::new(256, false),
    });
    v.push(AttnCase {
        q_lens: vec![1000, 64],
        kv_lens: vec![1500, 64],
        hd: 128,
        hkv: 2,
        g: 4,
        page: 16,
        p: AttnParams {
            causal: true,
            scale: 0.09,
            softcap: 0.0,
            window: 129,
        },
    });
    v.push(AttnCase {
        q_lens: vec![300],
        kv_lens: vec![300],
        hd: 256,
        hkv: 1,
        g: 2,
        page: 16,
        p: AttnParams {
            causal: true,
            scale: 0.0625,
            softcap: 0.5,
            window: 0,
        },
    });
    v
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn prefill_native_path_matches_reference() {
    for (i, c) in prefill_cases().iter().enumerate() {
        attn_case::<bf16>(c, None, false, 1000 + i as u64);
        if i % 3 == 0 {
            attn_case::<f16>(c, None, false, 2000 + i as u64);
        }
    }
    check_fails();
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn prefill_scalar_path_matches_reference() {
    for (i, c) in prefill_cases()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.q_lens[0] < 4097)
    {
        attn_case::<bf16>(c, Some("scalar"), false, 3000 + i as u64);
    }
    attn_case::<f16>(&prefill_cases()[3], Some("scalar"), false, 3999);
    check_fails();
}

/// Configurations of the pipelined mma_sync loop other than the defaults: the bench's sweep candidates
/// at hd64 / hd128 (each with the bf16 P split on and off, exp2's FFMA form off and on), two generic
/// ones at every head size (spilling ones too: slower, still exact), two with one K/V stage.
fn pipe_configs(hd: usize) -> Vec<prefill::PipeConfig> {
    let tiles: Vec<(usize, usize, usize, usize, bool)> = match hd {
        128 => vec![
            (128, 64, 8, 1, true),
            (128, 32, 4, 2, false),
            (128, 64, 4, 2, false),
            (64, 64, 4, 1, true),
        ],
        64 => vec![
            (128, 64, 4, 2, true),
            (128, 128, 4, 2, true),
            (64, 64, 4, 1, true),
            (128, 64, 8, 1, true),
        ],
        _ => vec![(64, 64, 4, 1, true), (128, 32, 4, 2, false)],
    };
    let mut v = Vec::new();
    for (bm, bn, nw, mt, qreg) in tiles {
        for (psplit, ffma) in [(true, false), (false, false), (true, true), (false, true)] {
            let mut c = prefill::PipeConfig::new(bm, bn, nw, mt, qreg);
            c.psplit = psplit;
            c.ffma = ffma;
            if c != prefill::PipeConfig::default_for(hd) {
                v.push(c);
            }
        }
    }
    // one K and one V buffer (stages 1), bf16 P split and FFMA form both ways
    for (bm, bn, nw, mt) in [(64, 64, 4, 1), (128, 32, 4, 2)] {
        for (psplit, ffma) in [(true, false), (false, true)] {
            let mut c = prefill::PipeConfig::new(bm, bn, nw, mt, false);
            (c.psplit, c.ffma, c.stages) = (psplit, ffma, 1);
            if c != prefill::PipeConfig::default_for(hd) {
                v.push(c);
            }
        }
    }
    v
}

/// One case for many pipelined configurations: inputs and the f64 reference made once, the output
/// poisoned before every run. bf16 without the P split: P has 8 significant bits (the accuracy rule is
/// 1.25 x torch's own bf16 error, 2.6e-3 on the bench's check), so 3e-3 instead of 2e-3.
fn pipe_case<T: Element>(c: &AttnCase, cfgs: &[prefill::PipeConfig], seed: u64) {
    let dev = device();
    let s = dev.default_stream();
    let inp = CaseInputs::<T>::new(c, seed);
    let hq = inp.hq;
    let want = inp.reference(c);
    let (cache, batch, dq, mut out) = inp.upload(&dev, c);
    for cfg in cfgs {
        out.fill_bytes(0xff).unwrap();
        let o = prefill::PrefillOptions {
            path: Some("mma_sync"),
            pipe: Some(*cfg),
        };
        let what = format!(
            "prefill {} [{}] q{:?} kv{:?} hd{} g{} page{} {:?}",
            T::DTYPE,
            cfg.for_dtype(T::DTYPE),
            c.q_lens,
            c.kv_lens,
            c.hd,
            c.g,
            c.page,
            c.p
        );
        if let Err(e) = prefill::prefill_with(&dev, &s, &dq, &cache, &batch, hq, &mut out, &c.p, &o)
        {
            fail(format!("{what}: {e}"));
            continue;
        }
        let e = rel_err(&inp.pick(&f32s(&out.to_vec().unwrap())), &want);
        let limit = if T::DTYPE == "bf16" && !cfg.psplit {
            3e-3
        } else {
            tol(T::DTYPE)
        };
        if !(e < limit) {
            fail(format!("{what}: rel err {e} (limit {limit})"));
        }
        eprintln!("{what}: rel err {e:.2e}");
    }
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn prefill_pipe_configs_match_reference() {
    let dev = device();
    if prefill::native_path(dev.target()) != "mma_sync" {
        eprintln!("skipped: {} has no mma_sync path", dev.target());
        return;
    }
    // every instance compiled up front, in parallel (bf16 causal and full, f16 causal); registers and
    // local memory of the bf16 causal ones printed for the record
    let hds = [64usize, 80, 96, 128, 256];
    let mut work = Vec::new();
    for &hd in &hds {
        for cfg in pipe_configs(hd) {
            for (dt, causal) in [("bf16", true), ("bf16", false), ("f16", true)] {
                let sp = prefill::spec_with(hd, dt, causal, "mma_sync", 32, Some(cfg)).unwrap();
                if !work.iter().any(|(w, _)| *w == sp) {
                    work.push((sp, dev.target().clone()));
                }
            }
        }
    }
    let jit = rocmforge::jit::Jit::global();
    for ((sp, _), r) in work.iter().zip(jit.compile_many_each(&work, 1, |_, _| {})) {
        match r {
            Ok(im) if sp.str("dtype") == "bf16" && sp.flag("causal") => {
                let res = rocmforge::gpu::codeobj::resources(&im.image).unwrap();
                if let Some(k) = res.iter().find(|k| k.name == sp.symbol()) {
                    eprintln!(
                        "{sp}: {} registers, {} B local memory{}",
                        k.vgprs,
                        k.scratch_bytes,
                        if k.spills() { " (spills)" } else { "" }
                    );
                }
            }
            Ok(_) => {}
            Err(e) => fail(format!("{sp}: {e}")),
        }
    }
    for (i, hd) in hds.into_iter().enumerate() {
        let cfgs = pipe_configs(hd);
        let p = AttnParams::new(hd, true);
        let cases = [
            // ragged, chunked (kv longer than q), GQA 4, causal: q_len 1 (over a single key), 17, 1000
            AttnCase {
                q_lens: vec![1, 17, 1000],
                kv_lens: vec![1, 40, 1003],
                hd,
                hkv: 2,
                g: 4,
                page: 16,
                p,
            },
            // not causal, MQA 4: one query over 300 keys
            AttnCase {
                q_lens: vec![17, 1, 1000],
                kv_lens: vec![17, 300, 1000],
                hd,
                hkv: 1,
                g: 4,
                page: 64,
                p: AttnParams { causal: false, ..p },
            },
            // sliding window over a cached prefix (tiles skipped per wave)
            AttnCase {
                q_lens: vec![1000, 64],
                kv_lens: vec![1500, 64],
                hd,
                hkv: 2,
                g: 3,
                page: 16,
                p: AttnParams {
                    causal: true,
                    scale: 0.09,
                    softcap: 0.0,
                    window: 129,
                },
            },
            // soft-cap: the FFMA form falls back to scores scaled first
            AttnCase {
                q_lens: vec![300],
                kv_lens: vec![300],
                hd,
                hkv: 1,
                g: 2,
                page: 16,
                p: AttnParams {
                    causal: true,
                    scale: 0.0625,
                    softcap: 0.5,
                    window: 0,
                },
            },
        ];
        for (j, c) in cases.iter().enumerate() {
            let seed = 8000 + 10 * i as u64 + j as u64;
            pipe_case::<bf16>(c, &cfgs, seed);
            if j == 0 {
                pipe_case::<f16>(c, &cfgs, seed + 5);
            }
        }
    }
    check_fails();
}

/// Decode kernels every decode case runs: the target's native one (matrix cores where it has them) and
/// the SIMT kernel (the same on targets without matrix cores).
const DECODE_KERNELS: [Option<&str>; 2] = [None, Some("simt")];

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn decode_matches_reference() {
    let lens = vec![1, 2, 17, 64, 1000, 4097];
    for (i, &hd) in [64usize, 80, 96, 128, 256].iter().enumerate() {
        for (j, &g) in [1usize, 4, 7, 8].iter().enumerate() {
            let page = if (i + j) % 2 == 0 { 16 } else { 64 };
            let nq = if j == 1 { 3 } else { 1 };
            let kv: Vec<i32> = lens.iter().map(|&l| l.max(nq as i32)).collect();
            let mut p = AttnParams::new(hd, true);
            if i == 3 && j == 2 {
                p.window = 100;
                p.softcap = 0.3;
            }
            let c = AttnCase {
                q_lens: vec![nq as i32; kv.len()],
                kv_lens: kv,
                hd,
                hkv: 2,
                g,
                page,
                p,
            };
            for path in DECODE_KERNELS {
                attn_case::<bf16>(&c, path, true, 5000 + (i * 4 + j) as u64);
                if j == 0 {
                    attn_case::<f16>(&c, path, true, 6000 + i as u64);
                }
            }
        }
    }
    // one long sequence, many splits
    let c = AttnCase {
        q_lens: vec![1],
        kv_lens: vec![32768],
        hd: 128,
        hkv: 8,
        g: 4,
        page: 16,
        p: AttnParams::new(128, true),
    };
    for path in DECODE_KERNELS {
        attn_case::<bf16>(&c, path, true, 7000);
    }
    check_fails();
}

/// Small decode cases (quick enough for compute-sanitizer and the emulated AMD targets): short
/// sequences with a single split (the decode kernel writes the output), a few splits merged in the launch
/// and by the merge kernel, two row groups of the matrix-core kernel, hd128 and hd256.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn decode_small_cases() {
    // short sequences: a single split, the decode kernel writes the output itself (no merge)
    // (hd128 g8 nq3: 24 rows per kv head, two row groups of the matrix-core kernel)
    for (i, (hd, g, nq)) in [
        (128usize, 4usize, 1usize),
        (80, 7, 1),
        (64, 8, 2),
        (128, 8, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let c = AttnCase {
            q_lens: vec![nq as i32; 5],
            kv_lens: [2, 17, 33, 64, 50].map(|l: i32| l.max(nq as i32)).to_vec(),
            hd,
            hkv: 2,
            g,
            page: 16,
            p: AttnParams::new(hd, true),
        };
        for path in DECODE_KERNELS {
            attn_case::<bf16>(&c, path, true, 7100 + i as u64);
        }
    }
    for (i, hd) in [128usize, 256].into_iter().enumerate() {
        let c = AttnCase {
            q_lens: vec![1; 4],
            kv_lens: vec![1, 17, 300, 1000],
            hd,
            hkv: 2,
            g: 4,
            page: 16,
            p: AttnParams::new(hd, true),
        };
        let mut cw = c.clone();
        cw.p.window = 200;
        cw.p.softcap = 0.5;
        for path in DECODE_KERNELS {
            attn_case::<f16>(&c, path, true, 7200 + i as u64);
            attn_case::<bf16>(&cw, path, true, 7300 + i as u64);
        }
    }
    check_fails();
}

/// `decode_append` (RoPE and the KV append inside the decode launch) against the two launches it
/// replaces (`append_rope_q`, then `decode`) on the same inputs: the caches must be equal bit for bit
/// (one cache-write routine), the outputs within rounding of each other (Q is rotated by different
/// code: on load, against in place), and both within the decode tolerance of the f64 reference.
fn decode_append_case<T: Element>(
    kv_lens: &[i32],
    nq: usize,
    hd: usize,
    hkv: usize,
    g: usize,
    page: usize,
    rope: Option<Rope>,
    kernel: Option<&str>,
    seed: u64,
) {
    let dev = device();
    let s = dev.default_stream();
    let nseq = kv_lens.len();
    let hq = hkv * g;
    let tokens = nseq * nq;
    let (l, bt) = layout(kv_lens, page, hkv, hd, seed);
    let cu: Vec<i32> = (0..=nseq as i32).map(|b| b * nq as i32).collect();
    let ctx: Vec<i32> = kv_lens.iter().map(|&k| k - nq as i32).collect();
    let pos: Vec<i32> = ctx.iter().flat_map(|&c| c..c + nq as i32).collect();
    let kn: Vec<T> = tv(tokens * hkv * hd, seed + 1);
    let vn: Vec<T> = tv(tokens * hkv * hd, seed + 2);
    let qh: Vec<T> = tv(tokens * hq * hd, seed + 3);
    let k0: Vec<T> = tv(l.elements(), seed + 4);
    let v0: Vec<T> = tv(l.elements(), seed + 5);
    let p = AttnParams::new(hd, true);
    let (dkn, dvn, dpos, dcu, dctx) = (
        dev.upload(&kn).unwrap(),
        dev.upload(&vn).unwrap(),
        dev.upload(&pos).unwrap(),
        dev.upload(&cu).unwrap(),
        dev.upload(&ctx).unwrap(),
    );
    let batch = Batch::new(&dev, &cu, kv_lens).unwrap();
    let kern = match kernel {
        Some("simt") => decode::DecodeKernel::Simt,
        _ => decode::DecodeKernel::native(dev.target(), hd),
    };
    let fresh = || {
        let mut c = PagedCache::<T>::new(&dev, l, &bt).unwrap();
        c.k.copy_from_host(&k0).unwrap();
        c.v.copy_from_host(&v0).unwrap();
        c
    };
    // two launches
    let mut ca = fresh();
    let mut qa = dev.upload(&qh).unwrap();
    let a = kv_cache::Append {
        k_new: &dkn,
        v_new: &dvn,
        pos: &dpos,
        cu_new: &dcu,
        ctx_lens: &dctx,
        cu_new_host: &cu,
        ctx_lens_host: &ctx,
    };
    match &rope {
        Some(r) => kv_cache::append_rope_q(&dev, &s, &mut ca, &a, r, &mut qa, hq).unwrap(),
        None => kv_cache::append(&dev, &s, &mut ca, &a, None).unwrap(),
    }
    let mut plan = decode::DecodePlan::with_kernel(&dev, &batch, hq, hkv, hd, kern).unwrap();
    let mut oa = dev.alloc::<T>(tokens * hq * hd).unwrap();
    oa.fill_bytes(0xff).unwrap();
    decode::decode(&dev, &s, &qa, &ca, &batch, &mut plan, &mut oa, &p, None).unwrap();
    // one launch, the queries as given (unrotated)
    let mut cb = fresh();
    let qb = dev.upload(&qh).unwrap();
    let mut ob = dev.alloc::<T>(tokens * hq * hd).unwrap();
    ob.fill_bytes(0xff).unwrap();
    let new = decode::DecodeAppend {
        k_new: &dkn,
        v_new: &dvn,
        pos: &dpos,
        rope: rope.as_ref(),
    };
    decode::decode_append(
        &dev, &s, &qb, &mut cb, &new, &batch, &mut plan, &mut ob, &p, None,
    )
    .unwrap();
    let what = format!(
        "decode_append {} {:?} kv{kv_lens:?} nq{nq} hd{hd} g{g} page{page} rope {:?} splits {}",
        T::DTYPE,
        kernel.unwrap_or("native"),
        rope.map(|r| (r.style, r.n_rot)),
        plan.splits
    );
    let bytes = |b: &Buffer<T>| bytemuck::cast_slice::<T, u8>(&b.to_vec().unwrap()).to_vec();
    if bytes(&cb.k) != bytes(&ca.k) || bytes(&cb.v) != bytes(&ca.v) {
        fail(format!(
            "{what}: the cache differs from the append kernel's"
        ));
    }
    let (ga, gb) = (f32s(&oa.to_vec().unwrap()), f32s(&ob.to_vec().unwrap()));
    let e_ab = rel_err(&gb, &ga);
    if !gb.iter().all(|v| v.is_finite()) || !(e_ab < 1e-3) {
        fail(format!("{what}: against the two launches rel diff {e_ab}"));
    }
    // the f64 reference on the host: the append's reference, the rotated queries, decode_ref
    let (mut wk, mut wv) = (k0.clone(), v0.clone());
    kv_cache::append_ref(
        &l,
        &bt,
        &kn,
        &vn,
        &pos,
        &cu,
        &ctx,
        rope.as_ref(),
        &mut wk,
        &mut wv,
    )
    .unwrap();
    let mut wq = qh.clone();
    if let Some(r) = &rope {
        rope::rope_ref(&mut wq, &pos, hq, hd, r);
    }
    let want = decode::decode_ref(
        &f32s(&wq),
        &f32s(&wk),
        &f32s(&wv),
        &l,
        &bt,
        kv_lens,
        nq,
        hq,
        &p,
    );
    let e = rel_err(&gb, &want);
    if !(e < tol(T::DTYPE)) {
        fail(format!("{what}: rel err {e} against the reference"));
    }
    eprintln!("{what}: rel err {e:.2e}, against the two launches {e_ab:.2e}");
}

fn neox(n_rot: usize) -> Option<Rope> {
    Some(Rope {
        style: RopeStyle::Neox,
        n_rot,
        base: 10000.0,
    })
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn decode_append_matches_two_launches() {
    for kernel in DECODE_KERNELS {
        for (i, rope) in ROPES.iter().enumerate() {
            let seed = 8000 + 10 * i as u64;
            decode_append_case::<bf16>(
                &[1, 17, 300, 1000, 4097],
                1,
                128,
                2,
                4,
                16,
                *rope,
                kernel,
                seed,
            );
            decode_append_case::<f16>(
                &[3, 64, 65, 2000],
                3,
                128,
                2,
                8,
                64,
                *rope,
                kernel,
                seed + 1,
            );
        }
        // Gemma-like MQA hd256; one long sequence with many splits
        decode_append_case::<bf16>(&[5, 700, 33], 1, 256, 1, 4, 16, neox(256), kernel, 8100);
        decode_append_case::<bf16>(&[32768], 1, 128, 8, 4, 16, ROPES[2], kernel, 8140);
    }
    check_fails();
}

/// Short cases of the same (for compute-sanitizer and the emulated AMD targets): SmolLM2-like hd64 GQA
/// 3 with two tokens a sequence; partial rotary, n_rot / 2 not a multiple of 8 (the element-by-element
/// partner loads) and a multiple of 8; normal RoPE at hd256.
#[test]
#[ignore = "needs a GPU"]
#[serial]
fn decode_append_small_cases() {
    for kernel in DECODE_KERNELS {
        decode_append_case::<bf16>(&[2, 50, 129], 2, 64, 3, 3, 16, neox(64), kernel, 8110);
        decode_append_case::<f16>(&[40, 1], 1, 64, 2, 4, 16, neox(24), kernel, 8120);
        decode_append_case::<bf16>(&[9, 31], 1, 80, 2, 7, 16, neox(32), kernel, 8130);
        decode_append_case::<f16>(&[1, 20, 90], 1, 128, 2, 4, 16, ROPES[1], kernel, 8150);
        decode_append_case::<bf16>(&[17, 3], 1, 256, 1, 4, 16, ROPES[0], kernel, 8160);
    }
    check_fails();
}

fn softmax_case<T: Element>(
    rows: usize,
    cols: usize,
    q_len: usize,
    mask: &str,
    sm: bool,
    seed: u64,
) {
    let dev = device();
    let s = dev.default_stream();
    let x: Vec<T> = rand_f32(rows * cols, seed)
        .into_iter()
        .map(|v| T::from_f32(v * 4.0))
        .collect();
    let add: Vec<f32> = rand_f32(q_len * cols, seed + 1)
        .into_iter()
        .map(|v| if v > 0.8 { f32::NEG_INFINITY } else { v })
        .collect();
    let dm = dev.upload(&add).unwrap();
    let dx = dev.upload(&x).unwrap();
    let mut dy = dev.alloc::<T>(x.len()).unwrap();
    dy.fill_bytes(0xff).unwrap();
    let m = match mask {
        "causal" => softmax::Mask::Causal,
        "additive" => softmax::Mask::Additive(&dm),
        _ => softmax::Mask::None,
    };
    softmax::softmax(&dev, &s, &dx, &mut dy, cols, q_len, 0.7, &m, sm).unwrap();
    let want = softmax::softmax_ref(
        &x,
        cols,
        q_len,
        0.7,
        mask == "causal",
        (mask == "additive").then_some(&add[..]),
        sm,
    );
    let got = dy.to_vec().unwrap();
    let (g, w): (Vec<f32>, Vec<f32>) = got
        .iter()
        .zip(&want)
        .filter(|(_, w)| w.to_f32().is_finite())
        .map(|(g, w)| (g.to_f32(), w.to_f32()))
        .unzip();
    let nonfinite_ok = got
        .iter()
        .zip(&want)
        .all(|(g, w)| w.to_f32().is_finite() || g.to_f32() == w.to_f32());
    let e = rel_err(&g, &w);
    assert!(
        nonfinite_ok && e < tol(T::DTYPE),
        "softmax {} {rows}x{cols} {mask} sm={sm}: {e}",
        T::DTYPE
    );
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn softmax_matches_reference() {
    for (i, &cols) in [1usize, 17, 1000, 4097].iter().enumerate() {
        for mask in ["none", "causal", "additive"] {
            for sm in [true, false] {
                let ql = cols.min(3);
                softmax_case::<f32>(6, cols, ql, mask, sm, i as u64);
                softmax_case::<bf16>(3 * ql, cols, ql, mask, sm, 10 + i as u64);
                softmax_case::<f16>(ql, cols, ql, mask, sm, 20 + i as u64);
            }
        }
    }
}
