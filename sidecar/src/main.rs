//! `secure-exec-sidecar`: with no arguments, serves the Secure Exec protocol on stdin/stdout.
//! Logs go to stderr only (level from `SECURE_EXEC_LOG`, default `warn`); stdout carries frames.

#![forbid(unsafe_code)]

mod demo;

use clap::{Parser, Subcommand};
use kernel::SidecarConfig;
use std::path::PathBuf;
use std::process::ExitCode;
use transport::stdio::{self, StdioOptions};
use transport::trace::{self, TraceReader};

#[derive(Debug, Parser)]
#[command(name = "secure-exec-sidecar", version, about = "Secure Exec sidecar: runs guests in virtual machines")]
struct Cli {
    /// Require this exact auth token from hosts (default: any non-empty token).
    #[arg(long, env = "SECURE_EXEC_AUTH_TOKEN")]
    auth_token: Option<String>,
    /// Largest frame body accepted or sent, in bytes.
    #[arg(long, default_value_t = schema::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Record every input and output to this trace file (replay it with `replay`).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Seed the kernel's entropy (default: from the OS). Recorded in traces.
    #[arg(long)]
    seed: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a recorded trace and compare every output frame; exits 1 on any difference.
    Replay { trace: PathBuf },
    /// Print the sidecar and protocol versions.
    Version,
    /// Spawn this binary as a sidecar, drive it as a host would, and narrate what happens.
    Demo,
}

// `version`, `replay` and `demo` report on stdout; serving (no subcommand) never prints there.
#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.auth_token, cli.max_frame_bytes, cli.record, cli.seed),
        Some(Command::Replay { trace }) => replay(&trace),
        Some(Command::Version) => {
            println!(
                "secure-exec-sidecar {} (protocol {}@{})",
                env!("CARGO_PKG_VERSION"),
                schema::PROTOCOL_NAME,
                schema::PROTOCOL_VERSION
            );
            ExitCode::SUCCESS
        }
        Some(Command::Demo) => demo::run(),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECURE_EXEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}

fn serve(auth_token: Option<String>, max_frame_bytes: usize, record: Option<PathBuf>, seed: Option<u64>) -> ExitCode {
    let config = SidecarConfig {
        expected_auth_token: auth_token.filter(|token| !token.is_empty()),
        max_frame_bytes,
        entropy_seed: seed.unwrap_or_else(stdio::os_entropy_seed),
        ..SidecarConfig::default()
    };
    match stdio::serve(StdioOptions { config, record }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sidecar stopped");
            eprintln!("secure-exec-sidecar: {error}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn replay(path: &std::path::Path) -> ExitCode {
    let outcome = TraceReader::open(path).and_then(trace::replay);
    match outcome {
        Ok(Ok(report)) => {
            println!("replay matched: {} inputs, {} output frames", report.inputs, report.outputs);
            ExitCode::SUCCESS
        }
        Ok(Err(divergence)) => {
            eprintln!("replay diverged: {}", divergence.describe());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("replay failed: {error}");
            ExitCode::FAILURE
        }
    }
}
