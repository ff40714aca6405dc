//! The VM's network with real guests: the `net` C fixture (its header lists the modes) talks
//! over the VM's loopback through the `host_net` imports, against the real kernel, and the host
//! finds its sockets (`FindListener`, `FindBoundUdp`) and reaches its HTTP listener
//! (`VmFetch`).

use std::collections::BTreeMap;

use base64::Engine as _;
use schema::wire::*;

use crate::exec::{response, started, Host};
use crate::support::c_fixture;

/// Every permission granted, the network's included.
const NET_VM: &str = r#"{"permissions":{"fs":"allow","env":"allow","childProcess":"allow","network":"allow"}}"#;
/// Ticks a test waits for a guest to say something before failing.
const MAX_TICKS: usize = 20_000;

/// A VM holding the `net` fixture at `/bin/net`, with `config`.
fn net_vm(host: &mut Host, config: &str) -> String {
    let vm = host.vm(config);
    host.write_file(&vm, "/bin/net", &c_fixture("net"));
    vm
}

/// Everything process `process_id` wrote to stdout and its exit code, from `events`.
fn output_of(events: &[EventPayload], process_id: &str) -> (String, Option<i32>) {
    let mut stdout = Vec::new();
    let mut code = None;
    for event in events {
        match event {
            EventPayload::ProcessOutputEvent(output)
                if output.process_id == process_id && output.channel == StreamChannel::Stdout =>
            {
                stdout.extend_from_slice(&output.chunk)
            }
            EventPayload::ProcessExitedEvent(exited) if exited.process_id == process_id => {
                code = Some(exited.exit_code)
            }
            _ => {}
        }
    }
    (String::from_utf8_lossy(&stdout).into_owned(), code)
}

/// Ticks until `done` holds for the events seen so far (responses to requests made meanwhile
/// are collected too); panics after [`MAX_TICKS`].
fn tick_until(
    host: &mut Host,
    events: &mut Vec<EventPayload>,
    responses: &mut Vec<ResponsePayload>,
    done: impl Fn(&[EventPayload], &[ResponsePayload]) -> bool,
) {
    for _ in 0..MAX_TICKS {
        if done(events, responses) {
            return;
        }
        host.sidecar.tick(host.now);
        for frame in host.drain() {
            match frame {
                ProtocolFrame::EventFrame(event) => events.push(event.payload),
                ProtocolFrame::ResponseFrame(frame) => responses.push(frame.payload),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    panic!("not done within {MAX_TICKS} ticks; events: {events:?}; responses: {responses:?}");
}

fn said(events: &[EventPayload], process_id: &str, text: &str) -> bool {
    output_of(events, process_id).0.contains(text)
}

fn exited(events: &[EventPayload], process_id: &str) -> bool {
    output_of(events, process_id).1.is_some()
}

#[test]
fn two_guests_talk_over_loopback_tcp_and_the_host_finds_the_listener() {
    let mut host = Host::new();
    let vm = net_vm(&mut host, NET_VM);
    let (mut events, mut responses) = (Vec::new(), Vec::new());
    started(&host.execute(&vm, "server", "net", &["tcp-server", "8080"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, "server", "listening 127.0.0.1:8080"));

    let find = FindListenerRequest { host: None, port: Some(8080), path: None };
    let ResponsePayload::ListenerSnapshotResponse(found) = host.simple(&vm, RequestPayload::FindListenerRequest(find))
    else {
        panic!("no listener snapshot")
    };
    let listener = found.listener.expect("the server's listener");
    assert_eq!(
        (listener.process_id.as_str(), listener.host.as_deref(), listener.port),
        ("server", Some("127.0.0.1"), Some(8080))
    );
    let other = FindListenerRequest { host: None, port: Some(8081), path: None };
    let ResponsePayload::ListenerSnapshotResponse(none) = host.simple(&vm, RequestPayload::FindListenerRequest(other))
    else {
        panic!("no listener snapshot")
    };
    assert_eq!(none.listener, None);

    started(&host.execute(&vm, "client", "net", &["tcp-client", "8080", "hello world"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| exited(e, "client") && exited(e, "server"));
    assert_eq!(output_of(&events, "client"), ("reply: HELLO WORLD\n".to_owned(), Some(0)));
    assert_eq!(
        output_of(&events, "server"),
        ("listening 127.0.0.1:8080\naccepted\nechoed 11 bytes\n".to_owned(), Some(0))
    );
}

#[test]
fn two_guests_exchange_datagrams_and_the_host_finds_the_bound_socket() {
    let mut host = Host::new();
    let vm = net_vm(&mut host, NET_VM);
    let (mut events, mut responses) = (Vec::new(), Vec::new());
    started(&host.execute(&vm, "server", "net", &["udp-server", "5353"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, "server", "bound 127.0.0.1:5353"));
    let find = FindBoundUdpRequest { host: Some("127.0.0.1".into()), port: Some(5353) };
    let ResponsePayload::BoundUdpSnapshotResponse(found) = host.simple(&vm, RequestPayload::FindBoundUdpRequest(find))
    else {
        panic!("no UDP snapshot")
    };
    assert_eq!(found.socket.map(|socket| (socket.process_id, socket.port)), Some(("server".to_owned(), Some(5353))));

    started(&host.execute(&vm, "client", "net", &["udp-client", "5353", "stressed"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| exited(e, "client") && exited(e, "server"));
    assert_eq!(output_of(&events, "client"), ("reply: desserts\n".to_owned(), Some(0)));
    assert_eq!(
        output_of(&events, "server"),
        ("bound 127.0.0.1:5353\ngot stressed from 127.0.0.1\nreplied\n".to_owned(), Some(0))
    );
}

#[test]
fn vm_fetch_reaches_a_guest_http_listener() {
    let mut host = Host::new();
    let vm = net_vm(&mut host, NET_VM);
    let (mut events, mut responses) = (Vec::new(), Vec::new());
    started(&host.execute(&vm, "web", "net", &["http-server", "3000", "2"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, "web", "listening 127.0.0.1:3000"));

    let requests = [
        VmFetchRequest { port: 3000, method: "GET".into(), path: "/hi".into(), headers_json: "{}".into(), body: None },
        VmFetchRequest {
            port: 3000,
            method: "POST".into(),
            path: "echo".into(),
            headers_json: r#"{"x-test":"1"}"#.into(),
            body: Some("hello".into()),
        },
    ];
    let mut answers = Vec::new();
    for request in requests {
        let frames = host.request(host.scope(&vm), RequestPayload::VmFetchRequest(request));
        assert!(frames.is_empty(), "answered when the guest responds: {frames:?}");
        tick_until(&mut host, &mut events, &mut responses, |_, r| !r.is_empty());
        let ResponsePayload::VmFetchResponse(answer) = responses.remove(0) else { panic!("not a fetch response") };
        answers.push(serde_json::from_str::<serde_json::Value>(&answer.response_json).unwrap());
    }
    let body = |answer: &serde_json::Value| {
        let text = answer["body"].as_str().unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
    };
    assert_eq!(answers[0]["status"], 200);
    assert_eq!(answers[0]["statusText"], "OK");
    assert_eq!(answers[0]["url"], "http://127.0.0.1:3000/hi");
    assert_eq!(body(&answers[0]), "GET /hi ");
    assert!(answers[0]["headers"].as_array().unwrap().contains(&serde_json::json!(["x-guest", "net"])));
    assert_eq!(body(&answers[1]), "POST /echo hello");
    tick_until(&mut host, &mut events, &mut responses, |e, _| exited(e, "web"));
    assert_eq!(output_of(&events, "web").1, Some(0));

    // No listener any more: refused at once.
    let request =
        VmFetchRequest { port: 3000, method: "GET".into(), path: "/".into(), headers_json: "{}".into(), body: None };
    let frames = host.request(host.scope(&vm), RequestPayload::VmFetchRequest(request));
    let ResponsePayload::RejectedResponse(rejected) = response(&frames[0]) else { panic!("{frames:?}") };
    assert!(rejected.message.contains("could not find a guest HTTP listener on port 3000"), "{}", rejected.message);
}

/// Runs one `net` mode to its exit in a VM made with `config`: (stdout, exit code).
fn run_net(config: &str, args: &[&str]) -> (String, Option<i32>) {
    let mut host = Host::new();
    let vm = net_vm(&mut host, config);
    started(&host.execute(&vm, "p", "net", args));
    let events = host.run("p");
    output_of(&events, "p")
}

fn with_limit(key: &str, value: u64) -> String {
    serde_json::json!({
        "permissions": { "fs": "allow", "childProcess": "allow", "network": "allow" },
        "limits": { "resources": { key: value } },
    })
    .to_string()
}

#[test]
fn every_socket_limit_refuses_the_one_past_it() {
    // WASI errno numbers: EMFILE 33, EAGAIN 6, ENOBUFS 42. Each refusal reaches the host as one
    // `network.limit` event naming the limit.
    let cases = [
        ("maxSockets", 4, &["sockets", "10"], "sockets 4 errno=33\n", "EMFILE"),
        // The listener, then two connections of two sockets each fill six.
        ("maxConnections", 4, &["connections", "10"], "connections 2 errno=6\n", "EAGAIN"),
        ("maxSocketBufferedBytes", 10_000, &["buffer", "100000"], "buffered 10000 errno=42\n", "ENOBUFS"),
        ("maxSocketDatagramQueueLen", 3, &["datagrams", "10"], "datagrams 3 errno=42\n", "ENOBUFS"),
    ];
    for (limit, value, args, stdout, errno) in cases {
        let (out, code, events) = run_net_events(&with_limit(limit, value), args, "network.limit");
        assert_eq!((out.as_str(), code), (stdout, Some(0)), "{limit}");
        assert_eq!(events.len(), 1, "{limit}: {events:?}");
        assert_eq!((events[0]["limit"].as_str(), events[0]["errno"].as_str()), (limit, errno));
        assert_eq!((events[0]["processId"].as_str(), events[0]["count"].as_str()), ("p", "1"));
    }
}

#[test]
fn listening_needs_the_policy_and_the_listen_range() {
    let fs_only = r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#;
    let (stdout, code) = run_net(fs_only, &["tcp-server", "8080"]);
    assert_eq!((stdout.as_str(), code), ("", Some(1)), "network.listen is denied");
    let range = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"},"listen":{"portMin":9000,"portMax":9100}}"#;
    assert_eq!(run_net(range, &["tcp-server", "8080"]).1, Some(1), "8080 is outside the listen range");
    let privileged = NET_VM;
    assert_eq!(run_net(privileged, &["tcp-server", "80"]).1, Some(1), "a privileged port");
}

/// Runs one `net` mode to its exit: its stdout, exit code, and the `network.connect` events.
fn run_net_audited(config: &str, args: &[&str]) -> (String, Option<i32>, Vec<BTreeMap<String, String>>) {
    run_net_events(config, args, "network.connect")
}

/// Runs one `net` mode to its exit: its stdout, exit code, and the structured events `name`.
fn run_net_events(config: &str, args: &[&str], name: &str) -> (String, Option<i32>, Vec<BTreeMap<String, String>>) {
    let mut host = Host::new();
    let vm = net_vm(&mut host, config);
    started(&host.execute(&vm, "p", "net", args));
    let events = host.run("p");
    let audit = events
        .iter()
        .filter_map(|event| match event {
            EventPayload::StructuredEvent(event) if event.name == name => Some(event.detail.clone()),
            _ => None,
        })
        .collect();
    let (stdout, code) = output_of(&events, "p");
    (stdout, code, audit)
}

#[test]
fn leaving_the_vm_is_decided_by_the_policy_then_the_address_filter_and_reported() {
    // WASI errno numbers: EACCES 2, ENETUNREACH 40, ECONNREFUSED 14.
    let cases = [
        ("10.0.0.1:80", 2, "deny", "the address is private (10.0.0.0/8)"),
        ("169.254.169.254:80", 2, "deny", "the address is link-local (169.254.0.0/16)"),
        ("::ffff:192.168.1.1:80", 2, "deny", "the address is private (192.168.0.0/16)"),
        // This host runs without a network: an allowed connection finds no route.
        ("8.8.8.8:53", 40, "allow", "this sidecar runs without a network"),
    ];
    for (target, errno, decision, reason) in cases {
        let (stdout, code, audit) = run_net_audited(NET_VM, &["refused", target]);
        assert_eq!((stdout, code), (format!("connect errno={errno}\n"), Some(0)), "{target}");
        assert_eq!(audit.len(), 1, "{target}: {audit:?}");
        assert_eq!(audit[0]["decision"], decision, "{target}");
        assert_eq!(audit[0]["reason"], reason, "{target}");
        assert_eq!(audit[0]["processId"], "p");
        assert!(audit[0]["destination"].starts_with("tcp://"), "{:?}", audit[0]);
    }
    // The policy first: a rule denying one destination.
    let deny_one = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":{"default":"allow","rules":[{"mode":"deny","operations":["http"],"patterns":["tcp://8.8.8.8:*"]}]}}}"#;
    let (stdout, _, audit) = run_net_audited(deny_one, &["refused", "8.8.8.8:53"]);
    assert_eq!(stdout, "connect errno=2\n");
    assert_eq!(
        (audit[0]["decision"].as_str(), audit[0]["reason"].as_str()),
        ("deny", "blocked by network.http policy")
    );
    // A loopback port nothing in the VM listens on is the host's loopback, in any form, which
    // only loopbackExemptPorts reach.
    let cases = [
        ("127.0.0.1:9", "tcp://127.0.0.1:9"),
        ("::ffff:127.0.0.1:9", "tcp://127.0.0.1:9"),
        ("0.0.0.0:9", "tcp://127.0.0.1:9"),
        ("::1:9", "tcp://[::1]:9"),
    ];
    for (target, destination) in cases {
        let (stdout, _, audit) = run_net_audited(NET_VM, &["refused", target]);
        assert_eq!((stdout.as_str(), audit.len()), ("connect errno=2\n", 1), "{target}");
        assert_eq!(audit[0]["destination"], destination);
        assert_eq!(audit[0]["reason"], "the host's loopback port 9 is not in loopbackExemptPorts");
    }
    // An exempt port is let through to the host, where this one has no network.
    let exempt = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"},"loopbackExemptPorts":[9]}"#;
    let (stdout, _, audit) = run_net_audited(exempt, &["refused", "127.0.0.1:9"]);
    assert_eq!((stdout.as_str(), audit[0]["decision"].as_str()), ("connect errno=40\n", "allow"));
}

#[test]
fn a_name_overridden_to_a_private_address_resolves_but_is_refused() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"},"dns":{"overrides":{"DB.internal":["10.0.0.1"]}}}"#;
    assert_eq!(
        run_net(config, &["resolve", "db.INTERNAL"]),
        (r#"resolved [{"addr":"10.0.0.1","family":4}]"#.to_owned() + "\n", Some(0))
    );
    let (stdout, _, audit) = run_net_audited(config, &["refused", "10.0.0.1:5432"]);
    assert_eq!((stdout.as_str(), audit[0]["decision"].as_str()), ("connect errno=2\n", "deny"));
    // Resolving a name needs network.dns (EACCES, 2).
    let no_dns = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":{"default":"allow","rules":[{"mode":"deny","operations":["dns"],"patterns":["**"]}]}},"dns":{"overrides":{"db.internal":["10.0.0.1"]}}}"#;
    assert_eq!(run_net(no_dns, &["resolve", "db.internal"]), ("resolve errno=2\n".to_owned(), Some(0)));
}

#[test]
fn names_resolve_to_the_loopback_or_not_at_all() {
    assert_eq!(
        run_net(NET_VM, &["resolve", "localhost"]),
        (r#"resolved [{"addr":"127.0.0.1","family":4},{"addr":"::1","family":6}]"#.to_owned() + "\n", Some(0))
    );
    assert_eq!(
        run_net(NET_VM, &["resolve", "10.1.2.3"]),
        (r#"resolved [{"addr":"10.1.2.3","family":4}]"#.to_owned() + "\n", Some(0))
    );
    // ENOENT (44): the VM has no resolver for other names yet.
    assert_eq!(run_net(NET_VM, &["resolve", "example.com"]), ("resolve errno=44\n".to_owned(), Some(0)));
}

#[test]
fn a_fetch_nobody_answers_times_out_on_the_kernel_clock_and_a_dispose_ends_the_others() {
    let mut host = Host::new();
    let vm = net_vm(&mut host, NET_VM);
    let (mut events, mut responses) = (Vec::new(), Vec::new());
    // `sink` accepts and reads, and never answers.
    started(&host.execute(&vm, "sink", "net", &["sink", "4000"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, "sink", "listening 127.0.0.1:4000"));
    let get =
        || VmFetchRequest { port: 4000, method: "GET".into(), path: "/".into(), headers_json: "{}".into(), body: None };
    assert!(host.request(host.scope(&vm), RequestPayload::VmFetchRequest(get())).is_empty());
    for _ in 0..50 {
        host.sidecar.tick(host.now);
    }
    assert!(host.drain().iter().all(|frame| !matches!(frame, ProtocolFrame::ResponseFrame(_))), "still waiting");
    // The kernel's deadline is the driver's to wake it at.
    let deadline = host.sidecar.next_deadline().expect("the fetch's deadline");
    assert_eq!(deadline, host.now.monotonic_ms + 30_000);
    host.now = kernel::Now::from_millis(deadline, host.now.wall_ms + 30_000);
    tick_until(&mut host, &mut events, &mut responses, |_, r| !r.is_empty());
    let ResponsePayload::RejectedResponse(rejected) = responses.remove(0) else { panic!("not rejected") };
    assert_eq!(rejected.code, "execution_error");
    assert!(rejected.message.contains("timed out after 30000 ms"), "{}", rejected.message);

    // `sink` took its one connection; a second listener for the dispose.
    started(&host.execute(&vm, "sink2", "net", &["sink", "4001"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, "sink2", "listening 127.0.0.1:4001"));
    let request = VmFetchRequest { port: 4001, ..get() };
    assert!(host.request(host.scope(&vm), RequestPayload::VmFetchRequest(request)).is_empty());
    let frames = host.request(
        host.scope(&vm),
        RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested }),
    );
    let refused = frames.iter().find_map(|frame| match frame {
        ProtocolFrame::ResponseFrame(ResponseFrame {
            payload: ResponsePayload::RejectedResponse(rejected), ..
        }) => Some(rejected.message.clone()),
        _ => None,
    });
    assert!(refused.is_some_and(|message| message.contains("disposed before vm.fetch completed")), "{frames:?}");
    assert!(frames.iter().any(|frame| matches!(
        frame,
        ProtocolFrame::ResponseFrame(ResponseFrame { payload: ResponsePayload::VmDisposedResponse(_), .. })
    )));
}

#[test]
fn only_socket_options_that_change_nothing_here_are_accepted() {
    // (level, option, errno): SO_REUSEADDR at musl's and wasi-libc's SOL_SOCKET, TCP_NODELAY,
    // then SO_BROADCAST and an unknown level, which would mean something: ENOPROTOOPT (50).
    let cases = [("1", "2", 0), ("2147483647", "2", 0), ("6", "1", 0), ("1", "6", 50), ("99", "1", 50)];
    for (level, option, errno) in cases {
        assert_eq!(
            run_net(NET_VM, &["sockopt", level, option]),
            (format!("setsockopt errno={errno}\n"), Some(0)),
            "level {level} option {option}"
        );
    }
}

#[test]
fn fetches_in_flight_are_bounded_and_each_is_answered() {
    let mut host = Host::new();
    let vm = net_vm(&mut host, NET_VM);
    let (mut events, mut responses) = (Vec::new(), Vec::new());
    // Four servers whose listen backlog (16) holds a quarter of the fetches each.
    let per_server = kernel::dispatch::MAX_PENDING_FETCHES / 4;
    for server in 0..4 {
        let (id, port) = (format!("web{server}"), (3100 + server).to_string());
        started(&host.execute(&vm, &id, "net", &["http-server", &port, &per_server.to_string()]));
        tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, &id, "listening"));
    }
    let get = |port: u16| VmFetchRequest {
        port,
        method: "GET".into(),
        path: "/".into(),
        headers_json: "{}".into(),
        body: None,
    };
    for fetch in 0..kernel::dispatch::MAX_PENDING_FETCHES {
        let port = 3100 + u16::try_from(fetch % 4).unwrap();
        assert!(host.request(host.scope(&vm), RequestPayload::VmFetchRequest(get(port))).is_empty(), "fetch {fetch}");
    }
    let frames = host.request(host.scope(&vm), RequestPayload::VmFetchRequest(get(3100)));
    let ResponsePayload::RejectedResponse(rejected) = response(&frames[0]) else { panic!("{frames:?}") };
    assert_eq!(rejected.code, "limit_exceeded", "{}", rejected.message);
    tick_until(&mut host, &mut events, &mut responses, |_, r| r.len() == kernel::dispatch::MAX_PENDING_FETCHES);
    assert!(responses.iter().all(|r| matches!(r, ResponsePayload::VmFetchResponse(_))), "{responses:?}");
}

/// Runs `net ARGS` in a VM of a kernel with egress, answering its name resolutions from
/// `names` (the test is the host's resolver): stdout, and the names the kernel asked for.
fn run_resolving(host: &mut Host, vm: &str, args: &[&str], names: &[(&str, &str)]) -> (String, Vec<String>) {
    use kernel::host::effect::{Completion, Effect, NetFailure};
    started(&host.execute(vm, "p", "net", args));
    let mut asked = Vec::new();
    let mut events = Vec::new();
    for _ in 0..10_000 {
        host.sidecar.tick(host.now);
        while let Some((id, effect)) = host.sidecar.poll_effect() {
            let Effect::Resolve { name, .. } = effect else { panic!("unexpected {effect:?}") };
            let answer = match names.iter().find(|(known, _)| *known == name) {
                Some((_, addresses)) => Ok(kernel::host::effect::Resolution {
                    addresses: addresses.split(',').map(|ip| ip.parse().unwrap()).collect(),
                    ttl_s: None,
                }),
                None => Err(NetFailure::new(kernel::vfs::Errno::ENOENT, "unknown")),
            };
            asked.push(name);
            host.sidecar.handle_completion(id, Completion::Resolved(answer), host.now);
        }
        for frame in host.drain() {
            if let ProtocolFrame::EventFrame(event) = frame {
                events.push(event.payload);
            }
        }
        if events.iter().any(|event| matches!(event, EventPayload::ProcessExitedEvent(_))) {
            return (output_of(&events, "p").0, asked);
        }
    }
    panic!("net {args:?} did not exit: {events:?}");
}

#[test]
fn names_beyond_the_overrides_are_resolved_by_the_host_once_and_cached() {
    let mut host = Host::with_egress();
    let vm = net_vm(&mut host, NET_VM);
    let names = [("api.example.test", "93.184.216.34,2606:2800:220:1::1")];
    let (stdout, asked) = run_resolving(&mut host, &vm, &["resolve", "API.example.test"], &names);
    assert_eq!(
        stdout,
        r#"resolved [{"addr":"93.184.216.34","family":4},{"addr":"2606:2800:220:1::1","family":6}]"#.to_owned() + "\n"
    );
    assert_eq!(asked, ["api.example.test"], "asked once, lower-cased");
    let (again, asked) = run_resolving(&mut host, &vm, &["resolve", "api.example.test"], &names);
    assert_eq!((again, asked.len()), (stdout, 0), "the VM's cache answers");
    // An unknown name is ENOENT (44); a name that is not a DNS name never reaches the host.
    let (stdout, asked) = run_resolving(&mut host, &vm, &["resolve", "nowhere.test"], &names);
    assert_eq!((stdout.as_str(), asked.len()), ("resolve errno=44\n", 1));
    let (stdout, asked) = run_resolving(&mut host, &vm, &["resolve", "bad name%"], &names);
    assert_eq!((stdout.as_str(), asked.len()), ("resolve errno=44\n", 0));
}

#[test]
fn a_fetch_response_over_the_vms_max_fetch_response_bytes_is_refused() {
    let mut host = Host::new();
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","network":"allow"},"limits":{"http":{"maxFetchResponseBytes":64}}}"#;
    let vm = net_vm(&mut host, config);
    let (mut events, mut responses) = (Vec::new(), Vec::new());
    started(&host.execute(&vm, "web", "net", &["http-server", "3000", "1"]));
    tick_until(&mut host, &mut events, &mut responses, |e, _| said(e, "web", "listening 127.0.0.1:3000"));
    let request =
        VmFetchRequest { port: 3000, method: "GET".into(), path: "/hi".into(), headers_json: "{}".into(), body: None };
    let frames = host.request(host.scope(&vm), RequestPayload::VmFetchRequest(request));
    assert!(frames.is_empty());
    tick_until(&mut host, &mut events, &mut responses, |_, r| !r.is_empty());
    let ResponsePayload::RejectedResponse(rejected) = responses.remove(0) else { panic!("answered in full") };
    assert_eq!(rejected.code, "execution_error");
    assert!(rejected.message.contains("64"), "{}", rejected.message);
}
