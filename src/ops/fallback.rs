//! Fast-compiling stand-ins for the specialized instances a model loads (serving while compiling,
//! see `jit::early`): the same op with the same arguments and semantics, on the portable path. Each
//! op derives its launch shape from the instance it is given, so a stand-in needs no other help.
//!
//! | specialized instance               | stand-in                   | NVRTC sm_90, one core (ms) |
//! |------------------------------------|----------------------------|----------------------------|
//! | `qgemm` MFMA / WMMA, its one tile  | `qgemm` SIMT, its one tile | 250–370 → 200–300          |
//! | `qgemm` mma.sync, 5 tiles          | `qgemm` SIMT, its one tile | 300–600 each → 400 (2-core host, q4_K) |
//! | `gemv` rows 4 (q4_K, batch 1)      | `gemv_wave` (rows 8)       | 506 → 145                  |
//!
//! A stand-in only earns its place when it compiles faster than what it stands in for: the mma
//! tile of `gemv` at batch 8 (rows 16) and the mma.sync prefill attention compile as fast as their
//! SIMT / scalar paths (measured), so they have none. Every other family has none either.

use crate::error::Result;
use crate::gpu::Target;
use crate::jit::KernelSpec;
use crate::ops::mlp::qgemm;
use crate::ops::quantized::gemv::{self, GemvConfig};
use crate::quant::QuantType;

/// The stand-in of `spec` on `target`, if its family has one for these parameters. A stand-in has
/// no stand-in itself.
pub fn fallback(spec: &KernelSpec, target: &Target) -> Result<Option<KernelSpec>> {
    let wave = spec.wave();
    Ok(match spec.family().name {
        "qgemm" if spec.str("path") != "simt" => {
            let fmt = QuantType::from_name(spec.str("wfmt"))?;
            let tile = qgemm::tiles("simt")[0];
            Some(qgemm::spec(fmt, target, Some("simt"), tile)?)
        }
        // gemv_wave with the same epilogue (none for a fused instance of a format gemv_wave's GLU
        // epilogue does not take)
        "gemv" if spec.int("rows") == 4 => {
            let fmt = QuantType::from_name(spec.str("format"))?;
            let glu = gemv::GluAct::from_name(spec.str("glu"));
            let cfg = GemvConfig {
                rows: gemv::WAVE_ROWS,
            };
            match gemv::spec_with_glu(fmt, spec.str("dtype"), 1, cfg, glu, wave) {
                Ok(s) => Some(s),
                Err(_) if glu.is_some() => None,
                Err(e) => return Err(e),
            }
        }
        _ => None,
    })
}

/// The gemv configuration an instance of `gemv` or `gemv_wave` runs with.
pub fn gemv_config(spec: &KernelSpec) -> GemvConfig {
    if spec.family().name == gemv::WAVE_FAMILY.name {
        GemvConfig {
            rows: gemv::WAVE_ROWS,
        }
    } else if spec.family().name == gemv::WAVE_GROUP_FAMILY.name {
        GemvConfig {
            rows: gemv::WAVE_GROUP_ROWS,
        }
    } else {
        GemvConfig {
            rows: spec.int("rows") as usize,
        }
    }
}

/// The qgemm (path, tile) an instance runs with.
pub fn qgemm_tile(spec: &KernelSpec) -> qgemm::Tile {
    (
        spec.int("bm"),
        spec.int("bn"),
        spec.int("warps"),
        spec.int("bk"),
    )
}
