//! What bounds a guest process: its own limits, resolved from the VM's `limits.resources`, and
//! the sidecar-wide memory budget every guest draws from.

use std::sync::atomic::{AtomicU64, Ordering};

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
