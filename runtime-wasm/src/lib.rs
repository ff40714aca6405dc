//! Runs WebAssembly guests (WASI preview-1 commands) on wasmtime as deterministic, resumable
//! tasks, with every `wasi_snapshot_preview1` call served by a [`WasiHost`] — the kernel.
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
mod ctx;
mod host;
mod memory;
mod runtime;
mod task;
mod wasi;

pub use abi::{
    ClockId, Errno, Fd, FdStat, Filetype, Prestat, FDFLAGS_APPEND, FDFLAGS_NONBLOCK, RIGHTS_FD_FDSTAT_SET_FLAGS,
    RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_READ, RIGHTS_FD_WRITE, RIGHTS_POLL_FD_READWRITE, STDERR, STDIN, STDOUT,
};
pub use ctx::GuestCtx;
pub use host::{StdioHost, SysError, SysResult, WaitReason, WasiHost};
pub use memory::{MAX_IOVECS, MAX_IO_BYTES};
pub use runtime::{
    PoolingConfig, Program, Runtime, RuntimeConfig, RuntimeError, TaskLimits, HOST_STACK_HEADROOM_BYTES,
};
pub use task::{
    ExitReason, ExitStatus, GuestTask, HostGuard, TaskState, TaskUsage, EXIT_CANNOT_EXECUTE, EXIT_FUEL_EXHAUSTED,
    EXIT_KILLED, EXIT_TRAP,
};
pub use wasi::{add_to_linker, MODULE as WASI_MODULE};
