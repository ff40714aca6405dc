//! The original's command packages (`@agentos-software/*` from npm), run unchanged through the
//! protocol: the real shell (brush), coreutils, sed, awk, find and xargs, loaded with
//! ConfigureVm `software`. The packages are installed once per machine by
//! `scripts/fetch-packages.sh` (through `testkit::packages`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use client::Client;
use kernel::host::package::PackageSource;
use schema::wire::*;
use testkit::packages::{self, PACKAGES};
use transport::packages::OsPackages;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

/// One VM with every package loaded.
pub(crate) struct Vm {
    sidecar: Client,
    scope: OwnershipScope,
    next_process: u32,
}

/// What a command did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) exit_code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Vm {
    pub(crate) fn start() -> Vm {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with more arguments for the binary.
    pub(crate) fn start_with(args: &[&str]) -> Vm {
        let mut sidecar = Client::spawn(binary(), &[&["--seed", "5"], args].concat()).unwrap();
        // A cold compile of a large program (the Python interpreter) takes minutes.
        sidecar.timeout = Duration::from_secs(900);
        let auth = sidecar.authenticate("it", "token").unwrap();
        let conn = auth.connection_id;
        let session = sidecar.open_session(&conn).unwrap();
        let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow","env":"allow"}}"#;
        let vm = sidecar.create_vm(&conn, &session, config).unwrap();
        let scope = OwnershipScope::vm(conn, session, vm);
        let software = PACKAGES
            .iter()
            .map(|name| SoftwareDescriptor {
                package_name: format!("@agentos-software/{name}"),
                root: packages::root(name),
            })
            .collect();
        let configure =
            ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(vec![MountDescriptor::memory("/data")]) };
        let configured = sidecar.request(scope.clone(), RequestPayload::ConfigureVmRequest(configure)).unwrap();
        assert!(
            matches!(
                configured,
                ResponsePayload::VmConfiguredResponse(VmConfiguredResponse { applied_software: 8, .. })
            ),
            "{configured:?}"
        );
        Vm { sidecar, scope, next_process: 0 }
    }

    pub(crate) fn write(&mut self, path: &str, content: &str) {
        let request = GuestFilesystemCallRequest {
            content: Some(base64::engine::general_purpose::STANDARD.encode(content)),
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, path)
        };
        let answer = self.sidecar.request(self.scope.clone(), RequestPayload::GuestFilesystemCallRequest(request));
        assert!(matches!(answer, Ok(ResponsePayload::GuestFilesystemResultResponse(_))), "{answer:?}");
    }

    pub(crate) fn read(&mut self, path: &str) -> String {
        let request = GuestFilesystemCallRequest::new(GuestFilesystemOperation::ReadFile, path);
        match self.sidecar.request(self.scope.clone(), RequestPayload::GuestFilesystemCallRequest(request)) {
            Ok(ResponsePayload::GuestFilesystemResultResponse(result)) => {
                let content = result.content.unwrap_or_default();
                match result.encoding {
                    Some(RootFilesystemEntryEncoding::Base64) => {
                        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(content).unwrap()).unwrap()
                    }
                    _ => content,
                }
            }
            other => panic!("{other:?}"),
        }
    }

    /// Runs `command args` to its exit.
    pub(crate) fn run(&mut self, command: &str, args: &[&str]) -> Run {
        self.next_process += 1;
        let id = format!("p{}", self.next_process);
        let request = ExecuteRequest::command(&id, command, args.iter().map(|arg| (*arg).to_owned()));
        let started = self.sidecar.request(self.scope.clone(), RequestPayload::ExecuteRequest(request)).unwrap();
        assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{command}: {started:?}");
        // Nothing to read: end of input (a quick command may be gone already, which is fine).
        let close = CloseStdinRequest { process_id: id.clone() };
        let _ = self.sidecar.request(self.scope.clone(), RequestPayload::CloseStdinRequest(close));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let exit_code = loop {
            match self.sidecar.next_event(Duration::from_secs(120)).unwrap().payload {
                EventPayload::ProcessOutputEvent(event) if event.process_id == id => match event.channel {
                    StreamChannel::Stdout => stdout.extend_from_slice(&event.chunk),
                    StreamChannel::Stderr => stderr.extend_from_slice(&event.chunk),
                },
                EventPayload::ProcessExitedEvent(event) if event.process_id == id => break event.exit_code,
                _ => {}
            }
        };
        let run = Run {
            exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        eprintln!("{command} {args:?} -> {run:?}");
        run
    }

    pub(crate) fn sh(&mut self, script: &str) -> Run {
        self.run("sh", &["-c", script])
    }
}

#[test]
fn the_installed_packages_parse_and_every_command_is_a_webassembly_module() {
    let source = OsPackages::new();
    let mut commands = 0;
    for name in PACKAGES {
        let package = source.open(&packages::root(name)).unwrap();
        assert_eq!(package.name, name);
        for command in &package.commands {
            let entry = package.entry(&format!("/{}", command.entry)).unwrap();
            assert!(package.read(entry, 0, 4).unwrap().starts_with(b"\0asm"), "{name}: {}", command.name);
        }
        commands += package.commands.len();
    }
    let coreutils = source.open(&packages::root("coreutils")).unwrap();
    assert_eq!(coreutils.commands.len(), 118);
    assert!(Arc::ptr_eq(&coreutils, &source.open(&packages::root("coreutils")).unwrap()));
    assert!(commands > 118, "{commands}");
}

#[test]
fn the_real_shell_and_coreutils_run_unchanged() {
    let mut vm = Vm::start();
    let run = vm.sh("echo hello | tr a-z A-Z");
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "HELLO\n"), "{run:?}");

    let run = vm.sh("printf 'b\\na\\n' | sort");
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "a\nb\n"), "{run:?}");

    vm.write("/data/note.txt", "written by the host\n");
    let run = vm.run("cat", &["/data/note.txt"]);
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "written by the host\n"), "{run:?}");

    let run = vm.sh("seq 1 20 | sed /5/d | sort -rn | head -n 3 | tr '\\n' ' '");
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "20 19 18 "), "{run:?}");

    // `yes` ends by SIGPIPE when `head` is done, quietly, as on Linux.
    let run = vm.sh("yes | head -n 2");
    assert_eq!((run.exit_code, run.stdout.as_str(), run.stderr.as_str()), (0, "y\ny\n", ""), "{run:?}");

    let run = vm.sh("exit 3");
    assert_eq!(run.exit_code, 3, "{run:?}");
    let run = vm.run("false", &[]);
    assert_eq!(run.exit_code, 1, "{run:?}");
    let run = vm.sh("no-such-command");
    assert_eq!(run.exit_code, 127, "{run:?}");
    assert!(run.stderr.contains("no-such-command"), "{run:?}");

    let run = vm.run("ls", &["-la", "/"]);
    assert_eq!(run.exit_code, 0, "{run:?}");
    for name in ["etc", "tmp", "home", "opt", "data"] {
        assert!(run.stdout.lines().any(|line| line.ends_with(&format!(" {name}"))), "{name} in {}", run.stdout);
    }

    vm.write("/data/a.txt", "one\ntwo\n");
    let run = vm.run("mkdir", &["-p", "/data/sub"]);
    assert_eq!(run.exit_code, 0, "{run:?}");
    vm.write("/data/sub/b.txt", "three\n");
    vm.write("/data/c.md", "not counted\n");
    let run = vm.sh("find /data -name '*.txt' | sort | xargs wc -l");
    assert_eq!(run.exit_code, 0, "{run:?}");
    let counts: BTreeMap<&str, &str> = run
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().collect::<Vec<_>>().get(..2).map(|pair| (pair[1], pair[0])))
        .collect();
    assert_eq!(counts.get("/data/a.txt"), Some(&"2"), "{run:?}");
    assert_eq!(counts.get("/data/sub/b.txt"), Some(&"1"), "{run:?}");
    assert_eq!(counts.get("/data/note.txt"), Some(&"1"), "{run:?}");
    assert_eq!(counts.get("total"), Some(&"4"), "{run:?}");
    assert!(!run.stdout.contains("c.md"), "{run:?}");

    vm.write("/data/edit.txt", "alpha beta\ngamma\n");
    let run = vm.run("sed", &["-i", "s/beta/BETA/", "/data/edit.txt"]);
    assert_eq!(run.exit_code, 0, "{run:?}");
    assert_eq!(vm.read("/data/edit.txt"), "alpha BETA\ngamma\n");
    let run = vm.sh("awk '{ print NR \": \" $1 }' /data/edit.txt > /data/edit.tmp && mv /data/edit.tmp /data/edit.txt");
    assert_eq!(run.exit_code, 0, "{run:?}");
    assert_eq!(vm.read("/data/edit.txt"), "1: alpha\n2: gamma\n");
}

#[test]
fn a_cat_in_another_vm_answers_while_sh_compiles_for_the_first_time() {
    // An empty module cache: `sh` (3 MB of WebAssembly) compiles from scratch, for seconds.
    let cache = std::env::temp_dir().join(format!("sidecar-it-cold-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let mut sidecar = Client::spawn(binary(), &["--module-cache-dir", cache.to_str().unwrap()]).unwrap();
    let conn = sidecar.authenticate("it", "token").unwrap().connection_id;
    let session = sidecar.open_session(&conn).unwrap();
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;
    let vm_b = OwnershipScope::vm(conn.clone(), session.clone(), sidecar.create_vm(&conn, &session, config).unwrap());
    let vm_a = OwnershipScope::vm(conn.clone(), session.clone(), sidecar.create_vm(&conn, &session, config).unwrap());
    let cat = std::fs::read(format!("{}/../runtime-wasm/fixtures/c/cat.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let write = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(cat)),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/bin/cat")
    };
    sidecar.request(vm_b.clone(), RequestPayload::GuestFilesystemCallRequest(write)).unwrap();
    let execute = |id: &str, command: &str, args: &[&str]| {
        RequestPayload::ExecuteRequest(ExecuteRequest::command(id, command, args.iter().map(|a| (*a).to_owned())))
    };
    let started = sidecar.request(vm_b.clone(), execute("cat", "cat", &[])).unwrap();
    assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
    let software = vec![SoftwareDescriptor { package_name: "coreutils".into(), root: packages::root("coreutils") }];
    let configure = ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(Vec::new()) };
    sidecar.request(vm_a.clone(), RequestPayload::ConfigureVmRequest(configure)).unwrap();

    // `sh` starts compiling; its answer comes when it has.
    let sh_request = sidecar.next_request_id();
    sidecar
        .send_frame(&ProtocolFrame::RequestFrame(RequestFrame {
            schema: ProtocolSchema::current(),
            request_id: sh_request,
            ownership: vm_a.clone(),
            payload: execute("sh", "sh", &["-c", "echo compiled"]),
        }))
        .unwrap();
    // Meanwhile the cat in the other VM answers: a stdin write is accepted and echoed. (Were
    // the loop compiling, `sh`'s answer would come first and `request` would drop it, so the
    // wait for it below would time out.)
    let written = sidecar
        .request(
            vm_b.clone(),
            RequestPayload::WriteStdinRequest(WriteStdinRequest {
                process_id: "cat".into(),
                chunk: b"ping\n".to_vec(),
            }),
        )
        .unwrap();
    assert!(matches!(written, ResponsePayload::StdinWrittenResponse(_)), "{written:?}");
    let echoed = loop {
        match sidecar.next_event(Duration::from_secs(30)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.process_id == "cat" => break event.chunk,
            _ => {}
        }
    };
    assert_eq!(echoed, b"ping\n");
    let sh_started = sidecar.wait_response(sh_request).unwrap();
    assert!(matches!(sh_started.payload, ResponsePayload::ProcessStartedResponse(_)), "{sh_started:?}");
    let output = loop {
        match sidecar.next_event(Duration::from_secs(60)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.process_id == "sh" => break event.chunk,
            _ => {}
        }
    };
    assert_eq!(output, b"compiled\n");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_damaged_module_cache_is_compiled_again() {
    let cache = std::env::temp_dir().join(format!("sidecar-it-damaged-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let run_echo = |cache: &Path| {
        let mut sidecar = Client::spawn(binary(), &["--module-cache-dir", cache.to_str().unwrap()]).unwrap();
        let conn = sidecar.authenticate("it", "token").unwrap().connection_id;
        let session = sidecar.open_session(&conn).unwrap();
        let config = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;
        let vm = OwnershipScope::vm(conn.clone(), session.clone(), sidecar.create_vm(&conn, &session, config).unwrap());
        let software = vec![SoftwareDescriptor { package_name: "coreutils".into(), root: packages::root("coreutils") }];
        let configure = ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(Vec::new()) };
        sidecar.request(vm.clone(), RequestPayload::ConfigureVmRequest(configure)).unwrap();
        let execute = ExecuteRequest::command("e", "echo", ["cached?"]);
        sidecar.request(vm, RequestPayload::ExecuteRequest(execute)).unwrap();
        let output = loop {
            match sidecar.next_event(Duration::from_secs(60)).unwrap().payload {
                EventPayload::ProcessOutputEvent(event) if event.process_id == "e" => break event.chunk,
                _ => {}
            }
        };
        assert_eq!(output, b"cached?\n");
        assert!(sidecar.close().unwrap().success());
    };
    run_echo(&cache);
    // Every cached file cut in half, and one replaced by garbage: a cache miss, not a crash.
    let mut damaged = 0;
    let mut pending = vec![cache.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let damage = if damaged == 0 { b"not a module".to_vec() } else { bytes[..bytes.len() / 2].to_vec() };
                std::fs::write(&path, damage).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "the first run left compiled modules in {}", cache.display());
    run_echo(&cache);
    let _ = std::fs::remove_dir_all(&cache);
}
