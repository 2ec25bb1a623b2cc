//! NVIDIA: the CUDA driver API (libcuda.so.1), loaded at run time. HIP's NVIDIA platform is this.

pub mod cublas;
pub mod nvrtc;

use super::loader::{cstr, dyn_api, open_first};
use super::{Backend, FuncAttrs, Raw, Target};
use crate::error::{Error, Result};
use std::ffi::{c_char, c_void, CString};
use std::sync::OnceLock;

type CuResult = i32;
type Ptr = *mut c_void;

dyn_api!(
    /// The CUDA driver entry points ROCmForge uses.
    CudaApi {
        fn cuInit(u32) -> CuResult;
        fn cuDriverGetVersion(*mut i32) -> CuResult;
        fn cuDeviceGetCount(*mut i32) -> CuResult;
        fn cuDeviceGet(*mut i32, i32) -> CuResult;
        fn cuDeviceGetName(*mut c_char, i32, i32) -> CuResult;
        fn cuDeviceGetAttribute(*mut i32, i32, i32) -> CuResult;
        fn cuDeviceTotalMem_v2(*mut usize, i32) -> CuResult;
        fn cuDevicePrimaryCtxRetain(*mut Ptr, i32) -> CuResult;
        fn cuCtxSetCurrent(Ptr) -> CuResult;
        fn cuCtxSynchronize() -> CuResult;
        fn cuMemAlloc_v2(*mut u64, usize) -> CuResult;
        fn cuMemFree_v2(u64) -> CuResult;
        fn cuMemcpyHtoD_v2(u64, *const c_void, usize) -> CuResult;
        fn cuMemcpyDtoH_v2(*mut c_void, u64, usize) -> CuResult;
        fn cuMemcpyDtoDAsync_v2(u64, u64, usize, Ptr) -> CuResult;
        fn cuMemsetD8_v2(u64, u8, usize) -> CuResult;
        fn cuMemGetInfo_v2(*mut usize, *mut usize) -> CuResult;
        fn cuModuleLoadData(*mut Ptr, *const c_void) -> CuResult;
        fn cuModuleUnload(Ptr) -> CuResult;
        fn cuModuleGetFunction(*mut Ptr, Ptr, *const c_char) -> CuResult;
        fn cuFuncGetAttribute(*mut i32, i32, Ptr) -> CuResult;
        fn cuFuncSetAttribute(Ptr, i32, i32) -> CuResult;
        fn cuLaunchKernel(Ptr, u32, u32, u32, u32, u32, u32, u32, Ptr, *mut *mut c_void, *mut *mut c_void) -> CuResult;
        fn cuStreamCreate(*mut Ptr, u32) -> CuResult;
        fn cuStreamDestroy_v2(Ptr) -> CuResult;
        fn cuStreamSynchronize(Ptr) -> CuResult;
        fn cuEventCreate(*mut Ptr, u32) -> CuResult;
        fn cuEventDestroy_v2(Ptr) -> CuResult;
        fn cuEventRecord(Ptr, Ptr) -> CuResult;
        fn cuEventSynchronize(Ptr) -> CuResult;
        fn cuGetErrorString(i32, *mut *const c_char) -> CuResult;
        // page-locked host memory and stream-ordered copies
        fn cuMemHostAlloc(*mut Ptr, usize, u32) -> CuResult;
        fn cuMemFreeHost(Ptr) -> CuResult;
        fn cuMemcpyHtoDAsync_v2(u64, *const c_void, usize, Ptr) -> CuResult;
        fn cuMemcpyDtoHAsync_v2(*mut c_void, u64, usize, Ptr) -> CuResult;
        fn cuMemsetD8Async(u64, u8, usize, Ptr) -> CuResult;
        fn cuStreamWaitEvent(Ptr, Ptr, u32) -> CuResult;
        // stream capture and graphs (cuda.h maps cuStreamBeginCapture to the _v2 entry point, the
        // one with a capture mode; cuGraphInstantiateWithFlags exists from CUDA 11.4 through 13,
        // where the flag-less cuGraphInstantiate became an alias of it)
        fn cuStreamBeginCapture_v2(Ptr, i32) -> CuResult;
        fn cuStreamEndCapture(Ptr, *mut Ptr) -> CuResult;
        fn cuStreamIsCapturing(Ptr, *mut i32) -> CuResult;
        fn cuThreadExchangeStreamCaptureMode(*mut i32) -> CuResult;
        fn cuGraphInstantiateWithFlags(*mut Ptr, Ptr, u64) -> CuResult;
        fn cuGraphLaunch(Ptr, Ptr) -> CuResult;
        fn cuGraphExecDestroy(Ptr) -> CuResult;
        fn cuGraphDestroy(Ptr) -> CuResult;
    }
);

// CU_STREAM_CAPTURE_MODE_THREAD_LOCAL (see `gpu::graph` for why this mode).
use super::graph::CAPTURE_MODE_THREAD_LOCAL;
/// CU_STREAM_CAPTURE_STATUS_NONE; ACTIVE is 1, INVALIDATED 2 (both count as capturing).
const CAPTURE_STATUS_NONE: i32 = 0;
/// CU_MEMHOSTALLOC_PORTABLE: page-locked for every context, not only the current one.
const MEMHOSTALLOC_PORTABLE: u32 = 1;
/// CU_STREAM_NON_BLOCKING.
const STREAM_NON_BLOCKING: u32 = 1;

/// `cuEventElapsedTime` was renamed `_v2` in CUDA 12.8 and the old name dropped in 13.
type ElapsedFn = unsafe extern "C" fn(*mut f32, Ptr, Ptr) -> CuResult;
/// `cuLaunchKernelEx` (CUDA 12.0+): a launch with attributes, here programmatic stream serialization.
type LaunchExFn = unsafe extern "C" fn(
    *const LaunchConfigEx,
    Ptr,
    *mut *mut c_void,
    *mut *mut c_void,
) -> CuResult;

/// `CUlaunchAttribute` (cuda.h): an id, padding to 8 bytes, a 64-byte value union.
#[repr(C)]
struct LaunchAttribute {
    id: u32,
    pad: [u8; 4],
    value: [u8; 64],
}

/// `CUlaunchConfig` (cuda.h).
#[repr(C)]
struct LaunchConfigEx {
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    stream: Ptr,
    attrs: *mut LaunchAttribute,
    num_attrs: u32,
}

/// CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION.
const ATTR_PROGRAMMATIC_SERIALIZATION: u32 = 6;

struct Driver {
    api: CudaApi,
    elapsed: ElapsedFn,
    launch_ex: Option<LaunchExFn>,
}

/// Where libcuda is looked for: the loader's own search (driver installs put it in the ld cache),
/// then the usual driver directories, then CUDA_HOME's compat stubs are NOT used (they cannot run).
fn driver_candidates() -> Vec<String> {
    let mut c = vec!["libcuda.so.1".to_string(), "libcuda.so".to_string()];
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/local/nvidia/lib64",
        "/usr/lib/wsl/lib",
    ] {
        c.push(format!("{d}/libcuda.so.1"));
    }
    c
}

fn driver() -> Result<&'static Driver> {
    static D: OnceLock<std::result::Result<Driver, String>> = OnceLock::new();
    D.get_or_init(|| {
        let load = || -> Result<Driver> {
            let (lib, path) = open_first("CUDA driver (libcuda.so.1)", &driver_candidates())?;
            // SAFETY: symbol signatures as in cuda.h.
            let elapsed = unsafe {
                lib.get::<ElapsedFn>(b"cuEventElapsedTime_v2\0")
                    .or_else(|_| lib.get::<ElapsedFn>(b"cuEventElapsedTime\0"))
                    .map(|s| *s)
                    .map_err(|e| Error::MissingSymbol {
                        library: path.clone(),
                        symbol: "cuEventElapsedTime".into(),
                        reason: e.to_string(),
                    })?
            };
            // SAFETY: signature as in cuda.h; absent before CUDA 12 (then no programmatic launches).
            let launch_ex = unsafe {
                lib.get::<LaunchExFn>(b"cuLaunchKernelEx\0")
                    .ok()
                    .map(|s| *s)
            };
            let api = CudaApi::from_library(lib, path)?;
            let d = Driver {
                api,
                elapsed,
                launch_ex,
            };
            d.check("cuInit", unsafe { (d.api.cuInit)(0) })?;
            Ok(d)
        };
        load().map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::NoDevice(e.clone()))
}

impl Driver {
    fn check(&self, api: &'static str, code: CuResult) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorString writes a pointer to a static string.
        unsafe { (self.api.cuGetErrorString)(code, &mut p) };
        Err(Error::Vendor {
            api,
            code: code as i64,
            message: cstr(p),
        })
    }
}

macro_rules! cu {
    ($d:expr, $f:ident ( $($a:expr),* )) => {
        // SAFETY: arguments follow cuda.h for this entry point; pointers are valid for the call.
        $d.check(stringify!($f), unsafe { ($d.api.$f)($($a),*) })
    };
}

/// The CUDA driver version as `major.minor`.
pub fn driver_version() -> Result<String> {
    let d = driver()?;
    let mut v = 0;
    cu!(d, cuDriverGetVersion(&mut v))?;
    Ok(format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// A CUDA device with its primary context.
pub(crate) struct CudaBackend {
    d: &'static Driver,
    ctx: usize,
}

impl CudaBackend {
    pub(crate) fn open(ordinal: u32) -> Result<(CudaBackend, Target)> {
        let d = driver()?;
        let mut n = 0;
        cu!(d, cuDeviceGetCount(&mut n))?;
        if ordinal as i32 >= n {
            return Err(Error::NoDevice(format!(
                "CUDA device {ordinal} requested, {n} present"
            )));
        }
        let mut dev = 0;
        cu!(d, cuDeviceGet(&mut dev, ordinal as i32))?;
        let attr = |a: i32| -> Result<u32> {
            let mut v = 0;
            cu!(d, cuDeviceGetAttribute(&mut v, a, dev))?;
            Ok(v.max(0) as u32)
        };
        let (major, minor) = (attr(75)?, attr(76)?);
        let mut name = vec![0 as c_char; 256];
        cu!(d, cuDeviceGetName(name.as_mut_ptr(), 256, dev))?;
        let mut mem = 0usize;
        cu!(d, cuDeviceTotalMem_v2(&mut mem, dev))?;
        let mut ctx: Ptr = std::ptr::null_mut();
        cu!(d, cuDevicePrimaryCtxRetain(&mut ctx, dev))?;
        let mut t = Target::named(&format!("sm_{major}{minor}"))?;
        t.name = cstr(name.as_ptr());
        t.detected = true;
        t.wave_size = attr(10)?;
        t.compute_units = attr(16)?;
        t.max_threads_per_block = attr(1)?;
        t.max_block = [attr(2)?, attr(3)?, attr(4)?];
        t.max_grid = [attr(5)?, attr(6)?, attr(7)?];
        t.shared_per_block = attr(8)?;
        t.shared_per_block_optin = attr(97)?.max(t.shared_per_block);
        t.regs_per_block = attr(12)?;
        t.l2_bytes = attr(38)? as u64;
        t.clock_khz = attr(13).unwrap_or(0);
        t.mem_bytes = mem as u64;
        t.driver_version = format!("CUDA driver {}", driver_version()?);
        Ok((
            CudaBackend {
                d,
                ctx: ctx as usize,
            },
            t,
        ))
    }

    fn bind(&self) -> Result<()> {
        cu!(self.d, cuCtxSetCurrent(self.ctx as Ptr))
    }
}

impl Backend for CudaBackend {
    fn malloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        let mut p = 0u64;
        cu!(self.d, cuMemAlloc_v2(&mut p, bytes))?;
        Ok(p)
    }
    fn free(&self, ptr: u64) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemFree_v2(ptr))
    }
    fn host_alloc(&self, bytes: usize) -> Result<*mut u8> {
        self.bind()?;
        let mut p: Ptr = std::ptr::null_mut();
        cu!(self.d, cuMemHostAlloc(&mut p, bytes, MEMHOSTALLOC_PORTABLE))?;
        Ok(p as *mut u8)
    }
    fn host_free(&self, ptr: *mut u8) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemFreeHost(ptr as Ptr))
    }
    unsafe fn htod_async(&self, dst: u64, src: *const u8, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        cu!(
            self.d,
            cuMemcpyHtoDAsync_v2(dst, src as *const c_void, bytes, stream as Ptr)
        )
    }
    unsafe fn dtoh_async(&self, dst: *mut u8, src: u64, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        cu!(
            self.d,
            cuMemcpyDtoHAsync_v2(dst as *mut c_void, src, bytes, stream as Ptr)
        )
    }
    fn memset8_async(&self, dst: u64, value: u8, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemsetD8Async(dst, value, bytes, stream as Ptr))
    }
    unsafe fn htod(&self, dst: u64, src: *const u8, bytes: usize) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemcpyHtoD_v2(dst, src as *const c_void, bytes))
    }
    unsafe fn dtoh(&self, dst: *mut u8, src: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemcpyDtoH_v2(dst as *mut c_void, src, bytes))
    }
    fn dtod(&self, dst: u64, src: u64, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemcpyDtoDAsync_v2(dst, src, bytes, stream as Ptr))
    }
    fn memset8(&self, dst: u64, value: u8, bytes: usize) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuMemsetD8_v2(dst, value, bytes))
    }
    fn mem_info(&self) -> Result<(u64, u64)> {
        self.bind()?;
        let (mut f, mut t) = (0usize, 0usize);
        cu!(self.d, cuMemGetInfo_v2(&mut f, &mut t))?;
        Ok((f as u64, t as u64))
    }
    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuCtxSynchronize())
    }
    fn module_load(&self, image: &[u8]) -> Result<Raw> {
        self.bind()?;
        // cuModuleLoadData reads an ELF image whose size it takes from its headers; a truncated image
        // must not reach it, so the cache verifies a checksum before any load.
        let mut m: Ptr = std::ptr::null_mut();
        cu!(
            self.d,
            cuModuleLoadData(&mut m, image.as_ptr() as *const c_void)
        )?;
        Ok(m as Raw)
    }
    fn module_unload(&self, module: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuModuleUnload(module as Ptr))
    }
    fn function(&self, module: Raw, name: &str) -> Result<Raw> {
        self.bind()?;
        let c = CString::new(name).map_err(|_| Error::Launch {
            kernel: name.into(),
            reason: "NUL in name".into(),
        })?;
        let mut f: Ptr = std::ptr::null_mut();
        cu!(
            self.d,
            cuModuleGetFunction(&mut f, module as Ptr, c.as_ptr())
        )?;
        Ok(f as Raw)
    }
    fn func_attrs(&self, func: Raw) -> Result<FuncAttrs> {
        let get = |a: i32| -> Result<u32> {
            let mut v = 0;
            cu!(self.d, cuFuncGetAttribute(&mut v, a, func as Ptr))?;
            Ok(v.max(0) as u32)
        };
        Ok(FuncAttrs {
            max_threads: get(0)?,
            shared_bytes: get(1)?,
            local_bytes: get(3)?,
            registers: get(4)?,
        })
    }
    fn set_dynamic_shared(&self, func: Raw, bytes: u32) -> Result<()> {
        // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        cu!(self.d, cuFuncSetAttribute(func as Ptr, 8, bytes as i32))
    }
    fn supports_pdl(&self) -> bool {
        self.d.launch_ex.is_some()
    }
    unsafe fn launch(
        &self,
        func: Raw,
        g: [u32; 3],
        b: [u32; 3],
        shared: u32,
        stream: Raw,
        params: &mut [*mut c_void],
        pdl: bool,
    ) -> Result<()> {
        self.bind()?;
        if let (true, Some(ex)) = (pdl, self.d.launch_ex) {
            let mut attr = LaunchAttribute {
                id: ATTR_PROGRAMMATIC_SERIALIZATION,
                pad: [0; 4],
                value: [0; 64],
            };
            attr.value[..4].copy_from_slice(&1i32.to_ne_bytes());
            let cfg = LaunchConfigEx {
                grid: g,
                block: b,
                shared,
                stream: stream as Ptr,
                attrs: &mut attr,
                num_attrs: 1,
            };
            // SAFETY: cfg and attr live across the call; params as for cuLaunchKernel.
            return self.d.check("cuLaunchKernelEx", unsafe {
                ex(&cfg, func as Ptr, params.as_mut_ptr(), std::ptr::null_mut())
            });
        }
        cu!(
            self.d,
            cuLaunchKernel(
                func as Ptr,
                g[0],
                g[1],
                g[2],
                b[0],
                b[1],
                b[2],
                shared,
                stream as Ptr,
                params.as_mut_ptr(),
                std::ptr::null_mut()
            )
        )
    }
    fn stream_create(&self) -> Result<Raw> {
        self.bind()?;
        let mut s: Ptr = std::ptr::null_mut();
        cu!(self.d, cuStreamCreate(&mut s, STREAM_NON_BLOCKING))?;
        Ok(s as Raw)
    }
    fn stream_create_nonblocking(&self) -> Result<Raw> {
        // CUDA streams made here never synchronise with the legacy default stream.
        self.stream_create()
    }
    fn stream_wait_event(&self, s: Raw, e: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuStreamWaitEvent(s as Ptr, e as Ptr, 0))
    }
    fn stream_begin_capture(&self, s: Raw) -> Result<()> {
        self.bind()?;
        cu!(
            self.d,
            cuStreamBeginCapture_v2(s as Ptr, CAPTURE_MODE_THREAD_LOCAL)
        )
    }
    fn stream_end_capture(&self, s: Raw) -> Result<Raw> {
        self.bind()?;
        let mut g: Ptr = std::ptr::null_mut();
        cu!(self.d, cuStreamEndCapture(s as Ptr, &mut g))?;
        Ok(g as Raw)
    }
    fn stream_is_capturing(&self, s: Raw) -> Result<bool> {
        self.bind()?;
        let mut status = CAPTURE_STATUS_NONE;
        cu!(self.d, cuStreamIsCapturing(s as Ptr, &mut status))?;
        Ok(status != CAPTURE_STATUS_NONE)
    }
    fn exchange_capture_mode(&self, mode: i32) -> Result<i32> {
        let mut m = mode;
        cu!(self.d, cuThreadExchangeStreamCaptureMode(&mut m))?;
        Ok(m)
    }
    fn graph_instantiate(&self, g: Raw) -> Result<Raw> {
        self.bind()?;
        let mut exec: Ptr = std::ptr::null_mut();
        cu!(self.d, cuGraphInstantiateWithFlags(&mut exec, g as Ptr, 0))?;
        Ok(exec as Raw)
    }
    fn graph_destroy(&self, g: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuGraphDestroy(g as Ptr))
    }
    fn graph_launch(&self, exec: Raw, s: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuGraphLaunch(exec as Ptr, s as Ptr))
    }
    fn graph_exec_destroy(&self, exec: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuGraphExecDestroy(exec as Ptr))
    }
    fn stream_destroy(&self, s: Raw) -> Result<()> {
        cu!(self.d, cuStreamDestroy_v2(s as Ptr))
    }
    fn stream_sync(&self, s: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuStreamSynchronize(s as Ptr))
    }
    fn event_create(&self) -> Result<Raw> {
        self.bind()?;
        let mut e: Ptr = std::ptr::null_mut();
        cu!(self.d, cuEventCreate(&mut e, 0))?;
        Ok(e as Raw)
    }
    fn event_destroy(&self, e: Raw) -> Result<()> {
        cu!(self.d, cuEventDestroy_v2(e as Ptr))
    }
    fn event_record(&self, e: Raw, s: Raw) -> Result<()> {
        self.bind()?;
        cu!(self.d, cuEventRecord(e as Ptr, s as Ptr))
    }
    fn event_sync(&self, e: Raw) -> Result<()> {
        cu!(self.d, cuEventSynchronize(e as Ptr))
    }
    fn event_elapsed_ms(&self, start: Raw, end: Raw) -> Result<f32> {
        let mut ms = 0f32;
        // SAFETY: both events were created and recorded by this backend.
        self.d.check("cuEventElapsedTime", unsafe {
            (self.d.elapsed)(&mut ms, start as Ptr, end as Ptr)
        })?;
        Ok(ms)
    }
}

/// The CUDA device API is `Send + Sync` by contract (the context is bound before each call).
unsafe impl Send for CudaBackend {}
unsafe impl Sync for CudaBackend {}
