//! `secure-exec-sidecar prepare-python`: makes this machine's own Python interpreters, once.
//!
//! CPython's `python.wasm` runs a script of ours at its start-up on the runtime's
//! pre-initialisation (`runtime_wasm::preinitialize_python`), and the snapshot is installed
//! beside the install, which the sidecar then prefers (see `transport::python`):
//! - the base interpreter ([`BASE_SCRIPT`](transport::python::BASE_SCRIPT): the install's own
//!   start-up imports and the quick exit), which runs every program the next one does not;
//! - the preloaded interpreter ([`PRELOAD_SCRIPT`](transport::python::PRELOAD_SCRIPT): numpy and
//!   pandas imported), which runs the programs that name them.
//!
//! Then each is compiled into the module cache, so the first `Execute` after this loads it in
//! milliseconds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kernel::policy::config::DEFAULT_MAX_WASM_STACK_BYTES;
use runtime_wasm::{RuntimeConfig, WasmEngine};
use transport::python::{MadeInterpreter, OsPython};

/// What a preparation did for one interpreter.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The interpreter made.
    pub path: PathBuf,
    /// Already current: nothing was made.
    pub reused: bool,
    /// What its script printed.
    pub report: String,
    /// Fuel its start-up burnt.
    pub fuel: u64,
    /// Time spent pre-initialising (instrumenting, compiling, running, snapshotting).
    pub preinit_time: Duration,
    /// Time spent compiling it into the module cache.
    pub compile_time: Duration,
    /// Its size.
    pub bytes: usize,
}

/// Makes (unless current and not `force`) and compiles each of the interpreters this sidecar
/// makes, the base one first.
pub(crate) fn prepare_python(
    python: &OsPython,
    module_cache_dir: Option<PathBuf>,
    force: bool,
) -> Result<Vec<Prepared>, String> {
    let engine = WasmEngine::new(RuntimeConfig { module_cache_dir, ..RuntimeConfig::default() })
        .map_err(|error| error.to_string())?;
    MadeInterpreter::ALL.iter().map(|made| prepare_one(python, *made, &engine, force)).collect()
}

fn prepare_one(python: &OsPython, made: MadeInterpreter, engine: &WasmEngine, force: bool) -> Result<Prepared, String> {
    let path = python.dir().join(made.file_name());
    let started = Instant::now();
    let (reused, report, fuel, wasm) = if python.is_current(made) && !force {
        let wasm = std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        (true, String::new(), 0, wasm)
    } else {
        let (wasm, (report, fuel)) = python.make(made, |module, stdlib, script| {
            let snapshot = runtime_wasm::preinitialize_python(module, stdlib, script)?;
            Ok((snapshot.wasm, (snapshot.report, snapshot.fuel)))
        })?;
        (false, report, fuel, wasm)
    };
    let preinit_time = started.elapsed();
    let started = Instant::now();
    engine
        .install(&wasm, DEFAULT_MAX_WASM_STACK_BYTES)
        .map_err(|error| format!("cannot compile {}: {error}", path.display()))?;
    Ok(Prepared { path, reused, report, fuel, preinit_time, compile_time: started.elapsed(), bytes: wasm.len() })
}

/// The `node` snapshot the runtime makes of `build` by `plan` (see `transport::node`).
fn make_node_snapshot(build: &[u8], plan: &transport::node::SnapshotPlan) -> Result<Vec<u8>, String> {
    runtime_wasm::preinitialize_quietly(build, plan).map(|(wasm, _)| wasm)
}

/// `dir`'s programs, its `node` snapshot made first when it is missing or stale: about 0.7 s,
/// once per build. A failure there leaves the build to run as built, and the log says why.
pub(crate) fn node_programs(dir: &std::path::Path) -> Result<kernel::host::programs::SidecarPrograms, String> {
    let (programs, snapshot) = transport::node::programs_with_snapshot(dir, make_node_snapshot)?;
    log_node_snapshot(dir, snapshot);
    Ok(programs)
}

/// Makes `dir`'s `node` snapshot when it is missing or stale (for `replay`, whose programs the
/// trace reader loads itself).
pub(crate) fn node_snapshot(dir: &std::path::Path) {
    log_node_snapshot(dir, transport::node::prepare_snapshot(dir, make_node_snapshot));
}

fn log_node_snapshot(dir: &std::path::Path, made: Result<transport::node::Snapshot, String>) {
    match made {
        Ok(transport::node::Snapshot::Made) => tracing::info!(dir = %dir.display(), "made the node snapshot"),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, dir = %dir.display(), "node runs without its snapshot"),
    }
}

#[cfg(test)]
mod tests {
    use transport::python::BASE_SCRIPT;

    /// The base script runs the statement the install's own snapshot ran, then installs the
    /// quick exit, then reports (what the preparation checks for).
    #[test]
    fn the_base_interpreter_starts_with_what_the_installs_own_snapshot_imported() {
        let statement = runtime_wasm::PYTHON_STARTUP_STATEMENT;
        let statement = std::str::from_utf8(statement.strip_suffix(b"\0").unwrap_or(statement)).unwrap_or_default();
        let line = |wanted: &dyn Fn(&str) -> bool| BASE_SCRIPT.lines().position(wanted);
        let imports = line(&|line| line == statement);
        let install = line(&|line| line == "_quick_exit = _install()");
        let report = line(&|line| line.contains(&format!("b\"{}", runtime_wasm::PYTHON_SCRIPT_REPORT)));
        assert!(imports.is_some() && imports < install && install < report, "{imports:?} {install:?} {report:?}");
    }
}
