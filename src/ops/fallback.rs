//! Fast-compiling stand-ins for the specialized instances a model loads (serving while compiling,
//! see `jit::early`): the same op with the same arguments and semantics, on the portable path. Each
//! op derives its launch shape from the instance it is given, so a stand-in needs no other help.
//!
//! | specialized instance                | stand-in                             |
//! |-------------------------------------|--------------------------------------|
//! | `qgemm` on mma / MFMA / WMMA tiles  | `qgemm` SIMT, its one tile           |
//! | `gemv` rows 16 (mma tile, batch 8)  | `gemv` rows 2 (SIMT, batch 8)        |
//! | `gemv` rows 4 (staged, batch 1)     | `gemv_wave` (rows 8, batch 1)        |
//! | `attn_prefill` mma_sync / MFMA / WMMA | `attn_prefill` scalar              |
//!
//! Every other family has no stand-in (its instances are in the fast set as they are).

use crate::error::Result;
use crate::gpu::Target;
use crate::jit::KernelSpec;
use crate::ops::attention::prefill;
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
        "gemv" if matches!(spec.int("rows"), 16 | 4) => {
            let fmt = QuantType::from_name(spec.str("format"))?;
            let batch = spec.int("batch") as usize;
            let rows = if batch == 1 { gemv::WAVE_ROWS } else { 2 };
            Some(gemv::spec(
                fmt,
                spec.str("dtype"),
                batch,
                GemvConfig { rows },
                wave,
            )?)
        }
        "attn_prefill" if spec.str("path") != "scalar" => Some(prefill::spec(
            spec.int("head_dim") as usize,
            spec.str("dtype"),
            spec.flag("causal"),
            "scalar",
            wave,
        )?),
        _ => None,
    })
}

/// The gemv configuration an instance of `gemv` or `gemv_wave` runs with.
pub fn gemv_config(spec: &KernelSpec) -> GemvConfig {
    if spec.family().name == gemv::WAVE_FAMILY.name {
        GemvConfig {
            rows: gemv::WAVE_ROWS,
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
