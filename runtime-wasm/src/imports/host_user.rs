//! The `host_user` imports the original's command packages use besides WASI: the caller's
//! identity, its passwd entry, and whether a descriptor is a terminal. Each is served by a
//! [`WasiHost`] method.

use wasmtime::Linker;

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

use super::{errno, returning, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "host_user";

/// Longest passwd line `getpwuid` writes: a guest's buffer counts only up to this, so a huge
/// `buf_len` is not checked against (or copied into) more memory than a passwd line needs.
const MAX_PASSWD_BYTES: u32 = 4096;

/// A host method answering an id.
type IdOp<H> = fn(&mut H) -> Result<u32, Errno>;

/// Defines the `host_user` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    let ids: [(&str, IdOp<H>); 4] =
        [("getuid", H::getuid), ("getgid", H::getgid), ("geteuid", H::getuid), ("getegid", H::getgid)];
    for (name, id) in ids {
        linker.func_wrap(MODULE, name, move |mut c: Ctx<'_, H>, ret: u32| errno(returning(&mut c, ret, id)))?;
    }
    linker.func_wrap(MODULE, "isatty", |mut c: Ctx<'_, H>, fd: Fd, ret: u32| {
        errno(returning(&mut c, ret, |h| h.isatty(fd).map(u32::from)))
    })?;
    linker.func_wrap(MODULE, "getpwuid", |mut c: Ctx<'_, H>, uid: u32, buf: u32, buf_len: u32, ret_len: u32| {
        errno(getpwuid(&mut c, uid, buf, buf_len, ret_len))
    })?;
    Ok(())
}

/// Writes the passwd line of `uid` to `buf`, its length to `ret_len`; `ERANGE` if it does not
/// fit.
fn getpwuid<H: WasiHost>(caller: &mut Ctx<'_, H>, uid: u32, buf: u32, buf_len: u32, ret_len: u32) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let capacity = call.buffer(buf, buf_len.min(MAX_PASSWD_BYTES))?;
    let ret_len = call.out(ret_len)?;
    let line = call.host(|host| host.getpwuid(uid))?;
    if line.len() > capacity {
        return Err(Errno::Range);
    }
    call.write(buf, &line)?;
    call.put(ret_len, u32::try_from(line.len()).map_err(|_| Errno::Range)?)
}
