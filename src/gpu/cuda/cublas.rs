//! cuBLAS (libcublas.so.13 / .12), loaded at run time. One handle per device, bound to the device's
//! primary context (the one [`super::CudaBackend`] uses), so cuBLAS and our kernels share memory and
//! streams.

use super::{driver, Driver, Ptr};
use crate::error::{Error, Result};
use crate::gpu::blas::{BlasBackend, BlasType, GemmCall};
use crate::gpu::loader::{cstr, dyn_api, env_dir, open_first, python_site_dirs};
use crate::gpu::Raw;
use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

dyn_api!(
    /// cuBLAS entry points (cublas_api.h).
    CublasApi {
        fn cublasCreate_v2(*mut Ptr) -> i32;
        fn cublasDestroy_v2(Ptr) -> i32;
        fn cublasSetStream_v2(Ptr, Ptr) -> i32;
        fn cublasGetVersion_v2(Ptr, *mut i32) -> i32;
        fn cublasGetStatusString(i32) -> *const c_char;
        fn cublasGemmEx(Ptr, i32, i32, i32, i32, i32, *const c_void, *const c_void, i32, i32, *const c_void, i32, i32, *const c_void, *mut c_void, i32, i32, i32, i32) -> i32;
    }
);

/// Where libcublas is looked for, in order: the user's CUDA root (CUDA_HOME, CUDA_PATH), the
/// toolkit's default /usr/local/cuda, pip's `nvidia/cu13` (CUDA 13 wheels, what torch 2.9+ ships) and
/// `nvidia/cublas` (CUDA 12 wheels), then the loader's own search path. CUDA 13 before 12: the newer
/// library runs on any driver the older one does not refuse.
pub fn candidates() -> Vec<String> {
    let mut dirs: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|v| env_dir(v, ""))
        .collect();
    dirs.push(PathBuf::from("/usr/local/cuda"));
    let mut libdirs: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|r| [r.join("lib64"), r.join("lib")])
        .collect();
    for sp in python_site_dirs() {
        libdirs.push(sp.join("nvidia/cu13/lib"));
        libdirs.push(sp.join("nvidia/cublas/lib"));
    }
    let sonames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];
    let mut c: Vec<String> = libdirs
        .iter()
        .flat_map(|d| {
            sonames
                .iter()
                .map(move |s| d.join(s).to_string_lossy().into_owned())
        })
        .collect();
    c.extend(sonames.map(String::from));
    c
}

fn api() -> Result<&'static CublasApi> {
    static A: OnceLock<std::result::Result<CublasApi, String>> = OnceLock::new();
    A.get_or_init(|| {
        let (lib, path) =
            open_first("cuBLAS (libcublas.so.13/.12)", &candidates()).map_err(|e| e.to_string())?;
        CublasApi::from_library(lib, path).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::op("blas", e.clone()))
}

/// Load cuBLAS (no device needed); its path.
pub fn probe() -> Result<String> {
    Ok(api()?.path.clone())
}

fn check(a: &CublasApi, name: &'static str, code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: returns a static string for any status value.
    Err(Error::Vendor {
        api: name,
        code: code as i64,
        message: cstr(unsafe { (a.cublasGetStatusString)(code) }),
    })
}

fn cuda_type(t: BlasType) -> i32 {
    match t {
        BlasType::F32 => 0,   // CUDA_R_32F
        BlasType::F16 => 2,   // CUDA_R_16F
        BlasType::Bf16 => 14, // CUDA_R_16BF
    }
}

/// A cuBLAS handle on one device's primary context.
pub(crate) struct CublasHandle {
    api: &'static CublasApi,
    d: &'static Driver,
    ctx: usize,
    handle: usize,
    version: i32,
    stream: Raw,
}

// SAFETY: the handle is used by one thread at a time (Blas holds it in a Mutex) and the context is
// made current before every call.
unsafe impl Send for CublasHandle {}

impl CublasHandle {
    pub(crate) fn new(ordinal: u32) -> Result<CublasHandle> {
        let api = api()?;
        let d = driver()?;
        let mut dev = 0;
        d.check("cuDeviceGet", unsafe {
            (d.api.cuDeviceGet)(&mut dev, ordinal as i32)
        })?;
        let mut ctx: Ptr = std::ptr::null_mut();
        // Retaining the primary context again only bumps its reference count: it is the backend's.
        d.check("cuDevicePrimaryCtxRetain", unsafe {
            (d.api.cuDevicePrimaryCtxRetain)(&mut ctx, dev)
        })?;
        d.check("cuCtxSetCurrent", unsafe { (d.api.cuCtxSetCurrent)(ctx) })?;
        let mut h: Ptr = std::ptr::null_mut();
        check(api, "cublasCreate_v2", unsafe {
            (api.cublasCreate_v2)(&mut h)
        })?;
        let mut version = 0;
        check(api, "cublasGetVersion_v2", unsafe {
            (api.cublasGetVersion_v2)(h, &mut version)
        })?;
        Ok(CublasHandle {
            api,
            d,
            ctx: ctx as usize,
            handle: h as usize,
            version,
            stream: 0,
        })
    }
}

impl BlasBackend for CublasHandle {
    fn describe(&self) -> String {
        let v = self.version;
        format!(
            "cuBLAS {}.{}.{} ({})",
            v / 10000,
            (v / 100) % 100,
            v % 100,
            self.api.path
        )
    }

    fn gemm(&mut self, stream: Raw, g: &GemmCall) -> Result<()> {
        let a = self.api;
        self.d.check("cuCtxSetCurrent", unsafe {
            (self.d.api.cuCtxSetCurrent)(self.ctx as Ptr)
        })?;
        if stream != self.stream {
            check(a, "cublasSetStream_v2", unsafe {
                (a.cublasSetStream_v2)(self.handle as Ptr, stream as Ptr)
            })?;
            self.stream = stream;
        }
        let (alpha, beta) = (g.alpha, g.beta);
        // SAFETY: arguments as cublas_api.h declares cublasGemmEx; scalars are f32 host values
        // (CUBLAS_COMPUTE_32F, host pointer mode), device pointers checked by the caller.
        let code = unsafe {
            (a.cublasGemmEx)(
                self.handle as Ptr,
                g.trans_a as i32, // CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
                g.trans_b as i32,
                g.m,
                g.n,
                g.k,
                &alpha as *const f32 as *const c_void,
                g.a as *const c_void,
                cuda_type(g.a_type),
                g.lda,
                g.b as *const c_void,
                cuda_type(g.b_type),
                g.ldb,
                &beta as *const f32 as *const c_void,
                g.c as *mut c_void,
                cuda_type(g.c_type),
                g.ldc,
                68, // CUBLAS_COMPUTE_32F
                -1, // CUBLAS_GEMM_DEFAULT
            )
        };
        check(a, "cublasGemmEx", code)
    }
}

impl Drop for CublasHandle {
    fn drop(&mut self) {
        // SAFETY: created by cublasCreate_v2, destroyed once, with its context current.
        unsafe {
            (self.d.api.cuCtxSetCurrent)(self.ctx as Ptr);
            (self.api.cublasDestroy_v2)(self.handle as Ptr);
        }
    }
}
