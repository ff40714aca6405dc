//! What the benchmarks in `benches/` share: a host that speaks protocol frames, through the
//! codec, to an in-process kernel with the wasmtime engine.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;

use base64::Engine as _;
use kernel::{Now, Sidecar, SidecarConfig, StreamId};
use runtime_wasm::{RuntimeConfig, WasmEngine};
use schema::wire::*;
use schema::{decode_frame, encode_frame};

/// A C fixture of `runtime-wasm` (see `runtime-wasm/fixtures/c/README.md`).
pub fn c_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../runtime-wasm/fixtures/c/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// An authenticated host with one session open.
#[derive(Debug)]
pub struct Host {
    pub sidecar: Sidecar,
    stream: StreamId,
    next_id: i64,
    conn: String,
    session: String,
}

impl Host {
    /// A kernel with the wasmtime engine.
    pub fn new() -> Host {
        let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
        Host::with_sidecar(Sidecar::new(SidecarConfig::default()).with_guest_engine(engine))
    }

    pub fn with_sidecar(mut sidecar: Sidecar) -> Host {
        let stream = sidecar.open_stream().unwrap();
        let mut host = Host { sidecar, stream, next_id: 0, conn: String::new(), session: String::new() };
        let auth = host.request(OwnershipScope::connection("bench"), testkit::requests::authenticate("token"));
        let ResponsePayload::AuthenticatedResponse(auth) = response(&auth[0]) else { panic!("{auth:?}") };
        host.conn = auth.connection_id.clone();
        host.open_session();
        host
    }

    /// Opens another session on the same connection and makes it the one new VMs go to (a
    /// session holds at most `MAX_VMS_PER_SESSION` VMs).
    pub fn open_session(&mut self) {
        let opened = self.request(OwnershipScope::connection(self.conn.clone()), testkit::requests::open_session());
        let ResponsePayload::SessionOpenedResponse(opened) = response(&opened[0]) else { panic!("{opened:?}") };
        self.session = opened.session_id.clone();
    }

    /// One request through the codec; the frames it produced, decoded.
    pub fn request(&mut self, ownership: OwnershipScope, payload: RequestPayload) -> Vec<ProtocolFrame> {
        self.next_id += 1;
        let frame = ProtocolFrame::RequestFrame(RequestFrame {
            schema: ProtocolSchema::current(),
            request_id: self.next_id,
            ownership,
            payload,
        });
        let bytes = encode_frame(&frame, usize::MAX).unwrap();
        self.sidecar.handle_bytes(self.stream, &bytes, Now::default());
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<ProtocolFrame> {
        let mut frames = Vec::new();
        while let Some(output) = self.sidecar.poll_output() {
            frames.push(decode_frame(&output.bytes, usize::MAX).unwrap());
        }
        frames
    }

    /// A new VM with `config`; its scope.
    pub fn create_vm(&mut self, config: &str) -> OwnershipScope {
        let created = self.request(
            OwnershipScope::session(self.conn.clone(), self.session.clone()),
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::WebAssembly,
                config: config.into(),
            }),
        );
        let ResponsePayload::VmCreatedResponse(created) = response(&created[0]) else { panic!("{created:?}") };
        OwnershipScope::vm(self.conn.clone(), self.session.clone(), created.vm_id.clone())
    }

    /// Writes `bytes` at `path` of the VM.
    pub fn write_file(&mut self, scope: &OwnershipScope, path: &str, bytes: &[u8]) {
        let write = GuestFilesystemCallRequest {
            content: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, path)
        };
        let written = self.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write));
        assert!(matches!(response(&written[0]), ResponsePayload::GuestFilesystemResultResponse(_)), "{written:?}");
    }

    /// Starts `command` with `args` as `process_id`.
    pub fn execute(&mut self, scope: &OwnershipScope, process_id: &str, command: &str, args: &[&str]) {
        let started = self.request(
            scope.clone(),
            RequestPayload::ExecuteRequest(ExecuteRequest::command(process_id, command, args.iter().copied())),
        );
        assert!(matches!(response(&started[0]), ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
    }

    /// Ticks until `process_id` exits.
    pub fn run_to_exit(&mut self, process_id: &str) {
        loop {
            self.sidecar.tick(Now::default());
            // Host directory calls asked as effects are performed at once (the binary performs
            // them on its worker threads); the benches' kernels ask for no other kind.
            while let Some((id, effect)) = self.sidecar.poll_effect() {
                self.sidecar.handle_completion(id, effect.perform_host_call(), Now::default());
            }
            let exited = self.drain().into_iter().any(|frame| {
                matches!(
                    frame,
                    ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(exited), .. })
                        if exited.process_id == process_id
                )
            });
            if exited {
                return;
            }
        }
    }

    pub fn dispose(&mut self, scope: OwnershipScope) {
        let disposed = self
            .request(scope, RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }));
        assert!(matches!(response(&disposed[0]), ResponsePayload::VmDisposedResponse(_)), "{disposed:?}");
    }
}

impl Default for Host {
    fn default() -> Host {
        Host::new()
    }
}

/// The payload of a response frame.
pub fn response(frame: &ProtocolFrame) -> &ResponsePayload {
    match frame {
        ProtocolFrame::ResponseFrame(response) => &response.payload,
        other => panic!("expected a response, got {other:?}"),
    }
}
