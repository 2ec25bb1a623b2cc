//! hipRTC, loaded at run time: compiles kernel text to an AMD code object for a named gfx target,
//! with no GPU needed.
//!
//! A hipRTC must never be handed a target it does not know: Debian 12's HIP 5.2 kills the whole
//! process on gfx1100 or gfx942. What a hipRTC knows is what its code-object manager (comgr) carries
//! device libraries for, and comgr embeds one `oclc_isa_version_<gfx>` bitcode per target, by name.
//! So we read that list out of the comgr library hipRTC will load, and refuse anything else.

use super::amdhip_candidates;
use crate::error::{Error, Result};
use crate::gpu::loader::{cstr, dyn_api, env_dir, open_first};
use crate::gpu::{RtcCompiler, Target, Vendor};
use std::collections::BTreeSet;
use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

type Prog = *mut c_void;

dyn_api!(
    /// hipRTC entry points (same in libhiprtc.so.N and in ROCm 5's libamdhip64).
    HiprtcApi {
        fn hiprtcVersion(*mut i32, *mut i32) -> i32;
        fn hiprtcGetErrorString(i32) -> *const c_char;
        fn hiprtcCreateProgram(*mut Prog, *const c_char, *const c_char, i32, *const *const c_char, *const *const c_char) -> i32;
        fn hiprtcCompileProgram(Prog, i32, *const *const c_char) -> i32;
        fn hiprtcGetProgramLogSize(Prog, *mut usize) -> i32;
        fn hiprtcGetProgramLog(Prog, *mut c_char) -> i32;
        fn hiprtcGetCodeSize(Prog, *mut usize) -> i32;
        fn hiprtcGetCode(Prog, *mut c_char) -> i32;
        fn hiprtcDestroyProgram(*mut Prog) -> i32;
    }
);

/// hipRTC plus the list of targets its comgr supports.
pub struct Hiprtc {
    api: HiprtcApi,
    version: (i32, i32),
    /// gfx names (`gfx90a`, `gfx1100`, ...).
    targets: BTreeSet<String>,
    /// Where the target list came from (comgr path, or the version table).
    targets_from: String,
    /// Version read off the library file name (`libhiprtc.so.6.4.43484` → `6.4.43484`); hiprtcVersion
    /// alone does not tell ROCm releases apart (HIP 5.2 reports 9.0).
    lib_version: String,
}

fn lib_dirs() -> Vec<PathBuf> {
    let mut d: Vec<PathBuf> = ["ROCM_PATH", "HIP_PATH"]
        .iter()
        .filter_map(|v| env_dir(v, "lib"))
        .collect();
    d.push("/opt/rocm/lib".into());
    d
}

/// libhiprtc.so.7 / .so.6 (ROCm 6+), then libamdhip64 (ROCm 5 keeps hipRTC inside it).
fn candidates() -> Vec<String> {
    let sonames = ["libhiprtc.so.7", "libhiprtc.so.6", "libhiprtc.so"];
    let mut c: Vec<String> = lib_dirs()
        .iter()
        .flat_map(|d| {
            sonames
                .iter()
                .map(move |s| d.join(s).to_string_lossy().into_owned())
        })
        .collect();
    c.extend(sonames.map(String::from));
    c.extend(
        amdhip_candidates()
            .into_iter()
            .filter(|p| p.contains(".so.5")),
    );
    c
}

/// The file a loaded library came from (libraries opened by soname have no path of ours).
fn loaded_path(soname_or_path: &str) -> Option<PathBuf> {
    if soname_or_path.contains('/') {
        return Some(PathBuf::from(soname_or_path));
    }
    let base = soname_or_path;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(base))
        })
        .map(PathBuf::from)
}

/// All byte strings in `data` that start with `prefix` and continue with `[0-9a-z]`.
fn scan_names(data: &[u8], prefix: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(p) = data[i..].windows(prefix.len()).position(|w| w == prefix) {
        let s = i + p + prefix.len();
        let e = data[s..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || b.is_ascii_lowercase()))
            .map(|x| s + x)
            .unwrap_or(data.len());
        if e > s {
            out.insert(String::from_utf8_lossy(&data[s..e]).into_owned());
        }
        i = e.max(s);
    }
    out
}

fn map_file(p: &Path) -> Option<memmap2::Mmap> {
    let f = std::fs::File::open(p).ok()?;
    // SAFETY: read-only map of a system library that is not modified while we read it.
    unsafe { memmap2::Mmap::map(&f) }.ok()
}

/// Find the comgr that `rtc_lib` loads and read the gfx targets it has device libraries for.
fn comgr_targets(rtc_lib: &Path) -> Option<(BTreeSet<String>, String)> {
    let rtc = map_file(rtc_lib)?;
    let sonames = scan_names(&rtc, b"libamd_comgr.so.");
    let mut dirs: Vec<PathBuf> = rtc_lib
        .parent()
        .map(|p| vec![p.to_path_buf()])
        .unwrap_or_default();
    dirs.extend(lib_dirs());
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/lib/x86_64-linux-gnu",
            "/usr/lib64",
        ]
        .map(PathBuf::from),
    );
    for so in sonames.iter().rev() {
        for d in &dirs {
            let p = d.join(format!("libamd_comgr.so.{so}"));
            if let Some(m) = map_file(&p) {
                let isa: BTreeSet<String> = scan_names(&m, b"oclc_isa_version_")
                    .into_iter()
                    .filter(|v| v.len() >= 3)
                    .map(|v| format!("gfx{v}"))
                    .collect();
                if !isa.is_empty() {
                    return Some((isa, p.to_string_lossy().into_owned()));
                }
            }
        }
    }
    None
}

/// Targets by hipRTC version, from the ROCm release notes; used only when comgr cannot be read.
fn version_table(v: (i32, i32)) -> BTreeSet<String> {
    let mut t: Vec<&str> = vec![
        "gfx900", "gfx906", "gfx908", "gfx90a", "gfx1010", "gfx1011", "gfx1012", "gfx1030",
        "gfx1031", "gfx1032", "gfx1034", "gfx1035",
    ];
    if v.0 >= 6 {
        t.extend([
            "gfx940", "gfx941", "gfx942", "gfx1100", "gfx1101", "gfx1102", "gfx1103",
        ]);
    }
    if v >= (6, 2) {
        t.extend(["gfx1150", "gfx1151", "gfx1200", "gfx1201"]);
    }
    if v >= (6, 4) {
        t.push("gfx950");
    }
    t.into_iter().map(String::from).collect()
}

impl Hiprtc {
    /// The process-wide hipRTC.
    pub fn get() -> Result<Arc<Hiprtc>> {
        static H: OnceLock<std::result::Result<Arc<Hiprtc>, String>> = OnceLock::new();
        H.get_or_init(|| Self::load().map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| Error::LibraryNotFound {
                what: "hipRTC".into(),
                tried: vec![e],
            })
    }

    fn load() -> Result<Hiprtc> {
        let (lib, path) = open_first(
            "hipRTC (libhiprtc.so.7/.6, or libamdhip64.so.5 on ROCm 5)",
            &candidates(),
        )?;
        let api = HiprtcApi::from_library(lib, path)?;
        let mut v = (0, 0);
        // SAFETY: out-pointers valid for the call.
        unsafe { (api.hiprtcVersion)(&mut v.0, &mut v.1) };
        let file = loaded_path(&api.path);
        let lib_version = file
            .as_deref()
            .and_then(|f| std::fs::canonicalize(f).ok())
            .and_then(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .and_then(|n| n.split_once(".so.").map(|(_, v)| v.to_string()))
            .unwrap_or_default();
        let (targets, targets_from) = match file.as_deref().and_then(comgr_targets) {
            Some((t, from)) => (t, from),
            None => (
                version_table(v),
                format!("hipRTC {}.{} release table", v.0, v.1),
            ),
        };
        Ok(Hiprtc {
            api,
            version: v,
            targets,
            targets_from,
            lib_version,
        })
    }

    fn check(&self, api: &'static str, code: i32) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: returns a static string.
        Err(Error::Vendor {
            api,
            code: code as i64,
            message: cstr(unsafe { (self.api.hiprtcGetErrorString)(code) }),
        })
    }
}

struct ProgGuard<'a>(&'a HiprtcApi, Prog);
impl Drop for ProgGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: created by hiprtcCreateProgram, destroyed once.
        unsafe { (self.0.hiprtcDestroyProgram)(&mut self.1) };
    }
}

impl RtcCompiler for Hiprtc {
    fn vendor(&self) -> Vendor {
        Vendor::Amd
    }
    fn describe(&self) -> String {
        format!(
            "hipRTC {} ({}; targets from {})",
            self.version(),
            self.api.path,
            self.targets_from
        )
    }
    fn version(&self) -> String {
        format!(
            "{}.{} (lib {})",
            self.version.0, self.version.1, self.lib_version
        )
    }
    fn supported_targets(&self) -> Vec<String> {
        self.targets.iter().cloned().collect()
    }
    fn check_target(&self, t: &Target) -> Result<()> {
        // An emulated target with an AMD runtime exists only on the HIP stand-in, whose hipRTC compiles
        // for the NVIDIA GPU beneath (comgr's target list does not apply).
        let known = t.is_emulated() || self.targets.contains(&t.arch);
        if t.backend_vendor() != Vendor::Amd || !known {
            return Err(Error::UnsupportedTarget {
                target: t.full_name(),
                compiler: self.describe(),
                supported: self.supported_targets(),
            });
        }
        Ok(())
    }
    fn base_options(&self, t: &Target) -> Vec<String> {
        let mut o = vec![
            format!("--offload-arch={}", t.full_name()),
            "-O3".into(),
            "-std=c++17".into(),
        ];
        // As on NVRTC: an emulated target (on the HIP stand-in, which translates these options for
        // NVRTC) takes the AMD paths through RF_EMULATE, defined in its source.
        if !t.is_emulated() {
            o.push("-DRF_AMD=1".into());
        }
        o
    }
    fn compile(
        &self,
        source: &str,
        name: &str,
        options: &[String],
    ) -> Result<std::result::Result<Vec<u8>, String>> {
        let src = CString::new(source).map_err(|_| Error::Template {
            template: name.into(),
            message: "NUL byte in source".into(),
        })?;
        let cname = CString::new(name).map_err(|_| Error::Template {
            template: name.into(),
            message: "NUL in name".into(),
        })?;
        let opts: Vec<CString> = options
            .iter()
            .filter_map(|o| CString::new(o.as_str()).ok())
            .collect();
        let optp: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Prog = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings outlive the call; no extra headers.
        self.check("hiprtcCreateProgram", unsafe {
            (self.api.hiprtcCreateProgram)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        let g = ProgGuard(&self.api, prog);
        // SAFETY: valid program and options.
        let rc = unsafe { (self.api.hiprtcCompileProgram)(g.1, optp.len() as i32, optp.as_ptr()) };
        let mut n = 0usize;
        // SAFETY: buffer sized by hipRTC.
        let log = unsafe {
            (self.api.hiprtcGetProgramLogSize)(g.1, &mut n);
            let mut buf = vec![0u8; n.max(1)];
            (self.api.hiprtcGetProgramLog)(g.1, buf.as_mut_ptr() as *mut c_char);
            String::from_utf8_lossy(&buf[..n.min(buf.len())])
                .trim_end_matches('\0')
                .to_string()
        };
        if rc == 6 {
            // HIPRTC_ERROR_COMPILATION
            return Ok(Err(log));
        }
        self.check("hiprtcCompileProgram", rc)?;
        let mut size = 0usize;
        self.check("hiprtcGetCodeSize", unsafe {
            (self.api.hiprtcGetCodeSize)(g.1, &mut size)
        })?;
        let mut code = vec![0u8; size];
        self.check("hiprtcGetCode", unsafe {
            (self.api.hiprtcGetCode)(g.1, code.as_mut_ptr() as *mut c_char)
        })?;
        if code.is_empty() {
            return Ok(Err(format!("hipRTC returned an empty code object\n{log}")));
        }
        Ok(Ok(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn scans_names() {
        let data = b"xx oclc_isa_version_90a\0oclc_isa_version_1100\0oclc_isa_version_\0libamd_comgr.so.3\0";
        let s = scan_names(data, b"oclc_isa_version_");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec!["1100".to_string(), "90a".to_string()]
        );
        assert_eq!(
            scan_names(data, b"libamd_comgr.so.")
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["3".to_string()]
        );
        assert!(
            version_table((5, 2)).contains("gfx90a") && !version_table((5, 2)).contains("gfx1100")
        );
    }
}
