//! A scripted guest engine: small programs written in Rust against [`Syscalls`], each named by
//! the module bytes after the WebAssembly magic (`\0asmcat` runs `cat`; see [`module`]).
//!
//! Deterministic and cheap, it lets tests, fuzzers and the simulator drive every process path of
//! the kernel (stdin, output back-pressure, exits, kills, files, prompts) without compiling
//! anything. Scripts never panic: a failed step is an exit code naming it.
//!
//! | script | behaviour |
//! |---|---|
//! | `cat` | copies stdin to stdout until end-of-file, exit 0 |
//! | `spin` | runs forever (every slice) |
//! | `exit N` | exits with `N` at once |
//! | `flood N` | writes `N` bytes (`y`), alternating stdout and stderr per write, exit 0 |
//! | `files PATH` | creates PATH, writes, seeks, reads back, `pwrite`s, appends; exit 0 when the file reads `hello WORLD!`, else the failing step (10+) |
//! | `farwrite PATH` | opens PATH for writing and writes one byte at offset 2^40: exit 0 when refused with an errno, 1 when it succeeded, 2 when the open failed |
//! | `nbread` | sets stdin non-blocking and reads once: exit 0 with data, 11 on `EAGAIN`, 12 at end-of-file |
//! | `pipes` | a pipe to itself: writes through two descriptors of the write end, closes both, reads to end-of-file; exit 0 when it read `pingpong`, else the failing step (30+) |
//! | `killgroup` | signals its own group with `SIGTERM` (delivered after its slice) and spins |
//! | `hostcat PATH` | copies the file at PATH to stdout, waiting (parked) while its host calls are answered; exit 0, 2 when the open failed, 3 when a read did |
//! | `parent MODE CMD ARGS…` | starts `CMD ARGS…` (a script) as a child, reads its own stdin to end-of-file (or an error: exit 51), then reaps the child (`MODE` = `reap`: exits with the child's status) or just exits 0 |
//! | anything else | exit 127 |

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kernel::process::{ROOT_FD, STDERR_FD, STDIN_FD, STDOUT_FD};
use kernel::syscalls::engine::{
    Guest, GuestEngine, GuestError, GuestExit, GuestPoll, GuestProgram, GuestSpawn, SharedModule,
};
use kernel::syscalls::{OpenFlags, SysError, Syscalls, Whence};

/// The module bytes of script `name`.
pub fn module(name: &str) -> Vec<u8> {
    let mut bytes = b"\0asm".to_vec();
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

/// The engine. `polls` counts every slice any of its guests ran.
#[derive(Debug, Clone, Default)]
pub struct ScriptEngine {
    polls: Arc<AtomicUsize>,
    lose_vm: bool,
    /// Where real WebAssembly modules go (see [`ScriptEngine::with_modules`]).
    modules: Option<Arc<dyn GuestEngine>>,
}

/// The start of a real WebAssembly module: the magic and version 1.
const WASM_MODULE_HEADER: &[u8] = b"\0asm\x01\0\0\0";

impl ScriptEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine whose guests never give their VM back: the engine bug the kernel must survive.
    pub fn losing_vms() -> Self {
        Self { lose_vm: true, ..Self::default() }
    }

    /// The same engine, handing real WebAssembly modules (`\0asm` and version 1) to `modules`
    /// (the simulator's real guests run on the wasmtime engine this way, beside the scripts).
    pub fn with_modules(self, modules: Arc<dyn GuestEngine>) -> Self {
        Self { modules: Some(modules), ..self }
    }

    /// Slices run so far, by all guests of this engine (and its clones).
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::Relaxed)
    }
}

impl GuestEngine for ScriptEngine {
    /// An installed module (the Python interpreter) is real WebAssembly: `modules` loads it,
    /// reading it only if it must.
    fn load_shared(
        &self,
        module: &SharedModule,
        max_wasm_stack_bytes: u64,
    ) -> Result<Arc<dyn GuestProgram>, GuestError> {
        let real = match module {
            SharedModule::Bytes(bytes) => bytes.starts_with(WASM_MODULE_HEADER),
            SharedModule::Installed(_) => true,
        };
        match self.modules.as_ref().filter(|_| real) {
            Some(modules) => modules.load_shared(module, max_wasm_stack_bytes),
            None => self.load(&module.bytes().map_err(GuestError::InvalidProgram)?, max_wasm_stack_bytes),
        }
    }

    fn load(&self, bytes: &[u8], max_wasm_stack_bytes: u64) -> Result<Arc<dyn GuestProgram>, GuestError> {
        if let Some(modules) = self.modules.as_ref().filter(|_| bytes.starts_with(WASM_MODULE_HEADER)) {
            return modules.load(bytes, max_wasm_stack_bytes);
        }
        let name = String::from_utf8_lossy(bytes.get(4..).unwrap_or_default()).into_owned();
        if name == "invalid" {
            return Err(GuestError::InvalidProgram("no _start".into()));
        }
        Ok(Arc::new(Script { name, engine: self.clone() }))
    }
}

#[derive(Debug)]
struct Script {
    name: String,
    engine: ScriptEngine,
}

impl GuestProgram for Script {
    fn spawn(&self, spawn: GuestSpawn) -> Result<Box<dyn Guest>, GuestError> {
        Ok(Box::new(ScriptGuest {
            name: self.name.clone(),
            args: spawn.args,
            engine: self.engine.clone(),
            written: 0,
            child: None,
            fd: None,
        }))
    }
}

#[derive(Debug)]
struct ScriptGuest {
    name: String,
    args: Vec<String>,
    engine: ScriptEngine,
    written: u64,
    child: Option<u32>,
    /// `hostcat`'s open file.
    fd: Option<u32>,
}

fn exited(code: i32) -> GuestPoll {
    GuestPoll::Exited(GuestExit { code, message: None })
}

impl ScriptGuest {
    fn arg(&self, index: usize) -> &str {
        self.args.get(index).map_or("", String::as_str)
    }

    fn cat(sys: &mut Syscalls) -> GuestPoll {
        let mut buf = [0u8; 4096];
        loop {
            match sys.read(STDIN_FD, &mut buf) {
                Ok(0) => return exited(0),
                Ok(read) => {
                    let mut data = buf.get(..read).unwrap_or_default();
                    while !data.is_empty() {
                        match sys.write(STDOUT_FD, data) {
                            Ok(written) => data = data.get(written..).unwrap_or_default(),
                            // Output back-pressure mid-copy: a real cat would wait; this one
                            // has no memory of the rest, so it reports it.
                            Err(_) => return exited(3),
                        }
                    }
                }
                Err(SysError::WouldBlock) => return GuestPoll::Blocked,
                Err(SysError::Errno(_)) => return exited(2),
            }
        }
    }

    fn parent(&mut self, sys: &mut Syscalls) -> GuestPoll {
        let child = match self.child {
            Some(child) => child,
            None => match sys.spawn(
                self.args.get(2..).unwrap_or_default().to_vec(),
                Vec::new(),
                [u32::MAX, STDOUT_FD, STDERR_FD],
                None,
            ) {
                Ok(child) => {
                    self.child = Some(child);
                    child
                }
                Err(SysError::WouldBlock) => return GuestPoll::Blocked,
                Err(SysError::Errno(_)) => return exited(50),
            },
        };
        let mut buf = [0u8; 64];
        loop {
            match sys.read(STDIN_FD, &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(SysError::WouldBlock) => return GuestPoll::Blocked,
                Err(SysError::Errno(_)) => return exited(51),
            }
        }
        if self.arg(1) != "reap" {
            return exited(0);
        }
        match sys.waitpid(i32::try_from(child).unwrap_or(-1), 0) {
            Ok((status, _)) => exited(i32::try_from(status).unwrap_or(52)),
            Err(SysError::WouldBlock) => GuestPoll::Blocked,
            Err(SysError::Errno(_)) => exited(53),
        }
    }

    /// `hostcat`: each call that parks is made again at the next poll (the kernel answers it from
    /// the host calls it has collected); one that completes is settled, as an engine's import is.
    fn host_cat(&mut self, sys: &mut Syscalls) -> GuestPoll {
        let fd = match self.fd {
            Some(fd) => fd,
            None => match sys.open_at(ROOT_FD, self.arg(1), OpenFlags { read: true, ..OpenFlags::default() }) {
                Ok(fd) => {
                    sys.call_settled();
                    self.fd = Some(fd);
                    fd
                }
                Err(SysError::WouldBlock) => return GuestPoll::Blocked,
                Err(SysError::Errno(_)) => return exited(2),
            },
        };
        let mut buf = [0u8; 4096];
        loop {
            match sys.read(fd, &mut buf) {
                Ok(0) => return exited(0),
                Ok(read) => {
                    sys.call_settled();
                    if sys.write(STDOUT_FD, buf.get(..read).unwrap_or_default()) != Ok(read) {
                        return exited(4);
                    }
                }
                Err(SysError::WouldBlock) => return GuestPoll::Blocked,
                Err(SysError::Errno(_)) => return exited(3),
            }
        }
    }

    fn flood(&mut self, sys: &mut Syscalls) -> GuestPoll {
        let total: u64 = self.arg(1).parse().unwrap_or(0);
        let chunk = [b'y'; 4099];
        while self.written < total {
            let want = usize::try_from(total - self.written).unwrap_or(usize::MAX).min(chunk.len());
            let fd = if self.written.is_multiple_of(2) { STDOUT_FD } else { STDERR_FD };
            match sys.write(fd, chunk.get(..want).unwrap_or_default()) {
                Ok(written) => self.written += u64::try_from(written).unwrap_or(u64::MAX),
                Err(SysError::WouldBlock) => return GuestPoll::Blocked,
                Err(SysError::Errno(_)) => return exited(1),
            }
        }
        exited(0)
    }
}

/// The `files` script; `Err(step)` names the first step that failed.
fn files(sys: &mut Syscalls, path: &str) -> Result<(), i32> {
    let create = OpenFlags { read: true, write: true, create: true, truncate: true, ..OpenFlags::default() };
    let fd = sys.open_at(ROOT_FD, path, create).map_err(|_| 10)?;
    sys.write(fd, b"hello ").map_err(|_| 11)?;
    sys.write(fd, b"world").map_err(|_| 12)?;
    sys.seek(fd, 0, Whence::Start).map_err(|_| 13)?;
    let mut buf = [0u8; 32];
    let read = sys.read(fd, &mut buf).map_err(|_| 14)?;
    if buf.get(..read) != Some(&b"hello world"[..]) {
        return Err(15);
    }
    sys.pwrite(fd, b"WORLD", 6).map_err(|_| 16)?;
    let append = OpenFlags { write: true, append: true, ..OpenFlags::default() };
    let tail = sys.open_at(ROOT_FD, path, append).map_err(|_| 17)?;
    sys.write(tail, b"!").map_err(|_| 18)?;
    let read = sys.pread(fd, &mut buf, 0).map_err(|_| 19)?;
    if buf.get(..read) != Some(&b"hello WORLD!"[..]) {
        return Err(20);
    }
    sys.close(tail).map_err(|_| 21)?;
    sys.close(fd).map_err(|_| 22)
}

/// The `farwrite` script: a positional write far past any file's end.
fn far_write(sys: &mut Syscalls, path: &str) -> i32 {
    let Ok(fd) = sys.open_at(ROOT_FD, path, OpenFlags { write: true, ..OpenFlags::default() }) else { return 2 };
    match sys.pwrite(fd, b"x", 1 << 40) {
        Err(SysError::Errno(_)) => 0,
        Ok(_) | Err(SysError::WouldBlock) => 1,
    }
}

/// The `pipes` script; `Err(step)` names the first step that failed.
/// `pipes default` leaves `SIGPIPE` at its default action (the last write then ends the
/// process); plain `pipes` ignores it and sees `EPIPE`.
fn pipes(sys: &mut Syscalls, mode: &str) -> Result<(), i32> {
    const SIGNAL_IGNORE: u32 = 1;
    if mode != "default" {
        sys.sigaction(kernel::process::SIGPIPE, SIGNAL_IGNORE, 0, 0).map_err(|_| 29)?;
    }
    let (read, write) = sys.pipe().map_err(|_| 30)?;
    let copy = sys.dup(write).map_err(|_| 31)?;
    sys.write(write, b"ping").map_err(|_| 32)?;
    sys.write(copy, b"pong").map_err(|_| 33)?;
    sys.close(write).map_err(|_| 34)?;
    sys.close(copy).map_err(|_| 35)?;
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    loop {
        match sys.read(read, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(_) => return Err(36),
        }
    }
    if got != b"pingpong" {
        return Err(37);
    }
    // The read end is closed too: writing now would be EPIPE.
    let (read_end, write_end) = sys.pipe().map_err(|_| 38)?;
    sys.close(read_end).map_err(|_| 38)?;
    match sys.write(write_end, b"x") {
        Err(SysError::Errno(kernel::vfs::Errno::EPIPE)) => Ok(()),
        _ => Err(39),
    }
}

/// The `nbread` script.
fn nonblocking_read(sys: &mut Syscalls) -> i32 {
    if sys.set_flags(STDIN_FD, false, true).is_err() {
        return 13;
    }
    let mut buf = [0u8; 64];
    match sys.read(STDIN_FD, &mut buf) {
        Ok(0) => 12,
        Ok(_) => 0,
        Err(SysError::Errno(kernel::vfs::Errno::EAGAIN)) => 11,
        Err(_) => 14,
    }
}

impl Guest for ScriptGuest {
    fn poll(&mut self, mut sys: Syscalls) -> (Option<Syscalls>, GuestPoll) {
        self.engine.polls.fetch_add(1, Ordering::Relaxed);
        if self.engine.lose_vm {
            return (None, GuestPoll::Running);
        }
        let poll = match self.name.as_str() {
            "cat" => Self::cat(&mut sys),
            "spin" => GuestPoll::Running,
            "exit" => exited(self.arg(1).parse().unwrap_or(0)),
            "flood" => self.flood(&mut sys),
            "files" => exited(files(&mut sys, self.arg(1)).err().unwrap_or(0)),
            "nbread" => exited(nonblocking_read(&mut sys)),
            "farwrite" => exited(far_write(&mut sys, self.arg(1))),
            "parent" => self.parent(&mut sys),
            "hostcat" => self.host_cat(&mut sys),
            "pipes" => exited(pipes(&mut sys, self.arg(1)).err().unwrap_or(0)),
            "killgroup" => match sys.kill(0, kernel::process::SIGTERM) {
                Ok(()) => GuestPoll::Running,
                Err(_) => exited(40),
            },
            _ => exited(127),
        };
        (Some(sys), poll)
    }

    fn kill(&mut self) {}
}
