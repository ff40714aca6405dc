//! `secure-exec-sidecar prepare-python`: makes this machine's preloaded interpreter, once.
//!
//! CPython's `python.wasm` runs its start-up (the interpreter's own initialisation and the
//! imports of [`PRELOAD_SCRIPT`]: numpy and pandas) on the runtime's pre-initialisation, and the
//! snapshot is installed beside the install as `python-preloaded.wasm`, which the sidecar then
//! prefers (see `transport::python`). Then it is compiled into the module cache, so the first
//! `Execute` after this loads it in milliseconds.
//!
//! The interpreter's start-up export runs one fixed statement (its own short list of imports),
//! so the copy that is pre-initialised has that statement replaced by one of the same length
//! that runs the preload script; the bytes replaced are checked to be exactly that statement,
//! found exactly once, or nothing is made.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernel::host::python::{PYTHON_ARGV0, PYTHON_STDLIB_PATH};
use kernel::policy::config::DEFAULT_MAX_WASM_STACK_BYTES;
use kernel::syscalls::engine::GuestEngine;
use runtime_wasm::{PreinitHost, PreinitPlan, Runtime, RuntimeConfig, StdioHost, WasmEngine};
use transport::python::{OsPython, PRELOAD_SCRIPT};

/// The statement `python.wasm`'s start-up export runs (NUL-terminated, as it is stored).
const STARTUP_STATEMENT: &[u8] = b"import encodings, io, os, sys, json, csv, re, _colorize\0";
/// Where the preload script is shown to the start-up (only then: no later instance has it).
const PRELOAD_SCRIPT_PATH: &str = "/usr/local/lib/preload.py";
/// What replaces the statement: runs the script. NUL-padded to the statement's length.
const PRELOAD_STATEMENT: &[u8] = b"exec(open('/usr/local/lib/preload.py').read())";
const _: () = assert!(PRELOAD_STATEMENT.len() < STARTUP_STATEMENT.len());

/// Fuel for the start-up: numpy and pandas take about 5 billion; ten times that is a start-up
/// gone wrong.
const PRELOAD_MAX_FUEL: u64 = 50_000_000_000;
/// Memory for the start-up: it ends near 64 MiB; a quarter of the 4 GiB address space is far
/// beyond anything the imports need.
const PRELOAD_MAX_MEMORY_BYTES: u64 = 1 << 30;
/// The entropy seed of the start-up: fixed, so one install and script make the same bytes
/// (CPython's string-hash key is drawn from it, the same in every process, as in the install's
/// own snapshot; the random generators are seeded again at every start).
const PRELOAD_SEED: u64 = 0x5EC0_2E8E_C000_0001;

/// What a preparation did.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The preloaded interpreter.
    pub path: PathBuf,
    /// Already current: nothing was made.
    pub reused: bool,
    /// What the preload script printed.
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

/// Makes (unless current and not `force`) and compiles the preloaded interpreter.
pub(crate) fn prepare_python(
    python: &OsPython,
    module_cache_dir: Option<PathBuf>,
    force: bool,
) -> Result<Prepared, String> {
    let path = python.dir().join("python-preloaded.wasm");
    let started = Instant::now();
    let (reused, report, fuel, wasm) = if python.preloaded_is_current() && !force {
        let wasm = std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        (true, String::new(), 0, wasm)
    } else {
        let made = preinitialize(python)?;
        python.install_preloaded(&made.wasm)?;
        (false, made.report, made.fuel, made.wasm)
    };
    let preinit_time = started.elapsed();
    let started = Instant::now();
    let engine = WasmEngine::new(RuntimeConfig { module_cache_dir, ..RuntimeConfig::default() })
        .map_err(|error| error.to_string())?;
    engine
        .load(&wasm, DEFAULT_MAX_WASM_STACK_BYTES)
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

struct Made {
    wasm: Vec<u8>,
    report: String,
    fuel: u64,
}

fn preinitialize(python: &OsPython) -> Result<Made, String> {
    python.preload_key()?;
    let plain = python.read_plain()?;
    let module = with_preload_statement(&plain.module)?;
    let stdio = StdioHost::new([PYTHON_ARGV0]).with_stdin(b"").with_seed(PRELOAD_SEED);
    let host = PreinitHost::new(stdio)
        .with_file(PYTHON_STDLIB_PATH, Arc::clone(&plain.stdlib))
        .and_then(|host| host.with_file(PRELOAD_SCRIPT_PATH, Arc::from(PRELOAD_SCRIPT.as_bytes())))
        .map_err(|errno| format!("cannot lay out the start-up's files: {errno:?}"))?;
    let runtime: Runtime<PreinitHost> = Runtime::new(RuntimeConfig::default()).map_err(|error| error.to_string())?;
    let plan = PreinitPlan {
        init_func: "wizer.initialize".into(),
        max_fuel: PRELOAD_MAX_FUEL,
        max_memory_bytes: PRELOAD_MAX_MEMORY_BYTES,
    };
    let output = |host: &PreinitHost| {
        let stdout = String::from_utf8_lossy(host.stdio.stdout()).into_owned();
        let stderr = String::from_utf8_lossy(host.stdio.stderr()).into_owned();
        (stdout, stderr)
    };
    let made = runtime.preinitialize(&module, &plan, host).map_err(|failed| {
        let stderr = failed.host.as_ref().map(|host| output(host).1).unwrap_or_default();
        format!("{}{}", failed.error, if stderr.is_empty() { String::new() } else { format!("\n{stderr}") })
    })?;
    let (stdout, stderr) = output(&made.host);
    let open = made.host.open_files();
    if !stderr.is_empty() || !stdout.starts_with("preloaded ") || !open.is_empty() {
        return Err(format!(
            "the preload did not take (stdout {stdout:?}, files left open {open:?}); nothing was installed\n{stderr}"
        ));
    }
    Ok(Made { wasm: made.wasm, report: stdout.trim_end().to_owned(), fuel: made.fuel_consumed })
}

/// `module` with its start-up statement replaced by [`PRELOAD_STATEMENT`].
fn with_preload_statement(module: &[u8]) -> Result<Vec<u8>, String> {
    let mut found =
        module.windows(STARTUP_STATEMENT.len()).enumerate().filter(|(_, window)| *window == STARTUP_STATEMENT);
    let (Some((at, _)), None) = (found.next(), found.next()) else {
        return Err("python.wasm's start-up statement is not the one this sidecar knows (exactly once): \
                    it cannot be preloaded, and runs as installed"
            .into());
    };
    let mut replacement = PRELOAD_STATEMENT.to_vec();
    replacement.resize(STARTUP_STATEMENT.len(), 0);
    let mut patched = module.to_vec();
    let target = patched.get_mut(at..at + STARTUP_STATEMENT.len()).ok_or("the statement is out of the module")?;
    target.copy_from_slice(&replacement);
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_statement_is_replaced_in_place_only_when_found_exactly_once() {
        let module = [b"\0asm..".as_slice(), STARTUP_STATEMENT, b"rest"].concat();
        let patched = with_preload_statement(&module).unwrap_or_default();
        assert_eq!(patched.len(), module.len());
        assert!(patched.windows(PRELOAD_STATEMENT.len()).any(|window| window == PRELOAD_STATEMENT));
        assert!(patched.ends_with(b"\0rest"));
        assert!(with_preload_statement(b"\0asm without it").is_err());
        let twice = [module.as_slice(), STARTUP_STATEMENT].concat();
        assert!(with_preload_statement(&twice).is_err());
    }

    #[test]
    fn the_preload_script_is_where_the_statement_opens_it() {
        let statement = std::str::from_utf8(PRELOAD_STATEMENT).unwrap_or_default();
        assert!(statement.contains(&format!("'{PRELOAD_SCRIPT_PATH}'")), "{statement}");
        assert!(PRELOAD_SCRIPT.contains("import pandas"));
    }
}
