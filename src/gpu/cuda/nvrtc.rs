//! NVRTC, loaded at run time: compiles kernel text straight to a cubin for one `sm_XY`.

use crate::error::{Error, Result};
use crate::gpu::loader::{cstr, dyn_api, env_dir, open_first, python_site_dirs};
use crate::gpu::{RtcCompiler, Target, Vendor};
use std::ffi::{c_char, c_void, CString};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

type Prog = *mut c_void;

dyn_api!(
    /// NVRTC entry points.
    NvrtcApi {
        fn nvrtcVersion(*mut i32, *mut i32) -> i32;
        fn nvrtcGetErrorString(i32) -> *const c_char;
        fn nvrtcCreateProgram(*mut Prog, *const c_char, *const c_char, i32, *const *const c_char, *const *const c_char) -> i32;
        fn nvrtcCompileProgram(Prog, i32, *const *const c_char) -> i32;
        fn nvrtcGetProgramLogSize(Prog, *mut usize) -> i32;
        fn nvrtcGetProgramLog(Prog, *mut c_char) -> i32;
        fn nvrtcGetCUBINSize(Prog, *mut usize) -> i32;
        fn nvrtcGetCUBIN(Prog, *mut c_char) -> i32;
        fn nvrtcDestroyProgram(*mut Prog) -> i32;
        fn nvrtcGetNumSupportedArchs(*mut i32) -> i32;
        fn nvrtcGetSupportedArchs(*mut i32) -> i32;
    }
);

/// NVRTC with the CUDA include directory its kernels need (cuda_fp16.h, cuda_bf16.h).
pub struct Nvrtc {
    api: NvrtcApi,
    version: (i32, i32),
    include: Option<PathBuf>,
    archs: Vec<i32>,
}

/// CUDA roots named by the user or installed in the usual places.
fn cuda_roots() -> Vec<PathBuf> {
    let mut r: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|v| env_dir(v, ""))
        .collect();
    r.push(PathBuf::from("/usr/local/cuda"));
    r
}

/// Library candidates, most specific first: the user's CUDA root, /usr/local/cuda, pip's
/// `nvidia/cuda_nvrtc` (CUDA 12) and `nvidia/cu13` wheels, then the loader's own search.
fn nvrtc_candidates() -> Vec<String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for root in cuda_roots() {
        dirs.push(root.join("lib64"));
        dirs.push(root.join("lib"));
    }
    for sp in python_site_dirs() {
        dirs.push(sp.join("nvidia/cu13/lib"));
        dirs.push(sp.join("nvidia/cuda_nvrtc/lib"));
    }
    let mut c = Vec::new();
    for d in &dirs {
        for so in ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"] {
            c.push(d.join(so).to_string_lossy().into_owned());
        }
    }
    c.extend(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"].map(String::from));
    c
}

/// The directory holding `cuda_fp16.h`, looked for beside the library first, then in CUDA roots and
/// pip's `nvidia/cuda_runtime` / `nvidia/cu13` include folders. `ROCMFORGE_CUDA_INCLUDE` overrides.
fn find_include(lib_path: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = env_dir("ROCMFORGE_CUDA_INCLUDE", "") {
        dirs.push(d);
    }
    let lib = PathBuf::from(lib_path);
    if let Some(libdir) = lib.parent().and_then(|p| p.parent()) {
        dirs.push(libdir.join("include"));
        if let Some(nv) = libdir.parent() {
            dirs.push(nv.join("cuda_runtime/include"));
        }
    }
    dirs.extend(cuda_roots().into_iter().map(|r| r.join("include")));
    for sp in python_site_dirs() {
        dirs.push(sp.join("nvidia/cu13/include"));
        dirs.push(sp.join("nvidia/cuda_runtime/include"));
    }
    dirs.into_iter().find(|d| d.join("cuda_fp16.h").exists())
}

impl Nvrtc {
    /// The process-wide NVRTC.
    pub fn get() -> Result<Arc<Nvrtc>> {
        static N: OnceLock<std::result::Result<Arc<Nvrtc>, String>> = OnceLock::new();
        N.get_or_init(|| Self::load().map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| Error::LibraryNotFound {
                what: "NVRTC".into(),
                tried: vec![e],
            })
    }

    fn load() -> Result<Nvrtc> {
        let (lib, path) = open_first("NVRTC (libnvrtc.so.13/.12)", &nvrtc_candidates())?;
        let api = NvrtcApi::from_library(lib, path)?;
        let mut v = (0, 0);
        // SAFETY: out-pointers valid for the call.
        unsafe { (api.nvrtcVersion)(&mut v.0, &mut v.1) };
        let mut n = 0;
        // SAFETY: as above; the array has room for the count NVRTC reported.
        let archs = unsafe {
            (api.nvrtcGetNumSupportedArchs)(&mut n);
            let mut a = vec![0i32; n.max(0) as usize];
            (api.nvrtcGetSupportedArchs)(a.as_mut_ptr());
            a
        };
        let include = find_include(&api.path);
        Ok(Nvrtc {
            api,
            version: v,
            include,
            archs,
        })
    }

    fn check(&self, api: &'static str, code: i32) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: returns a static string.
        let msg = cstr(unsafe { (self.api.nvrtcGetErrorString)(code) });
        Err(Error::Vendor {
            api,
            code: code as i64,
            message: msg,
        })
    }

    /// Where the CUDA headers were found, if anywhere.
    pub fn include_dir(&self) -> Option<&PathBuf> {
        self.include.as_ref()
    }
}

/// Frees an NVRTC program on every exit path.
struct ProgGuard<'a>(&'a NvrtcApi, Prog);
impl Drop for ProgGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the program was created by nvrtcCreateProgram and is destroyed once.
        unsafe { (self.0.nvrtcDestroyProgram)(&mut self.1) };
    }
}

impl RtcCompiler for Nvrtc {
    fn vendor(&self) -> Vendor {
        Vendor::Nvidia
    }
    fn describe(&self) -> String {
        let inc = match &self.include {
            Some(p) => format!("headers {}", p.display()),
            None => "CUDA headers NOT found (set ROCMFORGE_CUDA_INCLUDE)".into(),
        };
        format!("NVRTC {} ({}; {inc})", self.version(), self.api.path)
    }
    fn version(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }
    fn supported_targets(&self) -> Vec<String> {
        self.archs.iter().map(|a| format!("sm_{a}")).collect()
    }
    fn check_target(&self, t: &Target) -> Result<()> {
        // An emulated AMD target compiles for its NVIDIA host.
        let sm = t
            .compile_arch()
            .strip_prefix("sm_")
            .and_then(|s| s.trim_end_matches('a').parse::<i32>().ok())
            .unwrap_or(0);
        if t.backend_vendor() != Vendor::Nvidia
            || (!self.archs.is_empty() && !self.archs.contains(&sm))
        {
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
            format!("-arch={}", t.compile_arch()),
            "-std=c++17".into(),
            "-default-device".into(),
        ];
        // RF_NVIDIA selects NVIDIA-only code (inline PTX); an emulated AMD target must take the AMD
        // paths, so it gets RF_EMULATE (defined in its source by the renderer) instead.
        if !t.is_emulated() {
            o.push("-DRF_NVIDIA=1".into());
        }
        if let Some(inc) = &self.include {
            o.push(format!("-I{}", inc.display()));
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
        // SAFETY: strings are NUL-terminated and outlive the calls; no headers are passed.
        self.check("nvrtcCreateProgram", unsafe {
            (self.api.nvrtcCreateProgram)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        let guard = ProgGuard(&self.api, prog);
        // SAFETY: valid program and option array.
        let rc =
            unsafe { (self.api.nvrtcCompileProgram)(guard.1, optp.len() as i32, optp.as_ptr()) };
        let mut n = 0usize;
        // SAFETY: valid program; buffer sized by NVRTC.
        let log = unsafe {
            (self.api.nvrtcGetProgramLogSize)(guard.1, &mut n);
            let mut buf = vec![0u8; n.max(1)];
            (self.api.nvrtcGetProgramLog)(guard.1, buf.as_mut_ptr() as *mut c_char);
            String::from_utf8_lossy(&buf[..n.saturating_sub(1)]).into_owned()
        };
        if rc == 6 {
            // NVRTC_ERROR_COMPILATION: an error in the source, reported with its log.
            return Ok(Err(log));
        }
        self.check("nvrtcCompileProgram", rc)?;
        let mut size = 0usize;
        self.check("nvrtcGetCUBINSize", unsafe {
            (self.api.nvrtcGetCUBINSize)(guard.1, &mut size)
        })?;
        let mut code = vec![0u8; size];
        self.check("nvrtcGetCUBIN", unsafe {
            (self.api.nvrtcGetCUBIN)(guard.1, code.as_mut_ptr() as *mut c_char)
        })?;
        if !log.trim().is_empty() {
            tracing::debug!(kernel = name, "NVRTC log: {}", log.trim());
        }
        Ok(Ok(code))
    }
}
