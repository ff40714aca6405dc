//! The `node` command (QuickJS-NG and the Node.js builtins layer, `runtime-js/`), built once per
//! machine and source content by `scripts/build-node.sh` into a cache outside the repository.
//! Tests that run JavaScript call [`built`]; the first call builds it (about 15 s: clang-16,
//! npm and the crate registry), later ones find it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The directory holding `node.wasm`, building it first if needed.
///
/// # Panics
///
/// If it cannot be built, with what to do about it.
pub fn built() -> &'static Path {
    BUILT.get_or_init(|| crate::packages::fetched("build-node.sh", "the node command", "clang-16, wasi-libc and npm"))
}

static BUILT: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`built`] answer `dir` without running the script (which hashes every source of the
/// build: about 20 ms): for a process started by one that has just run it (the simulator's
/// workers). No effect once [`built`] has answered.
pub fn use_built(dir: PathBuf) {
    let _ = BUILT.set(dir);
}

/// The directory holding `node_modules` with the npm packages the tests run unchanged
/// (js-yaml and its dependency argparse, semver, marked), installing them first if needed.
///
/// # Panics
///
/// If they cannot be installed, with what to do about it.
pub fn packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::packages::fetched("fetch-js-packages.sh", "the test npm packages", "npm and its registry")
    })
}
