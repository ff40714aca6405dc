//! The kernel's WebAssembly engine: [`WasmEngine`] implements `kernel`'s [`GuestEngine`], and
//! [`KernelHost`] serves `wasi_snapshot_preview1` from the kernel's [`Syscalls`], which the
//! kernel lends to a guest for each slice it runs.
//!
//! Compiled programs are cached by content (the SHA-256 of the module's bytes is the key), so
//! every VM of a sidecar that runs the same command compiles it once.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kernel::process::ROOT_FD;
use kernel::syscalls::engine::{
    Guest, GuestEngine, GuestError, GuestExit, GuestPoll, GuestProgram, GuestSpawn, InstalledModule, SharedModule,
};
use kernel::syscalls::{
    EntryKind, FdKind, FileStat, OpenFlags, SyncFlags, SysError as KernelSysError, Syscalls, TimeChange,
};
use kernel::syscalls::{CWD_FDS, HIDDEN_PREOPEN_TAG};
use kernel::vfs::Errno as KernelErrno;
use kernel::vfs::{S_IFBLK, S_IFCHR, S_IFMT};
use schema::wire::WasmPermissionTier;

/// The guest user's ids (the VM's `/home/user` owner).
const GUEST_UID: u32 = 1000;
const GUEST_GID: u32 = 1000;

use crate::abi::{
    ClockId, Dirent, Errno, Event, EventType, Fd, FdStat, Filestat, Filetype, Prestat, Subscription, SubscriptionKind,
    Whence, DIRECTORY_BASE_RIGHTS, FDFLAGS_APPEND, FDFLAGS_DSYNC, FDFLAGS_NONBLOCK, FDFLAGS_RSYNC, FDFLAGS_SYNC,
    FILE_RIGHTS, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW, LOOKUPFLAGS_SYMLINK_FOLLOW,
    OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL, OFLAGS_TRUNC, POLLHUP, POLLIN, POLLNVAL, POLLOUT, RIGHTS_ALL,
    RIGHTS_FD_READ, RIGHTS_FD_WRITE,
};
use crate::accounts;
use crate::host::{FileMetadata, FsUsage, MsgFlags, SocketTransport, SysError, SysResult, WaitReason, WasiHost};
use crate::precompiled::ModuleDigest;
use crate::process::{ChildStatus, Exec, SignalMaskHow, Spawn};
use crate::runtime::{Program, Runtime, RuntimeConfig, RuntimeError, TaskLimits};
use crate::task::{GuestTask, TaskState};

/// What the program cache may hold, in bytes: each entry counts its module's bytes (the key)
/// and its compiled code. The original's whole command set (the eight `@agentos-software`
/// packages: 129 modules, 70 MB of WebAssembly) takes about 330 MB compiled, so a sidecar keeps
/// it all with room for a second set; beyond this the least recently used entries go.
pub const MAX_CACHED_PROGRAM_BYTES: usize = 768 << 20;
/// Entries kept at most whatever their size, so a host feeding many tiny distinct modules
/// cannot grow the map's own overhead without bound (a command set has about a hundred).
pub const MAX_CACHED_PROGRAMS: usize = 4096;

/// Distinct wasm stack limits served at once: each needs its own wasmtime engine (the limit
/// shapes compiled code). VMs rarely differ here; more distinct values are refused.
pub const MAX_STACK_LIMIT_ENGINES: usize = 4;

/// Runs WebAssembly commands for the kernel on wasmtime, one engine per wasm stack limit.
pub struct WasmEngine {
    config: RuntimeConfig,
    runtimes: Mutex<Vec<Arc<Runtime<KernelHost>>>>,
    cache: Mutex<ProgramCache>,
    /// See [`RECENT_BY_IDENTITY`]: newest first.
    recent: Mutex<VecDeque<RecentProgram>>,
    /// Bytes of modules hashed to identify them, in all.
    identified_bytes: AtomicU64,
}

impl fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Compiled programs by (stack limit, module digest). A digest, not the bytes: keyed by the
/// bytes, the 100 MB interpreter was hashed twice (lookup, insert), compared in full on a hit
/// and copied for its key, 8% of a simulator run's time.
type CacheKey = (usize, ModuleDigest);

/// A module's compilation: its program, or why it cannot run (kept too, so a module that
/// fails to link is not compiled again on every Execute).
type Compiled = Result<Arc<WasmProgram>, String>;

#[derive(Default)]
struct ProgramCache {
    programs: HashMap<CacheKey, (Compiled, usize)>,
    /// Keys from least to most recently used.
    order: VecDeque<CacheKey>,
    bytes: usize,
}

impl ProgramCache {
    fn get(&mut self, key: &CacheKey) -> Option<Compiled> {
        let compiled = self.programs.get(key)?.0.clone();
        if let Some(position) = self.order.iter().position(|known| known == key) {
            if let Some(used) = self.order.remove(position) {
                self.order.push_back(used);
            }
        }
        Some(compiled)
    }

    /// Adds `compiled` (of a module of `module_bytes`), then drops the least recently used
    /// entries past the bounds. An entry costs its module's size and its code's, as when the
    /// bytes were the key: the bound keeps the same meaning.
    fn insert(&mut self, key: CacheKey, module_bytes: usize, compiled: Compiled) {
        let code_bytes = compiled.as_ref().map_or(0, |program| program.program.code_bytes());
        let cost = module_bytes.saturating_add(code_bytes);
        self.bytes = self.bytes.saturating_add(cost);
        self.programs.insert(key, (compiled, cost));
        self.order.push_back(key);
        while self.programs.len() > MAX_CACHED_PROGRAMS || self.bytes > MAX_CACHED_PROGRAM_BYTES {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((_, cost)) = self.programs.remove(&oldest) {
                self.bytes = self.bytes.saturating_sub(cost);
            }
        }
    }
}

impl WasmEngine {
    /// An engine with `config` (the stack limit is engine-wide).
    ///
    /// # Errors
    ///
    /// When wasmtime rejects the configuration.
    pub fn new(config: RuntimeConfig) -> Result<WasmEngine, RuntimeError> {
        let runtime = Arc::new(Runtime::new(config.clone())?);
        Ok(WasmEngine {
            config,
            runtimes: Mutex::new(vec![runtime]),
            cache: Mutex::new(ProgramCache::default()),
            recent: Mutex::new(VecDeque::new()),
            identified_bytes: AtomicU64::new(0),
        })
    }

    /// The engine for guests with this stack limit, built on first use.
    fn runtime(&self, max_wasm_stack_bytes: usize) -> Result<Arc<Runtime<KernelHost>>, GuestError> {
        let mut runtimes = self.runtimes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(runtime) = runtimes.iter().find(|r| r.config().max_wasm_stack_bytes == max_wasm_stack_bytes) {
            return Ok(Arc::clone(runtime));
        }
        if runtimes.len() >= MAX_STACK_LIMIT_ENGINES {
            return Err(GuestError::Exhausted(format!(
                "at most {MAX_STACK_LIMIT_ENGINES} distinct maxWasmStackBytes values are served at once"
            )));
        }
        let config = RuntimeConfig { max_wasm_stack_bytes, ..self.config.clone() };
        let runtime = Arc::new(Runtime::new(config).map_err(|error| GuestError::Exhausted(error.to_string()))?);
        runtimes.push(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// Compiles `wasm` as installed software (an interpreter the host made, as `prepare-python`
    /// makes them): its code is kept with installed modules' (see `precompiled::Shelf`), where a
    /// sidecar loading it by its stated digest finds it, and where modules guests run never push
    /// it out.
    ///
    /// # Errors
    ///
    /// As [`GuestEngine::load`].
    pub fn install(&self, wasm: &[u8], max_wasm_stack_bytes: u64) -> Result<Arc<dyn GuestProgram>, GuestError> {
        self.load_identified(wasm, max_wasm_stack_bytes, Some(ModuleDigest::of(wasm)))
    }

    /// Bytes of modules hashed so far to find their compiled programs (what a lookup by
    /// identity saves).
    pub fn identified_bytes(&self) -> u64 {
        self.identified_bytes.load(Ordering::Relaxed)
    }

    /// Programs currently cached.
    pub fn cached_programs(&self) -> usize {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).programs.len()
    }
}

/// A program found lately: its module (kept alive), its stack limit, and the program.
type RecentProgram = (SharedModule, usize, Arc<dyn GuestProgram>);

/// Programs [`GuestEngine::load_shared`] used lately, by the identity of their bytes: a lookup
/// there is a pointer comparison, where the cache hashes the whole module. Each entry keeps its bytes alive, so an address is never another
/// module's. 64: with 8, a run of short-lived modules (a simulator seed's, a busy VM's) pushed
/// out the interpreters, whose 2 to 135 MB were then hashed again at their next start (20% of
/// the simulator's time).
const RECENT_BY_IDENTITY: usize = 64;
/// Most bytes the list keeps alive by itself (entries nobody else holds, newest kept first):
/// the interpreters' and the packages' bytes are held by their owners anyway and cost nothing
/// here; copies a VM read for one `Execute` would otherwise stay for 64 more loads.
const MAX_RECENT_ONLY_BYTES: usize = 64 << 20;

impl GuestEngine for WasmEngine {
    fn load_shared(
        &self,
        module: &SharedModule,
        max_wasm_stack_bytes: u64,
    ) -> Result<Arc<dyn GuestProgram>, GuestError> {
        let stack = usize::try_from(max_wasm_stack_bytes).unwrap_or(usize::MAX);
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            let found = recent.iter().position(|(held, at, _)| held.same(module) && *at == stack);
            // A hit moves to the front: the interpreters, found on every start, stay however
            // many one-off modules pass through.
            if let Some(entry) = found.and_then(|position| recent.remove(position)) {
                let program = Arc::clone(&entry.2);
                recent.push_front(entry);
                return Ok(program);
            }
        }
        let program = match module {
            SharedModule::Bytes(bytes) => self.load_identified(bytes, max_wasm_stack_bytes, None)?,
            SharedModule::Installed(installed) => self.load_installed(installed, max_wasm_stack_bytes)?,
        };
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_front((module.clone(), stack, Arc::clone(&program)));
        recent.truncate(RECENT_BY_IDENTITY);
        let mut only_here = 0usize;
        recent.retain(|(held, _, _)| {
            // The caller's reference to the module just added goes when it returns.
            let transient = usize::from(held.same(module));
            let (holders, bytes) = held.holders_and_bytes();
            if holders > 1 + transient {
                return true;
            }
            only_here = only_here.saturating_add(bytes);
            only_here <= MAX_RECENT_ONLY_BYTES
        });
        Ok(program)
    }

    fn load(&self, bytes: &[u8], max_wasm_stack_bytes: u64) -> Result<Arc<dyn GuestProgram>, GuestError> {
        self.load_identified(bytes, max_wasm_stack_bytes, None)
    }
}

impl WasmEngine {
    /// The program of an installed module: the cache's or the module cache's code for its
    /// stated digest when either has it (its bytes never read), else compiled from its bytes,
    /// read now, under the digest of what was read.
    fn load_installed(
        &self,
        installed: &InstalledModule,
        max_wasm_stack_bytes: u64,
    ) -> Result<Arc<dyn GuestProgram>, GuestError> {
        let stack = usize::try_from(max_wasm_stack_bytes).unwrap_or(usize::MAX);
        let claimed = ModuleDigest::claimed(installed.digest());
        let cached = self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(&(stack, claimed));
        if let Some(compiled) = cached {
            return served(compiled);
        }
        let len = usize::try_from(installed.len()).unwrap_or(usize::MAX);
        let Some(program) = self.runtime(stack)?.load_kept(&claimed) else {
            let bytes = installed.bytes().map_err(GuestError::InvalidProgram)?;
            return self.load_identified(bytes, max_wasm_stack_bytes, Some(claimed));
        };
        let compiled: Compiled = Ok(Arc::new(WasmProgram { program }));
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).insert((stack, claimed), len, compiled.clone());
        served(compiled)
    }

    /// [`GuestEngine::load`], by `claimed` (an installed module's stated digest) when given,
    /// else by the digest of `bytes`.
    fn load_identified(
        &self,
        bytes: &[u8],
        max_wasm_stack_bytes: u64,
        claimed: Option<ModuleDigest>,
    ) -> Result<Arc<dyn GuestProgram>, GuestError> {
        let stack = usize::try_from(max_wasm_stack_bytes).unwrap_or(usize::MAX);
        let digest = claimed.unwrap_or_else(|| {
            self.identified_bytes.fetch_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX), Ordering::Relaxed);
            ModuleDigest::of(bytes)
        });
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let compiled = match cache.get(&(stack, digest)) {
            Some(compiled) => compiled,
            None => {
                let runtime = self.runtime(stack)?;
                let (compiled, known) = match claimed {
                    Some(claimed) => match runtime.compile_claimed(bytes, &claimed) {
                        Ok((program, known)) => (Ok(program), known),
                        Err(error) => (Err(error), claimed),
                    },
                    None => (runtime.compile_digested(bytes, &digest), digest),
                };
                let compiled = compiled.map(|program| Arc::new(WasmProgram { program })).map_err(|e| e.to_string());
                cache.insert((stack, known), bytes.len(), compiled.clone());
                compiled
            }
        };
        served(compiled)
    }
}

/// A cached compile's outcome as a loader answers it.
fn served(compiled: Compiled) -> Result<Arc<dyn GuestProgram>, GuestError> {
    match compiled {
        Ok(program) => Ok(program),
        Err(error) => Err(GuestError::InvalidProgram(error)),
    }
}

/// A compiled command.
#[derive(Debug)]
struct WasmProgram {
    program: Program<KernelHost>,
}

impl GuestProgram for WasmProgram {
    fn spawn(&self, spawn: GuestSpawn) -> Result<Box<dyn Guest>, GuestError> {
        let host = KernelHost {
            args: spawn.args.into_iter().map(String::into_bytes).collect(),
            environ: spawn.env.into_iter().map(String::into_bytes).collect(),
            syscalls: None,
            parked: None,
            pending_open_mode: None,
        };
        let limits = TaskLimits {
            max_wasm_fuel: spawn.limits.max_wasm_fuel,
            slice_fuel: spawn.limits.slice_fuel.max(1),
            max_wasm_memory_bytes: spawn.limits.max_wasm_memory_bytes,
            ..TaskLimits::default()
        };
        let task = self
            .program
            .spawn_in_budget(host, limits, spawn.memory_budget)
            .map_err(|error| GuestError::InvalidProgram(error.to_string()))?;
        Ok(Box::new(WasmGuest { task }))
    }
}

/// A running command.
#[derive(Debug)]
struct WasmGuest {
    task: GuestTask<KernelHost>,
}

impl Guest for WasmGuest {
    fn poll(&mut self, syscalls: Syscalls) -> (Option<Syscalls>, GuestPoll) {
        self.task.host().syscalls = Some(syscalls);
        let state = self.task.poll();
        let syscalls = self.task.host().syscalls.take();
        let poll = match state {
            TaskState::Running => GuestPoll::Running,
            TaskState::Pending(_) => GuestPoll::Blocked,
            // The runtime already wrote why (a limit, a trap) to the guest's stderr.
            TaskState::Ready(status) => {
                GuestPoll::Exited(GuestExit { code: i32::try_from(status.code).unwrap_or(i32::MAX), message: None })
            }
        };
        (syscalls, poll)
    }

    fn kill(&mut self) {
        // Drops the instance; the kernel reports the signal's exit code itself.
        let _ = self.task.kill();
    }
}

/// The `WasiHost` of a kernel process: its argv and environment, and — while it runs — the
/// syscalls the kernel lent it.
pub struct KernelHost {
    args: Vec<Vec<u8>>,
    environ: Vec<Vec<u8>>,
    syscalls: Option<Syscalls>,
    /// Why the last call was parked by the kernel, until the import takes it (`take_wait`).
    parked: Option<WaitReason>,
    /// The creation mode `host_fs.set_open_mode` latched for the next `path_open`.
    pending_open_mode: Option<u32>,
}

impl fmt::Debug for KernelHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelHost").field("args", &self.args.len()).finish_non_exhaustive()
    }
}

impl KernelHost {
    /// The lent syscalls; outside a slice (never, in practice) every call is `EIO`.
    fn sys(&mut self) -> Result<&mut Syscalls, Errno> {
        self.syscalls.as_mut().ok_or(Errno::Io)
    }

    /// Process and pipe control is for `FULL` commands only, like the original.
    fn full_tier(&mut self) -> Result<(), Errno> {
        match self.sys()?.tier() {
            WasmPermissionTier::Full => Ok(()),
            _ => Err(Errno::Perm),
        }
    }

    /// The result of a call the WASI layer retries when the kernel parks it: a parked call
    /// records why (the import suspends the guest and calls again), its own result is discarded.
    fn settled<T>(&mut self, result: Result<T, KernelSysError>) -> Result<T, Errno> {
        match result {
            Ok(value) => Ok(value),
            Err(KernelSysError::Errno(code)) => Err(errno(code)),
            Err(KernelSysError::WouldBlock) => {
                self.parked = Some(WaitReason::Permission);
                Err(Errno::Again)
            }
        }
    }

    /// `path_open`, a file it creates getting `create_mode`.
    fn open_creating(&mut self, dirfd: Fd, path: &[u8], flags: OpenFlags, create_mode: u32) -> Result<Fd, Errno> {
        let path = path_str(path)?;
        let result = self.sys()?.open_at_creating(dirfd, path, flags, Some(create_mode));
        self.settled(result)
    }

    /// The directory a `host_fs` call's relative path starts from, as the kernel names it. An
    /// absolute path ignores the descriptor (so it is the working directory's sentinel, which
    /// the kernel never looks up for one). The visible root preopen (fd 3) means the working
    /// directory: only Rust std passes it to `host_fs` (`fs::set_permissions` and
    /// `MetadataExt::rdev` hard-code it), with the user's raw path, which is relative to the
    /// working directory; the libc passes the hidden alias `0x4000_0003` instead, with a path
    /// relative to `/` (see [`KernelHost::stat_host_fs_path`] for the one call both use).
    fn host_fs_dirfd(&mut self, dirfd: Fd, path: &str) -> Result<Fd, Errno> {
        if path.starts_with('/') || (dirfd == ROOT_FD && self.sys()?.preopen_name(ROOT_FD).is_ok()) {
            return Ok(WORKING_DIRECTORY_FD);
        }
        Ok(dirfd)
    }

    /// `stat` for the `host_fs` getters. The hidden root alias (`0x4000_0003`) with a relative
    /// path is ambiguous once the working directory is not `/`: the libc passes it with its own
    /// resolution of the user's path, relative to `/` (`home/user/a`), and Rust std's
    /// `fs::metadata` right after with the user's raw path (`a`), relative to the working
    /// directory. (The original makes preopen 3 the working directory, so both agree there;
    /// here `/` is the one preopen.) A path naming something below the working directory is
    /// taken as the libc's; any other as Rust std's when it exists there, else as the libc's —
    /// Rust std only asks after the libc's `stat` of the same path succeeded.
    fn stat_host_fs_path(&mut self, dirfd: Fd, path: &str, follow: bool) -> Result<FileStat, Errno> {
        let dirfd = self.host_fs_dirfd(dirfd, path)?;
        if dirfd == HIDDEN_PREOPEN_TAG | ROOT_FD {
            let cwd = self.sys()?.cwd().map_err(errno)?;
            if !is_within(&format!("/{path}"), &cwd) {
                let result = self.sys()?.stat_at(WORKING_DIRECTORY_FD, path, follow);
                match self.settled(result) {
                    Err(Errno::NoEnt | Errno::NotDir) => {}
                    found_or_parked => return found_or_parked,
                }
            }
        }
        let result = self.sys()?.stat_at(dirfd, path, follow);
        self.settled(result)
    }
}

/// Parks a poll (`poll_oneoff`, `host_net.net_poll`) until one of the descriptors is ready or,
/// with a deadline, the monotonic clock reaches it.
fn park_polling(sys: &mut Syscalls, read_fds: &[Fd], write_fds: &[Fd], deadline_ns: Option<u64>) -> SysError {
    match deadline_ns {
        Some(deadline) => {
            // Parks on the clock; a polled descriptor wakes it too.
            let _ = sys.sleep(deadline, true);
            sys.park_for_poll(read_fds, write_fds);
            SysError::WouldBlock(WaitReason::Sleep { until_ns: deadline })
        }
        None => {
            sys.park_for_poll(read_fds, write_fds);
            SysError::WouldBlock(WaitReason::Poll)
        }
    }
}

/// A kernel errno as WASI numbers it (by name; `EIO` if WASI has no such errno).
fn errno(errno: KernelErrno) -> Errno {
    match errno {
        KernelErrno::EPERM => Errno::Perm,
        KernelErrno::ENOENT => Errno::NoEnt,
        KernelErrno::EIO => Errno::Io,
        KernelErrno::EBADF => Errno::Badf,
        KernelErrno::EACCES => Errno::Acces,
        KernelErrno::EBUSY => Errno::Busy,
        KernelErrno::EEXIST => Errno::Exist,
        KernelErrno::EXDEV => Errno::Xdev,
        KernelErrno::ENOTDIR => Errno::NotDir,
        KernelErrno::EISDIR => Errno::IsDir,
        KernelErrno::EINVAL => Errno::Inval,
        KernelErrno::EFBIG => Errno::Fbig,
        KernelErrno::ENOSPC => Errno::NoSpc,
        KernelErrno::EROFS => Errno::Rofs,
        KernelErrno::EMLINK => Errno::Mlink,
        KernelErrno::ENAMETOOLONG => Errno::NameTooLong,
        KernelErrno::ENOTEMPTY => Errno::NotEmpty,
        KernelErrno::ELOOP => Errno::Loop,
        KernelErrno::E2BIG => Errno::TooBig,
        KernelErrno::ENOSYS => Errno::NoSys,
        KernelErrno::EAGAIN => Errno::Again,
        KernelErrno::EPIPE => Errno::Pipe,
        KernelErrno::ESPIPE => Errno::Spipe,
        KernelErrno::EMFILE => Errno::Mfile,
        KernelErrno::ENOTSUP => Errno::NotSup,
        KernelErrno::EFAULT => Errno::Fault,
        KernelErrno::ESRCH => Errno::Srch,
        KernelErrno::ECHILD => Errno::Child,
        KernelErrno::ENOTCAPABLE => Errno::NotCapable,
        KernelErrno::ENOEXEC => Errno::NoExec,
        KernelErrno::EADDRINUSE => Errno::AddrInUse,
        KernelErrno::EADDRNOTAVAIL => Errno::AddrNotAvail,
        KernelErrno::EAFNOSUPPORT => Errno::AfNoSupport,
        KernelErrno::ECONNREFUSED => Errno::ConnRefused,
        KernelErrno::ECONNRESET => Errno::ConnReset,
        KernelErrno::EDESTADDRREQ => Errno::DestAddrReq,
        KernelErrno::EISCONN => Errno::IsConn,
        KernelErrno::EMSGSIZE => Errno::MsgSize,
        KernelErrno::ENOBUFS => Errno::NoBufs,
        KernelErrno::ENOPROTOOPT => Errno::NoProtoOpt,
        KernelErrno::ENOTCONN => Errno::NotConn,
        KernelErrno::ENOTSOCK => Errno::NotSock,
        KernelErrno::EPROTONOSUPPORT => Errno::ProtoNoSupport,
        KernelErrno::ENETUNREACH => Errno::NetUnreach,
        KernelErrno::ETIMEDOUT => Errno::TimedOut,
        KernelErrno::ECONNABORTED => Errno::ConnAborted,
        KernelErrno::EHOSTUNREACH => Errno::HostUnreach,
        KernelErrno::EINPROGRESS => Errno::InProgress,
        KernelErrno::EALREADY => Errno::Already,
        KernelErrno::EPROTO => Errno::Proto,
    }
}

fn sys_error(error: KernelSysError, reason: WaitReason) -> SysError {
    match error {
        KernelSysError::Errno(code) => SysError::Errno(errno(code)),
        KernelSysError::WouldBlock => SysError::WouldBlock(reason),
    }
}

/// The directory descriptor the kernel reads as the process's working directory.
const WORKING_DIRECTORY_FD: Fd = CWD_FDS[0];

/// The permissions a created file gets when no `host_fs.set_open_mode` came first (less the
/// umask), as `open(2)` callers conventionally ask.
const DEFAULT_CREATE_MODE: u32 = 0o666;

/// Whether the absolute path `path` is `dir` or below it (lexically).
fn is_within(path: &str, dir: &str) -> bool {
    dir == "/" || path.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What the `host_fs` getters report of a kernel stat (a device number only for devices).
fn file_metadata(stat: FileStat) -> FileMetadata {
    let is_device = matches!(stat.mode & S_IFMT, S_IFCHR | S_IFBLK);
    FileMetadata {
        mode: stat.mode,
        size: stat.size,
        uid: stat.uid,
        gid: stat.gid,
        rdev: if is_device { stat.rdev } else { 0 },
    }
}

/// NUL-separated strings (a trailing NUL or none), as `proc_spawn` passes argv and envp.
fn nul_separated(bytes: &[u8]) -> Result<Vec<String>, Errno> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    bytes.split(|byte| *byte == 0).map(|part| path_str(part).map(str::to_owned)).collect()
}

fn path_str(path: &[u8]) -> Result<&str, Errno> {
    std::str::from_utf8(path).map_err(|_| Errno::Ilseq)
}

fn filetype(kind: EntryKind) -> Filetype {
    match kind {
        EntryKind::Directory => Filetype::Directory,
        EntryKind::RegularFile => Filetype::RegularFile,
        EntryKind::Symlink => Filetype::SymbolicLink,
        EntryKind::CharacterDevice => Filetype::CharacterDevice,
        EntryKind::Unknown => Filetype::Unknown,
    }
}

fn filestat(stat: FileStat) -> Filestat {
    Filestat {
        dev: stat.dev,
        ino: stat.ino,
        filetype: filetype(stat.kind),
        nlink: stat.nlink,
        size: stat.size,
        atim: stat.atime_ns,
        mtim: stat.mtime_ns,
        ctim: stat.ctime_ns,
    }
}

/// WASI's `fstflags` as what to do with each time: a given time and "now" for the same one is
/// `EINVAL` (as in wasmtime).
fn time_changes(atim_ns: u64, mtim_ns: u64, fstflags: u16) -> Result<(TimeChange, TimeChange), Errno> {
    let change = |given: u16, now: u16, ns: u64| match (fstflags & given != 0, fstflags & now != 0) {
        (true, true) => Err(Errno::Inval),
        (true, false) => Ok(TimeChange::At(ns)),
        (false, true) => Ok(TimeChange::Now),
        (false, false) => Ok(TimeChange::Keep),
    };
    Ok((change(FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, atim_ns)?, change(FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW, mtim_ns)?))
}

/// Directory entries the kernel looks up per batch: each may cost a host `lstat` (on a
/// `host_dir` mount), and the runtime stops asking once the guest's buffer or the per-call bound
/// (`imports::wasi_p1::MAX_DIRENTS_PER_CALL`) is reached.
const DIRENTS_PER_BATCH: usize = 32;

impl WasiHost for KernelHost {
    fn take_work_fuel(&mut self) -> u64 {
        self.syscalls.as_mut().map_or(0, Syscalls::take_work_fuel)
    }

    fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    fn environ(&self) -> &[Vec<u8>] {
        &self.environ
    }

    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno> {
        let _ = clock;
        Ok(self.sys()?.clock_resolution_ns())
    }

    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno> {
        let _ = precision_ns;
        let sys = self.sys()?;
        Ok(match clock {
            ClockId::Realtime => sys.realtime_ns(),
            ClockId::Monotonic | ClockId::ProcessCpuTime | ClockId::ThreadCpuTime => sys.monotonic_ns(),
        })
    }

    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        self.sys()?.random(buf);
        Ok(())
    }

    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        let result = self.sys()?.write(fd, data).map_err(|error| sys_error(error, WaitReason::Write { fd }));
        result
    }

    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        let reason = if fd == 0 { WaitReason::ReadStdin } else { WaitReason::Read { fd } };
        let result = self.sys()?.read(fd, buf).map_err(|error| sys_error(error, reason));
        result
    }

    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno> {
        self.sys()?.close(fd).map_err(errno)
    }

    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno> {
        let info = self.sys()?.fd_info(fd).map_err(errno)?;
        let filetype = match info.kind {
            // The host's standard streams are pipes to the host, never terminals: `Unknown`, as
            // wasmtime reports piped stdio, so the libc's `isatty` is false (CPython then writes
            // no colour codes).
            _ if info.stdio => Filetype::Unknown,
            FdKind::CharacterDevice => Filetype::CharacterDevice,
            FdKind::Directory => Filetype::Directory,
            FdKind::RegularFile => Filetype::RegularFile,
            // Not a socket: the packages' libc sends its reads and writes on sockets through
            // `host_net`, so a pipe that claimed to be one would depend on that call's fallback.
            // Pipes are `Unknown`, as wasmtime reports them.
            FdKind::Pipe => Filetype::Unknown,
            FdKind::SocketStream => Filetype::SocketStream,
            FdKind::SocketDatagram => Filetype::SocketDgram,
        };
        // As wasmtime reports them: a directory has the directory rights (and passes on those
        // and a file's), a standard stream only reads or writes, anything else has every right
        // but the reading or writing its open mode lacks.
        let readable = if info.readable { RIGHTS_FD_READ } else { 0 };
        let writable = if info.writable { RIGHTS_FD_WRITE } else { 0 };
        let (rights_base, rights_inheriting) = match info.kind {
            FdKind::Directory => (DIRECTORY_BASE_RIGHTS, DIRECTORY_BASE_RIGHTS | FILE_RIGHTS),
            _ if info.stdio => (readable | writable, readable | writable),
            _ => {
                let rights = RIGHTS_ALL & !(RIGHTS_FD_READ | RIGHTS_FD_WRITE) | readable | writable;
                (rights, rights)
            }
        };
        let nonblocking = if info.nonblocking { FDFLAGS_NONBLOCK } else { 0 };
        let sync = [(info.sync.data, FDFLAGS_DSYNC), (info.sync.file, FDFLAGS_SYNC), (info.sync.read, FDFLAGS_RSYNC)]
            .iter()
            .fold(0, |flags, (set, flag)| if *set { flags | flag } else { flags });
        let flags = match info.kind {
            FdKind::Directory => 0,
            _ if info.stdio => nonblocking,
            _ => (if info.append { FDFLAGS_APPEND } else { 0 }) | nonblocking | sync,
        };
        Ok(FdStat { filetype, flags, rights_base, rights_inheriting })
    }

    fn fd_prestat_get(&mut self, fd: Fd) -> Result<Prestat, Errno> {
        let name = self.sys()?.preopen_name(fd).map_err(errno)?;
        Ok(Prestat { name_len: u32::try_from(name.len()).map_err(|_| Errno::Overflow)? })
    }

    fn fd_prestat_dir_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        Ok(self.sys()?.preopen_name(fd).map_err(errno)?.into_bytes())
    }

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
        let _ = rights_inheriting;
        let flags = OpenFlags {
            read: rights_base & RIGHTS_FD_READ != 0,
            write: rights_base & RIGHTS_FD_WRITE != 0,
            create: oflags & OFLAGS_CREAT != 0,
            exclusive: oflags & OFLAGS_EXCL != 0,
            truncate: oflags & OFLAGS_TRUNC != 0,
            directory: oflags & OFLAGS_DIRECTORY != 0,
            append: fdflags & FDFLAGS_APPEND != 0,
            nonblocking: fdflags & FDFLAGS_NONBLOCK != 0,
            follow: lookupflags & LOOKUPFLAGS_SYMLINK_FOLLOW != 0,
            sync: SyncFlags {
                data: fdflags & FDFLAGS_DSYNC != 0,
                file: fdflags & FDFLAGS_SYNC != 0,
                read: fdflags & FDFLAGS_RSYNC != 0,
            },
        };
        // The latch is for this open alone, whatever becomes of it — unless it is parked, as it
        // is then made again.
        let create_mode = self.pending_open_mode.unwrap_or(DEFAULT_CREATE_MODE) & !self.umask();
        let opened = self.open_creating(dirfd, path, flags, create_mode);
        if self.parked.is_none() {
            self.pending_open_mode = None;
        }
        opened
    }

    fn fd_readdir(&mut self, fd: Fd, cookie: u64) -> Result<Vec<Dirent>, Errno> {
        let result = self.sys()?.read_dir_batch(fd, cookie, DIRENTS_PER_BATCH);
        let entries = self.settled(result)?;
        Ok(entries
            .into_iter()
            .zip(cookie..)
            .map(|(entry, index)| Dirent {
                next: index.saturating_add(1),
                ino: entry.ino,
                filetype: filetype(entry.kind),
                name: entry.name.into_bytes(),
            })
            .collect())
    }

    fn fd_seek(&mut self, fd: Fd, offset: i64, whence: Whence) -> Result<u64, Errno> {
        let whence = match whence {
            Whence::Set => kernel::syscalls::Whence::Start,
            Whence::Cur => kernel::syscalls::Whence::Current,
            Whence::End => kernel::syscalls::Whence::End,
        };
        let result = self.sys()?.seek(fd, offset, whence);
        self.settled(result)
    }

    fn fd_filestat_get(&mut self, fd: Fd) -> Result<Filestat, Errno> {
        let result = self.sys()?.fstat(fd).map(filestat);
        self.settled(result)
    }

    fn fd_filestat_set_size(&mut self, fd: Fd, size: u64) -> Result<(), Errno> {
        let result = self.sys()?.set_size(fd, size);
        self.settled(result)
    }

    fn fd_filestat_set_times(&mut self, fd: Fd, atim_ns: u64, mtim_ns: u64, fstflags: u16) -> Result<(), Errno> {
        let (atime, mtime) = time_changes(atim_ns, mtim_ns, fstflags)?;
        let result = self.sys()?.set_times(fd, atime, mtime);
        self.settled(result)
    }

    fn path_filestat_set_times(
        &mut self,
        fd: Fd,
        lookupflags: u32,
        path: &[u8],
        atim_ns: u64,
        mtim_ns: u64,
        fstflags: u16,
    ) -> Result<(), Errno> {
        let path = path_str(path)?;
        let (atime, mtime) = time_changes(atim_ns, mtim_ns, fstflags)?;
        let follow = lookupflags & LOOKUPFLAGS_SYMLINK_FOLLOW != 0;
        let result = self.sys()?.set_times_at(fd, path, follow, atime, mtime);
        self.settled(result)
    }

    fn fd_pread(&mut self, fd: Fd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let result = self.sys()?.pread(fd, buf, offset).map_err(|error| sys_error(error, WaitReason::Read { fd }));
        result
    }

    fn fd_pwrite(&mut self, fd: Fd, data: &[u8], offset: u64) -> SysResult<usize> {
        let result = self.sys()?.pwrite(fd, data, offset).map_err(|error| sys_error(error, WaitReason::Write { fd }));
        result
    }

    fn proc_getpid(&mut self) -> Result<u32, Errno> {
        Ok(self.sys()?.pid())
    }

    fn proc_getppid(&mut self) -> Result<u32, Errno> {
        self.sys()?.parent_pid().map_err(errno)
    }

    fn fd_pipe(&mut self) -> Result<(Fd, Fd), Errno> {
        self.full_tier()?;
        self.sys()?.pipe().map_err(errno)
    }

    fn fd_dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        self.sys()?.dup(fd).map_err(errno)
    }

    fn fd_dup2(&mut self, old: Fd, new: Fd) -> Result<(), Errno> {
        self.sys()?.dup2(old, new).map_err(errno)
    }

    fn proc_kill(&mut self, pid: i32, signal: u32) -> Result<(), Errno> {
        // Only FULL commands may signal (the original answers ESRCH to the others).
        self.full_tier().map_err(|_| Errno::Srch)?;
        self.sys()?.kill(i64::from(pid), signal).map_err(errno)
    }

    fn proc_sigaction(&mut self, signal: u32, action: u32, mask: u64, flags: u32) -> Result<(), Errno> {
        self.full_tier().map_err(|_| Errno::Fault)?;
        self.sys()?.sigaction(signal, action, mask, flags).map_err(errno)
    }

    fn sleep_ms(&mut self, ms: u32) -> SysResult<()> {
        self.sys()?.sleep_ms(ms).map_err(|error| sys_error(error, WaitReason::Sleep { until_ns: 0 }))
    }

    fn proc_waitpid(&mut self, pid: i32, options: u32) -> Result<(u32, u32), Errno> {
        let result = self.sys()?.waitpid(pid, options);
        self.settled(result)
    }

    fn proc_spawn(&mut self, argv: &[u8], envp: &[u8], stdio: [Fd; 3], cwd: &[u8]) -> Result<u32, Errno> {
        // Only FULL commands may start processes (the original answers EFAULT to the others).
        self.full_tier().map_err(|_| Errno::Fault)?;
        let argv = nul_separated(argv)?;
        let env = nul_separated(envp)?;
        let cwd = if cwd.is_empty() { None } else { Some(path_str(cwd)?.to_owned()) };
        let result = self.sys()?.spawn(argv, env, stdio, cwd);
        self.settled(result)
    }

    fn proc_spawn_v3(&mut self, spawn: &Spawn) -> Result<u32, Errno> {
        // Only FULL commands may start processes (the original answers EFAULT to the others).
        self.full_tier().map_err(|_| Errno::Fault)?;
        let result = self.sys()?.spawn_child(spawn.clone());
        self.settled(result)
    }

    fn proc_waitpid_v2(&mut self, pid: i32, nohang: bool) -> Result<Option<ChildStatus>, Errno> {
        let result = self.sys()?.wait_child(pid, nohang);
        Ok(self.settled(result)?.map(ChildStatus::of_kernel))
    }

    fn proc_exec(&mut self, exec: &Exec) -> Errno {
        // Replacing the program is process control: FULL commands only, like spawning.
        if self.full_tier().is_err() {
            return Errno::Fault;
        }
        let result = match self.sys() {
            Ok(sys) => sys.exec(exec.clone()),
            Err(errno) => return errno,
        };
        match self.settled(result) {
            Ok(never) => match never {},
            Err(errno) => errno,
        }
    }

    fn proc_signal_mask(&mut self, how: SignalMaskHow, set: u64) -> Result<u64, Errno> {
        self.sys()?.signal_mask(how.to_kernel(), set).map_err(errno)
    }

    fn fd_setfd(&mut self, fd: Fd, cloexec: bool) -> Result<(), Errno> {
        self.sys()?.set_cloexec(fd, cloexec).map_err(errno)
    }

    fn umask(&mut self) -> u32 {
        self.syscalls.as_ref().map_or(kernel::process::DEFAULT_UMASK, Syscalls::umask)
    }

    fn set_umask(&mut self, mask: u32) -> Result<u32, Errno> {
        self.sys()?.set_umask(mask).map_err(errno)
    }

    fn getuid(&mut self) -> Result<u32, Errno> {
        Ok(GUEST_UID)
    }

    fn getgid(&mut self) -> Result<u32, Errno> {
        Ok(GUEST_GID)
    }

    fn isatty(&mut self, fd: Fd) -> Result<bool, Errno> {
        // No terminals yet: stdio is pipes to the host.
        self.sys()?.fd_info(fd).map(|_| false).map_err(errno)
    }

    fn getpwuid(&mut self, uid: u32) -> Result<Vec<u8>, Errno> {
        accounts::passwd_by_uid(uid).ok_or(Errno::NoEnt)
    }

    fn getpwnam(&mut self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        accounts::passwd_by_name(name).ok_or(Errno::NoEnt)
    }

    fn getpwent(&mut self, index: u32) -> Result<Vec<u8>, Errno> {
        accounts::passwd_by_index(index).ok_or(Errno::NoEnt)
    }

    fn getgrgid(&mut self, gid: u32) -> Result<Vec<u8>, Errno> {
        accounts::group_by_gid(gid).ok_or(Errno::NoEnt)
    }

    fn getgrnam(&mut self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        accounts::group_by_name(name).ok_or(Errno::NoEnt)
    }

    fn getgrent(&mut self, index: u32) -> Result<Vec<u8>, Errno> {
        accounts::group_by_index(index).ok_or(Errno::NoEnt)
    }

    fn getgroups(&mut self) -> Result<Vec<u32>, Errno> {
        Ok(accounts::groups_of(GUEST_UID))
    }

    /// The guest is not root: it may only "change" to the ids it has (Linux's rule for an
    /// unprivileged `setuid`: the real or saved id, both the guest's).
    fn setuid(&mut self, uid: u32) -> Result<(), Errno> {
        if uid == GUEST_UID {
            Ok(())
        } else {
            Err(Errno::Perm)
        }
    }

    fn setgid(&mut self, gid: u32) -> Result<(), Errno> {
        if gid == GUEST_GID {
            Ok(())
        } else {
            Err(Errno::Perm)
        }
    }

    /// Only root may set supplementary groups.
    fn setgroups(&mut self, gids: &[u32]) -> Result<(), Errno> {
        let _ = gids;
        Err(Errno::Perm)
    }

    fn path_metadata(&mut self, dirfd: Fd, path: &[u8], follow: bool) -> Result<FileMetadata, Errno> {
        let path = path_str(path)?;
        self.stat_host_fs_path(dirfd, path, follow).map(file_metadata)
    }

    fn fd_metadata(&mut self, fd: Fd) -> Result<FileMetadata, Errno> {
        let result = self.sys()?.fstat(fd);
        self.settled(result).map(file_metadata)
    }

    fn set_open_mode(&mut self, mode: u32) -> Result<(), Errno> {
        self.pending_open_mode = Some(mode);
        Ok(())
    }

    fn path_chmod(&mut self, dirfd: Fd, path: &[u8], mode: u32) -> Result<(), Errno> {
        let path = path_str(path)?;
        let dirfd = self.host_fs_dirfd(dirfd, path)?;
        let result = self.sys()?.chmod_at(dirfd, path, mode);
        self.settled(result)
    }

    fn path_chown(
        &mut self,
        dirfd: Fd,
        path: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
        follow: bool,
    ) -> Result<(), Errno> {
        let path = path_str(path)?;
        let dirfd = self.host_fs_dirfd(dirfd, path)?;
        let result = self.sys()?.chown_at(dirfd, path, uid, gid, follow);
        self.settled(result)
    }

    fn path_statfs(&mut self, dirfd: Fd, path: &[u8]) -> Result<FsUsage, Errno> {
        let path = path_str(path)?;
        let dirfd = self.host_fs_dirfd(dirfd, path)?;
        let result = self.sys()?.statfs_at(dirfd, path);
        self.settled(result)
    }

    fn take_wait(&mut self) -> Option<WaitReason> {
        self.parked.take()
    }

    fn host_call(&mut self, frame: &[u8]) -> SysResult<Vec<u8>> {
        self.sys()?.host_call(frame).map_err(|error| sys_error(error, WaitReason::Permission))
    }

    fn call_settled(&mut self) {
        if let Some(sys) = self.syscalls.as_mut() {
            sys.call_settled();
        }
    }

    fn fd_fdstat_set_flags(&mut self, fd: Fd, flags: u16) -> Result<(), Errno> {
        // Only append and non-blocking can change after the open, as in wasmtime.
        if flags & (FDFLAGS_DSYNC | FDFLAGS_SYNC | FDFLAGS_RSYNC) != 0 {
            return Err(Errno::Inval);
        }
        self.sys()?.set_flags(fd, flags & FDFLAGS_APPEND != 0, flags & FDFLAGS_NONBLOCK != 0).map_err(errno)
    }

    fn fd_renumber(&mut self, from: Fd, to: Fd) -> Result<(), Errno> {
        self.sys()?.renumber(from, to).map_err(errno)
    }

    fn fd_sync(&mut self, fd: Fd) -> Result<(), Errno> {
        self.sys()?.fd_info(fd).map(|_| ()).map_err(errno)
    }

    fn fd_datasync(&mut self, fd: Fd) -> Result<(), Errno> {
        self.sys()?.fd_info(fd).map(|_| ()).map_err(errno)
    }

    fn path_filestat_get(&mut self, fd: Fd, lookupflags: u32, path: &[u8]) -> Result<Filestat, Errno> {
        let path = path_str(path)?;
        let follow = lookupflags & LOOKUPFLAGS_SYMLINK_FOLLOW != 0;
        let result = self.sys()?.stat_at(fd, path, follow).map(filestat);
        self.settled(result)
    }

    fn path_create_directory(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let path = path_str(path)?;
        let result = self.sys()?.mkdir_at(fd, path);
        self.settled(result)
    }

    fn path_remove_directory(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let path = path_str(path)?;
        let result = self.sys()?.remove_dir_at(fd, path);
        self.settled(result)
    }

    fn path_unlink_file(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let path = path_str(path)?;
        let result = self.sys()?.remove_file_at(fd, path);
        self.settled(result)
    }

    fn path_rename(&mut self, fd: Fd, old_path: &[u8], new_fd: Fd, new_path: &[u8]) -> Result<(), Errno> {
        let (old_path, new_path) = (path_str(old_path)?, path_str(new_path)?);
        let result = self.sys()?.rename_at(fd, old_path, new_fd, new_path);
        self.settled(result)
    }

    fn path_symlink(&mut self, old_target: &[u8], fd: Fd, new_path: &[u8]) -> Result<(), Errno> {
        let (target, new_path) = (path_str(old_target)?, path_str(new_path)?);
        let result = self.sys()?.symlink_at(target, fd, new_path);
        self.settled(result)
    }

    fn path_readlink(&mut self, fd: Fd, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let path = path_str(path)?;
        let result = self.sys()?.read_link_at(fd, path).map(String::into_bytes);
        self.settled(result)
    }

    fn path_link(
        &mut self,
        old_fd: Fd,
        lookupflags: u32,
        old_path: &[u8],
        new_fd: Fd,
        new_path: &[u8],
    ) -> Result<(), Errno> {
        let follow = lookupflags & LOOKUPFLAGS_SYMLINK_FOLLOW != 0;
        let (old_path, new_path) = (path_str(old_path)?, path_str(new_path)?);
        let result = self.sys()?.link_at(old_fd, old_path, new_fd, new_path, follow);
        self.settled(result)
    }

    /// Clock subscriptions fire when the kernel's monotonic clock reaches them (the runtime
    /// hands them over as absolute times); descriptor subscriptions when a read would not block
    /// (writes never block here). Nothing ready: the guest is parked until a descriptor changes
    /// or the earliest clock deadline.
    fn poll_oneoff(&mut self, subscriptions: &[Subscription]) -> SysResult<Vec<Event>> {
        let sys = self.sys()?;
        let now_ns = sys.monotonic_ns();
        let mut events = Vec::new();
        let mut earliest: Option<u64> = None;
        let mut read_fds = Vec::new();
        let mut write_fds = Vec::new();
        for subscription in subscriptions {
            let ready = |kind, nbytes| Event {
                userdata: subscription.userdata,
                error: Errno::Success,
                kind,
                nbytes,
                hangup: false,
            };
            match subscription.kind {
                SubscriptionKind::Clock { id, timeout_ns, absolute, .. } => {
                    let deadline = match (id, absolute) {
                        (ClockId::Realtime, true) => {
                            now_ns.saturating_add(timeout_ns.saturating_sub(sys.realtime_ns()))
                        }
                        (_, true) => timeout_ns,
                        (_, false) => now_ns.saturating_add(timeout_ns),
                    };
                    if deadline <= now_ns {
                        events.push(ready(EventType::Clock, 0));
                    } else {
                        earliest = Some(earliest.map_or(deadline, |current| current.min(deadline)));
                    }
                }
                SubscriptionKind::FdRead(fd) => match sys.read_ready(fd) {
                    Ok(true) => events.push(ready(EventType::FdRead, 1)),
                    Ok(false) => read_fds.push(fd),
                    Err(code) => events.push(Event { error: errno(code), ..ready(EventType::FdRead, 0) }),
                },
                SubscriptionKind::FdWrite(fd) => match sys.write_ready(fd) {
                    Ok(true) => events.push(ready(EventType::FdWrite, 1)),
                    Ok(false) => write_fds.push(fd),
                    Err(code) => events.push(Event { error: errno(code), ..ready(EventType::FdWrite, 0) }),
                },
            }
        }
        if !events.is_empty() {
            return Ok(events);
        }
        Err(park_polling(sys, &read_fds, &write_fds, earliest))
    }

    fn sock_open(&mut self, transport: SocketTransport, nonblocking: bool) -> Result<Fd, Errno> {
        self.sys()?.socket(transport, nonblocking).map_err(errno)
    }

    fn sock_bind(&mut self, fd: Fd, address: &[u8]) -> Result<(), Errno> {
        self.sys()?.bind(fd, address).map_err(errno)
    }

    fn sock_listen(&mut self, fd: Fd, backlog: u32) -> Result<(), Errno> {
        self.sys()?.listen(fd, backlog).map_err(errno)
    }

    fn sock_accept(&mut self, fd: Fd, nonblocking: bool) -> SysResult<(Fd, Vec<u8>)> {
        let accepted = self.sys()?.accept(fd, nonblocking);
        accepted.map(|(fd, peer)| (fd, peer.into_bytes())).map_err(|error| sys_error(error, WaitReason::Read { fd }))
    }

    fn sock_connect(&mut self, fd: Fd, address: &[u8]) -> SysResult<()> {
        let connected = self.sys()?.connect(fd, address);
        connected.map_err(|error| sys_error(error, WaitReason::Write { fd }))
    }

    fn sock_tls_connect(&mut self, fd: Fd, server_name: &[u8]) -> SysResult<()> {
        let secured = self.sys()?.tls_connect(fd, server_name);
        secured.map_err(|error| sys_error(error, WaitReason::Write { fd }))
    }

    fn sock_send(&mut self, fd: Fd, data: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let sent = self.sys()?.send(fd, data, flags);
        sent.map_err(|error| sys_error(error, WaitReason::Write { fd }))
    }

    fn sock_recv(&mut self, fd: Fd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        let received = self.sys()?.recv(fd, buf, flags);
        received.map_err(|error| sys_error(error, WaitReason::Read { fd }))
    }

    fn sock_send_to(&mut self, fd: Fd, data: &[u8], address: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let sent = self.sys()?.send_to(fd, data, address, flags);
        sent.map_err(|error| sys_error(error, WaitReason::Write { fd }))
    }

    fn sock_recv_from(&mut self, fd: Fd, buf: &mut [u8], flags: MsgFlags) -> SysResult<(usize, Vec<u8>)> {
        let received = self.sys()?.recv_from(fd, buf, flags);
        received
            .map(|(read, from)| (read, from.into_bytes()))
            .map_err(|error| sys_error(error, WaitReason::Read { fd }))
    }

    fn sock_shutdown(&mut self, fd: Fd, read: bool, write: bool) -> Result<(), Errno> {
        self.sys()?.shutdown(fd, read, write).map_err(errno)
    }

    fn sock_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        self.sys()?.socket_name(fd).map(String::into_bytes).map_err(errno)
    }

    fn sock_peer_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        self.sys()?.peer_name(fd).map(String::into_bytes).map_err(errno)
    }

    fn sock_set_option(&mut self, fd: Fd, level: u32, name: u32, value: &[u8]) -> Result<(), Errno> {
        self.sys()?.set_socket_option(fd, level, name, value).map_err(errno)
    }

    fn resolve_name(&mut self, host: &[u8], family: u32) -> SysResult<Vec<u8>> {
        let resolved = self.sys()?.resolve_name(host, family);
        resolved.map(String::into_bytes).map_err(|error| sys_error(error, WaitReason::Poll))
    }

    fn poll_fds(&mut self, fds: &[(Fd, u16)], deadline_ns: Option<u64>) -> SysResult<Vec<u16>> {
        let sys = self.sys()?;
        let mut ready = 0usize;
        let (mut read_fds, mut write_fds) = (Vec::new(), Vec::new());
        let revents: Vec<u16> = fds
            .iter()
            .map(|&(fd, events)| {
                let (Ok(readable), Ok(writable)) = (sys.read_ready(fd), sys.write_ready(fd)) else {
                    return POLLNVAL;
                };
                let mut revents = 0;
                if events & POLLIN != 0 {
                    if readable {
                        revents |= POLLIN
                    } else {
                        read_fds.push(fd)
                    }
                }
                if events & POLLOUT != 0 {
                    if writable {
                        revents |= POLLOUT
                    } else {
                        write_fds.push(fd)
                    }
                }
                if sys.hung_up(fd) {
                    revents |= POLLHUP;
                }
                revents
            })
            .collect();
        ready += revents.iter().filter(|revents| **revents != 0).count();
        let now_ns = sys.monotonic_ns();
        match deadline_ns {
            _ if ready > 0 => Ok(revents),
            Some(deadline) if deadline <= now_ns => Ok(revents),
            deadline => Err(park_polling(sys, &read_fds, &write_fds, deadline)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// A command with a custom section of `padding` bytes, so that it weighs what a test needs.
    fn module_of(padding: usize) -> Arc<[u8]> {
        let mut wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap_or_default();
        let name = b"pad";
        wasm.push(0);
        let mut length = 1 + name.len() + padding;
        loop {
            let byte = u8::try_from(length & 0x7f).unwrap_or(0);
            length >>= 7;
            wasm.push(if length == 0 { byte } else { byte | 0x80 });
            if length == 0 {
                break;
            }
        }
        wasm.push(3);
        wasm.extend_from_slice(name);
        wasm.resize(wasm.len() + padding, 0);
        Arc::from(wasm)
    }

    #[test]
    fn programs_found_by_identity_keep_alive_only_a_bounded_number_of_bytes_themselves() {
        let engine = WasmEngine::new(RuntimeConfig::default()).unwrap();
        let held = SharedModule::Bytes(module_of(16));
        engine.load_shared(&held, 1 << 20).unwrap();
        // Modules nobody else holds, 9 MiB each: the list keeps at most 64 MiB of them.
        for _ in 0..10 {
            engine.load_shared(&SharedModule::Bytes(module_of(9 << 20)), 1 << 20).unwrap();
        }
        let recent = engine.recent.lock().unwrap();
        let only_here: usize = recent
            .iter()
            .map(|(module, _, _)| module.holders_and_bytes())
            .filter(|(holders, _)| *holders == 1)
            .map(|(_, bytes)| bytes)
            .sum();
        assert!(only_here <= MAX_RECENT_ONLY_BYTES, "{only_here}");
        assert!(recent.iter().any(|(module, _, _)| module.same(&held)), "a module its owner holds stays");
        assert!(recent.len() <= RECENT_BY_IDENTITY);
    }

    /// An installed module whose `read` counts its calls into `reads`.
    fn installed(digest: [u8; 32], bytes: &Arc<[u8]>, reads: &Arc<AtomicU64>) -> SharedModule {
        let (bytes, reads) = (Arc::clone(bytes), Arc::clone(reads));
        let len = u64::try_from(bytes.len()).unwrap();
        SharedModule::Installed(Arc::new(InstalledModule::new(digest, len, move || {
            reads.fetch_add(1, Ordering::Relaxed);
            Ok(Arc::clone(&bytes))
        })))
    }

    /// Also wasmtime's cache cleanup, which runs at a fresh cache's first write (here, the first
    /// compile), leaves the kept code alone: when both shared a directory, it deleted it.
    #[test]
    fn an_installed_module_whose_code_is_kept_is_never_read_and_a_wrong_claim_files_nothing_under_it() {
        let dir = std::env::temp_dir().join(format!("engine-installed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = RuntimeConfig { module_cache_dir: Some(dir.clone()), ..RuntimeConfig::default() };
        let large = module_of(crate::precompiled::LARGE_MODULE_BYTES);
        let digest: [u8; 32] = sha2::Sha256::digest(&large[..]).into();
        // Compiled once from its bytes, as installed (a preparation), which keeps its code in
        // the module cache.
        WasmEngine::new(config.clone()).unwrap().install(&large, 1 << 20).unwrap();
        // A new engine (as in the next sidecar) finds that code by the stated digest.
        let engine = WasmEngine::new(config.clone()).unwrap();
        let reads = Arc::new(AtomicU64::new(0));
        let module = installed(digest, &large, &reads);
        engine.load_shared(&module, 1 << 20).unwrap();
        engine.load_shared(&module, 1 << 20).unwrap();
        assert_eq!((reads.load(Ordering::Relaxed), engine.identified_bytes()), (0, 0), "neither read nor hashed");
        // A claim that is not the bytes' digest: they are read, compiled under their own digest,
        // and nothing is filed under the claim.
        let wrong = installed([9; 32], &large, &reads);
        let fresh = WasmEngine::new(config).unwrap();
        fresh.load_shared(&wrong, 1 << 20).unwrap();
        assert_eq!(reads.load(Ordering::Relaxed), 1);
        assert!(fresh.cache.lock().unwrap().get(&(1 << 20, ModuleDigest::claimed([9; 32]))).is_none());
        assert!(fresh.cache.lock().unwrap().get(&(1 << 20, ModuleDigest::claimed(digest))).is_some());
        // Bytes of another length than the install stated are refused, and read again later.
        let short: Arc<[u8]> = Arc::from(large.get(1..).unwrap());
        let changed = SharedModule::Installed(Arc::new(InstalledModule::new([8; 32], large.len() as u64, move || {
            Ok(Arc::clone(&short))
        })));
        let refused = WasmEngine::new(RuntimeConfig::default()).unwrap().load_shared(&changed, 1 << 20);
        assert!(matches!(&refused, Err(GuestError::InvalidProgram(why)) if why.contains("changed")), "{refused:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fstflags_say_what_to_do_with_each_time() {
        let all_now = FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM_NOW;
        assert_eq!(time_changes(1, 2, all_now), Ok((TimeChange::Now, TimeChange::Now)));
        assert_eq!(time_changes(1, 2, FSTFLAGS_ATIM), Ok((TimeChange::At(1), TimeChange::Keep)));
        assert_eq!(time_changes(1, 2, FSTFLAGS_MTIM), Ok((TimeChange::Keep, TimeChange::At(2))));
        assert_eq!(time_changes(1, 2, FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW), Err(Errno::Inval));
        assert_eq!(time_changes(1, 2, 0), Ok((TimeChange::Keep, TimeChange::Keep)));
    }
}
