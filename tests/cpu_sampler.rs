//! The CPU sampler: greedy, top-k, temperature, top-p, min-p, penalties, seeds, logprobs, stop strings
//! and parameter validation, on crafted and seeded random logits.

mod common;

use common::rand_f32;
use rand::{Rng, SeedableRng};
use rocmforge::model::sampler::{logprobs, Sampler, SamplingParams, StopMatcher};
use rocmforge::ops::sampling::argmax_ref;

/// Lowest index of the largest value (NaN below everything), written independently of the crate.
fn argmax(v: &[f32]) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if x.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if x <= b => {}
            _ => best = Some((i, x)),
        }
    }
    best.map(|b| b.0 as u32).unwrap_or(0)
}

fn params(temperature: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p,
        seed: Some(7),
        ..SamplingParams::default()
    }
}

/// Random logits with planted ties at the maximum (and some NaNs when `nan`).
fn tied_logits(n: usize, seed: u64, nan: bool) -> Vec<f32> {
    let mut v: Vec<f32> = rand_f32(n, seed).iter().map(|x| x * 8.0).collect();
    let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let top = v.iter().cloned().fold(f32::MIN, f32::max) + 1.0;
    for _ in 0..3 {
        let i = r.gen_range(0..n);
        v[i] = top;
    }
    if nan {
        for _ in 0..5 {
            let i = r.gen_range(0..n);
            v[i] = f32::NAN;
        }
    }
    v
}

fn ln_probs(p: &[f64]) -> Vec<f32> {
    p.iter().map(|x| x.ln() as f32).collect()
}

#[test]
fn greedy_is_argmax() {
    let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
    assert!(s.params().is_greedy());
    for (k, &n) in [1usize, 2, 17, 1000, 32000].iter().enumerate() {
        for seed in 0..8u64 {
            let logits = tied_logits(n.max(4), 100 * k as u64 + seed, seed % 2 == 1);
            let want = argmax(&logits);
            assert_eq!(
                argmax_ref(&logits, 1, logits.len())[0] as u32,
                want,
                "device reference disagrees"
            );
            let mut l = logits.clone();
            assert_eq!(s.sample(&mut l, &[]), want, "n={n} seed={seed}");
        }
    }
    // crafted: ties to the lowest index, NaN below −∞, −0 equal to +0
    let nan = f32::NAN;
    let cases: [(&[f32], u32); 5] = [
        (&[1.0, 3.0, 3.0, 2.0], 1),
        (&[nan, nan, nan], 0),
        (&[nan, f32::NEG_INFINITY, nan], 1),
        (&[-0.0, 0.0, -1.0], 0),
        (&[-5.0, nan, f32::INFINITY, f32::INFINITY], 2),
    ];
    for (row, want) in cases {
        let mut l = row.to_vec();
        assert_eq!(s.sample(&mut l, &[]), want, "{row:?}");
    }
    assert_eq!(s.sample(&mut [], &[]), 0);
}

#[test]
fn top_k_one_is_greedy_at_any_temperature() {
    for &t in &[0.05f32, 0.7, 1.0, 3.0, 100.0] {
        let mut s = Sampler::new(params(t, 1, 0.9, 0.1)).unwrap();
        assert!(s.params().is_greedy());
        for seed in 0..10u64 {
            let logits = tied_logits(500, seed, seed % 3 == 0);
            let mut l = logits.clone();
            assert_eq!(s.sample(&mut l, &[]), argmax(&logits), "t={t} seed={seed}");
        }
    }
}

fn stream(seed: Option<u64>, steps: usize) -> Vec<u32> {
    let p = SamplingParams {
        seed,
        temperature: 1.0,
        repetition_penalty: 1.1,
        ..SamplingParams::default()
    };
    let mut s = Sampler::new(p).unwrap();
    let mut hist: Vec<u32> = vec![1, 2, 3];
    for step in 0..steps {
        // flat-ish logits so the draw, not the argmax, decides
        let mut l: Vec<f32> = rand_f32(256, 1000 + step as u64)
            .iter()
            .map(|x| x * 0.5)
            .collect();
        let t = s.sample(&mut l, &hist);
        assert!((t as usize) < 256);
        hist.push(t);
    }
    hist
}

#[test]
fn same_seed_same_stream() {
    let a = stream(Some(42), 200);
    assert_eq!(a, stream(Some(42), 200));
    assert_ne!(a, stream(Some(43), 200));
    // seeded from the OS: two samplers practically never agree on 200 draws
    assert_ne!(stream(None, 200), stream(None, 200));
}

#[test]
fn temperature_frequencies_match_softmax() {
    let logits = [1.0f32, 0.5, 0.0, -0.5, 2.0, 1.5, -1.0, 0.25];
    let t = 0.7f64;
    let w: Vec<f64> = logits.iter().map(|&l| (l as f64 / t).exp()).collect();
    let z: f64 = w.iter().sum();
    let p: Vec<f64> = w.iter().map(|x| x / z).collect();
    let mut s = Sampler::new(params(0.7, 0, 1.0, 0.0)).unwrap();
    let dist = s.distribution(&mut logits.to_vec(), &[]);
    assert_eq!(dist.len(), logits.len());
    for (tok, q) in &dist {
        assert!((*q as f64 - p[*tok as usize]).abs() < 1e-6, "{tok}: {q}");
    }
    let n = 40_000usize;
    let mut counts = [0usize; 8];
    for _ in 0..n {
        counts[s.sample(&mut logits.to_vec(), &[]) as usize] += 1;
    }
    let chi2: f64 = counts
        .iter()
        .zip(&p)
        .map(|(&c, &q)| {
            let e = q * n as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum();
    // 7 degrees of freedom: P(χ² > 24.3) = 0.001
    assert!(chi2 < 24.3, "chi-square {chi2}, counts {counts:?}");
    // and a sampler that ignored the temperature would fail the same bound
    let w1: Vec<f64> = logits.iter().map(|&l| (l as f64).exp()).collect();
    let z1: f64 = w1.iter().sum();
    let chi2_t1: f64 = counts
        .iter()
        .zip(&w1)
        .map(|(&c, &q)| {
            let e = q / z1 * n as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum();
    assert!(
        chi2_t1 > 100.0,
        "temperature had no visible effect: {chi2_t1}"
    );
}

fn kept(p: SamplingParams, logits: &[f32]) -> Vec<u32> {
    let mut s = Sampler::new(p).unwrap();
    let mut v: Vec<u32> = s
        .distribution(&mut logits.to_vec(), &[])
        .iter()
        .map(|d| d.0)
        .collect();
    v.sort_unstable();
    v
}

fn draws_within(p: SamplingParams, logits: &[f32], allowed: &[u32]) {
    let mut s = Sampler::new(p).unwrap();
    let mut seen = vec![false; logits.len()];
    for _ in 0..4000 {
        let t = s.sample(&mut logits.to_vec(), &[]);
        assert!(allowed.contains(&t), "drew {t}, kept set {allowed:?}");
        seen[t as usize] = true;
    }
    for &a in allowed {
        assert!(seen[a as usize], "{a} of {allowed:?} never drawn");
    }
}

#[test]
fn top_k_keeps_the_k_largest() {
    let logits = [0.5f32, 3.0, 1.0, 3.0, -2.0, 2.0];
    assert_eq!(kept(params(1.0, 3, 1.0, 0.0), &logits), vec![1, 3, 5]);
    // a tie at the cut goes to the lower index
    assert_eq!(kept(params(1.0, 1, 1.0, 0.0), &logits), vec![1]);
    assert_eq!(kept(params(1.0, 4, 1.0, 0.0), &logits), vec![1, 2, 3, 5]);
    assert_eq!(kept(params(1.0, 100, 1.0, 0.0), &logits).len(), 6);
    draws_within(params(1.0, 3, 1.0, 0.0), &logits, &[1, 3, 5]);
}

#[test]
fn top_p_keeps_the_smallest_sufficient_set() {
    let logits = ln_probs(&[0.1, 0.4, 0.2, 0.3]);
    // sorted: 1 (0.4), 3 (0.3), 2 (0.2), 0 (0.1); cumulative 0.4, 0.7, 0.9, 1.0
    assert_eq!(kept(params(1.0, 0, 0.3, 0.0), &logits), vec![1]);
    assert_eq!(kept(params(1.0, 0, 0.65, 0.0), &logits), vec![1, 3]);
    assert_eq!(kept(params(1.0, 0, 0.8, 0.0), &logits), vec![1, 2, 3]);
    assert_eq!(kept(params(1.0, 0, 0.95, 0.0), &logits), vec![0, 1, 2, 3]);
    // temperature comes first: at t = 0.5 the probabilities are ∝ p², 0.16/0.3 = 0.53 ≥ 0.5
    assert_eq!(kept(params(0.5, 0, 0.5, 0.0), &logits), vec![1]);
    draws_within(params(1.0, 0, 0.65, 0.0), &logits, &[1, 3]);
    // renormalised over the kept set
    let mut s = Sampler::new(params(1.0, 0, 0.65, 0.0)).unwrap();
    let d = s.distribution(&mut logits.clone(), &[]);
    assert_eq!(d[0].0, 1);
    assert!(
        (d[0].1 - 4.0 / 7.0).abs() < 1e-5 && (d[1].1 - 3.0 / 7.0).abs() < 1e-5,
        "{d:?}"
    );
}

#[test]
fn min_p_keeps_tokens_near_the_top() {
    let logits = ln_probs(&[0.1, 0.5, 0.15, 0.25]);
    // relative to the top (0.5): 0.2, 1, 0.3, 0.5
    assert_eq!(kept(params(1.0, 0, 1.0, 0.25), &logits), vec![1, 2, 3]);
    assert_eq!(kept(params(1.0, 0, 1.0, 0.4), &logits), vec![1, 3]);
    assert_eq!(kept(params(1.0, 0, 1.0, 0.6), &logits), vec![1]);
    assert_eq!(kept(params(1.0, 0, 1.0, 0.1), &logits), vec![0, 1, 2, 3]);
    draws_within(params(1.0, 0, 1.0, 0.4), &logits, &[1, 3]);
    // after top-k 2 ({1, 3}), min-p 0.6 keeps only 1
    assert_eq!(kept(params(1.0, 2, 1.0, 0.6), &logits), vec![1]);
}

#[test]
fn filters_never_pick_outside_on_random_rows() {
    for seed in 0..20u64 {
        let logits: Vec<f32> = rand_f32(2000, 500 + seed).iter().map(|x| x * 6.0).collect();
        let p = SamplingParams {
            seed: Some(seed),
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(p.clone()).unwrap();
        let d = s.distribution(&mut logits.clone(), &[]);
        assert!(!d.is_empty() && d.len() <= 40);
        let sum: f32 = d.iter().map(|x| x.1).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        let top = d.iter().map(|x| x.1).fold(0.0f32, f32::max);
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        let top40 = &order[..40];
        for &(t, q) in &d {
            assert!(top40.contains(&t), "{t} outside top-k");
            assert!(q >= 0.05 * top * 0.9999, "{t} below min-p");
        }
        let set: Vec<u32> = d.iter().map(|x| x.0).collect();
        for _ in 0..200 {
            let t = s.sample(&mut logits.clone(), &[]);
            assert!(set.contains(&t), "drew {t} outside the kept set");
        }
    }
}

#[test]
fn penalties_follow_the_formulas() {
    let p = SamplingParams {
        repetition_penalty: 2.0,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        penalty_last_n: 5,
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(p.clone()).unwrap();
    // window = last 5 = [0, 1, 2, 2, 2] (+ an id outside the row, ignored): counts 0:1, 1:1, 2:3
    let hist = [0u32, 0, 1, 2, 2, 2];
    let mut l = vec![2.0f32, -2.0, 1.0, 0.5];
    let t = s.sample(&mut l, &hist);
    let want = [
        2.0 / 2.0 - (0.25 + 0.5),
        -2.0 * 2.0 - (0.25 + 0.5),
        1.0 / 2.0 - (3.0 * 0.25 + 0.5),
        0.5,
    ];
    for (g, w) in l.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{l:?} vs {want:?}");
    }
    assert_eq!(t, 3, "greedy picks after penalties");
    // ids beyond the row are ignored
    let mut l2 = vec![2.0f32, -2.0, 1.0, 0.5];
    s.sample(&mut l2, &[1, 2, 2, 2, 99]);
    assert!((l2[0] - 2.0).abs() < 1e-6);
    // penalty_last_n 0 turns them off; penalties at 1/0/0 leave logits alone
    for q in [
        SamplingParams {
            penalty_last_n: 0,
            ..p.clone()
        },
        SamplingParams::greedy(),
    ] {
        let mut s = Sampler::new(q).unwrap();
        let mut l = vec![2.0f32, -2.0, 1.0, 0.5];
        assert_eq!(s.sample(&mut l, &hist), 0);
        assert_eq!(l, vec![2.0, -2.0, 1.0, 0.5]);
    }
    // negative presence/frequency encourage repeats
    let mut s = Sampler::new(SamplingParams {
        presence_penalty: -1.0,
        frequency_penalty: -0.5,
        ..SamplingParams::greedy()
    })
    .unwrap();
    let mut l = vec![1.0f32, 0.0];
    assert_eq!(s.sample(&mut l, &[1, 1]), 1);
    assert!((l[1] - 2.0).abs() < 1e-6);
}

#[test]
fn logprobs_are_log_softmax_of_raw_logits() {
    let logits = [
        0.0f32,
        2.0f32.ln(),
        1.0f32.ln() - 0.0,
        f32::NAN,
        f32::NEG_INFINITY,
    ];
    // weights 1, 2, 1, 0, 0 → probs 1/4, 1/2, 1/4
    let (c, top) = logprobs(&logits, 1, 3);
    assert!((c - 0.5f32.ln()).abs() < 1e-6);
    assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 0, 2]);
    assert!((top[1].1 - 0.25f32.ln()).abs() < 1e-6 && (top[2].1 - 0.25f32.ln()).abs() < 1e-6);
    let (c, top) = logprobs(&logits, 3, 10);
    assert_eq!(c, f32::NEG_INFINITY);
    assert_eq!(top.len(), 5);
    assert_eq!(top[3].1, f32::NEG_INFINITY);
    assert_eq!(logprobs(&logits, 99, 0), (f32::NEG_INFINITY, vec![]));
    // large logits: no overflow; probabilities sum to 1
    let big: Vec<f32> = rand_f32(1000, 9)
        .iter()
        .map(|x| 1000.0 + 50.0 * x)
        .collect();
    let (_, all) = logprobs(&big, 0, 1000);
    let s: f64 = all.iter().map(|t| (t.1 as f64).exp()).sum();
    assert!((s - 1.0).abs() < 1e-4, "{s}");
    assert!(all.windows(2).all(|w| w[0].1 >= w[1].1));
    assert_eq!(all[0].0, argmax(&big));
}

fn run_stream(m: &mut StopMatcher, chunks: &[&str]) -> (String, bool) {
    let mut out = String::new();
    for c in chunks {
        let (t, stop) = m.push(c);
        out.push_str(&t);
        if stop {
            return (out, true);
        }
    }
    out.push_str(&m.flush());
    (out, false)
}

#[test]
fn stop_matcher_holds_back_across_chunks() {
    let stops = vec!["</s>".to_string()];
    let mut m = StopMatcher::new(&stops);
    assert_eq!(m.push("Hello wor"), ("Hello wor".to_string(), false));
    assert_eq!(m.push("ld</"), ("ld".to_string(), false));
    assert_eq!(m.push("s"), (String::new(), false));
    assert_eq!(m.push(">tail"), (String::new(), true));
    assert!(m.stopped());
    assert_eq!(m.push("more"), (String::new(), true));
    assert_eq!(m.flush(), "");

    // a held prefix that turns out not to be a stop is released
    let mut m = StopMatcher::new(&stops);
    assert_eq!(m.push("a</"), ("a".to_string(), false));
    assert_eq!(m.push("b"), ("</b".to_string(), false));
    assert_eq!(m.push("<"), (String::new(), false));
    assert_eq!(m.flush(), "<");
}

#[test]
fn stop_matcher_multiple_stops_earliest_wins() {
    let stops = vec!["STOP".to_string(), "\n\n".to_string(), "END".to_string()];
    let mut m = StopMatcher::new(&stops);
    assert_eq!(
        run_stream(&mut m, &["one EN", "D\n\ntwo STOP"]),
        ("one ".to_string(), true)
    );
    let mut m = StopMatcher::new(&stops);
    assert_eq!(
        run_stream(&mut m, &["x\n", "\nEND"]),
        ("x".to_string(), true)
    );
    // overlapping stops: "ab" and "bc" in "abc" → the one starting first
    let mut m = StopMatcher::new(&["bc".to_string(), "ab".to_string()]);
    assert_eq!(run_stream(&mut m, &["zab", "c"]), ("z".to_string(), true));
    // no stops: everything passes at once
    let mut m = StopMatcher::new(&[]);
    assert_eq!(m.push("abc"), ("abc".to_string(), false));
}

#[test]
fn stop_matcher_is_utf8_safe() {
    let stops = vec!["é!".to_string(), "日本".to_string()];
    let mut m = StopMatcher::new(&stops);
    assert_eq!(m.push("café"), ("caf".to_string(), false));
    assert_eq!(m.push("!"), (String::new(), true));
    // è shares é's first byte but is not a prefix of it
    let mut m = StopMatcher::new(&stops);
    assert_eq!(m.push("xè"), ("xè".to_string(), false));
    assert_eq!(m.push("日"), (String::new(), false));
    assert_eq!(m.push("曜日本"), ("日曜".to_string(), true));
}

#[test]
fn stop_matcher_random_chunking_equals_whole_text() {
    let stops = vec![
        "<|im_end|>".to_string(),
        "ß\n".to_string(),
        "aa".to_string(),
    ];
    let alphabet: Vec<char> = "ab<|im_end>ß\n ".chars().collect();
    let mut r = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..500 {
        let len = r.gen_range(0..40);
        let text: String = (0..len)
            .map(|_| alphabet[r.gen_range(0..alphabet.len())])
            .collect();
        let first = stops.iter().filter_map(|s| text.find(s.as_str())).min();
        let want = (
            first.map(|p| text[..p].to_string()).unwrap_or(text.clone()),
            first.is_some(),
        );
        // split at random character boundaries
        let bounds: Vec<usize> = text.char_indices().map(|c| c.0).collect();
        let mut cuts: Vec<usize> = bounds.iter().copied().filter(|_| r.gen_bool(0.3)).collect();
        cuts.push(text.len());
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&text[at..c]);
            at = c;
        }
        let mut m = StopMatcher::new(&stops);
        assert_eq!(run_stream(&mut m, &chunks), want, "{text:?} in {chunks:?}");
    }
}

#[test]
fn validate_rejects_meaningless_values() {
    assert!(SamplingParams::default().validate().is_ok());
    assert!(SamplingParams::greedy().validate().is_ok());
    assert!(!SamplingParams::default().is_greedy());
    let d = SamplingParams::default();
    assert_eq!(
        (d.temperature, d.top_k, d.top_p, d.min_p),
        (0.8, 40, 0.95, 0.05)
    );
    assert_eq!((d.repetition_penalty, d.penalty_last_n), (1.0, 64));
    let bad = [
        SamplingParams {
            temperature: -0.1,
            ..d.clone()
        },
        SamplingParams {
            temperature: f32::NAN,
            ..d.clone()
        },
        SamplingParams {
            temperature: f32::INFINITY,
            ..d.clone()
        },
        SamplingParams {
            top_p: 0.0,
            ..d.clone()
        },
        SamplingParams {
            top_p: 1.5,
            ..d.clone()
        },
        SamplingParams {
            top_p: f32::NAN,
            ..d.clone()
        },
        SamplingParams {
            min_p: -0.1,
            ..d.clone()
        },
        SamplingParams {
            min_p: 1.5,
            ..d.clone()
        },
        SamplingParams {
            min_p: f32::NAN,
            ..d.clone()
        },
        SamplingParams {
            repetition_penalty: 0.0,
            ..d.clone()
        },
        SamplingParams {
            repetition_penalty: f32::NAN,
            ..d.clone()
        },
        SamplingParams {
            presence_penalty: f32::NAN,
            ..d.clone()
        },
        SamplingParams {
            frequency_penalty: f32::INFINITY,
            ..d.clone()
        },
        SamplingParams {
            stop: vec!["ok".into(), String::new()],
            ..d.clone()
        },
    ];
    for p in bad {
        let e = p.validate();
        assert!(e.is_err(), "{p:?} accepted");
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("invalid") || msg.contains("empty"), "{msg}");
        assert!(Sampler::new(p).is_err());
    }
}

#[test]
fn params_json_fills_defaults() {
    let p: SamplingParams =
        serde_json::from_str(r#"{"temperature": 0, "seed": 5, "stop": ["\n"]}"#).unwrap();
    assert!(p.is_greedy());
    assert_eq!(p.seed, Some(5));
    assert_eq!(p.top_k, 40);
    let back: SamplingParams = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}
