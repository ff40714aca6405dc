//! Trace files: `replay` reads files a user hands it, so a hostile trace must never panic, hang
//! or allocate what it merely claims; and any run the driver records must replay exactly.
//!
//! Input layout: byte 0 picks the mode; the rest is either a byte stream fed to a recorded
//! sidecar (mode even) or a trace body after a valid header (mode odd).
//!
//! Oracles:
//! - recording: the driver records a run of the stream (split into frame-sized pieces, then end
//!   of input); replaying that trace matches every frame and effect;
//! - hostile: a valid header followed by arbitrary records replays to a match, a divergence or
//!   an error, never a panic; and so does the same data without the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::{Arc, Mutex};
use transport::trace::{replay, TraceReader, TraceWriter};
use transport::{Driver, Input, Ports};

/// A trace written to memory.
#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records a run of `stream` and returns the trace.
fn record(stream: &[u8]) -> Vec<u8> {
    let sink = Shared::default();
    let writer = TraceWriter::new(Box::new(sink.clone()));
    let config = kernel::SidecarConfig { max_frame_bytes: 4096, entropy_seed: 7, ..Default::default() };
    let mut driver = Driver::start(config, Ports::default(), Some(writer)).unwrap();
    let now = kernel::Now::default();
    let stream_id = driver.open_stream(now).unwrap().unwrap();
    for (index, piece) in stream.chunks(97).enumerate() {
        let now = kernel::Now { monotonic_ms: index as u64 * 10, wall_ms: 1_700_000_000_000 };
        driver.apply(&Input::Bytes(stream_id, piece.to_vec()), now).unwrap();
        driver.apply(&Input::Tick, now).unwrap();
    }
    driver.apply(&Input::Eof(stream_id), now).unwrap();
    drop(driver);
    let bytes = sink.0.lock().unwrap().clone();
    bytes
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let trace = record(rest);
        let reader = TraceReader::new(trace.as_slice()).expect("a recorded header reads back");
        match replay(reader) {
            Ok(Ok(_)) => {}
            Ok(Err(divergence)) => panic!("a recorded run diverged: {}", divergence.describe()),
            Err(error) => panic!("a recorded trace failed to replay: {error}"),
        }
    } else {
        let mut trace = record(&[]);
        // Keep the header only: its length is fixed for this config (no token, default id).
        let header_len = 8 + 2 + 8 + 4 + 1 + 4 + 4 + kernel::SidecarConfig::default().sidecar_id.len() + 8 + 1 + 1 + 8;
        trace.truncate(header_len);
        trace.extend_from_slice(rest);
        if let Ok(reader) = TraceReader::new(trace.as_slice()) {
            let _ = replay(reader);
        }
        if let Ok(reader) = TraceReader::new(rest) {
            let _ = replay(reader);
        }
    }
});
