//! The VM filesystem's typed operations and answers: what guest system calls, the kernel's own
//! reads and (through `wire.rs`) the host's `GuestFilesystemCallRequest`s all call.

use crate::fs::mounts::Final;
use crate::policy::permissions::{Capability, Check};
use crate::vfs::{Errno, FsError, Stat};

/// One operation on a path of the VM's filesystem, with its arguments. Paths are guest paths
/// (absolute, or relative to the VM's cwd); file content is raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsOp<'a> {
    ReadFile,
    Pread {
        offset: u64,
        len: u64,
    },
    /// Creates or replaces the file; `mode` for a new file (default `0o644`).
    WriteFile {
        data: &'a [u8],
        mode: Option<u32>,
    },
    /// `mkdir` without `-p`, as Node's `fs.mkdir` without options (the original's CREATE_DIR).
    CreateDir {
        mode: Option<u32>,
    },
    Mkdir {
        recursive: bool,
        mode: Option<u32>,
    },
    Exists,
    Stat,
    Lstat,
    ReadDir,
    RemoveFile,
    RemoveDir {
        recursive: bool,
    },
    Rename {
        to: &'a str,
    },
    Realpath,
    /// Creates a symlink at the operation's path leading to `target` (stored as given).
    Symlink {
        target: &'a str,
    },
    ReadLink,
    /// Creates a hard link at `to` to the operation's path.
    Link {
        to: &'a str,
    },
    Chmod {
        mode: u32,
    },
    Chown {
        uid: u32,
        gid: u32,
    },
    /// Sets access and modification times (nanoseconds since the epoch), of a final symlink
    /// itself unless `follow`.
    Utimes {
        atime_ns: u64,
        mtime_ns: u64,
        follow: bool,
    },
    Truncate {
        len: u64,
    },
}

/// What an operation answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FsReply {
    Done,
    Content(Vec<u8>),
    Exists(bool),
    Stat(Stat),
    Entries(Vec<String>),
    Target(String),
}

/// A host's operation on a `host_dir` mount (`HostFilesystemCallRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostOp<'a> {
    Read,
    /// Sets the file's size to `len` (creating it zero-filled).
    Write {
        len: u64,
    },
    Stat,
    ReadDir,
    Mkdir,
    /// A file, or an empty directory.
    Remove,
    Rename {
        to: &'a str,
    },
}

/// Whether the policy is asked about the final component itself or where it leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// The node a final symlink leads to (dangling links included: writing through one creates
    /// its target).
    Follow,
    /// The final entry itself (its parent directories resolved).
    NoFollow,
}

impl FsOp<'_> {
    /// The second path of RENAME and LINK.
    pub(crate) fn destination(&self) -> Option<&str> {
        match self {
            Self::Rename { to } | Self::Link { to } => Some(to),
            _ => None,
        }
    }

    /// How the operation treats its path's final component (the vfs's resolution modes).
    pub(crate) fn final_mode(&self) -> Final {
        match self {
            Self::Lstat | Self::ReadLink | Self::Link { .. } | Self::Utimes { follow: false, .. } => Final::NoFollow,
            Self::CreateDir { .. }
            | Self::Mkdir { .. }
            | Self::RemoveFile
            | Self::RemoveDir { .. }
            | Self::Rename { .. }
            | Self::Symlink { .. } => Final::Parent,
            _ => Final::Follow,
        }
    }

    /// Whether the operation changes the filesystem (refused with `EROFS` on read-only mounts).
    pub(crate) fn mutates(&self) -> bool {
        !matches!(
            self,
            Self::ReadFile
                | Self::Pread { .. }
                | Self::Exists
                | Self::Stat
                | Self::Lstat
                | Self::ReadDir
                | Self::Realpath
                | Self::ReadLink
        )
    }

    /// Whether the operation creates an entry at its own path.
    pub(crate) fn creates(&self) -> bool {
        matches!(self, Self::WriteFile { .. } | Self::CreateDir { .. } | Self::Mkdir { .. } | Self::Symlink { .. })
    }

    /// Node's syscall name for the operation, as the vfs labels its errors.
    pub(crate) fn syscall_name(&self) -> &'static str {
        match self {
            Self::ReadFile | Self::WriteFile { .. } | Self::Truncate { .. } => "open",
            Self::CreateDir { .. } | Self::Mkdir { .. } => "mkdir",
            Self::Exists => "access",
            Self::Stat => "stat",
            Self::Lstat => "lstat",
            Self::ReadDir => "scandir",
            Self::RemoveFile => "unlink",
            Self::RemoveDir { .. } => "rmdir",
            Self::Rename { .. } => "rename",
            Self::Realpath => "realpath",
            Self::Symlink { .. } => "symlink",
            Self::ReadLink => "readlink",
            Self::Link { .. } => "link",
            Self::Chmod { .. } => "chmod",
            Self::Chown { .. } => "chown",
            Self::Utimes { .. } => "utime",
            Self::Pread { .. } => "read",
        }
    }

    /// The check, denial label and subject kind of the operation (see the table in `fs`).
    pub(crate) fn access(&self) -> (Check, &'static str, Subject) {
        use Subject::{Follow, NoFollow};
        let plain = Check::plain;
        match self {
            Self::ReadFile | Self::Pread { .. } | Self::Realpath => (plain(Capability::FsRead), "read", Follow),
            Self::ReadLink => (Check::refined(Capability::FsReadlink), "readlink", NoFollow),
            Self::WriteFile { .. } => (plain(Capability::FsWrite), "write", Follow),
            Self::Link { .. } => (Check::refined(Capability::FsLink), "link", NoFollow),
            Self::Chmod { .. } => (Check::refined(Capability::FsChmod), "chmod", Follow),
            Self::Chown { .. } => (Check::refined(Capability::FsChown), "chown", Follow),
            Self::Utimes { follow: true, .. } => (Check::refined(Capability::FsUtimes), "utimes", Follow),
            Self::Utimes { follow: false, .. } => (Check::refined(Capability::FsUtimes), "utimes", NoFollow),
            Self::Truncate { .. } => (Check::refined(Capability::FsTruncate), "truncate", Follow),
            Self::Stat => (plain(Capability::FsStat), "stat", Follow),
            Self::Lstat => (plain(Capability::FsStat), "stat", NoFollow),
            Self::Exists => (plain(Capability::FsStat), "exists", Follow),
            Self::ReadDir => (plain(Capability::FsReaddir), "readdir", Follow),
            Self::Mkdir { .. } => (plain(Capability::FsCreateDir), "mkdir", NoFollow),
            Self::CreateDir { .. } => (plain(Capability::FsCreateDir), "createDir", NoFollow),
            Self::RemoveFile | Self::RemoveDir { .. } => (plain(Capability::FsRm), "rm", NoFollow),
            Self::Rename { .. } => (plain(Capability::FsRename), "rename", NoFollow),
            Self::Symlink { .. } => (plain(Capability::FsSymlink), "symlink", NoFollow),
        }
    }

    /// An error of a routed call, labelled with the call's own paths (not the mount-local ones).
    pub(crate) fn relabel(&self, error: FsError, path: &str) -> FsError {
        let op = if error.op().is_empty() { self.syscall_name() } else { error.op() };
        match self {
            Self::Rename { to } | Self::Link { to } => error.at2(op, path, to),
            Self::Symlink { target } => error.at2(op, target, path),
            _ => error.at(op, path),
        }
    }

    /// A bare errno labelled like [`relabel`](Self::relabel).
    pub(crate) fn failure(&self, errno: Errno, path: &str) -> FsError {
        self.relabel(FsError::new(errno), path)
    }
}

impl HostOp<'_> {
    /// The capability, denial label and subject kind of the operation.
    pub(crate) fn access(&self) -> (Capability, &'static str, Subject) {
        use Subject::{Follow, NoFollow};
        match self {
            Self::Read => (Capability::FsRead, "read", Follow),
            Self::Write { .. } => (Capability::FsWrite, "write", Follow),
            Self::Stat => (Capability::FsStat, "stat", Follow),
            Self::ReadDir => (Capability::FsReaddir, "readdir", Follow),
            Self::Mkdir => (Capability::FsCreateDir, "mkdir", NoFollow),
            Self::Remove => (Capability::FsRm, "rm", NoFollow),
            Self::Rename { .. } => (Capability::FsRename, "rename", NoFollow),
        }
    }
}
