//! Frame codec throughput: a ~260-byte control frame and a 4 KiB stdout event, each next to a
//! baseline (copying the same number of bytes) measured in the same run.
//!
//! Run: `cargo bench -p benches --bench codec`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{black_box, Bencher};
use schema::wire::*;
use schema::{decode_frame, encode_frame, encode_frame_into, DEFAULT_MAX_FRAME_BYTES};

fn main() {
    divan::main();
}

/// A GuestFilesystemCall request of ~260 bytes: a typical control frame.
fn control_frame() -> ProtocolFrame {
    ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 1234,
        ownership: OwnershipScope::vm("conn-1", "session-1", "vm-1"),
        payload: RequestPayload::GuestFilesystemCallRequest(GuestFilesystemCallRequest {
            operation: GuestFilesystemOperation::WriteFile,
            path: "/home/user/project/src/components/very/deep/directory/structure/file-name.txt".into(),
            destination_path: None,
            target: None,
            content: Some("hello world, this is the content of a small file written by the host, ".repeat(2)),
            encoding: Some(RootFilesystemEntryEncoding::Utf8),
            recursive: true,
            mode: Some(0o644),
            uid: Some(1000),
            gid: Some(1000),
            atime_ms: None,
            mtime_ms: Some(1_700_000_000_000),
            len: None,
            offset: None,
        }),
    })
}

fn stdout_event() -> ProtocolFrame {
    ProtocolFrame::EventFrame(EventFrame {
        schema: ProtocolSchema::current(),
        ownership: OwnershipScope::vm("conn-1", "session-1", "vm-1"),
        payload: EventPayload::ProcessOutputEvent(ProcessOutputEvent {
            process_id: "proc-1".into(),
            channel: StreamChannel::Stdout,
            chunk: vec![b'x'; 4096],
        }),
    })
}

#[divan::bench(args = ["control", "stdout_4k"])]
fn encode(bencher: Bencher<'_, '_>, which: &str) {
    let frame = if which == "control" { control_frame() } else { stdout_event() };
    let mut out = Vec::with_capacity(8192);
    bencher.bench_local(|| {
        out.clear();
        encode_frame_into(black_box(&frame), DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        out.len()
    });
}

#[divan::bench(args = ["control", "stdout_4k"])]
fn decode(bencher: Bencher<'_, '_>, which: &str) {
    let frame = if which == "control" { control_frame() } else { stdout_event() };
    let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
    bencher.bench_local(|| decode_frame(black_box(&bytes), DEFAULT_MAX_FRAME_BYTES).unwrap());
}

#[divan::bench(args = ["control", "stdout_4k"])]
fn round_trip(bencher: Bencher<'_, '_>, which: &str) {
    let frame = if which == "control" { control_frame() } else { stdout_event() };
    let mut out = Vec::with_capacity(8192);
    bencher.bench_local(|| {
        out.clear();
        encode_frame_into(black_box(&frame), DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        decode_frame(black_box(&out), DEFAULT_MAX_FRAME_BYTES).unwrap()
    });
}

/// Baseline: copying the encoded frame into a fresh buffer (allocation + memcpy), the floor of
/// any decoder that produces owned data.
#[divan::bench(args = ["control", "stdout_4k"])]
fn baseline_copy(bencher: Bencher<'_, '_>, which: &str) {
    let frame = if which == "control" { control_frame() } else { stdout_event() };
    let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
    bencher.bench_local(|| black_box(&bytes).to_vec());
}
