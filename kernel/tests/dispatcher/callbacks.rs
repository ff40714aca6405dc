//! Host callbacks and permission prompts: sidecar-initiated requests with deadlines.

use crate::harness::*;
use kernel::dispatch::{HostCallbackOutcome, PermissionCheck, PromptOutcome};
use kernel::policy::permissions::Capability;
use schema::wire::*;
use std::collections::BTreeMap;
use testkit::requests::dispose;

fn register(host: &mut Harness, scope: &OwnershipScope, timeout_ms: Option<u64>) -> (u32, String) {
    let frames = host.request(
        scope.clone(),
        RequestPayload::RegisterHostCallbacksRequest(RegisterHostCallbacksRequest {
            name: "files".into(),
            description: "file tools".into(),
            command_aliases: vec!["files".into()],
            registry_command_aliases: vec!["fetch-url".into()],
            callbacks: BTreeMap::from([(
                "read".to_owned(),
                RegisteredHostCallbackDefinition {
                    description: "read a file".into(),
                    input_schema: r#"{"type":"object"}"#.into(),
                    timeout_ms,
                    examples: vec![],
                },
            )]),
        }),
    );
    match response_payload(&frames[0]) {
        ResponsePayload::HostCallbacksRegisteredResponse(r) => (r.command_count, r.registration.clone()),
        other => panic!("{other:?}"),
    }
}

fn sidecar_request(frame: &ProtocolFrame) -> &SidecarRequestFrame {
    match frame {
        ProtocolFrame::SidecarRequestFrame(request) => request,
        other => panic!("expected a sidecar request, got {other:?}"),
    }
}

#[test]
fn host_callback_round_trip() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm("{}");
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    assert_eq!(register(&mut host, &scope, Some(5_000)), (2, "files".to_owned()));
    let invocation = host.sidecar.invoke_host_callback(&vm, "files:read", r#"{"path":"/a"}"#).unwrap();
    let frames = host.drain();
    let request = sidecar_request(&frames[0]);
    assert_eq!(request.request_id, -1);
    assert_eq!(request.ownership, scope);
    let SidecarRequestPayload::HostCallbackRequest(call) = &request.payload else { panic!() };
    assert_eq!(
        (call.callback_key.as_str(), call.timeout_ms, call.invocation_id.as_str()),
        ("files:read", 5_000, invocation.as_str())
    );
    assert_eq!(host.sidecar.take_host_callback_outcome(&invocation), None, "still pending");
    let answer = ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: -1,
        ownership: scope.clone(),
        payload: SidecarResponsePayload::HostCallbackResultResponse(HostCallbackResultResponse {
            invocation_id: invocation.clone(),
            result: Some(r#"{"ok":1}"#.into()),
            error: None,
        }),
    });
    assert!(host.send_frame(answer.clone()).is_empty());
    assert_eq!(
        host.sidecar.take_host_callback_outcome(&invocation),
        Some(HostCallbackOutcome::Result(r#"{"ok":1}"#.into()))
    );
    // The same answer again is late: reported, nothing else disturbed.
    let frames = host.send_frame(answer);
    assert!(matches!(&frames[0], ProtocolFrame::EventFrame(_)));
    assert_eq!(host.sidecar.vms().len(), 1);
}

#[test]
fn host_callback_times_out_on_the_injected_clock() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm("{}");
    register(&mut host, &OwnershipScope::vm(&conn, &session, &vm), None);
    let invocation = host.sidecar.invoke_host_callback(&vm, "fetch-url", "{}").unwrap();
    host.drain();
    assert_eq!(
        host.sidecar.next_deadline(),
        Some(host.now.monotonic_ms + kernel::policy::config::DEFAULT_TOOL_TIMEOUT_MS)
    );
    host.advance(29_999);
    assert_eq!(host.sidecar.take_host_callback_outcome(&invocation), None);
    host.advance(1);
    assert_eq!(host.sidecar.take_host_callback_outcome(&invocation), Some(HostCallbackOutcome::TimedOut));
    assert_eq!(host.sidecar.next_deadline(), None);
}

#[test]
fn unknown_callback_is_refused() {
    let mut host = Harness::new();
    let (_, _, vm) = host.vm("{}");
    let error = host.sidecar.invoke_host_callback(&vm, "nope:tool", "{}").unwrap_err();
    assert!(error.message.contains("unknown tool callback"), "{error}");
}

const ASK_FS: &str = r#"{"permissions":{"fs":{"default":"deny","rules":[{"mode":"ask","operations":["write"],"paths":["/tmp/**"]}]}},
  "permissionPrompts":{"enabled":true,"timeoutMs":1000}}"#;

fn answer_prompt(host: &mut Harness, request: &SidecarRequestFrame, decision: &str) {
    let payload = SidecarResponsePayload::ExtEnvelope(ExtEnvelope {
        namespace: kernel::dispatch::PERMISSION_PROMPT_NAMESPACE.into(),
        payload: format!(r#"{{"decision":"{decision}"}}"#).into_bytes(),
    });
    host.send_frame(ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: request.request_id,
        ownership: request.ownership.clone(),
        payload,
    }));
}

fn prompt(host: &mut Harness, vm: &str) -> (kernel::dispatch::PromptTicket, SidecarRequestFrame) {
    let PermissionCheck::Prompted(ticket) = host.sidecar.check_permission(vm, Capability::FsWrite, "/tmp/a").unwrap()
    else {
        panic!("expected a prompt")
    };
    let frames = host.drain();
    let request = sidecar_request(&frames[0]).clone();
    let SidecarRequestPayload::ExtEnvelope(envelope) = &request.payload else { panic!() };
    let body: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(body["capability"], "fs.write");
    assert_eq!(body["resource"], "/tmp/a");
    (ticket, request)
}

#[test]
fn ask_answered_allow() {
    let mut host = Harness::new();
    let (_, _, vm) = host.vm(ASK_FS);
    let (ticket, request) = prompt(&mut host, &vm);
    answer_prompt(&mut host, &request, "allow");
    assert_eq!(host.sidecar.take_prompt_outcome(ticket), Some(PromptOutcome::Allowed));
}

#[test]
fn ask_answered_deny() {
    let mut host = Harness::new();
    let (_, _, vm) = host.vm(ASK_FS);
    let (ticket, request) = prompt(&mut host, &vm);
    answer_prompt(&mut host, &request, "deny");
    assert!(matches!(host.sidecar.take_prompt_outcome(ticket), Some(PromptOutcome::Denied(_))));
}

#[test]
fn ask_never_answered_times_out_as_denial() {
    let mut host = Harness::new();
    let (_, _, vm) = host.vm(ASK_FS);
    let (ticket, _) = prompt(&mut host, &vm);
    host.advance(999);
    assert_eq!(host.sidecar.take_prompt_outcome(ticket), None);
    host.advance(1);
    match host.sidecar.take_prompt_outcome(ticket) {
        Some(PromptOutcome::Denied(message)) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ask_without_opt_in_is_a_denial() {
    let mut host = Harness::new();
    let (_, _, vm) = host.vm(r#"{"permissions":{"fs":"ask"}}"#);
    assert_eq!(
        host.sidecar.check_permission(&vm, Capability::FsRead, "/etc/passwd").unwrap(),
        PermissionCheck::Denied("permission prompt required for fs.read".into())
    );
    let (_, _, open) = host.vm(r#"{"permissions":{"fs":"allow","network":"deny"}}"#);
    assert_eq!(host.sidecar.check_permission(&open, Capability::FsRead, "/x").unwrap(), PermissionCheck::Allowed);
    assert_eq!(
        host.sidecar.check_permission(&open, Capability::NetworkHttp, "tcp://example.com:443").unwrap(),
        PermissionCheck::Denied("blocked by network.http policy".into())
    );
}

#[test]
fn disposing_a_vm_cancels_its_prompts() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm(ASK_FS);
    let (ticket, _) = prompt(&mut host, &vm);
    host.request(OwnershipScope::vm(&conn, &session, &vm), dispose());
    assert!(matches!(host.sidecar.take_prompt_outcome(ticket), Some(PromptOutcome::Denied(_))));
    assert_eq!(host.sidecar.pending_sidecar_requests(), 0);
}
