//! A VM's mounts (ConfigureVm `mounts`) and path resolution across them.
//!
//! A mount covers its guest path and everything under it; the longest matching mount wins.
//! Mount paths are taken literally (normalised, never through symlinks) and may not be `/`.
//! Resolution (`Namespace::walk`) goes component by component from the VM's `/`, like the
//! root filesystem's own resolution: `..` goes to the parent of the directory actually reached
//! (so `..` at a mount's root is back in the parent filesystem), symlinks in the root
//! filesystem and in `memory` mounts are followed by the kernel (absolute targets restart at the
//! VM's `/`, whichever filesystem holds the link), at most
//! [`MAX_SYMLINK_HOPS`] per path. `host_dir` mounts are resolved
//! the same way: the kernel looks at each component (`lstat`, `readlink` through the mount's
//! [`HostDir`]) and follows links itself, so the permission policy is asked about the path really
//! reached, never about a link's name (a link `/mnt/public/alias -> ../private` cannot carry a
//! read past a rule denying `/mnt/private/**`), and the host is handed a path with no symlink on
//! the way (it still resolves beneath its directory, against links swapped in meanwhile).
//! `js_bridge` mounts are opaque: below them components are taken lexically and handed to the
//! host, which resolves its own. Missing directories on the way to a mount point exist virtually
//! (`stat` says directory, `readdir` lists the next component).
//!
//! Plugins: `memory` (a fresh in-memory filesystem with the VM's limits), `host_dir`
//! (`{"hostPath": str, "readOnly"?: bool}`, through the injected [`HostFs`]) and `js_bridge`
//! (`{"mountId"?: str}`, operations forwarded to the host as `JsBridgeCallRequest`s). The other
//! known plugins are refused with `ENOSYS`.
//!
//! The kernel's own trees (`/dev`, `/proc`; see `synthetic`) are mounts too, kept after the
//! configured ones: a configured mount at the same path wins, one below them nests as usual.

use schema::wire::MountDescriptor;

use crate::error::{RejectCode, Rejection};
use crate::fs::devices::{Entry, KernelFs};
use crate::fs::host_gate::{GatedDir, HostGate, HostMount};
use crate::host::fs::{HostDir, HostFileKind, HostFs};
use crate::host::software::{SoftwareTree, SOFTWARE_ROOT};
use crate::vfs::{path as vpath, Errno, Filesystem, FsLimits, Overlay, MAX_SYMLINK_HOPS, NAME_MAX, PATH_MAX};
use crate::Now;

/// Mounts per VM (one ConfigureVm's list replaces the previous one).
pub const MAX_MOUNTS: usize = 256;
/// Longest js_bridge `mountId`.
pub const MAX_MOUNT_ID_BYTES: usize = 256;
/// Mount plugins the sidecar knows. Others are refused with `ENOSYS: filesystem plugin is not
/// registered`; the known ones this sidecar does not implement with `ENOSYS: filesystem plugin
/// is not supported here`.
pub const KNOWN_MOUNT_PLUGINS: &[&str] =
    &["memory", "host_dir", "module_access", "js_bridge", "sqlite_vfs", "s3", "google_drive", "sandbox_agent"];
/// The plugins this sidecar can mount.
pub const SUPPORTED_MOUNT_PLUGINS: &[&str] = &["memory", "host_dir", "js_bridge"];

/// One mounted filesystem.
#[derive(Debug)]
pub(crate) struct Mount {
    pub guest_path: String,
    pub components: Vec<String>,
    pub read_only: bool,
    pub backend: Backend,
}

#[derive(Debug)]
pub(crate) enum Backend {
    Memory(Filesystem),
    Host(HostMount),
    Bridge(BridgeMount),
    /// `/dev` or `/proc`, served by the kernel (see `synthetic`); never configured.
    Kernel(KernelFs),
}

impl Mount {
    /// Whether this is one of the kernel's own trees rather than a configured mount.
    pub fn is_kernel(&self) -> bool {
        matches!(self.backend, Backend::Kernel(_))
    }
}

/// A `js_bridge` mount: its id on the wire and its call counter.
#[derive(Debug)]
pub(crate) struct BridgeMount {
    pub mount_id: String,
    next_call: u64,
}

impl BridgeMount {
    /// `js-bridge-call-N`, N from 1 per mount.
    pub fn next_call_id(&mut self) -> String {
        self.next_call = self.next_call.saturating_add(1);
        format!("js-bridge-call-{}", self.next_call)
    }
}

/// What a descriptor asks for, once checked (no I/O yet).
#[derive(Debug)]
enum Plan {
    Memory,
    Host { host_path: String },
    Bridge { mount_id: String },
}

/// Checks every descriptor, then opens them in order; nothing is returned unless all of them
/// could be mounted.
pub(crate) fn build(
    descriptors: &[MountDescriptor],
    host_fs: Option<&dyn HostFs>,
    limits: FsLimits,
    now: Now,
) -> Result<Vec<Mount>, Rejection> {
    if descriptors.len() > MAX_MOUNTS {
        return Err(Rejection::limit("mounts per VM", MAX_MOUNTS));
    }
    let mut plans = Vec::with_capacity(descriptors.len());
    let mut seen = std::collections::BTreeSet::new();
    for descriptor in descriptors {
        let id = descriptor.plugin.id.as_str();
        if !KNOWN_MOUNT_PLUGINS.contains(&id) {
            return Err(plugin_error(format!("ENOSYS: filesystem plugin is not registered: {id}")));
        }
        let config: serde_json::Value = serde_json::from_str(&descriptor.plugin.config).map_err(|error| {
            Rejection::invalid_state(format!("mount plugin config for {id} is not valid JSON: {error}"))
        })?;
        let components = normalise_guest_path(&descriptor.guest_path)?;
        let guest_path = format!("/{}", components.join("/"));
        if !seen.insert(guest_path.clone()) {
            return Err(Rejection::invalid_state(format!("duplicate mount guest path {guest_path}")));
        }
        let (plan, read_only) = plan(id, &config, &guest_path, descriptor.read_only)?;
        plans.push((guest_path, components, read_only, plan));
    }
    let mut mounts = Vec::with_capacity(plans.len());
    for (guest_path, components, read_only, plan) in plans {
        let backend = match plan {
            Plan::Memory => {
                let mut fs = Filesystem::new(limits, now);
                fs.set_read_only(read_only);
                Backend::Memory(fs)
            }
            Plan::Host { host_path } => {
                let host_fs = host_fs
                    .ok_or_else(|| plugin_error("ENOSYS: host filesystem access is not available".to_owned()))?;
                let dir = host_fs
                    .open_dir(&host_path)
                    .map_err(|error| plugin_error(format!("{error}, host_dir '{host_path}'")))?;
                Backend::Host(HostMount::configured(dir))
            }
            Plan::Bridge { mount_id } => Backend::Bridge(BridgeMount { mount_id, next_call: 0 }),
        };
        mounts.push(Mount { guest_path, components, read_only, backend });
    }
    Ok(mounts)
}

/// `/proc/mounts`: the root, then every mount (shallower first), a line each in Linux's format
/// (`source target fstype options 0 0`, spaces and backslashes in paths escaped as octal).
pub(crate) fn mount_table(mounts: &[Mount]) -> String {
    let escape =
        |path: &str| path.replace('\\', "\\134").replace(' ', "\\040").replace('\t', "\\011").replace('\n', "\\012");
    let mut table = String::from("overlay / overlay rw 0 0\n");
    // Parents before what is mounted in them, as Linux lists them.
    let mut ordered: Vec<&Mount> = mounts.iter().collect();
    ordered.sort_by(|a, b| (a.components.len(), &a.guest_path).cmp(&(b.components.len(), &b.guest_path)));
    for mount in ordered {
        let (source, fstype) = match &mount.backend {
            Backend::Memory(_) => ("memory", "tmpfs"),
            Backend::Host(_) if mount.guest_path == SOFTWARE_ROOT => ("software", "aospkg"),
            Backend::Host(_) => ("host_dir", "hostfs"),
            Backend::Bridge(_) => ("js_bridge", "fuse.js_bridge"),
            Backend::Kernel(_) if mount.guest_path == "/proc" => ("proc", "proc"),
            Backend::Kernel(_) => ("devtmpfs", "devtmpfs"),
        };
        let options = if mount.read_only { "ro" } else { "rw" };
        table.push_str(&format!("{source} {} {fstype} {options} 0 0\n", escape(&mount.guest_path)));
    }
    table
}

/// Mounts the VM's software tree at [`SOFTWARE_ROOT`], read-only, after the configured mounts;
/// a configured mount at that very path is refused (it would hide the commands).
pub(crate) fn add_software(mounts: &mut Vec<Mount>, tree: SoftwareTree) -> Result<(), Rejection> {
    let guest_path = SOFTWARE_ROOT.to_owned();
    if mounts.iter().any(|mount| mount.guest_path == guest_path) {
        return Err(Rejection::invalid_state(format!("mount guest path {guest_path} is where software packages go")));
    }
    if mounts.len() >= MAX_MOUNTS {
        return Err(Rejection::limit("mounts per VM", MAX_MOUNTS));
    }
    let components = vpath::split(&guest_path).map(str::to_owned).collect();
    mounts.push(Mount {
        guest_path,
        components,
        read_only: true,
        backend: Backend::Host(HostMount::installed(std::sync::Arc::new(tree))),
    });
    Ok(())
}

fn plugin_error(message: String) -> Rejection {
    Rejection::new(RejectCode::PluginError, message)
}

fn plan(id: &str, config: &serde_json::Value, guest_path: &str, read_only: bool) -> Result<(Plan, bool), Rejection> {
    match id {
        "memory" => Ok((Plan::Memory, read_only)),
        "host_dir" => {
            let invalid = || plugin_error("EINVAL: host_dir mount config requires a non-empty \"hostPath\"".to_owned());
            let host_path = config.get("hostPath").and_then(serde_json::Value::as_str).ok_or_else(invalid)?;
            if host_path.is_empty() || host_path.len() >= PATH_MAX || host_path.contains('\0') {
                return Err(invalid());
            }
            let config_read_only = match config.get("readOnly") {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(flag)) => *flag,
                Some(_) => return Err(plugin_error("EINVAL: host_dir \"readOnly\" must be a boolean".to_owned())),
            };
            Ok((Plan::Host { host_path: host_path.to_owned() }, read_only || config_read_only))
        }
        "js_bridge" => {
            let mount_id = match config {
                serde_json::Value::Null => None,
                serde_json::Value::Object(map) => match map.get("mountId") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(id)) => Some(id.clone()),
                    Some(_) => return Err(plugin_error("EINVAL: js_bridge \"mountId\" must be a string".to_owned())),
                },
                _ => return Err(plugin_error("EINVAL: js_bridge mount config must be an object or null".to_owned())),
            };
            let mount_id = mount_id.unwrap_or_else(|| guest_path.to_owned());
            if mount_id.is_empty() || mount_id.len() > MAX_MOUNT_ID_BYTES {
                return Err(plugin_error(format!("EINVAL: js_bridge mountId must be 1 to {MAX_MOUNT_ID_BYTES} bytes")));
            }
            Ok((Plan::Bridge { mount_id }, read_only))
        }
        other => Err(plugin_error(format!("ENOSYS: filesystem plugin is not supported here: {other}"))),
    }
}

/// A mount's guest path as components: absolute, no `.`/`..`, not `/`, within the path limits.
fn normalise_guest_path(path: &str) -> Result<Vec<String>, Rejection> {
    let invalid = |why: &str| Rejection::invalid_state(format!("mount guest path {path:?} {why}"));
    if !path.starts_with('/') {
        return Err(invalid("must be absolute"));
    }
    if path.len() >= PATH_MAX || path.contains('\0') {
        return Err(invalid("is not a valid path"));
    }
    let components: Vec<String> = vpath::split(path).map(str::to_owned).collect();
    if components.iter().any(|c| !vpath::is_name(c)) {
        return Err(invalid("must not contain '.' or '..'"));
    }
    if components.iter().any(|c| c.len() > NAME_MAX) {
        return Err(invalid("has a component longer than 255 bytes"));
    }
    if components.is_empty() {
        return Err(invalid("cannot be / (the root filesystem)"));
    }
    Ok(components)
}

/// Which filesystem a canonical path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Root,
    Mount(usize),
}

/// How a walk treats the final component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Final {
    /// Follow a final symlink (dangling ones too: the walk ends at the missing target).
    Follow,
    /// Follow it only when the path ends with `/`.
    NoFollow,
    /// Never follow it (operations that create, remove or rename the entry itself).
    Parent,
}

/// Where a path leads.
#[derive(Debug, Clone)]
pub(crate) struct Walked {
    /// The canonical path's components.
    pub components: Vec<String>,
    pub owner: Owner,
    /// The path inside the owner, `/`-rooted.
    pub local: String,
    /// Whether any step (or the result) was inside a mount: only then does the operation
    /// need routing; otherwise the root filesystem resolves the path as given.
    pub touched: bool,
    pub trailing_slash: bool,
}

impl Walked {
    pub fn canonical(&self) -> String {
        format!("/{}", self.components.join("/"))
    }

    /// The local path with the request's trailing slash, for the owner to interpret.
    pub fn local_arg(&self) -> String {
        if self.trailing_slash && self.local != "/" {
            format!("{}/", self.local)
        } else {
            self.local.clone()
        }
    }
}

/// A failed walk: the errno and whether it had already entered a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkError {
    pub errno: Errno,
    pub touched: bool,
}

enum Found {
    Missing,
    /// The host could not look (say, `EACCES` on a directory the sidecar may not enter).
    Failed(Errno),
    Dir,
    Other,
    Symlink(String),
    /// Inside a js_bridge mount: the kernel does not look (the host resolves its own paths).
    Opaque,
}

/// The VM's namespace: its root filesystem with the mounts over it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Namespace<'a> {
    pub root: &'a Overlay,
    pub mounts: &'a [Mount],
    /// Each mount's files' key, by index (names a mount in its host calls).
    pub mount_keys: &'a [u64],
    pub cwd: &'a str,
    /// Where a walk's host calls go (`lstat`, `readlink` on `host_dir` mounts); it counts them.
    pub host_gate: &'a HostGate,
}

/// One component of a `host_dir` mount, looked at without following it.
fn probe_host(dir: &GatedDir<'_>, local: &str) -> Found {
    let relative = local.trim_matches('/');
    let kind = match dir.lstat(relative) {
        Ok(stat) => stat.kind,
        Err(error) if matches!(error.errno, Errno::ENOENT | Errno::ENOTDIR) => return Found::Missing,
        Err(error) => return Found::Failed(error.errno),
    };
    match kind {
        HostFileKind::Directory => Found::Dir,
        HostFileKind::Symlink => {
            dir.read_link(relative).map_or_else(|error| Found::Failed(error.errno), Found::Symlink)
        }
        _ => Found::Other,
    }
}

impl Namespace<'_> {
    /// The owner of canonical `components` and the length of the owning mount's path.
    pub fn owner_of(&self, components: &[String]) -> (Owner, usize) {
        let mut best = (Owner::Root, 0);
        for (index, mount) in self.mounts.iter().enumerate() {
            let len = mount.components.len();
            if len > best.1 && components.starts_with(&mount.components) {
                best = (Owner::Mount(index), len);
            }
        }
        best
    }

    /// Whether a mount point lies strictly below `components`.
    pub fn is_mount_ancestor(&self, components: &[String]) -> bool {
        self.mounts.iter().any(|m| m.components.len() > components.len() && m.components.starts_with(components))
    }

    /// Whether `components` is a mount point or lies above one (removing or renaming it would
    /// pull the mount from under its path: `EBUSY`).
    pub fn holds_mount(&self, components: &[String]) -> bool {
        self.mounts.iter().any(|m| m.components.len() >= components.len() && m.components.starts_with(components))
    }

    /// The names a directory listing of `components` gains from mount points below it.
    pub fn mount_children(&self, components: &[String]) -> Vec<String> {
        let mut names: Vec<String> = self
            .mounts
            .iter()
            .filter(|m| m.components.len() > components.len() && m.components.starts_with(components))
            .filter_map(|m| m.components.get(components.len()).cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn local(components: &[String], prefix: usize) -> String {
        format!("/{}", components.get(prefix..).unwrap_or_default().join("/"))
    }

    fn probe(&self, components: &[String]) -> Found {
        let (owner, prefix) = self.owner_of(components);
        let local = Self::local(components, prefix);
        let (stat, link) = match owner {
            Owner::Root => (self.root.lstat(local.as_str()), self.root.read_link(local.as_str())),
            Owner::Mount(index) => match self.mounts.get(index).map(|m| &m.backend) {
                Some(Backend::Memory(fs)) => (fs.lstat(local.as_str()), fs.read_link(local.as_str())),
                Some(Backend::Kernel(fs)) => {
                    return match fs.entry(&local) {
                        Some(Entry::Dir) => Found::Dir,
                        Some(Entry::Other) => Found::Other,
                        Some(Entry::CwdLink) => Found::Symlink(self.cwd.to_owned()),
                        None => Found::Missing,
                    }
                }
                Some(Backend::Host(mount)) => {
                    let number = super::mount_number(self.mount_keys, index);
                    return probe_host(&GatedDir { mount, number, gate: self.host_gate }, &local);
                }
                _ => return Found::Opaque,
            },
        };
        match stat {
            Ok(stat) if stat.is_symbolic_link => Found::Symlink(link.unwrap_or_default()),
            Ok(stat) if stat.is_directory => Found::Dir,
            Ok(_) => Found::Other,
            Err(_) => Found::Missing,
        }
    }

    /// Walks `path` (relative paths from the cwd). `lenient`: a missing or non-directory
    /// component does not fail the walk; the rest is appended lexically (for `mkdir -p` and
    /// for naming the policy subject).
    pub fn walk(&self, path: &str, last: Final, lenient: bool) -> Result<Walked, WalkError> {
        check_path(path).map_err(|errno| WalkError { errno, touched: false })?;
        let mut walk = Walk::new(path, self.cwd);
        let mut touched = false;
        let fail = |errno: Errno, touched: bool| WalkError { errno, touched };
        let mut missing = false;
        while let Some(component) = walk.pending.pop() {
            if component.len() > NAME_MAX {
                return Err(fail(Errno::ENAMETOOLONG, touched));
            }
            let is_last = walk.pending.is_empty();
            if component == "." {
                continue;
            }
            if component == ".." {
                walk.current.pop();
                continue;
            }
            walk.current.push(component);
            if self.owner_of(&walk.current).0 != Owner::Root {
                touched = true;
            }
            if missing {
                continue;
            }
            match self.probe(&walk.current) {
                Found::Opaque | Found::Dir => {}
                Found::Other if is_last => {}
                Found::Other if lenient => missing = true,
                Found::Other => return Err(fail(Errno::ENOTDIR, touched)),
                Found::Missing if self.is_mount_ancestor(&walk.current) => touched = true,
                Found::Missing if is_last => {}
                Found::Missing if lenient => missing = true,
                Found::Missing => return Err(fail(Errno::ENOENT, touched)),
                Found::Failed(_) if lenient => missing = true,
                Found::Failed(errno) => return Err(fail(errno, touched)),
                Found::Symlink(target) => {
                    let follow = !is_last
                        || match last {
                            Final::Follow => true,
                            Final::NoFollow => walk.trailing_slash,
                            Final::Parent => false,
                        };
                    if follow {
                        walk.enter_symlink(&target, is_last).map_err(|errno| fail(errno, touched))?;
                    }
                }
            }
        }
        let (owner, prefix) = self.owner_of(&walk.current);
        if owner != Owner::Root {
            touched = true;
        }
        let local = Self::local(&walk.current, prefix);
        Ok(Walked { components: walk.current, owner, local, touched, trailing_slash: walk.trailing_slash })
    }

    /// Whether canonical `components` (owned by the root filesystem) is a directory that exists
    /// only because a mount point lies below it.
    pub fn is_virtual_dir(&self, components: &[String]) -> bool {
        self.owner_of(components).0 == Owner::Root
            && self.is_mount_ancestor(components)
            && !self.root.exists(format!("/{}", components.join("/")).as_str())
    }
}

/// `EINVAL`, `ENOENT` or `ENAMETOOLONG` for a path no walk can start from.
fn check_path(path: &str) -> Result<(), Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.contains('\0') {
        return Err(Errno::EINVAL);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// A walk in progress: the components still to visit (last first), the canonical components
/// reached, and the symlinks followed so far.
struct Walk {
    pending: Vec<String>,
    current: Vec<String>,
    hops: u32,
    trailing_slash: bool,
}

impl Walk {
    fn new(path: &str, cwd: &str) -> Self {
        let mut pending: Vec<String> = vpath::split(path).rev().map(str::to_owned).collect();
        if !path.starts_with('/') {
            pending.extend(vpath::split(cwd).rev().map(str::to_owned));
        }
        Self { pending, current: Vec::new(), hops: 0, trailing_slash: path.ends_with('/') }
    }

    /// Replaces the symlink just reached by its target's components (from `/` for an absolute
    /// target); `ELOOP` past [`MAX_SYMLINK_HOPS`], `ENOENT` for an empty target.
    fn enter_symlink(&mut self, target: &str, is_last: bool) -> Result<(), Errno> {
        self.hops = self.hops.saturating_add(1);
        if self.hops > MAX_SYMLINK_HOPS {
            return Err(Errno::ELOOP);
        }
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.current.pop();
        if is_last && target.ends_with('/') {
            self.trailing_slash = true;
        }
        if target.starts_with('/') {
            self.current.clear();
        }
        self.pending.extend(vpath::split(target).rev().map(str::to_owned));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn guest_paths_are_normalised() {
        assert_eq!(normalise_guest_path("//data//x/").unwrap(), vec!["data".to_owned(), "x".to_owned()]);
        for bad in ["data", "/", "/a/../b", "/a/./b", "/a\0"] {
            assert!(normalise_guest_path(bad).is_err(), "{bad:?}");
        }
    }
}
