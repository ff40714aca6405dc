//! In-memory stand-ins for the injected I/O: a host directory tree and failing stores.

use kernel::host::fs::{HostDir, HostFileKind, HostFs, HostFsError, HostResult, HostStat};
use kernel::host::store::{MemoryStore, Store, StoreError};
use kernel::vfs::Errno;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(Vec<u8>),
    Dir,
}

/// Host directories as maps of relative paths; every path the kernel passes is recorded.
#[derive(Debug, Default, Clone)]
pub struct FakeHostFs {
    pub dirs: Arc<Mutex<BTreeMap<String, BTreeMap<String, Node>>>>,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl FakeHostFs {
    /// A host with one directory `host_path` holding `files`.
    pub fn with_dir(host_path: &str, files: &[(&str, &str)]) -> Self {
        let fake = Self::default();
        let mut tree = BTreeMap::new();
        tree.insert(String::new(), Node::Dir);
        for (path, content) in files {
            tree.insert((*path).to_owned(), Node::File(content.as_bytes().to_vec()));
        }
        fake.dirs.lock().unwrap().insert(host_path.to_owned(), tree);
        fake
    }

    pub fn file(&self, host_path: &str, path: &str) -> Option<Vec<u8>> {
        match self.dirs.lock().unwrap().get(host_path)?.get(path)? {
            Node::File(bytes) => Some(bytes.clone()),
            Node::Dir => None,
        }
    }

    pub fn tree(&self, host_path: &str) -> BTreeMap<String, Node> {
        self.dirs.lock().unwrap().get(host_path).cloned().unwrap_or_default()
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl HostFs for FakeHostFs {
    fn open_dir(&self, host_path: &str) -> HostResult<Box<dyn HostDir>> {
        if !self.dirs.lock().unwrap().contains_key(host_path) {
            return Err(HostFsError::with_detail(Errno::ENOENT, format!("no host directory {host_path}")));
        }
        Ok(Box::new(FakeDir { fs: self.clone(), key: host_path.to_owned() }))
    }
}

#[derive(Debug)]
struct FakeDir {
    fs: FakeHostFs,
    key: String,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

impl FakeDir {
    fn with<T>(&self, path: &str, f: impl FnOnce(&mut BTreeMap<String, Node>) -> HostResult<T>) -> HostResult<T> {
        self.fs.seen.lock().unwrap().push(path.to_owned());
        // The kernel only ever passes normalised relative paths.
        assert!(
            !path.starts_with('/') && path.split('/').all(|c| c != ".." && c != ".") && !path.contains("//"),
            "un-normalised host path {path:?}"
        );
        let mut dirs = self.fs.dirs.lock().unwrap();
        let tree = dirs.get_mut(&self.key).unwrap();
        f(tree)
    }
}

fn need_dir(tree: &BTreeMap<String, Node>, path: &str) -> HostResult<()> {
    match tree.get(path) {
        Some(Node::Dir) => Ok(()),
        Some(Node::File(_)) => Err(Errno::ENOTDIR.into()),
        None => Err(Errno::ENOENT.into()),
    }
}

fn stat_of(node: &Node) -> HostStat {
    match node {
        Node::File(bytes) => HostStat::new(HostFileKind::File, 0o644, u64::try_from(bytes.len()).unwrap()),
        Node::Dir => HostStat::new(HostFileKind::Directory, 0o755, 4096),
    }
}

impl HostDir for FakeDir {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        self.with(path, |tree| match tree.get(path) {
            Some(Node::File(bytes)) if u64::try_from(bytes.len()).unwrap() > max_bytes => Err(Errno::EFBIG.into()),
            Some(Node::File(bytes)) => Ok(bytes.clone()),
            Some(Node::Dir) => Err(Errno::EISDIR.into()),
            None => Err(Errno::ENOENT.into()),
        })
    }

    fn write_file(&self, path: &str, data: &[u8], _mode: u32) -> HostResult<()> {
        self.with(path, |tree| {
            need_dir(tree, parent(path))?;
            if tree.get(path) == Some(&Node::Dir) {
                return Err(Errno::EISDIR.into());
            }
            tree.insert(path.to_owned(), Node::File(data.to_vec()));
            Ok(())
        })
    }

    fn stat(&self, path: &str) -> HostResult<HostStat> {
        self.with(path, |tree| tree.get(path).map(stat_of).ok_or_else(|| Errno::ENOENT.into()))
    }

    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        self.stat(path)
    }

    fn read_dir(&self, path: &str, _max_entries: u64) -> HostResult<Vec<String>> {
        self.with(path, |tree| {
            need_dir(tree, path)?;
            Ok(tree
                .keys()
                .filter(|key| !key.is_empty() && parent(key) == path)
                .map(|key| key.rsplit('/').next().unwrap().to_owned())
                .collect())
        })
    }

    fn mkdir(&self, path: &str, recursive: bool, _mode: u32) -> HostResult<()> {
        self.with(path, |tree| {
            if recursive {
                let mut prefix = String::new();
                for component in path.split('/') {
                    prefix = if prefix.is_empty() { component.to_owned() } else { format!("{prefix}/{component}") };
                    match tree.get(&prefix) {
                        Some(Node::Dir) => {}
                        Some(Node::File(_)) => return Err(Errno::EEXIST.into()),
                        None => {
                            tree.insert(prefix.clone(), Node::Dir);
                        }
                    }
                }
                return Ok(());
            }
            need_dir(tree, parent(path))?;
            if tree.contains_key(path) {
                return Err(Errno::EEXIST.into());
            }
            tree.insert(path.to_owned(), Node::Dir);
            Ok(())
        })
    }

    fn remove_file(&self, path: &str) -> HostResult<()> {
        self.with(path, |tree| match tree.get(path) {
            Some(Node::File(_)) => {
                tree.remove(path);
                Ok(())
            }
            Some(Node::Dir) => Err(Errno::EISDIR.into()),
            None => Err(Errno::ENOENT.into()),
        })
    }

    fn remove_dir(&self, path: &str, recursive: bool) -> HostResult<()> {
        self.with(path, |tree| {
            need_dir(tree, path)?;
            let prefix = format!("{path}/");
            let children: Vec<String> = tree.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
            if !children.is_empty() && !recursive {
                return Err(Errno::ENOTEMPTY.into());
            }
            for child in children {
                tree.remove(&child);
            }
            tree.remove(path);
            Ok(())
        })
    }

    fn rename(&self, from: &str, to: &str) -> HostResult<()> {
        self.with(from, |tree| {
            let node = tree.get(from).cloned().ok_or(HostFsError::new(Errno::ENOENT))?;
            need_dir(tree, parent(to))?;
            if node == Node::Dir {
                return Err(Errno::ENOSYS.into());
            }
            tree.remove(from);
            tree.insert(to.to_owned(), node);
            Ok(())
        })
    }

    fn truncate(&self, path: &str, len: u64) -> HostResult<()> {
        self.with(path, |tree| match tree.get_mut(path) {
            Some(Node::File(bytes)) => {
                bytes.resize(usize::try_from(len).unwrap(), 0);
                Ok(())
            }
            Some(Node::Dir) => Err(Errno::EISDIR.into()),
            None => Err(Errno::ENOENT.into()),
        })
    }
}

/// A store that keeps the previous value when a `put` fails (like the atomic file store), and
/// can be told to fail the next `put`s.
#[derive(Debug, Default)]
pub struct FailingStore {
    pub inner: MemoryStore,
    pub fail_puts: AtomicBool,
}

impl Store for FailingStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key, max_bytes)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.fail_puts.load(Ordering::SeqCst) {
            // Half the value went to a staging area that is discarded; the committed value stays.
            let _staged = &value[..value.len() / 2];
            return Err(StoreError::Io("disk full after a partial write".into()));
        }
        self.inner.put(key, value)
    }
}

/// A store that is *not* atomic: a failing `put` leaves the torn half of the new value.
#[derive(Debug, Default)]
pub struct TearingStore {
    pub inner: MemoryStore,
    pub tear_puts: AtomicBool,
}

impl Store for TearingStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key, max_bytes)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.tear_puts.load(Ordering::SeqCst) {
            self.inner.put(key, &value[..value.len() / 2])?;
            return Err(StoreError::Io("crashed mid-write".into()));
        }
        self.inner.put(key, value)
    }
}
