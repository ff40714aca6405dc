//! The `node` command under the real binary: cold and warm `node -e "1"` through the protocol,
//! a CPU-bound loop against the same loop under the host's `node` (when the machine has one),
//! and memory per idle JavaScript VM and per idle running `node` process. Each number comes
//! with its baseline from the same run. Builds `node.wasm` first if needed
//! (`scripts/build-node.sh`).
//!
//! Run: `cargo bench -p sidecar --bench javascript`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::indexing_slicing)]

use std::path::Path;
use std::time::{Duration, Instant};

use schema::wire::{GuestRuntimeKind, OwnershipScope};

/// Warm runs measured (the median is reported).
const WARM_RUNS: usize = 30;
/// Idle VMs and idle processes the memory figures are taken over.
const IDLE_VMS: usize = 50;
const IDLE_PROCESSES: usize = 20;
/// The CPU-bound loop: 30 million steps of integer arithmetic.
const LOOP: &str = "let s = 0; for (let i = 0; i < 30000000; i++) { s = (s + i * 7) % 1000003; } console.log(s);";

#[path = "shared/interpreter.rs"]
mod interpreter;

use interpreter::{median, ms, Interpreter};

/// A sidecar with `node`, keeping compiled modules in `module_cache`.
fn sidecar(module_cache: &Path) -> Interpreter {
    let node = testkit::node::built().display().to_string();
    let cache = module_cache.display().to_string();
    Interpreter::start(GuestRuntimeKind::JavaScript, "-e", &["--module-cache-dir", &cache, "--node-dir", &node])
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    interpreter::temp_dir("javascript", name)
}

fn main() {
    start_times();
    cpu_loop();
    memory();
}

/// `node -e "1"`: empty module cache, warm on-disk cache (a new sidecar), warm sidecar; the
/// baseline is a warm `node -e` of the same sidecar that does nothing either (so the ratio is
/// the start's share).
fn start_times() {
    let cache = temp_dir("start");
    let mut cold = sidecar(&cache);
    let scope = cold.vm();
    let (first, _) = cold.run(&scope, "1");
    let warm: Vec<Duration> = (0..WARM_RUNS).map(|_| cold.run(&scope, "1").0).collect();
    cold.close();
    let mut disk = sidecar(&cache);
    let scope = disk.vm();
    let (from_disk, _) = disk.run(&scope, "1");
    disk.close();
    let warm = median(warm);
    println!(
        "node -e \"1\": empty module cache {:.1} ms, warm on-disk cache (new sidecar) {:.1} ms, warm sidecar median {:.2} ms \
         (cold/warm {:.0}x; the original's warm exec of 452 ms is {:.0}x this)",
        ms(first),
        ms(from_disk),
        ms(warm),
        first.as_secs_f64() / warm.as_secs_f64(),
        452.0 / ms(warm)
    );
}

/// The same loop in the sandbox and under the host's `node` (JIT on), timed the same way: from
/// start to exit.
fn cpu_loop() {
    let cache = temp_dir("loop");
    let mut sidecar = sidecar(&cache);
    let scope = sidecar.vm();
    sidecar.run(&scope, "1");
    let (sandboxed, out) = sidecar.run(&scope, LOOP);
    sidecar.close();
    let host = std::process::Command::new("node").args(["-e", LOOP]).output();
    match host {
        Ok(output) if output.status.success() => {
            let start = Instant::now();
            let again = std::process::Command::new("node").args(["-e", LOOP]).output().unwrap();
            let host_time = start.elapsed();
            assert_eq!(String::from_utf8_lossy(&again.stdout), out);
            println!(
                "CPU loop (30M steps): sandbox {:.0} ms, host node {:.0} ms: the sandbox takes {:.1}x",
                ms(sandboxed),
                ms(host_time),
                sandboxed.as_secs_f64() / host_time.as_secs_f64()
            );
        }
        _ => println!("CPU loop (30M steps): sandbox {:.0} ms (no host node to compare with)", ms(sandboxed)),
    }
}

/// RSS of the sidecar idle, with IDLE_VMS JavaScript VMs (no process), then with
/// IDLE_PROCESSES `node` processes waiting on a timer in one more VM.
fn memory() {
    let cache = temp_dir("memory");
    let mut sidecar = sidecar(&cache);
    let warmup = sidecar.vm();
    sidecar.run(&warmup, "1");
    let idle = sidecar.rss_kib();
    let scopes: Vec<OwnershipScope> = (0..IDLE_VMS).map(|_| sidecar.vm()).collect();
    let with_vms = sidecar.rss_kib();
    let scope = sidecar.vm();
    for _ in 0..IDLE_PROCESSES {
        sidecar.start_code(&scope, "setTimeout(() => {}, 600000)");
    }
    // Let them all start and park on their timers.
    std::thread::sleep(Duration::from_secs(2));
    let with_processes = sidecar.rss_kib();
    println!(
        "memory: sidecar {idle} KiB after one node run; {IDLE_VMS} idle JS VMs add {:.0} KiB each; \
         {IDLE_PROCESSES} idle node processes add {:.0} KiB each",
        (with_vms.saturating_sub(idle)) as f64 / IDLE_VMS as f64,
        (with_processes.saturating_sub(with_vms)) as f64 / IDLE_PROCESSES as f64
    );
    drop(scopes);
    sidecar.close();
}
