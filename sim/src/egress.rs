//! The simulated sidecar's network: the kernel's network effects (`NetConnect`, `NetSend`,
//! `NetRecv`, `NetTls`, `NetClose`) performed on turmoil, as the stdio driver performs them on
//! real sockets (`transport/src/egress`).
//!
//! The host's loopback (`127.0.0.1:P`, `::1`) is the turmoil host [`WEB_HOST`] on port `P`;
//! every other destination has no route (`ENETUNREACH`). Each link is one task that owns its
//! stream and takes the link's effects from a channel, in the order the kernel asked for them;
//! completions go back to the host's loop as [`HostEvent::Net`]. Semantics mirrored from the
//! stdio driver: a send completes once every byte is written (then the writing side is shut if
//! `fin`); a receive once at least one byte (or the end of the stream) arrived; a close sends
//! what is still queued within [`LINGER`], drops the socket, fails the link's other waiting
//! effects and completes `NetClosed`; an effect on an unknown link fails (`NetClose`: closed).
//! There is no TLS here (a handshake fails with `EPROTO`); names and datagrams are answered as
//! a driver without a network answers them ([`Effect::perform`]).
//!
//! A fault that drops the path's packets ([`Egress::cut_all`]) resets every link open at the
//! time: turmoil does not retransmit lost segments, so such a stream could never go on; a TCP
//! stack whose segments go unacknowledged ends the connection too.

use crate::host::HostEvent;
use crate::timers::Timers;
use crate::web::WEB_HOST;
use core::net::SocketAddr;
use kernel::host::effect::{Completion, Effect, EffectId, LinkId, NetFailure};
use kernel::vfs::Errno;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::TcpStream;

/// How long a closed link may take to send what it was handed (the stdio driver's bound).
pub const LINGER: Duration = Duration::from_secs(5);

/// One effect for a link's task.
#[derive(Debug)]
enum Command {
    Send {
        id: EffectId,
        bytes: Vec<u8>,
        fin: bool,
    },
    Recv {
        id: EffectId,
        max_bytes: usize,
    },
    Tls {
        id: EffectId,
    },
    Close {
        id: EffectId,
    },
    /// The path dropped the link's packets: it is reset.
    Cut,
}

/// Every link of the simulated driver.
#[derive(Debug)]
pub struct Egress {
    /// Open links (until their `NetClose` is taken), each with its task's channel.
    links: BTreeMap<LinkId, mpsc::UnboundedSender<Command>>,
    /// Effects taken and not yet completed.
    in_flight: BTreeSet<EffectId>,
    /// `NetClose` effects taken and not completed, with their links.
    closes: BTreeMap<EffectId, LinkId>,
    /// The links whose tasks run (a task owns its socket, so these are the sockets too).
    tasks: Rc<RefCell<BTreeSet<LinkId>>>,
    events: mpsc::UnboundedSender<HostEvent>,
    timers: Timers,
}

/// Marks a link's task as running while it lives.
struct TaskGuard(Rc<RefCell<BTreeSet<LinkId>>>, LinkId);

impl TaskGuard {
    fn new(tasks: &Rc<RefCell<BTreeSet<LinkId>>>, link: LinkId) -> Self {
        tasks.borrow_mut().insert(link);
        Self(tasks.clone(), link)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.borrow_mut().remove(&self.1);
    }
}

fn failure(errno: Errno, reason: impl Into<String>) -> NetFailure {
    NetFailure::new(errno, reason)
}

/// The errno a turmoil socket error means to a guest, as the stdio driver maps its errors.
fn io_failure(error: &io::Error) -> NetFailure {
    transport::egress::io_failure(error)
}

/// The completion that fails a command's effect with `failed` (a close just completes; a cut
/// is no effect).
fn failed(command: &Command, failed: NetFailure) -> Option<(EffectId, Completion)> {
    match command {
        Command::Send { id, .. } => Some((*id, Completion::NetSent(Err(failed)))),
        Command::Recv { id, .. } => Some((*id, Completion::NetReceived(Err(failed)))),
        Command::Tls { id } => Some((*id, Completion::NetTlsReady(Err(failed)))),
        Command::Close { id } => Some((*id, Completion::NetClosed)),
        Command::Cut => None,
    }
}

impl Egress {
    pub fn new(events: mpsc::UnboundedSender<HostEvent>, timers: Timers) -> Self {
        Self {
            links: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            closes: BTreeMap::new(),
            tasks: Rc::new(RefCell::new(BTreeSet::new())),
            events,
            timers,
        }
    }

    /// Link tasks still running.
    pub fn tasks(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Effects taken and not completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A completion arrived, before the kernel is given it: `Err` says why it breaks the
    /// contract (a second completion, one nobody asked for, or a close completed while the
    /// link's task, and so its socket, still lives).
    pub fn completed(&mut self, id: EffectId) -> Result<(), String> {
        if !self.in_flight.remove(&id) {
            return Err(format!("network effect {} completed twice, or never asked for", id.0));
        }
        match self.closes.remove(&id) {
            Some(link) if self.tasks.borrow().contains(&link) => {
                Err(format!("link {link:?} closed (effect {}) while its task and socket live on", id.0))
            }
            _ => Ok(()),
        }
    }

    fn complete(&self, id: EffectId, completion: Completion) {
        let _ = self.events.send(HostEvent::Net(id, completion));
    }

    /// Takes one network effect; its completion comes back as a [`HostEvent::Net`] (those
    /// answered at once too, so every completion is fed the same way). An effect this driver
    /// does not simulate (names, datagrams) is handed back, for [`Egress::answer`].
    pub fn submit(&mut self, id: EffectId, effect: Effect) -> Option<Effect> {
        self.in_flight.insert(id);
        let (link, command) = match effect {
            Effect::NetConnect { link, to } => {
                self.connect(id, link, to);
                return None;
            }
            Effect::NetSend { link, bytes, fin } => (link, Command::Send { id, bytes, fin }),
            Effect::NetRecv { link, max_bytes } => {
                (link, Command::Recv { id, max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX).max(1) })
            }
            Effect::NetTls { link, .. } => (link, Command::Tls { id }),
            Effect::NetClose { link } => {
                self.closes.insert(id, link);
                match self.links.remove(&link) {
                    Some(task) => self.send(task, Command::Close { id }),
                    None => self.complete(id, Completion::NetClosed),
                }
                return None;
            }
            other => return Some(other),
        };
        match self.links.get(&link).cloned() {
            Some(task) => self.send(task, command),
            None => {
                if let Some((id, completion)) = failed(&command, failure(Errno::ENOTCONN, "no such connection")) {
                    self.complete(id, completion);
                }
            }
        }
        None
    }

    /// Answers a network effect taken with [`Egress::submit`] at once.
    pub fn answer(&self, id: EffectId, completion: Completion) {
        self.complete(id, completion);
    }

    /// Hands `command` to a link's task (which runs until it takes its close).
    fn send(&self, task: mpsc::UnboundedSender<Command>, command: Command) {
        if let Err(mpsc::error::SendError(command)) = task.send(command) {
            if let Some((id, completion)) = failed(&command, failure(Errno::ECONNABORTED, "the link's task is gone")) {
                self.complete(id, completion);
            }
        }
    }

    fn connect(&mut self, id: EffectId, link: LinkId, to: SocketAddr) {
        if self.links.contains_key(&link) {
            let failed = failure(Errno::EISCONN, "the link is already open");
            return self.complete(id, Completion::NetConnected(Err(failed)));
        }
        if !to.ip().to_canonical().is_loopback() {
            let failed = failure(Errno::ENETUNREACH, format!("the simulation has no route to {to}"));
            return self.complete(id, Completion::NetConnected(Err(failed)));
        }
        let target = SocketAddr::new(turmoil::lookup(WEB_HOST), to.port());
        let (commands, inbox) = mpsc::unbounded_channel();
        self.links.insert(link, commands);
        let task = Link::new(self.events.clone(), self.timers.clone(), TaskGuard::new(&self.tasks, link));
        tokio::task::spawn_local(task.run(target, id, inbox));
    }

    /// The path dropped its packets: every open link is reset.
    pub fn cut_all(&self) {
        for task in self.links.values() {
            let _ = task.send(Command::Cut);
        }
    }
}

/// A send waiting to be written.
#[derive(Debug)]
struct Send {
    id: EffectId,
    bytes: Vec<u8>,
    written: usize,
    fin: bool,
}

/// One link's task: owns its socket until the link's close.
struct Link {
    events: mpsc::UnboundedSender<HostEvent>,
    reader: Option<OwnedReadHalf>,
    writer: Option<OwnedWriteHalf>,
    /// The link failed: every later effect fails with this.
    failed: Option<NetFailure>,
    write_shut: bool,
    sends: VecDeque<Send>,
    receive: Option<(EffectId, usize)>,
    buffer: Vec<u8>,
    /// The close, and when lingering gives up.
    closing: Option<(EffectId, tokio::time::Instant)>,
    timers: Timers,
    _guard: TaskGuard,
}

impl Link {
    fn new(events: mpsc::UnboundedSender<HostEvent>, timers: Timers, guard: TaskGuard) -> Self {
        Self {
            events,
            timers,
            reader: None,
            writer: None,
            failed: None,
            write_shut: false,
            sends: VecDeque::new(),
            receive: None,
            buffer: Vec::new(),
            closing: None,
            _guard: guard,
        }
    }

    fn done(&self, id: EffectId, completion: Completion) {
        let _ = self.events.send(HostEvent::Net(id, completion));
    }

    async fn run(mut self, target: SocketAddr, connect: EffectId, mut commands: mpsc::UnboundedReceiver<Command>) {
        // Connecting: the kernel asks nothing else of the link before its connect completes
        // but a close (its own timeout); a cut resets it.
        let connecting = TcpStream::connect(target);
        tokio::pin!(connecting);
        let mut early = VecDeque::new();
        let outcome = loop {
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Cut) => break Err(failure(Errno::ECONNRESET, "the path dropped the connection")),
                    Some(Command::Close { id }) => {
                        self.done(connect, Completion::NetConnected(Err(failure(Errno::ECONNABORTED, "closed while connecting"))));
                        early.push_back(Command::Close { id });
                        break Err(failure(Errno::ECONNABORTED, "closed while connecting"));
                    }
                    Some(other) => early.push_back(other),
                },
                result = &mut connecting => break result.map_err(|error| io_failure(&error)),
            }
        };
        match outcome {
            Ok(stream) => {
                let (reader, writer) = stream.into_split();
                self.reader = Some(reader);
                self.writer = Some(writer);
                self.done(connect, Completion::NetConnected(Ok(())));
            }
            // A close while connecting has answered the connect already.
            Err(failed) if early.iter().any(|command| matches!(command, Command::Close { .. })) => {
                self.failed = Some(failed);
            }
            Err(failed) => {
                self.done(connect, Completion::NetConnected(Err(failed.clone())));
                self.failed = Some(failed);
            }
        }
        for command in early {
            self.take(command);
        }
        // The host drops its end of the channel when it hands over the close.
        let mut listening = true;
        loop {
            if self.finish_if_closed() {
                return;
            }
            let can_write = self.failed.is_none() && !self.sends.is_empty();
            let can_read = self.failed.is_none() && self.receive.is_some();
            let max = self.receive.map_or(0, |(_, max)| max);
            if self.buffer.len() < max {
                self.buffer.resize(max, 0);
            }
            let pending = self.sends.front().map(|send| send.bytes.get(send.written..).unwrap_or_default());
            let linger = self.closing.map(|(_, until)| until);
            tokio::select! {
                biased;
                command = commands.recv(), if listening => match command {
                    Some(command) => self.take(command),
                    None => listening = false,
                },
                result = write_some(self.writer.as_mut(), pending.unwrap_or_default()), if can_write => {
                    self.wrote(result).await;
                }
                result = read_some(self.reader.as_mut(), self.buffer.get_mut(..max).unwrap_or_default()), if can_read => {
                    self.read(result);
                }
                () = sleep_until(&self.timers, linger), if linger.is_some() => {
                    self.fail(failure(Errno::ECONNABORTED, "the connection was closed before it sent everything"));
                }
                // Nothing can happen any more: the host is gone (the simulation ended).
                else => return,
            }
        }
    }

    /// A command from the host.
    fn take(&mut self, command: Command) {
        if let Command::Cut = command {
            self.fail(failure(Errno::ECONNRESET, "the path dropped the connection"));
            return;
        }
        if let Command::Close { id } = command {
            self.closing = Some((id, tokio::time::Instant::now() + LINGER));
            return;
        }
        if let Some(failed) = self.failed.clone() {
            if let Some((id, completion)) = self::failed(&command, failed) {
                self.done(id, completion);
            }
            return;
        }
        match command {
            Command::Send { id, .. } if self.write_shut => {
                self.done(id, Completion::NetSent(Err(failure(Errno::EPIPE, "the writing side is shut"))));
            }
            Command::Send { id, bytes, fin } => self.sends.push_back(Send { id, bytes, written: 0, fin }),
            Command::Recv { id, max_bytes } => self.receive = Some((id, max_bytes)),
            Command::Tls { id } => {
                self.done(id, Completion::NetTlsReady(Err(failure(Errno::EPROTO, "no TLS in the simulation"))));
            }
            Command::Close { .. } | Command::Cut => {}
        }
    }

    async fn wrote(&mut self, result: io::Result<usize>) {
        let written = match result {
            Ok(0) if self.sends.front().is_some_and(|send| send.written < send.bytes.len()) => {
                return self.fail(failure(Errno::EPIPE, "the socket took nothing"));
            }
            Ok(written) => written,
            Err(error) => return self.fail(io_failure(&error)),
        };
        let Some(send) = self.sends.front_mut() else { return };
        send.written = send.written.saturating_add(written);
        if send.written < send.bytes.len() {
            return;
        }
        let fin = send.fin;
        let id = send.id;
        self.sends.pop_front();
        if fin {
            if let Some(writer) = self.writer.as_mut() {
                let _ = writer.shutdown().await;
            }
            self.write_shut = true;
        }
        self.done(id, Completion::NetSent(Ok(())));
    }

    fn read(&mut self, result: io::Result<usize>) {
        let Some((id, _)) = self.receive else { return };
        match result {
            Ok(read) => {
                self.receive = None;
                let bytes = self.buffer.get(..read).unwrap_or_default().to_vec();
                self.done(id, Completion::NetReceived(Ok(bytes)));
            }
            Err(error) => self.fail(io_failure(&error)),
        }
    }

    /// The link is dead: its socket goes, and what waits on it fails.
    fn fail(&mut self, failed: NetFailure) {
        self.reader = None;
        self.writer = None;
        for send in std::mem::take(&mut self.sends) {
            self.done(send.id, Completion::NetSent(Err(failed.clone())));
        }
        if let Some((id, _)) = self.receive.take() {
            self.done(id, Completion::NetReceived(Err(failed.clone())));
        }
        self.failed.get_or_insert(failed);
    }

    /// Ends the link once its close may: everything sent (or the link failed). The socket
    /// goes before the close completes.
    fn finish_if_closed(&mut self) -> bool {
        let Some((id, _)) = self.closing else { return false };
        if !self.sends.is_empty() && self.failed.is_none() {
            return false;
        }
        self.fail(failure(Errno::ECONNABORTED, "the connection was closed"));
        self.done(id, Completion::NetClosed);
        true
    }
}

async fn write_some(writer: Option<&mut OwnedWriteHalf>, bytes: &[u8]) -> io::Result<usize> {
    match writer {
        Some(writer) => writer.write(bytes).await,
        None => std::future::pending().await,
    }
}

async fn read_some(reader: Option<&mut OwnedReadHalf>, buffer: &mut [u8]) -> io::Result<usize> {
    match reader {
        Some(reader) => reader.read(buffer).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(timers: &Timers, deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => timers.sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
