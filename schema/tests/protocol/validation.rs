//! Protocol rules: schema, request-id direction, ownership fields and per-kind scopes.

use schema::validate::{request_requirement, OwnershipRequirement, RequestDirection};
use schema::wire::*;
use schema::{encode_frame, validate_frame, FrameError, DEFAULT_MAX_FRAME_BYTES};

fn request(id: i64, ownership: OwnershipScope, payload: RequestPayload) -> ProtocolFrame {
    ProtocolFrame::RequestFrame(RequestFrame { schema: ProtocolSchema::current(), request_id: id, ownership, payload })
}

fn authenticate(token: &str) -> RequestPayload {
    RequestPayload::AuthenticateRequest(AuthenticateRequest {
        client_name: "host".into(),
        auth_token: token.into(),
        protocol_version: 7,
        bridge_version: 1,
    })
}

fn dispose() -> RequestPayload {
    RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested })
}

#[test]
fn rule_table() {
    let conn = || OwnershipScope::connection("conn-1");
    let session = || OwnershipScope::session("conn-1", "s-1");
    let vm = || OwnershipScope::vm("conn-1", "s-1", "vm-1");
    let mut wrong_schema = request(1, conn(), authenticate("t"));
    if let ProtocolFrame::RequestFrame(f) = &mut wrong_schema {
        f.schema.version = 6;
    }
    let cases: Vec<(ProtocolFrame, Result<(), FrameError>)> = vec![
        (request(1, conn(), authenticate("t")), Ok(())),
        (wrong_schema, Err(FrameError::UnsupportedSchema { name: "secure-exec-sidecar".into(), version: 6 })),
        (request(0, conn(), authenticate("t")), Err(FrameError::InvalidRequestId)),
        (
            request(-3, conn(), authenticate("t")),
            Err(FrameError::InvalidRequestDirection { request_id: -3, expected: RequestDirection::Host }),
        ),
        (request(1, conn(), authenticate("")), Err(FrameError::EmptyAuthToken)),
        (
            request(1, OwnershipScope::connection(""), authenticate("t")),
            Err(FrameError::EmptyOwnershipField { field: "connection_id" }),
        ),
        (
            request(1, OwnershipScope::vm("c", "s", ""), dispose()),
            Err(FrameError::EmptyOwnershipField { field: "vm_id" }),
        ),
        (
            request(1, OwnershipScope::session("c", ""), dispose()),
            Err(FrameError::EmptyOwnershipField { field: "session_id" }),
        ),
        (
            request(1, session(), authenticate("t")),
            Err(FrameError::InvalidOwnershipScope {
                required: OwnershipRequirement::Connection,
                actual: OwnershipRequirement::Session,
            }),
        ),
        (
            request(1, session(), dispose()),
            Err(FrameError::InvalidOwnershipScope {
                required: OwnershipRequirement::Vm,
                actual: OwnershipRequirement::Session,
            }),
        ),
        (request(1, vm(), dispose()), Ok(())),
        (
            request(1, session(), RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: "k".into() })),
            Ok(()),
        ),
        (request(1, vm(), RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: "k".into() })), Ok(())),
        (
            request(1, conn(), RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: "k".into() })),
            Err(FrameError::InvalidOwnershipScope {
                required: OwnershipRequirement::SessionOrVm,
                actual: OwnershipRequirement::Connection,
            }),
        ),
        (
            request(1, conn(), RequestPayload::ExtEnvelope(ExtEnvelope { namespace: "x".into(), payload: vec![] })),
            Ok(()),
        ),
        (
            ProtocolFrame::SidecarRequestFrame(SidecarRequestFrame {
                schema: ProtocolSchema::current(),
                request_id: 5,
                ownership: vm(),
                payload: SidecarRequestPayload::ExtEnvelope(ExtEnvelope { namespace: "x".into(), payload: vec![] }),
            }),
            Err(FrameError::InvalidRequestDirection { request_id: 5, expected: RequestDirection::Sidecar }),
        ),
        (
            ProtocolFrame::EventFrame(EventFrame {
                schema: ProtocolSchema::current(),
                ownership: session(),
                payload: EventPayload::VmLifecycleEvent(VmLifecycleEvent { state: VmLifecycleState::Ready }),
            }),
            Err(FrameError::InvalidOwnershipScope {
                required: OwnershipRequirement::Vm,
                actual: OwnershipRequirement::Session,
            }),
        ),
    ];
    for (index, (frame, expected)) in cases.into_iter().enumerate() {
        assert_eq!(validate_frame(&frame), expected, "case {index}: {frame:?}");
        // The encoder refuses exactly what validation refuses.
        assert_eq!(encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).map(|_| ()), expected, "case {index}");
    }
}

#[test]
fn every_request_kind_has_a_documented_requirement() {
    // Connection-scoped: 2 kinds; Session: 1; SessionOrVm: 2; Any: 1; the other 22 are Vm.
    let samples = [
        (authenticate("t"), OwnershipRequirement::Connection),
        (
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::JavaScript,
                config: "{}".into(),
            }),
            OwnershipRequirement::Session,
        ),
        (RequestPayload::GetZombieTimerCountRequest, OwnershipRequirement::Vm),
        (RequestPayload::CreateLayerRequest, OwnershipRequirement::Vm),
    ];
    for (payload, required) in samples {
        assert_eq!(request_requirement(&payload), required, "{}", payload.member_name());
    }
}

#[test]
fn error_codes_are_stable_and_map_to_wire_codes() {
    let cases = [
        (FrameError::FrameTooLarge { size: 2, max: 1 }, "frame_too_large", "frame_too_large"),
        (FrameError::InvalidRequestId, "invalid_request_id", "invalid_state"),
        (FrameError::EmptyAuthToken, "empty_auth_token", "invalid_state"),
        (FrameError::TruncatedFrame { actual: 1 }, "truncated_frame", "invalid_state"),
    ];
    for (error, code, wire) in cases {
        assert_eq!(error.code(), code);
        assert_eq!(error.rejection_code(), wire);
        assert!(error.rejection_message().starts_with(&format!("{code}: ")));
    }
}
