//! What a guest pays, in fuel, for the work the kernel does on its behalf.
//!
//! Fuel counts a guest's own instructions. Without these charges a guest could make the kernel
//! work for free: fifty one-byte writes to a 16 MiB file on a mount, or two hundred listings of
//! a 4,000-entry directory, each "one call", held the single-threaded sidecar (and every other
//! VM) for seconds. So every system call adds what it cost the kernel to the calling process's
//! bill ([`Syscalls::take_work_fuel`](crate::syscalls::Syscalls::take_work_fuel)); the engine
//! deducts the bill from the guest's fuel budget and ends the slice once instructions plus kernel
//! work reach [`SLICE_FUEL`](crate::process::SLICE_FUEL). A guest hammering the kernel therefore yields as
//! often as one computing, and burns its budget as fast.
//!
//! The prices are in fuel (about one wasm instruction, about a nanosecond on this class of
//! machine) and err on the expensive side: over-charging only makes a hostile guest slower.

/// Every call: argument checks, the descriptor table, a permission decision, a path walk in the
/// VM's own filesystem (about a microsecond).
pub const SYSCALL_FUEL: u64 = 1_000;
/// Each byte the kernel copies in or out (file content, pipe data, output), including the
/// filesystem's own bookkeeping for it.
pub const FUEL_PER_BYTE: u64 = 1;
/// Each operation on a `host_dir` mount: a real system call resolved beneath the mount's handle
/// (several microseconds, more on a cold cache).
pub const FUEL_PER_HOST_CALL: u64 = 10_000;
/// Each directory entry listed (a name sorted, merged with mount points, and later stat'ed).
pub const FUEL_PER_DIR_ENTRY: u64 = 500;

const _: () = assert!(FUEL_PER_HOST_CALL > SYSCALL_FUEL, "host operations cost more than in-memory ones");
const _: () = assert!(SYSCALL_FUEL < crate::process::SLICE_FUEL / 100, "a slice holds many cheap calls");

/// The fuel for copying `bytes` bytes.
pub fn bytes_fuel(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX).saturating_mul(FUEL_PER_BYTE)
}
