//! The VM layer store over the protocol: CreateLayer, SealLayer, ImportSnapshot,
//! ExportSnapshot, CreateOverlay, and the per-VM layer bound.

use crate::filesystem::{entry, Guest, ALLOW_FS};
use crate::harness::*;
use kernel::dispatch::MAX_LAYERS_PER_VM;
use schema::wire::*;
use testkit::requests::create_vm_for;

fn import(guest: &mut Guest, entries: Vec<RootFilesystemEntry>) -> Result<String, (String, String)> {
    match guest.send(RequestPayload::ImportSnapshotRequest(ImportSnapshotRequest { entries })) {
        ResponsePayload::SnapshotImportedResponse(response) => Ok(response.layer_id),
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

fn export(guest: &mut Guest, layer_id: &str) -> Result<Vec<RootFilesystemEntry>, (String, String)> {
    match guest.send(RequestPayload::ExportSnapshotRequest(ExportSnapshotRequest { layer_id: layer_id.into() })) {
        ResponsePayload::SnapshotExportedResponse(response) => {
            assert_eq!(response.layer_id, layer_id);
            Ok(response.entries)
        }
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

fn create(guest: &mut Guest) -> Result<String, (String, String)> {
    match guest.send(RequestPayload::CreateLayerRequest) {
        ResponsePayload::LayerCreatedResponse(response) => Ok(response.layer_id),
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

fn seal(guest: &mut Guest, layer_id: &str) -> Result<String, (String, String)> {
    match guest.send(RequestPayload::SealLayerRequest(SealLayerRequest { layer_id: layer_id.into() })) {
        ResponsePayload::LayerSealedResponse(response) => Ok(response.layer_id),
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

fn overlay(
    guest: &mut Guest,
    mode: RootFilesystemMode,
    upper: Option<&str>,
    lowers: &[&str],
) -> Result<String, (String, String)> {
    let request = CreateOverlayRequest {
        mode,
        upper_layer_id: upper.map(Into::into),
        lower_layer_ids: lowers.iter().map(|s| s.to_string()).collect(),
    };
    match guest.send(RequestPayload::CreateOverlayRequest(request)) {
        ResponsePayload::OverlayCreatedResponse(response) => Ok(response.layer_id),
        ResponsePayload::RejectedResponse(r) => Err((r.code, r.message)),
        other => panic!("unexpected {other:?}"),
    }
}

fn file(path: &str, content: &str) -> RootFilesystemEntry {
    entry(path, RootFilesystemEntryKind::File, Some(content))
}

fn dir(path: &str) -> RootFilesystemEntry {
    entry(path, RootFilesystemEntryKind::Directory, None)
}

fn content_of(entries: &[RootFilesystemEntry], path: &str) -> Option<String> {
    entries.iter().find(|e| e.path == path).and_then(|e| e.content.clone())
}

fn unknown_layer(result: Result<impl std::fmt::Debug, (String, String)>, id: &str) {
    let (code, message) = result.expect_err("should be refused");
    assert_eq!(code, "invalid_state");
    assert_eq!(message, format!("unknown layer: {id}"));
}

#[test]
fn imported_snapshots_export_exactly() {
    let mut guest = Guest::new(ALLOW_FS);
    let entries = vec![
        dir("/workspace"),
        RootFilesystemEntry { mode: Some(0o750), uid: Some(1000), gid: Some(1000), ..dir("/workspace/private") },
        file("/workspace/note.txt", "imported"),
        RootFilesystemEntry {
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            executable: true,
            ..file("/workspace/bin", "/wABAg==")
        },
        RootFilesystemEntry {
            target: Some("note.txt".into()),
            ..entry("/workspace/link", RootFilesystemEntryKind::Symlink, None)
        },
    ];
    let id = import(&mut guest, entries).unwrap();
    assert_eq!(id, "layer-1");
    let exported = export(&mut guest, &id).unwrap();
    let paths: Vec<&str> = exported.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/", "/workspace", "/workspace/bin", "/workspace/link", "/workspace/note.txt", "/workspace/private"]
    );
    let find = |path: &str| exported.iter().find(|e| e.path == path).unwrap().clone();
    assert_eq!(
        find("/workspace/note.txt"),
        RootFilesystemEntry {
            mode: Some(0o644),
            uid: Some(0),
            gid: Some(0),
            encoding: Some(RootFilesystemEntryEncoding::Utf8),
            ..file("/workspace/note.txt", "imported")
        }
    );
    let bin = find("/workspace/bin");
    assert_eq!((bin.content.as_deref(), bin.encoding), (Some("/wABAg=="), Some(RootFilesystemEntryEncoding::Base64)));
    assert_eq!((bin.mode, bin.executable), (Some(0o755), true));
    let private = find("/workspace/private");
    assert_eq!((private.mode, private.uid, private.gid), (Some(0o750), Some(1000), Some(1000)));
    let link = find("/workspace/link");
    assert_eq!(
        (link.kind, link.target.as_deref(), link.mode),
        (RootFilesystemEntryKind::Symlink, Some("note.txt"), Some(0o777))
    );

    // Exporting the export and importing it again gives the same entries.
    let again = import(&mut guest, exported.clone()).unwrap();
    assert_eq!(again, "layer-2");
    assert_eq!(export(&mut guest, &again).unwrap(), exported);

    // Layers are host data: the VM's root does not see them.
    assert!(!guest.exists("/workspace"));
}

#[test]
fn sealing_moves_a_writable_layer_to_a_new_id() {
    // The original's `vm_layer_lifecycle_round_trips_snapshots_and_invalidates_sealed_ids`.
    let mut guest = Guest::new(ALLOW_FS);
    let writable = create(&mut guest).unwrap();
    assert_eq!(writable, "layer-1");
    let unsealed = export(&mut guest, &writable).unwrap();
    assert_eq!(unsealed.len(), 1);
    assert_eq!((unsealed[0].path.as_str(), unsealed[0].kind), ("/", RootFilesystemEntryKind::Directory));

    let sealed = seal(&mut guest, &writable).unwrap();
    assert_eq!(sealed, "layer-2");
    assert_eq!(export(&mut guest, &sealed).unwrap(), unsealed);
    unknown_layer(export(&mut guest, &writable), &writable);
    unknown_layer(seal(&mut guest, &writable), &writable);
    let (code, message) = seal(&mut guest, &sealed).unwrap_err();
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "layer layer-2 is not writable"));
    let imported = import(&mut guest, vec![file("/a", "a")]).unwrap();
    assert!(seal(&mut guest, &imported).unwrap_err().1.ends_with("is not writable"));
    let merged = overlay(&mut guest, RootFilesystemMode::Ephemeral, None, &[&imported]).unwrap();
    assert!(seal(&mut guest, &merged).unwrap_err().1.ends_with("is not writable"));
    unknown_layer(export(&mut guest, "layer-99"), "layer-99");
    assert_eq!(guest.host.sidecar.vm_layer_ids(&guest.vm_id).unwrap(), ["layer-2", "layer-3", "layer-4"]);
}

#[test]
fn an_overlay_merges_its_layers_and_never_changes_them() {
    let mut guest = Guest::new(ALLOW_FS);
    let lower = import(
        &mut guest,
        vec![
            dir("/workspace"),
            file("/workspace/lower.txt", "lower"),
            file("/workspace/shared.txt", "from lower"),
            RootFilesystemEntry { mode: Some(0o700), ..dir("/workspace/sub") },
        ],
    )
    .unwrap();
    let upper = import(
        &mut guest,
        vec![
            dir("/workspace"),
            file("/workspace/upper.txt", "upper"),
            file("/workspace/shared.txt", "from upper"),
            RootFilesystemEntry { mode: Some(0o755), ..dir("/workspace/sub") },
            file("/workspace/sub/new.txt", "new"),
        ],
    )
    .unwrap();
    let lower_before = export(&mut guest, &lower).unwrap();
    let upper_before = export(&mut guest, &upper).unwrap();

    let merged = overlay(&mut guest, RootFilesystemMode::Ephemeral, Some(&upper), &[&lower]).unwrap();
    assert_eq!(merged, "layer-3");
    let entries = export(&mut guest, &merged).unwrap();
    assert_eq!(content_of(&entries, "/workspace/lower.txt").as_deref(), Some("lower"));
    assert_eq!(content_of(&entries, "/workspace/upper.txt").as_deref(), Some("upper"));
    assert_eq!(content_of(&entries, "/workspace/shared.txt").as_deref(), Some("from upper"), "the upper wins");
    assert_eq!(content_of(&entries, "/workspace/sub/new.txt").as_deref(), Some("new"));
    let sub = entries.iter().find(|e| e.path == "/workspace/sub").unwrap();
    assert_eq!(sub.mode, Some(0o700), "a directory the lowers have keeps the lower's metadata (like the original)");

    // The layers it was made of are untouched.
    assert_eq!(export(&mut guest, &lower).unwrap(), lower_before);
    assert_eq!(export(&mut guest, &upper).unwrap(), upper_before);

    // Lowers in precedence order, read-only mode, overlays of overlays, writable lowers.
    let second = import(&mut guest, vec![file("/workspace/shared.txt", "second"), file("/only-second", "2")]).unwrap();
    let stacked = overlay(&mut guest, RootFilesystemMode::ReadOnly, None, &[&second, &merged]).unwrap();
    let entries = export(&mut guest, &stacked).unwrap();
    assert_eq!(content_of(&entries, "/workspace/shared.txt").as_deref(), Some("second"));
    assert_eq!(content_of(&entries, "/workspace/lower.txt").as_deref(), Some("lower"));
    assert_eq!(content_of(&entries, "/only-second").as_deref(), Some("2"));
    let empty = create(&mut guest).unwrap();
    let with_writable = overlay(&mut guest, RootFilesystemMode::Ephemeral, Some(&empty), &[&second]).unwrap();
    assert_eq!(content_of(&export(&mut guest, &with_writable).unwrap(), "/only-second").as_deref(), Some("2"));

    // Unknown ids.
    let (code, message) = overlay(&mut guest, RootFilesystemMode::Ephemeral, None, &[&lower, "layer-77"]).unwrap_err();
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "unknown lower layer: layer-77"));
    let (code, message) = overlay(&mut guest, RootFilesystemMode::Ephemeral, Some("nope"), &[&lower]).unwrap_err();
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "unknown upper layer: nope"));
}

#[test]
fn layer_ids_are_per_vm() {
    // The original's `vm_layer_ids_are_reused_per_vm_without_cross_vm_leakage`.
    let mut guest = Guest::new(ALLOW_FS);
    let (_, other_scope) = guest.sibling(ALLOW_FS);
    let first = import(&mut guest, vec![file("/first.txt", "first")]).unwrap();
    let payload =
        RequestPayload::ImportSnapshotRequest(ImportSnapshotRequest { entries: vec![file("/second.txt", "second")] });
    let second = match crate::filesystem::send_to(&mut guest.host, other_scope.clone(), payload) {
        ResponsePayload::SnapshotImportedResponse(response) => response.layer_id,
        other => panic!("{other:?}"),
    };
    assert_eq!((first.as_str(), second.as_str()), ("layer-1", "layer-1"));
    let entries = export(&mut guest, &first).unwrap();
    assert!(entries.iter().any(|e| e.path == "/first.txt") && !entries.iter().any(|e| e.path == "/second.txt"));
    let payload = RequestPayload::ExportSnapshotRequest(ExportSnapshotRequest { layer_id: "layer-1".into() });
    match crate::filesystem::send_to(&mut guest.host, other_scope, payload) {
        ResponsePayload::SnapshotExportedResponse(response) => {
            assert!(response.entries.iter().any(|e| e.path == "/second.txt"));
            assert!(!response.entries.iter().any(|e| e.path == "/first.txt"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_vm_holds_at_most_256_layers() {
    assert_eq!(MAX_LAYERS_PER_VM, 256);
    let mut guest = Guest::new(ALLOW_FS);
    for index in 0..MAX_LAYERS_PER_VM {
        let id = import(&mut guest, vec![file(&format!("/layer-{index}.txt"), "x")]).unwrap();
        assert_eq!(id, format!("layer-{}", index + 1));
    }
    let limit = "VM layer limit exceeded: limit is 256";
    let refusals = [
        import(&mut guest, vec![file("/overflow", "x")]),
        create(&mut guest),
        overlay(&mut guest, RootFilesystemMode::Ephemeral, None, &["layer-1"]),
        overlay(&mut guest, RootFilesystemMode::Ephemeral, None, &["missing-layer"]),
    ];
    for refused in refusals {
        assert_eq!(refused.unwrap_err(), ("invalid_state".to_owned(), limit.to_owned()));
    }
    unknown_layer(export(&mut guest, "layer-257"), "layer-257");
    assert_eq!(guest.host.sidecar.vm_layer_ids(&guest.vm_id).unwrap().len(), MAX_LAYERS_PER_VM);
    // Sealing does not add a layer, so it still works at the bound.
    // (All 256 are sealed imports here; sealing one is refused as not writable, not by the bound.)
    assert!(seal(&mut guest, "layer-1").unwrap_err().1.ends_with("is not writable"));

    // The root's lowers are bounded the same way.
    let lowers = vec![r#"{"kind":"snapshot","entries":[]}"#; MAX_LAYERS_PER_VM].join(",");
    let config = format!(r#"{{"rootFilesystem":{{"lowers":[{lowers}]}}}}"#);
    let (conn, session) = match &guest.scope {
        OwnershipScope::VmOwnership(scope) => (scope.connection_id.clone(), scope.session_id.clone()),
        other => panic!("{other:?}"),
    };
    let frames = guest
        .host
        .request(OwnershipScope::session(&conn, &session), create_vm_for(GuestRuntimeKind::JavaScript, config));
    assert_eq!(rejection(&frames[0]), ("invalid_state".to_owned(), limit.to_owned()), "256 lowers plus the base layer");
    let lowers = vec![r#"{"kind":"snapshot","entries":[]}"#; MAX_LAYERS_PER_VM].join(",");
    let config = format!(r#"{{"rootFilesystem":{{"disableDefaultBaseLayer":true,"lowers":[{lowers}]}}}}"#);
    let frames = guest
        .host
        .request(OwnershipScope::session(&conn, &session), create_vm_for(GuestRuntimeKind::JavaScript, config));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmCreatedResponse(_)), "{frames:?}");
}

#[test]
fn bad_snapshots_are_refused_and_limits_apply_to_layers() {
    let mut guest = Guest::new(ALLOW_FS);
    let bad_base64 = RootFilesystemEntry { encoding: Some(RootFilesystemEntryEncoding::Base64), ..file("/x", "***") };
    let (code, message) = import(&mut guest, vec![bad_base64]).unwrap_err();
    assert_eq!(code, "invalid_state");
    assert!(message.starts_with("invalid base64 root filesystem content for /x"), "{message}");
    let (code, message) = import(&mut guest, vec![entry("/l", RootFilesystemEntryKind::Symlink, None)]).unwrap_err();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("invalid_state", "root filesystem bootstrap for symlink /l requires a target")
    );
    assert!(guest.host.sidecar.vm_layer_ids(&guest.vm_id).unwrap().is_empty(), "nothing was stored");

    let mut guest = Guest::new(r#"{"limits":{"resources":{"maxFilesystemBytes":4}}}"#);
    let (code, message) = import(&mut guest, vec![file("/big", "12345")]).unwrap_err();
    assert_eq!(code, "limit_exceeded");
    assert_eq!(message, "ENOSPC: filesystem bytes limit of 4 reached, import '/big'");
    assert_eq!(import(&mut guest, vec![file("/small", "1234")]).unwrap(), "layer-1");
}
