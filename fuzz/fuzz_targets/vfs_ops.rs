//! Operation sequences straight against `kernel::vfs`, in two modes.
//!
//! The input is an `arbitrary` [`Input`]: a setup and a list of [`Step`]s (a working directory
//! and an [`Op`]). Paths come from a tiny alphabet (`a`..`d`, `.`, `..`, one name longer than
//! `NAME_MAX`), depth 0 to 3, absolute or relative, sometimes with a trailing slash; symlink
//! targets are paths from the same alphabet, so loops, dangling links and links through links
//! are common. File contents are at most 24 bytes.
//!
//! - **Flat**: a [`Filesystem`] (default limits, or small ones drawn from the input so every
//!   `ENOSPC` path is reachable) against [`Model`], a naive path-map model written here with the
//!   semantics of the reference model of `kernel/tests/vfs/model.rs`, extended with hard links,
//!   `pwrite`, `chmod` and read-only mode. Oracles after every step: the result (value, or errno
//!   with the limit that was hit) is the model's; the export (path, kind, mode, content) is the
//!   model's listing; byte and inode totals agree and stay within the limits; a failed operation
//!   leaves the filesystem exactly as it was (`Filesystem: PartialEq`, times and counters
//!   included); errors are labelled with the path as given. At the end, `lstat`/`stat` of every
//!   path agree and export → import → export is stable.
//! - **Overlay**: a lower [`Layer`] built by running the lower steps on a scratch filesystem and
//!   sealing its export, an [`Overlay`] over it, and a flat [`Filesystem`] that imported the
//!   same entries; the steps go to both. Results agree up to times and link counts, the merged
//!   export equals the flat one after every step, a failed overlay operation leaves the merged
//!   view unchanged (copy-ups may stay), the lower layer never changes. With small limits only the
//!   overlay's upper is bounded in bytes and inodes (copy-ups count there): an overlay failure on
//!   one of those two limits is accepted, and the flat step undone.
#![no_main]

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use kernel::vfs::{
    EntryKind, Errno, Filesystem, FsError, FsLimits, Layer, LimitKind, Overlay, SnapshotEntry, Stat, VPath, NAME_MAX,
    S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use kernel::Now;
use libfuzzer_sys::fuzz_target;

const MAX_STEPS: usize = 64;
const MAX_LOWER_STEPS: usize = 32;
const MAX_DATA: u8 = 24;
const MAX_SYMLINK_HOPS: u32 = 40;

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

/// What an operation returned, comparable between implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Unit,
    Bool(bool),
    Bytes(Vec<u8>),
    Text(String),
    Names(Vec<String>),
    Count(u64),
    Stat { kind: char, size: u64, nlink: u64, mtime: u64, mode: u32 },
}

/// Errors are errno names, a limit failure names its bound.
type Res = Result<Out, &'static str>;

const BYTES: &str = "ENOSPC(filesystem bytes)";
const INODES: &str = "ENOSPC(inode count)";
const READDIR: &str = "ENOSPC(readdir entries)";
const PREAD: &str = "ENOSPC(pread bytes)";
const WRITE: &str = "ENOSPC(fd write bytes)";

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
        let real = apply(&mut fs, cwd(step), &step.op, t(now));
        let expected = model.apply(cwd(step), &step.op, now);
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
        let lstat = fs.lstat(path.as_str()).map(stat_out).map_err(|e| e.code());
        assert_eq!(lstat, model.stat("/", &path, Follow::No), "final lstat {path}");
        let stat = fs.stat(path.as_str()).map(stat_out).map_err(|e| e.code());
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

/// Path, kind, permission bits, content or target.
fn listing(entries: Vec<SnapshotEntry>) -> Vec<(String, char, u32, Vec<u8>)> {
    entries
        .into_iter()
        .map(|e| match e.kind {
            EntryKind::Directory => (e.path, 'd', e.mode, Vec::new()),
            EntryKind::File(bytes) => (e.path, 'f', e.mode, bytes),
            EntryKind::Symlink(target) => (e.path, 'l', e.mode, target.into_bytes()),
        })
        .collect()
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
        let _ = apply(&mut scratch, cwd(step), &step.op, t(0));
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
        let expected = coarse(apply(&mut flat, cwd(step), &step.op, now));
        let real = coarse(apply(&mut ov, cwd(step), &step.op, now));
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
        assert_eq!(coarse(real.map_err(|e| e.code())), coarse(expected.map_err(|e| e.code())), "final lstat {path}");
    }
    round_trip(&ov.export());
}

/// Results without what an overlay reports differently: times and link counts.
fn coarse(result: Res) -> Res {
    match result {
        Ok(Out::Stat { kind, size, mode, .. }) => Ok(Out::Stat { kind, size, nlink: 0, mtime: 0, mode }),
        other => other,
    }
}

fn tree(entries: Vec<SnapshotEntry>) -> Vec<(String, u32, EntryKind)> {
    entries.into_iter().map(|e| (e.path, e.mode, e.kind)).collect()
}

// ---------------------------------------------------------------------------------------------
// Driving the real thing
// ---------------------------------------------------------------------------------------------

/// What [`Filesystem`] and [`Overlay`] both offer.
trait Vfs {
    fn limits(&self) -> FsLimits;
    fn set_read_only(&mut self, read_only: bool);
    fn write_file(&mut self, p: VPath<'_>, d: &[u8], now: Now) -> Result<(), FsError>;
    fn pwrite(&mut self, p: VPath<'_>, o: u64, d: &[u8], now: Now) -> Result<u64, FsError>;
    fn truncate(&mut self, p: VPath<'_>, n: u64, now: Now) -> Result<(), FsError>;
    fn read_file(&self, p: VPath<'_>) -> Result<&[u8], FsError>;
    fn pread(&self, p: VPath<'_>, o: u64, n: u64) -> Result<&[u8], FsError>;
    fn mkdir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError>;
    fn remove_dir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError>;
    fn remove_file(&mut self, p: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn rename(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn symlink(&mut self, t: &str, p: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn link(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError>;
    fn chmod(&mut self, p: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError>;
    fn read_link(&self, p: VPath<'_>) -> Result<String, FsError>;
    fn stat(&self, p: VPath<'_>) -> Result<Stat, FsError>;
    fn lstat(&self, p: VPath<'_>) -> Result<Stat, FsError>;
    fn read_dir(&self, p: VPath<'_>) -> Result<Vec<String>, FsError>;
    fn realpath(&self, p: VPath<'_>) -> Result<String, FsError>;
    fn exists(&self, p: VPath<'_>) -> bool;
}

macro_rules! impl_vfs {
    ($t:ty, $limits:expr) => {
        impl Vfs for $t {
            fn limits(&self) -> FsLimits {
                $limits(self)
            }
            fn set_read_only(&mut self, read_only: bool) {
                <$t>::set_read_only(self, read_only)
            }
            fn write_file(&mut self, p: VPath<'_>, d: &[u8], now: Now) -> Result<(), FsError> {
                <$t>::write_file(self, p, d, now)
            }
            fn pwrite(&mut self, p: VPath<'_>, o: u64, d: &[u8], now: Now) -> Result<u64, FsError> {
                <$t>::pwrite(self, p, o, d, now)
            }
            fn truncate(&mut self, p: VPath<'_>, n: u64, now: Now) -> Result<(), FsError> {
                <$t>::truncate(self, p, n, now)
            }
            fn read_file(&self, p: VPath<'_>) -> Result<&[u8], FsError> {
                <$t>::read_file(self, p)
            }
            fn pread(&self, p: VPath<'_>, o: u64, n: u64) -> Result<&[u8], FsError> {
                <$t>::pread(self, p, o, n)
            }
            fn mkdir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError> {
                <$t>::mkdir(self, p, r, now)
            }
            fn remove_dir(&mut self, p: VPath<'_>, r: bool, now: Now) -> Result<(), FsError> {
                <$t>::remove_dir(self, p, r, now)
            }
            fn remove_file(&mut self, p: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::remove_file(self, p, now)
            }
            fn rename(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::rename(self, a, b, now)
            }
            fn symlink(&mut self, t: &str, p: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::symlink(self, t, p, now)
            }
            fn link(&mut self, a: VPath<'_>, b: VPath<'_>, now: Now) -> Result<(), FsError> {
                <$t>::link(self, a, b, now)
            }
            fn chmod(&mut self, p: VPath<'_>, mode: u32, now: Now) -> Result<(), FsError> {
                <$t>::chmod(self, p, mode, now)
            }
            fn read_link(&self, p: VPath<'_>) -> Result<String, FsError> {
                <$t>::read_link(self, p)
            }
            fn stat(&self, p: VPath<'_>) -> Result<Stat, FsError> {
                <$t>::stat(self, p)
            }
            fn lstat(&self, p: VPath<'_>) -> Result<Stat, FsError> {
                <$t>::lstat(self, p)
            }
            fn read_dir(&self, p: VPath<'_>) -> Result<Vec<String>, FsError> {
                <$t>::read_dir(self, p)
            }
            fn realpath(&self, p: VPath<'_>) -> Result<String, FsError> {
                <$t>::realpath(self, p)
            }
            fn exists(&self, p: VPath<'_>) -> bool {
                <$t>::exists(self, p)
            }
        }
    };
}

impl_vfs!(Filesystem, |fs: &Filesystem| *fs.limits());
impl_vfs!(Overlay, |ov: &Overlay| *ov.upper().limits());

fn stat_out(stat: Stat) -> Out {
    let (kind, file_type) = if stat.is_directory {
        ('d', S_IFDIR)
    } else if stat.is_symbolic_link {
        ('l', S_IFLNK)
    } else {
        ('f', S_IFREG)
    };
    assert_eq!(stat.mode & S_IFMT, file_type, "file type bits of {stat:?}");
    assert_eq!(stat.blocks, stat.size.div_ceil(512), "blocks of {stat:?}");
    Out::Stat { kind, size: stat.size, nlink: stat.nlink, mtime: stat.mtime_ms, mode: stat.mode & 0o7777 }
}

/// The error as compared: its errno, or the limit it names (which must be the configured one).
/// It must be labelled with an operation and the first path as given.
fn code(error: FsError, path: &str, limits: &FsLimits) -> &'static str {
    assert!(!error.op().is_empty() && error.path() == path, "label of {error:?} (path {path:?})");
    let Some((kind, value)) = error.limit() else { return error.code() };
    assert_eq!(error.errno(), Errno::ENOSPC, "{error:?}");
    let (name, configured) = match kind {
        LimitKind::FilesystemBytes => (BYTES, limits.max_filesystem_bytes),
        LimitKind::InodeCount => (INODES, limits.max_inode_count),
        LimitKind::ReaddirEntries => (READDIR, limits.max_readdir_entries),
        LimitKind::PreadBytes => (PREAD, limits.max_pread_bytes),
        LimitKind::FdWriteBytes => (WRITE, limits.max_fd_write_bytes),
    };
    assert_eq!(value, configured, "{error:?}");
    name
}

fn apply<V: Vfs>(fs: &mut V, cwd: &str, op: &Op, now: Now) -> Res {
    let limits = fs.limits();
    let run = |path: &str, result: Result<Out, FsError>| result.map_err(|e| code(e, path, &limits));
    let unit = |_| Out::Unit;
    match *op {
        Op::Write(p, d) => {
            let p = p.render();
            run(&p, fs.write_file(VPath::at(cwd, &p), &d.bytes(), now).map(unit))
        }
        Op::Mkdir(p, r) => {
            let p = p.render();
            run(&p, fs.mkdir(VPath::at(cwd, &p), r, now).map(unit))
        }
        Op::Symlink(target, p) => {
            let (target, p) = (target.render(), p.render());
            run(&target, fs.symlink(&target, VPath::at(cwd, &p), now).map(unit))
        }
        Op::Rename(a, b) => {
            let (a, b) = (a.render(), b.render());
            run(&a, fs.rename(VPath::at(cwd, &a), VPath::at(cwd, &b), now).map(unit))
        }
        Op::Link(a, b) => {
            let (a, b) = (a.render(), b.render());
            run(&a, fs.link(VPath::at(cwd, &a), VPath::at(cwd, &b), now).map(unit))
        }
        Op::Unlink(p) => {
            let p = p.render();
            run(&p, fs.remove_file(VPath::at(cwd, &p), now).map(unit))
        }
        Op::Rmdir(p, r) => {
            let p = p.render();
            run(&p, fs.remove_dir(VPath::at(cwd, &p), r, now).map(unit))
        }
        Op::Truncate(p, n) => {
            let p = p.render();
            run(&p, fs.truncate(VPath::at(cwd, &p), small(n), now).map(unit))
        }
        Op::Pwrite(p, o, d) => {
            let p = p.render();
            run(&p, fs.pwrite(VPath::at(cwd, &p), small(o), &d.bytes(), now).map(Out::Count))
        }
        Op::Chmod(p, m) => {
            let p = p.render();
            run(&p, fs.chmod(VPath::at(cwd, &p), MODES[usize::from(m % 8)], now).map(unit))
        }
        Op::Read(p) => {
            let p = p.render();
            run(&p, fs.read_file(VPath::at(cwd, &p)).map(|b| Out::Bytes(b.to_vec())))
        }
        Op::Pread(p, o, n) => {
            let p = p.render();
            run(&p, fs.pread(VPath::at(cwd, &p), small(o), small(n)).map(|b| Out::Bytes(b.to_vec())))
        }
        Op::ReadLink(p) => {
            let p = p.render();
            run(&p, fs.read_link(VPath::at(cwd, &p)).map(Out::Text))
        }
        Op::Stat(p) => {
            let p = p.render();
            run(&p, fs.stat(VPath::at(cwd, &p)).map(stat_out))
        }
        Op::Lstat(p) => {
            let p = p.render();
            run(&p, fs.lstat(VPath::at(cwd, &p)).map(stat_out))
        }
        Op::ReadDir(p) => {
            let p = p.render();
            run(&p, fs.read_dir(VPath::at(cwd, &p)).map(Out::Names))
        }
        Op::Realpath(p) => {
            let p = p.render();
            run(&p, fs.realpath(VPath::at(cwd, &p)).map(Out::Text))
        }
        Op::Exists(p) => Ok(Out::Bool(fs.exists(VPath::at(cwd, &p.render())))),
        Op::ReadOnly(v) => {
            fs.set_read_only(v % 8 == 7);
            Ok(Out::Unit)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// How the final component is treated (the kernel's `Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    Yes,
    No,
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

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

fn parts(path: &str) -> Vec<String> {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

/// A deliberately naive filesystem: a map from canonical absolute path to node. Subtrees are
/// found by string prefix, renames rewrite keys, counts are recomputed by scanning.
#[derive(Debug, Clone)]
struct Model {
    nodes: BTreeMap<String, Node>,
    objs: BTreeMap<u64, Obj>,
    next_obj: u64,
    limits: FsLimits,
    read_only: bool,
}

impl Model {
    fn new(limits: FsLimits) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), Node::Dir { mode: 0o755, mtime: 0 });
        Self { nodes, objs: BTreeMap::new(), next_obj: 0, limits, read_only: false }
    }

    fn apply(&mut self, cwd: &str, op: &Op, now: u64) -> Res {
        match *op {
            Op::Write(p, d) => self.write(cwd, &p.render(), &d.bytes(), now),
            Op::Mkdir(p, r) => self.mkdir(cwd, &p.render(), r, now),
            Op::Symlink(target, p) => self.symlink(cwd, &target.render(), &p.render(), now),
            Op::Rename(a, b) => self.rename(cwd, &a.render(), &b.render(), now),
            Op::Link(a, b) => self.link(cwd, &a.render(), &b.render(), now),
            Op::Unlink(p) => self.unlink(cwd, &p.render(), now),
            Op::Rmdir(p, r) => self.rmdir(cwd, &p.render(), r, now),
            Op::Truncate(p, n) => self.truncate(cwd, &p.render(), small(n), now),
            Op::Pwrite(p, o, d) => self.pwrite(cwd, &p.render(), small(o), &d.bytes(), now),
            Op::Chmod(p, m) => self.chmod(cwd, &p.render(), MODES[usize::from(m % 8)]),
            Op::Read(p) => self.read(cwd, &p.render()),
            Op::Pread(p, o, n) => self.pread(cwd, &p.render(), small(o), small(n)),
            Op::ReadLink(p) => self.read_link(cwd, &p.render()),
            Op::Stat(p) => self.stat(cwd, &p.render(), Follow::Yes),
            Op::Lstat(p) => self.stat(cwd, &p.render(), Follow::No),
            Op::ReadDir(p) => self.read_dir(cwd, &p.render()),
            Op::Realpath(p) => self.existing(cwd, &p.render(), Follow::Yes).map(Out::Text),
            Op::Exists(p) => {
                Ok(Out::Bool(matches!(self.locate(cwd, &p.render(), Follow::Yes), Ok(Where { exists: true, .. }))))
            }
            Op::ReadOnly(v) => {
                self.read_only = v % 8 == 7;
                Ok(Out::Unit)
            }
        }
    }

    // Queries --------------------------------------------------------------------------------

    fn is_dir(&self, path: &str) -> bool {
        matches!(self.nodes.get(path), Some(Node::Dir { .. }))
    }

    fn obj(&self, path: &str) -> Option<(u64, &Obj)> {
        match self.nodes.get(path) {
            Some(Node::Obj(id)) => self.objs.get(id).map(|obj| (*id, obj)),
            _ => None,
        }
    }

    fn file(&self, path: &str) -> Option<&Vec<u8>> {
        match self.obj(path) {
            Some((_, Obj { data: Data::File(bytes), .. })) => Some(bytes),
            _ => None,
        }
    }

    fn target(&self, path: &str) -> Option<&str> {
        match self.obj(path) {
            Some((_, Obj { data: Data::Symlink(target), .. })) => Some(target),
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
        self.nodes.values().filter(|n| matches!(n, Node::Obj(i) if *i == id)).count() as u64
    }

    fn bytes(&self) -> u64 {
        self.objs.values().map(|o| if let Data::File(b) = &o.data { b.len() as u64 } else { 0 }).sum()
    }

    fn inodes(&self) -> u64 {
        self.nodes.values().filter(|n| matches!(n, Node::Dir { .. })).count() as u64 + self.objs.len() as u64
    }

    /// Every name: path, kind, permission bits, content or target.
    fn listing(&self) -> Vec<(String, char, u32, Vec<u8>)> {
        self.nodes
            .iter()
            .map(|(path, node)| match node {
                Node::Dir { mode, .. } => (path.clone(), 'd', *mode, Vec::new()),
                Node::Obj(id) => match &self.objs[id] {
                    Obj { data: Data::File(b), mode, .. } => (path.clone(), 'f', *mode, b.clone()),
                    Obj { data: Data::Symlink(t), mode, .. } => (path.clone(), 'l', *mode, t.as_bytes().to_vec()),
                },
            })
            .collect()
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

    fn check_write(&self, len: usize) -> Result<(), &'static str> {
        if len as u64 > self.limits.max_fd_write_bytes {
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

    fn pread(&self, cwd: &str, path: &str, offset: u64, len: u64) -> Res {
        if len > self.limits.max_pread_bytes {
            return Err(PREAD);
        }
        let Out::Bytes(b) = self.read(cwd, path)? else { return Err("EIO") };
        Ok(Out::Bytes(b.into_iter().skip(offset as usize).take(len as usize).collect()))
    }

    fn stat(&self, cwd: &str, path: &str, follow: Follow) -> Res {
        let p = self.existing(cwd, path, follow)?;
        Ok(match &self.nodes[&p] {
            Node::Dir { mode, mtime } => {
                let subdirs = self.children(&p).iter().filter(|c| self.is_dir(&join(&p, c))).count() as u64;
                Out::Stat { kind: 'd', size: 4096, nlink: 2 + subdirs, mtime: *mtime, mode: *mode }
            }
            Node::Obj(id) => {
                let obj = &self.objs[id];
                let (kind, size) = match &obj.data {
                    Data::File(b) => ('f', b.len() as u64),
                    Data::Symlink(t) => ('l', t.len() as u64),
                };
                Out::Stat { kind, size, nlink: self.nlink(*id), mtime: obj.mtime, mode: obj.mode }
            }
        })
    }

    fn read_dir(&self, cwd: &str, path: &str) -> Res {
        let p = self.existing(cwd, path, Follow::Yes)?;
        if !self.is_dir(&p) {
            return Err("ENOTDIR");
        }
        let names = self.children(&p);
        if names.len() as u64 > self.limits.max_readdir_entries {
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
            self.check_write(data.len())?;
            self.check_bytes(old.len() as u64, data.len() as u64)?;
            self.set_content(&p, data.to_vec(), now);
        } else {
            if w.slash {
                return Err("EISDIR");
            }
            self.check_write(data.len())?;
            self.check_inodes()?;
            self.check_bytes(0, data.len() as u64)?;
            self.new_obj(p, Data::File(data.to_vec()), 0o644, now);
            self.touch(&w.dir, now);
        }
        Ok(Out::Unit)
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

    fn pwrite(&mut self, cwd: &str, path: &str, offset: u64, data: &[u8], now: u64) -> Res {
        self.writable()?;
        let p = self.existing(cwd, path, Follow::Yes)?;
        let Some(old) = self.file(&p) else { return Err("EISDIR") };
        self.check_write(data.len())?;
        let end = offset as usize + data.len();
        let new_len = old.len().max(end);
        self.check_bytes(old.len() as u64, new_len as u64)?;
        let mut bytes = old.clone();
        bytes.resize(new_len, 0);
        bytes[offset as usize..end].copy_from_slice(data);
        self.set_content(&p, bytes, now);
        Ok(Out::Count(data.len() as u64))
    }

    fn truncate(&mut self, cwd: &str, path: &str, len: u64, now: u64) -> Res {
        self.writable()?;
        let p = self.existing(cwd, path, Follow::Yes)?;
        let Some(old) = self.file(&p) else { return Err("EISDIR") };
        self.check_bytes(old.len() as u64, len)?;
        let mut bytes = old.clone();
        bytes.resize(len as usize, 0);
        self.set_content(&p, bytes, now);
        Ok(Out::Unit)
    }

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
        self.nodes.insert(w.full(), Node::Dir { mode: 0o755, mtime: now });
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
            if let Some(node) = self.nodes.remove(&q) {
                self.nodes.insert(format!("{dst}{}", &q[src.len()..]), node);
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
        self.new_obj(w.full(), Data::Symlink(target.to_owned()), 0o777, now);
        self.touch(&w.dir, now);
        Ok(Out::Unit)
    }

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
