//! The process table, scheduler and process requests with a scripted engine: guests written in
//! Rust against the kernel's `Syscalls`, so every state and limit is reachable without wasmtime.

use std::sync::Arc;

use kernel::process::{
    MAX_PENDING_OUTPUT_BYTES, MAX_PROCESS_ID_BYTES, MAX_RETAINED_EXITED_PER_VM, MAX_SLICES_PER_TICK,
    STDIN_BUFFER_LIMIT_BYTES,
};
use kernel::{Sidecar, SidecarConfig};
use schema::wire::*;
use testkit::requests::{configure_mounts, execute};
use testkit::script::{module, ScriptEngine};

use crate::filesystem::write;
use crate::harness::{rejection, response_payload, Harness};

const OPEN: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow"}}"#;

struct Procs {
    host: Harness,
    scope: OwnershipScope,
    vm: String,
    engine: ScriptEngine,
}

impl Procs {
    fn new(config: &str) -> Procs {
        Procs::with(config, ScriptEngine::new())
    }

    fn with(config: &str, engine: ScriptEngine) -> Procs {
        let sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(Arc::new(engine.clone()));
        let mut host = Harness::with_sidecar(sidecar);
        let (conn, session, vm) = host.vm(config);
        host.drain();
        let scope = OwnershipScope::vm(&conn, &session, &vm);
        let mut procs = Procs { host, scope, vm, engine };
        for script in
            ["cat", "spin", "flood", "exit", "files", "farwrite", "nbread", "pipes", "killgroup", "parent", "invalid"]
        {
            let content = String::from_utf8(module(script)).unwrap();
            let frames = procs.call(write(&format!("/bin/{script}"), &content));
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
        self.send(execute(id, command, args.iter().copied()))
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
    let frames = host.request(OwnershipScope::vm(&conn, &session, &vm), execute("p", "cat", Vec::<String>::new()));
    assert_eq!(rejection(frames.last().unwrap()).0, "unsupported");
}

#[test]
fn every_process_limit_is_enforced_at_execute() {
    // (the limit set, the command, its args, the expected code and message prefix)
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], (&'a str, &'a str));
    let cases: [Case<'_>; 4] = [
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
    let mut output_bytes = 0;
    let mut largest_event = 0;
    let mut exit = None;
    for _ in 0..100 {
        let events = procs.tick();
        for event in &events {
            if let EventPayload::ProcessOutputEvent(output) = event {
                output_bytes += output.chunk.len();
                largest_event = largest_event.max(output.chunk.len());
            }
        }
        exit = exit.or(exit_of(&events));
        if exit.is_some() {
            break;
        }
    }
    assert_eq!(exit, Some(("f".to_owned(), 0)));
    assert_eq!(output_bytes, total);
    assert!(largest_event <= 64 * 1024, "events are cut to frame-sized chunks");
}

#[test]
fn the_scheduler_runs_a_bounded_number_of_slices_round_robin() {
    let mut procs = Procs::new(OPEN);
    procs.started("a", "spin", &[]);
    procs.started("b", "spin", &[]);
    procs.started("c", "spin", &[]);
    let before = procs.engine.polls();
    procs.tick();
    assert_eq!(procs.engine.polls() - before, MAX_SLICES_PER_TICK);
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

/// D13: the host's stdio channels are not guest pipes, so `Execute` stops at `maxProcesses`, not
/// at `maxPipes` (it used to stop at 128 with "maximum pipe count reached").
#[test]
fn execute_is_bounded_by_max_processes_not_by_max_pipes() {
    let mut procs = Procs::new(
        r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxProcesses":200,"maxPipes":2}}}"#,
    );
    for index in 0..200 {
        procs.started(&format!("p{index}"), "cat", &[]);
    }
    let (code, message) = rejection(&procs.execute("one-more", "cat", &[])[0]);
    assert_eq!((code.as_str(), message.as_str()), ("kernel_error", "EAGAIN: maximum process limit reached"));
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
    let mut procs = Procs::with(OPEN, ScriptEngine::losing_vms());
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

/// A guest's positional write far past the end of a file the kernel serves (`/proc`) is refused
/// with an errno: the file is never grown in memory to reach the offset (2^40 bytes would abort
/// the sidecar).
#[test]
fn a_far_positional_write_into_a_kernel_file_is_refused_without_growing_it() {
    let mut procs = Procs::new(OPEN);
    procs.started("far", "farwrite", &["/proc/self/environ"]);
    assert_eq!(exit_of(&procs.tick()), Some(("far".to_owned(), 0)));
}

#[test]
fn guest_file_writes_in_place_and_across_a_mount() {
    let mut procs = Procs::new(OPEN);
    let frames = procs.send(configure_mounts(vec![MountDescriptor::memory("/mnt")]));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::VmConfiguredResponse(_)), "{frames:?}");
    for (id, path) in [("root", "/tmp/f.txt"), ("mounted", "/mnt/f.txt")] {
        procs.started(id, "files", &[path]);
        assert_eq!(exit_of(&procs.tick()), Some((id.to_owned(), 0)), "{path}");
        let frames = procs.call(crate::filesystem::req(GuestFilesystemOperation::ReadFile, path));
        let ResponsePayload::GuestFilesystemResultResponse(result) = response_payload(&frames[0]) else { panic!() };
        assert_eq!(result.content.as_deref(), Some("hello WORLD!"), "{path}");
    }
}

/// `limits.wasm.maxModuleFileBytes`: a module file over it is not loaded (`/bin/cat` is 7 bytes).
#[test]
fn a_module_over_the_module_file_limit_is_not_loaded() {
    let config = |n: u64| {
        format!(
            r#"{{"permissions":{{"fs":"allow","childProcess":"allow"}},"limits":{{"wasm":{{"maxModuleFileBytes":{n}}}}}}}"#
        )
    };
    let mut small = Procs::new(&config(6));
    assert_eq!(
        rejection(&small.execute("p", "cat", &[])[0]),
        (
            "execution_error".to_owned(),
            "invalid WebAssembly module: /bin/cat is 7 bytes, over the module limit of 6".to_owned()
        )
    );
    let mut fits = Procs::new(&config(7));
    fits.started("p", "cat", &[]);
}

/// `limits.wasm.syncReadLimitBytes` bounds what one guest read moves. The `files` script reads
/// "hello world" (11 bytes) in one `read`, then "hello WORLD!" (12) in one `pread`: it exits 15
/// when the first comes back short, 20 when the second does.
#[test]
fn one_guest_read_moves_at_most_the_sync_read_limit() {
    for (limit, exit) in [(Some(8), 15), (Some(11), 20), (Some(12), 0), (None, 0)] {
        let limits = limit.map_or(String::new(), |n| format!(r#","limits":{{"wasm":{{"syncReadLimitBytes":{n}}}}}"#));
        let mut procs = Procs::new(&format!(r#"{{"permissions":{{"fs":"allow","childProcess":"allow"}}{limits}}}"#));
        procs.started("p", "files", &["/tmp/f.txt"]);
        assert_eq!(exit_of(&procs.tick()), Some(("p".to_owned(), exit)), "{limit:?}");
    }
}

#[test]
fn a_non_blocking_stdin_read_fails_with_eagain_instead_of_waiting() {
    let mut procs = Procs::new(OPEN);
    procs.started("empty", "nbread", &[]);
    assert_eq!(exit_of(&procs.tick()), Some(("empty".to_owned(), 11)));
    procs.started("fed", "nbread", &[]);
    procs.send(RequestPayload::WriteStdinRequest(WriteStdinRequest { process_id: "fed".into(), chunk: b"x".to_vec() }));
    assert_eq!(exit_of(&procs.tick()), Some(("fed".to_owned(), 0)));
}

#[test]
fn pipes_deliver_in_order_then_end_of_file_and_broken_pipe() {
    let mut procs = Procs::new(OPEN);
    procs.started("p", "pipes", &[]);
    assert_eq!(exit_of(&procs.tick()), Some(("p".to_owned(), 0)));
    // Writing to a pipe nobody reads also raises SIGPIPE, whose default ends the writer (as
    // `yes | head` relies on): killed by signal 13, exit code 128 + 13.
    procs.started("q", "pipes", &["default"]);
    assert_eq!(exit_of(&procs.tick()), Some(("q".to_owned(), 141)));
    // A VM that allows no guest pipe refuses fd_pipe (the processes' own stdio does not count).
    let mut tight =
        Procs::new(r#"{"permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxPipes":0}}}"#);
    tight.started("p", "pipes", &[]);
    assert_eq!(exit_of(&tight.tick()), Some(("p".to_owned(), 30)));
}

#[test]
fn a_guest_signal_to_its_group_is_delivered_after_its_slice() {
    let mut procs = Procs::new(OPEN);
    procs.started("g", "killgroup", &[]);
    procs.started("other", "spin", &[]);
    let events = procs.tick();
    assert_eq!(exit_of(&events), Some(("g".to_owned(), 143)));
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = response_payload(&snapshot[0]) else { panic!() };
    let other = snapshot.processes.iter().find(|p| p.process_id == "other").unwrap();
    assert_eq!(other.status, ProcessSnapshotStatus::Running, "another group is untouched");
}

fn zombies(procs: &mut Procs) -> u64 {
    match response_payload(&procs.send(RequestPayload::GetZombieTimerCountRequest)[0]) {
        ResponsePayload::ZombieTimerCountResponse(count) => count.count,
        other => panic!("{other:?}"),
    }
}

fn close(procs: &mut Procs, id: &str) {
    procs.send(RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: id.into() }));
}

#[test]
fn an_unreaped_child_is_a_zombie_until_its_parent_reaps_it_or_goes() {
    let mut procs = Procs::new(OPEN);
    procs.started("p", "parent", &["keep", "spin"]);
    procs.started("r", "parent", &["reap", "exit", "0"]);
    for _ in 0..3 {
        procs.tick();
    }
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = response_payload(&snapshot[0]) else { panic!() };
    let ids: Vec<(&str, u32, ProcessSnapshotStatus)> =
        snapshot.processes.iter().map(|p| (p.process_id.as_str(), p.ppid, p.status)).collect();
    assert_eq!(
        ids,
        [
            ("p", 0, ProcessSnapshotStatus::Running),
            ("p/child-1", 1, ProcessSnapshotStatus::Running),
            ("r", 0, ProcessSnapshotStatus::Running),
            ("r/child-1", 2, ProcessSnapshotStatus::Exited),
        ]
    );
    assert_eq!(zombies(&mut procs), 1, "r's child exited and is not reaped yet");
    close(&mut procs, "r");
    assert_eq!(exit_of(&procs.tick()), Some(("r".to_owned(), 0)), "the child's status (exit 0)");
    assert_eq!(zombies(&mut procs), 0);
    // A host-started process takes its running children with it.
    close(&mut procs, "p");
    assert_eq!(exit_of(&procs.tick()), Some(("p".to_owned(), 0)));
    assert_eq!(procs.host.sidecar.runnable_processes(), 0);
}

#[test]
fn children_count_against_max_processes() {
    let mut procs = Procs::new(
        r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow"},"limits":{"resources":{"maxProcesses":1}}}"#,
    );
    procs.started("p", "parent", &["keep", "spin"]);
    let events: Vec<EventPayload> = (0..3).flat_map(|_| procs.tick()).collect();
    assert_eq!(exit_of(&events), Some(("p".to_owned(), 50)), "spawn refused: EAGAIN");
}

#[test]
fn orphans_are_reparented_and_their_zombies_reaped_after_the_ttl() {
    let mut procs = Procs::new(OPEN);
    // t starts m, which starts g and exits at once (its stdin is closed): g is an orphan.
    procs.started("t", "parent", &["keep", "parent", "keep", "exit", "0"]);
    for _ in 0..6 {
        procs.tick();
    }
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    let ResponsePayload::ProcessSnapshotResponse(snapshot) = response_payload(&snapshot[0]) else { panic!() };
    let entries: Vec<(&str, u32, Option<i32>)> =
        snapshot.processes.iter().map(|p| (p.process_id.as_str(), p.ppid, p.exit_code)).collect();
    assert_eq!(entries, [("t", 0, None), ("t/child-1", 1, Some(51)), ("t/child-1/child-1", 0, Some(0))]);
    assert_eq!(zombies(&mut procs), 2, "m (t's, unreaped) and g (an orphan)");
    procs.host.advance(kernel::process::ZOMBIE_TTL_MS);
    assert_eq!(zombies(&mut procs), 1, "the orphan's zombie is reaped after the TTL; m waits for t");
    close(&mut procs, "t");
    assert_eq!(exit_of(&procs.tick()), Some(("t".to_owned(), 0)));
    assert_eq!(zombies(&mut procs), 0);
}

#[test]
fn a_partial_line_is_held_only_up_to_its_bound() {
    let mut procs = Procs::new(OPEN);
    procs.started("c", "cat", &[]);
    let no_newline = vec![b'z'; kernel::process::MAX_HELD_LINE_BYTES + 1000];
    procs.send(RequestPayload::WriteStdinRequest(WriteStdinRequest {
        process_id: "c".into(),
        chunk: no_newline.clone(),
    }));
    let mut early = 0;
    for _ in 0..10 {
        for event in procs.tick() {
            match event {
                EventPayload::ProcessOutputEvent(output) => early += output.chunk.len(),
                other => panic!("no exit yet: {other:?}"),
            }
        }
    }
    assert!(early > kernel::process::MAX_HELD_LINE_BYTES, "a line past the bound goes out before its end: {early}");
    procs.send(RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: "c".into() }));
    let events = procs.tick();
    let rest: usize = events
        .iter()
        .map(|event| match event {
            EventPayload::ProcessOutputEvent(output) => output.chunk.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(early + rest, no_newline.len());
    assert_eq!(exit_of(&events), Some(("c".to_owned(), 0)));
}

/// VMs are scheduled in creation order: `vm-2` before `vm-10` (string order put `vm-10` second).
#[test]
fn vms_are_scheduled_in_creation_order() {
    let sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(Arc::new(ScriptEngine::new()));
    let mut host = Harness::with_sidecar(sidecar);
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    let mut vms = Vec::new();
    for _ in 0..11 {
        let frames = host.request(
            OwnershipScope::session(&conn, &session),
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::WebAssembly,
                config: OPEN.into(),
            }),
        );
        let ResponsePayload::VmCreatedResponse(created) = response_payload(&frames[0]) else { panic!("{frames:?}") };
        vms.push(created.vm_id.clone());
    }
    host.drain();
    for vm in &vms {
        let scope = OwnershipScope::vm(&conn, &session, vm);
        let content = String::from_utf8(module("exit")).unwrap();
        host.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write("/bin/exit", &content)));
        let frames =
            host.request(scope, RequestPayload::ExecuteRequest(ExecuteRequest::command(vm.as_str(), "exit", ["0"])));
        assert!(matches!(response_payload(&frames[0]), ResponsePayload::ProcessStartedResponse(_)), "{frames:?}");
    }
    let exits: Vec<String> = host
        .advance(0)
        .into_iter()
        .filter_map(|frame| match frame {
            ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(exited), .. }) => {
                Some(exited.process_id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(exits, vms, "one slice each, in creation order");
}

/// A VM whose sidecar compiles programs through effects (left to the test to complete).
fn compiling_procs() -> Procs {
    let engine = ScriptEngine::new();
    let sidecar =
        Sidecar::new(SidecarConfig::default()).with_guest_engine(Arc::new(engine.clone())).with_compile_effects();
    let mut host = Harness::with_sidecar(sidecar);
    let (conn, session, vm) = host.vm(OPEN);
    host.drain();
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    Procs { host, scope, vm, engine }
}

/// Completes every compile effect the kernel asked for; what they were.
fn complete_compiles(procs: &mut Procs) -> Vec<kernel::host::effect::EffectSummary> {
    let mut done = Vec::new();
    while let Some((id, effect)) = procs.host.sidecar.poll_effect() {
        done.push(effect.summary());
        let now = procs.host.now;
        procs.host.sidecar.handle_completion(id, kernel::host::effect::Completion::Compiled, now);
    }
    done
}

#[test]
fn with_compile_effects_a_first_execute_waits_for_its_compilation_and_other_work_goes_on() {
    let mut procs = compiling_procs();
    for script in ["exit", "parent", "spin"] {
        let content = String::from_utf8(module(script)).unwrap();
        procs.call(write(&format!("/bin/{script}"), &content));
    }
    // The first Execute of `exit` is not answered: its program is compiling.
    assert!(procs.execute("a", "exit", &["3"]).is_empty(), "no answer before the compilation");
    // A second one for the same program joins it; other requests are answered meanwhile.
    assert!(procs.execute("b", "exit", &["4"]).is_empty());
    let spin = procs.execute("s", "spin", &[]);
    assert!(spin.is_empty());
    assert_eq!(procs.host.sidecar.compiles_in_flight(), 2, "one per program, not per request");
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    assert!(matches!(response_payload(&snapshot[0]), ResponsePayload::ProcessSnapshotResponse(_)));

    let summaries = complete_compiles(&mut procs);
    assert_eq!(summaries.len(), 2);
    assert!(summaries.iter().all(|s| matches!(s, kernel::host::effect::EffectSummary::Compile { .. })));
    let answered: Vec<String> = procs
        .host
        .drain()
        .iter()
        .filter_map(|frame| match frame {
            ProtocolFrame::ResponseFrame(response) => match &response.payload {
                ResponsePayload::ProcessStartedResponse(started) => Some(started.process_id.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(answered, ["a", "b", "s"], "answered in the order asked once compiled");
    // Compiled once: later Executes of it are answered at once.
    assert!(matches!(
        response_payload(&procs.execute("c", "exit", &["0"])[0]),
        ResponsePayload::ProcessStartedResponse(_)
    ));
    let events = procs.tick();
    assert!(exit_of(&events).is_some());

    // A guest's spawn of a program not compiled yet waits (not runnable, not spinning) and
    // goes on once it is: `parent` runs `spin`... already compiled; `keep` a fresh one.
    let content = String::from_utf8(module("cat")).unwrap();
    procs.call(write("/bin/fresh", &content));
    let parent = procs.execute("p", "parent", &["keep", "fresh"]);
    assert!(parent.is_empty(), "parent itself compiles first");
    complete_compiles(&mut procs);
    procs.host.drain();
    for _ in 0..5 {
        procs.tick();
    }
    assert_eq!(procs.host.sidecar.compiles_in_flight(), 1, "the child's program compiles");
    let runnable_before = procs.host.sidecar.runnable_processes();
    procs.tick();
    assert_eq!(procs.host.sidecar.runnable_processes(), runnable_before, "the parent waits, it does not spin");
    complete_compiles(&mut procs);
    procs.tick();
    procs.tick();
    assert_eq!(procs.host.sidecar.compiles_in_flight(), 0);
    let snapshot = procs.send(RequestPayload::GetProcessSnapshotRequest);
    match response_payload(&snapshot[0]) {
        ResponsePayload::ProcessSnapshotResponse(snapshot) => {
            assert!(snapshot.processes.iter().any(|p| p.command == "fresh"), "{snapshot:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_execute_whose_vm_went_away_while_compiling_is_refused() {
    let mut procs = compiling_procs();
    procs.call(write("/bin/exit", &String::from_utf8(module("exit")).unwrap()));
    let id = procs.host.next_id();
    assert!(procs.host.request_with_id(id, procs.scope.clone(), execute("a", "exit", ["0"])).is_empty());
    procs.send(RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }));
    complete_compiles(&mut procs);
    let frames = procs.host.drain();
    let answer = frames
        .iter()
        .find(|frame| matches!(frame, ProtocolFrame::ResponseFrame(response) if response.request_id == id))
        .expect("answered");
    let (code, _) = rejection(answer);
    assert_eq!(code, "invalid_state");
}

/// An interpreter install whose module is the `exit` script, counting its loads.
#[derive(Debug, Default)]
struct ScriptPython {
    loads: std::sync::atomic::AtomicUsize,
}

impl kernel::host::python::PythonSource for ScriptPython {
    fn load(&self) -> Result<Arc<kernel::host::python::PythonInstall>, String> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Arc::new(kernel::host::python::PythonInstall {
            module: kernel::syscalls::engine::SharedModule::Bytes(Arc::from(module("exit"))),
            stdlib: Arc::new(kernel::host::python::StdlibArchive::from_bytes(Arc::from(Vec::new()))),
            preloaded: None,
        }))
    }
}

#[test]
fn with_compile_effects_the_first_python_execute_waits_for_the_interpreter_to_load_off_the_loop() {
    let engine = ScriptEngine::new();
    let python = Arc::new(ScriptPython::default());
    let sidecar = Sidecar::new(SidecarConfig::default())
        .with_guest_engine(Arc::new(engine.clone()))
        .with_compile_effects()
        .with_python(python.clone());
    let mut host = Harness::with_sidecar(sidecar);
    let (conn, session, vm) = host.vm(OPEN);
    host.drain();
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    let python_execute = |id: &str| {
        RequestPayload::ExecuteRequest(ExecuteRequest {
            command: None,
            runtime: Some(GuestRuntimeKind::Python),
            ..ExecuteRequest::command(id, "", ["5"])
        })
    };
    assert!(host.request(scope.clone(), python_execute("py")).is_empty(), "it waits for the load");
    let (id, effect) = host.sidecar.poll_effect().expect("the load is asked for");
    assert_eq!(effect.summary(), kernel::host::effect::EffectSummary::LoadPython);
    assert_eq!(python.loads.load(std::sync::atomic::Ordering::Relaxed), 0, "the kernel did not load it itself");
    // Other requests are answered meanwhile.
    let snapshot = host.request(scope.clone(), RequestPayload::GetProcessSnapshotRequest);
    assert!(matches!(response_payload(&snapshot[0]), ResponsePayload::ProcessSnapshotResponse(_)));
    let now = host.now;
    host.sidecar.handle_completion(id, kernel::host::effect::Completion::PythonLoaded(Ok(())), now);
    // Then it compiles like any program, and starts.
    while let Some((id, effect)) = host.sidecar.poll_effect() {
        assert!(matches!(effect, kernel::host::effect::Effect::Compile { .. }), "{effect:?}");
        host.sidecar.handle_completion(id, kernel::host::effect::Completion::Compiled, now);
    }
    let frames = host.drain();
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::ProcessStartedResponse(_)), "{frames:?}");
    // Loaded once: the next one starts at once.
    let frames = host.request(scope.clone(), python_execute("py2"));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::ProcessStartedResponse(_)), "{frames:?}");
    assert!(host.sidecar.poll_effect().is_none());
}
