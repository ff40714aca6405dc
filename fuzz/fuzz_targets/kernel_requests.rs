//! Structure-aware state-machine fuzzing of the sans-IO `kernel::Sidecar`.
//!
//! The input is an `arbitrary` [`Scenario`]: a sidecar configuration and a list of actions
//! (frames built from `arbitrary` wire types but steered towards validity — current schema,
//! fresh positive ids, ownership drawn from the ids the sidecar actually issued or a small fixed
//! set, CreateVm configs from a list of valid and invalid documents — plus raw garbage bytes,
//! clock moves, host-callback invocations and permission checks, a second stream opened and
//! closed, shutdown). Frames are delivered either decoded (`handle_frame`) or encoded and cut
//! into chunks (`handle_bytes`).
//!
//! Oracles (checked after every action):
//! - nothing panics;
//! - every output decodes within the frame limit, passes `validate_frame`, is addressed to an
//!   open stream and is a kind the sidecar may send;
//! - every `RequestFrame` with id > 0 delivered on an open stream — and every undecodable frame
//!   whose id the decoder recovers — gets exactly one `ResponseFrame` with that id on that
//!   stream, before the call returns (the kernel answers synchronously today);
//! - the VMs, sessions and connections the sidecar reports equal a model kept from its
//!   responses and lifecycle events;
//! - after `tick(now)` no deadline is due; after `shutdown` no VM and no pending sidecar
//!   request remain;
//! - processes (run by the kernel's scripted engine, `testkit::script`: `cat`, `spin`,
//!   `exit`, `flood`, `files`) only produce events after being started, exit exactly once, and
//!   have all exited when their VM is disposed;
//! - the whole run is deterministic: replaying the scenario gives byte-identical outputs.
#![no_main]

use arbitrary::Arbitrary;
use kernel::dispatch::{PermissionCheck, PromptTicket, KNOWN_MOUNT_PLUGINS, PERMISSION_PROMPT_NAMESPACE};
use kernel::policy::permissions::Capability;
use kernel::{Now, Sidecar, SidecarConfig, StreamId};
use libfuzzer_sys::fuzz_target;
use schema::codec::Decoded;
use schema::validate::{request_requirement, OwnershipRequirement};
use schema::wire::*;
use schema::{decode_frame, validate_frame, FrameDecoder};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use testkit::requests::{authenticate, authenticate_request, create_vm_for, open_session, request_frame};
use testkit::script::ScriptEngine;

const MAX_ACTIONS: usize = 48;
const MAX_STREAMS: usize = 4;
/// Sidecar-initiated requests remembered for steering answers.
const MAX_OBSERVED_REQUESTS: usize = 16;
const AUTH_TOKEN: &str = "tok";

/// CreateVm config documents: valid ones that unlock deeper paths (prompts, rule sets, short
/// tool timeouts) and invalid ones for each kind of refusal. An index past the end keeps the
/// `arbitrary` string.
const CONFIGS: &[&str] = &[
    "{}",
    r##"{"permissions":{"fs":"allow","childProcess":"allow","process":"allow"},"rootFilesystem":{"bootstrapEntries":[{"path":"/bin/cat","kind":"file","content":"\u0000asmcat"},{"path":"/bin/spin","kind":"file","content":"\u0000asmspin"},{"path":"/bin/exit","kind":"file","content":"\u0000asmexit"},{"path":"/bin/flood","kind":"file","content":"\u0000asmflood"},{"path":"/bin/files","kind":"file","content":"\u0000asmfiles"},{"path":"/bin/parent","kind":"file","content":"\u0000asmparent"},{"path":"/bin/pipes","kind":"file","content":"\u0000asmpipes"},{"path":"/bin/killgroup","kind":"file","content":"\u0000asmkillgroup"},{"path":"/bin/script","kind":"file","content":"#!/bin/sh"}]},"limits":{"resources":{"maxProcesses":3,"maxProcessArgvBytes":64}}}"##,
    r#"{"permissions":{"fs":"ask","network":"ask","childProcess":"allow","process":"deny","env":"ask","tool":"ask"},"permissionPrompts":{"enabled":true,"timeoutMs":25}}"#,
    r#"{"permissions":{"fs":{"default":"deny","rules":[{"mode":"allow","operations":["read","stat"],"paths":["/**"]},{"mode":"ask","operations":["*"],"paths":["/tmp/*","/home/**/x"]}]},"tool":{"default":"ask","rules":[{"mode":"allow","operations":["invoke"],"patterns":["kit:*"]}]}},"permissionPrompts":{"enabled":true}}"#,
    r#"{"cwd":"/tmp/project","env":{"HOME":"/home/user","DEBUG":"1"},"rootFilesystem":{"mode":"ephemeral","lowers":[{"kind":"snapshot","entries":[{"path":"/etc/motd","kind":"file","content":"hi","encoding":"utf8","mode":420}]},{"kind":"bundledBaseFilesystem"}],"bootstrapEntries":[{"path":"/workspace","kind":"directory","mode":493},{"path":"/workspace/link","kind":"symlink","target":"/workspace/run.sh"}]},"permissions":{"network":{"default":"deny","rules":[{"mode":"allow","operations":["dns","http"],"patterns":["dns://*.example.com","tcp://*.example.com:443"]}]},"childProcess":"allow"},"limits":{"resources":{"maxProcesses":32},"tools":{"defaultToolTimeoutMs":10000,"maxToolTimeoutMs":60000}},"dns":{"nameServers":["1.1.1.1","8.8.8.8:53"],"overrides":{"api.example.com":["10.0.0.5"]}},"listen":{"portMin":3000,"portMax":3999},"loopbackExemptPorts":[5432],"jsRuntime":{"platform":"node","moduleResolution":"node","allowedBuiltins":["fs","node:path"]}}"#,
    r#"{"cwd":"/work","limits":{"tools":{"defaultToolTimeoutMs":10,"maxToolTimeoutMs":20}},"permissions":{"tool":"allow"}}"#,
    r#"{"permissionPrompts":{"enabled":true,"timeoutMs":600000},"permissions":{"fs":"ask","tool":"ask","env":"ask"}}"#,
    r#"{"limits":{"http":{"maxFetchResponseBytes":18446744073709551615}}}"#,
    r#"{"limits":{"resources":{"maxProcesses":0,"cpuCount":0}}}"#,
    "{",
    "",
    "null",
    "[]",
    r#"{"cwd":"relative"}"#,
    r#"{"cwd":"/a/../b"}"#,
    r#"{"unknown":1}"#,
    r#"{"permissions":{"fs":{"rules":[{"mode":"allow","operations":[],"paths":["/"]}]}}}"#,
    r#"{"permissions":{"env":{"rules":[{"mode":"allow","operations":["read"],"patterns":[]}]}}}"#,
    r#"{"permissions":{"fs":"sometimes"}}"#,
    r#"{"permissionPrompts":{"enabled":true,"timeoutMs":0}}"#,
    r#"{"permissionPrompts":{"enabled":true,"timeoutMs":600001}}"#,
    r#"{"dns":{"nameServers":["not-an-ip"]}}"#,
    r#"{"listen":{"portMin":5000,"portMax":4000}}"#,
    r#"{"rootFilesystem":{"bootstrapEntries":[{"path":"rel","kind":"file"}]}}"#,
    r#"{"jsRuntime":{"allowedBuiltins":["definitely-not-a-builtin"]}}"#,
    r#"{"limits":{"tools":{"defaultToolTimeoutMs":50,"maxToolTimeoutMs":10}}}"#,
    r#"{"permissions":{"fs":"allow","tool":"allow"}}"#,
    r#"{"permissions":{"fs":{"default":"deny","rules":[{"mode":"allow","operations":["*"],"paths":["/tmp/**"]},{"mode":"allow","operations":["read","stat","readdir"],"paths":["/**"]}]}},"rootFilesystem":{"bootstrapEntries":[{"path":"/tmp/seed","kind":"file","content":"seed"}]},"limits":{"resources":{"maxFilesystemBytes":4096,"maxInodeCount":64,"maxReaddirEntries":4}}}"#,
    r#"{"rootFilesystem":{"mode":"read-only","lowers":[{"kind":"snapshot","entries":[{"path":"/opt/x","kind":"symlink","target":"/etc"}]}]},"permissions":{"fs":"allow"}}"#,
];

const CONNECTIONS: &[&str] = &["conn-1", "conn-2", "conn-3", "client", "unknown", ""];
const SESSIONS: &[&str] = &["session-1", "session-2", "session-3", ""];
const VMS: &[&str] = &["vm-1", "vm-2", "vm-3", "vm-4", ""];
const CALLBACK_KEYS: &[&str] = &["kit:tool", "kit:other", "tools:t1", "reg", "run", "kit", "nope:tool", ""];
const CALLBACK_INPUTS: &[&str] = &["{}", r#"{"a":[1,2,3]}"#, "not json", ""];
const RESOURCES: &[&str] = &[
    "/tmp/a",
    "/tmp/a/b",
    "/home/user/x",
    "/etc/passwd",
    "HOME",
    "dns://api.example.com",
    "tcp://a:80",
    "kit:tool",
    "",
];
const PROMPT_ANSWERS: &[&str] =
    &[r#"{"decision":"allow"}"#, r#"{"decision":"deny"}"#, r#"{"decision":1}"#, "garbage", ""];

/// Guest paths: existing base-layer paths, fresh ones, relative, `..`, odd separators.
const FS_PATHS: &[&str] = &[
    "/tmp/a",
    "/tmp/a/b",
    "/tmp",
    "/",
    "/etc/passwd",
    "/home/user",
    "rel/file",
    "/tmp/link",
    "/tmp/../../etc/hosts",
    "/tmp//a/./b/",
    "/tmp/a/b/c/d/e",
    "",
    "/tmp/\u{e9}\u{0}",
    "/mnt/0/x",
    "/root/secret",
    "..",
];
/// File contents (index 5 stands for a large one: bigger than the minimum frame limit).
const FS_CONTENTS: &[&str] = &["hello", "", "aGVsbG8=", "%%% not base64", "\u{e9}\u{fffd}", "x"];
const LAYER_IDS: &[&str] = &["layer-1", "layer-2", "layer-3", "", "layer-999"];

#[derive(Arbitrary, Debug)]
struct Scenario {
    require_token: bool,
    /// Default (16 MiB) frame limit instead of the minimum (16 KiB).
    large_frames: bool,
    entropy_seed: u64,
    actions: Vec<Action>,
}

/// Every byte an action reads defaults to the "most valid" choice when it is zero, so inputs
/// that run out of data (arbitrary fills with zeros) still make progress.
#[derive(Arbitrary, Debug)]
enum Action {
    Request {
        stream: u8,
        delivery: u8,
        steer: Steer,
        kind: RequestKind,
    },
    /// Authenticate, open a session and create a VM (and maybe register a toolkit), steered to
    /// succeed: reaches VM-level state in a few bytes.
    Bootstrap {
        stream: u8,
        config: u8,
        runtime: GuestRuntimeKind,
        toolkit: u8,
    },
    SidecarResponse {
        stream: u8,
        delivery: u8,
        pick: u8,
        answer: u8,
        steer: Steer,
    },
    InvokeCallback {
        vm: u8,
        key: u8,
        input: u8,
    },
    CheckPermission {
        vm: u8,
        capability: u8,
        resource: u8,
    },
    Advance {
        ms: u32,
        backwards: bool,
    },
    TakeOutcomes,
    OpenStream,
    CloseStream {
        stream: u8,
    },
    Garbage {
        stream: u8,
        bytes: Vec<u8>,
    },
    FinishInput {
        stream: u8,
    },
    /// Any frame at all (responses, events and sidecar requests hosts must not send), with only
    /// its schema steered.
    Frame {
        stream: u8,
        delivery: u8,
        steer: Steer,
        frame: ProtocolFrame,
    },
    Shutdown,
}

#[derive(Arbitrary, Debug)]
enum RequestKind {
    OpenSession,
    CreateVm {
        config: u8,
        runtime: GuestRuntimeKind,
        raw_config: String,
    },
    Authenticate {
        token: u8,
        versions: u8,
    },
    DisposeVm {
        reason: DisposeReason,
    },
    ConfigureVm {
        fix_mounts: bool,
        raw: ConfigureVmRequest,
    },
    RegisterHostCallbacks {
        preset: u8,
        timeout_ms: Option<u16>,
    },
    /// A guest filesystem call with paths, contents and required fields steered.
    GuestFs {
        operation: GuestFilesystemOperation,
        path: u8,
        other: u8,
        content: u8,
        fields: u8,
        numbers: u32,
    },
    /// Root filesystem and layer-store requests, with layer ids seen in responses.
    Layers {
        operation: u8,
        first: u8,
        second: u8,
        mode: RootFilesystemMode,
        entries: u8,
    },
    /// A process request with ids, commands, chunks and signals steered.
    Process {
        operation: u8,
        process: u8,
        command: u8,
        signal: u8,
        chunk: Vec<u8>,
    },
    /// Any payload, with the steered header.
    Raw {
        payload: RequestPayload,
    },
    /// A whole `arbitrary` request; only the schema is steered.
    RawFrame {
        frame: RequestFrame,
    },
}

/// How far a frame's header is pulled towards validity (zero: all the way).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Steer {
    flags: u8,
    conn: u8,
    session: u8,
    vm: u8,
    long_id: u16,
}

impl Steer {
    /// A wrong schema one time in eight.
    fn wrong_schema(self) -> Option<ProtocolSchema> {
        let wrong = |name: &str, version| Some(ProtocolSchema { name: name.to_owned(), version });
        match self.flags & 0x07 {
            7 => match self.long_id % 4 {
                0 => wrong("", 7),
                1 => wrong(schema::PROTOCOL_NAME, 6),
                2 => wrong("secure-exec", 7),
                _ => wrong(schema::PROTOCOL_NAME, u16::MAX),
            },
            _ => None,
        }
    }
    /// 0/1 a fresh id, 2 the last id again, 3 an edge value (0, negative, extreme).
    fn id_mode(self) -> u8 {
        (self.flags >> 3) & 3
    }
    /// 0/1 the scope kind the payload requires, 2 any kind, 3 any kind with odd ids.
    fn scope_mode(self) -> u8 {
        (self.flags >> 5) & 3
    }
    fn long_id(self) -> bool {
        self.flags & 0x80 != 0 && self.long_id != 0
    }
}

fuzz_target!(|scenario: Scenario| {
    let first = run(&scenario);
    let second = run(&scenario);
    assert!(first == second, "the same scenario gave different outputs");
});

/// One sidecar-initiated request as the host saw it.
#[derive(Debug, Clone)]
struct ObservedRequest {
    stream: StreamId,
    request_id: i64,
    ownership: OwnershipScope,
    payload: SidecarRequestPayload,
}

struct Driver {
    sidecar: Sidecar,
    max_frame: usize,
    now: Now,
    /// Every stream ever opened, in order, and whether it is still open.
    streams: Vec<(StreamId, bool)>,
    /// What each open stream's input decoder sees, to know which ids must be answered.
    shadow_decoders: BTreeMap<StreamId, FrameDecoder>,
    expected_responses: BTreeMap<(StreamId, i64), usize>,
    next_request_id: i64,
    // The model, kept from the sidecar's own outputs.
    connections: BTreeMap<String, StreamId>,
    sessions: BTreeMap<String, String>,
    vms: BTreeMap<String, (String, String)>,
    observed: Vec<ObservedRequest>,
    last_connection: Option<String>,
    last_session: Option<String>,
    last_vm: Option<String>,
    /// Layer ids issued by the sidecar (any VM), oldest first.
    layers: Vec<String>,
    tickets: Vec<PromptTicket>,
    invocations: Vec<String>,
    transcript: Vec<(u64, Vec<u8>)>,
    /// Processes started and not exited yet, as (VM id, process id).
    processes: BTreeSet<(String, String)>,
}

fn run(scenario: &Scenario) -> Vec<(u64, Vec<u8>)> {
    let mut config = SidecarConfig { entropy_seed: scenario.entropy_seed, ..SidecarConfig::default() };
    if scenario.require_token {
        config.expected_auth_token = Some(AUTH_TOKEN.to_owned());
    }
    if !scenario.large_frames {
        config.max_frame_bytes = 0; // clamped up to the minimum
    }
    let sidecar = Sidecar::new(config).with_guest_engine(Arc::new(ScriptEngine::new()));
    let max_frame = sidecar.config().max_frame_bytes;
    let mut driver = Driver {
        sidecar,
        max_frame,
        now: Now::from_millis(1_000, 1_700_000_000_000),
        streams: Vec::new(),
        shadow_decoders: BTreeMap::new(),
        expected_responses: BTreeMap::new(),
        next_request_id: 0,
        connections: BTreeMap::new(),
        sessions: BTreeMap::new(),
        vms: BTreeMap::new(),
        observed: Vec::new(),
        last_connection: None,
        last_session: None,
        last_vm: None,
        layers: Vec::new(),
        tickets: Vec::new(),
        invocations: Vec::new(),
        transcript: Vec::new(),
        processes: BTreeSet::new(),
    };
    driver.open_stream();
    for action in scenario.actions.iter().take(MAX_ACTIONS) {
        driver.act(action);
        driver.drain();
        driver.check();
    }
    driver.sidecar.shutdown(driver.now);
    driver.drain();
    driver.check();
    assert!(driver.sidecar.vms().is_empty(), "VMs left after shutdown");
    driver.transcript
}

impl Driver {
    fn act(&mut self, action: &Action) {
        match action {
            Action::Request { stream, delivery, kind, steer } => {
                let frame = self.steer_request(*stream, kind, *steer);
                self.deliver(*stream, *delivery, ProtocolFrame::RequestFrame(frame));
            }
            Action::Bootstrap { stream, config, runtime, toolkit } => {
                self.bootstrap(*stream, *config, *runtime, *toolkit)
            }
            Action::SidecarResponse { stream, delivery, pick, answer, steer } => {
                let (to, frame) = self.steer_sidecar_response(*pick, *answer, *steer);
                // Selector < 128: the stream the request went to; otherwise any stream.
                let to = to.filter(|_| *stream < 128).unwrap_or_else(|| self.stream(*stream));
                self.deliver_to(to, *delivery, ProtocolFrame::SidecarResponseFrame(frame));
            }
            Action::Frame { stream, delivery, steer, frame } => {
                let mut frame = frame.clone();
                set_schema(&mut frame, steer.wrong_schema().unwrap_or_else(ProtocolSchema::current));
                self.deliver(*stream, *delivery, frame);
            }
            Action::Garbage { stream, bytes } => {
                let stream = self.stream(*stream);
                self.send_bytes(stream, bytes);
            }
            Action::Advance { ms, backwards } => {
                self.now.monotonic_ms += u64::from(*ms);
                self.now.wall_ms += u64::from(*ms);
                let reading = if *backwards {
                    Now::from_millis(self.now.monotonic_ms.saturating_sub(u64::from(*ms) * 2), 0)
                } else {
                    self.now
                };
                self.sidecar.tick(reading);
                let now = self.sidecar.now().monotonic_ms;
                // Runnable guests keep a deadline due (a tick runs a bounded number of slices).
                if let Some(deadline) = self.sidecar.next_deadline().filter(|_| self.sidecar.runnable_processes() == 0)
                {
                    assert!(deadline > now, "deadline {deadline} still due after tick at {now}");
                }
            }
            Action::OpenStream => self.open_stream(),
            Action::CloseStream { stream } => {
                let stream = self.stream(*stream);
                self.close_stream(stream);
            }
            Action::FinishInput { stream } => {
                let stream = self.stream(*stream);
                let result = self.sidecar.finish_stream_input(stream, self.now);
                if let Some(shadow) = self.shadow_decoders.get(&stream) {
                    assert_eq!(result, shadow.finish());
                }
            }
            Action::InvokeCallback { vm, key, input } => {
                let vm = self.pick_vm_id(*vm);
                let key = CALLBACK_KEYS[usize::from(*key) % CALLBACK_KEYS.len()];
                let input = CALLBACK_INPUTS[usize::from(*input) % CALLBACK_INPUTS.len()];
                if let Ok(invocation) = self.sidecar.invoke_host_callback(&vm, key, input) {
                    self.invocations.push(invocation);
                }
            }
            Action::CheckPermission { vm, capability, resource } => {
                let vm = self.pick_vm_id(*vm);
                let capability = Capability::ALL[usize::from(*capability) % Capability::ALL.len()];
                let resource = RESOURCES[usize::from(*resource) % RESOURCES.len()];
                if let Ok(PermissionCheck::Prompted(ticket)) = self.sidecar.check_permission(&vm, capability, resource)
                {
                    self.tickets.push(ticket);
                }
            }
            Action::TakeOutcomes => {
                for ticket in std::mem::take(&mut self.tickets) {
                    if self.sidecar.take_prompt_outcome(ticket).is_some() {
                        assert!(self.sidecar.take_prompt_outcome(ticket).is_none(), "prompt outcome taken twice");
                    } else {
                        self.tickets.push(ticket);
                    }
                }
                for invocation in std::mem::take(&mut self.invocations) {
                    if self.sidecar.take_host_callback_outcome(&invocation).is_some() {
                        assert!(self.sidecar.take_host_callback_outcome(&invocation).is_none());
                    } else {
                        self.invocations.push(invocation);
                    }
                }
            }
            Action::Shutdown => {
                self.sidecar.shutdown(self.now);
                self.drain();
                assert!(self.sidecar.vms().is_empty(), "VMs left after shutdown: {:?}", self.sidecar.vms());
                assert_eq!(self.sidecar.pending_sidecar_requests(), 0, "sidecar requests left after shutdown");
            }
        }
    }

    // ----- streams and delivery -------------------------------------------------------------

    fn open_stream(&mut self) {
        if self.streams.len() >= MAX_STREAMS {
            return;
        }
        let stream = self.sidecar.open_stream().expect("a stream can be opened");
        assert!(self.streams.iter().all(|(s, _)| *s != stream), "stream id reused");
        self.streams.push((stream, true));
        self.shadow_decoders.insert(stream, FrameDecoder::new(self.max_frame));
    }

    fn close_stream(&mut self, stream: StreamId) {
        self.drain();
        self.sidecar.close_stream(stream, self.now);
        if let Some(entry) = self.streams.iter_mut().find(|(s, _)| *s == stream) {
            entry.1 = false;
        }
        self.shadow_decoders.remove(&stream);
        let gone: BTreeSet<String> =
            self.connections.iter().filter(|(_, s)| **s == stream).map(|(c, _)| c.clone()).collect();
        self.connections.retain(|c, _| !gone.contains(c));
        self.sessions.retain(|_, c| !gone.contains(c));
        self.vms.retain(|_, (c, _)| !gone.contains(c));
        self.observed.retain(|o| o.stream != stream);
    }

    /// Any stream ever opened, closed ones included (sending to them must do nothing).
    fn stream(&self, selector: u8) -> StreamId {
        self.streams[usize::from(selector) % self.streams.len()].0
    }

    fn is_open(&self, stream: StreamId) -> bool {
        self.streams.iter().any(|(s, open)| *s == stream && *open)
    }

    /// `delivery` < 96: decoded, through `handle_frame`; otherwise encoded (without validation)
    /// and fed through `handle_bytes` in two chunks split at a point `delivery` picks.
    fn deliver(&mut self, selector: u8, delivery: u8, frame: ProtocolFrame) {
        let stream = self.stream(selector);
        self.deliver_to(stream, delivery, frame);
    }

    fn deliver_to(&mut self, stream: StreamId, delivery: u8, frame: ProtocolFrame) {
        if delivery < 96 {
            if self.is_open(stream) {
                if let ProtocolFrame::RequestFrame(request) = &frame {
                    if request.request_id > 0 {
                        *self.expected_responses.entry((stream, request.request_id)).or_default() += 1;
                    }
                }
            }
            self.sidecar.handle_frame(stream, frame, self.now);
            return;
        }
        let body = serde_bare::to_vec(&frame).expect("wire types always encode");
        let mut bytes = u32::try_from(body.len()).expect("small frame").to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let split = (usize::from(delivery - 96) * bytes.len()) / 160;
        let (a, b) = bytes.split_at(split.min(bytes.len()));
        self.send_bytes(stream, a);
        self.send_bytes(stream, b);
    }

    fn send_bytes(&mut self, stream: StreamId, bytes: &[u8]) {
        if let Some(shadow) = self.shadow_decoders.get_mut(&stream) {
            for item in shadow.feed(bytes) {
                let id = match item {
                    Decoded::Frame(ProtocolFrame::RequestFrame(request)) if request.request_id > 0 => {
                        Some(request.request_id)
                    }
                    Decoded::Error { request_id: Some(id), .. } => Some(id),
                    _ => None,
                };
                if let Some(id) = id {
                    *self.expected_responses.entry((stream, id)).or_default() += 1;
                }
            }
        }
        self.sidecar.handle_bytes(stream, bytes, self.now);
    }

    // ----- steering -------------------------------------------------------------------------

    fn request_id(&mut self, steer: Steer) -> i64 {
        match steer.id_mode() {
            0 | 1 => {
                self.next_request_id += 1;
                self.next_request_id
            }
            2 => self.next_request_id.max(1),
            _ => [0, -1, i64::MIN, i64::MAX][usize::from(steer.conn) % 4],
        }
    }

    fn steer_request(&mut self, selector: u8, kind: &RequestKind, steer: Steer) -> RequestFrame {
        if let RequestKind::RawFrame { frame } = kind {
            let mut frame = frame.clone();
            if let Some(schema) = steer.wrong_schema() {
                frame.schema = schema;
            } else if steer.flags & 0x18 != 0x18 {
                frame.schema = ProtocolSchema::current();
            }
            return frame;
        }
        let payload = match kind {
            RequestKind::Authenticate { token, versions } => {
                let mut request = authenticate_request(["tok", "tok", "wrong", ""][usize::from(*token) % 4]);
                if versions & 3 == 3 {
                    request.protocol_version = u16::from(*versions);
                }
                if versions & 12 == 12 {
                    request.bridge_version = u32::from(*versions);
                }
                RequestPayload::AuthenticateRequest(request)
            }
            RequestKind::OpenSession => open_session(),
            RequestKind::CreateVm { config, runtime, raw_config } => {
                let config = CONFIGS.get(usize::from(*config)).map_or_else(|| raw_config.clone(), |c| (*c).to_owned());
                create_vm_for(*runtime, config)
            }
            RequestKind::DisposeVm { reason } => RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: *reason }),
            RequestKind::ConfigureVm { fix_mounts, raw } => {
                let mut request = raw.clone();
                if *fix_mounts {
                    for (index, mount) in request.mounts.iter_mut().enumerate() {
                        mount.plugin.id = KNOWN_MOUNT_PLUGINS[index % KNOWN_MOUNT_PLUGINS.len()].to_owned();
                        mount.plugin.config = "{}".to_owned();
                        mount.guest_path = format!("/mnt/{index}");
                    }
                }
                RequestPayload::ConfigureVmRequest(request)
            }
            RequestKind::RegisterHostCallbacks { preset, timeout_ms } => {
                RequestPayload::RegisterHostCallbacksRequest(register_preset(*preset, *timeout_ms))
            }
            RequestKind::GuestFs { operation, path, other, content, fields, numbers } => {
                RequestPayload::GuestFilesystemCallRequest(guest_fs(
                    *operation, *path, *other, *content, *fields, *numbers,
                ))
            }
            RequestKind::Layers { operation, first, second, mode, entries } => {
                self.layer_request(*operation, *first, *second, *mode, *entries)
            }
            RequestKind::Process { operation, process, command, signal, chunk } => {
                process_request(*operation, *process, *command, *signal, chunk)
            }
            RequestKind::Raw { payload } => payload.clone(),
            RequestKind::RawFrame { .. } => unreachable!("handled above"),
        };
        let stream = self.stream(selector);
        let required = match steer.scope_mode() {
            0 | 1 => request_requirement(&payload),
            _ => [OwnershipRequirement::Connection, OwnershipRequirement::Session, OwnershipRequirement::Vm]
                [usize::from(steer.session) % 3],
        };
        let mut ownership = self.pick_scope(stream, required, steer);
        if steer.scope_mode() == 3 {
            oddify_an_id(&mut ownership, steer);
        }
        if steer.long_id() {
            lengthen_an_id(&mut ownership, steer);
        }
        RequestFrame {
            schema: steer.wrong_schema().unwrap_or_else(ProtocolSchema::current),
            request_id: self.request_id(steer),
            ownership,
            payload,
        }
    }

    fn layer_id(&self, selector: u8) -> String {
        match self.layers.len() {
            n if n > 0 && selector < 160 => self.layers[n - 1 - usize::from(selector) % n].clone(),
            _ => LAYER_IDS[usize::from(selector) % LAYER_IDS.len()].to_owned(),
        }
    }

    fn layer_request(
        &self,
        operation: u8,
        first: u8,
        second: u8,
        mode: RootFilesystemMode,
        entries: u8,
    ) -> RequestPayload {
        match operation % 7 {
            0 => RequestPayload::CreateLayerRequest,
            1 => RequestPayload::SealLayerRequest(SealLayerRequest { layer_id: self.layer_id(first) }),
            2 => RequestPayload::ImportSnapshotRequest(ImportSnapshotRequest { entries: fs_entries(entries) }),
            3 => RequestPayload::ExportSnapshotRequest(ExportSnapshotRequest { layer_id: self.layer_id(first) }),
            4 => RequestPayload::CreateOverlayRequest(CreateOverlayRequest {
                mode,
                upper_layer_id: (first & 1 == 0).then(|| self.layer_id(first >> 1)),
                lower_layer_ids: (0..second % 4).map(|i| self.layer_id(second.wrapping_add(i * 37))).collect(),
            }),
            5 => RequestPayload::BootstrapRootFilesystemRequest(BootstrapRootFilesystemRequest {
                entries: fs_entries(entries),
            }),
            _ => RequestPayload::SnapshotRootFilesystemRequest,
        }
    }

    /// Authenticate → OpenSession → CreateVm (→ RegisterHostCallbacks), each answered before the
    /// next is built from the ids the answers carry.
    fn bootstrap(&mut self, selector: u8, config: u8, runtime: GuestRuntimeKind, toolkit: u8) {
        let stream = self.stream(selector);
        let request = |this: &mut Self, ownership: OwnershipScope, payload: RequestPayload| {
            this.next_request_id += 1;
            let frame = request_frame(this.next_request_id, ownership, payload);
            this.deliver_to(stream, 0, frame);
            this.drain();
        };
        request(self, OwnershipScope::connection("client"), authenticate(AUTH_TOKEN));
        let Some(connection) = self.last_connection.clone() else { return };
        request(self, OwnershipScope::connection(&connection), open_session());
        let Some(session) = self.last_session.clone() else { return };
        let config = CONFIGS[usize::from(config) % CONFIGS.len()].to_owned();
        request(self, OwnershipScope::session(&connection, &session), create_vm_for(runtime, config));
        let Some(vm) = self.last_vm.clone() else { return };
        if toolkit < 128 {
            let register = register_preset(toolkit, (toolkit & 1 == 1).then_some(u16::from(toolkit) * 4));
            let scope = OwnershipScope::vm(&connection, &session, &vm);
            request(self, scope, RequestPayload::RegisterHostCallbacksRequest(register));
        }
    }

    /// An answer to a sidecar request seen on the wire (newest first), and the stream it came on.
    fn steer_sidecar_response(
        &mut self,
        pick: u8,
        answer: u8,
        steer: Steer,
    ) -> (Option<StreamId>, SidecarResponseFrame) {
        let observed = match self.observed.len() {
            0 => None,
            n if pick < 224 => self.observed.get(n - 1 - usize::from(pick) % n).cloned(),
            _ => None,
        };
        let stream = observed.as_ref().map(|o| o.stream);
        let observed = observed.unwrap_or_else(|| ObservedRequest {
            stream: StreamId(0),
            request_id: -1 - i64::from(pick % 4),
            ownership: self.pick_scope(self.stream(0), OwnershipRequirement::Vm, steer),
            payload: SidecarRequestPayload::HostCallbackRequest(HostCallbackRequest {
                invocation_id: "kit:tool:1".to_owned(),
                callback_key: "kit:tool".to_owned(),
                input: "{}".to_owned(),
                timeout_ms: 1,
            }),
        });
        let mut frame = SidecarResponseFrame {
            schema: steer.wrong_schema().unwrap_or_else(ProtocolSchema::current),
            request_id: if steer.id_mode() == 3 { -observed.request_id } else { observed.request_id },
            ownership: observed.ownership.clone(),
            payload: SidecarResponsePayload::ExtEnvelope(ExtEnvelope { namespace: String::new(), payload: Vec::new() }),
        };
        if steer.scope_mode() >= 2 {
            frame.ownership = self.pick_scope(self.stream(0), OwnershipRequirement::Any, steer);
        }
        let answer_text = PROMPT_ANSWERS[usize::from(answer) % PROMPT_ANSWERS.len()];
        frame.payload = match (&observed.payload, answer % 8) {
            (SidecarRequestPayload::HostCallbackRequest(request), answer) => {
                SidecarResponsePayload::HostCallbackResultResponse(HostCallbackResultResponse {
                    invocation_id: if answer == 6 { "nope:1".to_owned() } else { request.invocation_id.clone() },
                    result: (answer & 1 == 0).then(|| r#"{"ok":true}"#.to_owned()),
                    error: (answer & 2 != 0).then(|| "tool failed".to_owned()),
                })
            }
            (SidecarRequestPayload::ExtEnvelope(request), answer) => SidecarResponsePayload::ExtEnvelope(ExtEnvelope {
                namespace: if answer == 6 { "other".to_owned() } else { request.namespace.clone() },
                payload: answer_text.as_bytes().to_vec(),
            }),
            (SidecarRequestPayload::JsBridgeCallRequest(request), _) => {
                SidecarResponsePayload::JsBridgeResultResponse(JsBridgeResultResponse {
                    call_id: request.call_id.clone(),
                    result: Some("null".to_owned()),
                    error: None,
                })
            }
        };
        if let SidecarResponsePayload::ExtEnvelope(envelope) = &mut frame.payload {
            if answer & 0x80 != 0 {
                envelope.namespace = PERMISSION_PROMPT_NAMESPACE.to_owned();
            }
        }
        (stream, frame)
    }

    /// Selector < 128: the newest-first ids owned through `stream`; < 192: any issued id;
    /// otherwise (or when there is none) one of the fixed ids.
    fn pick<'a>(selector: u8, own: Vec<&'a String>, all: Vec<&'a String>) -> Option<&'a String> {
        let from = |list: Vec<&'a String>| match list.len() {
            0 => None,
            n => Some(list[n - 1 - usize::from(selector) % n]),
        };
        match selector {
            0..128 => from(own).or_else(|| from(all)),
            128..192 => from(all),
            _ => None,
        }
    }

    fn pick_connection(&self, stream: StreamId, selector: u8) -> String {
        let own = self.connections.iter().filter(|(_, s)| **s == stream).map(|(c, _)| c).collect();
        let all = self.connections.keys().collect();
        Self::pick(selector, own, all)
            .cloned()
            .unwrap_or_else(|| CONNECTIONS[usize::from(selector) % CONNECTIONS.len()].to_owned())
    }

    fn pick_session(&self, stream: StreamId, steer: Steer) -> (String, String) {
        let own =
            self.sessions.iter().filter(|(_, c)| self.connections.get(*c) == Some(&stream)).map(|(s, _)| s).collect();
        let all = self.sessions.keys().collect();
        match Self::pick(steer.session, own, all) {
            Some(session) => (self.sessions[session].clone(), session.clone()),
            None => (
                self.pick_connection(stream, steer.conn),
                SESSIONS[usize::from(steer.session) % SESSIONS.len()].to_owned(),
            ),
        }
    }

    fn pick_vm(&self, stream: StreamId, steer: Steer) -> (String, String, String) {
        let own =
            self.vms.iter().filter(|(_, (c, _))| self.connections.get(c) == Some(&stream)).map(|(v, _)| v).collect();
        let all = self.vms.keys().collect();
        match Self::pick(steer.vm, own, all) {
            Some(vm) => {
                let (connection, session) = &self.vms[vm];
                (connection.clone(), session.clone(), vm.clone())
            }
            None => {
                let (connection, session) = self.pick_session(stream, steer);
                (connection, session, VMS[usize::from(steer.vm) % VMS.len()].to_owned())
            }
        }
    }

    fn pick_scope(&self, stream: StreamId, required: OwnershipRequirement, steer: Steer) -> OwnershipScope {
        let kind = match required {
            OwnershipRequirement::Any => {
                [OwnershipRequirement::Connection, OwnershipRequirement::Session, OwnershipRequirement::Vm]
                    [usize::from(steer.conn) % 3]
            }
            OwnershipRequirement::SessionOrVm if steer.conn & 1 == 0 => OwnershipRequirement::Session,
            OwnershipRequirement::SessionOrVm => OwnershipRequirement::Vm,
            other => other,
        };
        match kind {
            OwnershipRequirement::Connection => OwnershipScope::connection(self.pick_connection(stream, steer.conn)),
            OwnershipRequirement::Session => {
                let (connection, session) = self.pick_session(stream, steer);
                OwnershipScope::session(connection, session)
            }
            _ => {
                let (connection, session, vm) = self.pick_vm(stream, steer);
                OwnershipScope::vm(connection, session, vm)
            }
        }
    }

    fn pick_vm_id(&self, selector: u8) -> String {
        match self.vms.len() {
            n if n > 0 && selector < 224 => {
                self.vms.keys().nth(n - 1 - usize::from(selector) % n).expect("in range").clone()
            }
            _ => VMS[usize::from(selector) % VMS.len()].to_owned(),
        }
    }

    // ----- outputs and the model ------------------------------------------------------------

    fn drain(&mut self) {
        while let Some(output) = self.sidecar.poll_output() {
            self.transcript.push((output.stream.0, output.bytes.clone()));
            assert!(self.is_open(output.stream), "output for a stream that is not open: {:?}", output.stream);
            let frame = decode_frame(&output.bytes, self.max_frame)
                .unwrap_or_else(|error| panic!("output frame does not decode within the limit: {error}"));
            if let Err(error) = validate_frame(&frame) {
                panic!("output frame is invalid: {error}: {frame:?}");
            }
            self.observe(output.stream, frame);
        }
    }

    fn observe(&mut self, stream: StreamId, frame: ProtocolFrame) {
        match frame {
            ProtocolFrame::ResponseFrame(response) => {
                let key = (stream, response.request_id);
                match self.expected_responses.get_mut(&key) {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => panic!("response to a request that was not sent or was already answered: {response:?}"),
                }
                match response.payload {
                    ResponsePayload::AuthenticatedResponse(authenticated) => {
                        self.last_connection = Some(authenticated.connection_id.clone());
                        let previous = self.connections.insert(authenticated.connection_id.clone(), stream);
                        assert!(previous.is_none(), "connection id {} issued twice", authenticated.connection_id);
                    }
                    ResponsePayload::SessionOpenedResponse(opened) => {
                        self.last_session = Some(opened.session_id.clone());
                        assert_eq!(self.connections.get(&opened.owner_connection_id), Some(&stream));
                        let previous = self.sessions.insert(opened.session_id.clone(), opened.owner_connection_id);
                        assert!(previous.is_none(), "session id {} issued twice", opened.session_id);
                    }
                    ResponsePayload::VmCreatedResponse(created) => {
                        let OwnershipScope::SessionOwnership(scope) = response.ownership else {
                            panic!("VmCreatedResponse without a session scope");
                        };
                        assert_eq!(self.sessions.get(&scope.session_id), Some(&scope.connection_id));
                        self.last_vm = Some(created.vm_id.clone());
                        let previous = self.vms.insert(created.vm_id.clone(), (scope.connection_id, scope.session_id));
                        assert!(previous.is_none(), "VM id {} issued twice", created.vm_id);
                    }
                    ResponsePayload::ProcessStartedResponse(started) => {
                        let vm = response.ownership.vm_id().expect("processes start in a VM scope").to_owned();
                        let fresh = self.processes.insert((vm, started.process_id.clone()));
                        assert!(fresh, "process {} started while already active", started.process_id);
                    }
                    ResponsePayload::LayerCreatedResponse(LayerCreatedResponse { layer_id })
                    | ResponsePayload::LayerSealedResponse(LayerSealedResponse { layer_id })
                    | ResponsePayload::SnapshotImportedResponse(SnapshotImportedResponse { layer_id })
                    | ResponsePayload::OverlayCreatedResponse(OverlayCreatedResponse { layer_id }) => {
                        if self.layers.len() >= 16 {
                            self.layers.remove(0);
                        }
                        self.layers.push(layer_id);
                    }
                    _ => {}
                }
            }
            ProtocolFrame::EventFrame(event) => {
                // Protocol-error events have a connection scope; the others a VM scope.
                let vm = event.ownership.vm_id().unwrap_or_default().to_owned();
                match &event.payload {
                    EventPayload::VmLifecycleEvent(VmLifecycleEvent { state: VmLifecycleState::Disposed }) => {
                        assert!(self.vms.remove(&vm).is_some(), "DISPOSED for a VM not alive: {vm}");
                        let left: Vec<_> = self.processes.iter().filter(|(owner, _)| *owner == vm).collect();
                        assert!(left.is_empty(), "{vm} disposed with processes that never exited: {left:?}");
                    }
                    EventPayload::ProcessOutputEvent(output) => {
                        let key = (vm, output.process_id.clone());
                        assert!(self.processes.contains(&key), "output of a process not running: {key:?}");
                        assert!(!output.chunk.is_empty(), "empty output chunk");
                    }
                    EventPayload::ProcessExitedEvent(exited) => {
                        let key = (vm, exited.process_id.clone());
                        assert!(self.processes.remove(&key), "exit of a process not running: {key:?}");
                    }
                    _ => {}
                }
            }
            ProtocolFrame::SidecarRequestFrame(request) => {
                assert!(request.request_id < 0);
                if self.observed.len() >= MAX_OBSERVED_REQUESTS {
                    self.observed.remove(0);
                }
                self.observed.push(ObservedRequest {
                    stream,
                    request_id: request.request_id,
                    ownership: request.ownership,
                    payload: request.payload,
                });
            }
            other => panic!("the sidecar sent a {} frame", other.member_name()),
        }
    }

    fn check(&mut self) {
        let unanswered: Vec<_> = self.expected_responses.iter().filter(|(_, n)| **n > 0).collect();
        assert!(unanswered.is_empty(), "requests left without a response: {unanswered:?}");
        self.expected_responses.clear();

        let actual: BTreeMap<String, (String, String)> =
            self.sidecar.vms().into_iter().map(|vm| (vm.vm_id, (vm.connection_id, vm.session_id))).collect();
        assert_eq!(actual, self.vms, "the sidecar's VMs differ from the ones its outputs announced");
        assert_eq!(self.sidecar.connection_count(), self.connections.len(), "connection count");
        assert_eq!(self.sidecar.session_count(), self.sessions.len(), "session count");
    }
}

const PROCESS_IDS: &[&str] = &["p1", "p2", "p3", "", "p1/child-1"];
const COMMANDS: &[&str] = &[
    "cat",
    "spin",
    "exit",
    "flood",
    "files",
    "parent",
    "pipes",
    "killgroup",
    "/bin/cat",
    "script",
    "nope",
    "../bin/cat",
    "",
];
const SIGNALS: &[&str] = &["SIGKILL", "TERM", "STOP", "SIGCONT", "0", "9", "SIGCHLD", "", "SIGNOPE", "32"];

/// A process request: Execute (of a scripted command), stdin, signals and the queries.
fn process_request(operation: u8, process: u8, command: u8, signal: u8, chunk: &[u8]) -> RequestPayload {
    let process_id = PROCESS_IDS[usize::from(process) % PROCESS_IDS.len()].to_owned();
    match operation % 8 {
        0 | 1 => {
            let command = COMMANDS[usize::from(command) % COMMANDS.len()];
            let args = match command {
                "exit" => vec![format!("{}", signal % 4)],
                "flood" => vec![format!("{}", u32::from(signal) * 4099)],
                "files" => vec![["/tmp/f", "/etc/f", "/dev/null", "/mnt/0/f"][usize::from(signal) % 4].to_owned()],
                "parent" => [["keep", "spin"], ["reap", "cat"], ["keep", "parent"], ["reap", "exit"]]
                    [usize::from(signal) % 4]
                    .iter()
                    .map(|arg| (*arg).to_owned())
                    .collect(),
                _ => vec![],
            };
            let mut request = ExecuteRequest::command(process_id, command, args);
            if operation & 0x10 != 0 {
                request.wasm_permission_tier = Some(WasmPermissionTier::ReadOnly);
            }
            RequestPayload::ExecuteRequest(request)
        }
        2 => RequestPayload::WriteStdinRequest(WriteStdinRequest { process_id, chunk: chunk.to_vec() }),
        3 => RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id }),
        4 => RequestPayload::KillProcessRequest(KillProcessRequest {
            process_id,
            signal: SIGNALS[usize::from(signal) % SIGNALS.len()].to_owned(),
        }),
        5 => RequestPayload::GetProcessSnapshotRequest,
        6 => RequestPayload::GetSignalStateRequest(GetSignalStateRequest { process_id }),
        _ => RequestPayload::GetZombieTimerCountRequest,
    }
}

fn set_schema(frame: &mut ProtocolFrame, value: ProtocolSchema) {
    let schema = match frame {
        ProtocolFrame::RequestFrame(f) => &mut f.schema,
        ProtocolFrame::ResponseFrame(f) => &mut f.schema,
        ProtocolFrame::EventFrame(f) => &mut f.schema,
        ProtocolFrame::SidecarRequestFrame(f) => &mut f.schema,
        ProtocolFrame::SidecarResponseFrame(f) => &mut f.schema,
    };
    *schema = value;
}

/// Replaces one id of the scope with an odd one: empty, unknown, or another kind's id.
fn oddify_an_id(scope: &mut OwnershipScope, steer: Steer) {
    let odd = ["", "unknown", "conn-1", "session-1", "vm-1", "vm-1\u{0}", "é"][usize::from(steer.long_id % 7)];
    replace_an_id(scope, odd.to_owned(), steer.conn);
}

/// Replaces one id of the scope with a long one (boundary of echoed-id and frame-size limits).
fn lengthen_an_id(scope: &mut OwnershipScope, steer: Steer) {
    replace_an_id(scope, "x".repeat(usize::from(steer.long_id)), steer.vm);
}

/// Sets the id `pick` chooses among the scope's ids to `value`.
fn replace_an_id(scope: &mut OwnershipScope, value: String, pick: u8) {
    match scope {
        OwnershipScope::ConnectionOwnership(s) => s.connection_id = value,
        OwnershipScope::SessionOwnership(s) if pick & 1 == 0 => s.connection_id = value,
        OwnershipScope::SessionOwnership(s) => s.session_id = value,
        OwnershipScope::VmOwnership(s) => match pick % 3 {
            0 => s.connection_id = value,
            1 => s.session_id = value,
            _ => s.vm_id = value,
        },
    }
}

fn register_preset(preset: u8, timeout_ms: Option<u16>) -> RegisterHostCallbacksRequest {
    let tool = |description: &str| RegisteredHostCallbackDefinition {
        description: description.to_owned(),
        input_schema: r#"{"type":"object"}"#.to_owned(),
        timeout_ms: timeout_ms.map(u64::from),
        examples: vec![RegisteredHostCallbackExample { description: "example".to_owned(), input: "{}".to_owned() }],
    };
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let (name, aliases, registry, tools): (&str, Vec<String>, Vec<String>, Vec<&str>) = match preset % 8 {
        0 | 1 => ("kit", strings(&[]), strings(&["reg"]), vec!["tool", "other"]),
        2 => ("tools", strings(&["run"]), strings(&["reg"]), vec!["t1"]),
        3 => ("clash", strings(&["reg"]), strings(&[]), vec!["t1"]),
        4 => ("Bad Name", strings(&[]), strings(&[]), vec!["t1"]),
        5 => ("empty", strings(&[]), strings(&[]), vec![]),
        6 => ("dup", strings(&["a", "a"]), strings(&[]), vec!["t1"]),
        _ => ("tools", strings(&[]), strings(&["reg", "run"]), vec!["t1", "t2"]),
    };
    RegisterHostCallbacksRequest {
        name: name.to_owned(),
        description: format!("{name} toolkit"),
        command_aliases: aliases,
        registry_command_aliases: registry,
        callbacks: tools.into_iter().map(|t| (t.to_owned(), tool(&format!("the {t} tool")))).collect(),
    }
}

fn guest_fs(
    operation: GuestFilesystemOperation,
    path: u8,
    other: u8,
    content: u8,
    fields: u8,
    numbers: u32,
) -> GuestFilesystemCallRequest {
    let pick = |selector: u8| FS_PATHS[usize::from(selector) % FS_PATHS.len()].to_owned();
    // Zero `fields` gives every optional field, so that required ones are there by default.
    let has = |bit: u8| fields & bit == 0;
    let content = match usize::from(content) % FS_CONTENTS.len() {
        5 => "x".repeat(20_000),
        index => FS_CONTENTS[index].to_owned(),
    };
    let number = u64::from(numbers);
    GuestFilesystemCallRequest {
        operation,
        path: pick(path),
        destination_path: has(0x01).then(|| pick(other)),
        target: has(0x02).then(|| pick(other.rotate_left(3))),
        content: has(0x04).then_some(content),
        encoding: [None, Some(RootFilesystemEntryEncoding::Utf8), Some(RootFilesystemEntryEncoding::Base64)]
            [usize::from(fields >> 6) % 3],
        recursive: fields & 0x08 != 0,
        mode: has(0x10).then_some(numbers & 0o7777),
        uid: has(0x20).then_some(numbers % 2000),
        gid: has(0x20).then_some(numbers % 2000),
        atime_ms: has(0x20).then_some(number),
        mtime_ms: has(0x20).then_some(number),
        len: has(0x10).then_some(number % 100_000),
        offset: has(0x10).then_some(number >> 16),
    }
}

/// Entry lists for BootstrapRootFilesystem and ImportSnapshot: valid trees and each kind of
/// invalid entry.
fn fs_entries(preset: u8) -> Vec<RootFilesystemEntry> {
    let entry = |path: &str, kind| RootFilesystemEntry {
        path: path.to_owned(),
        kind,
        mode: None,
        uid: None,
        gid: None,
        content: None,
        encoding: None,
        target: None,
        executable: false,
    };
    let dir = |path: &str| entry(path, RootFilesystemEntryKind::Directory);
    let file = |path: &str, content: &str| RootFilesystemEntry {
        content: Some(content.to_owned()),
        ..entry(path, RootFilesystemEntryKind::File)
    };
    let link = |path: &str, target: &str| RootFilesystemEntry {
        target: Some(target.to_owned()),
        ..entry(path, RootFilesystemEntryKind::Symlink)
    };
    match preset % 8 {
        0 => vec![dir("/tmp/a"), file("/tmp/a/b", "hi"), link("/tmp/link", "/tmp/a/b")],
        1 => vec![RootFilesystemEntry {
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            executable: true,
            mode: Some(0o4755),
            uid: Some(1000),
            ..file("/usr/bin/tool", "IyEvYmluL3NoCg==")
        }],
        2 => vec![file("/tmp/a", "file first"), dir("/tmp/a")],
        3 => vec![link("/tmp/loop", "/tmp/loop"), link("/tmp/up", "../../..")],
        4 => vec![entry("/tmp/nolink", RootFilesystemEntryKind::Symlink)],
        5 => vec![file("relative", "x")],
        6 => {
            vec![RootFilesystemEntry { encoding: Some(RootFilesystemEntryEncoding::Base64), ..file("/tmp/bad", "%%%") }]
        }
        _ => (0..u32::from(preset / 8)).map(|i| file(&format!("/tmp/many/{i}"), "x")).collect(),
    }
}
