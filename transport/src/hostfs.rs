//! [`OsHostFs`]: the kernel's [`HostFs`] on the real OS, each `host_dir` mount confined to its
//! directory.
//!
//! Confinement, for every operation on a path relative to the mount's directory:
//!
//! 1. the directory is canonicalised once, when the mount opens;
//! 2. the relative path must be normalised: no empty, `.` or `..` component, no NUL (the kernel
//!    never sends one; anything else is refused with `EACCES`);
//! 3. the directory holding the final component is canonicalised (every symlink on the way
//!    resolved by the OS) and must still lie inside the root, else `EACCES`;
//! 4. operations that follow the final component canonicalise it too and check it the same
//!    way (so a symlink, or a chain of them, can only lead to somewhere inside the root);
//!    operations on the entry itself (lstat, unlink, rename, readlink, link) act on
//!    `<canonical parent>/<name>` and never follow it;
//! 5. writes refuse a final component that is a symlink (`symlink_metadata`) and open with
//!    `O_NOFOLLOW`; new symlinks must have relative targets that stay inside the root.
//!
//! A host process racing the sidecar (swapping a checked directory for a symlink between the
//! check and the use) is outside this model: the directory belongs to the host.

use kernel::hostfs::{HostDir, HostFileKind, HostFs, HostFsError, HostResult, HostStat};
use kernel::vfs::Errno;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Opens host directories for `host_dir` mounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsHostFs;

impl HostFs for OsHostFs {
    fn open_dir(&self, host_path: &str) -> HostResult<Box<dyn HostDir>> {
        Ok(Box::new(OsHostDir::open(Path::new(host_path))?))
    }
}

/// One host directory, confined (see the module docs).
#[derive(Debug, Clone)]
pub struct OsHostDir {
    root: PathBuf,
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
        _ => match error.kind() {
            io::ErrorKind::NotFound => Errno::ENOENT,
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

fn ms(secs: i64, nanos: i64) -> u64 {
    let secs = u64::try_from(secs).unwrap_or(0);
    let millis = u64::try_from(nanos).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1000).saturating_add(millis)
}

fn host_stat(meta: &fs::Metadata) -> HostStat {
    let file_type = meta.file_type();
    let kind = if file_type.is_symlink() {
        HostFileKind::Symlink
    } else if file_type.is_dir() {
        HostFileKind::Directory
    } else {
        HostFileKind::File
    };
    let birthtime_ms = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    HostStat {
        kind,
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

impl OsHostDir {
    /// Canonicalises `path` once; it must be an existing directory.
    pub fn open(path: &Path) -> HostResult<Self> {
        let root = fs::canonicalize(path).map_err(io_error)?;
        if !fs::metadata(&root).map_err(io_error)?.is_dir() {
            return Err(HostFsError::with_detail(Errno::ENOTDIR, format!("{} is not a directory", root.display())));
        }
        Ok(Self { root })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
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

    fn inside(&self, path: &Path) -> HostResult<()> {
        if path.starts_with(&self.root) {
            Ok(())
        } else {
            Err(escape())
        }
    }

    /// The canonical directory holding `rel`'s final component (checked inside the root) and
    /// that component (`None` for the root itself).
    fn parent(&self, rel: &str) -> HostResult<(PathBuf, Option<String>)> {
        let components = Self::components(rel)?;
        let Some((last, init)) = components.split_last() else {
            return Ok((self.root.clone(), None));
        };
        let mut dir = self.root.clone();
        dir.extend(init);
        let dir = fs::canonicalize(&dir).map_err(io_error)?;
        self.inside(&dir)?;
        Ok((dir, Some((*last).to_owned())))
    }

    /// The entry itself (its final component not followed).
    fn entry(&self, rel: &str) -> HostResult<PathBuf> {
        let (dir, name) = self.parent(rel)?;
        Ok(match name {
            Some(name) => dir.join(name),
            None => dir,
        })
    }

    /// Where the entry leads (a final symlink, or chain, followed: only inside the root).
    fn resolved(&self, rel: &str) -> HostResult<PathBuf> {
        let entry = self.entry(rel)?;
        let real = fs::canonicalize(&entry).map_err(io_error)?;
        self.inside(&real)?;
        Ok(real)
    }

    /// Opens a resolved (symlink-free) path without following a symlink swapped in since.
    fn open_resolved(&self, rel: &str, options: &mut OpenOptions) -> HostResult<File> {
        let path = self.resolved(rel)?;
        options.custom_flags(libc::O_NOFOLLOW).open(path).map_err(io_error)
    }

    /// Refuses a final component that is a symlink (writes never go through links).
    fn not_a_symlink(path: &Path) -> HostResult<Option<fs::Metadata>> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                Err(HostFsError::with_detail(Errno::EACCES, "refusing to write through a symlink"))
            }
            Ok(meta) => Ok(Some(meta)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(error)),
        }
    }
}

impl HostDir for OsHostDir {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        let file = self.open_resolved(path, OpenOptions::new().read(true))?;
        let meta = file.metadata().map_err(io_error)?;
        if meta.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        if meta.len() > max_bytes {
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
        let entry = self.entry(path)?;
        if Self::not_a_symlink(&entry)?.is_some_and(|meta| meta.is_dir()) {
            return Err(Errno::EISDIR.into());
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode & 0o7777)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&entry)
            .map_err(io_error)?;
        file.write_all(data).map_err(io_error)
    }

    fn stat(&self, path: &str) -> HostResult<HostStat> {
        let real = self.resolved(path)?;
        fs::metadata(real).map(|meta| host_stat(&meta)).map_err(io_error)
    }

    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        let entry = self.entry(path)?;
        fs::symlink_metadata(entry).map(|meta| host_stat(&meta)).map_err(io_error)
    }

    fn read_dir(&self, path: &str, max_entries: u64) -> HostResult<Vec<String>> {
        let real = self.resolved(path)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(real).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if u64::try_from(names.len()).unwrap_or(u64::MAX) >= max_entries {
                return Err(Errno::EFBIG.into());
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn mkdir(&self, path: &str, recursive: bool, mode: u32) -> HostResult<()> {
        let mut builder = fs::DirBuilder::new();
        builder.mode(mode & 0o7777);
        if !recursive {
            return builder.create(self.entry(path)?).map_err(io_error);
        }
        let components = Self::components(path)?;
        for end in 1..=components.len() {
            let prefix = components.get(..end).unwrap_or_default().join("/");
            match self.resolved(&prefix) {
                Ok(real) if real.is_dir() => continue,
                Ok(_) => return Err(Errno::EEXIST.into()),
                Err(error) if error.errno == Errno::ENOENT => {
                    let entry = self.entry(&prefix)?;
                    if fs::symlink_metadata(&entry).is_ok() {
                        // A dangling symlink is in the way.
                        return Err(Errno::EEXIST.into());
                    }
                    builder.create(entry).map_err(io_error)?;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &str) -> HostResult<()> {
        let entry = self.entry(path)?;
        if fs::symlink_metadata(&entry).map_err(io_error)?.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        fs::remove_file(entry).map_err(io_error)
    }

    fn remove_dir(&self, path: &str, recursive: bool) -> HostResult<()> {
        let entry = self.entry(path)?;
        if entry == self.root {
            return Err(Errno::EBUSY.into());
        }
        let meta = fs::symlink_metadata(&entry).map_err(io_error)?;
        if !meta.is_dir() {
            return Err(Errno::ENOTDIR.into());
        }
        // `remove_dir_all` never follows symlinks inside the tree.
        if recursive {
            fs::remove_dir_all(entry).map_err(io_error)
        } else {
            fs::remove_dir(entry).map_err(io_error)
        }
    }

    fn rename(&self, from: &str, to: &str) -> HostResult<()> {
        let (from, to) = (self.entry(from)?, self.entry(to)?);
        if from == self.root || to == self.root {
            return Err(Errno::EBUSY.into());
        }
        fs::rename(from, to).map_err(io_error)
    }

    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        let mut file = self.open_resolved(path, OpenOptions::new().read(true))?;
        if file.metadata().map_err(io_error)?.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        let mut bytes = Vec::new();
        file.take(len).read_to_end(&mut bytes).map_err(io_error)?;
        Ok(bytes)
    }

    fn truncate(&self, path: &str, len: u64) -> HostResult<()> {
        let file = self.open_resolved(path, OpenOptions::new().write(true))?;
        file.set_len(len).map_err(io_error)
    }

    fn realpath(&self, path: &str) -> HostResult<String> {
        let real = self.resolved(path)?;
        let inner = real.strip_prefix(&self.root).map_err(|_| escape())?;
        inner.to_str().map(str::to_owned).ok_or_else(|| HostFsError::with_detail(Errno::EIO, "path is not UTF-8"))
    }

    fn symlink(&self, target: &str, path: &str) -> HostResult<()> {
        // The target must stay inside the root when read relative to the link's directory
        // (absolute targets would mean the host's `/`, not the VM's).
        if target.starts_with('/') || target.contains('\0') {
            return Err(escape());
        }
        let mut depth = Self::components(path)?.len().saturating_sub(1);
        for component in target.split('/') {
            match component {
                "" | "." => {}
                ".." => depth = depth.checked_sub(1).ok_or_else(escape)?,
                _ => depth = depth.saturating_add(1),
            }
        }
        let entry = self.entry(path)?;
        std::os::unix::fs::symlink(target, entry).map_err(io_error)
    }

    fn read_link(&self, path: &str) -> HostResult<String> {
        let target = fs::read_link(self.entry(path)?).map_err(io_error)?;
        target.to_str().map(str::to_owned).ok_or_else(|| HostFsError::with_detail(Errno::EIO, "target is not UTF-8"))
    }

    fn link(&self, existing: &str, new: &str) -> HostResult<()> {
        let (existing, new) = (self.entry(existing)?, self.entry(new)?);
        if fs::symlink_metadata(&existing).map_err(io_error)?.is_dir() {
            return Err(Errno::EPERM.into());
        }
        fs::hard_link(existing, new).map_err(io_error)
    }

    fn chmod(&self, path: &str, mode: u32) -> HostResult<()> {
        let real = self.resolved(path)?;
        fs::set_permissions(real, fs::Permissions::from_mode(mode & 0o7777)).map_err(io_error)
    }

    fn chown(&self, path: &str, uid: u32, gid: u32) -> HostResult<()> {
        let real = self.resolved(path)?;
        std::os::unix::fs::chown(real, Some(uid), Some(gid)).map_err(io_error)
    }

    fn utimes(&self, path: &str, atime_ms: u64, mtime_ms: u64) -> HostResult<()> {
        let file = self.open_resolved(path, OpenOptions::new().read(true))?;
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
    use std::os::unix::fs::symlink;

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
}
