//! The Secure Exec sidecar wire protocol (`secure-exec-sidecar`, version 7).
//!
//! - [`wire`]: every type of the vendored `secure-exec-v1.bare`, generated at build time.
//! - [`codec`]: the frame codec (4-byte big-endian length prefix + BARE `ProtocolFrame`), as a
//!   whole-buffer API and an incremental [`FrameDecoder`].
//! - [`validate`]: the protocol's frame rules (schema, request-id direction, ownership scope
//!   required by each payload kind).
//! - [`FrameError`]: every way a frame can be wrong, each with a stable code.

#![forbid(unsafe_code)]

pub mod codec;
mod error;
pub mod idl;
pub mod validate;

/// The generated wire types. Names follow the schema: structs and unions keep their type names,
/// fields become `snake_case`, enum values `CamelCase`.
pub mod wire {
    #![allow(missing_docs, clippy::enum_variant_names, clippy::large_enum_variant)]
    include!(concat!(env!("OUT_DIR"), "/wire_types.rs"));
}

pub use codec::{decode_frame, decode_payload, encode_frame, encode_frame_into, FrameDecoder};
pub use error::FrameError;
pub use validate::{validate_frame, OwnershipRequirement, RequestDirection};

/// The protocol name carried in every frame's `schema`.
pub const PROTOCOL_NAME: &str = "secure-exec-sidecar";
/// The protocol version this crate speaks; frames with any other version are rejected.
pub const PROTOCOL_VERSION: u16 = 7;
/// Default upper bound of one frame body. 16 MiB carries the largest configs existing hosts
/// send (a CreateVm config inlining a multi-megabyte runtime snapshot) while bounding what one
/// frame can make the sidecar buffer.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of the big-endian length prefix in front of every frame body.
pub const FRAME_PREFIX_BYTES: usize = 4;

impl wire::ProtocolSchema {
    /// The schema this crate speaks: [`PROTOCOL_NAME`] at [`PROTOCOL_VERSION`].
    pub fn current() -> Self {
        Self { name: PROTOCOL_NAME.to_owned(), version: PROTOCOL_VERSION }
    }
}

impl wire::GuestFilesystemCallRequest {
    /// `operation` on `path` with every optional field unset.
    pub fn new(operation: wire::GuestFilesystemOperation, path: impl Into<String>) -> Self {
        Self {
            operation,
            path: path.into(),
            destination_path: None,
            target: None,
            content: None,
            encoding: None,
            recursive: false,
            mode: None,
            uid: None,
            gid: None,
            atime_ms: None,
            mtime_ms: None,
            len: None,
            offset: None,
        }
    }
}

impl wire::ConfigureVmRequest {
    /// A ConfigureVm that mounts `mounts` and changes nothing else (the VM's permissions stay).
    pub fn mounts(mounts: Vec<wire::MountDescriptor>) -> Self {
        Self {
            mounts,
            software: Vec::new(),
            permissions: None,
            module_access_cwd: None,
            instructions: Vec::new(),
            projected_modules: Vec::new(),
            command_permissions: Default::default(),
            loopback_exempt_ports: Vec::new(),
        }
    }
}

impl wire::MountDescriptor {
    /// A `host_dir` mount of `host_path` at `guest_path`.
    pub fn host_dir(guest_path: impl Into<String>, host_path: &str, read_only: bool) -> Self {
        let config = format!("{{\"hostPath\":{}}}", json_string(host_path));
        Self {
            guest_path: guest_path.into(),
            read_only,
            plugin: wire::MountPluginDescriptor { id: "host_dir".to_owned(), config },
        }
    }

    /// A fresh in-memory filesystem at `guest_path`.
    pub fn memory(guest_path: impl Into<String>) -> Self {
        Self {
            guest_path: guest_path.into(),
            read_only: false,
            plugin: wire::MountPluginDescriptor { id: "memory".to_owned(), config: "{}".to_owned() },
        }
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl wire::ExecuteRequest {
    /// Runs `command` (found like a shell would) with `args` as process `process_id`, with the
    /// VM's defaults for everything else.
    pub fn command<A: Into<String>>(
        process_id: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = A>,
    ) -> Self {
        Self {
            process_id: process_id.into(),
            command: Some(command.into()),
            runtime: None,
            entrypoint: None,
            args: args.into_iter().map(Into::into).collect(),
            env: Default::default(),
            cwd: None,
            wasm_permission_tier: None,
        }
    }
}

impl wire::OwnershipScope {
    pub fn connection(connection_id: impl Into<String>) -> Self {
        Self::ConnectionOwnership(wire::ConnectionOwnership { connection_id: connection_id.into() })
    }

    pub fn session(connection_id: impl Into<String>, session_id: impl Into<String>) -> Self {
        Self::SessionOwnership(wire::SessionOwnership {
            connection_id: connection_id.into(),
            session_id: session_id.into(),
        })
    }

    pub fn vm(connection_id: impl Into<String>, session_id: impl Into<String>, vm_id: impl Into<String>) -> Self {
        Self::VmOwnership(wire::VmOwnership {
            connection_id: connection_id.into(),
            session_id: session_id.into(),
            vm_id: vm_id.into(),
        })
    }

    /// The connection id every scope carries.
    pub fn connection_id(&self) -> &str {
        match self {
            Self::ConnectionOwnership(scope) => &scope.connection_id,
            Self::SessionOwnership(scope) => &scope.connection_id,
            Self::VmOwnership(scope) => &scope.connection_id,
        }
    }

    /// The session id, for session and VM scopes.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Self::ConnectionOwnership(_) => None,
            Self::SessionOwnership(scope) => Some(&scope.session_id),
            Self::VmOwnership(scope) => Some(&scope.session_id),
        }
    }

    /// The VM id, for VM scopes.
    pub fn vm_id(&self) -> Option<&str> {
        match self {
            Self::VmOwnership(scope) => Some(&scope.vm_id),
            _ => None,
        }
    }
}
