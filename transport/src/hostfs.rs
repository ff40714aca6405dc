//! [`OsHostFs`]: the kernel's [`HostFs`] on the real OS, each `host_dir` mount confined to its
//! directory by a handle, not by path strings.
//!
//! # The model
//!
//! When a mount opens, its directory is opened once ([`cap_std::fs::Dir`]); that handle is the
//! mount's root for as long as the mount lives. Every operation then resolves its relative path
//! *beneath that handle*: on Linux with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so
//! the kernel itself refuses any `..`, absolute symlink or chain of symlinks that would climb
//! above the handle, at the moment of the lookup (elsewhere cap-std walks the path one
//! component at a time, each `openat` relative to the directory opened before). There is no
//! check-then-use on path strings left: the check *is* the lookup.
//!
//! On top of that, each operation keeps the [`HostDir`] contract:
//!
//! - **normalised paths**: an empty, `.` or `..` component, or a NUL, is refused with `EACCES`
//!   before anything is looked up (the kernel never sends one);
//! - **no blocking**: anything that opens an entry first `lstat`s/`stat`s it beneath the root,
//!   opens it with `O_NONBLOCK | O_NOCTTY` (and `O_NOFOLLOW` where the operation does not
//!   follow), then `fstat`s what it opened: FIFOs, sockets and devices are refused with `EACCES`
//!   ("not a regular file or directory") at either check, so one swapped in between is opened
//!   without blocking and closed unused;
//! - **no privilege**: every mode handed to the host is `& HOST_MODE_MASK`; `chown` is `EPERM`
//!   without asking the OS;
//! - **no planted links**: a new symlink's target is checked with
//!   [`symlink_target_depth`] against the *real* depth of the directory it is created in: that
//!   directory is found by canonicalising beneath the root and then opened one real directory at
//!   a time (`O_NOFOLLOW`), and the link is created in that opened directory. A rename or hard
//!   link of a symlink re-checks its target against the destination's real depth; a directory
//!   moved to a shallower depth has its subtree scanned (at most [`MAX_SCANNED_ENTRIES`]) for a
//!   link that would then climb out. Refusals are `EXDEV`, so `mv` falls back to copying, and a
//!   copy's links are checked one by one.
//!
//! Creating a symlink, renaming and hard-linking hold an exclusive `flock` on the root
//! directory, so two sidecars (or two mounts) sharing a directory cannot interleave a depth
//! check with a move that changes that depth.
//!
//! # What a racing host process can and cannot do
//!
//! A host process may change the directory at any moment (swap a directory for a symlink,
//! rename, replace files). It still cannot make an operation of this sidecar reach anything
//! outside the root: every lookup starts from the root handle and the OS refuses to climb above
//! it, whatever the tree looks like at that instant. It cannot make an operation block on a
//! FIFO or open a device for content (the `fstat` after a non-blocking open catches a swap).
//! What it can do is what it could do without the sidecar: move a directory that an operation
//! is working in to somewhere outside the root (the operation then finishes in that directory,
//! as any program holding it open would), plant its own escaping symlinks (the sidecar never
//! follows them out; a guest may list, `lstat`, `readlink` and remove them), or hold the `flock`
//! (symlink, rename and link then fail with `EBUSY` after [`LINK_LOCK_WAIT`]).

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{
    Dir, DirBuilder, DirBuilderExt, FileType, FileTypeExt, Metadata, MetadataExt, OpenOptions, OpenOptionsExt,
    Permissions, PermissionsExt,
};
use kernel::host::fs::{
    symlink_target_depth, HostDir, HostFileKind, HostFs, HostFsError, HostResult, HostStat, HOST_MODE_MASK,
};
use kernel::vfs::Errno;
use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Entries scanned, at most, when a directory moves to a shallower depth (to find a symlink
/// that would then climb above the root). Bounds the work one rename can cost; a bigger tree
/// is refused with `EXDEV`, and `mv` copies it instead (each copied link checked on creation).
pub const MAX_SCANNED_ENTRIES: usize = 10_000;

/// How long symlink, rename and link wait for the root's lock before giving up with `EBUSY`:
/// other sidecars hold it for one bounded operation (well under a millisecond), so only a host
/// process that keeps it makes a guest wait that long. The wait holds the sidecar's whole event
/// loop, so it is kept far below the worst stall one guest may cause others (50 ms).
pub const LINK_LOCK_WAIT: Duration = Duration::from_millis(10);

/// Pause between two attempts at the root's lock: short against a lock held for a few
/// milliseconds, long enough not to spin a core.
const LINK_LOCK_RETRY: Duration = Duration::from_millis(1);

/// Flags for every open of an entry's content: never wait for a FIFO's other end or a device,
/// never acquire a controlling terminal.
const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;

/// Opens host directories for `host_dir` mounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsHostFs;

impl HostFs for OsHostFs {
    fn open_dir(&self, host_path: &str) -> HostResult<std::sync::Arc<dyn HostDir>> {
        Ok(std::sync::Arc::new(OsHostDir::open(Path::new(host_path))?))
    }
}

/// One host directory, confined by a handle (see the module docs).
#[derive(Debug)]
pub struct OsHostDir {
    /// Where the directory was when the mount opened (for messages; never used to reach it).
    root: PathBuf,
    dir: Dir,
    /// [`MAX_SCANNED_ENTRIES`], lowered by tests (creating ten thousand files is slow).
    max_scanned_entries: usize,
}

/// An OS error as an errno.
pub fn errno_of(error: &io::Error) -> Errno {
    match error.raw_os_error() {
        Some(libc::ENOENT) => Errno::ENOENT,
        Some(libc::EACCES) => Errno::EACCES,
        Some(libc::EPERM) => Errno::EPERM,
        Some(libc::EEXIST) => Errno::EEXIST,
        Some(libc::ENOTDIR) => Errno::ENOTDIR,
        Some(libc::EISDIR) => Errno::EISDIR,
        Some(libc::EINVAL) => Errno::EINVAL,
        Some(libc::ENOSPC) => Errno::ENOSPC,
        Some(libc::EROFS) => Errno::EROFS,
        Some(libc::ENOTEMPTY) => Errno::ENOTEMPTY,
        Some(libc::ELOOP) => Errno::ELOOP,
        Some(libc::ENAMETOOLONG) => Errno::ENAMETOOLONG,
        Some(libc::EXDEV) => Errno::EXDEV,
        Some(libc::EBUSY) => Errno::EBUSY,
        Some(libc::EFBIG) => Errno::EFBIG,
        Some(libc::EMLINK) => Errno::EMLINK,
        Some(libc::EBADF) => Errno::EBADF,
        Some(libc::ENOSYS) => Errno::ENOSYS,
        // A FIFO opened for writing without a reader, or a device without its hardware.
        Some(libc::ENXIO | libc::ENODEV) => Errno::EACCES,
        _ => match error.kind() {
            io::ErrorKind::NotFound => Errno::ENOENT,
            // cap-std's "a path led outside of the filesystem".
            io::ErrorKind::PermissionDenied => Errno::EACCES,
            io::ErrorKind::AlreadyExists => Errno::EEXIST,
            _ => Errno::EIO,
        },
    }
}

fn io_error(error: io::Error) -> HostFsError {
    HostFsError::with_detail(errno_of(&error), error.to_string())
}

fn escape() -> HostFsError {
    HostFsError::with_detail(Errno::EACCES, "path leaves the host directory")
}

fn not_regular() -> HostFsError {
    HostFsError::with_detail(Errno::EACCES, "not a regular file or directory")
}

fn through_symlink() -> HostFsError {
    HostFsError::with_detail(Errno::EACCES, "refusing to write through a symlink")
}

fn ms(secs: i64, nanos: i64) -> u64 {
    let secs = u64::try_from(secs).unwrap_or(0);
    let millis = u64::try_from(nanos).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1000).saturating_add(millis)
}

fn kind_of(file_type: FileType) -> HostFileKind {
    if file_type.is_symlink() {
        HostFileKind::Symlink
    } else if file_type.is_dir() {
        HostFileKind::Directory
    } else if file_type.is_file() {
        HostFileKind::File
    } else if file_type.is_fifo() {
        HostFileKind::Fifo
    } else if file_type.is_socket() {
        HostFileKind::Socket
    } else if file_type.is_block_device() {
        HostFileKind::BlockDevice
    } else {
        // Character devices, and any kind a future OS adds: special either way, never opened.
        HostFileKind::CharDevice
    }
}

fn host_stat(meta: &Metadata) -> HostStat {
    let birthtime_ms = meta
        .created()
        .ok()
        .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    HostStat {
        kind: kind_of(meta.file_type()),
        mode: meta.mode() & 0o7777,
        size: meta.size(),
        ino: meta.ino(),
        dev: meta.dev(),
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        atime_ms: ms(meta.atime(), meta.atime_nsec()),
        mtime_ms: ms(meta.mtime(), meta.mtime_nsec()),
        ctime_ms: ms(meta.ctime(), meta.ctime_nsec()),
        birthtime_ms,
    }
}

/// What may be opened for content: regular files, and directories where `allow_dir` (metadata
/// operations). A symlink here was not followed, so the operation refuses to go through it.
fn openable(meta: &Metadata, allow_dir: bool) -> HostResult<()> {
    match kind_of(meta.file_type()) {
        HostFileKind::File => Ok(()),
        HostFileKind::Directory if allow_dir => Ok(()),
        HostFileKind::Directory => Err(Errno::EISDIR.into()),
        HostFileKind::Symlink => Err(through_symlink()),
        _ => Err(not_regular()),
    }
}

/// The components of a normalised relative path (`""` is the root itself).
fn components(rel: &str) -> HostResult<Vec<&str>> {
    if rel.is_empty() {
        return Ok(Vec::new());
    }
    let components: Vec<&str> = rel.split('/').collect();
    if components.iter().any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0')) {
        return Err(escape());
    }
    Ok(components)
}

/// A checked relative path as cap-std takes it (`.` for the root).
fn checked(rel: &str) -> HostResult<&Path> {
    components(rel)?;
    Ok(if rel.is_empty() { Path::new(".") } else { Path::new(rel) })
}

/// A checked path's parent components and final name (`None` for the root itself).
fn split(rel: &str) -> HostResult<Option<(Vec<&str>, &str)>> {
    let mut parts = components(rel)?;
    Ok(parts.pop().map(|name| (parts, name)))
}

fn utf8(path: PathBuf, what: &str) -> HostResult<String> {
    path.into_os_string()
        .into_string()
        .map_err(|_| HostFsError::with_detail(Errno::EIO, format!("{what} is not UTF-8")))
}

/// Releases the root's lock when dropped (closing the descriptor releases its `flock`).
#[derive(Debug)]
struct LinkLock {
    _held: File,
}

impl OsHostDir {
    /// Opens the directory `path` names (following the host's links on the way: the mount's
    /// config is the host's word); it must be a directory.
    pub fn open(path: &Path) -> HostResult<Self> {
        let root = fs::canonicalize(path).map_err(io_error)?;
        let dir = Dir::open_ambient_dir(&root, ambient_authority()).map_err(|error| match errno_of(&error) {
            Errno::ENOTDIR => {
                HostFsError::with_detail(Errno::ENOTDIR, format!("{} is not a directory", root.display()))
            }
            _ => io_error(error),
        })?;
        Ok(Self { root, dir, max_scanned_entries: MAX_SCANNED_ENTRIES })
    }

    /// Where the directory was when it was opened.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn metadata(&self, path: &Path, follow: bool) -> HostResult<Metadata> {
        let meta = if follow { self.dir.metadata(path) } else { self.dir.symlink_metadata(path) };
        meta.map_err(io_error)
    }

    /// Opens an entry for content: checked before (no FIFO, socket or device is ever opened
    /// knowingly), opened without blocking, checked again on what was really opened.
    fn open_checked(&self, rel: &str, follow: bool, allow_dir: bool, options: &mut OpenOptions) -> HostResult<File> {
        let path = checked(rel)?;
        openable(&self.metadata(path, follow)?, allow_dir)?;
        self.open_beneath(path, follow, allow_dir, options)
    }

    /// The open and the check after it (for callers that did their own check before).
    fn open_beneath(&self, path: &Path, follow: bool, allow_dir: bool, options: &mut OpenOptions) -> HostResult<File> {
        let file = self.open_unchecked(path, follow, options).map_err(|error| match error.raw_os_error() {
            // `O_NOFOLLOW` met a symlink swapped in since the check.
            Some(libc::ELOOP) if !follow => through_symlink(),
            _ => io_error(error),
        })?;
        Self::checked_file(file, allow_dir)
    }

    /// The open alone, never blocking; its result must go through [`Self::checked_file`].
    fn open_unchecked(&self, path: &Path, follow: bool, options: &mut OpenOptions) -> io::Result<cap_std::fs::File> {
        let follow = if follow { FollowSymlinks::Yes } else { FollowSymlinks::No };
        self.dir.open_with(path, options.custom_flags(OPEN_FLAGS).follow(follow))
    }

    /// What was really opened (`fstat`), in case it changed since it was checked.
    fn checked_file(file: cap_std::fs::File, allow_dir: bool) -> HostResult<File> {
        openable(&file.metadata().map_err(io_error)?, allow_dir)?;
        Ok(file.into_std())
    }

    /// The exclusive lock on the root that symlink, rename and link hold (see the module docs).
    /// A fresh descriptor each time: `flock` excludes other descriptors, even in this process.
    fn lock_links(&self) -> HostResult<LinkLock> {
        let file = self.dir.open_with(".", OpenOptions::new().read(true)).map_err(io_error)?.into_std();
        let deadline = Instant::now() + LINK_LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(LinkLock { _held: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(LINK_LOCK_RETRY),
                Err(TryLockError::WouldBlock) => {
                    return Err(HostFsError::with_detail(Errno::EBUSY, "the host directory stays locked"))
                }
                Err(TryLockError::Error(error)) => return Err(io_error(error)),
            }
        }
    }

    /// The directory `parent` (components below the root) really is, opened through real
    /// directories only, and its depth below the root. Held under the links lock, so no other
    /// sidecar moves it meanwhile.
    fn real_dir(&self, parent: &[&str]) -> HostResult<(Dir, usize)> {
        let mut dir = self.dir.try_clone().map_err(io_error)?;
        if parent.is_empty() {
            return Ok((dir, 0));
        }
        let canonical = self.dir.canonicalize(parent.join("/")).map_err(io_error)?;
        let mut depth = 0usize;
        for component in canonical.components() {
            match component {
                Component::CurDir => {}
                Component::Normal(name) => {
                    dir = dir.open_dir_nofollow(name).map_err(io_error)?;
                    depth = depth.saturating_add(1);
                }
                _ => return Err(escape()),
            }
        }
        Ok((dir, depth))
    }

    /// Refuses (`EXDEV`) to put the symlink `name` of `dir` in a directory `link_dir_depth`
    /// below the root if its target would then climb above the root.
    fn link_may_sit_at(dir: &Dir, name: &Path, link_dir_depth: usize) -> HostResult<()> {
        let refuse = |why: String| HostFsError::with_detail(Errno::EXDEV, why);
        let target = dir.read_link_contents(name).map_err(io_error)?;
        let target =
            target.to_str().ok_or_else(|| refuse(format!("symlink {} has a non-UTF-8 target", name.display())))?;
        symlink_target_depth(target, link_dir_depth).map(drop).map_err(|error| refuse(format!("{error} once moved")))
    }

    /// Refuses (`EXDEV`) to move the directory `name` of `parent` to `new_depth` (its own depth
    /// once moved) if a symlink inside would then climb above the root, or if the tree is too
    /// big to tell (more than `max_entries`).
    fn tree_may_sit_at(parent: &Dir, name: &Path, new_depth: usize, max_entries: usize) -> HostResult<()> {
        let unknown = |why: String| HostFsError::with_detail(Errno::EXDEV, why);
        let top =
            parent.open_dir_nofollow(name).map_err(|e| unknown(format!("cannot scan {}: {e}", name.display())))?;
        let entries = top.entries().map_err(|e| unknown(format!("cannot scan {}: {e}", name.display())))?;
        // One open directory per level being scanned (depth-first), never one per subdirectory.
        let mut stack = vec![(top, entries, new_depth)];
        let mut budget = max_entries;
        while let Some((dir, entries, depth)) = stack.last_mut() {
            let Some(entry) = entries.next() else {
                stack.pop();
                continue;
            };
            budget =
                budget.checked_sub(1).ok_or_else(|| unknown(format!("more than {max_entries} entries to check")))?;
            let entry = entry.map_err(|e| unknown(format!("cannot scan: {e}")))?;
            let file_type = entry.file_type().map_err(|e| unknown(format!("cannot scan: {e}")))?;
            let entry_name = PathBuf::from(entry.file_name());
            if file_type.is_symlink() {
                Self::link_may_sit_at(dir, &entry_name, *depth).map_err(|e| unknown(e.to_string()))?;
            } else if file_type.is_dir() {
                let sub = dir.open_dir_nofollow(&entry_name).map_err(|e| unknown(format!("cannot scan: {e}")))?;
                let sub_entries = sub.entries().map_err(|e| unknown(format!("cannot scan: {e}")))?;
                let sub_depth = depth.saturating_add(1);
                stack.push((sub, sub_entries, sub_depth));
            }
        }
        Ok(())
    }
}

impl HostDir for OsHostDir {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        let file = self.open_checked(path, true, false, OpenOptions::new().read(true))?;
        if file.metadata().map_err(io_error)?.len() > max_bytes {
            return Err(Errno::EFBIG.into());
        }
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io_error)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_bytes {
            return Err(Errno::EFBIG.into());
        }
        Ok(bytes)
    }

    fn write_file(&self, path: &str, data: &[u8], mode: u32) -> HostResult<()> {
        let checked_path = checked(path)?;
        if path.is_empty() {
            return Err(Errno::EISDIR.into());
        }
        match self.dir.symlink_metadata(checked_path) {
            Ok(meta) => openable(&meta, false)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(error)),
        }
        // Not `O_TRUNC`: what was opened is checked before anything is changed.
        let mut options = OpenOptions::new();
        options.write(true).create(true).mode(mode & HOST_MODE_MASK);
        let mut file = self.open_beneath(checked_path, false, false, &mut options)?;
        file.set_len(0).map_err(io_error)?;
        file.write_all(data).map_err(io_error)
    }

    fn stat(&self, path: &str) -> HostResult<HostStat> {
        self.metadata(checked(path)?, true).map(|meta| host_stat(&meta))
    }

    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        self.metadata(checked(path)?, false).map(|meta| host_stat(&meta))
    }

    fn read_dir(&self, path: &str, max_entries: u64) -> HostResult<Vec<String>> {
        let mut names = Vec::new();
        for entry in self.dir.read_dir(checked(path)?).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if u64::try_from(names.len()).unwrap_or(u64::MAX) >= max_entries {
                return Err(Errno::EFBIG.into());
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn mkdir(&self, path: &str, recursive: bool, mode: u32) -> HostResult<()> {
        let mut builder = DirBuilder::new();
        builder.mode(mode & HOST_MODE_MASK);
        let checked_path = checked(path)?;
        if !recursive {
            return self.dir.create_dir_with(checked_path, &builder).map_err(io_error);
        }
        let components = components(path)?;
        for end in 1..=components.len() {
            let prefix = components.get(..end).unwrap_or_default().join("/");
            match self.dir.metadata(&prefix) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => return Err(Errno::EEXIST.into()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    if self.dir.symlink_metadata(&prefix).is_ok() {
                        // A dangling symlink is in the way.
                        return Err(Errno::EEXIST.into());
                    }
                    match self.dir.create_dir_with(&prefix, &builder) {
                        Ok(()) => {}
                        // Created meanwhile by someone else: fine if it is a directory.
                        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && self.dir.is_dir(&prefix) => {}
                        Err(error) => return Err(io_error(error)),
                    }
                }
                Err(error) => return Err(io_error(error)),
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &str) -> HostResult<()> {
        let checked_path = checked(path)?;
        if self.metadata(checked_path, false)?.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        self.dir.remove_file(checked_path).map_err(io_error)
    }

    fn remove_dir(&self, path: &str, recursive: bool) -> HostResult<()> {
        let checked_path = checked(path)?;
        if path.is_empty() {
            return Err(Errno::EBUSY.into());
        }
        if !self.metadata(checked_path, false)?.is_dir() {
            return Err(Errno::ENOTDIR.into());
        }
        // Both work on the entries themselves beneath the handle: symlinks inside the tree are
        // removed, never followed.
        if recursive {
            self.dir.remove_dir_all(checked_path).map_err(io_error)
        } else {
            self.dir.remove_dir(checked_path).map_err(io_error)
        }
    }

    fn rename(&self, from: &str, to: &str) -> HostResult<()> {
        let (Some((from_parent, from_name)), Some((to_parent, to_name))) = (split(from)?, split(to)?) else {
            return Err(Errno::EBUSY.into());
        };
        let _lock = self.lock_links()?;
        let (from_dir, from_depth) = self.real_dir(&from_parent)?;
        let (to_dir, to_depth) = self.real_dir(&to_parent)?;
        let meta = from_dir.symlink_metadata(from_name).map_err(io_error)?;
        if meta.file_type().is_symlink() {
            Self::link_may_sit_at(&from_dir, Path::new(from_name), to_depth)?;
        } else if meta.is_dir() && to_depth < from_depth {
            let new_depth = to_depth.saturating_add(1);
            Self::tree_may_sit_at(&from_dir, Path::new(from_name), new_depth, self.max_scanned_entries)?;
        }
        from_dir.rename(from_name, &to_dir, to_name).map_err(io_error)
    }

    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        let mut file = self.open_checked(path, true, false, OpenOptions::new().read(true))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        let mut bytes = Vec::new();
        file.take(len).read_to_end(&mut bytes).map_err(io_error)?;
        Ok(bytes)
    }

    fn pwrite(&self, path: &str, offset: u64, data: &[u8]) -> HostResult<u64> {
        let len = u64::try_from(data.len()).map_err(|_| HostFsError::new(Errno::EFBIG))?;
        if offset.checked_add(len).is_none_or(|end| i64::try_from(end).is_err()) {
            return Err(Errno::EFBIG.into());
        }
        let file = self.open_checked(path, false, false, OpenOptions::new().write(true))?;
        file.write_all_at(data, offset).map_err(io_error)?;
        Ok(len)
    }

    fn truncate(&self, path: &str, len: u64) -> HostResult<()> {
        let file = self.open_checked(path, true, false, OpenOptions::new().write(true))?;
        file.set_len(len).map_err(io_error)
    }

    fn realpath(&self, path: &str) -> HostResult<String> {
        let real = self.dir.canonicalize(checked(path)?).map_err(io_error)?;
        if real == Path::new(".") {
            return Ok(String::new());
        }
        utf8(real, "path")
    }

    fn symlink(&self, target: &str, path: &str) -> HostResult<()> {
        let Some((parent, name)) = split(path)? else {
            return Err(Errno::EEXIST.into());
        };
        // Absolute and malformed targets need no lookup to be refused.
        symlink_target_depth(target, usize::MAX)?;
        let _lock = self.lock_links()?;
        let (dir, depth) = self.real_dir(&parent)?;
        symlink_target_depth(target, depth)?;
        dir.symlink(target, name).map_err(io_error)
    }

    fn read_link(&self, path: &str) -> HostResult<String> {
        utf8(self.dir.read_link_contents(checked(path)?).map_err(io_error)?, "target")
    }

    fn link(&self, existing: &str, new: &str) -> HostResult<()> {
        let Some((existing_parent, existing_name)) = split(existing)? else {
            return Err(Errno::EPERM.into());
        };
        let Some((new_parent, new_name)) = split(new)? else {
            return Err(Errno::EEXIST.into());
        };
        let _lock = self.lock_links()?;
        let (existing_dir, _) = self.real_dir(&existing_parent)?;
        let (new_dir, new_depth) = self.real_dir(&new_parent)?;
        let meta = existing_dir.symlink_metadata(existing_name).map_err(io_error)?;
        if meta.is_dir() {
            return Err(Errno::EPERM.into());
        }
        if meta.file_type().is_symlink() {
            Self::link_may_sit_at(&existing_dir, Path::new(existing_name), new_depth)?;
        }
        existing_dir.hard_link(existing_name, &new_dir, new_name).map_err(io_error)
    }

    fn chmod(&self, path: &str, mode: u32) -> HostResult<()> {
        let checked_path = checked(path)?;
        openable(&self.metadata(checked_path, true)?, true)?;
        let mode = mode & HOST_MODE_MASK;
        // `fchmod` on what was opened (and checked) without blocking; an entry that cannot be
        // opened for reading (mode 000, write-only) goes through cap-std's `O_PATH` route, which
        // never opens content.
        match self.open_unchecked(checked_path, true, OpenOptions::new().read(true)) {
            Ok(file) => Self::checked_file(file, true)?
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(io_error),
            Err(error) if error.raw_os_error() == Some(libc::EACCES) => {
                self.dir.set_permissions(checked_path, Permissions::from_mode(mode)).map_err(io_error)
            }
            Err(error) => Err(io_error(error)),
        }
    }

    fn chown(&self, _path: &str, _uid: u32, _gid: u32) -> HostResult<()> {
        Err(HostFsError::with_detail(Errno::EPERM, "host files are never given away"))
    }

    fn utimes(&self, path: &str, atime_ms: u64, mtime_ms: u64) -> HostResult<()> {
        let file = self.open_checked(path, true, true, OpenOptions::new().read(true))?;
        let times = fs::FileTimes::new()
            .set_accessed(UNIX_EPOCH + Duration::from_millis(atime_ms))
            .set_modified(UNIX_EPOCH + Duration::from_millis(mtime_ms));
        file.set_times(times).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::os::unix::fs::{symlink, FileTypeExt as _, MetadataExt as _, PermissionsExt as _};

    /// A fresh directory under the OS temp dir: `<tmp>/<unique>/root` (the mount) with a
    /// sibling `<tmp>/<unique>/sibling` holding a secret.
    struct Scratch {
        base: PathBuf,
    }

    impl Scratch {
        fn new(name: &str) -> Self {
            let base = std::env::temp_dir().join(format!("sidecar-hostfs-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            fs::create_dir_all(base.join("root/sub")).unwrap();
            fs::create_dir_all(base.join("sibling")).unwrap();
            fs::write(base.join("sibling/secret"), "secret").unwrap();
            fs::write(base.join("root/sub/file.txt"), "inside").unwrap();
            Self { base }
        }

        fn root(&self) -> PathBuf {
            self.base.join("root")
        }

        fn dir(&self) -> OsHostDir {
            OsHostDir::open(&self.root()).unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    fn errno<T: std::fmt::Debug>(result: HostResult<T>) -> Errno {
        result.expect_err("must be refused").errno
    }

    #[test]
    fn normal_reads_and_writes_work() {
        let scratch = Scratch::new("normal");
        let dir = scratch.dir();
        assert_eq!(dir.read_file("sub/file.txt", 1024).unwrap(), b"inside");
        dir.write_file("sub/new.txt", b"hello", 0o640).unwrap();
        assert_eq!(fs::read(scratch.root().join("sub/new.txt")).unwrap(), b"hello");
        assert_eq!(dir.stat("sub/new.txt").unwrap().size, 5);
        assert_eq!(dir.stat("sub/new.txt").unwrap().mode, 0o640);
        let mut names = dir.read_dir("sub", 100).unwrap();
        names.sort();
        assert_eq!(names, ["file.txt", "new.txt"]);
        dir.mkdir("a/b/c", true, 0o755).unwrap();
        assert!(scratch.root().join("a/b/c").is_dir());
        dir.rename("sub/new.txt", "a/moved.txt").unwrap();
        assert_eq!(dir.pread("a/moved.txt", 1, 3).unwrap(), b"ell");
        dir.truncate("a/moved.txt", 2).unwrap();
        assert_eq!(dir.read_file("a/moved.txt", 10).unwrap(), b"he");
        assert_eq!(errno(dir.read_file("a/moved.txt", 1)), Errno::EFBIG);
        dir.remove_file("a/moved.txt").unwrap();
        assert_eq!(errno(dir.remove_dir("a", false)), Errno::ENOTEMPTY);
        dir.remove_dir("a", true).unwrap();
        assert!(!scratch.root().join("a").exists());
        // Symlinks that stay inside work, for reads and as directories on the way.
        dir.symlink("sub", "inner-link").unwrap();
        assert_eq!(dir.read_file("inner-link/file.txt", 100).unwrap(), b"inside");
        assert_eq!(dir.realpath("inner-link/file.txt").unwrap(), "sub/file.txt");
        assert_eq!(dir.read_link("inner-link").unwrap(), "sub");
        assert_eq!(dir.lstat("inner-link").unwrap().kind, HostFileKind::Symlink);
        assert_eq!(errno(dir.read_file("missing", 10)), Errno::ENOENT);
    }

    #[test]
    fn dot_dot_is_refused() {
        let scratch = Scratch::new("dotdot");
        let dir = scratch.dir();
        for path in ["../../etc/passwd", "../sibling/secret", "sub/../../sibling/secret", "./sub/file.txt", "sub//x"] {
            assert_eq!(errno(dir.read_file(path, 1 << 20)), Errno::EACCES, "{path}");
            assert_eq!(errno(dir.write_file(path, b"x", 0o644)), Errno::EACCES, "{path}");
            assert_eq!(errno(dir.stat(path)), Errno::EACCES, "{path}");
        }
        assert_eq!(fs::read_to_string(scratch.base.join("sibling/secret")).unwrap(), "secret");
    }

    #[test]
    fn absolute_symlink_to_etc_is_refused() {
        let scratch = Scratch::new("abs");
        symlink("/etc", scratch.root().join("etc")).unwrap();
        let dir = scratch.dir();
        assert_eq!(errno(dir.read_file("etc/passwd", 1 << 20)), Errno::EACCES);
        assert_eq!(errno(dir.stat("etc")), Errno::EACCES);
        assert_eq!(errno(dir.read_dir("etc", 100)), Errno::EACCES);
        assert_eq!(errno(dir.write_file("etc/evil", b"x", 0o644)), Errno::EACCES);
        assert_eq!(errno(dir.mkdir("etc/evil", false, 0o755)), Errno::EACCES);
        assert_eq!(errno(dir.realpath("etc")), Errno::EACCES);
        // The link itself may be inspected and removed: it is inside.
        assert_eq!(dir.read_link("etc").unwrap(), "/etc");
        dir.remove_file("etc").unwrap();
    }

    #[test]
    fn symlink_chains_leaving_the_root_are_refused() {
        let scratch = Scratch::new("chain");
        let root = scratch.root();
        // a -> b -> sub/c -> ../../sibling (each hop relative, the last one leaves the root).
        symlink("b", root.join("a")).unwrap();
        symlink("sub/c", root.join("b")).unwrap();
        symlink("../../sibling", root.join("sub/c")).unwrap();
        let dir = scratch.dir();
        assert_eq!(errno(dir.read_file("a/secret", 1 << 20)), Errno::EACCES);
        assert_eq!(errno(dir.read_dir("a", 100)), Errno::EACCES);
        assert_eq!(errno(dir.stat("a")), Errno::EACCES);
        assert_eq!(errno(dir.chmod("a/secret", 0o777)), Errno::EACCES);
        assert_eq!(errno(dir.truncate("a/secret", 0)), Errno::EACCES);
        assert_eq!(errno(dir.rename("a/secret", "stolen")), Errno::EACCES);
        assert_eq!(errno(dir.link("a/secret", "stolen")), Errno::EACCES);
        assert_eq!(errno(dir.remove_file("a/secret")), Errno::EACCES);
        assert_eq!(fs::read_to_string(scratch.base.join("sibling/secret")).unwrap(), "secret");
        assert_eq!(fs::metadata(scratch.base.join("sibling/secret")).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn symlink_to_a_sibling_dir_is_refused() {
        let scratch = Scratch::new("sibling");
        symlink(scratch.base.join("sibling"), scratch.root().join("sib")).unwrap();
        symlink("../sibling/secret", scratch.root().join("sub-secret")).unwrap();
        let dir = scratch.dir();
        assert_eq!(errno(dir.read_file("sib/secret", 1 << 20)), Errno::EACCES);
        assert_eq!(errno(dir.read_file("sub-secret", 1 << 20)), Errno::EACCES);
        assert_eq!(errno(dir.pread("sub-secret", 0, 10)), Errno::EACCES);
        assert_eq!(errno(dir.utimes("sub-secret", 0, 0)), Errno::EACCES);
        // Writing through a final symlink is refused, even one that would stay inside.
        assert_eq!(errno(dir.write_file("sub-secret", b"pwned", 0o644)), Errno::EACCES);
        symlink("sub/file.txt", scratch.root().join("inside-link")).unwrap();
        assert_eq!(errno(dir.write_file("inside-link", b"x", 0o644)), Errno::EACCES);
        assert_eq!(fs::read_to_string(scratch.base.join("sibling/secret")).unwrap(), "secret");
        assert_eq!(fs::read_to_string(scratch.root().join("sub/file.txt")).unwrap(), "inside");
    }

    #[test]
    fn new_symlinks_cannot_point_outside() {
        let scratch = Scratch::new("newlinks");
        let dir = scratch.dir();
        assert_eq!(errno(dir.symlink("/etc/passwd", "abs")), Errno::EACCES);
        assert_eq!(errno(dir.symlink("../sibling", "up")), Errno::EACCES);
        assert_eq!(errno(dir.symlink("../../x", "sub/up")), Errno::EACCES);
        dir.symlink("../sub/file.txt", "sub/ok").unwrap();
        assert_eq!(dir.read_file("sub/ok", 100).unwrap(), b"inside");
    }

    #[test]
    fn opening_requires_a_directory() {
        let scratch = Scratch::new("open");
        assert_eq!(OsHostDir::open(&scratch.root().join("sub/file.txt")).unwrap_err().errno, Errno::ENOTDIR);
        assert_eq!(OsHostDir::open(&scratch.root().join("nope")).unwrap_err().errno, Errno::ENOENT);
        let via_link = scratch.base.join("link-to-root");
        symlink(scratch.root(), &via_link).unwrap();
        // The root is canonicalised once: opening through a link confines to the real dir.
        assert_eq!(OsHostDir::open(&via_link).unwrap().root(), fs::canonicalize(scratch.root()).unwrap());
    }

    /// Every symlink under `root` that the OS resolves to somewhere outside it (dangling links
    /// and links that stay inside are fine).
    fn links_escaping(root: &Path) -> Vec<PathBuf> {
        let root = fs::canonicalize(root).unwrap();
        let mut escaping = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    if fs::canonicalize(&path).is_ok_and(|real| !real.starts_with(&root)) {
                        escaping.push(path);
                    }
                } else if meta.is_dir() {
                    pending.push(path);
                }
            }
        }
        escaping
    }

    #[test]
    fn links_through_a_dot_link_are_measured_from_the_real_directory() {
        let scratch = Scratch::new("dot");
        let dir = scratch.dir();
        // `dot -> .` is harmless by itself...
        dir.symlink(".", "sub/dot").unwrap();
        dir.symlink(".", "dot").unwrap();
        // ...but `dot/../..` read from `sub` is `sub/../..`: outside.
        assert_eq!(errno(dir.symlink("dot/../..", "sub/up")), Errno::EACCES);
        // A link created through `dot/dot` really sits in the root: `..` already leaves.
        assert_eq!(errno(dir.symlink("../..", "dot/dot/up")), Errno::EACCES);
        assert_eq!(errno(dir.symlink("..", "dot/dot/up")), Errno::EACCES);
        assert_eq!(errno(dir.symlink("../../..", "sub/dot/dot/up")), Errno::EACCES);
        // The same target from a real depth of two is fine.
        dir.mkdir("a/b", true, 0o755).unwrap();
        dir.symlink("../..", "a/b/top").unwrap();
        dir.symlink("..", "sub/dot/dot/parent").unwrap();
        assert_eq!(dir.read_link("sub/parent").unwrap(), "..");
        for path in ["sub/up/sibling/secret", "dot/up/sibling/secret", "sub/up/../sibling/secret"] {
            assert!(dir.read_file(path, 100).is_err(), "{path}");
        }
        assert!(links_escaping(&scratch.root()).is_empty(), "{:?}", links_escaping(&scratch.root()));
    }

    #[test]
    fn renames_and_links_never_move_a_link_where_it_would_leave() {
        let scratch = Scratch::new("moves");
        let dir = scratch.dir();
        dir.mkdir("a/b", true, 0o755).unwrap();
        dir.symlink("../..", "a/b/top").unwrap();
        dir.symlink("../../sub/file.txt", "a/b/file").unwrap();
        // The link itself, one or two levels up: its `../..` would climb out.
        assert_eq!(errno(dir.rename("a/b/top", "top")), Errno::EXDEV);
        assert_eq!(errno(dir.rename("a/b/top", "sub/top")), Errno::EXDEV);
        assert_eq!(errno(dir.link("a/b/top", "sub/hard")), Errno::EXDEV);
        assert_eq!(errno(dir.link("a/b/top", "hard")), Errno::EXDEV);
        // The directory holding it, to a shallower place (also through a `dot -> .` link).
        assert_eq!(errno(dir.rename("a/b", "b")), Errno::EXDEV);
        dir.symlink(".", "dot").unwrap();
        dir.mkdir("c", false, 0o755).unwrap();
        dir.symlink("..", "c/up").unwrap();
        assert_eq!(errno(dir.rename("a/b", "dot/b")), Errno::EXDEV);
        assert_eq!(errno(dir.rename("c/up", "c/up/up2")), Errno::EXDEV);
        assert!(links_escaping(&scratch.root()).is_empty(), "{:?}", links_escaping(&scratch.root()));
        assert!(scratch.root().join("a/b/top").is_symlink(), "nothing moved");
        // Deeper, or as deep, is fine.
        dir.mkdir("x/y", true, 0o755).unwrap();
        dir.rename("a/b/top", "x/y/top").unwrap();
        dir.link("x/y/top", "x/y/again").unwrap();
        dir.rename("a/b", "x/y/b").unwrap();
        dir.rename("x", "sub/x").unwrap();
        assert_eq!(dir.read_link("sub/x/y/b/file").unwrap(), "../../sub/file.txt");
        dir.rename("sub/x/y/b", "sub/x/b").unwrap();
        assert!(links_escaping(&scratch.root()).is_empty(), "{:?}", links_escaping(&scratch.root()));
    }

    #[test]
    fn moving_a_huge_directory_shallower_is_exdev() {
        let scratch = Scratch::new("huge");
        let mut dir = scratch.dir();
        assert_eq!(dir.max_scanned_entries, MAX_SCANNED_ENTRIES);
        dir.max_scanned_entries = 20;
        dir.mkdir("a/big/inner", true, 0o755).unwrap();
        for i in 0..9 {
            fs::write(scratch.root().join(format!("a/big/{i}")), "").unwrap();
            fs::write(scratch.root().join(format!("a/big/inner/{i}")), "").unwrap();
        }
        // 19 entries (the subdirectory counts too), then 21: too many to check one by one,
        // refused, so `mv` falls back to copying.
        dir.rename("a/big", "big").unwrap();
        dir.rename("big", "a/big").unwrap();
        fs::write(scratch.root().join("a/big/inner/9"), "").unwrap();
        fs::write(scratch.root().join("a/big/inner/10"), "").unwrap();
        assert_eq!(errno(dir.rename("a/big", "big")), Errno::EXDEV);
        // Deeper needs no scan.
        dir.rename("a/big", "sub/big").unwrap();
    }

    /// Runs `op` on a thread; it must finish within a second (a FIFO must never stall it).
    fn promptly<T: Send + 'static>(what: &str, op: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(op());
        });
        result.recv_timeout(Duration::from_secs(1)).unwrap_or_else(|_| panic!("{what} blocked"))
    }

    #[test]
    fn fifos_are_listed_and_stated_but_never_opened() {
        let scratch = Scratch::new("fifo");
        let fifo = scratch.root().join("sub/fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        symlink("fifo", scratch.root().join("sub/fifo-link")).unwrap();
        let dir = std::sync::Arc::new(scratch.dir());
        let d = dir.clone();
        assert_eq!(promptly("stat", move || d.stat("sub/fifo-link").unwrap().kind), HostFileKind::Fifo);
        let d = dir.clone();
        assert_eq!(promptly("lstat", move || d.lstat("sub/fifo").unwrap().kind), HostFileKind::Fifo);
        let d = dir.clone();
        let mut names = promptly("read_dir", move || d.read_dir("sub", 10).unwrap());
        names.sort();
        assert_eq!(names, ["fifo", "fifo-link", "file.txt"]);
        for path in ["sub/fifo", "sub/fifo-link"] {
            type Op = Box<dyn FnOnce(&OsHostDir, &str) -> HostResult<()> + Send>;
            let ops: Vec<(&str, Op)> = vec![
                ("read_file", Box::new(|d, p| d.read_file(p, 100).map(drop))),
                ("pread", Box::new(|d, p| d.pread(p, 0, 10).map(drop))),
                ("pwrite", Box::new(|d, p| d.pwrite(p, 0, b"x").map(drop))),
                ("write_file", Box::new(|d, p| d.write_file(p, b"x", 0o644))),
                ("truncate", Box::new(|d, p| d.truncate(p, 0))),
                ("utimes", Box::new(|d, p| d.utimes(p, 0, 0))),
                ("chmod", Box::new(|d, p| d.chmod(p, 0o600))),
            ];
            for (name, op) in ops {
                let (d, p) = (dir.clone(), path.to_owned());
                let outcome = promptly(&format!("{name} {path}"), move || op(&d, &p));
                assert_eq!(errno(outcome), Errno::EACCES, "{name} {path}");
            }
        }
        // Operations on the entry itself work, promptly.
        let d = dir.clone();
        promptly("entry operations", move || {
            assert_eq!(d.realpath("sub/fifo-link").unwrap(), "sub/fifo");
            assert_eq!(errno(d.read_dir("sub/fifo-link", 10)), Errno::ENOTDIR);
            assert_eq!(errno(d.write_file("sub/fifo/x", b"x", 0o644)), Errno::ENOTDIR);
            assert_eq!(errno(d.mkdir("sub/fifo-link/x", true, 0o755)), Errno::EEXIST);
            d.link("sub/fifo", "sub/fifo-hard").unwrap();
            d.rename("sub/fifo-hard", "fifo-moved").unwrap();
            d.remove_file("fifo-moved").unwrap();
        });
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(fs::symlink_metadata(&fifo).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn modes_never_carry_setuid_setgid_or_sticky_and_chown_is_eperm() {
        let scratch = Scratch::new("modes");
        let dir = scratch.dir();
        let mode = |path: &str| fs::symlink_metadata(scratch.root().join(path)).unwrap().permissions().mode() & 0o7777;
        dir.write_file("tool", b"#!/bin/sh\n", 0o6755).unwrap();
        assert_eq!(mode("tool"), 0o755);
        dir.mkdir("shared", false, 0o1777).unwrap();
        assert_eq!(mode("shared") & 0o7000, 0);
        dir.mkdir("deep/er", true, 0o3755).unwrap();
        assert_eq!(mode("deep") & 0o7000, 0);
        assert_eq!(mode("deep/er") & 0o7000, 0);
        dir.chmod("sub/file.txt", 0o4755).unwrap();
        assert_eq!(mode("sub/file.txt"), 0o755);
        dir.chmod("sub", 0o1777).unwrap();
        assert_eq!(mode("sub"), 0o777);
        assert_eq!(errno(dir.chown("sub/file.txt", 0, 0)), Errno::EPERM);
        assert_eq!(errno(dir.chown("sub/file.txt", 12345, 12345)), Errno::EPERM);
        assert_ne!(fs::metadata(scratch.root().join("sub/file.txt")).unwrap().uid(), 12345);
    }

    #[test]
    fn pwrite_writes_in_place() {
        let scratch = Scratch::new("pwrite");
        let dir = scratch.dir();
        dir.write_file("f", b"hello world", 0o644).unwrap();
        let ino = fs::metadata(scratch.root().join("f")).unwrap().ino();
        assert_eq!(dir.pwrite("f", 6, b"WORLD").unwrap(), 5);
        assert_eq!(fs::read(scratch.root().join("f")).unwrap(), b"hello WORLD");
        assert_eq!(dir.pwrite("f", 13, b"!").unwrap(), 1);
        assert_eq!(fs::read(scratch.root().join("f")).unwrap(), b"hello WORLD\0\0!");
        assert_eq!(fs::metadata(scratch.root().join("f")).unwrap().ino(), ino, "the same file, not a rewrite");
        assert_eq!(errno(dir.pwrite("missing", 0, b"x")), Errno::ENOENT);
        assert_eq!(errno(dir.pwrite("sub", 0, b"x")), Errno::EISDIR);
        dir.symlink("f", "link").unwrap();
        assert_eq!(errno(dir.pwrite("link", 0, b"x")), Errno::EACCES);
        assert!(!scratch.root().join("missing").exists());
    }

    #[test]
    fn read_dir_stops_past_its_bound() {
        let scratch = Scratch::new("readdir");
        let dir = scratch.dir();
        for i in 0..5 {
            dir.write_file(&format!("sub/{i}"), b"", 0o644).unwrap();
        }
        assert_eq!(dir.read_dir("sub", 6).unwrap().len(), 6);
        assert_eq!(errno(dir.read_dir("sub", 5)), Errno::EFBIG);
        assert_eq!(errno(dir.read_dir("sub", 0)), Errno::EFBIG);
    }

    /// A host process keeps swapping `root/swap` between a real directory and a symlink to the
    /// sibling directory outside while operations go through `swap/...`: none may read the
    /// secret or touch anything outside.
    #[test]
    fn a_racing_host_process_cannot_redirect_operations_outside() {
        let scratch = Scratch::new("race");
        let root = scratch.root();
        fs::create_dir(root.join("swap")).unwrap();
        fs::write(root.join("swap/secret"), "in the root").unwrap();
        fs::write(scratch.base.join("sibling/planted"), "").unwrap();
        let outside_before = snapshot(&scratch.base.join("sibling"));
        let dir = scratch.dir();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let (root, stop) = (root.clone(), stop.clone());
            let absolute = scratch.base.join("sibling");
            std::thread::spawn(move || {
                let mut swaps = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Park the real directory inside the root, put a link in its place, restore.
                    if fs::rename(root.join("swap"), root.join("parked")).is_ok() {
                        let target = if swaps.is_multiple_of(2) { Path::new("../sibling") } else { absolute.as_path() };
                        let _ = symlink(target, root.join("swap"));
                        let _ = fs::remove_file(root.join("swap"));
                        let _ = fs::rename(root.join("parked"), root.join("swap"));
                        swaps += 1;
                    }
                }
                swaps
            })
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut rounds = 0u32;
        while Instant::now() < deadline {
            rounds += 1;
            if let Ok(bytes) = dir.read_file("swap/secret", 100) {
                assert_eq!(bytes, b"in the root");
            }
            if let Ok(bytes) = dir.pread("swap/secret", 0, 100) {
                assert_eq!(bytes, b"in the root");
            }
            if let Ok(stat) = dir.stat("swap/secret") {
                assert_eq!(stat.size, 11, "the sibling's secret was stat'ed");
            }
            let _ = dir.write_file("swap/secret", b"in the root", 0o644);
            let _ = dir.write_file(&format!("swap/new-{}", rounds % 4), b"new", 0o644);
            let _ = dir.pwrite("swap/secret", 0, b"i");
            let _ = dir.truncate("swap/secret", 11);
            let _ = dir.chmod("swap/secret", 0o600);
            let _ = dir.utimes("swap/secret", 0, 0);
            let _ = dir.mkdir("swap/d", false, 0o755);
            let _ = dir.remove_dir("swap/d", false);
            let _ = dir.symlink("x", "swap/l");
            let _ = dir.remove_file("swap/l");
            let _ = dir.rename("swap/new-0", "swap/new-1");
            let _ = dir.link("swap/new-2", "swap/new-3");
            let _ = dir.realpath("swap/secret");
            if let Ok(names) = dir.read_dir("swap", 100) {
                assert!(names.iter().all(|name| name != "planted"), "listed the sibling: {names:?}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = racer.join().unwrap();
        assert!(swaps > 10 && rounds > 10, "{swaps} swaps, {rounds} rounds");
        assert_eq!(snapshot(&scratch.base.join("sibling")), outside_before, "something outside changed");
        let mut top: Vec<_> = fs::read_dir(&scratch.base).unwrap().map(|e| e.unwrap().file_name()).collect();
        top.sort();
        assert_eq!(top, ["root", "sibling"]);
    }

    /// Names, contents, modes and modification times of a directory's files.
    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32, i64, i64)> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let meta = fs::symlink_metadata(entry.path()).unwrap();
                let content = if meta.is_file() { fs::read(entry.path()).unwrap() } else { Vec::new() };
                (entry.file_name().into_string().unwrap(), content, meta.mode(), meta.mtime(), meta.mtime_nsec())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_links_lock_is_shared_by_every_handle_on_the_directory() {
        let scratch = Scratch::new("lock");
        let (first, second) = (scratch.dir(), scratch.dir());
        let held = first.lock_links().unwrap();
        let started = Instant::now();
        assert_eq!(errno(second.symlink("sub", "waited")), Errno::EBUSY);
        assert!(started.elapsed() >= LINK_LOCK_WAIT, "waited {:?}", started.elapsed());
        // The same handle takes a fresh descriptor: it waits too.
        assert_eq!(errno(first.link("sub/file.txt", "hard")), Errno::EBUSY);
        drop(held);
        second.symlink("sub", "linked").unwrap();
        assert_eq!(second.read_file("linked/file.txt", 100).unwrap(), b"inside");
    }
}
