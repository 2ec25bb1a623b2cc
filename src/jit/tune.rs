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
