//! Datagrams out of the VM: a guest UDP socket that sends to an address outside gets a link,
//! a host UDP socket the driver opens (`NetUdpOpen`), sends through (`NetUdpSend`, one datagram
//! at a time) and receives on (`NetUdpRecv`), like a stream's link (see [`super::egress`]).
//!
//! What comes back is filtered the way a stateful firewall does: a datagram is delivered only
//! from an address the socket has sent to (the last [`MAX_UDP_PEERS`]), so a socket that
//! talked to one server cannot be reached by anyone else on the host's network.

use core::net::SocketAddr;
use std::collections::VecDeque;

use super::egress::{LinkDone, LinkOp, Phase};
use super::{Datagram, Network, SocketId, State, MAX_DATAGRAM_BYTES};
use crate::vfs::Errno;

/// Datagrams one socket may have waiting to go out: a guest sending faster than the host's
/// socket takes them gets `ENOBUFS`, as Linux answers a full send queue.
pub const MAX_UDP_OUTGOING: usize = 64;
/// Peers a socket's replies are accepted from: the addresses it sent to most recently.
pub const MAX_UDP_PEERS: usize = 64;

/// A guest datagram socket's link out of the VM.
#[derive(Debug)]
pub(crate) struct UdpLink {
    phase: Phase,
    /// The family of the host socket (its first destination's).
    ipv6: bool,
    outgoing: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Bytes of the datagram handed to the driver and not yet sent.
    sending: Option<usize>,
    receiving: bool,
    peers: VecDeque<SocketAddr>,
    link_closed: bool,
}

impl UdpLink {
    fn new(ipv6: bool) -> Self {
        Self {
            phase: Phase::Asked,
            ipv6,
            outgoing: VecDeque::new(),
            sending: None,
            receiving: false,
            peers: VecDeque::new(),
            link_closed: false,
        }
    }

    fn held_bytes(&self) -> usize {
        self.outgoing.iter().map(|(_, bytes)| bytes.len()).sum::<usize>().saturating_add(self.sending.unwrap_or(0))
    }
}

impl Network {
    /// Sends one datagram from `id` to `to`, outside the VM (the caller has checked the policy
    /// and the address filter): queued for the link, which is opened on the first one.
    pub(crate) fn send_outside(&mut self, id: SocketId, data: &[u8], to: SocketAddr) -> Result<usize, Errno> {
        if !matches!(self.socket(id)?.state, State::Datagrams { .. }) {
            return Err(Errno::EISCONN);
        }
        if data.len() > MAX_DATAGRAM_BYTES {
            return Err(Errno::EMSGSIZE);
        }
        if to.port() == 0 {
            return Err(Errno::EINVAL);
        }
        // The guest sees a VM address of its own (getsockname), like any UDP socket.
        self.bind_ephemeral(id, super::addr::loopback_like(to.ip()))?;
        if !self.udp_links.contains_key(&id)
            && self.remotes.len() + self.udp_links.len() >= super::egress::MAX_REMOTE_CONNECTIONS
        {
            return Err(Errno::EAGAIN);
        }
        let vm_room = self.limits.max_buffered_bytes.saturating_sub(self.buffered_bytes);
        let link = self.udp_links.entry(id).or_insert_with(|| UdpLink::new(to.is_ipv6()));
        if let Phase::Failed(errno) = link.phase {
            return Err(errno);
        }
        if link.outgoing.len() >= MAX_UDP_OUTGOING || data.len() > vm_room {
            return Err(Errno::ENOBUFS);
        }
        link.outgoing.push_back((to, data.to_vec()));
        if !link.peers.contains(&to) {
            if link.peers.len() >= MAX_UDP_PEERS {
                link.peers.pop_front();
            }
            link.peers.push_back(to);
        }
        self.buffered_bytes = self.buffered_bytes.saturating_add(data.len());
        self.egress_dirty.insert(id);
        Ok(data.len())
    }

    /// Whether datagrams from `id` to `to` were already decided on (the audit and the policy
    /// run once per peer, not per datagram).
    pub(crate) fn udp_peer_known(&self, id: SocketId, to: SocketAddr) -> bool {
        self.udp_links.get(&id).is_some_and(|link| link.peers.contains(&to))
    }

    /// Makes `to` where `send` without an address goes, outside the VM.
    pub(crate) fn connect_outside(&mut self, id: SocketId, to: SocketAddr) -> Result<(), Errno> {
        self.bind_ephemeral(id, super::addr::loopback_like(to.ip()))?;
        match &mut self.socket_mut(id)?.state {
            State::Datagrams { default_peer, .. } => *default_peer = Some(to),
            _ => return Err(Errno::EINVAL),
        }
        self.outside_default.insert(id);
        Ok(())
    }

    /// Whether `send` on `id` goes outside the VM (its default peer is outside).
    pub(crate) fn sends_outside(&self, id: SocketId) -> bool {
        self.outside_default.contains(&id)
    }

    /// Whether a VM datagram socket is bound where `to` (a loopback address) is delivered.
    pub(crate) fn has_datagram_socket(&self, to: SocketAddr) -> bool {
        self.listener_for(super::Transport::Datagram, super::toward_loopback(to)).is_some()
    }

    /// What datagram link `id` needs from the driver now.
    pub(super) fn next_udp_ops(&mut self, id: SocketId) -> Vec<LinkOp> {
        let room = self.datagrams < self.limits.max_datagrams;
        let Some(link) = self.udp_links.get_mut(&id) else { return Vec::new() };
        let mut ops = Vec::new();
        match link.phase {
            Phase::Asked => {
                link.phase = Phase::Connecting;
                ops.push(LinkOp::UdpOpen { ipv6: link.ipv6 });
            }
            Phase::Open => {
                if link.sending.is_none() {
                    if let Some((to, bytes)) = link.outgoing.pop_front() {
                        link.sending = Some(bytes.len());
                        ops.push(LinkOp::UdpSend { to, bytes });
                    }
                }
                if !link.receiving && room {
                    link.receiving = true;
                    ops.push(LinkOp::UdpRecv { max_bytes: u32::try_from(MAX_DATAGRAM_BYTES).unwrap_or(u32::MAX) });
                }
            }
            Phase::Connecting | Phase::Failed(_) => {}
        }
        ops
    }

    /// An effect of datagram link `id` completed; returns whether the link failed.
    pub(super) fn udp_link_completed(&mut self, id: SocketId, done: LinkDone) -> bool {
        let Some(link) = self.udp_links.get_mut(&id) else { return false };
        if link.link_closed {
            return false;
        }
        let mut released = 0usize;
        let mut delivered: Option<(SocketAddr, Vec<u8>)> = None;
        let failure = match done {
            LinkDone::UdpOpened(Ok(())) => {
                link.phase = Phase::Open;
                None
            }
            // One datagram that could not go (an ICMP error, a full host buffer) is lost, as
            // UDP loses datagrams; the socket goes on.
            LinkDone::UdpSent(result) => {
                released = link.sending.take().unwrap_or(0);
                if result.is_ok() {
                    self.bytes_sent_out = self.bytes_sent_out.saturating_add(released as u64);
                }
                None
            }
            LinkDone::UdpReceived(Ok((from, bytes))) => {
                link.receiving = false;
                if link.peers.contains(&from) && bytes.len() <= MAX_DATAGRAM_BYTES {
                    delivered = Some((from, bytes));
                }
                None
            }
            LinkDone::UdpReceived(Err(failure)) => {
                link.receiving = false;
                Some(failure)
            }
            LinkDone::UdpOpened(Err(failure)) => Some(failure),
            _ => None,
        };
        let failed = failure.is_some();
        if let Some(failure) = failure {
            link.phase = Phase::Failed(failure.errno);
            link.link_closed = true;
            let held = link.held_bytes();
            link.outgoing.clear();
            link.sending = None;
            released = released.saturating_add(held);
            self.links_to_close.push((id, Vec::new()));
        }
        self.buffered_bytes = self.buffered_bytes.saturating_sub(released);
        if let Some((from, bytes)) = delivered {
            self.bytes_received_in = self.bytes_received_in.saturating_add(bytes.len() as u64);
            self.deliver_datagram(id, from, bytes);
        }
        self.egress_dirty.insert(id);
        failed
    }

    /// Queues a datagram from outside on socket `id` (dropped when the VM's queue or bytes are
    /// full, as UDP drops).
    fn deliver_datagram(&mut self, id: SocketId, from: SocketAddr, bytes: Vec<u8>) {
        if self.datagrams >= self.limits.max_datagrams
            || self.buffered_bytes.saturating_add(bytes.len()) > self.limits.max_buffered_bytes
        {
            return;
        }
        if let Some(State::Datagrams { queue, .. }) = self.sockets.get_mut(&id).map(|socket| &mut socket.state) {
            self.datagrams = self.datagrams.saturating_add(1);
            self.buffered_bytes = self.buffered_bytes.saturating_add(bytes.len());
            queue.push_back(Datagram { from, bytes });
        }
    }

    /// Socket `id` is being destroyed: its datagram link (if any) is closed.
    pub(super) fn forget_udp_link(&mut self, id: SocketId) {
        self.outside_default.remove(&id);
        let Some(link) = self.udp_links.remove(&id) else { return };
        self.buffered_bytes = self.buffered_bytes.saturating_sub(link.held_bytes());
        self.egress_dirty.remove(&id);
        if link.phase != Phase::Asked && !link.link_closed {
            self.links_to_close.push((id, Vec::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Holder, NetLimits, Transport};
    use super::*;

    fn outside(port: u16) -> SocketAddr {
        SocketAddr::new(core::net::IpAddr::V4(core::net::Ipv4Addr::new(198, 51, 100, 7)), port)
    }

    #[test]
    fn datagrams_out_are_bounded_and_replies_come_only_from_recent_peers() {
        let mut net = Network::new(NetLimits::default(), BTreeMap::new());
        net.enable_egress();
        let id = net.create(Transport::Datagram, Holder::Guest).unwrap_or(0);
        for _ in 0..MAX_UDP_OUTGOING {
            assert_eq!(net.send_outside(id, b"ping", outside(53)), Ok(4));
        }
        assert_eq!(net.send_outside(id, b"ping", outside(53)), Err(Errno::ENOBUFS), "the queue is full");
        assert_eq!(net.take_link_ops(0), vec![(id, LinkOp::UdpOpen { ipv6: false })]);
        net.link_completed(id, LinkDone::UdpOpened(Ok(())));
        let ops = net.take_link_ops(0);
        assert!(matches!(ops.first(), Some((_, LinkOp::UdpSend { to, .. })) if *to == outside(53)));
        assert!(matches!(ops.get(1), Some((_, LinkOp::UdpRecv { .. }))));
        // A datagram from a peer never sent to is dropped; one from the peer is delivered.
        net.link_completed(id, LinkDone::UdpReceived(Ok((outside(9999), b"intruder".to_vec()))));
        assert!(!net.readable(id));
        net.take_link_ops(0);
        net.link_completed(id, LinkDone::UdpReceived(Ok((outside(53), b"pong".to_vec()))));
        let mut buf = [0u8; 16];
        assert_eq!(net.recv_from(id, &mut buf, false), Ok(Some((4, outside(53)))));
        // Only the most recent peers are remembered.
        for port in 1000..1000 + u16::try_from(MAX_UDP_PEERS).unwrap_or(0) {
            assert!(net.udp_links.get_mut(&id).is_some_and(|link| {
                link.outgoing.clear();
                true
            }));
            let _ = net.send_outside(id, b"x", outside(port));
        }
        assert!(!net.udp_peer_known(id, outside(53)), "the oldest peer was forgotten");
        assert!(net.udp_peer_known(id, outside(1000)));
        net.close(id);
        assert_eq!(net.take_links_to_close(), vec![(id, Vec::new())]);
    }
}
