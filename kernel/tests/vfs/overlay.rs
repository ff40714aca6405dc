//! Layers and overlays: sharing, copy-up, whiteouts, opaque directories, round trips, and a
//! differential test against a flat filesystem holding the same merged tree.

use std::sync::Arc;

use kernel::vfs::{Errno, Filesystem, FsLimits, Layer, Overlay, SnapshotEntry, VPath};
use proptest::prelude::*;

use testkit::vfs_driver::{error_name, stat_out, tree};
use testkit::vfs_model::{coarse, Op};

use crate::common::t;
use crate::differential::{apply_real, cwd, op};

fn layer(entries: &[SnapshotEntry]) -> Layer {
    Layer::from_entries(entries, FsLimits::default(), t(1)).unwrap()
}

fn base() -> Layer {
    layer(&[
        SnapshotEntry::dir("/etc"),
        SnapshotEntry::file("/etc/passwd", "root:x:0:0\n").with_mode(0o600).with_owner(0, 42),
        SnapshotEntry::file("/etc/hosts", "127.0.0.1 localhost\n"),
        SnapshotEntry::dir("/usr/lib/python"),
        SnapshotEntry::file("/usr/lib/python/os.py", "import sys\n"),
        SnapshotEntry::symlink("/lib", "usr/lib"),
        SnapshotEntry::file("/bin/sh", "#!").with_mode(0o755),
    ])
}

fn overlay(lowers: Vec<Layer>) -> Overlay {
    Overlay::new(Filesystem::new(FsLimits::default(), t(2)), lowers)
}

#[test]
fn reads_fall_through_to_the_lower() {
    let ov = overlay(vec![base()]);
    assert_eq!(ov.read_file("/etc/hosts").unwrap(), b"127.0.0.1 localhost\n");
    assert_eq!(ov.read_file("/lib/python/os.py").unwrap(), b"import sys\n");
    assert_eq!(ov.realpath("/lib/python").unwrap(), "/usr/lib/python");
    assert_eq!(ov.read_dir("/").unwrap(), ["bin", "etc", "lib", "usr"]);
    assert_eq!(ov.read_link("/lib").unwrap(), "usr/lib");
    let stat = ov.stat("/etc/passwd").unwrap();
    assert_eq!((stat.mode & 0o7777, stat.gid), (0o600, 42));
    assert_eq!(ov.upper().inode_count(), 1, "reading copies nothing up");
}

#[test]
fn writes_copy_up_and_leave_the_layer_untouched() {
    let lower = base();
    let before = lower.export();
    let mut ov = overlay(vec![lower.clone()]);
    ov.write_file("/etc/passwd", b"changed", t(10)).unwrap();
    ov.chmod("/bin/sh", 0o700, t(11)).unwrap();
    ov.write_file("/usr/lib/python/new.py", b"new", t(12)).unwrap();
    ov.remove_file("/etc/hosts", t(13)).unwrap();
    ov.rename("/usr/lib/python", "/python", t(14)).unwrap();
    ov.remove_dir("/etc", true, t(15)).unwrap();
    assert_eq!(lower.export(), before, "the layer never changes");
    assert!(Layer::ptr_eq(&lower, &ov.lowers()[0]), "the overlay shares the layer, not a copy");

    assert_eq!(ov.read_file("/python/new.py").unwrap(), b"new");
    assert_eq!(ov.read_file("/python/os.py").unwrap(), b"import sys\n");
    assert!(!ov.exists("/usr/lib/python"));
    assert!(!ov.exists("/etc"));
    assert_eq!(ov.stat("/bin/sh").unwrap().mode & 0o7777, 0o700);
    assert_eq!(ov.read_file("/bin/sh").unwrap(), b"#!", "chmod copied the content up too");
    assert_eq!(ov.read_dir("/usr/lib").unwrap(), Vec::<String>::new());
    // A second overlay on the same layer sees the original.
    let other = overlay(vec![lower]);
    assert_eq!(other.read_file("/etc/passwd").unwrap(), b"root:x:0:0\n");
}

#[test]
fn copy_up_keeps_metadata() {
    let mut ov = overlay(vec![base()]);
    let before = ov.stat("/etc/passwd").unwrap();
    ov.write_file("/etc/passwd", b"x", t(50)).unwrap();
    let after = ov.stat("/etc/passwd").unwrap();
    assert_eq!((after.mode, after.uid, after.gid, after.birthtime_ms), (before.mode, before.uid, before.gid, 1));
    assert_eq!((after.mtime_ms, after.ctime_ms), (50, 50));
    assert_ne!(after.ino, before.ino, "lower and upper inode numbers are distinct spaces");
    // The parent directory was copied up invisibly: its times did not change.
    assert_eq!(ov.stat("/etc").unwrap().mtime_ms, 1);
}

#[test]
fn whiteouts_hide_lower_entries() {
    let mut ov = overlay(vec![base()]);
    ov.remove_file("/etc/hosts", t(5)).unwrap();
    assert!(!ov.exists("/etc/hosts"));
    assert_eq!(ov.read_file("/etc/hosts").unwrap_err().errno(), Errno::ENOENT);
    assert_eq!(ov.read_dir("/etc").unwrap(), ["passwd"]);
    assert_eq!(ov.stat("/etc").unwrap().mtime_ms, 5, "the deletion changed the directory");
    // Creating the name again shows the new file, not the old.
    ov.write_file("/etc/hosts", b"new", t(6)).unwrap();
    assert_eq!(ov.read_file("/etc/hosts").unwrap(), b"new");
    ov.remove_file("/etc/hosts", t(7)).unwrap();
    assert!(!ov.exists("/etc/hosts"), "deleting the upper copy does not uncover the lower");
    // Symlinks and whole directories too.
    ov.remove_file("/lib", t(8)).unwrap();
    assert!(!ov.exists("/lib/python/os.py"));
    ov.remove_dir("/usr", true, t(9)).unwrap();
    assert_eq!(ov.read_dir("/").unwrap(), ["bin", "etc"]);
    assert_eq!(ov.remove_dir("/usr", true, t(9)).unwrap_err().errno(), Errno::ENOENT);
}

#[test]
fn recreated_directories_are_opaque() {
    let mut ov = overlay(vec![base()]);
    ov.remove_dir("/usr/lib", true, t(5)).unwrap();
    ov.mkdir("/usr/lib/python", true, t(6)).unwrap();
    assert_eq!(ov.read_dir("/usr/lib/python").unwrap(), Vec::<String>::new(), "old children stay hidden");
    assert!(!ov.exists("/usr/lib/python/os.py"));
    ov.write_file("/usr/lib/python/os.py", b"mine", t(7)).unwrap();
    assert_eq!(ov.read_file("/usr/lib/python/os.py").unwrap(), b"mine");
    // A non-empty merged directory cannot be removed without `recursive`, an emptied one can.
    assert_eq!(ov.remove_dir("/etc", false, t(8)).unwrap_err().errno(), Errno::ENOTEMPTY);
    ov.remove_file("/etc/passwd", t(8)).unwrap();
    ov.remove_file("/etc/hosts", t(8)).unwrap();
    ov.remove_dir("/etc", false, t(9)).unwrap();
    ov.create_dir("/etc", t(10)).unwrap();
    assert_eq!(ov.read_dir("/etc").unwrap(), Vec::<String>::new());
}

#[test]
fn renamed_directories_take_their_lower_content_along() {
    let mut ov = overlay(vec![base()]);
    ov.write_file("/usr/lib/python/upper.py", b"u", t(3)).unwrap();
    ov.rename("/usr", "/opt", t(4)).unwrap();
    assert_eq!(ov.read_file("/opt/lib/python/os.py").unwrap(), b"import sys\n");
    assert_eq!(ov.read_file("/opt/lib/python/upper.py").unwrap(), b"u");
    assert!(!ov.exists("/usr"));
    assert_eq!(ov.realpath("/lib").unwrap_err().errno(), Errno::ENOENT, "the /lib symlink now dangles");
    // Moving it back does not resurrect the whited-out lower copy twice.
    ov.rename("/opt", "/usr", t(5)).unwrap();
    assert_eq!(ov.read_dir("/usr/lib/python").unwrap(), ["os.py", "upper.py"]);
    ov.remove_file("/usr/lib/python/os.py", t(6)).unwrap();
    assert_eq!(ov.read_dir("/usr/lib/python").unwrap(), ["upper.py"]);
    // Into its own subtree: refused.
    assert_eq!(ov.rename("/usr", "/usr/lib/x", t(7)).unwrap_err().errno(), Errno::EINVAL);
}

#[test]
fn layer_precedence_and_merging() {
    let top = layer(&[
        SnapshotEntry::file("/shared/a", "top"),
        SnapshotEntry::file("/x", "x is a file on top"),
        SnapshotEntry::dir("/d").with_mode(0o700),
    ]);
    let bottom = layer(&[
        SnapshotEntry::file("/shared/a", "bottom"),
        SnapshotEntry::file("/shared/b", "bottom"),
        SnapshotEntry::file("/x/inner", "hidden by the file above"),
        SnapshotEntry::file("/d/f", "merged"),
    ]);
    let ov = overlay(vec![top, bottom]);
    assert_eq!(ov.read_file("/shared/a").unwrap(), b"top");
    assert_eq!(ov.read_file("/shared/b").unwrap(), b"bottom");
    assert_eq!(ov.read_dir("/shared").unwrap(), ["a", "b"]);
    assert_eq!(ov.read_file("/x/inner").unwrap_err().errno(), Errno::ENOTDIR);
    assert_eq!(ov.read_file("/d/f").unwrap(), b"merged");
    assert_eq!(ov.stat("/d").unwrap().mode & 0o7777, 0o700, "the top directory's metadata wins");
}

#[test]
fn layer_round_trip_is_exact() {
    let entries = vec![
        SnapshotEntry::dir("/").with_mode(0o755),
        SnapshotEntry::dir("/a").with_mode(0o711).with_owner(5, 6),
        SnapshotEntry::file("/a/bin", vec![0u8, 1, 2, 255]).with_mode(0o4755).with_owner(1, 2),
        SnapshotEntry::file("/a/empty", ""),
        SnapshotEntry::symlink("/a/link", "../nowhere"),
        SnapshotEntry::symlink("/abs", "/a/bin"),
        SnapshotEntry::dir("/a/deep/er/est"),
    ];
    let lower = layer(&entries);
    let exported = lower.export();
    let mut expected = entries.clone();
    expected.push(SnapshotEntry::dir("/a/deep"));
    expected.push(SnapshotEntry::dir("/a/deep/er"));
    expected.sort();
    assert_eq!(exported, expected);
    assert_eq!(layer(&exported).export(), exported, "export → import → export is stable");
    // Through an overlay and its seal as well.
    let mut ov = overlay(vec![lower.clone()]);
    assert_eq!(ov.export(), exported);
    ov.write_file("/a/new", b"n", t(3)).unwrap();
    ov.remove_file("/a/link", t(3)).unwrap();
    let sealed = ov.seal(t(4)).unwrap();
    assert_eq!(sealed.export(), ov.export());
    assert!(sealed.export().iter().any(|e| e.path == "/a/new"));
    assert!(!sealed.export().iter().any(|e| e.path == "/a/link"));
    assert_eq!(lower.export(), exported);
}

#[test]
fn layers_are_immutable() {
    let lower = base();
    let mut fs = lower.fs().clone();
    assert!(lower.fs().is_read_only());
    assert_eq!(fs.write_file("/x", b"", t(1)).unwrap_err().errno(), Errno::EROFS);
    fs.set_read_only(false);
    fs.write_file("/x", b"", t(1)).unwrap();
    assert!(!lower.fs().exists("/x"), "a clone of the tree is a separate copy");
    let shared = lower.clone();
    assert!(Layer::ptr_eq(&lower, &shared));
    let _ = Arc::new(());
}

#[test]
fn read_only_overlay_refuses_everything() {
    let mut ov = overlay(vec![base()]);
    ov.set_read_only(true);
    assert_eq!(ov.write_file("/new", b"", t(1)).unwrap_err().errno(), Errno::EROFS);
    assert_eq!(ov.remove_file("/etc/hosts", t(1)).unwrap_err().errno(), Errno::EROFS);
    assert_eq!(ov.mkdir("/a/b", true, t(1)).unwrap_err().errno(), Errno::EROFS);
    assert_eq!(ov.rename("/etc", "/x", t(1)).unwrap_err().errno(), Errno::EROFS);
    assert_eq!(ov.read_file("/etc/hosts").unwrap(), b"127.0.0.1 localhost\n");
}

#[test]
fn hard_links_and_limits_in_the_upper() {
    let limits = FsLimits { max_inode_count: 4, ..FsLimits::default() };
    let mut ov = Overlay::new(Filesystem::new(limits, t(0)), vec![base()]);
    ov.link("/etc/passwd", "/etc/passwd2", t(1)).unwrap();
    assert_eq!(ov.stat("/etc/passwd2").unwrap().nlink, 2);
    ov.write_file("/etc/passwd2", b"via link", t(2)).unwrap();
    assert_eq!(ov.read_file("/etc/passwd").unwrap(), b"via link");
    // Upper: root, /etc, passwd (2 names) = 3 inodes; one more fits, then the bound.
    ov.write_file("/one", b"", t(3)).unwrap();
    let before = ov.export();
    let err = ov.mkdir("/p/q/r", true, t(4)).unwrap_err();
    assert_eq!(err.limit().map(|(kind, _)| kind), Some(kernel::vfs::LimitKind::InodeCount));
    assert_eq!(ov.export(), before, "mkdir -p undid its work");
}

// ---------------------------------------------------------------------------------------------
// Differential: Overlay(upper, [L0, L1]) behaves like a flat filesystem importing L1 then L0.
// ---------------------------------------------------------------------------------------------

fn build(ops: &[(&'static str, Op)]) -> Filesystem {
    let mut fs = Filesystem::new(FsLimits::default(), t(0));
    for (step, (cwd, op)) in ops.iter().enumerate() {
        let _ = apply_real(&mut fs, cwd, op, t(step as u64));
    }
    fs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn overlay_agrees_with_a_flat_filesystem(
        ops0 in prop::collection::vec((cwd(), op()), 0..25),
        ops1 in prop::collection::vec((cwd(), op()), 0..25),
        ops in prop::collection::vec((cwd(), op()), 1..50),
    ) {
        let l0 = Layer::seal(build(&ops0));
        let l1 = Layer::seal(build(&ops1));
        let (before0, before1) = (l0.export(), l1.export());
        let mut flat = Filesystem::new(FsLimits::default(), t(0));
        flat.import(&before1, t(0)).unwrap();
        flat.import(&before0, t(0)).unwrap();
        let mut ov = overlay(vec![l0.clone(), l1.clone()]);
        prop_assert_eq!(tree(ov.export()), tree(flat.export()));
        for (step, (cwd, op)) in ops.iter().enumerate() {
            let now = t(100 + step as u64);
            let expected = coarse(apply_real(&mut flat, cwd, op, now));
            let real = coarse(apply_real(&mut ov, cwd, op, now));
            prop_assert_eq!(&real, &expected, "step {} (cwd {}): {:?}", step, cwd, op);
            prop_assert_eq!(tree(ov.export()), tree(flat.export()), "tree after step {}: {:?}", step, op);
        }
        prop_assert_eq!(l0.export(), before0);
        prop_assert_eq!(l1.export(), before1);
        // Reading back every path agrees too (the export walks from the root; this resolves).
        for entry in flat.export() {
            let path = VPath::from(entry.path.as_str());
            prop_assert_eq!(coarse(ov.lstat(path).map(stat_out).map_err(|e| error_name(&e))),
                coarse(flat.lstat(path).map(stat_out).map_err(|e| error_name(&e))));
        }
    }
}

#[test]
fn renamed_directories_are_opaque() {
    let lower =
        layer(&[SnapshotEntry::file("/d/x", "x"), SnapshotEntry::file("/d/y", "y"), SnapshotEntry::file("/e/z", "z")]);
    let mut ov = overlay(vec![lower]);
    ov.remove_file("/d/x", t(1)).unwrap();
    // Away and back: the deleted lower child must not reappear.
    ov.rename("/d", "/tmp", t(2)).unwrap();
    ov.rename("/tmp", "/d", t(3)).unwrap();
    assert_eq!(ov.read_dir("/d").unwrap(), ["y"]);
    // Onto a lower directory emptied by whiteouts: its old children stay hidden.
    ov.remove_file("/e/z", t(4)).unwrap();
    ov.rename("/d", "/e", t(5)).unwrap();
    assert_eq!(ov.read_dir("/e").unwrap(), ["y"]);
    assert!(!ov.exists("/e/z"));
    assert!(!ov.exists("/d"));
}

#[test]
fn import_through_the_overlay() {
    let lower = base();
    let before = lower.export();
    let mut ov = overlay(vec![lower.clone()]);
    let entries = [
        SnapshotEntry::file("/etc/hosts", "10.0.0.1 host\n").with_mode(0o640).with_owner(7, 8),
        SnapshotEntry::dir("/etc").with_mode(0o750),
        SnapshotEntry::file("/lib", "a file where a symlink was"),
        SnapshotEntry::symlink("/usr/lib/python/os.py", "/elsewhere").with_owner(3, 3),
        SnapshotEntry::file("/new/deep/file", "x"),
    ];
    ov.import(entries.to_vec(), t(20)).unwrap();
    assert_eq!(lower.export(), before);
    assert_eq!(ov.read_file("/etc/hosts").unwrap(), b"10.0.0.1 host\n");
    let hosts = ov.stat("/etc/hosts").unwrap();
    assert_eq!((hosts.mode & 0o7777, hosts.uid, hosts.gid), (0o640, 7, 8));
    assert_eq!(ov.stat("/etc").unwrap().mode & 0o7777, 0o750);
    assert_eq!(ov.read_file("/etc/passwd").unwrap(), b"root:x:0:0\n", "the merged directory keeps its lower files");
    assert_eq!(ov.read_file("/lib").unwrap(), b"a file where a symlink was");
    let link = ov.lstat("/usr/lib/python/os.py").unwrap();
    assert!(link.is_symbolic_link && link.uid == 3);
    assert_eq!(ov.read_file("/new/deep/file").unwrap(), b"x");
    // A failing entry leaves the overlay as it was.
    let snapshot = ov.export();
    let bad = [SnapshotEntry::file("/ok", "fine"), SnapshotEntry::file("/etc/hosts/x", "under a file")];
    assert_eq!(ov.import(bad.to_vec(), t(21)).unwrap_err().errno(), Errno::EEXIST, "mkdir -p of the parent");
    assert_eq!(ov.export(), snapshot);
}

#[test]
fn times_set_to_the_nanosecond_on_a_link_or_through_it() {
    let mut ov = overlay(vec![base()]);
    ov.write_file("/f", b"x", t(3)).unwrap();
    ov.symlink("f", "/l", t(3)).unwrap();
    ov.set_times_ns("/l", 5, 1_600_000_000_000_000_007, false, t(4)).unwrap();
    assert_eq!(ov.lstat("/l").unwrap().mtime_ns, 1_600_000_000_000_000_007);
    assert_eq!(ov.lstat("/l").unwrap().mtime_ms, 1_600_000_000_000);
    assert_eq!(ov.stat("/f").unwrap().mtime_ms, 3, "the target is untouched");
    ov.set_times_ns("/l", 5, 9_000_001, true, t(5)).unwrap();
    assert_eq!((ov.stat("/f").unwrap().mtime_ns, ov.stat("/f").unwrap().atime_ns), (9_000_001, 5));
    ov.write_file("/f", b"y", t(6)).unwrap();
    assert_eq!(ov.stat("/f").unwrap().mtime_ns, 6_000_000, "a write sets it from the clock again");
}
