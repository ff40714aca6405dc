//! Pre-initialisation: a reactor's start-up runs once on a `PreinitHost`, and the module it
//! gives back starts with that state (its memory, its globals) without running it again.

use std::sync::Arc;

use runtime_wasm::{
    PreinitHost, PreinitPlan, Runtime, RuntimeConfig, RuntimeError, StdioHost, TaskLimits, MAX_PREINIT_FILES,
};

use crate::support::{run_args, wat};

/// A reactor whose start-up reads a file and some entropy into memory and counts in a global;
/// `run` answers the global plus the file's first byte, and prints the entropy's first byte.
const REACTOR: &str = r#"
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $runs (mut i32) (i32.const 0))
  (data (i32.const 300) "data/input.txt")
  (func $init (export "wizer.initialize")
    (global.set $runs (i32.add (global.get $runs) (i32.const 40)))
    (drop (call $random (i32.const 200) (i32.const 8)))
    ;; open /data/input.txt below the preopen (fd 3); its descriptor lands at 400
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 300) (i32.const 14) (i32.const 0)
          (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 400))
      (then unreachable))
    ;; one iovec at 500: 1 byte into 100
    (i32.store (i32.const 500) (i32.const 100))
    (i32.store (i32.const 504) (i32.const 1))
    (if (call $fd_read (i32.load (i32.const 400)) (i32.const 500) (i32.const 1) (i32.const 508))
      (then unreachable)))
  (func (export "_initialize")
    (global.set $runs (i32.add (global.get $runs) (i32.const 1))))
  (func (export "run") (result i32)
    ;; print the entropy's first byte as one raw byte
    (i32.store (i32.const 500) (i32.const 200))
    (i32.store (i32.const 504) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 500) (i32.const 1) (i32.const 508)))
    (i32.add (global.get $runs) (i32.load8_u (i32.const 100))))
)
"#;

fn plan() -> PreinitPlan {
    PreinitPlan { init_func: "wizer.initialize".into(), max_fuel: 1_000_000, max_memory_bytes: 1 << 20 }
}

fn host(seed: u64) -> PreinitHost {
    PreinitHost::new(StdioHost::new(["reactor"]).with_stdin(b"").with_seed(seed))
        .with_file("/data/input.txt", Arc::from(&[5u8, 6, 7][..]))
        .unwrap()
}

fn preinitialize(wasm: &[u8], plan: &PreinitPlan, seed: u64) -> Result<Vec<u8>, String> {
    let runtime: Runtime<PreinitHost> = Runtime::new(RuntimeConfig::default()).unwrap();
    runtime.preinitialize(wasm, plan, host(seed)).map(|done| done.wasm).map_err(|failed| {
        let stderr = failed.host.map(|host| String::from_utf8_lossy(host.stdio.stderr()).into_owned());
        format!("{} / {stderr:?}", failed.error)
    })
}

#[test]
fn the_snapshot_starts_where_the_start_up_ended_without_running_it_again() {
    let snapshot = preinitialize(&wat(REACTOR), &plan(), 7).unwrap();
    // `_initialize` (1) and the init function (40) ran once, before the snapshot, and the file's
    // first byte (5) is in memory: `run` answers 46 though nothing opens the file now (the host
    // that runs it has no files at all).
    let finished = run_args(&snapshot, &["reactor"]);
    assert_eq!(finished.status.code, 46, "{finished:?}");
    assert_eq!(finished.stdout.len(), 1);
    // Neither start-up export is left to run twice.
    let runtime: Runtime<StdioHost> = Runtime::new(RuntimeConfig::default()).unwrap();
    let program = runtime.compile(&snapshot).unwrap();
    let again = crate::support::run_to_end(
        &mut program.spawn(StdioHost::new(["reactor"]).with_stdin(b""), TaskLimits::default()).unwrap(),
    );
    assert_eq!(again.status.code, 46);
    assert!(!String::from_utf8_lossy(&snapshot).contains("wizer.initialize"));
}

#[test]
fn the_same_inputs_give_the_same_snapshot_and_the_seed_is_an_input() {
    let wasm = wat(REACTOR);
    let first = preinitialize(&wasm, &plan(), 7).unwrap();
    assert_eq!(first, preinitialize(&wasm, &plan(), 7).unwrap());
    let other = preinitialize(&wasm, &plan(), 8).unwrap();
    assert_ne!(first, other);
    assert_ne!(run_args(&first, &["reactor"]).stdout, run_args(&other, &["reactor"]).stdout);
}

#[test]
fn a_failing_start_up_is_an_error_with_the_host_and_never_a_module() {
    let trapping = REACTOR.replace("(global.set $runs (i32.add (global.get $runs) (i32.const 40)))", "unreachable");
    let why = preinitialize(&wat(&trapping), &plan(), 7).unwrap_err();
    assert!(why.contains("initialising") && why.contains("unreachable"), "{why}");

    let spinning = REACTOR
        .replace("(global.set $runs (i32.add (global.get $runs) (i32.const 40)))", "(loop $forever (br $forever))");
    let why = preinitialize(&wat(&spinning), &plan(), 7).unwrap_err();
    assert!(why.contains("fuel"), "{why}");

    let missing_file = REACTOR.replace("data/input.txt", "data/absent.txt");
    assert!(preinitialize(&wat(&missing_file), &plan(), 7).unwrap_err().contains("unreachable"));

    let no_such_export = PreinitPlan { init_func: "absent".into(), ..plan() };
    let why = preinitialize(&wat(REACTOR), &no_such_export, 7).unwrap_err();
    assert!(why.contains("absent"), "{why}");

    let growing = REACTOR.replace(
        "(global.set $runs (i32.add (global.get $runs) (i32.const 40)))",
        "(if (i32.lt_s (memory.grow (i32.const 100)) (i32.const 0)) (then unreachable))",
    );
    let why = preinitialize(&wat(&growing), &plan(), 7).unwrap_err();
    assert!(why.contains("unreachable"), "memory beyond max_memory_bytes is refused: {why}");
}

#[test]
fn a_start_up_that_waits_on_its_host_fails_instead_of_spinning() {
    // Reading an open, empty stdin would block: a pre-initialisation has nobody to answer it.
    let reading = REACTOR.replace(
        "(global.set $runs (i32.add (global.get $runs) (i32.const 40)))",
        "(i32.store (i32.const 500) (i32.const 100)) (i32.store (i32.const 504) (i32.const 1))
         (drop (call $fd_read (i32.const 0) (i32.const 500) (i32.const 1) (i32.const 508)))",
    );
    let runtime: Runtime<PreinitHost> = Runtime::new(RuntimeConfig::default()).unwrap();
    let open_stdin =
        PreinitHost::new(StdioHost::new(["reactor"])).with_file("/data/input.txt", Arc::from(&[5u8][..])).unwrap();
    let failed = runtime.preinitialize(&wat(&reading), &plan(), open_stdin).unwrap_err();
    assert!(
        matches!(&failed.error, RuntimeError::Preinit(why) if why.contains("waited on its host")),
        "{:?}",
        failed.error
    );
}

#[test]
fn the_files_a_pre_initialisation_sees_are_bounded() {
    let mut host = PreinitHost::new(StdioHost::new(["reactor"]));
    for index in 0..MAX_PREINIT_FILES {
        host = host.with_file(&format!("/f{index}"), Arc::from(&b""[..])).unwrap();
    }
    assert!(host.with_file("/one-more", Arc::from(&b""[..])).is_err());
}

/// A quiet start-up (no files, no output) gives its snapshot and fuel; one that prints gives
/// an error saying what it printed, never a module.
#[test]
fn a_quiet_pre_initialisation_refuses_a_start_up_that_prints() {
    let module = |prints: bool| {
        wat(&format!(
            r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $loaded (mut i32) (i32.const 0))
  (data (i32.const 100) "hi")
  (func (export "wizer.initialize")
    (global.set $loaded (i32.const 9))
    (i32.store (i32.const 500) (i32.const 100))
    (i32.store (i32.const 504) (i32.const {length}))
    (drop (call $fd_write (i32.const 1) (i32.const 500) (i32.const 1) (i32.const 508))))
  (func (export "run") (result i32) (global.get $loaded)))"#,
            length = u32::from(prints) * 2
        ))
    };
    let plan = |argv0| kernel::host::programs::SnapshotPlan {
        init_func: "wizer.initialize",
        max_fuel: 1_000_000,
        max_memory_bytes: 1 << 20,
        argv0,
        seed: 1,
    };
    let (snapshot, fuel) = runtime_wasm::preinitialize_quietly(&module(false), &plan("quiet")).unwrap();
    assert!(fuel > 0);
    assert_eq!(run_args(&snapshot, &["quiet"]).status.code, 9);
    let error = runtime_wasm::preinitialize_quietly(&module(true), &plan("loud")).unwrap_err();
    assert!(error.contains(r#"not quiet (stdout "hi""#), "{error}");
}
