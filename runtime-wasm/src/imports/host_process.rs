//! The `host_process` imports the original's command packages use besides WASI: pids, pipes,
//! descriptor duplication, sleeping, signals, spawning and waiting for children. Each is served
//! by a [`WasiHost`] method; calls that may wait (sleeping, waiting for a child) suspend the
//! guest like WASI reads do.
//!
//! Not served yet (it answers `ENOSYS`): `pty_open`.

use std::sync::Arc;

use wasmtime::Linker;

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

use super::{define_retrying, errno, host_errno, host_until_ready, returning, returning_pair, suspending, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "host_process";

/// Most bytes of a spawn's argv, envp or cwd (the original's argv and environment limits are
/// 1 MiB each); larger is `E2BIG`.
const MAX_SPAWN_BLOB_BYTES: usize = 1 << 20;

/// `proc_spawn`'s arguments, too many to spell out in its signature: `(argv, argv_len, envp,
/// envp_len, stdin, stdout, stderr, cwd, cwd_len, ret_pid)`.
type SpawnArgs = (u32, u32, u32, u32, Fd, Fd, Fd, u32, u32, u32);

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

/// A spawn's blob length: `E2BIG` beyond [`MAX_SPAWN_BLOB_BYTES`].
fn bounded(len: u32) -> Result<usize, Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::TooBig)?;
    if len > MAX_SPAWN_BLOB_BYTES {
        return Err(Errno::TooBig);
    }
    Ok(len)
}
