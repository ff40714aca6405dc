//! The `secure-exec` binary end to end: real processes, real stdio, real host directories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn cli() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec"))
}

/// The sidecar binary beside the CLI (cargo builds it for the workspace's tests).
fn sidecar() -> PathBuf {
    let path = cli().with_file_name("secure-exec-sidecar");
    assert!(path.is_file(), "{} is missing: cargo build -p sidecar", path.display());
    path
}

fn fixture(name: &str) -> String {
    format!("{}/../runtime-wasm/fixtures/c/{name}.wasm", env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("secure-exec-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(cli())
        .arg("run")
        .args(args)
        .env("SECURE_EXEC_SIDECAR", sidecar())
        .env("SECURE_EXEC_PACKAGES", testkit::packages::installed())
        .env("SECURE_EXEC_PYTHON", testkit::python::installed())
        .env("SECURE_EXEC_NODE", testkit::node::built())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn a_shell_line_runs_with_its_output_stdin_and_status() {
    let out = run(&["--sh", "echo hi"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "hi\n"), "{}", text(&out.stderr));
    let out = run(&["--sh", "tr a-z A-Z; exit 7"], b"streamed in\n");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(7), "STREAMED IN\n"));
    let out = run(&["--json", "--sh", "echo out; echo err >&2; exit 3"], b"");
    assert_eq!(out.status.code(), Some(3));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result, serde_json::json!({"exitCode": 3, "timedOut": false, "stdout": "out\n", "stderr": "err\n"}));
}

#[test]
fn a_mounted_directory_is_all_of_the_host_a_guest_reaches() {
    let dir = scratch("mount");
    std::fs::write(dir.join("in.txt"), "host data\n").unwrap();
    let outside = dir.parent().unwrap().join(format!("secure-exec-cli-{}-secret", std::process::id()));
    std::fs::write(&outside, "secret").unwrap();
    let spec = format!("{}:/data:ro", dir.display());
    let read = fixture("read_file");

    let out = run(&["--mount", &spec, "--wasm", &read, "--", "/data/in.txt"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "host data\n"), "{}", text(&out.stderr));
    // Nothing beside the mounted directory: `..` from the mount is the VM's own root.
    let sibling = format!("/data/../{}", outside.file_name().unwrap().to_str().unwrap());
    let out = run(&["--mount", &spec, "--wasm", &read, "--", &sibling, &outside.display().to_string()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stdout).contains("secret"));
    // Read-only means read-only.
    let out = run(&["--mount", &spec, "--wasm", &fixture("write_file"), "--", "/data/new", "x"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "write_file: /data/new: Read-only file system\n");
    assert!(!dir.join("new").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&outside);
}

#[test]
fn a_path_outside_what_is_allowed_is_one_line_and_a_failure() {
    let dir = scratch("allow");
    std::fs::write(dir.join("in.txt"), "allowed\n").unwrap();
    let spec = format!("{}:/data", dir.display());
    let out = run(
        &[
            "--allow-read",
            "/data",
            "--mount",
            &spec,
            "--wasm",
            &fixture("read_file"),
            "--",
            "/data/in.txt",
            "/home/user/.profile",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "allowed\n");
    assert_eq!(text(&out.stderr), "read_file: /home/user/.profile: Permission denied\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn javascript_runs_as_code_and_as_a_script_with_its_arguments() {
    let out = run(&["--js", "console.log(process.argv.slice(1), 2 ** 10)", "--", "a"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "[ 'a' ] 1024\n"), "{}", text(&out.stderr));
    let dir = scratch("js");
    let script = dir.join("sum.mjs");
    std::fs::write(&script, "import { readFileSync } from 'node:fs';\nconst n = readFileSync(0, 'utf8').split(' ').map(Number);\nconsole.log(n.reduce((a, b) => a + b, 0), process.argv[2]);\n").unwrap();
    let out = run(&[script.to_str().unwrap(), "--", "x"], b"1 2 3");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "6 x\n"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_timeout_stops_the_guest_with_status_124() {
    let out = run(&["--timeout", "0.3", "--sh", "sleep 30"], b"");
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(text(&out.stderr), "secure-exec: stopped after the --timeout of 0.3s\n");
}

#[test]
fn the_cli_own_errors_are_one_sentence_and_status_2() {
    for (args, expected) in [
        (vec!["notes.txt"], "secure-exec: notes.txt: run knows .sh, .py, .js (.mjs, .cjs) and .wasm files\n"),
        (
            vec!["--mount", "nowhere", "--sh", "true"],
            "secure-exec: --mount \"nowhere\" is not HOST:GUEST[:ro] with an absolute GUEST path\n",
        ),
        (
            vec!["--packages", "nope", "--sh", "true"],
            "secure-exec: no command package \"nope\": the packages are common, coreutils, sed, grep, gawk, findutils, diffutils, tar, gzip\n",
        ),
        (vec!["--wasm", "/no/such/program.wasm"], ""),
    ] {
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        if !expected.is_empty() {
            assert_eq!(text(&out.stderr), expected);
        }
        assert_eq!(text(&out.stderr).lines().count(), 1, "{}", text(&out.stderr));
    }
}

/// The network is closed unless `--allow-net` opens it: a connect to a loopback server this
/// test started is refused inside the sandbox, and the server sees nothing.
#[test]
fn a_denied_connection_is_one_line_and_a_failure() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let out = run(&["--wasm", &fixture("net"), "--", "tcp-client", &port, "hi"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "net: connect: Permission denied\n");
    assert!(server.accept().is_err(), "nothing reached the host");
}

#[test]
fn a_recorded_run_replays_byte_for_byte() {
    let trace = scratch("record").join("run.trace");
    let out = run(&["--record", trace.to_str().unwrap(), "--sh", "echo recorded"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "recorded\n"));
    let replayed =
        Command::new(cli()).arg("replay").arg(&trace).env("SECURE_EXEC_SIDECAR", sidecar()).output().unwrap();
    assert_eq!(replayed.status.code(), Some(0), "{}", text(&replayed.stderr));
    assert!(text(&replayed.stdout).starts_with("replay matched:"), "{}", text(&replayed.stdout));
}

#[test]
fn python_code_and_scripts_run() {
    let out = run(&["--python", "import sys; print(sum(range(10))); sys.exit(3)"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(3), "45\n"), "{}", text(&out.stderr));
    let dir = scratch("py");
    let script = dir.join("echo.py");
    std::fs::write(&script, "import sys\nprint(sys.argv[1:], sys.stdin.read().upper())\n").unwrap();
    let out = run(&[script.to_str().unwrap(), "--", "a", "b"], b"piped");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "['a', 'b'] PIPED\n"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
