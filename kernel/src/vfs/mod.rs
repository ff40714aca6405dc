//! The virtual filesystem core: an inode-based in-memory [`Filesystem`] with POSIX semantics,
//! sealed shareable [`Layer`]s and a copy-up [`Overlay`] of a writable upper over layers.
//!
//! Deterministic and sans-IO like the rest of the kernel: no clock (file times come from the
//! [`Now`](crate::Now) given to each mutating call), no host files, `BTreeMap` everywhere.
//!
//! Errors are [`FsError`]s: an [`Errno`] plus the operation and path, displayed like Node
//! (`ENOENT: no such file or directory, open '/missing'`). Every limit of [`FsLimits`] fails with
//! `ENOSPC` and [`FsError::limit`] naming it (the dispatcher's `limit_exceeded`).

mod error;
mod fs;
mod overlay;
pub mod path;
mod snapshot;

pub use error::{Errno, FsError, LimitKind};
pub use fs::{
    Filesystem, FsLimits, Stat, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, DEFAULT_MAX_FD_WRITE_BYTES,
    DEFAULT_MAX_FILESYSTEM_BYTES, DEFAULT_MAX_INODE_COUNT, DEFAULT_MAX_PREAD_BYTES, DEFAULT_MAX_READDIR_ENTRIES,
    DIR_SIZE, FILESYSTEM_DEV, NS_PER_MS, PERMISSION_BITS, ROOT_INO, SYMLINK_MODE, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO,
    S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
pub(crate) use overlay::OpenedFile;
pub use overlay::{Overlay, UpperState};
pub use path::{VPath, MAX_SYMLINK_HOPS, NAME_MAX, PATH_MAX};
pub use snapshot::{EntryKind, Layer, SnapshotEntry};
