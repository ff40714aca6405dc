//! The stdio driver's network: the kernel's network effects (`NetConnect`, `NetSend`,
//! `NetRecv`, `NetTls`, `NetClose`) carried out with non-blocking sockets on the driver's own
//! `mio` poll, so no connection ever blocks the loop.
//!
//! Each link is one TCP stream registered for readable and writable readiness
//! (edge-triggered): an event, or a new effect, makes the link [`progress`](Egress::progress)
//! until its socket would block. A send is completed once the socket (or TLS) has taken every
//! byte; a receive once something arrived (at most what the kernel asked for, which is the room
//! it has: so a guest that does not read stops this loop reading, and TCP's window closes on
//! the peer). TLS is terminated here ([`tls`]): the kernel only ever sees plaintext, so a
//! recorded trace replays without keys or a network.
//!
//! Bounds: the kernel bounds the links (and so the sockets and effects) it asks for; each link
//! holds at most the bytes of one send and one receive. A close sends what it was handed within
//! [`LINGER`], then the socket goes.

pub mod dns_client;
pub mod tls;

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernel::host::effect::{Completion, Effect, EffectId, LinkId, NetFailure, Resolution};
use kernel::vfs::Errno;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};

use tls::{TlsError, TlsSession};

/// How long a closed link may take to send what it was handed before its socket is dropped:
/// Linux lingers in the background for longer, but a peer that stopped reading must not hold
/// a descriptor of the sidecar for minutes.
pub const LINGER: Duration = Duration::from_secs(5);
/// How long one name server has to answer a try (each name is asked of every server in turn,
/// [`NAME_SERVER_ROUNDS`] times): 2 s is glibc's `timeout:` default halved, since a name
/// server that slow is better skipped for the next.
pub const NAME_SERVER_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds over the servers (glibc's `attempts:` default).
pub const NAME_SERVER_ROUNDS: u32 = 2;
/// Keepalive on connections out: a peer that vanishes without a word (a crashed host, a
/// dropped route) ends a guest's blocked read with `ETIMEDOUT` after idle + probes × interval
/// = 60 + 6 × 10 s, instead of never. Linux's defaults (2 h idle) are far past any use.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_PROBES: u32 = 6;
/// The first token links use; those below are the loop's own (stdin, stdout, signals, waker).
pub const FIRST_LINK_TOKEN: usize = 1 << 16;

/// One connection out.
#[derive(Debug)]
struct Link {
    token: Token,
    stream: TcpStream,
    /// The connect effect, until it is answered.
    connecting: Option<EffectId>,
    /// The connect failed or the socket broke: every later effect fails at once.
    failed: Option<NetFailure>,
    tls: Option<TlsSession>,
    /// The TLS effect, until the handshake ends.
    handshaking: Option<EffectId>,
    /// Sends in order: the effect, its bytes, how many are written, and whether to shut writing
    /// after them.
    writes: VecDeque<Send>,
    /// The receive effect waiting for bytes, and at most how many.
    receive: Option<(EffectId, usize)>,
    /// The close effect and when lingering gives up.
    closing: Option<(EffectId, Instant)>,
}

#[derive(Debug)]
struct Send {
    effect: EffectId,
    bytes: Vec<u8>,
    written: usize,
    fin: bool,
}

/// A guest datagram socket's host UDP socket.
#[derive(Debug)]
struct DatagramLink {
    token: Token,
    socket: UdpSocket,
    /// Datagrams to send, in order, with their effects.
    sends: VecDeque<(EffectId, std::net::SocketAddr, Vec<u8>)>,
    /// The receive effect waiting for a datagram, and at most how many bytes.
    receive: Option<(EffectId, usize)>,
}

/// Every link of the driver.
pub struct Egress {
    links: BTreeMap<LinkId, Link>,
    datagram_links: BTreeMap<LinkId, DatagramLink>,
    by_token: BTreeMap<Token, LinkId>,
    next_token: usize,
    /// Built at the first TLS handshake: the Mozilla roots plus the operator's.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    extra_roots: Vec<Vec<u8>>,
    done: Vec<(EffectId, Completion)>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").field("links", &self.links.len()).field("done", &self.done.len()).finish()
    }
}

fn failure(errno: Errno, reason: impl Into<String>) -> NetFailure {
    NetFailure::new(errno, reason)
}

/// The errno a socket error means to a guest (drivers on other networks map theirs alike).
pub fn io_failure(error: &io::Error) -> NetFailure {
    let errno = match error.kind() {
        io::ErrorKind::ConnectionRefused => Errno::ECONNREFUSED,
        io::ErrorKind::ConnectionReset => Errno::ECONNRESET,
        io::ErrorKind::ConnectionAborted => Errno::ECONNABORTED,
        io::ErrorKind::TimedOut => Errno::ETIMEDOUT,
        io::ErrorKind::BrokenPipe => Errno::EPIPE,
        io::ErrorKind::HostUnreachable => Errno::EHOSTUNREACH,
        io::ErrorKind::NetworkUnreachable => Errno::ENETUNREACH,
        io::ErrorKind::AddrNotAvailable => Errno::EADDRNOTAVAIL,
        _ => Errno::ECONNRESET,
    };
    failure(errno, error.to_string())
}

fn tls_failure(error: &TlsError) -> NetFailure {
    let errno = match error {
        TlsError::Certificate(_) => Errno::ECONNABORTED,
        TlsError::Io(error) => return io_failure(error),
        TlsError::WouldBlock => Errno::EAGAIN,
        TlsError::Protocol(_) | TlsError::BadServerName(_) | TlsError::BadRoots { .. } => Errno::EPROTO,
    };
    failure(errno, error.to_string())
}

impl Egress {
    /// A network with `extra_roots` (PEM) trusted for TLS besides the Mozilla roots. They are
    /// parsed now, so a bad file is the operator's error at start, not a guest's later.
    pub fn new(extra_roots: Vec<Vec<u8>>) -> Result<Self, TlsError> {
        let tls_config = if extra_roots.is_empty() { None } else { Some(tls::client_config(&extra_roots)?) };
        Ok(Self {
            links: BTreeMap::new(),
            datagram_links: BTreeMap::new(),
            by_token: BTreeMap::new(),
            next_token: FIRST_LINK_TOKEN,
            tls_config,
            extra_roots,
            done: Vec::new(),
        })
    }

    /// Whether completions wait for the kernel.
    pub fn has_completions(&self) -> bool {
        !self.done.is_empty()
    }

    /// Completions ready for the kernel.
    pub fn take_completions(&mut self) -> Vec<(EffectId, Completion)> {
        std::mem::take(&mut self.done)
    }

    /// When the next lingering close gives up, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.links.values().filter_map(|link| link.closing.map(|(_, until)| until)).min()
    }

    /// Carries out one network effect (others are not this driver's and are ignored).
    pub fn submit(&mut self, registry: &Registry, id: EffectId, effect: Effect) {
        let known = |link: &LinkId| self.links.contains_key(link);
        match effect {
            Effect::NetUdpOpen { link, ipv6 } => self.open_datagrams(registry, id, link, ipv6),
            Effect::NetUdpSend { link, to, bytes } => match self.datagram_links.get_mut(&link) {
                Some(datagrams) => {
                    datagrams.sends.push_back((id, to, bytes));
                    self.progress_datagrams(link);
                }
                None => self.done.push((id, Completion::NetUdpSent(Err(failure(Errno::ENOTCONN, "no such socket"))))),
            },
            Effect::NetUdpRecv { link, max_bytes } => match self.datagram_links.get_mut(&link) {
                Some(datagrams) => {
                    datagrams.receive = Some((id, usize::try_from(max_bytes).unwrap_or(usize::MAX).max(1)));
                    self.progress_datagrams(link);
                }
                None => {
                    self.done.push((id, Completion::NetUdpReceived(Err(failure(Errno::ENOTCONN, "no such socket")))))
                }
            },
            Effect::NetClose { link } if self.datagram_links.contains_key(&link) => {
                self.close_datagrams(registry, link);
                self.done.push((id, Completion::NetClosed));
            }
            Effect::NetConnect { link, to } => self.connect(registry, id, link, to),
            Effect::NetClose { link } if !known(&link) => self.done.push((id, Completion::NetClosed)),
            Effect::NetClose { link } => {
                self.with_link(registry, link, |link| link.closing = Some((id, Instant::now() + LINGER)));
            }
            Effect::NetSend { link, .. } | Effect::NetRecv { link, .. } | Effect::NetTls { link, .. }
                if !known(&link) =>
            {
                let lost = failure(Errno::ENOTCONN, "no such connection");
                if let Some(completion) = failed_completion(&effect, lost) {
                    self.done.push((id, completion));
                }
            }
            Effect::NetSend { link, bytes, fin } => self
                .with_link(registry, link, |link| link.writes.push_back(Send { effect: id, bytes, written: 0, fin })),
            Effect::NetRecv { link, max_bytes } => {
                let max = usize::try_from(max_bytes).unwrap_or(usize::MAX).max(1);
                self.with_link(registry, link, |link| link.receive = Some((id, max)))
            }
            Effect::NetTls { link, server_name } => self.start_tls(registry, id, link, &server_name),
            // Names are resolved on a thread of their own ([`resolve`]).
            Effect::Resolve { .. }
            | Effect::StoreGet { .. }
            | Effect::StorePut { .. }
            | Effect::Compile { .. }
            | Effect::HostCall { .. }
            | Effect::LoadPython => {}
        }
    }

    fn connect(&mut self, registry: &Registry, id: EffectId, link_id: LinkId, to: std::net::SocketAddr) {
        let mut stream = match TcpStream::connect(to) {
            Ok(stream) => stream,
            Err(error) => return self.done.push((id, Completion::NetConnected(Err(io_failure(&error))))),
        };
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_PROBES);
        // Best effort: a socket without keepalive still works, it only waits longer on a dead peer.
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_LINK_TOKEN);
        if let Err(error) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            return self.done.push((id, Completion::NetConnected(Err(io_failure(&error)))));
        }
        let link = Link {
            token,
            stream,
            connecting: Some(id),
            failed: None,
            tls: None,
            handshaking: None,
            writes: VecDeque::new(),
            receive: None,
            closing: None,
        };
        self.by_token.insert(token, link_id);
        self.links.insert(link_id, link);
    }

    fn start_tls(&mut self, registry: &Registry, id: EffectId, link_id: LinkId, server_name: &str) {
        let config = match &self.tls_config {
            Some(config) => Arc::clone(config),
            None => match tls::client_config(&self.extra_roots) {
                Ok(config) => {
                    self.tls_config = Some(Arc::clone(&config));
                    config
                }
                Err(error) => return self.done.push((id, Completion::NetTlsReady(Err(tls_failure(&error))))),
            },
        };
        let session = TlsSession::new(config, server_name);
        self.with_link(registry, link_id, |link| match session {
            Ok(session) => {
                link.tls = Some(session);
                link.handshaking = Some(id);
            }
            Err(error) => link.failed = Some(tls_failure(&error)),
        });
    }

    /// Applies `change` to the link and makes it progress.
    fn with_link(&mut self, registry: &Registry, link_id: LinkId, change: impl FnOnce(&mut Link)) {
        if let Some(link) = self.links.get_mut(&link_id) {
            change(link);
            self.progress(registry, link_id);
        }
    }

    /// A readiness event for `token`.
    pub fn on_event(&mut self, registry: &Registry, token: Token) {
        if let Some(link_id) = self.by_token.get(&token).copied() {
            if self.datagram_links.contains_key(&link_id) {
                self.progress_datagrams(link_id);
            } else {
                self.progress(registry, link_id);
            }
        }
    }

    fn open_datagrams(&mut self, registry: &Registry, id: EffectId, link_id: LinkId, ipv6: bool) {
        let any: std::net::SocketAddr = if ipv6 {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut socket = match UdpSocket::bind(any) {
            Ok(socket) => socket,
            Err(error) => return self.done.push((id, Completion::NetUdpOpened(Err(io_failure(&error))))),
        };
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_LINK_TOKEN);
        if let Err(error) = registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE) {
            return self.done.push((id, Completion::NetUdpOpened(Err(io_failure(&error)))));
        }
        self.by_token.insert(token, link_id);
        self.datagram_links.insert(link_id, DatagramLink { token, socket, sends: VecDeque::new(), receive: None });
        self.done.push((id, Completion::NetUdpOpened(Ok(()))));
    }

    /// Sends what waits and receives what was asked for, until the socket would block. One
    /// datagram that cannot go is reported lost and the next goes on.
    fn progress_datagrams(&mut self, link_id: LinkId) {
        let Some(link) = self.datagram_links.get_mut(&link_id) else { return };
        while let Some((effect, to, bytes)) = link.sends.front() {
            let outcome = match link.socket.send_to(bytes, *to) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Ok(_) => Ok(()),
                Err(error) => Err(io_failure(&error)),
            };
            self.done.push((*effect, Completion::NetUdpSent(outcome)));
            link.sends.pop_front();
        }
        let Some((effect, max)) = link.receive else { return };
        let mut buf = vec![0u8; max];
        loop {
            match link.socket.recv_from(&mut buf) {
                Ok((read, from)) => {
                    buf.truncate(read);
                    link.receive = None;
                    self.done.push((effect, Completion::NetUdpReceived(Ok((from, buf)))));
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error for an earlier datagram: that one is lost, the socket goes on.
                Err(error) if matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted) => {
                }
                Err(error) => {
                    link.receive = None;
                    self.done.push((effect, Completion::NetUdpReceived(Err(io_failure(&error)))));
                    return;
                }
            }
        }
    }

    fn close_datagrams(&mut self, registry: &Registry, link_id: LinkId) {
        let Some(mut link) = self.datagram_links.remove(&link_id) else { return };
        self.by_token.remove(&link.token);
        let _ = registry.deregister(&mut link.socket);
        let closed = failure(Errno::ECONNABORTED, "the socket was closed");
        for (effect, _, _) in link.sends.drain(..) {
            self.done.push((effect, Completion::NetUdpSent(Err(closed.clone()))));
        }
        if let Some((effect, _)) = link.receive.take() {
            self.done.push((effect, Completion::NetUdpReceived(Err(closed))));
        }
    }

    /// Lingering closes past their deadline end now.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let expired: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, link)| link.closing.is_some_and(|(_, until)| until <= now))
            .map(|(id, _)| *id)
            .collect();
        for link_id in expired {
            self.finish_close(registry, link_id);
        }
    }

    /// Moves the link as far as its socket allows: connect, handshake, writes, the receive,
    /// and a close once everything was sent.
    fn progress(&mut self, registry: &Registry, link_id: LinkId) {
        let Some(link) = self.links.get_mut(&link_id) else { return };
        link.step(&mut self.done);
        let closed = match link.closing {
            Some(_) => link.writes.is_empty() || link.failed.is_some(),
            None => false,
        };
        if closed {
            self.finish_close(registry, link_id);
        }
    }

    /// Drops the link: what still waits on it fails, and its close completes.
    fn finish_close(&mut self, registry: &Registry, link_id: LinkId) {
        let Some(mut link) = self.links.remove(&link_id) else { return };
        self.by_token.remove(&link.token);
        if let Some(session) = link.tls.as_mut() {
            session.close(&mut link.stream);
        }
        let _ = link.stream.shutdown(Shutdown::Both);
        let _ = registry.deregister(&mut link.stream);
        let closed = failure(Errno::ECONNABORTED, "the connection was closed");
        link.fail_waiting(&closed, &mut self.done);
        if let Some((id, _)) = link.closing {
            self.done.push((id, Completion::NetClosed));
        }
    }
}

/// Resolves `name`: with the host's resolver (`getaddrinfo`) when `servers` is empty, else by
/// asking the servers. Either blocks, so the stdio driver calls this on a thread of its own.
/// Addresses come in the answer's order, each once.
pub fn resolve(name: &str, servers: &[std::net::SocketAddr]) -> Completion {
    if !servers.is_empty() {
        return Completion::Resolved(resolve_with_servers(name, servers));
    }
    use std::net::ToSocketAddrs;
    match (name, 0).to_socket_addrs() {
        Ok(addresses) => {
            let mut unique: Vec<std::net::IpAddr> = Vec::new();
            for address in addresses {
                if !unique.contains(&address.ip()) {
                    unique.push(address.ip());
                }
            }
            Completion::Resolved(Ok(Resolution { addresses: unique, ttl_s: None }))
        }
        Err(error) => Completion::Resolved(Err(failure(Errno::ENOENT, error.to_string()))),
    }
}

fn resolve_with_servers(name: &str, servers: &[std::net::SocketAddr]) -> Result<Resolution, NetFailure> {
    match dns_client::resolve(name, servers, NAME_SERVER_TIMEOUT, NAME_SERVER_ROUNDS) {
        Ok(answer) => Ok(Resolution { addresses: answer.addresses, ttl_s: Some(answer.ttl_s) }),
        Err(error) => {
            let errno = match error.errno_name() {
                "ENOENT" => Errno::ENOENT,
                "ETIMEDOUT" => Errno::ETIMEDOUT,
                _ => Errno::EIO,
            };
            Err(failure(errno, error.to_string()))
        }
    }
}

/// The completion that fails `effect` (none for effects that cannot fail).
fn failed_completion(effect: &Effect, failure: NetFailure) -> Option<Completion> {
    match effect {
        Effect::NetConnect { .. } => Some(Completion::NetConnected(Err(failure))),
        Effect::NetSend { .. } => Some(Completion::NetSent(Err(failure))),
        Effect::NetRecv { .. } => Some(Completion::NetReceived(Err(failure))),
        Effect::NetTls { .. } => Some(Completion::NetTlsReady(Err(failure))),
        Effect::Resolve { .. } => Some(Completion::Resolved(Err(failure))),
        Effect::NetUdpOpen { .. } => Some(Completion::NetUdpOpened(Err(failure))),
        Effect::NetUdpSend { .. } => Some(Completion::NetUdpSent(Err(failure))),
        Effect::NetUdpRecv { .. } => Some(Completion::NetUdpReceived(Err(failure))),
        Effect::NetClose { .. }
        | Effect::StoreGet { .. }
        | Effect::StorePut { .. }
        | Effect::Compile { .. }
        | Effect::HostCall { .. }
        | Effect::LoadPython => None,
    }
}

impl Link {
    fn step(&mut self, done: &mut Vec<(EffectId, Completion)>) {
        if self.connecting.is_some() && !self.check_connected(done) {
            return;
        }
        if let Some(failed) = self.failed.clone() {
            self.fail_waiting(&failed, done);
            return;
        }
        if let Err(failed) = self.pump(done) {
            self.failed = Some(failed.clone());
            self.fail_waiting(&failed, done);
        }
    }

    /// Whether the connect has ended (answered either way).
    fn check_connected(&mut self, done: &mut Vec<(EffectId, Completion)>) -> bool {
        let Some(id) = self.connecting else { return true };
        let outcome = match self.stream.take_error() {
            Ok(Some(error)) | Err(error) => Err(io_failure(&error)),
            Ok(None) => match self.stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotConnected => return false,
                Err(error) => Err(io_failure(&error)),
            },
        };
        self.connecting = None;
        if let Err(failed) = &outcome {
            self.failed = Some(failed.clone());
        }
        done.push((id, Completion::NetConnected(outcome)));
        true
    }

    /// Handshake, writes and the receive, until the socket would block.
    fn pump(&mut self, done: &mut Vec<(EffectId, Completion)>) -> Result<(), NetFailure> {
        if let Some(session) = self.tls.as_mut() {
            let progress = session.pump(&mut self.stream).map_err(|error| tls_failure(&error))?;
            if progress.handshake_complete {
                if let Some(id) = self.handshaking.take() {
                    done.push((id, Completion::NetTlsReady(Ok(()))));
                }
            } else if progress.peer_closed.is_some() {
                return Err(failure(Errno::ECONNRESET, "the peer closed during the TLS handshake"));
            }
        }
        if self.handshaking.is_some() {
            return Ok(());
        }
        self.write(done)?;
        self.read(done)
    }

    fn write(&mut self, done: &mut Vec<(EffectId, Completion)>) -> Result<(), NetFailure> {
        while let Some(send) = self.writes.front_mut() {
            while send.written < send.bytes.len() {
                let pending = send.bytes.get(send.written..).unwrap_or_default();
                let written = match self.tls.as_mut() {
                    Some(session) => {
                        let taken = session.write_plain(pending).map_err(|error| tls_failure(&error))?;
                        session.pump(&mut self.stream).map_err(|error| tls_failure(&error))?;
                        taken
                    }
                    None => match self.stream.write(pending) {
                        Ok(written) => written,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => return Err(io_failure(&error)),
                    },
                };
                if written == 0 {
                    return Ok(());
                }
                send.written += written;
            }
            if send.fin {
                match self.tls.as_mut() {
                    Some(session) => {
                        session.close(&mut self.stream);
                    }
                    None => {
                        let _ = self.stream.shutdown(Shutdown::Write);
                    }
                }
            }
            let effect = send.effect;
            self.writes.pop_front();
            done.push((effect, Completion::NetSent(Ok(()))));
        }
        Ok(())
    }

    fn read(&mut self, done: &mut Vec<(EffectId, Completion)>) -> Result<(), NetFailure> {
        let Some((id, max)) = self.receive else { return Ok(()) };
        let mut buf = vec![0u8; max];
        let read = match self.tls.as_mut() {
            Some(session) => match session.read_plain(&mut buf) {
                Ok(read) => {
                    // Reading may have paused the socket for want of room: go on now.
                    session.pump(&mut self.stream).map_err(|error| tls_failure(&error))?;
                    read
                }
                Err(TlsError::WouldBlock) => return Ok(()),
                Err(error) => return Err(tls_failure(&error)),
            },
            None => loop {
                match self.stream.read(&mut buf) {
                    Ok(read) => break read,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(io_failure(&error)),
                }
            },
        };
        buf.truncate(read);
        self.receive = None;
        done.push((id, Completion::NetReceived(Ok(buf))));
        Ok(())
    }

    /// Fails every effect still waiting on the link.
    fn fail_waiting(&mut self, failed: &NetFailure, done: &mut Vec<(EffectId, Completion)>) {
        if let Some(id) = self.connecting.take() {
            done.push((id, Completion::NetConnected(Err(failed.clone()))));
        }
        if let Some(id) = self.handshaking.take() {
            done.push((id, Completion::NetTlsReady(Err(failed.clone()))));
        }
        for send in self.writes.drain(..) {
            done.push((send.effect, Completion::NetSent(Err(failed.clone()))));
        }
        if let Some((id, _)) = self.receive.take() {
            done.push((id, Completion::NetReceived(Err(failed.clone()))));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn connections_out_probe_a_silent_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let poll = mio::Poll::new().unwrap();
        let mut egress = Egress::new(Vec::new()).unwrap();
        let link = LinkId { vm: 1, socket: 1 };
        let to = listener.local_addr().unwrap();
        egress.submit(poll.registry(), EffectId(1), Effect::NetConnect { link, to });
        let socket = socket2::SockRef::from(&egress.links[&link].stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
    }
}
