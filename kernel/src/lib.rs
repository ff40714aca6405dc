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
//! | [`dispatch`] | the one `Sidecar` state machine (every `impl Sidecar`): streams, connections, sessions, routing a request to its subsystem, frames, pending host requests and prompts, persistence requests, process requests, and the scheduler with the running guest tasks |
//! | [`syscalls`] | what a guest may do, on the VM lent to its slice, by area (`fds`: descriptors and streams; `files`: paths, each a typed filesystem operation; `processes`: children, signals, sleeps); the guest engine port (`engine`) it is lent to |
//! | [`vm`] | one VM's state: configuration, policy, toolkits, limits, its filesystem and process table, and the exec resolver (`exec`) shared by `Execute` and guest spawns |
//! | [`process`] | the process table, descriptors, pipes, signals, guest limits and the memory budget, what kernel work costs |
//! | [`net`] | a VM's network: its sockets, the loopback joining them, HTTP for `VmFetch` |
//! | [`fs`] | a VM's namespace over [`vfs`]: the typed operations (`op`: `FsOp` in, `FsReply` out) over mounts, devices and `/proc`, layers and js_bridge; `wire` is the one adapter from the wire's filesystem requests to them |
//! | [`host`] | the ports to the outside world the embedder injects: host directories, the persistence store |
//! | [`policy`] | the config JSON shapes and the permission policy |
//! | [`vfs`] | inodes, layers, overlays: a filesystem that knows no wire type |
//! | [`ids`], [`clock`], [`error`] | typed ids, time and entropy, rejections |
//!
//! Each room uses only the rooms below it in this table (`tests/it/architecture.rs` checks
//! that no import cycle exists, that the vfs knows no wire type, that guest system calls name no
//! wire filesystem type, and that only `fs::wire` reads the filesystem requests).

#![forbid(unsafe_code)]

pub mod clock;
pub mod dispatch;
pub mod error;
pub mod fs;
pub mod host;
pub mod ids;
pub mod net;
pub mod policy;
pub mod process;
pub mod syscalls;
pub mod vfs;
pub mod vm;

pub use clock::{Entropy, Now};
#[cfg(feature = "testing")]
pub use dispatch::InjectedFault;
pub use dispatch::{Output, Sidecar, SidecarConfig, StreamId};
pub use error::{RejectCode, Rejection};
