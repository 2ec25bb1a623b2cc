//! AMD: the HIP runtime (libamdhip64), loaded at run time.

pub mod hipblas;
pub mod hiprtc;

use super::loader::{cstr, dyn_api, env_dir, open_first};
use super::{Backend, FuncAttrs, Raw, Target, Vendor};
use crate::error::{Error, Result};
use std::ffi::{c_char, c_void, CString};
use std::sync::OnceLock;

type Ptr = *mut c_void;

dyn_api!(
    /// The HIP runtime entry points ROCmForge uses (the module API, as cudarc uses the driver API).
    HipApi {
        fn hipInit(u32) -> i32;
        fn hipDriverGetVersion(*mut i32) -> i32;
        fn hipRuntimeGetVersion(*mut i32) -> i32;
        fn hipGetDeviceCount(*mut i32) -> i32;
        fn hipSetDevice(i32) -> i32;
        fn hipDeviceGetAttribute(*mut i32, i32, i32) -> i32;
        fn hipDeviceGetName(*mut c_char, i32, i32) -> i32;
        fn hipDeviceTotalMem(*mut usize, i32) -> i32;
        fn hipDeviceSynchronize() -> i32;
        fn hipMalloc(*mut Ptr, usize) -> i32;
        fn hipFree(Ptr) -> i32;
        fn hipMemcpyHtoD(Ptr, *const c_void, usize) -> i32;
        fn hipMemcpyDtoH(*mut c_void, Ptr, usize) -> i32;
        fn hipMemcpyDtoDAsync(Ptr, Ptr, usize, Ptr) -> i32;
        fn hipMemsetD8(Ptr, u8, usize) -> i32;
        fn hipMemGetInfo(*mut usize, *mut usize) -> i32;
        fn hipModuleLoadData(*mut Ptr, *const c_void) -> i32;
        fn hipModuleUnload(Ptr) -> i32;
        fn hipModuleGetFunction(*mut Ptr, Ptr, *const c_char) -> i32;
        fn hipFuncGetAttribute(*mut i32, i32, Ptr) -> i32;
        fn hipModuleLaunchKernel(Ptr, u32, u32, u32, u32, u32, u32, u32, Ptr, *mut *mut c_void, *mut *mut c_void) -> i32;
        fn hipStreamCreate(*mut Ptr) -> i32;
        fn hipStreamDestroy(Ptr) -> i32;
        fn hipStreamSynchronize(Ptr) -> i32;
        fn hipEventCreate(*mut Ptr) -> i32;
        fn hipEventDestroy(Ptr) -> i32;
        fn hipEventRecord(Ptr, Ptr) -> i32;
        fn hipEventSynchronize(Ptr) -> i32;
        fn hipEventElapsedTime(*mut f32, Ptr, Ptr) -> i32;
        fn hipGetErrorString(i32) -> *const c_char;
        // page-locked host memory and stream-ordered copies (all in libamdhip64 since ROCm 4.2;
        // hipHostMalloc/hipHostFree are still exported by ROCm 7)
        fn hipHostMalloc(*mut Ptr, usize, u32) -> i32;
        fn hipHostFree(Ptr) -> i32;
        fn hipMemcpyHtoDAsync(Ptr, *const c_void, usize, Ptr) -> i32;
        fn hipMemcpyDtoHAsync(*mut c_void, Ptr, usize, Ptr) -> i32;
        fn hipMemsetD8Async(Ptr, u8, usize, Ptr) -> i32;
        fn hipStreamCreateWithFlags(*mut Ptr, u32) -> i32;
        fn hipStreamWaitEvent(Ptr, Ptr, u32) -> i32;
        // stream capture and graphs (ROCm 4.3 and later)
        fn hipStreamBeginCapture(Ptr, i32) -> i32;
        fn hipStreamEndCapture(Ptr, *mut Ptr) -> i32;
        fn hipStreamIsCapturing(Ptr, *mut i32) -> i32;
        fn hipThreadExchangeStreamCaptureMode(*mut i32) -> i32; // ROCm 5.0 and later
        fn hipGraphInstantiate(*mut Ptr, Ptr, *mut Ptr, *mut c_char, usize) -> i32;
        fn hipGraphLaunch(Ptr, Ptr) -> i32;
        fn hipGraphExecDestroy(Ptr) -> i32;
        fn hipGraphDestroy(Ptr) -> i32;
    }
);

// hipStreamCaptureModeThreadLocal (see `gpu::graph` for why this mode).
use super::graph::CAPTURE_MODE_THREAD_LOCAL;
/// hipStreamCaptureStatusNone; Active is 1, Invalidated 2 (both count as capturing).
const CAPTURE_STATUS_NONE: i32 = 0;
/// hipHostMallocPortable: page-locked for every device context.
const HOST_MALLOC_PORTABLE: u32 = 1;
/// hipStreamNonBlocking.
const STREAM_NON_BLOCKING: u32 = 1;

/// libamdhip64 candidates: ROCM_PATH / HIP_PATH first, then /opt/rocm, then the loader's search.
/// Sonames: .so.7 (ROCm 7), .so.6 (ROCm 6), .so.5 (ROCm 5, which also carries hipRTC).
pub(crate) fn amdhip_candidates() -> Vec<String> {
    let mut dirs: Vec<std::path::PathBuf> = ["ROCM_PATH", "HIP_PATH"]
        .iter()
        .filter_map(|v| env_dir(v, "lib"))
        .collect();
    dirs.push("/opt/rocm/lib".into());
    let sonames = [
        "libamdhip64.so.7",
        "libamdhip64.so.6",
        "libamdhip64.so.5",
        "libamdhip64.so",
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

fn runtime() -> Result<&'static HipApi> {
    static H: OnceLock<std::result::Result<HipApi, String>> = OnceLock::new();
    H.get_or_init(|| {
        let load = || -> Result<HipApi> {
            let (lib, path) = open_first("HIP runtime (libamdhip64)", &amdhip_candidates())?;
            let api = HipApi::from_library(lib, path)?;
            check(&api, "hipInit", unsafe { (api.hipInit)(0) })?;
            Ok(api)
        };
        load().map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::NoDevice(e.clone()))
}

fn check(api: &HipApi, name: &'static str, code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: returns a static string.
    Err(Error::Vendor {
        api: name,
        code: code as i64,
        message: cstr(unsafe { (api.hipGetErrorString)(code) }),
    })
}

macro_rules! hip {
    ($a:expr, $f:ident ( $($x:expr),* )) => {
        // SAFETY: arguments follow hip_runtime_api.h for this entry point.
        check($a, stringify!($f), unsafe { ($a.$f)($($x),*) })
    };
}

// hipDeviceAttribute_t values (hip_runtime_api.h, unchanged from ROCm 5.2 to 7).
const ATTR_CLOCK: i32 = 5;
const ATTR_L2: i32 = 19;
const ATTR_BLOCK_X: i32 = 26;
const ATTR_GRID_X: i32 = 29;
const ATTR_THREADS_PER_BLOCK: i32 = 56;
const ATTR_CU_COUNT: i32 = 63;
const ATTR_REGS_PER_BLOCK: i32 = 71;
const ATTR_SHARED_PER_BLOCK: i32 = 74;
const ATTR_WARP_SIZE: i32 = 87;
const ATTR_CC_MAJOR: i32 = 23;
const ATTR_CC_MINOR: i32 = 61;

/// The gfx architecture name with features, read from `hipDeviceProp_t::gcnArchName`. The struct's
/// layout differs between ROCm 5 and 6 (`hipGetDevicePropertiesR0600`), so rather than hard-coding
/// one offset we fill a generous buffer and take the one NUL-terminated string starting `gfx`.
fn arch_name(lib_path: &str, ordinal: i32) -> Result<String> {
    type PropsFn = unsafe extern "C" fn(*mut c_void, i32) -> i32;
    // SAFETY: re-opening an already loaded library just bumps its refcount.
    let lib = unsafe { libloading::Library::new(lib_path) }
        .map_err(|e| Error::NoDevice(e.to_string()))?;
    let f = unsafe {
        lib.get::<PropsFn>(b"hipGetDevicePropertiesR0600\0")
            .or_else(|_| lib.get::<PropsFn>(b"hipGetDeviceProperties\0"))
    }
    .map_err(|e| Error::MissingSymbol {
        library: lib_path.into(),
        symbol: "hipGetDeviceProperties".into(),
        reason: e.to_string(),
    })?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: the buffer is far larger than any hipDeviceProp_t version (792 bytes in 5.2, ~1.5 KiB in 6).
    let rc = unsafe { f(buf.as_mut_ptr() as *mut c_void, ordinal) };
    if rc != 0 {
        return Err(Error::Vendor {
            api: "hipGetDeviceProperties",
            code: rc as i64,
            message: "failed".into(),
        });
    }
    gcn_arch_in(&buf)
        .ok_or_else(|| Error::NoDevice("hipGetDeviceProperties gave no gcnArchName".into()))
}

/// The first NUL-terminated string starting `gfx` in a filled `hipDeviceProp_t` (any layout).
fn gcn_arch_in(props: &[u8]) -> Option<String> {
    (0..props.len().saturating_sub(3))
        .find(|&i| &props[i..i + 3] == b"gfx" && (i == 0 || props[i - 1] == 0))
        .map(|i| {
            let end = props[i..]
                .iter()
                .position(|&b| b == 0)
                .map_or(props.len(), |p| i + p);
            String::from_utf8_lossy(&props[i..end]).into_owned()
        })
}

/// How the HIP stand-in names its device: `AMD stand-in (on NVIDIA H200)`. The stand-in
/// (tools/hip-standin, a test tool never shipped) is a libamdhip64 and hipRTC that forward to the CUDA
/// driver and NVRTC, so that this backend's host code runs on an NVIDIA GPU.
pub(crate) const STANDIN_NAME: &str = "AMD stand-in (on ";

/// The target of the stand-in's device: the AMD target its gcnArchName names, emulated (as
/// `ROCMFORGE_EMULATE` does on the CUDA backend: templates/prelude_emu.h) on the NVIDIA GPU beneath,
/// of compute capability `sm` (major*10+minor), with the limits the stand-in forwarded from it. Its
/// kernels are compiled by the stand-in's hipRTC and run by its runtime
/// (`Emulation::runtime` is AMD).
///
/// Recognised by the device name rather than by `ROCMFORGE_EMULATE`: the stand-in can run nothing
/// but emulated kernels (NVRTC cannot compile the AMD prelude), the AMD target must come from
/// gcnArchName (reading it is what the stand-in tests), and no real AMD device calls itself that.
/// `ROCMFORGE_EMULATE` keeps its one meaning (an NVIDIA device through the CUDA backend).
fn standin_target(dev: &Target, sm: u32) -> Result<Target> {
    let mut host = Target::named(&format!("sm_{sm}"))?;
    host.name = dev.name.clone();
    host.detected = dev.detected;
    host.compute_units = dev.compute_units;
    host.max_threads_per_block = dev.max_threads_per_block;
    host.max_block = dev.max_block;
    host.max_grid = dev.max_grid;
    host.shared_per_block = dev.shared_per_block;
    host.regs_per_block = dev.regs_per_block;
    host.mem_bytes = dev.mem_bytes;
    host.l2_bytes = dev.l2_bytes;
    host.clock_khz = dev.clock_khz;
    host.driver_version = dev.driver_version.clone();
    let mut t = Target::emulate(&dev.full_name(), &host)?;
    if let Some(e) = t.emulation.as_mut() {
        e.runtime = Vendor::Amd;
    }
    Ok(t)
}

/// A HIP device.
pub(crate) struct HipBackend {
    api: &'static HipApi,
    ordinal: i32,
}

impl HipBackend {
    pub(crate) fn open(ordinal: u32) -> Result<(HipBackend, Target)> {
        let api = runtime()?;
        let mut n = 0;
        hip!(api, hipGetDeviceCount(&mut n))?;
        if ordinal as i32 >= n {
            return Err(Error::NoDevice(format!(
                "HIP device {ordinal} requested, {n} present"
            )));
        }
        let dev = ordinal as i32;
        let attr = |a: i32| -> Result<u32> {
            let mut v = 0;
            hip!(api, hipDeviceGetAttribute(&mut v, a, dev))?;
            Ok(v.max(0) as u32)
        };
        let mut t = Target::named(&arch_name(&api.path, dev)?)?;
        let mut name = vec![0 as c_char; 256];
        hip!(api, hipDeviceGetName(name.as_mut_ptr(), 256, dev))?;
        let mut mem = 0usize;
        hip!(api, hipDeviceTotalMem(&mut mem, dev))?;
        let (mut dv, mut rv) = (0, 0);
        hip!(api, hipDriverGetVersion(&mut dv))?;
        hip!(api, hipRuntimeGetVersion(&mut rv))?;
        t.name = cstr(name.as_ptr());
        t.detected = true;
        t.wave_size = attr(ATTR_WARP_SIZE)?;
        t.compute_units = attr(ATTR_CU_COUNT)?;
        t.max_threads_per_block = attr(ATTR_THREADS_PER_BLOCK)?;
        t.max_block = [
            attr(ATTR_BLOCK_X)?,
            attr(ATTR_BLOCK_X + 1)?,
            attr(ATTR_BLOCK_X + 2)?,
        ];
        t.max_grid = [
            attr(ATTR_GRID_X)?,
            attr(ATTR_GRID_X + 1)?,
            attr(ATTR_GRID_X + 2)?,
        ];
        t.shared_per_block = attr(ATTR_SHARED_PER_BLOCK)?;
        t.shared_per_block_optin = t.shared_per_block;
        t.regs_per_block = attr(ATTR_REGS_PER_BLOCK)?;
        t.l2_bytes = attr(ATTR_L2)? as u64;
        t.clock_khz = attr(ATTR_CLOCK).unwrap_or(0);
        t.mem_bytes = mem as u64;
        t.driver_version = format!("HIP driver {dv}, runtime {rv} ({})", api.path);
        if t.name.starts_with(STANDIN_NAME) {
            // the stand-in reports the NVIDIA GPU's compute capability here
            let sm = attr(ATTR_CC_MAJOR)? * 10 + attr(ATTR_CC_MINOR)?;
            t = standin_target(&t, sm)?;
        }
        Ok((HipBackend { api, ordinal: dev }, t))
    }

    fn bind(&self) -> Result<()> {
        hip!(self.api, hipSetDevice(self.ordinal))
    }
}

impl Backend for HipBackend {
    fn malloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        let mut p: Ptr = std::ptr::null_mut();
        hip!(self.api, hipMalloc(&mut p, bytes))?;
        Ok(p as u64)
    }
    fn free(&self, ptr: u64) -> Result<()> {
        self.bind()?;
        hip!(self.api, hipFree(ptr as Ptr))
    }
    fn host_alloc(&self, bytes: usize) -> Result<*mut u8> {
        self.bind()?;
        let mut p: Ptr = std::ptr::null_mut();
        hip!(self.api, hipHostMalloc(&mut p, bytes, HOST_MALLOC_PORTABLE))?;
        Ok(p as *mut u8)
    }
    fn host_free(&self, ptr: *mut u8) -> Result<()> {
        self.bind()?;
        hip!(self.api, hipHostFree(ptr as Ptr))
    }
    unsafe fn htod_async(&self, dst: u64, src: *const u8, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipMemcpyHtoDAsync(dst as Ptr, src as *const c_void, bytes, stream as Ptr)
        )
    }
    unsafe fn dtoh_async(&self, dst: *mut u8, src: u64, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipMemcpyDtoHAsync(dst as *mut c_void, src as Ptr, bytes, stream as Ptr)
        )
    }
    fn memset8_async(&self, dst: u64, value: u8, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipMemsetD8Async(dst as Ptr, value, bytes, stream as Ptr)
        )
    }
    unsafe fn htod(&self, dst: u64, src: *const u8, bytes: usize) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipMemcpyHtoD(dst as Ptr, src as *const c_void, bytes)
        )
    }
    unsafe fn dtoh(&self, dst: *mut u8, src: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipMemcpyDtoH(dst as *mut c_void, src as Ptr, bytes)
        )
    }
    fn dtod(&self, dst: u64, src: u64, bytes: usize, stream: Raw) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipMemcpyDtoDAsync(dst as Ptr, src as Ptr, bytes, stream as Ptr)
        )
    }
    fn memset8(&self, dst: u64, value: u8, bytes: usize) -> Result<()> {
        self.bind()?;
        hip!(self.api, hipMemsetD8(dst as Ptr, value, bytes))
    }
    fn mem_info(&self) -> Result<(u64, u64)> {
        self.bind()?;
        let (mut f, mut t) = (0usize, 0usize);
        hip!(self.api, hipMemGetInfo(&mut f, &mut t))?;
        Ok((f as u64, t as u64))
    }
    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        hip!(self.api, hipDeviceSynchronize())
    }
    fn module_load(&self, image: &[u8]) -> Result<Raw> {
        self.bind()?;
        let mut m: Ptr = std::ptr::null_mut();
        hip!(
            self.api,
            hipModuleLoadData(&mut m, image.as_ptr() as *const c_void)
        )?;
        Ok(m as Raw)
    }
    fn module_unload(&self, module: Raw) -> Result<()> {
        hip!(self.api, hipModuleUnload(module as Ptr))
    }
    fn function(&self, module: Raw, name: &str) -> Result<Raw> {
        let c = CString::new(name).map_err(|_| Error::Launch {
            kernel: name.into(),
            reason: "NUL in name".into(),
        })?;
        let mut f: Ptr = std::ptr::null_mut();
        hip!(
            self.api,
            hipModuleGetFunction(&mut f, module as Ptr, c.as_ptr())
        )?;
        Ok(f as Raw)
    }
    fn func_attrs(&self, func: Raw) -> Result<FuncAttrs> {
        let get = |a: i32| -> Result<u32> {
            let mut v = 0;
            hip!(self.api, hipFuncGetAttribute(&mut v, a, func as Ptr))?;
            Ok(v.max(0) as u32)
        };
        Ok(FuncAttrs {
            max_threads: get(0)?,
            shared_bytes: get(1)?,
            local_bytes: get(3)?,
            registers: get(4)?,
        })
    }
    fn set_dynamic_shared(&self, _func: Raw, _bytes: u32) -> Result<()> {
        // AMD kernels may use all LDS dynamically without opting in.
        Ok(())
    }
    unsafe fn launch(
        &self,
        func: Raw,
        g: [u32; 3],
        b: [u32; 3],
        shared: u32,
        stream: Raw,
        params: &mut [*mut c_void],
        _pdl: bool, // no programmatic dependent launch on AMD
    ) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipModuleLaunchKernel(
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
        hip!(self.api, hipStreamCreate(&mut s))?;
        Ok(s as Raw)
    }
    fn stream_create_nonblocking(&self) -> Result<Raw> {
        self.bind()?;
        let mut s: Ptr = std::ptr::null_mut();
        hip!(
            self.api,
            hipStreamCreateWithFlags(&mut s, STREAM_NON_BLOCKING)
        )?;
        Ok(s as Raw)
    }
    fn stream_wait_event(&self, s: Raw, e: Raw) -> Result<()> {
        self.bind()?;
        hip!(self.api, hipStreamWaitEvent(s as Ptr, e as Ptr, 0))
    }
    fn stream_begin_capture(&self, s: Raw) -> Result<()> {
        self.bind()?;
        hip!(
            self.api,
            hipStreamBeginCapture(s as Ptr, CAPTURE_MODE_THREAD_LOCAL)
        )
    }
    fn stream_end_capture(&self, s: Raw) -> Result<Raw> {
        self.bind()?;
        let mut g: Ptr = std::ptr::null_mut();
        hip!(self.api, hipStreamEndCapture(s as Ptr, &mut g))?;
        Ok(g as Raw)
    }
    fn stream_is_capturing(&self, s: Raw) -> Result<bool> {
        let mut status = CAPTURE_STATUS_NONE;
        hip!(self.api, hipStreamIsCapturing(s as Ptr, &mut status))?;
        Ok(status != CAPTURE_STATUS_NONE)
    }
    fn exchange_capture_mode(&self, mode: i32) -> Result<i32> {
        let mut m = mode;
        hip!(self.api, hipThreadExchangeStreamCaptureMode(&mut m))?;
        Ok(m)
    }
    fn graph_instantiate(&self, g: Raw) -> Result<Raw> {
        self.bind()?;
        let mut exec: Ptr = std::ptr::null_mut();
        hip!(
            self.api,
            hipGraphInstantiate(
                &mut exec,
                g as Ptr,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0
            )
        )?;
        Ok(exec as Raw)
    }
    fn graph_destroy(&self, g: Raw) -> Result<()> {
        hip!(self.api, hipGraphDestroy(g as Ptr))
    }
    fn graph_launch(&self, exec: Raw, s: Raw) -> Result<()> {
        self.bind()?;
        hip!(self.api, hipGraphLaunch(exec as Ptr, s as Ptr))
    }
    fn graph_exec_destroy(&self, exec: Raw) -> Result<()> {
        hip!(self.api, hipGraphExecDestroy(exec as Ptr))
    }
    fn stream_destroy(&self, s: Raw) -> Result<()> {
        hip!(self.api, hipStreamDestroy(s as Ptr))
    }
    fn stream_sync(&self, s: Raw) -> Result<()> {
        hip!(self.api, hipStreamSynchronize(s as Ptr))
    }
    fn event_create(&self) -> Result<Raw> {
        self.bind()?;
        let mut e: Ptr = std::ptr::null_mut();
        hip!(self.api, hipEventCreate(&mut e))?;
        Ok(e as Raw)
    }
    fn event_destroy(&self, e: Raw) -> Result<()> {
        hip!(self.api, hipEventDestroy(e as Ptr))
    }
    fn event_record(&self, e: Raw, s: Raw) -> Result<()> {
        hip!(self.api, hipEventRecord(e as Ptr, s as Ptr))
    }
    fn event_sync(&self, e: Raw) -> Result<()> {
        hip!(self.api, hipEventSynchronize(e as Ptr))
    }
    fn event_elapsed_ms(&self, start: Raw, end: Raw) -> Result<f32> {
        let mut ms = 0f32;
        hip!(
            self.api,
            hipEventElapsedTime(&mut ms, start as Ptr, end as Ptr)
        )?;
        Ok(ms)
    }
}

// SAFETY: the HIP runtime is thread-safe; the device is selected before each call.
unsafe impl Send for HipBackend {}
unsafe impl Sync for HipBackend {}

#[cfg(test)]
mod tests {
    use super::*;

    /// gcnArchName where ROCm's headers put it: offset 396 of HIP 5.2's 792-byte hipDeviceProp_t, 1160
    /// of HIP 6.4's 1472-byte hipDeviceProp_tR0600 (tools/hip-standin/build.sh prints both), after a
    /// device name in the first 256 bytes.
    #[test]
    fn gcn_arch_from_both_layouts() {
        for (size, offset) in [(792, 396), (1472, 1160)] {
            let mut p = vec![0u8; size];
            let name = b"AMD stand-in (on NVIDIA H200)";
            p[..name.len()].copy_from_slice(name);
            // `gfx` inside a string is not gcnArchName
            p[299..303].copy_from_slice(b"xgfx");
            let arch = b"gfx942:sramecc+:xnack-";
            p[offset..offset + arch.len()].copy_from_slice(arch);
            assert_eq!(
                gcn_arch_in(&p).as_deref(),
                Some("gfx942:sramecc+:xnack-"),
                "{size}"
            );
        }
        assert_eq!(gcn_arch_in(&[0u8; 64]), None);
        assert_eq!(gcn_arch_in(b"gfx1100").as_deref(), Some("gfx1100"));
    }

    #[test]
    fn standin_runs_the_gcn_target_emulated_through_hip() {
        for (arch, wave) in [("gfx942:sramecc+:xnack-", 64), ("gfx1100", 32)] {
            let mut dev = Target::named(arch).unwrap();
            dev.name = "AMD stand-in (on NVIDIA H200)".into();
            dev.detected = true;
            dev.compute_units = 132;
            dev.shared_per_block = 48 * 1024;
            dev.mem_bytes = 140 << 30;
            let t = standin_target(&dev, 90).unwrap();
            assert_eq!(t.full_name(), format!("{arch}@sm_90"));
            assert_eq!(t.vendor, Vendor::Amd);
            assert_eq!(
                t.backend_vendor(),
                Vendor::Amd,
                "hipRTC and the HIP runtime run it"
            );
            assert_eq!(t.compile_arch(), "sm_90");
            assert_eq!(t.wave_size, wave);
            assert_eq!(t.compute_units, 132);
            assert_eq!(t.mem_bytes, 140 << 30);
            assert!(t.detected && t.is_emulated());
            let e = t.emulation.as_ref().unwrap();
            assert_eq!(e.host_shared_per_block, 48 * 1024);
        }
        // an NVIDIA GPU too old to emulate on
        let dev = Target::named("gfx942").unwrap();
        assert!(standin_target(&dev, 60).is_err());
    }
}
