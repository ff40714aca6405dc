//! The `host_dir` part of a simulated host's workload: VMs that mount a host directory (the
//! simulated sidecar's in-memory host filesystem, which fails now and then with `EIO`) at
//! `/host`, then write, read and remove files there, each answer checked against a model of the
//! directory. A failed operation must change nothing.

use std::collections::BTreeMap;

use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;

use crate::processes::Step;

/// CreateVm config of the VMs that mount a host directory.
pub const HOST_CONFIG: &str = r#"{"permissions":{"fs":"allow"},"cwd":"/tmp"}"#;
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
    Mount { vm: String },
    Write { vm: String, path: String, before: Option<Vec<u8>> },
    Read { vm: String, expected: Option<Vec<u8>> },
    Remove { vm: String, path: String, before: Option<Vec<u8>> },
}

/// The host's view of its host-directory VMs.
#[derive(Debug, Default)]
pub struct HostDirs {
    creates: std::collections::BTreeSet<i64>,
    vms: BTreeMap<String, HostVm>,
    pending: BTreeMap<i64, Pending>,
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
            match roll % 5 {
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
            | Pending::Remove { vm, .. } => vm.clone(),
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

    /// The VM is gone, and its model with it.
    pub fn disposed(&mut self, vm: &str) {
        self.vms.remove(vm);
    }
}
