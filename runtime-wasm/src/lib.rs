//! Runs WebAssembly guests (WASI preview-1 commands) on wasmtime as deterministic, resumable
//! tasks, with every `wasi_snapshot_preview1` call served by a [`WasiHost`] — the kernel. The
//! imports (`imports/`, one file per import module: `wasi_snapshot_preview1`, `host_process`,
//! `host_user`, `host_fs`, `host_net`, `host_tty`) only marshal between guest memory and that
//! one host trait.
//!
//! ```text
//! Runtime::new(RuntimeConfig)      one engine (fuel metering, stack limit, allocator) + linker
//!   .compile(&wasm) -> Program     compile + link once (InstancePre)
//!     .spawn(host, TaskLimits)     one guest process -> GuestTask
//!       .poll() -> TaskState       Running | Pending(WaitReason) | Ready(ExitStatus)
//! ```
//!
//! A task is a wasmtime `call_async` future polled with a no-op waker. Fuel metering makes it
//! yield every `TaskLimits::slice_fuel` units (`Store::fuel_async_yield_interval`) and stop after
//! `max_wasm_fuel`; a host call that would block suspends the guest's fiber and the poll returns
//! `Pending` until the host changes. Nothing depends on wall-clock time or thread scheduling, so
//! two runs with the same inputs produce the same outputs in the same number of slices.

mod abi;
mod accounts;
mod ctx;
mod engine;
mod host;
mod imports;
mod memory;
// The one audited use of `unsafe`: loading this program's own compiled modules.
#[allow(unsafe_code)]
mod precompiled;
mod preinit;
mod process;
mod runtime;
mod task;

pub use abi::{
    ClockId, Dirent, Errno, Event, EventType, Fd, FdStat, Filestat, Filetype, Prestat, Subscription, SubscriptionKind,
    Whence, DIRCOOKIE_START, EVENTRWFLAGS_HANGUP, FDFLAGS_ALL, FDFLAGS_APPEND, FDFLAGS_DSYNC, FDFLAGS_NONBLOCK,
    FDFLAGS_RSYNC, FDFLAGS_SYNC, FSTFLAGS_ALL, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW,
    LOOKUPFLAGS_ALL, LOOKUPFLAGS_SYMLINK_FOLLOW, OFLAGS_ALL, OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL, OFLAGS_TRUNC,
    RIGHTS_ALL, RIGHTS_FD_ADVISE, RIGHTS_FD_ALLOCATE, RIGHTS_FD_DATASYNC, RIGHTS_FD_FDSTAT_SET_FLAGS,
    RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_FILESTAT_SET_SIZE, RIGHTS_FD_FILESTAT_SET_TIMES, RIGHTS_FD_READ,
    RIGHTS_FD_READDIR, RIGHTS_FD_SEEK, RIGHTS_FD_SYNC, RIGHTS_FD_TELL, RIGHTS_FD_WRITE, RIGHTS_PATH_CREATE_DIRECTORY,
    RIGHTS_PATH_CREATE_FILE, RIGHTS_PATH_FILESTAT_GET, RIGHTS_PATH_FILESTAT_SET_SIZE, RIGHTS_PATH_FILESTAT_SET_TIMES,
    RIGHTS_PATH_LINK_SOURCE, RIGHTS_PATH_LINK_TARGET, RIGHTS_PATH_OPEN, RIGHTS_PATH_READLINK,
    RIGHTS_PATH_REMOVE_DIRECTORY, RIGHTS_PATH_RENAME_SOURCE, RIGHTS_PATH_RENAME_TARGET, RIGHTS_PATH_SYMLINK,
    RIGHTS_PATH_UNLINK_FILE, RIGHTS_POLL_FD_READWRITE, RIGHTS_SOCK_ACCEPT, RIGHTS_SOCK_SHUTDOWN, STDERR, STDIN, STDOUT,
    SUBCLOCKFLAGS_ABSTIME,
};
pub use ctx::GuestCtx;
pub use engine::{KernelHost, WasmEngine, MAX_CACHED_PROGRAMS, MAX_CACHED_PROGRAM_BYTES, MAX_STACK_LIMIT_ENGINES};
pub use host::{FileMetadata, FsUsage, StdioHost, SysError, SysResult, WaitReason, WasiHost};
pub use imports::{add_to_linker, HOST_FS, HOST_NET, HOST_PROCESS, HOST_TTY, HOST_USER, WASI_MODULE};
pub use memory::{MAX_IOVECS, MAX_IO_BYTES, MAX_PATH_BYTES, MAX_POLL_SUBSCRIPTIONS};
pub use precompiled::ModuleDigest;
pub use preinit::{
    preinitialize_python, preinitialize_quietly, PreinitFailed, PreinitHost, PreinitPlan, Preinitialized,
    PythonSnapshot, MAX_PREINIT_FILES, PYTHON_SCRIPT_REPORT, PYTHON_STARTUP_STATEMENT,
};
pub use process::{
    decode_file_actions, encode_file_actions, open_flags_from_linux, ChildStatus, Exec, FileAction, OpenFlags,
    SignalMaskHow, Spawn, MAX_SPAWN_FILE_ACTIONS, MAX_SPAWN_FILE_ACTION_BYTES, SPAWN_FLAGS_KNOWN, SPAWN_RESETIDS,
    SPAWN_SETPGROUP, SPAWN_SETSID, SPAWN_SETSIGDEF, SPAWN_SETSIGMASK,
};
pub use runtime::{
    PoolingConfig, Program, Runtime, RuntimeConfig, RuntimeError, TaskLimits, HOST_STACK_HEADROOM_BYTES,
};
pub use task::{
    ExitReason, ExitStatus, GuestTask, HostGuard, TaskState, TaskUsage, EXIT_CANNOT_EXECUTE, EXIT_FUEL_EXHAUSTED,
    EXIT_KILLED, EXIT_TRAP,
};
