//! Paths: opening, listing, metadata, times and the namespace calls (`mkdir`, `unlink`,
//! `rename`, links), each a typed operation on the VM's filesystem.

use super::*;
use crate::fs::layers::{GUEST_USER_GID, GUEST_USER_UID};

/// Permissions `fstat` gives the standard streams: read and write for everyone, like the
/// `/dev/std*` nodes that name them.
const STREAM_PERMISSIONS: u32 = 0o666;
/// Permissions `fstat` gives a pipe end: its owner's, as Linux shows an anonymous pipe.
const PIPE_PERMISSIONS: u32 = 0o600;
/// The permission bits a `chmod` sets: read/write/execute for all three classes, and setuid,
/// setgid and sticky.
const CHMOD_BITS: u32 = 0o7777;

impl Syscalls {
    /// Opens `path` relative to the directory `dirfd`; returns the new descriptor.
    pub fn open_at(&mut self, dirfd: u32, guest_path: &str, flags: OpenFlags) -> SysResult<u32> {
        self.open_at_creating(dirfd, guest_path, flags, None)
    }

    /// [`open_at`](Self::open_at), giving the permissions of a file the call creates (`None`:
    /// the filesystem's default, `0o644`). An existing file keeps its own.
    pub fn open_at_creating(
        &mut self,
        dirfd: u32,
        guest_path: &str,
        flags: OpenFlags,
        create_mode: Option<u32>,
    ) -> SysResult<u32> {
        let path = self.resolve(dirfd, guest_path)?;
        if names_directory(guest_path) {
            match self.existing_kind(&path)? {
                Some(EntryKind::Directory) => {}
                Some(_) => return Err(Errno::ENOTDIR.into()),
                // `open("new/", O_CREAT)`: only a directory can have that name (Linux).
                None if flags.create && !flags.directory => return Err(Errno::EISDIR.into()),
                None => {}
            }
        }
        let changes = flags.write || flags.create || flags.truncate;
        if changes {
            self.writable()?;
        }
        // Without `follow` (O_NOFOLLOW) a final symlink is not opened: `ELOOP`, as on Linux and
        // wasmtime, also when it dangles or the call would create.
        let existing = match self.stat_path(&path, flags.follow) {
            Ok(stat) if !flags.follow && kind_of(stat.mode) == EntryKind::Symlink => return Err(Errno::ELOOP.into()),
            other => other,
        };
        let stat = match existing {
            Ok(_) if flags.create && flags.exclusive => return Err(Errno::EEXIST.into()),
            Ok(stat) => stat,
            Err(SysError::Errno(Errno::ENOENT)) if flags.create && !flags.directory => {
                self.fs(&path, FsOp::WriteFile { data: &[], mode: create_mode })?;
                self.stat_path(&path, true)?
            }
            Err(errno) => return Err(errno),
        };
        if let Some(standard) = standard_stream(&stat) {
            // The caller's own stream, as Linux's `/dev/stdout -> /proc/self/fd/1` gives it: a
            // new descriptor for what its 0, 1 or 2 refers to (closed: no such file).
            return self
                .dup(standard)
                .map_err(|errno| SysError::Errno(if errno == Errno::EBADF { Errno::ENOENT } else { errno }));
        }
        let kind = kind_of(stat.mode);
        if is_host_special(stat.mode) {
            // A FIFO, socket or device on a host_dir mount: opening it could block the whole
            // sidecar (a FIFO waits for a writer) or reach host hardware; it is listed, never
            // opened.
            return Err(Errno::EACCES.into());
        }
        if flags.directory && kind != EntryKind::Directory {
            return Err(Errno::ENOTDIR.into());
        }
        let file = if kind == EntryKind::Directory {
            if flags.write || flags.truncate {
                return Err(Errno::EISDIR.into());
            }
            OpenFile::Directory { path: path.clone(), preopen: None, listing: None }
        } else {
            if flags.read && kind == EntryKind::RegularFile {
                // Opening for reading needs `fs.read` now, as on Linux, not at the first read: a
                // zero-byte read asks the policy (and the mount) without moving any content.
                self.fs(&path, FsOp::Pread { offset: 0, len: 0 })?;
            }
            if flags.write && kind == EntryKind::RegularFile {
                self.guarded(|vm, pid, asks, _, _| vm.guest_may_write(pid, &path, asks))?;
            }
            if flags.truncate && kind == EntryKind::RegularFile {
                self.fs(&path, FsOp::Truncate { len: 0 })?;
            }
            let node = match kind {
                EntryKind::RegularFile => self.hold_file(&path, flags.write)?,
                _ => None,
            };
            OpenFile::File { path, offset: 0, device: kind == EntryKind::CharacterDevice, node }
        };
        let descriptor = Descriptor {
            file,
            readable: flags.read,
            writable: flags.write,
            append: flags.append,
            nonblocking: flags.nonblocking,
            sync: flags.sync,
        };
        // Counted before it has a number, so a full table releases the file it held.
        self.retain(&descriptor);
        let max_open_fds = self.vm.process_limits().max_open_fds;
        let inserted = self.process_mut()?.fds.insert(descriptor.clone(), max_open_fds);
        if inserted.is_err() {
            self.release(&descriptor);
        }
        Ok(inserted?)
    }

    /// The file at `path` for a new descriptor to hold (see `fs::open_files`); `None` where the
    /// filesystem reaches files by path only.
    fn hold_file(&mut self, path: &str, writable: bool) -> SysResult<Option<FileNode>> {
        let now = self.now;
        let held = self.vm.filesystem_mut().open_file(path, writable, now);
        held.map_err(|error| SysError::Errno(error.errno()))
    }

    /// Up to `max` entries of the directory open at `fd`, from entry number `from` on (`.` and
    /// `..` are the first two); empty past the end. The names are listed at the start of a walk
    /// (`from` 0: the first call, or a rewind, which so sees entries made since), and a guest
    /// walking on with cookies sees that stable list; each entry's kind and serial number are
    /// looked up when a batch first reaches it, so one call costs at most `max` lookups whatever
    /// the directory's size.
    pub fn read_dir_batch(&mut self, fd: u32, from: u64, max: usize) -> SysResult<Vec<DirEntry>> {
        let path = match &self.descriptor(fd)?.file {
            OpenFile::Directory { path, .. } => path.clone(),
            _ => return Err(Errno::ENOTDIR.into()),
        };
        // A hidden preopen alias is immutable, so it keeps no listing: each batch lists afresh.
        let mut listing = match self.process_mut()?.fds.get_mut(fd).map(|descriptor| &mut descriptor.file) {
            Ok(OpenFile::Directory { listing, .. }) => listing.take().filter(|_| from != 0),
            _ => None,
        };
        if listing.is_none() {
            listing = Some(self.list(&path)?);
        }
        let Some(mut listing) = listing else { return Err(Errno::EIO.into()) };
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(listing.names.len());
        let end = start.saturating_add(max).min(listing.names.len());
        let mut batch = Vec::with_capacity(end - start);
        for index in start..end {
            let Some(name) = listing.names.get(index).cloned() else { break };
            let known = listing.stats.get(index).copied().flatten();
            let (ino, kind) = match known {
                Some(stat) => stat,
                None => {
                    let stat = match self.stat_path(&join(&path, &name), false) {
                        Ok(stat) => (stat.ino, kind_of(stat.mode)),
                        Err(_) => (0, EntryKind::Unknown),
                    };
                    if let Some(slot) = listing.stats.get_mut(index) {
                        *slot = Some(stat);
                    }
                    stat
                }
            };
            batch.push(DirEntry { name, ino, kind });
        }
        if let Ok(OpenFile::Directory { listing: slot, .. }) =
            self.process_mut()?.fds.get_mut(fd).map(|descriptor| &mut descriptor.file)
        {
            *slot = Some(listing);
        }
        Ok(batch)
    }

    /// The names of `path` with `.` and `..` first, their stats still to be looked up (but for
    /// `.` and `..`, known now).
    pub(super) fn list(&mut self, path: &str) -> SysResult<Listing> {
        let FsReply::Entries(names) = self.fs(path, FsOp::ReadDir)? else { return Err(Errno::EIO.into()) };
        let listed = u64::try_from(names.len()).unwrap_or(u64::MAX);
        self.charge(listed.saturating_mul(cost::FUEL_PER_DIR_ENTRY));
        let own = self.stat_path(path, true)?;
        let mut all = Vec::with_capacity(names.len().saturating_add(2));
        all.extend([".".to_owned(), "..".to_owned()]);
        all.extend(names);
        let mut stats = vec![None; all.len()];
        if let Some(slots) = stats.get_mut(..2) {
            slots.copy_from_slice(&[Some((own.ino, EntryKind::Directory)), Some((0, EntryKind::Directory))]);
        }
        Ok(Listing { names: all, stats })
    }

    /// Metadata of what `fd` refers to.
    pub fn fstat(&mut self, fd: u32) -> SysResult<FileStat> {
        let stream_mode = match &self.descriptor(fd)?.file {
            OpenFile::File { node: Some(node), .. } => {
                let node = node.clone();
                return self
                    .vm
                    .filesystem()
                    .stat_held(&node)
                    .map(|stat| file_stat(&stat))
                    .map_err(|e| e.errno().into());
            }
            OpenFile::File { path, .. } | OpenFile::Directory { path, .. } => {
                let path = path.clone();
                return self.stat_path(&path, true).map(|stat| file_stat(&stat));
            }
            // Standard streams are character devices, like the `/dev/std*` nodes naming them.
            OpenFile::Stdin { .. } | OpenFile::Stdout { .. } | OpenFile::Stderr { .. } => S_IFCHR | STREAM_PERMISSIONS,
            OpenFile::Pipe { .. } => S_IFIFO | PIPE_PERMISSIONS,
            OpenFile::Socket { .. } => S_IFSOCK | PIPE_PERMISSIONS,
        };
        Ok(FileStat {
            dev: 0,
            ino: 0,
            kind: EntryKind::CharacterDevice,
            nlink: 1,
            size: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            mode: stream_mode,
            uid: GUEST_USER_UID,
            gid: GUEST_USER_GID,
            rdev: 0,
        })
    }

    /// Metadata of `path` relative to `dirfd`.
    pub fn stat_at(&mut self, dirfd: u32, guest_path: &str, follow: bool) -> SysResult<FileStat> {
        let path = self.resolve(dirfd, guest_path)?;
        self.directory_if_named_so(&path, guest_path)?;
        self.stat_path(&path, follow).map(|stat| file_stat(&stat))
    }

    /// Truncates or extends the file open at `fd`.
    pub fn set_size(&mut self, fd: u32, len: u64) -> SysResult<()> {
        self.writable()?;
        let descriptor = self.process()?.fds.get(fd)?;
        if let (OpenFile::File { node: Some(node), .. }, true) = (&descriptor.file, descriptor.writable) {
            let (node, now) = (node.clone(), self.now);
            self.charge(cost::SYSCALL_FUEL);
            return self.vm.filesystem_mut().truncate_held(&node, len, now).map_err(|e| SysError::Errno(e.errno()));
        }
        let path = self.file_path(fd)?;
        self.fs(&path, FsOp::Truncate { len }).map(drop)
    }

    /// Sets the permission bits of `path` relative to `dirfd` (following a final symlink); its
    /// type is kept. The VM is one user's, so its owner's bits are the guest's to set: only the
    /// tier can refuse (`EROFS` for `READ_ONLY`).
    pub fn chmod_at(&mut self, dirfd: u32, guest_path: &str, mode: u32) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.writable()?;
        self.fs(&path, FsOp::Chmod { mode: mode & CHMOD_BITS }).map(drop)
    }

    /// Changes the owner and/or group of `path` relative to `dirfd` (`None` keeps one), as
    /// Linux lets a process that is not root: the owner never changes (`EPERM`, unless it is
    /// the owner already), and the group only on a file the guest owns, to a group the guest is
    /// in. Without `follow` a final symlink's own ids would change: the filesystem keeps none
    /// apart from its target's, so that is `ENOTSUP` for a real change.
    pub fn chown_at(
        &mut self,
        dirfd: u32,
        guest_path: &str,
        uid: Option<u32>,
        gid: Option<u32>,
        follow: bool,
    ) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.writable()?;
        let stat = self.stat_path(&path, follow)?;
        let (new_uid, new_gid) = (uid.unwrap_or(stat.uid), gid.unwrap_or(stat.gid));
        if (new_uid, new_gid) == (stat.uid, stat.gid) {
            return Ok(());
        }
        let owns = stat.uid == GUEST_USER_UID;
        if new_uid != stat.uid || !owns || new_gid != GUEST_USER_GID {
            return Err(Errno::EPERM.into());
        }
        if !follow && kind_of(stat.mode) == EntryKind::Symlink {
            return Err(Errno::ENOTSUP.into());
        }
        self.fs(&path, FsOp::Chown { uid: new_uid, gid: new_gid }).map(drop)
    }

    /// How full the filesystem holding `path` (relative to `dirfd`, which must exist) is. The
    /// numbers are the VM root's writable layer against the VM's `maxFilesystemBytes` and
    /// `maxInodeCount`, whatever mount `path` is on: those are the bounds a guest's writes meet
    /// (the shared base layers and the host's own disks are not the guest's to fill).
    pub fn statfs_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<FsUsage> {
        let path = self.resolve(dirfd, guest_path)?;
        self.stat_path(&path, true)?;
        let filesystem = self.vm.filesystem();
        let (limits, upper) = (filesystem.limits(), filesystem.root().upper());
        let used_bytes = upper.total_bytes().min(limits.max_filesystem_bytes);
        Ok(FsUsage {
            total_bytes: limits.max_filesystem_bytes,
            used_bytes,
            available_bytes: limits.max_filesystem_bytes - used_bytes,
            total_inodes: limits.max_inode_count,
            free_inodes: limits.max_inode_count.saturating_sub(upper.inode_count()),
        })
    }

    /// The process's working directory (where its relative paths start; see [`CWD_FDS`]).
    pub fn cwd(&self) -> Result<String, Errno> {
        Ok(self.process()?.cwd.clone())
    }

    /// Sets the access and modification times of what `fd` refers to (a file or a directory).
    pub fn set_times(&mut self, fd: u32, atime: TimeChange, mtime: TimeChange) -> SysResult<()> {
        if let OpenFile::File { node: Some(node), .. } = &self.descriptor(fd)?.file {
            let node = node.clone();
            return self.set_held_times(&node, atime, mtime);
        }
        let path = match &self.descriptor(fd)?.file {
            OpenFile::File { path, device: false, .. } | OpenFile::Directory { path, .. } => path.clone(),
            // Streams and devices have no times of their own to set.
            _ => return Err(Errno::EINVAL.into()),
        };
        self.set_path_times(&path, atime, mtime, true)
    }

    /// Sets the times of `path` relative to `dirfd`; without `follow`, of a final symlink
    /// itself (`ENOTSUP` on a `host_dir` mount, which cannot reach a link's own times).
    pub fn set_times_at(
        &mut self,
        dirfd: u32,
        guest_path: &str,
        follow: bool,
        atime: TimeChange,
        mtime: TimeChange,
    ) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.set_path_times(&path, atime, mtime, follow)
    }

    /// [`set_path_times`](Self::set_path_times) of a held file.
    fn set_held_times(&mut self, node: &FileNode, atime: TimeChange, mtime: TimeChange) -> SysResult<()> {
        self.writable()?;
        self.charge(cost::SYSCALL_FUEL);
        let filesystem = self.vm.filesystem_mut();
        let current = filesystem.stat_held(node).map_err(|e| SysError::Errno(e.errno()))?;
        let now_ns = self.now.wall_ms.saturating_mul(NS_PER_MS);
        let pick = |change: TimeChange, kept: u64| match change {
            TimeChange::Keep => kept,
            TimeChange::Now => now_ns,
            TimeChange::At(ns) => ns,
        };
        let (atime_ns, mtime_ns) = (pick(atime, current.atime_ns), pick(mtime, current.mtime_ns));
        let now = self.now;
        let filesystem = self.vm.filesystem_mut();
        filesystem.utimes_held(node, atime_ns, mtime_ns, now).map_err(|e| SysError::Errno(e.errno()))
    }

    pub(super) fn set_path_times(
        &mut self,
        path: &str,
        atime: TimeChange,
        mtime: TimeChange,
        follow: bool,
    ) -> SysResult<()> {
        self.writable()?;
        let current = match (atime, mtime) {
            (TimeChange::Keep, _) | (_, TimeChange::Keep) => Some(self.stat_path(path, follow)?),
            _ => None,
        };
        let now_ns = self.now.wall_ms.saturating_mul(NS_PER_MS);
        let pick = |change: TimeChange, kept: fn(&Stat) -> u64| match change {
            TimeChange::Keep => current.as_ref().map_or(now_ns, kept),
            TimeChange::Now => now_ns,
            TimeChange::At(ns) => ns,
        };
        let (atime_ns, mtime_ns) = (pick(atime, |stat| stat.atime_ns), pick(mtime, |stat| stat.mtime_ns));
        self.fs(path, FsOp::Utimes { atime_ns, mtime_ns, follow }).map(drop)
    }

    pub fn mkdir_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.writable()?;
        self.fs(&path, FsOp::CreateDir { mode: None }).map(drop)
    }

    pub fn remove_file_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.directory_if_named_so(&path, guest_path)?;
        self.restructurable()?;
        self.fs(&path, FsOp::RemoveFile).map(drop)
    }

    pub fn remove_dir_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.directory_if_named_so(&path, guest_path)?;
        self.restructurable()?;
        self.fs(&path, FsOp::RemoveDir { recursive: false }).map(drop)
    }

    pub fn rename_at(&mut self, dirfd: u32, from: &str, to_dirfd: u32, to: &str) -> SysResult<()> {
        let (from_path, to_path) = (self.resolve(dirfd, from)?, self.resolve(to_dirfd, to)?);
        self.directory_if_named_so(&from_path, from)?;
        self.directory_if_named_so(&to_path, to)?;
        if names_directory(to) && self.existing_kind(&from_path)? != Some(EntryKind::Directory) {
            // Only a directory may take a name ending in `/`.
            return Err(Errno::ENOTDIR.into());
        }
        self.restructurable()?;
        self.fs(&from_path, FsOp::Rename { to: &to_path }).map(drop)
    }

    pub fn symlink_at(&mut self, target: &str, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        if names_directory(guest_path) {
            // A link is not a directory, so it cannot take a name ending in `/` (Linux).
            return Err(match self.existing_kind(&path)? {
                Some(_) => Errno::EEXIST,
                None => Errno::ENOENT,
            }
            .into());
        }
        self.restructurable()?;
        self.fs(&path, FsOp::Symlink { target }).map(drop)
    }

    /// A hard link `to` to what `from` names; with `follow`, a final symlink of `from` is
    /// followed (`linkat(AT_SYMLINK_FOLLOW)`: a dangling one is `ENOENT`), else linked itself.
    pub fn link_at(&mut self, dirfd: u32, from: &str, to_dirfd: u32, to: &str, follow: bool) -> SysResult<()> {
        let (mut from_path, to_path) = (self.resolve(dirfd, from)?, self.resolve(to_dirfd, to)?);
        if follow {
            from_path = match self.fs(&from_path, FsOp::Realpath)? {
                FsReply::Target(real) => real,
                _ => return Err(Errno::EIO.into()),
            };
        }
        self.directory_if_named_so(&from_path, from)?;
        if names_directory(to) {
            // A hard link's source is never a directory, so its new name cannot end in `/`.
            return Err(match self.existing_kind(&to_path)? {
                Some(_) => Errno::EEXIST,
                None => Errno::ENOENT,
            }
            .into());
        }
        self.restructurable()?;
        self.fs(&from_path, FsOp::Link { to: &to_path }).map(drop)
    }

    pub fn read_link_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<String> {
        let path = self.resolve(dirfd, guest_path)?;
        match self.fs(&path, FsOp::ReadLink)? {
            FsReply::Target(target) => Ok(target),
            _ => Err(Errno::EIO.into()),
        }
    }

    pub(super) fn file_path(&self, fd: u32) -> Result<String, Errno> {
        match &self.process()?.fds.get(fd)?.file {
            OpenFile::File { path, device: false, .. } => Ok(path.clone()),
            OpenFile::Directory { .. } => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(super) fn read_whole(&mut self, path: &str) -> SysResult<Vec<u8>> {
        match self.fs(path, FsOp::ReadFile)? {
            FsReply::Content(bytes) => Ok(bytes),
            _ => Err(Errno::EIO.into()),
        }
    }

    pub(super) fn write_whole(&mut self, path: &str, data: &[u8]) -> SysResult<()> {
        self.fs(path, FsOp::WriteFile { data, mode: None }).map(drop)
    }

    /// `EROFS` unless the process may change the filesystem.
    pub(super) fn writable(&self) -> Result<(), Errno> {
        match self.process()?.tier {
            WasmPermissionTier::ReadOnly => Err(Errno::EROFS),
            _ => Ok(()),
        }
    }

    /// Removing, renaming and linking need the `FULL` tier: `READ_WRITE` lacks those rights
    /// (`ENOTCAPABLE`), `READ_ONLY` changes nothing (`EROFS`).
    pub(super) fn restructurable(&self) -> Result<(), Errno> {
        match self.process()?.tier {
            WasmPermissionTier::ReadOnly => Err(Errno::EROFS),
            WasmPermissionTier::ReadWrite | WasmPermissionTier::Isolated => Err(Errno::ENOTCAPABLE),
            WasmPermissionTier::Full => Ok(()),
        }
    }

    /// `ENOTDIR` when `guest_path` ends in `/` (only a directory may be named so) and what it
    /// names exists and is not one (a symlink to a directory is one).
    fn directory_if_named_so(&mut self, path: &str, guest_path: &str) -> SysResult<()> {
        if names_directory(guest_path) && !matches!(self.existing_kind(path)?, Some(EntryKind::Directory) | None) {
            return Err(Errno::ENOTDIR.into());
        }
        Ok(())
    }

    /// What `path` is, following links (`None`: nothing is there).
    fn existing_kind(&mut self, path: &str) -> SysResult<Option<EntryKind>> {
        match self.stat_path(path, true) {
            Ok(stat) => Ok(Some(kind_of(stat.mode))),
            Err(SysError::Errno(Errno::ENOENT)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The VM path `guest_path` names relative to the directory open at `dirfd` (`..` never
    /// climbs above `/`), or to the process's working directory for the [`CWD_FDS`] (not for an
    /// `ISOLATED` process: it has no filesystem, `EBADF` as for its missing preopen). Symlinks
    /// are resolved by the filesystem layer, inside the VM.
    pub(super) fn resolve(&mut self, dirfd: u32, guest_path: &str) -> Result<String, Errno> {
        if guest_path.len() > path::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if guest_path.contains('\0') {
            return Err(Errno::EINVAL);
        }
        let base = if CWD_FDS.contains(&dirfd) {
            let process = self.process()?;
            if process.tier == WasmPermissionTier::Isolated {
                return Err(Errno::EBADF);
            }
            process.cwd.clone()
        } else {
            match &self.descriptor(dirfd)?.file {
                OpenFile::Directory { path, .. } => path.clone(),
                _ => return Err(Errno::ENOTDIR),
            }
        };
        Ok(crate::fs::normalize(&base, guest_path))
    }

    pub(super) fn stat_path(&mut self, path: &str, follow: bool) -> SysResult<Stat> {
        let op = if follow { FsOp::Stat } else { FsOp::Lstat };
        match self.fs(path, op)? {
            FsReply::Stat(stat) => Ok(stat),
            _ => Err(Errno::EIO.into()),
        }
    }

    /// One operation on the VM's filesystem (policy, mounts, limits) as this process.
    pub(super) fn fs(&mut self, path: &str, op: FsOp<'_>) -> SysResult<FsReply> {
        let outcome =
            self.guarded(|vm, pid, asks, entropy, now| vm.guest_filesystem_call(pid, path, op, asks, entropy, now))?;
        match outcome {
            FsOutcome::Done(reply) => Ok(reply),
            // Host-answered (js_bridge) mounts need the guest to wait for the host: not yet.
            FsOutcome::Bridge(_) => Err(Errno::ENOTSUP.into()),
        }
    }
}

/// Which of the caller's standard descriptors a stat names, if it is `/dev/stdin`, `/dev/stdout`
/// or `/dev/stderr` of the kernel's `/dev`.
fn standard_stream(stat: &Stat) -> Option<u32> {
    if stat.dev != crate::fs::devices::DEV_TREE_DEV {
        return None;
    }
    let index = crate::fs::devices::STDIO_INOS.iter().position(|ino| *ino == stat.ino)?;
    u32::try_from(index).ok()
}

/// FIFOs, sockets and block devices only exist on host_dir mounts (the kernel's own devices are
/// character devices).
fn is_host_special(mode: u32) -> bool {
    matches!(mode & S_IFMT, S_IFIFO | S_IFSOCK | S_IFBLK)
}

fn kind_of(mode: u32) -> EntryKind {
    match mode & S_IFMT {
        S_IFDIR => EntryKind::Directory,
        S_IFREG => EntryKind::RegularFile,
        S_IFLNK => EntryKind::Symlink,
        S_IFCHR => EntryKind::CharacterDevice,
        _ => EntryKind::Unknown,
    }
}

fn file_stat(stat: &Stat) -> FileStat {
    FileStat {
        dev: stat.dev,
        ino: stat.ino,
        kind: kind_of(stat.mode),
        nlink: stat.nlink,
        size: stat.size,
        atime_ns: stat.atime_ns,
        mtime_ns: stat.mtime_ns,
        ctime_ns: stat.ctime_ms.saturating_mul(NS_PER_MS),
        mode: stat.mode,
        uid: stat.uid,
        gid: stat.gid,
        rdev: stat.rdev,
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether a guest path ends in `/`, which only a directory's name may (POSIX: a trailing slash
/// resolves as if `.` followed).
fn names_directory(guest_path: &str) -> bool {
    guest_path.len() > 1 && guest_path.ends_with('/')
}
