//! Guest file I/O through descriptors on the VM's root filesystem: a C guest (`fsops`) makes
//! 10,000 one-byte `pwrite`s spread over a 1 MiB file, or lists a directory of 201 files 20
//! times — all through the codec into the kernel with the wasmtime engine.
//!
//! The baseline in the same run is the same guest started and ended with nothing to do (`fsops`
//! with no operation), so the ratio shows what the file calls cost over a process's start.
//!
//! `cargo bench -p benches --bench file_io`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use benches::{c_fixture, Host};
use schema::wire::OwnershipScope;

fn main() {
    divan::main();
}

const CONFIG: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;

/// A VM with `/bin/fsops`, and in `/tmp` a 1 MiB `big` and 200 empty files.
fn vm(host: &mut Host) -> OwnershipScope {
    let scope = host.create_vm(CONFIG);
    host.write_file(&scope, "/bin/fsops", &c_fixture("fsops"));
    host.write_file(&scope, "/tmp/big", &vec![0u8; 1 << 20]);
    for entry in 0..200 {
        host.write_file(&scope, &format!("/tmp/f{entry}"), b"");
    }
    scope
}

fn run(host: &mut Host, scope: &OwnershipScope, args: &[&str]) {
    host.execute(scope, "p", "fsops", args);
    host.run_to_exit("p");
}

/// Baseline: the guest starts and ends.
#[divan::bench(sample_count = 50)]
fn start_and_exit(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    run(&mut host, &scope, &[]);
    bencher.bench_local(|| run(&mut host, &scope, &[]));
}

/// 10,000 positioned one-byte writes.
#[divan::bench(sample_count = 50)]
fn pwrites(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    let args = ["pwrites", "/tmp/big", "10000"];
    run(&mut host, &scope, &args);
    bencher.bench_local(|| run(&mut host, &scope, &args));
}

/// 20 listings of 201 entries, each entry's kind looked up.
#[divan::bench(sample_count = 50)]
fn listings(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let scope = vm(&mut host);
    let args = ["lists", "/tmp", "20"];
    run(&mut host, &scope, &args);
    bencher.bench_local(|| run(&mut host, &scope, &args));
}
