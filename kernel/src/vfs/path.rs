//! Path resolution, shared by [`Filesystem`](super::Filesystem) and [`Overlay`](super::Overlay)
//! through the crate-internal `Namespace` trait.
//!
//! Resolution is physical, component by component, like Linux `namei`: `.` is skipped, `..` goes
//! to the parent of the directory actually reached (after symlinks) and stays put at the root, so
//! no path, however many `..` or absolute symlinks it holds, leaves the root. Absolute symlink
//! targets restart at this filesystem's root. At most [`MAX_SYMLINK_HOPS`] symlinks are followed
//! per resolution (`ELOOP` beyond). Every component is at most [`NAME_MAX`] bytes and the path
//! given shorter than [`PATH_MAX`] bytes (`ENAMETOOLONG`).

use super::error::{Errno, FsError};

/// Symlinks followed in one resolution before `ELOOP` (Linux `MAXSYMLINKS`).
pub const MAX_SYMLINK_HOPS: u32 = 40;
/// Longest path component, in bytes (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Paths must be shorter than this many bytes (Linux `PATH_MAX` counts the terminating NUL).
pub const PATH_MAX: usize = 4096;

/// A path argument: `path`, resolved against `cwd` when relative.
///
/// `&str` and `&String` convert into one with cwd `/`; [`VPath::at`] gives another cwd. `cwd`
/// should be absolute (a relative cwd is taken from the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VPath<'a> {
    pub cwd: &'a str,
    pub path: &'a str,
}

impl<'a> VPath<'a> {
    pub fn at(cwd: &'a str, path: &'a str) -> Self {
        Self { cwd, path }
    }
}

impl<'a> From<&'a str> for VPath<'a> {
    fn from(path: &'a str) -> Self {
        Self { cwd: "/", path }
    }
}

impl<'a> From<&'a String> for VPath<'a> {
    fn from(path: &'a String) -> Self {
        Self { cwd: "/", path }
    }
}

/// What a node is, as far as resolution cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// A directory tree resolution can walk.
pub(crate) trait Namespace {
    type Node: Clone;
    fn root(&self) -> Self::Node;
    /// The entry `name` of directory `dir`.
    fn lookup(&self, dir: &Self::Node, name: &str) -> Option<Self::Node>;
    fn kind(&self, node: &Self::Node) -> NodeKind;
    /// A symlink's target (empty for other nodes).
    fn link_target(&self, node: &Self::Node) -> &str;
}

/// How the final component is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Follow a final symlink (open, stat, chmod, ...). A trailing slash requires a directory.
    Follow,
    /// Do not follow a final symlink (lstat, readlink), unless the path has a trailing slash.
    NoFollow,
    /// Name the final entry without following it, even with a trailing slash: for operations
    /// that create, remove or rename a directory entry. The operation interprets the slash.
    Parent,
}

/// Where a path led.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<N> {
    /// The directories from the root (name `""`) to the one holding the final component; when
    /// `name` is `None` the last of them is the node itself.
    pub ancestors: Vec<(String, N)>,
    /// The final component, or `None` when the path ends at a directory through `/`, `.` or `..`.
    pub name: Option<String>,
    /// The final node, `None` when the final entry does not exist (its parent does).
    pub node: Option<N>,
    /// The path (or the final symlink's target) ended with `/`: the final must be a directory.
    pub trailing_slash: bool,
}

impl<N: Clone> Resolved<N> {
    /// The canonical absolute path of the final entry (existing or not).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (name, _) in self.ancestors.iter().skip(1) {
            out.push('/');
            out.push_str(name);
        }
        if let Some(name) = &self.name {
            out.push('/');
            out.push_str(name);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// True when the path names the root directory itself.
    pub fn is_root(&self) -> bool {
        self.name.is_none() && self.ancestors.len() == 1
    }
}

/// Checks a path argument the way the kernel does before walking it.
pub(crate) fn validate(path: &str) -> Result<(), FsError> {
    if path.is_empty() {
        return Err(Errno::ENOENT.into());
    }
    if path.contains('\0') {
        return Err(Errno::EINVAL.into());
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG.into());
    }
    Ok(())
}

/// Checks a symlink target before it is stored.
pub(crate) fn validate_target(target: &str) -> Result<(), FsError> {
    validate(target)
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// Walks `path` through `ns`. Errors carry no operation or path yet.
pub(crate) fn resolve<NS: Namespace>(ns: &NS, path: VPath<'_>, mode: Mode) -> Result<Resolved<NS::Node>, FsError> {
    validate(path.path)?;
    // Pending components, next one last. Targets are owned so the walk does not borrow `ns`
    // beyond each step.
    let mut pending: Vec<String> = components(path.path).rev().map(str::to_owned).collect();
    if !path.path.starts_with('/') {
        pending.extend(components(path.cwd).rev().map(str::to_owned));
    }
    let mut trailing_slash = path.path.ends_with('/');
    let mut ancestors: Vec<(String, NS::Node)> = vec![(String::new(), ns.root())];
    let mut hops: u32 = 0;
    loop {
        let Some(component) = pending.pop() else {
            let node = ancestors.last().map(|(_, node)| node.clone());
            return Ok(Resolved { ancestors, name: None, node, trailing_slash });
        };
        if component.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG.into());
        }
        let is_last = pending.is_empty();
        if component == "." {
            continue;
        }
        if component == ".." {
            if ancestors.len() > 1 {
                ancestors.pop();
            }
            continue;
        }
        let Some((_, dir)) = ancestors.last() else {
            return Err(Errno::EIO.into());
        };
        let Some(child) = ns.lookup(dir, &component) else {
            if is_last {
                return Ok(Resolved { ancestors, name: Some(component), node: None, trailing_slash });
            }
            return Err(Errno::ENOENT.into());
        };
        let kind = ns.kind(&child);
        let follow = !is_last
            || match mode {
                Mode::Follow => true,
                Mode::NoFollow => trailing_slash,
                Mode::Parent => false,
            };
        if kind == NodeKind::Symlink && follow {
            hops = hops.saturating_add(1);
            if hops > MAX_SYMLINK_HOPS {
                return Err(Errno::ELOOP.into());
            }
            let target = ns.link_target(&child);
            if target.is_empty() {
                return Err(Errno::ENOENT.into());
            }
            if is_last && target.ends_with('/') {
                trailing_slash = true;
            }
            if target.starts_with('/') {
                ancestors.truncate(1);
            }
            pending.extend(components(target).rev().map(str::to_owned));
            continue;
        }
        if is_last {
            if trailing_slash && kind != NodeKind::Dir && mode != Mode::Parent {
                return Err(Errno::ENOTDIR.into());
            }
            return Ok(Resolved { ancestors, name: Some(component), node: Some(child), trailing_slash });
        }
        if kind != NodeKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        ancestors.push((component, child));
    }
}

/// The components of a path, empty ones (from repeated or trailing slashes) dropped.
pub(crate) fn split(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    components(path)
}

/// Walks one non-final component from the directory at the end of `ancestors`: `.` stays, `..`
/// goes up (not above the root), a name must lead to a directory, following symlinks (counted in
/// `hops`, shared across a whole walk). Exactly what [`resolve`] does for a component that is
/// not the last, so a walk entered component by component reaches what resolving the joined
/// path would.
pub(crate) fn enter<NS: Namespace>(
    ns: &NS,
    ancestors: &mut Vec<(String, NS::Node)>,
    hops: &mut u32,
    component: &str,
) -> Result<(), FsError> {
    if component.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG.into());
    }
    if component == "." {
        return Ok(());
    }
    if component == ".." {
        if ancestors.len() > 1 {
            ancestors.pop();
        }
        return Ok(());
    }
    let (_, dir) = ancestors.last().ok_or(Errno::EIO)?;
    let child = ns.lookup(dir, component).ok_or(Errno::ENOENT)?;
    match ns.kind(&child) {
        NodeKind::Dir => {
            ancestors.push((component.to_owned(), child));
            Ok(())
        }
        NodeKind::File => Err(Errno::ENOTDIR.into()),
        NodeKind::Symlink => {
            *hops = hops.saturating_add(1);
            if *hops > MAX_SYMLINK_HOPS {
                return Err(Errno::ELOOP.into());
            }
            let target = ns.link_target(&child).to_owned();
            if target.is_empty() {
                return Err(Errno::ENOENT.into());
            }
            if target.starts_with('/') {
                ancestors.truncate(1);
            }
            for part in components(&target) {
                enter(ns, ancestors, hops, part)?;
            }
            Ok(())
        }
    }
}

/// The start of a walk of `path`: the root, then `cwd` entered when `path` is relative.
pub(crate) fn start<NS: Namespace>(
    ns: &NS,
    path: VPath<'_>,
    hops: &mut u32,
) -> Result<Vec<(String, NS::Node)>, FsError> {
    let mut ancestors = vec![(String::new(), ns.root())];
    if !path.path.starts_with('/') {
        for component in components(path.cwd) {
            enter(ns, &mut ancestors, hops, component)?;
        }
    }
    Ok(ancestors)
}

/// Whether a component is a name (not `.` or `..`).
pub(crate) fn is_name(component: &str) -> bool {
    component != "." && component != ".."
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use std::collections::BTreeMap;

    use super::*;

    /// A namespace of literal paths: `"/a"` → kind and target.
    struct Paths(BTreeMap<String, (NodeKind, String)>);

    impl Paths {
        fn new(entries: &[(&str, NodeKind, &str)]) -> Self {
            let mut map = BTreeMap::new();
            map.insert(String::new(), (NodeKind::Dir, String::new()));
            for (path, kind, target) in entries {
                map.insert((*path).to_owned(), (*kind, (*target).to_owned()));
            }
            Self(map)
        }
    }

    impl Namespace for Paths {
        type Node = String;
        fn root(&self) -> String {
            String::new()
        }
        fn lookup(&self, dir: &String, name: &str) -> Option<String> {
            let path = format!("{dir}/{name}");
            self.0.contains_key(&path).then_some(path)
        }
        fn kind(&self, node: &String) -> NodeKind {
            self.0[node].0
        }
        fn link_target(&self, node: &String) -> &str {
            &self.0[node].1
        }
    }

    fn ns() -> Paths {
        Paths::new(&[
            ("/d", NodeKind::Dir, ""),
            ("/d/f", NodeKind::File, ""),
            ("/l", NodeKind::Symlink, "d"),
            ("/dangling", NodeKind::Symlink, "/d/nope"),
        ])
    }

    fn at(path: &str, mode: Mode) -> Result<Resolved<String>, Errno> {
        resolve(&ns(), VPath::from(path), mode).map_err(|e| e.errno())
    }

    #[test]
    fn final_component_modes() {
        assert_eq!(at("/l", Mode::Follow).unwrap().node.as_deref(), Some("/d"));
        assert_eq!(at("/l", Mode::NoFollow).unwrap().node.as_deref(), Some("/l"));
        assert_eq!(at("/l/", Mode::NoFollow).unwrap().node.as_deref(), Some("/d"), "a slash follows");
        let parent = at("/l/", Mode::Parent).unwrap();
        assert_eq!((parent.node.as_deref(), parent.trailing_slash), (Some("/l"), true), "Parent never follows");
        let dangling = at("/dangling", Mode::Follow).unwrap();
        assert_eq!(
            (dangling.node.clone(), dangling.name.as_deref(), dangling.canonical()),
            (None, Some("nope"), "/d/nope".into())
        );
        assert_eq!(at("/d/f/", Mode::Follow).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(at("/d/f/", Mode::Parent).unwrap().node.as_deref(), Some("/d/f"));
        assert_eq!(at("/d/f/x", Mode::Parent).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(at("/x/y", Mode::Parent).unwrap_err(), Errno::ENOENT);
    }

    #[test]
    fn dots_and_the_root() {
        for path in ["/", "/..", "//", "/./../.", "/d/.."] {
            let resolved = at(path, Mode::Parent).unwrap();
            assert!(resolved.is_root(), "{path}");
            assert_eq!(resolved.canonical(), "/");
        }
        let resolved = resolve(&ns(), VPath::at("/d", "../l/./f"), Mode::Follow).unwrap();
        assert_eq!(resolved.canonical(), "/d/f");
        assert_eq!(at("/d/.", Mode::Parent).unwrap().name, None);
    }

    #[test]
    fn validation() {
        assert_eq!(validate("").unwrap_err().errno(), Errno::ENOENT);
        assert_eq!(validate("a\0").unwrap_err().errno(), Errno::EINVAL);
        assert!(validate(&"a".repeat(PATH_MAX - 1)).is_ok());
        assert_eq!(validate(&"a".repeat(PATH_MAX)).unwrap_err().errno(), Errno::ENAMETOOLONG);
        assert_eq!(at(&format!("/{}", "n".repeat(NAME_MAX + 1)), Mode::Parent).unwrap_err(), Errno::ENAMETOOLONG);
    }

    #[test]
    fn entering_matches_resolving() {
        let ns = ns();
        for path in ["/l/f", "/d/../l/f", "/l/../d/f", "/dangling/x", "/d/f/g"] {
            let components: Vec<&str> = split(path).collect();
            let (last, init) = components.split_last().unwrap();
            let mut hops = 0;
            let mut ancestors = start(&ns, VPath::from(path), &mut hops).unwrap();
            let walked = init.iter().try_for_each(|c| enter(&ns, &mut ancestors, &mut hops, c));
            let resolved = resolve(&ns, VPath::from(path), Mode::Parent);
            match (walked, resolved) {
                (Ok(()), Ok(resolved)) => {
                    assert_eq!(ancestors.last().map(|(_, n)| n), resolved.ancestors.last().map(|(_, n)| n), "{path}");
                    assert_eq!(resolved.name.as_deref(), Some(*last));
                }
                (Err(a), Err(b)) => assert_eq!(a.errno(), b.errno(), "{path}"),
                (a, b) => panic!("{path}: walk {a:?}, resolve {b:?}"),
            }
        }
    }
}
