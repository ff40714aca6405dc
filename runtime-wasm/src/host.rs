//! The syscall surface a guest sees, as a trait the kernel implements ([`WasiHost`]), and
//! [`StdioHost`], a self-contained implementation over in-memory stdio buffers.

use std::collections::VecDeque;

use crate::abi::{
    ClockId, Errno, Fd, FdStat, Filetype, Prestat, RIGHTS_FD_FDSTAT_SET_FLAGS, RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_READ,
    RIGHTS_FD_WRITE, RIGHTS_POLL_FD_READWRITE, STDERR, STDIN, STDOUT,
};

/// Why a guest cannot make progress until the host does something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// The guest reads standard input and nothing is buffered yet: resume it after pushing bytes
    /// or end-of-file.
    ReadStdin,
    /// The guest reads another descriptor (a pipe, a socket) that has nothing buffered.
    Read {
        /// The descriptor.
        fd: Fd,
    },
    /// The guest writes a descriptor whose buffer is full.
    Write {
        /// The descriptor.
        fd: Fd,
    },
}

/// The failure of a host call that may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysError {
    /// Fail the call with this errno.
    Errno(Errno),
    /// The call cannot complete yet: the guest is suspended (its task reports
    /// `TaskState::Pending(reason)`) and the call is retried from scratch on the next poll.
    WouldBlock(WaitReason),
}

impl From<Errno> for SysError {
    fn from(errno: Errno) -> SysError {
        SysError::Errno(errno)
    }
}

/// The result of a host call that may block.
pub type SysResult<T> = Result<T, SysError>;

/// The `wasi_snapshot_preview1` calls a guest can make, served by the host (our kernel).
///
/// Calls are synchronous: a call that would block returns [`SysError::WouldBlock`] and the runtime
/// suspends the guest, then retries the same call when the task is polled again. Guest memory is
/// never visible here: the runtime copies arguments in and results out, with bounds checks.
///
/// Calls this trait does not cover yet are answered by the runtime itself: `EBADF` when the
/// descriptor is not open (per [`WasiHost::fd_fdstat_get`]), `ENOTDIR` for path calls relative
/// to a descriptor that is not a directory, `ENOSYS` otherwise.
pub trait WasiHost: Send + 'static {
    /// Command-line arguments, `argv[0]` first, without NUL terminators.
    fn args(&self) -> &[Vec<u8>];

    /// Environment variables as `KEY=VALUE` byte strings, without NUL terminators.
    fn environ(&self) -> &[Vec<u8>];

    /// The resolution of `clock` in nanoseconds.
    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno>;

    /// The current time of `clock` in nanoseconds (the realtime clock counts from the Unix epoch).
    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno>;

    /// Fills `buf` with entropy.
    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno>;

    /// Writes `data` to `fd`, returning how many bytes were accepted (a short write is allowed).
    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize>;

    /// Reads from `fd` into `buf`, returning how many bytes were read; `Ok(0)` is end-of-file.
    /// `buf` is never empty.
    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize>;

    /// Closes `fd`.
    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno>;

    /// Describes `fd`; `EBADF` if it is not open.
    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno>;

    /// Describes the preopened directory at `fd`. Libc walks descriptors from 3 upwards until
    /// this returns `EBADF`; the default has no preopens.
    fn fd_prestat_get(&mut self, fd: Fd) -> Result<Prestat, Errno> {
        let _ = fd;
        Err(Errno::Badf)
    }

    /// The name of the preopened directory at `fd` (as many bytes as `Prestat::name_len`).
    fn fd_prestat_dir_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        let _ = fd;
        Err(Errno::Badf)
    }

    /// The guest called `proc_exit(code)`; the runtime terminates it right after this returns.
    fn proc_exit(&mut self, code: u32) {
        let _ = code;
    }
}

/// A [`WasiHost`] over in-memory buffers: arguments, environment, stdin fed by the owner (reads
/// block while it is empty and not closed), stdout and stderr collected, a clock that only moves
/// when the owner sets it and a seeded pseudo-random entropy source. Everything is deterministic.
#[derive(Debug, Clone)]
pub struct StdioHost {
    args: Vec<Vec<u8>>,
    environ: Vec<Vec<u8>>,
    stdin: VecDeque<u8>,
    stdin_eof: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    max_output_bytes: usize,
    open: [bool; 3],
    monotonic_ns: u64,
    realtime_ns: u64,
    rng_state: u64,
    exit_code: Option<u32>,
}

impl StdioHost {
    /// Default bound on stdout and on stderr, each: 16 MiB.
    pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 << 20;

    /// A host with these arguments (`argv[0]` first), no environment, open empty stdin, time zero
    /// and entropy seed zero.
    pub fn new<I, A>(args: I) -> StdioHost
    where
        I: IntoIterator<Item = A>,
        A: Into<Vec<u8>>,
    {
        StdioHost {
            args: args.into_iter().map(Into::into).collect(),
            environ: Vec::new(),
            stdin: VecDeque::new(),
            stdin_eof: false,
            stdout: Vec::new(),
            stderr: Vec::new(),
            max_output_bytes: StdioHost::DEFAULT_MAX_OUTPUT_BYTES,
            open: [true; 3],
            monotonic_ns: 0,
            realtime_ns: 0,
            rng_state: 0,
            exit_code: None,
        }
    }

    /// Sets the environment (`KEY=VALUE` entries).
    pub fn with_environ<I, A>(mut self, environ: I) -> StdioHost
    where
        I: IntoIterator<Item = A>,
        A: Into<Vec<u8>>,
    {
        self.environ = environ.into_iter().map(Into::into).collect();
        self
    }

    /// Buffers `input` on stdin and closes it (the guest reads `input`, then end-of-file).
    pub fn with_stdin(mut self, input: &[u8]) -> StdioHost {
        self.push_stdin(input);
        self.close_stdin();
        self
    }

    /// Seeds the entropy source.
    pub fn with_seed(mut self, seed: u64) -> StdioHost {
        self.rng_state = seed;
        self
    }

    /// Bounds stdout and stderr (each); writes beyond the bound are cut short, then fail with
    /// `ENOSPC`.
    pub fn with_max_output_bytes(mut self, max_output_bytes: usize) -> StdioHost {
        self.max_output_bytes = max_output_bytes;
        self
    }

    /// Sets the clocks: monotonic nanoseconds and realtime nanoseconds since the Unix epoch.
    pub fn set_time(&mut self, monotonic_ns: u64, realtime_ns: u64) {
        self.monotonic_ns = monotonic_ns;
        self.realtime_ns = realtime_ns;
    }

    /// Appends bytes to stdin (ignored once stdin is closed).
    pub fn push_stdin(&mut self, input: &[u8]) {
        if !self.stdin_eof {
            self.stdin.extend(input);
        }
    }

    /// Signals end-of-file on stdin once the buffered bytes are read.
    pub fn close_stdin(&mut self) {
        self.stdin_eof = true;
    }

    /// Bytes buffered on stdin and not read yet.
    pub fn stdin_pending(&self) -> usize {
        self.stdin.len()
    }

    /// Everything the guest wrote to stdout.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Everything the guest (or the runtime, on abnormal termination) wrote to stderr.
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// Takes the stdout collected so far.
    pub fn take_stdout(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stdout)
    }

    /// Takes the stderr collected so far.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stderr)
    }

    /// The code the guest passed to `proc_exit`, if it called it.
    pub fn exit_code(&self) -> Option<u32> {
        self.exit_code
    }

    fn is_open(&self, fd: Fd) -> bool {
        usize::try_from(fd).ok().and_then(|index| self.open.get(index)).copied().unwrap_or(false)
    }

    /// SplitMix64: small, fast, and fully determined by the seed.
    fn next_random(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl WasiHost for StdioHost {
    fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    fn environ(&self) -> &[Vec<u8>] {
        &self.environ
    }

    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno> {
        let _ = clock;
        Ok(1)
    }

    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno> {
        let _ = precision_ns;
        Ok(match clock {
            ClockId::Realtime => self.realtime_ns,
            ClockId::Monotonic | ClockId::ProcessCpuTime | ClockId::ThreadCpuTime => self.monotonic_ns,
        })
    }

    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_random().to_le_bytes();
            for (dst, src) in chunk.iter_mut().zip(word) {
                *dst = src;
            }
        }
        Ok(())
    }

    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        if !self.is_open(fd) {
            return Err(Errno::Badf.into());
        }
        let max_output_bytes = self.max_output_bytes;
        let sink = match fd {
            STDOUT => &mut self.stdout,
            STDERR => &mut self.stderr,
            _ => return Err(Errno::Badf.into()),
        };
        let room = max_output_bytes.saturating_sub(sink.len());
        if room == 0 && !data.is_empty() {
            return Err(Errno::NoSpc.into());
        }
        let accepted = data.get(..room).unwrap_or(data);
        sink.extend_from_slice(accepted);
        Ok(accepted.len())
    }

    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        if fd != STDIN || !self.is_open(fd) {
            return Err(Errno::Badf.into());
        }
        if self.stdin.is_empty() {
            return if self.stdin_eof { Ok(0) } else { Err(SysError::WouldBlock(WaitReason::ReadStdin)) };
        }
        let read = buf.len().min(self.stdin.len());
        for (dst, src) in buf.iter_mut().zip(self.stdin.drain(..read)) {
            *dst = src;
        }
        Ok(read)
    }

    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno> {
        let slot = usize::try_from(fd).ok().and_then(|index| self.open.get_mut(index)).ok_or(Errno::Badf)?;
        if !*slot {
            return Err(Errno::Badf);
        }
        *slot = false;
        Ok(())
    }

    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno> {
        if !self.is_open(fd) {
            return Err(Errno::Badf);
        }
        let common = RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_FILESTAT_GET | RIGHTS_POLL_FD_READWRITE;
        let direction = if fd == STDIN { RIGHTS_FD_READ } else { RIGHTS_FD_WRITE };
        Ok(FdStat { filetype: Filetype::Unknown, flags: 0, rights_base: common | direction, rights_inheriting: 0 })
    }

    fn proc_exit(&mut self, code: u32) {
        self.exit_code = Some(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_blocks_until_pushed_then_eof() {
        let mut host = StdioHost::new(["x"]);
        let mut buf = [0u8; 4];
        assert_eq!(host.fd_read(STDIN, &mut buf), Err(SysError::WouldBlock(WaitReason::ReadStdin)));
        host.push_stdin(b"abcdef");
        assert_eq!(host.fd_read(STDIN, &mut buf), Ok(4));
        assert_eq!(&buf, b"abcd");
        assert_eq!(host.fd_read(STDIN, &mut buf), Ok(2));
        assert_eq!(buf.get(..2), Some(&b"ef"[..]));
        assert_eq!(host.fd_read(STDIN, &mut buf), Err(SysError::WouldBlock(WaitReason::ReadStdin)));
        host.close_stdin();
        host.push_stdin(b"ignored");
        assert_eq!(host.fd_read(STDIN, &mut buf), Ok(0));
    }

    #[test]
    fn output_is_bounded() {
        let mut host = StdioHost::new(["x"]).with_max_output_bytes(5);
        assert_eq!(host.fd_write(STDOUT, b"abc"), Ok(3));
        assert_eq!(host.fd_write(STDOUT, b"defg"), Ok(2));
        assert_eq!(host.fd_write(STDOUT, b"h"), Err(SysError::Errno(Errno::NoSpc)));
        assert_eq!(host.stdout(), b"abcde");
        assert_eq!(host.fd_write(STDIN, b"h"), Err(SysError::Errno(Errno::Badf)));
    }

    #[test]
    fn closed_descriptors_are_ebadf() {
        let mut host = StdioHost::new(["x"]);
        assert_eq!(host.fd_close(STDOUT), Ok(()));
        assert_eq!(host.fd_close(STDOUT), Err(Errno::Badf));
        assert_eq!(host.fd_write(STDOUT, b"a"), Err(SysError::Errno(Errno::Badf)));
        assert_eq!(host.fd_fdstat_get(STDOUT), Err(Errno::Badf));
        assert_eq!(host.fd_fdstat_get(3), Err(Errno::Badf));
        assert_eq!(host.fd_close(3), Err(Errno::Badf));
        assert!(host.fd_fdstat_get(STDERR).is_ok());
    }

    #[test]
    fn entropy_is_seeded() {
        let mut a = StdioHost::new(["x"]).with_seed(7);
        let mut b = StdioHost::new(["x"]).with_seed(7);
        let mut c = StdioHost::new(["x"]).with_seed(8);
        let (mut x, mut y, mut z) = ([0u8; 13], [0u8; 13], [0u8; 13]);
        assert!(a.random_get(&mut x).is_ok() && b.random_get(&mut y).is_ok() && c.random_get(&mut z).is_ok());
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
}
