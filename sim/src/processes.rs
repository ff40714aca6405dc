//! The process part of a simulated host's workload: it starts scripted guests
//! (`testkit::script`) and real WebAssembly ones (the C fixtures, on wasmtime: `wcat`, `wwc`,
//! `wspawn`, `wsleep`, `wspin`, `wnet`, `wfetch`: `net fetch` through the sidecar's egress, and
//! `wnode`: the sidecar's own `node` printing what the seed and the simulated clock decide),
//! feeds and closes their stdin, kills some, and checks every process event against what it
//! sent: output only from running processes, exactly one exit, `cat` echoing its input byte for
//! byte, `wc` counting it, a child's output read through a pipe, a sleep ending on the simulated
//! clock, sockets talking over the VM's loopback, a fetch from the `web` host giving exactly its
//! response (or, when a fault hit it, failing cleanly), a loop ended by SIGKILL (137) or by its
//! fuel (124), nothing left running when a VM is disposed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use base64::Engine as _;

use schema::wire::*;
use testkit::requests::execute;

use crate::shared::SharedRef;
use crate::web::{self, WEB_PORT};

/// Which programs a process VM has (see [`proc_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmKind {
    /// The scripts and the small real programs.
    Light,
    /// Every real program too.
    AllReal,
    /// Only `net`, to fetch from `web` (`wfetch`).
    Fetch,
    /// The sidecar's own interpreters, `node` and `python3` (no file of the VM's), with the fuel
    /// their starts take (`wnode`, `wpython`).
    Interpreters,
}

impl VmKind {
    pub const ALL: [Self; 4] = [Self::Light, Self::AllReal, Self::Fetch, Self::Interpreters];

    fn index(self) -> usize {
        match self {
            Self::Light => 0,
            Self::AllReal => 1,
            Self::Fetch => 2,
            Self::Interpreters => 3,
        }
    }
}

/// CreateVm config of VMs that run processes: the scripts on `/bin`, and real WebAssembly
/// programs compiled from C (`runtime-wasm/fixtures/c/`), which run on wasmtime, sliced by fuel,
/// so the simulation's determinism check covers the real runtime too: the small ones (`wcat`,
/// `wspin`) in every [`VmKind::Light`] and [`VmKind::AllReal`] VM, the larger ones (`wwc`,
/// `wspawn` and its child `hello`, `wsleep`, `wnet`: 135 KB) only in `AllReal` ones (every byte
/// of a config is carried, parsed and decoded for each VM, so the light ones go without).
/// `AllReal` and [`VmKind::Fetch`] VMs (which have only `net`) may also reach the host's
/// loopback port [`WEB_PORT`] (`loopbackExemptPorts`), which the simulated sidecar routes to
/// the `web` host. The fuel limit ends a real loop nobody kills within a few ticks.
pub fn proc_config(kind: VmKind) -> &'static str {
    static CONFIGS: LazyLock<[String; 4]> = LazyLock::new(|| VmKind::ALL.map(build_proc_config));
    CONFIGS.get(kind.index()).map_or("{}", String::as_str)
}

fn build_proc_config(kind: VmKind) -> String {
    if kind == VmKind::Interpreters {
        let config = serde_json::json!({
            "permissions": {"fs": "allow", "childProcess": "allow", "process": "allow", "env": "allow"},
            "limits": {"resources": {"maxWasmFuel": NODE_GUEST_FUEL}},
        });
        return config.to_string();
    }
    let script = |name: &str| serde_json::json!({"path": format!("/bin/{name}"), "kind": "file", "content": format!("\0asm{name}")});
    let real = |name: &str, bytes: &[u8]| {
        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
        serde_json::json!({"path": format!("/bin/{name}"), "kind": "file", "content": content, "encoding": "base64"})
    };
    let net = || real("wnet", include_bytes!("../../runtime-wasm/fixtures/c/net.wasm"));
    let entries = match kind {
        VmKind::Light | VmKind::AllReal => {
            let mut entries = vec![
                script("cat"),
                script("exit"),
                script("spin"),
                real("wcat", include_bytes!("../../runtime-wasm/fixtures/c/cat.wasm")),
                real("wspin", include_bytes!("../../runtime-wasm/fixtures/c/spin.wasm")),
            ];
            if kind == VmKind::AllReal {
                entries.extend([
                    real("wwc", include_bytes!("../../runtime-wasm/fixtures/c/wc.wasm")),
                    real("wspawn", include_bytes!("../../runtime-wasm/fixtures/c/spawn.wasm")),
                    real("hello", include_bytes!("../../runtime-wasm/fixtures/c/hello.wasm")),
                    real("wsleep", include_bytes!("../../runtime-wasm/fixtures/c/sleep_ms.wasm")),
                    net(),
                ]);
            }
            entries
        }
        VmKind::Fetch => vec![net()],
        VmKind::Interpreters => Vec::new(),
    };
    let mut config = serde_json::json!({
        "permissions": {"fs": "allow", "childProcess": "allow", "process": "allow", "network": "allow"},
        "limits": {"resources": {"maxWasmFuel": REAL_GUEST_FUEL}},
        "rootFilesystem": {"bootstrapEntries": entries},
    });
    if kind != VmKind::Light {
        if let Some(config) = config.as_object_mut() {
            config.insert("loopbackExemptPorts".to_owned(), serde_json::json!([WEB_PORT]));
        }
    }
    config.to_string()
}

/// Fuel of each process in a process VM: far more than the copiers, `wc`, a spawn or a sleep
/// use on the workload's inputs (a few hundred thousand instructions), and enough to keep
/// `wspin` looping for 20 slices (a few ticks) when nobody kills it.
const REAL_GUEST_FUEL: u64 = 20 * kernel::process::SLICE_FUEL;

/// Fuel of each process in an interpreters VM: CPython's start runs 50 to 100 million
/// instructions, `node`'s far fewer from the snapshot of its loaded layer (loading it is 44
/// million), and the programs' own few; 400 million leaves room without letting a runaway run
/// long.
const NODE_GUEST_FUEL: u64 = 400 * kernel::process::SLICE_FUEL;

/// What `wnode` runs: a timer on the kernel's clock, then `Math.random()`, `Date.now()` and
/// crypto bytes, all of which the seed and the simulated clock decide (the determinism check
/// compares them across runs of a seed).
const NODE_PROGRAM: &str =
    "setTimeout(() => console.log(Math.random(), Date.now(), require('crypto').randomBytes(4).toString('hex')), 5)";

/// What `wpython` runs: the same as [`NODE_PROGRAM`] in Python (`random.random()`, the wall
/// clock in ms, `os.urandom`), after a 5 ms sleep on the kernel's clock.
const PYTHON_PROGRAM: &str =
    "import os, random, time; time.sleep(0.005); print(random.random(), int(time.time() * 1000), os.urandom(4).hex())";

/// Whether an interpreter's output is one line of a number in [0, 1), a time in ms, and 8 hex
/// digits.
fn interpreter_output_ok(output: &[u8]) -> bool {
    let text = String::from_utf8_lossy(output);
    let Some(line) = text.strip_suffix('\n') else { return false };
    match line.split(' ').collect::<Vec<_>>()[..] {
        [random, now, hex] => {
            random.parse::<f64>().is_ok_and(|value| (0.0..1.0).contains(&value))
                && now.parse::<u64>().is_ok()
                && hex.len() == 8
                && hex.bytes().all(|byte| byte.is_ascii_hexdigit())
        }
        _ => false,
    }
}

/// Connections or datagrams one `wnet` makes: within every socket limit's default.
const NET_ROUNDS: u32 = 5;

/// What `net connections N` (`code` 0) or `net datagrams N` prints when all of them worked.
fn net_output(code: i32) -> Vec<u8> {
    let mode = if code == 0 { "connections" } else { "datagrams" };
    format!("{mode} {NET_ROUNDS} errno=0\n").into_bytes()
}

/// Whether a command reads its stdin to its end (the copiers and `wc`).
fn reads_stdin(command: &str) -> bool {
    matches!(command, "cat" | "wcat" | "wwc")
}

/// Whether a command copies its stdin to its stdout (the scripted `cat` or the real one).
fn copies_stdin(command: &str) -> bool {
    matches!(command, "cat" | "wcat")
}

/// Whether a command is a real WebAssembly program.
fn is_real(command: &str) -> bool {
    command.starts_with('w')
}

/// What `net fetch` prints when it read `body` to the end of the stream.
fn fetched(body: &[u8]) -> Vec<u8> {
    let mut output = format!("fetched {} bytes\n", body.len()).into_bytes();
    output.extend_from_slice(body);
    output
}

/// The errnos a connect out may fail with when a fault hit it (WASI numbers): refused (the
/// path dropped the SYN), timed out (the kernel's 30 s), no route, reset.
const FETCH_CONNECT_ERRNOS: [u32; 4] = [14, 73, 40, 15];
/// `ETIMEDOUT`: the kernel's connect timeout.
const ETIMEDOUT: u32 = 73;

/// A fetch's path, and the fault epoch when it was asked for.
#[derive(Debug, Clone)]
struct Fetch {
    path: String,
    epoch: u64,
}

/// Checks a `wfetch` that exited `code` (not killed) against the model: the exact response, or
/// what `web` sent of one it cut short, or (only if a fault was on while it ran) a connect that
/// failed with one of [`FETCH_CONNECT_ERRNOS`] or a send or receive that failed (exit 1).
/// Returns the coverage points it reaches.
fn check_fetch(proc: &Proc, code: i32, faulted: bool, truncated: Option<usize>) -> Result<Vec<&'static str>, String> {
    let Some(fetch) = &proc.fetch else { return Err("a fetch without its path".to_owned()) };
    let expected = web::response(&fetch.path);
    let clean = code == 0 && proc.errors.is_empty();
    if clean && truncated.is_none() && proc.output == fetched(&expected) {
        return Ok(vec!["egress_fetched"]);
    }
    if let Some(sent) = truncated.filter(|_| clean) {
        if proc.output == fetched(expected.get(..sent).unwrap_or_default()) {
            return Ok(vec!["egress_truncated"]);
        }
    }
    let connect_errno = std::str::from_utf8(&proc.output)
        .ok()
        .and_then(|text| text.strip_prefix("connect errno="))
        .and_then(|text| text.strip_suffix('\n'))
        .and_then(|errno| errno.parse::<u32>().ok());
    match connect_errno {
        Some(errno) if clean && faulted && FETCH_CONNECT_ERRNOS.contains(&errno) => {
            return Ok(if errno == ETIMEDOUT {
                vec!["egress_failed", "egress_connect_timed_out"]
            } else {
                vec!["egress_failed"]
            });
        }
        _ => {}
    }
    let errors = String::from_utf8_lossy(&proc.errors);
    if code == 1
        && faulted
        && proc.output.is_empty()
        && (errors.starts_with("net: recv: ") || errors.starts_with("net: send: "))
    {
        return Ok(vec!["egress_failed"]);
    }
    // What it got, for the report.
    let got = proc.output.split(|byte| *byte == b'\n').next().map(String::from_utf8_lossy).unwrap_or_default();
    let body = proc
        .output
        .iter()
        .position(|byte| *byte == b'\n')
        .map_or(&[][..], |at| proc.output.get(at + 1..).unwrap_or_default());
    let prefix = proc.output.starts_with(b"fetched ") && body.len() < expected.len() && expected.starts_with(body);
    let why = if clean && prefix && truncated.is_none() {
        " (a prefix of the response, which web sent whole: a failed connection read as its end?)"
    } else {
        ""
    };
    Err(format!(
        "fetch of {} exited {code}: {got:?} with {} of {} response bytes{why}, stderr {errors:?}, fault {faulted}, web cut it at {truncated:?}",
        fetch.path,
        body.len(),
        expected.len(),
    ))
}

/// What `wc.c` prints for `input`: lines, words, bytes and its checksum.
fn wc_output(input: &[u8]) -> Vec<u8> {
    let (mut lines, mut words, mut checksum, mut in_word) = (0u64, 0u64, 0u64, false);
    for &byte in input {
        checksum = (checksum * 31 + u64::from(byte)) % 1_000_000_007;
        lines += u64::from(byte == b'\n');
        if matches!(byte, b' ' | b'\n' | b'\t') {
            in_word = false;
        } else if !in_word {
            in_word = true;
            words += 1;
        }
    }
    format!("{lines} {words} {} {checksum}\n", input.len()).into_bytes()
}

/// Whether `wspawn pipe`'s output is what it prints when its child's `hello from C` came
/// through the pipe and the child was reaped with status 0.
fn spawned_through_a_pipe(output: &[u8]) -> bool {
    let text = String::from_utf8_lossy(output);
    let mut lines = text.lines();
    let said = lines.next().and_then(|line| line.strip_prefix("child ")).and_then(|rest| rest.split_once(" said: "));
    let reaped = lines.next().and_then(|line| line.strip_prefix("reaped ")).and_then(|rest| rest.split_once(": "));
    match (said, reaped, lines.next()) {
        (Some((pid, "hello from C")), Some((reaped_pid, "status 0")), None) => pid == reaped_pid,
        _ => false,
    }
}

/// One process as this host knows it.
#[derive(Debug, Default)]
struct Proc {
    script: &'static str,
    /// For `exit`: the code it must exit with; for `wsleep`: the milliseconds it sleeps.
    code: i32,
    input: Vec<u8>,
    output: Vec<u8>,
    stdin_closed: bool,
    killed: bool,
    /// The liveness phase sent what ends it (a stdin close or a kill).
    winding_down: bool,
    /// What it wrote on stderr (only `wfetch` may, when its connection fails).
    errors: Vec<u8>,
    /// For `wfetch`: what it fetches.
    fetch: Option<Fetch>,
}

/// A request whose answer changes what the host knows.
#[derive(Debug)]
enum Pending {
    Execute { vm: String, id: String, script: &'static str, code: i32, fetch: Option<Fetch> },
    Stdin { vm: String, id: String, chunk: Vec<u8> },
    Close { vm: String, id: String },
    Kill { vm: String, id: String },
}

/// What one process step sends: its scope's VM, and the payload.
#[derive(Debug)]
pub struct Step {
    pub vm: String,
    pub payload: RequestPayload,
}

/// The host's view of its processes.
#[derive(Debug, Default)]
pub struct Processes {
    /// The client's name: fetch paths carry it, so each is unique in the run.
    owner: String,
    /// The run's shared model (`web`'s cut responses, the fault epoch).
    shared: SharedRef,
    /// CreateVm requests in flight with [`proc_config`], and which.
    creates: BTreeMap<i64, VmKind>,
    /// Process VMs, and which programs they have.
    vms: BTreeMap<String, VmKind>,
    /// VMs being disposed: their processes exit without a kill of ours.
    disposing: BTreeSet<String>,
    pending: BTreeMap<i64, Pending>,
    procs: BTreeMap<(String, String), Proc>,
    next: u64,
}

impl Processes {
    pub fn new(owner: String, shared: SharedRef) -> Self {
        Self { owner, shared, ..Self::default() }
    }

    /// Everything is forgotten (the link is gone; the sidecar disposes its VMs silently).
    pub fn clear(&mut self) {
        let (owner, shared) = (std::mem::take(&mut self.owner), self.shared.clone());
        *self = Self { next: self.next, owner, shared, ..Self::default() };
    }

    pub fn creating(&mut self, request_id: i64, kind: VmKind) {
        self.creates.insert(request_id, kind);
    }

    /// A random process request for one of the VMs, as `roll` (0..100) and `bytes` choose.
    pub fn step(&mut self, roll: u32, pick: usize, bytes: Vec<u8>, next_request_id: i64) -> Option<Step> {
        let (vm, kind) = self.vms.iter().nth(pick % self.vms.len().max(1)).map(|(vm, kind)| (vm.clone(), *kind))?;
        let live: Vec<(String, &Proc)> = self
            .procs
            .iter()
            .filter(|((owner, _), _)| *owner == vm)
            .map(|((_, id), proc)| (id.clone(), proc))
            .collect();
        let cats: Vec<&String> =
            live.iter().filter(|(_, proc)| reads_stdin(proc.script) && !proc.stdin_closed).map(|(id, _)| id).collect();
        // A fetch or node VM has no stdin to write or close: what would be those is a start too.
        let starts = if matches!(kind, VmKind::Fetch | VmKind::Interpreters) { 0..=89 } else { 0..=34 };
        let (pending, payload) = match roll {
            roll if starts.contains(&roll) => {
                self.next += 1;
                // Of 35 starts: 4 real `cat`, 4 real `wc`, 4 real socket users, 3 real fetches,
                // 5 scripted `cat`, 8 `exit`, 2 real sleeps, 1 real spawn over a pipe, 1 real
                // endless loop, 3 scripted loops.
                let (script, code) = match (roll % 7, roll / 7) {
                    (0..=3, 0) => ("wcat", 0),
                    (0..=3, 3) => ("wwc", 0),
                    (0..=3, 2) => ("wnet", i32::try_from(roll % 2).unwrap_or(0)),
                    (0..=2, 1) => ("wfetch", 0),
                    (0..=3, _) => ("cat", 0),
                    (4, 3 | 4) => ("wsleep", i32::try_from(pick % 100).unwrap_or(0)),
                    (4 | 5, _) => ("exit", i32::try_from(roll % 3).unwrap_or(0)),
                    (_, 0) => ("wspawn", 0),
                    (_, 4) => ("wspin", 0),
                    _ => ("spin", 0),
                };
                // Without the larger real programs, their scripted neighbours stand in; a fetch
                // VM only fetches.
                let (script, code) = match (kind, script) {
                    (VmKind::Fetch, _) => ("wfetch", 0),
                    // One start in four is Python: its instances are the costlier to make.
                    (VmKind::Interpreters, _) if roll % 4 != 3 => ("wnode", 0),
                    (VmKind::Interpreters, _) => ("wpython", 0),
                    (VmKind::Light, "wwc" | "wspawn" | "wsleep" | "wnet" | "wfetch") => ("cat", 0),
                    (_, other) => (other, code),
                };
                let id = format!("{script}-{}", self.next);
                // A fetch of a few KB to ~100 KB from `web`, on a path no other fetch of the run
                // has.
                let fetch = (script == "wfetch").then(|| Fetch {
                    path: format!("/{}/{id}/{}", self.owner, 2048 + pick * 1536 + bytes.len()),
                    epoch: self.shared.borrow().egress.epoch,
                });
                let args = match script {
                    "exit" | "wsleep" => vec![code.to_string()],
                    // Over the VM's loopback, within one process: connections to its own
                    // listener, or datagrams to its own socket.
                    "wnet" if code == 0 => vec!["connections".to_owned(), NET_ROUNDS.to_string()],
                    "wnet" => vec!["datagrams".to_owned(), NET_ROUNDS.to_string()],
                    "wspawn" => vec!["pipe".to_owned()],
                    "wnode" => vec!["-e".to_owned(), NODE_PROGRAM.to_owned()],
                    "wpython" => vec!["-c".to_owned(), PYTHON_PROGRAM.to_owned()],
                    "wfetch" => {
                        let path = fetch.as_ref().map(|fetch| fetch.path.clone()).unwrap_or_default();
                        vec!["fetch".to_owned(), format!("127.0.0.1:{WEB_PORT}"), path]
                    }
                    _ => vec![],
                };
                let command = match script {
                    "wfetch" => "wnet",
                    "wnode" => "node",
                    "wpython" => "python3",
                    other => other,
                };
                let payload = execute(id.clone(), command, args);
                (Pending::Execute { vm: vm.clone(), id, script, code, fetch }, payload)
            }
            35..=74 => {
                let id = (*cats.get(pick % cats.len().max(1))?).clone();
                let payload = RequestPayload::WriteStdinRequest(WriteStdinRequest {
                    process_id: id.clone(),
                    chunk: bytes.clone(),
                });
                (Pending::Stdin { vm: vm.clone(), id, chunk: bytes }, payload)
            }
            75..=89 => {
                let id = (*cats.get(pick % cats.len().max(1))?).clone();
                let payload = RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: id.clone() });
                (Pending::Close { vm: vm.clone(), id }, payload)
            }
            _ => {
                let (id, _) = live.get(pick % live.len().max(1))?;
                let payload = RequestPayload::KillProcessRequest(KillProcessRequest {
                    process_id: id.clone(),
                    signal: "SIGKILL".into(),
                });
                (Pending::Kill { vm: vm.clone(), id: id.clone() }, payload)
            }
        };
        self.pending.insert(next_request_id, pending);
        Some(Step { vm, payload })
    }

    /// The liveness phase: the next request that lets a running process finish (its stdin
    /// closed, or a kill for a scripted loop, which never ends by itself), sent as `request_id`.
    pub fn wind_down(&mut self, request_id: i64) -> Option<Step> {
        let ((vm, id), proc) = self.procs.iter_mut().find(|(_, proc)| {
            !proc.winding_down
                && !proc.killed
                && (proc.script == "spin" || (reads_stdin(proc.script) && !proc.stdin_closed))
        })?;
        proc.winding_down = true;
        let (pending, payload) = if proc.script == "spin" {
            let payload = RequestPayload::KillProcessRequest(KillProcessRequest {
                process_id: id.clone(),
                signal: "SIGKILL".into(),
            });
            (Pending::Kill { vm: vm.clone(), id: id.clone() }, payload)
        } else {
            let payload = RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: id.clone() });
            (Pending::Close { vm: vm.clone(), id: id.clone() }, payload)
        };
        let vm = vm.clone();
        self.pending.insert(request_id, pending);
        Some(Step { vm, payload })
    }

    /// Processes started and not yet exited.
    pub fn running(&self) -> Vec<String> {
        self.procs.keys().map(|(vm, id)| format!("{vm}/{id}")).collect()
    }

    /// A response to request `id`; violations are returned, reached states reported.
    pub fn on_response(&mut self, id: i64, payload: &ResponsePayload) -> Vec<String> {
        let mut violations = Vec::new();
        if let Some(kind) = self.creates.remove(&id) {
            if let ResponsePayload::VmCreatedResponse(created) = payload {
                self.vms.insert(created.vm_id.clone(), kind);
            }
        }
        let Some(pending) = self.pending.remove(&id) else { return violations };
        match (pending, payload) {
            (Pending::Execute { vm, id, script, code, fetch }, ResponsePayload::ProcessStartedResponse(started)) => {
                if started.process_id != id {
                    violations.push(format!("started {} for an Execute of {id}", started.process_id));
                }
                self.procs.insert((vm, id), Proc { script, code, fetch, ..Proc::default() });
            }
            (Pending::Stdin { vm, id, chunk }, ResponsePayload::StdinWrittenResponse(written)) => {
                if written.accepted_bytes != chunk.len() as u64 {
                    violations.push(format!(
                        "{id}: {} of {} stdin bytes accepted",
                        written.accepted_bytes,
                        chunk.len()
                    ));
                }
                if let Some(proc) = self.procs.get_mut(&(vm, id)) {
                    proc.input.extend_from_slice(&chunk);
                }
            }
            (Pending::Close { vm, id }, ResponsePayload::StdinClosedResponse(_)) => {
                if let Some(proc) = self.procs.get_mut(&(vm, id)) {
                    proc.stdin_closed = true;
                }
            }
            (Pending::Kill { vm, id }, ResponsePayload::ProcessKilledResponse(_)) => {
                if let Some(proc) = self.procs.get_mut(&(vm, id)) {
                    proc.killed = true;
                }
            }
            // Refused (the process exited meanwhile, the VM is gone, a limit): nothing changed.
            (_, ResponsePayload::RejectedResponse(_)) => {}
            (pending, other) => violations.push(format!("{pending:?} answered with {}", other.member_name())),
        }
        violations
    }

    /// A process or lifecycle event; violations are returned, reached states reported.
    pub fn on_event(&mut self, vm: &str, payload: &EventPayload, reached: &mut dyn FnMut(&'static str)) -> Vec<String> {
        let mut violations = Vec::new();
        match payload {
            EventPayload::ProcessOutputEvent(output) => match self
                .procs
                .get_mut(&(vm.to_owned(), output.process_id.clone()))
            {
                Some(proc) if output.channel == StreamChannel::Stdout => proc.output.extend_from_slice(&output.chunk),
                // The runtime says why it stopped a loop that ran out of fuel.
                Some(proc) if proc.script == "wspin" => {}
                // A fetch whose connection failed says so (and exits 1).
                Some(proc) if proc.script == "wfetch" => proc.errors.extend_from_slice(&output.chunk),
                Some(_) => violations.push(format!(
                    "{}: unexpected stderr {:?}",
                    output.process_id,
                    String::from_utf8_lossy(&output.chunk)
                )),
                None => violations.push(format!("output of {} in {vm}, which is not running", output.process_id)),
            },
            EventPayload::ProcessExitedEvent(exited) => {
                let Some(proc) = self.procs.remove(&(vm.to_owned(), exited.process_id.clone())) else {
                    violations.push(format!("exit of {} in {vm}, which is not running", exited.process_id));
                    return violations;
                };
                let code = exited.exit_code;
                let disposing = self.disposing.contains(vm);
                // A kill (answered before the exit it causes) or a dispose ends it with SIGKILL.
                if is_real(proc.script) {
                    reached("real_guest_exited");
                }
                // What the model knows of a fetch, read before `reached` borrows the model.
                let (faulted, truncated) = match &proc.fetch {
                    Some(fetch) => {
                        let shared = self.shared.borrow();
                        (shared.egress.hit_since(fetch.epoch), shared.egress.truncated.get(&fetch.path).copied())
                    }
                    None => (false, None),
                };
                if proc.killed || disposing {
                    if code != 137 {
                        violations.push(format!("{} killed but exited {code}", exited.process_id));
                    }
                    reached("process_killed");
                } else {
                    match proc.script {
                        "exit" if code == proc.code => reached("process_exited"),
                        script
                            if copies_stdin(script) && code == 0 && proc.stdin_closed && proc.output == proc.input =>
                        {
                            reached("process_output_matched");
                        }
                        "wwc" if code == 0 && proc.stdin_closed && proc.output == wc_output(&proc.input) => {
                            reached("real_wc_counted");
                        }
                        "wspawn" if code == 0 && spawned_through_a_pipe(&proc.output) => reached("real_child_piped"),
                        "wsleep" if code == 0 && proc.output == format!("slept {}\n", proc.code).into_bytes() => {
                            reached("real_sleep_woke");
                        }
                        "wspin" if code == 124 => reached("real_loop_out_of_fuel"),
                        "wnode" if code == 0 && interpreter_output_ok(&proc.output) => reached("real_node_ran"),
                        "wpython" if code == 0 && interpreter_output_ok(&proc.output) => {
                            reached("real_python_ran");
                        }
                        "wnet" if code == 0 && proc.output == net_output(proc.code) => reached("real_sockets_talked"),
                        "wfetch" => match check_fetch(&proc, code, faulted, truncated) {
                            Ok(points) => points.into_iter().for_each(&mut *reached),
                            Err(violation) => violations.push(format!("{}: {violation}", exited.process_id)),
                        },
                        _ => violations.push(format!(
                            "{} ({}) exited {code}; stdin closed {}, output {} of {} input bytes, equal {}",
                            exited.process_id,
                            proc.script,
                            proc.stdin_closed,
                            proc.output.len(),
                            proc.input.len(),
                            proc.output == proc.input
                        )),
                    }
                }
            }
            EventPayload::VmLifecycleEvent(lifecycle) => match lifecycle.state {
                VmLifecycleState::Disposing => {
                    self.disposing.insert(vm.to_owned());
                }
                VmLifecycleState::Disposed => {
                    let left: Vec<String> =
                        self.procs.keys().filter(|(owner, _)| owner == vm).map(|(_, id)| id.clone()).collect();
                    if !left.is_empty() {
                        violations.push(format!("{vm} disposed while {left:?} never exited"));
                    }
                    self.procs.retain(|(owner, _), _| owner != vm);
                    self.vms.remove(vm);
                    self.disposing.remove(vm);
                }
                _ => {}
            },
            _ => {}
        }
        violations
    }
}
