//! Unit tests: rename edge cases, hard links, timestamps, stat fields, error messages, names.

use kernel::vfs::{
    Errno, Filesystem, FsLimits, Stat, VPath, DIR_SIZE, FILESYSTEM_DEV, NAME_MAX, PATH_MAX, ROOT_INO, S_IFDIR, S_IFLNK,
    S_IFMT, S_IFREG,
};
use schema::wire::GuestFilesystemStat;

use crate::common::t;

fn fs() -> Filesystem {
    Filesystem::new(FsLimits::default(), t(0))
}

fn errno<T: std::fmt::Debug>(result: Result<T, kernel::vfs::FsError>) -> Errno {
    result.unwrap_err().errno()
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn error_messages_look_like_the_original() {
    let mut fs = fs();
    assert_eq!(fs.read_file("/missing").unwrap_err().to_string(), "ENOENT: no such file or directory, open '/missing'");
    fs.create_dir("/d", t(1)).unwrap();
    assert_eq!(fs.create_dir("/d", t(1)).unwrap_err().to_string(), "EEXIST: file already exists, mkdir '/d'");
    assert_eq!(fs.read_file("/d").unwrap_err().to_string(), "EISDIR: illegal operation on a directory, open '/d'");
    fs.write_file("/d/f", b"", t(1)).unwrap();
    assert_eq!(fs.remove_dir("/d", false, t(1)).unwrap_err().to_string(), "ENOTEMPTY: directory not empty, rmdir '/d'");
    assert_eq!(fs.read_dir("/d/f").unwrap_err().to_string(), "ENOTDIR: not a directory, scandir '/d/f'");
    assert_eq!(
        fs.rename("/nope", "/d/g", t(1)).unwrap_err().to_string(),
        "ENOENT: no such file or directory, rename '/nope' -> '/d/g'"
    );
    assert_eq!(
        fs.symlink("x", "/d", t(1)).unwrap_err().to_string(),
        "EEXIST: file already exists, symlink 'x' -> '/d'"
    );
    assert_eq!(fs.link("/d", "/e", t(1)).unwrap_err().to_string(), "EPERM: operation not permitted, link '/d' -> '/e'");
    assert_eq!(fs.read_link("/d/f").unwrap_err().to_string(), "EINVAL: invalid argument, readlink '/d/f'");
    // The path as given (relative), not the resolved one.
    assert_eq!(
        fs.stat(VPath::at("/d", "../missing")).unwrap_err().to_string(),
        "ENOENT: no such file or directory, stat '../missing'"
    );
    let err = fs.lstat("/missing").unwrap_err();
    assert_eq!(
        (err.code(), err.op(), err.path(), err.dest(), err.limit()),
        ("ENOENT", "lstat", "/missing", None, None)
    );
}

#[test]
fn errno_codes() {
    assert_eq!(Errno::ENOENT.code(), "ENOENT");
    assert_eq!(Errno::ENAMETOOLONG.code(), "ENAMETOOLONG");
    assert_eq!(Errno::EXDEV.to_string(), "EXDEV");
    assert_eq!(Errno::EROFS.description(), "read-only file system");
}

#[test]
fn names_and_paths_are_bounded() {
    let mut fs = fs();
    let longest = "n".repeat(NAME_MAX);
    fs.write_file(format!("/{longest}").as_str(), b"", t(1)).unwrap();
    let too_long = "n".repeat(NAME_MAX + 1);
    assert_eq!(errno(fs.write_file(format!("/{too_long}").as_str(), b"", t(1))), Errno::ENAMETOOLONG);
    assert_eq!(errno(fs.stat(format!("/{too_long}").as_str())), Errno::ENAMETOOLONG);
    // Paths: shorter than PATH_MAX (which counts the NUL).
    let deep = format!("/{}", "a/".repeat((PATH_MAX - 2) / 2));
    assert_eq!(deep.len(), PATH_MAX - 1);
    assert_eq!(errno(fs.stat(deep.as_str())), Errno::ENOENT);
    let deeper = format!("{deep}a");
    assert_eq!(errno(fs.stat(deeper.as_str())), Errno::ENAMETOOLONG);
    assert_eq!(errno(fs.symlink(&deeper, "/l", t(1))), Errno::ENAMETOOLONG);
    // Empty and NUL.
    assert_eq!(errno(fs.stat("")), Errno::ENOENT);
    assert_eq!(errno(fs.write_file("/a\0b", b"", t(1))), Errno::EINVAL);
    assert_eq!(errno(fs.symlink("", "/l", t(1))), Errno::ENOENT);
    // A symlink whose expansion has a too-long component.
    fs.symlink(&format!("/{too_long}"), "/bad", t(1)).unwrap();
    assert_eq!(errno(fs.stat("/bad")), Errno::ENAMETOOLONG);
}

#[test]
fn read_only_filesystem() {
    let mut fs = fs();
    fs.write_file("/f", b"x", t(1)).unwrap();
    fs.set_read_only(true);
    let before = fs.clone();
    assert_eq!(errno(fs.write_file("/f", b"y", t(2))), Errno::EROFS);
    assert_eq!(errno(fs.create_dir("/d", t(2))), Errno::EROFS);
    assert_eq!(errno(fs.mkdir("/d/e", true, t(2))), Errno::EROFS);
    assert_eq!(errno(fs.remove_file("/f", t(2))), Errno::EROFS);
    assert_eq!(errno(fs.chmod("/f", 0o600, t(2))), Errno::EROFS);
    assert_eq!(errno(fs.rename("/f", "/g", t(2))), Errno::EROFS);
    assert_eq!(fs.read_file("/f").unwrap(), b"x");
    assert_eq!(fs, before);
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

#[test]
fn relative_paths_slashes_and_dots() {
    let mut fs = fs();
    fs.mkdir("/a/b", true, t(1)).unwrap();
    fs.write_file(VPath::at("/a/b", "f"), b"1", t(1)).unwrap();
    assert_eq!(fs.read_file("//a///b//f").unwrap(), b"1");
    assert_eq!(fs.read_file("/a/./b/../b/./f").unwrap(), b"1");
    assert_eq!(fs.read_file(VPath::at("/a", "./b/f")).unwrap(), b"1");
    assert_eq!(fs.read_file(VPath::at("/a/b/", "f")).unwrap(), b"1");
    assert_eq!(fs.realpath(VPath::at("/a/b", "..")).unwrap(), "/a");
    assert_eq!(fs.realpath(VPath::at("/a/b", ".")).unwrap(), "/a/b");
    assert_eq!(fs.read_dir("/a/").unwrap(), ["b"]);
    // Trailing slashes demand a directory.
    assert_eq!(errno(fs.stat("/a/b/f/")), Errno::ENOTDIR);
    assert_eq!(errno(fs.read_file("/a/b/f/")), Errno::ENOTDIR);
    assert_eq!(errno(fs.write_file("/a/b/new/", b"", t(2))), Errno::EISDIR);
    assert_eq!(errno(fs.remove_file("/a/b/f/", t(2))), Errno::ENOTDIR);
    assert_eq!(errno(fs.symlink("x", "/a/b/new/", t(2))), Errno::ENOENT);
    fs.create_dir("/a/b/new/", t(2)).unwrap();
    assert!(fs.stat("/a/b/new").unwrap().is_directory);
    // Through a file.
    assert_eq!(errno(fs.stat("/a/b/f/x")), Errno::ENOTDIR);
    assert_eq!(errno(fs.write_file("/a/b/f/x", b"", t(2))), Errno::ENOTDIR);
    assert_eq!(errno(fs.mkdir("/a/b/f/x", true, t(2))), Errno::ENOTDIR);
}

#[test]
fn symlinks() {
    let mut fs = fs();
    fs.mkdir("/real/dir", true, t(1)).unwrap();
    fs.write_file("/real/dir/f", b"content", t(1)).unwrap();
    fs.symlink("real/dir", "/rel", t(2)).unwrap();
    fs.symlink("/real/dir/", "/abs", t(2)).unwrap();
    fs.symlink("nowhere", "/dangling", t(2)).unwrap();
    assert_eq!(fs.read_file("/rel/f").unwrap(), b"content");
    assert_eq!(fs.read_file("/abs/f").unwrap(), b"content");
    assert_eq!(fs.read_link("/rel").unwrap(), "real/dir");
    assert_eq!(fs.realpath("/abs").unwrap(), "/real/dir");
    assert!(fs.lstat("/rel").unwrap().is_symbolic_link);
    assert!(fs.stat("/rel").unwrap().is_directory);
    assert!(fs.lstat("/rel/").unwrap().is_directory, "a trailing slash follows the link");
    assert!(!fs.exists("/dangling"));
    assert!(fs.lstat("/dangling").is_ok());
    // Writing through a dangling link creates its target.
    fs.write_file("/dangling", b"made", t(3)).unwrap();
    assert_eq!(fs.read_file("/nowhere").unwrap(), b"made");
    // mkdir never follows: the name is taken.
    assert_eq!(errno(fs.create_dir("/rel", t(3))), Errno::EEXIST);
    fs.mkdir("/rel", true, t(3)).unwrap();
    fs.mkdir("/rel/sub", true, t(3)).unwrap();
    assert!(fs.stat("/real/dir/sub").unwrap().is_directory);
    assert_eq!(errno(fs.mkdir("/dangling", true, t(3))), Errno::EEXIST);
    // unlink/rmdir act on the link itself.
    assert_eq!(errno(fs.remove_dir("/rel", false, t(4))), Errno::ENOTDIR);
    fs.remove_file("/rel", t(4)).unwrap();
    assert!(fs.exists("/real/dir/f"));
    // Symlink mode and size.
    let stat = fs.lstat("/abs").unwrap();
    assert_eq!((stat.mode, stat.size), (S_IFLNK | 0o777, "/real/dir/".len() as u64));
}

#[test]
fn mkdir_recursive() {
    let mut fs = fs();
    fs.mkdir("/a/b/c", true, t(1)).unwrap();
    fs.mkdir("/a/b/c", true, t(2)).unwrap();
    assert_eq!(fs.stat("/a").unwrap().mtime_ms, 1, "an existing path changes nothing");
    assert_eq!(errno(fs.mkdir("/a/b/c", false, t(2))), Errno::EEXIST);
    assert_eq!(errno(fs.mkdir("/x/y", false, t(2))), Errno::ENOENT);
    fs.mkdir("/", true, t(2)).unwrap();
    assert_eq!(errno(fs.create_dir("/", t(2))), Errno::EEXIST);
    fs.mkdir("/a/../p/./q/", true, t(3)).unwrap();
    assert!(fs.stat("/p/q").unwrap().is_directory);
    fs.write_file("/file", b"", t(3)).unwrap();
    assert_eq!(errno(fs.mkdir("/file", true, t(4))), Errno::EEXIST);
    assert_eq!(errno(fs.mkdir("/file/x/y", true, t(4))), Errno::ENOTDIR);
    // A failure part-way (a file in the way after a created directory) undoes everything.
    let before = fs.clone();
    assert_eq!(errno(fs.mkdir("/new/../file/z", true, t(5))), Errno::ENOTDIR);
    assert_eq!(fs, before);
    fs.mkdir_with_mode("/m/n", true, 0o700, t(6)).unwrap();
    assert_eq!(fs.stat("/m").unwrap().mode, S_IFDIR | 0o700);
    assert_eq!(fs.stat("/m/n").unwrap().mode, S_IFDIR | 0o700);
}

#[test]
fn remove_dir_recursive() {
    let mut fs = fs();
    fs.mkdir("/t/a/b", true, t(1)).unwrap();
    fs.write_file("/t/a/b/f", b"123", t(1)).unwrap();
    fs.symlink("/t", "/t/a/loop", t(1)).unwrap();
    fs.write_file("/keep", b"k", t(1)).unwrap();
    fs.link("/keep", "/t/a/keep-link", t(1)).unwrap();
    assert_eq!(errno(fs.remove_dir("/t", false, t(2))), Errno::ENOTEMPTY);
    assert_eq!(errno(fs.remove_dir("/keep", true, t(2))), Errno::ENOTDIR);
    assert_eq!(errno(fs.remove_dir("/t/.", true, t(2))), Errno::EINVAL);
    assert_eq!(errno(fs.remove_dir("/", true, t(2))), Errno::EBUSY);
    assert_eq!(errno(fs.remove_file("/t", t(2))), Errno::EISDIR);
    fs.remove_dir("/t", true, t(2)).unwrap();
    assert_eq!(fs.read_dir("/").unwrap(), ["keep"]);
    assert_eq!((fs.inode_count(), fs.total_bytes()), (2, 1));
    let keep = fs.stat("/keep").unwrap();
    assert_eq!((keep.nlink, keep.ctime_ms), (1, 2), "the outside link lost one name");
    assert_eq!(fs.stat("/").unwrap().nlink, 2);
}

// ---------------------------------------------------------------------------------------------
// Rename
// ---------------------------------------------------------------------------------------------

fn rename_fixture() -> Filesystem {
    let mut fs = fs();
    fs.mkdir("/d1/sub", true, t(1)).unwrap();
    fs.mkdir("/d2", true, t(1)).unwrap();
    fs.mkdir("/empty", true, t(1)).unwrap();
    fs.write_file("/d1/f", b"one", t(1)).unwrap();
    fs.write_file("/d2/g", b"two", t(1)).unwrap();
    fs
}

#[test]
fn rename_replaces_files_and_empty_directories() {
    let mut fs = rename_fixture();
    let f_ino = fs.stat("/d1/f").unwrap().ino;
    fs.rename("/d1/f", "/d2/g", t(5)).unwrap();
    assert_eq!(fs.read_file("/d2/g").unwrap(), b"one");
    assert!(!fs.exists("/d1/f"));
    assert_eq!(fs.stat("/d2/g").unwrap().ino, f_ino, "the inode moves, not a copy");
    assert_eq!(fs.total_bytes(), 3, "the replaced file's bytes are freed");
    // A directory onto an empty directory.
    let sub_ino = fs.stat("/d1/sub").unwrap().ino;
    fs.rename("/d1/sub", "/empty", t(6)).unwrap();
    assert_eq!(fs.stat("/empty").unwrap().ino, sub_ino);
    assert!(!fs.exists("/d1/sub"));
    assert_eq!(fs.stat("/").unwrap().nlink, 2 + 3, "root has d1, d2, empty");
    assert_eq!(fs.stat("/d1").unwrap().nlink, 2);
    // Onto a new name in another directory: link counts follow.
    fs.rename("/empty", "/d1/back", t(7)).unwrap();
    assert_eq!(fs.stat("/d1").unwrap().nlink, 3);
    assert_eq!(fs.stat("/").unwrap().nlink, 4);
    assert_eq!(fs.inode_count(), 5);
}

#[test]
fn rename_type_mismatches_and_subtrees() {
    let mut fs = rename_fixture();
    let before = fs.clone();
    assert_eq!(errno(fs.rename("/d1/f", "/d2", t(5))), Errno::EISDIR);
    assert_eq!(errno(fs.rename("/d2", "/d1/f", t(5))), Errno::ENOTDIR);
    assert_eq!(errno(fs.rename("/d2", "/d1", t(5))), Errno::ENOTEMPTY);
    assert_eq!(errno(fs.rename("/d1", "/d1/sub/x", t(5))), Errno::EINVAL);
    assert_eq!(errno(fs.rename("/d1", "/d1/x", t(5))), Errno::EINVAL);
    assert_eq!(errno(fs.rename("/d1/sub", "/d1", t(5))), Errno::ENOTEMPTY, "onto its own parent");
    assert_eq!(errno(fs.rename("/", "/x", t(5))), Errno::EBUSY);
    assert_eq!(errno(fs.rename("/d2", "/", t(5))), Errno::EBUSY);
    assert_eq!(errno(fs.rename("/d1/.", "/x", t(5))), Errno::EINVAL);
    assert_eq!(errno(fs.rename("/nope", "/x", t(5))), Errno::ENOENT);
    assert_eq!(errno(fs.rename("/d1/f", "/nope/x", t(5))), Errno::ENOENT);
    assert_eq!(errno(fs.rename("/d1/f/", "/x", t(5))), Errno::ENOTDIR);
    assert_eq!(errno(fs.rename("/d1/f", "/x/", t(5))), Errno::ENOTDIR);
    assert_eq!(fs, before, "failed renames change nothing");
    // A directory may take a trailing slash.
    fs.rename("/d2/", "/d3/", t(6)).unwrap();
    assert_eq!(fs.read_file("/d3/g").unwrap(), b"two");
}

#[test]
fn rename_to_itself_and_between_hard_links_does_nothing() {
    let mut fs = rename_fixture();
    fs.link("/d1/f", "/d2/f-link", t(2)).unwrap();
    let before = fs.clone();
    fs.rename("/d1/f", "/d1/f", t(5)).unwrap();
    fs.rename("/d1", "/d1", t(5)).unwrap();
    fs.rename("/d1/f", "/d2/f-link", t(5)).unwrap();
    assert_eq!(fs, before, "POSIX: same inode, nothing happens (both names stay)");
}

#[test]
fn rename_moves_symlinks_not_targets() {
    let mut fs = rename_fixture();
    fs.symlink("/d1", "/link", t(2)).unwrap();
    fs.rename("/link", "/d2/moved", t(3)).unwrap();
    assert_eq!(fs.read_link("/d2/moved").unwrap(), "/d1");
    assert!(fs.stat("/d1").unwrap().is_directory);
    // A symlink as the destination is replaced, not followed.
    fs.symlink("/d1", "/link2", t(4)).unwrap();
    fs.rename("/d2/g", "/link2", t(5)).unwrap();
    assert_eq!(fs.read_file("/link2").unwrap(), b"two");
    assert!(fs.stat("/d1").unwrap().is_directory);
    // Resolution through a symlink in the middle works.
    fs.rename("/d2/moved/f", "/d2/moved/f2", t(6)).unwrap();
    assert_eq!(fs.read_file("/d1/f2").unwrap(), b"one");
}

#[test]
fn rename_timestamps() {
    let mut fs = rename_fixture();
    fs.rename("/d1/f", "/d2/h", t(9)).unwrap();
    let moved = fs.stat("/d2/h").unwrap();
    assert_eq!((moved.mtime_ms, moved.ctime_ms, moved.birthtime_ms), (1, 9, 1));
    assert_eq!(fs.stat("/d1").unwrap().mtime_ms, 9);
    assert_eq!(fs.stat("/d2").unwrap().mtime_ms, 9);
    assert_eq!(fs.stat("/").unwrap().mtime_ms, 1);
}

// ---------------------------------------------------------------------------------------------
// Hard links
// ---------------------------------------------------------------------------------------------

#[test]
fn hard_links_share_content_and_count_names() {
    let mut fs = fs();
    fs.write_file("/a", b"shared", t(1)).unwrap();
    fs.mkdir("/d", false, t(1)).unwrap();
    fs.link("/a", "/d/b", t(2)).unwrap();
    let (a, b) = (fs.stat("/a").unwrap(), fs.stat("/d/b").unwrap());
    assert_eq!((a.ino, a.nlink), (b.ino, 2));
    assert_eq!(a.ctime_ms, 2);
    fs.write_file("/d/b", b"changed through b", t(3)).unwrap();
    assert_eq!(fs.read_file("/a").unwrap(), b"changed through b");
    fs.chmod("/a", 0o600, t(4)).unwrap();
    assert_eq!(fs.stat("/d/b").unwrap().mode, S_IFREG | 0o600);
    fs.remove_file("/a", t(5)).unwrap();
    assert_eq!(fs.read_file("/d/b").unwrap(), b"changed through b");
    assert_eq!(fs.stat("/d/b").unwrap().nlink, 1);
    assert_eq!(errno(fs.link("/d/b", "/d/b", t(6))), Errno::EEXIST);
    assert_eq!(errno(fs.link("/missing", "/x", t(6))), Errno::ENOENT);
    assert_eq!(errno(fs.link("/d", "/x", t(6))), Errno::EPERM);
    assert_eq!(errno(fs.link("/d/b", "/nope/x", t(6))), Errno::ENOENT);
    // A symlink is linked itself.
    fs.symlink("/d/b", "/sl", t(7)).unwrap();
    fs.link("/sl", "/sl2", t(7)).unwrap();
    assert!(fs.lstat("/sl2").unwrap().is_symbolic_link);
    assert_eq!(fs.lstat("/sl2").unwrap().nlink, 2);
    assert_eq!(fs.read_file("/sl2").unwrap(), b"changed through b");
}

// ---------------------------------------------------------------------------------------------
// Times and stat
// ---------------------------------------------------------------------------------------------

#[test]
fn timestamps_come_from_the_injected_clock() {
    let mut fs = fs();
    let now = kernel::Now::from_millis(7, 1_700_000_000_000);
    fs.write_file("/f", b"x", now).unwrap();
    let s = fs.stat("/f").unwrap();
    assert_eq!(
        (s.atime_ms, s.mtime_ms, s.ctime_ms, s.birthtime_ms),
        (1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_000),
        "wall_ms, not monotonic_ms"
    );
    assert_eq!(fs.stat("/").unwrap().mtime_ms, 1_700_000_000_000, "creation changes the parent");
    let _ = fs.read_file("/f").unwrap();
    assert_eq!(fs.stat("/f").unwrap().atime_ms, 1_700_000_000_000, "reads do not touch atime");
    fs.write_file("/f", b"y", t(20)).unwrap();
    let s = fs.stat("/f").unwrap();
    assert_eq!((s.atime_ms, s.mtime_ms, s.ctime_ms, s.birthtime_ms), (1_700_000_000_000, 20, 20, 1_700_000_000_000));
    fs.chmod("/f", 0o640, t(30)).unwrap();
    let s = fs.stat("/f").unwrap();
    assert_eq!((s.mtime_ms, s.ctime_ms), (20, 30));
    fs.chown("/f", 1000, 100, t(31)).unwrap();
    fs.utimes("/f", 5, 6, t(40)).unwrap();
    let s = fs.stat("/f").unwrap();
    assert_eq!((s.atime_ms, s.mtime_ms, s.ctime_ms, s.uid, s.gid), (5, 6, 40, 1000, 100));
    fs.truncate("/f", 0, t(50)).unwrap();
    assert_eq!(fs.stat("/f").unwrap().mtime_ms, 50);
    fs.pwrite("/f", 3, b"ab", t(60)).unwrap();
    assert_eq!(fs.read_file("/f").unwrap(), b"\0\0\0ab");
    assert_eq!(fs.stat("/f").unwrap().mtime_ms, 60);
    fs.remove_file("/f", t(70)).unwrap();
    assert_eq!(fs.stat("/").unwrap().mtime_ms, 70);
    // Metadata changes follow symlinks.
    fs.write_file("/target", b"", t(80)).unwrap();
    fs.symlink("target", "/link", t(80)).unwrap();
    fs.chmod("/link", 0o600, t(81)).unwrap();
    fs.utimes("/link", 1, 2, t(82)).unwrap();
    assert_eq!(fs.stat("/target").unwrap().mode, S_IFREG | 0o600);
    assert_eq!(fs.lstat("/link").unwrap().mode, S_IFLNK | 0o777);
    assert_eq!(fs.lstat("/link").unwrap().mtime_ms, 80);
}

#[test]
fn stat_fields() {
    let mut fs = fs();
    let root = fs.stat("/").unwrap();
    assert_eq!((root.ino, root.mode, root.nlink, root.size), (ROOT_INO, S_IFDIR | 0o755, 2, DIR_SIZE));
    assert!(root.is_directory && !root.is_symbolic_link && !root.is_file());
    fs.write_file("/f", &[0; 1025], t(1)).unwrap();
    let f = fs.stat("/f").unwrap();
    assert_eq!((f.mode, f.size, f.blocks, f.dev, f.rdev, f.nlink), (S_IFREG | 0o644, 1025, 3, FILESYSTEM_DEV, 0, 1));
    assert!(f.is_file());
    assert_eq!((f.uid, f.gid), (0, 0));
    fs.write_file("/empty", b"", t(1)).unwrap();
    assert_eq!(fs.stat("/empty").unwrap().blocks, 0);
    assert_eq!(fs.stat("/").unwrap().blocks, 8);
    fs.write_file_with_mode("/exe", b"", 0o100_755, t(1)).unwrap();
    assert_eq!(fs.stat("/exe").unwrap().mode, S_IFREG | 0o755, "only permission bits are taken");
    fs.chmod("/exe", 0o7777 | S_IFDIR, t(2)).unwrap();
    assert_eq!(fs.stat("/exe").unwrap().mode & S_IFMT, S_IFREG, "chmod keeps the file type");
    // Inode numbers are distinct and never reused.
    let inos = [fs.stat("/f").unwrap().ino, fs.stat("/empty").unwrap().ino, fs.stat("/exe").unwrap().ino];
    assert!(inos[0] != inos[1] && inos[1] != inos[2] && inos[0] != inos[2]);
    fs.remove_file("/exe", t(3)).unwrap();
    fs.write_file("/exe", b"", t(3)).unwrap();
    assert!(!inos.contains(&fs.stat("/exe").unwrap().ino));
    // Directory link counts: 2 + subdirectories.
    fs.mkdir("/d/e", true, t(4)).unwrap();
    fs.mkdir("/d/f", true, t(4)).unwrap();
    assert_eq!(fs.stat("/d").unwrap().nlink, 4);
    assert_eq!(fs.stat("/").unwrap().nlink, 3);
}

#[test]
fn stat_converts_to_the_wire_type() {
    let stat = Stat {
        mode: 1,
        size: 2,
        blocks: 3,
        dev: 4,
        rdev: 5,
        is_directory: true,
        is_symbolic_link: false,
        atime_ms: 6,
        mtime_ms: 7,
        ctime_ms: 8,
        birthtime_ms: 9,
        atime_ns: 6_000_123,
        mtime_ns: 7_000_456,
        ino: 10,
        nlink: 11,
        uid: 12,
        gid: 13,
    };
    let wire = GuestFilesystemStat::from(&stat);
    assert_eq!(
        wire,
        GuestFilesystemStat {
            mode: 1,
            size: 2,
            blocks: 3,
            dev: 4,
            rdev: 5,
            is_directory: true,
            is_symbolic_link: false,
            atime_ms: 6,
            mtime_ms: 7,
            ctime_ms: 8,
            birthtime_ms: 9,
            ino: 10,
            nlink: 11,
            uid: 12,
            gid: 13,
        }
    );
}

#[test]
fn reads() {
    let mut fs = fs();
    fs.write_file("/f", b"hello world", t(1)).unwrap();
    assert_eq!(fs.pread("/f", 6, 5).unwrap(), b"world");
    assert_eq!(fs.pread("/f", 6, 0).unwrap(), b"");
    assert_eq!(fs.pread("/f", u64::MAX, 5).unwrap(), b"");
    assert_eq!(errno(fs.pread("/", 0, 1)), Errno::EISDIR);
    assert_eq!(errno(fs.truncate("/", 0, t(2))), Errno::EISDIR);
    assert_eq!(errno(fs.pwrite("/missing", 0, b"x", t(2))), Errno::ENOENT);
    assert!(fs.exists("/f") && fs.exists("/") && !fs.exists("/f/x"));
    assert_eq!(fs.read_dir("/").unwrap(), ["f"]);
    fs.write_file("/B", b"", t(1)).unwrap();
    fs.write_file("/a", b"", t(1)).unwrap();
    assert_eq!(fs.read_dir("/").unwrap(), ["B", "a", "f"], "bytewise order");
}
