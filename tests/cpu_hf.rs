//! The model runtime on the CPU backend against HF transformers (reference data committed by
//! tools/hf_reference.py): teacher-forced top-1 and logit cosine, free-running greedy tokens.

mod common;

use rocmforge::model::DeviceChoice;

#[test]
fn smollm2_matches_hf_on_the_cpu() {
    let s = common::hf::check(
        "smollm2-135m-instruct-q4_1",
        "smollm2-135m-instruct-q4_1.gguf",
        DeviceChoice::Cpu,
    );
    eprintln!("{s}");
}

#[test]
fn gemma3_matches_hf_on_the_cpu() {
    let s = common::hf::check(
        "gemma-3-270m-q4_k_m",
        "gemma-3-270m-q4_k_m.gguf",
        DeviceChoice::Cpu,
    );
    eprintln!("{s}");
}
