//! A process's descriptor table.

use std::collections::BTreeMap;

use crate::vfs::Errno;

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
    /// A file or a device node, with the descriptor's position.
    File {
        path: String,
        offset: u64,
        device: bool,
    },
    /// One end of a pipe.
    Pipe {
        id: u64,
        end: End,
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

/// One open descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub(crate) file: OpenFile,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) append: bool,
    /// Reads that would wait fail with `EAGAIN` instead (`O_NONBLOCK`).
    pub(crate) nonblocking: bool,
}

impl Descriptor {
    pub(crate) fn stdio(file: OpenFile) -> Self {
        let readable = matches!(file, OpenFile::Stdin { .. });
        Self { file, readable, writable: !readable, append: !readable, nonblocking: false }
    }

    pub(crate) fn preopen(path: String, name: String) -> Self {
        Self {
            file: OpenFile::Directory { path, preopen: Some(name), listing: None },
            readable: true,
            writable: false,
            append: false,
            nonblocking: false,
        }
    }
}

/// Descriptors by number; new ones take the lowest free number, as POSIX requires.
#[derive(Debug, Clone, Default)]
pub(crate) struct FdTable {
    fds: BTreeMap<u32, Descriptor>,
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
        Ok(fd)
    }

    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }

    /// Removes `fd`, returning what it held (the caller releases a pipe end).
    pub(crate) fn close(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        self.fds.remove(&fd).ok_or(Errno::EBADF)
    }

    /// Moves `from` to `to`; returns what `to` held before.
    pub(crate) fn renumber(&mut self, from: u32, to: u32) -> Result<Descriptor, Errno> {
        if !self.fds.contains_key(&to) || !self.fds.contains_key(&from) {
            return Err(Errno::EBADF);
        }
        let descriptor = self.fds.remove(&from).ok_or(Errno::EBADF)?;
        self.fds.insert(to, descriptor).ok_or(Errno::EBADF)
    }

    /// Puts `descriptor` at `fd`, returning what was there.
    pub(crate) fn replace(&mut self, fd: u32, descriptor: Descriptor) -> Option<Descriptor> {
        self.fds.insert(fd, descriptor)
    }

    /// Every descriptor, removed (the process is gone).
    pub(crate) fn drain(&mut self) -> Vec<Descriptor> {
        std::mem::take(&mut self.fds).into_values().collect()
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
}
