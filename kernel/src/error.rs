//! The kernel's rejection type: every request that cannot be served becomes one of these, and
//! then a `RejectedResponse { code, message }` on the wire.

use std::fmt;

use crate::vfs::{Errno, FsError};

/// The wire `RejectedResponse.code` values. The first twelve are the original sidecar's codes,
/// so existing hosts keep working; the rest are named where the original had none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    InvalidState,
    ProtocolVersionMismatch,
    BridgeVersionMismatch,
    Conflict,
    Unauthorized,
    Unsupported,
    FrameTooLarge,
    KernelError,
    PluginError,
    ExecutionError,
    BridgeError,
    IoError,
    UnknownExtension,
    LimitExceeded,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidState => "invalid_state",
            Self::ProtocolVersionMismatch => "protocol_version_mismatch",
            Self::BridgeVersionMismatch => "bridge_version_mismatch",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Unsupported => "unsupported",
            Self::FrameTooLarge => "frame_too_large",
            Self::KernelError => "kernel_error",
            Self::PluginError => "plugin_error",
            Self::ExecutionError => "execution_error",
            Self::BridgeError => "bridge_error",
            Self::IoError => "io_error",
            Self::UnknownExtension => "unknown_extension",
            Self::LimitExceeded => "limit_exceeded",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused: a wire code, a message for people (errno-style detail, when there
/// is one, is the message's `ERRNO: ` prefix, for hosts), and the errno itself, typed, for the
/// guest whose system call it answers (never read back from the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
    pub errno: Option<Errno>,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), errno: None }
    }

    /// A rejection a guest's system call sees as `errno`; `message` starts with its name.
    pub fn with_errno(code: RejectCode, errno: Errno, message: impl Into<String>) -> Self {
        let message = message.into();
        debug_assert!(message.starts_with(errno.code()), "{message:?} does not name {errno:?}");
        Self { code, message, errno: Some(errno) }
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(RejectCode::InvalidState, message)
    }

    pub fn limit(what: &str, limit: usize) -> Self {
        Self::with_errno(RejectCode::LimitExceeded, Errno::ENOSPC, format!("ENOSPC: {what} limit of {limit} reached"))
    }
}

/// A filesystem error as a rejection: `limit_exceeded` for a bound that was hit, else
/// `kernel_error`; the errno typed, and first in the message (`ENOENT: no such file or
/// directory, open '/a'`). The one mapping from the vfs's errors to the wire's codes.
impl From<FsError> for Rejection {
    fn from(error: FsError) -> Self {
        let code = if error.limit().is_some() { RejectCode::LimitExceeded } else { RejectCode::KernelError };
        Self::with_errno(code, error.errno(), error.to_string())
    }
}
