//! [`FileStore`]: the kernel's persistence [`Store`] as files in one directory.
//!
//! Each key is the file `<dir>/<key>.state` (keys are checked by
//! [`kernel::persistence::validate_key`]: no separators, never starting with `.`). A `put` is
//! atomic and durable:
//!
//! 1. write the value to a new temp file in the same directory (`.<key>.<pid>.<n>.tmp`),
//! 2. `fsync` it,
//! 3. `rename` it over `<key>.state` (atomic on POSIX filesystems),
//! 4. `fsync` the directory, so the rename itself survives a crash.
//!
//! A crash at any point leaves either the old value or the new one, never a mix; a crash
//! before the rename leaves a stray temp file, which `get` never reads and
//! [`FileStore::remove_stray_temp_files`] deletes. The directory is created on first use.

use kernel::persistence::{validate_key, Store, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// File name suffix of a stored value.
pub const STATE_SUFFIX: &str = ".state";
const TEMP_SUFFIX: &str = ".tmp";

/// Key → file storage in one directory (see the module docs).
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    next_temp: AtomicU64,
}

/// Where a `put` stops, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPoint {
    Never,
    /// Half of the value written to the temp file.
    MidWrite,
    /// The temp file complete and synced, not yet renamed.
    BeforeRename,
}

fn io_error(what: &str, path: &Path, error: &io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {error}", path.display()))
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), next_temp: AtomicU64::new(0) }
    }

    /// The default directory: `$XDG_DATA_HOME/secure-exec-sidecar/state`, else
    /// `$HOME/.local/share/secure-exec-sidecar/state`, else `<temp dir>/secure-exec-sidecar-state`.
    pub fn default_dir() -> PathBuf {
        let data_home =
            std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from).or_else(|| {
                std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".local/share"))
            });
        match data_home {
            Some(dir) => dir.join("secure-exec-sidecar").join("state"),
            None => std::env::temp_dir().join("secure-exec-sidecar-state"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key).map_err(|error| StoreError::Io(error.to_string()))?;
        Ok(self.dir.join(format!("{key}{STATE_SUFFIX}")))
    }

    fn temp_path(&self, key: &str) -> PathBuf {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!(".{key}.{}.{n}{TEMP_SUFFIX}", std::process::id()))
    }

    /// Deletes temp files left by interrupted `put`s that are older than `min_age` (younger
    /// ones may belong to another sidecar writing right now). Returns how many went.
    pub fn remove_stray_temp_files(&self, min_age: Duration) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with('.') && name.ends_with(TEMP_SUFFIX)) {
                continue;
            }
            let old_enough = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| now.duration_since(modified).unwrap_or_default() >= min_age);
            if old_enough && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn put_inner(&self, key: &str, value: &[u8], crash: CrashPoint) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        fs::create_dir_all(&self.dir).map_err(|e| io_error("creating", &self.dir, &e))?;
        let temp = self.temp_path(key);
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(|e| io_error("creating", &temp, &e))?;
            if crash == CrashPoint::MidWrite {
                let half = value.get(..value.len() / 2).unwrap_or_default();
                file.write_all(half).map_err(|e| io_error("writing", &temp, &e))?;
                return Err(StoreError::Io("simulated crash in the middle of a write".to_owned()));
            }
            file.write_all(value).map_err(|e| io_error("writing", &temp, &e))?;
            file.sync_all().map_err(|e| io_error("syncing", &temp, &e))
        })();
        if let Err(error) = written {
            if crash == CrashPoint::Never {
                let _ = fs::remove_file(&temp);
            }
            return Err(error);
        }
        if crash == CrashPoint::BeforeRename {
            return Err(StoreError::Io("simulated crash before the rename".to_owned()));
        }
        if let Err(error) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(io_error("renaming into", &path, &error));
        }
        // The rename is durable only once the directory entry is.
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(|e| io_error("syncing", &self.dir, &e))
    }
}

impl Store for FileStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("opening", &path, &error)),
        };
        let size = file.metadata().map_err(|e| io_error("reading", &path, &e))?.len();
        if size > max_bytes {
            return Err(StoreError::TooLarge { size, limit: max_bytes });
        }
        let mut value = Vec::new();
        file.take(max_bytes.saturating_add(1)).read_to_end(&mut value).map_err(|e| io_error("reading", &path, &e))?;
        let read = u64::try_from(value.len()).unwrap_or(u64::MAX);
        if read > max_bytes {
            return Err(StoreError::TooLarge { size: read, limit: max_bytes });
        }
        Ok(Some(value))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_inner(key, value, CrashPoint::Never)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("sidecar-store-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn temp_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    }

    #[test]
    fn put_get_round_trip_and_bounds() {
        let scratch = Scratch::new("roundtrip");
        let store = FileStore::new(scratch.0.join("nested/state"));
        assert_eq!(store.get("k", 100).unwrap(), None, "a missing directory is an empty store");
        store.put("k", b"first").unwrap();
        store.put("k", b"second value").unwrap();
        assert_eq!(store.get("k", 100).unwrap().as_deref(), Some(&b"second value"[..]));
        assert_eq!(store.get("k", 3), Err(StoreError::TooLarge { size: 12, limit: 3 }));
        assert!(scratch.0.join("nested/state/k.state").is_file());
        assert_eq!(temp_files(&scratch.0.join("nested/state")), 0, "no temp file is left behind");
        for bad in ["../escape", "a/b", ".hidden", ""] {
            assert!(store.put(bad, b"x").is_err(), "{bad:?}");
        }
        assert!(!scratch.0.join("nested/escape.state").exists());
    }

    #[test]
    fn a_crash_before_the_rename_keeps_the_old_value() {
        let scratch = Scratch::new("crash-rename");
        let store = FileStore::new(&scratch.0);
        store.put("vm", b"old state").unwrap();
        assert!(store.put_inner("vm", b"new state", CrashPoint::BeforeRename).is_err());
        assert_eq!(temp_files(&scratch.0), 1, "the crash left its temp file");
        // After "restarting" (a new store on the same directory) the old value loads.
        let restarted = FileStore::new(&scratch.0);
        assert_eq!(restarted.get("vm", 1024).unwrap().as_deref(), Some(&b"old state"[..]));
        // Young temp files are kept (another writer may own them); old ones are cleaned.
        assert_eq!(restarted.remove_stray_temp_files(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(restarted.remove_stray_temp_files(Duration::ZERO).unwrap(), 1);
        assert_eq!(temp_files(&scratch.0), 0);
        restarted.put("vm", b"new state").unwrap();
        assert_eq!(restarted.get("vm", 1024).unwrap().as_deref(), Some(&b"new state"[..]));
    }

    #[test]
    fn a_crash_mid_write_keeps_the_old_value() {
        let scratch = Scratch::new("crash-write");
        let store = FileStore::new(&scratch.0);
        store.put("vm", b"old state").unwrap();
        assert!(store.put_inner("vm", &[7u8; 4096], CrashPoint::MidWrite).is_err());
        assert_eq!(store.get("vm", 1 << 20).unwrap().as_deref(), Some(&b"old state"[..]));
        // A first write that crashes leaves nothing loadable.
        assert!(store.put_inner("fresh", b"value", CrashPoint::BeforeRename).is_err());
        assert_eq!(store.get("fresh", 1024).unwrap(), None);
    }
}
