//! Every timer the simulated hosts set, where the stepper can read it.
//!
//! turmoil runs every host's runtime at every step (one per [`crate::TICK`] of simulated
//! time), and a host with nothing to do costs about a microsecond of real time each step, most
//! of a step's cost. A host whose next timer is due after a step ends and which has no message
//! to take that step has nothing to do in it, so the stepper spares it (turmoil's
//! `Sim::step_sparing`, our change to turmoil): its runtime's clock waits and catches up in
//! one run later, firing its timers at the same simulated instants. What the software sees is
//! the same; [`crate::SimOptions::spare_quiet_hosts`] turns sparing off, and a test checks that
//! seeds give the same frames either way.
//!
//! That holds only if the book has *every* timer of a host: each host sets its timers through
//! its [`Timers`] (never `tokio::time` directly), and a host with no [`Timers`] is never
//! spared. A timer stays in the book until its future is done or dropped, so one that fired
//! but whose task has not yet run still counts as due.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The timers of every host that has a [`Timers`].
#[derive(Default)]
pub struct TimerBook {
    hosts: Vec<HostTimers>,
    next_id: u64,
}

struct HostTimers {
    name: String,
    /// Pending timers as (due, id), due in simulated time since the simulation's start.
    pending: BTreeSet<(Duration, u64)>,
    /// Set when a timer could not be kept: the host is never spared again.
    overflowed: bool,
}

/// Most timers one host may have pending at once: a bound on the book (the simulated hosts
/// hold a handful each: one per connection's task and wait).
const MAX_TIMERS_PER_HOST: usize = 4096;

impl TimerBook {
    pub fn shared() -> Rc<RefCell<TimerBook>> {
        Rc::new(RefCell::new(TimerBook::default()))
    }

    /// Whether `host` keeps every timer here and none is due by `step_end` (simulated time).
    pub fn is_quiet(&self, host: &str, step_end: Duration) -> bool {
        self.hosts.iter().find(|timers| timers.name == host).is_some_and(|timers| {
            !timers.overflowed && timers.pending.first().is_none_or(|(first, _)| *first > step_end)
        })
    }

    fn slot(&mut self, host: &str) -> usize {
        if let Some(index) = self.hosts.iter().position(|timers| timers.name == host) {
            return index;
        }
        self.hosts.push(HostTimers { name: host.to_owned(), pending: BTreeSet::new(), overflowed: false });
        self.hosts.len() - 1
    }

    /// Keeps a timer due at `due`; `None` if it cannot (the host is then never spared).
    fn add(&mut self, slot: usize, due: Duration) -> Option<(Duration, u64)> {
        let id = self.next_id;
        self.next_id += 1;
        let timers = self.hosts.get_mut(slot)?;
        if timers.pending.len() >= MAX_TIMERS_PER_HOST {
            timers.overflowed = true;
            return None;
        }
        timers.pending.insert((due, id));
        Some((due, id))
    }

    fn remove(&mut self, slot: usize, key: (Duration, u64)) {
        if let Some(timers) = self.hosts.get_mut(slot) {
            timers.pending.remove(&key);
        }
    }
}

/// One host's way to set timers: `tokio::time`'s, each kept in the book while pending.
#[derive(Clone)]
pub struct Timers {
    book: Rc<RefCell<TimerBook>>,
    slot: usize,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers").field("slot", &self.slot).finish_non_exhaustive()
    }
}

impl Timers {
    /// The timers of the host named `host` (its turmoil name).
    pub fn of(book: &Rc<RefCell<TimerBook>>, host: &str) -> Timers {
        let slot = book.borrow_mut().slot(host);
        Timers { book: book.clone(), slot }
    }

    #[allow(clippy::disallowed_methods)] // The one place that sets tokio's timers.
    pub fn sleep(&self, duration: Duration) -> Timed<tokio::time::Sleep> {
        self.timed(duration, tokio::time::sleep(duration))
    }

    #[allow(clippy::disallowed_methods)]
    pub fn sleep_until(&self, deadline: tokio::time::Instant) -> Timed<tokio::time::Sleep> {
        let duration = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.timed(duration, tokio::time::sleep_until(deadline))
    }

    #[allow(clippy::disallowed_methods)]
    pub fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timed<tokio::time::Timeout<F>> {
        self.timed(duration, tokio::time::timeout(duration, future))
    }

    fn timed<F>(&self, duration: Duration, inner: F) -> Timed<F> {
        // The host's simulated now: its runtime's clock, which is the one the timer runs on.
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due = now.saturating_add(duration);
        let key = self.book.borrow_mut().add(self.slot, due);
        Timed { inner: Box::pin(inner), book: self.book.clone(), slot: self.slot, key }
    }
}

/// A timer's future, kept in the book until it is done or dropped.
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    book: Rc<RefCell<TimerBook>>,
    slot: usize,
    key: Option<(Duration, u64)>,
}

impl<F> Timed<F> {
    fn forget(&mut self) {
        if let Some(key) = self.key.take() {
            self.book.borrow_mut().remove(self.slot, key);
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = self.inner.as_mut().poll(cx);
        if polled.is_ready() {
            self.forget();
        }
        polled
    }
}

impl<F> Drop for Timed<F> {
    fn drop(&mut self) {
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
    }

    fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_host_is_quiet_until_a_timer_falls_due_within_the_step() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let book = TimerBook::shared();
        let timers = Timers::of(&book, "a");
        assert!(book.borrow().is_quiet("a", 5 * MS), "no timer");
        assert!(!book.borrow().is_quiet("b", 5 * MS), "a host without Timers is never spared");
        // Outside a simulation the host's now is zero: due at 10 ms.
        let sleep = timers.sleep(10 * MS);
        assert!(book.borrow().is_quiet("a", 5 * MS));
        assert!(!book.borrow().is_quiet("a", 10 * MS), "due at the step's end");
        let later = timers.timeout(30 * MS, std::future::pending::<()>());
        drop(sleep);
        assert!(book.borrow().is_quiet("a", 25 * MS), "a dropped timer is gone");
        assert!(!book.borrow().is_quiet("a", 30 * MS));
        drop(later);
        assert!(book.borrow().is_quiet("a", Duration::MAX));
    }

    #[test]
    fn a_timer_stays_due_until_its_future_is_done() {
        let runtime = runtime();
        let book = TimerBook::shared();
        let timers = Timers::of(&book, "a");
        runtime.block_on(async {
            let mut sleep = timers.sleep(2 * MS);
            assert!(poll_once(&mut sleep).is_pending());
            tokio::time::advance(5 * MS).await;
            // It has fired, but until it is polled its task has not run: still due.
            assert!(!book.borrow().is_quiet("a", 5 * MS));
            assert!(poll_once(&mut sleep).is_ready());
            assert!(book.borrow().is_quiet("a", Duration::MAX));
            let until = timers.sleep_until(tokio::time::Instant::now() + 7 * MS);
            assert!(!book.borrow().is_quiet("a", 7 * MS), "sleep_until counts from the clock");
            drop(until);
        });
    }

    #[test]
    fn a_host_with_more_timers_than_the_book_keeps_is_never_spared_again() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let book = TimerBook::shared();
        let timers = Timers::of(&book, "a");
        let mut kept: Vec<_> = (0..MAX_TIMERS_PER_HOST).map(|_| timers.sleep(Duration::from_secs(60))).collect();
        assert!(book.borrow().is_quiet("a", 5 * MS));
        let unkept = timers.sleep(Duration::from_secs(60));
        assert!(!book.borrow().is_quiet("a", 5 * MS));
        drop(unkept);
        kept.clear();
        assert!(!book.borrow().is_quiet("a", 5 * MS), "not even once its timers are gone");
        assert!(Timers::of(&book, "b").book.borrow().is_quiet("b", 5 * MS), "other hosts are");
    }
}
