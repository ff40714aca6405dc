//! The wire's filesystem types built from the kernel's: the only place the VM filesystem's
//! typed values become protocol structs (the vfs below knows no wire type).

use crate::vfs::Stat;

impl From<&Stat> for schema::wire::GuestFilesystemStat {
    fn from(stat: &Stat) -> Self {
        Self {
            mode: stat.mode,
            size: stat.size,
            blocks: stat.blocks,
            dev: stat.dev,
            rdev: stat.rdev,
            is_directory: stat.is_directory,
            is_symbolic_link: stat.is_symbolic_link,
            atime_ms: stat.atime_ms,
            mtime_ms: stat.mtime_ms,
            ctime_ms: stat.ctime_ms,
            birthtime_ms: stat.birthtime_ms,
            ino: stat.ino,
            nlink: stat.nlink,
            uid: stat.uid,
            gid: stat.gid,
        }
    }
}
