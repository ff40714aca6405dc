//! The kernel's rooms (see `kernel/src/lib.rs`) depend on each other in one direction only, and
//! the vfs knows no wire type. Read off the sources: every `crate::<room>` path outside comments
//! and test modules is a dependency. (These tests read files, so they live here, outside the
//! sans-IO kernel crate.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOMS: [&str; 12] =
    ["dispatch", "vm", "fs", "process", "net", "syscalls", "host", "policy", "vfs", "clock", "error", "ids"];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The code of a file without its test module and comment lines.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Which rooms each room uses.
type Dependencies = BTreeMap<String, BTreeSet<String>>;
/// Source files as (path, text).
type Sources = Vec<(String, String)>;

fn room_dependencies() -> (Dependencies, Sources) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut deps = Dependencies::new();
    for (path, text) in &files {
        let relative = path.strip_prefix(&format!("{}/", src.display())).unwrap();
        let room = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        if !ROOMS.contains(&room.as_str()) {
            continue;
        }
        let code = code(text);
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name != room && ROOMS.contains(&name.as_str()) {
                deps.entry(room.clone()).or_default().insert(name);
            }
        }
    }
    (deps, files)
}

#[test]
fn rooms_form_no_import_cycle() {
    let (deps, _) = room_dependencies();
    // Depth-first search from every room; a room met again on the current path is a cycle.
    fn visit(room: &str, deps: &Dependencies, path: &mut Vec<String>) {
        for next in deps.get(room).into_iter().flatten() {
            assert!(!path.contains(next), "import cycle: {} -> {next}", path.join(" -> "));
            path.push(next.clone());
            visit(next, deps, path);
            path.pop();
        }
    }
    for room in ROOMS {
        visit(room, &deps, &mut vec![room.to_owned()]);
    }
    // The bottom rooms stay at the bottom (a rejection names an errno, the vfs's).
    for low in ["vfs", "clock", "error", "ids"] {
        let above: BTreeSet<&str> = ["clock", "vfs"].into();
        let uses: BTreeSet<&str> = deps.get(low).into_iter().flatten().map(String::as_str).collect();
        assert!(uses.is_subset(&above), "{low} uses {uses:?}");
    }
}

#[test]
fn the_vfs_knows_no_wire_type() {
    let (_, files) = room_dependencies();
    for (path, text) in files.iter().filter(|(path, _)| path.contains("/src/vfs/")) {
        assert!(!code(text).contains("schema::"), "{path} uses the wire schema");
    }
}

/// Guest system calls run the VM filesystem's typed operations: no wire filesystem request,
/// result or text encoding between a guest and its files.
#[test]
fn guest_syscalls_speak_no_wire_filesystem_type() {
    let (_, files) = room_dependencies();
    let syscalls: Vec<_> = files.iter().filter(|(path, _)| path.contains("/src/syscalls/")).collect();
    assert!(!syscalls.is_empty());
    for (path, text) in syscalls {
        let code = code(text);
        for wire in ["GuestFilesystem", "RootFilesystemEntryEncoding", "base64"] {
            assert!(!code.contains(wire), "{path} uses {wire}");
        }
    }
}

/// `wire.rs` is where a `GuestFilesystemCallRequest` and a `HostFilesystemCallRequest` are read
/// and their results written; the dispatcher only routes them there.
#[test]
fn only_the_wire_adapter_reads_filesystem_requests() {
    let (_, files) = room_dependencies();
    for (path, text) in files.iter().filter(|(path, _)| !path.ends_with("/src/fs/wire.rs")) {
        let code = code(text);
        for request in ["GuestFilesystemCallRequest", "HostFilesystemCallRequest"] {
            let routes = path.contains("/src/dispatch/");
            assert!(routes || !code.contains(request), "{path} reads {request}");
        }
    }
}

/// The kernel is sans-IO: its code (tests included) never reaches files, sockets, the process
/// environment or the clock; the embedder injects them.
#[test]
fn the_kernel_reaches_no_outside_world() {
    let kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel");
    let mut files = Vec::new();
    sources(&kernel.join("src"), &mut files);
    sources(&kernel.join("tests"), &mut files);
    assert!(files.len() > 20, "the kernel's sources were found");
    for (path, text) in &files {
        let code: String =
            text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for outside in
            ["std::fs", "std::net", "std::env", "std::process", "SystemTime", "Instant::now", "std::io::stdin"]
        {
            assert!(!code.contains(outside), "{path} uses {outside}");
        }
    }
}
