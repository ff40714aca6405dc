//! A VM's network: its sockets and the loopback that joins them.
//!
//! Every VM has its own network with one interface, loopback (`127.0.0.0/8`, `::1`): guest
//! processes listen, connect and exchange datagrams through it, and the host reaches a guest
//! listener with `VmFetch`. Nothing here touches a host socket. A socket is a kernel object
//! shared by the descriptors that refer to it (counted, like a pipe's ends); a TCP connection
//! is two sockets, each with the bytes its peer sent and not yet read; a UDP socket holds the
//! datagrams sent to it. Connecting completes at once (there is no wire to wait for): the new
//! connection is queued on the listener until accepted.
//!
//! Calls never block here: a call that must wait answers so (`Ok(None)`, a full `Ok(0)`) and the
//! system call parks its process on [`Network::readable`] / [`Network::writable`].
//!
//! # Limits (the VM's config; each refusal has a test)
//! - `maxSockets` open guest sockets (`EMFILE` at `socket()` and `accept()`);
//! - `maxConnections` connected sockets, both ends of a loopback connection counted (`EAGAIN`
//!   at `connect()`, as Linux answers when it runs out of local ports);
//! - `maxSocketBufferedBytes` bytes held in every socket of the VM together (a send that finds
//!   none left gets `ENOBUFS`; one whose own connection is full waits for its reader instead);
//! - `maxSocketDatagramQueueLen` datagrams queued in the VM together (`ENOBUFS`);
//! - `listen.portMin`/`portMax`/`allowPrivileged`: which ports may be bound (`EACCES`).

pub mod addr;
pub mod dns;
pub(crate) mod egress;
pub(crate) mod egress_udp;
pub(crate) mod http;
pub mod ssrf;

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use egress::Remote;

use crate::policy::config::ListenPolicy;
use crate::vfs::Errno;

/// Bytes one direction of a connection buffers for its reader (Linux's default receive window
/// is of this order): a writer that finds it full waits, so a fast writer cannot fill the VM's
/// whole `maxSocketBufferedBytes` with one connection.
pub const SOCKET_BUFFER_BYTES: usize = 256 * 1024;
/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers); a larger send is
/// `EMSGSIZE`, as on Linux.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
/// Connections a listener queues before `accept`, whatever backlog the guest asked for (Linux's
/// `somaxconn`); a connect that finds the queue full is refused.
pub const MAX_BACKLOG: usize = 4096;
/// The ports a socket gets when it binds port 0 or connects unbound (IANA's dynamic range),
/// narrowed to the VM's `listen` range.
pub const EPHEMERAL_PORTS: (u16, u16) = (49_152, 65_535);
/// The first port that needs `listen.allowPrivileged`.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

const _: () = assert!(MAX_DATAGRAM_BYTES < SOCKET_BUFFER_BYTES);
const _: () = assert!(EPHEMERAL_PORTS.0 >= FIRST_UNPRIVILEGED_PORT && EPHEMERAL_PORTS.0 <= EPHEMERAL_PORTS.1);

/// A socket's number within its VM.
pub type SocketId = u64;

/// Stream (TCP) or datagram (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Datagram,
}

/// Who holds a socket: guest descriptors, or the kernel on the host's behalf (`VmFetch`), which
/// no guest limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    Guest,
    Host,
}

/// The VM's network limits, resolved from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetLimits {
    pub(crate) max_sockets: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) max_datagrams: usize,
    pub(crate) listen: ListenPolicy,
}

impl Default for NetLimits {
    fn default() -> Self {
        let resources = crate::policy::config::ResourceLimits::default();
        Self::new(&resources, ListenPolicy::default())
    }
}

impl NetLimits {
    pub(crate) fn new(resources: &crate::policy::config::ResourceLimits, listen: ListenPolicy) -> Self {
        let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        Self {
            max_sockets: size(resources.max_sockets),
            max_connections: size(resources.max_connections),
            max_buffered_bytes: size(resources.max_socket_buffered_bytes),
            max_datagrams: size(resources.max_socket_datagram_queue_len),
            listen,
        }
    }
}

#[derive(Debug)]
struct Connection {
    /// The other end, while it exists.
    peer: Option<SocketId>,
    peer_addr: SocketAddr,
    /// What the peer sent and this end has not read.
    incoming: VecDeque<u8>,
    /// This end shut its reading side: reads see end of stream, what arrives is dropped.
    read_shut: bool,
    /// This end shut its writing side (the peer reads end of stream after the data).
    write_shut: bool,
    /// The peer will send nothing more (it shut writing, or is gone).
    peer_done: bool,
}

#[derive(Debug)]
struct Datagram {
    from: SocketAddr,
    bytes: Vec<u8>,
}

#[derive(Debug)]
enum State {
    /// A stream socket neither listening nor connected.
    Idle,
    Listening {
        backlog: usize,
        queue: VecDeque<SocketId>,
    },
    Connected(Connection),
    /// Connected out of the VM (see [`egress`]).
    Remote(Box<Remote>),
    Datagrams {
        queue: VecDeque<Datagram>,
        /// Where `send` without an address goes (`connect` on a UDP socket).
        default_peer: Option<SocketAddr>,
    },
}

#[derive(Debug)]
struct Socket {
    transport: Transport,
    holder: Holder,
    local: Option<SocketAddr>,
    state: State,
    /// Descriptors (or the host's one hold) referring to it; an accepted connection waiting in
    /// a listener's queue has none and belongs to the listener.
    refs: usize,
}

/// A listener or bound socket, as `FindListener` / `FindBoundUdp` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub id: SocketId,
    pub addr: SocketAddr,
}

/// Connection attempts out of the VM reported to the host (`StructuredEvent`s named
/// `network.connect`) that wait for the end of the slice: a guest making more in one slice
/// than this has the rest counted in the next event's `dropped` detail instead, so a guest
/// cannot grow the queue (each attempt is charged as a system call).
pub const MAX_PENDING_NETWORK_EVENTS: usize = 256;

/// One audit record: a guest's attempt to reach an address outside its VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAttempt {
    pub pid: u32,
    /// `tcp://IP:PORT` or `udp://IP:PORT`.
    pub destination: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    pub reason: String,
}

/// A name's addresses, and how long they may be reused (a name server's TTL; `None` from a
/// resolver that does not say).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resolution {
    pub addresses: Vec<IpAddr>,
    pub ttl_s: Option<u32>,
}

/// Why a network effect failed: the errno the guest gets, and the driver's words for the host's
/// audit and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetFailure {
    pub errno: Errno,
    pub reason: String,
}

impl NetFailure {
    pub fn new(errno: Errno, reason: impl Into<String>) -> Self {
        Self { errno, reason: reason.into() }
    }
}

/// A connection out of the VM that ended (a `StructuredEvent` named `network.close`): where it
/// went, the bytes it moved each way, and the failure that ended it, if one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub destination: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub failure: Option<Errno>,
}

/// A guest refused by a network limit (a `StructuredEvent` named `network.limit`): one record
/// per process and limit per slice, counting the refusals, so a guest retrying in a loop
/// reports once per slice, not once per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    pub pid: u32,
    /// The config key (`maxSockets`, ...) or kernel bound named.
    pub limit: &'static str,
    pub errno: Errno,
    pub count: u64,
}

/// The sockets of one VM.
#[derive(Debug, Default)]
pub(crate) struct Network {
    limits: NetLimits,
    /// `dns.overrides` of the VM's config: lower-case name → addresses.
    overrides: BTreeMap<String, Vec<IpAddr>>,
    /// Attempts to leave the VM since the dispatcher last took them.
    attempts: Vec<ConnectAttempt>,
    /// Attempts not queued because the queue was full.
    dropped_attempts: u64,
    /// Limits guests hit since the dispatcher last took them.
    limit_hits: Vec<LimitHit>,
    /// Connections out that ended since the dispatcher last took them.
    link_reports: Vec<LinkReport>,
    /// Bytes the VM's guests sent out of the VM, and received from outside, since it was made.
    pub(crate) bytes_sent_out: u64,
    pub(crate) bytes_received_in: u64,
    sockets: BTreeMap<SocketId, Socket>,
    /// Bound local ports by transport: which socket owns each.
    ports: BTreeMap<(TransportKey, u16), SocketId>,
    next_id: SocketId,
    next_ephemeral: u16,
    guest_sockets: usize,
    connections: usize,
    buffered_bytes: usize,
    datagrams: usize,
    /// Sockets connected out of the VM.
    remotes: BTreeSet<SocketId>,
    /// Connections out whose needs changed since the dispatcher last looked.
    egress_dirty: BTreeSet<SocketId>,
    /// Links for the dispatcher to close, with bytes to send first.
    links_to_close: Vec<(SocketId, Vec<u8>)>,
    /// Whether the driver can carry connections out (else an allowed one finds no route).
    egress_enabled: bool,
    /// `loopbackExemptPorts`: host loopback ports guests may reach (when nothing in the VM
    /// listens there).
    exempt_ports: BTreeSet<u16>,
    /// Datagram sockets that sent outside the VM, and their links.
    udp_links: BTreeMap<SocketId, egress_udp::UdpLink>,
    /// Datagram sockets whose default peer (`connect`) is outside the VM.
    outside_default: BTreeSet<SocketId>,
    /// Names resolved by the host's resolver, and being resolved.
    pub(crate) dns: dns::Resolutions,
}

/// `Transport` as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TransportKey {
    Stream,
    Datagram,
}

impl From<Transport> for TransportKey {
    fn from(transport: Transport) -> Self {
        match transport {
            Transport::Stream => TransportKey::Stream,
            Transport::Datagram => TransportKey::Datagram,
        }
    }
}

impl Network {
    pub(crate) fn new(limits: NetLimits, overrides: BTreeMap<String, Vec<IpAddr>>) -> Self {
        let overrides = overrides.into_iter().map(|(name, addresses)| (name.to_ascii_lowercase(), addresses)).collect();
        Self { limits, overrides, ..Self::default() }
    }

    /// The VM's `dns.nameServers` (none: the host's resolver answers).
    pub(crate) fn set_name_servers(&mut self, servers: Vec<SocketAddr>) {
        self.dns = dns::Resolutions::new(servers);
    }

    /// The addresses `dns.overrides` gives `name`, if any.
    pub(crate) fn overridden(&self, name: &str) -> Option<&[IpAddr]> {
        self.overrides.get(&name.to_ascii_lowercase()).map(Vec::as_slice)
    }

    /// Records an attempt to leave the VM for the host's audit (bounded, see
    /// [`MAX_PENDING_NETWORK_EVENTS`]).
    pub(crate) fn record_attempt(&mut self, attempt: ConnectAttempt) {
        if self.attempts.len() < MAX_PENDING_NETWORK_EVENTS {
            self.attempts.push(attempt);
        } else {
            self.dropped_attempts = self.dropped_attempts.saturating_add(1);
        }
    }

    /// Records that process `pid` was refused by `limit` (see [`LimitHit`]).
    pub(crate) fn record_limit_hit(&mut self, pid: u32, limit: &'static str, errno: Errno) {
        if let Some(hit) = self.limit_hits.iter_mut().find(|hit| hit.pid == pid && hit.limit == limit) {
            hit.count = hit.count.saturating_add(1);
        } else if self.limit_hits.len() < MAX_PENDING_NETWORK_EVENTS {
            self.limit_hits.push(LimitHit { pid, limit, errno, count: 1 });
        }
    }

    /// Records a connection out that ended (bounded like the other reports).
    pub(crate) fn record_link_report(&mut self, report: LinkReport) {
        if self.link_reports.len() < MAX_PENDING_NETWORK_EVENTS {
            self.link_reports.push(report);
        }
    }

    /// The connections out that ended since the last call.
    pub(crate) fn take_link_reports(&mut self) -> Vec<LinkReport> {
        std::mem::take(&mut self.link_reports)
    }

    /// The limit hits recorded since the last call.
    pub(crate) fn take_limit_hits(&mut self) -> Vec<LimitHit> {
        std::mem::take(&mut self.limit_hits)
    }

    /// The attempts recorded since the last call, and how many did not fit.
    pub(crate) fn take_attempts(&mut self) -> (Vec<ConnectAttempt>, u64) {
        (std::mem::take(&mut self.attempts), std::mem::take(&mut self.dropped_attempts))
    }

    /// Guest sockets open now (what `maxSockets` counts).
    #[cfg(test)]
    pub(crate) fn guest_sockets(&self) -> usize {
        self.guest_sockets
    }

    /// Every socket, the host's included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// A new socket with one reference.
    pub(crate) fn create(&mut self, transport: Transport, holder: Holder) -> Result<SocketId, Errno> {
        if holder == Holder::Guest {
            if self.guest_sockets >= self.limits.max_sockets {
                return Err(Errno::EMFILE);
            }
            self.guest_sockets = self.guest_sockets.saturating_add(1);
        }
        let state = match transport {
            Transport::Stream => State::Idle,
            Transport::Datagram => State::Datagrams { queue: VecDeque::new(), default_peer: None },
        };
        self.next_id = self.next_id.saturating_add(1);
        self.sockets.insert(self.next_id, Socket { transport, holder, local: None, state, refs: 1 });
        Ok(self.next_id)
    }

    pub(crate) fn transport(&self, id: SocketId) -> Option<Transport> {
        self.sockets.get(&id).map(|socket| socket.transport)
    }

    /// Another descriptor refers to socket `id` (dup, inheritance).
    pub(crate) fn open(&mut self, id: SocketId) {
        if let Some(socket) = self.sockets.get_mut(&id) {
            socket.refs = socket.refs.saturating_add(1);
        }
    }

    /// A descriptor of socket `id` was closed; the socket goes with its last one.
    pub(crate) fn close(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get_mut(&id) else { return };
        socket.refs = socket.refs.saturating_sub(1);
        if socket.refs == 0 {
            self.destroy(id);
        }
    }

    /// Removes socket `id`: its port is free again, its buffered bytes released, its peer sees
    /// end of stream, and a listener's unaccepted connections go with it.
    fn destroy(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.remove(&id) else { return };
        if socket.holder == Holder::Guest {
            self.guest_sockets = self.guest_sockets.saturating_sub(1);
        }
        if let Some(local) = socket.local {
            let key = (TransportKey::from(socket.transport), local.port());
            if self.ports.get(&key) == Some(&id) {
                self.ports.remove(&key);
            }
        }
        match socket.state {
            State::Idle => {}
            State::Listening { queue, .. } => {
                for queued in queue {
                    self.destroy(queued);
                }
            }
            State::Connected(connection) => {
                self.connections = self.connections.saturating_sub(1);
                self.buffered_bytes = self.buffered_bytes.saturating_sub(connection.incoming.len());
                if let Some(peer) = connection.peer.and_then(|peer| self.connection_mut(peer)) {
                    peer.peer = None;
                    peer.peer_done = true;
                }
            }
            State::Remote(remote) => self.forget_remote(id, *remote),
            State::Datagrams { queue, .. } => {
                self.datagrams = self.datagrams.saturating_sub(queue.len());
                let bytes: usize = queue.iter().map(|datagram| datagram.bytes.len()).sum();
                self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
                self.forget_udp_link(id);
            }
        }
    }

    fn socket(&self, id: SocketId) -> Result<&Socket, Errno> {
        self.sockets.get(&id).ok_or(Errno::EBADF)
    }

    fn socket_mut(&mut self, id: SocketId) -> Result<&mut Socket, Errno> {
        self.sockets.get_mut(&id).ok_or(Errno::EBADF)
    }

    fn connection_mut(&mut self, id: SocketId) -> Option<&mut Connection> {
        match &mut self.sockets.get_mut(&id)?.state {
            State::Connected(connection) => Some(connection),
            _ => None,
        }
    }

    /// Binds `id` to `addr` (port 0: a free ephemeral port). Only the VM's own addresses can be
    /// bound (`EADDRNOTAVAIL`), only ports the `listen` policy allows (`EACCES`), each port once
    /// per transport (`EADDRINUSE`).
    pub(crate) fn bind(&mut self, id: SocketId, addr: SocketAddr) -> Result<(), Errno> {
        let transport = self.socket(id)?.transport;
        if self.socket(id)?.local.is_some() {
            return Err(Errno::EINVAL);
        }
        if !addr::is_local(addr.ip()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let port = match addr.port() {
            0 => self.ephemeral_port(transport)?,
            port => {
                self.check_listen_policy(port)?;
                port
            }
        };
        let key = (TransportKey::from(transport), port);
        if self.ports.contains_key(&key) {
            return Err(Errno::EADDRINUSE);
        }
        self.ports.insert(key, id);
        self.socket_mut(id)?.local = Some(SocketAddr::new(addr.ip(), port));
        Ok(())
    }

    /// Forgets where `id` is bound (a bind the permission policy refused after the port was
    /// chosen).
    pub(crate) fn unbind(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get_mut(&id) else { return };
        let Some(local) = socket.local.take() else { return };
        let key = (TransportKey::from(socket.transport), local.port());
        if self.ports.get(&key) == Some(&id) {
            self.ports.remove(&key);
        }
    }

    fn check_listen_policy(&self, port: u16) -> Result<(), Errno> {
        let listen = self.limits.listen;
        if port < listen.port_min || port > listen.port_max {
            return Err(Errno::EACCES);
        }
        if port < FIRST_UNPRIVILEGED_PORT && !listen.allow_privileged {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// A free port in the ephemeral range (narrowed to the `listen` range), searched round-robin
    /// from the last one given; `EADDRINUSE` when every one is taken.
    fn ephemeral_port(&mut self, transport: Transport) -> Result<u16, Errno> {
        let listen = self.limits.listen;
        let low = EPHEMERAL_PORTS.0.max(listen.port_min).max(if listen.allow_privileged {
            1
        } else {
            FIRST_UNPRIVILEGED_PORT
        });
        let high = EPHEMERAL_PORTS.1.min(listen.port_max);
        let (low, high) = if low <= high { (low, high) } else { (listen.port_min.max(1), listen.port_max) };
        if low > high {
            return Err(Errno::EADDRINUSE);
        }
        let span = u32::from(high - low) + 1;
        let start = self.next_ephemeral.clamp(low, high);
        for step in 0..span {
            let offset = (u32::from(start - low) + step) % span;
            let port = low.saturating_add(u16::try_from(offset).unwrap_or(0));
            if !self.ports.contains_key(&(TransportKey::from(transport), port)) {
                self.next_ephemeral = if port == high { low } else { port + 1 };
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }

    /// Binds an unbound socket to an ephemeral port on the loopback of `peer`'s family.
    fn bind_ephemeral(&mut self, id: SocketId, like: IpAddr) -> Result<SocketAddr, Errno> {
        if let Some(local) = self.socket(id)?.local {
            return Ok(local);
        }
        self.bind(id, SocketAddr::new(addr::loopback_like(like), 0))?;
        self.socket(id)?.local.ok_or(Errno::EINVAL)
    }

    /// Makes a stream socket a listener (binding it to an ephemeral port if unbound).
    pub(crate) fn listen(&mut self, id: SocketId, backlog: u32) -> Result<(), Errno> {
        let socket = self.socket(id)?;
        if socket.transport != Transport::Stream {
            return Err(Errno::ENOTSUP);
        }
        let backlog = usize::try_from(backlog).unwrap_or(MAX_BACKLOG).clamp(1, MAX_BACKLOG);
        match &mut self.socket_mut(id)?.state {
            State::Idle => {}
            State::Listening { backlog: current, .. } => {
                *current = backlog;
                return Ok(());
            }
            State::Connected(_) | State::Remote(_) | State::Datagrams { .. } => return Err(Errno::EINVAL),
        }
        self.bind_ephemeral(id, IpAddr::V4(core::net::Ipv4Addr::LOCALHOST))?;
        self.socket_mut(id)?.state = State::Listening { backlog, queue: VecDeque::new() };
        Ok(())
    }

    /// The next queued connection of listener `id` and its peer's address (the caller gives it
    /// a descriptor); `None` when nothing is queued.
    pub(crate) fn accept(&mut self, id: SocketId) -> Result<Option<(SocketId, SocketAddr)>, Errno> {
        let State::Listening { queue, .. } = &mut self.socket_mut(id)?.state else {
            return Err(Errno::EINVAL);
        };
        let Some(accepted) = queue.pop_front() else { return Ok(None) };
        let socket = self.socket_mut(accepted)?;
        socket.refs = 1;
        let peer = match &socket.state {
            State::Connected(connection) => connection.peer_addr,
            _ => return Err(Errno::EINVAL),
        };
        Ok(Some((accepted, peer)))
    }

    /// Connects `id` to `to`. A stream socket reaches a listener of this VM at once (its new
    /// connection queued for `accept`): no listener there is `ECONNREFUSED`, a full backlog too;
    /// an address outside the VM is `ENETUNREACH` (the VM has no route out). A datagram socket
    /// only records `to` as where `send` goes.
    pub(crate) fn connect(&mut self, id: SocketId, to: SocketAddr) -> Result<(), Errno> {
        let to = toward_loopback(to);
        if to.port() == 0 {
            return Err(Errno::EINVAL);
        }
        if !addr::is_local(to.ip()) {
            return Err(Errno::ENETUNREACH);
        }
        match &self.socket(id)?.state {
            State::Idle => {}
            State::Datagrams { .. } => {
                self.bind_ephemeral(id, to.ip())?;
                if let State::Datagrams { default_peer, .. } = &mut self.socket_mut(id)?.state {
                    *default_peer = Some(to);
                }
                self.outside_default.remove(&id);
                return Ok(());
            }
            State::Connected(_) | State::Remote(_) => return Err(Errno::EISCONN),
            State::Listening { .. } => return Err(Errno::EINVAL),
        }
        let listener = self.listener_for(Transport::Stream, to).ok_or(Errno::ECONNREFUSED)?;
        if let State::Listening { backlog, queue } = &self.socket(listener)?.state {
            if queue.len() >= *backlog {
                return Err(Errno::ECONNREFUSED);
            }
        }
        if self.connections.saturating_add(2) > self.limits.max_connections {
            return Err(Errno::EAGAIN);
        }
        let local = self.bind_ephemeral(id, to.ip())?;
        let server_holder = Holder::Guest;
        let server = self.create(Transport::Stream, server_holder).map_err(|_| Errno::ECONNREFUSED)?;
        let server_local = to;
        let end = |peer, peer_addr| Connection {
            peer: Some(peer),
            peer_addr,
            incoming: VecDeque::new(),
            read_shut: false,
            write_shut: false,
            peer_done: false,
        };
        let server_socket = self.socket_mut(server)?;
        server_socket.refs = 0;
        server_socket.local = Some(server_local);
        server_socket.state = State::Connected(end(id, local));
        self.socket_mut(id)?.state = State::Connected(end(server, server_local));
        self.connections = self.connections.saturating_add(2);
        if let State::Listening { queue, .. } = &mut self.socket_mut(listener)?.state {
            queue.push_back(server);
        }
        Ok(())
    }

    /// The socket of `transport` bound where `to` is delivered (a listener, for streams).
    fn listener_for(&self, transport: Transport, to: SocketAddr) -> Option<SocketId> {
        let id = *self.ports.get(&(TransportKey::from(transport), to.port()))?;
        let socket = self.sockets.get(&id)?;
        let local = socket.local?;
        let listening = matches!(socket.state, State::Listening { .. } | State::Datagrams { .. });
        (listening && addr::accepts(local.ip(), to.ip())).then_some(id)
    }

    /// Sends on a connected stream: what fits in the peer's buffer (`Ok(0)` for non-empty data:
    /// full, the caller waits), `EPIPE` once the peer is gone or this end shut writing,
    /// `ENOBUFS` when the VM's buffered bytes are used up by other connections.
    pub(crate) fn send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, Errno> {
        let default_peer = match &self.socket(id)?.state {
            State::Remote(_) => return self.send_remote(id, data),
            State::Connected(_) => None,
            State::Datagrams { default_peer, .. } => Some(default_peer.ok_or(Errno::EDESTADDRREQ)?),
            State::Idle | State::Listening { .. } => return Err(Errno::ENOTCONN),
        };
        if let Some(to) = default_peer {
            if self.sends_outside(id) {
                return self.send_outside(id, data, to);
            }
            return self.send_to(id, data, to);
        }
        let (peer, write_shut) = match &self.socket(id)?.state {
            State::Connected(connection) => (connection.peer, connection.write_shut),
            _ => return Err(Errno::ENOTCONN),
        };
        let peer = match peer {
            Some(peer) if !write_shut => peer,
            _ => return Err(Errno::EPIPE),
        };
        let vm_room = self.limits.max_buffered_bytes.saturating_sub(self.buffered_bytes);
        let buffered = self.buffered_bytes;
        let connection = self.connection_mut(peer).ok_or(Errno::EPIPE)?;
        if connection.read_shut {
            // Linux drops what arrives after SHUT_RD; the sender is not told.
            return Ok(data.len());
        }
        let room = SOCKET_BUFFER_BYTES.saturating_sub(connection.incoming.len());
        let accepted = data.len().min(room).min(vm_room);
        if accepted == 0 && !data.is_empty() && room > 0 {
            return Err(Errno::ENOBUFS);
        }
        connection.incoming.extend(data.get(..accepted).unwrap_or_default());
        self.buffered_bytes = buffered.saturating_add(accepted);
        Ok(accepted)
    }

    /// Reads from a connected stream into `buf`: `Some(n)` bytes (`Some(0)`: end of stream),
    /// `None` when nothing has arrived yet. `peek` leaves the bytes to be read again.
    pub(crate) fn recv(&mut self, id: SocketId, buf: &mut [u8], peek: bool) -> Result<Option<usize>, Errno> {
        match self.socket(id)?.state {
            State::Datagrams { .. } => return Ok(self.recv_from(id, buf, peek)?.map(|(read, _)| read)),
            State::Remote(_) => return self.recv_remote(id, buf, peek),
            _ => {}
        }
        let connection = match &mut self.socket_mut(id)?.state {
            State::Connected(connection) => connection,
            _ => return Err(Errno::ENOTCONN),
        };
        if connection.incoming.is_empty() {
            return Ok((connection.peer_done || connection.read_shut).then_some(0));
        }
        let read = take_bytes(&mut connection.incoming, buf, peek);
        if !peek {
            self.buffered_bytes = self.buffered_bytes.saturating_sub(read);
        }
        Ok(Some(read))
    }

    /// Sends one datagram to `to` from `id` (bound to an ephemeral port first if it is not).
    /// Nobody bound there: dropped, as UDP does. The VM's queue or byte budget full: `ENOBUFS`.
    pub(crate) fn send_to(&mut self, id: SocketId, data: &[u8], to: SocketAddr) -> Result<usize, Errno> {
        let to = toward_loopback(to);
        match &self.socket(id)?.state {
            State::Datagrams { .. } => {}
            State::Connected(_) | State::Remote(_) => return Err(Errno::EISCONN),
            State::Idle | State::Listening { .. } => return Err(Errno::ENOTCONN),
        }
        if data.len() > MAX_DATAGRAM_BYTES {
            return Err(Errno::EMSGSIZE);
        }
        if to.port() == 0 {
            return Err(Errno::EINVAL);
        }
        if !addr::is_local(to.ip()) {
            return Err(Errno::ENETUNREACH);
        }
        let from = self.bind_ephemeral(id, to.ip())?;
        let Some(target) = self.listener_for(Transport::Datagram, to) else { return Ok(data.len()) };
        if self.datagrams >= self.limits.max_datagrams
            || self.buffered_bytes.saturating_add(data.len()) > self.limits.max_buffered_bytes
        {
            return Err(Errno::ENOBUFS);
        }
        if let State::Datagrams { queue, .. } = &mut self.socket_mut(target)?.state {
            queue.push_back(Datagram { from, bytes: data.to_vec() });
            self.datagrams = self.datagrams.saturating_add(1);
            self.buffered_bytes = self.buffered_bytes.saturating_add(data.len());
        }
        Ok(data.len())
    }

    /// The next datagram for `id`: its length copied into `buf` (the rest of a longer one is
    /// dropped, as `recvfrom` without `MSG_TRUNC` does) and its sender; `None` when none waits.
    pub(crate) fn recv_from(
        &mut self,
        id: SocketId,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<Option<(usize, SocketAddr)>, Errno> {
        let State::Datagrams { queue, .. } = &mut self.socket_mut(id)?.state else {
            return Err(Errno::ENOTSUP);
        };
        let Some(datagram) = queue.front() else { return Ok(None) };
        let read = buf.len().min(datagram.bytes.len());
        for (dst, src) in buf.iter_mut().zip(datagram.bytes.iter()) {
            *dst = *src;
        }
        let from = datagram.from;
        if !peek {
            let size = queue.pop_front().map_or(0, |datagram| datagram.bytes.len());
            self.datagrams = self.datagrams.saturating_sub(1);
            self.buffered_bytes = self.buffered_bytes.saturating_sub(size);
        }
        Ok(Some((read, from)))
    }

    /// Shuts down reading, writing or both of a connected stream.
    pub(crate) fn shutdown(&mut self, id: SocketId, read: bool, write: bool) -> Result<(), Errno> {
        if self.is_remote(id) {
            return self.shutdown_remote(id, read, write);
        }
        let (peer, dropped) = match &mut self.socket_mut(id)?.state {
            State::Connected(connection) => {
                connection.read_shut |= read;
                connection.write_shut |= write;
                let dropped = if read { connection.incoming.drain(..).count() } else { 0 };
                (connection.peer.filter(|_| write), dropped)
            }
            _ => return Err(Errno::ENOTCONN),
        };
        self.buffered_bytes = self.buffered_bytes.saturating_sub(dropped);
        if let Some(peer) = peer.and_then(|peer| self.connection_mut(peer)) {
            peer.peer_done = true;
        }
        Ok(())
    }

    /// Where `id` is bound (`0.0.0.0:0` when it is not, as Linux reports).
    pub(crate) fn local_addr(&self, id: SocketId) -> Result<SocketAddr, Errno> {
        let unbound = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0);
        Ok(self.socket(id)?.local.unwrap_or(unbound))
    }

    /// Where `id` is connected; `ENOTCONN` when it is not.
    pub(crate) fn peer_addr(&self, id: SocketId) -> Result<SocketAddr, Errno> {
        match &self.socket(id)?.state {
            State::Connected(connection) => Ok(connection.peer_addr),
            State::Remote(remote) => Ok(remote.to),
            State::Datagrams { default_peer: Some(peer), .. } => Ok(*peer),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Bytes waiting to be read on connected stream `id` (0 for anything else).
    pub(crate) fn pending_bytes(&self, id: SocketId) -> usize {
        match self.sockets.get(&id).map(|socket| &socket.state) {
            Some(State::Connected(connection)) => connection.incoming.len(),
            Some(State::Remote(remote)) => remote.incoming.len(),
            _ => 0,
        }
    }

    /// Whether a read (or accept) of `id` would return at once: data, a connection, end of
    /// stream, or an error (a socket that is gone, or never connected).
    pub(crate) fn readable(&self, id: SocketId) -> bool {
        let Some(socket) = self.sockets.get(&id) else { return true };
        match &socket.state {
            State::Idle => true,
            State::Listening { queue, .. } => !queue.is_empty(),
            State::Connected(connection) => {
                !connection.incoming.is_empty() || connection.peer_done || connection.read_shut
            }
            State::Remote(remote) => Self::remote_readable(remote),
            State::Datagrams { queue, .. } => !queue.is_empty(),
        }
    }

    /// Whether a write to `id` would return at once (room in the peer's buffer, or an error).
    pub(crate) fn writable(&self, id: SocketId) -> bool {
        let Some(socket) = self.sockets.get(&id) else { return true };
        match &socket.state {
            State::Connected(connection) => {
                let Some(peer) = connection.peer.filter(|_| !connection.write_shut) else { return true };
                match self.sockets.get(&peer).map(|peer| &peer.state) {
                    Some(State::Connected(peer)) => peer.incoming.len() < SOCKET_BUFFER_BYTES,
                    _ => true,
                }
            }
            State::Remote(remote) => Self::remote_writable(remote),
            State::Idle | State::Datagrams { .. } => true,
            State::Listening { .. } => false,
        }
    }

    /// Whether the socket's peer is gone or shut writing and nothing is left to read (`POLLHUP`).
    pub(crate) fn hung_up(&self, id: SocketId) -> bool {
        match self.sockets.get(&id).map(|socket| &socket.state) {
            Some(State::Connected(connection)) => connection.peer_done && connection.incoming.is_empty(),
            Some(State::Remote(remote)) => remote.peer_done && remote.incoming.is_empty(),
            Some(_) => false,
            None => true,
        }
    }

    /// The first bound socket of `transport` (a listener for streams) matching the query, by
    /// port then id: what `FindListener` and `FindBoundUdp` report.
    pub(crate) fn find_bound(&self, transport: Transport, host: Option<IpAddr>, port: Option<u16>) -> Option<Bound> {
        self.ports
            .iter()
            .filter(|((key, bound_port), _)| {
                *key == TransportKey::from(transport) && port.is_none_or(|p| p == *bound_port)
            })
            .filter_map(|(_, id)| {
                let socket = self.sockets.get(id)?;
                let local = socket.local?;
                let serving = matches!(socket.state, State::Listening { .. } | State::Datagrams { .. });
                let host_matches = host.is_none_or(|host| host == local.ip() || local.ip().is_unspecified());
                (serving && socket.holder == Holder::Guest && host_matches).then_some(Bound { id: *id, addr: local })
            })
            .next()
    }

    /// Opens a connection from the host (`VmFetch`) to the guest listener on `port`; the
    /// returned socket is the host's end, held by the kernel until [`Network::close`].
    pub(crate) fn connect_from_host(&mut self, port: u16) -> Result<SocketId, Errno> {
        let id = self.create(Transport::Stream, Holder::Host)?;
        let to = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::LOCALHOST), port);
        if let Err(errno) = self.connect(id, to) {
            self.close(id);
            return Err(errno);
        }
        Ok(id)
    }

    /// Whether the VM's datagram queue is at `maxSocketDatagramQueueLen`.
    pub(crate) fn datagram_queue_full(&self) -> bool {
        self.datagrams >= self.limits.max_datagrams
    }

    /// Bytes held in every socket of the VM (what `maxSocketBufferedBytes` bounds).
    #[cfg(test)]
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Connected sockets (what `maxConnections` bounds).
    #[cfg(test)]
    pub(crate) fn connections(&self) -> usize {
        self.connections
    }
}

/// Copies the front of `queue` into `buf` (as much as fits) and, unless `peek`, removes it;
/// the count copied.
fn take_bytes(queue: &mut VecDeque<u8>, buf: &mut [u8], peek: bool) -> usize {
    let read = buf.len().min(queue.len());
    for (dst, src) in buf.iter_mut().zip(queue.iter()) {
        *dst = *src;
    }
    if !peek {
        queue.drain(..read);
    }
    read
}

/// Where a packet for `to` goes: the unspecified address means this host, as on Linux.
fn toward_loopback(to: SocketAddr) -> SocketAddr {
    if to.ip().is_unspecified() {
        SocketAddr::new(addr::loopback_like(to.ip()), to.port())
    } else {
        to
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use super::*;

    fn at(text: &str) -> SocketAddr {
        addr::parse(text.as_bytes()).unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::BROADCAST), 1))
    }

    fn limits(
        max_sockets: usize,
        max_connections: usize,
        max_buffered_bytes: usize,
        max_datagrams: usize,
    ) -> NetLimits {
        NetLimits { max_sockets, max_connections, max_buffered_bytes, max_datagrams, listen: ListenPolicy::default() }
    }

    fn listener(net: &mut Network, text: &str) -> SocketId {
        let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(id, at(text)), Ok(()));
        assert_eq!(net.listen(id, 8), Ok(()));
        id
    }

    #[test]
    fn a_connection_carries_bytes_both_ways_then_end_of_stream() {
        let mut net = Network::new(NetLimits::default(), BTreeMap::new());
        let server = listener(&mut net, "127.0.0.1:8080");
        assert!(!net.readable(server));
        let client = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(client, at("0.0.0.0:8080")), Ok(()));
        assert!(net.readable(server), "the connection waits in the queue");
        let Ok(Some((conn, peer))) = net.accept(server) else { panic!("nothing to accept") };
        assert_eq!(peer, net.local_addr(client).unwrap_or(at("0.0.0.0:1")));
        assert_eq!(net.peer_addr(client).map(addr::format).as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(net.send(client, b"ping"), Ok(4));
        let mut buf = [0u8; 16];
        assert_eq!(net.recv(conn, &mut buf, true), Ok(Some(4)));
        assert_eq!(net.recv(conn, &mut buf, false), Ok(Some(4)));
        assert_eq!(buf.get(..4), Some(&b"ping"[..]));
        assert_eq!(net.recv(conn, &mut buf, false), Ok(None), "nothing more yet");
        assert_eq!(net.send(conn, b"pong"), Ok(4));
        assert_eq!(net.shutdown(conn, false, true), Ok(()));
        assert_eq!(net.recv(client, &mut buf, false), Ok(Some(4)));
        assert_eq!(net.recv(client, &mut buf, false), Ok(Some(0)), "end of stream after the data");
        assert!(net.hung_up(client));
        net.close(conn);
        assert_eq!(net.send(client, b"x"), Err(Errno::EPIPE));
        net.close(client);
        net.close(server);
        assert_eq!((net.len(), net.connections(), net.buffered_bytes(), net.guest_sockets()), (0, 0, 0, 0));
        let again = listener(&mut net, "127.0.0.1:8080");
        assert!(net.find_bound(Transport::Stream, None, Some(8080)).is_some_and(|bound| bound.id == again));
    }

    #[test]
    fn refusals_name_their_cause() {
        let mut net = Network::new(NetLimits::default(), BTreeMap::new());
        let client = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(client, at("127.0.0.1:9")), Err(Errno::ECONNREFUSED));
        assert_eq!(net.connect(client, at("10.0.0.1:80")), Err(Errno::ENETUNREACH));
        assert_eq!(net.connect(client, at("::ffff:10.0.0.1:80")), Err(Errno::ENETUNREACH));
        assert_eq!(net.send(client, b"x"), Err(Errno::ENOTCONN));
        let other = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(other, at("10.1.2.3:5000")), Err(Errno::EADDRNOTAVAIL));
        assert_eq!(net.bind(other, at("127.0.0.1:80")), Err(Errno::EACCES), "privileged");
        let _taken = listener(&mut net, "127.0.0.1:5000");
        assert_eq!(net.bind(other, at("0.0.0.0:5000")), Err(Errno::EADDRINUSE));
        let udp = net.create(Transport::Datagram, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(udp, at("127.0.0.1:5000")), Ok(()), "UDP ports are their own");
        assert_eq!(net.send_to(udp, &[0; MAX_DATAGRAM_BYTES + 1], at("127.0.0.1:5000")), Err(Errno::EMSGSIZE));
    }

    #[test]
    fn the_listen_range_bounds_binds_and_ephemeral_ports() {
        let listen = ListenPolicy { port_min: 3000, port_max: 3001, allow_privileged: false };
        let mut net = Network::new(NetLimits { listen, ..NetLimits::default() }, BTreeMap::new());
        let a = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(a, at("127.0.0.1:4000")), Err(Errno::EACCES));
        assert_eq!(net.bind(a, at("127.0.0.1:0")), Ok(()));
        let b = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(b, at("127.0.0.1:0")), Ok(()));
        let ports = [net.local_addr(a), net.local_addr(b)].map(|addr| addr.map(|addr| addr.port()));
        assert_eq!(ports, [Ok(3000), Ok(3001)]);
        let c = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(c, at("127.0.0.1:0")), Err(Errno::EADDRINUSE), "the range is used up");
    }

    #[test]
    fn every_limit_refuses_the_one_past_it() {
        let mut net = Network::new(limits(3, 16, 100, 2), BTreeMap::new());
        let server = listener(&mut net, "127.0.0.1:7000");
        let client = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(client, at("127.0.0.1:7000")), Ok(()), "the server end is the third socket");
        assert_eq!(net.create(Transport::Stream, Holder::Guest), Err(Errno::EMFILE), "maxSockets");
        assert!(net.create(Transport::Stream, Holder::Host).is_ok(), "the host's sockets are not the guest's");
        net.close(client);
        let second = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(second, at("127.0.0.1:7000")), Err(Errno::ECONNREFUSED), "no room for its server end");
        let Ok(Some((accepted, _))) = net.accept(server) else { panic!("the first connection is queued") };
        net.close(accepted);
        net.close(second);

        let mut net = Network::new(limits(16, 2, 100, 2), BTreeMap::new());
        let _server = listener(&mut net, "127.0.0.1:7000");
        let first = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(first, at("127.0.0.1:7000")), Ok(()));
        let second = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(second, at("127.0.0.1:7000")), Err(Errno::EAGAIN), "maxConnections");
        assert_eq!(net.send(first, &[1; 150]), Ok(100), "maxSocketBufferedBytes");
        assert_eq!(net.send(first, b"x"), Err(Errno::ENOBUFS));

        let mut net = Network::new(limits(16, 16, 1000, 2), BTreeMap::new());
        let receiver = net.create(Transport::Datagram, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(receiver, at("127.0.0.1:6000")), Ok(()));
        let sender = net.create(Transport::Datagram, Holder::Guest).unwrap_or(0);
        assert_eq!(net.send_to(sender, b"one", at("127.0.0.1:6000")), Ok(3));
        assert_eq!(net.send_to(sender, b"two", at("127.0.0.1:6000")), Ok(3));
        assert_eq!(
            net.send_to(sender, b"three", at("127.0.0.1:6000")),
            Err(Errno::ENOBUFS),
            "maxSocketDatagramQueueLen"
        );
        assert_eq!(net.send_to(sender, b"lost", at("127.0.0.1:6001")), Ok(4), "nobody bound: dropped, as UDP does");
        let mut buf = [0u8; 2];
        let from = net.local_addr(sender).unwrap_or(at("0.0.0.0:1"));
        assert_eq!(net.recv_from(receiver, &mut buf, false), Ok(Some((2, from))), "a longer datagram is cut");
        assert_eq!(net.recv_from(receiver, &mut buf, false), Ok(Some((2, from))));
        assert_eq!(net.recv_from(receiver, &mut buf, false), Ok(None));
        assert_eq!((net.buffered_bytes(), net.datagrams), (0, 0));
    }

    #[test]
    fn a_listener_queues_at_most_max_backlog_connections() {
        let roomy =
            NetLimits { max_sockets: 3 * MAX_BACKLOG, max_connections: 3 * MAX_BACKLOG, ..NetLimits::default() };
        let mut net = Network::new(roomy, BTreeMap::new());
        let server = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.bind(server, at("127.0.0.1:7200")), Ok(()));
        assert_eq!(net.listen(server, u32::MAX), Ok(()), "a larger backlog is clamped, not refused");
        for _ in 0..MAX_BACKLOG {
            let client = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
            assert_eq!(net.connect(client, at("127.0.0.1:7200")), Ok(()));
        }
        let late = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(late, at("127.0.0.1:7200")), Err(Errno::ECONNREFUSED));
        assert!(net.accept(server).is_ok_and(|accepted| accepted.is_some()));
        assert_eq!(net.connect(late, at("127.0.0.1:7200")), Ok(()), "an accept makes room");
    }

    #[test]
    fn audit_records_past_the_queue_are_counted_not_kept() {
        let mut net = Network::new(NetLimits::default(), BTreeMap::new());
        let attempt =
            ConnectAttempt { pid: 1, destination: "tcp://8.8.8.8:53".into(), decision: "allow", reason: String::new() };
        for _ in 0..MAX_PENDING_NETWORK_EVENTS + 3 {
            net.record_attempt(attempt.clone());
        }
        let (kept, dropped) = net.take_attempts();
        assert_eq!((kept.len(), dropped), (MAX_PENDING_NETWORK_EVENTS, 3));
        assert_eq!(net.take_attempts(), (Vec::new(), 0), "taken once");
    }

    #[test]
    fn a_full_connection_makes_the_writer_wait_and_a_closed_listener_ends_its_queue() {
        let mut net = Network::new(NetLimits::default(), BTreeMap::new());
        let server = listener(&mut net, "127.0.0.1:7100");
        let client = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect(client, at("127.0.0.1:7100")), Ok(()));
        let big = vec![7u8; SOCKET_BUFFER_BYTES + 1];
        assert_eq!(net.send(client, &big), Ok(SOCKET_BUFFER_BYTES));
        assert!(!net.writable(client));
        assert_eq!(net.send(client, b"x"), Ok(0), "full: the writer waits");
        net.close(server);
        assert!(net.writable(client), "the peer is gone: a write fails at once");
        assert_eq!(net.send(client, b"x"), Err(Errno::EPIPE));
        let mut buf = [0u8; 4];
        assert_eq!(net.recv(client, &mut buf, false), Ok(Some(0)));
        net.close(client);
        assert_eq!((net.len(), net.buffered_bytes(), net.connections()), (0, 0, 0));
    }
}

/// The state machine against a model: random calls on a few sockets never break the counters'
/// agreement with the table, and every connection delivers exactly the bytes sent into it, in
/// order.
#[cfg(test)]
mod properties {
    #![allow(clippy::indexing_slicing)]

    use std::collections::BTreeMap as Map;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Create(bool),
        Bind(usize, u16),
        Listen(usize),
        Connect(usize, u16),
        Accept(usize),
        Send(usize, u16),
        Recv(usize, u16),
        SendTo(usize, u16, u8),
        RecvFrom(usize),
        Shutdown(usize, bool, bool),
        Close(usize),
        /// A listener on the port (if free), a client connected to it, and the accepted end.
        Pair(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let slot = 0usize..8;
        let port = 5000u16..5004;
        prop_oneof![
            2 => (5000u16..5004).prop_map(Op::Pair),
            4 => (slot.clone(), 0u16..3000).prop_map(|(s, n)| Op::Send(s, n)),
            4 => (slot.clone(), 0u16..3000).prop_map(|(s, n)| Op::Recv(s, n)),
            1 => any::<bool>().prop_map(Op::Create),
            1 => (slot.clone(), port.clone()).prop_map(|(s, p)| Op::Bind(s, p)),
            1 => slot.clone().prop_map(Op::Listen),
            1 => (slot.clone(), port.clone()).prop_map(|(s, p)| Op::Connect(s, p)),
            1 => slot.clone().prop_map(Op::Accept),
            1 => (slot.clone(), port, 0u8..200).prop_map(|(s, p, n)| Op::SendTo(s, p, n)),
            1 => slot.clone().prop_map(Op::RecvFrom),
            1 => (slot.clone(), any::<bool>(), any::<bool>()).prop_map(|(s, r, w)| Op::Shutdown(s, r, w)),
            1 => slot.prop_map(Op::Close),
        ]
    }

    /// The counters, recomputed from the table.
    fn recount(net: &Network) -> (usize, usize, usize, usize) {
        let mut counts = (0, 0, 0, 0);
        for socket in net.sockets.values() {
            counts.0 += usize::from(socket.holder == Holder::Guest);
            match &socket.state {
                State::Connected(connection) => {
                    counts.1 += 1;
                    counts.2 += connection.incoming.len();
                }
                State::Remote(remote) => {
                    counts.1 += 1;
                    counts.2 += remote.incoming.len() + remote.outgoing.len() + remote.sending;
                }
                State::Datagrams { queue, .. } => {
                    counts.2 += queue.iter().map(|datagram| datagram.bytes.len()).sum::<usize>();
                    counts.3 += queue.len();
                }
                State::Idle | State::Listening { .. } => {}
            }
        }
        counts
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn counters_agree_and_streams_deliver_what_was_sent(ops in proptest::collection::vec(op(), 1..120)) {
            let limits = NetLimits { max_sockets: 12, max_connections: 8, max_buffered_bytes: 20_000, max_datagrams: 6, listen: ListenPolicy::default() };
            let mut net = Network::new(limits, Map::new());
            // The sockets held (slots), and per socket the bytes sent to it not yet read.
            let mut slots: Vec<SocketId> = Vec::new();
            let mut expected: Map<SocketId, VecDeque<u8>> = Map::new();
            let mut next_byte = 0u8;
            let at = |port: u16| SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::LOCALHOST), port);
            for op in ops {
                let slot = |index: usize| if slots.is_empty() { None } else { Some(slots[index % slots.len()]) };
                match op {
                    Op::Create(stream) => {
                        let transport = if stream { Transport::Stream } else { Transport::Datagram };
                        if let Ok(id) = net.create(transport, Holder::Guest) {
                            slots.push(id);
                        }
                    }
                    Op::Bind(index, port) => { if let Some(id) = slot(index) { let _ = net.bind(id, at(port)); } }
                    Op::Listen(index) => { if let Some(id) = slot(index) { let _ = net.listen(id, 2); } }
                    Op::Connect(index, port) => { if let Some(id) = slot(index) { let _ = net.connect(id, at(port)); } }
                    Op::Accept(index) => {
                        if let Some(id) = slot(index) {
                            if let Ok(Some((accepted, _))) = net.accept(id) {
                                slots.push(accepted);
                            }
                        }
                    }
                    Op::Send(index, len) => {
                        let Some(id) = slot(index) else { continue };
                        let data: Vec<u8> = (0..len).map(|_| { next_byte = next_byte.wrapping_add(1); next_byte }).collect();
                        let peer = match &net.sockets[&id].state {
                            State::Connected(connection) => connection.peer,
                            _ => None,
                        };
                        let shut = peer.and_then(|peer| match &net.sockets.get(&peer)?.state {
                            State::Connected(connection) => Some(connection.read_shut),
                            _ => None,
                        });
                        if let (Ok(sent), Some(peer), Some(false)) = (net.send(id, &data), peer, shut) {
                            expected.entry(peer).or_default().extend(&data[..sent]);
                        }
                    }
                    Op::Recv(index, len) => {
                        let Some(id) = slot(index) else { continue };
                        if net.transport(id) != Some(Transport::Stream) { continue }
                        let mut buf = vec![0u8; usize::from(len)];
                        let shut = matches!(&net.sockets[&id].state, State::Connected(connection) if connection.read_shut);
                        if let Ok(Some(read)) = net.recv(id, &mut buf, false) {
                            let want = expected.entry(id).or_default();
                            let got: Vec<u8> = want.drain(..read.min(want.len())).collect();
                            prop_assert_eq!(&buf[..read], &got[..], "bytes out of order or invented");
                        }
                        if shut { expected.remove(&id); }
                    }
                    Op::SendTo(index, port, len) => {
                        if let Some(id) = slot(index) { let _ = net.send_to(id, &vec![7u8; usize::from(len)], at(port)); }
                    }
                    Op::RecvFrom(index) => {
                        if let Some(id) = slot(index) { let _ = net.recv_from(id, &mut [0u8; 64], false); }
                    }
                    Op::Shutdown(index, read, write) => {
                        if let Some(id) = slot(index) {
                            let _ = net.shutdown(id, read, write);
                            if read { expected.remove(&id); }
                        }
                    }
                    Op::Close(index) => {
                        if let Some(id) = slot(index) {
                            net.close(id);
                            slots.retain(|held| *held != id);
                        }
                    }
                    Op::Pair(port) => {
                        for transport in [Transport::Stream, Transport::Stream] {
                            if let Ok(id) = net.create(transport, Holder::Guest) {
                                slots.push(id);
                            }
                        }
                        if let [.., listener, client] = slots[..] {
                            if net.bind(listener, at(port)).is_ok() && net.listen(listener, 2).is_ok() && net.connect(client, at(port)).is_ok() {
                                if let Ok(Some((accepted, _))) = net.accept(listener) {
                                    slots.push(accepted);
                                }
                            }
                        }
                    }
                }
                // Connections no descriptor holds (queued, then their listener closed) are gone.
                expected.retain(|id, _| net.sockets.contains_key(id));
                let (guests, connections, buffered, datagrams) = recount(&net);
                prop_assert_eq!(guests, net.guest_sockets);
                prop_assert_eq!(connections, net.connections);
                prop_assert_eq!(buffered, net.buffered_bytes);
                prop_assert_eq!(datagrams, net.datagrams);
                prop_assert!(guests <= 12 && connections <= 8 && buffered <= 20_000 && datagrams <= 6);
                for (id, want) in &expected {
                    if let Some(State::Connected(connection)) = net.sockets.get(id).map(|socket| &socket.state) {
                        prop_assert_eq!(connection.incoming.len(), want.len(), "socket {}", id);
                    }
                }
            }
            for id in slots {
                net.close(id);
            }
            prop_assert_eq!(recount(&net), (0, 0, 0, 0), "closing every descriptor frees everything");
            prop_assert_eq!(net.sockets.len(), 0);
            prop_assert!(net.ports.is_empty());
        }
    }
}
