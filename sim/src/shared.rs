//! What every simulated host reports into: invariant violations ("always"), reached states
//! ("sometimes"), and the hash and log of every frame the kernel produced.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// A state the simulation must reach in some seed of a run (coverage).
pub const COVERAGE_POINTS: &[&str] = &[
    "vm_created",
    "vm_disposed",
    "request_rejected",
    "limit_hit",
    "callback_answered",
    "callback_error",
    "callback_timed_out",
    "late_callback_answer",
    "ask_allowed",
    "ask_denied",
    "ask_timed_out",
    "vm_disposed_mid_request",
    "connection_dropped_mid_frame",
    "corrupted_frame",
    "duplicated_frame",
    "protocol_error_event",
    "clock_jump",
    "reader_paused",
    "partition_healed",
    "fs_matched_model",
    "store_failure",
    "crash_mid_flush",
    "store_effects_overlapped",
    "flush_survived_crash",
    "state_restored",
    "process_exited",
    "process_killed",
    "process_output_matched",
    "real_guest_exited",
    "real_wc_counted",
    "real_child_piped",
    "real_sleep_woke",
    "real_node_ran",
    "real_python_ran",
    "real_loop_out_of_fuel",
    "real_sockets_talked",
    "every_process_finished",
    "host_dir_mounted",
    "host_dir_matched_model",
    "guest_read_host_file",
    "host_fs_failed",
    "egress_fetched",
    "egress_failed",
    "egress_truncated",
    "egress_connect_timed_out",
];

/// Kernel bookkeeping sizes, for the no-leak invariant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounts {
    pub streams: usize,
    pub connections: usize,
    pub sessions: usize,
    pub vms: usize,
    pub pending: usize,
    /// Store effects asked for and not completed.
    pub effects: usize,
    /// Connections out the kernel holds open (from its `NetConnect` to its `NetClose`'s
    /// completion).
    pub links: usize,
    /// The simulated driver's link tasks still running (each owns at most one socket).
    pub link_tasks: usize,
}

/// The faults between the sidecar and the `web` host, as the workload's model sees them.
#[derive(Debug, Default)]
pub struct EgressFaults {
    /// Odd while a fault is on: it grows when one starts and when it ends, so a guest that
    /// saw the same even value at its start and its end ran with no fault at all.
    pub epoch: u64,
    /// When the fault on now ends (simulated time).
    pub until: Option<Duration>,
    /// A client has finished its steps: no new fault starts (the liveness phase).
    pub over: bool,
    /// Responses `web` cut short (or gave up on), by request path: the bytes it sent.
    pub truncated: BTreeMap<String, usize>,
}

impl EgressFaults {
    /// Whether a fault was on at some time since `epoch` was read.
    pub fn hit_since(&self, epoch: u64) -> bool {
        epoch % 2 == 1 || self.epoch != epoch
    }

    /// When the fault on now ends (zero if none is on).
    pub fn quiet_from(&self) -> Duration {
        self.until.unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct Shared {
    pub violations: Vec<String>,
    pub coverage: BTreeSet<&'static str>,
    /// FNV-1a over (stream, frame bytes) of every output, in order.
    pub output_hash: u64,
    pub output_log: Vec<(u64, Vec<u8>)>,
    pub keep_log: bool,
    pub kernel: KernelCounts,
    pub clients_done: usize,
    pub egress: EgressFaults,
}

pub type SharedRef = Rc<RefCell<Shared>>;

impl Shared {
    pub fn new(keep_log: bool) -> SharedRef {
        Rc::new(RefCell::new(Self { output_hash: FNV_OFFSET, keep_log, ..Self::default() }))
    }

    pub fn violation(&mut self, message: String) {
        // One seed's first few violations are what matter; bound the list.
        if self.violations.len() < MAX_RECORDED_VIOLATIONS {
            self.violations.push(message);
        }
    }

    pub fn reached(&mut self, point: &'static str) {
        debug_assert!(COVERAGE_POINTS.contains(&point), "undeclared coverage point {point}");
        self.coverage.insert(point);
    }

    pub fn record_output(&mut self, stream: u64, bytes: &[u8]) {
        for byte in stream.to_le_bytes().iter().chain(bytes) {
            self.output_hash ^= u64::from(*byte);
            self.output_hash = self.output_hash.wrapping_mul(FNV_PRIME);
        }
        if self.keep_log {
            self.output_log.push((stream, bytes.to_vec()));
        }
    }
}

const MAX_RECORDED_VIOLATIONS: usize = 32;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
