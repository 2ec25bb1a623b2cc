//! Model-driven warm-up: compile exactly the instances a model's plan names (tuned configurations
//! where the tuning database has them) on a thread while the weights upload, and report it.
//!
//! Serving while compiling (`early`): an instance of the plan that is not in the disk cache and has
//! a fast-compiling stand-in (`ops::fallback`) is not compiled at load: its stand-in is, and the
//! instance itself compiles on a background thread after the load ([`Jit::defer`]). Ops launch the
//! stand-in until it lands; the GPU backend captures its graphs again when the JIT's generation
//! moves.

use super::runtime::LoadStats;
use crate::error::{Error, Result};
use crate::gpu::Target;
use crate::jit::{Jit, KernelSpec, Origin, GROUP};
use crate::ops::fallback;
use std::thread::JoinHandle;
use std::time::Instant;

/// What the warm-up thread did.
struct Done {
    compiled: usize,
    cached: usize,
    deferred: usize,
    fast: usize,
    end: Instant,
}

/// A running warm-up.
pub struct Warmup {
    start: Instant,
    instances: usize,
    early: bool,
    handle: JoinHandle<Result<Done>>,
}

/// Instances per translation unit for `n` instances on this machine: grouping amortizes the
/// compiler's fixed cost, splitting uses every core; aim for about one group per core.
pub fn group_size(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1))
        .clamp(1, GROUP)
}

/// A deferred instance and the stand-in that runs until it lands.
pub type Deferral = (KernelSpec, KernelSpec);

/// Split `specs` into the set compiled now and the (instance, stand-in) pairs deferred: an instance
/// is deferred when it has a stand-in and `cached` says its code object is not at hand.
pub fn split(
    specs: &[KernelSpec],
    target: &Target,
    cached: impl Fn(&KernelSpec) -> bool,
) -> Result<(Vec<KernelSpec>, Vec<Deferral>)> {
    let mut now: Vec<KernelSpec> = Vec::new();
    let mut later = Vec::new();
    for s in specs {
        let pick = match fallback::fallback(s, target)? {
            Some(fb) if !cached(s) => {
                later.push((s.clone(), fb.clone()));
                fb
            }
            _ => s.clone(),
        };
        if !now.contains(&pick) {
            now.push(pick);
        }
    }
    Ok((now, later))
}

impl Warmup {
    /// Start compiling `specs` for `target` on a thread.
    pub fn start(specs: Vec<KernelSpec>, target: Target, early: bool) -> Result<Warmup> {
        let start = Instant::now();
        let instances = specs.len();
        let handle = std::thread::Builder::new()
            .name("rocmforge-warmup".into())
            .spawn(move || -> Result<Done> {
                let jit = Jit::global();
                let (now, later) = if early {
                    split(&specs, &target, |s| jit.cached(s, &target))?
                } else {
                    (specs, Vec::new())
                };
                let work: Vec<(KernelSpec, Target)> =
                    now.iter().map(|s| (s.clone(), target.clone())).collect();
                let results = jit.compile_many_each(&work, group_size(work.len()), |_, _| {});
                let (mut compiled, mut cached) = (0, 0);
                for r in results {
                    match r?.origin {
                        Origin::Compiled => compiled += 1,
                        _ => cached += 1,
                    }
                }
                let end = Instant::now();
                if !later.is_empty() {
                    let group = group_size(later.len());
                    // the handle is not joined: the thread ends when its compiles land
                    drop(jit.defer(&target, &later, group)?);
                }
                Ok(Done {
                    compiled,
                    cached,
                    deferred: later.len(),
                    fast: now.len(),
                    end,
                })
            })
            .map_err(|e| Error::Model(format!("starting the kernel warm-up thread: {e}")))?;
        Ok(Warmup {
            start,
            instances,
            early,
            handle,
        })
    }

    /// Wait for the warm-up compiles and fill `stats`; `upload` is when the weight upload started
    /// and ended (for the overlap).
    pub fn finish(self, upload: (Instant, Instant), stats: &mut LoadStats) -> Result<()> {
        let done = self
            .handle
            .join()
            .map_err(|_| Error::Model("the kernel warm-up thread panicked".into()))??;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        stats.kernels = self.instances;
        stats.kernels_compiled = done.compiled;
        stats.kernels_cached = done.cached;
        stats.kernels_deferred = done.deferred;
        stats.kernels_warmed = done.fast;
        stats.early = self.early;
        stats.compile_ms = ms(done.end.duration_since(self.start));
        stats.upload_ms = ms(upload.1.duration_since(upload.0));
        let (a, b) = (self.start.max(upload.0), done.end.min(upload.1));
        stats.overlap_ms = if b > a { ms(b.duration_since(a)) } else { 0.0 };
        stats.tuned = crate::jit::tunedb::used();
        Ok(())
    }
}
