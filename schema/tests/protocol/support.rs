//! Builders of valid frames from arbitrary bytes, shared by the property tests.

use arbitrary::{Arbitrary, Unstructured};
use schema::validate::{event_requirement, request_requirement, response_requirement, OwnershipRequirement};
use schema::wire::*;

/// An arbitrary frame (any variant, any payload), made valid: current schema, request ids with
/// the right sign, non-empty ownership fields of the kind the payload requires.
pub fn valid_frame(bytes: &[u8]) -> ProtocolFrame {
    let mut frame =
        ProtocolFrame::arbitrary(&mut Unstructured::new(bytes)).expect("arbitrary never fails on short input");
    make_valid(&mut frame);
    frame
}

pub fn make_valid(frame: &mut ProtocolFrame) {
    match frame {
        ProtocolFrame::RequestFrame(f) => {
            f.schema = ProtocolSchema::current();
            f.request_id = host_id(f.request_id);
            f.ownership = scope_for(request_requirement(&f.payload), &f.ownership);
            if let RequestPayload::AuthenticateRequest(a) = &mut f.payload {
                if a.auth_token.is_empty() {
                    a.auth_token.push('t');
                }
            }
        }
        ProtocolFrame::ResponseFrame(f) => {
            f.schema = ProtocolSchema::current();
            f.request_id = host_id(f.request_id);
            f.ownership = scope_for(response_requirement(&f.payload), &f.ownership);
        }
        ProtocolFrame::EventFrame(f) => {
            f.schema = ProtocolSchema::current();
            f.ownership = scope_for(event_requirement(&f.payload), &f.ownership);
        }
        ProtocolFrame::SidecarRequestFrame(f) => {
            f.schema = ProtocolSchema::current();
            f.request_id = -host_id(f.request_id);
            f.ownership = scope_for(OwnershipRequirement::Vm, &f.ownership);
        }
        ProtocolFrame::SidecarResponseFrame(f) => {
            f.schema = ProtocolSchema::current();
            f.request_id = -host_id(f.request_id);
            f.ownership = scope_for(OwnershipRequirement::Vm, &f.ownership);
        }
    }
}

fn host_id(id: i64) -> i64 {
    (id.unsigned_abs() % (i64::MAX as u64)) as i64 + 1
}

fn non_empty(value: &str, fallback: &str) -> String {
    if value.is_empty() {
        fallback.to_owned()
    } else {
        value.to_owned()
    }
}

/// Keeps the arbitrary ids but reshapes the scope into the required kind.
fn scope_for(required: OwnershipRequirement, scope: &OwnershipScope) -> OwnershipScope {
    let connection = non_empty(scope.connection_id(), "conn-1");
    let session = non_empty(scope.session_id().unwrap_or_default(), "session-1");
    let vm = non_empty(scope.vm_id().unwrap_or_default(), "vm-1");
    let keep_kind = required.is_satisfied_by(scope);
    match (required, OwnershipRequirement::of(scope)) {
        (OwnershipRequirement::Connection, _) => OwnershipScope::connection(connection),
        (OwnershipRequirement::Session, _) => OwnershipScope::session(connection, session),
        (OwnershipRequirement::Vm, _) => OwnershipScope::vm(connection, session, vm),
        (_, OwnershipRequirement::Connection) if !keep_kind => OwnershipScope::session(connection, session),
        (_, OwnershipRequirement::Connection) => OwnershipScope::connection(connection),
        (_, OwnershipRequirement::Session) => OwnershipScope::session(connection, session),
        (_, _) => OwnershipScope::vm(connection, session, vm),
    }
}

/// Deterministic pseudo-random bytes (splitmix64), so coverage tests need no RNG crate.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}
