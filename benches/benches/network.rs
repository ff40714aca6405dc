//! The VM's network with real guests (the `net` C fixture), as protocol frames through the codec
//! into the kernel with the wasmtime engine.
//!
//! - `loopback_tcp`: 8 MiB from one guest (`net source`) to another (`net sink`) over a loopback
//!   TCP connection; its baseline in the same run, `stdout`, is one guest writing the same bytes
//!   to its standard output (`big_output`, turned into `ProcessOutput` events), so the ratio is
//!   what a socket between two guests costs against the kernel's plainest stream.
//! - `vm_fetch`: one `VmFetch` GET answered by a guest HTTP server (`net http-server`); its
//!   baseline, `stdin_echo`, is one line written to a guest `cat` and read back from its output.
//!
//! `cargo bench -p benches --bench network`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use benches::{c_fixture, response, Host};
use kernel::Now;
use schema::wire::*;

fn main() {
    divan::main();
}

const CONFIG: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"}}"#;
/// Bytes each transfer moves.
const TRANSFER_BYTES: usize = 8 << 20;

fn vm(host: &mut Host) -> OwnershipScope {
    let scope = host.create_vm(CONFIG);
    for command in ["net", "big_output", "cat"] {
        host.write_file(&scope, &format!("/bin/{command}"), &c_fixture(command));
    }
    scope
}

/// Ticks until every process in `ids` has exited.
fn run_all(host: &mut Host, ids: &[&str]) {
    let mut left: Vec<&str> = ids.to_vec();
    while !left.is_empty() {
        host.sidecar.tick(Now::default());
        for frame in host.drain() {
            if let ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(exited), .. }) =
                frame
            {
                assert_eq!(exited.exit_code, 0, "{} failed", exited.process_id);
                left.retain(|id| *id != exited.process_id);
            }
        }
    }
}

/// Ticks until some event satisfies `done`.
fn tick_until(host: &mut Host, done: impl Fn(&ProtocolFrame) -> bool) {
    loop {
        host.sidecar.tick(Now::default());
        if host.drain().iter().any(&done) {
            return;
        }
    }
}

/// Baseline: one guest writes [`TRANSFER_BYTES`] to its stdout.
#[divan::bench(sample_count = 10)]
fn stdout(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    let bytes = TRANSFER_BYTES.to_string();
    bencher.bench_local(|| {
        host.execute(&scope, "big", "big_output", &[&bytes]);
        run_all(&mut host, &["big"]);
    });
}

/// [`TRANSFER_BYTES`] from one guest to another over loopback TCP.
#[divan::bench(sample_count = 10)]
fn loopback_tcp(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    let bytes = TRANSFER_BYTES.to_string();
    bencher.bench_local(|| {
        host.execute(&scope, "sink", "net", &["sink", "9000"]);
        host.execute(&scope, "source", "net", &["source", "9000", &bytes]);
        run_all(&mut host, &["sink", "source"]);
    });
}

/// Baseline: one line through a guest `cat` (stdin in, output event back).
#[divan::bench(sample_count = 200)]
fn stdin_echo(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    host.execute(&scope, "cat", "cat", &[]);
    bencher.bench_local(|| {
        let written = host.request(
            scope.clone(),
            RequestPayload::WriteStdinRequest(WriteStdinRequest {
                process_id: "cat".into(),
                chunk: b"ping\n".to_vec(),
            }),
        );
        assert!(matches!(response(&written[0]), ResponsePayload::StdinWrittenResponse(_)));
        tick_until(&mut host, |frame| {
            matches!(frame, ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessOutputEvent(_), .. }))
        });
    });
}

/// One `VmFetch` GET answered by a guest HTTP server.
#[divan::bench(sample_count = 200)]
fn vm_fetch(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    host.execute(&scope, "web", "net", &["http-server", "3000", "1000000"]);
    tick_until(&mut host, |frame| {
        matches!(frame, ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessOutputEvent(_), .. }))
    });
    bencher.bench_local(|| {
        let request = VmFetchRequest {
            port: 3000,
            method: "GET".into(),
            path: "/hi".into(),
            headers_json: "{}".into(),
            body: None,
        };
        let frames = host.request(scope.clone(), RequestPayload::VmFetchRequest(request));
        assert!(frames.is_empty());
        tick_until(&mut host, |frame| {
            matches!(
                frame,
                ProtocolFrame::ResponseFrame(ResponseFrame { payload: ResponsePayload::VmFetchResponse(_), .. })
            )
        });
    });
}
