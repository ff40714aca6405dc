//! The `host_fs` imports: what the original's libc and Rust std ask about files beyond WASI —
//! the full `st_mode` (type bits and permissions), sizes, owners, device numbers, `chmod`,
//! `chown`, `ftruncate`, the creation mode of the next `path_open`, `statfs` and `remount`.
//! Each is served by a [`WasiHost`] method.
//!
//! The getters (`path_mode`, `path_size`, `path_rdev`, `fd_mode`, `fd_size`) answer the value
//! itself, with a sentinel for any failure (a bad pointer included): 0 for a mode or a device
//! number, `u64::MAX` for a size. The guests then keep what WASI's filestat told them. The
//! others answer an errno.
//!
//! Directory descriptors here may also be `u32::MAX` or `u32::MAX - 1` (`AT_FDCWD`): the
//! caller's working directory (the original's `chown`, `chgrp` and `df` pass `u32::MAX` with
//! the user's raw path); see [`WasiHost::path_metadata`].

use wasmtime::{Linker, WasmRet, WasmTyList};

use crate::abi::{Errno, Fd};
use crate::ctx::GuestCtx;
use crate::host::{FileMetadata, WasiHost};

use super::{define_retrying, host_errno, unless_parked, until_ready, BoxFuture, Call, Ctx};

/// The import module name.
pub const MODULE: &str = "host_fs";

/// The mode bits `set_open_mode` and `chmod` pass on: permissions for owner, group and others,
/// and setuid, setgid and sticky. The file's type is never the caller's to set.
const MODE_BITS: u32 = 0o7777;

/// `path_chown`'s "leave this id as it is" (POSIX's `(uid_t)-1`).
const UNCHANGED_ID: u32 = u32::MAX;

/// Longest option string `remount` reads (the original's bound, 64 KiB): a `-o` list of mount
/// flags is a few dozen bytes; longer is `E2BIG`, so a guest cannot make the host copy more.
const MAX_REMOUNT_OPTIONS_BYTES: usize = 64 << 10;

/// `path_mode`'s and `fd_mode`'s answer when they fail: no mode at all.
const NO_MODE: u32 = 0;
/// `path_size`'s and `fd_size`'s answer when they fail.
const NO_SIZE: u64 = u64::MAX;
/// `path_rdev`'s answer when it fails: what a file that is not a device has.
const NO_RDEV: u64 = 0;

/// `path_statfs`'s arguments, too many to spell out in its signature: `(dirfd, path,
/// path_len, ret_total_bytes, ret_used_bytes, ret_available_bytes, ret_total_inodes,
/// ret_free_inodes)`.
type StatfsArgs = (Fd, u32, u32, u32, u32, u32, u32, u32);

/// `path_owner`'s arguments: `(dirfd, path, path_len, follow, ret_uid, ret_gid)`.
type OwnerArgs = (Fd, u32, u32, u32, u32, u32);

/// `path_chown`'s arguments: `(dirfd, path, path_len, uid, gid, follow)` (note the order,
/// unlike `path_owner`'s).
type ChownArgs = (Fd, u32, u32, u32, u32, u32);

/// Defines the `host_fs` functions in `linker`.
pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    define_retrying_getter(linker, "path_mode", |c, (dirfd, path, path_len, follow): (Fd, u32, u32, u32)| {
        path_metadata(c, dirfd, (path, path_len), follow).map_or(NO_MODE, |metadata| metadata.mode)
    })?;
    define_retrying_getter(linker, "path_size", |c, (dirfd, path, path_len, follow): (Fd, u32, u32, u32)| {
        path_metadata(c, dirfd, (path, path_len), follow).map_or(NO_SIZE, |metadata| metadata.size)
    })?;
    define_retrying_getter(linker, "path_rdev", |c, (dirfd, path, path_len, follow): (Fd, u32, u32, u32)| {
        path_metadata(c, dirfd, (path, path_len), follow).map_or(NO_RDEV, |metadata| metadata.rdev)
    })?;
    define_retrying_getter(linker, "fd_mode", |c, (fd,): (Fd,)| {
        c.data().with_host(|h| h.fd_metadata(fd)).map_or(NO_MODE, |metadata| metadata.mode)
    })?;
    define_retrying_getter(linker, "fd_size", |c, (fd,): (Fd,)| {
        c.data().with_host(|h| h.fd_metadata(fd)).map_or(NO_SIZE, |metadata| metadata.size)
    })?;
    linker.func_wrap(MODULE, "set_open_mode", |c: Ctx<'_, H>, mode: u32| {
        host_errno(&c, |h| h.set_open_mode(mode & MODE_BITS))
    })?;
    define_retrying(linker, MODULE, "chmod", |c, (dirfd, path, path_len, mode): (Fd, u32, u32, u32)| {
        let call = Call::of(c)?;
        let path = call.path(path, path_len)?;
        call.host(|h| h.path_chmod(dirfd, &path, mode & MODE_BITS))
    })?;
    define_retrying(linker, MODULE, "ftruncate", |c, (fd, len): (Fd, i64)| {
        // The guests refuse a negative length themselves; one arriving anyway is `EINVAL`.
        let len = u64::try_from(len).map_err(|_| Errno::Inval)?;
        c.data().with_host(|h| h.fd_truncate(fd, len))
    })?;
    define_retrying(linker, MODULE, "path_owner", path_owner)?;
    define_retrying(linker, MODULE, "path_chown", path_chown)?;
    define_retrying(linker, MODULE, "path_statfs", path_statfs)?;
    linker.func_wrap(
        MODULE,
        "remount",
        |mut c: Ctx<'_, H>, target: u32, target_len: u32, options: u32, options_len: u32| {
            super::errno(remount(&mut c, (target, target_len), (options, options_len)))
        },
    )?;
    Ok(())
}

/// Defines `host_fs.name` as a getter the host may park ([`WasiHost::take_wait`], e.g. for a
/// permission prompt): as [`define_retrying`], but `call` answers the import's value (a getter
/// has no errno), and runs again from scratch after each wait.
fn define_retrying_getter<H, P, R>(
    linker: &mut Linker<GuestCtx<H>>,
    name: &str,
    call: impl Fn(&mut Ctx<'_, H>, P) -> R + Copy + Send + Sync + 'static,
) -> wasmtime::Result<()>
where
    H: WasiHost,
    P: WasmTyList + Copy + Send + 'static,
    R: WasmRet + Send + 'static,
{
    linker.func_wrap_async(MODULE, name, move |mut caller: Ctx<'_, H>, params: P| {
        Box::new(async move {
            let shared = std::sync::Arc::clone(&caller.data().shared);
            until_ready(&shared, move || {
                let value = call(&mut caller, params);
                unless_parked(&caller, value)
            })
            .await
        }) as BoxFuture<'_, R>
    })?;
    Ok(())
}

/// What the host says of the path `(ptr, len)` relative to `dirfd`; `follow` (non-zero)
/// follows a final symbolic link.
fn path_metadata<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    dirfd: Fd,
    (path, path_len): (u32, u32),
    follow: u32,
) -> Result<FileMetadata, Errno> {
    let call = Call::of(caller)?;
    let path = call.path(path, path_len)?;
    call.host(|h| h.path_metadata(dirfd, &path, follow != 0))
}

/// Writes the owner's uid and gid of the path; both result pointers are checked first.
fn path_owner<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (dirfd, path, path_len, follow, ret_uid, ret_gid): OwnerArgs,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let (ret_uid, ret_gid) = (call.out::<u32>(ret_uid)?, call.out::<u32>(ret_gid)?);
    let path = call.path(path, path_len)?;
    let metadata = call.host(|h| h.path_metadata(dirfd, &path, follow != 0))?;
    call.put(ret_uid, metadata.uid)?;
    call.put(ret_gid, metadata.gid)
}

fn path_chown<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (dirfd, path, path_len, uid, gid, follow): ChownArgs,
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let path = call.path(path, path_len)?;
    let id = |id: u32| (id != UNCHANGED_ID).then_some(id);
    call.host(|h| h.path_chown(dirfd, &path, id(uid), id(gid), follow != 0))
}

/// Writes the five numbers (`u64` each, at its own pointer, all checked first): total, used and
/// available bytes, total and free inodes.
fn path_statfs<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (dirfd, path, path_len, total_bytes, used_bytes, available_bytes, total_inodes, free_inodes): StatfsArgs,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let outputs = [total_bytes, used_bytes, available_bytes, total_inodes, free_inodes];
    let mut checked = Vec::with_capacity(outputs.len());
    for ptr in outputs {
        checked.push(call.out::<u64>(ptr)?);
    }
    let path = call.path(path, path_len)?;
    let usage = call.host(|h| h.path_statfs(dirfd, &path))?;
    let values = [usage.total_bytes, usage.used_bytes, usage.available_bytes, usage.total_inodes, usage.free_inodes];
    for (at, value) in checked.into_iter().zip(values) {
        call.put(at, value)?;
    }
    Ok(())
}

/// Reads the target (a path, `ENAMETOOLONG` past [`MAX_PATH_BYTES`](crate::MAX_PATH_BYTES))
/// and the options (`E2BIG` past [`MAX_REMOUNT_OPTIONS_BYTES`]), then asks the host.
fn remount<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    (target, target_len): (u32, u32),
    (options, options_len): (u32, u32),
) -> Result<(), Errno> {
    let call = Call::of(caller)?;
    let target = call.path(target, target_len)?;
    let options_len = usize::try_from(options_len).map_err(|_| Errno::TooBig)?;
    if options_len > MAX_REMOUNT_OPTIONS_BYTES {
        return Err(Errno::TooBig);
    }
    let options = call.read(options, options_len)?;
    call.host(|h| h.remount(&target, &options))
}
