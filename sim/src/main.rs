//! `cargo run -p sim -- --seed N` reproduces one seed (printing its trace on failure);
//! `--seeds A..B` runs many, checks coverage, and reports simulated/real time.
//!
//! Many seeds run at once in worker processes (this program again, `--worker`), not threads:
//! every seed maps and unmaps its guests' linear memories, and in one process each unmap is a
//! TLB shootdown on every other core running a seed, with the address space's lock contended
//! besides. Two threads ran 500 seeds in 3.18 s, two processes in 2.5 s.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

use clap::Parser;
use kernel::InjectedFault;
use sim::{check_determinism, describe, missing_coverage, run_seed, SimOptions};
use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Deterministic simulation of the secure-exec sidecar kernel")]
struct Cli {
    /// Run exactly this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, `A..B` (B exclusive).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    #[arg(long, default_value_t = 3)]
    clients: usize,
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// Inject a bug: drop the N-th response frame.
    #[arg(long, conflicts_with = "acknowledge_failed_flush")]
    drop_response: Option<u64>,
    /// Inject a bug in the effect path: answer a flush whose store write failed as committed.
    #[arg(long)]
    acknowledge_failed_flush: bool,
    /// Also run each seed a second time and compare every output frame.
    #[arg(long)]
    check_determinism: bool,
    /// Run every host at every step, even one with nothing to do in it (the same run, in
    /// more real time: for comparing the two).
    #[arg(long)]
    every_host_every_step: bool,
    /// With `--seed`: write the run's trace (every kernel input and output) to this file.
    #[arg(long, requires = "seed")]
    trace: Option<PathBuf>,
    /// Replay a trace written with `--trace` and compare every output frame.
    #[arg(long, conflicts_with_all = ["seed", "seeds"])]
    replay: Option<PathBuf>,
    /// With `--seeds`: seeds run at once, each in its own worker process (default: the
    /// machine's cores; 1 runs them here). Each seed is its own simulation, so its outcome
    /// does not depend on this.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    jobs: Option<u16>,
    /// Run as a worker: seeds from stdin, a line each; one JSON report per line on stdout.
    #[arg(long, hide = true, conflicts_with_all = ["seed", "seeds", "replay"])]
    worker: bool,
    /// With `--worker`: the `node` build the parent found (so each worker does not hash its
    /// sources again).
    #[arg(long, hide = true, requires = "worker")]
    node_dir: Option<PathBuf>,
    /// With `--worker`: the Python install the parent found.
    #[arg(long, hide = true, requires = "worker")]
    python_dir: Option<PathBuf>,
}

/// Most seeds run at once: beyond the cores of any machine this runs on, workers only wait.
const MAX_JOBS: u16 = 256;

/// Longest line a worker reads or writes: a seed number, or a report (violations and coverage
/// names: a few KB).
const MAX_WORKER_LINE_BYTES: u64 = 1 << 20;

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or("expected A..B")?;
    let a = a.parse().map_err(|e| format!("{a}: {e}"))?;
    let b = b.parse().map_err(|e| format!("{b}: {e}"))?;
    if a >= b {
        return Err("empty range".into());
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = SimOptions {
        clients: cli.clients,
        steps_per_client: cli.steps,
        injected_fault: cli
            .drop_response
            .map(InjectedFault::DropNthResponse)
            .or(cli.acknowledge_failed_flush.then_some(InjectedFault::AcknowledgeFailedFlush)),
        keep_trace: cli.seed.is_some(),
        trace: cli.trace.clone(),
        spare_quiet_hosts: !cli.every_host_every_step,
    };
    if let Some(path) = cli.replay {
        return match sim::replay_trace(&path) {
            Ok(report) => {
                println!(
                    "replay matched: {} inputs, {} output frames, {} effects, {} host filesystem calls answered from the trace",
                    report.inputs, report.outputs, report.effects, report.exchanges
                );
                ExitCode::SUCCESS
            }
            Err(divergence) => {
                println!("replay diverged: {divergence}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.worker {
        if let Some(dir) = cli.node_dir {
            testkit::node::use_built(dir);
        }
        if let Some(dir) = cli.python_dir {
            testkit::python::use_installed(dir);
        }
        return worker(&options, cli.check_determinism);
    }
    let (first, end) = cli.seeds.unwrap_or((0, 100));
    sim::prepare_shared_software();
    match cli.seed {
        Some(seed) => one_seed(seed, &options, cli.check_determinism),
        None => many_seeds(first, end, &options, &Workers::of(&cli), jobs(cli.jobs)),
    }
}

fn one_seed(seed: u64, options: &SimOptions, determinism: bool) -> ExitCode {
    let outcome = run_seed(seed, options);
    println!(
        "seed {seed}: {} ({} frames, simulated {:?} in {:?}), swarm {:?}",
        if outcome.passed() { "passed" } else { "FAILED" },
        outcome.output_log.len(),
        outcome.simulated,
        outcome.real,
        outcome.swarm
    );
    println!("coverage: {:?}", outcome.coverage);
    if determinism {
        if let Err(divergence) = check_determinism(seed, options) {
            println!("NOT DETERMINISTIC: {divergence}");
            return ExitCode::FAILURE;
        }
        println!("deterministic: two runs produced identical frames");
    }
    if outcome.passed() {
        return ExitCode::SUCCESS;
    }
    println!("trace:");
    for output in &outcome.output_log {
        println!("  {}", describe(Some(output)));
    }
    for violation in &outcome.violations {
        println!("violation: {violation}");
    }
    ExitCode::FAILURE
}

/// `--jobs`, else the machine's cores.
fn jobs(asked: Option<u16>) -> usize {
    asked.map_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get), usize::from)
}

/// What a run of many seeds keeps of each: the same whether it ran here or in a worker.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SeedReport {
    seed: u64,
    simulated_ns: u64,
    real_ns: u64,
    /// A hash of every output frame the sidecar wrote, in order.
    output_hash: u64,
    violations: Vec<String>,
    coverage: Vec<String>,
    /// With `--check-determinism`: how a second run differed.
    divergence: Option<String>,
}

impl SeedReport {
    /// Runs `seed` here.
    fn run(seed: u64, options: &SimOptions, determinism: bool) -> SeedReport {
        let outcome = run_seed(seed, options);
        let divergence = if determinism { check_determinism(seed, options).err() } else { None };
        let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        SeedReport {
            seed,
            simulated_ns: nanos(outcome.simulated),
            real_ns: nanos(outcome.real),
            output_hash: outcome.output_hash,
            violations: outcome.violations,
            coverage: outcome.coverage.iter().map(|point| (*point).to_owned()).collect(),
            divergence,
        }
    }

    /// A seed whose worker ended before reporting it.
    fn lost(seed: u64, why: String) -> SeedReport {
        let violations = vec![format!("its worker process ended before reporting it: {why}")];
        SeedReport {
            seed,
            simulated_ns: 0,
            real_ns: 0,
            output_hash: 0,
            violations,
            coverage: Vec::new(),
            divergence: None,
        }
    }
}

/// `--worker`: runs each seed read from stdin and prints its report, until stdin ends.
fn worker(options: &SimOptions, determinism: bool) -> ExitCode {
    use std::io::{BufRead, Read, Write};
    let mut input = std::io::stdin().lock().take(u64::MAX);
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        input.set_limit(MAX_WORKER_LINE_BYTES);
        match input.read_line(&mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(_) => return ExitCode::FAILURE,
        }
        let Ok(seed) = line.trim().parse::<u64>() else { return ExitCode::FAILURE };
        let report = SeedReport::run(seed, options, determinism);
        let Ok(json) = serde_json::to_string(&report) else { return ExitCode::FAILURE };
        if writeln!(stdout, "{json}").and_then(|()| stdout.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

/// How to start a worker: this program, with the options that shape a seed, and the software
/// this process found (see [`sim::prepare_shared_software`]).
struct Workers {
    program: Option<PathBuf>,
    arguments: Vec<OsString>,
}

impl Workers {
    fn of(cli: &Cli) -> Workers {
        let mut arguments: Vec<OsString> = vec![
            "--worker".into(),
            "--clients".into(),
            cli.clients.to_string().into(),
            "--steps".into(),
            cli.steps.to_string().into(),
        ];
        if let Some(n) = cli.drop_response {
            arguments.extend(["--drop-response".into(), n.to_string().into()]);
        }
        if cli.acknowledge_failed_flush {
            arguments.push("--acknowledge-failed-flush".into());
        }
        if cli.check_determinism {
            arguments.push("--check-determinism".into());
        }
        if cli.every_host_every_step {
            arguments.push("--every-host-every-step".into());
        }
        arguments.extend(["--node-dir".into(), testkit::node::built().into()]);
        arguments.extend(["--python-dir".into(), testkit::python::installed().into()]);
        Workers { program: std::env::current_exe().ok(), arguments }
    }

    /// Runs seeds from `next` (below `end`) in one worker process after another, until none
    /// are left: a worker that ends early (a crash in a seed) fails that seed, and the next
    /// worker goes on (with the seeds sent to the one that ended and not yet run).
    fn drain(&self, next: &AtomicU64, end: u64, results: &Mutex<Vec<SeedReport>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::process::{Command, Stdio};
        let push = |report: SeedReport| results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(report);
        let Some(program) = &self.program else {
            while let Some(seed) = take(next, end) {
                push(SeedReport::lost(seed, "this program's own path is unknown".to_owned()));
            }
            return;
        };
        // Seeds sent to the worker and not yet reported, oldest first.
        let mut sent: VecDeque<u64> = VecDeque::with_capacity(SEEDS_AHEAD + 1);
        'workers: loop {
            let spawned =
                Command::new(program).args(&self.arguments).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(error) => {
                    while let Some(seed) = sent.pop_front().or_else(|| take(next, end)) {
                        push(SeedReport::lost(seed, format!("cannot start a worker: {error}")));
                    }
                    return;
                }
            };
            let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else { return };
            let mut reports = BufReader::new(stdout).take(u64::MAX);
            let mut line = String::new();
            // Seeds a worker that ended left unrun go to this one first. A failed write shows
            // as the missing report below.
            let mut send = |seed: u64| writeln!(stdin, "{seed}").and_then(|()| stdin.flush());
            let _ = sent.iter().try_for_each(|seed| send(*seed));
            loop {
                while sent.len() <= SEEDS_AHEAD {
                    let Some(seed) = take(next, end) else { break };
                    let _ = send(seed);
                    sent.push_back(seed);
                }
                let Some(&seed) = sent.front() else { break };
                line.clear();
                reports.set_limit(MAX_WORKER_LINE_BYTES);
                let report = reports
                    .read_line(&mut line)
                    .ok()
                    .filter(|read| *read > 0)
                    .and_then(|_| serde_json::from_str::<SeedReport>(&line).ok())
                    .filter(|report| report.seed == seed);
                sent.pop_front();
                match report {
                    Some(report) => push(report),
                    None => {
                        drop(stdin);
                        let status = child.wait().map_or_else(|error| error.to_string(), |status| status.to_string());
                        push(SeedReport::lost(seed, status));
                        continue 'workers;
                    }
                }
            }
            drop(stdin);
            let _ = child.wait();
            return;
        }
    }
}

/// Seeds a worker is sent beyond the one it is running, so it starts the next without waiting
/// for this process to read its report and answer (a round trip through two pipes and two
/// wake-ups, per seed). One is enough for that; more would only leave a worker with seeds
/// queued at the end while the other has none.
const SEEDS_AHEAD: usize = 1;

/// The next seed not yet taken, below `end`.
fn take(next: &AtomicU64, end: u64) -> Option<u64> {
    let seed = next.fetch_add(1, Ordering::Relaxed);
    (seed < end).then_some(seed)
}

/// Runs seeds `first..end`, `jobs` at once (in worker processes; here when `jobs` is 1), each
/// worker taking the next seed not yet run; reports in seed order, so the report does not
/// depend on which worker ran what.
fn many_seeds(first: u64, end: u64, options: &SimOptions, workers: &Workers, jobs: usize) -> ExitCode {
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let results: Mutex<Vec<SeedReport>> = Mutex::new(Vec::new());
    let determinism = workers.arguments.iter().any(|argument| argument == "--check-determinism");
    let jobs = jobs.min(usize::try_from(end - first).unwrap_or(usize::MAX));
    if jobs <= 1 {
        while let Some(seed) = take(&next, end) {
            let report = SeedReport::run(seed, options, determinism);
            results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(report);
        }
    } else {
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| workers.drain(&next, end, &results));
            }
        });
    }
    let wall = started.elapsed();
    let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|report| report.seed);
    let (mut simulated, mut real) = (Duration::ZERO, Duration::ZERO);
    let mut failed = Vec::new();
    let mut reached = BTreeSet::new();
    for report in &results {
        let seed = report.seed;
        simulated += Duration::from_nanos(report.simulated_ns);
        real += Duration::from_nanos(report.real_ns);
        if let Some(violation) = report.violations.first() {
            println!("seed {seed} FAILED: {violation}");
            println!("  reproduce: cargo run -p sim -- --seed {seed}");
            failed.push(seed);
        }
        if let Some(divergence) = &report.divergence {
            println!("seed {seed} NOT DETERMINISTIC: {divergence}");
            failed.push(seed);
        }
        reached.extend(report.coverage.iter().map(String::as_str));
    }
    let missing = missing_coverage(&reached);
    let per_wall = simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9);
    let per_job = simulated.as_secs_f64() / real.as_secs_f64().max(1e-9);
    println!(
        "{} seeds, {} failed; simulated {:.1} s in {:.2} s real on {jobs} {} ({per_wall:.0}x; \
         {per_job:.0}x per worker, {:.2} s of seed time)",
        end - first,
        failed.len(),
        simulated.as_secs_f64(),
        wall.as_secs_f64(),
        if jobs <= 1 { "thread" } else { "worker processes" },
        real.as_secs_f64()
    );
    if !missing.is_empty() {
        println!("coverage never reached: {missing:?}");
        return ExitCode::FAILURE;
    }
    if failed.is_empty() && results.len() == usize::try_from(end - first).unwrap_or(usize::MAX) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers that are a shell script: each reports the seeds it reads, and ends (without a
    /// report) at seed 3.
    fn scripted_workers() -> Workers {
        let script = r#"while read seed; do
            [ "$seed" = 3 ] && exit 7
            echo "{\"seed\":$seed,\"simulated_ns\":1,\"real_ns\":1,\"output_hash\":1,\"violations\":[],\"coverage\":[],\"divergence\":null}"
        done"#;
        Workers { program: Some(PathBuf::from("sh")), arguments: vec!["-c".into(), script.into()] }
    }

    #[test]
    fn a_worker_that_ends_fails_its_seed_and_the_seed_sent_ahead_runs_in_the_next() {
        let next = AtomicU64::new(0);
        let results = Mutex::new(Vec::new());
        scripted_workers().drain(&next, 8, &results);
        let mut reports = results.into_inner().unwrap_or_default();
        reports.sort_by_key(|report| report.seed);
        let seeds: Vec<u64> = reports.iter().map(|report| report.seed).collect();
        assert_eq!(seeds, (0..8).collect::<Vec<_>>(), "every seed reported once");
        for report in &reports {
            let lost = report.violations.iter().any(|violation| violation.contains("ended before reporting it"));
            assert_eq!(lost, report.seed == 3, "seed {}: {:?}", report.seed, report.violations);
        }
    }
}
