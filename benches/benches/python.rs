//! CPython under the real binary: the first `print(1)` after a sidecar starts (warm module
//! cache), a warm `print(1)`, `import numpy, pandas` with a DataFrame mean, and memory per idle
//! Python VM and per idle running interpreter. Each number comes with its baseline from the
//! same run. Installs the interpreter first if needed (`scripts/fetch-python.sh`).
//!
//! Run: `cargo bench -p sidecar --bench python`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::indexing_slicing)]

use std::path::Path;
use std::time::{Duration, Instant};

use client::Client;
use schema::wire::*;

/// Warm runs measured (the median is reported).
const WARM_RUNS: usize = 15;
/// Idle VMs and idle interpreters the memory figures are taken over.
const IDLE_VMS: usize = 20;
const IDLE_INTERPRETERS: usize = 4;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

struct Sidecar {
    client: Client,
    conn: String,
    session: String,
    next: usize,
}

impl Sidecar {
    fn start() -> Sidecar {
        let python = testkit::python::installed().display().to_string();
        let mut client = Client::spawn(binary(), &["--python-dir", &python]).unwrap();
        client.timeout = Duration::from_secs(900);
        let conn = client.authenticate("bench", "token").unwrap().connection_id;
        let session = client.open_session(&conn).unwrap();
        Sidecar { client, conn, session, next: 0 }
    }

    fn vm(&mut self) -> OwnershipScope {
        let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#;
        let request = CreateVmRequest { runtime: GuestRuntimeKind::Python, config: config.into() };
        let scope = OwnershipScope::session(&self.conn, &self.session);
        match self.client.request(scope, RequestPayload::CreateVmRequest(request)).unwrap() {
            ResponsePayload::VmCreatedResponse(created) => {
                OwnershipScope::vm(self.conn.clone(), self.session.clone(), created.vm_id)
            }
            other => panic!("{other:?}"),
        }
    }

    fn start_python(&mut self, scope: &OwnershipScope, code: &str) -> String {
        self.next += 1;
        let id = format!("py{}", self.next);
        let execute = ExecuteRequest {
            command: None,
            runtime: Some(GuestRuntimeKind::Python),
            ..ExecuteRequest::command(&id, "", ["-c", code])
        };
        let started = self.client.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
        assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
        id
    }

    /// `python -c code` to its exit: how long from the request to the exit event, and stdout.
    fn python(&mut self, scope: &OwnershipScope, code: &str) -> (Duration, String) {
        let start = Instant::now();
        let id = self.start_python(scope, code);
        let mut stdout = Vec::new();
        loop {
            match self.client.next_event(Duration::from_secs(900)).unwrap().payload {
                EventPayload::ProcessOutputEvent(event) if event.process_id == id => stdout.extend(event.chunk),
                EventPayload::ProcessExitedEvent(event) if event.process_id == id => {
                    assert_eq!(event.exit_code, 0, "{code}");
                    return (start.elapsed(), String::from_utf8_lossy(&stdout).into_owned());
                }
                _ => {}
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.client.pid())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    // A first sidecar makes sure the interpreter is compiled into the on-disk cache.
    let mut warmup = Sidecar::start();
    let scope = warmup.vm();
    warmup.python(&scope, "print(1)");
    drop(warmup.client.close());

    let started = Instant::now();
    let mut sidecar = Sidecar::start();
    let scope = sidecar.vm();
    let (first, out) = sidecar.python(&scope, "print(1)");
    let since_spawn = started.elapsed();
    assert_eq!(out, "1\n");
    let warm = median((0..WARM_RUNS).map(|_| sidecar.python(&scope, "print(1)").0).collect());
    let code = "import numpy, pandas; print(pandas.DataFrame({'a': [1, 2, 3]}).a.mean())";
    let (science, out) = sidecar.python(&scope, code);
    assert_eq!(out, "2.0\n");
    println!(
        "print(1): first after a sidecar start {:.0} ms ({:.0} ms from spawning it), warm median {:.1} ms \
         (first/warm {:.0}x); import numpy, pandas and a DataFrame mean {:.0} ms ({:.0}x a warm print)",
        ms(first),
        ms(since_spawn),
        ms(warm),
        first.as_secs_f64() / warm.as_secs_f64(),
        ms(science),
        science.as_secs_f64() / warm.as_secs_f64()
    );

    let before_vms = sidecar.rss_kib();
    let scopes: Vec<OwnershipScope> = (0..IDLE_VMS).map(|_| sidecar.vm()).collect();
    let with_vms = sidecar.rss_kib();
    let idle = sidecar.vm();
    for _ in 0..IDLE_INTERPRETERS {
        sidecar.start_python(&idle, "import time; time.sleep(600)");
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
    drop(sidecar.client.close());
}
