//! A VM's filesystem: its root overlay, its working directory, its layer store, its mounts, and
//! the 20 typed operations (`FsOp`) that guest system calls, the kernel's own reads and the
//! host's `GuestFilesystemCallRequest`s (through `wire.rs`, the only file that speaks the wire's
//! filesystem types) all run through.
//!
//! Every operation first checks the VM's `fs` permission policy, then runs on the root overlay
//! with relative paths resolved against the guest cwd. The policy is asked about the path the
//! operation will really touch (symlinks and `..` resolved inside the VM, the final component
//! followed only by operations that follow it), so a symlink cannot carry an operation past the
//! policy. Capabilities and the operation labels of denial messages
//! (`EACCES: permission denied, {label} '{path}': {reason}`) follow the original sidecar. A rule
//! matches an operation when it names the capability, the operation's own narrower capability
//! (last column; see `permissions::Check`) or `*`; denials and prompts name the capability:
//!
//! | operation | capability | label | a rule may also name |
//! |---|---|---|---|
//! | READ_FILE, PREAD, REALPATH | `fs.read` | `read` | |
//! | READ_LINK | `fs.read` | `readlink` | `readlink` |
//! | WRITE_FILE | `fs.write` | `write` | |
//! | LINK (both paths) | `fs.write` | `link` | `link` |
//! | CHMOD, CHOWN, UTIMES, TRUNCATE | `fs.write` | `chmod`, `chown`, `utimes`, `truncate` | the same |
//! | STAT, LSTAT | `fs.stat` | `stat` | |
//! | EXISTS | `fs.stat` | `exists` (a denial answers `exists: false`, like the original) | |
//! | READ_DIR | `fs.readdir` | `readdir` | |
//! | MKDIR, CREATE_DIR | `fs.create_dir` | `mkdir`, `createDir` | |
//! | REMOVE_FILE, REMOVE_DIR | `fs.rm` | `rm` | |
//! | RENAME (both paths) | `fs.rename` | `rename` | |
//! | SYMLINK (the link's path) | `fs.symlink` | `symlink` | |
//!
//! `fs.mount_sensitive` is no guest operation's: as in the original, a mount (ConfigureVm) needs
//! `fs.write` on its guest path, and `fs.mount_sensitive` too over `/etc` or `/proc`.
//!
//! An `ask` rule is a denial here (`permission prompt required for fs.x`): prompts suspend
//! guest operations, which arrive with processes; a host's own request is answered at once.
//!
//! Renaming a directory and removing one recursively act on every entry below it, which the
//! policy is never asked about. So when a rule could judge an entry below the directory (at its
//! old name or, for a rename, its new one) differently from the directory itself, RENAME is
//! refused with `EXDEV` (tools like `mv` then copy entry by entry, each copy checked) and
//! REMOVE_DIR `recursive` with `EACCES`, both with the reason
//! `a permission rule applies below this directory` (see `CompiledPolicy::differs_below`).
//! A host's RENAME is refused the same way (status `EXDEV`).
//!
//! When the root holds the default base layer, the kernel's `/dev` and `/proc` trees (see
//! `synthetic`) are mounted over it, so every call is resolved across mounts; the policy
//! applies to them like to any path.

pub(crate) mod backend;
pub mod devices;
pub mod host_gate;
pub mod js_bridge;
pub mod layers;
pub mod mounts;
pub(crate) mod op;
pub(crate) mod open_files;
pub(crate) mod wire;

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::clock::{Entropy, Now};
use crate::error::{RejectCode, Rejection};
use crate::fs::backend::{FsOps, HostBackend};
use crate::fs::host_gate::{GatedDir, HostGate, HostMount};
use crate::fs::js_bridge::{BridgeCall, BridgeReply};
use crate::fs::layers::LayerStore;
use crate::fs::mounts::{Backend, Final, Mount, Namespace, Owner, WalkError, Walked};
use crate::fs::op::Subject;
pub(crate) use crate::fs::op::{FsOp, FsReply, HostOp};
pub(crate) use crate::fs::wire::CallOutcome;
pub use crate::fs::wire::HOST_FILESYSTEM_STATUS_OK;
use crate::policy::config::{self, CreateVmConfig};
use crate::policy::permissions::{errno_message, Capability, Check, CompiledPolicy, Decision, Domain};
use crate::vfs::{
    Errno, FsError, FsLimits, Layer, Overlay, Stat, UpperState, VPath, DEFAULT_DIR_MODE, DIR_SIZE, FILESYSTEM_DEV,
    MAX_SYMLINK_HOPS, S_IFDIR,
};

/// Why renaming or recursively removing a directory was refused: a rule of the fs policy could
/// judge some entry below it differently from the directory itself (see
/// [`CompiledPolicy::differs_below`]).
const RULE_BELOW: &str = "a permission rule applies below this directory";

/// What a filesystem call produced: its answer, or a js_bridge call the answer waits for.
#[derive(Debug)]
pub(crate) enum FsOutcome {
    Done(FsReply),
    Bridge(BridgeCall),
}

/// One VM's filesystem state.
#[derive(Debug)]
pub(crate) struct VmFilesystem {
    root: Overlay,
    cwd: String,
    limits: FsLimits,
    layers: LayerStore,
    /// ConfigureVm's mounts, in the order given, then the kernel's own trees (`/dev`, `/proc`)
    /// when the root holds the default base layer.
    mounts: Vec<Mount>,
    /// While a guest process's call runs: its permission prompts (see [`GuestAsks`]).
    guest_asks: RefCell<Option<GuestAsks>>,
    /// The process whose call is running, for `/proc/self` (`None` for the host's own calls).
    caller: Option<std::sync::Arc<devices::ProcSelf>>,
    /// Where calls to host directories go, and their count since the last
    /// [`take_host_calls`](Self::take_host_calls): each is a real system call, which the guest
    /// that caused it pays for.
    host_gate: HostGate,
    /// The key held files of the root's writable layer carry (see `open_files`): a new one
    /// whenever that layer is replaced.
    root_key: u64,
    /// The key of each mount's files, by mount index: new ones whenever the mounts change.
    mount_keys: Vec<u64>,
    /// The next key to give.
    next_key: u64,
}

/// How a guest process's filesystem call meets `ask` rules. A host's own call denies them; a
/// guest's call (with prompts enabled for the VM) stops at the first `ask` not yet answered,
/// naming it in `needed`, and the process waits for the host's answer, then retries the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GuestAsks {
    pub(crate) prompts_enabled: bool,
    /// What the host allowed for the call being retried.
    pub(crate) granted: Vec<(Capability, String)>,
    /// What the host refused, with why; the retried call fails with it once.
    pub(crate) refused: Option<(Capability, String, String)>,
    /// The `ask` the call stopped at.
    pub(crate) needed: Option<(Capability, String)>,
}

impl VmFilesystem {
    /// The root filesystem of a new VM (see [`layers::build_root`]); relative paths resolve
    /// against the config's `cwd` (default `/home/user`). When the root holds the default base
    /// layer, the kernel's `/dev` and `/proc` are mounted over it, `/proc/self/environ` showing
    /// `env` (the config's, filtered by the env policy).
    pub(crate) fn build(
        config: &CreateVmConfig,
        limits: &config::ResolvedLimits,
        env: &BTreeMap<String, String>,
        base: &Layer,
        now: Now,
    ) -> Result<Self, Rejection> {
        let limits = layers::fs_limits(limits);
        let root = layers::build_root(config, limits, base, now)?;
        let mounts = if layers::holds_base_layer(config) { devices::mounts(now.wall_ms, env) } else { Vec::new() };
        Ok(Self {
            root,
            cwd: config.guest_cwd().to_owned(),
            limits,
            layers: LayerStore::default(),
            mounts,
            guest_asks: RefCell::new(None),
            caller: None,
            host_gate: HostGate::default(),
            root_key: 0,
            mount_keys: Vec::new(),
            next_key: 1,
        }
        .with_fresh_mount_keys())
    }

    /// Bytes of file content the VM holds in memory: its root's own layer and its `memory`
    /// mounts (shared base layers are counted once, nowhere; host files are the host's).
    pub(crate) fn content_bytes(&self) -> u64 {
        self.mounts.iter().fold(self.root.upper().total_bytes(), |sum, mount| match &mount.backend {
            Backend::Memory(fs) => sum.saturating_add(fs.total_bytes()),
            _ => sum,
        })
    }

    /// Host directory operations made since the last call (and resets the count).
    pub(crate) fn take_host_calls(&self) -> u64 {
        self.host_gate.take_calls()
    }

    /// The gate a guest's call defers its host calls through (see `host_gate`).
    pub(crate) fn host_gate(&self) -> &HostGate {
        &self.host_gate
    }

    /// Whether a configured `host_dir` mount is among the mounts (whose calls may be deferred).
    pub(crate) fn has_host_dirs(&self) -> bool {
        self.mounts.iter().any(|mount| matches!(&mount.backend, Backend::Host(host) if host.deferrable))
    }

    pub(crate) fn host_gate_mut(&mut self) -> &mut HostGate {
        &mut self.host_gate
    }

    pub(crate) fn root(&self) -> &Overlay {
        &self.root
    }

    pub(crate) fn cwd(&self) -> &str {
        &self.cwd
    }

    pub(crate) fn layer_ids(&self) -> Vec<String> {
        self.layers.ids()
    }

    // -----------------------------------------------------------------------------------------
    // Typed calls
    // -----------------------------------------------------------------------------------------

    /// Runs one operation on `path`: the permission check, then the operation on the filesystem
    /// that owns the path. A denied EXISTS answers `false`, like the original.
    pub(crate) fn call(
        &mut self,
        policy: &CompiledPolicy,
        path: &str,
        op: FsOp<'_>,
        entropy: &mut Entropy,
        now: Now,
    ) -> Result<FsOutcome, Rejection> {
        let (check, label, subject) = op.access();
        let authorized = self.authorize(policy, check, label, path, subject);
        let resource = match authorized {
            Err(_) if op == FsOp::Exists => return Ok(FsOutcome::Done(FsReply::Exists(false))),
            authorized => authorized?,
        };
        let destination_resource = match op.destination() {
            Some(destination) => Some(self.authorize(policy, check, label, destination, Subject::NoFollow)?),
            None => None,
        };
        match (op, destination_resource) {
            (FsOp::Rename { .. }, Some(to)) => self.guard_rename(policy, path, &resource, &to)?,
            (FsOp::RemoveDir { recursive: true }, _) => self.guard_removal(policy, path, &resource)?,
            _ => {}
        }
        if !self.mounts.is_empty() {
            return self.call_mounted(path, op, entropy, now);
        }
        let at = VPath::at(&self.cwd, path);
        let to = op.destination().map(|d| VPath::at(&self.cwd, d));
        execute(&mut self.root, op, at, to, now).map(FsOutcome::Done).map_err(Rejection::from)
    }

    /// A call in a VM with mounts (already authorized). Paths that never touch a mount are
    /// resolved by the root filesystem exactly as without mounts; the others are resolved across
    /// mounts ([`Namespace::walk`]) and run by the filesystem that owns them, with errors naming
    /// the paths as given.
    fn call_mounted(
        &mut self,
        path: &str,
        op: FsOp<'_>,
        entropy: &mut Entropy,
        now: Now,
    ) -> Result<FsOutcome, Rejection> {
        let namespace = self.namespace();
        let lenient = matches!(op, FsOp::Mkdir { recursive: true, .. });
        let walked = namespace.walk(path, op.final_mode(), lenient);
        let walked_to = op.destination().map(|d| namespace.walk(d, Final::Parent, false));
        let untouched = |walk: &Result<Walked, WalkError>| match walk {
            Ok(walked) => !walked.touched,
            Err(error) => !error.touched,
        };
        if untouched(&walked) && walked_to.as_ref().is_none_or(untouched) {
            return self.call_on_root(path, op, &walked, walked_to.as_ref(), now).map(FsOutcome::Done);
        }
        let failed = |error: WalkError| Rejection::from(op.failure(error.errno, path));
        let from = match walked {
            Ok(from) => from,
            Err(_) if op == FsOp::Exists => return Ok(FsOutcome::Done(FsReply::Exists(false))),
            Err(error) => return Err(failed(error)),
        };
        let to = walked_to.transpose().map_err(failed)?;
        self.check_busy(path, op, &from, to.as_ref())?;
        if to.as_ref().is_some_and(|to| to.owner != from.owner) {
            return Err(Rejection::from(op.failure(Errno::EXDEV, path)));
        }
        if let Some(reply) = self.answer_virtual_dir(op, &from) {
            return Ok(FsOutcome::Done(reply));
        }
        self.materialize_parents(path, op, &from, to.as_ref(), now)?;
        let children = self.namespace().mount_children(&from.components);
        if let Some(bridge) = self.bridge_call(path, op, &from, to.as_ref(), &children)? {
            return Ok(FsOutcome::Bridge(bridge));
        }
        let reply = self
            .run_on_owner(op, &from, to.as_ref(), entropy, now)
            .map_err(|error| Rejection::from(op.relabel(error, path)))?;
        Ok(FsOutcome::Done(match reply {
            FsReply::Entries(mut entries) => {
                merge_names(&mut entries, children);
                FsReply::Entries(entries)
            }
            // A mount's realpath is mount-local; the root's is already the guest path.
            FsReply::Target(local) if op == FsOp::Realpath => match from.owner {
                Owner::Mount(index) => {
                    let mount_path = self.mounts.get(index).map_or("/", |m| m.guest_path.as_str());
                    FsReply::Target(join_guest(mount_path, &local))
                }
                Owner::Root => FsReply::Target(local),
            },
            reply => reply,
        }))
    }

    /// A call that never touches a mount: the root filesystem resolves it, as without mounts
    /// (same errors, same results), unless it would remove or rename what a mount hangs from.
    fn call_on_root(
        &mut self,
        path: &str,
        op: FsOp<'_>,
        walked: &Result<Walked, WalkError>,
        walked_to: Option<&Result<Walked, WalkError>>,
        now: Now,
    ) -> Result<FsReply, Rejection> {
        if let Ok(from) = walked {
            let to = walked_to.and_then(|to| to.as_ref().ok());
            self.check_busy(path, op, from, to)?;
        }
        let children = match (walked, op) {
            (Ok(dir), FsOp::ReadDir) => self.namespace().mount_children(&dir.components),
            _ => Vec::new(),
        };
        let at = VPath::at(&self.cwd, path);
        let to = op.destination().filter(|_| walked_to.is_some()).map(|d| VPath::at(&self.cwd, d));
        let mut reply = execute(&mut self.root, op, at, to, now).map_err(Rejection::from)?;
        if let FsReply::Entries(entries) = &mut reply {
            merge_names(entries, children);
        }
        Ok(reply)
    }

    /// Answers the calls that only look at a directory existing because a mount point lies below
    /// it (`stat`, `exists`, `readdir`, `realpath`); `None` for any other call.
    fn answer_virtual_dir(&self, op: FsOp<'_>, from: &Walked) -> Option<FsReply> {
        let namespace = self.namespace();
        if !namespace.is_virtual_dir(&from.components) {
            return None;
        }
        match op {
            FsOp::Stat | FsOp::Lstat => Some(FsReply::Stat(virtual_dir_stat())),
            FsOp::Exists => Some(FsReply::Exists(true)),
            FsOp::ReadDir => Some(FsReply::Entries(namespace.mount_children(&from.components))),
            FsOp::Realpath => Some(FsReply::Target(from.canonical())),
            _ => None,
        }
    }

    /// Creating an entry in a directory that exists only on the way to a mount point makes that
    /// directory real in the root filesystem first.
    fn materialize_parents(
        &mut self,
        path: &str,
        op: FsOp<'_>,
        from: &Walked,
        to: Option<&Walked>,
        now: Now,
    ) -> Result<(), Rejection> {
        let Some(created) = (if op.creates() { Some(from) } else { to }) else { return Ok(()) };
        let parent = created.components.split_last().map(|(_, parent)| parent).unwrap_or_default();
        if created.owner == Owner::Root && !parent.is_empty() && self.namespace().is_virtual_dir(parent) {
            let dir = format!("/{}", parent.join("/"));
            self.root.mkdir(dir.as_str(), true, now).map_err(|e| Rejection::from(op.relabel(e, path)))?;
        }
        Ok(())
    }

    /// The host call a js_bridge mount answers for this operation; `None` for any other owner.
    fn bridge_call(
        &mut self,
        path: &str,
        op: FsOp<'_>,
        from: &Walked,
        to: Option<&Walked>,
        children: &[String],
    ) -> Result<Option<BridgeCall>, Rejection> {
        let Owner::Mount(index) = from.owner else { return Ok(None) };
        let limits = self.limits;
        let Some(mount) = self.mounts.get_mut(index) else { return Ok(None) };
        let Backend::Bridge(bridge) = &mut mount.backend else { return Ok(None) };
        if mount.read_only && op.mutates() {
            return Err(Rejection::from(op.failure(Errno::EROFS, path)));
        }
        let (js_operation, args) =
            js_bridge::operation_and_args(op, &from.local, to.map_or("", |to| to.local.as_str()));
        let target = match op {
            FsOp::Symlink { target } => Some(target.to_owned()),
            FsOp::Rename { to } | FsOp::Link { to } => Some(to.to_owned()),
            _ => None,
        };
        let reply = BridgeReply {
            operation: op.wire_operation(),
            path: path.to_owned(),
            js_operation,
            target,
            encoding: None,
            max_read_bytes: match op {
                FsOp::Pread { len, .. } => limits.max_pread_bytes.min(len),
                _ => limits.max_pread_bytes,
            },
            max_readdir_entries: limits.max_readdir_entries,
            mount_path: mount.guest_path.clone(),
            extra_entries: children.to_vec(),
        };
        Ok(Some(BridgeCall {
            call_id: bridge.next_call_id(),
            mount_id: bridge.mount_id.clone(),
            args: args.to_string(),
            reply,
        }))
    }

    /// Runs the operation on the filesystem that owns the walked path (not a js_bridge mount).
    fn run_on_owner(
        &mut self,
        op: FsOp<'_>,
        from: &Walked,
        to: Option<&Walked>,
        entropy: &mut Entropy,
        now: Now,
    ) -> Result<FsReply, FsError> {
        let local = from.local_arg();
        let local_to = to.map(Walked::local_arg);
        let at = VPath::from(local.as_str());
        let at_to = local_to.as_deref().map(VPath::from);
        let limits = self.limits;
        let Owner::Mount(index) = from.owner else {
            return execute(&mut self.root, op, at, at_to, now);
        };
        let mount_table = match self.mounts.get(index).map(|mount| &mount.backend) {
            Some(Backend::Kernel(_)) => mounts::mount_table(&self.mounts),
            _ => String::new(),
        };
        let Some(mount) = self.mounts.get_mut(index) else { return Err(FsError::new(Errno::EIO)) };
        match &mut mount.backend {
            Backend::Memory(fs) => execute(fs, op, at, at_to, now),
            Backend::Host(dir) => {
                let mut host = HostBackend {
                    dir: GatedDir { mount: dir, number: mount_number(&self.mount_keys, index), gate: &self.host_gate },
                    read_only: mount.read_only,
                    limits,
                };
                execute(&mut host, op, at, at_to, now)
            }
            Backend::Kernel(tree) => {
                let call = devices::Call {
                    op,
                    local: &from.local,
                    trailing_slash: from.trailing_slash,
                    to: to.map(|to| to.local.as_str()),
                    cwd: &self.cwd,
                    limits,
                    caller: self.caller.as_deref(),
                    mount_table: &mount_table,
                };
                tree.execute(&call, entropy)
            }
            // Answered by the host (see `bridge_call`), never run here.
            Backend::Bridge(_) => Err(FsError::new(Errno::EIO)),
        }
    }

    /// `EBUSY` for removing or renaming a mount point or a directory above one.
    fn check_busy(&self, path: &str, op: FsOp<'_>, from: &Walked, to: Option<&Walked>) -> Result<(), Rejection> {
        if !matches!(op, FsOp::RemoveDir { .. } | FsOp::Rename { .. }) {
            return Ok(());
        }
        let namespace = self.namespace();
        if namespace.holds_mount(&from.components) || to.is_some_and(|to| namespace.holds_mount(&to.components)) {
            return Err(Rejection::from(op.failure(Errno::EBUSY, path)));
        }
        Ok(())
    }

    fn namespace(&self) -> Namespace<'_> {
        // A guest's paths arrive absolute; its own cwd is what `/proc/self/cwd` leads to.
        let cwd = self.caller.as_deref().map_or(self.cwd.as_str(), |caller| caller.cwd.as_str());
        Namespace {
            root: &self.root,
            mounts: &self.mounts,
            mount_keys: &self.mount_keys,
            cwd,
            host_gate: &self.host_gate,
        }
    }
    /// Replaces the VM's configured mounts (ConfigureVm reconciles: the old ones are dropped);
    /// the kernel's trees stay, after them.
    pub(crate) fn set_mounts(&mut self, mounts: Vec<Mount>) {
        let kernel: Vec<Mount> = std::mem::take(&mut self.mounts).into_iter().filter(Mount::is_kernel).collect();
        self.mounts = mounts;
        self.mounts.extend(kernel);
        self.renew_mount_keys();
    }

    /// Shows the Python library read-only at `/usr/local/lib` (see `host::python`), once: a
    /// mount there already (this one, or one the host configured) is left as it is.
    pub(crate) fn show_python_stdlib(
        &mut self,
        stdlib: std::sync::Arc<crate::host::python::StdlibArchive>,
    ) -> Result<(), Rejection> {
        let guest_path = crate::host::python::PYTHON_STDLIB_DIR;
        if self.mounts.iter().any(|mount| mount.guest_path == guest_path) {
            return Ok(());
        }
        if self.mounts.len() >= mounts::MAX_MOUNTS {
            return Err(Rejection::limit("mounts per VM", mounts::MAX_MOUNTS));
        }
        let components = crate::vfs::path::split(guest_path).map(str::to_owned).collect();
        let backend =
            Backend::Host(HostMount::installed(std::sync::Arc::new(crate::host::python::StdlibDir::new(stdlib))));
        self.mounts.push(Mount { guest_path: guest_path.to_owned(), components, read_only: true, backend });
        self.mount_keys.push(self.next_key);
        self.next_key = self.next_key.saturating_add(1);
        Ok(())
    }

    fn with_fresh_mount_keys(mut self) -> Self {
        self.renew_mount_keys();
        self
    }

    /// New keys for every mount: files held in the old mounts no longer reach anything.
    fn renew_mount_keys(&mut self) {
        let first = self.next_key;
        let count = u64::try_from(self.mounts.len()).unwrap_or(u64::MAX);
        self.next_key = first.saturating_add(count);
        self.mount_keys = (first..self.next_key).collect();
    }

    /// The key of mount `index`'s held files.
    fn mount_key(&self, index: usize) -> Option<u64> {
        self.mount_keys.get(index).copied()
    }

    /// The configured mounts' guest paths (not the kernel's trees).
    pub(crate) fn mount_paths(&self) -> Vec<String> {
        self.mounts.iter().filter(|m| !m.is_kernel()).map(|m| m.guest_path.clone()).collect()
    }

    pub(crate) fn limits(&self) -> FsLimits {
        self.limits
    }

    /// The root's upper layer state (what persistence saves).
    pub(crate) fn upper_state(&self) -> UpperState {
        self.root.upper_state()
    }

    /// Replaces the root's upper layer (what persistence loads).
    pub(crate) fn restore_upper(&mut self, state: &UpperState, now: Now) -> Result<(), Rejection> {
        // Files held in the layer being replaced reach nothing any more (`EIO`).
        self.root_key = self.next_key;
        self.next_key = self.next_key.saturating_add(1);
        self.root.restore_upper(state, now).map_err(Rejection::from)
    }

    // -----------------------------------------------------------------------------------------
    // Host filesystem calls
    // -----------------------------------------------------------------------------------------

    /// A host's operation on a `host_dir` mount (`HostFilesystemCallRequest`): checked by the
    /// VM's policy like a guest's, and refused with `EXDEV` anywhere but on a `host_dir` mount.
    /// Answers the operation's size (bytes read or written, a file's size, a listing's length).
    pub(crate) fn host_operation(
        &mut self,
        policy: &CompiledPolicy,
        path: &str,
        op: HostOp<'_>,
        now: Now,
    ) -> Result<u64, Errno> {
        let (capability, label, subject) = op.access();
        let resource = self.authorize(policy, capability, label, path, subject).map_err(|_| Errno::EACCES)?;
        let to_resource = match op {
            HostOp::Rename { to } => {
                Some(self.authorize(policy, capability, label, to, Subject::NoFollow).map_err(|_| Errno::EACCES)?)
            }
            _ => None,
        };
        let namespace = self.namespace();
        let last = if subject == Subject::Follow { Final::Follow } else { Final::Parent };
        let from = namespace.walk(path, last, false).map_err(|e| e.errno)?;
        let to = match op {
            HostOp::Rename { to } => Some(namespace.walk(to, Final::Parent, false).map_err(|e| e.errno)?),
            _ => None,
        };
        let Owner::Mount(index) = from.owner else { return Err(Errno::EXDEV) };
        if to.as_ref().is_some_and(|to| to.owner != from.owner) {
            return Err(Errno::EXDEV);
        }
        let limits = self.limits;
        let Some(mount) = self.mounts.get(index) else { return Err(Errno::EXDEV) };
        let Backend::Host(dir) = &mount.backend else { return Err(Errno::EXDEV) };
        let mut host = HostBackend {
            dir: GatedDir { mount: dir, number: mount_number(&self.mount_keys, index), gate: &self.host_gate },
            read_only: mount.read_only,
            limits,
        };
        let local = from.local_arg();
        let at = VPath::from(local.as_str());
        if let HostOp::Rename { .. } = op {
            // As a guest's RENAME (see `guard_rename`): a directory is not moved past rules
            // below it.
            let differs = policy.differs_below(Domain::Fs, &resource)
                || policy.differs_below(Domain::Fs, to_resource.as_deref().unwrap_or_default());
            if differs && host.lstat(at).is_ok_and(|stat| stat.is_directory) {
                return Err(Errno::EXDEV);
            }
        }
        let local_to = to.as_ref().map(Walked::local_arg).unwrap_or_default();
        run_host_operation(&mut host, op, at, VPath::from(local_to.as_str()), now).map_err(|e| e.errno())
    }

    fn at<'a>(&'a self, path: &'a str) -> VPath<'a> {
        VPath::at(&self.cwd, path)
    }

    /// Checks `check` on the path the operation will touch (returned: the canonical subject the
    /// policy was asked about); a denial is `kernel_error`
    /// `EACCES: permission denied, {label} '{subject}': {reason}`.
    fn authorize(
        &self,
        policy: &CompiledPolicy,
        check: impl Into<Check>,
        label: &str,
        path: &str,
        subject: Subject,
    ) -> Result<String, Rejection> {
        let check = check.into();
        let resource = self.subject(path, subject);
        if let Some(asks) = self.guest_asks.borrow_mut().as_mut() {
            return guest_decision(asks, policy, check, label, &resource).map(|()| resource);
        }
        match policy.decide_check(check, &resource, false) {
            Decision::Allow => Ok(resource),
            Decision::Deny { message } => Err(Rejection::with_errno(
                RejectCode::KernelError,
                Errno::EACCES,
                errno_message(label, &resource, &message),
            )),
            // Prompts are off for host requests, so `decide` never asks; deny to be safe.
            Decision::Ask => Err(Rejection::with_errno(
                RejectCode::KernelError,
                Errno::EACCES,
                errno_message(label, &resource, &format!("permission prompt required for {}", check.capability())),
            )),
        }
    }

    /// Refuses (`EXDEV`) to rename a directory when the policy could judge an entry below it
    /// differently from the directory itself, at its old name or its new one
    /// ([`CompiledPolicy::differs_below`]). The policy is asked only about the two names, so such
    /// a rename would carry the entries past the rules written for them (with
    /// `deny /data/secret/**`, `/data` renamed to `/moved` makes `/moved/secret/f` readable).
    /// `EXDEV` is what a rename across filesystems fails with: tools like `mv` then copy entry by
    /// entry, each copy checked by the policy. A file, or a symlink (not followed), carries
    /// nothing below it and is never refused here.
    fn guard_rename(&self, policy: &CompiledPolicy, path: &str, from: &str, to: &str) -> Result<(), Rejection> {
        let differs = policy.differs_below(Domain::Fs, from) || policy.differs_below(Domain::Fs, to);
        if differs && self.names_directory(path) {
            let error = FsError::new(Errno::EXDEV).at2("rename", from, to).with_detail(RULE_BELOW);
            return Err(Rejection::from(error));
        }
        Ok(())
    }

    /// Refuses (`EACCES`) to remove a directory recursively when the policy could judge an entry
    /// below it differently from the directory itself: `rm -r /data` would delete what
    /// `deny /data/secret/**` protects. The entries can still be removed one by one, each removal
    /// checked by the policy.
    fn guard_removal(&self, policy: &CompiledPolicy, path: &str, resource: &str) -> Result<(), Rejection> {
        if policy.differs_below(Domain::Fs, resource) && self.names_directory(path) {
            return Err(Rejection::with_errno(
                RejectCode::KernelError,
                Errno::EACCES,
                errno_message("rm", resource, RULE_BELOW),
            ));
        }
        Ok(())
    }

    /// Whether `path` names a directory, its final component not followed (renaming or removing
    /// a symlink moves nothing below it). Answers `true` where the kernel cannot look (inside a
    /// js_bridge mount, whose host resolves its own paths), so the guards above err towards
    /// refusing; a path that does not resolve is no directory (the operation fails anyway).
    fn names_directory(&self, path: &str) -> bool {
        let root_dir = |at: VPath<'_>| self.root.lstat(at).is_ok_and(|stat| stat.is_directory);
        if self.mounts.is_empty() {
            return root_dir(self.at(path));
        }
        let namespace = self.namespace();
        let walked = match namespace.walk(path, Final::Parent, false) {
            Ok(walked) if walked.touched => walked,
            // Resolved by the root filesystem as without mounts (see `call_mounted`).
            Ok(_) | Err(_) => return root_dir(self.at(path)),
        };
        if namespace.is_virtual_dir(&walked.components) {
            return true;
        }
        let local = VPath::from(walked.local.as_str());
        match walked.owner {
            Owner::Root => root_dir(local),
            Owner::Mount(index) => match self.mounts.get(index).map(|mount| (mount, &mount.backend)) {
                Some((_, Backend::Memory(fs))) => fs.lstat(local).is_ok_and(|stat| stat.is_directory),
                Some((mount, Backend::Host(dir))) => {
                    let dir =
                        GatedDir { mount: dir, number: mount_number(&self.mount_keys, index), gate: &self.host_gate };
                    let host = HostBackend { dir, read_only: mount.read_only, limits: self.limits };
                    host.lstat(local).is_ok_and(|stat| stat.is_directory)
                }
                Some((_, Backend::Kernel(tree))) => tree.entry(&walked.local) == Some(devices::Entry::Dir),
                Some((_, Backend::Bridge(_))) | None => true,
            },
        }
    }

    /// Writes `data` at `offset` of `path` in place (checked like `WRITE_FILE`), on the root
    /// filesystem or a `memory` or `host_dir` mount: a write costs what it writes, never a
    /// rewrite of the file. `None` for the kernel's own trees and js_bridge mounts.
    pub(crate) fn guest_pwrite(
        &mut self,
        policy: &CompiledPolicy,
        path: &str,
        offset: u64,
        data: &[u8],
        now: Now,
    ) -> Result<Option<u64>, Rejection> {
        self.authorize(policy, Capability::FsWrite, "write", path, Subject::Follow)?;
        let label = |error: FsError| Rejection::from(error.at("write", path));
        let Some(walked) = self.walk_positional(path).map_err(label)? else {
            let at = VPath::at(&self.cwd, path);
            return self.root.pwrite(at, offset, data, now).map(Some).map_err(Rejection::from);
        };
        let Owner::Mount(index) = walked.owner else {
            // Through a mount and back to the root (`/mnt/link -> /data/f`).
            return self.root.pwrite(walked.local.as_str(), offset, data, now).map(Some).map_err(label);
        };
        let limits = self.limits;
        let Some(mount) = self.mounts.get_mut(index) else { return Ok(None) };
        match &mut mount.backend {
            Backend::Memory(fs) => fs.pwrite(walked.local.as_str(), offset, data, now).map(Some).map_err(label),
            Backend::Host(dir) => {
                let host = HostBackend {
                    dir: GatedDir { mount: dir, number: mount_number(&self.mount_keys, index), gate: &self.host_gate },
                    read_only: mount.read_only,
                    limits,
                };
                host.pwrite(&walked.local, offset, data).map(Some).map_err(label)
            }
            Backend::Kernel(_) | Backend::Bridge(_) => Ok(None),
        }
    }

    /// Reads up to `len` bytes at `offset` of `path` (checked like `PREAD`), on the root
    /// filesystem or a `memory` or `host_dir` mount; `None` for the kernel's own trees and
    /// js_bridge mounts.
    pub(crate) fn guest_pread(
        &mut self,
        policy: &CompiledPolicy,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Rejection> {
        self.authorize(policy, Capability::FsRead, "read", path, Subject::Follow)?;
        let label = |error: FsError| Rejection::from(error.at("read", path));
        let Some(walked) = self.walk_positional(path).map_err(label)? else {
            let at = VPath::at(&self.cwd, path);
            return self.root.pread(at, offset, len).map(|bytes| Some(bytes.to_vec())).map_err(Rejection::from);
        };
        let Owner::Mount(index) = walked.owner else {
            return self.root.pread(walked.local.as_str(), offset, len).map(|b| Some(b.to_vec())).map_err(label);
        };
        let limits = self.limits;
        let Some(mount) = self.mounts.get(index) else { return Ok(None) };
        match &mount.backend {
            Backend::Memory(fs) => {
                fs.pread(walked.local.as_str(), offset, len).map(|b| Some(b.to_vec())).map_err(label)
            }
            Backend::Host(dir) => {
                let host = HostBackend {
                    dir: GatedDir { mount: dir, number: mount_number(&self.mount_keys, index), gate: &self.host_gate },
                    read_only: mount.read_only,
                    limits,
                };
                host.pread(VPath::from(walked.local.as_str()), offset, len).map(Some).map_err(label)
            }
            Backend::Kernel(_) | Backend::Bridge(_) => Ok(None),
        }
    }

    /// Where a positional read or write of `path` lands: `None` when it never touches a mount
    /// (the root resolves the path itself, with its own errors), else the walked path (its final
    /// link followed).
    fn walk_positional(&self, path: &str) -> Result<Option<Walked>, FsError> {
        if self.mounts.is_empty() {
            return Ok(None);
        }
        match self.namespace().walk(path, Final::Follow, false) {
            Ok(walked) if walked.touched => Ok(Some(walked)),
            Err(error) if error.touched => Err(FsError::new(error.errno)),
            Ok(_) | Err(_) => Ok(None),
        }
    }

    /// `path`'s bytes when it resolves on the root filesystem (no policy: the kernel's own read);
    /// `None` when it touches a mount or cannot be read.
    pub(crate) fn read_on_root(&self, path: &str) -> Option<Vec<u8>> {
        self.root_bytes(path).map(<[u8]>::to_vec)
    }

    /// `path`'s bytes in place when it resolves on the root filesystem (see
    /// [`read_on_root`](Self::read_on_root)), for a look that needs no copy.
    pub(crate) fn root_bytes(&self, path: &str) -> Option<&[u8]> {
        if !self.on_root(path) {
            return None;
        }
        self.root.read_file(VPath::at(&self.cwd, path)).ok()
    }

    /// Whether `path` resolves without touching a mount (or the kernel's own trees).
    fn on_root(&self, path: &str) -> bool {
        if self.mounts.is_empty() {
            return true;
        }
        match self.namespace().walk(path, Final::Follow, false) {
            Ok(walked) => !walked.touched,
            Err(error) => !error.touched,
        }
    }

    /// Runs `call` as a guest process's call: `ask` rules are resolved through `asks`, which
    /// comes back updated.
    pub(crate) fn with_guest_asks<T>(
        &mut self,
        asks: GuestAsks,
        caller: Option<std::sync::Arc<devices::ProcSelf>>,
        call: impl FnOnce(&mut Self) -> T,
    ) -> (T, GuestAsks) {
        *self.guest_asks.borrow_mut() = Some(asks);
        self.caller = caller;
        let result = call(self);
        self.caller = None;
        let asks = self.guest_asks.borrow_mut().take().unwrap_or_default();
        (result, asks)
    }

    /// The canonical absolute path inside the VM that `path` names for the policy.
    ///
    /// The longest existing prefix is resolved physically (symlinks, `..`), the missing rest
    /// appended (its `.` and `..` applied to it lexically: none of it exists, so none of it is
    /// a symlink). With [`Subject::Follow`], a final symlink is followed, dangling or not.
    fn subject(&self, path: &str, subject: Subject) -> String {
        if !self.mounts.is_empty() {
            let last = match subject {
                Subject::Follow => Final::Follow,
                Subject::NoFollow => Final::Parent,
            };
            return match self.namespace().walk(path, last, true) {
                Ok(walked) => walked.canonical(),
                Err(_) => {
                    let absolute = self.absolute(path);
                    let components: Vec<&str> = absolute.split('/').filter(|c| !c.is_empty()).collect();
                    lexical_append("/", &components)
                }
            };
        }
        let mut current = self.absolute(path);
        for _ in 0..=MAX_SYMLINK_HOPS {
            if subject == Subject::Follow {
                if let Ok(real) = self.root.realpath(current.as_str()) {
                    return real;
                }
            }
            let entry = self.entry_subject(&current);
            if subject == Subject::NoFollow {
                return entry;
            }
            match self.root.read_link(entry.as_str()) {
                Ok(target) if target.starts_with('/') => current = target,
                Ok(target) => current = format!("{}/{target}", parent(&entry)),
                Err(_) => return entry,
            }
        }
        current
    }

    /// `path` made absolute against the cwd (lexically; resolution happens later).
    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.cwd)
        }
    }

    /// The canonical path of the entry `absolute` names, its final component not followed.
    fn entry_subject(&self, absolute: &str) -> String {
        let components: Vec<&str> = absolute.split('/').filter(|c| !c.is_empty()).collect();
        for split in (0..components.len()).rev() {
            let (prefix, rest) = components.split_at(split);
            if let Ok(real) = self.root.realpath(format!("/{}", prefix.join("/")).as_str()) {
                return lexical_append(&real, rest);
            }
        }
        lexical_append("/", &components)
    }
}

/// Runs one operation on `fs` (the policy already allowed it).
fn execute(
    fs: &mut dyn FsOps,
    op: FsOp<'_>,
    at: VPath<'_>,
    to: Option<VPath<'_>>,
    now: Now,
) -> Result<FsReply, FsError> {
    let destination = || to.ok_or_else(|| FsError::new(Errno::EINVAL));
    let done = |()| FsReply::Done;
    match op {
        FsOp::ReadFile => fs.read_file(at).map(FsReply::Content),
        FsOp::Pread { offset, len } => fs.pread(at, offset, len).map(FsReply::Content),
        FsOp::WriteFile { data, mode } => fs.write_file(at, data, mode, now).map(done),
        FsOp::CreateDir { mode } => fs.mkdir(at, false, mode_or_default(mode), now).map(done),
        FsOp::Mkdir { recursive, mode } => fs.mkdir(at, recursive, mode_or_default(mode), now).map(done),
        FsOp::Exists => Ok(FsReply::Exists(fs.exists(at))),
        FsOp::Stat => fs.stat(at).map(FsReply::Stat),
        FsOp::Lstat => fs.lstat(at).map(FsReply::Stat),
        FsOp::ReadDir => fs.read_dir(at).map(FsReply::Entries),
        FsOp::RemoveFile => fs.remove_file(at, now).map(done),
        FsOp::RemoveDir { recursive } => fs.remove_dir(at, recursive, now).map(done),
        FsOp::Rename { .. } => fs.rename(at, destination()?, now).map(done),
        FsOp::Realpath => fs.realpath(at).map(FsReply::Target),
        FsOp::Symlink { target } => fs.symlink(target, at, now).map(done),
        FsOp::ReadLink => fs.read_link(at).map(FsReply::Target),
        FsOp::Link { .. } => fs.link(at, destination()?, now).map(done),
        FsOp::Chmod { mode } => fs.chmod(at, mode, now).map(done),
        FsOp::Chown { uid, gid } => fs.chown(at, uid, gid, now).map(done),
        FsOp::Utimes { atime_ns, mtime_ns, follow } => fs.utimes(at, atime_ns, mtime_ns, follow, now).map(done),
        FsOp::Truncate { len } => fs.truncate(at, len, now).map(done),
    }
}

/// Runs a host's operation on a `host_dir` mount (the policy already allowed it).
fn run_host_operation(
    host: &mut HostBackend<'_>,
    op: HostOp<'_>,
    at: VPath<'_>,
    to: VPath<'_>,
    now: Now,
) -> Result<u64, FsError> {
    let size = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    match op {
        HostOp::Read => host.read_file(at).map(|bytes| size(bytes.len())),
        HostOp::Write { len } => {
            if host.exists(at) {
                host.truncate(at, len, now)?;
            } else {
                if len > host.limits.max_fd_write_bytes {
                    return Err(FsError::new(Errno::ENOSPC));
                }
                let zeros = vec![0u8; usize::try_from(len).map_err(|_| FsError::new(Errno::EFBIG))?];
                host.write_file(at, &zeros, None, now)?;
            }
            Ok(len)
        }
        HostOp::Stat => host.stat(at).map(|stat| stat.size),
        HostOp::ReadDir => host.read_dir(at).map(|names| size(names.len())),
        HostOp::Mkdir => host.mkdir(at, false, DEFAULT_DIR_MODE, now).map(|()| 0),
        HostOp::Remove => {
            // Never recursive (a directory with entries is ENOTEMPTY): nothing below the path
            // goes with it, so unlike a guest's recursive REMOVE_DIR it needs no guard.
            let stat = host.lstat(at)?;
            let removed = if stat.is_directory { host.remove_dir(at, false, now) } else { host.remove_file(at, now) };
            removed.map(|()| 0)
        }
        HostOp::Rename { .. } => host.rename(at, to, now).map(|()| 0),
    }
}

/// Adds mount points to a directory listing (sorted, no duplicates).
fn merge_names(entries: &mut Vec<String>, extra: Vec<String>) {
    if extra.is_empty() {
        return;
    }
    entries.extend(extra);
    entries.sort();
    entries.dedup();
}

/// A mount-local path under the mount's guest path.
fn join_guest(mount_path: &str, local: &str) -> String {
    match local.trim_matches('/') {
        "" => mount_path.to_owned(),
        inner => format!("{}/{inner}", mount_path.trim_end_matches('/')),
    }
}

/// `stat` of a directory that exists only on the way to a mount point.
fn virtual_dir_stat() -> Stat {
    Stat {
        mode: S_IFDIR | DEFAULT_DIR_MODE,
        size: DIR_SIZE,
        blocks: DIR_SIZE.div_ceil(512),
        dev: FILESYSTEM_DEV,
        nlink: 2,
        is_directory: true,
        ..Stat::default()
    }
}

/// A guest call's permission check: answered prompts first, then the policy; an unanswered
/// `ask` stops the call (`EAGAIN`, with `asks.needed` set).
fn guest_decision(
    asks: &mut GuestAsks,
    policy: &CompiledPolicy,
    check: Check,
    label: &str,
    resource: &str,
) -> Result<(), Rejection> {
    let denied = |message: &str| {
        Rejection::with_errno(RejectCode::KernelError, Errno::EACCES, errno_message(label, resource, message))
    };
    // Prompts, grants and refusals name the capability the operation is decided as.
    let capability = check.capability();
    match policy.decide_check(check, resource, asks.prompts_enabled) {
        Decision::Allow => Ok(()),
        Decision::Deny { message } => Err(denied(&message)),
        Decision::Ask => {
            if asks.granted.iter().any(|(granted, what)| *granted == capability && what == resource) {
                return Ok(());
            }
            if let Some((_, _, message)) =
                asks.refused.take_if(|(refused, what, _)| *refused == capability && what == resource)
            {
                return Err(denied(&message));
            }
            asks.needed = Some((capability, resource.to_owned()));
            Err(Rejection::with_errno(
                RejectCode::KernelError,
                Errno::EAGAIN,
                format!("EAGAIN: waiting for the host to allow {capability}"),
            ))
        }
    }
}

fn mode_or_default(mode: Option<u32>) -> u32 {
    mode.unwrap_or(DEFAULT_DIR_MODE)
}

/// The parent of a canonical absolute path (`/` for `/` itself).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(cut) => path.get(..cut).unwrap_or("/"),
    }
}

/// `path` made absolute against `cwd` and normalized lexically (`..` never above `/`).
pub(crate) fn normalize(cwd: &str, path: &str) -> String {
    let base = if path.starts_with('/') { "/" } else { cwd };
    let components: Vec<&str> = path.split('/').filter(|component| !component.is_empty()).collect();
    lexical_append(base, &components)
}

/// `base` (canonical, absolute) with `rest` appended, `.` skipped and `..` going up (never
/// above `/`).
pub(crate) fn lexical_append(base: &str, rest: &[&str]) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for component in rest {
        match *component {
            "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The number a mount's host calls name it by: its files' key (see `mount_keys`), which is new
/// whenever the mounts change, so a memo never answers for a directory mounted since.
fn mount_number(mount_keys: &[u64], index: usize) -> u32 {
    mount_keys.get(index).map_or(u32::MAX, |key| u32::try_from(*key).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::{lexical_append, parent};

    #[test]
    fn normalize_never_leaves_the_root() {
        assert_eq!(super::normalize("/", "a/../../b"), "/b");
        assert_eq!(super::normalize("/home/user/x", "../y"), "/home/user/y");
        assert_eq!(super::normalize("/a", "./b//c/."), "/a/b/c");
        assert_eq!(super::normalize("/home/user", "/etc/../tmp"), "/tmp");
        assert_eq!(super::normalize("/home/user", "x/../../y"), "/home/y");
    }

    #[test]
    fn path_helpers() {
        assert_eq!(parent("/"), "/");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(lexical_append("/", &[]), "/");
        assert_eq!(lexical_append("/a", &["..", "..", "b", ".", "c"]), "/b/c");
        assert_eq!(lexical_append("/a/b", &["c"]), "/a/b/c");
    }
}
