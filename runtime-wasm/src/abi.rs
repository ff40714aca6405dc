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
/// `__WASI_FDFLAGS_NONBLOCK`.
pub const FDFLAGS_NONBLOCK: u16 = 1 << 2;

/// `__WASI_RIGHTS_FD_READ`.
pub const RIGHTS_FD_READ: u64 = 1 << 1;
/// `__WASI_RIGHTS_FD_WRITE`.
pub const RIGHTS_FD_WRITE: u64 = 1 << 6;
/// `__WASI_RIGHTS_FD_FDSTAT_SET_FLAGS`.
pub const RIGHTS_FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
/// `__WASI_RIGHTS_FD_FILESTAT_GET`.
pub const RIGHTS_FD_FILESTAT_GET: u64 = 1 << 21;
/// `__WASI_RIGHTS_POLL_FD_READWRITE`.
pub const RIGHTS_POLL_FD_READWRITE: u64 = 1 << 27;

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
    fn prestat_layout() {
        assert_eq!(Prestat { name_len: 0x0102 }.encode(), [0, 0, 0, 0, 2, 1, 0, 0]);
    }
}
