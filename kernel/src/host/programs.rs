//! Programs the sidecar itself provides to every VM: today the `node` command (QuickJS-NG and
//! the Node.js builtins layer, compiled to WebAssembly; see `runtime-js/`). The embedder hands
//! their modules to [`Sidecar::with_program`](crate::Sidecar::with_program).
//!
//! A command is looked for here last, after the VM's own `PATH` and command packages: a package
//! that brings its own `node` wins. Like command packages they are installed software, not
//! recorded data, so a replay needs the same programs. A module is shared by every VM and every
//! process (the engine finds its compiled code by its identity); an installed one (`node` from
//! its snapshot) is read only when the engine has no code for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::module::SharedModule;
use super::software::SOFTWARE_BIN;

/// The most programs a sidecar provides: each is a name every VM resolves, so the set stays
/// small and fixed at start-up.
pub const MAX_SIDECAR_PROGRAMS: usize = 16;
/// The directories where a path names a provided program as its bare name does (where a shell
/// or a script's `#!` looks for it).
const PROGRAM_DIRS: [&str; 4] = [SOFTWARE_BIN, "/usr/bin", "/bin", "/usr/local/bin"];
/// Where a provided program says it lives (its `argv[0]`, `process.execPath`).
pub const PROGRAM_DIR: &str = "/usr/bin";
/// The JavaScript runtime's command name.
pub const NODE_COMMAND: &str = "node";
/// The variable through which the kernel gives every `node` process its VM's `jsRuntime`
/// config (JSON). The kernel sets it on each start of the provided `node`, replacing whatever
/// the starting process put there, so no guest chooses another program's settings.
/// How a provided program's start-up is made once into a snapshot (pre-initialisation): the
/// export that runs it, its bounds, and the host it sees (only `[argv0]`, no files, a fixed
/// clock and this entropy seed). Plain data: the driver owns the files, the runtime runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPlan {
    pub init_func: &'static str,
    pub max_fuel: u64,
    pub max_memory_bytes: u64,
    pub argv0: &'static str,
    pub seed: u64,
}

pub const JS_RUNTIME_ENV: &str = "SECURE_EXEC_JS_RUNTIME";

/// The provided programs by command name.
#[derive(Debug, Clone, Default)]
pub struct SidecarPrograms {
    by_name: Arc<BTreeMap<String, SharedModule>>,
}

impl SidecarPrograms {
    /// Adds `name`; `Err` past [`MAX_SIDECAR_PROGRAMS`] or for a name that is not one path
    /// component.
    pub fn with(mut self, name: &str, module: impl Into<SharedModule>) -> Result<Self, String> {
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(format!("a provided program's name must be one path component, got {name:?}"));
        }
        let mut by_name = (*self.by_name).clone();
        by_name.insert(name.to_owned(), module.into());
        if by_name.len() > MAX_SIDECAR_PROGRAMS {
            return Err(format!("at most {MAX_SIDECAR_PROGRAMS} provided programs"));
        }
        self.by_name = Arc::new(by_name);
        Ok(self)
    }

    /// The program a command means: a provided program's bare name, or its name in one of the
    /// directories where it is looked for.
    pub fn find(&self, command: &str) -> Option<(&str, &SharedModule)> {
        let name = match command.rsplit_once('/') {
            Some((dir, name)) if PROGRAM_DIRS.contains(&dir) => name,
            Some(_) => return None,
            None => command,
        };
        self.by_name.get_key_value(name).map(|(name, module)| (name.as_str(), module))
    }

    /// Whether `module` is the provided program `name` (the very module, not a copy).
    pub fn is(&self, name: &str, module: &SharedModule) -> bool {
        self.by_name.get(name).is_some_and(|provided| module.same(provided))
    }

    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_by_name_or_in_its_directories_only() {
        let programs = SidecarPrograms::default().with("node", Arc::from(&b"\0asm"[..])).ok();
        let programs = programs.as_ref().map(|p| {
            (
                p.find("node").is_some(),
                p.find("/usr/bin/node").is_some(),
                p.find("/opt/agentos/bin/node").is_some(),
                p.find("/home/user/node").is_some(),
                p.find("nodejs").is_some(),
            )
        });
        assert_eq!(programs, Some((true, true, true, false, false)));
    }

    #[test]
    fn names_and_the_count_are_bounded() {
        assert!(SidecarPrograms::default().with("a/b", Arc::from(&b""[..])).is_err());
        let mut programs = SidecarPrograms::default();
        for index in 0..MAX_SIDECAR_PROGRAMS {
            programs = programs.with(&format!("p{index}"), Arc::from(&b""[..])).unwrap_or_default();
        }
        assert_eq!(programs.names().count(), MAX_SIDECAR_PROGRAMS);
        assert!(programs.with("one-more", Arc::from(&b""[..])).is_err());
    }
}
