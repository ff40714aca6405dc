//! The guest's imports: one file per import module, each a thin marshaller over the one typed
//! host model, [`WasiHost`]. An import decodes the guest's arguments (pointers checked against
//! its memory, flags against what the ABI defines), calls one host method, and encodes the
//! results back into guest memory; what a call means lives in the host, not here.
//!
//! | module | file | what |
//! | --- | --- | --- |
//! | `wasi_snapshot_preview1` | [`wasi_p1`] | WASI preview 1: arguments, clocks, descriptors, paths, polling |
//! | `host_process` | [`host_process`] | pids, pipes, descriptor duplication, signals, spawn and wait |
//! | `host_user` | [`host_user`] | identity, passwd entries, terminals |
//!
//! The original's command packages also import `host_fs`, `host_net` and `host_tty`; none is
//! defined yet, so a module that imports them fails to link (`RuntimeError::Link`) rather than
//! running against a guessed ABI. Each will be one more file here, registered in
//! [`add_to_linker`], with its host calls added to [`WasiHost`].
//!
//! The glue every import shares is below: the errno a call answers, and the two ways a call
//! waits for the host — [`until_ready`] for calls whose host method can answer
//! `WouldBlock` (reads, writes, polls, sleeps) and [`retrying`] for calls the host asks to
//! retry once it is ready ([`WasiHost::take_wait`]: permission prompts, waiting for a child).

mod host_process;
mod host_user;
mod wasi_p1;

use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use wasmtime::{Caller, Linker};

use crate::abi::Errno;
use crate::ctx::{lock, GuestCtx, Shared};
use crate::host::{SysError, WasiHost};
use crate::memory::GuestMemory;

pub use host_process::HOST_PROCESS;
pub use host_user::HOST_USER;
pub(crate) use wasi_p1::GuestExit;
pub use wasi_p1::MODULE as WASI_MODULE;

/// The store an import runs against.
pub(crate) type Ctx<'a, H> = Caller<'a, GuestCtx<H>>;
/// The future of an import that may suspend the guest.
pub(crate) type BoxFuture<'a, T> = Box<dyn Future<Output = T> + Send + 'a>;

/// Defines every import module a guest may use in `linker`: `wasi_snapshot_preview1`,
/// `host_process` and `host_user`.
///
/// # Errors
///
/// Fails if `linker` already defines one of them (and shadowing is off).
pub fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    wasi_p1::add_to_linker(linker)?;
    host_process::add_to_linker(linker)?;
    host_user::add_to_linker(linker)
}

/// Runs a synchronous call; when the host says the call must wait ([`WasiHost::take_wait`],
/// e.g. for a permission prompt), the guest suspends with that reason and the call is retried
/// from scratch when the task is polled again. Calls check guest memory before they reach the
/// host, so a retried call has had no effect the first time.
pub(crate) async fn retrying<'a, H: WasiHost>(
    caller: &mut Ctx<'a, H>,
    mut call: impl FnMut(&mut Ctx<'a, H>) -> i32,
) -> i32 {
    loop {
        let result = call(caller);
        let Some(reason) = caller.data().with_host(H::take_wait) else { return result };
        let shared = Arc::clone(&caller.data().shared);
        let mut suspended = false;
        poll_fn(move |_cx| {
            if suspended {
                Poll::Ready(())
            } else {
                suspended = true;
                lock(&shared).wait = Some(reason);
                Poll::Pending
            }
        })
        .await;
    }
}

/// Calls `op` on the host until it stops answering `WouldBlock`. Each `WouldBlock` records the
/// wait reason for the task and suspends the guest; the task's next poll retries.
pub(crate) async fn until_ready<H: WasiHost, T>(
    shared: Arc<Mutex<Shared<H>>>,
    mut op: impl FnMut(&mut H) -> Result<T, SysError>,
) -> Result<T, Errno> {
    poll_fn(move |_cx| {
        let mut shared = lock(&shared);
        match op(&mut shared.host) {
            Ok(value) => Poll::Ready(Ok(value)),
            Err(SysError::Errno(errno)) => Poll::Ready(Err(errno)),
            Err(SysError::WouldBlock(reason)) => {
                shared.wait = Some(reason);
                Poll::Pending
            }
        }
    })
    .await
}

/// A guest `i32` as the unsigned value WASI means (pointers, lengths, descriptors).
pub(crate) fn u(value: i32) -> u32 {
    value.cast_unsigned()
}

/// The errno a call returns to the guest.
pub(crate) fn errno(result: Result<(), Errno>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(errno) => i32::from(errno.raw()),
    }
}

/// Writes a host answer to a `*mut u32` result pointer, or returns its errno.
fn write_u32<H: WasiHost>(caller: &mut Ctx<'_, H>, value: Result<u32, Errno>, ptr: i32) -> i32 {
    errno((|| {
        let memory = GuestMemory::of(caller)?;
        memory.check(&*caller, u(ptr), 4)?;
        memory.write_u32(&mut *caller, u(ptr), value?)
    })())
}
