//! The model runtime: a GGUF model described by one typed [`config::ModelConfig`] (read through one
//! table per architecture in [`arch`]), its tokenizer and chat template, weights kept in their GGUF
//! formats, and a forward pass over a paged KV cache on the GPU (the ops' kernels) or on the CPU
//! (the ops' references), with a sampler on top.

pub mod chat;
pub mod sampler;
pub mod tokenizer;
pub mod arch;
pub mod config;
