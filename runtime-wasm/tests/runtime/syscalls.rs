//! Individual `wasi_snapshot_preview1` calls: errnos, bad pointers, clocks, entropy, yields, and
//! modules the runtime refuses.

use runtime_wasm::{
    ClockId, Errno, ExitReason, ExitStatus, Fd, FdStat, Runtime, RuntimeConfig, RuntimeError, StdioHost, SysError,
    SysResult, TaskLimits, TaskState, WaitReason, WasiHost, FDFLAGS_APPEND,
};

use crate::support::{run, run_args, runtime, spawn, wat};

/// A module importing the calls under test; `_start` exits with the value of `body` (an `i32`
/// expression, typically an errno). `$out(ptr, len)` writes memory to stdout. Memory is one page.
fn probe(body: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
          (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_open"
          (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_tell" (func $fd_tell (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_renumber" (func $fd_renumber (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_pread" (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_filestat_get"
          (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_readlink"
          (func $path_readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_raise" (func $proc_raise (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "clock_res_get" (func $clock_res_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "sched_yield" (func $sched_yield (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
        (memory (export "memory") 1)
        (func $out (param $ptr i32) (param $len i32)
          (i32.store (i32.const 60000) (local.get $ptr))
          (i32.store (i32.const 60004) (local.get $len))
          (drop (call $fd_write (i32.const 1) (i32.const 60000) (i32.const 1) (i32.const 60008))))
        (func $iov (param $at i32) (param $ptr i32) (param $len i32) (result i32)
          (i32.store (local.get $at) (local.get $ptr))
          (i32.store (i32.add (local.get $at) (i32.const 4)) (local.get $len))
          (local.get $at))
        (func (export "_start") (call $proc_exit {body})))"#
    ))
}

fn errno_exit(body: &str) -> u32 {
    let out = run_args(&probe(body), &["probe"]);
    assert_eq!(out.status.reason, ExitReason::Exited, "{:?} {}", out.status, out.stderr_str());
    out.status.code
}

fn errno(e: Errno) -> u32 {
    u32::from(e.raw())
}

#[test]
fn bad_pointers_are_efault_not_panics() {
    let cases = [
        // iovec array outside memory
        "(call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 0))",
        "(call $fd_write (i32.const 1) (i32.const -8) (i32.const 1) (i32.const 0))",
        // a buffer outside memory
        "(call $fd_write (i32.const 1) (call $iov (i32.const 0) (i32.const 65000) (i32.const 1000)) (i32.const 1) (i32.const 16))",
        "(call $fd_write (i32.const 1) (call $iov (i32.const 0) (i32.const -1) (i32.const 2)) (i32.const 1) (i32.const 16))",
        // the result pointer outside memory
        "(call $fd_write (i32.const 1) (call $iov (i32.const 0) (i32.const 100) (i32.const 3)) (i32.const 1) (i32.const 65534))",
        "(call $fd_read (i32.const 0) (call $iov (i32.const 0) (i32.const 65500) (i32.const 100)) (i32.const 1) (i32.const 16))",
        "(call $args_sizes_get (i32.const 0) (i32.const 65535))",
        "(call $args_get (i32.const 65534) (i32.const 0))",
        "(call $args_get (i32.const 0) (i32.const 65533))",
        "(call $environ_sizes_get (i32.const -4) (i32.const 0))",
        "(call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 65530))",
        "(call $clock_res_get (i32.const 0) (i32.const -1))",
        "(call $random_get (i32.const 65000) (i32.const 1000))",
        "(call $random_get (i32.const -1) (i32.const -1))",
        "(call $fd_fdstat_get (i32.const 1) (i32.const 65520))",
        "(call $fd_prestat_get (i32.const 3) (i32.const 65533))",
    ];
    for case in cases {
        assert_eq!(errno_exit(case), errno(Errno::Fault), "{case}");
    }
}

#[test]
fn a_faulting_write_writes_nothing() {
    let module = probe(
        "(call $fd_write (i32.const 1) (call $iov (i32.const 0) (i32.const 100) (i32.const 3)) (i32.const 1) (i32.const 65534))",
    );
    let out = run_args(&module, &["probe"]);
    assert_eq!(out.status.code, errno(Errno::Fault));
    assert_eq!(out.stdout, b"");
}

#[test]
fn a_faulting_read_consumes_no_input() {
    let module = probe(
        "(call $fd_read (i32.const 0) (call $iov (i32.const 0) (i32.const 100) (i32.const 10)) (i32.const 1) (i32.const -2))",
    );
    let mut task = spawn(&module, StdioHost::new(["probe"]).with_stdin(b"keep me"), TaskLimits::default());
    let out = crate::support::run_to_end(&mut task);
    assert_eq!(out.status.code, errno(Errno::Fault));
    assert_eq!(task.host().stdin_pending(), 7);
}

#[test]
fn too_many_iovecs_are_einval() {
    assert_eq!(errno_exit("(call $fd_write (i32.const 1) (i32.const 0) (i32.const 1025) (i32.const 16))"), 28);
    assert_eq!(errno_exit("(call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 16))"), 0);
}

#[test]
fn gathered_and_scattered_iovecs() {
    // Writes "abc" + "" + "de" as three iovecs, reads 5 bytes of stdin into 2 + 3 byte iovecs.
    let module = probe(
        r#"(block (result i32)
          (i32.store (i32.const 200) (i32.const 0x64636261))
          (i32.store8 (i32.const 204) (i32.const 0x65))
          (drop (call $iov (i32.const 0) (i32.const 200) (i32.const 3)))
          (drop (call $iov (i32.const 8) (i32.const 0) (i32.const 0)))
          (drop (call $iov (i32.const 16) (i32.const 203) (i32.const 2)))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 3) (i32.const 100)))
          (drop (call $iov (i32.const 0) (i32.const 300) (i32.const 2)))
          (drop (call $iov (i32.const 8) (i32.const 400) (i32.const 3)))
          (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 104)))
          (call $out (i32.const 300) (i32.const 2))
          (call $out (i32.const 400) (i32.const 3))
          (i32.add (i32.load (i32.const 100)) (i32.mul (i32.const 10) (i32.load (i32.const 104)))))"#,
    );
    let out = run(&module, StdioHost::new(["probe"]).with_stdin(b"VWXYZ!"), TaskLimits::default());
    assert_eq!(out.stdout_str(), "abcdeVWXYZ");
    assert_eq!(out.status.code, 5 + 10 * 5);
}

#[test]
fn descriptor_calls_answer_ebadf_or_enosys() {
    // No preopens: libc's scan from fd 3 stops at once.
    assert_eq!(errno_exit("(call $fd_prestat_get (i32.const 3) (i32.const 0))"), errno(Errno::Badf));
    assert_eq!(errno_exit("(call $fd_prestat_dir_name (i32.const 3) (i32.const 0) (i32.const 10))"), 8);
    assert_eq!(errno_exit("(call $fd_fdstat_get (i32.const 1) (i32.const 0))"), 0);
    assert_eq!(errno_exit("(call $fd_fdstat_get (i32.const 7) (i32.const 0))"), errno(Errno::Badf));
    // Even an empty write checks the descriptor.
    assert_eq!(errno_exit("(call $fd_write (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 16))"), 8);
    assert_eq!(errno_exit("(call $fd_read (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 16))"), 8);
    assert_eq!(errno_exit("(call $fd_read (i32.const 1) (call $iov (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 1) (i32.const 16))"), 8);
    assert_eq!(
        errno_exit("(call $fd_write (i32.const 9) (call $iov (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 1) (i32.const 16))"),
        errno(Errno::Badf)
    );
    assert_eq!(errno_exit("(call $fd_seek (i32.const 1) (i64.const 0) (i32.const 0) (i32.const 0))"), 52);
    assert_eq!(errno_exit("(call $fd_seek (i32.const 5) (i64.const 0) (i32.const 0) (i32.const 0))"), 8);
    assert_eq!(
        errno_exit("(call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))"),
        errno(Errno::Badf)
    );
    assert_eq!(
        errno_exit("(call $path_open (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))"),
        errno(Errno::NotDir)
    );
    assert_eq!(errno_exit("(call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0))"), 52);
}

#[test]
fn filesystem_calls_default_to_ebadf_enotdir_or_enosys() {
    // `StdioHost` implements none of them: the trait's defaults answer.
    let nosys = errno(Errno::NoSys);
    let (badf, notdir, inval) = (errno(Errno::Badf), errno(Errno::NotDir), errno(Errno::Inval));
    let cases = [
        ("(call $fd_tell (i32.const 1) (i32.const 0))", nosys),
        ("(call $fd_tell (i32.const 9) (i32.const 0))", badf),
        ("(call $fd_readdir (i32.const 1) (i32.const 0) (i32.const 10) (i64.const 0) (i32.const 16))", nosys),
        ("(call $fd_readdir (i32.const 9) (i32.const 0) (i32.const 10) (i64.const 0) (i32.const 16))", badf),
        ("(call $fd_filestat_get (i32.const 2) (i32.const 0))", nosys),
        ("(call $fd_renumber (i32.const 1) (i32.const 2))", nosys),
        ("(call $fd_renumber (i32.const 9) (i32.const 2))", badf),
        (
            "(call $fd_pread (i32.const 0) (call $iov (i32.const 0) (i32.const 100) (i32.const 4)) (i32.const 1) (i64.const 0) (i32.const 16))",
            nosys,
        ),
        ("(call $path_filestat_get (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 100))", notdir),
        ("(call $path_filestat_get (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 100))", badf),
        ("(call $path_readlink (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 100) (i32.const 8) (i32.const 16))", notdir),
        ("(call $path_symlink (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 1))", notdir),
        ("(call $proc_raise (i32.const 6))", nosys),
        // poll_oneoff: no subscriptions, too many
        ("(call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))", inval),
        ("(call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const 4097) (i32.const 0))", inval),
    ];
    for (case, expected) in cases {
        assert_eq!(errno_exit(case), expected, "{case}");
    }
}

#[test]
fn fdstat_describes_stdio() {
    let module = probe(
        r#"(block (result i32)
          (drop (call $fd_fdstat_get (i32.const 0) (i32.const 100)))
          (drop (call $fd_fdstat_get (i32.const 2) (i32.const 200)))
          (call $out (i32.const 100) (i32.const 24))
          (call $out (i32.const 200) (i32.const 24))
          (i32.const 0))"#,
    );
    let out = run_args(&module, &["probe"]);
    let expected_stdin = StdioHost::new(["x"]).fd_fdstat_get(0).unwrap().encode();
    let expected_stderr = StdioHost::new(["x"]).fd_fdstat_get(2).unwrap().encode();
    assert_eq!(&out.stdout[..24], &expected_stdin);
    assert_eq!(&out.stdout[24..], &expected_stderr);
    assert_ne!(expected_stdin, expected_stderr);
    assert_eq!(FDFLAGS_APPEND & u16::from_le_bytes([out.stdout[2], out.stdout[3]]), 0);
}

#[test]
fn closing_stdout_makes_writes_ebadf() {
    let module = probe(
        r#"(block (result i32)
          (if (call $fd_close (i32.const 1)) (then (call $proc_exit (i32.const 100))))
          (if (i32.ne (call $fd_close (i32.const 1)) (i32.const 8)) (then (call $proc_exit (i32.const 101))))
          (call $fd_write (i32.const 1) (call $iov (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 1) (i32.const 16)))"#,
    );
    assert_eq!(run_args(&module, &["probe"]).status.code, errno(Errno::Badf));
}

#[test]
fn clocks_report_the_injected_time() {
    let module = probe(
        r#"(block (result i32)
          (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 100)))
          (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 108)))
          (drop (call $clock_res_get (i32.const 1) (i32.const 116)))
          (call $out (i32.const 100) (i32.const 24))
          (call $clock_time_get (i32.const 9) (i64.const 1) (i32.const 100)))"#,
    );
    let mut host = StdioHost::new(["clock"]).with_stdin(b"");
    host.set_time(123_456_789, 1_700_000_000_000_000_000);
    let out = run(&module, host, TaskLimits::default());
    assert_eq!(out.status.code, errno(Errno::Inval), "unknown clock id");
    let word = |i: usize| u64::from_le_bytes(out.stdout[8 * i..8 * i + 8].try_into().unwrap());
    assert_eq!((word(0), word(1), word(2)), (123_456_789, 1_700_000_000_000_000_000, 1));
}

#[test]
fn random_get_returns_the_injected_entropy() {
    let module = probe(
        r#"(block (result i32)
          (drop (call $random_get (i32.const 100) (i32.const 37)))
          (call $out (i32.const 100) (i32.const 37))
          (call $random_get (i32.const 0) (i32.const 0)))"#,
    );
    let out = run(&module, StdioHost::new(["rand"]).with_stdin(b"").with_seed(42), TaskLimits::default());
    assert_eq!(out.status.code, 0);
    let mut expected = [0u8; 37];
    StdioHost::new(["x"]).with_seed(42).random_get(&mut expected).unwrap();
    assert_eq!(out.stdout, expected);
    assert_ne!(expected, [0u8; 37]);
}

#[test]
fn args_and_environ_are_nul_terminated_lists() {
    let module = probe(
        r#"(block (result i32)
          (drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
          (drop (call $environ_get (i32.const 100) (i32.const 1000)))
          (call $out (i32.const 0) (i32.const 8))
          (call $out (i32.const 1000) (i32.load (i32.const 4)))
          (i32.sub (i32.load (i32.const 104)) (i32.load (i32.const 100))))"#,
    );
    let host = StdioHost::new(["env"]).with_environ(["A=1", "LONGER=two"]).with_stdin(b"");
    let out = run(&module, host, TaskLimits::default());
    assert_eq!(&out.stdout[..8], &[2, 0, 0, 0, 15, 0, 0, 0]);
    assert_eq!(&out.stdout[8..], b"A=1\0LONGER=two\0");
    assert_eq!(out.status.code, 4, "the second pointer follows the first string and its NUL");
}

#[test]
fn sched_yield_ends_the_slice() {
    let module = probe(
        r#"(block (result i32)
          (drop (call $sched_yield))
          (drop (call $sched_yield))
          (call $sched_yield))"#,
    );
    let mut task = spawn(&module, StdioHost::new(["yield"]), TaskLimits::default());
    assert_eq!(task.poll(), TaskState::Running);
    assert_eq!(task.poll(), TaskState::Running);
    assert_eq!(task.poll(), TaskState::Running);
    assert_eq!(task.poll(), TaskState::Ready(ExitStatus { code: 0, reason: ExitReason::Exited }));
    assert_eq!(task.usage().slices, 4);
}

/// A WASI reactor driven as a program, as CPython for WASI is: `_initialize` first when it
/// exports one, then `run`, whose result is the status; `host::call` answers "no host" (-1).
#[test]
fn a_reactor_runs_initialize_then_run_whose_result_is_its_status() {
    let reactor = |initialize: bool| {
        let init = if initialize { r#"(func (export "_initialize") (global.set $ready (i32.const 1)))"# } else { "" };
        wat(&format!(
            r#"(module
              (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
              (import "host" "call" (func $call (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (global $ready (mut i32) (i32.const 0))
              (data (i32.const 16) "ready\n")
              (data (i32.const 32) "not initialized\n")
              {init}
              (func (export "run") (result i32)
                (i32.store (i32.const 0) (select (i32.const 16) (i32.const 32) (global.get $ready)))
                (i32.store (i32.const 4) (select (i32.const 6) (i32.const 16) (global.get $ready)))
                (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                ;; The door is closed: -1, so the status is 300 - 1 = 299, a byte: 43.
                (i32.add (i32.const 300) (call $call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))"#
        ))
    };
    let out = run(&reactor(true), StdioHost::new(["reactor"]), TaskLimits::default());
    assert_eq!(out.status, ExitStatus { code: 43, reason: ExitReason::Exited });
    assert_eq!(out.stdout_str(), "ready\n");
    let out = run(&reactor(false), StdioHost::new(["reactor"]), TaskLimits::default());
    assert_eq!((out.status.code, out.stdout_str()), (43, "not initialized\n"));
}

/// Exception handling is on (CPython for WASI unwinds with it): a thrown exception is caught
/// with its payload, and one nobody catches is a trap the guest's status reports.
#[test]
fn exceptions_are_thrown_and_caught() {
    let guest = |catch: bool| {
        let body = if catch {
            "(block $caught (result i32) (try_table (catch $oops $caught) (throw $oops (i32.const 42))) (unreachable))"
        } else {
            "(throw $oops (i32.const 42))"
        };
        wat(&format!(
            r#"(module
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (tag $oops (param i32))
              (memory (export "memory") 1)
              (func (export "_start") (call $exit {body})))"#
        ))
    };
    let out = run(&guest(true), StdioHost::new(["throws"]), TaskLimits::default());
    assert_eq!(out.status, ExitStatus { code: 42, reason: ExitReason::Exited });
    let out = run(&guest(false), StdioHost::new(["throws"]), TaskLimits::default());
    assert!(matches!(out.status.reason, ExitReason::Trap { .. }), "{:?}", out.status);
}

#[test]
fn modules_the_runtime_cannot_run_are_refused() {
    let runtime = runtime();
    assert!(matches!(runtime.compile(b"\0asm garbage"), Err(RuntimeError::Compile(_))));
    let reactor = wat(r#"(module (memory (export "memory") 1) (func (export "_initialize")))"#);
    assert_eq!(runtime.compile(&reactor).unwrap_err(), RuntimeError::NotACommand);
    let wrong_start = wat(r#"(module (func (export "_start") (param i32)))"#);
    assert_eq!(runtime.compile(&wrong_start).unwrap_err(), RuntimeError::NotACommand);
    let unknown = wat(r#"(module (import "host_process" "spawn" (func)) (func (export "_start")))"#);
    match runtime.compile(&unknown) {
        Err(RuntimeError::Link(message)) => assert!(message.contains("host_process"), "{message}"),
        other => panic!("expected a link error, got {other:?}"),
    }
    let mistyped = wat(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
        (func (export "_start")))"#);
    assert!(matches!(runtime.compile(&mistyped), Err(RuntimeError::Link(_))));
}

#[test]
fn a_module_without_memory_gets_efault() {
    let module = wat(r#"(module
        (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (func (export "_start") (call $exit (call $sizes (i32.const 0) (i32.const 4)))))"#);
    assert_eq!(run_args(&module, &["nomem"]).status.code, errno(Errno::Fault));
}

/// A host with one host function: it upper-cases a frame, the first time after making the
/// guest wait once (so the door's retry is exercised), and counts the frames it is asked.
struct UppercaseHost {
    stdio: StdioHost,
    asked: Vec<Vec<u8>>,
}

impl WasiHost for UppercaseHost {
    fn args(&self) -> &[Vec<u8>] {
        self.stdio.args()
    }
    fn environ(&self) -> &[Vec<u8>] {
        self.stdio.environ()
    }
    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno> {
        self.stdio.clock_res_get(clock)
    }
    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno> {
        self.stdio.clock_time_get(clock, precision_ns)
    }
    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        self.stdio.random_get(buf)
    }
    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        self.stdio.fd_write(fd, data)
    }
    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        self.stdio.fd_read(fd, buf)
    }
    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno> {
        self.stdio.fd_close(fd)
    }
    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno> {
        self.stdio.fd_fdstat_get(fd)
    }
    fn host_call(&mut self, frame: &[u8]) -> SysResult<Vec<u8>> {
        self.asked.push(frame.to_vec());
        if self.asked.len() == 1 {
            return Err(SysError::WouldBlock(WaitReason::Permission));
        }
        Ok(frame.to_ascii_uppercase())
    }
}

/// `host::call` passes a frame to the host's function and copies the answer into memory the
/// guest's `host_alloc` gives, retrying while the host makes it wait; a frame over the cap, a
/// bad result pointer or a failed allocation answer -2 without a fault.
#[test]
fn the_host_door_passes_a_frame_and_copies_the_answer_in() {
    let guest = |frame_len: &str, answer_at: &str, alloc: &str| {
        wat(&format!(
            r#"(module
              (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
              (import "host" "call" (func $call (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 0) "ping")
              (func (export "host_alloc") (param i32) (result i32) {alloc})
              (func (export "run") (result i32) (local $r i32)
                (local.set $r (call $call (i32.const 0) {frame_len} {answer_at} (i32.const 68)))
                (if (i32.eqz (local.get $r)) (then
                  (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))))
                (i32.add (i32.const 10) (local.get $r))))"#
        ))
    };
    let host = || UppercaseHost { stdio: StdioHost::new(["door"]), asked: Vec::new() };
    let runtime: Runtime<UppercaseHost> = Runtime::new(RuntimeConfig::default()).unwrap();
    let run_guest = |wasm: &[u8]| {
        let mut task = runtime.compile(wasm).unwrap().spawn(host(), TaskLimits::default()).unwrap();
        let status = loop {
            match task.poll() {
                TaskState::Ready(status) => break status,
                TaskState::Running | TaskState::Pending(WaitReason::Permission) => {}
                other => panic!("{other:?}"),
            }
        };
        let host = task.host();
        (status.code, String::from_utf8_lossy(host.stdio.stdout()).into_owned(), host.asked.len())
    };
    let answered = run_guest(&guest("(i32.const 4)", "(i32.const 64)", "(i32.const 1024)"));
    assert_eq!(answered, (10, "PING".to_owned(), 2), "the frame asked twice: once waited on, once answered");
    let too_large = run_guest(&guest("(i32.const 1048577)", "(i32.const 64)", "(i32.const 1024)"));
    assert_eq!(too_large, (8, String::new(), 0));
    let bad_pointer = run_guest(&guest("(i32.const 4)", "(i32.const 65535)", "(i32.const 1024)"));
    assert_eq!(bad_pointer, (8, String::new(), 0));
    let no_memory = run_guest(&guest("(i32.const 4)", "(i32.const 64)", "(i32.const 0)"));
    assert_eq!(no_memory, (8, String::new(), 2));
}
