//! `cargo run -p sim -- --seed N` reproduces one seed (printing its trace on failure);
//! `--seeds A..B` runs many, checks coverage, and reports simulated/real time.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

use clap::Parser;
use kernel::InjectedFault;
use sim::{check_determinism, describe, missing_coverage, run_seed, SeedOutcome, SimOptions};
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
    /// With `--seed`: write the run's trace (every kernel input and output) to this file.
    #[arg(long, requires = "seed")]
    trace: Option<PathBuf>,
    /// Replay a trace written with `--trace` and compare every output frame.
    #[arg(long, conflicts_with_all = ["seed", "seeds"])]
    replay: Option<PathBuf>,
    /// With `--seeds`: seeds run at once, each on its own thread (default: the machine's
    /// cores). Each seed is its own simulation, so its outcome does not depend on this.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    jobs: Option<u16>,
}

/// Most seeds run at once: beyond the cores of any machine this runs on, threads only wait.
const MAX_JOBS: u16 = 256;

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
    match (cli.seed, cli.seeds) {
        (Some(seed), _) => one_seed(seed, &options, cli.check_determinism),
        (None, Some((first, end))) => many_seeds(first, end, &options, cli.check_determinism, jobs(cli.jobs)),
        (None, None) => many_seeds(0, 100, &options, cli.check_determinism, jobs(cli.jobs)),
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

/// Runs seeds `first..end` on `jobs` threads, each taking the next seed not yet run; reports in
/// seed order, so the report does not depend on which thread ran what.
fn many_seeds(first: u64, end: u64, options: &SimOptions, determinism: bool, jobs: usize) -> ExitCode {
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let results: Mutex<Vec<(SeedOutcome, Option<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(usize::try_from(end - first).unwrap_or(usize::MAX)) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let outcome = run_seed(seed, options);
                let divergence = if determinism { check_determinism(seed, options).err() } else { None };
                results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((outcome, divergence));
            });
        }
    });
    let wall = started.elapsed();
    let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(outcome, _)| outcome.seed);
    let (mut simulated, mut real) = (Duration::ZERO, Duration::ZERO);
    let mut failed = Vec::new();
    let mut outcomes = Vec::new();
    for (outcome, divergence) in results {
        let seed = outcome.seed;
        simulated += outcome.simulated;
        real += outcome.real;
        if !outcome.passed() {
            println!("seed {seed} FAILED: {}", outcome.violations.first().map_or("", String::as_str));
            println!("  reproduce: cargo run -p sim -- --seed {seed}");
            failed.push(seed);
        }
        if let Some(divergence) = divergence {
            println!("seed {seed} NOT DETERMINISTIC: {divergence}");
            failed.push(seed);
        }
        outcomes.push(outcome);
    }
    let missing = missing_coverage(&outcomes);
    let per_wall = simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9);
    let per_thread = simulated.as_secs_f64() / real.as_secs_f64().max(1e-9);
    println!(
        "{} seeds, {} failed; simulated {:.1} s in {:.2} s real on {jobs} threads ({per_wall:.0}x; \
         {per_thread:.0}x per thread, {:.2} s of seed time)",
        end - first,
        failed.len(),
        simulated.as_secs_f64(),
        wall.as_secs_f64(),
        real.as_secs_f64()
    );
    if !missing.is_empty() {
        println!("coverage never reached: {missing:?}");
        return ExitCode::FAILURE;
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
