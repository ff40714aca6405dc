//! A 1-byte `pwrite` at offset 5 MiB into a 10 MiB file on a `host_dir` mount, against the same
//! write on the VM's root filesystem in the same run. Before writes were positional, each one on
//! a mount read and rewrote the whole file (two base64 round trips of 10 MiB).
//!
//! A guest (`fsops pwrite_at PATH 5242880 COUNT`) makes the writes; the time of a run with
//! `COUNT` writes minus that of a run with none, over `COUNT`, is the time of one write, so the
//! process start is not counted.
//!
//! The mount is measured twice: with its calls made within the kernel's step, and as effects
//! (`Sidecar::with_host_call_effects`: each call parks the guest, the bench performs the effect
//! at once, and the guest's call runs again answered from its memo), which is the kernel's own
//! cost of deferral, without a worker thread's hop.
//!
//! `cargo bench -p benches --bench mount_write` (release). Prints the per-write times and the
//! ratios to the root filesystem (the goal for the direct mount: at most 3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{c_fixture, response, Host};
use kernel::{Sidecar, SidecarConfig};
use runtime_wasm::{RuntimeConfig, WasmEngine};
use schema::wire::*;
use transport::hostfs::OsHostFs;

const FILE_BYTES: usize = 10 << 20;
const OFFSET: &str = "5242880";
const WRITES: usize = 2_000;
/// Runs of each kind; the fastest is kept (the least disturbed by the rest of the machine).
const RUNS: usize = 7;

fn main() {
    let scratch = std::env::temp_dir().join(format!("sidecar-mount-write-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("big"), vec![b'.'; FILE_BYTES]).unwrap();

    let (root, mounted) = measure(&scratch, false);
    let (_, deferred) = measure(&scratch, true);
    println!("1-byte pwrite at 5 MiB into a 10 MiB file ({WRITES} writes, best of {RUNS} runs):");
    println!("  root filesystem             {root:>10.3?} per write");
    println!("  host_dir mount              {mounted:>10.3?} per write");
    println!("  host_dir mount, as effects  {deferred:>10.3?} per write");
    println!("  ratio, direct               {:>10.2}x (goal: at most 3x)", mounted.as_secs_f64() / root.as_secs_f64());
    println!("  ratio, as effects           {:>10.2}x", deferred.as_secs_f64() / root.as_secs_f64());
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Per-write times on the root filesystem and on the mount of `scratch`.
fn measure(scratch: &std::path::Path, host_call_effects: bool) -> (Duration, Duration) {
    let engine = Arc::new(WasmEngine::new(RuntimeConfig::default()).unwrap());
    let mut sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(engine).with_host_fs(Arc::new(OsHostFs));
    if host_call_effects {
        sidecar = sidecar.with_host_call_effects();
    }
    let mut host = Host::with_sidecar(sidecar);
    let scope = host.create_vm(r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#);
    let mount = MountDescriptor::host_dir("/mnt", scratch.to_str().unwrap(), false);
    let configured =
        host.request(scope.clone(), RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![mount])));
    assert!(matches!(response(&configured[0]), ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    host.write_file(&scope, "/bin/fsops", &c_fixture("fsops"));
    host.write_file(&scope, "/tmp/big", &vec![b'.'; FILE_BYTES]);

    let mut run = 0;
    let mut time = |host: &mut Host, path: &str, count: usize| {
        run += 1;
        let id = format!("p{run}");
        let start = Instant::now();
        host.execute(&scope, &id, "fsops", &["pwrite_at", path, OFFSET, &count.to_string()]);
        host.run_to_exit(&id);
        start.elapsed()
    };
    let per_write = |host: &mut Host, time: &mut dyn FnMut(&mut Host, &str, usize) -> Duration, path: &str| {
        time(host, path, WRITES);
        let best = |host: &mut Host, time: &mut dyn FnMut(&mut Host, &str, usize) -> Duration, count| {
            (0..RUNS).map(|_| time(host, path, count)).min().unwrap()
        };
        let with = best(host, time, WRITES);
        let without = best(host, time, 0);
        with.saturating_sub(without) / u32::try_from(WRITES).unwrap()
    };
    let root = per_write(&mut host, &mut time, "/tmp/big");
    let mounted = per_write(&mut host, &mut time, "/mnt/big");
    (root, mounted)
}
