//! An in-memory transport: bytes in, frames out, a manual clock. Tests use it to drive the very
//! same [`Driver`] the stdio loop uses, without processes or pipes.

use crate::{Driver, Input};
use kernel::{Now, Sidecar, SidecarConfig};

/// A sidecar behind byte pipes, with time advanced by hand.
#[derive(Debug)]
pub struct MemoryTransport {
    driver: Driver,
    now: Now,
    outbound: Vec<Vec<u8>>,
}

impl MemoryTransport {
    pub fn new(config: SidecarConfig) -> Self {
        Self { driver: Driver::new(Sidecar::new(config)), now: Now::default(), outbound: Vec::new() }
    }

    /// Writes host bytes (any chunking) into the sidecar.
    pub fn write(&mut self, bytes: &[u8]) {
        self.feed(&Input::Bytes(self.driver.primary(), bytes.to_vec()));
    }

    /// Advances the manual clock and fires due timers.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now.monotonic_ms += ms;
        self.now.wall_ms += ms;
        self.feed(&Input::Tick);
    }

    /// Closes the host's end, as stdin EOF does.
    pub fn close(&mut self) {
        self.feed(&Input::Eof(self.driver.primary()));
    }

    fn feed(&mut self, input: &Input) {
        // Nothing is recorded here, so applying cannot fail.
        let outputs = self.driver.apply(input, self.now).unwrap_or_default();
        self.outbound.extend(outputs.into_iter().map(|output| output.bytes));
    }

    /// Every frame written so far (length prefix included), oldest first; drained.
    pub fn read_frames(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbound)
    }

    pub fn sidecar(&self) -> &Sidecar {
        self.driver.sidecar()
    }
}
