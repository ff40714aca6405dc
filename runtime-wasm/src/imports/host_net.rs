//! The `host_net` imports: sockets for the original's libc (`socket`, `connect`, `bind`,
//! `listen`, `accept`, `send`/`recv`, `sendto`/`recvfrom`, `getsockname`/`getpeername`,
//! `setsockopt`, `getaddrinfo`, `poll`), each served by one [`WasiHost`] socket method.
//! Addresses cross as text, `IP:PORT`; `getaddrinfo` answers JSON. Calls that wait (`accept`,
//! `send`, `recv`, `recvfrom`, `poll`, `connect`) suspend the guest like WASI reads do.
//!
//! The libc's `read()`/`write()` on a socket also come here (`net_recv`/`net_send`) and fall
//! back to `fd_read`/`fd_write` on `EBADF`/`ENOTSOCK`, so descriptors that are not sockets keep
//! answering `ENOTSOCK`. `connect`, `getaddrinfo` and `net_tls_connect` may wait too: for a
//! connection out of the VM, a name resolution, a TLS handshake (all effects the driver
//! performs).
//!
//! Constants: socket types and families are accepted in both numberings a guest may have been
//! built with (wasi-libc's `SOCK_STREAM` 6 / `SOCK_DGRAM` 5 and Linux's 1 / 2; families are
//! not needed, the address text says). Message flags are wasi-libc's: `MSG_PEEK` 1,
//! `MSG_DONTWAIT` 0x40.

use wasmtime::Linker;

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::{MsgFlags, SocketTransport, WasiHost};

use super::{errno, host_errno, host_until_ready, returning, suspending, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "host_net";

/// Most bytes of one send or receive: as WASI reads and writes (a short transfer, as POSIX
/// allows).
const MAX_TRANSFER_BYTES: usize = crate::memory::MAX_IO_BYTES;
/// Most descriptors one `net_poll` watches (Linux's default `RLIMIT_NOFILE`); more is `EINVAL`.
const MAX_POLL_FDS: usize = 1024;
/// Bytes of one `pollfd`: `fd: i32, events: i16, revents: i16`.
const POLLFD_BYTES: usize = 8;
/// Most bytes of an address or host name argument.
const MAX_NAME_BYTES: usize = 1024;
/// Most bytes of a socket option value.
const MAX_OPTION_BYTES: usize = 256;

/// `SOCK_NONBLOCK` in either numbering (wasi-libc 0x4000, Linux 0x800).
const SOCK_NONBLOCK_BITS: u32 = 0x4000 | 0x800;
/// The type bits of `socket()`'s type argument.
const SOCK_TYPE_MASK: u32 = 0xf;
/// The IP families in either numbering: wasi-libc's `AF_INET` 1 and `AF_INET6` 2, Linux's
/// `AF_INET` 2 and `AF_INET6` 10. Anything else (`AF_UNIX`: wasi-libc 3) is `EAFNOSUPPORT`.
const IP_FAMILIES: [u32; 3] = [1, 2, 10];

const _: () = assert!(MAX_POLL_FDS * POLLFD_BYTES <= 1 << 16);

/// Defines the `host_net` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "net_socket", |mut c: Ctx<'_, H>, domain: u32, kind: u32, protocol: u32, ret: u32| {
        let _ = protocol;
        errno(returning(&mut c, ret, |h| {
            let (transport, nonblocking) = socket_kind(domain, kind)?;
            h.sock_open(transport, nonblocking)
        }))
    })?;
    linker.func_wrap_async(MODULE, "net_connect", |c: Ctx<'_, H>, (fd, addr, addr_len): (Fd, u32, u32)| {
        suspending(connect(c, fd, (addr, addr_len)))
    })?;
    linker.func_wrap(MODULE, "net_bind", |mut c: Ctx<'_, H>, fd: Fd, addr: u32, addr_len: u32| {
        errno(with_name(&mut c, (addr, addr_len), |h, address| h.sock_bind(fd, address)))
    })?;
    linker.func_wrap(MODULE, "net_listen", |c: Ctx<'_, H>, fd: Fd, backlog: u32| {
        host_errno(&c, |h| h.sock_listen(fd, backlog))
    })?;
    linker.func_wrap(MODULE, "net_close", |c: Ctx<'_, H>, fd: Fd| host_errno(&c, |h| h.fd_close(fd)))?;
    linker.func_wrap_async(MODULE, "net_tls_connect", |c: Ctx<'_, H>, (fd, name, name_len): (Fd, u32, u32)| {
        suspending(tls_connect(c, fd, (name, name_len)))
    })?;
    linker.func_wrap(MODULE, "net_getsockname", |mut c: Ctx<'_, H>, fd: Fd, ret: u32, ret_len: u32| {
        errno(answer_name(&mut c, (ret, ret_len), |h| h.sock_name(fd)))
    })?;
    linker.func_wrap(MODULE, "net_getpeername", |mut c: Ctx<'_, H>, fd: Fd, ret: u32, ret_len: u32| {
        errno(answer_name(&mut c, (ret, ret_len), |h| h.sock_peer_name(fd)))
    })?;
    linker.func_wrap(
        MODULE,
        "net_setsockopt",
        |mut c: Ctx<'_, H>, fd: Fd, level: u32, name: u32, value: u32, value_len: u32| {
            errno(set_option(&mut c, fd, (level, name), (value, value_len)))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_getaddrinfo",
        |c: Ctx<'_, H>, (host, host_len, port, port_len, family, ret, ret_len): (u32, u32, u32, u32, u32, u32, u32)| {
            let _ = (port, port_len);
            suspending(getaddrinfo(c, (host, host_len), family, (ret, ret_len)))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_send",
        |c: Ctx<'_, H>, (fd, buf, len, flags, ret): (Fd, u32, u32, u32, u32)| {
            suspending(send(c, fd, (buf, len), flags, None, ret))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_sendto",
        |c: Ctx<'_, H>, (fd, buf, len, flags, addr, addr_len, ret): (Fd, u32, u32, u32, u32, u32, u32)| {
            suspending(send(c, fd, (buf, len), flags, Some((addr, addr_len)), ret))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_recv",
        |c: Ctx<'_, H>, (fd, buf, len, flags, ret): (Fd, u32, u32, u32, u32)| {
            suspending(recv(c, fd, (buf, len), flags, ret, None))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_recvfrom",
        |c: Ctx<'_, H>, (fd, buf, len, flags, ret, addr, addr_len): (Fd, u32, u32, u32, u32, u32, u32)| {
            suspending(recv(c, fd, (buf, len), flags, ret, Some((addr, addr_len))))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_accept",
        |c: Ctx<'_, H>, (fd, ret_fd, ret_addr, ret_addr_len): (Fd, u32, u32, u32)| {
            suspending(accept(c, fd, ret_fd, (ret_addr, ret_addr_len)))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "net_poll",
        |c: Ctx<'_, H>, (fds, nfds, timeout_ms, ret_ready): (u32, u32, i32, u32)| {
            suspending(poll(c, (fds, nfds), timeout_ms, ret_ready))
        },
    )?;
    Ok(())
}

/// `socket()`'s family and type: the transport and whether it starts non-blocking.
fn socket_kind(domain: u32, kind: u32) -> Result<(SocketTransport, bool), Errno> {
    if !IP_FAMILIES.contains(&domain) {
        return Err(Errno::AfNoSupport);
    }
    let transport = match kind & SOCK_TYPE_MASK {
        1 | 6 => SocketTransport::Stream,
        2 | 5 => SocketTransport::Datagram,
        _ => return Err(Errno::ProtoNoSupport),
    };
    Ok((transport, kind & SOCK_NONBLOCK_BITS != 0))
}

/// Message flags (wasi-libc's numbering).
fn msg_flags(flags: u32) -> MsgFlags {
    MsgFlags { peek: flags & 0x1 != 0, dont_wait: flags & 0x40 != 0 }
}

/// Runs `op` with the address or name text at `(ptr, len)`.
fn with_name<H: WasiHost, T>(
    caller: &mut Ctx<'_, H>,
    (ptr, len): (u32, u32),
    op: impl FnOnce(&mut H, &[u8]) -> Result<T, Errno>,
) -> Result<T, Errno> {
    let call = Call::of(caller)?;
    let len = call.buffer(ptr, len)?;
    if len > MAX_NAME_BYTES {
        return Err(Errno::Inval);
    }
    let name = call.read(ptr, len)?;
    call.host(|h| op(h, &name))
}

/// Writes `text` into the guest's buffer `(ret, *ret_len)` and its length into `*ret_len`; a
/// buffer too small is `ENOBUFS` (the libc's are 255 bytes, far more than an address needs).
fn put_text<H: WasiHost>(call: &mut Call<'_, '_, H>, (ret, ret_len): (u32, u32), text: &[u8]) -> Result<(), Errno> {
    let capacity =
        u32::from_le_bytes(<[u8; 4]>::try_from(call.read(ret_len, 4)?.as_slice()).map_err(|_| Errno::Fault)?);
    let capacity = call.buffer(ret, capacity)?;
    if text.len() > capacity {
        return Err(Errno::NoBufs);
    }
    call.write(ret, text)?;
    call.write(ret_len, &u32::try_from(text.len()).map_err(|_| Errno::Overflow)?.to_le_bytes())
}

/// `getsockname` / `getpeername`.
fn answer_name<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    ret: (u32, u32),
    op: impl FnOnce(&mut H) -> Result<Vec<u8>, Errno>,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    call.out::<u32>(ret.1)?;
    let name = call.host(op)?;
    put_text(&mut call, ret, &name)
}

fn set_option<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    fd: Fd,
    (level, name): (u32, u32),
    (value, value_len): (u32, u32),
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let len = call.buffer(value, value_len)?;
    if len > MAX_OPTION_BYTES {
        return Err(Errno::Inval);
    }
    let value = call.read(value, len)?;
    call.host(|h| h.sock_set_option(fd, level, name, &value))
}

async fn getaddrinfo<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    host: (u32, u32),
    family: u32,
    ret: (u32, u32),
) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let name = read_name(&call, host)?;
    let answer = host_until_ready(call.shared(), |h: &mut H| h.resolve_name(&name, family)).await?;
    put_text(&mut call, ret, &answer)
}

async fn send<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    (buf, len): (u32, u32),
    flags: u32,
    to: Option<(u32, u32)>,
    ret: u32,
) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let sent_at = call.out::<u32>(ret)?;
    let len = call.buffer(buf, len)?.min(MAX_TRANSFER_BYTES);
    let data = call.read(buf, len)?;
    let to = match to {
        Some((ptr, len)) => {
            let len = call.buffer(ptr, len)?;
            if len > MAX_NAME_BYTES {
                return Err(Errno::Inval);
            }
            Some(call.read(ptr, len)?)
        }
        None => None,
    };
    let flags = msg_flags(flags);
    let sent = host_until_ready(call.shared(), |h: &mut H| match &to {
        Some(to) => h.sock_send_to(fd, &data, to, flags),
        None => h.sock_send(fd, &data, flags),
    })
    .await?;
    call.put(sent_at, u32::try_from(sent).map_err(|_| Errno::Overflow)?)
}

async fn recv<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    fd: Fd,
    (buf, len): (u32, u32),
    flags: u32,
    ret: u32,
    from: Option<(u32, u32)>,
) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let received_at = call.out::<u32>(ret)?;
    if let Some((_, from_len)) = from {
        call.out::<u32>(from_len)?;
    }
    let len = call.buffer(buf, len)?.min(MAX_TRANSFER_BYTES);
    let mut data = vec![0u8; len];
    let flags = msg_flags(flags);
    let (received, sender) = host_until_ready(call.shared(), |h: &mut H| match from {
        Some(_) => h.sock_recv_from(fd, &mut data, flags).map(|(read, from)| (read, Some(from))),
        None => h.sock_recv(fd, &mut data, flags).map(|read| (read, None)),
    })
    .await?;
    call.write(buf, data.get(..received).ok_or(Errno::Io)?)?;
    if let (Some(ret), Some(sender)) = (from, sender) {
        put_text(&mut call, ret, &sender)?;
    }
    call.put(received_at, u32::try_from(received).map_err(|_| Errno::Overflow)?)
}

/// Reads the name or address text at `(ptr, len)`.
fn read_name<H: WasiHost>(call: &Call<'_, '_, H>, (ptr, len): (u32, u32)) -> Result<Vec<u8>, Errno> {
    let len = call.buffer(ptr, len)?;
    if len > MAX_NAME_BYTES {
        return Err(Errno::Inval);
    }
    call.read(ptr, len)
}

async fn connect<H: WasiHost>(mut caller: Ctx<'_, H>, fd: Fd, address: (u32, u32)) -> Result<(), Errno> {
    let call = Call::of(&mut caller)?;
    let address = read_name(&call, address)?;
    host_until_ready(call.shared(), |h: &mut H| h.sock_connect(fd, &address)).await
}

async fn tls_connect<H: WasiHost>(mut caller: Ctx<'_, H>, fd: Fd, name: (u32, u32)) -> Result<(), Errno> {
    let call = Call::of(&mut caller)?;
    let name = read_name(&call, name)?;
    host_until_ready(call.shared(), |h: &mut H| h.sock_tls_connect(fd, &name)).await
}

async fn accept<H: WasiHost>(mut caller: Ctx<'_, H>, fd: Fd, ret_fd: u32, ret_addr: (u32, u32)) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let fd_at = call.out::<u32>(ret_fd)?;
    call.out::<u32>(ret_addr.1)?;
    let (accepted, peer) = host_until_ready(call.shared(), |h: &mut H| h.sock_accept(fd, false)).await?;
    put_text(&mut call, ret_addr, &peer)?;
    call.put(fd_at, accepted)
}

async fn poll<H: WasiHost>(
    mut caller: Ctx<'_, H>,
    (fds, nfds): (u32, u32),
    timeout_ms: i32,
    ret: u32,
) -> Result<(), Errno> {
    let mut call = Call::of(&mut caller)?;
    let ready_at = call.out::<u32>(ret)?;
    let count = usize::try_from(nfds).map_err(|_| Errno::Inval)?;
    if count > MAX_POLL_FDS {
        return Err(Errno::Inval);
    }
    let raw = call.read(fds, count.saturating_mul(POLLFD_BYTES))?;
    let entries: Vec<(Fd, u16)> = raw
        .chunks_exact(POLLFD_BYTES)
        .map(|entry| {
            let fd = entry.get(0..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(u32::MAX, u32::from_le_bytes);
            let events = entry.get(4..6).and_then(|b| <[u8; 2]>::try_from(b).ok()).map_or(0, u16::from_le_bytes);
            (fd, events)
        })
        .collect();
    // A relative timeout becomes one deadline before the first attempt, so retries after a
    // wake wait for the same time.
    let deadline_ns = match u64::try_from(timeout_ms) {
        Ok(timeout_ms) => {
            let now = call.host(|h| h.clock_time_get(crate::abi::ClockId::Monotonic, 0))?;
            Some(now.saturating_add(timeout_ms.saturating_mul(1_000_000)))
        }
        Err(_) => None,
    };
    let revents = host_until_ready(call.shared(), |h: &mut H| h.poll_fds(&entries, deadline_ns)).await?;
    let mut ready = 0u32;
    for (index, revents) in revents.iter().enumerate() {
        let at = u32::try_from(index.saturating_mul(POLLFD_BYTES).saturating_add(6)).map_err(|_| Errno::Inval)?;
        call.write(fds.saturating_add(at), &revents.to_le_bytes())?;
        if *revents != 0 {
            ready = ready.saturating_add(1);
        }
    }
    call.put(ready_at, ready)
}
