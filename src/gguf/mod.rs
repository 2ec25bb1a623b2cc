//! GGUF (v2/v3) reader over a memory map, and a small writer.
//!
//! Every length and count read from the file is checked against the bytes left before anything
//! is allocated, so malformed or malicious files give [`Error::Gguf`], never a panic or a huge
//! allocation. Tensor sizes come from the quantization layout table ([`crate::quant`]).

pub mod synth;
mod value;
mod writer;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use value::{Value, ValueType};
pub use writer::GgufWriter;

use crate::error::{Error, Result};
use crate::quant::{self, QuantType};

/// "GGUF" as a little-endian u32.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;
/// Deepest array nesting accepted.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// One tensor's description.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions, GGML order: `shape[0]` is the innermost (contiguous) one.
    pub shape: Vec<u64>,
    /// Storage format.
    pub ty: QuantType,
    /// Offset relative to the data section, as stored.
    pub offset: u64,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elems(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Size in bytes.
    pub fn n_bytes(&self) -> usize {
        self.range.len()
    }
}

/// A tensor's bytes inside an open file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    info: &'a TensorInfo,
    bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// Description.
    pub fn info(&self) -> &'a TensorInfo {
        self.info
    }
    /// Name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }
    /// Dimensions (GGML order).
    pub fn shape(&self) -> &'a [u64] {
        &self.info.shape
    }
    /// Storage format.
    pub fn ty(&self) -> QuantType {
        self.info.ty
    }
    /// Raw bytes (any alignment).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Dequantize the whole tensor to f32.
    pub fn dequantize_f32(&self) -> Result<Vec<f32>> {
        let n = usize::try_from(self.info.n_elems())
            .map_err(|_| Error::Quant(format!("tensor {} too large", self.info.name)))?;
        quant::dequantize_to_vec(self.info.ty, self.bytes, n)
    }
}

/// An open GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: memmap2::Mmap,
    version: u32,
    alignment: u64,
    data_offset: usize,
    metadata: Vec<(String, Value)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("kv", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "{what}: need {n} bytes at offset {}, only {} left",
                self.pos,
                self.left()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    /// A count of items that take at least `min_size` bytes each, checked against bytes left.
    fn count(&mut self, min_size: usize, what: &str) -> std::result::Result<usize, String> {
        let at = self.pos;
        let n = self.u64(what)?;
        let max = (self.left() / min_size.max(1)) as u64;
        if n > max {
            return Err(format!(
                "{what} {n} at offset {at} is impossible: only {} bytes left",
                self.left()
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n > self.left() as u64 {
            return Err(format!(
                "{what}: string length {n} at offset {at} runs past the end ({} bytes left)",
                self.left()
            ));
        }
        let b = self.take(n as usize, what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn value(
        &mut self,
        ty: ValueType,
        depth: usize,
        what: &str,
    ) -> std::result::Result<Value, String> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.arr::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.arr::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.arr(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.arr(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.arr(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.arr(what)?)),
            ValueType::Bool => {
                let b = self.arr::<1>(what)?[0];
                if b > 1 {
                    return Err(format!(
                        "{what}: bool byte {b} at offset {} is not 0 or 1",
                        self.pos - 1
                    ));
                }
                Value::Bool(b == 1)
            }
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.arr(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.arr(what)?)),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!(
                        "{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    ));
                }
                let at = self.pos;
                let et = self.u32(what)?;
                let et = ValueType::from_id(et).ok_or_else(|| {
                    format!("{what}: unknown array element type {et} at offset {at}")
                })?;
                let n = self.count(et.min_size(), what)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(et, depth + 1, what)?);
                }
                Value::Array(et, items)
            }
        })
    }
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v / a * a)
}

impl GgufFile {
    /// Open and validate a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len < 24 {
            return Err(gguf_err(
                &path,
                format!("file is {len} bytes, too small for a GGUF header"),
            ));
        }
        // SAFETY: the map is read-only; we never hand out references that outlive it. Like every
        // mmap reader we assume the file is not truncated by another process while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        Self::parse(path, map)
    }

    fn parse(path: PathBuf, map: memmap2::Mmap) -> Result<GgufFile> {
        let e = |m: String| gguf_err(&path, m);
        let mut c = Cursor {
            buf: &map[..],
            pos: 0,
        };
        let magic = c.arr::<4>("magic").map_err(e)?;
        if magic != GGUF_MAGIC {
            return Err(e(format!("bad magic {magic:02x?}, expected \"GGUF\"")));
        }
        let version = c.u32("version").map_err(e)?;
        if !(2..=3).contains(&version) {
            return Err(e(format!(
                "unsupported GGUF version {version} (supported: 2, 3)"
            )));
        }
        let n_tensors = c.count(24, "tensor count").map_err(e)?;
        let n_kv = c.count(13, "metadata kv count").map_err(e)?;

        let mut metadata = Vec::with_capacity(n_kv);
        let mut meta_index = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = c.string(&format!("key of kv #{i}")).map_err(e)?;
            let what = format!("value of `{key}`");
            let at = c.pos;
            let t = c.u32(&what).map_err(e)?;
            let t = ValueType::from_id(t)
                .ok_or_else(|| e(format!("{what}: unknown value type {t} at offset {at}")))?;
            let v = c.value(t, 0, &what).map_err(e)?;
            if meta_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(e(format!("duplicate metadata key `{key}`")));
            }
            metadata.push((key, v));
        }

        let alignment = match meta_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a,
                _ => return Err(e(format!("general.alignment {v:?} is not a power of two"))),
            },
        };

        struct Raw {
            name: String,
            shape: Vec<u64>,
            ty: QuantType,
            offset: u64,
        }
        let mut raws = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&format!("name of tensor #{i}")).map_err(e)?;
            let what = format!("tensor `{name}`");
            let nd = c.u32(&what).map_err(e)? as usize;
            if nd == 0 || nd > MAX_DIMS {
                return Err(e(format!(
                    "{what}: {nd} dimensions (must be 1..={MAX_DIMS})"
                )));
            }
            let mut shape = Vec::with_capacity(nd);
            for _ in 0..nd {
                shape.push(c.u64(&what).map_err(e)?);
            }
            let tid = c.u32(&what).map_err(e)?;
            let ty = QuantType::from_ggml_id(tid)
                .map_err(|_| e(format!("{what}: unknown or unsupported GGML type id {tid}")))?;
            let offset = c.u64(&what).map_err(e)?;
            raws.push(Raw {
                name,
                shape,
                ty,
                offset,
            });
        }

        // A file without tensors may end right after its metadata (no padding).
        let data_offset = align_up(c.pos as u64, alignment)
            .map(|d| {
                if raws.is_empty() {
                    d.min(map.len() as u64)
                } else {
                    d
                }
            })
            .filter(|&d| d <= map.len() as u64)
            .ok_or_else(|| {
                e(format!(
                    "data section start (after {} header bytes) is past the end",
                    c.pos
                ))
            })? as usize;
        let data_len = (map.len() - data_offset) as u64;

        let mut tensors = Vec::with_capacity(raws.len());
        let mut tensor_index = HashMap::with_capacity(raws.len());
        for r in raws {
            let what = format!("tensor `{}`", r.name);
            let mut n: u64 = 1;
            for &d in &r.shape {
                n = n
                    .checked_mul(d)
                    .ok_or_else(|| e(format!("{what}: shape {:?} overflows", r.shape)))?;
            }
            let l = r.ty.layout();
            if r.shape[0] % l.block_elems as u64 != 0 {
                return Err(e(format!(
                    "{what}: row length {} is not a multiple of the {} block size {}",
                    r.shape[0], l.name, l.block_elems
                )));
            }
            let size = (n / l.block_elems as u64)
                .checked_mul(l.block_bytes as u64)
                .ok_or_else(|| e(format!("{what}: byte size overflows")))?;
            if r.offset % alignment != 0 {
                return Err(e(format!(
                    "{what}: offset {} is not a multiple of the alignment {alignment}",
                    r.offset
                )));
            }
            let end = r
                .offset
                .checked_add(size)
                .filter(|&end| end <= data_len)
                .ok_or_else(|| {
                    e(format!(
                        "{what}: data [{}, +{size}) lies outside the {data_len}-byte data section",
                        r.offset
                    ))
                })?;
            let range = (data_offset + r.offset as usize)..(data_offset + end as usize);
            if tensor_index.insert(r.name.clone(), tensors.len()).is_some() {
                return Err(e(format!("duplicate tensor name `{}`", r.name)));
            }
            tensors.push(TensorInfo {
                name: r.name,
                shape: r.shape,
                ty: r.ty,
                offset: r.offset,
                range,
            });
        }

        Ok(GgufFile {
            path,
            map,
            version,
            alignment,
            data_offset,
            metadata,
            meta_index,
            tensors,
            tensor_index,
        })
    }

    fn err(&self, message: String) -> Error {
        gguf_err(&self.path, message)
    }

    /// Path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Data alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }
    /// The whole mapped file.
    pub fn file_bytes(&self) -> &[u8] {
        &self.map[..]
    }
    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }
    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn typed<'s, T>(
        &'s self,
        key: &str,
        want: &str,
        f: impl FnOnce(&'s Value) -> Option<T>,
    ) -> Result<T> {
        let v = self
            .get(key)
            .ok_or_else(|| self.err(format!("metadata key `{key}` is missing")))?;
        f(v).ok_or_else(|| self.err(format!("metadata `{key}` = {v:?} is not {want}")))
    }

    /// Integer value that fits u32 (any integer type is accepted).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.typed(key, "an integer fitting u32", Value::as_u32)
    }
    /// Integer value that fits u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.typed(key, "an integer fitting u64", Value::as_u64)
    }
    /// Integer value that fits i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.typed(key, "an integer fitting i64", Value::as_i64)
    }
    /// F32 (or F64) value.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "a float", Value::as_f32)
    }
    /// Bool value.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.typed(key, "a bool", Value::as_bool)
    }
    /// String value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.typed(key, "a string", Value::as_str)
    }
    /// Array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.typed(key, "an array of strings", Value::as_str_array)
    }
    /// Array value (elements).
    pub fn get_array(&self, key: &str) -> Result<&[Value]> {
        self.typed(key, "an array", Value::as_array)
    }
    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// Info of one tensor.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }
    /// One tensor's bytes.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| self.err(format!("no tensor named `{name}`")))?;
        let bytes = self.map.get(info.range.clone()).ok_or_else(|| {
            self.err(format!(
                "tensor `{name}` range {:?} outside the file",
                info.range
            ))
        })?;
        Ok(TensorView { info, bytes })
    }
}

fn gguf_err(path: &Path, message: String) -> Error {
    Error::Gguf {
        path: path.display().to_string(),
        message,
    }
}
