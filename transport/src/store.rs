//! [`FileStore`]: the kernel's persistence [`Store`] as files in one directory.
//!
//! Each key is the file `<dir>/<key>.state` (keys are checked by
//! [`kernel::host::store::validate_key`]: no separators, never starting with `.`). A `put` is
//! atomic and durable:
//!
//! 1. write the value to a new temp file in the same directory (`.<key>.<pid>.<n>.tmp`), holding
//!    an exclusive `flock` on it until step 3 is done,
//! 2. `fsync` it,
//! 3. `rename` it over `<key>.state` (atomic on POSIX filesystems),
//! 4. `fsync` the directory, so the rename itself survives a crash.
//!
//! ([`replace_durably`] is that sequence, over [`DurableDir`], so the simulator runs the same
//! protocol against a disk that crashes.) A crash at any point leaves either the old value or
//! the new one, never a mix; a crash
//! before the rename leaves a stray temp file, which `get` never reads. The lock dies with its
//! writer, so a temp file nobody holds locked is a crash's leftover: [`FileStore::open`]
//! deletes those at once, while temp files of other sidecars writing to the same directory
//! right now stay. The directory is created on first use.

use kernel::host::store::{validate_key, Store, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// File name suffix of a stored value.
pub const STATE_SUFFIX: &str = ".state";
const TEMP_SUFFIX: &str = ".tmp";
/// Attempts at creating a locked temp file. Another sidecar opening the store can remove a new
/// temp file in the instant between its creation and its lock (it looks abandoned); that race
/// needs both at the same microsecond, so a second fresh name practically always succeeds, and
/// a third bounds the loop.
const TEMP_CREATE_ATTEMPTS: usize = 3;

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

    /// The store in `dir`, with the temp files of crashed writers removed.
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        let store = Self::new(dir);
        match store.remove_stale_temp_files() {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, dir = %store.dir.display(), "removed stale store temp files"),
            Err(error) => tracing::warn!(%error, dir = %store.dir.display(), "cannot scan the store directory"),
        }
        store
    }

    /// Deletes temp files left by interrupted `put`s: regular files named like this store's
    /// temp files that no writer holds locked. Symbolic links are never followed (nor removed),
    /// and a temp file being written by another sidecar is kept. Returns how many went.
    pub fn remove_stale_temp_files(&self) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            // The entry's own type (lstat): a symbolic link is not a file here.
            let regular = entry.file_type().is_ok_and(|kind| kind.is_file());
            // One that cannot be opened or locked here is not known to be abandoned: kept.
            if regular
                && name.to_str().is_some_and(is_temp_name)
                && matches!(remove_if_abandoned(&entry.path()), Ok(true))
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A new temp file for `key`, created and locked (see [`TEMP_CREATE_ATTEMPTS`]).
    fn create_temp(&self, key: &str) -> Result<(PathBuf, File), StoreError> {
        let mut temp = PathBuf::new();
        for _ in 0..TEMP_CREATE_ATTEMPTS {
            temp = self.temp_path(key);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(|e| io_error("creating", &temp, &e))?;
            file.lock().map_err(|e| io_error("locking", &temp, &e))?;
            // Removed before the lock was taken: write to a fresh name instead.
            if file.metadata().map_err(|e| io_error("reading", &temp, &e))?.nlink() > 0 {
                return Ok((temp, file));
            }
        }
        let error = io::Error::other("every new temp file was removed before it could be locked");
        Err(io_error("creating", &temp, &error))
    }

    fn put_inner(&self, key: &str, value: &[u8], crash: CrashPoint) -> Result<(), StoreError> {
        self.path_of(key)?;
        fs::create_dir_all(&self.dir).map_err(|e| io_error("creating", &self.dir, &e))?;
        replace_durably(&OsDir { store: self, crash }, key, value)
    }
}

/// The steps of an atomic, durable replacement of one key's value in a directory. The store
/// performs them on the OS ([`FileStore`]); the simulator performs the very same sequence
/// ([`replace_durably`]) on a disk that, when it crashes, keeps only what was synced.
pub trait DurableDir {
    /// A temp file being written.
    type Temp;
    /// A new, empty temp file in the directory.
    fn create_temp(&self, key: &str) -> Result<Self::Temp, StoreError>;
    fn write_all(&self, temp: &mut Self::Temp, bytes: &[u8]) -> Result<(), StoreError>;
    /// Makes the temp file's content durable.
    fn sync(&self, temp: &mut Self::Temp) -> Result<(), StoreError>;
    /// Atomically makes the temp file the key's value (its name: `<key>.state`).
    fn rename_over(&self, temp: &Self::Temp, key: &str) -> Result<(), StoreError>;
    /// Deletes a temp file that will not be renamed.
    fn remove_temp(&self, temp: Self::Temp);
    /// Makes the directory's entries (the rename) durable.
    fn sync_dir(&self) -> Result<(), StoreError>;
}

/// Replaces `key`'s value with `value` so that a crash at any moment leaves the old value or the
/// new one, never a mix, and a success means the new value survives any later crash: write a
/// temp file, sync it, rename it over the old value, sync the directory.
pub fn replace_durably<D: DurableDir>(dir: &D, key: &str, value: &[u8]) -> Result<(), StoreError> {
    let mut temp = dir.create_temp(key)?;
    let written = dir.write_all(&mut temp, value).and_then(|()| dir.sync(&mut temp));
    if let Err(error) = written {
        dir.remove_temp(temp);
        return Err(error);
    }
    if let Err(error) = dir.rename_over(&temp, key) {
        dir.remove_temp(temp);
        return Err(error);
    }
    // Dropping the temp (its lock) only after the rename: until then it is visibly in use.
    drop(temp);
    dir.sync_dir()
}

/// [`FileStore`]'s directory on the OS, with the crash points its tests stop at (a crash leaves
/// its temp file behind, as a killed process would).
struct OsDir<'a> {
    store: &'a FileStore,
    crash: CrashPoint,
}

impl DurableDir for OsDir<'_> {
    type Temp = (PathBuf, File);

    fn create_temp(&self, key: &str) -> Result<Self::Temp, StoreError> {
        self.store.create_temp(key)
    }

    fn write_all(&self, (path, file): &mut Self::Temp, bytes: &[u8]) -> Result<(), StoreError> {
        if self.crash == CrashPoint::MidWrite {
            let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
            file.write_all(half).map_err(|e| io_error("writing", path, &e))?;
            return Err(StoreError::Io("simulated crash in the middle of a write".to_owned()));
        }
        file.write_all(bytes).map_err(|e| io_error("writing", path, &e))
    }

    fn sync(&self, (path, file): &mut Self::Temp) -> Result<(), StoreError> {
        file.sync_all().map_err(|e| io_error("syncing", path, &e))
    }

    fn rename_over(&self, (path, _): &Self::Temp, key: &str) -> Result<(), StoreError> {
        if self.crash == CrashPoint::BeforeRename {
            return Err(StoreError::Io("simulated crash before the rename".to_owned()));
        }
        let target = self.store.path_of(key)?;
        fs::rename(path, &target).map_err(|e| io_error("renaming into", &target, &e))
    }

    fn remove_temp(&self, (path, _): Self::Temp) {
        if self.crash == CrashPoint::Never {
            let _ = fs::remove_file(path);
        }
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        let dir = &self.store.dir;
        File::open(dir).and_then(|dir| dir.sync_all()).map_err(|e| io_error("syncing", dir, &e))
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

/// Whether `name` is one of this store's temp files: `.<key>.<pid>.<n>.tmp` with a valid key.
fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|name| name.strip_suffix(TEMP_SUFFIX)) else {
        return false;
    };
    let mut parts = inner.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(key)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let number = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    number(n) && number(pid) && validate_key(key).is_ok()
}

/// Removes the temp file at `path` if no writer holds it locked; `Ok(false)` if it is in use or
/// no longer what was listed.
fn remove_if_abandoned(path: &Path) -> io::Result<bool> {
    // O_NOFOLLOW: a symbolic link put in its place since the listing is not followed;
    // O_NONBLOCK: nor can a FIFO put there block the open.
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        // Renamed into place or removed since the listing, or replaced by a symbolic link.
        Err(error) if error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(false)
        }
        Err(error) => return Err(error),
    };
    let locked = file.metadata()?;
    if !locked.is_file() {
        return Ok(false);
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(false),
        Err(fs::TryLockError::Error(error)) => return Err(error),
    }
    // The name may have been renamed into place and reused since it was opened: remove it only
    // if it still names the file locked here.
    let current = match fs::symlink_metadata(path) {
        Ok(current) => current,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    if (current.dev(), current.ino()) != (locked.dev(), locked.ino()) {
        return Ok(false);
    }
    fs::remove_file(path)?;
    Ok(true)
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
        // After "restarting" (opening the store again) the old value loads and the crash's
        // temp file is gone.
        let restarted = FileStore::open(&scratch.0);
        assert_eq!(temp_files(&scratch.0), 0);
        assert_eq!(restarted.get("vm", 1024).unwrap().as_deref(), Some(&b"old state"[..]));
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

    #[test]
    fn opening_removes_only_abandoned_temp_files_of_the_store() {
        let scratch = Scratch::new("stale");
        let store = FileStore::new(&scratch.0);
        store.put("kept", b"value").unwrap();
        assert!(store.put_inner("vm", b"lost", CrashPoint::MidWrite).is_err());
        assert!(store.put_inner("vm.v2", b"lost", CrashPoint::BeforeRename).is_err());
        // A temp file another sidecar is writing right now: it holds the lock.
        let busy_path = scratch.0.join(".busy.4242.0.tmp");
        let busy = File::create(&busy_path).unwrap();
        busy.lock().unwrap();
        // Not this store's naming, so not its to remove.
        let foreign =
            [".notes.tmp", "kept.1.2.tmp", ".kept.x.2.tmp", ".kept.1..tmp", "..hidden.1.2.tmp", ".kept.1.2.tmp~"];
        for name in foreign {
            fs::write(scratch.0.join(name), b"foreign").unwrap();
        }
        fs::create_dir(scratch.0.join(".dir.1.2.tmp")).unwrap();
        // A symbolic link named like a temp file: neither it nor its target is touched.
        let outside = Scratch::new("stale-outside");
        fs::create_dir_all(&outside.0).unwrap();
        fs::write(outside.0.join("target"), b"outside").unwrap();
        std::os::unix::fs::symlink(outside.0.join("target"), scratch.0.join(".link.1.2.tmp")).unwrap();

        let names = |dir: &Path| {
            let mut names: Vec<String> =
                fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names
        };
        let before = names(&scratch.0);
        assert_eq!(before.iter().filter(|name| name.starts_with(".vm")).count(), 2, "{before:?}");
        let reopened = FileStore::open(&scratch.0);
        let after = names(&scratch.0);
        let gone: Vec<&String> = before.iter().filter(|name| !after.contains(name)).collect();
        assert_eq!(gone.len(), 2, "exactly the two crashed writes went: {gone:?}");
        assert!(gone.iter().all(|name| name.starts_with(".vm.") && name.ends_with(".tmp")), "{gone:?}");
        assert!(busy_path.exists(), "a locked temp file is in use");
        assert_eq!(fs::read(outside.0.join("target")).unwrap(), b"outside");
        assert!(fs::symlink_metadata(scratch.0.join(".link.1.2.tmp")).unwrap().file_type().is_symlink());
        assert_eq!(reopened.get("kept", 100).unwrap().as_deref(), Some(&b"value"[..]));

        // Once its writer is gone (the lock released), the busy one goes too.
        drop(busy);
        assert_eq!(reopened.remove_stale_temp_files().unwrap(), 1);
        assert!(!busy_path.exists());
        // And writes still work with the locking in place.
        reopened.put("vm", b"new").unwrap();
        assert_eq!(reopened.get("vm", 100).unwrap().as_deref(), Some(&b"new"[..]));
    }
}
