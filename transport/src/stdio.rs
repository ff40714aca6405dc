//! The production driver: one thread, one `mio` poll over stdin, stdout and a signal pipe.
//!
//! - stdin is read until `WouldBlock` (edge-triggered), each chunk fed to the kernel at once;
//! - frames the kernel produces queue for stdout and are written until `WouldBlock`;
//! - **back-pressure**: while more than [`OUTBOUND_HIGH_WATERMARK_BYTES`] wait for stdout, no
//!   more input is read, so a host that stops reading cannot make the sidecar's memory grow;
//! - timers fire at the kernel's `next_deadline()`; the real clock and the OS entropy seed are
//!   read here and injected into the kernel;
//! - stdin EOF, SIGTERM or SIGINT dispose every VM (`HOST_SHUTDOWN`), flush, and exit 0.

use crate::trace::{TraceError, TraceWriter};
use crate::{Driver, Input};
use kernel::hostfs::HostFs;
use kernel::persistence::Store;
use kernel::process::guest::GuestEngine;
use kernel::{Now, Sidecar, SidecarConfig};
use mio::net::UnixStream;
use mio::unix::pipe::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size of one read from stdin.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Above this many bytes waiting for stdout, reading stops until the host catches up. One
/// input can still add a response and a few events on top, so the queue stays within this plus
/// a few frames.
pub const OUTBOUND_HIGH_WATERMARK_BYTES: usize = 1024 * 1024;
/// How long shutdown waits for a host that does not read the final frames.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

const STDIN: Token = Token(0);
const STDOUT: Token = Token(1);
const SIGNALS: Token = Token(2);

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("stdio I/O: {0}")]
    Io(#[from] io::Error),
    #[error("trace: {0}")]
    Trace(#[from] TraceError),
    #[error("host closed stdin in the middle of a frame ({buffered} bytes buffered)")]
    TruncatedInput { buffered: usize },
}

/// How the stdio sidecar runs.
#[derive(Debug, Clone, Default)]
pub struct StdioOptions {
    pub config: SidecarConfig,
    /// Record every input and output to this trace file.
    pub record: Option<PathBuf>,
    /// Host file access for `host_dir` mounts (none: they are refused).
    pub host_fs: Option<Arc<dyn HostFs>>,
    /// The persistence store (none: persistence requests are refused).
    pub store: Option<Arc<dyn Store>>,
    /// Runs guest programs (none: `Execute` is refused).
    pub guest_engine: Option<Arc<dyn GuestEngine>>,
}

/// The wall and monotonic clock, read only here.
#[derive(Debug)]
struct RealClock {
    start: Instant,
}

impl RealClock {
    fn now(&self) -> Now {
        let monotonic_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Now { monotonic_ms, wall_ms }
    }
}

/// A seed from the OS for the kernel's entropy (recorded in traces, so replays reuse it).
pub fn os_entropy_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    match read {
        Ok(()) => u64::from_le_bytes(bytes),
        // Without /dev/urandom the sub-second clock is the best seed left; it is recorded anyway.
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs()),
    }
}

/// Frames waiting for stdout, written front to back.
#[derive(Debug, Default)]
struct OutboundQueue {
    frames: VecDeque<Vec<u8>>,
    /// Bytes of the front frame already written.
    written: usize,
    bytes: usize,
}

impl OutboundQueue {
    fn push(&mut self, frame: Vec<u8>) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Writes until empty or `WouldBlock`; `Ok(true)` if everything was written.
    fn flush_to(&mut self, out: &mut impl Write) -> io::Result<bool> {
        while let Some(front) = self.frames.front() {
            let pending = front.get(self.written..).unwrap_or_default();
            match out.write(pending) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "stdout closed")),
                Ok(n) => {
                    self.written += n;
                    self.bytes -= n;
                    if self.written == front.len() {
                        self.frames.pop_front();
                        self.written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Serves the protocol on this process's stdin/stdout until EOF or a shutdown signal.
pub fn serve(options: StdioOptions) -> Result<(), StdioError> {
    let mut poll = Poll::new()?;
    let mut stdin = Receiver::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut stdout = Sender::from(io::stdout().as_fd().try_clone_to_owned()?);
    stdin.set_nonblocking(true)?;
    stdout.set_nonblocking(true)?;
    // Regular files and /dev/null cannot be polled; they never block either, so such ends are
    // simply read and written without readiness events.
    let stdin_polled = poll.registry().register(&mut stdin, STDIN, Interest::READABLE).is_ok();
    let _ = poll.registry().register(&mut stdout, STDOUT, Interest::WRITABLE);
    let (signal_read, signal_write) = std::os::unix::net::UnixStream::pair()?;
    signal_read.set_nonblocking(true)?;
    let mut signal_read = UnixStream::from_std(signal_read);
    poll.registry().register(&mut signal_read, SIGNALS, Interest::READABLE)?;
    let signal_write_2 = signal_write.try_clone()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, signal_write)?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, signal_write_2)?;

    let recorder = match &options.record {
        Some(path) => Some(TraceWriter::create(path, &options.config)?),
        None => None,
    };
    let mut sidecar = Sidecar::new(options.config);
    if let Some(host_fs) = options.host_fs {
        sidecar = sidecar.with_host_fs(host_fs);
    }
    if let Some(store) = options.store {
        sidecar = sidecar.with_store(store);
    }
    if let Some(engine) = options.guest_engine {
        sidecar = sidecar.with_guest_engine(engine);
    }
    let mut state = LoopState {
        clock: RealClock { start: Instant::now() },
        driver: Driver::new(sidecar),
        out: OutboundQueue::default(),
        recorder,
    };
    let mut events = Events::with_capacity(16);
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut stdin_open = true;
    let mut stdin_ready = true;
    let mut shutdown_deadline: Option<Instant> = None;

    loop {
        // Read while the host is ahead of us by less than the watermark.
        while stdin_open
            && stdin_ready
            && shutdown_deadline.is_none()
            && state.out.bytes < OUTBOUND_HIGH_WATERMARK_BYTES
        {
            match stdin.read(&mut buffer) {
                Ok(0) => {
                    stdin_open = false;
                    state.apply(Input::Eof)?;
                }
                Ok(n) => state.apply(Input::Bytes(buffer.get(..n).unwrap_or_default().to_vec()))?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stdin_ready = !stdin_polled,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(error = %e, "reading stdin failed; shutting down");
                    stdin_open = false;
                    state.apply(Input::Eof)?;
                }
            }
        }
        let now_ms = state.clock.now().monotonic_ms;
        // Guests run in ticks; while the host is a watermark behind on output they wait (their
        // output would only pile up here), and the loop waits for stdout to drain instead.
        let may_run = state.out.bytes < OUTBOUND_HIGH_WATERMARK_BYTES;
        if may_run && state.driver.sidecar().next_deadline().is_some_and(|deadline| now_ms >= deadline) {
            state.apply(Input::Tick)?;
        }
        if let Err(e) = state.out.flush_to(&mut stdout) {
            // The host is gone: nobody can receive anything any more.
            tracing::warn!(error = %e, "writing stdout failed; exiting");
            if stdin_open {
                state.apply(Input::Eof)?;
            }
            return state.finish();
        }
        let drained = state.out.is_empty();
        if drained && (!stdin_open || shutdown_deadline.is_some()) {
            return state.finish();
        }
        if shutdown_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            tracing::warn!(queued_bytes = state.out.bytes, "host did not read the final frames; exiting");
            return state.finish();
        }
        // Reading may have stopped at the watermark with input still waiting: that input will
        // not raise another (edge-triggered) event, so come straight back to read it.
        let can_read =
            stdin_open && stdin_ready && shutdown_deadline.is_none() && state.out.bytes < OUTBOUND_HIGH_WATERMARK_BYTES;
        let timeout = if can_read { Some(Duration::ZERO) } else { poll_timeout(&state, shutdown_deadline) };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            match event.token() {
                STDIN => stdin_ready = true,
                SIGNALS => {
                    let mut sink = [0u8; 64];
                    while matches!((&signal_read).read(&mut sink), Ok(n) if n > 0) {}
                    if shutdown_deadline.is_none() {
                        tracing::info!("shutdown signal received");
                        shutdown_deadline = Some(Instant::now() + SHUTDOWN_FLUSH_TIMEOUT);
                        state.apply(Input::Shutdown)?;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Everything the loop mutates besides the OS handles.
#[derive(Debug)]
struct LoopState {
    clock: RealClock,
    driver: Driver,
    out: OutboundQueue,
    recorder: Option<TraceWriter>,
}

impl LoopState {
    /// One input into the kernel at the current time; its frames queue for stdout and, when
    /// recording, go to the trace together with the input.
    fn apply(&mut self, input: Input) -> Result<(), StdioError> {
        let now = self.clock.now();
        let frames = self.driver.apply(&input, now);
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.input(&input, now)?;
            for frame in &frames {
                recorder.output(frame, now)?;
            }
            recorder.flush()?;
        }
        for frame in frames {
            self.out.push(frame);
        }
        Ok(())
    }

    fn finish(self) -> Result<(), StdioError> {
        match self.driver.truncated_input() {
            Some(buffered) => Err(StdioError::TruncatedInput { buffered }),
            None => Ok(()),
        }
    }
}

fn poll_timeout(state: &LoopState, shutdown: Option<Instant>) -> Option<Duration> {
    let now_ms = state.clock.now().monotonic_ms;
    let timer = state.driver.sidecar().next_deadline().map(|deadline| {
        let wait = Duration::from_millis(deadline.saturating_sub(now_ms));
        // Behind on output: no tick can run before stdout drains (a writable event), so a due
        // timer must not make the loop spin; check back shortly.
        if state.out.bytes >= OUTBOUND_HIGH_WATERMARK_BYTES {
            wait.max(Duration::from_millis(1))
        } else {
            wait
        }
    });
    let shutdown = shutdown.map(|deadline| deadline.saturating_duration_since(Instant::now()));
    match (timer, shutdown) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
