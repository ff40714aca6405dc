//! The live VMs, with what the scheduler asks of each kept current: whether it has work now and
//! its earliest timer. A VM borrowed mutably (or added, or named by [`VmTable::touch`]) is
//! re-read before the next question, so finding the next deadline costs O(log VMs) plus the
//! VMs changed since, never a scan of every process of every VM (a sidecar of 1,000 idle VMs
//! answers as fast as one of a single VM). quinn-proto's timer table is the model; here the
//! table is kept by the borrow rules: there is no way to change a VM without marking it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::vm::Vm;

/// What the scheduler needs to know of one VM, read from its state at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// A process can run, or a wait of one is over, or a prompt or spawn awaits serving.
    pub(crate) work_now: bool,
    /// The earliest time something happens unprompted (a sleep ends, an exited process is
    /// forgotten, a zombie is reaped).
    pub(crate) timer_ms: Option<u64>,
}

/// The VMs by id, and their schedule.
#[derive(Debug, Default)]
pub(crate) struct VmTable {
    vms: BTreeMap<String, Vm>,
    schedule: RefCell<Schedule>,
}

#[derive(Debug, Default)]
struct Schedule {
    /// VMs whose summary may be stale.
    changed: BTreeSet<String>,
    summaries: BTreeMap<String, Summary>,
    /// VMs with work now, by (creation order, id).
    work_now: BTreeSet<(u64, String)>,
    /// Each VM's earliest timer, by (time, id).
    timers: BTreeSet<(u64, String)>,
}

impl Schedule {
    fn forget(&mut self, vm_id: &str) {
        if let Some(old) = self.summaries.remove(vm_id) {
            if old.work_now {
                self.work_now.remove(&(creation_order(vm_id), vm_id.to_owned()));
            }
            if let Some(at) = old.timer_ms {
                self.timers.remove(&(at, vm_id.to_owned()));
            }
        }
    }

    fn record(&mut self, vm_id: &str, summary: Summary) {
        self.forget(vm_id);
        if summary.work_now {
            self.work_now.insert((creation_order(vm_id), vm_id.to_owned()));
        }
        if let Some(at) = summary.timer_ms {
            self.timers.insert((at, vm_id.to_owned()));
        }
        self.summaries.insert(vm_id.to_owned(), summary);
    }
}

/// The order VMs were created in: their ids end in a counter (`vm-10` after `vm-9`).
pub(crate) fn creation_order(vm_id: &str) -> u64 {
    crate::dispatch::numeric_suffix(vm_id)
}

impl VmTable {
    pub(crate) fn len(&self) -> usize {
        self.vms.len()
    }

    pub(crate) fn get(&self, vm_id: &str) -> Option<&Vm> {
        self.vms.get(vm_id)
    }

    /// The VM, marked changed: its summary is re-read before the next question.
    pub(crate) fn get_mut(&mut self, vm_id: &str) -> Option<&mut Vm> {
        let vm = self.vms.get_mut(vm_id)?;
        self.schedule.get_mut().changed.insert(vm_id.to_owned());
        Some(vm)
    }

    pub(crate) fn insert(&mut self, vm_id: String, vm: Vm) {
        self.schedule.get_mut().changed.insert(vm_id.clone());
        self.vms.insert(vm_id, vm);
    }

    pub(crate) fn remove(&mut self, vm_id: &str) -> Option<Vm> {
        let schedule = self.schedule.get_mut();
        schedule.forget(vm_id);
        schedule.changed.remove(vm_id);
        self.vms.remove(vm_id)
    }

    /// Marks a VM changed for a reason outside its state (a prompt one of its processes waits
    /// for was answered).
    pub(crate) fn touch(&mut self, vm_id: &str) {
        if self.vms.contains_key(vm_id) {
            self.schedule.get_mut().changed.insert(vm_id.to_owned());
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.vms.keys()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Vm> {
        self.vms.values()
    }

    /// Re-reads the summary of every VM changed since it was last read.
    fn refresh(&self, summarize: &dyn Fn(&Vm) -> Summary) {
        let mut schedule = self.schedule.borrow_mut();
        let changed = std::mem::take(&mut schedule.changed);
        for vm_id in changed {
            if let Some(vm) = self.vms.get(&vm_id) {
                schedule.record(&vm_id, summarize(vm));
            }
        }
    }

    /// The earliest time any VM has work: `now_ms` while one has work now.
    pub(crate) fn next_deadline(&self, now_ms: u64, summarize: &dyn Fn(&Vm) -> Summary) -> Option<u64> {
        self.refresh(summarize);
        let schedule = self.schedule.borrow();
        let timer = schedule.timers.first().map(|(at, _)| *at);
        if schedule.work_now.is_empty() {
            return timer;
        }
        Some(timer.map_or(now_ms, |at| at.min(now_ms)))
    }

    /// The VMs with work at `now_ms` (now, or a timer that has come), in creation order.
    pub(crate) fn due(&self, now_ms: u64, summarize: &dyn Fn(&Vm) -> Summary) -> Vec<String> {
        self.refresh(summarize);
        let schedule = self.schedule.borrow();
        let mut due: BTreeSet<(u64, String)> = schedule.work_now.iter().cloned().collect();
        for (_, vm_id) in schedule.timers.iter().take_while(|(at, _)| *at <= now_ms) {
            due.insert((creation_order(vm_id), vm_id.clone()));
        }
        due.into_iter().map(|(_, vm_id)| vm_id).collect()
    }

    /// Checks the cached summaries against a fresh reading of every VM (tests and simulations:
    /// a VM changed without being marked would show here).
    #[cfg(feature = "testing")]
    pub(crate) fn assert_schedule_current(&self, summarize: &dyn Fn(&Vm) -> Summary) {
        self.refresh(summarize);
        let schedule = self.schedule.borrow();
        for (vm_id, vm) in &self.vms {
            let cached = schedule.summaries.get(vm_id).copied().unwrap_or_default();
            assert_eq!(cached, summarize(vm), "the schedule of {vm_id} is stale");
        }
    }
}
