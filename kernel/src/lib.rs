//! The deterministic, sans-IO Secure Exec virtual kernel.
//!
//! Nothing here reads the OS clock, randomness, files, sockets, environment or threads: time is
//! passed in by the driver with every call, entropy comes from a seed. The outside world is
//! reached only through the ports the embedder injects (`host`), called synchronously today;
//! making every such effect an output the driver performs is the next step.
//!
//! # Rooms
//!
//! | room | what lives there |
//! |---|---|
//! | [`dispatch`] | the one `Sidecar` state machine: streams, connections, sessions, routing a request to its subsystem, frames, pending host requests and prompts, persistence requests, process requests and the scheduler's tick |
//! | [`vm`] | one VM's control state: configuration, policy, toolkits, limits |
//! | [`fs`] | a VM's namespace over [`vfs`]: mounts, devices and `/proc`, layers, js_bridge, the guest filesystem operations |
//! | [`process`] | the process table, descriptors, pipes, signals, the exec resolver, what kernel work costs |
//! | [`syscalls`] | what a guest may do, on the VM lent to its slice |
//! | [`host`] | every port the embedder injects: host directories, the persistence store, the guest engine |
//! | [`policy`] | the config JSON shapes and the permission policy |
//! | [`vfs`] | inodes, layers, overlays: a filesystem that knows no wire type |
//!
//! Rooms depend downwards in that table's reverse order: `vfs` and `policy` know no other room,
//! `dispatch` may use them all.

#![forbid(unsafe_code)]

pub mod clock;
pub mod dispatch;
pub mod error;
pub mod fs;
pub mod host;
pub mod policy;
pub mod process;
pub mod syscalls;
pub mod vfs;
pub mod vm;

pub use clock::{Entropy, Now};
pub use dispatch::{InjectedFault, Output, Sidecar, SidecarConfig, StreamId};
pub use error::{RejectCode, Rejection};
