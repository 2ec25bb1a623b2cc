//! `rocmforge compile`: compile instances for named targets, in parallel, through the cache.

use indicatif::{ProgressBar, ProgressStyle};
use rocmforge::error::Result;
use rocmforge::gpu::{self, codeobj, Target};
use rocmforge::jit::{Jit, KernelSpec, Origin};
use rocmforge::model::warmup;
use std::collections::BTreeMap;
use std::time::Instant;

/// `*` wildcard match; a pattern without `*` matches as a substring.
pub fn matches(pattern: &str, uri: &str) -> bool {
    if !pattern.contains('*') {
        return uri.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0;
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        match uri[pos..].find(p) {
            Some(at) if i > 0 || at == 0 => pos += at + p.len(),
            _ => return false,
        }
    }
    parts
        .last()
        .is_none_or(|l| l.is_empty() || uri.ends_with(l))
}

/// Every registered instance meant for `t`, filtered by `pattern`.
pub fn instances(t: &Target, pattern: Option<&str>) -> Vec<KernelSpec> {
    rocmforge::ops::families()
        .into_iter()
        .flat_map(|f| KernelSpec::enumerate(f, t.wave_size))
        .filter(|s| (s.family().applies)(s, t))
        .filter(|s| pattern.is_none_or(|p| matches(p, s.uri())))
        .collect()
}

#[derive(Default)]
struct Row {
    instances: usize,
    compiled: usize,
    hits: usize,
    failed: usize,
    ms: f64,
    spills: usize,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    targets: &[String],
    all: bool,
    model: Option<&std::path::Path>,
    pattern: Option<&str>,
    report: bool,
    json: Option<&std::path::Path>,
    deny_spills: bool,
    early: bool,
    group: Option<usize>,
) -> Result<i32> {
    let pattern = if all { None } else { pattern };
    if !all && pattern.is_none() && model.is_none() {
        eprintln!("rocmforge compile: give --all, --model FILE.gguf or --kernel PATTERN");
        return Ok(2);
    }
    let model = match model {
        Some(p) => {
            let g = rocmforge::gguf::GgufFile::open(p)?;
            let cfg = rocmforge::model::config::ModelConfig::from_gguf(&g)?;
            Some((g, cfg))
        }
        None => None,
    };
    let mut work = Vec::new();
    // with --early: the deferred specialized instances, compiled after `work`
    let mut later = Vec::new();
    let mut skipped = Vec::new();
    for name in targets {
        let t = Target::named(name)?;
        match gpu::compiler(t.backend_vendor()).and_then(|c| c.check_target(&t)) {
            Ok(()) => match &model {
                Some((g, cfg)) => {
                    let limits = rocmforge::model::engine::EngineLimits {
                        ctx_size: cfg.context_length.min(4096),
                        page_size: 16,
                        num_pages: 1,
                        max_batch_tokens: 512,
                        max_seqs: 1,
                    };
                    let specs = rocmforge::model::gpu::plan_specs(cfg, g, &t, &limits)?;
                    if early {
                        let (now, defer) =
                            warmup::split(&specs, &t, |s| Jit::global().cached(s, &t))?;
                        work.extend(now.into_iter().map(|s| (s, t.clone())));
                        later.extend(defer.into_iter().map(|(s, _)| (s, t.clone())));
                    } else {
                        work.extend(specs.into_iter().map(|s| (s, t.clone())))
                    }
                }
                None => work.extend(instances(&t, pattern).into_iter().map(|s| (s, t.clone()))),
            },
            Err(e) => skipped.push((name.clone(), e.to_string())),
        }
    }
    let bar = ProgressBar::new(work.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t0 = Instant::now();
    // a model's instances are grouped as a load groups them (about one group per core)
    // --group N: N instances per translation unit
    let group = |n: usize| match (group.filter(|&g| g > 0), model.is_some()) {
        (Some(g), _) => g,
        (None, true) => warmup::group_size(n),
        (None, false) => rocmforge::jit::GROUP,
    };
    let mut results = Jit::global().compile_many_each(&work, group(work.len()), |_, _| bar.inc(1));
    let phases = if early {
        let first = t0.elapsed().as_secs_f64();
        bar.inc_length(later.len() as u64);
        let t1 = Instant::now();
        results
            .extend(Jit::global().compile_many_each(&later, group(later.len()), |_, _| bar.inc(1)));
        Some((work.len(), first, later.len(), t1.elapsed().as_secs_f64()))
    } else {
        None
    };
    work.extend(later);
    bar.finish_and_clear();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut report_rows = Vec::new();
    for ((spec, t), r) in work.iter().zip(&results) {
        let row = rows.entry(t.full_name()).or_default();
        row.instances += 1;
        match r {
            Ok(c) => {
                row.ms += c.ms;
                if c.origin == Origin::Compiled {
                    row.compiled += 1
                } else {
                    row.hits += 1
                }
                if report || json.is_some() || deny_spills {
                    match codeobj::resources(&c.image) {
                        Ok(res) => {
                            for k in res.into_iter().filter(|k| k.name == spec.symbol()) {
                                row.spills += k.spills() as usize;
                                if deny_spills && k.spills() {
                                    failures.push(format!(
                                        "{} [{}]: spills ({} VGPR / {} SGPR spills, {} B scratch)",
                                        spec.uri(),
                                        t.full_name(),
                                        k.vgpr_spills,
                                        k.sgpr_spills,
                                        k.scratch_bytes
                                    ));
                                }
                                report_rows.push((spec.uri().to_string(), t.full_name(), k));
                            }
                        }
                        Err(e) => failures.push(format!(
                            "{} [{}]: resource report: {e}",
                            spec.uri(),
                            t.full_name()
                        )),
                    }
                }
            }
            Err(e) => {
                row.failed += 1;
                failures.push(format!("{} [{}]: {e}", spec.uri(), t.full_name()));
            }
        }
    }
    if report {
        println!(
            "{:<44} {:<24} {:>5} {:>5} {:>5} {:>7} {:>8} {:>6}",
            "kernel", "target", "vgpr", "sgpr", "agpr", "lds", "scratch", "spill"
        );
        for (uri, t, k) in &report_rows {
            println!(
                "{uri:<44} {t:<24} {:>5} {:>5} {:>5} {:>7} {:>8} {:>6}",
                k.vgprs,
                k.sgprs,
                k.agprs,
                k.shared_bytes,
                k.scratch_bytes,
                k.vgpr_spills + k.sgpr_spills
            );
        }
    }
    if let Some(path) = json {
        let v: Vec<_> = report_rows
            .iter()
            .map(|(u, t, k)| serde_json::json!({"kernel": u, "target": t, "resources": k}))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&v).unwrap_or_default())
            .map_err(|e| rocmforge::Error::io(path, e))?;
    }
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10}",
        "target", "instances", "compiled", "cached", "failed", "spills", "cpu-sec"
    );
    for (t, r) in &rows {
        println!(
            "{t:<26} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10.1}",
            r.instances,
            r.compiled,
            r.hits,
            r.failed,
            r.spills,
            r.ms / 1e3
        );
    }
    for t in rows.keys().filter(|t| t.contains('@')) {
        println!("{t:<26} emulated: AMD instances built for an NVIDIA GPU, a test/debug mode (not for speed)");
    }
    for (t, why) in &skipped {
        println!("{t:<26} not compiled: {why}");
    }
    println!(
        "{} instances in {:.1} s wall",
        work.len(),
        t0.elapsed().as_secs_f64()
    );
    if let Some((n1, s1, n2, s2)) = phases {
        println!(
            "serving while compiling: warm-up set {n1} instances in {s1:.1} s wall (a load serves after this), then {n2} deferred specialized instances in {s2:.1} s wall"
        );
    }
    for f in failures.iter().take(40) {
        eprintln!("FAILED {f}");
    }
    Ok(if failures.is_empty() && skipped.is_empty() {
        0
    } else {
        1
    })
}
