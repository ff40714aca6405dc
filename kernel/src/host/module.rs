//! Programs' modules as the kernel hands them to the guest engine: bytes in memory (a VM's
//! file, a registered program), or installed software's module, named by the digest its install
//! states and read only when the engine has no code compiled from it.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A program's module as the kernel hands it to a guest engine. Cloning shares it.
#[derive(Clone)]
pub enum SharedModule {
    /// Bytes in memory: a VM's file, a registered program.
    Bytes(Arc<[u8]>),
    /// Installed software named by its digest, read only when an engine has no code for it.
    Installed(Arc<InstalledModule>),
}

impl From<Arc<[u8]>> for SharedModule {
    fn from(bytes: Arc<[u8]>) -> Self {
        Self::Bytes(bytes)
    }
}

impl SharedModule {
    /// Whether both are the same shared module (not merely equal bytes).
    pub fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Bytes(a), Self::Bytes(b)) => Arc::ptr_eq(a, b),
            (Self::Installed(a), Self::Installed(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether these are the very bytes `bytes` (an installed module's, once read, are not: it
    /// is known by its own identity).
    pub fn is_bytes(&self, bytes: &Arc<[u8]>) -> bool {
        matches!(self, Self::Bytes(held) if Arc::ptr_eq(held, bytes))
    }

    /// Its length in bytes, known without reading it.
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(bytes) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            Self::Installed(installed) => installed.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its bytes: an installed module's are read now if they were not yet.
    ///
    /// # Errors
    ///
    /// An installed module could not be read (why).
    pub fn bytes(&self) -> Result<Arc<[u8]>, String> {
        match self {
            Self::Bytes(bytes) => Ok(Arc::clone(bytes)),
            Self::Installed(installed) => installed.bytes().map(Arc::clone),
        }
    }

    /// Holders of it besides the caller's reference (an engine's cache keeps only what others
    /// hold for free), and the bytes it keeps in memory.
    pub fn holders_and_bytes(&self) -> (usize, usize) {
        match self {
            Self::Bytes(bytes) => (Arc::strong_count(bytes), bytes.len()),
            Self::Installed(installed) => {
                (Arc::strong_count(installed), installed.bytes.get().map_or(0, |bytes| bytes.len()))
            }
        }
    }
}

/// Equal bytes, or installed modules stating the same digest and length.
impl PartialEq for SharedModule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Bytes(a), Self::Bytes(b)) => a == b,
            (Self::Installed(a), Self::Installed(b)) => a.digest == b.digest && a.len == b.len,
            _ => false,
        }
    }
}

impl Eq for SharedModule {}

impl fmt::Debug for SharedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(bytes) => f.debug_struct("Bytes").field("len", &bytes.len()).finish(),
            Self::Installed(installed) => installed.fmt(f),
        }
    }
}

/// A module of installed software (the Python interpreter): its SHA-256 as the install states
/// it (its checksums, checked when it was installed) and its length, with its bytes read on
/// first need. An engine that kept code compiled from bytes with that digest runs it without
/// them: a sidecar's first Python start does not read (nor hold) the interpreter's 100 MB. One
/// that compiles reads them and files the code under the digest of what it read, so a wrong
/// statement costs a compile and never runs another module's code.
pub struct InstalledModule {
    digest: [u8; 32],
    len: u64,
    bytes: OnceLock<Arc<[u8]>>,
    read: Box<dyn Fn() -> Result<Arc<[u8]>, String> + Send + Sync>,
}

impl InstalledModule {
    /// The module whose SHA-256 is `digest` and length `len`, which `read` reads.
    pub fn new(
        digest: [u8; 32],
        len: u64,
        read: impl Fn() -> Result<Arc<[u8]>, String> + Send + Sync + 'static,
    ) -> Self {
        Self { digest, len, bytes: OnceLock::new(), read: Box::new(read) }
    }

    /// Its SHA-256, as its install states it.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The digest's first eight bytes, which stand for it where a `u64` names a module (the
    /// compile record's keys, the trace's effect summaries).
    pub fn short_digest(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = self.digest;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its bytes, read on the first call that succeeds (a failed read is tried again at the
    /// next). Bytes of another length than stated are refused: the install changed.
    ///
    /// # Errors
    ///
    /// The read failed, or gave another length.
    pub fn bytes(&self) -> Result<&Arc<[u8]>, String> {
        if let Some(bytes) = self.bytes.get() {
            return Ok(bytes);
        }
        let read = (self.read)()?;
        if u64::try_from(read.len()).unwrap_or(u64::MAX) != self.len {
            return Err(format!(
                "the installed module changed: {} bytes, where its install states {}",
                read.len(),
                self.len
            ));
        }
        Ok(self.bytes.get_or_init(|| read))
    }
}

impl fmt::Debug for InstalledModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstalledModule")
            .field("len", &self.len)
            .field("read", &self.bytes.get().is_some())
            .finish_non_exhaustive()
    }
}
