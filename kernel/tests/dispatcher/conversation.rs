//! A whole scripted conversation, asserted frame by frame, and run twice for determinism.

use crate::harness::*;
use schema::wire::*;
use std::collections::BTreeMap;
use testkit::requests::{authenticate, create_vm, create_vm_for, dispose, mount, open_session};

fn response(id: i64, ownership: OwnershipScope, payload: ResponsePayload) -> ProtocolFrame {
    ProtocolFrame::ResponseFrame(ResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: id,
        ownership,
        payload,
    })
}

fn lifecycle_event(state: VmLifecycleState) -> ProtocolFrame {
    ProtocolFrame::EventFrame(EventFrame {
        schema: ProtocolSchema::current(),
        ownership: OwnershipScope::vm("conn-1", "session-1", "vm-1"),
        payload: EventPayload::VmLifecycleEvent(VmLifecycleEvent { state }),
    })
}

const CONFIG: &str = r#"{"cwd":"/home/user","env":{"A":"1"},"permissions":{"fs":"allow","env":"allow"},
  "limits":{"resources":{"maxProcesses":8}}}"#;

/// Runs the script; returns every output frame's bytes.
fn run_script() -> Vec<Vec<u8>> {
    let mut host = Harness::new();
    let mut all = Vec::new();
    let vm_scope = OwnershipScope::vm("conn-1", "session-1", "vm-1");

    // Authenticate: a fresh connection id, echoed as the response's ownership.
    let frames = host.request(OwnershipScope::connection("client-hint"), authenticate("token"));
    assert_eq!(
        frames,
        [response(
            1,
            OwnershipScope::connection("conn-1"),
            ResponsePayload::AuthenticatedResponse(AuthenticatedResponse {
                sidecar_id: "secure-exec-sidecar".into(),
                connection_id: "conn-1".into(),
                max_frame_bytes: 16 * 1024 * 1024,
            })
        )]
    );
    all.extend(host.drain_bytes());

    let frames = host.request(OwnershipScope::connection("conn-1"), open_session());
    assert_eq!(
        frames,
        [response(
            2,
            OwnershipScope::connection("conn-1"),
            ResponsePayload::SessionOpenedResponse(SessionOpenedResponse {
                session_id: "session-1".into(),
                owner_connection_id: "conn-1".into(),
            })
        )]
    );

    let frames = host.request(OwnershipScope::session("conn-1", "session-1"), create_vm(CONFIG));
    assert_eq!(
        frames,
        [
            response(
                3,
                OwnershipScope::session("conn-1", "session-1"),
                ResponsePayload::VmCreatedResponse(VmCreatedResponse { vm_id: "vm-1".into() })
            ),
            lifecycle_event(VmLifecycleState::Creating),
            lifecycle_event(VmLifecycleState::Ready),
        ]
    );
    assert_eq!(host.sidecar.vm_limits("vm-1").map(|l| l.resources.max_processes), Some(8));

    // Without a package source, software is refused, never accepted and ignored.
    let data = mount("/data", "memory", "{}", true);
    let with_software = ConfigureVmRequest {
        software: vec![SoftwareDescriptor { package_name: "coreutils".into(), root: "/opt/coreutils".into() }],
        ..ConfigureVmRequest::mounts(vec![data.clone()])
    };
    let frames = host.request(vm_scope.clone(), RequestPayload::ConfigureVmRequest(with_software));
    assert_eq!(
        rejection(&frames[0]),
        (
            "unsupported".to_owned(),
            "ConfigureVm software is not available: this sidecar has no package source".to_owned()
        )
    );
    let frames = host.request(
        vm_scope.clone(),
        RequestPayload::ConfigureVmRequest(ConfigureVmRequest {
            command_permissions: BTreeMap::from([("ls".to_owned(), WasmPermissionTier::ReadOnly)]),
            instructions: vec!["be brief".into()],
            ..ConfigureVmRequest::mounts(vec![data])
        }),
    );
    assert_eq!(
        frames,
        [response(
            5,
            vm_scope.clone(),
            ResponsePayload::VmConfiguredResponse(VmConfiguredResponse { applied_mounts: 1, applied_software: 0 })
        )]
    );

    let frames = host.request(vm_scope.clone(), dispose());
    assert_eq!(
        frames,
        [
            response(
                6,
                vm_scope.clone(),
                ResponsePayload::VmDisposedResponse(VmDisposedResponse { vm_id: "vm-1".into() })
            ),
            lifecycle_event(VmLifecycleState::Disposing),
            lifecycle_event(VmLifecycleState::Disposed),
        ]
    );
    assert!(host.sidecar.vms().is_empty(), "nothing of the VM is left");
    for frame in frames {
        all.push(encode(&frame));
    }
    all
}

#[test]
fn scripted_conversation() {
    run_script();
}

#[test]
fn same_inputs_give_identical_bytes() {
    assert_eq!(run_script(), run_script());
}

#[test]
fn closing_the_stream_disposes_its_vms_and_forgets_its_connections() {
    let mut host = Harness::new();
    let (_, _, vm) = host.vm("{}");
    host.drain();
    host.sidecar.close_stream(host.stream, host.now);
    assert!(host.sidecar.vms().is_empty(), "{vm} must be gone");
    assert_eq!(host.sidecar.connection_count(), 0);
    assert_eq!(host.sidecar.session_count(), 0);
    assert!(host.drain().is_empty(), "nothing is sent to a closed stream");
}

#[test]
fn shutdown_disposes_every_vm_with_lifecycle_events() {
    let mut host = Harness::new();
    let (conn, session, _) = host.vm("{}");
    let frames = host.request(OwnershipScope::session(&conn, &session), create_vm_for(GuestRuntimeKind::Python, "{}"));
    assert_eq!(frames.len(), 3);
    host.sidecar.shutdown(host.now);
    let states: Vec<_> = host.drain().iter().map(lifecycle).collect();
    assert_eq!(
        states,
        [
            ("vm-1".to_owned(), VmLifecycleState::Disposing),
            ("vm-1".to_owned(), VmLifecycleState::Disposed),
            ("vm-2".to_owned(), VmLifecycleState::Disposing),
            ("vm-2".to_owned(), VmLifecycleState::Disposed),
        ]
    );
}

#[test]
fn reauthentication_gives_a_new_connection_and_keeps_the_old_one() {
    let mut host = Harness::new();
    let first = host.authenticate();
    let second = host.authenticate();
    assert_eq!((first.as_str(), second.as_str()), ("conn-1", "conn-2"));
    let session = host.open_session(&first);
    assert_eq!(session, "session-1");
}
