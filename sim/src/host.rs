//! The simulated sidecar: the production kernel behind simulated TCP connections, one kernel
//! stream per connection. Its clock is the simulation's (plus injected forward jumps), and it
//! plays the guests: it invokes host callbacks and ASK permission checks on live VMs. It
//! performs the kernel's effects: the store's on a crashing disk, the network's on turmoil
//! (`egress`: the guests' connections out reach the `web` host), and it injects the faults of
//! the path to `web` (partitions that heal, and drops that reset what is open).

use crate::disk::CrashDisk;
use crate::egress::Egress;
use crate::hostdirs::HOST_ROOT;
use crate::shared::{KernelCounts, SharedRef};
use crate::timers::Timers;
use crate::web::WEB_HOST;
use crate::Swarm;
use kernel::dispatch::{HostCallbackOutcome, PermissionCheck, PromptOutcome, PromptTicket};
use kernel::host::effect::{Completion, Effect, EffectId};
use kernel::host::store::Store;
use kernel::{Now, Output, SidecarConfig, StreamId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::hostfs::{FakeHostFs, Faults};
use testkit::script::ScriptEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use transport::trace::{ActOutcome, GuestAct, TraceWriter};
use transport::{Driver, Input, Ports};
use turmoil::net::{TcpListener, TcpStream};

/// The sidecar's turmoil host.
pub const HOST_NAME: &str = "sidecar";
pub const PORT: u16 = 7000;
/// How often the simulated guests act (invoke a callback, hit an ASK rule).
const GUEST_INTERVAL: Duration = Duration::from_millis(25);
/// The callback every simulated toolkit registers.
pub const SIM_CALLBACK: &str = "sim:echo";

pub(crate) enum HostEvent {
    Accepted(TcpStream),
    Bytes(StreamId, Vec<u8>),
    Closed(StreamId),
    /// A network effect completed.
    Net(EffectId, Completion),
}

/// A fault on the path between the sidecar and `web`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathFault {
    /// Packets wait (held) and are delivered when it heals, as TCP's retransmissions would.
    Hold,
    /// Packets are lost: connects are refused, and the connections open when it starts are
    /// reset.
    Drop,
}

/// Shortest fault of the path to `web`, and longest drop.
const MIN_FAULT_MS: u64 = 50;
const MAX_DROP_MS: u64 = 2_000;

/// Runs the sidecar host until the simulation ends, writing every input and output to `trace`
/// if given.
pub async fn run(
    shared: SharedRef,
    timers: Timers,
    config: SidecarConfig,
    swarm: Swarm,
    seed: u64,
    trace: Option<TraceWriter>,
) -> turmoil::Result {
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
    let disk = Arc::new(CrashDisk::new(seed, swarm.store_fail_rate, swarm.store_crash_rate));
    // The host performs store effects itself, each after a latency the swarm draws.
    let host_fs = FakeHostFs::on_demand(HOST_ROOT, Faults::new(seed ^ 0x0000_0f00_d15c, swarm.host_fs_fail_per_mille));
    let ports = Ports {
        host_fs: Some(Arc::new(host_fs)),
        store: true,
        guest_engine: Some(Arc::new(guest_engine())),
        packages: None,
        python: Some(python_install()),
        programs: node_programs(),
        compile_effects: false,
        egress: true,
        host_call_effects: true,
    };
    let mut host = Host {
        driver: Driver::start(config, ports, trace)?,
        disk,
        effects: Vec::new(),
        outputs: Vec::new(),
        writers: BTreeMap::new(),
        shared,
        rng: StdRng::seed_from_u64(seed ^ 0x005e_ed0f_51de),
        swarm,
        clock_offset_ms: 0,
        invocations: Vec::new(),
        prompts: Vec::new(),
        egress: Egress::new(events.clone(), timers.clone()),
        egress_rng: StdRng::seed_from_u64(seed ^ 0x0e9e_55fa_0017),
        path_fault: None,
        next_fault_draw: Duration::ZERO,
        blackholed: false,
    };
    loop {
        let next = timers.sleep(GUEST_INTERVAL);
        // Biased: which branch wins when both are ready must not depend on tokio's own
        // (unseeded) randomness.
        tokio::select! {
            biased;
            event = inbox.recv() => match event {
                Some(HostEvent::Accepted(socket)) => host.accept(socket, events.clone())?,
                Some(HostEvent::Bytes(stream, bytes)) => host.apply(&Input::Bytes(stream, bytes))?,
                Some(HostEvent::Closed(stream)) => {
                    host.apply(&Input::CloseStream(stream))?;
                    host.writers.remove(&stream);
                }
                Some(HostEvent::Net(id, completion)) => {
                    if let Err(violation) = host.egress.completed(id) {
                        host.shared.borrow_mut().violation(violation);
                    }
                    host.apply(&Input::Completion(id, completion))?;
                }
                None => return Ok(()),
            },
            () = next => host.guest_turn()?,
        }
        host.path_faults();
        let now = host.now();
        if host.driver.sidecar().next_deadline().is_some_and(|deadline| deadline <= now.monotonic_ms) {
            host.apply(&Input::Tick)?;
        }
        host.complete_due_effects()?;
        host.collect_outcomes()?;
        host.route_outputs();
        // The scheduler's cached view of every VM must match the VMs: a stale one would leave
        // a process parked forever.
        host.driver.sidecar().assert_schedule_current();
    }
}

struct Host {
    /// The kernel, fed (and recorded) through the same driver the binary uses.
    driver: Driver,
    /// Frames produced and not yet routed to their connections.
    outputs: Vec<Output>,
    /// The store's disk, which checks its own property on every read.
    disk: Arc<CrashDisk>,
    /// Store effects the kernel asked for, each with the time (ms) it completes at.
    effects: Vec<(u64, EffectId, Effect)>,
    writers: BTreeMap<StreamId, mpsc::UnboundedSender<Vec<u8>>>,
    shared: SharedRef,
    rng: StdRng,
    swarm: Swarm,
    clock_offset_ms: u64,
    invocations: Vec<String>,
    prompts: Vec<PromptTicket>,
    /// The network effects' driver.
    egress: Egress,
    /// Draws the faults of the path to `web` (its own, so they do not shift other draws).
    egress_rng: StdRng,
    /// The fault on the path now, and when it ends.
    path_fault: Option<(PathFault, Duration)>,
    /// When the next draw of a fault on the path is due.
    next_fault_draw: Duration,
    /// The seed's blackhole (if it has one) has begun.
    blackholed: bool,
}

impl Host {
    fn now(&self) -> Now {
        let elapsed = u64::try_from(turmoil::elapsed().as_millis()).unwrap_or(u64::MAX);
        let monotonic_ms = elapsed.saturating_add(self.clock_offset_ms);
        Now { monotonic_ms, wall_ms: 1_700_000_000_000 + monotonic_ms }
    }

    /// Feeds one input at the current time; the store effects it asks for complete after a
    /// latency of up to the swarm's `max_store_latency_ms`, the network's when turmoil's
    /// sockets get there.
    fn apply(&mut self, input: &Input) -> turmoil::Result {
        let now = self.now();
        self.outputs.extend(self.driver.apply(input, now)?);
        for (id, effect) in self.driver.take_effects() {
            if effect.is_network() {
                if let Some(other) = self.egress.submit(id, effect) {
                    // Not simulated (names, datagrams): answered as by a driver without one.
                    self.egress.answer(id, other.perform(self.disk.as_ref() as &dyn Store));
                }
                continue;
            }
            let latency_ms = self.rng.random_range(0..=self.swarm.max_store_latency_ms);
            self.effects.push((now.monotonic_ms.saturating_add(latency_ms), id, effect));
        }
        Ok(())
    }

    /// Performs the store effects whose time has come, on the crashing disk, in the order of
    /// their times (then of their asking), and feeds their completions.
    fn complete_due_effects(&mut self) -> turmoil::Result {
        let now_ms = self.now().monotonic_ms;
        self.effects.sort_by_key(|(due_ms, id, _)| (*due_ms, *id));
        while self.effects.first().is_some_and(|(due_ms, _, _)| *due_ms <= now_ms) {
            let (_, id, effect) = self.effects.remove(0);
            if effect.is_store() && self.effects.iter().any(|(_, _, other)| other.is_store()) {
                self.shared.borrow_mut().reached("store_effects_overlapped");
            }
            let completion = effect.perform(self.disk.as_ref() as &dyn Store);
            self.apply(&Input::Completion(id, completion))?;
        }
        Ok(())
    }

    /// One guest act, answered.
    fn act(&mut self, act: GuestAct) -> Result<Option<ActOutcome>, Box<dyn std::error::Error>> {
        self.apply(&Input::Act(act))?;
        Ok(self.driver.take_act_outcome())
    }

    fn accept(&mut self, socket: TcpStream, events: mpsc::UnboundedSender<HostEvent>) -> turmoil::Result {
        let now = self.now();
        let Some(stream) = self.driver.open_stream(now)? else { return Ok(()) };
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
        Ok(())
    }

    /// Ends the fault on the path to `web` when its time has come, and draws whether one
    /// starts every [`GUEST_INTERVAL`] (checked after every event and guest turn: a busy loop
    /// may go a while without a guest turn).
    fn path_faults(&mut self) {
        let now = turmoil::elapsed();
        if now >= self.next_fault_draw {
            self.next_fault_draw = now + GUEST_INTERVAL;
            self.start_path_fault();
        }
        let Some((fault, until)) = self.path_fault else { return };
        if now < until {
            return;
        }
        match fault {
            PathFault::Hold => turmoil::release(HOST_NAME, WEB_HOST),
            PathFault::Drop => turmoil::repair(HOST_NAME, WEB_HOST),
        }
        self.path_fault = None;
        let mut shared = self.shared.borrow_mut();
        shared.egress.epoch += 1;
        shared.egress.until = None;
    }

    /// Maybe starts a fault on the path to `web`: a hold or a drop, or (first, in the seeds
    /// that have one) a hold longer than the kernel's connect timeout. None starts once a
    /// client is in its liveness phase.
    fn start_path_fault(&mut self) {
        if self.path_fault.is_some() || self.shared.borrow().egress.over {
            return;
        }
        let now = turmoil::elapsed();
        let (fault, duration_ms) = if !self.blackholed && self.swarm.egress_blackhole_ms > 0 {
            self.blackholed = true;
            (PathFault::Hold, self.swarm.egress_blackhole_ms)
        } else if self.egress_rng.random_bool(self.swarm.egress_drop_rate) {
            (PathFault::Drop, self.egress_rng.random_range(MIN_FAULT_MS..=MAX_DROP_MS))
        } else if self.egress_rng.random_bool(self.swarm.egress_hold_rate) {
            (
                PathFault::Hold,
                self.egress_rng.random_range(MIN_FAULT_MS..=self.swarm.max_egress_hold_ms.max(MIN_FAULT_MS)),
            )
        } else {
            return;
        };
        let until = now + Duration::from_millis(duration_ms);
        match fault {
            PathFault::Hold => turmoil::hold(HOST_NAME, WEB_HOST),
            PathFault::Drop => {
                turmoil::partition(HOST_NAME, WEB_HOST);
                self.egress.cut_all();
            }
        }
        self.path_fault = Some((fault, until));
        let mut shared = self.shared.borrow_mut();
        shared.egress.epoch += 1;
        shared.egress.until = Some(until);
    }

    /// The simulated guests act on a random live VM.
    fn guest_turn(&mut self) -> turmoil::Result {
        self.apply(&Input::Tick)?;
        if self.rng.random_bool(self.swarm.clock_jump_rate) {
            self.clock_offset_ms += self.rng.random_range(100..5_000);
            self.shared.borrow_mut().reached("clock_jump");
        }
        let vms = self.driver.sidecar().vms();
        if vms.is_empty() {
            return Ok(());
        }
        let Some(vm_id) = vms.get(self.rng.random_range(0..vms.len())).map(|vm| vm.vm_id.clone()) else {
            return Ok(());
        };
        if self.rng.random_bool(0.5) {
            let act = GuestAct::InvokeHostCallback {
                vm_id,
                callback: SIM_CALLBACK.to_owned(),
                input: "{\"n\":1}".to_owned(),
            };
            if let Some(ActOutcome::Invocation(Ok(invocation))) = self.act(act)? {
                self.invocations.push(invocation);
            }
        } else if let Some(ActOutcome::Permission(Ok(PermissionCheck::Prompted(ticket)))) =
            self.act(GuestAct::CheckFsWrite { vm_id, path: "/tmp/sim".to_owned() })?
        {
            self.prompts.push(ticket);
        }
        Ok(())
    }

    /// Collects the outcomes of callbacks and prompts the guests are waiting on (each taking
    /// is an act the trace records).
    fn collect_outcomes(&mut self) -> turmoil::Result {
        let mut reached = Vec::new();
        for invocation in std::mem::take(&mut self.invocations) {
            let outcome = match self.act(GuestAct::TakeCallbackOutcome { invocation: invocation.clone() })? {
                Some(ActOutcome::CallbackOutcome(outcome)) => outcome,
                _ => None,
            };
            match outcome {
                None => self.invocations.push(invocation),
                Some(outcome) => reached.push(match outcome {
                    HostCallbackOutcome::Result(_) => "callback_answered",
                    HostCallbackOutcome::Error(_) => "callback_error",
                    HostCallbackOutcome::TimedOut => "callback_timed_out",
                    HostCallbackOutcome::Cancelled => "vm_disposed_mid_request",
                }),
            }
        }
        for ticket in std::mem::take(&mut self.prompts) {
            let outcome = match self.act(GuestAct::TakePromptOutcome { ticket: ticket.0 })? {
                Some(ActOutcome::PromptOutcome(outcome)) => outcome,
                _ => None,
            };
            match outcome {
                None => self.prompts.push(ticket),
                Some(PromptOutcome::Allowed) => reached.push("ask_allowed"),
                Some(PromptOutcome::Denied(message)) => reached.push(if message.contains("timed out") {
                    "ask_timed_out"
                } else if message.contains("cancelled") {
                    "vm_disposed_mid_request"
                } else {
                    "ask_denied"
                }),
            }
        }
        let mut shared = self.shared.borrow_mut();
        for point in reached {
            shared.reached(point);
        }
        Ok(())
    }

    fn route_outputs(&mut self) {
        let mut shared = self.shared.borrow_mut();
        for output in self.outputs.drain(..) {
            shared.record_output(output.stream.0, &output.bytes);
            if let Some(writer) = self.writers.get(&output.stream) {
                let _ = writer.send(output.bytes);
            }
        }
        let (violations, reached) = self.disk.drain_report();
        for violation in violations {
            shared.violation(violation);
        }
        for point in reached {
            shared.reached(point);
        }
        let sidecar = self.driver.sidecar();
        shared.kernel = KernelCounts {
            streams: self.writers.len(),
            connections: sidecar.connection_count(),
            sessions: sidecar.session_count(),
            vms: sidecar.vm_count(),
            pending: sidecar.pending_sidecar_requests(),
            effects: sidecar.pending_effects() + self.effects.len() + self.egress.in_flight(),
            links: sidecar.link_count(),
            link_tasks: self.egress.tasks(),
        };
    }
}

/// The sidecar's `node`, built once per machine (`scripts/build-node.sh`, through `testkit`),
/// its snapshot made as the sidecar makes it, and read once per simulator process: every
/// seed's sidecar provides it, like the real one.
///
/// A seed runs the same instructions in every process that runs it, so this never settles for
/// the build as built while another process is making the snapshot (a sidecar may): it waits
/// for that snapshot. Runs as built only where no snapshot can be had at all (the same in
/// every process on the machine).
fn node_programs() -> kernel::host::programs::SidecarPrograms {
    static PROGRAMS: std::sync::OnceLock<kernel::host::programs::SidecarPrograms> = std::sync::OnceLock::new();
    PROGRAMS
        .get_or_init(|| {
            let make = |build: &[u8], plan: &transport::node::SnapshotPlan| {
                runtime_wasm::preinitialize_quietly(build, plan).map(|(wasm, _)| wasm)
            };
            snapshot_programs(testkit::node::built(), make, SNAPSHOT_WAIT)
        })
        .clone()
}

/// How long [`snapshot_programs`] waits on another process making the snapshot: making takes
/// under a second, and a claim older than a minute is taken over as a dead process's, so the
/// wait outlasts a claim left by a process that died.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(90);
const _: () = assert!(SNAPSHOT_WAIT.as_secs() > transport::node::CLAIM_STALE_AFTER.as_secs());
/// How often it looks again meanwhile.
const SNAPSHOT_POLL: Duration = Duration::from_millis(50);

/// The programs of the `node` build in `dir`, from its snapshot: made here if missing, waited
/// for (at most `wait`) if another process is making it.
fn snapshot_programs(
    dir: &std::path::Path,
    make: impl Fn(&[u8], &transport::node::SnapshotPlan) -> Result<Vec<u8>, String>,
    wait: Duration,
) -> kernel::host::programs::SidecarPrograms {
    let waiting_since = std::time::Instant::now();
    loop {
        match transport::node::programs_with_snapshot(dir, &make) {
            Ok((_, Ok(transport::node::Snapshot::BeingMade))) if waiting_since.elapsed() < wait => {
                std::thread::sleep(SNAPSHOT_POLL);
            }
            Ok((programs, _)) => return programs,
            Err(_) => return kernel::host::programs::SidecarPrograms::default(),
        }
    }
}

/// Readies what every seed shares (CPython's install and base interpreter, `node`'s build and
/// snapshot) before seeds run, so worker processes starting together find them made rather
/// than each making them at once.
pub fn prepare_shared_software() {
    prepare_base_python();
    let _ = python_install();
    let _ = node_programs();
}

/// Makes this machine's base Python interpreter (the quick exit installed, as the sidecar's
/// `prepare-python` makes it) when it is missing or stale, and compiles it into the module
/// cache: about two minutes, once per machine. Every seed's Python then runs on it, as a
/// prepared sidecar's does. Should it fail, the seeds run on the install's own snapshot, the
/// same in every worker of the run, and this says so.
#[allow(clippy::print_stderr)]
fn prepare_base_python() {
    use transport::python::{MadeInterpreter, OsPython};
    let python = OsPython::new(testkit::python::installed().to_owned());
    let base = MadeInterpreter::Base;
    if python.is_current(base) {
        return;
    }
    let made = python
        .make(base, |module, stdlib, script| {
            runtime_wasm::preinitialize_python(module, stdlib, script).map(|snapshot| (snapshot.wasm, ()))
        })
        .and_then(|(wasm, ())| {
            let engine = wasmtime_engine().ok_or("the wasmtime engine did not start")?;
            engine
                .install(&wasm, kernel::policy::config::DEFAULT_MAX_WASM_STACK_BYTES)
                .map(drop)
                .map_err(|error| error.to_string())
        });
    if let Err(error) = made {
        eprintln!("sim: Python runs on the install's own snapshot: the base interpreter was not made ({error})");
    }
}

/// CPython, installed once per machine (`scripts/fetch-python.sh`, through `testkit`) and read
/// once per simulator run (the first seed that starts it), shared by every seed's sidecar.
fn python_install() -> Arc<dyn kernel::host::python::PythonSource> {
    static PYTHON: std::sync::OnceLock<Arc<transport::python::OsPython>> = std::sync::OnceLock::new();
    let python =
        PYTHON.get_or_init(|| Arc::new(transport::python::OsPython::new(testkit::python::installed().to_owned())));
    Arc::clone(python) as Arc<dyn kernel::host::python::PythonSource>
}

/// The engine's settings: the defaults, with the sidecar's default module cache, so the
/// 99 MB Python interpreter is compiled once per machine (as the sidecar's tests also compile
/// it), not once per simulator run.
fn simulator_runtime_config() -> runtime_wasm::RuntimeConfig {
    let module_cache_dir = transport::python::cache_home().join("secure-exec-sidecar/modules");
    runtime_wasm::RuntimeConfig { module_cache_dir: Some(module_cache_dir), ..runtime_wasm::RuntimeConfig::default() }
}

/// The script engine, with the wasmtime engine for the real guests. The wasmtime engine is
/// shared by every host of every seed: it holds only compiled code, so sharing it cannot carry
/// state from one run into another. Should it fail to start, `wcat` fails to run and every seed
/// that starts one reports the violation.
pub fn guest_engine() -> ScriptEngine {
    match wasmtime_engine() {
        Some(engine) => ScriptEngine::new().with_modules(engine),
        None => ScriptEngine::new(),
    }
}

/// The wasmtime engine every seed shares, started on first use.
fn wasmtime_engine() -> Option<Arc<runtime_wasm::WasmEngine>> {
    static WASMTIME: std::sync::OnceLock<Option<Arc<runtime_wasm::WasmEngine>>> = std::sync::OnceLock::new();
    WASMTIME.get_or_init(|| runtime_wasm::WasmEngine::new(simulator_runtime_config()).ok().map(Arc::new)).clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A directory holding a snapshottable `node` build whose snapshot another process claims.
    fn claimed_build(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sim-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("node.wasm"), b"\0asm wizer.initialize").unwrap();
        let claim = dir.join(transport::node::NODE_SNAPSHOT_CLAIM);
        std::fs::write(&claim, b"").unwrap();
        (dir, claim)
    }

    fn snapshot_of(build: &[u8], _: &transport::node::SnapshotPlan) -> Result<Vec<u8>, String> {
        Ok([b"snapshot of ", build].concat())
    }

    fn node_of(programs: &kernel::host::programs::SidecarPrograms) -> Vec<u8> {
        programs.find(kernel::host::programs::NODE_COMMAND).unwrap().1.bytes().unwrap().to_vec()
    }

    #[test]
    fn node_waits_for_a_snapshot_another_process_is_making_rather_than_running_the_build() {
        let (dir, claim) = claimed_build("node-snapshot-wait");
        let releaser = {
            let claim = claim.clone();
            std::thread::spawn(move || {
                std::thread::sleep(SNAPSHOT_POLL * 4);
                std::fs::remove_file(claim).unwrap();
            })
        };
        let programs = snapshot_programs(&dir, snapshot_of, SNAPSHOT_WAIT);
        releaser.join().unwrap();
        assert_eq!(node_of(&programs), b"snapshot of \0asm wizer.initialize");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_claim_held_past_the_wait_leaves_the_build_as_built() {
        let (dir, _claim) = claimed_build("node-snapshot-wait-over");
        let programs = snapshot_programs(&dir, snapshot_of, SNAPSHOT_POLL * 2);
        assert_eq!(node_of(&programs), b"\0asm wizer.initialize");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
