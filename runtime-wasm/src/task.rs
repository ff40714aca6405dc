//! A guest process as a resumable task: a wasmtime `call_async` future that the kernel's
//! executor polls, one fuel slice at a time, with a no-op waker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use kernel::syscalls::engine::MemoryBudget;
use wasmtime::{CallHook, InstancePre, Store, StoreContextMut, Trap};

use crate::abi::STDERR;
use crate::ctx::{lock, GuestCtx, Limiter, Shared, SliceMeter};
use crate::host::{WaitReason, WasiHost};
use crate::imports::GuestExit;
use crate::runtime::{describe, Entry, RuntimeError, TaskLimits};

/// Exit code of a guest stopped by a trap or a refused memory growth (128 + SIGABRT).
pub const EXIT_TRAP: u32 = 134;
/// Exit code of a killed guest (128 + SIGKILL).
pub const EXIT_KILLED: u32 = 137;
/// Exit code of a guest that burnt its whole fuel budget: 124, like `timeout(1)` and the
/// original sidecar's fuel budget.
pub const EXIT_FUEL_EXHAUSTED: u32 = 124;
/// Exit code of a guest that could not be instantiated (the shell's "cannot execute").
pub const EXIT_CANNOT_EXECUTE: u32 = 126;

/// Why a guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// `_start` returned (code 0) or the guest called `proc_exit(code)`.
    Exited,
    /// The guest burnt `max_wasm_fuel`.
    FuelExhausted {
        /// The budget.
        max_wasm_fuel: u64,
    },
    /// The guest trapped after a memory growth was refused (or could not even allocate its
    /// initial memory): by `max_wasm_memory_bytes`, or by a smaller maximum of the memory itself
    /// (declared by the module, or the instance pool's slot size).
    MemoryLimit {
        /// The limit that refused it: total linear memory bytes allowed.
        limit_bytes: u64,
        /// The total linear memory size the refused growth asked for.
        requested_bytes: u64,
    },
    /// The guest's wasm stack exceeded `max_wasm_stack_bytes`.
    StackOverflow {
        /// The limit.
        max_wasm_stack_bytes: u64,
    },
    /// Any other trap (`unreachable`, out-of-bounds access, division by zero, …).
    Trap {
        /// Wasmtime's description.
        message: String,
    },
    /// The guest could not be instantiated (e.g. the instance pool is exhausted).
    InstantiationFailed {
        /// Wasmtime's description.
        message: String,
    },
    /// [`GuestTask::kill`] was called.
    Killed,
}

/// How a guest ended: a process exit code and the reason behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code (the guest's own for [`ExitReason::Exited`], else one of the `EXIT_*`).
    pub code: u32,
    /// Why the guest stopped.
    pub reason: ExitReason,
}

impl ExitStatus {
    fn exited(code: u32) -> ExitStatus {
        ExitStatus { code, reason: ExitReason::Exited }
    }

    /// Whether the guest exited on its own with code 0.
    pub fn success(&self) -> bool {
        self.code == 0 && self.reason == ExitReason::Exited
    }

    /// The line the runtime appends to the guest's stderr when it stops it, if it did.
    pub fn message(&self) -> Option<String> {
        let what = match &self.reason {
            ExitReason::Exited | ExitReason::Killed => return None,
            ExitReason::FuelExhausted { max_wasm_fuel } => {
                format!("fuel budget exhausted (max_wasm_fuel = {max_wasm_fuel})")
            }
            ExitReason::MemoryLimit { limit_bytes, requested_bytes } => {
                format!("memory limit exceeded: growth to {requested_bytes} bytes refused (limit {limit_bytes} bytes)")
            }
            ExitReason::StackOverflow { max_wasm_stack_bytes } => {
                format!("stack overflow (max_wasm_stack_bytes = {max_wasm_stack_bytes})")
            }
            ExitReason::Trap { message } => format!("trap: {message}"),
            ExitReason::InstantiationFailed { message } => format!("cannot instantiate: {message}"),
        };
        Some(format!("wasm guest terminated: {what}\n"))
    }
}

/// What one poll of a guest found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// The guest used up its slice and wants to run again.
    Running,
    /// The guest waits on the host; poll again after the host changed (e.g. pushed stdin).
    /// Polling earlier is harmless: the blocked call is retried and the task stays `Pending`.
    Pending(WaitReason),
    /// The guest has stopped; further polls return the same status.
    Ready(ExitStatus),
}

/// Counters of a guest's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskUsage {
    /// Polls that ran the guest (each at most one slice of fuel).
    pub slices: u64,
    /// Fuel burnt; known once the guest has stopped (0 before).
    pub fuel_consumed: u64,
    /// Largest total linear memory size reached, in bytes; known once the guest has stopped.
    pub peak_memory_bytes: u64,
}

enum Failure {
    Instantiate(wasmtime::Error),
    Run(wasmtime::Error),
}

type Outcome<H> = (Store<GuestCtx<H>>, Result<u32, Failure>);
type RunFuture<H> = Pin<Box<dyn Future<Output = Outcome<H>> + Send>>;

/// A guest process: instantiation plus `_start`, run as a future on a wasmtime fiber.
///
/// [`GuestTask::poll`] runs it for one slice of `TaskLimits::slice_fuel` fuel. A host call that
/// would block suspends it ([`TaskState::Pending`]) until a later poll finds the call can
/// complete. Interleaving depends only on fuel and host answers, never on time or threads.
pub struct GuestTask<H: WasiHost> {
    shared: Arc<Mutex<Shared<H>>>,
    run: Option<RunFuture<H>>,
    status: Option<ExitStatus>,
    usage: TaskUsage,
    limits: TaskLimits,
    max_wasm_stack_bytes: usize,
}

impl<H: WasiHost> fmt::Debug for GuestTask<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestTask")
            .field("status", &self.status)
            .field("usage", &self.usage)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<H: WasiHost> GuestTask<H> {
    pub(crate) fn new(
        pre: InstancePre<GuestCtx<H>>,
        entry: Entry,
        host: H,
        limits: TaskLimits,
        max_wasm_stack_bytes: usize,
        budget: Option<Arc<MemoryBudget>>,
    ) -> Result<GuestTask<H>, RuntimeError> {
        if limits.slice_fuel == 0 {
            return Err(RuntimeError::Limits("slice_fuel must be at least 1"));
        }
        let shared = Arc::new(Mutex::new(Shared { host, wait: None, meter: SliceMeter::default() }));
        let limiter = Limiter::new(
            usize::try_from(limits.max_wasm_memory_bytes).unwrap_or(usize::MAX),
            usize::try_from(limits.max_table_elements).unwrap_or(usize::MAX),
            budget,
        );
        let mut store = Store::new(pre.module().engine(), GuestCtx::new(Arc::clone(&shared), limiter));
        store.limiter(|ctx| &mut ctx.limiter);
        store.set_fuel(limits.max_wasm_fuel).map_err(|e| RuntimeError::Engine(describe(&e)))?;
        store.fuel_async_yield_interval(Some(limits.slice_fuel)).map_err(|e| RuntimeError::Engine(describe(&e)))?;
        // The engine's epoch never advances: the deadline is only ever reached when `bill` sets
        // it to "now" to end a slice that host work has used up.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let slice_fuel = limits.slice_fuel;
        store.call_hook(move |mut store, hook| {
            if matches!(hook, CallHook::ReturningFromHost) {
                bill(&mut store, slice_fuel)?;
            }
            Ok(())
        });
        let run: RunFuture<H> = Box::pin(async move {
            let result = start(&pre, entry, &mut store).await;
            (store, result)
        });
        Ok(GuestTask {
            shared,
            run: Some(run),
            status: None,
            usage: TaskUsage::default(),
            limits,
            max_wasm_stack_bytes,
        })
    }

    /// Runs the guest for one slice, until it blocks on the host, or until it stops.
    pub fn poll(&mut self) -> TaskState {
        if let Some(status) = &self.status {
            return TaskState::Ready(status.clone());
        }
        let Some(run) = self.run.as_mut() else {
            return TaskState::Ready(self.finish(ExitStatus { code: EXIT_KILLED, reason: ExitReason::Killed }));
        };
        {
            let mut shared = lock(&self.shared);
            shared.wait = None;
            shared.meter.start_fuel = None;
            shared.meter.work_fuel = 0;
        }
        self.usage.slices = self.usage.slices.saturating_add(1);
        let mut cx = Context::from_waker(Waker::noop());
        match run.as_mut().poll(&mut cx) {
            Poll::Pending => match lock(&self.shared).wait {
                Some(reason) => TaskState::Pending(reason),
                None => TaskState::Running,
            },
            Poll::Ready((store, result)) => {
                self.run = None;
                let consumed = self.limits.max_wasm_fuel.saturating_sub(store.get_fuel().unwrap_or(0));
                let limiter = &store.data().limiter;
                self.usage.fuel_consumed = consumed;
                self.usage.peak_memory_bytes = u64::try_from(limiter.peak_memory_bytes).unwrap_or(u64::MAX);
                let status = self.classify(limiter, result);
                drop(store);
                TaskState::Ready(self.finish(status))
            }
        }
    }

    /// Runs slices until the guest stops or blocks; `max_slices` bounds the work.
    pub fn run_until_blocked(&mut self, max_slices: u64) -> TaskState {
        let mut state = self.poll();
        for _ in 1..max_slices {
            if state != TaskState::Running {
                break;
            }
            state = self.poll();
        }
        state
    }

    /// Stops the guest now (dropping its instance); its status becomes [`ExitReason::Killed`].
    /// No effect on a guest that has already stopped.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = &self.status {
            return status.clone();
        }
        self.run = None;
        self.finish(ExitStatus { code: EXIT_KILLED, reason: ExitReason::Killed })
    }

    /// The exit status, once the guest has stopped.
    pub fn status(&self) -> Option<&ExitStatus> {
        self.status.as_ref()
    }

    /// Resource counters so far.
    pub fn usage(&self) -> TaskUsage {
        self.usage
    }

    /// The limits the guest runs under.
    pub fn limits(&self) -> &TaskLimits {
        &self.limits
    }

    /// The host, between polls (to feed stdin, collect output, move the clock). Hold the guard
    /// only briefly; the guest cannot run while it is held.
    pub fn host(&self) -> HostGuard<'_, H> {
        HostGuard(lock(&self.shared))
    }

    fn finish(&mut self, status: ExitStatus) -> ExitStatus {
        if let Some(message) = status.message() {
            // Best effort: a closed or full stderr just loses the message; the status keeps it.
            let _ = lock(&self.shared).host.fd_write(STDERR, message.as_bytes());
        }
        self.status = Some(status.clone());
        status
    }

    fn classify(&self, limiter: &Limiter, result: Result<u32, Failure>) -> ExitStatus {
        let (error, instantiating) = match result {
            Ok(code) => return ExitStatus::exited(code),
            Err(Failure::Instantiate(error)) => (error, true),
            Err(Failure::Run(error)) => (error, false),
        };
        if let Some(GuestExit(code)) = error.downcast_ref::<GuestExit>() {
            return ExitStatus::exited(*code);
        }
        let reason = match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => ExitReason::FuelExhausted { max_wasm_fuel: self.limits.max_wasm_fuel },
            Some(Trap::StackOverflow) => ExitReason::StackOverflow {
                max_wasm_stack_bytes: u64::try_from(self.max_wasm_stack_bytes).unwrap_or(u64::MAX),
            },
            _ => match limiter.refused {
                Some(refusal) => ExitReason::MemoryLimit {
                    limit_bytes: u64::try_from(refusal.limit_bytes).unwrap_or(u64::MAX),
                    requested_bytes: u64::try_from(refusal.requested_bytes).unwrap_or(u64::MAX),
                },
                None if instantiating => ExitReason::InstantiationFailed { message: describe(&error) },
                None => ExitReason::Trap { message: describe(&error) },
            },
        };
        let code = match reason {
            ExitReason::FuelExhausted { .. } => EXIT_FUEL_EXHAUSTED,
            ExitReason::InstantiationFailed { .. } => EXIT_CANNOT_EXECUTE,
            _ => EXIT_TRAP,
        };
        ExitStatus { code, reason }
    }
}

/// After every host call: adds the host's work to the slice's meter and, once instructions plus
/// host work reach `slice_fuel`, deducts the host work from the guest's fuel budget and ends the
/// slice at the guest's next epoch check (a loop back-edge or a call). A guest whose budget
/// cannot pay stops with `FuelExhausted` at its next instruction.
fn bill<H: WasiHost>(store: &mut StoreContextMut<'_, GuestCtx<H>>, slice_fuel: u64) -> wasmtime::Result<()> {
    let fuel = store.get_fuel()?;
    let unbilled = {
        let mut shared = lock(&store.data().shared);
        let work = shared.host.take_work_fuel();
        let meter = &mut shared.meter;
        let start = *meter.start_fuel.get_or_insert(fuel);
        meter.work_fuel = meter.work_fuel.saturating_add(work);
        meter.unbilled_fuel = meter.unbilled_fuel.saturating_add(work);
        if start.saturating_sub(fuel).saturating_add(meter.work_fuel) < slice_fuel {
            return Ok(());
        }
        let unbilled = std::mem::take(&mut meter.unbilled_fuel);
        meter.start_fuel = None;
        meter.work_fuel = 0;
        unbilled
    };
    store.set_fuel(fuel.saturating_sub(unbilled))?;
    store.set_epoch_deadline(0);
    Ok(())
}

/// Instantiates the program and runs it to its end: its status (a command's is 0 when
/// `_start` returns; a reactor's is what `run` returns).
async fn start<H: WasiHost>(
    pre: &InstancePre<GuestCtx<H>>,
    entry: Entry,
    store: &mut Store<GuestCtx<H>>,
) -> Result<u32, Failure> {
    let instance = pre.instantiate_async(&mut *store).await.map_err(Failure::Instantiate)?;
    match entry {
        Entry::Command => {
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start").map_err(Failure::Instantiate)?;
            start.call_async(&mut *store, ()).await.map_err(Failure::Run)?;
            Ok(0)
        }
        Entry::Reactor { initialize } => {
            if initialize {
                let init =
                    instance.get_typed_func::<(), ()>(&mut *store, "_initialize").map_err(Failure::Instantiate)?;
                init.call_async(&mut *store, ()).await.map_err(Failure::Run)?;
            }
            let run = instance.get_typed_func::<(), i32>(&mut *store, "run").map_err(Failure::Instantiate)?;
            let status = run.call_async(&mut *store, ()).await.map_err(Failure::Run)?;
            // A status is a byte, as `exit()` makes it.
            Ok(status.to_le_bytes().first().copied().map_or(0, u32::from))
        }
    }
}

/// Exclusive access to a task's host between polls.
#[derive(Debug)]
pub struct HostGuard<'a, H>(MutexGuard<'a, Shared<H>>);

impl<H> std::ops::Deref for HostGuard<'_, H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.0.host
    }
}

impl<H> std::ops::DerefMut for HostGuard<'_, H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.0.host
    }
}
