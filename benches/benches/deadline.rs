//! The scheduler's questions on a large sidecar: 1,000 VMs of 64 processes each, every
//! process parked reading its stdin (the scripted `cat`). `next_deadline` is what the stdio loop
//! asks on every iteration, and `tick` what runs when a timer fires; neither has anything to do
//! here, so both should cost next to nothing whatever the number of idle processes. `busy_tick`
//! adds one process per VM that never stops running: a tick then runs its 16 slices, and the
//! scheduler's own cost should grow with what runs, not with every parked process.
//!
//! The baseline in the same run is the same questions on a sidecar of one such VM, so the
//! ratios show how the cost grows with the number of VMs (ideally about 1×).
//!
//! `cargo bench -p benches --bench deadline`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;

use benches::Host;
use kernel::clock::Now;
use kernel::dispatch::MAX_VMS_PER_SESSION;
use kernel::{Sidecar, SidecarConfig};
use testkit::script::{module, ScriptEngine};

fn main() {
    divan::main();
}

const PROCESSES_PER_VM: usize = 64;
const CONFIG: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;

/// A sidecar of `vms` VMs, each running [`PROCESSES_PER_VM`] `cat`s parked on stdin.
fn idle_sidecar(vms: usize) -> Host {
    parked_sidecar(vms, 0)
}

/// [`idle_sidecar`] plus `spinners` processes per VM that never stop running.
fn parked_sidecar(vms: usize, spinners: usize) -> Host {
    let started = std::time::Instant::now();
    let sidecar = Sidecar::new(SidecarConfig::default()).with_guest_engine(Arc::new(ScriptEngine::new()));
    let mut host = Host::with_sidecar(sidecar);
    let mut scopes = Vec::new();
    for vm in 0..vms {
        if vm > 0 && vm % MAX_VMS_PER_SESSION == 0 {
            host.open_session();
        }
        let scope = host.create_vm(CONFIG);
        scopes.push(scope.clone());
        host.write_file(&scope, "/bin/cat", &module("cat"));
        for process in 0..PROCESSES_PER_VM {
            host.execute(&scope, &format!("p{process}"), "cat", &[]);
        }
    }
    // Every process runs until it parks on its empty stdin.
    while host.sidecar.runnable_processes() > 0 {
        host.sidecar.tick(Now::default());
        host.drain();
    }
    assert_eq!(host.sidecar.next_deadline(), None, "idle: nothing to wake for");
    for scope in scopes.iter().filter(|_| spinners > 0) {
        host.write_file(scope, "/bin/spin", &module("spin"));
        for spinner in 0..spinners {
            host.execute(scope, &format!("s{spinner}"), "spin", &[]);
        }
    }
    // How long getting there took is itself a measure of the scheduler (a scan per step made
    // it quadratic).
    eprintln!("setup of {vms} VMs x {PROCESSES_PER_VM} processes: {:?}", started.elapsed());
    host
}

#[divan::bench(args = [1, 100, 1000], sample_count = 100)]
fn next_deadline(bencher: divan::Bencher<'_, '_>, vms: usize) {
    let host = idle_sidecar(vms);
    bencher.bench_local(|| divan::black_box(host.sidecar.next_deadline()));
}

#[divan::bench(args = [1, 100, 1000], sample_count = 100)]
fn idle_tick(bencher: divan::Bencher<'_, '_>, vms: usize) {
    let mut host = idle_sidecar(vms);
    bencher.bench_local(|| host.sidecar.tick(Now::default()));
}

/// A tick (at most 16 slices) when every VM also has one process that never stops running: the
/// scheduler's own cost per tick, next to the 64 parked processes of every VM.
#[divan::bench(args = [1, 100, 1000], sample_count = 50)]
fn busy_tick(bencher: divan::Bencher<'_, '_>, vms: usize) {
    let mut host = parked_sidecar(vms, 1);
    bencher.bench_local(|| {
        host.sidecar.tick(Now::default());
        while host.sidecar.poll_output().is_some() {}
    });
}
