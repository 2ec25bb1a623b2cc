//! ROCmForge: GPU kernels written once as HIP C++ templates, specialized and compiled at run time
//! with hipRTC (AMD) or NVRTC (NVIDIA), cached on disk, and used by an LLM runtime.
//!
//! Layers, top to bottom: [`ops`] (layers with CPU references) → [`jit`] (spec → source → code
//! object → loaded kernel, with the cache) → [`quant`] (block formats, defined once) → [`gpu`] (the
//! only module that knows a vendor exists). [`gguf`] reads model files.

pub mod error;
pub mod gguf;
pub mod gpu;
pub mod jit;
pub mod model;
pub mod ops;
pub mod quant;
pub mod server;

pub use error::{Error, Result};
