//! Fused dequant × vector: `y = W · x` for a quantized `W` (`rows × cols`, row-major blocks) and a
//! batch of 1..=8 right-hand sides (`x` is `batch × cols`, `y` is `batch × rows`). W is read once,
//! decoded in registers, never written out.
//!
//! [`gemv_glu`] is the same product over a stacked `[gate; up]` W (`2·rows × cols`) with the gated
//! activation in its epilogue, `y = act(gate · x) ⊙ (up · x)` (`batch × rows`): a decoder layer's
//! gate/up projection and SwiGLU / GeGLU in one launch.

use super::{check_matrix, preamble, FORMATS};
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, MatrixCores, Stream, Target};
use crate::jit::spec::{any_target, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::ops::{Element, DTYPES};
use crate::quant::{self, QuantType};

/// Compiled batch sizes: a call with `batch` right-hand sides uses the smallest one ≥ `batch`.
pub const BATCHES: &[i64] = &[1, 8];
/// Most right-hand sides per call.
pub const MAX_BATCH: usize = 8;
/// Waves per block (fixed in the instance template).
pub const WAVES_PER_BLOCK: usize = 4;
/// Rows of W per block a spec may name (see [`FAMILY`]'s `validate` for which go with what).
pub const ROWS: &[i64] = &[2, 4, 16];
/// Formats of the rows-16 configuration: those with an integer decoder (`rf_w8` in
/// `templates/quant_w8.h`). With f16/bf16 x it runs on mma.sync on NVIDIA (the SIMT kernel
/// elsewhere), compiled for 8 right-hand sides and called with 1..=8.
pub const MMA_FORMATS: &[&str] = super::gemv_q8::FORMATS;
/// Waves per block of the rows-16 configuration (`RF_GEMV_MMA_WAVES` in `templates/gemv.hip`).
pub const MMA_WAVES: usize = 8;

/// Dynamic shared memory of the mma tile (rows 16 with mma.sync): per wave two stages of 16 rows ×
/// the 16-byte vectors covering a chunk of 256 columns of `ty` at any alignment (`rf_gemv_mma`).
pub fn mma_shared_bytes(ty: QuantType) -> usize {
    MMA_WAVES * 2 * 16 * mma_ring_vectors(ty) * 16
}

/// 16-byte vectors a warp's ring holds per row and stage: those covering a chunk of 256 columns of
/// `ty` at any alignment, and the aligned word after its last byte (`RV` of `rf_gemv_mma`, and of
/// qgemm's register tile).
pub fn mma_ring_vectors(ty: QuantType) -> usize {
    let chunk_blocks = if ty.block_elems() >= 256 {
        1
    } else {
        256 / ty.block_elems()
    };
    (chunk_blocks * ty.block_bytes() + 34) / 16
}
/// Epilogues a spec may name: `none` (y = W x), or the gated activation of [`gemv_glu`]
/// ([`GluAct::name`]).
pub const GLUS: &[&str] = &["none", "silu", "gelu_tanh"];
/// Prologues of `gemv_wave` (see [`super::gemv_norm`]): `none` (x is given), `rms` (x = the RMSNorm of
/// a residual add, made in the GEMV's blocks), `rms_post` (the same with the added rows through a
/// norm of their own first).
pub const NORMS: &[&str] = &["none", "rms", "rms_post"];
/// x/y dtypes the GLU epilogue is compiled for (a model's activations are f16).
pub const GLU_DTYPES: &[&str] = &["f16", "bf16"];

/// The gated activation of [`gemv_glu`]: `y = act(gate) · up`, with the arithmetic of the model's
/// unfused `glue::gated` kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GluAct {
    /// silu(g) = g / (1 + e^−g) (SwiGLU).
    Silu,
    /// 0.5·g·(1 + tanh(√(2/π)(g + 0.044715g³))) (GeGLU, tanh form).
    GeluTanh,
}

impl GluAct {
    /// The value of the spec's `glu` parameter.
    pub fn name(self) -> &'static str {
        match self {
            GluAct::Silu => "silu",
            GluAct::GeluTanh => "gelu_tanh",
        }
    }

    /// The activation named by a spec's `glu` parameter (`none`: no epilogue).
    pub fn from_name(name: &str) -> Option<GluAct> {
        match name {
            "silu" => Some(GluAct::Silu),
            "gelu_tanh" => Some(GluAct::GeluTanh),
            _ => None,
        }
    }

    /// act(g) in f64 (the CPU reference).
    pub fn apply(self, g: f64) -> f64 {
        match self {
            GluAct::Silu => g / (1.0 + (-g).exp()),
            GluAct::GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * g * (1.0 + (k * (g + 0.044715 * g * g * g)).tanh())
            }
        }
    }
}

impl std::fmt::Display for GluAct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The gemv family: (format, x/y dtype, compiled batch, rows per block, epilogue).
pub static FAMILY: Family = Family {
    name: "gemv",
    doc: "y = W x with W quantized (any format), x/y f32/f16/bf16, 1..8 right-hand sides; f32 accumulation; optionally y = act(gate x) * (up x) over a stacked [gate; up] W",
    body: "gemv.hip",
    instance: "gemv.inst",
    params: &[
        ParamDef { name: "format", kind: ParamKind::Choice { values: FORMATS }, doc: "block format of W" },
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of x and y" },
        ParamDef { name: "batch", kind: ParamKind::Int { prefix: "b", values: BATCHES }, doc: "right-hand sides compiled for (calls may pass fewer)" },
        ParamDef { name: "rows", kind: ParamKind::Int { prefix: "r", values: ROWS }, doc: "rows of W per block (tunable): 2 or 4 (4 only at batch 1); 16 = the mma.sync tile (batch 8, f16/bf16, formats with a matrix-core decoder)" },
        ParamDef { name: "glu", kind: ParamKind::Choice { values: GLUS }, doc: "epilogue: none, or y = act(gate x) * (up x) with W = [gate; up] (2 x rows rows): silu or gelu_tanh (rows 2 or 4, x f16 or bf16)" },
    ],
    validate: |s| {
        validate(s.str("format"), s.str("dtype"), s.int("batch"), s.int("rows"))?;
        validate_glu(s.str("dtype"), s.int("rows"), s.str("glu"))
    },
    applies: any_target,
    preamble,
};

/// Rows per block of the `gemv_wave` kernel (one wave per 2 rows, 4 waves), batch 1 only.
pub const WAVE_ROWS: usize = 8;

/// The batch-1 kernel of the first version, kept as variant `rows 8`: one wave per 2 rows, every
/// octet decoded by `dequant8` straight from global memory.
pub static WAVE_FAMILY: Family = Family {
    name: "gemv_wave",
    doc: "y = W x at batch 1, one wave per 2 rows, dequant8 from global memory (gemv's `rows 8` variant)",
    body: "gemv_wave.hip",
    instance: "gemv_wave.inst",
    params: &[
        ParamDef { name: "format", kind: ParamKind::Choice { values: FORMATS }, doc: "block format of W" },
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of x and y" },
        ParamDef { name: "glu", kind: ParamKind::Choice { values: GLUS }, doc: "epilogue: none, or y = act(gate x) * (up x) with W = [gate; up] (2 x rows rows): silu or gelu_tanh (x f16 or bf16)" },
        ParamDef { name: "norm", kind: ParamKind::Choice { values: NORMS }, doc: "prologue: none (x given), or x = RMSNorm(x_res + r) made in every block, x_res + r written back (rms; rms_post: r through its own RMSNorm first, Gemma's post-norms); f16 only (gemv_norm)" },
    ],
    validate: |s| {
        let ty = QuantType::from_name(s.str("format")).map_err(|e| e.to_string())?;
        validate_glu(s.str("dtype"), WAVE_ROWS as i64, s.str("glu"))?;
        wave_glu_format(ty, s.str("glu"))?;
        if s.str("norm") != "none" && s.str("dtype") != "f16" {
            return Err(format!(
                "the {} prologue is compiled for f16 x and y (a model's activations), not {}",
                s.str("norm"),
                s.str("dtype")
            ));
        }
        // gemv_wave's mxfp4 decoder takes 32 bytes of scratch on gfx90a (HIP 5.2); no new instance
        // of it (MXFP4 models' rows are also longer than the prologue takes: gpt-oss 2880)
        if s.str("norm") != "none" && ty == QuantType::MXFP4 {
            return Err(format!(
                "the {} prologue is not compiled for mxfp4 (its gemv_wave decoder needs scratch on gfx90a)",
                s.str("norm")
            ));
        }
        Ok(())
    },
    applies: any_target,
    preamble,
};

/// Rows per block of the `gemv_wave_g` kernel (4 waves of row groups: `rf_gemv_groups`), batch 1 only.
pub const WAVE_GROUP_ROWS: usize = 32;

/// The batch-1 kernel for short rows, variant `rows 32` of gemv: `gemv_wave`'s loop on row groups of
/// part of a wave ([`wave_group_lanes`]), two octets a lane a step (templates/gemv_wave.hip).
pub static WAVE_GROUP_FAMILY: Family = Family {
    name: "gemv_wave_g",
    doc: "y = W x at batch 1, row groups of a quarter wave (2 rows) or, at 8 bits a weight or more, half a wave (4 rows), 2 octets a lane a step (short rows: the output GEMV of small models; gemv's `rows 32` variant)",
    body: "gemv_wave.hip",
    instance: "gemv_wave_g.inst",
    params: &[
        ParamDef { name: "format", kind: ParamKind::Choice { values: FORMATS }, doc: "block format of W" },
        ParamDef { name: "dtype", kind: ParamKind::Choice { values: DTYPES }, doc: "element type of x and y" },
    ],
    validate: |s| {
        QuantType::from_name(s.str("format")).map_err(|e| e.to_string())?;
        Ok(())
    },
    applies: any_target,
    preamble,
};

/// Share of a wave's lanes busy on a row of `cols` columns: `lanes` lanes a row, `u` octets a lane a
/// step (the last step of a row may leave some idle).
fn lane_use(cols: usize, lanes: usize, u: usize) -> f64 {
    let units = (cols / 8).div_ceil(u).max(1);
    units as f64 / (units.div_ceil(lanes) * lanes) as f64
}

/// Lanes a row group of `gemv_wave_g` has for `ty` (`rf_gemv_groups` in templates/gemv_wave.hip):
/// half a wave for the formats of 8 bits a weight or more, else a quarter.
pub fn wave_group_lanes(ty: QuantType, wave: u32) -> usize {
    let w = wave.max(4) as usize;
    if ty.block_bytes() >= ty.block_elems() {
        w / 2
    } else {
        w / 4
    }
}

/// Whether a batch-1 GEMV of `rows × cols` in `ty` runs `gemv_wave_g` (rows 32) rather than
/// `gemv_wave` (rows 8): the matrix is tall (at least 8192 rows: enough blocks of 32 rows to fill
/// the device, and a GEMV long enough to be bound by issue rather than by latency) and the row
/// groups of 2-octet steps keep at least a quarter more of the lanes busy than a wave of 4-octet
/// steps (H200, sixteenth session: 49152 × 576 and 262144 × 640 in q4_1, q5_0 and q8_0).
pub fn wave_groups_pay(ty: QuantType, rows: usize, cols: usize, wave: u32) -> bool {
    let w = wave.max(4) as usize;
    rows >= 8192 && lane_use(cols, wave_group_lanes(ty, wave), 2) >= 1.25 * lane_use(cols, w, 4)
}

fn validate(format: &str, dtype: &str, batch: i64, rows: i64) -> std::result::Result<(), String> {
    QuantType::from_name(format).map_err(|e| e.to_string())?;
    match rows {
        2 if batch == 1 => Err("rows per block 2 is compiled for batch 8 only (batch 1: rows 4, or 8 = gemv_wave)".into()),
        4 if batch != 1 => Err(format!("rows per block 4 needs batch 1, not {batch}")),
        16 if batch != 8 || dtype == "f32" || !MMA_FORMATS.contains(&format) => Err(format!(
            "rows per block 16 (the mma tile) needs batch 8, x f16 or bf16 and a format of {}; got batch {batch}, {dtype}, {format}",
            MMA_FORMATS.join(", ")
        )),
        _ => Ok(()),
    }
}

/// The GLU epilogue runs on the SIMT kernel (rows 2 or 4; not the mma tile) with f16/bf16 x.
fn validate_glu(dtype: &str, rows: i64, glu: &str) -> std::result::Result<(), String> {
    if glu == "none" {
        return Ok(());
    }
    if rows == 16 {
        return Err(format!(
            "the {glu} epilogue runs on the SIMT kernel (rows per block 2 or 4), not the mma tile (rows 16)"
        ));
    }
    if !GLU_DTYPES.contains(&dtype) {
        return Err(format!(
            "the {glu} epilogue is compiled for x {}; got {dtype}",
            GLU_DTYPES.join(" or ")
        ));
    }
    Ok(())
}

/// gemv_wave's GLU epilogue holds twice the rows' decoded octets: it is compiled for the formats of
/// blocks up to 32 elements (the 256-element K-quants spill on RDNA2 there; theirs is the SIMT kernel).
pub(super) fn wave_glu_format(ty: QuantType, glu: &str) -> std::result::Result<(), String> {
    if glu != "none" && ty.block_elems() > 32 {
        return Err(format!(
            "the {glu} epilogue of gemv_wave (rows 8) is for formats of 32-element blocks, not {}: rows 4",
            ty.name()
        ));
    }
    Ok(())
}

/// Launch configuration a caller (or the tuner) may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemvConfig {
    /// Rows of W per block: 4 (batch 1), 8 (batch 1, the `gemv_wave` kernel), 32 (batch 1, the
    /// `gemv_wave_g` kernel), 2 (batch 2..8) or 16 (the mma tile, batch 1..8, one instance compiled
    /// for 8).
    pub rows: usize,
}

impl GemvConfig {
    /// The default, from the H200 figures in docs/PERF_quant.md: at batch 1 the `gemv_wave`
    /// kernel (rows 8), except q4_K (staged kernel, rows 4); at batch 2..8 the mma tile where it
    /// exists (NVIDIA sm_80+, f16/bf16, a format of [`MMA_FORMATS`]: docs/PERF.md, fifth session),
    /// else 2 rows.
    pub fn default_for(ty: QuantType, dtype: &str, batch: usize, target: &Target) -> GemvConfig {
        Self::pick(ty, dtype, batch, None, target)
    }

    /// [`Self::default_for`] for a `rows × cols` matrix: at batch 1, `gemv_wave_g` instead of
    /// `gemv_wave` where [`wave_groups_pay`] (a tuned choice stays as it is).
    pub fn default_for_shape(
        ty: QuantType,
        dtype: &str,
        batch: usize,
        shape: (usize, usize),
        target: &Target,
    ) -> GemvConfig {
        Self::pick(ty, dtype, batch, Some(shape), target)
    }

    fn pick(
        ty: QuantType,
        dtype: &str,
        batch: usize,
        shape: Option<(usize, usize)>,
        target: &Target,
    ) -> GemvConfig {
        // A tuned choice from the tuning database (rocmforge tune) wins, if it is still a candidate.
        if let Some(rows) = crate::jit::tunedb::gemv_rows(target, ty.name(), dtype, batch)
            .filter(|&rows| Self::candidates(ty, dtype, batch).contains(&GemvConfig { rows }))
        {
            return GemvConfig { rows };
        }
        let rows = if batch <= 1 {
            if ty == QuantType::Q4_K {
                4
            } else if shape.is_some_and(|(r, c)| wave_groups_pay(ty, r, c, target.wave_size)) {
                WAVE_GROUP_ROWS
            } else {
                WAVE_ROWS
            }
        } else if target.matrix_cores() == MatrixCores::MmaSync
            && dtype != "f32"
            && MMA_FORMATS.contains(&ty.name())
        {
            16
        } else {
            2
        };
        GemvConfig { rows }
    }

    /// The configuration of a fused gate/up GEMV ([`gemv_glu`]) over a stacked matrix: that of the
    /// unfused GEMV of the same matrix ([`Self::default_for`], tuned choice included) where the GLU
    /// epilogue has it (every kernel but the mma tile), else the SIMT kernel's rows 2 (batch 2..8).
    pub fn default_for_glu(
        ty: QuantType,
        dtype: &str,
        batch: usize,
        target: &Target,
    ) -> GemvConfig {
        let c = Self::default_for(ty, dtype, batch, target);
        if Self::glu_candidates(ty, dtype, batch).contains(&c) {
            return c;
        }
        GemvConfig {
            rows: if batch <= 1 { 4 } else { 2 },
        }
    }

    /// Every configuration valid for a [`gemv_glu`] call (for tests and the tuner).
    pub fn glu_candidates(ty: QuantType, dtype: &str, batch: usize) -> Vec<GemvConfig> {
        let b = compiled_batch(batch).unwrap_or(MAX_BATCH as i64);
        let mut c: Vec<GemvConfig> = ROWS
            .iter()
            .filter(|&&r| {
                validate(ty.name(), dtype, b, r).is_ok() && validate_glu(dtype, r, "silu").is_ok()
            })
            .map(|&r| GemvConfig { rows: r as usize })
            .collect();
        if b == 1
            && validate_glu(dtype, WAVE_ROWS as i64, "silu").is_ok()
            && wave_glu_format(ty, "silu").is_ok()
        {
            c.push(GemvConfig { rows: WAVE_ROWS });
        }
        c
    }

    /// Every configuration valid for this call (for tests and the tuner).
    pub fn candidates(ty: QuantType, dtype: &str, batch: usize) -> Vec<GemvConfig> {
        let b = compiled_batch(batch).unwrap_or(MAX_BATCH as i64);
        let mut c: Vec<GemvConfig> = ROWS
            .iter()
            .filter(|&&r| validate(ty.name(), dtype, instance_batch(r, b), r).is_ok())
            .map(|&r| GemvConfig { rows: r as usize })
            .collect();
        if b == 1 {
            c.push(GemvConfig { rows: WAVE_ROWS });
            c.push(GemvConfig {
                rows: WAVE_GROUP_ROWS,
            });
        }
        c
    }
}

/// The compiled batch size used for `batch` right-hand sides.
pub fn compiled_batch(batch: usize) -> Result<i64> {
    BATCHES
        .iter()
        .copied()
        .find(|&b| b as usize >= batch && batch >= 1)
        .ok_or_else(|| Error::op("gemv", format!("batch {batch} is outside 1..={MAX_BATCH}")))
}

/// The batch an instance of `rows` rows per block is compiled for, given the compiled batch of the
/// call: the rows-16 kernel takes the batch at run time, so it has one instance, compiled for the most.
fn instance_batch(rows: i64, compiled: i64) -> i64 {
    if rows == 16 {
        MAX_BATCH as i64
    } else {
        compiled
    }
}

/// Spec of one gemv kernel.
pub fn spec(
    ty: QuantType,
    dtype: &str,
    batch: usize,
    cfg: GemvConfig,
    wave: u32,
) -> Result<KernelSpec> {
    spec_with_glu(ty, dtype, batch, cfg, None, wave)
}

/// Spec of one gemv kernel with the GLU epilogue `glu` ([`gemv_glu`]), or none.
pub fn spec_with_glu(
    ty: QuantType,
    dtype: &str,
    batch: usize,
    cfg: GemvConfig,
    glu: Option<GluAct>,
    wave: u32,
) -> Result<KernelSpec> {
    let b = instance_batch(cfg.rows as i64, compiled_batch(batch)?);
    if cfg.rows == WAVE_GROUP_ROWS {
        if b != 1 || glu.is_some() {
            return Err(Error::op(
                "gemv",
                format!("rows per block {WAVE_GROUP_ROWS} (gemv_wave_g) is for batch 1 without an epilogue, not batch {batch}{}", glu.map_or(String::new(), |g| format!(" with {}", g.name()))),
            ));
        }
        return KernelSpec::new(
            &WAVE_GROUP_FAMILY,
            &[("format", ty.name().into()), ("dtype", dtype.into())],
            wave,
        );
    }
    if cfg.rows == WAVE_ROWS {
        if b != 1 {
            return Err(Error::op(
                "gemv",
                format!("rows per block {WAVE_ROWS} (gemv_wave) is for batch 1, not {batch}"),
            ));
        }
        return KernelSpec::new(
            &WAVE_FAMILY,
            &[
                ("format", ty.name().into()),
                ("dtype", dtype.into()),
                ("glu", glu.map_or("none", GluAct::name).into()),
                ("norm", "none".into()),
            ],
            wave,
        );
    }
    KernelSpec::new(
        &FAMILY,
        &[
            ("format", ty.name().into()),
            ("dtype", dtype.into()),
            ("batch", b.into()),
            ("rows", (cfg.rows as i64).into()),
            ("glu", glu.map_or("none", GluAct::name).into()),
        ],
        wave,
    )
}

/// Op name of [`gemv_glu`] in errors.
const GLU_OP: &str = "gemv_glu";

/// Validate shapes: W `rows × cols` of `ty` in `w_bytes`, x `batch × cols`, y `batch × rows`.
pub fn check(
    ty: QuantType,
    rows: usize,
    cols: usize,
    batch: usize,
    w_bytes: usize,
    x_len: usize,
    y_len: usize,
) -> Result<()> {
    check_matrix("gemv", ty, rows, cols, w_bytes)?;
    check_vectors("gemv", rows, cols, batch, x_len, y_len)
}

/// Validate the shapes of [`gemv_glu`]: W the stacked `[gate; up]`, `2·rows_out × cols` of `ty` in
/// `w_bytes`; x `batch × cols`; y `batch × rows_out`.
pub fn check_glu(
    ty: QuantType,
    rows_out: usize,
    cols: usize,
    batch: usize,
    w_bytes: usize,
    x_len: usize,
    y_len: usize,
) -> Result<()> {
    if rows_out == 0 {
        return Err(Error::op(GLU_OP, "no output rows (rows_out is 0)"));
    }
    let rows = rows_out
        .checked_mul(2)
        .filter(|&r| r <= i32::MAX as usize)
        .ok_or_else(|| Error::op(GLU_OP, format!("2 x {rows_out} rows exceed 2^31")))?;
    // a W of whole rows but not 2·rows_out of them: say what it holds
    let qk = super::kernel_qk(ty);
    if cols > 0 && cols % qk == 0 {
        let row_bytes = (cols / qk) * (ty.block_bytes() * qk / ty.block_elems());
        if row_bytes > 0 && w_bytes % row_bytes == 0 && w_bytes / row_bytes != rows {
            let n = w_bytes / row_bytes;
            let odd = if n % 2 == 1 {
                ", an odd number: gate and up stacked have as many rows each"
            } else {
                ""
            };
            return Err(Error::op(
                GLU_OP,
                format!("W holds {n} rows of {cols} ({ty}){odd}; [gate; up] for {rows_out} outputs needs 2 x {rows_out} = {rows}"),
            ));
        }
    }
    check_matrix(GLU_OP, ty, rows, cols, w_bytes)?;
    check_vectors(GLU_OP, rows_out, cols, batch, x_len, y_len)
}

/// x `batch × cols` and y `batch × rows` (`rows` of y), batch within the compiled range.
fn check_vectors(
    op: &'static str,
    rows: usize,
    cols: usize,
    batch: usize,
    x_len: usize,
    y_len: usize,
) -> Result<()> {
    compiled_batch(batch)
        .map_err(|_| Error::op(op, format!("batch {batch} is outside 1..={MAX_BATCH}")))?;
    if x_len != batch * cols {
        return Err(Error::op(
            op,
            format!(
                "x has {x_len} elements; batch {batch} x cols {cols} needs {}",
                batch * cols
            ),
        ));
    }
    if y_len != batch * rows {
        return Err(Error::op(
            op,
            format!(
                "y has {y_len} elements; batch {batch} x rows {rows} needs {}",
                batch * rows
            ),
        ));
    }
    if rows > i32::MAX as usize || cols > i32::MAX as usize {
        return Err(Error::op(
            op,
            format!("{rows} x {cols} exceeds 2^31 rows or columns"),
        ));
    }
    Ok(())
}

/// `y = W · x` with the default configuration for the batch size.
#[allow(clippy::too_many_arguments)]
pub fn gemv<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
) -> Result<()> {
    gemv_with(
        dev,
        stream,
        ty,
        w,
        rows,
        cols,
        x,
        batch,
        y,
        GemvConfig::default_for_shape(ty, T::DTYPE, batch, (rows, cols), dev.target()),
    )
}

/// `y = W · x` with an explicit configuration.
#[allow(clippy::too_many_arguments)]
pub fn gemv_with<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
    cfg: GemvConfig,
) -> Result<()> {
    check(ty, rows, cols, batch, w.len(), x.len(), y.len())?;
    let spec = spec(ty, T::DTYPE, batch, cfg, dev.target().wave_size)?;
    launch("gemv", dev, stream, &spec, cfg, w, rows, cols, x, batch, y)
}

/// `y = act(gate · x) ⊙ (up · x)` for the stacked `W = [gate; up]` (`2·rows_out × cols` of `ty`:
/// gate rows `0..rows_out`, then up rows `rows_out..2·rows_out`), x `batch × cols`, y
/// `batch × rows_out`; one launch, the activation applied to the f32 sums (the configuration of
/// [`GemvConfig::default_for_glu`]).
#[allow(clippy::too_many_arguments)]
pub fn gemv_glu<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows_out: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
    act: GluAct,
) -> Result<()> {
    gemv_glu_with(
        dev,
        stream,
        ty,
        w,
        rows_out,
        cols,
        x,
        batch,
        y,
        act,
        GemvConfig::default_for_glu(ty, T::DTYPE, batch, dev.target()),
    )
}

/// [`gemv_glu`] with an explicit configuration (one of [`GemvConfig::glu_candidates`]).
#[allow(clippy::too_many_arguments)]
pub fn gemv_glu_with<T: Element>(
    dev: &Device,
    stream: &Stream,
    ty: QuantType,
    w: &Buffer<u8>,
    rows_out: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
    act: GluAct,
    cfg: GemvConfig,
) -> Result<()> {
    check_glu(ty, rows_out, cols, batch, w.len(), x.len(), y.len())?;
    let spec = spec_with_glu(ty, T::DTYPE, batch, cfg, Some(act), dev.target().wave_size)?;
    launch(
        GLU_OP, dev, stream, &spec, cfg, w, rows_out, cols, x, batch, y,
    )
}

/// Launch `spec` (checked shapes) over the `rows` rows of y.
#[allow(clippy::too_many_arguments)]
fn launch<T: Element>(
    op: &'static str,
    dev: &Device,
    stream: &Stream,
    spec: &KernelSpec,
    cfg: GemvConfig,
    w: &Buffer<u8>,
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    batch: usize,
    y: &mut Buffer<T>,
) -> Result<()> {
    let wave = dev.target().wave_size;
    let k = Jit::global().kernel(dev, spec)?;
    if w.device_ptr() % 16 != 0 {
        return Err(Error::op(
            op,
            "W must start at a 16-byte aligned device address",
        ));
    }
    let grid = rows.div_ceil(cfg.rows);
    let grid = u32::try_from(grid)
        .map_err(|_| Error::op(op, format!("{rows} rows need too many blocks")))?;
    let mma = cfg.rows == 16;
    // (the spec has already refused rows 16 with f32 x)
    let shared = if mma && dev.target().matrix_cores() == MatrixCores::MmaSync {
        mma_shared_bytes(QuantType::from_name(spec.str("format"))?) as u32
    } else {
        0
    };
    let lc = LaunchConfig {
        grid: [grid, 1, 1],
        block: [
            if mma { MMA_WAVES } else { WAVES_PER_BLOCK } as u32 * wave,
            1,
            1,
        ],
        shared_bytes: shared,
    };
    k.launch(
        stream,
        lc,
        &[
            w.into(),
            x.into(),
            Arg::from(&*y),
            (rows as i32).into(),
            (cols as i32).into(),
            (batch as i32).into(),
        ],
    )
}

/// CPU reference in f64: W dequantized by [`crate::quant::dequantize`], `x` as f32 (`batch × cols`);
/// returns `batch × rows`.
pub fn gemv_ref(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
) -> Result<Vec<f64>> {
    let row_bytes = check_matrix("gemv", ty, rows, cols, w.len())?;
    if x.len() != batch * cols {
        return Err(Error::op(
            "gemv",
            format!("x has {} elements, want {}", x.len(), batch * cols),
        ));
    }
    let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    dense_product_ref(ty, w, row_bytes, rows, cols, &x, batch)
}

/// CPU reference of [`gemv_glu`] in f64: the stacked W (`2·rows_out × cols`) dequantized by
/// [`crate::quant::dequantize`] times `x` (`batch × cols`, as f32), then `act(gate) · up`; returns
/// `batch × rows_out`.
pub fn gemv_glu_ref(
    ty: QuantType,
    w: &[u8],
    rows_out: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    act: GluAct,
) -> Result<Vec<f64>> {
    check_glu(
        ty,
        rows_out,
        cols,
        batch,
        w.len(),
        x.len(),
        batch * rows_out,
    )?;
    let rows = 2 * rows_out;
    let row_bytes = w.len() / rows;
    let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let gu = dense_product_ref(ty, w, row_bytes, rows, cols, &x, batch)?;
    Ok(gu
        .chunks_exact(rows)
        .flat_map(|r| {
            let (g, u) = r.split_at(rows_out);
            g.iter().zip(u).map(|(&g, &u)| act.apply(g) * u)
        })
        .collect())
}

/// `batch × rows` f64 products of W (dequantized row by row, `row_bytes` each, already checked)
/// with `x` (`batch × cols`): the CPU references of the GEMV families.
pub(super) fn dense_product_ref(
    ty: QuantType,
    w: &[u8],
    row_bytes: usize,
    rows: usize,
    cols: usize,
    x: &[f64],
    batch: usize,
) -> Result<Vec<f64>> {
    let mut y = vec![0f64; batch * rows];
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        quant::dequantize(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut row)?;
        for b in 0..batch {
            let xb = &x[b * cols..(b + 1) * cols];
            y[b * rows + r] = row.iter().zip(xb).map(|(a, c)| *a as f64 * c).sum();
        }
    }
    Ok(y)
}
