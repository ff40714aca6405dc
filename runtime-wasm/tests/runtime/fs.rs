//! The filesystem and polling calls against `MemFsHost`: exact bytes the guest sees, retries of
//! blocked polls, and errnos for bad pointers and arguments.

use runtime_wasm::{
    ClockId, Errno, ExitReason, Subscription, SubscriptionKind, TaskState, WaitReason, MAX_PATH_BYTES,
    MAX_POLL_SUBSCRIPTIONS,
};

use crate::memfs::{run, run_to_end, spawn, MemFsHost, Node, TIME_STEP};
use crate::support::{wat, wat_fixture};

fn errno(e: Errno) -> u32 {
    u32::from(e.raw())
}

fn u32le(value: u32) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

fn u64le(value: u64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

/// A `__wasi_dirent_t` header and name, laid out by hand.
fn dirent(next: u64, ino: u64, filetype: u8, name: &str) -> Vec<u8> {
    let namlen = u32::try_from(name.len()).unwrap();
    [u64le(next), u64le(ino), u32le(namlen), vec![filetype, 0, 0, 0], name.as_bytes().to_vec()].concat()
}

/// A `__wasi_filestat_t`, laid out by hand.
fn filestat(ino: u64, filetype: u8, size: u64) -> Vec<u8> {
    let atim = ino * TIME_STEP;
    [
        u64le(1),
        u64le(ino),
        vec![filetype, 0, 0, 0, 0, 0, 0, 0],
        u64le(1),
        u64le(size),
        u64le(atim),
        u64le(atim + 1),
        u64le(atim + 2),
    ]
    .concat()
}

/// A `__wasi_event_t`, laid out by hand.
fn event(userdata: u64, error: u16, kind: u8, nbytes: u64, flags: u16) -> Vec<u8> {
    [
        u64le(userdata),
        error.to_le_bytes().to_vec(),
        vec![kind, 0, 0, 0, 0, 0],
        u64le(nbytes),
        u32le(u32::from(flags)),
        vec![0; 4],
    ]
    .concat()
}

#[test]
fn a_file_is_created_written_seeked_and_read() {
    let (out, host) = run(&wat_fixture("fs_file"), MemFsHost::new(&["fs_file"]));
    assert_eq!(out.status.reason, ExitReason::Exited, "{:?} {}", out.status, out.stderr_str());
    assert_eq!(out.status.code, 0);
    let expected = [
        u32le(4),
        u32le(17),
        u64le(7),
        u32le(4),
        b"wasm".to_vec(),
        u64le(11),
        u64le(12),
        u32le(5),
        b"world".to_vec(),
        u32le(0),
        u32le(5),
        u64le(17),
        u32le(9),
        b"HOWDY, wa".to_vec(),
        u32le(errno(Errno::NoEnt)),
    ]
    .concat();
    assert_eq!(out.stdout, expected);
    assert_eq!(host.node("notes.txt"), Some(&Node::File(b"HOWDY, wasm world".to_vec())));
    assert_eq!(host.open_fds(), vec![3], "the guest closed its descriptor");
    assert_eq!(host.node("missing"), None);
}

#[test]
fn readdir_truncates_the_last_entry_and_resumes_from_a_cookie() {
    let mut host = MemFsHost::new(&["ls"])
        .with("a", Node::File(b"1".to_vec()))
        .with("bb", Node::Dir)
        .with("ccc", Node::Symlink(b"a".to_vec()))
        .with("dddd", Node::File(Vec::new()))
        .with("bb/inner", Node::File(Vec::new()));
    // One entry per host call: the runtime has to ask again to fill the guest's buffer.
    host.readdir_batch = 1;
    let (out, host) = run(&wat_fixture("fs_readdir"), host);
    assert_eq!(out.status.code, 0, "{:?} {}", out.status, out.stderr_str());
    let a = dirent(1, 2, 4, "a");
    let bb = dirent(2, 3, 3, "bb");
    let ccc = dirent(3, 4, 7, "ccc");
    let dddd = dirent(4, 5, 4, "dddd");
    assert_eq!((a.len(), bb.len(), ccc.len(), dddd.len()), (25, 26, 27, 28));
    let expected = [
        // 60 bytes: a, bb and the first 9 bytes of ccc's header; bufused == buf_len means "more".
        u32le(60),
        a,
        bb,
        ccc[..9].to_vec(),
        // From cookie 2: ccc and dddd, 55 < 60 bytes: the end.
        u32le(55),
        ccc,
        dddd,
        // A zero-length buffer holds nothing (and "more" follows), past the end is empty.
        u32le(0),
        u32le(0),
    ]
    .concat();
    assert_eq!(out.stdout, expected);
    // 3 calls to fill the first buffer, 3 for the second (the last one finds the end), one for
    // the empty buffer and one past the end.
    assert_eq!(host.readdir_calls, 8);
}

#[test]
fn filestat_and_readlink_bytes() {
    let host = MemFsHost::new(&["stat"])
        .with("notes.txt", Node::File(b"hello".to_vec()))
        .with("link", Node::Symlink(b"notes.txt".to_vec()));
    let (out, _) = run(&wat_fixture("fs_stat"), host);
    assert_eq!(out.status.code, 0, "{:?} {}", out.status, out.stderr_str());
    let expected = [
        filestat(2, 4, 5),
        u32le(5),
        b"notes?".to_vec(),
        u32le(9),
        b"notes.txt".to_vec(),
        filestat(1, 3, 0),
        u32le(errno(Errno::NoEnt)),
        u32le(errno(Errno::Inval)),
        u32le(errno(Errno::Badf)),
    ]
    .concat();
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_clock_poll_blocks_until_the_host_moves_time() {
    let mut host = MemFsHost::new(&["sleep"]);
    host.stdio.set_time(5_000, 0);
    let mut task = spawn(&wat_fixture("sleep"), host);
    assert_eq!(task.run_until_blocked(100), TaskState::Pending(WaitReason::Sleep { until_ns: 1_005_000 }));
    // The relative 1 ms became an absolute deadline once, when the call started.
    let deadline = Subscription {
        userdata: 0x0102_0304_0506_0708,
        kind: SubscriptionKind::Clock {
            id: ClockId::Monotonic,
            timeout_ns: 1_005_000,
            precision_ns: 0,
            absolute: true,
        },
    };
    assert_eq!(task.host().last_subscriptions, vec![deadline]);
    task.host().stdio.set_time(1_004_999, 0);
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::Sleep { until_ns: 1_005_000 }));
    assert_eq!(task.host().last_subscriptions, vec![deadline], "a retry waits for the same deadline");
    task.host().stdio.set_time(1_005_000, 0);
    // The first poll completes; the second waits for the absolute time 5 ms.
    assert_eq!(task.run_until_blocked(100), TaskState::Pending(WaitReason::Sleep { until_ns: 5_000_000 }));
    assert_eq!(task.host().stdio.stdout(), [u32le(1), event(0x0102_0304_0506_0708, 0, 0, 0, 0)].concat());
    task.host().stdio.set_time(5_000_000, 0);
    let out = run_to_end(&mut task);
    assert_eq!(out.status.code, 0, "{:?}", out.status);
    assert_eq!(out.stdout[36..], [u32le(1), event(7, 0, 0, 0, 0)].concat());
    assert_eq!(task.host().poll_calls, 5);
}

/// A module importing the filesystem and polling calls; `_start` exits with the value of `body`
/// (an `i32` expression). Memory is five pages (327680 bytes); "notes.txt" is at 1024 and
/// "link" at 1040. `$out(ptr, len)` writes memory to stdout.
fn fs_probe(body: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_pread" (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_pwrite" (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_tell" (func $fd_tell (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_open"
          (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_filestat_get"
          (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_readlink"
          (func $path_readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_create_directory"
          (func $path_create_directory (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_unlink_file" (func $path_unlink_file (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_rename"
          (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_raise" (func $proc_raise (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
        (memory (export "memory") 5)
        (data (i32.const 1024) "notes.txt")
        (data (i32.const 1040) "link")
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

fn fs_host() -> MemFsHost {
    MemFsHost::new(&["probe"])
        .with("notes.txt", Node::File(b"hello".to_vec()))
        .with("link", Node::Symlink(b"notes.txt".to_vec()))
}

fn probe_exit(body: &str) -> (u32, MemFsHost) {
    let (out, host) = run(&fs_probe(body), fs_host());
    assert_eq!(out.status.reason, ExitReason::Exited, "{body}: {:?} {}", out.status, out.stderr_str());
    (out.status.code, host)
}

#[test]
fn bad_pointers_are_efault_and_have_no_effect() {
    let cases = [
        // path_open: the result pointer, the path
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 9) (i32.const 1) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 327677))",
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 327675) (i32.const 10) (i32.const 1) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const -1) (i32.const 2) (i32.const 1) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        // fd_readdir: the buffer, bufused
        "(call $fd_readdir (i32.const 3) (i32.const 327670) (i32.const 60) (i64.const 0) (i32.const 16))",
        "(call $fd_readdir (i32.const 3) (i32.const 0) (i32.const 10) (i64.const 0) (i32.const -1))",
        // offsets and stats
        "(call $fd_seek (i32.const 3) (i64.const 0) (i32.const 0) (i32.const 327676))",
        "(call $fd_tell (i32.const 3) (i32.const -4))",
        "(call $fd_filestat_get (i32.const 3) (i32.const 327617))",
        "(call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 9) (i32.const 327620))",
        "(call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 327679) (i32.const 9) (i32.const 0))",
        // path_readlink: the buffer, bufused, the path
        "(call $path_readlink (i32.const 3) (i32.const 1040) (i32.const 4) (i32.const 327670) (i32.const 20) (i32.const 16))",
        "(call $path_readlink (i32.const 3) (i32.const 1040) (i32.const 4) (i32.const 0) (i32.const 20) (i32.const 327679))",
        "(call $path_readlink (i32.const 3) (i32.const 327679) (i32.const 4) (i32.const 0) (i32.const 20) (i32.const 16))",
        // pread / pwrite: a buffer, the result
        "(call $fd_pread (i32.const 3) (call $iov (i32.const 0) (i32.const 327000) (i32.const 1000)) (i32.const 1) (i64.const 0) (i32.const 16))",
        "(call $fd_pwrite (i32.const 3) (call $iov (i32.const 0) (i32.const 100) (i32.const 1)) (i32.const 1) (i64.const 0) (i32.const -2))",
        // path calls with a path outside memory
        "(call $path_create_directory (i32.const 3) (i32.const 327680) (i32.const 1))",
        "(call $path_unlink_file (i32.const 3) (i32.const -9) (i32.const 9))",
        "(call $path_rename (i32.const 3) (i32.const 1024) (i32.const 9) (i32.const 3) (i32.const 327679) (i32.const 2))",
        "(call $path_symlink (i32.const 327679) (i32.const 9) (i32.const 3) (i32.const 1040) (i32.const 4))",
        // poll_oneoff: subscriptions, events, nevents
        "(call $poll_oneoff (i32.const 327633) (i32.const 0) (i32.const 1) (i32.const 16))",
        "(call $poll_oneoff (i32.const 0) (i32.const 327649) (i32.const 1) (i32.const 16))",
        "(call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 327677))",
        "(call $poll_oneoff (i32.const 0) (i32.const 200000) (i32.const 4096) (i32.const 16))",
    ];
    for case in cases {
        let (code, host) = probe_exit(case);
        assert_eq!(code, errno(Errno::Fault), "{case}");
        assert_eq!(host.open_fds(), vec![3], "{case}");
        assert_eq!(host.node("notes.txt"), Some(&Node::File(b"hello".to_vec())), "{case}");
        assert_eq!(host.poll_calls, 0, "{case}");
    }
    // A path_open that faults on its result pointer creates nothing.
    let (code, host) = probe_exit(
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1040) (i32.const 3) (i32.const 1) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const -1))",
    );
    assert_eq!(code, errno(Errno::Fault));
    assert_eq!(host.node("lin"), None);
}

#[test]
fn paths_are_bounded() {
    let at_limit = format!(
        "(call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 2000) (i32.const {MAX_PATH_BYTES}) (i32.const 0))"
    );
    assert_eq!(probe_exit(&at_limit).0, errno(Errno::NoEnt));
    let beyond = format!(
        "(call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 2000) (i32.const {}) (i32.const 0))",
        MAX_PATH_BYTES + 1
    );
    assert_eq!(probe_exit(&beyond).0, errno(Errno::NameTooLong));
    let open_beyond = format!(
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 2000) (i32.const {}) (i32.const 1) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        MAX_PATH_BYTES + 1
    );
    let (code, host) = probe_exit(&open_beyond);
    assert_eq!(code, errno(Errno::NameTooLong));
    assert_eq!(host.open_fds(), vec![3]);
}

#[test]
fn subscription_counts_are_bounded() {
    let poll = |n: u32| {
        format!(
            "(memory.fill (i32.const 1024) (i32.const 0) (i32.const 32))
             (if (result i32) (call $poll_oneoff (i32.const 0) (i32.const 196608) (i32.const {n}) (i32.const 16))
               (then (i32.const -1)) (else (i32.load (i32.const 16))))"
        )
    };
    assert_eq!(probe_exit("(call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const 0) (i32.const 16))").0, 28);
    // 4096 zeroed subscriptions (the data segments cleared first): realtime clocks due now,
    // every one fires.
    let (code, host) = probe_exit(&poll(MAX_POLL_SUBSCRIPTIONS));
    assert_eq!(code, MAX_POLL_SUBSCRIPTIONS);
    assert_eq!(host.poll_calls, 1);
    let (code, host) = probe_exit(&format!(
        "(call $poll_oneoff (i32.const 0) (i32.const 196608) (i32.const {}) (i32.const 16))",
        MAX_POLL_SUBSCRIPTIONS + 1
    ));
    assert_eq!(code, errno(Errno::Inval));
    assert_eq!(host.poll_calls, 0);
    assert_eq!(probe_exit("(call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const -1) (i32.const 16))").0, 28);
}

#[test]
fn malformed_arguments_are_einval() {
    let cases = [
        // an unknown subscription tag, an unknown clock
        "(block (result i32) (i32.store8 (i32.const 8) (i32.const 3)) (call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 16)))",
        "(block (result i32) (i32.store (i32.const 16) (i32.const 9)) (call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 16)))",
        // whence
        "(call $fd_seek (i32.const 3) (i64.const 0) (i32.const 3) (i32.const 16))",
        "(call $fd_seek (i32.const 3) (i64.const 0) (i32.const 256) (i32.const 16))",
        // flags WASI does not define
        "(call $path_open (i32.const 3) (i32.const 2) (i32.const 1024) (i32.const 9) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 9) (i32.const 16) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 9) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 32) (i32.const 0))",
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 9) (i32.const 0x10001) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        "(call $fd_fdstat_set_flags (i32.const 3) (i32.const 0x20))",
        "(call $proc_raise (i32.const 256))",
    ];
    for case in cases {
        let (code, host) = probe_exit(case);
        assert_eq!(code, errno(Errno::Inval), "{case}");
        assert_eq!(host.open_fds(), vec![3], "{case}");
    }
    // Calls `MemFsHost` leaves to the defaults.
    assert_eq!(probe_exit("(call $fd_fdstat_set_flags (i32.const 3) (i32.const 1))").0, errno(Errno::NoSys));
    assert_eq!(probe_exit("(call $fd_fdstat_set_flags (i32.const 8) (i32.const 1))").0, errno(Errno::Badf));
    assert_eq!(probe_exit("(call $proc_raise (i32.const 6))").0, errno(Errno::NoSys));
}

#[test]
fn path_calls_reach_the_host() {
    let (code, host) = probe_exit(
        r#"(block (result i32)
          (drop (call $path_create_directory (i32.const 3) (i32.const 1040) (i32.const 3)))
          (drop (call $path_symlink (i32.const 1024) (i32.const 9) (i32.const 3) (i32.const 1041) (i32.const 3)))
          (drop (call $path_unlink_file (i32.const 3) (i32.const 1040) (i32.const 4)))
          (call $path_create_directory (i32.const 3) (i32.const 1040) (i32.const 3)))"#,
    );
    assert_eq!(code, errno(Errno::Exist));
    assert_eq!(host.node("lin"), Some(&Node::Dir));
    assert_eq!(host.node("ink"), Some(&Node::Symlink(b"notes.txt".to_vec())));
    assert_eq!(host.node("link"), None);
    // Left to the default: the base descriptor is a directory, so ENOSYS.
    assert_eq!(
        probe_exit("(call $path_rename (i32.const 3) (i32.const 1024) (i32.const 9) (i32.const 3) (i32.const 1040) (i32.const 4))").0,
        errno(Errno::NoSys)
    );
}

#[test]
fn descriptor_polls_report_readiness_and_errors() {
    let module = fs_probe(
        r#"(block (result i32)
          ;; stdin (closed, empty): readable with a hangup; fd 9: EBADF
          (i64.store (i32.const 0) (i64.const 11))
          (i32.store8 (i32.const 8) (i32.const 1))
          (i32.store (i32.const 16) (i32.const 0))
          (i64.store (i32.const 48) (i64.const 12))
          (i32.store8 (i32.const 56) (i32.const 2))
          (i32.store (i32.const 64) (i32.const 9))
          (drop (call $poll_oneoff (i32.const 0) (i32.const 1000) (i32.const 2) (i32.const 2000)))
          (call $out (i32.const 2000) (i32.const 4))
          (call $out (i32.const 1000) (i32.const 64))
          (i32.const 0))"#,
    );
    let (out, _) = run(&module, fs_host());
    assert_eq!(out.status.code, 0);
    let expected = [u32le(2), event(11, 0, 1, 0, 1), event(12, 8, 2, 0, 0)].concat();
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_stdin_poll_blocks_until_input_arrives() {
    let module = fs_probe(
        r#"(block (result i32)
          ;; stdin readable, or a relative 1 s timeout on the monotonic clock
          (i64.store (i32.const 0) (i64.const 21))
          (i32.store8 (i32.const 8) (i32.const 1))
          (i32.store (i32.const 16) (i32.const 0))
          (i64.store (i32.const 48) (i64.const 22))
          (i32.store8 (i32.const 56) (i32.const 0))
          (i32.store (i32.const 64) (i32.const 1))
          (i64.store (i32.const 72) (i64.const 1000000000))
          (drop (call $poll_oneoff (i32.const 0) (i32.const 1000) (i32.const 2) (i32.const 2000)))
          (call $out (i32.const 2000) (i32.const 4))
          (call $out (i32.const 1000) (i32.const 32))
          (i32.const 0))"#,
    );
    let mut host = fs_host();
    host.stdio = runtime_wasm::StdioHost::new(["probe"]);
    let mut task = spawn(&module, host);
    assert_eq!(task.run_until_blocked(100), TaskState::Pending(WaitReason::Poll));
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::Poll));
    task.host().stdio.push_stdin(b"xyz");
    let out = run_to_end(&mut task);
    assert_eq!(out.status.code, 0);
    assert_eq!(out.stdout, [u32le(1), event(21, 0, 1, 3, 0)].concat());
}
