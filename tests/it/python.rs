//! Python guests (issue 16): CPython for WebAssembly run by the real binary through the
//! protocol, on the kernel, inside the wasmtime sandbox. The interpreter comes from
//! `scripts/fetch-python.sh` (through `testkit::python`), prepared by the binary's own
//! `prepare-python` as a user's install is; the first run on a machine compiles it and makes the
//! preloaded interpreter (about 3 minutes), later ones load both from the module cache.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use client::Client;
use schema::wire::*;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

/// A VM on a sidecar with the interpreter.
fn python_vm() -> (Client, OwnershipScope) {
    python_vm_with(r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#)
}

fn python_vm_with(config: &str) -> (Client, OwnershipScope) {
    python_vm_seeded(config, None)
}

/// The install, with its preloaded interpreter made (once per machine; checked once per run).
fn prepared() -> &'static Path {
    static PREPARED: OnceLock<&'static Path> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let dir = testkit::python::installed();
        let output = std::process::Command::new(binary())
            .args(["--python-dir", &dir.display().to_string(), "prepare-python"])
            .output()
            .unwrap();
        assert!(output.status.success(), "prepare-python: {}", String::from_utf8_lossy(&output.stderr));
        dir
    })
}

fn python_vm_seeded(config: &str, seed: Option<&str>) -> (Client, OwnershipScope) {
    let dir = prepared().display().to_string();
    let mut args = vec!["--python-dir", &dir];
    if let Some(seed) = seed {
        args.extend(["--seed", seed]);
    }
    let mut sidecar = Client::spawn(binary(), &args).unwrap();
    // A cold compile of the 99 MB interpreter takes minutes on a small machine.
    sidecar.timeout = Duration::from_secs(900);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, config).unwrap();
    (sidecar, OwnershipScope::vm(auth.connection_id, session, vm))
}

/// Starts `args` with `runtime: PYTHON` and `env`, checking that it started.
fn start_python(sidecar: &mut Client, scope: &OwnershipScope, id: &str, args: &[&str], env: &[(&str, &str)]) {
    let execute = ExecuteRequest {
        command: None,
        runtime: Some(GuestRuntimeKind::Python),
        env: env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect(),
        ..ExecuteRequest::command(id, "", args.iter().copied())
    };
    let started = sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
    assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
}

/// Runs `args` with `runtime: PYTHON`: (stdout, stderr, exit code).
fn python(sidecar: &mut Client, scope: &OwnershipScope, id: &str, args: &[&str]) -> (String, String, i32) {
    start_python(sidecar, scope, id, args, &[]);
    crate::wait_for_exit(sidecar, id)
}

#[test]
fn print_exit_and_traceback_as_cpython_gives_them() {
    let (mut sidecar, scope) = python_vm();
    assert_eq!(python(&mut sidecar, &scope, "p1", &["-c", "print(1+2)"]), ("3\n".into(), String::new(), 0));
    let (_, _, code) = python(&mut sidecar, &scope, "p2", &["-c", "import sys; sys.exit(4)"]);
    assert_eq!(code, 4);
    let (stdout, stderr, code) = python(&mut sidecar, &scope, "p3", &["-c", "1/0"]);
    assert_eq!((stdout.as_str(), code), ("", 1));
    assert!(stderr.starts_with("Traceback (most recent call last):"), "{stderr}");
    assert!(stderr.ends_with("ZeroDivisionError: division by zero\n"), "{stderr}");
}

fn request(sidecar: &mut Client, scope: &OwnershipScope, payload: RequestPayload) -> ResponsePayload {
    sidecar.request(scope.clone(), payload).unwrap()
}

/// Writes `content` at `path` in the VM, as the host does (`GuestFilesystemCall`).
fn write_file(sidecar: &mut Client, scope: &OwnershipScope, path: &str, content: String) {
    let write = GuestFilesystemCallRequest {
        content: Some(content),
        encoding: Some(RootFilesystemEntryEncoding::Utf8),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, path)
    };
    request(sidecar, scope, RequestPayload::GuestFilesystemCallRequest(write));
}

/// A script reads what the host wrote, writes a file the host reads back, and a path the
/// policy denies is a `PermissionError` in Python.
#[test]
fn files_go_through_the_kernel_and_its_policy() {
    let dir = prepared().display().to_string();
    let mut sidecar = Client::spawn(binary(), &["--python-dir", &dir]).unwrap();
    sidecar.timeout = Duration::from_secs(900);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let config = r#"{"permissions":{"childProcess":"allow","env":"allow",
        "fs":{"default":"allow","rules":[{"mode":"deny","operations":["read"],"paths":["/secret","/secret/**"]}]}}}"#;
    let vm = sidecar.create_vm(&auth.connection_id, &session, config).unwrap();
    let scope = OwnershipScope::vm(auth.connection_id, session, vm);
    write_file(&mut sidecar, &scope, "/data/in.txt", "from the host".into());
    write_file(&mut sidecar, &scope, "/secret/key", "key".into());
    let script = "import errno\ntext = open('/data/in.txt').read()\nopen('/data/out.txt', 'w').write(text.upper())\n\
                  try:\n    open('/secret/key').read()\nexcept PermissionError as error:\n    print('denied', error.errno == errno.EACCES)\n";
    let (stdout, stderr, code) = python(&mut sidecar, &scope, "files", &["-c", script]);
    assert_eq!((stdout.as_str(), stderr.as_str(), code), ("denied True\n", "", 0));
    let read = GuestFilesystemCallRequest {
        encoding: Some(RootFilesystemEntryEncoding::Utf8),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::ReadFile, "/data/out.txt")
    };
    match request(&mut sidecar, &scope, RequestPayload::GuestFilesystemCallRequest(read)) {
        ResponsePayload::GuestFilesystemResultResponse(result) => {
            assert_eq!(result.content.as_deref(), Some("FROM THE HOST"))
        }
        other => panic!("{other:?}"),
    }
}

/// An endless loop is stopped by the VM's fuel limit (here 10^10 instructions, a few seconds);
/// meanwhile the sidecar serves another VM's Python to its end.
#[test]
fn an_endless_loop_is_stopped_by_the_limit() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"},"limits":{"resources":{"maxWasmFuel":10000000000}}}"#;
    let (mut sidecar, scope) = python_vm_with(config);
    // A second VM on the same sidecar runs Python to its end while the first one loops.
    let session = scope.session_id().unwrap().to_owned();
    let other_vm = sidecar.create_vm(scope.connection_id(), &session, config).unwrap();
    let other = OwnershipScope::vm(scope.connection_id().to_owned(), session, other_vm);
    let start = |sidecar: &mut Client, scope: &OwnershipScope, id: &str, code: &str| {
        start_python(sidecar, scope, id, &["-c", code], &[]);
    };
    start(&mut sidecar, &scope, "spin", "while True: pass");
    start(&mut sidecar, &other, "meanwhile", "print(sum(range(100)))");
    let (mut exits, mut printed) = (Vec::new(), Vec::new());
    while exits.len() < 2 {
        match sidecar.next_event(Duration::from_secs(120)).unwrap().payload {
            EventPayload::ProcessOutputEvent(out) if out.process_id == "meanwhile" => printed.extend(out.chunk),
            EventPayload::ProcessExitedEvent(exited) => exits.push((exited.process_id, exited.exit_code)),
            _ => {}
        }
    }
    assert_eq!(exits, [("meanwhile".to_owned(), 0), ("spin".to_owned(), 124)], "the loop holds up nobody");
    assert_eq!(printed, b"4950\n");
    assert_eq!(python(&mut sidecar, &scope, "after", &["-c", "print('still here')"]).0, "still here\n");
}

/// numpy and pandas, compiled into the interpreter, import and compute.
#[test]
fn numpy_and_pandas_compute_a_known_result() {
    let (mut sidecar, scope) = python_vm();
    let script = "import numpy, pandas\nframe = pandas.DataFrame({'a': [1, 2, 3, 4], 'b': [10, 20, 30, 40]})\n\
                  print(frame.a.mean(), frame.b.sum(), numpy.arange(10).sum())\n";
    assert_eq!(python(&mut sidecar, &scope, "np", &["-c", script]), ("2.5 100 45\n".into(), String::new(), 0));
}

/// A program that names numpy or pandas starts on the preloaded interpreter, with both already
/// imported; one that does not starts on the lean one (a quick exit); a script is chosen by its
/// text. What the start-up must not share is fresh in every process: argv, the environment,
/// the random generators, the exit status.
#[test]
fn a_program_that_names_numpy_or_pandas_starts_with_them_imported() {
    let (mut sidecar, scope) = python_vm();
    // Names them only in pieces, so it does not choose the preloaded interpreter by itself.
    let imported = "import sys; print(sorted(m for m in ('n' 'umpy', 'p' 'andas') if m in sys.modules))";
    let (stdout, stderr, code) = python(&mut sidecar, &scope, "named", &["-c", &format!("{imported} # pandas")]);
    assert_eq!((stdout.as_str(), stderr.as_str(), code), ("['numpy', 'pandas']\n", "", 0));
    let (stdout, _, _) = python(&mut sidecar, &scope, "lean", &["-c", imported]);
    assert_eq!(stdout, "[]\n");

    write_file(
        &mut sidecar,
        &scope,
        "/app/stats.py",
        format!("{imported}\nimport numpy\nprint(numpy.arange(4).sum())\n"),
    );
    let (stdout, stderr, _) = python(&mut sidecar, &scope, "script", &["/app/stats.py"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("['numpy', 'pandas']\n6\n", ""));
    // Only a script's first MAX_PRELOAD_SCAN_BYTES are read to choose: an import past them runs
    // on the lean interpreter (slower, the same result).
    let padding = "#".repeat(kernel::host::python::MAX_PRELOAD_SCAN_BYTES);
    let late = format!("{imported}\n{padding}\nimport numpy\nprint(numpy.arange(4).sum())\n");
    write_file(&mut sidecar, &scope, "/app/late.py", late);
    let (stdout, stderr, _) = python(&mut sidecar, &scope, "late", &["/app/late.py"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("[]\n6\n", ""));

    let probe = "import sys, os, random, numpy\nprint(sys.argv, os.environ.get('GREETING'), random.random(), numpy.random.rand())\nexit(3)";
    let run = |sidecar: &mut Client, id: &str| {
        start_python(sidecar, &scope, id, &["-c", probe, "a", "b"], &[("GREETING", id)]);
        let (stdout, _, code) = crate::wait_for_exit(sidecar, id);
        (stdout, code)
    };
    let (first, first_code) = run(&mut sidecar, "one");
    let (second, _) = run(&mut sidecar, "two");
    assert_eq!(first_code, 3);
    assert!(first.starts_with("['-c', 'a', 'b'] one "), "{first}");
    assert!(second.starts_with("['-c', 'a', 'b'] two "), "{second}");
    let draws = |line: &str| line.split_whitespace().skip(4).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(draws(&first).len(), 2, "{first}");
    assert!(draws(&first).iter().zip(draws(&second)).all(|(a, b)| *a != b), "{first} / {second}");
}

/// Registers a toolkit `math` with `add` (two integers), `fail` and `slow` (a 200 ms timeout)
/// in the VM of `scope`.
fn register_math_tools(sidecar: &mut Client, scope: &OwnershipScope) {
    let tool = |description: &str, schema: &str| RegisteredHostCallbackDefinition {
        description: description.into(),
        input_schema: schema.into(),
        timeout_ms: None,
        examples: vec![],
    };
    let slow =
        RegisteredHostCallbackDefinition { timeout_ms: Some(200), ..tool("Never answered.", r#"{"type":"object"}"#) };
    let add_schema =
        r#"{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}"#;
    let register = RegisterHostCallbacksRequest {
        name: "math".into(),
        description: "arithmetic on the host".into(),
        command_aliases: vec![],
        registry_command_aliases: vec![],
        callbacks: [
            ("add".to_owned(), tool("Adds two integers.", add_schema)),
            ("fail".to_owned(), tool("Always fails.", r#"{"type":"object"}"#)),
            ("slow".to_owned(), slow),
        ]
        .into_iter()
        .collect(),
    };
    let registered = request(sidecar, scope, RequestPayload::RegisterHostCallbacksRequest(register));
    assert!(matches!(registered, ResponsePayload::HostCallbacksRegisteredResponse(_)), "{registered:?}");
}

/// Runs `code` while answering its host callbacks with `answer(key, input)`: (stdout, stderr,
/// exit code, the callbacks asked for).
fn python_with_tools(
    sidecar: &mut Client,
    scope: &OwnershipScope,
    id: &str,
    code: &str,
    answer: impl Fn(&str, &str) -> Option<HostCallbackResultResponse>,
) -> (String, String, i32, Vec<(String, String)>) {
    start_python(sidecar, scope, id, &["-c", code], &[]);
    let (mut output, mut asked) = (crate::ProcessOutput::default(), Vec::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(std::time::Instant::now() < deadline, "no exit in 120 s: {:?}", output.stdout_so_far());
        while let Ok(request) = sidecar.next_sidecar_request(Duration::from_millis(50)) {
            let SidecarRequestPayload::HostCallbackRequest(call) = &request.payload else { panic!("{request:?}") };
            asked.push((call.callback_key.clone(), call.input.clone()));
            if let Some(result) = answer(&call.callback_key, &call.input) {
                let result = HostCallbackResultResponse { invocation_id: call.invocation_id.clone(), ..result };
                sidecar
                    .respond_to_sidecar(&request, SidecarResponsePayload::HostCallbackResultResponse(result))
                    .unwrap();
            }
        }
        for event in sidecar.take_events() {
            if let Some((stdout, stderr, code)) = output.take(id, event) {
                return (stdout, stderr, code, asked);
            }
        }
    }
}

/// Python calls the host's registered tools through its `host::call` door (`from host import
/// tools`): the list, a call answered by the host, the host's error as `ToolError`, and a VM
/// whose policy denies `tool.invoke`. A VM with no tools has no host behind the door.
#[test]
fn python_calls_the_hosts_tools() {
    let (mut sidecar, scope) =
        python_vm_with(r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow","tool":"allow"}}"#);
    let (stdout, stderr, code) = python(&mut sidecar, &scope, "none", &["-c", "from host import tools"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("Error"), "no host behind the door: {stderr}");

    register_math_tools(&mut sidecar, &scope);
    let code = "from host import tools, ToolError\n\
                print(tools.__all__ if hasattr(tools, '__all__') else sorted(n for n in dir(tools) if n.startswith('math')))\n\
                print(tools.math_add.__doc__.splitlines()[0])\n\
                print(tools.math_add(a=2, b=3), tools.math_add(40, 2))\n\
                try:\n    tools.math_fail()\nexcept ToolError as error:\n    print(type(error).__name__, error.kind, error)\n\
                try:\n    tools.math_slow()\nexcept ToolError as error:\n    print(type(error).__name__, error.kind)\n";
    let answer = |key: &str, input: &str| {
        let result = match key {
            "math:add" => {
                let args: serde_json::Value = serde_json::from_str(input).unwrap();
                Some((args["a"].as_i64().unwrap() + args["b"].as_i64().unwrap()).to_string())
            }
            _ => None,
        };
        let error = result.is_none().then(|| "the host says no".to_owned());
        (key != "math:slow").then(|| HostCallbackResultResponse { invocation_id: String::new(), result, error })
    };
    let (stdout, stderr, code, asked) = python_with_tools(&mut sidecar, &scope, "tools", code, answer);
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        (
            "['math_add', 'math_fail', 'math_slow']\nAdds two integers.\n5 42\nToolError tool_error the host says no\n\
             ToolTimeout timeout\n",
            "",
            0
        )
    );
    let keys: Vec<&str> = asked.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["math:add", "math:add", "math:fail", "math:slow"]);
    assert_eq!(asked[0].1, r#"{"a":2,"b":3}"#);

    let (mut sidecar, scope) = python_vm_with(r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#);
    register_math_tools(&mut sidecar, &scope);
    let denied = "from host import tools, ToolDenied\ntry:\n    tools.math_add(a=1, b=1)\nexcept ToolDenied as error:\n    print(error.kind)\n";
    let (stdout, _, _, asked) = python_with_tools(&mut sidecar, &scope, "denied", denied, answer);
    assert_eq!((stdout.as_str(), asked.len()), ("denied\n", 0));
}

/// A process killed while its tool call waits on the host: the host's late answer is dropped,
/// and the next call in the VM is answered as usual.
#[test]
fn a_process_killed_during_a_tool_call_leaves_the_next_call_working() {
    let (mut sidecar, scope) =
        python_vm_with(r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow","tool":"allow"}}"#);
    register_math_tools(&mut sidecar, &scope);
    let waiting = "from host import tools\nprint(tools.math_add(a=1, b=2))";
    start_python(&mut sidecar, &scope, "waiting", &["-c", waiting], &[]);
    let asked = sidecar.next_sidecar_request(Duration::from_secs(120)).unwrap();
    let SidecarRequestPayload::HostCallbackRequest(call) = &asked.payload else { panic!("{asked:?}") };
    let kill = KillProcessRequest { process_id: "waiting".into(), signal: "SIGKILL".into() };
    request(&mut sidecar, &scope, RequestPayload::KillProcessRequest(kill));
    assert_eq!(crate::wait_for_exit(&mut sidecar, "waiting").2, 137);
    let late =
        HostCallbackResultResponse { invocation_id: call.invocation_id.clone(), result: Some("3".into()), error: None };
    sidecar.respond_to_sidecar(&asked, SidecarResponsePayload::HostCallbackResultResponse(late)).unwrap();
    let answer = |_: &str, _: &str| {
        Some(HostCallbackResultResponse { invocation_id: String::new(), result: Some("7".into()), error: None })
    };
    let code = "from host import tools\nprint(tools.math_add(a=3, b=4))";
    let (stdout, stderr, code, asked) = python_with_tools(&mut sidecar, &scope, "next", code, answer);
    assert_eq!((stdout.as_str(), stderr.as_str(), code, asked.len()), ("7\n", "", 0, 1));
}

/// A recorded run of Python calling a host tool (its `HostCallbackRequest` out, the host's
/// answer in) replays to the same frames byte for byte.
#[test]
fn a_recorded_python_run_with_tool_calls_replays_to_the_same_frames() {
    let trace = std::env::temp_dir().join(format!("sidecar-it-python-tools-{}.trace", std::process::id()));
    let dir = prepared().display().to_string();
    let mut sidecar =
        Client::spawn(binary(), &["--python-dir", &dir, "--seed", "5", "--record", trace.to_str().unwrap()]).unwrap();
    sidecar.timeout = Duration::from_secs(900);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow","tool":"allow"}}"#;
    let vm = sidecar.create_vm(&auth.connection_id, &session, config).unwrap();
    let scope = OwnershipScope::vm(auth.connection_id.clone(), session.clone(), vm.clone());
    register_math_tools(&mut sidecar, &scope);
    let code = "import random\nfrom host import tools\nprint(tools.math_add(a=random.randrange(100), b=1) > 0)\n";
    let answer = |_: &str, input: &str| {
        let args: serde_json::Value = serde_json::from_str(input).unwrap();
        let sum = args["a"].as_i64().unwrap() + args["b"].as_i64().unwrap();
        Some(HostCallbackResultResponse { invocation_id: String::new(), result: Some(sum.to_string()), error: None })
    };
    let (stdout, stderr, code, asked) = python_with_tools(&mut sidecar, &scope, "record", code, answer);
    assert_eq!((stdout.as_str(), stderr.as_str(), code, asked.len()), ("True\n", "", 0, 1));
    sidecar.dispose_vm(&auth.connection_id, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());
    crate::assert_replays(&trace, &[("SECURE_EXEC_PYTHON", &dir)]);
    let _ = std::fs::remove_file(&trace);
}

/// This build has no subprocesses (WASI has no fork): a clear error, not a hang or a crash.
#[test]
fn subprocess_is_a_clear_error() {
    let (mut sidecar, scope) = python_vm();
    let script =
        "import subprocess\ntry:\n    subprocess.run(['echo', 'hi'])\nexcept OSError as error:\n    print(error)\n";
    let (stdout, _, code) = python(&mut sidecar, &scope, "sub", &["-c", script]);
    assert_eq!((stdout.as_str(), code), ("[Errno 58] wasi does not support processes.\n", 0));
}

/// The same seed gives the same `random` values: Python's entropy is the kernel's.
#[test]
fn the_same_seed_gives_the_same_randomness() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#;
    let draw = |seed: &str| {
        let (mut sidecar, scope) = python_vm_seeded(config, Some(seed));
        python(&mut sidecar, &scope, "r", &["-c", "import random, os; print(random.random(), os.urandom(4).hex())"]).0
    };
    let (first, again, other) = (draw("7"), draw("7"), draw("8"));
    assert_eq!(first, again);
    assert_ne!(first, other);
}

/// `limits.python.executionTimeoutMs` ends a Python process that runs longer, sleeping or not:
/// status 124 and the reason on stderr; other keys of `limits.python` are refused with why.
#[test]
fn the_execution_timeout_ends_a_python_process() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"},"limits":{"python":{"executionTimeoutMs":1500}}}"#;
    let (mut sidecar, scope) = python_vm_with(config);
    let started = std::time::Instant::now();
    let (stdout, stderr, code) = python(
        &mut sidecar,
        &scope,
        "sleeper",
        &["-c", "import time\nprint('before', flush=True)\ntime.sleep(60)\nprint('after')"],
    );
    assert_eq!((stdout.as_str(), code), ("before\n", 124), "{stderr}");
    assert_eq!(stderr, "guest Python runtime timed out after 1500ms (limits.python.executionTimeoutMs)\n");
    assert!(started.elapsed() < Duration::from_secs(30), "ended at its deadline, not the sleep's end");
    let (stdout, _, code) = python(&mut sidecar, &scope, "quick", &["-c", "print('in time')"]);
    assert_eq!((stdout.as_str(), code), ("in time\n", 0));

    let session = scope.session_id().unwrap().to_owned();
    let refused = sidecar.create_vm(scope.connection_id(), &session, r#"{"limits":{"python":{"vfsRpcTimeoutMs":10}}}"#);
    let message = format!("{refused:?}");
    assert!(message.contains("limits.python.vfsRpcTimeoutMs") && message.contains("kernel calls"), "{message}");
}

/// `python` and `python3` from a shell pipeline (the command packages' `sh`) run the interpreter
/// like an `Execute` does: a script on stdin, `-c`, the exit status back to the shell.
#[test]
fn python_runs_in_a_shell_pipeline() {
    let dir = testkit::python::installed().display().to_string();
    let mut vm = crate::commands::Vm::start_with(&["--python-dir", &dir]);
    let run = vm.sh("echo 'print(6 * 7)' | python3 | tr 4 X");
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "X2\n"), "{}", run.stderr);
    let run = vm.sh("python -c 'import sys; print(sys.argv[1:]); sys.exit(3)' a b; echo status $?");
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "['a', 'b']\nstatus 3\n"), "{}", run.stderr);
}

/// What a program run on the base interpreter (whose quick exit skips the teardown when nothing
/// can show it) and on the install's own snapshot must both give: stdout, stderr, status, and
/// what a second process then reads of the files it left.
type Observed = Vec<(String, String, i32, String)>;

/// Programs whose exits differ in what CPython's teardown does: nothing to show, atexit
/// callbacks, finalizers, files never closed, weakref callbacks, audit hooks, trace functions,
/// warnings, native modules, statuses.
const EXIT_PROGRAMS: &[(&str, &str)] = &[
    ("print('hello')", ""),
    ("import sys; print('x'); sys.exit(3)", ""),
    ("print('before'); raise ValueError('boom')", ""),
    ("import sys; sys.exit('a message')", ""),
    ("import sys; sys.exit(256)", ""),
    ("import os; print('x', flush=True); os._exit(7)", ""),
    ("import sys; print('no newline', end=''); sys.stderr.write('err no newline')", ""),
    ("import atexit; atexit.register(print, 'bye'); print('main')", ""),
    ("class A:\n    def __del__(self): print('del A')\na = A(); print('main')", ""),
    ("f = open('/tmp/unclosed.txt', 'w'); f.write('never closed'); print('main')", "/tmp/unclosed.txt"),
    ("import weakref\nclass O: pass\no = O(); weakref.finalize(o, print, 'finalized'); print('main')", ""),
    ("def gen():\n    try:\n        yield 1\n    finally:\n        print('finally')\ng = gen(); next(g); print('main')", ""),
    ("import weakref\nclass O: pass\no = O(); r = weakref.ref(o, lambda ref: print('callback')); print('main')", ""),
    ("import weakref\nclass O: pass\no = O(); p = weakref.proxy(o, lambda ref: print('proxy')); print('main')", ""),
    ("import gc\nclass A:\n    def __del__(self): print('del frozen')\na = A(); gc.freeze(); print('main')", ""),
    ("class A:\n    __slots__ = ()\n    def __del__(self): print('del slots')\na = A(); print('main')", ""),
    ("class I(int):\n    def __del__(self): print('del int')\ni = I(5); print('main')", ""),
    ("import logging; logging.warning('warned'); print('main')", ""),
    ("import json\njson.JSONEncoder.__del__ = lambda self: print('del encoder')\nprint('main')", ""),
    ("import sys\nsys.addaudithook(lambda e, a: print('audit', e) if e.startswith('cpython') else None)\nprint('main')", ""),
    (
        "import sys, weakref\nclass K: pass\ns = weakref.WeakSet(); k = K(); s.add(k)\n\
         sys.settrace(lambda f, e, a: print('trace', f.f_code.co_name) if e == 'call' else None)\nprint('main')",
        "",
    ),
    ("import warnings; warnings.simplefilter('always'); f = open('/tmp/w.txt', 'w'); print('main')", "/tmp/w.txt"),
    ("import io, sys; sys.stdout = io.StringIO(); print('hidden'); sys.__stdout__.write('visible\\n')", ""),
    ("import collections.abc\nclass M(dict): pass\nprint(isinstance(M(), collections.abc.Mapping))", ""),
    ("import tempfile; t = tempfile.NamedTemporaryFile(dir='/tmp', prefix='held-'); print('main')", ""),
    ("data = {i: [str(i)] * 3 for i in range(100000)}\nprint(len(data))", ""),
    ("def f(n):\n    try:\n        return f(n + 1)\n    except RecursionError:\n        return n\nprint(f(0))", ""),
    // Names numpy only in pieces, so it runs on the base interpreter and imports it there.
    ("np = __import__('num' 'py'); print(np.arange(10).sum())", ""),
];

/// Runs [`EXIT_PROGRAMS`] on a fresh sidecar over the install at `dir`: what each showed.
fn run_exit_programs(dir: &str) -> Observed {
    let mut sidecar = Client::spawn(binary(), &["--python-dir", dir]).unwrap();
    sidecar.timeout = Duration::from_secs(900);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#;
    let vm = sidecar.create_vm(&auth.connection_id, &session, config).unwrap();
    let scope = OwnershipScope::vm(auth.connection_id, session, vm);
    let mut observed = Observed::new();
    for (index, (program, file)) in EXIT_PROGRAMS.iter().enumerate() {
        let (stdout, stderr, code) = python(&mut sidecar, &scope, &format!("exit-{index}"), &["-c", program]);
        let left =
            "import os\nfor name in sorted(os.listdir('/tmp')):\n    print(name if name.startswith('held-') else '')\n\
                    print(repr(open(__import__('sys').argv[1]).read()) if __import__('sys').argv[1] else '')";
        let (files, _, _) = python(&mut sidecar, &scope, &format!("left-{index}"), &["-c", left, file]);
        observed.push((stdout, stderr, code, files));
    }
    // A script and a module run the same way: `run` returns their status, then the exit.
    let script =
        "import sys\nclass A:\n    def __del__(self): print('del script')\na = A()\nprint(sys.argv)\nsys.exit(2)\n";
    write_file(&mut sidecar, &scope, "/app/script.py", script.to_owned());
    write_file(&mut sidecar, &scope, "/app/plain.py", "import sys\nprint(sys.argv)\n".to_owned());
    for (index, args) in [["/app/script.py", "x"], ["/app/plain.py", "y"], ["-m", "this"]].iter().enumerate() {
        start_python(&mut sidecar, &scope, &format!("script-{index}"), args, &[]);
        let (stdout, stderr, code) = crate::wait_for_exit(&mut sidecar, &format!("script-{index}"));
        observed.push((stdout, stderr, code, String::new()));
    }
    let probe = "import sys; print(sys.monitoring.get_tool(4))";
    let (tool, _, _) = python(&mut sidecar, &scope, "tool", &["-c", probe]);
    observed.push((tool, String::new(), 0, String::new()));
    observed
}

/// The install at `prepared()` seen without the interpreters `prepare-python` made: its own
/// snapshot runs every program.
fn install_as_fetched(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("it-python-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["python.wasm", "python-snapshot.wasm", "python-stdlib.zip", "SHA256SUMS"] {
        std::os::unix::fs::symlink(prepared().join(name), dir.join(name)).unwrap();
    }
    dir
}

/// The quick exit is a difference of time only: every program shows the same on the base
/// interpreter as on the install's own snapshot, which exits through CPython's full teardown.
/// The one trace of it a program can find is the monitoring tool id it holds.
#[test]
fn a_quick_exit_shows_what_cpythons_full_teardown_shows() {
    let fetched = install_as_fetched("teardown");
    let mut quick = run_exit_programs(&prepared().display().to_string());
    let mut full = run_exit_programs(&fetched.display().to_string());
    let _ = std::fs::remove_dir_all(&fetched);
    assert_eq!(quick.pop().map(|probe| probe.0), Some("secure-exec quick exit\n".to_owned()));
    assert_eq!(full.pop().map(|probe| probe.0), Some("None\n".to_owned()));
    assert_eq!(quick.len(), full.len());
    let programs = EXIT_PROGRAMS.iter().map(|(program, _)| *program).chain(["script", "plain script", "-m this"]);
    for (program, (quick, full)) in programs.zip(quick.iter().zip(&full)) {
        assert_eq!(quick, full, "{program}");
    }
    // The programs do reach the teardown's effects (so the comparison can fail).
    let shown: Vec<&str> = full.iter().map(|observed| observed.0.as_str()).collect();
    let effects = ["bye", "del A", "finalized", "finally", "del encoder", "del frozen", "del slots", "del int"];
    assert!(shown.contains(&"['/app/script.py', 'x']\ndel script\n"), "{shown:?}");
    assert!(shown.iter().any(|stdout| stdout.starts_with("The Zen of Python")), "{shown:?}");
    for effect in effects.map(|effect| format!("main\n{effect}\n")) {
        assert!(shown.contains(&effect.as_str()), "{effect:?} in {shown:?}");
    }
    assert!(full.iter().any(|observed| observed.3.contains("'never closed'")), "{full:?}");
    assert!(full.iter().any(|observed| observed.1.contains("ResourceWarning")), "{full:?}");
}

/// Fuel a VM of [`quick_exits_are_taken_only_where_nothing_can_show`] grants each process:
/// `print('hello')` runs about 3 million instructions when it exits quickly and about 54
/// million through the full teardown, so this bound tells which exit a process took.
const QUICK_EXIT_FUEL: u64 = 20_000_000;

/// What `program` gives on the install at `dir` with only [`QUICK_EXIT_FUEL`] to run on.
fn run_on_little_fuel(dir: &str, program: &str) -> (String, String, i32) {
    let mut sidecar = Client::spawn(binary(), &["--python-dir", dir]).unwrap();
    sidecar.timeout = Duration::from_secs(900);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let config = format!(
        r#"{{"permissions":{{"fs":"allow","childProcess":"allow","env":"allow"}},"limits":{{"resources":{{"maxWasmFuel":{QUICK_EXIT_FUEL}}}}}}}"#
    );
    let vm = sidecar.create_vm(&auth.connection_id, &session, &config).unwrap();
    python(&mut sidecar, &OwnershipScope::vm(auth.connection_id, session, vm), "little", &["-c", program])
}

/// The quick exit is taken (the process fits in a fuel bound the full teardown overruns) when
/// nothing can show the teardown, and not when something can (an atexit callback).
#[test]
fn quick_exits_are_taken_only_where_nothing_can_show() {
    let quick = prepared().display().to_string();
    let fetched = install_as_fetched("fuel");
    assert_eq!(run_on_little_fuel(&quick, "print('hello')"), ("hello\n".into(), String::new(), 0));
    let full = run_on_little_fuel(&fetched.display().to_string(), "print('hello')");
    let _ = std::fs::remove_dir_all(&fetched);
    assert_eq!(full.2, i32::try_from(runtime_wasm::EXIT_FUEL_EXHAUSTED).unwrap(), "{full:?}");
    let with_atexit = run_on_little_fuel(&quick, "import atexit; atexit.register(print, 'bye'); print('hello')");
    assert_eq!(with_atexit.2, i32::try_from(runtime_wasm::EXIT_FUEL_EXHAUSTED).unwrap(), "{with_atexit:?}");
}
