//! Autotuning: time candidate instances of one op on the device and keep the fastest.

use crate::error::{Error, Result};
use crate::gpu::Device;

/// Result of timing one candidate.
#[derive(Debug, Clone)]
pub struct Timing {
    pub label: String,
    pub median_ms: f64,
}

/// Median of device-event timings of `run`, after `warmup` untimed calls.
pub fn time_median(
    dev: &Device,
    warmup: usize,
    iters: usize,
    mut run: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let stream = dev.default_stream();
    for _ in 0..warmup {
        run()?;
    }
    let (a, b) = (dev.create_event()?, dev.create_event()?);
    let mut t = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        a.record(&stream)?;
        run()?;
        b.record(&stream)?;
        t.push(b.elapsed_ms_since(&a)? as f64);
    }
    t.sort_by(|x, y| x.total_cmp(y));
    Ok(t[t.len() / 2])
}

/// Time every candidate (label, closure) and return them fastest first. Candidates that fail
/// (e.g. a tile that does not fit) are skipped and reported in the log; all failing is an error.
pub fn pick_fastest(
    dev: &Device,
    candidates: Vec<(String, Box<dyn FnMut() -> Result<()> + '_>)>,
) -> Result<Vec<Timing>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (label, mut f) in candidates {
        match time_median(dev, 3, 20, &mut f) {
            Ok(ms) => out.push(Timing {
                label,
                median_ms: ms,
            }),
            Err(e) => errors.push(format!("{label}: {e}")),
        }
    }
    if out.is_empty() {
        return Err(Error::op(
            "tune",
            format!("every candidate failed: {}", errors.join("; ")),
        ));
    }
    for e in errors {
        tracing::info!("tuning candidate skipped: {e}");
    }
    out.sort_by(|a, b| a.median_ms.total_cmp(&b.median_ms));
    Ok(out)
}

// ---- the sweep driver behind `rocmforge tune` ----

use super::tunedb::{self, Entry, TuneDb};
use serde::Serialize;
use std::collections::BTreeMap;

/// One configuration of a family's tunable parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Short label for tables and plots (e.g. `r4`, `m32.n32.x4.k256`).
    pub label: String,
    /// Parameters as the database stores them.
    pub params: BTreeMap<String, String>,
}

/// One shape of a sweep: the database bucket it stands for and the dimensions measured.
#[derive(Debug, Clone, Serialize)]
pub struct TuneShape {
    pub family: String,
    pub bucket: String,
    /// What was measured, e.g. `q4_K f16 b1 4096x4096`.
    pub label: String,
}

/// What one successful run of a candidate gave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    pub median_ms: f64,
    /// Spread of the timings (half the distance between the 10th and 90th percentile).
    pub spread_ms: f64,
    /// Largest error against the CPU reference, and the op's tolerance for it.
    pub max_err: f64,
    pub tol: f64,
}

/// Why a candidate cannot win.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Failure {
    Compile(String),
    /// The code object spills registers or uses scratch / local memory.
    Spills(String),
    Run(String),
    /// Output beyond the op's tolerance (or not finite).
    Mismatch {
        max_err: f64,
        tol: f64,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Compile(e) => write!(f, "compile error: {}", e.lines().next().unwrap_or("")),
            Failure::Spills(e) => write!(f, "spills: {e}"),
            Failure::Run(e) => write!(f, "run failed: {e}"),
            Failure::Mismatch { max_err, tol } => {
                write!(
                    f,
                    "wrong results: max error {max_err:.3e} > tolerance {tol:.1e}"
                )
            }
        }
    }
}

/// The device side of a sweep: compile candidates, and run + time + check one against the CPU
/// reference. The GPU implementation lives with the CLI; tests drive the selection with a fake.
pub trait SweepBackend: Sync {
    /// Compile `cands` for `shape` (an implementation compiles them together, e.g. with
    /// [`super::Jit::compile_many`]); one result per candidate, in order. Called from a worker thread
    /// in groups while [`SweepBackend::measure`] times the candidates already compiled.
    fn compile(
        &self,
        shape: &TuneShape,
        cands: &[Candidate],
    ) -> Vec<std::result::Result<(), Failure>>;
    /// Run a compiled candidate: warm-up, timed median, and its error against the op's reference.
    fn measure(
        &self,
        shape: &TuneShape,
        cand: &Candidate,
    ) -> std::result::Result<Measured, Failure>;
}

/// One candidate's outcome in a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub candidate: Candidate,
    pub result: std::result::Result<Measured, Failure>,
}

/// The result of sweeping one shape.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeResult {
    pub shape: TuneShape,
    /// In candidate order.
    pub outcomes: Vec<Outcome>,
    pub default: usize,
    /// The candidate that beat the default by more than the spread; None keeps the default.
    pub winner: Option<usize>,
}

impl ShapeResult {
    fn ms(&self, i: usize) -> Option<f64> {
        self.outcomes
            .get(i)?
            .result
            .as_ref()
            .ok()
            .map(|m| m.median_ms)
    }
    /// The default's time, if it ran and matched.
    pub fn default_ms(&self) -> Option<f64> {
        self.ms(self.default)
    }
    /// The chosen configuration's time (the winner's, else the default's).
    pub fn best_ms(&self) -> Option<f64> {
        self.ms(self.winner.unwrap_or(self.default))
    }
    /// Default time over chosen time.
    pub fn speedup(&self) -> Option<f64> {
        Some(self.default_ms()? / self.best_ms()?)
    }
    /// The database entry this sweep gives (None when the default itself failed: nothing to trust).
    pub fn entry(&self) -> Option<Entry> {
        let d = self.outcomes.get(self.default)?.result.as_ref().ok()?;
        let i = self.winner.unwrap_or(self.default);
        let o = self.outcomes.get(i)?;
        let b = o.result.as_ref().ok()?;
        Some(Entry {
            config: o.candidate.params.clone(),
            shape: self.shape.label.clone(),
            is_default: self.winner.is_none(),
            default_ms: d.median_ms,
            best_ms: b.median_ms,
            spread_ms: d.spread_ms.max(b.spread_ms),
            date: tunedb::today(),
        })
    }
    /// Record the outcome in `db` (in memory; the caller saves).
    pub fn record(&self, db: &mut TuneDb) -> bool {
        match self.entry() {
            Some(e) => {
                db.insert(&self.shape.family, &self.shape.bucket, e);
                true
            }
            None => false,
        }
    }
}

/// Candidates compiled together per group by [`sweep`].
pub const COMPILE_GROUP: usize = super::GROUP;

/// Sweep `cands` (with `cands[default]` the op's default) over one shape: compile in groups on a
/// worker thread while timing the ready ones here, check each against the reference, and pick a
/// winner only if it matches and beats the default by more than the measured spread (the larger of
/// the two candidates' spreads). `progress` is called once per candidate finished.
pub fn sweep(
    backend: &dyn SweepBackend,
    shape: &TuneShape,
    cands: &[Candidate],
    default: usize,
    progress: &(dyn Fn(&Outcome) + Sync),
) -> ShapeResult {
    let mut results: Vec<Option<std::result::Result<Measured, Failure>>> = vec![None; cands.len()];
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            for (g, chunk) in cands.chunks(COMPILE_GROUP.max(1)).enumerate() {
                let mut r = backend.compile(shape, chunk);
                r.resize(
                    chunk.len(),
                    Err(Failure::Compile("no result from the compiler".into())),
                );
                for (j, res) in r.into_iter().enumerate() {
                    if tx.send((g * COMPILE_GROUP.max(1) + j, res)).is_err() {
                        return;
                    }
                }
            }
        });
        for (i, compiled) in rx {
            let res = compiled
                .and_then(|()| backend.measure(shape, &cands[i]))
                .and_then(check);
            progress(&Outcome {
                candidate: cands[i].clone(),
                result: res.clone(),
            });
            results[i] = Some(res);
        }
    });
    let outcomes: Vec<Outcome> = cands
        .iter()
        .zip(results)
        .map(|(c, r)| Outcome {
            candidate: c.clone(),
            result: r.unwrap_or_else(|| Err(Failure::Run("not measured".into()))),
        })
        .collect();
    let winner = pick_winner(&outcomes, default);
    ShapeResult {
        shape: shape.clone(),
        outcomes,
        default,
        winner,
    }
}

/// A run counts only with finite times and an error within tolerance.
fn check(m: Measured) -> std::result::Result<Measured, Failure> {
    if !(m.max_err.is_finite() && m.max_err <= m.tol) {
        return Err(Failure::Mismatch {
            max_err: m.max_err,
            tol: m.tol,
        });
    }
    if !(m.median_ms.is_finite() && m.median_ms > 0.0 && m.spread_ms.is_finite()) {
        return Err(Failure::Run(format!("bad timing {} ms", m.median_ms)));
    }
    Ok(m)
}

/// The fastest matching candidate, if it beats the matching default by more than the spread.
pub fn pick_winner(outcomes: &[Outcome], default: usize) -> Option<usize> {
    let d = outcomes.get(default)?.result.as_ref().ok()?;
    let (i, b) = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.result.as_ref().ok().map(|m| (i, m)))
        .min_by(|a, b| a.1.median_ms.total_cmp(&b.1.median_ms))?;
    let spread = d.spread_ms.max(b.spread_ms);
    (i != default && b.median_ms < d.median_ms - spread).then_some(i)
}

/// Median and spread (half the 10th–90th percentile distance) of timings.
pub fn median_spread(t: &mut [f64]) -> (f64, f64) {
    if t.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    t.sort_by(|x, y| x.total_cmp(y));
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    (t[t.len() / 2], (at(0.9) - at(0.1)) / 2.0)
}
