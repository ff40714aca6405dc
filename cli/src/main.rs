//! `secure-exec`: one line to run something in a sandbox.
//!
//!   secure-exec run --sh 'ls / | wc -l'
//!   secure-exec run --mount ./data:/data:ro --wasm prog.wasm -- args…
//!   secure-exec replay TRACE
//!   secure-exec doctor
//!
//! Each `run` starts a `secure-exec-sidecar` child with one VM (`client::sandbox`), streams this
//! process's stdin to the guest and its output back, and exits with the guest's status. Errors
//! of the CLI itself are one sentence on stderr that says what to do, and exit 2.

mod options;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use client::sandbox::{Exit, RunRequest, Sandbox, SandboxOptions};
use client::ClientError;
use schema::wire::*;

use options::RunArgs;

/// The status the CLI exits with when it could not run the guest at all.
const USAGE_STATUS: u8 = 2;
/// The status of a guest stopped by `--timeout` (as `timeout(1)`).
const TIMEOUT_STATUS: u8 = 124;
/// Stdin bytes sent to the guest per `WriteStdin` request.
const STDIN_CHUNK_BYTES: usize = 64 * 1024;
/// How long a start may take before a terminal shows that something is happening (a large
/// module compiles once per machine; packages load).
const SPINNER_AFTER: Duration = Duration::from_millis(700);

#[derive(Debug, Parser)]
#[command(name = "secure-exec", version, about = "Run commands, shell lines and WebAssembly programs in a sandbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one program in a fresh sandbox; exits with its status.
    Run(Box<RunArgs>),
    /// Replay a trace recorded with `run --record`, checking every output byte for byte.
    Replay { trace: PathBuf },
    /// Say what is installed and where: the sidecar, the command packages, the module cache.
    Doctor,
}

/// Why the CLI could not do what it was asked (a guest's own failure is its exit status).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Host { path: PathBuf, source: std::io::Error },
    #[error("the sandbox failed: {0}")]
    Sandbox(#[from] ClientError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run(args),
        Command::Replay { trace } => replay(trace),
        Command::Doctor => doctor(),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("secure-exec: {error}");
            ExitCode::from(USAGE_STATUS)
        }
    }
}

/// The `secure-exec-sidecar` binary: `$SECURE_EXEC_SIDECAR`, else next to this executable,
/// else on `PATH`.
fn sidecar_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SECURE_EXEC_SIDECAR") {
        return PathBuf::from(path);
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("secure-exec-sidecar")));
    beside.filter(|path| path.is_file()).unwrap_or_else(|| PathBuf::from("secure-exec-sidecar"))
}

fn run(args: &RunArgs) -> Result<u8, CliError> {
    let plan = options::plan(args)?;
    let mut sidecar_args = Vec::new();
    if let Some(trace) = &args.record {
        sidecar_args.extend(["--record".to_owned(), trace.display().to_string()]);
    }
    let options = SandboxOptions { sidecar: sidecar_binary(), sidecar_args, config: plan.config };
    let spinner = Spinner::start(args.json);
    let mut sandbox = Sandbox::start(&options).map_err(|error| starting(error, &options.sidecar))?;
    if !plan.configure.mounts.is_empty() || !plan.configure.software.is_empty() {
        sandbox.configure(plan.configure)?;
    }
    let stdin = if args.json { None } else { Some(client::sandbox::chunks_of(std::io::stdin(), STDIN_CHUNK_BYTES)) };
    let deadline = args.timeout.map(|seconds| Instant::now() + Duration::from_secs_f64(seconds));
    let request = RunRequest { execute: plan.execute, stdin, deadline };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let json = args.json;
    let exit = sandbox.run(request, &mut |channel, chunk| {
        spinner.clear();
        match (json, channel) {
            (true, StreamChannel::Stdout) => stdout.extend_from_slice(chunk),
            (true, StreamChannel::Stderr) => stderr.extend_from_slice(chunk),
            (false, StreamChannel::Stdout) => write_through(&mut std::io::stdout().lock(), chunk),
            (false, StreamChannel::Stderr) => write_through(&mut std::io::stderr().lock(), chunk),
        }
    })?;
    spinner.clear();
    sandbox.close()?;
    if json {
        print_json(&exit, &stdout, &stderr);
    } else if exit.timed_out {
        eprintln!("secure-exec: stopped after the --timeout of {}s", args.timeout.unwrap_or_default());
    }
    Ok(status_of(&exit))
}

/// A failure to start names the binary that could not start and how to get it.
fn starting(error: ClientError, sidecar: &Path) -> CliError {
    match error {
        ClientError::Spawn(source) => CliError::Usage(format!(
            "cannot start the sidecar {} ({source}): build it with `cargo build --release -p sidecar`, \
             or set SECURE_EXEC_SIDECAR to its path",
            sidecar.display()
        )),
        other => CliError::Sandbox(other),
    }
}

fn status_of(exit: &Exit) -> u8 {
    if exit.timed_out {
        return TIMEOUT_STATUS;
    }
    u8::try_from(exit.code & 0xff).unwrap_or(1)
}

fn write_through(out: &mut dyn Write, chunk: &[u8]) {
    // A closed stdout (a pipe's reader gone) does not stop the guest.
    let _ = out.write_all(chunk).and_then(|()| out.flush());
}

#[allow(clippy::print_stdout)]
fn print_json(exit: &Exit, stdout: &[u8], stderr: &[u8]) {
    let result = serde_json::json!({
        "exitCode": exit.code,
        "timedOut": exit.timed_out,
        "stdout": String::from_utf8_lossy(stdout),
        "stderr": String::from_utf8_lossy(stderr),
    });
    println!("{result}");
}

/// A spinner on stderr while a slow start goes on, on a terminal only: quiet when piped or
/// with `--json`, and gone at the guest's first output.
struct Spinner {
    bar: Option<indicatif::ProgressBar>,
}

impl Spinner {
    fn start(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message("starting the sandbox (a large program compiles once per machine)");
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        let shown = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(SPINNER_AFTER);
            if !shown.is_finished() {
                shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                shown.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Self { bar: Some(bar) }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }
}

impl std::fmt::Debug for Spinner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spinner").field("shown", &self.bar.is_some()).finish()
    }
}

fn replay(trace: &Path) -> Result<u8, CliError> {
    let status = std::process::Command::new(sidecar_binary())
        .arg("replay")
        .arg(trace)
        .status()
        .map_err(|source| CliError::Host { path: sidecar_binary(), source })?;
    Ok(status.code().and_then(|code| u8::try_from(code).ok()).unwrap_or(1))
}

#[allow(clippy::print_stdout)]
fn doctor() -> Result<u8, CliError> {
    let sidecar = sidecar_binary();
    let version = std::process::Command::new(&sidecar).arg("version").output();
    match version {
        Ok(output) if output.status.success() => {
            println!("sidecar: {} ({})", sidecar.display(), String::from_utf8_lossy(&output.stdout).trim());
        }
        _ => println!("sidecar: not found at {} (build it: cargo build --release -p sidecar)", sidecar.display()),
    }
    match options::packages_dir() {
        Some(dir) => println!("command packages: {}", dir.display()),
        None => println!("command packages: not installed (scripts/fetch-packages.sh installs them; --sh needs them)"),
    }
    match options::node_dir() {
        Some(dir) if dir.join("node-snapshot.wasm").is_file() => {
            println!("node: {} (its layer loaded into a snapshot)", dir.display());
        }
        Some(dir) => println!("node: {} (no snapshot yet: the sidecar makes it when it first starts)", dir.display()),
        None => println!("node: not built (scripts/build-node.sh builds it; --js needs it)"),
    }
    match options::python_dir() {
        Some((dir, true)) => println!("python: {} (prepared: quick exits, numpy and pandas preloaded)", dir.display()),
        Some((dir, false)) => println!(
            "python: {} (not prepared: `secure-exec-sidecar prepare-python` makes exits quick and numpy and pandas start imported)",
            dir.display()
        ),
        None => println!("python: not installed (scripts/fetch-python.sh installs it; --python needs it)"),
    }
    println!("module cache: {}", options::module_cache_dir().display());
    println!("secure-exec {}", env!("CARGO_PKG_VERSION"));
    Ok(0)
}
