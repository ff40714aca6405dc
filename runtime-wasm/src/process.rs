//! The structured arguments of the `host_process` calls that start programs and reap them —
//! `proc_spawn_v3`, `proc_exec`, `proc_waitpid_v2`, `proc_signal_mask_v2` — decoded from the
//! guest's bytes into the types [`WasiHost`](crate::WasiHost) takes.
//!
//! The encodings are the original's (the AgentOS patched wasi-libc and Rust std):
//!
//! - argv: NUL-terminated strings back to back, `argv[0]` included;
//! - envp: `KEY=VALUE\0` entries, the child's whole environment (entries without `=` are
//!   skipped; an empty blob is an empty environment, not the parent's);
//! - the file-action stream of `proc_spawn_v3`: records of a 24-byte little-endian header
//!   `(cmd u32, fd i32, source_fd i32, oflag i32, mode u32, path_len u32)` followed by
//!   `path_len` bytes of path, no NUL, no padding; `oflag` holds Linux `O_*` numbers;
//! - signal sets: bit `signal - 1`, signals 1–32 in the low word, 33–64 in the high word.

pub use kernel::syscalls::{ChildSpawn as Spawn, FileAction, OpenFlags, ProgramExec as Exec, SyncFlags};

use crate::abi::Errno;

/// Most file actions one spawn may carry (the original's `maxSpawnFileActions` default); more is
/// `E2BIG`. A shell's redirections and pipe-end closes are a handful per command.
pub const MAX_SPAWN_FILE_ACTIONS: usize = 4096;
/// Most bytes of file actions one spawn may carry (the original's `maxSpawnFileActionBytes`
/// default): [`MAX_SPAWN_FILE_ACTIONS`] records with paths of a few hundred bytes each. Longer is
/// `E2BIG`, checked before the stream is copied out of the guest.
pub const MAX_SPAWN_FILE_ACTION_BYTES: usize = 1 << 20;

/// Bytes of a file action's fixed header.
const FILE_ACTION_HEADER_BYTES: usize = 24;

/// The `posix_spawnattr_t` flags (musl's values) a spawn accepts; any other bit is `ENOTSUP`.
pub const SPAWN_FLAGS_KNOWN: u32 = 0xff;
/// `POSIX_SPAWN_RESETIDS`: the child's effective ids become the real ones. Accepted as a no-op:
/// the kernel's processes run as one user.
pub const SPAWN_RESETIDS: u32 = 1;
/// `POSIX_SPAWN_SETPGROUP`: the child joins process group `pgroup` (0: a new one it leads).
pub const SPAWN_SETPGROUP: u32 = 2;
/// `POSIX_SPAWN_SETSIGDEF`: the listed signals act by default in the child. Always true here:
/// a child starts with every disposition at its default.
pub const SPAWN_SETSIGDEF: u32 = 4;
/// `POSIX_SPAWN_SETSIGMASK`: the child's signal mask. The mask argument is applied whether or
/// not the flag is set, like the original (Rust passes the parent's mask).
pub const SPAWN_SETSIGMASK: u32 = 8;
/// `POSIX_SPAWN_SETSID`: the child leads a new session.
pub const SPAWN_SETSID: u32 = 128;

/// Linux `O_ACCMODE` and its values.
const O_ACCMODE: u32 = 0o3;
const O_RDONLY: u32 = 0o0;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
/// The Linux `O_*` creation and status flags a spawn's OPEN action honours; others
/// (`O_CLOEXEC`, `O_NOCTTY`, `O_LARGEFILE`, …) change nothing here and are ignored.
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const O_NONBLOCK: u32 = 0o4000;
const O_DIRECTORY: u32 = 0o200000;
const O_NOFOLLOW: u32 = 0o400000;
const O_DSYNC: u32 = 0o10000;
/// Linux's `O_SYNC` holds `O_DSYNC`'s bit too (`__O_SYNC | O_DSYNC`); `O_RSYNC` is `O_SYNC`.
const O_SYNC: u32 = 0o4010000;

/// Decodes Linux `O_*` flags (a spawn's OPEN action) into the kernel's open flags; an access
/// mode of 3 is `EINVAL`.
pub fn open_flags_from_linux(oflag: u32) -> Result<OpenFlags, Errno> {
    let (read, write) = match oflag & O_ACCMODE {
        O_RDONLY => (true, false),
        O_WRONLY => (false, true),
        O_RDWR => (true, true),
        _ => return Err(Errno::Inval),
    };
    Ok(OpenFlags {
        read,
        write,
        create: oflag & O_CREAT != 0,
        exclusive: oflag & O_EXCL != 0,
        truncate: oflag & O_TRUNC != 0,
        append: oflag & O_APPEND != 0,
        nonblocking: oflag & O_NONBLOCK != 0,
        directory: oflag & O_DIRECTORY != 0,
        follow: oflag & O_NOFOLLOW == 0,
        sync: SyncFlags { data: oflag & O_DSYNC != 0, file: oflag & O_SYNC == O_SYNC, read: false },
    })
}

/// How a reaped child ended (`proc_waitpid_v2`'s outputs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildStatus {
    pub pid: u32,
    /// Its `exit()` status (0–255); 0 when a signal ended it.
    pub exit_code: u32,
    /// The signal that ended it; 0 for an exit.
    pub signal: u32,
    pub core_dumped: bool,
}

/// `proc_signal_mask_v2`'s `how`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalMaskHow {
    /// `SIG_BLOCK` (0): the mask gains the set.
    Block,
    /// `SIG_UNBLOCK` (1): the mask loses the set.
    Unblock,
    /// `SIG_SETMASK` (2): the mask becomes the set.
    SetMask,
    /// 3: the mask is only read.
    Query,
}

impl SignalMaskHow {
    /// `how` as the guest passes it; `EINVAL` past 3.
    pub fn from_raw(how: u32) -> Result<SignalMaskHow, Errno> {
        match how {
            0 => Ok(SignalMaskHow::Block),
            1 => Ok(SignalMaskHow::Unblock),
            2 => Ok(SignalMaskHow::SetMask),
            3 => Ok(SignalMaskHow::Query),
            _ => Err(Errno::Inval),
        }
    }
}

/// Bits of the signals no mask holds: `SIGKILL` (9) and `SIGSTOP` (19).
pub const UNBLOCKABLE_SIGNALS: u64 = (1 << 8) | (1 << 18);

/// A signal set from its two words, less `SIGKILL` and `SIGSTOP`.
pub fn signal_set(low: u32, high: u32) -> u64 {
    (u64::from(low) | (u64::from(high) << 32)) & !UNBLOCKABLE_SIGNALS
}

/// NUL-terminated strings back to back (argv); a missing final NUL ends the last string too.
/// `EINVAL` if one is not UTF-8.
pub fn nul_strings(bytes: &[u8]) -> Result<Vec<String>, Errno> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    bytes.split(|byte| *byte == 0).map(|part| utf8(part).map(str::to_owned)).collect()
}

/// An environment blob: its `KEY=VALUE` entries, skipping those without `=` or with an empty key.
pub fn env_entries(bytes: &[u8]) -> Result<Vec<String>, Errno> {
    let entries = nul_strings(bytes)?;
    Ok(entries.into_iter().filter(|entry| entry.split_once('=').is_some_and(|(key, _)| !key.is_empty())).collect())
}

/// `bytes` as UTF-8; `EINVAL` otherwise.
pub fn utf8(bytes: &[u8]) -> Result<&str, Errno> {
    std::str::from_utf8(bytes).map_err(|_| Errno::Inval)
}

/// The file-action stream of `proc_spawn_v3` (see the module docs). A truncated record, a path
/// running past the stream, an unknown command or a non-UTF-8 path is `EINVAL`; a negative
/// descriptor where one is needed `EBADF`; more than [`MAX_SPAWN_FILE_ACTIONS`] records
/// `E2BIG`; an OPEN or CHDIR without a path `ENOENT`; an OPEN with access mode 3 `EINVAL`.
pub fn decode_file_actions(bytes: &[u8]) -> Result<Vec<FileAction>, Errno> {
    let mut actions = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if actions.len() >= MAX_SPAWN_FILE_ACTIONS {
            return Err(Errno::TooBig);
        }
        let (header, tail) = rest.split_at_checked(FILE_ACTION_HEADER_BYTES).ok_or(Errno::Inval)?;
        let word = |index: usize| -> Result<u32, Errno> {
            let start = index.checked_mul(4).ok_or(Errno::Inval)?;
            let bytes = header.get(start..start.saturating_add(4)).ok_or(Errno::Inval)?;
            Ok(u32::from_le_bytes(bytes.try_into().map_err(|_| Errno::Inval)?))
        };
        let (command, fd, source, oflag, mode, path_len) = (word(0)?, word(1)?, word(2)?, word(3)?, word(4)?, word(5)?);
        let path_len = usize::try_from(path_len).map_err(|_| Errno::Inval)?;
        let (path, tail) = tail.split_at_checked(path_len).ok_or(Errno::Inval)?;
        rest = tail;
        let path = utf8(path)?.to_owned();
        // Descriptors travel as i32: a negative one names nothing.
        let descriptor = |fd: u32| if i32::try_from(fd).is_ok() { Ok(fd) } else { Err(Errno::Badf) };
        let named = |path: String| if path.is_empty() { Err(Errno::NoEnt) } else { Ok(path) };
        let action = match command {
            1 => FileAction::Close { fd: descriptor(fd)? },
            2 => FileAction::Dup2 { from: source, to: descriptor(fd)? },
            3 => {
                let fd = descriptor(fd)?;
                FileAction::Open { fd, path: named(path)?, flags: open_flags_from_linux(oflag)?, mode }
            }
            4 => FileAction::Chdir { path: named(path)? },
            5 => FileAction::Fchdir { fd: descriptor(fd)? },
            6 => FileAction::CloseFrom { fd: descriptor(fd)? },
            _ => return Err(Errno::Inval),
        };
        actions.push(action);
    }
    Ok(actions)
}

/// Encodes file actions as the guest does (for tests and tools that drive the ABI).
pub fn encode_file_actions(actions: &[FileAction]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for action in actions {
        let (command, fd, source, oflag, mode, path) = match action {
            FileAction::Close { fd } => (1, *fd, u32::MAX, 0, 0, ""),
            FileAction::Dup2 { from, to } => (2, *to, *from, 0, 0, ""),
            FileAction::Open { fd, path, flags, mode } => (3, *fd, u32::MAX, linux_oflag(flags), *mode, path.as_str()),
            FileAction::Chdir { path } => (4, u32::MAX, u32::MAX, 0, 0, path.as_str()),
            FileAction::Fchdir { fd } => (5, *fd, u32::MAX, 0, 0, ""),
            FileAction::CloseFrom { fd } => (6, *fd, u32::MAX, 0, 0, ""),
        };
        let path_len = u32::try_from(path.len()).unwrap_or(u32::MAX);
        for word in [command, fd, source, oflag, mode, path_len] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(path.as_bytes());
    }
    bytes
}

/// `flags` as Linux `O_*` flags.
fn linux_oflag(flags: &OpenFlags) -> u32 {
    let access = match (flags.read, flags.write) {
        (_, false) => O_RDONLY,
        (false, true) => O_WRONLY,
        (true, true) => O_RDWR,
    };
    let bits = [
        (flags.create, O_CREAT),
        (flags.exclusive, O_EXCL),
        (flags.truncate, O_TRUNC),
        (flags.append, O_APPEND),
        (flags.nonblocking, O_NONBLOCK),
        (flags.directory, O_DIRECTORY),
        (!flags.follow, O_NOFOLLOW),
        (flags.sync.data, O_DSYNC),
        (flags.sync.file, O_SYNC),
    ];
    bits.into_iter().filter(|(set, _)| *set).fold(access, |oflag, (_, bit)| oflag | bit)
}

impl SignalMaskHow {
    /// The kernel's mask change.
    pub(crate) fn to_kernel(self) -> kernel::syscalls::SignalMaskChange {
        use kernel::syscalls::SignalMaskChange as Kernel;
        match self {
            SignalMaskHow::Block => Kernel::Block,
            SignalMaskHow::Unblock => Kernel::Unblock,
            SignalMaskHow::SetMask => Kernel::Set,
            SignalMaskHow::Query => Kernel::Query,
        }
    }
}

impl ChildStatus {
    /// How the kernel says the child ended.
    pub(crate) fn of_kernel(exit: kernel::syscalls::ChildExit) -> ChildStatus {
        ChildStatus { pid: exit.pid, exit_code: exit.exit_code(), signal: exit.signal.unwrap_or(0), core_dumped: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(command: u32, fd: i32, source: i32, oflag: u32, mode: u32, path: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [command, fd.cast_unsigned(), source.cast_unsigned(), oflag, mode] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&u32::try_from(path.len()).unwrap_or(u32::MAX).to_le_bytes());
        bytes.extend_from_slice(path);
        bytes
    }

    #[test]
    fn rusts_stdio_actions_decode() {
        // What Rust's std sends for `stdin(null) stdout(pipe) stderr(inherit)` with pipe end 7
        // (write) and 6 (read) to close afterwards.
        let mut stream = record(3, 0, -1, 0, 0o666, b"/dev/null");
        stream.extend(record(2, 1, 7, 0, 0, b""));
        stream.extend(record(1, 6, -1, 0, 0, b""));
        stream.extend(record(1, 7, -1, 0, 0, b""));
        let read_only = OpenFlags { read: true, follow: true, ..OpenFlags::default() };
        let actions = decode_file_actions(&stream);
        assert_eq!(
            actions,
            Ok(vec![
                FileAction::Open { fd: 0, path: "/dev/null".into(), flags: read_only, mode: 0o666 },
                FileAction::Dup2 { from: 7, to: 1 },
                FileAction::Close { fd: 6 },
                FileAction::Close { fd: 7 },
            ])
        );
        assert_eq!(actions.map(|actions| encode_file_actions(&actions)), Ok(stream));
        assert_eq!(decode_file_actions(&[]), Ok(Vec::new()));
    }

    #[test]
    fn linux_open_flags() {
        let flags = open_flags_from_linux(O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | 0o2000000);
        assert_eq!(
            flags,
            Ok(OpenFlags {
                write: true,
                create: true,
                truncate: true,
                append: true,
                follow: true,
                ..OpenFlags::default()
            })
        );
        assert_eq!(
            open_flags_from_linux(O_RDWR | O_NOFOLLOW).map(|f| (f.read, f.write, f.follow)),
            Ok((true, true, false))
        );
        assert_eq!(open_flags_from_linux(3), Err(Errno::Inval));
    }

    #[test]
    fn malformed_streams_are_refused() {
        let close = record(1, 4, -1, 0, 0, b"");
        assert_eq!(decode_file_actions(close.get(..23).unwrap_or_default()), Err(Errno::Inval), "short header");
        let mut long_path = record(4, 0, 0, 0, 0, b"/tmp");
        long_path.truncate(long_path.len() - 1);
        assert_eq!(decode_file_actions(&long_path), Err(Errno::Inval), "path past the end");
        assert_eq!(decode_file_actions(&record(7, 0, 0, 0, 0, b"")), Err(Errno::Inval), "unknown command");
        assert_eq!(decode_file_actions(&record(4, 0, 0, 0, 0, b"\xff")), Err(Errno::Inval), "not UTF-8");
        for command in [1, 2, 3, 5, 6] {
            assert_eq!(decode_file_actions(&record(command, -1, 0, 0, 0, b"x")), Err(Errno::Badf), "cmd {command}");
        }
        assert_eq!(decode_file_actions(&record(3, 0, 0, 0, 0, b"")), Err(Errno::NoEnt));
        assert_eq!(decode_file_actions(&record(4, 0, 0, 0, 0, b"")), Err(Errno::NoEnt));
        assert_eq!(decode_file_actions(&record(3, 0, 0, 3, 0, b"/x")), Err(Errno::Inval));
        let too_many = close.repeat(MAX_SPAWN_FILE_ACTIONS + 1);
        assert_eq!(decode_file_actions(&too_many), Err(Errno::TooBig));
        assert_eq!(decode_file_actions(&close.repeat(MAX_SPAWN_FILE_ACTIONS)).map(|a| a.len()), Ok(4096));
    }

    #[test]
    fn strings_environments_and_signal_sets() {
        assert_eq!(nul_strings(b"ls\0-l\0\0"), Ok(vec!["ls".to_owned(), "-l".to_owned(), String::new()]));
        assert_eq!(nul_strings(b"ls\0-l"), Ok(vec!["ls".to_owned(), "-l".to_owned()]));
        assert_eq!(nul_strings(b""), Ok(Vec::new()));
        assert_eq!(nul_strings(b"\xff\0"), Err(Errno::Inval));
        assert_eq!(env_entries(b"A=1\0junk\0=x\0B=\0"), Ok(vec!["A=1".to_owned(), "B=".to_owned()]));
        assert_eq!(signal_set(u32::MAX, 1), (u64::from(u32::MAX) | (1 << 32)) & !UNBLOCKABLE_SIGNALS);
        assert_eq!(signal_set(1 << 8, 0), 0, "SIGKILL is dropped");
        assert_eq!(SignalMaskHow::from_raw(3), Ok(SignalMaskHow::Query));
        assert_eq!(SignalMaskHow::from_raw(4), Err(Errno::Inval));
    }
}
