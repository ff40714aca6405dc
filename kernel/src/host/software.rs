//! The VM's software tree: ConfigureVm's command packages, laid out read-only under
//! [`SOFTWARE_ROOT`] the way the original's package projection lays them out:
//!
//! ```text
//! /opt/agentos/pkgs/<name>/<version>/...   the package's files, read from its archive
//! /opt/agentos/pkgs/<name>/current         -> <version>
//! /opt/agentos/bin/<command>               -> ../pkgs/<name>/current/<entry>
//! /opt/agentos/bin/python, python3, node    the sidecar's own interpreters, when it has them
//! ```
//!
//! The interpreter's names are small stub files ([`INTERPRETER_STUB`]) so that a shell finds
//! them on `PATH`; starting one runs the interpreter (see `dispatch::processes`). A package's
//! own command of that name wins.
//!
//! and `/opt/agentos/bin` on the default `PATH`. The tree is a [`HostDir`], so it is mounted
//! like a read-only `host_dir`: the kernel walks it (following its links itself, as the
//! permission policy needs), charges every lookup to the guest, and nothing in it can be
//! written (`EROFS`). No file is copied: a read is a positioned read of the shared archive.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fs::{HostDir, HostFileKind, HostFsError, HostResult, HostStat};
use super::package::{Entry, EntryKind, Package};
use crate::vfs::Errno;

/// Where the software tree is mounted.
pub const SOFTWARE_ROOT: &str = "/opt/agentos";
/// The directory of command links, put on the default `PATH`.
pub const SOFTWARE_BIN: &str = "/opt/agentos/bin";
/// Packages one VM may load: one mount holds them all, and each costs only its index (shared
/// with every other VM loading it); 256 matches the mounts a VM may have.
pub const MAX_SOFTWARE_PACKAGES: usize = 256;
/// Links followed inside the tree before `ELOOP` (Linux's 40).
const MAX_LINK_HOPS: usize = 40;
/// Serial numbers of the tree's own directories and links start here; a package's entries get
/// `(package index + 1) << 32 | entry ino`, so no two nodes share one.
const SYNTHETIC_INO_BASE: u64 = 1;

/// What `/opt/agentos/bin/python` (and the other names of programs the sidecar runs itself) holds.
pub const INTERPRETER_STUB: &[u8] = b"a program the sidecar runs itself: running this file runs it\n";

/// One node of the tree.
#[derive(Debug, Clone, Copy)]
enum Node<'a> {
    /// `/bin/<name>` of an interpreter the sidecar runs itself.
    Interpreter(u64),
    /// `/`, `/bin`, `/pkgs`, `/pkgs/<name>`: listed by the tree itself.
    Dir(u64),
    /// `/bin/<command>` or `/pkgs/<name>/current`.
    Link(u64, &'a str),
    /// Something inside a package.
    InPackage(usize, &'a Entry),
}

/// ConfigureVm's packages, as one read-only directory.
#[derive(Debug)]
pub struct SoftwareTree {
    packages: Vec<Arc<Package>>,
    /// Command name → its link's serial number and target (`../pkgs/<name>/current/<entry>`).
    commands: BTreeMap<String, (u64, String)>,
    /// Package name → its index in `packages`.
    by_name: BTreeMap<String, usize>,
    /// `pkgs/<name>/current` link targets (the version), by package index.
    current: Vec<String>,
    /// Names in `bin` of interpreters the sidecar runs itself (no package provides them).
    interpreters: Vec<String>,
}

impl SoftwareTree {
    /// The tree of `packages`, in order. Two packages of one name, or two providing one
    /// command, are refused (a host that means to replace one removes the other).
    pub fn new(packages: Vec<Arc<Package>>) -> Result<SoftwareTree, String> {
        if packages.len() > MAX_SOFTWARE_PACKAGES {
            return Err(format!(
                "at most {MAX_SOFTWARE_PACKAGES} software packages may be loaded, got {}",
                packages.len()
            ));
        }
        let mut commands = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for (index, package) in packages.iter().enumerate() {
            if package.version == "current" {
                return Err(format!("package {} has the reserved version name \"current\"", package.name));
            }
            if by_name.insert(package.name.clone(), index).is_some() {
                return Err(format!("package {} is loaded twice", package.name));
            }
            for command in &package.commands {
                let target = format!("../pkgs/{}/current/{}", package.name, command.entry);
                if commands.insert(command.name.clone(), target).is_some() {
                    return Err(format!("command \"{}\" is already provided by another package", command.name));
                }
            }
        }
        // Serial numbers by name order, fixed here so a lookup is one map access.
        let commands = commands
            .into_iter()
            .enumerate()
            .map(|(position, (name, target))| (name, (synthetic_ino(position), target)))
            .collect();
        let current = packages.iter().map(|package| package.version.clone()).collect();
        Ok(SoftwareTree { packages, commands, by_name, current, interpreters: Vec::new() })
    }

    /// The tree, with `names` in `bin` as the sidecar's own interpreter (those no package
    /// provides).
    pub fn with_interpreter(mut self, names: &[&str]) -> Self {
        self.interpreters =
            names.iter().filter(|name| !self.commands.contains_key(**name)).map(|name| (*name).to_owned()).collect();
        self
    }

    /// The node at a relative, normalised path (no link followed).
    fn node(&self, path: &str) -> HostResult<Node<'_>> {
        let missing = || HostFsError::new(Errno::ENOENT);
        let mut parts = path.split('/').filter(|part| !part.is_empty());
        let Some(top) = parts.next() else { return Ok(Node::Dir(SYNTHETIC_INO_BASE)) };
        match top {
            "bin" => match (parts.next(), parts.next()) {
                (None, _) => Ok(Node::Dir(SYNTHETIC_INO_BASE + 1)),
                (Some(command), None) => match self.commands.get(command) {
                    Some((ino, target)) => Ok(Node::Link(*ino, target)),
                    None => {
                        let position = self.interpreters.iter().position(|name| name == command).ok_or_else(missing)?;
                        let after = self.commands.len().saturating_add(self.packages.len().saturating_mul(2));
                        Ok(Node::Interpreter(synthetic_ino(after.saturating_add(position))))
                    }
                },
                (Some(_), Some(_)) => Err(HostFsError::new(Errno::ENOTDIR)),
            },
            "pkgs" => {
                let Some(name) = parts.next() else { return Ok(Node::Dir(SYNTHETIC_INO_BASE + 2)) };
                let index = *self.by_name.get(name).ok_or_else(missing)?;
                let package_dir_ino = synthetic_ino(self.commands.len().saturating_add(index.saturating_mul(2)));
                let Some(version) = parts.next() else { return Ok(Node::Dir(package_dir_ino)) };
                let current = self.current.get(index).ok_or_else(missing)?;
                if version == "current" {
                    return match parts.next() {
                        None => Ok(Node::Link(package_dir_ino + 1, current)),
                        // Through a link: `lookup` resolves it first.
                        Some(_) => Err(HostFsError::new(Errno::ENOTDIR)),
                    };
                }
                if version != current {
                    return Err(missing());
                }
                let inside = rest(path, 3);
                let package = self.packages.get(index).ok_or_else(missing)?;
                let entry = package.entry(&format!("/{inside}")).ok_or_else(missing)?;
                Ok(Node::InPackage(index, entry))
            }
            _ => Err(missing()),
        }
    }

    /// Resolves `path`, following every link on the way (the tree's and the packages' own)
    /// and, with `follow_final`, a final one: the canonical path and its node.
    fn lookup(&self, path: &str, follow_final: bool) -> HostResult<(String, Node<'_>)> {
        let mut pending: Vec<String> =
            path.split('/').filter(|part| !part.is_empty()).rev().map(str::to_owned).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0usize;
        while let Some(part) = pending.pop() {
            done.push(part);
            let current = done.join("/");
            let target = match self.node(&current)? {
                Node::Link(_, target) => target,
                Node::InPackage(_, entry) if entry.kind == EntryKind::Symlink => {
                    entry.link_target.as_deref().unwrap_or("")
                }
                _ => continue,
            };
            if pending.is_empty() && !follow_final {
                break;
            }
            hops = hops.saturating_add(1);
            if hops > MAX_LINK_HOPS {
                return Err(HostFsError::new(Errno::ELOOP));
            }
            let joined = join_link(&current, target).ok_or_else(|| HostFsError::new(Errno::ENOENT))?;
            pending.extend(joined.split('/').filter(|part| !part.is_empty()).rev().map(str::to_owned));
            done.clear();
        }
        let canonical = done.join("/");
        let node = self.node(&canonical)?;
        Ok((canonical, node))
    }

    fn follow(&self, path: &str) -> HostResult<(String, Node<'_>)> {
        self.lookup(path, true)
    }

    fn stat_of(&self, node: Node<'_>) -> HostStat {
        match node {
            Node::Dir(ino) => HostStat { ino, ..HostStat::new(HostFileKind::Directory, 0o755, 4096) },
            Node::Interpreter(ino) => HostStat {
                ino,
                ..HostStat::new(HostFileKind::File, 0o755, u64::try_from(INTERPRETER_STUB.len()).unwrap_or(0))
            },
            Node::Link(ino, target) => HostStat {
                ino,
                ..HostStat::new(HostFileKind::Symlink, 0o777, u64::try_from(target.len()).unwrap_or(0))
            },
            Node::InPackage(index, entry) => {
                let kind = match entry.kind {
                    EntryKind::File => HostFileKind::File,
                    EntryKind::Directory => HostFileKind::Directory,
                    EntryKind::Symlink => HostFileKind::Symlink,
                };
                let size = match entry.kind {
                    EntryKind::File => entry.size,
                    EntryKind::Directory => 4096,
                    EntryKind::Symlink => entry.link_target.as_ref().map_or(0, |t| u64::try_from(t.len()).unwrap_or(0)),
                };
                let mtime_ms = u64::try_from(entry.mtime_s).unwrap_or(0).saturating_mul(1000);
                let package_bits = u64::try_from(index).unwrap_or(0).saturating_add(1) << 32;
                HostStat {
                    ino: package_bits | entry.ino,
                    atime_ms: mtime_ms,
                    mtime_ms,
                    ctime_ms: mtime_ms,
                    birthtime_ms: mtime_ms,
                    ..HostStat::new(kind, entry.mode & 0o777, size)
                }
            }
        }
    }

    fn children(&self, path: &str, node: Node<'_>) -> HostResult<Vec<String>> {
        let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        match (node, parts.as_slice()) {
            (Node::Dir(_), []) => Ok(vec!["bin".to_owned(), "pkgs".to_owned()]),
            (Node::Dir(_), ["bin"]) => {
                let mut names: Vec<String> = self.commands.keys().chain(&self.interpreters).cloned().collect();
                names.sort();
                Ok(names)
            }
            (Node::Dir(_), ["pkgs"]) => Ok(self.by_name.keys().cloned().collect()),
            (Node::Dir(_), ["pkgs", name]) => {
                let index = *self.by_name.get(*name).ok_or_else(|| HostFsError::new(Errno::ENOENT))?;
                let version = self.current.get(index).cloned().unwrap_or_default();
                Ok(vec!["current".to_owned(), version])
            }
            (Node::InPackage(index, entry), _) if entry.kind == EntryKind::Directory => {
                let inside = rest(path, 3);
                let package = self.packages.get(index).ok_or_else(|| HostFsError::new(Errno::ENOENT))?;
                Ok(package.children(&format!("/{inside}")))
            }
            _ => Err(HostFsError::new(Errno::ENOTDIR)),
        }
    }

    fn file(&self, path: &str) -> HostResult<(&Package, &Entry)> {
        match self.follow(path)?.1 {
            Node::InPackage(index, entry) if entry.kind == EntryKind::File => {
                let package = self.packages.get(index).ok_or_else(|| HostFsError::new(Errno::ENOENT))?;
                Ok((package, entry))
            }
            _ => Err(HostFsError::new(Errno::EISDIR)),
        }
    }
}

/// The serial number of the tree's own node at `position` (after `/`, `/bin` and `/pkgs`).
fn synthetic_ino(position: usize) -> u64 {
    SYNTHETIC_INO_BASE + 3 + u64::try_from(position).unwrap_or(u64::MAX >> 1)
}

/// `path` without its first `skip` components (`pkgs/<name>/<version>/a/b`, 3 → `a/b`).
fn rest(path: &str, skip: usize) -> String {
    path.split('/').filter(|part| !part.is_empty()).skip(skip).collect::<Vec<_>>().join("/")
}

/// Where the link at `link_path` (relative to the tree) points: relative targets from the
/// link's directory, absolute ones from the package's own root (archives name their own `/`).
/// `None` if it climbs out of the tree.
fn join_link(link_path: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = link_path.split('/').filter(|part| !part.is_empty()).collect();
    parts.pop();
    if let Some(inside) = target.strip_prefix('/') {
        // An archive's absolute link names a path in its own package: pkgs/<name>/<version>/...
        parts.truncate(3);
        return join_link(&format!("{}/x", parts.join("/")), inside);
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

fn read_only<T>() -> HostResult<T> {
    Err(HostFsError::new(Errno::EROFS))
}

impl HostDir for SoftwareTree {
    fn read_file(&self, path: &str, max_bytes: u64) -> HostResult<Vec<u8>> {
        if let Node::Interpreter(_) = self.follow(path)?.1 {
            return self.pread(path, 0, max_bytes);
        }
        let (package, entry) = self.file(path)?;
        if entry.size > max_bytes {
            return Err(HostFsError::new(Errno::EFBIG));
        }
        Ok(package.read(entry, 0, entry.size)?)
    }

    fn pread(&self, path: &str, offset: u64, len: u64) -> HostResult<Vec<u8>> {
        if let Node::Interpreter(_) = self.follow(path)?.1 {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(INTERPRETER_STUB.len());
            let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(INTERPRETER_STUB.len());
            return Ok(INTERPRETER_STUB.get(start..end).unwrap_or_default().to_vec());
        }
        let (package, entry) = self.file(path)?;
        Ok(package.read(entry, offset, len)?)
    }

    fn stat(&self, path: &str) -> HostResult<HostStat> {
        let (_, node) = self.follow(path)?;
        Ok(self.stat_of(node))
    }

    fn lstat(&self, path: &str) -> HostResult<HostStat> {
        Ok(self.stat_of(self.lookup(path, false)?.1))
    }

    fn read_dir(&self, path: &str, max_entries: u64) -> HostResult<Vec<String>> {
        let (resolved, node) = self.follow(path)?;
        let names = self.children(&resolved, node)?;
        if u64::try_from(names.len()).unwrap_or(u64::MAX) > max_entries {
            return Err(HostFsError::new(Errno::EFBIG));
        }
        Ok(names)
    }

    fn realpath(&self, path: &str) -> HostResult<String> {
        Ok(self.follow(path)?.0)
    }

    fn read_link(&self, path: &str) -> HostResult<String> {
        let (path, node) = self.lookup(path, false)?;
        let path = path.as_str();
        match node {
            Node::Link(_, target) => Ok(target.to_owned()),
            Node::InPackage(_, entry) if entry.kind == EntryKind::Symlink => {
                let target = entry.link_target.clone().unwrap_or_default();
                match target.strip_prefix('/') {
                    // Relative to this package's root, from the link's directory.
                    Some(inside) => {
                        let depth = path.split('/').filter(|part| !part.is_empty()).count().saturating_sub(1);
                        Ok(format!("{}{inside}", "../".repeat(depth.saturating_sub(3))))
                    }
                    None => Ok(target),
                }
            }
            _ => Err(HostFsError::new(Errno::EINVAL)),
        }
    }

    fn write_file(&self, _path: &str, _data: &[u8], _mode: u32) -> HostResult<()> {
        read_only()
    }
    fn mkdir(&self, _path: &str, _recursive: bool, _mode: u32) -> HostResult<()> {
        read_only()
    }
    fn remove_file(&self, _path: &str) -> HostResult<()> {
        read_only()
    }
    fn remove_dir(&self, _path: &str, _recursive: bool) -> HostResult<()> {
        read_only()
    }
    fn rename(&self, _from: &str, _to: &str) -> HostResult<()> {
        read_only()
    }
    fn pwrite(&self, _path: &str, _offset: u64, _data: &[u8]) -> HostResult<u64> {
        read_only()
    }
    fn truncate(&self, _path: &str, _len: u64) -> HostResult<()> {
        read_only()
    }
    fn symlink(&self, _target: &str, _path: &str) -> HostResult<()> {
        read_only()
    }
    fn link(&self, _existing: &str, _new: &str) -> HostResult<()> {
        read_only()
    }
    fn chmod(&self, _path: &str, _mode: u32) -> HostResult<()> {
        read_only()
    }
    fn chown(&self, _path: &str, _uid: u32, _gid: u32) -> HostResult<()> {
        read_only()
    }
    fn utimes(&self, _path: &str, _atime_ms: u64, _mtime_ms: u64) -> HostResult<()> {
        read_only()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::super::package::InMemoryPackage;
    use super::*;
    use testkit::packages::PackageWriter;

    fn package(writer: PackageWriter) -> Arc<Package> {
        let bytes = InMemoryPackage { origin: writer.name.clone(), bytes: writer.build() };
        Arc::new(Package::parse(Arc::new(bytes)).expect("parses"))
    }

    fn tree() -> SoftwareTree {
        let tools = PackageWriter::new("tools", "1.2.3")
            .file("/bin/hello", 0o755, b"\0asm hello")
            .file("/lib/data.txt", 0o644, b"data")
            .symlink("/bin/data", "/lib/data.txt");
        let more = PackageWriter::new("more", "0.1").file("/bin/wave", 0o755, b"\0asm wave");
        SoftwareTree::new(vec![package(tools), package(more)]).expect("tree")
    }

    #[test]
    fn the_interpreter_names_are_stub_files_unless_a_package_has_the_command() {
        let tree = tree().with_interpreter(&["python3", "wave"]);
        assert_eq!(tree.read_dir("bin", 100).expect("bin"), ["data", "hello", "python3", "wave"]);
        let stat = tree.stat("bin/python3").expect("stat");
        assert_eq!((stat.kind, stat.mode, stat.size), (HostFileKind::File, 0o755, INTERPRETER_STUB.len() as u64));
        assert_eq!(tree.read_file("bin/python3", 1 << 20).expect("read"), INTERPRETER_STUB);
        assert_eq!(tree.pread("bin/python3", 4, 3).expect("pread"), INTERPRETER_STUB.get(4..7).expect("stub"));
        // `wave` is the package's.
        assert_eq!(tree.read_link("bin/wave").expect("link"), "../pkgs/more/current/bin/wave");
        assert_eq!(tree.write_file("bin/python3", b"x", 0o755).map_err(|e| e.errno), Err(Errno::EROFS));
    }

    #[test]
    fn commands_are_links_into_the_current_version_of_their_package() {
        let tree = tree();
        assert_eq!(tree.read_dir("", 100).expect("root"), ["bin", "pkgs"]);
        assert_eq!(tree.read_dir("bin", 100).expect("bin"), ["data", "hello", "wave"]);
        assert_eq!(tree.read_link("bin/hello").expect("link"), "../pkgs/tools/current/bin/hello");
        assert_eq!(tree.read_link("pkgs/tools/current").expect("link"), "1.2.3");
        assert_eq!(tree.read_dir("pkgs/tools", 100).expect("dir"), ["current", "1.2.3"]);
        assert_eq!(tree.read_file("bin/hello", 1 << 20).expect("read"), b"\0asm hello");
        assert_eq!(tree.read_file("bin/data", 1 << 20).expect("read"), b"data");
        assert_eq!(tree.realpath("bin/wave").expect("real"), "pkgs/more/0.1/bin/wave");
        assert_eq!(tree.pread("pkgs/tools/1.2.3/lib/data.txt", 1, 2).expect("pread"), b"at");
        assert_eq!(tree.lstat("bin/hello").expect("lstat").kind, HostFileKind::Symlink);
        assert_eq!(tree.stat("bin/hello").expect("stat").kind, HostFileKind::File);
        // An archive's absolute link, read by the kernel's walk, stays inside its package.
        assert_eq!(tree.read_link("pkgs/tools/1.2.3/bin/data").expect("link"), "../lib/data.txt");
    }

    #[test]
    fn nothing_in_the_tree_can_be_changed() {
        let tree = tree();
        let refused = |result: HostResult<()>| result.is_err_and(|error| error.errno == Errno::EROFS);
        assert!(refused(tree.write_file("bin/x", b"", 0o644)));
        assert!(refused(tree.mkdir("pkgs/x", false, 0o755)));
        assert!(refused(tree.remove_file("bin/hello")));
        assert!(refused(tree.rename("bin/hello", "bin/x")));
        assert!(refused(tree.chmod("bin/hello", 0o777)));
        assert!(tree.pwrite("pkgs/tools/1.2.3/lib/data.txt", 0, b"x").is_err());
    }

    #[test]
    fn serial_numbers_are_distinct() {
        let tree = tree();
        let paths = ["", "bin", "pkgs", "bin/hello", "bin/wave", "pkgs/tools", "pkgs/tools/current", "pkgs/more"];
        let mut inos: Vec<u64> = paths.iter().map(|path| tree.lstat(path).expect("lstat").ino).collect();
        inos.extend(["pkgs/tools/1.2.3/bin/hello", "pkgs/more/0.1/bin/wave"].map(|p| tree.lstat(p).expect("x").ino));
        let count = inos.len();
        inos.sort_unstable();
        inos.dedup();
        assert_eq!(inos.len(), count);
    }

    #[test]
    fn clashing_packages_and_commands_are_refused() {
        let one = || package(PackageWriter::new("tools", "1").file("/bin/x", 0o755, b""));
        let err = SoftwareTree::new(vec![one(), one()]).expect_err("same name");
        assert!(err.contains("loaded twice"), "{err}");
        let other = package(PackageWriter::new("other", "1").file("/bin/x", 0o755, b""));
        let err = SoftwareTree::new(vec![one(), other]).expect_err("same command");
        assert!(err.contains("already provided"), "{err}");
    }

    #[test]
    fn links_that_loop_or_climb_out_end() {
        let looping = PackageWriter::new("loops", "1").symlink("/bin/a", "b").symlink("/bin/b", "a");
        let tree = SoftwareTree::new(vec![package(looping)]).expect("tree");
        assert_eq!(tree.stat("bin/a").map_err(|e| e.errno), Err(Errno::ELOOP));
        assert_eq!(join_link("bin/x", "../../../escape"), None);
    }
}
