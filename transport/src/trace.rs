//! Trace files: everything needed to replay a sidecar run bit for bit.
//!
//! A trace records every input the kernel was given, each with the clock reading it was given
//! with and the stream it belongs to: host bytes (the stdio driver feeds them one frame at a
//! time), streams opened and closed, timer ticks, end of input, shutdown, the completion of every
//! effect it asked for (the store's answers), the answer of every call it made to the host
//! filesystem (`host_dir` mounts), and (simulator runs) what its guests did through the
//! kernel's test doors. It also records every output: the frames and the effects. Replaying
//! builds a fresh kernel from the header (same seed, same limits, the same ports present), feeds
//! it the inputs and completions, answers its host filesystem calls from the trace (so no host
//! directory and no store need exist), and compares its frames and effects with the recorded
//! ones.
//!
//! # Format (version 4, all integers big-endian)
//!
//! ```text
//! header:  magic "SXTRACE\0" · version u16 · entropy_seed u64 · max_frame_bytes u32 ·
//!          has_token u8 · token_len u32 · token · sidecar_id_len u32 · sidecar_id ·
//!          max_memory_bytes u64 · ports u8 (1: host filesystem, 2: store, 4: compile effects,
//!          8: egress, 16: guests' host filesystem calls as effects) ·
//!          injected fault u8 (0 none, 1 drop the n-th response, 2 acknowledge a failed flush) ·
//!          fault argument u64
//! record:  kind u8 · monotonic_ms u64 · wall_ms u64 · stream u64 · len u32 · payload[len]
//! kinds:   1 input bytes · 2 tick · 3 end of input · 4 shutdown · 5 output frame (prefix
//!          included) · 6 stream opened (stream 0: refused) · 7 stream closed ·
//!          8 host filesystem exchange (BARE `PortExchange`) · 9 guest act (BARE `GuestAct`) ·
//!          10 effect completion (BARE effect id u64 and `Completion`) ·
//!          11 effect asked for (BARE effect id u64 and `EffectSummary`)
//! ```
//!
//! A host filesystem exchange record precedes the input during which the kernel made the call:
//! replay queues it, then feeds the input. Version 4 added ports bit 16 and its effects
//! (`EffectSummary::HostCall`, `Completion::HostCall`); a version 3 trace is the same without
//! them and still replays. Version 2 had no streams, port exchanges or acts (a run that
//! used a `host_dir` mount or the store replayed only up to its first such request); version 1
//! also lacked `max_memory_bytes`. Both are refused with [`TraceError::Version`].

use crate::{Driver, Input, Ports};
use kernel::host::effect::{Completion, EffectId, EffectSummary};
use kernel::host::journal::{Journal, JournaledHostFs, PortExchange};
use kernel::syscalls::engine::GuestEngine;
use kernel::{Now, SidecarConfig, StreamId};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"SXTRACE\0";
pub const TRACE_VERSION: u16 = 4;
/// The oldest version this build still replays: version 3 lacks only host call effects.
pub const OLDEST_TRACE_VERSION: u16 = 3;
/// Upper bound of one record's payload: a frame at the largest allowed size, or a piece of one,
/// or a port's answer (a host file read is bounded by the VM's 64 MiB file limit).
/// Anything larger is a corrupt trace, refused before allocating.
pub const MAX_RECORD_BYTES: usize = 80 * 1024 * 1024;
/// Bound of the token and sidecar id strings in the header.
const MAX_HEADER_STRING_BYTES: usize = 4096;
const PORT_HOST_FS: u8 = 1;
const PORT_STORE: u8 = 2;
const PORT_COMPILE_EFFECTS: u8 = 4;
const PORT_EGRESS: u8 = 8;
const PORT_HOST_CALL_EFFECTS: u8 = 16;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace I/O: {0}")]
    Io(#[from] io::Error),
    #[error("not a sidecar trace (bad magic)")]
    BadMagic,
    #[error("trace version {found} is not supported (this build reads versions {OLDEST_TRACE_VERSION} to {TRACE_VERSION}; record the run again)")]
    Version { found: u16 },
    #[error("corrupt trace: {0}")]
    Corrupt(String),
    #[error("the trace was recorded with an injected fault, which only test builds have")]
    NeedsTestBuild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Input = 1,
    Tick = 2,
    Eof = 3,
    Shutdown = 4,
    Output = 5,
    OpenStream = 6,
    CloseStream = 7,
    Exchange = 8,
    #[cfg_attr(not(feature = "testing"), allow(dead_code, reason = "acts are written by test builds only"))]
    Act = 9,
    Completion = 10,
    Effect = 11,
}

/// A record read back from a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Input(Input, Now),
    /// A stream was opened and got this id (`None`: the kernel refused).
    OpenStream(Option<StreamId>, Now),
    Exchange(PortExchange),
    Output(StreamId, Vec<u8>, Now),
    /// An effect the kernel asked for.
    Effect(EffectId, EffectSummary),
}

/// What the simulator's guests do through the kernel's test doors (see `Sidecar`'s
/// `invoke_host_callback`, `check_permission`, `take_*_outcome`).
#[cfg(feature = "testing")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GuestAct {
    InvokeHostCallback {
        vm_id: String,
        callback: String,
        input: String,
    },
    /// A guest write under an ASK rule.
    CheckFsWrite {
        vm_id: String,
        path: String,
    },
    TakeCallbackOutcome {
        invocation: String,
    },
    TakePromptOutcome {
        ticket: u64,
    },
}

/// What a [`GuestAct`] answered.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActOutcome {
    Invocation(Result<String, kernel::Rejection>),
    Permission(Result<kernel::vm::PermissionCheck, kernel::Rejection>),
    CallbackOutcome(Option<kernel::dispatch::HostCallbackOutcome>),
    PromptOutcome(Option<kernel::vm::PromptOutcome>),
}

#[cfg(feature = "testing")]
impl GuestAct {
    pub(crate) fn perform(&self, sidecar: &mut kernel::Sidecar) -> ActOutcome {
        match self {
            Self::InvokeHostCallback { vm_id, callback, input } => {
                ActOutcome::Invocation(sidecar.invoke_host_callback(vm_id, callback, input))
            }
            Self::CheckFsWrite { vm_id, path } => ActOutcome::Permission(sidecar.check_permission(
                vm_id,
                kernel::policy::permissions::Capability::FsWrite,
                path,
            )),
            Self::TakeCallbackOutcome { invocation } => {
                ActOutcome::CallbackOutcome(sidecar.take_host_callback_outcome(invocation))
            }
            Self::TakePromptOutcome { ticket } => {
                ActOutcome::PromptOutcome(sidecar.take_prompt_outcome(kernel::ids::PromptTicket(*ticket)))
            }
        }
    }
}

/// Appends records to a trace.
#[derive(Debug)]
pub struct TraceWriter {
    out: BufWriter<Box<dyn Sink>>,
}

/// Where a trace goes: a file, or memory in tests.
pub trait Sink: Write + std::fmt::Debug + Send {}
impl<T: Write + std::fmt::Debug + Send> Sink for T {}

impl TraceWriter {
    pub fn create(path: &Path) -> Result<Self, TraceError> {
        Ok(Self::new(Box::new(File::create(path)?)))
    }

    pub fn new(out: Box<dyn Sink>) -> Self {
        Self { out: BufWriter::new(out) }
    }

    /// The header: the kernel's config and which ports it has.
    pub(crate) fn header(
        &mut self,
        config: &SidecarConfig,
        host_fs: bool,
        store: bool,
        effects: EffectPorts,
    ) -> Result<(), TraceError> {
        let out = &mut self.out;
        out.write_all(MAGIC)?;
        out.write_all(&TRACE_VERSION.to_be_bytes())?;
        out.write_all(&config.entropy_seed.to_be_bytes())?;
        let max_frame = u32::try_from(config.max_frame_bytes).unwrap_or(u32::MAX);
        out.write_all(&max_frame.to_be_bytes())?;
        out.write_all(&[u8::from(config.expected_auth_token.is_some())])?;
        write_string(out, config.expected_auth_token.as_deref().unwrap_or(""))?;
        write_string(out, &config.sidecar_id)?;
        out.write_all(&config.max_memory_bytes.to_be_bytes())?;
        let ports = if host_fs { PORT_HOST_FS } else { 0 }
            | if store { PORT_STORE } else { 0 }
            | if effects.compile { PORT_COMPILE_EFFECTS } else { 0 }
            | if effects.egress { PORT_EGRESS } else { 0 }
            | if effects.host_calls { PORT_HOST_CALL_EFFECTS } else { 0 };
        out.write_all(&[ports])?;
        let (fault, argument) = injected_fault(config);
        out.write_all(&[fault])?;
        out.write_all(&argument.to_be_bytes())?;
        Ok(())
    }

    pub(crate) fn input(&mut self, input: &Input, now: Now) -> Result<(), TraceError> {
        match input {
            Input::Bytes(stream, bytes) => self.record(Kind::Input, now, *stream, bytes),
            Input::Tick => self.record(Kind::Tick, now, StreamId(0), &[]),
            Input::Eof(stream) => self.record(Kind::Eof, now, *stream, &[]),
            Input::Shutdown => self.record(Kind::Shutdown, now, StreamId(0), &[]),
            Input::CloseStream(stream) => self.record(Kind::CloseStream, now, *stream, &[]),
            Input::Completion(id, completion) => {
                let payload =
                    serde_bare::to_vec(&(id.0, completion)).map_err(|error| TraceError::Corrupt(error.to_string()))?;
                self.record(Kind::Completion, now, StreamId(0), &payload)
            }
            #[cfg(feature = "testing")]
            Input::Act(act) => {
                let payload = serde_bare::to_vec(act).map_err(|error| TraceError::Corrupt(error.to_string()))?;
                self.record(Kind::Act, now, StreamId(0), &payload)
            }
        }
    }

    pub(crate) fn open_stream(&mut self, stream: Option<StreamId>, now: Now) -> Result<(), TraceError> {
        self.record(Kind::OpenStream, now, stream.unwrap_or(StreamId(0)), &[])
    }

    pub(crate) fn exchange(&mut self, exchange: &PortExchange, now: Now) -> Result<(), TraceError> {
        let payload = serde_bare::to_vec(exchange).map_err(|error| TraceError::Corrupt(error.to_string()))?;
        self.record(Kind::Exchange, now, StreamId(0), &payload)
    }

    pub(crate) fn effect(&mut self, id: EffectId, effect: &EffectSummary, now: Now) -> Result<(), TraceError> {
        let payload = serde_bare::to_vec(&(id.0, effect)).map_err(|error| TraceError::Corrupt(error.to_string()))?;
        self.record(Kind::Effect, now, StreamId(0), &payload)
    }

    pub(crate) fn output(&mut self, stream: StreamId, frame: &[u8], now: Now) -> Result<(), TraceError> {
        self.record(Kind::Output, now, stream, frame)
    }

    pub fn flush(&mut self) -> Result<(), TraceError> {
        Ok(self.out.flush()?)
    }

    fn record(&mut self, kind: Kind, now: Now, stream: StreamId, payload: &[u8]) -> Result<(), TraceError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(TraceError::Corrupt(format!("a record of {} bytes exceeds {MAX_RECORD_BYTES}", payload.len())));
        }
        let len = u32::try_from(payload.len()).map_err(|_| TraceError::Corrupt("record too large".into()))?;
        self.out.write_all(&[kind as u8])?;
        self.out.write_all(&now.monotonic_ms.to_be_bytes())?;
        self.out.write_all(&now.wall_ms.to_be_bytes())?;
        self.out.write_all(&stream.0.to_be_bytes())?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(payload)?;
        Ok(())
    }
}

#[cfg(feature = "testing")]
fn injected_fault(config: &SidecarConfig) -> (u8, u64) {
    match config.injected_fault {
        None => (0, 0),
        Some(kernel::InjectedFault::DropNthResponse(n)) => (1, n),
        Some(kernel::InjectedFault::AcknowledgeFailedFlush) => (2, 0),
    }
}

#[cfg(not(feature = "testing"))]
fn injected_fault(_config: &SidecarConfig) -> (u8, u64) {
    (0, 0)
}

#[cfg(feature = "testing")]
fn with_injected_fault(config: SidecarConfig, fault: u8, argument: u64) -> Result<SidecarConfig, TraceError> {
    let injected_fault = match fault {
        0 => None,
        1 => Some(kernel::InjectedFault::DropNthResponse(argument)),
        2 => Some(kernel::InjectedFault::AcknowledgeFailedFlush),
        other => return Err(TraceError::Corrupt(format!("unknown injected fault {other}"))),
    };
    Ok(SidecarConfig { injected_fault, ..config })
}

#[cfg(not(feature = "testing"))]
fn with_injected_fault(config: SidecarConfig, fault: u8, _argument: u64) -> Result<SidecarConfig, TraceError> {
    match fault {
        0 => Ok(config),
        _ => Err(TraceError::NeedsTestBuild),
    }
}

fn write_string(out: &mut impl Write, value: &str) -> io::Result<()> {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.write_all(&len.to_be_bytes())?;
    out.write_all(value.as_bytes())
}

/// A trace opened for reading.
#[derive(Debug)]
pub struct TraceReader<R> {
    input: R,
    pub config: SidecarConfig,
    /// Whether the recorded kernel had a host filesystem and a store.
    pub host_fs: bool,
    pub store: bool,
    pub compile_effects: bool,
    /// Whether the recorded kernel's driver carried connections out of VMs.
    pub egress: bool,
    /// Whether the recorded kernel's guests made their host directory calls as effects.
    pub host_call_effects: bool,
}

/// Which kinds of effect a recorded kernel asked its driver for (beyond the store's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EffectPorts {
    pub compile: bool,
    pub egress: bool,
    pub host_calls: bool,
}

impl TraceReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        Self::new(BufReader::new(File::open(path)?))
    }
}

impl<R: Read> TraceReader<R> {
    pub fn new(mut input: R) -> Result<Self, TraceError> {
        let mut magic = [0; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(TraceError::BadMagic);
        }
        let version = u16::from_be_bytes(read_array(&mut input)?);
        if !(OLDEST_TRACE_VERSION..=TRACE_VERSION).contains(&version) {
            return Err(TraceError::Version { found: version });
        }
        let entropy_seed = u64::from_be_bytes(read_array(&mut input)?);
        let max_frame_bytes = usize::try_from(u32::from_be_bytes(read_array(&mut input)?))
            .map_err(|_| TraceError::Corrupt("max frame bytes".into()))?;
        let [has_token] = read_array::<1>(&mut input)?;
        let token = read_string(&mut input)?;
        let sidecar_id = read_string(&mut input)?;
        let max_memory_bytes = u64::from_be_bytes(read_array(&mut input)?);
        let [ports] = read_array::<1>(&mut input)?;
        if ports & !(PORT_HOST_FS | PORT_STORE | PORT_COMPILE_EFFECTS | PORT_EGRESS | PORT_HOST_CALL_EFFECTS) != 0 {
            return Err(TraceError::Corrupt(format!("unknown ports {ports:#x}")));
        }
        let [fault] = read_array::<1>(&mut input)?;
        let fault_argument = u64::from_be_bytes(read_array(&mut input)?);
        // The rest is the kernel's `testing` fields, set just below when this build has them.
        #[allow(clippy::needless_update, reason = "the kernel's `testing` feature adds fields")]
        let config = SidecarConfig {
            sidecar_id,
            expected_auth_token: (has_token != 0).then_some(token),
            max_frame_bytes,
            entropy_seed,
            max_memory_bytes,
            ..SidecarConfig::default()
        };
        let config = with_injected_fault(config, fault, fault_argument)?;
        Ok(Self {
            input,
            config,
            host_fs: ports & PORT_HOST_FS != 0,
            store: ports & PORT_STORE != 0,
            compile_effects: ports & PORT_COMPILE_EFFECTS != 0,
            egress: ports & PORT_EGRESS != 0,
            host_call_effects: ports & PORT_HOST_CALL_EFFECTS != 0,
        })
    }

    /// The next record, or `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        let mut kind = [0u8; 1];
        if self.input.read(&mut kind)? == 0 {
            return Ok(None);
        }
        let monotonic_ms = u64::from_be_bytes(read_array(&mut self.input)?);
        let wall_ms = u64::from_be_bytes(read_array(&mut self.input)?);
        let stream = StreamId(u64::from_be_bytes(read_array(&mut self.input)?));
        let len = usize::try_from(u32::from_be_bytes(read_array(&mut self.input)?)).unwrap_or(usize::MAX);
        if len > MAX_RECORD_BYTES {
            return Err(TraceError::Corrupt(format!("record of {len} bytes exceeds {MAX_RECORD_BYTES}")));
        }
        // Read through `take`, so a record claiming more bytes than the file holds costs only
        // what is there, not an allocation of the claimed size.
        let mut payload = Vec::new();
        (&mut self.input).take(u64::try_from(len).unwrap_or(u64::MAX)).read_to_end(&mut payload)?;
        if payload.len() != len {
            return Err(TraceError::Corrupt(format!("a record of {len} bytes ends after {}", payload.len())));
        }
        let now = Now { monotonic_ms, wall_ms };
        let record = match kind {
            [1] => Record::Input(Input::Bytes(stream, payload), now),
            [2] => Record::Input(Input::Tick, now),
            [3] => Record::Input(Input::Eof(stream), now),
            [4] => Record::Input(Input::Shutdown, now),
            [5] => Record::Output(stream, payload, now),
            [6] => Record::OpenStream((stream.0 != 0).then_some(stream), now),
            [7] => Record::Input(Input::CloseStream(stream), now),
            [8] => Record::Exchange(decode_bare(&payload, "port exchange")?),
            [9] => act_record(&payload, now)?,
            [10] => {
                let (id, completion): (u64, Completion) = decode_bare(&payload, "effect completion")?;
                Record::Input(Input::Completion(EffectId(id), completion), now)
            }
            [11] => {
                let (id, effect): (u64, EffectSummary) = decode_bare(&payload, "effect")?;
                Record::Effect(EffectId(id), effect)
            }
            [other] => return Err(TraceError::Corrupt(format!("unknown record kind {other}"))),
        };
        Ok(Some(record))
    }
}

fn decode_bare<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, TraceError> {
    serde_bare::from_slice(payload).map_err(|error| TraceError::Corrupt(format!("{what}: {error}")))
}

#[cfg(feature = "testing")]
fn act_record(payload: &[u8], now: Now) -> Result<Record, TraceError> {
    Ok(Record::Input(Input::Act(decode_bare(payload, "guest act")?), now))
}

#[cfg(not(feature = "testing"))]
fn act_record(_payload: &[u8], _now: Now) -> Result<Record, TraceError> {
    Err(TraceError::NeedsTestBuild)
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_string(input: &mut impl Read) -> Result<String, TraceError> {
    let len = usize::try_from(u32::from_be_bytes(read_array(input)?)).unwrap_or(usize::MAX);
    if len > MAX_HEADER_STRING_BYTES {
        return Err(TraceError::Corrupt(format!("header string of {len} bytes")));
    }
    let mut bytes = vec![0; len];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|_| TraceError::Corrupt("header string is not UTF-8".into()))
}

/// Where a replay first differed from its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the output frame (0-based, in production order) the replay had reached.
    pub index: usize,
    pub expected: Option<(StreamId, Vec<u8>)>,
    pub actual: Option<(StreamId, Vec<u8>)>,
    /// What else differed: a port call the recording did not make, a stream numbered otherwise.
    pub detail: Option<String>,
}

impl Divergence {
    fn at(index: usize, detail: String) -> Self {
        Self { index, expected: None, actual: None, detail: Some(detail) }
    }

    /// A human-readable account, with both frames decoded where possible.
    pub fn describe(&self) -> String {
        if let Some(detail) = &self.detail {
            return format!("after output frame {}: {detail}", self.index);
        }
        format!(
            "output frame {} differs\n  expected: {}\n  actual:   {}",
            self.index,
            describe_frame(self.expected.as_ref()),
            describe_frame(self.actual.as_ref())
        )
    }
}

fn describe_frame(output: Option<&(StreamId, Vec<u8>)>) -> String {
    match output {
        None => "(no frame)".to_owned(),
        Some((stream, bytes)) => match schema::decode_frame(bytes, usize::MAX) {
            Ok(frame) => format!("stream {}: {} bytes {frame:?}", stream.0, bytes.len()),
            Err(error) => format!("stream {}: {} undecodable bytes ({error})", stream.0, bytes.len()),
        },
    }
}

/// The outcome of a replay that matched its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub inputs: usize,
    pub outputs: usize,
    /// Host filesystem calls answered from the trace.
    pub exchanges: usize,
    /// Effects the replayed kernel asked for, each matched with the recording's.
    pub effects: usize,
}

/// Replays a trace into a fresh kernel and compares every output frame.
pub fn replay<R: Read>(reader: TraceReader<R>) -> Result<Result<ReplayReport, Divergence>, TraceError> {
    replay_with(reader, None)
}

/// [`replay`] with a guest engine, for traces of runs that executed processes: guests are
/// deterministic (fuel slices, the recorded clock), so they replay to the same frames.
pub fn replay_with<R: Read>(
    mut reader: TraceReader<R>,
    guest_engine: Option<Arc<dyn GuestEngine>>,
) -> Result<Result<ReplayReport, Divergence>, TraceError> {
    let journal = Journal::playback();
    let ports = Ports {
        host_fs: reader.host_fs.then(|| Arc::new(JournaledHostFs::playback(journal.clone())) as _),
        store: reader.store,
        guest_engine,
        // Packages are installed software, not recorded data: replay opens the same roots.
        packages: Some(Arc::new(crate::packages::OsPackages::new())),
        // So is the Python interpreter: replay reads the same install.
        python: Some(Arc::new(crate::python::OsPython::new(crate::python::OsPython::default_dir()))),
        // And the programs the sidecar provides (`node`).
        programs: crate::node::programs(&crate::node::default_dir()).unwrap_or_default(),
        // The recorded completions say when each compilation ended; the programs compile
        // when the kernel then loads them.
        compile_effects: reader.compile_effects,
        // The recorded completions say what every connection did: nothing is sent anywhere.
        egress: reader.egress,
        // And what every host directory answered: no directory is needed.
        host_call_effects: reader.host_call_effects,
    };
    let mut driver = Driver::start(reader.config.clone(), ports, None)?;
    let mut produced = std::collections::VecDeque::new();
    let mut asked = std::collections::VecDeque::new();
    let mut report = ReplayReport { inputs: 0, outputs: 0, exchanges: 0, effects: 0 };
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Exchange(exchange) => {
                if !journal.push(exchange) {
                    return Err(TraceError::Corrupt("too many port exchanges for one input".into()));
                }
                report.exchanges += 1;
            }
            Record::OpenStream(expected, now) => {
                let opened = driver.open_stream(now)?;
                if opened != expected {
                    let detail = format!("stream opened as {opened:?}, recorded {expected:?}");
                    return Ok(Err(Divergence::at(report.outputs, detail)));
                }
            }
            Record::Input(input, now) => {
                report.inputs += 1;
                let outputs = driver.apply(&input, now)?;
                if let Some(detail) = journal.take_divergence() {
                    return Ok(Err(Divergence::at(report.outputs, detail)));
                }
                if journal.unused() > 0 {
                    let detail = format!("{} recorded port calls were not made", journal.unused());
                    return Ok(Err(Divergence::at(report.outputs, detail)));
                }
                produced.extend(outputs.into_iter().map(|output| (output.stream, output.bytes)));
                asked.extend(driver.take_effects().into_iter().map(|(id, effect)| (id, effect.summary())));
            }
            Record::Effect(id, expected) => {
                let actual = asked.pop_front();
                if actual.as_ref() != Some(&(id, expected.clone())) {
                    let detail = format!("effect {} asked as {actual:?}, recorded {expected:?}", id.0);
                    return Ok(Err(Divergence::at(report.outputs, detail)));
                }
                report.effects += 1;
            }
            Record::Output(stream, expected, _) => {
                let actual = produced.pop_front();
                let expected = (stream, expected);
                if actual.as_ref() != Some(&expected) {
                    return Ok(Err(Divergence {
                        index: report.outputs,
                        expected: Some(expected),
                        actual,
                        detail: None,
                    }));
                }
                report.outputs += 1;
            }
        }
    }
    if let Some(extra) = produced.pop_front() {
        return Ok(Err(Divergence { index: report.outputs, expected: None, actual: Some(extra), detail: None }));
    }
    if let Some((id, effect)) = asked.pop_front() {
        let detail = format!("effect {} ({effect:?}) was not in the recording", id.0);
        return Ok(Err(Divergence::at(report.outputs, detail)));
    }
    Ok(Ok(report))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;

    fn header(token: &str) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&TRACE_VERSION.to_be_bytes());
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&(1u32 << 20).to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&u32::try_from(token.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(token.as_bytes());
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(b"id");
        bytes.extend_from_slice(&(64u64 << 20).to_be_bytes());
        bytes.push(PORT_STORE);
        bytes.push(0);
        bytes.extend_from_slice(&0u64.to_be_bytes());
        bytes
    }

    #[test]
    fn header_round_trips_the_config() {
        let bytes = header("secret");
        let reader = TraceReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.config.entropy_seed, 7);
        assert_eq!(reader.config.max_frame_bytes, 1 << 20);
        assert_eq!(reader.config.expected_auth_token.as_deref(), Some("secret"));
        assert_eq!(reader.config.sidecar_id, "id");
        assert_eq!(reader.config.max_memory_bytes, 64 << 20);
        assert!(reader.store && !reader.host_fs);
    }

    #[test]
    fn older_traces_are_refused_with_their_version() {
        for version in [1u16, 2] {
            let mut old = header("");
            old[8..10].copy_from_slice(&version.to_be_bytes());
            match TraceReader::new(old.as_slice()) {
                Err(error @ TraceError::Version { found }) => {
                    assert_eq!(found, version);
                    assert!(error.to_string().contains("record the run again"), "{error}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn corrupt_traces_are_refused_before_allocating() {
        let mut bad_magic = header("");
        bad_magic[0] = b'X';
        assert!(matches!(TraceReader::new(bad_magic.as_slice()), Err(TraceError::BadMagic)));

        let long_token = "t".repeat(MAX_HEADER_STRING_BYTES + 1);
        assert!(matches!(TraceReader::new(header(&long_token).as_slice()), Err(TraceError::Corrupt(_))));

        let mut huge_record = header("");
        huge_record.push(1);
        huge_record.extend_from_slice(&[0; 24]);
        huge_record.extend_from_slice(&(u32::try_from(MAX_RECORD_BYTES).unwrap() + 1).to_be_bytes());
        let mut reader = TraceReader::new(huge_record.as_slice()).unwrap();
        match reader.next_record() {
            Err(TraceError::Corrupt(message)) => assert!(message.contains("exceeds"), "{message}"),
            other => panic!("{other:?}"),
        }

        let mut garbled_exchange = header("");
        garbled_exchange.push(8);
        garbled_exchange.extend_from_slice(&[0; 24]);
        garbled_exchange.extend_from_slice(&3u32.to_be_bytes());
        garbled_exchange.extend_from_slice(&[0xff, 0xff, 0xff]);
        let mut reader = TraceReader::new(garbled_exchange.as_slice()).unwrap();
        assert!(matches!(reader.next_record(), Err(TraceError::Corrupt(_))));

        // A record that claims 64 MiB in a file that holds 3 bytes.
        let mut short = header("");
        short.push(1);
        short.extend_from_slice(&[0; 24]);
        short.extend_from_slice(&(64u32 << 20).to_be_bytes());
        short.extend_from_slice(b"abc");
        let mut reader = TraceReader::new(short.as_slice()).unwrap();
        match reader.next_record() {
            Err(TraceError::Corrupt(message)) => assert!(message.contains("ends after 3"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
