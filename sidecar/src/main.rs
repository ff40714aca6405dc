//! `secure-exec-sidecar`: with no arguments, serves the Secure Exec protocol on stdin/stdout.
//! Logs go to stderr only (level from `SECURE_EXEC_LOG`, default `warn`); stdout carries frames.

#![forbid(unsafe_code)]

mod demo;
mod prepare;
mod run;

use clap::{Parser, Subcommand};
use kernel::host::fs::HostFs;
use kernel::syscalls::engine::GuestEngine;
use kernel::SidecarConfig;
use runtime_wasm::{RuntimeConfig, WasmEngine};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use transport::hostfs::OsHostFs;
use transport::packages::OsPackages;
use transport::python::OsPython;
use transport::stdio::{self, StdioOptions};
use transport::store::FileStore;
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
    /// Directory of the persistence store (PersistenceFlush/Load), created on first use.
    /// Default: `$XDG_DATA_HOME/secure-exec-sidecar/state` (or under `~/.local/share`, or the
    /// OS temp dir).
    #[arg(long, env = "SECURE_EXEC_STORE_DIR")]
    store_dir: Option<PathBuf>,
    /// Refuse `host_dir` mounts and host filesystem calls (no host file access at all).
    #[arg(long)]
    no_host_fs: bool,
    /// Memory all guests and VM filesystems together may use, in bytes (suffixes K, M, G
    /// accepted). Beyond it `CreateVm` and `Execute` are refused with `limit_exceeded` and guest
    /// memory growth fails. Default: half of the machine's memory.
    #[arg(long, value_parser = parse_bytes)]
    max_memory: Option<u64>,
    /// Directory where compiled WebAssembly modules are kept between runs (wasmtime's cache,
    /// keyed by each module's hash and the engine's settings). Default:
    /// `$XDG_CACHE_HOME/secure-exec-sidecar/modules` (or under `~/.cache`, or the OS temp dir).
    #[arg(long, env = "SECURE_EXEC_MODULE_CACHE_DIR")]
    module_cache_dir: Option<PathBuf>,
    /// Directory of the Python interpreter (`python.wasm`, `python-stdlib.zip`), as
    /// `scripts/fetch-python.sh` installs it. Default: `$SECURE_EXEC_PYTHON`, else
    /// `$XDG_CACHE_HOME/secure-exec-sidecar/python-<version>` (or under `~/.cache`). Read on the
    /// first Python `Execute`; until it is there, Python is refused with what to run.
    #[arg(long, value_name = "DIR")]
    python_dir: Option<PathBuf>,
    /// Directory of the `node` command (`node.wasm`), as `scripts/build-node.sh` builds it.
    /// Default: `$SECURE_EXEC_NODE`, else `$XDG_CACHE_HOME/secure-exec-sidecar/node` (or under
    /// `~/.cache`). Read at start-up; without it, VMs have no `node`.
    #[arg(long, value_name = "DIR")]
    node_dir: Option<PathBuf>,
    /// Compile every module anew in each run (no on-disk module cache).
    #[arg(long, conflicts_with = "module_cache_dir")]
    no_module_cache: bool,
    /// Never connect out of a VM, whatever its network policy allows (such a connect finds no
    /// route: `ENETUNREACH`).
    #[arg(long)]
    no_network: bool,
    /// Trust the certificates in this PEM file for guests' TLS, besides the Mozilla roots
    /// (repeatable).
    #[arg(long = "tls-ca-file", value_name = "PEM", conflicts_with = "no_network")]
    tls_ca_files: Vec<PathBuf>,
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
    /// Run one WebAssembly command with wasmtime's command line (`--dir`, `--env`), in a VM of a
    /// sidecar this binary spawns; exits with the guest's status.
    Run(run::RunArgs),
    /// Make this machine's own Python interpreters beside the install (`--python-dir`) and
    /// compile them into the module cache: the base one, whose processes end as soon as their
    /// program has when their exit can show nothing, and the preloaded one (numpy and pandas
    /// imported at start-up) for the programs that use them. Once per install; about four minutes.
    PreparePython {
        /// Make it again even when the one there is current.
        #[arg(long)]
        force: bool,
    },
}

// `version`, `replay` and `demo` report on stdout; serving (no subcommand) never prints there.
#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match &cli.command {
        None => serve(&cli),
        Some(Command::Replay { trace }) => replay(&cli, trace),
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
        Some(Command::Run(args)) => run::run(args),
        Some(Command::PreparePython { force }) => prepare_python(&cli, *force),
    }
}

#[allow(clippy::print_stdout)]
fn prepare_python(cli: &Cli, force: bool) -> ExitCode {
    let python = OsPython::new(cli.python_dir.clone().unwrap_or_else(OsPython::default_dir));
    match prepare::prepare_python(&python, module_cache_dir(cli), force) {
        Ok(prepared) => {
            for done in prepared {
                if done.reused {
                    println!("{} is current", done.path.display());
                } else {
                    println!(
                        "made {} ({} bytes; {}; {:.1} s, {} fuel)",
                        done.path.display(),
                        done.bytes,
                        done.report,
                        done.preinit_time.as_secs_f64(),
                        done.fuel
                    );
                }
                println!("compiled into the module cache in {:.1} s", done.compile_time.as_secs_f64());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("secure-exec-sidecar prepare-python: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Half of the machine's memory (`MemTotal`): the rest is the host's, and the sidecar's own
/// working memory. Without `/proc/meminfo`, the kernel's default.
fn default_max_memory_bytes() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    total_kib.map_or(kernel::dispatch::DEFAULT_MAX_MEMORY_BYTES, |kib| kib.saturating_mul(1024) / 2)
}

/// `1073741824`, `512M`, `4G`, `64K` (powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let multiplier = match text.chars().last() {
        Some('K' | 'k') => 1u64 << 10,
        Some('M' | 'm') => 1 << 20,
        Some('G' | 'g') => 1 << 30,
        _ => 1,
    };
    let digits = if multiplier == 1 { text } else { text.get(..text.len() - 1).unwrap_or_default() };
    let value: u64 = digits.parse().map_err(|_| format!("{text:?} is not a byte count (like 512M or 4G)"))?;
    value.checked_mul(multiplier).filter(|bytes| *bytes > 0).ok_or_else(|| format!("{text:?} is out of range"))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECURE_EXEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}

fn serve(cli: &Cli) -> ExitCode {
    let config = SidecarConfig {
        expected_auth_token: cli.auth_token.clone().filter(|token| !token.is_empty()),
        max_frame_bytes: cli.max_frame_bytes,
        entropy_seed: cli.seed.unwrap_or_else(stdio::os_entropy_seed),
        max_memory_bytes: cli.max_memory.unwrap_or_else(default_max_memory_bytes),
        ..SidecarConfig::default()
    };
    // Opening the store removes temp files left by crashed flushes.
    let store = FileStore::open(cli.store_dir.clone().unwrap_or_else(FileStore::default_dir));
    let host_fs: Option<Arc<dyn HostFs>> = if cli.no_host_fs { None } else { Some(Arc::new(OsHostFs)) };
    let guest_engine = match guest_engine(module_cache_dir(cli)) {
        Ok(engine) => Some(engine),
        Err(error) => {
            tracing::error!(%error, "cannot build the WebAssembly engine; Execute will be refused");
            None
        }
    };
    let mut extra_tls_roots = Vec::new();
    for path in &cli.tls_ca_files {
        match std::fs::read(path) {
            Ok(pem) => extra_tls_roots.push(pem),
            Err(error) => {
                eprintln!("secure-exec-sidecar: --tls-ca-file {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let node_dir = cli.node_dir.clone().unwrap_or_else(transport::node::default_dir);
    let programs = match prepare::node_programs(&node_dir) {
        Ok(programs) => programs,
        Err(error) => {
            eprintln!("secure-exec-sidecar: the node command: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = StdioOptions {
        config,
        record: cli.record.clone(),
        host_fs,
        store: Some(Arc::new(store)),
        guest_engine,
        packages: Some(Arc::new(OsPackages::new())),
        python: Some(Arc::new(OsPython::new(cli.python_dir.clone().unwrap_or_else(OsPython::default_dir)))),
        programs,
        egress: !cli.no_network,
        extra_tls_roots,
    };
    match stdio::serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sidecar stopped");
            eprintln!("secure-exec-sidecar: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The wasmtime engine guests run on.
fn guest_engine(module_cache_dir: Option<PathBuf>) -> Result<Arc<dyn GuestEngine>, runtime_wasm::RuntimeError> {
    Ok(Arc::new(WasmEngine::new(RuntimeConfig { module_cache_dir, ..RuntimeConfig::default() })?))
}

/// Where compiled modules are kept (`None`: nowhere).
fn module_cache_dir(cli: &Cli) -> Option<PathBuf> {
    if cli.no_module_cache {
        return None;
    }
    if let Some(dir) = &cli.module_cache_dir {
        return Some(dir.clone());
    }
    let cache_home =
        std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|home| !home.is_empty()).map(|home| PathBuf::from(home).join(".cache"))
        });
    Some(match cache_home {
        Some(dir) => dir.join("secure-exec-sidecar").join("modules"),
        None => std::env::temp_dir().join("secure-exec-sidecar-modules"),
    })
}

#[allow(clippy::print_stdout)]
fn replay(cli: &Cli, path: &std::path::Path) -> ExitCode {
    let engine = guest_engine(module_cache_dir(cli)).ok();
    // The node a recording ran is its build's snapshot: replay runs the same.
    prepare::node_snapshot(&transport::node::default_dir());
    let outcome = TraceReader::open(path).and_then(|reader| trace::replay_with(reader, engine));
    match outcome {
        Ok(Ok(report)) => {
            println!(
                "replay matched: {} inputs, {} output frames, {} effects, {} host filesystem calls answered from the trace",
                report.inputs, report.outputs, report.effects, report.exchanges
            );
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

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        for bad in ["", "G", "-1", "1.5G", "0", "99999999999G"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
