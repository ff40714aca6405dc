//! `wasi_snapshot_preview1` ABI types: errno values, clock ids, file types, rights and the byte
//! layouts of the structs the host writes into guest memory.
//!
//! Numbers and layouts follow wasi-libc's `wasi/api.h` (the witx-generated header).

use std::fmt;

/// A guest file descriptor number.
pub type Fd = u32;

/// Standard input.
pub const STDIN: Fd = 0;
/// Standard output.
pub const STDOUT: Fd = 1;
/// Standard error.
pub const STDERR: Fd = 2;

macro_rules! errnos {
    ($($variant:ident = $value:literal, $name:literal;)*) => {
        /// A WASI error number (`__wasi_errno_t`), as returned to the guest.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum Errno {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant = $value,
            )*
        }

        impl Errno {
            /// The errno's name as in POSIX (`"EBADF"`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Errno::$variant => $name,)*
                }
            }

            /// The errno for a raw value, if it is one WASI defines.
            pub fn from_raw(raw: u16) -> Option<Errno> {
                match raw {
                    $($value => Some(Errno::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    Success = 0, "ESUCCESS";
    TooBig = 1, "E2BIG";
    Acces = 2, "EACCES";
    AddrInUse = 3, "EADDRINUSE";
    AddrNotAvail = 4, "EADDRNOTAVAIL";
    AfNoSupport = 5, "EAFNOSUPPORT";
    Again = 6, "EAGAIN";
    Already = 7, "EALREADY";
    Badf = 8, "EBADF";
    BadMsg = 9, "EBADMSG";
    Busy = 10, "EBUSY";
    Canceled = 11, "ECANCELED";
    Child = 12, "ECHILD";
    ConnAborted = 13, "ECONNABORTED";
    ConnRefused = 14, "ECONNREFUSED";
    ConnReset = 15, "ECONNRESET";
    Deadlk = 16, "EDEADLK";
    DestAddrReq = 17, "EDESTADDRREQ";
    Dom = 18, "EDOM";
    Dquot = 19, "EDQUOT";
    Exist = 20, "EEXIST";
    Fault = 21, "EFAULT";
    Fbig = 22, "EFBIG";
    HostUnreach = 23, "EHOSTUNREACH";
    Idrm = 24, "EIDRM";
    Ilseq = 25, "EILSEQ";
    InProgress = 26, "EINPROGRESS";
    Intr = 27, "EINTR";
    Inval = 28, "EINVAL";
    Io = 29, "EIO";
    IsConn = 30, "EISCONN";
    IsDir = 31, "EISDIR";
    Loop = 32, "ELOOP";
    Mfile = 33, "EMFILE";
    Mlink = 34, "EMLINK";
    MsgSize = 35, "EMSGSIZE";
    Multihop = 36, "EMULTIHOP";
    NameTooLong = 37, "ENAMETOOLONG";
    NetDown = 38, "ENETDOWN";
    NetReset = 39, "ENETRESET";
    NetUnreach = 40, "ENETUNREACH";
    Nfile = 41, "ENFILE";
    NoBufs = 42, "ENOBUFS";
    NoDev = 43, "ENODEV";
    NoEnt = 44, "ENOENT";
    NoExec = 45, "ENOEXEC";
    NoLck = 46, "ENOLCK";
    NoLink = 47, "ENOLINK";
    NoMem = 48, "ENOMEM";
    NoMsg = 49, "ENOMSG";
    NoProtoOpt = 50, "ENOPROTOOPT";
    NoSpc = 51, "ENOSPC";
    NoSys = 52, "ENOSYS";
    NotConn = 53, "ENOTCONN";
    NotDir = 54, "ENOTDIR";
    NotEmpty = 55, "ENOTEMPTY";
    NotRecoverable = 56, "ENOTRECOVERABLE";
    NotSock = 57, "ENOTSOCK";
    NotSup = 58, "ENOTSUP";
    NoTty = 59, "ENOTTY";
    Nxio = 60, "ENXIO";
    Overflow = 61, "EOVERFLOW";
    OwnerDead = 62, "EOWNERDEAD";
    Perm = 63, "EPERM";
    Pipe = 64, "EPIPE";
    Proto = 65, "EPROTO";
    ProtoNoSupport = 66, "EPROTONOSUPPORT";
    ProtoType = 67, "EPROTOTYPE";
    Range = 68, "ERANGE";
    Rofs = 69, "EROFS";
    Spipe = 70, "ESPIPE";
    Srch = 71, "ESRCH";
    Stale = 72, "ESTALE";
    TimedOut = 73, "ETIMEDOUT";
    TxtBsy = 74, "ETXTBSY";
    Xdev = 75, "EXDEV";
    NotCapable = 76, "ENOTCAPABLE";
}

impl Errno {
    /// The raw value handed to the guest.
    pub fn raw(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Errno {}

/// A WASI clock (`__wasi_clockid_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockId {
    /// Wall-clock time since the Unix epoch.
    Realtime,
    /// Time since an arbitrary point that never goes backwards.
    Monotonic,
    /// CPU time consumed by the process.
    ProcessCpuTime,
    /// CPU time consumed by the thread.
    ThreadCpuTime,
}

impl ClockId {
    /// The clock for a raw id, `None` (→ `EINVAL`) for unknown ids.
    pub fn from_raw(raw: u32) -> Option<ClockId> {
        match raw {
            0 => Some(ClockId::Realtime),
            1 => Some(ClockId::Monotonic),
            2 => Some(ClockId::ProcessCpuTime),
            3 => Some(ClockId::ThreadCpuTime),
            _ => None,
        }
    }
}

/// `poll()` events, as wasi-libc numbers them (the `host_net.net_poll` ABI).
pub const POLLIN: u16 = 0x1;
pub const POLLOUT: u16 = 0x2;
pub const POLLHUP: u16 = 0x2000;
pub const POLLNVAL: u16 = 0x4000;

/// The type of the object a descriptor refers to (`__wasi_filetype_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Filetype {
    /// Unknown or not applicable.
    Unknown = 0,
    /// A block device.
    BlockDevice = 1,
    /// A character device (a terminal, a pipe presented as a tty, `/dev/null`).
    CharacterDevice = 2,
    /// A directory.
    Directory = 3,
    /// A regular file.
    RegularFile = 4,
    /// A datagram socket.
    SocketDgram = 5,
    /// A byte-stream socket (also used for pipes).
    SocketStream = 6,
    /// A symbolic link.
    SymbolicLink = 7,
}

/// `__WASI_FDFLAGS_APPEND`.
pub const FDFLAGS_APPEND: u16 = 1 << 0;
/// `__WASI_FDFLAGS_DSYNC`.
pub const FDFLAGS_DSYNC: u16 = 1 << 1;
/// `__WASI_FDFLAGS_NONBLOCK`.
pub const FDFLAGS_NONBLOCK: u16 = 1 << 2;
/// `__WASI_FDFLAGS_RSYNC`.
pub const FDFLAGS_RSYNC: u16 = 1 << 3;
/// `__WASI_FDFLAGS_SYNC`.
pub const FDFLAGS_SYNC: u16 = 1 << 4;
/// Every `FDFLAGS_*` bit WASI defines; a call passing others fails with `EINVAL`.
pub const FDFLAGS_ALL: u16 = FDFLAGS_APPEND | FDFLAGS_DSYNC | FDFLAGS_NONBLOCK | FDFLAGS_RSYNC | FDFLAGS_SYNC;

/// `__WASI_LOOKUPFLAGS_SYMLINK_FOLLOW`: follow a symbolic link in the last path component.
pub const LOOKUPFLAGS_SYMLINK_FOLLOW: u32 = 1 << 0;
/// Every `LOOKUPFLAGS_*` bit WASI defines; a call passing others fails with `EINVAL`.
pub const LOOKUPFLAGS_ALL: u32 = LOOKUPFLAGS_SYMLINK_FOLLOW;

/// `__WASI_OFLAGS_CREAT`: create the file if it does not exist.
pub const OFLAGS_CREAT: u16 = 1 << 0;
/// `__WASI_OFLAGS_DIRECTORY`: fail with `ENOTDIR` unless the path is a directory.
pub const OFLAGS_DIRECTORY: u16 = 1 << 1;
/// `__WASI_OFLAGS_EXCL`: with `OFLAGS_CREAT`, fail with `EEXIST` if the file exists.
pub const OFLAGS_EXCL: u16 = 1 << 2;
/// `__WASI_OFLAGS_TRUNC`: truncate the file to size 0.
pub const OFLAGS_TRUNC: u16 = 1 << 3;
/// Every `OFLAGS_*` bit WASI defines; a call passing others fails with `EINVAL`.
pub const OFLAGS_ALL: u16 = OFLAGS_CREAT | OFLAGS_DIRECTORY | OFLAGS_EXCL | OFLAGS_TRUNC;

/// `__WASI_FSTFLAGS_ATIM`: set the access time to the given value.
pub const FSTFLAGS_ATIM: u16 = 1 << 0;
/// `__WASI_FSTFLAGS_ATIM_NOW`: set the access time to the current time.
pub const FSTFLAGS_ATIM_NOW: u16 = 1 << 1;
/// `__WASI_FSTFLAGS_MTIM`: set the modification time to the given value.
pub const FSTFLAGS_MTIM: u16 = 1 << 2;
/// `__WASI_FSTFLAGS_MTIM_NOW`: set the modification time to the current time.
pub const FSTFLAGS_MTIM_NOW: u16 = 1 << 3;
/// Every `FSTFLAGS_*` bit WASI defines; a call passing others fails with `EINVAL`.
pub const FSTFLAGS_ALL: u16 = FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW;

/// `__WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME`: a clock subscription's timeout is an
/// absolute time of its clock rather than relative to now.
pub const SUBCLOCKFLAGS_ABSTIME: u16 = 1 << 0;
/// `__WASI_EVENTRWFLAGS_FD_READWRITE_HANGUP`: the peer of a descriptor event hung up.
pub const EVENTRWFLAGS_HANGUP: u16 = 1 << 0;

/// `__WASI_DIRCOOKIE_START`: the `fd_readdir` cookie of a directory's first entry.
pub const DIRCOOKIE_START: u64 = 0;

/// `__WASI_RIGHTS_FD_DATASYNC`.
pub const RIGHTS_FD_DATASYNC: u64 = 1 << 0;
/// `__WASI_RIGHTS_FD_READ`.
pub const RIGHTS_FD_READ: u64 = 1 << 1;
/// `__WASI_RIGHTS_FD_SEEK`.
pub const RIGHTS_FD_SEEK: u64 = 1 << 2;
/// `__WASI_RIGHTS_FD_FDSTAT_SET_FLAGS`.
pub const RIGHTS_FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
/// `__WASI_RIGHTS_FD_SYNC`.
pub const RIGHTS_FD_SYNC: u64 = 1 << 4;
/// `__WASI_RIGHTS_FD_TELL`.
pub const RIGHTS_FD_TELL: u64 = 1 << 5;
/// `__WASI_RIGHTS_FD_WRITE`.
pub const RIGHTS_FD_WRITE: u64 = 1 << 6;
/// `__WASI_RIGHTS_FD_ADVISE`.
pub const RIGHTS_FD_ADVISE: u64 = 1 << 7;
/// `__WASI_RIGHTS_FD_ALLOCATE`.
pub const RIGHTS_FD_ALLOCATE: u64 = 1 << 8;
/// `__WASI_RIGHTS_PATH_CREATE_DIRECTORY`.
pub const RIGHTS_PATH_CREATE_DIRECTORY: u64 = 1 << 9;
/// `__WASI_RIGHTS_PATH_CREATE_FILE`.
pub const RIGHTS_PATH_CREATE_FILE: u64 = 1 << 10;
/// `__WASI_RIGHTS_PATH_LINK_SOURCE`.
pub const RIGHTS_PATH_LINK_SOURCE: u64 = 1 << 11;
/// `__WASI_RIGHTS_PATH_LINK_TARGET`.
pub const RIGHTS_PATH_LINK_TARGET: u64 = 1 << 12;
/// `__WASI_RIGHTS_PATH_OPEN`.
pub const RIGHTS_PATH_OPEN: u64 = 1 << 13;
/// `__WASI_RIGHTS_FD_READDIR`.
pub const RIGHTS_FD_READDIR: u64 = 1 << 14;
/// `__WASI_RIGHTS_PATH_READLINK`.
pub const RIGHTS_PATH_READLINK: u64 = 1 << 15;
/// `__WASI_RIGHTS_PATH_RENAME_SOURCE`.
pub const RIGHTS_PATH_RENAME_SOURCE: u64 = 1 << 16;
/// `__WASI_RIGHTS_PATH_RENAME_TARGET`.
pub const RIGHTS_PATH_RENAME_TARGET: u64 = 1 << 17;
/// `__WASI_RIGHTS_PATH_FILESTAT_GET`.
pub const RIGHTS_PATH_FILESTAT_GET: u64 = 1 << 18;
/// `__WASI_RIGHTS_PATH_FILESTAT_SET_SIZE`.
pub const RIGHTS_PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
/// `__WASI_RIGHTS_PATH_FILESTAT_SET_TIMES`.
pub const RIGHTS_PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
/// `__WASI_RIGHTS_FD_FILESTAT_GET`.
pub const RIGHTS_FD_FILESTAT_GET: u64 = 1 << 21;
/// `__WASI_RIGHTS_FD_FILESTAT_SET_SIZE`.
pub const RIGHTS_FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
/// `__WASI_RIGHTS_FD_FILESTAT_SET_TIMES`.
pub const RIGHTS_FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
/// `__WASI_RIGHTS_PATH_SYMLINK`.
pub const RIGHTS_PATH_SYMLINK: u64 = 1 << 24;
/// `__WASI_RIGHTS_PATH_REMOVE_DIRECTORY`.
pub const RIGHTS_PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
/// `__WASI_RIGHTS_PATH_UNLINK_FILE`.
pub const RIGHTS_PATH_UNLINK_FILE: u64 = 1 << 26;
/// `__WASI_RIGHTS_POLL_FD_READWRITE`.
pub const RIGHTS_POLL_FD_READWRITE: u64 = 1 << 27;
/// `__WASI_RIGHTS_SOCK_SHUTDOWN`.
pub const RIGHTS_SOCK_SHUTDOWN: u64 = 1 << 28;
/// `__WASI_RIGHTS_SOCK_ACCEPT`.
pub const RIGHTS_SOCK_ACCEPT: u64 = 1 << 29;
/// Every `RIGHTS_*` bit WASI defines.
pub const RIGHTS_ALL: u64 = (1 << 30) - 1;
/// What a directory descriptor reports (wasmtime's set, which libcs and suites expect).
pub const DIRECTORY_BASE_RIGHTS: u64 = RIGHTS_PATH_CREATE_DIRECTORY
    | RIGHTS_PATH_CREATE_FILE
    | RIGHTS_PATH_LINK_SOURCE
    | RIGHTS_PATH_LINK_TARGET
    | RIGHTS_PATH_OPEN
    | RIGHTS_FD_READDIR
    | RIGHTS_PATH_READLINK
    | RIGHTS_PATH_RENAME_SOURCE
    | RIGHTS_PATH_RENAME_TARGET
    | RIGHTS_PATH_SYMLINK
    | RIGHTS_PATH_REMOVE_DIRECTORY
    | RIGHTS_PATH_UNLINK_FILE
    | RIGHTS_PATH_FILESTAT_GET
    | RIGHTS_PATH_FILESTAT_SET_TIMES
    | RIGHTS_FD_FILESTAT_GET
    | RIGHTS_FD_FILESTAT_SET_TIMES;
/// What a directory passes on to the files opened through it (with its own rights).
pub const FILE_RIGHTS: u64 = RIGHTS_FD_DATASYNC
    | RIGHTS_FD_READ
    | RIGHTS_FD_SEEK
    | RIGHTS_FD_FDSTAT_SET_FLAGS
    | RIGHTS_FD_SYNC
    | RIGHTS_FD_TELL
    | RIGHTS_FD_WRITE
    | RIGHTS_FD_ADVISE
    | RIGHTS_FD_ALLOCATE
    | RIGHTS_FD_FILESTAT_GET
    | RIGHTS_FD_FILESTAT_SET_SIZE
    | RIGHTS_FD_FILESTAT_SET_TIMES
    | RIGHTS_POLL_FD_READWRITE;

/// Where `fd_seek` counts its offset from (`__wasi_whence_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Whence {
    /// From the start of the file.
    Set = 0,
    /// From the current offset.
    Cur = 1,
    /// From the end of the file.
    End = 2,
}

impl Whence {
    /// The whence for a raw value, `None` (→ `EINVAL`) for unknown values.
    pub fn from_raw(raw: u8) -> Option<Whence> {
        match raw {
            0 => Some(Whence::Set),
            1 => Some(Whence::Cur),
            2 => Some(Whence::End),
            _ => None,
        }
    }
}

/// Reads a little-endian `u64` at `at` (`EFAULT` past the end: only on a runtime bug).
fn le_u64_at(bytes: &[u8], at: usize) -> Result<u64, Errno> {
    bytes
        .get(at..at.saturating_add(8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or(Errno::Fault)
}

fn le_u32_at(bytes: &[u8], at: usize) -> Result<u32, Errno> {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or(Errno::Fault)
}

fn le_u16_at(bytes: &[u8], at: usize) -> Result<u16, Errno> {
    bytes
        .get(at..at.saturating_add(2))
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(u16::from_le_bytes)
        .ok_or(Errno::Fault)
}

/// Copies `fields` (offset, bytes) into a zeroed `N`-byte array; fields never overlap its end.
fn layout<const N: usize>(fields: &[(usize, &[u8])]) -> [u8; N] {
    let mut out = [0u8; N];
    for (at, bytes) in fields {
        for (dst, src) in out.iter_mut().skip(*at).zip(bytes.iter()) {
            *dst = *src;
        }
    }
    out
}

/// What `fd_filestat_get` / `path_filestat_get` report (`__wasi_filestat_t`, 64 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filestat {
    /// Device id of the device containing the file.
    pub dev: u64,
    /// File serial number (inode).
    pub ino: u64,
    /// The type of the file.
    pub filetype: Filetype,
    /// Number of hard links to the file.
    pub nlink: u64,
    /// For regular files, the size in bytes; for symbolic links, the length of the target.
    pub size: u64,
    /// Last access time, nanoseconds since the Unix epoch.
    pub atim: u64,
    /// Last data modification time, nanoseconds since the Unix epoch.
    pub mtim: u64,
    /// Last status change time, nanoseconds since the Unix epoch.
    pub ctim: u64,
}

impl Filestat {
    /// Size of the struct in guest memory.
    pub const SIZE: usize = 64;

    /// The guest-memory encoding: `dev` at 0, `ino` 8, `filetype` 16 (u8, then padding),
    /// `nlink` 24, `size` 32, `atim` 40, `mtim` 48, `ctim` 56; little endian.
    pub fn encode(&self) -> [u8; Filestat::SIZE] {
        layout(&[
            (0, &self.dev.to_le_bytes()),
            (8, &self.ino.to_le_bytes()),
            (16, &[self.filetype as u8]),
            (24, &self.nlink.to_le_bytes()),
            (32, &self.size.to_le_bytes()),
            (40, &self.atim.to_le_bytes()),
            (48, &self.mtim.to_le_bytes()),
            (56, &self.ctim.to_le_bytes()),
        ])
    }
}

/// One directory entry as a host lists it for `fd_readdir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    /// The cookie of the entry after this one (`fd_readdir` resumes from it).
    pub next: u64,
    /// The entry's file serial number.
    pub ino: u64,
    /// The entry's type.
    pub filetype: Filetype,
    /// The entry's name, without a NUL terminator.
    pub name: Vec<u8>,
}

impl Dirent {
    /// Size of the entry header (`__wasi_dirent_t`) in guest memory; the name follows it.
    pub const HEADER_SIZE: usize = 24;

    /// The header's guest-memory encoding: `d_next` at 0, `d_ino` 8, `d_namlen` 16 (u32),
    /// `d_type` 20 (u8, then padding); little endian. `EOVERFLOW` for a name of 4 GiB or more.
    pub fn encode_header(&self) -> Result<[u8; Dirent::HEADER_SIZE], Errno> {
        let namlen = u32::try_from(self.name.len()).map_err(|_| Errno::Overflow)?;
        Ok(layout(&[
            (0, &self.next.to_le_bytes()),
            (8, &self.ino.to_le_bytes()),
            (16, &namlen.to_le_bytes()),
            (20, &[self.filetype as u8]),
        ]))
    }

    /// The header followed by the name: what `fd_readdir` copies into the guest's buffer (the
    /// last entry that fits only partly is cut short).
    pub fn encode(&self) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::with_capacity(Dirent::HEADER_SIZE.saturating_add(self.name.len()));
        out.extend_from_slice(&self.encode_header()?);
        out.extend_from_slice(&self.name);
        Ok(out)
    }
}

/// What a `poll_oneoff` subscription waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionKind {
    /// A clock reaching a time.
    Clock {
        /// The clock.
        id: ClockId,
        /// The time to wait for, in nanoseconds: absolute (a value of the clock) when `absolute`,
        /// else relative to when the call started.
        timeout_ns: u64,
        /// How much later than `timeout_ns` the event may fire.
        precision_ns: u64,
        /// `SUBCLOCKFLAGS_ABSTIME`. The runtime turns relative timeouts into absolute ones
        /// (reading `clock_time_get` once when the call starts), so this is `false` only when
        /// the host could not read that clock.
        absolute: bool,
    },
    /// The descriptor having data to read (or end-of-file, or an error).
    FdRead(Fd),
    /// The descriptor accepting writes.
    FdWrite(Fd),
}

/// One `poll_oneoff` subscription (`__wasi_subscription_t`, 48 bytes in guest memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// Returned in the event this subscription produces.
    pub userdata: u64,
    /// What it waits for.
    pub kind: SubscriptionKind,
}

impl Subscription {
    /// Size of the struct in guest memory.
    pub const SIZE: usize = 48;

    /// Decodes the guest-memory layout: `userdata` at 0, the tag (u8) at 8, the union at 16 —
    /// a clock's `id` (u32) at 16, `timeout` 24, `precision` 32, `flags` (u16) 40; a
    /// descriptor's number (u32) at 16. `EINVAL` for an unknown tag or clock id.
    pub fn decode(bytes: &[u8; Subscription::SIZE]) -> Result<Subscription, Errno> {
        let userdata = le_u64_at(bytes, 0)?;
        let tag = bytes.get(8).copied().ok_or(Errno::Fault)?;
        let kind = match tag {
            0 => SubscriptionKind::Clock {
                id: ClockId::from_raw(le_u32_at(bytes, 16)?).ok_or(Errno::Inval)?,
                timeout_ns: le_u64_at(bytes, 24)?,
                precision_ns: le_u64_at(bytes, 32)?,
                absolute: le_u16_at(bytes, 40)? & SUBCLOCKFLAGS_ABSTIME != 0,
            },
            1 => SubscriptionKind::FdRead(le_u32_at(bytes, 16)?),
            2 => SubscriptionKind::FdWrite(le_u32_at(bytes, 16)?),
            _ => return Err(Errno::Inval),
        };
        Ok(Subscription { userdata, kind })
    }

    /// The event type this subscription produces.
    pub fn event_type(&self) -> EventType {
        match self.kind {
            SubscriptionKind::Clock { .. } => EventType::Clock,
            SubscriptionKind::FdRead(_) => EventType::FdRead,
            SubscriptionKind::FdWrite(_) => EventType::FdWrite,
        }
    }

    /// A successful event for this subscription, with `nbytes` bytes available (0 for clocks).
    pub fn ready(&self, nbytes: u64) -> Event {
        Event { userdata: self.userdata, error: Errno::Success, kind: self.event_type(), nbytes, hangup: false }
    }

    /// An event reporting that this subscription failed with `error` (e.g. `EBADF`).
    pub fn failed(&self, error: Errno) -> Event {
        Event { userdata: self.userdata, error, kind: self.event_type(), nbytes: 0, hangup: false }
    }
}

/// The type of a `poll_oneoff` event (`__wasi_eventtype_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventType {
    /// A clock subscription's time was reached.
    Clock = 0,
    /// A descriptor became readable.
    FdRead = 1,
    /// A descriptor became writable.
    FdWrite = 2,
}

/// One `poll_oneoff` result (`__wasi_event_t`, 32 bytes in guest memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// The `userdata` of the subscription that fired.
    pub userdata: u64,
    /// `Errno::Success`, or why the subscription failed.
    pub error: Errno,
    /// The subscription's type.
    pub kind: EventType,
    /// For descriptor events, the bytes available to read or room to write (0 for clocks).
    pub nbytes: u64,
    /// For descriptor events, whether the peer hung up (`EVENTRWFLAGS_HANGUP`).
    pub hangup: bool,
}

impl Event {
    /// Size of the struct in guest memory.
    pub const SIZE: usize = 32;

    /// The guest-memory encoding: `userdata` at 0, `error` (u16) 8, `type` (u8) 10, then
    /// `fd_readwrite.nbytes` 16 and `fd_readwrite.flags` (u16) 24; little endian.
    pub fn encode(&self) -> [u8; Event::SIZE] {
        let flags = if self.hangup { EVENTRWFLAGS_HANGUP } else { 0 };
        layout(&[
            (0, &self.userdata.to_le_bytes()),
            (8, &self.error.raw().to_le_bytes()),
            (10, &[self.kind as u8]),
            (16, &self.nbytes.to_le_bytes()),
            (24, &flags.to_le_bytes()),
        ])
    }
}

/// What `fd_fdstat_get` reports (`__wasi_fdstat_t`, 24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdStat {
    /// The type of the open object.
    pub filetype: Filetype,
    /// `FDFLAGS_*` bits.
    pub flags: u16,
    /// `RIGHTS_*` bits granted on this descriptor.
    pub rights_base: u64,
    /// `RIGHTS_*` bits descriptors opened through this one may get.
    pub rights_inheriting: u64,
}

impl FdStat {
    /// Size of the struct in guest memory.
    pub const SIZE: usize = 24;

    /// The guest-memory encoding (little endian, witx layout).
    pub fn encode(&self) -> [u8; FdStat::SIZE] {
        let bytes = [self.filetype as u8, 0]
            .into_iter()
            .chain(self.flags.to_le_bytes())
            .chain([0; 4])
            .chain(self.rights_base.to_le_bytes())
            .chain(self.rights_inheriting.to_le_bytes());
        let mut out = [0u8; FdStat::SIZE];
        for (dst, src) in out.iter_mut().zip(bytes) {
            *dst = src;
        }
        out
    }
}

/// What `fd_prestat_get` reports for a preopened directory (`__wasi_prestat_t`, 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prestat {
    /// Length in bytes of the directory's name (`fd_prestat_dir_name`), without a NUL.
    pub name_len: u32,
}

impl Prestat {
    /// Size of the struct in guest memory.
    pub const SIZE: usize = 8;

    /// The guest-memory encoding: tag `PREOPENTYPE_DIR` (0), padding, `pr_name_len`.
    pub fn encode(&self) -> [u8; Prestat::SIZE] {
        let len = self.name_len.to_le_bytes();
        [0, 0, 0, 0, len[0], len[1], len[2], len[3]]
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_wasi_libc() {
        assert_eq!(Errno::Badf.raw(), 8);
        assert_eq!(Errno::Fault.raw(), 21);
        assert_eq!(Errno::Inval.raw(), 28);
        assert_eq!(Errno::NoSys.raw(), 52);
        assert_eq!(Errno::NotCapable.raw(), 76);
        for raw in 0..=76u16 {
            let errno = Errno::from_raw(raw).map(Errno::raw);
            assert_eq!(errno, Some(raw));
        }
        assert_eq!(Errno::from_raw(77), None);
        assert_eq!(Errno::Badf.to_string(), "EBADF");
    }

    #[test]
    fn fdstat_layout() {
        let stat = FdStat {
            filetype: Filetype::CharacterDevice,
            flags: 0x0105,
            rights_base: 0x0102_0304_0506_0708,
            rights_inheriting: u64::MAX,
        };
        let bytes = stat.encode();
        assert_eq!(&bytes[..8], &[2, 0, 0x05, 0x01, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[16..], &[0xff; 8]);
    }

    #[test]
    fn filestat_layout() {
        let stat = Filestat {
            dev: 1,
            ino: 0x0203,
            filetype: Filetype::SymbolicLink,
            nlink: 4,
            size: 5,
            atim: 6,
            mtim: 7,
            ctim: u64::MAX,
        };
        let bytes = stat.encode();
        assert_eq!(&bytes[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[3, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[16..24], &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[4, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[32..40], &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[40..48], &[6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[48..56], &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[56..], &[0xff; 8]);
    }

    #[test]
    fn dirent_layout() {
        let entry = Dirent { next: 0x0102, ino: 9, filetype: Filetype::Directory, name: b"abc".to_vec() };
        let bytes = entry.encode().unwrap_or_default();
        assert_eq!(bytes.len(), 27);
        assert_eq!(&bytes[..8], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[16..24], &[3, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&bytes[24..], b"abc");
    }

    #[test]
    fn subscription_and_event_layouts() {
        let mut raw = [0u8; Subscription::SIZE];
        raw[..8].copy_from_slice(&0x1122u64.to_le_bytes());
        raw[8] = 0;
        raw[16] = 1;
        raw[24..32].copy_from_slice(&500u64.to_le_bytes());
        raw[32..40].copy_from_slice(&7u64.to_le_bytes());
        raw[40] = 1;
        let clock =
            SubscriptionKind::Clock { id: ClockId::Monotonic, timeout_ns: 500, precision_ns: 7, absolute: true };
        assert_eq!(Subscription::decode(&raw), Ok(Subscription { userdata: 0x1122, kind: clock }));
        raw[16] = 4;
        assert_eq!(Subscription::decode(&raw), Err(Errno::Inval));
        raw[8] = 2;
        raw[16] = 5;
        let write = Subscription::decode(&raw);
        assert_eq!(write, Ok(Subscription { userdata: 0x1122, kind: SubscriptionKind::FdWrite(5) }));
        raw[8] = 3;
        assert_eq!(Subscription::decode(&raw), Err(Errno::Inval));

        let event = Event { userdata: 3, error: Errno::Badf, kind: EventType::FdRead, nbytes: 0x0405, hangup: true };
        let bytes = event.encode();
        assert_eq!(&bytes[..8], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[8, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[16..24], &[5, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[24..], &[1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn whence_values() {
        assert_eq!(Whence::from_raw(0), Some(Whence::Set));
        assert_eq!(Whence::from_raw(1), Some(Whence::Cur));
        assert_eq!(Whence::from_raw(2), Some(Whence::End));
        assert_eq!(Whence::from_raw(3), None);
    }

    #[test]
    fn prestat_layout() {
        assert_eq!(Prestat { name_len: 0x0102 }.encode(), [0, 0, 0, 0, 2, 1, 0, 0]);
    }
}
