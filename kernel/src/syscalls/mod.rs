//! The system calls of a guest process, served by the kernel while the guest holds its VM.
//!
//! A [`Syscalls`] is the VM itself, lent to one guest for one slice (see `guest`). Engines map
//! their ABI onto these calls (`runtime-wasm` maps `wasi_snapshot_preview1`), so permissions,
//! tiers and limits are enforced here, once, for every kind of guest.
//!
//! File calls are the VM filesystem's typed operations (`FsOp`), the same the host's
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
mod fds;
mod files;
mod net;
mod processes;
pub(crate) mod tools;

pub use net::MsgFlags;
pub use processes::{ChildExit, ChildSpawn, FileAction, ProgramExec, SignalMaskChange};

use schema::wire::{SignalDispositionAction, SignalHandlerRegistration, WasmPermissionTier};

use crate::clock::{Entropy, Now};
use crate::error::Rejection;
use crate::fs::host_gate::HostMemo;
use crate::fs::open_files::FileNode;
use crate::fs::{FsOp, FsOutcome, FsReply, GuestAsks};
use crate::process::cost;
pub use crate::process::fds::SyncFlags;
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
    /// The write integrity asked for (`O_DSYNC`, `O_SYNC`, `O_RSYNC`).
    pub sync: SyncFlags,
}

/// What a descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// stdin/stdout/stderr, `/dev/*`.
    CharacterDevice,
    Directory,
    RegularFile,
    Pipe,
    /// A stream (TCP) socket.
    SocketStream,
    /// A datagram (UDP) socket.
    SocketDatagram,
}

/// A descriptor's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdInfo {
    pub kind: FdKind,
    /// One of the process's standard streams from the host (not a file or pipe a guest made).
    pub stdio: bool,
    pub readable: bool,
    pub writable: bool,
    pub append: bool,
    pub nonblocking: bool,
    pub sync: SyncFlags,
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
    /// The full `st_mode`: type bits (`S_IFMT`) and permissions.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The device a character or block device node stands for (`makedev` encoding), else 0.
    pub rdev: u64,
}

/// The numbers that, as a directory descriptor, mean the process's working directory: the
/// original's custom tools pass `u32::MAX`, wasi-libc's `AT_FDCWD` is `-2`.
pub const CWD_FDS: [u32; 2] = [u32::MAX, u32::MAX - 1];

/// The bit that marks a descriptor number as the hidden alias of a preopen: `0x4000_0000 | N`
/// names preopen `N` (the original's `WASI_HIDDEN_PREOPEN_FD_TAG`). The original's libc finds its
/// preopens, and resolves every path, through these aliases rather than the visible numbers, so
/// a program that closes or replaces its fd 3 keeps its filesystem root. Every call that takes a
/// descriptor to look at (a path's directory, `fd_info`, `fstat`, listing, prestat) accepts an
/// alias; nothing that changes a descriptor does (`close`, `dup`, `dup2`, `renumber`, flags:
/// `EBADF`, as for a number not open), and no call returns one.
pub const HIDDEN_PREOPEN_TAG: u32 = 0x4000_0000;

/// How full the VM's filesystem is, for `statfs`: bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
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

    fn process(&self) -> Result<&Process, Errno> {
        self.vm.processes().get(self.pid).ok_or(Errno::ESRCH)
    }

    fn process_mut(&mut self) -> Result<&mut Process, Errno> {
        self.vm.processes_mut().get_mut(self.pid).ok_or(Errno::ESRCH)
    }

    /// The engine's call has completed (it is not retried any more): the host directory
    /// answers it was given are forgotten, so the next call asks afresh.
    pub fn call_settled(&mut self) {
        if let Ok(process) = self.process_mut() {
            if !process.host_memo.is_empty() {
                process.host_memo = HostMemo::default();
            }
        }
    }

    /// Runs a filesystem operation of the VM with the process's permission prompts and its
    /// deferred host calls: an `ask` not answered yet, or a host directory call not answered
    /// yet (when the driver performs them as effects), parks the process
    /// ([`SysError::WouldBlock`]) and the call is retried once the answer is in.
    fn guarded<T>(
        &mut self,
        call: impl FnOnce(&mut Vm, u32, GuestAsks, &mut Entropy, Now) -> (Result<T, Rejection>, GuestAsks),
    ) -> SysResult<T> {
        let now = self.now;
        let defer = self.vm.defers_host_calls();
        let process = self.process_mut()?;
        let asks = std::mem::take(&mut process.asks);
        let memo = std::mem::take(&mut process.host_memo);
        if defer {
            self.vm.filesystem().host_gate().defer(memo);
        }
        let (outcome, mut asks) = call(&mut self.vm, self.pid, asks, &mut self.entropy, now);
        let mut memo = if defer { self.vm.filesystem().host_gate().undefer() } else { HostMemo::default() };
        let host_calls = self.vm.filesystem().take_host_calls();
        self.charge(cost::SYSCALL_FUEL.saturating_add(host_calls.saturating_mul(cost::FUEL_PER_HOST_CALL)));
        let prompt = asks.needed.is_some();
        if prompt {
            // The prompt comes first; the host call is made again after it.
            memo.needed = None;
        }
        let host_call = memo.needed.is_some();
        let process = self.process_mut()?;
        std::mem::swap(&mut process.asks, &mut asks);
        if prompt || host_call {
            // The attempt is over: the retry starts again from the memo's first answer.
            memo.rewind();
        }
        // Kept until the engine's call settles: a call may run several operations, and a
        // retry runs them all again.
        process.host_memo = memo;
        if prompt {
            process.wait = Wait::Prompt { ticket: None };
            return Err(SysError::WouldBlock);
        }
        if host_call {
            process.wait = Wait::HostCall { asked: false };
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
