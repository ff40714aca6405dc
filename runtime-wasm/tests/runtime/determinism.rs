//! Two runs of the same guest with the same inputs give identical outputs, statuses and numbers
//! of scheduling slices.

use runtime_wasm::{StdioHost, TaskLimits, TaskState};

use crate::support::{c_fixture, compile, payload, run_to_end, wat_fixture, Finished};

/// Everything observable about one run: the state after every poll, with stdout length at that
/// point, and the final result.
type Trace = (Vec<(TaskState, usize)>, Finished);

/// Runs `wasm`, feeding `input` in `chunk`-byte pieces whenever the guest blocks on stdin.
fn traced_run(wasm: &[u8], input: &[u8], chunk: usize, limits: TaskLimits) -> Trace {
    let mut task = compile(wasm).spawn(StdioHost::new(["guest"]).with_seed(5), limits).unwrap();
    let mut pieces = input.chunks(chunk);
    let mut trace = Vec::new();
    loop {
        let state = task.poll();
        trace.push((state.clone(), task.host().stdout().len()));
        match state {
            TaskState::Running => {}
            TaskState::Pending(_) => match pieces.next() {
                Some(piece) => task.host().push_stdin(piece),
                None => task.host().close_stdin(),
            },
            TaskState::Ready(_) => break,
        }
        assert!(trace.len() < 100_000, "runaway guest");
    }
    (trace, run_to_end(&mut task))
}

fn assert_deterministic(wasm: &[u8], input: &[u8], chunk: usize, limits: TaskLimits) -> Trace {
    let first = traced_run(wasm, input, chunk, limits);
    let second = traced_run(wasm, input, chunk, limits);
    assert_eq!(first.1, second.1, "different results");
    assert_eq!(first.0, second.0, "different schedules");
    assert_eq!(first.1.usage.slices, u64::try_from(first.0.len()).unwrap());
    first
}

#[test]
fn chunked_cat_is_deterministic() {
    let input = payload(30_000, 4);
    let limits = TaskLimits { slice_fuel: 2_000, ..TaskLimits::default() };
    let (_, out) = assert_deterministic(&wat_fixture("cat"), &input, 999, limits);
    assert_eq!(out.stdout, input);
}

#[test]
fn c_wc_interleaves_slices_and_waits_deterministically() {
    let input: Vec<u8> = payload(40_000, 6).iter().map(|b| b"ab cd\nefg \t"[usize::from(b % 11)]).collect();
    let limits = TaskLimits { slice_fuel: 4_000, ..TaskLimits::default() };
    let (trace, out) = assert_deterministic(&c_fixture("wc"), &input, 2_500, limits);
    assert!(out.status.success(), "{:?}", out.status);
    let lines = input.iter().filter(|b| **b == b'\n').count();
    let words = input.split(|b| b" \n\t".contains(b)).filter(|w| !w.is_empty()).count();
    let checksum = input.iter().fold(0u64, |acc, b| (acc * 31 + u64::from(*b)) % 1_000_000_007);
    assert_eq!(out.stdout_str(), format!("{lines} {words} {} {checksum}\n", input.len()));
    // Preempted by fuel between reads, and blocked once per chunk.
    let running = trace.iter().filter(|(state, _)| *state == TaskState::Running).count();
    let pending = trace.iter().filter(|(state, _)| matches!(state, TaskState::Pending(_))).count();
    assert!(running > 16, "running = {running}");
    assert_eq!(pending, input.len().div_ceil(2_500) + 1);
}

#[test]
fn different_slices_change_the_schedule_not_the_result() {
    let input = payload(20_000, 7);
    let fine = traced_run(&c_fixture("wc"), &input, 1_000, TaskLimits { slice_fuel: 1_000, ..TaskLimits::default() });
    let coarse =
        traced_run(&c_fixture("wc"), &input, 1_000, TaskLimits { slice_fuel: 100_000, ..TaskLimits::default() });
    assert_eq!(fine.1.stdout, coarse.1.stdout);
    assert_eq!(fine.1.usage.fuel_consumed, coarse.1.usage.fuel_consumed);
    assert!(fine.1.usage.slices > coarse.1.usage.slices + 50);
}

#[test]
fn c_cat_is_deterministic() {
    let input = payload(10_000, 8);
    let limits = TaskLimits { slice_fuel: 5_000, ..TaskLimits::default() };
    let (_, out) = assert_deterministic(&c_fixture("cat"), &input, 1_500, limits);
    assert_eq!(out.stdout, input);
}

#[test]
fn fuel_exhaustion_is_deterministic() {
    let limits = TaskLimits { max_wasm_fuel: 777_777, slice_fuel: 3_333, ..TaskLimits::default() };
    let (trace, out) = assert_deterministic(&wat_fixture("spin"), b"", 1, limits);
    assert_eq!(out.usage.fuel_consumed, 777_777);
    assert!(trace.len() > 200);
}

#[test]
fn memory_limit_is_deterministic() {
    let limits = TaskLimits { max_wasm_memory_bytes: 3 << 20, slice_fuel: 10_000, ..TaskLimits::default() };
    let (_, out) = assert_deterministic(&c_fixture("oom"), b"", 1, limits);
    assert_eq!(out.status.code, 4);
    let (_, hog) = assert_deterministic(&wat_fixture("memhog"), b"", 1, limits);
    assert_eq!(hog.usage.peak_memory_bytes, 3 << 20);
}
