//! The `wasi_snapshot_preview1` imports, defined once in a wasmtime [`Linker`] over
//! `Store<GuestCtx<H>>` and served by a [`WasiHost`].
//!
//! Each import validates its guest pointers (→ `EFAULT`), calls the host, and copies results
//! back. Calls that may block (`fd_read`, `fd_write`) are async host functions: when the host
//! answers [`SysError::WouldBlock`] the guest's fiber suspends and the call is retried on the
//! next poll. Nothing here panics on guest input; the only traps are `proc_exit` (by design) and
//! wasmtime's own.

use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use wasmtime::{Caller, Linker};

use crate::abi::{ClockId, Errno, Fd, FdStat, Filetype, Prestat};
use crate::ctx::{lock, GuestCtx, Shared};
use crate::host::{SysError, WasiHost};
use crate::memory::{GuestMemory, IoVec, MAX_IO_BYTES};

/// The import module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The error a guest's `proc_exit(code)` unwinds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest exited with code {0}")]
pub(crate) struct GuestExit(pub(crate) u32);

type Ctx<'a, H> = Caller<'a, GuestCtx<H>>;
type BoxFuture<'a, T> = Box<dyn Future<Output = T> + Send + 'a>;

/// Defines every `wasi_snapshot_preview1` function in `linker`.
///
/// # Errors
///
/// Fails if `linker` already defines one of them (and shadowing is off).
pub fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "args_get", args_get::<H>)?;
    linker.func_wrap(MODULE, "args_sizes_get", args_sizes_get::<H>)?;
    linker.func_wrap(MODULE, "environ_get", environ_get::<H>)?;
    linker.func_wrap(MODULE, "environ_sizes_get", environ_sizes_get::<H>)?;
    linker.func_wrap(MODULE, "clock_res_get", clock_res_get::<H>)?;
    linker.func_wrap(MODULE, "clock_time_get", clock_time_get::<H>)?;
    linker.func_wrap(MODULE, "random_get", random_get::<H>)?;
    linker.func_wrap(MODULE, "fd_close", fd_close::<H>)?;
    linker.func_wrap(MODULE, "fd_fdstat_get", fd_fdstat_get::<H>)?;
    linker.func_wrap(MODULE, "fd_prestat_get", fd_prestat_get::<H>)?;
    linker.func_wrap(MODULE, "fd_prestat_dir_name", fd_prestat_dir_name::<H>)?;
    linker.func_wrap(MODULE, "proc_exit", proc_exit::<H>)?;
    linker.func_wrap_async(
        MODULE,
        "fd_read",
        |caller: Ctx<'_, H>, (fd, iovs, iovs_len, nread): (i32, i32, i32, i32)| {
            Box::new(async move { errno(fd_read(caller, u(fd), u(iovs), u(iovs_len), u(nread)).await) })
                as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_write",
        |caller: Ctx<'_, H>, (fd, iovs, iovs_len, nwritten): (i32, i32, i32, i32)| {
            Box::new(async move { errno(fd_write(caller, u(fd), u(iovs), u(iovs_len), u(nwritten)).await) })
                as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(MODULE, "sched_yield", |_caller: Ctx<'_, H>, (): ()| {
        Box::new(async move {
            yield_once().await;
            0
        }) as BoxFuture<'_, i32>
    })?;
    add_unsupported(linker)
}

/// The calls no [`WasiHost`] method covers yet: descriptor calls answer `EBADF` for descriptors
/// that are not open, path calls `ENOTDIR` for a base descriptor that is not a directory, and
/// everything else `ENOSYS`.
fn add_unsupported<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "fd_advise", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_allocate", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_datasync", |c: Ctx<'_, H>, fd: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_fdstat_set_flags", |c: Ctx<'_, H>, fd: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_fdstat_set_rights", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_filestat_get", |c: Ctx<'_, H>, fd: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_filestat_set_size", |c: Ctx<'_, H>, fd: i32, _: i64| fd_call(&c, fd))?;
    linker
        .func_wrap(MODULE, "fd_filestat_set_times", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_pread", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i64, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_pwrite", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i64, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_readdir", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i64, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_renumber", |c: Ctx<'_, H>, fd: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_seek", |c: Ctx<'_, H>, fd: i32, _: i64, _: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_sync", |c: Ctx<'_, H>, fd: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_tell", |c: Ctx<'_, H>, fd: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "path_create_directory", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32| path_call(&c, fd))?;
    linker.func_wrap(MODULE, "path_filestat_get", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32| {
        path_call(&c, fd)
    })?;
    linker.func_wrap(
        MODULE,
        "path_filestat_set_times",
        |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32| path_call(&c, fd),
    )?;
    linker.func_wrap(
        MODULE,
        "path_link",
        |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| path_call(&c, fd),
    )?;
    linker.func_wrap(
        MODULE,
        "path_open",
        |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32, _: i32| path_call(&c, fd),
    )?;
    linker.func_wrap(MODULE, "path_readlink", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
        path_call(&c, fd)
    })?;
    linker.func_wrap(MODULE, "path_remove_directory", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32| path_call(&c, fd))?;
    linker.func_wrap(MODULE, "path_rename", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
        path_call(&c, fd)
    })?;
    linker.func_wrap(MODULE, "path_symlink", |c: Ctx<'_, H>, _: i32, _: i32, fd: i32, _: i32, _: i32| {
        path_call(&c, fd)
    })?;
    linker.func_wrap(MODULE, "path_unlink_file", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32| path_call(&c, fd))?;
    linker.func_wrap(MODULE, "poll_oneoff", |_: Ctx<'_, H>, _: i32, _: i32, _: i32, _: i32| nosys())?;
    linker.func_wrap(MODULE, "proc_raise", |_: Ctx<'_, H>, _: i32| nosys())?;
    linker.func_wrap(MODULE, "sock_accept", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "sock_recv", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
        fd_call(&c, fd)
    })?;
    linker.func_wrap(MODULE, "sock_send", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "sock_shutdown", |c: Ctx<'_, H>, fd: i32, _: i32| fd_call(&c, fd))?;
    Ok(())
}

/// A guest `i32` as the unsigned value WASI means (pointers, lengths, descriptors).
fn u(value: i32) -> u32 {
    value.cast_unsigned()
}

/// The errno a call returns to the guest.
fn errno(result: Result<(), Errno>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(errno) => i32::from(errno.raw()),
    }
}

fn nosys() -> i32 {
    errno(Err(Errno::NoSys))
}

fn fd_call<H: WasiHost>(caller: &Ctx<'_, H>, fd: i32) -> i32 {
    errno(caller.data().with_host(|host| host.fd_fdstat_get(u(fd))).and(Err(Errno::NoSys)))
}

fn path_call<H: WasiHost>(caller: &Ctx<'_, H>, fd: i32) -> i32 {
    errno(caller.data().with_host(|host| host.fd_fdstat_get(u(fd))).and_then(|stat| {
        if stat.filetype == Filetype::Directory {
            Err(Errno::NoSys)
        } else {
            Err(Errno::NotDir)
        }
    }))
}

fn len_u32(len: usize) -> Result<u32, Errno> {
    u32::try_from(len).map_err(|_| Errno::Overflow)
}

fn iov_len(vec: &IoVec) -> usize {
    usize::try_from(vec.len).unwrap_or(usize::MAX)
}

/// Writes `(count, total bytes including NULs)` of a NUL-terminated string list.
fn string_list_sizes<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    list: fn(&H) -> &[Vec<u8>],
    count_ptr: i32,
    size_ptr: i32,
) -> i32 {
    let sizes = caller.data().with_host(|host| {
        let items = list(host);
        let size = items.iter().try_fold(0u32, |acc, item| {
            len_u32(item.len())?.checked_add(1).and_then(|len| acc.checked_add(len)).ok_or(Errno::Overflow)
        })?;
        Ok((len_u32(items.len())?, size))
    });
    errno(sizes.and_then(|(count, size)| {
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(size_ptr), 4)?;
        memory.write_u32(&mut caller, u(count_ptr), count)?;
        memory.write_u32(&mut caller, u(size_ptr), size)
    }))
}

/// Writes a NUL-terminated string list: pointers at `ptrs`, the strings packed at `buf`.
fn string_list<H: WasiHost>(mut caller: Ctx<'_, H>, list: fn(&H) -> &[Vec<u8>], ptrs: i32, buf: i32) -> i32 {
    let items = caller.data().with_host(|host| list(host).to_vec());
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        let (mut ptr_at, mut buf_at) = (u(ptrs), u(buf));
        for item in &items {
            memory.write_u32(&mut caller, ptr_at, buf_at)?;
            memory.write(&mut caller, buf_at, item)?;
            let nul_at = buf_at.checked_add(len_u32(item.len())?).ok_or(Errno::Fault)?;
            memory.write(&mut caller, nul_at, &[0])?;
            buf_at = nul_at.checked_add(1).ok_or(Errno::Fault)?;
            ptr_at = ptr_at.checked_add(4).ok_or(Errno::Fault)?;
        }
        Ok(())
    })())
}

fn args_get<H: WasiHost>(caller: Ctx<'_, H>, argv: i32, argv_buf: i32) -> i32 {
    string_list(caller, H::args, argv, argv_buf)
}

fn args_sizes_get<H: WasiHost>(caller: Ctx<'_, H>, argc: i32, argv_buf_size: i32) -> i32 {
    string_list_sizes(caller, H::args, argc, argv_buf_size)
}

fn environ_get<H: WasiHost>(caller: Ctx<'_, H>, environ: i32, environ_buf: i32) -> i32 {
    string_list(caller, H::environ, environ, environ_buf)
}

fn environ_sizes_get<H: WasiHost>(caller: Ctx<'_, H>, count: i32, buf_size: i32) -> i32 {
    string_list_sizes(caller, H::environ, count, buf_size)
}

fn clock_res_get<H: WasiHost>(mut caller: Ctx<'_, H>, id: i32, resolution: i32) -> i32 {
    errno((|| {
        let clock = ClockId::from_raw(u(id)).ok_or(Errno::Inval)?;
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(resolution), 8)?;
        let ns = caller.data().with_host(|host| host.clock_res_get(clock))?;
        memory.write_u64(&mut caller, u(resolution), ns)
    })())
}

fn clock_time_get<H: WasiHost>(mut caller: Ctx<'_, H>, id: i32, precision: i64, time: i32) -> i32 {
    errno((|| {
        let clock = ClockId::from_raw(u(id)).ok_or(Errno::Inval)?;
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(time), 8)?;
        let ns = caller.data().with_host(|host| host.clock_time_get(clock, precision.cast_unsigned()))?;
        memory.write_u64(&mut caller, u(time), ns)
    })())
}

fn random_get<H: WasiHost>(mut caller: Ctx<'_, H>, buf: i32, buf_len: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        let total = usize::try_from(u(buf_len)).map_err(|_| Errno::Fault)?;
        memory.check(&caller, u(buf), total)?;
        let (mut at, mut left) = (u(buf), total);
        let mut chunk = vec![0u8; total.min(MAX_IO_BYTES)];
        while left > 0 {
            let part = chunk.get_mut(..left.min(MAX_IO_BYTES)).ok_or(Errno::Fault)?;
            caller.data().with_host(|host| host.random_get(part))?;
            memory.write(&mut caller, at, part)?;
            at = at.checked_add(len_u32(part.len())?).ok_or(Errno::Fault)?;
            left -= part.len();
        }
        Ok(())
    })())
}

fn fd_close<H: WasiHost>(caller: Ctx<'_, H>, fd: i32) -> i32 {
    errno(caller.data().with_host(|host| host.fd_close(u(fd))))
}

fn fd_fdstat_get<H: WasiHost>(mut caller: Ctx<'_, H>, fd: i32, stat: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(stat), FdStat::SIZE)?;
        let fdstat = caller.data().with_host(|host| host.fd_fdstat_get(u(fd)))?;
        memory.write(&mut caller, u(stat), &fdstat.encode())
    })())
}

fn fd_prestat_get<H: WasiHost>(mut caller: Ctx<'_, H>, fd: i32, prestat: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(prestat), Prestat::SIZE)?;
        let stat = caller.data().with_host(|host| host.fd_prestat_get(u(fd)))?;
        memory.write(&mut caller, u(prestat), &stat.encode())
    })())
}

fn fd_prestat_dir_name<H: WasiHost>(mut caller: Ctx<'_, H>, fd: i32, path: i32, path_len: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        let capacity = usize::try_from(u(path_len)).map_err(|_| Errno::Fault)?;
        memory.check(&caller, u(path), capacity)?;
        let name = caller.data().with_host(|host| host.fd_prestat_dir_name(u(fd)))?;
        if name.len() > capacity {
            return Err(Errno::NameTooLong);
        }
        memory.write(&mut caller, u(path), &name)
    })())
}

fn proc_exit<H: WasiHost>(caller: Ctx<'_, H>, code: i32) -> wasmtime::Result<()> {
    let code = u(code);
    caller.data().with_host(|host| host.proc_exit(code));
    Err(wasmtime::Error::new(GuestExit(code)))
}

/// Calls `op` on the host until it stops answering `WouldBlock`. Each `WouldBlock` records the
/// wait reason for the task and suspends the guest; the task's next poll retries.
async fn until_ready<H: WasiHost, T>(
    shared: Arc<Mutex<Shared<H>>>,
    mut op: impl FnMut(&mut H) -> Result<T, SysError>,
) -> Result<T, Errno> {
    poll_fn(move |_cx| {
        let mut shared = lock(&shared);
        match op(&mut shared.host) {
            Ok(value) => Poll::Ready(Ok(value)),
            Err(SysError::Errno(errno)) => Poll::Ready(Err(errno)),
            Err(SysError::WouldBlock(reason)) => {
                shared.wait = Some(reason);
                Poll::Pending
            }
        }
    })
    .await
}

/// Suspends the guest once, ending its slice.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(move |_cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            Poll::Pending
        }
    })
    .await;
}

async fn fd_read<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    iovs: u32,
    iovs_len: u32,
    nread: u32,
) -> Result<(), Errno> {
    let memory = GuestMemory::of(&mut caller)?;
    let vecs = memory.iovecs(&caller, iovs, iovs_len)?;
    memory.check(&caller, nread, 4)?;
    let capacity = vecs.iter().fold(0usize, |acc, vec| acc.saturating_add(iov_len(vec))).min(MAX_IO_BYTES);
    if capacity == 0 {
        caller.data().with_host(|host| host.fd_fdstat_get(fd))?;
        return memory.write_u32(&mut caller, nread, 0);
    }
    let mut buf = vec![0u8; capacity];
    let read = until_ready(Arc::clone(&caller.data().shared), |host| host.fd_read(fd, &mut buf)).await?;
    let mut data = buf.get(..read).ok_or(Errno::Io)?;
    for vec in &vecs {
        if data.is_empty() {
            break;
        }
        let (head, tail) = data.split_at(iov_len(vec).min(data.len()));
        memory.write(&mut caller, vec.ptr, head)?;
        data = tail;
    }
    memory.write_u32(&mut caller, nread, len_u32(read)?)
}

async fn fd_write<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    iovs: u32,
    iovs_len: u32,
    nwritten: u32,
) -> Result<(), Errno> {
    let memory = GuestMemory::of(&mut caller)?;
    let vecs = memory.iovecs(&caller, iovs, iovs_len)?;
    memory.check(&caller, nwritten, 4)?;
    let mut data = Vec::new();
    for vec in &vecs {
        let take = iov_len(vec).min(MAX_IO_BYTES.saturating_sub(data.len()));
        data.extend_from_slice(&memory.read(&caller, vec.ptr, take)?);
    }
    let written = until_ready(Arc::clone(&caller.data().shared), |host| host.fd_write(fd, &data)).await?;
    if written > data.len() {
        return Err(Errno::Io);
    }
    memory.write_u32(&mut caller, nwritten, len_u32(written)?)
}
