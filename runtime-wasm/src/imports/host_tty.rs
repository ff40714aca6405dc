//! The `host_tty` imports bash's line editor uses: `read` (the terminal on fd 0, with a
//! timeout) and `set_raw_mode`. Guests have no terminal yet — their standard streams are pipes
//! to the host, and `host_user.isatty` says so — so `read` answers 0 bytes (its "timeout, end of
//! file or error") and `set_raw_mode` `ENOTTY`. Terminals will be served here once the kernel
//! has them.

use wasmtime::Linker;

use crate::abi::Errno;
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

use super::{errno, Ctx};

/// The import module name.
pub const MODULE: &str = "host_tty";

/// `read`'s answer: no bytes (the ABI's only failure value; it is never negative).
const NOTHING_READ: u32 = 0;

/// Defines the `host_tty` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "read", |_: Ctx<'_, H>, _buf: u32, _buf_len: u32, _timeout_ms: u32| NOTHING_READ)?;
    linker.func_wrap(MODULE, "set_raw_mode", |_: Ctx<'_, H>, _enable: u32| errno(Err(Errno::NoTty)))?;
    Ok(())
}
