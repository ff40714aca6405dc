//! Descriptors and streams: reads and writes on files, pipes and the standard streams,
//! duplication, pipes, seeking and readiness.

use std::sync::LazyLock;

use super::*;
use crate::process::{ROOT_FD, SIGPIPE};

/// The hidden alias of the root preopen (see [`HIDDEN_PREOPEN_TAG`]). The kernel's one preopen
/// is `/`, placed at [`ROOT_FD`] in every process that is not `ISOLATED`, so the alias follows
/// from the process's tier and needs no state of its own: closing or replacing the visible fd 3
/// cannot reach it, and children and exec'd images have it as their tier says.
static ROOT_PREOPEN_ALIAS: LazyLock<Descriptor> = LazyLock::new(|| Descriptor::preopen("/".to_owned(), "/".to_owned()));

/// The preopen a descriptor number names if it is a hidden alias: the tag bit set, below
/// `0x8000_0000` (the top numbers are the [`CWD_FDS`] sentinels, not aliases).
pub(super) fn hidden_preopen(fd: u32) -> Option<u32> {
    (fd & HIDDEN_PREOPEN_TAG != 0 && fd < 0x8000_0000).then_some(fd & !HIDDEN_PREOPEN_TAG)
}

impl Syscalls {
    /// The descriptor `fd` names, to look at: an open one, or a hidden preopen alias. Calls that
    /// change a descriptor look in the table itself, where no alias is (`EBADF`).
    pub(super) fn descriptor(&self, fd: u32) -> Result<&Descriptor, Errno> {
        let process = self.process()?;
        match hidden_preopen(fd) {
            None => process.fds.get(fd),
            Some(ROOT_FD) if process.tier != WasmPermissionTier::Isolated => Ok(&ROOT_PREOPEN_ALIAS),
            Some(_) => Err(Errno::EBADF),
        }
    }

    /// Writes to `fd`; returns the bytes accepted.
    pub fn write(&mut self, fd: u32, data: &[u8]) -> SysResult<usize> {
        let offset = None;
        self.write_at(fd, data, offset)
    }

    /// Writes at `offset` without moving the descriptor's position.
    pub fn pwrite(&mut self, fd: u32, data: &[u8], offset: u64) -> SysResult<usize> {
        self.write_at(fd, data, Some(offset))
    }

    /// Reads from `fd` into `buf`; `Ok(0)` is end-of-file.
    pub fn read(&mut self, fd: u32, buf: &mut [u8]) -> SysResult<usize> {
        self.read_at(fd, buf, None)
    }

    /// Reads at `offset` without moving the descriptor's position.
    pub fn pread(&mut self, fd: u32, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        self.read_at(fd, buf, Some(offset))
    }

    pub fn close(&mut self, fd: u32) -> Result<(), Errno> {
        let closed = self.process_mut()?.fds.close(fd)?;
        self.release(&closed);
        Ok(())
    }

    /// Moves `from` to `to` (closing what `to` held).
    pub fn renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        let replaced = self.process_mut()?.fds.renumber(from, to)?;
        self.release(&replaced);
        Ok(())
    }

    /// A new descriptor (the lowest free number) for what `fd` refers to.
    pub fn dup(&mut self, fd: u32) -> Result<u32, Errno> {
        let max_open_fds = self.vm.process_limits().max_open_fds;
        let descriptor = self.process()?.fds.get(fd)?.clone();
        let new_fd = self.process_mut()?.fds.insert(descriptor.clone(), max_open_fds)?;
        self.retain(&descriptor);
        Ok(new_fd)
    }

    /// `new_fd` refers to what `old_fd` does (closing what `new_fd` held first).
    pub fn dup2(&mut self, old_fd: u32, new_fd: u32) -> Result<(), Errno> {
        if hidden_preopen(new_fd).is_some() {
            // The alias numbers are not the table's to fill (and a number there would shadow
            // nothing: lookups of an alias never reach the table).
            return Err(Errno::EBADF);
        }
        let descriptor = self.process()?.fds.get(old_fd)?.clone();
        if old_fd == new_fd {
            return Ok(());
        }
        let max_open_fds = self.vm.process_limits().max_open_fds;
        let process = self.process_mut()?;
        if process.fds.get(new_fd).is_err() && u64::try_from(process.fds.len()).unwrap_or(u64::MAX) >= max_open_fds {
            return Err(Errno::EMFILE);
        }
        let replaced = process.fds.replace(new_fd, descriptor.clone());
        self.retain(&descriptor);
        if let Some(replaced) = replaced {
            self.release(&replaced);
        }
        Ok(())
    }

    /// A new pipe: `(read end, write end)`.
    pub fn pipe(&mut self) -> Result<(u32, u32), Errno> {
        let limits = self.vm.process_limits();
        let (max_pipes, max_open_fds) = (limits.max_pipes, limits.max_open_fds);
        if u64::try_from(self.vm.processes().pipe_count()).unwrap_or(u64::MAX) >= max_pipes {
            return Err(Errno::EMFILE);
        }
        let open_fds = self.process()?.fds.len();
        if u64::try_from(open_fds.saturating_add(2)).unwrap_or(u64::MAX) > max_open_fds {
            return Err(Errno::EMFILE);
        }
        let id = self.vm.processes_mut().pipes.create();
        let end = |end| Descriptor {
            file: OpenFile::Pipe { id, end },
            readable: end == End::Read,
            writable: end == End::Write,
            append: false,
            nonblocking: false,
            sync: SyncFlags::default(),
        };
        let process = self.process_mut()?;
        let read = process.fds.insert(end(End::Read), u64::MAX)?;
        let write = process.fds.insert(end(End::Write), u64::MAX)?;
        Ok((read, write))
    }

    /// Another descriptor holds what `descriptor` refers to.
    pub(super) fn retain(&mut self, descriptor: &Descriptor) {
        self.vm.processes_mut().file_opened(&descriptor.file);
    }

    /// A descriptor was closed.
    pub(super) fn release(&mut self, descriptor: &Descriptor) {
        self.vm.processes_mut().file_closed(&descriptor.file);
        self.vm.release_files();
    }

    /// Describes `fd`.
    pub fn fd_info(&self, fd: u32) -> Result<FdInfo, Errno> {
        let descriptor = self.descriptor(fd)?;
        let kind = match &descriptor.file {
            OpenFile::Stdin { .. }
            | OpenFile::Stdout { .. }
            | OpenFile::Stderr { .. }
            | OpenFile::File { device: true, .. } => FdKind::CharacterDevice,
            OpenFile::Directory { .. } => FdKind::Directory,
            OpenFile::File { device: false, .. } => FdKind::RegularFile,
            OpenFile::Pipe { .. } => FdKind::Pipe,
            OpenFile::Socket { id } => match self.vm.processes().net.transport(*id) {
                Some(crate::net::Transport::Datagram) => FdKind::SocketDatagram,
                _ => FdKind::SocketStream,
            },
        };
        let stdio =
            matches!(descriptor.file, OpenFile::Stdin { .. } | OpenFile::Stdout { .. } | OpenFile::Stderr { .. });
        Ok(FdInfo {
            kind,
            stdio,
            readable: descriptor.readable,
            writable: descriptor.writable,
            append: descriptor.append,
            nonblocking: descriptor.nonblocking,
            sync: descriptor.sync,
        })
    }

    /// Sets the descriptor's append and non-blocking modes. A directory has neither (`EBADF`,
    /// as wasmtime answers). The host's standard streams cannot be made append-only (`EBADF`)
    /// but can be made non-blocking, as on POSIX (wasmtime refuses that too; programs that poll
    /// stdin need it).
    pub fn set_flags(&mut self, fd: u32, append: bool, nonblocking: bool) -> Result<(), Errno> {
        let descriptor = self.process_mut()?.fds.get_mut(fd)?;
        let stdio =
            matches!(descriptor.file, OpenFile::Stdin { .. } | OpenFile::Stdout { .. } | OpenFile::Stderr { .. });
        if matches!(descriptor.file, OpenFile::Directory { .. }) || (stdio && append) {
            return Err(Errno::EBADF);
        }
        descriptor.append = append;
        descriptor.nonblocking = nonblocking;
        Ok(())
    }

    /// The guest-visible name of a preopened directory (`/`), or `EBADF`.
    pub fn preopen_name(&self, fd: u32) -> Result<String, Errno> {
        match &self.descriptor(fd)?.file {
            OpenFile::Directory { preopen: Some(name), .. } => Ok(name.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    /// Moves the position of `fd`; returns the new offset.
    pub fn seek(&mut self, fd: u32, offset: i64, whence: Whence) -> SysResult<u64> {
        let (path, current, node) = match &self.descriptor(fd)?.file {
            OpenFile::File { path, offset, device: false, node } => (path.clone(), *offset, node.clone()),
            OpenFile::File { device: true, .. } => return Ok(0),
            OpenFile::Directory { .. } => return Err(Errno::EISDIR.into()),
            _ => return Err(Errno::ESPIPE.into()),
        };
        let base = match whence {
            Whence::Start => 0,
            Whence::Current => current,
            Whence::End => self.file_size(&path, node.as_ref())?,
        };
        let target = i128::from(base).saturating_add(i128::from(offset));
        let target = u64::try_from(target).map_err(|_| Errno::EINVAL)?;
        if let OpenFile::File { offset, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
            *offset = target;
        }
        Ok(target)
    }

    /// Whether a read of `fd` would return at once (data, end-of-file or an error).
    pub fn read_ready(&self, fd: u32) -> Result<bool, Errno> {
        Ok(match self.descriptor(fd)?.file {
            OpenFile::Stdin { owner } => {
                self.vm.processes().get(owner).is_none_or(|owner| !owner.stdin.is_empty() || owner.stdin_closed)
            }
            OpenFile::Pipe { id, end: End::Read } => self.vm.processes().pipes.readable(id),
            OpenFile::Socket { id } => self.vm.processes().net.readable(id),
            _ => true,
        })
    }

    /// Whether a write to `fd` would return at once (room, or an error).
    pub fn write_ready(&self, fd: u32) -> Result<bool, Errno> {
        Ok(match self.descriptor(fd)?.file {
            OpenFile::Pipe { id, end: End::Write } => self.vm.processes().pipes.writable(id),
            OpenFile::Socket { id } => self.vm.processes().net.writable(id),
            _ => true,
        })
    }

    /// Parks the guest until one of the descriptors it polls becomes ready (or its sleep ends).
    /// Any of them (or the sleep the poll set up) wakes it.
    pub fn park_for_poll(&mut self, read_fds: &[u32], write_fds: &[u32]) {
        let Ok(process) = self.process() else { return };
        let read_waits = read_fds.iter().filter_map(|fd| match process.fds.get(*fd).ok()?.file {
            OpenFile::Stdin { owner } => Some(Wait::Stdin { owner }),
            OpenFile::Pipe { id, .. } => Some(Wait::PipeRead { id }),
            OpenFile::Socket { id } => Some(Wait::SocketRead { id }),
            _ => None,
        });
        let write_waits = write_fds.iter().filter_map(|fd| match process.fds.get(*fd).ok()?.file {
            OpenFile::Pipe { id, .. } => Some(Wait::PipeWrite { id }),
            OpenFile::Socket { id } => Some(Wait::SocketWrite { id }),
            _ => None,
        });
        let waits: Vec<Wait> = read_waits.chain(write_waits).collect();
        if let Ok(process) = self.process_mut() {
            if process.wait == Wait::None {
                process.wait = waits.first().copied().unwrap_or(Wait::None);
            }
            process.wake_on = waits;
        }
    }

    /// A write, charged for the bytes it moved.
    pub(super) fn write_at(&mut self, fd: u32, data: &[u8], at: Option<u64>) -> SysResult<usize> {
        let written = self.write_at_uncharged(fd, data, at);
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(*written.as_ref().unwrap_or(&0))));
        written
    }

    pub(super) fn write_at_uncharged(&mut self, fd: u32, data: &[u8], at: Option<u64>) -> SysResult<usize> {
        let descriptor = self.process()?.fds.get(fd)?;
        let (file, nonblocking, writable, append) =
            (descriptor.file.clone(), descriptor.nonblocking, descriptor.writable, descriptor.append);
        match file {
            OpenFile::Pipe { .. } | OpenFile::Stdout { .. } | OpenFile::Stderr { .. } | OpenFile::Socket { .. }
                if at.is_some() =>
            {
                Err(Errno::ESPIPE.into())
            }
            OpenFile::Pipe { end: End::Write, id } => self.write_pipe(id, data, nonblocking),
            OpenFile::Socket { id } => self.write_socket(id, data, nonblocking),
            OpenFile::Stdout { owner } => self.write_output(Channel::Stdout, owner, data),
            OpenFile::Stderr { owner } => self.write_output(Channel::Stderr, owner, data),
            _ if !writable => Err(Errno::EBADF.into()),
            OpenFile::File { path, offset, device, node } => {
                if device {
                    // `/dev/null` and friends: accepted and dropped (the kernel's tree owns them).
                    return Ok(data.len());
                }
                self.writable()?;
                let max_fd_write_bytes = self.vm.process_limits().max_fd_write_bytes;
                let data = data.get(..usize::try_from(max_fd_write_bytes).unwrap_or(usize::MAX)).unwrap_or(data);
                let start = match (at, append) {
                    (Some(at), _) => at,
                    (None, true) => self.file_size(&path, node.as_ref())?,
                    (None, false) => offset,
                };
                let written = match &node {
                    Some(node) => self.write_held(node, start, data)?,
                    None => self.write_file(&path, start, data)?,
                };
                if at.is_none() {
                    self.set_offset(fd, start.saturating_add(u64::try_from(written).unwrap_or(u64::MAX)))?;
                }
                Ok(written)
            }
            OpenFile::Directory { .. } => Err(Errno::EISDIR.into()),
            OpenFile::Pipe { .. } | OpenFile::Stdin { .. } => Err(Errno::EBADF.into()),
        }
    }

    /// A write to a pipe's write end: what fits, else a park (or `EAGAIN`) until a reader
    /// drains it.
    fn write_pipe(&mut self, id: u64, data: &[u8], nonblocking: bool) -> SysResult<usize> {
        let written = match self.vm.processes_mut().pipes.write(id, data) {
            Ok(written) => written,
            Err(Errno::EPIPE) => return Err(self.broken_pipe()),
            Err(errno) => return Err(errno.into()),
        };
        if written == 0 && !data.is_empty() {
            if nonblocking {
                return Err(Errno::EAGAIN.into());
            }
            self.process_mut()?.wait = Wait::PipeWrite { id };
            return Err(SysError::WouldBlock);
        }
        Ok(written)
    }

    /// A write found no reader: as on Linux the writer also gets `SIGPIPE`. Acting by default
    /// it ends the writer before the write returns (`yes | head` ends quietly): the call parks,
    /// ending the slice, and the signal is delivered then. A program that ignores, handles or
    /// blocks it sees `EPIPE` (a handled or blocked one is still raised).
    fn broken_pipe(&mut self) -> SysError {
        let Ok(process) = self.process_mut() else { return Errno::EPIPE.into() };
        let pid = i64::from(process.pid);
        let action = process.handlers.get(&SIGPIPE).map(|handler| handler.action);
        if action != Some(SignalDispositionAction::Ignore) {
            process.outgoing_signals.push((pid, SIGPIPE));
        }
        if action.is_none() && !process.blocks(SIGPIPE) {
            process.wait = Wait::None;
            return SysError::WouldBlock;
        }
        Errno::EPIPE.into()
    }

    /// Output goes to the host-started process's events (children share their parent's), up
    /// to what the host has not read yet; a full backlog parks the writer.
    fn write_output(&mut self, channel: Channel, owner: u32, data: &[u8]) -> SysResult<usize> {
        let target = self.vm.processes_mut().get_mut(owner).filter(|owner| owner.is_alive()).ok_or(Errno::EPIPE)?;
        let room = MAX_PENDING_OUTPUT_BYTES.saturating_sub(target.pending_output_bytes());
        if room == 0 {
            self.process_mut()?.wait = Wait::Output;
            return Err(SysError::WouldBlock);
        }
        let accepted = data.get(..room).unwrap_or(data);
        target.push_output(channel, accepted);
        Ok(accepted.len())
    }

    /// Writes `data` at `start` of the file at `path`: in place on the root and on `memory` and
    /// `host_dir` mounts; the kernel's own trees and js_bridge mounts have no positional write,
    /// so there the file is read, patched and written whole. A patched file is never grown past
    /// the VM's `maxFilesystemBytes` (`ENOSPC`, as storing it would be): the offset is the
    /// guest's, and growing the copy to reach it would otherwise allocate whatever it names.
    fn write_file(&mut self, path: &str, start: u64, data: &[u8]) -> SysResult<usize> {
        let in_place = self.guarded(|vm, pid, asks, _, now| vm.guest_pwrite(pid, path, start, data, asks, now))?;
        if let Some(written) = in_place {
            return Ok(usize::try_from(written).unwrap_or(data.len()));
        }
        let max_filesystem_bytes = self.vm.filesystem().limits().max_filesystem_bytes;
        let end = start.checked_add(u64::try_from(data.len()).unwrap_or(u64::MAX)).ok_or(Errno::EFBIG)?;
        if end > max_filesystem_bytes {
            return Err(Errno::ENOSPC.into());
        }
        let mut content = self.read_whole(path)?;
        let (start, end) =
            (usize::try_from(start).map_err(|_| Errno::EFBIG)?, usize::try_from(end).map_err(|_| Errno::EFBIG)?);
        self.charge(cost::bytes_fuel(content.len().max(end)));
        if content.len() < end {
            content.resize(end, 0);
        }
        if let Some(slot) = content.get_mut(start..end) {
            slot.copy_from_slice(data);
        }
        self.write_whole(path, &content)?;
        Ok(data.len())
    }

    /// Moves the position of the file open at `fd`.
    fn set_offset(&mut self, fd: u32, to: u64) -> Result<(), Errno> {
        if let OpenFile::File { offset, .. } = &mut self.process_mut()?.fds.get_mut(fd)?.file {
            *offset = to;
        }
        Ok(())
    }

    /// A read, charged for the bytes it moved. One read moves at most the VM's
    /// `limits.wasm.syncReadLimitBytes`, whatever the buffer (a short read, as POSIX allows).
    pub(super) fn read_at(&mut self, fd: u32, buf: &mut [u8], at: Option<u64>) -> SysResult<usize> {
        let limit = usize::try_from(self.vm.limits().wasm.sync_read_limit_bytes).unwrap_or(usize::MAX);
        let len = buf.len().min(limit);
        let buf = buf.get_mut(..len).unwrap_or_default();
        let read = self.read_at_uncharged(fd, buf, at);
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::bytes_fuel(*read.as_ref().unwrap_or(&0))));
        read
    }

    pub(super) fn read_at_uncharged(&mut self, fd: u32, buf: &mut [u8], at: Option<u64>) -> SysResult<usize> {
        let descriptor = self.process()?.fds.get(fd)?;
        let (file, nonblocking, readable) = (descriptor.file.clone(), descriptor.nonblocking, descriptor.readable);
        match file {
            OpenFile::Pipe { .. } | OpenFile::Stdin { .. } | OpenFile::Socket { .. } if at.is_some() => {
                Err(Errno::ESPIPE.into())
            }
            OpenFile::Pipe { end: End::Read, id } => self.read_pipe(id, buf, nonblocking),
            OpenFile::Socket { id } => self.read_socket(id, buf, nonblocking),
            OpenFile::Stdin { owner } => self.read_stdin(owner, buf, nonblocking),
            OpenFile::Stdout { .. } | OpenFile::Stderr { .. } | OpenFile::Pipe { .. } => Err(Errno::EBADF.into()),
            OpenFile::Directory { .. } => Err(Errno::EISDIR.into()),
            OpenFile::File { .. } if !readable => Err(Errno::EBADF.into()),
            OpenFile::File { path, offset, node, .. } => {
                let start = at.unwrap_or(offset);
                let read = match &node {
                    Some(node) => self.read_held(node, start, buf)?,
                    None => self.read_file(&path, start, buf)?,
                };
                if at.is_none() {
                    self.set_offset(fd, start.saturating_add(u64::try_from(read).unwrap_or(u64::MAX)))?;
                }
                Ok(read)
            }
        }
    }

    /// A read of a pipe's read end: what is there, end-of-file once every writer closed, else
    /// a park (or `EAGAIN`) until a writer fills it.
    fn read_pipe(&mut self, id: u64, buf: &mut [u8], nonblocking: bool) -> SysResult<usize> {
        match self.vm.processes_mut().pipes.read(id, buf) {
            PipeRead::Data(read) => Ok(read),
            PipeRead::EndOfFile => Ok(0),
            PipeRead::Empty if nonblocking => Err(Errno::EAGAIN.into()),
            PipeRead::Empty => {
                self.process_mut()?.wait = Wait::PipeRead { id };
                Err(SysError::WouldBlock)
            }
        }
    }

    /// A read of the host-started process `owner`'s stdin (children share their parent's):
    /// what the host wrote, end-of-file once it closed stdin (or the owner is gone), else a park.
    fn read_stdin(&mut self, owner: u32, buf: &mut [u8], nonblocking: bool) -> SysResult<usize> {
        let Some(source) = self.vm.processes_mut().get_mut(owner).filter(|owner| owner.is_alive()) else {
            return Ok(0);
        };
        if source.stdin.is_empty() {
            if source.stdin_closed {
                return Ok(0);
            }
            if nonblocking {
                return Err(Errno::EAGAIN.into());
            }
            self.process_mut()?.wait = Wait::Stdin { owner };
            return Err(SysError::WouldBlock);
        }
        let read = buf.len().min(source.stdin.len());
        for (dst, src) in buf.iter_mut().zip(source.stdin.drain(..read)) {
            *dst = src;
        }
        Ok(read)
    }

    /// The size of an open file: the held file's, else what its path names now.
    fn file_size(&mut self, path: &str, node: Option<&FileNode>) -> SysResult<u64> {
        match node {
            Some(node) => self.vm.filesystem().stat_held(node).map(|stat| stat.size).map_err(|e| e.errno().into()),
            None => Ok(self.stat_path(path, true)?.size),
        }
    }

    /// Reads up to `buf.len()` bytes (at most `maxPreadBytes`) at `start` of a held file.
    fn read_held(&mut self, node: &FileNode, start: u64, buf: &mut [u8]) -> SysResult<usize> {
        let max_pread_bytes = self.vm.process_limits().max_pread_bytes;
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX).min(max_pread_bytes);
        self.charge(cost::SYSCALL_FUEL);
        let bytes = self.vm.filesystem().read_held(node, start, len).map_err(|e| SysError::Errno(e.errno()))?;
        let read = bytes.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..read), bytes.get(..read)) {
            dst.copy_from_slice(src);
        }
        Ok(read)
    }

    /// Writes `data` at `start` of a held file.
    fn write_held(&mut self, node: &FileNode, start: u64, data: &[u8]) -> SysResult<usize> {
        self.charge(cost::SYSCALL_FUEL);
        let now = self.now;
        let written = self.vm.filesystem_mut().write_held(node, start, data, now);
        let written = written.map_err(|e| SysError::Errno(e.errno()))?;
        Ok(usize::try_from(written).unwrap_or(data.len()))
    }

    /// Reads up to `buf.len()` bytes (at most `maxPreadBytes`) at `start` of the file at `path`.
    fn read_file(&mut self, path: &str, start: u64, buf: &mut [u8]) -> SysResult<usize> {
        let max_pread_bytes = self.vm.process_limits().max_pread_bytes;
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX).min(max_pread_bytes);
        let in_place = self.guarded(|vm, pid, asks, _, _| vm.guest_pread(pid, path, start, len, asks))?;
        let bytes = match in_place {
            Some(bytes) => bytes,
            None => match self.fs(path, FsOp::Pread { offset: start, len })? {
                FsReply::Content(bytes) => bytes,
                _ => return Err(Errno::EIO.into()),
            },
        };
        let read = bytes.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..read), bytes.get(..read)) {
            dst.copy_from_slice(src);
        }
        Ok(read)
    }
}
