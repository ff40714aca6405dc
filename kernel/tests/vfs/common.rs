//! Helpers shared by the test modules: one trait over `Filesystem` and `Overlay`.

use kernel::vfs::{Filesystem, FsError, Overlay, Stat, VPath};
use kernel::Now;

pub fn t(ms: u64) -> Now {
    Now::from_millis(ms, ms)
}

/// The operations both `Filesystem` and `Overlay` offer, so one driver runs either.
pub trait Vfs {
    fn write_file(&mut self, p: VPath<'_>, d: &[u8], now: Now) -> Result<(), FsError>;
    fn truncate(&mut self, p: VPath<'_>, n: u64, now: Now) -> Result<(), FsError>;
    fn read_file(&self, p: VPath<'_>) -> Result<&[u8], FsError>;
    fn pread(&self, p: VPath<'_>, o: u64, n: u64) -> Result<&[u8], FsError>;
    fn mkdir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError>;
    fn remove_dir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError>;
    fn remove_file(&mut self, p: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn rename(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn symlink(&mut self, t: &str, p: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn read_link(&self, p: VPath<'_>) -> Result<String, FsError>;
    fn stat(&self, p: VPath<'_>) -> Result<Stat, FsError>;
    fn lstat(&self, p: VPath<'_>) -> Result<Stat, FsError>;
    fn read_dir(&self, p: VPath<'_>) -> Result<Vec<String>, FsError>;
    fn realpath(&self, p: VPath<'_>) -> Result<String, FsError>;
    fn exists(&self, p: VPath<'_>) -> bool;
}

macro_rules! impl_vfs {
    ($t:ty) => {
        impl Vfs for $t {
            fn write_file(&mut self, p: VPath<'_>, d: &[u8], now: Now) -> Result<(), FsError> {
                <$t>::write_file(self, p, d, now)
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

impl_vfs!(Filesystem);
impl_vfs!(Overlay);
