//! A blocking Rust host client for the Secure Exec sidecar.
//!
//! [`Client::spawn`] starts the sidecar binary with piped stdio; a reader thread decodes frames
//! from its stdout. [`Client::request`] sends a request and waits for the response with the same
//! id; events and sidecar-initiated requests that arrive meanwhile are kept for
//! [`Client::take_events`] and [`Client::next_sidecar_request`].

#![forbid(unsafe_code)]

pub mod sandbox;

use schema::codec::Decoded;
use schema::wire::*;
use schema::{FrameDecoder, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a request waits for its response before [`ClientError::Timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// The bridge contract version this client announces.
pub const BRIDGE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not start the sidecar: {0}")]
    Spawn(io::Error),
    #[error("sidecar I/O: {0}")]
    Io(#[from] io::Error),
    #[error("frame: {0}")]
    Frame(#[from] schema::FrameError),
    #[error("request rejected: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error("unexpected response {0}")]
    Unexpected(&'static str),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("the sidecar closed its stdout")]
    Closed,
}

/// A running sidecar process and the host side of its protocol.
#[derive(Debug)]
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: mpsc::Receiver<Decoded>,
    next_request_id: i64,
    events: Vec<EventFrame>,
    sidecar_requests: VecDeque<SidecarRequestFrame>,
    pub timeout: Duration,
}

impl Client {
    /// Starts `binary` with `args`, stdin/stdout piped (stderr inherited).
    pub fn spawn(binary: &Path, args: &[&str]) -> Result<Self, ClientError> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(ClientError::Spawn)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or(ClientError::Closed)?;
        let (sender, frames) = mpsc::channel();
        std::thread::spawn(move || read_frames(stdout, &sender));
        Ok(Self {
            child,
            stdin,
            frames,
            next_request_id: 0,
            events: Vec::new(),
            sidecar_requests: VecDeque::new(),
            timeout: DEFAULT_RESPONSE_TIMEOUT,
        })
    }

    /// Writes raw bytes to the sidecar's stdin (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let stdin = self.stdin.as_mut().ok_or(ClientError::Closed)?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends a frame as-is.
    pub fn send_frame(&mut self, frame: &ProtocolFrame) -> Result<(), ClientError> {
        let bytes = schema::encode_frame(frame, DEFAULT_MAX_FRAME_BYTES)?;
        self.send_raw(&bytes)
    }

    /// Allocates the next host request id (1, 2, ...).
    pub fn next_request_id(&mut self) -> i64 {
        self.next_request_id += 1;
        self.next_request_id
    }

    /// Sends a request and waits for its response frame (rejections included).
    pub fn request_frame(
        &mut self,
        ownership: OwnershipScope,
        payload: RequestPayload,
    ) -> Result<ResponseFrame, ClientError> {
        let request_id = self.next_request_id();
        self.send_frame(&ProtocolFrame::RequestFrame(RequestFrame {
            schema: ProtocolSchema::current(),
            request_id,
            ownership,
            payload,
        }))?;
        self.wait_response(request_id)
    }

    /// Sends a request; a `RejectedResponse` becomes [`ClientError::Rejected`].
    pub fn request(
        &mut self,
        ownership: OwnershipScope,
        payload: RequestPayload,
    ) -> Result<ResponsePayload, ClientError> {
        match self.request_frame(ownership, payload)?.payload {
            ResponsePayload::RejectedResponse(rejected) => {
                Err(ClientError::Rejected { code: rejected.code, message: rejected.message })
            }
            payload => Ok(payload),
        }
    }

    /// Waits for the response to `request_id`, keeping events and sidecar requests for later.
    pub fn wait_response(&mut self, request_id: i64) -> Result<ResponseFrame, ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_frame(deadline)? {
                ProtocolFrame::ResponseFrame(response) if response.request_id == request_id => return Ok(response),
                ProtocolFrame::ResponseFrame(_) => {}
                ProtocolFrame::EventFrame(event) => self.events.push(event),
                ProtocolFrame::SidecarRequestFrame(request) => self.sidecar_requests.push_back(request),
                ProtocolFrame::RequestFrame(_) | ProtocolFrame::SidecarResponseFrame(_) => {
                    return Err(ClientError::Unexpected("host-side frame from the sidecar"))
                }
            }
        }
    }

    fn next_frame(&mut self, deadline: Instant) -> Result<ProtocolFrame, ClientError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.frames.recv_timeout(wait) {
            Ok(Decoded::Frame(frame)) => Ok(frame),
            Ok(Decoded::Error { error, .. }) => Err(ClientError::Frame(error)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ClientError::Timeout(self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ClientError::Closed),
        }
    }

    /// Events received so far (drained).
    pub fn take_events(&mut self) -> Vec<EventFrame> {
        std::mem::take(&mut self.events)
    }

    /// The next event: one already received, or the next to arrive within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Result<EventFrame, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.events.is_empty() {
                return Ok(self.events.remove(0));
            }
            match self.next_frame(deadline)? {
                ProtocolFrame::EventFrame(event) => return Ok(event),
                ProtocolFrame::SidecarRequestFrame(request) => self.sidecar_requests.push_back(request),
                _ => return Err(ClientError::Unexpected("response without a pending request")),
            }
        }
    }

    /// Waits up to `timeout` for a sidecar-initiated request.
    pub fn next_sidecar_request(&mut self, timeout: Duration) -> Result<SidecarRequestFrame, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(request) = self.sidecar_requests.pop_front() {
                return Ok(request);
            }
            match self.next_frame(deadline)? {
                ProtocolFrame::EventFrame(event) => self.events.push(event),
                ProtocolFrame::SidecarRequestFrame(request) => return Ok(request),
                _ => return Err(ClientError::Unexpected("response without a pending request")),
            }
        }
    }

    /// Answers a sidecar-initiated request.
    pub fn respond_to_sidecar(
        &mut self,
        request: &SidecarRequestFrame,
        payload: SidecarResponsePayload,
    ) -> Result<(), ClientError> {
        self.send_frame(&ProtocolFrame::SidecarResponseFrame(SidecarResponseFrame {
            schema: ProtocolSchema::current(),
            request_id: request.request_id,
            ownership: request.ownership.clone(),
            payload,
        }))
    }

    pub fn authenticate(&mut self, client_name: &str, token: &str) -> Result<AuthenticatedResponse, ClientError> {
        let payload = RequestPayload::AuthenticateRequest(AuthenticateRequest {
            client_name: client_name.to_owned(),
            auth_token: token.to_owned(),
            protocol_version: PROTOCOL_VERSION,
            bridge_version: BRIDGE_VERSION,
        });
        match self.request(OwnershipScope::connection("client-hint"), payload)? {
            ResponsePayload::AuthenticatedResponse(response) => Ok(response),
            _ => Err(ClientError::Unexpected("expected AuthenticatedResponse")),
        }
    }

    pub fn open_session(&mut self, connection_id: &str) -> Result<String, ClientError> {
        let payload = RequestPayload::OpenSessionRequest(OpenSessionRequest {
            placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
            metadata: Default::default(),
        });
        match self.request(OwnershipScope::connection(connection_id), payload)? {
            ResponsePayload::SessionOpenedResponse(response) => Ok(response.session_id),
            _ => Err(ClientError::Unexpected("expected SessionOpenedResponse")),
        }
    }

    pub fn create_vm(
        &mut self,
        connection_id: &str,
        session_id: &str,
        config_json: &str,
    ) -> Result<String, ClientError> {
        let payload = RequestPayload::CreateVmRequest(CreateVmRequest {
            runtime: GuestRuntimeKind::WebAssembly,
            config: config_json.to_owned(),
        });
        match self.request(OwnershipScope::session(connection_id, session_id), payload)? {
            ResponsePayload::VmCreatedResponse(response) => Ok(response.vm_id),
            _ => Err(ClientError::Unexpected("expected VmCreatedResponse")),
        }
    }

    pub fn dispose_vm(&mut self, connection_id: &str, session_id: &str, vm_id: &str) -> Result<(), ClientError> {
        let payload = RequestPayload::DisposeVmRequest(DisposeVmRequest { reason: DisposeReason::Requested });
        match self.request(OwnershipScope::vm(connection_id, session_id, vm_id), payload)? {
            ResponsePayload::VmDisposedResponse(_) => Ok(()),
            _ => Err(ClientError::Unexpected("expected VmDisposedResponse")),
        }
    }

    /// Closes stdin (the sidecar shuts down) and waits for the process to exit.
    pub fn close(mut self) -> Result<ExitStatus, ClientError> {
        drop(self.stdin.take());
        Ok(self.child.wait()?)
    }

    /// The child's process id (for signals in tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the sidecar to exit on its own.
    pub fn wait(mut self) -> Result<ExitStatus, ClientError> {
        Ok(self.child.wait()?)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Never leave an orphaned sidecar behind a failed test or an early return.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_frames(mut stdout: impl Read, sender: &mpsc::Sender<Decoded>) {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stdout.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                for item in decoder.feed(buffer.get(..n).unwrap_or_default()) {
                    if sender.send(item).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A one-line description of an event, for logs and the demo.
pub fn describe_event(event: &EventFrame) -> String {
    let vm = event.ownership.vm_id().unwrap_or("-");
    match &event.payload {
        EventPayload::VmLifecycleEvent(lifecycle) => format!("VM {vm} is {}", lifecycle.state.schema_name()),
        EventPayload::ProcessOutputEvent(output) => format!(
            "process {} wrote {} bytes to {}",
            output.process_id,
            output.chunk.len(),
            output.channel.schema_name()
        ),
        EventPayload::ProcessExitedEvent(exited) => {
            format!("process {} exited with {}", exited.process_id, exited.exit_code)
        }
        EventPayload::StructuredEvent(structured) => format!("{} {:?}", structured.name, structured.detail),
        EventPayload::ExtEnvelope(envelope) => {
            format!("{}: {}", envelope.namespace, String::from_utf8_lossy(&envelope.payload))
        }
    }
}
