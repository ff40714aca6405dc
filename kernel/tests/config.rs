//! The CreateVm JSON config: the documents existing hosts send, every default, every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use core::net::{IpAddr, SocketAddr};

use kernel::policy::config::*;
use kernel::policy::permissions::{Domain, PolicyError, RuleField};
use proptest::prelude::*;
use schema::wire;

/// Example 2 of the format notes: every section, as a host sends it, without the `limits` keys
/// this sidecar refuses (`http`, `jsRuntime`, `python`: see `refused_limit_keys_name_the_key`).
const FULL_EXAMPLE: &str = r#"{
  "cwd": "/tmp/project",
  "env": { "HOME": "/home/user", "DEBUG": "1" },
  "rootFilesystem": {
    "mode": "ephemeral",
    "disableDefaultBaseLayer": false,
    "lowers": [
      { "kind": "snapshot", "entries": [ { "path": "/etc/motd", "kind": "file", "content": "hi", "encoding": "utf8", "mode": 420 } ] },
      { "kind": "bundledBaseFilesystem" }
    ],
    "bootstrapEntries": [
      { "path": "/workspace", "kind": "directory", "mode": 493 },
      { "path": "/workspace/run.sh", "kind": "file", "content": "IyEvYmluL3NoCg==", "encoding": "base64", "executable": true },
      { "path": "/workspace/link", "kind": "symlink", "target": "/workspace/run.sh" }
    ]
  },
  "permissions": {
    "fs": { "default": "deny", "rules": [
      { "mode": "allow", "operations": ["read", "stat", "readdir"], "paths": ["/**"] },
      { "mode": "allow", "operations": ["*"], "paths": ["/workspace/**", "/tmp/**"] }
    ] },
    "network": { "default": "deny", "rules": [ { "mode": "allow", "operations": ["dns", "http"], "patterns": ["dns://*.example.com", "tcp://*.example.com:443"] } ] },
    "childProcess": "allow",
    "process": "allow",
    "env": { "rules": [ { "mode": "allow", "operations": ["read"], "patterns": ["HOME", "DEBUG"] } ] },
    "tool": { "default": "ask", "rules": [ { "mode": "allow", "operations": ["invoke"], "patterns": ["files:*"] } ] }
  },
  "limits": {
    "resources": { "maxProcesses": 32, "maxFilesystemBytes": 134217728, "maxWasmFuel": 1000000000 },
    "tools": { "defaultToolTimeoutMs": 10000, "maxToolTimeoutMs": 60000 },
    "wasm": { "maxModuleFileBytes": 1048576 }
  },
  "dns": { "nameServers": ["1.1.1.1", "8.8.8.8:53"], "overrides": { "api.example.com": ["10.0.0.5"] } },
  "listen": { "portMin": 3000, "portMax": 3999, "allowPrivileged": false },
  "loopbackExemptPorts": [5432],
  "jsRuntime": { "platform": "node", "moduleResolution": "node", "allowedBuiltins": ["fs", "node:path"] }
}"#;

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

/// Parses and resolves: the whole CreateVm config path.
fn load(json: &str) -> Result<(CreateVmConfig, ResolvedVmConfig), ConfigError> {
    let config = parse_create_vm_config(json)?;
    let resolved = config.resolve()?;
    Ok((config, resolved))
}

#[test]
fn empty_object_is_every_default() {
    let (config, resolved) = load("{}").unwrap();
    assert_eq!(config, CreateVmConfig::default());
    assert_eq!(config.cwd, None);
    assert_eq!(config.guest_cwd(), "/home/user");
    assert!(config.env.is_empty());
    assert_eq!(config.root_filesystem.mode, RootFilesystemMode::Ephemeral);
    assert!(!config.root_filesystem.disable_default_base_layer);
    assert!(config.root_filesystem.lowers.is_empty() && config.root_filesystem.bootstrap_entries.is_empty());
    assert_eq!(config.permissions, None);
    assert_eq!(config.effective_permissions(), PermissionsPolicy::deny_all());
    assert_eq!(PermissionsPolicy::deny_all().child_process, Some(PatternPermissionScope::Mode(PermissionMode::Deny)));
    assert!(config.native_root.is_none() && config.js_runtime.is_none() && config.loopback_exempt_ports.is_empty());
    assert!(!config.permission_prompts.enabled);
    assert_eq!(config.permission_prompts.timeout_ms, 30_000);

    assert_eq!(resolved.listen, ListenPolicy { port_min: 1, port_max: 65_535, allow_privileged: false });
    assert_eq!(resolved.dns, ResolvedDns::default());
    assert_eq!(resolved.limits, config.resolve_limits().unwrap());
    assert_eq!(resolved.limits, VmLimitsConfig::default().resolve().unwrap());
}

#[test]
fn defaults_resolve_to_documented_values() {
    let limits = parse_create_vm_config("{}").unwrap().resolve_limits().unwrap();
    const MIB: u64 = 1024 * 1024;
    let r = &limits.resources;
    let resources = [
        ("maxProcesses", r.max_processes, 256),
        ("maxOpenFds", r.max_open_fds, 256),
        ("maxPipes", r.max_pipes, 128),
        ("maxFilesystemBytes", r.max_filesystem_bytes, 64 * MIB),
        ("maxInodeCount", r.max_inode_count, 16_384),
        ("maxPreadBytes", r.max_pread_bytes, 64 * MIB),
        ("maxFdWriteBytes", r.max_fd_write_bytes, 64 * MIB),
        ("maxProcessArgvBytes", r.max_process_argv_bytes, MIB),
        ("maxProcessEnvBytes", r.max_process_env_bytes, MIB),
        ("maxReaddirEntries", r.max_readdir_entries, 4_096),
        // Bounded where the original was unlimited (see the constants' docs).
        ("maxWasmFuel", r.max_wasm_fuel, 500_000_000_000),
        ("maxWasmMemoryBytes", r.max_wasm_memory_bytes, 512 * MIB),
        ("maxWasmStackBytes", r.max_wasm_stack_bytes, 8 * MIB),
    ];
    for (key, actual, expected) in resources {
        assert_eq!(actual, expected, "limits.resources.{key}");
    }
    assert_eq!(*r, ResourceLimits::default());

    assert_eq!(
        limits.tools,
        ToolLimits {
            default_tool_timeout_ms: 30_000,
            max_tool_timeout_ms: 300_000,
            max_registered_toolkits: 64,
            max_registered_tools_per_vm: 256,
            max_tools_per_toolkit: 64,
            max_tool_schema_bytes: 16_384,
            max_tool_examples_per_tool: 16,
            max_tool_example_input_bytes: 4_096,
        }
    );
    assert_eq!(
        limits.plugins,
        PluginLimits { max_persisted_manifest_bytes: 64 * MIB, max_persisted_manifest_file_bytes: 1024 * MIB }
    );
    assert_eq!(limits.wasm, WasmLimits { max_module_file_bytes: 256 * MIB, sync_read_limit_bytes: 16 * MIB });
}

#[test]
fn full_example_parses() {
    let (config, resolved) = load(FULL_EXAMPLE).unwrap();

    assert_eq!(config.cwd.as_deref(), Some("/tmp/project"));
    assert_eq!(config.guest_cwd(), "/tmp/project");
    assert_eq!(config.env.get("HOME").map(String::as_str), Some("/home/user"));
    assert_eq!(config.env.get("DEBUG").map(String::as_str), Some("1"));
    assert_eq!(config.env.len(), 2);

    let root = &config.root_filesystem;
    assert_eq!(root.mode, RootFilesystemMode::Ephemeral);
    assert_eq!(root.lowers.len(), 2);
    let RootFilesystemLower::Snapshot { entries } = &root.lowers[0] else { panic!("lower 0: {:?}", root.lowers[0]) };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, "/etc/motd");
    assert_eq!(entries[0].kind, RootFilesystemEntryKind::File);
    assert_eq!(entries[0].content.as_deref(), Some("hi"));
    assert_eq!(entries[0].encoding, Some(RootFilesystemEntryEncoding::Utf8));
    assert_eq!(entries[0].mode, Some(0o644));
    assert_eq!(root.lowers[1], RootFilesystemLower::BundledBaseFilesystem);
    let boot = &root.bootstrap_entries;
    assert_eq!(boot.len(), 3);
    assert_eq!((boot[0].kind, boot[0].mode), (RootFilesystemEntryKind::Directory, Some(0o755)));
    assert_eq!(boot[1].encoding, Some(RootFilesystemEntryEncoding::Base64));
    assert!(boot[1].executable && !boot[0].executable);
    assert_eq!(boot[2].kind, RootFilesystemEntryKind::Symlink);
    assert_eq!(boot[2].target.as_deref(), Some("/workspace/run.sh"));

    let permissions = config.permissions.as_ref().unwrap();
    let Some(FsPermissionScope::Rules(fs)) = &permissions.fs else { panic!("fs: {:?}", permissions.fs) };
    assert_eq!(fs.default, Some(PermissionMode::Deny));
    assert_eq!(fs.rules.len(), 2);
    assert_eq!(fs.rules[0].operations, strings(&["read", "stat", "readdir"]));
    assert_eq!(fs.rules[1].paths, strings(&["/workspace/**", "/tmp/**"]));
    let Some(PatternPermissionScope::Rules(network)) = &permissions.network else { panic!("network") };
    assert_eq!(network.rules[0].patterns, strings(&["dns://*.example.com", "tcp://*.example.com:443"]));
    assert_eq!(permissions.child_process, Some(PatternPermissionScope::Mode(PermissionMode::Allow)));
    assert_eq!(permissions.process, Some(PatternPermissionScope::Mode(PermissionMode::Allow)));
    let Some(PatternPermissionScope::Rules(env)) = &permissions.env else { panic!("env") };
    assert_eq!(env.default, None);
    let Some(PatternPermissionScope::Rules(tool)) = &permissions.tool else { panic!("tool") };
    assert_eq!(tool.default, Some(PermissionMode::Ask));
    assert_eq!(tool.rules[0].mode, PermissionMode::Allow);

    let limits = &resolved.limits;
    assert_eq!(limits.resources.max_processes, 32);
    assert_eq!(limits.resources.max_filesystem_bytes, 134_217_728);
    assert_eq!(limits.resources.max_wasm_fuel, 1_000_000_000);
    assert_eq!(limits.resources.max_open_fds, 256, "absent keys keep their default");
    assert_eq!((limits.tools.default_tool_timeout_ms, limits.tools.max_tool_timeout_ms), (10_000, 60_000));
    assert_eq!(limits.tools.max_registered_toolkits, 64);
    assert_eq!(limits.wasm.max_module_file_bytes, 1_048_576);

    let one_one: IpAddr = "1.1.1.1".parse().unwrap();
    assert_eq!(resolved.dns.name_servers, vec![SocketAddr::new(one_one, 53), "8.8.8.8:53".parse().unwrap()]);
    assert_eq!(resolved.dns.overrides.get("api.example.com"), Some(&vec!["10.0.0.5".parse::<IpAddr>().unwrap()]));
    assert_eq!(resolved.listen, ListenPolicy { port_min: 3000, port_max: 3999, allow_privileged: false });
    assert_eq!(config.loopback_exempt_ports, vec![5432]);

    let js = config.js_runtime.as_ref().unwrap();
    assert_eq!((js.platform, js.module_resolution), (JsRuntimePlatform::Node, JsModuleResolution::Node));
    assert_eq!(js.allowed_builtins, Some(strings(&["fs", "node:path"])));

    // Our own serialization reads back identically.
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(parse_create_vm_config(&json).unwrap(), config);
}

#[test]
fn accepted_edge_cases() {
    let accepted = [
        // Mode-only scopes, every mode.
        r#"{"permissions":{"fs":"allow","network":"ask","childProcess":"deny","process":"allow","env":"ask","tool":"deny"}}"#,
        // An empty rule set and `null` sections mean "absent", as with the original's Options.
        r#"{"permissions":{"fs":{"rules":[]}},"limits":null,"dns":null,"listen":null,"jsRuntime":null}"#,
        r#"{"limits":{"resources":null,"http":{"maxFetchResponseBytes":null}}}"#,
        // Zero is allowed for every resources key and for the keys the original left unchecked.
        r#"{"limits":{"resources":{"maxProcesses":0,"maxWasmFuel":0,"maxPipes":0}}}"#,
        r#"{"limits":{"tools":{"maxToolExamplesPerTool":0,"maxToolTimeoutMs":0,"defaultToolTimeoutMs":0}}}"#,
        r#"{"limits":{"plugins":{"maxPersistedManifestFileBytes":0}}}"#,
        // A ceiling itself is allowed.
        r#"{"limits":{"tools":{"maxToolsPerToolkit":64,"maxToolTimeoutMs":300000,"maxRegisteredToolsPerVm":256}}}"#,
        r#"{"limits":{"plugins":{"maxPersistedManifestBytes":1073741824}}}"#,
        r#"{"rootFilesystem":{"mode":"read-only","lowers":[{"kind":"snapshot"},{"kind":"bundledBaseFilesystem"}]}}"#,
        r#"{"nativeRoot":{"plugin":{"id":"memory"},"readOnly":true}}"#,
        r#"{"nativeRoot":{"plugin":{"id":"host_dir","config":{"hostPath":"/srv","nested":[1,{"a":null}]}}}}"#,
        r#"{"listen":{"portMax":80}}"#,
        r#"{"listen":{"portMin":65535}}"#,
        r#"{"listen":{"portMin":1024,"portMax":1024,"allowPrivileged":true}}"#,
        r#"{"dns":{"nameServers":["::1","[2001:db8::1]:5353"],"overrides":{"Example.COM.":["::1","127.0.0.1"]}}}"#,
        r#"{"jsRuntime":{"platform":"bare","moduleResolution":"none"}}"#,
        r#"{"jsRuntime":{"allowedBuiltins":[]}}"#,
        r#"{"jsRuntime":{"allowedBuiltins":["node:fs/promises","worker_threads","util/types"]}}"#,
        r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/","kind":"directory","uid":0,"gid":0},{"path":"/f..","kind":"file"}]}}"#,
        r#"{"permissionPrompts":{"enabled":true}}"#,
        r#"{"permissionPrompts":{"enabled":true,"timeoutMs":600000}}"#,
        r#"{"env":{"":""},"loopbackExemptPorts":[0,65535]}"#,
        "  {}  \n",
    ];
    for json in accepted {
        if let Err(error) = load(json) {
            panic!("{json} was refused: {error}");
        }
    }
    let (config, resolved) = load(accepted[14]).unwrap();
    assert!(config.dns.is_some());
    assert_eq!(resolved.dns.name_servers[0], "[::1]:53".parse().unwrap());
    assert_eq!(resolved.dns.name_servers[1], "[2001:db8::1]:5353".parse().unwrap());
    assert_eq!(resolved.dns.overrides.keys().collect::<Vec<_>>(), vec!["example.com"]);
    assert_eq!(
        load(accepted[11]).unwrap().1.listen,
        ListenPolicy { port_min: 1, port_max: 80, allow_privileged: false }
    );
    let prompts = load(accepted[19]).unwrap().0.permission_prompts;
    assert_eq!(prompts, PermissionPromptsConfig { enabled: true, timeout_ms: 30_000 });
    assert_eq!(load(accepted[16]).unwrap().0.js_runtime.unwrap().allowed_builtins, Some(vec![]));
}

#[test]
fn refused_configs_name_the_problem() {
    let refused: &[(&str, &str)] = &[
        // Unknown keys, top level and nested.
        (r#"{"surprise":true}"#, "invalid create VM config JSON: at `surprise`: unknown field `surprise`"),
        (r#"{"rootFilesystem":{"extra":1}}"#, "at `rootFilesystem.extra`: unknown field `extra`"),
        (r#"{"limits":{"resources":{"maxProcess":1}}}"#, "at `limits.resources.maxProcess`: unknown field"),
        (r#"{"limits":{"gpu":{}}}"#, "at `limits.gpu`: unknown field `gpu`"),
        (r#"{"permissions":{"binding":"allow"}}"#, "at `permissions.binding`: unknown field `binding`"),
        (
            r#"{"permissions":{"fs":{"rules":[{"mode":"allow","operations":["*"],"patterns":["/"]}]}}}"#,
            "at `permissions.fs.rules[0].patterns`: unknown field `patterns`",
        ),
        (r#"{"permissions":{"env":{"rules":[],"extra":1}}}"#, "at `permissions.env.extra`: unknown field"),
        (r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/a","kind":"file","bogus":1}]}}"#, "bootstrapEntries[0].bogus"),
        (r#"{"nativeRoot":{"plugin":{"id":"memory","options":{}}}}"#, "at `nativeRoot.plugin.options`"),
        (r#"{"permissionPrompts":{"enable":true}}"#, "at `permissionPrompts.enable`: unknown field"),
        // Wrong types and values.
        (
            r#"{"limits":{"resources":{"maxProcesses":"x"}}}"#,
            "invalid create VM config JSON: at `limits.resources.maxProcesses`: invalid type: string \"x\", expected u64",
        ),
        (r#"{"limits":{"http":{"maxFetchResponseBytes":-1}}}"#, "at `limits.http.maxFetchResponseBytes`: invalid value"),
        (r#"{"limits":{"wasm":{"syncReadLimitBytes":1.5}}}"#, "at `limits.wasm.syncReadLimitBytes`: invalid type"),
        (r#"{"cwd":5}"#, "at `cwd`: invalid type: integer `5`, expected a string"),
        (r#"{"env":{"A":1}}"#, "at `env.A`: invalid type"),
        (r#"{"env":[]}"#, "at `env`: invalid type: sequence, expected a map"),
        (r#"{"loopbackExemptPorts":[70000]}"#, "at `loopbackExemptPorts[0]`: invalid value: integer `70000`"),
        (r#"{"listen":{"portMin":70000}}"#, "at `listen.portMin`: invalid value: integer `70000`, expected u16"),
        (r#"{"listen":{"allowPrivileged":"yes"}}"#, "at `listen.allowPrivileged`: invalid type"),
        (r#"{"rootFilesystem":{"mode":"readonly"}}"#, "at `rootFilesystem.mode`: unknown variant `readonly`"),
        (r#"{"rootFilesystem":{"lowers":[{"kind":"overlay"}]}}"#, "at `rootFilesystem.lowers[0].kind`: unknown variant"),
        (r#"{"rootFilesystem":{"lowers":[{"entries":[]}]}}"#, "at `rootFilesystem.lowers[0]`: missing field `kind`"),
        (r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/a"}]}}"#, "missing field `kind`"),
        (r#"{"rootFilesystem":{"bootstrapEntries":[{"kind":"file"}]}}"#, "missing field `path`"),
        (r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/a","kind":"FILE"}]}}"#, "unknown variant `FILE`"),
        (r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/a","kind":"file","encoding":"hex"}]}}"#, "unknown variant `hex`"),
        (r#"{"nativeRoot":{"readOnly":true}}"#, "at `nativeRoot`: missing field `plugin`"),
        (r#"{"jsRuntime":{"platform":"deno"}}"#, "at `jsRuntime.platform`: unknown variant `deno`"),
        (r#"{"jsRuntime":{"moduleResolution":"classic"}}"#, "at `jsRuntime.moduleResolution`: unknown variant"),
        // Bad permission modes and scopes.
        (r#"{"permissions":{"fs":"allowed"}}"#, "at `permissions.fs`: unknown variant `allowed`, expected one of `allow`, `ask`, `deny`"),
        (r#"{"permissions":{"tool":"ALLOW"}}"#, "at `permissions.tool`: unknown variant `ALLOW`"),
        (
            r#"{"permissions":{"network":{"rules":[{"mode":"yes","operations":["*"],"patterns":["*"]}]}}}"#,
            "at `permissions.network.rules[0].mode`: unknown variant `yes`",
        ),
        (r#"{"permissions":{"network":{"default":"maybe","rules":[]}}}"#, "at `permissions.network.default`"),
        (r#"{"permissions":{"process":{"rules":[{"operations":["*"],"patterns":["*"]}]}}}"#, "missing field `mode`"),
        (r#"{"permissions":{"fs":1}}"#, "at `permissions.fs`: invalid type: integer `1`, expected a permission mode"),
        (r#"{"permissions":{"fs":["allow"]}}"#, "at `permissions.fs`: invalid type: sequence"),
        // Empty rule lists (the original's exact message).
        (
            r#"{"permissions":{"fs":{"rules":[{"mode":"allow","paths":["/"]}]}}}"#,
            "invalid permissions policy: fs.rules[0].operations must not be empty; use [\"*\"] for wildcard",
        ),
        (
            r#"{"permissions":{"fs":{"rules":[{"mode":"allow","operations":["read"],"paths":[]}]}}}"#,
            "invalid permissions policy: fs.rules[0].paths must not be empty; use [\"*\"] for wildcard",
        ),
        (
            r#"{"permissions":{"childProcess":{"rules":[{"mode":"allow","operations":["spawn"],"patterns":["ls"]},{"mode":"deny","operations":["spawn"]}]}}}"#,
            "invalid permissions policy: child_process.rules[1].patterns must not be empty",
        ),
        (
            r#"{"permissions":{"tool":{"rules":[{"mode":"allow","operations":[],"patterns":[]}]}}}"#,
            "invalid permissions policy: tool.rules[0].operations must not be empty",
        ),
        // Operations of another domain, or of none.
        (
            r#"{"permissions":{"fs":{"rules":[{"mode":"allow","operations":["read","wirte"],"paths":["/**"]}]}}}"#,
            "invalid permissions policy: fs.rules[0].operations[1] \"wirte\" is not an fs operation; expected one of: *, read, write,",
        ),
        (
            r#"{"permissions":{"network":{"rules":[{"mode":"allow","operations":["*"],"patterns":["*"]},{"mode":"deny","operations":["spawn"],"patterns":["*"]}]}}}"#,
            "invalid permissions policy: network.rules[1].operations[0] \"spawn\" is not a network operation; expected one of: *, fetch, http, dns, listen, inspect",
        ),
        // cwd is a guest path.
        (r#"{"cwd":"tmp/project"}"#, "invalid create VM config: cwd must be absolute"),
        (r#"{"cwd":""}"#, "invalid create VM config: cwd must be absolute"),
        (r#"{"cwd":"/tmp/../etc"}"#, "invalid create VM config: cwd must not contain '..'"),
        (r#"{"cwd":"/.."}"#, "cwd must not contain '..'"),
        // Entry shapes.
        (
            r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/a","kind":"file","target":"/b"}]}}"#,
            "invalid create VM config: file entry /a must not include target (at rootFilesystem.bootstrapEntries[0])",
        ),
        (
            r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/d","kind":"directory","content":"x"}]}}"#,
            "directory entry /d must not include content, encoding, or target",
        ),
        (
            r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/d","kind":"directory","encoding":"utf8"}]}}"#,
            "directory entry /d must not include content, encoding, or target",
        ),
        (r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/l","kind":"symlink"}]}}"#, "symlink entry /l requires target"),
        (
            r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/l","kind":"symlink","target":""}]}}"#,
            "symlink entry /l requires target",
        ),
        (
            r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/l","kind":"symlink","target":"/a","encoding":"base64"}]}}"#,
            "symlink entry /l must not include content or encoding",
        ),
        (
            r#"{"rootFilesystem":{"lowers":[{"kind":"bundledBaseFilesystem"},{"kind":"snapshot","entries":[{"path":"etc","kind":"file"}]}]}}"#,
            "root filesystem entry path must be absolute (at rootFilesystem.lowers[1].entries[0])",
        ),
        (
            r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"/ok","kind":"file"},{"path":"/a/../b","kind":"file"}]}}"#,
            "root filesystem entry path must not contain '..' (at rootFilesystem.bootstrapEntries[1])",
        ),
        // nativeRoot.
        (r#"{"nativeRoot":{"plugin":{"id":"  "}}}"#, "invalid create VM config: nativeRoot.plugin.id is required"),
        (
            r#"{"nativeRoot":{"plugin":{"id":"memory"}},"rootFilesystem":{"bootstrapEntries":[{"path":"/a","kind":"file"}]}}"#,
            "nativeRoot does not support rootFilesystem.bootstrapEntries",
        ),
        (
            r#"{"nativeRoot":{"plugin":{"id":"memory"}},"rootFilesystem":{"lowers":[{"kind":"bundledBaseFilesystem"}]}}"#,
            "native root filesystems do not support rootFilesystem.lowers",
        ),
        // Limits. A key this sidecar refuses is refused whatever its value.
        (
            r#"{"limits":{"acp":{"maxReadLineBytes":0}}}"#,
            "invalid create VM config: limits.acp.maxReadLineBytes is not supported by this sidecar yet",
        ),
        (r#"{"limits":{"http":{"maxFetchResponseBytes":0}}}"#, "limits.http.maxFetchResponseBytes must be greater than zero"),
        (
            r#"{"limits":{"http":{"maxFetchResponseBytes":8388609}}}"#,
            "limits.http.maxFetchResponseBytes (8388609) must be <= 8388608, the most this sidecar allows",
        ),
        (
            r#"{"limits":{"tools":{"defaultToolTimeoutMs":2,"maxToolTimeoutMs":1}}}"#,
            "invalid create VM config: limits.tools.defaultToolTimeoutMs must be <= limits.tools.maxToolTimeoutMs",
        ),
        (
            r#"{"limits":{"tools":{"defaultToolTimeoutMs":400000}}}"#,
            "limits.tools.defaultToolTimeoutMs (400000) must be <= limits.tools.maxToolTimeoutMs (300000)",
        ),
        (
            r#"{"limits":{"tools":{"maxToolTimeoutMs":1000}}}"#,
            "limits.tools.defaultToolTimeoutMs (30000) must be <= limits.tools.maxToolTimeoutMs (1000)",
        ),
        (
            r#"{"limits":{"tools":{"maxRegisteredToolkits":0}}}"#,
            "invalid create VM config: limits.tools.maxRegisteredToolkits must be greater than zero",
        ),
        (r#"{"limits":{"plugins":{"maxPersistedManifestBytes":0}}}"#, "limits.plugins.maxPersistedManifestBytes must be"),
        (r#"{"limits":{"acp":{"stdoutBufferByteLimit":0}}}"#, "limits.acp.stdoutBufferByteLimit is not supported"),
        (r#"{"limits":{"jsRuntime":{"v8HeapLimitMb":256}}}"#, "limits.jsRuntime.v8HeapLimitMb is not supported"),
        (r#"{"limits":{"python":{"vfsRpcTimeoutMs":60000}}}"#, "limits.python.vfsRpcTimeoutMs is not supported"),
        (r#"{"limits":{"resources":{"cpuCount":1}}}"#, "limits.resources.cpuCount is not supported"),
        (r#"{"limits":{"wasm":{"maxModuleFileBytes":0}}}"#, "limits.wasm.maxModuleFileBytes must be greater than zero"),
        (r#"{"limits":{"wasm":{"syncReadLimitBytes":0}}}"#, "limits.wasm.syncReadLimitBytes must be greater than zero"),
        // listen.
        (
            r#"{"listen":{"portMin":4000,"portMax":3000}}"#,
            "invalid create VM config: listen.portMin must be <= listen.portMax",
        ),
        (r#"{"listen":{"portMin":0}}"#, "invalid create VM config: listen.portMin must be between 1 and 65535"),
        (r#"{"listen":{"portMax":0}}"#, "invalid create VM config: listen.portMax must be between 1 and 65535"),
        // dns.
        (r#"{"dns":{"nameServers":["1.1.1.1",""]}}"#, "invalid create VM config: dns.nameServers entries must not be empty"),
        (r#"{"dns":{"nameServers":["  "]}}"#, "dns.nameServers entries must not be empty"),
        (
            r#"{"dns":{"nameServers":["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4","1.1.1.5","1.1.1.6","1.1.1.7","1.1.1.8","1.1.1.9"]}}"#,
            "dns.nameServers may name at most 8 servers",
        ),
        (r#"{"dns":{"overrides":{" ":["1.2.3.4"]}}}"#, "invalid create VM config: dns.overrides keys must not be empty"),
        (
            r#"{"dns":{"overrides":{"api.example.com":[]}}}"#,
            "invalid create VM config: dns.overrides.api.example.com must contain at least one address",
        ),
        (
            r#"{"dns":{"nameServers":["dns.google"]}}"#,
            "invalid dns.nameServers[0] entry dns.google; expected IP or IP:port",
        ),
        (r#"{"dns":{"nameServers":["1.1.1.1:99999"]}}"#, "invalid dns.nameServers[0] entry 1.1.1.1:99999"),
        (r#"{"dns":{"overrides":{"h":["1.2.3"]}}}"#, "invalid DNS override dns.overrides.h=1.2.3:"),
        (r#"{"dns":{"overrides":{".":["1.2.3.4"]}}}"#, "DNS hostname must not be empty: dns.overrides key \".\""),
        // jsRuntime.
        (
            r#"{"jsRuntime":{"allowedBuiltins":["fs","leftpad"]}}"#,
            "invalid create VM config: jsRuntime.allowedBuiltins contains unknown builtin \"leftpad\"",
        ),
        (r#"{"jsRuntime":{"allowedBuiltins":["node:"]}}"#, "contains unknown builtin \"node:\""),
        (
            r#"{"jsRuntime":{"platform":"browser","allowedBuiltins":[]}}"#,
            "jsRuntime.allowedBuiltins is only valid when jsRuntime.platform is \"node\"",
        ),
        // permissionPrompts (our extension).
        (
            r#"{"permissionPrompts":{"enabled":true,"timeoutMs":0}}"#,
            "invalid create VM config: permissionPrompts.timeoutMs must be greater than zero",
        ),
        (r#"{"permissionPrompts":{"timeoutMs":600001}}"#, "permissionPrompts.timeoutMs (600001) must be <= 600000"),
        // Not a config document.
        ("", "invalid create VM config JSON: EOF while parsing"),
        ("null", "invalid create VM config JSON: invalid type: null, expected struct CreateVmConfig"),
        ("\"{}\"", "invalid type: string"),
        (r#"{"cwd":"/a""#, "invalid create VM config JSON"),
        ("{} {}", "invalid create VM config JSON: trailing characters"),
        (r#"{"cwd":"/a","cwd":"/b"}"#, "duplicate field `cwd`"),
    ];
    assert!(refused.len() >= 15);
    for (json, expected) in refused {
        match load(json) {
            Ok(config) => panic!("{json} was accepted: {config:?}"),
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains(expected), "{json}\n  message:  {message}\n  expected: {expected}");
                assert_eq!(error.code(), "invalid_state");
            }
        }
    }
}

/// `{"limits":{"<section>":{"<key>":value}}}` for the JSON path `limits.<section>.<key>`.
fn limit_document(path: &str, value: serde_json::Value) -> String {
    let mut parts = path.split('.').skip(1);
    let (section, key) = (parts.next().unwrap(), parts.next().unwrap());
    serde_json::json!({ "limits": { section: { key: value } } }).to_string()
}

/// Every key this sidecar refuses, with any value (zero, or a large one), is refused by name;
/// the same section without it is accepted. (`dispatcher::vm_limits` sends them through
/// CreateVm with the original's defaults.)
#[test]
fn refused_limit_keys_name_the_key() {
    let keys = VmLimitsConfig::unsupported_key_names();
    assert_eq!(keys.len(), 13);
    for key in keys {
        for value in [0, 1 << 20] {
            let json = limit_document(key, value.into());
            let message = load(&json).unwrap_err().to_string();
            let expected = format!("invalid create VM config: {key} is not supported by this sidecar yet: ");
            assert!(message.starts_with(&expected), "{json}: {message}");
        }
        let empty = limit_document(key, serde_json::Value::Null);
        assert!(load(&empty).is_ok(), "{empty} (null is absent)");
    }
}

/// A value over a ceiling is refused with the ceiling; the ceiling itself is accepted.
#[test]
fn limits_over_their_ceiling_are_refused() {
    let ceilings = [
        ("limits.tools.maxToolTimeoutMs", MAX_TOOL_TIMEOUT_MS),
        ("limits.tools.maxRegisteredToolkits", MAX_REGISTERED_TOOLKITS),
        ("limits.tools.maxRegisteredToolsPerVm", MAX_REGISTERED_TOOLS_PER_VM),
        ("limits.tools.maxToolsPerToolkit", MAX_TOOLS_PER_TOOLKIT),
        ("limits.tools.maxToolSchemaBytes", MAX_TOOL_SCHEMA_BYTES),
        ("limits.tools.maxToolExamplesPerTool", MAX_TOOL_EXAMPLES_PER_TOOL),
        ("limits.tools.maxToolExampleInputBytes", MAX_TOOL_EXAMPLE_INPUT_BYTES),
        ("limits.plugins.maxPersistedManifestBytes", MAX_PERSISTED_MANIFEST_BYTES),
    ];
    for (key, ceiling) in ceilings {
        let (_, resolved) = load(&limit_document(key, ceiling.into())).unwrap();
        assert_eq!(resolved.limits, resolve_one(key, ceiling), "{key}");
        let over = ceiling + 1;
        let message = load(&limit_document(key, over.into())).unwrap_err().to_string();
        assert_eq!(
            message,
            format!("invalid create VM config: {key} ({over}) must be <= {ceiling}, the most this sidecar allows")
        );
    }
    // The per-file bound of a persisted state has no ceiling of its own: the state's applies.
    assert!(load(&limit_document("limits.plugins.maxPersistedManifestFileBytes", u64::MAX.into())).is_ok());
}

/// The defaults with `key` (a tools or plugins key) set to `value`.
fn resolve_one(key: &str, value: u64) -> ResolvedLimits {
    let mut limits = ResolvedLimits::default();
    let tools = &mut limits.tools;
    let plugins = &mut limits.plugins;
    let field = match key {
        "limits.tools.maxToolTimeoutMs" => &mut tools.max_tool_timeout_ms,
        "limits.tools.maxRegisteredToolkits" => &mut tools.max_registered_toolkits,
        "limits.tools.maxRegisteredToolsPerVm" => &mut tools.max_registered_tools_per_vm,
        "limits.tools.maxToolsPerToolkit" => &mut tools.max_tools_per_toolkit,
        "limits.tools.maxToolSchemaBytes" => &mut tools.max_tool_schema_bytes,
        "limits.tools.maxToolExamplesPerTool" => &mut tools.max_tool_examples_per_tool,
        "limits.tools.maxToolExampleInputBytes" => &mut tools.max_tool_example_input_bytes,
        "limits.plugins.maxPersistedManifestBytes" => &mut plugins.max_persisted_manifest_bytes,
        other => panic!("{other}"),
    };
    *field = value;
    limits
}

#[test]
fn error_variants_carry_the_parts() {
    let error = parse_create_vm_config(r#"{"limits":{"resources":{"maxPipes":true}}}"#).unwrap_err();
    let ConfigError::Json { path, message } = &error else { panic!("{error:?}") };
    assert_eq!(path, "limits.resources.maxPipes");
    assert!(message.starts_with("invalid type: boolean `true`, expected u64"), "{message}");

    let error =
        parse_create_vm_config(r#"{"permissions":{"network":{"rules":[{"mode":"allow","operations":["dns"]}]}}}"#)
            .unwrap_err();
    assert_eq!(
        error,
        ConfigError::Policy(PolicyError::EmptyList { domain: Domain::Network, rule: 0, field: RuleField::Patterns })
    );

    // Checked in order: fs before the pattern domains, operations before patterns.
    let policy = PermissionsPolicy {
        fs: Some(FsPermissionScope::Rules(FsPermissionRuleSet {
            default: None,
            rules: vec![FsPermissionRule { mode: PermissionMode::Allow, operations: vec![], paths: vec![] }],
        })),
        env: Some(PatternPermissionScope::Rules(PatternPermissionRuleSet {
            default: None,
            rules: vec![PatternPermissionRule { mode: PermissionMode::Allow, operations: vec![], patterns: vec![] }],
        })),
        ..PermissionsPolicy::default()
    };
    assert_eq!(
        validate_permissions_policy(&policy).unwrap_err(),
        ConfigError::Policy(PolicyError::EmptyList { domain: Domain::Fs, rule: 0, field: RuleField::Operations })
    );
    let policy = PermissionsPolicy {
        tool: Some(PatternPermissionScope::Rules(PatternPermissionRuleSet {
            default: None,
            rules: vec![PatternPermissionRule {
                mode: PermissionMode::Allow,
                operations: vec!["invoke".into(), "*".into(), "run".into()],
                patterns: vec!["*".into()],
            }],
        })),
        ..PermissionsPolicy::default()
    };
    assert_eq!(
        validate_permissions_policy(&policy).unwrap_err(),
        ConfigError::Policy(PolicyError::UnknownOperation {
            domain: Domain::Tool,
            rule: 0,
            index: 2,
            name: "run".into()
        })
    );
    assert!(validate_permissions_policy(&PermissionsPolicy::allow_all()).is_ok());
    assert!(validate_permissions_policy(&PermissionsPolicy::default()).is_ok());
}

#[test]
fn configure_vm_wire_policy_converts_to_the_config_form() {
    let wire_policy = wire::PermissionsPolicy {
        fs: Some(wire::FsPermissionScope::FsPermissionRuleSet(wire::FsPermissionRuleSet {
            default: Some(wire::PermissionMode::Ask),
            rules: vec![wire::FsPermissionRule {
                mode: wire::PermissionMode::Allow,
                operations: strings(&["read"]),
                paths: strings(&["/tmp/**"]),
            }],
        })),
        network: Some(wire::PatternPermissionScope::PermissionMode(wire::PermissionMode::Deny)),
        child_process: Some(wire::PatternPermissionScope::PatternPermissionRuleSet(wire::PatternPermissionRuleSet {
            default: None,
            rules: vec![wire::PatternPermissionRule {
                mode: wire::PermissionMode::Deny,
                operations: strings(&["spawn"]),
                patterns: strings(&["rm"]),
            }],
        })),
        process: None,
        env: Some(wire::PatternPermissionScope::PermissionMode(wire::PermissionMode::Allow)),
        tool: Some(wire::PatternPermissionScope::PermissionMode(wire::PermissionMode::Ask)),
    };
    let expected: PermissionsPolicy = serde_json::from_str(
        r#"{
          "fs": {"default": "ask", "rules": [{"mode": "allow", "operations": ["read"], "paths": ["/tmp/**"]}]},
          "network": "deny",
          "childProcess": {"rules": [{"mode": "deny", "operations": ["spawn"], "patterns": ["rm"]}]},
          "env": "allow",
          "tool": "ask"
        }"#,
    )
    .unwrap();
    let converted = PermissionsPolicy::from(&wire_policy);
    assert_eq!(converted, expected);
    assert!(validate_permissions_policy(&converted).is_ok());

    // The same empty-list rule applies to a ConfigureVm policy.
    let empty = wire::PermissionsPolicy {
        fs: None,
        network: None,
        child_process: Some(wire::PatternPermissionScope::PatternPermissionRuleSet(wire::PatternPermissionRuleSet {
            default: Some(wire::PermissionMode::Allow),
            rules: vec![wire::PatternPermissionRule {
                mode: wire::PermissionMode::Deny,
                operations: vec![],
                patterns: strings(&["*"]),
            }],
        })),
        process: None,
        env: None,
        tool: None,
    };
    let error = validate_permissions_policy(&PermissionsPolicy::from(&empty)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid permissions policy: child_process.rules[0].operations must not be empty; use [\"*\"] for wildcard"
    );
    assert_eq!(error.code(), "invalid_state");
    for mode in wire::PermissionMode::ALL {
        let converted = PermissionMode::from(mode);
        let name = serde_json::to_string(&converted).unwrap();
        assert_eq!(name.trim_matches('"').to_ascii_uppercase(), format!("{mode:?}").to_ascii_uppercase());
    }
}

#[test]
fn known_builtins() {
    assert_eq!(KNOWN_NODE_BUILTINS.len(), 52);
    for name in ["fs", "node:fs", "dns/promises", "node:stream/web", "zlib"] {
        assert!(is_known_node_builtin(name), "{name}");
    }
    for name in ["", "node:", "node:node:fs", "FS", "fs/", "left-pad"] {
        assert!(!is_known_node_builtin(name), "{name}");
    }
}

/// The JSON keys of the honoured `limits.resources`, in `ResourceLimits` field order.
const RESOURCE_KEYS: [&str; 13] = [
    "maxProcesses",
    "maxOpenFds",
    "maxPipes",
    "maxFilesystemBytes",
    "maxInodeCount",
    "maxPreadBytes",
    "maxFdWriteBytes",
    "maxProcessArgvBytes",
    "maxProcessEnvBytes",
    "maxReaddirEntries",
    "maxWasmFuel",
    "maxWasmMemoryBytes",
    "maxWasmStackBytes",
];

fn resource_values(limits: &ResourceLimits) -> [u64; 13] {
    [
        limits.max_processes,
        limits.max_open_fds,
        limits.max_pipes,
        limits.max_filesystem_bytes,
        limits.max_inode_count,
        limits.max_pread_bytes,
        limits.max_fd_write_bytes,
        limits.max_process_argv_bytes,
        limits.max_process_env_bytes,
        limits.max_readdir_entries,
        limits.max_wasm_fuel,
        limits.max_wasm_memory_bytes,
        limits.max_wasm_stack_bytes,
    ]
}

/// Positive values (the sections whose keys must be greater than zero).
fn positive() -> impl Strategy<Value = u64> {
    prop_oneof![1..=16u64, 1..=u64::MAX]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Present keys override, absent keys keep their default, for every resources key.
    #[test]
    fn resource_overrides_round_trip(overrides in proptest::collection::vec(proptest::option::of(any::<u64>()), 13)) {
        let mut resources = serde_json::Map::new();
        for (key, value) in RESOURCE_KEYS.iter().zip(&overrides) {
            if let Some(value) = value {
                resources.insert((*key).to_owned(), serde_json::Value::from(*value));
            }
        }
        let json = serde_json::json!({ "limits": { "resources": resources } }).to_string();
        let config = parse_create_vm_config(&json).unwrap();
        let limits = config.resolve_limits().unwrap();
        let defaults = resource_values(&ResourceLimits::default());
        let resolved = resource_values(&limits.resources);
        for index in 0..13 {
            prop_assert_eq!(resolved[index], overrides[index].unwrap_or(defaults[index]), "{}", RESOURCE_KEYS[index]);
        }
        // And the typed form serializes back to the same document.
        let reparsed = parse_create_vm_config(&serde_json::to_string(&config).unwrap()).unwrap();
        prop_assert_eq!(reparsed, config);
    }

    /// The other sections: valid overrides (at most the ceilings) come back as given.
    #[test]
    fn section_overrides_round_trip(
        timeouts in (0..=MAX_TOOL_TIMEOUT_MS).prop_flat_map(|max| (0..=max, Just(max))),
        toolkits in 1..=MAX_REGISTERED_TOOLKITS,
        tools_per_vm in 1..=MAX_REGISTERED_TOOLS_PER_VM,
        tools_per_toolkit in 1..=MAX_TOOLS_PER_TOOLKIT,
        schema_bytes in 1..=MAX_TOOL_SCHEMA_BYTES,
        examples in 0..=MAX_TOOL_EXAMPLES_PER_TOOL,
        example_bytes in 1..=MAX_TOOL_EXAMPLE_INPUT_BYTES,
        plugins in (1..=MAX_PERSISTED_MANIFEST_BYTES, any::<u64>()),
        wasm in (positive(), 1..=u64::from(u32::MAX)),
    ) {
        let (default_timeout, max_timeout) = timeouts;
        let json = serde_json::json!({ "limits": {
            "tools": {
                "defaultToolTimeoutMs": default_timeout, "maxToolTimeoutMs": max_timeout,
                "maxRegisteredToolkits": toolkits, "maxRegisteredToolsPerVm": tools_per_vm,
                "maxToolsPerToolkit": tools_per_toolkit, "maxToolSchemaBytes": schema_bytes,
                "maxToolExamplesPerTool": examples, "maxToolExampleInputBytes": example_bytes,
            },
            "plugins": { "maxPersistedManifestBytes": plugins.0, "maxPersistedManifestFileBytes": plugins.1 },
            "wasm": { "maxModuleFileBytes": wasm.0, "syncReadLimitBytes": wasm.1 },
        } }).to_string();
        let limits = parse_create_vm_config(&json).unwrap().resolve_limits().unwrap();
        prop_assert_eq!(limits.tools, ToolLimits {
            default_tool_timeout_ms: default_timeout,
            max_tool_timeout_ms: max_timeout,
            max_registered_toolkits: toolkits,
            max_registered_tools_per_vm: tools_per_vm,
            max_tools_per_toolkit: tools_per_toolkit,
            max_tool_schema_bytes: schema_bytes,
            max_tool_examples_per_tool: examples,
            max_tool_example_input_bytes: example_bytes,
        });
        prop_assert_eq!(limits.plugins, PluginLimits { max_persisted_manifest_bytes: plugins.0, max_persisted_manifest_file_bytes: plugins.1 });
        prop_assert_eq!(limits.wasm, WasmLimits { max_module_file_bytes: wasm.0, sync_read_limit_bytes: wasm.1 });
    }

    /// Arbitrary text never panics and every refusal is `invalid_state`.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Err(error) = parse_create_vm_config(&text).and_then(|config| config.resolve()) {
            prop_assert_eq!(error.code(), "invalid_state");
        }
    }

    /// Byte-level damage to a real document never panics.
    #[test]
    fn damaged_documents_never_panic(cut in 0..FULL_EXAMPLE.len(), insert in any::<char>(), at in 0..FULL_EXAMPLE.len()) {
        let mut damaged: Vec<char> = FULL_EXAMPLE.chars().collect();
        let cut = cut.min(damaged.len() - 1);
        damaged.remove(cut);
        damaged.insert(at.min(damaged.len()), insert);
        let damaged: String = damaged.into_iter().collect();
        let _ = parse_create_vm_config(&damaged).and_then(|config| config.resolve());
    }
}
