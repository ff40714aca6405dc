//! Pre-initialisation (Wizer): run a module's start-up work once, then write its memory and
//! globals back into the module as data, so every later instance starts where that one ended.
//!
//! CPython's numpy and pandas imports take most of a second on every start; a module
//! pre-initialised with them imported starts with them in `sys.modules` (the interpreter's own
//! `run` then refreshes what must not be shared: argv, the environment, the clocks and the
//! random generators' seeds).
//!
//! ```text
//! instrument (Wizer: export every global and memory)
//!   -> compile, instantiate on this runtime's linker, against a `PreinitHost`
//!   -> call `_initialize` (when exported), then the plan's `init_func`
//!   -> snapshot: the memories as data segments, the globals' values, the init exports removed
//! ```
//!
//! The guest runs on the same syscall layer as every guest, with a fuel budget and a memory
//! bound; its host ([`PreinitHost`]) has only read-only files, a fixed clock and seeded
//! entropy, so the same module, files and plan give the same bytes out.

mod host;
mod python;

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use kernel::host::programs::SnapshotPlan;
use wasmtime::{Instance, Module, Store, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

use crate::ctx::{lock, GuestCtx, Limiter, Shared, SliceMeter};
use crate::host::WasiHost;
use crate::runtime::{describe, Runtime, RuntimeError};

pub use host::{PreinitHost, MAX_PREINIT_FILES};
pub use python::{preinitialize_python, PythonSnapshot, PYTHON_SCRIPT_REPORT, PYTHON_STARTUP_STATEMENT};

/// What a pre-initialisation runs and how much it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreinitPlan {
    /// The export called (after the module's `_initialize`, when it has one) and then
    /// removed from the result, as `_initialize` is: `() -> ()`.
    pub init_func: String,
    /// Fuel for the start-up, `_initialize` and `init_func` together.
    pub max_fuel: u64,
    /// Most linear memory the guest may grow to; the snapshot holds up to this much data.
    pub max_memory_bytes: u64,
}

/// A pre-initialised module and what its start-up cost.
#[derive(Debug)]
pub struct Preinitialized<H> {
    /// The new module's bytes.
    pub wasm: Vec<u8>,
    /// Fuel the start-up burnt.
    pub fuel_consumed: u64,
    /// The host after the start-up (its captured output, for a report).
    pub host: H,
}

/// A failed pre-initialisation, with the host when the guest got as far as running on it
/// (its captured stderr usually says why).
#[derive(Debug)]
pub struct PreinitFailed<H> {
    /// What failed.
    pub error: RuntimeError,
    /// The host, once the guest ran.
    pub host: Option<H>,
}

impl<H> From<RuntimeError> for PreinitFailed<H> {
    fn from(error: RuntimeError) -> Self {
        PreinitFailed { error, host: None }
    }
}

/// Most polls of the start-up future: it only returns `Pending` when the host would block, and
/// a [`PreinitHost`] never does, so a second is already a failure; the bound keeps a host that
/// does from spinning.
const MAX_PREINIT_POLLS: u32 = 16;

impl<H: WasiHost> Runtime<H> {
    /// Pre-initialises `wasm` by `plan` against `host`, and returns the snapshot module.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Preinit`] when the module cannot be instrumented or snapshotted, a call
    /// traps, fails or runs out of fuel, or the host would block.
    pub fn preinitialize(
        &self,
        wasm: &[u8],
        plan: &PreinitPlan,
        host: H,
    ) -> Result<Preinitialized<H>, PreinitFailed<H>> {
        let failed =
            |what: &str, error: &wasmtime::Error| RuntimeError::Preinit(format!("{what}: {}", describe(error)));
        let mut wizer = Wizer::new();
        wizer.init_func(plan.init_func.clone());
        let (context, instrumented) = wizer.instrument(wasm).map_err(|e| failed("instrumenting", &e))?;
        let module = Module::new(self.engine(), &instrumented).map_err(|e| failed("compiling", &e))?;
        let pre = self.linker().instantiate_pre(&module).map_err(|e| RuntimeError::Link(describe(&e)))?;

        let shared = Arc::new(Mutex::new(Shared { host, wait: None, meter: SliceMeter::default() }));
        let max_memory_bytes = usize::try_from(plan.max_memory_bytes).unwrap_or(usize::MAX);
        let limiter = Limiter::new(max_memory_bytes, usize::MAX, None);
        let mut store = Store::new(self.engine(), GuestCtx::new(Arc::clone(&shared), limiter));
        store.limiter(|ctx| &mut ctx.limiter);
        store.set_fuel(plan.max_fuel).map_err(|e| failed("setting fuel", &e))?;
        // The engine's epoch never advances (see `task`): this deadline is never reached.
        store.set_epoch_deadline(1);

        let ran = (|| {
            let instance =
                drive(&shared, pre.instantiate_async(&mut store)).map_err(|e| failed("instantiating", &e))?;
            drive(&shared, run_plan(&mut store, instance, plan)).map_err(|e| failed("initialising", &e))?;
            let fuel_consumed = plan.max_fuel.saturating_sub(store.get_fuel().unwrap_or(0));
            let mut state = Snapshotting { store: &mut store, instance, missing: None };
            let snapshot =
                drive(&shared, wizer.snapshot(&context, &mut state)).map_err(|e| failed("snapshotting", &e))?;
            match state.missing {
                Some(missing) => Err(RuntimeError::Preinit(format!(
                    "snapshotting: the instrumented module has no export `{missing}`"
                ))),
                None => Ok((snapshot, fuel_consumed)),
            }
        })();
        drop(store);
        let host = Arc::try_unwrap(shared)
            .ok()
            .map(|shared| shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).host);
        match (ran, host) {
            (Ok((wasm, fuel_consumed)), Some(host)) => Ok(Preinitialized { wasm, fuel_consumed, host }),
            (Ok(_), None) => Err(RuntimeError::Preinit("the host is still borrowed after the snapshot".into()).into()),
            (Err(error), host) => Err(PreinitFailed { error, host }),
        }
    }
}

/// Pre-initialises `wasm` by `plan` when its start-up needs no files and prints nothing (as
/// `node`'s: it loads its JavaScript layer), on an engine of its own with the default settings,
/// against a host with the arguments `[plan.argv0]`, empty stdin, the fixed clock and
/// `plan.seed`: the same module and plan make the same bytes. Returns the snapshot and the fuel
/// its start-up burnt.
///
/// # Errors
///
/// Why there is no snapshot: the engine, the pre-initialisation (with what the start-up wrote
/// to stderr), or a start-up that printed or left a file open, which a quiet one does not.
pub fn preinitialize_quietly(wasm: &[u8], plan: &SnapshotPlan) -> Result<(Vec<u8>, u64), String> {
    let runtime: Runtime<PreinitHost> =
        Runtime::new(crate::RuntimeConfig::default()).map_err(|error| error.to_string())?;
    let host = PreinitHost::new(crate::StdioHost::new([plan.argv0]).with_stdin(b"").with_seed(plan.seed));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let preinit = PreinitPlan {
        init_func: plan.init_func.to_owned(),
        max_fuel: plan.max_fuel,
        max_memory_bytes: plan.max_memory_bytes,
    };
    let made = runtime.preinitialize(wasm, &preinit, host).map_err(|failed| {
        let stderr = failed.host.as_ref().map(|host| text(host.stdio.stderr())).unwrap_or_default();
        format!("{}{}", failed.error, if stderr.is_empty() { String::new() } else { format!("\n{stderr}") })
    })?;
    let (stdout, stderr, open) =
        (text(made.host.stdio.stdout()), text(made.host.stdio.stderr()), made.host.open_files());
    if !stdout.is_empty() || !stderr.is_empty() || !open.is_empty() {
        return Err(format!(
            "the start-up was not quiet (stdout {stdout:?}, stderr {stderr:?}, files left open {open:?})"
        ));
    }
    Ok((made.wasm, made.fuel_consumed))
}

/// The start-up: the module's own `_initialize` when it has one (as Wizer runs it), then the
/// plan's `init_func`.
async fn run_plan<H: WasiHost>(
    store: &mut Store<GuestCtx<H>>,
    instance: Instance,
    plan: &PreinitPlan,
) -> wasmtime::Result<()> {
    if plan.init_func != "_initialize" {
        if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
            initialize.call_async(&mut *store, ()).await?;
        }
    }
    instance.get_typed_func::<(), ()>(&mut *store, &plan.init_func)?.call_async(&mut *store, ()).await?;
    Ok(())
}

/// Polls `future` to its end. Guest code yields only when its host would block.
fn drive<H, T>(shared: &Mutex<Shared<H>>, future: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_PREINIT_POLLS {
        if let Poll::Ready(result) = future.as_mut().poll(&mut cx) {
            return result;
        }
        if let Some(reason) = lock(shared).wait {
            wasmtime::bail!("the guest waited on its host ({reason:?}), which a pre-initialisation cannot answer");
        }
    }
    wasmtime::bail!("the guest did not finish in {MAX_PREINIT_POLLS} polls")
}

/// The instrumented instance as Wizer reads it.
struct Snapshotting<'a, H: 'static> {
    store: &'a mut Store<GuestCtx<H>>,
    instance: Instance,
    /// An export Wizer asked for that is not there (it then got a zero or nothing).
    missing: Option<String>,
}

impl<H: WasiHost> InstanceState for Snapshotting<'_, H> {
    async fn global_get(&mut self, name: &str, _: wasmtime_wizer::ValType) -> SnapshotVal {
        let value = self.instance.get_global(&mut *self.store, name).map(|global| global.get(&mut *self.store));
        match value {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            _ => {
                self.missing.get_or_insert_with(|| name.to_owned());
                SnapshotVal::I32(0)
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.missing.get_or_insert_with(|| name.to_owned());
                contents(&[]);
            }
        }
    }
}
