//! The filesystem operations of `GuestFilesystemCallRequest` over any filesystem a path can
//! land in: the root [`Overlay`], a `memory` mount's [`Filesystem`], a `host_dir` mount's
//! [`HostDir`]. (js_bridge mounts are asynchronous; see `js_bridge`.)

use crate::fs::host_gate::GatedDir;

use crate::clock::Now;
use crate::host::fs::{symlink_target_depth, HostDir, HostFileKind, HostFsError, HostStat, HOST_MODE_MASK};
use crate::vfs::{
    Errno, Filesystem, FsError, FsLimits, LimitKind, Overlay, Stat, VPath, DEFAULT_FILE_MODE, NS_PER_MS, S_IFBLK,
    S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
};

/// One filesystem's operations, with the vfs's errors (errno, Node syscall name, path).
pub(crate) trait FsOps {
    fn read_file(&self, path: VPath<'_>) -> Result<Vec<u8>, FsError>;
    fn pread(&self, path: VPath<'_>, offset: u64, len: u64) -> Result<Vec<u8>, FsError>;
    fn write_file(&mut self, path: VPath<'_>, data: &[u8], mode: Option<u32>, now: Now) -> Result<(), FsError>;
    fn mkdir(&mut self, path: VPath<'_>, recursive: bool, mode: u32, now: Now) -> Result<(), FsError>;
    fn exists(&self, path: VPath<'_>) -> bool;
    fn stat(&self, path: VPath<'_>) -> Result<Stat, FsError>;
    fn lstat(&self, path: VPath<'_>) -> Result<Stat, FsError>;
    fn read_dir(&self, path: VPath<'_>) -> Result<Vec<String>, FsError>;
    fn remove_file(&mut self, path: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn remove_dir(&mut self, path: VPath<'_>, recursive: bool, now: Now) -> Result<(), FsError>;
    fn rename(&mut self, from: VPath<'_>, to: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn realpath(&self, path: VPath<'_>) -> Result<String, FsError>;
    fn symlink(&mut self, target: &str, path: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn read_link(&self, path: VPath<'_>) -> Result<String, FsError>;
    fn link(&mut self, existing: VPath<'_>, new: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn chmod(&mut self, path: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError>;
    fn chown(&mut self, path: VPath<'_>, uid: u32, gid: u32, now: Now) -> Result<(), FsError>;
    /// Times in nanoseconds; of a final symlink itself unless `follow`.
    fn utimes(&mut self, path: VPath<'_>, atime_ns: u64, mtime_ns: u64, follow: bool, now: Now) -> Result<(), FsError>;
    fn truncate(&mut self, path: VPath<'_>, len: u64, now: Now) -> Result<(), FsError>;
}

/// The vfs types share one inherent API.
macro_rules! vfs_ops {
    ($type:ty) => {
        impl FsOps for $type {
            fn read_file(&self, path: VPath<'_>) -> Result<Vec<u8>, FsError> {
                <$type>::read_file(self, path).map(<[u8]>::to_vec)
            }
            fn pread(&self, path: VPath<'_>, offset: u64, len: u64) -> Result<Vec<u8>, FsError> {
                <$type>::pread(self, path, offset, len).map(<[u8]>::to_vec)
            }
            fn write_file(&mut self, path: VPath<'_>, data: &[u8], mode: Option<u32>, now: Now) -> Result<(), FsError> {
                match mode {
                    Some(mode) => <$type>::write_file_with_mode(self, path, data, mode, now),
                    None => <$type>::write_file(self, path, data, now),
                }
            }
            fn mkdir(&mut self, path: VPath<'_>, recursive: bool, mode: u32, now: Now) -> Result<(), FsError> {
                <$type>::mkdir_with_mode(self, path, recursive, mode, now)
            }
            fn exists(&self, path: VPath<'_>) -> bool {
                <$type>::exists(self, path)
            }
            fn stat(&self, path: VPath<'_>) -> Result<Stat, FsError> {
                <$type>::stat(self, path)
            }
            fn lstat(&self, path: VPath<'_>) -> Result<Stat, FsError> {
                <$type>::lstat(self, path)
            }
            fn read_dir(&self, path: VPath<'_>) -> Result<Vec<String>, FsError> {
                <$type>::read_dir(self, path)
            }
            fn remove_file(&mut self, path: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$type>::remove_file(self, path, now)
            }
            fn remove_dir(&mut self, path: VPath<'_>, recursive: bool, now: Now) -> Result<(), FsError> {
                <$type>::remove_dir(self, path, recursive, now)
            }
            fn rename(&mut self, from: VPath<'_>, to: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$type>::rename(self, from, to, now)
            }
            fn realpath(&self, path: VPath<'_>) -> Result<String, FsError> {
                <$type>::realpath(self, path)
            }
            fn symlink(&mut self, target: &str, path: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$type>::symlink(self, target, path, now)
            }
            fn read_link(&self, path: VPath<'_>) -> Result<String, FsError> {
                <$type>::read_link(self, path)
            }
            fn link(&mut self, existing: VPath<'_>, new: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$type>::link(self, existing, new, now)
            }
            fn chmod(&mut self, path: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
                <$type>::chmod(self, path, mode, now)
            }
            fn chown(&mut self, path: VPath<'_>, uid: u32, gid: u32, now: Now) -> Result<(), FsError> {
                <$type>::chown(self, path, uid, gid, now)
            }
            fn utimes(
                &mut self,
                path: VPath<'_>,
                atime_ns: u64,
                mtime_ns: u64,
                follow: bool,
                now: Now,
            ) -> Result<(), FsError> {
                <$type>::set_times_ns(self, path, atime_ns, mtime_ns, follow, now)
            }
            fn truncate(&mut self, path: VPath<'_>, len: u64, now: Now) -> Result<(), FsError> {
                <$type>::truncate(self, path, len, now)
            }
        }
    };
}

vfs_ops!(Overlay);
vfs_ops!(Filesystem);

/// A `host_dir` mount's directory with the VM's limits and the mount's read-only flag.
/// Paths are the mount-local canonical paths the walk produced (`/`-rooted, nothing to resolve
/// but what the host resolves itself).
#[derive(Debug)]
pub(crate) struct HostBackend<'a> {
    /// The directory, through the VM's gate (which counts every call, so the guest is charged
    /// for each: see `cost`).
    pub dir: GatedDir<'a>,
    pub read_only: bool,
    pub limits: FsLimits,
}

/// `/a/b/` → `a/b`.
fn relative(path: &str) -> &str {
    path.trim_matches('/')
}

fn host_error(error: HostFsError) -> FsError {
    FsError::new(error.errno)
}

impl HostBackend<'_> {
    /// The host directory.
    fn host(&self) -> &GatedDir<'_> {
        &self.dir
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.read_only {
            return Err(Errno::EROFS.into());
        }
        Ok(())
    }

    /// Writes `data` at `offset` of an existing file, in place.
    pub fn pwrite(&self, path: &str, offset: u64, data: &[u8]) -> Result<u64, FsError> {
        self.writable()?;
        let limit = self.limits.max_fd_write_bytes;
        if u64::try_from(data.len()).unwrap_or(u64::MAX) > limit {
            return Err(FsError::limit_exceeded(LimitKind::FdWriteBytes, limit));
        }
        // The host's disk is not the VM's to fill: the end of a write is bounded like a truncate.
        let end = offset.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if end > self.limits.max_filesystem_bytes {
            return Err(FsError::limit_exceeded(LimitKind::FilesystemBytes, self.limits.max_filesystem_bytes));
        }
        match relative(path) {
            "" => Err(Errno::EISDIR.into()),
            rel => self.host().pwrite(rel, offset, data).map_err(host_error),
        }
    }

    fn read(&self, path: &str, max: u64) -> Result<Vec<u8>, FsError> {
        self.host().read_file(relative(path), max).map_err(|error| match error.errno {
            Errno::EFBIG => FsError::limit_exceeded(LimitKind::PreadBytes, max),
            _ => host_error(error),
        })
    }
}

/// A host stat as the wire reports it (file-type bits from the kind).
pub(crate) fn host_stat(stat: &HostStat) -> Stat {
    let (type_bits, is_directory, is_symbolic_link) = match stat.kind {
        HostFileKind::File => (S_IFREG, false, false),
        HostFileKind::Directory => (S_IFDIR, true, false),
        HostFileKind::Symlink => (S_IFLNK, false, true),
        HostFileKind::Fifo => (S_IFIFO, false, false),
        HostFileKind::Socket => (S_IFSOCK, false, false),
        HostFileKind::CharDevice => (S_IFCHR, false, false),
        HostFileKind::BlockDevice => (S_IFBLK, false, false),
    };
    Stat {
        mode: type_bits | (stat.mode & crate::vfs::PERMISSION_BITS),
        size: stat.size,
        blocks: stat.size.div_ceil(512),
        dev: stat.dev,
        rdev: 0,
        is_directory,
        is_symbolic_link,
        atime_ms: stat.atime_ms,
        mtime_ms: stat.mtime_ms,
        ctime_ms: stat.ctime_ms,
        birthtime_ms: stat.birthtime_ms,
        atime_ns: stat.atime_ms.saturating_mul(NS_PER_MS),
        mtime_ns: stat.mtime_ms.saturating_mul(NS_PER_MS),
        ino: stat.ino,
        nlink: stat.nlink,
        uid: stat.uid,
        gid: stat.gid,
    }
}

impl FsOps for HostBackend<'_> {
    fn read_file(&self, path: VPath<'_>) -> Result<Vec<u8>, FsError> {
        self.read(path.path, self.limits.max_pread_bytes).map_err(|e| e.at("open", path.path))
    }

    fn pread(&self, path: VPath<'_>, offset: u64, len: u64) -> Result<Vec<u8>, FsError> {
        let limit = self.limits.max_pread_bytes;
        let result = if len > limit {
            Err(FsError::limit_exceeded(LimitKind::PreadBytes, limit))
        } else {
            self.host().pread(relative(path.path), offset, len).map_err(host_error)
        };
        result.map_err(|e| e.at("read", path.path))
    }

    fn write_file(&mut self, path: VPath<'_>, data: &[u8], mode: Option<u32>, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| {
            let limit = self.limits.max_fd_write_bytes;
            if u64::try_from(data.len()).unwrap_or(u64::MAX) > limit {
                return Err(FsError::limit_exceeded(LimitKind::FdWriteBytes, limit));
            }
            if relative(path.path).is_empty() {
                return Err(Errno::EISDIR.into());
            }
            let mode = mode.unwrap_or(DEFAULT_FILE_MODE) & HOST_MODE_MASK;
            self.host().write_file(relative(path.path), data, mode).map_err(host_error)
        });
        result.map_err(|e| e.at("open", path.path))
    }

    fn mkdir(&mut self, path: VPath<'_>, recursive: bool, mode: u32, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| match relative(path.path) {
            "" if recursive => Ok(()),
            "" => Err(Errno::EEXIST.into()),
            rel => self.host().mkdir(rel, recursive, mode & HOST_MODE_MASK).map_err(host_error),
        });
        result.map_err(|e| e.at("mkdir", path.path))
    }

    fn exists(&self, path: VPath<'_>) -> bool {
        self.host().stat(relative(path.path)).is_ok()
    }

    fn stat(&self, path: VPath<'_>) -> Result<Stat, FsError> {
        self.host().stat(relative(path.path)).map(|s| host_stat(&s)).map_err(|e| host_error(e).at("stat", path.path))
    }

    fn lstat(&self, path: VPath<'_>) -> Result<Stat, FsError> {
        self.host().lstat(relative(path.path)).map(|s| host_stat(&s)).map_err(|e| host_error(e).at("lstat", path.path))
    }

    fn read_dir(&self, path: VPath<'_>) -> Result<Vec<String>, FsError> {
        let limit = self.limits.max_readdir_entries;
        let listed = self.host().read_dir(relative(path.path), limit).map_err(|error| match error.errno {
            Errno::EFBIG => FsError::limit_exceeded(LimitKind::ReaddirEntries, limit),
            _ => host_error(error),
        });
        let result = listed.and_then(|mut names| {
            if u64::try_from(names.len()).unwrap_or(u64::MAX) > limit {
                return Err(FsError::limit_exceeded(LimitKind::ReaddirEntries, limit));
            }
            names.sort();
            Ok(names)
        });
        result.map_err(|e| e.at("scandir", path.path))
    }

    fn remove_file(&mut self, path: VPath<'_>, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| match relative(path.path) {
            "" => Err(Errno::EISDIR.into()),
            rel => self.host().remove_file(rel).map_err(host_error),
        });
        result.map_err(|e| e.at("unlink", path.path))
    }

    fn remove_dir(&mut self, path: VPath<'_>, recursive: bool, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| match relative(path.path) {
            "" => Err(Errno::EBUSY.into()),
            rel => self.host().remove_dir(rel, recursive).map_err(host_error),
        });
        result.map_err(|e| e.at("rmdir", path.path))
    }

    fn rename(&mut self, from: VPath<'_>, to: VPath<'_>, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| match (relative(from.path), relative(to.path)) {
            ("", _) | (_, "") => Err(Errno::EBUSY.into()),
            (a, b) => self.host().rename(a, b).map_err(host_error),
        });
        result.map_err(|e| e.at2("rename", from.path, to.path))
    }

    fn realpath(&self, path: VPath<'_>) -> Result<String, FsError> {
        // The kernel's walk already resolved every link: an existing path is its own canonical
        // form.
        let rel = relative(path.path);
        let result = self.host().stat(rel).map(|_| format!("/{rel}")).map_err(host_error);
        result.map_err(|e| e.at("realpath", path.path))
    }

    fn symlink(&mut self, target: &str, path: VPath<'_>, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| match relative(path.path) {
            "" => Err(Errno::EEXIST.into()),
            rel => {
                // The path is canonical (the kernel resolved the links on the way), so its depth
                // is the link's real depth below the mount's root.
                let depth = rel.split('/').count().saturating_sub(1);
                symlink_target_depth(target, depth).map_err(host_error)?;
                self.host().symlink(target, rel).map_err(host_error)
            }
        });
        result.map_err(|e| e.at2("symlink", target, path.path))
    }

    fn read_link(&self, path: VPath<'_>) -> Result<String, FsError> {
        self.host().read_link(relative(path.path)).map_err(|e| host_error(e).at("readlink", path.path))
    }

    fn link(&mut self, existing: VPath<'_>, new: VPath<'_>, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| match (relative(existing.path), relative(new.path)) {
            ("", _) => Err(Errno::EPERM.into()),
            (_, "") => Err(Errno::EEXIST.into()),
            (a, b) => self.host().link(a, b).map_err(host_error),
        });
        result.map_err(|e| e.at2("link", existing.path, new.path))
    }

    fn chmod(&mut self, path: VPath<'_>, mode: u32, _now: Now) -> Result<(), FsError> {
        let mode = mode & HOST_MODE_MASK;
        let result = self.writable().and_then(|()| self.host().chmod(relative(path.path), mode).map_err(host_error));
        result.map_err(|e| e.at("chmod", path.path))
    }

    fn chown(&mut self, path: VPath<'_>, _uid: u32, _gid: u32, _now: Now) -> Result<(), FsError> {
        // Host files are never given away, whatever the host implementation would allow.
        let result = self.writable().and(Err(FsError::new(Errno::EPERM)));
        result.map_err(|e| e.at("chown", path.path))
    }

    fn utimes(
        &mut self,
        path: VPath<'_>,
        atime_ns: u64,
        mtime_ns: u64,
        follow: bool,
        _now: Now,
    ) -> Result<(), FsError> {
        let (atime_ms, mtime_ms) = (atime_ns / NS_PER_MS, mtime_ns / NS_PER_MS);
        let result = self.writable().and_then(|()| {
            // A host directory sets times through links: a link's own times are not reachable.
            if !follow && self.host().lstat(relative(path.path)).is_ok_and(|stat| stat.kind == HostFileKind::Symlink) {
                return Err(Errno::ENOTSUP.into());
            }
            self.host().utimes(relative(path.path), atime_ms, mtime_ms).map_err(host_error)
        });
        result.map_err(|e| e.at("utime", path.path))
    }

    fn truncate(&mut self, path: VPath<'_>, len: u64, _now: Now) -> Result<(), FsError> {
        let result = self.writable().and_then(|()| {
            // The host's disk is not the VM's to fill: a length is bounded like the VM's content.
            let limit = self.limits.max_filesystem_bytes;
            if len > limit {
                return Err(FsError::limit_exceeded(LimitKind::FilesystemBytes, limit));
            }
            self.host().truncate(relative(path.path), len).map_err(host_error)
        });
        result.map_err(|e| e.at("open", path.path))
    }
}
