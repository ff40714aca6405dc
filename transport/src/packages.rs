//! Command packages from the host's disk: ConfigureVm's `software` roots opened as `.aospkg`
//! archives, each parsed once and shared by every VM that loads it.
//!
//! A root may be the archive itself, a directory holding `package.aospkg` (the original's
//! layout), or an installed npm package holding `dist/package.aospkg` (what `npm install
//! @agentos-software/coreutils` leaves). The archive stays open; files are read from it with
//! positioned reads when a guest reads them, never copied.
//!
//! Packages are part of the installation, like the sidecar binary: a trace records the
//! ConfigureVm that names them, and replay opens the same roots again (a changed archive shows
//! up as a divergence at the first output that differs).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use kernel::host::package::{Package, PackageBytes, PackageError, PackageSource};
use kernel::vfs::Errno;

/// Distinct archives remembered at once (weakly: an entry keeps nothing alive). Past this, dead
/// entries are dropped first; live ones stay shared, so the bound only limits the map.
pub const MAX_REMEMBERED_PACKAGES: usize = 1024;

/// Where a root's archive is, tried in order.
const ARCHIVE_CANDIDATES: [&str; 3] = ["", "package.aospkg", "dist/package.aospkg"];

/// What identifies one version of an archive file: a replaced or rewritten file is parsed anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

/// Opens packages from host paths.
#[derive(Debug, Default)]
pub struct OsPackages {
    opened: Mutex<BTreeMap<PathBuf, (FileIdentity, Weak<Package>)>>,
}

impl OsPackages {
    pub fn new() -> Self {
        Self::default()
    }
}

impl PackageSource for OsPackages {
    fn open(&self, root: &str) -> Result<Arc<Package>, PackageError> {
        let (path, file) = open_archive(root)?;
        let origin = path.display().to_string();
        let io = |error: std::io::Error| PackageError::Io { origin: origin.clone(), detail: error.to_string() };
        let metadata = file.metadata().map_err(io)?;
        let identity = FileIdentity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
        };
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, package)) = opened.get(&path) {
            if let Some(package) = package.upgrade().filter(|_| *known == identity) {
                return Ok(package);
            }
        }
        let bytes = Arc::new(ArchiveFile { file, len: identity.len, origin });
        let package = Arc::new(Package::parse(bytes)?);
        if opened.len() >= MAX_REMEMBERED_PACKAGES {
            opened.retain(|_, (_, package)| package.strong_count() > 0);
        }
        if opened.len() < MAX_REMEMBERED_PACKAGES {
            opened.insert(path, (identity, Arc::downgrade(&package)));
        }
        Ok(package)
    }
}

/// The first candidate under `root` that is a regular file, opened. `O_NONBLOCK`: a FIFO named
/// as a root cannot block the sidecar's loop (it is then refused as not a regular file).
fn open_archive(root: &str) -> Result<(PathBuf, File), PackageError> {
    let mut last_error = None;
    for candidate in ARCHIVE_CANDIDATES {
        let path = if candidate.is_empty() { PathBuf::from(root) } else { Path::new(root).join(candidate) };
        match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(&path) {
            Ok(file) => match file.metadata() {
                Ok(metadata) if metadata.is_file() => return Ok((path, file)),
                Ok(_) => {}
                Err(error) => last_error = Some(error),
            },
            Err(error) => last_error = Some(error),
        }
    }
    let detail = match last_error {
        Some(error) if error.kind() != std::io::ErrorKind::NotFound => error.to_string(),
        _ => "no .aospkg file there, nor package.aospkg or dist/package.aospkg inside it".to_owned(),
    };
    Err(PackageError::Io { origin: root.to_owned(), detail })
}

/// An open archive.
#[derive(Debug)]
struct ArchiveFile {
    file: File,
    len: u64,
    origin: String,
}

impl PackageBytes for ArchiveFile {
    fn len_bytes(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        // A file cut short after it was opened reads short: EIO, never stale or zeroed bytes.
        self.file.read_exact_at(buf, offset).map_err(|_| Errno::EIO)
    }

    fn origin(&self) -> &str {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use super::*;
    use testkit::packages::PackageWriter;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("packages-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_root_may_be_the_archive_its_directory_or_an_npm_package() {
        let dir = temp_dir("roots");
        let bytes = PackageWriter::new("tools", "1.0").file("/bin/t", 0o755, b"\0asm").build();
        std::fs::create_dir_all(dir.join("npm/dist")).unwrap();
        std::fs::write(dir.join("npm/dist/package.aospkg"), &bytes).unwrap();
        std::fs::create_dir_all(dir.join("plain")).unwrap();
        std::fs::write(dir.join("plain/package.aospkg"), &bytes).unwrap();
        let packages = OsPackages::new();
        for root in ["npm", "plain", "plain/package.aospkg"] {
            let package = packages.open(dir.join(root).to_str().unwrap()).expect(root);
            assert_eq!(package.name, "tools");
        }
        let missing = packages.open(dir.join("nothing").to_str().unwrap()).expect_err("missing");
        assert!(missing.to_string().contains("no .aospkg file there"), "{missing}");
    }

    #[test]
    fn one_archive_is_parsed_once_while_in_use_and_again_once_replaced() {
        let dir = temp_dir("shared");
        let path = dir.join("p.aospkg");
        std::fs::write(&path, PackageWriter::new("tools", "1.0").file("/bin/t", 0o755, b"\0asm").build()).unwrap();
        let packages = OsPackages::new();
        let first = packages.open(path.to_str().unwrap()).unwrap();
        let second = packages.open(path.to_str().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let replacement = dir.join("p2.aospkg");
        std::fs::write(&replacement, PackageWriter::new("tools", "2.0").file("/bin/t", 0o755, b"\0asm").build())
            .unwrap();
        std::fs::rename(&replacement, &path).unwrap();
        let third = packages.open(path.to_str().unwrap()).unwrap();
        assert_eq!(third.version, "2.0");
    }

    #[test]
    fn a_fifo_root_is_refused_without_blocking() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("package.aospkg");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|status| status.success()) {
            return; // no mkfifo here: nothing to check
        }
        let error = OsPackages::new().open(fifo.to_str().unwrap()).expect_err("a FIFO is not an archive");
        assert!(matches!(error, PackageError::Io { .. }), "{error}");
    }
}
