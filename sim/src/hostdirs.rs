//! The `host_dir` part of a simulated host's workload: VMs that mount a host directory (the
//! simulated sidecar's in-memory host filesystem, which fails now and then with `EIO`) at
//! `/host`, then write, read and remove files there, each answer checked against a model of the
//! directory. A failed operation must change nothing. Some reads are a real guest's: `hcat`
//! (a C fixture on wasmtime) prints the file, its every host call an effect the simulated host
//! performs after a drawn latency, and its output must be the model's content (or `error 44`,
//! `ENOENT`, for a missing file; or `error 29`, `EIO`, when a fault hit one of its calls).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine as _;

use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;

use crate::processes::Step;

/// CreateVm config of the VMs that mount a host directory: `hcat` at `/bin/hcat`.
pub fn host_config() -> &'static str {
    static CONFIG: LazyLock<String> = LazyLock::new(|| {
        let hcat =
            base64::engine::general_purpose::STANDARD.encode(include_bytes!("../../runtime-wasm/fixtures/c/hcat.wasm"));
        serde_json::json!({
            "permissions": {"fs": "allow", "childProcess": "allow"},
            "cwd": "/tmp",
            "rootFilesystem": {"bootstrapEntries": [{"path": "/bin/hcat", "kind": "file", "content": hcat, "encoding": "base64"}]},
        })
        .to_string()
    });
    CONFIG.as_str()
}
/// Host directories live under this prefix (the simulated host makes them on first use).
pub const HOST_ROOT: &str = "/sim/";
/// Files the model tracks, inside the mount.
const HOST_PATHS: &[&str] = &["/host/a", "/host/b", "/host/c"];

#[derive(Debug, Default)]
struct HostVm {
    mounted: bool,
    /// The directory's files, by guest path.
    files: BTreeMap<String, Vec<u8>>,
    /// A request in flight (one at a time, so a failure can be undone in the model).
    busy: bool,
}

#[derive(Debug)]
enum Pending {
    Mount {
        vm: String,
    },
    Write {
        vm: String,
        path: String,
        before: Option<Vec<u8>>,
    },
    Read {
        vm: String,
        expected: Option<Vec<u8>>,
    },
    Remove {
        vm: String,
        path: String,
        before: Option<Vec<u8>>,
    },
    /// `hcat PATH` started as `process_id`.
    GuestRead {
        vm: String,
        process_id: String,
        expected: Option<Vec<u8>>,
    },
}

/// A guest read running: what it printed so far, and what the model says it must.
#[derive(Debug)]
struct GuestRead {
    vm: String,
    expected: Option<Vec<u8>>,
    output: Vec<u8>,
}

/// The host's view of its host-directory VMs.
#[derive(Debug, Default)]
pub struct HostDirs {
    creates: std::collections::BTreeSet<i64>,
    vms: BTreeMap<String, HostVm>,
    pending: BTreeMap<i64, Pending>,
    /// Guest reads running, by process id.
    reads: BTreeMap<String, GuestRead>,
}

impl HostDirs {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn creating(&mut self, request_id: i64) {
        self.creates.insert(request_id);
    }

    pub fn is_host_vm(&self, vm: &str) -> bool {
        self.vms.contains_key(vm)
    }

    /// A mount for a VM without one, else a random file operation; sent as `request_id` by
    /// `client` (whose name keeps its host directories apart from other clients').
    pub fn step(&mut self, client: &str, pick: usize, roll: u32, bytes: Vec<u8>, request_id: i64) -> Option<Step> {
        let idle = self.vms.values().filter(|state| !state.busy).count();
        let (vm, state) = self.vms.iter_mut().filter(|(_, state)| !state.busy).nth(pick % idle.max(1))?;
        let vm = vm.clone();
        state.busy = true;
        let path = HOST_PATHS.get(pick % HOST_PATHS.len()).copied().unwrap_or("/host/a").to_owned();
        let (pending, payload) = if !state.mounted {
            let config = serde_json::json!({ "hostPath": format!("{HOST_ROOT}{client}/{vm}") }).to_string();
            let mount = MountDescriptor {
                guest_path: "/host".into(),
                read_only: false,
                plugin: MountPluginDescriptor { id: "host_dir".into(), config },
            };
            let payload = RequestPayload::ConfigureVmRequest(ConfigureVmRequest::mounts(vec![mount]));
            (Pending::Mount { vm: vm.clone() }, payload)
        } else {
            // A guest read needs a file to read (a missing one is the rarer case worth checking).
            let guest_read = roll % 7 >= 4 && (!state.files.is_empty() || roll.is_multiple_of(4));
            match if guest_read { 5 } else { roll % 7 % 5 } {
                0 | 1 => {
                    let before = state.files.insert(path.clone(), bytes.clone());
                    let call = GuestFilesystemCallRequest {
                        content: Some(String::from_utf8(bytes).unwrap_or_default()),
                        encoding: Some(RootFilesystemEntryEncoding::Utf8),
                        ..GuestFilesystemCallRequest::new(Op::WriteFile, &path)
                    };
                    (Pending::Write { vm: vm.clone(), path, before }, RequestPayload::GuestFilesystemCallRequest(call))
                }
                2 | 3 => {
                    // Mostly a file the model holds, so reads compare content.
                    let path = state.files.keys().nth(pick % state.files.len().max(1)).cloned().unwrap_or(path);
                    let expected = state.files.get(&path).cloned();
                    let call = GuestFilesystemCallRequest::new(Op::ReadFile, &path);
                    (Pending::Read { vm: vm.clone(), expected }, RequestPayload::GuestFilesystemCallRequest(call))
                }
                5 => {
                    let path = state.files.keys().nth(pick % state.files.len().max(1)).cloned().unwrap_or(path);
                    let expected = state.files.get(&path).cloned();
                    let process_id = format!("hcat-{request_id}");
                    let payload =
                        RequestPayload::ExecuteRequest(ExecuteRequest::command(&process_id, "hcat", vec![path]));
                    (Pending::GuestRead { vm: vm.clone(), process_id, expected }, payload)
                }
                _ => {
                    let before = state.files.remove(&path);
                    let call = GuestFilesystemCallRequest::new(Op::RemoveFile, &path);
                    (Pending::Remove { vm: vm.clone(), path, before }, RequestPayload::GuestFilesystemCallRequest(call))
                }
            }
        };
        self.pending.insert(request_id, pending);
        Some(Step { vm, payload })
    }

    /// A response to request `id`: violations are returned, reached states reported.
    pub fn on_response(
        &mut self,
        id: i64,
        payload: &ResponsePayload,
        reached: &mut dyn FnMut(&'static str),
    ) -> Vec<String> {
        if self.creates.remove(&id) {
            if let ResponsePayload::VmCreatedResponse(created) = payload {
                self.vms.insert(created.vm_id.clone(), HostVm::default());
            }
        }
        let Some(pending) = self.pending.remove(&id) else { return Vec::new() };
        let vm = match &pending {
            Pending::Mount { vm }
            | Pending::Write { vm, .. }
            | Pending::Read { vm, .. }
            | Pending::Remove { vm, .. }
            | Pending::GuestRead { vm, .. } => vm.clone(),
        };
        let Some(state) = self.vms.get_mut(&vm) else { return Vec::new() };
        state.busy = false;
        let refused = match payload {
            ResponsePayload::RejectedResponse(rejected) => Some(rejected.message.as_str()),
            _ => None,
        };
        // The VM went away meanwhile: nothing to compare.
        if refused.is_some_and(|message| message.starts_with("unknown sidecar VM")) {
            return Vec::new();
        }
        let failed = refused.is_some_and(|message| message.starts_with("EIO"));
        if failed {
            reached("host_fs_failed");
        }
        let ok = match (pending, payload) {
            (Pending::GuestRead { vm, process_id, expected }, ResponsePayload::ProcessStartedResponse(_)) => {
                // The VM stays busy until the read exits, so the model holds still meanwhile.
                state.busy = true;
                self.reads.insert(process_id, GuestRead { vm, expected, output: Vec::new() });
                true
            }
            // Refused (a limit, a dispose): nothing ran.
            (Pending::GuestRead { .. }, ResponsePayload::RejectedResponse(_)) => true,
            (Pending::Mount { .. }, ResponsePayload::VmConfiguredResponse(configured)) => {
                state.mounted = configured.applied_mounts == 1;
                reached("host_dir_mounted");
                state.mounted
            }
            // Refused for a limit or while disposing: try again later.
            (Pending::Mount { .. }, ResponsePayload::RejectedResponse(_)) => true,
            (Pending::Write { path, before, .. } | Pending::Remove { path, before, .. }, _) if failed => {
                // A failed operation changed nothing.
                match before {
                    Some(bytes) => state.files.insert(path, bytes),
                    None => state.files.remove(&path),
                };
                true
            }
            (Pending::Read { .. }, _) if failed => true,
            (Pending::Write { .. }, ResponsePayload::GuestFilesystemResultResponse(_)) => true,
            (Pending::Remove { before, .. }, ResponsePayload::GuestFilesystemResultResponse(_)) => before.is_some(),
            (Pending::Remove { before: None, .. }, _) => refused.is_some_and(|message| message.starts_with("ENOENT")),
            (Pending::Read { expected: Some(bytes), .. }, ResponsePayload::GuestFilesystemResultResponse(result)) => {
                let matched = result.content.as_deref().map(str::as_bytes) == Some(bytes.as_slice());
                if matched {
                    reached("host_dir_matched_model");
                }
                matched
            }
            (Pending::Read { expected: None, .. }, _) => refused.is_some_and(|message| message.starts_with("ENOENT")),
            _ => false,
        };
        if ok {
            Vec::new()
        } else {
            vec![format!("host directory answer {id} in {vm} differs from the model: {payload:?}")]
        }
    }

    /// A process event of a host directory VM: a guest read's output and exit, checked against
    /// the model.
    pub fn on_event(&mut self, payload: &EventPayload, reached: &mut dyn FnMut(&'static str)) -> Vec<String> {
        match payload {
            EventPayload::ProcessOutputEvent(output) => match self.reads.get_mut(&output.process_id) {
                Some(read) if output.channel == StreamChannel::Stdout => {
                    read.output.extend_from_slice(&output.chunk);
                    Vec::new()
                }
                _ => vec![format!("unexpected output of {}: {:?}", output.process_id, output.chunk)],
            },
            EventPayload::ProcessExitedEvent(exited) => {
                let Some(read) = self.reads.remove(&exited.process_id) else {
                    return vec![format!("exit of {}, which is not running", exited.process_id)];
                };
                if let Some(state) = self.vms.get_mut(&read.vm) {
                    state.busy = false;
                }
                let code = exited.exit_code;
                let failed_midway = code == 1
                    && read.output.strip_suffix(b"error 29").is_some_and(|printed| {
                        read.expected.as_deref().is_some_and(|content| content.starts_with(printed))
                    });
                let ok = match (&read.expected, code) {
                    (Some(content), 0) if read.output == *content => {
                        reached("guest_read_host_file");
                        true
                    }
                    (None, 1) if read.output == b"error 44" => true,
                    // A fault hit one of its calls (maybe after some of the content).
                    _ if failed_midway || (code == 1 && read.output == b"error 29") => true,
                    // Ended by a dispose.
                    (_, 137) => true,
                    _ => false,
                };
                if ok {
                    Vec::new()
                } else {
                    vec![format!(
                        "guest read {} exited {code} with {:?}, the model holds {:?}",
                        exited.process_id,
                        String::from_utf8_lossy(&read.output),
                        read.expected.as_deref().map(String::from_utf8_lossy)
                    )]
                }
            }
            _ => Vec::new(),
        }
    }

    /// The VM is gone, and its model with it.
    pub fn disposed(&mut self, vm: &str) {
        self.vms.remove(vm);
        self.reads.retain(|_, read| read.vm != vm);
    }
}
