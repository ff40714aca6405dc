//! Host directory calls as effects (see `fs::host_gate`): the call a parked guest filesystem
//! call needs becomes an [`Effect::HostCall`](crate::host::effect::Effect::HostCall), and its
//! completion goes to that process's memo, which wakes it to run the call again. The host's
//! own filesystem requests on a VM with `host_dir` mounts (`GuestFilesystemCall`,
//! `HostFilesystemCall`) are deferred the same way:
//! the request is handled with a memo, and when it needs a host call its answer is thrown away,
//! the request parks with its memo, and it is handled again once the call completes. An
//! `Execute` is deferred the same way (its program may be on a mount). Later such requests for
//! the same VM queue behind it, so the host sees them take effect in the order it sent them.
//!
//! So a slow or stuck host disk (a network filesystem, a disk in trouble) holds up only the
//! guests waiting on it: the loop goes on serving every other VM, and the driver performs the
//! call wherever it likes (the stdio driver on a worker thread; the simulator after a drawn
//! delay; `replay` never: it feeds the recorded completion).

use std::collections::{BTreeMap, VecDeque};

use schema::wire::{RequestFrame, RequestPayload};

use super::effects::Waiter;
use super::{Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::fs::host_gate::{HostMemo, NeededCall};
use crate::host::effect::Completion;
use crate::host::fs::{HostFsError, HostResult};
use crate::host::journal::PortValue;
use crate::process::table::Wait;
use crate::vfs::Errno;

/// Host directory calls in flight at once, across every VM: a process waits on one at most,
/// and each is one short system call on the driver's side, so this is far more than a healthy
/// disk keeps busy; past it a guest's call fails with `EAGAIN` rather than queue without bound.
pub const MAX_HOST_CALLS_IN_FLIGHT: usize = 1024;
/// Host filesystem requests that may wait behind one parked on a host call, per VM: a host
/// sending more before the first is answered is refused (`limit_exceeded`), as a full pipe
/// would push back. Each holds its frame (up to the frame limit), so this bounds the memory too.
pub const MAX_QUEUED_HOST_REQUESTS_PER_VM: usize = 256;

/// A host request waiting for a host call, with the answers it has had.
#[derive(Debug)]
struct ParkedRequest {
    stream: StreamId,
    request: RequestFrame,
    memo: HostMemo,
}

/// One VM's parked host request and those behind it.
#[derive(Debug, Default)]
struct VmRequests {
    /// `None` only between its completion and its next attempt.
    waiting: Option<ParkedRequest>,
    behind: VecDeque<(StreamId, RequestFrame)>,
}

/// Host requests parked on host calls, by VM.
#[derive(Debug, Default)]
pub(crate) struct ParkedRequests {
    by_vm: BTreeMap<String, VmRequests>,
}

impl ParkedRequests {
    pub(crate) fn len(&self) -> usize {
        self.by_vm.values().map(|queue| queue.behind.len() + usize::from(queue.waiting.is_some())).sum()
    }
}

/// Whether a request may need the VM's host directories (and so may be deferred): its
/// filesystem calls, and an Execute (whose program may be on a mount; it reads the program
/// before it changes anything).
fn may_need_host_dirs(payload: &RequestPayload) -> bool {
    matches!(
        payload,
        RequestPayload::GuestFilesystemCallRequest(_)
            | RequestPayload::HostFilesystemCallRequest(_)
            | RequestPayload::ExecuteRequest(_)
    )
}

/// The host directory's answer a completion carries (another kind's is an I/O error).
fn host_answer(completion: Completion) -> HostResult<PortValue> {
    match completion {
        Completion::HostCall(answer) => answer,
        _ => Err(HostFsError::with_detail(Errno::EIO, "a host call got another effect's completion")),
    }
}

impl Sidecar {
    /// Guests' calls to `host_dir` mounts become
    /// [`Effect::HostCall`](crate::host::effect::Effect::HostCall)s the driver performs (without
    /// it, they are made within the kernel's step, and a trace records them through the port
    /// journal).
    pub fn with_host_call_effects(mut self) -> Self {
        self.host_call_effects = true;
        self
    }

    /// Host filesystem requests waiting for host directory calls (parked or queued behind one),
    /// for drivers and tests.
    pub fn parked_host_requests(&self) -> usize {
        self.parked_requests.len()
    }

    /// Asks for the host calls that processes parked on since the last time.
    pub(crate) fn serve_host_calls(&mut self) {
        let mut parked = Vec::new();
        for vm_id in self.waking_vms() {
            let Some(vm) = self.vms.get(&vm_id) else { continue };
            for process in vm.processes().iter() {
                if process.is_alive() && process.wait == (Wait::HostCall { asked: false }) {
                    parked.push((vm_id.clone(), process.pid));
                }
            }
        }
        for (vm_id, pid) in parked {
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            let Some(process) = vm.processes_mut().get_mut(pid) else { continue };
            process.wait = Wait::HostCall { asked: true };
            let Some(effect) = process.host_memo.needed.as_mut().map(NeededCall::take_effect) else { continue };
            if let Err(rejection) = self.ask_effect(effect, Waiter::host_call(vm_id.clone(), pid)) {
                // Past the bound the call fails now, with the reason, instead of waiting.
                self.answer_host_call(&vm_id, pid, Err(HostFsError::with_detail(Errno::EAGAIN, rejection.message)));
            }
        }
    }

    /// A host call completed: its process runs its filesystem call again.
    pub(crate) fn finish_host_call(&mut self, vm_id: &str, pid: u32, completion: Completion) {
        self.answer_host_call(vm_id, pid, host_answer(completion));
    }

    fn answer_host_call(&mut self, vm_id: &str, pid: u32, answer: HostResult<PortValue>) {
        // The VM or the process may be gone; then nobody waits for the answer.
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        if process.wait == (Wait::HostCall { asked: true }) {
            process.host_memo.answer(answer);
        }
    }
}

impl Sidecar {
    /// Handles `request` now, or, when it is a filesystem request of a VM whose host calls are
    /// deferred, through the deferral (queued behind one of that VM's already parked).
    pub(crate) fn handle_host_request(&mut self, stream: StreamId, request: RequestFrame) {
        let deferring_vm = request
            .ownership
            .vm_id()
            .filter(|_| self.host_call_effects && may_need_host_dirs(&request.payload))
            .filter(|vm_id| self.vms.get(vm_id).is_some_and(|vm| vm.filesystem().has_host_dirs()))
            .map(str::to_owned);
        let Some(vm_id) = deferring_vm else { return self.handle_request_now(stream, request) };
        if let Some(queue) = self.parked_requests.by_vm.get_mut(&vm_id) {
            if queue.behind.len() >= MAX_QUEUED_HOST_REQUESTS_PER_VM {
                let message = format!(
                    "EAGAIN: {MAX_QUEUED_HOST_REQUESTS_PER_VM} filesystem requests already wait for this VM's host \
                     directories; retry once they are answered"
                );
                let ownership = super::frames::usable_scope(&request.ownership);
                return self.reject(
                    stream,
                    request.request_id,
                    ownership,
                    Rejection::new(RejectCode::LimitExceeded, message),
                );
            }
            queue.behind.push_back((stream, request));
            return;
        }
        self.parked_requests.by_vm.insert(vm_id.clone(), VmRequests::default());
        self.attempt_host_request(&vm_id, ParkedRequest { stream, request, memo: HostMemo::default() });
    }

    /// Handles the VM's requests in order, from `first`, until one parks on a host call (or
    /// none is left: the VM's queue goes).
    fn attempt_host_request(&mut self, vm_id: &str, first: ParkedRequest) {
        let mut next = Some(first);
        while let Some(ParkedRequest { stream, request, memo }) = next.take() {
            let Some(vm) = self.vms.get(vm_id) else {
                // The VM went away: the request is answered as any request for it is.
                self.handle_request_now(stream, request);
                next = self.next_queued(vm_id);
                continue;
            };
            let kept = request.clone();
            let answered_from = self.outputs.len();
            vm.filesystem().host_gate().defer(memo);
            self.handle_request_now(stream, request);
            let mut memo = self.vms.get(vm_id).map(|vm| vm.filesystem().host_gate().undefer()).unwrap_or_default();
            // A next attempt starts from the first answer.
            memo.rewind();
            let Some(effect) = memo.needed.as_mut().map(NeededCall::take_effect) else {
                next = self.next_queued(vm_id);
                continue;
            };
            // The attempt is void: its answer is withdrawn, and it runs again with the answer.
            self.outputs.truncate(answered_from);
            let parked = ParkedRequest { stream, request: kept, memo };
            match self.ask_effect(effect, Waiter::host_request(vm_id.to_owned())) {
                Ok(_) => {
                    if let Some(queue) = self.parked_requests.by_vm.get_mut(vm_id) {
                        queue.waiting = Some(parked);
                    }
                    return;
                }
                Err(rejection) => {
                    // Past the bound the call fails now, and the request with it.
                    let mut parked = parked;
                    parked.memo.answer(Err(HostFsError::with_detail(Errno::EAGAIN, rejection.message)));
                    next = Some(parked);
                }
            }
        }
    }

    /// The VM's next queued request, or `None` (and the VM's queue goes) when there is none.
    fn next_queued(&mut self, vm_id: &str) -> Option<ParkedRequest> {
        let queue = self.parked_requests.by_vm.get_mut(vm_id)?;
        match queue.behind.pop_front() {
            Some((stream, request)) => Some(ParkedRequest { stream, request, memo: HostMemo::default() }),
            None => {
                self.parked_requests.by_vm.remove(vm_id);
                None
            }
        }
    }

    /// The host call a parked host request waited for completed: it is handled again.
    pub(crate) fn finish_host_request(&mut self, vm_id: &str, completion: Completion) {
        let answer = host_answer(completion);
        let waiting = self.parked_requests.by_vm.get_mut(vm_id).and_then(|queue| queue.waiting.take());
        let Some(mut parked) = waiting else { return };
        parked.memo.answer(answer);
        self.attempt_host_request(vm_id, parked);
    }
}
