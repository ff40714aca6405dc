//! In-memory stand-ins for the injected I/O: a host directory tree (shared with the simulator,
//! in `testkit`) and failing stores.

use kernel::host::store::{MemoryStore, Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};

pub use testkit::hostfs::{FakeHostFs, Node};

/// A store that keeps the previous value when a `put` fails (like the atomic file store), and
/// can be told to fail the next `put`s.
#[derive(Debug, Default)]
pub struct FailingStore {
    pub inner: MemoryStore,
    pub fail_puts: AtomicBool,
}

impl Store for FailingStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key, max_bytes)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.fail_puts.load(Ordering::SeqCst) {
            // Half the value went to a staging area that is discarded; the committed value stays.
            let _staged = &value[..value.len() / 2];
            return Err(StoreError::Io("disk full after a partial write".into()));
        }
        self.inner.put(key, value)
    }
}

/// A store that is *not* atomic: a failing `put` leaves the torn half of the new value.
#[derive(Debug, Default)]
pub struct TearingStore {
    pub inner: MemoryStore,
    pub tear_puts: AtomicBool,
}

impl Store for TearingStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key, max_bytes)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.tear_puts.load(Ordering::SeqCst) {
            self.inner.put(key, &value[..value.len() / 2])?;
            return Err(StoreError::Io("crashed mid-write".into()));
        }
        self.inner.put(key, value)
    }
}
