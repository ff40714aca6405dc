//! What the `javascript` and `python` benches share: a real sidecar binary with one of its
//! interpreters, VMs of that runtime, code run to its exit and timed, and the sidecar's RSS.
//! Each bench includes this file and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::Client;
use schema::wire::*;

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

/// A sidecar whose VMs run `runtime`, given code with `code_flag` (`-e`, `-c`).
pub struct Interpreter {
    client: Client,
    conn: String,
    session: String,
    next: usize,
    runtime: GuestRuntimeKind,
    code_flag: &'static str,
}

impl Interpreter {
    /// The binary started with `args` (where its interpreter is, its module cache).
    pub fn start(runtime: GuestRuntimeKind, code_flag: &'static str, args: &[&str]) -> Interpreter {
        let mut client = Client::spawn(binary(), args).unwrap();
        // A cold compile of the 99 MB Python interpreter takes minutes on a small machine.
        client.timeout = Duration::from_secs(900);
        let conn = client.authenticate("bench", "token").unwrap().connection_id;
        let session = client.open_session(&conn).unwrap();
        Interpreter { client, conn, session, next: 0, runtime, code_flag }
    }

    pub fn vm(&mut self) -> OwnershipScope {
        let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#;
        let request = CreateVmRequest { runtime: self.runtime, config: config.into() };
        let scope = OwnershipScope::session(&self.conn, &self.session);
        match self.client.request(scope, RequestPayload::CreateVmRequest(request)).unwrap() {
            ResponsePayload::VmCreatedResponse(created) => {
                OwnershipScope::vm(self.conn.clone(), self.session.clone(), created.vm_id)
            }
            other => panic!("{other:?}"),
        }
    }

    /// Starts `code` in `scope`; its process id.
    pub fn start_code(&mut self, scope: &OwnershipScope, code: &str) -> String {
        self.next += 1;
        let id = format!("p{}", self.next);
        let execute = ExecuteRequest {
            command: None,
            runtime: Some(self.runtime),
            ..ExecuteRequest::command(&id, "", [self.code_flag, code])
        };
        let started = self.client.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
        assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
        id
    }

    /// `code` to its exit (status 0): how long from the request to the exit event, and stdout.
    pub fn run(&mut self, scope: &OwnershipScope, code: &str) -> (Duration, String) {
        let start = Instant::now();
        let id = self.start_code(scope, code);
        let mut stdout = Vec::new();
        loop {
            match self.client.next_event(Duration::from_secs(900)).unwrap().payload {
                EventPayload::ProcessOutputEvent(event) if event.process_id == id => stdout.extend(event.chunk),
                EventPayload::ProcessExitedEvent(event) if event.process_id == id => {
                    assert_eq!(event.exit_code, 0, "{code}");
                    return (start.elapsed(), String::from_utf8_lossy(&stdout).into_owned());
                }
                _ => {}
            }
        }
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.client.pid())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn close(self) {
        drop(self.client.close());
    }
}

/// A fresh directory for `bench`'s `name`.
pub fn temp_dir(bench: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-{bench}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
