//! KernelSpec → rendered source → code object → loaded kernel.
//!
//! Lookups go memory (a hash of the URI) → disk cache → compiler. Compiling needs no device, so the
//! same path fills a cache for GPUs that are not present (`rocmforge compile --target ...`).

pub mod cache;
pub mod spec;
pub mod template;
pub mod tune;

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
        Jit { disk, kernels: Mutex::new(HashMap::new()) }
    }

    pub fn disk(&self) -> &DiskCache {
        &self.disk
    }

    /// Options for compiling `spec` on `target` with `compiler`.
    pub fn options(&self, compiler: &dyn RtcCompiler, spec: &KernelSpec, target: &Target) -> Vec<String> {
        let mut o = compiler.base_options(target);
        o.push(format!("-DRF_KERNEL_URI=\"{}\"", spec.uri()));
        o
    }

    /// Render and compile (through the disk cache) without a device.
    pub fn compile(&self, spec: &KernelSpec, target: &Target) -> Result<Compiled> {
        let t0 = Instant::now();
        spec.check_target(target)?;
        let compiler = gpu::compiler(target.vendor)?;
        compiler.check_target(target)?;
        let source = template::render(spec, target)?;
        if let Some(dir) = std::env::var_os("ROCMFORGE_DUMP_DIR").filter(|d| !d.is_empty()) {
            let p = std::path::Path::new(&dir).join(format!("{}.{}.hip", spec.uri(), target.full_name().replace(':', "_")));
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&p, &source)) {
                tracing::warn!("ROCMFORGE_DUMP_DIR: {}: {e}", p.display());
            }
        }
        let options = self.options(compiler.as_ref(), spec, target);
        // Include paths differ between machines but not in what they provide for one compiler version.
        let keyed: Vec<String> = options.iter().filter(|o| !o.starts_with("-I")).cloned().collect();
        let cver = format!("{:?} {}", compiler.vendor(), compiler.version());
        let key = cache::cache_key(&source, &keyed, &target.full_name(), &cver);
        let (image, origin) = self.disk.get_or_compile(spec.uri(), &target.full_name(), &key, &cver, || {
            let c0 = Instant::now();
            let out = compiler.compile(&source, &format!("{}.hip", spec.uri()), &options)?;
            match out {
                Ok(code) => {
                    tracing::info!(uri = spec.uri(), target = %target, ms = c0.elapsed().as_secs_f64() * 1e3, "compiled");
                    Ok(code)
                }
                Err(log) => Err(Error::Compile {
                    uri: spec.uri().into(),
                    target: target.full_name(),
                    options: options.join(" "),
                    excerpt: template::excerpt(&source, &log),
                    log,
                }),
            }
        })?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::info!(uri = spec.uri(), target = %target, origin = ?origin, ms, "code object ready");
        Ok(Compiled { uri: spec.uri().into(), target: target.full_name(), image, origin, key, ms })
    }

    /// Compile many (spec, target) pairs in parallel.
    pub fn compile_many(&self, work: &[(KernelSpec, Target)], progress: impl Fn() + Sync) -> Vec<Result<Compiled>> {
        work.par_iter()
            .map(|(s, t)| {
                let r = self.compile(s, t);
                progress();
                r
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
                tracing::warn!(uri = spec.uri(), "cached code object failed to load ({e}); evicting and recompiling");
                self.disk.evict(spec.uri(), &target.full_name(), &c.key);
                let c2 = self.compile(spec, target)?;
                dev.load_module(&c2.image)?
            }
            Err(e) => return Err(e),
        };
        let kernel = Arc::new(Arc::new(module).kernel(&spec.symbol())?);
        tracing::debug!(uri = spec.uri(), load_ms = t0.elapsed().as_secs_f64() * 1e3, "module loaded");
        let mut map = self.kernels.lock().map_err(|_| Error::Cache("kernel map poisoned".into()))?;
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
