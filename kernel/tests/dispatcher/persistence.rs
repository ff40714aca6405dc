//! PersistenceFlush / PersistenceLoad: a VM's root filesystem state saved under a key and
//! loaded into another VM, through the injected store.

use crate::fakes::{FailingStore, TearingStore};
use crate::filesystem::*;
use crate::harness::*;
use kernel::host::effect::{Completion, Effect, EffectId, MAX_EFFECTS_IN_FLIGHT};
use kernel::host::store::{MemoryStore, Store, MAX_PERSISTENCE_KEY_BYTES};
use kernel::Sidecar;
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn host_with(store: Arc<dyn Store>) -> Harness {
    Harness::with_store(Sidecar::new(Default::default()), store)
}

fn flush(guest: &mut Guest, key: &str) -> Result<u64, (String, String)> {
    match guest.send(RequestPayload::PersistenceFlushRequest(PersistenceFlushRequest {
        key: key.into(),
        payload_size_bytes: 0,
    })) {
        ResponsePayload::PersistenceFlushedResponse(r) => {
            assert_eq!(r.key, key);
            Ok(r.committed_bytes)
        }
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

fn load(guest: &mut Guest, key: &str) -> Result<(bool, u64), (String, String)> {
    match guest.send(RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: key.into() })) {
        ResponsePayload::PersistenceStateResponse(r) => {
            assert_eq!(r.key, key);
            Ok((r.found, r.payload_size_bytes))
        }
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

/// A VM on `host` (its own connection and session).
fn vm_on(host: &mut Harness, config: &str) -> (String, OwnershipScope) {
    let (conn, session, vm) = host.vm(config);
    let scope = OwnershipScope::vm(conn, session, &vm);
    (vm, scope)
}

/// Changes of every kind: new files (text and binary), directories, a symlink, modes and
/// owners, a base-layer file changed, one deleted (whiteout), a base directory replaced by an
/// empty one (opaque).
fn change_everything(guest: &mut Guest) {
    guest.write("/home/user/notes.txt", "remember");
    guest.ok(GuestFilesystemCallRequest {
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..write("/tmp/blob", "AAEC/w==")
    });
    guest.ok(GuestFilesystemCallRequest { mode: Some(0o700), ..mkdir_p("/work/a/b") });
    guest.ok(symlink("/work/link", "/home/user/notes.txt"));
    guest.ok(chown("/work/a", 1000, 1000));
    guest.write("/etc/hostname", "persisted-host\n");
    guest.ok(req(Op::RemoveFile, "/etc/shells"));
    guest.ok(rm_r("/usr/local"));
    guest.ok(req(Op::CreateDir, "/usr/local"));
}

#[test]
fn flush_then_load_into_a_new_vm_reproduces_the_tree() {
    let store = Arc::new(MemoryStore::new());
    let mut first = Guest::on(host_with(store.clone()), ALLOW_FS);
    change_everything(&mut first);
    first.mount(vec![MountDescriptor::memory("/data")]).unwrap();
    first.write("/data/not-persisted", "mounts are not part of the state");
    let expected = first.snapshot();
    let committed = flush(&mut first, "state-1").unwrap();
    assert!(committed > 0);
    assert_eq!(store.get("state-1", u64::MAX).unwrap().map(|v| v.len() as u64), Some(committed));

    // A new VM, in another sidecar sharing the store (like a restarted process).
    let mut second = Guest::on(host_with(store.clone()), ALLOW_FS);
    assert_ne!(second.snapshot(), expected);
    assert_eq!(load(&mut second, "state-1"), Ok((true, committed)));
    assert_eq!(second.snapshot(), expected);
    assert_eq!(second.read("/etc/hostname"), "persisted-host\n");
    assert!(!second.exists("/etc/shells"), "the whiteout came back");
    assert!(second.entries("/usr/local").is_empty(), "the opaque directory came back");
    assert_eq!(second.ok(req(Op::ReadLink, "/work/link")).target.as_deref(), Some("/home/user/notes.txt"));
    assert_eq!(second.stat("/work/a").uid, 1000);
    assert_eq!(second.stat("/work/a/b").mode & 0o7777, 0o700);
    assert!(!second.exists("/data/not-persisted"));
    // The loaded state is an ordinary upper: it can change and be flushed again.
    second.write("/etc/shells", "/bin/sh\n");
    flush(&mut second, "state-2").unwrap();
    let mut third = Guest::on(host_with(store), ALLOW_FS);
    load(&mut third, "state-2").unwrap();
    assert_eq!(third.read("/etc/shells"), "/bin/sh\n");
}

#[test]
fn a_missing_key_is_not_found_and_changes_nothing() {
    let mut guest = Guest::on(host_with(Arc::new(MemoryStore::new())), ALLOW_FS);
    guest.write("/tmp/mine", "x");
    let before = guest.snapshot();
    assert_eq!(load(&mut guest, "never-flushed"), Ok((false, 0)));
    assert_eq!(guest.snapshot(), before);
}

#[test]
fn a_store_failing_mid_write_keeps_the_previous_state_loadable() {
    let store = Arc::new(FailingStore::default());
    let mut guest = Guest::on(host_with(store.clone()), ALLOW_FS);
    guest.write("/tmp/v", "version one");
    let version_one = guest.snapshot();
    flush(&mut guest, "vm").unwrap();
    guest.write("/tmp/v", "version two");
    guest.write("/tmp/extra", "only in two");
    store.fail_puts.store(true, Ordering::SeqCst);
    let (code, message) = flush(&mut guest, "vm").unwrap_err();
    assert_eq!(code, "io_error");
    assert_eq!(message, "EIO: persistence flush of 'vm' failed: disk full after a partial write");
    let mut fresh = Guest::on(host_with(store.clone()), ALLOW_FS);
    load(&mut fresh, "vm").unwrap();
    assert_eq!(fresh.snapshot(), version_one);
    assert_eq!(fresh.read("/tmp/v"), "version one");
    // A store that is not atomic tears the state: the checksum refuses it, nothing changes.
    let torn = Arc::new(TearingStore::default());
    let mut writer = Guest::on(host_with(torn.clone()), ALLOW_FS);
    flush(&mut writer, "vm").unwrap();
    torn.tear_puts.store(true, Ordering::SeqCst);
    assert_eq!(flush(&mut writer, "vm").unwrap_err().0, "io_error");
    let mut reader = Guest::on(host_with(torn), ALLOW_FS);
    reader.write("/tmp/local", "kept");
    let before = reader.snapshot();
    let (code, message) = load(&mut reader, "vm").unwrap_err();
    assert_eq!(code, "io_error");
    assert!(message.starts_with("EIO: persisted state 'vm' is unusable: "), "{message}");
    assert_eq!(reader.snapshot(), before);
}

#[test]
fn persistence_requests_are_checked() {
    // Session scope.
    let mut host = host_with(Arc::new(MemoryStore::new()));
    let (_, vm_scope) = vm_on(&mut host, ALLOW_FS);
    let session_scope = OwnershipScope::session(vm_scope.connection_id(), vm_scope.session_id().unwrap());
    let frames =
        host.request(session_scope, RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: "k".into() }));
    assert_eq!(
        rejection(&frames[0]),
        ("invalid_state".into(), "persistence requires VM ownership: a session has no filesystem of its own".into())
    );
    // Keys.
    let mut guest = Guest::on(host_with(Arc::new(MemoryStore::new())), ALLOW_FS);
    for bad in ["", "../up", "a/b", ".hidden", "sp ace"] {
        let (code, _) = flush(&mut guest, bad).unwrap_err();
        assert_eq!(code, "invalid_state", "{bad:?}");
    }
    let longest = "k".repeat(MAX_PERSISTENCE_KEY_BYTES);
    flush(&mut guest, &longest).unwrap();
    let (code, message) = flush(&mut guest, &format!("{longest}k")).unwrap_err();
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "persistence key is 201 bytes, limit is 200"));
    // No store.
    let mut storeless = Guest::new(ALLOW_FS);
    assert_eq!(
        flush(&mut storeless, "k"),
        Err(("unsupported".into(), "persistence is not available: no store is configured".into()))
    );
}

/// `limits.plugins.maxPersistedManifestFileBytes` bounds each file of a state, on flush and on
/// load; a refused operation stores or changes nothing.
#[test]
fn persisted_files_are_bounded() {
    let store = Arc::new(MemoryStore::new());
    let config = r#"{"permissions":{"fs":"allow"},"limits":{"plugins":{"maxPersistedManifestFileBytes":4}}}"#;
    let mut guest = Guest::on(host_with(store.clone()), config);
    guest.write("/tmp/fits", "four");
    flush(&mut guest, "fits").unwrap();
    guest.write("/tmp/big", "fives");
    let (code, message) = flush(&mut guest, "big").unwrap_err();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("limit_exceeded", "ENOSPC: persisted file bytes limit of 4 reached, flush 'big': /tmp/big")
    );
    assert_eq!(store.get("big", u64::MAX).unwrap(), None, "nothing was stored");
    // A state with a larger file, flushed by a VM with the default bound, does not load.
    let mut roomy = Guest::on(host_with(store.clone()), ALLOW_FS);
    roomy.write("/tmp/big", "fives");
    flush(&mut roomy, "big").unwrap();
    let mut small = Guest::on(host_with(store), config);
    let before = small.snapshot();
    let (code, message) = load(&mut small, "big").unwrap_err();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("limit_exceeded", "ENOSPC: persisted file bytes limit of 4 reached, load 'big': /tmp/big")
    );
    assert_eq!(small.snapshot(), before);
    assert!(matches!(load(&mut small, "fits"), Ok((true, _))), "a state within the bound loads");
}

#[test]
fn persisted_state_is_bounded() {
    let store = Arc::new(MemoryStore::new());
    let small = r#"{"permissions":{"fs":"allow"},"limits":{"plugins":{"maxPersistedManifestBytes":2000}}}"#;
    let mut guest = Guest::on(host_with(store.clone()), small);
    guest.write("/tmp/small", "fits");
    flush(&mut guest, "small").unwrap();
    guest.write("/tmp/big", &"x".repeat(3000));
    let (code, message) = flush(&mut guest, "big").unwrap_err();
    assert_eq!(code, "limit_exceeded");
    assert_eq!(message, "ENOSPC: persisted state bytes limit of 2000 reached, flush 'big'");
    assert_eq!(store.get("big", u64::MAX).unwrap(), None, "nothing was stored");
    // A state flushed by a VM with a larger bound does not load into the small one.
    let mut roomy = Guest::on(host_with(store.clone()), ALLOW_FS);
    roomy.write("/tmp/big", &"x".repeat(3000));
    flush(&mut roomy, "big").unwrap();
    let (code, message) = load(&mut guest, "big").unwrap_err();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("limit_exceeded", "ENOSPC: persisted state bytes limit of 2000 reached, load 'big'")
    );
    // The loading VM's filesystem limits apply too; a read-only root refuses the load.
    let tiny = r#"{"permissions":{"fs":"allow"},"limits":{"resources":{"maxFilesystemBytes":1000}}}"#;
    let mut tiny = Guest::on(host_with(store.clone()), tiny);
    let before = tiny.snapshot();
    assert_eq!(load(&mut tiny, "big").unwrap_err().0, "limit_exceeded");
    assert_eq!(tiny.snapshot(), before);
    let mut read_only =
        Guest::on(host_with(store), r#"{"permissions":{"fs":"allow"},"rootFilesystem":{"mode":"read-only"}}"#);
    let (code, message) = load(&mut read_only, "small").unwrap_err();
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("EROFS: "), "{message}");
}

/// A sidecar whose store effects the test completes by hand.
fn host_completing_by_hand() -> Harness {
    Harness::with_sidecar(Sidecar::new(Default::default()).with_store_effects())
}

fn flush_request(key: &str) -> RequestPayload {
    RequestPayload::PersistenceFlushRequest(PersistenceFlushRequest { key: key.into(), payload_size_bytes: 0 })
}

/// The store is reached through effects: a flush is answered only when its put completes, other
/// requests are answered meanwhile, and the answer carries what the completion said.
#[test]
fn a_flush_is_answered_when_its_store_effect_completes() {
    let mut guest = Guest::on(host_completing_by_hand(), ALLOW_FS);
    guest.write("/tmp/f", "content");
    let scope = guest.scope.clone();
    assert!(guest.host.request(scope.clone(), flush_request("k")).is_empty(), "no answer before the store's");
    let (id, effect) = guest.host.sidecar.poll_effect().unwrap();
    let Effect::StorePut { key, value } = effect else { panic!("{effect:?}") };
    assert_eq!(key, "k");
    assert!(guest.host.sidecar.poll_effect().is_none());
    // Another request is served while the flush waits.
    assert_eq!(guest.read("/tmp/f"), "content");
    let now = guest.host.now;
    guest.host.sidecar.handle_completion(id, Completion::StorePut(Ok(())), now);
    let frames = guest.host.drain();
    let ResponsePayload::PersistenceFlushedResponse(flushed) = response_payload(&frames[0]) else {
        panic!("{frames:?}")
    };
    assert_eq!(flushed.committed_bytes, value.len() as u64);
    assert_eq!(guest.host.sidecar.pending_effects(), 0);
    // A completion nobody waits for (repeated, or made up) changes nothing.
    guest.host.sidecar.handle_completion(id, Completion::StorePut(Ok(())), now);
    guest.host.sidecar.handle_completion(EffectId(999), Completion::StoreGet(Ok(None)), now);
    assert!(guest.host.drain().is_empty());
}

#[test]
fn a_load_completing_after_its_vm_was_disposed_is_refused_and_a_mismatched_completion_is_an_io_error() {
    let mut guest = Guest::on(host_completing_by_hand(), ALLOW_FS);
    let scope = guest.scope.clone();
    let load_request = RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: "k".into() });
    assert!(guest.host.request(scope.clone(), load_request.clone()).is_empty());
    let (id, effect) = guest.host.sidecar.poll_effect().unwrap();
    assert!(matches!(effect, Effect::StoreGet { ref key, .. } if key == "k"), "{effect:?}");
    guest.host.request(scope.clone(), testkit::requests::dispose());
    let now = guest.host.now;
    guest.host.sidecar.handle_completion(id, Completion::StoreGet(Ok(Some(vec![1, 2, 3]))), now);
    let (code, message) = rejection(&guest.host.drain()[0]);
    assert_eq!(code, "invalid_state");
    assert!(message.starts_with("unknown sidecar VM"), "{message}");

    let mut other = Guest::on(host_completing_by_hand(), ALLOW_FS);
    let scope = other.scope.clone();
    other.host.request(scope, load_request);
    let (id, _) = other.host.sidecar.poll_effect().unwrap();
    let now = other.host.now;
    other.host.sidecar.handle_completion(id, Completion::StorePut(Ok(())), now);
    let (code, message) = rejection(&other.host.drain()[0]);
    assert_eq!(code, "io_error");
    assert!(message.starts_with("EIO: the store answered"), "{message}");
}

/// Effects in flight are bounded: past the bound a request is refused at once, and once the
/// driver catches up requests are taken again.
#[test]
fn store_effects_in_flight_are_bounded() {
    let mut guest = Guest::on(host_completing_by_hand(), ALLOW_FS);
    let scope = guest.scope.clone();
    for _ in 0..MAX_EFFECTS_IN_FLIGHT {
        assert!(guest.host.request(scope.clone(), flush_request("k")).is_empty());
    }
    let frames = guest.host.request(scope.clone(), flush_request("k"));
    let (code, message) = rejection(&frames[0]);
    assert_eq!(code, "limit_exceeded");
    assert!(message.starts_with(&format!("EAGAIN: {MAX_EFFECTS_IN_FLIGHT} store operations")), "{message}");
    let now = guest.host.now;
    let mut completed = 0;
    while let Some((id, _)) = guest.host.sidecar.poll_effect() {
        guest.host.sidecar.handle_completion(id, Completion::StorePut(Ok(())), now);
        completed += 1;
    }
    assert_eq!(completed, MAX_EFFECTS_IN_FLIGHT);
    assert_eq!(guest.host.drain().len(), MAX_EFFECTS_IN_FLIGHT);
    assert!(guest.host.request(scope, flush_request("k")).is_empty(), "taken again");
}
