//! Runs a [`vfs_model::Op`](crate::vfs_model::Op) on the real filesystem, a `Filesystem` or an
//! `Overlay` alike, and turns what it returns into values comparable with the model's.

use kernel::vfs::{
    EntryKind, Filesystem, FsError, FsLimits, LimitKind, Overlay, SnapshotEntry, Stat, VPath, S_IFDIR, S_IFLNK, S_IFMT,
    S_IFREG,
};
use kernel::Now;

use crate::vfs_model::{Listed, Op, Out, BYTES, INODES, PREAD, READDIR, WRITE};

/// The operations both [`Filesystem`] and [`Overlay`] offer, so one driver runs either.
pub trait Vfs {
    /// The limits writes are checked against (an overlay's are its upper's).
    fn limits(&self) -> FsLimits;
    fn set_read_only(&mut self, read_only: bool);
    fn write_file(&mut self, p: VPath<'_>, d: &[u8], now: Now) -> Result<(), FsError>;
    fn pwrite(&mut self, p: VPath<'_>, o: u64, d: &[u8], now: Now) -> Result<u64, FsError>;
    fn truncate(&mut self, p: VPath<'_>, n: u64, now: Now) -> Result<(), FsError>;
    fn read_file(&self, p: VPath<'_>) -> Result<&[u8], FsError>;
    fn pread(&self, p: VPath<'_>, o: u64, n: u64) -> Result<&[u8], FsError>;
    fn mkdir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError>;
    fn remove_dir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError>;
    fn remove_file(&mut self, p: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn rename(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn symlink(&mut self, t: &str, p: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn link(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn chmod(&mut self, p: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError>;
    fn read_link(&self, p: VPath<'_>) -> Result<String, FsError>;
    fn stat(&self, p: VPath<'_>) -> Result<Stat, FsError>;
    fn lstat(&self, p: VPath<'_>) -> Result<Stat, FsError>;
    fn read_dir(&self, p: VPath<'_>) -> Result<Vec<String>, FsError>;
    fn realpath(&self, p: VPath<'_>) -> Result<String, FsError>;
    fn exists(&self, p: VPath<'_>) -> bool;
}

macro_rules! impl_vfs {
    ($t:ty, $limits:expr) => {
        impl Vfs for $t {
            fn limits(&self) -> FsLimits {
                $limits(self)
            }
            fn set_read_only(&mut self, read_only: bool) {
                <$t>::set_read_only(self, read_only)
            }
            fn write_file(&mut self, p: VPath<'_>, d: &[u8], now: Now) -> Result<(), FsError> {
                <$t>::write_file(self, p, d, now)
            }
            fn pwrite(&mut self, p: VPath<'_>, o: u64, d: &[u8], now: Now) -> Result<u64, FsError> {
                <$t>::pwrite(self, p, o, d, now)
            }
            fn truncate(&mut self, p: VPath<'_>, n: u64, now: Now) -> Result<(), FsError> {
                <$t>::truncate(self, p, n, now)
            }
            fn read_file(&self, p: VPath<'_>) -> Result<&[u8], FsError> {
                <$t>::read_file(self, p)
            }
            fn pread(&self, p: VPath<'_>, o: u64, n: u64) -> Result<&[u8], FsError> {
                <$t>::pread(self, p, o, n)
            }
            fn mkdir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError> {
                <$t>::mkdir(self, p, r, now)
            }
            fn remove_dir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError> {
                <$t>::remove_dir(self, p, r, now)
            }
            fn remove_file(&mut self, p: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::remove_file(self, p, now)
            }
            fn rename(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::rename(self, a, b, now)
            }
            fn symlink(&mut self, t: &str, p: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::symlink(self, t, p, now)
            }
            fn link(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::link(self, a, b, now)
            }
            fn chmod(&mut self, p: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
                <$t>::chmod(self, p, mode, now)
            }
            fn read_link(&self, p: VPath<'_>) -> Result<String, FsError> {
                <$t>::read_link(self, p)
            }
            fn stat(&self, p: VPath<'_>) -> Result<Stat, FsError> {
                <$t>::stat(self, p)
            }
            fn lstat(&self, p: VPath<'_>) -> Result<Stat, FsError> {
                <$t>::lstat(self, p)
            }
            fn read_dir(&self, p: VPath<'_>) -> Result<Vec<String>, FsError> {
                <$t>::read_dir(self, p)
            }
            fn realpath(&self, p: VPath<'_>) -> Result<String, FsError> {
                <$t>::realpath(self, p)
            }
            fn exists(&self, p: VPath<'_>) -> bool {
                <$t>::exists(self, p)
            }
        }
    };
}

impl_vfs!(Filesystem, |fs: &Filesystem| *fs.limits());
impl_vfs!(Overlay, |ov: &Overlay| *ov.upper().limits());

/// Runs `op` on `fs` from working directory `cwd` at `now`. The error is the real one, so a
/// caller can check its label too; [`error_name`] makes it comparable with the model's.
pub fn apply<V: Vfs>(fs: &mut V, cwd: &str, op: &Op, now: Now) -> Result<Out, FsError> {
    let bytes = |b: &[u8]| Out::Bytes(b.to_vec());
    match op {
        Op::Write(p, d) => fs.write_file(VPath::at(cwd, p), d, now).map(|()| Out::Unit),
        Op::Pwrite(p, o, d) => fs.pwrite(VPath::at(cwd, p), *o, d, now).map(Out::Count),
        Op::Truncate(p, n) => fs.truncate(VPath::at(cwd, p), *n, now).map(|()| Out::Unit),
        Op::Mkdir(p, r) => fs.mkdir(VPath::at(cwd, p), *r, now).map(|()| Out::Unit),
        Op::Rmdir(p, r) => fs.remove_dir(VPath::at(cwd, p), *r, now).map(|()| Out::Unit),
        Op::Unlink(p) => fs.remove_file(VPath::at(cwd, p), now).map(|()| Out::Unit),
        Op::Symlink(target, p) => fs.symlink(target, VPath::at(cwd, p), now).map(|()| Out::Unit),
        Op::Rename(a, b) => fs.rename(VPath::at(cwd, a), VPath::at(cwd, b), now).map(|()| Out::Unit),
        Op::Link(a, b) => fs.link(VPath::at(cwd, a), VPath::at(cwd, b), now).map(|()| Out::Unit),
        Op::Chmod(p, m) => fs.chmod(VPath::at(cwd, p), *m, now).map(|()| Out::Unit),
        Op::Read(p) => fs.read_file(VPath::at(cwd, p)).map(bytes),
        Op::Pread(p, o, n) => fs.pread(VPath::at(cwd, p), *o, *n).map(bytes),
        Op::ReadLink(p) => fs.read_link(VPath::at(cwd, p)).map(Out::Text),
        Op::Stat(p) => fs.stat(VPath::at(cwd, p)).map(stat_out),
        Op::Lstat(p) => fs.lstat(VPath::at(cwd, p)).map(stat_out),
        Op::ReadDir(p) => fs.read_dir(VPath::at(cwd, p)).map(Out::Names),
        Op::Realpath(p) => fs.realpath(VPath::at(cwd, p)).map(Out::Text),
        Op::Exists(p) => Ok(Out::Bool(fs.exists(VPath::at(cwd, p)))),
        Op::ReadOnly(read_only) => {
            fs.set_read_only(*read_only);
            Ok(Out::Unit)
        }
    }
}

/// A real `stat` as the model reports it.
///
/// Also the oracle of what the model does not track: the file-type bits match the kind and
/// `blocks` counts 512-byte blocks of the size. A mismatch stops the test here (this is test
/// code: the assertion is the point).
pub fn stat_out(stat: Stat) -> Out {
    let (kind, file_type) = if stat.is_directory {
        ('d', S_IFDIR)
    } else if stat.is_symbolic_link {
        ('l', S_IFLNK)
    } else {
        ('f', S_IFREG)
    };
    assert_eq!(stat.mode & S_IFMT, file_type, "file type bits of {stat:?}");
    assert_eq!(stat.blocks, stat.size.div_ceil(512), "blocks of {stat:?}");
    Out::Stat { kind, size: stat.size, nlink: stat.nlink, mtime: stat.mtime_ms, mode: stat.mode & 0o7777 }
}

/// The error as the model names it: its errno, or for a limit failure the bound it names.
pub fn error_name(error: &FsError) -> &'static str {
    match error.limit() {
        None => error.code(),
        Some((LimitKind::FilesystemBytes, _)) => BYTES,
        Some((LimitKind::InodeCount, _)) => INODES,
        Some((LimitKind::ReaddirEntries, _)) => READDIR,
        Some((LimitKind::PreadBytes, _)) => PREAD,
        Some((LimitKind::FdWriteBytes, _)) => WRITE,
    }
}

/// An export as the model lists its tree ([`Model::listing`](crate::vfs_model::Model::listing)).
pub fn listing(entries: Vec<SnapshotEntry>) -> Vec<Listed> {
    entries
        .into_iter()
        .map(|e| match e.kind {
            EntryKind::Directory => (e.path, 'd', e.mode, Vec::new()),
            EntryKind::File(bytes) => (e.path, 'f', e.mode, bytes),
            EntryKind::Symlink(target) => (e.path, 'l', e.mode, target.into_bytes()),
        })
        .collect()
}

/// An export without times and owners: what an overlay and a flat filesystem holding the same
/// tree must agree on.
pub fn tree(entries: Vec<SnapshotEntry>) -> Vec<(String, u32, EntryKind)> {
    entries.into_iter().map(|e| (e.path, e.mode, e.kind)).collect()
}
