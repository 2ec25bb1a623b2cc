//! Stream capture into graphs, and graph replay: record the launches and copies of one step once,
//! then replay them with one call (cuGraphLaunch / hipGraphLaunch) instead of one launch each.
//!
//! ```text
//! step(&stream)?;                       // warm-up: compiles and loads every kernel, sets attributes
//! stream.begin_capture()?;              // nothing queued from here on runs...
//! step(&stream)?;                       // ...it is recorded
//! let exec = stream.end_capture()?.instantiate()?;
//! loop {
//!     input.copy_from_pinned(0, &host_input, 0..n, &stream)?;   // new data, before the replay
//!     exec.launch(&stream)?;
//!     output.copy_to_host_async(&mut host_output, &stream)?;
//!     use_result(host_output.as_slice());                      // waits for the copy
//! }
//! ```
//!
//! What a graph remembers:
//! - **Kernel arguments are baked in at capture.** Every pointer and scalar is the value it had when
//!   the launch was recorded. Data that changes between replays must live in device buffers that are
//!   updated (e.g. by an async copy on the same stream) before each replay; shapes that change need
//!   a new capture (there is no in-place update: re-capture is the way to change a graph).
//! - **Nothing is kept alive by a graph.** The buffers, pinned host memory and kernels (modules) it
//!   was captured with must outlive every replay: allocate them from a [`super::Pool`] that lives as
//!   long as the [`GraphExec`]. A buffer dropped while a graph using it is still replayed is a
//!   use-after-free on the device.
//! - **Only stream-ordered work is captured:** [`super::Kernel::launch`], the `*_async` copies and
//!   fills, [`super::Buffer::copy_from`], [`super::Buffer::copy_range_from`], events and
//!   [`Stream::wait_event`]. Device-to-host copies into a [`super::PinnedBuffer`] are refused during
//!   capture (nothing could tell the host when a replay has written them): queue them after
//!   [`GraphExec::launch`].
//! - **Compile before capturing.** Run the step once before `begin_capture` so that every kernel is
//!   compiled and loaded and every dynamic-shared-memory attribute set; loading a module during a
//!   capture is untested.
//!
//! Synchronous calls are refused on a capturing thread, by this crate, before the driver sees them,
//! with an error naming the call (the capture stays valid): `Device::alloc`/`upload`,
//! `Buffer::copy_from_host`, `copy_to_host`/`to_vec`, `fill_bytes`, `PinnedBuffer::new`, and
//! `Device::synchronize`/`Stream::synchronize`/`Event::synchronize`. Measured on an H200 (CUDA 13 driver, thread-local
//! mode): the driver itself refuses allocations and synchronizes, invalidating the capture, but lets
//! synchronous copies and memsets on the default stream through — they would run once, at capture,
//! and never at replay: a wrong answer rather than an error. [`super::Pool::alloc`] is host
//! arithmetic and stays legal. Frees (a buffer dropped during a capture) and the waits of a
//! [`super::PinnedBuffer`] switch the thread to relaxed mode for their one call
//! (`cuThreadExchangeStreamCaptureMode`), so they neither fail nor invalidate the capture.
//!
//! Capture uses the **thread-local** mode (`CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`,
//! `hipStreamCaptureModeThreadLocal`). In the global mode an unrelated thread (a kernel compile
//! loading its module, the server allocating) would fail, and invalidate the capture, by allocating
//! at the wrong moment; the relaxed mode would drop the driver's checks on the capturing thread too.
//! Thread-local keeps the checks on the one thread that records the step, and leaves the others
//! free. A capture must end on the thread that began it.
//!
//! The default (null) stream cannot be captured; capture on a stream from
//! [`super::Device::create_stream_nonblocking`].

use super::{Device, Raw, Stream};
use crate::error::{Error, Result};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

/// Vendor capture modes (the same numbers in cuda.h and hip_runtime_api.h).
pub(crate) const CAPTURE_MODE_THREAD_LOCAL: i32 = 1;
pub(crate) const CAPTURE_MODE_RELAXED: i32 = 2;

thread_local! {
    /// Captures begun on this thread and not yet ended (thread-local mode ties a capture to the
    /// thread that began it: it must also end there).
    static CAPTURES: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is capturing a stream.
pub fn thread_is_capturing() -> bool {
    CAPTURES.with(|c| c.get()) > 0
}

/// Refuse a synchronous call on a capturing thread: it would run once now, not at each replay.
pub(crate) fn refuse_during_capture(call: &'static str) -> Result<()> {
    if thread_is_capturing() {
        return Err(Error::op(
            call,
            "synchronous call while this thread captures a stream: it would run once now and never at replay; make it before begin_capture, or use the stream-ordered (async) form on the capturing stream",
        ));
    }
    Ok(())
}

/// Run `f` (a free or a wait) with this thread's capture mode relaxed when it is capturing, so the
/// call neither fails nor invalidates the capture.
pub(crate) fn relaxed<R>(dev: &Device, f: impl FnOnce() -> R) -> R {
    if !thread_is_capturing() {
        return f();
    }
    match dev.backend().exchange_capture_mode(CAPTURE_MODE_RELAXED) {
        Ok(previous) => {
            let r = f();
            if let Err(e) = dev.backend().exchange_capture_mode(previous) {
                tracing::error!("restoring the thread's capture mode failed: {e}");
            }
            r
        }
        Err(e) => {
            tracing::error!("relaxing the thread's capture mode failed: {e}");
            f()
        }
    }
}

fn count_capture(up: bool) {
    CAPTURES.with(|c| {
        c.set(if up {
            c.get().saturating_add(1)
        } else {
            c.get().saturating_sub(1)
        })
    });
}

/// Graph objects must not be used from two threads at once (both vendors say so): they are `Send`
/// but not `Sync`.
type NotSync = PhantomData<std::cell::Cell<()>>;

/// A captured graph: the recorded work of one capture. Instantiate it to replay it.
pub struct Graph {
    dev: Device,
    raw: Raw,
    _not_sync: NotSync,
}

/// An instantiated graph, replayed by [`GraphExec::launch`]. Independent of the [`Graph`] it was
/// instantiated from, which may be dropped.
pub struct GraphExec {
    dev: Device,
    raw: Raw,
    _not_sync: NotSync,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({:#x} on {:?})", self.raw, self.dev)
    }
}

impl std::fmt::Debug for GraphExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphExec({:#x} on {:?})", self.raw, self.dev)
    }
}

fn refuse_default(s: &Stream, what: &'static str) -> Result<()> {
    if s.is_default() {
        return Err(Error::op(
            what,
            "the default (null) stream cannot be captured; capture on a stream from \
             Device::create_stream_nonblocking",
        ));
    }
    Ok(())
}

impl Stream {
    /// Start recording: from now until [`Stream::end_capture`], work queued on this stream is
    /// recorded into a graph instead of being run. Thread-local capture mode (see [`self`]).
    /// Refused on the default stream.
    pub fn begin_capture(&self) -> Result<()> {
        refuse_default(self, "Stream::begin_capture")?;
        self.dev.backend().stream_begin_capture(self.raw)?;
        if !self.capturing.swap(true, Ordering::AcqRel) {
            count_capture(true);
        }
        Ok(())
    }

    /// Stop recording and return the graph. An error when the stream was not capturing, or when the
    /// capture was invalidated by an illegal call during it (the error names the driver's reason);
    /// in both cases the stream is no longer capturing afterwards.
    pub fn end_capture(&self) -> Result<Graph> {
        refuse_default(self, "Stream::end_capture")?;
        if self.capturing.swap(false, Ordering::AcqRel) {
            count_capture(false);
        }
        let raw = self.dev.backend().stream_end_capture(self.raw)?;
        if raw == 0 {
            return Err(Error::op(
                "Stream::end_capture",
                "the driver returned no graph (was the stream capturing?)",
            ));
        }
        Ok(Graph {
            dev: self.dev.clone(),
            raw,
            _not_sync: PhantomData,
        })
    }

    /// Whether this stream is capturing now (false for the default stream).
    pub fn is_capturing(&self) -> Result<bool> {
        if self.is_default() {
            return Ok(false);
        }
        self.dev.backend().stream_is_capturing(self.raw)
    }

    /// Capture what `record` queues on this stream into a graph. When `record` fails, the capture
    /// is ended and discarded and `record`'s error returned; the stream is usable again.
    pub fn capture(&self, record: impl FnOnce(&Stream) -> Result<()>) -> Result<Graph> {
        self.begin_capture()?;
        match record(self) {
            Ok(()) => self.end_capture(),
            Err(e) => {
                if let Err(end) = self.end_capture() {
                    tracing::debug!("ending a failed capture: {end}");
                }
                Err(e)
            }
        }
    }
}

/// Called when a stream is dropped: a capture still open on it is ended and its graph discarded, so
/// the stream can be destroyed.
pub(crate) fn abandon_capture(s: &Stream) {
    if s.capturing.swap(false, Ordering::AcqRel) {
        count_capture(false);
    }
    if let Ok(true) = s.is_capturing() {
        tracing::warn!("stream dropped while capturing; the capture is discarded");
        match s.dev.backend().stream_end_capture(s.raw) {
            Ok(g) if g != 0 => {
                if let Err(e) = s.dev.backend().graph_destroy(g) {
                    tracing::error!("destroying an abandoned graph failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("ending an abandoned capture: {e}"),
        }
    }
}

impl Graph {
    /// Make the graph executable (cuGraphInstantiateWithFlags / hipGraphInstantiate).
    pub fn instantiate(&self) -> Result<GraphExec> {
        let raw = self.dev.backend().graph_instantiate(self.raw)?;
        Ok(GraphExec {
            dev: self.dev.clone(),
            raw,
            _not_sync: PhantomData,
        })
    }
    pub fn device(&self) -> &Device {
        &self.dev
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        if let Err(e) = self.dev.backend().graph_destroy(self.raw) {
            tracing::error!("destroying graph failed: {e}");
        }
    }
}

impl GraphExec {
    /// Queue one replay on `stream` (any stream of the device, the default one included). Replays
    /// are ordered after earlier work on `stream` and after earlier replays of this graph.
    pub fn launch(&self, stream: &Stream) -> Result<()> {
        if stream.dev.id() != self.dev.id() {
            return Err(Error::op(
                "GraphExec::launch",
                format!(
                    "graph of {:?} launched on a stream of {:?}",
                    self.dev, stream.dev
                ),
            ));
        }
        self.dev.backend().graph_launch(self.raw, stream.raw)
    }
    pub fn device(&self) -> &Device {
        &self.dev
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        if let Err(e) = self.dev.backend().graph_exec_destroy(self.raw) {
            tracing::error!("destroying graph exec failed: {e}");
        }
    }
}
