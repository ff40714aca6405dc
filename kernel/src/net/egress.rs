//! Connections out of the VM: a guest stream socket whose peer is a host on the real network.
//!
//! The kernel never touches a host socket. A connection out is a [`Remote`] socket state that
//! holds what the guest wrote and not yet handed over, and what arrived and the guest has not
//! read; the dispatcher turns its needs into effects (`NetConnect`, `NetSend`, `NetRecv`,
//! `NetTls`, `NetClose`) that the driver performs, and feeds their completions back here
//! ([`Network::link_completed`]). So a guest's call only ever moves bytes between buffers, and
//! a run with egress replays from its trace like any other.
//!
//! Flow control: at most one send and one receive per link are in flight. A receive asks for
//! no more than the room left in the socket's buffer, so a guest that stops reading stops the
//! driver reading (and the real peer sees TCP's window close); a guest that writes faster
//! than the link drains finds its buffer full and waits.

use core::net::SocketAddr;
use std::collections::VecDeque;

use super::{Network, Socket, SocketId, State, SOCKET_BUFFER_BYTES};
use crate::host::effect::NetFailure;
use crate::vfs::Errno;

/// Connections out of one VM open at once. Each is a socket of the sidecar's own process,
/// whose descriptor table is shared by every VM: 256 per VM leaves room for several VMs
/// within a typical 4096-descriptor limit, and is more than an agent's tools hold open.
pub const MAX_REMOTE_CONNECTIONS: usize = 256;
/// How long a connection out may take to be established before the guest gets `ETIMEDOUT`
/// (the kernel's own clock, so it replays): Linux gives up on SYN retries after ~127 s, which
/// would hold a guest far past any useful point; 30 s is what common HTTP clients wait.
pub const CONNECT_TIMEOUT_MS: u64 = 30_000;
/// Bytes one receive asks for at most: a few TCP windows, so a fast peer fills the socket's
/// buffer in a handful of completions without one completion holding much.
pub const MAX_RECV_BYTES: usize = 64 * 1024;

const _: () = assert!(MAX_RECV_BYTES <= SOCKET_BUFFER_BYTES);

/// How far a connection out has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Asked for by the guest; the dispatcher has not yet asked the driver.
    Asked,
    /// The driver is connecting.
    Connecting,
    /// Established (the guest has been told when `reported`).
    Open,
    /// It failed: the guest's next call gets this errno.
    Failed(Errno),
}

/// TLS on a connection out (`net_tls_connect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tls {
    Off,
    /// Asked for, to be verified as this name.
    Asked(String),
    Handshaking,
    On,
}

/// One thing a link needs from the driver (the dispatcher makes it an effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkOp {
    Connect { to: SocketAddr },
    Send { bytes: Vec<u8>, fin: bool },
    Recv { max_bytes: u32 },
    Tls { server_name: String },
}

/// Which effect of a link completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkDone {
    Connected(Result<(), NetFailure>),
    Sent(Result<(), NetFailure>),
    Received(Result<Vec<u8>, NetFailure>),
    Tls(Result<(), NetFailure>),
}

/// A guest stream socket connected out of the VM.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) to: SocketAddr,
    pub(crate) phase: Phase,
    /// Whether the guest's `connect` has returned success (a second one is `EISCONN`).
    pub(crate) reported: bool,
    pub(crate) tls: Tls,
    /// When connecting gives up (`ETIMEDOUT`), on the kernel's monotonic clock.
    pub(crate) deadline_ms: u64,
    /// Arrived and not yet read by the guest.
    pub(crate) incoming: VecDeque<u8>,
    /// Written by the guest and not yet handed to the driver.
    pub(crate) outgoing: VecDeque<u8>,
    /// Bytes handed to the driver in a send not yet completed (still the VM's buffered bytes).
    pub(crate) sending: usize,
    pub(crate) receiving: bool,
    pub(crate) read_shut: bool,
    pub(crate) write_shut: bool,
    /// The shut of the writing side has been handed to the driver.
    pub(crate) fin_sent: bool,
    /// The peer sent end of stream, or the link failed: nothing more arrives.
    pub(crate) peer_done: bool,
    /// The link has been handed to the dispatcher to close (after a failure): later
    /// completions of it change nothing, and destroying the socket closes nothing more.
    pub(crate) link_closed: bool,
    /// Whether `net_tls_connect` has returned its outcome.
    pub(crate) tls_reported: bool,
}

impl Remote {
    fn new(to: SocketAddr, now_ms: u64) -> Self {
        Self {
            to,
            phase: Phase::Asked,
            reported: false,
            tls: Tls::Off,
            deadline_ms: now_ms.saturating_add(CONNECT_TIMEOUT_MS),
            incoming: VecDeque::new(),
            outgoing: VecDeque::new(),
            sending: 0,
            receiving: false,
            read_shut: false,
            write_shut: false,
            fin_sent: false,
            peer_done: false,
            link_closed: false,
            tls_reported: false,
        }
    }

    /// Whether bytes may flow (connected, and any TLS asked for is up).
    fn flowing(&self) -> bool {
        self.phase == Phase::Open && matches!(self.tls, Tls::Off | Tls::On)
    }

    /// What the link needs from the driver now, each at most once in flight.
    fn next_ops(&mut self) -> Vec<LinkOp> {
        let mut ops = Vec::new();
        if self.phase == Phase::Asked {
            self.phase = Phase::Connecting;
            ops.push(LinkOp::Connect { to: self.to });
            return ops;
        }
        if self.phase != Phase::Open {
            return ops;
        }
        if let Tls::Asked(server_name) = &self.tls {
            ops.push(LinkOp::Tls { server_name: server_name.clone() });
            self.tls = Tls::Handshaking;
            return ops;
        }
        if !self.flowing() {
            return ops;
        }
        let fin = self.write_shut && !self.fin_sent;
        if self.sending == 0 && (!self.outgoing.is_empty() || fin) {
            let bytes: Vec<u8> = self.outgoing.drain(..).collect();
            self.sending = bytes.len();
            self.fin_sent |= fin;
            ops.push(LinkOp::Send { bytes, fin });
        }
        let room = SOCKET_BUFFER_BYTES.saturating_sub(self.incoming.len()).min(MAX_RECV_BYTES);
        if !self.receiving && !self.peer_done && !self.read_shut && room > 0 {
            self.receiving = true;
            ops.push(LinkOp::Recv { max_bytes: u32::try_from(room).unwrap_or(u32::MAX) });
        }
        ops
    }

    /// The link is dead: what waits fails with `errno` (unless it failed already), and the
    /// link is to be closed.
    fn fail(&mut self, errno: Errno) {
        if !matches!(self.phase, Phase::Failed(_)) {
            self.phase = Phase::Failed(errno);
        }
        self.peer_done = true;
        self.link_closed = true;
    }
}

impl Network {
    /// The driver carries connections out of this VM.
    pub(crate) fn enable_egress(&mut self) {
        self.egress_enabled = true;
    }

    pub(crate) fn egress_enabled(&self) -> bool {
        self.egress_enabled
    }

    /// Replaces `loopbackExemptPorts`.
    pub(crate) fn set_exempt_ports(&mut self, ports: impl IntoIterator<Item = u16>) {
        self.exempt_ports = ports.into_iter().collect();
    }

    /// Whether the host's loopback `port` may be reached (`loopbackExemptPorts`).
    pub(crate) fn port_exempt(&self, port: u16) -> bool {
        self.exempt_ports.contains(&port)
    }

    /// Whether a stream connect to `to` (a loopback address) finds a listener of this VM.
    pub(crate) fn has_stream_listener(&self, to: SocketAddr) -> bool {
        self.listener_for(super::Transport::Stream, super::toward_loopback(to)).is_some()
    }

    /// Starts connecting stream socket `id` out of the VM to `to` (the caller has checked the
    /// policy and the address filter). The guest then waits on [`Network::writable`].
    pub(crate) fn connect_remote(&mut self, id: SocketId, to: SocketAddr, now_ms: u64) -> Result<(), Errno> {
        match &self.socket(id)?.state {
            State::Idle => {}
            State::Remote(_) | State::Connected(_) => return Err(Errno::EISCONN),
            State::Listening { .. } | State::Datagrams { .. } => return Err(Errno::EINVAL),
        }
        if self.remotes.len() >= MAX_REMOTE_CONNECTIONS || self.connections >= self.limits.max_connections {
            return Err(Errno::EAGAIN);
        }
        self.socket_mut(id)?.state = State::Remote(Box::new(Remote::new(to, now_ms)));
        self.connections = self.connections.saturating_add(1);
        self.remotes.insert(id);
        self.egress_dirty.insert(id);
        Ok(())
    }

    /// A connection out of socket `id` already asked for: `Some(result)` is what `connect`
    /// answers now; `None` means it is still under way (the caller waits or says
    /// `EINPROGRESS`/`EALREADY`). A failure is reported once; the socket is then unconnected.
    pub(crate) fn connect_progress(&mut self, id: SocketId) -> Result<Option<Result<(), Errno>>, Errno> {
        let State::Remote(remote) = &mut self.socket_mut(id)?.state else { return Ok(None) };
        match remote.phase.clone() {
            Phase::Asked | Phase::Connecting => Ok(None),
            Phase::Open if remote.reported => Ok(Some(Err(Errno::EISCONN))),
            Phase::Open => {
                remote.reported = true;
                Ok(Some(Ok(())))
            }
            Phase::Failed(errno) if !remote.reported => {
                remote.reported = true;
                Ok(Some(Err(errno)))
            }
            Phase::Failed(_) => Ok(Some(Err(Errno::EISCONN))),
        }
    }

    /// Whether `id` is a connection out of the VM.
    pub(crate) fn is_remote(&self, id: SocketId) -> bool {
        matches!(self.sockets.get(&id).map(|socket| &socket.state), Some(State::Remote(_)))
    }

    /// One `net_tls_connect` on connection out `id`, verified as `server_name`: the first call
    /// asks for the handshake; `None` while it goes on (the guest waits on
    /// [`Network::writable`]); then its outcome, reported once (a later call is `EISCONN`).
    pub(crate) fn tls_step(&mut self, id: SocketId, server_name: &str) -> Result<Option<Result<(), Errno>>, Errno> {
        let remote = match &mut self.socket_mut(id)?.state {
            State::Remote(remote) => remote,
            State::Connected(_) => return Err(Errno::ENOTSUP),
            _ => return Err(Errno::ENOTCONN),
        };
        let outcome = match (&remote.phase, &remote.tls) {
            (Phase::Failed(errno), Tls::Asked(_) | Tls::Handshaking) if !remote.tls_reported => Some(Err(*errno)),
            (Phase::Failed(errno), Tls::Off) => return Err(*errno),
            (Phase::Failed(_), _) => return Err(Errno::EISCONN),
            (Phase::Open, Tls::Off) => {
                remote.tls = Tls::Asked(server_name.to_owned());
                self.egress_dirty.insert(id);
                return Ok(None);
            }
            (Phase::Open, Tls::On) if !remote.tls_reported => Some(Ok(())),
            (Phase::Open, Tls::On) => return Err(Errno::EISCONN),
            (Phase::Open, Tls::Asked(_) | Tls::Handshaking) => return Ok(None),
            (Phase::Asked | Phase::Connecting, _) => return Err(Errno::ENOTCONN),
        };
        remote.tls_reported = true;
        Ok(outcome)
    }

    /// Every link's needs since the last call, and connects that ran out of time at `now_ms`
    /// (failed with `ETIMEDOUT`; the dispatcher closes their links).
    pub(crate) fn take_link_ops(&mut self, now_ms: u64) -> Vec<(SocketId, LinkOp)> {
        let mut ops = Vec::new();
        for id in std::mem::take(&mut self.egress_dirty) {
            let Some(State::Remote(remote)) = self.sockets.get_mut(&id).map(|socket| &mut socket.state) else {
                continue;
            };
            ops.extend(remote.next_ops().into_iter().map(|op| (id, op)));
        }
        for id in self.remotes.clone() {
            let Some(State::Remote(remote)) = self.sockets.get_mut(&id).map(|socket| &mut socket.state) else {
                continue;
            };
            if remote.phase == Phase::Connecting && now_ms >= remote.deadline_ms {
                remote.fail(Errno::ETIMEDOUT);
                self.links_to_close.push((id, Vec::new()));
            }
        }
        ops
    }

    /// The earliest connect deadline of a link still connecting.
    pub(crate) fn next_link_deadline(&self) -> Option<u64> {
        self.remotes
            .iter()
            .filter_map(|id| match self.sockets.get(id).map(|socket| &socket.state) {
                Some(State::Remote(remote)) if matches!(remote.phase, Phase::Asked | Phase::Connecting) => {
                    Some(remote.deadline_ms)
                }
                _ => None,
            })
            .min()
    }

    /// Links whose sockets are gone (or failed) since the last call, with the bytes still to
    /// send before closing: the dispatcher closes them.
    pub(crate) fn take_links_to_close(&mut self) -> Vec<(SocketId, Vec<u8>)> {
        std::mem::take(&mut self.links_to_close)
    }

    /// Whether the dispatcher has something to do for this VM's links at `now_ms`.
    pub(crate) fn link_work_due(&self, now_ms: u64) -> bool {
        !self.egress_dirty.is_empty()
            || !self.links_to_close.is_empty()
            || self.next_link_deadline().is_some_and(|deadline| deadline <= now_ms)
    }

    /// An effect of link `id` completed. Returns whether the link failed (the dispatcher then
    /// closes it). A completion for a socket that is gone changes nothing.
    pub(crate) fn link_completed(&mut self, id: SocketId, done: LinkDone) -> bool {
        let Some(Socket { state: State::Remote(remote), .. }) = self.sockets.get_mut(&id) else { return false };
        if remote.link_closed {
            return false;
        }
        let mut released = 0usize;
        let mut arrived = 0usize;
        let failure = match done {
            LinkDone::Connected(Ok(())) => {
                remote.phase = Phase::Open;
                None
            }
            LinkDone::Tls(Ok(())) => {
                remote.tls = Tls::On;
                None
            }
            LinkDone::Sent(Ok(())) => {
                released = std::mem::take(&mut remote.sending);
                None
            }
            LinkDone::Received(Ok(bytes)) => {
                remote.receiving = false;
                if bytes.is_empty() {
                    remote.peer_done = true;
                } else if !remote.read_shut {
                    // The driver reads no more than was asked; a driver that does is cut to it.
                    let room = SOCKET_BUFFER_BYTES.saturating_sub(remote.incoming.len());
                    arrived = bytes.len().min(room);
                    remote.incoming.extend(bytes.get(..arrived).unwrap_or_default());
                }
                None
            }
            LinkDone::Connected(Err(failure)) | LinkDone::Tls(Err(failure)) => Some(failure),
            LinkDone::Sent(Err(failure)) => {
                released = std::mem::take(&mut remote.sending);
                Some(failure)
            }
            LinkDone::Received(Err(failure)) => {
                remote.receiving = false;
                Some(failure)
            }
        };
        let failed = failure.is_some();
        if let Some(failure) = failure {
            remote.fail(failure.errno);
        }
        self.buffered_bytes = self.buffered_bytes.saturating_sub(released).saturating_add(arrived);
        self.egress_dirty.insert(id);
        if failed {
            self.links_to_close.push((id, Vec::new()));
        }
        failed
    }

    /// Sends on a connection out: what fits in its buffer (`Ok(0)`: full, wait).
    pub(super) fn send_remote(&mut self, id: SocketId, data: &[u8]) -> Result<usize, Errno> {
        let vm_room = self.limits.max_buffered_bytes.saturating_sub(self.buffered_bytes);
        let State::Remote(remote) = &mut self.socket_mut(id)?.state else { return Err(Errno::ENOTCONN) };
        if let Phase::Failed(errno) = remote.phase {
            return Err(if remote.reported { Errno::EPIPE } else { errno });
        }
        if remote.write_shut {
            return Err(Errno::EPIPE);
        }
        let held = remote.outgoing.len().saturating_add(remote.sending);
        let room = SOCKET_BUFFER_BYTES.saturating_sub(held);
        let accepted = data.len().min(room).min(vm_room);
        if accepted == 0 && !data.is_empty() && room > 0 {
            return Err(Errno::ENOBUFS);
        }
        remote.outgoing.extend(data.get(..accepted).unwrap_or_default());
        self.buffered_bytes = self.buffered_bytes.saturating_add(accepted);
        if accepted > 0 {
            self.egress_dirty.insert(id);
        }
        Ok(accepted)
    }

    /// Reads from a connection out: as [`Network::recv`].
    pub(super) fn recv_remote(&mut self, id: SocketId, buf: &mut [u8], peek: bool) -> Result<Option<usize>, Errno> {
        let State::Remote(remote) = &mut self.socket_mut(id)?.state else { return Err(Errno::ENOTCONN) };
        if remote.incoming.is_empty() {
            if let Phase::Failed(errno) = remote.phase {
                // The failure is the reader's answer once; then end of stream.
                if !remote.reported {
                    remote.reported = true;
                    return Err(errno);
                }
                return Ok(Some(0));
            }
            if remote.phase != Phase::Open && !remote.read_shut {
                return Ok(None);
            }
            return Ok((remote.peer_done || remote.read_shut).then_some(0));
        }
        let read = buf.len().min(remote.incoming.len());
        for (dst, src) in buf.iter_mut().zip(remote.incoming.iter()) {
            *dst = *src;
        }
        if !peek {
            remote.incoming.drain(..read);
            self.buffered_bytes = self.buffered_bytes.saturating_sub(read);
            self.egress_dirty.insert(id);
        }
        Ok(Some(read))
    }

    /// Shuts reading and/or writing of a connection out.
    pub(super) fn shutdown_remote(&mut self, id: SocketId, read: bool, write: bool) -> Result<(), Errno> {
        let State::Remote(remote) = &mut self.socket_mut(id)?.state else { return Err(Errno::ENOTCONN) };
        remote.read_shut |= read;
        remote.write_shut |= write;
        let dropped = if read { remote.incoming.drain(..).count() } else { 0 };
        self.buffered_bytes = self.buffered_bytes.saturating_sub(dropped);
        self.egress_dirty.insert(id);
        Ok(())
    }

    /// The link of a socket being destroyed: its bytes are released and the dispatcher closes
    /// the link. What the guest wrote is still sent, as `close` on Linux does: the bytes not
    /// yet handed over go with the close (the driver sends them, and what it already has,
    /// within its linger bound).
    pub(super) fn forget_remote(&mut self, id: SocketId, remote: Remote) {
        self.connections = self.connections.saturating_sub(1);
        let held = remote.incoming.len().saturating_add(remote.outgoing.len()).saturating_add(remote.sending);
        self.buffered_bytes = self.buffered_bytes.saturating_sub(held);
        self.remotes.remove(&id);
        self.egress_dirty.remove(&id);
        let sendable = matches!(remote.phase, Phase::Connecting | Phase::Open) && !remote.fin_sent;
        match remote.phase {
            // The driver never heard of it, or has been told to close it.
            Phase::Asked => {}
            _ if remote.link_closed => {}
            _ if sendable => self.links_to_close.push((id, Vec::from(remote.outgoing))),
            _ => self.links_to_close.push((id, Vec::new())),
        }
    }

    pub(super) fn remote_readable(remote: &Remote) -> bool {
        !remote.incoming.is_empty() || remote.peer_done || remote.read_shut || matches!(remote.phase, Phase::Failed(_))
    }

    pub(super) fn remote_writable(remote: &Remote) -> bool {
        match remote.phase {
            Phase::Asked | Phase::Connecting => false,
            Phase::Failed(_) => true,
            Phase::Open => {
                matches!(remote.tls, Tls::Off | Tls::On)
                    && (remote.write_shut || remote.outgoing.len().saturating_add(remote.sending) < SOCKET_BUFFER_BYTES)
            }
        }
    }
}
