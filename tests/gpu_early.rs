//! Serving while compiling on the GPU: SmolLM2 loaded with an empty kernel cache answers on the
//! stand-ins (the SIMT qgemm for its four mma tiles per format) while the specialized instances compile in the
//! background; the answer matches the CPU backend; once the specialized instances land, the
//! backend swaps them in (graphs captured again) and the answer still matches the CPU and the
//! first answer. Model: .model/ (ROCMFORGE_MODEL_DIR).

mod common;

use common::hf::cosine;
use rocmforge::gguf::GgufFile;
use rocmforge::jit::early::SlotState;
use rocmforge::jit::{Jit, KernelSpec};
use rocmforge::model::config::ModelConfig;
use rocmforge::model::engine::{Engine, EngineLimits, StepInput, Want};
use rocmforge::model::gpu::plan_specs;
use rocmforge::model::{warmup, DeviceChoice, LoadOptions, Model};
use serial_test::serial;
use std::path::PathBuf;

const CTX: usize = 512;
const BATCH: usize = 256;
const STEPS: usize = 48;

fn smollm() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("ROCMFORGE_MODEL_DIR").unwrap_or_else(|_| ".model".into()));
    let p = dir.join("smollm2-135m-instruct-q4_1.gguf");
    assert!(p.exists(), "{} missing", p.display());
    p
}

fn opts(device: DeviceChoice) -> LoadOptions {
    LoadOptions {
        device,
        ctx_size: Some(CTX),
        max_batch_tokens: BATCH,
        early: true,
        ..Default::default()
    }
}

/// Prefill `prompt` on fresh sequences of both engines and decode STEPS greedy tokens (the CPU's),
/// checking every logits row; returns the GPU's prefill logits of the last position and the worst
/// cosine.
fn answer(cpu: &mut Engine, gpu: &mut Engine, prompt: &[u32]) -> (Vec<f32>, f64) {
    let v = cpu.config.vocab_size;
    let (sc, sg) = (cpu.open(), gpu.open());
    let lc = cpu.prefill(sc, prompt, Want::All).unwrap();
    let lg = gpu.prefill(sg, prompt, Want::All).unwrap();
    let mut worst = 1f64;
    for i in 0..prompt.len() {
        worst = worst.min(cosine(
            &lc.logits_of(0).unwrap()[i * v..][..v],
            &lg.logits_of(0).unwrap()[i * v..][..v],
        ));
    }
    assert!(worst >= 0.9999, "prefill cosine {worst}");
    let last = lg.logits_of(0).unwrap()[(prompt.len() - 1) * v..][..v].to_vec();
    let mut next = lc.last_argmax(0).unwrap();
    let mut agree = 0;
    for step in 0..STEPS {
        let one = |e: &mut Engine, s| {
            e.step(
                &[StepInput {
                    seq: s,
                    tokens: &[next],
                    want: Want::Last,
                }],
                false,
            )
            .unwrap()
        };
        let (a, b) = (one(cpu, sc), one(gpu, sg));
        let c = cosine(a.last_logits(0).unwrap(), b.last_logits(0).unwrap());
        worst = worst.min(c);
        assert!(c >= 0.9999, "decode step {step}: cosine {c}");
        agree += usize::from(a.last_argmax(0) == b.last_argmax(0));
        next = a.last_argmax(0).unwrap();
    }
    assert!(agree + 2 >= STEPS, "greedy tokens agree on {agree}/{STEPS}");
    cpu.free(sc);
    gpu.free(sg);
    (last, worst)
}

/// The plan's instances that have a stand-in (all deferred with an empty cache).
fn deferred_specs(path: &PathBuf) -> Vec<KernelSpec> {
    let dev = common::device();
    let g = GgufFile::open(path).unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    let limits = EngineLimits {
        ctx_size: CTX,
        page_size: 16,
        num_pages: CTX.div_ceil(16),
        max_batch_tokens: BATCH,
        max_seqs: 1,
    };
    let specs = plan_specs(&cfg, &g, dev.target(), &limits).unwrap();
    warmup::split(&specs, dev.target(), |_| false)
        .unwrap()
        .1
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

#[test]
#[ignore = "needs a GPU"]
#[serial]
fn answers_on_stand_ins_then_swaps_in_the_specialized_kernels() {
    // an empty kernel cache for this process (read when the JIT is first used)
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("ROCMFORGE_CACHE_DIR", cache.path());
    let path = smollm();
    let dev = common::device();
    let target = dev.target().clone();
    let jit = Jit::global();
    assert!(
        jit.disk()
            .root()
            .is_some_and(|r| r.starts_with(cache.path())),
        "the JIT must use the empty cache (is ROCMFORGE_CACHE=off set?)"
    );
    let cpu_model = Model::load(&path, &opts(DeviceChoice::Cpu)).unwrap();
    let prompt = cpu_model
        .tokenize("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable metal type, oil-based ink and a wooden screw press. Within fifty years")
        .unwrap();
    let mut cpu = cpu_model.engine;

    // phase 1: the stand-ins (landings held back so that the first answer surely runs on them)
    jit.deferred().hold(true);
    let gm = Model::load(&path, &opts(DeviceChoice::Gpu(None, 0))).unwrap();
    let st = gm.load_stats.clone();
    let mut gpu = gm.engine;
    eprintln!("{}", st.warmup_line());
    let deferred = deferred_specs(&path);
    assert!(st.early);
    assert_eq!(st.kernels_deferred, deferred.len(), "{st:?}");
    assert!(
        st.kernels_deferred >= 3,
        "qgemm mma tiles of each format: {st:?}"
    );
    assert_eq!(st.kernels_cached, 0, "the cache was empty");
    for s in &deferred {
        assert!(jit.substitute(&target, s).is_some(), "{s}: stand-in in use");
    }
    let (first, worst1) = answer(&mut cpu, &mut gpu, &prompt);
    for s in &deferred {
        assert!(
            jit.substitute(&target, s).is_some(),
            "{s}: still the stand-in while held"
        );
    }
    let replays1 = gpu.counters().graph_replays;
    assert!(replays1 > 0, "decode replays graphs on the stand-ins");

    // phase 2: let the specialized instances land and be swapped in
    jit.deferred().hold(false);
    jit.deferred().wait_all();
    let ds = jit.deferred().status();
    assert_eq!((ds.pending, ds.failed), (0, 0), "{ds:?}");
    let (second, worst2) = answer(&mut cpu, &mut gpu, &prompt);
    for s in &deferred {
        assert!(
            jit.substitute(&target, s).is_none(),
            "{s}: the specialized instance runs"
        );
        assert!(
            matches!(
                jit.deferred().state(&target.full_name(), s.uri()),
                Some(SlotState::Taken)
            ),
            "{s}: loaded by the backend"
        );
    }
    let k = gpu.counters();
    assert!(
        k.graph_replays > replays1 + STEPS as u64 / 2,
        "graphs captured again: {k:?}"
    );
    let same = cosine(&first, &second);
    eprintln!(
        "stand-ins vs CPU cosine min {worst1:.6}; specialized vs CPU {worst2:.6}; stand-ins vs specialized (last prefill row) {same:.6}; {} deferred instances landed",
        deferred.len()
    );
    assert!(same >= 0.9999, "stand-ins vs specialized: cosine {same}");
}
