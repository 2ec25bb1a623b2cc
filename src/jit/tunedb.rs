//! The tuning database: the configurations `rocmforge tune` measured as faster than an op's default,
//! one JSON file per device under `<cache root>/tune/`, consulted by ops on every kernel choice.
//!
//! A file belongs to one [`DeviceKey`] (device name, target with features, driver, compiler name and
//! version, crate version); a file whose key differs from the running device's is ignored with a
//! warning. Entries are keyed `family/bucket` (e.g. `gemv/q4_K.f16.b1`, `qgemm/mma.m128`). Writes use
//! the kernel cache's discipline ([`super::cache`]): an exclusive file lock, a second look at the file
//! under the lock (its entries are merged with ours, so concurrent writers never lose each other's
//! entries), then a temporary file renamed into place. A SHA-256 over the body and a format version
//! are checked on load; a corrupt file is ignored (and replaced by the next write). A directory that
//! cannot be written leaves the database in memory, with a warning; nothing here stops a run.
//!
//! `ROCMFORGE_TUNE=off|readonly|on` (default `readonly`): `off` ignores the database, `readonly` uses
//! its entries but never writes, `on` lets `rocmforge tune` write. `rocmforge tune` itself writes
//! when the variable is unset (that is what it is for) and not when it says `readonly`.

use super::cache::{cache_base, lock_exclusive, write_atomic};
use crate::error::{Error, Result};
use crate::gpu::Target;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

/// File format version; bump when [`Entry`] or the file layout changes.
pub const FORMAT: u32 = 1;

/// What `ROCMFORGE_TUNE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TuneMode {
    /// Ignore the database: every op runs its default.
    Off,
    /// Use entries, never write (the default).
    ReadOnly,
    /// Use entries and let the tuner write.
    On,
}

impl TuneMode {
    /// Parse a `ROCMFORGE_TUNE` value (None or empty: the default, `readonly`).
    pub fn parse(v: Option<&str>) -> Result<TuneMode> {
        match v.map(str::trim).unwrap_or("") {
            "" | "readonly" | "ro" => Ok(TuneMode::ReadOnly),
            "off" | "0" | "false" => Ok(TuneMode::Off),
            "on" | "1" | "true" | "rw" => Ok(TuneMode::On),
            other => Err(Error::op(
                "tuning database",
                format!("ROCMFORGE_TUNE={other}: expected off, readonly or on"),
            )),
        }
    }

    /// The mode of this process (read once; an unknown value warns and means `readonly`).
    pub fn current() -> TuneMode {
        static MODE: OnceLock<TuneMode> = OnceLock::new();
        *MODE.get_or_init(|| {
            let v = std::env::var("ROCMFORGE_TUNE").ok();
            TuneMode::parse(v.as_deref()).unwrap_or_else(|e| {
                warn(&e.to_string());
                TuneMode::ReadOnly
            })
        })
    }
}

/// Everything a tuned choice depends on besides the op's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKey {
    pub device: String,
    /// Full target string with features (`gfx90a:sramecc+:xnack-`, `sm_90`).
    pub target: String,
    pub driver: String,
    /// Compiler name and version (`RtcCompiler::version`), `none` where no compiler loads.
    pub compiler: String,
    pub crate_version: String,
}

impl DeviceKey {
    /// The key of `target` with this process's compiler and crate version.
    pub fn for_target(target: &Target) -> DeviceKey {
        let compiler = crate::gpu::compiler(target.backend_vendor())
            .map(|c| c.version())
            .unwrap_or_else(|_| "none".into());
        DeviceKey::new(target, &compiler)
    }

    /// The key of `target` with an explicit compiler string.
    pub fn new(target: &Target, compiler: &str) -> DeviceKey {
        DeviceKey {
            device: target.name.clone(),
            target: target.full_name(),
            driver: target.driver_version.clone(),
            compiler: compiler.into(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The file name of this device's database.
    pub fn file_name(&self) -> String {
        file_name(&self.target, &self.device)
    }

    /// The fields that differ from `other`, as `field: ours ≠ theirs`.
    pub fn differences(&self, other: &DeviceKey) -> Vec<String> {
        let pairs = [
            ("device", &self.device, &other.device),
            ("target", &self.target, &other.target),
            ("driver", &self.driver, &other.driver),
            ("compiler", &self.compiler, &other.compiler),
            ("crate version", &self.crate_version, &other.crate_version),
        ];
        pairs
            .iter()
            .filter(|(_, a, b)| a != b)
            .map(|(f, a, b)| format!("{f}: {a} ≠ {b}"))
            .collect()
    }
}

fn file_name(target: &str, device: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}--{}.json", clean(target), clean(device))
}

/// One tuned choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The chosen configuration's parameters (e.g. `rows = 4`, or `bm, bn, warps, bk`).
    pub config: BTreeMap<String, String>,
    /// The shape that was measured (e.g. `4096x4096`).
    pub shape: String,
    /// True when the sweep kept the default (recorded so a second run does not tune again; ops
    /// keep their built-in default for such entries).
    pub is_default: bool,
    pub default_ms: f64,
    pub best_ms: f64,
    /// The measured spread the winner had to beat the default by.
    pub spread_ms: f64,
    /// UTC date of the measurement, `YYYY-MM-DD`.
    pub date: String,
}

#[derive(Serialize, Deserialize)]
struct Body {
    format: u32,
    key: DeviceKey,
    entries: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct FileRepr {
    body: Body,
    sha256: String,
}

fn checksum(body: &Body) -> Result<String> {
    let bytes =
        serde_json::to_vec(body).map_err(|e| Error::op("tuning database", e.to_string()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn encode(key: &DeviceKey, entries: &BTreeMap<String, Entry>) -> Result<Vec<u8>> {
    let body = Body {
        format: FORMAT,
        key: key.clone(),
        entries: entries.clone(),
    };
    let sha256 = checksum(&body)?;
    serde_json::to_vec_pretty(&FileRepr { body, sha256 })
        .map_err(|e| Error::op("tuning database", e.to_string()))
}

/// A file's key and entries.
type Contents = (DeviceKey, BTreeMap<String, Entry>);

/// Parse and verify a database file's bytes: format version and checksum.
fn decode(bytes: &[u8]) -> std::result::Result<Contents, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let format = v.pointer("/body/format").and_then(|f| f.as_u64());
    if format != Some(FORMAT as u64) {
        return Err(format!("format {format:?}, this build reads {FORMAT}"));
    }
    let f: FileRepr = serde_json::from_value(v).map_err(|e| format!("layout: {e}"))?;
    if checksum(&f.body).map_err(|e| e.to_string())? != f.sha256 {
        return Err("checksum mismatch".into());
    }
    Ok((f.body.key, f.body.entries))
}

/// Read a file: `Ok(None)` when absent, `Err(why)` when unreadable, corrupt or of another format.
fn read_file(path: &Path) -> std::result::Result<Option<Contents>, String> {
    match std::fs::read(path) {
        Ok(b) => decode(&b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn warn(msg: &str) {
    tracing::warn!("tuning database: {msg}");
}

/// Today's UTC date as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // civil-from-days (H. Hinnant)
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The tuning database of one device.
#[derive(Debug, Clone)]
pub struct TuneDb {
    key: DeviceKey,
    /// The `tune/` directory (None: in memory only).
    dir: Option<PathBuf>,
    entries: HashMap<String, Entry>,
    /// Entries set in this process (they win over the file's when merging).
    touched: BTreeSet<String>,
    /// Why the database is not on disk, if it is not.
    degraded: Option<String>,
}

impl TuneDb {
    /// The `tune/` directory under the environment's cache root.
    pub fn default_dir() -> Option<PathBuf> {
        cache_base().map(|b| b.join("tune"))
    }

    /// The database of `key` in the environment's directory. Never fails: problems warn and leave an
    /// empty or in-memory database.
    pub fn open(key: DeviceKey) -> TuneDb {
        TuneDb::open_in(TuneDb::default_dir(), key)
    }

    /// The database of `key` in `dir` (None: in memory only).
    pub fn open_in(dir: Option<PathBuf>, key: DeviceKey) -> TuneDb {
        let mut db = TuneDb {
            key,
            dir,
            entries: HashMap::new(),
            touched: BTreeSet::new(),
            degraded: None,
        };
        if let Some(p) = db.path() {
            match read_file(&p) {
                Ok(None) => {}
                Ok(Some((k, entries))) => {
                    let diff = db.key.differences(&k);
                    if diff.is_empty() {
                        db.entries = entries.into_iter().collect();
                    } else {
                        warn(&format!(
                            "{} is for another device or compiler ({}); ignored",
                            p.display(),
                            diff.join(", ")
                        ));
                    }
                }
                Err(why) => warn(&format!("{} ignored: {why}", p.display())),
            }
        }
        db
    }

    /// The file this database lives in.
    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(self.key.file_name()))
    }
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }
    /// Why the database is in memory only, if it is.
    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `family` at `bucket`.
    pub fn get(&self, family: &str, bucket: &str) -> Option<&Entry> {
        self.entries.get(&entry_key(family, bucket))
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> BTreeMap<String, Entry> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Set an entry in memory (written by [`TuneDb::save`]).
    pub fn insert(&mut self, family: &str, bucket: &str, entry: Entry) {
        let k = entry_key(family, bucket);
        self.touched.insert(k.clone());
        self.entries.insert(k, entry);
    }

    /// Write the database: under the file lock, read the file again, merge its entries with this
    /// process's (ours win where both have one), write a temporary file and rename it into place.
    /// Returns whether it reached the disk; a directory that cannot be written warns and returns
    /// `Ok(false)`, keeping the entries in memory.
    pub fn save(&mut self) -> Result<bool> {
        let Some(path) = self.path() else {
            return Ok(false);
        };
        match self.save_locked(&path) {
            Ok(()) => Ok(true),
            Err(e) => {
                let why = e.to_string();
                warn(&format!("not written, kept in memory: {why}"));
                self.degraded = Some(why);
                Ok(false)
            }
        }
    }

    fn save_locked(&mut self, path: &Path) -> Result<()> {
        let dir = path.parent().ok_or_else(|| {
            Error::op(
                "tuning database",
                format!("{} has no parent", path.display()),
            )
        })?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = lock_exclusive(&path.with_extension("lock"))?;
        // Second look: whatever other writers stored while we tuned.
        let mut merged: BTreeMap<String, Entry> = match read_file(path) {
            Ok(Some((k, e))) if k == self.key => e,
            Ok(Some(_)) => {
                warn(&format!(
                    "{} held another device's entries; replaced",
                    path.display()
                ));
                BTreeMap::new()
            }
            Ok(None) => BTreeMap::new(),
            Err(why) => {
                warn(&format!(
                    "{} was unreadable ({why}); rewritten",
                    path.display()
                ));
                BTreeMap::new()
            }
        };
        for (k, v) in &self.entries {
            if self.touched.contains(k) || !merged.contains_key(k) {
                merged.insert(k.clone(), v.clone());
            }
        }
        let res = write_atomic(path, &encode(&self.key, &merged)?);
        let _ = fs2::FileExt::unlock(&lock);
        res?;
        self.entries = merged.into_iter().collect();
        Ok(())
    }

    /// Write this database to `path` (for `rocmforge tune export`).
    pub fn export(&self, path: &Path) -> Result<usize> {
        write_atomic(path, &encode(&self.key, &self.entries())?)?;
        Ok(self.entries.len())
    }

    /// Merge the entries of the database file at `path` into this one (in memory; [`TuneDb::save`]
    /// writes them). A file of another device key is refused with the differing fields named.
    pub fn import(&mut self, path: &Path) -> Result<usize> {
        let (k, entries) = match read_file(path) {
            Ok(Some(x)) => x,
            Ok(None) => return Err(Error::io(path, std::io::ErrorKind::NotFound.into())),
            Err(why) => {
                return Err(Error::op(
                    "tuning database",
                    format!("{} is not a valid tuning database: {why}", path.display()),
                ))
            }
        };
        let diff = self.key.differences(&k);
        if !diff.is_empty() {
            return Err(Error::op(
                "tuning database",
                format!(
                    "{} was tuned on another device key, refusing to import ({})",
                    path.display(),
                    diff.join(", ")
                ),
            ));
        }
        let n = entries.len();
        for (k, v) in entries {
            self.touched.insert(k.clone());
            self.entries.insert(k, v);
        }
        Ok(n)
    }
}

/// The device key of the database file at `path` (verified: format and checksum).
pub fn file_key(path: &Path) -> Result<DeviceKey> {
    match read_file(path) {
        Ok(Some((k, _))) => Ok(k),
        Ok(None) => Err(Error::io(path, std::io::ErrorKind::NotFound.into())),
        Err(why) => Err(Error::op(
            "tuning database",
            format!("{} is not a valid tuning database: {why}", path.display()),
        )),
    }
}

/// The database files in `dir` with their keys (or why each is unusable), sorted by path.
pub fn list(dir: &Path) -> Vec<(PathBuf, std::result::Result<DeviceKey, String>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let k = file_key(&p).map_err(|e| e.to_string());
            (p, k)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn entry_key(family: &str, bucket: &str) -> String {
    format!("{family}/{bucket}")
}

/// Shape bucket of a gemv call: format, dtype and batch (the only things `default_for` sees).
pub fn gemv_bucket(format: &str, dtype: &str, batch: usize) -> String {
    format!("{format}.{dtype}.b{batch}")
}

/// Shape bucket of a qgemm call: the path and the M regime of `default_tile` (≤16, ≤128, ≤256, more).
pub fn qgemm_bucket(path: &str, m: usize) -> String {
    let r = match m {
        0..=16 => "m16",
        17..=128 => "m128",
        129..=256 => "m256",
        _ => "mbig",
    };
    format!("{path}.{r}")
}

// ---- the in-process registry: target full name → that device's database, loaded once ----

type Registry = RwLock<HashMap<String, Option<Arc<TuneDb>>>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Make `db` the database ops consult for its target in this process (the tuner passes the device
/// key this way; tests plant databases with it).
pub fn install(db: TuneDb) {
    if let Ok(mut r) = registry().write() {
        r.insert(db.key.target.clone(), Some(Arc::new(db)));
    }
}

/// Forget the database of `target_full` (the next lookup loads it from disk again).
pub fn uninstall(target_full: &str) {
    if let Ok(mut r) = registry().write() {
        r.remove(target_full);
    }
}

/// Load `target`'s database from the environment's directory, once per process (no-op when
/// `ROCMFORGE_TUNE=off` or already loaded). Without a file this costs one `stat` and no compiler load.
pub fn activate(target: &Target) {
    if TuneMode::current() == TuneMode::Off {
        return;
    }
    let full = target.full_name();
    if registry()
        .read()
        .map(|r| r.contains_key(&full))
        .unwrap_or(true)
    {
        return;
    }
    let db = TuneDb::default_dir()
        .filter(|d| d.join(file_name(&full, &target.name)).is_file())
        .map(|d| TuneDb::open_in(Some(d), DeviceKey::for_target(target)))
        .filter(|db| !db.is_empty())
        .map(Arc::new);
    if let Ok(mut r) = registry().write() {
        r.entry(full).or_insert(db);
    }
}

/// The tuned (non-default) configuration of `family/bucket` for `target`, if its database has one.
pub fn lookup(target: &Target, family: &str, bucket: &str) -> Option<BTreeMap<String, String>> {
    if TuneMode::current() == TuneMode::Off {
        return None;
    }
    activate(target);
    let r = registry().read().ok()?;
    let db = r.get(&target.full_name())?.as_ref()?;
    let config = db
        .get(family, bucket)
        .filter(|e| !e.is_default)
        .map(|e| e.config.clone())?;
    note_used(family, bucket, &config);
    Some(config)
}

/// Tuned entries ops used in this process, as `family/bucket: name=value ...` (the load report).
pub fn used() -> Vec<String> {
    used_set()
        .lock()
        .map(|u| u.iter().cloned().collect())
        .unwrap_or_default()
}

fn used_set() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static USED: OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

fn note_used(family: &str, bucket: &str, config: &BTreeMap<String, String>) {
    let kv: Vec<String> = config.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Ok(mut u) = used_set().lock() {
        u.insert(format!("{family}/{bucket}: {}", kv.join(" ")));
    }
}

/// Tuned rows per block for a gemv call on `target` (hook of `GemvConfig::default_for`).
pub fn gemv_rows(target: &Target, format: &str, dtype: &str, batch: usize) -> Option<usize> {
    tuned_rows("gemv", target, format, dtype, batch)
}

/// Tuned rows per block for a gemv_q8 call on `target` (hook of `GemvQ8Config::default_for`).
pub fn gemv_q8_rows(target: &Target, format: &str, dtype: &str, batch: usize) -> Option<usize> {
    tuned_rows("gemv_q8", target, format, dtype, batch)
}

fn tuned_rows(
    family: &str,
    target: &Target,
    format: &str,
    dtype: &str,
    batch: usize,
) -> Option<usize> {
    lookup(target, family, &gemv_bucket(format, dtype, batch))?
        .get("rows")?
        .parse()
        .ok()
}

/// Tuned qgemm tile `(bm, bn, warps, bk)` for `m` rows on `path` (hook of `qgemm::default_tile`,
/// which sees no target): the tile the loaded databases agree on; none where they disagree.
/// The tuned linear path of a prefill step of `m` rows: `Some(true)` when the sweep found dequantize +
/// vendor BLAS fastest for its bucket (an entry `path=blas`), `Some(false)` when a fused qgemm tile
/// beat it, `None` without a tuned (non-default) entry: then the built-in policy decides.
pub fn linear_blas(path: &str, m: usize) -> Option<bool> {
    if TuneMode::current() == TuneMode::Off {
        return None;
    }
    let bucket = qgemm_bucket(path, m);
    let r = registry().read().ok()?;
    let mut found: Option<bool> = None;
    for db in r.values().flatten() {
        let Some(e) = db.get("qgemm", &bucket).filter(|e| !e.is_default) else {
            continue;
        };
        let blas = e.config.get("path").map(String::as_str) == Some("blas");
        if found.is_some_and(|f| f != blas) {
            return None;
        }
        found = Some(blas);
    }
    if let Some(b) = found {
        let config = [(
            "path".to_string(),
            if b { "blas" } else { "qgemm" }.to_string(),
        )]
        .into_iter()
        .collect();
        note_used("qgemm", &bucket, &config);
    }
    found
}

pub fn qgemm_tile(path: &str, m: usize) -> Option<(i64, i64, i64, i64)> {
    if TuneMode::current() == TuneMode::Off {
        return None;
    }
    let bucket = qgemm_bucket(path, m);
    let r = registry().read().ok()?;
    let mut found: Option<(i64, i64, i64, i64)> = None;
    for db in r.values().flatten() {
        let Some(e) = db.get("qgemm", &bucket).filter(|e| !e.is_default) else {
            continue;
        };
        let p = |k: &str| e.config.get(k).and_then(|v| v.parse::<i64>().ok());
        let t = (p("bm")?, p("bn")?, p("warps")?, p("bk")?);
        if found.is_some_and(|f| f != t) {
            return None;
        }
        found = Some(t);
    }
    if let Some((bm, bn, warps, bk)) = found {
        let config = [("bm", bm), ("bn", bn), ("warps", warps), ("bk", bk)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        note_used("qgemm", &bucket, &config);
    }
    found
}
