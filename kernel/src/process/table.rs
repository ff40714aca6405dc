//! A VM's process table: identities (pid, ppid, pgid, sid), status, standard streams, the
//! guest task, and exited processes kept as zombies until reaped.

use std::sync::Arc;

use crate::fs::devices::ProcSelf;
use crate::fs::layers::{GUEST_USER_GID, GUEST_USER_UID};
use std::collections::{BTreeMap, VecDeque};

use schema::wire::{
    ProcessSnapshotEntry, ProcessSnapshotStatus, SignalDispositionAction, SignalHandlerRegistration, WasmPermissionTier,
};

use crate::fs::host_gate::HostMemo;
use crate::fs::GuestAsks;
use crate::ids::PromptTicket;
use crate::net::Network;
use crate::process::fds::OpenFile;
use crate::process::fds::{Descriptor, FdTable};
use crate::process::pipes::Pipes;
use crate::process::signals::{self, SIGCONT};
use crate::process::Channel;
use crate::vfs::Errno;

/// The pid of the VM's init: host-started processes are its children, so their ppid is 0
/// (there is no process 0 inside the VM, as for processes started by a Linux kernel thread).
pub const HOST_PPID: u32 = 0;
/// The first pid handed out.
pub const FIRST_PID: u32 = 1;

/// The file-creation mask of a process no parent gave one: the usual login default (group and
/// others lose write permission).
pub const DEFAULT_UMASK: u32 = 0o022;

/// A program the guest asked the kernel to start once its slice ends (`proc_spawn*`,
/// `proc_exec`): compiling a module and starting a guest is the scheduler's job, not a syscall's.
#[derive(Debug, Clone)]
pub(crate) struct SpawnRequest {
    /// What to run: a VM path (it has a `/`) or a name searched on the `PATH` of `env`.
    pub(crate) program: String,
    /// `argv`, `argv[0]` first and as the caller gave it.
    pub(crate) argv: Vec<String>,
    /// The program's whole environment, `KEY=VALUE`.
    pub(crate) env: Vec<String>,
    pub(crate) target: SpawnTarget,
}

/// Where a requested program runs.
#[derive(Debug, Clone)]
pub(crate) enum SpawnTarget {
    /// In a new child of the caller, set up like this.
    Child(ChildSetup),
    /// In the caller itself (`exec`): same process, new program. `close_fds` are closed besides
    /// the close-on-exec descriptors.
    Caller { close_fds: Vec<u32> },
}

/// A new child's state, decided by its parent's request.
#[derive(Debug, Clone)]
pub(crate) struct ChildSetup {
    /// Its descriptors, built from the parent's by the request's file actions. Pipe ends are
    /// counted for the child only when it starts, so a request that fails leaves no reference.
    pub(crate) fds: FdTable,
    /// Its working directory (a VM path).
    pub(crate) cwd: String,
    /// Its process group: `None` the parent's, `Some(0)` a new group it leads, `Some(pgid)` that
    /// existing group of the parent's session.
    pub(crate) process_group: Option<u32>,
    /// Leads a new session (and a new group) of its own (`POSIX_SPAWN_SETSID`).
    pub(crate) new_session: bool,
    /// Its blocked signals (bit `signal - 1`).
    pub(crate) signal_mask: u64,
    pub(crate) umask: u32,
}

/// A bound on how long a process may run (see `Process::run_deadline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunDeadline {
    pub(crate) at_ms: u64,
    pub(crate) limit_ms: u64,
}

/// Why a process is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Runnable.
    None,
    /// Reading the empty standard input of host-started process `owner`.
    Stdin { owner: u32 },
    /// In `waitpid`, for a child to exit.
    Child,
    /// In `proc_spawn*` or `proc_exec`, for the kernel to start the program.
    Spawn,
    /// In `proc_spawn*` or `proc_exec`, for the program to be compiled (then `Spawn` again).
    Compile,
    /// Sleeping until the monotonic clock reaches this millisecond.
    Sleep { until_ms: u64 },
    /// Its output is waiting to be turned into events.
    Output,
    /// A call waits for the host's answer to a permission prompt (`None`: not sent yet).
    Prompt { ticket: Option<PromptTicket> },
    /// Reading an empty pipe that still has writers.
    PipeRead { id: u64 },
    /// Writing a full pipe that still has readers.
    PipeWrite { id: u64 },
    /// Reading (or accepting on) a socket with nothing to take.
    SocketRead { id: u64 },
    /// Writing a socket whose peer's buffer is full.
    SocketWrite { id: u64 },
    /// In `getaddrinfo`, for the host's resolver to answer resolution `id`.
    Resolve { id: u64 },
    /// A filesystem call waits for a host directory's answer (`host_memo.needed`; `asked`: the
    /// effect has been asked for), then runs again (see `fs::host_gate`).
    HostCall { asked: bool },
    /// A call of a host function waits for the host's answer (`tool_call` says how far it
    /// got), then runs again (see `syscalls::tools`).
    Tool,
}

/// A guest's call of a host function (a registered tool) through the tool protocol: the frame
/// it asked with, and how far it got. Kept across the retries of that one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub(crate) frame: Vec<u8>,
    /// The frame's id, which its answer echoes.
    pub(crate) frame_id: Option<u64>,
    pub(crate) state: ToolCallState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolCallState {
    /// To be sent: the callback key and its JSON input.
    Needed { key: String, input: String },
    /// Sent as this invocation of callback `key`.
    Sent { key: String, invocation_id: String },
    /// The answer frame, for the retry to take.
    Answered(Vec<u8>),
}

/// A process's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    /// Stopped by SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU until SIGCONT.
    Stopped,
    /// Exited (a zombie until reaped) with this exit code.
    Exited(i32),
}

/// One process.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) process_id: String,
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) pgid: u32,
    pub(crate) sid: u32,
    pub(crate) driver: &'static str,
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) tier: WasmPermissionTier,
    /// What `/proc/self` shows this process.
    pub(crate) proc_self: Arc<ProcSelf>,
    pub(crate) status: Status,
    pub(crate) wait: Wait,
    /// More conditions that end the wait (a `poll_oneoff` on several descriptors, maybe with a
    /// timeout in `wait`); cleared when the process runs.
    pub(crate) wake_on: Vec<Wait>,
    pub(crate) fds: FdTable,
    pub(crate) stdin: VecDeque<u8>,
    pub(crate) stdin_closed: bool,
    /// Output written during the current slice, in order, consecutive writes to one channel
    /// merged.
    pub(crate) output: Vec<(Channel, Vec<u8>)>,
    /// The deadline of a relative sleep in progress (kept across the retries of the call).
    pub(crate) sleep_deadline_ns: Option<u64>,
    /// Permission prompts of the call in progress.
    pub(crate) asks: GuestAsks,
    /// The answers a filesystem call parked on host calls has had (see `fs::host_gate`).
    pub(crate) host_memo: HostMemo,
    /// The call of a host function in progress (see `syscalls::tools`).
    pub(crate) tool_call: Option<ToolCall>,
    /// Started by the host (`Execute`), not by another process: only these have events.
    pub(crate) top_level: bool,
    /// Children started so far (names the next one `{process_id}/child-{n}`).
    pub(crate) children_started: u32,
    /// A `proc_spawn` the kernel is to carry out after the slice, and its result for the retry.
    pub(crate) spawn_request: Option<SpawnRequest>,
    pub(crate) spawn_result: Option<Result<u32, Errno>>,
    /// Signal dispositions the guest set (`proc_sigaction`), by signal number.
    pub(crate) handlers: BTreeMap<u32, SignalHandlerRegistration>,
    /// Signals the guest sent to processes (delivered by the kernel after its slice).
    pub(crate) outgoing_signals: Vec<(i64, u32)>,
    /// Blocked signals, bit `signal - 1` (`sigprocmask`; never `SIGKILL` or `SIGSTOP`): a
    /// blocked signal waits in `pending_signals` instead of acting.
    pub(crate) signal_mask: u64,
    /// Signals that arrived while blocked, same bits; unblocking one delivers it.
    pub(crate) pending_signals: u64,
    /// The signal that ended the process, if one did (`waitpid` reports it apart from an exit
    /// status).
    pub(crate) killed_by: Option<u32>,
    /// The file-creation mask (`umask`): permission bits new files and directories lose.
    pub(crate) umask: u32,
    /// When it is ended if still running (monotonic ms): a Python process's
    /// `limits.python.executionTimeoutMs`, with that limit.
    pub(crate) run_deadline: Option<RunDeadline>,
    /// When it exited (monotonic ms), and the exits' order, for snapshots and retention.
    pub(crate) exited_at_ms: Option<u64>,
    pub(crate) exit_order: u64,
    /// A partial output line per channel (stdout, stderr), held until its newline.
    pub(crate) held_lines: [Vec<u8>; 2],
}

/// Who a new process is.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) process_id: String,
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) pgid: u32,
    pub(crate) sid: u32,
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: String,
    /// `KEY=VALUE` entries the process starts with.
    pub(crate) env: Vec<String>,
    pub(crate) tier: WasmPermissionTier,
    pub(crate) top_level: bool,
}

/// Strings joined, each followed by a NUL (`/proc/self/cmdline` and `environ`).
fn nul_terminated<'a>(items: impl IntoIterator<Item = &'a String>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for item in items {
        bytes.extend_from_slice(item.as_bytes());
        bytes.push(0);
    }
    bytes
}

impl Process {
    /// A runnable process with descriptors `fds` (its guest task is the scheduler's). Only host-started (top-level)
    /// processes have a stdin of their own; a child's is closed (it reads what it inherited).
    pub(crate) fn new(identity: Identity, fds: FdTable) -> Self {
        let Identity { process_id, pid, ppid, pgid, sid, command, args, cwd, env, tier, top_level } = identity;
        let proc_self = Arc::new(ProcSelf {
            pid,
            ppid,
            name: command.rsplit('/').next().unwrap_or(&command).to_owned(),
            cmdline: nul_terminated(std::iter::once(&command).chain(&args)),
            environ: nul_terminated(&env),
            cwd: cwd.clone(),
            uid: GUEST_USER_UID,
            gid: GUEST_USER_GID,
        });
        Self {
            process_id,
            pid,
            ppid,
            pgid,
            sid,
            driver: crate::process::EXECUTION_DRIVER,
            command,
            args,
            cwd,
            tier,
            proc_self,
            status: Status::Running,
            wait: Wait::None,
            wake_on: Vec::new(),
            fds,
            stdin: VecDeque::new(),
            stdin_closed: !top_level,
            output: Vec::new(),
            sleep_deadline_ns: None,
            asks: GuestAsks::default(),
            host_memo: HostMemo::default(),
            tool_call: None,
            top_level,
            children_started: 0,
            spawn_request: None,
            spawn_result: None,
            handlers: BTreeMap::new(),
            outgoing_signals: Vec::new(),
            signal_mask: 0,
            pending_signals: 0,
            killed_by: None,
            umask: DEFAULT_UMASK,
            run_deadline: None,
            exited_at_ms: None,
            exit_order: 0,
            held_lines: [Vec::new(), Vec::new()],
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        !matches!(self.status, Status::Exited(_))
    }

    /// Whether `signal` is blocked now: it then waits in `pending_signals` rather than act.
    /// `SIGKILL` and `SIGSTOP` never are; `SIGCONT` still continues a stopped process (its
    /// continuing is not a delivery, as on Linux).
    pub(crate) fn blocks(&self, signal: u32) -> bool {
        signal != SIGCONT && self.signal_mask & signals::bit(signal) & !signals::UNBLOCKABLE != 0
    }

    /// The process runs another program from now on (`exec`): its identity (pid, parent, group,
    /// session), cwd, umask, signal mask and pending signals stay; signals it handled act by
    /// default again (ignored ones stay ignored, as POSIX says); the close-on-exec descriptors
    /// and `close_fds` are closed and returned, for the caller to release what they held.
    pub(crate) fn replace_program(
        &mut self,
        command: String,
        argv: &[String],
        env: &[String],
        tier: WasmPermissionTier,
        close_fds: &[u32],
    ) -> Vec<Descriptor> {
        let mut closed = self.fds.close_cloexec();
        closed.extend(close_fds.iter().filter_map(|fd| self.fds.close(*fd).ok()));
        if tier == WasmPermissionTier::Isolated {
            closed.extend(self.fds.retain(|descriptor| !descriptor.is_preopen()));
        }
        self.handlers.retain(|_, handler| handler.action == SignalDispositionAction::Ignore);
        let proc_self = ProcSelf {
            name: command.rsplit('/').next().unwrap_or(&command).to_owned(),
            cmdline: nul_terminated(argv),
            environ: nul_terminated(env),
            ..(*self.proc_self).clone()
        };
        self.proc_self = Arc::new(proc_self);
        self.command = command;
        self.args = argv.get(1..).unwrap_or_default().to_vec();
        self.tier = tier;
        self.wake_on.clear();
        self.sleep_deadline_ns = None;
        self.asks = GuestAsks::default();
        self.tool_call = None;
        self.spawn_request = None;
        self.spawn_result = None;
        closed
    }

    /// Runnable now: alive, not stopped, not waiting.
    pub(crate) fn is_runnable(&self) -> bool {
        self.status == Status::Running && self.wait == Wait::None
    }

    pub(crate) fn held_line_mut(&mut self, channel: Channel) -> &mut Vec<u8> {
        let [stdout, stderr] = &mut self.held_lines;
        match channel {
            Channel::Stdout => stdout,
            Channel::Stderr => stderr,
        }
    }

    pub(crate) fn pending_output_bytes(&self) -> usize {
        self.output.iter().map(|(_, bytes)| bytes.len()).sum()
    }

    pub(crate) fn push_output(&mut self, channel: Channel, bytes: &[u8]) {
        match self.output.last_mut() {
            Some((last, pending)) if *last == channel => pending.extend_from_slice(bytes),
            _ => self.output.push((channel, bytes.to_vec())),
        }
    }

    pub(crate) fn snapshot(&self) -> ProcessSnapshotEntry {
        let (status, exit_code) = match self.status {
            Status::Running => (ProcessSnapshotStatus::Running, None),
            Status::Stopped => (ProcessSnapshotStatus::Stopped, None),
            Status::Exited(code) => (ProcessSnapshotStatus::Exited, Some(code)),
        };
        ProcessSnapshotEntry {
            process_id: self.process_id.clone(),
            pid: self.pid,
            ppid: self.ppid,
            pgid: self.pgid,
            sid: self.sid,
            driver: self.driver.to_owned(),
            command: self.command.clone(),
            args: self.args.clone(),
            cwd: self.cwd.clone(),
            status,
            exit_code,
        }
    }
}

/// The processes of one VM, by pid. A host process id names one active process at a time;
/// once it exits, the id may be used again while the exited entry is still retained.
#[derive(Debug, Default)]
pub(crate) struct ProcessTable {
    processes: BTreeMap<u32, Process>,
    next_pid: u32,
    exits: u64,
    pub(crate) pipes: Pipes,
    /// The VM's sockets (descriptors refer to them as to pipe ends).
    pub(crate) net: Network,
    /// Descriptors of each held file (`(filesystem key, inode)`, see `fs::open_files`).
    held_files: BTreeMap<(u64, u64), u64>,
    /// Held files whose last descriptor closed, for the VM to release
    /// ([`take_released_files`](Self::take_released_files)).
    released_files: Vec<(u64, u64)>,
}

impl ProcessTable {
    pub(crate) fn with_network(net: Network) -> Self {
        Self { net, ..Self::default() }
    }

    /// Another descriptor refers to what `file` does (a dup, an inherited descriptor): a pipe
    /// end or socket counts it.
    pub(crate) fn file_opened(&mut self, file: &OpenFile) {
        match file {
            OpenFile::Pipe { id, end } => self.pipes.open(*id, *end),
            OpenFile::Socket { id } => self.net.open(*id),
            OpenFile::File { node: Some(node), .. } => {
                if let Some(held) = node.held() {
                    let count = self.held_files.entry(held).or_insert(0);
                    *count = count.saturating_add(1);
                }
            }
            _ => {}
        }
    }

    /// A descriptor referring to `file` was closed: a pipe end or socket goes with its last
    /// one; a held file's last one leaves it to be released.
    pub(crate) fn file_closed(&mut self, file: &OpenFile) {
        match file {
            OpenFile::Pipe { id, end } => self.pipes.close(*id, *end),
            OpenFile::Socket { id } => self.net.close(*id),
            OpenFile::File { node: Some(node), .. } => {
                let Some(held) = node.held() else { return };
                let Some(count) = self.held_files.get_mut(&held) else { return };
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.held_files.remove(&held);
                    self.released_files.push(held);
                }
            }
            _ => {}
        }
    }

    /// Held files no descriptor refers to any more (see `Vm::release_files`).
    pub(crate) fn take_released_files(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.released_files)
    }

    /// Processes counted against `maxProcesses`: the live ones and the unreaped children.
    pub(crate) fn counted(&self) -> usize {
        self.processes.values().filter(|process| process.is_alive() || !process.top_level).count()
    }

    /// Exited children nobody has reaped yet.
    pub(crate) fn zombies(&self) -> usize {
        self.processes.values().filter(|process| !process.is_alive() && !process.top_level).count()
    }

    /// `pid` and every process it started, transitively (children before grandchildren).
    pub(crate) fn descendants(&self, pid: u32) -> Vec<u32> {
        let mut found = Vec::new();
        let mut frontier = vec![pid];
        while let Some(parent) = frontier.pop() {
            for child in self.processes.values().filter(|p| p.ppid == parent && !p.top_level && p.pid != parent) {
                if !found.contains(&child.pid) {
                    found.push(child.pid);
                    frontier.push(child.pid);
                }
            }
        }
        found
    }

    /// The next pid (pids are never reused within a VM, so a stale pid never names a new
    /// process).
    pub(crate) fn allocate_pid(&mut self) -> Option<u32> {
        let pid = self.next_pid.max(FIRST_PID);
        self.next_pid = pid.checked_add(1)?;
        Some(pid)
    }

    pub(crate) fn insert(&mut self, process: Process) {
        self.processes.insert(process.pid, process);
    }

    pub(crate) fn next_exit_order(&mut self) -> u64 {
        self.exits = self.exits.saturating_add(1);
        self.exits
    }

    pub(crate) fn get(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid)
    }

    pub(crate) fn get_mut(&mut self, pid: u32) -> Option<&mut Process> {
        self.processes.get_mut(&pid)
    }

    /// The pid of the active (not exited) process the host named `process_id`.
    pub(crate) fn active_pid(&self, process_id: &str) -> Option<u32> {
        self.processes
            .values()
            .find(|process| process.is_alive() && process.process_id == process_id)
            .map(|process| process.pid)
    }

    /// Whether `process`'s wait is over at `now_ms`: its own condition, or any of `wake_on`.
    pub(crate) fn wait_is_over(&self, process: &Process, now_ms: u64) -> bool {
        let over = |wait: &Wait| match *wait {
            Wait::Sleep { until_ms } => until_ms <= now_ms,
            Wait::Output => true,
            Wait::Stdin { owner } => {
                self.get(owner).is_none_or(|owner| !owner.is_alive() || !owner.stdin.is_empty() || owner.stdin_closed)
            }
            Wait::PipeRead { id } => self.pipes.readable(id),
            Wait::PipeWrite { id } => self.pipes.writable(id),
            Wait::SocketRead { id } => self.net.readable(id),
            Wait::SocketWrite { id } => self.net.writable(id),
            Wait::Resolve { id } => !self.net.dns.is_pending(id),
            Wait::HostCall { asked } => asked && process.host_memo.needed.is_none(),
            Wait::None | Wait::Child | Wait::Spawn | Wait::Compile | Wait::Prompt { .. } | Wait::Tool => false,
        };
        over(&process.wait) || process.wake_on.iter().any(over)
    }

    /// Every process in group `pgid`.
    pub(crate) fn group(&self, pgid: u32) -> Vec<u32> {
        self.processes.values().filter(|process| process.pgid == pgid).map(|process| process.pid).collect()
    }

    /// Pipes counted against `maxPipes`: the ones guests made (`fd_pipe`). A host-started
    /// process's stdio is the host's channel, not a guest pipe: counting it made `Execute` stop
    /// at `maxPipes` processes, before `maxProcesses`.
    pub(crate) fn pipe_count(&self) -> usize {
        self.pipes.len()
    }

    pub(crate) fn remove(&mut self, pid: u32) -> Option<Process> {
        self.processes.remove(&pid)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fds::OpenFile;

    fn process(fds: FdTable) -> Process {
        let identity = Identity {
            process_id: "p".into(),
            pid: 7,
            ppid: 1,
            pgid: 7,
            sid: 1,
            command: "sh".into(),
            args: vec!["-c".into(), "exec x".into()],
            cwd: "/home/user".into(),
            env: vec!["A=1".into()],
            tier: WasmPermissionTier::Full,
            top_level: false,
        };
        Process::new(identity, fds)
    }

    #[test]
    fn blocked_signals_wait_but_kill_stop_and_cont_never_do() {
        let mut process = process(FdTable::default());
        process.signal_mask = u64::MAX;
        assert!(process.blocks(crate::process::SIGTERM));
        assert!(!process.blocks(crate::process::SIGKILL));
        assert!(!process.blocks(crate::process::SIGSTOP));
        assert!(!process.blocks(SIGCONT));
        process.signal_mask = 0;
        assert!(!process.blocks(crate::process::SIGTERM));
    }

    #[test]
    fn an_exec_keeps_the_process_and_drops_what_posix_says() {
        let mut fds = FdTable::default();
        for owner in [7, 7, 7] {
            assert!(fds.insert(Descriptor::stdio(OpenFile::Stdout { owner }), u64::MAX).is_ok());
        }
        assert!(fds.insert(Descriptor::preopen("/".into(), "/".into()), u64::MAX).is_ok());
        assert_eq!(fds.set_cloexec(2, true), Ok(()));
        let mut process = process(fds);
        process.umask = 0o077;
        process.signal_mask = 1 << 14;
        process.pending_signals = 1 << 14;
        let handler = |action| SignalHandlerRegistration { action, mask: Vec::new(), flags: 0 };
        process.handlers.insert(2, handler(SignalDispositionAction::Ignore));
        process.handlers.insert(15, handler(SignalDispositionAction::User));
        let argv = ["x".to_owned(), "arg".to_owned()];
        let closed =
            process.replace_program("/bin/x".into(), &argv, &["B=2".into()], WasmPermissionTier::Isolated, &[1]);
        assert_eq!(closed.len(), 3, "close-on-exec 2, listed 1, and the preopen an isolated program loses");
        assert_eq!(process.fds.iter().map(|(fd, _)| fd).collect::<Vec<_>>(), [0]);
        assert_eq!((process.pid, process.ppid, process.pgid, process.sid), (7, 1, 7, 1));
        assert_eq!((process.umask, process.signal_mask, process.pending_signals), (0o077, 1 << 14, 1 << 14));
        assert_eq!(process.handlers.keys().copied().collect::<Vec<_>>(), [2], "the handled signal is default again");
        assert_eq!((process.command.as_str(), process.args.as_slice()), ("/bin/x", &argv[1..]));
        assert_eq!((process.proc_self.name.as_str(), process.proc_self.cmdline.as_slice()), ("x", &b"x\0arg\0"[..]));
        assert_eq!((process.proc_self.environ.as_slice(), process.proc_self.pid), (&b"B=2\0"[..], 7));
        assert_eq!(process.tier, WasmPermissionTier::Isolated);
    }
}
