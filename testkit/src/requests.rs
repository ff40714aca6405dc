//! Protocol requests as tests, the simulator and the fuzz targets send them, with defaults for
//! what they do not test. A caller that varies a field starts from one of these with struct
//! update syntax: `AuthenticateRequest { protocol_version: 6, ..authenticate_request("t") }`.
//!
//! The `schema` crate has the builders a host needs too (`GuestFilesystemCallRequest::new`,
//! `ConfigureVmRequest::mounts`, `MountDescriptor::host_dir`/`memory`,
//! `ExecuteRequest::command`); these wrap them into payloads and add what only tests want.

use schema::wire::{
    AuthenticateRequest, ConfigureVmRequest, CreateVmRequest, DisposeReason, DisposeVmRequest, ExecuteRequest,
    FsPermissionRule, FsPermissionRuleSet, FsPermissionScope, GuestRuntimeKind, MountDescriptor, MountPluginDescriptor,
    OpenSessionRequest, OwnershipScope, PermissionMode, PermissionsPolicy, ProtocolFrame, ProtocolSchema,
    RegisterHostCallbacksRequest, RegisteredHostCallbackDefinition, RequestFrame, RequestPayload, SidecarPlacement,
    SidecarPlacementShared,
};

/// The client name the builders authenticate with; the kernel does not read it.
pub const CLIENT_NAME: &str = "test-host";

/// A request frame of the current schema.
pub fn request_frame(request_id: i64, ownership: OwnershipScope, payload: RequestPayload) -> ProtocolFrame {
    ProtocolFrame::RequestFrame(RequestFrame { schema: ProtocolSchema::current(), request_id, ownership, payload })
}

/// An Authenticate with `token` at the protocol and bridge versions the kernel speaks.
pub fn authenticate_request(token: &str) -> AuthenticateRequest {
    AuthenticateRequest {
        client_name: CLIENT_NAME.to_owned(),
        auth_token: token.to_owned(),
        protocol_version: schema::PROTOCOL_VERSION,
        bridge_version: kernel::dispatch::BRIDGE_VERSION,
    }
}

/// [`authenticate_request`] as a payload.
pub fn authenticate(token: &str) -> RequestPayload {
    RequestPayload::AuthenticateRequest(authenticate_request(token))
}

/// An OpenSession in the shared pool, without metadata.
pub fn open_session() -> RequestPayload {
    RequestPayload::OpenSessionRequest(OpenSessionRequest {
        placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
        metadata: Default::default(),
    })
}

/// A CreateVm of a WebAssembly VM (the runtime the kernel runs itself) with the JSON `config`.
pub fn create_vm(config: impl Into<String>) -> RequestPayload {
    create_vm_for(GuestRuntimeKind::WebAssembly, config)
}

/// A CreateVm of a `runtime` VM with the JSON `config`.
pub fn create_vm_for(runtime: GuestRuntimeKind, config: impl Into<String>) -> RequestPayload {
    RequestPayload::CreateVmRequest(CreateVmRequest { runtime, config: config.into() })
}

/// A DisposeVm the host asked for.
pub fn dispose() -> RequestPayload {
    RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested })
}

/// A RegisterHostCallbacks of toolkit `name` (its own command alias) with `tools` tools named
/// `tool-0`, `tool-1`, ..., each `definition()`; `edit` changes what a test varies.
pub fn register_toolkit(
    name: &str,
    tools: usize,
    definition: impl Fn() -> RegisteredHostCallbackDefinition,
    edit: impl FnOnce(&mut RegisterHostCallbacksRequest),
) -> RequestPayload {
    let mut request = RegisterHostCallbacksRequest {
        name: name.into(),
        description: "a toolkit".into(),
        command_aliases: vec![name.into()],
        registry_command_aliases: vec![],
        callbacks: (0..tools).map(|i| (format!("tool-{i}"), definition())).collect(),
    };
    edit(&mut request);
    RequestPayload::RegisterHostCallbacksRequest(request)
}

/// A ConfigureVm that mounts `mounts` and changes nothing else.
pub fn configure_mounts(mounts: Vec<MountDescriptor>) -> RequestPayload {
    RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(mounts))
}

/// A mount of any plugin, with its JSON `config` as given (valid or not).
pub fn mount(guest_path: impl Into<String>, plugin: &str, config: &str, read_only: bool) -> MountDescriptor {
    MountDescriptor {
        guest_path: guest_path.into(),
        read_only,
        plugin: MountPluginDescriptor { id: plugin.to_owned(), config: config.to_owned() },
    }
}

/// An Execute of `command` with `args` as process `process_id`, the VM's defaults otherwise.
pub fn execute<A: Into<String>>(
    process_id: impl Into<String>,
    command: impl Into<String>,
    args: impl IntoIterator<Item = A>,
) -> RequestPayload {
    RequestPayload::ExecuteRequest(ExecuteRequest::command(process_id, command, args))
}

/// A policy with filesystem rules only (every other domain left to the VM's configuration).
pub fn fs_policy(default: PermissionMode, rules: Vec<FsPermissionRule>) -> PermissionsPolicy {
    PermissionsPolicy {
        fs: Some(FsPermissionScope::FsPermissionRuleSet(FsPermissionRuleSet { default: Some(default), rules })),
        network: None,
        child_process: None,
        process: None,
        env: None,
        tool: None,
    }
}

/// One filesystem rule.
pub fn fs_rule(mode: PermissionMode, operations: &[&str], paths: &[&str]) -> FsPermissionRule {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    FsPermissionRule { mode, operations: strings(operations), paths: strings(paths) }
}

/// GuestFilesystemCall requests, each with only the fields its operation needs (every other
/// one unset, as `GuestFilesystemCallRequest::new` leaves it).
pub mod fs {
    use schema::wire::{GuestFilesystemCallRequest, GuestFilesystemOperation as Op};

    /// WriteFile of `content` (UTF-8: no encoding given).
    pub fn write(path: &str, content: &str) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest {
            content: Some(content.to_owned()),
            ..GuestFilesystemCallRequest::new(Op::WriteFile, path)
        }
    }

    /// A two-path operation (rename, link, copy) from `path` to `destination`.
    pub fn to(operation: Op, path: &str, destination: &str) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest {
            destination_path: Some(destination.to_owned()),
            ..GuestFilesystemCallRequest::new(operation, path)
        }
    }

    /// A symlink at `path` pointing at `target`.
    pub fn symlink(path: &str, target: &str) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest {
            target: Some(target.to_owned()),
            ..GuestFilesystemCallRequest::new(Op::Symlink, path)
        }
    }

    pub fn mkdir_p(path: &str) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest { recursive: true, ..GuestFilesystemCallRequest::new(Op::Mkdir, path) }
    }

    pub fn rm_r(path: &str) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest { recursive: true, ..GuestFilesystemCallRequest::new(Op::RemoveDir, path) }
    }

    pub fn pread(path: &str, offset: u64, len: u64) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest {
            offset: Some(offset),
            len: Some(len),
            ..GuestFilesystemCallRequest::new(Op::Pread, path)
        }
    }

    pub fn truncate(path: &str, len: u64) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest { len: Some(len), ..GuestFilesystemCallRequest::new(Op::Truncate, path) }
    }

    pub fn chmod(path: &str, mode: u32) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest { mode: Some(mode), ..GuestFilesystemCallRequest::new(Op::Chmod, path) }
    }

    pub fn chown(path: &str, uid: u32, gid: u32) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest {
            uid: Some(uid),
            gid: Some(gid),
            ..GuestFilesystemCallRequest::new(Op::Chown, path)
        }
    }

    pub fn utimes(path: &str, atime_ms: u64, mtime_ms: u64) -> GuestFilesystemCallRequest {
        GuestFilesystemCallRequest {
            atime_ms: Some(atime_ms),
            mtime_ms: Some(mtime_ms),
            ..GuestFilesystemCallRequest::new(Op::Utimes, path)
        }
    }
}
