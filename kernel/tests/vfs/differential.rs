//! Random operation sequences applied to the real filesystem and to the naive model in
//! `model.rs`: every result (value or errno) and the final tree must agree.

use kernel::vfs::{EntryKind, Filesystem, FsError, FsLimits, Stat, VPath};
use kernel::Now;
use proptest::prelude::*;

use crate::common::Vfs;
use crate::model::{Model, Out, Res};

#[derive(Debug, Clone)]
pub enum Op {
    Write(String, Vec<u8>),
    Truncate(String, u64),
    Read(String),
    Pread(String, u64, u64),
    Mkdir(String, bool),
    Rmdir(String, bool),
    Unlink(String),
    Rename(String, String),
    Symlink(String, String),
    ReadLink(String),
    Stat(String),
    Lstat(String),
    ReadDir(String),
    Realpath(String),
    Exists(String),
}

fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just("a"), 4 => Just("b"), 3 => Just("c"), 1 => Just(".."), 1 => Just(".")]
}

/// A path over a tiny alphabet: mostly absolute, depth 1 to 3, sometimes a trailing slash.
fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(component(), 1..=3), prop::bool::weighted(0.8), prop::bool::weighted(0.1)).prop_map(
        |(parts, absolute, slash)| {
            let mut p = parts.join("/");
            if absolute {
                p.insert(0, '/');
            }
            if slash {
                p.push('/');
            }
            p
        },
    )
}

pub fn op() -> impl Strategy<Value = Op> {
    let data = prop::collection::vec(any::<u8>(), 0..20);
    prop_oneof![
        6 => (path(), data).prop_map(|(p, d)| Op::Write(p, d)),
        1 => (path(), 0u64..24).prop_map(|(p, n)| Op::Truncate(p, n)),
        2 => path().prop_map(Op::Read),
        1 => (path(), 0u64..12, 0u64..12).prop_map(|(p, o, n)| Op::Pread(p, o, n)),
        6 => (path(), any::<bool>()).prop_map(|(p, r)| Op::Mkdir(p, r)),
        2 => (path(), any::<bool>()).prop_map(|(p, r)| Op::Rmdir(p, r)),
        2 => path().prop_map(Op::Unlink),
        4 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        4 => (path(), path()).prop_map(|(t, p)| Op::Symlink(t, p)),
        1 => path().prop_map(Op::ReadLink),
        2 => path().prop_map(Op::Stat),
        1 => path().prop_map(Op::Lstat),
        2 => path().prop_map(Op::ReadDir),
        1 => path().prop_map(Op::Realpath),
        1 => path().prop_map(Op::Exists),
    ]
}

pub fn cwd() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("/"), Just("/a"), Just("/a/b"), Just("/c")]
}

fn small_limits() -> FsLimits {
    FsLimits {
        max_filesystem_bytes: 48,
        max_inode_count: 12,
        max_readdir_entries: 3,
        max_pread_bytes: 8,
        max_fd_write_bytes: 16,
    }
}

pub fn stat_out(stat: Stat) -> Out {
    let kind = if stat.is_directory {
        'd'
    } else if stat.is_symbolic_link {
        'l'
    } else {
        'f'
    };
    Out::Stat(kind, stat.size, stat.nlink, stat.mtime_ms)
}

pub fn code<T>(result: Result<T, FsError>, ok: impl FnOnce(T) -> Out) -> Res {
    result.map(ok).map_err(|e| e.code())
}

pub fn apply_real<V: Vfs>(fs: &mut V, cwd: &str, op: &Op, now: Now) -> Res {
    match op {
        Op::Write(p, d) => code(fs.write_file(VPath::at(cwd, p), d, now), |()| Out::Unit),
        Op::Truncate(p, n) => code(fs.truncate(VPath::at(cwd, p), *n, now), |()| Out::Unit),
        Op::Read(p) => code(fs.read_file(VPath::at(cwd, p)), |b| Out::Bytes(b.to_vec())),
        Op::Pread(p, o, n) => code(fs.pread(VPath::at(cwd, p), *o, *n), |b| Out::Bytes(b.to_vec())),
        Op::Mkdir(p, r) => code(fs.mkdir(VPath::at(cwd, p), *r, now), |()| Out::Unit),
        Op::Rmdir(p, r) => code(fs.remove_dir(VPath::at(cwd, p), *r, now), |()| Out::Unit),
        Op::Unlink(p) => code(fs.remove_file(VPath::at(cwd, p), now), |()| Out::Unit),
        Op::Rename(a, b) => code(fs.rename(VPath::at(cwd, a), VPath::at(cwd, b), now), |()| Out::Unit),
        Op::Symlink(t, p) => code(fs.symlink(t, VPath::at(cwd, p), now), |()| Out::Unit),
        Op::ReadLink(p) => code(fs.read_link(VPath::at(cwd, p)), Out::Text),
        Op::Stat(p) => code(fs.stat(VPath::at(cwd, p)), stat_out),
        Op::Lstat(p) => code(fs.lstat(VPath::at(cwd, p)), stat_out),
        Op::ReadDir(p) => code(fs.read_dir(VPath::at(cwd, p)), Out::Names),
        Op::Realpath(p) => code(fs.realpath(VPath::at(cwd, p)), Out::Text),
        Op::Exists(p) => Ok(Out::Bool(fs.exists(VPath::at(cwd, p)))),
    }
}

fn apply_model(model: &mut Model, cwd: &str, op: &Op, now: u64) -> Res {
    match op {
        Op::Write(p, d) => model.write(cwd, p, d, now),
        Op::Truncate(p, n) => model.truncate(cwd, p, *n, now),
        Op::Read(p) => model.read(cwd, p),
        Op::Pread(p, o, n) => model.pread(cwd, p, *o, *n),
        Op::Mkdir(p, r) => model.mkdir(cwd, p, *r, now),
        Op::Rmdir(p, r) => model.rmdir(cwd, p, *r, now),
        Op::Unlink(p) => model.unlink(cwd, p, now),
        Op::Rename(a, b) => model.rename(cwd, a, b, now),
        Op::Symlink(t, p) => model.symlink(cwd, t, p, now),
        Op::ReadLink(p) => model.read_link(cwd, p),
        Op::Stat(p) => model.stat(cwd, p, true),
        Op::Lstat(p) => model.stat(cwd, p, false),
        Op::ReadDir(p) => model.read_dir(cwd, p),
        Op::Realpath(p) => model.realpath(cwd, p),
        Op::Exists(p) => model.exists(cwd, p),
    }
}

pub fn listing(fs: &Filesystem) -> Vec<(String, char, Vec<u8>)> {
    fs.export()
        .into_iter()
        .map(|e| match e.kind {
            EntryKind::Directory => (e.path, 'd', Vec::new()),
            EntryKind::File(b) => (e.path, 'f', b),
            EntryKind::Symlink(t) => (e.path, 'l', t.into_bytes()),
        })
        .collect()
}

fn run(ops: &[(&'static str, Op)], limits: FsLimits) -> Result<(), TestCaseError> {
    let mut fs = Filesystem::new(limits, Now::from_millis(0, 0));
    let mut model = Model::new(limits);
    for (step, (cwd, op)) in ops.iter().enumerate() {
        let now = step as u64 + 1;
        let real = apply_real(&mut fs, cwd, op, Now::from_millis(now, now));
        let expected = apply_model(&mut model, cwd, op, now);
        prop_assert_eq!(&real, &expected, "step {} (cwd {}): {:?}", step, cwd, op);
        prop_assert_eq!(listing(&fs), model.listing(), "tree after step {}: {:?}", step, op);
        prop_assert_eq!(fs.total_bytes(), model.bytes(), "bytes after step {}", step);
        prop_assert_eq!(fs.inode_count(), model.inodes(), "inodes after step {}", step);
    }
    // Every directory's and file's stat agrees at the end.
    for (path, _, _) in model.listing() {
        let real = code(fs.lstat(path.as_str()), stat_out);
        prop_assert_eq!(real, model.stat("/", &path, false), "final lstat {}", path);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_the_model(ops in prop::collection::vec((cwd(), op()), 1..60)) {
        run(&ops, FsLimits::default())?;
    }

    #[test]
    fn agrees_with_the_model_under_tight_limits(ops in prop::collection::vec((cwd(), op()), 1..60)) {
        run(&ops, small_limits())?;
    }
}

/// The generator really produces the interesting cases (otherwise the property is vacuous).
#[test]
fn generated_sequences_reach_interesting_states() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec((cwd(), op()), 40..60);
    let (mut loops, mut renames_ok, mut dirs_nested, mut limit_hits, mut dangling_writes) = (0, 0, 0, 0, 0);
    for _ in 0..200 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut fs = Filesystem::new(small_limits(), Now::default());
        for (step, (cwd, op)) in ops.iter().enumerate() {
            let now = Now::from_millis(step as u64, step as u64);
            let result = apply_real(&mut fs, cwd, op, now);
            match (&result, op) {
                (Err("ELOOP"), _) => loops += 1,
                (Err("ENOSPC"), _) => limit_hits += 1,
                (Ok(_), Op::Rename(..)) => renames_ok += 1,
                (Ok(_), Op::Write(p, _)) if fs.lstat(VPath::at(cwd, p)).is_ok_and(|s| s.is_symbolic_link) => {
                    dangling_writes += 1
                }
                _ => {}
            }
        }
        if fs.export().iter().any(|e| e.path.matches('/').count() >= 3) {
            dirs_nested += 1;
        }
    }
    assert!(loops > 0, "no ELOOP");
    assert!(renames_ok > 20, "few renames: {renames_ok}");
    assert!(dirs_nested > 10, "few nested trees: {dirs_nested}");
    assert!(limit_hits > 20, "few limit hits: {limit_hits}");
    assert!(dangling_writes > 0, "no write through a symlink");
}
