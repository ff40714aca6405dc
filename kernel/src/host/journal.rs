//! Every exchange with the host filesystem, as data: the call the kernel made and the answer it
//! got, so a recording can keep them and a replay can answer from them with no host directory
//! present. (The store is reached through effects and their completions instead, see
//! [`super::effect`]: host directory calls are made in the middle of a guest's path resolution,
//! one after another, so they stay calls, recorded as they are made.)
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    fn open_dir(&self, host_path: &str) -> HostResult<Box<dyn HostDir>> {
        let mut opened = None;
        let call = PortCall::OpenDir { host_path: host_path.to_owned() };
        let answer = self.journal.exchange(call, || {
            let inner = self.inner.as_ref().ok_or_else(|| HostFsError::new(Errno::EIO))?;
            let dir = inner.open_dir(host_path)?;
            opened = Some(dir);
            Ok(PortValue::Dir(self.journal.next_dir()))
        });
        match answer {
            Ok(PortValue::Dir(id)) => Ok(Box::new(JournaledDir { inner: opened, id, journal: self.journal.clone() })),
            Ok(_) => Err(mismatch(&self.journal, "open_dir")),
            Err(error) => Err(error),
        }
    }
}

/// One directory of a [`JournaledHostFs`].
#[derive(Debug)]
struct JournaledDir {
    inner: Option<Box<dyn HostDir>>,
    id: u32,
    journal: Journal,
}

fn mismatch(journal: &Journal, call: &str) -> HostFsError {
    journal.note_mismatch(call);
    HostFsError::with_detail(Errno::EIO, "replay diverged from its recording")
}

impl JournaledDir {
    fn call(
        &self,
        call: PortCall,
        perform: impl FnOnce(&dyn HostDir) -> HostResult<PortValue>,
    ) -> HostResult<PortValue> {
        self.journal.exchange(call, || {
            let inner = self.inner.as_deref().ok_or_else(|| HostFsError::new(Errno::EIO))?;
            perform(inner)
        })
    }

    fn unit(&self, name: &str, call: PortCall, perform: impl FnOnce(&dyn HostDir) -> HostResult<()>) -> HostResult<()> {
        match self.call(call, |dir| perform(dir).map(|()| PortValue::Unit))? {
            PortValue::Unit => Ok(()),
            _ => Err(mismatch(&self.journal, name)),
        }
    }

    fn bytes(
        &self,
        name: &str,
        call: PortCall,
        perform: impl FnOnce(&dyn HostDir) -> HostResult<Vec<u8>>,
    ) -> HostResult<Vec<u8>> {
        match self.call(call, |dir| perform(dir).map(PortValue::Bytes))? {
            PortValue::Bytes(bytes) => Ok(bytes),
            _ => Err(mismatch(&self.journal, name)),
        }
    }

    fn stat_of(
        &self,
        name: &str,
        call: PortCall,
        perform: impl FnOnce(&dyn HostDir) -> HostResult<HostStat>,
    ) -> HostResult<HostStat> {
        match self.call(call, |dir| perform(dir).map(PortValue::Stat))? {
            PortValue::Stat(stat) => Ok(stat),
            _ => Err(mismatch(&self.journal, name)),
        }
    }

    fn text(
        &self,
        name: &str,
        call: PortCall,
        perform: impl FnOnce(&dyn HostDir) -> HostResult<String>,
    ) -> HostResult<String> {
        match self.call(call, |dir| perform(dir).map(PortValue::Text))? {
            PortValue::Text(text) => Ok(text),
            _ => Err(mismatch(&self.journal, name)),
        }
    }
}

impl HostDir for JournaledDir {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        let call = PortCall::ReadFile { dir: self.id, path: path.to_owned(), max_bytes };
        self.bytes("read_file", call, |dir| dir.read_file(path, max_bytes))
    }

    fn write_file(&self, path: &str, data: &[u8], mode: u32) -> HostResult<()> {
        let call = PortCall::WriteFile { dir: self.id, path: path.to_owned(), data: Digest::of(data), mode };
        self.unit("write_file", call, |dir| dir.write_file(path, data, mode))
    }

    fn stat(&self, path: &str) -> HostResult<HostStat> {
        let call = PortCall::Stat { dir: self.id, path: path.to_owned() };
        self.stat_of("stat", call, |dir| dir.stat(path))
    }

    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        let call = PortCall::Lstat { dir: self.id, path: path.to_owned() };
        self.stat_of("lstat", call, |dir| dir.lstat(path))
    }

    fn read_dir(&self, path: &str, max_entries: u64) -> HostResult<Vec<String>> {
        let call = PortCall::ReadDir { dir: self.id, path: path.to_owned(), max_entries };
        match self.call(call, |dir| dir.read_dir(path, max_entries).map(PortValue::Names))? {
            PortValue::Names(names) => Ok(names),
            _ => Err(mismatch(&self.journal, "read_dir")),
        }
    }

    fn mkdir(&self, path: &str, recursive: bool, mode: u32) -> HostResult<()> {
        let call = PortCall::Mkdir { dir: self.id, path: path.to_owned(), recursive, mode };
        self.unit("mkdir", call, |dir| dir.mkdir(path, recursive, mode))
    }

    fn remove_file(&self, path: &str) -> HostResult<()> {
        let call = PortCall::RemoveFile { dir: self.id, path: path.to_owned() };
        self.unit("remove_file", call, |dir| dir.remove_file(path))
    }

    fn remove_dir(&self, path: &str, recursive: bool) -> HostResult<()> {
        let call = PortCall::RemoveDir { dir: self.id, path: path.to_owned(), recursive };
        self.unit("remove_dir", call, |dir| dir.remove_dir(path, recursive))
    }

    fn rename(&self, from: &str, to: &str) -> HostResult<()> {
        let call = PortCall::Rename { dir: self.id, from: from.to_owned(), to: to.to_owned() };
        self.unit("rename", call, |dir| dir.rename(from, to))
    }

    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        let call = PortCall::Pread { dir: self.id, path: path.to_owned(), offset, len };
        self.bytes("pread", call, |dir| dir.pread(path, offset, len))
    }

    fn pwrite(&self, path: &str, offset: u64, data: &[u8]) -> HostResult<u64> {
        let call = PortCall::Pwrite { dir: self.id, path: path.to_owned(), offset, data: Digest::of(data) };
        match self.call(call, |dir| dir.pwrite(path, offset, data).map(PortValue::Count))? {
            PortValue::Count(count) => Ok(count),
            _ => Err(mismatch(&self.journal, "pwrite")),
        }
    }

    fn truncate(&self, path: &str, len: u64) -> HostResult<()> {
        let call = PortCall::Truncate { dir: self.id, path: path.to_owned(), len };
        self.unit("truncate", call, |dir| dir.truncate(path, len))
    }

    fn realpath(&self, path: &str) -> HostResult<String> {
        let call = PortCall::Realpath { dir: self.id, path: path.to_owned() };
        self.text("realpath", call, |dir| dir.realpath(path))
    }

    fn symlink(&self, target: &str, path: &str) -> HostResult<()> {
        let call = PortCall::Symlink { dir: self.id, target: target.to_owned(), path: path.to_owned() };
        self.unit("symlink", call, |dir| dir.symlink(target, path))
    }

    fn read_link(&self, path: &str) -> HostResult<String> {
        let call = PortCall::ReadLink { dir: self.id, path: path.to_owned() };
        self.text("read_link", call, |dir| dir.read_link(path))
    }

    fn link(&self, existing: &str, new: &str) -> HostResult<()> {
        let call = PortCall::Link { dir: self.id, existing: existing.to_owned(), new: new.to_owned() };
        self.unit("link", call, |dir| dir.link(existing, new))
    }

    fn chmod(&self, path: &str, mode: u32) -> HostResult<()> {
        let call = PortCall::Chmod { dir: self.id, path: path.to_owned(), mode };
        self.unit("chmod", call, |dir| dir.chmod(path, mode))
    }

    fn chown(&self, path: &str, uid: u32, gid: u32) -> HostResult<()> {
        let call = PortCall::Chown { dir: self.id, path: path.to_owned(), uid, gid };
        self.unit("chown", call, |dir| dir.chown(path, uid, gid))
    }

    fn utimes(&self, path: &str, atime_ms: u64, mtime_ms: u64) -> HostResult<()> {
        let call = PortCall::Utimes { dir: self.id, path: path.to_owned(), atime_ms, mtime_ms };
        self.unit("utimes", call, |dir| dir.utimes(path, atime_ms, mtime_ms))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::host::fs::HostFileKind;

    /// One directory in memory: a single file, `f`.
    #[derive(Debug)]
    struct OneFile;

    impl HostFs for OneFile {
        fn open_dir(&self, host_path: &str) -> HostResult<Box<dyn HostDir>> {
            if host_path == "/data" {
                Ok(Box::new(OneFile))
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
