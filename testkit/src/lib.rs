//! Test support, never linked into the sidecar: what the kernel's tests, the simulator and the
//! fuzz targets share.
//!
//! - [`script`]: a guest engine whose "programs" are Rust written against the kernel's
//!   `Syscalls`, so every process path runs without compiling WebAssembly.
//! - [`hostfs`]: a host filesystem in memory, with injected failures.
//! - [`packages`]: the original's command packages from npm, installed once per machine.
//! - [`node`]: the `node` command, built once per machine.
//! - [`requests`]: the protocol requests tests send again and again, with defaults.
//! - [`vfs_model`]: the naive reference model of the in-memory filesystem, and the operations
//!   both it and the real thing run; [`vfs_driver`] runs those on a `Filesystem` or `Overlay`.

#![forbid(unsafe_code)]

pub mod hostfs;
pub mod node;
pub mod packages;
pub mod python;
pub mod requests;
pub mod script;
pub mod vfs_driver;
pub mod vfs_model;
