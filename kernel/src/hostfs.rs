//! Host filesystem access, injected: the kernel never touches real files itself.
//!
//! A `host_dir` mount (and `HostFilesystemCallRequest`) reaches the host's files through a
//! [`HostFs`] the embedder hands to [`Sidecar::with_host_fs`](crate::Sidecar::with_host_fs).
//! Without one, mounting `host_dir` fails with `plugin_error`
//! `ENOSYS: host filesystem access is not available`.
//!
//! [`HostFs::open_dir`] is called once per mount, when ConfigureVm mounts it; it returns a
//! [`HostDir`]: one host directory, confined. Every path the kernel passes to a [`HostDir`] is
//! **relative to that directory and normalised**: components separated by `/`, none of them
//! empty, `.` or `..`; `""` is the directory itself. Implementations must still refuse anything
//! else, and must keep every operation inside the directory whatever symlinks it holds (the
//! binary's `OsHostFs` does; see `transport::hostfs`). Errors are errno values ([`Errno`]).
//!
//! The core operations are required; the others default to `ENOSYS`, so a minimal
//! implementation (a read-mostly fake, a platform without symlinks) stays small.

use std::fmt;

use crate::vfs::Errno;

/// A failed host operation: an errno and, optionally, a detail for logs and mount errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", .errno.code(), .detail.as_deref().unwrap_or(.errno.description()))]
pub struct HostFsError {
    pub errno: Errno,
    pub detail: Option<String>,
}

impl HostFsError {
    pub fn new(errno: Errno) -> Self {
        Self { errno, detail: None }
    }

    pub fn with_detail(errno: Errno, detail: impl Into<String>) -> Self {
        Self { errno, detail: Some(detail.into()) }
    }
}

impl From<Errno> for HostFsError {
    fn from(errno: Errno) -> Self {
        Self::new(errno)
    }
}

pub type HostResult<T> = Result<T, HostFsError>;

/// What a host entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFileKind {
    File,
    Directory,
    Symlink,
}

/// `stat` of a host entry. `mode` holds the permission bits (`0o7777`); the kernel adds the
/// file-type bits from `kind`. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStat {
    pub kind: HostFileKind,
    pub mode: u32,
    pub size: u64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub atime_ms: u64,
    pub mtime_ms: u64,
    pub ctime_ms: u64,
    pub birthtime_ms: u64,
}

impl HostStat {
    /// A minimal stat (for fakes): times and ids zero, one link.
    pub fn new(kind: HostFileKind, mode: u32, size: u64) -> Self {
        Self {
            kind,
            mode,
            size,
            ino: 0,
            dev: 0,
            nlink: 1,
            uid: 0,
            gid: 0,
            atime_ms: 0,
            mtime_ms: 0,
            ctime_ms: 0,
            birthtime_ms: 0,
        }
    }
}

/// Opens host directories for `host_dir` mounts.
pub trait HostFs: fmt::Debug + Send + Sync {
    /// The host directory `host_path` (as the mount's config names it), confined to itself.
    /// `ENOENT`/`ENOTDIR` when it is not an existing directory.
    fn open_dir(&self, host_path: &str) -> HostResult<Box<dyn HostDir>>;
}

/// One host directory. Paths are relative and normalised (see the module docs). Operations
/// whose name says so follow a final symlink (inside the directory only); the others act on
/// the entry itself.
pub trait HostDir: fmt::Debug + Send + Sync {
    /// The whole file, following symlinks; `EFBIG` when it is longer than `max_bytes` (checked
    /// before reading it all).
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>>;
    /// Creates or replaces a file's content (a new file gets `mode`). Must refuse a final
    /// symlink (`EACCES`): writes never go through links.
    fn write_file(&self, path: &str, data: &[u8], mode: u32) -> HostResult<()>;
    /// Follows a final symlink.
    fn stat(&self, path: &str) -> HostResult<HostStat>;
    /// Does not follow a final symlink.
    fn lstat(&self, path: &str) -> HostResult<HostStat>;
    /// The names in a directory (any order; the kernel sorts), following symlinks.
    fn read_dir(&self, path: &str) -> HostResult<Vec<String>>;
    /// One directory, or with `recursive` every missing one along the path (`mkdir -p`).
    fn mkdir(&self, path: &str, recursive: bool, mode: u32) -> HostResult<()>;
    /// Removes a non-directory (a symlink itself).
    fn remove_file(&self, path: &str) -> HostResult<()>;
    /// Removes a directory: empty unless `recursive` (never following symlinks inside).
    fn remove_dir(&self, path: &str, recursive: bool) -> HostResult<()>;
    /// POSIX rename, neither final component followed.
    fn rename(&self, from: &str, to: &str) -> HostResult<()>;

    /// Up to `len` bytes from `offset`, following symlinks.
    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        let bytes = self.read_file(path, u64::MAX)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(bytes.len());
        Ok(bytes.get(start..end).unwrap_or_default().to_vec())
    }
    /// Sets a file's length (following symlinks).
    fn truncate(&self, _path: &str, _len: u64) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }
    /// The entry's canonical path, relative to the directory (following symlinks).
    fn realpath(&self, _path: &str) -> HostResult<String> {
        Err(Errno::ENOSYS.into())
    }
    fn symlink(&self, _target: &str, _path: &str) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }
    fn read_link(&self, _path: &str) -> HostResult<String> {
        Err(Errno::ENOSYS.into())
    }
    fn link(&self, _existing: &str, _new: &str) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }
    fn chmod(&self, _path: &str, _mode: u32) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }
    fn chown(&self, _path: &str, _uid: u32, _gid: u32) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }
    fn utimes(&self, _path: &str, _atime_ms: u64, _mtime_ms: u64) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }
}
