//! Bounds-checked access to a guest's linear memory. Every guest pointer goes through here; a
//! pointer or length that leaves the memory is `EFAULT`, never a panic or a host-side allocation
//! sized by the guest.

use wasmtime::{AsContext, AsContextMut, Caller, Extern, Memory};

use crate::abi::Errno;

/// Most iovecs one `fd_read`/`fd_write` call may pass (POSIX `IOV_MAX`); more is `EINVAL`.
pub const MAX_IOVECS: u32 = 1024;

/// Most bytes one `fd_read`/`fd_write`/`random_get` call moves through the host at once; larger
/// requests are served short (reads and writes) or in chunks (`random_get`).
pub const MAX_IO_BYTES: usize = 1 << 20;

/// Longest path (in bytes) a path call accepts; longer is `ENAMETOOLONG`. Linux's `PATH_MAX`:
/// real programs never need more, and it bounds what one call copies out of the guest.
pub const MAX_PATH_BYTES: usize = 4096;

/// Most subscriptions one `poll_oneoff` call may pass; more is `EINVAL`. The runtime copies them
/// into host memory (48 bytes each) and the host scans them on every retry while the guest
/// waits, so the count must be bounded; 4096 is twice what libc's `poll`/`select` can ask for
/// (`FD_SETSIZE` 1024 descriptors, read and write, plus a timeout).
pub const MAX_POLL_SUBSCRIPTIONS: u32 = 4096;

/// One `(buf, buf_len)` iovec from guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoVec {
    pub(crate) ptr: u32,
    pub(crate) len: u32,
}

/// The exported `memory` of the calling instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestMemory {
    memory: Memory,
}

impl GuestMemory {
    /// The caller's exported `memory`; a module without one has no valid pointers (`EFAULT`).
    pub(crate) fn of<T>(caller: &mut Caller<'_, T>) -> Result<GuestMemory, Errno> {
        caller
            .get_export("memory")
            .and_then(Extern::into_memory)
            .map(|memory| GuestMemory { memory })
            .ok_or(Errno::Fault)
    }

    /// The host offset of `[ptr, ptr + len)` if that range lies inside the memory.
    pub(crate) fn check(&self, store: impl AsContext, ptr: u32, len: usize) -> Result<usize, Errno> {
        let start = usize::try_from(ptr).map_err(|_| Errno::Fault)?;
        let end = start.checked_add(len).ok_or(Errno::Fault)?;
        if end > self.memory.data_size(store) {
            return Err(Errno::Fault);
        }
        Ok(start)
    }

    pub(crate) fn read(&self, store: impl AsContext, ptr: u32, len: usize) -> Result<Vec<u8>, Errno> {
        let store = store.as_context();
        let offset = self.check(&store, ptr, len)?;
        let mut out = vec![0u8; len];
        self.memory.read(&store, offset, &mut out).map_err(|_| Errno::Fault)?;
        Ok(out)
    }

    pub(crate) fn write(&self, mut store: impl AsContextMut, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        let mut store = store.as_context_mut();
        let offset = self.check(&store, ptr, bytes.len())?;
        self.memory.write(&mut store, offset, bytes).map_err(|_| Errno::Fault)
    }

    /// Reads a path argument: `EFAULT` outside the memory, `ENAMETOOLONG` beyond
    /// [`MAX_PATH_BYTES`].
    pub(crate) fn path(&self, store: impl AsContext, ptr: u32, len: u32) -> Result<Vec<u8>, Errno> {
        let store = store.as_context();
        let len = usize::try_from(len).map_err(|_| Errno::Fault)?;
        self.check(&store, ptr, len)?;
        if len > MAX_PATH_BYTES {
            return Err(Errno::NameTooLong);
        }
        self.read(&store, ptr, len)
    }

    /// Reads an iovec array and checks every buffer lies inside the memory, so a call fails with
    /// `EFAULT` before it has any effect.
    pub(crate) fn iovecs(&self, store: impl AsContext, iovs: u32, iovs_len: u32) -> Result<Vec<IoVec>, Errno> {
        if iovs_len > MAX_IOVECS {
            return Err(Errno::Inval);
        }
        let store = store.as_context();
        let count = usize::try_from(iovs_len).map_err(|_| Errno::Inval)?;
        let raw = self.read(&store, iovs, count.checked_mul(8).ok_or(Errno::Inval)?)?;
        let mut out = Vec::with_capacity(count);
        for entry in raw.chunks_exact(8) {
            let (ptr, len) = entry.split_at(4);
            let vec = IoVec { ptr: le_u32(ptr)?, len: le_u32(len)? };
            self.check(&store, vec.ptr, usize::try_from(vec.len).map_err(|_| Errno::Fault)?)?;
            out.push(vec);
        }
        Ok(out)
    }
}

fn le_u32(bytes: &[u8]) -> Result<u32, Errno> {
    <[u8; 4]>::try_from(bytes).map(u32::from_le_bytes).map_err(|_| Errno::Fault)
}
