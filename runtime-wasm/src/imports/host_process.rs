//! The `host_process` imports the original's command packages use besides WASI: pids, pipes,
//! descriptor duplication, sleeping, signals, spawning and waiting for children. Each is served
//! by a [`WasiHost`] method; calls that may wait (sleeping, waiting for a child) suspend the
//! guest like WASI reads do.
//!
//! Not served yet (it answers `ENOSYS`): `pty_open`.

use std::sync::Arc;

use wasmtime::Linker;

use crate::abi::Errno;
use crate::ctx::GuestCtx;
use crate::host::WasiHost;
use crate::memory::GuestMemory;

use super::{errno, retrying, u, until_ready, write_u32, BoxFuture, Ctx};

/// The `host_process` import module name.
pub const HOST_PROCESS: &str = "host_process";

/// Defines the `host_process` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(HOST_PROCESS, "proc_getpid", |mut c: Ctx<'_, H>, ret: i32| {
        let pid = c.data().with_host(H::proc_getpid);
        write_u32(&mut c, pid, ret)
    })?;
    linker.func_wrap(HOST_PROCESS, "proc_getppid", |mut c: Ctx<'_, H>, ret: i32| {
        let pid = c.data().with_host(H::proc_getppid);
        write_u32(&mut c, pid, ret)
    })?;
    linker.func_wrap(HOST_PROCESS, "fd_pipe", |mut c: Ctx<'_, H>, ret_read: i32, ret_write: i32| {
        errno((|| {
            let memory = GuestMemory::of(&mut c)?;
            memory.check(&c, u(ret_read), 4)?;
            memory.check(&c, u(ret_write), 4)?;
            let (read, write) = c.data().with_host(H::fd_pipe)?;
            memory.write_u32(&mut c, u(ret_read), read)?;
            memory.write_u32(&mut c, u(ret_write), write)
        })())
    })?;
    linker.func_wrap(HOST_PROCESS, "fd_dup", |mut c: Ctx<'_, H>, fd: i32, ret: i32| {
        errno((|| {
            let memory = GuestMemory::of(&mut c)?;
            memory.check(&c, u(ret), 4)?;
            let new_fd = c.data().with_host(|host| host.fd_dup(u(fd)))?;
            memory.write_u32(&mut c, u(ret), new_fd)
        })())
    })?;
    linker.func_wrap(HOST_PROCESS, "fd_dup2", |c: Ctx<'_, H>, old: i32, new: i32| {
        errno(c.data().with_host(|host| host.fd_dup2(u(old), u(new))))
    })?;
    linker.func_wrap(HOST_PROCESS, "proc_kill", |c: Ctx<'_, H>, pid: i32, signal: i32| {
        errno(c.data().with_host(|host| host.proc_kill(pid, u(signal))))
    })?;
    linker.func_wrap(
        HOST_PROCESS,
        "proc_sigaction",
        |c: Ctx<'_, H>, signal: i32, action: i32, mask_lo: i32, mask_hi: i32, flags: i32| {
            let mask = u64::from(u(mask_lo)) | (u64::from(u(mask_hi)) << 32);
            errno(c.data().with_host(|host| host.proc_sigaction(u(signal), u(action), mask, u(flags))))
        },
    )?;
    linker.func_wrap_async(HOST_PROCESS, "sleep_ms", |c: Ctx<'_, H>, (ms,): (i32,)| {
        Box::new(async move {
            let shared = Arc::clone(&c.data().shared);
            errno(until_ready(shared, |host: &mut H| host.sleep_ms(u(ms))).await)
        }) as BoxFuture<'_, i32>
    })?;
    linker.func_wrap_async(
        HOST_PROCESS,
        "proc_waitpid",
        |mut c: Ctx<'_, H>, (pid, options, ret_status, ret_pid): (i32, i32, i32, i32)| {
            Box::new(async move {
                retrying(&mut c, |c| {
                    errno((|| {
                        let memory = GuestMemory::of(c)?;
                        memory.check(&*c, u(ret_status), 4)?;
                        memory.check(&*c, u(ret_pid), 4)?;
                        let (status, waited) = c.data().with_host(|host| host.proc_waitpid(pid, u(options)))?;
                        memory.write_u32(&mut *c, u(ret_status), status)?;
                        memory.write_u32(&mut *c, u(ret_pid), waited)
                    })())
                })
                .await
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        HOST_PROCESS,
        "proc_spawn",
        |mut c: Ctx<'_, H>,
         (argv, argv_len, envp, envp_len, stdin, stdout, stderr, cwd, cwd_len, ret_pid): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
        )| {
            Box::new(async move {
                retrying(&mut c, |c| {
                    errno((|| {
                        let memory = GuestMemory::of(c)?;
                        memory.check(&*c, u(ret_pid), 4)?;
                        let argv = memory.read(&*c, u(argv), bounded(argv_len)?)?;
                        let envp = memory.read(&*c, u(envp), bounded(envp_len)?)?;
                        let cwd = memory.read(&*c, u(cwd), bounded(cwd_len)?)?;
                        let stdio = [u(stdin), u(stdout), u(stderr)];
                        let pid = c.data().with_host(|host| host.proc_spawn(&argv, &envp, stdio, &cwd))?;
                        memory.write_u32(&mut *c, u(ret_pid), pid)
                    })())
                })
                .await
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap(HOST_PROCESS, "pty_open", |_: Ctx<'_, H>, _: i32, _: i32| errno(Err(Errno::NoSys)))?;
    Ok(())
}

/// Most bytes of a spawn's argv, envp or cwd (the original's argv and environment limits are
/// 1 MiB each); larger is `E2BIG`.
const MAX_SPAWN_BLOB_BYTES: usize = 1 << 20;

fn bounded(len: i32) -> Result<usize, Errno> {
    let len = usize::try_from(u(len)).map_err(|_| Errno::TooBig)?;
    if len > MAX_SPAWN_BLOB_BYTES {
        return Err(Errno::TooBig);
    }
    Ok(len)
}
