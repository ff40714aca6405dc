//! Processes: the requests that start and steer them (`Execute`, `WriteStdin`, `CloseStdin`,
//! `KillProcess`, `GetProcessSnapshot`, `GetSignalState`, `GetZombieTimerCount`), the events
//! they produce (`ProcessOutput`, `ProcessExited`), and the deterministic scheduler.
//!
//! # Scheduling
//! Guests are resumable tasks ([`guest::Guest`]). [`Sidecar::tick`] runs at most
//! [`MAX_SLICES_PER_TICK`] slices of [`SLICE_FUEL`] each, round-robin over the runnable
//! processes of every VM in a fixed order (VM id, then pid), resuming after the last process it
//! ran. A guest that must wait — an empty stdin or pipe, a full pipe, a sleep, `waitpid`, a
//! `proc_spawn`, a permission prompt — is parked and woken by the kernel (a `WriteStdin`, another
//! process's write or exit, the clock passing its deadline, the host's answer), never by a
//! thread. Nothing depends on real time, so the same inputs give the same slices and the same
//! events, output chunking included (output is line-buffered per channel, flushed after every
//! slice and at exit).
//!
//! # Exits, zombies and orphans
//! A host-started process's exit is a `ProcessExited` event; it stays in snapshots (`EXITED`) for
//! [`EXITED_RETENTION_MS`] and ends every process it started. A guest-started child stays a
//! zombie until its parent reaps it (`waitpid`), counted by `GetZombieTimerCount`; when a child
//! exits, its own children are re-parented to 0, and such orphans' zombies are reaped after
//! [`ZOMBIE_TTL_MS`].

pub mod cost;
mod fds;
pub mod guest;
mod pipes;
pub mod script;
mod signals;
pub mod syscalls;
pub(crate) mod table;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;

use self::fds::{Descriptor, FdTable, OpenFile};
use self::guest::{GuestExit, GuestLimits, GuestPoll, GuestSpawn};
use self::syscalls::Syscalls;
use self::table::{Identity, Process, Status, Wait, HOST_PPID};
use super::filesystem::{CallOutcome, GuestAsks};
use super::vm::PromptOutcome;
use super::Sidecar;
use crate::clock::{Entropy, Now};
use crate::error::{RejectCode, Rejection};
use crate::permissions::{errno_message, Capability, CompiledPolicy, Decision, PermissionsPolicy};
use crate::vfs::{Errno, S_IFMT, S_IFREG};

pub use self::pipes::PIPE_CAPACITY_BYTES;
pub use self::signals::{DefaultAction, SIGKILL, SIGSTOP, SIGTERM};
pub use self::table::FIRST_PID;

/// Fuel per slice: about a millisecond of guest work, so a busy guest never holds the sidecar
/// (and the other VMs) for long.
pub const SLICE_FUEL: u64 = 1_000_000;
/// Slices one `tick` runs at most before returning to the driver (to read input, write output).
pub const MAX_SLICES_PER_TICK: usize = 16;
/// Work one `tick` does at most, in fuel: each slice counts its instruction budget plus the
/// kernel work its calls caused (see `cost`), so a tick of guests hammering the kernel returns to
/// the driver as soon as a tick of guests computing would (the driver's latency for every other
/// VM and the host is one tick).
pub const MAX_TICK_FUEL: u64 = SLICE_FUEL * MAX_SLICES_PER_TICK as u64;
/// Output a process may write within one slice before its writes block (the kernel turns it into
/// events after every slice, so this bounds the memory one slice can pin).
pub const MAX_PENDING_OUTPUT_BYTES: usize = 1 << 20;
/// Bytes `WriteStdin` may buffer ahead of the guest (the original's stdin buffer bound). A chunk
/// is taken whole or refused, so `acceptedBytes` is always the chunk's length.
pub const STDIN_BUFFER_LIMIT_BYTES: usize = 16 << 20;
/// A partial output line held back (output is line-buffered, like the original's WebAssembly
/// runner) is sent anyway once it grows past this.
pub const MAX_HELD_LINE_BYTES: usize = 64 * 1024;
/// The longest `processId` a host may choose (it is echoed in every event).
pub const MAX_PROCESS_ID_BYTES: usize = 256;
/// How long an orphaned child's zombie waits before it is reaped (the original's zombie TTL).
pub const ZOMBIE_TTL_MS: u64 = 60_000;
/// How long an exited host-started process stays in snapshots (status `EXITED`), like the
/// original. It is reaped at once (the host is its parent), so it is never a zombie.
pub const EXITED_RETENTION_MS: u64 = 2_000;
/// Exited entries one VM keeps at most; the oldest goes early beyond this, so a host that starts
/// many short processes cannot grow the table without bound.
pub const MAX_RETAINED_EXITED_PER_VM: usize = 1024;
/// The search path when neither the request nor the VM sets `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The `driver` of host-started processes in snapshots (the original's name).
pub const EXECUTION_DRIVER: &str = "secure-exec-sidecar-execution";
/// Where command packages are found: each numbered directory's files are commands (the first
/// directory, in string order, wins a name), each file a WebAssembly binary.
pub const COMMANDS_DIR: &str = "/__secure_exec/commands";
/// Searched after `PATH`.
pub const FALLBACK_PATH_DIRS: [&str; 3] = ["/bin", "/usr/bin", "/usr/local/bin"];
/// Exit code of a guest that burnt its fuel budget (the original's).
pub const EXIT_FUEL_EXHAUSTED: i32 = 124;
/// The first bytes of every WebAssembly binary module.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Standard descriptors.
pub const STDIN_FD: u32 = 0;
pub const STDOUT_FD: u32 = 1;
pub const STDERR_FD: u32 = 2;
/// The preopened root directory.
pub const ROOT_FD: u32 = 3;

/// An output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

impl Sidecar {
    /// Gives the kernel an engine to run guests. Without one, `Execute` is `unsupported`.
    pub fn with_guest_engine(mut self, engine: Arc<dyn guest::GuestEngine>) -> Self {
        self.guest_engine = Some(engine);
        self
    }

    /// Whether `payload` is one of the process requests [`Self::process_request`] serves.
    pub(super) fn is_process_request(payload: &RequestPayload) -> bool {
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
    pub(super) fn process_request(
        &mut self,
        vm_id: &str,
        payload: RequestPayload,
    ) -> Result<ResponsePayload, Rejection> {
        match payload {
            RequestPayload::ExecuteRequest(request) => self.execute(vm_id, request),
            RequestPayload::WriteStdinRequest(request) => self.write_stdin(vm_id, request),
            RequestPayload::CloseStdinRequest(request) => self.close_stdin(vm_id, &request.process_id),
            RequestPayload::GetProcessSnapshotRequest => self.process_snapshot(vm_id),
            RequestPayload::GetSignalStateRequest(request) => self.signal_state(vm_id, &request.process_id),
            RequestPayload::GetZombieTimerCountRequest => self.zombie_timer_count(vm_id),
            other => Err(super::not_yet(&other)),
        }
    }

    fn execute(&mut self, vm_id: &str, request: ExecuteRequest) -> Result<ResponsePayload, Rejection> {
        let now = self.now;
        let engine = self.guest_engine.clone().ok_or_else(|| {
            Rejection::new(RejectCode::Unsupported, "this sidecar has no guest engine: it cannot execute processes")
        })?;
        self.check_memory_budget()?;
        let memory_budget = Arc::clone(&self.memory_budget);
        let vm = self.vm_mut(vm_id)?;
        let plan = vm.plan_execution(&request, now)?;
        let limits = vm.guest_limits();
        let program = engine.load(&plan.module, limits.max_wasm_stack_bytes).map_err(|error| {
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
                cwd: plan.cwd,
                tier: plan.tier,
                top_level: true,
            },
            guest,
            fds,
        ));
        Ok(ResponsePayload::ProcessStartedResponse(ProcessStartedResponse {
            process_id: request.process_id,
            pid: Some(pid),
        }))
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
    pub(super) fn kill_process(
        &mut self,
        stream: super::StreamId,
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
    pub(super) fn signal_process(&mut self, vm_id: &str, pid: u32, signal: u32) {
        let Some(action) = signals::default_action(signal) else { return };
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid).filter(|process| process.is_alive()) else { return };
        let ignored =
            process.handlers.get(&signal).is_some_and(|handler| handler.action == SignalDispositionAction::Ignore);
        if ignored {
            return;
        }
        match action {
            DefaultAction::Ignore => {}
            DefaultAction::Stop => process.status = Status::Stopped,
            DefaultAction::Continue => process.status = Status::Running,
            DefaultAction::Terminate => {
                if let Some(guest) = process.guest.as_mut() {
                    guest.kill();
                }
                process.guest = None;
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
        self.vms.values().map(|vm| vm.processes().iter().filter(|process| process.is_runnable()).count()).sum()
    }

    /// The earliest time the scheduler has work: now while a guest is runnable, else the
    /// nearest sleep deadline or zombie reaping.
    pub(super) fn process_deadline(&self) -> Option<u64> {
        let mut deadline: Option<u64> = None;
        let mut consider = |at: u64| deadline = Some(deadline.map_or(at, |current: u64| current.min(at)));
        for vm in self.vms.values() {
            for process in vm.processes().iter() {
                let now_ms = self.now.monotonic_ms;
                match (process.status, process.wait) {
                    (Status::Running, Wait::None) if process.guest.is_some() => consider(now_ms),
                    (Status::Running, _) if vm.processes().wait_is_over(process, now_ms) => consider(now_ms),
                    (Status::Running, Wait::Sleep { until_ms }) => consider(until_ms),
                    (Status::Running, Wait::Prompt { ticket: None } | Wait::Spawn) => consider(now_ms),
                    (Status::Running, Wait::Prompt { ticket: Some(ticket) }) if self.has_prompt_outcome(ticket) => {
                        consider(self.now.monotonic_ms)
                    }
                    (Status::Exited(_), _) if process.top_level => {
                        consider(process.exited_at_ms.unwrap_or(0).saturating_add(EXITED_RETENTION_MS))
                    }
                    (Status::Exited(_), _) if process.ppid == HOST_PPID => {
                        consider(process.exited_at_ms.unwrap_or(0).saturating_add(ZOMBIE_TTL_MS))
                    }
                    _ => {}
                }
            }
        }
        deadline
    }

    /// Wakes sleepers whose time has come, reaps old zombies, and runs up to
    /// [`MAX_SLICES_PER_TICK`] guest slices.
    pub(super) fn run_processes(&mut self) {
        let now_ms = self.now.monotonic_ms;
        for vm in self.vms.values_mut() {
            let table = vm.processes();
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
        self.serve_prompts();
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
    }

    /// Sends the permission prompts guests stopped at, and wakes the guests whose prompts the
    /// host answered (or that timed out: a denial), so their calls are retried.
    fn serve_prompts(&mut self) {
        let mut to_send = Vec::new();
        let mut waiting = Vec::new();
        for (vm_id, vm) in &self.vms {
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

    /// The first runnable process after the last one scheduled, in (VM id, pid) order, wrapping.
    fn next_runnable(&self) -> Option<(String, u32)> {
        let mut runnable = self.vms.iter().flat_map(|(vm_id, vm)| {
            vm.processes().iter().filter(|process| process.is_runnable()).map(move |process| (vm_id, process.pid))
        });
        let all: Vec<(&String, u32)> = runnable.by_ref().collect();
        let after = self.last_scheduled.as_ref().and_then(|(last_vm, last_pid)| {
            all.iter().find(|(vm_id, pid)| (vm_id.as_str(), *pid) > (last_vm.as_str(), *last_pid))
        });
        after.or_else(|| all.first()).map(|(vm_id, pid)| ((*vm_id).clone(), *pid))
    }

    /// Runs one slice of `pid` with its VM lent to the guest, then turns its output into events
    /// and its exit (if any) into `ProcessExited`.
    /// Runs one slice of `pid`; the kernel work it caused, in fuel.
    fn run_slice(&mut self, vm_id: &str, pid: u32) -> u64 {
        let Some(mut vm) = self.vms.remove(vm_id) else { return 0 };
        let guest = vm.processes_mut().get_mut(pid).and_then(|process| {
            process.wake_on.clear();
            process.guest.take()
        });
        let Some(mut guest) = guest else {
            self.vms.insert(vm_id.to_owned(), vm);
            return 0;
        };
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
        if let Some(process) = vm.processes_mut().get_mut(pid) {
            process.guest = Some(guest);
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
        if let GuestPoll::Exited(exit) = poll {
            self.finish_process(vm_id, pid, exit);
        }
        self.deliver_guest_signals(vm_id, pid);
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
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let exit_order = vm.processes_mut().next_exit_order();
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        if !process.is_alive() {
            return;
        }
        process.exit_order = exit_order;
        if let Wait::Prompt { ticket: Some(ticket) } = process.wait {
            // Nobody will retry the call: the answer, when it comes, is dropped.
            self.abandoned_prompts.insert(ticket);
        }
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        if let Some(message) = &exit.message {
            process.push_output(Channel::Stderr, format!("{message}\n").as_bytes());
        }
        process.status = Status::Exited(exit.code);
        process.guest = None;
        process.exited_at_ms = Some(now_ms);
        process.stdin.clear();
        process.handlers.clear();
        process.outgoing_signals.clear();
        let descriptors = process.fds.drain();
        for descriptor in descriptors {
            if let OpenFile::Pipe { id, end } = descriptor.file {
                vm.processes_mut().pipes.close(id, end);
            }
        }
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
        let requests: Vec<(String, u32)> = self
            .vms
            .iter()
            .flat_map(|(vm_id, vm)| {
                vm.processes()
                    .iter()
                    .filter(|process| process.wait == Wait::Spawn && process.spawn_request.is_some())
                    .map(move |process| (vm_id.clone(), process.pid))
            })
            .collect();
        for (vm_id, parent) in requests {
            let result = self.spawn_child(&vm_id, parent);
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            if let Some(process) = vm.processes_mut().get_mut(parent) {
                process.spawn_request = None;
                process.spawn_result = Some(result);
                process.wait = Wait::None;
            }
        }
    }

    /// Starts the child `parent` asked for.
    fn spawn_child(&mut self, vm_id: &str, parent: u32) -> Result<u32, Errno> {
        let now = self.now;
        let engine = self.guest_engine.clone().ok_or(Errno::ENOSYS)?;
        let memory_budget = Arc::clone(&self.memory_budget);
        let vm = self.vm_mut(vm_id).map_err(|_| Errno::ESRCH)?;
        let process = vm.processes().get(parent).ok_or(Errno::ESRCH)?;
        let request = process.spawn_request.clone().ok_or(Errno::EINVAL)?;
        let (parent_id, parent_cwd, pgid, sid) =
            (process.process_id.clone(), process.cwd.clone(), process.pgid, process.sid);
        let limits = vm.process_limits().clone();
        if u64::try_from(vm.processes().counted()).unwrap_or(u64::MAX) >= limits.max_processes {
            return Err(Errno::EAGAIN);
        }
        let command = request.argv.first().cloned().ok_or(Errno::EINVAL)?;
        vm.check_spawn(&command).map_err(|_| Errno::EACCES)?;
        let env: BTreeMap<String, String> = request
            .env
            .iter()
            .filter_map(|entry| entry.split_once('=').map(|(key, value)| (key.to_owned(), value.to_owned())))
            .collect();
        let path_var = env.get("PATH").cloned().unwrap_or_else(|| DEFAULT_PATH.to_owned());
        let (module_path, module) = vm.find_command(&command, &path_var, now).map_err(|_| Errno::ENOENT)?;
        let name = module_path.rsplit('/').next().unwrap_or(&command).to_owned();
        let tier = vm.command_tier(&command).or_else(|| vm.command_tier(&name)).unwrap_or(WasmPermissionTier::Full);
        let guest_limits = vm.guest_limits();
        let program = engine.load(&module, guest_limits.max_wasm_stack_bytes).map_err(|_| Errno::EINVAL)?;
        let guest = program
            .spawn(GuestSpawn {
                args: request.argv.clone(),
                env: request.env.clone(),
                limits: guest_limits,
                memory_budget,
            })
            .map_err(|_| Errno::EAGAIN)?;
        let pid = vm.processes_mut().allocate_pid().ok_or(Errno::EAGAIN)?;
        let mut fds = FdTable::default();
        for (number, descriptor) in (0u32..).zip(request.stdio) {
            if let Some(descriptor) = descriptor {
                if let OpenFile::Pipe { id, end } = descriptor.file {
                    vm.processes_mut().pipes.open(id, end);
                }
                fds.replace(number, descriptor);
            }
        }
        if tier != WasmPermissionTier::Isolated {
            fds.replace(ROOT_FD, Descriptor::preopen("/".to_owned(), "/".to_owned()));
        }
        let number = {
            let parent = vm.processes_mut().get_mut(parent).ok_or(Errno::ESRCH)?;
            parent.children_started = parent.children_started.saturating_add(1);
            parent.children_started
        };
        let cwd = request.cwd.map_or(parent_cwd.clone(), |cwd| syscalls::normalize(&parent_cwd, &cwd));
        vm.processes_mut().insert(Process::new(
            Identity {
                process_id: format!("{parent_id}/child-{number}"),
                pid,
                ppid: parent,
                pgid,
                sid,
                command,
                args: request.argv.get(1..).unwrap_or_default().to_vec(),
                cwd,
                tier,
                top_level: false,
            },
            guest,
            fds,
        ));
        Ok(pid)
    }

    /// Stops every live process of a VM being disposed (SIGKILL), emitting their exits.
    pub(super) fn kill_all_processes(&mut self, vm_id: &str) {
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
        self.config.max_frame_bytes.saturating_sub(EVENT_OVERHEAD_BYTES).clamp(1, MAX_OUTPUT_CHUNK_BYTES)
    }
}

/// What `Execute` resolved before anything is created.
#[derive(Debug)]
pub(crate) struct ExecutionPlan {
    pub(crate) command: String,
    pub(crate) module: Vec<u8>,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) tier: WasmPermissionTier,
}

fn fd_limit() -> Rejection {
    Rejection::new(RejectCode::KernelError, "ENFILE: maximum open file descriptor limit reached")
}

impl super::vm::Vm {
    /// Checks an `Execute` request against the VM (ids, limits, policy, tiers) and finds the
    /// module it runs. The checks, their order, codes and messages follow the original.
    pub(crate) fn plan_execution(&mut self, request: &ExecuteRequest, now: Now) -> Result<ExecutionPlan, Rejection> {
        let process_id = &request.process_id;
        if process_id.is_empty() || process_id.len() > MAX_PROCESS_ID_BYTES {
            return Err(Rejection::invalid_state(format!(
                "processId must be 1 to {MAX_PROCESS_ID_BYTES} bytes, got {}",
                process_id.len()
            )));
        }
        if self.processes().active_pid(process_id).is_some() {
            return Err(Rejection::invalid_state(format!(
                "VM {} already has an active process with id {process_id}",
                self.id()
            )));
        }
        let command = match (&request.command, request.runtime, &request.entrypoint) {
            (Some(command), _, _) if !command.is_empty() => command.clone(),
            (_, None, _) => return Err(Rejection::invalid_state("execute requires either command or runtime")),
            (_, Some(GuestRuntimeKind::WebAssembly), Some(entrypoint)) if !entrypoint.is_empty() => entrypoint.clone(),
            (_, Some(GuestRuntimeKind::WebAssembly), _) => {
                return Err(Rejection::invalid_state("execute requires either command or entrypoint"))
            }
            (_, Some(other), _) => {
                return Err(Rejection::new(
                    RejectCode::Unsupported,
                    format!("{other:?} guests are not supported by this sidecar yet"),
                ))
            }
        };
        let limits = self.process_limits().clone();
        let mut argv = Vec::with_capacity(request.args.len().saturating_add(1));
        argv.push(command.clone());
        argv.extend(request.args.iter().cloned());
        let cwd = self.execution_cwd(request.cwd.as_deref());
        let env = self.execution_env(&request.env, &cwd);
        let path_var = env.get("PATH").cloned().unwrap_or_default();
        let (module_path, module) = self.find_command(&command, &path_var, now)?;
        let name = module_path.rsplit('/').next().unwrap_or(&command).to_owned();
        self.check_spawn(&command)?;
        let live = u64::try_from(self.processes().counted()).unwrap_or(u64::MAX);
        if live >= limits.max_processes {
            return Err(Rejection::new(RejectCode::KernelError, "EAGAIN: maximum process limit reached"));
        }
        if limits.max_open_fds < 3 {
            return Err(fd_limit());
        }
        let argv_bytes: usize = argv.iter().map(|arg| arg.len().saturating_add(1)).sum();
        if u64::try_from(argv_bytes).unwrap_or(u64::MAX) > limits.max_process_argv_bytes {
            return Err(Rejection::new(
                RejectCode::KernelError,
                format!(
                    "EINVAL: process argv payload {argv_bytes} bytes exceeds configured limit {}",
                    limits.max_process_argv_bytes
                ),
            ));
        }
        let env_bytes: usize =
            env.iter().map(|(key, value)| key.len().saturating_add(value.len()).saturating_add(2)).sum();
        if u64::try_from(env_bytes).unwrap_or(u64::MAX) > limits.max_process_env_bytes {
            return Err(Rejection::new(
                RejectCode::KernelError,
                format!(
                    "EINVAL: process environment payload {env_bytes} bytes exceeds configured limit {}",
                    limits.max_process_env_bytes
                ),
            ));
        }
        let tier = request
            .wasm_permission_tier
            .or_else(|| self.command_tier(&command))
            .or_else(|| self.command_tier(&name))
            .unwrap_or(WasmPermissionTier::Full);
        let env = env.into_iter().map(|(key, value)| format!("{key}={value}")).collect();
        Ok(ExecutionPlan { command, module, argv, env, cwd, tier })
    }

    /// The guest cwd: the request's (normalized), else the VM's.
    fn execution_cwd(&self, requested: Option<&str>) -> String {
        let base = self.filesystem().cwd().to_owned();
        match requested {
            Some(cwd) if !cwd.is_empty() => syscalls::normalize(&base, cwd),
            _ => base,
        }
    }

    /// The guest environment: the VM's, the request's over it, the defaults where unset, and
    /// `PWD` always the cwd.
    fn execution_env(&self, requested: &BTreeMap<String, String>, cwd: &str) -> BTreeMap<String, String> {
        let mut env = self.guest_env().clone();
        env.extend(requested.iter().map(|(key, value)| (key.clone(), value.clone())));
        for (key, value) in [
            ("HOME", "/home/user"),
            ("USER", "user"),
            ("LOGNAME", "user"),
            ("SHELL", "/bin/sh"),
            ("PATH", DEFAULT_PATH),
            ("TMPDIR", "/tmp"),
        ] {
            env.entry(key.to_owned()).or_insert_with(|| value.to_owned());
        }
        env.insert("PWD".to_owned(), cwd.to_owned());
        env
    }

    /// `child_process.spawn` on the command.
    pub(crate) fn check_spawn(&self, command: &str) -> Result<(), Rejection> {
        let message = match self.policy().decide(Capability::ChildProcessSpawn, command, false) {
            Decision::Allow => return Ok(()),
            Decision::Deny { message } => message,
            Decision::Ask => "permission prompt required for child_process.spawn".to_owned(),
        };
        Err(Rejection::new(RejectCode::KernelError, errno_message("spawn", command, &message)))
    }

    /// The module a command names: a registered command package, else a path or a name searched
    /// on `PATH` and then [`FALLBACK_PATH_DIRS`]. Files are read through the VM's filesystem
    /// layer, so command directories mounted from the host work.
    pub(crate) fn find_command(
        &mut self,
        command: &str,
        path_var: &str,
        now: Now,
    ) -> Result<(String, Vec<u8>), Rejection> {
        let not_found = || Rejection::invalid_state(format!("command not found on native sidecar path: {command}"));
        let mut candidates: Vec<String> = Vec::new();
        if command.contains('/') {
            candidates.push(syscalls::normalize(self.filesystem().cwd(), command));
        } else {
            candidates.extend(self.command_package_dirs(now).into_iter().map(|dir| format!("{dir}/{command}")));
            let dirs = path_var.split(':').filter(|dir| !dir.is_empty()).chain(FALLBACK_PATH_DIRS);
            candidates
                .extend(dirs.map(|dir| syscalls::normalize(self.filesystem().cwd(), &format!("{dir}/{command}"))));
        }
        let max_module_bytes = self.limits().wasm.max_module_file_bytes;
        for candidate in candidates {
            let Some(stat) = self.kernel_fs(Op::Stat, &candidate, now).and_then(|result| result.stat) else {
                continue;
            };
            if stat.is_directory || stat.mode & S_IFMT != S_IFREG {
                continue;
            }
            if stat.size > max_module_bytes {
                return Err(Rejection::new(
                    RejectCode::ExecutionError,
                    format!(
                        "invalid WebAssembly module: {candidate} is {} bytes, over the module limit of {max_module_bytes}",
                        stat.size
                    ),
                ));
            }
            let bytes = self.kernel_read(&candidate, now).ok_or_else(not_found)?;
            if !bytes.starts_with(WASM_MAGIC) {
                // A stub or a script: only WebAssembly runs here (yet).
                continue;
            }
            return Ok((candidate, bytes));
        }
        Err(not_found())
    }

    /// The numbered command-package directories, in string order.
    fn command_package_dirs(&mut self, now: Now) -> Vec<String> {
        let mut dirs: Vec<String> = self
            .kernel_fs(Op::ReadDir, COMMANDS_DIR, now)
            .and_then(|result| result.entries)
            .unwrap_or_default()
            .into_iter()
            .filter(|name| !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_digit()))
            .collect();
        dirs.sort();
        dirs.into_iter().map(|dir| format!("{COMMANDS_DIR}/{dir}")).collect()
    }

    /// A filesystem operation by the kernel itself (not subject to the guest policy), across
    /// mounts; `None` on any failure.
    fn kernel_fs(&mut self, operation: Op, path: &str, now: Now) -> Option<GuestFilesystemResultResponse> {
        self.kernel_call(syscalls::fs_request(operation, path), now)
    }

    /// A whole file's bytes, read by the kernel: straight from the root filesystem when no
    /// mount is in the way (no copy through the wire encoding), else through the mounts.
    fn kernel_read(&mut self, path: &str, now: Now) -> Option<Vec<u8>> {
        if let Some(bytes) = self.filesystem().read_on_root(path) {
            return Some(bytes);
        }
        let mut read = syscalls::fs_request(Op::ReadFile, path);
        read.encoding = Some(RootFilesystemEntryEncoding::Base64);
        self.kernel_call(read, now).and_then(|result| syscalls::content_bytes(&result).ok())
    }

    fn kernel_call(&mut self, request: GuestFilesystemCallRequest, now: Now) -> Option<GuestFilesystemResultResponse> {
        // The kernel's own reads never touch devices that draw entropy.
        let mut entropy = Entropy::from_seed(0);
        static KERNEL_POLICY: OnceLock<CompiledPolicy> = OnceLock::new();
        let policy = KERNEL_POLICY.get_or_init(|| {
            CompiledPolicy::compile(&PermissionsPolicy::allow_all()).unwrap_or_else(|_| CompiledPolicy::deny_all())
        });
        match self.filesystem_call_with(policy, request, &mut entropy, now) {
            Ok(CallOutcome::Done(ResponsePayload::GuestFilesystemResultResponse(result))) => Some(result),
            _ => None,
        }
    }

    /// The guest limits from `limits.resources`.
    pub(crate) fn guest_limits(&self) -> GuestLimits {
        let limits = self.process_limits();
        GuestLimits {
            max_wasm_fuel: limits.max_wasm_fuel,
            slice_fuel: SLICE_FUEL,
            max_wasm_memory_bytes: limits.max_wasm_memory_bytes,
            max_wasm_stack_bytes: limits.max_wasm_stack_bytes,
        }
    }

    /// A running or stopped process by the host's id.
    fn active_process_mut(&mut self, process_id: &str) -> Result<&mut Process, Rejection> {
        let vm_id = self.id().to_owned();
        let missing = || Rejection::invalid_state(format!("VM {vm_id} has no active process {process_id}"));
        let pid = self.processes().active_pid(process_id).ok_or_else(missing)?;
        self.processes_mut().get_mut(pid).ok_or_else(missing)
    }

    /// Forgets exited processes retained longer than [`EXITED_RETENTION_MS`], and the oldest
    /// beyond [`MAX_RETAINED_EXITED_PER_VM`].
    fn forget_exited(&mut self, now_ms: u64) {
        // Zombies of living parents wait to be reaped; orphaned ones go after ZOMBIE_TTL_MS.
        let orphaned_zombies: Vec<u32> = self
            .processes()
            .iter()
            .filter(|process| !process.top_level && process.ppid == HOST_PPID)
            .filter(|process| process.exited_at_ms.is_some_and(|at| at.saturating_add(ZOMBIE_TTL_MS) <= now_ms))
            .map(|process| process.pid)
            .collect();
        for pid in orphaned_zombies {
            self.processes_mut().remove(pid);
        }
        let mut exited: Vec<(u64, u64, u32)> = self
            .processes()
            .iter()
            .filter(|process| process.top_level)
            .filter_map(|process| process.exited_at_ms.map(|at| (at, process.exit_order, process.pid)))
            .collect();
        exited.sort_unstable();
        let excess = exited.len().saturating_sub(MAX_RETAINED_EXITED_PER_VM);
        for (index, (exited_at_ms, _, pid)) in exited.into_iter().enumerate() {
            if index < excess || exited_at_ms.saturating_add(EXITED_RETENTION_MS) <= now_ms {
                self.processes_mut().remove(pid);
            }
        }
    }
}
