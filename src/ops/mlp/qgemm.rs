//! Fused quantized GEMM for prefill: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias), x/y f16, W in any format
//! of `quant_dequant.h` (dequantized tile by tile into shared memory, never to global memory), on
//! matrix cores: mma.sync on NVIDIA, MFMA on CDNA, WMMA on RDNA3/4, with a portable SIMT fallback.
//! Tile sizes (bm × bn per block, waves per block) are spec parameters, so they can be tuned.

use crate::error::{Error, Result};
use crate::gpu::{Arg, Buffer, Device, LaunchConfig, MatrixCores, Stream, Target};
use crate::jit::spec::{ParamDef, ParamKind};
use crate::jit::{Family, Jit, KernelSpec};
use crate::quant::QuantType;
use half::f16;

/// Weight formats: every format of the dequant8 contract (floats read 8 at a time).
pub const WEIGHT_FORMATS: &[&str] = crate::ops::quantized::FORMATS;

/// Matrix-core paths.
pub const PATHS: &[&str] = &["mma", "mfma", "wmma", "simt"];

/// Block tiles (bm, bn, waves, bk) each path is built for. On mma.sync the tiles with bk = 256 are
/// the register tile (`qgemm_rw` in `templates/qgemm.hip`, for the formats with an integer decoder:
/// the waves are bn / 16 row groups of 16 weight rows times groups that split K, and each dequantizes
/// its share of W once into A fragments for all bm tokens; other formats run the shared-memory tile
/// of the same block shape); the others stage the dequantized W in shared memory. MFMA and WMMA
/// have the shared-memory tile and the AMD register tile (`qgemm_rw_amd`, bk = 256: global →
/// register → LDS double buffering); the portable path one general tile. AMD paths are
/// compile-checked and run emulated (no AMD GPU in reach).
pub fn tiles(path: &str) -> &'static [Tile] {
    match path {
        "mma" => &[
            (16, 32, 8, 256),
            (32, 32, 8, 256),
            (64, 32, 8, 256),
            (64, 64, 8, 256),
            (128, 128, 8, 64),
        ],
        // MFMA / WMMA: the shared-memory tile and the AMD register tile (4 waves: 2 row groups x 2
        // K groups; at most 64 KiB of LDS per block with two stages)
        "mfma" | "wmma" => &[(64, 64, 4, 64), (16, 32, 4, 256), (32, 32, 4, 256)],
        _ => &[(64, 64, 4, 64)],
    }
}

/// Whether `tile` runs the register tile for `fmt` on `path` (see [`tiles`]).
pub fn register_tile(fmt: QuantType, path: &str, tile: Tile) -> bool {
    matches!(path, "mma" | "mfma" | "wmma")
        && tile.3 == 256
        && crate::ops::quantized::gemv::MMA_FORMATS.contains(&fmt.name())
}

/// Dynamic shared memory of an instance: the register tile's two x stages (bm rows of 272 halves each on
/// mma.sync, 264 on MFMA / WMMA) and its two weight stages (16-byte vectors per row: `qg_chunk` in
/// `templates/qgemm.hip`); 0 for the others.
pub fn shared_bytes(fmt: QuantType, path: &str, tile: Tile) -> usize {
    if !register_tile(fmt, path, tile) {
        return 0;
    }
    // rows of 256 + 16 halves on mma.sync (conflict-free 8-byte fragment loads), 256 + 8 on AMD
    let x_stages = 2 * tile.0 as usize * if path == "mma" { 272 } else { 264 } * 2;
    x_stages + 2 * tile.1 as usize * crate::ops::quantized::gemv::mma_ring_vectors(fmt) * 16
}

/// The qgemm family.
pub static FAMILY: Family = Family {
    name: "qgemm",
    doc: "fused dequantize × GEMM (f16 activations, f32 accumulation) on mma.sync / MFMA / WMMA / SIMT",
    body: "qgemm.hip",
    instance: "qgemm.inst",
    params: &[
        ParamDef { name: "wfmt", kind: ParamKind::Choice { values: WEIGHT_FORMATS }, doc: "weight format" },
        ParamDef { name: "path", kind: ParamKind::Choice { values: PATHS }, doc: "matrix-core path" },
        ParamDef { name: "bm", kind: ParamKind::Int { prefix: "m", values: &[16, 32, 64, 128] }, doc: "block tile rows (M)" },
        ParamDef { name: "bn", kind: ParamKind::Int { prefix: "n", values: &[16, 32, 64, 128] }, doc: "block tile columns (N)" },
        ParamDef { name: "warps", kind: ParamKind::Int { prefix: "x", values: &[4, 8] }, doc: "waves per block" },
        ParamDef { name: "bk", kind: ParamKind::Int { prefix: "k", values: &[32, 64, 128, 256] }, doc: "K per shared-memory stage" },
    ],
    validate: |s| {
        let path = s.str("path");
        let t = (s.int("bm"), s.int("bn"), s.int("warps"), s.int("bk"));
        if !tiles(path).contains(&t) {
            let list: Vec<String> = tiles(path).iter().map(|(m, n, w, k)| format!("m{m}.n{n}.x{w}.k{k}")).collect();
            return Err(format!("tile m{}.n{}.x{}.k{} not built for {path}; supported: {}", t.0, t.1, t.2, t.3, list.join(", ")));
        }
        match (path, s.wave()) {
            ("mfma", 32) => Err("MFMA runs wave64".into()),
            ("mma" | "wmma", 64) => Err(format!("{path} runs wave32")),
            _ => Ok(()),
        }
    },
    applies: |s, t| path_for(t) == s.str("path") || s.str("path") == "simt",
    preamble: |_| crate::ops::mlp::quant_preamble(),
};

/// The matrix-core path of a target.
pub fn path_for(t: &Target) -> &'static str {
    match t.matrix_cores() {
        MatrixCores::MmaSync => "mma",
        MatrixCores::Mfma => "mfma",
        MatrixCores::Wmma => "wmma",
        MatrixCores::None => "simt",
    }
}

/// A block tile: rows (M), columns (N), waves, K per stage.
pub type Tile = (i64, i64, i64, i64);

/// The default tile for `m` rows on `path`: the smallest M tile that covers M (more blocks for small M).
pub fn default_tile(path: &str, m: usize) -> Tile {
    let t = tiles(path);
    // A tuned tile from the tuning database (rocmforge tune) wins, if this path is built for it.
    if let Some(tuned) = crate::jit::tunedb::qgemm_tile(path, m).filter(|x| t.contains(x)) {
        return tuned;
    }
    if path == "mfma" || path == "wmma" {
        // the register tile, by the NVIDIA measurements (no AMD GPU in reach: untimed there)
        return if m <= 16 { t[1] } else { t[2] };
    }
    if path != "mma" {
        return t[0];
    }
    // the register tile everywhere (docs/PERF.md, sixth session: it beats the shared-memory tiles at
    // every M of the bench but q4_K at M = 1024 on 4096 x 4096); 32 rows per block up to 64 tokens
    // (twice the blocks of 64 rows: 4096-row matrices fill the GPU), 64 rows from there on
    match m {
        0..=16 => (16, 32, 8, 256),
        17..=32 => (32, 32, 8, 256),
        33..=64 => (64, 32, 8, 256),
        _ => (64, 64, 8, 256),
    }
}

/// `tile`, or where its shared memory exceeds `limit` bytes (q8_0's 64 x 64 register tile on
/// sm_86/sm_89, whose blocks may have 99 KiB), the largest register tile of the path with 32 rows
/// and at most as many tokens that fits, else the path's last tile (the shared-memory tile).
pub fn fitting_tile(fmt: QuantType, path: &str, tile: Tile, limit: usize) -> Tile {
    if shared_bytes(fmt, path, tile) <= limit {
        return tile;
    }
    let t = tiles(path);
    t.iter()
        .rev()
        .copied()
        .find(|c| {
            register_tile(fmt, path, *c)
                && c.1 == 32
                && c.0 <= tile.0
                && shared_bytes(fmt, path, *c) <= limit
        })
        .unwrap_or(t[t.len() - 1])
}

/// The instance for weights of `fmt` on `target` (path from the target unless `path` is given).
pub fn spec(fmt: QuantType, target: &Target, path: Option<&str>, tile: Tile) -> Result<KernelSpec> {
    let path = path.unwrap_or_else(|| path_for(target));
    KernelSpec::new(
        &FAMILY,
        &[
            ("wfmt", fmt.name().into()),
            ("path", path.into()),
            ("bm", tile.0.into()),
            ("bn", tile.1.into()),
            ("warps", tile.2.into()),
            ("bk", tile.3.into()),
        ],
        target.wave_size,
    )
}

/// K-granularity the kernel needs: whole blocks of the format, and 8 (16-byte rows of x).
pub fn check_shape(fmt: QuantType, m: usize, n: usize, k: usize) -> Result<()> {
    let qk = fmt.block_elems().max(8);
    if m == 0 || n == 0 || k == 0 || k % qk != 0 || k % 8 != 0 {
        return Err(Error::op("qgemm", format!("M={m} N={n} K={k}: all must be > 0 and K a multiple of {qk} ({fmt} blocks) and of 8")));
    }
    if m > i32::MAX as usize || n > i32::MAX as usize || k > i32::MAX as usize {
        return Err(Error::op("qgemm", "dimensions beyond 2^31"));
    }
    Ok(())
}

/// y[M, N] = x[M, K] · Wᵀ (+ bias) with W [N, K] stored as `fmt` bytes. `tile`/`path` override the
/// defaults (tuning, tests); `None` picks them from M and the device.
#[allow(clippy::too_many_arguments)]
pub fn qgemm(
    dev: &Device,
    stream: &Stream,
    x: &Buffer<f16>,
    w: &Buffer<u8>,
    fmt: QuantType,
    (m, n, k): (usize, usize, usize),
    bias: Option<&Buffer<f16>>,
    y: &mut Buffer<f16>,
    path: Option<&str>,
    tile: Option<Tile>,
) -> Result<()> {
    check_shape(fmt, m, n, k)?;
    let wb = n * fmt
        .row_bytes(k)
        .map_err(|e| Error::op("qgemm", e.to_string()))?;
    super::check_len("qgemm", "x", x, m * k)?;
    super::check_len("qgemm", "w (bytes)", w, wb)?;
    super::check_len("qgemm", "y", y, m * n)?;
    if let Some(b) = bias {
        super::check_len("qgemm", "bias", b, n)?;
    }
    let t = dev.target();
    let p = path.unwrap_or_else(|| path_for(t));
    let defaults = path.is_none() && tile.is_none();
    let mut tile = match tile {
        Some(tile) => {
            let need = shared_bytes(fmt, p, tile);
            if need > t.shared_per_block_optin as usize {
                return Err(Error::op(
                    "qgemm",
                    format!(
                        "tile m{}.n{}.x{}.k{} needs {need} bytes of shared memory for {fmt}; {} allows {} per block",
                        tile.0, tile.1, tile.2, tile.3, t.arch, t.shared_per_block_optin
                    ),
                ));
            }
            tile
        }
        None => fitting_tile(
            fmt,
            p,
            default_tile(p, m),
            t.shared_per_block_optin as usize,
        ),
    };
    let mut s = spec(fmt, t, Some(p), tile)?;
    // the default instance may still be compiling in the background: its SIMT stand-in runs
    if let Some(fb) = Jit::global().substitute(t, &s).filter(|_| defaults) {
        tile = crate::ops::fallback::qgemm_tile(&fb);
        s = fb;
    }
    let kern = Jit::global().kernel(dev, &s)?;
    let grid = [
        n.div_ceil(tile.1 as usize) as u32,
        m.div_ceil(tile.0 as usize) as u32,
        1,
    ];
    if grid[1] > t.max_grid[1] {
        return Err(Error::op(
            "qgemm",
            format!(
                "M={m} needs {} row tiles; the device allows {}",
                grid[1], t.max_grid[1]
            ),
        ));
    }
    let cfg = LaunchConfig {
        grid,
        block: [(tile.2 as u32) * t.wave_size, 1, 1],
        shared_bytes: shared_bytes(fmt, s.str("path"), tile) as u32,
    };
    let bp = bias.map(|b| b.device_ptr()).unwrap_or(0);
    kern.launch(
        stream,
        cfg,
        &[
            (m as i32).into(),
            (n as i32).into(),
            (k as i32).into(),
            x.into(),
            w.into(),
            Arg::Ptr(bp),
            Arg::from(&*y),
        ],
    )
}

/// CPU reference: y = x · Wᵀ (+ bias) in f64 with W dequantized on the CPU, x as given (f16 → f64).
pub fn qgemm_ref(
    x: &[f16],
    w_deq: &[f32],
    bias: Option<&[f16]>,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f64> {
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w_deq[j * k..(j + 1) * k];
            let mut s = 0f64;
            for (a, b) in xr.iter().zip(wr) {
                s += a.to_f64() * *b as f64;
            }
            y[i * n + j] = s + bias.map(|b| b[j].to_f64()).unwrap_or(0.0);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_tiles() {
        let sm90 = Target::named("sm_90").unwrap();
        let s = spec(QuantType::Q4_K, &sm90, None, default_tile("mma", 1024)).unwrap();
        assert!(register_tile(
            QuantType::Q4_K,
            "mma",
            default_tile("mma", 16)
        ));
        assert!(!register_tile(
            QuantType::F16,
            "mma",
            default_tile("mma", 16)
        ));
        // q8_0 at 64 tokens: 2 x 64 x 272 x 2 bytes of x, 2 stages x 64 rows x 19 vectors
        assert_eq!(
            shared_bytes(QuantType::Q8_0, "mma", (64, 64, 8, 256)),
            69632 + 38912
        );
        assert_eq!(shared_bytes(QuantType::Q8_0, "mma", (128, 128, 8, 64)), 0);
        // sm_86/sm_89 (99 KiB per block): q8_0's 64 x 64 tile does not fit, 64 x 32 does; q4_0's fits
        let sm86 = Target::named("sm_86").unwrap().shared_per_block_optin as usize;
        let big = default_tile("mma", 256);
        assert_eq!(
            fitting_tile(QuantType::Q8_0, "mma", big, sm86),
            (64, 32, 8, 256)
        );
        assert_eq!(fitting_tile(QuantType::Q4_0, "mma", big, sm86), big);
        assert_eq!(
            fitting_tile(QuantType::Q8_0, "mma", big, 40 * 1024),
            (16, 32, 8, 256)
        );
        assert_eq!(
            fitting_tile(QuantType::Q8_0, "mma", big, 1024),
            (128, 128, 8, 64)
        );
        assert_eq!(s.uri(), "qgemm.q4_K.mma.m64.n64.x8.k256.w32");
        let gfx = Target::named("gfx942").unwrap();
        assert_eq!(
            spec(QuantType::Q8_0, &gfx, None, default_tile("mfma", 16))
                .unwrap()
                .uri(),
            "qgemm.q8_0.mfma.m16.n32.x4.k256.w64"
        );
        let e = spec(QuantType::Q8_0, &gfx, None, (16, 16, 4, 256))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("supported: m64.n64.x4.k64, m16.n32.x4.k256"),
            "{e}"
        );
        // the AMD register tile: 2 stages x 32 rows of 264 halves of x, 2 x 32 rows x 19 vectors of W
        assert_eq!(
            shared_bytes(QuantType::Q8_0, "mfma", (32, 32, 4, 256)),
            33792 + 19456
        );
        assert!(spec(QuantType::Q8_0, &sm90, Some("mfma"), (64, 64, 4, 64)).is_err());
        assert!(check_shape(QuantType::Q4_K, 3, 5, 4096).is_ok());
        assert!(check_shape(QuantType::Q4_K, 3, 5, 4096 + 32).is_err());
        assert!(check_shape(QuantType::F16, 3, 5, 1000).is_ok());
        let y = qgemm_ref(
            &[f16::ONE, f16::from_f32(2.0)],
            &[1.0, 1.0, 3.0, -1.0],
            Some(&[f16::ZERO, f16::ONE]),
            1,
            2,
            2,
        );
        assert_eq!(y, vec![3.0, 2.0]);
    }
}
