//! Where a VM's calls to its `host_dir` mounts go: straight to the host directory, or, for a
//! guest's call (or a host request) when the driver performs host calls as effects, out as an
//! [`Effect::HostCall`](crate::host::effect::Effect::HostCall).
//!
//! A guest's filesystem call may need several host calls (a `lstat` per component on the way,
//! a `readlink` per link, then the operation itself), each answered before the next is known.
//! So deferral is *memo and retry*, the same park-and-retry as a permission prompt: while the
//! call runs, the gate answers its host calls, in order, from the answers the process's
//! [`HostMemo`] has collected; the first it has none for is recorded as needed and answered
//! `EAGAIN`, as is every call after it, and the kernel throws the attempt's result away, parks
//! the process, asks for the effect, appends its completion to the memo and runs the call
//! again. The attempt that completes without needing anything new is the real one; the memo is
//! dropped when the engine's call settles.
//!
//! The memo is a sequence, not a table: the same host call may rightly get two answers within
//! one guest call (`open(O_CREAT)` looks for the file, creates it, then looks again). A retry
//! makes the same calls in the same order up to the first new one (the kernel is
//! deterministic); should one differ (another process changed the VM meanwhile), the answers
//! from there on are forgotten and asked again.
//!
//! What makes that sound: kernel state a call changes is changed after its host calls (a
//! descriptor is made once the host has opened the file), so a discarded attempt leaves nothing
//! behind, and a host change an attempt asked for is made once: a retry is answered from the
//! memo.
//!
//! The host's own filesystem requests and Executes are deferred the same way, with a memo per
//! request (see `dispatch::host_calls`), and a guest's spawn or exec with its memo (see
//! `dispatch::processes`). A program's second reading once its compilation completes, and the
//! kernel's software and Python trees (installed files, never deferred), call their
//! directories directly: answered within the step that asks, recorded by the port journal (see
//! `host::journal`) when a trace is written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::host::effect::{Effect, HostDirHandle};
use crate::host::fs::{HostDir, HostFsError, HostResult};
use crate::host::journal::{impl_host_dir_for_port, PortAnswers, PortCall, PortDir, PortValue};
use crate::vfs::Errno;

/// Answers one guest call may collect before it completes: a path walk makes one or two host
/// calls per component, so this is a path of 4,096 bytes (at most 2,048 components) with links
/// followed on the way. A call past it fails with `ELOOP`; the guest pays for each retry in fuel
/// (every host call, answered from the memo or not, is charged), so the work stays bounded.
pub const MAX_HOST_CALLS_PER_OPERATION: usize = 8_192;

/// The answers a parked guest call has been given so far, in the order it made the calls, and
/// the host call it waits for.
#[derive(Debug, Default)]
pub(crate) struct HostMemo {
    answers: Vec<(PortCall, HostResult<PortValue>)>,
    /// The answers the running attempt has used.
    cursor: usize,
    /// Asked for and not yet answered: the process waits for it (`Wait::HostCall`).
    pub(crate) needed: Option<NeededCall>,
}

impl HostMemo {
    /// Appends the completion of the needed call.
    pub(crate) fn answer(&mut self, answer: HostResult<PortValue>) {
        if let Some(needed) = self.needed.take() {
            self.answers.push((needed.call, answer));
        }
    }

    /// The next attempt starts from the first answer.
    pub(crate) fn rewind(&mut self) {
        self.cursor = 0;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.needed.is_none()
    }

    /// The answer to `call`, the attempt's next one, if the memo has it.
    fn next_answer(&mut self, call: &PortCall) -> Option<HostResult<PortValue>> {
        let (recorded, answer) = self.answers.get(self.cursor)?;
        if recorded != call {
            // The attempt went another way: what was answered from here on no longer applies.
            self.answers.truncate(self.cursor);
            return None;
        }
        self.cursor += 1;
        Some(answer.clone())
    }
}

/// A host call the kernel must ask the driver for.
#[derive(Debug)]
pub(crate) struct NeededCall {
    pub dir: HostDirHandle,
    pub call: PortCall,
    /// What a write writes.
    pub data: Vec<u8>,
}

impl NeededCall {
    /// The effect that makes the call (its written bytes move into it).
    pub(crate) fn take_effect(&mut self) -> Effect {
        Effect::HostCall { dir: self.dir.clone(), call: self.call.clone(), data: std::mem::take(&mut self.data) }
    }
}

/// The gate of one VM's filesystem (see the module docs): counts host calls, and defers them
/// while a guest's call runs with a memo installed. (Only the kernel's thread uses it; it is
/// `Sync` because a [`HostDir`] must be.)
#[derive(Debug, Default)]
pub(crate) struct HostGate {
    /// Host calls made (or answered from a memo) since the last [`take_calls`](Self::take_calls).
    calls: AtomicU64,
    /// The running guest call's memo, when its host calls are deferred.
    deferral: Mutex<Option<HostMemo>>,
    /// Guests' calls are deferred (the driver performs host calls as effects).
    defers: bool,
}

impl HostGate {
    /// From now on, guests' calls are deferred (see the module docs).
    pub(crate) fn set_deferring(&mut self) {
        self.defers = true;
    }

    pub(crate) fn defers(&self) -> bool {
        self.defers
    }

    /// Host calls since the last take (and resets the count): each is work the guest pays for.
    pub(crate) fn take_calls(&self) -> u64 {
        self.calls.swap(0, Ordering::Relaxed)
    }

    fn count(&self) {
        // Saturating: a wrapped count would undercharge.
        let _ = self.calls.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |calls| Some(calls.saturating_add(1)));
    }

    fn deferral(&self) -> MutexGuard<'_, Option<HostMemo>> {
        // Never poisoned in practice (nothing panics while holding it); if it were, the memo
        // inside is still whole.
        self.deferral.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Defers the host calls made from now on to `memo`'s answers (see the module docs).
    pub(crate) fn defer(&self, memo: HostMemo) {
        let previous = self.deferral().replace(memo);
        assert!(previous.is_none(), "one guest call at a time defers its host calls");
    }

    /// Ends the deferral: the memo, with the call it stopped at, if any.
    pub(crate) fn undefer(&self) -> HostMemo {
        self.deferral().take().unwrap_or_default()
    }

    /// Makes `call` on `dir` (see the module docs).
    fn run(&self, dir: &HostMount, number: u32, call: PortCall, data: &[u8]) -> HostResult<PortValue> {
        self.count();
        let mut deferral = self.deferral();
        let memo = match deferral.as_mut() {
            Some(memo) if dir.deferrable => memo,
            _ => return call.perform(dir.dir.as_ref(), data),
        };
        if memo.needed.is_some() {
            return Err(deferred());
        }
        if let Some(answer) = memo.next_answer(&call) {
            return answer;
        }
        if memo.answers.len() >= MAX_HOST_CALLS_PER_OPERATION {
            return Err(HostFsError::with_detail(Errno::ELOOP, "too many host calls for one operation"));
        }
        let target = dir.dir.observed().unwrap_or_else(|| Arc::clone(&dir.dir));
        memo.needed = Some(NeededCall { dir: HostDirHandle::new(number, target), call, data: data.to_vec() });
        Err(deferred())
    }
}

/// What a deferred call answers meanwhile; the attempt's result is thrown away.
fn deferred() -> HostFsError {
    HostFsError::with_detail(Errno::EAGAIN, "host call deferred")
}

/// A `host_dir` mount's directory (or one of the kernel's trees served like one).
#[derive(Debug)]
pub(crate) struct HostMount {
    pub dir: Arc<dyn HostDir>,
    /// A configured `host_dir` mount: a guest's calls to it may be deferred. The software and
    /// Python trees are the sidecar's installed files, read in place, never deferred.
    pub deferrable: bool,
}

impl HostMount {
    pub(crate) fn configured(dir: Arc<dyn HostDir>) -> Self {
        Self { dir, deferrable: true }
    }

    pub(crate) fn installed(dir: Arc<dyn HostDir>) -> Self {
        Self { dir, deferrable: false }
    }
}

/// A mount's directory seen through its VM's gate: what the kernel calls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GatedDir<'a> {
    pub mount: &'a HostMount,
    /// Names the mount in calls (its files' key: new whenever the mounts change).
    pub number: u32,
    pub gate: &'a HostGate,
}

impl PortDir for GatedDir<'_> {
    fn port_id(&self) -> u32 {
        self.number
    }

    fn port(&self, call: PortCall, data: &[u8]) -> HostResult<PortValue> {
        self.gate.run(self.mount, self.number, call, data)
    }

    fn wrong_answer(&self, call: &str) -> HostFsError {
        HostFsError::with_detail(Errno::EIO, format!("the answer to {call} has the wrong type"))
    }
}

impl_host_dir_for_port!(GatedDir<'_>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::host::fs::{HostFileKind, HostStat};

    /// Every path is a 3-byte file holding "abc".
    #[derive(Debug)]
    struct Files;

    impl HostDir for Files {
        fn read_file(&self, _path: &str, _max_bytes: u64) -> HostResult<Vec<u8>> {
            Ok(b"abc".to_vec())
        }
        fn write_file(&self, _path: &str, _data: &[u8], _mode: u32) -> HostResult<()> {
            Ok(())
        }
        fn stat(&self, _path: &str) -> HostResult<HostStat> {
            Ok(HostStat::new(HostFileKind::File, 0o644, 3))
        }
        fn lstat(&self, path: &str) -> HostResult<HostStat> {
            self.stat(path)
        }
        fn read_dir(&self, _path: &str, _max_entries: u64) -> HostResult<Vec<String>> {
            Ok(Vec::new())
        }
        fn mkdir(&self, _path: &str, _recursive: bool, _mode: u32) -> HostResult<()> {
            Ok(())
        }
        fn remove_file(&self, _path: &str) -> HostResult<()> {
            Ok(())
        }
        fn remove_dir(&self, _path: &str, _recursive: bool) -> HostResult<()> {
            Ok(())
        }
        fn rename(&self, _from: &str, _to: &str) -> HostResult<()> {
            Ok(())
        }
    }

    /// An operation of two host calls: a `stat`, then a read.
    fn operation(dir: &GatedDir<'_>) -> HostResult<Vec<u8>> {
        dir.stat("f")?;
        dir.read_file("f", 10)
    }

    #[test]
    fn a_deferred_operation_completes_after_one_retry_per_host_call() {
        let gate = HostGate::default();
        let mount = HostMount::configured(Arc::new(Files));
        let dir = GatedDir { mount: &mount, number: 7, gate: &gate };
        let mut memo = HostMemo::default();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            gate.defer(memo);
            let result = operation(&dir);
            memo = gate.undefer();
            let Some(needed) = memo.needed.as_ref() else { break result };
            assert_eq!(result.unwrap_err().errno, Errno::EAGAIN, "a deferred attempt fails");
            let answer = needed.call.perform(needed.dir.dir().as_ref(), &needed.data);
            memo.answer(answer);
            memo.rewind();
        };
        assert_eq!(result.unwrap(), b"abc");
        assert_eq!(attempts, 3, "a first attempt, then one retry per answer");
        assert_eq!(gate.take_calls(), 1 + 2 + 2, "every call is counted, answered from the memo or not");
    }

    #[test]
    fn the_same_call_twice_in_one_operation_gets_each_its_own_answer() {
        let gate = HostGate::default();
        let mount = HostMount::configured(Arc::new(Files));
        let dir = GatedDir { mount: &mount, number: 3, gate: &gate };
        let mut memo = HostMemo::default();
        memo.answers.push((PortCall::Stat { dir: 3, path: "f".into() }, Err(Errno::ENOENT.into())));
        memo.answers.push((PortCall::Stat { dir: 3, path: "f".into() }, dir.mount.dir.stat("f").map(PortValue::Stat)));
        gate.defer(memo);
        assert_eq!(dir.stat("f").unwrap_err().errno, Errno::ENOENT, "before the file was made");
        assert_eq!(dir.stat("f").unwrap().size, 3, "after");
        let memo = gate.undefer();
        assert!(memo.needed.is_none());
    }

    #[test]
    fn an_attempt_that_goes_another_way_forgets_the_answers_from_there() {
        let gate = HostGate::default();
        let mount = HostMount::configured(Arc::new(Files));
        let dir = GatedDir { mount: &mount, number: 3, gate: &gate };
        let mut memo = HostMemo::default();
        memo.answers.push((PortCall::Stat { dir: 3, path: "a".into() }, Err(Errno::ENOENT.into())));
        memo.answers.push((PortCall::Stat { dir: 3, path: "b".into() }, Err(Errno::ENOENT.into())));
        gate.defer(memo);
        assert_eq!(dir.stat("a").unwrap_err().errno, Errno::ENOENT);
        assert_eq!(dir.stat("c").unwrap_err().errno, Errno::EAGAIN, "a new call: deferred");
        let memo = gate.undefer();
        assert_eq!(memo.answers.len(), 1, "the answer to `b` is gone");
        assert_eq!(memo.needed.as_ref().map(|needed| &needed.call), Some(&PortCall::Stat { dir: 3, path: "c".into() }));
    }

    #[test]
    fn without_a_memo_or_for_installed_trees_calls_go_straight_through() {
        let gate = HostGate::default();
        let configured = HostMount::configured(Arc::new(Files));
        assert_eq!(operation(&GatedDir { mount: &configured, number: 1, gate: &gate }).unwrap(), b"abc");
        let installed = HostMount::installed(Arc::new(Files));
        gate.defer(HostMemo::default());
        assert_eq!(operation(&GatedDir { mount: &installed, number: 2, gate: &gate }).unwrap(), b"abc");
        assert!(gate.undefer().is_empty(), "nothing was deferred");
    }

    #[test]
    fn an_operation_may_collect_at_most_max_host_calls_per_operation_answers() {
        let gate = HostGate::default();
        let mount = HostMount::configured(Arc::new(Files));
        let dir = GatedDir { mount: &mount, number: 1, gate: &gate };
        let mut memo = HostMemo::default();
        for index in 0..MAX_HOST_CALLS_PER_OPERATION {
            memo.answers.push((PortCall::Stat { dir: 1, path: index.to_string() }, Err(Errno::ENOENT.into())));
        }
        memo.cursor = MAX_HOST_CALLS_PER_OPERATION;
        gate.defer(memo);
        let error = dir.stat("one more").unwrap_err();
        assert_eq!(error.errno, Errno::ELOOP);
        assert!(gate.undefer().needed.is_none());
    }
}
