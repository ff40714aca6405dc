//! The `wasi_snapshot_preview1` imports, defined once in a wasmtime [`Linker`] over
//! `Store<GuestCtx<H>>` and served by a [`WasiHost`].
//!
//! Each import validates its guest pointers (→ `EFAULT`), calls the host, and copies results
//! back. Calls that may block (`fd_read`, `fd_write`, `fd_pread`, `fd_pwrite`, `poll_oneoff`) are
//! async host functions: when the host answers [`SysError::WouldBlock`] the guest's fiber
//! suspends and the call is retried on the next poll. Flag arguments with bits WASI does not
//! define are `EINVAL`; paths longer than [`MAX_PATH_BYTES`](crate::MAX_PATH_BYTES) are
//! `ENAMETOOLONG`. Nothing here panics on guest input; the only traps are `proc_exit` (by
//! design) and wasmtime's own.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use wasmtime::Linker;

use crate::abi::{
    ClockId, Dirent, Errno, Event, Fd, FdStat, Filestat, Filetype, Prestat, Subscription, SubscriptionKind, Whence,
    FDFLAGS_ALL, FSTFLAGS_ALL, LOOKUPFLAGS_ALL, OFLAGS_ALL,
};
use crate::ctx::GuestCtx;
use crate::host::{unsupported_fd, SysResult, WasiHost};
use crate::memory::{GuestMemory, IoVec, MAX_IO_BYTES, MAX_POLL_SUBSCRIPTIONS};

use super::{errno, retrying, u, until_ready, BoxFuture, Ctx};

/// The import module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The error a guest's `proc_exit(code)` unwinds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest exited with code {0}")]
pub(crate) struct GuestExit(pub(crate) u32);

/// A host method taking a directory descriptor and a path.
type PathOp<H> = fn(&mut H, Fd, &[u8]) -> Result<(), Errno>;

/// Defines every `wasi_snapshot_preview1` function in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
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
    linker.func_wrap(MODULE, "proc_raise", proc_raise::<H>)?;
    add_fd_calls(linker)?;
    add_path_calls(linker)?;
    linker.func_wrap_async(
        MODULE,
        "fd_read",
        |caller: Ctx<'_, H>, (fd, iovs, iovs_len, nread): (i32, i32, i32, i32)| {
            Box::new(async move {
                let fd = u(fd);
                errno(
                    read_iovecs(caller, fd, u(iovs), u(iovs_len), u(nread), move |host: &mut H, buf: &mut [u8]| {
                        host.fd_read(fd, buf)
                    })
                    .await,
                )
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_write",
        |caller: Ctx<'_, H>, (fd, iovs, iovs_len, nwritten): (i32, i32, i32, i32)| {
            Box::new(async move {
                let fd = u(fd);
                errno(
                    write_iovecs(caller, u(iovs), u(iovs_len), u(nwritten), move |host: &mut H, data: &[u8]| {
                        host.fd_write(fd, data)
                    })
                    .await,
                )
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_pread",
        |caller: Ctx<'_, H>, (fd, iovs, iovs_len, offset, nread): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                let (fd, offset) = (u(fd), offset.cast_unsigned());
                errno(
                    read_iovecs(caller, fd, u(iovs), u(iovs_len), u(nread), move |host: &mut H, buf: &mut [u8]| {
                        host.fd_pread(fd, buf, offset)
                    })
                    .await,
                )
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_pwrite",
        |caller: Ctx<'_, H>, (fd, iovs, iovs_len, offset, nwritten): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                let (fd, offset) = (u(fd), offset.cast_unsigned());
                errno(
                    write_iovecs(caller, u(iovs), u(iovs_len), u(nwritten), move |host: &mut H, data: &[u8]| {
                        host.fd_pwrite(fd, data, offset)
                    })
                    .await,
                )
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "poll_oneoff",
        |caller: Ctx<'_, H>, (input, output, nsubscriptions, nevents): (i32, i32, i32, i32)| {
            Box::new(
                async move { errno(poll_oneoff(caller, u(input), u(output), u(nsubscriptions), u(nevents)).await) },
            ) as BoxFuture<'_, i32>
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

/// The descriptor calls served by [`WasiHost`] methods (besides reads, writes and polls).
fn add_fd_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "fd_datasync", |c: Ctx<'_, H>, fd: i32| fd_op(&c, fd, H::fd_datasync))?;
    linker.func_wrap(MODULE, "fd_sync", |c: Ctx<'_, H>, fd: i32| fd_op(&c, fd, H::fd_sync))?;
    linker.func_wrap(MODULE, "fd_fdstat_set_flags", |c: Ctx<'_, H>, fd: i32, flags: i32| {
        errno(flags16(flags, FDFLAGS_ALL).and_then(|flags| c.data().with_host(|h| h.fd_fdstat_set_flags(u(fd), flags))))
    })?;
    linker.func_wrap(MODULE, "fd_renumber", |c: Ctx<'_, H>, fd: i32, to: i32| {
        errno(c.data().with_host(|h| h.fd_renumber(u(fd), u(to))))
    })?;
    linker.func_wrap_async(MODULE, "fd_filestat_get", |mut c: Ctx<'_, H>, (fd, buf): (i32, i32)| {
        Box::new(async move { retrying(&mut c, |c| fd_filestat_get(c, fd, buf)).await }) as BoxFuture<'_, i32>
    })?;
    linker.func_wrap(MODULE, "fd_filestat_set_size", |c: Ctx<'_, H>, fd: i32, size: i64| {
        errno(c.data().with_host(|h| h.fd_filestat_set_size(u(fd), size.cast_unsigned())))
    })?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_set_times",
        |c: Ctx<'_, H>, fd: i32, atim: i64, mtim: i64, fstflags: i32| {
            errno(flags16(fstflags, FSTFLAGS_ALL).and_then(|fstflags| {
                c.data()
                    .with_host(|h| h.fd_filestat_set_times(u(fd), atim.cast_unsigned(), mtim.cast_unsigned(), fstflags))
            }))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_readdir",
        |mut c: Ctx<'_, H>, (fd, buf, buf_len, cookie, bufused): (i32, i32, i32, i64, i32)| {
            Box::new(async move { retrying(&mut c, |c| fd_readdir(c, fd, buf, buf_len, cookie, bufused)).await })
                as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap(MODULE, "fd_seek", fd_seek::<H>)?;
    linker.func_wrap(MODULE, "fd_tell", fd_tell::<H>)?;
    Ok(())
}

/// The path calls, all served by [`WasiHost`] methods. Each may have to wait for the host (a
/// permission prompt): see [`retrying`].
fn add_path_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    let simple: [(&str, PathOp<H>); 3] = [
        ("path_create_directory", H::path_create_directory),
        ("path_remove_directory", H::path_remove_directory),
        ("path_unlink_file", H::path_unlink_file),
    ];
    for (name, op) in simple {
        linker.func_wrap_async(MODULE, name, move |mut c: Ctx<'_, H>, (fd, path, len): (i32, i32, i32)| {
            Box::new(async move { retrying(&mut c, |c| path_op(c, fd, path, len, op)).await }) as BoxFuture<'_, i32>
        })?;
    }
    linker.func_wrap_async(
        MODULE,
        "path_filestat_get",
        |mut c: Ctx<'_, H>, (fd, flags, path, len, buf): (i32, i32, i32, i32, i32)| {
            Box::new(async move { retrying(&mut c, |c| path_filestat_get(c, fd, flags, path, len, buf)).await })
                as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "path_filestat_set_times",
        |mut c: Ctx<'_, H>, (fd, flags, path, len, atim, mtim, fst): (i32, i32, i32, i32, i64, i64, i32)| {
            Box::new(async move {
                retrying(&mut c, |c| path_filestat_set_times(c, fd, flags, path, len, atim, mtim, fst)).await
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "path_link",
        |mut c: Ctx<'_, H>,
         (old_fd, flags, old, old_len, new_fd, new, new_len): (i32, i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                retrying(&mut c, |c| path_link(c, old_fd, flags, old, old_len, new_fd, new, new_len)).await
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "path_open",
        |mut c: Ctx<'_, H>,
         (dirfd, dirflags, path, len, oflags, base, inheriting, fdflags, opened): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i64,
            i64,
            i32,
            i32,
        )| {
            Box::new(async move {
                retrying(&mut c, |c| {
                    path_open(c, dirfd, dirflags, path, len, oflags, base, inheriting, fdflags, opened)
                })
                .await
            }) as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "path_readlink",
        |mut c: Ctx<'_, H>, (fd, path, len, buf, buf_len, bufused): (i32, i32, i32, i32, i32, i32)| {
            Box::new(async move { retrying(&mut c, |c| path_readlink(c, fd, path, len, buf, buf_len, bufused)).await })
                as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "path_rename",
        |mut c: Ctx<'_, H>, (fd, old, old_len, new_fd, new, new_len): (i32, i32, i32, i32, i32, i32)| {
            Box::new(async move { retrying(&mut c, |c| path_rename(c, fd, old, old_len, new_fd, new, new_len)).await })
                as BoxFuture<'_, i32>
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "path_symlink",
        |mut c: Ctx<'_, H>, (old, old_len, fd, new, new_len): (i32, i32, i32, i32, i32)| {
            Box::new(async move { retrying(&mut c, |c| path_symlink(c, old, old_len, fd, new, new_len)).await })
                as BoxFuture<'_, i32>
        },
    )?;
    Ok(())
}

/// The calls no [`WasiHost`] method covers: `EBADF` for descriptors that are not open, `ENOSYS`
/// otherwise.
fn add_unsupported<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "fd_advise", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_allocate", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "fd_fdstat_set_rights", |c: Ctx<'_, H>, fd: i32, _: i64, _: i64| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "sock_accept", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "sock_recv", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
        fd_call(&c, fd)
    })?;
    linker.func_wrap(MODULE, "sock_send", |c: Ctx<'_, H>, fd: i32, _: i32, _: i32, _: i32, _: i32| fd_call(&c, fd))?;
    linker.func_wrap(MODULE, "sock_shutdown", |c: Ctx<'_, H>, fd: i32, _: i32| fd_call(&c, fd))?;
    Ok(())
}

/// A call no [`WasiHost`] method covers.
fn fd_call<H: WasiHost>(caller: &Ctx<'_, H>, fd: i32) -> i32 {
    errno(Err(caller.data().with_host(|host| unsupported_fd(host, u(fd)))))
}

/// A call taking only a descriptor.
fn fd_op<H: WasiHost>(caller: &Ctx<'_, H>, fd: i32, op: fn(&mut H, Fd) -> Result<(), Errno>) -> i32 {
    errno(caller.data().with_host(|host| op(host, u(fd))))
}

/// A call taking a directory descriptor and a path.
fn path_op<H: WasiHost>(caller: &mut Ctx<'_, H>, fd: i32, path: i32, path_len: i32, op: PathOp<H>) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let path = memory.path(&*caller, u(path), u(path_len))?;
        caller.data().with_host(|host| op(host, u(fd), &path))
    })())
}

/// A 16-bit flags argument: `EINVAL` if it does not fit or sets a bit outside `known`.
fn flags16(raw: i32, known: u16) -> Result<u16, Errno> {
    let flags = u16::try_from(u(raw)).map_err(|_| Errno::Inval)?;
    if flags & !known != 0 {
        return Err(Errno::Inval);
    }
    Ok(flags)
}

/// A `lookupflags` argument: `EINVAL` if it sets a bit WASI does not define.
fn lookupflags(raw: i32) -> Result<u32, Errno> {
    let flags = u(raw);
    if flags & !LOOKUPFLAGS_ALL != 0 {
        return Err(Errno::Inval);
    }
    Ok(flags)
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

/// `fd_read` / `fd_pread`: reads through `op` into a host buffer as large as the iovecs (at most
/// [`MAX_IO_BYTES`]), then scatters it over them.
async fn read_iovecs<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    iovs: u32,
    iovs_len: u32,
    nread: u32,
    mut op: impl FnMut(&mut H, &mut [u8]) -> SysResult<usize> + Send,
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
    let read = until_ready(Arc::clone(&caller.data().shared), |host| op(host, &mut buf)).await?;
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

/// `fd_write` / `fd_pwrite`: gathers the iovecs (at most [`MAX_IO_BYTES`]) and writes them
/// through `op`.
async fn write_iovecs<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    iovs: u32,
    iovs_len: u32,
    nwritten: u32,
    mut op: impl FnMut(&mut H, &[u8]) -> SysResult<usize> + Send,
) -> Result<(), Errno> {
    let memory = GuestMemory::of(&mut caller)?;
    let vecs = memory.iovecs(&caller, iovs, iovs_len)?;
    memory.check(&caller, nwritten, 4)?;
    let mut data = Vec::new();
    for vec in &vecs {
        let take = iov_len(vec).min(MAX_IO_BYTES.saturating_sub(data.len()));
        data.extend_from_slice(&memory.read(&caller, vec.ptr, take)?);
    }
    let written = until_ready(Arc::clone(&caller.data().shared), |host| op(host, &data)).await?;
    if written > data.len() {
        return Err(Errno::Io);
    }
    memory.write_u32(&mut caller, nwritten, len_u32(written)?)
}

/// Reads and decodes `count` subscriptions; `EINVAL` for an unknown tag or clock.
fn subscriptions<H: WasiHost>(
    caller: &Ctx<'_, H>,
    memory: &GuestMemory,
    input: u32,
    count: usize,
) -> Result<Vec<Subscription>, Errno> {
    let raw = memory.read(caller, input, count.checked_mul(Subscription::SIZE).ok_or(Errno::Inval)?)?;
    raw.chunks_exact(Subscription::SIZE)
        .map(|chunk| {
            <&[u8; Subscription::SIZE]>::try_from(chunk).map_err(|_| Errno::Fault).and_then(Subscription::decode)
        })
        .collect()
}

/// Turns a relative clock timeout into a deadline of that clock, so that retries of a blocked
/// call wait for the same time. Left relative if the host cannot read the clock.
fn absolute_deadline<H: WasiHost>(host: &mut H, subscription: &mut Subscription) {
    if let SubscriptionKind::Clock { id, timeout_ns, precision_ns, absolute: false } = subscription.kind {
        if let Ok(now) = host.clock_time_get(id, precision_ns) {
            subscription.kind = SubscriptionKind::Clock {
                id,
                timeout_ns: now.saturating_add(timeout_ns),
                precision_ns,
                absolute: true,
            };
        }
    }
}

async fn poll_oneoff<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    input: u32,
    output: u32,
    nsubscriptions: u32,
    nevents: u32,
) -> Result<(), Errno> {
    if nsubscriptions == 0 || nsubscriptions > MAX_POLL_SUBSCRIPTIONS {
        return Err(Errno::Inval);
    }
    let count = usize::try_from(nsubscriptions).map_err(|_| Errno::Inval)?;
    let memory = GuestMemory::of(&mut caller)?;
    memory.check(&caller, input, count.checked_mul(Subscription::SIZE).ok_or(Errno::Inval)?)?;
    memory.check(&caller, output, count.checked_mul(Event::SIZE).ok_or(Errno::Inval)?)?;
    memory.check(&caller, nevents, 4)?;
    let mut subscriptions = subscriptions(&caller, &memory, input, count)?;
    caller.data().with_host(|host| subscriptions.iter_mut().for_each(|sub| absolute_deadline(host, sub)));
    let events = until_ready(Arc::clone(&caller.data().shared), |host| host.poll_oneoff(&subscriptions)).await?;
    if events.len() > count {
        return Err(Errno::Io);
    }
    let bytes: Vec<u8> = events.iter().flat_map(Event::encode).collect();
    memory.write(&mut caller, output, &bytes)?;
    memory.write_u32(&mut caller, nevents, len_u32(events.len())?)
}

fn proc_raise<H: WasiHost>(caller: Ctx<'_, H>, sig: i32) -> i32 {
    errno(u8::try_from(u(sig)).map_err(|_| Errno::Inval).and_then(|sig| caller.data().with_host(|h| h.proc_raise(sig))))
}

fn fd_filestat_get<H: WasiHost>(caller: &mut Ctx<'_, H>, fd: i32, buf: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        memory.check(&*caller, u(buf), Filestat::SIZE)?;
        let stat = caller.data().with_host(|host| host.fd_filestat_get(u(fd)))?;
        memory.write(&mut *caller, u(buf), &stat.encode())
    })())
}

fn fd_seek<H: WasiHost>(mut caller: Ctx<'_, H>, fd: i32, offset: i64, whence: i32, newoffset: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(newoffset), 8)?;
        let whence = u8::try_from(u(whence)).ok().and_then(Whence::from_raw).ok_or(Errno::Inval)?;
        let position = caller.data().with_host(|host| host.fd_seek(u(fd), offset, whence))?;
        memory.write_u64(&mut caller, u(newoffset), position)
    })())
}

fn fd_tell<H: WasiHost>(mut caller: Ctx<'_, H>, fd: i32, offset: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(&mut caller)?;
        memory.check(&caller, u(offset), 8)?;
        let position = caller.data().with_host(|host| host.fd_tell(u(fd)))?;
        memory.write_u64(&mut caller, u(offset), position)
    })())
}

/// Entries one `fd_readdir` call returns at most: each may cost the host a lookup (an `lstat`
/// on a `host_dir` mount), and one call cannot be cut short by the scheduler, so a guest with a
/// huge buffer must not turn a 4,000-entry listing into one uninterruptible call.
pub const MAX_DIRENTS_PER_CALL: usize = 64;

/// Fills the guest's buffer with entries (header, then name), asking the host for more batches
/// until the buffer is full, the directory ends, or [`MAX_DIRENTS_PER_CALL`] entries were
/// returned; the last entry is cut at the end of the buffer. `bufused == buf_len` tells the guest
/// there may be more, so a call stopped by the bound fills the rest of the buffer with an entry
/// that does not fit (see [`truncated_dirent`]): the guest reads again from the last whole
/// entry's cookie, exactly as after an entry cut by the buffer's end.
fn fd_readdir<H: WasiHost>(caller: &mut Ctx<'_, H>, fd: i32, buf: i32, buf_len: i32, cookie: i64, bufused: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let capacity = usize::try_from(u(buf_len)).map_err(|_| Errno::Fault)?;
        memory.check(&*caller, u(buf), capacity)?;
        memory.check(&*caller, u(bufused), 4)?;
        let mut cookie = cookie.cast_unsigned();
        let mut used = 0usize;
        let mut returned = 0usize;
        'fill: loop {
            if returned >= MAX_DIRENTS_PER_CALL {
                let padding = truncated_dirent(cookie, capacity.saturating_sub(used));
                let at = u(buf).checked_add(len_u32(used)?).ok_or(Errno::Fault)?;
                memory.write(&mut *caller, at, &padding)?;
                used = used.saturating_add(padding.len());
                break;
            }
            let batch = caller.data().with_host(|host| host.fd_readdir(u(fd), cookie))?;
            if batch.is_empty() {
                break;
            }
            for entry in &batch {
                let bytes = entry.encode()?;
                let part = bytes.get(..bytes.len().min(capacity.saturating_sub(used))).ok_or(Errno::Fault)?;
                let at = u(buf).checked_add(len_u32(used)?).ok_or(Errno::Fault)?;
                memory.write(&mut *caller, at, part)?;
                used = used.saturating_add(part.len());
                if used >= capacity {
                    break 'fill;
                }
                cookie = entry.next;
                returned = returned.saturating_add(1);
                if returned >= MAX_DIRENTS_PER_CALL {
                    continue 'fill;
                }
            }
        }
        memory.write_u32(&mut *caller, u(bufused), len_u32(used)?)
    })())
}

/// `room` bytes holding the start of an entry that cannot fit in them: a header whose name
/// length reaches one byte past `room` (or, with less room than a header, a cut header). The
/// guest sees a cut last entry and asks again from `cookie`, the entry after the last whole one.
fn truncated_dirent(cookie: u64, room: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; room];
    if room >= Dirent::HEADER_SIZE {
        let name_len = u32::try_from(room - Dirent::HEADER_SIZE + 1).unwrap_or(u32::MAX);
        let header = Dirent { next: cookie, ino: 0, filetype: Filetype::Unknown, name: Vec::new() };
        if let (Ok(mut encoded), Some(slot)) = (header.encode_header(), bytes.get_mut(..Dirent::HEADER_SIZE)) {
            if let Some(length) = encoded.get_mut(16..20) {
                length.copy_from_slice(&name_len.to_le_bytes());
            }
            slot.copy_from_slice(&encoded);
        }
    }
    bytes
}

#[allow(clippy::too_many_arguments)]
fn path_open<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    dirfd: i32,
    dirflags: i32,
    path: i32,
    path_len: i32,
    oflags: i32,
    rights_base: i64,
    rights_inheriting: i64,
    fdflags: i32,
    opened: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        memory.check(&*caller, u(opened), 4)?;
        let path = memory.path(&*caller, u(path), u(path_len))?;
        let (dirflags, oflags, fdflags) =
            (lookupflags(dirflags)?, flags16(oflags, OFLAGS_ALL)?, flags16(fdflags, FDFLAGS_ALL)?);
        let (base, inheriting) = (rights_base.cast_unsigned(), rights_inheriting.cast_unsigned());
        let fd = caller
            .data()
            .with_host(|host| host.path_open(u(dirfd), dirflags, &path, oflags, base, inheriting, fdflags))?;
        memory.write_u32(&mut *caller, u(opened), fd)
    })())
}

fn path_filestat_get<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    fd: i32,
    flags: i32,
    path: i32,
    path_len: i32,
    buf: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        memory.check(&*caller, u(buf), Filestat::SIZE)?;
        let path = memory.path(&*caller, u(path), u(path_len))?;
        let flags = lookupflags(flags)?;
        let stat = caller.data().with_host(|host| host.path_filestat_get(u(fd), flags, &path))?;
        memory.write(&mut *caller, u(buf), &stat.encode())
    })())
}

#[allow(clippy::too_many_arguments)]
fn path_filestat_set_times<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    fd: i32,
    flags: i32,
    path: i32,
    path_len: i32,
    atim: i64,
    mtim: i64,
    fstflags: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let path = memory.path(&*caller, u(path), u(path_len))?;
        let (flags, fstflags) = (lookupflags(flags)?, flags16(fstflags, FSTFLAGS_ALL)?);
        let (atim, mtim) = (atim.cast_unsigned(), mtim.cast_unsigned());
        caller.data().with_host(|host| host.path_filestat_set_times(u(fd), flags, &path, atim, mtim, fstflags))
    })())
}

#[allow(clippy::too_many_arguments)]
fn path_link<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    old_fd: i32,
    old_flags: i32,
    old_path: i32,
    old_path_len: i32,
    new_fd: i32,
    new_path: i32,
    new_path_len: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let old_path = memory.path(&*caller, u(old_path), u(old_path_len))?;
        let new_path = memory.path(&*caller, u(new_path), u(new_path_len))?;
        let flags = lookupflags(old_flags)?;
        caller.data().with_host(|host| host.path_link(u(old_fd), flags, &old_path, u(new_fd), &new_path))
    })())
}

/// Copies as much of the link's target as fits `buf` (no NUL) and reports how much that was.
fn path_readlink<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    fd: i32,
    path: i32,
    path_len: i32,
    buf: i32,
    buf_len: i32,
    bufused: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let capacity = usize::try_from(u(buf_len)).map_err(|_| Errno::Fault)?;
        memory.check(&*caller, u(buf), capacity)?;
        memory.check(&*caller, u(bufused), 4)?;
        let path = memory.path(&*caller, u(path), u(path_len))?;
        let target = caller.data().with_host(|host| host.path_readlink(u(fd), &path))?;
        let part = target.get(..target.len().min(capacity)).ok_or(Errno::Fault)?;
        memory.write(&mut *caller, u(buf), part)?;
        memory.write_u32(&mut *caller, u(bufused), len_u32(part.len())?)
    })())
}

fn path_rename<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    fd: i32,
    old_path: i32,
    old_path_len: i32,
    new_fd: i32,
    new_path: i32,
    new_path_len: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let old_path = memory.path(&*caller, u(old_path), u(old_path_len))?;
        let new_path = memory.path(&*caller, u(new_path), u(new_path_len))?;
        caller.data().with_host(|host| host.path_rename(u(fd), &old_path, u(new_fd), &new_path))
    })())
}

fn path_symlink<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    old_path: i32,
    old_path_len: i32,
    fd: i32,
    new_path: i32,
    new_path_len: i32,
) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        let target = memory.path(&*caller, u(old_path), u(old_path_len))?;
        let new_path = memory.path(&*caller, u(new_path), u(new_path_len))?;
        caller.data().with_host(|host| host.path_symlink(&target, u(fd), &new_path))
    })())
}
