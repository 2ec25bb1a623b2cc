//! KernelSpec → rendered source → code object → loaded kernel.
//!
//! Lookups go memory (a hash of the URI) → disk cache → compiler. Compiling needs no device, so the
//! same path fills a cache for GPUs that are not present (`rocmforge compile --target ...`).

pub mod cache;
pub mod emulate;
pub mod spec;
pub mod template;
pub mod tune;
pub mod tunedb;

pub use cache::{DiskCache, Origin};
pub use spec::{Family, KernelSpec, ParamDef, ParamKind, Value};

use crate::error::{Error, Result};
use crate::gpu::{self, Device, Kernel, RtcCompiler, Target};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// A compiled code object and how it was obtained.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub uri: String,
    pub target: String,
    pub image: Vec<u8>,
    pub origin: Origin,
    pub key: String,
    /// Milliseconds spent in this call (render + cache lookup + compile).
    pub ms: f64,
}

/// Most instances compiled in one translation unit by [`Jit::compile_many`].
pub const GROUP: usize = 8;

struct Prepared {
    compiler: Arc<dyn RtcCompiler>,
    source: String,
    options: Vec<String>,
    cver: String,
    key: String,
}

fn dump(name: &str, source: &str) {
    if let Some(dir) = std::env::var_os("ROCMFORGE_DUMP_DIR").filter(|d| !d.is_empty()) {
        let p = std::path::Path::new(&dir).join(format!("{name}.hip"));
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&p, source)) {
            tracing::warn!("ROCMFORGE_DUMP_DIR: {}: {e}", p.display());
        }
    }
}

/// Run the compiler; a compile error becomes [`Error::Compile`] with the log and the source lines.
fn run_compiler(
    compiler: &dyn RtcCompiler,
    source: &str,
    uri: &str,
    target: &Target,
    options: &[String],
) -> Result<Vec<u8>> {
    let c0 = Instant::now();
    match compiler.compile(source, &format!("{uri}.hip"), options)? {
        Ok(code) => {
            tracing::info!(uri, target = %target, ms = c0.elapsed().as_secs_f64() * 1e3, "compiled");
            Ok(code)
        }
        Err(log) => Err(Error::Compile {
            uri: uri.into(),
            target: target.full_name(),
            options: options.join(" "),
            excerpt: template::excerpt(source, &log),
            log,
        }),
    }
}

/// The JIT: renders, compiles and caches kernels.
pub struct Jit {
    disk: DiskCache,
    /// device id → URI → loaded kernel.
    kernels: Mutex<HashMap<usize, HashMap<String, Arc<Kernel>>>>,
}

impl Jit {
    /// The process-wide JIT, configured from the environment.
    pub fn global() -> &'static Jit {
        static J: OnceLock<Jit> = OnceLock::new();
        J.get_or_init(|| Jit::new(DiskCache::from_env()))
    }

    pub fn new(disk: DiskCache) -> Jit {
        Jit {
            disk,
            kernels: Mutex::new(HashMap::new()),
        }
    }

    pub fn disk(&self) -> &DiskCache {
        &self.disk
    }

    /// Options for compiling on `target` with `compiler` (the same for every instance, so instances of
    /// one family can share a translation unit).
    pub fn options(&self, compiler: &dyn RtcCompiler, target: &Target) -> Vec<String> {
        compiler.base_options(target)
    }

    /// Everything needed to look up or compile `spec` for `target`.
    fn prepare(&self, spec: &KernelSpec, target: &Target) -> Result<Prepared> {
        spec.check_target(target)?;
        let compiler = gpu::compiler(target.backend_vendor())?;
        compiler.check_target(target)?;
        let source = template::render(spec, target)?;
        dump(
            &format!("{}.{}", spec.uri(), target.full_name().replace(':', "_")),
            &source,
        );
        let options = self.options(compiler.as_ref(), target);
        // Include paths differ between machines but not in what they provide for one compiler version.
        let keyed: Vec<String> = options
            .iter()
            .filter(|o| !o.starts_with("-I"))
            .cloned()
            .collect();
        let cver = format!("{:?} {}", compiler.vendor(), compiler.version());
        let key = cache::cache_key(&source, &keyed, &target.full_name(), &cver);
        Ok(Prepared {
            compiler,
            source,
            options,
            cver,
            key,
        })
    }

    /// Render and compile (through the disk cache) without a device.
    pub fn compile(&self, spec: &KernelSpec, target: &Target) -> Result<Compiled> {
        let t0 = Instant::now();
        let p = self.prepare(spec, target)?;
        let (image, origin) =
            self.disk
                .get_or_compile(spec.uri(), &target.full_name(), &p.key, &p.cver, || {
                    run_compiler(&*p.compiler, &p.source, spec.uri(), target, &p.options)
                })?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::info!(uri = spec.uri(), target = %target, origin = ?origin, ms, "code object ready");
        Ok(Compiled {
            uri: spec.uri().into(),
            target: target.full_name(),
            image,
            origin,
            key: p.key,
            ms,
        })
    }

    /// Compile many (spec, target) pairs, in parallel. Instances of one family that share a preamble
    /// are compiled together, up to [`GROUP`] per translation unit, which amortizes the compiler's
    /// fixed cost per invocation (most of a small kernel's compile time with hipRTC). Each instance's
    /// cache entry (under its own key) then holds the group's code object, which contains its kernel
    /// compiled from the identical kernel text. A group that fails to compile is retried instance by
    /// instance, so errors name the instance at fault.
    pub fn compile_many(
        &self,
        work: &[(KernelSpec, Target)],
        progress: impl Fn() + Sync,
    ) -> Vec<Result<Compiled>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut index: HashMap<(String, String, String), usize> = HashMap::new();
        for (i, (s, t)) in work.iter().enumerate() {
            let k = (
                s.family().name.to_string(),
                t.full_name(),
                (s.family().preamble)(s),
            );
            match index.get(&k) {
                Some(&g) if groups[g].len() < GROUP => groups[g].push(i),
                _ => {
                    index.insert(k, groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        let done: Vec<Vec<(usize, Result<Compiled>)>> = groups
            .par_iter()
            .map(|g| {
                let r = self.compile_group(g.iter().map(|&i| &work[i]).collect());
                g.iter().for_each(|_| progress());
                g.iter().copied().zip(r).collect()
            })
            .collect();
        let mut out: Vec<Option<Result<Compiled>>> = (0..work.len()).map(|_| None).collect();
        for (i, r) in done.into_iter().flatten() {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Cache("instance left uncompiled".into()))))
            .collect()
    }

    fn compile_group(&self, items: Vec<&(KernelSpec, Target)>) -> Vec<Result<Compiled>> {
        let t0 = Instant::now();
        let mut prepared: Vec<Option<Prepared>> = Vec::with_capacity(items.len());
        let mut results: Vec<Option<Result<Compiled>>> = Vec::with_capacity(items.len());
        let mut misses = Vec::new();
        for (i, (s, t)) in items.iter().enumerate() {
            match self.prepare(s, t) {
                Err(e) => {
                    results.push(Some(Err(e)));
                    prepared.push(None);
                }
                Ok(p) => {
                    match self.disk.lookup(s.uri(), &t.full_name(), &p.key) {
                        Some(image) => results.push(Some(Ok(Compiled {
                            uri: s.uri().into(),
                            target: t.full_name(),
                            image,
                            origin: Origin::Disk,
                            key: p.key.clone(),
                            ms: t0.elapsed().as_secs_f64() * 1e3,
                        }))),
                        None => {
                            results.push(None);
                            misses.push(i);
                        }
                    }
                    prepared.push(Some(p));
                }
            }
        }
        if misses.len() >= 2 {
            let (first_spec, target) = items[misses[0]];
            let specs: Vec<&KernelSpec> = misses.iter().map(|&i| &items[i].0).collect();
            let group = template::render_group(&specs, target).and_then(|src| {
                dump(
                    &format!(
                        "group.{}.{}",
                        first_spec.uri(),
                        target.full_name().replace(':', "_")
                    ),
                    &src,
                );
                let p = prepared[misses[0]]
                    .as_ref()
                    .ok_or_else(|| Error::Cache("group without a prepared instance".into()))?;
                run_compiler(&*p.compiler, &src, first_spec.uri(), target, &p.options)
            });
            if let Ok(image) = group {
                for &i in &misses {
                    let (s, t) = items[i];
                    if let Some(p) = &prepared[i] {
                        let r = self.disk.get_or_compile(
                            s.uri(),
                            &t.full_name(),
                            &p.key,
                            &p.cver,
                            || Ok(image.clone()),
                        );
                        results[i] = Some(r.map(|(image, origin)| Compiled {
                            uri: s.uri().into(),
                            target: t.full_name(),
                            image,
                            origin,
                            key: p.key.clone(),
                            ms: t0.elapsed().as_secs_f64() * 1e3 / misses.len() as f64,
                        }));
                    }
                }
            }
        }
        items
            .iter()
            .zip(results)
            .map(|((s, t), r)| match r {
                Some(r) => r,
                None => self.compile(s, t),
            })
            .collect()
    }

    /// The loaded kernel for `spec` on `dev`: memory, then disk, then compile.
    pub fn kernel(&self, dev: &Device, spec: &KernelSpec) -> Result<Arc<Kernel>> {
        if let Some(k) = self.lookup(dev, spec) {
            return Ok(k);
        }
        let target = dev.target();
        let c = self.compile(spec, target)?;
        let t0 = Instant::now();
        let module = match dev.load_module(&c.image) {
            Ok(m) => m,
            Err(e) if c.origin != Origin::Compiled => {
                tracing::warn!(
                    uri = spec.uri(),
                    "cached code object failed to load ({e}); evicting and recompiling"
                );
                self.disk.evict(spec.uri(), &target.full_name(), &c.key);
                let c2 = self.compile(spec, target)?;
                dev.load_module(&c2.image)?
            }
            Err(e) => return Err(e),
        };
        let kernel = Arc::new(Arc::new(module).kernel(&spec.symbol())?);
        tracing::debug!(
            uri = spec.uri(),
            load_ms = t0.elapsed().as_secs_f64() * 1e3,
            "module loaded"
        );
        let mut map = self
            .kernels
            .lock()
            .map_err(|_| Error::Cache("kernel map poisoned".into()))?;
        let per = map.entry(dev.id()).or_default();
        Ok(per.entry(spec.uri().to_string()).or_insert(kernel).clone())
    }

    /// In-process lookup only (about the cost of hashing the URI).
    pub fn lookup(&self, dev: &Device, spec: &KernelSpec) -> Option<Arc<Kernel>> {
        let map = self.kernels.lock().ok()?;
        map.get(&dev.id()).and_then(|m| m.get(spec.uri())).cloned()
    }

    /// Forget loaded kernels (benchmarks use it to measure disk hits).
    pub fn clear_memory(&self) {
        if let Ok(mut m) = self.kernels.lock() {
            m.clear();
        }
    }
}
