//! `HostFilesystemCallRequest`: the host's own operations on a VM's host_dir mounts, through
//! the injected host filesystem, checked against the VM's fs policy.

use crate::fakes::{FakeHostFs, Node};
use crate::filesystem::*;
use crate::harness::*;
use kernel::dispatch::HOST_FILESYSTEM_STATUS_OK;
use kernel::Sidecar;
use schema::wire::FilesystemOperation as H;
use schema::wire::*;
use std::sync::Arc;
use testkit::requests::mount;

fn host_call(guest: &mut Guest, operation: FilesystemOperation, path: &str, size: u64) -> (String, u64) {
    let payload = RequestPayload::HostFilesystemCallRequest(HostFilesystemCallRequest {
        operation,
        path: path.into(),
        payload_size_bytes: size,
    });
    match guest.send(payload) {
        ResponsePayload::FilesystemResultResponse(result) => {
            assert_eq!(result.operation, operation);
            (result.status, result.payload_size_bytes)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn guest_with(fake: &FakeHostFs, config: &str, read_only: bool) -> Guest {
    let sidecar = Sidecar::new(Default::default()).with_host_fs(Arc::new(fake.clone()));
    let mut guest = Guest::on(Harness::with_sidecar(sidecar), config);
    guest
        .mount(vec![mount("/host", "host_dir", r#"{"hostPath":"/srv/h"}"#, read_only), MountDescriptor::memory("/mem")])
        .unwrap();
    guest
}

#[test]
fn host_filesystem_calls_round_trip_through_the_host_fs() {
    let fake = FakeHostFs::with_dir("/srv/h", &[("f.txt", "hello")]);
    let mut guest = guest_with(&fake, ALLOW_FS, false);
    let ok = |status: &str| status == HOST_FILESYSTEM_STATUS_OK;
    let (status, size) = host_call(&mut guest, H::Read, "/host/f.txt", 0);
    assert!(ok(&status) && size == 5, "{status} {size}");
    assert_eq!(host_call(&mut guest, H::Stat, "/host/f.txt", 0), ("ok".into(), 5));
    assert_eq!(host_call(&mut guest, H::Mkdir, "/host/d", 0), ("ok".into(), 0));
    assert_eq!(fake.tree("/srv/h").get("d"), Some(&Node::Dir));
    // WRITE creates the file at payloadSizeBytes (zero-filled) or sets an existing one's length.
    assert_eq!(host_call(&mut guest, H::Write, "/host/d/new.bin", 10), ("ok".into(), 10));
    assert_eq!(fake.file("/srv/h", "d/new.bin"), Some(vec![0; 10]));
    assert_eq!(host_call(&mut guest, H::Write, "/host/f.txt", 2), ("ok".into(), 2));
    assert_eq!(fake.file("/srv/h", "f.txt").as_deref(), Some(&b"he"[..]));
    assert_eq!(host_call(&mut guest, H::ReadDir, "/host", 0), ("ok".into(), 2));
    // RENAME names both paths in `path`, separated by NUL.
    assert_eq!(host_call(&mut guest, H::Rename, "/host/f.txt\0/host/d/g.txt", 0), ("ok".into(), 0));
    assert_eq!(fake.file("/srv/h", "d/g.txt").as_deref(), Some(&b"he"[..]));
    assert_eq!(host_call(&mut guest, H::Rename, "/host/d/g.txt", 0), ("EINVAL".into(), 0));
    assert_eq!(host_call(&mut guest, H::Remove, "/host/d", 0), ("ENOTEMPTY".into(), 0));
    assert_eq!(host_call(&mut guest, H::Remove, "/host/d/g.txt", 0), ("ok".into(), 0));
    assert_eq!(host_call(&mut guest, H::Remove, "/host/d/new.bin", 0), ("ok".into(), 0));
    assert_eq!(host_call(&mut guest, H::Remove, "/host/d", 0), ("ok".into(), 0));
    assert_eq!(fake.tree("/srv/h").len(), 1, "only the root is left");
    // Errors are errno statuses; paths outside host_dir mounts are EXDEV.
    assert_eq!(host_call(&mut guest, H::Read, "/host/missing", 0), ("ENOENT".into(), 0));
    assert_eq!(host_call(&mut guest, H::Read, "/etc/hostname", 0), ("EXDEV".into(), 0));
    assert_eq!(host_call(&mut guest, H::Stat, "/mem", 0), ("EXDEV".into(), 0));
    assert_eq!(host_call(&mut guest, H::Rename, "/host/x\0/mem/x", 0), ("EXDEV".into(), 0));
    assert_eq!(host_call(&mut guest, H::Read, "/host/../etc/hostname", 0), ("EXDEV".into(), 0));
    // The guest sees what the host did.
    host_call(&mut guest, H::Write, "/host/seen", 3);
    assert_eq!(guest.stat("/host/seen").size, 3);
}

#[test]
fn host_filesystem_calls_obey_the_policy_read_only_and_limits() {
    let fake = FakeHostFs::with_dir("/srv/h", &[("f.txt", "hello"), ("secret", "s")]);
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["read","write"],"paths":["/host/secret"]}]}},
        "limits":{"resources":{"maxFdWriteBytes":100}}}"#;
    let mut guest = guest_with(&fake, config, false);
    assert_eq!(host_call(&mut guest, H::Read, "/host/secret", 0), ("EACCES".into(), 0));
    assert_eq!(host_call(&mut guest, H::Write, "/host/secret", 1), ("EACCES".into(), 0));
    assert_eq!(host_call(&mut guest, H::Stat, "/host/secret", 0), ("ok".into(), 1), "stat is allowed");
    assert_eq!(host_call(&mut guest, H::Write, "/host/big", 101), ("ENOSPC".into(), 0));
    assert_eq!(fake.file("/srv/h", "big"), None);
    let mut read_only = guest_with(&fake, ALLOW_FS, true);
    for (operation, path) in [
        (H::Write, "/host/f.txt"),
        (H::Mkdir, "/host/d"),
        (H::Remove, "/host/f.txt"),
        (H::Rename, "/host/f.txt\0/host/g"),
    ] {
        assert_eq!(host_call(&mut read_only, operation, path, 1), ("EROFS".into(), 0), "{operation:?}");
    }
    assert_eq!(host_call(&mut read_only, H::Read, "/host/f.txt", 0), ("ok".into(), 5));
    assert_eq!(fake.file("/srv/h", "f.txt").as_deref(), Some(&b"hello"[..]));
}

#[test]
fn a_host_rename_does_not_move_a_directory_past_a_rule_below_it() {
    let fake = FakeHostFs::with_dir("/srv/h", &[("f.txt", "hello")]);
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["read"],"paths":["/host/d/secret/**"]}]}}}"#;
    let mut guest = guest_with(&fake, config, false);
    for dir in ["/host/d", "/host/d/secret", "/host/d/open"] {
        assert_eq!(host_call(&mut guest, H::Mkdir, dir, 0), ("ok".into(), 0), "{dir}");
    }
    assert_eq!(host_call(&mut guest, H::Write, "/host/d/secret/f", 3), ("ok".into(), 3));
    assert_eq!(host_call(&mut guest, H::Read, "/host/d/secret/f", 0), ("EACCES".into(), 0));
    assert_eq!(host_call(&mut guest, H::Rename, "/host/d\0/host/moved", 0), ("EXDEV".into(), 0));
    assert_eq!(host_call(&mut guest, H::Rename, "/host/d/secret\0/host/s", 0), ("EXDEV".into(), 0));
    assert_eq!(fake.file("/srv/h", "d/secret/f"), Some(vec![0; 3]), "nothing moved");
    assert_eq!(host_call(&mut guest, H::Read, "/host/moved/secret/f", 0), ("ENOENT".into(), 0));
    // Directories without a differing rule below, and files, rename as before (this fake host
    // refuses directory renames with ENOSYS: the request got past the policy to the host).
    assert_eq!(host_call(&mut guest, H::Rename, "/host/d/open\0/host/open", 0), ("ENOSYS".into(), 0));
    assert_eq!(host_call(&mut guest, H::Rename, "/host/f.txt\0/host/d/g.txt", 0), ("ok".into(), 0));
    assert_eq!(fake.file("/srv/h", "d/g.txt").as_deref(), Some(&b"hello"[..]));
}
