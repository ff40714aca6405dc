//! What the CLI adds over the raw protocol: `secure-exec run --sh true` as a child process,
//! against the same work through `client::sandbox` directly (a sidecar child, a VM with every
//! command package, `sh -c true`, dispose), in the same run. Warm: the module cache holds the
//! shell, as on any machine after its first run.
//!
//! `cargo build --release -p sidecar && cargo bench -p cli --bench overhead`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use client::sandbox::{RunRequest, Sandbox, SandboxOptions};
use schema::wire::*;

const WARMUP: usize = 3;
const SAMPLES: usize = 30;

fn cli() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec"))
}

fn sidecar() -> PathBuf {
    let path = cli().with_file_name("secure-exec-sidecar");
    assert!(path.is_file(), "{} is missing: cargo build --release -p sidecar", path.display());
    path
}

fn through_cli(packages: &Path) {
    let status = Command::new(cli())
        .args(["run", "--sh", "true"])
        .env("SECURE_EXEC_SIDECAR", sidecar())
        .env("SECURE_EXEC_PACKAGES", packages)
        .status()
        .unwrap();
    assert!(status.success());
}

fn through_protocol(packages: &Path) {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow","env":"allow"}}"#;
    let options = SandboxOptions { sidecar: sidecar(), sidecar_args: Vec::new(), config: config.into() };
    let mut sandbox = Sandbox::start(&options).unwrap();
    let software = testkit::packages::PACKAGES
        .iter()
        .map(|name| SoftwareDescriptor {
            package_name: format!("@agentos-software/{name}"),
            root: packages.join("node_modules/@agentos-software").join(name).display().to_string(),
        })
        .collect();
    sandbox.configure(ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(Vec::new()) }).unwrap();
    let execute = ExecuteRequest::command("main", "sh", ["-c", "true"]);
    let exit = sandbox.run(RunRequest { execute, stdin: None, deadline: None }, &mut |_, _| {}).unwrap();
    assert_eq!(exit.code, 0);
    sandbox.close().unwrap();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(work: impl Fn()) -> Duration {
    for _ in 0..WARMUP {
        work();
    }
    median(
        (0..SAMPLES)
            .map(|_| {
                let start = Instant::now();
                work();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let packages = testkit::packages::installed();
    let raw = measure(|| through_protocol(packages));
    let cli = measure(|| through_cli(packages));
    println!("run --sh true, raw protocol (client::sandbox)  p50 {:>8.2} ms", raw.as_secs_f64() * 1e3);
    println!("run --sh true, secure-exec CLI                 p50 {:>8.2} ms", cli.as_secs_f64() * 1e3);
    println!(
        "ratio cli/raw: {:.2}x (+{:.2} ms)",
        cli.as_secs_f64() / raw.as_secs_f64(),
        (cli.as_secs_f64() - raw.as_secs_f64()) * 1e3
    );
}
