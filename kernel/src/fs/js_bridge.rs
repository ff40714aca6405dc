//! `js_bridge` mounts: filesystem operations answered by the host.
//!
//! A guest filesystem call that lands in a js_bridge mount becomes a sidecar-initiated
//! `JsBridgeCallRequest { callId: "js-bridge-call-N", mountId, operation, args }` (N counts from
//! 1 per mount; `mountId` is the config's `mountId` or the guest path). The host's request is
//! **parked**: its response is sent when the host answers with a `JsBridgeResultResponse`
//! (or is refused after [`JS_BRIDGE_TIMEOUT_MS`] on the kernel clock, or when the VM goes away).
//!
//! Operations and `args` (JSON; paths are mount-local, `/`-rooted) are the original sidecar's:
//! `readFile {path}`, `writeFile {path, content: base64}`, `createDir {path}`,
//! `mkdir {path, recursive}`, `exists {path}`, `stat {path}`, `lstat {path}`,
//! `readDir {path}`, `removeFile {path}`, `removeDir {path}` (+ `recursive: true` for `rm -r`),
//! `rename {oldPath, newPath}`, `realpath {path}`, `symlink {target, linkPath}`,
//! `readlink {path}`, `link {oldPath, newPath}`, `chmod {path, mode}`, `chown {path, uid, gid}`,
//! `utimes {path, atimeMs, mtimeMs}`, `truncate {path, length}`, `pread {path, offset, length}`.
//!
//! Results (JSON in `result`): file content as a base64 string or an array of byte values
//! (bounded by `maxPreadBytes`, and a pread by its `len`); `exists` a boolean (an error or
//! anything else is `false`); `stat`/`lstat` an object with the `GuestFilesystemStat` fields in
//! camelCase; `readDir` an array of names; `realpath` (mount-local) and `readlink` a string;
//! the others anything. An `error` string becomes `kernel_error`
//! `"<ERRNO>: <error>, <operation> '<path>'"`, the errno guessed from the text (`ENOENT`,
//! `EACCES`, `EEXIST`, else `EIO`) unless the text starts with one.

use base64::Engine as _;
use schema::wire::{GuestFilesystemOperation as Op, ResponsePayload, RootFilesystemEntryEncoding};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{RejectCode, Rejection};
use crate::fs::op::{FsOp, FsReply};
use crate::vfs::Stat;

/// How long the host has to answer one js_bridge call (the original's 30 s).
pub const JS_BRIDGE_TIMEOUT_MS: u64 = 30_000;

/// What is needed to answer the parked request once the host replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BridgeReply {
    pub operation: Op,
    /// The request's path, as given.
    pub path: String,
    pub js_operation: &'static str,
    /// Echoed in `target` (SYMLINK's target, RENAME's and LINK's destination).
    pub target: Option<String>,
    pub encoding: Option<RootFilesystemEntryEncoding>,
    pub max_read_bytes: u64,
    pub max_readdir_entries: u64,
    /// The mount's guest path (a mount-local realpath is reported under it).
    pub mount_path: String,
    /// Mount points below a listed directory.
    pub extra_entries: Vec<String>,
}

/// A call to send to the host.
#[derive(Debug, Clone)]
pub(crate) struct BridgeCall {
    pub call_id: String,
    pub mount_id: String,
    pub args: String,
    pub reply: BridgeReply,
}

/// The operation name and `args` of a call on mount-local `local` (and `local_dest`).
pub(crate) fn operation_and_args(op: FsOp<'_>, local: &str, local_dest: &str) -> (&'static str, Value) {
    let path = local;
    match op {
        FsOp::ReadFile => ("readFile", json!({ "path": path })),
        FsOp::WriteFile { data, .. } => {
            ("writeFile", json!({ "path": path, "content": base64::engine::general_purpose::STANDARD.encode(data) }))
        }
        FsOp::CreateDir { .. } => ("createDir", json!({ "path": path })),
        FsOp::Mkdir { recursive, .. } => ("mkdir", json!({ "path": path, "recursive": recursive })),
        FsOp::Exists => ("exists", json!({ "path": path })),
        FsOp::Stat => ("stat", json!({ "path": path })),
        FsOp::Lstat => ("lstat", json!({ "path": path })),
        FsOp::ReadDir => ("readDir", json!({ "path": path })),
        FsOp::RemoveFile => ("removeFile", json!({ "path": path })),
        FsOp::RemoveDir { recursive: true } => ("removeDir", json!({ "path": path, "recursive": true })),
        FsOp::RemoveDir { recursive: false } => ("removeDir", json!({ "path": path })),
        FsOp::Rename { .. } => ("rename", json!({ "oldPath": path, "newPath": local_dest })),
        FsOp::Realpath => ("realpath", json!({ "path": path })),
        FsOp::Symlink { target } => ("symlink", json!({ "target": target, "linkPath": path })),
        FsOp::ReadLink => ("readlink", json!({ "path": path })),
        FsOp::Link { .. } => ("link", json!({ "oldPath": path, "newPath": local_dest })),
        FsOp::Chmod { mode } => ("chmod", json!({ "path": path, "mode": mode })),
        FsOp::Chown { uid, gid } => ("chown", json!({ "path": path, "uid": uid, "gid": gid })),
        FsOp::Utimes { atime_ns, mtime_ns, .. } => {
            let (atime_ms, mtime_ms) = (atime_ns / crate::vfs::NS_PER_MS, mtime_ns / crate::vfs::NS_PER_MS);
            ("utimes", json!({ "path": path, "atimeMs": atime_ms, "mtimeMs": mtime_ms }))
        }
        FsOp::Truncate { len } => ("truncate", json!({ "path": path, "length": len })),
        FsOp::Pread { offset, len } => ("pread", json!({ "path": path, "offset": offset, "length": len })),
    }
}

fn io_error(reply: &BridgeReply, what: &str) -> Rejection {
    Rejection::new(RejectCode::KernelError, format!("EIO: {what}, {} '{}'", reply.js_operation, reply.path))
}

/// The host's error text as an errno message.
fn host_error(reply: &BridgeReply, error: &str) -> Rejection {
    const CODES: [&str; 9] =
        ["ENOENT", "EACCES", "EEXIST", "ENOTDIR", "EISDIR", "ENOTEMPTY", "EROFS", "EPERM", "EINVAL"];
    let prefixed = CODES.iter().find(|code| error.strip_prefix(**code).is_some_and(|rest| rest.starts_with(':')));
    let message = match prefixed {
        Some(_) => format!("{error}, {} '{}'", reply.js_operation, reply.path),
        None => {
            let lower = error.to_ascii_lowercase();
            let code = if lower.contains("enoent") || lower.contains("not found") || lower.contains("no such file") {
                "ENOENT"
            } else if lower.contains("eacces") || lower.contains("eperm") || lower.contains("permission denied") {
                "EACCES"
            } else if lower.contains("eexist") || lower.contains("already exists") {
                "EEXIST"
            } else {
                "EIO"
            };
            format!("{code}: {error}, {} '{}'", reply.js_operation, reply.path)
        }
    };
    Rejection::new(RejectCode::KernelError, message)
}

/// The answer to the parked request, from the host's `JsBridgeResultResponse`.
pub(crate) fn complete(
    reply: &BridgeReply,
    result: Option<String>,
    error: Option<String>,
) -> Result<ResponsePayload, Rejection> {
    let answer = answer(reply, result, error)?;
    let response =
        crate::fs::wire::result_response(reply.operation, &reply.path, reply.encoding, reply.target.clone(), answer);
    Ok(ResponsePayload::GuestFilesystemResultResponse(response))
}

/// The host's answer as the operation's typed reply.
fn answer(reply: &BridgeReply, result: Option<String>, error: Option<String>) -> Result<FsReply, Rejection> {
    if reply.operation == Op::Exists {
        let exists = error.is_none()
            && result.and_then(|text| serde_json::from_str::<Value>(&text).ok()).and_then(|v| v.as_bool())
                == Some(true);
        return Ok(FsReply::Exists(exists));
    }
    if let Some(error) = error {
        return Err(host_error(reply, &error));
    }
    let value = match result {
        Some(text) => Some(
            serde_json::from_str::<Value>(&text)
                .map_err(|e| io_error(reply, &format!("invalid js_bridge result payload: {e}")))?,
        ),
        None => None,
    };
    let required = || value.clone().ok_or_else(|| io_error(reply, "js_bridge returned no payload"));
    Ok(match reply.operation {
        Op::ReadFile | Op::Pread => FsReply::Content(bytes(reply, required()?)?),
        Op::Stat | Op::Lstat => FsReply::Stat(decode(reply, required()?).map(|stat: BridgeStat| stat.into())?),
        Op::ReadDir => FsReply::Entries(entries(reply, decode(reply, required()?)?)?),
        Op::Realpath => {
            let local: String = decode(reply, required()?)?;
            FsReply::Target(match local.trim_matches('/') {
                "" => reply.mount_path.clone(),
                inner => format!("{}/{inner}", reply.mount_path.trim_end_matches('/')),
            })
        }
        Op::ReadLink => FsReply::Target(decode(reply, required()?)?),
        _ => FsReply::Done,
    })
}

/// A JSON payload as the type the operation answers.
fn decode<T: serde::de::DeserializeOwned>(reply: &BridgeReply, value: Value) -> Result<T, Rejection> {
    serde_json::from_value(value).map_err(|e| io_error(reply, &format!("invalid js_bridge payload: {e}")))
}

/// A listing with the mount points below the directory added, bounded by `maxReaddirEntries`.
fn entries(reply: &BridgeReply, mut names: Vec<String>) -> Result<Vec<String>, Rejection> {
    names.extend(reply.extra_entries.iter().cloned());
    names.sort();
    names.dedup();
    if u64::try_from(names.len()).unwrap_or(u64::MAX) > reply.max_readdir_entries {
        return Err(Rejection::new(
            RejectCode::LimitExceeded,
            format!("ENOSPC: readdir entries limit of {} reached, scandir '{}'", reply.max_readdir_entries, reply.path),
        ));
    }
    Ok(names)
}

/// Content: a base64 string or an array of bytes, bounded.
fn bytes(reply: &BridgeReply, value: Value) -> Result<Vec<u8>, Rejection> {
    let limit = reply.max_read_bytes;
    let too_long = |len: usize| {
        Rejection::new(
            RejectCode::KernelError,
            format!(
                "EINVAL: js_bridge payload length {len} exceeds configured read limit {limit}, {} '{}'",
                reply.js_operation, reply.path
            ),
        )
    };
    let check = |len: usize| if u64::try_from(len).unwrap_or(u64::MAX) > limit { Err(too_long(len)) } else { Ok(()) };
    match value {
        Value::String(encoded) => {
            check(encoded.len().div_ceil(4).saturating_mul(3).saturating_sub(2))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| io_error(reply, &format!("invalid js_bridge base64 payload: {e}")))?;
            check(decoded.len())?;
            Ok(decoded)
        }
        Value::Array(values) => {
            check(values.len())?;
            values
                .into_iter()
                .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| io_error(reply, "invalid js_bridge byte payload"))
        }
        _ => Err(io_error(reply, "unsupported js_bridge payload")),
    }
}

/// The parked request after [`JS_BRIDGE_TIMEOUT_MS`] without an answer.
pub(crate) fn timed_out(reply: &BridgeReply) -> Rejection {
    io_error(reply, &format!("js_bridge call timed out after {} s", JS_BRIDGE_TIMEOUT_MS / 1000))
}

/// The parked request when its VM is disposed first.
pub(crate) fn cancelled(reply: &BridgeReply, vm_id: &str) -> Rejection {
    io_error(reply, &format!("js_bridge call cancelled: VM {vm_id} was disposed"))
}

/// The parked request when the host answers with something else.
pub(crate) fn mismatched(reply: &BridgeReply, payload: &str) -> Rejection {
    Rejection::new(
        RejectCode::BridgeError,
        format!("unexpected js_bridge response payload {payload}, {} '{}'", reply.js_operation, reply.path),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BridgeStat {
    mode: u32,
    size: u64,
    #[serde(default)]
    blocks: u64,
    #[serde(default)]
    dev: u64,
    #[serde(default)]
    rdev: u64,
    #[serde(default, alias = "is_directory")]
    is_directory: bool,
    #[serde(default, alias = "is_symbolic_link")]
    is_symbolic_link: bool,
    #[serde(default, alias = "atime_ms")]
    atime_ms: u64,
    #[serde(default, alias = "mtime_ms")]
    mtime_ms: u64,
    #[serde(default, alias = "ctime_ms")]
    ctime_ms: u64,
    #[serde(default, alias = "birthtime_ms")]
    birthtime_ms: u64,
    #[serde(default)]
    ino: u64,
    #[serde(default)]
    nlink: u64,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
}

impl From<BridgeStat> for Stat {
    fn from(stat: BridgeStat) -> Self {
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
            atime_ns: stat.atime_ms.saturating_mul(crate::vfs::NS_PER_MS),
            mtime_ns: stat.mtime_ms.saturating_mul(crate::vfs::NS_PER_MS),
            ino: stat.ino,
            nlink: stat.nlink,
            uid: stat.uid,
            gid: stat.gid,
        }
    }
}
