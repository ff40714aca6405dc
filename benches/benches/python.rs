//! CPython under the real binary: the first `print(1)` after a sidecar starts (warm module
//! cache), a warm `print(1)` (against the install's own snapshot, whose exit tears the
//! interpreter down), `import numpy, pandas` with a DataFrame mean on the preloaded
//! interpreter and on the lean one, and memory per idle Python VM and per idle running
//! interpreter. Each number comes with its baseline from the same run. Installs the interpreter
//! first if needed (`scripts/fetch-python.sh`) and prepares it (`prepare-python`).
//!
//! Run: `cargo bench -p sidecar --bench python`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use schema::wire::{GuestRuntimeKind, OwnershipScope};

/// Warm runs measured (the median is reported).
const WARM_RUNS: usize = 15;
/// Idle VMs and idle interpreters the memory figures are taken over.
const IDLE_VMS: usize = 20;
const IDLE_INTERPRETERS: usize = 4;

#[path = "shared/interpreter.rs"]
mod interpreter;

use interpreter::{binary, median, ms, Interpreter};

/// Runs of the DataFrame program measured on each interpreter (the median is reported).
const SCIENCE_RUNS: usize = 5;
/// The DataFrame program; naming its packages chooses the preloaded interpreter.
const SCIENCE: &str = "import numpy, pandas; print(pandas.DataFrame({'a': [1, 2, 3]}).a.mean())";
/// The same program naming them only in pieces: it runs on the lean interpreter (the baseline).
const SCIENCE_LEAN: &str =
    "np = __import__('n' 'umpy'); pd = __import__('p' 'andas'); print(pd.DataFrame({'a': [1, 2, 3]}).a.mean())";

/// A sidecar with the Python interpreter.
fn sidecar() -> Interpreter {
    let python = testkit::python::installed().display().to_string();
    Interpreter::start(GuestRuntimeKind::Python, "-c", &["--python-dir", &python])
}

/// A sidecar with the install as fetched (its own snapshot, none of the interpreters
/// `prepare-python` makes), through a directory of links to its files.
fn sidecar_as_fetched() -> (Interpreter, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("bench-python-as-fetched-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["python.wasm", "python-snapshot.wasm", "python-stdlib.zip", "SHA256SUMS"] {
        std::os::unix::fs::symlink(testkit::python::installed().join(name), dir.join(name)).unwrap();
    }
    let sidecar = Interpreter::start(GuestRuntimeKind::Python, "-c", &["--python-dir", &dir.display().to_string()]);
    (sidecar, dir)
}

fn main() {
    let python = testkit::python::installed().display().to_string();
    let prepared =
        std::process::Command::new(binary()).args(["--python-dir", &python, "prepare-python"]).output().unwrap();
    assert!(prepared.status.success(), "{}", String::from_utf8_lossy(&prepared.stderr));

    // A first sidecar makes sure the interpreter is compiled into the on-disk cache.
    let mut warmup = sidecar();
    let scope = warmup.vm();
    warmup.run(&scope, "print(1)");
    warmup.close();

    let started = Instant::now();
    let mut sidecar = sidecar();
    let scope = sidecar.vm();
    let (first, out) = sidecar.run(&scope, "print(1)");
    let since_spawn = started.elapsed();
    assert_eq!(out, "1\n");
    let warm = median((0..WARM_RUNS).map(|_| sidecar.run(&scope, "print(1)").0).collect());
    let (mut fetched, fetched_dir) = sidecar_as_fetched();
    let fetched_scope = fetched.vm();
    fetched.run(&fetched_scope, "print(1)");
    let torn_down = median((0..WARM_RUNS).map(|_| fetched.run(&fetched_scope, "print(1)").0).collect());
    fetched.close();
    let _ = std::fs::remove_dir_all(&fetched_dir);
    let mut science = |code: &str| {
        median(
            (0..SCIENCE_RUNS)
                .map(|_| {
                    let (took, out) = sidecar.run(&scope, code);
                    assert_eq!(out, "2.0\n");
                    took
                })
                .collect(),
        )
    };
    let (preloaded, lean) = (science(SCIENCE), science(SCIENCE_LEAN));
    let preloaded_print = median((0..WARM_RUNS).map(|_| sidecar.run(&scope, "print(1) # numpy").0).collect());
    println!(
        "print(1): first after a sidecar start {:.0} ms ({:.0} ms from spawning it), warm median {:.1} ms \
         (first/warm {:.0}x); on the install's own snapshot (full teardown) {:.1} ms ({:.1}x the quick exit)",
        ms(first),
        ms(since_spawn),
        ms(warm),
        first.as_secs_f64() / warm.as_secs_f64(),
        ms(torn_down),
        torn_down.as_secs_f64() / warm.as_secs_f64(),
    );
    println!(
        "import numpy, pandas and a DataFrame mean: {:.0} ms on the preloaded interpreter, {:.0} ms on the lean one \
         ({:.1}x faster); print(1) on the preloaded one {:.1} ms ({:.1}x the lean one: its exit tears down what it preloaded)",
        ms(preloaded),
        ms(lean),
        lean.as_secs_f64() / preloaded.as_secs_f64(),
        ms(preloaded_print),
        preloaded_print.as_secs_f64() / warm.as_secs_f64()
    );

    let before_vms = sidecar.rss_kib();
    let scopes: Vec<OwnershipScope> = (0..IDLE_VMS).map(|_| sidecar.vm()).collect();
    let with_vms = sidecar.rss_kib();
    let idle = sidecar.vm();
    for _ in 0..IDLE_INTERPRETERS {
        sidecar.start_code(&idle, "import time; time.sleep(600)");
    }
    std::thread::sleep(Duration::from_secs(3));
    let with_interpreters = sidecar.rss_kib();
    println!(
        "memory: sidecar {before_vms} KiB after Python ran (the compiled interpreter and its install loaded once); \
         {IDLE_VMS} idle Python VMs add {:.0} KiB each; {IDLE_INTERPRETERS} idle interpreters add {:.0} KiB each",
        (with_vms.saturating_sub(before_vms)) as f64 / IDLE_VMS as f64,
        (with_interpreters.saturating_sub(with_vms)) as f64 / IDLE_INTERPRETERS as f64
    );
    drop(scopes);
    sidecar.close();
}
