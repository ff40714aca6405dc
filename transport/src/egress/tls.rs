//! Non-blocking TLS client for a single-threaded, readiness-based (mio) event loop.
//!
//! The loop owns many sockets and only wants to move plaintext, so TLS is terminated here: the loop
//! never sees handshakes, alerts or record framing, it just calls [`TlsSession::pump`] whenever a
//! socket is ready (or after queueing plaintext) and follows the returned [`Progress`].
//!
//! Nothing here blocks or spawns: every socket call is expected to return `WouldBlock` when it cannot
//! proceed, and every method returns as soon as it does. That keeps one slow peer from stalling the
//! other connections sharing the thread.
//!
//! Typical use per readiness event (edge-triggered):
//! 1. `pump(socket)`; on error, drop the connection (`errno_name()` gives the errno to report).
//! 2. `read_plain` until it returns [`TlsError::WouldBlock`] (or `Ok(0)` = end of stream).
//! 3. If `Progress::read_paused` was set, `pump` again: rustls stopped reading the socket to apply
//!    back-pressure, and no new readiness event will arrive for data already in the kernel buffer.
//! 4. Register WRITABLE interest iff `Progress::wants_write`.
//!
//! After `write_plain`, call `pump` so the new records actually leave.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Upper bound on TLS bytes a session may hold waiting for the socket.
///
/// Without a bound, a stalled peer turns into unbounded memory growth inside the event loop; with it,
/// [`TlsSession::write_plain`] pushes back on the producer instead.
pub const MAX_PENDING_TLS_BYTES: usize = 256 * 1024;

/// Margin between rustls' own buffer limit and [`MAX_PENDING_TLS_BYTES`].
///
/// rustls checks its limit against *plaintext* lengths, while what it buffers is ciphertext (at most
/// 29 bytes of overhead per 16 KiB record with TLS 1.2 AES-GCM, so < 0.5 KiB over the whole limit),
/// and before the handshake completes it keeps the plaintext next to its own handshake messages
/// (ClientHello, the TLS 1.2 second flight: well under 2 KiB). 4 KiB covers both, so the public
/// constant is a real ceiling rather than an approximation.
const LIMIT_HEADROOM: usize = 4 * 1024;
const RUSTLS_BUFFER_LIMIT: usize = MAX_PENDING_TLS_BYTES - LIMIT_HEADROOM;

/// Failure of a TLS session or of its configuration.
///
/// Reasons are kept as text because the rustls error types are not a stable API to match on, while
/// the message is what an operator needs; the variant is what the code branches on.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The server's certificate was rejected. Separate from [`TlsError::Protocol`] because it is a
    /// trust or configuration problem (wrong CA, wrong name, expired), not a transient network fault,
    /// and should not be retried blindly.
    #[error("TLS certificate verification failed: {0}")]
    Certificate(String),
    /// The socket failed underneath TLS.
    #[error("TLS transport I/O error: {0}")]
    Io(#[from] io::Error),
    /// Any other TLS failure, including alerts sent by the peer.
    #[error("TLS protocol error: {0}")]
    Protocol(String),
    /// The name cannot be used for SNI / certificate matching (neither a DNS name nor an IP literal).
    #[error("invalid TLS server name {0:?}")]
    BadServerName(String),
    /// An extra root PEM blob was unusable. `index` is its position in the slice given to
    /// [`client_config`], because the caller knows which file or setting that was and we don't.
    #[error("extra root certificates, PEM blob #{index}: {reason}")]
    BadRoots {
        /// Position of the offending blob in `extra_roots_pem`.
        index: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// No decrypted data yet. A distinct value rather than `Ok(0)`, because `Ok(0)` has to keep
    /// meaning "end of stream".
    #[error("no decrypted data available yet")]
    WouldBlock,
}

impl TlsError {
    /// Name of the errno the connection should fail with, so callers that speak errno (the event loop
    /// reports socket-like errors) need no knowledge of TLS internals.
    pub fn errno_name(&self) -> &'static str {
        match self {
            Self::Certificate(_) => "ECONNABORTED",
            Self::Io(_) => "ECONNRESET",
            Self::WouldBlock => "EAGAIN",
            Self::Protocol(_) | Self::BadServerName(_) | Self::BadRoots { .. } => "EPROTO",
        }
    }

    /// rustls hands errors back wrapped in `io::Error` from its `Writer`; unwrap them so a
    /// certificate failure stays a [`TlsError::Certificate`] whichever call surfaced it.
    fn from_rustls_io(err: io::Error) -> Self {
        match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => tls.clone().into(),
            None => Self::Io(err),
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(err: rustls::Error) -> Self {
        match err {
            rustls::Error::InvalidCertificate(cert) => Self::Certificate(cert.to_string()),
            other => Self::Protocol(other.to_string()),
        }
    }
}

/// Builds the shared client configuration.
///
/// The ring provider is passed explicitly so behaviour does not depend on which crypto provider some
/// other crate in the process installed (or failed to install) as the default. Extra roots are
/// added on top of webpki-roots because private deployments need their own CA without losing public
/// ones. A blob that yields no certificate is an error, since silently trusting nothing extra would
/// only show up later as confusing verification failures.
pub fn client_config(extra_roots_pem: &[Vec<u8>]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for (index, pem) in extra_roots_pem.iter().enumerate() {
        let bad = |reason: String| TlsError::BadRoots { index, reason };
        let mut found = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("unreadable PEM: {e}")))?;
            roots.add(cert).map_err(|e| bad(format!("certificate #{found} rejected: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("no CERTIFICATE block found".to_owned()));
        }
    }

    let config = ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The ring provider, named explicitly rather than taken from the process default.
///
/// rustls 0.23.48 deprecated `ring::default_provider()` because ring has no post-quantum key exchange
/// (X25519MLKEM768 exists only in the aws-lc-rs provider). ring is nevertheless this crate's chosen
/// provider, so the allow is scoped to this one call: any other deprecation still fails the build, and
/// switching providers later is a one-line change here.
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How the peer ended the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClose {
    /// close_notify received: the data ended where the peer meant it to.
    CloseNotify,
    /// TCP EOF without close_notify. Reported rather than turned into an error because for
    /// self-delimiting protocols (or sloppy servers) it is harmless, while for length-less ones it
    /// may be a truncation attack; only the caller knows which applies.
    UnexpectedEof,
}

/// What the event loop needs to know after [`TlsSession::pump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Application data can flow; until then `write_plain` only queues.
    pub handshake_complete: bool,
    /// TLS bytes are still queued because the socket returned `WouldBlock`: register WRITABLE
    /// interest, otherwise they (handshake included) never leave.
    pub wants_write: bool,
    /// Decrypted bytes waiting in `read_plain`.
    pub plaintext_readable: usize,
    /// Set once the peer has ended the stream; `read_plain` returns `Ok(0)` after the remaining
    /// plaintext is drained.
    pub peer_closed: Option<PeerClose>,
    /// Reading stopped before the socket said `WouldBlock` because undelivered plaintext is held
    /// (back-pressure). With edge-triggered readiness no new event will come for the data left in
    /// the kernel, so call `pump` again once `read_plain` has been drained.
    pub read_paused: bool,
}

/// Why the socket read loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadStop {
    WouldBlock,
    Eof,
    Paused,
}

/// One TLS client connection driven by an external event loop.
#[derive(Debug)]
pub struct TlsSession {
    conn: ClientConnection,
    /// rustls records TCP EOF internally but does not expose it, and it is what distinguishes a
    /// truncated stream from a clean close_notify.
    eof: bool,
    /// Writing after our close_notify would be silently discarded by the peer; refuse it instead.
    close_sent: bool,
}

impl TlsSession {
    /// `server_name` accepts IP literals as well as DNS names because rustls verifies IP SANs
    /// itself; it is validated here so a bad name fails before any socket work.
    pub fn new(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::BadServerName(server_name.to_owned()))?;
        let mut conn = ClientConnection::new(config, name)?;
        conn.set_buffer_limit(Some(RUSTLS_BUFFER_LIMIT));
        Ok(Self { conn, eof: false, close_sent: false })
    }

    /// Accepts as much as fits under [`MAX_PENDING_TLS_BYTES`] and returns that count, so the caller
    /// keeps the rest (and its back-pressure) instead of this layer growing without bound. `Ok(0)`
    /// for non-empty `data` means full: wait for WRITABLE, `pump`, retry. Before the handshake the
    /// data is only queued; it is encrypted and sent by `pump` once keys exist.
    pub fn write_plain(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if self.close_sent {
            return Err(TlsError::Protocol("write after close_notify was sent".to_owned()));
        }
        self.conn.writer().write(data).map_err(TlsError::from_rustls_io)
    }

    /// Moves bytes between rustls and the socket in both directions until the socket would block,
    /// so the handshake, session tickets, key updates and alerts progress without the caller
    /// knowing they exist.
    pub fn pump(&mut self, socket: &mut (impl Read + Write)) -> Result<Progress, TlsError> {
        let mut stop;
        loop {
            self.flush(socket)?;
            let (read, why) = self.fill(socket)?;
            stop = why;
            // Reading can produce TLS output (handshake flights, KeyUpdate replies) and flushing
            // can re-enable reading during the handshake; go round until neither moves.
            if read == 0 || !self.conn.wants_write() {
                break;
            }
        }

        // Re-process with no new input: cheap, yields current counters, and re-raises a failure
        // recorded by an earlier call instead of reporting a healthy-looking Progress.
        let state = self.process(socket)?;
        let peer_closed = if state.peer_has_closed() {
            Some(PeerClose::CloseNotify)
        } else if self.eof {
            Some(PeerClose::UnexpectedEof)
        } else {
            None
        };
        Ok(Progress {
            handshake_complete: !self.conn.is_handshaking(),
            wants_write: self.conn.wants_write(),
            plaintext_readable: state.plaintext_bytes_to_read(),
            peer_closed,
            read_paused: stop == ReadStop::Paused && state.plaintext_bytes_to_read() > 0,
        })
    }

    /// `Ok(0)` means end of stream (see `Progress::peer_closed` for whether it was clean), so
    /// "nothing yet" has to be the explicit [`TlsError::WouldBlock`].
    pub fn read_plain(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        match self.conn.reader().read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(TlsError::WouldBlock),
            // Truncation is reported through `Progress::peer_closed`, letting the caller decide.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(TlsError::from_rustls_io(e)),
        }
    }

    /// Best effort, because the connection is going away anyway and a peer that stopped reading
    /// must not hold the loop. Returns whether everything queued (close_notify included) reached
    /// the socket; if not, the caller may keep WRITABLE interest and call `close` again.
    pub fn close(&mut self, socket: &mut (impl Read + Write)) -> bool {
        if !self.close_sent {
            self.conn.send_close_notify();
            self.close_sent = true;
        }
        self.flush(socket).is_ok() && !self.conn.wants_write()
    }

    /// True until keys for application data exist in both directions; before then written
    /// plaintext is only queued.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn flush(&mut self, socket: &mut impl Write) -> Result<(), TlsError> {
        while self.conn.wants_write() {
            match self.conn.write_tls(socket) {
                // A socket accepting nothing without WouldBlock would make us spin forever.
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads only while rustls wants more: it declines while plaintext is undelivered (back-pressure)
    /// or, mid-handshake, while its own flight is unsent, and forcing it would get a
    /// "buffer full" error instead.
    fn fill(&mut self, socket: &mut (impl Read + Write)) -> Result<(usize, ReadStop), TlsError> {
        let mut total = 0;
        loop {
            if self.eof {
                return Ok((total, ReadStop::Eof));
            }
            if !self.conn.wants_read() {
                return Ok((total, ReadStop::Paused));
            }
            match self.conn.read_tls(socket) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    total += n;
                    self.process(socket)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((total, ReadStop::WouldBlock)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn process(&mut self, socket: &mut impl Write) -> Result<rustls::IoState, TlsError> {
        self.conn.process_new_packets().map_err(|err| {
            // rustls queued an alert explaining the failure; the peer's logs are far more useful
            // with it. Best effort only: we are failing regardless.
            let _ = self.flush(socket);
            err.into()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    /// Every wait in these tests ends by this, so a bug fails a test instead of hanging CI.
    const DEADLINE: Duration = Duration::from_secs(5);
    const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(3);

    struct TestPki {
        ca_pem: String,
        chain: Vec<CertificateDer<'static>>,
        key_pkcs8: Vec<u8>,
    }

    /// A private CA plus a leaf for `localhost` and 127.0.0.1, like a real private deployment.
    fn make_pki() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "scratch-tls test CA");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        TestPki {
            ca_pem: ca_cert.pem(),
            chain: vec![leaf.der().clone(), ca_cert.der().clone()],
            key_pkcs8: leaf_key.serialize_der(),
        }
    }

    #[derive(Clone, Copy)]
    enum ServerMode {
        /// Read one line, answer "hello <line>", close_notify.
        Echo,
        /// Handshake, then read and discard until EOF (lets the client fill its buffers).
        Hold,
        /// Send some data, then TCP FIN without close_notify.
        Truncate,
    }

    fn start_server(pki: &TestPki, mode: ServerMode) -> (SocketAddr, JoinHandle<Result<Vec<u8>, String>>) {
        start_server_with(pki, mode, rustls::DEFAULT_VERSIONS)
    }

    fn start_server_with(
        pki: &TestPki,
        mode: ServerMode,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (SocketAddr, JoinHandle<Result<Vec<u8>, String>>) {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_pkcs8.clone()));
        let config = ServerConfig::builder_with_provider(ring_provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), key)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || serve_one(listener, Arc::new(config), mode));
        (addr, handle)
    }

    fn serve_one(listener: TcpListener, config: Arc<ServerConfig>, mode: ServerMode) -> Result<Vec<u8>, String> {
        let err = |e: io::Error| e.to_string();
        listener.set_nonblocking(true).map_err(err)?;
        let deadline = Instant::now() + DEADLINE;
        let tcp = loop {
            match listener.accept() {
                Ok((tcp, _)) => break tcp,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        tcp.set_nonblocking(false).map_err(err)?;
        tcp.set_read_timeout(Some(SERVER_IO_TIMEOUT)).map_err(err)?;
        tcp.set_write_timeout(Some(SERVER_IO_TIMEOUT)).map_err(err)?;
        let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);

        match mode {
            ServerMode::Echo => {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while !line.ends_with(b"\n") {
                    if tls.read(&mut byte).map_err(err)? == 0 || line.len() > 1024 {
                        return Err("no line from client".to_owned());
                    }
                    line.push(byte[0]);
                }
                let name = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                tls.write_all(format!("hello {name}\n").as_bytes()).map_err(err)?;
                tls.conn.send_close_notify();
                while tls.conn.wants_write() {
                    tls.conn.write_tls(&mut tls.sock).map_err(err)?;
                }
                Ok(line)
            }
            ServerMode::Hold => {
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock).map_err(err)?;
                }
                let mut sink = Vec::new();
                let _ = tls.read_to_end(&mut sink);
                Ok(Vec::new())
            }
            ServerMode::Truncate => {
                tls.write_all(b"partial").map_err(err)?;
                while tls.conn.wants_write() {
                    tls.conn.write_tls(&mut tls.sock).map_err(err)?;
                }
                tls.sock.shutdown(Shutdown::Write).map_err(err)?;
                let mut sink = [0u8; 1024];
                while matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
                Ok(Vec::new())
            }
        }
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        sock.set_nonblocking(true).unwrap();
        sock
    }

    /// The poll loop of an event loop, minus the poller: pump, let `done` consume, sleep 1 ms.
    fn drive(
        session: &mut TlsSession,
        sock: &mut TcpStream,
        mut done: impl FnMut(&mut TlsSession, &Progress) -> bool,
    ) -> Result<Progress, TlsError> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let progress = session.pump(sock)?;
            if done(session, &progress) {
                return Ok(progress);
            }
            assert!(Instant::now() < deadline, "timed out, last progress {progress:?}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Drains `read_plain` into `out`; true once end of stream was returned.
    fn drain(session: &mut TlsSession, out: &mut Vec<u8>) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match session.read_plain(&mut buf) {
                Ok(0) => return true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(TlsError::WouldBlock) => return false,
                Err(e) => panic!("read_plain failed: {e}"),
            }
        }
    }

    /// Handshake against an echo server; the session comes back too so later calls can be checked.
    fn handshake_result(
        pki: &TestPki,
        config: Arc<ClientConfig>,
        server_name: &str,
    ) -> (Result<Progress, TlsError>, TlsSession) {
        let (addr, server) = start_server(pki, ServerMode::Echo);
        let mut session = TlsSession::new(config, server_name).unwrap();
        let mut sock = connect(addr);
        let result = drive(&mut session, &mut sock, |_, p| p.handshake_complete);
        drop(sock);
        let _ = server.join();
        (result, session)
    }

    fn echo_round_trip(server_name: &str, server_versions: &[&'static rustls::SupportedProtocolVersion]) {
        let pki = make_pki();
        let (addr, server) = start_server_with(&pki, ServerMode::Echo, server_versions);
        let config = client_config(&[pki.ca_pem.clone().into_bytes()]).unwrap();
        let mut session = TlsSession::new(config, server_name).unwrap();
        let mut sock = connect(addr);

        // Queued before any handshake byte moved: pump alone must carry it through.
        assert!(session.is_handshaking());
        assert_eq!(session.write_plain(b"world\n").unwrap(), 6);

        let mut received = Vec::new();
        let mut saw_handshake = false;
        let last = drive(&mut session, &mut sock, |s, p| {
            saw_handshake |= p.handshake_complete;
            drain(s, &mut received) && p.peer_closed.is_some()
        })
        .unwrap();

        assert!(saw_handshake && !session.is_handshaking());
        assert_eq!(received, b"hello world\n");
        assert_eq!(last.peer_closed, Some(PeerClose::CloseNotify));
        let _ = session.close(&mut sock);
        assert_eq!(server.join().unwrap().unwrap(), b"world\n");
    }

    #[test]
    fn echo_round_trip_with_private_ca_dns_name() {
        echo_round_trip("localhost", rustls::DEFAULT_VERSIONS);
    }

    #[test]
    fn echo_round_trip_with_private_ca_ip_literal() {
        echo_round_trip("127.0.0.1", rustls::DEFAULT_VERSIONS);
    }

    /// TLS 1.2 has a different handshake shape (client speaks last), worth exercising through pump.
    #[test]
    fn echo_round_trip_over_tls12() {
        echo_round_trip("localhost", &[&rustls::version::TLS12]);
    }

    #[test]
    fn unknown_ca_is_a_certificate_error() {
        let (result, mut session) = handshake_result(&make_pki(), client_config(&[]).unwrap(), "localhost");
        let err = result.unwrap_err();
        assert!(matches!(err, TlsError::Certificate(_)), "got {err:?}");
        assert_eq!(err.errno_name(), "ECONNABORTED");
        // The failure sticks, and keeps its kind when it surfaces through a later call.
        let later = session.write_plain(b"x").unwrap_err();
        assert!(matches!(later, TlsError::Certificate(_)), "got {later:?}");
    }

    #[test]
    fn name_mismatch_is_a_certificate_error() {
        let pki = make_pki();
        let config = client_config(&[pki.ca_pem.clone().into_bytes()]).unwrap();
        let err = handshake_result(&pki, config, "example.com").0.unwrap_err();
        match err {
            TlsError::Certificate(ref reason) => assert!(reason.contains("example.com"), "reason: {reason}"),
            ref other => panic!("expected certificate error, got {other:?}"),
        }
    }

    #[test]
    fn eof_without_close_notify_is_reported_not_fatal() {
        let pki = make_pki();
        let (addr, server) = start_server(&pki, ServerMode::Truncate);
        let config = client_config(&[pki.ca_pem.clone().into_bytes()]).unwrap();
        let mut session = TlsSession::new(config, "localhost").unwrap();
        let mut sock = connect(addr);
        let mut received = Vec::new();
        let last = drive(&mut session, &mut sock, |s, p| drain(s, &mut received) && p.peer_closed.is_some()).unwrap();
        assert_eq!(received, b"partial");
        assert_eq!(last.peer_closed, Some(PeerClose::UnexpectedEof));
        let _ = session.close(&mut sock);
        drop(sock);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn client_config_rejects_bad_pem_and_names_the_blob() {
        let good = make_pki().ca_pem.into_bytes();
        let cases: [(&[u8], &str); 3] = [
            (b"this is not PEM at all", "no CERTIFICATE"),
            (b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n", "unreadable PEM"),
            (b"-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n", "rejected"),
        ];
        for (garbage, expected) in cases {
            match client_config(&[good.clone(), garbage.to_vec()]) {
                Err(TlsError::BadRoots { index: 1, reason }) => assert!(reason.contains(expected), "reason: {reason}"),
                other => panic!("expected BadRoots for blob 1, got {other:?}"),
            }
        }
        assert!(client_config(&[good]).is_ok());
    }

    #[test]
    fn bad_server_name_is_rejected() {
        let config = client_config(&[]).unwrap();
        let err = TlsSession::new(config, "not a host name!").unwrap_err();
        assert!(matches!(err, TlsError::BadServerName(_)), "got {err:?}");
        assert_eq!(err.errno_name(), "EPROTO");
    }

    /// Offers `chunk`-sized writes until one is refused; returns (total accepted, saw a short write).
    fn fill_until_full(session: &mut TlsSession) -> (usize, bool) {
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut total = 0;
        let mut short = false;
        for _ in 0..64 {
            let n = session.write_plain(&chunk).unwrap();
            total += n;
            short |= n < chunk.len();
            if n == 0 {
                return (total, short);
            }
        }
        panic!("write_plain never reported full after {total} bytes");
    }

    #[test]
    fn write_plain_is_bounded_before_handshake() {
        let mut session = TlsSession::new(client_config(&[]).unwrap(), "localhost").unwrap();
        let (total, short) = fill_until_full(&mut session);
        assert!(short);
        assert!(total > 0 && total <= MAX_PENDING_TLS_BYTES, "accepted {total}");
        assert_eq!(session.write_plain(b"x").unwrap(), 0);
    }

    /// A socket that swallows everything, so the exact ciphertext backlog can be measured.
    #[derive(Default)]
    struct CaptureSocket(Vec<u8>);

    impl Read for CaptureSocket {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    impl Write for CaptureSocket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_plain_bounds_ciphertext_after_handshake() {
        let pki = make_pki();
        let (addr, server) = start_server(&pki, ServerMode::Hold);
        let config = client_config(&[pki.ca_pem.clone().into_bytes()]).unwrap();
        let mut session = TlsSession::new(config, "localhost").unwrap();
        let mut sock = connect(addr);
        drive(&mut session, &mut sock, |_, p| p.handshake_complete && !p.wants_write).unwrap();

        let (total, short) = fill_until_full(&mut session);
        assert!(short && total > 0);

        let mut capture = CaptureSocket::default();
        let progress = session.pump(&mut capture).unwrap();
        assert!(!progress.wants_write);
        let ciphertext = capture.0.len();
        assert!(
            ciphertext >= total && ciphertext <= MAX_PENDING_TLS_BYTES,
            "{total} plaintext -> {ciphertext} ciphertext"
        );

        drop(sock);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn errno_names() {
        assert_eq!(TlsError::Certificate(String::new()).errno_name(), "ECONNABORTED");
        assert_eq!(TlsError::Io(io::ErrorKind::BrokenPipe.into()).errno_name(), "ECONNRESET");
        assert_eq!(TlsError::Protocol(String::new()).errno_name(), "EPROTO");
        assert_eq!(TlsError::BadRoots { index: 0, reason: String::new() }.errno_name(), "EPROTO");
        assert_eq!(TlsError::WouldBlock.errno_name(), "EAGAIN");
    }
}
