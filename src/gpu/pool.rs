//! Memory beyond one buffer per allocation: a device [`Pool`] carved by a bump allocator, views of
//! any buffer ([`Buffer::view`], [`Buffer::view_as`]), page-locked host memory ([`PinnedBuffer`])
//! and the asynchronous copies on a stream that use it.
//!
//! A view is an ordinary [`Buffer`]: it shares its parent's device allocation and keeps it alive, so
//! every operation that takes a `&Buffer<T>` works on views unchanged, and the allocation is freed
//! when the last buffer using it is dropped. [`Device::allocated_bytes`] counts allocations, never
//! views: a pool adds its capacity once, whatever is carved out of it.
//!
//! The arithmetic (the bump allocator [`Bump`], view bounds [`sub_range`] and reinterpretation
//! checks [`view_as_range`]) is plain host code, usable without a device — e.g. to size a pool by
//! replaying a plan's allocations on `Bump::new(usize::MAX)` before allocating it.

use super::{Allocation, Buffer, Device, Event, Raw, Stream};
use crate::error::{Error, Result};
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Alignment of every pool allocation, in bytes: enough for any vector load (16 bytes), any element
/// type, and the vendors' own allocation granularity (both guarantee at least 256 bytes).
pub const POOL_ALIGN: usize = 256;

/// The bump-allocator arithmetic of a [`Pool`], without memory: offsets into `capacity` bytes,
/// each allocation starting at a multiple of [`POOL_ALIGN`] (or of the element's alignment, if that
/// is larger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    capacity: usize,
    used: usize,
}

fn align_up(x: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

impl Bump {
    pub fn new(capacity: usize) -> Bump {
        Bump { capacity, used: 0 }
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Bytes up to the end of the last allocation (alignment gaps included).
    pub fn used(&self) -> usize {
        self.used
    }
    /// Bytes the next allocation can have.
    pub fn free(&self) -> usize {
        align_up(self.used, POOL_ALIGN)
            .map(|s| self.capacity.saturating_sub(s))
            .unwrap_or(0)
    }
    /// Forget every allocation.
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// Reserve `bytes` bytes aligned to `align` (a power of two; [`POOL_ALIGN`] at least is used);
    /// the offset of their start. A zero-byte reservation takes no space. When the bytes do not fit,
    /// an error naming the bytes requested and the bytes free; nothing is reserved then.
    pub fn alloc(&mut self, bytes: usize, align: usize) -> Result<usize> {
        if !align.is_power_of_two() {
            return Err(Error::Buffer(format!(
                "pool alignment {align} is not a power of two"
            )));
        }
        let align = align.max(POOL_ALIGN);
        let full = |start: Option<usize>| {
            let free = start.map(|s| self.capacity.saturating_sub(s)).unwrap_or(0);
            Error::Buffer(format!(
                "pool exhausted: {bytes} bytes requested, {free} bytes free \
                 ({} of {} bytes used)",
                self.used, self.capacity
            ))
        };
        let start = align_up(self.used, align);
        let Some(s) = start else {
            return Err(full(start));
        };
        if bytes == 0 {
            return Ok(s.min(self.capacity));
        }
        match s.checked_add(bytes) {
            Some(end) if end <= self.capacity => {
                self.used = end;
                Ok(s)
            }
            _ => Err(full(start)),
        }
    }

    /// Reserve room for `len` elements of `T`; the byte offset of the first.
    pub fn alloc_for<T>(&mut self, len: usize) -> Result<usize> {
        let bytes = elem_bytes::<T>(len)?;
        self.alloc(bytes, std::mem::align_of::<T>())
            .map_err(|e| match e {
                Error::Buffer(m) => {
                    Error::Buffer(format!("{m}, for {len} × {}", std::any::type_name::<T>()))
                }
                e => e,
            })
    }
}

fn elem_bytes<T>(len: usize) -> Result<usize> {
    len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
        Error::Buffer(format!(
            "{len} elements of {} overflow the address space",
            std::any::type_name::<T>()
        ))
    })
}

/// The elements `offset..offset + len` of a buffer of `parent_len` elements, or an error naming
/// both when they do not lie inside it.
pub fn sub_range(parent_len: usize, offset: usize, len: usize) -> Result<Range<usize>> {
    match offset.checked_add(len) {
        Some(end) if end <= parent_len => Ok(offset..end),
        _ => Err(Error::Buffer(format!(
            "view of {len} elements at offset {offset} is outside a buffer of {parent_len}"
        ))),
    }
}

/// The bytes that `len` elements of `U` starting `byte_offset` bytes into a buffer of
/// `parent_bytes` bytes at device address `addr` occupy, or an error when they do not lie inside it
/// or the start address is not aligned for `U`.
pub fn view_as_range<U>(
    parent_bytes: usize,
    addr: u64,
    byte_offset: usize,
    len: usize,
) -> Result<Range<usize>> {
    let name = std::any::type_name::<U>();
    let bytes = elem_bytes::<U>(len)?;
    let r = match byte_offset.checked_add(bytes) {
        Some(end) if end <= parent_bytes => byte_offset..end,
        _ => {
            return Err(Error::Buffer(format!(
                "view of {len} × {name} ({bytes} bytes) at byte {byte_offset} is outside a \
                 buffer of {parent_bytes} bytes"
            )))
        }
    };
    let align = std::mem::align_of::<U>() as u64;
    let start = addr.wrapping_add(byte_offset as u64);
    if bytes > 0 && start % align != 0 {
        return Err(Error::Buffer(format!(
            "view of {name} at byte {byte_offset} (address {start:#x}) is not {align}-byte aligned"
        )));
    }
    Ok(r)
}

/// One device allocation carved into buffers by a bump allocator: for memory that lives as long as
/// the pool (weights, KV pages, a step's scratch), with no allocation inside a step.
///
/// [`Pool::alloc`] hands out views ([`Buffer`]s that do not free on drop), each aligned to
/// [`POOL_ALIGN`] bytes. Space is reclaimed only all at once by [`Pool::reset`], which refuses while
/// any view is alive. The device memory is freed when the pool and every view of it are dropped.
pub struct Pool {
    base: Arc<Allocation>,
    bump: Mutex<Bump>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pool({} of {} bytes used, {} live views)",
            self.used(),
            self.capacity(),
            self.live_views()
        )
    }
}

impl Pool {
    /// Allocate `bytes` bytes of device memory as one pool.
    pub fn new(dev: &Device, bytes: usize) -> Result<Pool> {
        let b = dev.alloc::<u8>(bytes)?;
        if b.ptr % POOL_ALIGN as u64 != 0 {
            return Err(Error::Buffer(format!(
                "device allocation at {:#x} is not {POOL_ALIGN}-byte aligned",
                b.ptr
            )));
        }
        Ok(Pool {
            base: b.mem,
            bump: Mutex::new(Bump::new(bytes)),
        })
    }

    fn bump(&self) -> std::sync::MutexGuard<'_, Bump> {
        // A poisoned lock still holds a consistent Bump: its fields are written only on success.
        self.bump.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `len` uninitialised elements of `T`, 256-byte aligned. An error naming the bytes requested
    /// and the bytes free when the pool is full.
    pub fn alloc<T: bytemuck::Pod>(&self, len: usize) -> Result<Buffer<T>> {
        let off = self.bump().alloc_for::<T>(len)?;
        Ok(Buffer {
            mem: self.base.clone(),
            ptr: self.base.ptr + off as u64,
            len,
            _t: std::marker::PhantomData,
        })
    }

    /// Allocate and fill from host memory (synchronous).
    pub fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> Result<Buffer<T>> {
        let mut b = self.alloc(data.len())?;
        b.copy_from_host(data)?;
        Ok(b)
    }

    /// Bytes handed out so far (alignment gaps included).
    pub fn used(&self) -> usize {
        self.bump().used()
    }
    pub fn capacity(&self) -> usize {
        self.base.bytes
    }
    /// Bytes the next allocation can have.
    pub fn free(&self) -> usize {
        self.bump().free()
    }
    pub fn device(&self) -> &Device {
        &self.base.dev
    }
    /// Buffers (views, and views of views) still using this pool's memory.
    pub fn live_views(&self) -> usize {
        Arc::strong_count(&self.base).saturating_sub(1)
    }
    /// Make the whole pool free again. Refused while any view of it is alive, since a later
    /// allocation would hand out the same memory twice.
    pub fn reset(&self) -> Result<()> {
        let mut b = self.bump();
        let live = self.live_views();
        if live > 0 {
            return Err(Error::Buffer(format!(
                "pool reset refused: {live} views of it are still alive"
            )));
        }
        b.reset();
        Ok(())
    }
}

fn same_device(a: &Device, b: &Device, what: &str) -> Result<()> {
    if a.id() == b.id() {
        Ok(())
    } else {
        Err(Error::Buffer(format!(
            "{what}: buffer and stream belong to different devices ({a:?}, {b:?})"
        )))
    }
}

fn check_len(what: &str, want: usize, got: usize) -> Result<()> {
    if want == got {
        Ok(())
    } else {
        Err(Error::Buffer(format!(
            "{what}: {got} elements given for a range of {want}"
        )))
    }
}

fn in_range(what: &str, r: &Range<usize>, len: usize) -> Result<()> {
    if r.start <= r.end && r.end <= len {
        Ok(())
    } else {
        Err(Error::Buffer(format!(
            "{what}: range {r:?} is outside {len} elements"
        )))
    }
}

impl<T: bytemuck::Pod> Buffer<T> {
    /// A view of elements `offset..offset + len`: a buffer sharing this one's memory (and keeping
    /// it alive) that is never freed by itself. Bounds-checked.
    pub fn view(&self, offset: usize, len: usize) -> Result<Buffer<T>> {
        let r = sub_range(self.len, offset, len)?;
        Ok(Buffer {
            mem: self.mem.clone(),
            ptr: self.ptr + (r.start * std::mem::size_of::<T>()) as u64,
            len,
            _t: std::marker::PhantomData,
        })
    }

    /// A view of `len` elements of another type `U` starting `byte_offset` bytes into this buffer
    /// (e.g. a typed tensor inside a byte arena). Bounds- and alignment-checked.
    pub fn view_as<U: bytemuck::Pod>(&self, byte_offset: usize, len: usize) -> Result<Buffer<U>> {
        let r = view_as_range::<U>(self.bytes(), self.ptr, byte_offset, len)?;
        Ok(Buffer {
            mem: self.mem.clone(),
            ptr: self.ptr + r.start as u64,
            len,
            _t: std::marker::PhantomData,
        })
    }

    /// Whether another buffer (this one's views included) shares this buffer's allocation.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.mem) > 1
    }

    /// Queue a copy of `src` (its length must equal the buffer's) into this buffer on `stream`.
    ///
    /// Truly asynchronous only when `src` is page-locked; from ordinary (pageable) memory the
    /// driver first stages `src` and may return only after that, and `src` may then be reused as
    /// soon as this returns. From page-locked memory the copy reads `src` when the stream reaches
    /// it: prefer [`Buffer::copy_from_pinned`], which makes [`PinnedBuffer`]'s accessors wait for it.
    /// Inside a capture the copy is recorded and re-reads `src` at every replay: use pinned memory.
    pub fn copy_from_host_async(&mut self, src: &[T], stream: &Stream) -> Result<()> {
        check_len("copy_from_host_async", self.len, src.len())?;
        same_device(self.device(), stream.device(), "copy_from_host_async")?;
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: lengths checked; `ptr` addresses `bytes()` bytes of our allocation. The source is
        // read by the driver (staged for pageable memory) as documented above.
        unsafe {
            self.device().backend().htod_async(
                self.ptr,
                src.as_ptr() as *const u8,
                self.bytes(),
                stream.raw,
            )
        }
    }

    /// Queue a copy of `src[src_range]` into this buffer at element `dst_offset`, on `stream`.
    /// Outside a capture `src`'s accessors and its drop wait for the copy; inside a capture the copy
    /// becomes part of the graph and reads `src` at every replay (keep it alive as long as the graph).
    pub fn copy_from_pinned(
        &mut self,
        dst_offset: usize,
        src: &PinnedBuffer<T>,
        src_range: Range<usize>,
        stream: &Stream,
    ) -> Result<()> {
        const W: &str = "copy_from_pinned";
        in_range(W, &src_range, src.len)?;
        let n = src_range.len();
        let dst = sub_range(self.len, dst_offset, n)?;
        same_device(self.device(), stream.device(), W)?;
        if n == 0 {
            return Ok(());
        }
        let size = std::mem::size_of::<T>();
        let dev = self.device().backend();
        let dst_ptr = self.ptr + (dst.start * size) as u64;
        src.tracked(stream, || {
            // SAFETY: both ranges checked; the host range lies in `src`'s allocation, which
            // outlives the copy: its drop waits for the tracked event (outside a capture).
            unsafe {
                dev.htod_async(
                    dst_ptr,
                    (src.ptr.as_ptr() as *const T).add(src_range.start) as *const u8,
                    n * size,
                    stream.raw,
                )
            }
        })
    }

    /// Queue a copy of the whole buffer into `dst` (of the same length) on `stream`. `dst`'s
    /// accessors wait for it. Refused inside a capture: copy out after [`super::GraphExec::launch`].
    pub fn copy_to_host_async(&self, dst: &mut PinnedBuffer<T>, stream: &Stream) -> Result<()> {
        check_len("copy_to_host_async", dst.len, self.len)?;
        self.copy_to_pinned(0..self.len, dst, 0, stream)
    }

    /// Queue a copy of elements `src_range` of this buffer into `dst` at `dst_offset`, on `stream`.
    /// `dst`'s accessors (and its drop) wait for it. Refused inside a capture, where nothing could
    /// tell `dst` when a replay has written it: copy out after [`super::GraphExec::launch`] instead.
    pub fn copy_to_pinned(
        &self,
        src_range: Range<usize>,
        dst: &mut PinnedBuffer<T>,
        dst_offset: usize,
        stream: &Stream,
    ) -> Result<()> {
        const W: &str = "copy_to_pinned";
        in_range(W, &src_range, self.len)?;
        let n = src_range.len();
        let d = sub_range(dst.len, dst_offset, n)?;
        same_device(self.device(), stream.device(), W)?;
        if stream.is_capturing()? {
            return Err(Error::Buffer(format!(
                "{W}: device-to-host copies are not captured; queue them after launching the graph"
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let size = std::mem::size_of::<T>();
        let dev = self.device().backend();
        let src_ptr = self.ptr + (src_range.start * size) as u64;
        let dst_ptr = dst.ptr.as_ptr();
        dst.tracked(stream, || {
            // SAFETY: both ranges checked; `dst` is borrowed mutably here and every later access
            // to it (accessors, drop) first waits for the event recorded just after this copy.
            unsafe {
                dev.dtoh_async(
                    dst_ptr.add(d.start) as *mut u8,
                    src_ptr,
                    n * size,
                    stream.raw,
                )
            }
        })
    }

    /// Queue a device-to-device copy of `src[src_range]` into this buffer at `dst_offset`.
    pub fn copy_range_from(
        &mut self,
        dst_offset: usize,
        src: &Buffer<T>,
        src_range: Range<usize>,
        stream: &Stream,
    ) -> Result<()> {
        const W: &str = "copy_range_from";
        in_range(W, &src_range, src.len)?;
        let n = src_range.len();
        let d = sub_range(self.len, dst_offset, n)?;
        same_device(self.device(), stream.device(), W)?;
        same_device(self.device(), src.device(), W)?;
        if n == 0 {
            return Ok(());
        }
        let size = std::mem::size_of::<T>();
        self.device().backend().dtod(
            self.ptr + (d.start * size) as u64,
            src.ptr + (src_range.start * size) as u64,
            n * size,
            stream.raw,
        )
    }

    /// Queue setting every byte to `value` on `stream` (legal inside a capture).
    pub fn fill_bytes_async(&mut self, value: u8, stream: &Stream) -> Result<()> {
        same_device(self.device(), stream.device(), "fill_bytes_async")?;
        if self.len == 0 {
            return Ok(());
        }
        self.device()
            .backend()
            .memset8_async(self.ptr, value, self.bytes(), stream.raw)
    }
}

/// The last asynchronous copies that use a pinned buffer's memory, as one event.
#[derive(Default)]
struct Pending {
    event: Option<Event>,
    stream: Raw,
    armed: bool,
}

/// Page-locked (pinned) host memory of `len` elements of `T`, zeroed at allocation and freed on
/// drop: the host side of truly asynchronous copies ([`Buffer::copy_from_pinned`],
/// [`Buffer::copy_to_pinned`]).
///
/// Copies queued outside a capture are tracked: [`PinnedBuffer::as_slice`],
/// [`PinnedBuffer::as_mut_slice`] and the drop first wait for the last of them, so the host never
/// reads memory a copy is still writing, nor frees memory a copy still uses. Copies recorded inside
/// a capture read the memory at every replay and are not tracked: keep the buffer alive as long as
/// the graph, and write it only while no replay is running.
pub struct PinnedBuffer<T: bytemuck::Pod> {
    dev: Device,
    ptr: NonNull<T>,
    len: usize,
    pending: Mutex<Pending>,
}

// SAFETY: page-locked memory is ordinary host memory owned by this value; shared access goes
// through `&[T]` (T: Pod has no interior mutability) and the `pending` mutex.
unsafe impl<T: bytemuck::Pod + Send> Send for PinnedBuffer<T> {}
unsafe impl<T: bytemuck::Pod + Sync> Sync for PinnedBuffer<T> {}

impl<T: bytemuck::Pod> std::fmt::Debug for PinnedBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PinnedBuffer<{}>({} elements)",
            std::any::type_name::<T>(),
            self.len
        )
    }
}

impl<T: bytemuck::Pod> PinnedBuffer<T> {
    /// `len` zeroed elements of page-locked memory (cuMemHostAlloc / hipHostMalloc).
    pub fn new(dev: &Device, len: usize) -> Result<PinnedBuffer<T>> {
        let bytes = elem_bytes::<T>(len)?;
        let ptr = if bytes == 0 {
            NonNull::dangling()
        } else {
            let p = dev.backend().host_alloc(bytes)?;
            if (p as usize) % std::mem::align_of::<T>() != 0 {
                let _ = dev.backend().host_free(p);
                return Err(Error::Buffer(format!(
                    "page-locked allocation at {p:p} is not aligned for {}",
                    std::any::type_name::<T>()
                )));
            }
            // SAFETY: `p` is a fresh host allocation of `bytes` bytes.
            unsafe { std::ptr::write_bytes(p, 0, bytes) };
            NonNull::new(p as *mut T).ok_or_else(|| {
                Error::Buffer("page-locked allocation returned a null pointer".into())
            })?
        };
        dev.inner.pinned.fetch_add(bytes as i64, Ordering::SeqCst);
        Ok(PinnedBuffer {
            dev: dev.clone(),
            ptr,
            len,
            pending: Mutex::new(Pending::default()),
        })
    }

    /// Page-locked copy of `data`.
    pub fn from_slice(dev: &Device, data: &[T]) -> Result<PinnedBuffer<T>> {
        let mut p = Self::new(dev, data.len())?;
        p.as_mut_slice().copy_from_slice(data);
        Ok(p)
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }
    pub fn device(&self) -> &Device {
        &self.dev
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the tracked copies that use this memory.
    pub fn synchronize(&self) -> Result<()> {
        let mut p = self.pending();
        if p.armed {
            if let Some(e) = &p.event {
                e.synchronize()?;
            }
            p.armed = false;
        }
        Ok(())
    }

    fn wait_logged(&self) {
        if let Err(e) = self.synchronize() {
            tracing::error!("waiting for copies of a pinned buffer failed: {e}");
        }
    }

    /// The elements, after the tracked copies that write them have completed.
    pub fn as_slice(&self) -> &[T] {
        self.wait_logged();
        // SAFETY: `ptr` addresses `len` initialised elements (zeroed at allocation) that no tracked
        // copy is writing any more.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, writable, after the tracked copies that use them have completed.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.wait_logged();
        // SAFETY: as above, and `&mut self` excludes every other access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Queue a copy that uses this memory on `stream` (by `queue`) and track it: outside a capture,
    /// order it after tracked copies on other streams and record the event the accessors wait for.
    /// Inside a capture the copy is only queued. One lock is held throughout, so concurrent copies
    /// from the same buffer on different streams are all covered by the one event.
    fn tracked(&self, stream: &Stream, queue: impl FnOnce() -> Result<()>) -> Result<()> {
        if stream.is_capturing()? {
            return queue();
        }
        let mut p = self.pending();
        if p.armed && p.stream != stream.raw {
            if let Some(e) = &p.event {
                stream.wait_event(e)?;
            }
        }
        queue()?;
        if p.event.is_none() {
            p.event = Some(self.dev.create_event()?);
        }
        if let Some(e) = &p.event {
            e.record(stream)?;
        }
        p.stream = stream.raw;
        p.armed = true;
        Ok(())
    }
}

impl<T: bytemuck::Pod> Drop for PinnedBuffer<T> {
    fn drop(&mut self) {
        let bytes = self.bytes();
        if bytes == 0 {
            return;
        }
        self.wait_logged();
        if let Err(e) = self.dev.backend().host_free(self.ptr.as_ptr() as *mut u8) {
            tracing::error!("freeing page-locked memory failed: {e}");
        }
        self.dev
            .inner
            .pinned
            .fetch_sub(bytes as i64, Ordering::SeqCst);
    }
}
