//! Deterministic simulation of the sidecar kernel.
//!
//! One u64 seed drives everything: turmoil's network and scheduling, the simulated hosts'
//! workloads, the swarm of faults (each seed draws its own fault probabilities), the kernel's
//! clock (the simulation's, plus injected jumps) and its entropy. The same seed gives the same
//! run, frame for frame; [`check_determinism`] proves it by running a seed twice.
//!
//! Invariants are checked continuously by the simulated hosts ("always"): every request gets
//! exactly the answers it is owed, nothing is addressed to a foreign owner, VM lifecycles move
//! in order, every frame is valid, file and process answers match their models, and the store
//! (the binary's put protocol on a disk that crashes) always holds each key's last completed
//! flush; at the end nothing is leaked, every outstanding request was answered and every process
//! finished after the faults stopped (liveness). Coverage points ("sometimes") must each be
//! reached by some seed of a run. The kernel is fed through the transport's driver, so a seed's
//! run can be written as a trace ([`SimOptions::trace`]) and replayed ([`replay_trace`]).
//! `docs/determinism.md` has the whole picture.

#![forbid(unsafe_code)]

mod client;
mod disk;
mod egress;
mod host;
mod hostdirs;
mod processes;
mod shared;
mod timers;
mod web;

pub use host::prepare_shared_software;

use kernel::{InjectedFault, SidecarConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::{KernelCounts, Shared};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timers::{TimerBook, Timers};
use transport::trace::{ReplayReport, TraceReader, TraceWriter};

/// Per-seed fault probabilities ("swarm testing": each seed explores a different mix).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Swarm {
    pub corrupt_rate: f64,
    pub duplicate_rate: f64,
    pub drop_rate: f64,
    pub pause_rate: f64,
    pub limit_rate: f64,
    pub clock_jump_rate: f64,
    /// Chance per step that a client's link is partitioned (held) for a while.
    pub partition_rate: f64,
    /// Chance that a persistence write fails.
    pub store_fail_rate: f64,
    /// Chance that the store's disk crashes in the middle of a write (and, half as often,
    /// between calls).
    pub store_crash_rate: f64,
    /// Longest time a store effect takes to complete.
    pub max_store_latency_ms: u64,
    /// Chance, in thousandths, that a host directory file operation fails with `EIO`.
    pub host_fs_fail_per_mille: u64,
    pub max_latency_ms: u64,
    /// Chance per guest turn (25 ms) that the path between the sidecar and `web` is held:
    /// packets wait and are delivered when it heals.
    pub egress_hold_rate: f64,
    /// Longest such hold.
    pub max_egress_hold_ms: u64,
    /// In some seeds (else 0): how long the path is held from the start, longer than the
    /// kernel's 30 s connect timeout (a peer that never answers).
    pub egress_blackhole_ms: u64,
    /// Chance per guest turn that the path drops packets for a while (up to 2 s): connects
    /// are refused and the connections open then are reset.
    pub egress_drop_rate: f64,
    /// Chance that `web` writes a response slowly (in chunks, with pauses).
    pub egress_slow_rate: f64,
    /// Chance that `web` cuts a response short (closes early).
    pub egress_truncate_rate: f64,
}

impl Swarm {
    fn draw(rng: &mut StdRng) -> Self {
        let mut rate = |max: f64| if rng.random_bool(0.3) { 0.0 } else { rng.random_range(0.0..max) };
        let mut swarm = Self {
            corrupt_rate: rate(1.0),
            duplicate_rate: rate(1.0),
            drop_rate: rate(0.5),
            pause_rate: rate(1.0),
            limit_rate: rate(0.5),
            clock_jump_rate: rate(0.05),
            partition_rate: rate(0.01),
            store_fail_rate: rate(0.3),
            store_crash_rate: rate(0.4),
            max_store_latency_ms: if rng.random_bool(0.5) { 0 } else { rng.random_range(0..300) },
            host_fs_fail_per_mille: if rng.random_bool(0.4) { 0 } else { rng.random_range(0..150) },
            max_latency_ms: rng.random_range(0..40),
            egress_hold_rate: 0.0,
            max_egress_hold_ms: 0,
            egress_blackhole_ms: 0,
            egress_drop_rate: 0.0,
            egress_slow_rate: 0.0,
            egress_truncate_rate: 0.0,
        };
        // Drawn after the others, so those stay what they were for every seed.
        let mut rate = |max: f64| if rng.random_bool(0.3) { 0.0 } else { rng.random_range(0.0..max) };
        swarm.egress_hold_rate = rate(0.05);
        swarm.egress_drop_rate = rate(0.03);
        swarm.egress_slow_rate = rate(1.0);
        swarm.egress_truncate_rate = rate(0.3);
        swarm.max_egress_hold_ms = rng.random_range(100..3_000);
        swarm.egress_blackhole_ms = if rng.random_bool(0.15) { rng.random_range(31_000..40_000) } else { 0 };
        swarm
    }
}

/// What a run is made of.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub clients: usize,
    pub steps_per_client: usize,
    pub injected_fault: Option<InjectedFault>,
    /// Keep every output frame (for printing a failing seed's trace).
    pub keep_trace: bool,
    /// Write the run's trace (every kernel input and output) here; `sim --replay` replays it.
    pub trace: Option<PathBuf>,
    /// Leave a host out of a step when it has nothing to do in it (see the `timers` module):
    /// the same run, in less real time. Off, every host runs at every step.
    pub spare_quiet_hosts: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            clients: 3,
            steps_per_client: 40,
            injected_fault: None,
            keep_trace: false,
            trace: None,
            spare_quiet_hosts: true,
        }
    }
}

/// The result of one seed.
#[derive(Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub swarm: Swarm,
    pub violations: Vec<String>,
    pub coverage: BTreeSet<&'static str>,
    pub output_hash: u64,
    pub output_log: Vec<(u64, Vec<u8>)>,
    pub simulated: Duration,
    pub real: Duration,
    /// Times a host was left out of a step, having nothing to do in it
    /// ([`SimOptions::spare_quiet_hosts`]).
    pub spared_host_steps: u64,
}

impl SeedOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// One simulation step. A step runs every host with something to do in it (every host, without
/// [`SimOptions::spare_quiet_hosts`]), so the step length shapes the ratio of simulated to real
/// time; 5 ms is finer than any latency or timeout the workload uses.
pub const TICK: Duration = Duration::from_millis(5);

/// Longest simulated time one seed may take; a run that needs more is itself a liveness failure.
pub const MAX_SIMULATED_TIME: Duration = Duration::from_secs(600);

/// Runs one seed.
pub fn run_seed(seed: u64, options: &SimOptions) -> SeedOutcome {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let swarm = Swarm::draw(&mut rng);
    let shared = Shared::new(options.keep_trace);
    let book = TimerBook::shared();
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(MAX_SIMULATED_TIME)
        .tick_duration(TICK)
        .min_message_latency(Duration::from_millis(0))
        .max_message_latency(Duration::from_millis(swarm.max_latency_ms))
        .build();
    let config =
        SidecarConfig { entropy_seed: seed, injected_fault: options.injected_fault, ..SidecarConfig::default() };
    let trace = match options.trace.as_deref().map(TraceWriter::create).transpose() {
        Ok(trace) => trace,
        Err(error) => {
            shared.borrow_mut().violation(format!("cannot write the trace: {error}"));
            None
        }
    };
    // turmoil may build a host more than once (after a crash); only the first build records.
    let trace = Rc::new(RefCell::new(trace));
    let host_shared = shared.clone();
    let host_timers = Timers::of(&book, host::HOST_NAME);
    sim.host(host::HOST_NAME, move || {
        host::run(host_shared.clone(), host_timers.clone(), config.clone(), swarm, seed, trace.borrow_mut().take())
    });
    let web_shared = shared.clone();
    let web_timers = Timers::of(&book, web::WEB_HOST);
    sim.host(web::WEB_HOST, move || web::run(web_shared.clone(), web_timers.clone(), swarm, seed));
    for index in 0..options.clients {
        let name = client::Client::name_of(index);
        let client = client::Client::new(index, shared.clone(), Timers::of(&book, &name), seed, swarm);
        let steps = options.steps_per_client;
        sim.client(name, async move { client.run(steps).await });
    }
    let spare = options.spare_quiet_hosts.then_some(&book);
    let mut spared_host_steps = 0;
    let finished = run_to_end(&mut sim, &mut rng, swarm, options.clients, &shared, spare, &mut spared_host_steps);
    let simulated = sim.elapsed();
    let mut state = shared.borrow_mut();
    if let Err(error) = finished {
        state.violation(format!("simulation failed: {error}"));
    }
    let leaked = state.kernel;
    if leaked != KernelCounts::default() {
        state.violation(format!("kernel or driver state left after every client disconnected: {leaked:?}"));
    }
    SeedOutcome {
        seed,
        swarm,
        violations: std::mem::take(&mut state.violations),
        coverage: std::mem::take(&mut state.coverage),
        output_hash: state.output_hash,
        output_log: std::mem::take(&mut state.output_log),
        simulated,
        real: started.elapsed(),
        spared_host_steps,
    }
}

/// Steps until every client finished, partitioning links now and then (held traffic is
/// delivered when the partition heals), then a little longer so the sidecar sees the last
/// disconnects (its bookkeeping is checked for leaks afterwards).
fn run_to_end(
    sim: &mut turmoil::Sim<'_>,
    rng: &mut StdRng,
    swarm: Swarm,
    clients: usize,
    shared: &shared::SharedRef,
    spare: Option<&Rc<RefCell<TimerBook>>>,
    spared: &mut u64,
) -> turmoil::Result {
    let mut step = |sim: &mut turmoil::Sim<'_>| match spare {
        Some(book) => sim.step_sparing(|host, step_end| {
            let quiet = book.borrow().is_quiet(host, step_end);
            *spared += u64::from(quiet);
            quiet
        }),
        None => sim.step(),
    };
    let mut held: Option<(String, u32)> = None;
    loop {
        held = match held.take() {
            Some((client, 0)) => {
                sim.release("sidecar", client.as_str());
                shared.borrow_mut().reached("partition_healed");
                None
            }
            Some((client, steps)) => Some((client, steps - 1)),
            None if clients > 0 && rng.random_bool(swarm.partition_rate) => {
                let client = client::Client::name_of(rng.random_range(0..clients));
                sim.hold("sidecar", client.as_str());
                Some((client, rng.random_range(1..MAX_PARTITION_STEPS)))
            }
            None => None,
        };
        if step(sim)? {
            break;
        }
    }
    if let Some((client, _)) = held {
        sim.release("sidecar", client.as_str());
    }
    // The path to `web` heals too (its faults stopped with the clients' liveness phase; one
    // may still be under way when no guest waits on it), so the last closes go through.
    sim.release(host::HOST_NAME, web::WEB_HOST);
    sim.repair(host::HOST_NAME, web::WEB_HOST);
    for _ in 0..DRAIN_STEPS {
        step(sim)?;
    }
    Ok(())
}

/// Longest partition, in steps of [`TICK`] (shorter than the clients' liveness wait).
const MAX_PARTITION_STEPS: u32 = 400;

/// Steps (of [`TICK`]) given to the sidecar after the last client finished.
const DRAIN_STEPS: usize = 200;

/// Replays a trace written by a run with [`SimOptions::trace`]: the same kernel, fed the
/// recorded inputs and the store's recorded answers, with the simulator's guests (scripts and
/// real WebAssembly), must produce the recorded frames byte for byte.
pub fn replay_trace(path: &Path) -> Result<ReplayReport, String> {
    let reader = TraceReader::open(path).map_err(|error| error.to_string())?;
    match transport::trace::replay_with(reader, Some(Arc::new(host::guest_engine()))) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(divergence)) => Err(divergence.describe()),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs `seed` twice and compares every output frame. `Err` names the first difference.
///
/// The second run spares quiet hosts if the first did not, and the other way round
/// ([`SimOptions::spare_quiet_hosts`]): sparing must change nothing but the real time taken.
pub fn check_determinism(seed: u64, options: &SimOptions) -> Result<u64, String> {
    let traced = SimOptions { keep_trace: true, trace: None, ..options.clone() };
    let first = run_seed(seed, &traced);
    let second = run_seed(seed, &SimOptions { spare_quiet_hosts: !traced.spare_quiet_hosts, ..traced });
    if first.output_hash == second.output_hash && first.output_log == second.output_log {
        return Ok(first.output_hash);
    }
    let index = first.output_log.iter().zip(&second.output_log).position(|(a, b)| a != b);
    Err(match index {
        Some(i) => format!(
            "seed {seed} diverged at output frame {i}:\n  first:  {}\n  second: {}",
            describe(first.output_log.get(i)),
            describe(second.output_log.get(i))
        ),
        None => {
            format!("seed {seed} diverged in length: {} vs {} frames", first.output_log.len(), second.output_log.len())
        }
    })
}

/// A frame from an output log, decoded for people.
pub fn describe(output: Option<&(u64, Vec<u8>)>) -> String {
    match output {
        None => "(none)".to_owned(),
        Some((stream, bytes)) => match schema::decode_frame(bytes, usize::MAX) {
            Ok(frame) => format!("stream {stream}: {frame:?}"),
            Err(error) => format!("stream {stream}: undecodable ({error})"),
        },
    }
}

/// Coverage points no seed of a run reached.
pub fn missing_coverage(reached: &BTreeSet<&str>) -> Vec<&'static str> {
    shared::COVERAGE_POINTS.iter().copied().filter(|point| !reached.contains(point)).collect()
}
