//! The `host_user` imports the original's command packages use besides WASI: the caller's
//! identity, its passwd entry, and whether a descriptor is a terminal. Each is served by a
//! [`WasiHost`] method.

use wasmtime::Linker;

use crate::abi::Errno;
use crate::ctx::GuestCtx;
use crate::host::WasiHost;
use crate::memory::GuestMemory;

use super::{errno, u, write_u32, Ctx};

/// The `host_user` import module name.
pub const HOST_USER: &str = "host_user";
/// Longest passwd line `getpwuid` writes.
const MAX_PASSWD_BYTES: usize = 4096;

/// Defines the `host_user` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
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
