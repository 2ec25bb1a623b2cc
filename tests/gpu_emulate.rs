//! The matrix-core instructions and cross-lane primitives on the device, lane by lane, against AMD's
//! layout tables (tests/data/amd_layouts) and CPU references (issue 13). Run on an NVIDIA GPU with
//! `ROCMFORGE_EMULATE=gfx942` (gfx90a, gfx950, gfx1100, gfx1200) they check the emulation; run on an
//! AMD GPU they check the tables against the hardware. Without matrix cores on the device's target
//! (plain NVIDIA) the mma test has nothing to check and says so.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rocmforge::gpu::MatrixCores;
use rocmforge::jit::emulate;
use rocmforge::ops::mma_check;
use serde_json::Value;
use serial_test::serial;

fn table(file: &str) -> Value {
    // relative path: the GPU machine runs the test binaries from the repository root
    let p = std::path::Path::new("tests/data/amd_layouts").join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn slots(t: &Value, m: &str) -> Vec<[usize; 7]> {
    t["matrices"][m]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let v: Vec<usize> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            v.try_into().unwrap()
        })
        .collect()
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn matrix_instructions_follow_the_layout_tables() {
    let dev = device();
    let t = dev.target().clone();
    if !matches!(t.matrix_cores(), MatrixCores::Mfma | MatrixCores::Wmma) {
        eprintln!(
            "{t}: no AMD matrix cores (run with ROCMFORGE_EMULATE=gfx942 etc. on NVIDIA): nothing to check"
        );
        return;
    }
    let before = dev.allocated_bytes();
    let s = dev.default_stream();
    let layouts = emulate::layouts(&t.arch).unwrap();
    assert!(layouts.len() >= 2, "{t}: no layout tables");
    for (li, l) in layouts.iter().enumerate() {
        let tab = table(&l.file);
        // 8 waves (2 blocks of 4), each its own matrices: small integers (exact in f16 and bf16,
        // and every sum exact in f32), and on wave 0 one-hot A and B, so a misplaced lane or element
        // shows as the exact wrong element.
        let waves = 8;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7 + li as u64);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let mut want = Vec::new();
        for w in 0..waves {
            let mut am = vec![vec![0f32; l.k]; l.m];
            let mut bm = vec![vec![0f32; l.n]; l.k];
            let mut cm = vec![vec![0f32; l.n]; l.m];
            if w == 0 {
                for i in 0..l.m.min(l.k) {
                    am[i][(i * 5 + 3) % l.k] = 1.0 + i as f32;
                }
                for i in 0..l.k.min(l.n) {
                    bm[i][(i * 7 + 1) % l.n] = 1.0;
                }
            } else {
                am.iter_mut()
                    .chain(bm.iter_mut())
                    .flatten()
                    .for_each(|x| *x = rng.gen_range(-8i32..8) as f32);
            }
            cm.iter_mut()
                .flatten()
                .for_each(|x| *x = rng.gen_range(-64i32..64) as f32);
            let place = |m: &str, vlen: usize, val: &dyn Fn(usize, usize) -> f32| {
                let mut lanes = vec![vec![0f32; vlen]; l.wave];
                for s in slots(&tab, m) {
                    lanes[s[0]][s[1]] = val(s[4], s[5]);
                }
                lanes
            };
            a.extend(place("A", l.va, &|r, k| am[r][k]));
            b.extend(place("B", l.vb, &|k, n| bm[k][n]));
            c.extend(place("C", l.vc, &|r, n| cm[r][n]));
            want.push((am, bm, cm));
        }
        let d = mma_check::run_mma(&dev, &s, l, &a, &b, &c).unwrap();
        let mut bad = Vec::new();
        for (w, (am, bm, cm)) in want.iter().enumerate() {
            for sl in slots(&tab, "D") {
                let (lane, e, row, col) = (sl[0], sl[1], sl[4], sl[5]);
                let exp: f32 =
                    (0..l.k).map(|k| am[row][k] * bm[k][col]).sum::<f32>() + cm[row][col];
                let got = d[w * l.wave + lane][e];
                if got != exp {
                    bad.push(format!(
                        "wave {w} lane {lane} elem {e} (D[{row}][{col}]): {got}, want {exp}"
                    ));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "{t} {} ({}): {} wrong of {}:\n{}",
            l.builtin,
            l.instruction,
            bad.len(),
            waves * l.wave * l.vc,
            bad[..bad.len().min(12)].join("\n")
        );
        eprintln!(
            "{t} {}: {} lanes x {} waves match {}",
            l.builtin, l.wave, waves, l.file
        );
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.allocated_bytes(), before, "device memory not returned");
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn shuffles_and_wave_reductions_per_lane() {
    let dev = device();
    let t = dev.target().clone();
    let s = dev.default_stream();
    let w = t.wave_size as usize;
    let block = mma_check::block_of("lanes", t.wave_size) as usize;
    let n = 3 * block;
    let mut rng = rand::rngs::StdRng::seed_from_u64(64);
    let x: Vec<f32> = (0..n)
        .map(|_| rng.gen_range(-1000i32..1000) as f32)
        .collect();
    let out = mma_check::run_lanes(&dev, &s, &x).unwrap();
    let mut bad = Vec::new();
    for i in 0..n {
        let (lane, wave_in_block) = ((i % block) % w, (i % block) / w);
        let base = i - lane;
        let m = 1 + wave_in_block % (w - 1);
        let xor_src = if (lane ^ m) < w { lane ^ m } else { lane };
        let wave = &x[base..base + w];
        let want = [
            x[base + xor_src],
            x[base + (lane * 7 + 3) % w],
            wave.iter().sum::<f32>(),
            wave.iter().cloned().fold(f32::MIN, f32::max),
        ];
        for (j, wv) in want.iter().enumerate() {
            if out[i * 4 + j] != *wv {
                bad.push(format!(
                    "thread {i} (wave {wave_in_block}, lane {lane}) result {j}: {}, want {wv}",
                    out[i * 4 + j]
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{t}: {} wrong:\n{}",
        bad.len(),
        bad[..bad.len().min(12)].join("\n")
    );
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn integer_dot_products_have_the_isa_semantics() {
    let dev = device();
    let t = dev.target().clone();
    if !t.is_emulated() {
        eprintln!("{t}: the dot4 check runs on emulated targets only");
        return;
    }
    let s = dev.default_stream();
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut a: Vec<i32> = (0..4096).map(|_| rng.gen()).collect();
    let mut b: Vec<i32> = (0..4096).map(|_| rng.gen()).collect();
    let mut c: Vec<i32> = (0..4096).map(|_| rng.gen()).collect();
    // saturation cases: extreme bytes and accumulators at both ends of the range
    for (i, (x, y, z)) in [
        (0x80808080u32 as i32, 0x80808080u32 as i32, i32::MAX),
        (0x7f7f7f7f, 0x80808080u32 as i32, i32::MIN),
        (-1, -1, -2),
        (0x7f7f7f7f, 0x7f7f7f7f, i32::MAX - 3),
    ]
    .into_iter()
    .enumerate()
    {
        (a[i], b[i], c[i]) = (x, y, z);
    }
    let out = mma_check::run_dot4(&dev, &s, &a, &b, &c).unwrap();
    for i in 0..a.len() {
        let want = mma_check::dot4_reference(a[i], b[i], c[i]);
        assert_eq!(
            &out[i * 4..i * 4 + 4],
            &want,
            "{t}: a {:#x} b {:#x} c {}",
            a[i],
            b[i],
            c[i]
        );
    }
}
