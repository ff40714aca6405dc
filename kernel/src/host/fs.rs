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
//! empty, `.` or `..`; `""` is the directory itself. The kernel resolves the symlinks inside a
//! mount itself (with [`HostDir::lstat`] and [`HostDir::read_link`], so the permission policy
//! sees the path really reached), so the paths it passes name no symlink on the way.
//!
//! What every implementation must guarantee, whatever the directory holds and whatever another
//! process does to it meanwhile (the binary's `OsHostFs` resolves every path beneath a handle on
//! the directory; see `transport::hostfs`):
//!
//! - **confinement**: no operation reaches anything outside the directory: not through `..`,
//!   not through a symlink (absolute, relative, chained, swapped in by a racing process);
//! - **no blocking**: FIFOs, sockets and devices are listed and `stat`ed but never opened: an
//!   operation on their content fails with `EACCES`;
//! - **no privilege**: modes never carry setuid, setgid or sticky bits to the host (`& 0o777`),
//!   and `chown` is `EPERM`;
//! - **no planted links**: a new symlink's target must be relative and, read from the link's
//!   real directory, stay inside the directory (see [`symlink_target_depth`]); renames must not
//!   move an existing link somewhere its target would leave the directory.
//!
//! Errors are errno values ([`Errno`]). The core operations are required; the others default
//! to `ENOSYS` (or the safe refusal), so a minimal implementation (a read-mostly fake, a platform
//! without symlinks) stays small.

use std::fmt;
use std::sync::Arc;

use crate::vfs::Errno;

/// A failed host operation: an errno and, optionally, a detail for logs and mount errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HostFileKind {
    File,
    Directory,
    Symlink,
    /// FIFOs, sockets and devices: listed and `stat`ed, never opened.
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl HostFileKind {
    /// Whether the kernel may read or write its content (regular files only).
    pub fn is_special(self) -> bool {
        matches!(self, Self::Fifo | Self::Socket | Self::CharDevice | Self::BlockDevice)
    }
}

/// The permission bits a host entry may be given: read, write and execute for owner, group and
/// others. setuid, setgid and sticky never reach the host (a setuid-root file planted by a guest
/// would be a privilege escalation for whoever runs it on the host).
pub const HOST_MODE_MASK: u32 = 0o777;

/// How many directories a new symlink's target may climb (`..`), given the depth of the link's
/// real directory below the mount's root: `Ok(ups)` when the target is relative, made of
/// leading `..` components followed only by names (`.` ignored), and climbs no higher than the
/// root; `EACCES` otherwise.
///
/// Why so strict: a target is resolved from wherever the link sits when it is followed, by any
/// program on the host. A `..` after a name (`dot/../..`) depends on what that name is then (a
/// link to `.` turns it into one more level up), so only leading `..` are counted, and those
/// against the link's real depth.
pub fn symlink_target_depth(target: &str, link_dir_depth: usize) -> Result<usize, HostFsError> {
    let refuse = |why: &str| Err(HostFsError::with_detail(Errno::EACCES, format!("symlink target {target:?} {why}")));
    if target.is_empty() || target.contains('\0') {
        return refuse("is not a valid path");
    }
    if target.starts_with('/') {
        return refuse("is absolute (it would name the host's root, not the VM's)");
    }
    let mut ups = 0usize;
    let mut named = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if named => return refuse("climbs after a name"),
            ".." => ups = ups.saturating_add(1),
            _ => named = true,
        }
    }
    if ups > link_dir_depth {
        return refuse("leaves the mounted directory");
    }
    Ok(ups)
}

/// `stat` of a host entry. `mode` holds the permission bits (`0o7777`); the kernel adds the
/// file-type bits from `kind`. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    fn open_dir(&self, host_path: &str) -> HostResult<Arc<dyn HostDir>>;
}

/// One host directory. Paths are relative and normalised (see the module docs). Operations
/// whose name says so follow a final symlink (inside the directory only); the others act on
/// the entry itself.
pub trait HostDir: fmt::Debug + Send + Sync {
    /// The whole file, following symlinks; `EFBIG` when it is longer than `max_bytes` (checked
    /// before reading it all).
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>>;
    /// Creates or replaces a file's content (a new file gets `mode & HOST_MODE_MASK`). Must
    /// refuse a final symlink (`EACCES`): writes never go through links.
    fn write_file(&self, path: &str, data: &[u8], mode: u32) -> HostResult<()>;
    /// Follows a final symlink.
    fn stat(&self, path: &str) -> HostResult<HostStat>;
    /// Does not follow a final symlink.
    fn lstat(&self, path: &str) -> HostResult<HostStat>;
    /// The names in a directory (any order; the kernel sorts), following symlinks. Reading stops
    /// with `EFBIG` once more than `max_entries` names were found, so a huge directory costs at
    /// most that much.
    fn read_dir(&self, path: &str, max_entries: u64) -> HostResult<Vec<String>>;
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
    /// Writes `data` at `offset` of an existing regular file (never through a final symlink);
    /// returns the bytes written. The default reads and rewrites the whole file (for fakes).
    fn pwrite(&self, path: &str, offset: u64, data: &[u8]) -> HostResult<u64> {
        let mut bytes = self.read_file(path, u64::MAX)?;
        let start = usize::try_from(offset).map_err(|_| HostFsError::new(Errno::EFBIG))?;
        let end = start.checked_add(data.len()).ok_or_else(|| HostFsError::new(Errno::EFBIG))?;
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        if let Some(slot) = bytes.get_mut(start..end) {
            slot.copy_from_slice(data);
        }
        let mode = self.stat(path)?.mode;
        self.write_file(path, &bytes, mode)?;
        Ok(u64::try_from(data.len()).unwrap_or(u64::MAX))
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
    /// Never allowed: a guest must not give host files away (or to root).
    fn chown(&self, _path: &str, _uid: u32, _gid: u32) -> HostResult<()> {
        Err(Errno::EPERM.into())
    }
    fn utimes(&self, _path: &str, _atime_ms: u64, _mtime_ms: u64) -> HostResult<()> {
        Err(Errno::ENOSYS.into())
    }

    /// The directory this one only observes, if it is such a wrapper (a recording journal):
    /// a call performed as an effect, on the driver's side, goes to that directory, since the
    /// trace records the effect and its completion instead.
    fn observed(&self) -> Option<Arc<dyn HostDir>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(target: &str, depth: usize) -> bool {
        symlink_target_depth(target, depth).is_err_and(|error| error.errno == Errno::EACCES)
    }

    #[test]
    fn symlink_targets_that_stay_inside_are_accepted() {
        assert_eq!(symlink_target_depth("file", 0).ok(), Some(0));
        assert_eq!(symlink_target_depth("./a/./b/", 0).ok(), Some(0));
        assert_eq!(symlink_target_depth("../pkg/bin/cli.js", 1).ok(), Some(1));
        assert_eq!(symlink_target_depth("../../x", 2).ok(), Some(2));
        assert_eq!(symlink_target_depth("..", 1).ok(), Some(1));
    }

    #[test]
    fn symlink_targets_that_could_leave_are_refused() {
        // Absolute: the host's root, not the VM's.
        assert!(refused("/etc", 5));
        // Climbing above the mount's root from where the link really is.
        assert!(refused("..", 0));
        assert!(refused("../../x", 1));
        // `dot/../..` with `dot -> .` climbs two levels although it reads as one: any `..` after
        // a name depends on what that name is when the link is followed.
        assert!(refused("dot/../..", 9));
        assert!(refused("a/..", 9));
        assert!(refused("", 3));
        assert!(refused("a\0b", 3));
    }
}
