//! Fixture loading and run helpers.

use runtime_wasm::{
    ExitStatus, GuestTask, Program, Runtime, RuntimeConfig, StdioHost, TaskLimits, TaskState, TaskUsage,
};

/// Bound on polls in `run_to_end`, so a broken scheduler fails a test instead of hanging it.
pub const MAX_POLLS: u64 = 1_000_000;

/// A WAT fixture from `fixtures/wat/`, assembled.
pub fn wat_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/wat/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A checked-in C fixture from `fixtures/c/` (built by `fixtures/c/build.sh`).
pub fn c_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/c/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Inline WAT, assembled.
pub fn wat(source: &str) -> Vec<u8> {
    wat::parse_str(source).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{source}"))
}

pub fn runtime() -> Runtime<StdioHost> {
    Runtime::new(RuntimeConfig::default()).unwrap()
}

pub fn compile(wasm: &[u8]) -> Program<StdioHost> {
    runtime().compile(wasm).unwrap()
}

pub fn spawn(wasm: &[u8], host: StdioHost, limits: TaskLimits) -> GuestTask<StdioHost> {
    compile(wasm).spawn(host, limits).unwrap()
}

/// What a finished guest left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub usage: TaskUsage,
}

impl Finished {
    pub fn stdout_str(&self) -> &str {
        std::str::from_utf8(&self.stdout).unwrap()
    }

    pub fn stderr_str(&self) -> &str {
        std::str::from_utf8(&self.stderr).unwrap()
    }
}

/// Polls until the guest stops; a guest that blocks fails the test (its stdin must be closed).
pub fn run_to_end(task: &mut GuestTask<StdioHost>) -> Finished {
    for _ in 0..MAX_POLLS {
        match task.poll() {
            TaskState::Running => {}
            TaskState::Pending(reason) => panic!("guest blocked on {reason:?}"),
            TaskState::Ready(status) => {
                let host = task.host();
                return Finished {
                    status,
                    stdout: host.stdout().to_vec(),
                    stderr: host.stderr().to_vec(),
                    usage: task.usage(),
                };
            }
        }
    }
    panic!("guest still running after {MAX_POLLS} polls");
}

/// Compiles, spawns and runs `wasm` to the end.
pub fn run(wasm: &[u8], host: StdioHost, limits: TaskLimits) -> Finished {
    run_to_end(&mut spawn(wasm, host, limits))
}

/// Runs `wasm` with default limits and `args`, stdin closed and empty.
pub fn run_args(wasm: &[u8], args: &[&str]) -> Finished {
    run(wasm, StdioHost::new(args.iter().copied()).with_stdin(b""), TaskLimits::default())
}

/// Deterministic pseudo-random bytes for stdin payloads.
pub fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}
