//! KernelSpec → rendered source → code object → loaded kernel.
//!
//! Lookups go memory (a hash of the URI) → disk cache → compiler. Compiling needs no device, so the
//! same path fills a cache for GPUs that are not present (`rocmforge compile --target ...`).

pub mod cache;
pub mod early;
pub mod emulate;
pub mod spec;
pub mod template;
pub mod tune;
pub mod tunedb;

pub use cache::{DiskCache, Origin};
pub use early::{Deferred, DeferredStatus};
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
    /// Instances compiling in the background, with the fallbacks that stand in for them.
    deferred: Deferred,
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
            deferred: Deferred::default(),
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
        self.compile_many_each(work, GROUP, |_, _| progress())
    }

    /// [`Jit::compile_many`] with at most `group` instances per translation unit (1: each alone,
    /// the shortest wall time when there are more cores than instances) and `on_done(index, result)`
    /// called as each instance is ready (in the order groups finish).
    pub fn compile_many_each(
        &self,
        work: &[(KernelSpec, Target)],
        group: usize,
        on_done: impl Fn(usize, &Result<Compiled>) + Sync,
    ) -> Vec<Result<Compiled>> {
        let group = group.max(1);
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut index: HashMap<(String, String, String), usize> = HashMap::new();
        for (i, (s, t)) in work.iter().enumerate() {
            let k = (
                s.family().name.to_string(),
                t.full_name(),
                (s.family().preamble)(s),
            );
            match index.get(&k) {
                Some(&g) if groups[g].len() < group => groups[g].push(i),
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
                g.iter().zip(&r).for_each(|(&i, r)| on_done(i, r));
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

    /// Whether `spec`'s code object for `target` is in the disk cache (or loaded in this process).
    pub fn cached(&self, spec: &KernelSpec, target: &Target) -> bool {
        if let Ok(m) = self.kernels.lock() {
            // loaded on a device of this target
            if m.values().any(|per| per.contains_key(spec.uri()))
                && matches!(
                    self.deferred.state(&target.full_name(), spec.uri()),
                    None | Some(early::SlotState::Taken)
                )
            {
                return true;
            }
        }
        self.prepare(spec, target)
            .map(|p| {
                self.disk
                    .lookup(spec.uri(), &target.full_name(), &p.key)
                    .is_some()
            })
            .unwrap_or(false)
    }

    /// Compile `pairs` (specialized instance, fallback) for `target` on a background thread. Until
    /// an instance lands, [`Jit::substitute`] names its fallback, which ops launch instead; a lookup
    /// of the instance itself waits for it. Each landing bumps [`Jit::generation`].
    pub fn defer(
        &'static self,
        target: &Target,
        pairs: &[(KernelSpec, KernelSpec)],
        group: usize,
    ) -> Result<std::thread::JoinHandle<()>> {
        let full = target.full_name();
        for (s, fb) in pairs {
            self.deferred.register(&full, s, fb)?;
        }
        let work: Vec<(KernelSpec, Target)> = pairs
            .iter()
            .map(|(s, _)| (s.clone(), target.clone()))
            .collect();
        std::thread::Builder::new()
            .name("rocmforge-deferred-compile".into())
            .spawn(move || {
                // whatever happens below, nothing stays pending (waiters would wait forever)
                struct Guard<'a>(&'a Deferred, &'a [(KernelSpec, Target)]);
                impl Drop for Guard<'_> {
                    fn drop(&mut self) {
                        for (s, t) in self.1 {
                            self.0.abandon(
                                &t.full_name(),
                                s.uri(),
                                "the compile thread ended early",
                            );
                        }
                    }
                }
                let _guard = Guard(&self.deferred, &work);
                let t0 = Instant::now();
                self.compile_many_each(&work, group, |i, r| {
                    let uri = work[i].0.uri();
                    let full = work[i].1.full_name();
                    self.deferred.land(
                        &full,
                        uri,
                        match r {
                            Ok(c) => Ok(c.image.clone()),
                            Err(e) => Err(e.to_string()),
                        },
                    );
                });
                tracing::info!(
                    instances = work.len(),
                    ms = t0.elapsed().as_secs_f64() * 1e3,
                    "deferred compiles done"
                );
            })
            .map_err(|e| Error::Cache(format!("starting the background compile thread: {e}")))
    }

    /// The instance to launch in place of `spec` on `target` now: its fallback while `spec` is
    /// compiling in the background (see [`Jit::defer`]), else `None` (launch `spec`).
    pub fn substitute(&self, target: &Target, spec: &KernelSpec) -> Option<KernelSpec> {
        if self.deferred.is_idle() {
            return None;
        }
        self.deferred.fallback(&target.full_name(), spec)
    }

    /// Load the deferred instances that landed for `dev`'s target into the memory cache, once none
    /// is pending any more (so that holders of captured graphs capture again once, not after every
    /// landing). Call it between steps: ops switch from a stand-in to its instance only once it is
    /// loaded, so no module is loaded inside a graph capture. Returns how many were loaded; one
    /// that fails to load keeps its stand-in.
    pub fn adopt(&self, dev: &Device) -> usize {
        let full = dev.target().full_name();
        if self.deferred.pending_for(&full) > 0 {
            return 0;
        }
        let mut n = 0;
        for (uri, image) in self.deferred.take_ready(&full) {
            match dev
                .load_module(&image)
                .and_then(|m| Arc::new(m).kernel(&spec::symbol_for(&uri)))
                .and_then(|k| self.remember(dev, &uri, Arc::new(k)))
            {
                Ok(_) => n += 1,
                Err(e) => {
                    tracing::warn!(
                        uri,
                        "landed instance failed to load ({e}); its stand-in stays"
                    );
                    self.deferred.fail(&full, &uri, e.to_string());
                }
            }
        }
        n
    }

    /// The deferred-compile table (status, waiting, tests).
    pub fn deferred(&self) -> &Deferred {
        &self.deferred
    }

    /// Bumped whenever a deferred instance lands: launches captured before must be captured again.
    pub fn generation(&self) -> u64 {
        self.deferred.generation()
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
        if let Some(image) = Some(&self.deferred)
            .filter(|d| !d.is_idle())
            .and_then(|d| d.take_or_wait(&target.full_name(), spec.uri()))
        {
            match dev
                .load_module(&image)
                .and_then(|m| Arc::new(m).kernel(&spec.symbol()))
            {
                Ok(k) => return self.remember(dev, spec.uri(), Arc::new(k)),
                Err(e) => self
                    .deferred
                    .fail(&target.full_name(), spec.uri(), e.to_string()),
            }
        }
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
        self.remember(dev, spec.uri(), kernel)
    }

    /// Keep a loaded kernel in the memory cache (the first one stored wins a race).
    fn remember(&self, dev: &Device, uri: &str, kernel: Arc<Kernel>) -> Result<Arc<Kernel>> {
        let mut map = self
            .kernels
            .lock()
            .map_err(|_| Error::Cache("kernel map poisoned".into()))?;
        let per = map.entry(dev.id()).or_default();
        Ok(per.entry(uri.to_string()).or_insert(kernel).clone())
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
