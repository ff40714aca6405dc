//! The `node` command on disk, as `scripts/build-node.sh` builds it: `node.wasm` (QuickJS-NG
//! with the Node.js builtins layer, `runtime-js/`), read once at start-up and provided to every
//! VM (see `kernel::host::programs`). Without it, `node` is an ordinary command name that no VM
//! has, and `runtime: JAVA_SCRIPT` fails to find it.
//!
//! Loading the layer is most of a `node` start (44 million instructions), and the same for
//! every process: the layer reads nothing of the process while it loads.
//! So it is loaded once, into a snapshot beside the build ([`prepare_snapshot`]:
//! `node-snapshot.wasm`, made by pre-initialisation the first time a sidecar or the simulator
//! finds it missing), and every process starts from that. A snapshot is used only while its key
//! (a digest of the build it was made from and of how) matches, so a new build is never run
//! from an old build's snapshot. A file beside it states the snapshot's own SHA-256, so the
//! snapshot is provided as an installed module: read only when the engine has no code compiled
//! from it (a sidecar whose module cache keeps `node`'s code never reads its 3 MB).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernel::host::module::{InstalledModule, SharedModule};
pub use kernel::host::programs::SnapshotPlan;
use kernel::host::programs::{SidecarPrograms, NODE_COMMAND};
use sha2::{Digest, Sha256};

use crate::python::{installed_file, parse_digest, write_atomically};

/// The largest `node.wasm` (or snapshot) read: it is about 2 MB (3 MB as a snapshot); a file far
/// past that is not this build.
pub const MAX_NODE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The build.
const NODE_WASM: &str = "node.wasm";
/// Its snapshot, with the layer loaded.
pub const NODE_SNAPSHOT: &str = "node-snapshot.wasm";
/// The snapshot's key: [`snapshot_key`] of the build it was made from.
const NODE_SNAPSHOT_KEY: &str = "node-snapshot.key";
/// The snapshot's SHA-256 (hex), after the key it was made under: a file of its own, so a
/// sidecar of an earlier version, which reads the key file whole, still finds its key current.
const NODE_SNAPSHOT_DIGEST: &str = "node-snapshot.digest";
/// The export that loads the layer (see `runtime-js/runner/node.c`); a build without it (an
/// older one) runs as built.
const SNAPSHOT_INIT_FUNC: &str = "wizer.initialize";

/// The plan every snapshot is made by; part of the key, so a change here makes a new snapshot.
/// Loading the layer takes about 44 million instructions (twenty times that is a start-up gone
/// wrong) and ends near 3 MB (256 MiB is far beyond anything loading needs). It reads no
/// arguments and draws no entropy (Math.random is seeded again at every start); the seed is
/// fixed so one build makes the same bytes.
pub const SNAPSHOT_PLAN: SnapshotPlan = SnapshotPlan {
    init_func: SNAPSHOT_INIT_FUNC,
    max_fuel: 1_000_000_000,
    max_memory_bytes: 256 << 20,
    argv0: NODE_COMMAND,
    seed: 0x5EC0_2E8E_C000_0002,
};

/// The key's format: bumped when what a snapshot holds changes in a way the build's bytes and
/// the plan do not show (the pre-initialiser's version).
const SNAPSHOT_FORMAT: &str = "secure-exec node snapshot v1, wasmtime-wizer 48.0.8";

/// `$SECURE_EXEC_NODE`, else `${XDG_CACHE_HOME:-~/.cache}/secure-exec-sidecar/node` (where the
/// build script leaves its latest build).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SECURE_EXEC_NODE") {
        return PathBuf::from(dir);
    }
    crate::python::cache_home().join("secure-exec-sidecar/node")
}

/// The programs of `dir`: `node` when `node.wasm` is there (none otherwise), from its snapshot
/// when that is current; `Err` says why a file that is there cannot be used.
pub fn programs(dir: &Path) -> Result<SidecarPrograms, String> {
    match Build::read(dir)? {
        Some(build) => build.programs(dir),
        None => Ok(SidecarPrograms::default()),
    }
}

/// [`prepare_snapshot`], then [`programs`], reading the build once (a sidecar's start): the
/// programs, and what became of the snapshot (a failure there leaves the build to run).
///
/// # Errors
///
/// As [`programs`].
pub fn programs_with_snapshot(
    dir: &Path,
    make: impl FnOnce(&[u8], &SnapshotPlan) -> Result<Vec<u8>, String>,
) -> Result<(SidecarPrograms, Result<Snapshot, String>), String> {
    let Some(build) = Build::read(dir)? else { return Ok((SidecarPrograms::default(), Ok(Snapshot::NoBuild))) };
    let snapshot = build.prepare(dir, make);
    Ok((build.programs(dir)?, snapshot))
}

/// A build as read from its directory, with the key its snapshot must have.
struct Build {
    bytes: Vec<u8>,
    key: String,
}

impl Build {
    /// `dir`'s build, if there is one.
    fn read(dir: &Path) -> Result<Option<Build>, String> {
        let Some(bytes) = read(dir, NODE_WASM)? else { return Ok(None) };
        let key = snapshot_key(&bytes);
        Ok(Some(Build { bytes, key }))
    }

    /// Whether `dir`'s snapshot key is this build's.
    fn snapshot_is_current(&self, dir: &Path) -> bool {
        std::fs::read_to_string(dir.join(NODE_SNAPSHOT_KEY)).is_ok_and(|found| found.trim() == self.key)
    }

    /// The snapshot's SHA-256 as `dir` states it for this build's snapshot (none when it
    /// states none, or one for another build's).
    fn snapshot_digest(&self, dir: &Path) -> Option<[u8; 32]> {
        let recorded = std::fs::read_to_string(dir.join(NODE_SNAPSHOT_DIGEST)).ok()?;
        let mut lines = recorded.lines();
        if lines.next() != Some(self.key.as_str()) {
            return None;
        }
        parse_digest(lines.next()?)
    }

    /// The programs: `node`, from the snapshot when it is current (installed, when its digest
    /// is stated; read now otherwise).
    fn programs(self, dir: &Path) -> Result<SidecarPrograms, String> {
        if !self.snapshot_is_current(dir) {
            return SidecarPrograms::default().with(NODE_COMMAND, Arc::from(self.bytes));
        }
        if let Some(digest) = self.snapshot_digest(dir) {
            if let Ok(snapshot) = installed_snapshot(dir, digest) {
                return SidecarPrograms::default().with(NODE_COMMAND, SharedModule::Installed(Arc::new(snapshot)));
            }
        }
        let snapshot = read(dir, NODE_SNAPSHOT).ok().flatten();
        SidecarPrograms::default().with(NODE_COMMAND, Arc::from(snapshot.unwrap_or(self.bytes)))
    }

    /// States the SHA-256 of `snapshot`, `dir`'s snapshot of this build.
    fn state_digest(&self, dir: &Path, snapshot: &[u8]) -> Result<(), String> {
        let record = format!("{}\n{}\n", self.key, crate::hex(&Sha256::digest(snapshot)));
        write_atomically(&dir.join(NODE_SNAPSHOT_DIGEST), record.as_bytes())
    }

    /// See [`prepare_snapshot`].
    fn prepare(
        &self,
        dir: &Path,
        make: impl FnOnce(&[u8], &SnapshotPlan) -> Result<Vec<u8>, String>,
    ) -> Result<Snapshot, String> {
        if !self.bytes.windows(SNAPSHOT_INIT_FUNC.len()).any(|window| window == SNAPSHOT_INIT_FUNC.as_bytes()) {
            return Ok(Snapshot::NotSnapshottable);
        }
        if self.snapshot_is_current(dir) && dir.join(NODE_SNAPSHOT).is_file() {
            if self.snapshot_digest(dir).is_none() {
                // Made before its digest was stated (or by an earlier version): stated once, so
                // later starts need not read the snapshot.
                if let Ok(Some(snapshot)) = read(dir, NODE_SNAPSHOT) {
                    let _ = self.state_digest(dir, &snapshot);
                }
            }
            return Ok(Snapshot::Current);
        }
        // One process makes it; the others starting meanwhile run the build as built. Taking
        // the claim also finds a directory this process cannot write (a read-only install)
        // before the 0.7 s of making a snapshot that could not be kept, not after, on every
        // start.
        let Some(claim) = Claim::take(dir)? else { return Ok(Snapshot::BeingMade) };
        let made = make(&self.bytes, &SNAPSHOT_PLAN);
        drop(claim);
        let snapshot = made?;
        if u64::try_from(snapshot.len()).unwrap_or(u64::MAX) > MAX_NODE_FILE_BYTES {
            return Err(format!(
                "the snapshot is {} bytes, over the {MAX_NODE_FILE_BYTES} bytes allowed",
                snapshot.len()
            ));
        }
        let _ = std::fs::remove_file(dir.join(NODE_SNAPSHOT_KEY));
        write_atomically(&dir.join(NODE_SNAPSHOT), &snapshot)?;
        self.state_digest(dir, &snapshot)?;
        write_atomically(&dir.join(NODE_SNAPSHOT_KEY), format!("{}\n", self.key).as_bytes())?;
        Ok(Snapshot::Made)
    }
}

/// What [`prepare_snapshot`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// No build in the directory.
    NoBuild,
    /// The build cannot be loaded into a snapshot (it has no start-up export): it runs as built.
    NotSnapshottable,
    /// The snapshot there is current.
    Current,
    /// A snapshot was made and installed.
    Made,
    /// Another process is making it: the build runs as built until it is there.
    BeingMade,
}

/// The file that says a process is making the snapshot.
pub const NODE_SNAPSHOT_CLAIM: &str = "node-snapshot.making";
/// How old a claim may be before it is taken as left by a process that died while making:
/// making takes under a second; a minute is far past any live one.
pub const CLAIM_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// This process's claim on making the snapshot; released when dropped.
struct Claim {
    path: PathBuf,
}

impl Claim {
    /// The claim, unless a live one is there (`None`).
    ///
    /// # Errors
    ///
    /// The directory cannot be written.
    fn take(dir: &Path) -> Result<Option<Claim>, String> {
        let path = dir.join(NODE_SNAPSHOT_CLAIM);
        for _ in 0..2 {
            match std::fs::File::create_new(&path) {
                Ok(_) => return Ok(Some(Claim { path })),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path).and_then(|metadata| metadata.modified()).ok();
                    let stale =
                        age.and_then(|modified| modified.elapsed().ok()).is_some_and(|age| age > CLAIM_STALE_AFTER);
                    if !stale {
                        return Ok(None);
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(error) => return Err(format!("cannot write in {}: {error}", dir.display())),
            }
        }
        Ok(None)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Makes `dir`'s snapshot when it is missing or stale, with `make` (the runtime's
/// pre-initialisation of the build by the plan: see `runtime_wasm::preinitialize_quietly`),
/// written beside the build (a temporary file renamed into place, then the key, so a crash
/// leaves either the old pair or a snapshot without a matching key, never a torn one in use).
///
/// # Errors
///
/// The build cannot be read, `make` fails, or a write fails: the build then runs as built.
pub fn prepare_snapshot(
    dir: &Path,
    make: impl FnOnce(&[u8], &SnapshotPlan) -> Result<Vec<u8>, String>,
) -> Result<Snapshot, String> {
    match Build::read(dir)? {
        Some(build) => build.prepare(dir, make),
        None => Ok(Snapshot::NoBuild),
    }
}

/// `dir`'s snapshot, whose SHA-256 is stated to be `digest`, to be read only when the
/// engine has no code compiled from it.
///
/// # Errors
///
/// It is missing or over [`MAX_NODE_FILE_BYTES`].
fn installed_snapshot(dir: &Path, digest: [u8; 32]) -> Result<InstalledModule, String> {
    installed_file(dir.join(NODE_SNAPSHOT), digest, MAX_NODE_FILE_BYTES, |path, error| {
        format!("{}: {error}", path.display())
    })
}

/// The key of a snapshot of `build`: hex SHA-256 over the format, the plan and the build.
fn snapshot_key(build: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(SNAPSHOT_FORMAT.as_bytes());
    hasher.update(format!("{SNAPSHOT_PLAN:?}").as_bytes());
    hasher.update(build);
    crate::hex(&hasher.finalize())
}

/// `dir/name`, whole; `None` when it is not there.
fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    let path = dir.join(name);
    let size = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    if size > MAX_NODE_FILE_BYTES {
        return Err(format!("{} is {size} bytes, over the {MAX_NODE_FILE_BYTES} bytes allowed", path.display()));
    }
    std::fs::read(&path).map(Some).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_is_provided_when_built_and_absent_otherwise() {
        let dir = crate::fresh_test_dir("node-test");
        assert_eq!(programs(&dir).unwrap().names().count(), 0);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("node.wasm"), b"\0asm").unwrap();
        assert!(programs(&dir).unwrap().has(NODE_COMMAND));
        std::fs::File::create(dir.join("node.wasm")).unwrap().set_len(MAX_NODE_FILE_BYTES + 1).unwrap();
        assert!(programs(&dir).unwrap_err().ends_with(&format!("over the {MAX_NODE_FILE_BYTES} bytes allowed")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_current_snapshot_is_provided_installed_under_its_stated_digest() {
        let dir = crate::fresh_test_dir("node-installed");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(NODE_WASM), b"\0asm wizer.initialize").unwrap();
        let snapshot_of = |build: &[u8], _: &SnapshotPlan| Ok([b"snapshot of ", build].concat());
        assert_eq!(prepare_snapshot(&dir, snapshot_of).unwrap(), Snapshot::Made);
        let snapshot = std::fs::read(dir.join(NODE_SNAPSHOT)).unwrap();
        let digest: [u8; 32] = Sha256::digest(&snapshot).into();
        let installed = |dir: &Path| match programs(dir).unwrap().find(NODE_COMMAND).unwrap().1 {
            SharedModule::Installed(module) => Some((module.digest(), module.len())),
            SharedModule::Bytes(_) => None,
        };
        assert_eq!(installed(&dir), Some((digest, snapshot.len() as u64)));
        // The key file is the key alone, as earlier versions read it.
        let key = std::fs::read_to_string(dir.join(NODE_SNAPSHOT_KEY)).unwrap();
        assert_eq!(key.lines().count(), 1);
        // A snapshot whose digest is not stated, or is stated for another build's: read at
        // start, until a preparation states it.
        let stated = std::fs::read_to_string(dir.join(NODE_SNAPSHOT_DIGEST)).unwrap();
        for unstated in [None, Some(stated.replacen(key.trim(), &"0".repeat(64), 1))] {
            match &unstated {
                None => std::fs::remove_file(dir.join(NODE_SNAPSHOT_DIGEST)).unwrap(),
                Some(other) => std::fs::write(dir.join(NODE_SNAPSHOT_DIGEST), other).unwrap(),
            }
            assert_eq!(installed(&dir), None);
            assert_eq!(programs(&dir).unwrap().find(NODE_COMMAND).unwrap().1.bytes().unwrap().to_vec(), snapshot);
            assert_eq!(prepare_snapshot(&dir, |_, _| Err("not again".into())).unwrap(), Snapshot::Current);
            assert_eq!(std::fs::read_to_string(dir.join(NODE_SNAPSHOT_DIGEST)).unwrap(), stated);
            assert_eq!(installed(&dir), Some((digest, snapshot.len() as u64)));
        }
        // A snapshot replaced by one of another length is refused when read, not run.
        let module = programs(&dir).unwrap().find(NODE_COMMAND).unwrap().1.clone();
        std::fs::write(dir.join(NODE_SNAPSHOT), b"longer than the snapshot was").unwrap();
        assert!(module.bytes().unwrap_err().contains("changed"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_snapshot_is_made_once_and_used_only_while_it_is_of_the_build_there() {
        let dir = crate::fresh_test_dir("node-snapshot");
        let provided = |dir: &Path| programs(dir).unwrap().find(NODE_COMMAND).unwrap().1.bytes().unwrap().to_vec();
        let snapshot_of =
            |build: &[u8], plan: &SnapshotPlan| Ok([b"snapshot of ", build, plan.init_func.as_bytes()].concat());
        assert_eq!(prepare_snapshot(&dir, snapshot_of).unwrap(), Snapshot::NoBuild);
        std::fs::create_dir_all(&dir).unwrap();
        // An older build, without the start-up export, runs as built.
        std::fs::write(dir.join(NODE_WASM), b"\0asm old").unwrap();
        assert_eq!(prepare_snapshot(&dir, snapshot_of).unwrap(), Snapshot::NotSnapshottable);
        assert_eq!(provided(&dir), b"\0asm old");
        // A build with it: made once, then current; what is provided is the snapshot.
        std::fs::write(dir.join(NODE_WASM), b"\0asm wizer.initialize").unwrap();
        assert_eq!(prepare_snapshot(&dir, snapshot_of).unwrap(), Snapshot::Made);
        assert_eq!(prepare_snapshot(&dir, |_, _| Err("not again".into())).unwrap(), Snapshot::Current);
        assert_eq!(provided(&dir), b"snapshot of \0asm wizer.initializewizer.initialize");
        // Another process making it: this one runs the build as built; a claim left by one
        // that died is taken over once it is old.
        std::fs::write(dir.join(NODE_SNAPSHOT_CLAIM), b"").unwrap();
        std::fs::write(dir.join(NODE_WASM), b"\0asm newer wizer.initialize").unwrap();
        assert_eq!(prepare_snapshot(&dir, |_, _| Err("not while claimed".into())).unwrap(), Snapshot::BeingMade);
        let long_ago = std::time::SystemTime::now() - CLAIM_STALE_AFTER * 2;
        std::fs::File::options()
            .write(true)
            .open(dir.join(NODE_SNAPSHOT_CLAIM))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(prepare_snapshot(&dir, snapshot_of).unwrap(), Snapshot::Made);
        assert!(!dir.join(NODE_SNAPSHOT_CLAIM).exists(), "released");
        // A new build: the old snapshot is not used, and a failed making installs nothing.
        std::fs::write(dir.join(NODE_WASM), b"\0asm new wizer.initialize").unwrap();
        assert_eq!(provided(&dir), b"\0asm new wizer.initialize");
        assert_eq!(prepare_snapshot(&dir, |_, _| Err("failed".into())).unwrap_err(), "failed");
        assert_eq!(provided(&dir), b"\0asm new wizer.initialize");
        assert_eq!(prepare_snapshot(&dir, snapshot_of).unwrap(), Snapshot::Made);
        assert_eq!(provided(&dir), b"snapshot of \0asm new wizer.initializewizer.initialize");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
