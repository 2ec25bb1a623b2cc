//! The model runtime: a GGUF model described by one typed [`config::ModelConfig`] (read through one
//! table per architecture in [`arch`]), its tokenizer and chat template, weights kept in their GGUF
//! formats, and a forward pass over a paged KV cache on the GPU (the ops' kernels) or on the CPU
//! (the ops' references), with a sampler on top.
//!
//! Layers: [`engine::Engine`] (sequences, KV pages, steps of ragged batches) drives a [`Backend`]
//! ([`cpu::CpuBackend`] or the GPU backend); [`Model`] adds the tokenizer, the chat template and
//! generation.

pub mod arch;
pub mod batch;
pub mod chat;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod kv;
pub mod sampler;
pub mod tokenizer;

use crate::error::Result;
use batch::ForwardBatch;

/// Device memory (or host memory for the CPU backend) by use, in bytes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct MemoryReport {
    pub weights: usize,
    pub kv: usize,
    pub scratch: usize,
    /// Free device memory after loading (None on the CPU).
    pub free: Option<usize>,
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "weights {:.1} MiB, KV {:.1} MiB, scratch {:.1} MiB",
            mib(self.weights),
            mib(self.kv),
            mib(self.scratch)
        )?;
        if let Some(fr) = self.free {
            write!(f, ", free {:.1} MiB", mib(fr))?;
        }
        Ok(())
    }
}

/// What one forward step returns: logits rows (f32, `out_rows × vocab`, empty when not asked
/// for) and the greedy token of each row.
#[derive(Debug, Clone, Default)]
pub struct StepResult {
    pub logits: Vec<f32>,
    pub argmax: Vec<u32>,
}

/// A forward pass over the paged cache: the CPU and GPU backends.
pub trait Backend: Send {
    fn name(&self) -> String;
    fn memory(&self) -> MemoryReport;
    /// Run the batch; write its K/V into the pages its block tables name; return the outputs of
    /// `out_rows` (logits only when `want_logits`).
    fn forward(&mut self, batch: &ForwardBatch, want_logits: bool) -> Result<StepResult>;
    /// Launch and graph counters (zero on the CPU).
    fn counters(&self) -> BackendCounters {
        BackendCounters::default()
    }
}

/// What the GPU backend reports about how it runs steps.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct BackendCounters {
    /// Kernel launches of the last step (a replayed graph counts the launches it holds).
    pub launches_last_step: usize,
    /// Decode steps run by replaying a captured graph, and graphs captured.
    pub graph_replays: u64,
    pub graphs: usize,
    /// Device bytes allocated outside the pool (grows only when a new decode shape is first seen).
    pub device_allocated: i64,
}

/// Index of the largest value (lowest index on ties; NaN never wins).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best as u32
}
pub mod gpu;
pub mod runtime;
pub mod warmup;
pub use runtime::{DeviceChoice, GpuOptions, LoadOptions, Model};
