//! The WAT fixtures' exact output and exit codes, and stdin delivered across suspensions.

use runtime_wasm::{ExitReason, ExitStatus, StdioHost, TaskLimits, TaskState, WaitReason};

use crate::support::{payload, run, run_args, run_to_end, spawn, wat_fixture};

#[test]
fn hello_writes_exactly_its_greeting() {
    let out = run_args(&wat_fixture("hello"), &["hello"]);
    assert_eq!(out.status, ExitStatus { code: 0, reason: ExitReason::Exited });
    assert!(out.status.success());
    assert_eq!(out.stdout_str(), "hello, world\n");
    assert_eq!(out.stderr_str(), "");
}

#[test]
fn echo_joins_its_arguments() {
    let out = run_args(&wat_fixture("echo"), &["echo", "a", "bc", "d e", "ünï"]);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout_str(), "a bc d e ünï\n");
}

#[test]
fn echo_without_arguments_prints_a_newline() {
    let out = run_args(&wat_fixture("echo"), &["echo"]);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout_str(), "\n");
}

#[test]
fn exit3_exits_with_code_3_and_runs_nothing_after() {
    let mut task = spawn(&wat_fixture("exit3"), StdioHost::new(["exit3"]), TaskLimits::default());
    let out = run_to_end(&mut task);
    // `unreachable` after proc_exit would make this a trap with code 134.
    assert_eq!(out.status, ExitStatus { code: 3, reason: ExitReason::Exited });
    assert!(!out.status.success());
    assert_eq!(task.host().exit_code(), Some(3));
    assert_eq!(out.stderr_str(), "", "a voluntary exit adds no runtime message");
}

#[test]
fn cat_copies_buffered_stdin_exactly() {
    let input = payload(50_000, 1);
    let out = run(&wat_fixture("cat"), StdioHost::new(["cat"]).with_stdin(&input), TaskLimits::default());
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout, input);
}

#[test]
fn cat_resumes_after_each_chunk_across_pending() {
    let input = payload(20_000, 2);
    let mut task = spawn(&wat_fixture("cat"), StdioHost::new(["cat"]), TaskLimits::default());
    let mut fed = 0;
    let mut pendings = 0;
    for chunk in input.chunks(1_237) {
        assert_eq!(task.run_until_blocked(1_000), TaskState::Pending(WaitReason::ReadStdin));
        pendings += 1;
        // Everything fed so far has been echoed before the guest blocked again.
        assert_eq!(task.host().stdout(), &input[..fed]);
        task.host().push_stdin(chunk);
        fed += chunk.len();
    }
    assert_eq!(task.run_until_blocked(1_000), TaskState::Pending(WaitReason::ReadStdin));
    task.host().close_stdin();
    let out = run_to_end(&mut task);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout, input);
    assert_eq!(pendings, input.len().div_ceil(1_237));
}

#[test]
fn cat_chunks_larger_than_its_buffer_take_several_reads() {
    // The guest reads 4096 bytes at a time: one 10 000-byte push is consumed without blocking.
    let input = payload(10_000, 3);
    let mut task = spawn(&wat_fixture("cat"), StdioHost::new(["cat"]), TaskLimits::default());
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::ReadStdin));
    task.host().push_stdin(&input);
    assert_eq!(task.run_until_blocked(1_000), TaskState::Pending(WaitReason::ReadStdin));
    assert_eq!(task.host().stdout(), &input[..]);
    assert_eq!(task.host().stdin_pending(), 0);
}

#[test]
fn cat_of_empty_stdin_waits_for_eof() {
    let mut task = spawn(&wat_fixture("cat"), StdioHost::new(["cat"]), TaskLimits::default());
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::ReadStdin));
    // Polling a blocked guest again retries the read and stays blocked.
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::ReadStdin));
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::ReadStdin));
    task.host().close_stdin();
    let out = run_to_end(&mut task);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout, b"");
    assert_eq!(out.usage.slices, 4);
}

#[test]
fn a_finished_task_keeps_answering_its_status() {
    let mut task = spawn(&wat_fixture("exit3"), StdioHost::new(["exit3"]), TaskLimits::default());
    let first = run_to_end(&mut task).status;
    assert_eq!(task.poll(), TaskState::Ready(first.clone()));
    assert_eq!(task.status(), Some(&first));
    assert_eq!(task.kill(), first, "killing a finished task changes nothing");
}

#[test]
fn tasks_and_programs_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<runtime_wasm::GuestTask<StdioHost>>();
    assert_send_sync::<runtime_wasm::Program<StdioHost>>();
    assert_send_sync::<runtime_wasm::Runtime<StdioHost>>();
    // A guest suspended on one thread resumes and finishes on another.
    let mut task = spawn(&wat_fixture("cat"), StdioHost::new(["cat"]), TaskLimits::default());
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::ReadStdin));
    let out = std::thread::spawn(move || {
        task.host().push_stdin(b"across threads");
        task.host().close_stdin();
        run_to_end(&mut task)
    })
    .join()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"across threads");
}
