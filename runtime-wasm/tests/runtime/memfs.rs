//! `MemFsHost`: a small in-memory filesystem behind the filesystem and polling methods of
//! `WasiHost`, with stdio, clocks and entropy served by a `StdioHost`.

use std::collections::BTreeMap;

use runtime_wasm::{
    ClockId, Dirent, Errno, Event, Fd, FdStat, Filestat, Filetype, GuestTask, Prestat, Runtime, RuntimeConfig,
    StdioHost, Subscription, SubscriptionKind, SysError, SysResult, TaskLimits, TaskState, WaitReason, WasiHost,
    Whence, FDFLAGS_APPEND, OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL, OFLAGS_TRUNC, RIGHTS_ALL, STDIN,
};

use crate::support::{Finished, MAX_POLLS};

/// The preopened root directory.
pub const ROOT: Fd = 3;

/// Every node's timestamps: `ino * TIME_STEP` (access), `+ 1` (modification), `+ 2` (change).
pub const TIME_STEP: u64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    ino: u64,
    node: Node,
}

#[derive(Debug, Clone)]
struct Open {
    path: Vec<u8>,
    position: u64,
    append: bool,
}

#[derive(Debug, Clone)]
pub struct MemFsHost {
    pub stdio: StdioHost,
    /// Nodes by path relative to the root (`b"dir/name"`); the root itself is `b""`.
    nodes: BTreeMap<Vec<u8>, Entry>,
    fds: BTreeMap<Fd, Open>,
    next_ino: u64,
    /// Most entries one `fd_readdir` call returns.
    pub readdir_batch: usize,
    /// `fd_readdir` calls served so far.
    pub readdir_calls: usize,
    /// `poll_oneoff` calls served so far.
    pub poll_calls: usize,
    /// What the last `poll_oneoff` call was given.
    pub last_subscriptions: Vec<Subscription>,
}

impl MemFsHost {
    pub fn new(args: &[&str]) -> MemFsHost {
        let mut nodes = BTreeMap::new();
        nodes.insert(Vec::new(), Entry { ino: 1, node: Node::Dir });
        let mut fds = BTreeMap::new();
        fds.insert(ROOT, Open { path: Vec::new(), position: 0, append: false });
        MemFsHost {
            stdio: StdioHost::new(args.iter().copied()).with_stdin(b""),
            nodes,
            fds,
            next_ino: 2,
            readdir_batch: usize::MAX,
            readdir_calls: 0,
            poll_calls: 0,
            last_subscriptions: Vec::new(),
        }
    }

    /// Adds (or replaces) a node; its parent must exist.
    pub fn with(mut self, path: &str, node: Node) -> MemFsHost {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(path.as_bytes().to_vec(), Entry { ino, node });
        self
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.as_bytes()).map(|entry| &entry.node)
    }

    pub fn open_fds(&self) -> Vec<Fd> {
        self.fds.keys().copied().collect()
    }

    fn open(&self, fd: Fd) -> Result<&Open, Errno> {
        self.fds.get(&fd).ok_or(Errno::Badf)
    }

    /// The path of `path` relative to the directory open at `dirfd`.
    fn resolve(&self, dirfd: Fd, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let base = &self.open(dirfd)?.path;
        match self.nodes.get(base) {
            Some(Entry { node: Node::Dir, .. }) => {}
            _ => return Err(Errno::NotDir),
        }
        if path.is_empty() {
            return Err(Errno::NoEnt);
        }
        if path.starts_with(b"/") || path.split(|b| *b == b'/').any(|part| part == b"..") {
            return Err(Errno::NotCapable);
        }
        Ok(if base.is_empty() { path.to_vec() } else { [base.as_slice(), b"/", path].concat() })
    }

    fn parent_is_dir(&self, path: &[u8]) -> bool {
        let parent = match path.iter().rposition(|b| *b == b'/') {
            Some(at) => &path[..at],
            None => b"",
        };
        matches!(self.nodes.get(parent), Some(Entry { node: Node::Dir, .. }))
    }

    fn stat(&self, path: &[u8]) -> Result<Filestat, Errno> {
        let entry = self.nodes.get(path).ok_or(Errno::NoEnt)?;
        let (filetype, size) = match &entry.node {
            Node::File(data) => (Filetype::RegularFile, data.len()),
            Node::Dir => (Filetype::Directory, 0),
            Node::Symlink(target) => (Filetype::SymbolicLink, target.len()),
        };
        let atim = entry.ino * TIME_STEP;
        Ok(Filestat {
            dev: 1,
            ino: entry.ino,
            filetype,
            nlink: 1,
            size: size as u64,
            atim,
            mtim: atim + 1,
            ctim: atim + 2,
        })
    }

    fn file_mut(&mut self, fd: Fd) -> Result<(&mut Vec<u8>, &mut Open), Errno> {
        let open = self.fds.get_mut(&fd).ok_or(Errno::Badf)?;
        match self.nodes.get_mut(&open.path).map(|entry| &mut entry.node) {
            Some(Node::File(data)) => Ok((data, open)),
            Some(Node::Dir) => Err(Errno::IsDir),
            _ => Err(Errno::Badf),
        }
    }

    fn children(&self, dir: &[u8]) -> Vec<(&[u8], &Entry)> {
        self.nodes
            .iter()
            .filter_map(|(path, entry)| {
                let name = if dir.is_empty() { path.as_slice() } else { path.strip_prefix(dir)?.strip_prefix(b"/")? };
                (!name.is_empty() && !name.contains(&b'/')).then_some((name, entry))
            })
            .collect()
    }
}

fn read_at(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

fn write_at(data: &mut Vec<u8>, bytes: &[u8], offset: u64) -> usize {
    let start = usize::try_from(offset).unwrap();
    if data.len() < start + bytes.len() {
        data.resize(start + bytes.len(), 0);
    }
    data[start..start + bytes.len()].copy_from_slice(bytes);
    bytes.len()
}

impl WasiHost for MemFsHost {
    fn args(&self) -> &[Vec<u8>] {
        self.stdio.args()
    }

    fn environ(&self) -> &[Vec<u8>] {
        self.stdio.environ()
    }

    fn clock_res_get(&mut self, clock: ClockId) -> Result<u64, Errno> {
        self.stdio.clock_res_get(clock)
    }

    fn clock_time_get(&mut self, clock: ClockId, precision_ns: u64) -> Result<u64, Errno> {
        self.stdio.clock_time_get(clock, precision_ns)
    }

    fn random_get(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        self.stdio.random_get(buf)
    }

    fn fd_write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        if fd < ROOT {
            return self.stdio.fd_write(fd, data);
        }
        let (file, open) = self.file_mut(fd)?;
        if open.append {
            open.position = file.len() as u64;
        }
        let written = write_at(file, data, open.position);
        open.position += written as u64;
        Ok(written)
    }

    fn fd_read(&mut self, fd: Fd, buf: &mut [u8]) -> SysResult<usize> {
        if fd < ROOT {
            return self.stdio.fd_read(fd, buf);
        }
        let (file, open) = self.file_mut(fd)?;
        let read = read_at(file, buf, open.position);
        open.position += read as u64;
        Ok(read)
    }

    fn fd_close(&mut self, fd: Fd) -> Result<(), Errno> {
        if fd < ROOT {
            return self.stdio.fd_close(fd);
        }
        self.fds.remove(&fd).map(drop).ok_or(Errno::Badf)
    }

    fn fd_fdstat_get(&mut self, fd: Fd) -> Result<FdStat, Errno> {
        if fd < ROOT {
            return self.stdio.fd_fdstat_get(fd);
        }
        let open = self.open(fd)?;
        let filetype = self.stat(&open.path)?.filetype;
        let flags = if open.append { FDFLAGS_APPEND } else { 0 };
        Ok(FdStat { filetype, flags, rights_base: RIGHTS_ALL, rights_inheriting: RIGHTS_ALL })
    }

    fn fd_prestat_get(&mut self, fd: Fd) -> Result<Prestat, Errno> {
        if fd == ROOT {
            Ok(Prestat { name_len: 1 })
        } else {
            Err(Errno::Badf)
        }
    }

    fn fd_prestat_dir_name(&mut self, fd: Fd) -> Result<Vec<u8>, Errno> {
        if fd == ROOT {
            Ok(b".".to_vec())
        } else {
            Err(Errno::Badf)
        }
    }

    fn path_open(
        &mut self,
        dirfd: Fd,
        _lookupflags: u32,
        path: &[u8],
        oflags: u16,
        _rights_base: u64,
        _rights_inheriting: u64,
        fdflags: u16,
    ) -> Result<Fd, Errno> {
        let path = self.resolve(dirfd, path)?;
        let parent_is_dir = self.parent_is_dir(&path);
        match self.nodes.get_mut(&path).map(|entry| &mut entry.node) {
            Some(_) if oflags & OFLAGS_CREAT != 0 && oflags & OFLAGS_EXCL != 0 => return Err(Errno::Exist),
            Some(Node::Symlink(_)) => return Err(Errno::Loop),
            Some(Node::File(_)) if oflags & OFLAGS_DIRECTORY != 0 => return Err(Errno::NotDir),
            Some(Node::File(data)) if oflags & OFLAGS_TRUNC != 0 => data.clear(),
            Some(_) => {}
            None if oflags & OFLAGS_CREAT != 0 && parent_is_dir => {
                let ino = self.next_ino;
                self.next_ino += 1;
                self.nodes.insert(path.clone(), Entry { ino, node: Node::File(Vec::new()) });
            }
            None => return Err(Errno::NoEnt),
        }
        let fd = (ROOT + 1..).find(|fd| !self.fds.contains_key(fd)).ok_or(Errno::Mfile)?;
        self.fds.insert(fd, Open { path, position: 0, append: fdflags & FDFLAGS_APPEND != 0 });
        Ok(fd)
    }

    fn fd_readdir(&mut self, fd: Fd, cookie: u64) -> Result<Vec<Dirent>, Errno> {
        self.readdir_calls += 1;
        let dir = self.open(fd)?.path.clone();
        if self.stat(&dir)?.filetype != Filetype::Directory {
            return Err(Errno::NotDir);
        }
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        Ok(self
            .children(&dir)
            .into_iter()
            .enumerate()
            .skip(start)
            .take(self.readdir_batch)
            .map(|(index, (name, entry))| Dirent {
                next: index as u64 + 1,
                ino: entry.ino,
                filetype: match entry.node {
                    Node::File(_) => Filetype::RegularFile,
                    Node::Dir => Filetype::Directory,
                    Node::Symlink(_) => Filetype::SymbolicLink,
                },
                name: name.to_vec(),
            })
            .collect())
    }

    fn fd_seek(&mut self, fd: Fd, offset: i64, whence: Whence) -> Result<u64, Errno> {
        if fd < ROOT {
            self.stdio.fd_fdstat_get(fd)?;
            return Err(Errno::Spipe);
        }
        let (file, open) = self.file_mut(fd)?;
        let base = match whence {
            Whence::Set => 0,
            Whence::Cur => open.position,
            Whence::End => file.len() as u64,
        };
        open.position = base.checked_add_signed(offset).ok_or(Errno::Inval)?;
        Ok(open.position)
    }

    // `fd_tell` is left to the default (`fd_seek(fd, 0, Cur)`).

    fn fd_filestat_get(&mut self, fd: Fd) -> Result<Filestat, Errno> {
        let path = self.open(fd)?.path.clone();
        self.stat(&path)
    }

    fn fd_filestat_set_size(&mut self, fd: Fd, size: u64) -> Result<(), Errno> {
        let (file, _) = self.file_mut(fd)?;
        file.resize(usize::try_from(size).map_err(|_| Errno::Fbig)?, 0);
        Ok(())
    }

    fn fd_pread(&mut self, fd: Fd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let (file, _) = self.file_mut(fd)?;
        Ok(read_at(file, buf, offset))
    }

    fn fd_pwrite(&mut self, fd: Fd, data: &[u8], offset: u64) -> SysResult<usize> {
        let (file, _) = self.file_mut(fd)?;
        Ok(write_at(file, data, offset))
    }

    fn path_filestat_get(&mut self, fd: Fd, _lookupflags: u32, path: &[u8]) -> Result<Filestat, Errno> {
        let path = self.resolve(fd, path)?;
        self.stat(&path)
    }

    fn path_create_directory(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let path = self.resolve(fd, path)?;
        if self.nodes.contains_key(&path) {
            return Err(Errno::Exist);
        }
        if !self.parent_is_dir(&path) {
            return Err(Errno::NoEnt);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(path, Entry { ino, node: Node::Dir });
        Ok(())
    }

    fn path_unlink_file(&mut self, fd: Fd, path: &[u8]) -> Result<(), Errno> {
        let path = self.resolve(fd, path)?;
        match self.nodes.get(&path).map(|entry| &entry.node) {
            None => Err(Errno::NoEnt),
            Some(Node::Dir) => Err(Errno::IsDir),
            Some(_) => self.nodes.remove(&path).map(drop).ok_or(Errno::NoEnt),
        }
    }

    fn path_symlink(&mut self, old_target: &[u8], fd: Fd, new_path: &[u8]) -> Result<(), Errno> {
        let path = self.resolve(fd, new_path)?;
        if self.nodes.contains_key(&path) {
            return Err(Errno::Exist);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(path, Entry { ino, node: Node::Symlink(old_target.to_vec()) });
        Ok(())
    }

    fn path_readlink(&mut self, fd: Fd, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let path = self.resolve(fd, path)?;
        match self.nodes.get(&path).map(|entry| &entry.node) {
            Some(Node::Symlink(target)) => Ok(target.clone()),
            Some(_) => Err(Errno::Inval),
            None => Err(Errno::NoEnt),
        }
    }

    /// Clocks fire at their (absolute) deadline; stdin is readable when it holds bytes or is at
    /// end-of-file; files are always ready; other descriptors get an `EBADF` event.
    fn poll_oneoff(&mut self, subscriptions: &[Subscription]) -> SysResult<Vec<Event>> {
        self.poll_calls += 1;
        self.last_subscriptions = subscriptions.to_vec();
        let mut events = Vec::new();
        let mut earliest: Option<u64> = None;
        let mut fd_waits = false;
        for sub in subscriptions {
            match sub.kind {
                SubscriptionKind::Clock { id, timeout_ns, absolute, .. } => {
                    assert!(absolute, "the runtime passes absolute deadlines");
                    let now = self.stdio.clock_time_get(id, 0)?;
                    if now >= timeout_ns {
                        events.push(sub.ready(0));
                    } else if id == ClockId::Monotonic {
                        earliest = Some(earliest.map_or(timeout_ns, |at| at.min(timeout_ns)));
                    }
                }
                SubscriptionKind::FdRead(STDIN) => match self.stdio.stdin_pending() {
                    0 if self.stdin_closed() => events.push(Event { hangup: true, ..sub.ready(0) }),
                    0 => fd_waits = true,
                    pending => events.push(sub.ready(pending as u64)),
                },
                SubscriptionKind::FdRead(fd) | SubscriptionKind::FdWrite(fd) => {
                    if self.fds.contains_key(&fd) {
                        events.push(sub.ready(0));
                    } else {
                        events.push(sub.failed(Errno::Badf));
                    }
                }
            }
        }
        match (events.is_empty(), earliest) {
            (false, _) => Ok(events),
            (true, Some(until_ns)) if !fd_waits => Err(SysError::WouldBlock(WaitReason::Sleep { until_ns })),
            (true, _) => Err(SysError::WouldBlock(WaitReason::Poll)),
        }
    }
}

impl MemFsHost {
    /// Whether stdin reads end-of-file once drained (probed with an empty read).
    fn stdin_closed(&mut self) -> bool {
        self.stdio.fd_read(STDIN, &mut [0u8; 1][..0]) == Ok(0)
    }
}

pub fn compile(wasm: &[u8]) -> runtime_wasm::Program<MemFsHost> {
    Runtime::new(RuntimeConfig::default()).unwrap().compile(wasm).unwrap()
}

pub fn spawn(wasm: &[u8], host: MemFsHost) -> GuestTask<MemFsHost> {
    compile(wasm).spawn(host, TaskLimits::default()).unwrap()
}

/// Polls until the guest stops; a guest that blocks fails the test.
pub fn run_to_end(task: &mut GuestTask<MemFsHost>) -> Finished {
    for _ in 0..MAX_POLLS {
        match task.poll() {
            TaskState::Running => {}
            TaskState::Pending(reason) => panic!("guest blocked on {reason:?}"),
            TaskState::Ready(status) => {
                let host = task.host();
                return Finished {
                    status,
                    stdout: host.stdio.stdout().to_vec(),
                    stderr: host.stdio.stderr().to_vec(),
                    usage: task.usage(),
                };
            }
        }
    }
    panic!("guest still running after {MAX_POLLS} polls");
}

/// Runs `wasm` against `host` to the end, returning what it left and the host.
pub fn run(wasm: &[u8], host: MemFsHost) -> (Finished, MemFsHost) {
    let mut task = spawn(wasm, host);
    let out = run_to_end(&mut task);
    let host = task.host().clone();
    (out, host)
}
