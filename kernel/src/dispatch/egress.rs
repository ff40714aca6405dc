//! Connections out of VMs (see [`crate::net::egress`]): what their sockets need becomes effects
//! for the driver, and each completion goes back to its socket.
//!
//! A link is named by a [`LinkId`] from its `NetConnect` until the driver completes its
//! `NetClose`; the kernel-wide count of links is bounded ([`MAX_LINKS`]), so the network
//! effects in flight are too (a link has at most a connect or TLS handshake, a send, a
//! receive, a last send and a close in flight: [`MAX_EFFECTS_PER_LINK`]).

use std::collections::BTreeMap;

use super::effects::{Then, Waiter};
use super::vm_table::creation_order;
use super::Sidecar;
use crate::host::effect::{Completion, Effect, LinkId, NetFailure};
use crate::net::egress::{LinkDone, LinkOp};
use crate::net::SocketId;
use crate::vfs::Errno;

/// Links open at once across every VM: each is a socket of the sidecar's process, so this
/// bounds the descriptors egress can use to a quarter of a typical 4096 limit.
pub const MAX_LINKS: usize = 1024;
/// Effects one link can have in flight (connect or TLS, send, receive, last send, close).
pub const MAX_EFFECTS_PER_LINK: usize = 5;

/// Which effect of a link an effect is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEffect {
    Connect,
    Send,
    Recv,
    Tls,
    Close,
    UdpOpen,
    UdpSend,
    UdpRecv,
}

/// The links the driver holds, with the VM each belongs to.
#[derive(Debug, Default)]
pub(crate) struct Links {
    vm_of: BTreeMap<LinkId, String>,
}

impl Links {
    pub(crate) fn len(&self) -> usize {
        self.vm_of.len()
    }
}

impl Sidecar {
    /// The driver carries connections out of VMs: guests whose policy allows an address may
    /// reach it (without this, such a connect finds no route).
    pub fn with_egress(mut self) -> Self {
        self.egress = true;
        self
    }

    /// Links open now (connected, connecting, or closing), for drivers and tests.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Turns every VM's link needs into effects; connects past their deadline fail.
    pub(crate) fn drive_links(&mut self) {
        let now_ms = self.now.monotonic_ms;
        let due: Vec<String> = self
            .vms
            .keys()
            .filter(|vm_id| self.vms.get(vm_id).is_some_and(|vm| vm.processes().net.link_work_due(now_ms)))
            .cloned()
            .collect();
        for vm_id in due {
            let Ok(vm) = self.vm_mut(&vm_id) else { continue };
            let net = &mut vm.processes_mut().net;
            let ops = net.take_link_ops(now_ms);
            let closes = net.take_links_to_close();
            let resolutions = net.dns.take_queued();
            let servers = net.dns.servers().to_vec();
            for (_, name) in resolutions {
                let waiter = Waiter::resolve(vm_id.clone(), name.clone());
                let effect = Effect::Resolve { name: name.clone(), servers: servers.clone() };
                // Within the network bound by construction; were it refused, the name fails
                // now rather than its waiters waiting for nothing.
                if self.ask_effect(effect, waiter).is_err() {
                    if let Ok(vm) = self.vm_mut(&vm_id) {
                        vm.processes_mut().net.dns.resolved(&name, Err(Errno::EAGAIN), now_ms);
                    }
                }
            }
            for (socket, op) in ops {
                self.ask_link(&vm_id, socket, op);
            }
            for (socket, last_bytes) in closes {
                self.close_link(&vm_id, socket, last_bytes);
            }
            // Connections that ended outside a slice (a failure, a timeout) are reported now.
            self.report_connect_attempts(&vm_id);
        }
    }

    /// The earliest connect deadline of any link still connecting.
    pub(crate) fn links_deadline(&self) -> Option<u64> {
        if self.links.vm_of.is_empty() {
            return None;
        }
        self.vms.keys().filter_map(|vm_id| self.vms.get(vm_id)?.processes().net.next_link_deadline()).min()
    }

    /// Closes every link of a VM being disposed (its processes are gone, so are their sockets).
    pub(crate) fn close_links_of(&mut self, vm_id: &str) {
        let Ok(vm) = self.vm_mut(vm_id) else { return };
        let closes = vm.processes_mut().net.take_links_to_close();
        for (socket, last_bytes) in closes {
            self.close_link(vm_id, socket, last_bytes);
        }
        self.report_connect_attempts(vm_id);
    }

    fn link_id(vm_id: &str, socket: SocketId) -> LinkId {
        LinkId { vm: creation_order(vm_id), socket }
    }

    fn ask_link(&mut self, vm_id: &str, socket: SocketId, op: LinkOp) {
        let link = Self::link_id(vm_id, socket);
        let (effect, kind) = match op {
            LinkOp::Connect { .. } | LinkOp::UdpOpen { .. } if self.links.vm_of.len() >= MAX_LINKS => {
                let failure = NetFailure::new(Errno::EAGAIN, format!("{MAX_LINKS} connections out are open"));
                let done = match op {
                    LinkOp::Connect { .. } => LinkDone::Connected(Err(failure)),
                    _ => LinkDone::UdpOpened(Err(failure)),
                };
                self.complete_link(vm_id, socket, done);
                return;
            }
            LinkOp::Connect { to } => {
                self.links.vm_of.insert(link, vm_id.to_owned());
                (Effect::NetConnect { link, to }, LinkEffect::Connect)
            }
            LinkOp::UdpOpen { ipv6 } => {
                self.links.vm_of.insert(link, vm_id.to_owned());
                (Effect::NetUdpOpen { link, ipv6 }, LinkEffect::UdpOpen)
            }
            LinkOp::UdpSend { to, bytes } => (Effect::NetUdpSend { link, to, bytes }, LinkEffect::UdpSend),
            LinkOp::UdpRecv { max_bytes } => (Effect::NetUdpRecv { link, max_bytes }, LinkEffect::UdpRecv),
            LinkOp::Send { bytes, fin } => (Effect::NetSend { link, bytes, fin }, LinkEffect::Send),
            LinkOp::Recv { max_bytes } => (Effect::NetRecv { link, max_bytes }, LinkEffect::Recv),
            LinkOp::Tls { server_name } => (Effect::NetTls { link, server_name }, LinkEffect::Tls),
        };
        self.ask_link_effect(vm_id, link, effect, kind);
    }

    fn close_link(&mut self, vm_id: &str, socket: SocketId, last_bytes: Vec<u8>) {
        let link = Self::link_id(vm_id, socket);
        if !self.links.vm_of.contains_key(&link) {
            return;
        }
        if !last_bytes.is_empty() {
            let effect = Effect::NetSend { link, bytes: last_bytes, fin: true };
            self.ask_link_effect(vm_id, link, effect, LinkEffect::Send);
        }
        self.ask_link_effect(vm_id, link, Effect::NetClose { link }, LinkEffect::Close);
    }

    fn ask_link_effect(&mut self, vm_id: &str, link: LinkId, effect: Effect, kind: LinkEffect) {
        let waiter = Waiter::link(vm_id.to_owned(), link, kind);
        // Network effects have their own bound, which the link count keeps them within; were
        // one refused all the same, its socket fails rather than waiting for nothing.
        if let Err(rejection) = self.ask_effect(effect, waiter) {
            let failure = NetFailure::new(Errno::ENOBUFS, rejection.message);
            let done = match kind {
                LinkEffect::Connect => LinkDone::Connected(Err(failure)),
                LinkEffect::Tls => LinkDone::Tls(Err(failure)),
                LinkEffect::Recv => LinkDone::Received(Err(failure)),
                LinkEffect::Send | LinkEffect::Close => LinkDone::Sent(Err(failure)),
                LinkEffect::UdpOpen => LinkDone::UdpOpened(Err(failure)),
                LinkEffect::UdpSend => LinkDone::UdpSent(Err(failure)),
                LinkEffect::UdpRecv => LinkDone::UdpReceived(Err(failure)),
            };
            self.complete_link(vm_id, link.socket, done);
        }
    }

    fn complete_link(&mut self, vm_id: &str, socket: SocketId, done: LinkDone) {
        if let Ok(vm) = self.vm_mut(vm_id) {
            vm.processes_mut().net.link_completed(socket, done);
        }
    }

    /// A name is resolved: the VM caches the answer and its waiting guests wake.
    pub(crate) fn finish_resolve(&mut self, vm_id: &str, name: &str, completion: Completion) {
        let now_ms = self.now.monotonic_ms;
        let answer = match completion {
            Completion::Resolved(answer) => answer.map_err(|failure| failure.errno),
            _ => Err(Errno::EIO),
        };
        if let Ok(vm) = self.vm_mut(vm_id) {
            vm.processes_mut().net.dns.resolved(name, answer, now_ms);
        }
    }

    /// A network effect completed: its socket learns the outcome, and what the link needs
    /// next is asked for.
    pub(crate) fn finish_link(&mut self, then: Then, completion: Completion) {
        let Then::Link { vm_id, link, kind } = then else { return };
        if kind == LinkEffect::Close {
            self.links.vm_of.remove(&link);
            return;
        }
        let done = match (kind, completion) {
            (LinkEffect::Connect, Completion::NetConnected(result)) => LinkDone::Connected(result),
            (LinkEffect::Send, Completion::NetSent(result)) => LinkDone::Sent(result),
            (LinkEffect::Recv, Completion::NetReceived(result)) => LinkDone::Received(result),
            (LinkEffect::Tls, Completion::NetTlsReady(result)) => LinkDone::Tls(result),
            (LinkEffect::UdpOpen, Completion::NetUdpOpened(result)) => LinkDone::UdpOpened(result),
            (LinkEffect::UdpSend, Completion::NetUdpSent(result)) => LinkDone::UdpSent(result),
            (LinkEffect::UdpRecv, Completion::NetUdpReceived(result)) => LinkDone::UdpReceived(result),
            (kind, _) => {
                let failure = NetFailure::new(Errno::EIO, format!("a {kind:?} effect got another kind's completion"));
                LinkDone::Sent(Err(failure))
            }
        };
        self.complete_link(&vm_id, link.socket, done);
        self.drive_links();
    }
}
