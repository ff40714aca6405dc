//! The system calls of a guest process, served by the kernel while the guest holds its VM.
//!
//! A [`Syscalls`] is the VM itself, lent to one guest for one slice (see `guest`). Engines map
//! their ABI onto these calls (`runtime-wasm` maps `wasi_snapshot_preview1`), so permissions,
//! tiers and limits are enforced here, once, for every kind of guest.
//!
//! File calls are the VM filesystem's typed operations ([`FsOp`]), the same the host's
//! `GuestFilesystemCallRequest`s become: the same permission policy, the same mounts, the same
//! `/dev` and `/proc`, with raw bytes and typed errors (no wire encoding in between). On top of that the process's [`WasmPermissionTier`] applies: `READ_ONLY` refuses
//! every change with `EROFS`, `READ_WRITE` cannot remove, rename or link (`ENOTCAPABLE`), and
//! `ISOLATED` has no preopened directory at all, so no path reaches the filesystem.
//!
//! # Waiting
//!
//! One protocol for every call that cannot complete yet (an empty pipe or stdin, a full pipe or
//! output, a sleep, `waitpid`, `proc_spawn`, a permission prompt): the call records why in the
//! process's one pending-call state (`wait`) and returns [`SysError::WouldBlock`]; the engine
//! suspends the guest, the kernel wakes it when the wait is over, and the guest makes the same
//! call again.

pub mod engine;

use schema::wire::{SignalDispositionAction, SignalHandlerRegistration, WasmPermissionTier};

use crate::clock::{Entropy, Now};
use crate::error::Rejection;
use crate::fs::{FsOp, FsOutcome, FsReply, GuestAsks};
use crate::process::cost;
use crate::process::fds::{Descriptor, Listing, OpenFile};
use crate::process::pipes::{End, PipeRead};
use crate::process::table::{Process, SpawnRequest, Wait};
use crate::process::{Channel, MAX_PENDING_OUTPUT_BYTES};
use crate::vfs::{path, Errno, Stat, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
use crate::vm::Vm;

/// Nanoseconds per millisecond: the kernel clock counts milliseconds, guests see nanoseconds.
const NS_PER_MS: u64 = 1_000_000;

/// The failure of a call: an errno for the guest, or a park (see the module docs on waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysError {
    Errno(Errno),
    /// Nothing can happen yet: the guest is parked and retries the same call when woken.
    WouldBlock,
}

impl From<Errno> for SysError {
    fn from(errno: Errno) -> Self {
        SysError::Errno(errno)
    }
}

pub type SysResult<T> = Result<T, SysError>;

/// How `open_at` opens a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub exclusive: bool,
    pub truncate: bool,
    pub directory: bool,
    pub append: bool,
    /// Reads that would wait fail with `EAGAIN` instead.
    pub nonblocking: bool,
    /// Follow a final symlink.
    pub follow: bool,
}

/// What a descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// stdin/stdout/stderr, `/dev/*`.
    CharacterDevice,
    Directory,
    RegularFile,
    Pipe,
}

/// A descriptor's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdInfo {
    pub kind: FdKind,
    pub readable: bool,
    pub writable: bool,
    pub append: bool,
    pub nonblocking: bool,
}

/// One directory entry, for `read_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub ino: u64,
    pub kind: EntryKind,
}

pub use crate::process::fds::EntryKind;

/// A file's metadata as guests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub kind: EntryKind,
    pub nlink: u64,
    pub size: u64,
    pub atime_ns: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
}

/// What `set_times` does to one of a file's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeChange {
    /// Leave it as it is.
    Keep,
    /// The kernel's current wall-clock time.
    Now,
    /// Nanoseconds since the Unix epoch (kept at the filesystem's millisecond resolution).
    At(u64),
}

/// Where `seek` counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    Start,
    Current,
    End,
}

/// A VM lent to one of its processes for one slice.
#[derive(Debug)]
pub struct Syscalls {
    pub(crate) vm: Vm,
    /// The kernel's one entropy stream, lent along with the VM.
    pub(crate) entropy: Entropy,
    pub(crate) pid: u32,
    pub(crate) now: Now,
    /// Fuel owed for the kernel's work since the engine last took the bill (see `cost`).
    work_fuel: u64,
    /// All the kernel's work in this slice (the scheduler's measure of the slice's cost).
    slice_work_fuel: u64,
}

impl Syscalls {
    pub(crate) fn new(vm: Vm, entropy: Entropy, pid: u32, now: Now) -> Self {
        Self { vm, entropy, pid, now, work_fuel: 0, slice_work_fuel: 0 }
    }

    /// The fuel owed for kernel work since the last call (and clears it): the engine deducts it
    /// from the guest's budget and counts it against the slice.
    pub fn take_work_fuel(&mut self) -> u64 {
        std::mem::take(&mut self.work_fuel)
    }

    /// All the kernel's work done in this slice, billed or not.
    pub(crate) fn slice_work_fuel(&self) -> u64 {
        self.slice_work_fuel
    }

    fn charge(&mut self, fuel: u64) {
        self.work_fuel = self.work_fuel.saturating_add(fuel);
        self.slice_work_fuel = self.slice_work_fuel.saturating_add(fuel);
    }

    pub(crate) fn into_parts(self) -> (Vm, Entropy) {
        (self.vm, self.entropy)
    }

    /// The calling process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Monotonic time in nanoseconds (the kernel clock, at millisecond resolution).
    pub fn monotonic_ns(&self) -> u64 {
        self.now.monotonic_ms.saturating_mul(NS_PER_MS)
    }

    /// Wall-clock time in nanoseconds since the Unix epoch.
    pub fn realtime_ns(&self) -> u64 {
        self.now.wall_ms.saturating_mul(NS_PER_MS)
    }

    /// The clocks' resolution in nanoseconds.
    pub fn clock_resolution_ns(&self) -> u64 {
        NS_PER_MS
    }

    /// Fills `buf` from the VM's seeded entropy.
    pub fn random(&mut self, buf: &mut [u8]) {
        self.entropy.fill(buf);
    }

    /// Writes to `fd`; returns the bytes accepted.
    pub fn write(&mut self, fd: u32, data: &[u8]) -> SysResult<usize> {
        let offset = None;
        self.write_at(fd, data, offset)
    }

    /// Writes at `offset` without moving the descriptor's position.
    pub fn pwrite(&mut self, fd: u32, data: &[u8], offset: u64) -> SysResult<usize> {
        self.write_at(fd, data, Some(offset))
    }

    /// Reads from `fd` into `buf`; `Ok(0)` is end-of-file.
    pub fn read(&mut self, fd: u32, buf: &mut [u8]) -> SysResult<usize> {
        self.read_at(fd, buf, None)
    }

    /// Reads at `offset` without moving the descriptor's position.
    pub fn pread(&mut self, fd: u32, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        self.read_at(fd, buf, Some(offset))
    }

    pub fn close(&mut self, fd: u32) -> Result<(), Errno> {
        let closed = self.process_mut()?.fds.close(fd)?;
        self.release(&closed);
        Ok(())
    }

    /// Moves `from` to `to` (closing what `to` held).
    pub fn renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        let replaced = self.process_mut()?.fds.renumber(from, to)?;
        self.release(&replaced);
        Ok(())
    }

    /// A new descriptor (the lowest free number) for what `fd` refers to.
    pub fn dup(&mut self, fd: u32) -> Result<u32, Errno> {
        let max_open_fds = self.vm.process_limits().max_open_fds;
        let descriptor = self.process()?.fds.get(fd)?.clone();
        let new_fd = self.process_mut()?.fds.insert(descriptor.clone(), max_open_fds)?;
        self.retain(&descriptor);
        Ok(new_fd)
    }

    /// `new_fd` refers to what `old_fd` does (closing what `new_fd` held first).
    pub fn dup2(&mut self, old_fd: u32, new_fd: u32) -> Result<(), Errno> {
        let descriptor = self.process()?.fds.get(old_fd)?.clone();
        if old_fd == new_fd {
            return Ok(());
        }
        let max_open_fds = self.vm.process_limits().max_open_fds;
        let process = self.process_mut()?;
        if process.fds.get(new_fd).is_err() && u64::try_from(process.fds.len()).unwrap_or(u64::MAX) >= max_open_fds {
            return Err(Errno::EMFILE);
        }
        let replaced = process.fds.replace(new_fd, descriptor.clone());
        self.retain(&descriptor);
        if let Some(replaced) = replaced {
            self.release(&replaced);
        }
        Ok(())
    }

    /// A new pipe: `(read end, write end)`.
    pub fn pipe(&mut self) -> Result<(u32, u32), Errno> {
        let limits = self.vm.process_limits();
        let (max_pipes, max_open_fds) = (limits.max_pipes, limits.max_open_fds);
        if u64::try_from(self.vm.processes().pipe_count()).unwrap_or(u64::MAX) >= max_pipes {
            return Err(Errno::EMFILE);
        }
        let open_fds = self.process()?.fds.len();
        if u64::try_from(open_fds.saturating_add(2)).unwrap_or(u64::MAX) > max_open_fds {
            return Err(Errno::EMFILE);
        }
        let id = self.vm.processes_mut().pipes.create();
        let end = |end| Descriptor {
            file: OpenFile::Pipe { id, end },
            readable: end == End::Read,
            writable: end == End::Write,
            append: false,
            nonblocking: false,
        };
        let process = self.process_mut()?;
        let read = process.fds.insert(end(End::Read), u64::MAX)?;
        let write = process.fds.insert(end(End::Write), u64::MAX)?;
        Ok((read, write))
    }

    /// The calling process's permission tier.
    pub fn tier(&self) -> WasmPermissionTier {
        self.process().map_or(WasmPermissionTier::Isolated, |process| process.tier)
    }

    /// The parent's pid (0: started by the host).
    pub fn parent_pid(&self) -> Result<u32, Errno> {
        Ok(self.process()?.ppid)
    }

    /// Records a disposition for `signal` (`proc_sigaction`): 0 default, 1 ignore, 2 a handler.
    /// `SIGKILL` and `SIGSTOP` cannot be changed.
    pub fn sigaction(&mut self, signal: u32, action: u32, mask: u64, flags: u32) -> Result<(), Errno> {
        let action = match action {
            0 => SignalDispositionAction::Default,
            1 => SignalDispositionAction::Ignore,
            2 => SignalDispositionAction::User,
            _ => return Err(Errno::EINVAL),
        };
        if !(1..=64).contains(&signal) || signal == crate::process::SIGKILL || signal == crate::process::SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mask = (0..64u32).filter(|bit| mask & (1u64 << bit) != 0).map(|bit| bit.saturating_add(1)).collect();
        self.process_mut()?.handlers.insert(signal, SignalHandlerRegistration { action, mask, flags });
        Ok(())
    }

    /// Sends `signal` to `pid` (> 0), to the caller's group (0) or to group `-pid` (< 0); the
    /// kernel delivers it when the caller's slice ends. `ESRCH` if nothing matches.
    pub fn kill(&mut self, pid: i64, signal: u32) -> Result<(), Errno> {
        if signal > 64 {
            return Err(Errno::EINVAL);
        }
        let own_group = self.process()?.pgid;
        let table = self.vm.processes();
        let exists = match pid {
            0 => true,
            pid if pid > 0 => u32::try_from(pid).ok().and_then(|pid| table.get(pid)).is_some_and(Process::is_alive),
            pid => u32::try_from(pid.unsigned_abs()).is_ok_and(|pgid| !table.group(pgid).is_empty()),
        };
        if !exists {
            return Err(Errno::ESRCH);
        }
        let target = if pid == 0 { -i64::from(own_group) } else { pid };
        self.process_mut()?.outgoing_signals.push((target, signal));
        Ok(())
    }

    /// Starts a child running `argv[0]` with `argv`, `env` (`KEY=VALUE`), the caller's
    /// descriptors `stdio` as its 0, 1 and 2 (`u32::MAX`: left closed) and `cwd` (default: the
    /// caller's). The kernel starts it once the caller's slice ends, so the first call parks the
    /// caller ([`SysError::WouldBlock`]) and its retry returns the child's pid.
    pub fn spawn(
        &mut self,
        argv: Vec<String>,
        env: Vec<String>,
        stdio: [u32; 3],
        cwd: Option<String>,
    ) -> SysResult<u32> {
        if let Some(result) = self.process_mut()?.spawn_result.take() {
            return result.map_err(SysError::Errno);
        }
        if argv.first().is_none_or(String::is_empty) {
            return Err(Errno::EINVAL.into());
        }
        let process = self.process()?;
        let mut descriptors: [Option<Descriptor>; 3] = [None, None, None];
        for (slot, fd) in descriptors.iter_mut().zip(stdio) {
            if fd != u32::MAX {
                *slot = Some(process.fds.get(fd)?.clone());
            }
        }
        let process = self.process_mut()?;
        process.spawn_request = Some(SpawnRequest { argv, env, stdio: descriptors, cwd });
        process.wait = Wait::Spawn;
        Err(SysError::WouldBlock)
    }

    /// Waits for a child to exit and reaps it: `pid` > 0 that child, else any. Returns
    /// `(exit status, pid)`; `(0, 0)` with `WNOHANG` (bit 0 of `options`) when none has exited.
    /// `ECHILD` when there is no such child.
    pub fn waitpid(&mut self, pid: i32, options: u32) -> SysResult<(u32, u32)> {
        const WNOHANG: u32 = 1;
        let me = self.pid;
        let table = self.vm.processes();
        let wanted = |child: &&Process| {
            child.ppid == me && !child.top_level && (pid <= 0 || u32::try_from(pid).is_ok_and(|pid| child.pid == pid))
        };
        let children: Vec<&Process> = table.iter().filter(wanted).collect();
        if children.is_empty() {
            return Err(Errno::ECHILD.into());
        }
        let exited = children
            .iter()
            .filter_map(|child| match child.status {
                crate::process::table::Status::Exited(code) => Some((child.exit_order, child.pid, code)),
                _ => None,
            })
            .min();
        if let Some((_, child, code)) = exited {
            self.vm.processes_mut().remove(child);
            return Ok((code.cast_unsigned(), child));
        }
        if options & WNOHANG != 0 {
            return Ok((0, 0));
        }
        self.process_mut()?.wait = Wait::Child;
        Err(SysError::WouldBlock)
    }

    /// Sleeps `ms` milliseconds on the kernel clock.
    pub fn sleep_ms(&mut self, ms: u32) -> SysResult<()> {
        self.sleep(u64::from(ms).saturating_mul(NS_PER_MS), false)
    }

    /// Another descriptor holds what `descriptor` refers to.
    fn retain(&mut self, descriptor: &Descriptor) {
        if let OpenFile::Pipe { id, end } = descriptor.file {
            self.vm.processes_mut().pipes.open(id, end);
        }
    }

    /// A descriptor was closed.
    fn release(&mut self, descriptor: &Descriptor) {
        if let OpenFile::Pipe { id, end } = descriptor.file {
            self.vm.processes_mut().pipes.close(id, end);
        }
    }

    /// Describes `fd`.
    pub fn fd_info(&self, fd: u32) -> Result<FdInfo, Errno> {
        let descriptor = self.process()?.fds.get(fd)?;
        let kind = match &descriptor.file {
            OpenFile::Stdin { .. }
            | OpenFile::Stdout { .. }
            | OpenFile::Stderr { .. }
            | OpenFile::File { device: true, .. } => FdKind::CharacterDevice,
            OpenFile::Directory { .. } => FdKind::Directory,
            OpenFile::File { device: false, .. } => FdKind::RegularFile,
            OpenFile::Pipe { .. } => FdKind::Pipe,
        };
        Ok(FdInfo {
            kind,
            readable: descriptor.readable,
            writable: descriptor.writable,
            append: descriptor.append,
            nonblocking: descriptor.nonblocking,
        })
    }

    /// Sets the descriptor's append and non-blocking modes.
    pub fn set_flags(&mut self, fd: u32, append: bool, nonblocking: bool) -> Result<(), Errno> {
        let descriptor = self.process_mut()?.fds.get_mut(fd)?;
        descriptor.append = append;
        descriptor.nonblocking = nonblocking;
        Ok(())
    }

    /// The guest-visible name of a preopened directory (`/`), or `EBADF`.
    pub fn preopen_name(&self, fd: u32) -> Result<String, Errno> {
        match &self.process()?.fds.get(fd)?.file {
            OpenFile::Directory { preopen: Some(name), .. } => Ok(name.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    /// Opens `path` relative to the directory `dirfd`; returns the new descriptor.
    pub fn open_at(&mut self, dirfd: u32, guest_path: &str, flags: OpenFlags) -> SysResult<u32> {
        let path = self.resolve(dirfd, guest_path)?;
        let changes = flags.write || flags.create || flags.truncate;
        if changes {
            self.writable()?;
        }
        let existing = self.stat_path(&path, flags.follow || !flags.create);
        let stat = match existing {
            Ok(_) if flags.create && flags.exclusive => return Err(Errno::EEXIST.into()),
            Ok(stat) => stat,
            Err(SysError::Errno(Errno::ENOENT)) if flags.create && !flags.directory => {
                self.fs(&path, FsOp::WriteFile { data: &[], mode: None })?;
                self.stat_path(&path, true)?
            }
            Err(errno) => return Err(errno),
        };
        if let Some(standard) = standard_stream(&stat) {
            // The caller's own stream, as Linux's `/dev/stdout -> /proc/self/fd/1` gives it: a
            // new descriptor for what its 0, 1 or 2 refers to (closed: no such file).
            return self
                .dup(standard)
                .map_err(|errno| SysError::Errno(if errno == Errno::EBADF { Errno::ENOENT } else { errno }));
        }
        let kind = kind_of(stat.mode);
        if is_host_special(stat.mode) {
            // A FIFO, socket or device on a host_dir mount: opening it could block the whole
            // sidecar (a FIFO waits for a writer) or reach host hardware; it is listed, never
            // opened.
            return Err(Errno::EACCES.into());
        }
        if flags.directory && kind != EntryKind::Directory {
            return Err(Errno::ENOTDIR.into());
        }
        let file = if kind == EntryKind::Directory {
            if flags.write || flags.truncate {
                return Err(Errno::EISDIR.into());
            }
            OpenFile::Directory { path: path.clone(), preopen: None, listing: None }
        } else {
            if flags.read && kind == EntryKind::RegularFile {
                // Opening for reading needs `fs.read` now, as on Linux, not at the first read: a
                // zero-byte read asks the policy (and the mount) without moving any content.
                self.fs(&path, FsOp::Pread { offset: 0, len: 0 })?;
            }
            if flags.truncate && kind == EntryKind::RegularFile {
                self.fs(&path, FsOp::Truncate { len: 0 })?;
            }
            OpenFile::File { path, offset: 0, device: kind == EntryKind::CharacterDevice }
        };
        let descriptor = Descriptor {
            file,
            readable: flags.read,
            writable: flags.write,
            append: flags.append,
            nonblocking: flags.nonblocking,
        };
        let max_open_fds = self.vm.process_limits().max_open_fds;
        Ok(self.process_mut()?.fds.insert(descriptor, max_open_fds)?)
    }

    /// Up to `max` entries of the directory open at `fd`, from entry number `from` on (`.` and
    /// `..` are the first two); empty past the end. The names are listed once, at the first
    /// call, so a guest walking the directory with cookies sees a stable list; each entry's kind
    /// and serial number are looked up when a batch first reaches it, so one call costs at most
    /// `max` lookups whatever the directory's size.
    pub fn read_dir_batch(&mut self, fd: u32, from: u64, max: usize) -> SysResult<Vec<DirEntry>> {
        let path = match &self.process()?.fds.get(fd)?.file {
            OpenFile::Directory { path, .. } => path.clone(),
            _ => return Err(Errno::ENOTDIR.into()),
        };
        let mut listing = match &mut self.process_mut()?.fds.get_mut(fd)?.file {
            OpenFile::Directory { listing, .. } => listing.take(),
            _ => None,
        };
        if listing.is_none() {
            listing = Some(self.list(&path)?);
        }
        let Some(mut listing) = listing else { return Err(Errno::EIO.into()) };
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(listing.names.len());
        let end = start.saturating_add(max).min(listing.names.len());
        let mut batch = Vec::with_capacity(end - start);
        for index in start..end {
            let Some(name) = listing.names.get(index).cloned() else { break };
            let known = listing.stats.get(index).copied().flatten();
            let (ino, kind) = match known {
                Some(stat) => stat,
                None => {
                    let stat = match self.stat_path(&join(&path, &name), false) {
                        Ok(stat) => (stat.ino, kind_of(stat.mode)),
                        Err(_) => (0, EntryKind::Unknown),
                    };
                    if let Some(slot) = listing.stats.get_mut(index) {
                        *slot = Some(stat);
                    }
                    stat
                }
            };
            batch.push(DirEntry { name, ino, kind });
        }
        if let OpenFile::Directory { listing: slot, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
            *slot = Some(listing);
        }
        Ok(batch)
    }

    /// The names of `path` with `.` and `..` first, their stats still to be looked up (but for
    /// `.` and `..`, known now).
    fn list(&mut self, path: &str) -> SysResult<Listing> {
        let FsReply::Entries(names) = self.fs(path, FsOp::ReadDir)? else { return Err(Errno::EIO.into()) };
        let listed = u64::try_from(names.len()).unwrap_or(u64::MAX);
        self.charge(listed.saturating_mul(cost::FUEL_PER_DIR_ENTRY));
        let own = self.stat_path(path, true)?;
        let mut all = Vec::with_capacity(names.len().saturating_add(2));
        all.extend([".".to_owned(), "..".to_owned()]);
        all.extend(names);
        let mut stats = vec![None; all.len()];
        if let Some(slots) = stats.get_mut(..2) {
            slots.copy_from_slice(&[Some((own.ino, EntryKind::Directory)), Some((0, EntryKind::Directory))]);
        }
        Ok(Listing { names: all, stats })
    }

    /// Moves the position of `fd`; returns the new offset.
    pub fn seek(&mut self, fd: u32, offset: i64, whence: Whence) -> SysResult<u64> {
        let (path, current) = match &self.process()?.fds.get(fd)?.file {
            OpenFile::File { path, offset, device: false } => (path.clone(), *offset),
            OpenFile::File { device: true, .. } => return Ok(0),
            OpenFile::Directory { .. } => return Err(Errno::EISDIR.into()),
            _ => return Err(Errno::ESPIPE.into()),
        };
        let base = match whence {
            Whence::Start => 0,
            Whence::Current => current,
            Whence::End => self.stat_path(&path, true)?.size,
        };
        let target = i128::from(base).saturating_add(i128::from(offset));
        let target = u64::try_from(target).map_err(|_| Errno::EINVAL)?;
        if let OpenFile::File { offset, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
            *offset = target;
        }
        Ok(target)
    }

    /// Metadata of what `fd` refers to.
    pub fn fstat(&mut self, fd: u32) -> SysResult<FileStat> {
        let path = match &self.process()?.fds.get(fd)?.file {
            OpenFile::File { path, .. } | OpenFile::Directory { path, .. } => path.clone(),
            OpenFile::Stdin { .. } | OpenFile::Stdout { .. } | OpenFile::Stderr { .. } | OpenFile::Pipe { .. } => {
                return Ok(FileStat {
                    dev: 0,
                    ino: 0,
                    kind: EntryKind::CharacterDevice,
                    nlink: 1,
                    size: 0,
                    atime_ns: 0,
                    mtime_ns: 0,
                    ctime_ns: 0,
                })
            }
        };
        self.stat_path(&path, true).map(|stat| file_stat(&stat))
    }

    /// Metadata of `path` relative to `dirfd`.
    pub fn stat_at(&mut self, dirfd: u32, guest_path: &str, follow: bool) -> SysResult<FileStat> {
        let path = self.resolve(dirfd, guest_path)?;
        self.stat_path(&path, follow).map(|stat| file_stat(&stat))
    }

    /// Truncates or extends the file open at `fd`.
    pub fn set_size(&mut self, fd: u32, len: u64) -> SysResult<()> {
        self.writable()?;
        let path = self.file_path(fd)?;
        self.fs(&path, FsOp::Truncate { len }).map(drop)
    }

    /// Sets the access and modification times of what `fd` refers to (a file or a directory).
    pub fn set_times(&mut self, fd: u32, atime: TimeChange, mtime: TimeChange) -> SysResult<()> {
        let path = match &self.process()?.fds.get(fd)?.file {
            OpenFile::File { path, device: false, .. } | OpenFile::Directory { path, .. } => path.clone(),
            // Streams and devices have no times of their own to set.
            _ => return Err(Errno::EINVAL.into()),
        };
        self.set_path_times(&path, atime, mtime)
    }

    /// Sets the times of `path` relative to `dirfd`. Without `follow`, a final symlink's own
    /// times would be set: the filesystem keeps none apart from its target's, so that is
    /// `ENOTSUP`, never a silent change of the target.
    pub fn set_times_at(
        &mut self,
        dirfd: u32,
        guest_path: &str,
        follow: bool,
        atime: TimeChange,
        mtime: TimeChange,
    ) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        if !follow && kind_of(self.stat_path(&path, false)?.mode) == EntryKind::Symlink {
            return Err(Errno::ENOTSUP.into());
        }
        self.set_path_times(&path, atime, mtime)
    }

    fn set_path_times(&mut self, path: &str, atime: TimeChange, mtime: TimeChange) -> SysResult<()> {
        self.writable()?;
        let current = match (atime, mtime) {
            (TimeChange::Keep, _) | (_, TimeChange::Keep) => Some(self.stat_path(path, true)?),
            _ => None,
        };
        let now_ms = self.now.wall_ms;
        let pick = |change: TimeChange, kept: fn(&Stat) -> u64| match change {
            TimeChange::Keep => current.as_ref().map_or(now_ms, kept),
            TimeChange::Now => now_ms,
            TimeChange::At(ns) => ns / NS_PER_MS,
        };
        let (atime_ms, mtime_ms) = (pick(atime, |stat| stat.atime_ms), pick(mtime, |stat| stat.mtime_ms));
        self.fs(path, FsOp::Utimes { atime_ms, mtime_ms }).map(drop)
    }

    pub fn mkdir_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.writable()?;
        self.fs(&path, FsOp::CreateDir { mode: None }).map(drop)
    }

    pub fn remove_file_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.restructurable()?;
        self.fs(&path, FsOp::RemoveFile).map(drop)
    }

    pub fn remove_dir_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.restructurable()?;
        self.fs(&path, FsOp::RemoveDir { recursive: false }).map(drop)
    }

    pub fn rename_at(&mut self, dirfd: u32, from: &str, to_dirfd: u32, to: &str) -> SysResult<()> {
        let from = self.resolve(dirfd, from)?;
        let to = self.resolve(to_dirfd, to)?;
        self.restructurable()?;
        self.fs(&from, FsOp::Rename { to: &to }).map(drop)
    }

    pub fn symlink_at(&mut self, target: &str, dirfd: u32, guest_path: &str) -> SysResult<()> {
        let path = self.resolve(dirfd, guest_path)?;
        self.restructurable()?;
        self.fs(&path, FsOp::Symlink { target }).map(drop)
    }

    pub fn link_at(&mut self, dirfd: u32, from: &str, to_dirfd: u32, to: &str) -> SysResult<()> {
        let from = self.resolve(dirfd, from)?;
        let to = self.resolve(to_dirfd, to)?;
        self.restructurable()?;
        self.fs(&from, FsOp::Link { to: &to }).map(drop)
    }

    pub fn read_link_at(&mut self, dirfd: u32, guest_path: &str) -> SysResult<String> {
        let path = self.resolve(dirfd, guest_path)?;
        match self.fs(&path, FsOp::ReadLink)? {
            FsReply::Target(target) => Ok(target),
            _ => Err(Errno::EIO.into()),
        }
    }

    /// Waits until the monotonic clock reaches `deadline_ns` (absolute) or for `timeout_ns`
    /// from the first attempt (relative). A blocked call is retried unchanged, so the deadline
    /// of a relative wait is remembered from its first attempt, not recomputed.
    pub fn sleep(&mut self, timeout_ns: u64, absolute: bool) -> SysResult<()> {
        let now_ns = self.monotonic_ns();
        let process = self.process_mut()?;
        let deadline_ns = match (absolute, process.sleep_deadline_ns) {
            (true, _) => timeout_ns,
            (false, Some(remembered)) => remembered,
            (false, None) => now_ns.saturating_add(timeout_ns),
        };
        if now_ns >= deadline_ns {
            process.sleep_deadline_ns = None;
            return Ok(());
        }
        process.sleep_deadline_ns = Some(deadline_ns);
        process.wait = Wait::Sleep { until_ms: deadline_ns.div_ceil(NS_PER_MS) };
        Err(SysError::WouldBlock)
    }

    /// Whether a read of `fd` would return at once (data, end-of-file or an error).
    pub fn read_ready(&self, fd: u32) -> Result<bool, Errno> {
        let process = self.process()?;
        Ok(match process.fds.get(fd)?.file {
            OpenFile::Stdin { owner } => {
                self.vm.processes().get(owner).is_none_or(|owner| !owner.stdin.is_empty() || owner.stdin_closed)
            }
            OpenFile::Pipe { id, end: End::Read } => self.vm.processes().pipes.readable(id),
            _ => true,
        })
    }

    /// Parks the guest until one of the descriptors it polls becomes ready (or its sleep ends).
    /// Any of them (or the sleep the poll set up) wakes it.
    pub fn park_for_poll(&mut self, read_fds: &[u32]) {
        let Ok(process) = self.process() else { return };
        let waits: Vec<Wait> = read_fds
            .iter()
            .filter_map(|fd| match process.fds.get(*fd).ok()?.file {
                OpenFile::Stdin { owner } => Some(Wait::Stdin { owner }),
                OpenFile::Pipe { id, .. } => Some(Wait::PipeRead { id }),
                _ => None,
            })
            .collect();
        if let Ok(process) = self.process_mut() {
            if process.wait == Wait::None {
                process.wait = waits.first().copied().unwrap_or(Wait::None);
            }
            process.wake_on = waits;
        }
    }

    // -----------------------------------------------------------------------------------------

    fn process(&self) -> Result<&Process, Errno> {
        self.vm.processes().get(self.pid).ok_or(Errno::ESRCH)
    }

    fn process_mut(&mut self) -> Result<&mut Process, Errno> {
        self.vm.processes_mut().get_mut(self.pid).ok_or(Errno::ESRCH)
    }

    /// A write, charged for the bytes it moved.
    fn write_at(&mut self, fd: u32, data: &[u8], at: Option<u64>) -> SysResult<usize> {
        let written = self.write_at_uncharged(fd, data, at);
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(*written.as_ref().unwrap_or(&0))));
        written
    }

    fn write_at_uncharged(&mut self, fd: u32, data: &[u8], at: Option<u64>) -> SysResult<usize> {
        let max_fd_write_bytes = self.vm.process_limits().max_fd_write_bytes;
        if let OpenFile::Pipe { id, end } = self.process()?.fds.get(fd)?.file {
            if at.is_some() {
                return Err(Errno::ESPIPE.into());
            }
            if end != End::Write {
                return Err(Errno::EBADF.into());
            }
            let nonblocking = self.process()?.fds.get(fd)?.nonblocking;
            let written = self.vm.processes_mut().pipes.write(id, data)?;
            if written == 0 && !data.is_empty() {
                if nonblocking {
                    return Err(Errno::EAGAIN.into());
                }
                self.process_mut()?.wait = Wait::PipeWrite { id };
                return Err(SysError::WouldBlock);
            }
            return Ok(written);
        }
        let channel = match self.process()?.fds.get(fd)?.file {
            OpenFile::Stdout { owner } => Some((Channel::Stdout, owner)),
            OpenFile::Stderr { owner } => Some((Channel::Stderr, owner)),
            _ => None,
        };
        if let Some((channel, owner)) = channel {
            if at.is_some() {
                return Err(Errno::ESPIPE.into());
            }
            // Output goes to the host-started process's events (children share their parent's).
            let target = self.vm.processes_mut().get_mut(owner).filter(|owner| owner.is_alive()).ok_or(Errno::EPIPE)?;
            let room = MAX_PENDING_OUTPUT_BYTES.saturating_sub(target.pending_output_bytes());
            if room == 0 {
                self.process_mut()?.wait = Wait::Output;
                return Err(SysError::WouldBlock);
            }
            let accepted = data.get(..room).unwrap_or(data);
            target.push_output(channel, accepted);
            return Ok(accepted.len());
        }
        let process = self.process_mut()?;
        let descriptor = process.fds.get(fd)?;
        if !descriptor.writable {
            return Err(Errno::EBADF.into());
        }
        let (path, offset, device, append) = match &descriptor.file {
            OpenFile::File { path, offset, device } => (path.clone(), *offset, *device, descriptor.append),
            OpenFile::Directory { .. } => return Err(Errno::EISDIR.into()),
            _ => return Err(Errno::EBADF.into()),
        };
        if device {
            // `/dev/null` and friends: accepted and dropped (the synthetic tree owns them).
            return Ok(data.len());
        }
        self.writable()?;
        let data = data.get(..usize::try_from(max_fd_write_bytes).unwrap_or(usize::MAX)).unwrap_or(data);
        {
            // In place (root, memory and host_dir mounts); the kernel's own trees and js_bridge
            // mounts take the whole-file path below.
            let start = match (at, append) {
                (Some(at), _) => at,
                (None, true) => self.stat_path(&path, true)?.size,
                (None, false) => offset,
            };
            let written = self.guarded(|vm, pid, asks, _, now| vm.guest_pwrite(pid, &path, start, data, asks, now))?;
            if let Some(written) = written {
                if at.is_none() {
                    if let OpenFile::File { offset, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
                        *offset = start.saturating_add(written);
                    }
                }
                return Ok(usize::try_from(written).unwrap_or(data.len()));
            }
        }
        let mut content = self.read_whole(&path)?;
        let start = match (at, append) {
            (Some(at), _) => at,
            (None, true) => u64::try_from(content.len()).unwrap_or(u64::MAX),
            (None, false) => offset,
        };
        let start = usize::try_from(start).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(data.len()).ok_or(Errno::EFBIG)?;
        if content.len() < end {
            content.resize(end, 0);
        }
        if let Some(slot) = content.get_mut(start..end) {
            slot.copy_from_slice(data);
        }
        self.write_whole(&path, &content)?;
        if at.is_none() {
            if let OpenFile::File { offset, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
                *offset = u64::try_from(end).unwrap_or(u64::MAX);
            }
        }
        Ok(data.len())
    }

    /// A read, charged for the bytes it moved. One read moves at most the VM's
    /// `limits.wasm.syncReadLimitBytes`, whatever the buffer (a short read, as POSIX allows).
    fn read_at(&mut self, fd: u32, buf: &mut [u8], at: Option<u64>) -> SysResult<usize> {
        let limit = usize::try_from(self.vm.limits().wasm.sync_read_limit_bytes).unwrap_or(usize::MAX);
        let len = buf.len().min(limit);
        let buf = buf.get_mut(..len).unwrap_or_default();
        let read = self.read_at_uncharged(fd, buf, at);
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(*read.as_ref().unwrap_or(&0))));
        read
    }

    fn read_at_uncharged(&mut self, fd: u32, buf: &mut [u8], at: Option<u64>) -> SysResult<usize> {
        let max_pread_bytes = self.vm.process_limits().max_pread_bytes;
        if let OpenFile::Pipe { id, end } = self.process()?.fds.get(fd)?.file {
            if at.is_some() {
                return Err(Errno::ESPIPE.into());
            }
            if end != End::Read {
                return Err(Errno::EBADF.into());
            }
            let nonblocking = self.process()?.fds.get(fd)?.nonblocking;
            return match self.vm.processes_mut().pipes.read(id, buf) {
                PipeRead::Data(read) => Ok(read),
                PipeRead::EndOfFile => Ok(0),
                PipeRead::Empty if nonblocking => Err(Errno::EAGAIN.into()),
                PipeRead::Empty => {
                    self.process_mut()?.wait = Wait::PipeRead { id };
                    Err(SysError::WouldBlock)
                }
            };
        }
        if let OpenFile::Stdin { owner } = self.process()?.fds.get(fd)?.file {
            if at.is_some() {
                return Err(Errno::ESPIPE.into());
            }
            let nonblocking = self.process()?.fds.get(fd)?.nonblocking;
            let Some(source) = self.vm.processes_mut().get_mut(owner).filter(|owner| owner.is_alive()) else {
                return Ok(0);
            };
            if source.stdin.is_empty() {
                if source.stdin_closed {
                    return Ok(0);
                }
                if nonblocking {
                    return Err(Errno::EAGAIN.into());
                }
                self.process_mut()?.wait = Wait::Stdin { owner };
                return Err(SysError::WouldBlock);
            }
            let read = buf.len().min(source.stdin.len());
            for (dst, src) in buf.iter_mut().zip(source.stdin.drain(..read)) {
                *dst = src;
            }
            return Ok(read);
        }
        let process = self.process_mut()?;
        let descriptor = process.fds.get(fd)?;
        match &descriptor.file {
            OpenFile::Stdin { .. } => Err(Errno::EBADF.into()),
            OpenFile::Stdout { .. } | OpenFile::Stderr { .. } | OpenFile::Pipe { .. } => Err(Errno::EBADF.into()),
            OpenFile::Directory { .. } => Err(Errno::EISDIR.into()),
            OpenFile::File { path, offset, .. } => {
                if !descriptor.readable {
                    return Err(Errno::EBADF.into());
                }
                let path = path.clone();
                let start = at.unwrap_or(*offset);
                let len = u64::try_from(buf.len()).unwrap_or(u64::MAX).min(max_pread_bytes);
                let fast = self.guarded(|vm, pid, asks, _, _| vm.guest_pread(pid, &path, start, len, asks))?;
                let bytes = match fast {
                    Some(bytes) => bytes,
                    None => match self.fs(&path, FsOp::Pread { offset: start, len })? {
                        FsReply::Content(bytes) => bytes,
                        _ => return Err(Errno::EIO.into()),
                    },
                };
                let read = bytes.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..read), bytes.get(..read)) {
                    dst.copy_from_slice(src);
                }
                if at.is_none() {
                    if let OpenFile::File { offset, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
                        *offset = start.saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
                    }
                }
                Ok(read)
            }
        }
    }

    fn file_path(&self, fd: u32) -> Result<String, Errno> {
        match &self.process()?.fds.get(fd)?.file {
            OpenFile::File { path, device: false, .. } => Ok(path.clone()),
            OpenFile::Directory { .. } => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read_whole(&mut self, path: &str) -> SysResult<Vec<u8>> {
        match self.fs(path, FsOp::ReadFile)? {
            FsReply::Content(bytes) => Ok(bytes),
            _ => Err(Errno::EIO.into()),
        }
    }

    fn write_whole(&mut self, path: &str, data: &[u8]) -> SysResult<()> {
        self.fs(path, FsOp::WriteFile { data, mode: None }).map(drop)
    }

    /// `EROFS` unless the process may change the filesystem.
    fn writable(&self) -> Result<(), Errno> {
        match self.process()?.tier {
            WasmPermissionTier::ReadOnly => Err(Errno::EROFS),
            _ => Ok(()),
        }
    }

    /// Removing, renaming and linking need the `FULL` tier: `READ_WRITE` lacks those rights
    /// (`ENOTCAPABLE`), `READ_ONLY` changes nothing (`EROFS`).
    fn restructurable(&self) -> Result<(), Errno> {
        match self.process()?.tier {
            WasmPermissionTier::ReadOnly => Err(Errno::EROFS),
            WasmPermissionTier::ReadWrite | WasmPermissionTier::Isolated => Err(Errno::ENOTCAPABLE),
            WasmPermissionTier::Full => Ok(()),
        }
    }

    /// The VM path `guest_path` names relative to the directory open at `dirfd` (`..` never
    /// climbs above `/`). Symlinks are resolved by the filesystem layer, inside the VM.
    fn resolve(&mut self, dirfd: u32, guest_path: &str) -> Result<String, Errno> {
        if guest_path.len() > path::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if guest_path.contains('\0') {
            return Err(Errno::EINVAL);
        }
        let base = match &self.process()?.fds.get(dirfd)?.file {
            OpenFile::Directory { path, .. } => path.clone(),
            _ => return Err(Errno::ENOTDIR),
        };
        Ok(crate::fs::normalize(&base, guest_path))
    }

    fn stat_path(&mut self, path: &str, follow: bool) -> SysResult<Stat> {
        let op = if follow { FsOp::Stat } else { FsOp::Lstat };
        match self.fs(path, op)? {
            FsReply::Stat(stat) => Ok(stat),
            _ => Err(Errno::EIO.into()),
        }
    }

    /// One operation on the VM's filesystem (policy, mounts, limits) as this process.
    fn fs(&mut self, path: &str, op: FsOp<'_>) -> SysResult<FsReply> {
        let outcome =
            self.guarded(|vm, pid, asks, entropy, now| vm.guest_filesystem_call(pid, path, op, asks, entropy, now))?;
        match outcome {
            FsOutcome::Done(reply) => Ok(reply),
            // Host-answered (js_bridge) mounts need the guest to wait for the host: not yet.
            FsOutcome::Bridge(_) => Err(Errno::ENOTSUP.into()),
        }
    }

    /// Runs a filesystem operation of the VM with the process's permission prompts; an `ask`
    /// not answered yet parks the process ([`SysError::WouldBlock`], waiting for the prompt), and
    /// the call is retried once the host answered.
    fn guarded<T>(
        &mut self,
        call: impl FnOnce(&mut Vm, u32, GuestAsks, &mut Entropy, Now) -> (Result<T, Rejection>, GuestAsks),
    ) -> SysResult<T> {
        let now = self.now;
        let asks = std::mem::take(&mut self.process_mut()?.asks);
        let (outcome, mut asks) = call(&mut self.vm, self.pid, asks, &mut self.entropy, now);
        let host_calls = self.vm.filesystem().take_host_calls();
        self.charge(cost::SYSCALL_FUEL.saturating_add(host_calls.saturating_mul(cost::FUEL_PER_HOST_CALL)));
        let needed = asks.needed.is_some();
        let process = self.process_mut()?;
        std::mem::swap(&mut process.asks, &mut asks);
        if needed {
            process.wait = Wait::Prompt { ticket: None };
            return Err(SysError::WouldBlock);
        }
        outcome.map_err(|rejection| SysError::Errno(errno_of(&rejection)))
    }
}

/// The errno a rejected filesystem call gives the guest: the one it carries; a rejection without
/// one (a request shape no system call makes) is an I/O error.
fn errno_of(rejection: &Rejection) -> Errno {
    rejection.errno.unwrap_or(Errno::EIO)
}

/// Which of the caller's standard descriptors a stat names, if it is `/dev/stdin`, `/dev/stdout`
/// or `/dev/stderr` of the kernel's `/dev`.
fn standard_stream(stat: &Stat) -> Option<u32> {
    if stat.dev != crate::fs::devices::DEV_TREE_DEV {
        return None;
    }
    let index = crate::fs::devices::STDIO_INOS.iter().position(|ino| *ino == stat.ino)?;
    u32::try_from(index).ok()
}

/// FIFOs, sockets and block devices only exist on host_dir mounts (the kernel's own devices are
/// character devices).
fn is_host_special(mode: u32) -> bool {
    matches!(mode & S_IFMT, S_IFIFO | S_IFSOCK | S_IFBLK)
}

fn kind_of(mode: u32) -> EntryKind {
    match mode & S_IFMT {
        S_IFDIR => EntryKind::Directory,
        S_IFREG => EntryKind::RegularFile,
        S_IFLNK => EntryKind::Symlink,
        S_IFCHR => EntryKind::CharacterDevice,
        _ => EntryKind::Unknown,
    }
}

fn file_stat(stat: &Stat) -> FileStat {
    FileStat {
        dev: stat.dev,
        ino: stat.ino,
        kind: kind_of(stat.mode),
        nlink: stat.nlink,
        size: stat.size,
        atime_ns: stat.atime_ms.saturating_mul(NS_PER_MS),
        mtime_ns: stat.mtime_ms.saturating_mul(NS_PER_MS),
        ctime_ns: stat.ctime_ms.saturating_mul(NS_PER_MS),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
