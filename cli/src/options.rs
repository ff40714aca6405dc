//! `secure-exec run`'s flags, and the sandbox they make: the VM's config (permissions,
//! limits), its mounts and packages, the files to install, and the Execute request.
//!
//! Permissions, in the style of Deno: the guest's own VM is private, so by default it may read
//! and write its own files; host files are reachable only through `--mount`. `--allow-read` and
//! `--allow-write` narrow that: with either, only the paths they name (and, for reading, the
//! system's own trees a program needs to start) are allowed. The network is closed unless
//! `--allow-net` opens it (all of it, or the hosts and ports it names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use schema::wire::*;
use serde_json::{json, Value};

use crate::CliError;

/// Where a WebAssembly program is installed in the VM (`argv[0]` keeps its file name).
const INSTALL_DIR: &str = "/usr/local/bin";
/// The guest's process id.
const PROCESS_ID: &str = "main";
/// What the guest may always read when `--allow-read`/`--allow-write` narrow the filesystem:
/// the trees programs and the shell need to start, none of which holds host data.
const SYSTEM_READ_PATHS: &[&str] = &["/", "/bin/**", "/usr/**", "/lib/**", "/etc/**", "/dev/**", "/proc/**"];
/// Filesystem operations that only look.
const READ_OPERATIONS: &[&str] = &["read", "stat", "readdir", "readlink"];
/// The command packages `scripts/fetch-packages.sh` installs, with `common` naming them all.
const PACKAGES: &[&str] = &["coreutils", "sed", "grep", "gawk", "findutils", "diffutils", "tar", "gzip"];
/// The package set's version, as `scripts/fetch-packages.sh` names its directory.
const PACKAGES_VERSION: &str = "0.2.21";
/// The Python install's version, as `scripts/fetch-python.sh` names its directory.
const PYTHON_VERSION: &str = "0.1.0";

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A shell line, run by `sh -c` (needs the command packages).
    #[arg(long, value_name = "LINE", group = "program")]
    sh: Option<String>,
    /// A WebAssembly program (a WASI command).
    #[arg(long, value_name = "FILE", group = "program")]
    wasm: Option<PathBuf>,
    /// Python code, run by `python -c` (needs scripts/fetch-python.sh's interpreter).
    #[arg(long, value_name = "CODE", group = "program")]
    python: Option<String>,
    /// JavaScript code, run by `node -e` (needs scripts/build-node.sh's `node`).
    #[arg(long, value_name = "CODE", group = "program")]
    js: Option<String>,
    /// A script or program file, by its extension: .sh, .py, .js/.mjs/.cjs, .wasm.
    #[arg(value_name = "FILE", group = "program")]
    script: Option<PathBuf>,
    /// The program's arguments (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// A host directory for the guest, read-write unless `:ro` (repeatable).
    #[arg(long = "mount", value_name = "HOST:GUEST[:ro]")]
    mounts: Vec<String>,
    /// Let the guest read this VM path (`**` globs allowed; repeatable).
    #[arg(long = "allow-read", value_name = "PATH")]
    allow_read: Vec<String>,
    /// Let the guest read and write this VM path (repeatable).
    #[arg(long = "allow-write", value_name = "PATH")]
    allow_write: Vec<String>,
    /// Open the network: all of it, or to HOST and PORT (repeatable). An address opens just
    /// itself; a name opens its lookups and its PORT (every port, without one) on every address,
    /// since the policy decides on the addresses a name resolves to, not on the name.
    #[arg(long = "allow-net", value_name = "HOST[:PORT]", num_args = 0..=1, default_missing_value = "*")]
    allow_net: Vec<String>,
    /// An environment variable for the guest (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    envs: Vec<String>,
    /// Stop the guest after this many seconds (status 124).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// The most memory the guest may use (like 256M or 1G).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    memory: Option<u64>,
    /// Command packages to load (`common`: all of them); `--sh` loads them all.
    #[arg(long = "packages", value_name = "NAME", value_delimiter = ',')]
    packages: Vec<String>,
    /// Record the sandbox's whole conversation to TRACE (`secure-exec replay TRACE`).
    #[arg(long, value_name = "TRACE")]
    pub record: Option<PathBuf>,
    /// Print one JSON object (exit code, stdout, stderr) instead of streaming; stdin is closed.
    #[arg(long)]
    pub json: bool,
}

/// What `run` sets up.
#[derive(Debug)]
pub struct Plan {
    /// The CreateVm config, the program installed in its root filesystem (so installing it
    /// needs no write permission the guest may not have).
    pub config: String,
    pub configure: ConfigureVmRequest,
    pub execute: ExecuteRequest,
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

pub fn plan(args: &RunArgs) -> Result<Plan, CliError> {
    let mut files = Vec::new();
    let mut packages = args.packages.clone();
    let mut python = false;
    let (command, mut argv) = match program(args)? {
        Program::PythonCode(code) => {
            python = true;
            (String::new(), vec!["-c".to_owned(), code])
        }
        Program::PythonScript(path) => {
            let script = std::fs::read(&path).map_err(|source| CliError::Host { path: path.clone(), source })?;
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("script.py");
            let installed = format!("{SCRIPT_DIR}/{name}");
            files.push((installed.clone(), script));
            python = true;
            (String::new(), vec![installed])
        }
        Program::JsCode(code) => ("node".to_owned(), vec!["-e".to_owned(), code]),
        Program::JsScript(path) => {
            let script = std::fs::read(&path).map_err(|source| CliError::Host { path: path.clone(), source })?;
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("script.js");
            let installed = format!("{SCRIPT_DIR}/{name}");
            files.push((installed.clone(), script));
            ("node".to_owned(), vec![installed])
        }
        Program::Shell(line) => {
            packages.push("common".to_owned());
            ("sh".to_owned(), vec!["-c".to_owned(), line, "sh".to_owned()])
        }
        Program::Wasm(path) => {
            let module = std::fs::read(&path).map_err(|source| CliError::Host { path: path.clone(), source })?;
            let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("program").to_owned();
            let installed = format!("{INSTALL_DIR}/{name}");
            files.push((installed.clone(), module));
            (installed, Vec::new())
        }
    };
    argv.extend(args.args.iter().cloned());
    let mut env = BTreeMap::new();
    for spec in &args.envs {
        let (name, value) = spec
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| usage(format!("--env {spec:?} is not NAME=VALUE")))?;
        env.insert(name.to_owned(), value.to_owned());
    }
    let mounts = args.mounts.iter().map(|spec| mount(spec)).collect::<Result<Vec<_>, _>>()?;
    let software = software(&packages)?;
    let execute = if python {
        ExecuteRequest {
            env,
            command: None,
            runtime: Some(GuestRuntimeKind::Python),
            ..ExecuteRequest::command(PROCESS_ID, command, argv)
        }
    } else {
        ExecuteRequest { env, ..ExecuteRequest::command(PROCESS_ID, command, argv) }
    };
    Ok(Plan {
        config: config(args, &mounts, &files).to_string(),
        configure: ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(mounts) },
        execute,
    })
}

/// What to run.
pub enum Program {
    Shell(String),
    Wasm(PathBuf),
    /// `python -c CODE`.
    PythonCode(String),
    /// A Python script file.
    PythonScript(PathBuf),
    /// `node -e CODE`.
    JsCode(String),
    /// A JavaScript file (CommonJS or an ES module, as Node decides by its extension).
    JsScript(PathBuf),
}

/// Where a Python or JavaScript script file is installed in the VM.
const SCRIPT_DIR: &str = "/home/user";

fn program(args: &RunArgs) -> Result<Program, CliError> {
    if let Some(code) = &args.js {
        return Ok(Program::JsCode(code.clone()));
    }
    if let Some(code) = &args.python {
        return Ok(Program::PythonCode(code.clone()));
    }
    if let Some(line) = &args.sh {
        return Ok(Program::Shell(line.clone()));
    }
    if let Some(path) = &args.wasm {
        return Ok(Program::Wasm(path.clone()));
    }
    let Some(script) = &args.script else {
        return Err(usage("nothing to run: give --sh LINE, --wasm FILE or a script file"));
    };
    match script.extension().and_then(|extension| extension.to_str()) {
        Some("wasm") => Ok(Program::Wasm(script.clone())),
        Some("sh") => {
            let text =
                std::fs::read_to_string(script).map_err(|source| CliError::Host { path: script.clone(), source })?;
            Ok(Program::Shell(text))
        }
        Some("py") => Ok(Program::PythonScript(script.clone())),
        Some("js" | "mjs" | "cjs") => Ok(Program::JsScript(script.clone())),
        _ => Err(usage(format!("{}: run knows .sh, .py, .js (.mjs, .cjs) and .wasm files", script.display()))),
    }
}

/// `HOST:GUEST[:ro]`: a live `host_dir` mount (the host path made absolute first).
fn mount(spec: &str) -> Result<MountDescriptor, CliError> {
    let (rest, read_only) = match spec.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (spec.strip_suffix(":rw").unwrap_or(spec), false),
    };
    let Some((host, guest)) = rest.rsplit_once(':').filter(|(host, guest)| !host.is_empty() && guest.starts_with('/'))
    else {
        return Err(usage(format!("--mount {spec:?} is not HOST:GUEST[:ro] with an absolute GUEST path")));
    };
    let host = std::fs::canonicalize(host).map_err(|source| CliError::Host { path: host.into(), source })?;
    Ok(MountDescriptor::host_dir(guest, &host.to_string_lossy(), read_only))
}

/// The CreateVm config: permissions from the flags, the memory limit.
fn config(args: &RunArgs, mounts: &[MountDescriptor], files: &[(String, Vec<u8>)]) -> Value {
    let mut config = json!({
        "cwd": "/home/user",
        "permissions": {
            "fs": fs_policy(&args.allow_read, &args.allow_write, mounts),
            "network": network_policy(&args.allow_net),
            "childProcess": "allow",
            "process": "allow",
            "env": "allow",
        },
    });
    let Some(object) = config.as_object_mut() else { return config };
    if let Some(bytes) = args.memory {
        object.insert("limits".into(), json!({ "resources": { "maxWasmMemoryBytes": bytes } }));
    }
    let entries: Vec<Value> = files
        .iter()
        .map(|(path, content)| {
            let content = base64::engine::general_purpose::STANDARD.encode(content);
            json!({ "path": path, "kind": "file", "content": content, "encoding": "base64", "executable": true })
        })
        .collect();
    object.insert("rootFilesystem".into(), json!({ "bootstrapEntries": entries }));
    config
}

/// With `--allow-read`/`--allow-write`, a `--mount` is allowed as it says: the mount point
/// itself (mounting changes it), and below it reading, or everything unless `:ro`.
fn fs_policy(read: &[String], write: &[String], mounts: &[MountDescriptor]) -> Value {
    if read.is_empty() && write.is_empty() {
        return json!("allow");
    }
    let mut read = read.to_vec();
    let mut write = write.to_vec();
    for mount in mounts {
        if mount.read_only {
            read.push(mount.guest_path.clone());
        } else {
            write.push(mount.guest_path.clone());
        }
    }
    let (read, write) = (read.as_slice(), write.as_slice());
    let with_below = |paths: &[String]| -> Vec<String> {
        paths.iter().flat_map(|path| [path.clone(), format!("{}/**", path.trim_end_matches('/'))]).collect()
    };
    let mut readable = with_below(read);
    readable.extend(SYSTEM_READ_PATHS.iter().map(|path| (*path).to_owned()));
    let mut rules = vec![json!({ "mode": "allow", "operations": READ_OPERATIONS, "paths": readable })];
    let points: Vec<&str> = mounts.iter().map(|mount| mount.guest_path.as_str()).collect();
    if !points.is_empty() {
        rules.push(json!({ "mode": "allow", "operations": ["*"], "paths": points }));
    }
    if !write.is_empty() {
        rules.push(json!({ "mode": "allow", "operations": ["*"], "paths": with_below(write) }));
    }
    json!({ "default": "deny", "rules": rules })
}

/// `HOST[:PORT]` allows connecting there (`tcp://`/`udp://` patterns) and, for a name,
/// resolving it; `*` allows everything.
fn network_policy(allowed: &[String]) -> Value {
    if allowed.is_empty() {
        return json!("deny");
    }
    if allowed.iter().any(|spec| spec == "*") {
        return json!("allow");
    }
    let mut patterns = Vec::new();
    for spec in allowed {
        let (host, port) = match spec.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) && !host.is_empty() => (host, port),
            _ => (spec.as_str(), "*"),
        };
        let is_address = host.parse::<std::net::IpAddr>().is_ok();
        // A name's connections go to whatever it resolves to: the port is what narrows them.
        let target = if is_address { host } else { "*" };
        patterns.push(format!("tcp://{target}:{port}"));
        patterns.push(format!("udp://{target}:{port}"));
        if !is_address {
            patterns.push(host.to_owned());
        }
    }
    json!({ "default": "deny", "rules": [{ "mode": "allow", "operations": ["*"], "patterns": patterns }] })
}

/// Where `scripts/fetch-packages.sh` installed the command packages, if it did.
pub fn packages_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SECURE_EXEC_PACKAGES") {
        Some(dir) => PathBuf::from(dir),
        None => cache_home()?.join(format!("secure-exec-sidecar/packages-{PACKAGES_VERSION}")),
    };
    dir.join(".installed").is_file().then_some(dir)
}

/// The sidecar's `node` (its default place: `$SECURE_EXEC_NODE`, else the cache), if built.
pub fn node_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SECURE_EXEC_NODE") {
        Some(dir) => PathBuf::from(dir),
        None => cache_home()?.join("secure-exec-sidecar/node"),
    };
    dir.join("node.wasm").is_file().then_some(dir)
}

/// The sidecar's Python install (its default place: `$SECURE_EXEC_PYTHON`, else the cache), if
/// installed, and whether its base and preloaded interpreters have been made (by `prepare-python`).
pub fn python_dir() -> Option<(PathBuf, bool)> {
    let dir = match std::env::var_os("SECURE_EXEC_PYTHON") {
        Some(dir) => PathBuf::from(dir),
        None => cache_home()?.join(format!("secure-exec-sidecar/python-{PYTHON_VERSION}")),
    };
    let made = |name: &str| dir.join(format!("{name}.wasm")).is_file() && dir.join(format!("{name}.key")).is_file();
    let prepared = made("python-base") && made("python-preloaded");
    dir.join(".installed").is_file().then_some((dir, prepared))
}

/// Where the sidecar keeps compiled modules (its default).
pub fn module_cache_dir() -> PathBuf {
    match std::env::var_os("SECURE_EXEC_MODULE_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => cache_home().unwrap_or_else(std::env::temp_dir).join("secure-exec-sidecar/modules"),
    }
}

fn cache_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
}

/// The packages named (`common` for all), as ConfigureVm `software`.
fn software(names: &[String]) -> Result<Vec<SoftwareDescriptor>, CliError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<&str> = Vec::new();
    for name in names {
        match name.as_str() {
            "common" => wanted.extend(PACKAGES),
            other if PACKAGES.contains(&other) => {
                wanted.push(PACKAGES.iter().find(|known| **known == other).copied().unwrap_or(other))
            }
            other => {
                return Err(usage(format!(
                    "no command package {other:?}: the packages are common, {}",
                    PACKAGES.join(", ")
                )))
            }
        }
    }
    wanted.sort_unstable();
    wanted.dedup();
    let dir = packages_dir().ok_or_else(|| {
        usage("the command packages are not installed: run scripts/fetch-packages.sh (it needs npm), or set SECURE_EXEC_PACKAGES")
    })?;
    let root = dir.join("node_modules/@agentos-software");
    Ok(wanted
        .into_iter()
        .map(|name| SoftwareDescriptor {
            package_name: format!("@agentos-software/{name}"),
            root: root.join(name).display().to_string(),
        })
        .collect())
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= 365.0 * 86_400.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds (like 10 or 0.5)")),
    }
}

/// `1073741824`, `512M`, `4G`, `64K` (powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, multiplier) = match text.char_indices().last() {
        Some((at, 'K' | 'k')) => (text.get(..at).unwrap_or_default(), 1u64 << 10),
        Some((at, 'M' | 'm')) => (text.get(..at).unwrap_or_default(), 1 << 20),
        Some((at, 'G' | 'g')) => (text.get(..at).unwrap_or_default(), 1 << 30),
        _ => (text, 1),
    };
    let value: u64 = digits.parse().map_err(|_| format!("{text:?} is not a byte count (like 512M or 4G)"))?;
    value.checked_mul(multiplier).filter(|bytes| *bytes > 0).ok_or_else(|| format!("{text:?} is out of range"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_host_guest_and_an_optional_mode() {
        let here = std::fs::canonicalize(".").unwrap().display().to_string();
        let ro = mount(".:/data:ro").unwrap();
        assert_eq!((ro.guest_path.as_str(), ro.read_only), ("/data", true));
        assert!(ro.plugin.config.contains(&here));
        assert!(!mount(".:/data").unwrap().read_only);
        assert!(matches!(mount(".:data"), Err(CliError::Usage(_))));
        assert!(matches!(mount("/no/such/dir:/x"), Err(CliError::Host { .. })));
    }

    #[test]
    fn permissions_follow_the_flags() {
        assert_eq!(fs_policy(&[], &[], &[]), json!("allow"));
        let narrowed = fs_policy(&["/data".into()], &["/out".into()], &[]);
        assert_eq!(narrowed["default"], "deny");
        assert_eq!(narrowed["rules"][1]["paths"], json!(["/out", "/out/**"]));
        assert_eq!(fs_policy(&["/data".into()], &[], &[])["rules"].as_array().map(Vec::len), Some(1));
        let mounted = fs_policy(&["/in".into()], &[], &[MountDescriptor::host_dir("/m", "/tmp", true)]);
        assert_eq!(mounted["rules"][1]["paths"], json!(["/m"]), "the mount point itself");
        assert!(mounted["rules"][0]["paths"].as_array().unwrap().contains(&json!("/m/**")), "read below");
        assert_eq!(network_policy(&[]), json!("deny"));
        assert_eq!(network_policy(&["*".into()]), json!("allow"));
        let one = network_policy(&["10.0.0.1:443".into(), "example.com".into()]);
        assert_eq!(
            one["rules"][0]["patterns"],
            json!(["tcp://10.0.0.1:443", "udp://10.0.0.1:443", "tcp://*:*", "udp://*:*", "example.com"])
        );
    }

    #[test]
    fn byte_counts_and_seconds_are_checked() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert!(parse_bytes("0").is_err() && parse_bytes("lots").is_err());
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert!(parse_seconds("-1").is_err() && parse_seconds("NaN").is_err());
    }
}
