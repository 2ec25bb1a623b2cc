//! The on-disk kernel cache, written once above both compilers.
//!
//! Layout: `<root>/v1/<uri>/<target>/<key>.co`, where `key` is the SHA-256 of everything the code object
//! depends on (see [`cache_key`]). An entry is one file: a header (magic, lengths, SHA-256 of the rest),
//! a JSON description, then the code object. Writes go to a temporary file renamed into place, under
//! a per-entry file lock taken before compiling; after taking the lock we look again, so N processes
//! compiling the same spec compile it once. Loads verify the checksum; a corrupt or truncated entry is
//! removed and recompiled, never loaded. Size is bounded (`ROCMFORGE_CACHE_MAX_BYTES`, default 2 GiB)
//! with least-recently-used eviction (a hit refreshes the entry's mtime). A cache directory that
//! cannot be written degrades to compiling without the disk cache, with one warning.

use crate::error::{Error, Result};
use fs2::FileExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

/// Directory schema version; bump when the entry format or key changes.
pub const SCHEMA: &str = "v1";
const MAGIC: &[u8; 8] = b"RFCODE01";
const HEADER: usize = 8 + 8 + 8 + 32;
/// Default bound on the store.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// What an entry says about itself (shown by `cache list`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    pub uri: String,
    pub target: String,
    pub compiler: String,
    pub crate_version: String,
    pub compile_ms: f64,
}

/// Where a code object came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Origin {
    /// Compiled by this call.
    Compiled,
    /// Read from the disk cache.
    Disk,
    /// Compiled by another process while we waited for the entry lock.
    OtherProcess,
}

/// SHA-256 over every input the code object depends on. The driver version is deliberately not part
/// of the key: a code object does not depend on it, and keying on it would stop `rocmforge compile`
/// from filling a cache for a GPU that is not present. A module that a driver refuses to load is
/// evicted and recompiled instead (see `Jit::kernel`).
pub fn cache_key(source: &str, options: &[String], target_full: &str, compiler: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        source,
        &options.join("\u{1f}"),
        target_full,
        compiler,
        env!("CARGO_PKG_VERSION"),
        SCHEMA,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The cache root the environment names: `ROCMFORGE_CACHE_DIR`, else the platform cache dir +
/// `rocmforge` (shared by the kernel cache and the tuning database).
pub fn cache_base() -> Option<PathBuf> {
    std::env::var_os("ROCMFORGE_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("rocmforge")))
}

/// Open (creating) the lock file `path` and take an exclusive lock on it; dropping or unlocking the
/// returned file releases it.
pub(crate) fn lock_exclusive(path: &Path) -> Result<File> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    lock.lock_exclusive().map_err(|e| Error::io(path, e))?;
    Ok(lock)
}

/// Replace `path` with `bytes` atomically: a synced temporary file in the same directory, renamed
/// into place, so readers see the old file or the new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Cache(format!("{} has no parent", path.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// The disk store.
pub struct DiskCache {
    root: Option<PathBuf>,
    max_bytes: u64,
    warned: AtomicBool,
    disabled_reason: std::sync::Mutex<Option<String>>,
}

/// One entry on disk, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct EntryInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub meta: Option<EntryMeta>,
    pub ok: bool,
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl DiskCache {
    /// The cache the environment asks for: `ROCMFORGE_CACHE=off` disables it, `ROCMFORGE_CACHE_DIR`
    /// moves it (default: the platform cache dir + `rocmforge`), `ROCMFORGE_CACHE_MAX_BYTES` bounds it.
    pub fn from_env() -> DiskCache {
        let off = matches!(
            std::env::var("ROCMFORGE_CACHE").as_deref(),
            Ok("off" | "0" | "false")
        );
        let base = cache_base();
        let max = std::env::var("ROCMFORGE_CACHE_MAX_BYTES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_BYTES);
        DiskCache::new(if off { None } else { base }, max)
    }

    /// A cache rooted at `base` (None: disabled).
    pub fn new(base: Option<PathBuf>, max_bytes: u64) -> DiskCache {
        DiskCache {
            root: base.map(|b| b.join(SCHEMA)),
            max_bytes,
            warned: AtomicBool::new(false),
            disabled_reason: Default::default(),
        }
    }

    /// The schema directory, if the cache is on.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
    /// Why the disk cache is not in use, if it is not.
    pub fn disabled_reason(&self) -> Option<String> {
        if self.root.is_none() {
            return Some("disabled (ROCMFORGE_CACHE=off or no cache directory)".into());
        }
        self.disabled_reason.lock().ok().and_then(|g| g.clone())
    }

    fn degrade(&self, why: String) {
        if !self.warned.swap(true, Ordering::SeqCst) {
            tracing::warn!("kernel disk cache unusable, compiling without it: {why}");
            eprintln!(
                "rocmforge: warning: kernel disk cache unusable, compiling without it: {why}"
            );
        }
        if let Ok(mut g) = self.disabled_reason.lock() {
            g.get_or_insert(why);
        }
    }

    fn entry_path(&self, uri: &str, target: &str, key: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| {
            r.join(sanitize(uri))
                .join(sanitize(target))
                .join(format!("{key}.co"))
        })
    }

    /// Read and verify an entry. `Ok(None)` when absent; a corrupt entry is removed and reported absent.
    pub fn read_entry(path: &Path) -> Result<Option<(EntryMeta, Vec<u8>)>> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        // SAFETY: entries are only ever replaced by rename, never written in place, so the mapped file
        // does not change under us; the content is verified before use.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        match verify(&map) {
            Ok(x) => Ok(Some(x)),
            Err(why) => {
                tracing::warn!(path = %path.display(), "corrupt kernel cache entry removed: {why}");
                let _ = fs::remove_file(path);
                Ok(None)
            }
        }
    }

    /// Look up a code object, or compile it under the entry lock and store it.
    pub fn get_or_compile(
        &self,
        uri: &str,
        target: &str,
        key: &str,
        compiler: &str,
        compile: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<(Vec<u8>, Origin)> {
        let Some(path) = self.entry_path(uri, target, key) else {
            return Ok((compile()?, Origin::Compiled));
        };
        if self
            .disabled_reason
            .lock()
            .map(|g| g.is_some())
            .unwrap_or(false)
        {
            return Ok((compile()?, Origin::Compiled));
        }
        // First look, without the lock.
        if let Ok(Some((_, code))) = Self::read_entry(&path) {
            touch(&path);
            return Ok((code, Origin::Disk));
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Err(e) = fs::create_dir_all(&dir) {
            self.degrade(format!("{}: {e}", dir.display()));
            return Ok((compile()?, Origin::Compiled));
        }
        let lock_path = path.with_extension("lock");
        let lock = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(l) => l,
            Err(e) => {
                self.degrade(format!("{}: {e}", lock_path.display()));
                return Ok((compile()?, Origin::Compiled));
            }
        };
        let waited = Instant::now();
        lock.lock_exclusive()
            .map_err(|e| Error::io(&lock_path, e))?;
        // Second look: another process may have compiled it while we waited.
        if let Ok(Some((_, code))) = Self::read_entry(&path) {
            let _ = lock.unlock();
            tracing::debug!(
                uri,
                waited_ms = waited.elapsed().as_secs_f64() * 1e3,
                "entry written by another process"
            );
            return Ok((code, Origin::OtherProcess));
        }
        let t0 = Instant::now();
        let code = compile();
        let code = match code {
            Ok(c) => c,
            Err(e) => {
                let _ = lock.unlock();
                return Err(e);
            }
        };
        let meta = EntryMeta {
            uri: uri.into(),
            target: target.into(),
            compiler: compiler.into(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            compile_ms: t0.elapsed().as_secs_f64() * 1e3,
        };
        if let Err(e) = write_entry(&path, &meta, &code) {
            self.degrade(e.to_string());
        }
        let _ = lock.unlock();
        if let Err(e) = self.enforce_bound() {
            tracing::warn!("cache eviction failed: {e}");
        }
        Ok((code, Origin::Compiled))
    }

    /// A verified entry's code object, if present (refreshes its LRU time).
    pub fn lookup(&self, uri: &str, target: &str, key: &str) -> Option<Vec<u8>> {
        let path = self.entry_path(uri, target, key)?;
        let (_, code) = Self::read_entry(&path).ok()??;
        touch(&path);
        Some(code)
    }

    /// Remove one entry (used when a driver refuses to load it).
    pub fn evict(&self, uri: &str, target: &str, key: &str) {
        if let Some(p) = self.entry_path(uri, target, key) {
            let _ = fs::remove_file(p);
        }
    }

    /// Path of an entry, whether or not it exists.
    pub fn path_of(&self, uri: &str, target: &str, key: &str) -> Option<PathBuf> {
        self.entry_path(uri, target, key)
    }

    /// Every entry file under the root.
    pub fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let mut out = Vec::new();
        if let Some(r) = &self.root {
            walk(r, &mut out);
        }
        out
    }

    /// Total bytes of entries.
    pub fn total_bytes(&self) -> u64 {
        self.entries().iter().map(|e| e.1).sum()
    }

    /// List entries with their metadata and checksum status.
    pub fn list(&self) -> Vec<EntryInfo> {
        self.entries()
            .into_iter()
            .map(|(path, bytes, _)| {
                let v = fs::read(&path).ok().and_then(|d| verify(&d).ok());
                EntryInfo {
                    ok: v.is_some(),
                    meta: v.map(|x| x.0),
                    path,
                    bytes,
                }
            })
            .collect()
    }

    /// Verify every entry; remove corrupt ones. Returns (good, removed).
    pub fn verify_all(&self) -> (usize, usize) {
        let (mut good, mut bad) = (0, 0);
        for (p, _, _) in self.entries() {
            match fs::read(&p).map(|d| verify(&d).is_ok()) {
                Ok(true) => good += 1,
                _ => {
                    let _ = fs::remove_file(&p);
                    bad += 1
                }
            }
        }
        (good, bad)
    }

    /// Remove everything under the schema directory.
    pub fn clear(&self) -> Result<usize> {
        let n = self.entries().len();
        if let Some(r) = &self.root {
            if r.exists() {
                fs::remove_dir_all(r).map_err(|e| Error::io(r, e))?;
            }
        }
        Ok(n)
    }

    /// Evict least-recently-used entries until the store is within its bound. Returns entries removed.
    pub fn enforce_bound(&self) -> Result<usize> {
        let Some(root) = &self.root else { return Ok(0) };
        let gc_lock_path = root.join(".gc.lock");
        let gc = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&gc_lock_path)
            .map_err(|e| Error::io(&gc_lock_path, e))?;
        gc.lock_exclusive()
            .map_err(|e| Error::io(&gc_lock_path, e))?;
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.2);
        let mut removed = 0;
        for (p, bytes, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&p).is_ok() {
                total = total.saturating_sub(bytes);
                removed += 1;
                tracing::debug!(path = %p.display(), "evicted (cache over {} bytes)", self.max_bytes);
            }
        }
        let _ = gc.unlock();
        Ok(removed)
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "co") => {
                if let Ok(m) = e.metadata() {
                    out.push((p, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
                }
            }
            _ => {}
        }
    }
}

fn touch(p: &Path) {
    if let Ok(f) = File::options().write(true).open(p) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Check an entry's header and checksum; return its metadata and code object.
pub fn verify(data: &[u8]) -> std::result::Result<(EntryMeta, Vec<u8>), String> {
    if data.len() < HEADER || &data[..8] != MAGIC {
        return Err("bad header".into());
    }
    let meta_len = u64::from_le_bytes(data[8..16].try_into().map_err(|_| "header")?) as usize;
    let code_len = u64::from_le_bytes(data[16..24].try_into().map_err(|_| "header")?) as usize;
    let want = HEADER
        .checked_add(meta_len)
        .and_then(|x| x.checked_add(code_len))
        .ok_or("length overflow")?;
    if data.len() != want {
        return Err(format!(
            "length {} but header says {want} (truncated or padded)",
            data.len()
        ));
    }
    let body = &data[HEADER..];
    if Sha256::digest(body).as_slice() != &data[24..56] {
        return Err("checksum mismatch".into());
    }
    let meta: EntryMeta =
        serde_json::from_slice(&body[..meta_len]).map_err(|e| format!("metadata: {e}"))?;
    Ok((meta, body[meta_len..].to_vec()))
}

fn write_entry(path: &Path, meta: &EntryMeta, code: &[u8]) -> Result<()> {
    let meta_bytes = serde_json::to_vec(meta).map_err(|e| Error::Cache(e.to_string()))?;
    let mut body = meta_bytes.clone();
    body.extend_from_slice(code);
    let mut buf = Vec::with_capacity(HEADER + body.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(meta_bytes.len() as u64).to_le_bytes());
    buf.extend_from_slice(&(code.len() as u64).to_le_bytes());
    buf.extend_from_slice(&Sha256::digest(&body));
    buf.extend_from_slice(&body);
    write_atomic(path, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        let c = DiskCache::new(Some(d.path().into()), DEFAULT_MAX_BYTES);
        let (code, o) = c
            .get_or_compile("a.b.w32", "sm_90", "k1", "test", || Ok(vec![1, 2, 3]))
            .unwrap();
        assert_eq!((code, o), (vec![1, 2, 3], Origin::Compiled));
        let (code, o) = c
            .get_or_compile("a.b.w32", "sm_90", "k1", "test", || panic!("must hit"))
            .unwrap();
        assert_eq!((code, o), (vec![1, 2, 3], Origin::Disk));
        let p = c.path_of("a.b.w32", "sm_90", "k1").unwrap();
        let mut data = fs::read(&p).unwrap();
        let n = data.len();
        data[n - 1] ^= 0x40;
        fs::write(&p, &data).unwrap();
        let (_, o) = c
            .get_or_compile("a.b.w32", "sm_90", "k1", "test", || Ok(vec![1, 2, 3]))
            .unwrap();
        assert_eq!(o, Origin::Compiled, "byte-flipped entry must be recompiled");
        let data = fs::read(&p).unwrap();
        fs::write(&p, &data[..data.len() - 2]).unwrap();
        let (_, o) = c
            .get_or_compile("a.b.w32", "sm_90", "k1", "test", || Ok(vec![1, 2, 3]))
            .unwrap();
        assert_eq!(o, Origin::Compiled, "truncated entry must be recompiled");
        assert_eq!(c.verify_all(), (1, 0));
    }

    #[test]
    fn key_depends_on_every_input() {
        let base = cache_key("src", &["-O3".into()], "gfx90a", "hipRTC 5.2");
        assert_ne!(
            base,
            cache_key("src2", &["-O3".into()], "gfx90a", "hipRTC 5.2")
        );
        assert_ne!(
            base,
            cache_key("src", &["-O2".into()], "gfx90a", "hipRTC 5.2")
        );
        assert_ne!(
            base,
            cache_key("src", &["-O3".into()], "gfx90a:xnack-", "hipRTC 5.2")
        );
        assert_ne!(
            base,
            cache_key("src", &["-O3".into()], "gfx90a", "hipRTC 6.4")
        );
        assert_eq!(base.len(), 64);
    }
}
