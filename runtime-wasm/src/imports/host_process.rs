//! The `host_process` imports the original's command packages use besides WASI: pids, pipes,
//! descriptor duplication and close-on-exec, sleeping, signals and the signal mask, the
//! file-creation mask, spawning, replacing the program (`proc_exec`) and waiting for children.
//! Each is served by a [`WasiHost`] method; calls that may wait (sleeping, spawning, waiting for
//! a child, exec) suspend the guest like WASI reads do.
//!
//! Both generations of the spawn ABI are served: the legacy `proc_spawn`/`proc_waitpid` and
//! the 0.2.21 packages' `proc_spawn_v3`/`proc_waitpid_v2` (their encodings: [`crate::process`]).
//!
//! Not served yet (it answers `ENOSYS`): `pty_open`.

use std::sync::Arc;

use wasmtime::Linker;

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::WasiHost;
use crate::process::{
    decode_file_actions, env_entries, nul_strings, signal_set, utf8, ChildStatus, Exec, SignalMaskHow, Spawn,
    MAX_SPAWN_FILE_ACTION_BYTES, SPAWN_FLAGS_KNOWN, SPAWN_SETPGROUP, SPAWN_SETSID,
};

use super::{
    define_retrying, errno, host_errno, host_until_ready, returning, returning_pair, suspending, Call, Ctx, OutPtr,
};

/// The import module name.
pub const MODULE: &str = "host_process";

/// Most bytes of a spawn's argv, envp or cwd (the original's argv and environment limits are
/// 1 MiB each); larger is `E2BIG`.
const MAX_SPAWN_BLOB_BYTES: usize = 1 << 20;
/// Most descriptors `proc_exec` may list to close: as many as fit the same 1 MiB as a spawn's
/// other arguments (4 bytes each), far more than a process can hold open. More is `E2BIG`,
/// checked before anything is copied.
const MAX_EXEC_CLOSE_FDS: usize = MAX_SPAWN_BLOB_BYTES / 4;

/// `fcntl`'s `FD_CLOEXEC`, the only descriptor flag.
const FD_CLOEXEC: u32 = 1;
/// `waitpid`'s `WNOHANG`, the only option `proc_waitpid_v2` accepts.
const WNOHANG: u32 = 1;
/// The permission bits of a file-creation mask.
const UMASK_BITS: u32 = 0o777;

/// `proc_spawn`'s arguments, too many to spell out in its signature: `(argv, argv_len, envp,
/// envp_len, stdin, stdout, stderr, cwd, cwd_len, ret_pid)`.
type SpawnArgs = (u32, u32, u32, u32, Fd, Fd, Fd, u32, u32, u32);

/// `proc_spawn_v3`'s arguments: `(exec_path, exec_path_len, argv, argv_len, envp, envp_len,
/// actions, actions_len, cwd, cwd_len, attr_flags, sigdefault_lo, sigdefault_hi, sigmask_lo,
/// sigmask_hi, pgroup, ret_pid)`.
type SpawnV3Args = (u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32);

/// `proc_waitpid_v2`'s arguments: `(pid, options, ret_exit_code, ret_signal, ret_pid,
/// ret_core_dumped)`.
type WaitV2Args = (i32, u32, u32, u32, u32, u32);

/// `proc_exec`'s arguments: `(exec_path, exec_path_len, argv, argv_len, envp, envp_len,
/// cloexec_fds, cloexec_fds_count)`.
type ExecArgs = (u32, u32, u32, u32, u32, u32, u32, u32);

/// Defines the `host_process` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "proc_getpid", |mut c: Ctx<'_, H>, ret: u32| {
        errno(returning(&mut c, ret, H::proc_getpid))
    })?;
    linker.func_wrap(MODULE, "proc_getppid", |mut c: Ctx<'_, H>, ret: u32| {
        errno(returning(&mut c, ret, H::proc_getppid))
    })?;
    linker.func_wrap(MODULE, "fd_pipe", |mut c: Ctx<'_, H>, ret_read: u32, ret_write: u32| {
        errno(returning_pair(&mut c, (ret_read, ret_write), H::fd_pipe))
    })?;
    linker.func_wrap(MODULE, "fd_dup", |mut c: Ctx<'_, H>, fd: Fd, ret: u32| {
        errno(returning(&mut c, ret, |h| h.fd_dup(fd)))
    })?;
    linker.func_wrap(MODULE, "fd_dup2", |c: Ctx<'_, H>, old: Fd, new: Fd| host_errno(&c, |h| h.fd_dup2(old, new)))?;
    linker.func_wrap(MODULE, "proc_kill", |c: Ctx<'_, H>, pid: i32, signal: u32| {
        host_errno(&c, |h| h.proc_kill(pid, signal))
    })?;
    linker.func_wrap(
        MODULE,
        "proc_sigaction",
        |c: Ctx<'_, H>, signal: u32, action: u32, mask_lo: u32, mask_hi: u32, flags: u32| {
            let mask = u64::from(mask_lo) | (u64::from(mask_hi) << 32);
            host_errno(&c, |h| h.proc_sigaction(signal, action, mask, flags))
        },
    )?;
    linker.func_wrap_async(MODULE, "sleep_ms", |c: Ctx<'_, H>, (ms,): (u32,)| {
        suspending(host_until_ready(Arc::clone(&c.data().shared), move |h: &mut H| h.sleep_ms(ms)))
    })?;
    define_retrying(linker, MODULE, "proc_waitpid", |c, (pid, options, ret_status, ret_pid): (i32, u32, u32, u32)| {
        returning_pair(c, (ret_status, ret_pid), |h| h.proc_waitpid(pid, options))
    })?;
    define_retrying(linker, MODULE, "proc_spawn", proc_spawn)?;
    define_retrying(linker, MODULE, "proc_spawn_v3", proc_spawn_v3)?;
    define_retrying(linker, MODULE, "proc_waitpid_v2", proc_waitpid_v2)?;
    define_retrying(linker, MODULE, "proc_exec", proc_exec)?;
    linker.func_wrap(MODULE, "fd_setfd", |c: Ctx<'_, H>, fd: Fd, flags: u32| {
        // Only FD_CLOEXEC exists; other bits are ignored, as the kernel's `fcntl` does.
        host_errno(&c, |h| h.fd_setfd(fd, flags & FD_CLOEXEC != 0))
    })?;
    linker.func_wrap(
        MODULE,
        "proc_signal_mask_v2",
        |mut c: Ctx<'_, H>, how: u32, set_lo: u32, set_hi: u32, ret_old_lo: u32, ret_old_hi: u32| {
            errno(signal_mask(&mut c, how, signal_set(set_lo, set_hi), (ret_old_lo, ret_old_hi)))
        },
    )?;
    linker.func_wrap(MODULE, "umask", |mut c: Ctx<'_, H>, mask: u32, set: u32, ret_previous: u32| {
        errno(returning(&mut c, ret_previous, |h| match set {
            0 => Ok(h.umask()),
            _ => h.set_umask(mask & UMASK_BITS),
        }))
    })?;
    linker.func_wrap(MODULE, "pty_open", |_: Ctx<'_, H>, _: u32, _: u32| errno(Err(Errno::NoSys)))?;
    Ok(())
}

/// `argv` and `envp` are NUL-separated strings, the descriptors the child's 0, 1 and 2; see
/// [`WasiHost::proc_spawn`].
fn proc_spawn<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (argv, argv_len, envp, envp_len, stdin, stdout, stderr, cwd, cwd_len, ret_pid): SpawnArgs,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let ret_pid = call.out(ret_pid)?;
    let argv = call.read(argv, bounded(argv_len)?)?;
    let envp = call.read(envp, bounded(envp_len)?)?;
    let cwd = call.read(cwd, bounded(cwd_len)?)?;
    let pid = call.host(|host| host.proc_spawn(&argv, &envp, [stdin, stdout, stderr], &cwd))?;
    call.put(ret_pid, pid)
}

/// `posix_spawn` with ordered file actions (see [`Spawn`] and [`crate::process`]). `ret_pid` is
/// checked first; then `E2BIG` for a blob over its bound, `ENOTSUP` for an unknown attribute
/// flag, `EFAULT`/`EINVAL` for what cannot be read or decoded, `ENOENT` for an empty program —
/// all before the host starts anything. Of the attributes, `SETPGROUP`, `SETSID` and the mask
/// act; `RESETIDS`, `SETSIGDEF` (a child's dispositions start at their defaults anyway),
/// `SETSCHEDPARAM`, `SETSCHEDULER` and `USEVFORK` are accepted and change nothing.
fn proc_spawn_v3<H: WasiHost>(caller: &mut Ctx<'_, H>, args: SpawnV3Args) -> Result<(), Errno> {
    let (program, program_len, argv, argv_len, envp, envp_len, actions, actions_len, cwd, cwd_len, attr_flags) =
        (args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8, args.9, args.10);
    let (_sigdefault_lo, _sigdefault_hi, sigmask_lo, sigmask_hi, pgroup, ret_pid) =
        (args.11, args.12, args.13, args.14, args.15, args.16);
    let mut call = Call::of(caller)?;
    let ret_pid = call.out(ret_pid)?;
    let actions_len = bounded_by(actions_len, MAX_SPAWN_FILE_ACTION_BYTES)?;
    if attr_flags & !SPAWN_FLAGS_KNOWN != 0 {
        return Err(Errno::NotSup);
    }
    let program = call.path(program, program_len)?;
    let argv = call.read(argv, bounded(argv_len)?)?;
    let envp = call.read(envp, bounded(envp_len)?)?;
    let actions = call.read(actions, actions_len)?;
    let cwd = call.read(cwd, bounded(cwd_len)?)?;
    if program.is_empty() {
        return Err(Errno::NoEnt);
    }
    let spawn = Spawn {
        program: utf8(&program)?.to_owned(),
        argv: nul_strings(&argv)?,
        env: env_entries(&envp)?,
        actions: decode_file_actions(&actions)?,
        cwd: if cwd.is_empty() { None } else { Some(utf8(&cwd)?.to_owned()) },
        process_group: (attr_flags & SPAWN_SETPGROUP != 0).then_some(pgroup),
        new_session: attr_flags & SPAWN_SETSID != 0,
        signal_mask: signal_set(sigmask_lo, sigmask_hi),
    };
    let pid = call.host(|host| host.proc_spawn_v3(&spawn))?;
    call.put(ret_pid, pid)
}

/// `waitpid` with the exit code and the signal apart. All four outputs are checked before the
/// host is asked and all four written: zeros when `WNOHANG` finds no exited child (Rust's
/// `try_wait` tests the pid for 0). `EINVAL` for any option but `WNOHANG`.
fn proc_waitpid_v2<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (pid, options, ret_exit_code, ret_signal, ret_pid, ret_core_dumped): WaitV2Args,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let outputs: [OutPtr<u32>; 4] =
        [call.out(ret_exit_code)?, call.out(ret_signal)?, call.out(ret_pid)?, call.out(ret_core_dumped)?];
    if options & !WNOHANG != 0 {
        return Err(Errno::Inval);
    }
    let status = call.host(|host| host.proc_waitpid_v2(pid, options & WNOHANG != 0))?.unwrap_or_default();
    let ChildStatus { pid, exit_code, signal, core_dumped } = status;
    for (at, value) in outputs.into_iter().zip([exit_code, signal, pid, u32::from(core_dumped)]) {
        call.put(at, value)?;
    }
    Ok(())
}

/// `sigprocmask`: both outputs are checked first and both written with the previous mask's
/// words; `EINVAL` for a `how` past 3.
fn signal_mask<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    how: u32,
    set: u64,
    (ret_old_lo, ret_old_hi): (u32, u32),
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let (low, high) = (call.out(ret_old_lo)?, call.out(ret_old_hi)?);
    let how = SignalMaskHow::from_raw(how)?;
    let previous = call.host(|host| host.proc_signal_mask(how, set))?;
    let [low_word, high_word] = split_words(previous);
    call.put(low, low_word)?;
    call.put(high, high_word)
}

/// `execve`: on success the call never returns (the host drops the guest inside it); it only
/// returns an errno, never 0 (which the guest would read as `EIO`). `cloexec_fds` is not read
/// when its count is 0 (bash passes a dangling pointer then).
fn proc_exec<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (program, program_len, argv, argv_len, envp, envp_len, cloexec_fds, cloexec_count): ExecArgs,
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let count = bounded_by(cloexec_count, MAX_EXEC_CLOSE_FDS)?;
    let program = call.path(program, program_len)?;
    let argv = call.read(argv, bounded(argv_len)?)?;
    let envp = call.read(envp, bounded(envp_len)?)?;
    let close_fds = match count {
        0 => Vec::new(),
        count => call.read(cloexec_fds, count.checked_mul(4).ok_or(Errno::TooBig)?)?,
    };
    if program.is_empty() {
        return Err(Errno::NoEnt);
    }
    let exec = Exec {
        program: utf8(&program)?.to_owned(),
        argv: nul_strings(&argv)?,
        env: env_entries(&envp)?,
        close_fds: close_fds.chunks_exact(4).filter_map(|word| word.try_into().ok().map(u32::from_le_bytes)).collect(),
    };
    match call.host(|host| host.proc_exec(&exec)) {
        Errno::Success => Err(Errno::Io),
        failure => Err(failure),
    }
}

/// A 64-bit set as its `(low, high)` 32-bit words.
fn split_words(set: u64) -> [u32; 2] {
    let [a, b, c, d, e, f, g, h] = set.to_le_bytes();
    [u32::from_le_bytes([a, b, c, d]), u32::from_le_bytes([e, f, g, h])]
}

/// A spawn's blob length: `E2BIG` beyond [`MAX_SPAWN_BLOB_BYTES`].
fn bounded(len: u32) -> Result<usize, Errno> {
    bounded_by(len, MAX_SPAWN_BLOB_BYTES)
}

/// `len`, or `E2BIG` beyond `max`.
fn bounded_by(len: u32, max: usize) -> Result<usize, Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::TooBig)?;
    if len > max {
        return Err(Errno::TooBig);
    }
    Ok(len)
}
