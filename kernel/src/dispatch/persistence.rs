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

use crate::clock::Now;
use crate::dispatch::{Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::host::store::{
    decode_state, encode_state, file_over, validate_key, Store, StoreError, MAX_PERSISTED_STATE_BYTES,
};
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
    pub(crate) fn persistence(
        &mut self,
        stream: StreamId,
        ownership: &OwnershipScope,
        payload: RequestPayload,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let vm_id = self.authorize_persistence(stream, ownership)?;
        let (direction, key) = persistence_request(&payload)?;
        validate_key(&key).map_err(|error| Rejection::invalid_state(error.to_string()))?;
        let store = self.store.clone().ok_or_else(|| {
            Rejection::new(RejectCode::Unsupported, "persistence is not available: no store is configured")
        })?;
        let now = self.now;
        #[cfg(feature = "testing")]
        let fault = self.config.injected_fault;
        let vm = self.vm_mut(&vm_id)?;
        let target = PersistTarget::new(vm, key);
        let response = match direction {
            Direction::Flush => {
                #[cfg(feature = "testing")]
                let flushed = with_injected_fault(fault, target.key.clone(), flush(vm, store.as_ref(), target));
                #[cfg(not(feature = "testing"))]
                let flushed = flush(vm, store.as_ref(), target);
                flushed?
            }
            Direction::Load => load(vm, store.as_ref(), target, now)?,
        };
        Ok(Some(response))
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

/// [`InjectedFault::AcknowledgeFailedFlush`](crate::InjectedFault::AcknowledgeFailedFlush):
/// a failed write is answered as committed.
#[cfg(feature = "testing")]
fn with_injected_fault(
    fault: Option<crate::InjectedFault>,
    key: String,
    flushed: Result<ResponsePayload, Rejection>,
) -> Result<ResponsePayload, Rejection> {
    match flushed {
        Err(rejection)
            if rejection.code == RejectCode::IoError && fault == Some(crate::InjectedFault::AcknowledgeFailedFlush) =>
        {
            Ok(ResponsePayload::PersistenceFlushedResponse(PersistenceFlushedResponse { key, committed_bytes: 0 }))
        }
        other => other,
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

/// Saves the VM's root upper layer under the target's key. A failed `put` leaves the stored
/// state as it was (the store's `put` is atomic).
fn flush(vm: &Vm, store: &dyn Store, target: PersistTarget) -> Result<ResponsePayload, Rejection> {
    let state = vm.filesystem().upper_state();
    target.check_file_sizes(&state, "flush")?;
    let blob = encode_state(&state);
    let size = target.check_state_size(&blob, "flush")?;
    store.put(&target.key, &blob).map_err(|error| {
        Rejection::new(RejectCode::IoError, format!("EIO: persistence flush of '{}' failed: {error}", target.key))
    })?;
    Ok(ResponsePayload::PersistenceFlushedResponse(PersistenceFlushedResponse {
        key: target.key,
        committed_bytes: size,
    }))
}

/// Replaces the VM's root upper layer with the state stored under the target's key, all or
/// nothing; without a stored state nothing changes.
fn load(vm: &mut Vm, store: &dyn Store, target: PersistTarget, now: Now) -> Result<ResponsePayload, Rejection> {
    let Some(blob) = target.fetch(store)? else {
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
struct PersistTarget {
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

    /// The stored state, if there is one, read only within the state bound.
    fn fetch(&self, store: &dyn Store) -> Result<Option<Vec<u8>>, Rejection> {
        match store.get(&self.key, self.state_limit) {
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
