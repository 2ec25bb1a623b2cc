//! The model runtime as a library: load a GGUF model, run two prompts as one batch on the paged KV
//! cache (ragged prefill, then batched decode steps), sample each with its own sampler, free the
//! sequences.
//!
//!     cargo run --release --example generate -- .model/smollm2-135m-instruct-q4_1.gguf [cpu|cuda|auto]

use rocmforge::model::engine::{StepInput, Want};
use rocmforge::model::sampler::{Sampler, SamplingParams};
use rocmforge::model::tokenizer::StreamDecoder;
use rocmforge::model::{LoadOptions, Model};

fn main() -> rocmforge::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| ".model/smollm2-135m-instruct-q4_1.gguf".into());
    let device = args.next().unwrap_or_else(|| "auto".into()).parse()?;
    let mut model = Model::load(
        &path,
        &LoadOptions {
            device,
            max_seqs: 2,
            ctx_size: Some(512),
            ..Default::default()
        },
    )?;
    let prompts = ["The capital of France is", "def fibonacci(n):"];
    let mut ids = Vec::new();
    let mut samplers = Vec::new();
    let mut seqs = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        ids.push(model.tokenize(p)?);
        samplers.push(Sampler::new(SamplingParams {
            temperature: 0.7,
            seed: Some(i as u64),
            ..Default::default()
        })?);
        seqs.push(model.engine.open());
    }
    // one step holds both prompts (a ragged prefill); each wants the logits of its last token
    let inputs: Vec<StepInput> = seqs
        .iter()
        .zip(&ids)
        .map(|(&seq, t)| StepInput {
            seq,
            tokens: t,
            want: Want::Last,
        })
        .collect();
    let mut out = model.engine.step(&inputs, false)?;
    let mut text = vec![String::new(); prompts.len()];
    let mut decoders: Vec<StreamDecoder> = prompts
        .iter()
        .map(|_| StreamDecoder::new(&model.tokenizer, true))
        .collect();
    let mut history = ids.clone();
    for _ in 0..24 {
        let mut next = Vec::new();
        for i in 0..seqs.len() {
            let mut logits = out.last_logits(i).expect("logits").to_vec();
            let t = samplers[i].sample(&mut logits, &history[i]);
            history[i].push(t);
            text[i].push_str(&decoders[i].push(t)?);
            next.push(t);
        }
        // one decode step for both sequences
        let inputs: Vec<StepInput> = seqs
            .iter()
            .zip(&next)
            .map(|(&seq, t)| StepInput {
                seq,
                tokens: std::slice::from_ref(t),
                want: Want::Last,
            })
            .collect();
        out = model.engine.step(&inputs, false)?;
    }
    for (i, p) in prompts.iter().enumerate() {
        println!("{p}{}{}\n---", text[i], decoders[i].finish());
        model.engine.free(seqs[i]);
    }
    eprintln!(
        "{} on {}; KV pages in use after freeing: {}",
        model.engine.config.name,
        model.engine.backend_name(),
        model.engine.kv_stats().pages_used
    );
    Ok(())
}
