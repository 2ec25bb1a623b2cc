//! The scheduler alone, many sequences through a tiny KV cache, on a fake backend that reads its
//! "KV" (the token ids) through the block tables: any mistake in pages, positions, preemption or
//! prefix reuse changes the tokens.

use super::{metric, model_path, wait_for};
use rocmforge::model::sampler::SamplingParams;
use std::time::Instant;

mod fake {
    use rocmforge::error::Result;
    use rocmforge::model::batch::ForwardBatch;
    use rocmforge::model::{Backend, MemoryReport, StepResult};

    pub const BASE: u32 = 1000;
    pub const SPAN: u64 = 500;

    /// The next token after `history` (what the fake model computes).
    pub fn next(history: &[u32]) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &t in history {
            h ^= t as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        BASE + (h % SPAN) as u32
    }

    pub struct Fake {
        pub vocab: usize,
        pub page_size: usize,
        pub slots: Vec<u32>,
    }

    impl Backend for Fake {
        fn name(&self) -> String {
            "fake".into()
        }
        fn memory(&self) -> MemoryReport {
            MemoryReport::default()
        }
        fn forward(&mut self, b: &ForwardBatch, want_logits: bool) -> Result<StepResult> {
            b.validate(
                self.vocab,
                self.page_size,
                self.slots.len() / self.page_size,
            )?;
            let pos = b.positions();
            let seq = b.seq_of_token();
            let slot = |s: usize, p: usize| {
                b.block_tables[s * b.max_pages + p / self.page_size] as usize * self.page_size
                    + p % self.page_size
            };
            for (i, &t) in b.tokens.iter().enumerate() {
                let at = slot(seq[i], pos[i] as usize);
                self.slots[at] = t;
            }
            let mut argmax = Vec::new();
            let mut logits = Vec::new();
            for &r in &b.out_rows {
                let hist: Vec<u32> = (0..=pos[r] as usize)
                    .map(|p| self.slots[slot(seq[r], p)])
                    .collect();
                let t = next(&hist);
                argmax.push(t);
                if want_logits {
                    let mut row = vec![0f32; self.vocab];
                    row[t as usize] = 30.0;
                    logits.extend(row);
                }
            }
            Ok(StepResult { logits, argmax })
        }
    }
}

#[test]
fn scheduler_keeps_every_sequence_exact_under_preemption_prefix_reuse_and_cancellation() {
    use rand::{Rng, SeedableRng};
    use rocmforge::gguf::GgufFile;
    use rocmforge::model::config::ModelConfig;
    use rocmforge::model::engine::{Engine, EngineLimits};
    use rocmforge::model::tokenizer::Tokenizer;
    use rocmforge::server::metrics::Metrics;
    use rocmforge::server::scheduler::{self, Event, Request};
    use std::sync::Arc;

    let g = GgufFile::open(model_path()).unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    let tok = Arc::new(Tokenizer::from_gguf(&g).unwrap());
    let limits = EngineLimits {
        ctx_size: 96,
        page_size: 4,
        num_pages: 24,
        max_batch_tokens: 16,
        max_seqs: 8,
    };
    let backend = fake::Fake {
        vocab: cfg.vocab_size,
        page_size: limits.page_size,
        slots: vec![0; limits.num_pages * limits.page_size],
    };
    let engine = Engine::new(cfg, limits, Box::new(backend)).unwrap();
    let metrics = Arc::new(Metrics::new(0, 0));
    let (sched, join) = scheduler::spawn(engine, tok, metrics.clone()).unwrap();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let shared: Vec<u32> = (0..12).map(|i| 2000 + i).collect();
    let mut jobs = Vec::new();
    for i in 0..40 {
        let mut prompt: Vec<u32> = if i % 3 == 0 {
            shared.clone()
        } else {
            Vec::new()
        };
        let extra = rng.gen_range(1..30);
        prompt.extend((0..extra).map(|_| rng.gen_range(3000..4000u32)));
        let max_tokens = rng.gen_range(1..40);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let params = SamplingParams {
            max_tokens,
            // every fourth one samples (from a one-hot row: the same token), so steps mix host
            // logits and device argmax
            temperature: if i % 4 == 1 { 0.7 } else { 0.0 },
            seed: Some(i as u64),
            ..SamplingParams::greedy()
        };
        assert!(sched.submit(Request {
            prompt: prompt.clone(),
            params,
            logprobs: (i % 5 == 2).then_some(2),
            ignore_eos: false,
            events: tx,
            arrived: Instant::now(),
        }));
        jobs.push((prompt, max_tokens, Some(rx)));
    }
    // a few clients go away at once (their sequences are queued or running)
    let cancel = [3usize, 17, 29];
    for &i in &cancel {
        jobs[i].2 = None;
    }
    let mut done = 0;
    for (i, (prompt, max_tokens, rx)) in jobs.into_iter().enumerate() {
        let Some(mut rx) = rx else { continue };
        let mut hist = prompt.clone();
        let mut want = Vec::new();
        for _ in 0..max_tokens {
            let t = fake::next(&hist);
            want.push(t);
            hist.push(t);
        }
        let mut got = Vec::new();
        loop {
            match rx.blocking_recv() {
                Some(Event::Delta { token: Some(t), .. }) => {
                    if i % 5 == 2 {
                        let lp = t.logprobs.as_ref().expect("logprobs asked for");
                        assert_eq!(lp.top.len(), 2);
                        assert!(
                            lp.logprob > -1e-3,
                            "one-hot row: the chosen token has probability ~1"
                        );
                    }
                    got.push(t.id);
                }
                Some(Event::Delta { token: None, .. }) => {}
                Some(Event::Done(f)) => {
                    assert_eq!(f.completion_tokens, max_tokens, "job {i}");
                    assert_eq!(f.prompt_tokens, prompt.len());
                    done += 1;
                    break;
                }
                Some(Event::Error { message, .. }) => panic!("job {i}: {message}"),
                None => panic!("job {i}: channel closed"),
            }
        }
        assert_eq!(got, want, "job {i}: tokens differ from the model run alone");
    }
    assert_eq!(done, 40 - cancel.len());
    wait_for("the scheduler to go idle", 10, || {
        let g = metrics.gauges();
        g.running == 0 && g.waiting == 0 && g.kv.pages_used == 0
    });
    let m = metrics.render();
    assert!(
        metric(&m, "rocmforge_preemptions_total") > 0.0,
        "no preemption:\n{m}"
    );
    assert!(
        metric(&m, "rocmforge_prefix_cache_tokens_reused_total") >= 12.0,
        "no prefix reuse:\n{m}"
    );
    assert_eq!(metric(&m, "rocmforge_cancelled_total"), cancel.len() as f64);
    sched.shutdown();
    join.join().unwrap();
}
