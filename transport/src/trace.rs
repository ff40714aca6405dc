//! Trace files: everything needed to replay a sidecar run bit for bit.
//!
//! A trace records the kernel's inputs (host bytes as they were fed to it, which the stdio
//! driver does one frame at a time; timer ticks, end of input, shutdown), each with the clock
//! reading the kernel was given, and every frame the kernel produced. Replaying feeds the inputs to a fresh kernel built from the header (same seed,
//! same limits) and compares its frames with the recorded ones.
//!
//! Host files (`host_dir` mounts, host filesystem calls) and the persistence store are outside
//! the kernel and not recorded: a replay runs without them, so a run that used them replays
//! only up to its first such request.
//!
//! # Format (version 2, all integers big-endian)
//!
//! ```text
//! header:  magic "SXTRACE\0" · version u16 · entropy_seed u64 · max_frame_bytes u32 ·
//!          has_token u8 · token_len u32 · token · sidecar_id_len u32 · sidecar_id ·
//!          max_memory_bytes u64
//! record:  kind u8 · monotonic_ms u64 · wall_ms u64 · len u32 · payload[len]
//! kinds:   1 input bytes · 2 tick · 3 end of input · 4 shutdown · 5 output frame (prefix included)
//! ```
//!
//! Version 1 lacked `max_memory_bytes` (the budget decides whether a `CreateVm` is refused, so a
//! replay needs it); a version 1 trace is refused with [`TraceError::Version`].

use crate::{Driver, Input};
use kernel::{Now, Sidecar, SidecarConfig};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"SXTRACE\0";
pub const TRACE_VERSION: u16 = 2;
/// Upper bound of one record's payload: a frame at the largest allowed size, or a piece of one.
/// Anything larger is a corrupt trace, refused before allocating.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// Bound of the token and sidecar id strings in the header.
const MAX_HEADER_STRING_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace I/O: {0}")]
    Io(#[from] io::Error),
    #[error("not a sidecar trace (bad magic)")]
    BadMagic,
    #[error("trace version {found} is not supported (expected {TRACE_VERSION})")]
    Version { found: u16 },
    #[error("corrupt trace: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Input = 1,
    Tick = 2,
    Eof = 3,
    Shutdown = 4,
    Output = 5,
}

/// A record read back from a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Input(Input, Now),
    Output(Vec<u8>, Now),
}

/// Appends records to a trace file.
#[derive(Debug)]
pub struct TraceWriter {
    out: BufWriter<File>,
}

impl TraceWriter {
    pub fn create(path: &Path, config: &SidecarConfig) -> Result<Self, TraceError> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(MAGIC)?;
        out.write_all(&TRACE_VERSION.to_be_bytes())?;
        out.write_all(&config.entropy_seed.to_be_bytes())?;
        let max_frame = u32::try_from(config.max_frame_bytes).unwrap_or(u32::MAX);
        out.write_all(&max_frame.to_be_bytes())?;
        out.write_all(&[u8::from(config.expected_auth_token.is_some())])?;
        write_string(&mut out, config.expected_auth_token.as_deref().unwrap_or(""))?;
        write_string(&mut out, &config.sidecar_id)?;
        out.write_all(&config.max_memory_bytes.to_be_bytes())?;
        Ok(Self { out })
    }

    pub fn input(&mut self, input: &Input, now: Now) -> Result<(), TraceError> {
        let (kind, payload): (Kind, &[u8]) = match input {
            Input::Bytes(bytes) => (Kind::Input, bytes),
            Input::Tick => (Kind::Tick, &[]),
            Input::Eof => (Kind::Eof, &[]),
            Input::Shutdown => (Kind::Shutdown, &[]),
        };
        self.record(kind, now, payload)
    }

    pub fn output(&mut self, frame: &[u8], now: Now) -> Result<(), TraceError> {
        self.record(Kind::Output, now, frame)
    }

    pub fn flush(&mut self) -> Result<(), TraceError> {
        Ok(self.out.flush()?)
    }

    fn record(&mut self, kind: Kind, now: Now, payload: &[u8]) -> Result<(), TraceError> {
        let len = u32::try_from(payload.len()).map_err(|_| TraceError::Corrupt("record too large".into()))?;
        self.out.write_all(&[kind as u8])?;
        self.out.write_all(&now.monotonic_ms.to_be_bytes())?;
        self.out.write_all(&now.wall_ms.to_be_bytes())?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(payload)?;
        Ok(())
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
        if version != TRACE_VERSION {
            return Err(TraceError::Version { found: version });
        }
        let entropy_seed = u64::from_be_bytes(read_array(&mut input)?);
        let max_frame_bytes = usize::try_from(u32::from_be_bytes(read_array(&mut input)?))
            .map_err(|_| TraceError::Corrupt("max frame bytes".into()))?;
        let [has_token] = read_array::<1>(&mut input)?;
        let token = read_string(&mut input)?;
        let sidecar_id = read_string(&mut input)?;
        let max_memory_bytes = u64::from_be_bytes(read_array(&mut input)?);
        // The rest is the kernel's `testing` fields (an injected fault), which traces never
        // record; without that feature every field is already named.
        #[allow(clippy::needless_update, reason = "the kernel's `testing` feature adds fields")]
        let config = SidecarConfig {
            sidecar_id,
            expected_auth_token: (has_token != 0).then_some(token),
            max_frame_bytes,
            entropy_seed,
            max_memory_bytes,
            ..SidecarConfig::default()
        };
        Ok(Self { input, config })
    }

    /// The next record, or `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        let mut kind = [0u8; 1];
        if self.input.read(&mut kind)? == 0 {
            return Ok(None);
        }
        let monotonic_ms = u64::from_be_bytes(read_array(&mut self.input)?);
        let wall_ms = u64::from_be_bytes(read_array(&mut self.input)?);
        let len = usize::try_from(u32::from_be_bytes(read_array(&mut self.input)?)).unwrap_or(usize::MAX);
        if len > MAX_RECORD_BYTES {
            return Err(TraceError::Corrupt(format!("record of {len} bytes exceeds {MAX_RECORD_BYTES}")));
        }
        let mut payload = vec![0; len];
        self.input.read_exact(&mut payload)?;
        let now = Now { monotonic_ms, wall_ms };
        let record = match kind {
            [1] => Record::Input(Input::Bytes(payload), now),
            [2] => Record::Input(Input::Tick, now),
            [3] => Record::Input(Input::Eof, now),
            [4] => Record::Input(Input::Shutdown, now),
            [5] => Record::Output(payload, now),
            [other] => return Err(TraceError::Corrupt(format!("unknown record kind {other}"))),
        };
        Ok(Some(record))
    }
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
    /// Index of the output frame (0-based, in production order).
    pub index: usize,
    pub expected: Option<Vec<u8>>,
    pub actual: Option<Vec<u8>>,
}

impl Divergence {
    /// A human-readable account, with both frames decoded where possible.
    pub fn describe(&self) -> String {
        format!(
            "output frame {} differs\n  expected: {}\n  actual:   {}",
            self.index,
            describe_frame(self.expected.as_deref()),
            describe_frame(self.actual.as_deref())
        )
    }
}

fn describe_frame(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "(no frame)".to_owned(),
        Some(bytes) => match schema::decode_frame(bytes, usize::MAX) {
            Ok(frame) => format!("{} bytes {frame:?}", bytes.len()),
            Err(error) => format!("{} undecodable bytes ({error})", bytes.len()),
        },
    }
}

/// The outcome of a replay that matched its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub inputs: usize,
    pub outputs: usize,
}

/// Replays a trace into a fresh kernel and compares every output frame.
pub fn replay<R: Read>(reader: TraceReader<R>) -> Result<Result<ReplayReport, Divergence>, TraceError> {
    replay_with(reader, None)
}

/// [`replay`] with a guest engine, for traces of runs that executed processes: guests are
/// deterministic (fuel slices, the recorded clock), so they replay to the same frames.
pub fn replay_with<R: Read>(
    mut reader: TraceReader<R>,
    guest_engine: Option<std::sync::Arc<dyn kernel::syscalls::engine::GuestEngine>>,
) -> Result<Result<ReplayReport, Divergence>, TraceError> {
    let mut sidecar = Sidecar::new(reader.config.clone());
    if let Some(engine) = guest_engine {
        sidecar = sidecar.with_guest_engine(engine);
    }
    let mut driver = Driver::new(sidecar);
    let mut produced: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let (mut inputs, mut outputs) = (0, 0);
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Input(input, now) => {
                inputs += 1;
                produced.extend(driver.apply(&input, now));
            }
            Record::Output(expected, _) => {
                let actual = produced.pop_front();
                if actual.as_deref() != Some(expected.as_slice()) {
                    return Ok(Err(Divergence { index: outputs, expected: Some(expected), actual }));
                }
                outputs += 1;
            }
        }
    }
    if let Some(extra) = produced.pop_front() {
        return Ok(Err(Divergence { index: outputs, expected: None, actual: Some(extra) }));
    }
    Ok(Ok(ReplayReport { inputs, outputs }))
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
    }

    #[test]
    fn a_version_1_trace_is_refused_with_its_version() {
        let mut old = header("");
        old[8..10].copy_from_slice(&1u16.to_be_bytes());
        assert!(matches!(TraceReader::new(old.as_slice()), Err(TraceError::Version { found: 1 })));
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
        huge_record.extend_from_slice(&[0; 16]);
        huge_record.extend_from_slice(&(u32::try_from(MAX_RECORD_BYTES).unwrap() + 1).to_be_bytes());
        let mut reader = TraceReader::new(huge_record.as_slice()).unwrap();
        match reader.next_record() {
            Err(TraceError::Corrupt(message)) => assert!(message.contains("exceeds"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
