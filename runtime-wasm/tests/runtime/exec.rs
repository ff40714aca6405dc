//! End-to-end execution through the protocol: a kernel `Sidecar` with the wasmtime engine,
//! driven with frames and a manual clock, running the C fixtures as commands.

use std::sync::Arc;

use base64::Engine as _;
use kernel::{Now, Sidecar, SidecarConfig, StreamId};
use runtime_wasm::{RuntimeConfig, WasmEngine, MAX_CACHED_PROGRAMS, MAX_STACK_LIMIT_ENGINES};
use schema::wire::*;
use schema::{decode_frame, encode_frame};

use crate::support::c_fixture;

/// Every permission granted; commands in `/bin`.
const OPEN_VM: &str = r#"{"permissions":{"fs":"allow","env":"allow","childProcess":"allow","process":"allow"}}"#;
/// Ticks `run` drives at most, so a stuck scheduler fails instead of hanging.
const MAX_TICKS: usize = 100_000;

/// A host speaking frames to an in-process kernel.
pub(crate) struct Host {
    pub(crate) sidecar: Sidecar,
    stream: StreamId,
    pub(crate) now: Now,
    next_id: i64,
    conn: String,
    session: String,
}

impl Host {
    pub(crate) fn new() -> Host {
        let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
        Host::with_engine(engine)
    }

    /// A host whose kernel carries connections out (the test performs the network effects).
    pub(crate) fn with_egress() -> Host {
        let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
        Host::with_sidecar(Sidecar::new(SidecarConfig::default()).with_guest_engine(engine).with_egress())
    }

    fn with_engine(engine: Arc<WasmEngine>) -> Host {
        Host::with_sidecar(Sidecar::new(SidecarConfig::default()).with_guest_engine(engine))
    }

    /// A host of `sidecar` (which must have a guest engine), authenticated with a session open.
    pub(crate) fn with_sidecar(mut sidecar: Sidecar) -> Host {
        let stream = sidecar.open_stream().unwrap();
        let mut host = Host {
            sidecar,
            stream,
            now: Now::from_millis(1_000, 1_700_000_000_000),
            next_id: 0,
            conn: String::new(),
            session: String::new(),
        };
        let frames = host.request(OwnershipScope::connection("hint"), testkit::requests::authenticate("token"));
        let ResponsePayload::AuthenticatedResponse(auth) = response(&frames[0]) else { panic!("{frames:?}") };
        host.conn = auth.connection_id.clone();
        let frames = host.request(OwnershipScope::connection(host.conn.clone()), testkit::requests::open_session());
        let ResponsePayload::SessionOpenedResponse(opened) = response(&frames[0]) else { panic!("{frames:?}") };
        host.session = opened.session_id.clone();
        host
    }

    pub(crate) fn request(&mut self, ownership: OwnershipScope, payload: RequestPayload) -> Vec<ProtocolFrame> {
        self.next_id += 1;
        let frame = ProtocolFrame::RequestFrame(RequestFrame {
            schema: ProtocolSchema::current(),
            request_id: self.next_id,
            ownership,
            payload,
        });
        // Through the codec, both ways, as a real host would.
        let bytes = encode_frame(&frame, usize::MAX).unwrap();
        self.sidecar.handle_bytes(self.stream, &bytes, self.now);
        self.drain()
    }

    pub(crate) fn drain(&mut self) -> Vec<ProtocolFrame> {
        let mut frames = Vec::new();
        while let Some(output) = self.sidecar.poll_output() {
            frames.push(decode_frame(&output.bytes, usize::MAX).unwrap());
        }
        frames
    }

    pub(crate) fn vm(&mut self, config: &str) -> String {
        let frames = self.request(
            OwnershipScope::session(self.conn.clone(), self.session.clone()),
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::WebAssembly,
                config: config.into(),
            }),
        );
        let ResponsePayload::VmCreatedResponse(created) = response(&frames[0]) else { panic!("{frames:?}") };
        let vm = created.vm_id.clone();
        for command in
            ["cat", "spin", "oom", "write_file", "read_file", "ls", "sleep_ms", "stderr_mix", "env", "exit3", "fsops"]
        {
            self.write_file(&vm, &format!("/bin/{command}"), &c_fixture(command));
        }
        vm
    }

    pub(crate) fn scope(&self, vm: &str) -> OwnershipScope {
        OwnershipScope::vm(self.conn.clone(), self.session.clone(), vm.to_owned())
    }

    pub(crate) fn fs(
        &mut self,
        vm: &str,
        operation: GuestFilesystemOperation,
        path: &str,
        content: Option<&[u8]>,
    ) -> ResponsePayload {
        let request = GuestFilesystemCallRequest {
            content: content.map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            recursive: true,
            ..GuestFilesystemCallRequest::new(operation, path)
        };
        let frames = self.request(self.scope(vm), RequestPayload::GuestFilesystemCallRequest(request));
        response(&frames[0]).clone()
    }

    pub(crate) fn write_file(&mut self, vm: &str, path: &str, bytes: &[u8]) {
        let result = self.fs(vm, GuestFilesystemOperation::WriteFile, path, Some(bytes));
        assert!(matches!(result, ResponsePayload::GuestFilesystemResultResponse(_)), "{result:?}");
    }

    pub(crate) fn read_file(&mut self, vm: &str, path: &str) -> Option<Vec<u8>> {
        match self.fs(vm, GuestFilesystemOperation::ReadFile, path, None) {
            ResponsePayload::GuestFilesystemResultResponse(result) => {
                Some(base64::engine::general_purpose::STANDARD.decode(result.content.unwrap()).unwrap())
            }
            _ => None,
        }
    }

    pub(crate) fn execute(&mut self, vm: &str, process_id: &str, command: &str, args: &[&str]) -> ResponsePayload {
        self.execute_with(vm, process_id, command, args, None)
    }

    pub(crate) fn execute_with(
        &mut self,
        vm: &str,
        process_id: &str,
        command: &str,
        args: &[&str],
        tier: Option<WasmPermissionTier>,
    ) -> ResponsePayload {
        let frames = self.request(
            self.scope(vm),
            RequestPayload::ExecuteRequest(ExecuteRequest {
                wasm_permission_tier: tier,
                ..ExecuteRequest::command(process_id, command, args.iter().copied())
            }),
        );
        assert_eq!(frames.len(), 1, "events never precede the response: {frames:?}");
        response(&frames[0]).clone()
    }

    pub(crate) fn simple(&mut self, vm: &str, payload: RequestPayload) -> ResponsePayload {
        let frames = self.request(self.scope(vm), payload);
        response(&frames[0]).clone()
    }

    /// Ticks (the clock still) until `process_id` exits; returns the events seen.
    pub(crate) fn run(&mut self, process_id: &str) -> Vec<EventPayload> {
        let mut events = Vec::new();
        for _ in 0..MAX_TICKS {
            self.sidecar.tick(self.now);
            for frame in self.drain() {
                let ProtocolFrame::EventFrame(event) = frame else { panic!("unexpected {frame:?}") };
                let done = matches!(&event.payload, EventPayload::ProcessExitedEvent(exited) if exited.process_id == process_id);
                events.push(event.payload);
                if done {
                    return events;
                }
            }
        }
        panic!("{process_id} did not exit within {MAX_TICKS} ticks; events: {events:?}");
    }
}

pub(crate) fn response(frame: &ProtocolFrame) -> &ResponsePayload {
    match frame {
        ProtocolFrame::ResponseFrame(response) => &response.payload,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// (stdout, stderr, exit code) from a process's events.
pub(crate) fn outcome(events: &[EventPayload]) -> (Vec<u8>, String, i32) {
    let (mut stdout, mut stderr, mut code) = (Vec::new(), Vec::new(), None);
    for event in events {
        match event {
            EventPayload::ProcessOutputEvent(output) if output.channel == StreamChannel::Stdout => {
                stdout.extend_from_slice(&output.chunk)
            }
            EventPayload::ProcessOutputEvent(output) => stderr.extend_from_slice(&output.chunk),
            EventPayload::ProcessExitedEvent(exited) => code = Some(exited.exit_code),
            _ => {}
        }
    }
    (stdout, String::from_utf8_lossy(&stderr).into_owned(), code.unwrap())
}

pub(crate) fn started(payload: &ResponsePayload) -> u32 {
    match payload {
        ResponsePayload::ProcessStartedResponse(started) => started.pid.unwrap(),
        other => panic!("not started: {other:?}"),
    }
}

pub(crate) fn rejected(payload: &ResponsePayload) -> (String, String) {
    match payload {
        ResponsePayload::RejectedResponse(rejected) => (rejected.code.clone(), rejected.message.clone()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn write_stdin(host: &mut Host, vm: &str, process_id: &str, chunk: &[u8]) -> ResponsePayload {
    host.simple(
        vm,
        RequestPayload::WriteStdinRequest(WriteStdinRequest { process_id: process_id.into(), chunk: chunk.to_vec() }),
    )
}

fn close_stdin(host: &mut Host, vm: &str, process_id: &str) -> ResponsePayload {
    host.simple(vm, RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: process_id.into() }))
}

fn kill(host: &mut Host, vm: &str, process_id: &str, signal: &str) -> ResponsePayload {
    kill_frames(host, vm, process_id, signal).remove(0)
}

/// The frames a `KillProcess` produced, the response first, as payloads.
fn kill_frames(host: &mut Host, vm: &str, process_id: &str, signal: &str) -> Vec<ResponsePayload> {
    let request = KillProcessRequest { process_id: process_id.into(), signal: signal.into() };
    let frames = host.request(host.scope(vm), RequestPayload::KillProcessRequest(request));
    frames
        .into_iter()
        .map(|frame| match frame {
            ProtocolFrame::ResponseFrame(response) => response.payload,
            ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(exited), .. }) => {
                // Exits are returned as a fake rejection to keep one list: code "exit".
                ResponsePayload::RejectedResponse(RejectedResponse {
                    code: "exit".into(),
                    message: format!("{} {}", exited.process_id, exited.exit_code),
                })
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The `cat` conversation: chunked stdin, closed, output and exit.
fn cat_conversation(host: &mut Host) -> Vec<EventPayload> {
    let vm = host.vm(OPEN_VM);
    assert_eq!(started(&host.execute(&vm, "p1", "cat", &[])), 1);
    let mut events = Vec::new();
    for chunk in [&b"hello "[..], b"wor", b"ld\nsecond line\n", b"no newline at the end"] {
        let accepted = write_stdin(host, &vm, "p1", chunk);
        assert_eq!(
            accepted,
            ResponsePayload::StdinWrittenResponse(StdinWrittenResponse {
                process_id: "p1".into(),
                accepted_bytes: chunk.len() as u64
            })
        );
        // Let the guest read what is there before the next chunk.
        for _ in 0..4 {
            host.sidecar.tick(host.now);
            events.extend(host.drain().into_iter().map(|frame| match frame {
                ProtocolFrame::EventFrame(event) => event.payload,
                other => panic!("unexpected {other:?}"),
            }));
        }
    }
    assert!(matches!(close_stdin(host, &vm, "p1"), ResponsePayload::StdinClosedResponse(_)));
    events.extend(host.run("p1"));
    events
}

#[test]
fn cat_echoes_chunked_stdin_then_exits_zero() {
    let mut host = Host::new();
    let events = cat_conversation(&mut host);
    let (stdout, stderr, code) = outcome(&events);
    assert_eq!(stdout, b"hello world\nsecond line\nno newline at the end");
    assert_eq!(stderr, "");
    assert_eq!(code, 0);
    assert!(matches!(events.last(), Some(EventPayload::ProcessExitedEvent(_))));
    // Output is line-buffered: complete lines first, the unterminated tail at exit.
    let chunks: Vec<&[u8]> = events
        .iter()
        .filter_map(|event| match event {
            EventPayload::ProcessOutputEvent(output) => Some(&output.chunk[..]),
            _ => None,
        })
        .collect();
    // "hello " and "wor" wait for their newline; "ld\nsecond line\n" completes two lines at once.
    assert_eq!(chunks, [&b"hello world\nsecond line\n"[..], b"no newline at the end"]);
}

#[test]
fn the_same_exec_twice_gives_identical_events() {
    let first = cat_conversation(&mut Host::new());
    let second = cat_conversation(&mut Host::new());
    assert_eq!(first, second);
    let spin = |host: &mut Host| {
        let vm = host.vm(
            r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxWasmFuel":3000000}}}"#,
        );
        started(&host.execute(&vm, "s", "stderr_mix", &[]));
        let mut events = host.run("s");
        started(&host.execute(&vm, "t", "spin", &[]));
        events.extend(host.run("t"));
        events
    };
    assert_eq!(spin(&mut Host::new()), spin(&mut Host::new()));
}

#[test]
fn an_infinite_loop_is_stopped_by_the_fuel_limit() {
    let mut host = Host::new();
    let vm = host
        .vm(r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxWasmFuel":5000000}}}"#);
    started(&host.execute(&vm, "spin", "spin", &[]));
    let (stdout, stderr, code) = outcome(&host.run("spin"));
    assert_eq!(stdout, b"");
    assert_eq!(code, 124);
    assert!(stderr.contains("fuel budget exhausted (max_wasm_fuel = 5000000)"), "{stderr}");
}

#[test]
fn a_memory_hog_is_stopped_by_the_memory_limit() {
    let mut host = Host::new();
    let vm = host.vm(
        r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxWasmMemoryBytes":4194304}}}"#,
    );
    // malloc fails inside the limit: the C program sees it and exits on its own terms.
    started(&host.execute(&vm, "oom", "oom", &[]));
    let (stdout, _, code) = outcome(&host.run("oom"));
    let blocks: u32 = String::from_utf8(stdout)
        .unwrap()
        .trim()
        .trim_start_matches("allocated ")
        .trim_end_matches(" blocks")
        .parse()
        .unwrap();
    assert_eq!(code, 4);
    assert!(blocks > 0 && blocks < 64, "{blocks} blocks of 64 KiB in 4 MiB");
    // A guest that traps when growth is refused is reported with the limit.
    host.write_file(&vm, "/bin/memhog", &crate::support::wat_fixture("memhog"));
    started(&host.execute(&vm, "hog", "memhog", &[]));
    let (_, stderr, code) = outcome(&host.run("hog"));
    assert_eq!(code, 134);
    assert!(stderr.contains("memory limit exceeded") && stderr.contains("limit 4194304 bytes"), "{stderr}");
}

#[test]
fn kill_ends_a_running_guest_while_other_vms_keep_working() {
    let mut host = Host::new();
    let busy = host.vm(OPEN_VM);
    let other = host.vm(OPEN_VM);
    started(&host.execute(&busy, "a", "spin", &[]));
    started(&host.execute(&busy, "b", "spin", &[]));
    started(&host.execute(&other, "cat", "cat", &[]));
    for _ in 0..5 {
        host.sidecar.tick(host.now);
    }
    host.drain();
    // The other VM is served while the spinners run.
    write_stdin(&mut host, &other, "cat", b"ping\n");
    close_stdin(&mut host, &other, "cat");
    let (stdout, _, code) = outcome(&host.run("cat"));
    assert_eq!((stdout.as_slice(), code), (&b"ping\n"[..], 0));

    // The response first, then the exit the signal caused.
    for (process_id, signal, exit) in [("a", "SIGKILL", "a 137"), ("b", "term", "b 143")] {
        let frames = kill_frames(&mut host, &busy, process_id, signal);
        assert!(
            matches!(&frames[0], ResponsePayload::ProcessKilledResponse(killed) if killed.process_id == process_id)
        );
        assert_eq!(rejected(&frames[1]), ("exit".to_owned(), exit.to_owned()));
        assert_eq!(frames.len(), 2);
    }
    // Gone: further signals are refused, and the scheduler has nothing left to run.
    let (code, message) = rejected(&kill(&mut host, &busy, "a", "SIGKILL"));
    assert_eq!(code, "invalid_state");
    assert_eq!(message, format!("VM {busy} has no active process a"));
    let (code, message) = rejected(&kill(&mut host, &busy, "a", "SIGNOPE"));
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "unsupported kill_process signal SIGNOPE"));
}

#[test]
fn stop_and_continue_pause_a_guest() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    started(&host.execute(&vm, "cat", "cat", &[]));
    kill(&mut host, &vm, "cat", "SIGSTOP");
    let snapshot = host.simple(&vm, RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = snapshot else { panic!("{snapshot:?}") };
    assert_eq!(snapshot.processes.len(), 1);
    let entry = &snapshot.processes[0];
    assert_eq!((entry.pid, entry.ppid, entry.pgid, entry.sid), (1, 0, 1, 1));
    assert_eq!(entry.status, ProcessSnapshotStatus::Stopped);
    assert_eq!(entry.driver, "secure-exec-sidecar-execution");
    write_stdin(&mut host, &vm, "cat", b"x\n");
    close_stdin(&mut host, &vm, "cat");
    for _ in 0..20 {
        host.sidecar.tick(host.now);
    }
    assert_eq!(host.drain(), [], "a stopped guest does not run");
    kill(&mut host, &vm, "cat", "SIGCONT");
    let (stdout, _, code) = outcome(&host.run("cat"));
    assert_eq!((stdout.as_slice(), code), (&b"x\n"[..], 0));
    let snapshot = host.simple(&vm, RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = snapshot else { panic!("{snapshot:?}") };
    assert_eq!(snapshot.processes[0].status, ProcessSnapshotStatus::Exited);
    assert_eq!(snapshot.processes[0].exit_code, Some(0));
    // Retained for two seconds, then forgotten.
    host.now.monotonic_ms += 2_000;
    host.sidecar.tick(host.now);
    let snapshot = host.simple(&vm, RequestPayload::GetProcessSnapshotRequest);
    assert_eq!(snapshot, ResponsePayload::ProcessSnapshotResponse(ProcessSnapshotResponse { processes: vec![] }));
    let zombies = host.simple(&vm, RequestPayload::GetZombieTimerCountRequest);
    assert_eq!(zombies, ResponsePayload::ZombieTimerCountResponse(ZombieTimerCountResponse { count: 0 }));
}

#[test]
fn files_written_by_a_full_tier_command_are_visible_to_the_host() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    started(&host.execute(&vm, "w", "write_file", &["/tmp/out.txt", "from the guest"]));
    let (_, stderr, code) = outcome(&host.run("w"));
    assert_eq!((stderr.as_str(), code), ("", 0));
    assert_eq!(host.read_file(&vm, "/tmp/out.txt").unwrap(), b"from the guest\n");
    started(&host.execute(&vm, "r", "read_file", &["/tmp/out.txt"]));
    let (stdout, _, code) = outcome(&host.run("r"));
    assert_eq!((stdout.as_slice(), code), (&b"from the guest\n"[..], 0));
    host.fs(&vm, GuestFilesystemOperation::Mkdir, "/tmp/dir", None);
    host.write_file(&vm, "/tmp/dir/b", b"");
    host.write_file(&vm, "/tmp/dir/a", b"");
    started(&host.execute(&vm, "ls", "ls", &["/tmp/dir"]));
    let (stdout, _, code) = outcome(&host.run("ls"));
    assert_eq!((stdout.as_slice(), code), (&b"a\nb\n"[..], 0));
}

#[test]
fn a_read_only_command_cannot_write() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/tmp/existing.txt", b"old\n");
    started(&host.execute_with(&vm, "w", "write_file", &["/tmp/new.txt", "x"], Some(WasmPermissionTier::ReadOnly)));
    let (_, stderr, code) = outcome(&host.run("w"));
    assert_eq!(code, 1);
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert_eq!(host.read_file(&vm, "/tmp/new.txt"), None);
    started(&host.execute_with(
        &vm,
        "o",
        "write_file",
        &["/tmp/existing.txt", "x"],
        Some(WasmPermissionTier::ReadOnly),
    ));
    let (_, _, code) = outcome(&host.run("o"));
    assert_eq!(code, 1);
    assert_eq!(host.read_file(&vm, "/tmp/existing.txt").unwrap(), b"old\n");
    // Reading is still allowed.
    started(&host.execute_with(&vm, "r", "read_file", &["/tmp/existing.txt"], Some(WasmPermissionTier::ReadOnly)));
    let (stdout, _, code) = outcome(&host.run("r"));
    assert_eq!((stdout.as_slice(), code), (&b"old\n"[..], 0));
}

#[test]
fn command_permissions_set_the_tier_and_isolated_sees_no_filesystem() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/tmp/secret.txt", b"secret\n");
    let configured = host.simple(
        &vm,
        RequestPayload::ConfigureVmRequest(ConfigureVmRequest {
            command_permissions: [("read_file".to_owned(), WasmPermissionTier::Isolated)].into(),
            ..ConfigureVmRequest::mounts(vec![])
        }),
    );
    assert!(matches!(configured, ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    started(&host.execute(&vm, "r", "read_file", &["/tmp/secret.txt"]));
    let (stdout, stderr, code) = outcome(&host.run("r"));
    assert_eq!((stdout.as_slice(), code), (&b""[..], 1));
    assert!(stderr.starts_with("read_file: /tmp/secret.txt: "), "{stderr}");
    started(&host.execute(&vm, "ls", "ls", &["/"]));
    let (_, _, code) = outcome(&host.run("ls"));
    assert_eq!(code, 0, "ls is FULL: only read_file was isolated");
}

#[test]
fn a_sleeping_guest_wakes_on_the_virtual_clock() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    started(&host.execute(&vm, "z", "sleep_ms", &["250"]));
    for _ in 0..10 {
        host.sidecar.tick(host.now);
    }
    assert_eq!(host.drain(), [], "nothing happens before the clock moves");
    assert_eq!(host.sidecar.next_deadline(), Some(host.now.monotonic_ms + 250));
    host.now.monotonic_ms += 250;
    host.now.wall_ms += 250;
    let (stdout, _, code) = outcome(&host.run("z"));
    assert_eq!((stdout.as_slice(), code), (&b"slept 250\n"[..], 0));
}

#[test]
fn execute_rejections_follow_the_original() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    let (code, message) = rejected(&host.execute(&vm, "x", "nope", &[]));
    assert_eq!((code.as_str(), message.as_str()), ("invalid_state", "command not found on native sidecar path: nope"));
    started(&host.execute(&vm, "dup", "cat", &[]));
    let (code, message) = rejected(&host.execute(&vm, "dup", "cat", &[]));
    assert_eq!(code, "invalid_state");
    assert_eq!(message, format!("VM {vm} already has an active process with id dup"));
    close_stdin(&mut host, &vm, "dup");
    assert!(matches!(close_stdin(&mut host, &vm, "dup"), ResponsePayload::StdinClosedResponse(_)), "idempotent");
    let (code, message) = rejected(&write_stdin(&mut host, &vm, "dup", b"late"));
    assert_eq!((code.as_str(), message.as_str()), ("execution_error", "guest WebAssembly stdin is already closed"));
    host.run("dup");
    // The id is free again once the process exited.
    started(&host.execute(&vm, "dup", "cat", &[]));
    let limited =
        host.vm(r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxProcesses":1}}}"#);
    started(&host.execute(&limited, "one", "cat", &[]));
    let (code, message) = rejected(&host.execute(&limited, "two", "cat", &[]));
    assert_eq!((code.as_str(), message.as_str()), ("kernel_error", "EAGAIN: maximum process limit reached"));
    let denied = host.vm(r#"{"permissions":{"fs":"allow","childProcess":"deny"}}"#);
    let (code, message) = rejected(&host.execute(&denied, "c", "cat", &[]));
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("EACCES: permission denied, spawn 'cat'"), "{message}");
}

#[test]
fn disposing_a_vm_kills_its_processes_between_disposing_and_disposed() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    started(&host.execute(&vm, "s", "spin", &[]));
    host.sidecar.tick(host.now);
    host.drain();
    let frames = host.request(
        host.scope(&vm),
        RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }),
    );
    let kinds: Vec<String> = frames
        .iter()
        .map(|frame| match frame {
            ProtocolFrame::ResponseFrame(_) => "response".to_owned(),
            ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::VmLifecycleEvent(event), .. }) => {
                format!("{:?}", event.state)
            }
            ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(exited), .. }) => {
                format!("exit {}", exited.exit_code)
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["response", "Disposing", "exit 137", "Disposed"]);
}

/// A VM whose writes under /tmp need the host's permission, asked by prompt.
const ASK_TMP: &str = r#"{"permissions":{"fs":{"default":"allow","rules":[{"mode":"ask","operations":["write"],"paths":["/tmp/**"]}]},"childProcess":"allow"},"permissionPrompts":{"enabled":true,"timeoutMs":5000}}"#;

/// Ticks until the kernel asks the host something; returns the request (events seen before it
/// must be none: the guest is parked).
pub(crate) fn next_prompt(host: &mut Host) -> SidecarRequestFrame {
    for _ in 0..1000 {
        host.sidecar.tick(host.now);
        if let Some(frame) = host.drain().into_iter().next() {
            let ProtocolFrame::SidecarRequestFrame(request) = frame else { panic!("unexpected {frame:?}") };
            return request;
        }
    }
    panic!("no prompt");
}

pub(crate) fn answer(host: &mut Host, request: &SidecarRequestFrame, decision: &str) {
    let payload = SidecarResponsePayload::ExtEnvelope(ExtEnvelope {
        namespace: kernel::dispatch::PERMISSION_PROMPT_NAMESPACE.into(),
        payload: format!(r#"{{"decision":"{decision}"}}"#).into_bytes(),
    });
    let frame = ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: request.request_id,
        ownership: request.ownership.clone(),
        payload,
    });
    let bytes = encode_frame(&frame, usize::MAX).unwrap();
    host.sidecar.handle_bytes(host.stream, &bytes, host.now);
    assert_eq!(host.drain(), [], "an answer produces no frame by itself");
}

#[test]
fn a_guest_waits_for_an_ask_permission_then_proceeds() {
    let mut host = Host::new();
    let vm = host.vm(ASK_TMP);
    started(&host.execute(&vm, "w", "write_file", &["/tmp/asked.txt", "allowed"]));
    let prompt = next_prompt(&mut host);
    let SidecarRequestPayload::ExtEnvelope(envelope) = &prompt.payload else { panic!("{prompt:?}") };
    let body: String = String::from_utf8(envelope.payload.clone()).unwrap();
    assert!(body.contains(r#""capability":"fs.write""#) && body.contains("/tmp/asked.txt"), "{body}");
    // Parked: nothing runs, nothing is written, until the host answers.
    for _ in 0..20 {
        host.sidecar.tick(host.now);
    }
    assert_eq!(host.drain(), []);
    assert_eq!(host.read_file(&vm, "/tmp/asked.txt"), None);
    answer(&mut host, &prompt, "allow");
    let (_, stderr, code) = outcome(&host.run("w"));
    assert_eq!((stderr.as_str(), code), ("", 0));
    assert_eq!(host.read_file(&vm, "/tmp/asked.txt").unwrap(), b"allowed\n");
}

#[test]
fn a_denied_or_unanswered_ask_fails_the_guests_call() {
    let mut host = Host::new();
    let vm = host.vm(ASK_TMP);
    started(&host.execute(&vm, "w", "write_file", &["/tmp/denied.txt", "x"]));
    let prompt = next_prompt(&mut host);
    answer(&mut host, &prompt, "deny");
    let (_, stderr, code) = outcome(&host.run("w"));
    assert_eq!(code, 1);
    assert!(stderr.contains("write_file: /tmp/denied.txt: Permission denied"), "{stderr}");
    assert_eq!(host.read_file(&vm, "/tmp/denied.txt"), None);

    started(&host.execute(&vm, "t", "write_file", &["/tmp/timeout.txt", "x"]));
    next_prompt(&mut host);
    host.now.monotonic_ms += 5_000;
    let (_, stderr, code) = outcome(&host.run("t"));
    assert_eq!(code, 1);
    assert!(stderr.contains("Permission denied"), "{stderr}");

    // Killed while waiting: the late answer is dropped and nothing breaks.
    started(&host.execute(&vm, "k", "write_file", &["/tmp/killed.txt", "x"]));
    let prompt = next_prompt(&mut host);
    assert!(matches!(kill(&mut host, &vm, "k", "KILL"), ResponsePayload::ProcessKilledResponse(_)));
    host.drain();
    answer(&mut host, &prompt, "allow");
    host.sidecar.tick(host.now);
    assert_eq!(host.drain(), []);
    assert_eq!(host.read_file(&vm, "/tmp/killed.txt"), None);
}

#[test]
fn deep_recursion_is_stopped_by_the_vms_stack_limit() {
    let mut host = Host::new();
    let vm = host.vm(
        r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxWasmStackBytes":65536}}}"#,
    );
    host.write_file(&vm, "/bin/recurse", &crate::support::wat_fixture("recurse"));
    started(&host.execute(&vm, "r", "recurse", &[]));
    let (_, stderr, code) = outcome(&host.run("r"));
    assert_eq!(code, 134);
    assert!(stderr.contains("stack overflow (max_wasm_stack_bytes = 65536)"), "{stderr}");
    // Another VM with the default limit recurses deeper before it stops, on its own engine.
    let roomy = host.vm(OPEN_VM);
    host.write_file(&roomy, "/bin/recurse", &crate::support::wat_fixture("recurse"));
    started(&host.execute(&roomy, "r2", "recurse", &[]));
    let (_, stderr, code) = outcome(&host.run("r2"));
    assert_eq!(code, 134);
    assert!(stderr.contains("stack overflow (max_wasm_stack_bytes = 8388608)"), "{stderr}");
}

#[test]
fn host_process_pipes_pids_and_user_ids() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/bin/host_pipe", &crate::support::wat_fixture("host_pipe"));
    started(&host.execute(&vm, "p", "host_pipe", &[]));
    let (stdout, stderr, code) = outcome(&host.run("p"));
    assert_eq!((stdout.as_slice(), stderr.as_str(), code), (&b"through a pipe\n"[..], "", 11));
    // A READ_ONLY command may not make pipes.
    started(&host.execute_with(&vm, "ro", "host_pipe", &[], Some(WasmPermissionTier::ReadOnly)));
    let (_, _, code) = outcome(&host.run("ro"));
    assert_eq!(code, 90);
}

#[test]
fn a_guest_can_ignore_sigterm_but_not_sigkill() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/bin/ignore_term", &crate::support::wat_fixture("ignore_term"));
    started(&host.execute(&vm, "i", "ignore_term", &[]));
    for _ in 0..3 {
        host.sidecar.tick(host.now);
    }
    host.drain();
    let state =
        host.simple(&vm, RequestPayload::GetSignalStateRequest(GetSignalStateRequest { process_id: "i".into() }));
    let ResponsePayload::SignalStateResponse(state) = state else { panic!("{state:?}") };
    let handler = &state.handlers[&15];
    assert_eq!((handler.action, handler.mask.len(), handler.flags), (SignalDispositionAction::Ignore, 0, 0));
    let frames = kill_frames(&mut host, &vm, "i", "SIGTERM");
    assert_eq!(frames.len(), 1, "ignored: no exit");
    for _ in 0..3 {
        host.sidecar.tick(host.now);
    }
    assert_eq!(host.drain(), [], "still running");
    let frames = kill_frames(&mut host, &vm, "i", "SIGKILL");
    assert_eq!(rejected(&frames[1]), ("exit".to_owned(), "i 137".to_owned()));
}

/// A VM with `spawn` and the commands it starts.
fn spawn_vm(host: &mut Host, config: &str) -> String {
    let vm = host.vm(config);
    for command in ["spawn", "hello", "exit3"] {
        host.write_file(&vm, &format!("/bin/{command}"), &c_fixture(command));
    }
    vm
}

fn snapshot(host: &mut Host, vm: &str) -> Vec<ProcessSnapshotEntry> {
    match host.simple(vm, RequestPayload::GetProcessSnapshotRequest) {
        ResponsePayload::ProcessSnapshotResponse(snapshot) => snapshot.processes,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_guest_starts_a_child_reads_its_output_through_a_pipe_and_reaps_it() {
    let mut host = Host::new();
    let vm = spawn_vm(&mut host, OPEN_VM);
    started(&host.execute(&vm, "s", "spawn", &["pipe"]));
    let (stdout, stderr, code) = outcome(&host.run("s"));
    assert_eq!(stderr, "");
    assert_eq!(String::from_utf8(stdout).unwrap(), "child 2 said: hello from C\nreaped 2: status 0\n");
    assert_eq!(code, 0);
}

#[test]
fn waitpid_reaps_any_child_and_zombies_are_counted_until_reaped() {
    let mut host = Host::new();
    let vm = spawn_vm(&mut host, OPEN_VM);
    started(&host.execute(&vm, "w", "spawn", &["wait"]));
    let (stdout, _, code) = outcome(&host.run("w"));
    assert_eq!(String::from_utf8(stdout).unwrap(), "reaped 2: status 3\nreaped 3: status 3\n");
    assert_eq!(code, 0);
}

#[test]
fn a_guest_kills_its_child_and_a_host_started_process_takes_its_children_down() {
    let mut host = Host::new();
    let vm = spawn_vm(&mut host, OPEN_VM);
    started(&host.execute(&vm, "k", "spawn", &["kill"]));
    let (stdout, _, code) = outcome(&host.run("k"));
    assert_eq!((String::from_utf8(stdout).unwrap().as_str(), code), ("reaped 2: status 137\n", 0));

    // The child shows in snapshots under its parent's id while both run.
    started(&host.execute(&vm, "l", "spawn", &["leave"]));
    let mut seen_child = false;
    let mut events = Vec::new();
    for _ in 0..50 {
        host.sidecar.tick(host.now);
        events.extend(host.drain().into_iter().map(|frame| match frame {
            ProtocolFrame::EventFrame(event) => event.payload,
            other => panic!("unexpected {other:?}"),
        }));
        let processes = snapshot(&mut host, &vm);
        if let Some(child) = processes.iter().find(|p| p.process_id == "l/child-1") {
            let parent = processes.iter().find(|p| p.process_id == "l").unwrap();
            assert_eq!((child.ppid, child.pgid, child.command.as_str()), (parent.pid, parent.pgid, "spin"));
            seen_child = true;
            break;
        }
    }
    assert!(seen_child, "the child never appeared");
    close_stdin(&mut host, &vm, "l");
    events.extend(host.run("l"));
    let (stdout, _, code) = outcome(&events);
    assert_eq!((String::from_utf8(stdout).unwrap().as_str(), code), ("left 4 running\n", 0));
    // Its spinning child went with it: nothing runs any more.
    assert_eq!(host.sidecar.runnable_processes(), 0);
    assert!(snapshot(&mut host, &vm).iter().all(|p| p.process_id != "l/child-1"));
}

#[test]
fn only_full_commands_start_processes() {
    let mut host = Host::new();
    let vm = spawn_vm(&mut host, OPEN_VM);
    started(&host.execute_with(&vm, "s", "spawn", &["wait"], Some(WasmPermissionTier::ReadWrite)));
    let (stdout, _, _) = outcome(&host.run("s"));
    assert!(String::from_utf8(stdout).unwrap().starts_with("spawn failed: errno 21\n"), "EFAULT like the original");
}

/// Polls stdin with a 10 s timeout, then echoes what it reads.
const POLL_STDIN: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 1))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 10000000000))
    (i64.store (i32.const 48) (i64.const 2))
    (i32.store8 (i32.const 56) (i32.const 1))
    (i32.store (i32.const 64) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 200) (i32.const 2) (i32.const 300)))
    (i32.store (i32.const 320) (i32.const 400))
    (i32.store (i32.const 324) (i32.const 64))
    (drop (call $read (i32.const 0) (i32.const 320) (i32.const 1) (i32.const 328)))
    (i32.store (i32.const 336) (i32.const 400))
    (i32.store (i32.const 340) (i32.load (i32.const 328)))
    (drop (call $write (i32.const 1) (i32.const 336) (i32.const 1) (i32.const 344)))))"#;

#[test]
fn stdin_ends_a_poll_with_a_timeout_before_the_timeout() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/bin/poll", &crate::support::wat(POLL_STDIN));
    started(&host.execute(&vm, "p", "poll", &[]));
    for _ in 0..5 {
        host.sidecar.tick(host.now);
    }
    assert_eq!(host.drain(), [], "parked on the poll");
    write_stdin(&mut host, &vm, "p", b"early\n");
    // The clock does not move: stdin alone wakes it.
    let (stdout, _, code) = outcome(&host.run("p"));
    assert_eq!((stdout.as_slice(), code), (&b"early\n"[..], 0));
}

#[test]
fn at_most_four_distinct_stack_limits_are_served() {
    let mut host = Host::new();
    let config = |bytes: u64| {
        format!(
            r#"{{"permissions":{{"fs":"allow","childProcess":"allow"}},"limits":{{"resources":{{"maxWasmStackBytes":{bytes}}}}}}}"#
        )
    };
    // The engine starts with the default runtime's limit; three more fit.
    for (index, bytes) in [65_536u64, 131_072, 196_608].into_iter().enumerate() {
        let vm = host.vm(&config(bytes));
        started(&host.execute(&vm, &format!("p{index}"), "exit3", &[]));
    }
    let vm = host.vm(&config(262_144));
    let (code, message) = rejected(&host.execute(&vm, "p4", "exit3", &[]));
    assert_eq!(code, "execution_error");
    assert!(message.contains(&format!("at most {MAX_STACK_LIMIT_ENGINES} distinct")), "{message}");
}

/// A command that does nothing, distinct for each `index`.
fn numbered_module(index: usize) -> Arc<[u8]> {
    Arc::from(crate::support::wat(&format!(
        r#"(module (memory (export "memory") 1) (global i32 (i32.const {index})) (func (export "_start")))"#
    )))
}

#[test]
fn the_program_cache_keeps_at_most_its_bound() {
    use kernel::syscalls::engine::GuestEngine;
    let engine = WasmEngine::new(RuntimeConfig::default()).unwrap();
    for index in 0..=MAX_CACHED_PROGRAMS {
        engine.load(&numbered_module(index), 1 << 20).unwrap();
    }
    assert_eq!(engine.cached_programs(), MAX_CACHED_PROGRAMS);
}

#[test]
fn a_module_used_on_every_start_is_hashed_once_however_many_others_pass() {
    use kernel::syscalls::engine::GuestEngine;
    let engine = WasmEngine::new(RuntimeConfig::default()).unwrap();
    let hot = kernel::syscalls::engine::SharedModule::Bytes(numbered_module(0));
    let hot_bytes = hot.len();
    engine.load_shared(&hot, 1 << 20).unwrap();
    let mut others = 0;
    for index in 1..=200 {
        let other = kernel::syscalls::engine::SharedModule::Bytes(numbered_module(index));
        engine.load_shared(&other, 1 << 20).unwrap();
        others += other.len();
        engine.load_shared(&hot, 1 << 20).unwrap();
    }
    assert_eq!(engine.identified_bytes(), hot_bytes + others);
}

#[test]
fn a_module_that_cannot_link_is_refused_from_the_cache_the_second_time() {
    use kernel::syscalls::engine::GuestEngine;
    let engine = WasmEngine::new(RuntimeConfig::default()).unwrap();
    let module = crate::support::wat(
        r#"(module (import "nowhere" "nothing" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
    );
    let first = engine.load(&module, 1 << 20).unwrap_err().to_string();
    let second = engine.load(&module, 1 << 20).unwrap_err().to_string();
    assert!(first.contains("unknown import"), "{first}");
    assert_eq!(first, second);
    assert_eq!(engine.cached_programs(), 1, "the failure is kept, not compiled again");
}

#[test]
fn an_oversized_spawn_argument_is_e2big() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    let too_big = 2 << 20;
    let guest = crate::support::wat(&format!(
        r#"(module
          (import "host_process" "proc_spawn"
            (func $spawn (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (call $exit (call $spawn (i32.const 0) (i32.const {too_big}) (i32.const 0) (i32.const 0)
              (i32.const 0) (i32.const 1) (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 16)))))"#
    ));
    host.write_file(&vm, "/bin/big", &guest);
    started(&host.execute(&vm, "b", "big", &[]));
    let (_, _, code) = outcome(&host.run("b"));
    assert_eq!(code, 1, "E2BIG: over the 1 MiB bound on argv, envp and cwd");
}

/// `/dev/stdout`, `/dev/stderr` and `/dev/stdin` are the process's own streams (they used to be
/// `/dev/null`: output written there vanished, stdin read empty).
#[test]
fn dev_stdio_are_the_processs_own_streams() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    started(&host.execute(
        &vm,
        "p",
        "fsops",
        &["write", "/dev/stdout", "to stdout\n", "write", "/dev/stderr", "to stderr\n", "cat", "/dev/stdin"],
    ));
    assert!(matches!(write_stdin(&mut host, &vm, "p", b"from stdin"), ResponsePayload::StdinWrittenResponse(_)));
    assert!(matches!(close_stdin(&mut host, &vm, "p"), ResponsePayload::StdinClosedResponse(_)));
    let (stdout, stderr, code) = outcome(&host.run("p"));
    assert_eq!(code, 0);
    assert_eq!(
        String::from_utf8(stdout).unwrap(),
        "to stdout\nwrite /dev/stdout: ok\nwrite /dev/stderr: ok\ncat /dev/stdin: from stdin\n"
    );
    assert_eq!(stderr, "to stderr\n");
}

/// `/proc/self` describes the calling process (it used to describe the host, pid 0).
#[test]
fn proc_self_is_the_calling_process() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    let request = ExecuteRequest {
        env: [("GREETING".to_owned(), "hi".to_owned())].into(),
        cwd: Some("/tmp".into()),
        ..ExecuteRequest::command(
            "p",
            "fsops",
            [
                "cat",
                "/proc/self/status",
                "cat",
                "/proc/self/cmdline",
                "readlink",
                "/proc/self/cwd",
                "cat",
                "/proc/self/environ",
            ],
        )
    };
    let frames = host.request(host.scope(&vm), RequestPayload::ExecuteRequest(request));
    let pid = started(response(&frames[0]));
    let (stdout, _, code) = outcome(&host.run("p"));
    assert_eq!(code, 0);
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "cat /proc/self/status: Name:\tfsops\nState:\tR (running)\nPid:\t{pid}\nPPid:\t0\nUid:\t1000\t1000\t1000\t1000\n"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("cat /proc/self/cmdline: fsops\0cat\0/proc/self/status\0"), "{stdout:?}");
    assert!(stdout.contains("readlink /proc/self/cwd: /tmp\n"), "{stdout}");
    assert!(stdout.contains("GREETING=hi\0"), "{stdout:?}");
}

/// `utimensat`/`futimens` set a file's times (they used to succeed and change nothing).
#[test]
fn file_times_are_set_by_path_and_by_descriptor() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/tmp/f", b"x");
    let args =
        ["utime", "/tmp/f", "1000000000", "mtime", "/tmp/f", "futime", "/tmp/f", "1500000000", "mtime", "/tmp/f"];
    started(&host.execute(&vm, "p", "fsops", &args));
    let (stdout, _, code) = outcome(&host.run("p"));
    assert_eq!(code, 0);
    assert_eq!(
        String::from_utf8(stdout).unwrap(),
        "utime /tmp/f: ok\nmtime /tmp/f: 1000000000\nfutime /tmp/f: ok\nmtime /tmp/f: 1500000000\n"
    );
}

/// What Linux prints for `openfiles DIR` (the fixture run natively on Linux gives exactly this):
/// a descriptor holds the file, not its name.
const OPEN_FILES_ON_LINUX: &str = "write: ok\nunlink: ok\nby name: error No such file or directory\n\
unlinked read: hello\nunlinked stat: nlink 0 size 5\nappend: ok\nunlinked read: hello again\nftruncate: ok\n\
truncated read: he\nclose: ok\nsecond descriptor read: he\nwrite: ok\nrename: ok\nwrite: ok\n\
renamed: first second\nwrite: ok\nreplace: ok\nreplaced read: first second\nreplaced stat: nlink 0 size 12\n\
by name: new\nunlink: ok\n";

/// Unlinked, renamed and replaced while open, on the root filesystem and on a `memory` mount: the
/// same answers as Linux, and every nameless file freed once its last descriptor closed.
#[test]
fn descriptors_hold_the_file_not_its_name() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/bin/openfiles", &c_fixture("openfiles"));
    let mount = MountDescriptor {
        guest_path: "/mem".into(),
        read_only: false,
        plugin: MountPluginDescriptor { id: "memory".into(), config: "{}".into() },
    };
    let configured = host.simple(&vm, RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![mount])));
    assert!(matches!(configured, ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    // /tmp is copied up to the root's writable layer first, so what is counted next is files.
    host.write_file(&vm, "/tmp/warm", b"");
    assert!(matches!(
        host.fs(&vm, GuestFilesystemOperation::RemoveFile, "/tmp/warm", None),
        ResponsePayload::GuestFilesystemResultResponse(_)
    ));
    let before = host.sidecar.vm_root_filesystem(&vm).unwrap().upper().inode_count();
    for (process, dir) in [("root", "/tmp"), ("mounted", "/mem")] {
        started(&host.execute(&vm, process, "openfiles", &[dir]));
        let (stdout, stderr, code) = outcome(&host.run(process));
        assert_eq!((code, stderr.as_str()), (0, ""), "{dir}");
        assert_eq!(String::from_utf8(stdout).unwrap(), OPEN_FILES_ON_LINUX, "in {dir}");
    }
    let root = host.sidecar.vm_root_filesystem(&vm).unwrap().upper();
    assert_eq!(root.orphan_count(), 0, "closed files are freed");
    assert_eq!(root.inode_count(), before, "nothing left behind");
}

/// A nameless file is freed when its process ends without closing it.
#[test]
fn an_unlinked_file_held_open_goes_when_its_process_ends() {
    let mut host = Host::new();
    let vm = host.vm(OPEN_VM);
    host.write_file(&vm, "/tmp/held", &[7; 4096]);
    host.write_file(&vm, "/bin/openfiles", &c_fixture("openfiles"));
    // It holds /tmp/held open while blocked on its stdin, which the host has not closed yet.
    started(&host.execute(&vm, "p", "openfiles", &["hold", "/tmp/held"]));
    for _ in 0..100 {
        host.sidecar.tick(host.now);
    }
    assert!(host.drain().is_empty(), "it waits for its stdin");
    let removed = host.fs(&vm, GuestFilesystemOperation::RemoveFile, "/tmp/held", None);
    assert!(matches!(removed, ResponsePayload::GuestFilesystemResultResponse(_)), "{removed:?}");
    let upper = host.sidecar.vm_root_filesystem(&vm).unwrap().upper();
    let held_bytes = upper.total_bytes();
    assert_eq!(upper.orphan_count(), 1, "still open");
    assert!(matches!(close_stdin(&mut host, &vm, "p"), ResponsePayload::StdinClosedResponse(_)));
    let (stdout, _, code) = outcome(&host.run("p"));
    assert_eq!((code, String::from_utf8(stdout).unwrap().as_str()), (0, "held: 4096 bytes\n"));
    let upper = host.sidecar.vm_root_filesystem(&vm).unwrap().upper();
    assert_eq!(upper.orphan_count(), 0);
    assert_eq!(upper.total_bytes(), held_bytes - 4096);
}
