//! Create a VM, execute a tiny WebAssembly program (`hello`, C, 4 KiB) to its exit, dispose the
//! VM — all as protocol frames through the codec into the kernel with the wasmtime engine.
//!
//! The baseline in the same run is the same conversation without the execution (create, write
//! the command file, dispose), so the ratio shows what executing costs. The module is compiled
//! once (the engine caches by content); every iteration instantiates it afresh in a new VM.
//!
//! `cargo bench -p benches --bench exec`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use benches::{c_fixture, Host};
use schema::wire::OwnershipScope;

fn main() {
    divan::main();
}

const CONFIG: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;

/// Create a VM and put `/bin/hello` in it; returns the VM's scope.
fn create(host: &mut Host, hello: &[u8]) -> OwnershipScope {
    let scope = host.create_vm(CONFIG);
    host.write_file(&scope, "/bin/hello", hello);
    scope
}

/// Baseline: create a VM, write the command, dispose.
#[divan::bench(sample_count = 200)]
fn create_dispose(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let hello = c_fixture("hello");
    bencher.bench_local(|| {
        let scope = create(&mut host, &hello);
        host.dispose(scope);
    });
}

/// Create a VM, write the command, execute it to its exit, dispose.
#[divan::bench(sample_count = 200)]
fn create_exec_dispose(bencher: divan::Bencher<'_, '_>) {
    let mut host = Host::new();
    let hello = c_fixture("hello");
    // Warm the engine's module cache, as a long-running sidecar would be.
    let scope = create(&mut host, &hello);
    host.execute(&scope, "p", "hello", &[]);
    host.run_to_exit("p");
    host.dispose(scope);
    bencher.bench_local(|| {
        let scope = create(&mut host, &hello);
        host.execute(&scope, "p", "hello", &[]);
        host.run_to_exit("p");
        host.dispose(scope);
    });
}
