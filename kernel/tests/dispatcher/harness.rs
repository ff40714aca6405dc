//! A host talking to a kernel through frames, with a manual clock.

use std::sync::Arc;

use kernel::host::store::Store;
use kernel::{Now, Sidecar, SidecarConfig, StreamId};
use schema::wire::*;
use schema::{decode_frame, encode_frame};
use testkit::requests::{authenticate, create_vm, open_session, request_frame};

pub struct Harness {
    pub sidecar: Sidecar,
    pub stream: StreamId,
    pub now: Now,
    next_id: i64,
    /// Performs the kernel's store effects, at once (as the stdio driver does).
    store: Option<Arc<dyn Store>>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(SidecarConfig::default())
    }

    pub fn with_config(config: SidecarConfig) -> Self {
        Self::with_sidecar(Sidecar::new(config))
    }

    /// A host of an already built sidecar (with a host filesystem or a store injected).
    pub fn with_sidecar(mut sidecar: Sidecar) -> Self {
        let stream = sidecar.open_stream().unwrap();
        Self { sidecar, stream, now: Now::from_millis(1_000, 1_700_000_000_000), next_id: 0, store: None }
    }

    /// A host whose sidecar has a store: its effects are performed on `store` before every drain.
    pub fn with_store(sidecar: Sidecar, store: Arc<dyn Store>) -> Self {
        Self { store: Some(store), ..Self::with_sidecar(sidecar.with_store_effects()) }
    }

    /// Performs every effect the kernel asked for, feeding back each completion (a host without
    /// a store leaves them to the test).
    pub fn perform_effects(&mut self) {
        let Some(store) = self.store.clone() else { return };
        while let Some((id, effect)) = self.sidecar.poll_effect() {
            let completion = effect.perform(store.as_ref());
            self.sidecar.handle_completion(id, completion, self.now);
        }
    }

    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a request with the next id; returns every frame the kernel produced.
    pub fn request(&mut self, ownership: OwnershipScope, payload: RequestPayload) -> Vec<ProtocolFrame> {
        let id = self.next_id();
        self.request_with_id(id, ownership, payload)
    }

    pub fn request_with_id(
        &mut self,
        id: i64,
        ownership: OwnershipScope,
        payload: RequestPayload,
    ) -> Vec<ProtocolFrame> {
        self.send_frame(request_frame(id, ownership, payload))
    }

    pub fn send_frame(&mut self, frame: ProtocolFrame) -> Vec<ProtocolFrame> {
        self.sidecar.handle_frame(self.stream, frame, self.now);
        self.drain()
    }

    /// Sends raw bytes (bypassing the encoder's validation).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Vec<ProtocolFrame> {
        self.sidecar.handle_bytes(self.stream, bytes, self.now);
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<ProtocolFrame> {
        self.drain_bytes().iter().map(|bytes| decode_frame(bytes, usize::MAX).unwrap()).collect()
    }

    pub fn drain_bytes(&mut self) -> Vec<Vec<u8>> {
        self.perform_effects();
        let mut out = Vec::new();
        while let Some(output) = self.sidecar.poll_output() {
            assert_eq!(output.stream, self.stream);
            out.push(output.bytes);
        }
        out
    }

    pub fn advance(&mut self, ms: u64) -> Vec<ProtocolFrame> {
        self.now.monotonic_ms += ms;
        self.now.wall_ms += ms;
        self.sidecar.tick(self.now);
        self.sidecar.assert_schedule_current();
        self.drain()
    }

    /// Authenticate → OpenSession → CreateVm with `config`; returns (conn, session, vm).
    pub fn vm(&mut self, config: &str) -> (String, String, String) {
        let conn = self.authenticate();
        let session = self.open_session(&conn);
        let frames = self.request(OwnershipScope::session(&conn, &session), create_vm(config));
        let vm = match response_payload(&frames[0]) {
            ResponsePayload::VmCreatedResponse(created) => created.vm_id.clone(),
            other => panic!("create failed: {other:?}"),
        };
        (conn, session, vm)
    }

    pub fn authenticate(&mut self) -> String {
        let frames = self.request(OwnershipScope::connection("client-hint"), authenticate("token"));
        match response_payload(&frames[0]) {
            ResponsePayload::AuthenticatedResponse(response) => response.connection_id.clone(),
            other => panic!("authenticate failed: {other:?}"),
        }
    }

    pub fn open_session(&mut self, conn: &str) -> String {
        let frames = self.request(OwnershipScope::connection(conn), open_session());
        match response_payload(&frames[0]) {
            ResponsePayload::SessionOpenedResponse(response) => response.session_id.clone(),
            other => panic!("open session failed: {other:?}"),
        }
    }
}

pub fn response_payload(frame: &ProtocolFrame) -> &ResponsePayload {
    match frame {
        ProtocolFrame::ResponseFrame(response) => &response.payload,
        other => panic!("expected a response, got {other:?}"),
    }
}

pub fn rejection(frame: &ProtocolFrame) -> (String, String) {
    match response_payload(frame) {
        ResponsePayload::RejectedResponse(rejected) => (rejected.code.clone(), rejected.message.clone()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub fn lifecycle(frame: &ProtocolFrame) -> (String, VmLifecycleState) {
    match frame {
        ProtocolFrame::EventFrame(EventFrame { ownership, payload: EventPayload::VmLifecycleEvent(event), .. }) => {
            (ownership.vm_id().unwrap().to_owned(), event.state)
        }
        other => panic!("expected a lifecycle event, got {other:?}"),
    }
}

#[allow(dead_code)]
pub fn encode(frame: &ProtocolFrame) -> Vec<u8> {
    encode_frame(frame, usize::MAX).unwrap()
}
