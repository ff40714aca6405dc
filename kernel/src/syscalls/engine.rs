//! The boundary between the kernel and the engines that run guest code.
//!
//! The kernel stays free of any particular engine: the embedder injects a [`GuestEngine`]
//! (`Sidecar::with_guest_engine`), e.g. `runtime-wasm`'s wasmtime engine in production or a
//! scripted engine in tests and fuzzing. An engine turns a module's bytes into a
//! [`GuestProgram`]; a program spawns [`Guest`]s; the kernel's scheduler polls each guest for
//! one slice at a time, lending it the process's [`Syscalls`] for that slice only.
//!
//! Lending by value (rather than sharing the VM behind a lock) keeps every syscall a plain
//! synchronous call into kernel state, with no `unsafe` and no locks: while a guest runs, it
//! owns its VM's state; when the slice ends, the state comes back with the poll result.

use std::fmt;
use std::sync::Arc;

pub use crate::host::module::{InstalledModule, SharedModule};
pub use crate::process::limits::{GuestLimits, MemoryBudget};
use crate::syscalls::Syscalls;

/// What one poll of a guest reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestPoll {
    /// The slice ended with the guest still runnable.
    Running,
    /// The guest waits on the kernel (an empty pipe, a sleep): it is parked until its wait
    /// condition changes.
    Blocked,
    /// The guest stopped.
    Exited(GuestExit),
}

/// How a guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExit {
    /// The exit status (`proc_exit`'s code, or the engine's code for a trap or a limit).
    pub code: i32,
    /// Why it stopped when that was not its own choice (a limit, a trap); the kernel writes it to
    /// the process's stderr.
    pub message: Option<String>,
}

/// Arguments of [`GuestProgram::spawn`].
#[derive(Debug, Clone)]
pub struct GuestSpawn {
    /// `argv`, `argv[0]` first.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub limits: GuestLimits,
    /// The sidecar-wide budget the guest's memory growth draws from.
    pub memory_budget: Arc<MemoryBudget>,
}

/// Why an engine could not load or spawn a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// The bytes are not a program this engine runs (invalid module, missing entry point,
    /// unknown imports).
    #[error("{0}")]
    InvalidProgram(String),
    /// The engine is out of a resource (instance slots, memory).
    #[error("{0}")]
    Exhausted(String),
}

/// Runs programs of one kind (WebAssembly commands). Shared by every VM of a sidecar, so its
/// caches serve them all.
pub trait GuestEngine: Send + Sync + fmt::Debug {
    /// Compiles (or finds in a cache) the program in `bytes`, for guests whose wasm stack may
    /// use `max_wasm_stack_bytes` (compiled code depends on it).
    fn load(&self, bytes: &[u8], max_wasm_stack_bytes: u64) -> Result<Arc<dyn GuestProgram>, GuestError>;

    /// [`load`](Self::load) of a shared module: an engine may find a program it loaded from
    /// this very module by its identity, without hashing or copying its bytes again (the 99 MB
    /// Python interpreter serves every Python process), and may find an installed module's
    /// program by its stated digest without reading its bytes at all.
    fn load_shared(
        &self,
        module: &SharedModule,
        max_wasm_stack_bytes: u64,
    ) -> Result<Arc<dyn GuestProgram>, GuestError> {
        self.load(&module.bytes().map_err(GuestError::InvalidProgram)?, max_wasm_stack_bytes)
    }
}

/// A loaded program, ready to be spawned cheaply any number of times.
pub trait GuestProgram: Send + Sync + fmt::Debug {
    /// A new guest running this program; nothing runs until it is polled.
    fn spawn(&self, spawn: GuestSpawn) -> Result<Box<dyn Guest>, GuestError>;
}

/// A running guest: a resumable task.
pub trait Guest: Send + fmt::Debug {
    /// Runs the guest for at most one slice with `syscalls` lent to it, and gives them back.
    /// Returning `None` (losing the VM) is an engine bug: the kernel then drops the VM as if
    /// it had been disposed, rather than serve a half-state.
    fn poll(&mut self, syscalls: Syscalls) -> (Option<Syscalls>, GuestPoll);

    /// Stops the guest for good (its instance is dropped); polls after this report an exit.
    fn kill(&mut self);
}
