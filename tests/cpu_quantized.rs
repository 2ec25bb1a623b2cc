//! Quantized ops without a GPU: every dequant / gemv instance compiles for every available target,
//! launch-shape validation, CPU references, and `rocmforge gguf` end to end on the CPU.

mod common;
use common::*;

use rocmforge::gguf::{GgufWriter, Value};
use rocmforge::jit::{cache, DiskCache, Jit, KernelSpec};
use rocmforge::ops::quantized::{self, dequant, gemv, kernel_qk};
use rocmforge::quant::{self, QuantType};
use std::process::Command;

#[test]
fn every_instance_compiles_for_every_available_target() {
    let dir = tempfile::tempdir().unwrap();
    let jit = Jit::new(DiskCache::new(
        Some(dir.path().to_path_buf()),
        cache::DEFAULT_MAX_BYTES,
    ));
    let mut work = Vec::new();
    for t in available_targets() {
        for fam in quantized::families() {
            let all = KernelSpec::enumerate(fam, t.wave_size);
            assert!(!all.is_empty());
            work.extend(all.into_iter().map(|s| (s, t.clone())));
        }
    }
    let n = work.len();
    let failed: Vec<String> = jit
        .compile_many(&work, || {})
        .into_iter()
        .zip(&work)
        .filter_map(|(r, (s, t))| r.err().map(|e| format!("{s} [{t}]: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {n} failed:\n{}",
        failed.len(),
        failed
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn instance_counts_and_uris() {
    assert_eq!(KernelSpec::enumerate(&dequant::FAMILY, 32).len(), 21 * 3);
    // b1: r4; b8: r2 (every format and dtype) + r16 (mma formats, f16/bf16); gemv_wave: b1;
    // the GLU epilogues (silu, gelu_tanh): b1 r4 and b8 r2, f16/bf16
    assert_eq!(
        KernelSpec::enumerate(&gemv::FAMILY, 64).len(),
        21 * 3 * 2 + gemv::MMA_FORMATS.len() * 2 + 21 * 2 * 2 * 2
    );
    // gemv_wave: every format and dtype, and the GLU epilogues for the formats of 32-element blocks;
    // each of those with f16 x again with the two input-norm prologues (gemv_norm), mxfp4 excepted
    let small = QuantType::all()
        .into_iter()
        .filter(|t| t.block_elems() <= 32)
        .count();
    assert_eq!(
        KernelSpec::enumerate(&gemv::WAVE_FAMILY, 32).len(),
        21 * 3 + small * 2 * 2 + (20 + (small - 1) * 2) * 2
    );
    let s = gemv::spec(QuantType::Q4_0, "f16", 1, gemv::GemvConfig { rows: 8 }, 32).unwrap();
    assert_eq!(s.uri(), "gemv_wave.q4_0.f16.none.none.w32");
    assert!(
        gemv::spec(QuantType::Q4_0, "f16", 3, gemv::GemvConfig { rows: 8 }, 32)
            .unwrap_err()
            .to_string()
            .contains("batch 1")
    );
    assert!(
        gemv::spec(QuantType::Q4_0, "f16", 1, gemv::GemvConfig { rows: 2 }, 32)
            .unwrap_err()
            .to_string()
            .contains("batch 8 only")
    );
    let s = gemv::spec(QuantType::Q4_K, "f16", 3, gemv::GemvConfig { rows: 2 }, 32).unwrap();
    assert_eq!(s.uri(), "gemv.q4_K.f16.b8.r2.none.w32");
    let s = gemv::spec(
        QuantType::Q6_K,
        "bf16",
        8,
        gemv::GemvConfig { rows: 16 },
        32,
    )
    .unwrap();
    assert_eq!(s.uri(), "gemv.q6_K.bf16.b8.r16.none.w32");
    assert!(
        gemv::spec(QuantType::Q4_0, "f16", 8, gemv::GemvConfig { rows: 4 }, 32)
            .unwrap_err()
            .to_string()
            .contains("batch 1")
    );
    // the mma tile's shared-memory ring (plus its 5 KiB reduction array) fits the 99 KiB a block may
    // opt into on sm_86/sm_89, the smallest of the mma.sync targets
    for f in gemv::MMA_FORMATS {
        let b = gemv::mma_shared_bytes(QuantType::from_name(f).unwrap());
        assert!(b + 5120 <= 99 * 1024, "{f}: {b} bytes");
    }
    // rows 16 takes 1..8 right-hand sides on one instance compiled for 8
    for b in [1, 3, 8] {
        let s = gemv::spec(QuantType::Q5_0, "f16", b, gemv::GemvConfig { rows: 16 }, 32).unwrap();
        assert_eq!(s.uri(), "gemv.q5_0.f16.b8.r16.none.w32");
    }
    for (ty, dt, b) in [
        (QuantType::Q4_0, "f32", 8),
        (QuantType::Q8_1, "f16", 8),
        (QuantType::F16, "f16", 1),
    ] {
        let e = gemv::spec(ty, dt, b, gemv::GemvConfig { rows: 16 }, 32)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mma tile"), "{e}");
    }
    assert!(
        gemv::spec(QuantType::Q4_0, "f16", 9, gemv::GemvConfig { rows: 2 }, 32)
            .unwrap_err()
            .to_string()
            .contains("batch 9")
    );
    // defaults: mma tile only where mma.sync exists and the format has a decoder
    let sm90 = rocmforge::gpu::Target::named("sm_90").unwrap();
    let gfx = rocmforge::gpu::Target::named("gfx90a").unwrap();
    let d = |ty, dt, b, t| gemv::GemvConfig::default_for(ty, dt, b, t).rows;
    assert_eq!(d(QuantType::Q4_0, "f16", 1, &sm90), 8);
    assert_eq!(d(QuantType::Q4_K, "f32", 1, &gfx), 4);
    assert_eq!(d(QuantType::Q4_0, "f16", 8, &sm90), 16);
    assert_eq!(d(QuantType::Q4_0, "f16", 3, &sm90), 16);
    assert_eq!(d(QuantType::Q4_0, "f32", 8, &sm90), 2);
    assert_eq!(d(QuantType::Q5_0, "bf16", 8, &sm90), 16);
    assert_eq!(d(QuantType::Q8_1, "f16", 8, &sm90), 2);
    assert_eq!(d(QuantType::Q4_0, "f16", 8, &gfx), 2);
    for ty in QuantType::all() {
        for dt in ["f32", "f16", "bf16"] {
            for b in [1, 3, 8] {
                let def = gemv::GemvConfig::default_for(ty, dt, b, &sm90);
                let c = gemv::GemvConfig::candidates(ty, dt, b);
                assert!(c.contains(&def), "{ty} {dt} {b}: {def:?} not in {c:?}");
                for cfg in c {
                    gemv::spec(ty, dt, b, cfg, 32).unwrap();
                }
            }
        }
    }
    // short rows of tall matrices take gemv_wave_g (rows 32) at batch 1
    let (q41, q80) = (QuantType::Q4_1, QuantType::Q8_0);
    assert!(gemv::wave_groups_pay(q41, 49152, 576, 32));
    assert!(gemv::wave_groups_pay(q80, 49152, 576, 32));
    assert!(gemv::wave_groups_pay(q80, 262144, 640, 32));
    assert!(gemv::wave_groups_pay(q41, 49152, 576, 64));
    assert!(
        !gemv::wave_groups_pay(q41, 576, 576, 32),
        "a short matrix stays on gemv_wave"
    );
    assert!(
        !gemv::wave_groups_pay(q80, 128256, 4096, 32),
        "4096 columns keep every lane busy"
    );
    assert!(!gemv::wave_groups_pay(q41, 14336, 4096, 64));
    // rf_gemv_groups: 8 bits a weight or more take half a wave a group, the rest a quarter
    assert_eq!(gemv::wave_group_lanes(q80, 32), 16);
    assert_eq!(gemv::wave_group_lanes(QuantType::F16, 64), 32);
    assert_eq!(gemv::wave_group_lanes(q41, 32), 8);
    assert_eq!(gemv::wave_group_lanes(QuantType::Q6_K, 64), 16);
    let ds = |ty, b, shape| gemv::GemvConfig::default_for_shape(ty, "f16", b, shape, &sm90).rows;
    assert_eq!(ds(QuantType::Q4_1, 1, (49152, 576)), gemv::WAVE_GROUP_ROWS);
    assert_eq!(ds(QuantType::Q8_0, 1, (262144, 640)), gemv::WAVE_GROUP_ROWS);
    assert_eq!(ds(QuantType::Q4_1, 1, (4096, 4096)), gemv::WAVE_ROWS);
    assert_eq!(
        ds(QuantType::Q4_K, 1, (49152, 576)),
        4,
        "q4_K's batch-1 kernel is the staged one"
    );
    assert_eq!(ds(QuantType::Q4_1, 2, (49152, 576)), 16);
    let g = gemv::GemvConfig {
        rows: gemv::WAVE_GROUP_ROWS,
    };
    assert_eq!(
        gemv::spec(QuantType::Q4_1, "f16", 1, g, 32).unwrap().uri(),
        "gemv_wave_g.q4_1.f16.w32"
    );
    for e in [
        gemv::spec(QuantType::Q4_1, "f16", 3, g, 32).unwrap_err(),
        gemv::spec_with_glu(QuantType::Q4_1, "f16", 1, g, Some(gemv::GluAct::Silu), 32)
            .unwrap_err(),
    ] {
        assert!(e.to_string().contains("gemv_wave_g"), "{e}");
    }
    assert_eq!(
        KernelSpec::enumerate(&gemv::WAVE_GROUP_FAMILY, 64).len(),
        21 * 3
    );
    assert_eq!(dequant::tile_octets(QuantType::Q4_0), 1024);
    assert_eq!(dequant::tile_octets(QuantType::F32), 256);
    assert_eq!(dequant::tile_octets(QuantType::Q8_K), 768);
    assert!(dequant::spec(QuantType::MX_FP6_E3M2, "f64", 32)
        .unwrap_err()
        .to_string()
        .contains("supported: f32, f16, bf16"));
    // the preamble carries every rendered block struct
    let p = quantized::quant_preamble();
    for ty in QuantType::all() {
        assert!(p.contains(&ty.layout().c_struct()), "{ty}");
        assert!(p.contains(&format!("struct rf_fmt_{} ", ty.name())), "{ty}");
    }
}

#[test]
fn gemv_glu_specs_configs_and_checks() {
    use gemv::{GemvConfig, GluAct};
    let cfg = |rows| GemvConfig { rows };
    let s = gemv::spec_with_glu(QuantType::Q4_1, "f16", 1, cfg(4), Some(GluAct::Silu), 32).unwrap();
    assert_eq!(s.uri(), "gemv.q4_1.f16.b1.r4.silu.w32");
    let s = gemv::spec_with_glu(
        QuantType::Q6_K,
        "bf16",
        3,
        cfg(2),
        Some(GluAct::GeluTanh),
        64,
    )
    .unwrap();
    assert_eq!(s.uri(), "gemv.q6_K.bf16.b8.r2.gelu_tanh.w64");
    assert_eq!(
        gemv::spec_with_glu(QuantType::Q4_1, "f16", 1, cfg(4), None, 32).unwrap(),
        gemv::spec(QuantType::Q4_1, "f16", 1, cfg(4), 32).unwrap()
    );
    // the stand-in of a fused rows-4 instance: gemv_wave with the same epilogue, where it has one
    let sm90 = rocmforge::gpu::Target::named("sm_90").unwrap();
    let gfx = rocmforge::gpu::Target::named("gfx942").unwrap();
    let s = gemv::spec_with_glu(QuantType::Q4_K, "f16", 1, cfg(4), Some(GluAct::Silu), 32).unwrap();
    assert_eq!(rocmforge::ops::fallback::fallback(&s, &sm90).unwrap(), None);
    let s = gemv::spec_with_glu(QuantType::Q4_1, "f16", 1, cfg(4), Some(GluAct::Silu), 32).unwrap();
    assert_eq!(
        rocmforge::ops::fallback::fallback(&s, &sm90)
            .unwrap()
            .map(|f| f.uri().to_string()),
        Some("gemv_wave.q4_1.f16.silu.none.w32".to_string())
    );
    let err = |ty, dt, b, rows| {
        gemv::spec_with_glu(ty, dt, b, cfg(rows), Some(GluAct::Silu), 32)
            .unwrap_err()
            .to_string()
    };
    assert!(err(QuantType::Q4_K, "f16", 1, 8).contains("gemv_wave"));
    let e = err(QuantType::Q4_0, "f16", 8, 16);
    assert!(e.contains("SIMT") && e.contains("rows 16"), "{e}");
    let e = err(QuantType::Q4_0, "f32", 1, 4);
    assert!(e.contains("f16 or bf16"), "{e}");
    // the configuration: the unfused one where the epilogue has it, else the SIMT kernel's
    let d = |ty, b, t| GemvConfig::default_for_glu(ty, "f16", b, t).rows;
    assert_eq!(d(QuantType::Q4_1, 1, &sm90), 8); // unfused: gemv_wave, which has the epilogue
    assert_eq!(d(QuantType::Q6_K, 1, &sm90), 4); // gemv_wave's epilogue is for 32-element blocks
    assert_eq!(d(QuantType::Q4_K, 1, &gfx), 4);
    assert_eq!(d(QuantType::Q4_0, 8, &sm90), 2); // unfused: the mma tile
    assert_eq!(d(QuantType::Q4_0, 3, &gfx), 2);
    for ty in QuantType::all() {
        for dt in gemv::GLU_DTYPES {
            for b in [1, 2, 3, 8] {
                let def = GemvConfig::default_for_glu(ty, dt, b, &sm90);
                let c = GemvConfig::glu_candidates(ty, dt, b);
                assert!(c.contains(&def), "{ty} {dt} {b}: {def:?} not in {c:?}");
                for cfg in c {
                    for act in [GluAct::Silu, GluAct::GeluTanh] {
                        gemv::spec_with_glu(ty, dt, b, cfg, Some(act), 32).unwrap();
                    }
                }
            }
        }
    }
    assert!(GemvConfig::glu_candidates(QuantType::Q4_0, "f32", 1).is_empty());

    // shapes: W is [gate; up], 2 x rows_out rows
    let (ty, rows_out, cols) = (QuantType::Q8_0, 3, 64);
    let rb = 2 * ty.block_bytes();
    let ok = gemv::check_glu(
        ty,
        rows_out,
        cols,
        2,
        2 * rows_out * rb,
        2 * cols,
        2 * rows_out,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let e = |r: rocmforge::error::Result<()>| r.unwrap_err().to_string();
    let odd = e(gemv::check_glu(
        ty,
        rows_out,
        cols,
        1,
        5 * rb,
        cols,
        rows_out,
    ));
    assert!(odd.contains("gemv_glu") && odd.contains("odd"), "{odd}");
    let half = e(gemv::check_glu(
        ty,
        rows_out,
        cols,
        1,
        rows_out * rb,
        cols,
        rows_out,
    ));
    assert!(half.contains("2 x 3 = 6"), "{half}");
    let partial = e(gemv::check_glu(
        ty,
        rows_out,
        cols,
        1,
        6 * rb + 3,
        cols,
        rows_out,
    ));
    assert!(partial.contains("bytes"), "{partial}");
    let e1 = e(gemv::check_glu(ty, rows_out, 48, 1, 6 * rb, 48, rows_out));
    assert!(e1.contains("multiple"), "{e1}");
    let ex = e(gemv::check_glu(
        ty,
        rows_out,
        cols,
        2,
        6 * rb,
        cols,
        2 * rows_out,
    ));
    assert!(ex.contains("x has"), "{ex}");
    let ey = e(gemv::check_glu(
        ty,
        rows_out,
        cols,
        2,
        6 * rb,
        2 * cols,
        2 * 2 * rows_out,
    ));
    assert!(ey.contains("y has"), "{ey}");
    let eb = e(gemv::check_glu(
        ty,
        rows_out,
        cols,
        9,
        6 * rb,
        9 * cols,
        9 * rows_out,
    ));
    assert!(eb.contains("batch 9"), "{eb}");
    let e0 = e(gemv::check_glu(ty, 0, cols, 1, 0, cols, 0));
    assert!(e0.contains("rows_out"), "{e0}");

    // the reference: gemv_ref of the stacked matrix, then act(gate) * up
    let batch = 3;
    let w = quant::quantize_to_vec(ty, &rand_f32(2 * rows_out * cols, 5)).unwrap();
    let x = rand_f32(batch * cols, 6);
    let gu = gemv::gemv_ref(ty, &w, 2 * rows_out, cols, &x, batch).unwrap();
    for act in [GluAct::Silu, GluAct::GeluTanh] {
        let y = gemv::gemv_glu_ref(ty, &w, rows_out, cols, &x, batch, act).unwrap();
        assert_eq!(y.len(), batch * rows_out);
        for b in 0..batch {
            for j in 0..rows_out {
                let (g, u) = (
                    gu[b * 2 * rows_out + j],
                    gu[b * 2 * rows_out + rows_out + j],
                );
                assert_eq!(y[b * rows_out + j], act.apply(g) * u);
            }
        }
    }
    assert!((GluAct::Silu.apply(1.0) - 0.7310585786300049).abs() < 1e-15);
    assert!((GluAct::GeluTanh.apply(1.0) - 0.8411919906082768).abs() < 1e-15);
    assert!(gemv::gemv_glu_ref(ty, &w, rows_out + 1, cols, &x, batch, GluAct::Silu).is_err());
}

#[test]
fn gemv_norm_specs_and_where_it_applies() {
    use gemv::GluAct;
    use rocmforge::ops::quantized::gemv_norm;
    let sm90 = rocmforge::gpu::Target::named("sm_90").unwrap();
    let gfx = rocmforge::gpu::Target::named("gfx942").unwrap();
    let s = gemv_norm::spec(QuantType::Q4_1, Some(GluAct::Silu), false, 32).unwrap();
    assert_eq!(s.uri(), "gemv_wave.q4_1.f16.silu.rms.w32");
    let s = gemv_norm::spec(QuantType::Q6_K, None, true, 64).unwrap();
    assert_eq!(s.uri(), "gemv_wave.q6_K.f16.none.rms_post.w64");
    // f16 only; the GLU epilogue for the formats of 32-element blocks only, as without the norm
    let e = KernelSpec::new(
        &gemv::WAVE_FAMILY,
        &[
            ("format", "q4_0".into()),
            ("dtype", "bf16".into()),
            ("glu", "none".into()),
            ("norm", "rms".into()),
        ],
        32,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("f16 x and y"), "{e}");
    let e = gemv_norm::spec(QuantType::Q4_K, Some(GluAct::Silu), false, 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("32-element blocks"), "{e}");
    let e = gemv_norm::spec(QuantType::MXFP4, None, false, 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mxfp4"), "{e}");
    assert!(!gemv_norm::applies(QuantType::MXFP4, 576, None, &sm90));
    // rows of up to 8 elements a thread: 1024 on wave32, 2048 on wave64
    assert_eq!(gemv_norm::max_cols(32), 1024);
    assert_eq!(gemv_norm::max_cols(64), 2048);
    // where the unfused GEMV would be gemv_wave, with a row that fits
    let silu = Some(GluAct::Silu);
    assert!(gemv_norm::applies(QuantType::Q4_1, 576, None, &sm90));
    assert!(gemv_norm::applies(QuantType::Q4_1, 576, silu, &sm90));
    assert!(gemv_norm::applies(QuantType::Q5_0, 640, silu, &gfx));
    assert!(gemv_norm::applies(QuantType::Q8_0, 2048, None, &gfx));
    assert!(!gemv_norm::applies(QuantType::Q8_0, 2048, None, &sm90));
    assert!(!gemv_norm::applies(QuantType::Q4_1, 4096, None, &sm90));
    assert!(!gemv_norm::applies(QuantType::Q4_1, 1000, None, &sm90));
    // q4_K's batch-1 GEMV is the staged rows-4 kernel, not gemv_wave
    assert!(!gemv_norm::applies(QuantType::Q4_K, 512, None, &sm90));
    assert!(!gemv_norm::applies(QuantType::Q6_K, 512, silu, &sm90));
}

#[test]
fn model_plans_name_the_fused_gate_up_instance() {
    use rocmforge::gguf::GgufFile;
    use rocmforge::model::config::ModelConfig;
    use rocmforge::model::engine::EngineLimits;
    let t = rocmforge::gpu::Target::named("sm_90").unwrap();
    let limits = |max_batch_tokens| EngineLimits {
        ctx_size: 256,
        page_size: 16,
        num_pages: 16,
        max_batch_tokens,
        max_seqs: 1,
    };
    for a in ["qwen2", "qwen3", "mistral"] {
        let g = GgufFile::open(format!("tests/data/tiny/{a}.gguf")).unwrap();
        let cfg = ModelConfig::from_gguf(&g).unwrap();
        let glu = |l| {
            rocmforge::model::gpu::plan_specs(&cfg, &g, &t, &limits(l))
                .unwrap()
                .into_iter()
                .filter(|s| s.family().name.starts_with("gemv") && s.str("glu") != "none")
                .collect::<Vec<_>>()
        };
        let q8 = rocmforge::model::gpu::q8_policy(&g);
        let specs = glu(512);
        if !q8 {
            assert!(!specs.is_empty(), "{a}: no fused gate/up instance");
        }
        for s in &specs {
            assert!(s.family().name == "gemv_wave" || s.int("batch") == 1, "{s}");
            assert_eq!(s.str("glu"), "silu", "{a}: {s}");
        }
        // single-token steps only: no stacked gate/up (hence no fusion) without 2-token steps
        assert!(glu(1).is_empty(), "{a}");
    }
}

#[test]
fn launch_shapes_are_checked() {
    let q = QuantType::Q4_0;
    let rb = q.row_bytes(64).unwrap();
    assert!(gemv::check(q, 3, 64, 1, 3 * rb, 64, 3).is_ok());
    assert!(gemv::check(q, 3, 64, 8, 3 * rb, 8 * 64, 8 * 3).is_ok());
    let e = gemv::check(q, 3, 48, 1, 3 * 27, 48, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a multiple"), "{e}");
    assert!(gemv::check(q, 3, 64, 1, 3 * rb - 1, 64, 3)
        .unwrap_err()
        .to_string()
        .contains("bytes"));
    assert!(gemv::check(q, 3, 64, 2, 3 * rb, 64, 6)
        .unwrap_err()
        .to_string()
        .contains("x has"));
    assert!(gemv::check(q, 3, 64, 1, 3 * rb, 64, 4)
        .unwrap_err()
        .to_string()
        .contains("y has"));
    assert!(gemv::check(q, 3, 64, 0, 3 * rb, 0, 0).is_err());
    assert!(gemv::check(q, 3, 64, 9, 3 * rb, 9 * 64, 27).is_err());
    assert!(gemv::check(q, 0, 64, 1, 0, 64, 0).is_err());
    let k = QuantType::Q6_K;
    assert!(gemv::check(k, 2, 128, 1, 2 * 105, 128, 2)
        .unwrap_err()
        .to_string()
        .contains("256"));
    // float formats go 8 elements at a time
    assert_eq!(kernel_qk(QuantType::F16), 8);
    assert!(dequant::check(QuantType::F32, 2, 12, 96, 2, 24)
        .unwrap_err()
        .to_string()
        .contains("multiple"));
    assert!(dequant::check(QuantType::F32, 2, 16, 128, 2, 32).is_ok());
    assert!(dequant::check(q, 2, 64, 2 * rb, 3, 128)
        .unwrap_err()
        .to_string()
        .contains("output has"));
}

#[test]
fn references() {
    let (rows, cols) = (5, 64);
    let src = rand_f32(rows * cols, 1);
    let w = quant::quantize_to_vec(QuantType::Q8_0, &src).unwrap();
    let full = dequant::dequant_ref(QuantType::Q8_0, &w, rows, cols, None).unwrap();
    assert_eq!(
        full,
        quant::dequantize_to_vec(QuantType::Q8_0, &w, rows * cols).unwrap()
    );
    let some = dequant::dequant_ref(QuantType::Q8_0, &w, rows, cols, Some(&[4, 0, 7])).unwrap();
    assert_eq!(&some[..cols], &full[4 * cols..5 * cols]);
    assert_eq!(&some[cols..2 * cols], &full[..cols]);
    assert!(some[2 * cols..].iter().all(|v| v.is_nan()));
    let x = rand_f32(2 * cols, 2);
    let y = gemv::gemv_ref(QuantType::Q8_0, &w, rows, cols, &x, 2).unwrap();
    for b in 0..2 {
        for r in 0..rows {
            let want: f64 = (0..cols)
                .map(|k| full[r * cols + k] as f64 * x[b * cols + k] as f64)
                .sum();
            assert!((y[b * rows + r] - want).abs() < 1e-9);
        }
    }
}

fn write_fixture(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    Vec<(String, QuantType, Vec<u64>, Vec<u8>)>,
) {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("test".into()));
    let mut tensors = Vec::new();
    for (i, (ty, shape)) in [
        (QuantType::Q4_1, vec![64u64, 3]),
        (QuantType::Q6_K, vec![256, 2]),
        (QuantType::F16, vec![40]),
        (QuantType::MXFP4, vec![32, 5]),
    ]
    .into_iter()
    .enumerate()
    {
        let n: u64 = shape.iter().product();
        let data = quant::quantize_to_vec(ty, &rand_f32(n as usize, 10 + i as u64)).unwrap();
        let name = format!("t{i}.{}", ty.name());
        w.add_tensor(name.clone(), &shape, ty, data.clone())
            .unwrap();
        tensors.push((name, ty, shape, data));
    }
    let p = dir.join("fixture.gguf");
    w.write(&p).unwrap();
    (p, tensors)
}

#[test]
fn gguf_cli_dequant_matches_the_cpu_dequantizer() {
    let dir = tempfile::tempdir().unwrap();
    let (file, tensors) = write_fixture(dir.path());
    for (name, ty, shape, data) in &tensors {
        let out = dir.path().join(format!("{name}.f32"));
        let st = Command::new(cli_bin())
            .args(["gguf", "dequant"])
            .arg(&file)
            .args(["--tensor", name, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let got: Vec<f32> = std::fs::read(&out)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let n: u64 = shape.iter().product();
        let want = quant::dequantize_to_vec(*ty, data, n as usize).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}"
        );
    }
    let info = Command::new(cli_bin())
        .args(["gguf", "info"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success());
    assert!(
        text.contains("t1.q6_K")
            && text.contains("[256, 2]")
            && text.contains("general.architecture"),
        "{text}"
    );
}

#[test]
fn gguf_cli_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = write_fixture(dir.path());
    let out = dir.path().join("o.f32");
    let run = |args: &[&str], f: &std::path::Path| {
        Command::new(cli_bin())
            .args(args)
            .arg(f)
            .args(["--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let r = run(&["gguf", "dequant", "--tensor", "nope"], &file);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("no tensor named `nope`") && err.contains("t0.q4_1"),
        "{err}"
    );
    let bad = dir.path().join("bad.gguf");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(40);
    std::fs::write(&bad, &bytes).unwrap();
    let r = run(&["gguf", "dequant", "--tensor", "t0.q4_1"], &bad);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("GGUF"), "{err}");
    // unsupported type id 4 (removed Q4_2) in an otherwise valid header
    let mut bytes = std::fs::read(&file).unwrap();
    let pos = bytes.windows(7).position(|w| w == b"t0.q4_1").unwrap() + 7;
    // after the name: n_dims (u32), dims (u64 each), then the type (u32)
    let ndims = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
    let tpos = pos + 4 + 8 * ndims;
    bytes[tpos..tpos + 4].copy_from_slice(&4u32.to_le_bytes());
    std::fs::write(&bad, &bytes).unwrap();
    let r = run(&["gguf", "dequant", "--tensor", "t0.q4_1"], &bad);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("type"), "{err}");
}

#[test]
fn q8_activation_reference() {
    use rocmforge::ops::quantized::gemv_q8;
    // one block with amax 127: d = 1, codes are x rounded half to even; one all-zero block
    let mut x = vec![0f32; 64];
    x[0] = 127.0;
    x[1] = 0.5;
    x[2] = -1.5;
    x[3] = 2.5;
    x[20] = -127.0;
    let (q, s) = gemv_q8::quantize_x_ref(&x, 1, 64).unwrap();
    assert_eq!(&q[..4], &[127, 0, -2, 2]);
    assert_eq!(q[20], -127);
    assert_eq!(s[0], [1.0, 127.0]);
    assert_eq!(s[1], [1.0, -127.0]);
    assert_eq!(s[2], [0.0, 0.0]);
    assert_eq!(s[3], [0.0, 0.0]);
    assert!(q[32..].iter().all(|&v| v == 0));
    // the reference gemv is W·(d q): exact for a one-hot row against these codes
    let w = quant::quantize_to_vec(QuantType::Q8_0, &{
        let mut r = vec![0f32; 64];
        r[0] = 1.0;
        r
    })
    .unwrap();
    let y = gemv_q8::gemv_q8_ref(QuantType::Q8_0, &w, 1, 64, &x, 1).unwrap();
    let w0 = quant::dequantize_to_vec(QuantType::Q8_0, &w, 64).unwrap()[0] as f64;
    assert_eq!(y, vec![w0 * 127.0]);
    // bad shapes are errors
    assert!(gemv_q8::quantize_x_ref(&x[..48], 1, 48).is_err());
    assert!(gemv_q8::quantize_x_ref(&x, 2, 64).is_err());
    // every integer format of the family has a CPU layout and kernel block size
    for f in gemv_q8::FORMATS {
        let ty = QuantType::from_name(f).unwrap();
        assert!(gemv_q8::supports(ty));
        assert!(kernel_qk(ty) % 32 == 0, "{f}");
    }
}

#[test]
fn q8_fused_specs_and_resid_reference() {
    use rocmforge::ops::quantized::gemv_q8;
    let sm90 = rocmforge::gpu::Target::named("sm_90").unwrap();
    let s = gemv_q8::fused_spec(QuantType::Q4_K, 4096, "resid", None, &sm90).unwrap();
    assert_eq!(s.uri(), "gemv_q8.q4_K.f16.b1.r4.w4.resid.w32");
    // the forms with an 8-bit output: blocks of 16 rows and 512 threads, resid 4 rows a sub-block,
    // the gated forms 2 (4 matrix rows); the norm input alone: the plain default
    let s = gemv_q8::fused_spec(QuantType::Q4_K, 14336, "norm_silu", None, &sm90).unwrap();
    assert_eq!((s.int("rows"), s.int("waves")), (2, 2));
    let s = gemv_q8::fused_spec(QuantType::Q2_K, 14336, "norm_silu", None, &sm90).unwrap();
    assert_eq!(s.int("rows"), 1);
    let s = gemv_q8::fused_spec(QuantType::Q3_K, 4096, "resid", None, &sm90).unwrap();
    assert_eq!((s.int("rows"), s.int("waves")), (2, 2));
    let plain = gemv_q8::GemvQ8Config::default_for(QuantType::Q6_K, "f16", 1, 1024, &sm90);
    let s = gemv_q8::fused_spec(QuantType::Q6_K, 1024, "norm", None, &sm90).unwrap();
    assert_eq!(s.int("rows") as usize, plain.rows);
    let gfx = rocmforge::gpu::Target::named("gfx942").unwrap();
    let s = gemv_q8::fused_spec(QuantType::Q4_K, 4096, "resid", None, &gfx).unwrap();
    assert_eq!((s.int("rows"), s.int("waves")), (4, 2));
    let s = gemv_q8::fused_spec(QuantType::Q4_K, 14336, "norm_silu", None, &gfx).unwrap();
    assert_eq!((s.int("rows"), s.int("waves")), (2, 1));
    // q2_K's gated form would need 1 row a sub-block: 16 sub-blocks of a wave of 64 are 1024 threads
    assert!(gemv_q8::fused_spec(QuantType::Q2_K, 14336, "norm_silu", None, &gfx).is_err());
    let cfg = |rows| gemv_q8::GemvQ8Config { rows, waves: 4 };
    // fused forms: batch 1 and f16 y only; the gated ones within the format's accumulators
    let e = gemv_q8::spec_fused(QuantType::Q4_0, "f16", 2, cfg(1), "norm", 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch 1"), "{e}");
    let e = gemv_q8::spec_fused(QuantType::Q4_0, "f32", 1, cfg(1), "resid", 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("f16"), "{e}");
    let cfg2 = gemv_q8::GemvQ8Config { rows: 2, waves: 2 };
    assert!(gemv_q8::spec_fused(QuantType::Q2_K, "f16", 1, cfg2, "norm_gelu", 32).is_err());
    assert!(gemv_q8::spec_fused(QuantType::Q4_0, "f16", 1, cfg2, "norm_silu", 32).is_ok());
    assert!(gemv_q8::spec_fused(QuantType::Q4_0, "f16", 1, cfg(4), "norm_silu", 32).is_err());
    // every format, wave32: rows 1, 2, 4 for norm and resid (16 / rows sub-blocks of 512 / 16 *
    // rows threads; resid 1, 2 for q2_K, q3_K) and 1, 2 for each gated form (1 for q2_K, q3_K)
    let fused = KernelSpec::enumerate(&gemv_q8::FAMILY, 32)
        .into_iter()
        .filter(|s| s.str("fuse") != "none")
        .count();
    assert_eq!(fused, 9 * 10 + 2 * 7);
    let e = gemv_q8::spec_fused(QuantType::Q4_0, "f16", 1, cfg(2), "resid", 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("512 threads"), "{e}");
    let plain = |w| gemv_q8::GemvQ8Config { rows: 4, waves: w };
    assert!(gemv_q8::spec(QuantType::Q4_0, "f16", 1, plain(2), 32).is_err());
    // the residual epilogue's reference: x + f16(y), the 8-bit copy of x·w, sums of squares
    let x = vec![1.0f32; 32];
    let y: Vec<half::f16> = (0..32).map(|i| half::f16::from_f32(i as f32)).collect();
    let w = vec![0.5f32; 32];
    let (xs, q, p, ss) = gemv_q8::resid_ref(&x, &y, &w).unwrap();
    assert_eq!(xs[5], 6.0);
    assert_eq!(q[15], 127);
    assert_eq!(p[1][0], 16.0 / 127.0);
    assert_eq!(ss[0], (1..=16).map(|v| (v * v) as f32).sum::<f32>());
    assert!(gemv_q8::resid_ref(&x[..24], &y[..24], &w[..24]).is_err());
}
