//! The host's view of a VM's network: `FindListener` and `FindBoundUdp` (which guest process
//! listens where) and `VmFetch` (an HTTP/1.1 request from the host to a guest listener).
//!
//! A fetch is a connection the kernel opens on the host's behalf to the guest's listener: the
//! request is written into it as the guest reads, the response parsed as the guest writes
//! ([`crate::net::http`]), and the request answered when the response is complete, when the
//! guest closes the connection, or after [`VM_FETCH_TIMEOUT_MS`] of kernel time. Fetches are
//! driven after every tick, so they move with the guests and nothing waits on a thread.

use std::collections::BTreeMap;

use core::net::IpAddr;

use schema::wire::{
    BoundUdpSnapshotResponse, FindBoundUdpRequest, FindListenerRequest, ListenerSnapshotResponse, OwnershipScope,
    ResponsePayload, SocketStateEntry, VmFetchRequest, VmFetchResponse,
};

use super::{unknown_vm, Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::net::http::{self, Progress, ResponseParser};
use crate::net::{Bound, SocketId, Transport};
use crate::policy::permissions::{Capability, Decision};
use crate::process::fds::OpenFile;
use crate::vfs::Errno;

/// How long a fetch waits for the guest's whole response (the original's loopback HTTP
/// timeout).
pub const VM_FETCH_TIMEOUT_MS: u64 = 30_000;
/// The largest response a fetch takes: its JSON answer must fit one frame (the protocol's
/// 16 MiB), and base64 makes the body a third larger, so 8 MiB of response leaves room. A VM's
/// `limits.http.maxFetchResponseBytes` may lower it.
pub const MAX_VM_FETCH_RESPONSE_BYTES: usize = 8 << 20;
const _: () = assert!(MAX_VM_FETCH_RESPONSE_BYTES as u64 == crate::policy::config::MAX_FETCH_RESPONSE_BYTES);
/// Fetches in flight at once over the whole sidecar: each holds a connection and up to
/// [`MAX_VM_FETCH_RESPONSE_BYTES`]; more are refused (`limit_exceeded`) until some finish.
pub const MAX_PENDING_FETCHES: usize = 64;
/// Bytes a fetch moves per drive: what it sends and what it reads, so one large response
/// cannot hold up a tick.
const FETCH_BYTES_PER_DRIVE: usize = 256 * 1024;

/// One fetch in flight.
#[derive(Debug)]
pub(crate) struct PendingFetch {
    stream: StreamId,
    request_id: i64,
    ownership: OwnershipScope,
    vm_id: String,
    socket: SocketId,
    /// Request bytes not yet accepted by the guest's connection.
    unsent: Vec<u8>,
    parser: ResponseParser,
    url: String,
    deadline_ms: u64,
}

/// The fetches in flight, by a sequence number (their order of arrival).
#[derive(Debug, Default)]
pub(crate) struct Fetches {
    pending: BTreeMap<u64, PendingFetch>,
    next: u64,
}

impl Fetches {
    /// The earliest fetch deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.pending.values().map(|fetch| fetch.deadline_ms).min()
    }
}

/// What the response parser made of the bytes so far: nothing complete yet, a response, or
/// why the bytes are not one.
type Parsed = Option<Result<http::Response, http::HttpError>>;

/// How a fetch ended.
enum FetchEnd {
    Answered(String),
    Failed(Rejection),
}

impl Sidecar {
    /// `FindListener`: the first guest TCP listener matching the query (`path`, a Unix socket,
    /// finds nothing: this network has none). Needs `network.inspect` on `tcp://HOST:PORT`.
    pub(crate) fn find_listener(
        &self,
        vm_id: &str,
        request: &FindListenerRequest,
    ) -> Result<ResponsePayload, Rejection> {
        let found = match request.path {
            Some(_) => None,
            None => self.find_socket(vm_id, Transport::Stream, request.host.as_deref(), request.port)?,
        };
        Ok(ResponsePayload::ListenerSnapshotResponse(ListenerSnapshotResponse { listener: found }))
    }

    /// `FindBoundUdp`: the first guest UDP socket bound as the query says. Needs
    /// `network.inspect` on `udp://HOST:PORT`.
    pub(crate) fn find_bound_udp(
        &self,
        vm_id: &str,
        request: &FindBoundUdpRequest,
    ) -> Result<ResponsePayload, Rejection> {
        let found = self.find_socket(vm_id, Transport::Datagram, request.host.as_deref(), request.port)?;
        Ok(ResponsePayload::BoundUdpSnapshotResponse(BoundUdpSnapshotResponse { socket: found }))
    }

    fn find_socket(
        &self,
        vm_id: &str,
        transport: Transport,
        host: Option<&str>,
        port: Option<u16>,
    ) -> Result<Option<SocketStateEntry>, Rejection> {
        let scheme = if transport == Transport::Stream { "tcp" } else { "udp" };
        let resource =
            format!("{scheme}://{}:{}", host.unwrap_or("*"), port.map_or_else(|| "*".to_owned(), |p| p.to_string()));
        // A query: the VM is only read, so its schedule summary stays as it is.
        let vm = self.vms.get(vm_id).ok_or_else(|| unknown_vm(vm_id))?;
        if let Decision::Deny { message } = vm.policy().decide(Capability::NetworkInspect, &resource, false) {
            return Err(Rejection::new(RejectCode::KernelError, format!("EACCES: {message}, {resource}")));
        }
        let host = match host {
            None => None,
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| Rejection::invalid_state(format!("invalid host {text:?}: expected an IP address")))?,
            ),
        };
        let Some(Bound { id, addr }) = vm.processes().net.find_bound(transport, host, port) else { return Ok(None) };
        let holder = vm
            .processes()
            .iter()
            .filter(|process| process.is_alive())
            .find(|process| process.fds.iter().any(|(_, descriptor)| descriptor.file == OpenFile::Socket { id }));
        Ok(holder.map(|process| SocketStateEntry {
            process_id: process.process_id.clone(),
            host: Some(addr.ip().to_string()),
            port: Some(addr.port()),
            path: None,
        }))
    }

    /// `VmFetch`: connects to the guest listener on `request.port` and sends the request; the
    /// answer comes when the guest's response does (see the module docs).
    pub(crate) fn vm_fetch(
        &mut self,
        stream: StreamId,
        request_id: i64,
        ownership: &OwnershipScope,
        vm_id: &str,
        request: VmFetchRequest,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        if self.fetches.pending.len() >= MAX_PENDING_FETCHES {
            return Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!("too many VmFetch requests in flight (the limit is {MAX_PENDING_FETCHES})"),
            ));
        }
        let bytes = http::encode_request(
            request.port,
            &request.method,
            &request.path,
            &request.headers_json,
            request.body.as_deref(),
        )
        .map_err(|error| Rejection::invalid_state(format!("invalid vm.fetch request: {error}")))?;
        let path = if request.path.starts_with('/') { request.path.clone() } else { format!("/{}", request.path) };
        let url = format!("http://127.0.0.1:{}{path}", request.port);
        let deadline_ms = self.now.monotonic_ms.saturating_add(VM_FETCH_TIMEOUT_MS);
        let vm = self.vm_mut(vm_id)?;
        let max_response_bytes = usize::try_from(vm.limits().http.max_fetch_response_bytes)
            .unwrap_or(MAX_VM_FETCH_RESPONSE_BYTES)
            .min(MAX_VM_FETCH_RESPONSE_BYTES);
        let net = &mut vm.processes_mut().net;
        let listening = net.find_bound(Transport::Stream, None, Some(request.port)).is_some();
        let socket = net.connect_from_host(request.port).map_err(|errno| match (listening, errno) {
            (false, _) => Rejection::new(
                RejectCode::ExecutionError,
                format!("vm.fetch could not find a guest HTTP listener on port {}", request.port),
            ),
            // The VM's maxConnections.
            (true, Errno::EAGAIN) => Rejection::new(
                RejectCode::LimitExceeded,
                format!("vm.fetch: the VM has no connection left for port {} (maxConnections)", request.port),
            ),
            (true, errno) => Rejection::new(
                RejectCode::ExecutionError,
                format!(
                    "vm.fetch: the guest listener on port {} refused the connection ({errno}: its queue is full)",
                    request.port
                ),
            ),
        })?;
        self.fetches.next = self.fetches.next.saturating_add(1);
        let fetch = PendingFetch {
            stream,
            request_id,
            ownership: ownership.clone(),
            vm_id: vm_id.to_owned(),
            socket,
            unsent: bytes,
            parser: ResponseParser::for_method(&request.method, max_response_bytes),
            url,
            deadline_ms,
        };
        self.fetches.pending.insert(self.fetches.next, fetch);
        self.drive_fetches();
        Ok(None)
    }

    /// Moves every fetch along: sends what the guest's connection takes, parses what it wrote,
    /// and answers the fetches that ended.
    pub(crate) fn drive_fetches(&mut self) {
        if self.fetches.pending.is_empty() {
            return;
        }
        let keys: Vec<u64> = self.fetches.pending.keys().copied().collect();
        for key in keys {
            let Some(mut fetch) = self.fetches.pending.remove(&key) else { continue };
            match self.drive_fetch(&mut fetch) {
                None => {
                    self.fetches.pending.insert(key, fetch);
                }
                Some(end) => self.end_fetch(fetch, end),
            }
        }
    }

    fn drive_fetch(&mut self, fetch: &mut PendingFetch) -> Option<FetchEnd> {
        let now_ms = self.now.monotonic_ms;
        let Some(vm) = self.vms.get(&fetch.vm_id) else {
            return Some(FetchEnd::Failed(unknown_vm(&fetch.vm_id)));
        };
        // A fetch that can neither send nor read leaves its VM untouched (no allocation, no
        // schedule refresh): it only checks its deadline.
        let net = &vm.processes().net;
        let can_send = !fetch.unsent.is_empty() && net.writable(fetch.socket);
        let outcome = if can_send || net.readable(fetch.socket) {
            match self.move_fetch_bytes(fetch) {
                Ok(outcome) => outcome,
                Err(end) => return Some(end),
            }
        } else {
            None
        };
        match outcome {
            Some(Ok(response)) => Some(FetchEnd::Answered(http::response_json(&response, &fetch.url))),
            Some(Err(error)) => Some(FetchEnd::Failed(Rejection::new(
                RejectCode::ExecutionError,
                format!("vm.fetch: the guest's HTTP response is not valid: {error}"),
            ))),
            None if now_ms >= fetch.deadline_ms => Some(FetchEnd::Failed(Rejection::new(
                RejectCode::ExecutionError,
                format!("vm.fetch timed out after {VM_FETCH_TIMEOUT_MS} ms waiting for the guest's response"),
            ))),
            None => None,
        }
    }

    /// Sends what the guest's connection takes and parses what it wrote (at most
    /// [`FETCH_BYTES_PER_DRIVE`] each way): `Err` ends the fetch (the guest went away), `Ok(None)`
    /// means the response is not complete yet.
    fn move_fetch_bytes(&mut self, fetch: &mut PendingFetch) -> Result<Parsed, FetchEnd> {
        let vm = self.vms.get_mut(&fetch.vm_id).ok_or_else(|| FetchEnd::Failed(unknown_vm(&fetch.vm_id)))?;
        let net = &mut vm.processes_mut().net;
        if !fetch.unsent.is_empty() {
            let chunk = fetch.unsent.get(..FETCH_BYTES_PER_DRIVE.min(fetch.unsent.len())).unwrap_or_default();
            let sent = net.send(fetch.socket, chunk).map_err(|_| FetchEnd::Failed(server_gone()))?;
            fetch.unsent.drain(..sent.min(fetch.unsent.len()));
        }
        let mut buf = vec![0u8; net.pending_bytes(fetch.socket).min(FETCH_BYTES_PER_DRIVE)];
        Ok(match net.recv(fetch.socket, &mut buf, false).map_err(|_| FetchEnd::Failed(server_gone()))? {
            Some(0) => Some(fetch.parser.finish()),
            Some(read) => match fetch.parser.feed(buf.get(..read).unwrap_or_default()) {
                Ok(Progress::Done(response)) => Some(Ok(response)),
                Ok(Progress::NeedMore) => None,
                Err(error) => Some(Err(error)),
            },
            None => None,
        })
    }

    fn end_fetch(&mut self, fetch: PendingFetch, end: FetchEnd) {
        // `get_mut` marks the VM changed: the guest's socket may have woken up.
        if let Some(vm) = self.vms.get_mut(&fetch.vm_id) {
            vm.processes_mut().net.close(fetch.socket);
        }
        match end {
            FetchEnd::Answered(response_json) => {
                let payload = ResponsePayload::VmFetchResponse(VmFetchResponse { response_json });
                self.respond(fetch.stream, fetch.request_id, fetch.ownership, payload);
            }
            FetchEnd::Failed(rejection) => self.reject(fetch.stream, fetch.request_id, fetch.ownership, rejection),
        }
    }

    /// Every fetch of a VM being disposed is refused.
    pub(crate) fn cancel_fetches(&mut self, vm_id: &str) {
        let keys: Vec<u64> =
            self.fetches.pending.iter().filter(|(_, fetch)| fetch.vm_id == vm_id).map(|(key, _)| *key).collect();
        for key in keys {
            if let Some(fetch) = self.fetches.pending.remove(&key) {
                let rejection = Rejection::invalid_state(format!("VM {vm_id} was disposed before vm.fetch completed"));
                self.end_fetch(fetch, FetchEnd::Failed(rejection));
            }
        }
    }
}

fn server_gone() -> Rejection {
    Rejection::new(RejectCode::ExecutionError, "vm.fetch: the guest closed the connection before responding")
}
