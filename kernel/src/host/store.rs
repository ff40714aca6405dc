//! Durable VM filesystem state: the [`Store`] the embedder injects, the key rules, and the
//! versioned binary format a VM's root filesystem state is saved in.
//!
//! `PersistenceFlush { key }` saves the VM's root **upper layer** (its entries, whiteouts and
//! opaque directories: everything the VM changed on top of its lowers) under `key`;
//! `PersistenceLoad { key }` replaces the root's upper with a saved state, so a new VM built
//! on the same lowers sees the same tree. Mounts are not part of the state.
//!
//! # Keys
//!
//! 1 to [`MAX_PERSISTENCE_KEY_BYTES`] bytes of `[A-Za-z0-9._-]`, not starting with `.`: a key
//! is a file name in the binary's store directory, so it can hold no path separator and can
//! never name `.`, `..` or a hidden temp file.
//!
//! # Format (version 1), all integers little-endian
//!
//! ```text
//! header   magic "SXSTATE\0" (8 bytes) | version u16 = 1 | reserved u16 = 0 | body length u64
//! body     entry count u32, then per entry:
//!              path str | kind u8 (0 file, 1 directory, 2 symlink) | mode u32 | uid u32 | gid u32
//!              | data bytes (file content; symlink target; empty for a directory)
//!          whiteout count u32, then that many paths (str)
//!          opaque count u32, then that many paths (str)
//! trailer  CRC-32 (IEEE) u32 of header and body
//! ```
//!
//! `str`/`bytes` are a u32 length then the bytes (paths are UTF-8). Decoding checks the magic,
//! the version, the exact length, the checksum, every count against the bytes left, and that
//! nothing trails; any defect is a [`StateError`] and nothing is applied.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use crate::vfs::{EntryKind, SnapshotEntry, UpperState};

/// Longest persistence key, in bytes (a key is a file name, and with the file store's suffixes
/// it must stay under the 255-byte name limit of common filesystems).
pub const MAX_PERSISTENCE_KEY_BYTES: usize = 200;
/// Hard ceiling of one persisted state: the ceiling of a VM's
/// `limits.plugins.maxPersistedManifestBytes` (CreateVm refuses a larger value, so the per-VM
/// limit, 64 MiB by default, is the one hit).
pub const MAX_PERSISTED_STATE_BYTES: u64 = crate::policy::config::MAX_PERSISTED_MANIFEST_BYTES;
/// First bytes of every persisted state.
pub const STATE_MAGIC: [u8; 8] = *b"SXSTATE\0";
/// The format version this kernel writes (and the only one it reads).
pub const STATE_FORMAT_VERSION: u16 = 1;
const HEADER_BYTES: usize = 8 + 2 + 2 + 8;
const TRAILER_BYTES: usize = 4;

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The stored value is larger than the caller accepts (it was not read).
    #[error("stored value of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Io(String),
}

/// Durable key → bytes storage. `put` must be atomic: after a failed or interrupted `put`,
/// `get` returns the previous value (the binary's file store writes a temp file, fsyncs it,
/// renames it over the old one and fsyncs the directory).
pub trait Store: fmt::Debug + Send + Sync {
    /// The value under `key`; [`StoreError::TooLarge`] when it is longer than `max_bytes`.
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// A store in memory (not durable): for tests, simulations and embedders without disks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>>, StoreError> {
        self.values.lock().map_err(|_| StoreError::Io("memory store lock poisoned".to_owned()))
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let values = self.lock()?;
        match values.get(key) {
            Some(value) => {
                let size = u64::try_from(value.len()).unwrap_or(u64::MAX);
                if size > max_bytes {
                    return Err(StoreError::TooLarge { size, limit: max_bytes });
                }
                Ok(Some(value.clone()))
            }
            None => Ok(None),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.lock()?.insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("persistence key must not be empty")]
    Empty,
    #[error("persistence key is {0} bytes, limit is {MAX_PERSISTENCE_KEY_BYTES}")]
    TooLong(usize),
    #[error("persistence key {0:?} may hold only [A-Za-z0-9._-] and must not start with '.'")]
    Invalid(String),
}

/// Checks a key (see the module docs).
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_PERSISTENCE_KEY_BYTES {
        return Err(KeyError::TooLong(key.len()));
    }
    let allowed = key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !allowed || key.starts_with('.') {
        let shown: String = key.chars().take(64).collect();
        return Err(KeyError::Invalid(shown));
    }
    Ok(())
}

/// A persisted state that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("not a persisted filesystem state (bad magic)")]
    BadMagic,
    #[error("persisted state format version {0} is not supported (this sidecar reads {STATE_FORMAT_VERSION})")]
    Version(u16),
    #[error("persisted state is truncated or has trailing bytes")]
    Length,
    #[error("persisted state checksum mismatch")]
    Checksum,
    #[error("persisted state is malformed: {0}")]
    Malformed(&'static str),
}

/// The path of the first file of `state` whose content is longer than `max_bytes` (what
/// `limits.plugins.maxPersistedManifestFileBytes` bounds, on flush and on load).
pub fn file_over(state: &UpperState, max_bytes: u64) -> Option<&str> {
    state.entries.iter().find_map(|entry| match &entry.kind {
        EntryKind::File(content) if u64::try_from(content.len()).unwrap_or(u64::MAX) > max_bytes => {
            Some(entry.path.as_str())
        }
        _ => None,
    })
}

/// Encodes an upper-layer state (see the module docs).
pub fn encode_state(state: &UpperState) -> Vec<u8> {
    let mut body = Vec::new();
    put_len(&mut body, state.entries.len());
    for entry in &state.entries {
        put_bytes(&mut body, entry.path.as_bytes());
        let (kind, data): (u8, &[u8]) = match &entry.kind {
            EntryKind::File(bytes) => (0, bytes),
            EntryKind::Directory => (1, &[]),
            EntryKind::Symlink(target) => (2, target.as_bytes()),
        };
        body.push(kind);
        body.extend_from_slice(&entry.mode.to_le_bytes());
        body.extend_from_slice(&entry.uid.to_le_bytes());
        body.extend_from_slice(&entry.gid.to_le_bytes());
        put_bytes(&mut body, data);
    }
    for paths in [&state.whiteouts, &state.opaque] {
        put_len(&mut body, paths.len());
        for path in paths {
            put_bytes(&mut body, path.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len() + TRAILER_BYTES);
    out.extend_from_slice(&STATE_MAGIC);
    out.extend_from_slice(&STATE_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&u64::try_from(body.len()).unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a state written by [`encode_state`].
pub fn decode_state(bytes: &[u8]) -> Result<UpperState, StateError> {
    let mut reader = Reader { rest: bytes };
    let magic = reader.take(STATE_MAGIC.len()).map_err(|_| StateError::BadMagic)?;
    if magic != STATE_MAGIC {
        return Err(StateError::BadMagic);
    }
    let version = u16::from_le_bytes(reader.array().map_err(|_| StateError::Length)?);
    if version != STATE_FORMAT_VERSION {
        return Err(StateError::Version(version));
    }
    let _reserved: [u8; 2] = reader.array().map_err(|_| StateError::Length)?;
    let body_len = u64::from_le_bytes(reader.array().map_err(|_| StateError::Length)?);
    let expected = u64::try_from(HEADER_BYTES + TRAILER_BYTES).unwrap_or(u64::MAX).checked_add(body_len);
    if expected != Some(u64::try_from(bytes.len()).unwrap_or(u64::MAX)) {
        return Err(StateError::Length);
    }
    let covered = bytes.len().saturating_sub(TRAILER_BYTES);
    let (checked, trailer) = bytes.split_at(covered);
    let stored = u32::from_le_bytes(trailer.try_into().map_err(|_| StateError::Length)?);
    if crc32(checked) != stored {
        return Err(StateError::Checksum);
    }
    let mut reader = Reader { rest: checked.get(HEADER_BYTES..).ok_or(StateError::Length)? };
    let count = reader.count(1 + 4 + 12 + 4)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let path = reader.string()?;
        let [kind] = reader.array::<1>()?;
        let mode = u32::from_le_bytes(reader.array()?);
        let uid = u32::from_le_bytes(reader.array()?);
        let gid = u32::from_le_bytes(reader.array()?);
        let data = reader.bytes()?;
        let kind = match kind {
            0 => EntryKind::File(data.to_vec()),
            1 if data.is_empty() => EntryKind::Directory,
            2 => EntryKind::Symlink(
                String::from_utf8(data.to_vec()).map_err(|_| StateError::Malformed("symlink target is not UTF-8"))?,
            ),
            _ => return Err(StateError::Malformed("unknown entry kind")),
        };
        if !path.starts_with('/') {
            return Err(StateError::Malformed("entry path is not absolute"));
        }
        entries.push(SnapshotEntry { path, mode, uid, gid, kind });
    }
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        let count = reader.count(4)?;
        for _ in 0..count {
            list.push(reader.string()?);
        }
    }
    if !reader.rest.is_empty() {
        return Err(StateError::Length);
    }
    let [whiteouts, opaque] = lists;
    Ok(UpperState { entries, whiteouts, opaque })
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if n > self.rest.len() {
            return Err(StateError::Malformed("truncated field"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        self.take(N)?.try_into().map_err(|_| StateError::Malformed("truncated field"))
    }

    fn len(&mut self) -> Result<usize, StateError> {
        usize::try_from(u32::from_le_bytes(self.array()?)).map_err(|_| StateError::Malformed("length overflows"))
    }

    /// A count of items each at least `min_item_bytes` long: more than the bytes left allow is
    /// malformed (so a corrupt count cannot make the decoder allocate).
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, StateError> {
        let count = self.len()?;
        if count.saturating_mul(min_item_bytes) > self.rest.len() {
            return Err(StateError::Malformed("count exceeds the data"));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let len = self.len()?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, StateError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| StateError::Malformed("path is not UTF-8"))
    }
}

/// CRC-32 (IEEE 802.3, reflected, init and final xor `0xFFFFFFFF`).
pub fn crc32(bytes: &[u8]) -> u32 {
    let table = &*CRC_TABLE;
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        let index = usize::try_from((crc ^ u32::from(byte)) & 0xFF).unwrap_or(0);
        crc = (crc >> 8) ^ table.get(index).copied().unwrap_or(0);
    }
    !crc
}

static CRC_TABLE: LazyLock<[u32; 256]> = LazyLock::new(|| {
    std::array::from_fn(|n| {
        let mut c = u32::try_from(n).unwrap_or(0);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        c
    })
});

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn state() -> UpperState {
        UpperState {
            entries: vec![
                SnapshotEntry::dir("/"),
                SnapshotEntry::dir("/etc").with_mode(0o700),
                SnapshotEntry::file("/etc/motd", vec![0xff, 0, 1]).with_owner(1000, 1000),
                SnapshotEntry::symlink("/etc/link", "motd"),
            ],
            whiteouts: vec!["/etc/passwd".into()],
            opaque: vec!["/etc".into()],
        }
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip_and_every_defect() {
        let bytes = encode_state(&state());
        assert_eq!(decode_state(&bytes).unwrap(), state());
        assert_eq!(&bytes[..8], b"SXSTATE\0");
        // Every single-byte corruption is detected (magic, version, length or checksum).
        for i in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= 0x40;
            assert!(decode_state(&corrupt).is_err(), "byte {i} corrupted undetected");
        }
        // Every truncation, and trailing bytes.
        for len in 0..bytes.len() {
            assert!(decode_state(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_state(&longer), Err(StateError::Length));
        let mut version = bytes.clone();
        version[8] = 2;
        assert_eq!(decode_state(&version), Err(StateError::Version(2)));
    }

    #[test]
    fn keys() {
        assert!(validate_key("vm-1_state.v2").is_ok());
        assert!(validate_key(&"k".repeat(MAX_PERSISTENCE_KEY_BYTES)).is_ok());
        assert_eq!(validate_key(""), Err(KeyError::Empty));
        assert_eq!(
            validate_key(&"k".repeat(MAX_PERSISTENCE_KEY_BYTES + 1)),
            Err(KeyError::TooLong(MAX_PERSISTENCE_KEY_BYTES + 1))
        );
        for bad in ["a/b", "..", ".", ".hidden", "a\\b", "a b", "a\0b", "é"] {
            assert!(matches!(validate_key(bad), Err(KeyError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn memory_store_bounds_reads() {
        let store = MemoryStore::new();
        assert_eq!(store.get("k", 10).unwrap(), None);
        store.put("k", b"hello").unwrap();
        assert_eq!(store.get("k", 5).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.get("k", 4), Err(StoreError::TooLarge { size: 5, limit: 4 }));
    }
}
