//! Server metrics in Prometheus text format: requests by endpoint and status, prompt and generated
//! tokens, time-to-first-token and inter-token latency histograms, running and waiting sequences, KV
//! pages, prefix reuse, preemptions, engine steps and the kernels the load compiled.
//!
//! The HTTP layer records requests; the scheduler records tokens and latencies as they happen and
//! publishes its gauges after every step.

use crate::model::kv::KvStats;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// A cumulative histogram with fixed upper bounds (seconds).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound plus the +Inf bucket (not cumulative; summed when rendered).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cum = 0u64;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

const TTFT_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const ITL_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// What the scheduler publishes after each step.
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedulerGauges {
    /// Sequences with KV pages (decoding or prefilling).
    pub running: usize,
    /// Requests queued (new or preempted) without KV pages.
    pub waiting: usize,
    pub kv: KvStats,
    pub steps: u64,
    pub step_tokens: u64,
}

#[derive(Debug)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    finished: BTreeMap<&'static str, u64>,
    prompt_tokens: u64,
    generated_tokens: u64,
    ttft: Histogram,
    itl: Histogram,
    gauges: SchedulerGauges,
    preemptions: u64,
    cancelled: u64,
    kernels_compiled: usize,
    kernels_cached: usize,
    load: Option<crate::model::runtime::LoadStats>,
}

/// All counters of one server.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counters at zero; `kernels_*` are the model load's figures.
    pub fn new(kernels_compiled: usize, kernels_cached: usize) -> Self {
        Metrics {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                finished: BTreeMap::new(),
                prompt_tokens: 0,
                generated_tokens: 0,
                ttft: Histogram::new(TTFT_BOUNDS),
                itl: Histogram::new(ITL_BOUNDS),
                gauges: SchedulerGauges::default(),
                preemptions: 0,
                cancelled: 0,
                kernels_compiled,
                kernels_cached,
                load: None,
            }),
        }
    }

    /// The model load's warm-up figures (instances, deferred, compile and overlap times, tuned
    /// entries), rendered with the live state of the deferred compiles.
    pub fn set_load(&self, stats: &crate::model::runtime::LoadStats) {
        self.with(|m| {
            m.kernels_compiled = stats.kernels_compiled;
            m.kernels_cached = stats.kernels_cached;
            m.load = Some(stats.clone());
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters; keep counting.
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// One HTTP response.
    pub fn request(&self, endpoint: &str, status: u16) {
        self.with(|m| {
            *m.requests
                .entry((endpoint.to_string(), status))
                .or_insert(0) += 1
        });
    }
    /// A request admitted for generation with this many prompt tokens.
    pub fn prompt_tokens(&self, n: usize) {
        self.with(|m| m.prompt_tokens += n as u64);
    }
    /// One generated token; `ttft` for the first of a request, else the gap since the previous one.
    pub fn token(&self, ttft: Option<Duration>, itl: Option<Duration>) {
        self.with(|m| {
            m.generated_tokens += 1;
            if let Some(t) = ttft {
                m.ttft.observe(t.as_secs_f64());
            }
            if let Some(t) = itl {
                m.itl.observe(t.as_secs_f64());
            }
        });
    }
    /// A request ended: "stop", "length", "cancelled" (client gone), "error", "shutdown".
    pub fn finished(&self, reason: &'static str) {
        self.with(|m| {
            *m.finished.entry(reason).or_insert(0) += 1;
            if reason == "cancelled" {
                m.cancelled += 1;
            }
        });
    }
    pub fn preempted(&self) {
        self.with(|m| m.preemptions += 1);
    }
    pub fn publish(&self, g: SchedulerGauges) {
        self.with(|m| m.gauges = g);
    }
    pub fn gauges(&self) -> SchedulerGauges {
        self.with(|m| m.gauges)
    }
    pub fn generated_tokens(&self) -> u64 {
        self.with(|m| m.generated_tokens)
    }

    /// Everything in Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut o = String::new();
            let counter = |o: &mut String, name: &str, help: &str, v: u64| {
                let _ = writeln!(o, "# HELP {name} {help}");
                let _ = writeln!(o, "# TYPE {name} counter");
                let _ = writeln!(o, "{name} {v}");
            };
            let gauge = |o: &mut String, name: &str, help: &str, v: u64| {
                let _ = writeln!(o, "# HELP {name} {help}");
                let _ = writeln!(o, "# TYPE {name} gauge");
                let _ = writeln!(o, "{name} {v}");
            };
            let gauge_f = |o: &mut String, name: &str, help: &str, v: f64| {
                let _ = writeln!(o, "# HELP {name} {help}");
                let _ = writeln!(o, "# TYPE {name} gauge");
                let _ = writeln!(o, "{name} {v:.6}");
            };
            let _ = writeln!(
                o,
                "# HELP rocmforge_requests_total HTTP requests by endpoint and status."
            );
            let _ = writeln!(o, "# TYPE rocmforge_requests_total counter");
            for ((ep, st), n) in &m.requests {
                let _ = writeln!(
                    o,
                    "rocmforge_requests_total{{endpoint=\"{ep}\",status=\"{st}\"}} {n}"
                );
            }
            let _ = writeln!(
                o,
                "# HELP rocmforge_requests_finished_total Generation requests by how they ended."
            );
            let _ = writeln!(o, "# TYPE rocmforge_requests_finished_total counter");
            for (r, n) in &m.finished {
                let _ = writeln!(o, "rocmforge_requests_finished_total{{reason=\"{r}\"}} {n}");
            }
            counter(
                &mut o,
                "rocmforge_prompt_tokens_total",
                "Prompt tokens of admitted requests.",
                m.prompt_tokens,
            );
            counter(
                &mut o,
                "rocmforge_generation_tokens_total",
                "Generated tokens.",
                m.generated_tokens,
            );
            m.ttft.render(
                &mut o,
                "rocmforge_time_to_first_token_seconds",
                "Time from request arrival to its first generated token.",
            );
            m.itl.render(
                &mut o,
                "rocmforge_inter_token_latency_seconds",
                "Time between consecutive generated tokens of a request.",
            );
            let g = &m.gauges;
            gauge(
                &mut o,
                "rocmforge_requests_running",
                "Sequences holding KV pages (decoding or prefilling).",
                g.running as u64,
            );
            gauge(
                &mut o,
                "rocmforge_requests_waiting",
                "Requests queued for KV pages (new or preempted).",
                g.waiting as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kv_pages_total",
                "KV cache pages.",
                g.kv.pages_total as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kv_pages_used",
                "KV cache pages referenced by sequences.",
                g.kv.pages_used as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kv_pages_free",
                "KV cache pages free (cached prefix pages included).",
                g.kv.pages_free as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kv_page_size",
                "Tokens per KV page.",
                g.kv.page_size as u64,
            );
            counter(
                &mut o,
                "rocmforge_prefix_cache_tokens_reused_total",
                "Prompt tokens whose KV came from cached prefix pages.",
                g.kv.prefix_tokens_reused,
            );
            gauge(
                &mut o,
                "rocmforge_prefix_cache_pages",
                "Full pages registered in the prefix index.",
                g.kv.prefix_pages_cached as u64,
            );
            counter(
                &mut o,
                "rocmforge_preemptions_total",
                "Sequences preempted (pages freed, recomputed later).",
                m.preemptions,
            );
            counter(
                &mut o,
                "rocmforge_cancelled_total",
                "Requests whose client went away before the end.",
                m.cancelled,
            );
            counter(
                &mut o,
                "rocmforge_engine_steps_total",
                "Forward steps run.",
                g.steps,
            );
            counter(
                &mut o,
                "rocmforge_engine_step_tokens_total",
                "Tokens processed by forward steps.",
                g.step_tokens,
            );
            gauge(
                &mut o,
                "rocmforge_kernels_compiled",
                "Kernels compiled while loading the model (0 with a warm cache or on the CPU).",
                m.kernels_compiled as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kernels_cached",
                "Kernels loaded from the disk cache while loading the model.",
                m.kernels_cached as u64,
            );
            if let Some(l) = &m.load {
                gauge(
                    &mut o,
                    "rocmforge_kernels_planned",
                    "Kernel instances the model's plan names.",
                    l.kernels as u64,
                );
                gauge(
                    &mut o,
                    "rocmforge_kernels_deferred",
                    "Specialized instances whose compile was deferred to the background at load (serving while compiling).",
                    l.kernels_deferred as u64,
                );
                gauge(
                    &mut o,
                    "rocmforge_kernels_tuned_entries",
                    "Tuned entries (rocmforge tune) the model's plan uses.",
                    l.tuned.len() as u64,
                );
                gauge_f(
                    &mut o,
                    "rocmforge_load_compile_seconds",
                    "Wall time of the kernel warm-up compiles at load.",
                    l.compile_ms / 1e3,
                );
                gauge_f(
                    &mut o,
                    "rocmforge_load_compile_overlap_seconds",
                    "Part of the warm-up compile time that overlapped the weight upload.",
                    l.overlap_ms / 1e3,
                );
            }
            let d = crate::jit::Jit::global().deferred().status();
            gauge(
                &mut o,
                "rocmforge_kernels_pending",
                "Deferred specialized instances still compiling (their stand-ins run meanwhile).",
                d.pending as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kernels_landed",
                "Deferred specialized instances that finished compiling.",
                d.landed as u64,
            );
            gauge(
                &mut o,
                "rocmforge_kernel_generation",
                "Landings of deferred instances so far (captured graphs are recaptured after each).",
                d.generation,
            );
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.1\"} 1\n"));
        assert!(s.contains("x_bucket{le=\"1\"} 3\n"));
        assert!(s.contains("x_bucket{le=\"+Inf\"} 4\n"));
        assert!(s.contains("x_count 4\n"));
    }
}
