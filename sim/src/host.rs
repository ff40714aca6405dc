//! The simulated sidecar: the production kernel behind simulated TCP connections, one kernel
//! stream per connection. Its clock is the simulation's (plus injected forward jumps), and it
//! plays the guests: it invokes host callbacks and ASK permission checks on live VMs.

use crate::shared::{KernelCounts, SharedRef};
use crate::Swarm;
use kernel::dispatch::{HostCallbackOutcome, PermissionCheck, PromptOutcome, PromptTicket};
use kernel::host::store::{MemoryStore, Store, StoreError};
use kernel::policy::permissions::Capability;
use kernel::{Now, Sidecar, SidecarConfig, StreamId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::script::ScriptEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use turmoil::net::{TcpListener, TcpStream};

pub const PORT: u16 = 7000;
/// How often the simulated guests act (invoke a callback, hit an ASK rule).
const GUEST_INTERVAL: Duration = Duration::from_millis(25);
/// The callback every simulated toolkit registers.
pub const SIM_CALLBACK: &str = "sim:echo";

enum HostEvent {
    Accepted(TcpStream),
    Bytes(StreamId, Vec<u8>),
    Closed(StreamId),
}

/// Runs the sidecar host until the simulation ends.
pub async fn run(shared: SharedRef, config: SidecarConfig, swarm: Swarm, seed: u64) -> turmoil::Result {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    let (events, mut inbox) = mpsc::unbounded_channel();
    let accept_events = events.clone();
    tokio::task::spawn_local(async move {
        while let Ok((socket, _)) = listener.accept().await {
            if accept_events.send(HostEvent::Accepted(socket)).is_err() {
                return;
            }
        }
    });
    let store_shared = shared.clone();
    let mut host = Host {
        sidecar: Sidecar::new(config)
            .with_store(Arc::new(FlakyStore::new(seed, swarm.store_fail_rate, store_shared)))
            .with_guest_engine(Arc::new(guest_engine())),
        writers: BTreeMap::new(),
        shared,
        rng: StdRng::seed_from_u64(seed ^ 0x005e_ed0f_51de),
        swarm,
        clock_offset_ms: 0,
        invocations: Vec::new(),
        prompts: Vec::new(),
    };
    loop {
        let next = tokio::time::sleep(GUEST_INTERVAL);
        tokio::select! {
            event = inbox.recv() => match event {
                Some(HostEvent::Accepted(socket)) => host.accept(socket, events.clone()),
                Some(HostEvent::Bytes(stream, bytes)) => {
                    let now = host.now();
                    host.sidecar.handle_bytes(stream, &bytes, now);
                }
                Some(HostEvent::Closed(stream)) => {
                    let now = host.now();
                    host.sidecar.close_stream(stream, now);
                    host.writers.remove(&stream);
                }
                None => return Ok(()),
            },
            () = next => host.guest_turn(),
        }
        let now = host.now();
        if host.sidecar.next_deadline().is_some_and(|deadline| deadline <= now.monotonic_ms) {
            host.sidecar.tick(now);
        }
        host.collect_outcomes();
        host.route_outputs();
        // The scheduler's cached view of every VM must match the VMs: a stale one would leave
        // a process parked forever.
        host.sidecar.assert_schedule_current();
    }
}

struct Host {
    sidecar: Sidecar,
    writers: BTreeMap<StreamId, mpsc::UnboundedSender<Vec<u8>>>,
    shared: SharedRef,
    rng: StdRng,
    swarm: Swarm,
    clock_offset_ms: u64,
    invocations: Vec<String>,
    prompts: Vec<PromptTicket>,
}

impl Host {
    fn now(&self) -> Now {
        let elapsed = u64::try_from(turmoil::elapsed().as_millis()).unwrap_or(u64::MAX);
        let monotonic_ms = elapsed.saturating_add(self.clock_offset_ms);
        Now { monotonic_ms, wall_ms: 1_700_000_000_000 + monotonic_ms }
    }

    fn accept(&mut self, socket: TcpStream, events: mpsc::UnboundedSender<HostEvent>) {
        let Some(stream) = self.sidecar.open_stream() else { return };
        let (mut reader, mut writer) = socket.into_split();
        let (out, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
        self.writers.insert(stream, out);
        tokio::task::spawn_local(async move {
            while let Some(frame) = outbox.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        tokio::task::spawn_local(async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => {
                        let _ = events.send(HostEvent::Closed(stream));
                        return;
                    }
                    Ok(n) => {
                        let bytes = buffer.get(..n).unwrap_or_default().to_vec();
                        if events.send(HostEvent::Bytes(stream, bytes)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }

    /// The simulated guests act on a random live VM.
    fn guest_turn(&mut self) {
        let now = self.now();
        self.sidecar.tick(now);
        if self.rng.random_bool(self.swarm.clock_jump_rate) {
            self.clock_offset_ms += self.rng.random_range(100..5_000);
            self.shared.borrow_mut().reached("clock_jump");
        }
        let vms = self.sidecar.vms();
        if vms.is_empty() {
            return;
        }
        let Some(vm) = vms.get(self.rng.random_range(0..vms.len())) else { return };
        if self.rng.random_bool(0.5) {
            if let Ok(invocation) = self.sidecar.invoke_host_callback(&vm.vm_id, SIM_CALLBACK, "{\"n\":1}") {
                self.invocations.push(invocation);
            }
        } else if let Ok(PermissionCheck::Prompted(ticket)) =
            self.sidecar.check_permission(&vm.vm_id, Capability::FsWrite, "/tmp/sim")
        {
            self.prompts.push(ticket);
        }
    }

    fn collect_outcomes(&mut self) {
        let mut reached = Vec::new();
        let sidecar = &mut self.sidecar;
        self.invocations.retain(|invocation| match sidecar.take_host_callback_outcome(invocation) {
            None => true,
            Some(outcome) => {
                reached.push(match outcome {
                    HostCallbackOutcome::Result(_) => "callback_answered",
                    HostCallbackOutcome::Error(_) => "callback_error",
                    HostCallbackOutcome::TimedOut => "callback_timed_out",
                    HostCallbackOutcome::Cancelled => "vm_disposed_mid_request",
                });
                false
            }
        });
        self.prompts.retain(|ticket| match sidecar.take_prompt_outcome(*ticket) {
            None => true,
            Some(PromptOutcome::Allowed) => {
                reached.push("ask_allowed");
                false
            }
            Some(PromptOutcome::Denied(message)) => {
                reached.push(if message.contains("timed out") {
                    "ask_timed_out"
                } else if message.contains("cancelled") {
                    "vm_disposed_mid_request"
                } else {
                    "ask_denied"
                });
                false
            }
        });
        let mut shared = self.shared.borrow_mut();
        for point in reached {
            shared.reached(point);
        }
    }

    fn route_outputs(&mut self) {
        let mut shared = self.shared.borrow_mut();
        while let Some(output) = self.sidecar.poll_output() {
            shared.record_output(output.stream.0, &output.bytes);
            if let Some(writer) = self.writers.get(&output.stream) {
                let _ = writer.send(output.bytes);
            }
        }
        shared.kernel = KernelCounts {
            streams: self.writers.len(),
            connections: self.sidecar.connection_count(),
            sessions: self.sidecar.session_count(),
            vms: self.sidecar.vms().len(),
            pending: self.sidecar.pending_sidecar_requests(),
        };
    }
}

/// A store whose writes fail now and then (a full disk, a crash before the rename): a failed
/// put changes nothing, and the clients check that the previous state still loads.
#[derive(Debug)]
struct FlakyStore {
    inner: MemoryStore,
    fail_rate: f64,
    rng: Mutex<StdRng>,
    failures: Mutex<u64>,
}

impl FlakyStore {
    fn new(seed: u64, fail_rate: f64, _shared: SharedRef) -> Self {
        Self {
            inner: MemoryStore::new(),
            fail_rate,
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x0000_5707_e000)),
            failures: Mutex::new(0),
        }
    }
}

impl Store for FlakyStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key, max_bytes)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let fail = self.rng.lock().map(|mut rng| rng.random_bool(self.fail_rate)).unwrap_or(false);
        if fail {
            if let Ok(mut failures) = self.failures.lock() {
                *failures += 1;
            }
            return Err(StoreError::Io("injected store failure".to_owned()));
        }
        self.inner.put(key, value)
    }
}

/// The script engine, with the wasmtime engine for the real guests. The wasmtime engine is
/// shared by every host of every seed: it holds only compiled code, so sharing it cannot carry
/// state from one run into another. Should it fail to start, `wcat` fails to run and every seed
/// that starts one reports the violation.
fn guest_engine() -> ScriptEngine {
    static WASMTIME: std::sync::OnceLock<Option<Arc<runtime_wasm::WasmEngine>>> = std::sync::OnceLock::new();
    let wasmtime = WASMTIME
        .get_or_init(|| runtime_wasm::WasmEngine::new(runtime_wasm::RuntimeConfig::default()).ok().map(Arc::new));
    match wasmtime {
        Some(engine) => ScriptEngine::new().with_modules(engine.clone()),
        None => ScriptEngine::new(),
    }
}
