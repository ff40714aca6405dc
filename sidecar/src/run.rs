//! `run`: wasmtime's command line for one WebAssembly command, served by a sidecar.
//!
//!   secure-exec-sidecar run [--dir HOST[::GUEST]]... [--env NAME=VALUE]... MODULE [ARGS]...
//!
//! Spawns this binary as a sidecar child and drives it through the protocol, as any host would:
//! one VM, the module installed in it and executed with `ARGS`, this process's stdin fed to the
//! guest's, the guest's stdout and stderr written to ours, and the guest's exit status returned
//! as our own. So conformance runners written for wasmtime (`wasi-testsuite`'s adapters) can
//! drive the sidecar unchanged (`docs/compatibility.md` says how).
//!
//! Directories (`--dir`), as wasmtime names them:
//! - `HOST::GUEST` (or `HOST`, meaning `HOST::HOST`): a live `host_dir` mount of `HOST` at
//!   `/GUEST`;
//! - `HOST::/`: the VM's root itself shows `HOST`. A VM's root is its own layered filesystem, not
//!   a mount, so `HOST`'s content is copied in before the run (at most [`MAX_COPIED_ENTRIES`]
//!   entries and [`MAX_COPIED_BYTES`] bytes) and changes stay in the VM.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use client::sandbox::{RunRequest, Sandbox, SandboxOptions};
use client::ClientError;
use schema::wire::*;

/// Entries a `HOST::/` directory may hold to be copied into a VM's root: conformance suites'
/// fixture trees hold tens; this is far more than any, and bounds the copy's time.
pub const MAX_COPIED_ENTRIES: usize = 10_000;
/// Bytes a `HOST::/` directory may hold: under the VM's default filesystem bound (64 MiB).
pub const MAX_COPIED_BYTES: u64 = 48 * 1024 * 1024;
/// Stdin bytes sent to the guest per `WriteStdin` request.
const STDIN_CHUNK_BYTES: usize = 64 * 1024;
/// Where the module is installed in the VM (its file name kept, as argv\[0\]).
const INSTALL_DIR: &str = "/usr/local/bin";
/// The guest's process id.
const PROCESS_ID: &str = "run";

/// The command line after `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A host directory for the guest: `HOST::GUEST`, or `HOST` alone (at the same name).
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,
    /// An environment variable for the guest.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    envs: Vec<String>,
    /// The WebAssembly module (a WASI command).
    module: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Why a run could not be made (the guest's own failure is its exit status instead).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Host { path: PathBuf, source: std::io::Error },
    #[error("the sidecar: {0}")]
    Sidecar(#[from] ClientError),
}

pub fn run(args: &RunArgs) -> ExitCode {
    match drive(args) {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(error) => {
            eprintln!("secure-exec-sidecar run: {error}");
            ExitCode::from(1)
        }
    }
}

/// Where a `--dir` goes.
#[derive(Debug, PartialEq, Eq)]
enum Dir {
    Mount { host: PathBuf, guest: String },
    Root { host: PathBuf },
}

fn parse_dir(spec: &str) -> Result<Dir, RunError> {
    let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
    if host.is_empty() || guest.is_empty() {
        return Err(RunError::Usage(format!("--dir {spec:?}: expected HOST or HOST::GUEST")));
    }
    let host = std::fs::canonicalize(host).map_err(|source| RunError::Host { path: host.into(), source })?;
    let trimmed = guest.trim_start_matches("./").trim_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Ok(Dir::Root { host });
    }
    Ok(Dir::Mount { host, guest: format!("/{trimmed}") })
}

fn parse_env(spec: &str) -> Result<(String, String), RunError> {
    match spec.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        // wasmtime's `--env NAME` passes the host's value.
        _ if !spec.is_empty() && !spec.contains('=') => Ok((spec.to_owned(), std::env::var(spec).unwrap_or_default())),
        _ => Err(RunError::Usage(format!("--env {spec:?}: expected NAME=VALUE"))),
    }
}

fn drive(args: &RunArgs) -> Result<i32, RunError> {
    let dirs = args.dirs.iter().map(|spec| parse_dir(spec)).collect::<Result<Vec<_>, _>>()?;
    let env = args.envs.iter().map(|spec| parse_env(spec)).collect::<Result<BTreeMap<_, _>, _>>()?;
    let module = std::fs::read(&args.module).map_err(|source| RunError::Host { path: args.module.clone(), source })?;
    let name = args.module.file_stem().and_then(|stem| stem.to_str()).unwrap_or("module").to_owned();

    let sidecar = std::env::current_exe().map_err(ClientError::Spawn)?;
    let config = r#"{"cwd":"/","permissions":{"fs":"allow","env":"allow","childProcess":"allow","process":"allow","network":"allow"}}"#;
    let options = SandboxOptions { sidecar, sidecar_args: Vec::new(), config: config.to_owned() };
    let mut sandbox = Sandbox::start(&options)?;
    let mut mounts = Vec::new();
    for dir in &dirs {
        match dir {
            Dir::Mount { host, guest } => mounts.push(MountDescriptor::host_dir(guest, &host.to_string_lossy(), false)),
            Dir::Root { host } => copy_in(&mut sandbox, host)?,
        }
    }
    if !mounts.is_empty() {
        sandbox.configure(ConfigureVmRequest::mounts(mounts))?;
    }
    let installed = format!("{INSTALL_DIR}/{name}");
    sandbox.write_file(&installed, &module)?;

    // Without a directory, as wasmtime without `--dir`: no preopened directory at all.
    let tier = dirs.is_empty().then_some(WasmPermissionTier::Isolated);
    let execute = ExecuteRequest {
        env,
        cwd: Some("/".into()),
        wasm_permission_tier: tier,
        ..ExecuteRequest::command(PROCESS_ID, installed, args.args.clone())
    };
    let request = RunRequest {
        execute,
        stdin: Some(client::sandbox::chunks_of(std::io::stdin(), STDIN_CHUNK_BYTES)),
        deadline: None,
    };
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr().lock());
    let exit = sandbox.run(request, &mut |channel, chunk| {
        let target: &mut dyn Write = match channel {
            StreamChannel::Stdout => &mut stdout,
            StreamChannel::Stderr => &mut stderr,
        };
        // A closed stdout (a pipe's reader gone) does not stop the guest.
        let _ = target.write_all(chunk).and_then(|()| target.flush());
    })?;
    sandbox.close()?;
    Ok(exit.code)
}

/// Copies `host`'s tree into the VM's root (see the module docs).
fn copy_in(sandbox: &mut Sandbox, host: &Path) -> Result<(), RunError> {
    let mut pending = vec![(host.to_path_buf(), String::new())];
    let (mut entries, mut bytes) = (0usize, 0u64);
    while let Some((dir, guest)) = pending.pop() {
        let listing = std::fs::read_dir(&dir).map_err(|source| RunError::Host { path: dir.clone(), source })?;
        let mut children: Vec<_> = listing.filter_map(Result::ok).collect();
        children.sort_by_key(std::fs::DirEntry::file_name);
        for child in children {
            entries += 1;
            if entries > MAX_COPIED_ENTRIES {
                return Err(RunError::Usage(format!("{}: more than {MAX_COPIED_ENTRIES} entries", host.display())));
            }
            let path = child.path();
            let target = format!("{guest}/{}", child.file_name().to_string_lossy());
            let kind = child.file_type().map_err(|source| RunError::Host { path: path.clone(), source })?;
            if kind.is_dir() {
                let mkdir = GuestFilesystemCallRequest {
                    recursive: true,
                    ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::Mkdir, target.clone())
                };
                sandbox.filesystem(mkdir)?;
                pending.push((path, target));
            } else if kind.is_symlink() {
                let link_target =
                    std::fs::read_link(&path).map_err(|source| RunError::Host { path: path.clone(), source })?;
                let symlink = GuestFilesystemCallRequest {
                    target: Some(link_target.to_string_lossy().into_owned()),
                    ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::Symlink, target.clone())
                };
                sandbox.filesystem(symlink)?;
            } else if kind.is_file() {
                let content = std::fs::read(&path).map_err(|source| RunError::Host { path: path.clone(), source })?;
                bytes = bytes.saturating_add(u64::try_from(content.len()).unwrap_or(u64::MAX));
                if bytes > MAX_COPIED_BYTES {
                    return Err(RunError::Usage(format!("{}: more than {MAX_COPIED_BYTES} bytes", host.display())));
                }
                sandbox.write_file(&target, &content)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn directories_map_as_wasmtime_names_them() {
        let here = std::fs::canonicalize(".").unwrap();
        assert_eq!(parse_dir(".::/").unwrap(), Dir::Root { host: here.clone() });
        assert_eq!(parse_dir(".::data").unwrap(), Dir::Mount { host: here.clone(), guest: "/data".into() });
        assert_eq!(parse_dir(".::/a/b/").unwrap(), Dir::Mount { host: here.clone(), guest: "/a/b".into() });
        assert_eq!(parse_dir(".").unwrap(), Dir::Root { host: here });
        assert!(matches!(parse_dir("::/"), Err(RunError::Usage(_))));
        assert!(matches!(parse_dir("/no/such/dir::/x"), Err(RunError::Host { .. })));
    }

    #[test]
    fn environment_variables_are_name_value_pairs() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("EMPTY=").unwrap(), ("EMPTY".into(), String::new()));
        assert!(matches!(parse_env("=x"), Err(RunError::Usage(_))));
    }
}
