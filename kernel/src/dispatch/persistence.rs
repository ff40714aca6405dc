//! `PersistenceLoad` and `PersistenceFlush`: a VM's root filesystem state saved to and loaded
//! from the injected [`Store`](crate::host::store::Store) (format and key rules in
//! [`crate::host::store`]).
//!
//! - Scope: the VM's (a session scope is refused with `invalid_state`
//!   `persistence requires VM ownership: ...`: a session has no filesystem of its own).
//! - Keys are global to the store (the host that runs the sidecar owns it); invalid keys are
//!   `invalid_state`.
//! - Flush: the root's upper layer, encoded, bounded by the VM's
//!   `limits.plugins.maxPersistedManifestBytes` (and [`MAX_PERSISTED_STATE_BYTES`], its ceiling):
//!   `limit_exceeded` `ENOSPC: persisted state bytes limit of <n> reached, ...`; each file's
//!   content by `limits.plugins.maxPersistedManifestFileBytes` (on load too):
//!   `ENOSPC: persisted file bytes limit of <n> reached, ...`. A failed `put`
//!   is `io_error` and leaves the stored state as it was (the store's `put` is atomic).
//!   `payloadSizeBytes` of the request is informational and ignored; `committedBytes` is the
//!   size written.
//! - Load: not found → `found: false` and nothing changes; found → the root's upper is
//!   replaced (all or nothing; `EROFS` on a read-only root, the VM's filesystem limits apply);
//!   a state over the bound is `limit_exceeded`, a corrupt one (bad checksum, truncated, unknown
//!   version) `io_error`. `payloadSizeBytes` is the stored state's size.
//! - Without a store: `unsupported` `persistence is not available: no store is configured`.
//! - The store is reached through effects ([`crate::host::effect`]): a request is checked and
//!   encoded here, its `StorePut`/`StoreGet` goes to the driver, and the answer is sent when the
//!   completion comes back (a load into a VM disposed meanwhile is refused as for any unknown VM).
//!   At most [`MAX_EFFECTS_IN_FLIGHT`](crate::host::effect::MAX_EFFECTS_IN_FLIGHT) are in
//!   flight; past that a request is `limit_exceeded` `EAGAIN: ...`.

use crate::clock::Now;
use crate::dispatch::effects::Waiter;
use crate::dispatch::{Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::host::effect::{Completion, Effect};
use crate::host::store::{decode_state, encode_state, file_over, validate_key, StoreError, MAX_PERSISTED_STATE_BYTES};
use crate::vfs::UpperState;
use crate::vm::Vm;
use schema::wire::*;

/// Which way a persistence request moves the VM's state.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Load,
    Flush,
}

impl Sidecar {
    /// Checks a persistence request and asks the driver for its store effect; the request is
    /// answered when the effect completes ([`Sidecar::finish_persistence`]).
    pub(crate) fn persistence(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        payload: RequestPayload,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let vm_id = self.authorize_persistence(stream, ownership)?;
        let (direction, key) = persistence_request(&payload)?;
        validate_key(&key).map_err(|error| Rejection::invalid_state(error.to_string()))?;
        if !self.store_effects {
            return Err(Rejection::new(
                RejectCode::Unsupported,
                "persistence is not available: no store is configured",
            ));
        }
        let vm = self.vm_mut(&vm_id)?;
        let target = PersistTarget::new(vm, key);
        let (effect, then) = match direction {
            Direction::Flush => {
                let state = vm.filesystem().upper_state();
                target.check_file_sizes(&state, "flush")?;
                let blob = encode_state(&state);
                let size = target.check_state_size(&blob, "flush")?;
                let effect = Effect::StorePut { key: target.key.clone(), value: blob };
                (effect, PersistenceWait::Flush { key: target.key, size })
            }
            Direction::Load => {
                let effect = Effect::StoreGet { key: target.key.clone(), max_bytes: target.state_limit };
                (effect, PersistenceWait::Load { vm_id, target })
            }
        };
        self.ask_effect(effect, Waiter::new(stream, request_id, ownership.clone(), then))?;
        Ok(None)
    }

    /// The answer to a persistence request whose store effect completed.
    pub(crate) fn finish_persistence(
        &mut self,
        then: PersistenceWait,
        completion: Completion,
    ) -> Result<ResponsePayload, Rejection> {
        match (then, completion) {
            (PersistenceWait::Flush { key, size }, Completion::StorePut(put)) => {
                #[cfg(feature = "testing")]
                let put = self.with_injected_fault(put);
                put.map_err(|error| {
                    Rejection::new(RejectCode::IoError, format!("EIO: persistence flush of '{key}' failed: {error}"))
                })?;
                Ok(ResponsePayload::PersistenceFlushedResponse(PersistenceFlushedResponse {
                    key,
                    committed_bytes: size,
                }))
            }
            (PersistenceWait::Load { vm_id, target }, Completion::StoreGet(got)) => {
                let now = self.now;
                let blob = target.fetched(got)?;
                let vm = self.vm_mut(&vm_id)?;
                load(vm, target, blob, now)
            }
            (then, completion) => {
                Err(Rejection::new(RejectCode::IoError, format!("EIO: the store answered {completion:?} to {then:?}")))
            }
        }
    }

    /// [`InjectedFault::AcknowledgeFailedFlush`](crate::InjectedFault::AcknowledgeFailedFlush):
    /// a failed write is answered as committed.
    #[cfg(feature = "testing")]
    fn with_injected_fault(&self, put: Result<(), StoreError>) -> Result<(), StoreError> {
        match self.config.injected_fault {
            Some(crate::InjectedFault::AcknowledgeFailedFlush) => Ok(()),
            _ => put,
        }
    }

    /// The VM whose filesystem a persistence request works on: its scope must be a VM's the
    /// stream may use (a session has no filesystem of its own).
    fn authorize_persistence(&self, stream: StreamId, ownership: &OwnershipScope) -> Result<String, Rejection> {
        self.authorize_session_or_vm(stream, ownership)?;
        if !matches!(ownership, OwnershipScope::VmOwnership(_)) {
            return Err(Rejection::invalid_state(
                "persistence requires VM ownership: a session has no filesystem of its own",
            ));
        }
        self.authorize_vm(stream, ownership)
    }
}

/// The direction and store key of a persistence request.
fn persistence_request(payload: &RequestPayload) -> Result<(Direction, String), Rejection> {
    match payload {
        RequestPayload::PersistenceLoadRequest(request) => Ok((Direction::Load, request.key.clone())),
        RequestPayload::PersistenceFlushRequest(request) => Ok((Direction::Flush, request.key.clone())),
        other => Err(crate::dispatch::not_yet(other)),
    }
}

/// What a persistence request waits for.
#[derive(Debug)]
pub(crate) enum PersistenceWait {
    /// The store to hold the VM's state (`size` bytes) under `key`.
    Flush { key: String, size: u64 },
    /// The state stored for `target`, to replace `vm_id`'s root upper layer with.
    Load { vm_id: String, target: PersistTarget },
}

/// Replaces the VM's root upper layer with `blob`, the state stored under the target's key,
/// all or nothing; without a stored state nothing changes.
fn load(vm: &mut Vm, target: PersistTarget, blob: Option<Vec<u8>>, now: Now) -> Result<ResponsePayload, Rejection> {
    let Some(blob) = blob else {
        return Ok(state_response(target.key, false, 0));
    };
    let size = target.check_state_size(&blob, "load")?;
    let state = decode_state(&blob).map_err(|error| {
        Rejection::new(RejectCode::IoError, format!("EIO: persisted state '{}' is unusable: {error}", target.key))
    })?;
    target.check_file_sizes(&state, "load")?;
    vm.filesystem_mut().restore_upper(&state, now)?;
    Ok(state_response(target.key, true, size))
}

fn state_response(key: String, found: bool, payload_size_bytes: u64) -> ResponsePayload {
    ResponsePayload::PersistenceStateResponse(PersistenceStateResponse { key, found, payload_size_bytes })
}

/// Where a VM's state is persisted, and the bounds it must keep there.
#[derive(Debug)]
pub(crate) struct PersistTarget {
    key: String,
    /// The VM's bound on the encoded state, within [`MAX_PERSISTED_STATE_BYTES`].
    state_limit: u64,
    /// The VM's bound on each file's content.
    file_limit: u64,
}

impl PersistTarget {
    fn new(vm: &Vm, key: String) -> Self {
        let plugins = &vm.limits().plugins;
        Self {
            key,
            state_limit: plugins.max_persisted_manifest_bytes.min(MAX_PERSISTED_STATE_BYTES),
            file_limit: plugins.max_persisted_manifest_file_bytes,
        }
    }

    /// The stored state, if there is one, as the store's get (bounded by the state bound)
    /// answered.
    fn fetched(&self, got: Result<Option<Vec<u8>>, StoreError>) -> Result<Option<Vec<u8>>, Rejection> {
        match got {
            Ok(blob) => Ok(blob),
            Err(StoreError::TooLarge { .. }) => Err(self.state_over_limit("load")),
            Err(error) => Err(Rejection::new(
                RejectCode::IoError,
                format!("EIO: persistence load of '{}' failed: {error}", self.key),
            )),
        }
    }

    /// The size of an encoded state, refused over the state bound (`what`: flush or load).
    fn check_state_size(&self, blob: &[u8], what: &str) -> Result<u64, Rejection> {
        let size = u64::try_from(blob.len()).unwrap_or(u64::MAX);
        if size > self.state_limit {
            return Err(self.state_over_limit(what));
        }
        Ok(size)
    }

    fn state_over_limit(&self, what: &str) -> Rejection {
        Rejection::new(
            RejectCode::LimitExceeded,
            format!("ENOSPC: persisted state bytes limit of {} reached, {what} '{}'", self.state_limit, self.key),
        )
    }

    /// Refuses a state with a file over the file bound (`what`: flush or load).
    fn check_file_sizes(&self, state: &UpperState, what: &str) -> Result<(), Rejection> {
        match file_over(state, self.file_limit) {
            Some(path) => Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!(
                    "ENOSPC: persisted file bytes limit of {} reached, {what} '{}': {path}",
                    self.file_limit, self.key
                ),
            )),
            None => Ok(()),
        }
    }
}
