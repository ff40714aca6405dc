//! A process's descriptor table.

use std::collections::{BTreeMap, BTreeSet};

use crate::vfs::Errno;

use crate::fs::open_files::FileNode;
use crate::process::pipes::End;

/// What a descriptor refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenFile {
    /// The standard input the host feeds with `WriteStdin` to host-started process `owner`
    /// (its children inherit it).
    Stdin {
        owner: u32,
    },
    /// Standard output and error of host-started process `owner`: its `ProcessOutput` events.
    Stdout {
        owner: u32,
    },
    Stderr {
        owner: u32,
    },
    /// A directory (the VM path), preopened under a guest-visible name or opened by the guest.
    Directory {
        path: String,
        preopen: Option<String>,
        listing: Option<Listing>,
    },
    /// A file or a device node, with the descriptor's position. `node` is the file itself
    /// where the filesystem has inodes (see `fs::open_files`); `path` is its name at the open.
    File {
        path: String,
        offset: u64,
        device: bool,
        node: Option<FileNode>,
    },
    /// One end of a pipe.
    Pipe {
        id: u64,
        end: End,
    },
    /// A socket of the VM's network.
    Socket {
        id: u64,
    },
}

/// A directory's entries as listed at the first `read_dir_batch`, so a guest walking it with
/// cookies sees a stable list. Each entry's kind and serial number are looked up only when a
/// batch first reaches it: a listing costs its names up front and one `lstat` per entry the
/// guest actually reads, spread over its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub(crate) names: Vec<String>,
    /// `(ino, kind)` of each name, once looked up.
    pub(crate) stats: Vec<Option<(u64, EntryKind)>>,
}

/// The type of a directory entry or a stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    RegularFile,
    Symlink,
    CharacterDevice,
    Unknown,
}

/// The synchronized I/O a descriptor was opened with. Every write here is complete, and as
/// durable as the VM's filesystem ever is, when it returns, so these change nothing but what the
/// descriptor reports back (`fd_fdstat_get`), as programs that check them expect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncFlags {
    /// Data integrity on write (`O_DSYNC`).
    pub data: bool,
    /// File integrity on write (`O_SYNC`).
    pub file: bool,
    /// Reads synchronized like writes (`O_RSYNC`).
    pub read: bool,
}

/// One open descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub(crate) file: OpenFile,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) append: bool,
    /// Reads that would wait fail with `EAGAIN` instead (`O_NONBLOCK`).
    pub(crate) nonblocking: bool,
    /// What the open asked of synchronized I/O (reported back, nothing more).
    pub(crate) sync: SyncFlags,
}

impl Descriptor {
    pub(crate) fn stdio(file: OpenFile) -> Self {
        let readable = matches!(file, OpenFile::Stdin { .. });
        Self { file, readable, writable: !readable, append: !readable, nonblocking: false, sync: SyncFlags::default() }
    }

    /// A directory opened for listing and as a base for relative paths (`path` is a VM path).
    pub(crate) fn directory(path: String) -> Self {
        Self {
            file: OpenFile::Directory { path, preopen: None, listing: None },
            readable: true,
            writable: false,
            append: false,
            nonblocking: false,
            sync: SyncFlags::default(),
        }
    }

    /// Whether this is a preopened directory (one the libc finds at start-up, by name).
    pub(crate) fn is_preopen(&self) -> bool {
        matches!(self.file, OpenFile::Directory { preopen: Some(_), .. })
    }

    pub(crate) fn preopen(path: String, name: String) -> Self {
        Self {
            file: OpenFile::Directory { path, preopen: Some(name), listing: None },
            readable: true,
            writable: false,
            append: false,
            nonblocking: false,
            sync: SyncFlags::default(),
        }
    }
}

/// Descriptors by number; new ones take the lowest free number, as POSIX requires.
///
/// The close-on-exec flag (`FD_CLOEXEC`) belongs to the number, not to what it refers to (two
/// numbers for one pipe end each have their own), so the table keeps it: every way a number is
/// (re)filled — a new descriptor, `dup2`, a renumbering — starts it cleared, as POSIX says.
#[derive(Debug, Clone, Default)]
pub(crate) struct FdTable {
    fds: BTreeMap<u32, Descriptor>,
    /// The numbers marked close-on-exec (all of them open).
    cloexec: BTreeSet<u32>,
}

impl FdTable {
    pub(crate) fn get(&self, fd: u32) -> Result<&Descriptor, Errno> {
        self.fds.get(&fd).ok_or(Errno::EBADF)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, Errno> {
        self.fds.get_mut(&fd).ok_or(Errno::EBADF)
    }

    /// Adds `descriptor` at the lowest free number; `EMFILE` when `max_open_fds` are open.
    pub(crate) fn insert(&mut self, descriptor: Descriptor, max_open_fds: u64) -> Result<u32, Errno> {
        if u64::try_from(self.fds.len()).unwrap_or(u64::MAX) >= max_open_fds {
            return Err(Errno::EMFILE);
        }
        let mut fd = 0u32;
        for used in self.fds.keys() {
            if *used != fd {
                break;
            }
            fd = fd.checked_add(1).ok_or(Errno::EMFILE)?;
        }
        self.fds.insert(fd, descriptor);
        self.cloexec.remove(&fd);
        Ok(fd)
    }

    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }

    /// Removes `fd`, returning what it held (the caller releases a pipe end).
    pub(crate) fn close(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        self.cloexec.remove(&fd);
        self.fds.remove(&fd).ok_or(Errno::EBADF)
    }

    /// Moves `from` to `to`; returns what `to` held before. `to` is not close-on-exec after,
    /// whatever either was (a renumbering is a `dup2` and a `close`).
    pub(crate) fn renumber(&mut self, from: u32, to: u32) -> Result<Descriptor, Errno> {
        if !self.fds.contains_key(&to) || !self.fds.contains_key(&from) {
            return Err(Errno::EBADF);
        }
        let descriptor = self.fds.remove(&from).ok_or(Errno::EBADF)?;
        self.cloexec.remove(&from);
        self.cloexec.remove(&to);
        self.fds.insert(to, descriptor).ok_or(Errno::EBADF)
    }

    /// Puts `descriptor` at `fd` (not close-on-exec, as after `dup2`), returning what was there.
    pub(crate) fn replace(&mut self, fd: u32, descriptor: Descriptor) -> Option<Descriptor> {
        self.cloexec.remove(&fd);
        self.fds.insert(fd, descriptor)
    }

    /// Every descriptor, removed (the process is gone).
    pub(crate) fn drain(&mut self) -> Vec<Descriptor> {
        self.cloexec.clear();
        std::mem::take(&mut self.fds).into_values().collect()
    }

    /// Marks `fd` close-on-exec or clears the mark (`fcntl(F_SETFD)`); `EBADF` if not open.
    pub(crate) fn set_cloexec(&mut self, fd: u32, cloexec: bool) -> Result<(), Errno> {
        if !self.fds.contains_key(&fd) {
            return Err(Errno::EBADF);
        }
        if cloexec {
            self.cloexec.insert(fd);
        } else {
            self.cloexec.remove(&fd);
        }
        Ok(())
    }

    /// Whether `fd` is marked close-on-exec (`fcntl(F_GETFD)`); `EBADF` if not open.
    pub(crate) fn is_cloexec(&self, fd: u32) -> Result<bool, Errno> {
        self.get(fd)?;
        Ok(self.cloexec.contains(&fd))
    }

    /// Removes every descriptor marked close-on-exec (an exec, or a spawn about to start its
    /// program), returning them so the caller can release what they held.
    pub(crate) fn close_cloexec(&mut self) -> Vec<Descriptor> {
        let marked = std::mem::take(&mut self.cloexec);
        marked.into_iter().filter_map(|fd| self.fds.remove(&fd)).collect()
    }

    /// Removes every descriptor numbered `lowest` or more (`closefrom`), returning them.
    pub(crate) fn close_from(&mut self, lowest: u32) -> Vec<Descriptor> {
        let closed = self.fds.split_off(&lowest);
        self.cloexec.retain(|fd| *fd < lowest);
        closed.into_values().collect()
    }

    /// Every open descriptor with its number, lowest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Descriptor)> {
        self.fds.iter().map(|(fd, descriptor)| (*fd, descriptor))
    }

    /// Keeps only the descriptors `keep` accepts, returning the others (removed).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Descriptor) -> bool) -> Vec<Descriptor> {
        let (kept, dropped): (BTreeMap<u32, Descriptor>, BTreeMap<u32, Descriptor>) =
            std::mem::take(&mut self.fds).into_iter().partition(|(_, descriptor)| keep(descriptor));
        self.fds = kept;
        self.cloexec.retain(|fd| self.fds.contains_key(fd));
        dropped.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_number_and_the_limit() {
        let mut table = FdTable::default();
        let stdin = Descriptor::stdio(OpenFile::Stdin { owner: 1 });
        assert_eq!(table.insert(stdin.clone(), 3), Ok(0));
        assert_eq!(table.insert(stdin.clone(), 3), Ok(1));
        assert_eq!(table.insert(stdin.clone(), 3), Ok(2));
        assert_eq!(table.insert(stdin.clone(), 3), Err(Errno::EMFILE));
        assert!(table.close(1).is_ok());
        assert_eq!(table.close(1), Err(Errno::EBADF));
        assert_eq!(table.insert(stdin, 3), Ok(1));
        assert!(table.renumber(0, 2).is_ok());
        assert_eq!(table.get(0), Err(Errno::EBADF));
    }

    #[test]
    fn close_on_exec_belongs_to_the_number() {
        let mut table = FdTable::default();
        let stdin = Descriptor::stdio(OpenFile::Stdin { owner: 1 });
        for _ in 0..4 {
            assert!(table.insert(stdin.clone(), u64::MAX).is_ok());
        }
        assert_eq!(table.set_cloexec(1, true), Ok(()));
        assert_eq!(table.set_cloexec(3, true), Ok(()));
        assert_eq!(table.set_cloexec(9, true), Err(Errno::EBADF));
        assert_eq!(
            (table.is_cloexec(1), table.is_cloexec(0), table.is_cloexec(9)),
            (Ok(true), Ok(false), Err(Errno::EBADF))
        );
        // A copy (a spawned child's table) keeps the marks; `dup2` onto a number clears its mark.
        let mut child = table.clone();
        assert!(child.replace(1, stdin.clone()).is_some());
        assert_eq!((child.is_cloexec(1), table.is_cloexec(1)), (Ok(false), Ok(true)));
        assert_eq!(child.close_cloexec().len(), 1, "only 3 was still marked");
        assert_eq!(child.iter().map(|(fd, _)| fd).collect::<Vec<_>>(), [0, 1, 2]);
        // A number closed and reused starts unmarked.
        assert!(table.close(1).is_ok());
        assert_eq!(table.insert(stdin.clone(), u64::MAX), Ok(1));
        assert_eq!(table.is_cloexec(1), Ok(false));
        assert!(table.renumber(3, 0).is_ok());
        assert_eq!(table.is_cloexec(0), Ok(false), "a renumbered descriptor is not marked");
        assert_eq!(table.close_cloexec().len(), 0);
        assert_eq!(table.set_cloexec(2, true), Ok(()));
        assert_eq!(table.close_from(1).len(), 2);
        assert_eq!(table.iter().map(|(fd, _)| fd).collect::<Vec<_>>(), [0]);
        assert_eq!(table.insert(stdin, u64::MAX), Ok(1));
        assert_eq!(table.close_cloexec().len(), 0, "closefrom took the mark of 2 with it");
    }

    #[test]
    fn preopens_can_be_dropped() {
        let mut table = FdTable::default();
        assert!(table.insert(Descriptor::stdio(OpenFile::Stdout { owner: 1 }), u64::MAX).is_ok());
        assert!(table.insert(Descriptor::preopen("/".into(), "/".into()), u64::MAX).is_ok());
        assert!(table.insert(Descriptor::directory("/tmp".into()), u64::MAX).is_ok());
        let dropped = table.retain(|descriptor| !descriptor.is_preopen());
        assert_eq!(dropped.len(), 1);
        assert_eq!(table.iter().map(|(fd, _)| fd).collect::<Vec<_>>(), [0, 2]);
    }
}
