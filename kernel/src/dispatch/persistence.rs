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

use crate::dispatch::{Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::host::store::{StoreError, MAX_PERSISTED_STATE_BYTES};
use schema::wire::*;

impl Sidecar {
    pub(crate) fn persistence(
        &mut self,
        stream: StreamId,
        ownership: &OwnershipScope,
        payload: RequestPayload,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        self.authorize_session_or_vm(stream, ownership)?;
        if !matches!(ownership, OwnershipScope::VmOwnership(_)) {
            return Err(Rejection::invalid_state(
                "persistence requires VM ownership: a session has no filesystem of its own",
            ));
        }
        let vm_id = self.authorize_vm(stream, ownership)?;
        let key = match &payload {
            RequestPayload::PersistenceLoadRequest(request) => request.key.clone(),
            RequestPayload::PersistenceFlushRequest(request) => request.key.clone(),
            other => return Err(crate::dispatch::not_yet(other)),
        };
        crate::host::store::validate_key(&key).map_err(|error| Rejection::invalid_state(error.to_string()))?;
        let store = self.store.clone().ok_or_else(|| {
            Rejection::new(RejectCode::Unsupported, "persistence is not available: no store is configured")
        })?;
        let now = self.now;
        let vm = self.vm_mut(&vm_id)?;
        let limit = vm.limits().plugins.max_persisted_manifest_bytes.min(MAX_PERSISTED_STATE_BYTES);
        let over_limit = |what: &str| {
            Rejection::new(
                RejectCode::LimitExceeded,
                format!("ENOSPC: persisted state bytes limit of {limit} reached, {what} '{key}'"),
            )
        };
        let file_limit = vm.limits().plugins.max_persisted_manifest_file_bytes;
        let file_over_limit = |what: &str, path: &str| {
            Rejection::new(
                RejectCode::LimitExceeded,
                format!("ENOSPC: persisted file bytes limit of {file_limit} reached, {what} '{key}': {path}"),
            )
        };
        match payload {
            RequestPayload::PersistenceFlushRequest(_) => {
                let state = vm.filesystem().upper_state();
                if let Some(path) = crate::host::store::file_over(&state, file_limit) {
                    return Err(file_over_limit("flush", path));
                }
                let blob = crate::host::store::encode_state(&state);
                let size = u64::try_from(blob.len()).unwrap_or(u64::MAX);
                if size > limit {
                    return Err(over_limit("flush"));
                }
                store.put(&key, &blob).map_err(|error| {
                    Rejection::new(RejectCode::IoError, format!("EIO: persistence flush of '{key}' failed: {error}"))
                })?;
                Ok(Some(ResponsePayload::PersistenceFlushedResponse(PersistenceFlushedResponse {
                    key,
                    committed_bytes: size,
                })))
            }
            _ => {
                let blob = match store.get(&key, limit) {
                    Ok(Some(blob)) => blob,
                    Ok(None) => {
                        return Ok(Some(ResponsePayload::PersistenceStateResponse(PersistenceStateResponse {
                            key,
                            found: false,
                            payload_size_bytes: 0,
                        })))
                    }
                    Err(StoreError::TooLarge { .. }) => return Err(over_limit("load")),
                    Err(error) => {
                        return Err(Rejection::new(
                            RejectCode::IoError,
                            format!("EIO: persistence load of '{key}' failed: {error}"),
                        ))
                    }
                };
                let size = u64::try_from(blob.len()).unwrap_or(u64::MAX);
                if size > limit {
                    return Err(over_limit("load"));
                }
                let state = crate::host::store::decode_state(&blob).map_err(|error| {
                    Rejection::new(RejectCode::IoError, format!("EIO: persisted state '{key}' is unusable: {error}"))
                })?;
                if let Some(path) = crate::host::store::file_over(&state, file_limit) {
                    return Err(file_over_limit("load", path));
                }
                vm.filesystem_mut().restore_upper(&state, now)?;
                Ok(Some(ResponsePayload::PersistenceStateResponse(PersistenceStateResponse {
                    key,
                    found: true,
                    payload_size_bytes: size,
                })))
            }
        }
    }
}
