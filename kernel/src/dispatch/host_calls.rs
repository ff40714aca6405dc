//! Guests' host directory calls as effects (see `fs::host_gate`): the call a parked filesystem
//! call needs becomes an [`Effect::HostCall`], and its completion goes to that process's memo,
//! which wakes it to run the call again.
//!
//! So a slow or stuck host disk (a network filesystem, a disk in trouble) holds up only the
//! guests waiting on it: the loop goes on serving every other VM, and the driver performs the
//! call wherever it likes (the stdio driver on a worker thread; the simulator after a drawn
//! delay; `replay` never: it feeds the recorded completion).

use super::effects::Waiter;
use super::Sidecar;
use crate::host::effect::{Completion, Effect};
use crate::host::fs::HostFsError;
use crate::process::table::Wait;
use crate::vfs::Errno;

/// Host directory calls in flight at once, across every VM: a process waits on one at most,
/// and each is one short system call on the driver's side, so this is far more than a healthy
/// disk keeps busy; past it a guest's call fails with `EAGAIN` rather than queue without bound.
pub const MAX_HOST_CALLS_IN_FLIGHT: usize = 1024;

impl Sidecar {
    /// Guests' calls to `host_dir` mounts become [`Effect::HostCall`]s the driver performs
    /// (without it, they are made within the kernel's step, and a trace records them through
    /// the port journal).
    pub fn with_host_call_effects(mut self) -> Self {
        self.host_call_effects = true;
        self
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
            let Some(needed) = process.host_memo.needed.as_mut() else { continue };
            let data = std::mem::take(&mut needed.data);
            let effect = Effect::HostCall { dir: needed.dir.clone(), call: needed.call.clone(), data };
            if let Err(rejection) = self.ask_effect(effect, Waiter::host_call(vm_id.clone(), pid)) {
                // Past the bound the call fails now, with the reason, instead of waiting.
                self.answer_host_call(&vm_id, pid, Err(HostFsError::with_detail(Errno::EAGAIN, rejection.message)));
            }
        }
    }

    /// A host call completed: its process runs its filesystem call again.
    pub(crate) fn finish_host_call(&mut self, vm_id: &str, pid: u32, completion: Completion) {
        let answer = match completion {
            Completion::HostCall(answer) => answer,
            _ => Err(HostFsError::with_detail(Errno::EIO, "a host call got another effect's completion")),
        };
        self.answer_host_call(vm_id, pid, answer);
    }

    fn answer_host_call(
        &mut self,
        vm_id: &str,
        pid: u32,
        answer: crate::host::fs::HostResult<crate::host::journal::PortValue>,
    ) {
        // The VM or the process may be gone; then nobody waits for the answer.
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let Some(process) = vm.processes_mut().get_mut(pid) else { return };
        if process.wait == (Wait::HostCall { asked: true }) {
            process.host_memo.answer(answer);
        }
    }
}
