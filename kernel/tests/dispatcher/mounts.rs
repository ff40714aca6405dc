//! ConfigureVm mounts: memory and host_dir plugins, resolution across mount points, read-only
//! mounts, EXDEV, EBUSY, reconciliation, refused plugins.

use crate::fakes::FakeHostFs;
use crate::filesystem::*;
use crate::harness::*;
use kernel::dispatch::{MAX_MOUNT_ID_BYTES, SUPPORTED_MOUNT_PLUGINS};
use kernel::Sidecar;
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use std::sync::Arc;
use testkit::requests::{configure_mounts, fs_policy, fs_rule, mount};

impl Guest {
    /// ConfigureVm with these mounts; `Ok(applied)` or the rejection.
    pub fn mount(&mut self, mounts: Vec<MountDescriptor>) -> Result<u32, (String, String)> {
        match self.send(configure_mounts(mounts)) {
            ResponsePayload::VmConfiguredResponse(r) => Ok(r.applied_mounts),
            ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn entries(&mut self, path: &str) -> Vec<String> {
        self.ok(req(Op::ReadDir, path)).entries.unwrap()
    }
}

fn host_guest(fake: &FakeHostFs, config: &str) -> Guest {
    Guest::on(Harness::with_sidecar(Sidecar::new(Default::default()).with_host_fs(Arc::new(fake.clone()))), config)
}

#[test]
fn memory_mount_reads_and_writes_and_resolution_crosses_it() {
    let mut guest = Guest::new(ALLOW_FS);
    assert_eq!(guest.mount(vec![MountDescriptor::memory("/data")]), Ok(1));
    assert_eq!(guest.host.sidecar.vm_mount_paths(&guest.vm_id), Some(vec!["/data".to_owned()]));
    guest.write("/data/a.txt", "in the mount");
    assert_eq!(guest.read("/data/a.txt"), "in the mount");
    assert_eq!(guest.entries("/data"), ["a.txt"]);
    assert!(guest.entries("/").contains(&"data".to_owned()), "the mount point is listed in its parent");
    assert!(guest.stat("/data").is_directory);
    // The mount's content is not the root filesystem's.
    assert!(guest.snapshot().iter().all(|e| !e.path.starts_with("/data")));
    // `..` at the mount's root is back in the root filesystem; relative paths cross too.
    assert_eq!(guest.read("/data/../etc/hostname"), "secure-exec\n");
    assert_eq!(guest.read("../../data/a.txt"), "in the mount", "from the cwd /home/user");
    let real = guest.ok(req(Op::Realpath, "/data/.//a.txt"));
    assert_eq!(real.target.as_deref(), Some("/data/a.txt"));
    // A symlink in the root leads into the mount; one in the mount (absolute) back out.
    guest.ok(symlink("/tmp/into", "/data"));
    assert_eq!(guest.read("/tmp/into/a.txt"), "in the mount");
    guest.write("/tmp/into/b.txt", "through a link");
    assert_eq!(guest.read("/data/b.txt"), "through a link");
    guest.ok(symlink("/data/etc", "/etc"));
    assert_eq!(guest.read("/data/etc/hostname"), "secure-exec\n");
    assert_eq!(guest.ok(req(Op::Realpath, "/data/etc/hostname")).target.as_deref(), Some("/etc/hostname"));
    // Every other operation works inside the mount.
    guest.ok(mkdir_p("/data/x/y"));
    guest.ok(to(Op::Rename, "/data/a.txt", "/data/x/y/a.txt"));
    guest.ok(to(Op::Link, "/data/x/y/a.txt", "/data/hard"));
    assert_eq!(guest.stat("/data/hard").nlink, 2);
    guest.ok(truncate("/data/hard", 2));
    assert_eq!(guest.read("/data/x/y/a.txt"), "in");
    guest.ok(rm_r("/data/x"));
    assert!(!guest.exists("/data/x"));
    // Errors name the paths as given.
    let (code, message) = guest.err(req(Op::ReadFile, "/data/missing"));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("kernel_error", "ENOENT: no such file or directory, open '/data/missing'")
    );
    let (_, message) = guest.err(req(Op::ReadFile, "/data/nope/deeper"));
    assert_eq!(message, "ENOENT: no such file or directory, open '/data/nope/deeper'");
}

#[test]
fn missing_directories_on_the_way_to_a_mount_exist_virtually() {
    let mut guest = Guest::new(ALLOW_FS);
    guest.mount(vec![MountDescriptor::memory("/deep/er/mnt")]).unwrap();
    assert!(guest.stat("/deep").is_directory);
    assert!(guest.exists("/deep/er"));
    assert_eq!(guest.entries("/deep"), ["er"]);
    assert_eq!(guest.entries("/deep/er"), ["mnt"]);
    guest.write("/deep/er/mnt/f", "x");
    assert_eq!(guest.read("/deep/er/mnt/f"), "x");
    assert_eq!(guest.ok(req(Op::Realpath, "/deep/er")).target.as_deref(), Some("/deep/er"));
    // Creating a real directory there merges with the virtual listing.
    guest.ok(req(Op::CreateDir, "/deep/other"));
    assert_eq!(guest.entries("/deep"), ["er", "other"]);
}

#[test]
fn a_read_only_mount_refuses_every_mutating_operation() {
    let fake = FakeHostFs::with_dir("/srv/ro", &[("kept.txt", "original")]);
    let mut guest = host_guest(&fake, ALLOW_FS);
    guest
        .mount(vec![
            mount("/ro", "memory", "{}", true),
            mount("/host", "host_dir", r#"{"hostPath":"/srv/ro"}"#, true),
            mount("/host2", "host_dir", r#"{"hostPath":"/srv/ro","readOnly":true}"#, false),
        ])
        .unwrap();
    for base in ["/ro", "/host", "/host2"] {
        let file = format!("{base}/kept.txt");
        let mutations = vec![
            write(&file, "x"),
            write(&format!("{base}/new"), "x"),
            req(Op::CreateDir, &format!("{base}/d")),
            mkdir_p(&format!("{base}/a/b")),
            req(Op::RemoveFile, &file),
            req(Op::RemoveDir, &format!("{base}/dir")),
            to(Op::Rename, &file, &format!("{base}/moved")),
            symlink(&format!("{base}/s"), "kept.txt"),
            to(Op::Link, &file, &format!("{base}/hard")),
            chmod(&file, 0o600),
            chown(&file, 1, 1),
            utimes(&file, 1, 1),
            truncate(&file, 0),
        ];
        for request in mutations {
            let described = format!("{:?} {}", request.operation, request.path);
            let (code, message) = guest.err(request);
            assert_eq!(code, "kernel_error", "{described}");
            assert!(message.starts_with("EROFS: read-only file system, "), "{described}: {message}");
        }
    }
    // Reads still work, and nothing reached the host.
    assert_eq!(guest.read("/host/kept.txt"), "original");
    assert!(guest.entries("/ro").is_empty());
    assert_eq!(fake.file("/srv/ro", "kept.txt").as_deref(), Some(&b"original"[..]));
    assert_eq!(fake.tree("/srv/ro").len(), 2);
}

#[test]
fn rename_and_link_across_mounts_are_exdev() {
    let mut guest = Guest::new(ALLOW_FS);
    guest.mount(vec![MountDescriptor::memory("/a"), MountDescriptor::memory("/b")]).unwrap();
    guest.write("/a/f", "x");
    guest.write("/tmp/r", "root");
    let cases = [
        (to(Op::Rename, "/a/f", "/b/f"), "EXDEV: cross-device link not permitted, rename '/a/f' -> '/b/f'"),
        (to(Op::Rename, "/a/f", "/tmp/f"), "EXDEV: cross-device link not permitted, rename '/a/f' -> '/tmp/f'"),
        (to(Op::Rename, "/tmp/r", "/a/r"), "EXDEV: cross-device link not permitted, rename '/tmp/r' -> '/a/r'"),
        (to(Op::Link, "/a/f", "/b/g"), "EXDEV: cross-device link not permitted, link '/a/f' -> '/b/g'"),
        (to(Op::Link, "/tmp/r", "/b/r"), "EXDEV: cross-device link not permitted, link '/tmp/r' -> '/b/r'"),
    ];
    for (request, expected) in cases {
        assert_eq!(guest.err(request), ("kernel_error".to_owned(), expected.to_owned()));
    }
    assert_eq!(guest.read("/a/f"), "x", "nothing moved");
    assert!(!guest.exists("/b/f"));
    // Within one mount, and within the root, they work.
    guest.ok(to(Op::Rename, "/a/f", "/a/g"));
    guest.ok(to(Op::Rename, "/tmp/r", "/tmp/s"));
    // The mount points themselves cannot be removed or renamed, nor what holds them.
    guest.mount(vec![MountDescriptor::memory("/a"), MountDescriptor::memory("/mnt/x/y")]).unwrap();
    for request in [req(Op::RemoveDir, "/a"), rm_r("/mnt"), to(Op::Rename, "/a", "/z"), to(Op::Rename, "/mnt", "/z")] {
        let (code, message) = guest.err(request);
        assert_eq!(code, "kernel_error");
        assert!(message.starts_with("EBUSY: "), "{message}");
    }
}

#[test]
fn configure_vm_reconciles_mounts() {
    let mut guest = Guest::new(ALLOW_FS);
    guest.mount(vec![MountDescriptor::memory("/one")]).unwrap();
    guest.write("/one/f", "first");
    // The second ConfigureVm replaces the mount list: /one is gone, /two is new.
    assert_eq!(guest.mount(vec![MountDescriptor::memory("/two"), MountDescriptor::memory("/three")]), Ok(2));
    assert_eq!(guest.host.sidecar.vm_mount_paths(&guest.vm_id), Some(vec!["/two".to_owned(), "/three".to_owned()]));
    let (code, message) = guest.err(req(Op::ReadFile, "/one/f"));
    assert_eq!((code.as_str(), message.as_str()), ("kernel_error", "ENOENT: no such file or directory, open '/one/f'"));
    assert!(!guest.entries("/").contains(&"one".to_owned()));
    guest.write("/two/g", "second");
    // Remounting the same path gives a fresh filesystem.
    guest.mount(vec![MountDescriptor::memory("/two")]).unwrap();
    assert!(!guest.exists("/two/g"));
    guest.write("/two/g", "kept");
    // A refused ConfigureVm changes nothing: every mount is checked before any change.
    for bad in [
        vec![MountDescriptor::memory("/new"), mount("/x", "nfs", "{}", false)],
        vec![MountDescriptor::memory("/new"), mount("/x", "s3", "{}", false)],
        vec![MountDescriptor::memory("/new"), mount("/x", "host_dir", r#"{"hostPath":"/srv"}"#, false)],
        vec![MountDescriptor::memory("/new"), MountDescriptor::memory("/new/")],
    ] {
        assert!(guest.mount(bad).is_err());
        assert_eq!(guest.host.sidecar.vm_mount_paths(&guest.vm_id), Some(vec!["/two".to_owned()]));
        assert_eq!(guest.read("/two/g"), "kept");
    }
    // An empty list unmounts everything.
    assert_eq!(guest.mount(vec![]), Ok(0));
    assert!(!guest.exists("/two/g"));
}

#[test]
fn unsupported_and_invalid_mounts_are_refused() {
    let mut guest = Guest::new(ALLOW_FS);
    for plugin in ["module_access", "sqlite_vfs", "s3", "google_drive", "sandbox_agent"] {
        assert!(!SUPPORTED_MOUNT_PLUGINS.contains(&plugin));
        assert_eq!(
            guest.mount(vec![mount("/m", plugin, "{}", false)]),
            Err(("plugin_error".into(), format!("ENOSYS: filesystem plugin is not supported here: {plugin}")))
        );
    }
    let long_id = format!(r#"{{"mountId":"{}"}}"#, "m".repeat(MAX_MOUNT_ID_BYTES + 1));
    let max_id = format!(r#"{{"mountId":"{}"}}"#, "m".repeat(MAX_MOUNT_ID_BYTES));
    let cases: Vec<(MountDescriptor, &str, &str)> = vec![
        (mount("/m", "nfs", "{}", false), "plugin_error", "ENOSYS: filesystem plugin is not registered: nfs"),
        (
            mount("/m", "host_dir", r#"{"hostPath":"/srv"}"#, false),
            "plugin_error",
            "ENOSYS: host filesystem access is not available",
        ),
        (mount("/m", "host_dir", "{}", false), "plugin_error", "EINVAL: host_dir mount config requires"),
        (mount("/m", "js_bridge", "[1]", false), "plugin_error", "EINVAL: js_bridge mount config must be"),
        (mount("/m", "js_bridge", r#"{"mountId":7}"#, false), "plugin_error", "EINVAL: js_bridge \"mountId\""),
        (mount("/m", "js_bridge", &long_id, false), "plugin_error", "EINVAL: js_bridge mountId must be 1 to 256"),
        (mount("/", "memory", "{}", false), "invalid_state", "cannot be / (the root filesystem)"),
        (mount("data", "memory", "{}", false), "invalid_state", "must be absolute"),
        (mount("/a/../b", "memory", "{}", false), "invalid_state", "must not contain '.' or '..'"),
        (mount("/m", "memory", "{", false), "invalid_state", "mount plugin config for memory is not valid JSON"),
    ];
    for (descriptor, code, text) in cases {
        let (got_code, message) = guest.mount(vec![descriptor]).unwrap_err();
        assert_eq!(got_code, code, "{message}");
        assert!(message.contains(text), "{message:?} should contain {text:?}");
    }
    let (code, message) =
        guest.mount(vec![MountDescriptor::memory("/d"), MountDescriptor::memory("//d/")]).unwrap_err();
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "duplicate mount guest path /d"));
    assert_eq!(guest.mount(vec![mount("/m", "js_bridge", &max_id, false)]), Ok(1));
    assert_eq!(guest.host.sidecar.vm_mount_paths(&guest.vm_id), Some(vec!["/m".to_owned()]));
}

#[test]
fn the_fs_policy_applies_to_canonical_paths_across_mounts() {
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["*"],"paths":["/data/secret","/data/secret/**"]}]}}}"#;
    let mut guest = Guest::new(config);
    guest.mount(vec![MountDescriptor::memory("/data")]).unwrap();
    guest.ok(symlink("/tmp/l", "/data/secret"));
    let (code, message) = guest.err(write("/tmp/l/x", "no"));
    assert_eq!(code, "kernel_error");
    assert_eq!(message, "EACCES: permission denied, write '/data/secret/x': blocked by fs.write policy");
    let (_, message) = guest.err(req(Op::CreateDir, "/data/../data/secret"));
    assert_eq!(message, "EACCES: permission denied, createDir '/data/secret': blocked by fs.create_dir policy");
    guest.write("/data/open", "fine");
}

#[test]
fn host_dir_mounts_go_through_the_injected_host_fs() {
    let fake = FakeHostFs::with_dir("/srv/data", &[("seed.txt", "from the host")]);
    let mut guest = host_guest(&fake, ALLOW_FS);
    guest.mount(vec![mount("/host", "host_dir", r#"{"hostPath":"/srv/data"}"#, false)]).unwrap();
    assert_eq!(guest.read("/host/seed.txt"), "from the host");
    guest.write("/host/new.txt", "from the guest");
    assert_eq!(fake.file("/srv/data", "new.txt").as_deref(), Some(&b"from the guest"[..]));
    guest.ok(req(Op::CreateDir, "/host/sub"));
    guest.write("/host/sub/../sub/inner.txt", "normalised");
    assert_eq!(fake.file("/srv/data", "sub/inner.txt").as_deref(), Some(&b"normalised"[..]));
    assert_eq!(guest.entries("/host"), ["new.txt", "seed.txt", "sub"]);
    assert_eq!(guest.stat("/host/seed.txt").size, 13);
    assert!(guest.stat("/host/sub").is_directory);
    guest.ok(to(Op::Rename, "/host/new.txt", "/host/sub/moved.txt"));
    assert_eq!(fake.file("/srv/data", "sub/moved.txt").as_deref(), Some(&b"from the guest"[..]));
    let window = guest.ok(pread("/host/seed.txt", 5, 3));
    assert_eq!(window.content.as_deref(), Some("the"));
    guest.ok(req(Op::RemoveFile, "/host/sub/moved.txt"));
    assert_eq!(fake.file("/srv/data", "sub/moved.txt"), None);
    assert_eq!(guest.ok(req(Op::Realpath, "/host/sub/../seed.txt")).target.as_deref(), Some("/host/seed.txt"));
    // Host errors are errno messages naming the guest path; unimplemented operations ENOSYS.
    let (_, message) = guest.err(req(Op::ReadFile, "/host/missing"));
    assert_eq!(message, "ENOENT: no such file or directory, open '/host/missing'");
    let (_, message) = guest.err(symlink("/host/link", "seed.txt"));
    assert_eq!(message, "ENOSYS: function not implemented, symlink 'seed.txt' -> '/host/link'");
    // `..` out of the mount is the root filesystem's, never the host's parent.
    assert_eq!(guest.read("/host/../etc/hostname"), "secure-exec\n");
    assert!(fake.seen().iter().all(|p| !p.contains("etc")), "{:?}", fake.seen());
    // The limits of the VM bound host reads.
    let mut small = host_guest(&fake, r#"{"permissions":{"fs":"allow"},"limits":{"resources":{"maxPreadBytes":4}}}"#);
    small.mount(vec![mount("/host", "host_dir", r#"{"hostPath":"/srv/data"}"#, false)]).unwrap();
    let (code, message) = small.err(req(Op::ReadFile, "/host/seed.txt"));
    assert_eq!(code, "limit_exceeded");
    assert_eq!(message, "ENOSPC: pread bytes limit of 4 reached, open '/host/seed.txt'");
    // A missing host directory fails the mount.
    let (code, message) =
        guest.mount(vec![mount("/gone", "host_dir", r#"{"hostPath":"/srv/gone"}"#, false)]).unwrap_err();
    assert_eq!(code, "plugin_error");
    assert!(message.starts_with("ENOENT: no host directory /srv/gone"), "{message}");
}

/// Mounting needs `fs.write` on the guest path, and `fs.mount_sensitive` over `/etc` or `/proc`
/// (as in the original), checked against the policy the request brings: before, the policy was
/// never asked, and a rule naming `mount_sensitive` could never match.
#[test]
fn mounting_needs_write_and_sensitive_paths_need_mount_sensitive() {
    let mut guest = Guest::new(
        r#"{"permissions":{"fs":{"default":"allow","rules":[{"mode":"deny","operations":["write"],"paths":["/locked/**","/locked"]}]}}}"#,
    );
    let (code, message) = guest.mount(vec![MountDescriptor::memory("/locked")]).unwrap_err();
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("EACCES: permission denied, write '/locked'"), "{message}");
    // Over /etc the default `allow` is not enough unless mount_sensitive is allowed too: here
    // it is (default allow), so it mounts; a policy denying mount_sensitive refuses it.
    assert_eq!(guest.mount(vec![MountDescriptor::memory("/etc/extra")]), Ok(1));
    let deny_sensitive = RequestPayload::ConfigureVmRequest(ConfigureVmRequest {
        permissions: Some(fs_policy(
            PermissionMode::Allow,
            vec![fs_rule(PermissionMode::Deny, &["mount_sensitive"], &["/**"])],
        )),
        ..ConfigureVmRequest::mounts(vec![MountDescriptor::memory("/proc/extra")])
    });
    let ResponsePayload::RejectedResponse(RejectedResponse { code, message }) = guest.send(deny_sensitive) else {
        panic!("mounting over /proc with mount_sensitive denied")
    };
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("EACCES: permission denied, mount '/proc/extra'"), "{message}");
    assert_eq!(guest.mount(vec![MountDescriptor::memory("/data")]), Ok(1), "elsewhere only write is needed");
}
