//! Process requests (`Execute`, `WriteStdin`, `CloseStdin`, `KillProcess`, snapshots) and the
//! scheduler's tick, on the dispatcher (see `crate::process` for the model).

use std::collections::BTreeMap;
use std::sync::Arc;

use schema::wire::*;

use crate::clock::{Entropy, Now};
use crate::dispatch::compile::{PendingExecute, PythonReadiness, Readiness};
use crate::dispatch::vm_table::Summary;
use crate::dispatch::{HostCallbackOutcome, Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::fs::GuestAsks;
use crate::host::python::{PythonInstall, PYTHON_ARGV0, PYTHON_COMMANDS};
use crate::host::software::SOFTWARE_BIN;
use crate::policy::permissions::{Capability, Decision};
use crate::process::fds::{Descriptor, FdTable, OpenFile};
use crate::process::table::{
    ChildSetup, Identity, Process, SpawnTarget, Status, ToolCall, ToolCallState, Wait, HOST_PPID,
};
use crate::process::*;
use crate::syscalls::engine::{Guest, GuestEngine, GuestExit, GuestPoll, GuestSpawn, SharedModule};
use crate::syscalls::{tools, Syscalls};
use crate::vfs::Errno;
use crate::vm::exec::fd_limit;
use crate::vm::{PromptOutcome, Vm};

/// What serving a spawn came to.
enum Spawned {
    /// Answered: the child's pid or the errno (`None`: an exec that worked, nothing to answer).
    Done(Option<Result<u32, Errno>>),
    /// Its program is compiling: served again once a compilation completes.
    Compiling,
}

/// Why a spawn started nothing now.
enum NotStarted {
    Compiling,
    Failed(Errno),
}

impl From<Errno> for NotStarted {
    fn from(errno: Errno) -> Self {
        Self::Failed(errno)
    }
}

impl Sidecar {
    /// Gives the kernel an engine to run guests. Without one, `Execute` is `unsupported`.
    pub fn with_guest_engine(mut self, engine: Arc<dyn GuestEngine>) -> Self {
        self.guest_engine = Some(engine);
        self
    }

    /// Whether `payload` is one of the process requests [`Self::process_request`] serves.
    pub(crate) fn is_process_request(payload: &RequestPayload) -> bool {
        matches!(
            payload,
            RequestPayload::ExecuteRequest(_)
                | RequestPayload::WriteStdinRequest(_)
                | RequestPayload::CloseStdinRequest(_)
                | RequestPayload::GetProcessSnapshotRequest
                | RequestPayload::GetSignalStateRequest(_)
                | RequestPayload::GetZombieTimerCountRequest
        )
    }

    /// The process requests of a VM (`KillProcess` is answered by [`Self::kill_process`]).
    /// `None`: answered later (an `Execute` whose program is compiling).
    pub(crate) fn process_request(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        vm_id: &str,
        payload: RequestPayload,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let answer = match payload {
            RequestPayload::ExecuteRequest(request) => {
                return self.execute(stream, request_id, ownership, vm_id, request)
            }
            RequestPayload::WriteStdinRequest(request) => self.write_stdin(vm_id, request),
            RequestPayload::CloseStdinRequest(request) => self.close_stdin(vm_id, &request.process_id),
            RequestPayload::GetProcessSnapshotRequest => self.process_snapshot(vm_id),
            RequestPayload::GetSignalStateRequest(request) => self.signal_state(vm_id, &request.process_id),
            RequestPayload::GetZombieTimerCountRequest => self.zombie_timer_count(vm_id),
            other => Err(crate::dispatch::not_yet(&other)),
        };
        answer.map(Some)
    }

    /// The Python interpreter when `request` runs it: loaded (once) from the sidecar's install.
    /// Without one, `runtime: PYTHON` is `unsupported` and `python` an ordinary command.
    pub(crate) fn python_for(&self, request: &ExecuteRequest) -> Result<Option<Arc<PythonInstall>>, Rejection> {
        if !crate::vm::exec::runs_python(request) {
            return Ok(None);
        }
        match &self.python {
            Some(source) => source.load().map(Some).map_err(|why| Rejection::new(RejectCode::Unsupported, why)),
            None if request.runtime == Some(GuestRuntimeKind::Python) && request.command.is_none() => {
                Err(Rejection::new(
                    RejectCode::Unsupported,
                    "this sidecar has no Python interpreter: scripts/fetch-python.sh installs it",
                ))
            }
            None => Ok(None),
        }
    }

    /// A guest's `python` or `python3` (by name, or the software tree's stub on `PATH`; spawned
    /// or exec'd, as from a shell pipeline): the interpreter, as for an `Execute` (its argv[0]
    /// the interpreter's path, `TMPDIR` `/tmp` unless set), with `argv` and `env` so adjusted;
    /// not yet while the driver loads it. Other programs, or a sidecar without the interpreter:
    /// `None`, and they are left as they are.
    fn python_child(
        &mut self,
        program: &str,
        mut argv: Vec<String>,
        mut env: Vec<String>,
    ) -> Result<ChildProgram, NotStarted> {
        let name = program.strip_prefix(SOFTWARE_BIN).and_then(|rest| rest.strip_prefix('/')).unwrap_or(program);
        if self.python.is_none() || !PYTHON_COMMANDS.contains(&name) {
            return Ok(ChildProgram { python: None, argv, env });
        }
        let install = match self.python_for_spawn() {
            Ok(Some(install)) => install,
            Ok(None) => return Err(NotStarted::Compiling),
            Err(_) => return Err(Errno::ENOENT.into()),
        };
        match argv.first_mut() {
            Some(first) => PYTHON_ARGV0.clone_into(first),
            None => argv.push(PYTHON_ARGV0.to_owned()),
        }
        if !env.iter().any(|entry| entry.starts_with("TMPDIR=")) {
            env.push("TMPDIR=/tmp".to_owned());
        }
        Ok(ChildProgram { python: Some(install), argv, env })
    }

    /// Starts a process; `None` when its program is being compiled first (it is answered then,
    /// see `compile`).
    pub(crate) fn execute(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        vm_id: &str,
        request: ExecuteRequest,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let now = self.now;
        let engine = self.guest_engine.clone().ok_or_else(|| {
            Rejection::new(RejectCode::Unsupported, "this sidecar has no guest engine: it cannot execute processes")
        })?;
        self.check_memory_budget()?;
        let memory_budget = Arc::clone(&self.memory_budget);
        let python = match self.python_readiness(&request)? {
            PythonReadiness::NotNeeded => None,
            PythonReadiness::Ready(install) => Some(install),
            PythonReadiness::Loading => {
                let (ownership, vm_id) = (ownership.clone(), vm_id.to_owned());
                self.wait_for_python(PendingExecute { stream, request_id, ownership, vm_id, request })?;
                return Ok(None);
            }
        };
        let vm = self.vm_mut(vm_id)?;
        let plan = vm.plan_execution(&request, now, python.as_deref())?;
        let limits = vm.guest_limits();
        if let Readiness::Compiling(key) = self.program_readiness(&plan.module, limits.max_wasm_stack_bytes)? {
            let ownership = ownership.clone();
            let vm_id = vm_id.to_owned();
            self.wait_for_compile(key, PendingExecute { stream, request_id, ownership, vm_id, request })?;
            return Ok(None);
        }
        let vm = self.vm_mut(vm_id)?;
        let program = engine.load_shared(&plan.module, limits.max_wasm_stack_bytes).map_err(|error| {
            Rejection::new(RejectCode::ExecutionError, format!("invalid WebAssembly module: {error}"))
        })?;
        let guest = program
            .spawn(GuestSpawn { args: plan.argv.clone(), env: plan.env.clone(), limits, memory_budget })
            .map_err(|error| {
                Rejection::new(RejectCode::ExecutionError, format!("cannot start {}: {error}", plan.command))
            })?;
        let pid = vm
            .processes_mut()
            .allocate_pid()
            .ok_or_else(|| Rejection::new(RejectCode::KernelError, "EAGAIN: process ids exhausted in this VM"))?;
        let mut fds = FdTable::default();
        for file in [OpenFile::Stdin { owner: pid }, OpenFile::Stdout { owner: pid }, OpenFile::Stderr { owner: pid }] {
            fds.insert(Descriptor::stdio(file), u64::MAX).map_err(|_| fd_limit())?;
        }
        if plan.tier != WasmPermissionTier::Isolated {
            // `/` is the only preopen: wasi-libc resolves every path, relative ones against its
            // own cwd (`/` at start), through it.
            fds.insert(Descriptor::preopen("/".to_owned(), "/".to_owned()), u64::MAX).map_err(|_| fd_limit())?;
        }
        vm.processes_mut().insert(Process::new(
            Identity {
                process_id: request.process_id.clone(),
                pid,
                ppid: HOST_PPID,
                pgid: pid,
                sid: pid,
                command: plan.command,
                args: request.args,
                env: plan.env.clone(),
                cwd: plan.cwd,
                tier: plan.tier,
                top_level: true,
            },
            fds,
        ));
        let run_deadline = python.is_some().then(|| vm.python_run_deadline(now.monotonic_ms)).flatten();
        if let Some(process) = vm.processes_mut().get_mut(pid) {
            process.run_deadline = run_deadline;
        }
        self.guests.insert((vm_id.to_owned(), pid), guest);
        Ok(Some(ResponsePayload::ProcessStartedResponse(ProcessStartedResponse {
            process_id: request.process_id,
            pid: Some(pid),
        })))
    }

    fn write_stdin(&mut self, vm_id: &str, request: WriteStdinRequest) -> Result<ResponsePayload, Rejection> {
        let vm = self.vm_mut(vm_id)?;
        let process = vm.active_process_mut(&request.process_id)?;
        if process.stdin_closed {
            return Err(Rejection::new(RejectCode::ExecutionError, "guest WebAssembly stdin is already closed"));
        }
        if process.stdin.len().saturating_add(request.chunk.len()) > STDIN_BUFFER_LIMIT_BYTES {
            return Err(Rejection::new(
                RejectCode::ExecutionError,
                format!("failed to write guest stdin: guest stdin buffer exceeded {STDIN_BUFFER_LIMIT_BYTES} bytes"),
            ));
        }
        process.stdin.extend(&request.chunk);
        Ok(ResponsePayload::StdinWrittenResponse(StdinWrittenResponse {
            process_id: request.process_id,
            accepted_bytes: u64::try_from(request.chunk.len()).unwrap_or(u64::MAX),
        }))
    }

    fn close_stdin(&mut self, vm_id: &str, process_id: &str) -> Result<ResponsePayload, Rejection> {
        let vm = self.vm_mut(vm_id)?;
        let process = vm.active_process_mut(process_id)?;
        process.stdin_closed = true;
        Ok(ResponsePayload::StdinClosedResponse(StdinClosedResponse { process_id: process_id.to_owned() }))
    }

    /// `KillProcess`: the signal is parsed first (a bad one is reported even for an unknown
    /// process, like the original), the response goes out, then the signal acts, so the exit it
    /// causes follows the response.
    pub(crate) fn kill_process(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        vm_id: &str,
        request: &KillProcessRequest,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        if request.signal.trim().is_empty() {
            return Err(Rejection::invalid_state("kill_process requires a non-empty signal"));
        }
        let signal = signals::parse(&request.signal)
            .ok_or_else(|| Rejection::invalid_state(format!("unsupported kill_process signal {}", request.signal)))?;
        let vm = self.vm_mut(vm_id)?;
        let pid = vm.active_process_mut(&request.process_id)?.pid;
        let response = ProcessKilledResponse { process_id: request.process_id.clone() };
        self.respond(stream, request_id, ownership.clone(), ResponsePayload::ProcessKilledResponse(response));
        self.signal_process(vm_id, pid, signal);
        Ok(None)
    }

    /// Tells the host of every attempt to leave the VM made during the slice: a
    /// `StructuredEvent` named `network.connect` each, with `processId`, `pid`, `destination`,
    /// `decision` (`allow`/`deny`) and `reason` (and `dropped`, the attempts before it that did
    /// not fit the queue, when there were any).
    pub(crate) fn report_connect_attempts(&mut self, vm_id: &str) {
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let (attempts, mut dropped) = vm.processes_mut().net.take_attempts();
        let limit_hits = vm.processes_mut().net.take_limit_hits();
        let link_reports = vm.processes_mut().net.take_link_reports();
        if attempts.is_empty() && limit_hits.is_empty() && link_reports.is_empty() {
            return;
        }
        let (stream, scope) = (vm.stream(), vm.scope());
        let process_ids: Vec<String> = attempts
            .iter()
            .map(|attempt| vm.processes().get(attempt.pid).map(|p| p.process_id.clone()).unwrap_or_default())
            .collect();
        for (attempt, process_id) in attempts.into_iter().zip(process_ids) {
            let mut detail = BTreeMap::from([
                ("processId".to_owned(), process_id),
                ("pid".to_owned(), attempt.pid.to_string()),
                ("destination".to_owned(), attempt.destination),
                ("decision".to_owned(), attempt.decision.to_owned()),
                ("reason".to_owned(), attempt.reason),
            ]);
            if dropped > 0 {
                detail.insert("dropped".to_owned(), std::mem::take(&mut dropped).to_string());
            }
            let event = StructuredEvent { name: "network.connect".to_owned(), detail };
            self.emit_event(stream, scope.clone(), EventPayload::StructuredEvent(event));
        }
        self.report_limit_hits(vm_id, limit_hits);
        self.report_closed_links(vm_id, link_reports);
    }

    /// Tells the host of the connections out that ended: a `StructuredEvent` named
    /// `network.close` each, with `destination`, `bytesSent`, `bytesReceived`, `error` (the
    /// errno that ended it, when one did) and the VM's totals so far, `vmBytesSent` and
    /// `vmBytesReceived`.
    fn report_closed_links(&mut self, vm_id: &str, reports: Vec<crate::net::LinkReport>) {
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let (stream, scope) = (vm.stream(), vm.scope());
        let net = &vm.processes().net;
        let (vm_sent, vm_received) = (net.bytes_sent_out.to_string(), net.bytes_received_in.to_string());
        for report in reports {
            let mut detail = BTreeMap::from([
                ("destination".to_owned(), report.destination),
                ("bytesSent".to_owned(), report.bytes_sent.to_string()),
                ("bytesReceived".to_owned(), report.bytes_received.to_string()),
                ("vmBytesSent".to_owned(), vm_sent.clone()),
                ("vmBytesReceived".to_owned(), vm_received.clone()),
            ]);
            if let Some(errno) = report.failure {
                detail.insert("error".to_owned(), errno.code().to_owned());
            }
            let event = StructuredEvent { name: "network.close".to_owned(), detail };
            self.emit_event(stream, scope.clone(), EventPayload::StructuredEvent(event));
        }
    }

    /// Tells the host of the network limits guests hit during the slice: a `StructuredEvent`
    /// named `network.limit` per process and limit, with `processId`, `pid`, `limit`, `errno`
    /// and `count` (the refusals in the slice).
    fn report_limit_hits(&mut self, vm_id: &str, hits: Vec<crate::net::LimitHit>) {
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let (stream, scope) = (vm.stream(), vm.scope());
        let events: Vec<StructuredEvent> = hits
            .into_iter()
            .map(|hit| {
                let process_id = vm.processes().get(hit.pid).map(|p| p.process_id.clone()).unwrap_or_default();
                let detail = BTreeMap::from([
                    ("processId".to_owned(), process_id),
                    ("pid".to_owned(), hit.pid.to_string()),
                    ("limit".to_owned(), hit.limit.to_owned()),
                    ("errno".to_owned(), hit.errno.code().to_owned()),
                    ("count".to_owned(), hit.count.to_string()),
                ]);
                StructuredEvent { name: "network.limit".to_owned(), detail }
            })
            .collect();
        for event in events {
            self.emit_event(stream, scope.clone(), EventPayload::StructuredEvent(event));
        }
    }

    /// Delivers the signals `pid`'s guest sent (`proc_kill`) during its slice: to a process, or
    /// to every member of a group (negative targets).
    fn deliver_guest_signals(&mut self, vm_id: &str, pid: u32) {
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        let signals = std::mem::take(&mut process.outgoing_signals);
        for (target, signal) in signals {
            let Ok(vm) = self.vm_mut(vm_id) else { return };
            let pids = match u32::try_from(target) {
                Ok(target) => vec![target],
                Err(_) => {
                    u32::try_from(target.unsigned_abs()).map(|pgid| vm.processes().group(pgid)).unwrap_or_default()
                }
            };
            for target in pids {
                self.signal_process(vm_id, target, signal);
            }
        }
    }

    /// Delivers `signal` to `pid`: ignored if the guest set it to IGNORE, else its default action
    /// (guest handlers are not run; a handled signal acts by default). Signal 0 only probes that
    /// the process exists.
    pub(crate) fn signal_process(&mut self, vm_id: &str, pid: u32, signal: u32) {
        let Some(action) = signals::default_action(signal) else { return };
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid).filter(|process| process.is_alive()) else { return };
        let ignored =
            process.handlers.get(&signal).is_some_and(|handler| handler.action == SignalDispositionAction::Ignore);
        if ignored {
            return;
        }
        if process.blocks(signal) {
            // Held until the process unblocks it (`sigprocmask` delivers it then).
            process.pending_signals |= signals::bit(signal);
            return;
        }
        match action {
            DefaultAction::Ignore => {}
            DefaultAction::Stop => process.status = Status::Stopped,
            DefaultAction::Continue => process.status = Status::Running,
            DefaultAction::Terminate => {
                process.killed_by = Some(signal);
                if let Some(mut guest) = self.guests.remove(&(vm_id.to_owned(), pid)) {
                    guest.kill();
                }
                self.finish_process(vm_id, pid, GuestExit { code: signals::exit_code(signal), message: None });
            }
        }
    }

    fn process_snapshot(&mut self, vm_id: &str) -> Result<ResponsePayload, Rejection> {
        let vm = self.vm_mut(vm_id)?;
        match vm.policy().decide(Capability::ProcessInspect, "process://snapshot", false) {
            Decision::Allow => {}
            Decision::Deny { message } => {
                return Err(Rejection::new(
                    RejectCode::ExecutionError,
                    format!("EACCES: permission denied, process://snapshot: {message}"),
                ))
            }
            Decision::Ask => {
                return Err(Rejection::new(
                    RejectCode::ExecutionError,
                    "EACCES: permission denied, process://snapshot: permission prompt required for process.inspect",
                ))
            }
        }
        // Active processes by id, then the exited ones still retained, in exit order.
        let mut active: Vec<&Process> = vm.processes().iter().filter(|process| process.is_alive()).collect();
        active.sort_by(|a, b| a.process_id.cmp(&b.process_id));
        let mut exited: Vec<&Process> = vm.processes().iter().filter(|process| !process.is_alive()).collect();
        exited.sort_by_key(|process| (process.exited_at_ms, process.exit_order));
        let processes = active.into_iter().chain(exited).map(Process::snapshot).collect();
        Ok(ResponsePayload::ProcessSnapshotResponse(ProcessSnapshotResponse { processes }))
    }

    /// The dispositions the process's guest set (`proc_sigaction`), DEFAULT ones included, like
    /// the original's WebAssembly runner; an unknown or exited process has an empty map.
    fn signal_state(&mut self, vm_id: &str, process_id: &str) -> Result<ResponsePayload, Rejection> {
        let vm = self.vm_mut(vm_id)?;
        let handlers = vm
            .processes()
            .active_pid(process_id)
            .and_then(|pid| vm.processes().get(pid))
            .map(|process| process.handlers.clone())
            .unwrap_or_default();
        Ok(ResponsePayload::SignalStateResponse(SignalStateResponse { process_id: process_id.to_owned(), handlers }))
    }

    /// Zombies: exited children not reaped yet (each has its timer). Host-started processes are
    /// reaped at once, so they never count.
    fn zombie_timer_count(&mut self, vm_id: &str) -> Result<ResponsePayload, Rejection> {
        let vm = self.vm_mut(vm_id)?;
        let count = u64::try_from(vm.processes().zombies()).unwrap_or(u64::MAX);
        Ok(ResponsePayload::ZombieTimerCountResponse(ZombieTimerCountResponse { count }))
    }

    // -----------------------------------------------------------------------------------------
    // Scheduler
    // -----------------------------------------------------------------------------------------

    /// Processes that could run a slice right now (in every VM), for drivers and invariant
    /// checks: while there are any, [`Sidecar::next_deadline`] is now.
    pub fn runnable_processes(&self) -> usize {
        let runnable_in = |vm: &Vm| vm.processes().iter().filter(|process| process.is_runnable()).count();
        let vms = self.vms.runnable(&|vm| self.summarize(vm));
        vms.iter().filter_map(|vm_id| self.vms.get(vm_id)).map(runnable_in).sum()
    }

    /// The earliest time the scheduler has work: now while a guest is runnable, else the
    /// nearest sleep deadline or zombie reaping (O(log VMs) plus the VMs changed since the last
    /// question: see `vm_table`).
    pub(crate) fn process_deadline(&self) -> Option<u64> {
        self.vms.next_deadline(self.now.monotonic_ms, &|vm| self.summarize(vm))
    }

    /// What the scheduler needs to know of `vm` (see [`Summary`]). Independent of the time, so a
    /// summary stays true until the VM changes: a sleep is a timer, never work now.
    fn summarize(&self, vm: &Vm) -> Summary {
        let table = vm.processes();
        let mut summary = Summary::default();
        let mut timer = |at: u64| summary.timer_ms = Some(summary.timer_ms.map_or(at, |current| current.min(at)));
        let (mut runnable, mut wake) = (false, false);
        let mut retained = 0usize;
        for process in table.iter() {
            if let (Some(deadline), true) = (process.run_deadline, process.is_alive()) {
                timer(deadline.at_ms);
            }
            match (process.status, process.wait) {
                (Status::Running, Wait::Sleep { until_ms }) => {
                    timer(until_ms);
                    wake |= table.wait_is_over(process, 0);
                }
                (Status::Running, Wait::None) => runnable = true,
                (Status::Running, Wait::Prompt { ticket: None } | Wait::Spawn | Wait::HostCall { asked: false }) => {
                    wake = true
                }
                (Status::Running, Wait::Prompt { ticket: Some(ticket) }) => wake |= self.has_prompt_outcome(ticket),
                (Status::Running, Wait::Tool) => wake |= self.tool_call_due(process),
                (Status::Running, _) => wake |= table.wait_is_over(process, 0),
                (Status::Exited(_), _) if process.top_level => {
                    retained = retained.saturating_add(1);
                    timer(process.exited_at_ms.unwrap_or(0).saturating_add(EXITED_RETENTION_MS));
                }
                (Status::Exited(_), _) if process.ppid == HOST_PPID => {
                    timer(process.exited_at_ms.unwrap_or(0).saturating_add(ZOMBIE_TTL_MS));
                }
                _ => {}
            }
        }
        // Past the bound, the oldest exited processes are forgotten at once.
        summary.runnable = runnable;
        summary.wake = wake || retained > MAX_RETAINED_EXITED_PER_VM;
        summary
    }

    /// The VMs the wake pass (and the prompt and spawn service) must look at now, in creation
    /// order: a wait over, something to serve, or a timer come.
    pub(super) fn waking_vms(&self) -> Vec<String> {
        self.vms.waking(self.now.monotonic_ms, &|vm| self.summarize(vm))
    }

    /// Checks that the scheduler's cached summaries match every VM's state (a VM changed
    /// without the table knowing would leave a process asleep forever).
    #[cfg(feature = "testing")]
    pub fn assert_schedule_current(&self) {
        self.vms.assert_schedule_current(&|vm| self.summarize(vm));
    }

    /// Wakes sleepers whose time has come, reaps old zombies, and runs up to
    /// [`MAX_SLICES_PER_TICK`] guest slices.
    pub(crate) fn run_processes(&mut self) {
        let now_ms = self.now.monotonic_ms;
        let mut overdue = Vec::new();
        for vm_id in &self.waking_vms() {
            let Some(vm) = self.vms.get_mut(vm_id) else { continue };
            let table = vm.processes();
            overdue.extend(overdue_processes(table, now_ms).map(|(pid, limit_ms)| (vm_id.clone(), pid, limit_ms)));
            let ready: Vec<u32> =
                table.iter().filter(|process| table.wait_is_over(process, now_ms)).map(|process| process.pid).collect();
            for pid in ready {
                if let Some(process) = vm.processes_mut().get_mut(pid) {
                    process.wait = Wait::None;
                    process.wake_on.clear();
                }
            }
            vm.forget_exited(now_ms);
        }
        self.end_overdue_processes(overdue);
        self.serve_prompts();
        self.serve_tool_calls();
        self.serve_spawns();
        let mut spent_fuel = 0u64;
        for _ in 0..MAX_SLICES_PER_TICK {
            if spent_fuel >= MAX_TICK_FUEL {
                break;
            }
            let Some((vm_id, pid)) = self.next_runnable() else { break };
            let work_fuel = self.run_slice(&vm_id, pid);
            spent_fuel = spent_fuel.saturating_add(SLICE_FUEL).saturating_add(work_fuel);
            self.last_scheduled = Some((vm_id, pid));
        }
        // The host calls guests parked on (in these slices, or in a spawn's program load) go
        // out now, not a tick later. Parks happen only there, so this is the one place.
        self.serve_host_calls();
    }

    /// Ends the `overdue` processes, (VM, pid, limit) past their run deadline (a Python
    /// process's `limits.python.executionTimeoutMs`): status 124, as `timeout(1)` and the fuel
    /// limit give, with the reason on stderr.
    fn end_overdue_processes(&mut self, overdue: Vec<(String, u32, u64)>) {
        for (vm_id, pid, limit_ms) in overdue {
            let message =
                format!("guest Python runtime timed out after {limit_ms}ms (limits.python.executionTimeoutMs)");
            self.finish_process(&vm_id, pid, GuestExit { code: EXIT_TIMED_OUT, message: Some(message) });
        }
    }

    /// Sends the permission prompts guests stopped at, and wakes the guests whose prompts the
    /// host answered (or that timed out: a denial), so their calls are retried.
    fn serve_prompts(&mut self) {
        let mut to_send = Vec::new();
        let mut waiting = Vec::new();
        for vm_id in self.waking_vms() {
            let Some(vm) = self.vms.get(&vm_id) else { continue };
            for process in vm.processes().iter() {
                match process.wait {
                    Wait::Prompt { ticket: None } => {
                        if let Some(needed) = process.asks.needed.clone() {
                            to_send.push((vm_id.clone(), process.pid, needed, vm.prompt_timeout_ms()));
                        }
                    }
                    Wait::Prompt { ticket: Some(ticket) } => waiting.push((vm_id.clone(), process.pid, ticket)),
                    _ => {}
                }
            }
        }
        for (vm_id, pid, (capability, resource), timeout_ms) in to_send {
            let sent = self.send_prompt(&vm_id, capability.as_str(), &resource, timeout_ms);
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            let Some(process) = vm.processes_mut().get_mut(pid) else { continue };
            match sent {
                Ok(ticket) => process.wait = Wait::Prompt { ticket: Some(ticket) },
                Err(rejection) => {
                    process.asks.needed = None;
                    process.asks.refused = Some((capability, resource, rejection.message));
                    process.wait = Wait::None;
                }
            }
        }
        let abandoned: Vec<_> = self.abandoned_prompts.iter().copied().collect();
        for ticket in abandoned {
            if self.take_prompt_outcome(ticket).is_some() {
                self.abandoned_prompts.remove(&ticket);
            }
        }
        for (vm_id, pid, ticket) in waiting {
            let Some(outcome) = self.take_prompt_outcome(ticket) else { continue };
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            let Some(process) = vm.processes_mut().get_mut(pid) else { continue };
            if let Some((capability, resource)) = process.asks.needed.take() {
                match outcome {
                    PromptOutcome::Allowed => process.asks.granted.push((capability, resource)),
                    PromptOutcome::Denied(message) => process.asks.refused = Some((capability, resource, message)),
                }
            }
            process.wait = Wait::None;
        }
    }

    /// Sends the host callbacks of guests' tool calls (`syscalls::tools`), and wakes the guests
    /// whose callbacks have their outcome (the host's answer, a timeout, a cancellation), with
    /// the answer frame for their call's retry.
    fn serve_tool_calls(&mut self) {
        let abandoned: Vec<_> = self.abandoned_callbacks.iter().cloned().collect();
        for invocation_id in abandoned {
            if self.take_host_callback_outcome(&invocation_id).is_some() {
                self.abandoned_callbacks.remove(&invocation_id);
            }
        }
        let mut due = Vec::new();
        for vm_id in self.waking_vms() {
            let Some(vm) = self.vms.get(&vm_id) else { continue };
            due.extend(vm.processes().iter().filter(|p| self.tool_call_due(p)).map(|p| (vm_id.clone(), p.pid)));
        }
        for (vm_id, pid) in due {
            let taken = self.vm_mut(&vm_id).ok().and_then(|vm| vm.processes_mut().get_mut(pid)?.tool_call.take());
            let Some(call) = taken else { continue };
            let state = match call.state {
                ToolCallState::Needed { key, input } => match self.start_host_callback(&vm_id, &key, &input) {
                    Ok(invocation_id) => ToolCallState::Sent { key, invocation_id },
                    Err(rejection) => {
                        let message = format!("{key}: {}", rejection.message);
                        ToolCallState::Answered(tools::error_frame(call.frame_id, "tool_error", &message))
                    }
                },
                ToolCallState::Sent { key, invocation_id } => match self.take_host_callback_outcome(&invocation_id) {
                    Some(outcome) => ToolCallState::Answered(tool_outcome_frame(call.frame_id, &key, &outcome)),
                    None => ToolCallState::Sent { key, invocation_id },
                },
                answered @ ToolCallState::Answered(_) => answered,
            };
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            let Some(process) = vm.processes_mut().get_mut(pid) else { continue };
            if matches!(state, ToolCallState::Answered(_)) {
                process.wait = Wait::None;
            }
            process.tool_call = Some(ToolCall { state, ..call });
            self.vms.touch(&vm_id);
        }
    }

    /// Whether `process`'s tool call has something for `serve_tool_calls` to do: a callback to
    /// send, or the outcome of the one sent.
    fn tool_call_due(&self, process: &Process) -> bool {
        if process.wait != Wait::Tool {
            return false;
        }
        match &process.tool_call {
            Some(ToolCall { state: ToolCallState::Needed { .. }, .. }) => true,
            Some(ToolCall { state: ToolCallState::Sent { invocation_id, .. }, .. }) => {
                self.has_callback_outcome(invocation_id)
            }
            _ => false,
        }
    }

    /// The first runnable process after the last one scheduled, in (VM creation order, pid)
    /// order, wrapping: after the last one in its own VM, then the VMs after it, then from the
    /// first VM round to the last one again. Only VMs with a runnable process are looked at.
    fn next_runnable(&self) -> Option<(String, u32)> {
        let first_in = |vm_id: &str, vm: &Vm, after: Option<u32>| {
            let mut runnable = vm.processes().iter().filter(|process| process.is_runnable());
            let process = runnable.find(|process| after.is_none_or(|after| process.pid > after))?;
            Some((vm_id.to_owned(), process.pid))
        };
        let summarize = |vm: &Vm| self.summarize(vm);
        let Some((last_vm, last_pid)) = &self.last_scheduled else {
            return self.vms.find_runnable(None, &summarize, |vm_id, vm| first_in(vm_id, vm, None));
        };
        let same = self.vms.is_runnable(last_vm, &summarize).then(|| self.vms.get(last_vm)).flatten();
        same.and_then(|vm| first_in(last_vm, vm, Some(*last_pid)))
            .or_else(|| self.vms.find_runnable(Some(last_vm), &summarize, |vm_id, vm| first_in(vm_id, vm, None)))
    }

    /// Runs one slice of `pid` with its VM lent to the guest, then turns its output into events
    /// and its exit (if any) into `ProcessExited`.
    /// Runs one slice of `pid`; the kernel work it caused, in fuel.
    fn run_slice(&mut self, vm_id: &str, pid: u32) -> u64 {
        let key = (vm_id.to_owned(), pid);
        let Some(mut guest) = self.guests.remove(&key) else { return 0 };
        let Some(mut vm) = self.vms.remove(vm_id) else { return 0 };
        if let Some(process) = vm.processes_mut().get_mut(pid) {
            process.wake_on.clear();
        }
        let entropy = std::mem::replace(&mut self.entropy, Entropy::from_seed(0));
        let (syscalls, poll) = guest.poll(Syscalls::new(vm, entropy, pid, self.now));
        let Some(syscalls) = syscalls else {
            // The engine lost the VM (a bug): forget it rather than serve a half-state. The
            // entropy stream restarts from a fresh draw of a seed nobody else saw.
            self.entropy = Entropy::from_seed(self.config.entropy_seed ^ 0x5eed_1057);
            self.forget_lost_vm(vm_id);
            return 0;
        };
        let work_fuel = syscalls.slice_work_fuel();
        let (mut vm, entropy) = syscalls.into_parts();
        self.entropy = entropy;
        if !matches!(poll, GuestPoll::Exited(_)) {
            self.guests.insert(key, guest);
        }
        if let Some(process) = vm.processes_mut().get_mut(pid) {
            // Answers serve the call they were asked for, within the slice that retries it.
            if !matches!(process.wait, Wait::Prompt { .. }) {
                process.asks = GuestAsks::default();
            }
        }
        self.vms.insert(vm_id.to_owned(), vm);
        // Children write to their host-started ancestor's output: flush every pending one.
        let pending: Vec<u32> = match self.vms.get(vm_id) {
            Some(vm) => vm.processes().iter().filter(|p| !p.output.is_empty()).map(|p| p.pid).collect(),
            None => Vec::new(),
        };
        for writer in pending {
            self.flush_output(vm_id, writer, false);
        }
        // Signals go out before an exit is processed: `kill(1)` sends and exits in one slice, and
        // an exit drops what the process had not sent yet.
        self.deliver_guest_signals(vm_id, pid);
        self.report_connect_attempts(vm_id);
        if let GuestPoll::Exited(exit) = poll {
            self.finish_process(vm_id, pid, exit);
        }
        work_fuel
    }

    /// Sends the output `pid` wrote since the last flush as `ProcessOutput` events. Output is
    /// line-buffered per channel: complete lines go out, a partial line waits for its end (or
    /// the exit, `last`), unless it outgrows [`MAX_HELD_LINE_BYTES`].
    fn flush_output(&mut self, vm_id: &str, pid: u32, last: bool) {
        let chunk_bytes = self.output_chunk_bytes();
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let (stream, scope) = (vm.stream(), vm.scope());
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        let output = std::mem::take(&mut process.output);
        if process.wait == Wait::Output {
            process.wait = Wait::None;
        }
        let mut ready: Vec<(Channel, Vec<u8>)> = Vec::new();
        for (channel, bytes) in output {
            let held = process.held_line_mut(channel);
            held.extend_from_slice(&bytes);
            let cut = if held.len() > MAX_HELD_LINE_BYTES {
                held.len()
            } else {
                held.iter().rposition(|byte| *byte == b'\n').map_or(0, |at| at.saturating_add(1))
            };
            if cut > 0 {
                let rest = held.split_off(cut);
                ready.push((channel, std::mem::replace(held, rest)));
            }
        }
        if last {
            for channel in [Channel::Stdout, Channel::Stderr] {
                let held = std::mem::take(process.held_line_mut(channel));
                if !held.is_empty() {
                    ready.push((channel, held));
                }
            }
        }
        let process_id = process.process_id.clone();
        for (channel, bytes) in ready {
            let channel = match channel {
                Channel::Stdout => StreamChannel::Stdout,
                Channel::Stderr => StreamChannel::Stderr,
            };
            for chunk in bytes.chunks(chunk_bytes) {
                let event = ProcessOutputEvent { process_id: process_id.clone(), channel, chunk: chunk.to_vec() };
                self.emit_event(stream, scope.clone(), EventPayload::ProcessOutputEvent(event));
            }
        }
    }

    /// `pid` stopped: its last words (a limit's message) go to stderr, then `ProcessExited`; it
    /// stays as a zombie until reaped.
    fn finish_process(&mut self, vm_id: &str, pid: u32, exit: GuestExit) {
        let now_ms = self.now.monotonic_ms;
        // An ended process's task is dropped (its instance and memory with it).
        self.guests.remove(&(vm_id.to_owned(), pid));
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let exit_order = vm.processes_mut().next_exit_order();
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        if !process.is_alive() {
            return;
        }
        process.exit_order = exit_order;
        let abandoned_call = match process.tool_call.take() {
            Some(ToolCall { state: ToolCallState::Sent { invocation_id, .. }, .. }) => Some(invocation_id),
            _ => None,
        };
        if let Wait::Prompt { ticket: Some(ticket) } = process.wait {
            // Nobody will retry the call: the answer, when it comes, is dropped.
            self.abandoned_prompts.insert(ticket);
        }
        if let Some(invocation_id) = abandoned_call {
            self.abandoned_callbacks.insert(invocation_id);
        }
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        if let Some(message) = &exit.message {
            process.push_output(Channel::Stderr, format!("{message}\n").as_bytes());
        }
        process.status = Status::Exited(exit.code);
        process.exited_at_ms = Some(now_ms);
        process.stdin.clear();
        process.handlers.clear();
        process.outgoing_signals.clear();
        let descriptors = process.fds.drain();
        for descriptor in descriptors {
            vm.processes_mut().file_closed(&descriptor.file);
        }
        vm.release_files();
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        let (process_id, top_level, ppid) = (process.process_id.clone(), process.top_level, process.ppid);
        process.spawn_request = None;
        if !top_level {
            // A child: its own children live on as orphans of the VM (their zombies are reaped
            // by timer); its parent may be waiting for it; nothing goes to the host.
            let orphans: Vec<u32> =
                vm.processes().iter().filter(|p| p.ppid == pid && !p.top_level).map(|p| p.pid).collect();
            for orphan in orphans {
                if let Some(orphan) = vm.processes_mut().get_mut(orphan) {
                    orphan.ppid = HOST_PPID;
                }
            }
            if let Some(parent) = vm.processes_mut().get_mut(ppid).filter(|parent| parent.wait == Wait::Child) {
                parent.wait = Wait::None;
            }
            return;
        }
        // A host-started process takes everything it started down with it, like the original.
        let descendants = vm.processes().descendants(pid);
        for descendant in &descendants {
            self.signal_process(vm_id, *descendant, SIGKILL);
        }
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        for descendant in descendants {
            vm.processes_mut().remove(descendant);
        }
        self.flush_output(vm_id, pid, true);
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let (stream, scope) = (vm.stream(), vm.scope());
        let event = ProcessExitedEvent { process_id, exit_code: exit.code };
        self.emit_event(stream, scope, EventPayload::ProcessExitedEvent(event));
    }

    /// Starts the children guests asked for (`proc_spawn`) in their last slice; each parent's
    /// retried call returns the child's pid or the errno.
    fn serve_spawns(&mut self) {
        let mut requests: Vec<(String, u32)> = Vec::new();
        for vm_id in self.waking_vms() {
            let Some(vm) = self.vms.get(&vm_id) else { continue };
            let spawning =
                vm.processes().iter().filter(|process| process.wait == Wait::Spawn && process.spawn_request.is_some());
            requests.extend(spawning.map(|process| (vm_id.clone(), process.pid)));
        }
        for (vm_id, parent) in requests {
            let deferring = self.defer_spawn(&vm_id, parent);
            let spawned = self.spawn_child(&vm_id, parent);
            if deferring && self.spawn_waits_for_host_call(&vm_id, parent) {
                continue;
            }
            let result = match spawned {
                Spawned::Done(result) => result,
                Spawned::Compiling => {
                    self.wait_for_compile_in_spawn(&vm_id, parent);
                    continue;
                }
            };
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            if let Some(process) = vm.processes_mut().get_mut(parent) {
                process.spawn_request = None;
                // `None`: an exec replaced the program that asked; the new one has no call to
                // answer.
                process.spawn_result = result;
                process.wait = Wait::None;
            }
        }
    }

    /// Installs `parent`'s host call memo for its spawn's program load, when the VM defers host
    /// calls (a program on a `host_dir` mount is read through effects, like the parent's own
    /// file calls: see `fs::host_gate`). Whether it did.
    fn defer_spawn(&mut self, vm_id: &str, parent: u32) -> bool {
        let Ok(vm) = self.vm_mut(vm_id) else { return false };
        if !vm.defers_host_calls() {
            return false;
        }
        let Some(process) = vm.processes_mut().get_mut(parent) else { return false };
        let memo = std::mem::take(&mut process.host_memo);
        vm.filesystem().host_gate().defer(memo);
        true
    }

    /// Ends [`defer_spawn`](Self::defer_spawn): whether the load needed a host call, in which
    /// case the attempt is void and `parent` waits for the call (its retried `proc_spawn` or
    /// `proc_exec` asks again, answered from the memo).
    fn spawn_waits_for_host_call(&mut self, vm_id: &str, parent: u32) -> bool {
        let Ok(vm) = self.vm_mut(vm_id) else { return false };
        let mut memo = vm.filesystem().host_gate().undefer();
        let Some(process) = vm.processes_mut().get_mut(parent) else { return false };
        let needed = memo.needed.is_some();
        if needed {
            memo.rewind();
            process.spawn_request = None;
            process.wait = Wait::HostCall { asked: false };
        }
        process.host_memo = memo;
        needed
    }

    /// Starts the program `parent` asked for: a new child (its pid), or `parent`'s own new
    /// program (`None`: an exec that worked is not answered); or not yet, while it compiles.
    fn spawn_child(&mut self, vm_id: &str, parent: u32) -> Spawned {
        let Some(request) = self
            .vm_mut(vm_id)
            .ok()
            .and_then(|vm| vm.processes().get(parent))
            .and_then(|process| process.spawn_request.clone())
        else {
            return Spawned::Done(None);
        };
        let outcome = match request.target {
            SpawnTarget::Child(setup) => {
                self.start_child(vm_id, parent, request.program, request.argv, request.env, setup).map(Some)
            }
            SpawnTarget::Caller { close_fds } => self
                .exec_program(vm_id, parent, &request.program, &request.argv, &request.env, &close_fds)
                .map(|()| None),
        };
        match outcome {
            Ok(result) => Spawned::Done(result.map(Ok)),
            Err(NotStarted::Compiling) => Spawned::Compiling,
            Err(NotStarted::Failed(errno)) => Spawned::Done(Some(Err(errno))),
        }
    }

    /// `parent` waits (not runnable, not woken) until a compilation completes.
    fn wait_for_compile_in_spawn(&mut self, vm_id: &str, parent: u32) {
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        if let Some(process) = vm.processes_mut().get_mut(parent) {
            process.wait = Wait::Compile;
            self.compiles.spawners.insert((vm_id.to_owned(), parent));
        }
    }

    /// After a compilation, the spawns that waited for one are served again (those whose
    /// program is still compiling wait again).
    pub(crate) fn wake_spawns_after_compile(&mut self) {
        for (vm_id, pid) in std::mem::take(&mut self.compiles.spawners) {
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            if let Some(process) = vm.processes_mut().get_mut(pid) {
                if process.wait == Wait::Compile {
                    process.wait = Wait::Spawn;
                }
            }
        }
    }

    /// Whether `module` may be started now (else its compilation is asked for).
    fn spawn_readiness(&mut self, module: &SharedModule, max_wasm_stack_bytes: u64) -> Result<(), NotStarted> {
        match self.program_readiness(module, max_wasm_stack_bytes) {
            Ok(Readiness::Ready) => Ok(()),
            Ok(Readiness::Compiling(_)) => Err(NotStarted::Compiling),
            // The effects in flight are at their bound: the guest may try again.
            Err(_) => Err(NotStarted::Failed(Errno::EAGAIN)),
        }
    }

    /// Starts `program` as a child of `parent`, set up as `setup` says.
    fn start_child(
        &mut self,
        vm_id: &str,
        parent: u32,
        program: String,
        argv: Vec<String>,
        env: Vec<String>,
        setup: ChildSetup,
    ) -> Result<u32, NotStarted> {
        let now = self.now;
        let engine = self.guest_engine.clone().ok_or(Errno::ENOSYS)?;
        let memory_budget = Arc::clone(&self.memory_budget);
        let vm = self.vm_mut(vm_id).map_err(|_| Errno::ESRCH)?;
        let process = vm.processes().get(parent).ok_or(Errno::ESRCH)?;
        let (parent_id, pgid, sid) = (process.process_id.clone(), process.pgid, process.sid);
        if u64::try_from(vm.processes().counted()).unwrap_or(u64::MAX) >= vm.process_limits().max_processes {
            return Err(Errno::EAGAIN.into());
        }
        let ChildProgram { python, argv, env } = self.python_child(&program, argv, env)?;
        let vm = self.vm_mut(vm_id).map_err(|_| Errno::ESRCH)?;
        let (command, module, tier) = child_command(vm, &program, &argv, &setup.cwd, &env, python.as_deref(), now)?;
        let env = vm.program_env(&module, env);
        let limits = vm.guest_limits();
        self.spawn_readiness(&module, limits.max_wasm_stack_bytes)?;
        let vm = self.vm_mut(vm_id).map_err(|_| Errno::ESRCH)?;
        let guest = start_guest(engine.as_ref(), limits, memory_budget, &module, &argv, &env)?;
        let pid = vm.processes_mut().allocate_pid().ok_or(Errno::EAGAIN)?;
        let run_deadline = python.is_some().then(|| vm.python_run_deadline(now.monotonic_ms)).flatten();
        let fds = child_fds(vm, setup.fds, tier);
        let number = count_child(vm, parent)?;
        let (pgid, sid) = match (setup.new_session, setup.process_group) {
            (true, _) => (pid, pid),
            (false, None) => (pgid, sid),
            (false, Some(0)) => (pid, sid),
            (false, Some(group)) => (group, sid),
        };
        let mut child = Process::new(
            Identity {
                process_id: format!("{parent_id}/child-{number}"),
                pid,
                ppid: parent,
                pgid,
                sid,
                command,
                args: argv.get(1..).unwrap_or_default().to_vec(),
                env,
                cwd: setup.cwd,
                tier,
                top_level: false,
            },
            fds,
        );
        child.signal_mask = setup.signal_mask;
        child.umask = setup.umask;
        child.run_deadline = run_deadline;
        vm.processes_mut().insert(child);
        self.guests.insert((vm_id.to_owned(), pid), guest);
        Ok(pid)
    }

    /// Replaces `pid`'s program with `program` (`exec`): the process stays (see
    /// `Process::replace_program`), its guest is dropped where it stands — inside its exec
    /// call, never to return — and the new program's guest runs from its start.
    fn exec_program(
        &mut self,
        vm_id: &str,
        pid: u32,
        program: &str,
        argv: &[String],
        env: &[String],
        close_fds: &[u32],
    ) -> Result<(), NotStarted> {
        let now = self.now;
        let engine = self.guest_engine.clone().ok_or(Errno::ENOSYS)?;
        let memory_budget = Arc::clone(&self.memory_budget);
        let ChildProgram { python, argv, env } = self.python_child(program, argv.to_vec(), env.to_vec())?;
        let vm = self.vm_mut(vm_id).map_err(|_| Errno::ESRCH)?;
        let cwd = vm.processes().get(pid).ok_or(Errno::ESRCH)?.cwd.clone();
        let (command, module, tier) = child_command(vm, program, &argv, &cwd, &env, python.as_deref(), now)?;
        let env = vm.program_env(&module, env);
        let limits = vm.guest_limits();
        self.spawn_readiness(&module, limits.max_wasm_stack_bytes)?;
        let vm = self.vm_mut(vm_id).map_err(|_| Errno::ESRCH)?;
        let guest = start_guest(engine.as_ref(), limits, memory_budget, &module, &argv, &env)?;
        let run_deadline = python.is_some().then(|| vm.python_run_deadline(now.monotonic_ms)).flatten();
        let process = vm.processes_mut().get_mut(pid).ok_or(Errno::ESRCH)?;
        process.run_deadline = run_deadline;
        let closed = process.replace_program(command, &argv, &env, tier, close_fds);
        for descriptor in closed {
            vm.processes_mut().file_closed(&descriptor.file);
        }
        vm.release_files();
        self.guests.insert((vm_id.to_owned(), pid), guest);
        Ok(())
    }

    /// Stops every live process of a VM being disposed (SIGKILL), emitting their exits.
    pub(crate) fn kill_all_processes(&mut self, vm_id: &str) {
        let pids: Vec<u32> = match self.vms.get(vm_id) {
            Some(vm) => vm.processes().iter().filter(|process| process.is_alive()).map(|process| process.pid).collect(),
            None => return,
        };
        for pid in pids {
            self.signal_process(vm_id, pid, SIGKILL);
        }
    }

    /// The largest `ProcessOutput` chunk: what fits a frame with room for the ids around it.
    fn output_chunk_bytes(&self) -> usize {
        const EVENT_OVERHEAD_BYTES: usize = 4096;
        const MAX_OUTPUT_CHUNK_BYTES: usize = 64 * 1024;
        // Even at the smallest frame limit an output event carries some bytes.
        const _: () = assert!(EVENT_OVERHEAD_BYTES < crate::dispatch::MIN_FRAME_LIMIT_BYTES);
        self.config.max_frame_bytes.saturating_sub(EVENT_OVERHEAD_BYTES).clamp(1, MAX_OUTPUT_CHUNK_BYTES)
    }
}

/// The live `processes` past their run deadline at `now_ms`: (pid, the limit).
fn overdue_processes(processes: &table::ProcessTable, now_ms: u64) -> impl Iterator<Item = (u32, u64)> + '_ {
    processes.iter().filter(|process| process.is_alive()).filter_map(move |process| {
        let deadline = process.run_deadline.filter(|deadline| deadline.at_ms <= now_ms)?;
        Some((process.pid, deadline.limit_ms))
    })
}

/// What a spawn or exec of a program runs with: the interpreter for `python` (else `None`:
/// the program is looked up), and its argv and environment.
struct ChildProgram {
    python: Option<Arc<PythonInstall>>,
    argv: Vec<String>,
    env: Vec<String>,
}

/// What a spawn or exec runs: `program`, which the policy must let it spawn, found as a module
/// on the `PATH` of `env` (or the interpreter `python` suited to `argv` run in `cwd`, its
/// library then shown in the VM), and the permission tier configured for the command or the
/// module's file.
fn child_command(
    vm: &mut Vm,
    program: &str,
    argv: &[String],
    cwd: &str,
    env: &[String],
    python: Option<&PythonInstall>,
    now: Now,
) -> Result<(String, SharedModule, WasmPermissionTier), Errno> {
    let command = program.to_owned();
    vm.check_spawn(&command).map_err(|_| Errno::EACCES)?;
    if let Some(install) = python {
        vm.filesystem_mut().show_python_stdlib(Arc::clone(&install.stdlib)).map_err(|_| Errno::EAGAIN)?;
        let tier = vm.command_tier(&command).unwrap_or(WasmPermissionTier::Full);
        return Ok((command, vm.python_module(install, argv, cwd), tier));
    }
    let env: BTreeMap<String, String> = env
        .iter()
        .filter_map(|entry| entry.split_once('=').map(|(key, value)| (key.to_owned(), value.to_owned())))
        .collect();
    let path_var = env.get("PATH").cloned().unwrap_or_else(|| DEFAULT_PATH.to_owned());
    let (module_path, module) = vm.find_command(&command, &path_var, now).map_err(|_| Errno::ENOENT)?;
    let name = module_path.rsplit('/').next().unwrap_or(&command).to_owned();
    let tier = vm.command_tier(&command).or_else(|| vm.command_tier(&name)).unwrap_or(WasmPermissionTier::Full);
    Ok((command, module, tier))
}

/// Loads `module` and spawns a guest running it with `argv` and `env`; nothing runs until the
/// scheduler polls it.
fn start_guest(
    engine: &dyn GuestEngine,
    guest_limits: GuestLimits,
    memory_budget: Arc<MemoryBudget>,
    module: &SharedModule,
    argv: &[String],
    env: &[String],
) -> Result<Box<dyn Guest>, Errno> {
    let program = engine.load_shared(module, guest_limits.max_wasm_stack_bytes).map_err(|_| Errno::ENOEXEC)?;
    program
        .spawn(GuestSpawn { args: argv.to_vec(), env: env.to_vec(), limits: guest_limits, memory_budget })
        .map_err(|_| Errno::EAGAIN)
}

/// The child's descriptors: those its parent's request built (each pipe end in them gains an
/// opener now), less the preopened directories when the child is isolated.
fn child_fds(vm: &mut Vm, mut fds: FdTable, tier: WasmPermissionTier) -> FdTable {
    if tier == WasmPermissionTier::Isolated {
        fds.retain(|descriptor| !descriptor.is_preopen());
    }
    for (_, descriptor) in fds.iter() {
        vm.processes_mut().file_opened(&descriptor.file);
    }
    fds
}

/// Counts one more child started by `parent`; the count names the child.
fn count_child(vm: &mut Vm, parent: u32) -> Result<u32, Errno> {
    let parent = vm.processes_mut().get_mut(parent).ok_or(Errno::ESRCH)?;
    parent.children_started = parent.children_started.saturating_add(1);
    Ok(parent.children_started)
}

/// The answer frame a host callback's `outcome` gives the call with `frame_id`.
fn tool_outcome_frame(frame_id: Option<u64>, key: &str, outcome: &HostCallbackOutcome) -> Vec<u8> {
    match outcome {
        HostCallbackOutcome::Result(result) => tools::result_frame(frame_id, key, result),
        HostCallbackOutcome::Error(message) => tools::error_frame(frame_id, "tool_error", message),
        HostCallbackOutcome::TimedOut => {
            tools::error_frame(frame_id, "timeout", &format!("{key}: the host did not answer in time"))
        }
        HostCallbackOutcome::Cancelled => tools::error_frame(frame_id, "cancelled", &format!("{key}: cancelled")),
    }
}
