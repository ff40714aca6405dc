//! Drivers of the sans-IO kernel.
//!
//! - [`stdio`]: the production single-threaded `mio` event loop over stdin/stdout.
//! - [`memory`]: an in-memory transport with a manual clock, for tests and tools.
//! - [`trace`]: the record/replay format: every input the kernel saw (bytes on each stream,
//!   clock readings, the entropy seed, every answer the host filesystem and the store gave)
//!   and every frame it produced.
//! - [`hostfs`] and [`store`]: the real I/O the kernel is given: host directories for
//!   `host_dir` mounts (confined) and the file-backed, atomic persistence store.
//!
//! Every driver (the stdio loop, the in-memory transport, the simulator, replay) feeds the
//! kernel through [`Driver`], which records what it feeds when asked to, so they cannot drift
//! apart and each of them can write a trace.

#![forbid(unsafe_code)]

pub mod egress;
pub mod hostfs;
pub mod memory;
pub mod node;
pub mod packages;
pub mod python;
pub mod stdio;
pub mod store;
pub mod trace;

/// `bytes` (a digest) as lowercase hex digits, as `sha256sum` writes it.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A directory for one test, named for it and this process, gone (a test makes it when it
/// wants it there).
#[cfg(test)]
pub(crate) fn fresh_test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("secure-exec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

use std::sync::Arc;

use kernel::host::effect::{Completion, Effect, EffectId};
use kernel::host::fs::HostFs;
use kernel::host::journal::{Journal, JournaledHostFs};
use kernel::host::package::PackageSource;
use kernel::syscalls::engine::GuestEngine;
use kernel::{Now, Output, Sidecar, SidecarConfig, StreamId};
use trace::{EffectPorts, TraceError, TraceWriter};

/// One input to the kernel, as recorded in traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes read from the host on a stream.
    Bytes(StreamId, Vec<u8>),
    /// Timers are due.
    Tick,
    /// The host closed its end of this stream, the process's only one: the stream's last frame
    /// is checked and every VM is disposed.
    Eof(StreamId),
    /// SIGTERM/SIGINT: every VM is disposed with `HOST_SHUTDOWN`.
    Shutdown,
    /// A connection closed (the simulator serves several).
    CloseStream(StreamId),
    /// An effect the kernel asked for ended.
    Completion(EffectId, Completion),
    /// What the simulator's guests do through the kernel's test doors.
    #[cfg(feature = "testing")]
    Act(trace::GuestAct),
}

/// The outside world the kernel is given.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    /// Host file access for `host_dir` mounts (none: they are refused).
    pub host_fs: Option<Arc<dyn HostFs>>,
    /// Whether there is a persistence store (without one, persistence requests are refused).
    /// The caller performs its effects: it takes them with [`Driver::take_effects`] and feeds
    /// each one's [`Input::Completion`] when it chooses (the stdio loop, from its store thread;
    /// the simulator, later; replay, from the trace).
    pub store: bool,
    /// Runs guest programs (none: `Execute` is refused).
    pub guest_engine: Option<Arc<dyn GuestEngine>>,
    /// Opens ConfigureVm's `software` packages (none: a request naming any is refused).
    pub packages: Option<Arc<dyn PackageSource>>,
    /// The Python interpreter (none: `runtime: PYTHON` is refused).
    pub python: Option<Arc<dyn kernel::host::python::PythonSource>>,
    /// Programs the sidecar provides to every VM (`node`).
    pub programs: kernel::host::programs::SidecarPrograms,
    /// Programs are compiled through effects the caller performs off its loop (see
    /// `kernel::dispatch::compile`); without, the engine compiles them on the loop.
    pub compile_effects: bool,
    /// The driver carries connections out of VMs (network effects).
    pub egress: bool,
    /// Guests' calls to `host_dir` mounts are effects the caller performs (see
    /// `kernel::dispatch::host_calls`); without, the kernel makes them within its step.
    pub host_call_effects: bool,
}

/// Feeds inputs to a kernel, collects its outputs and, when recording, writes both (and every
/// exchange with the ports) to a trace. The stdio loop, the in-memory transport, the simulator
/// and replay all go through here.
#[derive(Debug)]
pub struct Driver {
    sidecar: Sidecar,
    /// The stream [`Driver::new`] opened for a single host (stdio, memory).
    primary: StreamId,
    truncated_input: Option<usize>,
    recorder: Option<Recorder>,
    /// What [`Input::Act`] answered last (the simulator reads it back).
    #[cfg(feature = "testing")]
    act_outcome: Option<trace::ActOutcome>,
    /// Effects for the caller to perform.
    taken_effects: Vec<(EffectId, Effect)>,
}

/// A trace being written, and the journal of the ports it covers.
#[derive(Debug)]
struct Recorder {
    writer: TraceWriter,
    journal: Journal,
}

impl Driver {
    /// A kernel serving one host on one stream, not recorded.
    pub fn new(sidecar: Sidecar) -> Self {
        let mut driver = Self::bare(sidecar, None);
        // A fresh kernel always has room for its first stream.
        driver.primary = driver.sidecar.open_stream().unwrap_or(StreamId(1));
        driver
    }

    /// A kernel with `ports`, recording to `record` if given (the ports' answers are recorded
    /// too, so the trace replays without them). No stream is open yet.
    pub fn start(config: SidecarConfig, ports: Ports, record: Option<TraceWriter>) -> Result<Self, TraceError> {
        let Ports {
            mut host_fs,
            store,
            guest_engine,
            packages,
            python,
            programs,
            compile_effects,
            egress,
            host_call_effects,
        } = ports;
        let recorder = match record {
            None => None,
            Some(mut writer) => {
                let journal = Journal::recording();
                let effects = EffectPorts { compile: compile_effects, egress, host_calls: host_call_effects };
                writer.header(&config, host_fs.is_some(), store, effects)?;
                host_fs = host_fs
                    .map(|inner| Arc::new(JournaledHostFs::recording(inner, journal.clone())) as Arc<dyn HostFs>);
                Some(Recorder { writer, journal })
            }
        };
        let mut sidecar = Sidecar::new(config);
        if let Some(host_fs) = host_fs {
            sidecar = sidecar.with_host_fs(host_fs);
        }
        if store {
            sidecar = sidecar.with_store_effects();
        }
        if let Some(engine) = guest_engine {
            sidecar = sidecar.with_guest_engine(engine);
        }
        if let Some(python) = python {
            sidecar = sidecar.with_python(python);
        }
        if let Some(packages) = packages {
            sidecar = sidecar.with_packages(packages);
        }
        sidecar = sidecar.with_programs(programs);
        if compile_effects {
            sidecar = sidecar.with_compile_effects();
        }
        if egress {
            sidecar = sidecar.with_egress();
        }
        if host_call_effects {
            sidecar = sidecar.with_host_call_effects();
        }
        Ok(Self::bare(sidecar, recorder))
    }

    fn bare(sidecar: Sidecar, recorder: Option<Recorder>) -> Self {
        Self {
            sidecar,
            primary: StreamId(0),
            truncated_input: None,
            recorder,
            #[cfg(feature = "testing")]
            act_outcome: None,
            taken_effects: Vec::new(),
        }
    }

    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    pub fn sidecar_mut(&mut self) -> &mut Sidecar {
        &mut self.sidecar
    }

    /// The stream of the single host [`Driver::new`] serves (or the last [`Driver::open_stream`]
    /// opened).
    pub fn primary(&self) -> StreamId {
        self.primary
    }

    /// Opens a stream for a new host connection (`None`: the kernel has no room for one).
    pub fn open_stream(&mut self, now: Now) -> Result<Option<StreamId>, TraceError> {
        let stream = self.sidecar.open_stream();
        if let Some(stream) = stream {
            self.primary = stream;
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.writer.open_stream(stream, now)?;
            recorder.writer.flush()?;
        }
        Ok(stream)
    }

    /// Feeds one input at `now`; returns the frames it produced, in order. Effects the kernel
    /// asks for wait in [`take_effects`](Self::take_effects).
    pub fn apply(&mut self, input: &Input, now: Now) -> Result<Vec<Output>, TraceError> {
        self.perform(input, now);
        self.record_input(input, now)?;
        let outputs = self.drain();
        while let Some((id, effect)) = self.sidecar.poll_effect() {
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.writer.effect(id, &effect.summary(), now)?;
            }
            self.taken_effects.push((id, effect));
        }
        if let Some(recorder) = self.recorder.as_mut() {
            for output in &outputs {
                recorder.writer.output(output.stream, &output.bytes, now)?;
            }
            recorder.writer.flush()?;
        }
        Ok(outputs)
    }

    /// Effects for the caller to perform, in the order asked.
    pub fn take_effects(&mut self) -> Vec<(EffectId, Effect)> {
        std::mem::take(&mut self.taken_effects)
    }

    /// Records an input just performed, after the host filesystem's answers it was given:
    /// replay queues those, then feeds the input that asks for them.
    fn record_input(&mut self, input: &Input, now: Now) -> Result<(), TraceError> {
        let Some(recorder) = self.recorder.as_mut() else { return Ok(()) };
        for exchange in recorder.journal.take_recorded() {
            recorder.writer.exchange(&exchange, now)?;
        }
        recorder.writer.input(input, now)
    }

    fn perform(&mut self, input: &Input, now: Now) {
        match input {
            Input::Bytes(stream, bytes) => self.sidecar.handle_bytes(*stream, bytes, now),
            Input::Tick => self.sidecar.tick(now),
            Input::Eof(stream) => {
                if let Err(schema::FrameError::TruncatedFrame { actual }) =
                    self.sidecar.finish_stream_input(*stream, now)
                {
                    tracing::error!(buffered = actual, "host closed its end in the middle of a frame");
                    self.truncated_input = Some(actual);
                }
                self.sidecar.shutdown(now);
            }
            Input::Shutdown => self.sidecar.shutdown(now),
            Input::CloseStream(stream) => self.sidecar.close_stream(*stream, now),
            Input::Completion(id, completion) => self.sidecar.handle_completion(*id, completion.clone(), now),
            #[cfg(feature = "testing")]
            Input::Act(act) => self.act_outcome = Some(act.perform(&mut self.sidecar)),
        }
    }

    /// What the last [`Input::Act`] answered.
    #[cfg(feature = "testing")]
    pub fn take_act_outcome(&mut self) -> Option<trace::ActOutcome> {
        self.act_outcome.take()
    }

    /// Bytes of an incomplete frame left when the input ended, if any: the stream could not be
    /// framed to its end, so the process should exit non-zero.
    pub fn truncated_input(&self) -> Option<usize> {
        self.truncated_input
    }

    fn drain(&mut self) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(output) = self.sidecar.poll_output() {
            outputs.push(output);
        }
        outputs
    }
}
