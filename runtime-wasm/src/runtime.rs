//! The engine ([`Runtime`]), compiled commands ([`Program`]) and the limits a guest runs under.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use kernel::syscalls::engine::MemoryBudget;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

use crate::ctx::GuestCtx;
use crate::host::WasiHost;
use crate::imports;
use crate::precompiled::{ModuleDigest, Shelf};
use crate::task::GuestTask;

/// Stack reserved for host code on a guest's fiber, on top of `max_wasm_stack_bytes`.
pub const HOST_STACK_HEADROOM_BYTES: usize = 1 << 20;

/// wasmtime's own cache, inside the module cache directory: a directory of its own, apart from
/// `precompiled/` (see [`RuntimeConfig::module_cache_dir`]).
pub const WASMTIME_CACHE_DIR: &str = "wasmtime";

/// wasmtime's cache in `module_cache_dir`, kept at the compression it was written with.
///
/// By default wasmtime's cache thread recompresses an entry at zstd level 20 once it has been
/// loaded 256 times: a minute of a whole core for a module the size of `node`, outside any
/// guest's accounting, and lost when the process ends first (a sidecar, a test, a simulator
/// worker), so the next process to load it 30 minutes later starts again. Measured on the
/// simulator: runs where it happened were 30 to 60% slower (362 to 669x against 712 to 876x).
/// Level 20 saves disk, not load time, so entries stay at the baseline level.
fn wasmtime_cache(module_cache_dir: &std::path::Path) -> Result<Cache, RuntimeError> {
    let mut cache_config = CacheConfig::new();
    cache_config.with_directory(module_cache_dir.join(WASMTIME_CACHE_DIR));
    let baseline = cache_config.baseline_compression_level();
    cache_config.with_optimized_compression_level(baseline);
    Cache::new(cache_config).map_err(|e| RuntimeError::Engine(describe(&e)))
}

/// Engine-wide settings: they shape compiled code, so every guest of a runtime shares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Most stack wasm code may use (`Config::max_wasm_stack`); deeper recursion traps with
    /// `ExitReason::StackOverflow`. Each guest's fiber gets this plus
    /// [`HOST_STACK_HEADROOM_BYTES`].
    pub max_wasm_stack_bytes: usize,
    /// Preallocate instance slots (wasmtime's pooling allocator) instead of allocating per
    /// instantiation.
    pub pooling: Option<PoolingConfig>,
    /// Keep compiled modules in this directory (wasmtime's own cache in
    /// [`WASMTIME_CACHE_DIR`], keyed by the module's content hash and the engine's
    /// configuration; large modules' code uncompressed in `precompiled/`), so a module compiled
    /// once on a machine loads in milliseconds by every later sidecar, test and CI run. `None`:
    /// compile every time.
    pub module_cache_dir: Option<PathBuf>,
    /// Compile a module's functions on worker threads (all cores) rather than on the caller's
    /// thread alone. The compiled code is the same either way.
    pub parallel_compilation: bool,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            max_wasm_stack_bytes: 1 << 20,
            pooling: None,
            module_cache_dir: None,
            parallel_compilation: true,
        }
    }
}

/// Pooling-allocator sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolingConfig {
    /// Guests that may be alive at once; one more fails to start (`InstantiationFailed`).
    pub max_instances: u32,
    /// Largest linear memory a pooled slot holds (a bound on top of each task's
    /// `max_wasm_memory_bytes`).
    pub max_memory_bytes: usize,
}

/// Per-guest limits, fixed when the guest is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Total fuel (≈ wasm instructions) the guest may burn; then it stops with
    /// `ExitReason::FuelExhausted`.
    pub max_wasm_fuel: u64,
    /// Fuel per scheduling slice: `GuestTask::poll` runs the guest until it has burnt this much
    /// (or blocks, or exits). Must be at least 1.
    pub slice_fuel: u64,
    /// Most bytes of linear memory, over all the guest's memories; growth beyond it is refused
    /// (`memory.grow` returns -1).
    pub max_wasm_memory_bytes: u64,
    /// Most elements of any one table.
    pub max_table_elements: u32,
}

impl Default for TaskLimits {
    fn default() -> TaskLimits {
        TaskLimits {
            max_wasm_fuel: 1_000_000_000,
            slice_fuel: 100_000,
            max_wasm_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
        }
    }
}

/// Why the runtime could not be built, a module not compiled, or a guest not spawned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The engine configuration was rejected.
    #[error("invalid engine configuration: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly module (or use a disabled feature).
    #[error("cannot compile module: {0}")]
    Compile(String),
    /// The module imports something the runtime does not provide.
    #[error("cannot link module: {0}")]
    Link(String),
    /// The module exports neither a command's `_start: () -> ()` nor a reactor's
    /// `run: () -> i32`.
    #[error("module is not a WASI command: no `_start: () -> ()` export (nor a reactor's `run: () -> i32`)")]
    NotACommand,
    /// The task limits are inconsistent.
    #[error("invalid task limits: {0}")]
    Limits(&'static str),
    /// A pre-initialisation failed (see [`Runtime::preinitialize`]).
    #[error("cannot pre-initialise module: {0}")]
    Preinit(String),
}

/// A wasmtime engine configured for deterministic guests, and the linker holding the syscall
/// layer. Compile modules with [`Runtime::compile`]; build one per host type and share it.
pub struct Runtime<H: WasiHost> {
    engine: Engine,
    linker: Linker<GuestCtx<H>>,
    config: RuntimeConfig,
}

impl<H: WasiHost> fmt::Debug for Runtime<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<H: WasiHost> Runtime<H> {
    /// Builds the engine: fuel metering (for budgets and slices), deterministic floating point
    /// and relaxed SIMD, the configured stack limit and allocator.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Engine`] if wasmtime rejects the configuration (a zero stack, or one the
    /// platform cannot provide).
    pub fn new(config: RuntimeConfig) -> Result<Runtime<H>, RuntimeError> {
        let async_stack_bytes = config
            .max_wasm_stack_bytes
            .checked_add(HOST_STACK_HEADROOM_BYTES)
            .ok_or(RuntimeError::Engine("max_wasm_stack_bytes is too large".into()))?;
        let mut wasmtime_config = Config::new();
        wasmtime_config
            .consume_fuel(true)
            // Never advanced: a task sets its epoch deadline to "now" to end a slice early, when
            // host work has used it up (see `task`), so interruption stays deterministic.
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .max_wasm_stack(config.max_wasm_stack_bytes)
            .async_stack_size(async_stack_bytes)
            .parallel_compilation(config.parallel_compilation);
        if let Some(pooling) = config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(pooling.max_instances)
                .total_memories(pooling.max_instances)
                .total_tables(pooling.max_instances)
                .total_stacks(pooling.max_instances)
                .max_memory_size(pooling.max_memory_bytes);
            wasmtime_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        if let Some(dir) = &config.module_cache_dir {
            // wasmtime checks what it loads against the module's hash and the engine's
            // settings, and recompiles (and rewrites) an entry that does not match. Its cache
            // has a directory of its own: its cleanup deletes every file there it did not write,
            // which, when it shared the module cache's, took the large modules' kept code
            // (`precompiled/`) with it: the next sidecar compiled the interpreter again.
            wasmtime_config.cache(Some(wasmtime_cache(dir)?));
        }
        let engine = Engine::new(&wasmtime_config).map_err(|e| RuntimeError::Engine(describe(&e)))?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker).map_err(|e| RuntimeError::Engine(describe(&e)))?;
        Ok(Runtime { engine, linker, config })
    }

    /// The engine configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<GuestCtx<H>> {
        &self.linker
    }

    /// Compiles a WASI command module (binary format) and links it against the syscall layer,
    /// once; spawn any number of guests from the result.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Compile`] for invalid bytes, [`RuntimeError::NotACommand`] without a
    /// `_start` export, [`RuntimeError::Link`] for imports the runtime does not provide.
    pub fn compile(&self, wasm: &[u8]) -> Result<Program<H>, RuntimeError> {
        self.compile_known(wasm, None, false).map(|(program, _)| program)
    }

    /// [`Runtime::compile`] of a module whose digest the caller has already computed (the
    /// program cache looks a module up by it first).
    ///
    /// # Errors
    ///
    /// As [`Runtime::compile`].
    pub fn compile_digested(&self, wasm: &[u8], digest: &ModuleDigest) -> Result<Program<H>, RuntimeError> {
        self.compile_known(wasm, Some(digest), false).map(|(program, _)| program)
    }

    /// [`Runtime::compile`] of a module whose owner states its digest (an `InstalledModule`):
    /// the module cache's code for it is used as is; anything compiled is compiled from `wasm`
    /// under the digest computed from it. Returns the program and the digest it is known by
    /// (`claimed`, unless that was not `wasm`'s).
    ///
    /// # Errors
    ///
    /// As [`Runtime::compile`].
    pub fn compile_claimed(
        &self,
        wasm: &[u8],
        claimed: &ModuleDigest,
    ) -> Result<(Program<H>, ModuleDigest), RuntimeError> {
        let (program, known) = self.compile_known(wasm, Some(claimed), true)?;
        Ok((program, known.unwrap_or_else(|| ModuleDigest::of(wasm))))
    }

    /// Compiles `wasm`; its digest is computed here only if the module cache needs it and the
    /// caller did not give it (or only claimed it). Returns the digest the module cache knows
    /// the code by, when it was asked.
    fn compile_known(
        &self,
        wasm: &[u8],
        digest: Option<&ModuleDigest>,
        claimed: bool,
    ) -> Result<(Program<H>, Option<ModuleDigest>), RuntimeError> {
        let shelf = match (claimed, wasm.len() >= crate::precompiled::LARGE_MODULE_BYTES) {
            (true, _) => Some(Shelf::Installed),
            (false, true) => Some(Shelf::Run),
            (false, false) => None,
        };
        let (module, known) = match (&self.config.module_cache_dir, shelf) {
            (Some(dir), Some(shelf)) => {
                let digest = digest.copied().unwrap_or_else(|| ModuleDigest::of(wasm));
                crate::precompiled::load_or_compile(&self.engine, dir, wasm, &digest, shelf)
                    .map(|(module, known)| (module, Some(known)))
            }
            _ => Module::new(&self.engine, wasm).map(|module| (module, None)),
        }
        .map_err(|e| RuntimeError::Compile(describe(&e)))?;
        Ok((self.program_of(&module)?, known))
    }

    /// The program of the installed module whose digest is `digest`, when the module cache
    /// keeps its code: found without its bytes. A kept module that does not link as a command
    /// is not used (compiling it says why).
    pub fn load_kept(&self, digest: &ModuleDigest) -> Option<Program<H>> {
        let dir = self.config.module_cache_dir.as_ref()?;
        let module = crate::precompiled::load(&self.engine, dir, digest, Shelf::Installed)?;
        self.program_of(&module).ok()
    }

    /// `module` ready to start: its entry point found and its imports linked.
    fn program_of(&self, module: &Module) -> Result<Program<H>, RuntimeError> {
        let entry = Entry::of(module).ok_or(RuntimeError::NotACommand)?;
        let pre = self.linker.instantiate_pre(module).map_err(|e| RuntimeError::Link(describe(&e)))?;
        Ok(Program { pre, entry, max_wasm_stack_bytes: self.config.max_wasm_stack_bytes })
    }
}

/// How a program is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A WASI command: `_start: () -> ()`; its status is 0 unless it calls `proc_exit`.
    Command,
    /// A WASI reactor driven as a program (CPython's `python.wasm`): `_initialize: () -> ()`
    /// when it exports one, then `run: () -> i32`, whose result is its status.
    Reactor { initialize: bool },
}

impl Entry {
    /// What `module` exports to be started by, a command's `_start` first.
    fn of(module: &Module) -> Option<Entry> {
        let func = |name: &str, results: usize| match module.get_export(name) {
            Some(ExternType::Func(ty)) => {
                ty.params().len() == 0
                    && ty.results().len() == results
                    && ty.results().all(|result| matches!(result, wasmtime::ValType::I32))
            }
            _ => false,
        };
        if func("_start", 0) {
            return Some(Entry::Command);
        }
        func("run", 1).then_some(Entry::Reactor { initialize: func("_initialize", 0) })
    }
}

/// A compiled, linked command, ready to be instantiated (cheaply) for each guest process.
pub struct Program<H: WasiHost> {
    pre: InstancePre<GuestCtx<H>>,
    entry: Entry,
    max_wasm_stack_bytes: usize,
}

impl<H: WasiHost> Program<H> {
    /// The size of its compiled code and data in memory (what a cache of programs holds).
    pub fn code_bytes(&self) -> usize {
        let image = self.pre.module().image_range();
        (image.end as usize).saturating_sub(image.start as usize)
    }
}

impl<H: WasiHost> Clone for Program<H> {
    fn clone(&self) -> Program<H> {
        Program { pre: self.pre.clone(), entry: self.entry, max_wasm_stack_bytes: self.max_wasm_stack_bytes }
    }
}

impl<H: WasiHost> fmt::Debug for Program<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program").field("module", &self.pre.module().name()).finish_non_exhaustive()
    }
}

impl<H: WasiHost> Program<H> {
    /// Creates a guest process running this program (its `_start`, or a reactor's
    /// `_initialize` and `run`) against `host`. Nothing runs until the task is polled.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Limits`] if `limits.slice_fuel` is 0.
    pub fn spawn(&self, host: H, limits: TaskLimits) -> Result<GuestTask<H>, RuntimeError> {
        GuestTask::new(self.pre.clone(), self.entry, host, limits, self.max_wasm_stack_bytes, None)
    }

    /// Like [`spawn`](Self::spawn), the guest's memory also drawn from `budget`, shared with
    /// other guests.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Limits`] if `limits.slice_fuel` is 0.
    pub fn spawn_in_budget(
        &self,
        host: H,
        limits: TaskLimits,
        budget: Arc<MemoryBudget>,
    ) -> Result<GuestTask<H>, RuntimeError> {
        GuestTask::new(self.pre.clone(), self.entry, host, limits, self.max_wasm_stack_bytes, Some(budget))
    }
}

/// An error and its causes on one line.
pub(crate) fn describe(error: &wasmtime::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// How long the cache thread may take to write a stats file (it normally takes
    /// microseconds; this only bounds a broken run).
    const CACHE_THREAD_WAIT: Duration = Duration::from_secs(20);

    /// The file where wasmtime's cache thread keeps `entry`'s statistics.
    fn stats_of(entry: &Path) -> PathBuf {
        entry.with_file_name(format!("{}.stats", entry.file_name().unwrap().to_str().unwrap()))
    }

    /// The statistics wasmtime's cache thread keeps beside `entry`, once they read `usages`.
    fn stats_when(entry: &Path, usages: u64) -> String {
        let stats = stats_of(entry);
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&stats).unwrap_or_default();
            if text.contains(&format!("usages = {usages}\n")) {
                return text;
            }
            assert!(started.elapsed() < CACHE_THREAD_WAIT, "stats never reached {usages} usages: {text:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_much_loaded_cache_entry_is_never_recompressed_in_the_background() {
        let dir = std::env::temp_dir().join(format!("wasmtime-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::new();
        config.cache(Some(wasmtime_cache(&dir).unwrap()));
        let engine = Engine::new(&config).unwrap();
        let wasm = wat::parse_str("(module (func (export \"f\") (result i32) i32.const 7))").unwrap();
        Module::new(&engine, &wasm).unwrap();
        let versions = std::fs::read_dir(dir.join(WASMTIME_CACHE_DIR).join("modules")).unwrap();
        let version = versions.map(|entry| entry.unwrap().path()).next().unwrap();
        let entry = std::fs::read_dir(&version)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_none())
            .unwrap();
        let stored = std::fs::read(&entry).unwrap();
        let fresh = stats_when(&entry, 1);
        // Far past the 256 loads after which wasmtime recompresses by default. The cache
        // thread handles loads in order, so once the second load is counted, a recompression
        // the first one started has finished.
        std::fs::write(stats_of(&entry), fresh.replace("usages = 1\n", "usages = 100000\n")).unwrap();
        Module::new(&engine, &wasm).unwrap();
        Module::new(&engine, &wasm).unwrap();
        let loaded = stats_when(&entry, 100_002);
        assert_eq!(loaded, fresh.replace("usages = 1\n", "usages = 100002\n"));
        assert_eq!(std::fs::read(&entry).unwrap(), stored);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
