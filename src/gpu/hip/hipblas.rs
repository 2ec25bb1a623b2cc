//! hipBLAS (libhipblas.so.N), loaded at run time. hipBLAS 3 (ROCm 7) takes `hipDataType` and
//! `hipblasComputeType_t` in `hipblasGemmEx`; hipBLAS 0–2 (ROCm 5–6) take `hipblasDatatype_t` for
//! both. Which one we loaded is read from the library's soname.

use super::{check as hip_check, runtime, HipApi, Ptr};
use crate::error::{Error, Result};
use crate::gpu::blas::{BlasBackend, BlasType, GemmCall};
use crate::gpu::loader::{dyn_api, env_dir, open_first};
use crate::gpu::Raw;
use std::ffi::c_void;
use std::sync::OnceLock;

dyn_api!(
    /// hipBLAS entry points (hipblas.h).
    HipblasApi {
        fn hipblasCreate(*mut Ptr) -> i32;
        fn hipblasDestroy(Ptr) -> i32;
        fn hipblasSetStream(Ptr, Ptr) -> i32;
        fn hipblasGemmEx(Ptr, i32, i32, i32, i32, i32, *const c_void, *const c_void, i32, i32, *const c_void, i32, i32, *const c_void, *mut c_void, i32, i32, i32, i32) -> i32;
    }
);

/// ROCM_PATH / HIP_PATH first, then /opt/rocm, then the loader's search; newest soname first
/// (.3 = ROCm 7, .2 = ROCm 6, .1/.0 = ROCm 5).
pub fn candidates() -> Vec<String> {
    let mut dirs: Vec<std::path::PathBuf> = ["ROCM_PATH", "HIP_PATH"]
        .iter()
        .filter_map(|v| env_dir(v, "lib"))
        .collect();
    dirs.push("/opt/rocm/lib".into());
    let sonames = [
        "libhipblas.so.3",
        "libhipblas.so.2",
        "libhipblas.so.1",
        "libhipblas.so.0",
        "libhipblas.so",
    ];
    let mut c: Vec<String> = dirs
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

struct Loaded {
    api: HipblasApi,
    /// hipBLAS major version 3 or later: hipDataType / hipblasComputeType_t.
    v2_types: bool,
}

fn loaded() -> Result<&'static Loaded> {
    static L: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();
    L.get_or_init(|| {
        let (lib, path) = open_first("hipBLAS (libhipblas.so.3/.2/.1/.0)", &candidates())
            .map_err(|e| e.to_string())?;
        // the soname of what we opened (an unversioned name is resolved through its symlink)
        let real = std::fs::canonicalize(&path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.clone());
        let major = real
            .rsplit_once(".so.")
            .and_then(|(_, v)| v.split('.').next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let api = HipblasApi::from_library(lib, path).map_err(|e| e.to_string())?;
        Ok(Loaded {
            api,
            v2_types: major >= 3,
        })
    })
    .as_ref()
    .map_err(|e| Error::op("blas", e.clone()))
}

/// Load hipBLAS (no device needed); its path.
pub fn probe() -> Result<String> {
    Ok(loaded()?.api.path.clone())
}

fn check(name: &'static str, code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // hipblasStatus_t names (hipblas.h); hipBLAS has no status-string function before ROCm 6.
    let msg = match code {
        1 => "HIPBLAS_STATUS_NOT_INITIALIZED",
        2 => "HIPBLAS_STATUS_ALLOC_FAILED",
        3 => "HIPBLAS_STATUS_INVALID_VALUE",
        4 => "HIPBLAS_STATUS_MAPPING_ERROR",
        5 => "HIPBLAS_STATUS_EXECUTION_FAILED",
        6 => "HIPBLAS_STATUS_INTERNAL_ERROR",
        7 => "HIPBLAS_STATUS_NOT_SUPPORTED",
        8 => "HIPBLAS_STATUS_ARCH_MISMATCH",
        9 => "HIPBLAS_STATUS_HANDLE_IS_NULLPTR",
        10 => "HIPBLAS_STATUS_INVALID_ENUM",
        _ => "HIPBLAS_STATUS_UNKNOWN",
    };
    Err(Error::Vendor {
        api: name,
        code: code as i64,
        message: msg.into(),
    })
}

/// Data type codes: hipDataType (hipBLAS 3) or hipblasDatatype_t (hipBLAS 0–2).
fn dtype(t: BlasType, v2: bool) -> i32 {
    match (t, v2) {
        (BlasType::F32, true) => 0,   // HIP_R_32F
        (BlasType::F16, true) => 2,   // HIP_R_16F
        (BlasType::Bf16, true) => 14, // HIP_R_16BF
        (BlasType::F16, false) => 150,
        (BlasType::F32, false) => 151,
        (BlasType::Bf16, false) => 168,
    }
}

/// A hipBLAS handle on one device.
pub(crate) struct HipblasHandle {
    l: &'static Loaded,
    hip: &'static HipApi,
    ordinal: i32,
    handle: usize,
    stream: Raw,
}

// SAFETY: used by one thread at a time (Blas holds it in a Mutex); the device is set before each call.
unsafe impl Send for HipblasHandle {}

impl HipblasHandle {
    pub(crate) fn new(ordinal: u32) -> Result<HipblasHandle> {
        let l = loaded()?;
        let hip = runtime()?;
        hip_check(hip, "hipSetDevice", unsafe {
            (hip.hipSetDevice)(ordinal as i32)
        })?;
        let mut h: Ptr = std::ptr::null_mut();
        check("hipblasCreate", unsafe { (l.api.hipblasCreate)(&mut h) })?;
        Ok(HipblasHandle {
            l,
            hip,
            ordinal: ordinal as i32,
            handle: h as usize,
            stream: 0,
        })
    }
}

impl BlasBackend for HipblasHandle {
    fn describe(&self) -> String {
        format!(
            "hipBLAS ({}{})",
            self.l.api.path,
            if self.l.v2_types {
                ", hipDataType API"
            } else {
                ""
            }
        )
    }

    fn gemm(&mut self, stream: Raw, g: &GemmCall) -> Result<()> {
        let a = &self.l.api;
        hip_check(self.hip, "hipSetDevice", unsafe {
            (self.hip.hipSetDevice)(self.ordinal)
        })?;
        if stream != self.stream {
            check("hipblasSetStream", unsafe {
                (a.hipblasSetStream)(self.handle as Ptr, stream as Ptr)
            })?;
            self.stream = stream;
        }
        let v2 = self.l.v2_types;
        let compute = if v2 { 2 } else { 151 }; // HIPBLAS_COMPUTE_32F / HIPBLAS_R_32F
        let op = |t: bool| if t { 112 } else { 111 }; // HIPBLAS_OP_T / HIPBLAS_OP_N
        let (alpha, beta) = (g.alpha, g.beta);
        // SAFETY: arguments as hipblas.h declares hipblasGemmEx for the loaded major version.
        let code = unsafe {
            (a.hipblasGemmEx)(
                self.handle as Ptr,
                op(g.trans_a),
                op(g.trans_b),
                g.m,
                g.n,
                g.k,
                &alpha as *const f32 as *const c_void,
                g.a as *const c_void,
                dtype(g.a_type, v2),
                g.lda,
                g.b as *const c_void,
                dtype(g.b_type, v2),
                g.ldb,
                &beta as *const f32 as *const c_void,
                g.c as *mut c_void,
                dtype(g.c_type, v2),
                g.ldc,
                compute,
                160, // HIPBLAS_GEMM_DEFAULT
            )
        };
        check("hipblasGemmEx", code)
    }
}

impl Drop for HipblasHandle {
    fn drop(&mut self) {
        // SAFETY: created by hipblasCreate and destroyed once.
        unsafe {
            (self.hip.hipSetDevice)(self.ordinal);
            (self.l.api.hipblasDestroy)(self.handle as Ptr);
        }
    }
}
