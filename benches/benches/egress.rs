//! Connect-to-first-byte through egress: a guest in the real `secure-exec-sidecar` binary
//! fetching a tiny HTTP response from a server this bench starts on 127.0.0.1 (an exempt
//! loopback port), next to the bench itself connecting to the same server directly, in the
//! same run.
//!
//! The guest's number is the time from `Execute` to the process's exit for `net fetch`, less
//! the same for a fetch the policy refuses at once (so process start and exit cancel out): what
//! is left is the guest's connect, request and response through the kernel's effects and the
//! driver's sockets.
//!
//! Run: `cargo bench -p sidecar --bench egress`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]

use base64::Engine as _;
use client::Client;
use schema::wire::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const WARMUP: usize = 10;
const SAMPLES: usize = 200;
const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(RESPONSE);
        }
    });
    let refused = TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_port = refused.local_addr().unwrap().port();

    let direct = percentiles((0..WARMUP + SAMPLES).map(|_| direct_first_byte(port)).skip(WARMUP).collect());

    let binary = env!("CARGO_BIN_EXE_secure-exec-sidecar");
    let mut sidecar = Client::spawn(std::path::Path::new(binary), &[]).unwrap();
    let auth = sidecar.authenticate("bench", "token").unwrap();
    let conn = auth.connection_id;
    let session = sidecar.open_session(&conn).unwrap();
    let config = format!(
        r#"{{"permissions":{{"fs":"allow","childProcess":"allow","network":"allow"}},"loopbackExemptPorts":[{port}]}}"#
    );
    let vm = sidecar.create_vm(&conn, &session, &config).unwrap();
    let scope = OwnershipScope::vm(conn, session, vm);
    let net = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime-wasm/fixtures/c/net.wasm")).unwrap();
    let write = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(net)),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/bin/net")
    };
    sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write)).unwrap();

    let mut fetched = Vec::new();
    let mut denied = Vec::new();
    for i in 0..WARMUP + SAMPLES {
        let fetch = run_guest(&mut sidecar, &scope, &format!("127.0.0.1:{port}"));
        let deny = run_guest(&mut sidecar, &scope, &format!("127.0.0.1:{refused_port}"));
        if i >= WARMUP {
            fetched.push(fetch);
            denied.push(deny);
        }
    }
    let fetched = percentiles(fetched);
    let denied = percentiles(denied);
    let through = fetched.0.saturating_sub(denied.0);
    println!("direct connect→first byte       p50 {:>8.1} µs   p99 {:>8.1} µs", micros(direct.0), micros(direct.1));
    println!("guest fetch (Execute→exit)      p50 {:>8.1} µs   p99 {:>8.1} µs", micros(fetched.0), micros(fetched.1));
    println!("guest refused (Execute→exit)    p50 {:>8.1} µs   p99 {:>8.1} µs", micros(denied.0), micros(denied.1));
    println!(
        "egress connect→response (p50 difference) {:.1} µs: {:.1}x the direct connection",
        micros(through),
        through.as_secs_f64() / direct.0.as_secs_f64()
    );
    drop(refused);
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn direct_first_byte(port: u16) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).unwrap();
    start.elapsed()
}

/// Runs `net fetch TARGET /` to its exit; the time from the request to the exit event.
fn run_guest(sidecar: &mut Client, scope: &OwnershipScope, target: &str) -> Duration {
    let start = Instant::now();
    let execute = ExecuteRequest::command("p", "net", ["fetch", target, "/"]);
    sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
    loop {
        if let EventPayload::ProcessExitedEvent(event) = sidecar.next_event(Duration::from_secs(20)).unwrap().payload {
            assert_eq!(event.exit_code, 0);
            return start.elapsed();
        }
    }
}
