//! The CreateVm JSON config: the document a host puts in `CreateVmRequest.config`.
//!
//! The format is the one existing hosts send (`secure-exec-vm-config`): every struct is
//! `camelCase` with `deny_unknown_fields`, every field is optional, and `{}` is a valid config.
//! Handling a request goes through two steps:
//!
//! 1. [`parse_create_vm_config`]: JSON → [`CreateVmConfig`], then [`CreateVmConfig::validate`]
//!    (paths, entry shapes, DNS and listen sanity, builtins, limit keys this sidecar does not
//!    honour, then [`validate_permissions_policy`]). A serde error names the JSON path of the
//!    problem (`invalid create VM config JSON: at `limits.resources.maxProcesses`: …`); other
//!    messages are prefixed `invalid create VM config: ` (permissions: `invalid permissions
//!    policy: `).
//! 2. [`CreateVmConfig::resolve`] / [`CreateVmConfig::resolve_limits`]: defaults applied, limits
//!    checked against their ceilings, DNS addresses parsed, giving the concrete values the
//!    kernel runs with.
//!
//! Every `limits` key is either honoured or refused, never accepted and ignored: the format
//! has keys for subsystems this sidecar does not have (sockets, PTYs, fetch, the JavaScript and
//! Python runtimes, ACP), and a config that sets one is refused with
//! `<key> is not supported by this sidecar yet: <why>` (`VmLimitsConfig::validate`). Only the
//! honoured keys have a resolved value ([`ResolvedLimits`]); `docs/limits.md` lists every key.
//!
//! Every [`ConfigError`] is reported on the wire as `invalid_state` ([`ConfigError::code`]).
//!
//! `cwd` is a **guest** path here (default [`DEFAULT_GUEST_CWD`]); it never names a host
//! directory.

use core::net::{IpAddr, SocketAddr};
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

/// Guest working directory when the config has no `cwd` (what existing hosts expect).
pub const DEFAULT_GUEST_CWD: &str = "/home/user";

/// ASK prompts wait this long for the host's answer before denying: the tool-callback default.
pub const DEFAULT_PERMISSION_PROMPT_TIMEOUT_MS: u64 = 30_000;
/// Upper bound of `permissionPrompts.timeoutMs`: a guest blocked on a prompt holds its resources.
pub const MAX_PERMISSION_PROMPT_TIMEOUT_MS: u64 = 600_000;

/// The filesystem's own defaults (the vfs knows no config).
pub use crate::vfs::{
    DEFAULT_MAX_FD_WRITE_BYTES, DEFAULT_MAX_FILESYSTEM_BYTES, DEFAULT_MAX_INODE_COUNT, DEFAULT_MAX_PREAD_BYTES,
    DEFAULT_MAX_READDIR_ENTRIES,
};
/// Default process-table size (kernel resource policy of the original sidecar).
pub const DEFAULT_MAX_PROCESSES: u64 = 256;
/// Default open file descriptors per VM (kernel resource policy of the original sidecar).
pub const DEFAULT_MAX_OPEN_FDS: u64 = 256;
/// Default live pipes per VM (kernel resource policy of the original sidecar).
pub const DEFAULT_MAX_PIPES: u64 = 128;
/// Default open guest sockets per VM (the original's kernel default).
pub const DEFAULT_MAX_SOCKETS: u64 = 256;
/// Default connected sockets per VM, both ends of a loopback connection counted (the original's).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 256;
/// Default bytes buffered in all of a VM's sockets together (the original's 4 MiB).
pub const DEFAULT_MAX_SOCKET_BUFFERED_BYTES: u64 = 4 * 1024 * 1024;
/// Default datagrams queued in all of a VM's UDP sockets together (the original's).
pub const DEFAULT_MAX_SOCKET_DATAGRAM_QUEUE_LEN: u64 = 1024;
/// Default total argv bytes of one spawn, like Linux's ARG_MAX order of magnitude (1 MiB).
pub const DEFAULT_MAX_PROCESS_ARGV_BYTES: u64 = 1024 * 1024;
/// Default total environment bytes of one spawn (1 MiB).
pub const DEFAULT_MAX_PROCESS_ENV_BYTES: u64 = 1024 * 1024;
/// Default wasm fuel per process. The original left it unlimited; a sandbox bounds CPU too.
/// 5·10¹¹ units is roughly five minutes of guest CPU (the Python execution timeout), enough for
/// compilers and test suites, finite for a runaway loop. Hosts raise it per VM.
pub const DEFAULT_MAX_WASM_FUEL: u64 = 500_000_000_000;
/// Default wasm linear memory per instance. The original left it at the wasm32 ceiling (4 GiB);
/// 512 MiB holds CPython with numpy plus headroom while bounding what one guest can take.
pub const DEFAULT_MAX_WASM_MEMORY_BYTES: u64 = 512 * 1024 * 1024;
/// Default wasm stack per instance. The original left it unlimited; CPython's wasm build needs
/// 8 MiB, so that is the bound: deep recursion traps instead of growing host memory.
pub const DEFAULT_MAX_WASM_STACK_BYTES: u64 = 8 * 1024 * 1024;

// `limits.tools`: the registry of host callbacks lives in sidecar memory and every pending
// callback holds a guest and a slot of the sidecar's pending-request table, so the original's
// fixed bounds below are ceilings as well as defaults: a VM may lower them, never raise them
// (CreateVm refuses a larger value).

/// Timeout of a callback whose definition names none (the original's 30 s): long enough for a
/// host tool that calls a remote service, short enough that a guest waiting on a dead host is
/// answered. Its ceiling is `limits.tools.maxToolTimeoutMs`.
pub const DEFAULT_TOOL_TIMEOUT_MS: u64 = 30_000;
/// Default and ceiling of `limits.tools.maxToolTimeoutMs`, the longest timeout a tool may name
/// (the original's 5 min).
pub const MAX_TOOL_TIMEOUT_MS: u64 = 300_000;
/// Default and ceiling of `limits.tools.maxRegisteredToolkits` (the original's 64).
pub const MAX_REGISTERED_TOOLKITS: u64 = 64;
/// Default and ceiling of `limits.tools.maxRegisteredToolsPerVm`, across toolkits (the
/// original's 256: four full toolkits).
pub const MAX_REGISTERED_TOOLS_PER_VM: u64 = 256;
/// Default and ceiling of `limits.tools.maxToolsPerToolkit` (the original's 64).
pub const MAX_TOOLS_PER_TOOLKIT: u64 = 64;
/// Default and ceiling of `limits.tools.maxToolSchemaBytes`, one input schema (the original's
/// 16 KiB: schemas are shown to models, whose context they use up).
pub const MAX_TOOL_SCHEMA_BYTES: u64 = 16 * 1024;
/// Default and ceiling of `limits.tools.maxToolExamplesPerTool` (the original's 16).
pub const MAX_TOOL_EXAMPLES_PER_TOOL: u64 = 16;
/// Default and ceiling of `limits.tools.maxToolExampleInputBytes`, one example's input (the
/// original's 4 KiB).
pub const MAX_TOOL_EXAMPLE_INPUT_BYTES: u64 = 4 * 1024;

/// Default of `limits.plugins.maxPersistedManifestBytes`, one persisted filesystem state (the
/// original's 64 MiB: a flush or load holds the whole state in memory).
pub const DEFAULT_MAX_PERSISTED_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// Ceiling of `limits.plugins.maxPersistedManifestBytes` (1 GiB): the store never reads a larger
/// state ([`crate::host::store::MAX_PERSISTED_STATE_BYTES`] is this), and a flush or load holds
/// the whole state in memory, so CreateVm refuses a larger value rather than cap it silently.
pub const MAX_PERSISTED_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;
/// Default of `limits.plugins.maxPersistedManifestFileBytes`, one file of a persisted state
/// (1 GiB, the original's: it never binds before the whole state's own bound).
pub const DEFAULT_MAX_PERSISTED_MANIFEST_FILE_BYTES: u64 = 1024 * 1024 * 1024;

/// Default size of a wasm module file accepted for loading (the original's 256 MiB: the module
/// is read whole into memory before it is compiled).
pub const DEFAULT_WASM_MAX_MODULE_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Default bytes one guest read moves (16 MiB, the original's). The wasm runtime also serves one
/// `fd_read` in pieces of at most 1 MiB, so only a lower value changes what guests see.
pub const DEFAULT_WASM_SYNC_READ_LIMIT_BYTES: u64 = 16 * 1024 * 1024;

/// Lowest port a guest may listen on when `listen.portMin` is absent.
pub const DEFAULT_LISTEN_PORT_MIN: u16 = 1;
/// Highest port a guest may listen on when `listen.portMax` is absent.
pub const DEFAULT_LISTEN_PORT_MAX: u16 = 65_535;
/// Whether guests may bind ports below 1024 when `listen.allowPrivileged` is absent.
pub const DEFAULT_LISTEN_ALLOW_PRIVILEGED: bool = false;
/// `dns.nameServers` a VM may name (glibc uses three; more only adds waiting).
pub const MAX_NAME_SERVERS: usize = 8;
/// Port of a `dns.nameServers` entry given as a bare IP.
pub const DEFAULT_DNS_PORT: u16 = 53;

/// Node builtin module names accepted in `jsRuntime.allowedBuiltins` (a `node:` prefix is also
/// accepted).
pub const KNOWN_NODE_BUILTINS: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "dns/promises",
    "domain",
    "events",
    "fs",
    "fs/promises",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "path/posix",
    "path/win32",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "sqlite",
    "stream",
    "stream/consumers",
    "stream/promises",
    "stream/web",
    "string_decoder",
    "sys",
    "timers",
    "timers/promises",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "util/types",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// Whether `name` (with or without a `node:` prefix) is a known Node builtin.
pub fn is_known_node_builtin(name: &str) -> bool {
    let bare = name.strip_prefix("node:").unwrap_or(name);
    KNOWN_NODE_BUILTINS.contains(&bare)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a CreateVm config (or a ConfigureVm permissions policy) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The document is not JSON or does not have the config's shape. `path` is the JSON path of
    /// the offending value (`limits.resources.maxProcesses`, `permissions.fs.rules[0].mode`),
    /// empty for the document itself.
    #[error("invalid create VM config JSON: {}{message}", json_location(.path))]
    Json { path: String, message: String },
    /// The document parsed but a value is out of range or inconsistent; the message names the
    /// JSON path.
    #[error("invalid create VM config: {0}")]
    Invalid(String),
    /// A permissions policy the engine refuses (an empty rule list, an operation its domain does
    /// not have, a pattern over a bound);
    /// the message is the engine's, e.g. the original's `invalid permissions policy: ...`.
    #[error(transparent)]
    Policy(#[from] crate::policy::permissions::PolicyError),
}

impl ConfigError {
    /// The `RejectedResponse.code` for this error: always `invalid_state`, as existing hosts expect.
    pub fn code(&self) -> &'static str {
        "invalid_state"
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

fn json_location(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("at `{path}`: ")
    }
}

// ---------------------------------------------------------------------------------------------
// Top level
// ---------------------------------------------------------------------------------------------

/// The parsed `CreateVmRequest.config` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVmConfig {
    /// Guest working directory (absolute, no `..`); absent → [`DEFAULT_GUEST_CWD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Initial guest environment, filtered through the `env` policy (op `read`) at create time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub root_filesystem: RootFilesystemConfig,
    /// Absent → deny everything ([`PermissionsPolicy::deny_all`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionsPolicy>,
    /// Absent → every default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<VmLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_root: Option<NativeRootConfig>,
    /// Absent → ports 1-65535, no privileged ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<ListenConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loopback_exempt_ports: Vec<u16>,
    /// Absent → full Node emulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_runtime: Option<JsRuntimeConfig>,
    /// Our extension: whether ASK decisions are sent to the host as prompts. Disabled → ASK
    /// behaves as deny (the original sidecar's behaviour).
    #[serde(default, skip_serializing_if = "PermissionPromptsConfig::is_default")]
    pub permission_prompts: PermissionPromptsConfig,
}

/// Parses and validates a `CreateVmRequest.config` document: everything that can be checked
/// on the document alone. Checks of the resolved limits run in
/// [`CreateVmConfig::resolve_limits`].
pub fn parse_create_vm_config(json: &str) -> Result<CreateVmConfig, ConfigError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let config: CreateVmConfig = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ConfigError::Json { path: error.path().to_string(), message: error.inner().to_string() })?;
    deserializer.end().map_err(|error| ConfigError::Json { path: String::new(), message: error.to_string() })?;
    config.validate()?;
    Ok(config)
}

impl CreateVmConfig {
    /// The checks that need nothing but the document, in the original sidecar's order, then the
    /// permissions policy's empty-list checks. ([`parse_create_vm_config`] runs this.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cwd) = self.cwd.as_deref() {
            validate_guest_path("cwd", cwd).map_err(ConfigError::invalid)?;
        }
        self.root_filesystem.validate()?;
        if let Some(native_root) = &self.native_root {
            native_root.validate()?;
            if !self.root_filesystem.bootstrap_entries.is_empty() {
                return Err(ConfigError::invalid("nativeRoot does not support rootFilesystem.bootstrapEntries"));
            }
            if !self.root_filesystem.lowers.is_empty() {
                return Err(ConfigError::invalid("native root filesystems do not support rootFilesystem.lowers"));
            }
        }
        if let Some(dns) = &self.dns {
            dns.validate()?;
        }
        if let Some(listen) = &self.listen {
            listen.validate()?;
        }
        if let Some(limits) = &self.limits {
            limits.validate()?;
        }
        if let Some(js_runtime) = &self.js_runtime {
            js_runtime.validate()?;
        }
        self.permission_prompts.validate()?;
        if let Some(permissions) = &self.permissions {
            validate_permissions_policy(permissions)?;
        }
        Ok(())
    }

    /// Refuses the first top-level key that is set but whose subsystem this sidecar does not have
    /// yet: a config key is honoured or refused, never accepted and ignored. Absent, `null` or
    /// empty (as hosts send them by default) they are fine.
    pub fn refuse_unsupported(&self) -> Result<(), ConfigError> {
        let unsupported = [("nativeRoot", self.native_root.is_some(), "VMs get the in-memory root filesystem")];
        match unsupported.iter().find(|(_, set, _)| *set) {
            Some((key, _, why)) => {
                Err(ConfigError::invalid(format!("{key} is not supported by this sidecar yet: {why}")))
            }
            None => Ok(()),
        }
    }

    /// Every honoured limit with its default applied, checked.
    pub fn resolve_limits(&self) -> Result<ResolvedLimits, ConfigError> {
        match &self.limits {
            Some(limits) => limits.resolve(),
            None => VmLimitsConfig::default().resolve(),
        }
    }

    /// Applies every default and checks the resolved values: limits, DNS addresses, listen range.
    pub fn resolve(&self) -> Result<ResolvedVmConfig, ConfigError> {
        let limits = self.resolve_limits()?;
        let dns = match &self.dns {
            Some(dns) => dns.resolve()?,
            None => ResolvedDns::default(),
        };
        let listen = match &self.listen {
            Some(listen) => listen.resolve()?,
            None => ListenPolicy::default(),
        };
        Ok(ResolvedVmConfig { limits, dns, listen })
    }

    /// The guest working directory: `cwd`, else [`DEFAULT_GUEST_CWD`].
    pub fn guest_cwd(&self) -> &str {
        self.cwd.as_deref().unwrap_or(DEFAULT_GUEST_CWD)
    }

    /// The policy the VM starts with: the configured one, else [`PermissionsPolicy::deny_all`].
    pub fn effective_permissions(&self) -> PermissionsPolicy {
        self.permissions.clone().unwrap_or_else(PermissionsPolicy::deny_all)
    }
}

/// Everything [`CreateVmConfig::resolve`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVmConfig {
    pub limits: ResolvedLimits,
    pub dns: ResolvedDns,
    pub listen: ListenPolicy,
}

/// `Err(message)` unless `path` is absolute with no `..` segment.
fn validate_guest_path(label: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{label} must be absolute"));
    }
    if path.split('/').any(|segment| segment == "..") {
        return Err(format!("{label} must not contain '..'"));
    }
    Ok(())
}

/// `permissionPrompts` (our extension): ASK decisions become host prompts when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionPromptsConfig {
    #[serde(default)]
    pub enabled: bool,
    /// How long a prompt waits for the host's answer before it is denied.
    #[serde(default = "default_permission_prompt_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_permission_prompt_timeout_ms() -> u64 {
    DEFAULT_PERMISSION_PROMPT_TIMEOUT_MS
}

impl Default for PermissionPromptsConfig {
    fn default() -> Self {
        Self { enabled: false, timeout_ms: DEFAULT_PERMISSION_PROMPT_TIMEOUT_MS }
    }
}

impl PermissionPromptsConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout_ms == 0 {
            return Err(ConfigError::invalid("permissionPrompts.timeoutMs must be greater than zero"));
        }
        if self.timeout_ms > MAX_PERMISSION_PROMPT_TIMEOUT_MS {
            return Err(ConfigError::invalid(format!(
                "permissionPrompts.timeoutMs ({}) must be <= {MAX_PERMISSION_PROMPT_TIMEOUT_MS}",
                self.timeout_ms
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Root filesystem
// ---------------------------------------------------------------------------------------------

/// `rootFilesystem`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RootFilesystemConfig {
    #[serde(default)]
    pub mode: RootFilesystemMode,
    #[serde(default)]
    pub disable_default_base_layer: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lowers: Vec<RootFilesystemLower>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_entries: Vec<RootFilesystemEntry>,
}

impl RootFilesystemConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (lower_index, lower) in self.lowers.iter().enumerate() {
            if let RootFilesystemLower::Snapshot { entries } = lower {
                for (index, entry) in entries.iter().enumerate() {
                    entry.validate(&format!("rootFilesystem.lowers[{lower_index}].entries[{index}]"))?;
                }
            }
        }
        for (index, entry) in self.bootstrap_entries.iter().enumerate() {
            entry.validate(&format!("rootFilesystem.bootstrapEntries[{index}]"))?;
        }
        Ok(())
    }
}

/// `rootFilesystem.mode`: `"ephemeral"` (default) or `"read-only"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootFilesystemMode {
    #[default]
    Ephemeral,
    ReadOnly,
}

/// One `rootFilesystem.lowers` item, tagged by `"kind"`. Like the original, extra keys are
/// ignored here (the only untyped-lenient object of the format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RootFilesystemLower {
    /// `{"kind":"snapshot","entries":[…]}`.
    Snapshot {
        #[serde(default)]
        entries: Vec<RootFilesystemEntry>,
    },
    /// `{"kind":"bundledBaseFilesystem"}`.
    BundledBaseFilesystem,
}

/// One filesystem entry of a snapshot lower or of `bootstrapEntries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RootFilesystemEntry {
    pub path: String,
    pub kind: RootFilesystemEntryKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<RootFilesystemEntryEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub executable: bool,
}

impl RootFilesystemEntry {
    /// `at` is the entry's JSON path, appended to the original message.
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError::invalid(format!("{message} (at {at})")));
        if let Err(message) = validate_guest_path("root filesystem entry path", &self.path) {
            return fail(message);
        }
        let path = &self.path;
        match self.kind {
            RootFilesystemEntryKind::File => {
                if self.target.is_some() {
                    return fail(format!("file entry {path} must not include target"));
                }
            }
            RootFilesystemEntryKind::Directory => {
                if self.content.is_some() || self.encoding.is_some() || self.target.is_some() {
                    return fail(format!("directory entry {path} must not include content, encoding, or target"));
                }
            }
            RootFilesystemEntryKind::Symlink => {
                if self.target.as_deref().unwrap_or("").is_empty() {
                    return fail(format!("symlink entry {path} requires target"));
                }
                if self.content.is_some() || self.encoding.is_some() {
                    return fail(format!("symlink entry {path} must not include content or encoding"));
                }
            }
        }
        Ok(())
    }
}

/// `kind` of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootFilesystemEntryKind {
    File,
    Directory,
    Symlink,
}

/// `encoding` of a file entry's `content`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootFilesystemEntryEncoding {
    Utf8,
    Base64,
}

/// `nativeRoot`: the root filesystem is a mount plugin instead of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NativeRootConfig {
    pub plugin: MountPluginDescriptor,
    #[serde(default)]
    pub read_only: bool,
}

impl NativeRootConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.plugin.id.trim().is_empty() {
            return Err(ConfigError::invalid("nativeRoot.plugin.id is required"));
        }
        Ok(())
    }
}

/// A mount plugin and its plugin-specific JSON config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPluginDescriptor {
    pub id: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------------

/// `allow`, `ask` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionMode {
    Allow,
    Ask,
    Deny,
}

const PERMISSION_MODE_NAMES: &[&str] = &["allow", "ask", "deny"];

impl PermissionMode {
    fn from_name<E: de::Error>(name: &str) -> Result<Self, E> {
        match name {
            "allow" => Ok(Self::Allow),
            "ask" => Ok(Self::Ask),
            "deny" => Ok(Self::Deny),
            other => Err(E::unknown_variant(other, PERMISSION_MODE_NAMES)),
        }
    }
}

/// The policy of every domain. A missing domain denies everything in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionsPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsPermissionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<PatternPermissionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_process: Option<PatternPermissionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<PatternPermissionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<PatternPermissionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<PatternPermissionScope>,
}

impl PermissionsPolicy {
    /// Every domain set to one mode.
    pub fn uniform(mode: PermissionMode) -> Self {
        Self {
            fs: Some(FsPermissionScope::Mode(mode)),
            network: Some(PatternPermissionScope::Mode(mode)),
            child_process: Some(PatternPermissionScope::Mode(mode)),
            process: Some(PatternPermissionScope::Mode(mode)),
            env: Some(PatternPermissionScope::Mode(mode)),
            tool: Some(PatternPermissionScope::Mode(mode)),
        }
    }

    /// The policy of a CreateVm config without `permissions`.
    pub fn deny_all() -> Self {
        Self::uniform(PermissionMode::Deny)
    }

    /// Every domain allowed (internal bootstrap only; guests never run under it).
    pub fn allow_all() -> Self {
        Self::uniform(PermissionMode::Allow)
    }
}

/// `permissions.fs`: one mode for everything, or a rule set over paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FsPermissionScope {
    Mode(PermissionMode),
    Rules(FsPermissionRuleSet),
}

/// `permissions.{network,childProcess,process,env,tool}`: one mode, or a rule set over patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PatternPermissionScope {
    Mode(PermissionMode),
    Rules(PatternPermissionRuleSet),
}

/// Rules evaluated in order over `default` (absent → deny); the last matching rule wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FsPermissionRuleSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<PermissionMode>,
    #[serde(default)]
    pub rules: Vec<FsPermissionRule>,
}

/// Like [`FsPermissionRuleSet`], with `patterns` rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatternPermissionRuleSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<PermissionMode>,
    #[serde(default)]
    pub rules: Vec<PatternPermissionRule>,
}

/// Applies `mode` when the operation is in `operations` (or it holds `"*"`) and a glob of `paths`
/// matches the path. `operations` must be fs operations ([`crate::policy::permissions::Domain::operations`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FsPermissionRule {
    pub mode: PermissionMode,
    #[serde(default)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

/// Applies `mode` when the operation is in `operations` (or it holds `"*"`) and a glob of
/// `patterns` matches the resource. `operations` must be operations of the rule's domain
/// ([`crate::policy::permissions::Domain::operations`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatternPermissionRule {
    pub mode: PermissionMode,
    #[serde(default)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// Deserializes an untagged scope — a mode string or a rule-set object — keeping the JSON path
/// inside the rule set (serde's `untagged` would buffer it and report only "did not match").
struct ScopeVisitor<T>(std::marker::PhantomData<T>);

/// What a scope is made of: a mode or a rule set `R`.
trait Scope: Sized {
    type RuleSet: for<'de> Deserialize<'de>;
    fn mode(mode: PermissionMode) -> Self;
    fn rules(rules: Self::RuleSet) -> Self;
}

impl Scope for FsPermissionScope {
    type RuleSet = FsPermissionRuleSet;
    fn mode(mode: PermissionMode) -> Self {
        Self::Mode(mode)
    }
    fn rules(rules: FsPermissionRuleSet) -> Self {
        Self::Rules(rules)
    }
}

impl Scope for PatternPermissionScope {
    type RuleSet = PatternPermissionRuleSet;
    fn mode(mode: PermissionMode) -> Self {
        Self::Mode(mode)
    }
    fn rules(rules: PatternPermissionRuleSet) -> Self {
        Self::Rules(rules)
    }
}

impl<'de, T: Scope> Visitor<'de> for ScopeVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a permission mode (\"allow\", \"ask\" or \"deny\") or a rule set object")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        PermissionMode::from_name(value).map(T::mode)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::RuleSet::deserialize(de::value::MapAccessDeserializer::new(map)).map(T::rules)
    }
}

impl<'de> Deserialize<'de> for FsPermissionScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScopeVisitor(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for PatternPermissionScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScopeVisitor(std::marker::PhantomData))
    }
}

/// The checks of a permissions policy, run at CreateVm and at ConfigureVm (after converting the
/// wire policy with `PermissionsPolicy::from`): the permission engine's own validation, so the
/// rules live in one place (see [`crate::policy::permissions::PermissionsPolicy::validate`]).
pub fn validate_permissions_policy(policy: &PermissionsPolicy) -> Result<(), ConfigError> {
    Ok(crate::policy::permissions::PermissionsPolicy::from(policy).validate()?)
}

impl From<schema::wire::PermissionMode> for PermissionMode {
    fn from(mode: schema::wire::PermissionMode) -> Self {
        match mode {
            schema::wire::PermissionMode::Allow => Self::Allow,
            schema::wire::PermissionMode::Ask => Self::Ask,
            schema::wire::PermissionMode::Deny => Self::Deny,
        }
    }
}

impl From<&schema::wire::FsPermissionScope> for FsPermissionScope {
    fn from(scope: &schema::wire::FsPermissionScope) -> Self {
        match scope {
            schema::wire::FsPermissionScope::PermissionMode(mode) => Self::Mode((*mode).into()),
            schema::wire::FsPermissionScope::FsPermissionRuleSet(rule_set) => Self::Rules(FsPermissionRuleSet {
                default: rule_set.default.map(PermissionMode::from),
                rules: rule_set
                    .rules
                    .iter()
                    .map(|rule| FsPermissionRule {
                        mode: rule.mode.into(),
                        operations: rule.operations.clone(),
                        paths: rule.paths.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

impl From<&schema::wire::PatternPermissionScope> for PatternPermissionScope {
    fn from(scope: &schema::wire::PatternPermissionScope) -> Self {
        match scope {
            schema::wire::PatternPermissionScope::PermissionMode(mode) => Self::Mode((*mode).into()),
            schema::wire::PatternPermissionScope::PatternPermissionRuleSet(rule_set) => {
                Self::Rules(PatternPermissionRuleSet {
                    default: rule_set.default.map(PermissionMode::from),
                    rules: rule_set
                        .rules
                        .iter()
                        .map(|rule| PatternPermissionRule {
                            mode: rule.mode.into(),
                            operations: rule.operations.clone(),
                            patterns: rule.patterns.clone(),
                        })
                        .collect(),
                })
            }
        }
    }
}

/// The ConfigureVm (BARE) form of a policy, converted so one engine evaluates both.
impl From<&schema::wire::PermissionsPolicy> for PermissionsPolicy {
    fn from(policy: &schema::wire::PermissionsPolicy) -> Self {
        Self {
            fs: policy.fs.as_ref().map(FsPermissionScope::from),
            network: policy.network.as_ref().map(PatternPermissionScope::from),
            child_process: policy.child_process.as_ref().map(PatternPermissionScope::from),
            process: policy.process.as_ref().map(PatternPermissionScope::from),
            env: policy.env.as_ref().map(PatternPermissionScope::from),
            tool: policy.tool.as_ref().map(PatternPermissionScope::from),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DNS, listen, JS runtime
// ---------------------------------------------------------------------------------------------

/// `dns`: name servers (`IP` or `IP:port`) and static host overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Vec<String>>,
}

impl DnsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.name_servers.iter().any(|entry| entry.trim().is_empty()) {
            return Err(ConfigError::invalid("dns.nameServers entries must not be empty"));
        }
        let max_servers = MAX_NAME_SERVERS;
        if self.name_servers.len() > max_servers {
            return Err(ConfigError::invalid(format!("dns.nameServers may name at most {max_servers} servers")));
        }
        for (host, addresses) in &self.overrides {
            if host.trim().is_empty() {
                return Err(ConfigError::invalid("dns.overrides keys must not be empty"));
            }
            if addresses.is_empty() {
                return Err(ConfigError::invalid(format!("dns.overrides.{host} must contain at least one address")));
            }
        }
        Ok(())
    }

    /// Parses the servers and override addresses; hostnames are trimmed, stripped of a trailing
    /// `.` and lowercased (when two keys normalise alike, the later one in key order wins).
    pub fn resolve(&self) -> Result<ResolvedDns, ConfigError> {
        self.validate()?;
        let mut name_servers = Vec::with_capacity(self.name_servers.len());
        for (index, entry) in self.name_servers.iter().enumerate() {
            let address = match (entry.parse::<SocketAddr>(), entry.parse::<IpAddr>()) {
                (Ok(address), _) => address,
                (Err(_), Ok(ip)) => SocketAddr::new(ip, DEFAULT_DNS_PORT),
                (Err(_), Err(_)) => {
                    return Err(ConfigError::invalid(format!(
                        "invalid dns.nameServers[{index}] entry {entry}; expected IP or IP:port"
                    )))
                }
            };
            name_servers.push(address);
        }
        let mut overrides = BTreeMap::new();
        for (host, entries) in &self.overrides {
            let normalized = host.trim().trim_end_matches('.').to_ascii_lowercase();
            if normalized.is_empty() {
                return Err(ConfigError::invalid(format!(
                    "DNS hostname must not be empty: dns.overrides key {host:?}"
                )));
            }
            let mut addresses = Vec::with_capacity(entries.len());
            for entry in entries {
                let address = entry.parse::<IpAddr>().map_err(|error| {
                    ConfigError::invalid(format!("invalid DNS override dns.overrides.{host}={entry}: {error}"))
                })?;
                addresses.push(address);
            }
            overrides.insert(normalized, addresses);
        }
        Ok(ResolvedDns { name_servers, overrides })
    }
}

/// Parsed `dns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedDns {
    pub name_servers: Vec<SocketAddr>,
    /// Normalised hostname → addresses.
    pub overrides: BTreeMap<String, Vec<IpAddr>>,
}

/// `listen`: which ports guests may bind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_min: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privileged: Option<bool>,
}

impl ListenConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.port_min == Some(0) {
            return Err(ConfigError::invalid("listen.portMin must be between 1 and 65535"));
        }
        if self.port_max == Some(0) {
            return Err(ConfigError::invalid("listen.portMax must be between 1 and 65535"));
        }
        if let (Some(min), Some(max)) = (self.port_min, self.port_max) {
            if min > max {
                return Err(ConfigError::invalid("listen.portMin must be <= listen.portMax"));
            }
        }
        Ok(())
    }

    /// Applies the defaults; the resolved range must not be empty.
    pub fn resolve(&self) -> Result<ListenPolicy, ConfigError> {
        self.validate()?;
        let policy = ListenPolicy {
            port_min: self.port_min.unwrap_or(DEFAULT_LISTEN_PORT_MIN),
            port_max: self.port_max.unwrap_or(DEFAULT_LISTEN_PORT_MAX),
            allow_privileged: self.allow_privileged.unwrap_or(DEFAULT_LISTEN_ALLOW_PRIVILEGED),
        };
        if policy.port_min > policy.port_max {
            return Err(ConfigError::invalid(format!(
                "listen.portMin ({}) must be <= listen.portMax ({})",
                policy.port_min, policy.port_max
            )));
        }
        Ok(policy)
    }
}

/// Resolved `listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenPolicy {
    pub port_min: u16,
    pub port_max: u16,
    pub allow_privileged: bool,
}

impl Default for ListenPolicy {
    fn default() -> Self {
        Self {
            port_min: DEFAULT_LISTEN_PORT_MIN,
            port_max: DEFAULT_LISTEN_PORT_MAX,
            allow_privileged: DEFAULT_LISTEN_ALLOW_PRIVILEGED,
        }
    }
}

/// `jsRuntime`: which host environment guest JS sees. Set at create time only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsRuntimeConfig {
    #[serde(default)]
    pub platform: JsRuntimePlatform,
    #[serde(default)]
    pub module_resolution: JsModuleResolution,
    /// Absent → engine default; `[]` → no builtins; a list → exactly those. Node platform only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_builtins: Option<Vec<String>>,
}

impl JsRuntimeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(allowed) = &self.allowed_builtins {
            if self.platform != JsRuntimePlatform::Node {
                return Err(ConfigError::invalid(
                    "jsRuntime.allowedBuiltins is only valid when jsRuntime.platform is \"node\"",
                ));
            }
            if let Some(name) = allowed.iter().find(|name| !is_known_node_builtin(name)) {
                return Err(ConfigError::invalid(format!(
                    "jsRuntime.allowedBuiltins contains unknown builtin {name:?}"
                )));
            }
        }
        Ok(())
    }
}

/// `jsRuntime.platform`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsRuntimePlatform {
    /// Full Node.js surface.
    #[default]
    Node,
    /// Web-platform globals, no Node surface.
    Browser,
    /// Console, timers and microtasks only.
    Neutral,
    /// ECMAScript globals and WebAssembly only.
    Bare,
}

/// `jsRuntime.moduleResolution`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsModuleResolution {
    /// node_modules walk, exports/imports conditions.
    #[default]
    Node,
    /// Relative and absolute specifiers only.
    Relative,
    /// Every import fails.
    None,
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// `limits`: optional overrides of the defaults, section by section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmLimitsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<PluginLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acp: Option<AcpLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_runtime: Option<JsRuntimeLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonLimitsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmLimitsConfig>,
}

macro_rules! limits_config_struct {
    ($(#[$meta:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<u64>,
            )*
        }
    };
}

limits_config_struct!(
    /// `limits.resources`: kernel resource limits. Zero is allowed for every honoured key; the
    /// keys of subsystems this sidecar lacks (PTYs, sockets, ...) are refused when present.
    ResourceLimitsConfig {
        cpu_count,
        max_processes,
        max_open_fds,
        max_pipes,
        max_ptys,
        max_sockets,
        max_connections,
        max_socket_buffered_bytes,
        max_socket_datagram_queue_len,
        max_filesystem_bytes,
        max_inode_count,
        max_blocking_read_ms,
        max_pread_bytes,
        max_fd_write_bytes,
        max_process_argv_bytes,
        max_process_env_bytes,
        max_readdir_entries,
        max_wasm_fuel,
        max_wasm_memory_bytes,
        max_wasm_stack_bytes,
    }
);

limits_config_struct!(
    /// `limits.http`.
    HttpLimitsConfig { max_fetch_response_bytes }
);

limits_config_struct!(
    /// `limits.tools`.
    ToolLimitsConfig {
        default_tool_timeout_ms,
        max_tool_timeout_ms,
        max_registered_toolkits,
        max_registered_tools_per_vm,
        max_tools_per_toolkit,
        max_tool_schema_bytes,
        max_tool_examples_per_tool,
        max_tool_example_input_bytes,
    }
);

limits_config_struct!(
    /// `limits.plugins`.
    PluginLimitsConfig { max_persisted_manifest_bytes, max_persisted_manifest_file_bytes }
);

limits_config_struct!(
    /// `limits.acp`.
    AcpLimitsConfig { max_read_line_bytes, stdout_buffer_byte_limit }
);

limits_config_struct!(
    /// `limits.jsRuntime`.
    JsRuntimeLimitsConfig {
        v8_heap_limit_mb,
        captured_output_limit_bytes,
        stdin_buffer_limit_bytes,
        event_payload_limit_bytes,
        v8_ipc_max_frame_bytes,
    }
);

limits_config_struct!(
    /// `limits.python`.
    PythonLimitsConfig { output_buffer_max_bytes, execution_timeout_ms, vfs_rpc_timeout_ms }
);

limits_config_struct!(
    /// `limits.wasm`.
    WasmLimitsConfig { max_module_file_bytes, captured_output_limit_bytes, sync_read_limit_bytes }
);

/// The honoured `limits.resources` keys, every default applied. (The other keys of
/// [`ResourceLimitsConfig`] are refused at CreateVm.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLimits {
    pub max_processes: u64,
    pub max_open_fds: u64,
    pub max_pipes: u64,
    pub max_sockets: u64,
    pub max_connections: u64,
    pub max_socket_buffered_bytes: u64,
    pub max_socket_datagram_queue_len: u64,
    pub max_filesystem_bytes: u64,
    pub max_inode_count: u64,
    pub max_pread_bytes: u64,
    pub max_fd_write_bytes: u64,
    pub max_process_argv_bytes: u64,
    pub max_process_env_bytes: u64,
    pub max_readdir_entries: u64,
    pub max_wasm_fuel: u64,
    pub max_wasm_memory_bytes: u64,
    pub max_wasm_stack_bytes: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            max_processes: DEFAULT_MAX_PROCESSES,
            max_open_fds: DEFAULT_MAX_OPEN_FDS,
            max_pipes: DEFAULT_MAX_PIPES,
            max_sockets: DEFAULT_MAX_SOCKETS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_socket_buffered_bytes: DEFAULT_MAX_SOCKET_BUFFERED_BYTES,
            max_socket_datagram_queue_len: DEFAULT_MAX_SOCKET_DATAGRAM_QUEUE_LEN,
            max_filesystem_bytes: DEFAULT_MAX_FILESYSTEM_BYTES,
            max_inode_count: DEFAULT_MAX_INODE_COUNT,
            max_pread_bytes: DEFAULT_MAX_PREAD_BYTES,
            max_fd_write_bytes: DEFAULT_MAX_FD_WRITE_BYTES,
            max_process_argv_bytes: DEFAULT_MAX_PROCESS_ARGV_BYTES,
            max_process_env_bytes: DEFAULT_MAX_PROCESS_ENV_BYTES,
            max_readdir_entries: DEFAULT_MAX_READDIR_ENTRIES,
            max_wasm_fuel: DEFAULT_MAX_WASM_FUEL,
            max_wasm_memory_bytes: DEFAULT_MAX_WASM_MEMORY_BYTES,
            max_wasm_stack_bytes: DEFAULT_MAX_WASM_STACK_BYTES,
        }
    }
}

/// Resolved `limits.tools`: what host-callback registration and invocation enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLimits {
    /// The timeout of a callback whose definition names none.
    pub default_tool_timeout_ms: u64,
    /// The longest timeout a definition may name.
    pub max_tool_timeout_ms: u64,
    pub max_registered_toolkits: u64,
    pub max_registered_tools_per_vm: u64,
    pub max_tools_per_toolkit: u64,
    pub max_tool_schema_bytes: u64,
    pub max_tool_examples_per_tool: u64,
    pub max_tool_example_input_bytes: u64,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            default_tool_timeout_ms: DEFAULT_TOOL_TIMEOUT_MS,
            max_tool_timeout_ms: MAX_TOOL_TIMEOUT_MS,
            max_registered_toolkits: MAX_REGISTERED_TOOLKITS,
            max_registered_tools_per_vm: MAX_REGISTERED_TOOLS_PER_VM,
            max_tools_per_toolkit: MAX_TOOLS_PER_TOOLKIT,
            max_tool_schema_bytes: MAX_TOOL_SCHEMA_BYTES,
            max_tool_examples_per_tool: MAX_TOOL_EXAMPLES_PER_TOOL,
            max_tool_example_input_bytes: MAX_TOOL_EXAMPLE_INPUT_BYTES,
        }
    }
}

/// Resolved `limits.plugins`: what persistence (the root filesystem state) enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// One encoded state, on flush and on load.
    pub max_persisted_manifest_bytes: u64,
    /// One file's content in a state, on flush and on load.
    pub max_persisted_manifest_file_bytes: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            max_persisted_manifest_bytes: DEFAULT_MAX_PERSISTED_MANIFEST_BYTES,
            max_persisted_manifest_file_bytes: DEFAULT_MAX_PERSISTED_MANIFEST_FILE_BYTES,
        }
    }
}

/// Resolved `limits.wasm` (its `capturedOutputLimitBytes` is refused: output is streamed as
/// events, never captured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmLimits {
    /// A module file larger than this is not loaded.
    pub max_module_file_bytes: u64,
    /// One guest read (`read`, `pread`, of a file, pipe or stdin) moves at most this many bytes.
    pub sync_read_limit_bytes: u64,
}

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            max_module_file_bytes: DEFAULT_WASM_MAX_MODULE_FILE_BYTES,
            sync_read_limit_bytes: DEFAULT_WASM_SYNC_READ_LIMIT_BYTES,
        }
    }
}

/// How long a Python process may run by default, in milliseconds of the kernel clock: the
/// original's 5 minutes.
pub const DEFAULT_PYTHON_EXECUTION_TIMEOUT_MS: u64 = 5 * 60 * 1000;

/// Resolved `limits.python`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLimits {
    /// A Python process still running this long after it started is ended (status 124, the
    /// reason on its stderr); 0: never.
    pub execution_timeout_ms: u64,
}

impl Default for PythonLimits {
    fn default() -> Self {
        Self { execution_timeout_ms: DEFAULT_PYTHON_EXECUTION_TIMEOUT_MS }
    }
}

/// The largest HTTP response the kernel reads for a fetch (`VmFetch`), body and head: its
/// answer's JSON must fit one 16 MiB frame, and base64 grows the body by a third.
pub const MAX_FETCH_RESPONSE_BYTES: u64 = 8 << 20;

/// Resolved `limits.http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A fetch whose response is larger is refused (`VmFetch`: `execution_error`).
    pub max_fetch_response_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_fetch_response_bytes: MAX_FETCH_RESPONSE_BYTES }
    }
}

/// Every honoured limit of a VM, defaults applied and checked. A key this sidecar refuses has
/// no field here: nothing could read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedLimits {
    pub resources: ResourceLimits,
    pub tools: ToolLimits,
    pub plugins: PluginLimits,
    pub wasm: WasmLimits,
    pub http: HttpLimits,
    pub python: PythonLimits,
}

/// Overrides `target` with `value` when the key is present.
fn set(target: &mut u64, value: Option<u64>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// `Err` when `key`'s value (a count or size used as `usize`) does not fit this platform.
fn fits_usize(key: &str, value: u64) -> Result<(), ConfigError> {
    usize::try_from(value)
        .map(|_| ())
        .map_err(|_| ConfigError::invalid(format!("{key} value {value} does not fit this platform")))
}

impl VmLimitsConfig {
    /// The keys of the format this sidecar does not honour, each with its value in this
    /// document and why it is refused.
    ///
    /// A key is refused whenever it is present, even with the value the original sidecar
    /// defaulted to: those defaults describe subsystems this sidecar does not have (or, for
    /// `maxBlockingReadMs`, one that works differently here), so no value of the key says
    /// anything true about this sidecar, and a host that sets one expects a behaviour it would
    /// not get. A config that leaves them out (or `null`) is unaffected.
    fn unsupported_keys(&self) -> [(&'static str, Option<u64>, &'static str); 13] {
        const NO_ACP: &str = "there is no ACP agent adapter";
        const NO_V8: &str = "JavaScript runs on QuickJS inside WebAssembly, with no V8 isolate or IPC channel";
        let resources = self.resources.as_ref();
        let acp = self.acp.as_ref();
        let js = self.js_runtime.as_ref();
        let python = self.python.as_ref();
        [
            (
                "limits.resources.cpuCount",
                resources.and_then(|r| r.cpu_count),
                "guests run on one deterministic executor and no guest interface reports a CPU count",
            ),
            ("limits.resources.maxPtys", resources.and_then(|r| r.max_ptys), "guests have no pseudo-terminals"),
            (
                "limits.resources.maxBlockingReadMs",
                resources.and_then(|r| r.max_blocking_read_ms),
                "a blocking read waits for data or end of file with no timeout, as on POSIX",
            ),
            ("limits.acp.maxReadLineBytes", acp.and_then(|a| a.max_read_line_bytes), NO_ACP),
            ("limits.acp.stdoutBufferByteLimit", acp.and_then(|a| a.stdout_buffer_byte_limit), NO_ACP),
            (
                "limits.jsRuntime.v8HeapLimitMb",
                js.and_then(|j| j.v8_heap_limit_mb),
                "JavaScript runs on QuickJS inside WebAssembly: its heap is bounded by limits.resources.maxWasmMemoryBytes",
            ),
            (
                "limits.jsRuntime.capturedOutputLimitBytes",
                js.and_then(|j| j.captured_output_limit_bytes),
                "process output is streamed as ProcessOutput events, never captured",
            ),
            (
                "limits.jsRuntime.stdinBufferLimitBytes",
                js.and_then(|j| j.stdin_buffer_limit_bytes),
                "a node process's stdin is a kernel pipe, bounded like every process's",
            ),
            ("limits.jsRuntime.eventPayloadLimitBytes", js.and_then(|j| j.event_payload_limit_bytes), NO_V8),
            ("limits.jsRuntime.v8IpcMaxFrameBytes", js.and_then(|j| j.v8_ipc_max_frame_bytes), NO_V8),
            (
                "limits.python.outputBufferMaxBytes",
                python.and_then(|p| p.output_buffer_max_bytes),
                "Python's output is streamed as ProcessOutput events, never buffered",
            ),
            (
                "limits.python.vfsRpcTimeoutMs",
                python.and_then(|p| p.vfs_rpc_timeout_ms),
                "Python's file calls are kernel calls, not requests to the host: there is none to time out",
            ),
            (
                "limits.wasm.capturedOutputLimitBytes",
                self.wasm.as_ref().and_then(|w| w.captured_output_limit_bytes),
                "process output is streamed as ProcessOutput events, never captured",
            ),
        ]
    }

    /// The JSON paths of every `limits` key this sidecar refuses, in the format's order.
    pub fn unsupported_key_names() -> Vec<&'static str> {
        Self::default().unsupported_keys().iter().map(|(key, _, _)| *key).collect()
    }

    /// Refuses the first key present in the document that this sidecar does not honour.
    fn refuse_unsupported(&self) -> Result<(), ConfigError> {
        match self.unsupported_keys().iter().find(|(_, value, _)| value.is_some()) {
            Some((key, _, why)) => {
                Err(ConfigError::invalid(format!("{key} is not supported by this sidecar yet: {why}")))
            }
            None => Ok(()),
        }
    }

    /// The checks that need only the document, on keys present in it: keys this sidecar does
    /// not honour first, then the original `validate()`'s.
    fn validate(&self) -> Result<(), ConfigError> {
        self.refuse_unsupported()?;
        if let Some(tools) = &self.tools {
            if let (Some(default), Some(max)) = (tools.default_tool_timeout_ms, tools.max_tool_timeout_ms) {
                if default > max {
                    return Err(ConfigError::invalid(
                        "limits.tools.defaultToolTimeoutMs must be <= limits.tools.maxToolTimeoutMs",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies the defaults and checks the resulting limits (refusing, like
    /// `validate`, a key this sidecar does not honour).
    pub fn resolve(&self) -> Result<ResolvedLimits, ConfigError> {
        self.refuse_unsupported()?;
        let mut limits = ResolvedLimits::default();
        if let Some(config) = &self.resources {
            apply_resource_limits(&mut limits.resources, config);
        }
        if let Some(config) = &self.tools {
            let tools = &mut limits.tools;
            set(&mut tools.default_tool_timeout_ms, config.default_tool_timeout_ms);
            set(&mut tools.max_tool_timeout_ms, config.max_tool_timeout_ms);
            set(&mut tools.max_registered_toolkits, config.max_registered_toolkits);
            set(&mut tools.max_registered_tools_per_vm, config.max_registered_tools_per_vm);
            set(&mut tools.max_tools_per_toolkit, config.max_tools_per_toolkit);
            set(&mut tools.max_tool_schema_bytes, config.max_tool_schema_bytes);
            set(&mut tools.max_tool_examples_per_tool, config.max_tool_examples_per_tool);
            set(&mut tools.max_tool_example_input_bytes, config.max_tool_example_input_bytes);
        }
        if let Some(config) = &self.plugins {
            set(&mut limits.plugins.max_persisted_manifest_bytes, config.max_persisted_manifest_bytes);
            set(&mut limits.plugins.max_persisted_manifest_file_bytes, config.max_persisted_manifest_file_bytes);
        }
        if let Some(config) = &self.wasm {
            set(&mut limits.wasm.max_module_file_bytes, config.max_module_file_bytes);
            set(&mut limits.wasm.sync_read_limit_bytes, config.sync_read_limit_bytes);
        }
        if let Some(config) = &self.http {
            set(&mut limits.http.max_fetch_response_bytes, config.max_fetch_response_bytes);
        }
        if let Some(config) = &self.python {
            set(&mut limits.python.execution_timeout_ms, config.execution_timeout_ms);
        }
        limits.check()?;
        Ok(limits)
    }
}

fn apply_resource_limits(limits: &mut ResourceLimits, config: &ResourceLimitsConfig) {
    set(&mut limits.max_processes, config.max_processes);
    set(&mut limits.max_open_fds, config.max_open_fds);
    set(&mut limits.max_pipes, config.max_pipes);
    set(&mut limits.max_sockets, config.max_sockets);
    set(&mut limits.max_connections, config.max_connections);
    set(&mut limits.max_socket_buffered_bytes, config.max_socket_buffered_bytes);
    set(&mut limits.max_socket_datagram_queue_len, config.max_socket_datagram_queue_len);
    set(&mut limits.max_filesystem_bytes, config.max_filesystem_bytes);
    set(&mut limits.max_inode_count, config.max_inode_count);
    set(&mut limits.max_pread_bytes, config.max_pread_bytes);
    set(&mut limits.max_fd_write_bytes, config.max_fd_write_bytes);
    set(&mut limits.max_process_argv_bytes, config.max_process_argv_bytes);
    set(&mut limits.max_process_env_bytes, config.max_process_env_bytes);
    set(&mut limits.max_readdir_entries, config.max_readdir_entries);
    set(&mut limits.max_wasm_fuel, config.max_wasm_fuel);
    set(&mut limits.max_wasm_memory_bytes, config.max_wasm_memory_bytes);
    set(&mut limits.max_wasm_stack_bytes, config.max_wasm_stack_bytes);
}

impl ResolvedLimits {
    /// The original sidecar's checks on resolved limits (its order), with JSON key names, then
    /// this sidecar's ceilings.
    fn check(&self) -> Result<(), ConfigError> {
        let resources = &self.resources;
        let usize_values = [
            ("limits.resources.maxProcesses", resources.max_processes),
            ("limits.resources.maxOpenFds", resources.max_open_fds),
            ("limits.resources.maxPipes", resources.max_pipes),
            ("limits.resources.maxSockets", resources.max_sockets),
            ("limits.resources.maxConnections", resources.max_connections),
            ("limits.resources.maxSocketBufferedBytes", resources.max_socket_buffered_bytes),
            ("limits.resources.maxSocketDatagramQueueLen", resources.max_socket_datagram_queue_len),
            ("limits.resources.maxInodeCount", resources.max_inode_count),
            ("limits.resources.maxPreadBytes", resources.max_pread_bytes),
            ("limits.resources.maxFdWriteBytes", resources.max_fd_write_bytes),
            ("limits.resources.maxProcessArgvBytes", resources.max_process_argv_bytes),
            ("limits.resources.maxProcessEnvBytes", resources.max_process_env_bytes),
            ("limits.resources.maxReaddirEntries", resources.max_readdir_entries),
            ("limits.resources.maxWasmStackBytes", resources.max_wasm_stack_bytes),
            ("limits.wasm.syncReadLimitBytes", self.wasm.sync_read_limit_bytes),
        ];
        for (key, value) in usize_values {
            fits_usize(key, value)?;
        }
        if self.tools.default_tool_timeout_ms > self.tools.max_tool_timeout_ms {
            return Err(ConfigError::invalid(format!(
                "limits.tools.defaultToolTimeoutMs ({}) must be <= limits.tools.maxToolTimeoutMs ({})",
                self.tools.default_tool_timeout_ms, self.tools.max_tool_timeout_ms
            )));
        }
        let nonzero = [
            ("limits.tools.maxRegisteredToolkits", self.tools.max_registered_toolkits),
            ("limits.tools.maxRegisteredToolsPerVm", self.tools.max_registered_tools_per_vm),
            ("limits.tools.maxToolsPerToolkit", self.tools.max_tools_per_toolkit),
            ("limits.tools.maxToolSchemaBytes", self.tools.max_tool_schema_bytes),
            ("limits.tools.maxToolExampleInputBytes", self.tools.max_tool_example_input_bytes),
            ("limits.plugins.maxPersistedManifestBytes", self.plugins.max_persisted_manifest_bytes),
            // Zero would make every read look like end of file.
            ("limits.wasm.syncReadLimitBytes", self.wasm.sync_read_limit_bytes),
            ("limits.wasm.maxModuleFileBytes", self.wasm.max_module_file_bytes),
            ("limits.http.maxFetchResponseBytes", self.http.max_fetch_response_bytes),
        ];
        if let Some((key, _)) = nonzero.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::invalid(format!("{key} must be greater than zero")));
        }
        // A value over a ceiling is refused, not lowered: a limit the host set is either the one
        // in force or an error (see the ceilings' docs for why each exists).
        let ceilings = [
            ("limits.tools.maxToolTimeoutMs", self.tools.max_tool_timeout_ms, MAX_TOOL_TIMEOUT_MS),
            ("limits.tools.maxRegisteredToolkits", self.tools.max_registered_toolkits, MAX_REGISTERED_TOOLKITS),
            (
                "limits.tools.maxRegisteredToolsPerVm",
                self.tools.max_registered_tools_per_vm,
                MAX_REGISTERED_TOOLS_PER_VM,
            ),
            ("limits.tools.maxToolsPerToolkit", self.tools.max_tools_per_toolkit, MAX_TOOLS_PER_TOOLKIT),
            ("limits.tools.maxToolSchemaBytes", self.tools.max_tool_schema_bytes, MAX_TOOL_SCHEMA_BYTES),
            ("limits.tools.maxToolExamplesPerTool", self.tools.max_tool_examples_per_tool, MAX_TOOL_EXAMPLES_PER_TOOL),
            (
                "limits.tools.maxToolExampleInputBytes",
                self.tools.max_tool_example_input_bytes,
                MAX_TOOL_EXAMPLE_INPUT_BYTES,
            ),
            (
                "limits.plugins.maxPersistedManifestBytes",
                self.plugins.max_persisted_manifest_bytes,
                MAX_PERSISTED_MANIFEST_BYTES,
            ),
            ("limits.http.maxFetchResponseBytes", self.http.max_fetch_response_bytes, MAX_FETCH_RESPONSE_BYTES),
        ];
        if let Some((key, value, ceiling)) = ceilings.iter().find(|(_, value, ceiling)| value > ceiling) {
            return Err(ConfigError::invalid(format!(
                "{key} ({value}) must be <= {ceiling}, the most this sidecar allows"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn scope_accepts_mode_string_and_rule_set() {
        let policy: PermissionsPolicy = serde_json::from_str(
            r#"{"fs":"ask","env":{"rules":[{"mode":"allow","operations":["read"],"patterns":["HOME"]}]}}"#,
        )
        .unwrap();
        assert_eq!(policy.fs, Some(FsPermissionScope::Mode(PermissionMode::Ask)));
        let Some(PatternPermissionScope::Rules(env)) = &policy.env else { panic!("env is not a rule set") };
        assert_eq!(env.default, None);
        assert_eq!(env.rules[0].patterns, vec!["HOME".to_owned()]);
    }

    #[test]
    fn scope_rejects_other_json_types() {
        for bad in [r#"{"fs":1}"#, r#"{"fs":true}"#, r#"{"network":["allow"]}"#, r#"{"tool":null}"#] {
            let error = serde_json::from_str::<PermissionsPolicy>(bad);
            if bad.contains("null") {
                // `null` is an absent domain, as with the original's Option.
                assert_eq!(error.unwrap(), PermissionsPolicy::default());
            } else {
                assert!(error.unwrap_err().to_string().contains("a permission mode"), "{bad}");
            }
        }
    }

    #[test]
    fn scope_serializes_untagged() {
        let policy = PermissionsPolicy {
            fs: Some(FsPermissionScope::Mode(PermissionMode::Deny)),
            tool: Some(PatternPermissionScope::Rules(PatternPermissionRuleSet {
                default: Some(PermissionMode::Ask),
                rules: vec![PatternPermissionRule {
                    mode: PermissionMode::Allow,
                    operations: vec!["invoke".into()],
                    patterns: vec!["files:*".into()],
                }],
            })),
            ..PermissionsPolicy::default()
        };
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            json,
            r#"{"fs":"deny","tool":{"default":"ask","rules":[{"mode":"allow","operations":["invoke"],"patterns":["files:*"]}]}}"#
        );
        assert_eq!(serde_json::from_str::<PermissionsPolicy>(&json).unwrap(), policy);
    }

    #[test]
    fn guest_path_rules() {
        assert!(validate_guest_path("cwd", "/a/b").is_ok());
        assert!(validate_guest_path("cwd", "/a/..b/c..").is_ok());
        assert_eq!(validate_guest_path("cwd", "a").unwrap_err(), "cwd must be absolute");
        assert_eq!(validate_guest_path("cwd", "").unwrap_err(), "cwd must be absolute");
        assert_eq!(validate_guest_path("cwd", "/a/../b").unwrap_err(), "cwd must not contain '..'");
        assert_eq!(validate_guest_path("cwd", "/..").unwrap_err(), "cwd must not contain '..'");
    }

    #[test]
    fn json_location_omits_root() {
        assert_eq!(json_location(""), "");
        assert_eq!(json_location("."), "");
        assert_eq!(json_location("a.b"), "at `a.b`: ");
    }

    #[test]
    fn unsupported_keys_are_refused_only_when_present() {
        let mut config = VmLimitsConfig::default();
        assert_eq!(config.resolve().unwrap(), ResolvedLimits::default());
        config.js_runtime = Some(JsRuntimeLimitsConfig { v8_heap_limit_mb: None, ..Default::default() });
        assert!(config.resolve().is_ok(), "an empty section sets nothing");
        config.js_runtime = Some(JsRuntimeLimitsConfig { v8_heap_limit_mb: Some(256), ..Default::default() });
        let error = config.resolve().unwrap_err().to_string();
        assert!(
            error.starts_with(
                "invalid create VM config: limits.jsRuntime.v8HeapLimitMb is not supported by this sidecar yet: "
            ),
            "{error}"
        );
        assert_eq!(config.validate().unwrap_err().to_string(), error);
        assert_eq!(VmLimitsConfig::unsupported_key_names().len(), 13);
    }
}
