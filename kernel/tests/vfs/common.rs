//! Helpers shared by the test modules.

use kernel::Now;

pub fn t(ms: u64) -> Now {
    Now::from_millis(ms, ms)
}
