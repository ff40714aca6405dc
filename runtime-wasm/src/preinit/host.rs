//! [`PreinitHost`]: the world a pre-initialisation sees. Nothing in it is the machine's: a
//! preopened root `/` holding only the read-only files it was given, stdio in memory, a clock
//! that reads what it was set to and seeded entropy. The same files give the same snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::abi::{
    ClockId, Dirent, Errno, Fd, FdStat, Filestat, Filetype, Prestat, Whence, OFLAGS_CREAT, OFLAGS_DIRECTORY,
    OFLAGS_TRUNC, RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_READ, RIGHTS_FD_READDIR, RIGHTS_FD_SEEK, RIGHTS_FD_TELL,
    RIGHTS_PATH_FILESTAT_GET, RIGHTS_PATH_OPEN, RIGHTS_PATH_READLINK,
};
use crate::host::{StdioHost, SysResult, WasiHost};

/// The preopened root directory's descriptor: the first after stdio, as a kernel gives it, so
/// libc's table of preopens in the snapshot matches the one every later instance gets.
const ROOT_FD: Fd = 3;
/// Most files a pre-initialisation sees (a start-up reads an archive or two).
pub const MAX_PREINIT_FILES: usize = 64;
/// Most descriptors open at once beyond stdio and the root.
const MAX_OPEN_FILES: usize = 64;
/// The rights every descriptor here has: reading, never writing.
const READ_RIGHTS: u64 = RIGHTS_FD_READ
    | RIGHTS_FD_SEEK
    | RIGHTS_FD_TELL
    | RIGHTS_FD_FILESTAT_GET
    | RIGHTS_FD_READDIR
    | RIGHTS_PATH_OPEN
    | RIGHTS_PATH_FILESTAT_GET
    | RIGHTS_PATH_READLINK;

#[derive(Debug, Clone)]
struct Open {
    /// Relative to the root, components joined by `/`; the root itself is empty.
    path: String,
    position: u64,
}

/// A read-only, in-memory world for a pre-initialisation (see the module docs).
#[derive(Debug, Clone)]
pub struct PreinitHost {
    /// Stdio, arguments, environment, clock and entropy.
    pub stdio: StdioHost,
    files: BTreeMap<String, Arc<[u8]>>,
    open: BTreeMap<Fd, Open>,
}

impl PreinitHost {
    /// A host with `stdio`'s arguments, environment, clock and seed and no files.
    pub fn new(stdio: StdioHost) -> PreinitHost {
        let mut open = BTreeMap::new();
        open.insert(ROOT_FD, Open { path: String::new(), position: 0 });
        PreinitHost { stdio, files: BTreeMap::new(), open }
    }

    /// Adds a read-only file at the absolute `path` (its directories appear with it).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a path that is not absolute or has an empty, `.` or `..` component;
    /// `ENOSPC` beyond [`MAX_PREINIT_FILES`].
    pub fn with_file(mut self, path: &str, data: Arc<[u8]>) -> Result<PreinitHost, Errno> {
        let relative = path.strip_prefix('/').ok_or(Errno::Inval)?;
        if relative.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(Errno::Inval);
        }
        if self.files.len() >= MAX_PREINIT_FILES {
            return Err(Errno::NoSpc);
        }
        self.files.insert(relative.to_owned(), data);
        Ok(self)
    }

    /// The files still open (besides the root): a snapshot holding one would hand its
    /// descriptor number to every later instance, where it means something else.
    pub fn open_files(&self) -> Vec<String> {
        self.open.iter().filter(|(fd, _)| **fd != ROOT_FD).map(|(_, open)| format!("/{}", open.path)).collect()
    }

    fn opened(&self, fd: Fd) -> Result<&Open, Errno> {
        self.open.get(&fd).ok_or(Errno::Badf)
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty()
            || self.files.keys().any(|file| file.strip_prefix(path).is_some_and(|rest| rest.starts_with('/')))
    }

    /// `path` below the directory open at `dirfd`, with `.` and `..` resolved; `..` never
    /// climbs above the root.
    fn resolve(&self, dirfd: Fd, path: &[u8]) -> Result<String, Errno> {
        let base = &self.opened(dirfd)?.path;
        if !self.is_dir(base) {
            return Err(Errno::NotDir);
        }
        let path = std::str::from_utf8(path).map_err(|_| Errno::NoEnt)?;
        if path.is_empty() {
            return Err(Errno::NoEnt);
        }
        let mut parts: Vec<&str> =
            if path.starts_with('/') { Vec::new() } else { base.split('/').filter(|p| !p.is_empty()).collect() };
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop().ok_or(Errno::NotCapable)?;
                }
                name => parts.push(name),
            }
        }
        Ok(parts.join("/"))
    }

    fn stat(&self, path: &str) -> Result<Filestat, Errno> {
        let (filetype, size, ino) = match self.files.get(path) {
            Some(data) => (Filetype::RegularFile, data.len() as u64, self.inode(path)),
            None if self.is_dir(path) => (Filetype::Directory, 0, self.inode(path)),
            None => return Err(Errno::NoEnt),
        };
        Ok(Filestat { dev: 1, ino, filetype, nlink: 1, size, atim: 0, mtim: 0, ctim: 0 })
    }

    /// A stable serial number: 1 for the root, else one past the path's rank among the files
    /// and directories (so it depends only on the names given).
    fn inode(&self, path: &str) -> u64 {
        let rank = self.files.keys().position(|file| file == path).unwrap_or(self.files.len());
        if path.is_empty() {
            1
        } else {
            2 + rank as u64
        }
    }

    fn file(&self, fd: Fd) -> Result<(&Arc<[u8]>, u64), Errno> {
        let open = self.opened(fd)?;
        match self.files.get(&open.path) {
            Some(data) => Ok((data, open.position)),
            None => Err(Errno::IsDir),
        }
    }

    /// The entries directly in the directory `dir`.
    fn children(&self, dir: &str) -> Vec<(String, Filetype)> {
        let mut entries: BTreeMap<String, Filetype> = BTreeMap::new();
        for file in self.files.keys() {
            let rest = if dir.is_empty() {
                Some(file.as_str())
            } else {
                file.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
            };
            if let Some(rest) = rest {
                match rest.split_once('/') {
                    Some((name, _)) => entries.insert(name.to_owned(), Filetype::Directory),
                    None => entries.insert(rest.to_owned(), Filetype::RegularFile),
                };
            }
        }
        entries.into_iter().collect()
    }
}

fn read_at(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let available = data.get(start..).unwrap_or_default();
    let n = buf.len().min(available.len());
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), available.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

impl WasiHost for PreinitHost {
    fn args(&self) -> &[Vec<u8>] {
        self.stdio.args()
    }

    fn environ(&self) -> &[Vec<u8>] {
        self.stdio.environ()
    }

    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno> {
        self.stdio.clock_res_get(clock)
    }

    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno> {
        self.stdio.clock_time_get(clock, precision_ns)
    }

    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        self.stdio.random_get(buf)
    }

    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        if self.open.contains_key(&fd) {
            return Err(Errno::Badf.into());
        }
        self.stdio.fd_write(fd, data)
    }

    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        if !self.open.contains_key(&fd) {
            return self.stdio.fd_read(fd, buf);
        }
        let (data, position) = self.file(fd)?;
        let read = read_at(data, buf, position);
        if let Some(open) = self.open.get_mut(&fd) {
            open.position = position.saturating_add(read as u64);
        }
        Ok(read)
    }

    fn fd_pread(&mut self, fd: Fd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let (data, _) = self.file(fd)?;
        Ok(read_at(data, buf, offset))
    }

    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno> {
        if fd == ROOT_FD {
            return Err(Errno::NotSup);
        }
        match self.open.remove(&fd) {
            Some(_) => Ok(()),
            None => self.stdio.fd_close(fd),
        }
    }

    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno> {
        let Ok(open) = self.opened(fd) else {
            return self.stdio.fd_fdstat_get(fd);
        };
        let filetype = self.stat(&open.path)?.filetype;
        Ok(FdStat { filetype, flags: 0, rights_base: READ_RIGHTS, rights_inheriting: READ_RIGHTS })
    }

    fn fd_prestat_get(&mut self, fd: Fd) -> Result<Prestat, Errno> {
        if fd == ROOT_FD {
            Ok(Prestat { name_len: 1 })
        } else {
            Err(Errno::Badf)
        }
    }

    fn fd_prestat_dir_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        if fd == ROOT_FD {
            Ok(b"/".to_vec())
        } else {
            Err(Errno::Badf)
        }
    }

    fn path_open(
        &mut self,
        dirfd: Fd,
        _lookupflags: u32,
        path: &[u8],
        oflags: u16,
        _rights_base: u64,
        _rights_inheriting: u64,
        _fdflags: u16,
    ) -> Result<Fd, Errno> {
        let path = self.resolve(dirfd, path)?;
        let stat = self.stat(&path);
        if oflags & OFLAGS_CREAT != 0 || (oflags & OFLAGS_TRUNC != 0 && stat.is_ok()) {
            return Err(Errno::Rofs);
        }
        let stat = stat?;
        if oflags & OFLAGS_DIRECTORY != 0 && stat.filetype != Filetype::Directory {
            return Err(Errno::NotDir);
        }
        // The root is in the table too.
        if self.open.len() > MAX_OPEN_FILES {
            return Err(Errno::Mfile);
        }
        let fd = (ROOT_FD + 1..).find(|fd| !self.open.contains_key(fd)).ok_or(Errno::Mfile)?;
        self.open.insert(fd, Open { path, position: 0 });
        Ok(fd)
    }

    fn fd_readdir(&mut self, fd: Fd, cookie: u64) -> Result<Vec<Dirent>, Errno> {
        let dir = self.opened(fd)?.path.clone();
        if !self.is_dir(&dir) {
            return Err(Errno::NotDir);
        }
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        let entries = self.children(&dir);
        Ok(entries
            .iter()
            .enumerate()
            .skip(start)
            .map(|(index, (name, filetype))| {
                let path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                Dirent {
                    next: index as u64 + 1,
                    ino: self.inode(&path),
                    filetype: *filetype,
                    name: name.clone().into_bytes(),
                }
            })
            .collect())
    }

    fn fd_seek(&mut self, fd: Fd, offset: i64, whence: Whence) -> Result<u64, Errno> {
        if !self.open.contains_key(&fd) {
            self.stdio.fd_fdstat_get(fd)?;
            return Err(Errno::Spipe);
        }
        let (data, position) = self.file(fd)?;
        let base = match whence {
            Whence::Set => 0,
            Whence::Cur => position,
            Whence::End => data.len() as u64,
        };
        let position = base.checked_add_signed(offset).ok_or(Errno::Inval)?;
        if let Some(open) = self.open.get_mut(&fd) {
            open.position = position;
        }
        Ok(position)
    }

    fn fd_filestat_get(&mut self, fd: Fd) -> Result<Filestat, Errno> {
        let Ok(open) = self.opened(fd) else {
            // Stdio: a character device, as CPython expects of a terminal-less stream.
            self.stdio.fd_fdstat_get(fd)?;
            return Ok(Filestat {
                dev: 0,
                ino: 0,
                filetype: Filetype::CharacterDevice,
                nlink: 1,
                size: 0,
                atim: 0,
                mtim: 0,
                ctim: 0,
            });
        };
        let path = open.path.clone();
        self.stat(&path)
    }

    fn path_filestat_get(&mut self, fd: Fd, _lookupflags: u32, path: &[u8]) -> Result<Filestat, Errno> {
        let path = self.resolve(fd, path)?;
        self.stat(&path)
    }

    fn path_readlink(&mut self, fd: Fd, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let path = self.resolve(fd, path)?;
        self.stat(&path)?;
        Err(Errno::Inval)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn host() -> PreinitHost {
        PreinitHost::new(StdioHost::new(["python"]).with_stdin(b""))
            .with_file("/usr/lib/a.zip", Arc::from(&b"archive"[..]))
            .unwrap()
    }

    #[test]
    fn files_are_readable_below_the_root_and_nothing_else_is() {
        let mut host = host();
        let fd = host.path_open(ROOT_FD, 0, b"usr/lib/../lib/a.zip", 0, 0, 0, 0).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(host.fd_read(fd, &mut buf), Ok(4));
        assert_eq!(&buf, b"arch");
        assert_eq!(host.fd_seek(fd, -2, Whence::End), Ok(5));
        assert_eq!(host.fd_read(fd, &mut buf), Ok(2));
        assert_eq!(host.fd_pread(fd, &mut buf, 0), Ok(4));
        assert_eq!(host.path_open(ROOT_FD, 0, b"../etc/passwd", 0, 0, 0, 0), Err(Errno::NotCapable));
        assert_eq!(host.path_open(ROOT_FD, 0, b"usr/missing", 0, 0, 0, 0), Err(Errno::NoEnt));
        assert_eq!(host.path_open(ROOT_FD, 0, b"usr/lib/new", OFLAGS_CREAT, 0, 0, 0), Err(Errno::Rofs));
        assert_eq!(host.fd_write(fd, b"x"), Err(Errno::Badf.into()));
        assert_eq!(host.fd_close(fd), Ok(()));
        assert_eq!(host.fd_close(fd), Err(Errno::Badf));
    }

    #[test]
    fn open_descriptors_are_bounded() {
        let mut host = host();
        for _ in 0..MAX_OPEN_FILES {
            assert!(host.path_open(ROOT_FD, 0, b"usr/lib/a.zip", 0, 0, 0, 0).is_ok());
        }
        assert_eq!(host.path_open(ROOT_FD, 0, b"usr/lib/a.zip", 0, 0, 0, 0), Err(Errno::Mfile));
        assert_eq!(host.open_files().len(), MAX_OPEN_FILES);
    }

    #[test]
    fn directories_list_what_their_files_imply() {
        let mut host = host().with_file("/usr/lib/b/c.py", Arc::from(&b""[..])).unwrap();
        let dir = host.path_open(ROOT_FD, 0, b"/usr/lib", 0, 0, 0, OFLAGS_DIRECTORY).unwrap();
        let names: Vec<_> = host.fd_readdir(dir, 0).unwrap().into_iter().map(|d| (d.name, d.filetype)).collect();
        assert_eq!(names, vec![(b"a.zip".to_vec(), Filetype::RegularFile), (b"b".to_vec(), Filetype::Directory)]);
        assert_eq!(host.fd_readdir(dir, 2).unwrap(), Vec::new());
        assert_eq!(host.path_filestat_get(ROOT_FD, 0, b"usr").unwrap().filetype, Filetype::Directory);
        assert_eq!(host.fd_prestat_dir_name(ROOT_FD), Ok(b"/".to_vec()));
        assert_eq!(host.fd_prestat_get(ROOT_FD + 1), Err(Errno::Badf));
        assert_eq!(
            PreinitHost::new(StdioHost::new(["x"])).with_file("rel/a", Arc::from(&b""[..])).err(),
            Some(Errno::Inval)
        );
    }
}
