//! The protocol's frame rules, checked after decoding and before encoding.
//!
//! # Ownership requirements
//!
//! Every payload kind names the ownership scope its frame must carry. The table below is the
//! single place that decides it (responses carry the scope of the request they answer):
//!
//! | payload | requirement | why |
//! |---|---|---|
//! | `AuthenticateRequest`, `OpenSessionRequest` (+ their responses) | Connection | they act on the connection itself; no session exists yet |
//! | `CreateVmRequest` / `VmCreatedResponse` | Session | a VM is created inside a session |
//! | `PersistenceLoadRequest`, `PersistenceFlushRequest` (+ responses) | SessionOrVm | durable state is keyed per session; a VM scope names that VM's filesystem |
//! | every other request (`DisposeVm` … `VmFetch`, filesystem, process, layer, socket queries) | Vm | they act on one VM |
//! | `RejectedResponse` | Any | a rejection answers whatever scope the request had |
//! | `ExtEnvelope` (request, response, event, sidecar request/response) | Any | extensions define their own scoping |
//! | `VmLifecycleEvent`, `ProcessOutputEvent`, `ProcessExitedEvent` | Vm | they describe one VM |
//! | `StructuredEvent` | SessionOrVm | session-wide or VM-specific notices |
//! | `HostCallbackRequest`, `JsBridgeCallRequest` (+ their results) | Vm | a guest in one VM asked |

use crate::wire::{
    EventPayload, OwnershipScope, ProtocolFrame, ProtocolSchema, RequestPayload, ResponsePayload,
    SidecarRequestPayload, SidecarResponsePayload,
};
use crate::{FrameError, PROTOCOL_NAME, PROTOCOL_VERSION};
use std::fmt;

/// The ownership scope a frame must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnershipRequirement {
    Any,
    Connection,
    Session,
    Vm,
    SessionOrVm,
}

impl fmt::Display for OwnershipRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::Connection => "connection",
            Self::Session => "session",
            Self::Vm => "vm",
            Self::SessionOrVm => "session-or-vm",
        })
    }
}

impl OwnershipRequirement {
    /// The scope kind a value actually carries.
    pub fn of(scope: &OwnershipScope) -> Self {
        match scope {
            OwnershipScope::ConnectionOwnership(_) => Self::Connection,
            OwnershipScope::SessionOwnership(_) => Self::Session,
            OwnershipScope::VmOwnership(_) => Self::Vm,
        }
    }

    pub fn is_satisfied_by(self, scope: &OwnershipScope) -> bool {
        let actual = Self::of(scope);
        match self {
            Self::Any => true,
            Self::SessionOrVm => matches!(actual, Self::Session | Self::Vm),
            required => required == actual,
        }
    }
}

/// Who allocates a request id: the host uses ids > 0, the sidecar ids < 0; 0 is never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestDirection {
    Host,
    Sidecar,
}

impl fmt::Display for RequestDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Host => "positive",
            Self::Sidecar => "negative",
        })
    }
}

/// The scope a host request must carry (see the module table).
pub fn request_requirement(payload: &RequestPayload) -> OwnershipRequirement {
    use RequestPayload as P;
    match payload {
        P::AuthenticateRequest(_) | P::OpenSessionRequest(_) => OwnershipRequirement::Connection,
        P::CreateVmRequest(_) => OwnershipRequirement::Session,
        P::PersistenceLoadRequest(_) | P::PersistenceFlushRequest(_) => OwnershipRequirement::SessionOrVm,
        P::ExtEnvelope(_) => OwnershipRequirement::Any,
        P::DisposeVmRequest(_)
        | P::BootstrapRootFilesystemRequest(_)
        | P::ConfigureVmRequest(_)
        | P::RegisterHostCallbacksRequest(_)
        | P::CreateLayerRequest
        | P::SealLayerRequest(_)
        | P::ImportSnapshotRequest(_)
        | P::ExportSnapshotRequest(_)
        | P::CreateOverlayRequest(_)
        | P::GuestFilesystemCallRequest(_)
        | P::SnapshotRootFilesystemRequest
        | P::ExecuteRequest(_)
        | P::WriteStdinRequest(_)
        | P::CloseStdinRequest(_)
        | P::KillProcessRequest(_)
        | P::GetProcessSnapshotRequest
        | P::FindListenerRequest(_)
        | P::FindBoundUdpRequest(_)
        | P::GetSignalStateRequest(_)
        | P::GetZombieTimerCountRequest
        | P::HostFilesystemCallRequest(_)
        | P::VmFetchRequest(_) => OwnershipRequirement::Vm,
    }
}

/// The scope a response must carry: the one its request kind requires.
pub fn response_requirement(payload: &ResponsePayload) -> OwnershipRequirement {
    use ResponsePayload as P;
    match payload {
        P::AuthenticatedResponse(_) | P::SessionOpenedResponse(_) => OwnershipRequirement::Connection,
        P::VmCreatedResponse(_) => OwnershipRequirement::Session,
        P::PersistenceStateResponse(_) | P::PersistenceFlushedResponse(_) => OwnershipRequirement::SessionOrVm,
        P::RejectedResponse(_) | P::ExtEnvelope(_) => OwnershipRequirement::Any,
        P::VmDisposedResponse(_)
        | P::RootFilesystemBootstrappedResponse(_)
        | P::VmConfiguredResponse(_)
        | P::HostCallbacksRegisteredResponse(_)
        | P::LayerCreatedResponse(_)
        | P::LayerSealedResponse(_)
        | P::SnapshotImportedResponse(_)
        | P::SnapshotExportedResponse(_)
        | P::OverlayCreatedResponse(_)
        | P::GuestFilesystemResultResponse(_)
        | P::RootFilesystemSnapshotResponse(_)
        | P::ProcessStartedResponse(_)
        | P::StdinWrittenResponse(_)
        | P::StdinClosedResponse(_)
        | P::ProcessKilledResponse(_)
        | P::ProcessSnapshotResponse(_)
        | P::ListenerSnapshotResponse(_)
        | P::BoundUdpSnapshotResponse(_)
        | P::SignalStateResponse(_)
        | P::ZombieTimerCountResponse(_)
        | P::FilesystemResultResponse(_)
        | P::PermissionDecisionResponse(_)
        | P::VmFetchResponse(_) => OwnershipRequirement::Vm,
    }
}

pub fn event_requirement(payload: &EventPayload) -> OwnershipRequirement {
    match payload {
        EventPayload::VmLifecycleEvent(_)
        | EventPayload::ProcessOutputEvent(_)
        | EventPayload::ProcessExitedEvent(_) => OwnershipRequirement::Vm,
        EventPayload::StructuredEvent(_) => OwnershipRequirement::SessionOrVm,
        EventPayload::ExtEnvelope(_) => OwnershipRequirement::Any,
    }
}

pub fn sidecar_request_requirement(payload: &SidecarRequestPayload) -> OwnershipRequirement {
    match payload {
        SidecarRequestPayload::HostCallbackRequest(_) | SidecarRequestPayload::JsBridgeCallRequest(_) => {
            OwnershipRequirement::Vm
        }
        SidecarRequestPayload::ExtEnvelope(_) => OwnershipRequirement::Any,
    }
}

pub fn sidecar_response_requirement(payload: &SidecarResponsePayload) -> OwnershipRequirement {
    match payload {
        SidecarResponsePayload::HostCallbackResultResponse(_) | SidecarResponsePayload::JsBridgeResultResponse(_) => {
            OwnershipRequirement::Vm
        }
        SidecarResponsePayload::ExtEnvelope(_) => OwnershipRequirement::Any,
    }
}

/// Checks every protocol rule that a decoded frame must satisfy. The kernel calls it on every
/// inbound frame, and the encoder on every outbound one.
pub fn validate_frame(frame: &ProtocolFrame) -> Result<(), FrameError> {
    match frame {
        ProtocolFrame::RequestFrame(request) => {
            validate_common(&request.schema, Some((request.request_id, RequestDirection::Host)), &request.ownership)?;
            validate_scope(request_requirement(&request.payload), &request.ownership)?;
            if let RequestPayload::AuthenticateRequest(authenticate) = &request.payload {
                if authenticate.auth_token.is_empty() {
                    return Err(FrameError::EmptyAuthToken);
                }
            }
            Ok(())
        }
        ProtocolFrame::ResponseFrame(response) => {
            validate_common(
                &response.schema,
                Some((response.request_id, RequestDirection::Host)),
                &response.ownership,
            )?;
            validate_scope(response_requirement(&response.payload), &response.ownership)
        }
        ProtocolFrame::EventFrame(event) => {
            validate_common(&event.schema, None, &event.ownership)?;
            validate_scope(event_requirement(&event.payload), &event.ownership)
        }
        ProtocolFrame::SidecarRequestFrame(request) => {
            validate_common(
                &request.schema,
                Some((request.request_id, RequestDirection::Sidecar)),
                &request.ownership,
            )?;
            validate_scope(sidecar_request_requirement(&request.payload), &request.ownership)
        }
        ProtocolFrame::SidecarResponseFrame(response) => {
            validate_common(
                &response.schema,
                Some((response.request_id, RequestDirection::Sidecar)),
                &response.ownership,
            )?;
            validate_scope(sidecar_response_requirement(&response.payload), &response.ownership)
        }
    }
}

fn validate_common(
    schema: &ProtocolSchema,
    request_id: Option<(i64, RequestDirection)>,
    ownership: &OwnershipScope,
) -> Result<(), FrameError> {
    if schema.name != PROTOCOL_NAME || schema.version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedSchema { name: schema.name.clone(), version: schema.version });
    }
    if let Some((id, direction)) = request_id {
        validate_request_id(id, direction)?;
    }
    validate_ownership_fields(ownership)
}

/// Host-initiated ids are > 0 and sidecar-initiated ids < 0, so the two id spaces never collide.
pub fn validate_request_id(request_id: i64, direction: RequestDirection) -> Result<(), FrameError> {
    if request_id == 0 {
        return Err(FrameError::InvalidRequestId);
    }
    let matches = match direction {
        RequestDirection::Host => request_id > 0,
        RequestDirection::Sidecar => request_id < 0,
    };
    if matches {
        Ok(())
    } else {
        Err(FrameError::InvalidRequestDirection { request_id, expected: direction })
    }
}

fn validate_ownership_fields(ownership: &OwnershipScope) -> Result<(), FrameError> {
    let fields: [(&'static str, Option<&str>); 3] = [
        ("connection_id", Some(ownership.connection_id())),
        ("session_id", ownership.session_id()),
        ("vm_id", ownership.vm_id()),
    ];
    match fields.into_iter().find(|(_, value)| value.is_some_and(str::is_empty)) {
        Some((field, _)) => Err(FrameError::EmptyOwnershipField { field }),
        None => Ok(()),
    }
}

fn validate_scope(required: OwnershipRequirement, ownership: &OwnershipScope) -> Result<(), FrameError> {
    if required.is_satisfied_by(ownership) {
        Ok(())
    } else {
        Err(FrameError::InvalidOwnershipScope { required, actual: OwnershipRequirement::of(ownership) })
    }
}
