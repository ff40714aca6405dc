//! Building and queueing outbound frames. Every frame is validated and encoded here, once, so
//! an invalid frame can never leave the kernel and a response too large for the frame limit is
//! turned into a `frame_too_large` rejection.

use crate::dispatch::{Output, Sidecar, StreamId, PROTOCOL_ERROR_NAMESPACE, UNKNOWN_OWNER_ID};
use crate::error::Rejection;
use schema::wire::*;
use schema::FrameError;

/// Longest ownership id echoed back in a rejection. Ids the sidecar issues are a few bytes; a
/// longer one names nothing, and echoing it could make the rejection outgrow the frame limit.
pub const MAX_ECHOED_ID_BYTES: usize = 256;

/// The scope to echo in a rejection: the request's own, unless one of its ids is empty (then
/// it cannot be sent back on a valid frame) or longer than [`MAX_ECHOED_ID_BYTES`].
pub(crate) fn usable_scope(scope: &OwnershipScope) -> OwnershipScope {
    let ids = [Some(scope.connection_id()), scope.session_id(), scope.vm_id()];
    if ids.iter().flatten().any(|id| id.is_empty() || id.len() > MAX_ECHOED_ID_BYTES) {
        OwnershipScope::connection(UNKNOWN_OWNER_ID)
    } else {
        scope.clone()
    }
}

impl Sidecar {
    pub(crate) fn respond(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: OwnershipScope,
        payload: ResponsePayload,
    ) {
        let frame = ProtocolFrame::ResponseFrame(ResponseFrame {
            schema: ProtocolSchema::current(),
            request_id,
            ownership: ownership.clone(),
            payload,
        });
        if let Err(error) = self.push_frame(stream, &frame) {
            // Only size can make a well-formed response unencodable; say so instead.
            let rejection = Rejection::new(crate::dispatch::reject_code_of(&error), error.rejection_message());
            self.reject(stream, request_id, ownership, rejection);
        }
    }

    pub(crate) fn reject(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: OwnershipScope,
        rejection: Rejection,
    ) {
        let frame = ProtocolFrame::ResponseFrame(ResponseFrame {
            schema: ProtocolSchema::current(),
            request_id,
            ownership,
            payload: ResponsePayload::RejectedResponse(RejectedResponse {
                code: rejection.code.as_str().to_owned(),
                message: bounded_message(rejection.message),
            }),
        });
        let pushed = self.push_frame(stream, &frame);
        // A rejection is at most a few KiB (bounded message, bounded ids) and the frame limit is
        // at least MIN_FRAME_LIMIT_BYTES: failing to encode it is a kernel bug.
        assert!(pushed.is_ok(), "rejection frame must encode: {pushed:?}");
    }

    pub(crate) fn emit_event(&mut self, stream: StreamId, ownership: OwnershipScope, payload: EventPayload) {
        let frame = ProtocolFrame::EventFrame(EventFrame { schema: ProtocolSchema::current(), ownership, payload });
        if let Err(error) = self.push_frame(stream, &frame) {
            self.protocol_error(stream, error.code(), &format!("event dropped: {error}"), None);
        }
    }

    pub(crate) fn emit_lifecycle(&mut self, stream: StreamId, scope: &OwnershipScope, state: VmLifecycleState) {
        self.emit_event(stream, scope.clone(), EventPayload::VmLifecycleEvent(VmLifecycleEvent { state }));
    }

    pub(crate) fn send_sidecar_request(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: OwnershipScope,
        payload: SidecarRequestPayload,
    ) -> Result<(), FrameError> {
        let frame = ProtocolFrame::SidecarRequestFrame(SidecarRequestFrame {
            schema: ProtocolSchema::current(),
            request_id,
            ownership,
            payload,
        });
        self.push_frame(stream, &frame)
    }

    /// Reports a frame that no response can answer, as an `ExtEnvelope` event (see
    /// [`PROTOCOL_ERROR_NAMESPACE`]) on the offending stream.
    pub(crate) fn protocol_error(&mut self, stream: StreamId, code: &str, message: &str, request_id: Option<i64>) {
        let message = bounded_message(message.to_owned());
        let payload = serde_json::json!({ "code": code, "message": message, "requestId": request_id });
        let connection_id = self
            .streams
            .get(&stream)
            // The stream's most recent connection (ids compare as strings otherwise).
            .and_then(|state| state.connections.iter().max_by_key(|id| super::numeric_suffix(id)).cloned())
            .unwrap_or_else(|| UNKNOWN_OWNER_ID.to_owned());
        let frame = ProtocolFrame::EventFrame(EventFrame {
            schema: ProtocolSchema::current(),
            ownership: OwnershipScope::connection(connection_id),
            payload: EventPayload::ExtEnvelope(ExtEnvelope {
                namespace: PROTOCOL_ERROR_NAMESPACE.to_owned(),
                payload: payload.to_string().into_bytes(),
            }),
        });
        let pushed = self.push_frame(stream, &frame);
        assert!(pushed.is_ok(), "protocol error event must encode: {pushed:?}");
    }

    fn push_frame(&mut self, stream: StreamId, frame: &ProtocolFrame) -> Result<(), FrameError> {
        if !self.streams.contains_key(&stream) {
            return Ok(());
        }
        let bytes = schema::encode_frame(frame, self.config.max_frame_bytes)?;
        #[cfg(feature = "testing")]
        if self.injected_fault_drops(frame) {
            return Ok(());
        }
        self.outputs.push_back(Output { stream, bytes });
        Ok(())
    }

    /// Whether the configured fault swallows this frame: the simulator must notice the missing
    /// response. Counts responses, so call it once per frame pushed.
    #[cfg(feature = "testing")]
    fn injected_fault_drops(&mut self, frame: &ProtocolFrame) -> bool {
        if !matches!(frame, ProtocolFrame::ResponseFrame(_)) {
            return false;
        }
        self.responses_sent += 1;
        self.config.injected_fault == Some(crate::dispatch::InjectedFault::DropNthResponse(self.responses_sent))
    }
}

/// Messages echo parts of requests; keep them far below any frame limit.
pub const MAX_REJECTION_MESSAGE_BYTES: usize = 4096;

/// Bytes a rejection or protocol-error frame takes besides its message and its three echoed ids
/// (prefix, schema name and version, request id, union tags, lengths, the JSON around a
/// protocol error's fields): generous, so the bound below holds with room to spare.
const FRAME_OVERHEAD_BYTES: usize = 1024;

// Every rejection and protocol-error event must fit the smallest frame limit the sidecar runs
// with, or refusing a request could itself fail.
const _: () = assert!(
    MAX_REJECTION_MESSAGE_BYTES + 3 * MAX_ECHOED_ID_BYTES + FRAME_OVERHEAD_BYTES <= super::MIN_FRAME_LIMIT_BYTES,
    "a rejection must fit the smallest frame limit"
);

fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_REJECTION_MESSAGE_BYTES {
        let mut end = MAX_REJECTION_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}
