//! The original's command packages under the real binary: loading them, what they cost in
//! memory, running the shell cold and warm, listing a large directory, and compiling the whole
//! coreutils set with and without parallel compilation. Each number comes with its baseline from
//! the same run. Needs the packages (`scripts/fetch-packages.sh`, run for you).
//!
//! Run: `cargo bench -p sidecar --bench packages`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use client::Client;
use kernel::host::package::PackageSource;
use runtime_wasm::{Runtime, RuntimeConfig, StdioHost};
use schema::wire::*;
use testkit::packages::{self, PACKAGES};
use transport::packages::OsPackages;

/// VMs created for the load-time and memory measurements.
const VMS: usize = 50;
/// Entries of the large directory `ls` lists.
const LARGE_DIR_ENTRIES: usize = 1000;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

struct Sidecar {
    client: Client,
    conn: String,
    session: String,
}

impl Sidecar {
    fn start(module_cache: &Path) -> Sidecar {
        let mut client = Client::spawn(binary(), &["--module-cache-dir", module_cache.to_str().unwrap()]).unwrap();
        let conn = client.authenticate("bench", "token").unwrap().connection_id;
        let session = client.open_session(&conn).unwrap();
        Sidecar { client, conn, session }
    }

    fn vm(&mut self) -> OwnershipScope {
        let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow","env":"allow"}}"#;
        let vm = self.client.create_vm(&self.conn, &self.session, config).unwrap();
        OwnershipScope::vm(self.conn.clone(), self.session.clone(), vm)
    }

    fn configure(&mut self, scope: &OwnershipScope, software: bool) -> Duration {
        let software = if software {
            PACKAGES
                .iter()
                .map(|name| SoftwareDescriptor { package_name: (*name).to_owned(), root: packages::root(name) })
                .collect()
        } else {
            Vec::new()
        };
        let request =
            ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(vec![MountDescriptor::memory("/data")]) };
        let start = Instant::now();
        let answer = self.client.request(scope.clone(), RequestPayload::ConfigureVmRequest(request)).unwrap();
        let elapsed = start.elapsed();
        assert!(matches!(answer, ResponsePayload::VmConfiguredResponse(_)), "{answer:?}");
        elapsed
    }

    /// Runs `command args` to its exit; the time from the request to the exit event.
    fn run(&mut self, scope: &OwnershipScope, id: &str, command: &str, args: &[&str]) -> (Duration, String) {
        let start = Instant::now();
        let request = ExecuteRequest::command(id, command, args.iter().map(|arg| (*arg).to_owned()));
        let started = self.client.request(scope.clone(), RequestPayload::ExecuteRequest(request)).unwrap();
        assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
        let _ = self
            .client
            .request(scope.clone(), RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: id.to_owned() }));
        let mut stdout = Vec::new();
        loop {
            match self.client.next_event(Duration::from_secs(300)).unwrap().payload {
                EventPayload::ProcessOutputEvent(event) if event.process_id == id => stdout.extend(event.chunk),
                EventPayload::ProcessExitedEvent(event) if event.process_id == id => {
                    assert_eq!(event.exit_code, 0, "{command} {args:?}");
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

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-packages-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    packages::installed();
    load_and_memory();
    shell_cold_and_warm();
    large_directory();
    compile_coreutils();
}

/// ConfigureVm with the eight packages vs without, on fresh VMs; RSS with 1 and 50 such VMs.
fn load_and_memory() {
    let cache = temp_dir("load");
    let mut sidecar = Sidecar::start(&cache);
    let mut plain = Vec::new();
    let mut with_software = Vec::new();
    let idle_kib = sidecar.rss_kib();
    let mut scopes = Vec::new();
    for index in 0..VMS {
        let bare = sidecar.vm();
        plain.push(sidecar.configure(&bare, false));
        let (conn, session, vm) = (sidecar.conn.clone(), sidecar.session.clone(), bare.vm_id().unwrap().to_owned());
        sidecar.client.dispose_vm(&conn, &session, &vm).unwrap();
        let scope = sidecar.vm();
        with_software.push(sidecar.configure(&scope, true));
        scopes.push(scope);
        if index == 0 {
            println!("sidecar RSS idle {idle_kib} KiB, with 1 VM loading the 8 packages {} KiB", sidecar.rss_kib());
        }
    }
    println!("sidecar RSS with {VMS} VMs each loading the 8 packages: {} KiB", sidecar.rss_kib());
    let (plain, software) = (median(plain), median(with_software));
    println!(
        "ConfigureVm median: no software {:.3} ms, the 8 packages (common) {:.3} ms ({:.2}x)",
        ms(plain),
        ms(software),
        software.as_secs_f64() / plain.as_secs_f64()
    );
    drop(sidecar.client.close());
}

/// `sh -c 'echo hi'`: empty module cache, warm on-disk cache (new sidecar), warm sidecar.
fn shell_cold_and_warm() {
    let cache = temp_dir("shell");
    let mut cold = Sidecar::start(&cache);
    let scope = cold.vm();
    cold.configure(&scope, true);
    let (first, out) = cold.run(&scope, "p1", "sh", &["-c", "echo hi"]);
    assert_eq!(out, "hi\n");
    let (warm_sidecar, _) = cold.run(&scope, "p2", "sh", &["-c", "echo hi"]);
    drop(cold.client.close());
    let mut disk = Sidecar::start(&cache);
    let scope = disk.vm();
    disk.configure(&scope, true);
    let (warm_disk, _) = disk.run(&scope, "p1", "sh", &["-c", "echo hi"]);
    drop(disk.client.close());
    println!(
        "sh -c 'echo hi': empty module cache {:.1} ms, warm on-disk cache {:.1} ms, warm sidecar {:.1} ms \
         (cold/warm sidecar {:.0}x, disk/warm sidecar {:.1}x)",
        ms(first),
        ms(warm_disk),
        ms(warm_sidecar),
        first.as_secs_f64() / warm_sidecar.as_secs_f64(),
        warm_disk.as_secs_f64() / warm_sidecar.as_secs_f64()
    );
}

/// `ls` of a directory of 1,000 files vs of an empty one, in a warm sidecar.
fn large_directory() {
    let cache = temp_dir("ls");
    let mut sidecar = Sidecar::start(&cache);
    let scope = sidecar.vm();
    sidecar.configure(&scope, true);
    for index in 0..LARGE_DIR_ENTRIES {
        let write = GuestFilesystemCallRequest {
            content: Some(base64::engine::general_purpose::STANDARD.encode("")),
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, format!("/data/file-{index:04}"))
        };
        sidecar.client.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write)).unwrap();
    }
    sidecar.run(&scope, "warm", "ls", &["/tmp"]);
    let mut empty = Vec::new();
    let mut large = Vec::new();
    for round in 0..5 {
        empty.push(sidecar.run(&scope, &format!("e{round}"), "ls", &["/tmp"]).0);
        let (elapsed, out) = sidecar.run(&scope, &format!("l{round}"), "ls", &["/data"]);
        assert_eq!(out.lines().count(), LARGE_DIR_ENTRIES);
        large.push(elapsed);
    }
    let (empty, large) = (median(empty), median(large));
    println!(
        "ls of {LARGE_DIR_ENTRIES} entries {:.1} ms, of an empty directory {:.1} ms ({:.1}x)",
        ms(large),
        ms(empty),
        large.as_secs_f64() / empty.as_secs_f64()
    );
    drop(sidecar.client.close());
}

/// Every distinct coreutils module compiled (no cache), on one thread and on all cores.
fn compile_coreutils() {
    let package = OsPackages::new().open(&packages::root("coreutils")).unwrap();
    let mut modules = BTreeSet::new();
    for command in &package.commands {
        let entry = package.entry(&format!("/{}", command.entry)).unwrap();
        modules.insert(package.read(entry, 0, entry.size).unwrap());
    }
    let bytes: usize = modules.iter().map(Vec::len).sum();
    let mut times = Vec::new();
    for parallel_compilation in [false, true] {
        let runtime =
            Runtime::<StdioHost>::new(RuntimeConfig { parallel_compilation, ..RuntimeConfig::default() }).unwrap();
        let start = Instant::now();
        for module in &modules {
            runtime.compile(module).unwrap();
        }
        times.push(start.elapsed());
    }
    println!(
        "compiling coreutils ({} distinct modules, {:.1} MB): one thread {:.1} s, parallel {:.1} s ({:.2}x)",
        modules.len(),
        bytes as f64 / 1e6,
        times[0].as_secs_f64(),
        times[1].as_secs_f64(),
        times[0].as_secs_f64() / times[1].as_secs_f64()
    );
}
