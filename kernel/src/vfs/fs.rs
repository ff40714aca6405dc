//! The inode-based in-memory filesystem.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::clock::Now;

use super::error::{Errno, FsError, LimitKind};
use super::path::{self, Mode, Namespace, NodeKind, Resolved, VPath};

/// File-type bits of `mode`.
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFLNK: u32 = 0o120_000;
/// Character devices (`/dev/null` and the other kernel-served devices).
pub const S_IFCHR: u32 = 0o020_000;
/// FIFOs, sockets and block devices: only ever seen on a `host_dir` mount (listed, never opened).
pub const S_IFIFO: u32 = 0o010_000;
pub const S_IFSOCK: u32 = 0o140_000;
pub const S_IFBLK: u32 = 0o060_000;
/// Permission bits of `mode` (with setuid, setgid and sticky).
pub const PERMISSION_BITS: u32 = 0o7777;
/// Permissions of a new file when none are given (0o666 less umask 022).
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Permissions of a new directory when none are given (0o777 less umask 022).
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Permissions of every symlink.
pub const SYMLINK_MODE: u32 = 0o777;
/// `size` reported for directories (like ext4).
pub const DIR_SIZE: u64 = 4096;
/// `dev` reported for every inode of a [`Filesystem`].
pub const FILESYSTEM_DEV: u64 = 1;
/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// Default total bytes of the in-memory filesystem (64 MiB).
pub const DEFAULT_MAX_FILESYSTEM_BYTES: u64 = 64 * 1024 * 1024;
/// Default inode count of the in-memory filesystem: bounds metadata growth.
pub const DEFAULT_MAX_INODE_COUNT: u64 = 16_384;
/// Default bytes of one positional read, host_dir reads included (64 MiB).
pub const DEFAULT_MAX_PREAD_BYTES: u64 = 64 * 1024 * 1024;
/// Default bytes of one fd write (64 MiB).
pub const DEFAULT_MAX_FD_WRITE_BYTES: u64 = 64 * 1024 * 1024;
/// Default entries returned by one readdir: bounds one response's size.
pub const DEFAULT_MAX_READDIR_ENTRIES: u64 = 4_096;

/// Bounds of one filesystem. An operation that would exceed one fails with `ENOSPC` (carrying
/// the [`LimitKind`]) and changes nothing.
///
/// - `max_filesystem_bytes`: total bytes of regular-file content (each inode counted once,
///   however many hard links it has; symlink targets and directories are bounded by the inode
///   count). Checked by writes, truncates, copies and imports.
/// - `max_inode_count`: live inodes, the root included. Checked by every creation.
/// - `max_readdir_entries`: a `read_dir` of a directory with more entries fails (the directory
///   itself may hold more).
/// - `max_pread_bytes`: a `pread` asking for more bytes fails.
/// - `max_fd_write_bytes`: one `write_file`/`pwrite` of more bytes fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsLimits {
    pub max_filesystem_bytes: u64,
    pub max_inode_count: u64,
    pub max_readdir_entries: u64,
    pub max_pread_bytes: u64,
    pub max_fd_write_bytes: u64,
}

impl Default for FsLimits {
    fn default() -> Self {
        Self {
            max_filesystem_bytes: DEFAULT_MAX_FILESYSTEM_BYTES,
            max_inode_count: DEFAULT_MAX_INODE_COUNT,
            max_readdir_entries: DEFAULT_MAX_READDIR_ENTRIES,
            max_pread_bytes: DEFAULT_MAX_PREAD_BYTES,
            max_fd_write_bytes: DEFAULT_MAX_FD_WRITE_BYTES,
        }
    }
}

impl FsLimits {
    /// No bound at all (for trusted content such as a layer built by the host).
    pub fn unlimited() -> Self {
        Self {
            max_filesystem_bytes: u64::MAX,
            max_inode_count: u64::MAX,
            max_readdir_entries: u64::MAX,
            max_pread_bytes: u64::MAX,
            max_fd_write_bytes: u64::MAX,
        }
    }
}

/// What `stat` reports: every field of the wire `GuestFilesystemStat`. Times are milliseconds
/// since the Unix epoch (the `wall_ms` of the [`Now`] of the call that set them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub mode: u32,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub dev: u64,
    pub rdev: u64,
    pub is_directory: bool,
    pub is_symbolic_link: bool,
    pub atime_ms: u64,
    pub mtime_ms: u64,
    pub ctime_ms: u64,
    pub birthtime_ms: u64,
    /// `atime` and `mtime` to the nanosecond (times set explicitly may be finer than the
    /// kernel's millisecond clock; the wire reports milliseconds, guests' `stat` nanoseconds).
    pub atime_ns: u64,
    pub mtime_ns: u64,
    pub ino: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
}

impl Stat {
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    File(Vec<u8>),
    Dir(BTreeMap<String, u64>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub atime: u64,
    pub mtime: u64,
    /// Nanoseconds past `atime`'s and `mtime`'s millisecond (see [`Stat::atime_ns`]).
    pub atime_nsec: u32,
    pub mtime_nsec: u32,
    pub ctime: u64,
    pub birthtime: u64,
    pub data: Data,
}

impl Inode {
    fn new(mode: u32, data: Data, now: Now) -> Self {
        let t = now.wall_ms;
        Self {
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            atime: t,
            mtime: t,
            atime_nsec: 0,
            mtime_nsec: 0,
            ctime: t,
            birthtime: t,
            data,
        }
    }

    pub(crate) fn kind(&self) -> NodeKind {
        match self.data {
            Data::File(_) => NodeKind::File,
            Data::Dir(_) => NodeKind::Dir,
            Data::Symlink(_) => NodeKind::Symlink,
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.data, Data::Dir(_))
    }

    fn touch_mc(&mut self, now: Now) {
        self.mtime = now.wall_ms;
        self.mtime_nsec = 0;
        self.ctime = now.wall_ms;
    }

    pub(crate) fn stat(&self, ino: u64, dev: u64) -> Stat {
        let size = match &self.data {
            Data::File(bytes) => len64(bytes.len()),
            Data::Dir(_) => DIR_SIZE,
            Data::Symlink(target) => len64(target.len()),
        };
        Stat {
            mode: self.mode,
            size,
            blocks: size.div_ceil(512),
            dev,
            rdev: 0,
            is_directory: self.is_dir(),
            is_symbolic_link: matches!(self.data, Data::Symlink(_)),
            atime_ms: self.atime,
            mtime_ms: self.mtime,
            atime_ns: precise_ns(self.atime, self.atime_nsec),
            mtime_ns: precise_ns(self.mtime, self.mtime_nsec),
            ctime_ms: self.ctime,
            birthtime_ms: self.birthtime,
            ino,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
        }
    }

    fn content_len(&self) -> u64 {
        match &self.data {
            Data::File(bytes) => len64(bytes.len()),
            _ => 0,
        }
    }
}

/// Milliseconds and the nanoseconds past them, as nanoseconds (saturating past year 2554).
fn precise_ns(ms: u64, nsec: u32) -> u64 {
    ms.saturating_mul(NS_PER_MS).saturating_add(u64::from(nsec))
}

/// Nanoseconds as milliseconds and the nanoseconds past them.
fn split_ns(ns: u64) -> (u64, u32) {
    (ns / NS_PER_MS, u32::try_from(ns % NS_PER_MS).unwrap_or(0))
}

/// Nanoseconds in a millisecond (the kernel clock's resolution).
pub const NS_PER_MS: u64 = 1_000_000;

pub(crate) fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// An in-memory POSIX-like filesystem: regular files, directories, symlinks and hard links,
/// bounded by [`FsLimits`].
///
/// Deterministic and sans-IO: every mutating call takes the [`Now`] whose `wall_ms` becomes the
/// file times it sets. Reads do not update `atime` (like a `noatime` mount); `utimes` sets it.
/// Permission bits are stored and reported but not enforced: access control is the sidecar's
/// permission policy's job. Every operation either succeeds or fails leaving the filesystem
/// exactly as it was (limits are checked before anything changes; `mkdir -p` undoes its
/// partial work).
///
/// Paths are [`VPath`]s (a `&str` is taken from the root); see [`path`](super::path) for the
/// resolution rules. Errors name Node's syscall for the operation (`open`, `mkdir`, `scandir`,
/// ...) and the path as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    total_bytes: u64,
    limits: FsLimits,
    read_only: bool,
    /// Files an open descriptor holds ([`pin`](Self::pin)): one whose last name goes is kept,
    /// nameless, until it is unpinned, as an open file outlives its unlinking on POSIX.
    pinned: BTreeSet<u64>,
    /// Pinned files with no name left: they still count against the limits.
    orphans: BTreeSet<u64>,
}

impl Namespace for Filesystem {
    type Node = u64;

    fn root(&self) -> u64 {
        ROOT_INO
    }

    fn lookup(&self, dir: &u64, name: &str) -> Option<u64> {
        match &self.inodes.get(dir)?.data {
            Data::Dir(entries) => entries.get(name).copied(),
            _ => None,
        }
    }

    fn kind(&self, node: &u64) -> NodeKind {
        self.inodes.get(node).map_or(NodeKind::File, Inode::kind)
    }

    fn link_target(&self, node: &u64) -> &str {
        match self.inodes.get(node).map(|inode| &inode.data) {
            Some(Data::Symlink(target)) => target,
            _ => "",
        }
    }
}

/// Undo record of one directory `mkdir -p` created.
#[derive(Debug)]
pub(crate) struct Created {
    pub parent: u64,
    pub name: String,
    pub ino: u64,
    parent_before: (u64, u64, u64),
}

impl Filesystem {
    /// An empty filesystem: a root directory (mode `0o755`, owner 0:0) with times from `now`.
    pub fn new(limits: FsLimits, now: Now) -> Self {
        let mut root = Inode::new(S_IFDIR | DEFAULT_DIR_MODE, Data::Dir(BTreeMap::new()), now);
        root.nlink = 2;
        let mut inodes = BTreeMap::new();
        inodes.insert(ROOT_INO, root);
        Self {
            inodes,
            next_ino: ROOT_INO.saturating_add(1),
            total_bytes: 0,
            limits,
            read_only: false,
            pinned: BTreeSet::new(),
            orphans: BTreeSet::new(),
        }
    }

    pub fn limits(&self) -> &FsLimits {
        &self.limits
    }

    /// Replaces the limits. Content already over a new bound stays; later growth fails.
    pub fn set_limits(&mut self, limits: FsLimits) {
        self.limits = limits;
    }

    /// Total bytes of regular-file content (what `max_filesystem_bytes` bounds).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Live inodes, the root included (what `max_inode_count` bounds).
    pub fn inode_count(&self) -> u64 {
        len64(self.inodes.len())
    }

    /// A read-only filesystem fails every mutation with `EROFS`.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    // -----------------------------------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------------------------------

    pub(crate) fn inode(&self, ino: u64) -> Result<&Inode, FsError> {
        self.inodes.get(&ino).ok_or_else(|| Errno::EIO.into())
    }

    fn inode_mut(&mut self, ino: u64) -> Result<&mut Inode, FsError> {
        self.inodes.get_mut(&ino).ok_or_else(|| Errno::EIO.into())
    }

    fn dir_entries(&self, ino: u64) -> Result<&BTreeMap<String, u64>, FsError> {
        match &self.inode(ino)?.data {
            Data::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR.into()),
        }
    }

    fn dir_entries_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<String, u64>, FsError> {
        match &mut self.inode_mut(ino)?.data {
            Data::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR.into()),
        }
    }

    pub(crate) fn resolve(&self, path: VPath<'_>, mode: Mode) -> Result<Resolved<u64>, FsError> {
        path::resolve(self, path, mode)
    }

    /// Resolves following the final symlink and requires the node to exist.
    fn existing(&self, path: VPath<'_>, mode: Mode) -> Result<u64, FsError> {
        self.resolve(path, mode)?.node.ok_or_else(|| Errno::ENOENT.into())
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.read_only {
            return Err(Errno::EROFS.into());
        }
        Ok(())
    }

    pub(crate) fn check_inodes(&self, new: u64) -> Result<(), FsError> {
        let limit = self.limits.max_inode_count;
        if self.inode_count().checked_add(new).is_none_or(|total| total > limit) {
            return Err(FsError::limit_exceeded(LimitKind::InodeCount, limit));
        }
        Ok(())
    }

    /// Checks that content growing from `old` to `new` bytes fits.
    fn check_bytes(&self, old: u64, new: u64) -> Result<(), FsError> {
        if new <= old {
            return Ok(());
        }
        let limit = self.limits.max_filesystem_bytes;
        let grown = self.total_bytes.checked_add(new.saturating_sub(old));
        if grown.is_none_or(|total| total > limit) {
            return Err(FsError::limit_exceeded(LimitKind::FilesystemBytes, limit));
        }
        Ok(())
    }

    fn check_write_len(&self, len: usize) -> Result<(), FsError> {
        let limit = self.limits.max_fd_write_bytes;
        if len64(len) > limit {
            return Err(FsError::limit_exceeded(LimitKind::FdWriteBytes, limit));
        }
        Ok(())
    }

    /// Adjusts the byte total after content went from `old` to `new` bytes (already checked).
    fn account(&mut self, old: u64, new: u64) {
        self.total_bytes = self.total_bytes.saturating_sub(old).saturating_add(new);
    }

    /// Allocates an inode and links it as `name` in `parent` (limits already checked).
    fn insert_child(&mut self, parent: u64, name: &str, inode: Inode, now: Now) -> Result<u64, FsError> {
        let ino = self.next_ino;
        let next = ino.checked_add(1).ok_or(Errno::ENOSPC)?;
        let is_dir = inode.is_dir();
        let bytes = inode.content_len();
        let parent_inode = self.inode_mut(parent)?;
        if is_dir {
            parent_inode.nlink = parent_inode.nlink.saturating_add(1);
        }
        parent_inode.touch_mc(now);
        self.dir_entries_mut(parent)?.insert(name.to_owned(), ino);
        self.inodes.insert(ino, inode);
        self.next_ino = next;
        self.account(0, bytes);
        Ok(ino)
    }

    /// Drops one link to `ino`; frees it when none is left, unless it is pinned: then it
    /// lives on, nameless, until unpinned.
    fn drop_link(&mut self, ino: u64, now: Now) -> Result<(), FsError> {
        let inode = self.inode_mut(ino)?;
        inode.nlink = inode.nlink.saturating_sub(1);
        inode.ctime = now.wall_ms;
        if inode.nlink == 0 {
            if self.pinned.contains(&ino) {
                self.orphans.insert(ino);
            } else {
                self.free(ino);
            }
        }
        Ok(())
    }

    fn free(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.remove(&ino) {
            self.account(inode.content_len(), 0);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Open files, by inode
    // -----------------------------------------------------------------------------------------

    /// The regular file `path` leads to (following symlinks), for a descriptor to hold.
    pub(crate) fn file_ino(&self, path: VPath<'_>) -> Result<u64, FsError> {
        let ino = self.existing(path, Mode::Follow)?;
        match self.inode(ino)?.data {
            Data::File(_) => Ok(ino),
            Data::Dir(_) => Err(Errno::EISDIR.into()),
            Data::Symlink(_) => Err(Errno::EIO.into()),
        }
    }

    /// Keeps file `ino` alive while a descriptor holds it, whatever becomes of its names.
    pub(crate) fn pin(&mut self, ino: u64) {
        if self.inodes.contains_key(&ino) {
            self.pinned.insert(ino);
        }
    }

    /// No descriptor holds `ino` any more: a file left without a name is freed now.
    pub(crate) fn unpin(&mut self, ino: u64) {
        self.pinned.remove(&ino);
        if self.orphans.remove(&ino) {
            self.free(ino);
        }
    }

    /// Files kept alive only by descriptors (unlinked while open).
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    fn file_bytes(&self, ino: u64) -> Result<&[u8], FsError> {
        match &self.inode(ino)?.data {
            Data::File(bytes) => Ok(bytes),
            Data::Dir(_) => Err(Errno::EISDIR.into()),
            Data::Symlink(_) => Err(Errno::EIO.into()),
        }
    }

    /// At most `len` bytes at `offset` of file `ino` (see [`pread`](Self::pread)).
    pub(crate) fn pread_ino(&self, ino: u64, offset: u64, len: u64) -> Result<&[u8], FsError> {
        let limit = self.limits.max_pread_bytes;
        if len > limit {
            return Err(FsError::limit_exceeded(LimitKind::PreadBytes, limit));
        }
        let bytes = self.file_bytes(ino)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(bytes.len());
        Ok(bytes.get(start..end).unwrap_or(&[]))
    }

    /// The stat of inode `ino`.
    pub(crate) fn stat_ino(&self, ino: u64) -> Result<Stat, FsError> {
        Ok(self.inode(ino)?.stat(ino, FILESYSTEM_DEV))
    }

    /// Writes `data` at `offset` of file `ino` (see [`pwrite`](Self::pwrite)).
    pub(crate) fn pwrite_ino(&mut self, ino: u64, offset: u64, data: &[u8], now: Now) -> Result<u64, FsError> {
        self.writable()?;
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        self.check_write_len(data.len())?;
        let old_len = inode.content_len();
        let end = offset.checked_add(len64(data.len())).ok_or(Errno::EFBIG)?;
        let new_len = old_len.max(end);
        self.check_bytes(old_len, new_len)?;
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = usize::try_from(end).map_err(|_| Errno::EFBIG)?;
        let inode = self.inode_mut(ino)?;
        if let Data::File(bytes) = &mut inode.data {
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            if let Some(slot) = bytes.get_mut(start..end) {
                slot.copy_from_slice(data);
            }
        }
        inode.touch_mc(now);
        self.account(old_len, new_len);
        Ok(len64(data.len()))
    }

    /// Sets the length of file `ino` (see [`truncate`](Self::truncate)).
    pub(crate) fn truncate_ino(&mut self, ino: u64, len: u64, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        let old_len = inode.content_len();
        self.check_bytes(old_len, len)?;
        let new_len = usize::try_from(len).map_err(|_| Errno::EFBIG)?;
        let inode = self.inode_mut(ino)?;
        if let Data::File(bytes) = &mut inode.data {
            bytes.resize(new_len, 0);
        }
        inode.touch_mc(now);
        self.account(old_len, len);
        Ok(())
    }

    /// Sets the access and modification times of inode `ino`; `ctime` becomes `now`.
    pub(crate) fn utimes_ino(&mut self, ino: u64, atime_ns: u64, mtime_ns: u64, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let inode = self.inode_mut(ino)?;
        (inode.atime, inode.atime_nsec) = split_ns(atime_ns);
        (inode.mtime, inode.mtime_nsec) = split_ns(mtime_ns);
        inode.ctime = now.wall_ms;
        Ok(())
    }

    /// Removes the whole subtree at directory `ino` (already unlinked from its parent).
    fn free_tree(&mut self, ino: u64, now: Now) -> Result<(), FsError> {
        let mut stack = vec![ino];
        while let Some(dir) = stack.pop() {
            let children: Vec<u64> = self.dir_entries(dir)?.values().copied().collect();
            for child in children {
                if self.inode(child)?.is_dir() {
                    stack.push(child);
                } else {
                    self.drop_link(child, now)?;
                }
            }
            self.inodes.remove(&dir);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------------

    /// The whole content of a file (following symlinks).
    pub fn read_file<'p>(&self, path: impl Into<VPath<'p>>) -> Result<&[u8], FsError> {
        let path = path.into();
        self.read_file_inner(path).map_err(|e| e.at("open", path.path))
    }

    fn read_file_inner(&self, path: VPath<'_>) -> Result<&[u8], FsError> {
        let ino = self.existing(path, Mode::Follow)?;
        match &self.inode(ino)?.data {
            Data::File(bytes) => Ok(bytes),
            Data::Dir(_) => Err(Errno::EISDIR.into()),
            Data::Symlink(_) => Err(Errno::EIO.into()),
        }
    }

    /// At most `len` bytes from `offset` (fewer at the end of the file; none past it). `len`
    /// above `max_pread_bytes` fails.
    pub fn pread<'p>(&self, path: impl Into<VPath<'p>>, offset: u64, len: u64) -> Result<&[u8], FsError> {
        let path = path.into();
        self.pread_inner(path, offset, len).map_err(|e| e.at("read", path.path))
    }

    fn pread_inner(&self, path: VPath<'_>, offset: u64, len: u64) -> Result<&[u8], FsError> {
        let limit = self.limits.max_pread_bytes;
        if len > limit {
            return Err(FsError::limit_exceeded(LimitKind::PreadBytes, limit));
        }
        let ino = self.existing(path, Mode::Follow)?;
        self.pread_ino(ino, offset, len)
    }

    /// Whether the path leads to something (following symlinks; a dangling link does not exist).
    pub fn exists<'p>(&self, path: impl Into<VPath<'p>>) -> bool {
        matches!(self.resolve(path.into(), Mode::Follow), Ok(Resolved { node: Some(_), .. }))
    }

    pub fn stat<'p>(&self, path: impl Into<VPath<'p>>) -> Result<Stat, FsError> {
        let path = path.into();
        self.stat_inner(path, Mode::Follow).map_err(|e| e.at("stat", path.path))
    }

    /// Like [`stat`](Self::stat) but a final symlink is reported itself.
    pub fn lstat<'p>(&self, path: impl Into<VPath<'p>>) -> Result<Stat, FsError> {
        let path = path.into();
        self.stat_inner(path, Mode::NoFollow).map_err(|e| e.at("lstat", path.path))
    }

    fn stat_inner(&self, path: VPath<'_>, mode: Mode) -> Result<Stat, FsError> {
        let ino = self.existing(path, mode)?;
        Ok(self.inode(ino)?.stat(ino, FILESYSTEM_DEV))
    }

    /// The names in a directory, sorted (bytewise), without `.` and `..`.
    pub fn read_dir<'p>(&self, path: impl Into<VPath<'p>>) -> Result<Vec<String>, FsError> {
        let path = path.into();
        self.read_dir_inner(path).map_err(|e| e.at("scandir", path.path))
    }

    fn read_dir_inner(&self, path: VPath<'_>) -> Result<Vec<String>, FsError> {
        let ino = self.existing(path, Mode::Follow)?;
        let entries = self.dir_entries(ino)?;
        let limit = self.limits.max_readdir_entries;
        if len64(entries.len()) > limit {
            return Err(FsError::limit_exceeded(LimitKind::ReaddirEntries, limit));
        }
        Ok(entries.keys().cloned().collect())
    }

    /// The canonical absolute path (every symlink, `.` and `..` resolved).
    pub fn realpath<'p>(&self, path: impl Into<VPath<'p>>) -> Result<String, FsError> {
        let path = path.into();
        self.realpath_inner(path).map_err(|e| e.at("realpath", path.path))
    }

    fn realpath_inner(&self, path: VPath<'_>) -> Result<String, FsError> {
        let resolved = self.resolve(path, Mode::Follow)?;
        if resolved.node.is_none() {
            return Err(Errno::ENOENT.into());
        }
        Ok(resolved.canonical())
    }

    /// A symlink's target (`EINVAL` for anything else).
    pub fn read_link<'p>(&self, path: impl Into<VPath<'p>>) -> Result<String, FsError> {
        let path = path.into();
        self.read_link_inner(path).map_err(|e| e.at("readlink", path.path))
    }

    fn read_link_inner(&self, path: VPath<'_>) -> Result<String, FsError> {
        let ino = self.existing(path, Mode::NoFollow)?;
        match &self.inode(ino)?.data {
            Data::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Files
    // -----------------------------------------------------------------------------------------

    /// Creates or truncates-and-writes a file (following a final symlink, creating its target
    /// when dangling). New files get mode `0o644`.
    pub fn write_file<'p>(&mut self, path: impl Into<VPath<'p>>, data: &[u8], now: Now) -> Result<(), FsError> {
        self.write_file_with_mode(path, data, DEFAULT_FILE_MODE, now)
    }

    /// [`write_file`](Self::write_file) giving the permissions of a file it creates.
    pub fn write_file_with_mode<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        data: &[u8],
        mode: u32,
        now: Now,
    ) -> Result<(), FsError> {
        self.write_file_content(path, Cow::Borrowed(data), mode, now)
    }

    /// [`Self::write_file_with_mode`] with content that may be owned: owned content becomes the
    /// file's without a copy (an import of decoded bootstrap files).
    pub fn write_file_content<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        data: Cow<'_, [u8]>,
        mode: u32,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        self.write_file_inner(path, data, mode, now).map_err(|e| e.at("open", path.path))
    }

    fn write_file_inner(&mut self, path: VPath<'_>, data: Cow<'_, [u8]>, mode: u32, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Follow)?;
        let new_len = len64(data.len());
        match (resolved.node, resolved.name) {
            (Some(ino), _) => {
                let inode = self.inode(ino)?;
                if inode.is_dir() {
                    return Err(Errno::EISDIR.into());
                }
                let old_len = inode.content_len();
                self.check_write_len(data.len())?;
                self.check_bytes(old_len, new_len)?;
                let inode = self.inode_mut(ino)?;
                inode.data = Data::File(data.into_owned());
                inode.touch_mc(now);
                self.account(old_len, new_len);
                Ok(())
            }
            (None, Some(name)) => {
                if resolved.trailing_slash {
                    return Err(Errno::EISDIR.into());
                }
                let parent = resolved.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
                self.check_write_len(data.len())?;
                self.check_inodes(1)?;
                self.check_bytes(0, new_len)?;
                let inode = Inode::new(S_IFREG | (mode & PERMISSION_BITS), Data::File(data.into_owned()), now);
                self.insert_child(parent, &name, inode, now)?;
                Ok(())
            }
            (None, None) => Err(Errno::EIO.into()),
        }
    }

    /// Writes `data` at `offset` into an existing file, zero-filling any gap, growing it as
    /// needed. Returns the bytes written.
    pub fn pwrite<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        offset: u64,
        data: &[u8],
        now: Now,
    ) -> Result<u64, FsError> {
        let path = path.into();
        self.pwrite_inner(path, offset, data, now).map_err(|e| e.at("write", path.path))
    }

    fn pwrite_inner(&mut self, path: VPath<'_>, offset: u64, data: &[u8], now: Now) -> Result<u64, FsError> {
        self.writable()?;
        let ino = self.existing(path, Mode::Follow)?;
        self.pwrite_ino(ino, offset, data, now)
    }

    /// Sets a file's length, cutting or zero-filling (following symlinks).
    pub fn truncate<'p>(&mut self, path: impl Into<VPath<'p>>, len: u64, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.truncate_inner(path, len, now).map_err(|e| e.at("open", path.path))
    }

    fn truncate_inner(&mut self, path: VPath<'_>, len: u64, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let ino = self.existing(path, Mode::Follow)?;
        self.truncate_ino(ino, len, now)
    }

    // -----------------------------------------------------------------------------------------
    // Directories
    // -----------------------------------------------------------------------------------------

    /// Creates one directory (mode `0o755`); `EEXIST` if anything is there (even a dangling
    /// symlink), `ENOENT` if its parent is missing.
    pub fn create_dir<'p>(&mut self, path: impl Into<VPath<'p>>, now: Now) -> Result<(), FsError> {
        self.mkdir_with_mode(path, false, DEFAULT_DIR_MODE, now)
    }

    /// `recursive: false` is [`create_dir`](Self::create_dir); `recursive: true` is `mkdir -p`:
    /// creates every missing directory along the path, succeeds if it already is a directory
    /// (`EEXIST` if it is something else). All or nothing: on failure the directories it made are
    /// removed again and the parents' times restored.
    pub fn mkdir<'p>(&mut self, path: impl Into<VPath<'p>>, recursive: bool, now: Now) -> Result<(), FsError> {
        self.mkdir_with_mode(path, recursive, DEFAULT_DIR_MODE, now)
    }

    /// [`mkdir`](Self::mkdir) giving the permissions of the directories it creates.
    pub fn mkdir_with_mode<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        recursive: bool,
        mode: u32,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        let result = if recursive { self.mkdir_recursive(path, mode, now) } else { self.mkdir_one(path, mode, now) };
        result.map_err(|e| e.at("mkdir", path.path))
    }

    fn mkdir_one(&mut self, path: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Parent)?;
        let (Some(name), None) = (resolved.name, resolved.node) else {
            return Err(Errno::EEXIST.into());
        };
        let parent = resolved.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
        self.make_dir_in(parent, &name, mode, now)?;
        Ok(())
    }

    /// Creates directory `name` in `parent` (checking the inode limit); returns its undo record.
    pub(crate) fn make_dir_in(&mut self, parent: u64, name: &str, mode: u32, now: Now) -> Result<Created, FsError> {
        self.check_inodes(1)?;
        let parent_inode = self.inode(parent)?;
        let parent_before = (parent_inode.nlink, parent_inode.mtime, parent_inode.ctime);
        let mut inode = Inode::new(S_IFDIR | (mode & PERMISSION_BITS), Data::Dir(BTreeMap::new()), now);
        inode.nlink = 2;
        let ino = self.insert_child(parent, name, inode, now)?;
        Ok(Created { parent, name: name.to_owned(), ino, parent_before })
    }

    /// Undoes [`make_dir_in`](Self::make_dir_in) (the directory is still empty).
    pub(crate) fn undo_make_dir(&mut self, record: &Created) {
        if let Ok(entries) = self.dir_entries_mut(record.parent) {
            entries.remove(&record.name);
        }
        self.inodes.remove(&record.ino);
        if let Ok(parent) = self.inode_mut(record.parent) {
            (parent.nlink, parent.mtime, parent.ctime) = record.parent_before;
        }
    }

    /// `mkdir -p`, walking the path once: each name is entered if it exists (following
    /// symlinks; it must lead to a directory) and created if not. Equivalent to `mkdir` of each
    /// lexical prefix in turn (like coreutils), all or nothing.
    fn mkdir_recursive(&mut self, path: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
        self.writable()?;
        path::validate(path.path)?;
        let components: Vec<&str> = path::split(path.path).collect();
        let Some(last_name) = components.iter().rposition(|c| path::is_name(c)) else {
            return Ok(());
        };
        let start_ino = self.next_ino;
        let mut created: Vec<Created> = Vec::new();
        let result = self.mkdir_walk(path, &components, last_name, mode, now, &mut created);
        if result.is_err() {
            while let Some(record) = created.pop() {
                self.undo_make_dir(&record);
            }
            self.next_ino = start_ino;
        }
        result
    }

    fn mkdir_walk(
        &mut self,
        path: VPath<'_>,
        components: &[&str],
        last_name: usize,
        mode: u32,
        now: Now,
        created: &mut Vec<Created>,
    ) -> Result<(), FsError> {
        let mut hops = 0;
        let mut ancestors = path::start(self, path, &mut hops)?;
        for (index, &component) in components.iter().enumerate() {
            if !path::is_name(component) {
                path::enter(self, &mut ancestors, &mut hops, component)?;
                continue;
            }
            if component.len() > path::NAME_MAX {
                return Err(Errno::ENAMETOOLONG.into());
            }
            let parent = ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
            if self.lookup(&parent, component).is_none() {
                let record = self.make_dir_in(parent, component, mode, now)?;
                ancestors.push((component.to_owned(), record.ino));
                created.push(record);
            } else if let Err(error) = path::enter(self, &mut ancestors, &mut hops, component) {
                return Err(if index == last_name { Errno::EEXIST.into() } else { error });
            }
        }
        Ok(())
    }

    /// Removes a non-directory entry (`EISDIR` for a directory; a symlink itself is removed).
    pub fn remove_file<'p>(&mut self, path: impl Into<VPath<'p>>, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.remove_file_inner(path, now).map_err(|e| e.at("unlink", path.path))
    }

    fn remove_file_inner(&mut self, path: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Parent)?;
        let Some(ino) = resolved.node else {
            return Err(Errno::ENOENT.into());
        };
        let Some(name) = resolved.name else {
            return Err(Errno::EISDIR.into());
        };
        if self.inode(ino)?.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        if resolved.trailing_slash {
            return Err(Errno::ENOTDIR.into());
        }
        let parent = resolved.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
        self.dir_entries_mut(parent)?.remove(&name);
        self.inode_mut(parent)?.touch_mc(now);
        self.drop_link(ino, now)
    }

    /// Removes a directory: empty unless `recursive` (then with everything in it, like `rm -r`).
    /// `ENOTDIR` for anything else, a symlink to a directory included; `EBUSY` for the root.
    pub fn remove_dir<'p>(&mut self, path: impl Into<VPath<'p>>, recursive: bool, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.remove_dir_inner(path, recursive, now).map_err(|e| e.at("rmdir", path.path))
    }

    fn remove_dir_inner(&mut self, path: VPath<'_>, recursive: bool, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Parent)?;
        if resolved.is_root() {
            return Err(Errno::EBUSY.into());
        }
        let Some(ino) = resolved.node else {
            return Err(Errno::ENOENT.into());
        };
        let Some(name) = resolved.name else {
            return Err(Errno::EINVAL.into());
        };
        let inode = self.inode(ino)?;
        let Data::Dir(entries) = &inode.data else {
            return Err(Errno::ENOTDIR.into());
        };
        if !recursive && !entries.is_empty() {
            return Err(Errno::ENOTEMPTY.into());
        }
        let parent = resolved.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
        self.dir_entries_mut(parent)?.remove(&name);
        let parent_inode = self.inode_mut(parent)?;
        parent_inode.nlink = parent_inode.nlink.saturating_sub(1);
        parent_inode.touch_mc(now);
        self.free_tree(ino, now)
    }

    // -----------------------------------------------------------------------------------------
    // Names
    // -----------------------------------------------------------------------------------------

    /// POSIX `rename`: neither path's final symlink is followed. Replaces a non-directory with a
    /// non-directory and a directory with an empty directory; `EISDIR`/`ENOTDIR` on a type
    /// mismatch, `ENOTEMPTY` onto a non-empty directory, `EINVAL` moving a directory into its
    /// own subtree, `EBUSY` for the root. Two names of the same inode: nothing happens.
    pub fn rename<'p, 'q>(
        &mut self,
        from: impl Into<VPath<'p>>,
        to: impl Into<VPath<'q>>,
        now: Now,
    ) -> Result<(), FsError> {
        let (from, to) = (from.into(), to.into());
        self.rename_inner(from, to, now).map_err(|e| e.at2("rename", from.path, to.path))
    }

    fn rename_inner(&mut self, from: VPath<'_>, to: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let old = self.resolve(from, Mode::Parent)?;
        let new = self.resolve(to, Mode::Parent)?;
        let Some(x) = old.node else {
            return Err(Errno::ENOENT.into());
        };
        if old.is_root() || new.is_root() {
            return Err(Errno::EBUSY.into());
        }
        let (Some(old_name), Some(new_name)) = (old.name.clone(), new.name.clone()) else {
            return Err(Errno::EINVAL.into());
        };
        let x_is_dir = self.inode(x)?.is_dir();
        if x_is_dir && new.ancestors.iter().any(|(_, ino)| *ino == x) {
            return Err(Errno::EINVAL.into());
        }
        if new.node == Some(x) {
            return Ok(());
        }
        if !x_is_dir && (old.trailing_slash || new.trailing_slash) {
            return Err(Errno::ENOTDIR.into());
        }
        if let Some(y) = new.node {
            let y_inode = self.inode(y)?;
            match (&y_inode.data, x_is_dir) {
                (Data::Dir(_), false) => return Err(Errno::EISDIR.into()),
                (Data::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY.into()),
                (Data::File(_) | Data::Symlink(_), true) => return Err(Errno::ENOTDIR.into()),
                _ => {}
            }
        }
        let p1 = old.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
        let p2 = new.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
        // Replace the destination.
        if let Some(y) = new.node {
            self.dir_entries_mut(p2)?.remove(&new_name);
            if self.inode(y)?.is_dir() {
                self.inodes.remove(&y);
                let p2_inode = self.inode_mut(p2)?;
                p2_inode.nlink = p2_inode.nlink.saturating_sub(1);
            } else {
                self.drop_link(y, now)?;
            }
        }
        self.dir_entries_mut(p1)?.remove(&old_name);
        self.dir_entries_mut(p2)?.insert(new_name, x);
        if x_is_dir && p1 != p2 {
            let p1_inode = self.inode_mut(p1)?;
            p1_inode.nlink = p1_inode.nlink.saturating_sub(1);
            let p2_inode = self.inode_mut(p2)?;
            p2_inode.nlink = p2_inode.nlink.saturating_add(1);
        }
        self.inode_mut(p1)?.touch_mc(now);
        self.inode_mut(p2)?.touch_mc(now);
        self.inode_mut(x)?.ctime = now.wall_ms;
        Ok(())
    }

    /// Creates a symlink at `path` pointing to `target` (stored as given, resolved when
    /// followed; absolute targets resolve from this filesystem's root).
    pub fn symlink<'p>(&mut self, target: &str, path: impl Into<VPath<'p>>, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.symlink_inner(target, path, now).map_err(|e| e.at2("symlink", target, path.path))
    }

    fn symlink_inner(&mut self, target: &str, path: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        path::validate_target(target)?;
        let (parent, name) = self.creatable(path)?;
        self.check_inodes(1)?;
        let inode = Inode::new(S_IFLNK | SYMLINK_MODE, Data::Symlink(target.to_owned()), now);
        self.insert_child(parent, &name, inode, now)?;
        Ok(())
    }

    /// The parent and name of a new non-directory entry at `path`.
    fn creatable(&self, path: VPath<'_>) -> Result<(u64, String), FsError> {
        let resolved = self.resolve(path, Mode::Parent)?;
        let (Some(name), None) = (resolved.name, resolved.node) else {
            return Err(Errno::EEXIST.into());
        };
        if resolved.trailing_slash {
            return Err(Errno::ENOENT.into());
        }
        let parent = resolved.ancestors.last().map(|(_, ino)| *ino).ok_or(Errno::EIO)?;
        Ok((parent, name))
    }

    /// A hard link `new` to the inode at `existing` (a final symlink is linked itself, not
    /// followed). `EPERM` for directories.
    pub fn link<'p, 'q>(
        &mut self,
        existing: impl Into<VPath<'p>>,
        new: impl Into<VPath<'q>>,
        now: Now,
    ) -> Result<(), FsError> {
        let (existing, new) = (existing.into(), new.into());
        self.link_inner(existing, new, now).map_err(|e| e.at2("link", existing.path, new.path))
    }

    fn link_inner(&mut self, existing: VPath<'_>, new: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let ino = self.existing(existing, Mode::NoFollow)?;
        if self.inode(ino)?.is_dir() {
            return Err(Errno::EPERM.into());
        }
        let (parent, name) = self.creatable(new)?;
        let inode = self.inode_mut(ino)?;
        inode.nlink = inode.nlink.checked_add(1).ok_or(Errno::EMLINK)?;
        inode.ctime = now.wall_ms;
        self.dir_entries_mut(parent)?.insert(name, ino);
        self.inode_mut(parent)?.touch_mc(now);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Metadata
    // -----------------------------------------------------------------------------------------

    /// Sets the permission bits (`mode & 0o7777`; the file type stays), following symlinks.
    pub fn chmod<'p>(&mut self, path: impl Into<VPath<'p>>, mode: u32, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.update(path, now, |inode| inode.mode = (inode.mode & S_IFMT) | (mode & PERMISSION_BITS))
            .map_err(|e| e.at("chmod", path.path))
    }

    /// Sets owner and group, following symlinks.
    pub fn chown<'p>(&mut self, path: impl Into<VPath<'p>>, uid: u32, gid: u32, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.update(path, now, |inode| {
            inode.uid = uid;
            inode.gid = gid;
        })
        .map_err(|e| e.at("chown", path.path))
    }

    /// Sets access and modification times (ms since the epoch), following symlinks; `ctime`
    /// becomes `now`.
    pub fn utimes<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        atime_ms: u64,
        mtime_ms: u64,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        self.set_times_ns(path, atime_ms.saturating_mul(NS_PER_MS), mtime_ms.saturating_mul(NS_PER_MS), true, now)
    }

    /// Sets access and modification times to the nanosecond, of the final symlink itself
    /// unless `follow`; `ctime` becomes `now`.
    pub fn set_times_ns<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        atime_ns: u64,
        mtime_ns: u64,
        follow: bool,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        let mode = if follow { Mode::Follow } else { Mode::NoFollow };
        let result = self.writable().and_then(|()| self.existing(path, mode));
        result.and_then(|ino| self.utimes_ino(ino, atime_ns, mtime_ns, now)).map_err(|e| e.at("utime", path.path))
    }

    fn update(&mut self, path: VPath<'_>, now: Now, change: impl FnOnce(&mut Inode)) -> Result<(), FsError> {
        self.writable()?;
        let ino = self.existing(path, Mode::Follow)?;
        let inode = self.inode_mut(ino)?;
        change(inode);
        inode.ctime = now.wall_ms;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Crate-internal building blocks for snapshots and overlays
    // -----------------------------------------------------------------------------------------

    /// Every inode reachable from the root, with its canonical path, parents before children
    /// (sorted by path). A hard-linked inode appears once per name.
    pub(crate) fn walk(&self) -> Vec<(String, u64)> {
        let mut out = vec![("/".to_owned(), ROOT_INO)];
        let mut stack = vec![(String::new(), ROOT_INO)];
        while let Some((prefix, dir)) = stack.pop() {
            let Ok(entries) = self.dir_entries(dir) else { continue };
            for (name, &child) in entries {
                let path = format!("{prefix}/{name}");
                if self.inodes.get(&child).is_some_and(Inode::is_dir) {
                    stack.push((path.clone(), child));
                }
                out.push((path, child));
            }
        }
        out.sort();
        out
    }

    /// Installs `inode` as `name` in directory `parent` (replacing nothing: the name must be
    /// free), checking the inode and byte limits. Returns the new inode number.
    pub(crate) fn install(&mut self, parent: u64, name: &str, inode: Inode, now: Now) -> Result<u64, FsError> {
        if self.dir_entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST.into());
        }
        self.check_inodes(1)?;
        self.check_bytes(0, inode.content_len())?;
        let parent_before = self.inode(parent).map(|p| (p.mtime, p.ctime))?;
        let mut inode = inode;
        inode.nlink = if inode.is_dir() { 2 } else { 1 };
        let ino = self.insert_child(parent, name, inode, now)?;
        // Installing is bookkeeping (a copy-up or an import), not a change of the parent.
        let parent_inode = self.inode_mut(parent)?;
        (parent_inode.mtime, parent_inode.ctime) = parent_before;
        Ok(ino)
    }

    /// Sets permission bits and owner without touching times.
    pub(crate) fn set_owner_mode(&mut self, ino: u64, mode: u32, uid: u32, gid: u32) -> Result<(), FsError> {
        let inode = self.inode_mut(ino)?;
        inode.mode = (inode.mode & S_IFMT) | (mode & PERMISSION_BITS);
        inode.uid = uid;
        inode.gid = gid;
        Ok(())
    }

    /// Sets a directory's mtime and ctime to `now` (its listing changed from outside).
    pub(crate) fn touch(&mut self, ino: u64, now: Now) -> Result<(), FsError> {
        self.inode_mut(ino)?.touch_mc(now);
        Ok(())
    }

    pub(crate) fn dir_names(&self, ino: u64) -> Result<Vec<String>, FsError> {
        Ok(self.dir_entries(ino)?.keys().cloned().collect())
    }

    pub(crate) fn dir_len(&self, ino: u64) -> Result<usize, FsError> {
        Ok(self.dir_entries(ino)?.len())
    }
}

impl Inode {
    /// A fresh inode of the same kind and content with this one's metadata.
    pub(crate) fn copy_for_install(&self) -> Inode {
        let data = match &self.data {
            Data::Dir(_) => Data::Dir(BTreeMap::new()),
            other => other.clone(),
        };
        Inode { data, ..self.clone_meta() }
    }

    fn clone_meta(&self) -> Inode {
        Inode {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            nlink: 1,
            atime: self.atime,
            mtime: self.mtime,
            atime_nsec: self.atime_nsec,
            mtime_nsec: self.mtime_nsec,
            ctime: self.ctime,
            birthtime: self.birthtime,
            data: Data::Dir(BTreeMap::new()),
        }
    }
}
