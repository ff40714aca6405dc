//! Filesystem layers: the default base layer every VM's root sits on, the conversion between
//! wire/config filesystem entries and [`SnapshotEntry`]s, the VM's root filesystem as configured
//! by `rootFilesystem`, and the per-VM layer store behind CreateLayer, SealLayer,
//! ImportSnapshot, ExportSnapshot and CreateOverlay.
//!
//! Layer store semantics (ids `layer-N` per VM, from 1, never reused):
//!
//! - CreateLayer: a new, empty, writable layer. (Nothing on the wire writes into it; it exists
//!   for wire compatibility and seals to an image holding only `/`.)
//! - SealLayer: a writable layer becomes an immutable one under a **new** id; the writable id is
//!   gone (like the original: asking again is `unknown layer: {id}`). Sealed and overlay layers
//!   are `layer {id} is not writable`.
//! - ImportSnapshot: entries → a new sealed layer.
//! - ExportSnapshot: any layer → its entries, sorted by path (parents first).
//! - CreateOverlay: a new layer that is the union of `lowerLayerIds` (highest precedence
//!   first; sealed layers are shared, not copied) with the entries of `upperLayerId` applied on
//!   top through copy-up (directory entries of the upper that the lowers already have are
//!   skipped, as in the original). It is built when requested, from the layers as they are
//!   then; the layers it names are never modified. `READ_ONLY` makes it refuse changes. An
//!   overlay layer can be exported and used as the upper or a lower of further overlays; it
//!   cannot be sealed.
//!
//! Every layer is bounded by the VM's filesystem limits; a VM holds at most
//! [`MAX_LAYERS_PER_VM`] layers in its store, and its root at most that many lowers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use base64::Engine as _;
use schema::wire;

use crate::clock::Now;
use crate::error::Rejection;
use crate::policy::config::{self, CreateVmConfig, RootFilesystemLower, RootFilesystemMode};
use crate::vfs::{EntryKind, Filesystem, FsError, FsLimits, Layer, Overlay, SnapshotEntry, DEFAULT_FILE_MODE};

/// Layers one VM's store may hold, and lowers its root filesystem may have (the original's
/// `MAX_VM_LAYERS`).
pub const MAX_LAYERS_PER_VM: usize = 256;
/// Owner of the guest user's home directory in the default base layer.
pub const GUEST_USER_UID: u32 = 1000;
pub const GUEST_USER_GID: u32 = 1000;

/// The default base layer: a small Linux-like tree. Directories are `0o755` root-owned unless
/// noted; `/tmp` and `/var/tmp` are `0o1777`, `/root` `0o700`, `/proc` `0o555`, `/home/user`
/// belongs to 1000:1000. `/dev` and `/proc` are empty mount points: the kernel serves their
/// content (see `synthetic`), nothing of it is stored.
pub fn default_base_entries() -> Vec<SnapshotEntry> {
    let dirs = [
        "/bin",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/mnt",
        "/opt",
        "/run",
        "/sbin",
        "/srv",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
    ];
    let mut entries = vec![SnapshotEntry::dir("/")];
    entries.extend(dirs.iter().map(|path| SnapshotEntry::dir(*path)));
    entries.extend([
        SnapshotEntry::dir("/home/user").with_owner(GUEST_USER_UID, GUEST_USER_GID),
        SnapshotEntry::dir("/proc").with_mode(0o555),
        SnapshotEntry::dir("/root").with_mode(0o700),
        SnapshotEntry::dir("/tmp").with_mode(0o1777),
        SnapshotEntry::dir("/var/tmp").with_mode(0o1777),
        SnapshotEntry::file("/etc/hostname", "secure-exec\n"),
        SnapshotEntry::file("/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        SnapshotEntry::file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"),
        SnapshotEntry::file("/etc/group", "root:x:0:root\nuser:x:1000:user\n"),
        SnapshotEntry::file("/etc/resolv.conf", "nameserver 127.0.0.1\n"),
        SnapshotEntry::file("/etc/shells", "/bin/sh\n"),
    ]);
    entries
}

/// The default base layer: built once per process and shared by every sidecar in it (and so by
/// every VM), since it is sealed and its files carry time 0: the same in every run. A process
/// that starts many sidecars (the simulator starts one per seed) builds it once.
pub(crate) fn default_base_layer() -> Layer {
    static BASE: LazyLock<Layer> = LazyLock::new(|| {
        let now = Now::default();
        Layer::from_entries(&default_base_entries(), FsLimits::unlimited(), now)
            .unwrap_or_else(|_| Layer::seal(Filesystem::new(FsLimits::unlimited(), now)))
    });
    BASE.clone()
}

/// The filesystem limits of a VM, from `limits.resources`.
pub(crate) fn fs_limits(limits: &config::ResolvedLimits) -> FsLimits {
    let resources = &limits.resources;
    FsLimits {
        max_filesystem_bytes: resources.max_filesystem_bytes,
        max_inode_count: resources.max_inode_count,
        max_readdir_entries: resources.max_readdir_entries,
        max_pread_bytes: resources.max_pread_bytes,
        max_fd_write_bytes: resources.max_fd_write_bytes,
    }
}

fn layer_limit() -> Rejection {
    Rejection::invalid_state(format!("VM layer limit exceeded: limit is {MAX_LAYERS_PER_VM}"))
}

// ---------------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpecKind {
    File,
    Directory,
    Symlink,
}

/// The fields of a config or wire filesystem entry.
#[derive(Debug)]
struct EntrySpec<'a> {
    path: &'a str,
    kind: SpecKind,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    content: Option<&'a str>,
    base64: bool,
    target: Option<&'a str>,
    executable: bool,
}

impl<'a> From<&'a config::RootFilesystemEntry> for EntrySpec<'a> {
    fn from(entry: &'a config::RootFilesystemEntry) -> Self {
        Self {
            path: &entry.path,
            kind: match entry.kind {
                config::RootFilesystemEntryKind::File => SpecKind::File,
                config::RootFilesystemEntryKind::Directory => SpecKind::Directory,
                config::RootFilesystemEntryKind::Symlink => SpecKind::Symlink,
            },
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            content: entry.content.as_deref(),
            base64: entry.encoding == Some(config::RootFilesystemEntryEncoding::Base64),
            target: entry.target.as_deref(),
            executable: entry.executable,
        }
    }
}

impl<'a> From<&'a wire::RootFilesystemEntry> for EntrySpec<'a> {
    fn from(entry: &'a wire::RootFilesystemEntry) -> Self {
        Self {
            path: &entry.path,
            kind: match entry.kind {
                wire::RootFilesystemEntryKind::File => SpecKind::File,
                wire::RootFilesystemEntryKind::Directory => SpecKind::Directory,
                wire::RootFilesystemEntryKind::Symlink => SpecKind::Symlink,
            },
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            content: entry.content.as_deref(),
            base64: entry.encoding == Some(wire::RootFilesystemEntryEncoding::Base64),
            target: entry.target.as_deref(),
            executable: entry.executable,
        }
    }
}

impl EntrySpec<'_> {
    /// Like the original: `mode` defaults to `0o755` for directories and executable files,
    /// `0o644` for other files and `0o777` for symlinks; the owner to 0:0; `content` is UTF-8
    /// unless `encoding` is base64; a directory ignores content and a file a target.
    fn to_snapshot(&self) -> Result<SnapshotEntry, Rejection> {
        let path = self.path.to_owned();
        let entry = match self.kind {
            SpecKind::File => {
                let bytes = match (self.content, self.base64) {
                    (None, _) => Vec::new(),
                    (Some(text), false) => text.as_bytes().to_vec(),
                    (Some(text), true) => decode_base64(text).map_err(|error| {
                        Rejection::invalid_state(format!(
                            "invalid base64 root filesystem content for {}: {error}",
                            self.path
                        ))
                    })?,
                };
                let mode = if self.executable { 0o755 } else { DEFAULT_FILE_MODE };
                SnapshotEntry::file(path, bytes).with_mode(mode)
            }
            SpecKind::Directory => SnapshotEntry::dir(path),
            SpecKind::Symlink => match self.target.filter(|target| !target.is_empty()) {
                Some(target) => SnapshotEntry::symlink(path, target),
                None => {
                    return Err(Rejection::invalid_state(format!(
                        "root filesystem bootstrap for symlink {} requires a target",
                        self.path
                    )))
                }
            },
        };
        let entry = match self.mode {
            Some(mode) => entry.with_mode(mode),
            None => entry,
        };
        Ok(entry.with_owner(self.uid.unwrap_or(0), self.gid.unwrap_or(0)))
    }
}

/// Wire entries (BootstrapRootFilesystem, ImportSnapshot) as snapshot entries.
pub(crate) fn entries_from_wire(entries: &[wire::RootFilesystemEntry]) -> Result<Vec<SnapshotEntry>, Rejection> {
    entries.iter().map(|entry| EntrySpec::from(entry).to_snapshot()).collect()
}

fn entries_from_config(entries: &[config::RootFilesystemEntry]) -> Result<Vec<SnapshotEntry>, Rejection> {
    entries.iter().map(|entry| EntrySpec::from(entry).to_snapshot()).collect()
}

/// A snapshot entry on the wire: every field explicit; file content as UTF-8 when it is valid
/// UTF-8, else base64; `executable` for files with any execute bit.
pub(crate) fn entry_to_wire(entry: SnapshotEntry) -> wire::RootFilesystemEntry {
    let SnapshotEntry { path, mode, uid, gid, kind } = entry;
    let (kind, content, encoding, target, executable) = match kind {
        EntryKind::File(bytes) => {
            let (content, encoding) = encode_content(bytes, false);
            (wire::RootFilesystemEntryKind::File, Some(content), Some(encoding), None, mode & 0o111 != 0)
        }
        EntryKind::Directory => (wire::RootFilesystemEntryKind::Directory, None, None, None, false),
        EntryKind::Symlink(target) => (wire::RootFilesystemEntryKind::Symlink, None, None, Some(target), false),
    };
    wire::RootFilesystemEntry {
        path,
        kind,
        mode: Some(mode),
        uid: Some(uid),
        gid: Some(gid),
        content,
        encoding,
        target,
        executable,
    }
}

pub(crate) fn entries_to_wire(entries: Vec<SnapshotEntry>) -> Vec<wire::RootFilesystemEntry> {
    entries.into_iter().map(entry_to_wire).collect()
}

/// Decodes file content sent as standard base64 (padded, canonical: the `base64` crate's
/// `STANDARD`, whose rules and error messages these are). A CreateVm's bootstrap files come
/// this way, often hundreds of KB per VM, so valid text is decoded with SIMD (about four times
/// faster here); only text that decoder refuses goes through `base64` again, for its error.
/// Both accept exactly the same texts with the same bytes (a property test checks it).
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    match base64_simd::STANDARD.decode_to_vec(text) {
        Ok(bytes) => Ok(bytes),
        Err(_) => base64::engine::general_purpose::STANDARD.decode(text),
    }
}

/// File content for the wire: UTF-8 text when the bytes are valid UTF-8 and base64 was not
/// asked for, else standard base64 (with padding).
pub(crate) fn encode_content(bytes: Vec<u8>, force_base64: bool) -> (String, wire::RootFilesystemEntryEncoding) {
    let bytes = if force_base64 {
        bytes
    } else {
        match String::from_utf8(bytes) {
            Ok(text) => return (text, wire::RootFilesystemEntryEncoding::Utf8),
            Err(error) => error.into_bytes(),
        }
    };
    (base64::engine::general_purpose::STANDARD.encode(bytes), wire::RootFilesystemEntryEncoding::Base64)
}

// ---------------------------------------------------------------------------------------------
// The root filesystem
// ---------------------------------------------------------------------------------------------

/// Whether a VM's root holds the default base layer (as its lowest layer, or as a
/// `bundledBaseFilesystem` lower): then the kernel serves `/dev` and `/proc` over it.
pub(crate) fn holds_base_layer(config: &CreateVmConfig) -> bool {
    let root = &config.root_filesystem;
    !root.disable_default_base_layer
        || root.lowers.iter().any(|lower| matches!(lower, RootFilesystemLower::BundledBaseFilesystem))
}

/// A VM's root filesystem as its config describes it: an overlay whose lowers are the
/// configured `lowers` (highest precedence first; `bundledBaseFilesystem` is the shared base
/// layer) followed by the shared base layer unless `disableDefaultBaseLayer`, whose writable
/// upper holds the `bootstrapEntries`, read-only afterwards in `read-only` mode.
pub(crate) fn build_root(
    config: &CreateVmConfig,
    limits: FsLimits,
    base: &Layer,
    now: Now,
) -> Result<Overlay, Rejection> {
    let root = &config.root_filesystem;
    let base_count = usize::from(!root.disable_default_base_layer);
    if root.lowers.len().saturating_add(base_count) > MAX_LAYERS_PER_VM {
        return Err(layer_limit());
    }
    let root_error = |error: FsError| match error.limit() {
        Some(_) => Rejection::from(error),
        None => Rejection::invalid_state(format!("root filesystem: {error}")),
    };
    let mut lowers = Vec::with_capacity(root.lowers.len().saturating_add(base_count));
    for lower in &root.lowers {
        lowers.push(match lower {
            RootFilesystemLower::Snapshot { entries } => {
                Layer::from_entries(&entries_from_config(entries)?, limits, now).map_err(root_error)?
            }
            RootFilesystemLower::BundledBaseFilesystem => base.clone(),
        });
    }
    if !root.disable_default_base_layer {
        lowers.push(base.clone());
    }
    let mut overlay = Overlay::new(Filesystem::new(limits, now), lowers);
    overlay.import(entries_from_config(&root.bootstrap_entries)?, now).map_err(root_error)?;
    if root.mode == RootFilesystemMode::ReadOnly {
        overlay.set_read_only(true);
    }
    Ok(overlay)
}

// ---------------------------------------------------------------------------------------------
// The layer store
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum StoredLayer {
    Writable(Filesystem),
    Sealed(Layer),
    Overlay(Overlay),
}

impl StoredLayer {
    fn export(&self) -> Vec<SnapshotEntry> {
        match self {
            Self::Writable(fs) => fs.export(),
            Self::Sealed(layer) => layer.export(),
            Self::Overlay(overlay) => overlay.export(),
        }
    }

    /// The layer as an immutable image (shared when it already is one).
    fn to_layer(&self, now: Now) -> Result<Layer, Rejection> {
        match self {
            Self::Writable(fs) => Ok(Layer::seal(fs.clone())),
            Self::Sealed(layer) => Ok(layer.clone()),
            Self::Overlay(overlay) => overlay.seal(now).map_err(Rejection::from),
        }
    }
}

/// A VM's layers, by id.
#[derive(Debug, Default)]
pub(crate) struct LayerStore {
    layers: BTreeMap<String, StoredLayer>,
    next_id: u64,
}

impl LayerStore {
    /// The ids in use, sorted.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.layers.keys().cloned().collect()
    }

    fn ensure_capacity(&self) -> Result<(), Rejection> {
        if self.layers.len() >= MAX_LAYERS_PER_VM {
            return Err(layer_limit());
        }
        Ok(())
    }

    fn allocate_id(&mut self) -> String {
        self.next_id = self.next_id.saturating_add(1);
        format!("layer-{}", self.next_id)
    }

    fn get(&self, id: &str) -> Result<&StoredLayer, Rejection> {
        self.layers.get(id).ok_or_else(|| Rejection::invalid_state(format!("unknown layer: {id}")))
    }

    pub(crate) fn create(&mut self, limits: FsLimits, now: Now) -> Result<String, Rejection> {
        self.ensure_capacity()?;
        let id = self.allocate_id();
        self.layers.insert(id.clone(), StoredLayer::Writable(Filesystem::new(limits, now)));
        Ok(id)
    }

    pub(crate) fn seal(&mut self, id: &str) -> Result<String, Rejection> {
        match self.get(id)? {
            StoredLayer::Writable(_) => {}
            StoredLayer::Sealed(_) | StoredLayer::Overlay(_) => {
                return Err(Rejection::invalid_state(format!("layer {id} is not writable")))
            }
        }
        let Some(StoredLayer::Writable(fs)) = self.layers.remove(id) else {
            return Err(Rejection::invalid_state(format!("unknown layer: {id}")));
        };
        let sealed = self.allocate_id();
        self.layers.insert(sealed.clone(), StoredLayer::Sealed(Layer::seal(fs)));
        Ok(sealed)
    }

    pub(crate) fn import(
        &mut self,
        entries: &[wire::RootFilesystemEntry],
        limits: FsLimits,
        now: Now,
    ) -> Result<String, Rejection> {
        self.ensure_capacity()?;
        let layer = Layer::from_entries(&entries_from_wire(entries)?, limits, now).map_err(Rejection::from)?;
        let id = self.allocate_id();
        self.layers.insert(id.clone(), StoredLayer::Sealed(layer));
        Ok(id)
    }

    pub(crate) fn export(&self, id: &str) -> Result<Vec<SnapshotEntry>, Rejection> {
        Ok(self.get(id)?.export())
    }

    pub(crate) fn create_overlay(
        &mut self,
        request: &wire::CreateOverlayRequest,
        limits: FsLimits,
        now: Now,
    ) -> Result<String, Rejection> {
        self.ensure_capacity()?;
        if request.lower_layer_ids.len() > MAX_LAYERS_PER_VM {
            return Err(layer_limit());
        }
        for id in &request.lower_layer_ids {
            if !self.layers.contains_key(id) {
                return Err(Rejection::invalid_state(format!("unknown lower layer: {id}")));
            }
        }
        let upper = match &request.upper_layer_id {
            Some(id) => Some(
                self.layers.get(id).ok_or_else(|| Rejection::invalid_state(format!("unknown upper layer: {id}")))?,
            ),
            None => None,
        };
        // One image per distinct id: a layer named twice is shared, not copied twice.
        let mut images: BTreeMap<&str, Layer> = BTreeMap::new();
        let mut lowers = Vec::with_capacity(request.lower_layer_ids.len());
        for id in &request.lower_layer_ids {
            let image = match images.get(id.as_str()) {
                Some(image) => image.clone(),
                None => {
                    let image = self.get(id)?.to_layer(now)?;
                    images.insert(id, image.clone());
                    image
                }
            };
            lowers.push(image);
        }
        let mut overlay = Overlay::new(Filesystem::new(limits, now), lowers);
        if let Some(upper) = upper {
            // Directory entries the lowers already have are skipped (the lower's metadata
            // stays), as in the original.
            let mut seen = BTreeSet::new();
            let entries: Vec<SnapshotEntry> = upper
                .export()
                .into_iter()
                .filter(|entry| {
                    let known = seen.contains(&entry.path) || overlay.lstat(entry.path.as_str()).is_ok();
                    seen.insert(entry.path.clone());
                    !(known && entry.kind == EntryKind::Directory)
                })
                .collect();
            overlay.import(entries, now).map_err(Rejection::from)?;
        }
        if request.mode == wire::RootFilesystemMode::ReadOnly {
            overlay.set_read_only(true);
        }
        let id = self.allocate_id();
        self.layers.insert(id.clone(), StoredLayer::Overlay(overlay));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// Text near base64: its alphabet, padding, the URL-safe symbols, whitespace.
    fn near_base64() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[A-Za-z0-9+/=_ \\n-]{0,24}").unwrap()
    }

    /// A valid encoding with one symbol replaced (a bad symbol, misplaced padding, or
    /// non-zero trailing bits).
    fn perturbed() -> impl Strategy<Value = String> {
        (proptest::collection::vec(any::<u8>(), 1..20), any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(bytes, at, symbol)| {
                let mut text = base64::engine::general_purpose::STANDARD.encode(bytes).into_bytes();
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ ";
                let at = at.index(text.len());
                if let Some(slot) = text.get_mut(at) {
                    *slot = alphabet.get(symbol.index(alphabet.len())).copied().unwrap_or(b'A');
                }
                String::from_utf8(text).unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn the_fast_decoder_accepts_and_refuses_exactly_what_base64_does(
            text in prop_oneof![near_base64(), perturbed()]
        ) {
            let expected = base64::engine::general_purpose::STANDARD.decode(&text);
            prop_assert_eq!(decode_base64(&text), expected);
        }

        #[test]
        fn every_encoding_decodes_to_its_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            prop_assert_eq!(decode_base64(&text).unwrap(), bytes);
        }
    }
}
