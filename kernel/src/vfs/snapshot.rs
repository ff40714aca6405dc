//! Snapshot entries (a filesystem as a flat list) and sealed, shareable [`Layer`]s.

use std::sync::Arc;

use crate::clock::Now;

use super::error::{Errno, FsError};
use super::fs::{
    Data, Filesystem, FsLimits, Inode, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, PERMISSION_BITS, SYMLINK_MODE,
};
use super::path::{Mode, NodeKind, VPath};

/// What a snapshot entry is, with its payload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    File(Vec<u8>),
    Directory,
    Symlink(String),
}

/// One node of a filesystem as a flat record: its absolute path, permission bits (`0o7777`),
/// owner and kind. Times are not part of a snapshot (an import stamps its `now`); hard links
/// export as one entry per name and import as separate files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotEntry {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: EntryKind,
}

impl SnapshotEntry {
    /// A file owned by 0:0 with mode `0o644`.
    pub fn file(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self { path: path.into(), mode: DEFAULT_FILE_MODE, uid: 0, gid: 0, kind: EntryKind::File(content.into()) }
    }

    /// A directory owned by 0:0 with mode `0o755`.
    pub fn dir(path: impl Into<String>) -> Self {
        Self { path: path.into(), mode: DEFAULT_DIR_MODE, uid: 0, gid: 0, kind: EntryKind::Directory }
    }

    /// A symlink owned by 0:0 (mode `0o777`).
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Self { path: path.into(), mode: SYMLINK_MODE, uid: 0, gid: 0, kind: EntryKind::Symlink(target.into()) }
    }

    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode & PERMISSION_BITS;
        self
    }

    pub fn with_owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub(crate) fn from_inode(path: String, inode: &Inode) -> Self {
        let kind = match &inode.data {
            Data::File(bytes) => EntryKind::File(bytes.clone()),
            Data::Dir(_) => EntryKind::Directory,
            Data::Symlink(target) => EntryKind::Symlink(target.clone()),
        };
        Self { path, mode: inode.mode & PERMISSION_BITS, uid: inode.uid, gid: inode.gid, kind }
    }
}

impl Filesystem {
    /// Every node as a [`SnapshotEntry`], sorted by path (so parents come first), the root `/`
    /// included.
    pub fn export(&self) -> Vec<SnapshotEntry> {
        self.walk()
            .into_iter()
            .filter_map(|(path, ino)| self.inode(ino).ok().map(|inode| SnapshotEntry::from_inode(path, inode)))
            .collect()
    }

    /// A new filesystem holding `entries` (see [`import`](Self::import)).
    pub fn from_entries(entries: &[SnapshotEntry], limits: FsLimits, now: Now) -> Result<Self, FsError> {
        let mut fs = Self::new(limits, now);
        fs.import(entries, now)?;
        Ok(fs)
    }

    /// Applies `entries` in order, like `mkdir -p` of the parent then a create that replaces
    /// whatever was at the path (an entry for an existing directory only sets its mode and
    /// owner; `/` sets the root's). Paths are taken from the root. All or nothing.
    pub fn import(&mut self, entries: &[SnapshotEntry], now: Now) -> Result<(), FsError> {
        if self.is_read_only() {
            return Err(FsError::new(Errno::EROFS).at("import", "/"));
        }
        let mut work = self.clone();
        for entry in entries {
            work.import_entry(entry, now).map_err(|e| e.at("import", &entry.path))?;
        }
        *self = work;
        Ok(())
    }

    fn import_entry(&mut self, entry: &SnapshotEntry, now: Now) -> Result<(), FsError> {
        let path = VPath::from(entry.path.as_str());
        if let Some(parent) = parent_of(&entry.path) {
            self.mkdir(parent.as_str(), true, now)?;
        }
        let resolved = self.resolve(path, Mode::Parent)?;
        if !resolved.is_root() {
            // Clear the way: whatever is at the path, unless it is a directory staying one.
            if let Some(ino) = resolved.node {
                let is_dir = self.inode(ino)?.kind() == NodeKind::Dir;
                match (is_dir, &entry.kind) {
                    (true, EntryKind::Directory) => {}
                    (true, _) => self.remove_dir(path, true, now)?,
                    (false, _) => self.remove_file(path, now)?,
                }
            }
            match &entry.kind {
                EntryKind::File(bytes) => self.write_file_with_mode(path, bytes, entry.mode, now)?,
                EntryKind::Directory => self.mkdir_with_mode(path, true, entry.mode, now)?,
                EntryKind::Symlink(target) => self.symlink(target, path, now)?,
            }
        }
        let ino = self.resolve(path, Mode::Parent)?.node.ok_or(Errno::ENOENT)?;
        self.set_owner_mode(ino, entry.mode, entry.uid, entry.gid)
    }
}

/// The parent of a canonical absolute path (`None` for `/`).
pub(crate) fn parent_of(path: &str) -> Option<String> {
    let trimmed = path.trim_end_matches('/');
    let cut = trimmed.rfind('/')?;
    let parent = trimmed.get(..cut).unwrap_or("");
    Some(if parent.is_empty() { "/".to_owned() } else { parent.to_owned() })
}

/// An immutable filesystem image shared between overlays (cloning a `Layer` clones an `Arc`).
#[derive(Debug, Clone)]
pub struct Layer {
    fs: Arc<Filesystem>,
}

impl Layer {
    /// Seals a filesystem: it can no longer change.
    pub fn seal(mut fs: Filesystem) -> Self {
        fs.set_read_only(true);
        Self { fs: Arc::new(fs) }
    }

    /// A layer holding `entries` (see [`Filesystem::import`]).
    pub fn from_entries(entries: &[SnapshotEntry], limits: FsLimits, now: Now) -> Result<Self, FsError> {
        Ok(Self::seal(Filesystem::from_entries(entries, limits, now)?))
    }

    /// The layer's content, sorted by path (parents first).
    pub fn export(&self) -> Vec<SnapshotEntry> {
        self.fs.export()
    }

    /// Read access to the layer's tree (every mutation fails with `EROFS`).
    pub fn fs(&self) -> &Filesystem {
        &self.fs
    }

    /// Whether two layers share the same image.
    pub fn ptr_eq(a: &Layer, b: &Layer) -> bool {
        Arc::ptr_eq(&a.fs, &b.fs)
    }
}

#[cfg(test)]
mod tests {
    use super::parent_of;

    #[test]
    fn parents() {
        assert_eq!(parent_of("/"), None);
        assert_eq!(parent_of("/a"), Some("/".to_owned()));
        assert_eq!(parent_of("/a/b/"), Some("/a".to_owned()));
        assert_eq!(parent_of("a/b"), Some("a".to_owned()));
        assert_eq!(parent_of("a"), None);
    }
}
