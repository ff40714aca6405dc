//! The host-extension import modules the original's command packages use besides WASI:
//! `host_process` (pids, pipes, descriptor duplication, sleeping, signals) and `host_user`
//! (identity, terminals). Each is served by a [`WasiHost`] method; calls that may wait (sleeping,
//! waiting for a child) suspend the guest like WASI reads do.
//!
//! Not served yet (it answers `ENOSYS`): `pty_open`.

use std::sync::Arc;

use wasmtime::Linker;

use crate::abi::Errno;
use crate::ctx::GuestCtx;
use crate::host::WasiHost;
use crate::memory::GuestMemory;
use crate::wasi::{errno, retrying, u, until_ready, BoxFuture, Ctx};

/// The `host_process` import module name.
pub const HOST_PROCESS: &str = "host_process";
/// The `host_user` import module name.
pub const HOST_USER: &str = "host_user";
/// Longest passwd line `getpwuid` writes.
const MAX_PASSWD_BYTES: usize = 4096;

/// Defines the `host_process` and `host_user` functions in `linker`.
///
/// # Errors
///
/// Fails if `linker` already defines one of them.
pub fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
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
    add_host_user(linker)
}

fn add_host_user<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    for (name, id) in [
        ("getuid", H::getuid as fn(&mut H) -> Result<u32, Errno>),
        ("getgid", H::getgid),
        ("geteuid", H::getuid),
        ("getegid", H::getgid),
    ] {
        linker.func_wrap(HOST_USER, name, move |mut c: Ctx<'_, H>, ret: i32| {
            let value = c.data().with_host(id);
            write_u32(&mut c, value, ret)
        })?;
    }
    linker.func_wrap(HOST_USER, "isatty", |mut c: Ctx<'_, H>, fd: i32, ret: i32| {
        let tty = c.data().with_host(|host| host.isatty(u(fd))).map(u32::from);
        write_u32(&mut c, tty, ret)
    })?;
    linker.func_wrap(HOST_USER, "getpwuid", |mut c: Ctx<'_, H>, uid: i32, buf: i32, buf_len: i32, ret_len: i32| {
        errno((|| {
            let memory = GuestMemory::of(&mut c)?;
            let capacity = usize::try_from(u(buf_len)).map_err(|_| Errno::Fault)?.min(MAX_PASSWD_BYTES);
            memory.check(&c, u(buf), capacity)?;
            memory.check(&c, u(ret_len), 4)?;
            let line = c.data().with_host(|host| host.getpwuid(u(uid)))?;
            if line.len() > capacity {
                return Err(Errno::Range);
            }
            memory.write(&mut c, u(buf), &line)?;
            memory.write_u32(&mut c, u(ret_len), u32::try_from(line.len()).map_err(|_| Errno::Range)?)
        })())
    })?;
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

/// Writes a host answer to a `*mut u32` result pointer, or returns its errno.
fn write_u32<H: WasiHost>(caller: &mut Ctx<'_, H>, value: Result<u32, Errno>, ptr: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        memory.check(&*caller, u(ptr), 4)?;
        memory.write_u32(&mut *caller, u(ptr), value?)
    })())
}
