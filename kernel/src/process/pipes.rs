//! Anonymous pipes between descriptors of a VM's processes: a bounded byte buffer with counts of
//! the descriptors open on each end. Readers see end-of-file once every write end is closed and
//! the buffer is drained; writers get `EPIPE` once every read end is closed.

use std::collections::{BTreeMap, VecDeque};

use crate::vfs::Errno;

/// Bytes a pipe buffers (Linux's default pipe capacity): a writer that finds it full waits.
pub const PIPE_CAPACITY_BYTES: usize = 64 * 1024;

/// Which end of a pipe a descriptor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Read,
    Write,
}

#[derive(Debug, Default)]
struct Pipe {
    buffer: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

/// The pipes of one VM.
#[derive(Debug, Default)]
pub(crate) struct Pipes {
    pipes: BTreeMap<u64, Pipe>,
    next_id: u64,
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PipeRead {
    Data(usize),
    EndOfFile,
    Empty,
}

impl Pipes {
    /// Pipes open now.
    pub(crate) fn len(&self) -> usize {
        self.pipes.len()
    }

    /// A new pipe with one read and one write end open.
    pub(crate) fn create(&mut self) -> u64 {
        self.next_id = self.next_id.saturating_add(1);
        self.pipes.insert(self.next_id, Pipe { buffer: VecDeque::new(), readers: 1, writers: 1 });
        self.next_id
    }

    /// Another descriptor now holds `end` of pipe `id` (dup, inheritance).
    pub(crate) fn open(&mut self, id: u64, end: End) {
        if let Some(pipe) = self.pipes.get_mut(&id) {
            match end {
                End::Read => pipe.readers = pipe.readers.saturating_add(1),
                End::Write => pipe.writers = pipe.writers.saturating_add(1),
            }
        }
    }

    /// A descriptor holding `end` of pipe `id` was closed; the pipe goes with its last end.
    pub(crate) fn close(&mut self, id: u64, end: End) {
        let Some(pipe) = self.pipes.get_mut(&id) else { return };
        match end {
            End::Read => pipe.readers = pipe.readers.saturating_sub(1),
            End::Write => pipe.writers = pipe.writers.saturating_sub(1),
        }
        if pipe.readers == 0 && pipe.writers == 0 {
            self.pipes.remove(&id);
        }
    }

    pub(crate) fn read(&mut self, id: u64, buf: &mut [u8]) -> PipeRead {
        let Some(pipe) = self.pipes.get_mut(&id) else { return PipeRead::EndOfFile };
        if pipe.buffer.is_empty() {
            return if pipe.writers == 0 { PipeRead::EndOfFile } else { PipeRead::Empty };
        }
        let read = buf.len().min(pipe.buffer.len());
        for (dst, src) in buf.iter_mut().zip(pipe.buffer.drain(..read)) {
            *dst = src;
        }
        PipeRead::Data(read)
    }

    /// Writes what fits; `Ok(0)` means full (the writer waits), `EPIPE` that nobody can read.
    pub(crate) fn write(&mut self, id: u64, data: &[u8]) -> Result<usize, Errno> {
        let pipe = self.pipes.get_mut(&id).ok_or(Errno::EPIPE)?;
        if pipe.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let room = PIPE_CAPACITY_BYTES.saturating_sub(pipe.buffer.len());
        let accepted = data.get(..room).unwrap_or(data);
        pipe.buffer.extend(accepted);
        Ok(accepted.len())
    }

    /// Whether a read of pipe `id` would return at once.
    pub(crate) fn readable(&self, id: u64) -> bool {
        self.pipes.get(&id).is_none_or(|pipe| !pipe.buffer.is_empty() || pipe.writers == 0)
    }

    /// Whether a write to pipe `id` would return at once.
    pub(crate) fn writable(&self, id: u64) -> bool {
        self.pipes.get(&id).is_none_or(|pipe| pipe.buffer.len() < PIPE_CAPACITY_BYTES || pipe.readers == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_end_of_file_and_broken_pipe() {
        let mut pipes = Pipes::default();
        let id = pipes.create();
        let big = vec![7u8; PIPE_CAPACITY_BYTES + 10];
        assert_eq!(pipes.write(id, &big), Ok(PIPE_CAPACITY_BYTES));
        assert_eq!(pipes.write(id, b"x"), Ok(0));
        assert!(!pipes.writable(id));
        let mut buf = [0u8; 8];
        assert_eq!(pipes.read(id, &mut buf), PipeRead::Data(8));
        pipes.close(id, End::Write);
        let mut rest = vec![0u8; PIPE_CAPACITY_BYTES];
        assert_eq!(pipes.read(id, &mut rest), PipeRead::Data(PIPE_CAPACITY_BYTES - 8));
        assert_eq!(pipes.read(id, &mut rest), PipeRead::EndOfFile);
        let other = pipes.create();
        pipes.close(other, End::Read);
        assert_eq!(pipes.write(other, b"x"), Err(Errno::EPIPE));
        pipes.close(id, End::Read);
        pipes.close(other, End::Write);
        assert_eq!(pipes.len(), 0);
        let mut empty = Pipes::default();
        let id = empty.create();
        assert_eq!(empty.read(id, &mut buf), PipeRead::Empty);
    }
}
