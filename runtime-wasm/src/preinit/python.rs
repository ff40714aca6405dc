//! CPython's `python.wasm` pre-initialised with a script of ours run at its start-up: how the
//! sidecar's `prepare-python` and the simulator make the interpreters they prefer to the
//! install's own snapshot (numpy and pandas imported; the quick exit installed).
//!
//! The interpreter's start-up export (`wizer.initialize`) runs one fixed statement (its own
//! short list of imports), then collects and freezes every object. The copy that is
//! pre-initialised has that statement replaced by one of the same length that runs the script;
//! the bytes replaced are checked to be exactly that statement, found exactly once, or nothing
//! is made.

use std::sync::Arc;

use kernel::host::python::{PYTHON_ARGV0, PYTHON_STDLIB_PATH};

use super::{PreinitHost, PreinitPlan};
use crate::{Runtime, RuntimeConfig, StdioHost};

/// The statement `python.wasm`'s start-up export runs (NUL-terminated, as it is stored).
pub const PYTHON_STARTUP_STATEMENT: &[u8] = b"import encodings, io, os, sys, json, csv, re, _colorize\0";
/// Where the script is shown to the start-up (only then: no later instance has it).
const SCRIPT_PATH: &str = "/usr/local/lib/preload.py";
/// What replaces the statement: runs the script. NUL-padded to the statement's length.
const SCRIPT_STATEMENT: &[u8] = b"exec(open('/usr/local/lib/preload.py').read())";
const _: () = assert!(SCRIPT_STATEMENT.len() < PYTHON_STARTUP_STATEMENT.len());
/// What a script that took prints first (unbuffered, so no stream in the snapshot holds it to
/// print again in every process): a start-up that printed anything else went wrong.
pub const PYTHON_SCRIPT_REPORT: &str = "preloaded ";

/// Fuel for the start-up: numpy and pandas take about 5 billion; ten times that is a start-up
/// gone wrong.
const MAX_FUEL: u64 = 50_000_000_000;
/// Memory for the start-up: it ends near 64 MiB; a quarter of the 4 GiB address space is far
/// beyond anything the imports need.
const MAX_MEMORY_BYTES: u64 = 1 << 30;
/// The entropy seed of the start-up: fixed, so one install and script make the same bytes
/// (CPython's string-hash key is drawn from it, the same in every process, as in the install's
/// own snapshot; the random generators are seeded again at every start).
const SEED: u64 = 0x5EC0_2E8E_C000_0001;

/// An interpreter made by [`preinitialize_python`].
#[derive(Debug)]
pub struct PythonSnapshot {
    pub wasm: Vec<u8>,
    /// What the script printed (its report line).
    pub report: String,
    /// Fuel its start-up burnt.
    pub fuel: u64,
}

/// `module` (the install's plain `python.wasm`) pre-initialised with `script` run at its
/// start-up, `stdlib` shown where the interpreter looks for it.
///
/// # Errors
///
/// The start-up statement is not the one this knows, the start-up failed (with what it wrote to
/// stderr), or it printed anything but the report or left a file open.
pub fn preinitialize_python(module: &[u8], stdlib: Arc<[u8]>, script: &str) -> Result<PythonSnapshot, String> {
    let module = with_script_statement(module)?;
    let stdio = StdioHost::new([PYTHON_ARGV0]).with_stdin(b"").with_seed(SEED);
    let host = PreinitHost::new(stdio)
        .with_file(PYTHON_STDLIB_PATH, stdlib)
        .and_then(|host| host.with_file(SCRIPT_PATH, Arc::from(script.as_bytes())))
        .map_err(|errno| format!("cannot lay out the start-up's files: {errno:?}"))?;
    let runtime: Runtime<PreinitHost> = Runtime::new(RuntimeConfig::default()).map_err(|error| error.to_string())?;
    let plan =
        PreinitPlan { init_func: "wizer.initialize".into(), max_fuel: MAX_FUEL, max_memory_bytes: MAX_MEMORY_BYTES };
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
    if !stderr.is_empty() || !stdout.starts_with(PYTHON_SCRIPT_REPORT) || !open.is_empty() {
        return Err(format!(
            "the start-up script did not take (stdout {stdout:?}, files left open {open:?}); nothing was made\n{stderr}"
        ));
    }
    Ok(PythonSnapshot { wasm: made.wasm, report: stdout.trim_end().to_owned(), fuel: made.fuel_consumed })
}

/// `module` with its start-up statement replaced by [`SCRIPT_STATEMENT`].
fn with_script_statement(module: &[u8]) -> Result<Vec<u8>, String> {
    let statement = PYTHON_STARTUP_STATEMENT;
    let mut found = module.windows(statement.len()).enumerate().filter(|(_, window)| *window == statement);
    let (Some((at, _)), None) = (found.next(), found.next()) else {
        return Err("python.wasm's start-up statement is not the one this sidecar knows (exactly once): \
                    it cannot be pre-initialised, and runs as installed"
            .into());
    };
    let mut replacement = SCRIPT_STATEMENT.to_vec();
    replacement.resize(statement.len(), 0);
    let mut patched = module.to_vec();
    let target = patched.get_mut(at..at + statement.len()).ok_or("the statement is out of the module")?;
    target.copy_from_slice(&replacement);
    Ok(patched)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_statement_is_replaced_in_place_only_when_found_exactly_once() {
        let module = [b"\0asm..".as_slice(), PYTHON_STARTUP_STATEMENT, b"rest"].concat();
        let patched = with_script_statement(&module).unwrap_or_default();
        assert_eq!(patched.len(), module.len());
        assert!(patched.windows(SCRIPT_STATEMENT.len()).any(|window| window == SCRIPT_STATEMENT));
        assert!(patched.ends_with(b"\0rest"));
        assert!(with_script_statement(b"\0asm without it").is_err());
        let twice = [module.as_slice(), PYTHON_STARTUP_STATEMENT].concat();
        assert!(with_script_statement(&twice).is_err());
    }

    #[test]
    fn the_script_is_where_the_statement_opens_it() {
        let statement = std::str::from_utf8(SCRIPT_STATEMENT).unwrap();
        assert!(statement.contains(&format!("'{SCRIPT_PATH}'")), "{statement}");
    }
}
