//! Checks of the matrix-core instructions and cross-lane primitives the kernels use (issue 13):
//! per-lane in, per-lane out, so a test can place inputs by AMD's register/lane layout tables
//! (tests/data/amd_layouts) and compare each lane's output. Natively on AMD they check the tables
//! against the hardware; on an emulated AMD target they check the emulation (templates/prelude_emu.h).
//! The integer dot products are checked on emulated targets only (the prelude's `rf_emu_*dot4`).

use super::DTYPES;
use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, MatrixCores, Stream, Target};
use crate::jit::emulate::MmaLayout;
use crate::jit::spec::{no_preamble, ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};

/// The check family.
pub static FAMILY: Family = Family {
    name: "mma_check",
    doc: "per-lane checks of matrix-core instructions, shuffles and dot products (emulation tests)",
    body: "mma_check.hip",
    instance: "mma_check.inst",
    params: &[
        ParamDef {
            name: "kind",
            kind: ParamKind::Choice {
                values: &["mma", "lanes", "dot4"],
            },
            doc: "mma: the 16x16x16 matrix instruction; lanes: shuffles and wave reductions; dot4: sdot4/udot4/sudot4 (emulated targets)",
        },
        ParamDef {
            name: "dtype",
            kind: ParamKind::Choice { values: DTYPES },
            doc: "A/B element type of mma (f16, bf16); f32 for the other kinds",
        },
        ParamDef {
            name: "block",
            kind: ParamKind::Int {
                prefix: "b",
                values: &[128, 256, 960, 1024],
            },
            doc: "threads per block",
        },
    ],
    validate: |s| {
        let (kind, dtype, block) = (s.str("kind"), s.str("dtype"), s.int("block"));
        if (kind == "mma") == (dtype == "f32") {
            return Err("mma takes f16 or bf16; lanes and dot4 take f32".into());
        }
        if block != block_of(kind, s.wave()) as i64 {
            return Err(format!(
                "{kind} runs blocks of {} threads at wave size {}",
                block_of(kind, s.wave()),
                s.wave()
            ));
        }
        Ok(())
    },
    applies: |s, t| match s.str("kind") {
        "mma" => matches!(t.matrix_cores(), MatrixCores::Mfma | MatrixCores::Wmma),
        "dot4" => t.is_emulated(),
        _ => true,
    },
    preamble: no_preamble,
};

/// Block size of each kind: mma 4 waves; lanes as many waves as an emulated block may hold (15 of
/// 64, so every named barrier id is used; 32 of 32); dot4 128.
pub fn block_of(kind: &str, wave: u32) -> u32 {
    match (kind, wave) {
        ("mma", w) => 4 * w,
        ("lanes", 64) => 960,
        ("lanes", _) => 1024,
        _ => 128,
    }
}

/// Spec of one check kernel.
pub fn spec(kind: &str, dtype: &str, wave: u32) -> Result<KernelSpec> {
    KernelSpec::new(
        &FAMILY,
        &[
            ("kind", kind.into()),
            ("dtype", dtype.into()),
            ("block", (block_of(kind, wave) as i64).into()),
        ],
        wave,
    )
}

fn upload(dev: &Device, v: &[f32]) -> Result<Buffer<f32>> {
    dev.upload(v)
}

/// Run `layout`'s instruction on `waves` waves (a multiple of 4): per wave and lane the A, B and C
/// vectors (`va`, `vb`, `vc` values each, A/B exact in its element type); returns each lane's D.
pub fn run_mma(
    dev: &Device,
    stream: &Stream,
    layout: &MmaLayout,
    a: &[Vec<f32>],
    b: &[Vec<f32>],
    c: &[Vec<f32>],
) -> Result<Vec<Vec<f32>>> {
    let t: &Target = dev.target();
    let lanes = a.len();
    if lanes % (4 * t.wave_size as usize) != 0
        || b.len() != lanes
        || c.len() != lanes
        || layout.wave != t.wave_size as usize
    {
        return Err(Error::op(
            "mma_check",
            format!(
                "{lanes} lanes for blocks of {} and a {}-lane instruction",
                4 * t.wave_size,
                layout.wave
            ),
        ));
    }
    let flat = |v: &[Vec<f32>], n: usize| -> Result<Vec<f32>> {
        if v.iter().any(|x| x.len() != n) {
            return Err(Error::op("mma_check", format!("a lane without {n} values")));
        }
        Ok(v.concat())
    };
    let (fa, fb, fc) = (
        flat(a, layout.va)?,
        flat(b, layout.vb)?,
        flat(c, layout.vc)?,
    );
    let dtype = if layout.bf16 { "bf16" } else { "f16" };
    let k = Jit::global().kernel(dev, &spec("mma", dtype, t.wave_size)?)?;
    let (ba, bb, bc) = (upload(dev, &fa)?, upload(dev, &fb)?, upload(dev, &fc)?);
    let bd = dev.alloc::<f32>(fc.len())?;
    k.launch(
        stream,
        LaunchConfig::linear(lanes, 4 * t.wave_size),
        &[(&ba).into(), (&bb).into(), (&bc).into(), Arg::from(&bd)],
    )?;
    stream.synchronize()?;
    Ok(bd.to_vec()?.chunks(layout.vc).map(|c| c.to_vec()).collect())
}

/// The `lanes` kernel on `x` (a whole number of its blocks): per element, 4 results (see
/// templates/mma_check.hip).
pub fn run_lanes(dev: &Device, stream: &Stream, x: &[f32]) -> Result<Vec<f32>> {
    let w = dev.target().wave_size;
    let block = block_of("lanes", w) as usize;
    if x.is_empty() || x.len() % block != 0 {
        return Err(Error::op(
            "mma_check",
            format!("{} elements: a whole number of blocks of {block}", x.len()),
        ));
    }
    let k = Jit::global().kernel(dev, &spec("lanes", "f32", w)?)?;
    let bx = upload(dev, x)?;
    let out = dev.alloc::<f32>(x.len() * 4)?;
    k.launch(
        stream,
        LaunchConfig::linear(x.len(), block as u32),
        &[(&bx).into(), Arg::from(&out)],
    )?;
    stream.synchronize()?;
    out.to_vec()
}

/// The `dot4` kernel (emulated targets): per element, sdot4, sdot4 with clamp, udot4 with clamp and
/// sudot4 (A signed, B unsigned) of a, b, c.
pub fn run_dot4(
    dev: &Device,
    stream: &Stream,
    a: &[i32],
    b: &[i32],
    c: &[i32],
) -> Result<Vec<i32>> {
    if a.len() != b.len() || a.len() != c.len() || a.is_empty() {
        return Err(Error::op("mma_check", "a, b and c of one non-zero length"));
    }
    let n = i32::try_from(a.len()).map_err(|_| Error::op("mma_check", "too many elements"))?;
    let k = Jit::global().kernel(dev, &spec("dot4", "f32", dev.target().wave_size)?)?;
    let (ba, bb, bc) = (dev.upload(a)?, dev.upload(b)?, dev.upload(c)?);
    let out = dev.alloc::<i32>(a.len() * 4)?;
    k.launch(
        stream,
        LaunchConfig::linear(a.len(), 128),
        &[
            n.into(),
            (&ba).into(),
            (&bb).into(),
            (&bc).into(),
            Arg::from(&out),
        ],
    )?;
    stream.synchronize()?;
    out.to_vec()
}

/// CPU reference of the dot4 kernel's four results (the ISA semantics the prelude cites).
pub fn dot4_reference(a: i32, b: i32, c: i32) -> [i32; 4] {
    let bytes = |x: i32| x.to_le_bytes();
    let (ab, bb) = (bytes(a), bytes(b));
    let s: i64 = c as i64
        + (0..4)
            .map(|i| ab[i] as i8 as i64 * bb[i] as i8 as i64)
            .sum::<i64>();
    let u: u64 = c as u32 as u64 + (0..4).map(|i| ab[i] as u64 * bb[i] as u64).sum::<u64>();
    let su: i64 = c as i64
        + (0..4)
            .map(|i| ab[i] as i8 as i64 * bb[i] as i64)
            .sum::<i64>();
    [
        s as i32,
        s.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        u.min(u32::MAX as u64) as u32 as i32,
        su as i32,
    ]
}
