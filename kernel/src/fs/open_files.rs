//! Open files: a descriptor of a regular file holds the file itself, not its name.
//!
//! On POSIX an open file description refers to the inode: unlinking the file, renaming it or
//! replacing its name leaves every descriptor reading and writing the same file, which lives on,
//! nameless, until its last descriptor closes (`tmpfile()`, unlink-after-open, atomic replace by
//! rename). Where this VM's files have inodes (the root's layers and `memory` mounts) a
//! descriptor holds a [`FileNode`]; elsewhere (`host_dir` and js_bridge mounts, the kernel's
//! `/dev` and `/proc`) it reaches the file by its path, as far as those backends allow.
//!
//! Access is decided at the open, by the permission policy and the open's mode, as on POSIX;
//! reads and writes through a held file are not asked again.
//!
//! Lifetime: the VM's process table counts the descriptors of each held file
//! (`ProcessTable::file_opened`/`file_closed`); the filesystem keeps a held file *pinned*, so
//! dropping its last name makes it an orphan instead of freeing it, and the last close unpins it
//! ([`VmFilesystem::release_file`]), which frees an orphan. Orphans count against the VM's
//! limits until then, as unlinked open files count against a disk.

use crate::clock::Now;
use crate::error::Rejection;
use crate::fs::mounts::{Backend, Final, Owner};
use crate::fs::op::Subject;
use crate::fs::VmFilesystem;
use crate::policy::permissions::{Capability, CompiledPolicy};
use crate::vfs::{Errno, Filesystem, FsError, Layer, OpenedFile, Stat, VPath, FILESYSTEM_DEV};

/// What a descriptor of a regular file holds on to.
#[derive(Debug, Clone)]
pub(crate) enum FileNode {
    /// Inode `ino` of a filesystem of this VM that changes (the root's writable layer or a
    /// `memory` mount), named by the key [`VmFilesystem`] gave it: a filesystem replaced
    /// meanwhile (persistence restoring the root, ConfigureVm remounting) has a new key, so a
    /// stale descriptor can never reach another file that reuses the number.
    Inode { fs: u64, ino: u64 },
    /// Inode `ino` of a shared read-only layer (lower `index` of the root when opened), which
    /// never changes; holding the layer keeps it alive.
    Layer { layer: Layer, index: usize, ino: u64 },
}

impl PartialEq for FileNode {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Inode { fs: a, ino: x }, Self::Inode { fs: b, ino: y }) => a == b && x == y,
            (Self::Layer { layer: a, ino: x, .. }, Self::Layer { layer: b, ino: y, .. }) => {
                Layer::ptr_eq(a, b) && x == y
            }
            _ => false,
        }
    }
}

impl Eq for FileNode {}

impl FileNode {
    /// The `(filesystem key, inode)` the process table counts descriptors of; `None` for a
    /// layer's file, which needs no pin.
    pub(crate) fn held(&self) -> Option<(u64, u64)> {
        match self {
            Self::Inode { fs, ino } => Some((*fs, *ino)),
            Self::Layer { .. } => None,
        }
    }
}

/// A read-only layer's file gets the same inode number the overlay reports for it.
fn layer_ino(index: usize, ino: u64) -> u64 {
    let layer_bits = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1).checked_shl(48).unwrap_or(0);
    layer_bits | ino
}

impl VmFilesystem {
    /// Whether `policy` lets the caller write `path`: an open for writing asks at the open, as
    /// writes through the file it holds are not asked again.
    pub(crate) fn authorize_write(&self, policy: &CompiledPolicy, path: &str) -> Result<(), Rejection> {
        self.authorize(policy, Capability::FsWrite, "write", path, Subject::Follow).map(drop)
    }

    /// The file `path` (already opened and checked by the caller: a regular file) leads to, for
    /// a descriptor to hold, pinned; `None` where files have no inode (reached by path).
    /// `writable`: a lower layer's file is copied up first.
    pub(crate) fn open_file(&mut self, path: &str, writable: bool, now: Now) -> Result<Option<FileNode>, FsError> {
        let walked = if self.mounts.is_empty() {
            None
        } else {
            match self.namespace().walk(path, Final::Follow, false) {
                Ok(walked) if walked.touched => Some(walked),
                Ok(_) => None,
                Err(error) => return Err(FsError::new(error.errno)),
            }
        };
        let node = match walked {
            None => self.open_on_root(VPath::at(&self.cwd.clone(), path), writable, now)?,
            Some(walked) => match walked.owner {
                Owner::Root => self.open_on_root(VPath::from(walked.local.as_str()), writable, now)?,
                Owner::Mount(index) => {
                    let fs = self.mount_key(index);
                    match self.mounts.get_mut(index).map(|mount| &mut mount.backend) {
                        Some(Backend::Memory(memory)) => {
                            let ino = memory.file_ino(VPath::from(walked.local.as_str()))?;
                            memory.pin(ino);
                            fs.map(|fs| FileNode::Inode { fs, ino })
                        }
                        _ => None,
                    }
                }
            },
        };
        Ok(node)
    }

    fn open_on_root(&mut self, at: VPath<'_>, writable: bool, now: Now) -> Result<Option<FileNode>, FsError> {
        let node = match self.root.open_file(at, writable, now)? {
            OpenedFile::Upper(ino) => {
                self.root.upper_mut().pin(ino);
                FileNode::Inode { fs: self.root_key, ino }
            }
            OpenedFile::Lower { layer, index, ino } => FileNode::Layer { layer, index, ino },
        };
        Ok(Some(node))
    }

    /// The filesystem a held file lives in, if it is still this VM's.
    fn held_filesystem(&self, fs: u64) -> Option<&Filesystem> {
        if fs == self.root_key {
            return Some(self.root.upper());
        }
        let index = self.mount_keys.iter().position(|key| *key == fs)?;
        match &self.mounts.get(index)?.backend {
            Backend::Memory(memory) => Some(memory),
            _ => None,
        }
    }

    fn held_filesystem_mut(&mut self, fs: u64) -> Option<&mut Filesystem> {
        if fs == self.root_key {
            return Some(self.root.upper_mut());
        }
        let index = self.mount_keys.iter().position(|key| *key == fs)?;
        match &mut self.mounts.get_mut(index)?.backend {
            Backend::Memory(memory) => Some(memory),
            _ => None,
        }
    }

    /// The last descriptor of a held file closed: it is unpinned (and freed if nameless).
    pub(crate) fn release_file(&mut self, fs: u64, ino: u64) {
        if let Some(filesystem) = self.held_filesystem_mut(fs) {
            filesystem.unpin(ino);
        }
    }

    /// At most `len` bytes at `offset` of a held file.
    pub(crate) fn read_held(&self, node: &FileNode, offset: u64, len: u64) -> Result<Vec<u8>, FsError> {
        match node {
            FileNode::Inode { fs, ino } => {
                let filesystem = self.held_filesystem(*fs).ok_or(Errno::EIO)?;
                filesystem.pread_ino(*ino, offset, len).map(<[u8]>::to_vec)
            }
            FileNode::Layer { layer, ino, .. } => layer.fs().pread_ino(*ino, offset, len).map(<[u8]>::to_vec),
        }
    }

    /// Writes `data` at `offset` of a held file (a layer's file is read-only: `EBADF`, as a
    /// descriptor opened for writing was copied up at the open).
    pub(crate) fn write_held(&mut self, node: &FileNode, offset: u64, data: &[u8], now: Now) -> Result<u64, FsError> {
        match node {
            FileNode::Inode { fs, ino } => {
                let filesystem = self.held_filesystem_mut(*fs).ok_or(Errno::EIO)?;
                filesystem.pwrite_ino(*ino, offset, data, now)
            }
            FileNode::Layer { .. } => Err(Errno::EBADF.into()),
        }
    }

    /// Sets the length of a held file.
    pub(crate) fn truncate_held(&mut self, node: &FileNode, len: u64, now: Now) -> Result<(), FsError> {
        match node {
            FileNode::Inode { fs, ino } => {
                let filesystem = self.held_filesystem_mut(*fs).ok_or(Errno::EIO)?;
                filesystem.truncate_ino(*ino, len, now)
            }
            FileNode::Layer { .. } => Err(Errno::EBADF.into()),
        }
    }

    /// Sets the access and modification times of a held file.
    pub(crate) fn utimes_held(
        &mut self,
        node: &FileNode,
        atime_ms: u64,
        mtime_ms: u64,
        now: Now,
    ) -> Result<(), FsError> {
        match node {
            FileNode::Inode { fs, ino } => {
                let filesystem = self.held_filesystem_mut(*fs).ok_or(Errno::EIO)?;
                filesystem.utimes_ino(*ino, atime_ms, mtime_ms, now)
            }
            FileNode::Layer { .. } => Err(Errno::EROFS.into()),
        }
    }

    /// The stat of a held file (`nlink` 0 once nameless).
    pub(crate) fn stat_held(&self, node: &FileNode) -> Result<Stat, FsError> {
        match node {
            FileNode::Inode { fs, ino } => self.held_filesystem(*fs).ok_or(Errno::EIO)?.stat_ino(*ino),
            FileNode::Layer { layer, index, ino } => {
                let mut stat = layer.fs().stat_ino(*ino)?;
                stat.ino = layer_ino(*index, *ino);
                stat.dev = FILESYSTEM_DEV;
                Ok(stat)
            }
        }
    }
}
