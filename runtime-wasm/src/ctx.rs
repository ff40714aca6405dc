//! The data a guest's wasmtime `Store` carries: the host (shared with the task that owns the
//! store's future), the reason the guest is suspended, and the resource limiter.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wasmtime::ResourceLimiter;

use kernel::syscalls::engine::MemoryBudget;

use crate::host::{WaitReason, WasiHost};

/// Store data of a guest (`Store<GuestCtx<H>>`); the guest's imports (`wasi_snapshot_preview1`,
/// `host_process`, `host_user`) reach the [`WasiHost`] through it.
///
/// The store lives inside the guest's future while it runs, so the host sits behind an
/// `Arc<Mutex<…>>` shared with the owning [`GuestTask`](crate::GuestTask), which reaches it between
/// polls (to push stdin, read stdout). Both sides lock only briefly and never across a
/// suspension, and the task is polled from one thread, so the lock is never contended.
#[derive(Debug)]
pub struct GuestCtx<H> {
    pub(crate) shared: Arc<Mutex<Shared<H>>>,
    pub(crate) limiter: Limiter,
}

impl<H: WasiHost> GuestCtx<H> {
    pub(crate) fn new(shared: Arc<Mutex<Shared<H>>>, limiter: Limiter) -> GuestCtx<H> {
        GuestCtx { shared, limiter }
    }

    /// Runs `f` on the host.
    pub(crate) fn with_host<R>(&self, f: impl FnOnce(&mut H) -> R) -> R {
        f(&mut lock(&self.shared).host)
    }
}

/// State shared between a running guest's store and its task.
#[derive(Debug)]
pub(crate) struct Shared<H> {
    pub(crate) host: H,
    /// Set by a host call that would block, cleared by the task before every poll: after a poll
    /// returns `Pending`, `Some` means the guest waits on the host, `None` that its slice ended.
    pub(crate) wait: Option<WaitReason>,
    /// What the slice in progress has used, instructions and host work together.
    pub(crate) meter: SliceMeter,
}

/// A slice's use of fuel: the guest's instructions since its first host call, plus the work the
/// host did for it. Reset by the task before every poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SliceMeter {
    /// The store's fuel at the slice's first host call (instructions before it are not seen,
    /// which at most doubles one slice: the fuel interval still ends it).
    pub(crate) start_fuel: Option<u64>,
    /// Host work done in this slice.
    pub(crate) work_fuel: u64,
    /// Host work not yet deducted from the guest's budget (deducted when a slice is ended for it;
    /// deducting earlier would restart wasmtime's fuel interval and stretch the slice).
    pub(crate) unbilled_fuel: u64,
}

/// Locks the shared state. A poisoned lock (a panic while it was held) still holds consistent
/// data for our purposes: host calls never leave it half-updated across a panic point we own.
pub(crate) fn lock<H>(shared: &Mutex<Shared<H>>) -> MutexGuard<'_, Shared<H>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Enforces `max_wasm_memory_bytes` (over all linear memories of the store together) and a bound
/// on table elements. Refused growth makes `memory.grow` return -1, as the spec says; the refusal
/// is remembered so that a trap that follows is reported as the memory limit.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    pub(crate) max_memory_bytes: usize,
    pub(crate) max_table_elements: usize,
    /// Bytes of linear memory currently allocated, over all memories.
    pub(crate) memory_bytes: usize,
    pub(crate) peak_memory_bytes: usize,
    /// The last refused growth.
    pub(crate) refused: Option<Refusal>,
    /// `(memory_bytes, peak_memory_bytes)` before the last approved growth, restored if wasmtime
    /// then fails to grow the memory anyway.
    undo: (usize, usize),
    /// The sidecar-wide budget every growth also draws from (given back when the guest ends).
    budget: Option<Arc<MemoryBudget>>,
}

impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(u64::try_from(self.memory_bytes).unwrap_or(u64::MAX));
        }
    }
}

/// A memory growth that was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The total size the growth asked for.
    pub(crate) requested_bytes: usize,
    /// The limit it hit: `max_wasm_memory_bytes`, or the memory's own maximum (declared by the
    /// module or imposed by the instance pool) when that is smaller.
    pub(crate) limit_bytes: usize,
}

impl Limiter {
    pub(crate) fn new(
        max_memory_bytes: usize,
        max_table_elements: usize,
        budget: Option<Arc<MemoryBudget>>,
    ) -> Limiter {
        Limiter {
            max_memory_bytes,
            max_table_elements,
            memory_bytes: 0,
            peak_memory_bytes: 0,
            refused: None,
            undo: (0, 0),
            budget,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let others = self.memory_bytes.saturating_sub(current);
        let total = others.saturating_add(desired);
        if total > self.max_memory_bytes {
            self.refused = Some(Refusal { requested_bytes: total, limit_bytes: self.max_memory_bytes });
            return Ok(false);
        }
        if let Some(maximum) = maximum.filter(|maximum| desired > *maximum) {
            self.refused = Some(Refusal { requested_bytes: total, limit_bytes: others.saturating_add(maximum) });
            return Ok(false);
        }
        let growth = u64::try_from(total.saturating_sub(self.memory_bytes)).unwrap_or(u64::MAX);
        if let Some(budget) = &self.budget {
            if !budget.try_take(growth) {
                // The sidecar's memory is used up by all the guests together: refused like the
                // guest's own limit, reporting what this guest could have reached.
                let room = budget.limit_bytes().saturating_sub(budget.used_bytes());
                let reachable = self.memory_bytes.saturating_add(usize::try_from(room).unwrap_or(usize::MAX));
                self.refused = Some(Refusal { requested_bytes: total, limit_bytes: reachable });
                return Ok(false);
            }
        }
        self.undo = (self.memory_bytes, self.peak_memory_bytes);
        self.memory_bytes = total;
        self.peak_memory_bytes = self.peak_memory_bytes.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        let requested_bytes = self.memory_bytes;
        (self.memory_bytes, self.peak_memory_bytes) = self.undo;
        if let Some(budget) = &self.budget {
            budget.give_back(u64::try_from(requested_bytes.saturating_sub(self.memory_bytes)).unwrap_or(u64::MAX));
        }
        self.refused = Some(Refusal { requested_bytes, limit_bytes: self.memory_bytes });
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories() {
        let mut limiter = Limiter::new(100, 10, None);
        assert!(matches!(limiter.memory_growing(0, 60, None), Ok(true)));
        assert!(matches!(limiter.memory_growing(0, 30, None), Ok(true)));
        assert_eq!(limiter.memory_bytes, 90);
        assert!(matches!(limiter.memory_growing(30, 50, None), Ok(false)));
        assert_eq!(limiter.refused, Some(Refusal { requested_bytes: 110, limit_bytes: 100 }));
        assert!(matches!(limiter.memory_growing(30, 40, None), Ok(true)));
        assert_eq!((limiter.memory_bytes, limiter.peak_memory_bytes), (100, 100));
        // A memory's own maximum is a limit too.
        let mut limiter = Limiter::new(100, 10, None);
        assert!(matches!(limiter.memory_growing(0, 20, None), Ok(true)));
        assert!(matches!(limiter.memory_growing(0, 10, Some(30)), Ok(true)));
        assert!(matches!(limiter.memory_growing(10, 40, Some(30)), Ok(false)));
        assert_eq!(limiter.refused, Some(Refusal { requested_bytes: 60, limit_bytes: 50 }));
        assert_eq!(limiter.memory_bytes, 30);
        // A growth wasmtime fails after approval is rolled back.
        let mut limiter = Limiter::new(100, 10, None);
        assert!(matches!(limiter.memory_growing(0, 10, None), Ok(true)));
        assert!(matches!(limiter.memory_growing(10, 30, None), Ok(true)));
        assert!(limiter.memory_grow_failed(wasmtime::Error::msg("mmap failed")).is_ok());
        assert_eq!((limiter.memory_bytes, limiter.peak_memory_bytes), (10, 10));
        assert_eq!(limiter.refused, Some(Refusal { requested_bytes: 30, limit_bytes: 10 }));
        assert!(matches!(limiter.table_growing(0, 10, None), Ok(true)));
        assert!(matches!(limiter.table_growing(10, 11, None), Ok(false)));
    }
}
