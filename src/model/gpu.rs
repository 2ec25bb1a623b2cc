//! The GPU backend: weights stay in their GGUF formats on the device (the fused GEMV/GEMM kernels
//! read them), one device pool holds weights, KV pages and activation scratch, and a step is a
//! fixed sequence of launches on one stream with no host synchronisation until its outputs are
//! read. Decode steps (one token per sequence) are captured once per (sequences, KV-length bucket)
//! as a graph and replayed: their inputs live in fixed device buffers refreshed by async copies
//! from pinned memory before each replay.

use super::arch::Activation;
use super::batch::ForwardBatch;
use super::config::{layer_tensor, ModelConfig};
use super::engine::EngineLimits;
use super::runtime::LoadStats;
use super::{Backend, MemoryReport, StepResult};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::gpu::blas::Blas;
use crate::gpu::{Buffer, Device, GraphExec, PinnedBuffer, Pool, Stream, Target};
use crate::jit::{Jit, KernelSpec};
use crate::ops::attention::decode::{self, DecodePlan};
use crate::ops::attention::kv_cache::{self, Append};
use crate::ops::attention::prefill;
use crate::ops::attention::rope::Rope;
use crate::ops::attention::{AttnParams, Batch, PagedCache, PagedLayout};
use crate::ops::mlp::activation::{self, Act};
use crate::ops::mlp::linear::{linear, linear_blas, LinearPath};
use crate::ops::mlp::{embedding, norm, qgemm};
use crate::ops::quantized::{gemv, gemv_norm, gemv_q8};
use crate::ops::{glue, sampling};
use crate::quant::QuantType;
use half::f16;
use std::collections::HashMap;

/// Logits rows computed per launch of the output projection (bounds the logits scratch).
const LOGIT_ROWS: usize = 256;
/// Steps of at most this many tokens run their GEMVs on 8-bit activations (`gemv_q8`: integer dot
/// products, at the memory roofline where the float GEMV is instruction-bound); above it the float
/// GEMV's matrix-core tile is faster (docs/PERF.md, "Decode GEMV on 8-bit activations").
pub const Q8_MAX_ROWS: usize = 4;

struct Linear {
    w: Buffer<u8>,
    fmt: QuantType,
    n: usize,
    k: usize,
}

struct Layer {
    attn_norm: Buffer<f32>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    bias: Option<[Buffer<f16>; 3]>,
    qk_norm: Option<[Buffer<f16>; 2]>,
    post: Option<[Buffer<f32>; 2]>,
    ffn_norm: Buffer<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
    /// q, k and v (and gate and up) as one matrix when they share a format: the separate ones
    /// are views of its rows, and single-token steps run one GEMV instead of three (two).
    qkv: Option<Linear>,
    gate_up: Option<Linear>,
    k_cache: Buffer<f16>,
    v_cache: Buffer<f16>,
}

/// Activation scratch for up to `t` tokens.
struct Scratch {
    x: Buffer<f32>,
    /// The residual stream's other buffer (one row): a fused input norm (`gemv_norm`) writes the
    /// sum there while other blocks still read x, and the two swap.
    x2: Buffer<f32>,
    h: Buffer<f16>,
    q: Buffer<f16>,
    k: Buffer<f16>,
    v: Buffer<f16>,
    qn: Buffer<f16>,
    kn: Buffer<f16>,
    attn: Buffer<f16>,
    o: Buffer<f16>,
    g: Buffer<f16>,
    u: Buffer<f16>,
    a: Buffer<f16>,
    rows_h: Buffer<f16>,
    logits: Buffer<f16>,
    /// The current GEMV input quantized to 8 bits (gemv_q8::act_bytes of Q8_MAX_ROWS rows).
    xq: Buffer<u8>,
    /// The fused 8-bit decode path's second 8-bit buffer (one row; `GpuBackend::fuse_q8`): a
    /// GEMV's epilogue writes the next input there while its other blocks still read `xq`.
    xq2: Buffer<u8>,
    /// Per-16 sums of squares of the residual stream, from a `resid` epilogue to the next norm.
    ssq: Buffer<f32>,
    // step inputs (device side) and outputs
    ids: Buffer<i32>,
    pos: Buffer<i32>,
    cu: Buffer<i32>,
    ctx: Buffer<i32>,
    kvl: Buffer<i32>,
    bt: Buffer<i32>,
    out_rows: Buffer<i32>,
    amax: Buffer<i32>,
}

/// A captured decode step and the plan it was captured with.
struct Captured {
    exec: GraphExec,
}

/// The GPU backend.
pub struct GpuBackend {
    dev: Device,
    stream: Stream,
    cfg: ModelConfig,
    limits: EngineLimits,
    pool: Pool,
    emb: (Buffer<u8>, QuantType),
    out: Linear,
    out_norm: Buffer<f32>,
    layers: Vec<Layer>,
    s: Scratch,
    layout: PagedLayout,
    /// Pinned staging: step inputs (ints) and outputs.
    pin_in: PinnedBuffer<i32>,
    pin_amax: PinnedBuffer<i32>,
    pin_logits: PinnedBuffer<f16>,
    plans: HashMap<(usize, usize), DecodePlan>,
    /// Captured decode steps by (sequences, KV-length bucket, output rows).
    graphs: HashMap<(usize, usize, usize), Captured>,
    /// Decode shapes seen once (captured the second time, after every kernel is loaded).
    seen: HashMap<(usize, usize, usize), u32>,
    weight_bytes: usize,
    kv_bytes: usize,
    scratch_bytes: usize,
    /// Launch count of the last step (eager) and graph replays so far.
    pub launches_last_step: usize,
    pub graph_replays: u64,
    use_graphs: bool,
    /// Decode-step fusions (`GpuOptions::fuse`, `ROCMFORGE_FUSE=glu|merge|on|off`): (the GLU
    /// epilogue of the gate/up GEMV, the merge inside the attention launch; None: with the
    /// matrix-core decode kernel only).
    fuse: (bool, Option<bool>),
    /// RoPE and the KV append inside the decode attention launch (`decode::decode_append`; one launch
    /// a layer fewer): on unless `GpuOptions::fuse` is `Some(false)`, `ROCMFORGE_FUSE=off` or
    /// `ROCMFORGE_FUSE_APPEND=off`.
    fuse_append: bool,
    /// Single-sequence decode steps make the residual add and RMSNorm in front of the q/k/v and
    /// gate/up GEMVs inside those GEMVs' blocks (`gemv_norm`; two launches a layer fewer) where their
    /// kernel is `gemv_wave`: on unless `GpuOptions::fuse` is `Some(false)`, `ROCMFORGE_FUSE=off` or
    /// `ROCMFORGE_FUSE_NORM=off`.
    fuse_norm: bool,
    /// Single-sequence decode steps on 8-bit activations (the large models) make the residual adds,
    /// the norms and the gated activation in the GEMVs' epilogues and inputs (`gemv_q8_fused`;
    /// [`q8_fusable`]): on with [`Self::fuse_norm`].
    fuse_q8: bool,
    /// The fused 8-bit path's gate/up GEMV makes the gated activation too (the `norm_silu` /
    /// `norm_gelu` forms; `ROCMFORGE_Q8_FUSED_GLU=on`): off by default, slower on the H200 (docs/PERF.md).
    q8_glu: bool,
    /// The step last launched ran the fused 8-bit path: its logits GEMV applies the output norm's
    /// 1/rms.
    q8_step: std::sync::atomic::AtomicBool,
    /// The JIT generation the graphs were captured at (a landed deferred instance moves it).
    jit_generation: u64,
    /// GEMVs of small steps on 8-bit activations ([`q8_policy`]).
    use_q8: bool,
    /// The output projection on 8-bit activations too (a quantize launch per layer;
    /// ROCMFORGE_Q8_ATTN_OUT=off keeps it on f16).
    q8_attn_out: bool,
    /// Prefill matrices as dequantize + vendor BLAS ([`PREFILL_BLAS_MIN_ROWS`]).
    prefill_blas: Option<PrefillBlas>,
    /// Set while a step of decode-only tokens is launched (it may be captured into a graph: the
    /// BLAS path stays out of those).
    in_decode: std::sync::atomic::AtomicBool,
}

/// Prefill steps of at least this many tokens run their layer matrices of at least
/// [`PREFILL_BLAS_LARGE`] weights as dequantize + vendor BLAS GEMM (when [`prefill_blas_policy`]
/// allows and the library loads); smaller matrices from [`PREFILL_BLAS_MIN_ROWS_SMALL`] tokens on.
/// Measured on the H200 (docs/PERF.md, sixth session, `bench --no-early-serve`): on a Llama-3-8B
/// shape the fused `qgemm` (its register tile) wins up to 32 tokens (pp32 2886 vs 2519 t/s) and
/// loses from 48 on (pp48 3403 vs 3733); on SmolLM2's small matrices, where the two launches of
/// dequantize + BLAS dominate, it wins up to 256 tokens (pp256 80051 vs 61186) and loses at 512
/// (134751 vs 143814). `ROCMFORGE_PREFILL_BLAS_MIN` sets one threshold for every matrix.
pub const PREFILL_BLAS_MIN_ROWS: usize = 48;
/// The threshold of matrices below [`PREFILL_BLAS_LARGE`] weights.
pub const PREFILL_BLAS_MIN_ROWS_SMALL: usize = 512;
/// Weights (N·K) from which a matrix counts as large for the prefill BLAS threshold.
pub const PREFILL_BLAS_LARGE: usize = 1 << 22;

/// The built-in choice of dequantize + BLAS for an [n, k] matrix in a prefill step of `m` tokens
/// (`min_rows`: the `ROCMFORGE_PREFILL_BLAS_MIN` override).
pub fn prefill_blas_default(m: usize, n: usize, k: usize, min_rows: Option<usize>) -> bool {
    let min = min_rows.unwrap_or(if n * k >= PREFILL_BLAS_LARGE {
        PREFILL_BLAS_MIN_ROWS
    } else {
        PREFILL_BLAS_MIN_ROWS_SMALL
    });
    m >= min
}

/// Whether prefill may use the vendor BLAS: `ROCMFORGE_PREFILL_BLAS=off` keeps the fused `qgemm`
/// everywhere; by default (`auto`) it is used when cuBLAS / hipBLAS loads. Emulated AMD targets
/// (a test mode for the AMD kernels) keep `qgemm`, which is what they exist to check.
pub fn prefill_blas_policy(target: &Target) -> bool {
    match std::env::var("ROCMFORGE_PREFILL_BLAS")
        .as_deref()
        .map(str::trim)
    {
        Ok("off") | Ok("0") => false,
        _ => target.emulation.is_none(),
    }
}

/// The dequantize + BLAS prefill path: the handle and the f16 scratch one matrix is dequantized into.
struct PrefillBlas {
    blas: Blas,
    w16: Buffer<f16>,
    /// `ROCMFORGE_PREFILL_BLAS_MIN`: one threshold for every matrix instead of the built-in pair.
    min_rows: Option<usize>,
    /// The fused GEMM's path on this target (the tuning database's qgemm buckets are per path).
    qgemm_path: &'static str,
}

/// Weights above which decode is bandwidth-bound enough for the 8-bit-activation GEMV to pay: on
/// the H200 it gives Llama-3-8B-shaped models 1.4-2x the decode speed of the float GEMV, and the
/// 135M/270M models nothing (their steps are launch-bound) while costing accuracy (docs/PERF.md).
const Q8_AUTO_BYTES: u64 = 1 << 30;

/// Whether small steps of this model use the 8-bit-activation GEMV: `ROCMFORGE_Q8=on|off`, by
/// default (`auto`) when its weights exceed [`Q8_AUTO_BYTES`].
pub fn q8_policy(g: &GgufFile) -> bool {
    match std::env::var("ROCMFORGE_Q8").as_deref().map(str::trim) {
        Ok("on") | Ok("1") => true,
        Ok("off") | Ok("0") => false,
        _ => g.tensors().iter().map(|t| t.n_bytes() as u64).sum::<u64>() > Q8_AUTO_BYTES,
    }
}

fn align(b: usize) -> usize {
    b.div_ceil(256) * 256
}

/// Whether matrices of these byte lengths and formats are uploaded as one stacked matrix (the
/// loader's `mats`): they share a format and each ends on a 16-byte boundary (the kernels want
/// 16-byte aligned matrices).
fn stacks(parts: &[(QuantType, usize)]) -> bool {
    parts.len() > 1
        && parts
            .iter()
            .all(|&(ty, bytes)| ty == parts[0].0 && bytes % 16 == 0)
}

/// Whether a single-token step runs the stacked gate/up GEMV (format `fmt`, `k` columns) fused
/// with the gated activation (`gemv::gemv_glu`, one launch in place of two): where that GEMV takes
/// the float path of `GpuBackend::lin_with` (not `gemv_q8` on the 8-bit scratch) and no 8-bit copy
/// of the activation is wanted (`glue::gated` writes it for the down projection's `gemv_q8`).
fn glu_fusable(q8: bool, fmt: QuantType, k: usize, ff: usize) -> bool {
    !q8 || (!(gemv_q8::supports(fmt) && k % 32 == 0) && ff % 32 != 0)
}

/// The formats and shapes a layer's decode GEMVs run on, for [`q8_fusable`]: (q/k/v as one stacked
/// matrix, or each), o, the stacked gate/up (if any) and down.
#[derive(Clone)]
struct LayerMats {
    qkv: Vec<QuantType>,
    o: QuantType,
    gate_up: Option<QuantType>,
    down: QuantType,
}

impl LayerMats {
    fn of(l: &Layer) -> LayerMats {
        LayerMats {
            qkv: match &l.qkv {
                Some(f) => vec![f.fmt],
                None => vec![l.q.fmt, l.k.fmt, l.v.fmt],
            },
            o: l.o.fmt,
            gate_up: l.gate_up.as_ref().map(|f| f.fmt),
            down: l.down.fmt,
        }
    }
}

/// Whether a model's single-sequence decode steps can take the fused 8-bit path
/// (`gemv_q8::gemv_q8_fused`): the output and down projections add their result to the residual
/// stream and write the next norm's 8-bit input (without its 1/rms, which the q/k/v, gate/up and
/// logits GEMVs apply), and the stacked gate/up GEMV writes the gated activation's. It needs every
/// GEMV on `gemv_q8`, stacked gate/up matrices, rows of multiples of 32, and no post-norms (Gemma 3's
/// residual adds a normalized r).
fn q8_fusable(
    cfg: &ModelConfig,
    mut layers: impl Iterator<Item = LayerMats>,
    out: QuantType,
    target: &Target,
) -> bool {
    let ok = |ty: QuantType| gemv_q8::supports(ty);
    // the forms with an 8-bit output have an instance for this target's wave size
    let form = |ty: QuantType, rows: usize, fuse: &str| {
        ok(ty) && gemv_q8::fused_spec(ty, rows, fuse, None, target).is_ok()
    };
    let glu = q8_glu_form(cfg);
    !cfg.post_norms
        && [cfg.d_model, cfg.d_ff, cfg.q_dim()]
            .iter()
            .all(|n| n % 32 == 0)
        && ok(out)
        && layers.all(|l| {
            l.qkv.iter().all(|&t| ok(t))
                && form(l.o, cfg.d_model, "resid")
                && form(l.down, cfg.d_model, "resid")
                && l.gate_up
                    .is_some_and(|t| !q8_glu_policy() || form(t, cfg.d_ff, glu))
        })
}

/// The `gemv_q8` gated form for the model's MLP activation.
fn q8_glu_form(cfg: &ModelConfig) -> &'static str {
    match glu_act(cfg) {
        gemv::GluAct::GeluTanh => "norm_gelu",
        gemv::GluAct::Silu => "norm_silu",
    }
}

/// Whether the fused 8-bit path's gate/up GEMV makes the gated activation (`ROCMFORGE_Q8_FUSED_GLU`).
fn q8_glu_policy() -> bool {
    matches!(
        std::env::var("ROCMFORGE_Q8_FUSED_GLU")
            .as_deref()
            .map(str::trim),
        Ok("1") | Ok("on")
    )
}

/// The gated activation of the model's MLP.
fn glu_act(cfg: &ModelConfig) -> gemv::GluAct {
    match cfg.activation {
        Activation::GeluTanh => gemv::GluAct::GeluTanh,
        Activation::Silu => gemv::GluAct::Silu,
    }
}

/// Every kernel instance a model needs on `target` (for parallel compilation at load and for
/// `rocmforge compile --model`). Instances missing from this list still compile on first use.
pub fn plan_specs(
    cfg: &ModelConfig,
    g: &GgufFile,
    target: &Target,
    limits: &EngineLimits,
) -> Result<Vec<KernelSpec>> {
    let wave = target.wave_size;
    let mut v = Vec::new();
    let emb_ty = g.tensor("token_embd.weight")?.ty();
    v.push(embedding::spec(emb_ty.name(), "f32", cfg.d_model, wave)?);
    for k in [
        "resid_norm",
        "gather",
        if cfg.activation == Activation::GeluTanh {
            "gated_gelu"
        } else {
            "gated_silu"
        },
    ] {
        v.push(glue::spec(k, target, cfg.d_model)?);
    }
    let mut fmts: Vec<QuantType> = Vec::new();
    for (name, shape) in cfg.tensor_list() {
        if shape.len() == 2 {
            let ty = g.tensor(&name)?.ty();
            if !fmts.contains(&ty) {
                fmts.push(ty);
            }
        }
    }
    let out_ty = if cfg.tied_output {
        emb_ty
    } else {
        g.tensor("output.weight")?.ty()
    };
    if !fmts.contains(&out_ty) {
        fmts.push(out_ty);
    }
    let path = qgemm::path_for(target);
    let q8 = q8_policy(g);
    let q8_rows = Q8_MAX_ROWS.min(limits.max_batch_tokens);
    if q8 && fmts.iter().any(|&ty| gemv_q8::supports(ty)) {
        v.push(gemv_q8::act_spec("f16", wave)?);
    }
    // rows of every matrix a GEMV runs on, by format (the stacked q/k/v and gate/up too)
    let mut shapes: Vec<(QuantType, usize, usize)> = Vec::new();
    for (name, shape) in cfg.tensor_list() {
        if shape.len() == 2 {
            let ty = g.tensor(&name)?.ty();
            let k = shape[0] as usize;
            shapes.push((ty, shape[1] as usize, k));
            if name.ends_with("attn_q.weight") {
                shapes.push((ty, cfg.q_dim() + 2 * cfg.kv_dim(), k));
            }
            if name.ends_with("ffn_gate.weight") {
                shapes.push((ty, 2 * cfg.d_ff, k));
            }
        }
    }
    shapes.push((out_ty, cfg.vocab_size, cfg.d_model));
    for &(ty, n, _) in &shapes {
        if q8 && gemv_q8::supports(ty) {
            for b in 1..=q8_rows {
                let c = gemv_q8::GemvQ8Config::default_for(ty, "f16", b, n, target);
                let s = gemv_q8::spec(ty, "f16", b, c, wave)?;
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    for &ty in &fmts {
        for b in 1..=8usize.min(limits.max_batch_tokens) {
            if q8 && gemv_q8::supports(ty) && b <= q8_rows {
                continue;
            }
            let c = gemv::GemvConfig::default_for(ty, "f16", b, target);
            if let Ok(s) = gemv::spec(ty, "f16", b, c, wave) {
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
        // a batch-1 GEMV whose shape takes gemv_wave_g (the output projection of a small model)
        let float_b1 = !(q8 && gemv_q8::supports(ty));
        for &(_, n, k) in shapes.iter().filter(|s| float_b1 && s.0 == ty) {
            let c = gemv::GemvConfig::default_for_shape(ty, "f16", 1, (n, k), target);
            if let Ok(s) = gemv::spec(ty, "f16", 1, c, wave) {
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
        for m in [9usize, 17, 33, 65] {
            if m <= limits.max_batch_tokens {
                if let Ok(s) = qgemm::spec(ty, target, Some(path), qgemm::default_tile(path, m)) {
                    if !v.contains(&s) {
                        v.push(s);
                    }
                }
            }
        }
    }
    // the fused gate/up GEMV + gated activation of single-token steps (stacked gate/up matrices
    // exist when steps may have 2 tokens or more: GpuBackend::new)
    if limits.max_batch_tokens >= 2 {
        for l in 0..cfg.n_layers {
            let gate = g.tensor(&layer_tensor(l, "ffn_gate.weight"))?;
            let up = g.tensor(&layer_tensor(l, "ffn_up.weight"))?;
            let ty = gate.ty();
            if stacks(&[(ty, gate.bytes().len()), (up.ty(), up.bytes().len())])
                && glu_fusable(q8, ty, cfg.d_model, cfg.d_ff)
            {
                let act = Some(glu_act(cfg));
                let c = gemv::GemvConfig::default_for_glu(ty, "f16", 1, target);
                let mut s = vec![gemv::spec_with_glu(ty, "f16", 1, c, act, wave)?];
                // with the input norm made in its blocks (GpuBackend::fuse_norm)
                if !q8 && gemv_norm::applies(ty, cfg.d_model, act, target) {
                    s.push(gemv_norm::spec(ty, act, cfg.post_norms, wave)?);
                }
                for s in s {
                    if !v.contains(&s) {
                        v.push(s);
                    }
                }
            }
        }
    }
    // the q/k/v GEMVs (stacked, or each of the three) with the input norm made in their blocks
    // (layers after the first; GpuBackend::fuse_norm)
    for l in 1..cfg.n_layers {
        let t = |n: &str| g.tensor(&layer_tensor(l, n));
        let (q, k, vv) = (
            t("attn_q.weight")?,
            t("attn_k.weight")?,
            t("attn_v.weight")?,
        );
        let parts = [
            (q.ty(), q.bytes().len()),
            (k.ty(), k.bytes().len()),
            (vv.ty(), vv.bytes().len()),
        ];
        let tys: Vec<QuantType> = if stacks(&parts)
            && limits.max_batch_tokens * cfg.d_ff >= cfg.q_dim() + 2 * cfg.kv_dim()
        {
            vec![q.ty()]
        } else {
            parts.iter().map(|p| p.0).collect()
        };
        if !q8
            && tys
                .iter()
                .all(|&ty| gemv_norm::applies(ty, cfg.d_model, None, target))
        {
            for ty in tys {
                let s = gemv_norm::spec(ty, None, cfg.post_norms, wave)?;
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    // the fused 8-bit decode path's instances (GpuBackend::fuse_q8), where q8_fusable holds
    if q8 && limits.max_batch_tokens >= 2 {
        let mut mats = Vec::new();
        for l in 0..cfg.n_layers {
            let t = |n: &str| g.tensor(&layer_tensor(l, n));
            let part = |n: &str| t(n).map(|x| (x.ty(), x.bytes().len()));
            let qkv = [
                part("attn_q.weight")?,
                part("attn_k.weight")?,
                part("attn_v.weight")?,
            ];
            let qkv_rows = [cfg.q_dim(), cfg.kv_dim(), cfg.kv_dim()];
            let qkv: Vec<(QuantType, usize)> = if stacks(&qkv)
                && limits.max_batch_tokens * cfg.d_ff >= cfg.q_dim() + 2 * cfg.kv_dim()
            {
                vec![(qkv[0].0, qkv_rows.iter().sum())]
            } else {
                qkv.iter().map(|p| p.0).zip(qkv_rows).collect()
            };
            let (gate, up) = (part("ffn_gate.weight")?, part("ffn_up.weight")?);
            mats.push((
                LayerMats {
                    qkv: qkv.iter().map(|p| p.0).collect(),
                    o: t("attn_output.weight")?.ty(),
                    gate_up: stacks(&[gate, up]).then_some(gate.0),
                    down: t("ffn_down.weight")?.ty(),
                },
                qkv,
            ));
        }
        let fusable = q8_fusable(cfg, mats.iter().map(|m| m.0.clone()), out_ty, target);
        let (d, ff) = (cfg.d_model, cfg.d_ff);
        let act = q8_glu_form(cfg);
        for (li, (m, qkv)) in mats.iter().enumerate().filter(|_| fusable) {
            let mut want: Vec<(QuantType, usize, &str)> =
                vec![(m.o, d, "resid"), (m.down, d, "resid")];
            if li > 0 {
                want.extend(qkv.iter().map(|&(ty, n)| (ty, n, "norm")));
            }
            if let Some(ty) = m.gate_up {
                match q8_glu_policy() {
                    true => want.push((ty, ff, act)),
                    false => want.push((ty, 2 * ff, "norm")),
                }
            }
            if li + 1 == cfg.n_layers {
                want.push((out_ty, cfg.vocab_size, "norm"));
            }
            for (ty, n, fuse) in want {
                let s = gemv_q8::fused_spec(ty, n, fuse, None, target)?;
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    if prefill_blas_policy(target) && limits.max_batch_tokens >= PREFILL_BLAS_MIN_ROWS {
        // the dequantization of the BLAS prefill path
        for &ty in &fmts {
            if ty != QuantType::F16 {
                let s = embedding::spec(ty.name(), "f16", cfg.d_model, wave)?;
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    if cfg.qkv_bias {
        for n in [cfg.q_dim(), cfg.kv_dim()] {
            let s = activation::spec(Act::Add, "f16", n, wave)?;
            if !v.contains(&s) {
                v.push(s);
            }
        }
    }
    if cfg.qk_norm {
        v.push(norm::spec(norm::NormKind::Rms, "f16", cfg.head_dim, wave)?);
    }
    // RoPE runs inside the KV append (kv_cache::append_rope_q); the instance depends on its style only
    let r = Rope {
        style: cfg.rope_style,
        n_rot: cfg.n_rot,
        base: 10000.0,
    };
    v.push(kv_cache::spec("f16", Some(&r), wave)?);
    v.push(prefill::spec_on(
        cfg.head_dim,
        "f16",
        true,
        prefill::native_path(target),
        target,
    )?);
    // every decode kernel a plan can pick (short batches at head dims >= 128 run the SIMT one)
    for k in decode::DecodeKernel::candidates(target, cfg.head_dim) {
        v.push(k.spec(cfg.head_dim, "f16", cfg.group(), target)?);
    }
    v.push(KernelSpec::new(
        &decode::MERGE,
        &[("dtype", "f16".into())],
        wave,
    )?);
    v.push(sampling::spec_for(target, "f16", cfg.vocab_size)?);
    Ok(v)
}

/// Upload every byte of `data` into `dst` through two pinned staging buffers on `stream`
/// (copies overlap the memcpy into the other staging buffer).
fn upload_bytes(
    dst: &mut Buffer<u8>,
    data: &[u8],
    staging: &mut [PinnedBuffer<u8>; 2],
    turn: &mut usize,
    stream: &Stream,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let chunk = staging[0].len();
    for (i, part) in data.chunks(chunk).enumerate() {
        let st = &mut staging[*turn % 2];
        *turn += 1;
        st.synchronize()?;
        st.as_mut_slice()[..part.len()].copy_from_slice(part);
        dst.copy_from_pinned(i * chunk, st, 0..part.len(), stream)?;
        bar.inc(part.len() as u64);
    }
    Ok(())
}

impl GpuBackend {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dev: &Device,
        g: &GgufFile,
        cfg: &ModelConfig,
        limits: &EngineLimits,
        verbose: bool,
        early: bool,
        gpu_opts: super::runtime::GpuOptions,
        stats: &mut LoadStats,
    ) -> Result<GpuBackend> {
        let target = dev.target().clone();
        // compile the model's kernels on other threads while the weights upload
        let specs = plan_specs(cfg, g, &target, limits)?;
        let warmup = super::warmup::Warmup::start(specs, target, early)?;
        let d = cfg.d_model;
        let t = limits.max_batch_tokens;
        let hd = cfg.head_dim;
        let layout = PagedLayout {
            num_pages: limits.num_pages,
            page_size: limits.page_size,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
            max_pages: limits.ctx_size.div_ceil(limits.page_size),
        };
        layout.validate("model")?;
        crate::ops::attention::check_head_dim("model", hd)?;
        // sizes: weights, KV, scratch
        let mut weight_bytes = 0usize;
        for (name, shape) in cfg.tensor_list() {
            let ti = g.tensor(&name)?;
            weight_bytes += if shape.len() == 1 {
                align(ti.info().n_elems() as usize * 4) + align(ti.info().n_elems() as usize * 2)
            } else {
                align(ti.bytes().len())
            };
        }
        let kv_bytes = 2 * cfg.n_layers * align(layout.elements() * 2);
        let sm = limits.max_seqs;
        let (qd, kvd, ff) = (cfg.q_dim(), cfg.kv_dim(), cfg.d_ff);
        let ints = 3 * t + (sm + 1) + 2 * sm + sm * layout.max_pages + t;
        let scratch_bytes = align(t * d * 4)
            + align(d * 4)
            + [
                t * d,
                t * qd,
                t * kvd,
                t * kvd,
                t * qd,
                t * kvd,
                t * qd,
                t * d,
                t * ff,
                t * ff,
                t * ff,
                t * d,
            ]
            .iter()
            .map(|&n| align(n * 2))
            .sum::<usize>()
            + align(LOGIT_ROWS * cfg.vocab_size * 2)
            + align(gemv_q8::act_bytes(Q8_MAX_ROWS, d.max(qd).max(ff)))
            + align(gemv_q8::act_bytes(1, d.max(qd).max(ff)))
            + align(d.div_ceil(16) * 4)
            + 8 * align(ints * 4);
        // the dequantize + BLAS prefill path: its library, and a scratch for the largest layer matrix
        let blas = if prefill_blas_policy(dev.target()) && t >= PREFILL_BLAS_MIN_ROWS {
            match Blas::new(dev) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::info!("prefill keeps the fused qgemm: {e}");
                    None
                }
            }
        } else {
            None
        };
        let w16_elems = if blas.is_some() {
            [qd * d, 2 * kvd * d, d * qd, 2 * ff * d, d * ff]
                .into_iter()
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let scratch_bytes = scratch_bytes + align(w16_elems * 2);
        let upload_start = std::time::Instant::now();
        let pool = Pool::new(dev, weight_bytes + kv_bytes + scratch_bytes + (1 << 20))?;
        let stream = dev.create_stream()?;
        let upload_stream = dev.create_stream()?;
        let bar = if verbose {
            let b =
                indicatif::ProgressBar::new(g.tensors().iter().map(|t| t.n_bytes() as u64).sum());
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "upload {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut staging = [
            PinnedBuffer::<u8>::new(dev, 32 << 20)?,
            PinnedBuffer::<u8>::new(dev, 32 << 20)?,
        ];
        let mut turn = 0usize;
        // Matrices with the same K (row length): one allocation, uploaded back to back, when they share
        // a format (rows of GGUF blocks are independent, so the stacked bytes are the stacked matrix).
        let mut mats =
            |parts: &[(String, usize)], k: usize| -> Result<(Vec<Linear>, Option<Linear>)> {
                let infos = parts
                    .iter()
                    .map(|(name, _)| g.tensor(name))
                    .collect::<Result<Vec<_>>>()?;
                let fmt = infos[0].ty();
                // the kernels want 16-byte aligned matrices: every part must end on a 16-byte boundary
                let stack = stacks(
                    &infos
                        .iter()
                        .map(|t| (t.ty(), t.bytes().len()))
                        .collect::<Vec<_>>(),
                );
                let mut out = Vec::with_capacity(parts.len());
                if stack {
                    let total: usize = infos.iter().map(|t| t.bytes().len()).sum();
                    let all = pool.alloc::<u8>(total)?;
                    let mut off = 0;
                    for (ti, (_, n)) in infos.iter().zip(parts) {
                        let mut w = all.view(off, ti.bytes().len())?;
                        upload_bytes(
                            &mut w,
                            ti.bytes(),
                            &mut staging,
                            &mut turn,
                            &upload_stream,
                            &bar,
                        )?;
                        off += ti.bytes().len();
                        out.push(Linear { w, fmt, n: *n, k });
                    }
                    let n = parts.iter().map(|(_, n)| n).sum();
                    return Ok((out, Some(Linear { w: all, fmt, n, k })));
                }
                for (ti, (_, n)) in infos.iter().zip(parts) {
                    let mut w = pool.alloc::<u8>(ti.bytes().len())?;
                    upload_bytes(
                        &mut w,
                        ti.bytes(),
                        &mut staging,
                        &mut turn,
                        &upload_stream,
                        &bar,
                    )?;
                    out.push(Linear {
                        w,
                        fmt: ti.ty(),
                        n: *n,
                        k,
                    });
                }
                Ok((out, None))
            };
        fn one(
            mats: &mut impl FnMut(&[(String, usize)], usize) -> Result<(Vec<Linear>, Option<Linear>)>,
            name: &str,
            n: usize,
            k: usize,
        ) -> Result<Linear> {
            let (mut v, _) = mats(&[(name.to_string(), n)], k)?;
            v.pop()
                .ok_or_else(|| Error::Model(format!("tensor `{name}` not uploaded")))
        }
        let vec32 = |name: &str| -> Result<Buffer<f32>> {
            let v = g.tensor(name)?.dequantize_f32()?;
            let mut b = pool.alloc::<f32>(v.len())?;
            b.copy_from_host(&v)?;
            Ok(b)
        };
        let vec16 = |name: &str| -> Result<Buffer<f16>> {
            let v: Vec<f16> = g
                .tensor(name)?
                .dequantize_f32()?
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect();
            let mut b = pool.alloc::<f16>(v.len())?;
            b.copy_from_host(&v)?;
            Ok(b)
        };
        let emb_lin = one(&mut mats, "token_embd.weight", cfg.vocab_size, d)?;
        let out = if cfg.tied_output {
            Linear {
                w: emb_lin.w.view(0, emb_lin.w.len())?,
                fmt: emb_lin.fmt,
                n: cfg.vocab_size,
                k: d,
            }
        } else {
            one(&mut mats, "output.weight", cfg.vocab_size, d)?
        };
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let n = |s: &str| layer_tensor(l, s);
            let (qkv, qkv_fused) = mats(
                &[
                    (n("attn_q.weight"), qd),
                    (n("attn_k.weight"), kvd),
                    (n("attn_v.weight"), kvd),
                ],
                d,
            )?;
            let (gu, gu_fused) = mats(&[(n("ffn_gate.weight"), ff), (n("ffn_up.weight"), ff)], d)?;
            let [q, k, v]: [Linear; 3] = qkv
                .try_into()
                .map_err(|_| Error::Model("q/k/v upload".into()))?;
            let [gate, up]: [Linear; 2] = gu
                .try_into()
                .map_err(|_| Error::Model("gate/up upload".into()))?;
            layers.push(Layer {
                attn_norm: vec32(&n("attn_norm.weight"))?,
                q,
                k,
                v,
                o: one(&mut mats, &n("attn_output.weight"), d, qd)?,
                bias: if cfg.qkv_bias {
                    Some([
                        vec16(&n("attn_q.bias"))?,
                        vec16(&n("attn_k.bias"))?,
                        vec16(&n("attn_v.bias"))?,
                    ])
                } else {
                    None
                },
                qk_norm: if cfg.qk_norm {
                    Some([
                        vec16(&n("attn_q_norm.weight"))?,
                        vec16(&n("attn_k_norm.weight"))?,
                    ])
                } else {
                    None
                },
                post: if cfg.post_norms {
                    Some([
                        vec32(&n("post_attention_norm.weight"))?,
                        vec32(&n("post_ffw_norm.weight"))?,
                    ])
                } else {
                    None
                },
                ffn_norm: vec32(&n("ffn_norm.weight"))?,
                gate,
                up,
                down: one(&mut mats, &n("ffn_down.weight"), d, ff)?,
                // single-token steps write the stacked outputs into the g / u scratch
                qkv: qkv_fused.filter(|_| t * ff >= qd + 2 * kvd),
                gate_up: gu_fused.filter(|_| t >= 2),
                k_cache: pool.alloc::<f16>(layout.elements())?,
                v_cache: pool.alloc::<f16>(layout.elements())?,
            });
        }
        let out_norm = vec32("output_norm.weight")?;
        upload_stream.synchronize()?;
        let upload_end = std::time::Instant::now();
        bar.finish_and_clear();
        let s = Scratch {
            x: pool.alloc(t * d)?,
            x2: pool.alloc(d)?,
            h: pool.alloc(t * d)?,
            q: pool.alloc(t * qd)?,
            k: pool.alloc(t * kvd)?,
            v: pool.alloc(t * kvd)?,
            qn: pool.alloc(t * qd)?,
            kn: pool.alloc(t * kvd)?,
            attn: pool.alloc(t * qd)?,
            o: pool.alloc(t * d)?,
            g: pool.alloc(t * ff)?,
            u: pool.alloc(t * ff)?,
            a: pool.alloc(t * ff)?,
            rows_h: pool.alloc(t * d)?,
            logits: pool.alloc(LOGIT_ROWS * cfg.vocab_size)?,
            xq: pool.alloc(gemv_q8::act_bytes(Q8_MAX_ROWS, d.max(qd).max(ff)))?,
            xq2: pool.alloc(gemv_q8::act_bytes(1, d.max(qd).max(ff)))?,
            ssq: pool.alloc(d.div_ceil(16))?,
            ids: pool.alloc(t)?,
            pos: pool.alloc(t)?,
            cu: pool.alloc(sm + 1)?,
            ctx: pool.alloc(sm)?,
            kvl: pool.alloc(sm)?,
            bt: pool.alloc(sm * layout.max_pages)?,
            out_rows: pool.alloc(t)?,
            amax: pool.alloc(t)?,
        };
        let prefill_blas = match blas {
            Some(blas) => Some(PrefillBlas {
                blas,
                w16: pool.alloc(w16_elems)?,
                min_rows: std::env::var("ROCMFORGE_PREFILL_BLAS_MIN")
                    .ok()
                    .and_then(|v| v.trim().parse().ok()),
                qgemm_path: qgemm::path_for(dev.target()),
            }),
            None => None,
        };
        // the warm-up thread's results: counts, timings, tuned entries
        warmup.finish((upload_start, upload_end), stats)?;
        let emb = (emb_lin.w, emb_lin.fmt);
        let fuse = match gpu_opts.fuse {
            Some(on) => (on, Some(on)),
            // default: the GLU epilogue, and the in-launch merge with the matrix-core decode
            // kernel only (H200, ninth session: SmolLM2 +2 % with it; with the SIMT kernel
            // Gemma 3 -2-3 %, the 8B -0.4 %; docs/PERF.md)
            None => match std::env::var("ROCMFORGE_FUSE").as_deref().map(str::trim) {
                Ok("0") | Ok("off") => (false, Some(false)),
                Ok("glu") => (true, Some(false)),
                Ok("merge") => (false, Some(true)),
                Ok("1") | Ok("on") | Ok("all") => (true, Some(true)),
                _ => (true, None),
            },
        };
        // the append and the input norms are off with ROCMFORGE_FUSE=off (the one setting that
        // leaves both other fusions off) or their own switches
        let own_switch = |var: &str| {
            gpu_opts.fuse.unwrap_or_else(|| {
                fuse != (false, Some(false))
                    && !matches!(
                        std::env::var(var).as_deref().map(str::trim),
                        Ok("0") | Ok("off")
                    )
            })
        };
        let fuse_append = own_switch("ROCMFORGE_FUSE_APPEND");
        let fuse_norm = own_switch("ROCMFORGE_FUSE_NORM");
        let use_q8 = gpu_opts.q8.unwrap_or_else(|| q8_policy(g));
        let q8_attn_out = std::env::var("ROCMFORGE_Q8_ATTN_OUT")
            .map(|v| v != "0" && v != "off")
            .unwrap_or(true);
        let fuse_q8 = fuse_norm
            && use_q8
            && q8_attn_out
            && q8_fusable(cfg, layers.iter().map(LayerMats::of), out.fmt, dev.target());
        Ok(GpuBackend {
            dev: dev.clone(),
            stream,
            cfg: cfg.clone(),
            limits: *limits,
            pool,
            emb,
            out,
            out_norm,
            layers,
            s,
            layout,
            pin_in: PinnedBuffer::new(dev, ints)?,
            pin_amax: PinnedBuffer::new(dev, t)?,
            pin_logits: PinnedBuffer::new(dev, LOGIT_ROWS * cfg.vocab_size)?,
            plans: HashMap::new(),
            graphs: HashMap::new(),
            seen: HashMap::new(),
            weight_bytes,
            kv_bytes,
            scratch_bytes,
            launches_last_step: 0,
            graph_replays: 0,
            jit_generation: Jit::global().generation(),
            use_graphs: gpu_opts.graphs.unwrap_or_else(|| {
                std::env::var("ROCMFORGE_GRAPHS")
                    .map(|v| v != "0" && v != "off")
                    .unwrap_or(true)
            }),
            use_q8,
            fuse,
            fuse_append,
            fuse_norm,
            fuse_q8,
            q8_glu: q8_glu_policy(),
            q8_step: std::sync::atomic::AtomicBool::new(false),
            q8_attn_out,
            prefill_blas,
            in_decode: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// When the JIT's generation moved, load the specialized instances that landed (all at once,
    /// when none is pending) and drop the captured graphs, which hold their stand-ins: the next
    /// step of a shape runs eagerly, the one after captures again.
    fn refresh_graphs(&mut self) {
        let g = Jit::global().generation();
        if g != self.jit_generation {
            self.jit_generation = g;
            let loaded = Jit::global().adopt(&self.dev);
            if loaded > 0 {
                tracing::info!(
                    graphs = self.graphs.len(),
                    generation = g,
                    loaded,
                    "specialized kernels swapped in for their stand-ins; decode graphs recaptured"
                );
                self.graphs.clear();
                self.seen.clear();
            }
        }
    }

    /// Copy the step's integer inputs into their device buffers (one pinned staging area).
    fn upload_inputs(&mut self, b: &ForwardBatch) -> Result<()> {
        let n = b.nseq();
        let kv = b.kv_lens();
        let pos = b.positions();
        let ids: Vec<i32> = b.tokens.iter().map(|&t| t as i32).collect();
        let rows: Vec<i32> = b.out_rows.iter().map(|&r| r as i32).collect();
        let parts: [(&[i32], &mut Buffer<i32>); 7] = [
            (&ids, &mut self.s.ids),
            (&pos, &mut self.s.pos),
            (&b.cu, &mut self.s.cu),
            (&b.ctx_lens, &mut self.s.ctx),
            (&kv, &mut self.s.kvl),
            (&b.block_tables, &mut self.s.bt),
            (&rows, &mut self.s.out_rows),
        ];
        self.pin_in.synchronize()?;
        let mut off = 0;
        let total: usize = parts.iter().map(|(h, _)| h.len()).sum();
        if total > self.pin_in.len() {
            return Err(Error::Model(format!(
                "step inputs of {total} ints exceed the staging area {}",
                self.pin_in.len()
            )));
        }
        let _ = n;
        for (h, _) in parts.iter() {
            self.pin_in.as_mut_slice()[off..off + h.len()].copy_from_slice(h);
            off += h.len();
        }
        let mut off = 0;
        for (h, d) in parts {
            d.copy_from_pinned(0, &self.pin_in, off..off + h.len(), &self.stream)?;
            off += h.len();
        }
        Ok(())
    }

    /// Whether an `m`-row step quantizes its GEMV inputs to 8 bits ([`Self::quantize`] before
    /// every [`Self::lin`] of such a step).
    fn q8(&self, m: usize) -> bool {
        self.use_q8 && m <= Q8_MAX_ROWS
    }

    /// The 8-bit scratch as the quantized output of an `m × k` glue kernel (None when the step's
    /// GEMVs read f16 or k is not a multiple of 32).
    fn q8_out(&self, m: usize, k: usize) -> Result<Option<Buffer<u8>>> {
        if !self.q8(m) || k % 32 != 0 {
            return Ok(None);
        }
        Ok(Some(self.s.xq.view(0, gemv_q8::act_bytes(m, k))?))
    }

    /// Quantize the `m × k` GEMV input `x` into the 8-bit scratch (when [`Self::q8`]); returns the
    /// launches made.
    fn quantize(&self, x: &Buffer<f16>, m: usize, k: usize) -> Result<usize> {
        if !self.q8(m) || k % 32 != 0 {
            return Ok(0);
        }
        let xv = x.view(0, m * k)?;
        let mut q = self.s.xq.view(0, gemv_q8::act_bytes(m, k))?;
        gemv_q8::quantize_x(&self.dev, &self.stream, &xv, m, k, &mut q)?;
        Ok(1)
    }

    /// `y = x · Wᵀ (+ bias)`: from the 8-bit scratch where [`Self::q8`] (the caller quantized x
    /// into it), else from x.
    fn lin(
        &self,
        l: &Linear,
        x: &Buffer<f16>,
        m: usize,
        bias: Option<&Buffer<f16>>,
        y: &Buffer<f16>,
    ) -> Result<()> {
        self.lin_with(l, x, m, bias, y, self.q8(m))
    }

    /// [`Self::lin`] from the f16 x.
    fn lin_f16(
        &self,
        l: &Linear,
        x: &Buffer<f16>,
        m: usize,
        bias: Option<&Buffer<f16>>,
        y: &Buffer<f16>,
    ) -> Result<()> {
        self.lin_with(l, x, m, bias, y, false)
    }

    /// Whether a single-token step runs the stacked gate/up `f` as one fused `gemv_glu` (see
    /// [`glu_fusable`]; [`plan_specs`] names its instance by the same rule).
    fn glu_fused(&self, f: &Linear) -> bool {
        self.fuse.0 && glu_fusable(self.q8(1), f.fmt, f.k, self.cfg.d_ff)
    }

    fn lin_with(
        &self,
        l: &Linear,
        x: &Buffer<f16>,
        m: usize,
        bias: Option<&Buffer<f16>>,
        y: &Buffer<f16>,
        q8: bool,
    ) -> Result<()> {
        let xv = x.view(0, m * l.k)?;
        let mut yv = y.view(0, m * l.n)?;
        if q8 && gemv_q8::supports(l.fmt) && l.k % 32 == 0 {
            // x was quantized into s.xq by the caller (Self::quantize)
            let q = self.s.xq.view(0, gemv_q8::act_bytes(m, l.k))?;
            gemv_q8::gemv_q8(
                &self.dev,
                &self.stream,
                l.fmt,
                &l.w,
                l.n,
                l.k,
                &q,
                m,
                &mut yv,
                None,
            )?;
            if let Some(b) = bias {
                activation::add_bias(&self.dev, &self.stream, &mut yv, b, l.n)?;
            }
            return Ok(());
        }
        if let Some(pb) = &self.prefill_blas {
            // the fused GEMM's regime (above the GEMV's rows): the tuned choice for this row bucket
            // (`rocmforge tune` times dequantize + BLAS against the qgemm tiles), else the built-in
            // thresholds by matrix size
            let blas = m > crate::ops::mlp::linear::GEMV_MAX_ROWS
                && crate::jit::tunedb::linear_blas(pb.qgemm_path, m)
                    .unwrap_or_else(|| prefill_blas_default(m, l.n, l.k, pb.min_rows));
            if blas
                && l.n * l.k <= pb.w16.len()
                && !self.in_decode.load(std::sync::atomic::Ordering::Relaxed)
            {
                let mut w16 = pb.w16.view(0, l.n * l.k)?;
                return linear_blas(
                    &self.dev,
                    &self.stream,
                    &pb.blas,
                    &xv,
                    &l.w,
                    l.fmt,
                    (m, l.n, l.k),
                    bias,
                    &mut yv,
                    &mut w16,
                );
            }
        }
        linear(
            &self.dev,
            &self.stream,
            &xv,
            &l.w,
            l.fmt,
            (m, l.n, l.k),
            bias,
            &mut yv,
            LinearPath::Auto,
        )
    }

    /// Every launch of one step (also what a graph captures). `decode`: all sequences have one
    /// new token (the decode attention kernel with `plan`).
    fn launch_layers(
        &self,
        t: usize,
        nseq: usize,
        host: &HostStep,
        mut plan: Option<&mut DecodePlan>,
    ) -> Result<usize> {
        let c = &self.cfg;
        let (d, hd, hq) = (c.d_model, c.head_dim, c.n_heads);
        let (qd, kvd, ff) = (c.q_dim(), c.kv_dim(), c.d_ff);
        // decode steps may be captured: no BLAS calls in them
        self.in_decode
            .store(plan.is_some(), std::sync::atomic::Ordering::Relaxed);
        let dev = &self.dev;
        let st = &self.stream;
        let s = &self.s;
        let mut launches = 0usize;
        let ids = s.ids.view(0, t)?;
        // the residual stream: s.x, or s.x2 after an odd number of fused input norms (gemv_norm
        // writes x + r to the other buffer: its other blocks still read x)
        let xbuf = |i: usize| match i {
            0 => s.x.view(0, t * d),
            _ => s.x2.view(0, d),
        };
        let mut xi = 0usize;
        let mut x = xbuf(xi)?;
        let mut h = s.h.view(0, t * d)?;
        // single-sequence decode steps on the float GEMVs: the residual add and norm in front of
        // the q/k/v and gate/up GEMVs inside them, where gemv_norm takes their matrices
        let fuse_norm = self.fuse_norm && plan.is_some() && t == 1 && !self.q8(1);
        let norm_fits = |f: &Linear, glu: Option<gemv::GluAct>| {
            fuse_norm && gemv_norm::applies(f.fmt, f.k, glu, dev.target())
        };
        // the norm the next q/k/v GEMV makes (the previous layer's post-norm weight, if any)
        let mut pending: Option<Option<&Buffer<f32>>> = None;
        // single-sequence decode steps on 8-bit activations: the residual adds, norms and the gated
        // activation in the GEMVs (GpuBackend::fuse_q8); `q8_norm` says the 8-bit input in s.xq is
        // a fused norm's, whose 1/rms the GEMV reading it applies
        let fq8 = self.fuse_q8 && plan.is_some() && t == 1 && host.all_rows && self.q8(1);
        self.q8_step
            .store(fq8, std::sync::atomic::Ordering::Relaxed);
        let mut q8_norm = false;
        embedding::embed_quant::<f32>(dev, st, self.emb.1, &self.emb.0, d, &ids, &mut x)?;
        glue::resid_norm(
            dev,
            st,
            &mut x,
            t,
            d,
            c.embed_scale,
            None,
            None,
            &self.layers[0].attn_norm,
            c.rms_eps,
            Some(&mut h),
            self.q8_out(t, d)?.as_mut(),
        )?;
        launches += 2;
        let pos = s.pos.view(0, t)?;
        let cu = s.cu.view(0, nseq + 1)?;
        let ctx = s.ctx.view(0, nseq)?;
        let kvl = s.kvl.view(0, nseq)?;
        let batch = Batch {
            cu_q_host: host.cu.clone(),
            kv_lens_host: host.kv_lens.clone(),
            cu_q: cu.view(0, nseq + 1)?,
            kv_lens: kvl.view(0, nseq)?,
        };
        for li in 0..c.n_layers {
            let l = &self.layers[li];
            let lc = c.layers[li];
            let bias = l.bias.as_ref();
            let (mut q, mut k, v) = match &l.qkv {
                Some(f) if t == 1 => {
                    // one GEMV for q, k and v; the outputs are consecutive in one row
                    match pending.take() {
                        Some(post) => {
                            let mut xo = xbuf(xi ^ 1)?;
                            let mut g = s.g.view(0, f.n)?;
                            let o = s.o.view(0, d)?;
                            let n = gemv_norm::NormIn {
                                x: &x,
                                r: &o,
                                post,
                                w: &l.attn_norm,
                                eps: c.rms_eps,
                            };
                            gemv_norm::gemv_norm(
                                dev, st, f.fmt, &f.w, f.n, f.k, &n, &mut xo, &mut g, None,
                            )?;
                            xi ^= 1;
                            x = xo;
                        }
                        None if q8_norm => {
                            let mut g = s.g.view(0, f.n)?;
                            self.q8_fused(f, &s.xq, true, gemv_q8::FusedOut::Plain(&mut g))?;
                        }
                        None => self.lin(f, &h, 1, None, &s.g)?,
                    }
                    let (mut q, mut k, mut v) = (
                        s.g.view(0, qd)?,
                        s.g.view(qd, kvd)?,
                        s.g.view(qd + kvd, kvd)?,
                    );
                    if let Some([bq, bk, bv]) = bias {
                        activation::add_bias(dev, st, &mut q, bq, qd)?;
                        activation::add_bias(dev, st, &mut k, bk, kvd)?;
                        activation::add_bias(dev, st, &mut v, bv, kvd)?;
                        launches += 3;
                    }
                    launches -= 2;
                    (q, k, v)
                }
                _ => {
                    match pending.take() {
                        Some(post) => {
                            // each of the three GEMVs makes the norm itself, and all three write
                            // the same x + r to the other buffer (none of them reads it)
                            let mut xo = xbuf(xi ^ 1)?;
                            {
                                let o = s.o.view(0, d)?;
                                let n = gemv_norm::NormIn {
                                    x: &x,
                                    r: &o,
                                    post,
                                    w: &l.attn_norm,
                                    eps: c.rms_eps,
                                };
                                let mats = [(&l.q, &s.q), (&l.k, &s.k), (&l.v, &s.v)];
                                for (i, (f, y)) in mats.into_iter().enumerate() {
                                    let mut y = y.view(0, f.n)?;
                                    gemv_norm::gemv_norm(
                                        dev, st, f.fmt, &f.w, f.n, f.k, &n, &mut xo, &mut y, None,
                                    )?;
                                    if let Some(b) = bias {
                                        activation::add_bias(dev, st, &mut y, &b[i], f.n)?;
                                    }
                                }
                            }
                            xi ^= 1;
                            x = xo;
                        }
                        None if q8_norm => {
                            let mats = [(&l.q, &s.q), (&l.k, &s.k), (&l.v, &s.v)];
                            for (i, (f, y)) in mats.into_iter().enumerate() {
                                let mut y = y.view(0, f.n)?;
                                self.q8_fused(f, &s.xq, true, gemv_q8::FusedOut::Plain(&mut y))?;
                                if let Some(b) = bias {
                                    activation::add_bias(dev, st, &mut y, &b[i], f.n)?;
                                }
                            }
                        }
                        None => {
                            self.lin(&l.q, &h, t, bias.map(|b| &b[0]), &s.q)?;
                            self.lin(&l.k, &h, t, bias.map(|b| &b[1]), &s.k)?;
                            self.lin(&l.v, &h, t, bias.map(|b| &b[2]), &s.v)?;
                        }
                    }
                    (
                        s.q.view(0, t * qd)?,
                        s.k.view(0, t * kvd)?,
                        s.v.view(0, t * kvd)?,
                    )
                }
            };
            launches += 3;
            if let Some([nq, nk]) = &l.qk_norm {
                let (mut qn, mut kn) = (s.qn.view(0, t * qd)?, s.kn.view(0, t * kvd)?);
                norm::rms_norm(dev, st, &q, nq, c.rms_eps, hd, &mut qn)?;
                norm::rms_norm(dev, st, &k, nk, c.rms_eps, hd, &mut kn)?;
                launches += 2;
                q = qn;
                k = kn;
            }
            let r = Rope {
                style: c.rope_style,
                n_rot: c.n_rot,
                base: lc.rope_base,
            };
            let mut cache = PagedCache {
                layout: self.layout,
                k: l.k_cache.view(0, l.k_cache.len())?,
                v: l.v_cache.view(0, l.v_cache.len())?,
                block_tables: s.bt.view(0, nseq * self.layout.max_pages)?,
            };
            // decode steps: RoPE and the append inside the attention launch (decode_append); else
            // RoPE on q (in place) and k (on its way into the cache) in the append's launch
            let fused_append = plan.is_some() && self.fuse_append;
            if !fused_append {
                kv_cache::append_rope_q(
                    dev,
                    st,
                    &mut cache,
                    &Append {
                        k_new: &k,
                        v_new: &v,
                        pos: &pos,
                        cu_new: &cu,
                        ctx_lens: &ctx,
                        cu_new_host: &host.cu,
                        ctx_lens_host: &host.ctx,
                    },
                    &r,
                    &mut q,
                    hq,
                )?;
                launches += 1;
            }
            let p = AttnParams {
                causal: true,
                scale: c.attn_scale,
                softcap: c.attn_softcap,
                window: lc.window as i32,
            };
            let mut attn = s.attn.view(0, t * qd)?;
            // the output projection's 8-bit input: written by the decode kernel itself, else by a
            // launch of its own (ROCMFORGE_Q8_ATTN_OUT=off keeps the float GEMV there)
            let mut attn_q8 = match self.q8_attn_out {
                // (the fused path: into the second buffer, s.xq holds the residual's next input)
                true if fq8 => Some(s.xq2.view(0, gemv_q8::act_bytes(1, qd))?),
                true => self.q8_out(t, qd)?,
                false => None,
            };
            match plan.as_deref_mut() {
                Some(plan) if fused_append => {
                    decode::decode_append(
                        dev,
                        st,
                        &q,
                        &mut cache,
                        &decode::DecodeAppend {
                            k_new: &k,
                            v_new: &v,
                            pos: &pos,
                            rope: Some(&r),
                        },
                        &batch,
                        plan,
                        &mut attn,
                        &p,
                        attn_q8.as_mut(),
                    )?;
                    launches += plan.launches();
                }
                Some(plan) => {
                    decode::decode(
                        dev,
                        st,
                        &q,
                        &cache,
                        &batch,
                        plan,
                        &mut attn,
                        &p,
                        attn_q8.as_mut(),
                    )?;
                    launches += plan.launches();
                }
                None => {
                    prefill::prefill(dev, st, &q, &cache, &batch, hq, &mut attn, &p, None)?;
                    launches += 1;
                    if attn_q8.is_some() {
                        launches += self.quantize(&attn, t, qd)?;
                    }
                }
            }
            let l = &self.layers[li];
            if fq8 {
                // the fused 8-bit path: the projection's epilogues carry the residual stream
                launches += self.launch_q8_mlp(li, &mut x)?;
                q8_norm = true;
                continue;
            }
            if self.q8_attn_out {
                self.lin(&l.o, &attn, t, None, &s.o)?;
            } else {
                self.lin_f16(&l.o, &attn, t, None, &s.o)?;
            }
            let o = s.o.view(0, t * d)?;
            let post = l.post.as_ref();
            let mut a = s.a.view(0, t * ff)?;
            let act = Some(glu_act(c));
            match &l.gate_up {
                Some(f) if t == 1 && self.glu_fused(f) && norm_fits(f, act) => {
                    // the residual add, the norm, gate, up and the gated activation in one launch
                    let mut xo = xbuf(xi ^ 1)?;
                    let n = gemv_norm::NormIn {
                        x: &x,
                        r: &o,
                        post: post.map(|p| &p[0]),
                        w: &l.ffn_norm,
                        eps: c.rms_eps,
                    };
                    gemv_norm::gemv_norm(dev, st, f.fmt, &f.w, ff, f.k, &n, &mut xo, &mut a, act)?;
                    xi ^= 1;
                    x = xo;
                    launches += 1;
                }
                _ => {
                    self.resid_norm_rows(&mut x, &o, post.map(|p| &p[0]), &l.ffn_norm, &mut h, t)?;
                    launches += 1 + self.launch_ffn_in(l, &h, &mut a, t)?;
                }
            }
            self.lin(&l.down, &a, t, None, &s.o)?;
            // the next layer's q/k/v GEMV (stacked, or each of the three) makes this residual
            // add and its norm
            let next_fits = |n: &Layer| match &n.qkv {
                Some(f) => norm_fits(f, None),
                None => [&n.q, &n.k, &n.v].iter().all(|f| norm_fits(f, None)),
            };
            match self.layers.get(li + 1) {
                Some(n) if next_fits(n) => pending = Some(post.map(|p| &p[1])),
                _ => {
                    let next = match self.layers.get(li + 1) {
                        Some(n) => &n.attn_norm,
                        None => &self.out_norm,
                    };
                    self.resid_norm_rows(&mut x, &o, post.map(|p| &p[1]), next, &mut h, t)?;
                    launches += 1;
                }
            }
            launches += 2; // the output and down projections
        }
        // the wanted rows (already normalized by the output norm)
        let r = host.out_rows;
        if host.all_rows {
            return Ok(launches);
        }
        let rows = s.out_rows.view(0, r.max(1))?;
        let mut rh = s.rows_h.view(0, r * d)?;
        glue::gather_rows(dev, st, &h, &rows, r, d, &mut rh)?;
        Ok(launches + 1)
    }

    /// A fused 8-bit path's GEMV ([`gemv_q8::gemv_q8_fused`]) on `f` from the 8-bit input `xq`, with the
    /// shared sums of squares and group counters (`norm`: xq is a fused norm's output).
    fn q8_fused(
        &self,
        f: &Linear,
        xq: &Buffer<u8>,
        norm: bool,
        out: gemv_q8::FusedOut,
    ) -> Result<()> {
        let s = &self.s;
        let rows = match out {
            gemv_q8::FusedOut::Glu { .. } => f.n / 2,
            _ => f.n,
        };
        let ss = s.ssq.view(0, s.ssq.len())?;
        let n = gemv_q8::NormIn {
            ss: &ss,
            eps: self.cfg.rms_eps,
        };
        gemv_q8::gemv_q8_fused(
            &self.dev,
            &self.stream,
            f.fmt,
            &f.w,
            rows,
            f.k,
            xq,
            norm.then_some(&n),
            out,
            None,
        )
    }

    /// Layer `li`'s output projection and MLP on the fused 8-bit path (the attention output's 8-bit
    /// copy is in s.xq2): o with the residual add and the ffn norm's input into s.xq; gate/up with
    /// the gated activation into s.xq2 (one launch with [`Self::q8_glu`], else the GEMV and
    /// `glue::gated`); down with the residual add and the next norm's input (the next layer's, or
    /// the output norm) into s.xq. Returns the launches made.
    fn launch_q8_mlp(&self, li: usize, x: &mut Buffer<f32>) -> Result<usize> {
        let (s, c, l) = (&self.s, &self.cfg, &self.layers[li]);
        let (d, ff) = (c.d_model, c.d_ff);
        let gu = l.gate_up.as_ref().ok_or_else(|| {
            Error::Model("the fused 8-bit path needs the stacked gate/up matrix".into())
        })?;
        let (mut q1, mut q2) = (
            s.xq.view(0, gemv_q8::act_bytes(1, d))?,
            s.xq2.view(0, gemv_q8::act_bytes(1, ff))?,
        );
        let mut ss = s.ssq.view(0, s.ssq.len())?;
        let o = gemv_q8::FusedOut::Resid {
            x: &mut *x,
            w: &l.ffn_norm,
            q8: &mut q1,
            ss: &mut ss,
        };
        self.q8_fused(&l.o, &s.xq2, false, o)?;
        let mut a = s.a.view(0, ff)?;
        let launches = if self.q8_glu {
            let glu = gemv_q8::FusedOut::Glu {
                act: glu_act(c),
                y: &mut a,
                q8: &mut q2,
            };
            self.q8_fused(gu, &s.xq, true, glu)?;
            3
        } else {
            // the stacked gate/up GEMV with the norm's 1/rms, then the gated activation and its
            // 8-bit copy (glue::gated): on the H200 faster than the gated form's blocks of 16 rows
            let mut u = s.u.view(0, 2 * ff)?;
            self.q8_fused(gu, &s.xq, true, gemv_q8::FusedOut::Plain(&mut u))?;
            let (gt, up) = (s.u.view(0, ff)?, s.u.view(ff, ff)?);
            let gelu = c.activation == Activation::GeluTanh;
            glue::gated(
                &self.dev,
                &self.stream,
                &gt,
                &up,
                &mut a,
                1,
                ff,
                gelu,
                Some(&mut q2),
            )?;
            4
        };
        let next = match self.layers.get(li + 1) {
            Some(n) => &n.attn_norm,
            None => &self.out_norm,
        };
        let down = gemv_q8::FusedOut::Resid {
            x,
            w: next,
            q8: &mut q1,
            ss: &mut ss,
        };
        self.q8_fused(&l.down, &s.xq2, false, down)?;
        Ok(launches)
    }

    /// A step's residual add and norm as a launch of its own (`glue::resid_norm`): `x += r'` (r' = r,
    /// or its post-norm with weight `post`), `h = RMSNorm(x) · w`, and h's 8-bit copy where the step's
    /// GEMVs read one.
    fn resid_norm_rows(
        &self,
        x: &mut Buffer<f32>,
        r: &Buffer<f16>,
        post: Option<&Buffer<f32>>,
        w: &Buffer<f32>,
        h: &mut Buffer<f16>,
        t: usize,
    ) -> Result<()> {
        let (c, d) = (&self.cfg, self.cfg.d_model);
        glue::resid_norm(
            &self.dev,
            &self.stream,
            x,
            t,
            d,
            1.0,
            Some(r),
            post,
            w,
            c.rms_eps,
            Some(h),
            self.q8_out(t, d)?.as_mut(),
        )
    }

    /// The gate/up GEMVs and the gated activation of a layer from its normalized input `h` into
    /// `a`: one fused `gemv_glu` where [`Self::glu_fused`], else the GEMVs and `glue::gated`.
    /// Returns the launches made.
    fn launch_ffn_in(
        &self,
        l: &Layer,
        h: &Buffer<f16>,
        a: &mut Buffer<f16>,
        t: usize,
    ) -> Result<usize> {
        let (c, s, dev, st) = (&self.cfg, &self.s, &self.dev, &self.stream);
        let ff = c.d_ff;
        let (gt, up, launches) = match &l.gate_up {
            Some(f) if t == 1 && self.glu_fused(f) => {
                // gate, up and the gated activation in one launch, straight into a
                let hv = h.view(0, f.k)?;
                gemv::gemv_glu(dev, st, f.fmt, &f.w, ff, f.k, &hv, 1, a, glu_act(c))?;
                return Ok(1);
            }
            Some(f) if t == 1 => {
                self.lin(f, h, 1, None, &s.u)?;
                (s.u.view(0, ff)?, s.u.view(ff, ff)?, 2)
            }
            _ => {
                self.lin(&l.gate, h, t, None, &s.g)?;
                self.lin(&l.up, h, t, None, &s.u)?;
                (s.g.view(0, t * ff)?, s.u.view(0, t * ff)?, 3)
            }
        };
        glue::gated(
            dev,
            st,
            &gt,
            &up,
            a,
            t,
            ff,
            c.activation == Activation::GeluTanh,
            self.q8_out(t, ff)?.as_mut(),
        )?;
        Ok(launches)
    }

    /// Logits (f16, into the logits scratch) and argmax of wanted rows `c0..c0+n` (n ≤ LOGIT_ROWS).
    /// `all_rows`: they are every row of the step (HostStep::all_rows), read from the last norm's
    /// output and its 8-bit copy. Returns the launches made.
    fn launch_logits(&self, c0: usize, n: usize, all_rows: bool) -> Result<usize> {
        let (d, vocab) = (self.cfg.d_model, self.cfg.vocab_size);
        let lg = self.s.logits.view(0, n * vocab)?;
        if all_rows && self.q8_step.load(std::sync::atomic::Ordering::Relaxed) {
            // the fused 8-bit path: the output norm's 8-bit input is in s.xq, 1/rms applied here
            let mut lg = lg;
            self.q8_fused(
                &self.out,
                &self.s.xq,
                true,
                gemv_q8::FusedOut::Plain(&mut lg),
            )?;
            let mut am = self.s.amax.view(c0, n)?;
            sampling::argmax_rows(&self.dev, &self.stream, &lg, n, vocab, &mut am)?;
            return Ok(2);
        }
        let (xr, launches) = match all_rows {
            true => (self.s.h.view(c0 * d, n * d)?, 0),
            false => {
                let xr = self.s.rows_h.view(c0 * d, n * d)?;
                let launches = self.quantize(&xr, n, d)?;
                (xr, launches)
            }
        };
        self.lin(&self.out, &xr, n, None, &lg)?;
        let mut am = self.s.amax.view(c0, n)?;
        sampling::argmax_rows(&self.dev, &self.stream, &lg, n, vocab, &mut am)?;
        Ok(launches + 2)
    }

    /// Copy `n` logits rows from the scratch to `out` (f32).
    fn read_logits(&mut self, n: usize, out: &mut Vec<f32>) -> Result<()> {
        let len = n * self.cfg.vocab_size;
        self.s
            .logits
            .copy_to_pinned(0..len, &mut self.pin_logits, 0, &self.stream)?;
        self.stream.synchronize()?;
        out.extend(self.pin_logits.as_slice()[..len].iter().map(|v| v.to_f32()));
        Ok(())
    }
}

/// Host-side facts of a step that the ops check (and that do not change between graph replays of
/// the same shape).
struct HostStep {
    cu: Vec<i32>,
    ctx: Vec<i32>,
    kv_lens: Vec<i32>,
    out_rows: usize,
    /// The wanted rows are every row in order, at most LOGIT_ROWS of them (a decode step's): the
    /// logits read the last norm's output (and its 8-bit copy) in place, with no gather and no
    /// quantize launch.
    all_rows: bool,
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!(
            "{} ({})",
            self.dev.target().name,
            self.dev.target().full_name()
        )
    }

    fn memory(&self) -> MemoryReport {
        MemoryReport {
            weights: self.weight_bytes,
            kv: self.kv_bytes,
            scratch: self.scratch_bytes.min(self.pool.capacity()),
            free: self.dev.mem_info().ok().map(|(f, _)| f as usize),
        }
    }

    fn counters(&self) -> super::BackendCounters {
        super::BackendCounters {
            launches_last_step: self.launches_last_step,
            graph_replays: self.graph_replays,
            graphs: self.graphs.len(),
            device_allocated: self.dev.allocated_bytes(),
        }
    }

    fn forward(&mut self, b: &ForwardBatch, want_logits: bool) -> Result<StepResult> {
        b.validate(
            self.cfg.vocab_size,
            self.limits.page_size,
            self.limits.num_pages,
        )?;
        let t = b.total();
        let nseq = b.nseq();
        let r = b.out_rows.len();
        if t > self.limits.max_batch_tokens
            || nseq > self.limits.max_seqs
            || b.max_pages != self.layout.max_pages
        {
            return Err(Error::Model(format!(
                "step of {t} tokens / {nseq} sequences / {} pages per sequence does not fit the backend ({} / {} / {})",
                b.max_pages, self.limits.max_batch_tokens, self.limits.max_seqs, self.layout.max_pages
            )));
        }
        self.refresh_graphs();
        self.upload_inputs(b)?;
        let decode_step = nseq > 0 && b.cu.windows(2).all(|w| w[1] - w[0] == 1) && r <= LOGIT_ROWS;
        let kv = b.kv_lens();
        let host = HostStep {
            cu: b.cu.clone(),
            ctx: b.ctx_lens.clone(),
            kv_lens: kv.clone(),
            out_rows: r,
            // (out_rows is strictly increasing: r == t means every row, in order)
            all_rows: r == t && r <= LOGIT_ROWS,
        };
        let mut logits = Vec::new();
        if decode_step {
            let maxkv = kv.iter().copied().max().unwrap_or(1).max(1) as usize;
            let bucket = maxkv
                .next_power_of_two()
                .max(256)
                .min(self.limits.ctx_size.next_power_of_two());
            let pkey = (nseq, bucket);
            let mut plan = match self.plans.remove(&pkey) {
                Some(p) => p,
                None => {
                    let fake = Batch::new(
                        &self.dev,
                        &(0..=nseq as i32).collect::<Vec<_>>(),
                        &vec![bucket as i32; nseq],
                    )?;
                    let mut p = DecodePlan::new(
                        &self.dev,
                        &fake,
                        self.cfg.n_heads,
                        self.cfg.n_kv_heads,
                        self.cfg.head_dim,
                    )?;
                    p.fused_merge &= self
                        .fuse
                        .1
                        .unwrap_or(matches!(p.kernel, decode::DecodeKernel::Mc(_)));
                    p
                }
            };
            let gkey = (nseq, bucket, r);
            let seen = self.seen.entry(gkey).or_insert(0);
            *seen += 1;
            let replay = self.use_graphs && *seen >= 2;
            let res = (|| -> Result<()> {
                if replay {
                    if !self.graphs.contains_key(&gkey) {
                        self.stream.begin_capture()?;
                        let res = self
                            .launch_layers(t, nseq, &host, Some(&mut plan))
                            .and_then(|n| {
                                Ok(n + if r > 0 {
                                    self.launch_logits(0, r, host.all_rows)?
                                } else {
                                    0
                                })
                            });
                        let graph = self.stream.end_capture();
                        self.launches_last_step = res?;
                        let exec = graph?.instantiate()?;
                        self.graphs.insert(gkey, Captured { exec });
                    }
                    let g = self
                        .graphs
                        .get(&gkey)
                        .ok_or_else(|| Error::Model("graph missing".into()))?;
                    g.exec.launch(&self.stream)?;
                    self.graph_replays += 1;
                } else {
                    self.launches_last_step =
                        self.launch_layers(t, nseq, &host, Some(&mut plan))?
                            + if r > 0 {
                                self.launch_logits(0, r, host.all_rows)?
                            } else {
                                0
                            };
                }
                if want_logits && r > 0 {
                    self.read_logits(r, &mut logits)?;
                }
                Ok(())
            })();
            self.plans.insert(pkey, plan);
            res?;
        } else {
            let mut launches = self.launch_layers(t, nseq, &host, None)?;
            for c0 in (0..r).step_by(LOGIT_ROWS) {
                let n = LOGIT_ROWS.min(r - c0);
                launches += self.launch_logits(c0, n, host.all_rows)?;
                if want_logits {
                    self.read_logits(n, &mut logits)?;
                }
            }
            self.launches_last_step = launches;
        }
        self.s
            .amax
            .copy_to_pinned(0..r, &mut self.pin_amax, 0, &self.stream)?;
        self.stream.synchronize()?;
        let argmax = self.pin_amax.as_slice()[..r]
            .iter()
            .map(|&v| v.max(0) as u32)
            .collect();
        if self.cfg.final_softcap > 0.0 {
            let cap = self.cfg.final_softcap;
            logits.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
        }
        Ok(StepResult {
            logits: if want_logits { logits } else { Vec::new() },
            argmax,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_blas_thresholds_by_matrix_size() {
        // Llama-3-8B's 4096 x 4096: fused below 48 tokens
        assert!(!prefill_blas_default(32, 4096, 4096, None));
        assert!(prefill_blas_default(48, 4096, 4096, None));
        // SmolLM2's 1536 x 576: fused below 512 tokens
        assert!(!prefill_blas_default(256, 1536, 576, None));
        assert!(prefill_blas_default(512, 1536, 576, None));
        // the override applies to every size
        assert!(prefill_blas_default(16, 1536, 576, Some(16)));
        assert!(!prefill_blas_default(100, 4096, 4096, Some(1000)));
    }
}
