//! The VM's network through the real binary: a guest HTTP server reached with `VmFetch` and
//! found with `FindListener`, and the recorded trace of that run replaying to the same frames
//! (the network lives in the kernel, so a replay needs nothing but the trace).

use base64::Engine as _;
use client::Client;
use schema::wire::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sidecar-it-network-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_guest_http_server_answers_vm_fetch_and_the_run_replays() {
    let trace = temp_path("network.trace");
    let mut sidecar = Client::spawn(binary(), &["--record", trace.to_str().unwrap(), "--seed", "5"]).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    let conn = auth.connection_id;
    let session = sidecar.open_session(&conn).unwrap();
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"}}"#;
    let vm = sidecar.create_vm(&conn, &session, config).unwrap();
    let scope = OwnershipScope::vm(conn.clone(), session.clone(), vm.clone());
    let net = std::fs::read(format!("{}/../runtime-wasm/fixtures/c/net.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let write = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(net)),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/bin/net")
    };
    sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write)).unwrap();
    let execute = ExecuteRequest::command("web", "net", ["http-server", "8080", "2"]);
    sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
    loop {
        match sidecar.next_event(Duration::from_secs(20)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.chunk.starts_with(b"listening") => break,
            EventPayload::ProcessExitedEvent(event) => panic!("the server exited: {event:?}"),
            _ => {}
        }
    }

    let find = FindListenerRequest { host: None, port: Some(8080), path: None };
    let ResponsePayload::ListenerSnapshotResponse(found) =
        sidecar.request(scope.clone(), RequestPayload::FindListenerRequest(find)).unwrap()
    else {
        panic!("no listener snapshot")
    };
    assert_eq!(found.listener.map(|listener| listener.process_id), Some("web".to_owned()));

    for (method, path, body, expected) in
        [("GET", "/status", None, "GET /status "), ("PUT", "/items/7", Some("{\"n\":7}"), "PUT /items/7 {\"n\":7}")]
    {
        let request = VmFetchRequest {
            port: 8080,
            method: method.into(),
            path: path.into(),
            headers_json: r#"{"accept":"text/plain"}"#.into(),
            body: body.map(str::to_owned),
        };
        let ResponsePayload::VmFetchResponse(answer) =
            sidecar.request(scope.clone(), RequestPayload::VmFetchRequest(request)).unwrap()
        else {
            panic!("no fetch response")
        };
        let json: serde_json::Value = serde_json::from_str(&answer.response_json).unwrap();
        assert_eq!(json["status"], 200);
        let body = base64::engine::general_purpose::STANDARD.decode(json["body"].as_str().unwrap()).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }
    loop {
        if let EventPayload::ProcessExitedEvent(event) = sidecar.next_event(Duration::from_secs(20)).unwrap().payload {
            assert_eq!((event.process_id.as_str(), event.exit_code), ("web", 0));
            break;
        }
    }
    sidecar.dispose_vm(&conn, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());

    let replay = Command::new(binary()).args(["replay", trace.to_str().unwrap()]).output().unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replay matched"));
}
