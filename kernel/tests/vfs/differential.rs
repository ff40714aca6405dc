//! Random operation sequences applied to the real filesystem and to the naive model
//! (`testkit::vfs_model`): every result (value or errno) and the final tree must agree.

use kernel::vfs::{Filesystem, FsLimits, VPath};
use kernel::Now;
use proptest::prelude::*;
use testkit::vfs_driver::{self, error_name, listing, stat_out, Vfs};
use testkit::vfs_model::{Follow, Model, Op, Res};

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

/// `op` on the real filesystem, its error named as the model names it.
pub fn apply_real<V: Vfs>(fs: &mut V, cwd: &str, op: &Op, now: Now) -> Res {
    vfs_driver::apply(fs, cwd, op, now).map_err(|e| error_name(&e))
}

fn run(ops: &[(&'static str, Op)], limits: FsLimits) -> Result<(), TestCaseError> {
    let mut fs = Filesystem::new(limits, Now::from_millis(0, 0));
    let mut model = Model::new(limits);
    for (step, (cwd, op)) in ops.iter().enumerate() {
        let now = step as u64 + 1;
        let real = apply_real(&mut fs, cwd, op, Now::from_millis(now, now));
        let expected = model.apply(cwd, op, now);
        prop_assert_eq!(&real, &expected, "step {} (cwd {}): {:?}", step, cwd, op);
        prop_assert_eq!(listing(fs.export()), model.listing(), "tree after step {}: {:?}", step, op);
        prop_assert_eq!(fs.total_bytes(), model.bytes(), "bytes after step {}", step);
        prop_assert_eq!(fs.inode_count(), model.inodes(), "inodes after step {}", step);
    }
    // Every directory's and file's stat agrees at the end.
    for (path, ..) in model.listing() {
        let real = fs.lstat(path.as_str()).map(stat_out).map_err(|e| error_name(&e));
        prop_assert_eq!(real, model.stat("/", &path, Follow::No), "final lstat {}", path);
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
                (Err(e), _) if e.starts_with("ENOSPC") => limit_hits += 1,
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
