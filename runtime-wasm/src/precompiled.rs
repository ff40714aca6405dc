//! Large modules' compiled code, kept by this program in its module cache directory and loaded
//! back by mapping the file: the one place this crate uses `unsafe`.
//!
//! wasmtime's own cache stores compiled code compressed and reads it whole: for the 99 MB
//! Python interpreter that is most of a first `Execute` (zstd decompression and page faults
//! over hundreds of megabytes); for `node`'s 3.2 MB it is 23 ms of each process's first `node`
//! (hashing the module for its key, reading and decompressing 7 MB of code), where mapping it
//! takes about 1 ms. An installed module (the interpreters a host installs), and a module run from
//! its bytes of [`LARGE_MODULE_BYTES`] or more, is therefore also written here, uncompressed, as
//! `<shelf>/<key>.cwasm` (`Module::serialize`), and later loaded with
//! `Module::deserialize_file`, which maps it and touches only the pages that run.
//!
//! The key is the SHA-256 of the module's bytes and the engine's compatibility hash; wasmtime
//! checks the artifact's header against the engine again when it loads it, and a file that
//! fails to load is compiled again and replaced.
//!
//! Each [`Shelf`] holds at most its bound: each file written makes room by removing the files
//! least recently written or loaded (a load marks its file at most once a [`RECENCY_GRAIN`]).
//! The two are apart so that modules guests bring, however many, never push out the
//! interpreters' code, which takes a minute to compile again. A file removed while a sidecar
//! maps it stays whole for that sidecar (the mapping holds the inode); the next one to load it
//! compiles it again.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Modules run from their bytes (a VM's files, command packages) at least this large keep
/// their compiled code here too. Below it are the command packages' many modules, for which
/// wasmtime's cache takes a few milliseconds and keeps the code compressed (a third of the
/// size) in a directory it bounds.
pub(crate) const LARGE_MODULE_BYTES: usize = 16 * 1024 * 1024;

/// Where kept code is shelved, each shelf with its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shelf {
    /// Installed modules (their owner states their digest: `node`, Python's interpreters),
    /// whatever their size.
    Installed,
    /// Modules of [`LARGE_MODULE_BYTES`] or more run from their bytes.
    Run,
}

impl Shelf {
    /// Its directory in the module cache: installed code where all kept code was before
    /// modules run from bytes had a shelf of their own, so it is found again.
    fn dir(self, module_cache_dir: &Path) -> std::path::PathBuf {
        let kept = module_cache_dir.join("precompiled");
        match self {
            Self::Installed => kept,
            Self::Run => kept.join("run"),
        }
    }

    /// Most bytes of code it holds; past it the files least recently written or loaded go.
    fn max_bytes(self) -> u64 {
        match self {
            Self::Installed => MAX_INSTALLED_CODE_BYTES,
            Self::Run => MAX_RUN_CODE_BYTES,
        }
    }
}

/// Most bytes of installed modules' code: the interpreters of two Python installs (the
/// install's own, its base and its preloaded interpreter: about 1.1 GB of code for each
/// install), so an upgrade keeps the old set while the new one is made, and `node`'s builds
/// (7 MB each).
pub(crate) const MAX_INSTALLED_CODE_BYTES: u64 = 3 << 30;

/// Most bytes of large modules' code kept for modules run from their bytes: about ten of
/// them (a 30 MB module compiles to about 100 MB of code).
pub(crate) const MAX_RUN_CODE_BYTES: u64 = 1 << 30;

/// How stale a file's mark may get before a load renews it: a load marks its file (sets its
/// modification time) only when the mark is older than this, so loads cost no write each, and
/// a file in use is never among the least recently used by more than this.
pub(crate) const RECENCY_GRAIN: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// The compiled `wasm`, from this cache when it holds it, else compiled (through wasmtime's
/// cache) and written here for the next time, with the digest its code is kept under. Failing
/// to write is not an error: the module still runs.
///
/// An installed module's digest is claimed (its owner's word, not computed here): it finds
/// code compiled before, from bytes that had it; code is only ever stored under the digest of
/// the bytes it was compiled from, so a wrong claim costs a compile and never files code under
/// another module's name.
pub(crate) fn load_or_compile(
    engine: &Engine,
    dir: &Path,
    wasm: &[u8],
    digest: &ModuleDigest,
    shelf: Shelf,
) -> wasmtime::Result<(Module, ModuleDigest)> {
    if let Some(module) = load(engine, dir, digest, shelf) {
        return Ok((module, *digest));
    }
    let claimed = shelf == Shelf::Installed;
    let digest = if claimed { ModuleDigest::of(wasm) } else { *digest };
    if claimed {
        if let Some(module) = load(engine, dir, &digest, shelf) {
            return Ok((module, digest));
        }
    }
    let module = Module::new(engine, wasm)?;
    store(&module, &path(engine, dir, &digest, shelf), shelf.max_bytes());
    Ok((module, digest))
}

/// Where the code of the module with `digest` is kept on `shelf`.
fn path(engine: &Engine, dir: &Path, digest: &ModuleDigest, shelf: Shelf) -> std::path::PathBuf {
    shelf.dir(dir).join(format!("{}.cwasm", key(engine, digest)))
}

/// The code kept on `shelf` for `digest`, when there is a file of it that loads.
pub(crate) fn load(engine: &Engine, dir: &Path, digest: &ModuleDigest, shelf: Shelf) -> Option<Module> {
    let path = path(engine, dir, digest, shelf);
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
            mark_used(&path, std::time::SystemTime::now());
            return Some(module);
        }
    }
    None
}

/// Writes `module`'s compiled code at `path` (a temporary file renamed into place), then keeps
/// its directory within `max_bytes`.
fn store(module: &Module, path: &Path, max_bytes: u64) {
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
        return;
    }
    make_room(dir, path, max_bytes);
}

/// Renews `path`'s mark (its modification time) when it is older than [`RECENCY_GRAIN`].
/// Failing is not an error: the file is only more likely to be removed to make room.
fn mark_used(path: &Path, now: std::time::SystemTime) {
    let marked = std::fs::metadata(path).and_then(|metadata| metadata.modified());
    let stale = marked.is_ok_and(|marked| now.duration_since(marked).is_ok_and(|age| age > RECENCY_GRAIN));
    if stale {
        let _ = std::fs::File::open(path).and_then(|file| file.set_modified(now));
    }
}

/// Removes the kept code least recently written or loaded until `dir`'s files (`.cwasm`, and
/// temporary ones of writes that died) hold at most `max_bytes`; `kept` (just written) stays
/// whatever its size.
fn make_room(dir: &Path, kept: &Path, max_bytes: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, u64, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let metadata = entry.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((metadata.modified().ok()?, metadata.len(), entry.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| *len).fold(0, u64::saturating_add);
    // Oldest first; the name breaks ties so the order does not depend on the directory's.
    files.sort();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if path != kept && std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(len);
        }
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

    /// A digest as its bytes' owner states it (an `InstalledModule`): used to find code,
    /// checked before any is compiled (see [`load_or_compile`]).
    pub fn claimed(digest: [u8; 32]) -> ModuleDigest {
        ModuleDigest(digest)
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

    /// An empty cache directory named for `test`, an engine, and a module exporting `name`.
    fn setup(test: &str, name: &str) -> (std::path::PathBuf, Engine, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("precompiled-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wasm = wat::parse_str(format!("(module (func (export \"{name}\") (result i32) i32.const 7))")).unwrap();
        (dir, Engine::default(), wasm)
    }

    /// [`setup`], its module compiled once and kept: also its digest and its file.
    fn kept(test: &str) -> (std::path::PathBuf, Engine, Vec<u8>, ModuleDigest, std::path::PathBuf) {
        let (dir, engine, wasm) = setup(test, "f");
        let digest = ModuleDigest::of(&wasm);
        load_or_compile(&engine, &dir, &wasm, &digest, Shelf::Run).unwrap();
        let path = path(&engine, &dir, &digest, Shelf::Run);
        (dir, engine, wasm, digest, path)
    }

    #[test]
    fn a_module_is_stored_once_and_loaded_back_and_a_bad_file_is_replaced() {
        let (dir, engine, wasm, digest, path) = kept("stored");
        let stored = std::fs::read(&path).unwrap();
        assert!(!stored.is_empty());
        // Loaded back from the file; then a corrupt file is compiled again and replaced.
        let (module, _) = load_or_compile(&engine, &dir, &wasm, &digest, Shelf::Run).unwrap();
        assert!(module.get_export("f").is_some());
        // A bad file put in its place (a new file, as everything here is written: the mapped
        // one is never changed).
        let bad = path.with_extension("bad");
        std::fs::write(&bad, b"not a compiled module").unwrap();
        std::fs::rename(&bad, &path).unwrap();
        let (module, _) = load_or_compile(&engine, &dir, &wasm, &digest, Shelf::Run).unwrap();
        assert!(module.get_export("f").is_some());
        assert_eq!(std::fs::read(&path).unwrap(), stored);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An empty directory named for `test`.
    fn empty_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("precompiled-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A file of `len` bytes in `dir`, last written or loaded `age_s` seconds before `now`.
    fn aged(dir: &Path, name: &str, len: usize, now: std::time::SystemTime, age_s: u64) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        file.set_modified(now - std::time::Duration::from_secs(age_s)).unwrap();
        path
    }

    #[test]
    fn room_is_made_by_removing_the_least_recently_used_code_but_never_the_file_just_written() {
        let dir = empty_dir("room");
        let now = std::time::SystemTime::now();
        let oldest = aged(&dir, "a.cwasm", 300, now, 400);
        let dead_write = aged(&dir, "b.tmp1234", 200, now, 300);
        let recent = aged(&dir, "c.cwasm", 250, now, 100);
        let written = aged(&dir, "d.cwasm", 100, now, 0);
        // 850 bytes in all; 500 allowed: the two oldest go, the rest fit.
        make_room(&dir, &written, 500);
        assert!(!oldest.exists() && !dead_write.exists());
        assert!(recent.exists() && written.exists());
        // Within the bound, nothing goes.
        make_room(&dir, &written, 350);
        assert!(recent.exists() && written.exists());
        // A file written larger than the bound stays; everything else makes room for it.
        let large = aged(&dir, "e.cwasm", 1000, now, 0);
        make_room(&dir, &large, 500);
        assert!(large.exists() && !recent.exists() && !written.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An old file on `shelf` as large as its bound (sparse: it takes no disk).
    fn full_shelf(dir: &Path, shelf: Shelf) -> std::path::PathBuf {
        std::fs::create_dir_all(shelf.dir(dir)).unwrap();
        let old = shelf.dir(dir).join("old.cwasm");
        let file = std::fs::File::create(&old).unwrap();
        file.set_len(shelf.max_bytes()).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).unwrap();
        old
    }

    #[test]
    fn storing_code_keeps_its_shelf_within_its_bound_and_leaves_the_other_alone() {
        for (shelf, other) in [(Shelf::Run, Shelf::Installed), (Shelf::Installed, Shelf::Run)] {
            let (dir, engine, wasm) = setup("bounded", "f");
            let (old, other_old) = (full_shelf(&dir, shelf), full_shelf(&dir, other));
            let digest = ModuleDigest::of(&wasm);
            load_or_compile(&engine, &dir, &wasm, &digest, shelf).unwrap();
            assert!(!old.exists(), "{shelf:?}");
            assert!(path(&engine, &dir, &digest, shelf).exists());
            // However many modules guests run, the interpreters' code is not pushed out (nor
            // the other way round).
            assert!(other_old.exists(), "{other:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_load_renews_a_stale_mark_and_leaves_a_fresh_one() {
        let dir = empty_dir("mark");
        let now = std::time::SystemTime::now();
        let stale = aged(&dir, "stale.cwasm", 1, now, RECENCY_GRAIN.as_secs() + 60);
        let fresh = aged(&dir, "fresh.cwasm", 1, now, 3600);
        let fresh_mark = std::fs::metadata(&fresh).unwrap().modified().unwrap();
        mark_used(&stale, now);
        mark_used(&fresh, now);
        assert_eq!(std::fs::metadata(&stale).unwrap().modified().unwrap(), now);
        assert_eq!(std::fs::metadata(&fresh).unwrap().modified().unwrap(), fresh_mark);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn loading_kept_code_marks_it_used() {
        let (dir, engine, _, digest, path) = kept("load-marks");
        let long_ago = std::time::SystemTime::now() - RECENCY_GRAIN * 3;
        std::fs::File::open(&path).unwrap().set_modified(long_ago).unwrap();
        assert!(load(&engine, &dir, &digest, Shelf::Run).is_some());
        assert!(std::fs::metadata(&path).unwrap().modified().unwrap() > long_ago + RECENCY_GRAIN * 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_claimed_digest_finds_code_but_never_files_code_under_another_name() {
        let (dir, engine, seven) = setup("claims", "f");
        let (_, _, eight) = setup("claims-unused", "g");
        let (seven_digest, eight_digest) = (ModuleDigest::of(&seven), ModuleDigest::of(&eight));
        // A wrong claim (eight's bytes said to be seven's) with nothing kept: compiled, and kept
        // under eight's own digest.
        let (module, known) = load_or_compile(&engine, &dir, &eight, &seven_digest, Shelf::Installed).unwrap();
        assert!(module.get_export("g").is_some());
        assert_eq!(known, eight_digest);
        assert!(!path(&engine, &dir, &seven_digest, Shelf::Installed).exists());
        // A right claim finds the kept code without the bytes being looked at.
        let (module, known) =
            load_or_compile(&engine, &dir, b"not even wasm", &eight_digest, Shelf::Installed).unwrap();
        assert!(module.get_export("g").is_some());
        assert_eq!(known, eight_digest);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
