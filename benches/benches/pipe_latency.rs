//! Small-request round-trip latency over real pipes: the `secure-exec-sidecar` binary answering
//! a request, next to `cat` echoing the same bytes (a raw pipe round trip through a child
//! process), measured in the same run and reported as a ratio.
//!
//! Run: `cargo bench -p sidecar --bench pipe_latency`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]

use schema::wire::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

fn main() {
    let request = |id: i64| {
        schema::encode_frame(
            &ProtocolFrame::RequestFrame(RequestFrame {
                schema: ProtocolSchema::current(),
                request_id: id,
                ownership: OwnershipScope::connection("conn-1"),
                payload: RequestPayload::ExtEnvelope(ExtEnvelope { namespace: "bench".into(), payload: vec![] }),
            }),
            schema::DEFAULT_MAX_FRAME_BYTES,
        )
        .unwrap()
    };
    let echo = measure(Command::new("cat"), request, |frame| frame.len());
    let sidecar = measure(Command::new(env!("CARGO_BIN_EXE_secure-exec-sidecar")), request, |_| 0);
    report("raw pipe echo (cat)", &echo);
    report("sidecar request→rejection", &sidecar);
    println!(
        "ratio sidecar/echo: p50 {:.2}x, p99 {:.2}x",
        sidecar.p50.as_secs_f64() / echo.p50.as_secs_f64(),
        sidecar.p99.as_secs_f64() / echo.p99.as_secs_f64()
    );
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
}

fn report(name: &str, p: &Percentiles) {
    println!("{name:28} p50 {:>8.1} µs   p99 {:>8.1} µs", micros(p.p50), micros(p.p99));
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Sends one frame at a time and waits for one frame back (for `cat`, the same bytes; for the
/// sidecar, the response, whose length comes from its prefix).
fn measure(mut command: Command, frame: impl Fn(i64) -> Vec<u8>, echo_len: impl Fn(&[u8]) -> usize) -> Percentiles {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut buffer = vec![0u8; 64 * 1024];
    for i in 0..WARMUP + SAMPLES {
        let bytes = frame(i64::try_from(i).unwrap() + 1);
        let start = Instant::now();
        stdin.write_all(&bytes).unwrap();
        let expected = echo_len(&bytes);
        read_one(&mut stdout, &mut buffer, expected);
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    drop(stdin);
    child.wait().unwrap();
    samples.sort_unstable();
    Percentiles { p50: samples[samples.len() / 2], p99: samples[samples.len() * 99 / 100] }
}

/// Reads `expected` bytes, or (when 0) one length-prefixed frame.
fn read_one(stdout: &mut impl Read, buffer: &mut [u8], expected: usize) {
    if expected > 0 {
        stdout.read_exact(&mut buffer[..expected]).unwrap();
        return;
    }
    stdout.read_exact(&mut buffer[..4]).unwrap();
    let len = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
    stdout.read_exact(&mut buffer[..len]).unwrap();
}
