//! The process part of a simulated host's workload: it starts scripted guests
//! (`testkit::script`) and real WebAssembly ones (the C fixtures, on wasmtime: `wcat`, `wwc`,
//! `wspawn`, `wsleep`, `wspin`, `wnet`), feeds and closes their stdin, kills some, and checks every
//! process event against what it sent: output only from running processes, exactly one exit,
//! `cat` echoing its input byte for byte, `wc` counting it, a child's output read through a
//! pipe, a sleep ending on the simulated clock, sockets talking over the VM's loopback, a loop ended by SIGKILL (137) or by its fuel
//! (124), nothing left running when a VM is disposed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use base64::Engine as _;

use schema::wire::*;
use testkit::requests::execute;

/// CreateVm config of VMs that run processes: the scripts on `/bin`, and real WebAssembly
/// programs compiled from C (`runtime-wasm/fixtures/c/`), which run on wasmtime, sliced by fuel,
/// so the simulation's determinism check covers the real runtime too: the small ones (`wcat`,
/// `wspin`) in every process VM, the larger ones (`wwc`, `wspawn` and its child `hello`,
/// `wsleep`: 85 KB) only with `all_real` (every byte of a config is carried, parsed and decoded
/// for each VM, so half the process VMs go without). The fuel limit ends a real loop nobody
/// kills within a few ticks.
pub fn proc_config(all_real: bool) -> &'static str {
    static CONFIGS: LazyLock<[String; 2]> = LazyLock::new(|| [build_proc_config(false), build_proc_config(true)]);
    CONFIGS.get(usize::from(all_real)).map_or("{}", String::as_str)
}

fn build_proc_config(all_real: bool) -> String {
    let script = |name: &str| serde_json::json!({"path": format!("/bin/{name}"), "kind": "file", "content": format!("\0asm{name}")});
    let real = |name: &str, bytes: &[u8]| {
        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
        serde_json::json!({"path": format!("/bin/{name}"), "kind": "file", "content": content, "encoding": "base64"})
    };
    let mut entries = vec![
        script("cat"),
        script("exit"),
        script("spin"),
        real("wcat", include_bytes!("../../runtime-wasm/fixtures/c/cat.wasm")),
        real("wspin", include_bytes!("../../runtime-wasm/fixtures/c/spin.wasm")),
    ];
    if all_real {
        entries.extend([
            real("wwc", include_bytes!("../../runtime-wasm/fixtures/c/wc.wasm")),
            real("wspawn", include_bytes!("../../runtime-wasm/fixtures/c/spawn.wasm")),
            real("hello", include_bytes!("../../runtime-wasm/fixtures/c/hello.wasm")),
            real("wsleep", include_bytes!("../../runtime-wasm/fixtures/c/sleep_ms.wasm")),
            real("wnet", include_bytes!("../../runtime-wasm/fixtures/c/net.wasm")),
        ]);
    }
    serde_json::json!({
        "permissions": {"fs": "allow", "childProcess": "allow", "process": "allow", "network": "allow"},
        "limits": {"resources": {"maxWasmFuel": REAL_GUEST_FUEL}},
        "rootFilesystem": {"bootstrapEntries": entries},
    })
    .to_string()
}

/// Fuel of each process in a process VM: far more than the copiers, `wc`, a spawn or a sleep
/// use on the workload's inputs (a few hundred thousand instructions), and enough to keep
/// `wspin` looping for 20 slices (a few ticks) when nobody kills it.
const REAL_GUEST_FUEL: u64 = 20 * kernel::process::SLICE_FUEL;

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
}

/// A request whose answer changes what the host knows.
#[derive(Debug)]
enum Pending {
    Execute { vm: String, id: String, script: &'static str, code: i32 },
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
    /// CreateVm requests in flight with [`proc_config`], and whether with every real program.
    creates: BTreeMap<i64, bool>,
    /// Process VMs, and whether they have every real program.
    vms: BTreeMap<String, bool>,
    /// VMs being disposed: their processes exit without a kill of ours.
    disposing: BTreeSet<String>,
    pending: BTreeMap<i64, Pending>,
    procs: BTreeMap<(String, String), Proc>,
    next: u64,
}

impl Processes {
    /// Everything is forgotten (the link is gone; the sidecar disposes its VMs silently).
    pub fn clear(&mut self) {
        *self = Self { next: self.next, ..Self::default() };
    }

    pub fn creating(&mut self, request_id: i64, all_real: bool) {
        self.creates.insert(request_id, all_real);
    }

    /// A random process request for one of the VMs, as `roll` (0..100) and `bytes` choose.
    pub fn step(&mut self, roll: u32, pick: usize, bytes: Vec<u8>, next_request_id: i64) -> Option<Step> {
        let (vm, all_real) = self.vms.iter().nth(pick % self.vms.len().max(1)).map(|(vm, all)| (vm.clone(), *all))?;
        let live: Vec<(String, &Proc)> = self
            .procs
            .iter()
            .filter(|((owner, _), _)| *owner == vm)
            .map(|((_, id), proc)| (id.clone(), proc))
            .collect();
        let cats: Vec<&String> =
            live.iter().filter(|(_, proc)| reads_stdin(proc.script) && !proc.stdin_closed).map(|(id, _)| id).collect();
        let (pending, payload) = match roll {
            0..=34 => {
                self.next += 1;
                // Of 35 starts: 4 real `cat`, 4 real `wc`, 4 real socket users, 8 scripted
                // `cat`, 8 `exit`, 2 real sleeps, 1 real spawn over a pipe, 1 real endless loop,
                // 3 scripted loops.
                let (script, code) = match (roll % 7, roll / 7) {
                    (0..=3, 0) => ("wcat", 0),
                    (0..=3, 3) => ("wwc", 0),
                    (0..=3, 2) => ("wnet", i32::try_from(roll % 2).unwrap_or(0)),
                    (0..=3, _) => ("cat", 0),
                    (4, 3 | 4) => ("wsleep", i32::try_from(pick % 100).unwrap_or(0)),
                    (4 | 5, _) => ("exit", i32::try_from(roll % 3).unwrap_or(0)),
                    (_, 0) => ("wspawn", 0),
                    (_, 4) => ("wspin", 0),
                    _ => ("spin", 0),
                };
                // Without the larger real programs, their scripted neighbours stand in.
                let (script, code) = match script {
                    "wwc" | "wspawn" | "wsleep" | "wnet" if !all_real => ("cat", 0),
                    other => (other, code),
                };
                let id = format!("{script}-{}", self.next);
                let args = match script {
                    "exit" | "wsleep" => vec![code.to_string()],
                    // Over the VM's loopback, within one process: connections to its own
                    // listener, or datagrams to its own socket.
                    "wnet" if code == 0 => vec!["connections".to_owned(), NET_ROUNDS.to_string()],
                    "wnet" => vec!["datagrams".to_owned(), NET_ROUNDS.to_string()],
                    "wspawn" => vec!["pipe".to_owned()],
                    _ => vec![],
                };
                let payload = execute(id.clone(), script, args);
                (Pending::Execute { vm: vm.clone(), id, script, code }, payload)
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
        if let Some(all_real) = self.creates.remove(&id) {
            if let ResponsePayload::VmCreatedResponse(created) = payload {
                self.vms.insert(created.vm_id.clone(), all_real);
            }
        }
        let Some(pending) = self.pending.remove(&id) else { return violations };
        match (pending, payload) {
            (Pending::Execute { vm, id, script, code }, ResponsePayload::ProcessStartedResponse(started)) => {
                if started.process_id != id {
                    violations.push(format!("started {} for an Execute of {id}", started.process_id));
                }
                self.procs.insert((vm, id), Proc { script, code, ..Proc::default() });
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
                        "wnet" if code == 0 && proc.output == net_output(proc.code) => reached("real_sockets_talked"),
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
