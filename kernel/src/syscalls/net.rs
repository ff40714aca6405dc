//! Sockets: a guest's calls on its VM's network (see [`crate::net`]). Addresses are the text
//! the original's libc passes (`IP:PORT`). A call that must wait parks on the socket, like a
//! pipe's; a non-blocking descriptor gets `EAGAIN` instead.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::net::{addr, SocketId, Transport};
use crate::policy::permissions::{Capability, Decision};

/// Flags of a send or receive, from either ABI (`host_net`'s Linux flags, WASI's `riflags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgFlags {
    /// Leave the received bytes to be read again (`MSG_PEEK`).
    pub peek: bool,
    /// Do not wait, whatever the descriptor's mode (`MSG_DONTWAIT`).
    pub dont_wait: bool,
}

/// What `getaddrinfo` may answer at most: the VM has no resolver yet, so a name is an IP
/// literal, `localhost`, or unknown.
const LOCALHOST_NAMES: [&str; 2] = ["localhost", "localhost.localdomain"];

/// Longest TLS server name: a DNS name is at most 253 bytes.
const MAX_SERVER_NAME_BYTES: usize = 253;

/// The host's loopback address a guest's loopback address names (`0.0.0.0` and the
/// IPv4-mapped forms become `127.0.0.1`-style addresses).
fn host_loopback(to: core::net::SocketAddr) -> core::net::SocketAddr {
    let ip = match to.ip().to_canonical() {
        ip if ip.is_unspecified() => addr::loopback_like(ip),
        ip => ip,
    };
    core::net::SocketAddr::new(ip, to.port())
}

impl Syscalls {
    /// A new socket descriptor.
    pub fn socket(&mut self, transport: Transport, nonblocking: bool) -> Result<u32, Errno> {
        self.charge(cost::SYSCALL_FUEL);
        let max_open_fds = self.vm.process_limits().max_open_fds;
        if u64::try_from(self.process()?.fds.len()).unwrap_or(u64::MAX) >= max_open_fds {
            return Err(Errno::EMFILE);
        }
        let id = self
            .vm
            .processes_mut()
            .net
            .create(transport, crate::net::Holder::Guest)
            .inspect_err(|errno| self.note_limit(*errno, "maxSockets"))?;
        let descriptor = socket_descriptor(id, nonblocking);
        match self.process_mut().and_then(|process| process.fds.insert(descriptor, max_open_fds)) {
            Ok(fd) => Ok(fd),
            Err(errno) => {
                self.vm.processes_mut().net.close(id);
                Err(errno)
            }
        }
    }

    /// The socket `fd` refers to and whether the descriptor is non-blocking; `ENOTSOCK` for
    /// any other descriptor.
    fn socket_of(&self, fd: u32) -> Result<(SocketId, bool), Errno> {
        match self.descriptor(fd)?.file {
            OpenFile::Socket { id } => Ok((id, self.descriptor(fd)?.nonblocking)),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// Binds `fd` to the address text `address`. A datagram socket bound to a port is a
    /// listener too: it needs `network.listen` on `udp://IP:PORT`.
    pub fn bind(&mut self, fd: u32, address: &[u8]) -> Result<(), Errno> {
        self.charge(cost::SYSCALL_FUEL);
        let (id, _) = self.socket_of(fd)?;
        let address = addr::parse(address)?;
        let net = &mut self.vm.processes_mut().net;
        net.bind(id, address)?;
        if net.transport(id) == Some(Transport::Datagram) {
            let bound = net.local_addr(id)?;
            self.check_listen(Transport::Datagram, bound).inspect_err(|_| self.unbind(id))?;
        }
        Ok(())
    }

    /// Undoes a bind the policy refused, so the port stays free and the socket unbound.
    fn unbind(&mut self, id: SocketId) {
        self.vm.processes_mut().net.unbind(id);
    }

    /// Makes `fd` a listener; needs `network.listen` on `tcp://IP:PORT`.
    pub fn listen(&mut self, fd: u32, backlog: u32) -> Result<(), Errno> {
        self.charge(cost::SYSCALL_FUEL);
        let (id, _) = self.socket_of(fd)?;
        let net = &self.vm.processes().net;
        if net.transport(id) != Some(Transport::Stream) {
            return Err(Errno::ENOTSUP);
        }
        let planned = net.local_addr(id)?;
        if planned.port() != 0 {
            self.check_listen(Transport::Stream, planned)?;
        }
        self.vm.processes_mut().net.listen(id, backlog)?;
        if planned.port() == 0 {
            let bound = self.vm.processes().net.local_addr(id)?;
            self.check_listen(Transport::Stream, bound)?;
        }
        Ok(())
    }

    /// The policy's word on listening at `address` (`EACCES` unless it allows it; a prompt is
    /// a denial: there is no prompt for sockets yet).
    fn check_listen(&self, transport: Transport, address: core::net::SocketAddr) -> Result<(), Errno> {
        let scheme = match transport {
            Transport::Stream => "tcp",
            Transport::Datagram => "udp",
        };
        let resource = format!("{scheme}://{}", addr::format(address));
        match self.vm.policy().decide(Capability::NetworkListen, &resource, false) {
            Decision::Allow => Ok(()),
            Decision::Ask | Decision::Deny { .. } => Err(Errno::EACCES),
        }
    }

    /// Accepts a connection on listener `fd`: the new descriptor and the peer's address text.
    pub fn accept(&mut self, fd: u32, nonblocking: bool) -> SysResult<(u32, String)> {
        self.charge(cost::SYSCALL_FUEL);
        let (id, listener_nonblocking) = self.socket_of(fd)?;
        let max_open_fds = self.vm.process_limits().max_open_fds;
        if u64::try_from(self.process()?.fds.len()).unwrap_or(u64::MAX) >= max_open_fds {
            return Err(Errno::EMFILE.into());
        }
        let Some((accepted, peer)) = self.vm.processes_mut().net.accept(id)? else {
            return self.socket_wait(Wait::SocketRead { id }, listener_nonblocking);
        };
        let descriptor = socket_descriptor(accepted, nonblocking);
        match self.process_mut().and_then(|process| process.fds.insert(descriptor, max_open_fds)) {
            Ok(new_fd) => Ok((new_fd, addr::format(peer))),
            Err(errno) => {
                self.vm.processes_mut().net.close(accepted);
                Err(errno.into())
            }
        }
    }

    /// Connects `fd` to the address text `address`: a listener of this VM, or (through
    /// [`Self::leave_vm`]) an address outside it. A loopback address nothing in the VM listens
    /// on means the host's loopback, which only `loopbackExemptPorts` may reach. A connection
    /// out parks the caller until it is established (a non-blocking one: `EINPROGRESS`, then
    /// `EALREADY` until a later `connect` reports the outcome).
    pub fn connect(&mut self, fd: u32, address: &[u8]) -> SysResult<()> {
        self.charge(cost::SYSCALL_FUEL);
        let (id, nonblocking) = self.socket_of(fd)?;
        if self.vm.processes().net.is_remote(id) {
            return self.connect_progress(id, nonblocking, false);
        }
        let address = addr::parse(address)?;
        let net = &self.vm.processes().net;
        let stream = net.transport(id) == Some(Transport::Stream);
        let scheme = if stream { "tcp" } else { "udp" };
        let loopback = addr::is_local(address.ip());
        // A datagram socket's loopback peer is the VM's unless it is an exempt port nothing in
        // the VM is bound to (datagrams to nobody are dropped, as UDP does, not refused).
        let in_vm = match stream {
            true => net.has_stream_listener(address),
            false => net.has_datagram_socket(address) || !net.port_exempt(address.port()),
        };
        if loopback && in_vm {
            let connected = self.vm.processes_mut().net.connect(id, address);
            return Ok(connected.inspect_err(|errno| self.note_limit(*errno, "maxConnections"))?);
        }
        let to = if loopback { host_loopback(address) } else { address };
        self.leave_vm(scheme, to, loopback)?;
        if !stream {
            return Ok(self.vm.processes_mut().net.connect_outside(id, to)?);
        }
        let now_ms = self.now.monotonic_ms;
        let at_bound = self.vm.processes().net.remote_count() >= crate::net::egress::MAX_REMOTE_CONNECTIONS;
        let limit = if at_bound { "MAX_REMOTE_CONNECTIONS" } else { "maxConnections" };
        let connected = self.vm.processes_mut().net.connect_remote(id, to, now_ms);
        connected.inspect_err(|errno| self.note_limit(*errno, limit))?;
        self.connect_progress(id, nonblocking, true)
    }

    /// What `connect` answers for a connection out already asked for.
    fn connect_progress(&mut self, id: SocketId, nonblocking: bool, first: bool) -> SysResult<()> {
        match self.vm.processes_mut().net.connect_progress(id)? {
            Some(outcome) => Ok(outcome?),
            None if nonblocking && first => Err(Errno::EINPROGRESS.into()),
            None if nonblocking => Err(Errno::EALREADY.into()),
            None => self.socket_wait(Wait::SocketWrite { id }, false),
        }
    }

    /// Makes connected socket `fd` TLS, verifying the peer as `server_name` (`host_net`'s
    /// `net_tls_connect`); the driver does the handshake and the encryption, so the guest
    /// goes on sending and receiving plaintext. Only a connection out of the VM can be TLS
    /// (`ENOTSUP` inside it); a certificate that does not verify is `ECONNABORTED`.
    pub fn tls_connect(&mut self, fd: u32, server_name: &[u8]) -> SysResult<()> {
        self.charge(cost::SYSCALL_FUEL);
        let (id, _) = self.socket_of(fd)?;
        let name = std::str::from_utf8(server_name).map_err(|_| Errno::EINVAL)?;
        if name.is_empty() || name.len() > MAX_SERVER_NAME_BYTES {
            return Err(Errno::EINVAL.into());
        }
        match self.vm.processes_mut().net.tls_step(id, name)? {
            Some(outcome) => Ok(outcome?),
            // The handshake blocks whatever the descriptor's mode: the ABI has no way to
            // report it later.
            None => self.socket_wait(Wait::SocketWrite { id }, false),
        }
    }

    /// A guest's attempt to reach `to`, outside its VM (`loopback`: the host's loopback):
    /// the permission policy decides (`network.http` on `tcp://IP:PORT` / `udp://IP:PORT`),
    /// then the address filter ([`crate::net::ssrf`]) refuses private and special ranges
    /// whatever the policy says, the host's loopback included unless its port is in
    /// `loopbackExemptPorts`. A refusal is `EACCES`; an allowed attempt on a driver without
    /// a network finds no route (`ENETUNREACH`). Either way the host hears of it
    /// (`network.connect`).
    fn leave_vm(&mut self, scheme: &str, to: core::net::SocketAddr, loopback: bool) -> Result<(), Errno> {
        let destination = format!("{scheme}://{to}");
        let decision = self.vm.policy().decide(Capability::NetworkHttp, &destination, false);
        let net = &self.vm.processes().net;
        let (verdict, reason, outcome) = match decision {
            Decision::Deny { message } => ("deny", message, Err(Errno::EACCES)),
            Decision::Ask => ("deny", "permission prompt required for network.http".to_owned(), Err(Errno::EACCES)),
            Decision::Allow if loopback && !net.port_exempt(to.port()) => {
                let reason = format!("the host's loopback port {} is not in loopbackExemptPorts", to.port());
                ("deny", reason, Err(Errno::EACCES))
            }
            Decision::Allow => match crate::net::ssrf::refusal(to.ip()).filter(|_| !loopback) {
                Some(range) => ("deny", format!("the address is {range}"), Err(Errno::EACCES)),
                None if !net.egress_enabled() => {
                    ("allow", "this sidecar runs without a network".to_owned(), Err(Errno::ENETUNREACH))
                }
                None => ("allow", "connecting".to_owned(), Ok(())),
            },
        };
        let attempt = crate::net::ConnectAttempt { pid: self.pid, destination, decision: verdict, reason };
        self.vm.processes_mut().net.record_attempt(attempt);
        outcome
    }

    /// Sends on a connected socket (a stream, or a datagram socket with a default peer).
    pub fn send(&mut self, fd: u32, data: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let (id, nonblocking) = self.socket_of(fd)?;
        self.send_on(id, data, nonblocking || flags.dont_wait)
    }

    fn send_on(&mut self, id: SocketId, data: &[u8], nonblocking: bool) -> SysResult<usize> {
        let sent = match self.vm.processes_mut().net.send(id, data) {
            Ok(sent) => sent,
            Err(errno) => {
                self.note_limit(errno, "maxSocketBufferedBytes");
                self.charge(cost::SYSCALL_FUEL);
                return Err(errno.into());
            }
        };
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(sent)));
        if sent == 0 && !data.is_empty() {
            return self.socket_wait(Wait::SocketWrite { id }, nonblocking);
        }
        Ok(sent)
    }

    /// Receives from a connected socket; `Ok(0)` is end of stream.
    pub fn recv(&mut self, fd: u32, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        let (id, nonblocking) = self.socket_of(fd)?;
        self.recv_on(id, buf, flags.peek, nonblocking || flags.dont_wait)
    }

    fn recv_on(&mut self, id: SocketId, buf: &mut [u8], peek: bool, nonblocking: bool) -> SysResult<usize> {
        let received = self.vm.processes_mut().net.recv(id, buf, peek);
        let moved = match &received {
            Ok(Some(read)) => *read,
            _ => 0,
        };
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(moved)));
        match received? {
            Some(read) => Ok(read),
            None => self.socket_wait(Wait::SocketRead { id }, nonblocking),
        }
    }

    /// Sends one datagram to the address text `address`.
    pub fn send_to(&mut self, fd: u32, data: &[u8], address: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let _ = flags;
        let (id, _) = self.socket_of(fd)?;
        let address = addr::parse(address)?;
        let net = &self.vm.processes().net;
        let loopback = addr::is_local(address.ip());
        let outside = !loopback || (!net.has_datagram_socket(address) && net.port_exempt(address.port()));
        if outside {
            return self.send_outside(id, data, if loopback { host_loopback(address) } else { address }, loopback);
        }
        let queue_full = self.vm.processes().net.datagram_queue_full();
        let sent = self.vm.processes_mut().net.send_to(id, data, address);
        if let Err(errno) = sent {
            let limit = if queue_full { "maxSocketDatagramQueueLen" } else { "maxSocketBufferedBytes" };
            self.note_limit(errno, limit);
        }
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(*sent.as_ref().unwrap_or(&0))));
        Ok(sent?)
    }

    /// One datagram out of the VM: the first to each peer is decided by the policy and the
    /// address filter (and reported); later ones to the same peer go straight to the link.
    fn send_outside(
        &mut self,
        id: SocketId,
        data: &[u8],
        to: core::net::SocketAddr,
        loopback: bool,
    ) -> SysResult<usize> {
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(data.len())));
        if !self.vm.processes().net.udp_peer_known(id, to) {
            self.leave_vm("udp", to, loopback)?;
        }
        let sent = self.vm.processes_mut().net.send_outside(id, data, to);
        Ok(sent.inspect_err(|errno| self.note_limit(*errno, "maxSocketBufferedBytes"))?)
    }

    /// Receives one datagram and its sender's address text.
    pub fn recv_from(&mut self, fd: u32, buf: &mut [u8], flags: MsgFlags) -> SysResult<(usize, String)> {
        let (id, nonblocking) = self.socket_of(fd)?;
        let received = self.vm.processes_mut().net.recv_from(id, buf, flags.peek);
        let moved = match &received {
            Ok(Some((read, _))) => *read,
            _ => 0,
        };
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(moved)));
        match received? {
            Some((read, from)) => Ok((read, addr::format(from))),
            None => self.socket_wait(Wait::SocketRead { id }, nonblocking || flags.dont_wait),
        }
    }

    /// Shuts down reading and/or writing of a connected socket.
    pub fn shutdown(&mut self, fd: u32, read: bool, write: bool) -> Result<(), Errno> {
        self.charge(cost::SYSCALL_FUEL);
        let (id, _) = self.socket_of(fd)?;
        self.vm.processes_mut().net.shutdown(id, read, write)
    }

    /// Where `fd` is bound, as text.
    pub fn socket_name(&self, fd: u32) -> Result<String, Errno> {
        let (id, _) = self.socket_of(fd)?;
        Ok(addr::format(self.vm.processes().net.local_addr(id)?))
    }

    /// Where `fd` is connected, as text.
    pub fn peer_name(&self, fd: u32) -> Result<String, Errno> {
        let (id, _) = self.socket_of(fd)?;
        Ok(addr::format(self.vm.processes().net.peer_addr(id)?))
    }

    /// Sets a socket option. The options programs set as a matter of course are accepted
    /// because they cannot change what this network does (`SO_REUSEADDR`, `SO_REUSEPORT`,
    /// `SO_KEEPALIVE`, `TCP_NODELAY`, buffer sizes, timeouts, linger); any other is
    /// `ENOPROTOOPT`, so a program never believes an option took effect when it did not.
    pub fn set_socket_option(&mut self, fd: u32, level: u32, name: u32, value: &[u8]) -> Result<(), Errno> {
        self.charge(cost::SYSCALL_FUEL);
        self.socket_of(fd)?;
        let _ = value;
        // `SOL_SOCKET` is 1 in musl and 0x7fffffff in wasi-libc: both name the socket level.
        const SOL_SOCKET: [u32; 2] = [1, 0x7fff_ffff];
        const IPPROTO_TCP: u32 = 6;
        const IPPROTO_IPV6: u32 = 41;
        // SO_REUSEADDR 2, SO_KEEPALIVE 9, SO_LINGER 13, SO_REUSEPORT 15, SO_SNDBUF 7,
        // SO_RCVBUF 8, SO_RCVTIMEO 20/66, SO_SNDTIMEO 21/67 (musl's numbers).
        const HARMLESS_SOCKET_OPTIONS: [u32; 10] = [2, 7, 8, 9, 13, 15, 20, 21, 66, 67];
        // TCP_NODELAY 1, TCP_KEEPIDLE 4, TCP_KEEPINTVL 5, TCP_KEEPCNT 6.
        const HARMLESS_TCP_OPTIONS: [u32; 4] = [1, 4, 5, 6];
        // IPV6_V6ONLY 26.
        const HARMLESS_IPV6_OPTIONS: [u32; 1] = [26];
        let harmless = match level {
            level if SOL_SOCKET.contains(&level) => HARMLESS_SOCKET_OPTIONS.contains(&name),
            IPPROTO_TCP => HARMLESS_TCP_OPTIONS.contains(&name),
            IPPROTO_IPV6 => HARMLESS_IPV6_OPTIONS.contains(&name),
            _ => false,
        };
        if harmless {
            Ok(())
        } else {
            Err(Errno::ENOPROTOOPT)
        }
    }

    /// Resolves `host` for `getaddrinfo`: the answer is the JSON the original's libc parses,
    /// `[{"addr":"127.0.0.1","family":4}]`. `family` is 0 (any), 4 or 6. An IP literal resolves
    /// to itself and `localhost` to the loopback; any other name needs `network.dns` on
    /// `dns://NAME` (`EACCES` otherwise) and resolves to its `dns.overrides` entry, else
    /// (with a network) through the host's resolver, the caller waiting for the answer, which
    /// the VM then caches. A name with no addresses (or no network) is `ENOENT` (the libc's
    /// `EAI_NONAME`).
    pub fn resolve_name(&mut self, host: &[u8], family: u32) -> SysResult<String> {
        self.charge(cost::SYSCALL_FUEL);
        let host = std::str::from_utf8(host).map_err(|_| Errno::EINVAL)?;
        let addresses: Vec<IpAddr> =
            if host.is_empty() || LOCALHOST_NAMES.iter().any(|name| host.eq_ignore_ascii_case(name)) {
                vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                vec![ip]
            } else {
                let name = host.to_ascii_lowercase();
                let resource = format!("dns://{name}");
                if self.vm.policy().decide(Capability::NetworkDns, &resource, false) != Decision::Allow {
                    return Err(Errno::EACCES.into());
                }
                match self.vm.processes().net.overridden(host) {
                    Some(addresses) => addresses.to_vec(),
                    None => self.resolve_by_host(&name)?,
                }
            };
        let entries: Vec<serde_json::Value> = addresses
            .into_iter()
            .filter(|ip| match family {
                4 => ip.is_ipv4(),
                6 => ip.is_ipv6(),
                _ => true,
            })
            .map(|ip| serde_json::json!({ "addr": ip.to_string(), "family": if ip.is_ipv4() { 4 } else { 6 } }))
            .collect();
        if entries.is_empty() {
            return Err(Errno::ENOENT.into());
        }
        Ok(serde_json::Value::Array(entries).to_string())
    }

    /// `name`'s addresses from the VM's cache, or from the host's resolver (the caller waits).
    fn resolve_by_host(&mut self, name: &str) -> SysResult<Vec<IpAddr>> {
        let net = &mut self.vm.processes_mut().net;
        if !net.egress_enabled() || !crate::net::dns::is_valid_name(name) {
            return Err(Errno::ENOENT.into());
        }
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(answer) = net.dns.lookup(name, self.now.monotonic_ms) {
            return Ok(answer?);
        }
        let id = net.dns.ask(name)?;
        self.socket_wait(Wait::Resolve { id }, false)
    }

    /// Reports a refusal by a network limit to the host (`network.limit`): `errno` is what the
    /// call answered, and only the limit's own errno (`EMFILE`, `EAGAIN`, `ENOBUFS`) counts.
    fn note_limit(&mut self, errno: Errno, limit: &'static str) {
        if matches!(errno, Errno::EMFILE | Errno::EAGAIN | Errno::ENOBUFS) {
            let pid = self.pid;
            self.vm.processes_mut().net.record_limit_hit(pid, limit, errno);
        }
    }

    /// Parks on `wait`, or `EAGAIN` for a non-blocking call.
    fn socket_wait<T>(&mut self, wait: Wait, nonblocking: bool) -> SysResult<T> {
        if nonblocking {
            return Err(Errno::EAGAIN.into());
        }
        self.process_mut()?.wait = wait;
        Err(SysError::WouldBlock)
    }

    /// A read of socket `id` through `fd_read` (`read()` on a socket).
    pub(super) fn read_socket(&mut self, id: SocketId, buf: &mut [u8], nonblocking: bool) -> SysResult<usize> {
        self.recv_on(id, buf, false, nonblocking)
    }

    /// A write to socket `id` through `fd_write`.
    pub(super) fn write_socket(&mut self, id: SocketId, data: &[u8], nonblocking: bool) -> SysResult<usize> {
        self.send_on(id, data, nonblocking)
    }

    /// Whether the peer of the socket `fd` refers to is gone or done sending and everything it
    /// sent was read (`POLLHUP`); false for any other descriptor.
    pub fn hung_up(&self, fd: u32) -> bool {
        match self.socket_of(fd) {
            Ok((id, _)) => self.vm.processes().net.hung_up(id),
            Err(_) => false,
        }
    }
}

fn socket_descriptor(id: SocketId, nonblocking: bool) -> Descriptor {
    Descriptor {
        file: OpenFile::Socket { id },
        readable: true,
        writable: true,
        append: false,
        nonblocking,
        sync: SyncFlags::default(),
    }
}
