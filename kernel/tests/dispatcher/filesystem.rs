//! The VM filesystem over the protocol: `GuestFilesystemCallRequest` (all 20 operations), the
//! fs permission policy, limits, the root filesystem config, bootstrap and snapshots.

use crate::harness::*;
use kernel::vfs::Layer;
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use std::collections::BTreeSet;
use testkit::requests::{create_vm, create_vm_for, dispose, fs_policy, fs_rule};
// The other modules take their guest filesystem calls from here (`crate::filesystem::*`).
pub use testkit::requests::fs::{chmod, chown, mkdir_p, pread, rm_r, symlink, to, truncate, utimes, write};

pub const ALLOW_FS: &str = r#"{"permissions":{"fs":"allow"}}"#;

/// A host with one VM.
pub struct Guest {
    pub host: Harness,
    pub vm_id: String,
    pub scope: OwnershipScope,
}

impl Guest {
    pub fn new(config: &str) -> Self {
        Self::on(Harness::new(), config)
    }

    /// A VM on the given host (e.g. one whose sidecar has a host filesystem or a store).
    pub fn on(mut host: Harness, config: &str) -> Self {
        let (conn, session, vm_id) = host.vm(config);
        let scope = OwnershipScope::vm(conn, session, &vm_id);
        Self { host, vm_id, scope }
    }

    /// Another VM of the same host (own connection and session).
    pub fn sibling(&mut self, config: &str) -> (String, OwnershipScope) {
        let (conn, session, vm_id) = self.host.vm(config);
        let scope = OwnershipScope::vm(conn, session, &vm_id);
        (vm_id, scope)
    }

    /// Sends a request to this VM; the single response's payload.
    pub fn send(&mut self, payload: RequestPayload) -> ResponsePayload {
        let scope = self.scope.clone();
        send_to(&mut self.host, scope, payload)
    }

    pub fn call(
        &mut self,
        request: GuestFilesystemCallRequest,
    ) -> Result<GuestFilesystemResultResponse, (String, String)> {
        let scope = self.scope.clone();
        call_in(&mut self.host, scope, request)
    }

    /// A call that must succeed.
    pub fn ok(&mut self, request: GuestFilesystemCallRequest) -> GuestFilesystemResultResponse {
        let described = format!("{:?} {}", request.operation, request.path);
        self.call(request).unwrap_or_else(|e| panic!("{described}: {e:?}"))
    }

    /// A call that must fail: (code, message).
    pub fn err(&mut self, request: GuestFilesystemCallRequest) -> (String, String) {
        let described = format!("{:?} {}", request.operation, request.path);
        match self.call(request) {
            Ok(result) => panic!("{described} should fail, got {result:?}"),
            Err(rejection) => rejection,
        }
    }

    pub fn read(&mut self, path: &str) -> String {
        self.ok(req(Op::ReadFile, path)).content.unwrap()
    }

    pub fn exists(&mut self, path: &str) -> bool {
        self.ok(req(Op::Exists, path)).exists.unwrap()
    }

    pub fn stat(&mut self, path: &str) -> GuestFilesystemStat {
        self.ok(req(Op::Stat, path)).stat.unwrap()
    }

    pub fn write(&mut self, path: &str, content: &str) {
        self.ok(write(path, content));
    }

    pub fn snapshot(&mut self) -> Vec<RootFilesystemEntry> {
        match self.send(RequestPayload::SnapshotRootFilesystemRequest) {
            ResponsePayload::RootFilesystemSnapshotResponse(snapshot) => snapshot.entries,
            other => panic!("snapshot failed: {other:?}"),
        }
    }
}

pub fn send_to(host: &mut Harness, scope: OwnershipScope, payload: RequestPayload) -> ResponsePayload {
    let frames = host.request(scope, payload);
    assert_eq!(frames.len(), 1, "{frames:?}");
    response_payload(&frames[0]).clone()
}

pub fn call_in(
    host: &mut Harness,
    scope: OwnershipScope,
    request: GuestFilesystemCallRequest,
) -> Result<GuestFilesystemResultResponse, (String, String)> {
    let operation = request.operation;
    let path = request.path.clone();
    match send_to(host, scope, RequestPayload::GuestFilesystemCallRequest(request)) {
        ResponsePayload::GuestFilesystemResultResponse(result) => {
            assert_eq!((result.operation, result.path.as_str()), (operation, path.as_str()));
            Ok(result)
        }
        ResponsePayload::RejectedResponse(rejected) => Err((rejected.code, rejected.message)),
        other => panic!("unexpected response {other:?}"),
    }
}

pub fn req(operation: GuestFilesystemOperation, path: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest::new(operation, path)
}

fn names(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|s| s.to_string()).collect()
}

/// A config with `fs: allow` and the given `rootFilesystem`.
fn with_root(root: &str) -> String {
    format!(r#"{{"permissions":{{"fs":"allow"}},"rootFilesystem":{root}}}"#)
}

// ---------------------------------------------------------------------------------------------
// The 20 operations
// ---------------------------------------------------------------------------------------------

#[test]
fn every_operation_round_trips() {
    let mut guest = Guest::new(ALLOW_FS);
    let wall = guest.host.now.wall_ms;
    let mut used = BTreeSet::new();
    let mut ok = |guest: &mut Guest, request: GuestFilesystemCallRequest| {
        used.insert(request.operation);
        guest.ok(request)
    };

    // WRITE_FILE (UTF-8 and base64) and READ_FILE.
    let written = ok(&mut guest, write("/tmp/a.txt", "hello"));
    assert_eq!((written.content, written.encoding, written.target), (None, None, None));
    let read = ok(&mut guest, req(Op::ReadFile, "/tmp/a.txt"));
    assert_eq!(read.content.as_deref(), Some("hello"));
    assert_eq!(read.encoding, Some(RootFilesystemEntryEncoding::Utf8));
    ok(
        &mut guest,
        GuestFilesystemCallRequest { encoding: Some(RootFilesystemEntryEncoding::Base64), ..write("/tmp/bin", "/wAB") },
    );
    let binary = ok(&mut guest, req(Op::ReadFile, "/tmp/bin"));
    assert_eq!(binary.content.as_deref(), Some("/wAB"));
    assert_eq!(binary.encoding, Some(RootFilesystemEntryEncoding::Base64));
    let forced = ok(
        &mut guest,
        GuestFilesystemCallRequest {
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..req(Op::ReadFile, "/tmp/a.txt")
        },
    );
    assert_eq!(
        (forced.content.as_deref(), forced.encoding),
        (Some("aGVsbG8="), Some(RootFilesystemEntryEncoding::Base64))
    );

    // PREAD: a window of the file; past the end is empty.
    let window = ok(&mut guest, pread("/tmp/a.txt", 1, 3));
    assert_eq!((window.content.as_deref(), window.encoding), (Some("ell"), Some(RootFilesystemEntryEncoding::Utf8)));
    let past = ok(&mut guest, pread("/tmp/a.txt", 99, 3));
    assert_eq!(past.content.as_deref(), Some(""));

    // STAT of a new file.
    let stat = ok(&mut guest, req(Op::Stat, "/tmp/a.txt")).stat.unwrap();
    assert_eq!(stat.mode, 0o100_644);
    assert_eq!((stat.size, stat.blocks, stat.nlink, stat.uid, stat.gid), (5, 1, 1, 0, 0));
    assert!(!stat.is_directory && !stat.is_symbolic_link);
    assert_eq!((stat.mtime_ms, stat.ctime_ms, stat.birthtime_ms), (wall, wall, wall));

    // CREATE_DIR and MKDIR (plain, recursive, with a mode).
    ok(&mut guest, req(Op::CreateDir, "/tmp/d"));
    assert!(guest.stat("/tmp/d").is_directory);
    let (code, message) = guest.err(req(Op::CreateDir, "/tmp/d"));
    assert_eq!((code.as_str(), message.as_str()), ("kernel_error", "EEXIST: file already exists, mkdir '/tmp/d'"));
    let (_, message) = guest.err(req(Op::Mkdir, "/tmp/p/q"));
    assert!(message.starts_with("ENOENT: no such file or directory, mkdir '/tmp/p/q'"), "{message}");
    ok(&mut guest, GuestFilesystemCallRequest { mode: Some(0o700), ..mkdir_p("/tmp/p/q/r") });
    assert_eq!(guest.stat("/tmp/p/q/r").mode, 0o040_700);

    // EXISTS.
    assert_eq!(ok(&mut guest, req(Op::Exists, "/tmp/p/q/r")).exists, Some(true));
    assert_eq!(ok(&mut guest, req(Op::Exists, "/tmp/nope")).exists, Some(false));

    // SYMLINK, LSTAT, READ_LINK, REALPATH.
    let linked = ok(&mut guest, symlink("/tmp/link", "a.txt"));
    assert_eq!(linked.target.as_deref(), Some("a.txt"));
    let lstat = ok(&mut guest, req(Op::Lstat, "/tmp/link")).stat.unwrap();
    assert!(lstat.is_symbolic_link);
    assert_eq!((lstat.mode, lstat.size), (0o120_777, 5));
    assert_eq!(guest.stat("/tmp/link").ino, stat.ino);
    assert_eq!(ok(&mut guest, req(Op::ReadLink, "/tmp/link")).target.as_deref(), Some("a.txt"));
    assert_eq!(ok(&mut guest, req(Op::Realpath, "/tmp/link")).target.as_deref(), Some("/tmp/a.txt"));
    let (_, message) = guest.err(req(Op::ReadLink, "/tmp/a.txt"));
    assert!(message.starts_with("EINVAL"), "{message}");

    // READ_DIR: sorted names.
    let listing = ok(&mut guest, req(Op::ReadDir, "/tmp")).entries.unwrap();
    assert_eq!(listing, names(&["a.txt", "bin", "d", "link", "p"]));

    // LINK: a second name of the same inode.
    let hard = ok(&mut guest, to(Op::Link, "/tmp/a.txt", "/tmp/hard"));
    assert_eq!(hard.target.as_deref(), Some("/tmp/hard"));
    let hard_stat = guest.stat("/tmp/hard");
    assert_eq!((hard_stat.ino, hard_stat.nlink), (stat.ino, 2));

    // CHMOD, CHOWN, UTIMES, TRUNCATE.
    ok(&mut guest, chmod("/tmp/a.txt", 0o600));
    ok(&mut guest, chown("/tmp/a.txt", 1000, 100));
    ok(&mut guest, utimes("/tmp/a.txt", 1_000, 2_000));
    ok(&mut guest, truncate("/tmp/a.txt", 2));
    let changed = guest.stat("/tmp/hard");
    assert_eq!((changed.mode, changed.uid, changed.gid, changed.atime_ms), (0o100_600, 1000, 100, 1_000));
    assert_eq!(changed.size, 2);
    assert_eq!(guest.read("/tmp/a.txt"), "he");
    ok(&mut guest, truncate("/tmp/a.txt", 4));
    assert_eq!(guest.read("/tmp/a.txt"), "he\0\0");

    // RENAME.
    let renamed = ok(&mut guest, to(Op::Rename, "/tmp/a.txt", "/tmp/b.txt"));
    assert_eq!(renamed.target.as_deref(), Some("/tmp/b.txt"));
    assert!(!guest.exists("/tmp/a.txt"));
    assert_eq!(guest.read("/tmp/b.txt"), "he\0\0");
    assert!(!guest.exists("/tmp/link"), "the symlink now dangles");

    // REMOVE_FILE, REMOVE_DIR (empty, non-empty, recursive).
    ok(&mut guest, req(Op::RemoveFile, "/tmp/b.txt"));
    assert!(!guest.exists("/tmp/b.txt"));
    assert_eq!(guest.read("/tmp/hard"), "he\0\0");
    ok(&mut guest, req(Op::RemoveDir, "/tmp/d"));
    assert!(!guest.exists("/tmp/d"));
    let (_, message) = guest.err(req(Op::RemoveDir, "/tmp/p"));
    assert_eq!(message, "ENOTEMPTY: directory not empty, rmdir '/tmp/p'");
    ok(&mut guest, rm_r("/tmp/p"));
    assert!(!guest.exists("/tmp/p/q/r"));

    assert_eq!(
        used,
        GuestFilesystemOperation::ALL.into_iter().collect::<BTreeSet<_>>(),
        "every operation is exercised"
    );
}

#[test]
fn vfs_errors_are_kernel_errors_with_the_errno_message() {
    let mut guest = Guest::new(ALLOW_FS);
    for (request, expected) in [
        (req(Op::ReadFile, "/missing"), "ENOENT: no such file or directory, open '/missing'"),
        (req(Op::ReadFile, "/tmp"), "EISDIR: illegal operation on a directory, open '/tmp'"),
        (req(Op::ReadDir, "/etc/hostname"), "ENOTDIR: not a directory, scandir '/etc/hostname'"),
        (req(Op::RemoveFile, "/tmp"), "EISDIR: illegal operation on a directory, unlink '/tmp'"),
        (req(Op::Stat, "/nope/x"), "ENOENT: no such file or directory, stat '/nope/x'"),
        (to(Op::Rename, "/nope", "/tmp/x"), "ENOENT: no such file or directory, rename '/nope' -> '/tmp/x'"),
        (req(Op::RemoveDir, "/"), "EBUSY: resource busy or locked, rmdir '/'"),
    ] {
        assert_eq!(guest.err(request), ("kernel_error".to_owned(), expected.to_owned()));
    }
}

#[test]
fn missing_fields_are_invalid_state() {
    let mut guest = Guest::new(ALLOW_FS);
    guest.write("/tmp/f", "x");
    for (request, expected) in [
        (req(Op::Rename, "/tmp/f"), "guest filesystem rename requires a destination_path"),
        (req(Op::Link, "/tmp/f"), "guest filesystem link requires a destination_path"),
        (req(Op::Symlink, "/tmp/s"), "guest filesystem symlink requires a target"),
        (req(Op::Pread, "/tmp/f"), "guest filesystem pread requires offset"),
        (
            GuestFilesystemCallRequest { offset: Some(0), ..req(Op::Pread, "/tmp/f") },
            "guest filesystem pread requires len",
        ),
        (req(Op::Chmod, "/tmp/f"), "guest filesystem chmod requires a mode"),
        (req(Op::Chown, "/tmp/f"), "guest filesystem chown requires a uid"),
        (
            GuestFilesystemCallRequest { uid: Some(1), ..req(Op::Chown, "/tmp/f") },
            "guest filesystem chown requires a gid",
        ),
        (req(Op::Utimes, "/tmp/f"), "guest filesystem utimes requires atime_ms"),
        (req(Op::Truncate, "/tmp/f"), "guest filesystem truncate requires len"),
        (req(Op::WriteFile, "/tmp/f"), "guest filesystem write_file for /tmp/f requires content"),
        (
            GuestFilesystemCallRequest { encoding: Some(RootFilesystemEntryEncoding::Base64), ..write("/tmp/f", "!!") },
            "invalid base64 guest filesystem content for /tmp/f",
        ),
    ] {
        let (code, message) = guest.err(request);
        assert_eq!(code, "invalid_state");
        assert!(message.starts_with(expected), "{message} (expected {expected})");
    }
    assert_eq!(guest.read("/tmp/f"), "x", "nothing changed");
}

#[test]
fn relative_paths_resolve_against_the_guest_cwd() {
    let mut guest = Guest::new(ALLOW_FS);
    assert_eq!(guest.host.sidecar.vm_cwd(&guest.vm_id), Some("/home/user"));
    guest.write("notes.txt", "mine");
    assert_eq!(guest.read("/home/user/notes.txt"), "mine");
    assert_eq!(guest.ok(req(Op::Realpath, "./notes.txt")).target.as_deref(), Some("/home/user/notes.txt"));
    let home = guest.stat("/home/user");
    assert_eq!((home.uid, home.gid, home.is_directory), (1000, 1000, true));

    let mut guest = Guest::new(r#"{"cwd":"/tmp","permissions":{"fs":"allow"}}"#);
    guest.write("here", "tmp");
    assert_eq!(guest.read("/tmp/here"), "tmp");
    guest.ok(to(Op::Rename, "here", "../there"));
    assert_eq!(guest.read("/there"), "tmp");
}

#[test]
fn paths_never_leave_the_vm() {
    let mut guest = Guest::new(ALLOW_FS);
    let passwd = guest.read("/etc/passwd");
    assert!(passwd.contains("user:x:1000:1000"), "{passwd}");
    assert_eq!(guest.read("../../etc/passwd"), passwd);
    assert_eq!(guest.read("../../../../../../../etc/passwd"), passwd);
    assert_eq!(guest.ok(req(Op::Realpath, "../../../..")).target.as_deref(), Some("/"));

    guest.ok(symlink("/tmp/up", "/.."));
    guest.ok(symlink("/tmp/rel", "../../../../../.."));
    guest.ok(symlink("/tmp/etc", "../../../../etc"));
    let root = guest.ok(req(Op::ReadDir, "/")).entries.unwrap();
    for path in ["/tmp/up", "/tmp/rel", "/tmp/up/..", "/..", "/tmp/rel/../.."] {
        assert_eq!(guest.ok(req(Op::Realpath, path)).target.as_deref(), Some("/"), "{path}");
        assert_eq!(guest.ok(req(Op::ReadDir, path)).entries.unwrap(), root, "{path}");
    }
    assert_eq!(guest.read("/tmp/etc/passwd"), passwd);
    assert_eq!(guest.read("/tmp/up/../../etc/passwd"), passwd);
    // Writing through an escaping link lands inside the VM.
    guest.write("/tmp/up/../escaped", "in");
    assert_eq!(guest.read("/escaped"), "in");
}

// ---------------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------------

fn deny_rule(operations: &str, paths: &str) -> String {
    format!(
        r#"{{"permissions":{{"fs":{{"default":"allow","rules":[{{"mode":"deny","operations":[{operations}],"paths":[{paths}]}}]}}}},
            "rootFilesystem":{{"bootstrapEntries":[
              {{"path":"/w/file","kind":"file","content":"data"}},
              {{"path":"/w/dir","kind":"directory"}},
              {{"path":"/w/link","kind":"symlink","target":"/w/file"}}]}}}}"#
    )
}

#[test]
fn a_denied_write_is_eacces_and_leaves_no_file() {
    let mut guest = Guest::new(&deny_rule(r#""write""#, r#""/tmp/**""#));
    let (code, message) = guest.err(write("/tmp/x", "nope"));
    assert_eq!(code, "kernel_error");
    assert_eq!(message, "EACCES: permission denied, write '/tmp/x': blocked by fs.write policy");
    assert!(!guest.exists("/tmp/x"));
    let listing = guest.ok(req(Op::ReadDir, "/tmp")).entries.unwrap();
    assert!(listing.is_empty(), "{listing:?}");
    guest.write("/w/other", "allowed elsewhere");
}

#[test]
fn every_operation_checks_its_capability() {
    // (operation, rule operation, denial label, request)
    let cases: Vec<(&str, &str, GuestFilesystemCallRequest)> = vec![
        ("read", "read", req(Op::ReadFile, "/w/file")),
        ("read", "read", pread("/w/file", 0, 1)),
        ("read", "read", req(Op::Realpath, "/w/file")),
        ("read", "readlink", req(Op::ReadLink, "/w/link")),
        ("write", "write", write("/w/file", "x")),
        ("write", "link", to(Op::Link, "/w/file", "/w/hard")),
        ("write", "chmod", chmod("/w/file", 0o600)),
        ("write", "chown", chown("/w/file", 1, 1)),
        ("write", "utimes", utimes("/w/file", 1, 1)),
        ("write", "truncate", truncate("/w/file", 0)),
        ("stat", "stat", req(Op::Stat, "/w/file")),
        ("stat", "stat", req(Op::Lstat, "/w/link")),
        ("readdir", "readdir", req(Op::ReadDir, "/w/dir")),
        ("create_dir", "mkdir", req(Op::Mkdir, "/w/new")),
        ("create_dir", "createDir", req(Op::CreateDir, "/w/new")),
        ("rm", "rm", req(Op::RemoveFile, "/w/file")),
        ("rm", "rm", req(Op::RemoveDir, "/w/dir")),
        ("rename", "rename", to(Op::Rename, "/w/file", "/w/moved")),
        ("symlink", "symlink", symlink("/w/new-link", "/w/file")),
    ];
    for (operation, label, request) in cases {
        let mut guest = Guest::new(&deny_rule(&format!("{operation:?}"), r#""/w/**""#));
        let before = guest.snapshot();
        let path = match request.operation {
            Op::Lstat | Op::ReadLink => "/w/link",
            Op::Mkdir | Op::CreateDir => "/w/new",
            Op::Symlink => "/w/new-link",
            _ => request.path.as_str(),
        }
        .to_owned();
        let (code, message) = guest.err(request.clone());
        assert_eq!(code, "kernel_error");
        assert_eq!(
            message,
            format!("EACCES: permission denied, {label} '{path}': blocked by fs.{operation} policy"),
            "{:?}",
            request.operation
        );
        assert_eq!(guest.snapshot(), before, "{:?} changed nothing", request.operation);
        // Only that capability is denied: the same request outside /w/** is not refused by policy.
        if request.operation == Op::ReadFile {
            assert_eq!(guest.read("/etc/hostname"), "secure-exec\n");
        }
    }
    // EXISTS answers false when fs.stat is denied, like the original (no existence oracle).
    let mut guest = Guest::new(&deny_rule(r#""stat""#, r#""/w/**""#));
    assert_eq!(guest.ok(req(Op::Exists, "/w/file")).exists, Some(false));
    assert_eq!(guest.ok(req(Op::Exists, "/etc/hostname")).exists, Some(true));
}

#[test]
fn a_rule_may_name_an_operations_own_capability() {
    // (rule operation, denial label, the capability it is decided as, request)
    let cases: Vec<(&str, &str, GuestFilesystemCallRequest)> = vec![
        ("readlink", "read", req(Op::ReadLink, "/w/link")),
        ("link", "write", to(Op::Link, "/w/file", "/w/hard")),
        ("chmod", "write", chmod("/w/file", 0o600)),
        ("chown", "write", chown("/w/file", 1, 1)),
        ("utimes", "write", utimes("/w/file", 1, 1)),
        ("truncate", "write", truncate("/w/file", 0)),
    ];
    for (operation, capability, request) in cases {
        let mut guest = Guest::new(&deny_rule(&format!("{operation:?}"), r#""/w/**""#));
        let before = guest.snapshot();
        let path = if request.operation == Op::ReadLink { "/w/link" } else { "/w/file" };
        let (code, message) = guest.err(request.clone());
        assert_eq!(code, "kernel_error");
        assert_eq!(
            message,
            format!("EACCES: permission denied, {operation} '{path}': blocked by fs.{capability} policy"),
            "{:?}",
            request.operation
        );
        assert_eq!(guest.snapshot(), before, "{:?} changed nothing", request.operation);
        // Only that operation is denied: its capability's other operations still run there.
        assert_eq!(guest.read("/w/file"), "data");
        guest.write("/w/file", "data");
        // And elsewhere the operation itself runs.
        let elsewhere = GuestFilesystemCallRequest {
            path: request.path.replace("/w/", "/tmp/"),
            destination_path: request.destination_path.as_ref().map(|d| d.replace("/w/", "/tmp/")),
            ..request.clone()
        };
        guest.write("/tmp/file", "data");
        guest.ok(symlink("/tmp/link", "/tmp/file"));
        guest.ok(elsewhere);
    }

    // Narrower than a broad allow, and the last matching rule still wins.
    let config = r#"{"permissions":{"fs":{"default":"deny","rules":[
        {"mode":"allow","operations":["*"],"paths":["/**"]},
        {"mode":"deny","operations":["chmod"],"paths":["/secret/**"]},
        {"mode":"allow","operations":["write"],"paths":["/secret/open/**"]}]}}}"#;
    let mut guest = Guest::new(config);
    guest.ok(mkdir_p("/secret/open"));
    guest.write("/secret/f", "plain writes stay allowed");
    guest.write("/secret/open/f", "x");
    let (_, message) = guest.err(chmod("/secret/f", 0o600));
    assert_eq!(message, "EACCES: permission denied, chmod '/secret/f': blocked by fs.write policy");
    guest.ok(chmod("/secret/open/f", 0o600));
    guest.ok(chmod("/tmp", 0o600));
}

#[test]
fn a_misspelt_operation_is_refused_at_create_and_configure() {
    let expected = "invalid permissions policy: fs.rules[0].operations[1] \"wirte\" is not an fs operation; \
                    expected one of: *, read, write, stat, readdir, create_dir, rm, rename, symlink, readlink, link, \
                    chmod, chown, utimes, truncate, mount_sensitive";
    let mut host = Harness::new();
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["read","wirte"],"paths":["/**"]}]}}}"#;
    let frames = host.request(OwnershipScope::session(&conn, &session), create_vm(config));
    assert_eq!(rejection(&frames[0]), ("invalid_state".to_owned(), expected.to_owned()));
    assert!(host.sidecar.vms().is_empty());

    let mut guest = Guest::new(ALLOW_FS);
    let misspelt = fs_policy(PermissionMode::Allow, vec![fs_rule(PermissionMode::Deny, &["read", "wirte"], &["/**"])]);
    let configure = RequestPayload::ConfigureVmRequest(ConfigureVmRequest {
        permissions: Some(misspelt),
        ..ConfigureVmRequest::mounts(vec![])
    });
    match guest.send(configure) {
        ResponsePayload::RejectedResponse(rejected) => {
            assert_eq!((rejected.code.as_str(), rejected.message.as_str()), ("invalid_state", expected));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The VM keeps its policy.
    guest.write("/tmp/still", "allowed");
    assert_eq!(guest.read("/tmp/still"), "allowed");
}

#[test]
fn both_paths_of_rename_and_link_are_checked() {
    let mut guest = Guest::new(&deny_rule(r#""rename", "write""#, r#""/etc/**""#));
    let (_, message) = guest.err(to(Op::Rename, "/w/file", "/etc/file"));
    assert_eq!(message, "EACCES: permission denied, rename '/etc/file': blocked by fs.rename policy");
    let (_, message) = guest.err(to(Op::Link, "/w/file", "/etc/file"));
    assert_eq!(message, "EACCES: permission denied, link '/etc/file': blocked by fs.write policy");
    let (_, message) = guest.err(to(Op::Rename, "/etc/hostname", "/w/hostname"));
    assert!(message.contains("rename '/etc/hostname'"), "{message}");
    assert!(!guest.exists("/etc/file") && guest.exists("/w/file"));
}

/// The audit's policy: everything allowed but the entries of `/data/secret`.
const SECRET_BELOW: &str = r#"{"permissions":{"fs":{"default":"allow","rules":[
    {"mode":"deny","operations":["*"],"paths":["/data/secret/**"]}]}},
    "rootFilesystem":{"bootstrapEntries":[
      {"path":"/data/secret/f","kind":"file","content":"s3cret"},
      {"path":"/data/pub/g","kind":"file","content":"public"},
      {"path":"/tmp/tree/a/b","kind":"file","content":"b"}]}}"#;

const RULE_BELOW: &str = "a permission rule applies below this directory";

/// Whether the snapshot still holds `/data/secret/f` with its content.
fn secret_intact(guest: &mut Guest) -> bool {
    guest.snapshot().iter().any(|e| e.path == "/data/secret/f" && e.content.as_deref() == Some("s3cret"))
}

#[test]
fn a_directory_is_not_renamed_or_removed_past_a_rule_below_it() {
    let mut guest = Guest::new(SECRET_BELOW);
    let denied = "EACCES: permission denied, read '/data/secret/f': blocked by fs.read policy";
    assert_eq!(guest.err(req(Op::ReadFile, "/data/secret/f")).1, denied);
    let before = guest.snapshot();

    // Renaming the parent would make `/moved/secret/f` readable: EXDEV, so `mv` copies instead.
    let (code, message) = guest.err(to(Op::Rename, "/data", "/moved"));
    assert_eq!(code, "kernel_error");
    assert_eq!(message, format!("EXDEV: cross-device link not permitted, rename '/data' -> '/moved': {RULE_BELOW}"));
    // Removing it recursively would delete what the rule protects.
    let (code, message) = guest.err(rm_r("/data"));
    assert_eq!(code, "kernel_error");
    assert_eq!(message, format!("EACCES: permission denied, rm '/data': {RULE_BELOW}"));
    // The same for the secret directory itself (the rule names only its entries), for the root,
    // through a symlink (the canonical path counts) and with a relative path.
    let (_, message) = guest.err(to(Op::Rename, "/data/secret", "/tmp/secret"));
    assert!(message.starts_with("EXDEV: cross-device link not permitted, rename '/data/secret' -> '/tmp/secret'"));
    assert_eq!(
        guest.err(rm_r("/data/secret")).1,
        format!("EACCES: permission denied, rm '/data/secret': {RULE_BELOW}")
    );
    assert_eq!(guest.err(rm_r("/")).1, format!("EACCES: permission denied, rm '/': {RULE_BELOW}"));
    guest.ok(symlink("/tmp/link", "/data"));
    let (_, message) = guest.err(to(Op::Rename, "/tmp/link/secret", "/tmp/s"));
    assert!(message.starts_with("EXDEV: cross-device link not permitted, rename '/data/secret' -> '/tmp/s'"));
    assert!(guest.err(rm_r("/tmp/link/secret")).1.ends_with(RULE_BELOW));
    assert!(guest.err(to(Op::Rename, "../../data", "/moved")).1.ends_with(RULE_BELOW));
    guest.ok(req(Op::RemoveFile, "/tmp/link"));

    // Nothing moved or went; the secret is still there and still unreadable.
    assert_eq!(guest.snapshot(), before);
    assert!(secret_intact(&mut guest));
    assert!(!guest.exists("/moved"));
    assert_eq!(guest.err(req(Op::ReadFile, "/data/secret/f")).1, denied);
    assert_eq!(guest.err(req(Op::ReadFile, "/moved/secret/f")).0, "kernel_error");
}

#[test]
fn a_directory_is_not_renamed_into_place_above_a_rule() {
    // Writes below /srv/plugins are denied, so a directory renamed to that name would bring in
    // entries no write was checked for.
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["write"],"paths":["/srv/plugins/**"]}]}},
        "rootFilesystem":{"bootstrapEntries":[{"path":"/tmp/evil/x.js","kind":"file","content":"x"}]}}"#;
    let mut guest = Guest::new(config);
    let (_, message) = guest.err(to(Op::Rename, "/tmp/evil", "/srv/plugins"));
    assert_eq!(
        message,
        format!("EXDEV: cross-device link not permitted, rename '/tmp/evil' -> '/srv/plugins': {RULE_BELOW}")
    );
    assert!(!guest.exists("/srv/plugins") && guest.exists("/tmp/evil/x.js"));
    // A file carries nothing below it: renaming one there is the rename rule's business alone.
    guest.ok(to(Op::Rename, "/tmp/evil/x.js", "/srv/plugins"));
    assert_eq!(guest.read("/srv/plugins"), "x");
}

#[test]
fn only_directories_with_a_differing_rule_below_are_refused() {
    let mut guest = Guest::new(SECRET_BELOW);
    assert!(guest.err(to(Op::Rename, "/data", "/moved")).1.ends_with(RULE_BELOW));
    // Its siblings, and directories elsewhere, have no rule below that differs.
    guest.ok(to(Op::Rename, "/data/pub", "/data/pub2"));
    assert_eq!(guest.read("/data/pub2/g"), "public");
    guest.ok(to(Op::Rename, "/tmp/tree", "/tmp/tree2"));
    assert_eq!(guest.read("/tmp/tree2/a/b"), "b");
    guest.ok(rm_r("/tmp/tree2"));
    guest.ok(rm_r("/data/pub2"));
    assert!(!guest.exists("/tmp/tree2") && !guest.exists("/data/pub2"));
    // A file, and a symlink (not followed), move freely, even next to the rule.
    guest.write("/data/note", "n");
    guest.ok(to(Op::Rename, "/data/note", "/tmp/note"));
    guest.ok(symlink("/tmp/to-data", "/data"));
    guest.ok(to(Op::Rename, "/tmp/to-data", "/tmp/still-to-data"));
    assert_eq!(guest.ok(req(Op::ReadLink, "/tmp/still-to-data")).target.as_deref(), Some("/data"));
    // A plain REMOVE_DIR takes nothing below with it: an empty directory goes, a full one is
    // ENOTEMPTY as ever.
    guest.ok(req(Op::CreateDir, "/data/empty"));
    guest.ok(req(Op::RemoveDir, "/data/empty"));
    assert!(guest.err(req(Op::RemoveDir, "/data")).1.starts_with("ENOTEMPTY"));
    assert!(secret_intact(&mut guest));

    // A rule that matches only elsewhere does not block, though it does block above it.
    let config = SECRET_BELOW.replace("/data/secret/**", "/other/**");
    let mut guest = Guest::new(&config);
    assert!(guest.err(rm_r("/")).1.ends_with(RULE_BELOW));
    guest.ok(to(Op::Rename, "/data", "/moved"));
    assert_eq!(guest.read("/moved/secret/f"), "s3cret");
    guest.ok(rm_r("/moved"));
    assert!(!guest.exists("/moved"));
}

#[test]
fn the_guard_applies_inside_mounts() {
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["read"],"paths":["/mnt/secret/**"]}]}}}"#;
    let mut guest = Guest::new(config);
    guest.mount(vec![MountDescriptor::memory("/mnt")]).unwrap();
    guest.ok(req(Op::CreateDir, "/mnt/secret"));
    guest.write("/mnt/secret/f", "s");
    guest.ok(req(Op::CreateDir, "/mnt/open"));
    guest.write("/mnt/open/f", "o");
    assert!(guest.err(to(Op::Rename, "/mnt/secret", "/mnt/moved")).1.starts_with("EXDEV"));
    assert!(guest.err(rm_r("/mnt/secret")).1.ends_with(RULE_BELOW));
    assert!(guest.err(rm_r("/mnt")).1.starts_with("EACCES"), "a mount point holding the rule");
    guest.ok(to(Op::Rename, "/mnt/open", "/mnt/open2"));
    guest.ok(rm_r("/mnt/open2"));
    assert!(guest.err(req(Op::ReadFile, "/mnt/secret/f")).1.starts_with("EACCES"));
}

#[test]
fn symlinks_do_not_carry_operations_past_the_policy() {
    let config = r#"{"permissions":{"fs":{"default":"allow","rules":[
        {"mode":"deny","operations":["read","write","create_dir"],"paths":["/etc/**"]}]}}}"#;
    let mut guest = Guest::new(config);
    guest.ok(symlink("/tmp/pw", "/etc/passwd"));
    guest.ok(symlink("/tmp/etc", "../etc"));
    guest.ok(symlink("/tmp/dangling", "/etc/created"));
    let (_, message) = guest.err(req(Op::ReadFile, "/tmp/pw"));
    assert_eq!(message, "EACCES: permission denied, read '/etc/passwd': blocked by fs.read policy");
    let (_, message) = guest.err(req(Op::ReadFile, "/tmp/etc/hostname"));
    assert_eq!(message, "EACCES: permission denied, read '/etc/hostname': blocked by fs.read policy");
    let (_, message) = guest.err(write("/tmp/dangling", "x"));
    assert_eq!(message, "EACCES: permission denied, write '/etc/created': blocked by fs.write policy");
    let (_, message) = guest.err(write("/tmp/etc/new", "x"));
    assert_eq!(message, "EACCES: permission denied, write '/etc/new': blocked by fs.write policy");
    let (_, message) = guest.err(mkdir_p("/tmp/etc/../etc/a/b"));
    assert_eq!(message, "EACCES: permission denied, mkdir '/etc/a/b': blocked by fs.create_dir policy");
    let (_, message) = guest.err(req(Op::ReadFile, "/tmp/../etc/hostname"));
    assert!(message.contains("'/etc/hostname'"), "{message}");
    assert!(guest.exists("/tmp/etc/passwd"), "stat is still allowed");
    assert!(!guest.exists("/etc/created") && !guest.exists("/etc/new") && !guest.exists("/etc/a"));
    // The link itself is not what is read: lstat/readlink name the link.
    assert_eq!(guest.ok(req(Op::ReadLink, "/tmp/pw")).target.as_deref(), Some("/etc/passwd"));
}

#[test]
fn no_policy_denies_everything_and_ask_is_a_denial_for_host_requests() {
    let mut guest = Guest::new("{}");
    let (code, message) = guest.err(req(Op::ReadFile, "/etc/hostname"));
    assert_eq!(code, "kernel_error");
    assert_eq!(message, "EACCES: permission denied, read '/etc/hostname': blocked by fs.read policy");
    assert_eq!(guest.ok(req(Op::Exists, "/etc/hostname")).exists, Some(false));

    let mut guest = Guest::new(r#"{"permissionPrompts":{"enabled":true},"permissions":{"fs":"ask"}}"#);
    let frames = guest
        .host
        .request(guest.scope.clone(), RequestPayload::GuestFilesystemCallRequest(req(Op::ReadFile, "/etc/hostname")));
    assert_eq!(frames.len(), 1, "no prompt is sent for a host request: {frames:?}");
    let (code, message) = rejection(&frames[0]);
    assert_eq!(code, "kernel_error");
    assert_eq!(message, "EACCES: permission denied, read '/etc/hostname': permission prompt required for fs.read");
    assert_eq!(guest.host.sidecar.pending_sidecar_requests(), 0);
}

#[test]
fn a_read_only_root_refuses_every_mutation() {
    let mut guest = Guest::new(&with_root(
        r#"{"mode":"read-only","bootstrapEntries":[
            {"path":"/w/file","kind":"file","content":"data"},{"path":"/w/dir","kind":"directory"}]}"#,
    ));
    let before = guest.snapshot();
    let mutations = vec![
        write("/w/file", "x"),
        write("/tmp/new", "x"),
        req(Op::CreateDir, "/w/d2"),
        mkdir_p("/w/a/b"),
        req(Op::RemoveFile, "/w/file"),
        req(Op::RemoveDir, "/w/dir"),
        to(Op::Rename, "/w/file", "/w/moved"),
        symlink("/w/s", "/w/file"),
        to(Op::Link, "/w/file", "/w/hard"),
        chmod("/w/file", 0o600),
        chown("/w/file", 1, 1),
        utimes("/w/file", 1, 1),
        truncate("/w/file", 0),
    ];
    for request in mutations {
        let operation = request.operation;
        let (code, message) = guest.err(request);
        assert_eq!(code, "kernel_error", "{operation:?}");
        assert!(message.starts_with("EROFS: read-only file system, "), "{operation:?}: {message}");
    }
    let bootstrap = guest.send(RequestPayload::BootstrapRootFilesystemRequest(BootstrapRootFilesystemRequest {
        entries: vec![entry("/w/late", RootFilesystemEntryKind::File, Some("x"))],
    }));
    assert!(
        matches!(&bootstrap, ResponsePayload::RejectedResponse(r) if r.message.starts_with("EROFS")),
        "{bootstrap:?}"
    );
    assert_eq!(guest.snapshot(), before);
    assert_eq!(guest.read("/w/file"), "data", "reads still work");
    assert_eq!(guest.read("/etc/hostname"), "secure-exec\n");
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

fn limited(resources: &str) -> Guest {
    Guest::new(&format!(r#"{{"permissions":{{"fs":"allow"}},"limits":{{"resources":{{{resources}}}}}}}"#))
}

fn assert_limit(guest: &mut Guest, request: GuestFilesystemCallRequest, expected: &str) {
    let before = guest.snapshot();
    let (code, message) = guest.err(request);
    assert_eq!(code, "limit_exceeded");
    assert_eq!(message, expected);
    assert_eq!(guest.snapshot(), before, "the filesystem is unchanged");
}

#[test]
fn filesystem_limits_come_from_the_vm_config() {
    let mut guest = limited(r#""maxFilesystemBytes":10"#);
    guest.write("/tmp/a", "12345");
    assert_limit(&mut guest, write("/tmp/b", "123456"), "ENOSPC: filesystem bytes limit of 10 reached, open '/tmp/b'");
    assert!(!guest.exists("/tmp/b"));
    assert_limit(&mut guest, truncate("/tmp/a", 11), "ENOSPC: filesystem bytes limit of 10 reached, open '/tmp/a'");
    guest.write("/tmp/b", "12345");

    // The root and the copied-up /tmp are two inodes of the upper.
    let mut guest = limited(r#""maxInodeCount":3"#);
    guest.ok(req(Op::Mkdir, "/tmp/a"));
    assert_limit(
        &mut guest,
        req(Op::Mkdir, "/tmp/b"),
        "ENOSPC: filesystem inode count limit of 3 reached, mkdir '/tmp/b'",
    );
    assert_limit(&mut guest, write("/tmp/f", ""), "ENOSPC: filesystem inode count limit of 3 reached, open '/tmp/f'");

    let mut guest = limited(r#""maxReaddirEntries":2"#);
    let before = guest.snapshot();
    let (code, message) = guest.err(req(Op::ReadDir, "/"));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("limit_exceeded", "ENOSPC: readdir entries limit of 2 reached, scandir '/'")
    );
    assert_eq!(guest.snapshot(), before);
    assert_eq!(guest.ok(req(Op::ReadDir, "/home")).entries.unwrap(), names(&["user"]));

    let mut guest = limited(r#""maxPreadBytes":4"#);
    let (code, message) = guest.err(pread("/etc/hostname", 0, 5));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("limit_exceeded", "ENOSPC: pread bytes limit of 4 reached, read '/etc/hostname'")
    );
    let ok = guest.ok(pread("/etc/hostname", 0, 4));
    assert_eq!(ok.content.as_deref(), Some("secu"));

    let mut guest = limited(r#""maxFdWriteBytes":8"#);
    assert_limit(&mut guest, write("/tmp/w", "123456789"), "ENOSPC: fd write bytes limit of 8 reached, open '/tmp/w'");
    guest.write("/tmp/w", "12345678");
}

#[test]
fn root_filesystem_content_over_the_limits_refuses_the_vm() {
    let mut host = Harness::new();
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    let config = r#"{"limits":{"resources":{"maxFilesystemBytes":4}},
        "rootFilesystem":{"bootstrapEntries":[{"path":"/big","kind":"file","content":"12345"}]}}"#;
    let frames =
        host.request(OwnershipScope::session(&conn, &session), create_vm_for(GuestRuntimeKind::JavaScript, config));
    assert_eq!(frames.len(), 1, "no lifecycle events for a refused VM");
    let (code, message) = rejection(&frames[0]);
    assert_eq!(code, "limit_exceeded");
    assert!(message.starts_with("ENOSPC: filesystem bytes limit of 4 reached"), "{message}");
    assert!(host.sidecar.vms().is_empty());
    // Like the original, the refused VM used up its id.
    let (_, _, vm) = host.vm("{}");
    assert_eq!(vm, "vm-2");
}

// ---------------------------------------------------------------------------------------------
// Root filesystem config, bootstrap, snapshot
// ---------------------------------------------------------------------------------------------

pub fn entry(path: &str, kind: RootFilesystemEntryKind, content: Option<&str>) -> RootFilesystemEntry {
    RootFilesystemEntry {
        path: path.into(),
        kind,
        mode: None,
        uid: None,
        gid: None,
        content: content.map(Into::into),
        encoding: None,
        target: None,
        executable: false,
    }
}

#[test]
fn the_default_base_layer_is_a_small_linux_tree() {
    let mut guest = Guest::new(ALLOW_FS);
    assert_eq!(guest.read("/etc/hostname"), "secure-exec\n");
    for path in ["/bin", "/usr/bin", "/etc", "/home/user", "/tmp", "/var/tmp", "/root"] {
        assert!(guest.stat(path).is_directory, "{path}");
    }
    assert_eq!(guest.stat("/tmp").mode, 0o041_777);
    assert_eq!(guest.stat("/root").mode, 0o040_700);
    let passwd = guest.read("/etc/passwd");
    assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("\nuser:x:1000:1000:"), "{passwd}");
    assert!(guest.read("/etc/group").contains("user:x:1000:"));
    assert!(guest.read("/etc/resolv.conf").starts_with("nameserver "));
    guest.write("/tmp/scratch", "writable");
    assert_eq!(guest.read("/tmp/scratch"), "writable");
    // The snapshot is the merged tree: base entries and the new file, parents first.
    let snapshot = guest.snapshot();
    let paths: Vec<&str> = snapshot.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths.first(), Some(&"/"));
    assert!(paths.contains(&"/etc/hostname") && paths.contains(&"/tmp/scratch"));
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}

#[test]
fn disabling_the_default_base_layer_leaves_an_empty_root() {
    let mut guest = Guest::new(&with_root(r#"{"disableDefaultBaseLayer":true}"#));
    assert!(!guest.exists("/etc/hostname"));
    assert_eq!(guest.ok(req(Op::ReadDir, "/")).entries.unwrap(), Vec::<String>::new());
    assert!(guest.host.sidecar.vm_root_filesystem(&guest.vm_id).unwrap().lowers().is_empty());
    let snapshot = guest.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!((snapshot[0].path.as_str(), snapshot[0].kind), ("/", RootFilesystemEntryKind::Directory));
    // The cwd does not exist; a host's write under it makes it, as the original's does.
    guest.write("relative", "x");
    assert_eq!(guest.read("/home/user/relative"), "x");
}

#[test]
fn lowers_take_precedence_in_order_and_bootstrap_entries_win() {
    // The original's `create_vm_root_filesystem_composes_multiple_lowers_with_bootstrap_upper`.
    let mut guest = Guest::new(&with_root(
        r#"{"disableDefaultBaseLayer":true,
            "lowers":[
              {"kind":"snapshot","entries":[{"path":"/workspace","kind":"directory"},
                {"path":"/workspace/shared.txt","kind":"file","content":"higher"},
                {"path":"/workspace/higher-only.txt","kind":"file","content":"higher-only"}]},
              {"kind":"snapshot","entries":[{"path":"/workspace","kind":"directory"},
                {"path":"/workspace/shared.txt","kind":"file","content":"lower"},
                {"path":"/workspace/lower-only.txt","kind":"file","content":"lower-only"}]}],
            "bootstrapEntries":[{"path":"/workspace","kind":"directory"},
              {"path":"/workspace/shared.txt","kind":"file","content":"upper"},
              {"path":"/workspace/upper-only.txt","kind":"file","content":"upper-only"}]}"#,
    ));
    for (path, expected) in [
        ("/workspace/shared.txt", "upper"),
        ("/workspace/higher-only.txt", "higher-only"),
        ("/workspace/lower-only.txt", "lower-only"),
        ("/workspace/upper-only.txt", "upper-only"),
    ] {
        assert_eq!(guest.read(path), expected, "{path}");
    }
    assert_eq!(
        guest.ok(req(Op::ReadDir, "/workspace")).entries.unwrap(),
        names(&["higher-only.txt", "lower-only.txt", "shared.txt", "upper-only.txt"])
    );

    // Without bootstrap entries the first lower wins; the base layer is the lowest.
    let mut guest = Guest::new(&with_root(
        r#"{"lowers":[
              {"kind":"snapshot","entries":[{"path":"/etc/hostname","kind":"file","content":"first\n"}]},
              {"kind":"snapshot","entries":[{"path":"/etc/hostname","kind":"file","content":"second\n"},
                                             {"path":"/etc/motd","kind":"file","content":"hi","mode":384,"uid":7}]}]}"#,
    ));
    assert_eq!(guest.read("/etc/hostname"), "first\n");
    let motd = guest.stat("/etc/motd");
    assert_eq!((motd.mode, motd.uid), (0o100_600, 7));
    assert!(guest.exists("/etc/passwd"), "the base layer is below the configured lowers");
}

#[test]
fn the_base_layer_is_built_once_and_shared() {
    let mut guest = Guest::new(ALLOW_FS);
    let bundled = with_root(r#"{"disableDefaultBaseLayer":true,"lowers":[{"kind":"bundledBaseFilesystem"}]}"#);
    let (other_vm, other_scope) = guest.sibling(ALLOW_FS);
    let (bundled_vm, _) = guest.sibling(&bundled);
    let sidecar = &guest.host.sidecar;
    let base = sidecar.base_layer();
    for vm in [&guest.vm_id, &other_vm, &bundled_vm] {
        let lowers = sidecar.vm_root_filesystem(vm).unwrap().lowers();
        assert_eq!(lowers.len(), 1);
        assert!(Layer::ptr_eq(&lowers[0], base), "{vm} shares the base layer");
    }
    let base_before = base.export();

    // A write in one VM is copied up into that VM's upper only.
    guest.write("/etc/hostname", "changed\n");
    assert_eq!(guest.read("/etc/hostname"), "changed\n");
    let other = call_in(&mut guest.host, other_scope, req(Op::ReadFile, "/etc/hostname")).unwrap();
    assert_eq!(other.content.as_deref(), Some("secure-exec\n"));
    assert_eq!(guest.host.sidecar.base_layer().export(), base_before);
}

#[test]
fn bootstrap_entries_land_in_the_upper_and_the_snapshot_shows_them() {
    let mut guest = Guest::new(&with_root(
        r#"{"bootstrapEntries":[
            {"path":"/workspace","kind":"directory","mode":493},
            {"path":"/workspace/run.sh","kind":"file","content":"IyEvYmluL3NoCg==","encoding":"base64","executable":true},
            {"path":"/workspace/link","kind":"symlink","target":"/workspace/run.sh"}]}"#,
    ));
    assert_eq!(guest.read("/workspace/link"), "#!/bin/sh\n");
    assert_eq!(guest.stat("/workspace/run.sh").mode, 0o100_755);

    let response = guest.send(RequestPayload::BootstrapRootFilesystemRequest(BootstrapRootFilesystemRequest {
        entries: vec![
            entry("/data", RootFilesystemEntryKind::Directory, None),
            RootFilesystemEntry {
                encoding: Some(RootFilesystemEntryEncoding::Base64),
                uid: Some(1000),
                gid: Some(1000),
                ..entry("/data/blob", RootFilesystemEntryKind::File, Some("AAEC/w=="))
            },
            entry("/data/note", RootFilesystemEntryKind::File, Some("text")),
        ],
    }));
    assert_eq!(
        response,
        ResponsePayload::RootFilesystemBootstrappedResponse(RootFilesystemBootstrappedResponse { entry_count: 3 })
    );
    assert_eq!(guest.read("/data/note"), "text");
    let snapshot = guest.snapshot();
    let find = |path: &str| snapshot.iter().find(|e| e.path == path).unwrap().clone();
    let blob = find("/data/blob");
    assert_eq!((blob.content.as_deref(), blob.encoding), (Some("AAEC/w=="), Some(RootFilesystemEntryEncoding::Base64)));
    assert_eq!((blob.mode, blob.uid, blob.gid, blob.executable), (Some(0o644), Some(1000), Some(1000), false));
    let run = find("/workspace/run.sh");
    assert_eq!((run.content.as_deref(), run.encoding), (Some("#!/bin/sh\n"), Some(RootFilesystemEntryEncoding::Utf8)));
    assert!(run.executable);
    let link = find("/workspace/link");
    assert_eq!(
        (link.kind, link.target.as_deref(), link.content),
        (RootFilesystemEntryKind::Symlink, Some("/workspace/run.sh"), None)
    );
    assert_eq!(find("/data").kind, RootFilesystemEntryKind::Directory);

    // Bad entries are refused whole.
    let response = guest.send(RequestPayload::BootstrapRootFilesystemRequest(BootstrapRootFilesystemRequest {
        entries: vec![
            entry("/data/ok", RootFilesystemEntryKind::File, Some("fine")),
            entry("/data/bad-link", RootFilesystemEntryKind::Symlink, None),
        ],
    }));
    assert!(
        matches!(&response, ResponsePayload::RejectedResponse(r) if r.code == "invalid_state" && r.message.contains("requires a target")),
        "{response:?}"
    );
    assert!(!guest.exists("/data/ok"));
}

#[test]
fn bootstrap_and_snapshot_need_no_fs_permission() {
    // Host operations: the guest policy (deny-all by default) does not apply.
    let mut guest = Guest::new("{}");
    let response = guest.send(RequestPayload::BootstrapRootFilesystemRequest(BootstrapRootFilesystemRequest {
        entries: vec![entry("/seed", RootFilesystemEntryKind::File, Some("s"))],
    }));
    assert!(matches!(response, ResponsePayload::RootFilesystemBootstrappedResponse(_)), "{response:?}");
    assert!(guest.snapshot().iter().any(|e| e.path == "/seed" && e.content.as_deref() == Some("s")));
}

#[test]
fn a_disposed_vm_has_no_filesystem() {
    let mut guest = Guest::new(ALLOW_FS);
    let frames = guest.host.request(guest.scope.clone(), dispose());
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmDisposedResponse(_)));
    let (code, message) = guest.err(req(Op::ReadFile, "/etc/hostname"));
    assert_eq!(code, "invalid_state");
    assert!(message.starts_with("unknown sidecar VM"), "{message}");
    assert!(guest.host.sidecar.vm_root_filesystem(&guest.vm_id).is_none());
}

#[test]
fn a_host_write_under_missing_directories_creates_them_as_the_original_does() {
    let mut guest = Guest::new(ALLOW_FS);
    guest.write("/app/lib/utils.js", "export {}");
    assert_eq!(guest.read("/app/lib/utils.js"), "export {}");
    assert!(guest.stat("/app/lib").is_directory);
    // Relative paths too, against the VM's cwd.
    guest.write("deep/er/file", "x");
    assert_eq!(guest.read("deep/er/file"), "x");
    // A parent that is a file is not replaced: the write's own error stands.
    let (code, message) = guest.err(write("/app/lib/utils.js/inner", "no"));
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("ENOTDIR"), "{message}");
}

#[test]
fn a_host_write_may_not_create_directories_the_policy_forbids() {
    let mut guest = Guest::new(&deny_rule(r#""create_dir""#, r#""/locked/**", "/locked""#));
    let (code, message) = guest.err(write("/locked/a/file", "no"));
    assert_eq!(code, "kernel_error");
    assert_eq!(message, "ENOENT: no such file or directory, open '/locked/a/file'");
    assert!(!guest.exists("/locked"));
}
