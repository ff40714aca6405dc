//! Every exchange with the host filesystem made within a kernel step, as data: the call the
//! kernel made and the answer it got, so a recording can keep them and a replay can answer from
//! them with no host directory present. With host call effects on (see `fs::host_gate`), only
//! opening a mount's directory and a program's second reading once its compilation completes
//! are such calls; the others are
//! effects, recorded with their completions like the store's (see [`super::effect`]). Without
//! them, every host directory call is one.
//!
//! A [`Journal`] is in one of two modes:
//!
//! - **recording**: [`JournaledHostFs`] wraps the real port, passes every call through, and
//!   appends a [`PortExchange`] for each (the driver drains them into its trace with
//!   [`Journal::take_recorded`]);
//! - **playback**: the same wrapper has no real port behind it; each call takes the next
//!   recorded exchange (fed with [`Journal::push`]), checks that the kernel made the same call,
//!   and returns the recorded answer. A different call, or none left, is a divergence
//!   ([`Journal::take_divergence`]); the kernel is answered `EIO` so it goes on, and the replay
//!   reports where it first went wrong.
//!
//! Calls are identified by their arguments; written bytes by a [`Digest`] (their length and
//! FNV-1a hash), since the bytes themselves come from the kernel and are replayed anyway.
//! Directories opened by `open_dir` are numbered in opening order, so a replayed call names the
//! same directory as the recorded one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::fs::{HostDir, HostFs, HostFsError, HostResult, HostStat};
use crate::vfs::Errno;

/// Exchanges a playback journal holds before the kernel asks for them: those of one input (a
/// trace records them just before the input that made them). One operation makes a few calls
/// per path component and link, and a listing one per entry, up to `maxReaddirEntries` (4,096
/// by default); 2^17 is 32 such listings. A trace queuing more is refused as corrupt, so a
/// hostile trace cannot make replay hold more than that many.
pub const MAX_PENDING_EXCHANGES: usize = 1 << 17;

/// Written bytes, identified without keeping them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest {
    pub len: u64,
    pub fnv1a: u64,
}

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self { len: u64::try_from(bytes.len()).unwrap_or(u64::MAX), fnv1a: hash }
    }
}

/// A call the kernel made to a port. `dir` numbers the directory (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortCall {
    OpenDir { host_path: String },
    ReadFile { dir: u32, path: String, max_bytes: u64 },
    WriteFile { dir: u32, path: String, data: Digest, mode: u32 },
    Stat { dir: u32, path: String },
    Lstat { dir: u32, path: String },
    ReadDir { dir: u32, path: String, max_entries: u64 },
    Mkdir { dir: u32, path: String, recursive: bool, mode: u32 },
    RemoveFile { dir: u32, path: String },
    RemoveDir { dir: u32, path: String, recursive: bool },
    Rename { dir: u32, from: String, to: String },
    Pread { dir: u32, path: String, offset: u64, len: u64 },
    Pwrite { dir: u32, path: String, offset: u64, data: Digest },
    Truncate { dir: u32, path: String, len: u64 },
    Realpath { dir: u32, path: String },
    Symlink { dir: u32, target: String, path: String },
    ReadLink { dir: u32, path: String },
    Link { dir: u32, existing: String, new: String },
    Chmod { dir: u32, path: String, mode: u32 },
    Chown { dir: u32, path: String, uid: u32, gid: u32 },
    Utimes { dir: u32, path: String, atime_ms: u64, mtime_ms: u64 },
}

/// What a port answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortValue {
    Unit,
    /// A directory opened, with its number.
    Dir(u32),
    Bytes(Vec<u8>),
    Stat(HostStat),
    Names(Vec<String>),
    Count(u64),
    Text(String),
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortExchange {
    pub call: PortCall,
    pub answer: Result<PortValue, HostFsError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Recording,
    Playback,
}

#[derive(Debug)]
struct JournalState {
    mode: Mode,
    exchanges: VecDeque<PortExchange>,
    next_dir: u32,
    divergence: Option<String>,
}

/// The exchanges of a run (see the module docs). Cloning shares it.
#[derive(Debug, Clone)]
pub struct Journal(Arc<Mutex<JournalState>>);

impl Journal {
    pub fn recording() -> Self {
        Self::new(Mode::Recording)
    }

    pub fn playback() -> Self {
        Self::new(Mode::Playback)
    }

    fn new(mode: Mode) -> Self {
        Self(Arc::new(Mutex::new(JournalState { mode, exchanges: VecDeque::new(), next_dir: 0, divergence: None })))
    }

    fn state(&self) -> Option<MutexGuard<'_, JournalState>> {
        // Only the one thread driving the kernel takes this lock, so it is never poisoned in
        // practice; if it were, every call fails with EIO rather than panicking.
        self.0.lock().ok()
    }

    /// Recording: the exchanges made since the last call, in order.
    pub fn take_recorded(&self) -> Vec<PortExchange> {
        self.state().map(|mut state| state.exchanges.drain(..).collect()).unwrap_or_default()
    }

    /// Playback: queues a recorded exchange; `false` (and nothing queued) past
    /// [`MAX_PENDING_EXCHANGES`].
    pub fn push(&self, exchange: PortExchange) -> bool {
        let Some(mut state) = self.state() else { return false };
        if state.exchanges.len() >= MAX_PENDING_EXCHANGES {
            return false;
        }
        state.exchanges.push_back(exchange);
        true
    }

    /// Playback: exchanges queued and not yet asked for.
    pub fn unused(&self) -> usize {
        self.state().map_or(0, |state| state.exchanges.len())
    }

    /// Playback: the first call that did not match its recording, if any.
    pub fn take_divergence(&self) -> Option<String> {
        self.state().and_then(|mut state| state.divergence.take())
    }

    /// Makes `call`: recording, through `perform`; playback, from the next recorded exchange.
    fn exchange(
        &self,
        call: PortCall,
        perform: impl FnOnce() -> Result<PortValue, HostFsError>,
    ) -> Result<PortValue, HostFsError> {
        let mode = match self.state() {
            Some(state) => state.mode,
            None => return Err(HostFsError::with_detail(Errno::EIO, "port journal unavailable")),
        };
        match mode {
            Mode::Recording => {
                let answer = perform();
                if let Some(mut state) = self.state() {
                    state.exchanges.push_back(PortExchange { call, answer: answer.clone() });
                }
                answer
            }
            Mode::Playback => self.play(&call),
        }
    }

    fn play(&self, call: &PortCall) -> Result<PortValue, HostFsError> {
        let Some(mut state) = self.state() else { return Err(diverged()) };
        match state.exchanges.pop_front() {
            Some(recorded) if recorded.call == *call => recorded.answer,
            other => {
                if state.divergence.is_none() {
                    state.divergence = Some(match other {
                        Some(recorded) => format!("port call {call:?}, recorded {:?}", recorded.call),
                        None => format!("port call {call:?} was not in the recording"),
                    });
                }
                state.exchanges.clear();
                Err(diverged())
            }
        }
    }

    fn note_mismatch(&self, call: &str) {
        if let Some(mut state) = self.state() {
            if state.divergence.is_none() {
                state.divergence = Some(format!("recorded answer to {call} has the wrong type"));
            }
        }
    }

    fn next_dir(&self) -> u32 {
        self.state().map_or(u32::MAX, |mut state| {
            let dir = state.next_dir;
            state.next_dir = state.next_dir.saturating_add(1);
            dir
        })
    }
}

fn diverged() -> HostFsError {
    HostFsError::with_detail(Errno::EIO, "replay diverged from its recording")
}

/// A [`HostFs`] whose every call goes through a [`Journal`].
#[derive(Debug)]
pub struct JournaledHostFs {
    /// `None` in playback.
    inner: Option<Arc<dyn HostFs>>,
    journal: Journal,
}

impl JournaledHostFs {
    pub fn recording(inner: Arc<dyn HostFs>, journal: Journal) -> Self {
        Self { inner: Some(inner), journal }
    }

    pub fn playback(journal: Journal) -> Self {
        Self { inner: None, journal }
    }
}

impl HostFs for JournaledHostFs {
    fn open_dir(&self, host_path: &str) -> HostResult<Arc<dyn HostDir>> {
        let mut opened = None;
        let call = PortCall::OpenDir { host_path: host_path.to_owned() };
        let answer = self.journal.exchange(call, || {
            let inner = self.inner.as_ref().ok_or_else(|| HostFsError::new(Errno::EIO))?;
            let dir = inner.open_dir(host_path)?;
            opened = Some(dir);
            Ok(PortValue::Dir(self.journal.next_dir()))
        });
        match answer {
            Ok(PortValue::Dir(id)) => Ok(Arc::new(JournaledDir { inner: opened, id, journal: self.journal.clone() })),
            Ok(_) => Err(mismatch(&self.journal, "open_dir")),
            Err(error) => Err(error),
        }
    }
}

/// One directory of a [`JournaledHostFs`].
#[derive(Debug)]
struct JournaledDir {
    inner: Option<Arc<dyn HostDir>>,
    id: u32,
    journal: Journal,
}

fn mismatch(journal: &Journal, call: &str) -> HostFsError {
    journal.note_mismatch(call);
    HostFsError::with_detail(Errno::EIO, "replay diverged from its recording")
}

impl PortDir for JournaledDir {
    fn port_id(&self) -> u32 {
        self.id
    }

    fn port(&self, call: PortCall, data: &[u8]) -> HostResult<PortValue> {
        let inner = self.inner.clone();
        let performed = call.clone();
        self.journal.exchange(call, move || {
            let inner = inner.ok_or_else(|| HostFsError::new(Errno::EIO))?;
            performed.perform(inner.as_ref(), data)
        })
    }

    fn wrong_answer(&self, call: &str) -> HostFsError {
        mismatch(&self.journal, call)
    }

    fn observed(&self) -> Option<Arc<dyn HostDir>> {
        self.inner.clone()
    }
}

impl PortCall {
    /// Makes this call on `dir`; `data` is what a `WriteFile` or `Pwrite` writes (the call
    /// itself keeps only its digest). `OpenDir` is not a directory's call: `EINVAL`.
    pub fn perform(&self, dir: &dyn HostDir, data: &[u8]) -> HostResult<PortValue> {
        let unit = |result: HostResult<()>| result.map(|()| PortValue::Unit);
        match self {
            Self::OpenDir { .. } => Err(HostFsError::with_detail(Errno::EINVAL, "open_dir is not a directory call")),
            Self::ReadFile { path, max_bytes, .. } => dir.read_file(path, *max_bytes).map(PortValue::Bytes),
            Self::WriteFile { path, mode, .. } => unit(dir.write_file(path, data, *mode)),
            Self::Stat { path, .. } => dir.stat(path).map(PortValue::Stat),
            Self::Lstat { path, .. } => dir.lstat(path).map(PortValue::Stat),
            Self::ReadDir { path, max_entries, .. } => dir.read_dir(path, *max_entries).map(PortValue::Names),
            Self::Mkdir { path, recursive, mode, .. } => unit(dir.mkdir(path, *recursive, *mode)),
            Self::RemoveFile { path, .. } => unit(dir.remove_file(path)),
            Self::RemoveDir { path, recursive, .. } => unit(dir.remove_dir(path, *recursive)),
            Self::Rename { from, to, .. } => unit(dir.rename(from, to)),
            Self::Pread { path, offset, len, .. } => dir.pread(path, *offset, *len).map(PortValue::Bytes),
            Self::Pwrite { path, offset, .. } => dir.pwrite(path, *offset, data).map(PortValue::Count),
            Self::Truncate { path, len, .. } => unit(dir.truncate(path, *len)),
            Self::Realpath { path, .. } => dir.realpath(path).map(PortValue::Text),
            Self::Symlink { target, path, .. } => unit(dir.symlink(target, path)),
            Self::ReadLink { path, .. } => dir.read_link(path).map(PortValue::Text),
            Self::Link { existing, new, .. } => unit(dir.link(existing, new)),
            Self::Chmod { path, mode, .. } => unit(dir.chmod(path, *mode)),
            Self::Chown { path, uid, gid, .. } => unit(dir.chown(path, *uid, *gid)),
            Self::Utimes { path, atime_ms, mtime_ms, .. } => unit(dir.utimes(path, *atime_ms, *mtime_ms)),
        }
    }

    /// The bytes the call carries (a write's data), for bounds on what waits.
    pub fn written_bytes(&self) -> u64 {
        match self {
            Self::WriteFile { data, .. } | Self::Pwrite { data, .. } => data.len,
            _ => 0,
        }
    }
}

/// A directory whose every call is a [`PortCall`] answered with a [`PortValue`]: a journal's,
/// or the kernel's gate that turns calls into effects (`fs::host_gate`). Implementing this and
/// invoking [`impl_host_dir_for_port!`] gives the [`HostDir`], so both speak one mapping.
pub(crate) trait PortDir {
    /// The number calls name this directory by.
    fn port_id(&self) -> u32;
    /// Makes `call` (`data`: what a write writes).
    fn port(&self, call: PortCall, data: &[u8]) -> HostResult<PortValue>;
    /// The error for an answer of the wrong kind (a corrupt recording).
    fn wrong_answer(&self, call: &str) -> HostFsError;
    /// See [`HostDir::observed`].
    fn observed(&self) -> Option<Arc<dyn HostDir>> {
        None
    }
}

/// `impl HostDir` for a [`PortDir`]: each method builds its call and takes its kind of answer
/// (the invoking module imports `PortDir` and `PortAnswers`).
macro_rules! impl_host_dir_for_port {
    ($type:ty) => {
        impl $crate::host::fs::HostDir for $type {
            fn read_file(&self, path: &str, max_bytes: u64) -> $crate::host::fs::HostResult<Vec<u8>> {
                let call =
                    $crate::host::journal::PortCall::ReadFile { dir: self.port_id(), path: path.to_owned(), max_bytes };
                match self.port(call, &[])? {
                    $crate::host::journal::PortValue::Bytes(bytes) => Ok(bytes),
                    _ => Err(self.wrong_answer("read_file")),
                }
            }
            fn write_file(&self, path: &str, data: &[u8], mode: u32) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::WriteFile {
                    dir: self.port_id(),
                    path: path.to_owned(),
                    data: $crate::host::journal::Digest::of(data),
                    mode,
                };
                self.port_unit("write_file", call, data)
            }
            fn stat(&self, path: &str) -> $crate::host::fs::HostResult<$crate::host::fs::HostStat> {
                self.port_stat(
                    "stat",
                    $crate::host::journal::PortCall::Stat { dir: self.port_id(), path: path.to_owned() },
                )
            }
            fn lstat(&self, path: &str) -> $crate::host::fs::HostResult<$crate::host::fs::HostStat> {
                self.port_stat(
                    "lstat",
                    $crate::host::journal::PortCall::Lstat { dir: self.port_id(), path: path.to_owned() },
                )
            }
            fn read_dir(&self, path: &str, max_entries: u64) -> $crate::host::fs::HostResult<Vec<String>> {
                let call = $crate::host::journal::PortCall::ReadDir {
                    dir: self.port_id(),
                    path: path.to_owned(),
                    max_entries,
                };
                match self.port(call, &[])? {
                    $crate::host::journal::PortValue::Names(names) => Ok(names),
                    _ => Err(self.wrong_answer("read_dir")),
                }
            }
            fn mkdir(&self, path: &str, recursive: bool, mode: u32) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::Mkdir {
                    dir: self.port_id(),
                    path: path.to_owned(),
                    recursive,
                    mode,
                };
                self.port_unit("mkdir", call, &[])
            }
            fn remove_file(&self, path: &str) -> $crate::host::fs::HostResult<()> {
                self.port_unit(
                    "remove_file",
                    $crate::host::journal::PortCall::RemoveFile { dir: self.port_id(), path: path.to_owned() },
                    &[],
                )
            }
            fn remove_dir(&self, path: &str, recursive: bool) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::RemoveDir {
                    dir: self.port_id(),
                    path: path.to_owned(),
                    recursive,
                };
                self.port_unit("remove_dir", call, &[])
            }
            fn rename(&self, from: &str, to: &str) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::Rename {
                    dir: self.port_id(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                };
                self.port_unit("rename", call, &[])
            }
            fn pread(&self, path: &str, offset: u64, len: u64) -> $crate::host::fs::HostResult<Vec<u8>> {
                let call =
                    $crate::host::journal::PortCall::Pread { dir: self.port_id(), path: path.to_owned(), offset, len };
                match self.port(call, &[])? {
                    $crate::host::journal::PortValue::Bytes(bytes) => Ok(bytes),
                    _ => Err(self.wrong_answer("pread")),
                }
            }
            fn pwrite(&self, path: &str, offset: u64, data: &[u8]) -> $crate::host::fs::HostResult<u64> {
                let call = $crate::host::journal::PortCall::Pwrite {
                    dir: self.port_id(),
                    path: path.to_owned(),
                    offset,
                    data: $crate::host::journal::Digest::of(data),
                };
                match self.port(call, data)? {
                    $crate::host::journal::PortValue::Count(count) => Ok(count),
                    _ => Err(self.wrong_answer("pwrite")),
                }
            }
            fn truncate(&self, path: &str, len: u64) -> $crate::host::fs::HostResult<()> {
                self.port_unit(
                    "truncate",
                    $crate::host::journal::PortCall::Truncate { dir: self.port_id(), path: path.to_owned(), len },
                    &[],
                )
            }
            fn realpath(&self, path: &str) -> $crate::host::fs::HostResult<String> {
                self.port_text(
                    "realpath",
                    $crate::host::journal::PortCall::Realpath { dir: self.port_id(), path: path.to_owned() },
                )
            }
            fn symlink(&self, target: &str, path: &str) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::Symlink {
                    dir: self.port_id(),
                    target: target.to_owned(),
                    path: path.to_owned(),
                };
                self.port_unit("symlink", call, &[])
            }
            fn read_link(&self, path: &str) -> $crate::host::fs::HostResult<String> {
                self.port_text(
                    "read_link",
                    $crate::host::journal::PortCall::ReadLink { dir: self.port_id(), path: path.to_owned() },
                )
            }
            fn link(&self, existing: &str, new: &str) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::Link {
                    dir: self.port_id(),
                    existing: existing.to_owned(),
                    new: new.to_owned(),
                };
                self.port_unit("link", call, &[])
            }
            fn chmod(&self, path: &str, mode: u32) -> $crate::host::fs::HostResult<()> {
                self.port_unit(
                    "chmod",
                    $crate::host::journal::PortCall::Chmod { dir: self.port_id(), path: path.to_owned(), mode },
                    &[],
                )
            }
            fn chown(&self, path: &str, uid: u32, gid: u32) -> $crate::host::fs::HostResult<()> {
                let call =
                    $crate::host::journal::PortCall::Chown { dir: self.port_id(), path: path.to_owned(), uid, gid };
                self.port_unit("chown", call, &[])
            }
            fn utimes(&self, path: &str, atime_ms: u64, mtime_ms: u64) -> $crate::host::fs::HostResult<()> {
                let call = $crate::host::journal::PortCall::Utimes {
                    dir: self.port_id(),
                    path: path.to_owned(),
                    atime_ms,
                    mtime_ms,
                };
                self.port_unit("utimes", call, &[])
            }
            fn observed(&self) -> Option<std::sync::Arc<dyn $crate::host::fs::HostDir>> {
                $crate::host::journal::PortDir::observed(self)
            }
        }
    };
}
pub(crate) use impl_host_dir_for_port;

impl_host_dir_for_port!(JournaledDir);

/// The typed answers of a [`PortDir`], shared by every method of [`impl_host_dir_for_port!`].
pub(crate) trait PortAnswers: PortDir {
    fn port_unit(&self, name: &str, call: PortCall, data: &[u8]) -> HostResult<()> {
        match self.port(call, data)? {
            PortValue::Unit => Ok(()),
            _ => Err(self.wrong_answer(name)),
        }
    }

    fn port_stat(&self, name: &str, call: PortCall) -> HostResult<HostStat> {
        match self.port(call, &[])? {
            PortValue::Stat(stat) => Ok(stat),
            _ => Err(self.wrong_answer(name)),
        }
    }

    fn port_text(&self, name: &str, call: PortCall) -> HostResult<String> {
        match self.port(call, &[])? {
            PortValue::Text(text) => Ok(text),
            _ => Err(self.wrong_answer(name)),
        }
    }
}

impl<T: PortDir + ?Sized> PortAnswers for T {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::host::fs::HostFileKind;

    /// One directory in memory: a single file, `f`.
    #[derive(Debug)]
    struct OneFile;

    impl HostFs for OneFile {
        fn open_dir(&self, host_path: &str) -> HostResult<Arc<dyn HostDir>> {
            if host_path == "/data" {
                Ok(Arc::new(OneFile))
            } else {
                Err(Errno::ENOENT.into())
            }
        }
    }

    impl HostDir for OneFile {
        fn read_file(&self, path: &str, _max_bytes: u64) -> HostResult<Vec<u8>> {
            if path == "f" {
                Ok(b"content".to_vec())
            } else {
                Err(Errno::ENOENT.into())
            }
        }
        fn write_file(&self, _path: &str, _data: &[u8], _mode: u32) -> HostResult<()> {
            Err(Errno::EROFS.into())
        }
        fn stat(&self, _path: &str) -> HostResult<HostStat> {
            Ok(HostStat::new(HostFileKind::File, 0o644, 7))
        }
        fn lstat(&self, path: &str) -> HostResult<HostStat> {
            self.stat(path)
        }
        fn read_dir(&self, _path: &str, _max_entries: u64) -> HostResult<Vec<String>> {
            Ok(vec!["f".to_owned()])
        }
        fn mkdir(&self, _path: &str, _recursive: bool, _mode: u32) -> HostResult<()> {
            Err(Errno::EROFS.into())
        }
        fn remove_file(&self, _path: &str) -> HostResult<()> {
            Err(Errno::EROFS.into())
        }
        fn remove_dir(&self, _path: &str, _recursive: bool) -> HostResult<()> {
            Err(Errno::EROFS.into())
        }
        fn rename(&self, _from: &str, _to: &str) -> HostResult<()> {
            Err(Errno::EROFS.into())
        }
    }

    /// The calls a kernel might make, against any host fs.
    fn session(fs: &dyn HostFs) -> Vec<String> {
        let mut seen = vec![format!("{:?}", fs.open_dir("/missing").err())];
        let dir = fs.open_dir("/data").unwrap();
        seen.push(format!("{:?}", dir.read_file("f", 100)));
        seen.push(format!("{:?}", dir.stat("f")));
        seen.push(format!("{:?}", dir.write_file("g", b"x", 0o644)));
        seen.push(format!("{:?}", dir.read_dir("", 10)));
        seen.push(format!("{:?}", dir.symlink("f", "l")));
        seen
    }

    #[test]
    fn playback_answers_exactly_what_the_recording_got_without_the_host_fs() {
        let recording = Journal::recording();
        let fs = JournaledHostFs::recording(Arc::new(OneFile), recording.clone());
        let live = session(&fs);
        let exchanges = recording.take_recorded();
        assert_eq!(exchanges.len(), 7);
        assert!(recording.take_recorded().is_empty(), "taking drains");

        let playback = Journal::playback();
        for exchange in exchanges {
            assert!(playback.push(exchange));
        }
        let replayed = session(&JournaledHostFs::playback(playback.clone()));
        assert_eq!(replayed, live);
        assert_eq!(playback.unused(), 0);
        assert_eq!(playback.take_divergence(), None);
    }

    #[test]
    fn a_different_call_in_playback_is_a_divergence_and_answers_eio() {
        let recording = Journal::recording();
        let fs = JournaledHostFs::recording(Arc::new(OneFile), recording.clone());
        let dir = fs.open_dir("/data").unwrap();
        dir.read_file("f", 100).unwrap();
        let playback = Journal::playback();
        for exchange in recording.take_recorded() {
            playback.push(exchange);
        }
        let replayed = JournaledHostFs::playback(playback.clone()).open_dir("/data").unwrap();
        let error = replayed.read_file("other", 100).unwrap_err();
        assert_eq!(error.errno, Errno::EIO);
        let divergence = playback.take_divergence().unwrap();
        assert!(divergence.contains("other") && divergence.contains("recorded"), "{divergence}");
        // Nothing left: the next call is a divergence too, never a stale answer.
        assert!(replayed.stat("f").is_err());
    }

    #[test]
    fn playback_holds_at_most_max_pending_exchanges() {
        let playback = Journal::playback();
        let exchange =
            PortExchange { call: PortCall::OpenDir { host_path: String::new() }, answer: Ok(PortValue::Unit) };
        for _ in 0..MAX_PENDING_EXCHANGES {
            assert!(playback.push(exchange.clone()));
        }
        assert!(!playback.push(exchange), "one past the bound is refused");
        assert_eq!(playback.unused(), MAX_PENDING_EXCHANGES);
    }

    #[test]
    fn written_bytes_are_matched_by_digest() {
        assert_eq!(Digest::of(b"abc"), Digest::of(b"abc"));
        assert_ne!(Digest::of(b"abc"), Digest::of(b"abd"));
        assert_eq!(Digest::of(b"").len, 0);
    }
}
