//! The request dispatcher: a sans-IO state machine in the style of quinn-proto.
//!
//! The driver feeds it bytes or frames with the current time ([`Sidecar::handle_bytes`],
//! [`Sidecar::handle_frame`]), advances timers ([`Sidecar::tick`] at
//! [`Sidecar::next_deadline`]) and drains encoded frames ([`Sidecar::poll_output`]). The same
//! inputs in the same order give byte-identical outputs.
//!
//! Streams are transport links (stdio is one stream; the simulator opens several). A stream
//! authenticates one or more *connections* (`conn-N`); connections open *sessions*
//! (`session-N`); sessions own *VMs* (`vm-N`). A request naming a connection, session or VM that
//! the requesting stream does not own is refused exactly as if it did not exist.

pub(crate) mod callbacks;
mod compile;
mod effects;
mod egress;
mod frames;
mod host_calls;
mod network;
mod persistence;
mod processes;
mod vm_table;

pub use crate::fs::devices::{
    makedev, DEV_TREE_DEV, ENDLESS_DEVICE, NULL_RDEV, PROC_TREE_DEV, URANDOM_RDEV, ZERO_RDEV,
};
pub use crate::fs::js_bridge::JS_BRIDGE_TIMEOUT_MS;
pub use crate::fs::layers::{default_base_entries, GUEST_USER_GID, GUEST_USER_UID, MAX_LAYERS_PER_VM};
pub use crate::fs::mounts::{KNOWN_MOUNT_PLUGINS, MAX_MOUNTS, MAX_MOUNT_ID_BYTES, SUPPORTED_MOUNT_PLUGINS};
pub use crate::fs::HOST_FILESYSTEM_STATUS_OK;
pub use crate::vm::{
    PermissionCheck, PromptOutcome, PromptTicket, VmSummary, MAX_DESCRIPTION_CHARS, MAX_TOOLKIT_NAME_BYTES,
};
pub use callbacks::{HostCallbackOutcome, InvocationId, PERMISSION_PROMPT_NAMESPACE};

use crate::clock::{Entropy, Now};
use crate::error::{RejectCode, Rejection};
use crate::fs::{self as filesystem, js_bridge, layers, mounts};
use crate::host::fs::HostFs;
use crate::host::package::PackageSource;
use crate::host::software::{SoftwareTree, MAX_SOFTWARE_PACKAGES};
use crate::vfs::{Layer, Overlay};
use crate::vm;
use schema::codec::Decoded;
use schema::wire::*;
use schema::{FrameDecoder, FrameError, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The `sidecarId` reported by `AuthenticatedResponse` unless the embedder names another.
pub const DEFAULT_SIDECAR_ID: &str = "secure-exec-sidecar";
/// The host bridge contract version hosts must announce in `AuthenticateRequest.bridgeVersion`.
pub const BRIDGE_VERSION: u32 = 1;
/// Transport links served at once (stdio uses one; simulations open a few per client).
pub const MAX_STREAMS: usize = 1024;
/// Connections one stream may authenticate: hosts authenticate once; a loop that keeps
/// re-authenticating must not grow the table without bound. When the stream is full, its oldest
/// connection that owns no VM is forgotten to make room (it holds nothing but its id).
pub const MAX_CONNECTIONS_PER_STREAM: usize = 64;
/// Sessions per connection, bounding per-tenant bookkeeping. When a connection is full, its
/// oldest session that owns no VM is forgotten to make room, so a long-lived connection that
/// opens a session per job is never used up.
pub const MAX_SESSIONS_PER_CONNECTION: usize = 256;
/// VMs per session, and in the whole sidecar: each VM holds a filesystem and processes, so
/// the total is what bounds the sidecar's memory, the per-session bound its fairness.
pub const MAX_VMS_PER_SESSION: usize = 256;
pub const MAX_VMS: usize = 1024;
/// Sidecar-initiated requests awaiting the host's answer (the original's bound).
pub const MAX_PENDING_SIDECAR_REQUESTS: usize = 10_000;
/// Namespace of the `ExtEnvelope` event that reports a frame no response can answer (an
/// undecodable frame without a recoverable id, a request id of the wrong sign, an unknown or late
/// sidecar response, a frame kind hosts must not send). Payload: JSON
/// `{"code": str, "message": str, "requestId": int|null}`.
pub const PROTOCOL_ERROR_NAMESPACE: &str = "dev.secure-exec.sidecar.protocol-error";
/// Ownership id used when a rejected frame's own scope is unusable (e.g. empty ids).
pub const UNKNOWN_OWNER_ID: &str = "unknown";
/// The smallest frame limit the sidecar runs with: every rejection and protocol-error event
/// (bounded messages, bounded echoed ids) must always fit. Smaller configured limits are raised.
pub const MIN_FRAME_LIMIT_BYTES: usize = 16 * 1024;
/// The largest: the length prefix is a u32.
pub const MAX_FRAME_LIMIT_BYTES: usize = u32::MAX as usize;
/// The memory budget of an embedder that names none: enough for a few dozen guests at the
/// default per-guest limit. The binary uses half the machine's memory instead.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 4 << 30;
pub use frames::{MAX_ECHOED_ID_BYTES, MAX_REJECTION_MESSAGE_BYTES};
pub use host_calls::{MAX_HOST_CALLS_IN_FLIGHT, MAX_QUEUED_HOST_REQUESTS_PER_VM};
pub use network::{MAX_PENDING_FETCHES, MAX_VM_FETCH_RESPONSE_BYTES, VM_FETCH_TIMEOUT_MS};

/// How the embedder configures the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarConfig {
    pub sidecar_id: String,
    /// `None`: any non-empty token is accepted (like the original's stock binary).
    pub expected_auth_token: Option<String>,
    pub max_frame_bytes: usize,
    /// Seeds every random choice the kernel makes (guest entropy), so one seed replays a run.
    pub entropy_seed: u64,
    /// The sidecar-wide budget of guest memory plus VM filesystem content (see
    /// [`MemoryBudget`](crate::syscalls::engine::MemoryBudget)); the binary sets a share of the machine.
    pub max_memory_bytes: u64,
    /// A deliberate bug, for proving that the simulator catches bugs. Only test builds have
    /// it, so production code cannot switch one on.
    #[cfg(feature = "testing")]
    pub injected_fault: Option<InjectedFault>,
}

/// Deliberate bugs the simulator must catch.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The n-th response frame (1-based) is silently dropped.
    DropNthResponse(u64),
    /// A flush whose store write failed is answered as committed (a lost completion error in
    /// the effect path: the host believes a state is saved that is not).
    AcknowledgeFailedFlush,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        Self {
            sidecar_id: DEFAULT_SIDECAR_ID.to_owned(),
            expected_auth_token: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            entropy_seed: 0,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            #[cfg(feature = "testing")]
            injected_fault: None,
        }
    }
}

pub use crate::ids::StreamId;

/// One encoded frame (length prefix included) for the driver to write to `stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stream: StreamId,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
struct StreamState {
    decoder: FrameDecoder,
    connections: BTreeSet<String>,
}

#[derive(Debug)]
struct ConnectionState {
    stream: StreamId,
    sessions: BTreeSet<String>,
}

#[derive(Debug)]
struct SessionState {
    connection_id: String,
    vms: BTreeSet<String>,
}

/// The kernel's top-level state machine.
#[derive(Debug)]
pub struct Sidecar {
    config: SidecarConfig,
    now: Now,
    entropy: Entropy,
    streams: BTreeMap<StreamId, StreamState>,
    connections: BTreeMap<String, ConnectionState>,
    sessions: BTreeMap<String, SessionState>,
    vms: vm_table::VmTable,
    next_stream: u64,
    next_connection: u64,
    next_session: u64,
    next_vm: u64,
    callbacks: callbacks::PendingRequests,
    outputs: VecDeque<Output>,
    /// Responses pushed so far, for the injected fault that drops the n-th one.
    #[cfg(feature = "testing")]
    responses_sent: u64,
    /// The default base layer, built once and shared by every VM's root filesystem.
    base_layer: Layer,
    /// Host file access for `host_dir` mounts and host filesystem calls (none: refused).
    host_fs: Option<Arc<dyn HostFs>>,
    /// Opens ConfigureVm's `software` packages (none: a request naming any is refused).
    packages: Option<Arc<dyn PackageSource>>,
    /// The Python interpreter (none: `runtime: PYTHON` is refused, `python` an ordinary command).
    python: Option<Arc<dyn crate::host::python::PythonSource>>,
    /// Programs the sidecar provides to every VM (the `node` command).
    programs: crate::host::programs::SidecarPrograms,
    /// Whether the driver performs store effects (persistence requests are refused without).
    store_effects: bool,
    /// Effects asked of the driver and not yet completed, with the requests they answer.
    effects: effects::Effects,
    /// Programs compiled through effects, and what waits for them.
    compiles: compile::Compiles,
    /// `VmFetch` requests in flight.
    fetches: network::Fetches,
    /// Whether the driver carries connections out of VMs.
    egress: bool,
    /// Whether the driver performs guests' host directory calls (see `host_calls`).
    host_call_effects: bool,
    /// Host filesystem requests waiting for host directory calls, by VM.
    parked_requests: host_calls::ParkedRequests,
    /// Connections out of VMs the driver holds.
    links: egress::Links,
    /// Runs guest programs (none: `Execute` is refused).
    guest_engine: Option<Arc<dyn crate::syscalls::engine::GuestEngine>>,
    /// The running guest task of every live process, by (VM id, pid): the scheduler's, not the
    /// VM's, so a VM's state stays plain data the guest can be lent.
    guests: BTreeMap<(String, u32), Box<dyn crate::syscalls::engine::Guest>>,
    /// Guest memory in use across every VM, against `config.max_memory_bytes`.
    memory_budget: Arc<crate::syscalls::engine::MemoryBudget>,
    /// The process the scheduler ran last (VM id, pid): the next turn starts after it.
    last_scheduled: Option<(String, u32)>,
    /// Prompts of processes that exited while waiting: their outcomes are dropped on arrival
    /// (each still has a pending request with a deadline, so this stays bounded by
    /// [`MAX_PENDING_SIDECAR_REQUESTS`]).
    abandoned_prompts: BTreeSet<PromptTicket>,
    /// Host callbacks of tool calls whose processes exited while waiting: dropped on arrival,
    /// bounded the same way.
    abandoned_callbacks: BTreeSet<InvocationId>,
}

impl Sidecar {
    pub fn new(mut config: SidecarConfig) -> Self {
        config.max_frame_bytes = config.max_frame_bytes.clamp(MIN_FRAME_LIMIT_BYTES, MAX_FRAME_LIMIT_BYTES);
        let memory_budget = Arc::new(crate::syscalls::engine::MemoryBudget::new(config.max_memory_bytes));
        Self {
            entropy: Entropy::from_seed(config.entropy_seed),
            config,
            now: Now::default(),
            streams: BTreeMap::new(),
            connections: BTreeMap::new(),
            sessions: BTreeMap::new(),
            vms: vm_table::VmTable::default(),
            next_stream: 0,
            next_connection: 0,
            next_session: 0,
            next_vm: 0,
            callbacks: callbacks::PendingRequests::default(),
            outputs: VecDeque::new(),
            #[cfg(feature = "testing")]
            responses_sent: 0,
            base_layer: layers::default_base_layer(),
            host_fs: None,
            packages: None,
            python: None,
            programs: crate::host::programs::SidecarPrograms::default(),
            store_effects: false,
            effects: effects::Effects::default(),
            compiles: compile::Compiles::default(),
            fetches: network::Fetches::default(),
            egress: false,
            host_call_effects: false,
            parked_requests: host_calls::ParkedRequests::default(),
            links: egress::Links::default(),
            guest_engine: None,
            guests: BTreeMap::new(),
            memory_budget,
            last_scheduled: None,
            abandoned_prompts: BTreeSet::new(),
            abandoned_callbacks: BTreeSet::new(),
        }
    }

    /// Gives `host_dir` mounts and `HostFilesystemCallRequest`s access to host files. Without
    /// it, mounting `host_dir` is `plugin_error` `ENOSYS: host filesystem access is not
    /// available`.
    pub fn with_host_fs(mut self, host_fs: Arc<dyn HostFs>) -> Self {
        self.host_fs = Some(host_fs);
        self
    }

    /// Gives ConfigureVm's `software` entries their packages (see [`crate::host::software`]).
    /// Without it, a request naming software is `unsupported`.
    pub fn with_packages(mut self, packages: Arc<dyn PackageSource>) -> Self {
        self.packages = Some(packages);
        self
    }

    /// Gives `Execute` the Python interpreter (see [`crate::host::python`]): `runtime: PYTHON`
    /// and the `python`/`python3` commands run it.
    pub fn with_python(mut self, python: Arc<dyn crate::host::python::PythonSource>) -> Self {
        self.python = Some(python);
        self
    }

    /// Provides the program `module` to every VM as the command `name` (see
    /// [`crate::host::programs`]), looked for after a VM's own `PATH`; `Err` for a name that is
    /// not one path component or past [`crate::host::programs::MAX_SIDECAR_PROGRAMS`].
    pub fn with_program(mut self, name: &str, module: Arc<[u8]>) -> Result<Self, String> {
        self.programs = self.programs.with(name, module)?;
        Ok(self)
    }

    /// [`with_program`](Self::with_program) for a set already made.
    pub fn with_programs(mut self, programs: crate::host::programs::SidecarPrograms) -> Self {
        self.programs = programs;
        self
    }

    /// Gives `PersistenceLoad`/`PersistenceFlush` a durable store: the driver performs the
    /// store effects the kernel asks for ([`poll_effect`](Self::poll_effect)) and feeds back
    /// their completions ([`handle_completion`](Self::handle_completion)). Without it they are
    /// `unsupported`.
    pub fn with_store_effects(mut self) -> Self {
        self.store_effects = true;
        self
    }

    pub fn config(&self) -> &SidecarConfig {
        &self.config
    }

    /// Opens a transport link. `None` when [`MAX_STREAMS`] are open.
    pub fn open_stream(&mut self) -> Option<StreamId> {
        if self.streams.len() >= MAX_STREAMS {
            return None;
        }
        self.next_stream += 1;
        let id = StreamId(self.next_stream);
        let decoder = FrameDecoder::new(self.config.max_frame_bytes);
        self.streams.insert(id, StreamState { decoder, connections: BTreeSet::new() });
        Some(id)
    }

    /// The link is gone: every VM of its connections is disposed (`CONNECTION_CLOSED`) and
    /// everything it owned is forgotten. Nothing more is sent to it.
    pub fn close_stream(&mut self, stream: StreamId, now: Now) {
        self.advance(now);
        let Some(state) = self.streams.remove(&stream) else { return };
        for connection_id in state.connections {
            self.remove_connection(&connection_id);
        }
        self.outputs.retain(|output| output.stream != stream);
    }

    /// Host shutdown: every VM is disposed with `HOST_SHUTDOWN`; lifecycle events are still
    /// sent to their streams.
    pub fn shutdown(&mut self, now: Now) {
        self.advance(now);
        for vm_id in self.vm_ids_in_order() {
            self.dispose_vm(&vm_id);
        }
    }

    /// Bytes read from `stream`, in any chunking.
    pub fn handle_bytes(&mut self, stream: StreamId, bytes: &[u8], now: Now) {
        self.advance(now);
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(state) = self.streams.get_mut(&stream) else { return };
            let (consumed, item) = state.decoder.decode_next(rest);
            rest = rest.get(consumed..).unwrap_or_default();
            match item {
                Some(Decoded::Frame(frame)) => self.dispatch(stream, frame),
                Some(Decoded::Error { error, request_id }) => self.frame_error(stream, &error, request_id),
                None => {}
            }
        }
    }

    /// A decoded frame from `stream` (drivers that decode themselves, fuzzers, the simulator).
    pub fn handle_frame(&mut self, stream: StreamId, frame: ProtocolFrame, now: Now) {
        self.advance(now);
        if self.streams.contains_key(&stream) {
            self.dispatch(stream, frame);
        }
    }

    /// The end of `stream`'s input: a partial frame left in the decoder is reported.
    pub fn finish_stream_input(&mut self, stream: StreamId, now: Now) -> Result<(), FrameError> {
        self.advance(now);
        self.streams.get(&stream).map_or(Ok(()), |state| state.decoder.finish())
    }

    /// The next encoded frame to write, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Frames waiting in [`poll_output`](Self::poll_output).
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The earliest monotonic time at which [`tick`](Self::tick) has work (timeouts).
    pub fn next_deadline(&self) -> Option<u64> {
        [self.callbacks.next_deadline(), self.process_deadline(), self.fetches.next_deadline(), self.links_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advances time: expires host-callback and permission-prompt timeouts, wakes sleeping
    /// guests and runs a bounded number of guest slices (see `process`).
    pub fn tick(&mut self, now: Now) {
        self.advance(now);
        for expired in self.callbacks.expire(self.now.monotonic_ms) {
            self.complete_expired(expired);
        }
        self.run_processes();
        self.drive_fetches();
        self.drive_links();
    }

    /// The kernel's current notion of time (the latest reading passed in).
    pub fn now(&self) -> Now {
        self.now
    }

    /// Live VMs in id order, for drivers, simulations and tests.
    pub fn vms(&self) -> Vec<VmSummary> {
        self.vms.values().map(vm::Vm::summary).collect()
    }

    /// Live VMs (without building their summaries, unlike [`vms`](Self::vms)).
    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn pending_sidecar_requests(&self) -> usize {
        self.callbacks.len()
    }

    /// The default base layer every VM's root filesystem shares (unless its config disables
    /// it).
    pub fn base_layer(&self) -> &Layer {
        &self.base_layer
    }

    /// A VM's root filesystem (read access, for drivers, simulations and tests).
    pub fn vm_root_filesystem(&self, vm_id: &str) -> Option<&Overlay> {
        self.vms.get(vm_id).map(|vm| vm.filesystem().root())
    }

    /// A VM's guest working directory: where relative paths resolve.
    pub fn vm_cwd(&self, vm_id: &str) -> Option<&str> {
        self.vms.get(vm_id).map(|vm| vm.filesystem().cwd())
    }

    /// The guest paths of a VM's mounts, in the order ConfigureVm gave them.
    pub fn vm_mount_paths(&self, vm_id: &str) -> Option<Vec<String>> {
        self.vms.get(vm_id).map(|vm| vm.filesystem().mount_paths())
    }

    /// The ids of a VM's layer store, sorted.
    pub fn vm_layer_ids(&self, vm_id: &str) -> Option<Vec<String>> {
        self.vms.get(vm_id).map(|vm| vm.filesystem().layer_ids())
    }

    /// Time never goes backwards inside the kernel, whatever the driver passes.
    fn advance(&mut self, now: Now) {
        self.now = Now {
            monotonic_ms: self.now.monotonic_ms.max(now.monotonic_ms),
            wall_ms: self.now.wall_ms.max(now.wall_ms),
        };
    }

    fn dispatch(&mut self, stream: StreamId, frame: ProtocolFrame) {
        if let Err(error) = schema::validate_frame(&frame) {
            let request_id = match &frame {
                ProtocolFrame::RequestFrame(request) if request.request_id > 0 => Some(request.request_id),
                _ => None,
            };
            let scope = match &frame {
                ProtocolFrame::RequestFrame(request) => Some(&request.ownership),
                _ => None,
            };
            match (request_id, scope) {
                (Some(id), Some(scope)) => {
                    let rejection = Rejection::new(reject_code_of(&error), error.rejection_message());
                    let scope = frames::usable_scope(scope);
                    self.reject(stream, id, scope, rejection);
                }
                _ => self.frame_error(stream, &error, None),
            }
            return;
        }
        match frame {
            ProtocolFrame::RequestFrame(request) => self.handle_request(stream, request),
            ProtocolFrame::SidecarResponseFrame(response) => self.handle_sidecar_response(stream, response),
            ProtocolFrame::ResponseFrame(_) | ProtocolFrame::EventFrame(_) | ProtocolFrame::SidecarRequestFrame(_) => {
                let message =
                    format!("hosts may send only requests and sidecar responses, not {}", frame.member_name());
                self.protocol_error(stream, "unexpected_frame_kind", &message, None);
            }
        }
    }

    fn frame_error(&mut self, stream: StreamId, error: &FrameError, request_id: Option<i64>) {
        match request_id {
            Some(id) => {
                let rejection = Rejection::new(reject_code_of(error), error.rejection_message());
                let scope = OwnershipScope::connection(UNKNOWN_OWNER_ID);
                self.reject(stream, id, scope, rejection);
            }
            None => self.protocol_error(stream, error.code(), &error.to_string(), None),
        }
    }

    fn handle_request(&mut self, stream: StreamId, request: RequestFrame) {
        self.handle_host_request(stream, request);
    }

    fn handle_request_now(&mut self, stream: StreamId, request: RequestFrame) {
        let RequestFrame { request_id, ownership, payload, .. } = request;
        let result = match payload {
            RequestPayload::AuthenticateRequest(authenticate) => {
                self.authenticate(stream, request_id, &ownership, &authenticate);
                return;
            }
            RequestPayload::OpenSessionRequest(open) => self.open_session(stream, &ownership, open),
            RequestPayload::CreateVmRequest(create) => self.create_vm(stream, request_id, &ownership, &create),
            RequestPayload::ExtEnvelope(envelope) => Err(Rejection::new(
                RejectCode::UnknownExtension,
                format!("no extension registered for namespace {}", envelope.namespace),
            )),
            RequestPayload::PersistenceLoadRequest(_) | RequestPayload::PersistenceFlushRequest(_) => {
                self.persistence(stream, request_id, &ownership, payload)
            }
            payload => self.vm_request(stream, request_id, &ownership, payload),
        };
        match result {
            Ok(Some(response)) => self.respond(stream, request_id, ownership, response),
            Ok(None) => {}
            Err(rejection) => self.reject(stream, request_id, frames::usable_scope(&ownership), rejection),
        }
    }

    fn authenticate(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        request: &AuthenticateRequest,
    ) {
        let checked = self.check_authentication(request).and_then(|()| self.make_room_for_connection(stream));
        let connection_id = match checked {
            Ok(()) => {
                self.next_connection += 1;
                format!("conn-{}", self.next_connection)
            }
            Err(rejection) => return self.reject(stream, request_id, frames::usable_scope(ownership), rejection),
        };
        self.connections.insert(connection_id.clone(), ConnectionState { stream, sessions: BTreeSet::new() });
        if let Some(state) = self.streams.get_mut(&stream) {
            state.connections.insert(connection_id.clone());
        }
        let response = ResponsePayload::AuthenticatedResponse(AuthenticatedResponse {
            sidecar_id: self.config.sidecar_id.clone(),
            connection_id: connection_id.clone(),
            max_frame_bytes: u32::try_from(self.config.max_frame_bytes).unwrap_or(u32::MAX),
        });
        self.respond(stream, request_id, OwnershipScope::connection(connection_id), response);
    }

    fn check_authentication(&self, request: &AuthenticateRequest) -> Result<(), Rejection> {
        if let Some(expected) = &self.config.expected_auth_token {
            if &request.auth_token != expected {
                return Err(Rejection::new(
                    RejectCode::Unauthorized,
                    "authenticate request provided an invalid auth token",
                ));
            }
        }
        if request.protocol_version != PROTOCOL_VERSION {
            return Err(Rejection::new(
                RejectCode::ProtocolVersionMismatch,
                format!(
                    "sidecar protocol version mismatch: expected {PROTOCOL_VERSION}, got {}",
                    request.protocol_version
                ),
            ));
        }
        if request.bridge_version != BRIDGE_VERSION {
            return Err(Rejection::new(
                RejectCode::BridgeVersionMismatch,
                format!("bridge contract version mismatch: expected {BRIDGE_VERSION}, got {}", request.bridge_version),
            ));
        }
        Ok(())
    }

    /// Makes room for one more connection on `stream`, forgetting its oldest connection without
    /// VMs if it is full; refused when every connection owns a VM.
    fn make_room_for_connection(&mut self, stream: StreamId) -> Result<(), Rejection> {
        let Some(state) = self.streams.get(&stream) else { return Ok(()) };
        if state.connections.len() < MAX_CONNECTIONS_PER_STREAM {
            return Ok(());
        }
        let owns_no_vm = |connection_id: &&String| {
            self.connections.get(*connection_id).is_some_and(|connection| {
                connection.sessions.iter().all(|id| self.sessions.get(id).is_none_or(|s| s.vms.is_empty()))
            })
        };
        let oldest = state.connections.iter().filter(owns_no_vm).min_by_key(|id| numeric_suffix(id)).cloned();
        let Some(oldest) = oldest else {
            return Err(Rejection::limit("connections per stream", MAX_CONNECTIONS_PER_STREAM));
        };
        if let Some(state) = self.streams.get_mut(&stream) {
            state.connections.remove(&oldest);
        }
        self.remove_connection(&oldest);
        Ok(())
    }

    /// Makes room for one more session on `connection_id`, forgetting its oldest session without
    /// VMs if it is full; refused when every session owns a VM.
    fn make_room_for_session(&mut self, connection_id: &str) -> Result<(), Rejection> {
        let Some(connection) = self.connections.get(connection_id) else { return Ok(()) };
        if connection.sessions.len() < MAX_SESSIONS_PER_CONNECTION {
            return Ok(());
        }
        let oldest = connection
            .sessions
            .iter()
            .filter(|id| self.sessions.get(*id).is_none_or(|session| session.vms.is_empty()))
            .min_by_key(|id| numeric_suffix(id))
            .cloned();
        let Some(oldest) = oldest else {
            return Err(Rejection::limit("sessions per connection", MAX_SESSIONS_PER_CONNECTION));
        };
        if let Some(connection) = self.connections.get_mut(connection_id) {
            connection.sessions.remove(&oldest);
        }
        self.sessions.remove(&oldest);
        Ok(())
    }

    fn open_session(
        &mut self,
        stream: StreamId,
        ownership: &OwnershipScope,
        _request: OpenSessionRequest,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let connection_id = ownership.connection_id().to_owned();
        self.authorize_connection(stream, &connection_id)?;
        self.make_room_for_session(&connection_id)?;
        self.next_session += 1;
        let session_id = format!("session-{}", self.next_session);
        if let Some(connection) = self.connections.get_mut(&connection_id) {
            connection.sessions.insert(session_id.clone());
        }
        self.sessions
            .insert(session_id.clone(), SessionState { connection_id: connection_id.clone(), vms: BTreeSet::new() });
        Ok(Some(ResponsePayload::SessionOpenedResponse(SessionOpenedResponse {
            session_id,
            owner_connection_id: connection_id,
        })))
    }

    fn create_vm(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        request: &CreateVmRequest,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let connection_id = ownership.connection_id().to_owned();
        let session_id = ownership.session_id().unwrap_or_default().to_owned();
        let session = self.authorize_session(stream, &connection_id, &session_id)?;
        if session.vms.len() >= MAX_VMS_PER_SESSION {
            return Err(Rejection::limit("VMs per session", MAX_VMS_PER_SESSION));
        }
        if self.vms.len() >= MAX_VMS {
            return Err(Rejection::limit("VMs", MAX_VMS));
        }
        self.check_memory_budget()?;
        let setup = vm::VmSetup::parse(request.runtime, &request.config)?;
        // Like the original, the id is used up even when building the filesystem fails.
        self.next_vm += 1;
        let vm_id = format!("vm-{}", self.next_vm);
        let filesystem = filesystem::VmFilesystem::build(
            setup.config(),
            setup.limits(),
            &setup.guest_env(),
            &self.base_layer,
            self.now,
        )?;
        let mut vm = vm::Vm::new(vm_id.clone(), connection_id.clone(), session_id.clone(), stream, setup, filesystem);
        vm.set_programs(self.programs.clone());
        if self.egress {
            vm.processes_mut().net.enable_egress();
        }
        if self.host_call_effects {
            vm.filesystem_mut().host_gate_mut().set_deferring();
        }
        self.vms.insert(vm_id.clone(), vm);
        if let Some(session) = self.sessions.get_mut(&session_id) {
            session.vms.insert(vm_id.clone());
        }
        let response = ResponsePayload::VmCreatedResponse(VmCreatedResponse { vm_id: vm_id.clone() });
        self.respond(stream, request_id, ownership.clone(), response);
        let scope = OwnershipScope::vm(connection_id, session_id, vm_id.clone());
        for state in [VmLifecycleState::Creating, VmLifecycleState::Ready] {
            self.emit_lifecycle(stream, &scope, state);
        }
        Ok(None)
    }

    fn vm_request(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        payload: RequestPayload,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let vm_id = self.authorize_vm(stream, ownership)?;
        match payload {
            RequestPayload::DisposeVmRequest(_) => {
                self.respond(
                    stream,
                    request_id,
                    ownership.clone(),
                    ResponsePayload::VmDisposedResponse(VmDisposedResponse { vm_id: vm_id.clone() }),
                );
                self.dispose_vm(&vm_id);
                Ok(None)
            }
            RequestPayload::ConfigureVmRequest(request) => self.configure_vm(&vm_id, request).map(Some),
            RequestPayload::KillProcessRequest(request) => {
                self.kill_process(stream, request_id, ownership, &vm_id, &request)
            }
            RequestPayload::RegisterHostCallbacksRequest(request) => {
                self.vm_mut(&vm_id)?.register_host_callbacks(request).map(Some)
            }
            RequestPayload::GuestFilesystemCallRequest(request) => {
                let now = self.now;
                let vm = self.vms.get_mut(&vm_id).ok_or_else(|| unknown_vm(&vm_id))?;
                let (filesystem, policy) = vm.filesystem_and_policy();
                let outcome = filesystem.call_from_wire(policy, request, &mut self.entropy, now)?;
                self.finish_guest_call(&vm_id, request_id, ownership, outcome)
            }
            payload if Self::is_process_request(&payload) => {
                self.process_request(stream, request_id, ownership, &vm_id, payload)
            }
            RequestPayload::FindListenerRequest(request) => self.find_listener(&vm_id, &request).map(Some),
            RequestPayload::FindBoundUdpRequest(request) => self.find_bound_udp(&vm_id, &request).map(Some),
            RequestPayload::VmFetchRequest(request) => self.vm_fetch(stream, request_id, ownership, &vm_id, request),
            payload => self.filesystem_request(&vm_id, payload),
        }
    }

    /// ConfigureVm: the new mounts are checked and opened first (nothing changes unless all of
    /// them can be mounted), then the VM's configuration is replaced.
    fn configure_vm(&mut self, vm_id: &str, request: ConfigureVmRequest) -> Result<ResponsePayload, Rejection> {
        let now = self.now;
        let host_fs = self.host_fs.clone();
        vm::Vm::check_supported(&request)?;
        // An unknown VM is refused before any package file is opened.
        self.vm_mut(vm_id)?;
        let software = self.software_mount(&request.software)?;
        let vm = self.vm_mut(vm_id)?;
        let policy = vm::Vm::configured_policy(&request)?;
        vm.check_mounts(policy.as_ref(), &request.mounts)?;
        let limits = vm.filesystem().limits();
        let mut mounts = mounts::build(&request.mounts, host_fs.as_deref(), limits, now)?;
        if let Some(software) = software {
            mounts::add_software(&mut mounts, software)?;
        }
        vm.configure(request, policy, mounts)
    }

    /// The software tree of ConfigureVm's packages (`None` when it names none), each opened
    /// through the package port.
    fn software_mount(&self, software: &[SoftwareDescriptor]) -> Result<Option<SoftwareTree>, Rejection> {
        if software.is_empty() {
            return Ok(None);
        }
        let source = self.packages.as_ref().ok_or_else(|| {
            Rejection::new(
                RejectCode::Unsupported,
                "ConfigureVm software is not available: this sidecar has no package source",
            )
        })?;
        if software.len() > MAX_SOFTWARE_PACKAGES {
            return Err(Rejection::limit("software packages per VM", MAX_SOFTWARE_PACKAGES));
        }
        let mut packages = Vec::with_capacity(software.len());
        for descriptor in software {
            if descriptor.root.is_empty() || descriptor.root.contains('\0') {
                return Err(Rejection::invalid_state(format!(
                    "software {:?} needs a root: the path of its .aospkg or package directory",
                    descriptor.package_name
                )));
            }
            let package = source.open(&descriptor.root).map_err(|error| {
                Rejection::new(RejectCode::PluginError, format!("software {:?}: {error}", descriptor.package_name))
            })?;
            packages.push(package);
        }
        let tree = SoftwareTree::new(packages).map_err(Rejection::invalid_state)?;
        // With the interpreter, a shell finds `python` and `python3` on `PATH`; so it finds the
        // sidecar's own programs.
        let interpreter: &[&str] = if self.python.is_some() { crate::host::python::PYTHON_COMMANDS } else { &[] };
        let names: Vec<&str> = interpreter.iter().copied().chain(self.programs.names()).collect();
        Ok(Some(tree.with_interpreter(&names)))
    }

    /// The filesystem and layer requests of a VM (see `filesystem` and `layers`).
    fn filesystem_request(
        &mut self,
        vm_id: &str,
        payload: RequestPayload,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        let now = self.now;
        let vm = self.vm_mut(vm_id)?;
        match payload {
            RequestPayload::HostFilesystemCallRequest(request) => {
                let (filesystem, policy) = vm.filesystem_and_policy();
                let result = filesystem.host_call(policy, &request, now);
                Ok(Some(ResponsePayload::FilesystemResultResponse(result)))
            }
            RequestPayload::BootstrapRootFilesystemRequest(request) => {
                vm.filesystem_mut().bootstrap(&request, now).map(Some)
            }
            RequestPayload::SnapshotRootFilesystemRequest => Ok(Some(vm.filesystem().snapshot())),
            RequestPayload::CreateLayerRequest => vm.filesystem_mut().create_layer(now).map(Some),
            RequestPayload::SealLayerRequest(request) => vm.filesystem_mut().seal_layer(&request.layer_id).map(Some),
            RequestPayload::ImportSnapshotRequest(request) => {
                vm.filesystem_mut().import_snapshot(&request, now).map(Some)
            }
            RequestPayload::ExportSnapshotRequest(request) => {
                vm.filesystem().export_snapshot(request.layer_id).map(Some)
            }
            RequestPayload::CreateOverlayRequest(request) => {
                vm.filesystem_mut().create_overlay(&request, now).map(Some)
            }
            other => Err(not_yet(&other)),
        }
    }

    /// Live VM ids in creation order (`vm-2` before `vm-10`, which string order gets wrong).
    pub(crate) fn vm_ids_in_order(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.vms.keys().cloned().collect();
        ids.sort_by_key(|id| (numeric_suffix(id), id.clone()));
        ids
    }

    /// `limit_exceeded` while guest memory and VM filesystem content use up the sidecar's memory
    /// budget: no new VM or process until some is given back.
    fn check_memory_budget(&self) -> Result<(), Rejection> {
        let filesystems = self.vms.values().fold(0u64, |sum, vm| sum.saturating_add(vm.filesystem().content_bytes()));
        let used = self.memory_budget.used_bytes().saturating_add(filesystems);
        let limit = self.memory_budget.limit_bytes();
        if used >= limit {
            return Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!(
                    "ENOMEM: the sidecar's memory budget of {limit} bytes is used up ({used} bytes of guest memory \
                     and VM filesystem content)"
                ),
            ));
        }
        Ok(())
    }

    /// The budget guest memory draws from.
    pub fn memory_budget(&self) -> &crate::syscalls::engine::MemoryBudget {
        &self.memory_budget
    }

    fn vm_mut(&mut self, vm_id: &str) -> Result<&mut vm::Vm, Rejection> {
        self.vms.get_mut(vm_id).ok_or_else(|| unknown_vm(vm_id))
    }

    /// Disposes a VM: `DISPOSING`, cancellation of everything it waits on, `DISPOSED`.
    fn dispose_vm(&mut self, vm_id: &str) {
        let Some(vm) = self.vms.get(vm_id) else { return };
        let scope = vm.scope();
        let stream = vm.stream();
        let live = self.streams.contains_key(&stream);
        if live {
            self.emit_lifecycle(stream, &scope, VmLifecycleState::Disposing);
        }
        self.cancel_fetches(vm_id);
        // Like the original: the exits of the processes killed go out between DISPOSING and
        // DISPOSED.
        self.kill_all_processes(vm_id);
        self.close_links_of(vm_id);
        let Some(vm) = self.vms.remove(vm_id) else { return };
        self.guests.retain(|(owner, _), _| owner != vm_id);
        for (parked_stream, parked) in self.callbacks.cancel_vm(vm_id) {
            let callbacks::Parked { request_id, ownership, reply } = *parked;
            self.reject(parked_stream, request_id, ownership, js_bridge::cancelled(&reply, vm_id));
        }
        if let Some(session) = self.sessions.get_mut(vm.session_id()) {
            session.vms.remove(vm_id);
        }
        if live {
            self.emit_lifecycle(stream, &scope, VmLifecycleState::Disposed);
        }
    }

    /// A VM an engine failed to give back after a slice: its owner is told it is gone (`FAILED`)
    /// and every trace of it is dropped.
    fn forget_lost_vm(&mut self, vm_id: &str) {
        self.guests.retain(|(owner, _), _| owner != vm_id);
        for (parked_stream, parked) in self.callbacks.cancel_vm(vm_id) {
            let callbacks::Parked { request_id, ownership, reply } = *parked;
            self.reject(parked_stream, request_id, ownership, js_bridge::cancelled(&reply, vm_id));
        }
        let owner = self.sessions.iter_mut().find(|(_, session)| session.vms.contains(vm_id));
        let Some((session_id, session)) = owner else { return };
        session.vms.remove(vm_id);
        let connection_id = session.connection_id.clone();
        let session_id = session_id.clone();
        let Some(stream) = self.connections.get(&connection_id).map(|connection| connection.stream) else { return };
        let scope = OwnershipScope::vm(connection_id, session_id, vm_id.to_owned());
        self.emit_lifecycle(stream, &scope, VmLifecycleState::Failed);
    }

    fn remove_connection(&mut self, connection_id: &str) {
        let Some(connection) = self.connections.remove(connection_id) else { return };
        for session_id in connection.sessions {
            let Some(session) = self.sessions.remove(&session_id) else { continue };
            for vm_id in session.vms {
                self.dispose_vm(&vm_id);
            }
        }
    }

    fn authorize_connection(&self, stream: StreamId, connection_id: &str) -> Result<&ConnectionState, Rejection> {
        self.connections.get(connection_id).filter(|connection| connection.stream == stream).ok_or_else(|| {
            Rejection::new(RejectCode::Unauthorized, format!("connection {connection_id} has not authenticated"))
        })
    }

    fn authorize_session(
        &self,
        stream: StreamId,
        connection_id: &str,
        session_id: &str,
    ) -> Result<&SessionState, Rejection> {
        self.authorize_connection(stream, connection_id)?;
        self.sessions
            .get(session_id)
            .filter(|session| session.connection_id == connection_id)
            .ok_or_else(|| Rejection::invalid_state(format!("unknown sidecar session {session_id}")))
    }

    fn authorize_vm(&self, stream: StreamId, ownership: &OwnershipScope) -> Result<String, Rejection> {
        let OwnershipScope::VmOwnership(scope) = ownership else {
            return Err(Rejection::invalid_state("request requires VM ownership scope"));
        };
        self.authorize_session(stream, &scope.connection_id, &scope.session_id)?;
        self.vms
            .get(&scope.vm_id)
            .filter(|vm| vm.connection_id() == scope.connection_id && vm.session_id() == scope.session_id)
            .map(|vm| vm.id().to_owned())
            .ok_or_else(|| unknown_vm(&scope.vm_id))
    }

    fn authorize_session_or_vm(&self, stream: StreamId, ownership: &OwnershipScope) -> Result<(), Rejection> {
        match ownership {
            OwnershipScope::VmOwnership(_) => self.authorize_vm(stream, ownership).map(|_| ()),
            OwnershipScope::SessionOwnership(scope) => {
                self.authorize_session(stream, &scope.connection_id, &scope.session_id).map(|_| ())
            }
            OwnershipScope::ConnectionOwnership(_) => {
                Err(Rejection::invalid_state("request requires session or VM ownership scope"))
            }
        }
    }
}

/// The counter at the end of an id the kernel allocated (`session-12` → 12), for "oldest first"
/// (ids compare as strings otherwise, and `session-10` would come before `session-9`).
pub(crate) fn numeric_suffix(id: &str) -> u64 {
    id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

pub(crate) fn unknown_vm(vm_id: &str) -> Rejection {
    Rejection::invalid_state(format!("unknown sidecar VM {vm_id}"))
}

/// Requests whose subsystem is not built yet are refused explicitly, never silently.
fn not_yet(payload: &RequestPayload) -> Rejection {
    Rejection::new(RejectCode::Unsupported, format!("{} is not supported by this sidecar yet", payload.member_name()))
}

fn reject_code_of(error: &FrameError) -> RejectCode {
    match error {
        FrameError::FrameTooLarge { .. } => RejectCode::FrameTooLarge,
        _ => RejectCode::InvalidState,
    }
}
