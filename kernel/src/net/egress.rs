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

use super::NetFailure;
use super::{Network, Socket, SocketId, State, SOCKET_BUFFER_BYTES};
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
    UdpOpen { ipv6: bool },
    UdpSend { to: SocketAddr, bytes: Vec<u8> },
    UdpRecv { max_bytes: u32 },
}

/// Which effect of a link completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkDone {
    Connected(Result<(), NetFailure>),
    Sent(Result<(), NetFailure>),
    Received(Result<Vec<u8>, NetFailure>),
    Tls(Result<(), NetFailure>),
    UdpOpened(Result<(), NetFailure>),
    UdpSent(Result<(), NetFailure>),
    UdpReceived(Result<(SocketAddr, Vec<u8>), NetFailure>),
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
    /// Whether the guest has been told the link failed (by its connect or by a read).
    pub(crate) failure_reported: bool,
    /// Bytes the driver has sent, and delivered, on this link.
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
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
            failure_reported: false,
            bytes_sent: 0,
            bytes_received: 0,
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
                remote.failure_reported = true;
                Ok(Some(Err(errno)))
            }
            Phase::Failed(_) => Ok(Some(Err(Errno::EISCONN))),
        }
    }

    /// Connections out of the VM open now.
    pub(crate) fn remote_count(&self) -> usize {
        self.remotes.len()
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
            if self.udp_links.contains_key(&id) {
                ops.extend(self.next_udp_ops(id).into_iter().map(|op| (id, op)));
                continue;
            }
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
                let report = Self::report_of(remote, Some(Errno::ETIMEDOUT));
                self.record_link_report(report);
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
            || self.dns.has_queued()
            || self.next_link_deadline().is_some_and(|deadline| deadline <= now_ms)
    }

    /// An effect of link `id` completed. Returns whether the link failed (the dispatcher then
    /// closes it). A completion for a socket that is gone changes nothing.
    pub(crate) fn link_completed(&mut self, id: SocketId, done: LinkDone) -> bool {
        if matches!(done, LinkDone::UdpOpened(_) | LinkDone::UdpSent(_) | LinkDone::UdpReceived(_)) {
            return self.udp_link_completed(id, done);
        }
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
            LinkDone::UdpOpened(_) | LinkDone::UdpSent(_) | LinkDone::UdpReceived(_) => None,
        };
        let failed = failure.is_some();
        if failure.is_none() {
            remote.bytes_sent = remote.bytes_sent.saturating_add(released as u64);
            remote.bytes_received = remote.bytes_received.saturating_add(arrived as u64);
        }
        let errno = failure.map(|failure| failure.errno);
        let report = errno.map(|errno| {
            remote.fail(errno);
            Self::report_of(remote, Some(errno))
        });
        if errno.is_none() {
            self.bytes_sent_out = self.bytes_sent_out.saturating_add(released as u64);
            self.bytes_received_in = self.bytes_received_in.saturating_add(arrived as u64);
        }
        if let Some(report) = report {
            self.record_link_report(report);
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
            // The failure itself once (as Linux gives a reset to the next write), then EPIPE.
            if remote.failure_reported {
                return Err(Errno::EPIPE);
            }
            remote.reported = true;
            remote.failure_reported = true;
            return Err(errno);
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
                // The failure is the reader's answer once (also after the connect succeeded);
                // then end of stream.
                if !remote.failure_reported {
                    remote.reported = true;
                    remote.failure_reported = true;
                    return Err(errno);
                }
                return Ok(Some(0));
            }
            if remote.phase != Phase::Open && !remote.read_shut {
                return Ok(None);
            }
            return Ok((remote.peer_done || remote.read_shut).then_some(0));
        }
        let read = super::take_bytes(&mut remote.incoming, buf, peek);
        if !peek {
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
        // Bytes meant for a TLS session that is not up must never go out in the clear.
        if remote.phase != Phase::Asked && !remote.link_closed {
            let mut report = Self::report_of(&remote, None);
            // What the guest wrote last still goes out with the close.
            report.bytes_sent = report.bytes_sent.saturating_add((remote.outgoing.len() + remote.sending) as u64);
            self.record_link_report(report);
        }
        let sendable = matches!(remote.phase, Phase::Connecting | Phase::Open)
            && !remote.fin_sent
            && matches!(remote.tls, Tls::Off | Tls::On);
        match remote.phase {
            // The driver never heard of it, or has been told to close it.
            Phase::Asked => {}
            _ if remote.link_closed => {}
            _ if sendable => self.links_to_close.push((id, Vec::from(remote.outgoing))),
            _ => self.links_to_close.push((id, Vec::new())),
        }
    }

    fn report_of(remote: &Remote, failure: Option<Errno>) -> super::LinkReport {
        super::LinkReport {
            destination: format!("tcp://{}", remote.to),
            bytes_sent: remote.bytes_sent,
            bytes_received: remote.bytes_received,
            failure,
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

/// Connections out against a model driver: whatever the guest and the driver do, in any
/// order, the counters agree with the table, a link never has two sends or two receives in
/// flight, a receive never asks for more than the socket has room for, the driver is handed
/// exactly the bytes the guest wrote (in order, once), the guest reads exactly the bytes the
/// driver delivered, every link is closed once and nothing is asked of it after.
#[cfg(test)]
mod properties {
    #![allow(clippy::indexing_slicing)]

    use std::collections::BTreeMap as Map;

    use proptest::prelude::*;

    use super::super::{Holder, NetLimits, Transport};
    use super::*;
    use crate::policy::config::ListenPolicy;

    #[derive(Debug, Clone)]
    enum Op {
        Connect,
        Send(usize, u16),
        Recv(usize, u16),
        Shutdown(usize, bool, bool),
        Close(usize),
        /// The dispatcher takes what the links need.
        Take,
        /// The driver completes the n-th effect in flight: `true` is success.
        Complete(usize, bool, u16),
        /// Time passes (connects may time out).
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let slot = 0usize..6;
        prop_oneof![
            1 => Just(Op::Connect),
            3 => (slot.clone(), 0u16..3000).prop_map(|(s, n)| Op::Send(s, n)),
            3 => (slot.clone(), 0u16..3000).prop_map(|(s, n)| Op::Recv(s, n)),
            1 => (slot.clone(), any::<bool>(), any::<bool>()).prop_map(|(s, r, w)| Op::Shutdown(s, r, w)),
            1 => slot.prop_map(Op::Close),
            3 => Just(Op::Take),
            4 => (0usize..8, prop::bool::weighted(0.9), 0u16..4000).prop_map(|(i, ok, n)| Op::Complete(i, ok, n)),
            1 => (0u16..20_000).prop_map(Op::Wait),
        ]
    }

    /// What the model driver holds of one link.
    #[derive(Debug, Default)]
    struct DriverLink {
        sent: Vec<u8>,
        delivered: u8,
        closed: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn links_move_exactly_the_bytes_and_close_once(ops in proptest::collection::vec(op(), 1..150)) {
            let limits = NetLimits { max_sockets: 8, max_connections: 6, max_buffered_bytes: 600_000, max_datagrams: 4, listen: ListenPolicy::default() };
            let mut net = Network::new(limits, Map::new());
            net.enable_egress();
            let to = SocketAddr::new(core::net::IpAddr::V4(core::net::Ipv4Addr::new(93, 184, 216, 34)), 443);
            let mut now_ms = 0u64;
            let mut slots: Vec<SocketId> = Vec::new();
            let mut written: Map<SocketId, Vec<u8>> = Map::new();
            let mut read_back: Map<SocketId, Vec<u8>> = Map::new();
            let mut drivers: Map<SocketId, DriverLink> = Map::new();
            let mut in_flight: Vec<(SocketId, LinkOp)> = Vec::new();
            let mut next_byte = 0u8;
            for op in ops {
                let slot = |index: usize| if slots.is_empty() { None } else { Some(slots[index % slots.len()]) };
                match op {
                    Op::Connect => {
                        if let Ok(id) = net.create(Transport::Stream, Holder::Guest) {
                            if net.connect_remote(id, to, now_ms).is_ok() {
                                slots.push(id);
                            } else {
                                net.close(id);
                            }
                        }
                    }
                    Op::Send(index, len) => {
                        let Some(id) = slot(index) else { continue };
                        let data: Vec<u8> = (0..len).map(|_| { next_byte = next_byte.wrapping_add(1); next_byte }).collect();
                        if let Ok(sent) = net.send(id, &data) {
                            written.entry(id).or_default().extend(&data[..sent]);
                        }
                    }
                    Op::Recv(index, len) => {
                        let Some(id) = slot(index) else { continue };
                        let mut buf = vec![0u8; usize::from(len)];
                        if let Ok(Some(read)) = net.recv(id, &mut buf, false) {
                            read_back.entry(id).or_default().extend(&buf[..read]);
                        }
                    }
                    Op::Shutdown(index, read, write) => {
                        if let Some(id) = slot(index) { let _ = net.shutdown(id, read, write); }
                    }
                    Op::Close(index) => {
                        if let Some(id) = slot(index) {
                            net.close(id);
                            slots.retain(|held| *held != id);
                        }
                    }
                    Op::Take => {
                        for (id, op) in net.take_link_ops(now_ms) {
                            let link = drivers.entry(id).or_default();
                            prop_assert!(!link.closed, "an effect asked of closed link {}", id);
                            let kind = std::mem::discriminant(&op);
                            prop_assert!(
                                !in_flight.iter().any(|(held, other)| *held == id && std::mem::discriminant(other) == kind),
                                "two {:?} in flight on link {}", op, id
                            );
                            if let LinkOp::Recv { max_bytes } = &op {
                                if let Some(Socket { state: State::Remote(remote), .. }) = net.sockets.get(&id) {
                                    prop_assert!(remote.incoming.len() + *max_bytes as usize <= SOCKET_BUFFER_BYTES);
                                }
                            }
                            if let LinkOp::Send { bytes, .. } = &op {
                                link.sent.extend(bytes);
                            }
                            in_flight.push((id, op));
                        }
                        for (id, last) in net.take_links_to_close() {
                            let link = drivers.entry(id).or_default();
                            prop_assert!(!link.closed, "link {} closed twice", id);
                            link.sent.extend(last);
                            link.closed = true;
                            in_flight.retain(|(held, _)| *held != id);
                        }
                    }
                    Op::Complete(index, ok, len) => {
                        if in_flight.is_empty() { continue }
                        let (id, op) = in_flight.remove(index % in_flight.len());
                        let failed = NetFailure::new(Errno::ECONNRESET, "reset");
                        let done = match op {
                            LinkOp::Connect { .. } => LinkDone::Connected(if ok { Ok(()) } else { Err(failed) }),
                            LinkOp::Tls { .. } => LinkDone::Tls(if ok { Ok(()) } else { Err(failed) }),
                            LinkOp::Send { .. } => LinkDone::Sent(if ok { Ok(()) } else { Err(failed) }),
                            LinkOp::Recv { max_bytes } => {
                                let link = drivers.entry(id).or_default();
                                let len = usize::from(len).min(max_bytes as usize);
                                let bytes: Vec<u8> = (0..len).map(|_| { link.delivered = link.delivered.wrapping_add(3); link.delivered }).collect();
                                LinkDone::Received(if ok { Ok(bytes) } else { Err(failed) })
                            }
                            LinkOp::UdpOpen { .. } | LinkOp::UdpSend { .. } | LinkOp::UdpRecv { .. } => {
                                prop_assert!(false, "a stream link asked for a datagram effect");
                                continue;
                            }
                        };
                        net.link_completed(id, done);
                    }
                    Op::Wait(ms) => now_ms += u64::from(ms),
                }
                let (mut connections, mut buffered) = (0, 0);
                for socket in net.sockets.values() {
                    if let State::Remote(remote) = &socket.state {
                        connections += 1;
                        buffered += remote.incoming.len() + remote.outgoing.len() + remote.sending;
                    }
                }
                prop_assert_eq!(connections, net.connections);
                prop_assert_eq!(buffered, net.buffered_bytes);
                prop_assert!(net.remotes.len() == connections && connections <= 6);
            }
            for id in slots {
                net.close(id);
            }
            for (id, last) in net.take_links_to_close() {
                let link = drivers.entry(id).or_default();
                prop_assert!(!link.closed, "link {} closed twice", id);
                link.sent.extend(last);
                link.closed = true;
            }
            prop_assert_eq!((net.connections, net.buffered_bytes, net.remotes.len()), (0, 0, 0));
            for (id, link) in &drivers {
                // What reached the driver is a prefix of what the guest wrote: a link that
                // failed drops the rest.
                let wrote = written.get(id).map(Vec::as_slice).unwrap_or_default();
                prop_assert!(wrote.starts_with(&link.sent), "link {} was handed bytes the guest did not write", id);
                // What the guest read is a prefix of what was delivered, in order.
                let got = read_back.get(id).map(Vec::as_slice).unwrap_or_default();
                let delivered: Vec<u8> = (1..=got.len()).map(|i| u8::try_from(i * 3 % 256).unwrap_or(0)).collect();
                prop_assert_eq!(got, &delivered[..], "link {} read bytes out of order", id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Holder, NetLimits, Transport};
    use super::*;
    use crate::policy::config::ListenPolicy;

    fn network(max_connections: usize) -> Network {
        let limits = NetLimits {
            max_sockets: 1024,
            max_connections,
            max_buffered_bytes: 64 << 20,
            max_datagrams: 16,
            listen: ListenPolicy::default(),
        };
        let mut net = Network::new(limits, BTreeMap::new());
        net.enable_egress();
        net
    }

    fn remote() -> SocketAddr {
        SocketAddr::new(core::net::IpAddr::V4(core::net::Ipv4Addr::new(93, 184, 216, 34)), 80)
    }

    #[test]
    fn a_connect_the_driver_never_answers_times_out_on_the_kernel_clock() {
        let mut net = network(8);
        let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect_remote(id, remote(), 1_000), Ok(()));
        assert_eq!(net.take_link_ops(1_000), vec![(id, LinkOp::Connect { to: remote() })]);
        assert!(!net.writable(id), "the guest waits while connecting");
        assert_eq!(net.next_link_deadline(), Some(1_000 + CONNECT_TIMEOUT_MS));
        assert!(!net.link_work_due(CONNECT_TIMEOUT_MS));
        assert!(net.link_work_due(1_000 + CONNECT_TIMEOUT_MS));
        assert!(net.take_link_ops(1_000 + CONNECT_TIMEOUT_MS).is_empty());
        assert_eq!(net.take_links_to_close(), vec![(id, Vec::new())], "the link is closed");
        assert!(net.writable(id), "the guest wakes");
        assert_eq!(net.connect_progress(id), Ok(Some(Err(Errno::ETIMEDOUT))));
        let reports = net.take_link_reports();
        assert_eq!(reports.len(), 1, "the host hears of it once");
        assert_eq!(reports.first().and_then(|report| report.failure), Some(Errno::ETIMEDOUT));
        // A late answer changes nothing, and closing the socket closes no link twice.
        assert!(!net.link_completed(id, LinkDone::Connected(Ok(()))));
        net.close(id);
        assert!(net.take_links_to_close().is_empty());
        assert!(net.take_link_reports().is_empty(), "nor reports it twice");
    }

    #[test]
    fn a_connection_that_fails_after_connecting_tells_the_reader_once_then_ends() {
        let mut net = network(8);
        let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect_remote(id, remote(), 0), Ok(()));
        net.take_link_ops(0);
        net.link_completed(id, LinkDone::Connected(Ok(())));
        assert_eq!(net.connect_progress(id), Ok(Some(Ok(()))));
        net.take_link_ops(0);
        net.link_completed(id, LinkDone::Received(Ok(b"partial".to_vec())));
        net.take_link_ops(0);
        assert!(net.link_completed(id, LinkDone::Received(Err(NetFailure::new(Errno::ECONNRESET, "reset")))));
        let mut buf = [0u8; 16];
        assert_eq!(net.recv(id, &mut buf, false), Ok(Some(7)), "what arrived first is read");
        assert_eq!(net.recv(id, &mut buf, false), Err(Errno::ECONNRESET), "not a clean end of stream");
        assert_eq!(net.recv(id, &mut buf, false), Ok(Some(0)));
        assert_eq!(net.send(id, b"more"), Err(Errno::EPIPE));
    }

    #[test]
    fn connections_out_are_bounded_per_vm_and_by_max_connections() {
        let mut net = network(usize::MAX);
        for _ in 0..MAX_REMOTE_CONNECTIONS {
            let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
            assert_eq!(net.connect_remote(id, remote(), 0), Ok(()));
        }
        let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect_remote(id, remote(), 0), Err(Errno::EAGAIN));
        let mut net = network(2);
        for expected in [Ok(()), Ok(()), Err(Errno::EAGAIN)] {
            let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
            assert_eq!(net.connect_remote(id, remote(), 0), expected);
        }
    }

    #[test]
    fn what_a_guest_writes_before_closing_still_goes_out_and_a_receive_asks_for_the_room_left() {
        let mut net = network(8);
        let id = net.create(Transport::Stream, Holder::Guest).unwrap_or(0);
        assert_eq!(net.connect_remote(id, remote(), 0), Ok(()));
        net.take_link_ops(0);
        assert!(!net.link_completed(id, LinkDone::Connected(Ok(()))));
        assert_eq!(net.connect_progress(id), Ok(Some(Ok(()))));
        assert_eq!(net.connect_progress(id), Ok(Some(Err(Errno::EISCONN))), "reported once");
        let ops = net.take_link_ops(0);
        assert_eq!(ops, vec![(id, LinkOp::Recv { max_bytes: u32::try_from(MAX_RECV_BYTES).unwrap_or(0) })]);
        let arrived = vec![7u8; MAX_RECV_BYTES];
        for _ in 0..3 {
            net.link_completed(id, LinkDone::Received(Ok(arrived.clone())));
            net.take_link_ops(0);
        }
        // 192 KiB arrived unread: the next receive asks only for the 64 KiB of room left.
        net.link_completed(id, LinkDone::Received(Ok(arrived)));
        assert!(net.take_link_ops(0).is_empty(), "a full buffer asks for nothing");
        let mut buf = vec![0u8; 1000];
        assert_eq!(net.recv(id, &mut buf, false), Ok(Some(1000)));
        assert_eq!(net.take_link_ops(0), vec![(id, LinkOp::Recv { max_bytes: 1000 })]);
        assert_eq!(net.send(id, b"GET / HTTP/1.0\r\n\r\n"), Ok(18));
        net.close(id);
        assert_eq!(net.take_links_to_close(), vec![(id, b"GET / HTTP/1.0\r\n\r\n".to_vec())]);
        assert_eq!((net.connections, net.buffered_bytes), (0, 0));
    }
}
