//! Create a VM, execute a tiny WebAssembly program (`hello`, C, 4 KiB) to its exit, dispose the
//! VM — all as protocol frames through the codec into the kernel with the wasmtime engine.
//!
//! The baseline in the same run is the same conversation without the execution (create, write
//! the command file, dispose), so the ratio shows what executing costs. The module is compiled
//! once (the engine caches by content); every iteration instantiates it afresh in a new VM.
//!
//! `cargo bench -p benches --bench exec`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;

use base64::Engine as _;
use kernel::{Now, Sidecar, SidecarConfig, StreamId};
use runtime_wasm::{RuntimeConfig, WasmEngine};
use schema::wire::*;
use schema::{decode_frame, encode_frame};

fn main() {
    divan::main();
}

const CONFIG: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;

struct Host {
    sidecar: Sidecar,
    stream: StreamId,
    next_id: i64,
    conn: String,
    session: String,
    hello: String,
}

impl Host {
    fn new() -> Host {
        let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
        let mut sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(engine);
        let stream = sidecar.open_stream().unwrap();
        let path = format!("{}/../runtime-wasm/fixtures/c/hello.wasm", env!("CARGO_MANIFEST_DIR"));
        let hello = base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap());
        let mut host = Host { sidecar, stream, next_id: 0, conn: String::new(), session: String::new(), hello };
        let auth = host.request(
            OwnershipScope::connection("bench"),
            RequestPayload::AuthenticateRequest(AuthenticateRequest {
                client_name: "bench".into(),
                auth_token: "token".into(),
                protocol_version: 7,
                bridge_version: 1,
            }),
        );
        let ResponsePayload::AuthenticatedResponse(auth) = response(&auth[0]) else { panic!() };
        host.conn = auth.connection_id.clone();
        let opened = host.request(
            OwnershipScope::connection(host.conn.clone()),
            RequestPayload::OpenSessionRequest(OpenSessionRequest {
                placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
                metadata: Default::default(),
            }),
        );
        let ResponsePayload::SessionOpenedResponse(opened) = response(&opened[0]) else { panic!() };
        host.session = opened.session_id.clone();
        host
    }

    fn request(&mut self, ownership: OwnershipScope, payload: RequestPayload) -> Vec<ProtocolFrame> {
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

    fn drain(&mut self) -> Vec<ProtocolFrame> {
        let mut frames = Vec::new();
        while let Some(output) = self.sidecar.poll_output() {
            frames.push(decode_frame(&output.bytes, usize::MAX).unwrap());
        }
        frames
    }

    /// Create a VM and put `/bin/hello` in it; returns the VM's scope.
    fn create(&mut self) -> OwnershipScope {
        let created = self.request(
            OwnershipScope::session(self.conn.clone(), self.session.clone()),
            RequestPayload::CreateVmRequest(CreateVmRequest {
                runtime: GuestRuntimeKind::WebAssembly,
                config: CONFIG.into(),
            }),
        );
        let ResponsePayload::VmCreatedResponse(created) = response(&created[0]) else { panic!() };
        let scope = OwnershipScope::vm(self.conn.clone(), self.session.clone(), created.vm_id.clone());
        let write = GuestFilesystemCallRequest {
            content: Some(self.hello.clone()),
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/bin/hello")
        };
        self.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write));
        scope
    }

    fn execute(&mut self, scope: &OwnershipScope) {
        let started = self.request(
            scope.clone(),
            RequestPayload::ExecuteRequest(ExecuteRequest::command("p", "hello", Vec::<String>::new())),
        );
        assert!(matches!(response(&started[0]), ResponsePayload::ProcessStartedResponse(_)));
        loop {
            self.sidecar.tick(Now::default());
            let exited = self.drain().into_iter().any(|frame| {
                matches!(
                    frame,
                    ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(_), .. })
                )
            });
            if exited {
                return;
            }
        }
    }

    fn dispose(&mut self, scope: OwnershipScope) {
        let disposed = self
            .request(scope, RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }));
        assert!(matches!(response(&disposed[0]), ResponsePayload::VmDisposedResponse(_)));
    }
}

fn response(frame: &ProtocolFrame) -> &ResponsePayload {
    match frame {
        ProtocolFrame::ResponseFrame(response) => &response.payload,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Baseline: create a VM, write the command, dispose.
#[divan::bench(sample_count = 200)]
fn create_dispose(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    bencher.bench_local(|| {
        let scope = host.create();
        host.dispose(scope);
    });
}

/// Create a VM, write the command, execute it to its exit, dispose.
#[divan::bench(sample_count = 200)]
fn create_exec_dispose(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    // Warm the engine's module cache, as a long-running sidecar would be.
    let scope = host.create();
    host.execute(&scope);
    host.dispose(scope);
    bencher.bench_local(|| {
        let scope = host.create();
        host.execute(&scope);
        host.dispose(scope);
    });
}
