//! The Python interpreter on disk, as `scripts/fetch-python.sh` installs it: the interpreter and
//! `python-stdlib.zip` in one directory, loaded on the first Python `Execute` and shared by every
//! VM after. Loading reads neither whole: the interpreter is read only if the engine has no code
//! compiled from it (`InstalledModule`), the library a chunk at a time as guests read it
//! (`StdlibArchive`). A failed load is not remembered, so installing it later works without a
//! restart.
//!
//! The interpreter modules:
//! - `python-base.wasm`, made on this machine by `secure-exec-sidecar prepare-python` (and by
//!   the simulator): `python.wasm` pre-initialised with [`BASE_SCRIPT`] run, the install's own
//!   start-up imports and the quick exit (`quick_exit.py`), which ends a process whose exit can
//!   show nothing as soon as its program has (a warm `print(1)` in about a quarter of the time).
//!   It runs programs while its key (`python-base.key`, see [`OsPython::key`]) matches this
//!   install and script.
//! - `python-snapshot.wasm`, the install's own pre-initialised reactor (CPython started, its
//!   start-up modules imported), runs them otherwise: it takes a warm `print(1)` from about
//!   31 ms to 11 ms. `python.wasm`, the plain reactor, runs them on an install without it.
//! - `python-preloaded.wasm`, made by `prepare-python` too: `python.wasm` pre-initialised with
//!   [`PRELOAD_SCRIPT`] run (numpy and pandas imported). It runs the programs that name
//!   [`PRELOAD_PACKAGES`] (see `PythonInstall::module_for`), while its key matches.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use kernel::host::python::{PreloadedPython, PythonInstall, PythonSource, StdlibArchive};
use kernel::syscalls::engine::{InstalledModule, SharedModule};

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

/// The interpreter pre-initialised here with [`PRELOAD_SCRIPT`] run, preferred while current.
const PYTHON_PRELOADED: &str = "python-preloaded.wasm";
/// What `python-preloaded.wasm` was made from (see [`OsPython::key`]).
const PYTHON_PRELOADED_KEY: &str = "python-preloaded.key";
/// The interpreter pre-initialised here with [`BASE_SCRIPT`] run, preferred while current.
const PYTHON_BASE: &str = "python-base.wasm";
/// What `python-base.wasm` was made from, and its digest.
const PYTHON_BASE_KEY: &str = "python-base.key";
/// The install's pre-initialised interpreter, preferred next.
const PYTHON_SNAPSHOT: &str = "python-snapshot.wasm";
/// The interpreter both were made from.
const PYTHON_PLAIN: &str = "python.wasm";
/// The standard library archive.
const PYTHON_STDLIB: &str = "python-stdlib.zip";
/// The install's checksums of its files, as the fetch script checked them.
const PYTHON_CHECKSUMS: &str = "SHA256SUMS";
/// The Python a preloaded interpreter runs once, at preparation.
pub const PRELOAD_SCRIPT: &str = include_str!("preload.py");
/// The packages [`PRELOAD_SCRIPT`] imports whose names in a program choose the preloaded
/// interpreter for it.
pub const PRELOAD_PACKAGES: &[&str] = &["numpy", "pandas"];
/// Changes whenever how a preloaded interpreter is made changes, so older ones stop matching.
const PRELOAD_FORMAT: &str = "secure-exec python preload 1";
/// The Python the base interpreter runs once, at preparation: the install's own start-up, then
/// the quick exit.
pub const BASE_SCRIPT: &str =
    concat!(include_str!("base.py"), include_str!("quick_exit.py"), include_str!("report.py"));
/// Changes whenever how the base interpreter is made changes, so older ones stop matching.
const BASE_FORMAT: &str = "secure-exec python base 1";

/// An interpreter this sidecar makes from the install's plain one, by running a script at its
/// start-up (`runtime_wasm::preinitialize_python`), and keeps beside the install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadeInterpreter {
    /// [`BASE_SCRIPT`]: runs every program the preloaded one does not.
    Base,
    /// [`PRELOAD_SCRIPT`]: runs the programs that name [`PRELOAD_PACKAGES`].
    Preloaded,
}

impl MadeInterpreter {
    /// Both, in the order a preparation makes them.
    pub const ALL: [Self; 2] = [Self::Base, Self::Preloaded];

    pub fn script(self) -> &'static str {
        match self {
            Self::Base => BASE_SCRIPT,
            Self::Preloaded => PRELOAD_SCRIPT,
        }
    }

    /// Its file in the install's directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Base => PYTHON_BASE,
            Self::Preloaded => PYTHON_PRELOADED,
        }
    }

    fn key_file_name(self) -> &'static str {
        match self {
            Self::Base => PYTHON_BASE_KEY,
            Self::Preloaded => PYTHON_PRELOADED_KEY,
        }
    }

    fn format(self) -> &'static str {
        match self {
            Self::Base => BASE_FORMAT,
            Self::Preloaded => PRELOAD_FORMAT,
        }
    }
}

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
        read_install_file(&self.dir, name)
    }

    /// The library archive, read as guests read it: through a handle opened now, so a new
    /// install renamed into place meanwhile does not mix its bytes with the old one's.
    ///
    /// # Errors
    ///
    /// It is missing, over [`MAX_PYTHON_FILE_BYTES`], or cannot be opened.
    fn stdlib(&self) -> Result<StdlibArchive, String> {
        use std::os::unix::fs::FileExt;
        let len = install_file_len(&self.dir, PYTHON_STDLIB)?;
        let path = self.dir.join(PYTHON_STDLIB);
        let file = std::fs::File::open(&path).map_err(|error| not_installed(&path, &error))?;
        Ok(StdlibArchive::new(len, move |offset, buffer| {
            file.read_exact_at(buffer, offset).map_err(|error| format!("{}: {error}", path.display()))
        }))
    }

    /// `name`, whose SHA-256 the install states is `digest`, to be read only if the engine has
    /// no code compiled from it: a sidecar's first Python start then reads none of its 100 MB.
    ///
    /// # Errors
    ///
    /// It is missing or over [`MAX_PYTHON_FILE_BYTES`].
    fn installed(&self, name: &'static str, digest: [u8; 32]) -> Result<InstalledModule, String> {
        installed_file(self.dir.join(name), digest, MAX_PYTHON_FILE_BYTES, not_installed)
    }
}

/// `name`'s digest in `checksums` (`sha256sum` lines: 64 hex digits, two spaces, the name).
fn listed_digest(checksums: &str, name: &str) -> Option<[u8; 32]> {
    let line = checksums.lines().find(|line| line.split_once("  ").is_some_and(|(_, listed)| listed == name))?;
    parse_digest(line.split_once("  ")?.0)
}

/// A SHA-256 written as 64 hex digits.
pub(crate) fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

/// `dir/name`, whole, unless missing or over [`MAX_PYTHON_FILE_BYTES`].
fn read_install_file(dir: &Path, name: &str) -> Result<Arc<[u8]>, String> {
    let size = install_file_len(dir, name)?;
    let path = dir.join(name);
    read_shared(&path, size).map_err(|error| not_installed(&path, &error))
}

/// The length of `dir/name`, unless missing or over [`MAX_PYTHON_FILE_BYTES`].
fn install_file_len(dir: &Path, name: &str) -> Result<u64, String> {
    bounded_len(&dir.join(name), MAX_PYTHON_FILE_BYTES, not_installed)
}

/// The length of the file at `path`, unless it cannot be looked at (`unreadable` says why) or
/// is over `max_bytes`.
pub(crate) fn bounded_len(
    path: &Path,
    max_bytes: u64,
    unreadable: fn(&Path, &std::io::Error) -> String,
) -> Result<u64, String> {
    let size = std::fs::metadata(path).map_err(|error| unreadable(path, &error))?.len();
    if size > max_bytes {
        return Err(format!("{} is {size} bytes, over the {max_bytes} bytes allowed", path.display()));
    }
    Ok(size)
}

/// The file at `path`, whose SHA-256 its owner states is `digest`, as an installed module:
/// read only when an engine has no code compiled from it. A file of another length than it
/// had is not the one stated: refused before it is read (again at every start that needs it).
///
/// # Errors
///
/// It cannot be looked at or is over `max_bytes`.
pub(crate) fn installed_file(
    path: PathBuf,
    digest: [u8; 32],
    max_bytes: u64,
    unreadable: fn(&Path, &std::io::Error) -> String,
) -> Result<InstalledModule, String> {
    let len = bounded_len(&path, max_bytes, unreadable)?;
    Ok(InstalledModule::new(digest, len, move || {
        let now = bounded_len(&path, max_bytes, unreadable)?;
        if now != len {
            return Err(format!("{} changed: {now} bytes, where it had {len}", path.display()));
        }
        read_shared(&path, len).map_err(|error| unreadable(&path, &error))
    }))
}

fn not_installed(path: &Path, error: &std::io::Error) -> String {
    format!(
        "the Python interpreter is not installed at {} ({error}): scripts/fetch-python.sh installs it",
        path.display()
    )
}

/// The `size` bytes of the file at `path`, read straight into shared memory: reading into a
/// vector and converting it copied the 160 MB of an install a second time, and faulted in twice
/// the pages (about 80 ms of every sidecar's first Python start).
fn read_shared(path: &Path, size: u64) -> std::io::Result<Arc<[u8]>> {
    use std::io::Read;
    let length = usize::try_from(size).map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
    let mut bytes: Arc<[u8]> = std::iter::repeat_n(0u8, length).collect();
    let buffer = Arc::get_mut(&mut bytes).ok_or_else(|| std::io::Error::other("a new buffer is shared"))?;
    let mut file = std::fs::File::open(path)?;
    file.read_exact(buffer)?;
    // A file that grew since its size was taken is read in part: refused, as a changed install.
    if file.read(&mut [0u8; 1])? != 0 {
        return Err(std::io::Error::other("the file changed while it was read"));
    }
    Ok(bytes)
}

/// The plain interpreter and its library, as a preparation starts from them.
#[derive(Debug, Clone)]
pub struct PlainPython {
    /// `python.wasm`.
    pub module: Arc<[u8]>,
    /// `python-stdlib.zip`.
    pub stdlib: Arc<[u8]>,
}

impl OsPython {
    /// The install's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `made` for this install is keyed by: the hex SHA-256 of the install's checksums
    /// file (the fetch script checked the files against it), its script and its format. Cheap:
    /// it never reads the 100 MB modules.
    ///
    /// # Errors
    ///
    /// The install has no checksums file (then nothing is made for it).
    pub fn key(&self, made: MadeInterpreter) -> Result<String, String> {
        let path = self.dir.join(PYTHON_CHECKSUMS);
        let checksums = std::fs::read(&path).map_err(|error| {
            format!("{} ({error}): the install is not one scripts/fetch-python.sh made", path.display())
        })?;
        let mut hasher = Sha256::new();
        for part in [made.format().as_bytes(), &checksums, made.script().as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Ok(crate::hex(&hasher.finalize()))
    }

    /// The lines of `made`'s key file (its key, then its module's SHA-256) when they name this
    /// install and script.
    fn current_record(&self, made: MadeInterpreter) -> Option<Vec<String>> {
        let recorded = std::fs::read_to_string(self.dir.join(made.key_file_name())).ok()?;
        let lines: Vec<String> = recorded.lines().map(str::to_owned).collect();
        let key = self.key(made).ok()?;
        (self.dir.join(made.file_name()).is_file() && lines.first() == Some(&key)).then_some(lines)
    }

    /// Whether `made` is there and made from this install and its script.
    pub fn is_current(&self, made: MadeInterpreter) -> bool {
        self.current_record(made).is_some()
    }

    /// `made`'s module's SHA-256, as its key file recorded it when it was installed.
    fn made_digest(&self, made: MadeInterpreter) -> Option<[u8; 32]> {
        parse_digest(self.current_record(made)?.get(1)?)
    }

    /// The plain interpreter and the library, read for a preparation.
    ///
    /// # Errors
    ///
    /// Either is missing or over [`MAX_PYTHON_FILE_BYTES`].
    pub fn read_plain(&self) -> Result<PlainPython, String> {
        Ok(PlainPython { module: self.read(PYTHON_PLAIN)?, stdlib: self.read(PYTHON_STDLIB)? })
    }

    /// Makes `made`: the install's plain interpreter pre-initialised with its script by
    /// `preinitialize` (the runtime's, `runtime_wasm::preinitialize_python`, which this crate
    /// does not depend on), then installed. Returns the module and what else `preinitialize`
    /// gave.
    ///
    /// # Errors
    ///
    /// The install has no checksums file (found before any work), either plain file is missing,
    /// the pre-initialisation failed, or the install did.
    pub fn make<R>(
        &self,
        made: MadeInterpreter,
        preinitialize: impl FnOnce(&[u8], Arc<[u8]>, &str) -> Result<(Vec<u8>, R), String>,
    ) -> Result<(Vec<u8>, R), String> {
        self.key(made)?;
        let plain = self.read_plain()?;
        let (wasm, also) = preinitialize(&plain.module, plain.stdlib, made.script())?;
        self.install_made(made, &wasm)?;
        Ok((wasm, also))
    }

    /// Installs `wasm` as `made` for the current key: written to a temporary file and renamed
    /// into place, then the key (and the module's digest) beside it, so a crash leaves either
    /// the old pair or a module without a matching key (not used), never a torn module in use.
    ///
    /// # Errors
    ///
    /// The install has no checksums file, or a write fails (what failed, and where).
    pub fn install_made(&self, made: MadeInterpreter, wasm: &[u8]) -> Result<PathBuf, String> {
        let key = self.key(made)?;
        let path = self.dir.join(made.file_name());
        let _ = std::fs::remove_file(self.dir.join(made.key_file_name()));
        write_atomically(&path, wasm)?;
        let digest = crate::hex(&Sha256::digest(wasm));
        write_atomically(&self.dir.join(made.key_file_name()), format!("{key}\n{digest}\n").as_bytes())?;
        Ok(path)
    }

    /// The interpreter module programs run on: the install's snapshot, else plain.
    fn interpreter(&self) -> &'static str {
        if self.dir.join(PYTHON_SNAPSHOT).is_file() {
            PYTHON_SNAPSHOT
        } else {
            PYTHON_PLAIN
        }
    }

    /// `name`'s SHA-256 as the install's checksums file lists it (the fetch script checked the
    /// file against it), if it does.
    fn listed_digest(&self, name: &str) -> Option<[u8; 32]> {
        let checksums = std::fs::read_to_string(self.dir.join(PYTHON_CHECKSUMS)).ok()?;
        listed_digest(&checksums, name)
    }

    /// The preloaded interpreter, when there and current.
    fn preloaded(&self) -> Result<Option<PreloadedPython>, String> {
        if !self.is_current(MadeInterpreter::Preloaded) {
            return Ok(None);
        }
        let packages = PRELOAD_PACKAGES.iter().map(|package| (*package).to_owned()).collect();
        let dir = self.dir.clone();
        Ok(Some(PreloadedPython::new(packages, move || read_install_file(&dir, PYTHON_PRELOADED).ok())))
    }
}

/// Writes `bytes` at `path` through a temporary file in the same directory, synced, renamed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(format!("cannot write {}: {error}", path.display()))
        }
    }
}

impl PythonSource for OsPython {
    fn load(&self) -> Result<Arc<PythonInstall>, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(install) = loaded.as_ref() {
            return Ok(Arc::clone(install));
        }
        let (interpreter, module_digest) = match self.made_digest(MadeInterpreter::Base) {
            Some(digest) => (PYTHON_BASE, Some(digest)),
            None => {
                let interpreter = self.interpreter();
                (interpreter, self.listed_digest(interpreter))
            }
        };
        let module = match module_digest {
            Some(digest) => SharedModule::Installed(Arc::new(self.installed(interpreter, digest)?)),
            None => SharedModule::Bytes(self.read(interpreter)?),
        };
        let install =
            Arc::new(PythonInstall { module, stdlib: Arc::new(self.stdlib()?), preloaded: self.preloaded()? });
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
        let dir = crate::fresh_test_dir("python-test");
        let python = OsPython::new(dir.clone());
        let why = python.load().unwrap_err();
        assert!(why.contains("scripts/fetch-python.sh"), "{why}");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("python.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.join("python-stdlib.zip"), b"PK").unwrap();
        let install = python.load().unwrap();
        assert_eq!(
            (&install.module.bytes().unwrap()[..], &install.stdlib.read(0, 100).unwrap()[..]),
            (&b"\0asm"[..], &b"PK"[..])
        );
        assert!(Arc::ptr_eq(&install, &python.load().unwrap()), "loaded once, shared after");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_installed_files_digest_is_read_from_the_checksums() {
        let digest = "879bdb628a1a799dc3a6d1a645fee0f88944bf4cdf5e1628e0e1d2b4b33d28d3";
        let checksums = format!("{}  python.wasm\n{digest}  python-snapshot.wasm\n", "0".repeat(64));
        let found = listed_digest(&checksums, "python-snapshot.wasm").unwrap();
        assert_eq!(crate::hex(&found), digest);
        assert_eq!(listed_digest(&checksums, "python.wasm"), Some([0; 32]));
        assert_eq!(listed_digest(&checksums, "snapshot.wasm"), None);
        assert_eq!(listed_digest("abc  python.wasm\n", "python.wasm"), None);
        assert_eq!(listed_digest(&format!("{}  python.wasm", "zz".repeat(32)), "python.wasm"), None);
    }

    /// The digest an installed module states (`None`: its bytes were read).
    fn stated_digest(module: &SharedModule) -> Option<[u8; 32]> {
        match module {
            SharedModule::Installed(installed) => Some(installed.digest()),
            SharedModule::Bytes(_) => None,
        }
    }

    /// A fresh install directory for `test`: a snapshot, a library, and `files`.
    fn install_with(test: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = crate::fresh_test_dir(test);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(PYTHON_SNAPSHOT), b"\0asm snapshot").unwrap();
        std::fs::write(dir.join(PYTHON_STDLIB), b"PK").unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn the_pre_initialised_interpreter_is_preferred_when_installed() {
        let dir = install_with("python-snapshot", &[(PYTHON_PLAIN, b"\0asm plain")]);
        assert_eq!(&OsPython::new(dir.clone()).load().unwrap().module.bytes().unwrap()[..], b"\0asm snapshot");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_preloaded_interpreter_is_used_only_while_its_key_matches_the_install() {
        let dir = install_with("python-preloaded", &[]);
        let python = OsPython::new(dir.clone());
        // No checksums: not an install the fetch script made, so nothing is preloaded for it.
        let preloaded = MadeInterpreter::Preloaded;
        assert!(python.install_made(preloaded, b"\0asm preloaded").unwrap_err().contains(PYTHON_CHECKSUMS));
        std::fs::write(dir.join(PYTHON_CHECKSUMS), b"abc  python.wasm\n").unwrap();
        assert!(!python.is_current(preloaded));
        python.install_made(preloaded, b"\0asm preloaded").unwrap();
        assert!(python.is_current(preloaded));
        let install = OsPython::new(dir.clone()).load().unwrap();
        assert_eq!(&install.module.bytes().unwrap()[..], b"\0asm snapshot");
        let preloaded = install.preloaded.as_ref().unwrap();
        assert_eq!(
            (preloaded.module().map(|module| &module[..]), preloaded.packages.len()),
            (Some(&b"\0asm preloaded"[..]), PRELOAD_PACKAGES.len())
        );
        // A new install (other checksums) makes it stale: it is not used.
        std::fs::write(dir.join(PYTHON_CHECKSUMS), b"def  python.wasm\n").unwrap();
        assert!(!python.is_current(MadeInterpreter::Preloaded));
        assert!(OsPython::new(dir.clone()).load().unwrap().preloaded.is_none());
        // No temporary files are left behind.
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names.len(), 5, "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_base_interpreter_runs_programs_while_current_named_by_the_digest_recorded_with_it() {
        let listed = format!("{}  python-snapshot.wasm\n", "11".repeat(32));
        let dir = install_with("python-base", &[(PYTHON_CHECKSUMS, listed.as_bytes())]);
        let python = OsPython::new(dir.clone());
        let base = MadeInterpreter::Base;
        assert!(!python.is_current(base));
        assert_eq!(
            stated_digest(&python.load().unwrap().module),
            Some([0x11; 32]),
            "the install's snapshot, as listed"
        );
        python.install_made(base, b"\0asm base").unwrap();
        assert!(python.is_current(base) && !python.is_current(MadeInterpreter::Preloaded));
        let install = OsPython::new(dir.clone()).load().unwrap();
        assert_eq!(&install.module.bytes().unwrap()[..], b"\0asm base");
        assert_eq!(stated_digest(&install.module), Some(<[u8; 32]>::from(Sha256::digest(b"\0asm base"))));
        // Each kind has its own key: the base's does not make a preloaded one current.
        assert_ne!(python.key(base).unwrap(), python.key(MadeInterpreter::Preloaded).unwrap());
        // A key file without the digest does not name it: the install's snapshot runs.
        let key = python.key(base).unwrap();
        std::fs::write(dir.join(PYTHON_BASE_KEY), format!("{key}\n")).unwrap();
        assert_eq!(&OsPython::new(dir.clone()).load().unwrap().module.bytes().unwrap()[..], b"\0asm snapshot");
        // Rewritten to another length under a loaded install: refused before it is read.
        python.install_made(base, b"\0asm base").unwrap();
        let loaded = OsPython::new(dir.clone()).load().unwrap();
        std::fs::write(dir.join(PYTHON_BASE), b"\0asm other base").unwrap();
        assert!(loaded.module.bytes().unwrap_err().contains("changed"));
        // A new install makes it stale.
        python.install_made(base, b"\0asm base").unwrap();
        std::fs::write(dir.join(PYTHON_CHECKSUMS), format!("{}  python-snapshot.wasm\n", "22".repeat(32))).unwrap();
        assert!(!python.is_current(base));
        assert_eq!(&OsPython::new(dir.clone()).load().unwrap().module.bytes().unwrap()[..], b"\0asm snapshot");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_preload_script_imports_every_package_that_chooses_it() {
        for package in PRELOAD_PACKAGES {
            assert!(PRELOAD_SCRIPT.lines().any(|line| line == format!("import {package}")), "{package}");
        }
    }

    #[test]
    fn a_file_past_the_bound_is_refused_before_it_is_read() {
        let dir = crate::fresh_test_dir("python-big");
        std::fs::create_dir_all(&dir).unwrap();
        // Sparse: nothing is written or read, only the size is looked at.
        std::fs::File::create(dir.join("python.wasm")).unwrap().set_len(MAX_PYTHON_FILE_BYTES + 1).unwrap();
        std::fs::write(dir.join("python-stdlib.zip"), b"PK").unwrap();
        let why = OsPython::new(dir.clone()).load().unwrap_err();
        assert!(why.ends_with(&format!("over the {MAX_PYTHON_FILE_BYTES} bytes allowed")), "{why}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
