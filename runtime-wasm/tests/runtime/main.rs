//! Integration tests of `runtime-wasm`: fixtures run end to end through `Runtime`, `Program` and
//! `GuestTask` against `StdioHost`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod c_fixtures;
mod determinism;
mod limits;
mod stdio;
mod support;
mod syscalls;
