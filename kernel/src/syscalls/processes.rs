//! Processes: spawning and reaping children, signals, sleeping.

use super::*;

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
    /// descriptors `stdio` as its 0, 1 and 2 (`u32::MAX`: left closed) and `cwd` (default: the
    /// caller's). The kernel starts it once the caller's slice ends, so the first call parks the
    /// caller ([`SysError::WouldBlock`]) and its retry returns the child's pid.
    pub fn spawn(
        &mut self,
        argv: Vec<String>,
        env: Vec<String>,
        stdio: [u32; 3],
        cwd: Option<String>,
    ) -> SysResult<u32> {
        if let Some(result) = self.process_mut()?.spawn_result.take() {
            return result.map_err(SysError::Errno);
        }
        if argv.first().is_none_or(String::is_empty) {
            return Err(Errno::EINVAL.into());
        }
        let process = self.process()?;
        let mut descriptors: [Option<Descriptor>; 3] = [None, None, None];
        for (slot, fd) in descriptors.iter_mut().zip(stdio) {
            if fd != u32::MAX {
                *slot = Some(process.fds.get(fd)?.clone());
            }
        }
        let process = self.process_mut()?;
        process.spawn_request = Some(SpawnRequest { argv, env, stdio: descriptors, cwd });
        process.wait = Wait::Spawn;
        Err(SysError::WouldBlock)
    }

    /// Waits for a child to exit and reaps it: `pid` > 0 that child, else any. Returns
    /// `(exit status, pid)`; `(0, 0)` with `WNOHANG` (bit 0 of `options`) when none has exited.
    /// `ECHILD` when there is no such child.
    pub fn waitpid(&mut self, pid: i32, options: u32) -> SysResult<(u32, u32)> {
        const WNOHANG: u32 = 1;
        let me = self.pid;
        let table = self.vm.processes();
        let wanted = |child: &&Process| {
            child.ppid == me && !child.top_level && (pid <= 0 || u32::try_from(pid).is_ok_and(|pid| child.pid == pid))
        };
        let children: Vec<&Process> = table.iter().filter(wanted).collect();
        if children.is_empty() {
            return Err(Errno::ECHILD.into());
        }
        let exited = children
            .iter()
            .filter_map(|child| match child.status {
                crate::process::table::Status::Exited(code) => Some((child.exit_order, child.pid, code)),
                _ => None,
            })
            .min();
        if let Some((_, child, code)) = exited {
            self.vm.processes_mut().remove(child);
            return Ok((code.cast_unsigned(), child));
        }
        if options & WNOHANG != 0 {
            return Ok((0, 0));
        }
        self.process_mut()?.wait = Wait::Child;
        Err(SysError::WouldBlock)
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
