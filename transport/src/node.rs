//! The `node` command on disk, as `scripts/build-node.sh` builds it: `node.wasm` (QuickJS-NG
//! with the Node.js builtins layer, `runtime-js/`), read once at start-up and provided to every
//! VM (see `kernel::host::programs`). Without it, `node` is an ordinary command name that no VM
//! has, and `runtime: JAVA_SCRIPT` fails to find it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernel::host::programs::{SidecarPrograms, NODE_COMMAND};

/// The largest `node.wasm` read: it is about 2 MB; a file far past that is not this build.
pub const MAX_NODE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// `$SECURE_EXEC_NODE`, else `${XDG_CACHE_HOME:-~/.cache}/secure-exec-sidecar/node` (where the
/// build script leaves its latest build).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SECURE_EXEC_NODE") {
        return PathBuf::from(dir);
    }
    crate::python::cache_home().join("secure-exec-sidecar/node")
}

/// The programs of `dir`: `node` when `node.wasm` is there (none otherwise); `Err` says why a
/// file that is there cannot be used.
pub fn programs(dir: &Path) -> Result<SidecarPrograms, String> {
    let path = dir.join("node.wasm");
    let size = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(SidecarPrograms::default()),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    if size > MAX_NODE_FILE_BYTES {
        return Err(format!("{} is {size} bytes, over the {MAX_NODE_FILE_BYTES} bytes allowed", path.display()));
    }
    let module = std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    SidecarPrograms::default().with(NODE_COMMAND, Arc::from(module))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_is_provided_when_built_and_absent_otherwise() {
        let dir = std::env::temp_dir().join(format!("secure-exec-node-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(programs(&dir).unwrap().names().count(), 0);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("node.wasm"), b"\0asm").unwrap();
        assert!(programs(&dir).unwrap().has(NODE_COMMAND));
        std::fs::File::create(dir.join("node.wasm")).unwrap().set_len(MAX_NODE_FILE_BYTES + 1).unwrap();
        assert!(programs(&dir).unwrap_err().ends_with(&format!("over the {MAX_NODE_FILE_BYTES} bytes allowed")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
