//! A simulated host: a random but mostly valid conversation with faults mixed in, checking the
//! sidecar's answers against the protocol's promises as they arrive.

use crate::host::{PORT, SIM_CALLBACK};
use crate::hostdirs::{host_config, HostDirs};
use crate::processes::{proc_config, Processes, VmKind};
use crate::shared::SharedRef;
use crate::timers::Timers;
use crate::Swarm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schema::codec::Decoded;
use schema::wire::*;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;
use testkit::requests::{authenticate, configure_mounts, create_vm, dispose, mount, open_session, request_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use turmoil::net::tcp::OwnedWriteHalf;
use turmoil::net::TcpStream;

/// How long a client waits for answers after each step, and in the final liveness phase.
const STEP_SETTLE: Duration = Duration::from_millis(500);
const LIVENESS_WAIT: Duration = Duration::from_secs(15);
/// An OpenSession payload on the wire: union tag, placement tag, pool flag, metadata count.
const OPEN_SESSION_PAYLOAD_BYTES: usize = 4;

/// CreateVm configs the workload draws from: valid, ASK-prompting, and invalid ones.
fn configs() -> [&'static str; 14] {
    [
        "{}",
        FS_CONFIG,
        FS_CONFIG,
        r#"{"permissions":{"fs":{"default":"ask","rules":[]}},"permissionPrompts":{"enabled":true,"timeoutMs":300}}"#,
        r#"{"limits":{"resources":{"maxProcesses":4}}}"#,
        proc_config(VmKind::Light),
        proc_config(VmKind::AllReal),
        proc_config(VmKind::Fetch),
        proc_config(VmKind::Interpreters),
        host_config(),
        host_config(),
        r#"{"cwd":"relative"}"#,
        r#"{"bogus":true}"#,
        "{not json",
    ]
}

/// The config of VMs whose filesystem the workload exercises against its reference model.
const FS_CONFIG: &str = r#"{"permissions":{"fs":"allow"}}"#;
/// Files the model tracks (all under /tmp, which every default root has).
const FS_PATHS: &[&str] = &["/tmp/a", "/tmp/b", "/tmp/c"];

struct Connection {
    writer: OwnedWriteHalf,
    frames: mpsc::UnboundedReceiver<Decoded>,
    paused: Rc<Cell<bool>>,
}

/// A late answer to send once the simulation clock passes `due`.
struct LateAnswer {
    due: Duration,
    request: SidecarRequestFrame,
}

pub struct Client {
    name: String,
    shared: SharedRef,
    timers: Timers,
    rng: StdRng,
    swarm: Swarm,
    connection: Option<Connection>,
    next_request_id: i64,
    /// Requests sent and not yet answered: id → how many answers are owed.
    outstanding: BTreeMap<i64, u32>,
    /// Connection ids this client's current link authenticated.
    authenticated: BTreeSet<String>,
    sessions: Vec<(String, String)>,
    vms: Vec<(String, String, String)>,
    lifecycle: BTreeMap<String, VmLifecycleState>,
    late_answers: Vec<LateAnswer>,
    /// CreateVm requests in flight whose config allows the filesystem.
    fs_creates: BTreeSet<i64>,
    /// Reference model of each fs-enabled VM's files under /tmp: path → content.
    models: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// What each in-flight filesystem request must answer, by request id.
    fs_expectations: BTreeMap<i64, FsExpect>,
    /// Last successfully flushed model per persistence key.
    stored: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The processes this host started and what it expects of them.
    processes: Processes,
    host_dirs: HostDirs,
}

/// The answer the reference model predicts for a filesystem request.
#[derive(Debug)]
enum FsExpect {
    Written,
    Content(Option<Vec<u8>>),
    Removed(bool),
    Exists(bool),
    /// A flush of this VM's model, as it was when sent, under a key.
    Flushed {
        key: String,
        snapshot: BTreeMap<String, Vec<u8>>,
    },
    /// A load of `key` into `vm`.
    Loaded {
        key: String,
        vm: String,
    },
}

/// Persistence keys the clients share between their VMs (loading one VM's state into another).
const PERSISTENCE_KEYS: usize = 2;

impl Client {
    /// The turmoil host name of client `index`.
    pub fn name_of(index: usize) -> String {
        format!("client-{index}")
    }

    pub fn new(index: usize, shared: SharedRef, timers: Timers, seed: u64, swarm: Swarm) -> Self {
        let name = Client::name_of(index);
        Self {
            processes: Processes::new(name.clone(), shared.clone()),
            name,
            shared,
            timers,
            rng: StdRng::seed_from_u64(seed.wrapping_add(index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            swarm,
            connection: None,
            next_request_id: 0,
            outstanding: BTreeMap::new(),
            authenticated: BTreeSet::new(),
            sessions: Vec::new(),
            vms: Vec::new(),
            lifecycle: BTreeMap::new(),
            late_answers: Vec::new(),
            fs_creates: BTreeSet::new(),
            models: BTreeMap::new(),
            fs_expectations: BTreeMap::new(),
            stored: BTreeMap::new(),
            host_dirs: HostDirs::default(),
        }
    }

    pub async fn run(mut self, steps: usize) -> turmoil::Result {
        for _ in 0..steps {
            if self.connection.is_none() {
                self.connect().await?;
            }
            self.step().await?;
            self.settle(STEP_SETTLE).await;
        }
        // Liveness: no more faults (no new one on the egress path either); every request still
        // owed an answer must get one, and every process must finish once it can.
        self.shared.borrow_mut().egress.over = true;
        self.settle(LIVENESS_WAIT).await;
        if !self.outstanding.is_empty() {
            let ids: Vec<_> = self.outstanding.keys().collect();
            self.violation(format!("requests never answered after {LIVENESS_WAIT:?}: {ids:?}"));
        }
        self.wind_down_processes().await?;
        self.connection = None;
        self.shared.borrow_mut().clients_done += 1;
        Ok(())
    }

    /// Lets every running process finish (stdin closed, scripted loops killed) and waits, at
    /// most [`LIVENESS_WAIT`] of simulated time after the egress path's last fault ends, for
    /// each one's exit (a fetch may wait out a partition; a connect held past the kernel's
    /// timeout fails at it).
    async fn wind_down_processes(&mut self) -> turmoil::Result {
        if self.processes.running().is_empty() {
            return Ok(());
        }
        while let Some(step) = self.processes.wind_down(self.next_request_id + 1) {
            let Some((conn, session, _)) = self.vms.iter().find(|(_, _, v)| *v == step.vm).cloned() else { continue };
            self.send(OwnershipScope::vm(conn, session, step.vm), step.payload).await?;
        }
        let deadline = turmoil::elapsed().max(self.shared.borrow().egress.quiet_from()) + LIVENESS_WAIT;
        while !self.processes.running().is_empty() && self.connection.is_some() && turmoil::elapsed() < deadline {
            self.settle(Duration::from_millis(50)).await;
        }
        let running = self.processes.running();
        if self.connection.is_some() && !running.is_empty() {
            self.violation(format!("processes never finished after {LIVENESS_WAIT:?}: {running:?}"));
        } else if self.connection.is_some() {
            self.shared.borrow_mut().reached("every_process_finished");
        }
        Ok(())
    }

    fn violation(&self, message: String) {
        let elapsed = turmoil::elapsed();
        self.shared.borrow_mut().violation(format!("[{} at {elapsed:?}] {message}", self.name));
    }

    async fn connect(&mut self) -> turmoil::Result {
        let socket = loop {
            match TcpStream::connect(("sidecar", PORT)).await {
                Ok(socket) => break socket,
                Err(_) => self.timers.sleep(Duration::from_millis(10)).await,
            }
        };
        let (mut reader, writer) = socket.into_split();
        let (frames_in, frames) = mpsc::unbounded_channel();
        let paused = Rc::new(Cell::new(false));
        let reader_paused = paused.clone();
        let timers = self.timers.clone();
        tokio::task::spawn_local(async move {
            let mut decoder = schema::FrameDecoder::new(schema::DEFAULT_MAX_FRAME_BYTES);
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                while reader_paused.get() {
                    timers.sleep(Duration::from_millis(5)).await;
                }
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        for item in decoder.feed(buffer.get(..n).unwrap_or_default()) {
                            if frames_in.send(item).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        self.connection = Some(Connection { writer, frames, paused });
        self.outstanding.clear();
        self.authenticated.clear();
        self.sessions.clear();
        self.vms.clear();
        self.models.clear();
        self.fs_expectations.clear();
        self.fs_creates.clear();
        self.processes.clear();
        self.host_dirs.clear();
        Ok(())
    }

    /// One random action.
    async fn step(&mut self) -> turmoil::Result {
        if self.authenticated.is_empty() {
            return self.send(OwnershipScope::connection("client-hint"), authenticate(TOKEN)).await;
        }
        let roll = self.rng.random_range(0..100u32);
        let swarm = self.swarm;
        match roll {
            0..=9 => {
                let conn = self.any_connection();
                self.send(OwnershipScope::connection(conn), open_session()).await
            }
            10..=29 => {
                let Some((conn, session)) = self.any_session() else { return Ok(()) };
                let configs = configs();
                let config = configs.get(self.rng.random_range(0..configs.len())).copied().unwrap_or("{}");
                let payload = create_vm(config);
                if config == host_config() {
                    self.host_dirs.creating(self.next_request_id + 1);
                }
                if config == FS_CONFIG {
                    self.fs_creates.insert(self.next_request_id + 1);
                }
                for kind in VmKind::ALL {
                    if config == proc_config(kind) {
                        self.processes.creating(self.next_request_id + 1, kind);
                    }
                }
                self.send(OwnershipScope::session(conn, session), payload).await
            }
            30..=41 => {
                let Some(scope) = self.any_vm() else { return Ok(()) };
                let timeout_ms = self.rng.random_range(50..600);
                self.send(scope, register_toolkit(timeout_ms)).await
            }
            42..=51 => {
                let Some(scope) = self.any_vm() else { return Ok(()) };
                // A new mount list would take a host directory VM's `/host` away from its model.
                if self.host_dirs.is_host_vm(scope.vm_id().unwrap_or_default()) {
                    return Ok(());
                }
                let plugin = if self.rng.random_bool(0.8) { "memory" } else { "nfs" };
                self.send(scope, configure(plugin)).await
            }
            52..=61 => {
                let Some(scope) = self.any_vm() else { return Ok(()) };
                self.send(scope, dispose()).await
            }
            62..=69 => {
                // Probing: ids this client may not own. Must be refused without revealing others.
                let conn = self.any_connection();
                let scope = OwnershipScope::vm(
                    conn,
                    format!("session-{}", self.rng.random_range(1..8)),
                    format!("vm-{}", self.rng.random_range(1..12)),
                );
                // A guess may hit one of its own VMs; a host directory VM keeps its mount.
                if self.host_dirs.is_host_vm(scope.vm_id().unwrap_or_default()) {
                    return Ok(());
                }
                self.send(scope, configure("memory")).await
            }
            70..=73 => {
                let conn = self.any_connection();
                let envelope = ExtEnvelope { namespace: "dev.sim.unknown".into(), payload: vec![1, 2, 3] };
                self.send(OwnershipScope::connection(conn), RequestPayload::ExtEnvelope(envelope)).await
            }
            74..=79 if self.rng.random_bool(swarm.corrupt_rate) => self.send_corrupted().await,
            80..=84 if self.rng.random_bool(swarm.duplicate_rate) => self.send_duplicated().await,
            85..=87 if self.rng.random_bool(swarm.drop_rate) => self.drop_mid_frame().await,
            88..=91 if self.rng.random_bool(swarm.pause_rate) => {
                self.pause_reading().await;
                Ok(())
            }
            92 if self.rng.random_bool(swarm.limit_rate) => self.exhaust_limits().await,
            97..=99 => self.process_op().await,
            // 93..=96, and every fault the swarm did not draw: file, persistence, process and
            // host directory work.
            _ => match self.rng.random_range(0..3u32) {
                0 => self.filesystem_op().await,
                1 => self.process_op().await,
                _ => self.host_dir_op().await,
            },
        }
    }

    /// A process request on a process VM (start, stdin, close, kill).
    async fn process_op(&mut self) -> turmoil::Result {
        let roll = self.rng.random_range(0..100u32);
        let pick = self.rng.random_range(0..64usize);
        let len = self.rng.random_range(1..200usize);
        let bytes: Vec<u8> = (0..len)
            .map(|_| if self.rng.random_bool(0.1) { b'\n' } else { self.rng.random_range(b'a'..=b'z') })
            .collect();
        let Some(step) = self.processes.step(roll, pick, bytes, self.next_request_id + 1) else { return Ok(()) };
        let Some((conn, session, _)) = self.vms.iter().find(|(_, _, v)| *v == step.vm).cloned() else {
            return Ok(());
        };
        self.send(OwnershipScope::vm(conn, session, step.vm), step.payload).await
    }

    /// A mount or a file operation in a host directory VM.
    async fn host_dir_op(&mut self) -> turmoil::Result {
        let pick = self.rng.random_range(0..64usize);
        let roll = self.rng.random_range(0..100u32);
        let bytes: Vec<u8> = (0..self.rng.random_range(0..64)).map(|_| self.rng.random_range(b'a'..=b'z')).collect();
        let name = self.name.clone();
        let Some(step) = self.host_dirs.step(&name, pick, roll, bytes, self.next_request_id + 1) else { return Ok(()) };
        let Some((conn, session, _)) = self.vms.iter().find(|(_, _, v)| *v == step.vm).cloned() else {
            return Ok(());
        };
        self.send(OwnershipScope::vm(conn, session, step.vm), step.payload).await
    }

    /// A file operation on an fs-enabled VM; the reference model predicts its answer.
    async fn filesystem_op(&mut self) -> turmoil::Result {
        let vms: Vec<String> = self.models.keys().cloned().collect();
        let Some(vm) = vms.get(self.rng.random_range(0..vms.len().max(1))).cloned() else { return Ok(()) };
        let Some((conn, session, _)) = self.vms.iter().find(|(_, _, v)| *v == vm).cloned() else { return Ok(()) };
        let path = FS_PATHS.get(self.rng.random_range(0..FS_PATHS.len())).copied().unwrap_or("/tmp/a");
        let model = self.models.entry(vm.clone()).or_default();
        // Four in eight are file calls, three a flush (half of them read back at once: a flush
        // reported done must load), one a load.
        let roll = self.rng.random_range(0..8u32);
        if roll >= 4 {
            let key = format!("{}-{}", self.name, self.rng.random_range(0..PERSISTENCE_KEYS));
            let flush = roll < 7;
            self.persistence_op(conn.clone(), session.clone(), vm.clone(), &key, flush).await?;
            if flush && self.rng.random_bool(0.5) {
                self.persistence_op(conn, session, vm, &key, false).await?;
            }
            return Ok(());
        }
        let (operation, content, expect) = match roll {
            0 => {
                let bytes: Vec<u8> =
                    (0..self.rng.random_range(0..64)).map(|_| self.rng.random_range(b'a'..=b'z')).collect();
                model.insert(path.to_owned(), bytes.clone());
                let text = String::from_utf8(bytes).unwrap_or_default();
                (GuestFilesystemOperation::WriteFile, Some(text), FsExpect::Written)
            }
            1 => (GuestFilesystemOperation::ReadFile, None, FsExpect::Content(model.get(path).cloned())),
            2 => (GuestFilesystemOperation::RemoveFile, None, FsExpect::Removed(model.remove(path).is_some())),
            _ => (GuestFilesystemOperation::Exists, None, FsExpect::Exists(model.contains_key(path))),
        };
        let payload = RequestPayload::GuestFilesystemCallRequest(GuestFilesystemCallRequest {
            encoding: content.as_ref().map(|_| RootFilesystemEntryEncoding::Utf8),
            content,
            ..GuestFilesystemCallRequest::new(operation, path)
        });
        self.fs_expectations.insert(self.next_request_id + 1, expect);
        self.send(OwnershipScope::vm(conn, session, vm), payload).await
    }

    /// Flushes the VM's filesystem under a key, or loads a key into it; waits for the answer, as
    /// later operations depend on it.
    async fn persistence_op(
        &mut self,
        conn: String,
        session: String,
        vm: String,
        key: &str,
        flush: bool,
    ) -> turmoil::Result {
        let key = key.to_owned();
        let (payload, expect) = if flush {
            let snapshot = self.models.get(&vm).cloned().unwrap_or_default();
            let payload = RequestPayload::PersistenceFlushRequest(PersistenceFlushRequest {
                key: key.clone(),
                payload_size_bytes: 0,
            });
            (payload, FsExpect::Flushed { key, snapshot })
        } else {
            let payload = RequestPayload::PersistenceLoadRequest(PersistenceLoadRequest { key: key.clone() });
            (payload, FsExpect::Loaded { key, vm: vm.clone() })
        };
        let id = self.next_request_id + 1;
        self.fs_expectations.insert(id, expect);
        self.send(OwnershipScope::vm(conn, session, vm), payload).await?;
        let deadline = turmoil::elapsed() + LIVENESS_WAIT;
        while self.outstanding.contains_key(&id) && self.connection.is_some() && turmoil::elapsed() < deadline {
            self.settle(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Compares a filesystem answer with the model's prediction.
    fn check_filesystem(&mut self, id: i64, payload: &ResponsePayload) {
        let Some(expect) = self.fs_expectations.remove(&id) else { return };
        let ok = match (&expect, payload) {
            // A VM disposed meanwhile answers for itself; nothing to compare.
            (_, ResponsePayload::RejectedResponse(rejected)) if rejected.message.contains("unknown sidecar VM") => true,
            (FsExpect::Written, ResponsePayload::GuestFilesystemResultResponse(_)) => true,
            (FsExpect::Content(Some(bytes)), ResponsePayload::GuestFilesystemResultResponse(result)) => {
                result.content.as_deref().map(str::as_bytes) == Some(bytes.as_slice())
            }
            (FsExpect::Content(None) | FsExpect::Removed(false), ResponsePayload::RejectedResponse(rejected)) => {
                rejected.message.starts_with("ENOENT")
            }
            (FsExpect::Removed(true), ResponsePayload::GuestFilesystemResultResponse(_)) => true,
            (FsExpect::Exists(exists), ResponsePayload::GuestFilesystemResultResponse(result)) => {
                result.exists == Some(*exists)
            }
            (FsExpect::Flushed { key, snapshot }, ResponsePayload::PersistenceFlushedResponse(_)) => {
                self.stored.insert(key.clone(), snapshot.clone());
                true
            }
            (FsExpect::Flushed { .. }, ResponsePayload::RejectedResponse(rejected)) if rejected.code == "io_error" => {
                // The write failed (or the disk crashed in the middle of it): the previously
                // flushed state must still be what loads. A load never fails: the disk's reads
                // do not, and a state that does not decode is a lost or torn flush.
                self.shared.borrow_mut().reached("store_failure");
                true
            }
            (FsExpect::Loaded { key, vm }, ResponsePayload::PersistenceStateResponse(state)) => {
                match (state.found, self.stored.get(key).cloned()) {
                    (true, Some(snapshot)) => {
                        self.models.insert(vm.clone(), snapshot);
                        self.shared.borrow_mut().reached("state_restored");
                        true
                    }
                    (false, None) => true,
                    _ => false,
                }
            }
            _ => false,
        };
        if ok {
            self.shared.borrow_mut().reached("fs_matched_model");
        } else {
            self.violation(format!("filesystem answer {id} differs from the model ({expect:?}): {payload:?}"));
        }
    }

    fn any_connection(&mut self) -> String {
        let all: Vec<&String> = self.authenticated.iter().collect();
        all.get(self.rng.random_range(0..all.len().max(1))).map_or_else(String::new, |c| (*c).clone())
    }

    fn any_session(&mut self) -> Option<(String, String)> {
        if self.sessions.is_empty() {
            return None;
        }
        self.sessions.get(self.rng.random_range(0..self.sessions.len())).cloned()
    }

    fn any_vm(&mut self) -> Option<OwnershipScope> {
        if self.vms.is_empty() {
            return None;
        }
        let (conn, session, vm) = self.vms.get(self.rng.random_range(0..self.vms.len()))?.clone();
        Some(OwnershipScope::vm(conn, session, vm))
    }

    fn frame(&mut self, ownership: OwnershipScope, payload: RequestPayload) -> (i64, Vec<u8>) {
        self.next_request_id += 1;
        let id = self.next_request_id;
        let frame = request_frame(id, ownership, payload);
        let bytes = schema::encode_frame(&frame, schema::DEFAULT_MAX_FRAME_BYTES).unwrap_or_else(|error| {
            self.violation(format!("the workload built an invalid frame: {error}"));
            Vec::new()
        });
        (id, bytes)
    }

    async fn send(&mut self, ownership: OwnershipScope, payload: RequestPayload) -> turmoil::Result {
        let (id, bytes) = self.frame(ownership, payload);
        *self.outstanding.entry(id).or_default() += 1;
        self.write(&bytes).await
    }

    async fn write(&mut self, bytes: &[u8]) -> turmoil::Result {
        let Some(connection) = self.connection.as_mut() else { return Ok(()) };
        if connection.writer.write_all(bytes).await.is_err() {
            self.connection = None;
        }
        Ok(())
    }

    /// A request damaged in transit: bits flipped in its payload (the last bytes of an
    /// OpenSession request). Its header is intact, so exactly one answer is still owed — a
    /// rejection by id if the body no longer decodes.
    async fn send_corrupted(&mut self) -> turmoil::Result {
        let conn = self.any_connection();
        let (id, mut bytes) = self.frame(OwnershipScope::connection(conn), open_session());
        let index = bytes.len().saturating_sub(self.rng.random_range(1..=OPEN_SESSION_PAYLOAD_BYTES));
        if let Some(byte) = bytes.get_mut(index) {
            *byte ^= 1 << self.rng.random_range(0..8);
        }
        *self.outstanding.entry(id).or_default() += 1;
        self.shared.borrow_mut().reached("corrupted_frame");
        self.write(&bytes).await
    }

    async fn send_duplicated(&mut self) -> turmoil::Result {
        let conn = self.any_connection();
        let (id, bytes) = self.frame(OwnershipScope::connection(conn), open_session());
        *self.outstanding.entry(id).or_default() += 2;
        self.shared.borrow_mut().reached("duplicated_frame");
        self.write(&bytes).await?;
        self.write(&bytes).await
    }

    /// A host crash in the middle of a frame: half a frame, then the connection is gone.
    async fn drop_mid_frame(&mut self) -> turmoil::Result {
        let conn = self.any_connection();
        let (_, bytes) = self.frame(OwnershipScope::connection(conn), open_session());
        let half = bytes.get(..bytes.len() / 2).unwrap_or_default().to_vec();
        self.write(&half).await?;
        self.shared.borrow_mut().reached("connection_dropped_mid_frame");
        // Everything this link owned is gone with it; nothing more is owed.
        self.connection = None;
        self.outstanding.clear();
        self.authenticated.clear();
        self.fs_expectations.clear();
        self.models.clear();
        self.processes.clear();
        self.host_dirs.clear();
        Ok(())
    }

    async fn pause_reading(&mut self) {
        let Some(connection) = self.connection.as_ref() else { return };
        connection.paused.set(true);
        self.shared.borrow_mut().reached("reader_paused");
        self.timers.sleep(Duration::from_millis(self.rng.random_range(50..400))).await;
        if let Some(connection) = self.connection.as_ref() {
            connection.paused.set(false);
        }
    }

    /// Authenticates past the per-stream bound (idle connections are reclaimed to make room, so
    /// this mostly succeeds), then asks a VM for more mounts than it may have (always refused).
    async fn exhaust_limits(&mut self) -> turmoil::Result {
        for _ in 0..=kernel::dispatch::MAX_CONNECTIONS_PER_STREAM {
            self.send(OwnershipScope::connection("client-hint"), authenticate(TOKEN)).await?;
        }
        let Some((conn, session, vm)) = self.vms.first().cloned() else { return Ok(()) };
        let mounts = (0..=kernel::dispatch::MAX_MOUNTS).map(|n| MountDescriptor::memory(format!("/m/{n}"))).collect();
        let request = configure_mounts(mounts);
        self.send(OwnershipScope::vm(conn, session, vm), request).await
    }

    /// Processes frames until nothing is owed or `wait` passes; sends due late answers.
    async fn settle(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.send_due_late_answers().await;
            if self.outstanding.is_empty() && self.late_answers.is_empty() && wait == STEP_SETTLE {
                return;
            }
            let Some(connection) = self.connection.as_mut() else { return };
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return;
            }
            let step = remaining.min(Duration::from_millis(20));
            match self.timers.timeout(step, connection.frames.recv()).await {
                Ok(Some(Decoded::Frame(frame))) => self.on_frame(frame).await,
                Ok(Some(Decoded::Error { error, .. })) => self.violation(format!("sidecar sent a bad frame: {error}")),
                Ok(None) => {
                    self.connection = None;
                    return;
                }
                Err(_) => {
                    if self.outstanding.is_empty() && self.late_answers.is_empty() {
                        return;
                    }
                }
            }
        }
    }

    async fn send_due_late_answers(&mut self) {
        let now = turmoil::elapsed();
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.late_answers).into_iter().partition(|a| a.due <= now);
        self.late_answers = later;
        for answer in due {
            self.shared.borrow_mut().reached("late_callback_answer");
            let _ = self.answer(&answer.request, callback_result(&answer.request, true)).await;
        }
    }

    async fn on_frame(&mut self, frame: ProtocolFrame) {
        if let Err(error) = schema::validate_frame(&frame) {
            self.violation(format!("sidecar sent an invalid frame ({error}): {frame:?}"));
        }
        match frame {
            ProtocolFrame::ResponseFrame(response) => self.on_response(response),
            ProtocolFrame::EventFrame(event) => self.on_event(event),
            ProtocolFrame::SidecarRequestFrame(request) => self.on_sidecar_request(request).await,
            other => self.violation(format!("sidecar sent a host-side frame: {}", other.member_name())),
        }
    }

    fn owns(&self, scope: &OwnershipScope) -> bool {
        let connection = scope.connection_id();
        self.authenticated.contains(connection) || connection == "client-hint" || connection == "unknown"
    }

    fn on_response(&mut self, response: ResponseFrame) {
        let id = response.request_id;
        match self.outstanding.get_mut(&id) {
            Some(owed) => {
                *owed -= 1;
                if *owed == 0 {
                    self.outstanding.remove(&id);
                }
            }
            None => self.violation(format!("response to a request never sent or already answered: {id}")),
        }
        if let ResponsePayload::AuthenticatedResponse(auth) = &response.payload {
            self.authenticated.insert(auth.connection_id.clone());
        }
        if !self.owns(&response.ownership) {
            self.violation(format!("response {id} carries a foreign owner {:?}", response.ownership));
        }
        self.check_filesystem(id, &response.payload);
        for violation in self.processes.on_response(id, &response.payload) {
            self.violation(violation);
        }
        let shared = self.shared.clone();
        let reached = &mut |point| shared.borrow_mut().reached(point);
        for violation in self.host_dirs.on_response(id, &response.payload, reached) {
            self.violation(violation);
        }
        let fs_vm = self.fs_creates.remove(&id);
        match response.payload {
            ResponsePayload::SessionOpenedResponse(opened) => {
                self.sessions.push((opened.owner_connection_id, opened.session_id));
            }
            ResponsePayload::VmCreatedResponse(created) => {
                let scope = &response.ownership;
                self.vms.push((
                    scope.connection_id().to_owned(),
                    scope.session_id().unwrap_or_default().to_owned(),
                    created.vm_id.clone(),
                ));
                if fs_vm {
                    self.models.insert(created.vm_id, BTreeMap::new());
                }
                self.shared.borrow_mut().reached("vm_created");
            }
            ResponsePayload::RejectedResponse(rejected) => {
                let mut shared = self.shared.borrow_mut();
                shared.reached("request_rejected");
                if rejected.code == "limit_exceeded" {
                    shared.reached("limit_hit");
                }
            }
            _ => {}
        }
    }

    fn on_event(&mut self, event: EventFrame) {
        if !self.owns(&event.ownership) {
            self.violation(format!("event for a foreign owner {:?}", event.ownership));
        }
        let vm = event.ownership.vm_id().unwrap_or_default().to_owned();
        let shared = self.shared.clone();
        let mut reached = |point| shared.borrow_mut().reached(point);
        let violations = if self.host_dirs.is_host_vm(&vm) {
            self.host_dirs.on_event(&event.payload, &mut reached)
        } else {
            self.processes.on_event(&vm, &event.payload, &mut reached)
        };
        for violation in violations {
            self.violation(violation);
        }
        match event.payload {
            EventPayload::VmLifecycleEvent(lifecycle) => {
                let vm = event.ownership.vm_id().unwrap_or_default().to_owned();
                let previous = self.lifecycle.get(&vm).copied();
                let expected = match lifecycle.state {
                    VmLifecycleState::Creating => previous.is_none(),
                    VmLifecycleState::Ready => previous == Some(VmLifecycleState::Creating),
                    VmLifecycleState::Disposing => previous == Some(VmLifecycleState::Ready),
                    VmLifecycleState::Disposed => previous == Some(VmLifecycleState::Disposing),
                    VmLifecycleState::Failed => previous == Some(VmLifecycleState::Creating),
                };
                if !expected {
                    self.violation(format!("VM {vm} went from {previous:?} to {:?}", lifecycle.state));
                }
                self.lifecycle.insert(vm.clone(), lifecycle.state);
                if lifecycle.state == VmLifecycleState::Disposed {
                    self.vms.retain(|(_, _, v)| *v != vm);
                    self.models.remove(&vm);
                    self.host_dirs.disposed(&vm);
                    self.shared.borrow_mut().reached("vm_disposed");
                }
            }
            EventPayload::ProcessOutputEvent(_) | EventPayload::ProcessExitedEvent(_) => {}
            // A fetch's connection out, which its VM's policy and loopbackExemptPorts allow.
            EventPayload::StructuredEvent(event) if event.name == "network.connect" => {
                let destination = event.detail.get("destination").map(String::as_str);
                let decision = event.detail.get("decision").map(String::as_str);
                let process = event.detail.get("processId").map(String::as_str).unwrap_or_default();
                if destination != Some(WEB_DESTINATION) || decision != Some("allow") || !process.starts_with("wfetch-")
                {
                    self.violation(format!("unexpected connection out: {:?}", event.detail));
                }
            }
            // Its end.
            EventPayload::StructuredEvent(event) if event.name == "network.close" => {
                if event.detail.get("destination").map(String::as_str) != Some(WEB_DESTINATION) {
                    self.violation(format!("unexpected connection out closed: {:?}", event.detail));
                }
            }
            EventPayload::ExtEnvelope(envelope) if envelope.namespace == kernel::dispatch::PROTOCOL_ERROR_NAMESPACE => {
                self.shared.borrow_mut().reached("protocol_error_event");
            }
            other => self.violation(format!("unexpected event {}", other.member_name())),
        }
    }

    async fn on_sidecar_request(&mut self, request: SidecarRequestFrame) {
        if !self.owns(&request.ownership) {
            self.violation(format!("sidecar request for a foreign owner {:?}", request.ownership));
        }
        let roll = self.rng.random_range(0..100u32);
        match &request.payload {
            SidecarRequestPayload::HostCallbackRequest(call) => match roll {
                0..=49 => {
                    let _ = self.answer(&request, callback_result(&request, true)).await;
                }
                50..=64 => {
                    let _ = self.answer(&request, callback_result(&request, false)).await;
                }
                65..=84 => {}
                _ => {
                    let due = turmoil::elapsed() + Duration::from_millis(call.timeout_ms + 50);
                    self.late_answers.push(LateAnswer { due, request });
                }
            },
            SidecarRequestPayload::ExtEnvelope(envelope) => {
                let decision = match roll {
                    0..=39 => Some("allow"),
                    40..=69 => Some("deny"),
                    _ => None,
                };
                if let Some(decision) = decision {
                    let payload = SidecarResponsePayload::ExtEnvelope(ExtEnvelope {
                        namespace: envelope.namespace.clone(),
                        payload: format!(r#"{{"decision":"{decision}"}}"#).into_bytes(),
                    });
                    let _ = self.answer(&request, payload).await;
                }
            }
            SidecarRequestPayload::JsBridgeCallRequest(_) => self.violation("unexpected JS bridge call".into()),
        }
    }

    async fn answer(&mut self, request: &SidecarRequestFrame, payload: SidecarResponsePayload) -> turmoil::Result {
        let frame = ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
            schema: ProtocolSchema::current(),
            request_id: request.request_id,
            ownership: request.ownership.clone(),
            payload,
        });
        match schema::encode_frame(&frame, schema::DEFAULT_MAX_FRAME_BYTES) {
            Ok(bytes) => self.write(&bytes).await,
            Err(error) => {
                self.violation(format!("cannot encode an answer: {error}"));
                Ok(())
            }
        }
    }
}

fn callback_result(request: &SidecarRequestFrame, ok: bool) -> SidecarResponsePayload {
    let invocation_id = match &request.payload {
        SidecarRequestPayload::HostCallbackRequest(call) => call.invocation_id.clone(),
        _ => String::new(),
    };
    SidecarResponsePayload::HostCallbackResultResponse(HostCallbackResultResponse {
        invocation_id,
        result: ok.then(|| "{\"echo\":true}".to_owned()),
        error: (!ok).then(|| "host tool failed".to_owned()),
    })
}

/// Where a fetch's connection out goes: the host's loopback, on `web`'s port.
const WEB_DESTINATION: &str = "tcp://127.0.0.1:8080";
const _: () = assert!(crate::web::WEB_PORT == 8080, "WEB_DESTINATION names web's port");

/// The token the simulated hosts present (the simulated sidecar expects none in particular).
const TOKEN: &str = "token";

fn configure(plugin: &str) -> RequestPayload {
    configure_mounts(vec![mount("/data", plugin, "{}", false)])
}

fn register_toolkit(timeout_ms: u64) -> RequestPayload {
    let (toolkit, tool) = SIM_CALLBACK.split_once(':').unwrap_or(("sim", "echo"));
    RequestPayload::RegisterHostCallbacksRequest(RegisterHostCallbacksRequest {
        name: toolkit.into(),
        description: "simulated tools".into(),
        command_aliases: vec![toolkit.into()],
        registry_command_aliases: vec![],
        callbacks: BTreeMap::from([(
            tool.to_owned(),
            RegisteredHostCallbackDefinition {
                description: "echoes".into(),
                input_schema: "{}".into(),
                timeout_ms: Some(timeout_ms),
                examples: vec![],
            },
        )]),
    })
}
