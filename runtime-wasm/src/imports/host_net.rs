//! The `host_net` imports: `net_send` and `net_recv`, the socket side of the original libc's
//! `write()` and `read()`. The libc calls them only for a descriptor whose WASI filetype is a
//! socket, and falls back to `fd_write`/`fd_read` on the same descriptor when they answer
//! `EBADF` (or `ENOTSOCK`).
//!
//! No guest has sockets yet, so both answer `EBADF` for every descriptor (after checking the
//! guest's pointers, as a real send or receive would): the libc's fallback then serves the call.
//! The network work will serve real sockets here, through [`WasiHost`] methods, keeping `EBADF`
//! for every descriptor that is not one.

use wasmtime::Linker;

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

use super::{errno, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "host_net";

/// Defines the `host_net` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    // `(fd, buf, buf_len, flags, ret_sent)` and `(fd, buf, buf_len, flags, ret_received)`.
    for name in ["net_send", "net_recv"] {
        linker.func_wrap(
            MODULE,
            name,
            |mut c: Ctx<'_, H>, fd: Fd, buf: u32, buf_len: u32, flags: u32, ret_len: u32| {
                errno(no_socket(&mut c, fd, (buf, buf_len), flags, ret_len))
            },
        )?;
    }
    Ok(())
}

/// Checks the buffer and the result pointer, then answers that `fd` is not a socket.
fn no_socket<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    fd: Fd,
    (buf, buf_len): (u32, u32),
    flags: u32,
    ret_len: u32,
) -> Result<(), Errno> {
    let _ = (fd, flags);
    let call = Call::of(caller)?;
    call.buffer(buf, buf_len)?;
    call.out::<u32>(ret_len)?;
    Err(Errno::Badf)
}
