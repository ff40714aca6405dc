//! The Python interpreter on disk, as `scripts/fetch-python.sh` installs it: the interpreter and
//! `python-stdlib.zip` in one directory, read once (on the first Python `Execute`) and shared by
//! every VM after. A failed load is not remembered, so installing it later works without a
//! restart.
//!
//! The interpreter is `python-snapshot.wasm` when the install has it: the same reactor as
//! `python.wasm`, pre-initialised (Wizer) with CPython started and its start-up modules imported,
//! so each process skips that work. It takes a warm `print(1)` from about 31 ms to 11 ms. An
//! install without it (from before it was used) runs the plain `python.wasm`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use kernel::host::python::{PythonInstall, PythonSource};

/// The install's version, as the fetch script names its directory.
pub const PYTHON_VERSION: &str = "0.1.0";
/// The largest interpreter module or library read: both are about 100 MB today; a file far
/// beyond that is not the install this expects, and reading it whole would cost its size in
/// memory for the sidecar's life.
pub const MAX_PYTHON_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// `$XDG_CACHE_HOME`, else `~/.cache` (else the temp dir): where the setup scripts install
/// the interpreters.
pub fn cache_home() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// The pre-initialised interpreter, preferred.
const PYTHON_SNAPSHOT: &str = "python-snapshot.wasm";
/// The interpreter it was made from.
const PYTHON_PLAIN: &str = "python.wasm";

#[derive(Debug)]
pub struct OsPython {
    dir: PathBuf,
    loaded: Mutex<Option<Arc<PythonInstall>>>,
}

impl OsPython {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, loaded: Mutex::new(None) }
    }

    /// `$SECURE_EXEC_PYTHON`, else `${XDG_CACHE_HOME:-~/.cache}/secure-exec-sidecar/python-<version>`
    /// (where the fetch script puts it).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("SECURE_EXEC_PYTHON") {
            return PathBuf::from(dir);
        }
        cache_home().join(format!("secure-exec-sidecar/python-{PYTHON_VERSION}"))
    }

    fn read(&self, name: &str) -> Result<Arc<[u8]>, String> {
        let path = self.dir.join(name);
        let missing = |error: std::io::Error| {
            format!(
                "the Python interpreter is not installed at {} ({error}): scripts/fetch-python.sh installs it",
                path.display()
            )
        };
        let size = std::fs::metadata(&path).map_err(missing)?.len();
        if size > MAX_PYTHON_FILE_BYTES {
            return Err(format!("{} is {size} bytes, over the {MAX_PYTHON_FILE_BYTES} bytes allowed", path.display()));
        }
        std::fs::read(&path).map(Arc::from).map_err(missing)
    }
}

impl PythonSource for OsPython {
    fn load(&self) -> Result<Arc<PythonInstall>, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(install) = loaded.as_ref() {
            return Ok(Arc::clone(install));
        }
        let interpreter = if self.dir.join(PYTHON_SNAPSHOT).is_file() { PYTHON_SNAPSHOT } else { PYTHON_PLAIN };
        let module = self.read(interpreter)?;
        let install = Arc::new(PythonInstall { module, stdlib: self.read("python-stdlib.zip")? });
        *loaded = Some(Arc::clone(&install));
        Ok(install)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_install_says_how_to_get_it_and_a_later_one_is_found() {
        let dir = std::env::temp_dir().join(format!("secure-exec-python-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let python = OsPython::new(dir.clone());
        let why = python.load().unwrap_err();
        assert!(why.contains("scripts/fetch-python.sh"), "{why}");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("python.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.join("python-stdlib.zip"), b"PK").unwrap();
        let install = python.load().unwrap();
        assert_eq!((&install.module[..], &install.stdlib[..]), (&b"\0asm"[..], &b"PK"[..]));
        assert!(Arc::ptr_eq(&install, &python.load().unwrap()), "loaded once, shared after");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_pre_initialised_interpreter_is_preferred_when_installed() {
        let dir = std::env::temp_dir().join(format!("secure-exec-python-snapshot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(PYTHON_PLAIN), b"\0asm plain").unwrap();
        std::fs::write(dir.join(PYTHON_SNAPSHOT), b"\0asm snapshot").unwrap();
        std::fs::write(dir.join("python-stdlib.zip"), b"PK").unwrap();
        assert_eq!(&OsPython::new(dir.clone()).load().unwrap().module[..], b"\0asm snapshot");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_past_the_bound_is_refused_before_it_is_read() {
        let dir = std::env::temp_dir().join(format!("secure-exec-python-big-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Sparse: nothing is written or read, only the size is looked at.
        std::fs::File::create(dir.join("python.wasm")).unwrap().set_len(MAX_PYTHON_FILE_BYTES + 1).unwrap();
        std::fs::write(dir.join("python-stdlib.zip"), b"PK").unwrap();
        let why = OsPython::new(dir.clone()).load().unwrap_err();
        assert!(why.ends_with(&format!("over the {MAX_PYTHON_FILE_BYTES} bytes allowed")), "{why}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
