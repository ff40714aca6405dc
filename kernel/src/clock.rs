//! Time and entropy, both injected: the kernel never reads a real clock or random source.

/// A reading of the driver's clock, passed with every call into the kernel.
///
/// `monotonic_ms` orders events and drives deadlines; `wall_ms` (milliseconds since the Unix
/// epoch) only ever appears in data shown to guests and hosts (file times, timestamps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Now {
    pub monotonic_ms: u64,
    pub wall_ms: u64,
}

impl Now {
    pub fn from_millis(monotonic_ms: u64, wall_ms: u64) -> Self {
        Self { monotonic_ms, wall_ms }
    }
}

/// A small deterministic generator (SplitMix64) seeded by the driver. It is not a CSPRNG: it
/// exists so that one seed reproduces a whole run. Guests that need secrecy get bytes from it
/// too; a production driver seeds it from the OS.
#[derive(Debug, Clone)]
pub struct Entropy {
    state: u64,
}

impl Entropy {
    pub fn from_seed(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            let len = chunk.len();
            chunk.copy_from_slice(bytes.get(..len).unwrap_or(&[]));
        }
    }
}
