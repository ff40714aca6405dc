//! Programs compiled from C with wasi-libc (`fixtures/c/build.sh`): real libc start-up, stdio
//! buffering and malloc on top of the syscall layer.

use runtime_wasm::{ExitReason, ExitStatus, StdioHost, TaskLimits, TaskState, WaitReason};

use crate::support::{c_fixture, payload, run, run_args, run_to_end, spawn};

#[test]
fn c_hello() {
    let out = run_args(&c_fixture("hello"), &["hello"]);
    assert_eq!(out.status, ExitStatus { code: 0, reason: ExitReason::Exited });
    assert_eq!(out.stdout_str(), "hello from C\n");
    assert_eq!(out.stderr_str(), "");
}

#[test]
fn c_args_and_environment() {
    let host = StdioHost::new(["/bin/args", "one", "two words"]).with_environ(["X=1", "GREETING=hi there"]);
    let out = run(&c_fixture("args"), host.with_stdin(b""), TaskLimits::default());
    assert!(out.status.success(), "{:?} {}", out.status, out.stderr_str());
    assert_eq!(out.stdout_str(), "argc=3\nargv[0]=/bin/args\nargv[1]=one\nargv[2]=two words\nGREETING=hi there\n");
    let out = run_args(&c_fixture("args"), &["args"]);
    assert_eq!(out.stdout_str(), "argc=1\nargv[0]=args\nGREETING=(unset)\n");
}

#[test]
fn c_exit_code() {
    let out = run_args(&c_fixture("exit3"), &["exit3"]);
    assert_eq!(out.status, ExitStatus { code: 3, reason: ExitReason::Exited });
}

#[test]
fn c_cat_with_chunked_stdin() {
    let input = payload(7_000, 9);
    let mut task = spawn(&c_fixture("cat"), StdioHost::new(["cat"]), TaskLimits::default());
    for chunk in input.chunks(333) {
        assert_eq!(task.run_until_blocked(1_000), TaskState::Pending(WaitReason::ReadStdin));
        task.host().push_stdin(chunk);
    }
    task.host().close_stdin();
    let out = run_to_end(&mut task);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout, input);
}

#[test]
fn c_malloc_fails_gracefully_at_the_memory_limit() {
    let limits = TaskLimits { max_wasm_memory_bytes: 4 << 20, ..TaskLimits::default() };
    let out = run(&c_fixture("oom"), StdioHost::new(["oom"]).with_stdin(b""), limits);
    assert_eq!(out.status, ExitStatus { code: 4, reason: ExitReason::Exited }, "{}", out.stderr_str());
    let blocks: u64 = out
        .stdout_str()
        .strip_prefix("allocated ")
        .and_then(|rest| rest.strip_suffix(" blocks\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {:?}", out.stdout_str()));
    // Each block is one 64 KiB page plus malloc's header: fewer blocks than pages in the limit,
    // but most of them.
    assert!((40..64).contains(&blocks), "blocks = {blocks}");
    assert!(out.usage.peak_memory_bytes <= 4 << 20);
    assert!(out.usage.peak_memory_bytes > 3 << 20);
}
