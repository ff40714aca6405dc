//! The original's command packages from npm (`@agentos-software/*`), installed once per machine
//! by `scripts/fetch-packages.sh` into a cache outside the repository. Tests that run the real
//! commands call [`root`]; the first call installs the packages if they are missing (it needs
//! `npm` and the npm registry), later ones find them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kernel::host::package::{FORMAT_VERSION, MAGIC};

/// The packages `scripts/fetch-packages.sh` installs (through `@agentos-software/common`).
pub const PACKAGES: [&str; 8] = ["coreutils", "sed", "grep", "gawk", "findutils", "diffutils", "tar", "gzip"];

/// The directory holding `node_modules/@agentos-software/`, installing the packages first if
/// needed.
///
/// # Panics
///
/// If they cannot be installed, with what to do about it.
pub fn installed() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetched("fetch-packages.sh", "the command packages", "npm and the npm registry"))
}

/// Runs the project's `scripts/<script>` (which installs `what` once per machine into a cache
/// and prints its directory) and returns that directory.
///
/// # Panics
///
/// If the script fails, with its error and what it `needs`.
// A test cannot go on without the software; the panic says how to get it.
#[allow(clippy::panic)]
pub(crate) fn fetched(script: &str, what: &str, needs: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(script);
    match Command::new("bash").arg(&script).output() {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        }
        Ok(output) => panic!(
            "{what} are not installed and {} failed (it needs {needs}):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!("cannot run {}: {error}", script.display()),
    }
}

/// The installed npm package directory of `@agentos-software/<name>`: a `software` root.
pub fn root(name: &str) -> String {
    installed().join("node_modules/@agentos-software").join(name).display().to_string()
}

/// Builds `.aospkg` archives for tests: files and symlinks by path; directories and
/// the commands (`/bin/*`) follow from them.
#[derive(Debug, Default, Clone)]
pub struct PackageWriter {
    pub name: String,
    pub version: String,
    files: BTreeMap<String, (u32, Vec<u8>)>,
    links: BTreeMap<String, String>,
}

impl PackageWriter {
    pub fn new(name: &str, version: &str) -> Self {
        PackageWriter { name: name.to_owned(), version: version.to_owned(), ..Default::default() }
    }

    /// A file at the absolute package path `path`.
    pub fn file(mut self, path: &str, mode: u32, content: &[u8]) -> Self {
        self.files.insert(path.to_owned(), (mode, content.to_vec()));
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.links.insert(path.to_owned(), target.to_owned());
        self
    }

    /// The archive's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut dirs = std::collections::BTreeSet::from(["/".to_owned()]);
        for path in self.files.keys().chain(self.links.keys()) {
            let mut at = path.as_str();
            while let Some(cut) = at.rfind('/').filter(|cut| *cut > 0) {
                at = at.get(..cut).unwrap_or("/");
                dirs.insert(at.to_owned());
            }
        }
        let mut manifest = Vec::new();
        put_u16(&mut manifest, 1);
        put_str(&mut manifest, &self.name);
        put_str(&mut manifest, &self.version);
        manifest.extend([0, 0]); // no agent, no provides
        let commands: Vec<&String> =
            self.files.keys().chain(self.links.keys()).filter(|path| path.starts_with("/bin/")).collect();
        put_uvarint(&mut manifest, commands.len());
        let mut sorted = commands.clone();
        sorted.sort();
        for path in sorted {
            put_str(&mut manifest, path.trim_start_matches("/bin/"));
            put_str(&mut manifest, path.trim_start_matches('/'));
        }
        manifest.extend([0, 0]); // no man pages, no snapshot
        let mut tar = Vec::new();
        let mut entries: BTreeMap<&str, (u8, u64, u64, u32, Option<&str>)> = BTreeMap::new();
        for dir in &dirs {
            entries.insert(dir, (1, 0, 0, kernel::vfs::S_IFDIR | 0o755, None));
        }
        for (path, (mode, content)) in &self.files {
            let offset = u64::try_from(tar.len()).unwrap_or(u64::MAX);
            tar.extend_from_slice(content);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
            let size = u64::try_from(content.len()).unwrap_or(u64::MAX);
            entries.insert(path, (0, offset, size, kernel::vfs::S_IFREG | mode, None));
        }
        for (path, target) in &self.links {
            entries.insert(path, (2, 0, 0, kernel::vfs::S_IFLNK | 0o777, Some(target)));
        }
        let mut index = Vec::new();
        put_u16(&mut index, 1);
        put_uvarint(&mut index, entries.len());
        for (path, (kind, offset, size, mode, target)) in entries {
            put_str(&mut index, path);
            index.push(kind);
            index.extend(offset.to_le_bytes());
            index.extend(size.to_le_bytes());
            index.extend(mode.to_le_bytes());
            index.extend([0u8; 8]); // uid, gid
            index.extend(0i64.to_le_bytes());
            match target {
                Some(target) => {
                    index.push(1);
                    put_str(&mut index, target);
                }
                None => index.push(0),
            }
        }
        let mut out = MAGIC.to_vec();
        put_u16(&mut out, FORMAT_VERSION);
        put_u16(&mut out, 0);
        out.extend(u32::try_from(manifest.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend(u32::try_from(index.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend(manifest);
        out.extend(index);
        out.extend(tar);
        out
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend(value.to_le_bytes());
}

fn put_uvarint(out: &mut Vec<u8>, value: usize) {
    let mut value = u64::try_from(value).unwrap_or(u64::MAX);
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap_or(0));
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_uvarint(out, text.len());
    out.extend(text.as_bytes());
}
