//! The VM's network through the real binary: a guest HTTP server reached with `VmFetch` and
//! found with `FindListener`, and the recorded trace of that run replaying to the same frames
//! (the network lives in the kernel, so a replay needs nothing but the trace).

use base64::Engine as _;
use client::Client;
use schema::wire::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

pub(crate) fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sidecar-it-network-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_guest_http_server_answers_vm_fetch_and_the_run_replays() {
    let trace = temp_path("network.trace");
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"}}"#;
    let (mut sidecar, scope, conn, session, vm) = net_vm(&["--record", trace.to_str().unwrap(), "--seed", "5"], config);
    let execute = ExecuteRequest::command("web", "net", ["http-server", "8080", "2"]);
    sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
    loop {
        match sidecar.next_event(Duration::from_secs(20)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.chunk.starts_with(b"listening") => break,
            EventPayload::ProcessExitedEvent(event) => panic!("the server exited: {event:?}"),
            _ => {}
        }
    }

    let find = FindListenerRequest { host: None, port: Some(8080), path: None };
    let ResponsePayload::ListenerSnapshotResponse(found) =
        sidecar.request(scope.clone(), RequestPayload::FindListenerRequest(find)).unwrap()
    else {
        panic!("no listener snapshot")
    };
    assert_eq!(found.listener.map(|listener| listener.process_id), Some("web".to_owned()));

    for (method, path, body, expected) in
        [("GET", "/status", None, "GET /status "), ("PUT", "/items/7", Some("{\"n\":7}"), "PUT /items/7 {\"n\":7}")]
    {
        assert_eq!(crate::vm_fetch(&mut sidecar, &scope, method, path, body), (200, expected.to_owned()));
    }
    loop {
        if let EventPayload::ProcessExitedEvent(event) = sidecar.next_event(Duration::from_secs(20)).unwrap().payload {
            assert_eq!((event.process_id.as_str(), event.exit_code), ("web", 0));
            break;
        }
    }
    sidecar.dispose_vm(&conn, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());

    let replay = Command::new(binary()).args(["replay", trace.to_str().unwrap()]).output().unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replay matched"));
}

// ---- Connections out of the VM, to servers this test starts on 127.0.0.1 ----

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Every wait on a test server ends by this, so a bug fails a test instead of hanging CI.
const SERVER_DEADLINE: Duration = Duration::from_secs(20);

/// The body a test server answers with: large enough to take many receives.
pub(crate) fn body_bytes() -> Vec<u8> {
    (0..200_000u32).map(|i| b'a' + u8::try_from(i % 26).unwrap()).collect()
}

pub(crate) fn response_bytes() -> Vec<u8> {
    let body = body_bytes();
    let mut response = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    response.extend_from_slice(&body);
    response
}

/// Accepts one connection within the deadline, or `None`.
fn accept_one(listener: &TcpListener) -> Option<TcpStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + SERVER_DEADLINE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(SERVER_DEADLINE)).unwrap();
                stream.set_write_timeout(Some(SERVER_DEADLINE)).unwrap();
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => return None,
        }
    }
}

/// Reads an HTTP request head (to the blank line) from `stream`.
fn read_head(stream: &mut impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// A plain HTTP server on 127.0.0.1 for one request: it answers [`response_bytes`] and returns
/// the request head it got.
fn http_server() -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let Some(mut stream) = accept_one(&listener) else { return Vec::new() };
        let head = read_head(&mut stream);
        let _ = stream.write_all(&response_bytes());
        head
    });
    (port, handle)
}

/// A sidecar with `args`, one VM of `config` with the `net` fixture at /bin/net.
fn net_vm(args: &[&str], config: &str) -> (Client, OwnershipScope, String, String, String) {
    let mut sidecar = Client::spawn(binary(), args).unwrap();
    let auth = sidecar.authenticate("it", "token").unwrap();
    let conn = auth.connection_id;
    let session = sidecar.open_session(&conn).unwrap();
    let vm = sidecar.create_vm(&conn, &session, config).unwrap();
    let scope = OwnershipScope::vm(conn.clone(), session.clone(), vm.clone());
    let net = std::fs::read(format!("{}/../runtime-wasm/fixtures/c/net.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let write = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(net)),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/bin/net")
    };
    sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(write)).unwrap();
    (sidecar, scope, conn, session, vm)
}

/// Structured events' details.
type Details = Vec<BTreeMap<String, String>>;

/// What a run of `net ARGS` printed, and the `network.connect` events on the way.
fn run_net(sidecar: &mut Client, scope: &OwnershipScope, args: &[&str]) -> (Vec<u8>, Vec<BTreeMap<String, String>>) {
    let (stdout, audit, _) = run_net_closing(sidecar, scope, args);
    (stdout, audit)
}

/// [`run_net`], with the `network.close` events too (those that came before the exit).
fn run_net_closing(sidecar: &mut Client, scope: &OwnershipScope, args: &[&str]) -> (Vec<u8>, Details, Details) {
    let execute = ExecuteRequest::command("p", "net", args.iter().copied());
    sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
    let (mut stdout, mut audit, mut closes) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        match sidecar.next_event(SERVER_DEADLINE).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.channel == StreamChannel::Stdout => {
                stdout.extend_from_slice(&event.chunk)
            }
            EventPayload::StructuredEvent(event) if event.name == "network.connect" => audit.push(event.detail),
            EventPayload::StructuredEvent(event) if event.name == "network.close" => closes.push(event.detail),
            EventPayload::ProcessExitedEvent(event) => {
                assert_eq!(event.exit_code, 0, "net {args:?}: {}", String::from_utf8_lossy(&stdout));
                return (stdout, audit, closes);
            }
            _ => {}
        }
    }
}

use std::collections::BTreeMap;

pub(crate) fn network_config(exempt: &[u16]) -> String {
    format!(
        r#"{{"permissions":{{"fs":"allow","childProcess":"allow","network":"allow"}},"loopbackExemptPorts":{exempt:?}}}"#
    )
}

#[test]
fn a_guest_fetches_from_a_host_server_through_an_exempt_port_and_the_run_replays() {
    let trace = temp_path("egress.trace");
    let (port, server) = http_server();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    let (mut sidecar, scope, conn, session, vm) =
        net_vm(&["--record", trace.to_str().unwrap(), "--seed", "9"], &network_config(&[port]));

    let started = Instant::now();
    let (stdout, audit, mut closes) =
        run_net_closing(&mut sidecar, &scope, &["fetch", &format!("127.0.0.1:{port}"), "/data"]);
    let elapsed = started.elapsed();
    let mut expected = format!("fetched {} bytes\n", response_bytes().len()).into_bytes();
    expected.extend_from_slice(&response_bytes());
    assert!(stdout == expected, "the guest read {} bytes, not the server's {}", stdout.len(), expected.len());
    let head = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(head.starts_with("GET /data HTTP/1.0\r\n"), "{head:?}");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0]["decision"].as_str(), audit[0]["destination"].clone()),
        ("allow", format!("tcp://127.0.0.1:{port}"))
    );
    eprintln!("egress fetch of {} bytes through the sidecar: {elapsed:?}", expected.len());
    // The connection's end is reported with the bytes it moved.
    while closes.is_empty() {
        match sidecar.next_event(SERVER_DEADLINE).unwrap().payload {
            EventPayload::StructuredEvent(event) if event.name == "network.close" => closes.push(event.detail),
            _ => {}
        }
    }
    let ended = &closes[0];
    let request_len = "GET /data HTTP/1.0\r\nHost: test\r\n\r\n".len();
    assert_eq!(ended["destination"], format!("tcp://127.0.0.1:{port}"));
    assert_eq!(ended["bytesSent"], request_len.to_string());
    assert_eq!(ended["bytesReceived"], response_bytes().len().to_string());
    assert_eq!(ended["vmBytesReceived"], response_bytes().len().to_string());
    assert!(!ended.contains_key("error"), "{ended:?}");

    // A loopback port that is not exempt is refused (EACCES, 2), reported, and never reached.
    let (stdout, audit) = run_net(&mut sidecar, &scope, &["fetch", &format!("127.0.0.1:{closed_port}"), "/"]);
    assert_eq!(String::from_utf8(stdout).unwrap(), "connect errno=2\n");
    assert_eq!(audit[0]["decision"], "deny");
    closed.set_nonblocking(true).unwrap();
    assert!(closed.accept().is_err(), "the refused port saw a connection");

    sidecar.dispose_vm(&conn, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());
    // The servers are gone: the replay reads what the connections did from the trace alone.
    drop(closed);
    let replay = Command::new(binary()).args(["replay", trace.to_str().unwrap()]).output().unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replay matched"));
}

#[test]
fn without_a_network_an_allowed_connection_finds_no_route() {
    let (port, _server) = http_server();
    let (mut sidecar, scope, ..) = net_vm(&["--no-network"], &network_config(&[port]));
    let (stdout, audit) = run_net(&mut sidecar, &scope, &["fetch", &format!("127.0.0.1:{port}"), "/"]);
    // ENETUNREACH is 40.
    assert_eq!(String::from_utf8(stdout).unwrap(), "connect errno=40\n");
    assert_eq!(audit[0]["reason"], "this sidecar runs without a network");
    assert!(sidecar.close().unwrap().success());
}

#[test]
fn dispose_closes_the_host_side_of_every_connection_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (mut sidecar, scope, conn, session, vm) = net_vm(&[], &network_config(&[port]));
    // The guest sends its request and waits for an answer that never comes.
    let execute = ExecuteRequest::command("p", "net", ["fetch", &format!("127.0.0.1:{port}"), "/hang"]);
    sidecar.request(scope, RequestPayload::ExecuteRequest(execute)).unwrap();
    let mut stream = accept_one(&listener).expect("the guest connected");
    assert!(String::from_utf8(read_head(&mut stream)).unwrap().starts_with("GET /hang "));
    sidecar.dispose_vm(&conn, &session, &vm).unwrap();
    // The sidecar's socket is closed: end of stream, not a timeout.
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    assert!(matches!(read, Ok(0)), "{read:?} {rest:?}");
    assert!(sidecar.close().unwrap().success());
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1.
pub(crate) struct TestPki {
    pub(crate) ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

pub(crate) fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "sidecar test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        chain: vec![leaf.der().clone(), ca_cert.der().clone()],
        key_der: leaf_key.serialize_der(),
    }
}

/// An HTTPS server on 127.0.0.1 for one connection: a failed handshake ends it quietly.
pub(crate) fn https_server(pki: &TestPki) -> (u16, JoinHandle<Vec<u8>>) {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into());
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let Some(stream) = accept_one(&listener) else { return Vec::new() };
        let connection = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let head = read_head(&mut tls);
        if !head.is_empty() {
            let _ = tls.write_all(&response_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        head
    });
    (port, handle)
}

#[test]
fn tls_to_a_test_server_verifies_against_the_roots_and_the_configured_ca() {
    let pki = test_pki();
    // The Mozilla roots do not know the test CA: the handshake fails (ECONNABORTED, 13).
    let (port, server) = https_server(&pki);
    let (mut sidecar, scope, ..) = net_vm(&[], &network_config(&[port]));
    let (stdout, _) = run_net(&mut sidecar, &scope, &["fetch", &format!("127.0.0.1:{port}"), "/", "localhost"]);
    assert_eq!(String::from_utf8(stdout).unwrap(), "tls errno=13\n");
    assert!(server.join().unwrap().is_empty(), "no request went over an unverified connection");
    assert!(sidecar.close().unwrap().success());

    // With the test CA trusted, the same fetch reads the server's bytes.
    let ca_file = temp_path("test-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let (port, server) = https_server(&pki);
    let (mut sidecar, scope, ..) = net_vm(&["--tls-ca-file", ca_file.to_str().unwrap()], &network_config(&[port]));
    let (stdout, _) = run_net(&mut sidecar, &scope, &["fetch", &format!("127.0.0.1:{port}"), "/secure", "localhost"]);
    let mut expected = format!("fetched {} bytes\n", response_bytes().len()).into_bytes();
    expected.extend_from_slice(&response_bytes());
    assert!(
        stdout == expected,
        "the guest read {} bytes: {:?}",
        stdout.len(),
        String::from_utf8_lossy(&stdout[..stdout.len().min(200)])
    );
    assert!(String::from_utf8(server.join().unwrap()).unwrap().starts_with("GET /secure HTTP/1.0\r\n"));
    assert!(sidecar.close().unwrap().success());
}

#[test]
fn datagrams_reach_a_host_server_through_an_exempt_port_and_only_its_replies_come_back() {
    let trace = temp_path("udp.trace");
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    server.set_read_timeout(Some(SERVER_DEADLINE)).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (read, from) = server.recv_from(&mut buf).unwrap();
        // A stranger writes to the guest's host socket first: it must not reach the guest.
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"intruder", from).unwrap();
        let reversed: Vec<u8> = buf[..read].iter().rev().copied().collect();
        server.send_to(&reversed, from).unwrap();
        String::from_utf8(buf[..read].to_vec()).unwrap()
    });
    let (mut sidecar, scope, conn, session, vm) =
        net_vm(&["--record", trace.to_str().unwrap(), "--seed", "3"], &network_config(&[port]));
    let (stdout, audit) = run_net(&mut sidecar, &scope, &["udp-client", &port.to_string(), "datagram"]);
    assert_eq!(String::from_utf8(stdout).unwrap(), "reply: margatad\n");
    assert_eq!(echo.join().unwrap(), "datagram");
    assert_eq!(audit.len(), 1, "decided once per peer: {audit:?}");
    assert_eq!(
        (audit[0]["decision"].as_str(), audit[0]["destination"].clone()),
        ("allow", format!("udp://127.0.0.1:{port}"))
    );
    sidecar.dispose_vm(&conn, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());
    let replay = Command::new(binary()).args(["replay", trace.to_str().unwrap()]).output().unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
}

#[test]
fn names_are_resolved_by_the_configured_name_server_and_cached_for_their_ttl() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    server.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (counted, stopping) = (Arc::clone(&queries), Arc::clone(&stop));
    let dns = std::thread::spawn(move || {
        let v4: std::net::IpAddr = "93.184.216.34".parse().unwrap();
        let v6: std::net::IpAddr = "2606:2800:220:1::1".parse().unwrap();
        let addresses = [v4, v6];
        let table: [(&str, &[std::net::IpAddr], u32); 1] = [("api.test", &addresses, 300)];
        let deadline = Instant::now() + SERVER_DEADLINE;
        let mut buf = [0u8; 1500];
        while !stopping.load(Ordering::SeqCst) && Instant::now() < deadline {
            let Ok((read, from)) = server.recv_from(&mut buf) else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(answer) = transport::egress::dns_client::fake::answer_query(&buf[..read], &table, &[]) {
                let _ = server.send_to(&answer, from);
            }
        }
    });
    let config = format!(
        r#"{{"permissions":{{"fs":"allow","childProcess":"allow","network":"allow"}},"dns":{{"nameServers":["127.0.0.1:{port}"]}}}}"#
    );
    let (mut sidecar, scope, ..) = net_vm(&[], &config);
    let expected = r#"resolved [{"addr":"93.184.216.34","family":4},{"addr":"2606:2800:220:1::1","family":6}]"#;
    let (stdout, _) = run_net(&mut sidecar, &scope, &["resolve", "api.test"]);
    assert_eq!(String::from_utf8(stdout).unwrap(), format!("{expected}\n"));
    let asked = queries.load(Ordering::SeqCst);
    assert_eq!(asked, 2, "one A and one AAAA query");
    let (stdout, _) = run_net(&mut sidecar, &scope, &["resolve", "API.test"]);
    assert_eq!(String::from_utf8(stdout).unwrap(), format!("{expected}\n"));
    assert_eq!(queries.load(Ordering::SeqCst), asked, "the answer is cached for its TTL");
    // A name the server does not know: NXDOMAIN, EAI_NONAME in the guest (ENOENT, 44).
    let (stdout, _) = run_net(&mut sidecar, &scope, &["resolve", "nowhere.test"]);
    assert_eq!(String::from_utf8(stdout).unwrap(), "resolve errno=44\n");
    assert!(sidecar.close().unwrap().success());
    stop.store(true, Ordering::SeqCst);
    dns.join().unwrap();
}
