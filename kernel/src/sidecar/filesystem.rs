//! A VM's filesystem as the protocol sees it: its root overlay, its working directory, its
//! layer store, and the 20 operations of `GuestFilesystemCallRequest`.
//!
//! Every operation first checks the VM's `fs` permission policy, then runs on the root overlay
//! with relative paths resolved against the guest cwd. The policy is asked about the path the
//! operation will really touch (symlinks and `..` resolved inside the VM, the final component
//! followed only by operations that follow it), so a symlink cannot carry an operation past the
//! policy. Capabilities and the operation labels of denial messages
//! (`EACCES: permission denied, {label} '{path}': {reason}`) follow the original sidecar:
//!
//! | operation | capability | label |
//! |---|---|---|
//! | READ_FILE, PREAD, REALPATH | `fs.read` | `read` |
//! | READ_LINK | `fs.read` | `readlink` |
//! | WRITE_FILE | `fs.write` | `write` |
//! | LINK (both paths), CHMOD, CHOWN, UTIMES, TRUNCATE | `fs.write` | `link`, `chmod`, `chown`, `utimes`, `truncate` |
//! | STAT, LSTAT | `fs.stat` | `stat` |
//! | EXISTS | `fs.stat` | `exists` (a denial answers `exists: false`, like the original) |
//! | READ_DIR | `fs.readdir` | `readdir` |
//! | MKDIR, CREATE_DIR | `fs.create_dir` | `mkdir`, `createDir` |
//! | REMOVE_FILE, REMOVE_DIR | `fs.rm` | `rm` |
//! | RENAME (both paths) | `fs.rename` | `rename` |
//! | SYMLINK (the link's path) | `fs.symlink` | `symlink` |
//!
//! An `ask` rule is a denial here (`permission prompt required for fs.x`): prompts suspend
//! guest operations, which arrive with processes; a host's own request is answered at once.

use schema::wire::{
    GuestFilesystemCallRequest, GuestFilesystemOperation as Op, GuestFilesystemResultResponse, ResponsePayload,
    RootFilesystemEntryEncoding,
};

use super::layers::{self, LayerStore};
use crate::clock::Now;
use crate::config::{self, CreateVmConfig};
use crate::error::{RejectCode, Rejection};
use crate::permissions::{errno_message, Capability, CompiledPolicy, Decision};
use crate::vfs::{FsLimits, Layer, Overlay, VPath, MAX_SYMLINK_HOPS};

/// One VM's filesystem state.
#[derive(Debug)]
pub(super) struct VmFilesystem {
    root: Overlay,
    cwd: String,
    limits: FsLimits,
    layers: LayerStore,
}

/// Whether the policy is asked about the final component itself or where it leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// The node a final symlink leads to (dangling links included: writing through one creates
    /// its target).
    Follow,
    /// The final entry itself (its parent directories resolved).
    NoFollow,
}

impl VmFilesystem {
    /// The root filesystem of a new VM (see [`layers::build_root`]); relative paths resolve
    /// against the config's `cwd` (default `/home/user`).
    pub(super) fn build(
        config: &CreateVmConfig,
        limits: &config::ResolvedLimits,
        base: &Layer,
        now: Now,
    ) -> Result<Self, Rejection> {
        let limits = layers::fs_limits(limits);
        let root = layers::build_root(config, limits, base, now)?;
        Ok(Self { root, cwd: config.guest_cwd().to_owned(), limits, layers: LayerStore::default() })
    }

    pub(super) fn root(&self) -> &Overlay {
        &self.root
    }

    pub(super) fn cwd(&self) -> &str {
        &self.cwd
    }

    pub(super) fn layer_ids(&self) -> Vec<String> {
        self.layers.ids()
    }

    // -----------------------------------------------------------------------------------------
    // Layer requests
    // -----------------------------------------------------------------------------------------

    pub(super) fn create_layer(&mut self, now: Now) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.create(self.limits, now)?;
        Ok(ResponsePayload::LayerCreatedResponse(schema::wire::LayerCreatedResponse { layer_id }))
    }

    pub(super) fn seal_layer(&mut self, layer_id: &str) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.seal(layer_id)?;
        Ok(ResponsePayload::LayerSealedResponse(schema::wire::LayerSealedResponse { layer_id }))
    }

    pub(super) fn import_snapshot(
        &mut self,
        request: &schema::wire::ImportSnapshotRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.import(&request.entries, self.limits, now)?;
        Ok(ResponsePayload::SnapshotImportedResponse(schema::wire::SnapshotImportedResponse { layer_id }))
    }

    pub(super) fn export_snapshot(&self, layer_id: String) -> Result<ResponsePayload, Rejection> {
        let entries = layers::entries_to_wire(self.layers.export(&layer_id)?);
        Ok(ResponsePayload::SnapshotExportedResponse(schema::wire::SnapshotExportedResponse { layer_id, entries }))
    }

    pub(super) fn create_overlay(
        &mut self,
        request: &schema::wire::CreateOverlayRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let layer_id = self.layers.create_overlay(request, self.limits, now)?;
        Ok(ResponsePayload::OverlayCreatedResponse(schema::wire::OverlayCreatedResponse { layer_id }))
    }

    /// Applies entries to the root's writable upper (all or nothing; `EROFS` on a read-only
    /// root). A host operation: the permission policy is not consulted.
    pub(super) fn bootstrap(
        &mut self,
        request: &schema::wire::BootstrapRootFilesystemRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let entries = layers::entries_from_wire(&request.entries)?;
        self.root.import(&entries, now).map_err(layers::fs_rejection)?;
        let entry_count = u32::try_from(request.entries.len()).unwrap_or(u32::MAX);
        Ok(ResponsePayload::RootFilesystemBootstrappedResponse(schema::wire::RootFilesystemBootstrappedResponse {
            entry_count,
        }))
    }

    /// The merged root as entries, sorted by path.
    pub(super) fn snapshot(&self) -> ResponsePayload {
        let entries = layers::entries_to_wire(self.root.export());
        ResponsePayload::RootFilesystemSnapshotResponse(schema::wire::RootFilesystemSnapshotResponse { entries })
    }

    // -----------------------------------------------------------------------------------------
    // Guest filesystem calls
    // -----------------------------------------------------------------------------------------

    /// Serves one `GuestFilesystemCallRequest`: required fields (`invalid_state` when
    /// missing), then the permission check, then the operation.
    pub(super) fn call(
        &mut self,
        policy: &CompiledPolicy,
        request: GuestFilesystemCallRequest,
        now: Now,
    ) -> Result<ResponsePayload, Rejection> {
        let operation = request.operation;
        let mut result = GuestFilesystemResultResponse {
            operation,
            path: request.path.clone(),
            content: None,
            encoding: None,
            entries: None,
            stat: None,
            exists: None,
            target: None,
        };
        let path = request.path.as_str();
        let (capability, label, subject) = access(operation);
        // Required fields first, like the original.
        let destination = match operation {
            Op::Rename | Op::Link => {
                Some(required(request.destination_path.as_deref(), operation, "a destination_path")?)
            }
            _ => None,
        };
        match operation {
            Op::Exists => {
                let allowed = self.authorize(policy, capability, label, path, subject).is_ok();
                result.exists = Some(allowed && self.root.exists(self.at(path)));
                return Ok(ResponsePayload::GuestFilesystemResultResponse(result));
            }
            Op::WriteFile => {
                // Decode before the check: a malformed request is refused as such.
                decode_content(path, request.content.as_deref(), request.encoding)?;
            }
            Op::Pread => {
                required(request.offset, operation, "offset")?;
                required(request.len, operation, "len")?;
            }
            Op::Symlink => {
                required(request.target.as_deref(), operation, "a target")?;
            }
            Op::Chmod => {
                required(request.mode, operation, "a mode")?;
            }
            Op::Chown => {
                required(request.uid, operation, "a uid")?;
                required(request.gid, operation, "a gid")?;
            }
            Op::Utimes => {
                required(request.atime_ms, operation, "atime_ms")?;
                required(request.mtime_ms, operation, "mtime_ms")?;
            }
            Op::Truncate => {
                required(request.len, operation, "len")?;
            }
            _ => {}
        }
        self.authorize(policy, capability, label, path, subject)?;
        if let Some(destination) = destination {
            self.authorize(policy, capability, label, destination, Subject::NoFollow)?;
        }
        let at = VPath::at(&self.cwd, path);
        let root = &mut self.root;
        let fs = |result: Result<(), crate::vfs::FsError>| result.map_err(layers::fs_rejection);
        match operation {
            Op::ReadFile => {
                let bytes = root.read_file(at).map_err(layers::fs_rejection)?.to_vec();
                set_content(&mut result, bytes, request.encoding);
            }
            Op::Pread => {
                let offset = required(request.offset, operation, "offset")?;
                let len = required(request.len, operation, "len")?;
                let bytes = root.pread(at, offset, len).map_err(layers::fs_rejection)?.to_vec();
                set_content(&mut result, bytes, request.encoding);
            }
            Op::WriteFile => {
                let data = decode_content(path, request.content.as_deref(), request.encoding)?;
                match request.mode {
                    Some(mode) => fs(root.write_file_with_mode(at, &data, mode, now))?,
                    None => fs(root.write_file(at, &data, now))?,
                }
            }
            Op::CreateDir => fs(root.mkdir_with_mode(at, false, mode_or_default(request.mode), now))?,
            Op::Mkdir => fs(root.mkdir_with_mode(at, request.recursive, mode_or_default(request.mode), now))?,
            Op::Exists => {}
            Op::Stat => result.stat = Some((&root.stat(at).map_err(layers::fs_rejection)?).into()),
            Op::Lstat => result.stat = Some((&root.lstat(at).map_err(layers::fs_rejection)?).into()),
            Op::ReadDir => result.entries = Some(root.read_dir(at).map_err(layers::fs_rejection)?),
            Op::RemoveFile => fs(root.remove_file(at, now))?,
            Op::RemoveDir => fs(root.remove_dir(at, request.recursive, now))?,
            Op::Rename => {
                let to = required(request.destination_path.as_deref(), operation, "a destination_path")?;
                fs(root.rename(at, VPath::at(&self.cwd, to), now))?;
                result.target = Some(to.to_owned());
            }
            Op::Realpath => result.target = Some(root.realpath(at).map_err(layers::fs_rejection)?),
            Op::Symlink => {
                let target = required(request.target.as_deref(), operation, "a target")?;
                fs(root.symlink(target, at, now))?;
                result.target = Some(target.to_owned());
            }
            Op::ReadLink => result.target = Some(root.read_link(at).map_err(layers::fs_rejection)?),
            Op::Link => {
                let to = required(request.destination_path.as_deref(), operation, "a destination_path")?;
                fs(root.link(at, VPath::at(&self.cwd, to), now))?;
                result.target = Some(to.to_owned());
            }
            Op::Chmod => fs(root.chmod(at, required(request.mode, operation, "a mode")?, now))?,
            Op::Chown => {
                let uid = required(request.uid, operation, "a uid")?;
                let gid = required(request.gid, operation, "a gid")?;
                fs(root.chown(at, uid, gid, now))?;
            }
            Op::Utimes => {
                let atime = required(request.atime_ms, operation, "atime_ms")?;
                let mtime = required(request.mtime_ms, operation, "mtime_ms")?;
                fs(root.utimes(at, atime, mtime, now))?;
            }
            Op::Truncate => fs(root.truncate(at, required(request.len, operation, "len")?, now))?,
        }
        Ok(ResponsePayload::GuestFilesystemResultResponse(result))
    }

    fn at<'a>(&'a self, path: &'a str) -> VPath<'a> {
        VPath::at(&self.cwd, path)
    }

    /// Checks `capability` on the path the operation will touch; a denial is `kernel_error`
    /// `EACCES: permission denied, {label} '{subject}': {reason}`.
    fn authorize(
        &self,
        policy: &CompiledPolicy,
        capability: Capability,
        label: &str,
        path: &str,
        subject: Subject,
    ) -> Result<(), Rejection> {
        let resource = self.subject(path, subject);
        match policy.decide(capability, &resource, false) {
            Decision::Allow => Ok(()),
            Decision::Deny { message } => {
                Err(Rejection::new(RejectCode::KernelError, errno_message(label, &resource, &message)))
            }
            // Prompts are off for host requests, so `decide` never asks; deny to be safe.
            Decision::Ask => Err(Rejection::new(
                RejectCode::KernelError,
                errno_message(label, &resource, &format!("permission prompt required for {capability}")),
            )),
        }
    }

    /// The canonical absolute path inside the VM that `path` names for the policy.
    ///
    /// The longest existing prefix is resolved physically (symlinks, `..`), the missing rest
    /// appended (its `.` and `..` applied to it lexically: none of it exists, so none of it is
    /// a symlink). With [`Subject::Follow`], a final symlink is followed, dangling or not.
    fn subject(&self, path: &str, subject: Subject) -> String {
        let mut current = self.absolute(path);
        for _ in 0..=MAX_SYMLINK_HOPS {
            if subject == Subject::Follow {
                if let Ok(real) = self.root.realpath(current.as_str()) {
                    return real;
                }
            }
            let entry = self.entry_subject(&current);
            if subject == Subject::NoFollow {
                return entry;
            }
            match self.root.read_link(entry.as_str()) {
                Ok(target) if target.starts_with('/') => current = target,
                Ok(target) => current = format!("{}/{target}", parent(&entry)),
                Err(_) => return entry,
            }
        }
        current
    }

    /// `path` made absolute against the cwd (lexically; resolution happens later).
    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.cwd)
        }
    }

    /// The canonical path of the entry `absolute` names, its final component not followed.
    fn entry_subject(&self, absolute: &str) -> String {
        let components: Vec<&str> = absolute.split('/').filter(|c| !c.is_empty()).collect();
        for split in (0..components.len()).rev() {
            let (prefix, rest) = components.split_at(split);
            if let Ok(real) = self.root.realpath(format!("/{}", prefix.join("/")).as_str()) {
                return lexical_append(&real, rest);
            }
        }
        lexical_append("/", &components)
    }
}

/// The capability, denial label and subject kind of an operation (see the module table).
fn access(operation: Op) -> (Capability, &'static str, Subject) {
    use Subject::{Follow, NoFollow};
    match operation {
        Op::ReadFile | Op::Pread | Op::Realpath => (Capability::FsRead, "read", Follow),
        Op::ReadLink => (Capability::FsRead, "readlink", NoFollow),
        Op::WriteFile => (Capability::FsWrite, "write", Follow),
        Op::Link => (Capability::FsWrite, "link", NoFollow),
        Op::Chmod => (Capability::FsWrite, "chmod", Follow),
        Op::Chown => (Capability::FsWrite, "chown", Follow),
        Op::Utimes => (Capability::FsWrite, "utimes", Follow),
        Op::Truncate => (Capability::FsWrite, "truncate", Follow),
        Op::Stat => (Capability::FsStat, "stat", Follow),
        Op::Lstat => (Capability::FsStat, "stat", NoFollow),
        Op::Exists => (Capability::FsStat, "exists", Follow),
        Op::ReadDir => (Capability::FsReaddir, "readdir", Follow),
        Op::Mkdir => (Capability::FsCreateDir, "mkdir", NoFollow),
        Op::CreateDir => (Capability::FsCreateDir, "createDir", NoFollow),
        Op::RemoveFile | Op::RemoveDir => (Capability::FsRm, "rm", NoFollow),
        Op::Rename => (Capability::FsRename, "rename", NoFollow),
        Op::Symlink => (Capability::FsSymlink, "symlink", NoFollow),
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

/// A required request field, or `invalid_state` `guest filesystem {op} requires {what}`.
fn required<T>(value: Option<T>, operation: Op, what: &str) -> Result<T, Rejection> {
    value.ok_or_else(|| {
        Rejection::invalid_state(format!("guest filesystem {} requires {what}", operation_name(operation)))
    })
}

/// WRITE_FILE content: UTF-8 text unless `encoding` is BASE64 (standard alphabet, padded).
fn decode_content(
    path: &str,
    content: Option<&str>,
    encoding: Option<RootFilesystemEntryEncoding>,
) -> Result<Vec<u8>, Rejection> {
    use base64::Engine as _;
    let content = content
        .ok_or_else(|| Rejection::invalid_state(format!("guest filesystem write_file for {path} requires content")))?;
    match encoding.unwrap_or(RootFilesystemEntryEncoding::Utf8) {
        RootFilesystemEntryEncoding::Utf8 => Ok(content.as_bytes().to_vec()),
        RootFilesystemEntryEncoding::Base64 => {
            base64::engine::general_purpose::STANDARD.decode(content).map_err(|error| {
                Rejection::invalid_state(format!("invalid base64 guest filesystem content for {path}: {error}"))
            })
        }
    }
}

/// READ_FILE / PREAD content: UTF-8 when the request asked for UTF-8 (or nothing) and the bytes
/// are valid UTF-8, else base64.
fn set_content(result: &mut GuestFilesystemResultResponse, bytes: Vec<u8>, asked: Option<RootFilesystemEntryEncoding>) {
    let (content, encoding) = layers::encode_content(bytes, asked == Some(RootFilesystemEntryEncoding::Base64));
    result.content = Some(content);
    result.encoding = Some(encoding);
}

fn mode_or_default(mode: Option<u32>) -> u32 {
    mode.unwrap_or(crate::vfs::DEFAULT_DIR_MODE)
}

/// The parent of a canonical absolute path (`/` for `/` itself).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(cut) => path.get(..cut).unwrap_or("/"),
    }
}

/// `base` (canonical, absolute) with `rest` appended, `.` skipped and `..` going up (never
/// above `/`).
fn lexical_append(base: &str, rest: &[&str]) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for component in rest {
        match *component {
            "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::{lexical_append, parent};

    #[test]
    fn path_helpers() {
        assert_eq!(parent("/"), "/");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(lexical_append("/", &[]), "/");
        assert_eq!(lexical_append("/a", &["..", "..", "b", ".", "c"]), "/b/c");
        assert_eq!(lexical_append("/a/b", &["c"]), "/a/b/c");
    }
}
