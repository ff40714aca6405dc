//! Persistence and host directories through the real binary: a flush in one process is loaded
//! by the next one (file store under `--store-dir`), and `host_dir` mounts reach real files,
//! confined to their directory.

use client::{Client, ClientError};
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use std::path::{Path, PathBuf};

const ALLOW_FS: &str = r#"{"permissions":{"fs":"allow"}}"#;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sidecar-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn call(operation: Op, path: &str) -> GuestFilesystemCallRequest {
    GuestFilesystemCallRequest::new(operation, path)
}

/// Spawns the binary and creates one VM: (client, VM scope).
fn start(args: &[&str]) -> (Client, OwnershipScope) {
    start_with(args, ALLOW_FS)
}

/// [`start`] with the VM config `config`.
fn start_with(args: &[&str], config: &str) -> (Client, OwnershipScope) {
    let mut sidecar = Client::spawn(binary(), args).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, config).unwrap();
    (sidecar, OwnershipScope::vm(auth.connection_id, session, vm))
}

fn fs(
    sidecar: &mut Client,
    scope: &OwnershipScope,
    request: GuestFilesystemCallRequest,
) -> Result<GuestFilesystemResultResponse, ClientError> {
    match sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(request))? {
        ResponsePayload::GuestFilesystemResultResponse(result) => Ok(result),
        other => panic!("unexpected {other:?}"),
    }
}

fn rejected(result: Result<impl std::fmt::Debug, ClientError>) -> (String, String) {
    match result {
        Err(ClientError::Rejected { code, message }) => (code, message),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_flushed_state_is_loaded_by_the_next_process() {
    let store = scratch("store");
    let store_arg = store.to_str().unwrap();

    let (mut first, scope) = start(&["--store-dir", store_arg]);
    let content = GuestFilesystemCallRequest {
        content: Some("across processes".into()),
        ..call(Op::WriteFile, "/home/user/kept.txt")
    };
    fs(&mut first, &scope, content).unwrap();
    fs(&mut first, &scope, call(Op::RemoveFile, "/etc/shells")).unwrap();
    let flushed = first
        .request(
            scope.clone(),
            RequestPayload::PersistenceFlushRequest(PersistenceFlushRequest {
                key: "e2e-state".into(),
                payload_size_bytes: 0,
            }),
        )
        .unwrap();
    let ResponsePayload::PersistenceFlushedResponse(flushed) = flushed else { panic!("{flushed:?}") };
    assert!(flushed.committed_bytes > 0);
    assert!(first.close().unwrap().success());
    let stored = store.join("e2e-state.state");
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), flushed.committed_bytes);
    let leftovers: Vec<_> = std::fs::read_dir(&store).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the state file, no temp files: {leftovers:?}");

    let (mut second, scope) = start(&["--store-dir", store_arg]);
    let (code, _) = rejected(fs(&mut second, &scope, call(Op::ReadFile, "/home/user/kept.txt")));
    assert_eq!(code, "kernel_error", "a new VM starts without it");
    let load = |key: &str| RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: key.into() });
    let loaded = second.request(scope.clone(), load("e2e-state")).unwrap();
    assert_eq!(
        loaded,
        ResponsePayload::PersistenceStateResponse(PersistenceStateResponse {
            key: "e2e-state".into(),
            found: true,
            payload_size_bytes: flushed.committed_bytes
        })
    );
    let read = fs(&mut second, &scope, call(Op::ReadFile, "/home/user/kept.txt")).unwrap();
    assert_eq!(read.content.as_deref(), Some("across processes"));
    assert_eq!(fs(&mut second, &scope, call(Op::Exists, "/etc/shells")).unwrap().exists, Some(false));
    let missing = second.request(scope.clone(), load("never")).unwrap();
    assert!(matches!(
        missing,
        ResponsePayload::PersistenceStateResponse(PersistenceStateResponse { found: false, .. })
    ));
    assert!(second.close().unwrap().success());
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn host_dir_mounts_reach_real_files_and_stay_inside() {
    let base = scratch("hostdir");
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(base.join("sibling")).unwrap();
    std::fs::write(root.join("inside.txt"), "host content").unwrap();
    std::fs::write(base.join("sibling/secret"), "secret").unwrap();
    std::os::unix::fs::symlink("../sibling", root.join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    let store = base.join("store");

    let (mut sidecar, scope) = start(&["--store-dir", store.to_str().unwrap()]);
    let config = serde_json::json!({ "hostPath": root }).to_string();
    let configured = sidecar
        .request(
            scope.clone(),
            RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![MountDescriptor {
                guest_path: "/host".into(),
                read_only: false,
                plugin: MountPluginDescriptor { id: "host_dir".into(), config },
            }])),
        )
        .unwrap();
    assert!(matches!(
        configured,
        ResponsePayload::VmConfiguredResponse(VmConfiguredResponse { applied_mounts: 1, .. })
    ));
    let read = fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/inside.txt")).unwrap();
    assert_eq!(read.content.as_deref(), Some("host content"));
    let written =
        GuestFilesystemCallRequest { content: Some("from the guest".into()), ..call(Op::WriteFile, "/host/out.txt") };
    fs(&mut sidecar, &scope, written).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("out.txt")).unwrap(), "from the guest");
    // Links the host left in the folder are followed inside the VM, like links in a container's
    // bind mount: `../sibling` climbs to the VM's `/sibling` (there is none), `/etc` is the VM's.
    let (code, message) = rejected(fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/escape/secret")));
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("ENOENT: "), "{message}");
    let passwd = fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/etc/passwd")).map(|read| read.content).ok();
    let vm_passwd = fs(&mut sidecar, &scope, call(Op::ReadFile, "/etc/passwd")).map(|read| read.content).ok();
    assert_eq!(passwd, vm_passwd, "/host/etc is the VM's /etc, never the host's");
    assert_ne!(passwd.flatten(), std::fs::read_to_string("/etc/passwd").ok());
    let overwrite =
        GuestFilesystemCallRequest { content: Some("pwned".into()), ..call(Op::WriteFile, "/host/escape/secret") };
    assert!(message_of(fs(&mut sidecar, &scope, overwrite)).starts_with("ENOENT"));
    assert_eq!(std::fs::read_to_string(base.join("sibling/secret")).unwrap(), "secret");
    // `..` out of the mount lands in the VM's own root, never the host's.
    let up = fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/../../etc/hostname")).unwrap();
    assert_eq!(up.content.as_deref(), Some("secure-exec\n"));
    // The host's own call through the same mount.
    let stat = sidecar
        .request(
            scope.clone(),
            RequestPayload::HostFilesystemCallRequest(HostFilesystemCallRequest {
                operation: FilesystemOperation::Stat,
                path: "/host/inside.txt".into(),
                payload_size_bytes: 0,
            }),
        )
        .unwrap();
    assert_eq!(
        stat,
        ResponsePayload::FilesystemResultResponse(FilesystemResultResponse {
            operation: FilesystemOperation::Stat,
            status: "ok".into(),
            payload_size_bytes: 12
        })
    );
    assert!(sidecar.close().unwrap().success());

    // With host file access turned off, the mount is refused.
    let (mut locked, scope) = start(&["--store-dir", store.to_str().unwrap(), "--no-host-fs"]);
    let refused = locked.request(
        scope,
        RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![MountDescriptor {
            guest_path: "/host".into(),
            read_only: false,
            plugin: MountPluginDescriptor { id: "host_dir".into(), config: r#"{"hostPath":"/tmp"}"#.into() },
        }])),
    );
    assert_eq!(rejected(refused), ("plugin_error".into(), "ENOSYS: host filesystem access is not available".into()));
    assert!(locked.close().unwrap().success());
    let _ = std::fs::remove_dir_all(&base);
}

fn message_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    rejected(result).1
}

/// A run that reads and writes a `host_dir` mount and flushes and loads state, recorded; then
/// the host folder and the store are deleted, and the replay still reproduces every frame: the
/// trace holds every answer the host filesystem and the store gave.
#[test]
fn a_recorded_run_with_host_files_and_the_store_replays_after_both_are_deleted() {
    let base = scratch("replay-ports");
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("inside.txt"), "host content").unwrap();
    std::fs::write(root.join("sub/deep.txt"), "deeper").unwrap();
    let store = base.join("store");
    let trace = base.join("run.trace");

    let (mut sidecar, scope) = start(&["--store-dir", store.to_str().unwrap(), "--record", trace.to_str().unwrap()]);
    mount_at_host(&mut sidecar, &scope, &root);
    let read = fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/inside.txt")).unwrap();
    assert_eq!(read.content.as_deref(), Some("host content"));
    let written = GuestFilesystemCallRequest { content: Some("guest".into()), ..call(Op::WriteFile, "/host/out.txt") };
    fs(&mut sidecar, &scope, written).unwrap();
    let listed = fs(&mut sidecar, &scope, call(Op::ReadDir, "/host")).unwrap();
    assert!(listed.entries.as_ref().is_some_and(|names| names.len() == 3), "{listed:?}");
    fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/sub/deep.txt")).unwrap();
    let link = GuestFilesystemCallRequest { target: Some("inside.txt".into()), ..call(Op::Symlink, "/host/link") };
    fs(&mut sidecar, &scope, link).unwrap();
    fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/link")).unwrap();
    rejected(fs(&mut sidecar, &scope, call(Op::ReadFile, "/host/missing")));
    let kept =
        GuestFilesystemCallRequest { content: Some("kept".into()), ..call(Op::WriteFile, "/home/user/kept.txt") };
    fs(&mut sidecar, &scope, kept).unwrap();
    let flush = RequestPayload::PersistenceFlushRequest(PersistenceFlushRequest {
        key: "replayed".into(),
        payload_size_bytes: 0,
    });
    assert!(matches!(sidecar.request(scope.clone(), flush).unwrap(), ResponsePayload::PersistenceFlushedResponse(_)));
    fs(&mut sidecar, &scope, call(Op::RemoveFile, "/home/user/kept.txt")).unwrap();
    let load = RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: "replayed".into() });
    assert!(matches!(
        sidecar.request(scope.clone(), load).unwrap(),
        ResponsePayload::PersistenceStateResponse(PersistenceStateResponse { found: true, .. })
    ));
    let back = fs(&mut sidecar, &scope, call(Op::ReadFile, "/home/user/kept.txt")).unwrap();
    assert_eq!(back.content.as_deref(), Some("kept"));
    assert!(sidecar.close().unwrap().success());

    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&store).unwrap();
    let (stdout, count) = replay_counts(&trace);
    // The flush's put and the load's get, and every host directory call the requests made:
    // effects now, their answers from the trace.
    assert!(count(" effects") >= 2 + 8, "{stdout}");
    // The one call still made within a step: opening the mount's directory.
    assert_eq!(count(" host filesystem calls answered from the trace"), 1, "{stdout}");
    assert!(!root.exists() && !store.exists());
    let _ = std::fs::remove_dir_all(&base);
}

/// Mounts the host folder `root` at `/host` of the VM.
fn mount_at_host(sidecar: &mut Client, scope: &OwnershipScope, root: &Path) {
    let config = serde_json::json!({ "hostPath": root }).to_string();
    let mount = RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![MountDescriptor {
        guest_path: "/host".into(),
        read_only: false,
        plugin: MountPluginDescriptor { id: "host_dir".into(), config },
    }]));
    sidecar.request(scope.clone(), mount).unwrap();
}

/// Replays `trace` through the binary, which must report a match: its report, and a reader of
/// the report's counts by their suffix (`" effects"`, ...).
fn replay_counts(trace: &Path) -> (String, impl Fn(&str) -> usize) {
    let replay = std::process::Command::new(binary()).args(["replay", trace.to_str().unwrap()]).output().unwrap();
    let report = String::from_utf8_lossy(&replay.stdout).into_owned();
    assert!(replay.status.success(), "{}{report}", String::from_utf8_lossy(&replay.stderr));
    let counted = report.clone();
    let count = move |suffix: &str| -> usize {
        counted
            .trim_end()
            .split(", ")
            .find_map(|part| part.strip_suffix(suffix))
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("{suffix:?} in {counted}"))
    };
    (report, count)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../runtime-wasm/fixtures/c/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `fsops ARGS…` in the VM to its end: (stdout, exit code).
fn run_fsops(sidecar: &mut Client, scope: &OwnershipScope, id: &str, args: &[&str]) -> (String, i32) {
    run_fsops_at(sidecar, scope, id, "fsops", args)
}

/// [`run_fsops`] of the program `command` names.
fn run_fsops_at(sidecar: &mut Client, scope: &OwnershipScope, id: &str, command: &str, args: &[&str]) -> (String, i32) {
    let started = sidecar
        .request(scope.clone(), RequestPayload::ExecuteRequest(ExecuteRequest::command(id, command, args.to_vec())))
        .unwrap();
    assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
    let mut stdout = Vec::new();
    loop {
        match sidecar.next_event(std::time::Duration::from_secs(60)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.channel == StreamChannel::Stdout => {
                stdout.extend_from_slice(&event.chunk);
            }
            EventPayload::ProcessExitedEvent(event) => return (String::from_utf8(stdout).unwrap(), event.exit_code),
            _ => {}
        }
    }
}

/// A real guest's files on a `host_dir` mount: every host call it makes is an effect the
/// binary performs off its loop, and the guest sees what Linux would show it. Recorded, the run
/// replays with the folder deleted: each answer comes from the trace as an effect completion.
#[test]
fn a_guest_on_a_host_dir_mount_is_served_by_effects_and_replays_without_the_folder() {
    use base64::Engine as _;
    let base = scratch("guest-host-dir");
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("inside.txt"), "host content").unwrap();
    std::os::unix::fs::symlink("../sibling", root.join("escape")).unwrap();
    std::fs::create_dir_all(base.join("sibling")).unwrap();
    std::fs::write(base.join("sibling/secret"), "secret").unwrap();
    let trace = base.join("run.trace");

    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow"}}"#;
    let (mut sidecar, scope) = start_with(&["--record", trace.to_str().unwrap(), "--seed", "9"], config);
    mount_at_host(&mut sidecar, &scope, &root);
    let program = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(fixture("fsops"))),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..call(Op::WriteFile, "/bin/fsops")
    };
    fs(&mut sidecar, &scope, program).unwrap();
    let script = [
        "cat",
        "/host/inside.txt",
        "write",
        "/host/sub/new.txt",
        "fresh",
        "append",
        "/host/sub/new.txt",
        " and more",
        "cat",
        "/host/sub/new.txt",
        "mkdir",
        "/host/sub/dir",
        "mv",
        "/host/sub/new.txt",
        "/host/sub/dir/moved.txt",
        "stat",
        "/host/sub/dir/moved.txt",
        "symlink",
        "moved.txt",
        "/host/sub/dir/link",
        "readlink",
        "/host/sub/dir/link",
        "cat",
        "/host/sub/dir/link",
        "ls",
        "/host/sub/dir",
        "pwrites",
        "/host/sub/dir/moved.txt",
        "5",
        "cat",
        "/host/escape/secret",
        "rm",
        "/host/sub/dir/link",
        "cat",
        "/host/missing",
    ];
    let (stdout, code) = run_fsops(&mut sidecar, &scope, "ops", &script);
    assert_eq!(code, 0, "{stdout}");
    let expected = "cat /host/inside.txt: host content\n\
                    write /host/sub/new.txt: ok\n\
                    write /host/sub/new.txt: ok\n\
                    cat /host/sub/new.txt: fresh and more\n\
                    mkdir /host/sub/dir: ok\n\
                    mv /host/sub/new.txt: ok\n\
                    stat /host/sub/dir/moved.txt: mode 100000 size 14\n\
                    symlink /host/sub/dir/link: ok\n\
                    readlink /host/sub/dir/link: moved.txt\n\
                    cat /host/sub/dir/link: fresh and more\n\
                    ls /host/sub/dir: link moved.txt\n\
                    pwrites /host/sub/dir/moved.txt: 5\n\
                    cat /host/escape/secret: error No such file or directory\n\
                    rm /host/sub/dir/link: ok\n\
                    cat /host/missing: error No such file or directory\n";
    // (The fixture's libc is plain wasi-libc, whose `st_mode` carries the file type only.)
    assert_eq!(stdout, expected);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(root.join("sub/dir/moved.txt")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o644, "created with the mode the guest asked for");
    // A program on the mount: its Execute waits for the host calls that read it.
    std::fs::write(root.join("tool.wasm"), fixture("fsops")).unwrap();
    let (stdout, code) = run_fsops_at(&mut sidecar, &scope, "tool", "/host/tool.wasm", &["cat", "/host/inside.txt"]);
    assert_eq!((code, stdout.as_str()), (0, "cat /host/inside.txt: host content\n"));
    // Programs on a mount at `/bin`: the Execute reads `spawn`, and the guest's own spawn reads
    // `hello`, through host calls.
    let tools = base.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::write(tools.join("spawn"), fixture("spawn")).unwrap();
    std::fs::write(tools.join("hello"), fixture("hello")).unwrap();
    let mounts = [("/host", root.as_path()), ("/bin", tools.as_path())].map(|(guest, host)| MountDescriptor {
        guest_path: guest.into(),
        read_only: false,
        plugin: MountPluginDescriptor {
            id: "host_dir".into(),
            config: serde_json::json!({ "hostPath": host }).to_string(),
        },
    });
    let configured = RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(mounts.to_vec()));
    sidecar.request(scope.clone(), configured).unwrap();
    let (stdout, code) = run_fsops_at(&mut sidecar, &scope, "spawner", "spawn", &["pipe"]);
    assert_eq!((code, stdout.as_str()), (0, "child 4 said: hello from C\nreaped 4: status 0\n"));
    let on_disk = std::fs::read(root.join("sub/dir/moved.txt")).unwrap();
    assert_eq!(on_disk.len(), 14);
    assert!(!root.join("sub/dir/link").exists());
    assert!(sidecar.close().unwrap().success());

    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&tools).unwrap();
    let (report, count) = replay_counts(&trace);
    let effects = count(" effects");
    // Still calls within a step: the three mounts' opening, and each Execute's second reading
    // of its program once compiled (see docs/determinism.md).
    let in_steps = count(" host filesystem calls answered from the trace");
    assert!(in_steps < effects / 5, "most host calls are effects: {report}");
    assert!(effects >= 30, "the guest's host calls came back as effect completions: {report}");
    let _ = std::fs::remove_dir_all(&base);
}
