//! The syscall surface a guest sees, as a trait the kernel implements ([`WasiHost`]), and
//! [`StdioHost`], a self-contained implementation over in-memory stdio buffers.

use std::collections::VecDeque;

use crate::abi::{
    ClockId, Dirent, Errno, Event, Fd, FdStat, Filestat, Filetype, Prestat, Subscription, Whence, POLLNVAL,
    RIGHTS_FD_FDSTAT_SET_FLAGS, RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_READ, RIGHTS_FD_WRITE, RIGHTS_POLL_FD_READWRITE,
    STDERR, STDIN, STDOUT,
};
use crate::process::{ChildStatus, Exec, SignalMaskHow, Spawn};

/// Why a guest cannot make progress until the host does something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// The guest reads standard input and nothing is buffered yet: resume it after pushing bytes
    /// or end-of-file.
    ReadStdin,
    /// The guest reads another descriptor (a pipe, a socket) that has nothing buffered.
    Read {
        /// The descriptor.
        fd: Fd,
    },
    /// The guest writes a descriptor whose buffer is full.
    Write {
        /// The descriptor.
        fd: Fd,
    },
    /// The guest waits in `poll_oneoff` for descriptors (and maybe a clock) and none is ready.
    Poll,
    /// The guest's call waits for the host's answer: to a permission prompt, from a host
    /// directory, or from a host function (a tool).
    Permission,
    /// The guest waits in `poll_oneoff` for a clock only: nothing happens before the monotonic
    /// clock reaches `until_ns` (the host may also use it for a timeout on other clocks).
    Sleep {
        /// The earliest deadline, in nanoseconds of the monotonic clock.
        until_ns: u64,
    },
}

/// What `stat` says of a file beyond WASI's filestat, for the `host_fs` getters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMetadata {
    /// The full `st_mode`: type bits (`S_IFMT`, e.g. `0o100000` for a regular file) and
    /// permissions. Guests take the file's type from it, so the type bits must be there.
    pub mode: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// The device a character or block device node stands for (`makedev` encoding: `/dev/null`
    /// is `0x103`); 0 for anything else.
    pub rdev: u64,
}

/// How full a filesystem is (`host_fs.path_statfs`), in bytes and inodes (not blocks): the
/// kernel's own type.
pub use kernel::syscalls::FsUsage;

/// The failure of a host call that may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysError {
    /// Fail the call with this errno.
    Errno(Errno),
    /// The call cannot complete yet: the guest is suspended (its task reports
    /// `TaskState::Pending(reason)`) and the call is retried from scratch on the next poll.
    WouldBlock(WaitReason),
}

impl From<Errno> for SysError {
    fn from(errno: Errno) -> SysError {
        SysError::Errno(errno)
    }
}

/// The result of a host call that may block.
pub type SysResult<T> = Result<T, SysError>;

/// The `wasi_snapshot_preview1` calls a guest can make, served by the host (our kernel).
///
/// Calls are synchronous: a call that would block returns [`SysError::WouldBlock`] and the runtime
/// suspends the guest, then retries the same call when the task is polled again. Guest memory is
/// never visible here: the runtime copies arguments in and results out, with bounds checks.
///
/// Only the first methods are required. The filesystem, polling and signal methods have default
/// implementations that keep the answer a host without a filesystem gives: `EBADF` when the
/// descriptor is not open (per [`WasiHost::fd_fdstat_get`]), `ENOTDIR` for path calls relative
/// to a descriptor that is not a directory, `ENOSYS` otherwise; socket calls answer
/// `ENOTSOCK`. The calls this trait does not cover (`fd_advise`, `fd_allocate`,
/// `fd_fdstat_set_rights`) are answered by the runtime from the descriptor's kind alone.
///
/// Paths are the guest's bytes as passed (relative to a directory descriptor, not
/// NUL-terminated, at most [`MAX_PATH_BYTES`](crate::MAX_PATH_BYTES)); resolving them — `..`,
/// symbolic links, staying inside the directory — is the host's job. Flag arguments hold only
/// bits WASI defines (the runtime answers `EINVAL` for others).
pub trait WasiHost: Send + 'static {
    /// Fuel owed for the work the host did since the last call (and clears it): the task
    /// deducts it from the guest's budget and counts it against the slice, so host work is never
    /// free (see [`GuestTask`](crate::GuestTask)). The default host's work is not metered.
    fn take_work_fuel(&mut self) -> u64 {
        0
    }

    /// Command-line arguments, `argv[0]` first, without NUL terminators.
    fn args(&self) -> &[Vec<u8>];

    /// Environment variables as `KEY=VALUE` byte strings, without NUL terminators.
    fn environ(&self) -> &[Vec<u8>];

    /// The resolution of `clock` in nanoseconds.
    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno>;

    /// The current time of `clock` in nanoseconds (the realtime clock counts from the Unix epoch).
    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno>;

    /// Fills `buf` with entropy.
    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno>;

    /// Writes `data` to `fd`, returning how many bytes were accepted (a short write is allowed).
    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize>;

    /// Reads from `fd` into `buf`, returning how many bytes were read; `Ok(0)` is end-of-file.
    /// `buf` is never empty.
    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize>;

    /// Closes `fd`.
    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno>;

    /// Describes `fd`; `EBADF` if it is not open.
    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno>;

    /// Describes the preopened directory at `fd`. Libc walks descriptors from 3 upwards until
    /// this returns `EBADF`; the default has no preopens.
    fn fd_prestat_get(&mut self, fd: Fd) -> Result<Prestat, Errno> {
        let _ = fd;
        Err(Errno::Badf)
    }

    /// The name of the preopened directory at `fd` (as many bytes as `Prestat::name_len`).
    fn fd_prestat_dir_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        let _ = fd;
        Err(Errno::Badf)
    }

    /// The guest called `proc_exit(code)`; the runtime terminates it right after this returns.
    fn proc_exit(&mut self, code: u32) {
        let _ = code;
    }

    /// Opens `path` relative to the directory `dirfd` and returns the new descriptor.
    /// `lookupflags` holds `LOOKUPFLAGS_*`, `oflags` `OFLAGS_*`, `fdflags` `FDFLAGS_*`; the
    /// rights are those the guest asks for (a host may grant fewer).
    #[allow(clippy::too_many_arguments)]
    fn path_open(
        &mut self,
        dirfd: Fd,
        lookupflags: u32,
        path: &[u8],
        oflags: u16,
        rights_base: u64,
        rights_inheriting: u64,
        fdflags: u16,
    ) -> Result<Fd, Errno> {
        let _ = (lookupflags, path, oflags, rights_base, rights_inheriting, fdflags);
        Err(unsupported_path(self, dirfd))
    }

    /// Lists the directory `fd` from the entry `cookie` on (`DIRCOOKIE_START` is the first):
    /// the entries in order, each with the cookie of the one after it. The host may return any
    /// number of them (a bounded batch); the runtime asks again from the last entry's `next`
    /// until the guest's buffer is full. An empty list means the end of the directory.
    fn fd_readdir(&mut self, fd: Fd, cookie: u64) -> Result<Vec<Dirent>, Errno> {
        let _ = cookie;
        Err(unsupported_fd(self, fd))
    }

    /// Moves the offset of `fd` and returns the new offset from the start of the file.
    fn fd_seek(&mut self, fd: Fd, offset: i64, whence: Whence) -> Result<u64, Errno> {
        let _ = (offset, whence);
        Err(unsupported_fd(self, fd))
    }

    /// The current offset of `fd`; the default asks `fd_seek(fd, 0, Whence::Cur)`.
    fn fd_tell(&mut self, fd: Fd) -> Result<u64, Errno> {
        self.fd_seek(fd, 0, Whence::Cur)
    }

    /// Describes the file open at `fd`.
    fn fd_filestat_get(&mut self, fd: Fd) -> Result<Filestat, Errno> {
        Err(unsupported_fd(self, fd))
    }

    /// Truncates or extends the file open at `fd` to `size` bytes.
    fn fd_filestat_set_size(&mut self, fd: Fd, size: u64) -> Result<(), Errno> {
        let _ = size;
        Err(unsupported_fd(self, fd))
    }

    /// Sets the access and/or modification time of the file open at `fd`, as `fstflags`
    /// (`FSTFLAGS_*`) says: to `atim_ns` / `mtim_ns`, or to the current time.
    fn fd_filestat_set_times(&mut self, fd: Fd, atim_ns: u64, mtim_ns: u64, fstflags: u16) -> Result<(), Errno> {
        let _ = (atim_ns, mtim_ns, fstflags);
        Err(unsupported_fd(self, fd))
    }

    /// Reads from `fd` at `offset` without moving its offset; `Ok(0)` is end-of-file. `buf` is
    /// never empty.
    fn fd_pread(&mut self, fd: Fd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let _ = (buf, offset);
        Err(unsupported_fd(self, fd).into())
    }

    /// Writes `data` to `fd` at `offset` without moving its offset, returning how many bytes
    /// were accepted.
    fn fd_pwrite(&mut self, fd: Fd, data: &[u8], offset: u64) -> SysResult<usize> {
        let _ = (data, offset);
        Err(unsupported_fd(self, fd).into())
    }

    /// Sets the `FDFLAGS_*` of `fd`.
    fn fd_fdstat_set_flags(&mut self, fd: Fd, flags: u16) -> Result<(), Errno> {
        let _ = flags;
        Err(unsupported_fd(self, fd))
    }

    /// Moves descriptor `from` to number `to` (closing what `to` referred to); `from` is closed.
    fn fd_renumber(&mut self, from: Fd, to: Fd) -> Result<(), Errno> {
        let _ = to;
        Err(unsupported_fd(self, from))
    }

    /// Flushes the data and metadata of `fd` to storage.
    fn fd_sync(&mut self, fd: Fd) -> Result<(), Errno> {
        Err(unsupported_fd(self, fd))
    }

    /// Flushes the data of `fd` to storage.
    fn fd_datasync(&mut self, fd: Fd) -> Result<(), Errno> {
        Err(unsupported_fd(self, fd))
    }

    /// Describes the file at `path` relative to the directory `fd`; `lookupflags` says whether
    /// a final symbolic link is followed.
    fn path_filestat_get(&mut self, fd: Fd, lookupflags: u32, path: &[u8]) -> Result<Filestat, Errno> {
        let _ = (lookupflags, path);
        Err(unsupported_path(self, fd))
    }

    /// Sets the times of the file at `path` relative to the directory `fd` (see
    /// [`WasiHost::fd_filestat_set_times`]).
    fn path_filestat_set_times(
        &mut self,
        fd: Fd,
        lookupflags: u32,
        path: &[u8],
        atim_ns: u64,
        mtim_ns: u64,
        fstflags: u16,
    ) -> Result<(), Errno> {
        let _ = (lookupflags, path, atim_ns, mtim_ns, fstflags);
        Err(unsupported_path(self, fd))
    }

    /// Creates the directory `path` relative to the directory `fd`.
    fn path_create_directory(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let _ = path;
        Err(unsupported_path(self, fd))
    }

    /// Removes the empty directory `path` relative to the directory `fd`.
    fn path_remove_directory(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let _ = path;
        Err(unsupported_path(self, fd))
    }

    /// Removes the file (or symbolic link) `path` relative to the directory `fd`.
    fn path_unlink_file(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let _ = path;
        Err(unsupported_path(self, fd))
    }

    /// Renames `old_path` (relative to the directory `fd`) to `new_path` (relative to the
    /// directory `new_fd`).
    fn path_rename(&mut self, fd: Fd, old_path: &[u8], new_fd: Fd, new_path: &[u8]) -> Result<(), Errno> {
        let _ = (old_path, new_fd, new_path);
        Err(unsupported_path(self, fd))
    }

    /// Creates a symbolic link `new_path` (relative to the directory `fd`) whose target is
    /// `old_target`, stored as is.
    fn path_symlink(&mut self, old_target: &[u8], fd: Fd, new_path: &[u8]) -> Result<(), Errno> {
        let _ = (old_target, new_path);
        Err(unsupported_path(self, fd))
    }

    /// The target of the symbolic link `path` relative to the directory `fd`; the runtime
    /// copies as much of it as fits the guest's buffer.
    fn path_readlink(&mut self, fd: Fd, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let _ = path;
        Err(unsupported_path(self, fd))
    }

    /// Creates a hard link `new_path` (relative to the directory `new_fd`) to `old_path`
    /// (relative to the directory `old_fd`; `lookupflags` says whether a final symbolic link is
    /// followed).
    fn path_link(
        &mut self,
        old_fd: Fd,
        lookupflags: u32,
        old_path: &[u8],
        new_fd: Fd,
        new_path: &[u8],
    ) -> Result<(), Errno> {
        let _ = (lookupflags, old_path, new_fd, new_path);
        Err(unsupported_path(self, old_fd))
    }

    /// One frame through CPython-for-WASI's `host::call` door (the tool protocol: JSON frames,
    /// see the kernel's `syscalls::tools`): the answer frame. `ENOSYS` when no host function is
    /// behind the door (the guest sees "no host"); [`SysError::WouldBlock`] while the host
    /// works on it, and the same frame is asked again.
    fn host_call(&mut self, frame: &[u8]) -> SysResult<Vec<u8>> {
        let _ = frame;
        Err(Errno::NoSys.into())
    }

    /// Waits for any of `subscriptions` (never empty, at most
    /// [`MAX_POLL_SUBSCRIPTIONS`](crate::MAX_POLL_SUBSCRIPTIONS)): returns one event per
    /// subscription that is ready, at most one per subscription, in any order. A subscription
    /// on a bad descriptor is an event carrying the errno, not a failed call. When none is ready
    /// answer [`SysError::WouldBlock`] with [`WaitReason::Poll`] or [`WaitReason::Sleep`]: the
    /// guest is suspended and the call retried with the same subscriptions (relative clock
    /// timeouts are already absolute deadlines, see [`SubscriptionKind::Clock`](crate::SubscriptionKind)).
    fn poll_oneoff(&mut self, subscriptions: &[Subscription]) -> SysResult<Vec<Event>> {
        let _ = subscriptions;
        Err(Errno::NoSys.into())
    }

    /// The guest raised signal `sig` (`__wasi_signal_t`) on itself.
    fn proc_raise(&mut self, sig: u8) -> Result<(), Errno> {
        let _ = sig;
        Err(Errno::NoSys)
    }

    /// `host_process.proc_getpid`: the caller's pid.
    fn proc_getpid(&mut self) -> Result<u32, Errno> {
        Err(Errno::NoSys)
    }

    /// `host_process.proc_getppid`: the caller's parent's pid.
    fn proc_getppid(&mut self) -> Result<u32, Errno> {
        Err(Errno::NoSys)
    }

    /// `host_process.fd_pipe`: a new pipe, `(read end, write end)`.
    fn fd_pipe(&mut self) -> Result<(Fd, Fd), Errno> {
        Err(Errno::NoSys)
    }

    /// `host_process.fd_dup`: a new descriptor for what `fd` refers to.
    fn fd_dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        Err(unsupported_fd(self, fd))
    }

    /// `host_process.fd_dup2`: `new` refers to what `old` does.
    fn fd_dup2(&mut self, old: Fd, new: Fd) -> Result<(), Errno> {
        let _ = new;
        Err(unsupported_fd(self, old))
    }

    /// `host_process.proc_kill`: `signal` to `pid` (> 0), the caller's group (0) or a group (< 0).
    fn proc_kill(&mut self, pid: i32, signal: u32) -> Result<(), Errno> {
        let _ = (pid, signal);
        Err(Errno::NoSys)
    }

    /// `host_process.proc_sigaction`: `action` 0 default, 1 ignore, 2 a guest handler.
    fn proc_sigaction(&mut self, signal: u32, action: u32, mask: u64, flags: u32) -> Result<(), Errno> {
        let _ = (signal, action, mask, flags);
        Err(Errno::NoSys)
    }

    /// `host_process.sleep_ms`; may block like a read.
    fn sleep_ms(&mut self, ms: u32) -> SysResult<()> {
        let _ = ms;
        Err(Errno::NoSys.into())
    }

    /// `host_process.proc_spawn`: starts `argv` (NUL-separated strings) with `envp`
    /// (NUL-separated `KEY=VALUE`), the caller's descriptors `stdio` as the child's 0, 1, 2
    /// (`u32::MAX`: closed) and `cwd` (empty: the caller's); returns the child's pid. May wait
    /// (see [`WasiHost::take_wait`]).
    fn proc_spawn(&mut self, argv: &[u8], envp: &[u8], stdio: [Fd; 3], cwd: &[u8]) -> Result<u32, Errno> {
        let _ = (argv, envp, stdio, cwd);
        Err(Errno::NoSys)
    }

    /// `host_process.proc_waitpid`: `(status, pid)` of an exited child; may wait (see
    /// [`WasiHost::take_wait`]).
    fn proc_waitpid(&mut self, pid: i32, options: u32) -> Result<(u32, u32), Errno> {
        let _ = (pid, options);
        Err(Errno::NoSys)
    }

    /// `host_process.fd_setfd`: marks `fd` close-on-exec (`FD_CLOEXEC`) or clears the mark.
    fn fd_setfd(&mut self, fd: Fd, cloexec: bool) -> Result<(), Errno> {
        let _ = cloexec;
        Err(unsupported_fd(self, fd))
    }

    /// `host_process.proc_spawn_v3`: starts `spawn.program` as a child (see [`Spawn`]) and
    /// returns its pid; nothing is started when it fails. May wait (see
    /// [`WasiHost::take_wait`]).
    fn proc_spawn_v3(&mut self, spawn: &Spawn) -> Result<u32, Errno> {
        let _ = spawn;
        Err(Errno::NoSys)
    }

    /// `host_process.proc_waitpid_v2`: reaps a child of `pid`'s selection (> 0 that child, -1
    /// any, 0 the caller's group, < -1 group `-pid`); `None` when `nohang` and none has exited.
    /// May wait (see [`WasiHost::take_wait`]).
    fn proc_waitpid_v2(&mut self, pid: i32, nohang: bool) -> Result<Option<ChildStatus>, Errno> {
        let _ = (pid, nohang);
        Err(Errno::NoSys)
    }

    /// `host_process.proc_signal_mask_v2`: changes the caller's signal mask (never holding
    /// `SIGKILL` or `SIGSTOP`) and returns the previous one.
    fn proc_signal_mask(&mut self, how: SignalMaskHow, set: u64) -> Result<u64, Errno> {
        let _ = (how, set);
        Err(Errno::NoSys)
    }

    /// The caller's file-creation mask: permission bits new files and directories lose.
    fn umask(&mut self) -> u32 {
        0o022
    }

    /// `host_process.umask` with `set`: the caller's file-creation mask becomes `mask` (its
    /// permission bits); returns the previous one.
    fn set_umask(&mut self, mask: u32) -> Result<u32, Errno> {
        let _ = mask;
        Err(Errno::NoSys)
    }

    /// `host_process.proc_exec`: replaces the caller's program (see [`Exec`]). It has no
    /// success value: a host that replaces the program parks the call (see
    /// [`WasiHost::take_wait`]) and drops the guest inside it; the errno says why it could not.
    fn proc_exec(&mut self, exec: &Exec) -> Errno {
        let _ = exec;
        Errno::NoSys
    }

    /// `host_user.getuid` (and `geteuid`).
    fn getuid(&mut self) -> Result<u32, Errno> {
        Err(Errno::NoSys)
    }

    /// `host_user.getgid` (and `getegid`).
    fn getgid(&mut self) -> Result<u32, Errno> {
        Err(Errno::NoSys)
    }

    /// `host_user.isatty`.
    fn isatty(&mut self, fd: Fd) -> Result<bool, Errno> {
        Err(unsupported_fd(self, fd))
    }

    /// `host_user.getpwuid`: the passwd line `name:x:uid:gid:gecos:home:shell`.
    fn getpwuid(&mut self, uid: u32) -> Result<Vec<u8>, Errno> {
        let _ = uid;
        Err(Errno::NoSys)
    }

    /// `host_user.getpwnam`: the passwd line of the account `name`; `ENOENT` if there is none.
    fn getpwnam(&mut self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let _ = name;
        Err(Errno::NoSys)
    }

    /// `host_user.getpwent`: passwd line number `index` (from 0, in a stable order); `ENOENT`
    /// past the last.
    fn getpwent(&mut self, index: u32) -> Result<Vec<u8>, Errno> {
        let _ = index;
        Err(Errno::NoSys)
    }

    /// `host_user.getgrgid`: the group line `name:x:gid:member,member` of `gid`.
    fn getgrgid(&mut self, gid: u32) -> Result<Vec<u8>, Errno> {
        let _ = gid;
        Err(Errno::NoSys)
    }

    /// `host_user.getgrnam`: the group line of the group `name`.
    fn getgrnam(&mut self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let _ = name;
        Err(Errno::NoSys)
    }

    /// `host_user.getgrent`: group line number `index`, as [`WasiHost::getpwent`].
    fn getgrent(&mut self, index: u32) -> Result<Vec<u8>, Errno> {
        let _ = index;
        Err(Errno::NoSys)
    }

    /// `host_user.getgroups`: the caller's groups, its primary group first.
    fn getgroups(&mut self) -> Result<Vec<u32>, Errno> {
        Err(Errno::NoSys)
    }

    /// `host_user.setuid`, with Linux's rules for a caller that is not root.
    fn setuid(&mut self, uid: u32) -> Result<(), Errno> {
        let _ = uid;
        Err(Errno::NoSys)
    }

    /// `host_user.setgid`, as [`WasiHost::setuid`].
    fn setgid(&mut self, gid: u32) -> Result<(), Errno> {
        let _ = gid;
        Err(Errno::NoSys)
    }

    /// `host_user.setgroups`: replaces the caller's supplementary groups (root only).
    fn setgroups(&mut self, gids: &[u32]) -> Result<(), Errno> {
        let _ = gids;
        Err(Errno::NoSys)
    }

    /// `host_fs.path_mode` / `path_size` / `path_rdev` / `path_owner`: what `stat` says of
    /// `path` relative to the directory `dirfd` (a final symbolic link followed if `follow`).
    /// Besides descriptors, `dirfd` may be `u32::MAX` or `u32::MAX - 1` (`AT_FDCWD`): the
    /// caller's working directory; an absolute `path` ignores `dirfd`.
    fn path_metadata(&mut self, dirfd: Fd, path: &[u8], follow: bool) -> Result<FileMetadata, Errno> {
        let _ = (path, follow);
        Err(unsupported_path(self, dirfd))
    }

    /// `host_fs.fd_mode` / `fd_size`: what `fstat` says of what `fd` refers to (a pipe's type
    /// is `S_IFIFO`, a stream's `S_IFCHR`).
    fn fd_metadata(&mut self, fd: Fd) -> Result<FileMetadata, Errno> {
        Err(unsupported_fd(self, fd))
    }

    /// `host_fs.set_open_mode`: the permissions (`0o7777` bits) the next `path_open` gives a
    /// file it creates, less the [`umask`](WasiHost::umask); any `path_open` clears it, whether
    /// it creates a file or not. The default host creates no files and ignores it.
    fn set_open_mode(&mut self, mode: u32) -> Result<(), Errno> {
        let _ = mode;
        Ok(())
    }

    /// `host_fs.chmod`: sets the permission bits (`0o7777`) of `path` relative to `dirfd`
    /// (dirfd as in [`WasiHost::path_metadata`]), following a final symbolic link.
    fn path_chmod(&mut self, dirfd: Fd, path: &[u8], mode: u32) -> Result<(), Errno> {
        let _ = (path, mode);
        Err(unsupported_path(self, dirfd))
    }

    /// `host_fs.path_chown`: changes the owner and/or group (`None`: unchanged) of `path`
    /// relative to `dirfd` (dirfd as in [`WasiHost::path_metadata`]).
    fn path_chown(
        &mut self,
        dirfd: Fd,
        path: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
        follow: bool,
    ) -> Result<(), Errno> {
        let _ = (path, uid, gid, follow);
        Err(unsupported_path(self, dirfd))
    }

    /// `host_fs.path_statfs`: how full the filesystem holding `path` (relative to `dirfd`, as
    /// in [`WasiHost::path_metadata`]) is.
    fn path_statfs(&mut self, dirfd: Fd, path: &[u8]) -> Result<FsUsage, Errno> {
        let _ = path;
        Err(unsupported_path(self, dirfd))
    }

    /// `host_fs.ftruncate`: the default is [`WasiHost::fd_filestat_set_size`].
    fn fd_truncate(&mut self, fd: Fd, len: u64) -> Result<(), Errno> {
        self.fd_filestat_set_size(fd, len)
    }

    /// `host_fs.remount`: changes the flags of the mount at `target` (`options` is the whole
    /// `-o` string, `remount` included). Only root may; the default caller is not (`EPERM`).
    fn remount(&mut self, target: &[u8], options: &[u8]) -> Result<(), Errno> {
        let _ = (target, options);
        Err(Errno::Perm)
    }

    // Sockets: the `host_net` module and WASI's `sock_*`. Addresses are the original libc's
    // text (`IP:PORT`). The defaults are a host without a network: no socket can be made
    // (`ENOSYS`) and no descriptor is one (`ENOTSOCK`, `EBADF` when it is not open).

    /// `socket()`: a new socket descriptor of `transport`.
    fn sock_open(&mut self, transport: SocketTransport, nonblocking: bool) -> Result<Fd, Errno> {
        let _ = (transport, nonblocking);
        Err(Errno::NoSys)
    }

    /// Binds `fd` to `address`.
    fn sock_bind(&mut self, fd: Fd, address: &[u8]) -> Result<(), Errno> {
        let _ = address;
        Err(not_a_socket(self, fd))
    }

    /// Makes `fd` a listener.
    fn sock_listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno> {
        let _ = backlog;
        Err(not_a_socket(self, fd))
    }

    /// Accepts a connection: the new descriptor and the peer's address.
    fn sock_accept(&mut self, fd: Fd, nonblocking: bool) -> SysResult<(Fd, Vec<u8>)> {
        let _ = nonblocking;
        Err(not_a_socket(self, fd).into())
    }

    /// Connects `fd` to `address` (a connection out of the VM may wait).
    fn sock_connect(&mut self, fd: Fd, address: &[u8]) -> SysResult<()> {
        let _ = address;
        Err(SysError::Errno(not_a_socket(self, fd)))
    }

    /// Makes connected socket `fd` TLS, verifying the peer as `server_name` (waits for the
    /// handshake).
    fn sock_tls_connect(&mut self, fd: Fd, server_name: &[u8]) -> SysResult<()> {
        let _ = server_name;
        Err(SysError::Errno(not_a_socket(self, fd)))
    }

    /// Sends on a connected socket; returns the bytes accepted.
    fn sock_send(&mut self, fd: Fd, data: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let _ = (data, flags);
        Err(not_a_socket(self, fd).into())
    }

    /// Receives from a connected socket; `Ok(0)` is end of stream.
    fn sock_recv(&mut self, fd: Fd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        let _ = (buf, flags);
        Err(not_a_socket(self, fd).into())
    }

    /// Sends one datagram to `address`.
    fn sock_send_to(&mut self, fd: Fd, data: &[u8], address: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let _ = (data, address, flags);
        Err(not_a_socket(self, fd).into())
    }

    /// Receives one datagram: its length and its sender's address.
    fn sock_recv_from(&mut self, fd: Fd, buf: &mut [u8], flags: MsgFlags) -> SysResult<(usize, Vec<u8>)> {
        let _ = (buf, flags);
        Err(not_a_socket(self, fd).into())
    }

    /// Shuts down reading and/or writing.
    fn sock_shutdown(&mut self, fd: Fd, read: bool, write: bool) -> Result<(), Errno> {
        let _ = (read, write);
        Err(not_a_socket(self, fd))
    }

    /// Where `fd` is bound.
    fn sock_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        Err(not_a_socket(self, fd))
    }

    /// Where `fd` is connected.
    fn sock_peer_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        Err(not_a_socket(self, fd))
    }

    /// `setsockopt`.
    fn sock_set_option(&mut self, fd: Fd, level: u32, name: u32, value: &[u8]) -> Result<(), Errno> {
        let _ = (level, name, value);
        Err(not_a_socket(self, fd))
    }

    /// `getaddrinfo`: the addresses of `host` as the libc's JSON (`[{"addr":..,"family":4}]`);
    /// `family` is 0, 4 or 6.
    fn resolve_name(&mut self, host: &[u8], family: u32) -> SysResult<Vec<u8>> {
        let _ = (host, family);
        Err(SysError::Errno(Errno::NoSys))
    }

    /// `poll()` over any descriptors: each entry's ready events (`POLL*` bits of
    /// [`crate::abi`]), or a wait until one is ready or the monotonic clock reaches
    /// `deadline_ns` (`None`: no deadline). A deadline already passed never waits.
    fn poll_fds(&mut self, fds: &[(Fd, u16)], deadline_ns: Option<u64>) -> SysResult<Vec<u16>> {
        let _ = deadline_ns;
        Ok(fds.iter().map(|(fd, _)| if self.fd_fdstat_get(*fd).is_ok() { 0 } else { POLLNVAL }).collect())
    }

    /// Asked after every filesystem call that cannot block through its return value (path
    /// calls, `fd_readdir`, `fd_filestat_get`): `Some` means the call must wait — its result is
    /// discarded, the guest suspends with this reason, and the call is retried when the task is
    /// polled again. The default never waits.
    fn take_wait(&mut self) -> Option<WaitReason> {
        None
    }

    /// Told when a call that may wait has completed: the retries of that call are over (a host
    /// that keeps answers across a call's retries drops them now). The default keeps nothing.
    fn call_settled(&mut self) {}
}

/// The answer of a socket call on a descriptor that is not a socket: `ENOTSOCK`, or `EBADF` (or
/// whatever `fd_fdstat_get` fails with) when it is not open.
pub(crate) fn not_a_socket<H: WasiHost + ?Sized>(host: &mut H, fd: Fd) -> Errno {
    match host.fd_fdstat_get(fd) {
        Ok(_) => Errno::NotSock,
        Err(errno) => errno,
    }
}

/// Stream (TCP) or datagram (UDP).
pub use kernel::net::Transport as SocketTransport;
/// Flags of a send or receive.
pub use kernel::syscalls::MsgFlags;

/// The answer to a descriptor call a host does not implement: `EBADF` (or whatever
/// `fd_fdstat_get` fails with) for a descriptor that is not open, `ENOSYS` otherwise.
pub(crate) fn unsupported_fd<H: WasiHost + ?Sized>(host: &mut H, fd: Fd) -> Errno {
    match host.fd_fdstat_get(fd) {
        Ok(_) => Errno::NoSys,
        Err(errno) => errno,
    }
}

/// The answer to a path call a host does not implement: as [`unsupported_fd`], but `ENOTDIR`
/// when the base descriptor is open and not a directory.
pub(crate) fn unsupported_path<H: WasiHost + ?Sized>(host: &mut H, fd: Fd) -> Errno {
    match host.fd_fdstat_get(fd) {
        Ok(stat) if stat.filetype == Filetype::Directory => Errno::NoSys,
        Ok(_) => Errno::NotDir,
        Err(errno) => errno,
    }
}

/// A [`WasiHost`] over in-memory buffers: arguments, environment, stdin fed by the owner (reads
/// block while it is empty and not closed), stdout and stderr collected, a clock that only moves
/// when the owner sets it and a seeded pseudo-random entropy source. Everything is deterministic.
#[derive(Debug, Clone)]
pub struct StdioHost {
    args: Vec<Vec<u8>>,
    environ: Vec<Vec<u8>>,
    stdin: VecDeque<u8>,
    stdin_eof: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    max_output_bytes: usize,
    open: [bool; 3],
    monotonic_ns: u64,
    realtime_ns: u64,
    rng_state: u64,
    exit_code: Option<u32>,
}

impl StdioHost {
    /// Default bound on stdout and on stderr, each: 16 MiB.
    pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 << 20;

    /// A host with these arguments (`argv[0]` first), no environment, open empty stdin, time zero
    /// and entropy seed zero.
    pub fn new<I, A>(args: I) -> StdioHost
    where
        I: IntoIterator<Item = A>,
        A: Into<Vec<u8>>,
    {
        StdioHost {
            args: args.into_iter().map(Into::into).collect(),
            environ: Vec::new(),
            stdin: VecDeque::new(),
            stdin_eof: false,
            stdout: Vec::new(),
            stderr: Vec::new(),
            max_output_bytes: StdioHost::DEFAULT_MAX_OUTPUT_BYTES,
            open: [true; 3],
            monotonic_ns: 0,
            realtime_ns: 0,
            rng_state: 0,
            exit_code: None,
        }
    }

    /// Sets the environment (`KEY=VALUE` entries).
    pub fn with_environ<I, A>(mut self, environ: I) -> StdioHost
    where
        I: IntoIterator<Item = A>,
        A: Into<Vec<u8>>,
    {
        self.environ = environ.into_iter().map(Into::into).collect();
        self
    }

    /// Buffers `input` on stdin and closes it (the guest reads `input`, then end-of-file).
    pub fn with_stdin(mut self, input: &[u8]) -> StdioHost {
        self.push_stdin(input);
        self.close_stdin();
        self
    }

    /// Seeds the entropy source.
    pub fn with_seed(mut self, seed: u64) -> StdioHost {
        self.rng_state = seed;
        self
    }

    /// Bounds stdout and stderr (each); writes beyond the bound are cut short, then fail with
    /// `ENOSPC`.
    pub fn with_max_output_bytes(mut self, max_output_bytes: usize) -> StdioHost {
        self.max_output_bytes = max_output_bytes;
        self
    }

    /// Sets the clocks: monotonic nanoseconds and realtime nanoseconds since the Unix epoch.
    pub fn set_time(&mut self, monotonic_ns: u64, realtime_ns: u64) {
        self.monotonic_ns = monotonic_ns;
        self.realtime_ns = realtime_ns;
    }

    /// Appends bytes to stdin (ignored once stdin is closed).
    pub fn push_stdin(&mut self, input: &[u8]) {
        if !self.stdin_eof {
            self.stdin.extend(input);
        }
    }

    /// Signals end-of-file on stdin once the buffered bytes are read.
    pub fn close_stdin(&mut self) {
        self.stdin_eof = true;
    }

    /// Bytes buffered on stdin and not read yet.
    pub fn stdin_pending(&self) -> usize {
        self.stdin.len()
    }

    /// Everything the guest wrote to stdout.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Everything the guest (or the runtime, on abnormal termination) wrote to stderr.
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// Takes the stdout collected so far.
    pub fn take_stdout(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stdout)
    }

    /// Takes the stderr collected so far.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stderr)
    }

    /// The code the guest passed to `proc_exit`, if it called it.
    pub fn exit_code(&self) -> Option<u32> {
        self.exit_code
    }

    fn is_open(&self, fd: Fd) -> bool {
        usize::try_from(fd).ok().and_then(|index| self.open.get(index)).copied().unwrap_or(false)
    }

    /// SplitMix64: small, fast, and fully determined by the seed.
    fn next_random(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl WasiHost for StdioHost {
    fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    fn environ(&self) -> &[Vec<u8>] {
        &self.environ
    }

    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno> {
        let _ = clock;
        Ok(1)
    }

    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno> {
        let _ = precision_ns;
        Ok(match clock {
            ClockId::Realtime => self.realtime_ns,
            ClockId::Monotonic | ClockId::ProcessCpuTime | ClockId::ThreadCpuTime => self.monotonic_ns,
        })
    }

    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_random().to_le_bytes();
            for (dst, src) in chunk.iter_mut().zip(word) {
                *dst = src;
            }
        }
        Ok(())
    }

    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        if !self.is_open(fd) {
            return Err(Errno::Badf.into());
        }
        let max_output_bytes = self.max_output_bytes;
        let sink = match fd {
            STDOUT => &mut self.stdout,
            STDERR => &mut self.stderr,
            _ => return Err(Errno::Badf.into()),
        };
        let room = max_output_bytes.saturating_sub(sink.len());
        if room == 0 && !data.is_empty() {
            return Err(Errno::NoSpc.into());
        }
        let accepted = data.get(..room).unwrap_or(data);
        sink.extend_from_slice(accepted);
        Ok(accepted.len())
    }

    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        if fd != STDIN || !self.is_open(fd) {
            return Err(Errno::Badf.into());
        }
        if self.stdin.is_empty() {
            return if self.stdin_eof { Ok(0) } else { Err(SysError::WouldBlock(WaitReason::ReadStdin)) };
        }
        let read = buf.len().min(self.stdin.len());
        for (dst, src) in buf.iter_mut().zip(self.stdin.drain(..read)) {
            *dst = src;
        }
        Ok(read)
    }

    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno> {
        let slot = usize::try_from(fd).ok().and_then(|index| self.open.get_mut(index)).ok_or(Errno::Badf)?;
        if !*slot {
            return Err(Errno::Badf);
        }
        *slot = false;
        Ok(())
    }

    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno> {
        if !self.is_open(fd) {
            return Err(Errno::Badf);
        }
        let common = RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_FILESTAT_GET | RIGHTS_POLL_FD_READWRITE;
        let direction = if fd == STDIN { RIGHTS_FD_READ } else { RIGHTS_FD_WRITE };
        Ok(FdStat { filetype: Filetype::Unknown, flags: 0, rights_base: common | direction, rights_inheriting: 0 })
    }

    fn proc_exit(&mut self, code: u32) {
        self.exit_code = Some(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_blocks_until_pushed_then_eof() {
        let mut host = StdioHost::new(["x"]);
        let mut buf = [0u8; 4];
        assert_eq!(host.fd_read(STDIN, &mut buf), Err(SysError::WouldBlock(WaitReason::ReadStdin)));
        host.push_stdin(b"abcdef");
        assert_eq!(host.fd_read(STDIN, &mut buf), Ok(4));
        assert_eq!(&buf, b"abcd");
        assert_eq!(host.fd_read(STDIN, &mut buf), Ok(2));
        assert_eq!(buf.get(..2), Some(&b"ef"[..]));
        assert_eq!(host.fd_read(STDIN, &mut buf), Err(SysError::WouldBlock(WaitReason::ReadStdin)));
        host.close_stdin();
        host.push_stdin(b"ignored");
        assert_eq!(host.fd_read(STDIN, &mut buf), Ok(0));
    }

    #[test]
    fn output_is_bounded() {
        let mut host = StdioHost::new(["x"]).with_max_output_bytes(5);
        assert_eq!(host.fd_write(STDOUT, b"abc"), Ok(3));
        assert_eq!(host.fd_write(STDOUT, b"defg"), Ok(2));
        assert_eq!(host.fd_write(STDOUT, b"h"), Err(SysError::Errno(Errno::NoSpc)));
        assert_eq!(host.stdout(), b"abcde");
        assert_eq!(host.fd_write(STDIN, b"h"), Err(SysError::Errno(Errno::Badf)));
    }

    #[test]
    fn closed_descriptors_are_ebadf() {
        let mut host = StdioHost::new(["x"]);
        assert_eq!(host.fd_close(STDOUT), Ok(()));
        assert_eq!(host.fd_close(STDOUT), Err(Errno::Badf));
        assert_eq!(host.fd_write(STDOUT, b"a"), Err(SysError::Errno(Errno::Badf)));
        assert_eq!(host.fd_fdstat_get(STDOUT), Err(Errno::Badf));
        assert_eq!(host.fd_fdstat_get(3), Err(Errno::Badf));
        assert_eq!(host.fd_close(3), Err(Errno::Badf));
        assert!(host.fd_fdstat_get(STDERR).is_ok());
    }

    #[test]
    fn entropy_is_seeded() {
        let mut a = StdioHost::new(["x"]).with_seed(7);
        let mut b = StdioHost::new(["x"]).with_seed(7);
        let mut c = StdioHost::new(["x"]).with_seed(8);
        let (mut x, mut y, mut z) = ([0u8; 13], [0u8; 13], [0u8; 13]);
        assert!(a.random_get(&mut x).is_ok() && b.random_get(&mut y).is_ok() && c.random_get(&mut z).is_ok());
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
}
