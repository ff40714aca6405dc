//! Processes: spawning and reaping children, replacing the program (`exec`), signals and the
//! signal mask, the file-creation mask, close-on-exec, sleeping.
//!
//! # Spawning
//! A child starts as a copy of its parent's descriptor table (close-on-exec ones included, since
//! file actions may use them), then the request's file actions run on that copy in order, then
//! the close-on-exec descriptors go: `posix_spawn`'s order. All of it happens in the parent's
//! call, so a bad action fails the call and no child exists; the kernel starts the program once
//! the parent's slice ends (compiling a module is the scheduler's work), and the parent's retried
//! call returns the child's pid or why it could not start.

use std::convert::Infallible;

use super::*;
use crate::process::fds::FdTable;
use crate::process::signals::{self, UNBLOCKABLE};
use crate::process::table::{ChildSetup, SpawnTarget};

/// The permission bits of a file mode (with setuid, setgid and sticky): what a creation mode
/// may set.
const MODE_BITS: u32 = 0o7777;

/// One step of a spawn's file actions (`posix_spawn_file_actions_t`), run on the child's copy of
/// its parent's descriptors, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// Closes `fd`. One that is not open is no error: Rust's std closes the pipe ends it already
    /// marked close-on-exec, and musl's child ignores that failure too.
    Close { fd: u32 },
    /// `to` refers to what `from` does, and is not close-on-exec (even when `from == to`).
    Dup2 { from: u32, to: u32 },
    /// Opens `path` (relative: to the child's cwd so far) at exactly `fd`, replacing what was
    /// there. A file it creates gets `mode`'s permission bits less the umask.
    Open { fd: u32, path: String, flags: OpenFlags, mode: u32 },
    /// The child's cwd becomes `path` (relative: to its cwd so far), which must be a directory.
    Chdir { path: String },
    /// The child's cwd becomes the directory open at `fd`.
    Fchdir { fd: u32 },
    /// Closes every descriptor numbered `fd` or more.
    CloseFrom { fd: u32 },
}

/// A program to start as a new child ([`Syscalls::spawn_child`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSpawn {
    /// What to run: a path (it has a `/`; relative ones from the child's cwd) or a name searched
    /// on the `PATH` of `env`.
    pub program: String,
    /// `argv`, `argv[0]` first, passed as given.
    pub argv: Vec<String>,
    /// The child's whole environment (`KEY=VALUE`); empty is empty, not inherited.
    pub env: Vec<String>,
    pub actions: Vec<FileAction>,
    /// The child's cwd before the actions run (relative: to the parent's); `None` is the
    /// parent's.
    pub cwd: Option<String>,
    /// `POSIX_SPAWN_SETPGROUP`: `Some(0)` puts the child in a new group it leads, `Some(pgid)`
    /// in that group of the parent's session (else `EPERM`); `None` leaves it in the parent's.
    pub process_group: Option<u32>,
    /// `POSIX_SPAWN_SETSID`: the child leads a new session and group (this wins over
    /// `process_group`, as a session leader's group is its own).
    pub new_session: bool,
    /// The child's blocked signals (bit `signal - 1`; `SIGKILL` and `SIGSTOP` are dropped).
    pub signal_mask: u64,
}

/// A program to replace the caller's ([`Syscalls::exec`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramExec {
    /// What to run, as for [`ChildSpawn::program`] (relative paths from the caller's cwd).
    pub program: String,
    /// `argv`, `argv[0]` first; empty gets `[program]`.
    pub argv: Vec<String>,
    /// The new program's whole environment.
    pub env: Vec<String>,
    /// Descriptors to close besides the close-on-exec ones (numbers not open are skipped).
    pub close_fds: Vec<u32>,
}

/// How `sigprocmask` changes the calling process's signal mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalMaskChange {
    /// Adds the set (`SIG_BLOCK`).
    Block,
    /// Removes the set (`SIG_UNBLOCK`).
    Unblock,
    /// Replaces the mask with the set (`SIG_SETMASK`).
    Set,
    /// Changes nothing: only reads the mask.
    Query,
}

/// How a child that [`Syscalls::wait_child`] reaped ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    pub pid: u32,
    /// Its status as a shell reports it: the exit status, or 128 + the signal that ended it.
    pub status: i32,
    /// The signal that ended it, if one did.
    pub signal: Option<u32>,
}

impl ChildExit {
    /// What it passed to `exit()`, as `waitpid` reports it (the low 8 bits); 0 when a signal
    /// ended it.
    pub fn exit_code(&self) -> u32 {
        match self.signal {
            Some(_) => 0,
            None => self.status.cast_unsigned() & 0xff,
        }
    }
}

impl Syscalls {
    /// The calling process's permission tier.
    pub fn tier(&self) -> WasmPermissionTier {
        self.process().map_or(WasmPermissionTier::Isolated, |process| process.tier)
    }

    /// The parent's pid (0: started by the host).
    pub fn parent_pid(&self) -> Result<u32, Errno> {
        Ok(self.process()?.ppid)
    }

    /// Records a disposition for `signal` (`proc_sigaction`): 0 default, 1 ignore, 2 a handler.
    /// `SIGKILL` and `SIGSTOP` cannot be changed.
    pub fn sigaction(&mut self, signal: u32, action: u32, mask: u64, flags: u32) -> Result<(), Errno> {
        let action = match action {
            0 => SignalDispositionAction::Default,
            1 => SignalDispositionAction::Ignore,
            2 => SignalDispositionAction::User,
            _ => return Err(Errno::EINVAL),
        };
        if !(1..=64).contains(&signal) || signal == crate::process::SIGKILL || signal == crate::process::SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mask = (0..64u32).filter(|bit| mask & (1u64 << bit) != 0).map(|bit| bit.saturating_add(1)).collect();
        self.process_mut()?.handlers.insert(signal, SignalHandlerRegistration { action, mask, flags });
        Ok(())
    }

    /// Sends `signal` to `pid` (> 0), to the caller's group (0) or to group `-pid` (< 0); the
    /// kernel delivers it when the caller's slice ends. `ESRCH` if nothing matches.
    pub fn kill(&mut self, pid: i64, signal: u32) -> Result<(), Errno> {
        if signal > 64 {
            return Err(Errno::EINVAL);
        }
        let own_group = self.process()?.pgid;
        let table = self.vm.processes();
        let exists = match pid {
            0 => true,
            pid if pid > 0 => u32::try_from(pid).ok().and_then(|pid| table.get(pid)).is_some_and(Process::is_alive),
            pid => u32::try_from(pid.unsigned_abs()).is_ok_and(|pgid| !table.group(pgid).is_empty()),
        };
        if !exists {
            return Err(Errno::ESRCH);
        }
        let target = if pid == 0 { -i64::from(own_group) } else { pid };
        self.process_mut()?.outgoing_signals.push((target, signal));
        Ok(())
    }

    /// Starts a child running `argv[0]` with `argv`, `env` (`KEY=VALUE`), the caller's
    /// descriptors `stdio` as its 0, 1 and 2 (`u32::MAX`: closed; its own number: inherited)
    /// and `cwd` (default: the caller's): the legacy `proc_spawn`, a [`Syscalls::spawn_child`]
    /// whose file actions are those three. Like every spawn, the first call parks the caller
    /// ([`SysError::WouldBlock`]) and its retry returns the child's pid.
    pub fn spawn(
        &mut self,
        argv: Vec<String>,
        env: Vec<String>,
        stdio: [u32; 3],
        cwd: Option<String>,
    ) -> SysResult<u32> {
        let program = match argv.first() {
            Some(program) if !program.is_empty() => program.clone(),
            _ => return Err(Errno::EINVAL.into()),
        };
        let actions = (0u32..)
            .zip(stdio)
            .filter(|(target, source)| target != source)
            .map(|(target, source)| match source {
                u32::MAX => FileAction::Close { fd: target },
                source => FileAction::Dup2 { from: source, to: target },
            })
            .collect();
        let signal_mask = self.process()?.signal_mask;
        let spawn = ChildSpawn { program, argv, env, actions, cwd, signal_mask, ..ChildSpawn::default() };
        self.spawn_child(spawn)
    }

    /// Starts `spawn.program` as a new child (`posix_spawn`): its descriptors are the caller's
    /// after `spawn.actions` (see the module docs), its umask the caller's. Nothing is started
    /// when a check or an action fails. The kernel starts the program once the caller's slice
    /// ends, so the first call parks the caller ([`SysError::WouldBlock`]) and its retry returns
    /// the child's pid, or the errno of the start (`ENOENT`: no such command, `EACCES`: the
    /// policy forbids it, `EAGAIN`: the process limit).
    pub fn spawn_child(&mut self, spawn: ChildSpawn) -> SysResult<u32> {
        if let Some(result) = self.process_mut()?.spawn_result.take() {
            return result.map_err(SysError::Errno);
        }
        if spawn.program.is_empty() {
            return Err(Errno::ENOENT.into());
        }
        let ChildSpawn { program, argv, env, actions, cwd, process_group, new_session, signal_mask } = spawn;
        let process = self.process()?;
        let (parent_cwd, umask) = (process.cwd.clone(), process.umask);
        let process_group = self.checked_group(process_group, new_session)?;
        let cwd = cwd.map_or(parent_cwd.clone(), |cwd| crate::fs::normalize(&parent_cwd, &cwd));
        let (fds, cwd) = self.child_descriptors(&actions, cwd)?;
        let program = if program.contains('/') { crate::fs::normalize(&cwd, &program) } else { program };
        let setup = ChildSetup { fds, cwd, process_group, new_session, signal_mask: signal_mask & !UNBLOCKABLE, umask };
        let process = self.process_mut()?;
        process.spawn_request = Some(SpawnRequest { program, argv, env, target: SpawnTarget::Child(setup) });
        process.wait = Wait::Spawn;
        Err(SysError::WouldBlock)
    }

    /// Replaces the caller's program with `exec.program` (`execve`): same pid, parent, group,
    /// cwd, umask, signal mask and pending signals; the close-on-exec descriptors and
    /// `exec.close_fds` closed, the rest kept; signal handlers reset. The kernel swaps the
    /// program once the caller's slice ends, so the first call parks the caller and, when the
    /// new program starts, the old one is dropped inside this call: it never returns. A retry
    /// only returns when the new program could not start, with why (`ENOENT`, `EACCES`, …).
    pub fn exec(&mut self, exec: ProgramExec) -> SysResult<Infallible> {
        if let Some(result) = self.process_mut()?.spawn_result.take() {
            // An exec that worked is never answered (the program that asked is gone).
            return Err(result.err().unwrap_or(Errno::EIO).into());
        }
        if exec.program.is_empty() {
            return Err(Errno::ENOENT.into());
        }
        let ProgramExec { program, mut argv, env, close_fds } = exec;
        let process = self.process_mut()?;
        let program = if program.contains('/') { crate::fs::normalize(&process.cwd, &program) } else { program };
        if argv.is_empty() {
            argv.push(program.clone());
        }
        process.spawn_request = Some(SpawnRequest { program, argv, env, target: SpawnTarget::Caller { close_fds } });
        process.wait = Wait::Spawn;
        Err(SysError::WouldBlock)
    }

    /// The group a new child joins: `None` the caller's; `Some(0)` its own (a new session's
    /// leader always leads a group of its own); `Some(pgid)` only an existing group of the
    /// caller's session (`EPERM` otherwise, as `setpgid`).
    fn checked_group(&self, process_group: Option<u32>, new_session: bool) -> Result<Option<u32>, Errno> {
        match process_group {
            _ if new_session => Ok(Some(0)),
            None | Some(0) => Ok(process_group),
            Some(pgid) => {
                let session = self.process()?.sid;
                let table = self.vm.processes();
                let in_session = |pid: &u32| table.get(*pid).is_some_and(|p| p.is_alive() && p.sid == session);
                if table.group(pgid).iter().any(in_session) {
                    Ok(Some(pgid))
                } else {
                    Err(Errno::EPERM)
                }
            }
        }
    }

    /// The child's descriptors and cwd: a copy of the caller's table with `actions` applied in
    /// order, then the close-on-exec descriptors closed. The copy holds no pipe-end reference
    /// yet (the child counts them when it starts), so dropping entries needs no release.
    fn child_descriptors(&mut self, actions: &[FileAction], mut cwd: String) -> SysResult<(FdTable, String)> {
        let max_open_fds = self.vm.process_limits().max_open_fds;
        let mut fds = self.process()?.fds.clone();
        for action in actions {
            match action {
                FileAction::Close { fd } => {
                    let _not_open_is_fine = fds.close(*fd);
                }
                FileAction::Dup2 { from, to } => {
                    let (from, to) = (visible(*from)?, visible(*to)?);
                    let descriptor = fds.get(from)?.clone();
                    if fds.get(to).is_err() && u64::try_from(fds.len()).unwrap_or(u64::MAX) >= max_open_fds {
                        return Err(Errno::EMFILE.into());
                    }
                    fds.replace(to, descriptor);
                }
                FileAction::Open { fd, path, flags, mode } => {
                    if path.is_empty() {
                        return Err(Errno::ENOENT.into());
                    }
                    let create_mode = mode & MODE_BITS & !self.umask();
                    let target = visible(*fd)?;
                    let descriptor = self.open_for_child(&mut fds, &cwd, path, *flags, create_mode)?;
                    fds.replace(target, descriptor);
                }
                FileAction::Chdir { path } => {
                    if path.is_empty() {
                        return Err(Errno::ENOENT.into());
                    }
                    let target = crate::fs::normalize(&cwd, path);
                    if self.stat_path(&target, true)?.mode & S_IFMT != S_IFDIR {
                        return Err(Errno::ENOTDIR.into());
                    }
                    cwd = target;
                }
                FileAction::Fchdir { fd } => match &fds.get(*fd)?.file {
                    OpenFile::Directory { path, .. } => cwd = path.clone(),
                    _ => return Err(Errno::ENOTDIR.into()),
                },
                FileAction::CloseFrom { fd } => {
                    fds.close_from(*fd);
                }
            }
        }
        fds.close_cloexec();
        Ok((fds, cwd))
    }

    /// Opens `path` as the child's table `fds` sees it: `open_at` works on the caller's table,
    /// so it is lent the child's for the call (`/dev/stdout` then names the child's 1), with a
    /// directory descriptor for `cwd` that relative paths start from. The opened descriptor is
    /// taken out again, holding no pipe-end reference (see [`Syscalls::child_descriptors`]).
    fn open_for_child(
        &mut self,
        fds: &mut FdTable,
        cwd: &str,
        path: &str,
        flags: OpenFlags,
        create_mode: u32,
    ) -> SysResult<Descriptor> {
        let mut lent = std::mem::take(fds);
        let base = match lent.insert(Descriptor::directory(cwd.to_owned()), u64::MAX) {
            Ok(base) => base,
            Err(errno) => {
                *fds = lent;
                return Err(errno.into());
            }
        };
        let opened = match self.process_mut() {
            Ok(process) => {
                std::mem::swap(&mut process.fds, &mut lent);
                let opened = self.open_at_creating(base, path, flags, Some(create_mode));
                if let Ok(process) = self.process_mut() {
                    std::mem::swap(&mut process.fds, &mut lent);
                }
                opened
            }
            Err(errno) => Err(errno.into()),
        };
        let _base_is_open = lent.close(base);
        let descriptor = opened.and_then(|fd| lent.close(fd).map_err(SysError::from));
        *fds = lent;
        let descriptor = descriptor?;
        // `open_at` of `/dev/stdin` and friends duplicates a standard stream, counting a pipe end.
        self.release(&descriptor);
        Ok(descriptor)
    }

    /// Waits for a child to exit and reaps it (legacy `proc_waitpid`): see
    /// [`Syscalls::wait_child`]; `options` bit 0 is `WNOHANG`. Returns `(status, pid)`, the
    /// status as a shell reports it (128 + the signal when one ended the child), or `(0, 0)`
    /// with `WNOHANG` when no child has exited.
    pub fn waitpid(&mut self, pid: i32, options: u32) -> SysResult<(u32, u32)> {
        const WNOHANG: u32 = 1;
        let exit = self.wait_child(pid, options & WNOHANG != 0)?;
        Ok(exit.map_or((0, 0), |exit| (exit.status.cast_unsigned(), exit.pid)))
    }

    /// Waits for a child to exit and reaps it: `pid` > 0 that child, -1 any, 0 any in the
    /// caller's group, < -1 any in group `-pid`. The child that exited first goes first. With
    /// `nohang`, `None` when none has exited yet; otherwise the caller parks until one does.
    /// `ECHILD` when no child matches.
    pub fn wait_child(&mut self, pid: i32, nohang: bool) -> SysResult<Option<ChildExit>> {
        let me = self.pid;
        let own_group = self.process()?.pgid;
        let table = self.vm.processes();
        let selected = |child: &Process| match pid {
            -1 => true,
            0 => child.pgid == own_group,
            pid if pid > 0 => u32::try_from(pid).is_ok_and(|pid| child.pid == pid),
            pid => child.pgid == pid.unsigned_abs(),
        };
        let children: Vec<&Process> =
            table.iter().filter(|child| child.ppid == me && !child.top_level && selected(child)).collect();
        if children.is_empty() {
            return Err(Errno::ECHILD.into());
        }
        let exited = children
            .iter()
            .filter_map(|child| match child.status {
                crate::process::table::Status::Exited(status) => {
                    Some((child.exit_order, ChildExit { pid: child.pid, status, signal: child.killed_by }))
                }
                _ => None,
            })
            .min_by_key(|(order, _)| *order);
        if let Some((_, exit)) = exited {
            self.vm.processes_mut().remove(exit.pid);
            return Ok(Some(exit));
        }
        if nohang {
            return Ok(None);
        }
        self.process_mut()?.wait = Wait::Child;
        Err(SysError::WouldBlock)
    }

    /// Changes the caller's signal mask (`sigprocmask`) and returns the previous one (bit
    /// `signal - 1`). `SIGKILL` and `SIGSTOP` are never blocked. A blocked signal sent to the
    /// process waits (pending) instead of acting; unblocking it delivers it when the caller's
    /// slice ends, like every signal the kernel delivers.
    pub fn signal_mask(&mut self, change: SignalMaskChange, set: u64) -> Result<u64, Errno> {
        let me = i64::from(self.pid);
        let set = set & !UNBLOCKABLE;
        let process = self.process_mut()?;
        let previous = process.signal_mask;
        process.signal_mask = match change {
            SignalMaskChange::Block => previous | set,
            SignalMaskChange::Unblock => previous & !set,
            SignalMaskChange::Set => set,
            SignalMaskChange::Query => previous,
        };
        let unblocked = process.pending_signals & !process.signal_mask;
        process.pending_signals &= !unblocked;
        process.outgoing_signals.extend(signals::members(unblocked).map(|signal| (me, signal)));
        Ok(previous)
    }

    /// The caller's file-creation mask (`umask`): permission bits its new files and directories
    /// lose. Children inherit it; an exec keeps it.
    pub fn umask(&self) -> u32 {
        self.process().map_or(crate::process::table::DEFAULT_UMASK, |process| process.umask)
    }

    /// Sets the caller's file-creation mask to `mask`'s permission bits; returns the previous.
    pub fn set_umask(&mut self, mask: u32) -> Result<u32, Errno> {
        const PERMISSION_BITS: u32 = 0o777;
        Ok(std::mem::replace(&mut self.process_mut()?.umask, mask & PERMISSION_BITS))
    }

    /// Marks `fd` close-on-exec or clears the mark (`fcntl(F_SETFD, FD_CLOEXEC)`): a marked
    /// descriptor is not inherited by a spawned child and is closed by an exec. `EBADF` if it
    /// is not open, and for the libc's hidden preopens (which no call may change).
    pub fn set_cloexec(&mut self, fd: u32, cloexec: bool) -> Result<(), Errno> {
        self.process_mut()?.fds.set_cloexec(visible(fd)?, cloexec)
    }

    /// Whether `fd` is close-on-exec (`fcntl(F_GETFD)`); `EBADF` as [`Syscalls::set_cloexec`].
    pub fn cloexec(&self, fd: u32) -> Result<bool, Errno> {
        self.process()?.fds.is_cloexec(visible(fd)?)
    }

    /// Sleeps `ms` milliseconds on the kernel clock.
    pub fn sleep_ms(&mut self, ms: u32) -> SysResult<()> {
        self.sleep(u64::from(ms).saturating_mul(NS_PER_MS), false)
    }

    /// Waits until the monotonic clock reaches `deadline_ns` (absolute) or for `timeout_ns`
    /// from the first attempt (relative). A blocked call is retried unchanged, so the deadline
    /// of a relative wait is remembered from its first attempt, not recomputed.
    pub fn sleep(&mut self, timeout_ns: u64, absolute: bool) -> SysResult<()> {
        let now_ns = self.monotonic_ns();
        let process = self.process_mut()?;
        let deadline_ns = match (absolute, process.sleep_deadline_ns) {
            (true, _) => timeout_ns,
            (false, Some(remembered)) => remembered,
            (false, None) => now_ns.saturating_add(timeout_ns),
        };
        if now_ns >= deadline_ns {
            process.sleep_deadline_ns = None;
            return Ok(());
        }
        process.sleep_deadline_ns = Some(deadline_ns);
        process.wait = Wait::Sleep { until_ms: deadline_ns.div_ceil(NS_PER_MS) };
        Err(SysError::WouldBlock)
    }
}

/// `fd` if it may name a descriptor a call changes or fills; `EBADF` for the hidden preopen
/// aliases (see [`HIDDEN_PREOPEN_TAG`]), which no call may close, replace or flag.
fn visible(fd: u32) -> Result<u32, Errno> {
    if fd & HIDDEN_PREOPEN_TAG != 0 {
        return Err(Errno::EBADF);
    }
    Ok(fd)
}
