use crate::validate::{OwnershipRequirement, RequestDirection};
use crate::{PROTOCOL_NAME, PROTOCOL_VERSION};

/// Every way a frame can fail to encode, decode or validate.
///
/// Each error has a stable machine-readable [`code`](Self::code) and maps onto the wire
/// rejection code existing hosts expect ([`rejection_code`](Self::rejection_code)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("protocol frame is truncated: only {actual} bytes provided")]
    TruncatedFrame { actual: usize },
    #[error("protocol frame length prefix mismatch: declared {declared} bytes, got {actual}")]
    LengthPrefixMismatch { declared: usize, actual: usize },
    #[error("protocol frame is {size} bytes, limit is {max}")]
    FrameTooLarge { size: usize, max: usize },
    #[error("protocol frame body is not a valid BARE ProtocolFrame: {message}")]
    Malformed { message: String },
    /// BARE has exactly one encoding per value; the decoder accepts more (a `bool` or `optional`
    /// tag of 2 or 255, an over-long varint), so every decoded frame is re-encoded and compared.
    #[error(
        "protocol frame body is not the canonical BARE encoding of its value (first difference at byte {offset}: \
         a bool or optional tag other than 0/1, or an over-long varint)"
    )]
    NonCanonical { offset: usize },
    #[error("protocol frame body has {extra} bytes after the end of the ProtocolFrame")]
    TrailingBytes { extra: usize },
    #[error("unsupported protocol schema {name}@{version}; expected {PROTOCOL_NAME}@{PROTOCOL_VERSION}")]
    UnsupportedSchema { name: String, version: u16 },
    #[error("protocol request identifiers must be non-zero")]
    InvalidRequestId,
    #[error("protocol request id {request_id} must be {expected}")]
    InvalidRequestDirection { request_id: i64, expected: RequestDirection },
    #[error("protocol ownership field `{field}` cannot be empty")]
    EmptyOwnershipField { field: &'static str },
    #[error("authenticate requests require a non-empty auth token")]
    EmptyAuthToken,
    #[error("protocol frame requires {required} ownership but carried {actual}")]
    InvalidOwnershipScope { required: OwnershipRequirement, actual: OwnershipRequirement },
    #[error("protocol frame could not be encoded: {message}")]
    EncodeFailure { message: String },
}

impl FrameError {
    /// A stable, machine-readable name for this error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TruncatedFrame { .. } => "truncated_frame",
            Self::LengthPrefixMismatch { .. } => "length_prefix_mismatch",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::Malformed { .. } => "malformed_frame",
            Self::NonCanonical { .. } => "non_canonical_frame",
            Self::TrailingBytes { .. } => "trailing_bytes",
            Self::UnsupportedSchema { .. } => "unsupported_schema",
            Self::InvalidRequestId => "invalid_request_id",
            Self::InvalidRequestDirection { .. } => "invalid_request_direction",
            Self::EmptyOwnershipField { .. } => "empty_ownership_field",
            Self::EmptyAuthToken => "empty_auth_token",
            Self::InvalidOwnershipScope { .. } => "invalid_ownership_scope",
            Self::EncodeFailure { .. } => "encode_failure",
        }
    }

    /// The `RejectedResponse.code` for this error. Existing hosts know the original sidecar's
    /// codes: an oversized frame is `frame_too_large`, every other frame defect `invalid_state`.
    /// The precise kind travels as the message prefix (see [`rejection_message`](Self::rejection_message)).
    pub fn rejection_code(&self) -> &'static str {
        match self {
            Self::FrameTooLarge { .. } => "frame_too_large",
            _ => "invalid_state",
        }
    }

    /// `"<code>: <description>"`: parseable by machines, readable by people.
    pub fn rejection_message(&self) -> String {
        format!("{}: {self}", self.code())
    }
}
