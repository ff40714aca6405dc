//! js_bridge mounts: guest calls become `JsBridgeCallRequest`s and the host's request is
//! answered when the bridge answers (or times out, or the VM goes away).

use crate::filesystem::*;
use crate::harness::*;
use kernel::dispatch::JS_BRIDGE_TIMEOUT_MS;
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use testkit::requests::{configure_mounts, dispose, mount};

/// Sends a guest call; it must be parked: the only frame out is the bridge call.
fn park(guest: &mut Guest, request: GuestFilesystemCallRequest) -> (i64, SidecarRequestFrame, JsBridgeCallRequest) {
    let id = guest.host.next_id();
    let frames =
        guest.host.request_with_id(id, guest.scope.clone(), RequestPayload::GuestFilesystemCallRequest(request));
    assert_eq!(frames.len(), 1, "{frames:?}");
    let ProtocolFrame::SidecarRequestFrame(frame) = frames[0].clone() else {
        panic!("expected a bridge call: {frames:?}")
    };
    let SidecarRequestPayload::JsBridgeCallRequest(call) = frame.payload.clone() else { panic!("{frame:?}") };
    assert!(frame.request_id < 0);
    assert_eq!(frame.ownership, guest.scope);
    (id, frame, call)
}

fn answer(
    guest: &mut Guest,
    frame: &SidecarRequestFrame,
    call_id: &str,
    result: Option<&str>,
    error: Option<&str>,
) -> Vec<ProtocolFrame> {
    guest.host.send_frame(ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: frame.request_id,
        ownership: frame.ownership.clone(),
        payload: SidecarResponsePayload::JsBridgeResultResponse(JsBridgeResultResponse {
            call_id: call_id.into(),
            result: result.map(str::to_owned),
            error: error.map(str::to_owned),
        }),
    }))
}

/// The parked request's response: (request id, payload).
fn response(frames: &[ProtocolFrame]) -> (i64, ResponsePayload) {
    assert_eq!(frames.len(), 1, "{frames:?}");
    match &frames[0] {
        ProtocolFrame::ResponseFrame(r) => (r.request_id, r.payload.clone()),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn bridged(config: &str) -> Guest {
    let mut guest = Guest::new(ALLOW_FS);
    let frames =
        guest.host.request(guest.scope.clone(), configure_mounts(vec![mount("/js", "js_bridge", config, false)]));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmConfiguredResponse(_)), "{frames:?}");
    guest
}

#[test]
fn a_guest_call_is_forwarded_and_answered_when_the_bridge_answers() {
    let mut guest = bridged(r#"{"mountId":"bucket"}"#);
    let (id, frame, call) = park(&mut guest, req(Op::ReadFile, "/js/dir/a.txt"));
    assert_eq!(call.call_id, "js-bridge-call-1");
    assert_eq!(call.mount_id, "bucket");
    assert_eq!(call.operation, "readFile");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.args).unwrap(),
        serde_json::json!({"path": "/dir/a.txt"})
    );
    // A host request on another VM is answered meanwhile; the parked one is not.
    let (request_id, payload) = response(&answer(&mut guest, &frame, "js-bridge-call-1", Some("\"aGVsbG8=\""), None));
    assert_eq!(request_id, id);
    let ResponsePayload::GuestFilesystemResultResponse(result) = payload else { panic!("{payload:?}") };
    assert_eq!((result.operation, result.path.as_str()), (Op::ReadFile, "/js/dir/a.txt"));
    assert_eq!((result.content.as_deref(), result.encoding), (Some("hello"), Some(RootFilesystemEntryEncoding::Utf8)));
    assert_eq!(guest.host.sidecar.pending_sidecar_requests(), 0);

    // Operation names and args follow the original; results are decoded per operation.
    let (_, frame, call) = park(&mut guest, write("/js/w", "hi"));
    assert_eq!((call.call_id.as_str(), call.operation.as_str()), ("js-bridge-call-2", "writeFile"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.args).unwrap(),
        serde_json::json!({"path": "/w", "content": "aGk="})
    );
    assert!(matches!(
        response(&answer(&mut guest, &frame, &call.call_id, None, None)).1,
        ResponsePayload::GuestFilesystemResultResponse(_)
    ));

    let (_, frame, call) = park(&mut guest, to(Op::Rename, "/js/a", "/js/b"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.args).unwrap(),
        serde_json::json!({"oldPath": "/a", "newPath": "/b"})
    );
    let ResponsePayload::GuestFilesystemResultResponse(result) =
        response(&answer(&mut guest, &frame, &call.call_id, None, None)).1
    else {
        panic!()
    };
    assert_eq!(result.target.as_deref(), Some("/js/b"));

    let (_, frame, call) = park(&mut guest, req(Op::Stat, "/js/a"));
    let stat = r#"{"mode":33188,"size":5,"isDirectory":false,"isSymbolicLink":false,"mtimeMs":7,"ino":3,"nlink":1}"#;
    let ResponsePayload::GuestFilesystemResultResponse(result) =
        response(&answer(&mut guest, &frame, &call.call_id, Some(stat), None)).1
    else {
        panic!()
    };
    let stat = result.stat.unwrap();
    assert_eq!((stat.mode, stat.size, stat.mtime_ms, stat.ino), (0o100_644, 5, 7, 3));

    let (_, frame, call) = park(&mut guest, req(Op::ReadDir, "/js"));
    assert_eq!(call.operation, "readDir");
    let ResponsePayload::GuestFilesystemResultResponse(result) =
        response(&answer(&mut guest, &frame, &call.call_id, Some(r#"["b","a"]"#), None)).1
    else {
        panic!()
    };
    assert_eq!(result.entries.unwrap(), ["a", "b"]);

    let (_, frame, call) = park(&mut guest, req(Op::Realpath, "/js/x/../a"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&call.args).unwrap(), serde_json::json!({"path": "/a"}));
    let ResponsePayload::GuestFilesystemResultResponse(result) =
        response(&answer(&mut guest, &frame, &call.call_id, Some(r#""/a""#), None)).1
    else {
        panic!()
    };
    assert_eq!(result.target.as_deref(), Some("/js/a"));

    // EXISTS: an error answers false.
    let (_, frame, call) = park(&mut guest, req(Op::Exists, "/js/nope"));
    let ResponsePayload::GuestFilesystemResultResponse(result) =
        response(&answer(&mut guest, &frame, &call.call_id, None, Some("ENOENT: gone"))).1
    else {
        panic!()
    };
    assert_eq!(result.exists, Some(false));
}

#[test]
fn bridge_errors_timeouts_and_disposal_still_answer_the_request() {
    let mut guest = bridged("null");
    // Errors become errno messages.
    let (id, frame, call) = park(&mut guest, req(Op::ReadFile, "/js/missing"));
    assert_eq!(call.mount_id, "/js", "the mount id defaults to the guest path");
    let (request_id, payload) = response(&answer(&mut guest, &frame, &call.call_id, None, Some("file not found")));
    assert_eq!(request_id, id);
    assert_eq!(
        payload,
        ResponsePayload::RejectedResponse(RejectedResponse {
            code: "kernel_error".into(),
            message: "ENOENT: file not found, readFile '/js/missing'".into()
        })
    );
    // Content over the VM's read limit is refused.
    let (_, frame, call) = park(&mut guest, pread("/js/f", 0, 2));
    let (_, payload) = response(&answer(&mut guest, &frame, &call.call_id, Some("[1,2,3]"), None));
    assert!(
        matches!(&payload, ResponsePayload::RejectedResponse(r) if r.message.starts_with("EINVAL: js_bridge payload length 3 exceeds")),
        "{payload:?}"
    );
    // A wrong call id is a protocol error and the request is refused, never left hanging.
    let (id, frame, _) = park(&mut guest, req(Op::ReadFile, "/js/f"));
    let frames = answer(&mut guest, &frame, "js-bridge-call-999", Some("\"\""), None);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(frames.iter().any(|f| matches!(f, ProtocolFrame::ResponseFrame(r) if r.request_id == id)));
    // No answer: refused after the timeout, on the kernel's clock.
    let (id, slow, call) = park(&mut guest, req(Op::ReadFile, "/js/slow"));
    assert!(guest.host.advance(JS_BRIDGE_TIMEOUT_MS - 1).is_empty());
    let (request_id, payload) = response(&guest.host.advance(1));
    assert_eq!(request_id, id);
    assert_eq!(
        payload,
        ResponsePayload::RejectedResponse(RejectedResponse {
            code: "kernel_error".into(),
            message: "EIO: js_bridge call timed out after 30 s, readFile '/js/slow'".into()
        })
    );
    // The late answer is a protocol error event only.
    let late = guest.host.send_frame(ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: slow.request_id,
        ownership: guest.scope.clone(),
        payload: SidecarResponsePayload::JsBridgeResultResponse(JsBridgeResultResponse {
            call_id: call.call_id,
            result: None,
            error: None,
        }),
    }));
    assert!(late.iter().all(|f| matches!(f, ProtocolFrame::EventFrame(_))), "{late:?}");
    // Disposing the VM answers what is parked.
    let (id, _, _) = park(&mut guest, req(Op::Stat, "/js/a"));
    let frames = guest.host.request(guest.scope.clone(), dispose());
    let parked = frames.iter().find_map(|f| match f {
        ProtocolFrame::ResponseFrame(r) if r.request_id == id => Some(r.payload.clone()),
        _ => None,
    });
    assert!(
        matches!(&parked, Some(ResponsePayload::RejectedResponse(r)) if r.message.contains("cancelled: VM vm-1 was disposed")),
        "{frames:?}"
    );
    assert_eq!(guest.host.sidecar.pending_sidecar_requests(), 0);
}

#[test]
fn a_read_only_bridge_mount_refuses_writes_without_asking_the_host() {
    let mut guest = Guest::new(ALLOW_FS);
    let frames = guest.host.request(guest.scope.clone(), configure_mounts(vec![mount("/js", "js_bridge", "{}", true)]));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmConfiguredResponse(_)));
    let (code, message) = guest.err(write("/js/f", "x"));
    assert_eq!((code.as_str(), message.as_str()), ("kernel_error", "EROFS: read-only file system, open '/js/f'"));
    let (_, message) = guest.err(to(Op::Rename, "/js/a", "/tmp/b"));
    assert!(message.starts_with("EXDEV"), "{message}");
    assert_eq!(guest.host.sidecar.pending_sidecar_requests(), 0);
}
