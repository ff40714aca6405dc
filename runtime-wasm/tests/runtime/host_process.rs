//! The 0.2.21 command packages' process calls (`host_process`: `proc_spawn_v3` with file
//! actions, `proc_waitpid_v2`, `proc_signal_mask_v2`, `umask`, `fd_setfd`, `proc_exec`) against
//! the real kernel, driven by the `spawn_v3` C fixture (see its header for the modes).

use runtime_wasm::{Errno, StdioHost, TaskLimits};
use schema::wire::{GuestFilesystemOperation, ResponsePayload};

use crate::exec::{outcome, started, Host};
use crate::support::{c_fixture, run, wat};

/// Every permission granted.
const OPEN_VM: &str = r#"{"permissions":{"fs":"allow","env":"allow","childProcess":"allow","process":"allow"}}"#;

/// A VM with the `spawn_v3` fixture and the commands it starts.
fn vm(host: &mut Host) -> String {
    let vm = host.vm(OPEN_VM);
    for command in ["spawn_v3", "hello"] {
        host.write_file(&vm, &format!("/bin/{command}"), &c_fixture(command));
    }
    // The magic of a module, then nothing a module is made of.
    host.write_file(&vm, "/bin/broken", b"\0asm not a module");
    vm
}

/// Runs `spawn_v3 MODE` to its exit: (stdout, stderr, exit code).
fn run_mode(mode: &str) -> (String, String, i32) {
    let mut host = Host::new();
    let vm = vm(&mut host);
    started(&host.execute(&vm, "p", "spawn_v3", &[mode]));
    let (stdout, stderr, code) = outcome(&host.run("p"));
    (String::from_utf8(stdout).unwrap(), stderr, code)
}

#[test]
fn spawn_v3_dup2_gives_the_child_a_pipe_for_stdout() {
    let (stdout, stderr, code) = run_mode("redirect");
    assert_eq!(
        stdout,
        "setfd: 0 0\nspawn: 0\nchild said: hello from C\nhello: err=0 exit=0 signal=0 same_pid=1 core=0\n"
    );
    assert_eq!((stderr.as_str(), code), ("", 0));
}

#[test]
fn spawn_v3_open_puts_dev_null_on_the_childs_stdio() {
    // cat would wait on the parent's stdin (never closed here) if its 0 were not /dev/null;
    // hello's line would show in the output if its 1 were not.
    let (stdout, _, code) = run_mode("null");
    assert_eq!(
        stdout,
        "spawn cat: 0\ncat: err=0 exit=0 signal=0 same_pid=1 core=0\n\
         spawn hello: 0\nhello: err=0 exit=0 signal=0 same_pid=1 core=0\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn spawn_v3_open_creates_a_file_with_the_mode_less_the_umask() {
    let mut host = Host::new();
    let vm = vm(&mut host);
    started(&host.execute(&vm, "p", "spawn_v3", &["openfile"]));
    let (stdout, _, code) = outcome(&host.run("p"));
    assert_eq!(String::from_utf8(stdout).unwrap(), "spawn: 0\nhello: err=0 exit=0 signal=0 same_pid=1 core=0\n");
    assert_eq!(code, 0);
    assert_eq!(host.read_file(&vm, "/tmp/spawned.txt").as_deref(), Some(&b"hello from C\n"[..]));
    let stat = host.fs(&vm, GuestFilesystemOperation::Stat, "/tmp/spawned.txt", None);
    let ResponsePayload::GuestFilesystemResultResponse(result) = stat else { panic!("{stat:?}") };
    assert_eq!(result.stat.unwrap().mode & 0o7777, 0o644 & !0o027);
}

#[test]
fn close_on_exec_descriptors_are_not_inherited() {
    // The child gets every descriptor of its parent but the close-on-exec one (pipe read end 4,
    // write end 5 marked, 6 a plain dup of 5); closing fd 77, not open, is no error.
    let (stdout, _, code) = run_mode("cloexec");
    assert_eq!(
        stdout,
        "setfd tagged: 8, unknown: 8\nprobe pid 2\nfd 4: open\nfd 5: closed\nfd 6: open\n\
         probe: err=0 exit=0 signal=0 same_pid=1 core=0\nspawn: 0\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn waitpid_v2_reports_exit_codes_and_signals_apart() {
    let (stdout, _, code) = run_mode("wait");
    assert_eq!(
        stdout,
        "no children: 12\n\
         exit3: err=0 exit=3 signal=0 same_pid=1 core=0\n\
         nohang: err=0 0 0 0 0\n\
         bad options: 28\n\
         bad pointer: 21\n\
         spin: err=0 exit=0 signal=9 same_pid=1 core=0\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn the_signal_mask_round_trips_is_inherited_and_holds_signals() {
    let (stdout, _, code) = run_mode("mask");
    assert_eq!(
        stdout,
        "initial: 0\nold: 0 0\n\
         blocked: TERM 1\n\
         bad how: 28\n\
         bad pointer: 21\n\
         child mask: TERM 0\n\
         showmask: err=0 exit=0 signal=0 same_pid=1 core=0\n\
         unblocked: 0 0\n\
         blocked TERM: still running\n\
         spin blocking TERM: err=0 exit=0 signal=9 same_pid=1 core=0\n\
         spin: err=0 exit=0 signal=15 same_pid=1 core=0\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn a_signal_sent_just_before_exiting_arrives() {
    // `kill(1)` signals and exits within one slice; the signal must not go with its exit.
    let (stdout, _, code) = run_mode("relay");
    assert_eq!(
        stdout,
        "killer: err=0 exit=0 signal=0 same_pid=1 core=0
spin: err=0 exit=0 signal=9 same_pid=1 core=0
"
    );
    assert_eq!(code, 0);
}

#[test]
fn unblocking_a_pending_signal_delivers_it() {
    let (stdout, _, code) = run_mode("selfpending");
    assert_eq!(stdout, "still alive\nunblocking\n");
    assert_eq!(code, 128 + 15, "SIGTERM ended it");
}

#[test]
fn the_umask_is_per_process_and_inherited() {
    let (stdout, _, code) = run_mode("umask");
    assert_eq!(
        stdout,
        "default: 22\nprevious: 22\nnow: 77\nchild umask: 77\n\
         showumask: err=0 exit=0 signal=0 same_pid=1 core=0\nmasked: 777\nbad pointer: 21\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn setpgroup_makes_the_child_lead_its_own_group() {
    let (stdout, _, code) = run_mode("group");
    assert_eq!(
        stdout,
        "kill group of a plain child: 71\nplain: err=0 exit=0 signal=9 same_pid=1 core=0\n\
         kill own group: 0\nleader: err=0 exit=0 signal=9 same_pid=1 core=0\nunknown group: 63\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn refused_spawns_start_nothing() {
    let (stdout, _, code) = run_mode("errors");
    assert_eq!(
        stdout,
        "flags: 58\n\
         ret_pid: 21\n\
         unknown action: 28\n\
         dup2 from a closed fd: 8\n\
         dup2 from a hidden preopen: 8\n\
         open without a path: 44\n\
         open a missing file: 44\n\
         chdir to a file: 54\n\
         no program: 44\n\
         unknown program: 44\n\
         not a module: 45\n\
         too many action bytes: 1\n\
         children left: 12\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn exec_replaces_the_program_in_the_same_process() {
    // A missing program or one that is no module fails and the caller goes on; then the new
    // program runs as the same pid with the descriptors that are neither close-on-exec (5) nor
    // listed (4).
    let (stdout, stderr, code) = run_mode("exec");
    assert_eq!(
        stdout, "pid 1\nexec missing: 44\nexec not a module: 45\nprobe pid 1\nfd 4: closed\nfd 5: closed\nfd 6: open\n",
        "stderr: {stderr}"
    );
    assert_eq!(code, 0);
}

#[test]
fn a_read_only_command_cannot_spawn_or_exec() {
    let mut host = Host::new();
    let vm = vm(&mut host);
    let tier = Some(schema::wire::WasmPermissionTier::ReadOnly);
    started(&host.execute_with(&vm, "p", "spawn_v3", &["redirect"], tier));
    let (stdout, _, _) = outcome(&host.run("p"));
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(stdout.contains("spawn: 21\n"), "EFAULT like the original: {stdout}");
    started(&host.execute_with(&vm, "q", "spawn_v3", &["exec"], tier));
    let (stdout, _, code) = outcome(&host.run("q"));
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(stdout.contains("exec missing: 21\n") && stdout.contains("exec returned 21\n"), "{stdout}");
    assert_eq!(code, 1);
}

/// Without a kernel (`StdioHost`), the new calls answer `ENOSYS` (exec never 0) and
/// `umask` queries the default.
#[test]
fn a_host_without_processes_answers_enosys() {
    let module = wat(r#"(module
        (import "host_process" "proc_exec"
          (func $exec (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (import "host_process" "proc_spawn_v3"
          (func $spawn (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (import "host_process" "umask" (func $umask (param i32 i32 i32) (result i32)))
        (import "host_process" "fd_setfd" (func $setfd (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "prog")
        (func (export "_start")
          (i32.store8 (i32.const 200) (call $exec (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 0)
            (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 0)))
          (i32.store8 (i32.const 201) (call $spawn (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 0)
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100)))
          (i32.store8 (i32.const 202) (call $umask (i32.const 0) (i32.const 0) (i32.const 104)))
          (i32.store8 (i32.const 210) (call $setfd (i32.const 1) (i32.const 1)))
          (call $exit (i32.add (i32.load (i32.const 200))
            (i32.mul (i32.load (i32.const 104)) (i32.const 0x1000000))))))"#);
    let out = run(&module, StdioHost::new(["p"]).with_stdin(b""), TaskLimits::default());
    let nosys = u32::from(Errno::NoSys.raw());
    let code = out.status.code;
    assert_eq!(code & 0xff, nosys, "exec");
    assert_eq!((code >> 8) & 0xff, nosys, "spawn_v3");
    assert_eq!((code >> 16) & 0xff, 0, "umask query");
    assert_eq!(code >> 24, 0o022, "the default umask");
}

#[test]
fn spawn_v3_file_actions_round_trip_through_the_abi_encoding() {
    use runtime_wasm::{decode_file_actions, encode_file_actions, FileAction, OpenFlags};
    let actions = vec![
        FileAction::Open {
            fd: 0,
            path: "/dev/null".into(),
            flags: OpenFlags { read: true, follow: true, ..OpenFlags::default() },
            mode: 0,
        },
        FileAction::Dup2 { from: 7, to: 1 },
        FileAction::Chdir { path: "/tmp".into() },
        FileAction::Fchdir { fd: 3 },
        FileAction::CloseFrom { fd: 10 },
        FileAction::Close { fd: 7 },
    ];
    assert_eq!(decode_file_actions(&encode_file_actions(&actions)), Ok(actions));
}
