//! Back-pressure through the real binary (audit finding D5): a host pipelines small requests
//! whose responses are huge. The sidecar must not answer faster than the host reads: its memory
//! stays bounded whether or not the host reads, and a host that reads gets its first answer at
//! once instead of after the whole batch has been answered into memory.

use base64::Engine as _;
use schema::codec::Decoded;
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The file the flood reads: 11 MiB, so each base64 answer is ~15 MiB (the audit's numbers),
/// still under the 16 MiB frame limit.
const FILE_BYTES: usize = 11 * 1024 * 1024;
/// Bytes of pipelined READ_FILE requests, as in the audit's measurement (598 requests of 82
/// bytes, ~9 GB of answers).
const FLOOD_BYTES: usize = 49_000;
/// The requirement: while the flood is served, resident memory grows by less than this over
/// the idle sidecar (the answers total gigabytes; a few of them in flight is fine).
const RSS_BOUND_OVER_IDLE: u64 = 64 * 1024 * 1024;
/// The requirement for a host that reads is the first answer within 100 ms of the flood
/// (measured in release: 82 ms, most of it building one 15 MiB answer). This test runs in debug
/// builds next to other tests on a busy machine, so it only holds a bound that tells the fixed
/// behaviour from the audit's (the first answer after the whole batch: 37 s).
const FIRST_ANSWER_BOUND: Duration = Duration::from_secs(2);
/// Answers the host reads and checks (each the whole file, in order); then it leaves. Reading
/// all ~600 (9 GB of base64) would take minutes in a debug build and prove nothing more.
const ANSWERS_CHECKED: i64 = 24;
/// How long the non-reading host stays away.
const STALL: Duration = Duration::from_secs(2);
/// Far past the bound: the sampler kills the sidecar there rather than let a regression take the
/// machine's memory (without back-pressure per frame this flood takes 8.6 GiB).
const RSS_KILL_OVER_IDLE: u64 = 2 * 1024 * 1024 * 1024;
/// Turns a hang (a sidecar that stops answering) into a failure.
const WATCHDOG: Duration = Duration::from_secs(300);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

fn request(id: i64, ownership: OwnershipScope, payload: RequestPayload) -> Vec<u8> {
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: id,
        ownership,
        payload,
    });
    schema::encode_frame(&frame, schema::DEFAULT_MAX_FRAME_BYTES).unwrap()
}

/// A `/proc/<pid>/status` field, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Resets the kernel's peak-RSS counter (VmHWM) of `pid` to its current RSS.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples VmRSS every millisecond until stopped; kills the process past `kill_above`.
struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32, kill_above: u64) -> Self {
        let (max, stop, killed) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (max2, stop2, killed2) = (max.clone(), stop.clone(), killed.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Some(rss) = status_bytes(pid, "VmRSS:") else { return };
                max2.fetch_max(rss, Ordering::Relaxed);
                if rss > kill_above && !killed2.swap(true, Ordering::Relaxed) {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Self { max, stop, killed, thread: Some(thread) }
    }

    /// (largest sample, whether the sidecar was killed for its memory).
    fn finish(mut self) -> (u64, bool) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        (self.max.load(Ordering::Relaxed), self.killed.load(Ordering::Relaxed))
    }
}

/// The host end of a sidecar over raw pipes: nothing reads stdout unless the test does.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    decoder: schema::FrameDecoder,
    decoded: std::collections::VecDeque<ProtocolFrame>,
    buffer: Vec<u8>,
}

impl Host {
    fn spawn() -> Self {
        let mut child = Command::new(binary()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            stdin,
            stdout,
            decoder: schema::FrameDecoder::new(schema::DEFAULT_MAX_FRAME_BYTES),
            decoded: Default::default(),
            buffer: vec![0; 1024 * 1024],
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(bytes).unwrap();
    }

    /// The next frame, or `None` once the sidecar closed stdout.
    fn next_frame(&mut self) -> Option<ProtocolFrame> {
        loop {
            if let Some(frame) = self.decoded.pop_front() {
                return Some(frame);
            }
            let n = self.stdout.read(&mut self.buffer).unwrap();
            if n == 0 {
                return None;
            }
            for item in self.decoder.feed(&self.buffer[..n]) {
                match item {
                    Decoded::Frame(frame) => self.decoded.push_back(frame),
                    Decoded::Error { error, .. } => panic!("undecodable frame from the sidecar: {error}"),
                }
            }
        }
    }

    /// The next response (events are skipped); it must answer `id`. `None` once stdout closed.
    fn response(&mut self, id: i64) -> Option<ResponsePayload> {
        loop {
            match self.next_frame()? {
                ProtocolFrame::ResponseFrame(response) => {
                    assert_eq!(response.request_id, id, "answers come in request order");
                    return Some(response.payload);
                }
                ProtocolFrame::EventFrame(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A sidecar with one VM holding `/big.bin` (FILE_BYTES): the host, the VM scope and the base64
/// content every READ_FILE must answer.
fn sidecar_with_big_file() -> (Host, OwnershipScope, String) {
    let mut host = Host::spawn();
    host.send(&request(
        1,
        OwnershipScope::connection("client-hint"),
        RequestPayload::AuthenticateRequest(AuthenticateRequest {
            client_name: "it".into(),
            auth_token: "token".into(),
            protocol_version: schema::PROTOCOL_VERSION,
            bridge_version: 1,
        }),
    ));
    let Some(ResponsePayload::AuthenticatedResponse(auth)) = host.response(1) else { panic!("authenticate") };
    host.send(&request(
        2,
        OwnershipScope::connection(auth.connection_id.clone()),
        RequestPayload::OpenSessionRequest(OpenSessionRequest {
            placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
            metadata: Default::default(),
        }),
    ));
    let Some(ResponsePayload::SessionOpenedResponse(session)) = host.response(2) else { panic!("open session") };
    host.send(&request(
        3,
        OwnershipScope::session(auth.connection_id.clone(), session.session_id.clone()),
        RequestPayload::CreateVmRequest(CreateVmRequest {
            runtime: GuestRuntimeKind::WebAssembly,
            config: r#"{"permissions":{"fs":"allow"}}"#.into(),
        }),
    ));
    let Some(ResponsePayload::VmCreatedResponse(vm)) = host.response(3) else { panic!("create vm") };
    let scope = OwnershipScope::vm(auth.connection_id, session.session_id, vm.vm_id);

    // Not valid UTF-8, so the answers are base64 whatever the request asks.
    let content: Vec<u8> =
        (0..FILE_BYTES).map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0] | 0x80).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&content);
    let write = GuestFilesystemCallRequest {
        content: Some(encoded.clone()),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(Op::WriteFile, "/big.bin")
    };
    host.send(&request(4, scope.clone(), RequestPayload::GuestFilesystemCallRequest(write)));
    assert!(matches!(host.response(4), Some(ResponsePayload::GuestFilesystemResultResponse(_))), "write_file");
    (host, scope, encoded)
}

/// READ_FILE requests for `/big.bin` from id 5 on, FLOOD_BYTES worth: (bytes, last id).
fn flood(scope: &OwnershipScope) -> (Vec<u8>, i64) {
    let read = |id| {
        let call = GuestFilesystemCallRequest {
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(Op::ReadFile, "/big.bin")
        };
        request(id, scope.clone(), RequestPayload::GuestFilesystemCallRequest(call))
    };
    let (mut bytes, mut id) = (Vec::new(), 4);
    while bytes.len() < FLOOD_BYTES {
        id += 1;
        bytes.extend(read(id));
    }
    (bytes, id)
}

/// Reads the answers to ids 5..=last, in order, each the whole file: (how many arrived before
/// stdout closed, when the first did).
fn read_answers(host: &mut Host, last: i64, expected: &str) -> (i64, Option<Instant>) {
    let mut first = None;
    for id in 5..=last.min(4 + ANSWERS_CHECKED) {
        let Some(payload) = host.response(id) else { return (id - 5, first) };
        first.get_or_insert_with(Instant::now);
        let ResponsePayload::GuestFilesystemResultResponse(result) = payload else { panic!("{id}: {payload:?}") };
        assert!(result.content.as_deref() == Some(expected), "answer {id} is the file");
    }
    (last.min(4 + ANSWERS_CHECKED) - 4, first)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What one flood did to the sidecar.
#[derive(Debug)]
struct Measured {
    reading: bool,
    idle: u64,
    peak: u64,
    first_answer: Option<Duration>,
    requests: i64,
    answered: i64,
    killed_for_memory: bool,
    still_serving: bool,
}

/// Idle RSS, then the flood (the host reading along, or not for STALL first), then every answer.
fn run_flood(reading: bool) -> Measured {
    let (mut host, scope, expected) = sidecar_with_big_file();
    let pid = host.pid();
    let (done, watchdog_done) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog_done.recv_timeout(WATCHDOG).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let idle = status_bytes(pid, "VmRSS:").unwrap();
    let hwm_reset = reset_peak_rss(pid);
    let sampler = RssSampler::start(pid, idle + RSS_KILL_OVER_IDLE);
    let (bytes, last) = flood(&scope);
    // The pipe holds the whole flood (64 KiB), so this returns whether or not the sidecar reads.
    let mut stdin = host.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    let flooded = Instant::now();
    if !reading {
        std::thread::sleep(STALL);
    }
    let (answered, first) = read_answers(&mut host, last, &expected);
    let hwm = if hwm_reset { status_bytes(pid, "VmHWM:").unwrap_or(0) } else { 0 };
    let (sampled, killed_for_memory) = sampler.finish();
    // The host leaves with most answers unread: the sidecar must still be alive and serving.
    let still_serving = matches!(host.child.try_wait(), Ok(None));
    drop(stdin);
    let _ = host.child.kill();
    let _ = host.child.wait();
    let _ = done.send(());
    Measured {
        reading,
        idle,
        peak: hwm.max(sampled),
        first_answer: first.map(|at| at.saturating_duration_since(flooded)),
        requests: (last - 4).min(ANSWERS_CHECKED),
        answered,
        killed_for_memory,
        still_serving,
    }
}

#[test]
fn pipelined_huge_answers_keep_memory_bounded_and_the_first_answer_prompt() {
    // Both floods run before anything is asserted, so a failure reports both.
    let runs = [false, true].map(run_flood);
    for Measured { reading, idle, peak, first_answer, requests, answered, .. } in &runs {
        let host = if *reading { "reading" } else { "not reading for 2 s" };
        eprintln!(
            "host {host}: idle RSS {:.1} MiB, peak {:.1} MiB (+{:.1} MiB), first answer after {first_answer:?}, \
             {answered}/{requests} answered",
            mib(*idle),
            mib(*peak),
            mib(peak.saturating_sub(*idle))
        );
    }
    for Measured { reading, idle, peak, first_answer, requests, answered, killed_for_memory, still_serving } in runs {
        let host = if reading { "reading" } else { "not reading for 2 s" };
        assert!(!killed_for_memory, "host {host}: killed past {:.0} MiB over idle", mib(RSS_KILL_OVER_IDLE));
        assert_eq!(answered, requests, "host {host}: every answer read came, in order");
        assert!(still_serving, "host {host}: the sidecar was still serving");
        assert!(
            peak < idle + RSS_BOUND_OVER_IDLE,
            "host {host}: RSS grew from {:.1} to {:.1} MiB",
            mib(idle),
            mib(peak)
        );
        if reading {
            let latency = first_answer.unwrap();
            assert!(latency < FIRST_ANSWER_BOUND, "first answer after {latency:?}");
        }
    }
}
