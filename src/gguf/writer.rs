//! A small GGUF v3 writer (fixtures for tests, and for users).

use std::path::Path;

use super::{align_up, Value, ValueType, DEFAULT_ALIGNMENT, MAX_DIMS};
use crate::error::{Error, Result};
use crate::quant::{self, QuantType};

/// Builds a GGUF v3 file in memory: metadata first, then tensors, each aligned.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    kvs: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, QuantType, Vec<u8>)>,
}

fn werr(message: String) -> Error {
    Error::Gguf {
        path: "<writer>".into(),
        message,
    }
}

impl GgufWriter {
    /// Empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a metadata key.
    pub fn add_kv(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        let key = key.into();
        if let Some(slot) = self.kvs.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.kvs.push((key, value));
        }
        self
    }

    /// Set `general.alignment` (power of two).
    pub fn set_alignment(&mut self, alignment: u32) -> &mut Self {
        self.add_kv("general.alignment", Value::U32(alignment))
    }

    /// Add a tensor from raw bytes in format `ty`; `shape` is GGML order (innermost first).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        shape: &[u64],
        ty: QuantType,
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let name = name.into();
        if ty.ggml_id().is_none() {
            return Err(werr(format!("tensor `{name}`: {ty} has no GGUF type id")));
        }
        if shape.is_empty() || shape.len() > MAX_DIMS {
            return Err(werr(format!(
                "tensor `{name}`: {} dimensions (must be 1..={MAX_DIMS})",
                shape.len()
            )));
        }
        if self.tensors.iter().any(|t| t.0 == name) {
            return Err(werr(format!("duplicate tensor `{name}`")));
        }
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| werr(format!("tensor `{name}`: shape {shape:?} overflows")))?;
        let want = ty.row_bytes(n)?;
        if shape[0] % ty.block_elems() as u64 != 0 || data.len() != want {
            return Err(werr(format!(
                "tensor `{name}`: shape {shape:?} of {ty} needs {want} bytes (rows multiple of {}), got {}",
                ty.block_elems(),
                data.len()
            )));
        }
        self.tensors.push((name, shape.to_vec(), ty, data));
        Ok(self)
    }

    /// Quantize f32 data to `ty` and add it.
    pub fn add_f32_tensor(
        &mut self,
        name: impl Into<String>,
        shape: &[u64],
        ty: QuantType,
        data: &[f32],
    ) -> Result<&mut Self> {
        let bytes = quant::quantize_to_vec(ty, data)?;
        self.add_tensor(name, shape, ty, bytes)
    }

    fn alignment(&self) -> Result<u64> {
        match self.kvs.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, v)) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => Ok(a),
                _ => Err(werr(format!(
                    "general.alignment {v:?} is not a power of two"
                ))),
            },
        }
    }

    /// Serialize to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let align = self.alignment()?;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut out, k);
            out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut out, v)?;
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for (name, shape, ty, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
            for d in shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.ggml_id().unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = align_up(offset + data.len() as u64, align)
                .ok_or_else(|| werr("data too large".into()))?;
        }
        let start =
            align_up(out.len() as u64, align).ok_or_else(|| werr("header too large".into()))?;
        out.resize(start as usize, 0);
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            out.resize((start + off) as usize, 0);
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// Write the file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        std::fs::write(path.as_ref(), bytes).map_err(|e| Error::io(path.as_ref(), e))
    }
}

/// A GGUF string: u64 length, then the bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF metadata value's bytes (arrays: element type, count, elements of that one type).
pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(et, items) => {
            out.extend_from_slice(&(*et as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                if it.value_type() != *et {
                    return Err(werr(format!(
                        "array of {et:?} holds a {:?}",
                        it.value_type()
                    )));
                }
                put_value(out, it)?;
            }
        }
    }
    Ok(())
}

#[allow(dead_code)]
fn _assert_value_type_ids() {
    // ValueType discriminants are the on-disk ids.
    const _: () = assert!(ValueType::F64 as u32 == 12);
}
