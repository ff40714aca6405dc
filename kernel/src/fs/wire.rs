//! The wire's filesystem requests and results over the VM filesystem's typed operations: the
//! only place `GuestFilesystemCallRequest` becomes an [`FsOp`] and an [`FsReply`] a
//! `GuestFilesystemResultResponse` (the vfs below knows no wire type, and guest system calls
//! never cross the wire's text encodings).

use schema::wire::FilesystemOperation as H;
use schema::wire::{
    FilesystemResultResponse, GuestFilesystemCallRequest, GuestFilesystemOperation as Op,
    GuestFilesystemResultResponse, HostFilesystemCallRequest, ResponsePayload, RootFilesystemEntryEncoding,
};

use crate::clock::{Entropy, Now};
use crate::error::Rejection;
use crate::fs::js_bridge::BridgeCall;
use crate::fs::layers;
use crate::fs::op::{FsOp, FsReply, HostOp};
use crate::fs::{FsOutcome, VmFilesystem};
use crate::policy::permissions::CompiledPolicy;
use crate::vfs::{Errno, Stat, NS_PER_MS};

/// What a `GuestFilesystemCallRequest` produced: its response, or a js_bridge call the response
/// waits for.
#[derive(Debug)]
pub(crate) enum CallOutcome {
    Done(ResponsePayload),
    Bridge(BridgeCall),
}

impl VmFilesystem {
    /// Serves one `GuestFilesystemCallRequest`: required fields (`invalid_state` when missing)
    /// and WRITE_FILE's content decoded first, then the typed call.
    pub(crate) fn call_from_wire(
        &mut self,
        policy: &CompiledPolicy,
        request: GuestFilesystemCallRequest,
        entropy: &mut Entropy,
        now: Now,
    ) -> Result<CallOutcome, Rejection> {
        let data = match request.operation {
            Op::WriteFile => decode_content(&request.path, request.content.as_deref(), request.encoding)?,
            _ => Vec::new(),
        };
        let op = typed_operation(&request, &data)?;
        let outcome = match self.call(policy, &request.path, op, entropy, now) {
            Err(rejection) if matches!(op, FsOp::WriteFile { .. }) && rejection.errno == Some(Errno::ENOENT) => {
                self.write_under_new_parents(policy, &request.path, op, rejection, entropy, now)?
            }
            outcome => outcome?,
        };
        match outcome {
            FsOutcome::Bridge(mut bridge) => {
                bridge.reply.encoding = request.encoding;
                Ok(CallOutcome::Bridge(bridge))
            }
            FsOutcome::Done(reply) => {
                let result = wire_result(&request, op, reply);
                Ok(CallOutcome::Done(ResponsePayload::GuestFilesystemResultResponse(result)))
            }
        }
    }
}

impl VmFilesystem {
    /// A host's WRITE_FILE under directories that do not exist yet creates them first, as the
    /// original does (a guest's `open(O_CREAT)` there still fails with `ENOENT`). The missing
    /// directories are made by a policy-checked `mkdir -p` of the parent; when that fails, the
    /// host gets the write's first error.
    fn write_under_new_parents(
        &mut self,
        policy: &CompiledPolicy,
        path: &str,
        op: FsOp<'_>,
        first_error: Rejection,
        entropy: &mut Entropy,
        now: Now,
    ) -> Result<FsOutcome, Rejection> {
        let absolute = crate::fs::normalize(self.cwd(), path);
        let parent = absolute.rsplit_once('/').map_or("/", |(parent, _)| if parent.is_empty() { "/" } else { parent });
        if parent == "/" {
            return Err(first_error);
        }
        let parents = FsOp::Mkdir { recursive: true, mode: None };
        match self.call(policy, parent, parents, entropy, now) {
            Ok(FsOutcome::Done(_)) => self.call(policy, path, op, entropy, now),
            _ => Err(first_error),
        }
    }
}

/// `FilesystemResultResponse.status` of a host filesystem call that succeeded; a failed one
/// carries the errno code (`ENOENT`, `EACCES`, `EXDEV`, ...).
pub const HOST_FILESYSTEM_STATUS_OK: &str = "ok";

impl VmFilesystem {
    /// Serves a `HostFilesystemCallRequest` (status [`HOST_FILESYSTEM_STATUS_OK`] or the errno's
    /// code). A RENAME's path is `from\0to`; one without the separator is `EINVAL`.
    pub(crate) fn host_call(
        &mut self,
        policy: &CompiledPolicy,
        request: &HostFilesystemCallRequest,
        now: Now,
    ) -> FilesystemResultResponse {
        let (path, op) = match request.operation {
            H::Read => (request.path.as_str(), Ok(HostOp::Read)),
            H::Write => (request.path.as_str(), Ok(HostOp::Write { len: request.payload_size_bytes })),
            H::Stat => (request.path.as_str(), Ok(HostOp::Stat)),
            H::ReadDir => (request.path.as_str(), Ok(HostOp::ReadDir)),
            H::Mkdir => (request.path.as_str(), Ok(HostOp::Mkdir)),
            H::Remove => (request.path.as_str(), Ok(HostOp::Remove)),
            H::Rename => match request.path.split_once('\0') {
                Some((from, to)) => (from, Ok(HostOp::Rename { to })),
                None => (request.path.as_str(), Err(Errno::EINVAL)),
            },
        };
        let (status, size) = match op.and_then(|op| self.host_operation(policy, path, op, now)) {
            Ok(size) => (HOST_FILESYSTEM_STATUS_OK.to_owned(), size),
            Err(errno) => (errno.code().to_owned(), 0),
        };
        FilesystemResultResponse { operation: request.operation, status, payload_size_bytes: size }
    }
}

/// Layer and root requests: the layer store's answers as wire responses.
impl VmFilesystem {
    pub(crate) fn create_layer(&mut self, now: Now) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.create(self.limits, now)?;
        Ok(ResponsePayload::LayerCreatedResponse(schema::wire::LayerCreatedResponse { layer_id }))
    }

    pub(crate) fn seal_layer(&mut self, layer_id: &str) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.seal(layer_id)?;
        Ok(ResponsePayload::LayerSealedResponse(schema::wire::LayerSealedResponse { layer_id }))
    }

    pub(crate) fn import_snapshot(
        &mut self,
        request: &schema::wire::ImportSnapshotRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.import(&request.entries, self.limits, now)?;
        Ok(ResponsePayload::SnapshotImportedResponse(schema::wire::SnapshotImportedResponse { layer_id }))
    }

    pub(crate) fn export_snapshot(&self, layer_id: String) -> Result<ResponsePayload, Rejection> {
        let entries = layers::entries_to_wire(self.layers.export(&layer_id)?);
        Ok(ResponsePayload::SnapshotExportedResponse(schema::wire::SnapshotExportedResponse { layer_id, entries }))
    }

    pub(crate) fn create_overlay(
        &mut self,
        request: &schema::wire::CreateOverlayRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.create_overlay(request, self.limits, now)?;
        Ok(ResponsePayload::OverlayCreatedResponse(schema::wire::OverlayCreatedResponse { layer_id }))
    }

    /// Applies entries to the root's writable upper (all or nothing; `EROFS` on a read-only
    /// root). A host operation: the permission policy is not consulted.
    pub(crate) fn bootstrap(
        &mut self,
        request: &schema::wire::BootstrapRootFilesystemRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let entries = layers::entries_from_wire(&request.entries)?;
        self.root.import(entries, now).map_err(Rejection::from)?;
        let entry_count = u32::try_from(request.entries.len()).unwrap_or(u32::MAX);
        Ok(ResponsePayload::RootFilesystemBootstrappedResponse(schema::wire::RootFilesystemBootstrappedResponse {
            entry_count,
        }))
    }

    /// The merged root as entries, sorted by path.
    pub(crate) fn snapshot(&self) -> ResponsePayload {
        let entries = layers::entries_to_wire(self.root.export());
        ResponsePayload::RootFilesystemSnapshotResponse(schema::wire::RootFilesystemSnapshotResponse { entries })
    }
}

/// The typed operation a request names, or `invalid_state`
/// `guest filesystem {op} requires {what}` for a missing field (checked in the original's order:
/// the destination first).
fn typed_operation<'a>(request: &'a GuestFilesystemCallRequest, data: &'a [u8]) -> Result<FsOp<'a>, Rejection> {
    let operation = request.operation;
    let need = |what: &str| {
        Rejection::invalid_state(format!("guest filesystem {} requires {what}", operation_name(operation)))
    };
    let destination = || request.destination_path.as_deref().ok_or_else(|| need("a destination_path"));
    let offset = || request.offset.ok_or_else(|| need("offset"));
    let len = || request.len.ok_or_else(|| need("len"));
    Ok(match operation {
        Op::ReadFile => FsOp::ReadFile,
        Op::Pread => {
            let offset = offset()?;
            FsOp::Pread { offset, len: len()? }
        }
        Op::WriteFile => FsOp::WriteFile { data, mode: request.mode },
        Op::CreateDir => FsOp::CreateDir { mode: request.mode },
        Op::Mkdir => FsOp::Mkdir { recursive: request.recursive, mode: request.mode },
        Op::Exists => FsOp::Exists,
        Op::Stat => FsOp::Stat,
        Op::Lstat => FsOp::Lstat,
        Op::ReadDir => FsOp::ReadDir,
        Op::RemoveFile => FsOp::RemoveFile,
        Op::RemoveDir => FsOp::RemoveDir { recursive: request.recursive },
        Op::Rename => FsOp::Rename { to: destination()? },
        Op::Realpath => FsOp::Realpath,
        Op::Symlink => FsOp::Symlink { target: request.target.as_deref().ok_or_else(|| need("a target"))? },
        Op::ReadLink => FsOp::ReadLink,
        Op::Link => FsOp::Link { to: destination()? },
        Op::Chmod => FsOp::Chmod { mode: request.mode.ok_or_else(|| need("a mode"))? },
        Op::Chown => {
            let uid = request.uid.ok_or_else(|| need("a uid"))?;
            FsOp::Chown { uid, gid: request.gid.ok_or_else(|| need("a gid"))? }
        }
        Op::Utimes => {
            let atime_ms = request.atime_ms.ok_or_else(|| need("atime_ms"))?;
            let mtime_ms = request.mtime_ms.ok_or_else(|| need("mtime_ms"))?;
            let (atime_ns, mtime_ns) = (atime_ms.saturating_mul(NS_PER_MS), mtime_ms.saturating_mul(NS_PER_MS));
            FsOp::Utimes { atime_ns, mtime_ns, follow: true }
        }
        Op::Truncate => FsOp::Truncate { len: len()? },
    })
}

/// The response to `request`: RENAME and LINK echo the destination and SYMLINK the target in
/// `target`, like the original.
fn wire_result(request: &GuestFilesystemCallRequest, op: FsOp<'_>, reply: FsReply) -> GuestFilesystemResultResponse {
    let echo = match op {
        FsOp::Rename { to } | FsOp::Link { to } => Some(to.to_owned()),
        FsOp::Symlink { target } => Some(target.to_owned()),
        _ => None,
    };
    result_response(request.operation, &request.path, request.encoding, echo, reply)
}

/// A `GuestFilesystemResultResponse` carrying `reply` in its field: content as UTF-8 text unless
/// `asked` is base64 or the bytes are not UTF-8; a change's `echo` in `target`.
pub(crate) fn result_response(
    operation: Op,
    path: &str,
    asked: Option<RootFilesystemEntryEncoding>,
    echo: Option<String>,
    reply: FsReply,
) -> GuestFilesystemResultResponse {
    let mut result = GuestFilesystemResultResponse {
        operation,
        path: path.to_owned(),
        content: None,
        encoding: None,
        entries: None,
        stat: None,
        exists: None,
        target: None,
    };
    match reply {
        FsReply::Done => result.target = echo,
        FsReply::Content(bytes) => {
            let force_base64 = asked == Some(RootFilesystemEntryEncoding::Base64);
            let (content, encoding) = layers::encode_content(bytes, force_base64);
            result.content = Some(content);
            result.encoding = Some(encoding);
        }
        FsReply::Exists(exists) => result.exists = Some(exists),
        FsReply::Stat(stat) => result.stat = Some((&stat).into()),
        FsReply::Entries(entries) => result.entries = Some(entries),
        FsReply::Target(target) => result.target = Some(target),
    }
    result
}

/// WRITE_FILE content: UTF-8 text unless `encoding` is BASE64 (standard alphabet, padded).
fn decode_content(
    path: &str,
    content: Option<&str>,
    encoding: Option<RootFilesystemEntryEncoding>,
) -> Result<Vec<u8>, Rejection> {
    let content = content
        .ok_or_else(|| Rejection::invalid_state(format!("guest filesystem write_file for {path} requires content")))?;
    match encoding.unwrap_or(RootFilesystemEntryEncoding::Utf8) {
        RootFilesystemEntryEncoding::Utf8 => Ok(content.as_bytes().to_vec()),
        RootFilesystemEntryEncoding::Base64 => layers::decode_base64(content).map_err(|error| {
            Rejection::invalid_state(format!("invalid base64 guest filesystem content for {path}: {error}"))
        }),
    }
}

impl FsOp<'_> {
    /// The wire operation this is (js_bridge replies answer in the request's terms).
    pub(crate) fn wire_operation(&self) -> Op {
        match self {
            Self::ReadFile => Op::ReadFile,
            Self::Pread { .. } => Op::Pread,
            Self::WriteFile { .. } => Op::WriteFile,
            Self::CreateDir { .. } => Op::CreateDir,
            Self::Mkdir { .. } => Op::Mkdir,
            Self::Exists => Op::Exists,
            Self::Stat => Op::Stat,
            Self::Lstat => Op::Lstat,
            Self::ReadDir => Op::ReadDir,
            Self::RemoveFile => Op::RemoveFile,
            Self::RemoveDir { .. } => Op::RemoveDir,
            Self::Rename { .. } => Op::Rename,
            Self::Realpath => Op::Realpath,
            Self::Symlink { .. } => Op::Symlink,
            Self::ReadLink => Op::ReadLink,
            Self::Link { .. } => Op::Link,
            Self::Chmod { .. } => Op::Chmod,
            Self::Chown { .. } => Op::Chown,
            Self::Utimes { .. } => Op::Utimes,
            Self::Truncate { .. } => Op::Truncate,
        }
    }
}

/// The original's snake_case operation names, for messages.
fn operation_name(operation: Op) -> &'static str {
    match operation {
        Op::ReadFile => "read_file",
        Op::WriteFile => "write_file",
        Op::CreateDir => "create_dir",
        Op::Mkdir => "mkdir",
        Op::Exists => "exists",
        Op::Stat => "stat",
        Op::Lstat => "lstat",
        Op::ReadDir => "read_dir",
        Op::RemoveFile => "remove_file",
        Op::RemoveDir => "remove_dir",
        Op::Rename => "rename",
        Op::Realpath => "realpath",
        Op::Symlink => "symlink",
        Op::ReadLink => "read_link",
        Op::Link => "link",
        Op::Chmod => "chmod",
        Op::Chown => "chown",
        Op::Utimes => "utimes",
        Op::Truncate => "truncate",
        Op::Pread => "pread",
    }
}

impl From<&Stat> for schema::wire::GuestFilesystemStat {
    fn from(stat: &Stat) -> Self {
        Self {
            mode: stat.mode,
            size: stat.size,
            blocks: stat.blocks,
            dev: stat.dev,
            rdev: stat.rdev,
            is_directory: stat.is_directory,
            is_symbolic_link: stat.is_symbolic_link,
            atime_ms: stat.atime_ms,
            mtime_ms: stat.mtime_ms,
            ctime_ms: stat.ctime_ms,
            birthtime_ms: stat.birthtime_ms,
            ino: stat.ino,
            nlink: stat.nlink,
            uid: stat.uid,
            gid: stat.gid,
        }
    }
}
