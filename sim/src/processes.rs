//! The process part of a simulated host's workload: it starts scripted guests
//! (`testkit::script`) and real WebAssembly ones (`wcat`, on wasmtime), feeds and closes their
//! stdin, kills some, and checks every
//! process event against what it sent: output only from running processes, exactly one exit,
//! `cat` echoing its input byte for byte, SIGKILL exiting 137, nothing left running when a VM
//! is disposed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use base64::Engine as _;

use schema::wire::*;
use testkit::requests::execute;

/// CreateVm config of VMs that run processes: the scripts on `/bin`, and `/bin/wcat`, the real
/// WebAssembly `cat` compiled from C (`runtime-wasm/fixtures/c/cat.c`), which runs on wasmtime,
/// sliced by fuel, so the simulation's determinism check covers the real runtime too.
pub fn proc_config() -> &'static str {
    static CONFIG: LazyLock<String> = LazyLock::new(|| {
        let wcat = base64::engine::general_purpose::STANDARD.encode(REAL_CAT);
        let script = |name: &str| serde_json::json!({"path": format!("/bin/{name}"), "kind": "file", "content": format!("\0asm{name}")});
        serde_json::json!({
            "permissions": {"fs": "allow", "childProcess": "allow", "process": "allow"},
            "rootFilesystem": {"bootstrapEntries": [
                script("cat"),
                script("exit"),
                script("spin"),
                {"path": "/bin/wcat", "kind": "file", "content": wcat, "encoding": "base64"},
            ]},
        })
        .to_string()
    });
    CONFIG.as_str()
}

/// The real `cat` (733 bytes of WebAssembly).
const REAL_CAT: &[u8] = include_bytes!("../../runtime-wasm/fixtures/c/cat.wasm");

/// Whether a command copies its stdin to its stdout (the scripted `cat` or the real one).
fn copies_stdin(command: &str) -> bool {
    matches!(command, "cat" | "wcat")
}

/// One process as this host knows it.
#[derive(Debug, Default)]
struct Proc {
    script: &'static str,
    /// For `exit`: the code it must exit with.
    code: i32,
    input: Vec<u8>,
    output: Vec<u8>,
    stdin_closed: bool,
    killed: bool,
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
    /// CreateVm requests in flight with [`proc_config`].
    creates: BTreeSet<i64>,
    vms: BTreeSet<String>,
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

    pub fn creating(&mut self, request_id: i64) {
        self.creates.insert(request_id);
    }

    /// A random process request for one of the VMs, as `roll` (0..100) and `bytes` choose.
    pub fn step(&mut self, roll: u32, pick: usize, bytes: Vec<u8>, next_request_id: i64) -> Option<Step> {
        let vm = self.vms.iter().nth(pick % self.vms.len().max(1))?.clone();
        let live: Vec<(String, &Proc)> = self
            .procs
            .iter()
            .filter(|((owner, _), _)| *owner == vm)
            .map(|((_, id), proc)| (id.clone(), proc))
            .collect();
        let cats: Vec<&String> =
            live.iter().filter(|(_, proc)| copies_stdin(proc.script) && !proc.stdin_closed).map(|(id, _)| id).collect();
        let (pending, payload) = match roll {
            0..=34 => {
                self.next += 1;
                let (script, code) = match roll % 7 {
                    // Two copiers in five are the real WebAssembly `cat`.
                    0..=3 if (roll / 7).is_multiple_of(3) => ("wcat", 0),
                    0..=3 => ("cat", 0),
                    4 | 5 => ("exit", i32::try_from(roll % 3).unwrap_or(0)),
                    _ => ("spin", 0),
                };
                let id = format!("{script}-{}", self.next);
                let args = if script == "exit" { vec![code.to_string()] } else { vec![] };
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

    /// A response to request `id`; violations are returned, reached states reported.
    pub fn on_response(&mut self, id: i64, payload: &ResponsePayload) -> Vec<String> {
        let mut violations = Vec::new();
        if self.creates.remove(&id) {
            if let ResponsePayload::VmCreatedResponse(created) = payload {
                self.vms.insert(created.vm_id.clone());
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
                Some(_) => violations.push(format!("{}: unexpected stderr {:?}", output.process_id, output.chunk)),
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
                if proc.script == "wcat" {
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
