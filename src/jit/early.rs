//! Serving while compiling: instances whose compile was deferred to a background thread, each with
//! a fallback instance of the same op (same arguments and semantics, a launch shape the op derives
//! from the fallback's own parameters) that compiles fast.
//!
//! An op that picks its default instance asks [`Deferred::fallback`] first: until the instance has
//! landed and been taken (or when its background compile failed) it gets the stand-in and launches
//! that. Every landing bumps the [`Deferred::generation`]; the holder of captured launches (the GPU
//! backend's graphs) then takes the landed code objects between steps ([`Deferred::take_ready`],
//! through `Jit::adopt`), loads them and captures again. A direct lookup of a deferred instance
//! waits for it ([`Deferred::take_or_wait`]). Nothing here compiles: the caller injects the results
//! ([`Deferred::land`]), so the state machine is tested without a compiler.

use super::KernelSpec;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What is known about a deferred instance.
#[derive(Debug, Clone)]
pub enum SlotState {
    /// Compiling on a background thread.
    Pending,
    /// Compiled; the code object waits for its first lookup.
    Ready(Vec<u8>),
    /// Compiled and handed out (the JIT's memory cache holds the kernel now).
    Taken,
    /// The background compile failed: the fallback stays in use.
    Failed(String),
}

#[derive(Debug)]
struct Slot {
    fallback: KernelSpec,
    state: SlotState,
}

/// Counts for reports and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeferredStatus {
    /// Deferred instances still compiling.
    pub pending: usize,
    /// Deferred instances that landed (compiled, in use from the next lookup).
    pub landed: usize,
    /// Deferred instances whose compile failed (their fallback stays in use).
    pub failed: usize,
    /// Landings so far (see [`Deferred::generation`]).
    pub generation: u64,
}

/// Key: (full target name, URI).
type Key = (String, String);

/// The deferred instances of a JIT.
#[derive(Debug, Default)]
pub struct Deferred {
    slots: Mutex<HashMap<Key, Slot>>,
    landed: Condvar,
    generation: AtomicU64,
    /// While set, landed instances are not handed out ([`Deferred::hold`]).
    held: std::sync::atomic::AtomicBool,
    /// Slots not taken yet: 0 lets [`Deferred::fallback`] answer without the lock (every launch
    /// of a qgemm or gemv asks).
    active: std::sync::atomic::AtomicUsize,
}

/// Count the slots not taken (call with the table locked, after changing it).
fn recount(active: &std::sync::atomic::AtomicUsize, m: &HashMap<Key, Slot>) {
    let n = m
        .values()
        .filter(|s| !matches!(s.state, SlotState::Taken))
        .count();
    active.store(n, Ordering::Release);
}

impl Deferred {
    fn lock(&self) -> Result<MutexGuard<'_, HashMap<Key, Slot>>> {
        self.slots
            .lock()
            .map_err(|_| Error::Cache("deferred-compile table poisoned".into()))
    }

    /// Mark `spec` (for the target named `target`) as compiling in the background, with `fallback`
    /// in its place until it lands. An instance already pending keeps its slot; a fallback must not
    /// itself be deferred (no chains).
    pub fn register(&self, target: &str, spec: &KernelSpec, fallback: &KernelSpec) -> Result<()> {
        if spec.uri() == fallback.uri() {
            return Err(Error::Cache(format!(
                "{}: an instance cannot be its own fallback",
                spec.uri()
            )));
        }
        let mut m = self.lock()?;
        if m.contains_key(&(target.to_string(), fallback.uri().to_string())) {
            return Err(Error::Cache(format!(
                "{}: the fallback of {} is itself deferred",
                fallback.uri(),
                spec.uri()
            )));
        }
        m.entry((target.to_string(), spec.uri().to_string()))
            .and_modify(|s| {
                if !matches!(s.state, SlotState::Pending) {
                    s.state = SlotState::Pending;
                    s.fallback = fallback.clone();
                }
            })
            .or_insert(Slot {
                fallback: fallback.clone(),
                state: SlotState::Pending,
            });
        recount(&self.active, &m);
        Ok(())
    }

    /// A background compile finished: its code object (or why it failed). Wakes waiters and bumps
    /// the generation when a code object landed.
    pub fn land(&self, target: &str, uri: &str, result: std::result::Result<Vec<u8>, String>) {
        if let Ok(mut m) = self.slots.lock() {
            if let Some(s) = m.get_mut(&(target.to_string(), uri.to_string())) {
                let ok = result.is_ok();
                s.state = match result {
                    Ok(image) => SlotState::Ready(image),
                    Err(e) => {
                        tracing::warn!(
                            uri,
                            target,
                            "deferred compile failed, the fallback stays: {e}"
                        );
                        SlotState::Failed(e)
                    }
                };
                if ok {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(uri, target, "specialized instance landed");
                }
            }
            recount(&self.active, &m);
        }
        self.landed.notify_all();
    }

    /// The instance to launch instead of `spec` right now: its fallback until `spec` has landed
    /// and been taken ([`Deferred::take_ready`] loads it between steps, never inside a graph
    /// capture); `None` when `spec` is not deferred or has been taken.
    pub fn fallback(&self, target: &str, spec: &KernelSpec) -> Option<KernelSpec> {
        if self.is_idle() {
            return None;
        }
        let m = self.slots.lock().ok()?;
        let s = m.get(&(target.to_string(), spec.uri().to_string()))?;
        match s.state {
            SlotState::Pending | SlotState::Ready(_) | SlotState::Failed(_) => {
                Some(s.fallback.clone())
            }
            SlotState::Taken => None,
        }
    }

    /// Keep the stand-ins in use even after their instances land (`true`), or let the landed
    /// instances be taken again (`false`): tests and measurements of serving on stand-ins.
    pub fn hold(&self, on: bool) {
        self.held.store(on, Ordering::Release);
        if !on {
            // holders of captured launches look at the generation: make them look again
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Every landed code object for `target` not taken yet, as (URI, code object); they count as
    /// taken from here (the caller loads them, or reports a failure with [`Deferred::fail`]).
    /// Nothing while held.
    pub fn take_ready(&self, target: &str) -> Vec<(String, Vec<u8>)> {
        if self.held.load(Ordering::Acquire) {
            return Vec::new();
        }
        let Ok(mut m) = self.slots.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((t, uri), s) in m.iter_mut() {
            if t == target && matches!(s.state, SlotState::Ready(_)) {
                if let SlotState::Ready(image) = std::mem::replace(&mut s.state, SlotState::Taken) {
                    out.push((uri.clone(), image));
                }
            }
        }
        recount(&self.active, &m);
        out
    }

    /// For a lookup of `uri` that missed the memory cache: waits while it is pending, then returns
    /// its landed code object (once; later lookups hit the memory cache). `None`: not deferred, or
    /// its compile failed (the caller compiles it itself and reports the error).
    pub fn take_or_wait(&self, target: &str, uri: &str) -> Option<Vec<u8>> {
        let key = (target.to_string(), uri.to_string());
        let mut m = self.slots.lock().ok()?;
        loop {
            let s = m.get_mut(&key)?;
            match &s.state {
                SlotState::Pending => m = self.landed.wait(m).ok()?,
                SlotState::Ready(_) => {
                    let image = match std::mem::replace(&mut s.state, SlotState::Taken) {
                        SlotState::Ready(image) => Some(image),
                        _ => None,
                    };
                    recount(&self.active, &m);
                    return image;
                }
                SlotState::Taken | SlotState::Failed(_) => return None,
            }
        }
    }

    /// Mark `uri` failed if it is still pending (a background compile that ended without landing
    /// it, e.g. by a panic): waiters wake and its stand-in stays.
    pub fn abandon(&self, target: &str, uri: &str, why: &str) {
        if let Ok(mut m) = self.slots.lock() {
            if let Some(s) = m.get_mut(&(target.to_string(), uri.to_string())) {
                if matches!(s.state, SlotState::Pending) {
                    tracing::warn!(uri, target, "deferred compile abandoned: {why}");
                    s.state = SlotState::Failed(why.to_string());
                }
            }
            recount(&self.active, &m);
        }
        self.landed.notify_all();
    }

    /// A code object handed out by [`Deferred::take_or_wait`] did not load: put it back as failed.
    pub fn fail(&self, target: &str, uri: &str, why: String) {
        if let Ok(mut m) = self.slots.lock() {
            if let Some(s) = m.get_mut(&(target.to_string(), uri.to_string())) {
                s.state = SlotState::Failed(why);
            }
            recount(&self.active, &m);
        }
        self.landed.notify_all();
    }

    /// Block until nothing is pending (bench and tests measure the specialized instances).
    pub fn wait_all(&self) {
        let Ok(mut m) = self.slots.lock() else {
            return;
        };
        while m.values().any(|s| matches!(s.state, SlotState::Pending)) {
            m = match self.landed.wait(m) {
                Ok(m) => m,
                Err(_) => return,
            };
        }
    }

    /// Nothing deferred is waiting to be taken (every op launches its own instance).
    pub fn is_idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    /// Deferred instances for `target` still compiling.
    pub fn pending_for(&self, target: &str) -> usize {
        self.slots
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((t, _), s)| t == target && matches!(s.state, SlotState::Pending))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Bumped by every landing: launches captured before a change must be captured again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn status(&self) -> DeferredStatus {
        let mut st = DeferredStatus {
            generation: self.generation(),
            ..Default::default()
        };
        if let Ok(m) = self.slots.lock() {
            for s in m.values() {
                match s.state {
                    SlotState::Pending => st.pending += 1,
                    SlotState::Ready(_) | SlotState::Taken => st.landed += 1,
                    SlotState::Failed(_) => st.failed += 1,
                }
            }
        }
        st
    }

    /// The state of one instance, if deferred (tests, reports).
    pub fn state(&self, target: &str, uri: &str) -> Option<SlotState> {
        let m = self.slots.lock().ok()?;
        m.get(&(target.to_string(), uri.to_string()))
            .map(|s| s.state.clone())
    }
}

/// Whether serving while compiling is on: `ROCMFORGE_EARLY=off` (or 0, false, no) turns it off.
pub fn enabled_by_env() -> bool {
    !matches!(
        std::env::var("ROCMFORGE_EARLY")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "off" | "0" | "false" | "no"
    )
}
