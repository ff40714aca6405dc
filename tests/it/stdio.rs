//! The stdio sidecar: a full conversation over pipes, the same conversation through the
//! in-memory transport, trace record and replay, malformed input, shutdown.

use client::Client;
use kernel::SidecarConfig;
use schema::wire::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use transport::memory::MemoryTransport;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sidecar-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn request(id: i64, ownership: OwnershipScope, payload: RequestPayload) -> Vec<u8> {
    schema::encode_frame(
        &ProtocolFrame::RequestFrame(RequestFrame {
            schema: ProtocolSchema::current(),
            request_id: id,
            ownership,
            payload,
        }),
        schema::DEFAULT_MAX_FRAME_BYTES,
    )
    .unwrap()
}

/// The scripted conversation as raw request bytes (ids and scopes are deterministic).
fn conversation() -> Vec<Vec<u8>> {
    vec![
        request(
            1,
            OwnershipScope::connection("client-hint"),
            RequestPayload::AuthenticateRequest(AuthenticateRequest {
                client_name: "it".into(),
                auth_token: "token".into(),
                protocol_version: 7,
                bridge_version: 1,
            }),
        ),
        request(
            2,
            OwnershipScope::connection("conn-1"),
            RequestPayload::OpenSessionRequest(OpenSessionRequest {
                placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
                metadata: Default::default(),
            }),
        ),
        request(
            3,
            OwnershipScope::session("conn-1", "session-1"),
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::WebAssembly,
                config: r#"{"permissions":{"fs":"allow"}}"#.into(),
            }),
        ),
        request(
            4,
            OwnershipScope::vm("conn-1", "session-1", "vm-1"),
            RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }),
        ),
    ]
}

/// Reads exactly `count` frames from the child's stdout.
fn read_frames(stdout: &mut impl std::io::Read, count: usize) -> Vec<Vec<u8>> {
    let mut decoder = schema::FrameDecoder::new(schema::DEFAULT_MAX_FRAME_BYTES);
    let mut frames = Vec::new();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    while frames.len() < count {
        let n = stdout.read(&mut buffer).unwrap();
        assert!(n > 0, "sidecar closed stdout after {} frames", frames.len());
        raw.extend_from_slice(&buffer[..n]);
        for item in decoder.feed(&buffer[..n]) {
            assert!(matches!(item, schema::codec::Decoded::Frame(_)), "{item:?}");
            frames.push(());
        }
    }
    split_frames(&raw)
}

fn split_frames(mut raw: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while raw.len() >= 4 {
        let len = u32::from_be_bytes(raw[..4].try_into().unwrap()) as usize;
        frames.push(raw[..4 + len].to_vec());
        raw = &raw[4 + len..];
    }
    frames
}

fn decode(bytes: &[u8]) -> ProtocolFrame {
    schema::decode_frame(bytes, usize::MAX).unwrap()
}

#[test]
fn conversation_over_real_pipes_matches_the_in_memory_transport() {
    let mut child =
        Command::new(binary()).args(["--seed", "7"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut over_pipes = Vec::new();
    for (request, expected) in conversation().iter().zip([1, 1, 3, 3]) {
        std::io::Write::write_all(&mut stdin, request).unwrap();
        over_pipes.extend(read_frames(&mut stdout, expected));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let kinds: Vec<String> = over_pipes
        .iter()
        .map(|bytes| match decode(bytes) {
            ProtocolFrame::ResponseFrame(r) => r.payload.member_name().to_owned(),
            ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::VmLifecycleEvent(e), .. }) => {
                e.state.schema_name().to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "AuthenticatedResponse",
            "SessionOpenedResponse",
            "VmCreatedResponse",
            "CREATING",
            "READY",
            "VmDisposedResponse",
            "DISPOSING",
            "DISPOSED"
        ]
    );

    let mut memory = MemoryTransport::new(SidecarConfig { entropy_seed: 7, ..SidecarConfig::default() });
    for request in conversation() {
        memory.write(&request);
    }
    assert_eq!(memory.read_frames(), over_pipes, "byte-identical with and without real I/O");
}

#[test]
fn client_crate_drives_the_binary() {
    let mut sidecar = Client::spawn(binary(), &[]).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    assert_eq!(auth.connection_id, "conn-1");
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, "{}").unwrap();
    let states: Vec<VmLifecycleState> = (0..2)
        .map(|_| match sidecar.next_event(Duration::from_secs(5)).unwrap().payload {
            EventPayload::VmLifecycleEvent(e) => e.state,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(states, [VmLifecycleState::Creating, VmLifecycleState::Ready]);
    let error = sidecar.dispose_vm(&auth.connection_id, "session-9", &vm).unwrap_err();
    assert!(error.to_string().contains("unknown sidecar session"), "{error}");
    sidecar.dispose_vm(&auth.connection_id, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());
}

#[test]
fn record_then_replay_and_detect_a_changed_byte() {
    let trace = temp_path("session.trace");
    let mut sidecar = Client::spawn(binary(), &["--record", trace.to_str().unwrap()]).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, "{}").unwrap();
    sidecar.dispose_vm(&auth.connection_id, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());

    let replay = Command::new(binary()).args(["replay", trace.to_str().unwrap()]).output().unwrap();
    assert!(
        replay.status.success(),
        "{} (trace of {} bytes)",
        String::from_utf8_lossy(&replay.stderr),
        std::fs::metadata(&trace).unwrap().len()
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replay matched"));

    // Flip one byte inside the last recorded output frame: the trace ends with that frame
    // (whose last byte is the DISPOSED state) followed by the 29-byte end-of-input record.
    let mut bytes = std::fs::read(&trace).unwrap();
    let end_of_input_record = 29;
    assert_eq!(bytes[bytes.len() - end_of_input_record], 3, "the trace ends with the end-of-input record");
    let last = bytes.len() - end_of_input_record - 1;
    bytes[last] ^= 0x01;
    let altered = temp_path("altered.trace");
    std::fs::write(&altered, bytes).unwrap();
    let replay = Command::new(binary()).args(["replay", altered.to_str().unwrap()]).output().unwrap();
    assert!(!replay.status.success());
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(stderr.contains("output frame 7 differs"), "{stderr}");
}

#[test]
fn garbage_is_rejected_by_id_and_the_connection_keeps_working() {
    let mut sidecar = Client::spawn(binary(), &[]).unwrap();
    let mut bytes = request(
        41,
        OwnershipScope::connection("c"),
        RequestPayload::OpenSessionRequest(OpenSessionRequest {
            placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
            metadata: Default::default(),
        }),
    );
    let last = bytes.len() - 1;
    bytes[last] = 0x80;
    sidecar.send_raw(&bytes).unwrap();
    let response = sidecar.wait_response(41).unwrap();
    match response.payload {
        ResponsePayload::RejectedResponse(r) => {
            assert_eq!(r.code, "invalid_state");
            assert!(r.message.starts_with("malformed_frame"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sidecar.authenticate("it", "token").unwrap().connection_id, "conn-1");
    assert!(sidecar.close().unwrap().success());
}

#[test]
fn truncated_input_exits_non_zero_after_disposing() {
    let mut sidecar = Client::spawn(binary(), &[]).unwrap();
    sidecar.send_raw(&[0, 0, 0, 50, 1, 2]).unwrap();
    let status = sidecar.close().unwrap();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn sigterm_disposes_vms_and_exits_zero() {
    let mut sidecar = Client::spawn(binary(), &[]).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, "{}").unwrap();
    for _ in 0..2 {
        sidecar.next_event(Duration::from_secs(5)).unwrap();
    }
    let killed = Command::new("kill").args(["-TERM", &sidecar.pid().to_string()]).status().unwrap();
    assert!(killed.success());
    let states: Vec<(String, VmLifecycleState)> = (0..2)
        .map(|_| {
            let event = sidecar.next_event(Duration::from_secs(5)).unwrap();
            match event.payload {
                EventPayload::VmLifecycleEvent(e) => (event.ownership.vm_id().unwrap().to_owned(), e.state),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(states, [(vm.clone(), VmLifecycleState::Disposing), (vm, VmLifecycleState::Disposed)]);
    assert!(sidecar.wait().unwrap().success());
}

/// Resident memory of a process, from /proc (Linux), in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A host that writes ~40 MiB worth of responses' requests and does not read: the sidecar stops
/// reading once OUTBOUND_HIGH_WATERMARK_BYTES wait for stdout, so its memory stays bounded; when
/// the host reads again, every response arrives, in order.
#[test]
fn slow_reader_keeps_sidecar_memory_bounded() {
    const REQUESTS: i64 = 10_000;
    let mut child = Command::new(binary()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Each request is rejected with a ~4 KiB message (the namespace is echoed, bounded).
    let namespace = "n".repeat(4_000);
    let mut decoder = schema::FrameDecoder::new(schema::DEFAULT_MAX_FRAME_BYTES);
    // The baseline is taken once the sidecar has started (its engine and threads are up) and
    // answered one request (an id after the others).
    let first = request(
        REQUESTS + 1,
        OwnershipScope::connection("c"),
        RequestPayload::ExtEnvelope(ExtEnvelope { namespace: "n".into(), payload: vec![] }),
    );
    std::io::Write::write_all(&mut stdin, &first).unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut answered = false;
    while !answered {
        let n = std::io::Read::read(&mut stdout, &mut buffer).unwrap();
        assert!(n > 0, "stdout closed before the first answer");
        answered = decoder.feed(&buffer[..n]).count() > 0;
    }
    let writer = std::thread::spawn(move || {
        for id in 1..=REQUESTS {
            let bytes = request(
                id,
                OwnershipScope::connection("c"),
                RequestPayload::ExtEnvelope(ExtEnvelope { namespace: namespace.clone(), payload: vec![] }),
            );
            if std::io::Write::write_all(&mut stdin, &bytes).is_err() {
                return false;
            }
        }
        true
    });
    // A watchdog turns a stall (the bug this test exists for) into a failure, not a hang.
    let (done, watchdog_done) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog_done.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let baseline = rss_bytes(pid);
    std::thread::sleep(Duration::from_millis(1_500));
    let stalled = rss_bytes(pid);
    assert!(!writer.is_finished(), "the sidecar must stop reading while its output is not drained");
    let response_bytes = 4_100 * REQUESTS as u64;
    assert!(
        stalled < baseline + 16 * 1024 * 1024,
        "RSS grew from {baseline} to {stalled} bytes with {response_bytes} bytes of responses pending"
    );

    let mut next_id = 1;
    while next_id <= REQUESTS {
        let n = std::io::Read::read(&mut stdout, &mut buffer).unwrap();
        assert!(n > 0, "stdout closed at response {next_id}");
        for item in decoder.feed(&buffer[..n]) {
            let schema::codec::Decoded::Frame(ProtocolFrame::ResponseFrame(response)) = item else {
                panic!("{item:?}")
            };
            assert_eq!(response.request_id, next_id);
            next_id += 1;
        }
    }
    assert!(writer.join().unwrap());
    assert!(child.wait().unwrap().success());
    let _ = done.send(());
}
