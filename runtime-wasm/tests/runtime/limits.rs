//! Fuel budgets and slices, the memory and stack limits, traps, kills and the instance pool.

use runtime_wasm::{
    ExitReason, ExitStatus, PoolingConfig, Runtime, RuntimeConfig, RuntimeError, StdioHost, TaskLimits, TaskState,
    WaitReason, EXIT_CANNOT_EXECUTE, EXIT_FUEL_EXHAUSTED, EXIT_KILLED, EXIT_TRAP,
};

use crate::support::{compile, run, run_to_end, spawn, wat, wat_fixture};

fn limits(max_wasm_fuel: u64, slice_fuel: u64) -> TaskLimits {
    TaskLimits { max_wasm_fuel, slice_fuel, ..TaskLimits::default() }
}

#[test]
fn infinite_loop_stops_when_its_fuel_budget_is_spent() {
    let out = run(&wat_fixture("spin"), StdioHost::new(["spin"]), limits(1_000_000, 10_000));
    assert_eq!(
        out.status,
        ExitStatus { code: EXIT_FUEL_EXHAUSTED, reason: ExitReason::FuelExhausted { max_wasm_fuel: 1_000_000 } }
    );
    assert_eq!(out.stderr_str(), "wasm guest terminated: fuel budget exhausted (max_wasm_fuel = 1000000)\n");
    assert_eq!(out.stdout, b"");
    assert_eq!(out.usage.fuel_consumed, 1_000_000);
    // One slice per 10 000 units of fuel, plus the poll that observes the trap.
    assert!((100..=101).contains(&out.usage.slices), "slices = {}", out.usage.slices);
}

#[test]
fn a_running_guest_yields_at_every_slice() {
    let mut task = spawn(&wat_fixture("spin"), StdioHost::new(["spin"]), limits(50_000, 1_000));
    let mut running = 0;
    let status = loop {
        match task.poll() {
            TaskState::Running => running += 1,
            TaskState::Ready(status) => break status,
            TaskState::Pending(reason) => panic!("spin never blocks, got {reason:?}"),
        }
    };
    assert_eq!(status.reason, ExitReason::FuelExhausted { max_wasm_fuel: 50_000 });
    assert!((49..=50).contains(&running), "running = {running}");
}

#[test]
fn smaller_slices_mean_more_polls_for_the_same_work() {
    let coarse = run(&wat_fixture("spin"), StdioHost::new(["spin"]), limits(400_000, 100_000));
    let fine = run(&wat_fixture("spin"), StdioHost::new(["spin"]), limits(400_000, 10_000));
    assert_eq!(coarse.status, fine.status);
    assert_eq!(coarse.usage.fuel_consumed, fine.usage.fuel_consumed);
    assert!(fine.usage.slices >= 9 * coarse.usage.slices, "{} vs {}", fine.usage.slices, coarse.usage.slices);
}

#[test]
fn memory_hog_stops_at_the_memory_limit() {
    let max = 1 << 20;
    let limits = TaskLimits { max_wasm_memory_bytes: max, ..TaskLimits::default() };
    let out = run(&wat_fixture("memhog"), StdioHost::new(["memhog"]), limits);
    assert_eq!(
        out.status,
        ExitStatus {
            code: EXIT_TRAP,
            reason: ExitReason::MemoryLimit { limit_bytes: max, requested_bytes: max + 65_536 }
        }
    );
    assert_eq!(out.usage.peak_memory_bytes, max, "grew page by page up to exactly the limit");
    assert_eq!(
        out.stderr_str(),
        "wasm guest terminated: memory limit exceeded: growth to 1114112 bytes refused (limit 1048576 bytes)\n"
    );
}

#[test]
fn memory_grow_returns_minus_one_when_refused() {
    // The spec behaviour: the guest sees -1 and may carry on; here it exits with 7.
    let module = wat(r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (if (i32.ne (memory.grow (i32.const 2)) (i32.const -1)) (then (call $exit (i32.const 1))))
          (if (i32.ne (memory.grow (i32.const 1)) (i32.const 1)) (then (call $exit (i32.const 2))))
          (call $exit (i32.add (i32.const 5) (memory.size)))))"#);
    let limits = TaskLimits { max_wasm_memory_bytes: 2 * 65_536, ..TaskLimits::default() };
    let out = run(&module, StdioHost::new(["grow"]), limits);
    assert_eq!(out.status, ExitStatus { code: 7, reason: ExitReason::Exited });
    assert_eq!(out.usage.peak_memory_bytes, 2 * 65_536);
}

#[test]
fn a_modules_own_memory_maximum_is_reported_as_its_limit() {
    let module = wat(r#"(module (memory (export "memory") 1 3)
        (func (export "_start") (loop $more
          (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
          (br $more))))"#);
    let out = run(&module, StdioHost::new(["capped"]), TaskLimits::default());
    assert_eq!(out.status.reason, ExitReason::MemoryLimit { limit_bytes: 3 * 65_536, requested_bytes: 4 * 65_536 });
    assert_eq!(out.usage.peak_memory_bytes, 3 * 65_536);
}

#[test]
fn initial_memory_above_the_limit_fails_to_start() {
    let module = wat(r#"(module (memory (export "memory") 20) (func (export "_start")))"#);
    let limits = TaskLimits { max_wasm_memory_bytes: 1 << 20, ..TaskLimits::default() };
    let out = run(&module, StdioHost::new(["big"]), limits);
    assert_eq!(out.status.reason, ExitReason::MemoryLimit { limit_bytes: 1 << 20, requested_bytes: 20 * 65_536 });
    assert_eq!(out.status.code, EXIT_TRAP);
}

#[test]
fn unbounded_recursion_hits_the_stack_limit() {
    let out = run(&wat_fixture("recurse"), StdioHost::new(["recurse"]), TaskLimits::default());
    let max = RuntimeConfig::default().max_wasm_stack_bytes as u64;
    assert_eq!(
        out.status,
        ExitStatus { code: EXIT_TRAP, reason: ExitReason::StackOverflow { max_wasm_stack_bytes: max } }
    );
    assert!(out.stderr_str().contains("stack overflow"), "{}", out.stderr_str());
}

#[test]
fn a_smaller_stack_limit_overflows_sooner() {
    let runtime =
        |bytes| Runtime::<StdioHost>::new(RuntimeConfig { max_wasm_stack_bytes: bytes, ..RuntimeConfig::default() });
    let fuel_until_overflow = |bytes| {
        let program = runtime(bytes).unwrap().compile(&wat_fixture("recurse")).unwrap();
        let out = run_to_end(&mut program.spawn(StdioHost::new(["recurse"]), TaskLimits::default()).unwrap());
        assert!(matches!(out.status.reason, ExitReason::StackOverflow { .. }), "{:?}", out.status);
        out.usage.fuel_consumed
    };
    let small = fuel_until_overflow(64 << 10);
    let large = fuel_until_overflow(256 << 10);
    assert!(large > 3 * small, "{large} vs {small}");
}

#[test]
fn other_traps_are_reported_with_wasmtimes_message() {
    let module = wat(r#"(module (memory (export "memory") 1)
        (func (export "_start") (drop (i32.load (i32.const 70000)))))"#);
    let out = run(&module, StdioHost::new(["oob"]), TaskLimits::default());
    assert_eq!(out.status.code, EXIT_TRAP);
    match &out.status.reason {
        ExitReason::Trap { message } => assert!(message.contains("out of bounds memory access"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(out.stderr_str().starts_with("wasm guest terminated: trap: "), "{}", out.stderr_str());
}

#[test]
fn killing_a_blocked_guest_ends_it() {
    let mut task = spawn(&wat_fixture("cat"), StdioHost::new(["cat"]), TaskLimits::default());
    assert_eq!(task.poll(), TaskState::Pending(WaitReason::ReadStdin));
    let status = task.kill();
    assert_eq!(status, ExitStatus { code: EXIT_KILLED, reason: ExitReason::Killed });
    assert_eq!(task.poll(), TaskState::Ready(status));
    task.host().push_stdin(b"late");
    assert_eq!(task.host().stdout(), b"");
}

#[test]
fn killing_a_running_guest_ends_it() {
    let mut task = spawn(&wat_fixture("spin"), StdioHost::new(["spin"]), limits(u64::MAX, 1_000));
    assert_eq!(task.poll(), TaskState::Running);
    assert_eq!(task.kill().reason, ExitReason::Killed);
    assert!(matches!(task.poll(), TaskState::Ready(_)));
}

#[test]
fn zero_slice_fuel_is_rejected() {
    let err = compile(&wat_fixture("hello")).spawn(StdioHost::new(["x"]), limits(100, 0)).unwrap_err();
    assert!(matches!(err, RuntimeError::Limits(_)), "{err:?}");
}

#[test]
fn the_instance_pool_bounds_live_guests() {
    let config = RuntimeConfig {
        pooling: Some(PoolingConfig { max_instances: 2, max_memory_bytes: 1 << 20 }),
        ..RuntimeConfig::default()
    };
    let program = Runtime::<StdioHost>::new(config).unwrap().compile(&wat_fixture("cat")).unwrap();
    let spawn = || program.spawn(StdioHost::new(["cat"]), TaskLimits::default()).unwrap();
    let (mut first, mut second, mut third) = (spawn(), spawn(), spawn());
    assert_eq!(first.poll(), TaskState::Pending(WaitReason::ReadStdin));
    assert_eq!(second.poll(), TaskState::Pending(WaitReason::ReadStdin));
    match third.poll() {
        TaskState::Ready(status) => {
            assert_eq!(status.code, EXIT_CANNOT_EXECUTE);
            assert!(matches!(status.reason, ExitReason::InstantiationFailed { .. }), "{status:?}");
        }
        other => panic!("a third guest should not fit in the pool: {other:?}"),
    }
    // Killing a guest frees its slot.
    first.kill();
    let mut fourth = spawn();
    assert_eq!(fourth.poll(), TaskState::Pending(WaitReason::ReadStdin));
    fourth.host().push_stdin(b"pooled\n");
    fourth.host().close_stdin();
    let out = run_to_end(&mut fourth);
    assert_eq!(out.stdout, b"pooled\n");
    // The pool's memory bound applies too.
    let hog = Runtime::<StdioHost>::new(RuntimeConfig {
        pooling: Some(PoolingConfig { max_instances: 2, max_memory_bytes: 1 << 20 }),
        ..RuntimeConfig::default()
    })
    .unwrap()
    .compile(&wat_fixture("memhog"))
    .unwrap();
    let out = run_to_end(&mut hog.spawn(StdioHost::new(["memhog"]), TaskLimits::default()).unwrap());
    assert_eq!(
        out.status,
        ExitStatus {
            code: EXIT_TRAP,
            reason: ExitReason::MemoryLimit { limit_bytes: 1 << 20, requested_bytes: (1 << 20) + 65_536 }
        }
    );
    assert_eq!(out.usage.peak_memory_bytes, 1 << 20);
}
