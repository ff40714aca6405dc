//! The `host_user` imports the original's command packages use besides WASI: the caller's
//! identity and credentials, the account database (passwd and group records), and whether a
//! descriptor is a terminal. Each is served by a [`WasiHost`] method.
//!
//! Account lookups share one protocol (the original's): `ENOENT` when there is no such entry
//! (or an enumeration is past its end); otherwise the record's length is written to `*ret_len`
//! whether or not it fits, and a buffer too small for it is `ERANGE` with nothing copied.

use wasmtime::Linker;

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

use super::{errno, host_errno, returning, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "host_user";

/// Longest account record a lookup writes: a guest's buffer counts only up to this, so a huge
/// `buf_len` is not checked against (or copied into) more memory than a record needs. The
/// original's libc offers 4095 bytes and its tools 4096.
const MAX_RECORD_BYTES: u32 = 4096;

/// Longest account or group name `getpwnam`/`getgrnam` read (the original's bound); longer is
/// `ENAMETOOLONG`, so a lookup never copies more of the guest than a name can be.
const MAX_NAME_BYTES: usize = 4096;

/// Most supplementary groups `setgroups` reads (the original's bound); more is `E2BIG`, checked
/// before any memory is read.
const MAX_GROUPS: u32 = 64;

/// A host method answering an id.
type IdOp<H> = fn(&mut H) -> Result<u32, Errno>;
/// A host method looking a record up by number (an id, or an enumeration index).
type RecordByNumber<H> = fn(&mut H, u32) -> Result<Vec<u8>, Errno>;
/// A host method looking a record up by name.
type RecordByName<H> = fn(&mut H, &[u8]) -> Result<Vec<u8>, Errno>;
/// A host method setting an id.
type SetIdOp<H> = fn(&mut H, u32) -> Result<(), Errno>;

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
    let by_number: [(&str, RecordByNumber<H>); 4] =
        [("getpwuid", H::getpwuid), ("getpwent", H::getpwent), ("getgrgid", H::getgrgid), ("getgrent", H::getgrent)];
    for (name, lookup) in by_number {
        linker.func_wrap(
            MODULE,
            name,
            move |mut c: Ctx<'_, H>, number: u32, buf: u32, buf_len: u32, ret_len: u32| {
                errno(record(&mut c, (buf, buf_len), ret_len, |h| lookup(h, number)))
            },
        )?;
    }
    let by_name: [(&str, RecordByName<H>); 2] = [("getpwnam", H::getpwnam), ("getgrnam", H::getgrnam)];
    for (name, lookup) in by_name {
        linker.func_wrap(
            MODULE,
            name,
            move |mut c: Ctx<'_, H>, name: u32, name_len: u32, buf: u32, buf_len: u32, ret_len: u32| {
                errno(record_by_name(&mut c, (name, name_len), (buf, buf_len), ret_len, lookup))
            },
        )?;
    }
    linker.func_wrap(MODULE, "getgroups", |mut c: Ctx<'_, H>, size: u32, groups: u32, ret_count: u32| {
        errno(getgroups(&mut c, size, groups, ret_count))
    })?;
    let set_ids: [(&str, SetIdOp<H>); 2] = [("setuid", H::setuid), ("setgid", H::setgid)];
    for (name, set) in set_ids {
        linker.func_wrap(MODULE, name, move |c: Ctx<'_, H>, id: u32| host_errno(&c, |h| set(h, id)))?;
    }
    linker.func_wrap(MODULE, "setgroups", |mut c: Ctx<'_, H>, count: u32, groups: u32| {
        errno(setgroups(&mut c, count, groups))
    })?;
    Ok(())
}

/// The account lookup protocol (see the module docs): both pointers are checked first, then
/// `*ret_len` is written whenever a record is found, and the record only if it fits.
fn record<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (buf, buf_len): (u32, u32),
    ret_len: u32,
    lookup: impl FnOnce(&mut H) -> Result<Vec<u8>, Errno>,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let capacity = call.buffer(buf, buf_len.min(MAX_RECORD_BYTES))?;
    let ret_len = call.out(ret_len)?;
    let record = call.host(lookup)?;
    call.put(ret_len, u32::try_from(record.len()).map_err(|_| Errno::Range)?)?;
    if record.len() > capacity {
        return Err(Errno::Range);
    }
    call.write(buf, &record)
}

/// [`record`] by a name the guest passes as `(ptr, len)`, not NUL-terminated.
fn record_by_name<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (name, name_len): (u32, u32),
    buffer: (u32, u32),
    ret_len: u32,
    lookup: RecordByName<H>,
) -> Result<(), Errno> {
    let name_len = usize::try_from(name_len).map_err(|_| Errno::NameTooLong)?;
    if name_len > MAX_NAME_BYTES {
        return Err(Errno::NameTooLong);
    }
    let name = Call::of(caller)?.read(name, name_len)?;
    record(caller, buffer, ret_len, |h| lookup(h, &name))
}

/// `getgroups(2)`: with `size` 0 only the count (the groups pointer is not looked at);
/// otherwise the groups too, `EINVAL` if `size` is fewer than there are.
fn getgroups<H: WasiHost>(caller: &mut Ctx<'_, H>, size: u32, groups: u32, ret_count: u32) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let ret_count = call.out(ret_count)?;
    let gids = call.host(H::getgroups)?;
    let count = u32::try_from(gids.len()).map_err(|_| Errno::Overflow)?;
    if size != 0 {
        if size < count {
            return Err(Errno::Inval);
        }
        let bytes: Vec<u8> = gids.iter().flat_map(|gid| gid.to_le_bytes()).collect();
        call.write(groups, &bytes)?;
    }
    call.put(ret_count, count)
}

/// Reads `count` gids (at most [`MAX_GROUPS`]) and asks the host to make them the caller's.
fn setgroups<H: WasiHost>(caller: &mut Ctx<'_, H>, count: u32, groups: u32) -> Result<(), Errno> {
    if count > MAX_GROUPS {
        return Err(Errno::TooBig);
    }
    let call = Call::of(caller)?;
    let len = usize::try_from(count).map_err(|_| Errno::TooBig)?.checked_mul(4).ok_or(Errno::TooBig)?;
    let bytes = call.read(groups, len)?;
    let gids: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|gid| <[u8; 4]>::try_from(gid).map(u32::from_le_bytes).map_err(|_| Errno::Fault))
        .collect::<Result<_, _>>()?;
    call.host(|h| h.setgroups(&gids))
}
