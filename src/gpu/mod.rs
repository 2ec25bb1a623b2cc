//! The only module that knows HIP or CUDA exists.
//!
//! Vendor runtimes and compilers are loaded at run time (`libloading`), never linked: the crate builds
//! and its CPU tests run on a machine with neither. Per vendor there are three thin levels: the symbol
//! table (`sys`, declared with [`loader::dyn_api`]), calls that return `Result` (`result`, inside each
//! backend), and the RAII handles of this file (`safe`): [`Device`], [`Stream`], [`Event`],
//! [`Buffer`], [`Module`] and [`Kernel`]; device memory pools, buffer views and page-locked host
//! memory in [`pool`]; stream capture into replayable graphs in [`graph`].

pub mod blas;
pub mod codeobj;
pub mod cuda;
pub mod graph;
pub mod hip;
pub mod loader;
pub mod pool;
mod target;

pub use graph::{Graph, GraphExec};
pub use pool::{Bump, PinnedBuffer, Pool};
pub use target::{native_wave, MatrixCores, Target, Vendor};

use crate::error::{Error, Result};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

/// An opaque vendor handle (module, function, stream, event), kept as an integer so it is `Send`.
pub type Raw = usize;

/// Resources a loaded kernel uses, as the driver reports them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FuncAttrs {
    pub registers: u32,
    pub shared_bytes: u32,
    pub local_bytes: u32,
    pub max_threads: u32,
}

/// What a vendor backend must provide. Kept small (tinygrad's allocator + program split): memory,
/// modules and launches, streams and events, stream capture and graphs.
pub(crate) trait Backend: Send + Sync {
    fn malloc(&self, bytes: usize) -> Result<u64>;
    fn free(&self, ptr: u64) -> Result<()>;
    /// Page-locked host memory of `bytes` (> 0) bytes.
    fn host_alloc(&self, bytes: usize) -> Result<*mut u8>;
    fn host_free(&self, ptr: *mut u8) -> Result<()>;
    /// # Safety
    /// `src` must stay valid for `bytes` reads until the copy has run on `stream`; `dst` a device
    /// allocation of at least `bytes`.
    unsafe fn htod_async(&self, dst: u64, src: *const u8, bytes: usize, stream: Raw) -> Result<()>;
    /// # Safety
    /// `dst` must stay valid for `bytes` writes, and unread, until the copy has run on `stream`.
    unsafe fn dtoh_async(&self, dst: *mut u8, src: u64, bytes: usize, stream: Raw) -> Result<()>;
    fn memset8_async(&self, dst: u64, value: u8, bytes: usize, stream: Raw) -> Result<()>;
    /// # Safety
    /// `src` must be valid for `bytes` reads and `dst` a device allocation of at least `bytes`.
    unsafe fn htod(&self, dst: u64, src: *const u8, bytes: usize) -> Result<()>;
    /// # Safety
    /// `dst` must be valid for `bytes` writes and `src` a device allocation of at least `bytes`.
    unsafe fn dtoh(&self, dst: *mut u8, src: u64, bytes: usize) -> Result<()>;
    fn dtod(&self, dst: u64, src: u64, bytes: usize, stream: Raw) -> Result<()>;
    fn memset8(&self, dst: u64, value: u8, bytes: usize) -> Result<()>;
    fn mem_info(&self) -> Result<(u64, u64)>;
    fn synchronize(&self) -> Result<()>;
    fn module_load(&self, image: &[u8]) -> Result<Raw>;
    fn module_unload(&self, module: Raw) -> Result<()>;
    fn function(&self, module: Raw, name: &str) -> Result<Raw>;
    fn func_attrs(&self, func: Raw) -> Result<FuncAttrs>;
    fn set_dynamic_shared(&self, func: Raw, bytes: u32) -> Result<()>;
    /// Launch `func`. With `pdl` (only for kernels whose first statement waits for it,
    /// RF_KERNEL_PROLOGUE) the launch may start before the previous kernel in the stream has
    /// finished (programmatic dependent launch); backends without it launch normally.
    ///
    /// # Safety
    /// `params` must point at values matching the kernel's parameter list.
    #[allow(clippy::too_many_arguments)]
    unsafe fn launch(
        &self,
        func: Raw,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        stream: Raw,
        params: &mut [*mut c_void],
        pdl: bool,
    ) -> Result<()>;
    /// Whether `launch(.., pdl: true)` makes programmatic dependent launches (NVIDIA, CUDA 12+).
    fn supports_pdl(&self) -> bool {
        false
    }
    fn stream_create(&self) -> Result<Raw>;
    /// A stream that does not synchronise with the default (null) stream.
    fn stream_create_nonblocking(&self) -> Result<Raw>;
    fn stream_destroy(&self, s: Raw) -> Result<()>;
    fn stream_sync(&self, s: Raw) -> Result<()>;
    /// Make future work on `s` wait for the last record of `e`.
    fn stream_wait_event(&self, s: Raw, e: Raw) -> Result<()>;
    /// Start capturing `s` in thread-local mode (see [`graph`]).
    fn stream_begin_capture(&self, s: Raw) -> Result<()>;
    /// Stop capturing `s`; the captured graph.
    fn stream_end_capture(&self, s: Raw) -> Result<Raw>;
    fn stream_is_capturing(&self, s: Raw) -> Result<bool>;
    /// Set this thread's capture mode (a vendor enum value); the previous one.
    fn exchange_capture_mode(&self, mode: i32) -> Result<i32>;
    fn graph_instantiate(&self, g: Raw) -> Result<Raw>;
    fn graph_destroy(&self, g: Raw) -> Result<()>;
    fn graph_launch(&self, exec: Raw, s: Raw) -> Result<()>;
    fn graph_exec_destroy(&self, exec: Raw) -> Result<()>;
    fn event_create(&self) -> Result<Raw>;
    fn event_destroy(&self, e: Raw) -> Result<()>;
    fn event_record(&self, e: Raw, s: Raw) -> Result<()>;
    fn event_sync(&self, e: Raw) -> Result<()>;
    fn event_elapsed_ms(&self, start: Raw, end: Raw) -> Result<f32>;
}

struct DeviceInner {
    backend: Box<dyn Backend>,
    target: Target,
    ordinal: u32,
    allocated: AtomicI64,
    pinned: AtomicI64,
    /// Kernels launch as programmatic dependents ([`Device::pdl`]).
    pdl: bool,
}

/// See [`Device::pdl`].
fn pdl_policy(t: &Target) -> bool {
    // opt-in: on the H200 it changed no decode speed within noise (docs/PERF.md)
    let on = matches!(
        std::env::var("ROCMFORGE_PDL").as_deref().map(str::trim),
        Ok("1") | Ok("on")
    );
    on && t.vendor == Vendor::Nvidia && !t.is_emulated() && t.sm_version() >= 90
}

/// A device context (the primary context on NVIDIA, the device on AMD). Cheap to clone.
#[derive(Clone)]
pub struct Device {
    inner: Arc<DeviceInner>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Device({}:{} {})",
            self.inner.target.vendor, self.inner.ordinal, self.inner.target.name
        )
    }
}

/// Which device `ROCMFORGE_DEVICE` asks for: `cuda`, `hip`, `cuda:1`, `hip:0`, or `auto` (default).
fn parse_device_env() -> Result<(Option<Vendor>, u32)> {
    let v = std::env::var("ROCMFORGE_DEVICE").unwrap_or_default();
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() || v == "auto" {
        return Ok((None, 0));
    }
    let (name, ord) = v.split_once(':').unwrap_or((v.as_str(), "0"));
    let vendor = match name {
        "cuda" | "nvidia" => Some(Vendor::Nvidia),
        "hip" | "amd" | "rocm" => Some(Vendor::Amd),
        "auto" => None,
        _ => {
            return Err(Error::NoDevice(format!(
                "ROCMFORGE_DEVICE={v}: expected cuda[:N], hip[:N] or auto"
            )))
        }
    };
    let ord = ord
        .parse()
        .map_err(|_| Error::NoDevice(format!("ROCMFORGE_DEVICE={v}: bad ordinal `{ord}`")))?;
    Ok((vendor, ord))
}

impl Device {
    /// Open the device `ROCMFORGE_DEVICE` names, or the first GPU of either vendor.
    pub fn open() -> Result<Device> {
        let (vendor, ordinal) = parse_device_env()?;
        match vendor {
            Some(v) => Self::open_vendor(v, ordinal),
            None => {
                let mut why = Vec::new();
                for v in [Vendor::Nvidia, Vendor::Amd] {
                    match Self::open_vendor(v, ordinal) {
                        Ok(d) => return Ok(d),
                        Err(Error::NoDevice(m)) => why.push(format!("{v}: {m}")),
                        Err(e) => why.push(format!("{v}: {e}")),
                    }
                }
                Err(Error::NoDevice(why.join("; ")))
            }
        }
    }

    /// Open device `ordinal` of one vendor.
    ///
    /// With `ROCMFORGE_EMULATE=gfxNNN` an NVIDIA device runs that AMD target emulated (a test and
    /// debug mode: see [`Target::emulate`]); asked of an AMD device it is an error.
    pub fn open_vendor(vendor: Vendor, ordinal: u32) -> Result<Device> {
        let (backend, target): (Box<dyn Backend>, Target) = match vendor {
            Vendor::Nvidia => {
                let (b, t) = cuda::CudaBackend::open(ordinal)?;
                (Box::new(b), target::emulate_env(t)?)
            }
            Vendor::Amd => {
                let (b, t) = hip::HipBackend::open(ordinal)?;
                (Box::new(b), target::emulate_env(t)?)
            }
        };
        let pdl = pdl_policy(&target) && backend.supports_pdl();
        Ok(Device {
            inner: Arc::new(DeviceInner {
                backend,
                target,
                ordinal,
                allocated: AtomicI64::new(0),
                pinned: AtomicI64::new(0),
                pdl,
            }),
        })
    }

    /// Whether kernels launch as programmatic dependent launches: with `ROCMFORGE_PDL=1|on`, on
    /// NVIDIA sm_90+ (not emulated AMD targets, whose prelude has no wait) with a driver that has
    /// `cuLaunchKernelEx`. Every kernel's first statement (RF_KERNEL_PROLOGUE in the preludes)
    /// waits for the previous grid, so results are the same; the next kernel's launch overlaps the
    /// tail of the previous one, which is most of the cost of a decode step's small kernels.
    pub fn pdl(&self) -> bool {
        self.inner.pdl
    }

    /// One device shared by the whole process (tests and the CLI use it).
    pub fn shared() -> Result<Device> {
        static SHARED: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                Device::open().map_err(|e| match e {
                    Error::NoDevice(m) => m,
                    e => e.to_string(),
                })
            })
            .clone()
            .map_err(Error::NoDevice)
    }

    pub fn target(&self) -> &Target {
        &self.inner.target
    }
    pub fn ordinal(&self) -> u32 {
        self.inner.ordinal
    }
    /// A process-unique identity of this device context (for per-device caches).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }
    /// Bytes of device memory currently allocated through this device: every [`Device::alloc`] and
    /// every [`Pool`]'s one base allocation, until the last buffer (or view) using it is dropped.
    /// Views and pool allocations do not add to it. Tests check it returns to its start value.
    pub fn allocated_bytes(&self) -> i64 {
        self.inner.allocated.load(Ordering::SeqCst)
    }
    /// Bytes of page-locked host memory currently held by [`PinnedBuffer`]s of this device.
    pub fn pinned_bytes(&self) -> i64 {
        self.inner.pinned.load(Ordering::SeqCst)
    }
    /// (free, total) device memory.
    pub fn mem_info(&self) -> Result<(u64, u64)> {
        self.backend().mem_info()
    }
    /// Wait for all work on the device. Refused while this thread captures a stream.
    pub fn synchronize(&self) -> Result<()> {
        graph::refuse_during_capture("Device::synchronize")?;
        self.backend().synchronize()
    }

    /// Allocate an uninitialised buffer of `len` elements. Refused while this thread captures a
    /// stream (allocate before, or carve from a [`Pool`], which is legal during a capture).
    pub fn alloc<T: bytemuck::Pod>(&self, len: usize) -> Result<Buffer<T>> {
        graph::refuse_during_capture("Device::alloc")?;
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::Buffer(format!("{len} elements overflow the address space")))?;
        let ptr = if bytes == 0 {
            0
        } else {
            self.backend().malloc(bytes)?
        };
        self.inner
            .allocated
            .fetch_add(bytes as i64, Ordering::SeqCst);
        Ok(Buffer {
            mem: Arc::new(Allocation {
                dev: self.clone(),
                ptr,
                bytes,
            }),
            ptr,
            len,
            _t: std::marker::PhantomData,
        })
    }

    /// One device allocation of `bytes` bytes, carved into buffers by [`Pool::alloc`].
    pub fn pool(&self, bytes: usize) -> Result<Pool> {
        Pool::new(self, bytes)
    }

    /// Page-locked host memory for `len` elements, zeroed (see [`PinnedBuffer`]).
    pub fn alloc_pinned<T: bytemuck::Pod>(&self, len: usize) -> Result<PinnedBuffer<T>> {
        PinnedBuffer::new(self, len)
    }

    /// Allocate and fill from host memory.
    pub fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> Result<Buffer<T>> {
        let mut b = self.alloc(data.len())?;
        b.copy_from_host(data)?;
        Ok(b)
    }

    /// Load a code object (AMD HSA code object, NVIDIA cubin).
    pub fn load_module(&self, image: &[u8]) -> Result<Module> {
        let raw = self.backend().module_load(image)?;
        Ok(Module {
            dev: self.clone(),
            raw,
        })
    }

    /// A new stream. On NVIDIA it does not synchronise with the default stream; on AMD it does
    /// (`hipStreamCreate`). Use [`Device::create_stream_nonblocking`] to get the same on both.
    pub fn create_stream(&self) -> Result<Stream> {
        Ok(Stream {
            dev: self.clone(),
            raw: self.backend().stream_create()?,
            capturing: AtomicBool::new(false),
        })
    }
    /// A new stream that never synchronises with the default (null) stream, on both vendors. This
    /// is the stream to capture graphs on: work another thread puts on the default stream can then
    /// neither join nor invalidate the capture.
    pub fn create_stream_nonblocking(&self) -> Result<Stream> {
        Ok(Stream {
            dev: self.clone(),
            raw: self.backend().stream_create_nonblocking()?,
            capturing: AtomicBool::new(false),
        })
    }
    /// The default (null) stream.
    pub fn default_stream(&self) -> Stream {
        Stream {
            dev: self.clone(),
            raw: 0,
            capturing: AtomicBool::new(false),
        }
    }
    pub fn create_event(&self) -> Result<Event> {
        Ok(Event {
            dev: self.clone(),
            raw: self.backend().event_create()?,
        })
    }
}

/// One device allocation; freed (and taken off [`Device::allocated_bytes`]) when the last
/// [`Buffer`] using it — the owner, a view or a [`Pool`] — is dropped.
pub(crate) struct Allocation {
    dev: Device,
    ptr: u64,
    bytes: usize,
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // A drop during a capture frees in relaxed mode (see `graph`).
            if let Err(e) = graph::relaxed(&self.dev, || self.dev.backend().free(self.ptr)) {
                tracing::error!("freeing device buffer failed: {e}");
            }
        }
        self.dev
            .inner
            .allocated
            .fetch_sub(self.bytes as i64, Ordering::SeqCst);
    }
}

/// A typed range of device memory. Either it owns its allocation ([`Device::alloc`]) or it is a
/// view — a [`Pool`] allocation, [`Buffer::view`], [`Buffer::view_as`] — that shares the parent's
/// allocation and keeps it alive. Every operation taking a `&Buffer<T>` works on both alike; the
/// memory is freed when the last buffer using the allocation is dropped.
pub struct Buffer<T: bytemuck::Pod> {
    mem: Arc<Allocation>,
    ptr: u64,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: bytemuck::Pod> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Buffer<{}>({} elements at {:#x})",
            std::any::type_name::<T>(),
            self.len,
            self.ptr
        )
    }
}

impl<T: bytemuck::Pod> Buffer<T> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }
    /// Device address, for kernel arguments.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }
    pub fn device(&self) -> &Device {
        &self.mem.dev
    }
    /// Copy `data` in; its length must equal the buffer's. Synchronous, on the default stream: the
    /// driver may return before the data has landed, and streams that do not synchronise with the
    /// default stream ([`Device::create_stream_nonblocking`]) are not ordered after it. Synchronize
    /// the device before work on such a stream reads the buffer, or use
    /// [`Buffer::copy_from_host_async`] on that stream. Refused while this thread captures a stream.
    pub fn copy_from_host(&mut self, data: &[T]) -> Result<()> {
        graph::refuse_during_capture("Buffer::copy_from_host")?;
        if data.len() != self.len {
            return Err(Error::Buffer(format!(
                "copy of {} elements into a buffer of {}",
                data.len(),
                self.len
            )));
        }
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: lengths checked above; `ptr` addresses `bytes()` bytes of our allocation.
        unsafe {
            self.device()
                .backend()
                .htod(self.ptr, data.as_ptr() as *const u8, self.bytes())
        }
    }
    /// Copy out into `out`; its length must equal the buffer's. Synchronous; refused while this
    /// thread captures a stream.
    pub fn copy_to_host(&self, out: &mut [T]) -> Result<()> {
        graph::refuse_during_capture("Buffer::copy_to_host")?;
        if out.len() != self.len {
            return Err(Error::Buffer(format!(
                "copy of a buffer of {} elements into {}",
                self.len,
                out.len()
            )));
        }
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: as above.
        unsafe {
            self.device()
                .backend()
                .dtoh(out.as_mut_ptr() as *mut u8, self.ptr, self.bytes())
        }
    }
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut v = vec![T::zeroed(); self.len];
        self.copy_to_host(&mut v)?;
        Ok(v)
    }
    /// Set every byte to `value` (used to poison outputs before a kernel runs). Synchronous, so not
    /// allowed inside a stream capture: use [`Buffer::fill_bytes_async`] there.
    pub fn fill_bytes(&mut self, value: u8) -> Result<()> {
        graph::refuse_during_capture("Buffer::fill_bytes")?;
        if self.len == 0 {
            return Ok(());
        }
        self.device()
            .backend()
            .memset8(self.ptr, value, self.bytes())
    }
    /// Device-to-device copy from another buffer of the same length.
    pub fn copy_from(&mut self, src: &Buffer<T>, stream: &Stream) -> Result<()> {
        if src.len != self.len {
            return Err(Error::Buffer(format!(
                "device copy of {} elements into {}",
                src.len, self.len
            )));
        }
        if self.len == 0 {
            return Ok(());
        }
        self.device()
            .backend()
            .dtod(self.ptr, src.ptr, self.bytes(), stream.raw)
    }
}

/// A stream; the default stream when created by [`Device::default_stream`].
pub struct Stream {
    dev: Device,
    raw: Raw,
    /// Set by [`Stream::begin_capture`], cleared by [`Stream::end_capture`].
    capturing: AtomicBool,
}

impl Stream {
    /// Wait for the work queued on this stream. Refused while this thread captures a stream.
    pub fn synchronize(&self) -> Result<()> {
        graph::refuse_during_capture("Stream::synchronize")?;
        self.dev.backend().stream_sync(self.raw)
    }
    pub fn raw(&self) -> Raw {
        self.raw
    }
    pub fn device(&self) -> &Device {
        &self.dev
    }
    /// Whether this is the default (null) stream.
    pub fn is_default(&self) -> bool {
        self.raw == 0
    }
    /// Make work queued on this stream from now on wait until `event`'s last record has completed
    /// (without blocking the host). Inside a capture this joins the event's stream into the graph.
    pub fn wait_event(&self, event: &Event) -> Result<()> {
        self.dev.backend().stream_wait_event(self.raw, event.raw)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.raw != 0 {
            graph::abandon_capture(self);
            if let Err(e) = self.dev.backend().stream_destroy(self.raw) {
                tracing::error!("destroying stream failed: {e}");
            }
        }
    }
}

/// A timing event.
pub struct Event {
    dev: Device,
    raw: Raw,
}

impl Event {
    pub fn record(&self, stream: &Stream) -> Result<()> {
        self.dev.backend().event_record(self.raw, stream.raw)
    }
    /// Wait until the last record has completed. Refused while this thread captures a stream.
    pub fn synchronize(&self) -> Result<()> {
        graph::refuse_during_capture("Event::synchronize")?;
        self.dev.backend().event_sync(self.raw)
    }
    /// Milliseconds from `start` to `self` (both recorded; waits for `self`).
    pub fn elapsed_ms_since(&self, start: &Event) -> Result<f32> {
        self.synchronize()?;
        self.dev.backend().event_elapsed_ms(start.raw, self.raw)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if let Err(e) = self.dev.backend().event_destroy(self.raw) {
            tracing::error!("destroying event failed: {e}");
        }
    }
}

/// A loaded code object, unloaded on drop (after its kernels, which hold it).
pub struct Module {
    dev: Device,
    raw: Raw,
}

impl Module {
    /// Look up a kernel by symbol name.
    pub fn kernel(self: &Arc<Self>, name: &str) -> Result<Kernel> {
        let raw = self.dev.backend().function(self.raw, name)?;
        let attrs = self.dev.backend().func_attrs(raw)?;
        Ok(Kernel {
            module: self.clone(),
            raw,
            name: name.into(),
            attrs,
            dyn_shared_optin: std::sync::atomic::AtomicU32::new(0),
            dyn_shared_lock: std::sync::Mutex::new(()),
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if let Err(e) = self.dev.backend().module_unload(self.raw) {
            tracing::error!("unloading module failed: {e}");
        }
    }
}

/// A kernel argument, passed by value.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
}

impl<T: bytemuck::Pod> From<&Buffer<T>> for Arg {
    fn from(b: &Buffer<T>) -> Arg {
        Arg::Ptr(b.ptr)
    }
}
impl<T: bytemuck::Pod> From<&mut Buffer<T>> for Arg {
    fn from(b: &mut Buffer<T>) -> Arg {
        Arg::Ptr(b.ptr)
    }
}
impl From<i32> for Arg {
    fn from(v: i32) -> Arg {
        Arg::I32(v)
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Arg {
        Arg::U32(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::I64(v)
    }
}
impl From<u64> for Arg {
    fn from(v: u64) -> Arg {
        Arg::U64(v)
    }
}
impl From<f32> for Arg {
    fn from(v: f32) -> Arg {
        Arg::F32(v)
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl LaunchConfig {
    /// One-dimensional launch covering `n` items with `block` threads each.
    pub fn linear(n: usize, block: u32) -> LaunchConfig {
        let g = n.div_ceil(block.max(1) as usize).max(1);
        LaunchConfig {
            grid: [g.min(u32::MAX as usize) as u32, 1, 1],
            block: [block, 1, 1],
            shared_bytes: 0,
        }
    }
}

/// A kernel of a loaded module. Keeps its module alive.
pub struct Kernel {
    module: Arc<Module>,
    raw: Raw,
    name: String,
    attrs: FuncAttrs,
    /// The largest dynamic shared memory this kernel has been opted in to (NVIDIA needs an attribute
    /// set above 48 KiB). Remembered so the attribute is set once, by the first such launch, and
    /// not again on every launch (nor inside a graph capture after a warm-up run).
    dyn_shared_optin: std::sync::atomic::AtomicU32,
    dyn_shared_lock: std::sync::Mutex<()>,
}

impl Kernel {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn attrs(&self) -> &FuncAttrs {
        &self.attrs
    }
    pub fn device(&self) -> &Device {
        &self.module.dev
    }

    fn check(&self, cfg: &LaunchConfig) -> Result<()> {
        let t = self.module.dev.target();
        let bad = |reason: String| {
            Err(Error::Launch {
                kernel: self.name.clone(),
                reason,
            })
        };
        let threads = cfg.block.iter().map(|&b| b as u64).product::<u64>();
        if cfg.block.contains(&0) || cfg.grid.contains(&0) {
            return bad(format!(
                "empty grid {:?} or block {:?}",
                cfg.grid, cfg.block
            ));
        }
        if let Some(why) = t.emulation_refuses_block(cfg.block) {
            return bad(why);
        }
        if threads > t.max_threads_per_block as u64
            || threads > self.attrs.max_threads.max(1) as u64
        {
            return bad(format!(
                "block {:?} has {threads} threads; device allows {}, this kernel {}",
                cfg.block, t.max_threads_per_block, self.attrs.max_threads
            ));
        }
        for i in 0..3 {
            if cfg.block[i] > t.max_block[i] || cfg.grid[i] > t.max_grid[i] {
                return bad(format!(
                    "grid {:?} / block {:?} exceed limits {:?} / {:?}",
                    cfg.grid, cfg.block, t.max_grid, t.max_block
                ));
            }
        }
        let shared = cfg.shared_bytes as u64 + self.attrs.shared_bytes as u64;
        if let Some(why) = t.emulation_refuses_shared(shared) {
            return bad(why);
        }
        if shared > t.shared_per_block_optin as u64 && !t.is_emulated() {
            return bad(format!(
                "{shared} bytes of shared memory; the device allows {}",
                t.shared_per_block_optin
            ));
        }
        Ok(())
    }

    /// Launch on `stream` with `args` in the kernel's parameter order. Grid, block and shared memory
    /// are checked against the device and kernel limits first (host-side only: no device query).
    ///
    /// Legal inside a stream capture ([`Stream::begin_capture`]): the launch is recorded with the
    /// argument values of this call, not run. The one driver call besides the launch, opting the
    /// kernel in to more than the default dynamic shared memory, is made once per kernel and size
    /// (it is legal during capture too); run a captured step once before capturing it anyway, so
    /// that every kernel is compiled and loaded outside the capture.
    pub fn launch(&self, stream: &Stream, cfg: LaunchConfig, args: &[Arg]) -> Result<()> {
        self.check(&cfg)?;
        let dev = &self.module.dev;
        let default_shared = match &dev.target().emulation {
            Some(e) => e.host_shared_per_block,
            None => dev.target().shared_per_block,
        };
        if cfg.shared_bytes + self.attrs.shared_bytes > default_shared
            && cfg.shared_bytes > self.dyn_shared_optin.load(Ordering::Acquire)
        {
            // Serialised so that two threads raising the limit cannot leave it at the smaller value.
            let _g = self
                .dyn_shared_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if cfg.shared_bytes > self.dyn_shared_optin.load(Ordering::Acquire) {
                dev.backend()
                    .set_dynamic_shared(self.raw, cfg.shared_bytes)?;
                self.dyn_shared_optin
                    .store(cfg.shared_bytes, Ordering::Release);
            }
        }
        let mut vals: Vec<[u8; 8]> = args
            .iter()
            .map(|a| {
                let mut v = [0u8; 8];
                match *a {
                    Arg::Ptr(p) | Arg::U64(p) => v = p.to_ne_bytes(),
                    Arg::I64(x) => v = x.to_ne_bytes(),
                    Arg::I32(x) => v[..4].copy_from_slice(&x.to_ne_bytes()),
                    Arg::U32(x) => v[..4].copy_from_slice(&x.to_ne_bytes()),
                    Arg::F32(x) => v[..4].copy_from_slice(&x.to_ne_bytes()),
                }
                v
            })
            .collect();
        let mut ptrs: Vec<*mut c_void> = vals
            .iter_mut()
            .map(|v| v.as_mut_ptr() as *mut c_void)
            .collect();
        // SAFETY: each pointer addresses an 8-byte slot holding the argument in native byte order,
        // which is how both vendors read 4- and 8-byte kernel parameters.
        unsafe {
            dev.backend().launch(
                self.raw,
                cfg.grid,
                cfg.block,
                cfg.shared_bytes,
                stream.raw,
                &mut ptrs,
                dev.pdl(),
            )
        }
    }
}

/// A run-time compiler (hipRTC or NVRTC), used without a device.
pub trait RtcCompiler: Send + Sync {
    fn vendor(&self) -> Vendor;
    /// Name, version and library path, e.g. `NVRTC 12.9 (/usr/local/cuda/lib64/libnvrtc.so.12)`.
    fn describe(&self) -> String;
    /// Version string that goes into cache keys.
    fn version(&self) -> String;
    /// Refuse targets the loaded compiler does not know, before compiling.
    fn check_target(&self, target: &Target) -> Result<()>;
    /// Targets this compiler can build for, where it can tell.
    fn supported_targets(&self) -> Vec<String>;
    /// Options always passed for `target` (architecture, include paths, optimisation).
    fn base_options(&self, target: &Target) -> Vec<String>;
    /// Compile `source`; `Err(log)` on a compile error, `Ok(code object)` otherwise. Errors of the API
    /// itself (not of the source) come back as `Err` with the vendor message.
    fn compile(
        &self,
        source: &str,
        name: &str,
        options: &[String],
    ) -> Result<std::result::Result<Vec<u8>, String>>;
}

/// The run-time compiler for `vendor`, loaded once per process.
pub fn compiler(vendor: Vendor) -> Result<Arc<dyn RtcCompiler>> {
    match vendor {
        Vendor::Nvidia => Ok(cuda::nvrtc::Nvrtc::get()? as Arc<dyn RtcCompiler>),
        Vendor::Amd => Ok(hip::hiprtc::Hiprtc::get()? as Arc<dyn RtcCompiler>),
    }
}
