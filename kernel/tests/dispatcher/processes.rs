//! The process table, scheduler and process requests with a scripted engine: guests written in
//! Rust against the kernel's `Syscalls`, so every state and limit is reachable without wasmtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kernel::process::guest::{Guest, GuestEngine, GuestError, GuestExit, GuestPoll, GuestProgram, GuestSpawn};
use kernel::process::syscalls::{SysError, Syscalls};
use kernel::process::{
    MAX_PENDING_OUTPUT_BYTES, MAX_PROCESS_ID_BYTES, MAX_RETAINED_EXITED_PER_VM, MAX_SLICES_PER_TICK,
    STDIN_BUFFER_LIMIT_BYTES,
};
use kernel::{Sidecar, SidecarConfig};
use schema::wire::*;

use crate::filesystem::write;
use crate::harness::{rejection, response_payload, Harness};

/// Scripts, named by the module's bytes after the wasm magic (`\0asmcat`).
#[derive(Debug, Default)]
struct ScriptEngine {
    polls: Arc<AtomicUsize>,
    lose_vm: bool,
}

#[derive(Debug)]
struct Script {
    name: String,
    polls: Arc<AtomicUsize>,
    lose_vm: bool,
}

impl GuestEngine for ScriptEngine {
    fn load(&self, bytes: &[u8]) -> Result<Arc<dyn GuestProgram>, GuestError> {
        let name = String::from_utf8_lossy(&bytes[4..]).into_owned();
        if name == "invalid" {
            return Err(GuestError::InvalidProgram("no _start".into()));
        }
        Ok(Arc::new(Script { name, polls: Arc::clone(&self.polls), lose_vm: self.lose_vm }))
    }
}

impl GuestProgram for Script {
    fn spawn(&self, spawn: GuestSpawn) -> Result<Box<dyn Guest>, GuestError> {
        Ok(Box::new(ScriptGuest {
            name: self.name.clone(),
            args: spawn.args,
            polls: Arc::clone(&self.polls),
            lose_vm: self.lose_vm,
            written: 0,
        }))
    }
}

#[derive(Debug)]
struct ScriptGuest {
    name: String,
    args: Vec<String>,
    polls: Arc<AtomicUsize>,
    lose_vm: bool,
    written: usize,
}

fn exited(code: i32) -> GuestPoll {
    GuestPoll::Exited(GuestExit { code, message: None })
}

impl Guest for ScriptGuest {
    fn poll(&mut self, mut sys: Syscalls) -> (Option<Syscalls>, GuestPoll) {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.lose_vm {
            return (None, GuestPoll::Running);
        }
        let poll = match self.name.as_str() {
            // Echoes stdin to stdout until end-of-file.
            "cat" => loop {
                let mut buf = [0u8; 4096];
                match sys.read(0, &mut buf) {
                    Ok(0) => break exited(0),
                    Ok(n) => {
                        sys.write(1, &buf[..n]).unwrap();
                    }
                    Err(SysError::WouldBlock) => break GuestPoll::Blocked,
                    Err(SysError::Errno(_)) => break exited(1),
                }
            },
            "spin" => GuestPoll::Running,
            // Writes args[1] bytes in one slice as fast as its output allows.
            "flood" => {
                let total: usize = self.args[1].parse().unwrap();
                let chunk = vec![b'x'; 256 * 1024];
                loop {
                    if self.written >= total {
                        break exited(0);
                    }
                    let want = (total - self.written).min(chunk.len());
                    match sys.write(1, &chunk[..want]) {
                        Ok(n) => self.written += n,
                        Err(SysError::WouldBlock) => break GuestPoll::Blocked,
                        Err(SysError::Errno(_)) => break exited(1),
                    }
                }
            }
            "exit" => exited(self.args[1].parse().unwrap()),
            other => panic!("no script {other}"),
        };
        (Some(sys), poll)
    }

    fn kill(&mut self) {}
}

const OPEN: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow"}}"#;

struct Procs {
    host: Harness,
    scope: OwnershipScope,
    vm: String,
    polls: Arc<AtomicUsize>,
}

impl Procs {
    fn new(config: &str) -> Procs {
        Procs::with(config, ScriptEngine::default())
    }

    fn with(config: &str, engine: ScriptEngine) -> Procs {
        let polls = Arc::clone(&engine.polls);
        let sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(Arc::new(engine));
        let mut host = Harness::with_sidecar(sidecar);
        let (conn, session, vm) = host.vm(config);
        host.drain();
        let scope = OwnershipScope::vm(&conn, &session, &vm);
        let mut procs = Procs { host, scope, vm, polls };
        for script in ["cat", "spin", "flood", "exit", "invalid"] {
            let frames = procs.call(write(&format!("/bin/{script}"), &format!("\0asm{script}")));
            assert!(matches!(response_payload(&frames[0]), ResponsePayload::GuestFilesystemResultResponse(_)));
        }
        procs
    }

    fn call(&mut self, request: GuestFilesystemCallRequest) -> Vec<ProtocolFrame> {
        self.host.request(self.scope.clone(), RequestPayload::GuestFilesystemCallRequest(request))
    }

    fn send(&mut self, payload: RequestPayload) -> Vec<ProtocolFrame> {
        self.host.request(self.scope.clone(), payload)
    }

    fn execute(&mut self, id: &str, command: &str, args: &[&str]) -> Vec<ProtocolFrame> {
        self.send(RequestPayload::ExecuteRequest(ExecuteRequest::command(id, command, args.iter().copied())))
    }

    fn started(&mut self, id: &str, command: &str, args: &[&str]) -> u32 {
        let frames = self.execute(id, command, args);
        match response_payload(&frames[0]) {
            ResponsePayload::ProcessStartedResponse(started) => started.pid.unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn tick(&mut self) -> Vec<EventPayload> {
        self.host
            .advance(0)
            .into_iter()
            .map(|frame| match frame {
                ProtocolFrame::EventFrame(event) => event.payload,
                other => panic!("{other:?}"),
            })
            .collect()
    }
}

fn exit_of(events: &[EventPayload]) -> Option<(String, i32)> {
    events.iter().find_map(|event| match event {
        EventPayload::ProcessExitedEvent(exited) => Some((exited.process_id.clone(), exited.exit_code)),
        _ => None,
    })
}

#[test]
fn without_an_engine_execute_is_unsupported() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm(OPEN);
    let frames = host.request(
        OwnershipScope::vm(&conn, &session, &vm),
        RequestPayload::ExecuteRequest(ExecuteRequest::command("p", "cat", Vec::<String>::new())),
    );
    assert_eq!(rejection(frames.last().unwrap()).0, "unsupported");
}

#[test]
fn every_process_limit_is_enforced_at_execute() {
    // (the limit set, the command, its args, the expected code and message prefix)
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], (&'a str, &'a str));
    let cases: [Case<'_>; 5] = [
        (r#""maxPipes":0"#, "cat", &[], ("kernel_error", "EAGAIN: maximum pipe count reached")),
        (r#""maxOpenFds":2"#, "cat", &[], ("kernel_error", "ENFILE: maximum open file descriptor limit reached")),
        (
            r#""maxProcessArgvBytes":10"#,
            "cat",
            &["0123456789"],
            ("kernel_error", "EINVAL: process argv payload 15 bytes exceeds configured limit 10"),
        ),
        (r#""maxProcesses":0"#, "cat", &[], ("kernel_error", "EAGAIN: maximum process limit reached")),
        (r#""maxProcessEnvBytes":10"#, "cat", &[], ("kernel_error", "EINVAL: process environment payload")),
    ];
    for (limit, command, args, (code, message)) in cases {
        let config = format!(
            r#"{{"permissions":{{"fs":"allow","childProcess":"allow"}},"limits":{{"resources":{{{limit}}}}}}}"#
        );
        let mut procs = Procs::new(&config);
        let frames = procs.execute("p", command, args);
        let (got_code, got_message) = rejection(&frames[0]);
        assert_eq!(got_code, code, "{limit}: {got_message}");
        assert!(got_message.starts_with(message), "{limit}: {got_message}");
    }
    let mut procs = Procs::new(OPEN);
    let long = "p".repeat(MAX_PROCESS_ID_BYTES + 1);
    assert_eq!(rejection(&procs.execute(&long, "cat", &[])[0]).0, "invalid_state");
    procs.started(&"p".repeat(MAX_PROCESS_ID_BYTES), "cat", &[]);
    let (code, message) = rejection(&procs.execute("bad", "invalid", &[])[0]);
    assert_eq!((code.as_str(), message.as_str()), ("execution_error", "invalid WebAssembly module: no _start"));
}

#[test]
fn stdin_is_bounded_and_chunks_are_taken_whole() {
    let mut procs = Procs::new(OPEN);
    procs.started("cat", "spin", &[]);
    let big = vec![b'a'; STDIN_BUFFER_LIMIT_BYTES / 2 + 1];
    let write = |procs: &mut Procs| {
        procs
            .send(RequestPayload::WriteStdinRequest(WriteStdinRequest { process_id: "cat".into(), chunk: big.clone() }))
    };
    let frames = write(&mut procs);
    assert!(
        matches!(response_payload(&frames[0]), ResponsePayload::StdinWrittenResponse(w) if w.accepted_bytes == big.len() as u64)
    );
    let (code, message) = rejection(&write(&mut procs)[0]);
    assert_eq!(code, "execution_error");
    assert_eq!(
        message,
        format!("failed to write guest stdin: guest stdin buffer exceeded {STDIN_BUFFER_LIMIT_BYTES} bytes")
    );
}

#[test]
fn a_slice_writes_at_most_the_pending_output_bound_then_blocks() {
    let mut procs = Procs::new(OPEN);
    let total = 3 * MAX_PENDING_OUTPUT_BYTES + 5;
    procs.started("f", "flood", &[&total.to_string()]);
    let mut stdout = 0;
    let mut largest_event = 0;
    let mut exit = None;
    for _ in 0..100 {
        let events = procs.tick();
        for event in &events {
            if let EventPayload::ProcessOutputEvent(output) = event {
                stdout += output.chunk.len();
                largest_event = largest_event.max(output.chunk.len());
            }
        }
        exit = exit.or(exit_of(&events));
        if exit.is_some() {
            break;
        }
    }
    assert_eq!(exit, Some(("f".to_owned(), 0)));
    assert_eq!(stdout, total);
    assert!(largest_event <= 64 * 1024, "events are cut to frame-sized chunks");
}

#[test]
fn the_scheduler_runs_a_bounded_number_of_slices_round_robin() {
    let mut procs = Procs::new(OPEN);
    procs.started("a", "spin", &[]);
    procs.started("b", "spin", &[]);
    procs.started("c", "spin", &[]);
    let before = procs.polls.load(Ordering::SeqCst);
    procs.tick();
    assert_eq!(procs.polls.load(Ordering::SeqCst) - before, MAX_SLICES_PER_TICK);
    // Killing one leaves the others running; the VM's other requests are served meanwhile.
    let frames = procs
        .send(RequestPayload::KillProcessRequest(KillProcessRequest { process_id: "b".into(), signal: "9".into() }));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::ProcessKilledResponse(_)));
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = response_payload(&snapshot[0]) else { panic!() };
    let states: Vec<(String, ProcessSnapshotStatus, Option<i32>)> =
        snapshot.processes.iter().map(|p| (p.process_id.clone(), p.status, p.exit_code)).collect();
    assert_eq!(
        states,
        [
            ("a".to_owned(), ProcessSnapshotStatus::Running, None),
            ("c".to_owned(), ProcessSnapshotStatus::Running, None),
            ("b".to_owned(), ProcessSnapshotStatus::Exited, Some(137)),
        ]
    );
    let signal = procs
        .send(RequestPayload::KillProcessRequest(KillProcessRequest { process_id: "a".into(), signal: "0".into() }));
    assert!(matches!(response_payload(&signal[0]), ResponsePayload::ProcessKilledResponse(_)));
    assert_eq!(signal.len(), 1, "signal 0 only probes");
}

#[test]
fn exited_processes_are_retained_up_to_a_bound() {
    let mut procs = Procs::new(
        r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow"},"limits":{"resources":{"maxProcesses":100000,"maxPipes":100000}}}"#,
    );
    for index in 0..=MAX_RETAINED_EXITED_PER_VM {
        procs.started(&format!("p{index}"), "exit", &["3"]);
        assert_eq!(exit_of(&procs.tick()), Some((format!("p{index}"), 3)));
    }
    procs.tick();
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = response_payload(&snapshot[0]) else { panic!() };
    assert_eq!(snapshot.processes.len(), MAX_RETAINED_EXITED_PER_VM);
    assert_eq!(snapshot.processes[0].process_id, "p1", "the oldest went first");
}

#[test]
fn snapshots_need_process_inspect() {
    let mut procs = Procs::new(r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"deny"}}"#);
    let (code, message) = rejection(&procs.send(RequestPayload::GetProcessSnapshotRequest)[0]);
    assert_eq!(code, "execution_error");
    assert!(message.starts_with("EACCES: permission denied, process://snapshot"), "{message}");
}

#[test]
fn an_engine_that_loses_the_vm_fails_it_and_service_continues() {
    let mut procs = Procs::with(OPEN, ScriptEngine { lose_vm: true, ..ScriptEngine::default() });
    procs.started("p", "spin", &[]);
    let frames = procs.host.advance(0);
    assert!(
        matches!(
            &frames[..],
            [ProtocolFrame::EventFrame(EventFrame {
                payload: EventPayload::VmLifecycleEvent(VmLifecycleEvent { state: VmLifecycleState::Failed }),
                ..
            })]
        ),
        "{frames:?}"
    );
    assert!(procs.host.sidecar.vms().iter().all(|vm| vm.vm_id != procs.vm));
    let (code, _) = rejection(&procs.send(RequestPayload::GetZombieTimerCountRequest)[0]);
    assert_eq!(code, "invalid_state");
}
