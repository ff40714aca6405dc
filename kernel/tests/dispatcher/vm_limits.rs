//! The CreateVm config's `limits` through the protocol: a key this sidecar does not honour is
//! refused at CreateVm (and a config without it still makes a VM), and the `limits.tools` keys
//! bound host-callback registration and invocation (docs/limits.md lists every key).

use std::collections::BTreeMap;

use crate::harness::*;
use kernel::dispatch::HostCallbackOutcome;
use kernel::policy::config::VmLimitsConfig;
use schema::wire::*;

/// Every refused key with the value the original sidecar defaulted it to: even that value is
/// refused, since no value of these keys describes this sidecar.
const REFUSED: [(&str, u64); 13] = [
    ("limits.resources.cpuCount", 1),
    ("limits.resources.maxPtys", 128),
    ("limits.resources.maxBlockingReadMs", 5_000),
    ("limits.acp.maxReadLineBytes", 16 * 1024 * 1024),
    ("limits.acp.stdoutBufferByteLimit", 1024 * 1024),
    ("limits.jsRuntime.v8HeapLimitMb", 128),
    ("limits.jsRuntime.capturedOutputLimitBytes", 16 * 1024 * 1024),
    ("limits.jsRuntime.stdinBufferLimitBytes", 16 * 1024 * 1024),
    ("limits.jsRuntime.eventPayloadLimitBytes", 1024 * 1024),
    ("limits.jsRuntime.v8IpcMaxFrameBytes", 64 * 1024 * 1024),
    ("limits.python.outputBufferMaxBytes", 1024 * 1024),
    ("limits.python.vfsRpcTimeoutMs", 30_000),
    ("limits.wasm.capturedOutputLimitBytes", 16 * 1024 * 1024),
];

/// A config allowing the fs with `{"limits":{"<section>":{"<key>":value}}}` for the JSON path
/// `limits.<section>.<key>` (`value` `None`: the section is empty).
fn config_with(path: &str, value: Option<u64>) -> String {
    let mut parts = path.split('.').skip(1);
    let (section, key) = (parts.next().unwrap(), parts.next().unwrap());
    let section_value = match value {
        Some(value) => serde_json::json!({ key: value }),
        None => serde_json::json!({}),
    };
    serde_json::json!({ "permissions": { "fs": "allow" }, "limits": { section: section_value } }).to_string()
}

fn create_vm(host: &mut Harness, conn: &str, session: &str, config: &str) -> ResponsePayload {
    let frames = host.request(
        OwnershipScope::session(conn, session),
        RequestPayload::CreateVmRequest(CreateVmRequest {
            runtime: GuestRuntimeKind::WebAssembly,
            config: config.into(),
        }),
    );
    response_payload(&frames[0]).clone()
}

#[test]
fn every_refused_key_is_refused_at_create_vm_and_configs_without_it_still_work() {
    let keys: Vec<&str> = REFUSED.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, VmLimitsConfig::unsupported_key_names(), "a refused key without a case here");
    let mut host = Harness::new();
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    for (key, value) in REFUSED {
        let before = host.sidecar.vms().len();
        match create_vm(&mut host, &conn, &session, &config_with(key, Some(value))) {
            ResponsePayload::RejectedResponse(rejected) => {
                assert_eq!(rejected.code, "invalid_state", "{key}");
                let expected = format!("invalid create VM config: {key} is not supported by this sidecar yet: ");
                assert!(rejected.message.starts_with(&expected), "{key}: {}", rejected.message);
            }
            other => panic!("{key}={value} was accepted: {other:?}"),
        }
        assert_eq!(host.sidecar.vms().len(), before, "{key}: no VM was made");
        // The same config without the key (its section empty) makes a VM.
        let created = create_vm(&mut host, &conn, &session, &config_with(key, None));
        assert!(matches!(created, ResponsePayload::VmCreatedResponse(_)), "{key}: {created:?}");
        host.drain();
    }
}

#[test]
fn a_limit_over_its_ceiling_is_refused_at_create_vm() {
    let mut host = Harness::new();
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    let refused = create_vm(&mut host, &conn, &session, &config_with("limits.tools.maxToolsPerToolkit", Some(65)));
    let ResponsePayload::RejectedResponse(rejected) = refused else { panic!("{refused:?}") };
    assert_eq!(
        (rejected.code.as_str(), rejected.message.as_str()),
        (
            "invalid_state",
            "invalid create VM config: limits.tools.maxToolsPerToolkit (65) must be <= 64, the most this sidecar allows"
        )
    );
    let at_ceiling = create_vm(&mut host, &conn, &session, &config_with("limits.tools.maxToolsPerToolkit", Some(64)));
    assert!(matches!(at_ceiling, ResponsePayload::VmCreatedResponse(_)), "{at_ceiling:?}");
}

fn tool(timeout_ms: Option<u64>, examples: Vec<RegisteredHostCallbackExample>) -> RegisteredHostCallbackDefinition {
    RegisteredHostCallbackDefinition {
        description: "a tool".into(),
        input_schema: r#"{"type":"object"}"#.into(),
        timeout_ms,
        examples,
    }
}

fn toolkit(name: &str, tools: usize, edit: impl FnOnce(&mut RegisterHostCallbacksRequest)) -> RequestPayload {
    testkit::requests::register_toolkit(name, tools, || tool(None, vec![]), edit)
}

/// `accepted`, or the rejection as `code: message`.
fn outcome(frames: &[ProtocolFrame]) -> String {
    match response_payload(&frames[0]) {
        ResponsePayload::RejectedResponse(r) => format!("{}: {}", r.code, r.message),
        ResponsePayload::HostCallbacksRegisteredResponse(_) => "accepted".into(),
        other => panic!("{other:?}"),
    }
}

/// Registers `payloads` in order on a new VM with `config`; the outcome of each.
fn register_all(config: &str, payloads: Vec<RequestPayload>) -> Vec<String> {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm(config);
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    payloads.into_iter().map(|payload| outcome(&host.request(scope.clone(), payload))).collect()
}

#[test]
fn tool_limits_of_the_config_bound_each_registration() {
    let example = |input: &str| RegisteredHostCallbackExample { description: "e".into(), input: input.into() };
    // (the limits.tools the VM sets, a registration within the defaults, the refusal)
    let cases: Vec<(&str, RequestPayload, &str)> = vec![
        (r#""maxToolsPerToolkit":2"#, toolkit("kit", 3, |_| {}), "toolkit kit defines 3 tools, max is 2"),
        (
            r#""maxToolSchemaBytes":8"#,
            toolkit("kit", 1, |_| {}),
            "Tool \"kit/tool-0\" input schema is 17 bytes, max is 8 (limits.tools.maxToolSchemaBytes)",
        ),
        (
            r#""maxToolExamplesPerTool":0"#,
            toolkit("kit", 1, |r| {
                r.callbacks.insert("tool-0".into(), tool(None, vec![example("{}")]));
            }),
            "Tool \"kit/tool-0\" defines 1 examples, max is 0 (limits.tools.maxToolExamplesPerTool)",
        ),
        (
            r#""maxToolExampleInputBytes":2"#,
            toolkit("kit", 1, |r| {
                r.callbacks.insert("tool-0".into(), tool(None, vec![example("[1,2]")]));
            }),
            "Tool \"kit/tool-0\" example input is 5 bytes, max is 2 (limits.tools.maxToolExampleInputBytes)",
        ),
        (
            r#""maxToolTimeoutMs":1000,"defaultToolTimeoutMs":1000"#,
            toolkit("kit", 1, |r| {
                r.callbacks.insert("tool-0".into(), tool(Some(1_001), vec![]));
            }),
            "Tool \"kit/tool-0\" timeout is 1001ms, max is 1000ms (limits.tools.maxToolTimeoutMs)",
        ),
    ];
    for (limits, payload, refusal) in cases {
        let config = format!(r#"{{"limits":{{"tools":{{{limits}}}}}}}"#);
        assert_eq!(register_all("{}", vec![payload.clone()]), ["accepted"], "{limits}: fits the defaults");
        let outcomes = register_all(&config, vec![payload]);
        assert!(outcomes[0].starts_with("invalid_state: ") && outcomes[0].contains(refusal), "{limits}: {outcomes:?}");
    }
}

#[test]
fn registry_limits_of_the_config_bound_the_vm() {
    let toolkits = register_all(
        r#"{"limits":{"tools":{"maxRegisteredToolkits":1}}}"#,
        vec![toolkit("one", 1, |_| {}), toolkit("two", 1, |_| {})],
    );
    assert_eq!(
        toolkits,
        [
            "accepted",
            "invalid_state: VM already has 1 registered toolkits, max is 1 (limits.tools.maxRegisteredToolkits)"
        ]
    );
    let tools = register_all(
        r#"{"limits":{"tools":{"maxRegisteredToolsPerVm":3}}}"#,
        vec![toolkit("one", 2, |_| {}), toolkit("two", 2, |_| {}), toolkit("three", 1, |_| {})],
    );
    assert_eq!(
        tools,
        [
            "accepted",
            "invalid_state: VM would have 4 registered host callbacks, max is 3 (limits.tools.maxRegisteredToolsPerVm)",
            "accepted",
        ]
    );
    // The defaults would have taken all of them.
    let defaults = register_all("{}", vec![toolkit("one", 2, |_| {}), toolkit("two", 2, |_| {})]);
    assert_eq!(defaults, ["accepted", "accepted"]);
}

/// A callback whose definition names no timeout gets `limits.tools.defaultToolTimeoutMs`: in
/// the `HostCallbackRequest` the host receives, and on the kernel's clock.
#[test]
fn the_default_tool_timeout_of_the_config_applies_to_callbacks_without_one() {
    let mut host = Harness::new();
    let (conn, session, vm) = host.vm(r#"{"limits":{"tools":{"defaultToolTimeoutMs":500}}}"#);
    let scope = OwnershipScope::vm(&conn, &session, &vm);
    let registration = toolkit("kit", 1, |r| {
        r.registry_command_aliases = vec!["kit-run".into()];
        r.callbacks = BTreeMap::from([("run".to_owned(), tool(None, vec![]))]);
    });
    assert_eq!(outcome(&host.request(scope, registration)), "accepted");
    for key in ["kit:run", "kit-run"] {
        let invocation = host.sidecar.invoke_host_callback(&vm, key, "{}").unwrap();
        let frames = host.drain();
        let ProtocolFrame::SidecarRequestFrame(request) = &frames[0] else { panic!("{frames:?}") };
        let SidecarRequestPayload::HostCallbackRequest(call) = &request.payload else { panic!("{request:?}") };
        assert_eq!(call.timeout_ms, 500, "{key}");
        assert_eq!(host.sidecar.next_deadline(), Some(host.now.monotonic_ms + 500), "{key}");
        host.advance(499);
        assert_eq!(host.sidecar.take_host_callback_outcome(&invocation), None, "{key}");
        host.advance(1);
        assert_eq!(host.sidecar.take_host_callback_outcome(&invocation), Some(HostCallbackOutcome::TimedOut), "{key}");
    }
}

/// Top-level CreateVm keys of subsystems this sidecar does not have are refused when set (they
/// were parsed, checked and read nowhere); absent, `null` or empty they are fine.
#[test]
fn top_level_keys_without_a_subsystem_are_refused_when_set() {
    let mut host = Harness::new();
    let conn = host.authenticate();
    let session = host.open_session(&conn);
    let cases = [("nativeRoot", r#""nativeRoot":{"plugin":{"id":"memory","config":{}}}"#)];
    for (key, member) in cases {
        match create_vm(&mut host, &conn, &session, &format!("{{{member}}}")) {
            ResponsePayload::RejectedResponse(rejected) => {
                assert_eq!(rejected.code, "invalid_state", "{key}");
                assert!(
                    rejected.message.contains(&format!("{key} is not supported by this sidecar yet")),
                    "{key}: {}",
                    rejected.message
                );
            }
            other => panic!("{key} was accepted: {other:?}"),
        }
    }
    let defaults = r#"{"dns":null,"listen":null,"nativeRoot":null,"jsRuntime":null,"loopbackExemptPorts":[]}"#;
    assert!(matches!(create_vm(&mut host, &conn, &session, defaults), ResponsePayload::VmCreatedResponse(_)));
    // jsRuntime has its subsystem: the node command honours it (tests/it/javascript.rs).
    let js_runtime = r#"{"jsRuntime":{"platform":"node","allowedBuiltins":["fs"]}}"#;
    assert!(matches!(create_vm(&mut host, &conn, &session, js_runtime), ResponsePayload::VmCreatedResponse(_)));
}
