//! Command packages: the original's `.aospkg` archives (`@agentos-software/*` on npm), read in
//! place.
//!
//! An archive is a 16-byte header (magic `\x89AOS`, u16 format version 1, u16 flags 0, u32
//! manifest length, u32 index length, all little-endian), then the manifest and the index
//! (each a u16 schema version followed by one BARE value filling the chunk exactly), then an
//! uncompressed tar whose files the index locates: a file's `offset` counts from the tar's first
//! byte and points at its data. The kernel never parses the tar's own headers: the index is the
//! whole truth, so a member the index does not name cannot be reached.
//!
//! Parsing checks every length against the file before reading it, and bounds what it keeps
//! ([`MAX_METADATA_BYTES`], [`MAX_INDEX_ENTRIES`]): a damaged or hostile archive is a
//! [`PackageError`] naming what is wrong, never a panic or an allocation the file's numbers
//! chose. File content is read on demand through [`PackageBytes`], so a package costs its index
//! in memory, shared by every VM that loads it.
//!
//! The driver opens archives ([`PackageSource`]); the kernel only reads through the handle.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::vfs::{Errno, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};

/// `\x89AOS`.
pub const MAGIC: [u8; 4] = [0x89, b'A', b'O', b'S'];
/// The container format this kernel reads.
pub const FORMAT_VERSION: u16 = 1;
/// The manifest and index schema versions it decodes (version 2 drops two manifest fields).
pub const SCHEMA_VERSIONS: [u16; 2] = [1, 2];
const HEADER_BYTES: u64 = 16;
/// Manifest plus index, read whole when the package opens. coreutils' (118 commands) take 7.7
/// KB; the index entries' bound below needs about 10 MB at the longest paths seen in practice,
/// so 16 MiB leaves room without letting a header make the kernel read an arbitrary amount.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;
/// Entries an index may list: the original's reader refuses more than 200,000 too.
pub const MAX_INDEX_ENTRIES: usize = 200_000;
/// Longest path or name in the metadata (Linux's `PATH_MAX`).
const MAX_STRING_BYTES: usize = 4096;

/// Why a package could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("cannot read {origin}: {detail}")]
    Io { origin: String, detail: String },
    #[error("{origin} is not a command package (.aospkg): {detail}")]
    Malformed { origin: String, detail: String },
    #[error("{origin}: unsupported .aospkg {what} version {version}")]
    Unsupported { origin: String, what: &'static str, version: u16 },
}

/// An opened archive file: its length and positioned reads. Implementations must not block
/// for long (a local file; the stdio driver's reads are bounded by the guest's request).
pub trait PackageBytes: fmt::Debug + Send + Sync {
    /// The archive's length in bytes.
    fn len_bytes(&self) -> u64;
    /// Fills `buf` from `offset`; an error if the file is shorter (it changed under us).
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Names the archive in messages (its host path).
    fn origin(&self) -> &str;
}

/// Opens command packages for ConfigureVm's `software` entries.
pub trait PackageSource: fmt::Debug + Send + Sync {
    /// The package at `root` (a `.aospkg` file, a directory holding `package.aospkg`, or an
    /// npm package directory holding `dist/package.aospkg`), parsed. Implementations may share
    /// one [`Package`] between callers.
    fn open(&self, root: &str) -> Result<Arc<Package>, PackageError>;
}

/// What an index entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
}

/// One index entry. Paths are absolute inside the package (`/bin/ls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// For files: where the content starts in the archive file (already offset by the tar).
    pub offset: u64,
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub mtime_s: i64,
    pub link_target: Option<String>,
    /// 1-based, in index order.
    pub ino: u64,
}

/// A command a package provides: its name and the file, relative to the package root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub entry: String,
}

/// An opened, checked package.
#[derive(Debug)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub commands: Vec<Command>,
    entries: BTreeMap<String, Entry>,
    bytes: Arc<dyn PackageBytes>,
}

impl Package {
    /// Reads and checks the header, manifest and index of `bytes`.
    pub fn parse(bytes: Arc<dyn PackageBytes>) -> Result<Package, PackageError> {
        let origin = bytes.origin().to_owned();
        let malformed = |detail: String| PackageError::Malformed { origin: origin.clone(), detail };
        let file_len = bytes.len_bytes();
        if file_len < HEADER_BYTES {
            return Err(malformed(format!("{file_len} bytes is shorter than the 16-byte header")));
        }
        let mut header = [0u8; 16];
        read(&*bytes, 0, &mut header)?;
        let (magic, rest) = header.split_at(4);
        if magic != MAGIC {
            return Err(malformed("the magic number is not \\x89AOS".to_owned()));
        }
        let field = |at: usize, len: usize| rest.get(at..at + len).unwrap_or_default();
        let version = u16::from_le_bytes(field(0, 2).try_into().unwrap_or_default());
        let flags = u16::from_le_bytes(field(2, 2).try_into().unwrap_or_default());
        let manifest_len = u64::from(u32::from_le_bytes(field(4, 4).try_into().unwrap_or_default()));
        let index_len = u64::from(u32::from_le_bytes(field(8, 4).try_into().unwrap_or_default()));
        if version != FORMAT_VERSION {
            return Err(PackageError::Unsupported { origin, what: "format", version });
        }
        if flags != 0 {
            return Err(malformed(format!("unsupported flags {flags}")));
        }
        let metadata_len = manifest_len + index_len;
        if metadata_len > MAX_METADATA_BYTES {
            return Err(malformed(format!(
                "{metadata_len} bytes of metadata, over the {MAX_METADATA_BYTES}-byte limit"
            )));
        }
        let tar_start = HEADER_BYTES + metadata_len;
        if tar_start > file_len {
            return Err(malformed(format!("the header's lengths reach byte {tar_start} of a {file_len}-byte file")));
        }
        let mut metadata = vec![0u8; usize::try_from(metadata_len).map_err(|_| malformed("too large".to_owned()))?];
        read(&*bytes, HEADER_BYTES, &mut metadata)?;
        let (manifest, index) = metadata.split_at(usize::try_from(manifest_len).unwrap_or(usize::MAX));
        let (name, version, commands) = decode_manifest(manifest).map_err(|e| malformed(format!("manifest: {e}")))?;
        let entries = decode_index(index, tar_start, file_len).map_err(|e| malformed(format!("index: {e}")))?;
        let package = Package { name, version, commands, entries, bytes };
        package.check_commands().map_err(malformed)?;
        Ok(package)
    }

    /// Every command names a safe name and a file (or a link) in the package.
    fn check_commands(&self) -> Result<(), String> {
        if !is_name(&self.name) || !is_name(&self.version) {
            return Err(format!("invalid package name {:?} or version {:?}", self.name, self.version));
        }
        for command in &self.commands {
            if !is_name(&command.name) {
                return Err(format!("invalid command name {:?}", command.name));
            }
            if self.entry(&format!("/{}", command.entry)).is_none() {
                return Err(format!(
                    "command {} names {:?}, which the package does not hold",
                    command.name, command.entry
                ));
            }
        }
        Ok(())
    }

    /// The entry at an absolute package path (`/` is the root).
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The names directly inside the directory `path`.
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
        self.entries
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .filter_map(|(key, _)| key.get(prefix.len()..))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    }

    /// Up to `len` bytes of the file `entry` from `offset`.
    pub fn read(&self, entry: &Entry, offset: u64, len: u64) -> Result<Vec<u8>, Errno> {
        if entry.kind != EntryKind::File {
            return Err(Errno::EISDIR);
        }
        let start = offset.min(entry.size);
        let count = len.min(entry.size - start);
        let mut buf = vec![0u8; usize::try_from(count).map_err(|_| Errno::EFBIG)?];
        self.bytes.read_exact_at(entry.offset + start, &mut buf)?;
        Ok(buf)
    }

    /// The archive's host path.
    pub fn origin(&self) -> &str {
        self.bytes.origin()
    }
}

fn read(bytes: &dyn PackageBytes, offset: u64, buf: &mut [u8]) -> Result<(), PackageError> {
    bytes.read_exact_at(offset, buf).map_err(|errno| PackageError::Io {
        origin: bytes.origin().to_owned(),
        detail: format!("{}: {}", errno.code(), errno.description()),
    })
}

/// A path component a package may use as a name: no separators, not `.`/`..`, printable.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// `(name, version, commands)` of a manifest chunk.
fn decode_manifest(chunk: &[u8]) -> Result<(String, String, Vec<Command>), String> {
    let mut bare = Bare::new(chunk);
    let schema = bare.u16()?;
    if !SCHEMA_VERSIONS.contains(&schema) {
        return Err(format!("unsupported schema version {schema}"));
    }
    let name = bare.string()?;
    let version = bare.string()?;
    if schema == 1 && bare.flag()? {
        // agent: { acpEntrypoint: str, snapshot: bool, env: map<str><str>, launchArgs: list<str> }
        bare.string()?;
        bare.flag()?;
        bare.string_map()?;
        bare.strings()?;
    }
    if bare.flag()? {
        // provides: { env: map<str><str>, files: list<{ source: str, target: str }> }
        bare.string_map()?;
        let files = bare.count(2)?;
        for _ in 0..files {
            bare.string()?;
            bare.string()?;
        }
    }
    let count = bare.count(2)?;
    let mut commands = Vec::with_capacity(count);
    for _ in 0..count {
        commands.push(Command { name: bare.string()?, entry: bare.string()? });
    }
    let pages = bare.count(2)?;
    for _ in 0..pages {
        bare.string()?;
        bare.string()?;
    }
    if schema == 1 && bare.flag()? {
        bare.string()?; // snapshotBundlePath
    }
    bare.finish()?;
    Ok((name, version, commands))
}

/// The index chunk as entries by path, each file's range checked against the archive.
fn decode_index(chunk: &[u8], tar_start: u64, file_len: u64) -> Result<BTreeMap<String, Entry>, String> {
    let mut bare = Bare::new(chunk);
    let schema = bare.u16()?;
    if !SCHEMA_VERSIONS.contains(&schema) {
        return Err(format!("unsupported schema version {schema}"));
    }
    // An entry takes at least 35 bytes on the wire, so `count` also bounds what this allocates.
    let count = bare.count(35)?;
    if count > MAX_INDEX_ENTRIES {
        return Err(format!("{count} entries, over the limit of {MAX_INDEX_ENTRIES}"));
    }
    let mut entries = BTreeMap::new();
    let mut previous: Option<String> = None;
    for ino in 1..=count {
        let path = bare.string()?;
        let kind = match bare.uvarint()? {
            0 => EntryKind::File,
            1 => EntryKind::Directory,
            2 => EntryKind::Symlink,
            other => return Err(format!("{path}: unknown entry kind {other}")),
        };
        let offset = bare.u64()?;
        let size = bare.u64()?;
        let mode = bare.u32()?;
        let _uid = bare.u32()?;
        let _gid = bare.u32()?;
        let mtime_s = bare.i64()?;
        let link_target = if bare.flag()? { Some(bare.string()?) } else { None };
        check_index_path(&path)?;
        if previous.as_ref().is_some_and(|previous| previous.as_str() >= path.as_str()) {
            return Err(format!("not sorted by path at {path}"));
        }
        let type_bits = match kind {
            EntryKind::File => S_IFREG,
            EntryKind::Directory => S_IFDIR,
            EntryKind::Symlink => S_IFLNK,
        };
        if mode & S_IFMT != 0 && mode & S_IFMT != type_bits {
            return Err(format!("{path}: mode {mode:o} does not match its kind"));
        }
        if mtime_s < 0 {
            return Err(format!("{path}: negative mtime"));
        }
        let offset = match kind {
            EntryKind::File => {
                let start = tar_start.checked_add(offset).ok_or("file offset overflows")?;
                let end = start.checked_add(size).ok_or("file size overflows")?;
                if end > file_len {
                    return Err(format!("{path}: bytes {start}..{end} lie past the end of the {file_len}-byte file"));
                }
                start
            }
            // The packer writes junk offsets for directories and links: they hold no content.
            EntryKind::Directory | EntryKind::Symlink => 0,
        };
        match (kind, &link_target) {
            (EntryKind::Symlink, None) => return Err(format!("{path}: a symlink without a target")),
            (EntryKind::Symlink, Some(target)) if target.is_empty() || target.len() > MAX_STRING_BYTES => {
                return Err(format!("{path}: invalid symlink target"));
            }
            _ => {}
        }
        let size = if kind == EntryKind::File { size } else { 0 };
        let ino = u64::try_from(ino).unwrap_or(u64::MAX);
        let entry = Entry { kind, offset, size, mode: mode & 0o7777, mtime_s, link_target, ino };
        previous = Some(path.clone());
        entries.insert(path, entry);
    }
    bare.finish()?;
    if entries.get("/").is_none_or(|root| root.kind != EntryKind::Directory) {
        return Err("no root directory entry".to_owned());
    }
    for path in entries.keys() {
        let parent = match path.rfind('/') {
            Some(0) | None => "/",
            Some(at) => path.get(..at).unwrap_or("/"),
        };
        if path != "/" && entries.get(parent).is_none_or(|dir| dir.kind != EntryKind::Directory) {
            return Err(format!("{path}: its parent is not a directory of the package"));
        }
    }
    Ok(entries)
}

/// Index paths are absolute and normalised: `/`, or `/name(/name)*`.
fn check_index_path(path: &str) -> Result<(), String> {
    if path == "/" {
        return Ok(());
    }
    let ok = path.starts_with('/') && path.get(1..).is_some_and(|rest| rest.split('/').all(is_name));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid path {path:?}"))
    }
}

/// A bounded BARE reader over one chunk.
struct Bare<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Bare<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Bare { bytes, at: 0 }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).ok_or("length overflows")?;
        let slice = self.bytes.get(self.at..end).ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at = end;
        Ok(slice)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.fixed()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.fixed()?))
    }

    fn uvarint(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let [byte] = self.fixed::<1>()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("over-long varint".to_owned())
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.fixed::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            [other] => Err(format!("invalid optional/bool tag {other}")),
        }
    }

    /// A list length: each item takes at least `min_item_bytes`, so a count larger than the
    /// bytes left could hold is refused before anything is allocated for it.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, String> {
        let count = usize::try_from(self.uvarint()?).map_err(|_| "count overflows".to_owned())?;
        let left = self.bytes.len().saturating_sub(self.at);
        if count.saturating_mul(min_item_bytes) > left {
            return Err(format!("{count} items cannot fit in the {left} bytes left"));
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, String> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| "length overflows".to_owned())?;
        if len > MAX_STRING_BYTES {
            return Err(format!("a {len}-byte string, over the {MAX_STRING_BYTES}-byte limit"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not UTF-8".to_owned())
    }

    fn strings(&mut self) -> Result<(), String> {
        let count = self.count(1)?;
        for _ in 0..count {
            self.string()?;
        }
        Ok(())
    }

    fn string_map(&mut self) -> Result<(), String> {
        let count = self.count(2)?;
        for _ in 0..count {
            self.string()?;
            self.string()?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(format!("{} bytes left over after the value", self.bytes.len() - self.at))
        }
    }
}

/// An archive held in memory (tests and the simulator; archives are built by
/// `testkit::packages::PackageWriter`).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug)]
pub struct InMemoryPackage {
    pub origin: String,
    pub bytes: Vec<u8>,
}

#[cfg(any(test, feature = "testing"))]
impl PackageBytes for InMemoryPackage {
    fn len_bytes(&self) -> u64 {
        u64::try_from(self.bytes.len()).unwrap_or(u64::MAX)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let start = usize::try_from(offset).map_err(|_| Errno::EIO)?;
        let end = start.checked_add(buf.len()).ok_or(Errno::EIO)?;
        buf.copy_from_slice(self.bytes.get(start..end).ok_or(Errno::EIO)?);
        Ok(())
    }

    fn origin(&self) -> &str {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use testkit::packages::PackageWriter;

    fn parse(bytes: Vec<u8>) -> Result<Package, PackageError> {
        Package::parse(Arc::new(InMemoryPackage { origin: "test.aospkg".to_owned(), bytes }))
    }

    fn sample() -> PackageWriter {
        PackageWriter::new("tools", "1.0.0")
            .file("/bin/hello", 0o755, b"\0asm-hello")
            .file("/share/doc/README", 0o644, b"read me")
            .symlink("/bin/hi", "hello")
    }

    #[test]
    fn a_written_package_reads_back() {
        let package = parse(sample().build()).expect("parses");
        assert_eq!((package.name.as_str(), package.version.as_str()), ("tools", "1.0.0"));
        let names: Vec<&str> = package.commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["hello", "hi"]);
        assert_eq!(package.children("/"), ["bin", "share"]);
        assert_eq!(package.children("/bin"), ["hello", "hi"]);
        let hello = package.entry("/bin/hello").expect("hello").clone();
        assert_eq!(package.read(&hello, 0, 100), Ok(b"\0asm-hello".to_vec()));
        assert_eq!(package.read(&hello, 4, 3), Ok(b"-he".to_vec()));
        assert_eq!(package.read(&hello, 99, 3), Ok(Vec::new()));
        assert_eq!(package.entry("/bin/hi").and_then(|e| e.link_target.clone()), Some("hello".to_owned()));
    }

    #[test]
    fn every_truncation_and_every_single_byte_flip_is_refused_or_consistent() {
        let bytes = sample().build();
        for len in 0..bytes.len() {
            // Cut inside the metadata: refused; inside the tar: a file range past the end.
            let truncated = bytes.get(..len).unwrap_or_default().to_vec();
            if let Ok(package) = parse(truncated) {
                let hello = package.entry("/bin/hello").cloned().expect("still indexed");
                assert!(package.read(&hello, 0, 100).is_ok(), "a parsed package's files are in range (len {len})");
            }
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            if let Some(byte) = flipped.get_mut(at) {
                *byte ^= 0xff;
            }
            // Never a panic; what parses still has every file inside the archive.
            if let Ok(package) = parse(flipped) {
                for command in &package.commands {
                    if let Some(entry) = package.entry(&format!("/{}", command.entry)) {
                        if entry.kind == EntryKind::File {
                            assert!(package.read(entry, 0, entry.size).is_ok());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_headers_say_what_is_wrong() {
        let bytes = sample().build();
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'P';
        assert!(matches!(parse(bad_magic), Err(PackageError::Malformed { detail, .. }) if detail.contains("magic")));
        let mut version_2 = bytes.clone();
        version_2[4] = 2;
        assert!(matches!(parse(version_2), Err(PackageError::Unsupported { version: 2, .. })));
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(huge), Err(PackageError::Malformed { detail, .. }) if detail.contains("limit")));
        let message = parse(b"hello".to_vec()).expect_err("refused").to_string();
        assert!(message.starts_with("test.aospkg is not a command package"), "{message}");
    }

    #[test]
    fn a_count_larger_than_its_chunk_is_refused_before_allocating() {
        let mut bare = Bare::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(bare.count(35).is_err_and(|e| e.contains("cannot fit")));
    }

    #[test]
    fn commands_must_name_files_the_package_holds() {
        let bytes = PackageWriter::new("tools", "1").symlink("/bin/x", "y").build();
        // A command that is a link is fine (the walk resolves it); one naming nothing is not.
        assert!(parse(bytes).is_ok());
        let mut writer = PackageWriter::new("..", "1");
        writer = writer.file("/bin/x", 0o755, b"");
        assert!(parse(writer.build()).is_err());
    }
}
