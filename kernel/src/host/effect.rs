//! Effects: what the kernel asks of the outside world, as outputs, and their completions, as
//! inputs.
//!
//! A step never performs I/O. Where it needs the store, it queues an [`Effect`] with an
//! [`EffectId`] and leaves the request that needs it waiting; the driver takes the effect
//! ([`Sidecar::poll_effect`](crate::Sidecar::poll_effect)), performs it when and how it
//! chooses, and feeds back its [`Completion`]
//! ([`Sidecar::handle_completion`](crate::Sidecar::handle_completion)), and the request is
//! answered then. The stdio driver performs each at once, on its loop; the simulator later,
//! against a disk that crashes; `replay` never performs one: it feeds the recorded completions.
//!
//! What a driver must guarantee: every effect it takes gets exactly one completion, with the
//! effect's id (an unknown id is ignored, a completion of the wrong kind answers the request
//! with `io_error`).

use core::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::vfs::Errno;

use super::fs::{HostDir, HostFsError};
use super::journal::{Digest, PortCall, PortValue};
use super::store::{Store, StoreError};
use crate::host::module::SharedModule;

/// Effects waiting for their completions at once, at most: a host can have this many
/// persistence requests in flight before the next is refused (`limit_exceeded`). The stdio
/// driver completes each effect before the next input, so only a driver that performs them
/// later (the simulator) gets near it.
pub const MAX_EFFECTS_IN_FLIGHT: usize = 16;
/// Bytes that effects waiting for their completions may hold together (a flush holds its
/// encoded state until the store has it): four states at the default per-VM bound of 64 MiB.
/// One effect alone may hold more (a VM configured for larger states can still flush one);
/// its own size is bounded by the VM's limit, whose ceiling is
/// [`MAX_PERSISTED_STATE_BYTES`](crate::host::store::MAX_PERSISTED_STATE_BYTES).
pub const MAX_EFFECT_BYTES_IN_FLIGHT: u64 = 256 * 1024 * 1024;

/// Names an effect and its completion; unique for the life of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EffectId(pub u64);

/// Something the kernel needs done outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The value under `key` in the store; `TooLarge` past `max_bytes`.
    StoreGet { key: String, max_bytes: u64 },
    /// Atomically and durably replace `key`'s value.
    StorePut { key: String, value: Vec<u8> },
    /// Compile (and cache in the guest engine) the program `module` for guests whose wasm stack
    /// may use `max_wasm_stack_bytes`, off the kernel's loop: compiling a large module takes
    /// seconds of CPU, which would stall every other VM. The completion only says it is done;
    /// the kernel then loads the program from the engine's cache (see `dispatch::compile`).
    Compile { module: SharedModule, max_wasm_stack_bytes: u64 },
    /// Open a TCP connection to `to` for a guest socket (see `net::egress`).
    NetConnect { link: LinkId, to: SocketAddr },
    /// Write `bytes` on the link, then (with `fin`) shut its writing side. Completed once the
    /// host's socket has taken every byte.
    NetSend { link: LinkId, bytes: Vec<u8>, fin: bool },
    /// Read what arrives on the link, at most `max_bytes`: completed when something has (an
    /// empty answer is end of stream).
    NetRecv { link: LinkId, max_bytes: u32 },
    /// Make the link TLS, verifying the peer as `server_name`: what follows is plaintext here
    /// and encrypted on the wire.
    NetTls { link: LinkId, server_name: String },
    /// Close the link: what it was asked to send is sent first, within the driver's linger
    /// bound; an unanswered send or receive of it is completed with a failure.
    NetClose { link: LinkId },
    /// Open a host UDP socket (of the IPv6 family or not) for a guest datagram socket.
    NetUdpOpen { link: LinkId, ipv6: bool },
    /// Send one datagram on the link's socket.
    NetUdpSend { link: LinkId, to: SocketAddr, bytes: Vec<u8> },
    /// Receive one datagram (at most `max_bytes` of it) on the link's socket.
    NetUdpRecv { link: LinkId, max_bytes: u32 },
    /// The addresses of the DNS name `name` (the kernel has checked it is one): from the
    /// `servers` (the VM's `dns.nameServers`, asked in order), or the host's resolver when there
    /// are none.
    Resolve { name: String, servers: Vec<SocketAddr> },
    /// Make `call` on the host directory `dir` (`data`: what a write writes), for a guest's
    /// filesystem call parked until it is answered (see `fs::host_gate`).
    HostCall { dir: HostDirHandle, call: PortCall, data: Vec<u8> },
    /// Load the Python interpreter (read its install), off the kernel's loop: the completion
    /// only says it is done, and the kernel then takes the loaded install from its source (see
    /// `dispatch::compile`).
    LoadPython,
}

/// A host directory an effect is made on: the directory itself (the driver needs nothing else
/// to perform the call) and the number the VM knows its mount by. Equal when it is the same
/// directory.
#[derive(Clone)]
pub struct HostDirHandle {
    number: u32,
    dir: Arc<dyn HostDir>,
}

impl HostDirHandle {
    pub fn new(number: u32, dir: Arc<dyn HostDir>) -> Self {
        Self { number, dir }
    }

    pub fn dir(&self) -> &Arc<dyn HostDir> {
        &self.dir
    }
}

impl std::fmt::Debug for HostDirHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HostDirHandle").field(&self.number).finish()
    }
}

impl PartialEq for HostDirHandle {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number && Arc::ptr_eq(&self.dir, &other.dir)
    }
}

impl Eq for HostDirHandle {}

/// Names a connection out of a VM for its whole life: the VM's creation order and the socket's
/// id in that VM (neither is ever reused by a kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkId {
    pub vm: u64,
    pub socket: u64,
}

pub use crate::net::{NetFailure, Resolution};

/// What a trace keeps of an effect (the value a put writes is the kernel's own output, so its
/// digest identifies it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EffectSummary {
    StoreGet { key: String, max_bytes: u64 },
    StorePut { key: String, value: Digest },
    Compile { module: Digest, max_wasm_stack_bytes: u64 },
    NetConnect { link: LinkId, to: SocketAddr },
    NetSend { link: LinkId, bytes: Digest, len: u64, fin: bool },
    NetRecv { link: LinkId, max_bytes: u32 },
    NetTls { link: LinkId, server_name: String },
    NetClose { link: LinkId },
    Resolve { name: String, servers: Vec<SocketAddr> },
    NetUdpOpen { link: LinkId, ipv6: bool },
    NetUdpSend { link: LinkId, to: SocketAddr, bytes: Digest, len: u64 },
    NetUdpRecv { link: LinkId, max_bytes: u32 },
    HostCall { call: PortCall },
    LoadPython,
}

/// How an effect ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completion {
    StoreGet(Result<Option<Vec<u8>>, StoreError>),
    StorePut(Result<(), StoreError>),
    /// The engine has compiled the module (or found it cannot: loading it says why).
    Compiled,
    NetConnected(Result<(), NetFailure>),
    NetSent(Result<(), NetFailure>),
    /// Bytes that arrived (empty: end of stream).
    NetReceived(Result<Vec<u8>, NetFailure>),
    NetTlsReady(Result<(), NetFailure>),
    NetClosed,
    /// The name's addresses (none: it has none).
    Resolved(Result<Resolution, NetFailure>),
    NetUdpOpened(Result<(), NetFailure>),
    NetUdpSent(Result<(), NetFailure>),
    /// A datagram and its sender.
    NetUdpReceived(Result<(SocketAddr, Vec<u8>), NetFailure>),
    /// A host directory's answer.
    HostCall(Result<PortValue, HostFsError>),
    /// The Python interpreter is loaded, or why it cannot be.
    PythonLoaded(Result<(), String>),
}

impl Effect {
    /// Performs the effect on `store` (for drivers that do it at once). A compile is left to
    /// the kernel: completed at once, its program is compiled on the loop when first loaded.
    pub fn perform(&self, store: &dyn Store) -> Completion {
        match self {
            Self::StoreGet { key, max_bytes } => Completion::StoreGet(store.get(key, *max_bytes)),
            Self::StorePut { key, value } => Completion::StorePut(store.put(key, value)),
            Self::Compile { .. } => Completion::Compiled,
            // A driver that performs effects at once has no network: nothing connects.
            Self::NetConnect { .. } => {
                Completion::NetConnected(Err(NetFailure::new(Errno::ENETUNREACH, "this driver has no network")))
            }
            Self::NetSend { .. } => Completion::NetSent(Err(NetFailure::new(Errno::EPIPE, "no network"))),
            Self::NetRecv { .. } => Completion::NetReceived(Ok(Vec::new())),
            Self::NetTls { .. } => Completion::NetTlsReady(Err(NetFailure::new(Errno::EPROTO, "no network"))),
            Self::NetClose { .. } => Completion::NetClosed,
            Self::Resolve { .. } => Completion::Resolved(Err(NetFailure::new(Errno::ENOENT, "no resolver"))),
            Self::NetUdpOpen { .. } => {
                Completion::NetUdpOpened(Err(NetFailure::new(Errno::ENETUNREACH, "this driver has no network")))
            }
            Self::NetUdpSend { .. } => Completion::NetUdpSent(Err(NetFailure::new(Errno::ENETUNREACH, "no network"))),
            Self::NetUdpRecv { .. } => {
                Completion::NetUdpReceived(Err(NetFailure::new(Errno::ENETUNREACH, "no network")))
            }
            Self::HostCall { .. } => self.perform_host_call(),
            // Left to the kernel, as a compile is: it loads the install when it needs it.
            Self::LoadPython => Completion::PythonLoaded(Ok(())),
        }
    }

    /// Performs a host directory call (anything else: `EINVAL`).
    pub fn perform_host_call(&self) -> Completion {
        match self {
            Self::HostCall { dir, call, data } => Completion::HostCall(call.perform(dir.dir().as_ref(), data)),
            _ => Completion::HostCall(Err(HostFsError::with_detail(Errno::EINVAL, "not a host call"))),
        }
    }

    /// Whether a host directory performs it.
    pub fn is_host_call(&self) -> bool {
        matches!(self, Self::HostCall { .. })
    }

    /// Whether the network performs it (a driver's socket loop, or its resolver).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            Self::NetConnect { .. }
                | Self::NetSend { .. }
                | Self::NetRecv { .. }
                | Self::NetTls { .. }
                | Self::NetClose { .. }
                | Self::Resolve { .. }
                | Self::NetUdpOpen { .. }
                | Self::NetUdpSend { .. }
                | Self::NetUdpRecv { .. }
        )
    }

    /// Whether a store performs it (else a guest engine does).
    pub fn is_store(&self) -> bool {
        matches!(self, Self::StoreGet { .. } | Self::StorePut { .. })
    }

    pub fn summary(&self) -> EffectSummary {
        match self {
            Self::StoreGet { key, max_bytes } => EffectSummary::StoreGet { key: key.clone(), max_bytes: *max_bytes },
            Self::StorePut { key, value } => EffectSummary::StorePut { key: key.clone(), value: Digest::of(value) },
            Self::Compile { module, max_wasm_stack_bytes } => {
                EffectSummary::Compile { module: module_digest(module), max_wasm_stack_bytes: *max_wasm_stack_bytes }
            }
            Self::NetConnect { link, to } => EffectSummary::NetConnect { link: *link, to: *to },
            Self::NetSend { link, bytes, fin } => EffectSummary::NetSend {
                link: *link,
                bytes: Digest::of(bytes),
                len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                fin: *fin,
            },
            Self::NetRecv { link, max_bytes } => EffectSummary::NetRecv { link: *link, max_bytes: *max_bytes },
            Self::NetTls { link, server_name } => {
                EffectSummary::NetTls { link: *link, server_name: server_name.clone() }
            }
            Self::NetClose { link } => EffectSummary::NetClose { link: *link },
            Self::Resolve { name, servers } => EffectSummary::Resolve { name: name.clone(), servers: servers.clone() },
            Self::NetUdpOpen { link, ipv6 } => EffectSummary::NetUdpOpen { link: *link, ipv6: *ipv6 },
            Self::NetUdpSend { link, to, bytes } => EffectSummary::NetUdpSend {
                link: *link,
                to: *to,
                bytes: Digest::of(bytes),
                len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            },
            Self::NetUdpRecv { link, max_bytes } => EffectSummary::NetUdpRecv { link: *link, max_bytes: *max_bytes },
            Self::HostCall { call, .. } => EffectSummary::HostCall { call: call.clone() },
            Self::LoadPython => EffectSummary::LoadPython,
        }
    }

    /// Bytes the effect holds while it waits.
    pub fn held_bytes(&self) -> u64 {
        match self {
            Self::StoreGet { .. } => 0,
            Self::StorePut { value, .. } => u64::try_from(value.len()).unwrap_or(u64::MAX),
            // An installed module not yet read holds nothing.
            Self::Compile { module, .. } => u64::try_from(module.holders_and_bytes().1).unwrap_or(u64::MAX),
            // Bounded per link by the socket buffer, and counted in the VM's socket bytes.
            Self::NetConnect { .. } | Self::NetSend { .. } | Self::NetRecv { .. } => 0,
            Self::NetTls { .. } | Self::NetClose { .. } | Self::Resolve { .. } => 0,
            Self::NetUdpOpen { .. } | Self::NetUdpSend { .. } | Self::NetUdpRecv { .. } => 0,
            Self::HostCall { data, .. } => u64::try_from(data.len()).unwrap_or(u64::MAX),
            Self::LoadPython => 0,
        }
    }
}

/// A compiled module's summary: an installed one's from its stated digest, so recording a
/// compile never reads (nor hashes) the interpreter's 100 MB.
fn module_digest(module: &SharedModule) -> Digest {
    match module {
        SharedModule::Bytes(bytes) => Digest::of(bytes),
        SharedModule::Installed(installed) => Digest { len: installed.len(), fnv1a: installed.short_digest() },
    }
}
