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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::syscalls::Syscalls;

/// Limits a guest runs under, resolved from the VM's `limits.resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Total fuel (≈ instructions) the guest may burn before it is stopped.
    pub max_wasm_fuel: u64,
    /// Fuel per scheduling slice: how long a guest runs before others get a turn.
    pub slice_fuel: u64,
    /// Most bytes of linear memory.
    pub max_wasm_memory_bytes: u64,
    /// Most bytes of wasm stack.
    pub max_wasm_stack_bytes: u64,
}

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

/// The sidecar-wide budget of guest memory, shared by every guest of every VM: each VM's own
/// limits bound one guest, but nothing bounded all of them together (six VMs allowed 500 MiB
/// each took 3 GiB). An engine takes a guest's linear memory from it as the memory grows and
/// gives it back when the guest ends; growth beyond it is refused like growth beyond the VM's
/// limit (`memory.grow` fails, `malloc` returns NULL). The kernel refuses `CreateVm` and
/// `Execute` while it is used up, counting the VMs' filesystems too.
///
/// Atomic only so engines may keep it in `Send` state; guests run one at a time on the kernel's
/// scheduler, so the order of takes is deterministic.
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: u64,
    used_bytes: AtomicU64,
}

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> Self {
        Self { limit_bytes, used_bytes: AtomicU64::new(0) }
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Guest memory taken now.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::SeqCst)
    }

    /// Takes `bytes` if they fit under the limit; `false` (nothing taken) otherwise.
    pub fn try_take(&self, bytes: u64) -> bool {
        let limit = self.limit_bytes;
        self.used_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken earlier.
    pub fn give_back(&self, bytes: u64) {
        let _ =
            self.used_bytes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| Some(used.saturating_sub(bytes)));
    }
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
