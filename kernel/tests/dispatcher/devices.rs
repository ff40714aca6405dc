//! The kernel-served `/dev` and `/proc/self` of the default tree: stat, reads, writes, listings,
//! refusals, the permission policy and `disableDefaultBaseLayer`.

use crate::filesystem::*;
use crate::harness::*;
use base64::Engine as _;
use kernel::dispatch::{makedev, ENDLESS_DEVICE};
use kernel::{Entropy, SidecarConfig};
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;

const DEVICES: [&str; 6] = ["null", "stderr", "stdin", "stdout", "urandom", "zero"];

fn pread(path: &str, offset: u64, len: u64) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest {
        offset: Some(offset),
        len: Some(len),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..req(Op::Pread, path)
    }
}

fn bytes(result: &GuestFilesystemResultResponse) -> Vec<u8> {
    let content = result.content.as_deref().unwrap();
    match result.encoding {
        Some(RootFilesystemEntryEncoding::Base64) => base64::engine::general_purpose::STANDARD.decode(content).unwrap(),
        _ => content.as_bytes().to_vec(),
    }
}

/// `len` bytes of `/dev/urandom` from the first read of a fresh sidecar seeded with `seed`.
fn first_urandom(seed: u64, len: u64) -> Vec<u8> {
    let host = Harness::with_config(SidecarConfig { entropy_seed: seed, ..SidecarConfig::default() });
    let mut guest = Guest::on(host, ALLOW_FS);
    bytes(&guest.ok(pread("/dev/urandom", 0, len)))
}

#[test]
fn devices_stat_as_linux_character_devices() {
    let mut guest = Guest::new(ALLOW_FS);
    let created = guest.host.now.wall_ms;
    for (name, major, minor) in
        [("null", 1, 3), ("zero", 1, 5), ("urandom", 1, 9), ("stdin", 1, 3), ("stdout", 1, 3), ("stderr", 1, 3)]
    {
        let path = format!("/dev/{name}");
        let stat = guest.stat(&path);
        assert_eq!(stat.mode, 0o020_666, "{path}: S_IFCHR | 0o666");
        assert_eq!(stat.rdev, makedev(major, minor), "{path}");
        assert_eq!((stat.size, stat.is_directory, stat.is_symbolic_link), (0, false, false), "{path}");
        assert_eq!((stat.uid, stat.gid, stat.mtime_ms), (0, 0, created), "{path}");
        assert_eq!(guest.ok(req(Op::Lstat, &path)).stat.unwrap(), stat, "{path}: not a link");
    }
    // Linux's numbers, encoded like glibc's makedev.
    assert_eq!([makedev(1, 3), makedev(1, 5), makedev(1, 9)], [259, 261, 265]);
    let dev = guest.stat("/dev");
    assert_eq!((dev.mode, dev.is_directory), (0o040_755, true));
    assert_eq!(guest.stat("/proc").mode, 0o040_555);
    assert_eq!(guest.stat("/proc/self").mode, 0o040_555);
    assert_eq!(guest.stat("/proc/self/environ").mode, 0o100_400);
    assert_eq!(guest.stat("/proc/self/status").mode, 0o100_444);
    assert_eq!(guest.stat("/proc/self/cmdline").mode, 0o100_444);
    let cwd_link = guest.ok(req(Op::Lstat, "/proc/self/cwd")).stat.unwrap();
    assert_eq!((cwd_link.mode, cwd_link.is_symbolic_link), (0o120_777, true));
    // STAT follows it to the cwd.
    assert_eq!(guest.stat("/proc/self/cwd"), guest.stat("/home/user"));
    assert!(guest.exists("/dev/null") && !guest.exists("/dev/nope") && !guest.exists("/dev/null/"));
}

#[test]
fn zero_and_urandom_pread_len_bytes_and_refuse_read_file() {
    let mut guest = Guest::new(ALLOW_FS);
    assert_eq!(bytes(&guest.ok(pread("/dev/zero", 0, 1000))), vec![0u8; 1000]);
    assert_eq!(bytes(&guest.ok(pread("/dev/zero", 123, 3))), vec![0u8; 3], "the offset does not matter");
    assert_eq!(bytes(&guest.ok(pread("/dev/zero", 0, 0))), Vec::<u8>::new());

    let first = bytes(&guest.ok(pread("/dev/urandom", 0, 64)));
    assert_eq!(first.len(), 64);
    assert!(first.iter().any(|b| *b != 0));
    let second = bytes(&guest.ok(pread("/dev/urandom", 0, 64)));
    assert_eq!(second.len(), 64);
    assert_ne!(first, second, "each read draws new bytes");
    assert_eq!(bytes(&guest.ok(pread("/dev/urandom", 0, 7))).len(), 7);

    for device in ["/dev/zero", "/dev/urandom"] {
        let (code, message) = guest.err(req(Op::ReadFile, device));
        assert_eq!(code, "kernel_error");
        assert_eq!(message, format!("EINVAL: invalid argument, open '{device}': {ENDLESS_DEVICE}"));
    }
    // Reads of the others are empty.
    for device in ["/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"] {
        assert_eq!(guest.read(device), "", "{device}");
        assert_eq!(bytes(&guest.ok(pread(device, 0, 10))), Vec::<u8>::new(), "{device}");
    }
}

#[test]
fn pread_of_devices_is_bounded_by_max_pread_bytes() {
    let mut guest = Guest::new(r#"{"permissions":{"fs":"allow"},"limits":{"resources":{"maxPreadBytes":16}}}"#);
    for device in ["/dev/zero", "/dev/urandom"] {
        let (code, message) = guest.err(pread(device, 0, 17));
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("limit_exceeded", format!("ENOSPC: pread bytes limit of 16 reached, read '{device}'").as_str())
        );
        assert_eq!(bytes(&guest.ok(pread(device, 0, 16))).len(), 16);
    }
}

#[test]
fn urandom_is_the_kernels_seeded_entropy() {
    // Same seed, same bytes; another seed, other bytes.
    assert_eq!(first_urandom(7, 48), first_urandom(7, 48));
    assert_ne!(first_urandom(7, 48), first_urandom(8, 48));
    // They are the seeded generator's own stream.
    let mut expected = vec![0u8; 48];
    Entropy::from_seed(7).fill(&mut expected);
    assert_eq!(first_urandom(7, 48), expected);
}

#[test]
fn writes_to_devices_are_discarded() {
    let mut guest = Guest::new(ALLOW_FS);
    let before = guest.snapshot();
    for device in DEVICES {
        let path = format!("/dev/{device}");
        let written = guest.ok(write(&path, "gone"));
        assert_eq!((written.content, written.target), (None, None));
        assert_eq!(guest.stat(&path).size, 0, "{path}");
    }
    assert_eq!(guest.read("/dev/null"), "");
    assert_eq!(guest.snapshot(), before, "nothing was stored");
    // Writing /dev/urandom does not perturb the stream.
    assert_eq!(bytes(&guest.ok(pread("/dev/urandom", 0, 48))), first_urandom(0, 48));
    // Through a symlink in the root filesystem too.
    guest.ok(symlink("/tmp/sink", "/dev/null"));
    guest.write("/tmp/sink", "also gone");
    assert_eq!(guest.read("/tmp/sink"), "");
    assert!(guest.stat("/tmp/sink").mode & 0o170_000 == 0o020_000);
    // A write still respects maxFdWriteBytes.
    let mut limited = Guest::new(r#"{"permissions":{"fs":"allow"},"limits":{"resources":{"maxFdWriteBytes":4}}}"#);
    let (code, message) = limited.err(write("/dev/null", "12345"));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("limit_exceeded", "ENOSPC: fd write bytes limit of 4 reached, open '/dev/null'")
    );
}

#[test]
fn read_dir_lists_dev_and_proc_self() {
    let mut guest = Guest::new(ALLOW_FS);
    assert_eq!(guest.entries("/dev"), DEVICES);
    assert_eq!(guest.entries("/proc"), ["mounts", "self"]);
    assert_eq!(guest.entries("/proc/self"), ["cmdline", "cwd", "environ", "status"]);
    let root = guest.entries("/");
    assert!(root.contains(&"dev".to_owned()) && root.contains(&"proc".to_owned()), "{root:?}");
    assert_eq!(root.iter().filter(|name| *name == "dev").count(), 1);
    let (_, message) = guest.err(req(Op::ReadDir, "/dev/null"));
    assert_eq!(message, "ENOTDIR: not a directory, scandir '/dev/null'");
    // A configured mount below /dev nests in it.
    guest.mount(vec![MountDescriptor::memory("/dev/shm")]).unwrap();
    // /proc/mounts lists the root, the kernel's trees and the configured mounts.
    assert_eq!(
        guest.read("/proc/mounts"),
        "overlay / overlay rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\nproc /proc proc rw 0 0\nmemory /dev/shm tmpfs rw 0 0\n"
    );
    guest.write("/dev/shm/segment", "shared");
    assert_eq!(guest.read("/dev/shm/segment"), "shared");
    assert!(guest.entries("/dev").contains(&"shm".to_owned()));
    assert_eq!(guest.host.sidecar.vm_mount_paths(&guest.vm_id), Some(vec!["/dev/shm".to_owned()]));
    assert_eq!(guest.read("/dev/null"), "", "the kernel's /dev stays after ConfigureVm");
}

#[test]
fn proc_self_environ_is_the_env_the_policy_lets_through() {
    let mut guest = Guest::new(
        r#"{"permissions":{"fs":"allow","env":"allow"},"env":{"PATH":"/usr/bin:/bin","HOME":"/home/user","EMPTY":""}}"#,
    );
    let environ = guest.read("/proc/self/environ");
    assert_eq!(environ, "EMPTY=\0HOME=/home/user\0PATH=/usr/bin:/bin\0");
    assert_eq!(bytes(&guest.ok(pread("/proc/self/environ", 7, 4))), b"HOME");

    // Variables the env policy denies are not there (no env policy: none).
    let mut filtered = Guest::new(
        r#"{"permissions":{"fs":"allow","env":{"rules":[{"mode":"allow","operations":["read"],"patterns":["HOME"]}]}},
            "env":{"HOME":"/home/user","SECRET":"hunter2"}}"#,
    );
    assert_eq!(filtered.read("/proc/self/environ"), "HOME=/home/user\0");
    let mut none = Guest::new(r#"{"permissions":{"fs":"allow"},"env":{"SECRET":"hunter2"}}"#);
    assert_eq!(none.read("/proc/self/environ"), "");
}

#[test]
fn proc_self_cwd_cmdline_and_status() {
    let mut guest = Guest::new(ALLOW_FS);
    assert_eq!(guest.ok(req(Op::ReadLink, "/proc/self/cwd")).target.as_deref(), Some("/home/user"));
    assert_eq!(guest.ok(req(Op::Realpath, "/proc/self/cwd")).target.as_deref(), Some("/home/user"));
    assert_eq!(guest.ok(req(Op::Realpath, "/dev/../dev/null")).target.as_deref(), Some("/dev/null"));
    guest.write("notes.txt", "relative");
    assert_eq!(guest.read("/proc/self/cwd/notes.txt"), "relative");
    assert_eq!(guest.read("/proc/self/cmdline"), "");
    let status = guest.read("/proc/self/status");
    assert!(status.starts_with("Name:\thost\n") && status.contains("\nPid:\t0\n"), "{status}");
    let (_, message) = guest.err(req(Op::ReadLink, "/dev/null"));
    assert_eq!(message, "EINVAL: invalid argument, readlink '/dev/null'");

    let mut elsewhere = Guest::new(r#"{"cwd":"/tmp","permissions":{"fs":"allow"}}"#);
    assert_eq!(elsewhere.ok(req(Op::ReadLink, "/proc/self/cwd")).target.as_deref(), Some("/tmp"));
}

#[test]
fn the_kernel_trees_cannot_be_changed() {
    let mut guest = Guest::new(ALLOW_FS);
    let before = guest.snapshot();
    let refused = [
        (write("/dev/new", "x"), "EACCES: permission denied, open '/dev/new'"),
        (write("/proc/self/environ", "x"), "EACCES: permission denied, open '/proc/self/environ'"),
        (req(Op::Mkdir, "/dev/dir"), "EACCES: permission denied, mkdir '/dev/dir'"),
        (req(Op::Mkdir, "/dev"), "EEXIST: file already exists, mkdir '/dev'"),
        (symlink("/dev/null", "/tmp"), "EEXIST: file already exists, symlink '/tmp' -> '/dev/null'"),
        (req(Op::RemoveFile, "/dev/null"), "EPERM: operation not permitted, unlink '/dev/null'"),
        (req(Op::RemoveFile, "/proc/self/cwd"), "EPERM: operation not permitted, unlink '/proc/self/cwd'"),
        (req(Op::RemoveDir, "/proc/self"), "EPERM: operation not permitted, rmdir '/proc/self'"),
        (req(Op::RemoveDir, "/dev"), "EBUSY: resource busy or locked, rmdir '/dev'"),
        (
            to(Op::Rename, "/dev/zero", "/dev/zero2"),
            "EPERM: operation not permitted, rename '/dev/zero' -> '/dev/zero2'",
        ),
        (
            to(Op::Rename, "/dev/zero", "/tmp/zero"),
            "EXDEV: cross-device link not permitted, rename '/dev/zero' -> '/tmp/zero'",
        ),
        (to(Op::Link, "/dev/null", "/dev/null2"), "EPERM: operation not permitted, link '/dev/null' -> '/dev/null2'"),
        (chmod("/dev/null", 0o600), "EPERM: operation not permitted, chmod '/dev/null'"),
        (chown("/proc/self/status", 1, 1), "EPERM: operation not permitted, chown '/proc/self/status'"),
        (truncate("/dev/null", 0), "EINVAL: invalid argument, open '/dev/null'"),
    ];
    for (request, expected) in refused {
        let (code, message) = guest.err(request);
        assert_eq!((code.as_str(), message.as_str()), ("kernel_error", expected));
    }
    guest.ok(mkdir_p("/dev"));
    assert_eq!(guest.snapshot(), before);
    assert_eq!(guest.entries("/dev"), DEVICES);
}

#[test]
fn the_policy_applies_before_a_device_is_read() {
    let mut guest = Guest::new(
        r#"{"permissions":{"fs":{"default":"allow","rules":[{"mode":"deny","operations":["read"],"paths":["/dev/urandom"]}]}}}"#,
    );
    for request in [pread("/dev/urandom", 0, 8), req(Op::ReadFile, "/dev/urandom")] {
        let (code, message) = guest.err(request);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("kernel_error", "EACCES: permission denied, read '/dev/urandom': blocked by fs.read policy")
        );
    }
    // A symlink does not carry the read past the policy.
    guest.ok(symlink("/tmp/random", "/dev/urandom"));
    let (_, message) = guest.err(pread("/tmp/random", 0, 8));
    assert_eq!(message, "EACCES: permission denied, read '/dev/urandom': blocked by fs.read policy");
    // Other capabilities and devices are untouched.
    assert_eq!(guest.stat("/dev/urandom").rdev, makedev(1, 9));
    assert_eq!(bytes(&guest.ok(pread("/dev/zero", 0, 2))), [0, 0]);

    let mut denied = Guest::new(
        r#"{"permissions":{"fs":{"default":"allow","rules":[{"mode":"deny","operations":["write"],"paths":["/dev/**"]}]}}}"#,
    );
    let (_, message) = denied.err(write("/dev/null", "x"));
    assert_eq!(message, "EACCES: permission denied, write '/dev/null': blocked by fs.write policy");
}

#[test]
fn a_refused_urandom_read_draws_no_entropy() {
    let mut guest = Guest::on(
        Harness::with_config(SidecarConfig { entropy_seed: 3, ..SidecarConfig::default() }),
        r#"{"permissions":{"fs":{"default":"allow","rules":[{"mode":"deny","operations":["read"],"paths":["/dev/urandom"]}]}}}"#,
    );
    guest.err(pread("/dev/urandom", 0, 8));
    let (_, scope) = guest.sibling(ALLOW_FS);
    let drawn = bytes(&call_in(&mut guest.host, scope, pread("/dev/urandom", 0, 16)).unwrap());
    assert_eq!(drawn, first_urandom(3, 16), "the refused read consumed no entropy");
}

#[test]
fn without_the_default_base_layer_there_are_no_devices() {
    let mut guest = Guest::new(r#"{"permissions":{"fs":"allow"},"rootFilesystem":{"disableDefaultBaseLayer":true}}"#);
    for path in ["/dev", "/dev/null", "/dev/urandom", "/proc/self", "/proc/self/environ"] {
        assert!(!guest.exists(path), "{path}");
    }
    assert_eq!(guest.entries("/"), Vec::<String>::new());
    let (_, message) = guest.err(pread("/dev/zero", 0, 4));
    assert_eq!(message, "ENOENT: no such file or directory, read '/dev/zero'");

    // The base layer as an explicit lower brings its tree back, devices included.
    let mut bundled = Guest::new(
        r#"{"permissions":{"fs":"allow"},"rootFilesystem":{"disableDefaultBaseLayer":true,"lowers":[{"kind":"bundledBaseFilesystem"}]}}"#,
    );
    assert_eq!(bundled.stat("/dev/null").rdev, makedev(1, 3));
}
