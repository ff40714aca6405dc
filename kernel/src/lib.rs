//! The deterministic, sans-IO Secure Exec virtual kernel.
//!
//! Nothing here reads the OS clock, randomness, files, sockets, environment or threads: time is
//! passed in by the driver with every call, entropy comes from a seed, and every effect on the
//! outside world is an output the driver carries out.

#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod error;
pub mod hostfs;
pub mod permissions;
pub mod persistence;
pub mod sidecar;
pub mod vfs;

pub use clock::{Entropy, Now};
pub use error::{RejectCode, Rejection};
pub use sidecar::process;
pub use sidecar::{InjectedFault, Output, Sidecar, SidecarConfig, StreamId};
