//! Writing a planned synthetic file: the header, then the tensor data generated in parallel and
//! written in file order by one writer thread, into a temporary file renamed when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::{err, random, SynthPlan, SynthSummary, ALIGNMENT, MATRIX_STD, PIECE_BYTES};
use crate::error::{Error, Result};
use crate::gguf::align_up;
use crate::gguf::writer::{put_str, put_value};

/// A tensor's (offset in the data section, byte size).
type Span = (u64, u64);

/// Header bytes (unpadded) and each tensor's (offset in the data section, byte size).
fn header(plan: &SynthPlan) -> Result<(Vec<u8>, Vec<Span>)> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(plan.tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(plan.metadata.len() as u64).to_le_bytes());
    for (k, v) in &plan.metadata {
        put_str(&mut out, k);
        out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
        put_value(&mut out, v)?;
    }
    let mut layout = Vec::with_capacity(plan.tensors.len());
    let mut offset = 0u64;
    for t in &plan.tensors {
        let id =
            t.ty.ggml_id()
                .ok_or_else(|| err(format!("tensor `{}`: {} has no GGUF id", t.name, t.ty)))?;
        let n = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                err(format!(
                    "tensor `{}`: shape {:?} overflows",
                    t.name, t.shape
                ))
            })?;
        if t.shape.is_empty() || t.shape[0] % t.ty.block_elems() as u64 != 0 {
            return Err(err(format!(
                "tensor `{}`: rows of {:?} are not whole {} blocks of {}",
                t.name,
                t.shape,
                t.ty,
                t.ty.block_elems()
            )));
        }
        let size = t.ty.row_bytes(n)? as u64;
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in &t.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        layout.push((offset, size));
        offset = align_up(offset + size, ALIGNMENT).ok_or_else(|| err("data too large".into()))?;
    }
    Ok((out, layout))
}

#[cfg(unix)]
fn write_at(f: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(windows)]
fn write_at(f: &std::fs::File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// The output under a temporary name in the same folder, removed unless persisted.
struct TempOut {
    path: PathBuf,
    file: std::fs::File,
    keep: bool,
}

impl TempOut {
    fn create(out: &Path) -> Result<TempOut> {
        let name = out
            .file_name()
            .ok_or_else(|| err(format!("--out {} is not a file path", out.display())))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let path = out.with_file_name(tmp_name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(TempOut {
            path,
            file,
            keep: false,
        })
    }

    fn persist(mut self, out: &Path) -> Result<()> {
        std::fs::rename(&self.path, out).map_err(|e| Error::io(out, e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One piece of work: blocks `first..first+count` of tensor `tensor`.
struct Piece {
    tensor: usize,
    index: u64,
    first: u64,
    count: u64,
}

/// Write a planned file (to a temporary file next to `out`, renamed when complete).
pub fn write(plan: &SynthPlan, out: &Path, seed: u64) -> Result<SynthSummary> {
    let start = Instant::now();
    let (head, layout) = header(plan)?;
    let data_start =
        align_up(head.len() as u64, ALIGNMENT).ok_or_else(|| err("header too large".into()))?;
    let end = plan
        .tensors
        .iter()
        .zip(&layout)
        .map(|(_, &(off, size))| off + size)
        .max()
        .unwrap_or(0);
    let total = data_start + end;

    let mut pieces = Vec::new();
    for (i, t) in plan.tensors.iter().enumerate() {
        let bb = t.ty.block_bytes() as u64;
        let n_blocks = layout[i].1 / bb;
        let per = (PIECE_BYTES as u64 / bb).max(1);
        let mut first = 0;
        let mut index = 0;
        while first < n_blocks {
            let count = per.min(n_blocks - first);
            pieces.push(Piece {
                tensor: i,
                index,
                first,
                count,
            });
            first += count;
            index += 1;
        }
    }

    let tmp = TempOut::create(out)?;
    let io = |e: std::io::Error| Error::io(&tmp.path, e);
    tmp.file.set_len(total).map_err(io)?;
    write_at(&tmp.file, &head, 0).map_err(io)?;
    // Generation runs in parallel (rayon) in batches, in file order; one writer thread writes the
    // pieces sequentially (parallel writes into one file were 2x slower than one writer here).
    // Buffers go back to the generators through `spare`, so no piece allocates afresh.
    let batch = 2 * rayon::current_num_threads().max(1);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let spare_rx = std::sync::Mutex::new(spare_rx);
    let file = &tmp.file;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(batch);
        let writer = s.spawn(move || -> Result<()> {
            for (at, buf) in rx {
                write_at(file, &buf, at).map_err(io)?;
                let _ = spare_tx.send(buf);
            }
            Ok(())
        });
        'produce: for group in pieces.chunks(batch) {
            let bufs = group
                .par_iter()
                .map(|p| -> Result<(u64, Vec<u8>)> {
                    let t = &plan.tensors[p.tensor];
                    let mut buf = spare_rx
                        .lock()
                        .ok()
                        .and_then(|r| r.try_recv().ok())
                        .unwrap_or_else(|| Vec::with_capacity(PIECE_BYTES + 512));
                    buf.clear();
                    let mut rng = random::Rng::new(random::mix(&[seed, p.tensor as u64, p.index]));
                    random::fill(
                        t.ty,
                        t.kind,
                        MATRIX_STD,
                        p.count as usize,
                        &mut rng,
                        &mut buf,
                    )
                    .map_err(|e| err(format!("tensor `{}`: {e}", t.name)))?;
                    let at = data_start + layout[p.tensor].0 + p.first * t.ty.block_bytes() as u64;
                    Ok((at, buf))
                })
                .collect::<Result<Vec<_>>>()?;
            for b in bufs {
                if tx.send(b).is_err() {
                    break 'produce; // the writer stopped: its error is reported below
                }
            }
        }
        drop(tx);
        writer
            .join()
            .map_err(|_| err("the writer thread panicked".into()))?
    })?;
    tmp.persist(out)?;

    let mut types = BTreeMap::new();
    for t in &plan.tensors {
        *types.entry(t.ty.name().to_string()).or_insert(0) += 1;
    }
    Ok(SynthSummary {
        path: out.to_path_buf(),
        arch: plan.arch.clone(),
        n_layers: plan.n_layers,
        vocab: plan.vocab,
        tensors: plan.tensors.len(),
        bytes: total,
        seconds: start.elapsed().as_secs_f64(),
        types,
    })
}
