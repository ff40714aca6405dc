//! The `wasi_snapshot_preview1` imports, defined once in a wasmtime [`Linker`] over
//! `Store<GuestCtx<H>>` and served by a [`WasiHost`].
//!
//! Each import validates its guest pointers (→ `EFAULT`), calls the host, and copies results
//! back. Calls that may block (`fd_read`, `fd_write`, `fd_pread`, `fd_pwrite`, `poll_oneoff`) are
//! async host functions: when the host answers [`SysError::WouldBlock`](crate::SysError) the
//! guest's fiber suspends and the call is retried on the next poll. Flag arguments with bits WASI
//! does not define are `EINVAL`; paths longer than [`MAX_PATH_BYTES`](crate::MAX_PATH_BYTES) are
//! `ENAMETOOLONG`. Nothing here panics on guest input; the only traps are `proc_exit` (by
//! design) and wasmtime's own.
//!
//! Arguments arrive as the unsigned values WASI means (`u32` pointers, lengths and
//! descriptors, `u64` offsets and times): wasmtime reads a wasm `i32`/`i64` as `u32`/`u64` bit
//! for bit.

use wasmtime::Linker;

use crate::abi::{
    ClockId, Dirent, Errno, Event, Fd, Filetype, Subscription, SubscriptionKind, Whence, FDFLAGS_ALL, FDFLAGS_NONBLOCK,
    FSTFLAGS_ALL, LOOKUPFLAGS_ALL, OFLAGS_ALL,
};
use crate::ctx::GuestCtx;
use crate::host::{MsgFlags, SysResult, WasiHost};
use crate::memory::{IoVec, MAX_IO_BYTES, MAX_POLL_SUBSCRIPTIONS};

use super::{define_retrying, errno, host_errno, host_until_ready, returning, suspend_once, suspending, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The error a guest's `proc_exit(code)` unwinds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest exited with code {0}")]
pub(crate) struct GuestExit(pub(crate) u32);

/// Entries one `fd_readdir` call returns at most: each may cost the host a lookup (an `lstat`
/// on a `host_dir` mount), and one call cannot be cut short by the scheduler, so a guest with a
/// huge buffer must not turn a 4,000-entry listing into one uninterruptible call.
pub const MAX_DIRENTS_PER_CALL: usize = 64;

/// A host method taking a directory descriptor and a path.
type PathOp<H> = fn(&mut H, Fd, &[u8]) -> Result<(), Errno>;
/// A host method listing NUL-free byte strings (arguments, environment).
type StringList<H> = fn(&H) -> &[Vec<u8>];
/// `path_open`'s arguments, too many to spell out in its signature: `(dirfd, dirflags, path,
/// path_len, oflags, rights_base, rights_inheriting, fdflags, opened)`.
type PathOpenArgs = (Fd, u32, u32, u32, u32, u64, u64, u32, u32);

/// Defines every `wasi_snapshot_preview1` function in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    add_process_calls(linker)?;
    add_fd_calls(linker)?;
    add_path_calls(linker)?;
    add_blocking_calls(linker)?;
    add_socket_calls(linker)?;
    add_descriptor_kind_calls(linker)
}

/// Arguments, environment, clocks, entropy, and the process itself.
fn add_process_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    let lists: [(&str, &str, StringList<H>); 2] =
        [("args_get", "args_sizes_get", H::args), ("environ_get", "environ_sizes_get", H::environ)];
    for (get, sizes_get, list) in lists {
        linker.func_wrap(MODULE, get, move |mut c: Ctx<'_, H>, ptrs: u32, buf: u32| {
            errno(string_list(&mut c, list, ptrs, buf))
        })?;
        linker.func_wrap(MODULE, sizes_get, move |mut c: Ctx<'_, H>, count: u32, size: u32| {
            errno(string_list_sizes(&mut c, list, count, size))
        })?;
    }
    linker.func_wrap(MODULE, "clock_res_get", |mut c: Ctx<'_, H>, id: u32, resolution: u32| {
        errno(clock_id(id).and_then(|id| returning(&mut c, resolution, |h| h.clock_res_get(id))))
    })?;
    linker.func_wrap(MODULE, "clock_time_get", |mut c: Ctx<'_, H>, id: u32, precision: u64, time: u32| {
        errno(clock_id(id).and_then(|id| returning(&mut c, time, |h| h.clock_time_get(id, precision))))
    })?;
    linker.func_wrap(MODULE, "random_get", |mut c: Ctx<'_, H>, buf: u32, buf_len: u32| {
        errno(random_get(&mut c, buf, buf_len))
    })?;
    linker.func_wrap(MODULE, "proc_exit", proc_exit::<H>)?;
    linker.func_wrap(MODULE, "proc_raise", |c: Ctx<'_, H>, sig: u32| {
        host_errno(&c, |h| h.proc_raise(u8::try_from(sig).map_err(|_| Errno::Inval)?))
    })?;
    Ok(())
}

/// The descriptor calls served by [`WasiHost`] methods (besides reads, writes and polls).
fn add_fd_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "fd_close", |c: Ctx<'_, H>, fd: Fd| host_errno(&c, |h| h.fd_close(fd)))?;
    linker.func_wrap(MODULE, "fd_datasync", |c: Ctx<'_, H>, fd: Fd| host_errno(&c, |h| h.fd_datasync(fd)))?;
    linker.func_wrap(MODULE, "fd_sync", |c: Ctx<'_, H>, fd: Fd| host_errno(&c, |h| h.fd_sync(fd)))?;
    linker
        .func_wrap(MODULE, "fd_renumber", |c: Ctx<'_, H>, fd: Fd, to: Fd| host_errno(&c, |h| h.fd_renumber(fd, to)))?;
    linker.func_wrap(MODULE, "fd_fdstat_get", |mut c: Ctx<'_, H>, fd: Fd, stat: u32| {
        errno(returning(&mut c, stat, |h| h.fd_fdstat_get(fd)))
    })?;
    linker.func_wrap(MODULE, "fd_fdstat_set_flags", |c: Ctx<'_, H>, fd: Fd, flags: u32| {
        host_errno(&c, |h| h.fd_fdstat_set_flags(fd, flags16(flags, FDFLAGS_ALL)?))
    })?;
    linker.func_wrap(MODULE, "fd_prestat_get", |mut c: Ctx<'_, H>, fd: Fd, prestat: u32| {
        errno(returning(&mut c, prestat, |h| h.fd_prestat_get(fd)))
    })?;
    linker.func_wrap(MODULE, "fd_prestat_dir_name", |mut c: Ctx<'_, H>, fd: Fd, path: u32, path_len: u32| {
        errno(fd_prestat_dir_name(&mut c, fd, path, path_len))
    })?;
    linker.func_wrap(MODULE, "fd_seek", |mut c: Ctx<'_, H>, fd: Fd, offset: i64, whence: u32, newoffset: u32| {
        errno(returning(&mut c, newoffset, |h| h.fd_seek(fd, offset, seek_whence(whence)?)))
    })?;
    linker.func_wrap(MODULE, "fd_tell", |mut c: Ctx<'_, H>, fd: Fd, offset: u32| {
        errno(returning(&mut c, offset, |h| h.fd_tell(fd)))
    })?;
    // These may have to wait for the host (a permission prompt, or a call to a `host_dir`
    // mount's directory that the driver performs): see `define_retrying`.
    define_retrying(linker, MODULE, "fd_filestat_set_size", |c, (fd, size): (Fd, u64)| {
        c.data().with_host(|h| h.fd_filestat_set_size(fd, size))
    })?;
    define_retrying(linker, MODULE, "fd_filestat_set_times", |c, (fd, atim, mtim, fstflags): (Fd, u64, u64, u32)| {
        c.data().with_host(|h| h.fd_filestat_set_times(fd, atim, mtim, flags16(fstflags, FSTFLAGS_ALL)?))
    })?;
    define_retrying(linker, MODULE, "fd_filestat_get", |c, (fd, buf): (Fd, u32)| {
        returning(c, buf, |h| h.fd_filestat_get(fd))
    })?;
    define_retrying(linker, MODULE, "fd_readdir", fd_readdir)
}

/// The path calls, all served by [`WasiHost`] methods. Each may have to wait for the host (a
/// permission prompt): see [`define_retrying`](super::define_retrying).
fn add_path_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    let simple: [(&str, PathOp<H>); 3] = [
        ("path_create_directory", H::path_create_directory),
        ("path_remove_directory", H::path_remove_directory),
        ("path_unlink_file", H::path_unlink_file),
    ];
    for (name, op) in simple {
        define_retrying(linker, MODULE, name, move |c, (fd, path, path_len): (Fd, u32, u32)| {
            let call = Call::of(c)?;
            let path = call.path(path, path_len)?;
            call.host(|h| op(h, fd, &path))
        })?;
    }
    define_retrying(linker, MODULE, "path_filestat_get", path_filestat_get)?;
    define_retrying(linker, MODULE, "path_filestat_set_times", path_filestat_set_times)?;
    define_retrying(linker, MODULE, "path_link", path_link)?;
    define_retrying(linker, MODULE, "path_open", path_open)?;
    define_retrying(linker, MODULE, "path_readlink", path_readlink)?;
    define_retrying(linker, MODULE, "path_rename", path_rename)?;
    define_retrying(linker, MODULE, "path_symlink", path_symlink)
}

/// The calls whose host methods may answer `WouldBlock` (and `sched_yield`): async host
/// functions that suspend the guest until the host is ready (see [`host_until_ready`]).
fn add_blocking_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap_async(MODULE, "fd_read", |c: Ctx<'_, H>, (fd, iovs, iovs_len, nread): (Fd, u32, u32, u32)| {
        suspending(read_iovecs(c, fd, (iovs, iovs_len, nread), move |h: &mut H, buf: &mut [u8]| h.fd_read(fd, buf)))
    })?;
    linker.func_wrap_async(
        MODULE,
        "fd_pread",
        |c: Ctx<'_, H>, (fd, iovs, iovs_len, offset, nread): (Fd, u32, u32, u64, u32)| {
            suspending(read_iovecs(c, fd, (iovs, iovs_len, nread), move |h: &mut H, buf: &mut [u8]| {
                h.fd_pread(fd, buf, offset)
            }))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_write",
        |c: Ctx<'_, H>, (fd, iovs, iovs_len, nwritten): (Fd, u32, u32, u32)| {
            suspending(write_iovecs(c, (iovs, iovs_len, nwritten), move |h: &mut H, data: &[u8]| h.fd_write(fd, data)))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_pwrite",
        |c: Ctx<'_, H>, (fd, iovs, iovs_len, offset, nwritten): (Fd, u32, u32, u64, u32)| {
            suspending(write_iovecs(c, (iovs, iovs_len, nwritten), move |h: &mut H, data: &[u8]| {
                h.fd_pwrite(fd, data, offset)
            }))
        },
    )?;
    linker.func_wrap_async(MODULE, "poll_oneoff", |c: Ctx<'_, H>, args: (u32, u32, u32, u32)| {
        suspending(poll_oneoff(c, args))
    })?;
    linker.func_wrap_async(MODULE, "sched_yield", |_: Ctx<'_, H>, (): ()| {
        suspending(async {
            suspend_once(|| ()).await;
            Ok(())
        })
    })?;
    Ok(())
}

/// WASI's socket calls, on sockets the guest made through `host_net` (WASI itself cannot make
/// one): `sock_accept`, `sock_recv`, `sock_send`, `sock_shutdown`, served by the same
/// [`WasiHost`] socket methods.
fn add_socket_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap_async(MODULE, "sock_accept", |mut c: Ctx<'_, H>, (fd, flags, ret): (Fd, u32, u32)| {
        Box::new(async move {
            errno(
                async {
                    if flags & !u32::from(FDFLAGS_NONBLOCK) != 0 {
                        return Err(Errno::Inval);
                    }
                    let mut call = Call::of(&mut c)?;
                    let at = call.out::<u32>(ret)?;
                    let nonblocking = flags != 0;
                    let (accepted, _) =
                        host_until_ready(call.shared(), |h: &mut H| h.sock_accept(fd, nonblocking)).await?;
                    call.put(at, accepted)
                }
                .await,
            )
        }) as super::BoxFuture<'_, i32>
    })?;
    linker.func_wrap_async(
        MODULE,
        "sock_recv",
        |c: Ctx<'_, H>, (fd, iovs, iovs_len, flags, ret_len, ret_flags): (Fd, u32, u32, u32, u32, u32)| {
            suspending(sock_recv(c, fd, (iovs, iovs_len), flags, (ret_len, ret_flags)))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "sock_send",
        |c: Ctx<'_, H>, (fd, iovs, iovs_len, flags, ret): (Fd, u32, u32, u32, u32)| {
            let _ = flags;
            suspending(write_iovecs(c, (iovs, iovs_len, ret), move |h: &mut H, data: &[u8]| {
                h.sock_send(fd, data, MsgFlags::default())
            }))
        },
    )?;
    linker.func_wrap(MODULE, "sock_shutdown", |c: Ctx<'_, H>, fd: Fd, how: u32| {
        // `SDFLAGS_RD` 1, `SDFLAGS_WR` 2.
        host_errno(&c, |h| match how {
            1..=3 => h.sock_shutdown(fd, how & 1 != 0, how & 2 != 0),
            _ => Err(Errno::Inval),
        })
    })?;
    Ok(())
}

/// `sock_recv`: a receive into the iovecs; `ro_flags` is always 0 (a stream is never
/// truncated, and a datagram's cut-off tail is dropped as `recv` does).
async fn sock_recv<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    iovs: (u32, u32),
    flags: u32,
    (ret_len, ret_flags): (u32, u32),
) -> Result<(), Errno> {
    // `RIFLAGS_RECV_PEEK` 1, `RIFLAGS_RECV_WAITALL` 2 (served as a plain receive: POSIX lets
    // it return early on a signal, and callers loop).
    if flags & !3 != 0 {
        return Err(Errno::Inval);
    }
    Call::of(&mut caller)?.write(ret_flags, &0u16.to_le_bytes())?;
    let flags = MsgFlags { peek: flags & 1 != 0, dont_wait: false };
    read_iovecs(caller, fd, (iovs.0, iovs.1, ret_len), move |h: &mut H, buf: &mut [u8]| h.sock_recv(fd, buf, flags))
        .await
}

/// The calls that only need to know what a descriptor is (from [`WasiHost::fd_fdstat_get`]),
/// answered as wasmtime does: an advice is validated and accepted on a regular file (it changes
/// nothing here), space is never preallocated (`ENOTSUP`), rights are never dropped
/// (`ENOTSUP`); every other kind of descriptor is `EBADF` for the first two, as wasmtime's
/// "not a file".
fn add_descriptor_kind_calls<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "fd_advise", |c: Ctx<'_, H>, fd: Fd, _: u64, _: u64, advice: u32| {
        host_errno(&c, |h| {
            if advice > MAX_ADVICE {
                return Err(Errno::Inval);
            }
            regular_file(h, fd)
        })
    })?;
    linker.func_wrap(MODULE, "fd_allocate", |c: Ctx<'_, H>, fd: Fd, _: u64, _: u64| {
        host_errno(&c, |h| regular_file(h, fd).and(Err(Errno::NotSup)))
    })?;
    linker.func_wrap(MODULE, "fd_fdstat_set_rights", |c: Ctx<'_, H>, fd: Fd, _: u64, _: u64| {
        host_errno(&c, |h| h.fd_fdstat_get(fd).and(Err(Errno::NotSup)))
    })?;
    Ok(())
}

/// The largest `advice` (`NOREUSE` 5).
const MAX_ADVICE: u32 = 5;

/// `Ok` when `fd` is an open regular file, else `EBADF`.
fn regular_file<H: WasiHost>(host: &mut H, fd: Fd) -> Result<(), Errno> {
    match host.fd_fdstat_get(fd)?.filetype {
        Filetype::RegularFile => Ok(()),
        _ => Err(Errno::Badf),
    }
}

/// A clock argument: `EINVAL` for a clock WASI does not define.
fn clock_id(raw: u32) -> Result<ClockId, Errno> {
    ClockId::from_raw(raw).ok_or(Errno::Inval)
}

/// A `whence` argument: `EINVAL` for one WASI does not define.
fn seek_whence(raw: u32) -> Result<Whence, Errno> {
    u8::try_from(raw).ok().and_then(Whence::from_raw).ok_or(Errno::Inval)
}

/// A 16-bit flags argument: `EINVAL` if it does not fit or sets a bit outside `known`.
fn flags16(raw: u32, known: u16) -> Result<u16, Errno> {
    let flags = u16::try_from(raw).map_err(|_| Errno::Inval)?;
    if flags & !known != 0 {
        return Err(Errno::Inval);
    }
    Ok(flags)
}

/// A `lookupflags` argument: `EINVAL` if it sets a bit WASI does not define.
fn lookupflags(flags: u32) -> Result<u32, Errno> {
    if flags & !LOOKUPFLAGS_ALL != 0 {
        return Err(Errno::Inval);
    }
    Ok(flags)
}

fn len_u32(len: usize) -> Result<u32, Errno> {
    u32::try_from(len).map_err(|_| Errno::Overflow)
}

/// The guest address `len` bytes after `ptr`.
fn offset(ptr: u32, len: usize) -> Result<u32, Errno> {
    ptr.checked_add(len_u32(len)?).ok_or(Errno::Fault)
}

fn iov_len(vec: &IoVec) -> usize {
    usize::try_from(vec.len).unwrap_or(usize::MAX)
}

/// Writes `(count, total bytes including NULs)` of a NUL-terminated string list.
fn string_list_sizes<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    list: StringList<H>,
    count_ptr: u32,
    size_ptr: u32,
) -> Result<(), Errno> {
    let (count, size) = caller.data().with_host(|host| {
        let items = list(host);
        let size = items.iter().try_fold(0u32, |acc, item| {
            len_u32(item.len())?.checked_add(1).and_then(|len| acc.checked_add(len)).ok_or(Errno::Overflow)
        })?;
        Ok::<_, Errno>((len_u32(items.len())?, size))
    })?;
    let mut call = Call::of(caller)?;
    let (size_at, count_at) = (call.out(size_ptr)?, call.out(count_ptr)?);
    call.put(count_at, count)?;
    call.put(size_at, size)
}

/// Writes a NUL-terminated string list: pointers at `ptrs`, the strings packed at `buf`.
fn string_list<H: WasiHost>(caller: &mut Ctx<'_, H>, list: StringList<H>, ptrs: u32, buf: u32) -> Result<(), Errno> {
    let items = caller.data().with_host(|host| list(host).to_vec());
    let mut call = Call::of(caller)?;
    let (mut ptr_at, mut buf_at) = (ptrs, buf);
    for item in &items {
        call.write(ptr_at, &buf_at.to_le_bytes())?;
        call.write(buf_at, item)?;
        let nul_at = offset(buf_at, item.len())?;
        call.write(nul_at, &[0])?;
        buf_at = offset(nul_at, 1)?;
        ptr_at = offset(ptr_at, 4)?;
    }
    Ok(())
}

/// Fills the guest's buffer from the host's entropy, [`MAX_IO_BYTES`] at a time.
fn random_get<H: WasiHost>(caller: &mut Ctx<'_, H>, buf: u32, buf_len: u32) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let total = call.buffer(buf, buf_len)?;
    let (mut at, mut left) = (buf, total);
    let mut chunk = vec![0u8; total.min(MAX_IO_BYTES)];
    while left > 0 {
        let part = chunk.get_mut(..left.min(MAX_IO_BYTES)).ok_or(Errno::Fault)?;
        call.host(|host| host.random_get(part))?;
        call.write(at, part)?;
        at = offset(at, part.len())?;
        left -= part.len();
    }
    Ok(())
}

fn fd_prestat_dir_name<H: WasiHost>(caller: &mut Ctx<'_, H>, fd: Fd, path: u32, path_len: u32) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let capacity = call.buffer(path, path_len)?;
    let name = call.host(|host| host.fd_prestat_dir_name(fd))?;
    if name.len() > capacity {
        return Err(Errno::NameTooLong);
    }
    call.write(path, &name)
}

fn proc_exit<H: WasiHost>(caller: Ctx<'_, H>, code: u32) -> wasmtime::Result<()> {
    caller.data().with_host(|host| host.proc_exit(code));
    Err(wasmtime::Error::new(GuestExit(code)))
}

/// `fd_read` / `fd_pread`: reads through `op` into a host buffer as large as the iovecs (at most
/// [`MAX_IO_BYTES`]), then scatters it over them.
async fn read_iovecs<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    (iovs, iovs_len, nread): (u32, u32, u32),
    mut op: impl FnMut(&mut H, &mut [u8]) -> SysResult<usize> + Send,
) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let vecs = call.iovecs(iovs, iovs_len)?;
    let nread = call.out(nread)?;
    let capacity = vecs.iter().fold(0usize, |acc, vec| acc.saturating_add(iov_len(vec))).min(MAX_IO_BYTES);
    if capacity == 0 {
        call.host(|host| host.fd_fdstat_get(fd))?;
        return call.put(nread, 0u32);
    }
    let mut buf = vec![0u8; capacity];
    let read = host_until_ready(call.shared(), |host| op(host, &mut buf)).await?;
    let mut data = buf.get(..read).ok_or(Errno::Io)?;
    for vec in &vecs {
        if data.is_empty() {
            break;
        }
        let (head, tail) = data.split_at(iov_len(vec).min(data.len()));
        call.write(vec.ptr, head)?;
        data = tail;
    }
    call.put(nread, len_u32(read)?)
}

/// `fd_write` / `fd_pwrite`: gathers the iovecs (at most [`MAX_IO_BYTES`]) and writes them
/// through `op`.
async fn write_iovecs<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    (iovs, iovs_len, nwritten): (u32, u32, u32),
    mut op: impl FnMut(&mut H, &[u8]) -> SysResult<usize> + Send,
) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let vecs = call.iovecs(iovs, iovs_len)?;
    let nwritten = call.out(nwritten)?;
    let mut data = Vec::new();
    for vec in &vecs {
        let take = iov_len(vec).min(MAX_IO_BYTES.saturating_sub(data.len()));
        data.extend_from_slice(&call.read(vec.ptr, take)?);
    }
    let written = host_until_ready(call.shared(), |host| op(host, &data)).await?;
    if written > data.len() {
        return Err(Errno::Io);
    }
    call.put(nwritten, len_u32(written)?)
}

/// Reads and decodes `count` subscriptions; `EINVAL` for an unknown tag or clock.
fn subscriptions<H: WasiHost>(call: &Call<'_, '_, H>, input: u32, count: usize) -> Result<Vec<Subscription>, Errno> {
    let raw = call.read(input, count.checked_mul(Subscription::SIZE).ok_or(Errno::Inval)?)?;
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
    (input, output, nsubscriptions, nevents): (u32, u32, u32, u32),
) -> Result<(), Errno> {
    if nsubscriptions == 0 || nsubscriptions > MAX_POLL_SUBSCRIPTIONS {
        return Err(Errno::Inval);
    }
    let count = usize::try_from(nsubscriptions).map_err(|_| Errno::Inval)?;
    let mut call = Call::of(&mut caller)?;
    call.check(input, count.checked_mul(Subscription::SIZE).ok_or(Errno::Inval)?)?;
    call.check(output, count.checked_mul(Event::SIZE).ok_or(Errno::Inval)?)?;
    let nevents = call.out(nevents)?;
    let mut subscriptions = subscriptions(&call, input, count)?;
    call.host(|host| subscriptions.iter_mut().for_each(|sub| absolute_deadline(host, sub)));
    let events = host_until_ready(call.shared(), |host| host.poll_oneoff(&subscriptions)).await?;
    if events.len() > count {
        return Err(Errno::Io);
    }
    let bytes: Vec<u8> = events.iter().flat_map(Event::encode).collect();
    call.write(output, &bytes)?;
    call.put(nevents, len_u32(events.len())?)
}

/// Fills the guest's buffer with entries (header, then name), asking the host for more batches
/// until the buffer is full, the directory ends, or [`MAX_DIRENTS_PER_CALL`] entries were
/// returned; the last entry is cut at the end of the buffer. `bufused == buf_len` tells the guest
/// there may be more, so a call stopped by the bound fills the rest of the buffer with an entry
/// that does not fit (see [`truncated_dirent`]): the guest reads again from the last whole
/// entry's cookie, exactly as after an entry cut by the buffer's end.
fn fd_readdir<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (fd, buf, buf_len, mut cookie, bufused): (Fd, u32, u32, u64, u32),
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let capacity = call.buffer(buf, buf_len)?;
    let bufused = call.out(bufused)?;
    let mut used = 0usize;
    let mut returned = 0usize;
    'fill: loop {
        if returned >= MAX_DIRENTS_PER_CALL {
            let padding = truncated_dirent(cookie, capacity.saturating_sub(used));
            call.write(offset(buf, used)?, &padding)?;
            used = used.saturating_add(padding.len());
            break;
        }
        let batch = call.host(|host| host.fd_readdir(fd, cookie))?;
        if batch.is_empty() {
            break;
        }
        for entry in &batch {
            let bytes = entry.encode()?;
            let part = bytes.get(..bytes.len().min(capacity.saturating_sub(used))).ok_or(Errno::Fault)?;
            call.write(offset(buf, used)?, part)?;
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
    call.put(bufused, len_u32(used)?)
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

fn path_open<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (dirfd, dirflags, path, path_len, oflags, rights_base, rights_inheriting, fdflags, opened): PathOpenArgs,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let opened = call.out(opened)?;
    let path = call.path(path, path_len)?;
    let (dirflags, oflags, fdflags) =
        (lookupflags(dirflags)?, flags16(oflags, OFLAGS_ALL)?, flags16(fdflags, FDFLAGS_ALL)?);
    let fd =
        call.host(|host| host.path_open(dirfd, dirflags, &path, oflags, rights_base, rights_inheriting, fdflags))?;
    call.put(opened, fd)
}

fn path_filestat_get<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (fd, flags, path, path_len, buf): (Fd, u32, u32, u32, u32),
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let buf = call.out(buf)?;
    let path = call.path(path, path_len)?;
    let flags = lookupflags(flags)?;
    let stat = call.host(|host| host.path_filestat_get(fd, flags, &path))?;
    call.put(buf, stat)
}

fn path_filestat_set_times<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (fd, flags, path, path_len, atim, mtim, fstflags): (Fd, u32, u32, u32, u64, u64, u32),
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let path = call.path(path, path_len)?;
    let (flags, fstflags) = (lookupflags(flags)?, flags16(fstflags, FSTFLAGS_ALL)?);
    call.host(|host| host.path_filestat_set_times(fd, flags, &path, atim, mtim, fstflags))
}

fn path_link<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (old_fd, old_flags, old_path, old_path_len, new_fd, new_path, new_path_len): (Fd, u32, u32, u32, Fd, u32, u32),
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let old_path = call.path(old_path, old_path_len)?;
    let new_path = call.path(new_path, new_path_len)?;
    let flags = lookupflags(old_flags)?;
    call.host(|host| host.path_link(old_fd, flags, &old_path, new_fd, &new_path))
}

/// Copies as much of the link's target as fits `buf` (no NUL) and reports how much that was.
fn path_readlink<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (fd, path, path_len, buf, buf_len, bufused): (Fd, u32, u32, u32, u32, u32),
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let capacity = call.buffer(buf, buf_len)?;
    let bufused = call.out(bufused)?;
    let path = call.path(path, path_len)?;
    let target = call.host(|host| host.path_readlink(fd, &path))?;
    let part = target.get(..target.len().min(capacity)).ok_or(Errno::Fault)?;
    call.write(buf, part)?;
    call.put(bufused, len_u32(part.len())?)
}

fn path_rename<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (fd, old_path, old_path_len, new_fd, new_path, new_path_len): (Fd, u32, u32, Fd, u32, u32),
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let old_path = call.path(old_path, old_path_len)?;
    let new_path = call.path(new_path, new_path_len)?;
    call.host(|host| host.path_rename(fd, &old_path, new_fd, &new_path))
}

fn path_symlink<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (old_path, old_path_len, fd, new_path, new_path_len): (u32, u32, Fd, u32, u32),
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let target = call.path(old_path, old_path_len)?;
    let new_path = call.path(new_path, new_path_len)?;
    call.host(|host| host.path_symlink(&target, fd, &new_path))
}
