//! A hostile guest against `host_dir` mounts on the real host filesystem (`OsHostFs`): links that
//! would carry it past a deny rule (D2) or out of the mounted directory (D1), FIFOs that would
//! stall the sidecar (D4), and modes or owners that would give it privilege on the host (D6).
//! Each test acts as a C guest (`fsops`) or through the protocol, then checks the host directly.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernel::{Sidecar, SidecarConfig};
use runtime_wasm::{RuntimeConfig, WasmEngine};
use schema::wire::*;
use transport::hostfs::OsHostFs;

use crate::exec::{outcome, response, started, Host};

/// A scratch host directory: `<tmp>/<unique>/root` is mounted; `<tmp>/<unique>/outside` holds
/// what a guest must never reach.
struct Scratch {
    base: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let base = std::env::temp_dir().join(format!("sidecar-security-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("root/public")).unwrap();
        fs::create_dir_all(base.join("root/private")).unwrap();
        fs::create_dir_all(base.join("outside")).unwrap();
        fs::write(base.join("root/public/ok.txt"), "public").unwrap();
        fs::write(base.join("root/private/secret"), "private secret").unwrap();
        fs::write(base.join("outside/secret"), "outside secret").unwrap();
        Scratch { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    /// Every symlink below the mounted directory that resolves outside it (what a host tool
    /// walking the folder later would follow out).
    fn links_leading_out(&self) -> Vec<String> {
        let root = fs::canonicalize(self.root()).unwrap();
        let mut out = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path).unwrap();
                    let leads = lexical_resolve(path.parent().unwrap(), &target);
                    if !leads.starts_with(&root) {
                        out.push(format!("{} -> {}", path.display(), target.display()));
                    }
                } else if meta.is_dir() {
                    pending.push(path);
                }
            }
        }
        out
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// Where `target` leads from `dir`, following the symlinks on the way like the OS (so `dot/..`
/// with `dot -> .` climbs from `dir` itself).
fn lexical_resolve(dir: &Path, target: &Path) -> PathBuf {
    let joined = dir.join(target);
    // canonicalize follows every link like a host tool would; a dangling end is resolved as far
    // as it exists.
    let mut existing = joined.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(&existing) {
            let mut real = real;
            for part in rest.iter().rev() {
                real.push(part);
            }
            return real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => return joined,
        }
    }
}

/// A host with the wasm engine and the real host filesystem.
fn host() -> Host {
    let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
    Host::with_sidecar(
        Sidecar::new(SidecarConfig::default()).with_guest_engine(engine).with_host_fs(Arc::new(OsHostFs)),
    )
}

/// A VM with `fs_policy`, the scratch root mounted at `/mnt`.
fn vm_with_mount(host: &mut Host, scratch: &Scratch, fs_policy: &str) -> String {
    let config = format!(r#"{{"permissions":{{"fs":{fs_policy},"env":"allow","childProcess":"allow"}}}}"#);
    let vm = host.vm(&config);
    let mount = MountDescriptor::host_dir("/mnt", scratch.root().to_str().unwrap(), false);
    let configured = host.simple(&vm, RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![mount])));
    assert!(matches!(configured, ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    vm
}

/// Runs `fsops` with `args`; its output lines.
fn fsops(host: &mut Host, vm: &str, args: &[&str]) -> Vec<String> {
    started(&host.execute(vm, "fsops", "fsops", args));
    let (stdout, stderr, code) = outcome(&host.run("fsops"));
    assert_eq!((code, stderr.as_str()), (0, ""), "fsops {args:?}");
    String::from_utf8(stdout).unwrap().lines().map(str::to_owned).collect()
}

const DENY_PRIVATE: &str =
    r#"{"default":"allow","rules":[{"mode":"deny","operations":["*"],"paths":["/mnt/private","/mnt/private/**"]}]}"#;

#[test]
fn d2_a_link_cannot_carry_a_guest_past_a_deny_rule() {
    let scratch = Scratch::new("d2");
    let mut host = host();
    let vm = vm_with_mount(&mut host, &scratch, DENY_PRIVATE);
    let lines = fsops(
        &mut host,
        &vm,
        &[
            "symlink",
            "../private",
            "/mnt/public/alias",
            "cat",
            "/mnt/public/ok.txt",
            "cat",
            "/mnt/public/alias/secret",
            "write",
            "/mnt/public/alias/planted",
            "x",
            "append",
            "/mnt/public/alias/secret",
            "x",
            "rm",
            "/mnt/public/alias/secret",
            "ls",
            "/mnt/public/alias",
            "stat",
            "/mnt/public/alias/secret",
        ],
    );
    assert_eq!(
        lines,
        [
            // The link itself is allowed: it names an allowed path and stays inside the mount.
            "symlink /mnt/public/alias: ok",
            "cat /mnt/public/ok.txt: public",
            "cat /mnt/public/alias/secret: error Permission denied",
            "write /mnt/public/alias/planted: error Permission denied",
            "write /mnt/public/alias/secret: error Permission denied",
            "rm /mnt/public/alias/secret: error Permission denied",
            "ls /mnt/public/alias: error Permission denied",
            "stat /mnt/public/alias/secret: error Permission denied",
        ]
    );
    assert_eq!(fs::read_to_string(scratch.root().join("private/secret")).unwrap(), "private secret");
    assert!(!scratch.root().join("private/planted").exists());
    // The same through the protocol: the host's own guest-filesystem calls are checked alike.
    let read = host.fs(&vm, GuestFilesystemOperation::ReadFile, "/mnt/public/alias/secret", None);
    let ResponsePayload::RejectedResponse(rejected) = read else { panic!("read through the link: {read:?}") };
    assert!(rejected.message.starts_with("EACCES: permission denied, read '/mnt/private/secret'"), "{rejected:?}");
}

#[test]
fn d1_a_guest_cannot_plant_links_that_lead_out_of_the_mount() {
    let scratch = Scratch::new("d1");
    let mut host = host();
    let vm = vm_with_mount(&mut host, &scratch, r#""allow""#);
    let lines = fsops(
        &mut host,
        &vm,
        &[
            "symlink",
            ".",
            "/mnt/dot",
            // Reads as one level up from /mnt (allowed by a depth count on the text), but `dot`
            // is the mount's root, so a host tool following it climbs two levels: out.
            "symlink",
            "dot/../..",
            "/mnt/public/escape",
            "symlink",
            "dot/../../outside/secret",
            "/mnt/escape2",
            "symlink",
            "/etc",
            "/mnt/abs",
            "symlink",
            "../../outside",
            "/mnt/public/up",
            "symlink",
            "..",
            "/mnt/up",
            // Through the `dot` link the real directory is the root: `..` from there leaves.
            "symlink",
            "../x",
            "/mnt/dot/dot/rel",
            // These stay inside and are fine.
            "symlink",
            "../private/secret",
            "/mnt/public/inside",
            "symlink",
            "public/ok.txt",
            "/mnt/ok-link",
            "cat",
            "/mnt/ok-link",
        ],
    );
    assert_eq!(
        lines,
        [
            "symlink /mnt/dot: ok",
            "symlink /mnt/public/escape: error Permission denied",
            "symlink /mnt/escape2: error Permission denied",
            "symlink /mnt/abs: error Permission denied",
            "symlink /mnt/public/up: error Permission denied",
            "symlink /mnt/up: error Permission denied",
            "symlink /mnt/dot/dot/rel: error Permission denied",
            "symlink /mnt/public/inside: ok",
            "symlink /mnt/ok-link: ok",
            "cat /mnt/ok-link: public",
        ]
    );
    assert_eq!(scratch.links_leading_out(), Vec::<String>::new());
    assert_eq!(fs::read_to_string(scratch.base.join("outside/secret")).unwrap(), "outside secret");
}

/// Ends the whole test binary if the test that holds it is still running after `seconds`: a
/// sidecar blocked on a FIFO would otherwise hang the run instead of failing it.
struct Watchdog(Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    fn new(test: &'static str, seconds: u64) -> Watchdog {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::clone(&done);
        std::thread::spawn(move || {
            for _ in 0..seconds * 10 {
                if seen.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!("{test}: still blocked after {seconds} s");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn d4_a_fifo_on_a_mount_is_refused_without_blocking() {
    let _watchdog = Watchdog::new("d4_a_fifo_on_a_mount_is_refused_without_blocking", 60);
    let scratch = Scratch::new("d4");
    let fifo = scratch.root().join("public/fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut host = host();
    let vm = vm_with_mount(&mut host, &scratch, r#""allow""#);
    // A blocked open would hang the test (and, before, the whole sidecar).
    let lines = fsops(&mut host, &vm, &["open", "/mnt/public/fifo", "cat", "/mnt/public/fifo", "ls", "/mnt/public"]);
    assert_eq!(
        lines,
        [
            "open /mnt/public/fifo: error Permission denied",
            "cat /mnt/public/fifo: error Permission denied",
            "ls /mnt/public: fifo ok.txt",
        ]
    );
    let stat = host.fs(&vm, GuestFilesystemOperation::Stat, "/mnt/public/fifo", None);
    let ResponsePayload::GuestFilesystemResultResponse(result) = stat else { panic!("{stat:?}") };
    assert_eq!(result.stat.unwrap().mode & 0o170_000, 0o010_000, "listed as a FIFO");
    // The host's own requests on it are refused at once too.
    for operation in [GuestFilesystemOperation::ReadFile, GuestFilesystemOperation::WriteFile] {
        let answer = host.fs(&vm, operation, "/mnt/public/fifo", Some(b"x"));
        let ResponsePayload::RejectedResponse(rejected) = answer else { panic!("{operation:?}: {answer:?}") };
        assert!(rejected.message.starts_with("EACCES"), "{operation:?}: {rejected:?}");
    }
}

#[test]
fn d6_modes_and_owners_never_give_privilege_on_the_host() {
    let scratch = Scratch::new("d6");
    let mut host = host();
    let vm = vm_with_mount(&mut host, &scratch, r#""allow""#);
    let chmod = GuestFilesystemCallRequest {
        mode: Some(0o6755),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::Chmod, "/mnt/public/ok.txt")
    };
    let frames = host.request(host.scope(&vm), RequestPayload::GuestFilesystemCallRequest(chmod));
    assert!(matches!(response(&frames[0]), ResponsePayload::GuestFilesystemResultResponse(_)), "{frames:?}");
    let mode = fs::metadata(scratch.root().join("public/ok.txt")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid and setgid never reach the host");
    let chown = GuestFilesystemCallRequest {
        uid: Some(0),
        gid: Some(0),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::Chown, "/mnt/public/ok.txt")
    };
    let frames = host.request(host.scope(&vm), RequestPayload::GuestFilesystemCallRequest(chown));
    let ResponsePayload::RejectedResponse(rejected) = response(&frames[0]) else { panic!("{frames:?}") };
    assert!(rejected.message.starts_with("EPERM"), "{rejected:?}");
    // A new file asked for with setuid lands without it.
    let write = GuestFilesystemCallRequest {
        content: Some("x".into()),
        mode: Some(0o4777),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/mnt/public/new")
    };
    let frames = host.request(host.scope(&vm), RequestPayload::GuestFilesystemCallRequest(write));
    assert!(matches!(response(&frames[0]), ResponsePayload::GuestFilesystemResultResponse(_)), "{frames:?}");
    let mode = fs::metadata(scratch.root().join("public/new")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7000, 0, "no setuid on a new host file: {mode:o}");
}

/// The blocks `oom` got before `malloc` failed.
fn oom_blocks(host: &mut Host, vm: &str, process_id: &str) -> u64 {
    started(&host.execute(vm, process_id, "oom", &[]));
    let (stdout, _, code) = outcome(&host.run(process_id));
    assert_eq!(code, 4);
    let text = String::from_utf8(stdout).unwrap();
    text.trim().strip_prefix("allocated ").and_then(|rest| rest.strip_suffix(" blocks")).unwrap().parse().unwrap()
}

/// All guests of all VMs draw their memory from one sidecar budget: each VM allows 64 MiB, the
/// sidecar 16 MiB, so a memory hog stops near 16 MiB, gets less while another VM's guest holds
/// memory, and every byte comes back when guests end.
#[test]
fn guests_of_every_vm_share_the_sidecar_memory_budget() {
    const BUDGET: u64 = 16 << 20;
    let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
    let config = SidecarConfig { max_memory_bytes: BUDGET, ..SidecarConfig::default() };
    let mut host = Host::with_sidecar(Sidecar::new(config).with_guest_engine(engine));
    let roomy = r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxWasmMemoryBytes":67108864}}}"#;
    let (a, b) = (host.vm(roomy), host.vm(roomy));
    let alone = oom_blocks(&mut host, &a, "alone");
    assert!(alone * 64 * 1024 <= BUDGET && alone * 64 * 1024 > BUDGET / 2, "{alone} blocks");
    assert_eq!(host.sidecar.memory_budget().used_bytes(), 0, "an ended guest gives its memory back");
    // Another VM's guest holds its memory (cat waits on stdin) while the hog runs.
    started(&host.execute(&b, "holder", "cat", &[]));
    for _ in 0..4 {
        host.sidecar.tick(host.now);
    }
    let held = host.sidecar.memory_budget().used_bytes();
    assert!(held > 0);
    let shared = oom_blocks(&mut host, &a, "shared");
    assert!(shared < alone, "{shared} blocks with {held} bytes held elsewhere, {alone} alone");
}

/// D8: one `fd_readdir` call returns at most `MAX_DIRENTS_PER_CALL` entries however large the
/// guest's buffer, and stats only those, so a listing of thousands of entries is spread over
/// many calls (and slices). The guest's libc resumes from the cut exactly: `ls` of 300 entries
/// prints every one, once, in order.
#[test]
fn d8_large_listings_come_in_bounded_calls_and_nothing_is_lost() {
    let mut host = Host::new();
    let vm = host.vm(r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#);
    let names: Vec<String> = (0..300).map(|n| format!("entry-{n:04}")).collect();
    host.fs(&vm, GuestFilesystemOperation::Mkdir, "/data", None);
    for name in &names {
        host.write_file(&vm, &format!("/data/{name}"), b"");
    }
    started(&host.execute(&vm, "ls", "ls", &["/data"]));
    let (stdout, stderr, code) = outcome(&host.run("ls"));
    assert_eq!((code, stderr.as_str()), (0, ""));
    let listed: Vec<String> = String::from_utf8(stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(listed, names);
}

/// Ticks once; the events it produced.
fn one_tick(host: &mut Host) -> Vec<EventPayload> {
    host.sidecar.tick(host.now);
    host.drain()
        .into_iter()
        .filter_map(|frame| match frame {
            ProtocolFrame::EventFrame(event) => Some(event.payload),
            _ => None,
        })
        .collect()
}

fn exited(events: &[EventPayload], process_id: &str) -> bool {
    events
        .iter()
        .any(|event| matches!(event, EventPayload::ProcessExitedEvent(exited) if exited.process_id == process_id))
}

fn echoed(events: &[EventPayload], process_id: &str) -> bool {
    events
        .iter()
        .any(|event| matches!(event, EventPayload::ProcessOutputEvent(output) if output.process_id == process_id))
}

/// D3 and D8: kernel work is charged to the guest that causes it. A guest hammering a mount
/// with thousands of cheap calls (each costing almost no instructions of its own) used to do it
/// all in one slice, holding every other VM; now its calls use up its slices, so one tick (16
/// slices) ends long before it does, and another VM's `cat` answers within that tick.
#[test]
fn d3_d8_hammering_a_mount_costs_the_hammering_guest_its_slices() {
    let scratch = Scratch::new("d3d8");
    fs::write(scratch.root().join("public/big"), vec![b'.'; 1 << 20]).unwrap();
    for n in 0..500 {
        fs::write(scratch.root().join(format!("private/entry-{n:03}")), b"").unwrap();
    }
    for (hammer, args) in
        [("pwrites", ["pwrites", "/mnt/public/big", "2000"]), ("lists", ["lists", "/mnt/private", "30"])]
    {
        let mut host = host();
        let a = vm_with_mount(&mut host, &scratch, r#""allow""#);
        let b = host.vm(r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#);
        started(&host.execute(&b, "cat", "cat", &[]));
        one_tick(&mut host);
        let written = host.simple(
            &b,
            RequestPayload::WriteStdinRequest(WriteStdinRequest {
                process_id: "cat".into(),
                chunk: b"ping\n".to_vec(),
            }),
        );
        assert!(matches!(written, ResponsePayload::StdinWrittenResponse(_)), "{written:?}");
        started(&host.execute(&a, hammer, "fsops", &args));
        let events = one_tick(&mut host);
        assert!(echoed(&events, "cat"), "{hammer}: the other VM answered within the tick");
        assert!(!exited(&events, hammer), "{hammer}: the hammering guest paid for its calls with its slices");
        let mut ticks = 1;
        while !exited(&one_tick(&mut host), hammer) {
            ticks += 1;
            assert!(ticks < 10_000, "{hammer} never finished");
        }
    }
}

/// Writes on a mount are positional and need only write permission: a write-only policy lets a
/// guest write a mounted file it cannot read (a write used to read the whole file back first).
#[test]
fn a_write_only_policy_writes_a_mounted_file_it_cannot_read() {
    let scratch = Scratch::new("write-only");
    let mut host = host();
    let policy = r#"{"default":"allow","rules":[{"mode":"deny","operations":["read"],"paths":["/mnt/**"]}]}"#;
    let vm = vm_with_mount(&mut host, &scratch, policy);
    let lines = fsops(
        &mut host,
        &vm,
        &[
            "write",
            "/mnt/public/ok.txt",
            "written blind",
            "append",
            "/mnt/public/ok.txt",
            "!",
            "cat",
            "/mnt/public/ok.txt",
        ],
    );
    assert_eq!(
        lines,
        [
            "write /mnt/public/ok.txt: ok",
            "write /mnt/public/ok.txt: ok",
            "cat /mnt/public/ok.txt: error Permission denied",
        ]
    );
    assert_eq!(fs::read_to_string(scratch.root().join("public/ok.txt")).unwrap(), "written blind!");
}
