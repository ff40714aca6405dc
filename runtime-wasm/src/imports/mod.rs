//! The guest's imports: one file per import module, each a thin marshaller over the one typed
//! host model, [`WasiHost`]. An import decodes the guest's arguments (pointers checked against
//! its memory, flags against what the ABI defines), calls one host method, and encodes the
//! results back into guest memory; what a call means lives in the host, not here.
//!
//! | module | file | what |
//! | --- | --- | --- |
//! | `wasi_snapshot_preview1` | [`wasi_p1`] | WASI preview 1: arguments, clocks, descriptors, paths, polling |
//! | `host_process` | [`host_process`] | pids, pipes, descriptor duplication, signals, spawn and wait |
//! | `host_user` | [`host_user`] | identity and credentials, passwd and group records, terminals |
//! | `host_fs` | [`host_fs`] | `st_mode`, sizes, owners, devices, `chmod`, `chown`, `ftruncate`, `statfs`, `remount` |
//! | `host_net` | [`host_net`] | socket sends and receives (no sockets yet: `EBADF`, the libc falls back to WASI) |
//! | `host_tty` | [`host_tty`] | terminal reads and raw mode (no terminals yet) |
//! | `host` | [`host_call`] | `call`, CPython-for-WASI's door to host functions (the tool protocol) |
//!
//! These are the modules the original's command packages (and CPython for WASI) import; a module importing anything
//! else fails to link (`RuntimeError::Link`) rather than running against a guessed ABI. A new
//! module is one more file here, registered in [`add_to_linker`], with its host calls added to
//! [`WasiHost`].
//!
//! The glue every import shares is below, so that an import reads as its marshalling only:
//!
//! - [`Call`]: one call's guest memory and host. Imports take their steps through it in the
//!   same order — check the result pointers ([`OutPtr`]), read the arguments, call the host,
//!   write the results — so a bad pointer is found (`EFAULT`) before the host acts on the call;
//! - [`returning`] / [`returning_pair`] / [`host_errno`]: the common shapes (a value through a
//!   pointer, two values, only an errno) as one line each;
//! - [`until_ready`], the one way a call waits for the host: the guest suspends and the call
//!   runs again once the host is ready. Host methods that can block say so in their answer
//!   (`WouldBlock`: reads, writes, polls, sleeps; [`host_until_ready`] runs them, [`suspending`]
//!   wraps the import); synchronous calls are parked by the host instead
//!   ([`WasiHost::take_wait`]: permission prompts, waiting for a child; [`define_retrying`]
//!   registers them).

mod host_call;
mod host_fs;
mod host_net;
mod host_process;
mod host_tty;
mod host_user;
mod wasi_p1;

use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use wasmtime::{Caller, Linker, WasmTyList};

use crate::abi::{Errno, FdStat, Filestat, Prestat};
use crate::ctx::{lock, GuestCtx, Shared};
use crate::host::{SysError, WaitReason, WasiHost};
use crate::memory::{GuestMemory, IoVec};

pub use host_fs::MODULE as HOST_FS;
pub use host_net::MODULE as HOST_NET;
pub use host_process::MODULE as HOST_PROCESS;
pub use host_tty::MODULE as HOST_TTY;
pub use host_user::MODULE as HOST_USER;
pub(crate) use wasi_p1::GuestExit;
pub use wasi_p1::MODULE as WASI_MODULE;

/// The store an import runs against.
type Ctx<'a, H> = Caller<'a, GuestCtx<H>>;
/// The future of an import that may suspend the guest.
type BoxFuture<'a, T> = Box<dyn Future<Output = T> + Send + 'a>;

/// Defines every import module a guest may use in `linker`: `wasi_snapshot_preview1`,
/// `host_process`, `host_user`, `host_fs`, `host_net` and `host_tty`.
///
/// # Errors
///
/// Fails if `linker` already defines one of them (and shadowing is off).
pub fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    wasi_p1::add_to_linker(linker)?;
    host_process::add_to_linker(linker)?;
    host_user::add_to_linker(linker)?;
    host_fs::add_to_linker(linker)?;
    host_net::add_to_linker(linker)?;
    host_tty::add_to_linker(linker)?;
    host_call::add_to_linker(linker)
}

/// The errno a call returns to the guest.
fn errno(result: Result<(), Errno>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(errno) => i32::from(errno.raw()),
    }
}

/// One import call: the caller (its host and store) and the memory its pointers point into.
struct Call<'c, 'a, H: WasiHost> {
    caller: &'c mut Ctx<'a, H>,
    memory: GuestMemory,
}

impl<'c, 'a, H: WasiHost> Call<'c, 'a, H> {
    /// The call of `caller`; `EFAULT` if its module exports no memory (no pointer is valid).
    fn of(caller: &'c mut Ctx<'a, H>) -> Result<Self, Errno> {
        let memory = GuestMemory::of(caller)?;
        Ok(Call { caller, memory })
    }

    /// Runs `op` on the host.
    fn host<R>(&self, op: impl FnOnce(&mut H) -> R) -> R {
        self.caller.data().with_host(op)
    }

    /// The state shared with the task, for calls that suspend ([`host_until_ready`]).
    fn shared(&self) -> Arc<Mutex<Shared<H>>> {
        Arc::clone(&self.caller.data().shared)
    }

    /// `EFAULT` unless `[ptr, ptr + len)` lies in memory.
    fn check(&self, ptr: u32, len: usize) -> Result<(), Errno> {
        self.memory.check(&*self.caller, ptr, len).map(drop)
    }

    /// The size of the guest buffer `(ptr, len)`, checked to lie in memory.
    fn buffer(&self, ptr: u32, len: u32) -> Result<usize, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::Fault)?;
        self.check(ptr, len)?;
        Ok(len)
    }

    /// `ptr`, checked to have room for the `T` the call answers there.
    fn out<T: Out>(&self, ptr: u32) -> Result<OutPtr<T>, Errno> {
        self.check(ptr, T::SIZE)?;
        Ok(OutPtr { ptr, value: PhantomData })
    }

    fn read(&self, ptr: u32, len: usize) -> Result<Vec<u8>, Errno> {
        self.memory.read(&*self.caller, ptr, len)
    }

    /// A path argument (see [`GuestMemory::path`]).
    fn path(&self, ptr: u32, len: u32) -> Result<Vec<u8>, Errno> {
        self.memory.path(&*self.caller, ptr, len)
    }

    /// An iovec array, every buffer checked (see [`GuestMemory::iovecs`]).
    fn iovecs(&self, iovs: u32, iovs_len: u32) -> Result<Vec<IoVec>, Errno> {
        self.memory.iovecs(&*self.caller, iovs, iovs_len)
    }

    fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        self.memory.write(&mut *self.caller, ptr, bytes)
    }

    /// Writes a result where [`Call::out`] made room for it.
    fn put<T: Out>(&mut self, at: OutPtr<T>, value: T) -> Result<(), Errno> {
        self.write(at.ptr, value.encode().as_ref())
    }
}

/// A result an import hands back through a guest pointer, in its ABI encoding.
trait Out {
    /// Bytes it takes in guest memory.
    const SIZE: usize;

    fn encode(&self) -> impl AsRef<[u8]>;
}

/// Integers are little-endian; the ABI's structs encode themselves.
macro_rules! out_values {
    ($($ty:ty => $size:expr, $encode:ident;)*) => {$(
        impl Out for $ty {
            const SIZE: usize = $size;

            fn encode(&self) -> impl AsRef<[u8]> {
                self.$encode()
            }
        }
    )*};
}

out_values! {
    u32 => 4, to_le_bytes;
    u64 => 8, to_le_bytes;
    FdStat => FdStat::SIZE, encode;
    Prestat => Prestat::SIZE, encode;
    Filestat => Filestat::SIZE, encode;
}

/// A guest pointer [`Call::out`] checked to have room for a `T`. Result pointers are checked
/// before the host is asked, so a call that faults on one has not acted on the host.
struct OutPtr<T> {
    ptr: u32,
    value: PhantomData<T>,
}

/// The shape of most calls that answer a value: check `ptr` has room for it, ask the host,
/// write the answer there.
fn returning<H: WasiHost, T: Out>(
    caller: &mut Ctx<'_, H>,
    ptr: u32,
    op: impl FnOnce(&mut H) -> Result<T, Errno>,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let at = call.out(ptr)?;
    let value = call.host(op)?;
    call.put(at, value)
}

/// As [`returning`], for a call that answers two values through two pointers.
fn returning_pair<H: WasiHost, A: Out, B: Out>(
    caller: &mut Ctx<'_, H>,
    (first, second): (u32, u32),
    op: impl FnOnce(&mut H) -> Result<(A, B), Errno>,
) -> Result<(), Errno> {
    let mut call = Call::of(caller)?;
    let (first, second) = (call.out(first)?, call.out(second)?);
    let (a, b) = call.host(op)?;
    call.put(first, a)?;
    call.put(second, b)
}

/// A call that answers only an errno: the host's.
fn host_errno<H: WasiHost>(caller: &Ctx<'_, H>, op: impl FnOnce(&mut H) -> Result<(), Errno>) -> i32 {
    errno(caller.data().with_host(op))
}

/// Defines `module.name` as a synchronous call the host may park ([`WasiHost::take_wait`]):
/// `call` takes the caller and the guest's arguments and runs again from scratch after each
/// wait ([`until_ready`]). Calls check guest memory before they reach the host, so a parked
/// call has had no effect.
fn define_retrying<H: WasiHost, P: WasmTyList + Copy + Send + 'static>(
    linker: &mut Linker<GuestCtx<H>>,
    module: &str,
    name: &str,
    call: impl Fn(&mut Ctx<'_, H>, P) -> Result<(), Errno> + Copy + Send + Sync + 'static,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(module, name, move |mut caller: Ctx<'_, H>, params: P| {
        Box::new(async move {
            let shared = Arc::clone(&caller.data().shared);
            until_ready(&shared, move || {
                let result = call(&mut caller, params);
                unless_parked(&caller, errno(result))
            })
            .await
        }) as BoxFuture<'_, i32>
    })?;
    Ok(())
}

/// The future of a call that may suspend the guest, answering its errno.
fn suspending<'a>(call: impl Future<Output = Result<(), Errno>> + Send + 'a) -> BoxFuture<'a, i32> {
    Box::new(async move { errno(call.await) })
}

/// The one way an import waits for the host. `attempt` makes the call; while it answers
/// `Err(reason)` (no data to read yet, a permission prompt, a child still running), the guest
/// suspends with that reason, ending its slice, and `attempt` runs again when the task is
/// polled again.
async fn until_ready<H: WasiHost, T>(
    shared: &Mutex<Shared<H>>,
    mut attempt: impl FnMut() -> Result<T, WaitReason>,
) -> T {
    loop {
        match attempt() {
            Ok(ready) => {
                lock(shared).host.call_settled();
                return ready;
            }
            Err(reason) => suspend_once(|| lock(shared).wait = Some(reason)).await,
        }
    }
}

/// [`until_ready`] for a host method that says in its answer that it must wait
/// ([`SysError::WouldBlock`]: reads, writes, polls, sleeps).
async fn host_until_ready<H: WasiHost, T>(
    shared: Arc<Mutex<Shared<H>>>,
    mut op: impl FnMut(&mut H) -> Result<T, SysError>,
) -> Result<T, Errno> {
    until_ready(&shared, || match op(&mut lock(&shared).host) {
        Ok(value) => Ok(Ok(value)),
        Err(SysError::Errno(errno)) => Ok(Err(errno)),
        Err(SysError::WouldBlock(reason)) => Err(reason),
    })
    .await
}

/// `result`, unless the host parked the call that made it ([`WasiHost::take_wait`]): then the
/// result is void and the call must wait.
fn unless_parked<H: WasiHost, T>(caller: &Ctx<'_, H>, result: T) -> Result<T, WaitReason> {
    match caller.data().with_host(H::take_wait) {
        Some(reason) => Err(reason),
        None => Ok(result),
    }
}

/// Suspends the guest once, ending its slice; `on_suspend` runs as it does (to tell the task
/// why: with no wait reason recorded, the task just starts the next slice).
async fn suspend_once(on_suspend: impl FnOnce()) {
    let mut on_suspend = Some(on_suspend);
    poll_fn(move |_cx| match on_suspend.take() {
        Some(on_suspend) => {
            on_suspend();
            Poll::Pending
        }
        None => Poll::Ready(()),
    })
    .await;
}
