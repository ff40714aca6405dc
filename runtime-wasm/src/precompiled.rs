//! Large modules' compiled code, kept by this program in its module cache directory and loaded
//! back by mapping the file: the one place this crate uses `unsafe`.
//!
//! wasmtime's own cache stores compiled code compressed and reads it whole: for the 99 MB
//! Python interpreter that is most of a first `Execute` (zstd decompression and page faults
//! over hundreds of megabytes). A module of [`LARGE_MODULE_BYTES`] or more is therefore also
//! written here, uncompressed, as `precompiled/<key>.cwasm` (`Module::serialize`), and later
//! loaded with `Module::deserialize_file`, which maps it and touches only the pages that run.
//!
//! The key is the SHA-256 of the module's bytes and the engine's compatibility hash; wasmtime
//! checks the artifact's header against the engine again when it loads it, and a file that
//! fails to load is compiled again and replaced.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Modules at least this large keep their compiled code here too (below it, wasmtime's cache
/// is fast enough: the command packages' modules are a few MB).
pub(crate) const LARGE_MODULE_BYTES: usize = 16 * 1024 * 1024;

/// The compiled `wasm`, from this cache when it holds it, else compiled (through wasmtime's
/// cache) and written here for the next time. Failing to write is not an error: the module
/// still runs.
pub(crate) fn load_or_compile(
    engine: &Engine,
    dir: &Path,
    wasm: &[u8],
    digest: &ModuleDigest,
) -> wasmtime::Result<Module> {
    let path = dir.join("precompiled").join(format!("{}.cwasm", key(engine, digest)));
    if path.is_file() {
        // SAFETY: `deserialize_file` trusts that the file holds code wasmtime compiled and that
        // it stays unchanged while mapped. Both hold for this directory: files here are only
        // ever written by `store` below (this program's own `Module::serialize` output, written
        // to a temporary name and renamed into place, never modified after), under the same
        // user-owned cache directory as wasmtime's own cache, which its loader trusts the same
        // way; a replaced file is a new inode, so a mapping never changes. wasmtime still checks
        // the header (version, engine settings) and refuses what it did not produce for this
        // engine, which falls through to compiling again.
        let loaded = unsafe { Module::deserialize_file(engine, &path) };
        if let Ok(module) = loaded {
            return Ok(module);
        }
    }
    let module = Module::new(engine, wasm)?;
    store(&module, &path);
    Ok(module)
}

/// Writes `module`'s compiled code at `path` (a temporary file renamed into place).
fn store(module: &Module, path: &Path) {
    let (Some(dir), Ok(bytes)) = (path.parent(), module.serialize()) else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    if written.is_err() || std::fs::rename(&temporary, path).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// A module's identity: the SHA-256 of its bytes. Computed once per load and used for every
/// lookup after it (the compiled-program cache, this directory), so a 100 MB module is read
/// once to be identified, not hashed and compared in full by each cache on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleDigest([u8; 32]);

impl ModuleDigest {
    /// The digest of `wasm`.
    pub fn of(wasm: &[u8]) -> ModuleDigest {
        ModuleDigest(Sha256::digest(wasm).into())
    }
}

/// The cache key of a module for `engine`: hex SHA-256 of the bytes, then of the engine's
/// compatibility hash.
fn key(engine: &Engine, digest: &ModuleDigest) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut key: String = digest.0.iter().map(|byte| format!("{byte:02x}")).collect();
    key.push_str(&format!("-{:016x}", hasher.finish()));
    key
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_module_is_stored_once_and_loaded_back_and_a_bad_file_is_replaced() {
        let dir = std::env::temp_dir().join(format!("precompiled-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::default();
        let wasm = wat::parse_str("(module (func (export \"f\") (result i32) i32.const 7))").unwrap();
        let digest = ModuleDigest::of(&wasm);
        load_or_compile(&engine, &dir, &wasm, &digest).unwrap();
        let path = dir.join("precompiled").join(format!("{}.cwasm", key(&engine, &digest)));
        let stored = std::fs::read(&path).unwrap();
        assert!(!stored.is_empty());
        // Loaded back from the file; then a corrupt file is compiled again and replaced.
        let module = load_or_compile(&engine, &dir, &wasm, &digest).unwrap();
        assert!(module.get_export("f").is_some());
        // A bad file put in its place (a new file, as everything here is written: the mapped
        // one is never changed).
        let bad = path.with_extension("bad");
        std::fs::write(&bad, b"not a compiled module").unwrap();
        std::fs::rename(&bad, &path).unwrap();
        let module = load_or_compile(&engine, &dir, &wasm, &digest).unwrap();
        assert!(module.get_export("f").is_some());
        assert_eq!(std::fs::read(&path).unwrap(), stored);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
