//! The production driver: one thread, one `mio` poll over stdin, stdout and a signal pipe.
//!
//! - stdin is read into a bounded buffer ([`INBOUND_BUFFER_BYTES`]); the kernel is fed from it
//!   one frame at a time (split at the length prefixes);
//! - frames the kernel produces queue for stdout and are written until `WouldBlock`;
//! - **back-pressure**: while frames of more than [`OUTBOUND_HIGH_WATERMARK_BYTES`] wait for
//!   stdout, no frame is fed to the kernel and guests do not run; input then waits in the buffer, and once
//!   that is full stdin is not read either, so a host that stops reading cannot make the
//!   sidecar's memory grow. The watermark is checked between frames, not between reads: one
//!   small request can be answered with megabytes;
//! - timers fire at the kernel's `next_deadline()`; the real clock and the OS entropy seed are
//!   read here and injected into the kernel;
//! - the store's effects (a flush's write and sync, a load's read) are performed on a thread of
//!   their own (an `EffectWorker`), in the order the kernel asked for them; each completion wakes
//!   the loop and is fed back as an input. The loop itself never waits for the disk: other
//!   requests, guests and timers go on while a flush is written;
//! - compilations likewise, on a compiler thread: a program's first `Execute` (or a guest's
//!   spawn of it) waits for its compile effect while everything else goes on;
//! - guests' connections out of their VMs (when enabled) are non-blocking sockets on this
//!   same poll ([`crate::egress`]): a connect, send or receive is an effect completed when
//!   its socket is ready, so a slow or silent peer never holds the loop;
//! - stdin EOF (once every frame read before it has been fed), SIGTERM or SIGINT dispose every
//!   VM (`HOST_SHUTDOWN`), wait for store effects in flight (at most
//!   [`SHUTDOWN_FLUSH_TIMEOUT`]), flush, and exit 0.

use crate::egress::Egress;
use crate::trace::{TraceError, TraceWriter};
use crate::{Driver, Input, Ports};
use kernel::host::effect::{Completion, Effect, EffectId};
use kernel::host::fs::HostFs;
use kernel::host::package::PackageSource;
use kernel::host::store::Store;
use kernel::syscalls::engine::GuestEngine;
use kernel::{Now, SidecarConfig};
use mio::net::UnixStream;
use mio::unix::pipe::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use schema::FRAME_PREFIX_BYTES;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Room for bytes read from stdin and not yet fed to the kernel; stdin is not read while it is
/// full, so this is how far a host can get ahead of the kernel. Four default pipe buffers
/// (64 KiB each): a read takes everything a default pipe holds, and requests up to this size
/// (all but file contents and large configs) are fed whole, so the kernel decodes them in
/// place. Larger frames are fed as they arrive, the kernel's decoder holding them up to its
/// frame limit. A quarter of the output watermark, so unread input never dominates memory.
pub const INBOUND_BUFFER_BYTES: usize = 256 * 1024;
/// While frames of more than this many bytes wait for stdout, no further frame is fed to the
/// kernel until the host catches up. It is checked before each frame, and one frame adds its
/// response and a few events, so the queue stays within this plus one frame's output. 1 MiB
/// keeps the pipe busy (sixteen default pipe buffers) while bounding what a host that does not
/// read can pile up.
pub const OUTBOUND_HIGH_WATERMARK_BYTES: usize = 1024 * 1024;

// Unread input never dominates what the loop lets pile up for the host.
const _: () = assert!(INBOUND_BUFFER_BYTES < OUTBOUND_HIGH_WATERMARK_BYTES);
/// How long shutdown waits for a host that does not read the final frames.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

const STDIN: Token = Token(0);
const STDOUT: Token = Token(1);
const SIGNALS: Token = Token(2);
/// An effect worker finished one (mio allows one waker per poll: the workers share it).
const EFFECT_DONE: Token = Token(3);

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("stdio I/O: {0}")]
    Io(#[from] io::Error),
    #[error("trace: {0}")]
    Trace(#[from] TraceError),
    #[error("host closed stdin in the middle of a frame ({buffered} bytes buffered)")]
    TruncatedInput { buffered: usize },
    #[error("an effect worker's thread stopped")]
    WorkerGone,
    #[error("TLS roots: {0}")]
    TlsRoots(#[from] crate::egress::tls::TlsError),
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
    /// Opens ConfigureVm's `software` packages (none: a request naming any is refused).
    pub packages: Option<Arc<dyn PackageSource>>,
    /// The Python interpreter (none: `runtime: PYTHON` is refused).
    pub python: Option<Arc<dyn kernel::host::python::PythonSource>>,
    /// Programs provided to every VM (`node`).
    pub programs: kernel::host::programs::SidecarPrograms,
    /// Carry guests' connections out of their VMs, where their policies allow them (without
    /// it, such a connect finds no route).
    pub egress: bool,
    /// PEM certificates trusted for guests' TLS besides the Mozilla roots.
    pub extra_tls_roots: Vec<Vec<u8>>,
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
    /// Bytes the queued frames hold, the front one whole until it is all written: a frame's
    /// memory is freed only then, so this, not what is left to write, is what the watermark
    /// weighs (a 15 MiB answer with 1 MiB left to write still holds 15 MiB).
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
                    if self.written == front.len() {
                        self.bytes -= front.len();
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

/// Bytes read from stdin and not yet fed to the kernel, with where the next frame starts: the
/// kernel is fed one frame at a time, so the output watermark is checked between frames.
#[derive(Debug)]
struct Inbound {
    /// Fixed size (the bound); `bytes[start..end]` is unfed input.
    bytes: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the frame being fed (prefix included) still to feed; 0 at a frame boundary.
    frame_left: usize,
}

impl Inbound {
    fn with_capacity(capacity: usize) -> Self {
        Self { bytes: vec![0; capacity], start: 0, end: 0, frame_left: 0 }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether a read has anywhere to go (unfed bytes move to the front first).
    fn has_room(&self) -> bool {
        self.end - self.start < self.bytes.len()
    }

    /// One read from `source` into the free space; only called with [`has_room`](Self::has_room),
    /// as a read into no space would look like end of input.
    fn read_from(&mut self, source: &mut impl Read) -> io::Result<usize> {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = source.read(self.bytes.get_mut(self.end..).unwrap_or_default())?;
        self.end += n;
        Ok(n)
    }

    /// Bytes still to feed of the frame at `start`; `None` while its prefix is incomplete.
    fn current_frame_left(&self) -> Option<usize> {
        if self.frame_left > 0 {
            return Some(self.frame_left);
        }
        let prefix = self.bytes.get(self.start..self.end)?.first_chunk::<FRAME_PREFIX_BYTES>()?;
        let declared = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        Some(FRAME_PREFIX_BYTES.saturating_add(declared))
    }

    /// Where the next piece to feed lies: the rest of the current frame once it is all here.
    /// A frame larger than the buffer can never be all here; it is fed as it arrives, and the
    /// kernel's decoder holds it within its frame limit or skips it and reports it as too large
    /// (so an absurd length prefix is answered, not waited on). At end of input whatever is
    /// left is fed, so the decoder sees the truncated last frame.
    fn next_piece(&self, at_eof: bool) -> Option<Range<usize>> {
        let buffered = self.end - self.start;
        if buffered == 0 {
            return None;
        }
        let len = match self.current_frame_left() {
            Some(left) if left <= buffered => left,
            Some(left) if left > self.bytes.len() || at_eof => buffered,
            None if at_eof => buffered,
            Some(_) | None => return None,
        };
        Some(self.start..self.start + len)
    }

    /// Takes the next piece out of the buffer (see [`next_piece`](Self::next_piece)).
    fn take_piece(&mut self, at_eof: bool) -> Option<&[u8]> {
        let piece = self.next_piece(at_eof)?;
        let len = piece.len();
        // A piece shorter than a prefix (only at end of input) belongs to no known frame.
        self.frame_left = self.current_frame_left().unwrap_or(len).saturating_sub(len);
        self.start = piece.end;
        self.bytes.get(piece)
    }
}

/// Serves the protocol on this process's stdin/stdout until EOF or a shutdown signal.
pub fn serve(options: StdioOptions) -> Result<(), StdioError> {
    let mut poll = Poll::new()?;
    let mut stdin = Stdin::open(&poll)?;
    let mut stdout = open_stdout(&poll)?;
    let signals = watch_shutdown_signals(&poll)?;
    let mut state = LoopState::new(options, &poll)?;
    let mut events = Events::with_capacity(16);
    let mut shutdown_deadline: Option<Instant> = None;

    loop {
        state.take_completions()?;
        if shutdown_deadline.is_none() {
            state.take_input(&mut stdin)?;
            if stdin.eof_fed && state.effects_in_flight() {
                // The host is gone; a flush still being written gets a bounded wait.
                shutdown_deadline = Some(Instant::now() + SHUTDOWN_FLUSH_TIMEOUT);
            }
        }
        state.tick_if_due()?;
        if let Err(error) = state.out.flush_to(&mut stdout) {
            return state.finish_without_host(&error, stdin.eof_fed);
        }
        if state.is_done(stdin.eof_fed, shutdown_deadline) {
            return state.finish();
        }
        let timeout = loop_timeout(&state, &stdin, shutdown_deadline);
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            match event.token() {
                STDIN => stdin.ready = true,
                SIGNALS => on_shutdown_signal(&signals, &mut state, &mut shutdown_deadline)?,
                token => {
                    if let Some(egress) = state.egress.as_mut() {
                        egress.on_event(poll.registry(), token);
                    }
                }
            }
        }
        if let Some(egress) = state.egress.as_mut() {
            egress.expire(poll.registry(), Instant::now());
        }
    }
}

/// This process's stdin, the input read from it and not yet fed, and how far it has got.
#[derive(Debug)]
struct Stdin {
    pipe: Receiver,
    /// Whether readiness events come for it: regular files and /dev/null cannot be polled (they
    /// never block either, so they are simply read).
    polled: bool,
    inbound: Inbound,
    /// Whether stdin may still have bytes (until EOF or a read error).
    open: bool,
    /// Whether a read may find bytes: readiness is edge-triggered, so after `WouldBlock` only a
    /// new event says there is more.
    ready: bool,
    /// Whether the kernel has been told about the end of input (after every frame read before it).
    eof_fed: bool,
}

impl Stdin {
    /// Non-blocking, and registered with `poll` when it can be.
    fn open(poll: &Poll) -> Result<Self, StdioError> {
        let mut pipe = Receiver::from(io::stdin().as_fd().try_clone_to_owned()?);
        pipe.set_nonblocking(true)?;
        let polled = poll.registry().register(&mut pipe, STDIN, Interest::READABLE).is_ok();
        Ok(Self {
            pipe,
            polled,
            inbound: Inbound::with_capacity(INBOUND_BUFFER_BYTES),
            open: true,
            ready: true,
            eof_fed: false,
        })
    }

    /// Whether a read now could bring input.
    fn may_read(&self) -> bool {
        self.open && self.ready && self.inbound.has_room()
    }

    /// One read into the buffer's free space. A read error ends input like EOF does.
    fn read_once(&mut self) {
        match self.inbound.read_from(&mut self.pipe) {
            Ok(0) => self.open = false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready = !self.polled,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!(error = %e, "reading stdin failed; shutting down");
                self.open = false;
            }
        }
    }
}

/// This process's stdout, non-blocking, and registered with `poll` when it can be (regular files
/// and /dev/null cannot be polled; they never block either).
fn open_stdout(poll: &Poll) -> Result<Sender, StdioError> {
    let mut stdout = Sender::from(io::stdout().as_fd().try_clone_to_owned()?);
    stdout.set_nonblocking(true)?;
    let _ = poll.registry().register(&mut stdout, STDOUT, Interest::WRITABLE);
    Ok(stdout)
}

/// A socket that becomes readable on SIGTERM or SIGINT, registered with `poll`: the handlers
/// only write to it, and the loop does the shutdown.
fn watch_shutdown_signals(poll: &Poll) -> Result<UnixStream, StdioError> {
    let (signal_read, signal_write) = std::os::unix::net::UnixStream::pair()?;
    signal_read.set_nonblocking(true)?;
    let mut signal_read = UnixStream::from_std(signal_read);
    poll.registry().register(&mut signal_read, SIGNALS, Interest::READABLE)?;
    let signal_write_2 = signal_write.try_clone()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, signal_write)?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, signal_write_2)?;
    Ok(signal_read)
}

/// A shutdown signal arrived: the first one disposes every VM (`HOST_SHUTDOWN`) and gives the
/// host [`SHUTDOWN_FLUSH_TIMEOUT`] to read the final frames.
fn on_shutdown_signal(
    signals: &UnixStream,
    state: &mut LoopState,
    shutdown_deadline: &mut Option<Instant>,
) -> Result<(), StdioError> {
    let mut sink = [0u8; 64];
    let mut reader = signals;
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    if shutdown_deadline.is_none() {
        // Input read but not fed yet is dropped, like input still in the pipe.
        tracing::info!("shutdown signal received");
        *shutdown_deadline = Some(Instant::now() + SHUTDOWN_FLUSH_TIMEOUT);
        state.apply(Input::Shutdown)?;
    }
    Ok(())
}

/// How long the loop may wait for an event. It comes straight back while there is work no
/// event will announce: a frame to feed now that stdout has drained below the watermark, or
/// input left in the pipe when a read stopped at the buffer's end (edge-triggered: no new
/// event for bytes already waiting).
fn loop_timeout(state: &LoopState, stdin: &Stdin, shutdown_deadline: Option<Instant>) -> Option<Duration> {
    let below_watermark = state.out.bytes < OUTBOUND_HIGH_WATERMARK_BYTES;
    let can_feed = below_watermark && stdin.inbound.next_piece(!stdin.open).is_some();
    if shutdown_deadline.is_none() && (can_feed || stdin.may_read()) {
        Some(Duration::ZERO)
    } else {
        poll_timeout(state, shutdown_deadline)
    }
}

/// Everything the loop mutates besides the OS handles.
#[derive(Debug)]
struct LoopState {
    clock: RealClock,
    driver: Driver,
    out: OutboundQueue,
    /// Performs the store's effects (none without a store).
    store: Option<EffectWorker>,
    /// Compiles programs for the guest engine (none without one).
    compiler: Option<EffectWorker>,
    /// Guests' connections out (none when egress is off).
    egress: Option<Egress>,
    /// Resolves names for guests (with egress).
    resolver: Option<EffectWorker>,
    /// Performs guests' host directory calls (with host directories).
    host_files: Option<EffectWorker>,
    /// Inside [`LoopState::settle_host_calls`] (which applies inputs itself).
    settling: bool,
    /// Registers links' sockets with the loop's poll.
    registry: mio::Registry,
}

/// How a worker performs one effect.
type Perform = Arc<dyn Fn(&Effect) -> Completion + Send + Sync>;

/// Host directory calls performed at once: a call stuck on a slow disk holds one thread, the
/// others go on with other guests' calls (a guest waits on one call at a time).
const HOST_CALL_THREADS: usize = 4;
/// How long a host-files thread, its call done, looks for the next before it sleeps: a guest's
/// next call comes within microseconds, and waking a sleeping thread costs tens of them on a
/// virtual machine (measured on this project's 2-core machine: a guest's one-byte `pwrite` on a
/// mount, two host calls, took 190 µs with sleeping threads and 45 µs with spinning ones).
const HOST_CALL_SPIN: Duration = Duration::from_micros(200);
/// How long the loop waits for host directory calls it handed out before it serves its input
/// again (see `LoopState::settle_host_calls`): a thousand times a local disk's answer, short
/// enough that a hung disk delays everything else by at most this per input.
const HOST_CALL_WAIT: Duration = Duration::from_millis(1);

/// Performs effects on threads of its own, in the order asked (one thread: one at a time), so
/// the loop never waits for a disk or a compiler: one worker for the store, one for
/// compilations, one for host directory calls. The kernel bounds the effects in flight, so the
/// queues between them stay small; each completion wakes the loop's poll.
struct EffectWorker {
    jobs: std::sync::mpsc::Sender<(EffectId, Effect)>,
    done: std::sync::mpsc::Receiver<(EffectId, Completion)>,
    in_flight: usize,
}

impl std::fmt::Debug for EffectWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectWorker").field("in_flight", &self.in_flight).finish_non_exhaustive()
    }
}

/// The next job of `queue`: looked for without sleeping for `spin`, then waited for.
fn next_job<T>(queue: &std::sync::mpsc::Receiver<T>, spin: Duration) -> Result<T, std::sync::mpsc::RecvError> {
    let until = Instant::now() + spin;
    while Instant::now() < until {
        match queue.try_recv() {
            Ok(job) => return Ok(job),
            Err(std::sync::mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(std::sync::mpsc::RecvError),
        }
    }
    queue.recv()
}

impl EffectWorker {
    /// `spin`: how long a thread that finished a job looks for the next before it sleeps (see
    /// [`next_job`]).
    fn spawn(name: &str, threads: usize, spin: Duration, perform: Perform, waker: Arc<Waker>) -> io::Result<Self> {
        let (jobs, queued) = std::sync::mpsc::channel::<(EffectId, Effect)>();
        let queued = Arc::new(std::sync::Mutex::new(queued));
        let (finished, done) = std::sync::mpsc::channel();
        for _ in 0..threads.max(1) {
            let (queued, finished, perform, waker) =
                (Arc::clone(&queued), finished.clone(), Arc::clone(&perform), Arc::clone(&waker));
            let thread_name = name.to_owned();
            std::thread::Builder::new().name(name.to_owned()).spawn(move || loop {
                // One thread waits on the queue at a time; the lock is released before the job
                // runs. A poisoned lock or a closed queue ends the thread.
                let job = match queued.lock() {
                    Ok(queue) => next_job(&queue, spin),
                    Err(_) => return,
                };
                let Ok((id, effect)) = job else { return };
                let completion = perform(&effect);
                if finished.send((id, completion)).is_err() {
                    return;
                }
                if let Err(error) = waker.wake() {
                    tracing::error!(%error, worker = %thread_name, "cannot wake the loop for a completion");
                }
            })?;
        }
        Ok(Self { jobs, done, in_flight: 0 })
    }

    /// The store's worker.
    fn store(store: Arc<dyn Store>, waker: Arc<Waker>) -> io::Result<Self> {
        Self::spawn("store", 1, Duration::ZERO, Arc::new(move |effect: &Effect| effect.perform(store.as_ref())), waker)
    }

    /// The resolver: `getaddrinfo` blocks, so names are resolved here, one at a time (a
    /// VM has at most 16 in flight).
    fn resolver(waker: Arc<Waker>) -> io::Result<Self> {
        let perform = |effect: &Effect| match effect {
            Effect::Resolve { name, servers } => crate::egress::resolve(name, servers),
            _ => Completion::Resolved(Err(kernel::host::effect::NetFailure::new(
                kernel::vfs::Errno::EINVAL,
                "not a resolution",
            ))),
        };
        Self::spawn("resolver", 1, Duration::ZERO, Arc::new(perform), waker)
    }

    /// The compiler: a compile effect loads the program into the engine's cache (a module that
    /// cannot run is cached as such too: the kernel's own load then says why).
    /// It also loads the Python interpreter (reading its install, which compiling it needs
    /// first anyway) when the kernel asks.
    fn compiler(
        engine: Arc<dyn GuestEngine>,
        python: Option<Arc<dyn kernel::host::python::PythonSource>>,
        waker: Arc<Waker>,
    ) -> io::Result<Self> {
        let perform = move |effect: &Effect| match effect {
            Effect::LoadPython => Completion::PythonLoaded(match python.as_ref() {
                Some(python) => python.load().map(|install| {
                    // The preloaded interpreter (135 MB, about 100 ms) is read beside, off the
                    // loop and off this first start's path, rather than when the kernel first
                    // chooses it on the loop. A program choosing it before the read ends waits
                    // for the rest of it, and gets the same module either way.
                    if install.preloaded.is_some() {
                        let _ = std::thread::Builder::new().name("python-preloaded".into()).spawn(move || {
                            if let Some(preloaded) = &install.preloaded {
                                let _ = preloaded.module();
                            }
                        });
                    }
                }),
                None => Err("this sidecar has no Python interpreter".to_owned()),
            }),
            Effect::Compile { module, max_wasm_stack_bytes } => {
                let _ = engine.load_shared(module, *max_wasm_stack_bytes);
                Completion::Compiled
            }
            _ => Completion::Compiled,
        };
        Self::spawn("compiler", 1, Duration::ZERO, Arc::new(perform), waker)
    }

    /// Host directory calls of guests (see `kernel::dispatch::host_calls`).
    fn host_calls(waker: Arc<Waker>) -> io::Result<Self> {
        Self::spawn(
            "host-files",
            HOST_CALL_THREADS,
            HOST_CALL_SPIN,
            Arc::new(|effect: &Effect| effect.perform_host_call()),
            waker,
        )
    }

    fn submit(&mut self, effects: Vec<(EffectId, Effect)>) -> Result<(), StdioError> {
        for job in effects {
            self.jobs.send(job).map_err(|_| StdioError::WorkerGone)?;
            self.in_flight += 1;
        }
        Ok(())
    }

    /// Completions that arrived, without waiting.
    fn completed(&mut self) -> Vec<(EffectId, Completion)> {
        let done: Vec<_> = self.done.try_iter().collect();
        self.in_flight -= done.len();
        done
    }
}

impl LoopState {
    /// The kernel with the ports `options` names, recording if it asks to, serving one stream;
    /// its store effects go to an [`EffectWorker`] that wakes `poll`, its compilations to another.
    fn new(options: StdioOptions, poll: &Poll) -> Result<Self, StdioError> {
        let record = match &options.record {
            Some(path) => Some(TraceWriter::create(path)?),
            None => None,
        };
        let waker = Arc::new(Waker::new(poll.registry(), EFFECT_DONE)?);
        let store = match options.store {
            Some(store) => Some(EffectWorker::store(store, Arc::clone(&waker))?),
            None => None,
        };
        let compiler = match &options.guest_engine {
            Some(engine) => {
                Some(EffectWorker::compiler(Arc::clone(engine), options.python.clone(), Arc::clone(&waker))?)
            }
            None => None,
        };
        let egress = if options.egress { Some(Egress::new(options.extra_tls_roots)?) } else { None };
        let resolver = match &egress {
            Some(_) => Some(EffectWorker::resolver(Arc::clone(&waker))?),
            None => None,
        };
        let host_files = match &options.host_fs {
            Some(_) => Some(EffectWorker::host_calls(Arc::clone(&waker))?),
            None => None,
        };
        let ports = Ports {
            host_call_effects: host_files.is_some(),
            host_fs: options.host_fs,
            store: store.is_some(),
            guest_engine: options.guest_engine,
            packages: options.packages,
            python: options.python,
            programs: options.programs,
            compile_effects: compiler.is_some(),
            egress: egress.is_some(),
        };
        let clock = RealClock { start: Instant::now() };
        let mut driver = Driver::start(options.config, ports, record)?;
        // A fresh kernel always has room for its first stream.
        driver.open_stream(clock.now())?;
        let registry = poll.registry().try_clone()?;
        Ok(Self {
            clock,
            driver,
            out: OutboundQueue::default(),
            store,
            compiler,
            egress,
            resolver,
            host_files,
            settling: false,
            registry,
        })
    }

    /// Feeds the store completions that arrived.
    fn take_completions(&mut self) -> Result<(), StdioError> {
        let mut completed = Vec::new();
        let workers = [self.store.as_mut(), self.compiler.as_mut(), self.resolver.as_mut(), self.host_files.as_mut()];
        for worker in workers.into_iter().flatten() {
            completed.extend(worker.completed());
        }
        if let Some(egress) = self.egress.as_mut() {
            completed.extend(egress.take_completions());
        }
        for (id, completion) in completed {
            self.apply(Input::Completion(id, completion))?;
        }
        Ok(())
    }

    fn effects_in_flight(&self) -> bool {
        [self.store.as_ref(), self.compiler.as_ref(), self.host_files.as_ref()]
            .into_iter()
            .flatten()
            .any(|worker| worker.in_flight > 0)
    }

    /// Frames already read first, then one read (the buffer's free space at most) and the
    /// frames it completed; each frame only while the host keeps up with output. Once stdin has
    /// ended and every frame read before it is fed, the kernel is told.
    fn take_input(&mut self, stdin: &mut Stdin) -> Result<(), StdioError> {
        self.feed(&mut stdin.inbound, !stdin.open)?;
        if stdin.may_read() {
            stdin.read_once();
            self.feed(&mut stdin.inbound, !stdin.open)?;
        }
        if !stdin.open && !stdin.eof_fed && stdin.inbound.is_empty() {
            stdin.eof_fed = true;
            self.apply(Input::Eof(self.driver.primary()))?;
        }
        Ok(())
    }

    /// Runs guests for a tick if a timer is due. While the host is a watermark behind on output
    /// they wait (their output would only pile up here), and the loop waits for stdout to drain
    /// instead. The host directory calls the tick handed out (see [`apply`](Self::apply)).
    fn tick_if_due(&mut self) -> Result<usize, StdioError> {
        let now_ms = self.clock.now().monotonic_ms;
        let may_run = self.out.bytes < OUTBOUND_HIGH_WATERMARK_BYTES;
        if may_run && self.driver.sidecar().next_deadline().is_some_and(|deadline| now_ms >= deadline) {
            return self.apply(Input::Tick);
        }
        Ok(0)
    }

    /// Whether the loop has nothing left to do: everything owed to the host is written after the
    /// end of input or a shutdown signal, or the host did not read the final frames in time
    /// (logged: the exit loses them).
    fn is_done(&self, eof_fed: bool, shutdown_deadline: Option<Instant>) -> bool {
        if self.out.is_empty() && (eof_fed || shutdown_deadline.is_some()) && !self.effects_in_flight() {
            return true;
        }
        let timed_out = shutdown_deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if timed_out {
            tracing::warn!(queued_bytes = self.out.bytes, "host did not read the final frames; exiting");
        }
        timed_out
    }

    /// Writing stdout failed: the host is gone and nobody can receive anything any more, so
    /// input not yet fed is dropped and the kernel is told the input has ended.
    fn finish_without_host(mut self, error: &io::Error, eof_fed: bool) -> Result<(), StdioError> {
        tracing::warn!(error = %error, "writing stdout failed; exiting");
        if !eof_fed {
            self.apply(Input::Eof(self.driver.primary()))?;
        }
        self.finish()
    }

    /// One input into the kernel at the current time; its frames queue for stdout (the driver
    /// records both when asked to). When it handed out host directory calls, they are settled
    /// (see [`settle_host_calls`](Self::settle_host_calls)). Answers how many it handed out.
    fn apply(&mut self, input: Input) -> Result<usize, StdioError> {
        let handed_out = self.apply_once(input)?;
        if self.settling || handed_out == 0 {
            return Ok(handed_out);
        }
        self.settling = true;
        let settled = self.settle_host_calls(handed_out);
        self.settling = false;
        settled.map(|()| handed_out)
    }

    /// Waits, up to [`HOST_CALL_WAIT`] in all, for `awaited` host directory calls just handed
    /// out, feeding each completion at once and running the guests it woke (whose next calls
    /// are awaited too): a local disk answers in microseconds, so a guest's chain of calls (a
    /// walk, an open, reads) goes on without a turn of the loop per call. A call still running
    /// at the end of the wait is left to its thread, and never waited for again: its completion
    /// arrives through the waker like any other. So a slow or hung host disk holds the loop at
    /// most that long, once per batch of calls handed out.
    fn settle_host_calls(&mut self, mut awaited: usize) -> Result<(), StdioError> {
        let deadline = Instant::now() + HOST_CALL_WAIT;
        while awaited > 0 {
            let Some(worker) = self.host_files.as_mut().filter(|worker| worker.in_flight > 0) else { return Ok(()) };
            // Spun for, not slept on: the answer comes within microseconds, a wake-up costs more.
            let done = loop {
                match worker.done.try_recv() {
                    Ok(done) => break Some(done),
                    Err(std::sync::mpsc::TryRecvError::Empty) if Instant::now() < deadline => std::hint::spin_loop(),
                    Err(_) => break None,
                }
            };
            let Some((id, completion)) = done else { return Ok(()) };
            worker.in_flight -= 1;
            awaited -= 1;
            awaited += self.apply_once(Input::Completion(id, completion))?;
            awaited += self.tick_if_due()?;
        }
        Ok(())
    }

    /// [`apply`](Self::apply) without settling: how many host directory calls it handed out.
    fn apply_once(&mut self, input: Input) -> Result<usize, StdioError> {
        let now = self.clock.now();
        for output in self.driver.apply(&input, now)? {
            self.out.push(output.bytes);
        }
        let mut host_calls = 0;
        for (id, effect) in self.driver.take_effects() {
            if let (Effect::Resolve { .. }, Some(resolver)) = (&effect, self.resolver.as_mut()) {
                resolver.submit(vec![(id, effect)])?;
                continue;
            }
            if effect.is_network() {
                if let Some(egress) = self.egress.as_mut() {
                    egress.submit(&self.registry, id, effect);
                }
                continue;
            }
            let worker = if effect.is_store() {
                self.store.as_mut()
            } else if effect.is_host_call() {
                host_calls += 1;
                self.host_files.as_mut()
            } else {
                self.compiler.as_mut()
            };
            // The kernel asks only for the effects of the ports it was given.
            let Some(worker) = worker else { continue };
            worker.submit(vec![(id, effect)])?;
        }
        Ok(host_calls)
    }

    /// Feeds buffered input to the kernel one frame at a time while stdout is below the
    /// watermark: one small request can be answered with megabytes, so the check is per frame.
    fn feed(&mut self, inbound: &mut Inbound, at_eof: bool) -> Result<(), StdioError> {
        while self.out.bytes < OUTBOUND_HIGH_WATERMARK_BYTES {
            let Some(piece) = inbound.take_piece(at_eof) else { break };
            self.apply(Input::Bytes(self.driver.primary(), piece.to_vec()))?;
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
    // A link's completions wait for the loop's next turn: come straight back for them.
    let completions_ready = state.egress.as_ref().is_some_and(Egress::has_completions);
    let timer = if completions_ready { Some(Duration::ZERO) } else { timer };
    let linger = state.egress.as_ref().and_then(Egress::next_deadline);
    let timer = match (timer, linger.map(|until| until.saturating_duration_since(Instant::now()))) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let shutdown = shutdown.map(|deadline| deadline.saturating_duration_since(Instant::now()));
    match (timer, shutdown) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;
    use kernel::Sidecar;
    use schema::wire::*;

    fn request(id: i64, ownership: OwnershipScope, payload: RequestPayload) -> Vec<u8> {
        let frame = ProtocolFrame::RequestFrame(RequestFrame {
            schema: ProtocolSchema::current(),
            request_id: id,
            ownership,
            payload,
        });
        schema::encode_frame(&frame, usize::MAX).unwrap()
    }

    fn authenticate(id: i64) -> Vec<u8> {
        request(
            id,
            OwnershipScope::connection("client-hint"),
            RequestPayload::AuthenticateRequest(AuthenticateRequest {
                client_name: "unit".into(),
                auth_token: "token".into(),
                protocol_version: schema::PROTOCOL_VERSION,
                bridge_version: 1,
            }),
        )
    }

    /// An OpenSession request whose metadata makes it about `size` bytes.
    fn open_session(id: i64, size: usize) -> Vec<u8> {
        let metadata = [("pad".to_owned(), "p".repeat(size))].into_iter().collect();
        request(
            id,
            OwnershipScope::connection("conn-1"),
            RequestPayload::OpenSessionRequest(OpenSessionRequest {
                placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
                metadata,
            }),
        )
    }

    fn create_vm(id: i64) -> Vec<u8> {
        request(
            id,
            OwnershipScope::session("conn-1", "session-1"),
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::WebAssembly,
                config: r#"{"permissions":{"fs":"allow"}}"#.into(),
            }),
        )
    }

    fn fs_call(id: i64, call: GuestFilesystemCallRequest) -> Vec<u8> {
        request(id, OwnershipScope::vm("conn-1", "session-1", "vm-1"), RequestPayload::GuestFilesystemCallRequest(call))
    }

    /// A source handing out at most `step` bytes per read, as a pipe may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.bytes.len());
            out[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Everything `bytes` is fed as, read in `step`-byte reads through a `capacity` buffer.
    fn pieces(bytes: &[u8], capacity: usize, step: usize) -> Vec<Vec<u8>> {
        let mut inbound = Inbound::with_capacity(capacity);
        let mut source = Trickle { bytes, step };
        let mut pieces = Vec::new();
        loop {
            while let Some(piece) = inbound.take_piece(false) {
                pieces.push(piece.to_vec());
            }
            assert!(inbound.has_room(), "a full buffer always has a piece to feed");
            if inbound.read_from(&mut source).unwrap() == 0 {
                break;
            }
        }
        while let Some(piece) = inbound.take_piece(true) {
            pieces.push(piece.to_vec());
        }
        assert!(inbound.is_empty());
        pieces
    }

    #[test]
    fn frames_are_fed_one_at_a_time_however_they_were_read() {
        let frames = [authenticate(1), open_session(2, 10), open_session(3, 200)];
        let stream = frames.concat();
        for step in [1, 3, 64, stream.len()] {
            assert_eq!(pieces(&stream, 1024, step), frames, "{step}-byte reads");
        }
    }

    #[test]
    fn frames_larger_than_the_buffer_are_fed_as_they_arrive() {
        let big = open_session(1, 1000);
        let after = authenticate(2);
        let stream = [big.clone(), after.clone()].concat();
        for step in [5, 64, 300] {
            let pieces = pieces(&stream, 256, step);
            assert!(pieces.iter().all(|piece| piece.len() <= 256), "{step}-byte reads");
            assert_eq!(pieces.last(), Some(&after), "the next frame is still one piece");
            assert_eq!(pieces[..pieces.len() - 1].concat(), big, "{step}-byte reads");
        }
        // A prefix announcing 4 GiB is fed at once, so the kernel can refuse the frame now.
        let mut inbound = Inbound::with_capacity(256);
        inbound.read_from(&mut &[0xff, 0xff, 0xff, 0xff, 0, 1, 2][..]).unwrap();
        assert_eq!(inbound.take_piece(false), Some(&[0xff, 0xff, 0xff, 0xff, 0, 1, 2][..]));
        inbound.read_from(&mut &[3, 4][..]).unwrap();
        assert_eq!(inbound.take_piece(false), Some(&[3, 4][..]), "still the same frame");
    }

    #[test]
    fn an_incomplete_frame_waits_for_its_end_or_for_the_end_of_input() {
        for tail in [&[0, 0, 0, 50, 1, 2][..], &[0, 0][..]] {
            let mut inbound = Inbound::with_capacity(256);
            inbound.read_from(&mut &tail[..]).unwrap();
            assert_eq!(inbound.take_piece(false), None, "{tail:?}");
            assert_eq!(inbound.take_piece(true), Some(tail), "{tail:?}");
            assert!(inbound.is_empty());
        }
        let mut full = Inbound::with_capacity(8);
        full.read_from(&mut &[0, 0, 0, 4, 1, 2, 3, 4, 9, 9][..]).unwrap();
        assert!(!full.has_room(), "reading stops at the bound");
        assert_eq!(full.take_piece(false), Some(&[0, 0, 0, 4, 1, 2, 3, 4][..]));
        assert!(full.has_room());
    }

    /// The kernel answers input fed frame by frame exactly as input fed in one piece: malformed,
    /// oversized and valid frames alike.
    #[test]
    fn frame_by_frame_feeding_answers_like_whole_input() {
        let config = SidecarConfig { entropy_seed: 3, max_frame_bytes: 512, ..SidecarConfig::default() };
        let mut malformed = open_session(3, 10);
        let last = malformed.len() - 1;
        malformed[last] = 0x80;
        let stream = [
            authenticate(1),
            open_session(2, 10),
            malformed,
            open_session(4, 2000), // over the 512-byte frame limit
            create_vm(5),
            vec![0, 0, 0, 0], // an empty body
            authenticate(6),
        ]
        .concat();
        let mut whole = Driver::new(Sidecar::new(config.clone()));
        let primary = whole.primary();
        let mut expected = whole.apply(&Input::Bytes(primary, stream.clone()), Now::default()).unwrap();
        expected.extend(whole.apply(&Input::Eof(primary), Now::default()).unwrap());
        assert!(expected.len() > 8, "every request is answered: {}", expected.len());
        for (capacity, step) in [(4096, 4096), (4096, 1), (256, 100), (64, 7)] {
            let mut driver = Driver::new(Sidecar::new(config.clone()));
            let mut produced = Vec::new();
            for piece in pieces(&stream, capacity, step) {
                produced.extend(driver.apply(&Input::Bytes(primary, piece), Now::default()).unwrap());
            }
            produced.extend(driver.apply(&Input::Eof(primary), Now::default()).unwrap());
            assert_eq!(produced, expected, "{capacity}-byte buffer, {step}-byte reads");
        }
    }

    #[test]
    fn feeding_stops_above_the_watermark_until_stdout_drains() {
        let mut state = LoopState {
            clock: RealClock { start: Instant::now() },
            driver: Driver::new(Sidecar::new(SidecarConfig::default())),
            out: OutboundQueue::default(),
            store: None,
            compiler: None,
            egress: None,
            resolver: None,
            host_files: None,
            settling: false,
            registry: Poll::new().unwrap().registry().try_clone().unwrap(),
        };
        let content = "x".repeat(OUTBOUND_HIGH_WATERMARK_BYTES + 1);
        let write = GuestFilesystemCallRequest {
            content: Some(content.clone()),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/big")
        };
        let setup = [authenticate(1), open_session(2, 0), create_vm(3), fs_call(4, write)].concat();
        state.apply(Input::Bytes(state.driver.primary(), setup)).unwrap();
        state.out.flush_to(&mut Vec::new()).unwrap();

        let read = |id| fs_call(id, GuestFilesystemCallRequest::new(GuestFilesystemOperation::ReadFile, "/big"));
        let mut inbound = Inbound::with_capacity(INBOUND_BUFFER_BYTES);
        inbound.read_from(&mut &[read(5), read(6), read(7)].concat()[..]).unwrap();
        for id in 5..=7 {
            state.feed(&mut inbound, false).unwrap();
            assert_eq!(state.out.frames.len(), 1, "one answer, then the watermark stops feeding");
            assert!(state.out.bytes >= OUTBOUND_HIGH_WATERMARK_BYTES);
            state.feed(&mut inbound, false).unwrap();
            assert_eq!(state.out.frames.len(), 1, "nothing more is fed until stdout drains");
            let mut stdout = Vec::new();
            state.out.flush_to(&mut stdout).unwrap();
            let ProtocolFrame::ResponseFrame(response) = schema::decode_frame(&stdout, usize::MAX).unwrap() else {
                panic!("not a response")
            };
            assert_eq!(response.request_id, id);
            let ResponsePayload::GuestFilesystemResultResponse(result) = response.payload else { panic!("{id}") };
            assert!(result.content.as_deref() == Some(content.as_str()));
        }
        assert!(inbound.is_empty());
    }

    /// A store whose puts wait until the test lets them through.
    #[derive(Debug)]
    struct GatedStore {
        inner: kernel::host::store::MemoryStore,
        gate: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Store for GatedStore {
        fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, kernel::host::store::StoreError> {
            self.inner.get(key, max_bytes)
        }
        fn put(&self, key: &str, value: &[u8]) -> Result<(), kernel::host::store::StoreError> {
            self.gate.lock().unwrap().recv().unwrap();
            self.inner.put(key, value)
        }
    }

    fn response_ids(out: &mut OutboundQueue) -> Vec<i64> {
        let mut bytes = Vec::new();
        out.flush_to(&mut bytes).unwrap();
        let mut decoder = schema::FrameDecoder::new(usize::MAX);
        decoder
            .feed(&bytes)
            .filter_map(|item| match item {
                schema::codec::Decoded::Frame(ProtocolFrame::ResponseFrame(response)) => Some(response.request_id),
                _ => None,
            })
            .collect()
    }

    /// A flush whose write hangs does not hold up the loop: later requests are answered, and the
    /// flush is answered once its write completes and wakes the poll.
    #[test]
    fn a_slow_store_write_does_not_hold_up_other_requests() {
        let (release, gate) = std::sync::mpsc::channel();
        let store = Arc::new(GatedStore { inner: Default::default(), gate: std::sync::Mutex::new(gate) });
        let mut poll = Poll::new().unwrap();
        let options = StdioOptions { store: Some(store), ..StdioOptions::default() };
        let mut state = LoopState::new(options, &poll).unwrap();
        let primary = state.driver.primary();
        let flush = request(
            4,
            OwnershipScope::vm("conn-1", "session-1", "vm-1"),
            RequestPayload::PersistenceFlushRequest(PersistenceFlushRequest { key: "k".into(), payload_size_bytes: 0 }),
        );
        let read = fs_call(5, GuestFilesystemCallRequest::new(GuestFilesystemOperation::ReadFile, "/etc/hostname"));
        let setup = [authenticate(1), open_session(2, 0), create_vm(3), flush, read].concat();
        state.apply(Input::Bytes(primary, setup)).unwrap();
        assert_eq!(response_ids(&mut state.out), vec![1, 2, 3, 5], "the read is answered while the flush waits");
        assert!(state.effects_in_flight());

        release.send(()).unwrap();
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
        assert!(events.iter().any(|event| event.token() == EFFECT_DONE), "the completion wakes the loop");
        state.take_completions().unwrap();
        assert_eq!(response_ids(&mut state.out), vec![4]);
        assert!(!state.effects_in_flight());
    }
}
