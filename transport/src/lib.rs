//! Drivers of the sans-IO kernel.
//!
//! - [`stdio`]: the production single-threaded `mio` event loop over stdin/stdout.
//! - [`memory`]: an in-memory transport with a manual clock, for tests and tools.
//! - [`trace`]: the record/replay format: every input the kernel saw (bytes, clock readings,
//!   the entropy seed) and every frame it produced.
//! - [`hostfs`] and [`store`]: the real I/O the kernel is given: host directories for
//!   `host_dir` mounts (confined) and the file-backed, atomic persistence store.
//!
//! All three drive the kernel through [`Driver`], so the kernel is fed identically with and
//! without real I/O.

#![forbid(unsafe_code)]

pub mod hostfs;
pub mod memory;
pub mod stdio;
pub mod store;
pub mod trace;

use kernel::{Now, Output, Sidecar, StreamId};

/// One input to the kernel, as recorded in traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes read from the host.
    Bytes(Vec<u8>),
    /// Timers are due.
    Tick,
    /// The host closed its end: the stream's VMs are disposed.
    Eof,
    /// SIGTERM/SIGINT: every VM is disposed with `HOST_SHUTDOWN`.
    Shutdown,
}

/// Applies inputs to a kernel serving one stream and collects its outputs. The stdio loop, the
/// in-memory transport and replay all go through here, so they cannot drift apart.
#[derive(Debug)]
pub struct Driver {
    sidecar: Sidecar,
    stream: StreamId,
    truncated_input: Option<usize>,
}

impl Driver {
    pub fn new(mut sidecar: Sidecar) -> Self {
        // A fresh kernel always has room for its first stream.
        let stream = sidecar.open_stream().unwrap_or(StreamId(1));
        Self { sidecar, stream, truncated_input: None }
    }

    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    pub fn sidecar_mut(&mut self) -> &mut Sidecar {
        &mut self.sidecar
    }

    /// Feeds one input at `now`; returns the frames it produced, in order.
    pub fn apply(&mut self, input: &Input, now: Now) -> Vec<Vec<u8>> {
        match input {
            Input::Bytes(bytes) => self.sidecar.handle_bytes(self.stream, bytes, now),
            Input::Tick => self.sidecar.tick(now),
            Input::Eof => {
                if let Err(schema::FrameError::TruncatedFrame { actual }) =
                    self.sidecar.finish_stream_input(self.stream, now)
                {
                    tracing::error!(buffered = actual, "host closed its end in the middle of a frame");
                    self.truncated_input = Some(actual);
                }
                self.sidecar.shutdown(now);
            }
            Input::Shutdown => self.sidecar.shutdown(now),
        }
        self.drain()
    }

    /// Bytes of an incomplete frame left when the input ended, if any: the stream could not be
    /// framed to its end, so the process should exit non-zero.
    pub fn truncated_input(&self) -> Option<usize> {
        self.truncated_input
    }

    fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some(Output { bytes, .. }) = self.sidecar.poll_output() {
            frames.push(bytes);
        }
        frames
    }
}
