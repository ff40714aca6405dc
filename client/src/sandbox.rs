//! One sandbox: a sidecar child process with one VM, and the calls people make on it (files,
//! processes with streamed stdin and output, a deadline). The `run` command, the CLI and the
//! SDKs are thin layers over this.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use schema::wire::*;

use crate::{Client, ClientError};

/// How long to wait for the next event before looking at stdin and the deadline again.
const EVENT_POLL: Duration = Duration::from_millis(5);
/// The signal a process past its deadline gets.
const DEADLINE_SIGNAL: &str = "SIGKILL";
/// How long an `Execute` may wait for its answer: a cold compile of the Python interpreter takes
/// 2 to 4 minutes on 2 cores (see `docs/processes.md`), twice that leaves room for a busy
/// machine. Other requests keep the client's usual timeout.
pub const EXECUTE_RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);

/// What starts a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The `secure-exec-sidecar` binary.
    pub sidecar: PathBuf,
    /// Its command-line flags (`--record`, `--max-memory`, ...).
    pub sidecar_args: Vec<String>,
    /// The CreateVm config (JSON).
    pub config: String,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Its exit status (128 + the signal when a signal ended it).
    pub code: i32,
    /// It was still running at its deadline and was killed.
    pub timed_out: bool,
}

/// A process to run: what Execute starts, its stdin, and when to give up on it.
#[derive(Debug)]
pub struct RunRequest {
    pub execute: ExecuteRequest,
    /// Chunks for its stdin, closed when the channel is; `None`: stdin closed at once.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Killed (`SIGKILL`) when still running then.
    pub deadline: Option<Instant>,
}

/// A sidecar child with one VM.
#[derive(Debug)]
pub struct Sandbox {
    client: Client,
    connection: String,
    session: String,
    vm: String,
}

impl Sandbox {
    /// Spawns the sidecar, authenticates, opens a session and creates the VM.
    pub fn start(options: &SandboxOptions) -> Result<Self, ClientError> {
        let args: Vec<&str> = options.sidecar_args.iter().map(String::as_str).collect();
        let mut client = Client::spawn(&options.sidecar, &args)?;
        let connection = client.authenticate("sandbox", "sandbox")?.connection_id;
        let session = client.open_session(&connection)?;
        let vm = client.create_vm(&connection, &session, &options.config)?;
        Ok(Self { client, connection, session, vm })
    }

    pub fn scope(&self) -> OwnershipScope {
        OwnershipScope::vm(self.connection.clone(), self.session.clone(), self.vm.clone())
    }

    /// Sends a request about the VM; a rejection is [`ClientError::Rejected`].
    pub fn request(&mut self, payload: RequestPayload) -> Result<ResponsePayload, ClientError> {
        let scope = self.scope();
        self.client.request(scope, payload)
    }

    /// Mounts and software (ConfigureVm).
    pub fn configure(&mut self, configure: ConfigureVmRequest) -> Result<(), ClientError> {
        self.request(RequestPayload::ConfigureVmRequest(configure)).map(drop)
    }

    /// Creates or replaces a file of the VM (its parent directories made as needed).
    pub fn write_file(&mut self, path: &str, content: &[u8]) -> Result<(), ClientError> {
        let write = GuestFilesystemCallRequest {
            content: Some(base64::engine::general_purpose::STANDARD.encode(content)),
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, path)
        };
        self.request(RequestPayload::GuestFilesystemCallRequest(write)).map(drop)
    }

    /// A filesystem call on the VM (anything `GuestFilesystemCallRequest` does).
    pub fn filesystem(&mut self, call: GuestFilesystemCallRequest) -> Result<ResponsePayload, ClientError> {
        self.request(RequestPayload::GuestFilesystemCallRequest(call))
    }

    /// Runs a process to its end: stdin fed as it comes, each output chunk handed to `output`
    /// as it arrives.
    pub fn run(
        &mut self,
        request: RunRequest,
        output: &mut dyn FnMut(StreamChannel, &[u8]),
    ) -> Result<Exit, ClientError> {
        let process_id = request.execute.process_id.clone();
        self.execute(request.execute)?;
        let mut stdin = request.stdin;
        if stdin.is_none() {
            self.close_stdin(&process_id)?;
        }
        let mut timed_out = false;
        loop {
            if let Some(chunks) = &stdin {
                if !self.feed_stdin(&process_id, chunks)? {
                    stdin = None;
                }
            }
            if !timed_out && request.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                timed_out = true;
                self.kill(&process_id, DEADLINE_SIGNAL)?;
            }
            let event = match self.client.next_event(EVENT_POLL) {
                Ok(event) => event,
                Err(ClientError::Timeout(_)) => continue,
                Err(error) => return Err(error),
            };
            match event.payload {
                EventPayload::ProcessOutputEvent(out) if out.process_id == process_id => {
                    output(out.channel, &out.chunk)
                }
                EventPayload::ProcessExitedEvent(exited) if exited.process_id == process_id => {
                    return Ok(Exit { code: exited.exit_code, timed_out });
                }
                _ => {}
            }
        }
    }

    /// Starts a process (its events then come from [`next_event`](Self::next_event)).
    pub fn execute(&mut self, execute: ExecuteRequest) -> Result<(), ClientError> {
        // An Execute is answered once its program is compiled: minutes for a large one (the
        // 99 MB Python interpreter) the first time on a machine, before its compiled module is
        // cached.
        let usual = std::mem::replace(&mut self.client.timeout, EXECUTE_RESPONSE_TIMEOUT);
        let answered = self.request(RequestPayload::ExecuteRequest(execute)).map(drop);
        self.client.timeout = usual;
        answered
    }

    /// Feeds a process's stdin; `false` when the process has already ended.
    pub fn write_stdin(&mut self, process_id: &str, chunk: Vec<u8>) -> Result<bool, ClientError> {
        let write = WriteStdinRequest { process_id: process_id.to_owned(), chunk };
        ignore_gone(self.request(RequestPayload::WriteStdinRequest(write)))
    }

    /// Closes a process's stdin (nothing happens when it has already ended).
    pub fn close_stdin(&mut self, process_id: &str) -> Result<(), ClientError> {
        let close = CloseStdinRequest { process_id: process_id.to_owned() };
        ignore_gone(self.request(RequestPayload::CloseStdinRequest(close))).map(drop)
    }

    /// Sends a signal (`SIGKILL`, `SIGTERM`, ...) to a process; `false` when it already ended.
    pub fn kill(&mut self, process_id: &str, signal: &str) -> Result<bool, ClientError> {
        let kill = KillProcessRequest { process_id: process_id.to_owned(), signal: signal.to_owned() };
        ignore_gone(self.request(RequestPayload::KillProcessRequest(kill)))
    }

    /// The next event of any process, waiting at most `timeout`; `None` when none came.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<EventPayload>, ClientError> {
        match self.client.next_event(timeout) {
            Ok(event) => Ok(Some(event.payload)),
            Err(ClientError::Timeout(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A file of the VM, whole.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>, ClientError> {
        let read = GuestFilesystemCallRequest {
            encoding: Some(RootFilesystemEntryEncoding::Base64),
            ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::ReadFile, path)
        };
        match self.filesystem(read)? {
            ResponsePayload::GuestFilesystemResultResponse(result) => {
                let content = result.content.unwrap_or_default();
                match result.encoding {
                    Some(RootFilesystemEntryEncoding::Utf8) => Ok(content.into_bytes()),
                    _ => base64::engine::general_purpose::STANDARD
                        .decode(content)
                        .map_err(|_| ClientError::Unexpected("file content that is not base64")),
                }
            }
            _ => Err(ClientError::Unexpected("expected GuestFilesystemResultResponse")),
        }
    }

    /// Sends what stdin has ready; `false` once it is closed (or the process is gone).
    fn feed_stdin(&mut self, process_id: &str, chunks: &mpsc::Receiver<Vec<u8>>) -> Result<bool, ClientError> {
        loop {
            match chunks.try_recv() {
                Ok(chunk) => {
                    if !self.write_stdin(process_id, chunk)? {
                        return Ok(false);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return Ok(true),
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.close_stdin(process_id)?;
                    return Ok(false);
                }
            }
        }
    }

    /// Disposes of the VM and stops the sidecar.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.client.dispose_vm(&self.connection, &self.session, &self.vm)?;
        self.client.close().map(drop)
    }
}

/// What `reader` (this process's stdin, say) gives, in chunks of at most `chunk_bytes`, read on
/// a thread of its own (a read blocks), for [`RunRequest::stdin`]; the channel closes at its end
/// or on a read error. At most four chunks wait unsent, so a guest that does not read holds
/// back the reader instead of filling memory.
pub fn chunks_of<R: std::io::Read + Send + 'static>(mut reader: R, chunk_bytes: usize) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; chunk_bytes.max(1)];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    if sender.send(buf.get(..read).unwrap_or_default().to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

/// A request about a process that already ended is refused (`invalid_state`): its exit event
/// is on its way, so that is not an error here. `Ok(false)` then.
fn ignore_gone(result: Result<ResponsePayload, ClientError>) -> Result<bool, ClientError> {
    match result {
        Ok(_) => Ok(true),
        Err(ClientError::Rejected { code, .. }) if code == "invalid_state" => Ok(false),
        Err(error) => Err(error),
    }
}
