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
//!   long as the [`GraphExec`].
//! - **Only stream-ordered work is captured:** [`super::Kernel::launch`], the `*_async` copies and
//!   fills, [`super::Buffer::copy_from`], events and [`Stream::wait_event`]. Synchronous calls
//!   (`Device::alloc`, `copy_from_host`, `to_vec`, `fill_bytes`, any synchronize) are never
//!   recorded: on the capturing thread the driver refuses them or invalidates the capture, so do
//!   them before `begin_capture`. Device-to-host copies into a [`super::PinnedBuffer`] are refused
//!   during capture and belong after [`GraphExec::launch`].
//!
//! Capture uses the **thread-local** mode (`CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`,
//! `hipStreamCaptureModeThreadLocal`). The global mode would let an unrelated thread (a kernel
//! compile loading its module, the server allocating) fail or invalidate the capture by making an
//! allocation or a synchronous copy at the wrong moment; the relaxed mode would let the capturing
//! thread itself run such a call silently — once, at capture, and never at replay, which is a wrong
//! answer rather than an error. Thread-local keeps the check where the mistake would be: the thread
//! that records the step.
//!
//! The default (null) stream cannot be captured; capture on a stream from
//! [`super::Device::create_stream_nonblocking`].

use super::{Device, Raw, Stream};
use crate::error::{Error, Result};
use std::marker::PhantomData;

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
        self.dev.backend().stream_begin_capture(self.raw)
    }

    /// Stop recording and return the graph. An error when the stream was not capturing, or when the
    /// capture was invalidated by an illegal call during it (the error names the driver's reason);
    /// in both cases the stream is no longer capturing afterwards.
    pub fn end_capture(&self) -> Result<Graph> {
        refuse_default(self, "Stream::end_capture")?;
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
