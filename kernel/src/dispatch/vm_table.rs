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
    /// A process can run a slice.
    pub(crate) runnable: bool,
    /// The wake pass has work here: a wait of a process is over, a prompt or spawn awaits
    /// serving, or exited processes are past their bound.
    pub(crate) wake: bool,
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
    /// VMs with a runnable process, by (creation order, id).
    runnable: BTreeSet<(u64, String)>,
    /// VMs with work for the wake pass, by (creation order, id).
    wake: BTreeSet<(u64, String)>,
    /// Each VM's earliest timer, by (time, id).
    timers: BTreeSet<(u64, String)>,
}

impl Schedule {
    fn forget(&mut self, vm_id: &str) {
        if let Some(old) = self.summaries.remove(vm_id) {
            let key = (creation_order(vm_id), vm_id.to_owned());
            if old.runnable {
                self.runnable.remove(&key);
            }
            if old.wake {
                self.wake.remove(&key);
            }
            if let Some(at) = old.timer_ms {
                self.timers.remove(&(at, vm_id.to_owned()));
            }
        }
    }

    fn record(&mut self, vm_id: &str, summary: Summary) {
        self.forget(vm_id);
        if summary.runnable {
            self.runnable.insert((creation_order(vm_id), vm_id.to_owned()));
        }
        if summary.wake {
            self.wake.insert((creation_order(vm_id), vm_id.to_owned()));
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
        if schedule.runnable.is_empty() && schedule.wake.is_empty() {
            return timer;
        }
        Some(timer.map_or(now_ms, |at| at.min(now_ms)))
    }

    /// The VMs the wake pass must look at, at `now_ms` (a wait over, something to serve, or a
    /// timer that has come), in creation order. VMs whose processes only run (or only wait for
    /// what has not happened) are not among them, so a tick costs what changed, not every VM.
    pub(crate) fn waking(&self, now_ms: u64, summarize: &dyn Fn(&Vm) -> Summary) -> Vec<String> {
        self.refresh(summarize);
        let schedule = self.schedule.borrow();
        let timers_due = schedule.timers.first().is_some_and(|(at, _)| *at <= now_ms);
        if !timers_due {
            // The common case, without building a set: already in creation order.
            return schedule.wake.iter().map(|(_, vm_id)| vm_id.clone()).collect();
        }
        let mut waking: BTreeSet<(u64, String)> = schedule.wake.iter().cloned().collect();
        for (_, vm_id) in schedule.timers.iter().take_while(|(at, _)| *at <= now_ms) {
            waking.insert((creation_order(vm_id), vm_id.clone()));
        }
        waking.into_iter().map(|(_, vm_id)| vm_id).collect()
    }

    /// The first `found` gives among the VMs with a runnable process, in creation order,
    /// starting after the VM `after` and wrapping round to it (`after` itself comes last).
    /// Costs O(log VMs) plus the VMs tried, not a walk of every VM.
    pub(crate) fn find_runnable<T>(
        &self,
        after: Option<&str>,
        summarize: &dyn Fn(&Vm) -> Summary,
        mut found: impl FnMut(&str, &Vm) -> Option<T>,
    ) -> Option<T> {
        self.refresh(summarize);
        let schedule = self.schedule.borrow();
        let mut try_vm = |(_, vm_id): &(u64, String)| self.vms.get(vm_id).and_then(|vm| found(vm_id, vm));
        match after {
            None => schedule.runnable.iter().find_map(try_vm),
            Some(vm_id) => {
                let key = (creation_order(vm_id), vm_id.to_owned());
                let later = schedule.runnable.range((std::ops::Bound::Excluded(&key), std::ops::Bound::Unbounded));
                let earlier = schedule.runnable.range(..=&key);
                later.chain(earlier).find_map(&mut try_vm)
            }
        }
    }

    /// Whether the VM has a runnable process.
    pub(crate) fn is_runnable(&self, vm_id: &str, summarize: &dyn Fn(&Vm) -> Summary) -> bool {
        self.refresh(summarize);
        self.schedule.borrow().summaries.get(vm_id).is_some_and(|summary| summary.runnable)
    }

    /// The VMs with a runnable process, in creation order.
    pub(crate) fn runnable(&self, summarize: &dyn Fn(&Vm) -> Summary) -> Vec<String> {
        self.refresh(summarize);
        self.schedule.borrow().runnable.iter().map(|(_, vm_id)| vm_id.clone()).collect()
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
