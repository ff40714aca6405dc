//! Guests' host directory calls as effects (`Sidecar::with_host_call_effects`): a guest reading a
//! host file parks on each call until the driver completes it, and the kernel serves every other
//! VM meanwhile; a completion whose VM has gone is dropped.

use std::sync::Arc;

use kernel::host::effect::{Effect, EffectSummary};
use kernel::host::journal::PortCall;
use kernel::Sidecar;
use schema::wire::*;
use testkit::requests::{configure_mounts, execute, mount};
use testkit::script::{module, ScriptEngine};

use crate::fakes::FakeHostFs;
use crate::filesystem::write;
use crate::harness::{response_payload, Harness};

const CONFIG: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;

/// A kernel whose guests' host calls are effects, with two VMs: the first mounts the fake's
/// `/srv/h` (holding `f.txt`) at `/host`. Both have the `hostcat` and `exit` scripts.
fn two_vms() -> (Harness, OwnershipScope, OwnershipScope) {
    let fake = FakeHostFs::with_dir("/srv/h", &[("f.txt", "hello from the host")]);
    let sidecar = Sidecar::new(Default::default())
        .with_host_fs(Arc::new(fake))
        .with_guest_engine(Arc::new(ScriptEngine::new()))
        .with_host_call_effects();
    let mut host = Harness::with_sidecar(sidecar);
    let mut scopes = Vec::new();
    for _ in 0..2 {
        let (conn, session, vm) = host.vm(CONFIG);
        let scope = OwnershipScope::vm(&conn, &session, &vm);
        for script in ["hostcat", "exit"] {
            let content = String::from_utf8(module(script)).unwrap();
            let request = RequestPayload::GuestFilesystemCallRequest(write(&format!("/bin/{script}"), &content));
            host.request(scope.clone(), request);
        }
        scopes.push(scope);
    }
    host.drain();
    let b = scopes.pop().unwrap();
    let a = scopes.pop().unwrap();
    let mounted =
        host.request(a.clone(), configure_mounts(vec![mount("/host", "host_dir", r#"{"hostPath":"/srv/h"}"#, false)]));
    assert!(matches!(response_payload(&mounted[0]), ResponsePayload::VmConfiguredResponse(_)), "{mounted:?}");
    (host, a, b)
}

fn started(host: &mut Harness, scope: &OwnershipScope, id: &str, command: &str, args: &[&str]) {
    let frames = host.request(scope.clone(), execute(id, command, args.iter().copied()));
    assert!(matches!(response_payload(&frames[0]), ResponsePayload::ProcessStartedResponse(_)), "{frames:?}");
}

/// Output and exit events in `frames`, by process id.
fn events(frames: &[ProtocolFrame], output: &mut Vec<u8>, exits: &mut Vec<(String, i32)>) {
    for frame in frames {
        if let ProtocolFrame::EventFrame(event) = frame {
            match &event.payload {
                EventPayload::ProcessOutputEvent(out) => output.extend_from_slice(&out.chunk),
                EventPayload::ProcessExitedEvent(exited) => exits.push((exited.process_id.clone(), exited.exit_code)),
                _ => {}
            }
        }
    }
}

#[test]
fn a_guest_waits_for_each_host_call_while_other_vms_go_on() {
    let (mut host, a, b) = two_vms();
    started(&mut host, &a, "reader", "hostcat", &["/host/f.txt"]);
    let (mut output, mut exits) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let frames = host.advance(0);
        events(&frames, &mut output, &mut exits);
    }
    // The reader waits on its first host call, which nobody has performed.
    let (first_id, first) = host.sidecar.poll_effect().expect("a host call is asked for");
    assert!(matches!(first.summary(), EffectSummary::HostCall { call: PortCall::Lstat { .. } }), "{first:?}");
    assert_eq!(host.sidecar.pending_effects(), 1);
    assert_eq!(host.sidecar.runnable_processes(), 0, "it is parked, not spinning");
    // Meanwhile the other VM runs a process start to finish.
    started(&mut host, &b, "other", "exit", &["7"]);
    for _ in 0..3 {
        let frames = host.advance(0);
        events(&frames, &mut output, &mut exits);
    }
    assert_eq!(exits, [("other".to_owned(), 7)]);
    // Each completion lets the reader get one call further.
    let mut effect = Some((first_id, first));
    let mut performed = 0;
    while let Some((id, asked)) = effect {
        assert!(matches!(asked, Effect::HostCall { .. }), "{asked:?}");
        let now = host.now;
        host.sidecar.handle_completion(id, asked.perform_host_call(), now);
        performed += 1;
        for _ in 0..2 {
            let frames = host.advance(0);
            events(&frames, &mut output, &mut exits);
        }
        effect = host.sidecar.poll_effect();
        assert!(performed < 50, "the reader makes a bounded number of host calls");
    }
    assert_eq!(exits.last(), Some(&("reader".to_owned(), 0)));
    assert_eq!(String::from_utf8(output).unwrap(), "hello from the host");
    assert!(performed >= 3, "a walk, an open and reads: {performed}");
    assert_eq!(host.sidecar.pending_effects(), 0);
}

#[test]
fn a_host_call_completed_after_its_vm_went_away_is_dropped() {
    let (mut host, a, _) = two_vms();
    started(&mut host, &a, "reader", "hostcat", &["/host/f.txt"]);
    host.advance(0);
    host.advance(0);
    let (id, asked) = host.sidecar.poll_effect().expect("a host call is asked for");
    host.request(a.clone(), RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }));
    host.drain();
    let now = host.now;
    host.sidecar.handle_completion(id, asked.perform_host_call(), now);
    host.advance(0);
    assert_eq!(host.sidecar.pending_effects(), 0);
    assert!(host.sidecar.poll_effect().is_none(), "nothing more is asked for");
}

/// Completes every effect asked for, in order, until none is left; how many there were.
fn complete_all(host: &mut Harness) -> usize {
    let mut performed = 0;
    while let Some((id, asked)) = host.sidecar.poll_effect() {
        let now = host.now;
        host.sidecar.handle_completion(id, asked.perform_host_call(), now);
        performed += 1;
        assert!(performed < 10_000, "a bounded number of host calls");
    }
    performed
}

fn response_ids(frames: &[ProtocolFrame]) -> Vec<i64> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ProtocolFrame::ResponseFrame(response) => Some(response.request_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_host_request_on_a_host_directory_is_answered_when_its_calls_complete_and_in_order() {
    let (mut host, a, b) = two_vms();
    let read = RequestPayload::GuestFilesystemCallRequest(GuestFilesystemCallRequest::new(
        GuestFilesystemOperation::ReadFile,
        "/host/f.txt",
    ));
    let first = host.next_id();
    assert!(host.request_with_id(first, a.clone(), read.clone()).is_empty(), "it waits for its host calls");
    let written = RequestPayload::GuestFilesystemCallRequest(write("/host/f.txt", "replaced"));
    let second = host.next_id();
    assert!(host.request_with_id(second, a.clone(), written).is_empty(), "queued behind the first");
    let third = host.next_id();
    assert!(host.request_with_id(third, a.clone(), read).is_empty());
    assert_eq!(host.sidecar.parked_host_requests(), 3);
    // Another VM, and a request of this VM that is not about its files, are answered at once.
    let other = host.request(b.clone(), RequestPayload::GuestFilesystemCallRequest(write("/tmp/x", "y")));
    assert!(matches!(response_payload(&other[0]), ResponsePayload::GuestFilesystemResultResponse(_)));
    assert_eq!(host.sidecar.pending_effects(), 1, "one host call at a time for the VM");

    let performed = complete_all(&mut host);
    let frames = host.drain();
    assert_eq!(response_ids(&frames), [first, second, third], "answered in the order sent");
    let contents: Vec<Option<String>> = frames
        .iter()
        .map(|frame| match response_payload(frame) {
            ResponsePayload::GuestFilesystemResultResponse(result) => result.content.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(contents, [Some("hello from the host".to_owned()), None, Some("replaced".to_owned())]);
    assert!(performed >= 3, "{performed}");
    assert_eq!(host.sidecar.parked_host_requests(), 0);
}

#[test]
fn the_requests_one_vm_may_queue_behind_a_host_call_are_bounded() {
    use kernel::dispatch::MAX_QUEUED_HOST_REQUESTS_PER_VM;
    let (mut host, a, _) = two_vms();
    let stat = RequestPayload::GuestFilesystemCallRequest(GuestFilesystemCallRequest::new(
        GuestFilesystemOperation::Stat,
        "/host/f.txt",
    ));
    for _ in 0..=MAX_QUEUED_HOST_REQUESTS_PER_VM {
        assert!(host.request(a.clone(), stat.clone()).is_empty());
    }
    let refused = host.request(a.clone(), stat);
    let (code, message) = crate::harness::rejection(&refused[0]);
    assert_eq!(code, "limit_exceeded");
    assert!(message.starts_with("EAGAIN: 256 filesystem requests already wait"), "{message}");
    complete_all(&mut host);
    assert_eq!(response_ids(&host.drain()).len(), MAX_QUEUED_HOST_REQUESTS_PER_VM + 1);
}
