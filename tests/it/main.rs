//! End-to-end tests: the real `secure-exec-sidecar` binary spoken to over real pipes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod architecture;
mod backpressure;
mod commands;
mod compatibility;
mod exec;
mod host_dir;
mod javascript;
mod network;
mod persistence;
mod python;
mod run;
mod stdio;

/// What process `id` wrote and, once it exited, its code, gathered from its events.
#[derive(Debug, Default)]
pub(crate) struct ProcessOutput {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: Option<i32>,
}

impl ProcessOutput {
    /// Takes in `event` if it is `id`'s output or exit; `Some((stdout, stderr, code))` once it exited.
    pub(crate) fn take(&mut self, id: &str, event: schema::wire::EventFrame) -> Option<(String, String, i32)> {
        use schema::wire::{EventPayload, StreamChannel};
        match event.payload {
            EventPayload::ProcessOutputEvent(out) if out.process_id == id => match out.channel {
                StreamChannel::Stdout => self.stdout.extend(out.chunk),
                StreamChannel::Stderr => self.stderr.extend(out.chunk),
            },
            EventPayload::ProcessExitedEvent(exited) if exited.process_id == id => {
                self.exit_code = Some(exited.exit_code);
            }
            _ => {}
        }
        let code = self.exit_code?;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Some((text(&self.stdout), text(&self.stderr), code))
    }

    /// What was written so far, for a failure's message.
    pub(crate) fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Waits (each event up to 120 s) for process `id` to exit: (stdout, stderr, exit code).
pub(crate) fn wait_for_exit(sidecar: &mut client::Client, id: &str) -> (String, String, i32) {
    let mut output = ProcessOutput::default();
    loop {
        let event = sidecar.next_event(std::time::Duration::from_secs(120)).unwrap();
        if let Some(done) = output.take(id, event) {
            return done;
        }
    }
}

/// A `VmFetch` to the VM's port 8080 with `accept: text/plain`: (status, body as text).
pub(crate) fn vm_fetch(
    sidecar: &mut client::Client,
    scope: &schema::wire::OwnershipScope,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u64, String) {
    use base64::Engine as _;
    use schema::wire::{RequestPayload, ResponsePayload, VmFetchRequest};
    let request = VmFetchRequest {
        port: 8080,
        method: method.into(),
        path: path.into(),
        headers_json: r#"{"accept":"text/plain"}"#.into(),
        body: body.map(str::to_owned),
    };
    let ResponsePayload::VmFetchResponse(answer) =
        sidecar.request(scope.clone(), RequestPayload::VmFetchRequest(request)).unwrap()
    else {
        panic!("no fetch response")
    };
    let json: serde_json::Value = serde_json::from_str(&answer.response_json).unwrap();
    let body = base64::engine::general_purpose::STANDARD.decode(json["body"].as_str().unwrap_or_default()).unwrap();
    (json["status"].as_u64().unwrap_or(0), String::from_utf8(body).unwrap())
}

/// Replays `trace` with the real binary (`env` set, as where its interpreters are) and checks
/// that every output frame matched.
pub(crate) fn assert_replays(trace: &std::path::Path, env: &[(&str, &str)]) {
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
        .envs(env.iter().copied())
        .args(["replay", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replay matched"));
}
