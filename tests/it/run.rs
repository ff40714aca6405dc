//! `secure-exec-sidecar run`: wasmtime's command line, served by a sidecar the binary spawns.
//! The real binary, real stdio, real host directories.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!("{}/../runtime-wasm/fixtures/c/{name}.wasm", env!("CARGO_MANIFEST_DIR")))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sidecar-it-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(binary())
        .arg("run")
        .args(args)
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
fn arguments_environment_stdin_and_the_exit_status_pass_through() {
    let args = fixture("args");
    let out = run(&["--env", "GREETING=hi there", args.to_str().unwrap(), "one", "--two"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "argc=3\nargv[0]=/usr/local/bin/args\nargv[1]=one\nargv[2]=--two\nGREETING=hi there\n"
    );

    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = run(&[fixture("cat").to_str().unwrap()], &input);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, input, "stdin reaches the guest whole, and its stdout ours");

    let out = run(&[fixture("exit3").to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_directory_is_mounted_live_or_copied_in_as_the_root() {
    let dir = scratch("dirs");
    std::fs::write(dir.join("in.txt"), "from the host\n").unwrap();
    let read = fixture("read_file");
    let write = fixture("write_file");

    // HOST::GUEST: a live mount; what the guest writes is on the host after.
    let spec = format!("{}::data", dir.display());
    let out = run(&["--dir", &spec, read.to_str().unwrap(), "/data/in.txt"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "from the host\n"), "{}", text(&out.stderr));
    let out = run(&["--dir", &spec, write.to_str().unwrap(), "/data/out.txt", "written"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(dir.join("out.txt")).unwrap().starts_with("written"));

    // HOST::/: the VM's root shows the directory (a copy).
    let spec = format!("{}::/", dir.display());
    let out = run(&["--dir", &spec, read.to_str().unwrap(), "in.txt"], b"");
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "from the host\n"), "{}", text(&out.stderr));

    // Without a directory the guest has none: no preopen at all, as in wasmtime.
    let out = run(&[read.to_str().unwrap(), "/etc/hostname"], b"");
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_are_reported_not_run() {
    let out = run(&["--dir", "/no/such/dir::/x", fixture("hello").to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/no/such/dir"), "{}", text(&out.stderr));
    let out = run(&["/no/such/module.wasm"], b"");
    assert_eq!(out.status.code(), Some(1));
}

/// `HOST::/` copies at most 10,000 entries and 48 MiB into the VM: past either, the run is
/// refused before the guest starts, saying which.
#[test]
fn a_root_directory_past_the_copy_bounds_is_refused() {
    let hello = fixture("hello");
    let many = scratch("many");
    for index in 0..=10_000 {
        std::fs::write(many.join(format!("f{index}")), b"").unwrap();
    }
    let out = run(&["--dir", &format!("{}::/", many.display()), hello.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).ends_with("more than 10000 entries\n"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&many);

    let big = scratch("big");
    std::fs::File::create(big.join("huge")).unwrap().set_len(48 * 1024 * 1024 + 1).unwrap();
    let out = run(&["--dir", &format!("{}::/", big.display()), hello.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).ends_with(&format!("more than {} bytes\n", 48 * 1024 * 1024)), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&big);
}
