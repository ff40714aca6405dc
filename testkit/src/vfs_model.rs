//! A deliberately naive reference model of the in-memory filesystem (`kernel::vfs`): the one
//! the kernel's differential tests and the `vfs_ops` fuzz target check the real thing against.
//!
//! A map from canonical absolute path to node: subtrees are found by string prefix, renames
//! rewrite keys, counts are recomputed by scanning. Files and symlinks are objects that hard
//! links share; a directory has exactly one name. No logic and no constant comes from the
//! kernel (only [`FsLimits`], the configuration), so a mistake cannot hide in both.
//!
//! An [`Op`] is one operation as both sides run it: [`Model::apply`] here, and
//! [`crate::vfs_driver::apply`] on a `Filesystem` or an `Overlay`. Results are [`Out`] values;
//! errors are errno names, and a limit failure names its bound ([`BYTES`], [`INODES`], …), so a
//! test sees which limit was hit.

use std::collections::{BTreeMap, VecDeque};

use kernel::vfs::FsLimits;

/// The longest name one path component may have (POSIX `NAME_MAX`).
const NAME_MAX: usize = 255;
/// Symlinks one resolution follows before `ELOOP` (Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: u32 = 40;
/// What `stat` reports as the size of any directory.
pub const DIR_SIZE: u64 = 4096;
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
const SYMLINK_MODE: u32 = 0o777;

/// The error of an operation refused by the filesystem byte limit.
pub const BYTES: &str = "ENOSPC(filesystem bytes)";
/// The error of an operation refused by the inode limit.
pub const INODES: &str = "ENOSPC(inode count)";
/// The error of a `read_dir` refused by the entry limit.
pub const READDIR: &str = "ENOSPC(readdir entries)";
/// The error of a `pread` refused by the length limit.
pub const PREAD: &str = "ENOSPC(pread bytes)";
/// The error of a write refused by the per-write limit.
pub const WRITE: &str = "ENOSPC(fd write bytes)";

/// One filesystem operation with its arguments. Paths are as a guest gives them: relative to
/// the working directory passed alongside, `.`/`..`, trailing slashes and over-long names
/// included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `write_file`: creates the file or replaces its whole content.
    Write(String, Vec<u8>),
    /// Path, offset, data.
    Pwrite(String, u64, Vec<u8>),
    Truncate(String, u64),
    /// Path, recursive (`mkdir -p`).
    Mkdir(String, bool),
    /// Path, recursive (`rm -r`).
    Rmdir(String, bool),
    Unlink(String),
    /// Target, then the link's path.
    Symlink(String, String),
    Rename(String, String),
    /// Existing path, then the new name.
    Link(String, String),
    Chmod(String, u32),
    Read(String),
    /// Path, offset, length.
    Pread(String, u64, u64),
    ReadLink(String),
    Stat(String),
    Lstat(String),
    ReadDir(String),
    Realpath(String),
    Exists(String),
    /// Makes the filesystem read-only (`true`) or writable again.
    ReadOnly(bool),
}

impl Op {
    /// The path a failure of this operation is labelled with: the first one given (for a
    /// symlink, its target). `None` for the operations that cannot fail.
    pub fn labelled_path(&self) -> Option<&str> {
        match self {
            Self::Write(p, _)
            | Self::Pwrite(p, ..)
            | Self::Truncate(p, _)
            | Self::Mkdir(p, _)
            | Self::Rmdir(p, _)
            | Self::Unlink(p)
            | Self::Symlink(p, _)
            | Self::Rename(p, _)
            | Self::Link(p, _)
            | Self::Chmod(p, _)
            | Self::Read(p)
            | Self::Pread(p, ..)
            | Self::ReadLink(p)
            | Self::Stat(p)
            | Self::Lstat(p)
            | Self::ReadDir(p)
            | Self::Realpath(p) => Some(p),
            Self::Exists(_) | Self::ReadOnly(_) => None,
        }
    }
}

/// What an operation returned, comparable between the model and the real thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Unit,
    Bool(bool),
    Bytes(Vec<u8>),
    Text(String),
    Names(Vec<String>),
    /// Bytes written by `pwrite`.
    Count(u64),
    /// `kind` is `'d'`, `'f'` or `'l'`; `mode` holds the permission bits only.
    Stat {
        kind: char,
        size: u64,
        nlink: u64,
        mtime: u64,
        mode: u32,
    },
}

/// A result: an [`Out`], or an errno name (a limit's name for a limit failure).
pub type Res = Result<Out, &'static str>;

/// One name in a tree listing: path, kind (`'d'`, `'f'`, `'l'`), permission bits, content (a
/// symlink's target, nothing for a directory).
pub type Listed = (String, char, u32, Vec<u8>);

/// The result without what an overlay legitimately reports differently from a flat filesystem
/// holding the same tree: times and link counts.
pub fn coarse(result: Res) -> Res {
    match result {
        Ok(Out::Stat { kind, size, mode, .. }) => Ok(Out::Stat { kind, size, nlink: 0, mtime: 0, mode }),
        other => other,
    }
}

/// How the final component is treated (the kernel's resolution mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// A final symlink is followed.
    Yes,
    /// A final symlink is the result (unless the path ends with a slash).
    No,
    /// The final name is looked up in its parent and never followed (create, remove, rename).
    Parent,
}

/// A name: a directory (which has exactly one) or a reference to a file or symlink object,
/// which hard links share.
#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32, mtime: u64 },
    Obj(u64),
}

#[derive(Debug, Clone)]
enum Data {
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Obj {
    data: Data,
    mode: u32,
    mtime: u64,
}

/// Where a path led: the canonical path of its directory, the final name (if any), whether that
/// entry exists, and whether the path (or a final symlink's target) ended with a slash.
#[derive(Debug)]
struct Where {
    dir: String,
    name: Option<String>,
    exists: bool,
    slash: bool,
}

impl Where {
    fn full(&self) -> String {
        match &self.name {
            Some(name) => join(&self.dir, name),
            None => self.dir.clone(),
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => path.get(..i).unwrap_or("/"),
    }
}

fn parts(path: &str) -> Vec<String> {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

fn index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The model: every name, the objects names refer to, the limits and the read-only switch.
#[derive(Debug, Clone)]
pub struct Model {
    nodes: BTreeMap<String, Node>,
    objs: BTreeMap<u64, Obj>,
    next_obj: u64,
    limits: FsLimits,
    read_only: bool,
}

impl Model {
    /// An empty filesystem (the root directory only, time 0) bounded by `limits`.
    pub fn new(limits: FsLimits) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), Node::Dir { mode: DIR_MODE, mtime: 0 });
        Self { nodes, objs: BTreeMap::new(), next_obj: 0, limits, read_only: false }
    }

    /// Runs `op` from working directory `cwd` at time `now` (milliseconds).
    pub fn apply(&mut self, cwd: &str, op: &Op, now: u64) -> Res {
        match op {
            Op::Write(p, d) => self.write(cwd, p, d, now),
            Op::Pwrite(p, o, d) => self.pwrite(cwd, p, *o, d, now),
            Op::Truncate(p, n) => self.truncate(cwd, p, *n, now),
            Op::Mkdir(p, r) => self.mkdir(cwd, p, *r, now),
            Op::Rmdir(p, r) => self.rmdir(cwd, p, *r, now),
            Op::Unlink(p) => self.unlink(cwd, p, now),
            Op::Symlink(target, p) => self.symlink(cwd, target, p, now),
            Op::Rename(a, b) => self.rename(cwd, a, b, now),
            Op::Link(a, b) => self.link(cwd, a, b, now),
            Op::Chmod(p, m) => self.chmod(cwd, p, *m),
            Op::Read(p) => self.read(cwd, p),
            Op::Pread(p, o, n) => self.pread(cwd, p, *o, *n),
            Op::ReadLink(p) => self.read_link(cwd, p),
            Op::Stat(p) => self.stat(cwd, p, Follow::Yes),
            Op::Lstat(p) => self.stat(cwd, p, Follow::No),
            Op::ReadDir(p) => self.read_dir(cwd, p),
            Op::Realpath(p) => self.existing(cwd, p, Follow::Yes).map(Out::Text),
            Op::Exists(p) => Ok(Out::Bool(matches!(self.locate(cwd, p, Follow::Yes), Ok(Where { exists: true, .. })))),
            Op::ReadOnly(read_only) => {
                self.read_only = *read_only;
                Ok(Out::Unit)
            }
        }
    }

    // Queries --------------------------------------------------------------------------------

    /// Bytes of file content, counted once per object (hard links share theirs).
    pub fn bytes(&self) -> u64 {
        self.objs.values().map(|o| if let Data::File(b) = &o.data { len(b) } else { 0 }).sum()
    }

    /// Directories plus objects (a hard link is not an inode of its own).
    pub fn inodes(&self) -> u64 {
        let dirs = self.nodes.values().filter(|n| matches!(n, Node::Dir { .. })).count();
        u64::try_from(dirs + self.objs.len()).unwrap_or(u64::MAX)
    }

    /// Every name, in path order.
    pub fn listing(&self) -> Vec<Listed> {
        self.nodes
            .iter()
            .filter_map(|(path, node)| match node {
                Node::Dir { mode, .. } => Some((path.clone(), 'd', *mode, Vec::new())),
                Node::Obj(id) => match self.objs.get(id)? {
                    Obj { data: Data::File(b), mode, .. } => Some((path.clone(), 'f', *mode, b.clone())),
                    Obj { data: Data::Symlink(t), mode, .. } => Some((path.clone(), 'l', *mode, t.as_bytes().to_vec())),
                },
            })
            .collect()
    }

    /// `stat` (`Follow::Yes`) or `lstat` (`Follow::No`).
    pub fn stat(&self, cwd: &str, path: &str, follow: Follow) -> Res {
        let p = self.existing(cwd, path, follow)?;
        match self.nodes.get(&p) {
            Some(Node::Dir { mode, mtime }) => {
                let subdirs = self.children(&p).iter().filter(|c| self.is_dir(&join(&p, c))).count();
                let nlink = 2 + u64::try_from(subdirs).unwrap_or(u64::MAX);
                Ok(Out::Stat { kind: 'd', size: DIR_SIZE, nlink, mtime: *mtime, mode: *mode })
            }
            Some(Node::Obj(id)) => {
                let obj = self.objs.get(id).ok_or("EIO")?;
                let (kind, size) = match &obj.data {
                    Data::File(b) => ('f', len(b)),
                    Data::Symlink(t) => ('l', len(t.as_bytes())),
                };
                Ok(Out::Stat { kind, size, nlink: self.nlink(*id), mtime: obj.mtime, mode: obj.mode })
            }
            None => Err("EIO"),
        }
    }

    fn is_dir(&self, path: &str) -> bool {
        matches!(self.nodes.get(path), Some(Node::Dir { .. }))
    }

    fn obj(&self, path: &str) -> Option<&Obj> {
        match self.nodes.get(path) {
            Some(Node::Obj(id)) => self.objs.get(id),
            _ => None,
        }
    }

    fn file(&self, path: &str) -> Option<&Vec<u8>> {
        match self.obj(path) {
            Some(Obj { data: Data::File(bytes), .. }) => Some(bytes),
            _ => None,
        }
    }

    fn target(&self, path: &str) -> Option<&str> {
        match self.obj(path) {
            Some(Obj { data: Data::Symlink(target), .. }) => Some(target),
            _ => None,
        }
    }

    fn children(&self, dir: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| p.as_str() != "/" && parent(p) == dir)
            .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
            .collect()
    }

    fn subtree(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        self.nodes.keys().filter(|p| p.as_str() == path || p.starts_with(&prefix)).cloned().collect()
    }

    fn nlink(&self, id: u64) -> u64 {
        let names = self.nodes.values().filter(|n| matches!(n, Node::Obj(i) if *i == id)).count();
        u64::try_from(names).unwrap_or(u64::MAX)
    }

    // Bookkeeping ----------------------------------------------------------------------------

    /// Drops the objects no name refers to any more.
    fn collect(&mut self) {
        let live: Vec<u64> =
            self.nodes.values().filter_map(|n| if let Node::Obj(id) = n { Some(*id) } else { None }).collect();
        self.objs.retain(|id, _| live.contains(id));
    }

    fn touch(&mut self, path: &str, now: u64) {
        match self.nodes.get_mut(path) {
            Some(Node::Dir { mtime, .. }) => *mtime = now,
            Some(Node::Obj(id)) => {
                let id = *id;
                if let Some(obj) = self.objs.get_mut(&id) {
                    obj.mtime = now;
                }
            }
            None => {}
        }
    }

    fn new_obj(&mut self, path: String, data: Data, mode: u32, now: u64) {
        let id = self.next_obj;
        self.next_obj += 1;
        self.objs.insert(id, Obj { data, mode, mtime: now });
        self.nodes.insert(path, Node::Obj(id));
    }

    fn set_content(&mut self, path: &str, bytes: Vec<u8>, now: u64) {
        if let Some(Node::Obj(id)) = self.nodes.get(path) {
            let id = *id;
            if let Some(obj) = self.objs.get_mut(&id) {
                obj.data = Data::File(bytes);
                obj.mtime = now;
            }
        }
    }

    fn writable(&self) -> Result<(), &'static str> {
        if self.read_only {
            return Err("EROFS");
        }
        Ok(())
    }

    fn check_inodes(&self) -> Result<(), &'static str> {
        if self.inodes() + 1 > self.limits.max_inode_count {
            return Err(INODES);
        }
        Ok(())
    }

    fn check_bytes(&self, old: u64, new: u64) -> Result<(), &'static str> {
        if new > old && self.bytes() - old + new > self.limits.max_filesystem_bytes {
            return Err(BYTES);
        }
        Ok(())
    }

    fn check_write(&self, data: &[u8]) -> Result<(), &'static str> {
        if len(data) > self.limits.max_fd_write_bytes {
            return Err(WRITE);
        }
        Ok(())
    }

    // Resolution -----------------------------------------------------------------------------

    fn locate(&self, cwd: &str, path: &str, follow: Follow) -> Result<Where, &'static str> {
        if path.is_empty() {
            return Err("ENOENT");
        }
        let mut todo: VecDeque<String> = VecDeque::new();
        if !path.starts_with('/') {
            todo.extend(parts(cwd));
        }
        todo.extend(parts(path));
        let mut slash = path.ends_with('/');
        let mut here: Vec<String> = Vec::new();
        let mut hops = 0;
        let dir_of = |here: &Vec<String>| format!("/{}", here.join("/"));
        while let Some(c) = todo.pop_front() {
            // Every component counts, `.`, `..` and those a symlink's target brings included.
            if c.len() > NAME_MAX {
                return Err("ENAMETOOLONG");
            }
            let last = todo.is_empty();
            if c == "." {
                continue;
            }
            if c == ".." {
                here.pop();
                continue;
            }
            let dir = dir_of(&here);
            let full = join(&dir, &c);
            if !self.nodes.contains_key(&full) {
                if last {
                    return Ok(Where { dir, name: Some(c), exists: false, slash });
                }
                return Err("ENOENT");
            }
            if let Some(target) = self.target(&full) {
                if !last || follow == Follow::Yes || (follow == Follow::No && slash) {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err("ELOOP");
                    }
                    if target.is_empty() {
                        return Err("ENOENT");
                    }
                    if last && target.ends_with('/') {
                        slash = true;
                    }
                    if target.starts_with('/') {
                        here.clear();
                    }
                    for part in parts(target).into_iter().rev() {
                        todo.push_front(part);
                    }
                    continue;
                }
            }
            let is_dir = self.is_dir(&full);
            if last {
                if slash && !is_dir && follow != Follow::Parent {
                    return Err("ENOTDIR");
                }
                return Ok(Where { dir, name: Some(c), exists: true, slash });
            }
            if !is_dir {
                return Err("ENOTDIR");
            }
            here.push(c);
        }
        Ok(Where { dir: dir_of(&here), name: None, exists: true, slash })
    }

    fn existing(&self, cwd: &str, path: &str, follow: Follow) -> Result<String, &'static str> {
        let w = self.locate(cwd, path, follow)?;
        if !w.exists {
            return Err("ENOENT");
        }
        Ok(w.full())
    }

    // Reads ----------------------------------------------------------------------------------

    fn read(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::Yes)?;
        self.file(&p).map(|b| Out::Bytes(b.clone())).ok_or("EISDIR")
    }

    fn pread(&self, cwd: &str, path: &str, offset: u64, n: u64) -> Res {
        if n > self.limits.max_pread_bytes {
            return Err(PREAD);
        }
        let Out::Bytes(b) = self.read(cwd, path)? else { return Err("EIO") };
        Ok(Out::Bytes(b.into_iter().skip(index(offset)).take(index(n)).collect()))
    }

    fn read_dir(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::Yes)?;
        if !self.is_dir(&p) {
            return Err("ENOTDIR");
        }
        let names = self.children(&p);
        if u64::try_from(names.len()).unwrap_or(u64::MAX) > self.limits.max_readdir_entries {
            return Err(READDIR);
        }
        Ok(Out::Names(names))
    }

    fn read_link(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::No)?;
        self.target(&p).map(|t| Out::Text(t.to_owned())).ok_or("EINVAL")
    }

    // Files ----------------------------------------------------------------------------------

    fn write(&mut self, cwd: &str, path: &str, data: &[u8], now: u64) -> Res {
        self.writable()?;
        let w = self.locate(cwd, path, Follow::Yes)?;
        let p = w.full();
        if w.exists {
            let Some(old) = self.file(&p) else { return Err("EISDIR") };
            self.check_write(data)?;
            self.check_bytes(len(old), len(data))?;
            self.set_content(&p, data.to_vec(), now);
        } else {
            if w.slash {
                return Err("EISDIR");
            }
            self.check_write(data)?;
            self.check_inodes()?;
            self.check_bytes(0, len(data))?;
            self.new_obj(p, Data::File(data.to_vec()), FILE_MODE, now);
            self.touch(&w.dir, now);
        }
        Ok(Out::Unit)
    }

    fn pwrite(&mut self, cwd: &str, path: &str, offset: u64, data: &[u8], now: u64) -> Res {
        self.writable()?;
        let p = self.existing(cwd, path, Follow::Yes)?;
        let Some(old) = self.file(&p) else { return Err("EISDIR") };
        self.check_write(data)?;
        let end = offset.saturating_add(len(data));
        let new_len = len(old).max(end);
        self.check_bytes(len(old), new_len)?;
        let mut bytes = old.clone();
        bytes.resize(index(new_len), 0);
        let Some(dst) = bytes.get_mut(index(offset)..index(end)) else { return Err("EIO") };
        dst.copy_from_slice(data);
        self.set_content(&p, bytes, now);
        Ok(Out::Count(len(data)))
    }

    fn truncate(&mut self, cwd: &str, path: &str, n: u64, now: u64) -> Res {
        self.writable()?;
        let p = self.existing(cwd, path, Follow::Yes)?;
        let Some(old) = self.file(&p) else { return Err("EISDIR") };
        self.check_bytes(len(old), n)?;
        let mut bytes = old.clone();
        bytes.resize(index(n), 0);
        self.set_content(&p, bytes, now);
        Ok(Out::Unit)
    }

    /// Sets the permission bits (file-type bits given are ignored); times do not change.
    fn chmod(&mut self, cwd: &str, path: &str, mode: u32) -> Res {
        self.writable()?;
        let p = self.existing(cwd, path, Follow::Yes)?;
        match self.nodes.get_mut(&p) {
            Some(Node::Dir { mode: m, .. }) => *m = mode & 0o7777,
            Some(Node::Obj(id)) => {
                let id = *id;
                if let Some(obj) = self.objs.get_mut(&id) {
                    obj.mode = mode & 0o7777;
                }
            }
            None => return Err("EIO"),
        }
        Ok(Out::Unit)
    }

    // Directories ----------------------------------------------------------------------------

    fn mkdir_one(&mut self, cwd: &str, path: &str, now: u64) -> Result<(), &'static str> {
        let w = self.locate(cwd, path, Follow::Parent)?;
        if w.exists {
            return Err("EEXIST");
        }
        self.check_inodes()?;
        self.nodes.insert(w.full(), Node::Dir { mode: DIR_MODE, mtime: now });
        self.touch(&w.dir, now);
        Ok(())
    }

    fn mkdir(&mut self, cwd: &str, path: &str, recursive: bool, now: u64) -> Res {
        self.writable()?;
        if !recursive {
            self.mkdir_one(cwd, path, now)?;
            return Ok(Out::Unit);
        }
        if path.is_empty() {
            return Err("ENOENT");
        }
        // mkdir -p: mkdir of each lexical prefix ending in a name; all or nothing.
        let saved = self.clone();
        let comps = parts(path);
        let root = if path.starts_with('/') { "/" } else { "" };
        let named: Vec<usize> =
            (0..comps.len()).filter(|&i| !matches!(comps.get(i), Some(c) if c == "." || c == "..")).collect();
        for (k, &i) in named.iter().enumerate() {
            let last = k + 1 == named.len();
            let prefix = format!("{root}{}", comps.get(..=i).unwrap_or_default().join("/"));
            let result = match self.mkdir_one(cwd, &prefix, now) {
                Ok(()) => Ok(()),
                Err("EEXIST") => match self.locate(cwd, &prefix, Follow::Yes) {
                    Ok(w) if w.exists && self.is_dir(&w.full()) => Ok(()),
                    _ if last => Err("EEXIST"),
                    Ok(w) if w.exists => Err("ENOTDIR"),
                    Ok(_) => Err("ENOENT"),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                *self = saved;
                return Err(e);
            }
        }
        Ok(Out::Unit)
    }

    fn unlink(&mut self, cwd: &str, path: &str, now: u64) -> Res {
        self.writable()?;
        let w = self.locate(cwd, path, Follow::Parent)?;
        if !w.exists {
            return Err("ENOENT");
        }
        if w.name.is_none() {
            return Err("EISDIR");
        }
        let p = w.full();
        if self.is_dir(&p) {
            return Err("EISDIR");
        }
        if w.slash {
            return Err("ENOTDIR");
        }
        self.nodes.remove(&p);
        self.collect();
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

    fn rmdir(&mut self, cwd: &str, path: &str, recursive: bool, now: u64) -> Res {
        self.writable()?;
        let w = self.locate(cwd, path, Follow::Parent)?;
        if w.name.is_none() && w.dir == "/" {
            return Err("EBUSY");
        }
        if !w.exists {
            return Err("ENOENT");
        }
        if w.name.is_none() {
            return Err("EINVAL");
        }
        let p = w.full();
        if !self.is_dir(&p) {
            return Err("ENOTDIR");
        }
        if !recursive && !self.children(&p).is_empty() {
            return Err("ENOTEMPTY");
        }
        for q in self.subtree(&p) {
            self.nodes.remove(&q);
        }
        self.collect();
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

    // Names ----------------------------------------------------------------------------------

    fn rename(&mut self, cwd: &str, from: &str, to: &str, now: u64) -> Res {
        self.writable()?;
        let old = self.locate(cwd, from, Follow::Parent)?;
        let new = self.locate(cwd, to, Follow::Parent)?;
        if !old.exists {
            return Err("ENOENT");
        }
        let root = |w: &Where| w.name.is_none() && w.dir == "/";
        if root(&old) || root(&new) {
            return Err("EBUSY");
        }
        if old.name.is_none() || new.name.is_none() {
            return Err("EINVAL");
        }
        let (src, dst) = (old.full(), new.full());
        let src_dir = self.is_dir(&src);
        if src_dir && (new.dir == src || new.dir.starts_with(&format!("{src}/"))) {
            return Err("EINVAL");
        }
        // Two names of one object: POSIX says rename does nothing.
        let same_obj =
            matches!((self.nodes.get(&src), self.nodes.get(&dst)), (Some(Node::Obj(a)), Some(Node::Obj(b))) if a == b);
        if src == dst || (new.exists && same_obj) {
            return Ok(Out::Unit);
        }
        if !src_dir && (old.slash || new.slash) {
            return Err("ENOTDIR");
        }
        if new.exists {
            match (self.is_dir(&dst), src_dir) {
                (true, false) => return Err("EISDIR"),
                (true, true) if !self.children(&dst).is_empty() => return Err("ENOTEMPTY"),
                (false, true) => return Err("ENOTDIR"),
                _ => {}
            }
            self.nodes.remove(&dst);
        }
        for q in self.subtree(&src) {
            if let (Some(node), Some(rest)) = (self.nodes.remove(&q), q.strip_prefix(src.as_str())) {
                self.nodes.insert(format!("{dst}{rest}"), node);
            }
        }
        self.collect();
        self.touch(&old.dir, now);
        self.touch(&new.dir, now);
        Ok(Out::Unit)
    }

    fn symlink(&mut self, cwd: &str, target: &str, path: &str, now: u64) -> Res {
        self.writable()?;
        if target.is_empty() {
            return Err("ENOENT");
        }
        let w = self.locate(cwd, path, Follow::Parent)?;
        if w.exists {
            return Err("EEXIST");
        }
        if w.slash {
            return Err("ENOENT");
        }
        self.check_inodes()?;
        self.new_obj(w.full(), Data::Symlink(target.to_owned()), SYMLINK_MODE, now);
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

    /// A hard link to a file or a symlink (never followed); directories cannot have one.
    fn link(&mut self, cwd: &str, existing: &str, new: &str, now: u64) -> Res {
        self.writable()?;
        let src = self.existing(cwd, existing, Follow::No)?;
        let Some(Node::Obj(id)) = self.nodes.get(&src).cloned() else { return Err("EPERM") };
        let w = self.locate(cwd, new, Follow::Parent)?;
        if w.exists {
            return Err("EEXIST");
        }
        if w.slash {
            return Err("ENOENT");
        }
        self.nodes.insert(w.full(), Node::Obj(id));
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }
}
