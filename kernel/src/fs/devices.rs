//! Kernel-served trees: `/dev` (devices) and `/proc` (so far only `/proc/self`, describing the
//! caller). Nothing here is stored: the kernel answers every operation itself, from the VM's
//! state. They are mounted over the root filesystem whenever it holds the default base layer
//! (as its default lowest layer or as a `bundledBaseFilesystem` lower), so
//! `disableDefaultBaseLayer` alone removes them; like any mount they hide what the root holds at
//! their paths, and a configured mount at the same path hides them.
//!
//! | path | kind | behaviour |
//! |---|---|---|
//! | `/dev` | dir `0o755` | lists the six devices below |
//! | `/dev/null` | char `0o666`, rdev 1:3 | reads are empty, writes are discarded |
//! | `/dev/zero` | char `0o666`, rdev 1:5 | PREAD gives `len` zero bytes; writes are discarded |
//! | `/dev/urandom` | char `0o666`, rdev 1:9 | PREAD gives `len` bytes of the kernel's seeded entropy; writes are discarded (they never perturb it) |
//! | `/dev/stdin`, `/dev/stdout`, `/dev/stderr` | char `0o666`, rdev 1:3 | a guest that opens one gets its own descriptor 0, 1 or 2 again (like Linux's links to `/proc/self/fd/N`); for the host's own calls (no process) they act as `/dev/null` |
//! | `/proc` | dir `0o555` | lists `mounts` and `self` |
//! | `/proc/mounts` | file `0o444` | the VM's mount table, a line each: `source target fstype options 0 0` (what `df` and `findmnt` read) |
//! | `/proc/self` | dir `0o555` | the caller: the calling process for a guest's call; for the host's own calls, no process (pid 0) |
//! | `/proc/self/cwd` | symlink | to the process's cwd (the VM's for host calls; followed like any symlink) |
//! | `/proc/self/environ` | file `0o400` | the process's environment as it started, `KEY=value\0` each; for host calls the VM's `env` (as the `env` policy let through at create time), sorted by key |
//! | `/proc/self/cmdline` | file `0o444` | the process's `argv`, each NUL-terminated; empty for host calls |
//! | `/proc/self/status` | file `0o444` | `Name`, `State`, `Pid`, `PPid`, `Uid`, `Gid` lines (of `host`, pid 0 and uid 0 for host calls) |
//!
//! Every node is owned by 0:0, has size 0 (like Linux's devtmpfs devices and procfs files) and
//! carries the VM's creation time. READ_FILE of `/dev/zero` or `/dev/urandom` (endless) is
//! `EINVAL`; nothing else changes them: creating an entry in these directories is `EACCES`,
//! writing or truncating a `/proc` file `EACCES`, truncating a device `EINVAL` (as Linux's
//! `truncate(2)` on a non-regular file), CHMOD, CHOWN, UTIMES, REMOVE_*, RENAME and LINK of a
//! node `EPERM`, removing or renaming `/dev` or `/proc` `EBUSY` (they are mount points).

use std::collections::BTreeMap;

use crate::clock::Entropy;
use crate::fs::mounts::{Backend, Mount};
use crate::fs::op::{FsOp, FsReply};
use crate::vfs::{
    path as vpath, Errno, FsError, FsLimits, LimitKind, Stat, SYMLINK_MODE, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG,
};

/// `dev` of every `/dev` node (the root filesystem's is 1).
pub const DEV_TREE_DEV: u64 = 5;
/// `dev` of every `/proc` node.
pub const PROC_TREE_DEV: u64 = 4;
/// `rdev` of `/dev/null` (and of stdin/stdout/stderr, connected to it), `/dev/zero` and
/// `/dev/urandom`: Linux's device numbers, encoded like glibc's `makedev`.
pub const NULL_RDEV: u64 = makedev(1, 3);
pub const ZERO_RDEV: u64 = makedev(1, 5);
pub const URANDOM_RDEV: u64 = makedev(1, 9);

/// Serial numbers of `/dev/stdin`, `/dev/stdout` and `/dev/stderr` (with [`DEV_TREE_DEV`], how a
/// guest's open recognises them, whatever link led there).
pub const STDIO_INOS: [u64; 3] = [5, 6, 7];

/// What READ_FILE of an endless device says after `EINVAL: invalid argument, open '<path>'`.
pub const ENDLESS_DEVICE: &str = "the device never ends, so it cannot be read whole; use PREAD with a length";

/// The process a guest's call comes from, as `/proc/self` shows it. Built once when the process
/// starts (it never changes: a guest's cwd is its libc's business after that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSelf {
    pub pid: u32,
    pub ppid: u32,
    /// The command's file name (`Name:` of `status`).
    pub name: String,
    /// `argv`, each argument NUL-terminated.
    pub cmdline: Vec<u8>,
    /// `KEY=value\0` each, in the order the process got them.
    pub environ: Vec<u8>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
}

impl ProcSelf {
    fn status(&self) -> Vec<u8> {
        let (uid, gid) = (self.uid, self.gid);
        format!(
            "Name:\t{}\nState:\tR (running)\nPid:\t{}\nPPid:\t{}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\n",
            self.name, self.pid, self.ppid
        )
        .into_bytes()
    }
}

/// `/proc/self/status` for a host call (no process).
const HOST_STATUS: &str = "Name:\thost\nState:\tR (running)\nPid:\t0\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";

/// glibc's `makedev(major, minor)`.
pub const fn makedev(major: u64, minor: u64) -> u64 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Dev,
    Proc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Null,
    Zero,
    Urandom,
    Stdin,
    Stdout,
    Stderr,
}

/// `/dev`'s entries, sorted by name.
const DEVICES: [(&str, Device); 6] = [
    ("null", Device::Null),
    ("stderr", Device::Stderr),
    ("stdin", Device::Stdin),
    ("stdout", Device::Stdout),
    ("urandom", Device::Urandom),
    ("zero", Device::Zero),
];

/// `/proc/self`'s entries, sorted.
const PROC_SELF_ENTRIES: [&str; 4] = ["cmdline", "cwd", "environ", "status"];

impl Device {
    fn rdev(self) -> u64 {
        match self {
            Self::Null | Self::Stdin | Self::Stdout | Self::Stderr => NULL_RDEV,
            Self::Zero => ZERO_RDEV,
            Self::Urandom => URANDOM_RDEV,
        }
    }

    fn ino(self) -> u64 {
        match self {
            Self::Null => 2,
            Self::Zero => 3,
            Self::Urandom => 4,
            Self::Stdin => STDIO_INOS[0],
            Self::Stdout => STDIO_INOS[1],
            Self::Stderr => STDIO_INOS[2],
        }
    }

    fn endless(self) -> bool {
        matches!(self, Self::Zero | Self::Urandom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root(Tree),
    Device(Device),
    ProcSelf,
    Cwd,
    Environ,
    Cmdline,
    Status,
    /// `/proc/mounts`: the VM's mount table.
    Mounts,
}

impl Node {
    fn is_dir(self) -> bool {
        matches!(self, Self::Root(_) | Self::ProcSelf)
    }
}

/// What a walk across mounts sees at a path of a kernel tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir,
    Other,
    /// `/proc/self/cwd`: leads to the VM's cwd.
    CwdLink,
}

/// One operation on a kernel tree; paths are tree-local and canonical (the walk resolved them).
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub op: FsOp<'a>,
    pub local: &'a str,
    pub trailing_slash: bool,
    /// RENAME's and LINK's destination, when in the same tree.
    pub to: Option<&'a str>,
    pub cwd: &'a str,
    pub limits: FsLimits,
    /// The calling process, for a guest's call (`None`: the host's own).
    pub caller: Option<&'a ProcSelf>,
    /// `/proc/mounts` as it reads now (empty for `/dev` calls).
    pub mount_table: &'a str,
}

/// One kernel-served tree.
#[derive(Debug)]
pub(crate) struct KernelFs {
    tree: Tree,
    /// The VM's creation time: every node's times.
    boot_ms: u64,
    /// `/proc/self/environ`.
    environ: Vec<u8>,
}

/// The kernel trees of a VM created at `boot_ms` with the (policy-filtered) environment `env`.
pub(crate) fn mounts(boot_ms: u64, env: &BTreeMap<String, String>) -> Vec<Mount> {
    let mut environ = Vec::new();
    for (key, value) in env {
        environ.extend_from_slice(key.as_bytes());
        environ.push(b'=');
        environ.extend_from_slice(value.as_bytes());
        environ.push(0);
    }
    let mount = |name: &str, fs: KernelFs| Mount {
        guest_path: format!("/{name}"),
        components: vec![name.to_owned()],
        read_only: false,
        backend: Backend::Kernel(fs),
    };
    vec![
        mount("dev", KernelFs { tree: Tree::Dev, boot_ms, environ: Vec::new() }),
        mount("proc", KernelFs { tree: Tree::Proc, boot_ms, environ }),
    ]
}

impl KernelFs {
    fn lookup(&self, local: &str) -> Option<Node> {
        let parts: Vec<&str> = vpath::split(local).collect();
        match (self.tree, parts.as_slice()) {
            (tree, []) => Some(Node::Root(tree)),
            (Tree::Dev, [name]) => DEVICES.iter().find(|(n, _)| n == name).map(|(_, device)| Node::Device(*device)),
            (Tree::Proc, ["self"]) => Some(Node::ProcSelf),
            (Tree::Proc, ["mounts"]) => Some(Node::Mounts),
            (Tree::Proc, ["self", name]) => match *name {
                "cwd" => Some(Node::Cwd),
                "environ" => Some(Node::Environ),
                "cmdline" => Some(Node::Cmdline),
                "status" => Some(Node::Status),
                _ => None,
            },
            _ => None,
        }
    }

    /// What is at `local`, for path resolution.
    pub(crate) fn entry(&self, local: &str) -> Option<Entry> {
        self.lookup(local).map(|node| match node {
            Node::Cwd => Entry::CwdLink,
            node if node.is_dir() => Entry::Dir,
            _ => Entry::Other,
        })
    }

    fn children(node: Node) -> Vec<String> {
        match node {
            Node::Root(Tree::Dev) => DEVICES.iter().map(|(name, _)| (*name).to_owned()).collect(),
            Node::Root(Tree::Proc) => vec!["mounts".to_owned(), "self".to_owned()],
            Node::ProcSelf => PROC_SELF_ENTRIES.iter().map(|name| (*name).to_owned()).collect(),
            _ => Vec::new(),
        }
    }

    fn stat(&self, node: Node) -> Stat {
        let (mode, rdev, ino, nlink) = match node {
            Node::Root(Tree::Dev) => (S_IFDIR | 0o755, 0, 1, 2),
            Node::Root(Tree::Proc) => (S_IFDIR | 0o555, 0, 1, 3),
            Node::ProcSelf => (S_IFDIR | 0o555, 0, 2, 2),
            Node::Device(device) => (S_IFCHR | 0o666, device.rdev(), device.ino(), 1),
            Node::Cwd => (S_IFLNK | SYMLINK_MODE, 0, 3, 1),
            Node::Environ => (S_IFREG | 0o400, 0, 4, 1),
            Node::Cmdline => (S_IFREG | 0o444, 0, 5, 1),
            Node::Status => (S_IFREG | 0o444, 0, 6, 1),
            Node::Mounts => (S_IFREG | 0o444, 0, 7, 1),
        };
        let dev = match self.tree {
            Tree::Dev => DEV_TREE_DEV,
            Tree::Proc => PROC_TREE_DEV,
        };
        Stat {
            mode,
            size: 0,
            blocks: 0,
            dev,
            rdev,
            is_directory: node.is_dir(),
            is_symbolic_link: node == Node::Cwd,
            atime_ms: self.boot_ms,
            mtime_ms: self.boot_ms,
            ctime_ms: self.boot_ms,
            birthtime_ms: self.boot_ms,
            atime_ns: self.boot_ms.saturating_mul(crate::vfs::NS_PER_MS),
            mtime_ns: self.boot_ms.saturating_mul(crate::vfs::NS_PER_MS),
            ino,
            nlink,
            uid: 0,
            gid: 0,
        }
    }

    /// A `/proc` file's content, for `caller` (the host's view without one).
    fn content(&self, node: Node, call: &Call<'_>) -> Vec<u8> {
        match (node, call.caller) {
            (Node::Mounts, _) => call.mount_table.as_bytes().to_vec(),
            (Node::Environ, Some(caller)) => caller.environ.clone(),
            (Node::Environ, None) => self.environ.clone(),
            (Node::Cmdline, Some(caller)) => caller.cmdline.clone(),
            (Node::Status, Some(caller)) => caller.status(),
            (Node::Status, None) => HOST_STATUS.as_bytes().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Why an entry cannot be created at missing `local`: `ENOTDIR` below a non-directory,
    /// else `EACCES` (nothing can be added to these trees).
    fn create_error(&self, local: &str) -> FsError {
        let mut parts: Vec<&str> = vpath::split(local).collect();
        while parts.pop().is_some() {
            if let Some(node) = self.lookup(&format!("/{}", parts.join("/"))) {
                return FsError::new(if node.is_dir() { Errno::EACCES } else { Errno::ENOTDIR });
            }
        }
        FsError::new(Errno::EACCES)
    }

    /// Runs one operation (the policy already allowed it). Errors carry no label: the caller
    /// adds the request's syscall and path.
    pub(crate) fn execute(&self, call: &Call<'_>, entropy: &mut Entropy) -> Result<FsReply, FsError> {
        let node = self.lookup(call.local);
        let slash_on_file = call.trailing_slash && node.is_some_and(|node| !node.is_dir());
        if call.op == FsOp::Exists {
            return Ok(FsReply::Exists(node.is_some() && !slash_on_file));
        }
        if slash_on_file {
            return Err(Errno::ENOTDIR.into());
        }
        if call.op.mutates() {
            return self.change(call, node);
        }
        let node = node.ok_or_else(|| FsError::new(Errno::ENOENT))?;
        match call.op {
            FsOp::Stat | FsOp::Lstat => Ok(FsReply::Stat(self.stat(node))),
            FsOp::ReadFile => match node {
                node if node.is_dir() => Err(FsError::new(Errno::EISDIR)),
                Node::Device(device) if device.endless() => {
                    Err(FsError::new(Errno::EINVAL).with_detail(ENDLESS_DEVICE))
                }
                Node::Cwd => Err(FsError::new(Errno::EIO)),
                node => Ok(FsReply::Content(self.content(node, call))),
            },
            FsOp::Pread { offset, len } => self.pread(call, node, offset, len, entropy),
            FsOp::ReadDir => self.list(call, node),
            FsOp::Realpath => Ok(FsReply::Target(call.local.to_owned())),
            FsOp::ReadLink => match node {
                Node::Cwd => Ok(FsReply::Target(call.caller.map_or(call.cwd, |caller| caller.cwd.as_str()).to_owned())),
                _ => Err(FsError::new(Errno::EINVAL)),
            },
            _ => Err(FsError::new(Errno::EIO)),
        }
    }

    /// An operation that would change the tree: only writes to devices succeed (their bytes
    /// are dropped); the rest fail as Linux's devtmpfs and procfs do for an unprivileged user.
    fn change(&self, call: &Call<'_>, node: Option<Node>) -> Result<FsReply, FsError> {
        let existing = || node.ok_or_else(|| FsError::new(Errno::ENOENT));
        let fail = |errno: Errno| Err(FsError::new(errno));
        match call.op {
            FsOp::WriteFile { data, .. } => match node {
                None => Err(self.create_error(call.local)),
                Some(node) if node.is_dir() => fail(Errno::EISDIR),
                Some(Node::Device(_)) => {
                    let limit = call.limits.max_fd_write_bytes;
                    if u64::try_from(data.len()).unwrap_or(u64::MAX) > limit {
                        return Err(FsError::limit_exceeded(LimitKind::FdWriteBytes, limit));
                    }
                    Ok(FsReply::Done)
                }
                Some(_) => fail(Errno::EACCES),
            },
            FsOp::CreateDir { .. } | FsOp::Mkdir { .. } => match node {
                Some(node) if node.is_dir() && matches!(call.op, FsOp::Mkdir { recursive: true, .. }) => {
                    Ok(FsReply::Done)
                }
                Some(_) => fail(Errno::EEXIST),
                None => Err(self.create_error(call.local)),
            },
            FsOp::Symlink { .. } => match node {
                Some(_) => fail(Errno::EEXIST),
                None => Err(self.create_error(call.local)),
            },
            FsOp::RemoveFile => match existing()? {
                node if node.is_dir() => fail(Errno::EISDIR),
                _ => fail(Errno::EPERM),
            },
            FsOp::RemoveDir { .. } => match existing()? {
                node if node.is_dir() => fail(Errno::EPERM),
                _ => fail(Errno::ENOTDIR),
            },
            FsOp::Link { .. } => {
                existing()?;
                match call.to.and_then(|to| self.lookup(to)) {
                    Some(_) => fail(Errno::EEXIST),
                    None => fail(Errno::EPERM),
                }
            }
            FsOp::Truncate { .. } => match existing()? {
                node if node.is_dir() => fail(Errno::EISDIR),
                Node::Device(_) => fail(Errno::EINVAL),
                _ => fail(Errno::EACCES),
            },
            _ => existing().and_then(|_| fail(Errno::EPERM)),
        }
    }

    /// READ_DIR of an existing node, bounded by `maxReaddirEntries`.
    fn list(&self, call: &Call<'_>, node: Node) -> Result<FsReply, FsError> {
        if !node.is_dir() {
            return Err(FsError::new(Errno::ENOTDIR));
        }
        let entries = Self::children(node);
        let limit = call.limits.max_readdir_entries;
        if u64::try_from(entries.len()).unwrap_or(u64::MAX) > limit {
            return Err(FsError::limit_exceeded(LimitKind::ReaddirEntries, limit));
        }
        Ok(FsReply::Entries(entries))
    }

    /// PREAD of an existing node: devices make their bytes, files and `/proc` entries give a
    /// window of their content.
    fn pread(
        &self,
        call: &Call<'_>,
        node: Node,
        offset: u64,
        len: u64,
        entropy: &mut Entropy,
    ) -> Result<FsReply, FsError> {
        let limit = call.limits.max_pread_bytes;
        if len > limit {
            return Err(FsError::limit_exceeded(LimitKind::PreadBytes, limit));
        }
        match node {
            node if node.is_dir() => Err(FsError::new(Errno::EISDIR)),
            Node::Device(Device::Zero) => Ok(FsReply::Content(vec![0; buffer_len(len)?])),
            Node::Device(Device::Urandom) => {
                let mut bytes = vec![0; buffer_len(len)?];
                entropy.fill(&mut bytes);
                Ok(FsReply::Content(bytes))
            }
            Node::Cwd => Err(FsError::new(Errno::EIO)),
            node => Ok(FsReply::Content(window(&self.content(node, call), offset, len))),
        }
    }
}

/// A PREAD length as a buffer size (already bounded by `maxPreadBytes`).
fn buffer_len(len: u64) -> Result<usize, FsError> {
    usize::try_from(len).map_err(|_| FsError::new(Errno::EFBIG))
}

/// At most `len` bytes of `bytes` from `offset` (none past the end).
fn window(bytes: &[u8], offset: u64, len: u64) -> Vec<u8> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(bytes.len());
    bytes.get(start..end).unwrap_or_default().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_match_linux() {
        assert_eq!((NULL_RDEV, ZERO_RDEV, URANDOM_RDEV), (259, 261, 265));
        // Minors above 255 and majors above 4095 go to the high bits, as in glibc.
        assert_eq!(makedev(136, 300), 0x0010_882c);
        assert_eq!(makedev(4096, 0), 1 << 44);
    }

    #[test]
    fn windows() {
        assert_eq!(window(b"hello", 1, 3), b"ell");
        assert_eq!(window(b"hello", 9, 3), b"");
        assert_eq!(window(b"hello", 3, u64::MAX), b"lo");
    }
}
