//! Processes end to end: the real binary runs a WebAssembly `cat` with chunked stdin, and the
//! recorded trace of that run replays to the same frames.

use base64::Engine as _;
use client::Client;
use schema::wire::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../runtime-wasm/fixtures/c/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sidecar-it-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn wasm_cat_over_real_pipes_then_replay_the_trace() {
    let trace = temp_path("exec.trace");
    let mut sidecar = Client::spawn(binary(), &["--record", trace.to_str().unwrap(), "--seed", "3"]).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    let conn = auth.connection_id;
    let session = sidecar.open_session(&conn).unwrap();
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;
    let vm = sidecar.create_vm(&conn, &session, config).unwrap();
    let scope = OwnershipScope::vm(conn.clone(), session.clone(), vm.clone());
    let write = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(fixture("cat"))),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/bin/cat")
    };
    sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write)).unwrap();
    let started = sidecar
        .request(
            scope.clone(),
            RequestPayload::ExecuteRequest(ExecuteRequest::command("cat-1", "cat", Vec::<String>::new())),
        )
        .unwrap();
    assert_eq!(
        started,
        ResponsePayload::ProcessStartedResponse(ProcessStartedResponse { process_id: "cat-1".into(), pid: Some(1) })
    );
    let input: Vec<u8> = (0..2000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
    for chunk in input.chunks(777) {
        let written = sidecar
            .request(
                scope.clone(),
                RequestPayload::WriteStdinRequest(WriteStdinRequest {
                    process_id: "cat-1".into(),
                    chunk: chunk.to_vec(),
                }),
            )
            .unwrap();
        assert_eq!(
            written,
            ResponsePayload::StdinWrittenResponse(StdinWrittenResponse {
                process_id: "cat-1".into(),
                accepted_bytes: chunk.len() as u64
            })
        );
    }
    sidecar
        .request(scope.clone(), RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: "cat-1".into() }))
        .unwrap();
    let mut output = Vec::new();
    let exit_code = loop {
        match sidecar.next_event(Duration::from_secs(20)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) => {
                assert_eq!((event.process_id.as_str(), event.channel), ("cat-1", StreamChannel::Stdout));
                output.extend_from_slice(&event.chunk);
            }
            EventPayload::ProcessExitedEvent(event) => break event.exit_code,
            EventPayload::VmLifecycleEvent(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(exit_code, 0);
    assert_eq!(output, input);
    sidecar.dispose_vm(&conn, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());

    crate::assert_replays(&trace, &[]);
}

#[test]
fn the_readme_demo_runs_a_guest_and_prints_its_output() {
    let demo = Command::new(binary()).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&demo.stdout);
    assert!(demo.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&demo.stderr));
    assert!(stdout.contains("stdout -> 2 11 54 "), "{stdout}");
    assert!(stdout.contains("wc exited with 0"), "{stdout}");
    assert!(stdout.contains("VM vm-1 is DISPOSED"), "{stdout}");
}
