//! Bad requests of every kind: each gets the right code, and the sidecar keeps serving.

use crate::harness::*;
use kernel::dispatch::PROTOCOL_ERROR_NAMESPACE;
use kernel::SidecarConfig;
use schema::wire::*;
use std::collections::BTreeMap;
use testkit::requests::{
    authenticate, authenticate_request, configure_mounts, create_vm, create_vm_for, dispose, mount, open_session,
    request_frame,
};

/// What a bad input must produce.
enum Expect {
    /// A `RejectedResponse` with this code whose message contains the text.
    Rejected(&'static str, &'static str),
    /// No response can carry the id: a protocol-error event with this code.
    ProtocolError(&'static str),
}

struct Ids {
    conn: String,
    session: String,
    vm: String,
    other_session: String,
    other_vm: String,
    disposed_vm: String,
}

fn setup(host: &mut Harness) -> Ids {
    let (conn, session, vm) = host.vm(r#"{"permissions":{"fs":"allow"}}"#);
    let other_session = host.open_session(&conn);
    let frames =
        host.request(OwnershipScope::session(&conn, &other_session), create_vm_for(GuestRuntimeKind::JavaScript, "{}"));
    let other_vm = match response_payload(&frames[0]) {
        ResponsePayload::VmCreatedResponse(created) => created.vm_id.clone(),
        other => panic!("{other:?}"),
    };
    let (c2, s2, disposed_vm) = host.vm("{}");
    host.request(OwnershipScope::vm(&c2, &s2, &disposed_vm), dispose());
    host.drain();
    Ids { conn, session, vm, other_session, other_vm, disposed_vm }
}

/// An Authenticate speaking these protocol and bridge versions.
fn authenticate_at(protocol_version: u16, bridge_version: u32) -> RequestPayload {
    RequestPayload::AuthenticateRequest(AuthenticateRequest {
        protocol_version,
        bridge_version,
        ..authenticate_request("t")
    })
}

fn toolkit(name: &str) -> RequestPayload {
    RequestPayload::RegisterHostCallbacksRequest(RegisterHostCallbacksRequest {
        name: name.into(),
        description: "files toolkit".into(),
        command_aliases: vec!["files".into()],
        registry_command_aliases: vec![],
        callbacks: BTreeMap::from([(
            "read".to_owned(),
            RegisteredHostCallbackDefinition {
                description: "read a file".into(),
                input_schema: r#"{"type":"object"}"#.into(),
                timeout_ms: None,
                examples: vec![],
            },
        )]),
    })
}

type Case = (&'static str, Box<dyn Fn(&mut Harness, &Ids) -> Vec<ProtocolFrame>>, Expect);

fn cases() -> Vec<Case> {
    use Expect::*;
    let vm = |ids: &Ids| OwnershipScope::vm(&ids.conn, &ids.session, &ids.vm);
    vec![
        (
            "unauthenticated open session",
            Box::new(|h, _| h.request(OwnershipScope::connection("conn-99"), open_session())),
            Rejected("unauthorized", "conn-99 has not authenticated"),
        ),
        (
            "unauthenticated create vm",
            Box::new(|h, _| h.request(OwnershipScope::session("conn-99", "session-1"), create_vm("{}"))),
            Rejected("unauthorized", "has not authenticated"),
        ),
        (
            "authenticate with a session scope",
            Box::new(|h, _| h.request(OwnershipScope::session("c", "s"), authenticate("t"))),
            Rejected("invalid_state", "invalid_ownership_scope"),
        ),
        (
            "create vm with a connection scope",
            Box::new(|h, ids| h.request(OwnershipScope::connection(&ids.conn), create_vm("{}"))),
            Rejected("invalid_state", "requires session ownership"),
        ),
        (
            "dispose with a session scope",
            Box::new(|h, ids| h.request(OwnershipScope::session(&ids.conn, &ids.session), dispose())),
            Rejected("invalid_state", "requires vm ownership"),
        ),
        (
            "unknown session",
            Box::new(|h, ids| h.request(OwnershipScope::session(&ids.conn, "session-77"), create_vm("{}"))),
            Rejected("invalid_state", "unknown sidecar session session-77"),
        ),
        (
            "unknown vm",
            Box::new(|h, ids| h.request(OwnershipScope::vm(&ids.conn, &ids.session, "vm-77"), dispose())),
            Rejected("invalid_state", "unknown sidecar VM vm-77"),
        ),
        (
            "vm of another session",
            Box::new(|h, ids| h.request(OwnershipScope::vm(&ids.conn, &ids.session, &ids.other_vm), dispose())),
            Rejected("invalid_state", "unknown sidecar VM"),
        ),
        (
            "session of another connection",
            Box::new(|h, ids| h.request(OwnershipScope::session("conn-2", &ids.session), create_vm("{}"))),
            Rejected("invalid_state", "unknown sidecar session"),
        ),
        (
            "disposed vm",
            Box::new(|h, ids| {
                h.request(OwnershipScope::vm("conn-2", "session-3", &ids.disposed_vm), configure_mounts(vec![]))
            }),
            Rejected("invalid_state", "unknown sidecar VM"),
        ),
        (
            "double dispose",
            Box::new(|h, ids| h.request(OwnershipScope::vm("conn-2", "session-3", &ids.disposed_vm), dispose())),
            Rejected("invalid_state", "unknown sidecar VM"),
        ),
        (
            "bad JSON",
            Box::new(|h, ids| h.request(OwnershipScope::session(&ids.conn, &ids.session), create_vm("{not json"))),
            Rejected("invalid_state", "invalid create VM config JSON"),
        ),
        (
            "wrong type",
            Box::new(|h, ids| {
                h.request(
                    OwnershipScope::session(&ids.conn, &ids.session),
                    create_vm(r#"{"limits":{"resources":{"maxProcesses":"x"}}}"#),
                )
            }),
            Rejected("invalid_state", "limits.resources.maxProcesses"),
        ),
        (
            "unknown key",
            Box::new(|h, ids| h.request(OwnershipScope::session(&ids.conn, &ids.session), create_vm(r#"{"bogus":1}"#))),
            Rejected("invalid_state", "bogus"),
        ),
        (
            "bad permission mode",
            Box::new(|h, ids| {
                h.request(
                    OwnershipScope::session(&ids.conn, &ids.session),
                    create_vm(r#"{"permissions":{"fs":"maybe"}}"#),
                )
            }),
            Rejected("invalid_state", "permissions"),
        ),
        (
            "empty rule operations",
            Box::new(|h, ids| {
                h.request(
                    OwnershipScope::session(&ids.conn, &ids.session),
                    create_vm(r#"{"permissions":{"fs":{"rules":[{"mode":"allow","operations":[],"paths":["/"]}]}}}"#),
                )
            }),
            Rejected("invalid_state", "fs.rules[0].operations must not be empty"),
        ),
        (
            "relative cwd",
            Box::new(|h, ids| {
                h.request(OwnershipScope::session(&ids.conn, &ids.session), create_vm(r#"{"cwd":"home"}"#))
            }),
            Rejected("invalid_state", "cwd must be absolute"),
        ),
        (
            "request id 0",
            Box::new(|h, ids| h.send_frame(request_frame(0, OwnershipScope::connection(&ids.conn), open_session()))),
            ProtocolError("invalid_request_id"),
        ),
        (
            "negative request id",
            Box::new(|h, ids| h.send_frame(request_frame(-4, OwnershipScope::connection(&ids.conn), open_session()))),
            ProtocolError("invalid_request_direction"),
        ),
        (
            "positive sidecar response id",
            Box::new(move |h, ids| {
                h.send_frame(ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
                    schema: ProtocolSchema::current(),
                    request_id: 3,
                    ownership: vm(ids),
                    payload: SidecarResponsePayload::ExtEnvelope(ExtEnvelope {
                        namespace: "x".into(),
                        payload: vec![],
                    }),
                }))
            }),
            ProtocolError("invalid_request_direction"),
        ),
        (
            "unknown sidecar response",
            Box::new(move |h, ids| {
                h.send_frame(ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
                    schema: ProtocolSchema::current(),
                    request_id: -3,
                    ownership: vm(ids),
                    payload: SidecarResponsePayload::ExtEnvelope(ExtEnvelope {
                        namespace: "x".into(),
                        payload: vec![],
                    }),
                }))
            }),
            ProtocolError("unknown_sidecar_response"),
        ),
        (
            "empty auth token",
            Box::new(|h, _| h.request(OwnershipScope::connection("c"), authenticate(""))),
            Rejected("invalid_state", "empty_auth_token"),
        ),
        (
            "protocol version 6",
            Box::new(|h, _| h.request(OwnershipScope::connection("c"), authenticate_at(6, 1))),
            Rejected("protocol_version_mismatch", "expected 7, got 6"),
        ),
        (
            "bridge version 2",
            Box::new(|h, _| h.request(OwnershipScope::connection("c"), authenticate_at(7, 2))),
            Rejected("bridge_version_mismatch", "expected 1, got 2"),
        ),
        (
            "unsupported schema",
            Box::new(|h, ids| {
                let id = h.next_id();
                h.send_frame(ProtocolFrame::RequestFrame(RequestFrame {
                    schema: ProtocolSchema { name: "other".into(), version: 7 },
                    request_id: id,
                    ownership: OwnershipScope::connection(&ids.conn),
                    payload: open_session(),
                }))
            }),
            Rejected("invalid_state", "unsupported_schema"),
        ),
        (
            "empty vm id",
            Box::new(|h, ids| h.request(OwnershipScope::vm(&ids.conn, &ids.session, ""), dispose())),
            Rejected("invalid_state", "empty_ownership_field"),
        ),
        (
            "a socket query without network.inspect",
            Box::new(move |h, ids| {
                let find = FindListenerRequest { host: None, port: Some(80), path: None };
                h.request(vm(ids), RequestPayload::FindListenerRequest(find))
            }),
            Rejected("kernel_error", "blocked by network.inspect policy"),
        ),
        (
            "unknown extension",
            Box::new(|h, ids| {
                h.request(
                    OwnershipScope::connection(&ids.conn),
                    RequestPayload::ExtEnvelope(ExtEnvelope { namespace: "dev.nobody".into(), payload: vec![] }),
                )
            }),
            Rejected("unknown_extension", "dev.nobody"),
        ),
        (
            "unknown mount plugin",
            Box::new(move |h, ids| h.request(vm(ids), configure_mounts(vec![mount("/mnt", "nfs", "{}", false)]))),
            Rejected("plugin_error", "ENOSYS"),
        ),
        (
            "mount config not JSON",
            Box::new(move |h, ids| h.request(vm(ids), configure_mounts(vec![mount("/mnt", "memory", "{", false)]))),
            Rejected("invalid_state", "not valid JSON"),
        ),
        (
            "bad toolkit name",
            Box::new(move |h, ids| h.request(vm(ids), toolkit("Files!"))),
            Rejected("invalid_state", "invalid toolkit name"),
        ),
        (
            "duplicate toolkit",
            Box::new(move |h, ids| {
                h.request(vm(ids), toolkit("files"));
                h.request(vm(ids), toolkit("files"))
            }),
            Rejected("conflict", "toolkit already registered: files"),
        ),
        (
            "garbage body with an id",
            Box::new(|h, _| {
                let mut bytes = encode(&request_frame(41, OwnershipScope::connection("c"), open_session()));
                let last = bytes.len() - 1;
                bytes[last] = 0x80;
                h.send_bytes(&bytes)
            }),
            Rejected("invalid_state", "malformed_frame"),
        ),
        (
            "response frame from the host",
            Box::new(|h, _| {
                h.send_frame(ProtocolFrame::ResponseFrame(ResponseFrame {
                    schema: ProtocolSchema::current(),
                    request_id: 1,
                    ownership: OwnershipScope::connection("c"),
                    payload: ResponsePayload::RejectedResponse(RejectedResponse {
                        code: "x".into(),
                        message: "y".into(),
                    }),
                }))
            }),
            ProtocolError("unexpected_frame_kind"),
        ),
    ]
}

fn protocol_error_code(frame: &ProtocolFrame) -> String {
    match frame {
        ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ExtEnvelope(envelope), .. }) => {
            assert_eq!(envelope.namespace, PROTOCOL_ERROR_NAMESPACE);
            let body: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
            body["code"].as_str().unwrap().to_owned()
        }
        other => panic!("expected a protocol-error event, got {other:?}"),
    }
}

#[test]
fn every_bad_request_is_refused_with_its_code_and_service_continues() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut host = Harness::new();
    let ids = setup(&mut host);
    for (name, case, expect) in cases {
        let frames = case(&mut host, &ids);
        let last = frames.last().unwrap_or_else(|| panic!("{name}: no output at all"));
        match expect {
            Expect::Rejected(code, text) => {
                let (got_code, message) = rejection(last);
                assert_eq!(got_code, code, "{name}: {message}");
                assert!(message.contains(text), "{name}: {message:?} lacks {text:?}");
            }
            Expect::ProtocolError(code) => assert_eq!(protocol_error_code(last), code, "{name}"),
        }
        // The sidecar still serves a good request, and nothing stored was lost.
        let session = host.open_session(&ids.conn);
        assert!(session.starts_with("session-"), "{name}");
        assert!(host.sidecar.vms().iter().any(|vm| vm.vm_id == ids.vm), "{name}: the VM survived");
        assert!(host.sidecar.vms().iter().any(|vm| vm.vm_id == ids.other_vm), "{name}");
        let _ = &ids.other_session;
    }
}

#[test]
fn configured_auth_token_is_enforced() {
    let mut host =
        Harness::with_config(SidecarConfig { expected_auth_token: Some("secret".into()), ..SidecarConfig::default() });
    let frames = host.request(OwnershipScope::connection("c"), authenticate("wrong"));
    assert_eq!(rejection(&frames[0]).0, "unauthorized");
    let frames = host.request(OwnershipScope::connection("c"), authenticate("secret"));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::AuthenticatedResponse(_)));
}

#[test]
fn oversized_frame_is_refused_by_id_and_the_stream_continues() {
    let limit = kernel::dispatch::MIN_FRAME_LIMIT_BYTES;
    let mut host = Harness::with_config(SidecarConfig { max_frame_bytes: limit, ..SidecarConfig::default() });
    let big = encode(&request_frame(
        9,
        OwnershipScope::connection("c"),
        RequestPayload::AuthenticateRequest(AuthenticateRequest {
            client_name: "x".repeat(limit),
            ..authenticate_request("t")
        }),
    ));
    let frames = host.send_bytes(&big);
    let (code, message) = rejection(&frames[0]);
    assert_eq!((code.as_str(), frames.len()), ("frame_too_large", 1), "{message}");
    assert!(host.authenticate().starts_with("conn-"));
}

#[test]
fn another_stream_cannot_see_this_streams_objects() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm("{}");
    let intruder = host.sidecar.open_stream().unwrap();
    let frame = request_frame(1, OwnershipScope::vm(&conn, &session, &vm), dispose());
    host.sidecar.handle_frame(intruder, frame, host.now);
    let output = host.sidecar.poll_output().unwrap();
    assert_eq!(output.stream, intruder);
    let frame = schema::decode_frame(&output.bytes, usize::MAX).unwrap();
    assert_eq!(rejection(&frame).0, "unauthorized", "the intruder cannot even tell the connection exists");
    assert_eq!(host.sidecar.vms().len(), 1);
}

#[test]
fn vm_limits_per_session_are_enforced() {
    let mut host = Harness::new();
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    for _ in 0..kernel::dispatch::MAX_VMS_PER_SESSION {
        let frames = host.request(OwnershipScope::session(&conn, &session), create_vm("{}"));
        assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmCreatedResponse(_)));
    }
    let frames = host.request(OwnershipScope::session(&conn, &session), create_vm("{}"));
    assert_eq!(rejection(&frames[0]).0, "limit_exceeded");
}

/// Connections are bounded per stream; when the stream is full, its oldest connection that owns
/// no VM is forgotten to make room, and only connections that own VMs use the room up.
#[test]
fn connections_per_stream_are_bounded_and_idle_ones_reclaimed() {
    let mut host = Harness::new();
    let first = host.authenticate();
    for _ in 1..kernel::dispatch::MAX_CONNECTIONS_PER_STREAM {
        let conn = host.authenticate();
        let session = host.open_session(&conn);
        let frames = host.request(OwnershipScope::session(&conn, &session), create_vm("{}"));
        assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmCreatedResponse(_)));
    }
    // The first connection owns nothing: it makes room.
    let frames = host.request(OwnershipScope::connection("c"), authenticate("t"));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::AuthenticatedResponse(_)), "{frames:?}");
    let gone = host.request(OwnershipScope::connection(&first), open_session());
    assert_eq!(rejection(&gone[0]).0, "unauthorized");
    // The new one owns nothing either, but it is the only idle one left and is the newest: it is
    // reclaimed next, and once every connection owns a VM there is no room.
    let frames = host.request(OwnershipScope::connection("c"), authenticate("t"));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::AuthenticatedResponse(_)), "{frames:?}");
    let ResponsePayload::AuthenticatedResponse(last) = response_payload(&frames[0]).clone() else { panic!() };
    let session = host.open_session(&last.connection_id);
    let frames = host.request(OwnershipScope::session(&last.connection_id, &session), create_vm("{}"));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmCreatedResponse(_)));
    let frames = host.request(OwnershipScope::connection("c"), authenticate("t"));
    assert_eq!(rejection(&frames[0]).0, "limit_exceeded");
}

#[test]
fn frame_limit_is_raised_to_the_minimum_that_fits_every_rejection() {
    let mut host = Harness::with_config(SidecarConfig { max_frame_bytes: 10, ..SidecarConfig::default() });
    let frames = host.request(OwnershipScope::connection("c"), authenticate("t"));
    match response_payload(&frames[0]) {
        ResponsePayload::AuthenticatedResponse(r) => {
            assert_eq!(r.max_frame_bytes as usize, kernel::dispatch::MIN_FRAME_LIMIT_BYTES)
        }
        other => panic!("{other:?}"),
    }
}

/// A request whose echoed parts are huge still gets a small rejection: long ids are replaced
/// by the unknown scope and messages are cut at MAX_REJECTION_MESSAGE_BYTES.
#[test]
fn huge_ids_and_messages_are_not_echoed() {
    let mut host = Harness::new();
    let huge = "c".repeat(kernel::dispatch::MAX_REJECTION_MESSAGE_BYTES.max(kernel::dispatch::MAX_ECHOED_ID_BYTES) + 1);
    let frames = host.request(OwnershipScope::connection(&huge), open_session());
    let ProtocolFrame::ResponseFrame(response) = &frames[0] else { panic!() };
    assert_eq!(response.ownership, OwnershipScope::connection(kernel::dispatch::UNKNOWN_OWNER_ID));
    let (code, message) = rejection(&frames[0]);
    assert_eq!(code, "unauthorized");
    assert!(message.len() <= kernel::dispatch::MAX_REJECTION_MESSAGE_BYTES + 3, "{}", message.len());
    assert!(message.ends_with("..."));

    // A schema name of 1 MiB on a frame whose id cannot be answered: the protocol-error event
    // carries a bounded message.
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema { name: "n".repeat(1 << 20), version: 7 },
        request_id: 0,
        ownership: OwnershipScope::connection("c"),
        payload: open_session(),
    });
    let frames = host.send_frame(frame);
    let bytes = encode(&frames[0]);
    assert!(bytes.len() < 2 * kernel::dispatch::MAX_REJECTION_MESSAGE_BYTES, "{}", bytes.len());
}

/// Found by the kernel_requests fuzz target: a refused Authenticate echoed its unbounded
/// connection id, so a long one made the rejection outgrow the frame limit (and the kernel's
/// encode assertion fired). Refusals now echo only usable scopes.
#[test]
fn refused_authenticate_with_a_huge_connection_id_is_answered() {
    let limit = kernel::dispatch::MIN_FRAME_LIMIT_BYTES;
    let mut host = Harness::with_config(SidecarConfig { max_frame_bytes: limit, ..SidecarConfig::default() });
    let huge = "h".repeat(limit - 200);
    let frames = host.request(OwnershipScope::connection(&huge), authenticate_at(6, 1));
    assert_eq!(rejection(&frames[0]).0, "protocol_version_mismatch");
    let ProtocolFrame::ResponseFrame(response) = &frames[0] else { panic!() };
    assert_eq!(response.ownership, OwnershipScope::connection(kernel::dispatch::UNKNOWN_OWNER_ID));
}

/// A protocol error goes to the stream's most recent connection: with ten, `conn-10`, not
/// `conn-9` (the largest id as a string).
#[test]
fn protocol_errors_go_to_the_most_recent_connection() {
    let mut host = Harness::new();
    let connections: Vec<String> = (0..10).map(|_| host.authenticate()).collect();
    assert_eq!(connections.last().map(String::as_str), Some("conn-10"));
    let frames = host.send_frame(ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: -3,
        ownership: OwnershipScope::connection("conn-10"),
        payload: SidecarResponsePayload::ExtEnvelope(ExtEnvelope { namespace: "x".into(), payload: vec![] }),
    }));
    let ProtocolFrame::EventFrame(event) = frames.last().unwrap() else { panic!("{frames:?}") };
    assert_eq!(event.ownership, OwnershipScope::connection("conn-10"));
}
