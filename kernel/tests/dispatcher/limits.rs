//! Every named bound of the dispatcher, hit: the request over it is refused with the right
//! code, and nothing already stored changes.

use crate::filesystem::{req, write};
use crate::harness::*;
use kernel::dispatch::*;
use kernel::policy::config::{
    MAX_REGISTERED_TOOLKITS, MAX_REGISTERED_TOOLS_PER_VM, MAX_TOOLS_PER_TOOLKIT, MAX_TOOL_EXAMPLES_PER_TOOL,
    MAX_TOOL_EXAMPLE_INPUT_BYTES, MAX_TOOL_SCHEMA_BYTES, MAX_TOOL_TIMEOUT_MS,
};
use kernel::{Sidecar, SidecarConfig};
use schema::wire::*;
use testkit::requests::{configure_mounts, create_vm, dispose, execute, open_session};

fn create(host: &mut Harness, conn: &str, session: &str) -> Vec<ProtocolFrame> {
    host.request(OwnershipScope::session(conn, session), create_vm("{}"))
}

fn definition() -> RegisteredHostCallbackDefinition {
    RegisteredHostCallbackDefinition {
        description: "a tool".into(),
        input_schema: "{}".into(),
        timeout_ms: None,
        examples: vec![],
    }
}

fn toolkit(name: &str, tools: usize, edit: impl FnOnce(&mut RegisterHostCallbacksRequest)) -> RequestPayload {
    testkit::requests::register_toolkit(name, tools, definition, edit)
}

fn code_of(frames: &[ProtocolFrame]) -> String {
    match response_payload(&frames[0]) {
        ResponsePayload::RejectedResponse(r) => format!("{}: {}", r.code, r.message),
        other => format!("accepted: {}", other.member_name()),
    }
}

#[test]
fn streams_are_bounded() {
    let mut sidecar = Sidecar::new(SidecarConfig::default());
    for _ in 0..MAX_STREAMS {
        assert!(sidecar.open_stream().is_some());
    }
    assert_eq!(sidecar.open_stream(), None);
}

/// Sessions are bounded per connection, but only sessions that own a VM use the room up: when
/// the connection is full, its oldest session without a VM is forgotten (D12: a long-lived
/// connection opening a session per job used to be dead after 256 of them).
#[test]
fn sessions_per_connection_are_bounded_and_empty_ones_reclaimed() {
    let mut host = Harness::new();
    let conn = host.authenticate();
    let mut sessions = Vec::new();
    for _ in 0..MAX_SESSIONS_PER_CONNECTION {
        let session = host.open_session(&conn);
        assert!(matches!(
            response_payload(&create(&mut host, &conn, &session)[0]),
            ResponsePayload::VmCreatedResponse(_)
        ));
        host.drain();
        sessions.push(session);
    }
    // Every session owns a VM: no room.
    let frames = host.request(OwnershipScope::connection(&conn), open_session());
    assert!(code_of(&frames).starts_with("limit_exceeded: ENOSPC: sessions per connection"), "{}", code_of(&frames));
    assert_eq!(host.sidecar.session_count(), MAX_SESSIONS_PER_CONNECTION);
    // Dispose the VMs of session 10 and session 2: the oldest of them (2) makes room first.
    for index in [9, 1] {
        let vm = host.sidecar.vms().into_iter().find(|vm| vm.session_id == sessions[index]).unwrap().vm_id;
        let disposed = host.request(OwnershipScope::vm(&conn, &sessions[index], &vm), dispose());
        assert!(matches!(response_payload(&disposed[0]), ResponsePayload::VmDisposedResponse(_)));
    }
    let opened = host.open_session(&conn);
    assert_eq!(host.sidecar.session_count(), MAX_SESSIONS_PER_CONNECTION);
    let gone = create(&mut host, &conn, &sessions[1]);
    assert!(code_of(&gone).starts_with("invalid_state: unknown sidecar session"), "{}", code_of(&gone));
    assert!(matches!(response_payload(&create(&mut host, &conn, &opened)[0]), ResponsePayload::VmCreatedResponse(_)));
    host.drain();
    // The next one takes session 10's place; once it owns a VM there is no room again.
    let last = host.open_session(&conn);
    assert!(matches!(response_payload(&create(&mut host, &conn, &last)[0]), ResponsePayload::VmCreatedResponse(_)));
    host.drain();
    let frames = host.request(OwnershipScope::connection(&conn), open_session());
    assert!(code_of(&frames).starts_with("limit_exceeded"), "{}", code_of(&frames));
}

#[test]
fn vms_in_total_are_bounded() {
    let mut host = Harness::new();
    let conn = host.authenticate();
    let per_session = MAX_VMS_PER_SESSION;
    for _ in 0..MAX_VMS / per_session {
        let session = host.open_session(&conn);
        for _ in 0..per_session {
            assert!(matches!(
                response_payload(&create(&mut host, &conn, &session)[0]),
                ResponsePayload::VmCreatedResponse(_)
            ));
            host.drain();
        }
    }
    let session = host.open_session(&conn);
    let frames = create(&mut host, &conn, &session);
    assert!(code_of(&frames).starts_with("limit_exceeded: ENOSPC: VMs limit"), "{}", code_of(&frames));
    assert_eq!(host.sidecar.vms().len(), MAX_VMS);
}

#[test]
fn pending_sidecar_requests_are_bounded() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm("{}");
    host.request(OwnershipScope::vm(&conn, &session, &vm), toolkit("files", 1, |_| {}));
    for _ in 0..MAX_PENDING_SIDECAR_REQUESTS {
        host.sidecar.invoke_host_callback(&vm, "files:tool-0", "{}").unwrap();
    }
    let error = host.sidecar.invoke_host_callback(&vm, "files:tool-0", "{}").unwrap_err();
    assert_eq!(error.code.as_str(), "limit_exceeded");
    assert_eq!(host.sidecar.pending_sidecar_requests(), MAX_PENDING_SIDECAR_REQUESTS);
}

#[test]
fn mounts_per_configure_are_bounded() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm(r#"{"permissions":{"fs":"allow"}}"#);
    let mounts = |n: usize| configure_mounts((0..n).map(|i| MountDescriptor::memory(format!("/m{i}"))).collect());
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    assert_eq!(code_of(&host.request(scope.clone(), mounts(MAX_MOUNTS))), "accepted: VmConfiguredResponse");
    assert!(code_of(&host.request(scope, mounts(MAX_MOUNTS + 1))).starts_with("limit_exceeded"));
}

/// A `limits.tools` bound as a count.
fn count(bound: u64) -> usize {
    usize::try_from(bound).unwrap()
}

/// The registry's bounds with the default `limits.tools` (their ceilings; lower ones are in
/// `vm_limits`).
#[test]
fn toolkit_bounds() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm("{}");
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
    let cases: Vec<(RequestPayload, &str)> = vec![
        (toolkit(&"a".repeat(MAX_TOOLKIT_NAME_BYTES + 1), 1, |_| {}), "max length is 64"),
        (toolkit("a", count(MAX_TOOLS_PER_TOOLKIT) + 1, |_| {}), "tools, max is 64"),
        (toolkit("a", 1, |r| r.description = long.clone()), "description is 201 characters"),
        (
            toolkit("a", 1, |r| {
                r.callbacks.insert(
                    "tool-0".into(),
                    RegisteredHostCallbackDefinition {
                        input_schema: format!("\"{}\"", "s".repeat(count(MAX_TOOL_SCHEMA_BYTES))),
                        ..definition()
                    },
                );
            }),
            "input schema is",
        ),
        (
            toolkit("a", 1, |r| {
                r.callbacks.insert(
                    "tool-0".into(),
                    RegisteredHostCallbackDefinition { timeout_ms: Some(MAX_TOOL_TIMEOUT_MS + 1), ..definition() },
                );
            }),
            "timeout is 300001ms",
        ),
        (
            toolkit("a", 1, |r| {
                let example = RegisteredHostCallbackExample { description: "e".into(), input: "{}".into() };
                r.callbacks.insert(
                    "tool-0".into(),
                    RegisteredHostCallbackDefinition {
                        examples: vec![example; count(MAX_TOOL_EXAMPLES_PER_TOOL) + 1],
                        ..definition()
                    },
                );
            }),
            "examples, max is 16",
        ),
        (
            toolkit("a", 1, |r| {
                let input = format!("\"{}\"", "i".repeat(count(MAX_TOOL_EXAMPLE_INPUT_BYTES)));
                let example = RegisteredHostCallbackExample { description: "e".into(), input };
                r.callbacks.insert(
                    "tool-0".into(),
                    RegisteredHostCallbackDefinition { examples: vec![example], ..definition() },
                );
            }),
            "example input is",
        ),
    ];
    for (payload, text) in cases {
        let outcome = code_of(&host.request(scope.clone(), payload));
        assert!(outcome.starts_with("invalid_state") && outcome.contains(text), "{outcome} lacks {text}");
    }
    // Toolkits per VM, then tools per VM.
    for i in 0..MAX_REGISTERED_TOOLKITS {
        let outcome = code_of(&host.request(scope.clone(), toolkit(&format!("kit-{i}"), 1, |_| {})));
        assert_eq!(outcome, "accepted: HostCallbacksRegisteredResponse");
    }
    let outcome = code_of(&host.request(scope.clone(), toolkit("one-more", 1, |_| {})));
    assert!(outcome.contains("registered toolkits, max is 64"), "{outcome}");

    let (conn, session, vm) = host.vm("{}");
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    for i in 0..MAX_REGISTERED_TOOLS_PER_VM / MAX_TOOLS_PER_TOOLKIT {
        let outcome =
            code_of(&host.request(scope.clone(), toolkit(&format!("big-{i}"), count(MAX_TOOLS_PER_TOOLKIT), |_| {})));
        assert_eq!(outcome, "accepted: HostCallbacksRegisteredResponse");
    }
    let outcome = code_of(&host.request(scope, toolkit("last", 1, |_| {})));
    assert!(outcome.contains("registered host callbacks, max is 256"), "{outcome}");
}

/// The sidecar-wide memory budget: VM filesystem content (and guest memory) count against it;
/// while it is used up, `CreateVm` and `Execute` are refused with `limit_exceeded`, and giving
/// memory back makes room again.
#[test]
fn the_sidecar_memory_budget_refuses_new_vms_and_processes_when_used_up() {
    const BUDGET: u64 = 1 << 20;
    let config = SidecarConfig { max_memory_bytes: BUDGET, ..SidecarConfig::default() };
    let engine = std::sync::Arc::new(testkit::script::ScriptEngine::new());
    let mut host = Harness::with_sidecar(Sidecar::new(config).with_guest_engine(engine));
    let (conn, session, vm) = host.vm(r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#);
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    let write = write("/tmp/big", &"x".repeat(usize::try_from(BUDGET).unwrap()));
    let written = host.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write));
    assert!(matches!(response_payload(&written[0]), ResponsePayload::GuestFilesystemResultResponse(_)));
    let refused = create(&mut host, &conn, &session);
    assert!(
        code_of(&refused)
            .starts_with("limit_exceeded: ENOMEM: the sidecar's memory budget of 1048576 bytes is used up"),
        "{}",
        code_of(&refused)
    );
    let refused = host.request(scope.clone(), execute("p", "cat", Vec::<String>::new()));
    assert!(code_of(&refused).starts_with("limit_exceeded: ENOMEM"), "{}", code_of(&refused));
    let removed = host.request(
        scope,
        RequestPayload::GuestFilesystemCallRequest(req(GuestFilesystemOperation::RemoveFile, "/tmp/big")),
    );
    assert!(matches!(response_payload(&removed[0]), ResponsePayload::GuestFilesystemResultResponse(_)));
    assert!(matches!(response_payload(&create(&mut host, &conn, &session)[0]), ResponsePayload::VmCreatedResponse(_)));
}
