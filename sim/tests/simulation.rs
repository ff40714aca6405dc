//! The simulator's own guarantees: seeds pass, runs are deterministic, coverage is reached, and
//! a deliberately injected kernel bug is caught and reproduced from its seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kernel::InjectedFault;
use sim::{check_determinism, missing_coverage, run_seed, SimOptions};

/// Seeds that once failed (or exercise rare paths) stay in this list forever.
const REGRESSION_SEEDS: &[u64] = &[0, 1, 7, 42];

#[test]
fn a_range_of_seeds_passes_and_reaches_every_coverage_point() {
    let options = SimOptions::default();
    let outcomes: Vec<_> = (0..150).map(|seed| run_seed(seed, &options)).collect();
    for outcome in &outcomes {
        assert!(outcome.passed(), "seed {}: {:?}", outcome.seed, outcome.violations);
    }
    assert_eq!(missing_coverage(&outcomes), Vec::<&str>::new());
}

#[test]
fn regression_seeds_pass() {
    for &seed in REGRESSION_SEEDS {
        let outcome = run_seed(seed, &SimOptions::default());
        assert!(outcome.passed(), "seed {seed}: {:?}", outcome.violations);
    }
}

#[test]
fn same_seed_same_frames() {
    for seed in [3, 11] {
        check_determinism(seed, &SimOptions::default()).unwrap();
    }
}

#[test]
fn different_seeds_differ() {
    let options = SimOptions::default();
    assert_ne!(run_seed(1, &options).output_hash, run_seed(2, &options).output_hash);
}

#[test]
fn an_injected_dropped_response_is_caught_and_its_seed_reproduces_it() {
    let options = SimOptions { injected_fault: Some(InjectedFault::DropNthResponse(25)), ..SimOptions::default() };
    let failing = (0..1000)
        .map(|seed| run_seed(seed, &options))
        .find(|outcome| !outcome.passed())
        .expect("the simulator must catch a dropped response within 1000 seeds");
    assert!(
        failing.violations.iter().any(|v| v.contains("never answered")),
        "the violation names the lost answer: {:?}",
        failing.violations
    );
    let again = run_seed(failing.seed, &options);
    assert_eq!(again.violations, failing.violations, "the printed seed reproduces the failure exactly");
    assert!(run_seed(failing.seed, &SimOptions::default()).passed(), "without the bug the same seed passes");
}
