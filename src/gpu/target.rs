//! `Target`: what a kernel is compiled for. Detected from a device, or named (`gfx90a:sramecc+`,
//! `sm_90`) to compile for a GPU that is not present.
//!
//! An emulated target (`gfx942@sm_90`, or `ROCMFORGE_EMULATE=gfx942` on an NVIDIA device) is a test
//! and debug mode, never chosen for speed: kernels are rendered exactly as for the AMD target (its wave
//! size, matrix-core path, tile parameters, LDS budget) and compiled with NVRTC for the NVIDIA host,
//! where `templates/prelude_emu.h` emulates wave64 and the matrix-core builtins (issue 13).

use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;

/// GPU vendor. Only `gpu/` acts on it; everything above treats it as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum Vendor {
    /// AMD through HIP and hipRTC.
    Amd,
    /// NVIDIA through the CUDA driver and NVRTC (HIP's NVIDIA platform).
    Nvidia,
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vendor::Amd => "amd",
            Vendor::Nvidia => "nvidia",
        })
    }
}

/// Matrix-core family a target offers; kernels pick their fast path from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MatrixCores {
    /// None usable from our kernels.
    None,
    /// CDNA MFMA (wave64).
    Mfma,
    /// RDNA3/RDNA4 WMMA (wave32).
    Wmma,
    /// NVIDIA mma.sync (sm_80 and later).
    MmaSync,
}

/// A compilation and launch target with the device limits kernels are specialized for.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub vendor: Vendor,
    /// `gfx90a`, `gfx1100`, `sm_90` ...
    pub arch: String,
    /// AMD target features such as `sramecc+`, `xnack-` (part of the full target string).
    pub features: Vec<String>,
    /// Lanes per wave/warp: 64 on GCN/CDNA, 32 on RDNA and NVIDIA.
    pub wave_size: u32,
    /// Device marketing name; `(not present)` for named targets.
    pub name: String,
    /// Whether this target was read off a device (limits are real) or only named.
    pub detected: bool,
    pub compute_units: u32,
    pub max_threads_per_block: u32,
    pub max_block: [u32; 3],
    pub max_grid: [u32; 3],
    /// Static shared memory (LDS) per block in bytes.
    pub shared_per_block: u32,
    /// Shared memory a block may opt into (NVIDIA); equals `shared_per_block` elsewhere.
    pub shared_per_block_optin: u32,
    pub regs_per_block: u32,
    pub mem_bytes: u64,
    pub l2_bytes: u64,
    pub clock_khz: u32,
    /// Driver (and runtime) version string.
    pub driver_version: String,
    /// Set when this AMD target is emulated on an NVIDIA GPU (a test/debug mode; see the module doc).
    pub emulation: Option<Emulation>,
}

/// The NVIDIA host that runs an emulated AMD target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Emulation {
    /// The host's `sm_XY`: what NVRTC compiles for and what the kernels run on.
    pub host_arch: String,
    /// The host's default shared memory per block (larger launches opt in, as native ones do).
    pub host_shared_per_block: u32,
    /// Whose runtime and run-time compiler run the kernels: `Nvidia` (the CUDA driver and NVRTC) for
    /// `ROCMFORGE_EMULATE` and named `gfx942@sm_90` targets; `Amd` on the HIP stand-in
    /// (tools/hip-standin), a libamdhip64 and hipRTC that forward to the CUDA driver and NVRTC, so that
    /// the crate's HIP backend runs the emulated kernels.
    pub runtime: Vendor,
}

/// AMD targets that can be emulated on an NVIDIA GPU: those whose matrix-core layouts are in
/// tests/data/amd_layouts (gfx950 uses gfx942's tables: the CDNA4 ISA keeps the CDNA3 encodings and
/// layouts of the 16x16x16 f16/bf16 MFMAs the templates use).
pub const EMULATED_ARCHS: [&str; 5] = ["gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1200"];

/// Most wave64 waves per block under emulation: one named barrier each, ids 1..=15 (id 0 is
/// `__syncthreads`); see templates/prelude_emu.h.
pub const EMU_MAX_WAVES64: u64 = 15;

/// Shared memory an emulated kernel may use beyond the AMD target's LDS: the emulation prelude's
/// exchange buffer (4 KiB, one word per thread) and the 1 KiB per block NVIDIA reserves on sm_80+
/// (counted in a cubin's shared size). The LDS check is that much lenient.
pub const EMU_SHARED_BYTES: u64 = 4096 + 1024;

/// Lowest NVIDIA host for emulation: `bar.sync` with a thread count and `__shfl_sync` (sm_70).
const EMULATION_MIN_SM: u32 = 70;

impl Target {
    /// A target named on the command line. Limits take the architecture's documented defaults.
    pub fn named(spec: &str) -> Result<Target> {
        let spec = spec.trim();
        if let Some((amd, host)) = spec.split_once('@') {
            if host.contains('@') {
                return Err(Error::BadEmulation {
                    target: spec.into(),
                    reason: "expected one AMD target @ one NVIDIA target, e.g. gfx942@sm_90".into(),
                });
            }
            let host = Target::named(host)?;
            return Target::emulate(amd, &host);
        }
        let mut parts = spec.split(':');
        let arch = parts.next().unwrap_or_default().to_ascii_lowercase();
        let features: Vec<String> = parts.map(|s| s.to_string()).collect();
        for f in &features {
            let ok = (f.ends_with('+') || f.ends_with('-'))
                && matches!(&f[..f.len() - 1], "sramecc" | "xnack");
            if !ok {
                return Err(Error::BadTarget(spec.into()));
            }
        }
        let vendor = if let Some(rest) = arch.strip_prefix("gfx") {
            if rest.len() < 3 || !rest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::BadTarget(spec.into()));
            }
            Vendor::Amd
        } else if let Some(rest) = arch.strip_prefix("sm_") {
            let digits = rest.trim_end_matches('a');
            if digits.len() < 2
                || !digits.chars().all(|c| c.is_ascii_digit())
                || !features.is_empty()
            {
                return Err(Error::BadTarget(spec.into()));
            }
            Vendor::Nvidia
        } else {
            return Err(Error::BadTarget(spec.into()));
        };
        let wave_size = native_wave(vendor, &arch);
        let (shared, optin) = match vendor {
            Vendor::Amd => (65536, 65536),
            Vendor::Nvidia => (48 * 1024, sm_optin_shared(&arch)),
        };
        Ok(Target {
            vendor,
            arch,
            features,
            wave_size,
            name: "(not present)".into(),
            detected: false,
            compute_units: 0,
            max_threads_per_block: 1024,
            max_block: [1024, 1024, 1024],
            max_grid: [u32::MAX >> 1, 65535, 65535],
            shared_per_block: shared,
            shared_per_block_optin: optin,
            regs_per_block: 65536,
            mem_bytes: 0,
            l2_bytes: 0,
            clock_khz: 0,
            driver_version: String::new(),
            emulation: None,
        })
    }

    /// The AMD target `amd` (`gfx942`, `gfx90a:sramecc+`) emulated on the NVIDIA target `host` (named or
    /// detected). Rendering sees the AMD target: its wave size, matrix cores, LDS budget (64 KiB) and
    /// features; compiling and launching use the host's architecture and limits.
    pub fn emulate(amd: &str, host: &Target) -> Result<Target> {
        let name = format!("{}@{}", amd.trim(), host.arch);
        let bad = |reason: String| Error::BadEmulation {
            target: name.clone(),
            reason,
        };
        if host.vendor != Vendor::Nvidia || host.emulation.is_some() {
            return Err(bad(format!(
                "the host `{}` is not an NVIDIA target (sm_XY)",
                host.full_name()
            )));
        }
        if host.sm_version() < EMULATION_MIN_SM {
            return Err(bad(format!(
                "the host must be sm_{EMULATION_MIN_SM} or newer (named barriers with a thread count)"
            )));
        }
        let mut t = Target::named(amd).map_err(|_| {
            bad(format!(
                "`{}` is not an AMD target; emulated targets: {}",
                amd.trim(),
                EMULATED_ARCHS.join(", ")
            ))
        })?;
        if t.vendor != Vendor::Amd {
            return Err(bad(format!(
                "`{}` is not an AMD target; emulated targets: {}",
                amd.trim(),
                EMULATED_ARCHS.join(", ")
            )));
        }
        if !EMULATED_ARCHS.contains(&t.arch.as_str()) {
            return Err(bad(format!(
                "emulated targets: {} (those with matrix-core layout tables)",
                EMULATED_ARCHS.join(", ")
            )));
        }
        t.name = format!("{} emulated on {}", t.arch, host.name);
        t.detected = host.detected;
        t.compute_units = host.compute_units;
        // wave64: one named barrier per wave, ids 1..=15 (templates/prelude_emu.h), so 15 waves
        let max_threads = if t.wave_size == 64 {
            host.max_threads_per_block.min(15 * 64)
        } else {
            host.max_threads_per_block
        };
        t.max_threads_per_block = max_threads;
        t.max_block = [
            host.max_block[0].min(max_threads),
            host.max_block[1].min(max_threads),
            host.max_block[2].min(max_threads),
        ];
        t.max_grid = host.max_grid;
        t.shared_per_block = 65536;
        t.shared_per_block_optin = 65536;
        t.regs_per_block = host.regs_per_block;
        t.mem_bytes = host.mem_bytes;
        t.l2_bytes = host.l2_bytes;
        t.clock_khz = host.clock_khz;
        t.driver_version = host.driver_version.clone();
        t.emulation = Some(Emulation {
            host_arch: host.arch.clone(),
            host_shared_per_block: host.shared_per_block,
            runtime: Vendor::Nvidia,
        });
        Ok(t)
    }

    /// The vendor whose driver and compiler build and run this target's kernels: for an emulated AMD
    /// target its [`Emulation::runtime`] (NVIDIA, or AMD on the HIP stand-in), else [`Target::vendor`].
    pub fn backend_vendor(&self) -> Vendor {
        match &self.emulation {
            Some(e) => e.runtime,
            None => self.vendor,
        }
    }

    /// The architecture the compiler builds machine code for (the host's `sm_XY` when emulated).
    pub fn compile_arch(&self) -> &str {
        match &self.emulation {
            Some(e) => &e.host_arch,
            None => &self.arch,
        }
    }

    /// Whether this is an emulated AMD target (a test/debug mode).
    pub fn is_emulated(&self) -> bool {
        self.emulation.is_some()
    }

    /// Why an emulated target refuses a launch of `block` threads, if it does: wave64 runs at most
    /// [`EMU_MAX_WAVES64`] waves per block (one named barrier each).
    pub fn emulation_refuses_block(&self, block: [u32; 3]) -> Option<String> {
        let threads = block.iter().map(|&b| b as u64).product::<u64>();
        let waves = threads.div_ceil(self.wave_size.max(1) as u64);
        (self.is_emulated() && self.wave_size == 64 && waves > EMU_MAX_WAVES64).then(|| {
            format!(
                "block {block:?} has {threads} threads, {waves} waves of 64; emulated wave64 runs at most {EMU_MAX_WAVES64} per block (one named barrier each)"
            )
        })
    }

    /// Why an emulated target refuses `shared` bytes of shared memory per block (static as the
    /// cubin declares it, plus dynamic), if it does: more than the AMD target's LDS, the emulation's
    /// own [`EMU_SHARED_BYTES`] not counted.
    pub fn emulation_refuses_shared(&self, shared: u64) -> Option<String> {
        (self.is_emulated() && shared > self.shared_per_block as u64 + EMU_SHARED_BYTES).then(
            || {
                format!(
                    "{} bytes of shared memory exceed the {} bytes of LDS of {}",
                    shared.saturating_sub(EMU_SHARED_BYTES),
                    self.shared_per_block,
                    self.arch
                )
            },
        )
    }

    /// Arch plus features, as compilers and code objects spell it (`gfx90a:sramecc+:xnack-`).
    /// Emulated targets append `@` and the host (`gfx942@sm_90`), which keeps their cache entries apart.
    pub fn full_name(&self) -> String {
        let mut s = self.arch.clone();
        for f in &self.features {
            s.push(':');
            s.push_str(f);
        }
        if let Some(e) = &self.emulation {
            s.push('@');
            s.push_str(&e.host_arch);
        }
        s
    }

    /// NVIDIA compute capability as `major*10+minor`; 0 on AMD (also when emulated: see
    /// [`Target::compile_arch`] for the host).
    pub fn sm_version(&self) -> u32 {
        self.arch
            .strip_prefix("sm_")
            .and_then(|s| s.trim_end_matches('a').parse().ok())
            .unwrap_or(0)
    }

    /// AMD generation number (`gfx90a` → 0x90a, `gfx1100` → 0x1100) read as hex digits; 0 on NVIDIA.
    pub fn gfx_number(&self) -> u32 {
        self.arch
            .strip_prefix("gfx")
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .unwrap_or(0)
    }

    /// Which matrix cores the kernels may use on this target.
    pub fn matrix_cores(&self) -> MatrixCores {
        match self.vendor {
            Vendor::Nvidia if self.sm_version() >= 80 => MatrixCores::MmaSync,
            Vendor::Nvidia => MatrixCores::None,
            Vendor::Amd => match self.arch.as_str() {
                "gfx908" | "gfx90a" | "gfx940" | "gfx941" | "gfx942" | "gfx950" => {
                    MatrixCores::Mfma
                }
                a if a.starts_with("gfx11") || a.starts_with("gfx12") => MatrixCores::Wmma,
                _ => MatrixCores::None,
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name())
    }
}

/// The target a device opened as `detected` runs: with `ROCMFORGE_EMULATE=gfxNNN` an NVIDIA device
/// runs that AMD target emulated (a test and debug mode: see [`Target::emulate`]); asked of an AMD
/// device it is an error.
pub fn emulate_env(detected: Target) -> Result<Target> {
    let Some(amd) = std::env::var("ROCMFORGE_EMULATE")
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
    else {
        return Ok(detected);
    };
    if detected.vendor != Vendor::Nvidia {
        return Err(Error::BadEmulation {
            target: amd,
            reason: format!(
                "ROCMFORGE_EMULATE runs an AMD target on an NVIDIA device; {} is not one (unset it)",
                detected.name
            ),
        });
    }
    let t = Target::emulate(&amd, &detected)?;
    tracing::warn!(
        "ROCMFORGE_EMULATE: {} runs {amd} emulated (a test/debug mode, not for speed)",
        detected.name
    );
    Ok(t)
}

/// Native wave size: 64 on GCN/CDNA (gfx6..gfx9), 32 on RDNA (gfx10+) and on NVIDIA.
pub fn native_wave(vendor: Vendor, arch: &str) -> u32 {
    match vendor {
        Vendor::Nvidia => 32,
        Vendor::Amd => {
            let major = arch
                .strip_prefix("gfx")
                .map(|s| &s[..s.len().saturating_sub(2)])
                .unwrap_or("");
            match major.parse::<u32>() {
                Ok(m) if m >= 10 => 32,
                _ => 64,
            }
        }
    }
}

/// Opt-in shared memory per block by compute capability (CUDA programming guide, table of limits).
fn sm_optin_shared(arch: &str) -> u32 {
    let v: u32 = arch
        .strip_prefix("sm_")
        .and_then(|s| s.trim_end_matches('a').parse().ok())
        .unwrap_or(0);
    match v {
        90.. => 227 * 1024,
        80 | 87 => 163 * 1024,
        86 | 89 => 99 * 1024,
        75 => 64 * 1024,
        _ => 48 * 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_targets() {
        let t = Target::named("gfx90a:sramecc+:xnack-").unwrap();
        assert_eq!(
            (t.vendor, t.wave_size, t.full_name().as_str()),
            (Vendor::Amd, 64, "gfx90a:sramecc+:xnack-")
        );
        assert_eq!(Target::named("gfx1100").unwrap().wave_size, 32);
        assert_eq!(Target::named("gfx1030").unwrap().wave_size, 32);
        assert_eq!(Target::named("gfx942").unwrap().wave_size, 64);
        assert_eq!(Target::named("sm_90").unwrap().sm_version(), 90);
        assert_eq!(
            Target::named("gfx1100").unwrap().matrix_cores(),
            MatrixCores::Wmma
        );
        assert_eq!(
            Target::named("gfx950").unwrap().matrix_cores(),
            MatrixCores::Mfma
        );
        assert_eq!(
            Target::named("gfx1030").unwrap().matrix_cores(),
            MatrixCores::None
        );
        for bad in [
            "",
            "gfx",
            "sm_",
            "sm_9x",
            "gfx90a:foo+",
            "cuda",
            "gfx90a:xnack",
            "sm_90:xnack+",
        ] {
            assert!(
                matches!(Target::named(bad), Err(Error::BadTarget(_))),
                "{bad}"
            );
        }
    }
}
