//! A deliberately naive reference filesystem: a map from normalized absolute path to node.
//! Subtrees are found by string prefix, renames rewrite keys, counts are recomputed by scanning.
//! No inodes and no hard links (the differential test does not generate `link`).

use std::collections::{BTreeMap, VecDeque};

use kernel::vfs::FsLimits;

pub const DIR_SIZE: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mtime: u64,
}

/// What an operation returned, comparable between the model and the real thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Unit,
    Bool(bool),
    Bytes(Vec<u8>),
    Text(String),
    Names(Vec<String>),
    /// kind ('d', 'f', 'l'), size, nlink, mtime
    Stat(char, u64, u64, u64),
}

pub type Res = Result<Out, &'static str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    Yes,
    No,
    Parent,
}

/// Where a path led: the canonical path of its directory, the final name (if any) and whether
/// that entry exists.
#[derive(Debug)]
pub struct Where {
    pub dir: String,
    pub name: Option<String>,
    pub exists: bool,
    pub slash: bool,
}

impl Where {
    pub fn full(&self) -> String {
        match &self.name {
            Some(name) => join(&self.dir, name),
            None => self.dir.clone(),
        }
    }
}

pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

fn parts(path: &str) -> Vec<String> {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

#[derive(Debug, Clone)]
pub struct Model {
    pub nodes: BTreeMap<String, Node>,
    pub limits: FsLimits,
}

impl Model {
    pub fn new(limits: FsLimits) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), Node { kind: Kind::Dir, mtime: 0 });
        Self { nodes, limits }
    }

    fn is_dir(&self, path: &str) -> bool {
        matches!(self.nodes.get(path), Some(Node { kind: Kind::Dir, .. }))
    }

    fn children(&self, dir: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| p.as_str() != "/" && parent(p) == dir)
            .map(|p| p.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    fn subtree(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        self.nodes.keys().filter(|p| p.as_str() == path || p.starts_with(&prefix)).cloned().collect()
    }

    pub fn bytes(&self) -> u64 {
        self.nodes.values().map(|n| if let Kind::File(b) = &n.kind { b.len() as u64 } else { 0 }).sum()
    }

    pub fn inodes(&self) -> u64 {
        self.nodes.len() as u64
    }

    fn touch(&mut self, path: &str, now: u64) {
        if let Some(node) = self.nodes.get_mut(path) {
            node.mtime = now;
        }
    }

    pub fn locate(&self, cwd: &str, path: &str, follow: Follow) -> Result<Where, &'static str> {
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
            let last = todo.is_empty();
            if c == "." {
                continue;
            }
            if c == ".." {
                here.pop();
                continue;
            }
            let full = join(&dir_of(&here), &c);
            match self.nodes.get(&full).map(|n| &n.kind) {
                None if last => return Ok(Where { dir: dir_of(&here), name: Some(c), exists: false, slash }),
                None => return Err("ENOENT"),
                Some(Kind::Symlink(target)) if !last || follow == Follow::Yes || (follow == Follow::No && slash) => {
                    hops += 1;
                    if hops > 40 {
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
                }
                Some(kind) if last => {
                    if slash && *kind != Kind::Dir && follow != Follow::Parent {
                        return Err("ENOTDIR");
                    }
                    return Ok(Where { dir: dir_of(&here), name: Some(c), exists: true, slash });
                }
                Some(Kind::Dir) => here.push(c),
                Some(_) => return Err("ENOTDIR"),
            }
        }
        Ok(Where { dir: dir_of(&here), name: None, exists: true, slash })
    }

    fn check_inodes(&self) -> Result<(), &'static str> {
        if self.inodes() + 1 > self.limits.max_inode_count {
            return Err("ENOSPC");
        }
        Ok(())
    }

    fn check_bytes(&self, old: u64, new: u64) -> Result<(), &'static str> {
        if new > old && self.bytes() - old + new > self.limits.max_filesystem_bytes {
            return Err("ENOSPC");
        }
        Ok(())
    }

    fn check_write(&self, len: usize) -> Result<(), &'static str> {
        if len as u64 > self.limits.max_fd_write_bytes {
            return Err("ENOSPC");
        }
        Ok(())
    }

    fn existing(&self, cwd: &str, path: &str, follow: Follow) -> Result<String, &'static str> {
        let w = self.locate(cwd, path, follow)?;
        if !w.exists {
            return Err("ENOENT");
        }
        Ok(w.full())
    }

    pub fn read(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::Yes)?;
        match &self.nodes[&p].kind {
            Kind::File(b) => Ok(Out::Bytes(b.clone())),
            _ => Err("EISDIR"),
        }
    }

    pub fn pread(&self, cwd: &str, path: &str, offset: u64, len: u64) -> Res {
        if len > self.limits.max_pread_bytes {
            return Err("ENOSPC");
        }
        let Out::Bytes(b) = self.read(cwd, path)? else { unreachable!() };
        Ok(Out::Bytes(b.into_iter().skip(offset as usize).take(len as usize).collect()))
    }

    pub fn exists(&self, cwd: &str, path: &str) -> Res {
        Ok(Out::Bool(matches!(self.locate(cwd, path, Follow::Yes), Ok(Where { exists: true, .. }))))
    }

    pub fn stat(&self, cwd: &str, path: &str, follow: bool) -> Res {
        let p = self.existing(cwd, path, if follow { Follow::Yes } else { Follow::No })?;
        let node = &self.nodes[&p];
        Ok(match &node.kind {
            Kind::Dir => {
                let subdirs = self.children(&p).iter().filter(|c| self.is_dir(&join(&p, c))).count() as u64;
                Out::Stat('d', DIR_SIZE, 2 + subdirs, node.mtime)
            }
            Kind::File(b) => Out::Stat('f', b.len() as u64, 1, node.mtime),
            Kind::Symlink(t) => Out::Stat('l', t.len() as u64, 1, node.mtime),
        })
    }

    pub fn read_dir(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::Yes)?;
        if !self.is_dir(&p) {
            return Err("ENOTDIR");
        }
        let names = self.children(&p);
        if names.len() as u64 > self.limits.max_readdir_entries {
            return Err("ENOSPC");
        }
        Ok(Out::Names(names))
    }

    pub fn realpath(&self, cwd: &str, path: &str) -> Res {
        Ok(Out::Text(self.existing(cwd, path, Follow::Yes)?))
    }

    pub fn read_link(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::No)?;
        match &self.nodes[&p].kind {
            Kind::Symlink(t) => Ok(Out::Text(t.clone())),
            _ => Err("EINVAL"),
        }
    }

    pub fn write(&mut self, cwd: &str, path: &str, data: &[u8], now: u64) -> Res {
        let w = self.locate(cwd, path, Follow::Yes)?;
        let p = w.full();
        if w.exists {
            let Kind::File(old) = &self.nodes[&p].kind else { return Err("EISDIR") };
            self.check_write(data.len())?;
            self.check_bytes(old.len() as u64, data.len() as u64)?;
            self.nodes.insert(p, Node { kind: Kind::File(data.to_vec()), mtime: now });
        } else {
            if w.slash {
                return Err("EISDIR");
            }
            self.check_write(data.len())?;
            self.check_inodes()?;
            self.check_bytes(0, data.len() as u64)?;
            self.nodes.insert(p, Node { kind: Kind::File(data.to_vec()), mtime: now });
            self.touch(&w.dir, now);
        }
        Ok(Out::Unit)
    }

    pub fn truncate(&mut self, cwd: &str, path: &str, len: u64, now: u64) -> Res {
        let p = self.existing(cwd, path, Follow::Yes)?;
        let Kind::File(old) = &self.nodes[&p].kind else { return Err("EISDIR") };
        self.check_bytes(old.len() as u64, len)?;
        let mut bytes = old.clone();
        bytes.resize(len as usize, 0);
        self.nodes.insert(p, Node { kind: Kind::File(bytes), mtime: now });
        Ok(Out::Unit)
    }

    fn mkdir_one(&mut self, cwd: &str, path: &str, now: u64) -> Result<(), &'static str> {
        let w = self.locate(cwd, path, Follow::Parent)?;
        if w.exists {
            return Err("EEXIST");
        }
        self.check_inodes()?;
        self.nodes.insert(w.full(), Node { kind: Kind::Dir, mtime: now });
        self.touch(&w.dir, now);
        Ok(())
    }

    pub fn mkdir(&mut self, cwd: &str, path: &str, recursive: bool, now: u64) -> Res {
        if !recursive {
            self.mkdir_one(cwd, path, now)?;
            return Ok(Out::Unit);
        }
        if path.is_empty() {
            return Err("ENOENT");
        }
        // mkdir -p: mkdir each lexical prefix; all or nothing.
        let saved = self.clone();
        let comps = parts(path);
        let named: Vec<usize> = (0..comps.len()).filter(|&i| comps[i] != "." && comps[i] != "..").collect();
        for (k, &i) in named.iter().enumerate() {
            let last = k + 1 == named.len();
            let prefix = format!("{}{}", if path.starts_with('/') { "/" } else { "" }, comps[..=i].join("/"));
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

    pub fn unlink(&mut self, cwd: &str, path: &str, now: u64) -> Res {
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
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

    pub fn rmdir(&mut self, cwd: &str, path: &str, recursive: bool, now: u64) -> Res {
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
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

    pub fn rename(&mut self, cwd: &str, from: &str, to: &str, now: u64) -> Res {
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
        if src == dst {
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
            let node = self.nodes.remove(&q).unwrap();
            let moved = format!("{dst}{}", &q[src.len()..]);
            self.nodes.insert(moved, node);
        }
        self.touch(&old.dir, now);
        self.touch(&new.dir, now);
        Ok(Out::Unit)
    }

    pub fn symlink(&mut self, cwd: &str, target: &str, path: &str, now: u64) -> Res {
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
        self.nodes.insert(w.full(), Node { kind: Kind::Symlink(target.to_owned()), mtime: now });
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

    /// Every node: path, kind letter, content or target.
    pub fn listing(&self) -> Vec<(String, char, Vec<u8>)> {
        self.nodes
            .iter()
            .map(|(p, n)| match &n.kind {
                Kind::Dir => (p.clone(), 'd', Vec::new()),
                Kind::File(b) => (p.clone(), 'f', b.clone()),
                Kind::Symlink(t) => (p.clone(), 'l', t.as_bytes().to_vec()),
            })
            .collect()
    }
}
