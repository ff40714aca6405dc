//! `host_dir` mounts through the real binary against guests that try to get out: links planted
//! to climb above the folder, a folder replaced by a link before the host mounts it, and two
//! sidecars hammering one folder at once. Afterwards the host looks at the folder itself: no
//! symlink in it may lead outside, and nothing outside may have changed.

use client::{Client, ClientError};
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALLOW_FS: &str = r#"{"permissions":{"fs":"allow"}}"#;

/// What the sibling folder's secret file holds: it must never appear in a response.
const SECRET: &str = "outside-secret-4b1d";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

/// `<tmp>/sidecar-it-hostdir-<name>-<pid>/outer/{root,sibling}`: the mounted folder, and next
/// to it a sibling holding the secret. Everything a link could reach by climbing two levels
/// above the root is inside the scratch base, so a snapshot of it sees any change.
struct Scratch {
    base: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let base = std::env::temp_dir().join(format!("sidecar-it-hostdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("outer/root")).unwrap();
        std::fs::create_dir_all(base.join("outer/sibling")).unwrap();
        std::fs::write(base.join("outer/sibling/secret"), SECRET).unwrap();
        std::fs::write(base.join("outer/root/inside.txt"), "inside").unwrap();
        Self { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("outer/root")
    }

    /// Every file and directory under the base except the mounted folder: path, kind, content,
    /// mode, modification time.
    fn outside(&self) -> Vec<(PathBuf, String, Vec<u8>, u32, i64)> {
        let root = self.root();
        let mut found = Vec::new();
        let mut pending = vec![self.base.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path == root {
                    continue;
                }
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let (kind, content) = if meta.is_dir() {
                    pending.push(path.clone());
                    ("dir", Vec::new())
                } else if meta.file_type().is_symlink() {
                    ("link", std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes())
                } else {
                    ("file", std::fs::read(&path).unwrap())
                };
                found.push((path, kind.to_owned(), content, meta.mode(), meta.mtime()));
            }
        }
        found.sort();
        found
    }

    /// Symlinks under the mounted folder that the host's OS resolves to somewhere outside it.
    fn escaping_links(&self) -> Vec<(PathBuf, PathBuf)> {
        let root = std::fs::canonicalize(self.root()).unwrap();
        let mut escaping = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
                if meta.file_type().is_symlink() {
                    if let Ok(real) = std::fs::canonicalize(&path) {
                        if !real.starts_with(&root) {
                            escaping.push((path, real));
                        }
                    }
                } else if meta.is_dir() {
                    pending.push(path);
                }
            }
        }
        escaping
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn configure(mounts: Vec<(&str, &Path)>) -> RequestPayload {
    RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(
        mounts
            .into_iter()
            .map(|(guest_path, host_path)| MountDescriptor {
                guest_path: guest_path.into(),
                read_only: false,
                plugin: MountPluginDescriptor {
                    id: "host_dir".into(),
                    config: serde_json::json!({ "hostPath": host_path }).to_string(),
                },
            })
            .collect(),
    ))
}

/// One sidecar process with one VM that mounts `root` at `/host`.
struct Guest {
    sidecar: Client,
    scope: OwnershipScope,
}

impl Guest {
    fn start(root: &Path) -> Self {
        let mut sidecar = Client::spawn(binary(), &[]).unwrap();
        let auth = sidecar.authenticate("it", "token").unwrap();
        let session = sidecar.open_session(&auth.connection_id).unwrap();
        let vm = sidecar.create_vm(&auth.connection_id, &session, ALLOW_FS).unwrap();
        let mut guest = Self { sidecar, scope: OwnershipScope::vm(auth.connection_id, session, vm) };
        guest.mount(vec![("/host", root)]).unwrap();
        guest
    }

    fn mount(&mut self, mounts: Vec<(&str, &Path)>) -> Result<u32, ClientError> {
        match self.sidecar.request(self.scope.clone(), configure(mounts))? {
            ResponsePayload::VmConfiguredResponse(configured) => Ok(configured.applied_mounts),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn call(&mut self, request: GuestFilesystemCallRequest) -> Result<GuestFilesystemResultResponse, ClientError> {
        match self.sidecar.request(self.scope.clone(), RequestPayload::GuestFilesystemCallRequest(request))? {
            ResponsePayload::GuestFilesystemResultResponse(result) => Ok(result),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn ok(&mut self, request: GuestFilesystemCallRequest) -> GuestFilesystemResultResponse {
        let described = format!("{:?} {} {:?}", request.operation, request.path, request.target);
        self.call(request).unwrap_or_else(|error| panic!("{described}: {error}"))
    }

    /// The errno a refused call names (`EACCES`, `EXDEV`...).
    fn errno(&mut self, request: GuestFilesystemCallRequest) -> String {
        let described = format!("{:?} {} {:?}", request.operation, request.path, request.target);
        match self.call(request) {
            Err(ClientError::Rejected { message, .. }) => message.split(':').next().unwrap_or_default().to_owned(),
            other => panic!("{described} must be refused, got {other:?}"),
        }
    }

    fn close(self) {
        assert!(self.sidecar.close().unwrap().success());
    }
}

fn call(operation: Op, path: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest::new(operation, path)
}

fn symlink(path: &str, target: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest { target: Some(target.into()), ..call(Op::Symlink, path) }
}

fn to(operation: Op, path: &str, destination: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest { destination_path: Some(destination.into()), ..call(operation, path) }
}

fn mkdir_p(path: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest { recursive: true, ..call(Op::Mkdir, path) }
}

fn write(path: &str, content: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest { content: Some(content.into()), ..call(Op::WriteFile, path) }
}

/// Whether a response carries anything from outside the folder.
fn leaks(result: &GuestFilesystemResultResponse) -> bool {
    result.content.as_deref().is_some_and(|c| c.contains(SECRET))
        || result.target.as_deref().is_some_and(|t| t.contains("sibling"))
        || result.entries.as_ref().is_some_and(|names| names.iter().any(|n| n == "secret" || n == "sibling"))
}

#[test]
fn a_guest_cannot_plant_a_link_that_leaves_the_folder() {
    let scratch = Scratch::new("plant");
    let outside = scratch.outside();
    let mut guest = Guest::start(&scratch.root());

    // `dot -> .` is harmless; a `..` after it is not, nor a link made through it.
    guest.ok(symlink("/host/dot", "."));
    guest.ok(mkdir_p("/host/sub"));
    guest.ok(symlink("/host/sub/dot", "."));
    assert_eq!(guest.errno(symlink("/host/sub/up", "dot/../..")), "EACCES");
    assert_eq!(guest.errno(symlink("/host/sub/dot/dot/up", "../..")), "EACCES");
    assert_eq!(guest.errno(symlink("/host/dot/dot/up", "..")), "EACCES");
    // Absolute targets name the host's root; `..` beyond the folder climbs out of it.
    for (path, target) in [
        ("/host/etc", "/etc"),
        ("/host/abs", scratch.base.join("outer/sibling").to_str().unwrap()),
        ("/host/up", ".."),
        ("/host/sib", "../sibling"),
        ("/host/sub/sib", "../../sibling/secret"),
    ] {
        assert_eq!(guest.errno(symlink(path, target)), "EACCES", "{path} -> {target}");
    }
    // A link that is fine where it is, moved (or hard-linked) to where it would climb out.
    guest.ok(mkdir_p("/host/a/b"));
    guest.ok(symlink("/host/a/b/top", "../.."));
    assert_eq!(guest.errno(to(Op::Rename, "/host/a/b/top", "/host/top")), "EXDEV");
    assert_eq!(guest.errno(to(Op::Rename, "/host/a/b/top", "/host/dot/sub/top")), "EXDEV");
    assert_eq!(guest.errno(to(Op::Link, "/host/a/b/top", "/host/top")), "EXDEV");
    assert_eq!(guest.errno(to(Op::Rename, "/host/a/b", "/host/b")), "EXDEV");
    // Deeper is fine.
    guest.ok(mkdir_p("/host/x/y"));
    guest.ok(to(Op::Rename, "/host/a/b", "/host/x/y/b"));
    // Nothing reads the secret, whatever path is tried.
    for path in ["/host/sub/up/sibling/secret", "/host/x/y/b/top/../sibling/secret", "/host/etc/passwd"] {
        if let Ok(result) = guest.call(call(Op::ReadFile, path)) {
            assert!(!leaks(&result), "{path}: {result:?}");
        }
    }
    guest.close();
    assert!(scratch.escaping_links().is_empty(), "{:?}", scratch.escaping_links());
    assert_eq!(scratch.outside(), outside);
}

#[test]
fn a_folder_replaced_by_a_guest_still_mounts_inside() {
    let scratch = Scratch::new("replace");
    let root = scratch.root();
    std::fs::create_dir_all(root.join("proj")).unwrap();
    std::fs::write(root.join("proj/readme"), "project").unwrap();
    let outside = scratch.outside();
    let mut guest = Guest::start(&root);

    // The guest removes the folder and tries to leave an escaping link in its place.
    guest.ok(GuestFilesystemCallRequest { recursive: true, ..call(Op::RemoveDir, "/host/proj") });
    for target in ["..", "../sibling", "../..", "/", "/etc", "./../sibling"] {
        assert_eq!(guest.errno(symlink("/host/proj", target)), "EACCES", "proj -> {target}");
    }
    // Made elsewhere, where the link stays inside, then moved into place.
    guest.ok(mkdir_p("/host/deep/er"));
    guest.ok(symlink("/host/deep/er/proj", "../.."));
    guest.ok(symlink("/host/deep/er/sib", "../../sibling"));
    assert_eq!(guest.errno(to(Op::Rename, "/host/deep/er/proj", "/host/proj")), "EXDEV");
    assert_eq!(guest.errno(to(Op::Rename, "/host/deep/er", "/host/proj")), "EXDEV");
    assert_eq!(guest.errno(to(Op::Link, "/host/deep/er/proj", "/host/proj")), "EXDEV");
    // What the guest may do: a link to somewhere inside.
    guest.ok(symlink("/host/proj", "deep"));
    assert!(scratch.escaping_links().is_empty(), "{:?}", scratch.escaping_links());

    // The host now mounts the folder by its path: it opens inside the first folder.
    assert_eq!(guest.mount(vec![("/host", &root), ("/proj", &root.join("proj"))]).unwrap(), 2);
    let listed = guest.ok(call(Op::ReadDir, "/proj"));
    assert_eq!(listed.entries.as_deref(), Some(&["er".to_owned()][..]));
    for path in ["/proj/er/sib/secret", "/proj/er/proj/sibling/secret", "/proj/../sibling/secret"] {
        if let Ok(result) = guest.call(call(Op::ReadFile, path)) {
            assert!(!leaks(&result), "{path}: {result:?}");
        }
    }
    guest.close();
    assert!(std::fs::canonicalize(root.join("proj")).unwrap().starts_with(std::fs::canonicalize(&root).unwrap()));
    assert_eq!(scratch.outside(), outside);
}

/// The guest operations one hammering sidecar cycles through: link planting, moves that would
/// carry links shallower, directories appearing and disappearing under the other sidecar, and
/// reads through every name.
fn hammer_round(guest: &mut Guest, who: &str, round: u32) -> Vec<GuestFilesystemResultResponse> {
    let other = if who == "a" { "b" } else { "a" };
    let mut requests = vec![
        mkdir_p(&format!("/host/{who}/p/q/r")),
        symlink(&format!("/host/{who}/p/q/r/up3"), "../../.."),
        symlink(&format!("/host/{who}/p/q/up2"), "../.."),
        symlink(&format!("/host/{who}/dot"), "."),
        symlink(&format!("/host/{who}/p/q/r/trick"), "dot/../../../.."),
        write(&format!("/host/{who}/p/q/r/file"), "hammered"),
        // Moves towards the root: every one of them carries a link that would climb out.
        to(Op::Rename, &format!("/host/{who}/p/q/r"), &format!("/host/{who}/r")),
        to(Op::Rename, &format!("/host/{who}/p/q"), "/host/q"),
        to(Op::Rename, &format!("/host/{who}/p/q/r/up3"), &format!("/host/{who}/up3")),
        to(Op::Link, &format!("/host/{who}/p/q/up2"), "/host/up2"),
        // The other sidecar's tree, moved about while it plants links in it.
        to(Op::Rename, &format!("/host/{other}/p/q"), &format!("/host/{who}/stolen")),
        to(Op::Rename, &format!("/host/{who}/stolen"), &format!("/host/{other}/p/q")),
        to(Op::Rename, &format!("/host/{other}/p"), &format!("/host/{who}/p2")),
        to(Op::Rename, &format!("/host/{who}/p2"), "/host/p2"),
        symlink("/host/p2/q/r/late", "../../.."),
        symlink(&format!("/host/{who}/dot/dot/late"), ".."),
        // Reads and writes through every link, planted or not.
        call(Op::ReadFile, &format!("/host/{who}/p/q/r/up3/sibling/secret")),
        call(Op::ReadFile, "/host/p2/q/r/late/../sibling/secret"),
        call(Op::ReadDir, &format!("/host/{who}/p/q/up2/..")),
        call(Op::Realpath, &format!("/host/{who}/p/q/r/trick")),
        call(Op::ReadLink, &format!("/host/{who}/p/q/r/trick")),
        write(&format!("/host/{who}/p/q/r/up3/../hammer-{who}-{round}"), "escaped?"),
        write("/host/p2/q/r/late/hammer-late", "escaped?"),
        // Directories disappearing under the other sidecar's feet.
        GuestFilesystemCallRequest { recursive: true, ..call(Op::RemoveDir, &format!("/host/{other}/p")) },
        GuestFilesystemCallRequest { recursive: true, ..call(Op::RemoveDir, "/host/p2") },
        GuestFilesystemCallRequest { recursive: true, ..call(Op::RemoveDir, "/host/q") },
        call(Op::RemoveDir, &format!("/host/{who}/p/q/r")),
    ];
    if round.is_multiple_of(3) {
        requests.push(GuestFilesystemCallRequest { recursive: true, ..call(Op::RemoveDir, &format!("/host/{who}")) });
    }
    let mut answered = Vec::new();
    for request in requests {
        match guest.call(request) {
            Ok(result) => answered.push(result),
            Err(ClientError::Rejected { message, .. }) => {
                assert!(!message.contains(SECRET), "{message}");
            }
            Err(error) => panic!("{error}"),
        }
    }
    answered
}

#[test]
fn two_sidecars_hammering_one_folder_never_reach_outside() {
    let scratch = Scratch::new("hammer");
    let outside = scratch.outside();
    let temp_before: Vec<_> = temp_names_like("hammer-");
    let hammers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let root = scratch.root();
            std::thread::spawn(move || {
                let mut guest = Guest::start(&root);
                let deadline = Instant::now() + Duration::from_secs(3);
                // Bounded by time and by count, whichever comes first.
                let mut rounds = 0u32;
                while Instant::now() < deadline && rounds < 2_000 {
                    for result in hammer_round(&mut guest, who, rounds) {
                        assert!(!leaks(&result), "{who}: {result:?}");
                    }
                    rounds += 1;
                }
                guest.close();
                rounds
            })
        })
        .collect();
    for hammer in hammers {
        assert!(hammer.join().unwrap() > 0);
    }
    assert!(scratch.escaping_links().is_empty(), "{:?}", scratch.escaping_links());
    assert_eq!(scratch.outside(), outside, "something outside the folder changed");
    assert_eq!(temp_names_like("hammer-"), temp_before);
}

/// Names in the OS temp dir starting with `prefix` (where a link climbing further up would
/// have written).
fn temp_names_like(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}
