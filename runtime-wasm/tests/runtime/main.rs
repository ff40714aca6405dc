//! Integration tests of `runtime-wasm`: fixtures run end to end through `Runtime`, `Program` and
//! `GuestTask` against `StdioHost`, and the filesystem calls against an in-memory `MemFsHost`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod c_fixtures;
mod determinism;
mod exec;
mod fs;
mod host_imports;
mod host_process;
mod limits;
mod memfs;
mod net;
mod preinit;
mod security;
mod stdio;
mod support;
mod syscalls;
