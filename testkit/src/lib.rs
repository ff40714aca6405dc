//! Test support, never linked into the sidecar: what the kernel's tests, the simulator and the
//! fuzz targets share.
//!
//! - [`script`]: a guest engine whose "programs" are Rust written against the kernel's
//!   `Syscalls`, so every process path runs without compiling WebAssembly.

#![forbid(unsafe_code)]

pub mod script;
