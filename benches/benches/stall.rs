//! The worst stall one guest can cause another: VM A hammers a `host_dir` mount (one-byte
//! `pwrite`s into a 16 MiB file, then full listings of a 4,000-entry directory) while VM B runs
//! `cat`; the host writes a line to B's stdin and ticks the kernel, as the stdio loop does, until
//! the line comes back. The same without A is the baseline of the same run.
//!
//! Before kernel work was charged to guests, fifty such writes held the sidecar for 8.1 s and two
//! hundred listings for 1.9 s (each write rewrote the whole file, and a slice ended only on the
//! guest's own instructions).
//!
//! `cargo bench -p benches --bench stall` (release). Prints p50, p99 and worst round trips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{c_fixture, response, Host};
use kernel::{Now, Sidecar, SidecarConfig};
use runtime_wasm::{RuntimeConfig, WasmEngine};
use schema::wire::*;
use transport::hostfs::OsHostFs;

/// Round trips measured per scenario.
const ROUND_TRIPS: usize = 300;
const BIG_FILE_BYTES: usize = 16 << 20;
const DIRECTORY_ENTRIES: usize = 4_000;

fn main() {
    let scratch = std::env::temp_dir().join(format!("sidecar-stall-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("many")).unwrap();
    std::fs::write(scratch.join("big"), vec![b'.'; BIG_FILE_BYTES]).unwrap();
    for n in 0..DIRECTORY_ENTRIES {
        std::fs::write(scratch.join(format!("many/entry-{n:05}")), b"").unwrap();
    }
    let baseline = measure(&scratch, None);
    let writes = measure(&scratch, Some(&["pwrites", "/mnt/big", "50"]));
    let listings = measure(&scratch, Some(&["lists", "/mnt/many", "200"]));
    println!("round trip of VM B's cat while VM A ... (p50 / p99 / worst, {ROUND_TRIPS} round trips)");
    for (name, times) in
        [("idles (baseline)", &baseline), ("pwrites 16 MiB file", &writes), ("lists 4000 entries", &listings)]
    {
        println!(
            "  {name:<22} {:>9.3?} / {:>9.3?} / {:>9.3?}   worst {:.1}x baseline p50",
            percentile(times, 50),
            percentile(times, 99),
            percentile(times, 100),
            percentile(times, 100).as_secs_f64() / percentile(&baseline, 50).as_secs_f64(),
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Round trips of a line through VM B's `cat`, while VM A runs `fsops hammer` again and again.
fn measure(scratch: &std::path::Path, hammer: Option<&[&str]>) -> Vec<Duration> {
    let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
    let sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(engine).with_host_fs(Arc::new(OsHostFs));
    let mut host = Host::with_sidecar(sidecar);
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;
    let a = host.create_vm(config);
    let mount = MountDescriptor::host_dir("/mnt", scratch.to_str().unwrap(), false);
    let configured =
        host.request(a.clone(), RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![mount])));
    assert!(matches!(response(&configured[0]), ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    host.write_file(&a, "/bin/fsops", &c_fixture("fsops"));
    let b = host.create_vm(config);
    host.write_file(&b, "/bin/cat", &c_fixture("cat"));
    host.execute(&b, "cat", "cat", &[]);
    let mut hammers = 0;
    if let Some(args) = hammer {
        host.execute(&a, "hammer-0", "fsops", args);
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        let written = host.request(
            b.clone(),
            RequestPayload::WriteStdinRequest(WriteStdinRequest {
                process_id: "cat".into(),
                chunk: b"ping\n".to_vec(),
            }),
        );
        assert!(matches!(response(&written[0]), ResponsePayload::StdinWrittenResponse(_)), "{written:?}");
        'answer: loop {
            host.sidecar.tick(Now::default());
            for frame in host.drain() {
                let ProtocolFrame::EventFrame(event) = frame else { continue };
                match event.payload {
                    EventPayload::ProcessOutputEvent(output) if output.process_id == "cat" => {
                        times.push(start.elapsed());
                        break 'answer;
                    }
                    EventPayload::ProcessExitedEvent(exited) if exited.process_id.starts_with("hammer") => {
                        // Keep A hammering for the whole measurement.
                        hammers += 1;
                        host.execute(&a, &format!("hammer-{hammers}"), "fsops", hammer.unwrap_or_default());
                    }
                    _ => {}
                }
            }
        }
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * p) / 100;
    sorted[index]
}
