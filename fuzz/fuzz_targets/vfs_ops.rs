//! Operation sequences straight against `kernel::vfs`, in two modes.
//!
//! The input is an `arbitrary` [`Input`]: a setup and a list of [`Step`]s (a working directory
//! and an [`Op`]). Paths come from a tiny alphabet (`a`..`d`, `.`, `..`, one name longer than
//! `NAME_MAX`), depth 0 to 3, absolute or relative, sometimes with a trailing slash; symlink
//! targets are paths from the same alphabet, so loops, dangling links and links through links
//! are common. File contents are at most 24 bytes.
//!
//! - **Flat**: a [`Filesystem`] (default limits, or small ones drawn from the input so every
//!   `ENOSPC` path is reachable) against [`Model`], the naive path-map model of
//!   `testkit::vfs_model` (the one the kernel's differential tests use too). Oracles after every
//!   step: the result (value, or errno with the limit that was hit) is the model's; the export
//!   (path, kind, mode, content) is the model's listing; byte and inode totals agree and stay
//!   within the limits; a failed operation leaves the filesystem exactly as it was
//!   (`Filesystem: PartialEq`, times and counters included); errors are labelled with the path
//!   as given; every `stat` has file-type bits matching its kind and `blocks` matching its size
//!   (checked by `testkit::vfs_driver::stat_out`). At the end, `lstat`/`stat` of every path
//!   agree and export → import → export is stable.
//! - **Overlay**: a lower [`Layer`] built by running the lower steps on a scratch filesystem and
//!   sealing its export, an [`Overlay`] over it, and a flat [`Filesystem`] that imported the
//!   same entries; the steps go to both. Results agree up to times and link counts, the merged
//!   export equals the flat one after every step, a failed overlay operation leaves the merged
//!   view unchanged (copy-ups may stay), the lower layer never changes. With small limits only the
//!   overlay's upper is bounded in bytes and inodes (copy-ups count there): an overlay failure on
//!   one of those two limits is accepted, and the flat step undone.
#![no_main]

use std::fmt;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use kernel::vfs::{Errno, Filesystem, FsError, FsLimits, Layer, LimitKind, Overlay, SnapshotEntry, NAME_MAX};
use kernel::Now;
use libfuzzer_sys::fuzz_target;
use testkit::vfs_driver::{self, error_name, listing, stat_out, tree, Vfs};
use testkit::vfs_model::{self, coarse, Follow, Model, Res, BYTES, INODES};

const MAX_STEPS: usize = 64;
const MAX_LOWER_STEPS: usize = 32;
const MAX_DATA: u8 = 24;

/// Path components, by `index % 16` (zero is `a`). `LONG` stands for a name over `NAME_MAX`.
const NAMES: [&str; 16] = ["a", "b", "c", "a", "b", "c", "d", "..", ".", "a", "b", "c", "..", "a", "b", LONG];
const LONG: &str = "<long>";
const CWDS: [&str; 4] = ["/", "/a", "/a/b", "/c"];
/// `chmod` arguments, by `index % 8` (the last has file-type bits, which must be ignored).
const MODES: [u32; 8] = [0o644, 0o755, 0o600, 0o777, 0o4755, 0o000, 0o1777, 0o177_777];

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Setup {
    Flat(Limits),
    Overlay { limits: Limits, lower: Vec<Step> },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Limits {
    Default,
    Small { bytes: u8, inodes: u8, readdir: u8, pread: u8, write: u8 },
}

impl Limits {
    fn get(self) -> FsLimits {
        match self {
            Self::Default => FsLimits::default(),
            Self::Small { bytes, inodes, readdir, pread, write } => FsLimits {
                max_filesystem_bytes: u64::from(bytes % 65),
                max_inode_count: u64::from(inodes % 17),
                max_readdir_entries: u64::from(readdir % 6),
                max_pread_bytes: u64::from(pread % 17),
                max_fd_write_bytes: u64::from(write % 33),
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Step {
    cwd: u8,
    op: Op,
}

/// A path: `shape % 4` picks the depth (1, 2, 3, 0), `(shape >> 2) % 4 == 3` makes it relative,
/// `(shape >> 4) % 4 == 3` adds a trailing slash; `comps` index [`NAMES`]. Zero bytes: `/a`.
/// Depth 0 is `/` (absolute) or the empty path (relative).
#[derive(Arbitrary, Clone, Copy)]
struct P {
    shape: u8,
    comps: [u8; 3],
}

impl P {
    fn render(self) -> String {
        let depth = [1, 2, 3, 0][usize::from(self.shape % 4)];
        let relative = (self.shape >> 2) % 4 == 3;
        let slash = (self.shape >> 4) % 4 == 3;
        let names: Vec<String> = self.comps[..depth]
            .iter()
            .map(|&c| match NAMES[usize::from(c % 16)] {
                LONG => "x".repeat(NAME_MAX + 1),
                name => name.to_owned(),
            })
            .collect();
        let mut out = if relative { String::new() } else { "/".to_owned() };
        out.push_str(&names.join("/"));
        if slash && depth > 0 {
            out.push('/');
        }
        out
    }
}

/// Shown as the path it renders to, so `cargo fuzz fmt` and failure messages read as paths.
impl fmt::Debug for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.render();
        match path.find(&"x".repeat(NAME_MAX + 1)) {
            Some(_) => write!(f, "{:?}", path.replace(&"x".repeat(NAME_MAX + 1), "<x * 256>")),
            None => write!(f, "{path:?}"),
        }
    }
}

/// File content: `len % 25` bytes counting up from `first`.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Content {
    len: u8,
    first: u8,
}

impl Content {
    fn bytes(self) -> Vec<u8> {
        (0..self.len % (MAX_DATA + 1)).map(|i| self.first.wrapping_add(i)).collect()
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Write(P, Content),
    Mkdir(P, bool),
    /// Target, then the link's path.
    Symlink(P, P),
    Rename(P, P),
    Link(P, P),
    Unlink(P),
    Rmdir(P, bool),
    Truncate(P, u8),
    Pwrite(P, u8, Content),
    Chmod(P, u8),
    Read(P),
    Pread(P, u8, u8),
    ReadLink(P),
    Stat(P),
    Lstat(P),
    ReadDir(P),
    Realpath(P),
    Exists(P),
    /// Read-only when `value % 8 == 7`.
    ReadOnly(u8),
}

/// Offsets and lengths of `pread`, `pwrite` and `truncate`: small, past the end sometimes.
fn small(n: u8) -> u64 {
    u64::from(n % 40)
}

impl Op {
    /// The operation both the model and the real thing run.
    fn render(self) -> vfs_model::Op {
        use vfs_model::Op as M;
        match self {
            Op::Write(p, d) => M::Write(p.render(), d.bytes()),
            Op::Mkdir(p, r) => M::Mkdir(p.render(), r),
            Op::Symlink(target, p) => M::Symlink(target.render(), p.render()),
            Op::Rename(a, b) => M::Rename(a.render(), b.render()),
            Op::Link(a, b) => M::Link(a.render(), b.render()),
            Op::Unlink(p) => M::Unlink(p.render()),
            Op::Rmdir(p, r) => M::Rmdir(p.render(), r),
            Op::Truncate(p, n) => M::Truncate(p.render(), small(n)),
            Op::Pwrite(p, o, d) => M::Pwrite(p.render(), small(o), d.bytes()),
            Op::Chmod(p, m) => M::Chmod(p.render(), MODES[usize::from(m % 8)]),
            Op::Read(p) => M::Read(p.render()),
            Op::Pread(p, o, n) => M::Pread(p.render(), small(o), small(n)),
            Op::ReadLink(p) => M::ReadLink(p.render()),
            Op::Stat(p) => M::Stat(p.render()),
            Op::Lstat(p) => M::Lstat(p.render()),
            Op::ReadDir(p) => M::ReadDir(p.render()),
            Op::Realpath(p) => M::Realpath(p.render()),
            Op::Exists(p) => M::Exists(p.render()),
            Op::ReadOnly(v) => M::ReadOnly(v % 8 == 7),
        }
    }
}

fuzz_target!(|input: Input| {
    let steps: Vec<Step> = input.steps.into_iter().take(MAX_STEPS).collect();
    match input.setup {
        Setup::Flat(limits) => flat(limits.get(), &steps),
        Setup::Overlay { limits, lower } => {
            overlay(limits.get(), &lower.into_iter().take(MAX_LOWER_STEPS).collect::<Vec<_>>(), &steps)
        }
    }
});

/// `VFS_OPS_TRACE=1` prints every step and its result (to read a corpus input or a crash).
fn trace(index: usize, step: &Step, result: &Res) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("VFS_OPS_TRACE").is_some()) {
        eprintln!("step {index} (cwd {}): {:?} -> {result:?}", cwd(step), step.op);
    }
}

fn t(ms: u64) -> Now {
    Now::from_millis(ms, ms)
}

fn cwd(step: &Step) -> &'static str {
    CWDS[usize::from(step.cwd % 4)]
}

// ---------------------------------------------------------------------------------------------
// Flat mode
// ---------------------------------------------------------------------------------------------

fn flat(limits: FsLimits, steps: &[Step]) {
    let mut fs = Filesystem::new(limits, t(0));
    let mut model = Model::new(limits);
    for (index, step) in steps.iter().enumerate() {
        let now = index as u64 + 1;
        let before = fs.clone();
        let op = step.op.render();
        let real = apply(&mut fs, cwd(step), &op, t(now));
        let expected = model.apply(cwd(step), &op, now);
        trace(index, step, &real);
        assert_eq!(real, expected, "step {index} (cwd {}): {:?}", cwd(step), step.op);
        if real.is_err() {
            assert!(fs == before, "step {index}: the failed {:?} changed the filesystem", step.op);
        }
        assert_eq!(listing(fs.export()), model.listing(), "tree after step {index}: {:?}", step.op);
        assert_eq!((fs.total_bytes(), fs.inode_count()), (model.bytes(), model.inodes()), "totals, step {index}");
        assert!(fs.total_bytes() <= limits.max_filesystem_bytes, "byte limit exceeded");
        assert!(fs.inode_count() <= limits.max_inode_count.max(1), "inode limit exceeded");
    }
    for (path, ..) in model.listing() {
        let lstat = fs.lstat(path.as_str()).map(stat_out).map_err(|e| error_name(&e));
        assert_eq!(lstat, model.stat("/", &path, Follow::No), "final lstat {path}");
        let stat = fs.stat(path.as_str()).map(stat_out).map_err(|e| error_name(&e));
        assert_eq!(stat, model.stat("/", &path, Follow::Yes), "final stat {path}");
    }
    round_trip(&fs.export());
}

/// Export → import → export gives the same entries (hard links become separate files, which
/// exports the same).
fn round_trip(entries: &[SnapshotEntry]) {
    let imported = Filesystem::from_entries(entries, FsLimits::unlimited(), t(0)).expect("an export imports");
    assert_eq!(imported.export(), entries, "export → import → export");
}

// ---------------------------------------------------------------------------------------------
// Overlay mode
// ---------------------------------------------------------------------------------------------

fn overlay(limits: FsLimits, lower_steps: &[Step], steps: &[Step]) {
    // The lower: whatever the lower steps build, sealed from its export (hard links become
    // separate files, as in the flat import). Root metadata is the upper's in an overlay, so
    // the lower root keeps the default mode.
    let mut scratch = Filesystem::new(FsLimits::default(), t(0));
    for step in lower_steps {
        let _ = apply(&mut scratch, cwd(step), &step.op.render(), t(0));
    }
    scratch.set_read_only(false);
    scratch.chmod("/", 0o755, t(0)).expect("chmod /");
    let entries = scratch.export();
    let lower = Layer::from_entries(&entries, FsLimits::unlimited(), t(0)).expect("an export seals");
    let lower_before = lower.export();
    assert_eq!(lower_before, entries, "the sealed layer exports what it imported");

    // The flat filesystem is bounded like the overlay except in bytes and inodes (copy-ups
    // count against the upper's).
    let flat_limits = FsLimits { max_filesystem_bytes: u64::MAX, max_inode_count: u64::MAX, ..limits };
    let mut flat = Filesystem::from_entries(&entries, FsLimits::unlimited(), t(0)).expect("import");
    flat.set_limits(flat_limits);
    let mut ov = Overlay::new(Filesystem::new(limits, t(0)), vec![lower.clone()]);
    assert_eq!(tree(ov.export()), tree(flat.export()), "before any step");

    for (index, step) in steps.iter().enumerate() {
        let now = t(100 + index as u64);
        let (flat_before, merged_before) = (flat.clone(), ov.export());
        let op = step.op.render();
        let expected = coarse(apply(&mut flat, cwd(step), &op, now));
        let real = coarse(apply(&mut ov, cwd(step), &op, now));
        trace(index, step, &real);
        if expected.is_err() {
            assert!(flat == flat_before, "step {index}: the failed {:?} changed the filesystem", step.op);
        }
        if real.is_err() {
            assert_eq!(ov.export(), merged_before, "step {index}: the failed {:?} changed the merged view", step.op);
        }
        if real != expected {
            // Copy-ups count against the upper's byte and inode limits, the flat side has none.
            assert!(
                matches!(real, Err(BYTES | INODES)),
                "step {index} (cwd {}): {:?}: overlay {real:?}, flat {expected:?}",
                cwd(step),
                step.op
            );
            flat = flat_before;
        }
        assert_eq!(tree(ov.export()), tree(flat.export()), "tree after step {index}: {:?}", step.op);
        let upper = ov.upper();
        assert!(upper.total_bytes() <= limits.max_filesystem_bytes, "upper byte limit exceeded");
        assert!(upper.inode_count() <= limits.max_inode_count.max(1), "upper inode limit exceeded");
    }
    assert_eq!(lower.export(), lower_before, "the lower layer changed");
    assert!(Layer::ptr_eq(&lower, &ov.lowers()[0]), "the overlay holds the shared layer");
    for entry in flat.export() {
        let path = entry.path.as_str();
        let (real, expected) = (ov.lstat(path).map(stat_out), flat.lstat(path).map(stat_out));
        let name = |e: FsError| error_name(&e);
        assert_eq!(coarse(real.map_err(name)), coarse(expected.map_err(name)), "final lstat {path}");
    }
    round_trip(&ov.export());
}

// ---------------------------------------------------------------------------------------------
// Driving the real thing
// ---------------------------------------------------------------------------------------------

/// The error as compared: its errno, or the limit it names (which must be the configured one).
/// It must be labelled with an operation and the first path as given.
fn code(error: FsError, path: &str, limits: &FsLimits) -> &'static str {
    assert!(!error.op().is_empty() && error.path() == path, "label of {error:?} (path {path:?})");
    if let Some((kind, value)) = error.limit() {
        assert_eq!(error.errno(), Errno::ENOSPC, "{error:?}");
        let configured = match kind {
            LimitKind::FilesystemBytes => limits.max_filesystem_bytes,
            LimitKind::InodeCount => limits.max_inode_count,
            LimitKind::ReaddirEntries => limits.max_readdir_entries,
            LimitKind::PreadBytes => limits.max_pread_bytes,
            LimitKind::FdWriteBytes => limits.max_fd_write_bytes,
        };
        assert_eq!(value, configured, "{error:?}");
    }
    error_name(&error)
}

fn apply<V: Vfs>(fs: &mut V, cwd: &str, op: &vfs_model::Op, now: Now) -> Res {
    let limits = fs.limits();
    vfs_driver::apply(fs, cwd, op, now).map_err(|e| code(e, op.labelled_path().unwrap_or_default(), &limits))
}
