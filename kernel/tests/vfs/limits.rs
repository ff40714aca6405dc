//! Each of the five limits: the operation fails with ENOSPC naming the bound, and the filesystem
//! is exactly as before (`Filesystem: PartialEq` compares every inode, counter and total).

use kernel::vfs::{
    Errno, Filesystem, FsError, FsLimits, LimitKind, DEFAULT_MAX_FD_WRITE_BYTES, DEFAULT_MAX_FILESYSTEM_BYTES,
    DEFAULT_MAX_INODE_COUNT, DEFAULT_MAX_PREAD_BYTES, DEFAULT_MAX_READDIR_ENTRIES,
};

use testkit::vfs_driver::listing;

use crate::common::t;

fn limits() -> FsLimits {
    FsLimits {
        max_filesystem_bytes: 100,
        max_inode_count: 8,
        max_readdir_entries: 4,
        max_pread_bytes: 10,
        max_fd_write_bytes: 50,
    }
}

/// A filesystem with some content: 5 inodes, 30 bytes.
fn populated() -> Filesystem {
    let mut fs = Filesystem::new(limits(), t(0));
    fs.mkdir("/d", false, t(1)).unwrap();
    fs.write_file("/d/f", &[1; 20], t(1)).unwrap();
    fs.write_file("/g", &[2; 10], t(1)).unwrap();
    fs.symlink("/d/f", "/l", t(1)).unwrap();
    assert_eq!((fs.inode_count(), fs.total_bytes()), (5, 30));
    fs
}

fn assert_limit<T: std::fmt::Debug>(result: Result<T, FsError>, kind: LimitKind, limit: u64) -> FsError {
    let err = result.unwrap_err();
    assert_eq!(err.errno(), Errno::ENOSPC);
    assert_eq!(err.limit(), Some((kind, limit)), "{err}");
    err
}

/// Runs `op` on a copy of `fs`, expects the limit, and checks nothing changed.
fn refused(fs: &Filesystem, kind: LimitKind, limit: u64, op: impl FnOnce(&mut Filesystem) -> Result<(), FsError>) {
    let mut work = fs.clone();
    assert_limit(op(&mut work), kind, limit);
    assert_eq!(listing(work.export()), listing(fs.export()));
    assert_eq!(&work, fs, "not even a time, counter or total changed");
}

#[test]
fn defaults_are_the_named_constants() {
    let d = FsLimits::default();
    assert_eq!(d.max_filesystem_bytes, DEFAULT_MAX_FILESYSTEM_BYTES);
    assert_eq!(d.max_inode_count, DEFAULT_MAX_INODE_COUNT);
    assert_eq!(d.max_readdir_entries, DEFAULT_MAX_READDIR_ENTRIES);
    assert_eq!(d.max_pread_bytes, DEFAULT_MAX_PREAD_BYTES);
    assert_eq!(d.max_fd_write_bytes, DEFAULT_MAX_FD_WRITE_BYTES);
    assert_eq!(
        (DEFAULT_MAX_FILESYSTEM_BYTES, DEFAULT_MAX_INODE_COUNT, DEFAULT_MAX_READDIR_ENTRIES),
        (64 << 20, 16_384, 4_096)
    );
    assert_eq!((DEFAULT_MAX_PREAD_BYTES, DEFAULT_MAX_FD_WRITE_BYTES), (64 << 20, 64 << 20));
}

#[test]
fn filesystem_bytes() {
    let mut fs = populated();
    fs.set_limits(FsLimits { max_fd_write_bytes: u64::MAX, ..limits() });
    // 30 used of 100: 70 more fit exactly, 71 do not — by a new file, a rewrite, a
    // truncate, a pwrite.
    refused(&fs, LimitKind::FilesystemBytes, 100, |fs| fs.write_file("/new", &[0; 71], t(9)));
    refused(&fs, LimitKind::FilesystemBytes, 100, |fs| fs.write_file("/g", &[0; 81], t(9)));
    refused(&fs, LimitKind::FilesystemBytes, 100, |fs| fs.write_file("/l", &[0; 91], t(9)));
    refused(&fs, LimitKind::FilesystemBytes, 100, |fs| fs.truncate("/g", 81, t(9)));
    refused(&fs, LimitKind::FilesystemBytes, 100, |fs| fs.pwrite("/g", 80, &[1], t(9)).map(|_| ()));
    fs.write_file("/new", &[0; 70], t(9)).unwrap();
    assert_eq!(fs.total_bytes(), 100);
    // Shrinking always works and frees bytes.
    fs.truncate("/new", 0, t(10)).unwrap();
    fs.remove_file("/g", t(10)).unwrap();
    assert_eq!(fs.total_bytes(), 20);
    let err = assert_limit(fs.write_file("/huge", &[0; 81], t(11)), LimitKind::FilesystemBytes, 100);
    assert_eq!(err.to_string(), "ENOSPC: filesystem bytes limit of 100 reached, open '/huge'");
}

#[test]
fn inode_count() {
    let mut fs = populated();
    fs.write_file("/x", b"", t(2)).unwrap();
    fs.write_file("/y", b"", t(2)).unwrap();
    fs.write_file("/z", b"", t(2)).unwrap();
    assert_eq!(fs.inode_count(), 8);
    refused(&fs, LimitKind::InodeCount, 8, |fs| fs.write_file("/w", b"", t(9)));
    refused(&fs, LimitKind::InodeCount, 8, |fs| fs.create_dir("/w", t(9)));
    refused(&fs, LimitKind::InodeCount, 8, |fs| fs.symlink("x", "/w", t(9)));
    // Renames, links and rewrites need no inode.
    fs.rename("/x", "/d/x", t(3)).unwrap();
    fs.link("/y", "/d/y", t(3)).unwrap();
    fs.write_file("/z", b"zz", t(3)).unwrap();
    assert_eq!(fs.inode_count(), 8);
    // mkdir -p that would need 3 inodes with 1 free: nothing made, parent times untouched.
    fs.remove_file("/z", t(4)).unwrap();
    refused(&fs, LimitKind::InodeCount, 8, |fs| fs.mkdir("/d/p/q/r", true, t(9)));
    refused(&fs, LimitKind::InodeCount, 8, |fs| fs.mkdir("/p/../q/../r", true, t(9)));
    fs.mkdir("/d/p", true, t(9)).unwrap();
    assert_eq!(fs.inode_count(), 8);
    // Freed by removal (a recursive removal frees the whole subtree).
    fs.remove_dir("/d", true, t(10)).unwrap();
    assert_eq!(fs.inode_count(), 4, "root, /g, /l, and /y (still linked at /y)");
}

#[test]
fn readdir_entries() {
    let mut fs = populated();
    fs.set_limits(FsLimits { max_inode_count: 100, ..limits() });
    for name in ["a", "b", "c"] {
        fs.write_file(format!("/d/{name}").as_str(), b"", t(2)).unwrap();
    }
    assert_eq!(fs.read_dir("/d").unwrap().len(), 4);
    fs.write_file("/d/e", b"", t(2)).unwrap();
    refused(&fs, LimitKind::ReaddirEntries, 4, |fs| fs.read_dir("/d").map(|_| ()));
    let err = assert_limit(fs.read_dir("/d"), LimitKind::ReaddirEntries, 4);
    assert_eq!(err.to_string(), "ENOSPC: readdir entries limit of 4 reached, scandir '/d'");
    // Other operations on the directory still work.
    fs.remove_file("/d/e", t(3)).unwrap();
    assert_eq!(fs.read_dir("/d").unwrap(), ["a", "b", "c", "f"]);
}

#[test]
fn pread_bytes() {
    let fs = populated();
    assert_eq!(fs.pread("/d/f", 5, 10).unwrap(), &[1; 10]);
    assert_eq!(fs.pread("/d/f", 15, 10).unwrap(), &[1; 5], "short at the end");
    assert_eq!(fs.pread("/d/f", 500, 10).unwrap(), &[] as &[u8], "nothing past it");
    refused(&fs, LimitKind::PreadBytes, 10, |fs| fs.pread("/d/f", 0, 11).map(|_| ()));
    let err = assert_limit(fs.pread("/l", 0, u64::MAX), LimitKind::PreadBytes, 10);
    assert_eq!(err.to_string(), "ENOSPC: pread bytes limit of 10 reached, read '/l'");
}

#[test]
fn fd_write_bytes() {
    let fs = populated();
    refused(&fs, LimitKind::FdWriteBytes, 50, |fs| fs.write_file("/new", &[0; 51], t(9)));
    refused(&fs, LimitKind::FdWriteBytes, 50, |fs| fs.write_file("/g", &[0; 51], t(9)));
    refused(&fs, LimitKind::FdWriteBytes, 50, |fs| fs.pwrite("/g", 0, &[0; 51], t(9)).map(|_| ()));
    let mut fs = fs;
    fs.write_file("/new", &[0; 50], t(9)).unwrap();
    // The bound is per write: two writes make a file larger than one may.
    assert_eq!(fs.pwrite("/new", 40, &[7; 20], t(10)).unwrap(), 20);
    assert_eq!(fs.stat("/new").unwrap().size, 60);
}

#[test]
fn hard_links_count_content_once() {
    let mut fs = populated();
    fs.link("/d/f", "/f2", t(2)).unwrap();
    fs.link("/d/f", "/f3", t(2)).unwrap();
    assert_eq!((fs.inode_count(), fs.total_bytes()), (5, 30));
    fs.remove_file("/d/f", t(3)).unwrap();
    fs.remove_file("/f2", t(3)).unwrap();
    assert_eq!((fs.inode_count(), fs.total_bytes()), (5, 30));
    fs.remove_file("/f3", t(3)).unwrap();
    assert_eq!((fs.inode_count(), fs.total_bytes()), (4, 10));
}

#[test]
fn import_is_all_or_nothing() {
    use kernel::vfs::SnapshotEntry;
    let fs = populated();
    let entries: Vec<SnapshotEntry> =
        (0..5).map(|i| SnapshotEntry::file(format!("/imported/{i}"), vec![0u8; 5])).collect();
    refused(&fs, LimitKind::InodeCount, 8, |fs| fs.import(&entries, t(9)));
    let big = [SnapshotEntry::file("/big1", vec![0u8; 40]), SnapshotEntry::file("/big2", vec![0u8; 40])];
    refused(&fs, LimitKind::FilesystemBytes, 100, |fs| fs.import(&big, t(9)));
}
