//! Processes: the requests that start and steer them (`Execute`, `WriteStdin`, `CloseStdin`,
//! `KillProcess`, `GetProcessSnapshot`, `GetSignalState`, `GetZombieTimerCount`), the events
//! they produce (`ProcessOutput`, `ProcessExited`), and the deterministic scheduler.
//!
//! # Scheduling
//! Guests are resumable tasks ([`Guest`](crate::syscalls::engine::Guest)). [`Sidecar::tick`](crate::Sidecar::tick) runs at most
//! [`MAX_SLICES_PER_TICK`] slices of [`SLICE_FUEL`] each, round-robin over the runnable
//! processes of every VM in a fixed order (VM id, then pid), resuming after the last process it
//! ran. A guest that must wait — an empty stdin or pipe, a full pipe, a sleep, `waitpid`, a
//! `proc_spawn`, a permission prompt — is parked and woken by the kernel (a `WriteStdin`, another
//! process's write or exit, the clock passing its deadline, the host's answer), never by a
//! thread. Nothing depends on real time, so the same inputs give the same slices and the same
//! events, output chunking included (output is line-buffered per channel, flushed after every
//! slice and at exit).
//!
//! # Exits, zombies and orphans
//! A host-started process's exit is a `ProcessExited` event; it stays in snapshots (`EXITED`) for
//! [`EXITED_RETENTION_MS`] and ends every process it started. A guest-started child stays a
//! zombie until its parent reaps it (`waitpid`), counted by `GetZombieTimerCount`; when a child
//! exits, its own children are re-parented to 0, and such orphans' zombies are reaped after
//! [`ZOMBIE_TTL_MS`].

pub mod cost;
pub(crate) mod fds;
pub mod limits;
pub(crate) mod pipes;
pub(crate) mod signals;
pub(crate) mod table;

pub use self::limits::{GuestLimits, MemoryBudget};
pub use self::pipes::PIPE_CAPACITY_BYTES;
pub use self::signals::{DefaultAction, SIGKILL, SIGPIPE, SIGSTOP, SIGTERM};
pub use self::table::{DEFAULT_UMASK, FIRST_PID};

/// Fuel per slice: about a millisecond of guest work, so a busy guest never holds the sidecar
/// (and the other VMs) for long.
pub const SLICE_FUEL: u64 = 1_000_000;
/// Slices one `tick` runs at most before returning to the driver (to read input, write output).
pub const MAX_SLICES_PER_TICK: usize = 16;
/// Work one `tick` does at most, in fuel: each slice counts its instruction budget plus the
/// kernel work its calls caused (see `cost`), so a tick of guests hammering the kernel returns to
/// the driver as soon as a tick of guests computing would (the driver's latency for every other
/// VM and the host is one tick).
pub const MAX_TICK_FUEL: u64 = SLICE_FUEL * MAX_SLICES_PER_TICK as u64;
/// Output a process may write within one slice before its writes block (the kernel turns it into
/// events after every slice, so this bounds the memory one slice can pin).
pub const MAX_PENDING_OUTPUT_BYTES: usize = 1 << 20;
/// Bytes `WriteStdin` may buffer ahead of the guest (the original's stdin buffer bound). A chunk
/// is taken whole or refused, so `acceptedBytes` is always the chunk's length.
pub const STDIN_BUFFER_LIMIT_BYTES: usize = 16 << 20;
/// A partial output line held back (output is line-buffered, like the original's WebAssembly
/// runner) is sent anyway once it grows past this.
pub const MAX_HELD_LINE_BYTES: usize = 64 * 1024;
/// The longest `processId` a host may choose (it is echoed in every event).
pub const MAX_PROCESS_ID_BYTES: usize = 256;
/// How long an orphaned child's zombie waits before it is reaped (the original's zombie TTL).
pub const ZOMBIE_TTL_MS: u64 = 60_000;
/// How long an exited host-started process stays in snapshots (status `EXITED`), like the
/// original. It is reaped at once (the host is its parent), so it is never a zombie.
pub const EXITED_RETENTION_MS: u64 = 2_000;
/// Exited entries one VM keeps at most; the oldest goes early beyond this, so a host that starts
/// many short processes cannot grow the table without bound.
pub const MAX_RETAINED_EXITED_PER_VM: usize = 1024;
/// The search path when neither the request nor the VM sets `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/opt/agentos/bin:/usr/bin:/bin";
/// The `driver` of host-started processes in snapshots (the original's name).
pub const EXECUTION_DRIVER: &str = "secure-exec-sidecar-execution";
/// Where command packages are found: each numbered directory's files are commands (the first
/// directory, in string order, wins a name), each file a WebAssembly binary.
pub const COMMANDS_DIR: &str = "/__secure_exec/commands";
/// Searched after `PATH`.
pub const FALLBACK_PATH_DIRS: [&str; 4] = ["/bin", "/usr/bin", "/usr/local/bin", crate::host::software::SOFTWARE_BIN];
/// Exit code of a guest that burnt its fuel budget (the original's).
pub const EXIT_FUEL_EXHAUSTED: i32 = 124;
/// Exit code of a process ended at its run deadline (`limits.python.executionTimeoutMs`): 124,
/// as `timeout(1)` gives, and the same as a fuel limit's.
pub const EXIT_TIMED_OUT: i32 = 124;
/// The first bytes of every WebAssembly binary module.
pub(crate) const WASM_MAGIC: &[u8] = b"\0asm";

/// Standard descriptors.
pub const STDIN_FD: u32 = 0;
pub const STDOUT_FD: u32 = 1;
pub const STDERR_FD: u32 = 2;
/// The preopened root directory.
pub const ROOT_FD: u32 = 3;

/// An output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}
