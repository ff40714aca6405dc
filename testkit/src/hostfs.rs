//! A host filesystem in memory, for tests and the simulator: host directories as maps of
//! relative paths, every path the kernel passes checked (normalised, relative) and recorded,
//! optional directories made on demand and injected `EIO`s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a poisoned lock or a kernel passing an un-normalised path is a bug to stop at"
)]

use kernel::host::fs::{HostDir, HostFileKind, HostFs, HostFsError, HostResult, HostStat};
use kernel::vfs::Errno;
use std::collections::BTreeMap;
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
    /// Directories under this prefix exist (empty) the first time they are opened.
    pub made_on_demand: Option<String>,
    /// Injected failures of file reads, writes and removals (the simulator's).
    pub faults: Arc<Mutex<Option<Faults>>>,
}

/// Failures a [`FakeHostFs`] injects: each read, write or removal of a file fails with `EIO`,
/// changing nothing, with probability `per_mille / 1000`, drawn from a seeded generator.
#[derive(Debug, Clone)]
pub struct Faults {
    pub per_mille: u64,
    state: u64,
}

impl Faults {
    pub fn new(seed: u64, per_mille: u64) -> Self {
        Self { per_mille, state: seed | 1 }
    }

    fn strike(&mut self) -> bool {
        // xorshift64: deterministic per seed, no dependency.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % 1000 < self.per_mille
    }
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

    /// A host where every directory under `prefix` exists, empty at first, and file operations
    /// fail as `faults` says.
    pub fn on_demand(prefix: &str, faults: Faults) -> Self {
        Self { made_on_demand: Some(prefix.to_owned()), faults: Arc::new(Mutex::new(Some(faults))), ..Self::default() }
    }

    /// Whether the next file operation fails (injected).
    fn strikes(&self) -> bool {
        self.faults.lock().unwrap().as_mut().is_some_and(Faults::strike)
    }
}

impl HostFs for FakeHostFs {
    fn open_dir(&self, host_path: &str) -> HostResult<Arc<dyn HostDir>> {
        if self.made_on_demand.as_deref().is_some_and(|prefix| host_path.starts_with(prefix)) {
            let mut dirs = self.dirs.lock().unwrap();
            dirs.entry(host_path.to_owned()).or_insert_with(|| BTreeMap::from([(String::new(), Node::Dir)]));
        }
        if !self.dirs.lock().unwrap().contains_key(host_path) {
            return Err(HostFsError::with_detail(Errno::ENOENT, format!("no host directory {host_path}")));
        }
        Ok(Arc::new(FakeDir { fs: self.clone(), key: host_path.to_owned() }))
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
    fn fail_now_and_then(&self) -> HostResult<()> {
        if self.fs.strikes() {
            return Err(HostFsError::with_detail(Errno::EIO, "injected host filesystem failure"));
        }
        Ok(())
    }

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
        self.fail_now_and_then()?;
        self.with(path, |tree| match tree.get(path) {
            Some(Node::File(bytes)) if u64::try_from(bytes.len()).unwrap() > max_bytes => Err(Errno::EFBIG.into()),
            Some(Node::File(bytes)) => Ok(bytes.clone()),
            Some(Node::Dir) => Err(Errno::EISDIR.into()),
            None => Err(Errno::ENOENT.into()),
        })
    }

    fn write_file(&self, path: &str, data: &[u8], _mode: u32) -> HostResult<()> {
        self.fail_now_and_then()?;
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
        self.fail_now_and_then()?;
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
