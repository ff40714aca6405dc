//! The effects the kernel has asked for and not yet had completed (see [`crate::host::effect`]),
//! with the requests waiting on them.

use std::collections::{BTreeMap, VecDeque};

use schema::wire::OwnershipScope;

use super::compile::CompileKey;
use super::egress::{LinkEffect, MAX_EFFECTS_PER_LINK, MAX_LINKS};
use super::host_calls::MAX_HOST_CALLS_IN_FLIGHT;
use super::persistence::PersistenceWait;
use super::{Sidecar, StreamId};
use crate::clock::Now;
use crate::error::{RejectCode, Rejection};
use crate::host::effect::{Completion, Effect, EffectId, LinkId, MAX_EFFECTS_IN_FLIGHT, MAX_EFFECT_BYTES_IN_FLIGHT};

/// Network effects in flight at most: every link's, all at once. They are bounded by the links
/// open (a link's effects are asked one of a kind at a time), not by
/// [`MAX_EFFECTS_IN_FLIGHT`], which is for the store and the compiler: an idle connection
/// always has a receive waiting.
pub const MAX_NETWORK_EFFECTS_IN_FLIGHT: usize = MAX_LINKS * MAX_EFFECTS_PER_LINK;

/// What waits for an effect.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub then: Then,
    /// Bytes its effect holds (counted against [`MAX_EFFECT_BYTES_IN_FLIGHT`]).
    held_bytes: u64,
}

/// What happens when an effect completes.
#[derive(Debug)]
pub(crate) enum Then {
    /// A persistence request is answered.
    Persistence { stream: StreamId, request_id: i64, ownership: OwnershipScope, wait: PersistenceWait },
    /// A program is compiled: what waited for it goes on (see `compile`).
    Compiled(CompileKey),
    /// A link's effect completed (see `egress`).
    Link { vm_id: String, link: LinkId, kind: LinkEffect },
    /// A name a VM asked for is resolved (see `egress`).
    Resolve { vm_id: String, name: String },
    /// A host directory answered a guest's call (see `host_calls`).
    HostCall { vm_id: String, pid: u32 },
    /// A host directory answered a host request's call (see `host_calls`).
    HostRequest { vm_id: String },
    /// The driver loaded the Python interpreter (see `compile`).
    PythonLoaded,
}

#[derive(Debug, Default)]
pub(crate) struct Effects {
    next_id: u64,
    /// Asked for, not yet taken by the driver.
    queued: VecDeque<(EffectId, Effect)>,
    /// Every effect not yet completed (queued or taken), with its waiter.
    waiting: BTreeMap<EffectId, Waiter>,
    held_bytes: u64,
    /// Of `waiting`, the network's.
    network: usize,
    /// Of `waiting`, the host directory calls.
    host_calls: usize,
}

impl Effects {
    /// Queues `effect` for `waiter`'s request; refused past the in-flight bounds.
    fn ask(&mut self, effect: Effect, mut waiter: Waiter) -> Result<EffectId, Rejection> {
        if effect.is_network() {
            if self.network >= MAX_NETWORK_EFFECTS_IN_FLIGHT {
                let message = format!("{MAX_NETWORK_EFFECTS_IN_FLIGHT} network effects are in flight");
                return Err(Rejection::new(RejectCode::LimitExceeded, message));
            }
            self.network += 1;
            return Ok(self.queue(effect, waiter));
        }
        let held = effect.held_bytes();
        if effect.is_host_call() {
            if self.host_calls >= MAX_HOST_CALLS_IN_FLIGHT {
                let message = format!("EAGAIN: {MAX_HOST_CALLS_IN_FLIGHT} host directory calls are in flight");
                return Err(Rejection::new(RejectCode::LimitExceeded, message));
            }
            if self.held_bytes > 0 && self.held_bytes.saturating_add(held) > MAX_EFFECT_BYTES_IN_FLIGHT {
                let message = format!(
                    "EAGAIN: {} bytes wait in effects, the limit is {MAX_EFFECT_BYTES_IN_FLIGHT}",
                    self.held_bytes
                );
                return Err(Rejection::new(RejectCode::LimitExceeded, message));
            }
            self.host_calls += 1;
            waiter.held_bytes = held;
            self.held_bytes += held;
            return Ok(self.queue(effect, waiter));
        }
        let over_bytes = self.held_bytes > 0 && self.held_bytes.saturating_add(held) > MAX_EFFECT_BYTES_IN_FLIGHT;
        if self.waiting.len() - self.network - self.host_calls >= MAX_EFFECTS_IN_FLIGHT || over_bytes {
            return Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!(
                    "EAGAIN: {} store operations and compilations ({} bytes) are in flight, the limit is \
                     {MAX_EFFECTS_IN_FLIGHT} ({MAX_EFFECT_BYTES_IN_FLIGHT} bytes); retry once they are answered",
                    self.waiting.len() - self.network - self.host_calls,
                    self.held_bytes
                ),
            ));
        }
        waiter.held_bytes = held;
        self.held_bytes += held;
        Ok(self.queue(effect, waiter))
    }

    fn queue(&mut self, effect: Effect, waiter: Waiter) -> EffectId {
        self.next_id += 1;
        let id = EffectId(self.next_id);
        self.queued.push_back((id, effect));
        self.waiting.insert(id, waiter);
        assert!(self.queued.len() <= self.waiting.len() && self.network + self.host_calls <= self.waiting.len());
        id
    }

    fn complete(&mut self, id: EffectId) -> Option<Waiter> {
        let waiter = self.waiting.remove(&id)?;
        self.held_bytes -= waiter.held_bytes;
        if matches!(waiter.then, Then::Link { .. } | Then::Resolve { .. }) {
            self.network -= 1;
        }
        if matches!(waiter.then, Then::HostCall { .. } | Then::HostRequest { .. }) {
            self.host_calls -= 1;
        }
        // A completion may come before the driver took the effect (it never should); the
        // effect is then dropped, not performed late.
        self.queued.retain(|(queued, _)| *queued != id);
        Some(waiter)
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

impl Waiter {
    pub(crate) fn new(stream: StreamId, request_id: i64, ownership: OwnershipScope, wait: PersistenceWait) -> Self {
        Self { then: Then::Persistence { stream, request_id, ownership, wait }, held_bytes: 0 }
    }

    pub(crate) fn compile(key: CompileKey) -> Self {
        Self { then: Then::Compiled(key), held_bytes: 0 }
    }

    pub(crate) fn link(vm_id: String, link: LinkId, kind: LinkEffect) -> Self {
        Self { then: Then::Link { vm_id, link, kind }, held_bytes: 0 }
    }

    pub(crate) fn resolve(vm_id: String, name: String) -> Self {
        Self { then: Then::Resolve { vm_id, name }, held_bytes: 0 }
    }

    pub(crate) fn host_call(vm_id: String, pid: u32) -> Self {
        Self { then: Then::HostCall { vm_id, pid }, held_bytes: 0 }
    }

    pub(crate) fn load_python() -> Self {
        Self { then: Then::PythonLoaded, held_bytes: 0 }
    }

    pub(crate) fn host_request(vm_id: String) -> Self {
        Self { then: Then::HostRequest { vm_id }, held_bytes: 0 }
    }
}

impl Sidecar {
    /// Asks the driver for `effect` on behalf of a waiting request.
    pub(crate) fn ask_effect(&mut self, effect: Effect, waiter: Waiter) -> Result<EffectId, Rejection> {
        self.effects.ask(effect, waiter)
    }

    /// The next effect to perform, in the order asked.
    pub fn poll_effect(&mut self) -> Option<(EffectId, Effect)> {
        self.effects.queued.pop_front()
    }

    /// Effects asked for and not yet completed.
    pub fn pending_effects(&self) -> usize {
        self.effects.len()
    }

    /// An effect's completion, at `now`: the request that waited on it is answered.
    pub fn handle_completion(&mut self, id: EffectId, completion: Completion, now: Now) {
        self.advance(now);
        // A completion nobody waits for is a driver's bug; the kernel's state must not depend
        // on it, so it is ignored.
        let Some(waiter) = self.effects.complete(id) else { return };
        match waiter.then {
            Then::Persistence { stream, request_id, ownership, wait } => {
                match self.finish_persistence(wait, completion) {
                    Ok(response) => self.respond(stream, request_id, ownership, response),
                    Err(rejection) => self.reject(stream, request_id, ownership, rejection),
                }
            }
            Then::Compiled(key) => self.finish_compile(key),
            then @ Then::Link { .. } => self.finish_link(then, completion),
            Then::Resolve { vm_id, name } => self.finish_resolve(&vm_id, &name, completion),
            Then::HostCall { vm_id, pid } => self.finish_host_call(&vm_id, pid, completion),
            Then::HostRequest { vm_id } => self.finish_host_request(&vm_id, completion),
            Then::PythonLoaded => self.finish_python_load(completion),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn put(mib: usize) -> Effect {
        // Zeroed allocations are not touched, so these cost address space, not memory.
        Effect::StorePut { key: "k".into(), value: vec![0; mib << 20] }
    }

    fn waiter() -> Waiter {
        let then = PersistenceWait::Flush { key: "k".into(), size: 0 };
        Waiter::new(StreamId(1), 1, OwnershipScope::connection("c"), then)
    }

    #[test]
    fn bytes_in_flight_are_bounded_but_one_large_state_may_go_alone() {
        let mut effects = Effects::default();
        let large = effects.ask(put(300), waiter()).unwrap();
        assert!(effects.ask(put(1), waiter()).is_err(), "nothing joins a state over the bound");
        assert!(effects.complete(large).is_some());
        assert_eq!(effects.held_bytes, 0);
        effects.ask(put(200), waiter()).unwrap();
        let refused = effects.ask(put(100), waiter()).unwrap_err();
        assert!(refused.message.starts_with("EAGAIN: 1 store operations"), "{}", refused.message);
        effects.ask(put(50), waiter()).unwrap();
        assert_eq!(effects.len(), 2);
        assert_eq!(effects.queued.len(), 2);
    }

    #[test]
    fn host_calls_in_flight_are_bounded_apart_from_the_store_and_compilations() {
        use crate::host::effect::HostDirHandle;
        use crate::host::journal::PortCall;
        let dir: std::sync::Arc<dyn crate::host::fs::HostDir> =
            std::sync::Arc::new(crate::host::python::StdlibDir::new(std::sync::Arc::new(
                crate::host::python::StdlibArchive::from_bytes(std::sync::Arc::from(Vec::new())),
            )));
        let call = |index: usize| Effect::HostCall {
            dir: HostDirHandle::new(1, std::sync::Arc::clone(&dir)),
            call: PortCall::Stat { dir: 1, path: index.to_string() },
            data: Vec::new(),
        };
        let mut effects = Effects::default();
        let mut first = None;
        for index in 0..MAX_HOST_CALLS_IN_FLIGHT {
            let id = effects.ask(call(index), Waiter::host_call("vm-1".into(), 1)).unwrap();
            first.get_or_insert(id);
        }
        let refused = effects.ask(call(0), Waiter::host_call("vm-1".into(), 1)).unwrap_err();
        assert!(refused.message.starts_with("EAGAIN: 1024 host directory calls"), "{}", refused.message);
        effects.ask(put(1), waiter()).unwrap();
        assert!(effects.complete(first.unwrap()).is_some());
        effects.ask(call(0), Waiter::host_call("vm-1".into(), 1)).unwrap();
    }
}
