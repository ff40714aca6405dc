//! The original's command packages from npm (`@agentos-software/*`), installed once per machine
//! by `scripts/fetch-packages.sh` into a cache outside the repository. Tests that run the real
//! commands call [`root`]; the first call installs the packages if they are missing (it needs
//! `npm` and the npm registry), later ones find them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The packages `scripts/fetch-packages.sh` installs (through `@agentos-software/common`).
pub const PACKAGES: [&str; 8] = ["coreutils", "sed", "grep", "gawk", "findutils", "diffutils", "tar", "gzip"];

/// The directory holding `node_modules/@agentos-software/`, installing the packages first if
/// needed.
///
/// # Panics
///
/// If they cannot be installed, with what to do about it.
// A test cannot go on without the packages; the panic says how to get them.
#[allow(clippy::panic)]
pub fn installed() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-packages.sh");
        let output = Command::new("bash").arg(&script).output();
        match output {
            Ok(output) if output.status.success() => {
                PathBuf::from(String::from_utf8_lossy(&output.stdout).trim().to_owned())
            }
            Ok(output) => panic!(
                "the command packages are not installed and {} failed (it needs npm and the npm registry):\n{}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => panic!("cannot run {}: {error}", script.display()),
        }
    })
}

/// The installed npm package directory of `@agentos-software/<name>`: a `software` root.
pub fn root(name: &str) -> String {
    installed().join("node_modules/@agentos-software").join(name).display().to_string()
}
