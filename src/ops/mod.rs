//! Layers. One file per op: its kernel family (spec builder), launcher and CPU reference.

// One file per op, grouped by area; each area's `families()` lists its kernel families.
pub mod attention;
pub mod fallback;
pub mod glue;
pub mod mlp;
pub mod mma_check;
pub mod quantized;
pub mod sampling;
pub mod smoke;

use crate::error::{Error, Result};
use crate::jit::Family;

/// Every registered kernel family (what `rocmforge compile --all` enumerates).
pub fn families() -> Vec<&'static Family> {
    let mut v: Vec<&'static Family> = vec![&smoke::FAMILY];
    v.extend(quantized::families());
    v.extend(attention::families());
    v.extend(mlp::families());
    v.push(&glue::FAMILY);
    v.extend(sampling::families());
    v.push(&mma_check::FAMILY);
    v
}

/// A family by name, or an error listing the known ones.
pub fn family(name: &str) -> Result<&'static Family> {
    families()
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| Error::InvalidSpec {
            spec: name.into(),
            reason: format!(
                "no such kernel family; known: {}",
                families()
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Element types kernels take and return, with their dtype name in specs.
pub trait Element: bytemuck::Pod + Send + Sync + std::fmt::Debug {
    const DTYPE: &'static str;
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Element for f32 {
    const DTYPE: &'static str = "f32";
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}
impl Element for half::f16 {
    const DTYPE: &'static str = "f16";
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
}
impl Element for half::bf16 {
    const DTYPE: &'static str = "bf16";
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        half::bf16::from_f32(v)
    }
}

/// The dtypes kernels are specialized for.
pub const DTYPES: &[&str] = &["f32", "f16", "bf16"];
