//! Filesystem errors: an errno, the operation and path(s) it concerned, and (for a limit) which
//! bound was hit.

use std::fmt;

/// The errno values the virtual filesystem reports. [`Errno::code`] is the name hosts see at the
/// start of a message (`"ENOENT"`), [`Errno::description`] the libuv/Node wording after it.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Errno {
    EPERM,
    ENOENT,
    EIO,
    EBADF,
    EACCES,
    EBUSY,
    EEXIST,
    EXDEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    EFBIG,
    ENOSPC,
    EROFS,
    EMLINK,
    ENAMETOOLONG,
    ENOTEMPTY,
    ELOOP,
    E2BIG,
    ENOSYS,
    EAGAIN,
    EPIPE,
    ESPIPE,
    EMFILE,
    ENOTSUP,
    EFAULT,
    ESRCH,
    ECHILD,
    ENOTCAPABLE,
    /// A program that is not one the kernel runs (not a valid WebAssembly command).
    ENOEXEC,
    // The network's (appended: traces encode an errno by its position).
    EADDRINUSE,
    EADDRNOTAVAIL,
    EAFNOSUPPORT,
    ECONNREFUSED,
    ECONNRESET,
    EDESTADDRREQ,
    EISCONN,
    EMSGSIZE,
    ENOBUFS,
    ENOPROTOOPT,
    ENOTCONN,
    ENOTSOCK,
    EPROTONOSUPPORT,
    ENETUNREACH,
    ETIMEDOUT,
    // Connections out of the VM (appended, as above).
    ECONNABORTED,
    EHOSTUNREACH,
    EINPROGRESS,
    EALREADY,
    EPROTO,
}

impl Errno {
    /// The errno's name, e.g. `"ENOENT"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::EPERM => "EPERM",
            Self::ENOENT => "ENOENT",
            Self::EIO => "EIO",
            Self::EBADF => "EBADF",
            Self::EACCES => "EACCES",
            Self::EBUSY => "EBUSY",
            Self::EEXIST => "EEXIST",
            Self::EXDEV => "EXDEV",
            Self::ENOTDIR => "ENOTDIR",
            Self::EISDIR => "EISDIR",
            Self::EINVAL => "EINVAL",
            Self::EFBIG => "EFBIG",
            Self::ENOSPC => "ENOSPC",
            Self::EROFS => "EROFS",
            Self::EMLINK => "EMLINK",
            Self::ENAMETOOLONG => "ENAMETOOLONG",
            Self::ENOTEMPTY => "ENOTEMPTY",
            Self::ELOOP => "ELOOP",
            Self::E2BIG => "E2BIG",
            Self::ENOSYS => "ENOSYS",
            Self::EAGAIN => "EAGAIN",
            Self::EPIPE => "EPIPE",
            Self::ESPIPE => "ESPIPE",
            Self::EMFILE => "EMFILE",
            Self::ENOTSUP => "ENOTSUP",
            Self::EFAULT => "EFAULT",
            Self::ESRCH => "ESRCH",
            Self::ECHILD => "ECHILD",
            Self::ENOTCAPABLE => "ENOTCAPABLE",
            Self::ENOEXEC => "ENOEXEC",
            Self::EADDRINUSE => "EADDRINUSE",
            Self::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            Self::EAFNOSUPPORT => "EAFNOSUPPORT",
            Self::ECONNREFUSED => "ECONNREFUSED",
            Self::ECONNRESET => "ECONNRESET",
            Self::EDESTADDRREQ => "EDESTADDRREQ",
            Self::EISCONN => "EISCONN",
            Self::EMSGSIZE => "EMSGSIZE",
            Self::ENOBUFS => "ENOBUFS",
            Self::ENOPROTOOPT => "ENOPROTOOPT",
            Self::ENOTCONN => "ENOTCONN",
            Self::ENOTSOCK => "ENOTSOCK",
            Self::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            Self::ENETUNREACH => "ENETUNREACH",
            Self::ETIMEDOUT => "ETIMEDOUT",
            Self::ECONNABORTED => "ECONNABORTED",
            Self::EHOSTUNREACH => "EHOSTUNREACH",
            Self::EINPROGRESS => "EINPROGRESS",
            Self::EALREADY => "EALREADY",
            Self::EPROTO => "EPROTO",
        }
    }

    /// The errno named `code` (`"ENOENT"`), if the filesystem knows it.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|errno| errno.code() == code)
    }

    /// Every errno, in declaration order.
    pub const ALL: [Errno; 50] = [
        Self::EPERM,
        Self::ENOENT,
        Self::EIO,
        Self::EBADF,
        Self::EACCES,
        Self::EBUSY,
        Self::EEXIST,
        Self::EXDEV,
        Self::ENOTDIR,
        Self::EISDIR,
        Self::EINVAL,
        Self::EFBIG,
        Self::ENOSPC,
        Self::EROFS,
        Self::EMLINK,
        Self::ENAMETOOLONG,
        Self::ENOTEMPTY,
        Self::ELOOP,
        Self::E2BIG,
        Self::ENOSYS,
        Self::EAGAIN,
        Self::EPIPE,
        Self::ESPIPE,
        Self::EMFILE,
        Self::ENOTSUP,
        Self::EFAULT,
        Self::ESRCH,
        Self::ECHILD,
        Self::ENOTCAPABLE,
        Self::ENOEXEC,
        Self::EADDRINUSE,
        Self::EADDRNOTAVAIL,
        Self::EAFNOSUPPORT,
        Self::ECONNREFUSED,
        Self::ECONNRESET,
        Self::EDESTADDRREQ,
        Self::EISCONN,
        Self::EMSGSIZE,
        Self::ENOBUFS,
        Self::ENOPROTOOPT,
        Self::ENOTCONN,
        Self::ENOTSOCK,
        Self::EPROTONOSUPPORT,
        Self::ENETUNREACH,
        Self::ETIMEDOUT,
        Self::ECONNABORTED,
        Self::EHOSTUNREACH,
        Self::EINPROGRESS,
        Self::EALREADY,
        Self::EPROTO,
    ];

    /// The human description Node/libuv print after the code.
    pub fn description(self) -> &'static str {
        match self {
            Self::EPERM => "operation not permitted",
            Self::ENOENT => "no such file or directory",
            Self::EIO => "i/o error",
            Self::EBADF => "bad file descriptor",
            Self::EACCES => "permission denied",
            Self::EBUSY => "resource busy or locked",
            Self::EEXIST => "file already exists",
            Self::EXDEV => "cross-device link not permitted",
            Self::ENOTDIR => "not a directory",
            Self::EISDIR => "illegal operation on a directory",
            Self::EINVAL => "invalid argument",
            Self::EFBIG => "file too large",
            Self::ENOSPC => "no space left on device",
            Self::EROFS => "read-only file system",
            Self::EMLINK => "too many links",
            Self::ENAMETOOLONG => "name too long",
            Self::ENOTEMPTY => "directory not empty",
            Self::ELOOP => "too many symbolic links encountered",
            Self::E2BIG => "argument list too long",
            Self::ENOSYS => "function not implemented",
            Self::EAGAIN => "resource temporarily unavailable",
            Self::EPIPE => "broken pipe",
            Self::ESPIPE => "invalid seek",
            Self::EMFILE => "too many open files",
            Self::ENOTSUP => "operation not supported on socket",
            Self::EFAULT => "bad address in system call argument",
            Self::ESRCH => "no such process",
            Self::ECHILD => "no child processes",
            Self::ENOTCAPABLE => "capabilities insufficient",
            Self::ENOEXEC => "exec format error",
            Self::EADDRINUSE => "address already in use",
            Self::EADDRNOTAVAIL => "address not available",
            Self::EAFNOSUPPORT => "address family not supported",
            Self::ECONNREFUSED => "connection refused",
            Self::ECONNRESET => "connection reset by peer",
            Self::EDESTADDRREQ => "destination address required",
            Self::EISCONN => "socket is already connected",
            Self::EMSGSIZE => "message too long",
            Self::ENOBUFS => "no buffer space available",
            Self::ENOPROTOOPT => "protocol not available",
            Self::ENOTCONN => "socket is not connected",
            Self::ENOTSOCK => "socket operation on non-socket",
            Self::EPROTONOSUPPORT => "protocol not supported",
            Self::ENETUNREACH => "network is unreachable",
            Self::ETIMEDOUT => "connection timed out",
            Self::ECONNABORTED => "software caused connection abort",
            Self::EHOSTUNREACH => "host is unreachable",
            Self::EINPROGRESS => "operation in progress",
            Self::EALREADY => "connection already in progress",
            Self::EPROTO => "protocol error",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Which [`FsLimits`](super::FsLimits) bound an operation would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    FilesystemBytes,
    InodeCount,
    ReaddirEntries,
    PreadBytes,
    FdWriteBytes,
}

impl LimitKind {
    /// The bound's name as it appears in messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::FilesystemBytes => "filesystem bytes",
            Self::InodeCount => "filesystem inode count",
            Self::ReaddirEntries => "readdir entries",
            Self::PreadBytes => "pread bytes",
            Self::FdWriteBytes => "fd write bytes",
        }
    }
}

/// A failed filesystem operation.
///
/// Displayed like the original sidecar (and Node): `ENOENT: no such file or directory, open
/// '/missing'`; two-path operations add `-> '<dest>'`. A limit failure has errno
/// [`Errno::ENOSPC`] and says which bound: `ENOSPC: filesystem bytes limit of 67108864 reached,
/// open '/big'` (the dispatcher reports those with wire code `limit_exceeded`, see
/// [`FsError::limit`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(*.errno, *.limit, .op, .path, .dest.as_deref(), *.detail))]
pub struct FsError {
    errno: Errno,
    limit: Option<(LimitKind, u64)>,
    op: &'static str,
    path: String,
    dest: Option<String>,
    detail: Option<&'static str>,
}

impl FsError {
    /// An error with no operation or path attached yet.
    pub fn new(errno: Errno) -> Self {
        Self { errno, limit: None, op: "", path: String::new(), dest: None, detail: None }
    }

    /// Adds an explanation, shown after the path (`EINVAL: invalid argument, open '/dev/zero':
    /// <detail>`); relabelling keeps it.
    pub fn with_detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// A limit failure: errno `ENOSPC`, naming the bound and its value.
    pub fn limit_exceeded(kind: LimitKind, limit: u64) -> Self {
        Self { limit: Some((kind, limit)), ..Self::new(Errno::ENOSPC) }
    }

    /// Labels the error with the operation (Node's syscall name, e.g. `open`) and the path as
    /// the caller gave it (replacing any earlier label).
    pub fn at(mut self, op: &'static str, path: &str) -> Self {
        self.op = op;
        self.path = path.to_owned();
        self.dest = None;
        self
    }

    /// Labels the error with the operation and both paths of a two-path operation (`rename`,
    /// `link`, `symlink`).
    pub fn at2(mut self, op: &'static str, path: &str, dest: &str) -> Self {
        self.op = op;
        self.path = path.to_owned();
        self.dest = Some(dest.to_owned());
        self
    }

    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// `"ENOENT"` etc.
    pub fn code(&self) -> &'static str {
        self.errno.code()
    }

    /// The bound hit and its value, when this is a limit failure.
    pub fn limit(&self) -> Option<(LimitKind, u64)> {
        self.limit
    }

    pub fn op(&self) -> &'static str {
        self.op
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn dest(&self) -> Option<&str> {
        self.dest.as_deref()
    }

    pub fn detail(&self) -> Option<&'static str> {
        self.detail
    }
}

impl From<Errno> for FsError {
    fn from(errno: Errno) -> Self {
        Self::new(errno)
    }
}

fn render(
    errno: Errno,
    limit: Option<(LimitKind, u64)>,
    op: &str,
    path: &str,
    dest: Option<&str>,
    detail: Option<&str>,
) -> String {
    let mut out = match limit {
        Some((kind, limit)) => format!("{}: {} limit of {limit} reached", errno.code(), kind.what()),
        None => format!("{}: {}", errno.code(), errno.description()),
    };
    if !op.is_empty() {
        out.push_str(&format!(", {op} '{path}'"));
        if let Some(dest) = dest {
            out.push_str(&format!(" -> '{dest}'"));
        }
    }
    if let Some(detail) = detail {
        out.push_str(&format!(": {detail}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(FsError::new(Errno::ENOENT).to_string(), "ENOENT: no such file or directory");
        assert_eq!(
            FsError::new(Errno::ENOENT).at("open", "/missing").to_string(),
            "ENOENT: no such file or directory, open '/missing'"
        );
        assert_eq!(
            FsError::new(Errno::EXDEV).at2("rename", "/a", "/b").to_string(),
            "EXDEV: cross-device link not permitted, rename '/a' -> '/b'"
        );
        let limit = FsError::limit_exceeded(LimitKind::InodeCount, 16384).at("mkdir", "/x");
        assert_eq!(limit.to_string(), "ENOSPC: filesystem inode count limit of 16384 reached, mkdir '/x'");
        assert_eq!(limit.limit(), Some((LimitKind::InodeCount, 16384)));
        // Relabelling replaces the operation and drops a stale destination.
        let relabelled = FsError::new(Errno::EIO).at2("link", "/a", "/b").at("stat", "/c");
        assert_eq!(relabelled.to_string(), "EIO: i/o error, stat '/c'");
        let detailed = FsError::new(Errno::EINVAL).with_detail("why").at("open", "/z");
        assert_eq!(detailed.to_string(), "EINVAL: invalid argument, open '/z': why");
    }
}
