//! The copy-up [`Overlay`] of a writable filesystem over shared layers.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::clock::Now;

use super::error::{Errno, FsError, LimitKind};
use super::fs::{
    len64, Created, Data, Filesystem, Inode, Stat, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, FILESYSTEM_DEV, ROOT_INO,
};
use super::path::{self, Mode, Namespace, NodeKind, Resolved, VPath};
use super::snapshot::{parent_of, EntryKind, Layer, SnapshotEntry};

/// A node of the merged tree: its upper inode (if any) and the lower inodes merged under it
/// (`(layer index, ino)`, highest precedence first). The topmost one is the node's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ONode {
    upper: Option<u64>,
    lowers: Vec<(usize, u64)>,
}

/// Where a file opened through an overlay lives (see [`Overlay::open_file`]).
#[derive(Debug, Clone)]
pub(crate) enum OpenedFile {
    /// Inode `ino` of the writable upper layer.
    Upper(u64),
    /// Inode `ino` of lower layer `index` (at the open), held so it outlives any change above.
    Lower { layer: Layer, index: usize, ino: u64 },
}

/// The state of an overlay's writable upper layer, as [`Overlay::upper_state`] exports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpperState {
    /// The upper's entries, sorted by path (parents first), `/` included.
    pub entries: Vec<SnapshotEntry>,
    /// Full paths of lower entries the upper hides (deleted through the overlay).
    pub whiteouts: Vec<String>,
    /// Upper directories that hide the lower directories of the same path.
    pub opaque: Vec<String>,
}

/// A union view: one writable upper [`Filesystem`] over ordered, shared, read-only [`Layer`]s.
///
/// Semantics follow Linux overlayfs:
///
/// - A name is looked up in the upper first, then in each lower (highest precedence first). A
///   non-directory hides everything below it; a directory merges with the directories of the
///   same name below it, down to the first non-directory.
/// - Changing a lower entry first **copies it up**: its parent directories are created in the
///   upper (same mode, owner and times), then the entry itself (content, mode, owner, times).
///   Copy-ups are invisible in the merged view; they count against the upper's limits. A failed
///   operation leaves the merged view unchanged, but copy-ups it made may stay.
/// - Deleting a name that a lower layer has leaves a **whiteout** in the upper directory, which
///   hides that name of every lower.
/// - A directory created where a whiteout was is **opaque**: it hides the lower directories of
///   the same path, so the deleted directory's children do not come back. A renamed directory is
///   copied up whole (its merged content) and made opaque.
///
/// Layers are never changed. Inode numbers of lower entries are reported as
/// `((layer index + 1) << 48) | ino` so they cannot collide with the upper's. Hard links between
/// lower files are copied up separately. A merged directory's `stat` is its topmost copy's, so
/// its `nlink` counts only that layer's subdirectories.
#[derive(Debug, Clone)]
pub struct Overlay {
    upper: Filesystem,
    lowers: Vec<Layer>,
    /// Upper directory → names hidden in the lowers.
    whiteouts: BTreeMap<u64, BTreeSet<String>>,
    /// Upper directories that hide the lowers' directories of the same path.
    opaque: BTreeSet<u64>,
}

impl Namespace for Overlay {
    type Node = ONode;

    fn root(&self) -> ONode {
        let lowers = if self.opaque.contains(&ROOT_INO) {
            Vec::new()
        } else {
            (0..self.lowers.len()).map(|index| (index, ROOT_INO)).collect()
        };
        ONode { upper: Some(ROOT_INO), lowers }
    }

    fn lookup(&self, dir: &ONode, name: &str) -> Option<ONode> {
        let mut top_kind = None;
        let mut upper = None;
        let mut hidden = false;
        if let Some(dir_upper) = dir.upper {
            upper = self.upper.lookup(&dir_upper, name);
            top_kind = upper.map(|ino| self.upper.kind(&ino));
            hidden = self.whiteouts.get(&dir_upper).is_some_and(|names| names.contains(name));
        }
        let mut lowers = Vec::new();
        let upper_is_opaque = upper.is_some_and(|ino| self.opaque.contains(&ino));
        if !hidden && !upper_is_opaque && top_kind.is_none_or(|kind| kind == NodeKind::Dir) {
            for &(index, dir_ino) in &dir.lowers {
                let Some(layer) = self.lowers.get(index) else { continue };
                let Some(child) = layer.fs().lookup(&dir_ino, name) else { continue };
                let kind = layer.fs().kind(&child);
                match top_kind {
                    None => {
                        top_kind = Some(kind);
                        lowers.push((index, child));
                        if kind != NodeKind::Dir {
                            break;
                        }
                    }
                    Some(_) if kind == NodeKind::Dir => lowers.push((index, child)),
                    Some(_) => break,
                }
            }
        }
        if upper.is_none() && lowers.is_empty() {
            return None;
        }
        Some(ONode { upper, lowers })
    }

    fn kind(&self, node: &ONode) -> NodeKind {
        match self.top(node) {
            Some((_, inode)) => inode.kind(),
            None => NodeKind::File,
        }
    }

    fn link_target(&self, node: &ONode) -> &str {
        match self.top(node) {
            Some((_, Inode { data: Data::Symlink(target), .. })) => target,
            _ => "",
        }
    }
}

/// Undo record of one directory the overlay's `mkdir -p` created.
#[derive(Debug)]
struct Made {
    record: Created,
    whiteout_removed: bool,
}

impl Overlay {
    /// A view of `lowers` (highest precedence first) under the writable `upper`.
    pub fn new(upper: Filesystem, lowers: Vec<Layer>) -> Self {
        Self { upper, lowers, whiteouts: BTreeMap::new(), opaque: BTreeSet::new() }
    }

    pub fn upper(&self) -> &Filesystem {
        &self.upper
    }

    /// The writable layer, for operations on its open files by inode.
    pub(crate) fn upper_mut(&mut self) -> &mut Filesystem {
        &mut self.upper
    }

    /// The regular file `path` leads to (following symlinks), for a descriptor to hold. One
    /// opened for writing is copied up first (as overlayfs does at such an open), so writes
    /// through the descriptor reach the file the path names; one opened only for reading may
    /// stay in its shared lower layer, which never changes.
    pub(crate) fn open_file(&mut self, path: VPath<'_>, writable: bool, now: Now) -> Result<OpenedFile, FsError> {
        let (resolved, node) = self.existing(path, Mode::Follow)?;
        if let Some(ino) = node.upper {
            return Ok(OpenedFile::Upper(ino));
        }
        if writable {
            self.writable()?;
            return self.copy_up_final(&resolved, now).map(OpenedFile::Upper);
        }
        let &(index, ino) = node.lowers.first().ok_or(Errno::EIO)?;
        let layer = self.lowers.get(index).ok_or(Errno::EIO)?.clone();
        Ok(OpenedFile::Lower { layer, index, ino })
    }

    pub fn lowers(&self) -> &[Layer] {
        &self.lowers
    }

    /// A read-only overlay fails every mutation with `EROFS`.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.upper.set_read_only(read_only);
    }

    pub fn is_read_only(&self) -> bool {
        self.upper.is_read_only()
    }

    /// The upper layer's own state: its entries (sorted by path, parents first, `/` included),
    /// the whiteouts (full paths of the lower entries it hides) and its opaque directories.
    /// With the same lowers, [`restore_upper`](Self::restore_upper) rebuilds the same merged
    /// view (file times are not kept; hard links become separate files).
    pub fn upper_state(&self) -> UpperState {
        let paths: BTreeMap<u64, String> = self.upper.walk().into_iter().map(|(path, ino)| (ino, path)).collect();
        let join = |dir: &str, name: &str| if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
        let mut whiteouts = Vec::new();
        for (dir, names) in &self.whiteouts {
            if let Some(dir_path) = paths.get(dir) {
                whiteouts.extend(names.iter().map(|name| join(dir_path, name)));
            }
        }
        whiteouts.sort();
        let mut opaque: Vec<String> = self.opaque.iter().filter_map(|ino| paths.get(ino).cloned()).collect();
        opaque.sort();
        UpperState { entries: self.upper.export(), whiteouts, opaque }
    }

    /// Replaces the upper layer with `state` (see [`upper_state`](Self::upper_state)), bounded
    /// by the upper's limits. All or nothing: `EINVAL` when a whiteout's parent or an opaque
    /// path is not a directory of the new upper; `EROFS` on a read-only overlay.
    pub fn restore_upper(&mut self, state: &UpperState, now: Now) -> Result<(), FsError> {
        if self.is_read_only() {
            return Err(FsError::new(Errno::EROFS).at("restore", "/"));
        }
        let upper = Filesystem::from_entries(&state.entries, *self.upper.limits(), now)?;
        let dirs: BTreeMap<String, u64> =
            upper.walk().into_iter().filter(|(_, ino)| upper.kind(ino) == NodeKind::Dir).collect();
        let mut whiteouts: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for path in &state.whiteouts {
            let invalid = || FsError::new(Errno::EINVAL).at("restore", path);
            let parent = parent_of(path).ok_or_else(invalid)?;
            let name = path::split(path).next_back().filter(|name| path::is_name(name)).ok_or_else(invalid)?;
            let dir = dirs.get(&parent).ok_or_else(invalid)?;
            whiteouts.entry(*dir).or_default().insert(name.to_owned());
        }
        let mut opaque = BTreeSet::new();
        for path in &state.opaque {
            let dir = dirs.get(path).ok_or_else(|| FsError::new(Errno::EINVAL).at("restore", path))?;
            opaque.insert(*dir);
        }
        self.upper = upper;
        self.whiteouts = whiteouts;
        self.opaque = opaque;
        Ok(())
    }

    /// Seals the merged view into a new layer (its export imported into a fresh filesystem with
    /// the upper's limits).
    pub fn seal(&self, now: Now) -> Result<Layer, FsError> {
        Layer::from_entries(&self.export(), *self.upper.limits(), now)
    }

    // -----------------------------------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------------------------------

    /// The topmost inode of a node: `(None, _)` for the upper, `(Some(layer), _)` for a lower.
    fn top(&self, node: &ONode) -> Option<(Option<usize>, &Inode)> {
        if let Some(ino) = node.upper {
            return self.upper.inode(ino).ok().map(|inode| (None, inode));
        }
        let &(index, ino) = node.lowers.first()?;
        self.lowers.get(index)?.fs().inode(ino).ok().map(|inode| (Some(index), inode))
    }

    fn top_inode(&self, node: &ONode) -> Result<&Inode, FsError> {
        self.top(node).map(|(_, inode)| inode).ok_or_else(|| Errno::EIO.into())
    }

    fn stat_of(&self, node: &ONode) -> Result<Stat, FsError> {
        if let Some(ino) = node.upper {
            return Ok(self.upper.inode(ino)?.stat(ino, FILESYSTEM_DEV));
        }
        let &(index, ino) = node.lowers.first().ok_or(Errno::EIO)?;
        let inode = self.lowers.get(index).ok_or(Errno::EIO)?.fs().inode(ino)?;
        let layer_bits = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1).checked_shl(48).unwrap_or(0);
        Ok(inode.stat(layer_bits | ino, FILESYSTEM_DEV))
    }

    fn resolve(&self, path: VPath<'_>, mode: Mode) -> Result<Resolved<ONode>, FsError> {
        path::resolve(self, path, mode)
    }

    fn existing(&self, path: VPath<'_>, mode: Mode) -> Result<(Resolved<ONode>, ONode), FsError> {
        let resolved = self.resolve(path, mode)?;
        let node = resolved.node.clone().ok_or(Errno::ENOENT)?;
        Ok((resolved, node))
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.upper.is_read_only() {
            return Err(Errno::EROFS.into());
        }
        Ok(())
    }

    /// The names of a merged directory.
    fn merged_names(&self, dir: &ONode) -> Result<BTreeSet<String>, FsError> {
        let mut names = BTreeSet::new();
        if let Some(ino) = dir.upper {
            names.extend(self.upper.dir_names(ino)?);
        }
        for &(index, ino) in &dir.lowers {
            let layer = self.lowers.get(index).ok_or(Errno::EIO)?;
            names.extend(layer.fs().dir_names(ino)?);
        }
        if let Some(hidden) = dir.upper.and_then(|ino| self.whiteouts.get(&ino)) {
            names.retain(|name| !hidden.contains(name));
        }
        Ok(names)
    }

    fn merged_is_empty(&self, dir: &ONode) -> Result<bool, FsError> {
        if let Some(ino) = dir.upper {
            if self.upper.dir_len(ino)? > 0 {
                return Ok(false);
            }
        }
        Ok(self.merged_names(dir)?.is_empty())
    }

    /// Whether a lower directory merged into `dir` has `name` (so deleting it needs a whiteout).
    fn lower_has(&self, dir: &ONode, name: &str) -> bool {
        dir.lowers
            .iter()
            .any(|&(index, ino)| self.lowers.get(index).is_some_and(|l| l.fs().lookup(&ino, name).is_some()))
    }

    /// Makes sure every directory of `ancestors` exists in the upper; returns the upper inode of
    /// the last one.
    fn copy_up_dirs(&mut self, ancestors: &[(String, ONode)], now: Now) -> Result<u64, FsError> {
        self.copy_up_chain(ancestors, now)?.last().copied().ok_or_else(|| Errno::EIO.into())
    }

    /// [`copy_up_dirs`](Self::copy_up_dirs) returning the upper inode of every ancestor.
    fn copy_up_chain(&mut self, ancestors: &[(String, ONode)], now: Now) -> Result<Vec<u64>, FsError> {
        let mut uppers = vec![ROOT_INO];
        let mut parent = ROOT_INO;
        for (name, node) in ancestors.iter().skip(1) {
            parent = match self.upper.lookup(&parent, name) {
                Some(ino) => ino,
                None => {
                    let copy = self.top_inode(node)?.copy_for_install();
                    self.upper.install(parent, name, copy, now)?
                }
            };
            uppers.push(parent);
        }
        Ok(uppers)
    }

    /// Copies `node` (entry `name` of upper directory `parent`) up unless it is there already;
    /// a directory with `deep` gets its whole merged content and becomes opaque.
    fn copy_up_node(&mut self, parent: u64, name: &str, node: &ONode, deep: bool, now: Now) -> Result<u64, FsError> {
        let ino = match node.upper {
            Some(ino) => ino,
            None => {
                let copy = self.top_inode(node)?.copy_for_install();
                self.upper.install(parent, name, copy, now)?
            }
        };
        if deep && self.upper.kind(&ino) == NodeKind::Dir {
            self.materialize(ONode { upper: Some(ino), lowers: node.lowers.clone() }, now)?;
        }
        Ok(ino)
    }

    /// Copies the merged content of a directory (upper already present) into the upper, all the
    /// way down, making every directory on the way opaque.
    fn materialize(&mut self, dir: ONode, now: Now) -> Result<(), FsError> {
        let mut work = vec![dir];
        while let Some(dir) = work.pop() {
            let dir_upper = dir.upper.ok_or(Errno::EIO)?;
            for name in self.merged_names(&dir)? {
                let Some(child) = self.lookup(&dir, &name) else { continue };
                let child_upper = match child.upper {
                    Some(ino) => ino,
                    None => {
                        let copy = self.top_inode(&child)?.copy_for_install();
                        self.upper.install(dir_upper, &name, copy, now)?
                    }
                };
                if self.upper.kind(&child_upper) == NodeKind::Dir {
                    work.push(ONode { upper: Some(child_upper), lowers: child.lowers });
                }
            }
            self.whiteouts.remove(&dir_upper);
            self.opaque.insert(dir_upper);
        }
        Ok(())
    }

    /// Copies up the final node of `resolved` (and its directories); returns its upper inode.
    fn copy_up_final(&mut self, resolved: &Resolved<ONode>, now: Now) -> Result<u64, FsError> {
        let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
        match (&resolved.name, &resolved.node) {
            (Some(name), Some(node)) => self.copy_up_node(parent, name, node, false, now),
            (None, Some(_)) => Ok(parent),
            _ => Err(Errno::ENOENT.into()),
        }
    }

    fn add_whiteout(&mut self, dir_upper: u64, name: &str) {
        self.whiteouts.entry(dir_upper).or_default().insert(name.to_owned());
    }

    /// Removes a whiteout; returns whether there was one.
    fn remove_whiteout(&mut self, dir_upper: u64, name: &str) -> bool {
        let Some(names) = self.whiteouts.get_mut(&dir_upper) else { return false };
        let removed = names.remove(name);
        if names.is_empty() {
            self.whiteouts.remove(&dir_upper);
        }
        removed
    }

    /// Drops the side tables of the upper directories under (and including) `ino`.
    fn forget_tree(&mut self, ino: u64) {
        let mut stack = vec![ino];
        while let Some(dir) = stack.pop() {
            self.whiteouts.remove(&dir);
            self.opaque.remove(&dir);
            for name in self.upper.dir_names(dir).unwrap_or_default() {
                if let Some(child) = self.upper.lookup(&dir, &name) {
                    if self.upper.kind(&child) == NodeKind::Dir {
                        stack.push(child);
                    }
                }
            }
        }
    }

    fn parent_node(resolved: &Resolved<ONode>) -> Result<&ONode, FsError> {
        resolved.ancestors.last().map(|(_, node)| node).ok_or_else(|| Errno::EIO.into())
    }

    // -----------------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------------

    pub fn read_file<'p>(&self, path: impl Into<VPath<'p>>) -> Result<&[u8], FsError> {
        let path = path.into();
        self.read_file_inner(path).map_err(|e| e.at("open", path.path))
    }

    fn read_file_inner(&self, path: VPath<'_>) -> Result<&[u8], FsError> {
        let (_, node) = self.existing(path, Mode::Follow)?;
        match &self.top_inode(&node)?.data {
            Data::File(bytes) => Ok(bytes),
            Data::Dir(_) => Err(Errno::EISDIR.into()),
            Data::Symlink(_) => Err(Errno::EIO.into()),
        }
    }

    pub fn pread<'p>(&self, path: impl Into<VPath<'p>>, offset: u64, len: u64) -> Result<&[u8], FsError> {
        let path = path.into();
        let limit = self.upper.limits().max_pread_bytes;
        let result = if len > limit {
            Err(FsError::limit_exceeded(LimitKind::PreadBytes, limit))
        } else {
            self.read_file_inner(path).map(|bytes| {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(bytes.len());
                bytes.get(start..end).unwrap_or(&[])
            })
        };
        result.map_err(|e| e.at("read", path.path))
    }

    pub fn exists<'p>(&self, path: impl Into<VPath<'p>>) -> bool {
        matches!(self.resolve(path.into(), Mode::Follow), Ok(Resolved { node: Some(_), .. }))
    }

    pub fn stat<'p>(&self, path: impl Into<VPath<'p>>) -> Result<Stat, FsError> {
        let path = path.into();
        self.existing(path, Mode::Follow).and_then(|(_, node)| self.stat_of(&node)).map_err(|e| e.at("stat", path.path))
    }

    pub fn lstat<'p>(&self, path: impl Into<VPath<'p>>) -> Result<Stat, FsError> {
        let path = path.into();
        self.existing(path, Mode::NoFollow)
            .and_then(|(_, node)| self.stat_of(&node))
            .map_err(|e| e.at("lstat", path.path))
    }

    pub fn read_dir<'p>(&self, path: impl Into<VPath<'p>>) -> Result<Vec<String>, FsError> {
        let path = path.into();
        self.read_dir_inner(path).map_err(|e| e.at("scandir", path.path))
    }

    fn read_dir_inner(&self, path: VPath<'_>) -> Result<Vec<String>, FsError> {
        let (_, node) = self.existing(path, Mode::Follow)?;
        if self.kind(&node) != NodeKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        let names = self.merged_names(&node)?;
        let limit = self.upper.limits().max_readdir_entries;
        if len64(names.len()) > limit {
            return Err(FsError::limit_exceeded(LimitKind::ReaddirEntries, limit));
        }
        Ok(names.into_iter().collect())
    }

    pub fn realpath<'p>(&self, path: impl Into<VPath<'p>>) -> Result<String, FsError> {
        let path = path.into();
        self.existing(path, Mode::Follow)
            .map(|(resolved, _)| resolved.canonical())
            .map_err(|e| e.at("realpath", path.path))
    }

    pub fn read_link<'p>(&self, path: impl Into<VPath<'p>>) -> Result<String, FsError> {
        let path = path.into();
        let result = self.existing(path, Mode::NoFollow).and_then(|(_, node)| match &self.top_inode(&node)?.data {
            Data::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL.into()),
        });
        result.map_err(|e| e.at("readlink", path.path))
    }

    /// The merged tree as snapshot entries, sorted by path (parents first).
    pub fn export(&self) -> Vec<SnapshotEntry> {
        let mut out = Vec::new();
        let root = self.root();
        let mut stack = vec![(String::new(), root)];
        if let Ok(inode) = self.top_inode(&self.root()) {
            out.push(SnapshotEntry::from_inode("/".to_owned(), inode));
        }
        while let Some((prefix, dir)) = stack.pop() {
            for name in self.merged_names(&dir).unwrap_or_default() {
                let Some(child) = self.lookup(&dir, &name) else { continue };
                let path = format!("{prefix}/{name}");
                if let Ok(inode) = self.top_inode(&child) {
                    out.push(SnapshotEntry::from_inode(path.clone(), inode));
                }
                if self.kind(&child) == NodeKind::Dir {
                    stack.push((path, child));
                }
            }
        }
        out.sort();
        out
    }

    /// Applies snapshot entries through the overlay (copying up and whiting out as needed), like
    /// [`Filesystem::import`]: each replaces what is at its path, a directory entry over a
    /// directory only sets mode and owner. All or nothing.
    /// Files' content moves into the filesystem (a bootstrap file of hundreds of KB is not
    /// copied again).
    pub fn import(&mut self, entries: Vec<SnapshotEntry>, now: Now) -> Result<(), FsError> {
        if self.is_read_only() {
            return Err(FsError::new(Errno::EROFS).at("import", "/"));
        }
        let mut work = self.clone();
        for entry in entries {
            let at = entry.path.clone();
            work.import_entry(entry, now).map_err(|e| e.at("import", &at))?;
        }
        *self = work;
        Ok(())
    }

    fn import_entry(&mut self, entry: SnapshotEntry, now: Now) -> Result<(), FsError> {
        let path = VPath::from(entry.path.as_str());
        if let Some(parent) = parent_of(&entry.path) {
            self.mkdir(parent.as_str(), true, now)?;
        }
        let resolved = self.resolve(path, Mode::Parent)?;
        if !resolved.is_root() {
            if let Some(node) = &resolved.node {
                match (self.kind(node) == NodeKind::Dir, &entry.kind) {
                    (true, EntryKind::Directory) => {}
                    (true, _) => self.remove_dir(path, true, now)?,
                    (false, _) => self.remove_file(path, now)?,
                }
            }
            match entry.kind {
                EntryKind::File(bytes) => self.write_file_content(path, Cow::Owned(bytes), entry.mode, now)?,
                EntryKind::Directory => self.mkdir_with_mode(path, true, entry.mode, now)?,
                EntryKind::Symlink(target) => self.symlink(&target, path, now)?,
            }
        }
        let resolved = self.resolve(path, Mode::Parent)?;
        let ino = self.copy_up_final(&resolved, now)?;
        self.upper.set_owner_mode(ino, entry.mode, entry.uid, entry.gid)
    }

    // -----------------------------------------------------------------------------------------
    // Mutations
    // -----------------------------------------------------------------------------------------

    pub fn write_file<'p>(&mut self, path: impl Into<VPath<'p>>, data: &[u8], now: Now) -> Result<(), FsError> {
        self.write_file_with_mode(path, data, DEFAULT_FILE_MODE, now)
    }

    pub fn write_file_with_mode<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        data: &[u8],
        mode: u32,
        now: Now,
    ) -> Result<(), FsError> {
        self.write_file_content(path, Cow::Borrowed(data), mode, now)
    }

    /// [`Self::write_file_with_mode`] with content that may be owned: owned content becomes the
    /// file's without a copy.
    fn write_file_content<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        data: Cow<'_, [u8]>,
        mode: u32,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        self.write_file_inner(path, data, mode, now).map_err(|e| e.at("open", path.path))
    }

    fn write_file_inner(&mut self, path: VPath<'_>, data: Cow<'_, [u8]>, mode: u32, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Follow)?;
        let canonical = resolved.canonical();
        match (&resolved.node, &resolved.name) {
            (Some(node), Some(name)) if node.upper.is_none() => {
                let inode = self.top_inode(node)?;
                if inode.kind() == NodeKind::Dir {
                    return Err(Errno::EISDIR.into());
                }
                let limit = self.upper.limits().max_fd_write_bytes;
                if len64(data.len()) > limit {
                    return Err(FsError::limit_exceeded(LimitKind::FdWriteBytes, limit));
                }
                // Copy up with the new content directly (the old is about to be replaced).
                let mut copy = inode.copy_for_install();
                copy.data = Data::File(data.into_owned());
                copy.mtime = now.wall_ms;
                copy.mtime_nsec = 0;
                copy.ctime = now.wall_ms;
                let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
                self.upper.install(parent, name, copy, now)?;
                Ok(())
            }
            (Some(node), _) => {
                if self.kind(node) == NodeKind::Dir {
                    return Err(Errno::EISDIR.into());
                }
                self.upper.write_file_content(canonical.as_str(), data, mode, now)
            }
            (None, Some(name)) => {
                if resolved.trailing_slash {
                    return Err(Errno::EISDIR.into());
                }
                let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
                self.upper.write_file_content(canonical.as_str(), data, mode, now)?;
                self.remove_whiteout(parent, name);
                Ok(())
            }
            (None, None) => Err(Errno::EIO.into()),
        }
    }

    pub fn pwrite<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        offset: u64,
        data: &[u8],
        now: Now,
    ) -> Result<u64, FsError> {
        let path = path.into();
        self.with_copy_up(path, "write", now, |upper, canonical| upper.pwrite(canonical, offset, data, now))
    }

    pub fn truncate<'p>(&mut self, path: impl Into<VPath<'p>>, len: u64, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.with_copy_up(path, "open", now, |upper, canonical| upper.truncate(canonical, len, now))
    }

    pub fn chmod<'p>(&mut self, path: impl Into<VPath<'p>>, mode: u32, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.with_copy_up(path, "chmod", now, |upper, canonical| upper.chmod(canonical, mode, now))
    }

    pub fn chown<'p>(&mut self, path: impl Into<VPath<'p>>, uid: u32, gid: u32, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.with_copy_up(path, "chown", now, |upper, canonical| upper.chown(canonical, uid, gid, now))
    }

    pub fn utimes<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        atime_ms: u64,
        mtime_ms: u64,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        self.with_copy_up(path, "utime", now, |upper, canonical| upper.utimes(canonical, atime_ms, mtime_ms, now))
    }

    /// Like [`Filesystem::set_times_ns`]; without `follow`, a final symlink is copied up and
    /// changed itself.
    pub fn set_times_ns<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        atime_ns: u64,
        mtime_ns: u64,
        follow: bool,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        let mode = if follow { Mode::Follow } else { Mode::NoFollow };
        let result = (|| {
            self.writable()?;
            let (resolved, _) = self.existing(path, mode)?;
            let ino = self.copy_up_final(&resolved, now)?;
            self.upper.utimes_ino(ino, atime_ns, mtime_ns, now)
        })();
        result.map_err(|e| e.at("utime", path.path))
    }

    /// Resolves `path` (following symlinks), copies its node up, and runs `op` on the upper at
    /// the canonical path.
    fn with_copy_up<T>(
        &mut self,
        path: VPath<'_>,
        op: &'static str,
        now: Now,
        run: impl FnOnce(&mut Filesystem, &str) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        let result = (|| {
            self.writable()?;
            let (resolved, _) = self.existing(path, Mode::Follow)?;
            self.copy_up_final(&resolved, now)?;
            run(&mut self.upper, &resolved.canonical())
        })();
        result.map_err(|e| e.at(op, path.path))
    }

    pub fn create_dir<'p>(&mut self, path: impl Into<VPath<'p>>, now: Now) -> Result<(), FsError> {
        self.mkdir_with_mode(path, false, DEFAULT_DIR_MODE, now)
    }

    pub fn mkdir<'p>(&mut self, path: impl Into<VPath<'p>>, recursive: bool, now: Now) -> Result<(), FsError> {
        self.mkdir_with_mode(path, recursive, DEFAULT_DIR_MODE, now)
    }

    /// Like [`Filesystem::mkdir_with_mode`]. A failed `mkdir -p` removes the directories it made
    /// (directories copied up on the way stay, invisibly).
    pub fn mkdir_with_mode<'p>(
        &mut self,
        path: impl Into<VPath<'p>>,
        recursive: bool,
        mode: u32,
        now: Now,
    ) -> Result<(), FsError> {
        let path = path.into();
        let result = if recursive { self.mkdir_recursive(path, mode, now) } else { self.mkdir_one(path, mode, now) };
        result.map_err(|e| e.at("mkdir", path.path))
    }

    fn mkdir_one(&mut self, path: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Parent)?;
        let (Some(name), None) = (&resolved.name, &resolved.node) else {
            return Err(Errno::EEXIST.into());
        };
        self.upper.check_inodes(1)?;
        let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
        self.make_dir(parent, name, mode, now)?;
        Ok(())
    }

    /// Creates directory `name` in upper directory `parent`, opaque if it replaces a whiteout.
    fn make_dir(&mut self, parent: u64, name: &str, mode: u32, now: Now) -> Result<Made, FsError> {
        let record = self.upper.make_dir_in(parent, name, mode, now)?;
        let whiteout_removed = self.remove_whiteout(parent, name);
        if whiteout_removed {
            self.opaque.insert(record.ino);
        }
        Ok(Made { record, whiteout_removed })
    }

    fn mkdir_recursive(&mut self, path: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
        self.writable()?;
        path::validate(path.path)?;
        let components: Vec<&str> = path::split(path.path).collect();
        let Some(last_name) = components.iter().rposition(|c| path::is_name(c)) else {
            return Ok(());
        };
        let mut made: Vec<Made> = Vec::new();
        let result = self.mkdir_walk(path, &components, last_name, mode, now, &mut made);
        if result.is_err() {
            while let Some(Made { record, whiteout_removed }) = made.pop() {
                self.opaque.remove(&record.ino);
                self.upper.undo_make_dir(&record);
                if whiteout_removed {
                    self.add_whiteout(record.parent, &record.name);
                }
            }
        }
        result
    }

    fn mkdir_walk(
        &mut self,
        path: VPath<'_>,
        components: &[&str],
        last_name: usize,
        mode: u32,
        now: Now,
        made: &mut Vec<Made>,
    ) -> Result<(), FsError> {
        let mut hops = 0;
        let mut ancestors = path::start(self, path, &mut hops)?;
        for (index, &component) in components.iter().enumerate() {
            if !path::is_name(component) {
                path::enter(self, &mut ancestors, &mut hops, component)?;
                continue;
            }
            if component.len() > path::NAME_MAX {
                return Err(Errno::ENAMETOOLONG.into());
            }
            let (_, parent) = ancestors.last().ok_or(Errno::EIO)?;
            if self.lookup(parent, component).is_none() {
                self.upper.check_inodes(1)?;
                let parent_upper = match parent.upper {
                    Some(ino) => ino,
                    None => {
                        // Copy the chain up once and remember it, so later steps need not.
                        let uppers = self.copy_up_chain(&ancestors, now)?;
                        for ((_, node), upper) in ancestors.iter_mut().zip(uppers.iter()) {
                            node.upper = Some(*upper);
                        }
                        uppers.last().copied().ok_or(Errno::EIO)?
                    }
                };
                made.push(self.make_dir(parent_upper, component, mode, now)?);
                let (_, parent) = ancestors.last().ok_or(Errno::EIO)?;
                let node = self.lookup(parent, component).ok_or(Errno::EIO)?;
                ancestors.push((component.to_owned(), node));
            } else if let Err(error) = path::enter(self, &mut ancestors, &mut hops, component) {
                return Err(if index == last_name { Errno::EEXIST.into() } else { error });
            }
        }
        Ok(())
    }

    pub fn remove_file<'p>(&mut self, path: impl Into<VPath<'p>>, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.remove_file_inner(path, now).map_err(|e| e.at("unlink", path.path))
    }

    fn remove_file_inner(&mut self, path: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Parent)?;
        let Some(node) = &resolved.node else {
            return Err(Errno::ENOENT.into());
        };
        let Some(name) = &resolved.name else {
            return Err(Errno::EISDIR.into());
        };
        if self.kind(node) == NodeKind::Dir {
            return Err(Errno::EISDIR.into());
        }
        if resolved.trailing_slash {
            return Err(Errno::ENOTDIR.into());
        }
        let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
        if node.upper.is_some() {
            self.upper.remove_file(resolved.canonical().as_str(), now)?;
        } else {
            self.upper.touch(parent, now)?;
        }
        if self.lower_has(Self::parent_node(&resolved)?, name) {
            self.add_whiteout(parent, name);
        }
        Ok(())
    }

    pub fn remove_dir<'p>(&mut self, path: impl Into<VPath<'p>>, recursive: bool, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.remove_dir_inner(path, recursive, now).map_err(|e| e.at("rmdir", path.path))
    }

    fn remove_dir_inner(&mut self, path: VPath<'_>, recursive: bool, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let resolved = self.resolve(path, Mode::Parent)?;
        if resolved.is_root() {
            return Err(Errno::EBUSY.into());
        }
        let Some(node) = &resolved.node else {
            return Err(Errno::ENOENT.into());
        };
        let Some(name) = &resolved.name else {
            return Err(Errno::EINVAL.into());
        };
        if self.kind(node) != NodeKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        if !recursive && !self.merged_is_empty(node)? {
            return Err(Errno::ENOTEMPTY.into());
        }
        let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
        if let Some(ino) = node.upper {
            self.forget_tree(ino);
            self.upper.remove_dir(resolved.canonical().as_str(), true, now)?;
        } else {
            self.upper.touch(parent, now)?;
        }
        if self.lower_has(Self::parent_node(&resolved)?, name) {
            self.add_whiteout(parent, name);
        }
        Ok(())
    }

    /// Like [`Filesystem::rename`]. A directory is copied up whole first (and made opaque).
    pub fn rename<'p, 'q>(
        &mut self,
        from: impl Into<VPath<'p>>,
        to: impl Into<VPath<'q>>,
        now: Now,
    ) -> Result<(), FsError> {
        let (from, to) = (from.into(), to.into());
        // A rename takes several steps (copy-ups, forgetting a replaced tree, the upper rename,
        // whiteouts) and a late step can fail; restoring the state taken before keeps a failed
        // rename invisible (found by the vfs_ops fuzz target). This copies the upper layer, so
        // it costs O(upper size) per rename: to be made incremental.
        let before = self.clone();
        self.rename_inner(from, to, now).map_err(|e| {
            *self = before;
            e.at2("rename", from.path, to.path)
        })
    }

    fn rename_inner(&mut self, from: VPath<'_>, to: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let old = self.resolve(from, Mode::Parent)?;
        let new = self.resolve(to, Mode::Parent)?;
        let Some(x) = old.node.clone() else {
            return Err(Errno::ENOENT.into());
        };
        if old.is_root() || new.is_root() {
            return Err(Errno::EBUSY.into());
        }
        let (Some(old_name), Some(new_name)) = (old.name.clone(), new.name.clone()) else {
            return Err(Errno::EINVAL.into());
        };
        let x_is_dir = self.kind(&x) == NodeKind::Dir;
        if x_is_dir && new.ancestors.iter().any(|(_, node)| *node == x) {
            return Err(Errno::EINVAL.into());
        }
        if new.node.as_ref() == Some(&x) {
            return Ok(());
        }
        if !x_is_dir && (old.trailing_slash || new.trailing_slash) {
            return Err(Errno::ENOTDIR.into());
        }
        if let Some(y) = &new.node {
            match (self.kind(y) == NodeKind::Dir, x_is_dir) {
                (true, false) => return Err(Errno::EISDIR.into()),
                (true, true) if !self.merged_is_empty(y)? => return Err(Errno::ENOTEMPTY.into()),
                (false, true) => return Err(Errno::ENOTDIR.into()),
                _ => {}
            }
        }
        // Copy-ups (invisible), then the rename in the upper, then the whiteouts.
        let p1 = self.copy_up_dirs(&old.ancestors, now)?;
        // A directory is materialized and made opaque: at its new path no lower may show through.
        self.copy_up_node(p1, &old_name, &x, true, now)?;
        let p2 = self.copy_up_dirs(&new.ancestors, now)?;
        if let Some(y_upper) = new.node.as_ref().and_then(|y| y.upper) {
            self.forget_tree(y_upper);
        }
        self.upper.rename(old.canonical().as_str(), new.canonical().as_str(), now)?;
        if self.lower_has(Self::parent_node(&old)?, &old_name) {
            self.add_whiteout(p1, &old_name);
        }
        self.remove_whiteout(p2, &new_name);
        Ok(())
    }

    pub fn symlink<'p>(&mut self, target: &str, path: impl Into<VPath<'p>>, now: Now) -> Result<(), FsError> {
        let path = path.into();
        self.symlink_inner(target, path, now).map_err(|e| e.at2("symlink", target, path.path))
    }

    fn symlink_inner(&mut self, target: &str, path: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        path::validate_target(target)?;
        let (parent, name, canonical) = self.creatable(path, now)?;
        self.upper.symlink(target, canonical.as_str(), now)?;
        self.remove_whiteout(parent, &name);
        Ok(())
    }

    /// Checks that `path` names a free entry, copies its parent up; returns the upper parent,
    /// the name and the canonical path.
    fn creatable(&mut self, path: VPath<'_>, now: Now) -> Result<(u64, String, String), FsError> {
        let resolved = self.resolve(path, Mode::Parent)?;
        let (Some(name), None) = (&resolved.name, &resolved.node) else {
            return Err(Errno::EEXIST.into());
        };
        if resolved.trailing_slash {
            return Err(Errno::ENOENT.into());
        }
        self.upper.check_inodes(1)?;
        let parent = self.copy_up_dirs(&resolved.ancestors, now)?;
        Ok((parent, name.clone(), resolved.canonical()))
    }

    pub fn link<'p, 'q>(
        &mut self,
        existing: impl Into<VPath<'p>>,
        new: impl Into<VPath<'q>>,
        now: Now,
    ) -> Result<(), FsError> {
        let (existing, new) = (existing.into(), new.into());
        self.link_inner(existing, new, now).map_err(|e| e.at2("link", existing.path, new.path))
    }

    fn link_inner(&mut self, existing: VPath<'_>, new: VPath<'_>, now: Now) -> Result<(), FsError> {
        self.writable()?;
        let (resolved, node) = self.existing(existing, Mode::NoFollow)?;
        if self.kind(&node) == NodeKind::Dir {
            return Err(Errno::EPERM.into());
        }
        let target = self.resolve(new, Mode::Parent)?;
        if target.node.is_some() || target.name.is_none() {
            return Err(Errno::EEXIST.into());
        }
        if target.trailing_slash {
            return Err(Errno::ENOENT.into());
        }
        self.copy_up_final(&resolved, now)?;
        let (parent, name, canonical) = self.creatable(new, now)?;
        self.upper.link(resolved.canonical().as_str(), canonical.as_str(), now)?;
        self.remove_whiteout(parent, &name);
        Ok(())
    }
}
