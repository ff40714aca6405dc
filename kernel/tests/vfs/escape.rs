//! The root is the top: no `..`, absolute symlink, chain or loop reaches above it.

use kernel::vfs::{Errno, Filesystem, FsLimits, VPath, MAX_SYMLINK_HOPS, ROOT_INO};
use proptest::prelude::*;

use crate::common::t;

fn fs() -> Filesystem {
    let mut fs = Filesystem::new(FsLimits::default(), t(0));
    fs.mkdir("/a/b/c", true, t(1)).unwrap();
    fs.write_file("/a/b/c/file", b"deep", t(1)).unwrap();
    fs.write_file("/top", b"top", t(1)).unwrap();
    fs
}

#[test]
fn dot_dot_at_the_root_stays_at_the_root() {
    let mut fs = fs();
    for path in ["/..", "/../..", "/../../../..", "/./..//../.", "..", "../../.."] {
        assert_eq!(fs.realpath(path).unwrap(), "/", "{path}");
        assert_eq!(fs.stat(path).unwrap().ino, ROOT_INO, "{path}");
    }
    assert_eq!(fs.realpath(VPath::at("/a/b", "../../../../../..")).unwrap(), "/");
    assert_eq!(fs.read_file(VPath::at("/a/b/c", "../../../../../../top")).unwrap(), b"top");
    assert_eq!(fs.read_file("/../../a/../a/b/../../top").unwrap(), b"top");
    fs.write_file("/../../../escaped", b"x", t(2)).unwrap();
    assert_eq!(fs.read_file("/escaped").unwrap(), b"x", "a write above the root lands in the root");
    assert_eq!(fs.read_dir("/../..").unwrap(), fs.read_dir("/").unwrap());
    assert_eq!(fs.rename("/..", "/x", t(3)).unwrap_err().errno(), Errno::EBUSY);
    assert_eq!(fs.remove_dir("/../..", true, t(3)).unwrap_err().errno(), Errno::EBUSY);
}

#[test]
fn absolute_symlinks_resolve_inside_this_root() {
    let mut fs = fs();
    fs.symlink("/", "/a/root", t(2)).unwrap();
    fs.symlink("/../../..", "/a/b/up", t(2)).unwrap();
    fs.symlink("/etc/passwd", "/a/passwd", t(2)).unwrap();
    assert_eq!(fs.realpath("/a/root").unwrap(), "/");
    assert_eq!(fs.realpath("/a/b/up").unwrap(), "/");
    assert_eq!(fs.read_file("/a/root/a/root/a/root/top").unwrap(), b"top");
    assert_eq!(fs.read_file("/a/b/up/../../top").unwrap(), b"top");
    // No host /etc/passwd: a dangling link inside this filesystem.
    assert_eq!(fs.read_file("/a/passwd").unwrap_err().errno(), Errno::ENOENT);
    // Writing through it creates the file inside the root.
    assert_eq!(fs.write_file("/a/passwd", b"mine", t(3)).unwrap_err().errno(), Errno::ENOENT, "no /etc yet");
    fs.create_dir("/etc", t(3)).unwrap();
    fs.write_file("/a/passwd", b"mine", t(3)).unwrap();
    assert_eq!(fs.read_file("/etc/passwd").unwrap(), b"mine");
}

#[test]
fn relative_symlinks_climbing_past_the_root_stop_there() {
    let mut fs = fs();
    fs.symlink("../../../../../../../../top", "/a/b/c/l", t(2)).unwrap();
    assert_eq!(fs.read_file("/a/b/c/l").unwrap(), b"top");
    assert_eq!(fs.realpath("/a/b/c/l").unwrap(), "/top");
    // `..` after a symlink is physical: the parent of the link's target, not of the link.
    fs.symlink("/a/b/c", "/jump", t(2)).unwrap();
    assert_eq!(fs.realpath("/jump/..").unwrap(), "/a/b");
    assert_eq!(fs.read_file("/jump/../c/file").unwrap(), b"deep");
}

#[test]
fn chains_are_bounded_and_loops_fail_with_eloop() {
    let mut fs = fs();
    // A chain of exactly MAX_SYMLINK_HOPS links resolves; one more fails.
    let hops = MAX_SYMLINK_HOPS as usize;
    fs.symlink("/top", "/l0", t(2)).unwrap();
    for i in 1..=hops {
        fs.symlink(&format!("/l{}", i - 1), &format!("/l{i}"), t(2)).unwrap();
    }
    assert_eq!(fs.read_file(format!("/l{}", hops - 1).as_str()).unwrap(), b"top");
    assert_eq!(fs.read_file(format!("/l{hops}").as_str()).unwrap_err().errno(), Errno::ELOOP);
    assert!(fs.lstat(format!("/l{hops}").as_str()).unwrap().is_symbolic_link, "lstat does not follow");

    fs.symlink("loop-b", "/loop-a", t(3)).unwrap();
    fs.symlink("loop-a", "/loop-b", t(3)).unwrap();
    fs.symlink(".", "/self", t(3)).unwrap();
    fs.symlink("self/self/self", "/selfish", t(3)).unwrap();
    for path in ["/loop-a", "/loop-b/x", "/loop-a/"] {
        let err = fs.stat(path).unwrap_err();
        assert_eq!(err.errno(), Errno::ELOOP, "{path}");
        assert_eq!(err.to_string(), format!("ELOOP: too many symbolic links encountered, stat '{path}'"));
    }
    assert_eq!(fs.write_file("/loop-a", b"x", t(4)).unwrap_err().errno(), Errno::ELOOP);
    assert_eq!(fs.mkdir("/loop-a/x", true, t(4)).unwrap_err().errno(), Errno::ELOOP);
    assert!(!fs.exists("/loop-a"));
    // A link to "." is a directory (the root), followed any number of times within the bound.
    assert_eq!(fs.realpath("/self/self/self/selfish").unwrap(), "/");
    // A link deleted mid-loop unblocks it.
    fs.remove_file("/loop-b", t(5)).unwrap();
    assert_eq!(fs.stat("/loop-a").unwrap_err().errno(), Errno::ENOENT);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever symlinks exist and whatever path is asked, resolution ends at a canonical path
    /// of this tree (or an error): realpath never has a `..`, always starts at `/`, and names
    /// something `lstat` finds by that canonical path.
    #[test]
    fn resolution_never_leaves_the_tree(
        links in prop::collection::vec(path_strategy(), 0..12),
        probes in prop::collection::vec(path_strategy(), 1..20),
    ) {
        let mut fs = fs();
        for (i, target) in links.iter().enumerate() {
            let _ = fs.symlink(target, format!("/a/s{i}").as_str(), t(2));
            let _ = fs.symlink(target, format!("/s{i}").as_str(), t(2));
        }
        for probe in probes {
            for cwd in ["/", "/a/b/c"] {
                if let Ok(real) = fs.realpath(VPath::at(cwd, &probe)) {
                    prop_assert!(real.starts_with('/'));
                    prop_assert!(!real.split('/').any(|c| c == ".." || c == "."), "{}", real);
                    prop_assert!(!real.contains("//"));
                    let direct = fs.stat(real.as_str()).unwrap();
                    prop_assert_eq!(fs.stat(VPath::at(cwd, &probe)).unwrap().ino, direct.ino);
                }
            }
        }
    }
}

fn path_strategy() -> impl Strategy<Value = String> {
    let component = prop_oneof![Just(".."), Just("."), Just("a"), Just("b"), Just("s0"), Just("s1"), Just("s2")];
    (prop::collection::vec(component, 1..6), any::<bool>()).prop_map(|(parts, absolute)| {
        let joined = parts.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}
