//! One virtual machine's control state: its configuration, permission policy, host-callback
//! toolkits and lifecycle. (Its filesystem and processes live in their own modules.)

pub(crate) mod exec;

use crate::clock::Entropy;
use crate::error::{RejectCode, Rejection};
use crate::fs::mounts::Mount;
use crate::fs::{FsOp, FsOutcome, GuestAsks, VmFilesystem};
use crate::ids::StreamId;
use crate::net::{NetLimits, Network};
use crate::policy::config::{self, CreateVmConfig};
use crate::policy::permissions::{errno_message, Capability, CompiledPolicy, Decision};
use crate::process::table::ProcessTable;
use schema::wire::*;
use std::collections::{BTreeMap, BTreeSet};

/// Toolkit and tool names: `[a-z0-9-]`, at most this long (the original's bound).
pub const MAX_TOOLKIT_NAME_BYTES: usize = 64;
/// Descriptions are shown to models and people; long ones are a sign of misuse.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
// The registry's other bounds and the callback timeouts are the VM's `limits.tools`
// (`config::ToolLimits`; defaults and ceilings in `policy::config`).
pub use crate::ids::PromptTicket;

/// The answer to a permission prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptOutcome {
    Allowed,
    Denied(String),
}

/// What a permission check gives a guest operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionCheck {
    Allowed,
    Denied(String),
    /// Suspend until [`Sidecar::take_prompt_outcome`](crate::Sidecar::take_prompt_outcome) has an answer for this ticket.
    Prompted(PromptTicket),
}

/// Whether a mount at `path` (as the request names it, normalised lexically) lies over what every
/// program trusts: `/`, `/etc` or `/proc`, or below them.
fn is_sensitive_mount_path(path: &str) -> bool {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    matches!(components.first(), None | Some(&"etc") | Some(&"proc"))
}

/// A public view of a VM, for drivers and invariant checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSummary {
    pub vm_id: String,
    pub connection_id: String,
    pub session_id: String,
    pub runtime: GuestRuntimeKind,
}

/// A parsed and validated CreateVm request, before an id is allocated.
#[derive(Debug)]
pub(crate) struct VmSetup {
    runtime: GuestRuntimeKind,
    config: CreateVmConfig,
    limits: config::ResolvedLimits,
    listen: config::ListenPolicy,
    dns: config::ResolvedDns,
    policy: CompiledPolicy,
}

impl VmSetup {
    /// Refuses (`invalid_state`) a config that does not parse, sets a limit this sidecar does not
    /// honour, or sets one over its ceiling.
    pub(crate) fn parse(runtime: GuestRuntimeKind, json: &str) -> Result<Self, Rejection> {
        let config = config::parse_create_vm_config(json).map_err(|e| Rejection::invalid_state(e.to_string()))?;
        config.refuse_unsupported().map_err(|e| Rejection::invalid_state(e.to_string()))?;
        let limits = config.resolve_limits().map_err(|e| Rejection::invalid_state(e.to_string()))?;
        let listen = match &config.listen {
            Some(listen) => listen.resolve().map_err(|e| Rejection::invalid_state(e.to_string()))?,
            None => config::ListenPolicy::default(),
        };
        let dns = match &config.dns {
            Some(dns) => dns.resolve().map_err(|e| Rejection::invalid_state(e.to_string()))?,
            None => config::ResolvedDns::default(),
        };
        let policy = CompiledPolicy::from_config(config.permissions.as_ref())
            .map_err(|e| Rejection::invalid_state(e.to_string()))?;
        Ok(Self { runtime, config, limits, listen, dns, policy })
    }

    pub(crate) fn config(&self) -> &CreateVmConfig {
        &self.config
    }

    pub(crate) fn limits(&self) -> &config::ResolvedLimits {
        &self.limits
    }

    /// The config's `env` as the guest sees it: the variables the `env` policy lets it read
    /// (`env.read` on the name; `ask` is a denial, there is no one to ask at create time).
    pub(crate) fn guest_env(&self) -> BTreeMap<String, String> {
        self.config
            .env
            .iter()
            .filter(|(name, _)| matches!(self.policy.decide(Capability::EnvRead, name, false), Decision::Allow))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Toolkit {
    command_aliases: Vec<String>,
    registry_command_aliases: Vec<String>,
    callbacks: BTreeMap<String, RegisteredHostCallbackDefinition>,
}

/// What ConfigureVm last applied that the kernel reads later (the mounts are the filesystem's).
#[derive(Debug, Clone, Default)]
struct Configuration {
    command_permissions: BTreeMap<String, WasmPermissionTier>,
}

#[derive(Debug)]
pub(crate) struct Vm {
    id: String,
    connection_id: String,
    session_id: String,
    stream: StreamId,
    runtime: GuestRuntimeKind,
    config: CreateVmConfig,
    limits: config::ResolvedLimits,
    policy: CompiledPolicy,
    configuration: Configuration,
    toolkits: BTreeMap<String, Toolkit>,
    filesystem: VmFilesystem,
    /// The config's env as guests see it (filtered by the env policy at creation).
    guest_env: BTreeMap<String, String>,
    processes: ProcessTable,
    /// Programs the sidecar provides, looked for after `PATH`.
    programs: crate::host::programs::SidecarPrograms,
    /// The modules this VM's commands ran last, by path (see `exec::ExecModules`).
    exec_modules: exec::ExecModules,
}

impl Vm {
    pub(crate) fn new(
        id: String,
        connection_id: String,
        session_id: String,
        stream: StreamId,
        setup: VmSetup,
        filesystem: VmFilesystem,
    ) -> Self {
        let guest_env = setup.guest_env();
        let VmSetup { runtime, config, limits, listen, dns, policy } = setup;
        let mut network = Network::new(NetLimits::new(&limits.resources, listen), dns.overrides);
        network.set_exempt_ports(config.loopback_exempt_ports.iter().copied());
        network.set_name_servers(dns.name_servers);
        Self {
            id,
            connection_id,
            session_id,
            stream,
            runtime,
            config,
            limits,
            policy,
            configuration: Configuration::default(),
            toolkits: BTreeMap::new(),
            filesystem,
            guest_env,
            processes: ProcessTable::with_network(network),
            programs: crate::host::programs::SidecarPrograms::default(),
            exec_modules: exec::ExecModules::default(),
        }
    }

    pub(crate) fn set_programs(&mut self, programs: crate::host::programs::SidecarPrograms) {
        self.programs = programs;
    }

    /// `env` for a process starting `module`: for the provided `node`, the VM's `jsRuntime`
    /// config in [`JS_RUNTIME_ENV`](crate::host::programs::JS_RUNTIME_ENV) (any value the
    /// starter set there dropped first); other programs' `env` as it is.
    pub(crate) fn program_env(&self, module: &crate::host::module::SharedModule, mut env: Vec<String>) -> Vec<String> {
        use crate::host::programs::{JS_RUNTIME_ENV, NODE_COMMAND};
        if !self.programs.is(NODE_COMMAND, module) {
            return env;
        }
        env.retain(|entry| entry.split_once('=').is_none_or(|(key, _)| key != JS_RUNTIME_ENV));
        if let Some(js_runtime) = &self.config.js_runtime {
            // A struct of enums and strings: serialising it cannot fail.
            if let Ok(json) = serde_json::to_string(js_runtime) {
                env.push(format!("{JS_RUNTIME_ENV}={json}"));
            }
        }
        env
    }

    pub(crate) fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    pub(crate) fn processes_mut(&mut self) -> &mut ProcessTable {
        &mut self.processes
    }

    pub(crate) fn process_limits(&self) -> &config::ResourceLimits {
        &self.limits.resources
    }

    pub(crate) fn guest_env(&self) -> &BTreeMap<String, String> {
        &self.guest_env
    }

    /// The tier ConfigureVm's `commandPermissions` gives `command`, if any.
    pub(crate) fn command_tier(&self, command: &str) -> Option<WasmPermissionTier> {
        self.configuration.command_permissions.get(command).copied()
    }

    /// A filesystem call checked against `policy` instead of the VM's.
    pub(crate) fn filesystem_call_with(
        &mut self,
        policy: &CompiledPolicy,
        path: &str,
        op: FsOp<'_>,
        entropy: &mut Entropy,
        now: crate::clock::Now,
    ) -> Result<FsOutcome, Rejection> {
        self.filesystem.call(policy, path, op, entropy, now)
    }

    /// A filesystem call made by a guest process: the same layer, policy and mounts as the
    /// host's `GuestFilesystemCallRequest`, with `ask` rules resolved through `asks`.
    pub(crate) fn guest_filesystem_call(
        &mut self,
        pid: u32,
        path: &str,
        op: FsOp<'_>,
        asks: GuestAsks,
        entropy: &mut Entropy,
        now: crate::clock::Now,
    ) -> (Result<FsOutcome, Rejection>, GuestAsks) {
        let asks = GuestAsks { prompts_enabled: self.config.permission_prompts.enabled, ..asks };
        let policy = &self.policy;
        let caller = self.proc_self(pid);
        self.filesystem.with_guest_asks(asks, caller, |filesystem| filesystem.call(policy, path, op, entropy, now))
    }

    /// A guest's positioned write in place; `None` when the path lands in the kernel's own trees
    /// or a js_bridge mount (the caller falls back to whole-file writes through the filesystem
    /// layer).
    pub(crate) fn guest_pwrite(
        &mut self,
        pid: u32,
        path: &str,
        offset: u64,
        data: &[u8],
        asks: GuestAsks,
        now: crate::clock::Now,
    ) -> (Result<Option<u64>, Rejection>, GuestAsks) {
        let asks = GuestAsks { prompts_enabled: self.config.permission_prompts.enabled, ..asks };
        let policy = &self.policy;
        let caller = self.proc_self(pid);
        self.filesystem
            .with_guest_asks(asks, caller, |filesystem| filesystem.guest_pwrite(policy, path, offset, data, now))
    }

    /// Whether the guest may write `path` (an open for writing asks then).
    pub(crate) fn guest_may_write(
        &mut self,
        pid: u32,
        path: &str,
        asks: GuestAsks,
    ) -> (Result<(), Rejection>, GuestAsks) {
        let asks = GuestAsks { prompts_enabled: self.config.permission_prompts.enabled, ..asks };
        let policy = &self.policy;
        let caller = self.proc_self(pid);
        self.filesystem.with_guest_asks(asks, caller, |filesystem| filesystem.authorize_write(policy, path))
    }

    /// A guest's positioned read; `None` when the path lands in the kernel's own trees or a
    /// js_bridge mount.
    pub(crate) fn guest_pread(
        &mut self,
        pid: u32,
        path: &str,
        offset: u64,
        len: u64,
        asks: GuestAsks,
    ) -> (Result<Option<Vec<u8>>, Rejection>, GuestAsks) {
        let asks = GuestAsks { prompts_enabled: self.config.permission_prompts.enabled, ..asks };
        let policy = &self.policy;
        let caller = self.proc_self(pid);
        self.filesystem.with_guest_asks(asks, caller, |filesystem| filesystem.guest_pread(policy, path, offset, len))
    }

    /// What `/proc/self` shows process `pid`.
    fn proc_self(&self, pid: u32) -> Option<std::sync::Arc<crate::fs::devices::ProcSelf>> {
        self.processes.get(pid).map(|process| std::sync::Arc::clone(&process.proc_self))
    }

    /// How long a guest's permission prompt may wait for the host.
    /// The run deadline of a Python process starting at `now_ms`: its
    /// `limits.python.executionTimeoutMs` (none when 0).
    pub(crate) fn python_run_deadline(&self, now_ms: u64) -> Option<crate::process::table::RunDeadline> {
        let limit_ms = self.limits().python.execution_timeout_ms;
        (limit_ms > 0).then(|| crate::process::table::RunDeadline { at_ms: now_ms.saturating_add(limit_ms), limit_ms })
    }

    /// Whether its guests' host directory calls are effects (see `fs::host_gate`).
    pub(crate) fn defers_host_calls(&self) -> bool {
        self.filesystem.host_gate().defers()
    }

    pub(crate) fn prompt_timeout_ms(&self) -> u64 {
        self.config.permission_prompts.timeout_ms
    }

    pub(crate) fn filesystem(&self) -> &VmFilesystem {
        &self.filesystem
    }

    pub(crate) fn filesystem_mut(&mut self) -> &mut VmFilesystem {
        &mut self.filesystem
    }

    /// Releases the held files whose last descriptor closed: each is unpinned, and freed if it
    /// has no name left (see `fs::open_files`). Every path that drops descriptors calls this.
    pub(crate) fn release_files(&mut self) {
        for (fs, ino) in self.processes.take_released_files() {
            self.filesystem.release_file(fs, ino);
        }
    }

    /// The filesystem with the policy its guest operations are checked against.
    pub(crate) fn filesystem_and_policy(&mut self) -> (&mut VmFilesystem, &CompiledPolicy) {
        (&mut self.filesystem, &self.policy)
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn connection_id(&self) -> &str {
        &self.connection_id
    }

    pub(crate) fn session_id(&self) -> &str {
        &self.session_id
    }

    pub(crate) fn stream(&self) -> StreamId {
        self.stream
    }

    pub(crate) fn scope(&self) -> OwnershipScope {
        OwnershipScope::vm(self.connection_id.clone(), self.session_id.clone(), self.id.clone())
    }

    pub(crate) fn summary(&self) -> VmSummary {
        VmSummary {
            vm_id: self.id.clone(),
            connection_id: self.connection_id.clone(),
            session_id: self.session_id.clone(),
            runtime: self.runtime,
        }
    }

    pub(crate) fn limits(&self) -> &config::ResolvedLimits {
        &self.limits
    }

    /// Only the `testing` doors read the whole config; the kernel asks for the parts it needs.
    #[cfg(feature = "testing")]
    pub(crate) fn config(&self) -> &CreateVmConfig {
        &self.config
    }

    /// Applies a ConfigureVm request. All checks run before anything changes, so a refused
    /// request leaves the VM exactly as it was.
    pub(crate) fn configure(
        &mut self,
        request: ConfigureVmRequest,
        policy: Option<CompiledPolicy>,
        mounts: Vec<Mount>,
    ) -> Result<ResponsePayload, Rejection> {
        if let Some(policy) = policy {
            self.policy = policy;
        }
        // Reconciled: the previous mounts (and a memory mount's content) are gone.
        self.filesystem.set_mounts(mounts);
        // Hosts send the list empty by default, so only a non-empty one replaces the VM's.
        if !request.loopback_exempt_ports.is_empty() {
            self.processes.net.set_exempt_ports(request.loopback_exempt_ports.iter().copied());
        }
        let response = VmConfiguredResponse {
            applied_mounts: u32::try_from(request.mounts.len()).unwrap_or(u32::MAX),
            applied_software: u32::try_from(request.software.len()).unwrap_or(u32::MAX),
        };
        // `instructions` are text for agents; the original keeps them and reads them nowhere, so
        // they have no effect here either (documented in docs/protocol.md).
        self.configuration = Configuration { command_permissions: request.command_permissions };
        Ok(ResponsePayload::VmConfiguredResponse(response))
    }

    /// `unsupported` for ConfigureVm fields whose subsystems this sidecar does not have yet (command
    /// packages, JavaScript module projection, the network), when the request sets them: never
    /// accepted and ignored. Empty, they are what every host sends by default.
    pub(crate) fn check_supported(request: &ConfigureVmRequest) -> Result<(), Rejection> {
        let unsupported = [
            ("projectedModules", !request.projected_modules.is_empty()),
            ("moduleAccessCwd", request.module_access_cwd.is_some()),
        ];
        match unsupported.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(Rejection::new(
                RejectCode::Unsupported,
                format!("ConfigureVm {field} is not supported by this sidecar yet"),
            )),
            None => Ok(()),
        }
    }

    /// The policy a ConfigureVm request brings (`None`: the VM keeps its own).
    pub(crate) fn configured_policy(request: &ConfigureVmRequest) -> Result<Option<CompiledPolicy>, Rejection> {
        let Some(permissions) = &request.permissions else { return Ok(None) };
        let config = config::PermissionsPolicy::from(permissions);
        CompiledPolicy::from_config(Some(&config)).map(Some).map_err(|e| Rejection::invalid_state(e.to_string()))
    }

    /// Mounting needs `fs.write` on the mount's guest path, and `fs.mount_sensitive` too over
    /// `/`, `/etc` or `/proc` (and below), as in the original: a mount hides what was there, and
    /// over those paths it would change what every program trusts. Checked against the policy
    /// in effect once the request applies.
    pub(crate) fn check_mounts(
        &self,
        policy: Option<&CompiledPolicy>,
        mounts: &[MountDescriptor],
    ) -> Result<(), Rejection> {
        if mounts.len() > crate::fs::mounts::MAX_MOUNTS {
            return Err(Rejection::limit("mounts per VM", crate::fs::mounts::MAX_MOUNTS));
        }
        let policy = policy.unwrap_or(&self.policy);
        for mount in mounts {
            let path = mount.guest_path.as_str();
            let mut checks = vec![(Capability::FsWrite, "write")];
            if is_sensitive_mount_path(path) {
                checks.push((Capability::FsMountSensitive, "mount"));
            }
            for (capability, label) in checks {
                match policy.decide(capability, path, false) {
                    Decision::Allow => {}
                    Decision::Deny { message } => {
                        return Err(Rejection::with_errno(
                            RejectCode::KernelError,
                            crate::vfs::Errno::EACCES,
                            errno_message(label, path, &message),
                        ))
                    }
                    Decision::Ask => {
                        let reason = format!("permission prompt required for {capability}");
                        return Err(Rejection::with_errno(
                            RejectCode::KernelError,
                            crate::vfs::Errno::EACCES,
                            errno_message(label, path, &reason),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn register_host_callbacks(
        &mut self,
        request: RegisterHostCallbacksRequest,
    ) -> Result<ResponsePayload, Rejection> {
        let limits = &self.limits.tools;
        validate_toolkit(&request, limits)?;
        self.check_toolkit_conflicts(&request)?;
        if exceeds(self.toolkits.len().saturating_add(1), limits.max_registered_toolkits) {
            return Err(Rejection::invalid_state(format!(
                "VM already has {} registered toolkits, max is {} (limits.tools.maxRegisteredToolkits)",
                self.toolkits.len(),
                limits.max_registered_toolkits
            )));
        }
        let tools =
            self.toolkits.values().map(|t| t.callbacks.len()).fold(request.callbacks.len(), usize::saturating_add);
        if exceeds(tools, limits.max_registered_tools_per_vm) {
            return Err(Rejection::invalid_state(format!(
                "VM would have {tools} registered host callbacks, max is {} (limits.tools.maxRegisteredToolsPerVm)",
                limits.max_registered_tools_per_vm
            )));
        }
        let name = request.name.clone();
        self.toolkits.insert(
            request.name,
            Toolkit {
                command_aliases: request.command_aliases,
                registry_command_aliases: request.registry_command_aliases,
                callbacks: request.callbacks,
            },
        );
        let commands: BTreeSet<&str> = self
            .toolkits
            .values()
            .flat_map(|t| t.registry_command_aliases.iter().chain(&t.command_aliases))
            .map(String::as_str)
            .collect();
        Ok(ResponsePayload::HostCallbacksRegisteredResponse(HostCallbacksRegisteredResponse {
            registration: name,
            command_count: u32::try_from(commands.len()).unwrap_or(u32::MAX),
        }))
    }

    fn check_toolkit_conflicts(&self, request: &RegisterHostCallbacksRequest) -> Result<(), Rejection> {
        if self.toolkits.contains_key(&request.name) {
            return Err(Rejection::new(RejectCode::Conflict, format!("toolkit already registered: {}", request.name)));
        }
        let existing_commands: BTreeSet<&str> =
            self.toolkits.values().flat_map(|t| &t.command_aliases).map(String::as_str).collect();
        let existing_registry: BTreeSet<&str> =
            self.toolkits.values().flat_map(|t| &t.registry_command_aliases).map(String::as_str).collect();
        let clash = request
            .command_aliases
            .iter()
            .find(|a| existing_commands.contains(a.as_str()) || existing_registry.contains(a.as_str()))
            .or_else(|| request.registry_command_aliases.iter().find(|a| existing_commands.contains(a.as_str())));
        match clash {
            Some(alias) => Err(Rejection::new(
                RejectCode::Conflict,
                format!("host callback command alias already registered: {alias}"),
            )),
            None => Ok(()),
        }
    }

    /// The VM's tools as a guest's tool protocol offers them, in callback-key order: each
    /// `toolkit:tool` named with every character a Python identifier cannot hold made `_`
    /// (`files:read-all` is `files_read_all`). A name that is still not one the guest accepts
    /// (`[A-Za-z][A-Za-z0-9_]{0,63}`, not a keyword), or is taken already, is left out: the
    /// guest refuses a whole list that holds one.
    pub(crate) fn offered_tools(&self) -> Vec<OfferedTool<'_>> {
        let mut taken = BTreeSet::new();
        let mut offered = Vec::new();
        for (toolkit_name, toolkit) in &self.toolkits {
            for (tool, definition) in &toolkit.callbacks {
                let key = format!("{toolkit_name}:{tool}");
                let name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                if is_tool_name(&name) && taken.insert(name.clone()) {
                    offered.push(OfferedTool { name, key, definition });
                }
            }
        }
        offered
    }

    /// The timeout of callback `key` (`toolkit:tool` or a registry alias), if it exists: its
    /// definition's, else the VM's `limits.tools.defaultToolTimeoutMs`.
    pub(crate) fn callback_timeout_ms(&self, key: &str) -> Option<u64> {
        let default_ms = self.limits.tools.default_tool_timeout_ms;
        if let Some((toolkit, tool)) = key.split_once(':') {
            let definition = self.toolkits.get(toolkit)?.callbacks.get(tool)?;
            return Some(definition.timeout_ms.unwrap_or(default_ms));
        }
        let owners: Vec<&Toolkit> =
            self.toolkits.values().filter(|t| t.registry_command_aliases.iter().any(|a| a == key)).collect();
        if owners.is_empty() {
            return None;
        }
        let timeouts = owners.iter().flat_map(|t| t.callbacks.values()).filter_map(|d| d.timeout_ms);
        Some(timeouts.max().unwrap_or(default_ms))
    }

    pub(crate) fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }
}

/// A registered tool as the tool protocol offers it (see [`Vm::offered_tools`]).
#[derive(Debug)]
pub(crate) struct OfferedTool<'a> {
    /// Its name in the guest.
    pub(crate) name: String,
    /// Its callback key (`toolkit:tool`).
    pub(crate) key: String,
    pub(crate) definition: &'a RegisteredHostCallbackDefinition,
}

/// Python's keywords: names the guest's `host.tools` refuses.
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

/// Whether the guest's tool protocol accepts `name`: `[A-Za-z][A-Za-z0-9_]{0,63}`, no keyword.
fn is_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
        && !PYTHON_KEYWORDS.contains(&name)
}

/// Whether `count` items are more than `limit` allows.
fn exceeds(count: usize, limit: u64) -> bool {
    u64::try_from(count).unwrap_or(u64::MAX) > limit
}

fn validate_toolkit(request: &RegisterHostCallbacksRequest, limits: &config::ToolLimits) -> Result<(), Rejection> {
    validate_name("toolkit", &request.name)?;
    if request.description.trim().is_empty() {
        return Err(Rejection::invalid_state(format!("toolkit {} is missing a description", request.name)));
    }
    validate_description(&format!("Toolkit \"{}\"", request.name), &request.description)?;
    let mut seen = BTreeSet::new();
    for (label, aliases) in
        [("command alias", &request.command_aliases), ("registry command alias", &request.registry_command_aliases)]
    {
        for alias in aliases {
            let invalid = alias.is_empty() || alias == "." || alias == ".." || alias.contains(['/', '\0']);
            if invalid {
                return Err(Rejection::invalid_state(format!("invalid host callback {label}: {alias:?}")));
            }
            if !seen.insert((label, alias.as_str())) {
                return Err(Rejection::invalid_state(format!("duplicate host callback {label}: {alias}")));
            }
        }
    }
    if let Some(alias) = request.command_aliases.iter().find(|a| request.registry_command_aliases.contains(a)) {
        return Err(Rejection::invalid_state(format!(
            "host callback command alias must not also be a registry command alias: {alias}"
        )));
    }
    if request.callbacks.is_empty() {
        return Err(Rejection::invalid_state(format!("toolkit {} must define at least one tool", request.name)));
    }
    if exceeds(request.callbacks.len(), limits.max_tools_per_toolkit) {
        return Err(Rejection::invalid_state(format!(
            "toolkit {} defines {} tools, max is {} (limits.tools.maxToolsPerToolkit)",
            request.name,
            request.callbacks.len(),
            limits.max_tools_per_toolkit
        )));
    }
    for (tool, definition) in &request.callbacks {
        validate_tool(&request.name, tool, definition, limits)?;
    }
    Ok(())
}

fn validate_tool(
    toolkit: &str,
    tool: &str,
    definition: &RegisteredHostCallbackDefinition,
    limits: &config::ToolLimits,
) -> Result<(), Rejection> {
    validate_name("tool", tool)?;
    let label = format!("Tool \"{toolkit}/{tool}\"");
    if definition.description.trim().is_empty() {
        return Err(Rejection::invalid_state(format!("tool {tool} in toolkit {toolkit} is missing a description")));
    }
    validate_description(&label, &definition.description)?;
    if exceeds(definition.input_schema.len(), limits.max_tool_schema_bytes) {
        return Err(Rejection::invalid_state(format!(
            "{label} input schema is {} bytes, max is {} (limits.tools.maxToolSchemaBytes)",
            definition.input_schema.len(),
            limits.max_tool_schema_bytes
        )));
    }
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&definition.input_schema) {
        return Err(Rejection::invalid_state(format!("{label} input schema is invalid JSON: {error}")));
    }
    if let Some(timeout) = definition.timeout_ms.filter(|t| *t > limits.max_tool_timeout_ms) {
        return Err(Rejection::invalid_state(format!(
            "{label} timeout is {timeout}ms, max is {}ms (limits.tools.maxToolTimeoutMs)",
            limits.max_tool_timeout_ms
        )));
    }
    if exceeds(definition.examples.len(), limits.max_tool_examples_per_tool) {
        return Err(Rejection::invalid_state(format!(
            "{label} defines {} examples, max is {} (limits.tools.maxToolExamplesPerTool)",
            definition.examples.len(),
            limits.max_tool_examples_per_tool
        )));
    }
    for example in &definition.examples {
        validate_description(&format!("{label} example"), &example.description)?;
        if exceeds(example.input.len(), limits.max_tool_example_input_bytes) {
            return Err(Rejection::invalid_state(format!(
                "{label} example input is {} bytes, max is {} (limits.tools.maxToolExampleInputBytes)",
                example.input.len(),
                limits.max_tool_example_input_bytes
            )));
        }
        if let Err(error) = serde_json::from_str::<serde_json::Value>(&example.input) {
            return Err(Rejection::invalid_state(format!("{label} example input is invalid JSON: {error}")));
        }
    }
    Ok(())
}

fn validate_name(kind: &str, name: &str) -> Result<(), Rejection> {
    if name.len() > MAX_TOOLKIT_NAME_BYTES {
        return Err(Rejection::invalid_state(format!(
            "invalid {kind} name {name}; max length is {MAX_TOOLKIT_NAME_BYTES}"
        )));
    }
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(Rejection::invalid_state(format!(
            "invalid {kind} name {name}; expected lowercase alphanumeric characters plus hyphens"
        )));
    }
    Ok(())
}

fn validate_description(label: &str, description: &str) -> Result<(), Rejection> {
    let chars = description.chars().count();
    if description.trim().is_empty() {
        return Err(Rejection::invalid_state(format!("{label} is missing a description")));
    }
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(Rejection::invalid_state(format!(
            "{label} description is {chars} characters, max is {MAX_DESCRIPTION_CHARS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_tool_name;

    #[test]
    fn tool_names_are_the_ones_the_guest_accepts() {
        for good in ["files_read", "a", "A1_b", &"x".repeat(64)] {
            assert!(is_tool_name(good), "{good}");
        }
        for bad in ["", "1files", "_x", "files-read", "files:read", "class", "None", "é", &"x".repeat(65)] {
            assert!(!is_tool_name(bad), "{bad}");
        }
    }
}
