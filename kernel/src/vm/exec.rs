//! The exec resolver: what a command name, `PATH` and the VM's command packages resolve to, and
//! every check an `Execute` passes before anything is created.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schema::wire::*;

use crate::clock::{Entropy, Now};
use crate::error::{RejectCode, Rejection};
use crate::fs::{FsOp, FsOutcome, FsReply};
use crate::host::module::SharedModule;
use crate::host::programs::{NODE_COMMAND, PROGRAM_DIR};
use crate::host::python::{
    python_program, PythonInstall, PythonProgram, MAX_PRELOAD_SCAN_BYTES, PYTHON_ARGV0, PYTHON_COMMANDS,
};
use crate::policy::config::ResourceLimits;
use crate::policy::permissions::{errno_message, Capability, CompiledPolicy, Decision, PermissionsPolicy};
use crate::process::table::{Process, HOST_PPID};
use crate::process::GuestLimits;
use crate::process::*;
use crate::vfs::{S_IFMT, S_IFREG};
use crate::vm::Vm;

/// What `Execute` resolved before anything is created.
#[derive(Debug)]
pub(crate) struct ExecutionPlan {
    pub(crate) command: String,
    pub(crate) module: SharedModule,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) tier: WasmPermissionTier,
}

pub(crate) fn fd_limit() -> Rejection {
    Rejection::new(RejectCode::KernelError, "ENFILE: maximum open file descriptor limit reached")
}

/// Whether an `Execute` runs the Python interpreter: `runtime: PYTHON`, or a `python` command.
pub(crate) fn runs_python(request: &ExecuteRequest) -> bool {
    match (&request.command, request.runtime) {
        (Some(command), _) if !command.is_empty() => PYTHON_COMMANDS.contains(&command.as_str()),
        (_, runtime) => runtime == Some(GuestRuntimeKind::Python),
    }
}

/// The command an `Execute` runs: its `command`, else a WebAssembly `entrypoint` (or the
/// Python interpreter).
fn execution_command(request: &ExecuteRequest) -> Result<String, Rejection> {
    match (&request.command, request.runtime, &request.entrypoint) {
        (Some(command), _, _) if !command.is_empty() => Ok(command.clone()),
        (_, Some(GuestRuntimeKind::Python), _) => Ok("python".to_owned()),
        (_, Some(GuestRuntimeKind::JavaScript), _) => Ok(NODE_COMMAND.to_owned()),
        (_, None, _) => Err(Rejection::invalid_state("execute requires either command or runtime")),
        (_, Some(GuestRuntimeKind::WebAssembly), Some(entrypoint)) if !entrypoint.is_empty() => Ok(entrypoint.clone()),
        (_, Some(GuestRuntimeKind::WebAssembly), _) => {
            Err(Rejection::invalid_state("execute requires either command or entrypoint"))
        }
    }
}

/// `runtime: JAVA_SCRIPT` without a command runs `node ENTRYPOINT ARGS...`; without an
/// entrypoint, `node ARGS...` (`-e CODE`, or the program on stdin).
fn javascript_entrypoint(request: &ExecuteRequest) -> Option<String> {
    let runs_javascript =
        request.command.as_deref().is_none_or(str::is_empty) && request.runtime == Some(GuestRuntimeKind::JavaScript);
    request.entrypoint.clone().filter(|entrypoint| runs_javascript && !entrypoint.is_empty())
}

/// The argv payload (each argument with its NUL) within `limits.resources.maxProcessArgvBytes`.
fn check_argv_size(argv: &[String], limits: &ResourceLimits) -> Result<(), Rejection> {
    let argv_bytes: usize = argv.iter().map(|arg| arg.len().saturating_add(1)).sum();
    payload_within("argv", argv_bytes, limits.max_process_argv_bytes)
}

/// The environment payload (each `KEY=VALUE` with its NUL) within
/// `limits.resources.maxProcessEnvBytes`.
fn check_env_size(env: &BTreeMap<String, String>, limits: &ResourceLimits) -> Result<(), Rejection> {
    let env_bytes: usize = env.iter().map(|(key, value)| key.len().saturating_add(value.len()).saturating_add(2)).sum();
    payload_within("environment", env_bytes, limits.max_process_env_bytes)
}

/// The modules a VM's commands ran last, by path, so that running an unchanged file again hands
/// the engine the same bytes (`Arc`) as before: it then finds the compiled program by identity,
/// where a fresh copy costs a copy of the file plus a hash and a comparison of all its bytes
/// (milliseconds per `Execute` of a multi-megabyte package; 2% of the simulator's time). A
/// file is "unchanged" when its bytes equal the remembered ones (one comparison, no copy), so
/// a rewrite is always seen.
#[derive(Debug, Default)]
pub(crate) struct ExecModules {
    /// Most recently run last.
    recent: std::collections::VecDeque<(String, std::sync::Arc<[u8]>)>,
}

/// Modules remembered per VM: the commands a shell pipeline or a script runs over and over.
/// The bytes are shared with the engine's program cache while it keeps the program, so this
/// holds them longer at most for these few.
const MAX_EXEC_MODULES: usize = 16;

impl ExecModules {
    /// The module remembered for `path`, if `current` (the file's bytes now) equals it.
    fn unchanged(&mut self, path: &str, current: Option<&[u8]>) -> Option<std::sync::Arc<[u8]>> {
        let current = current?;
        let position = self.recent.iter().position(|(known, _)| known == path)?;
        let (_, module) = self.recent.get(position)?;
        if **module != *current {
            return None;
        }
        let entry = self.recent.remove(position)?;
        let module = std::sync::Arc::clone(&entry.1);
        self.recent.push_back(entry);
        Some(module)
    }

    fn remember(&mut self, path: &str, module: &std::sync::Arc<[u8]>) {
        self.recent.retain(|(known, _)| known != path);
        if self.recent.len() >= MAX_EXEC_MODULES {
            self.recent.pop_front();
        }
        self.recent.push_back((path.to_owned(), std::sync::Arc::clone(module)));
    }
}

/// `EINVAL: process {what} payload {bytes} bytes exceeds configured limit {limit}` past the limit.
fn payload_within(what: &str, bytes: usize, limit: u64) -> Result<(), Rejection> {
    if u64::try_from(bytes).unwrap_or(u64::MAX) > limit {
        return Err(Rejection::new(
            RejectCode::KernelError,
            format!("EINVAL: process {what} payload {bytes} bytes exceeds configured limit {limit}"),
        ));
    }
    Ok(())
}

impl Vm {
    /// Checks an `Execute` request against the VM (ids, limits, policy, tiers) and finds the
    /// module it runs. The checks, their order, codes and messages follow the original.
    /// `python` is the Python interpreter (when `runs_python`), which the caller passes in.
    pub(crate) fn plan_execution(
        &mut self,
        request: &ExecuteRequest,
        now: Now,
        python: Option<&PythonInstall>,
    ) -> Result<ExecutionPlan, Rejection> {
        self.check_new_process_id(&request.process_id)?;
        let command = execution_command(request)?;
        let limits = self.process_limits().clone();
        let mut argv = Vec::with_capacity(request.args.len().saturating_add(1));
        argv.push(if python.is_some() { PYTHON_ARGV0.to_owned() } else { command.clone() });
        argv.extend(javascript_entrypoint(request));
        argv.extend(request.args.iter().cloned());
        let cwd = self.execution_cwd(request.cwd.as_deref());
        let mut env = self.execution_env(&request.env, &cwd);
        let (module_path, module) = match python {
            Some(install) => {
                self.filesystem_mut().show_python_stdlib(std::sync::Arc::clone(&install.stdlib))?;
                // The interpreter's temporary files go where the VM keeps them.
                env.entry("TMPDIR".to_owned()).or_insert_with(|| "/tmp".to_owned());
                (PYTHON_ARGV0.to_owned(), self.python_module(install, &argv, &cwd))
            }
            None => {
                let path_var = env.get("PATH").cloned().unwrap_or_default();
                self.find_command(&command, &path_var, now)?
            }
        };
        self.check_spawn(&command)?;
        self.check_room_for_process(&limits)?;
        check_argv_size(&argv, &limits)?;
        check_env_size(&env, &limits)?;
        let tier = self.execution_tier(request, &command, &module_path);
        let env = self.program_env(&module, env.into_iter().map(|(key, value)| format!("{key}={value}")).collect());
        Ok(ExecutionPlan { command, module, argv, env, cwd, tier })
    }

    /// The interpreter module for the Python command line `argv` started in `cwd`: the
    /// preloaded one when the program's text names its packages (a script is read from the
    /// VM's own files, never through a mount; see [`PythonInstall::module_for`]).
    pub(crate) fn python_module(&self, install: &PythonInstall, argv: &[String], cwd: &str) -> SharedModule {
        let text = match python_program(argv.get(1..).unwrap_or_default()) {
            PythonProgram::Code(code) => Some(code.as_bytes()),
            PythonProgram::Module(module) => Some(module.as_bytes()),
            PythonProgram::Script(path) if install.preloaded.is_some() => self
                .filesystem()
                .root_bytes(&crate::fs::normalize(cwd, path))
                .map(|script| script.get(..MAX_PRELOAD_SCAN_BYTES).unwrap_or(script)),
            PythonProgram::Script(_) | PythonProgram::Stdin => None,
        };
        install.module_for(text)
    }

    /// A new process's id: 1 to [`MAX_PROCESS_ID_BYTES`] bytes, and no live process's.
    fn check_new_process_id(&self, process_id: &str) -> Result<(), Rejection> {
        if process_id.is_empty() || process_id.len() > MAX_PROCESS_ID_BYTES {
            return Err(Rejection::invalid_state(format!(
                "processId must be 1 to {MAX_PROCESS_ID_BYTES} bytes, got {}",
                process_id.len()
            )));
        }
        if self.processes().active_pid(process_id).is_some() {
            return Err(Rejection::invalid_state(format!(
                "VM {} already has an active process with id {process_id}",
                self.id()
            )));
        }
        Ok(())
    }

    /// Whether the limits leave room for one more process with its three standard descriptors.
    fn check_room_for_process(&self, limits: &ResourceLimits) -> Result<(), Rejection> {
        let live = u64::try_from(self.processes().counted()).unwrap_or(u64::MAX);
        if live >= limits.max_processes {
            return Err(Rejection::new(RejectCode::KernelError, "EAGAIN: maximum process limit reached"));
        }
        if limits.max_open_fds < 3 {
            return Err(fd_limit());
        }
        Ok(())
    }

    /// The permission tier the guest runs with: the request's, else the one configured for the
    /// command or for the module's file name, else full.
    fn execution_tier(&self, request: &ExecuteRequest, command: &str, module_path: &str) -> WasmPermissionTier {
        let name = module_path.rsplit('/').next().unwrap_or(command);
        request
            .wasm_permission_tier
            .or_else(|| self.command_tier(command))
            .or_else(|| self.command_tier(name))
            .unwrap_or(WasmPermissionTier::Full)
    }

    /// The guest cwd: the request's (normalized), else the VM's.
    fn execution_cwd(&self, requested: Option<&str>) -> String {
        let base = self.filesystem().cwd().to_owned();
        match requested {
            Some(cwd) if !cwd.is_empty() => crate::fs::normalize(&base, cwd),
            _ => base,
        }
    }

    /// The guest environment: the VM's, the request's over it, the defaults where unset, and
    /// `PWD` always the cwd.
    fn execution_env(&self, requested: &BTreeMap<String, String>, cwd: &str) -> BTreeMap<String, String> {
        let mut env = self.guest_env().clone();
        env.extend(requested.iter().map(|(key, value)| (key.clone(), value.clone())));
        for (key, value) in [
            ("HOME", "/home/user"),
            ("USER", "user"),
            ("LOGNAME", "user"),
            ("SHELL", "/bin/sh"),
            ("PATH", DEFAULT_PATH),
            ("TMPDIR", "/tmp"),
        ] {
            env.entry(key.to_owned()).or_insert_with(|| value.to_owned());
        }
        env.insert("PWD".to_owned(), cwd.to_owned());
        env
    }

    /// `child_process.spawn` on the command.
    pub(crate) fn check_spawn(&self, command: &str) -> Result<(), Rejection> {
        let message = match self.policy().decide(Capability::ChildProcessSpawn, command, false) {
            Decision::Allow => return Ok(()),
            Decision::Deny { message } => message,
            Decision::Ask => "permission prompt required for child_process.spawn".to_owned(),
        };
        Err(Rejection::with_errno(
            RejectCode::KernelError,
            crate::vfs::Errno::EACCES,
            errno_message("spawn", command, &message),
        ))
    }

    /// The module a command names: a registered command package, else a path or a name searched
    /// on `PATH` and then [`FALLBACK_PATH_DIRS`], else a program the sidecar provides. Files are read through the VM's filesystem
    /// layer, so command directories mounted from the host work.
    pub(crate) fn find_command(
        &mut self,
        command: &str,
        path_var: &str,
        now: Now,
    ) -> Result<(String, SharedModule), Rejection> {
        let not_found = || Rejection::invalid_state(format!("command not found on native sidecar path: {command}"));
        let mut candidates: Vec<String> = Vec::new();
        if command.contains('/') {
            candidates.push(crate::fs::normalize(self.filesystem().cwd(), command));
        } else {
            candidates.extend(self.command_package_dirs(now).into_iter().map(|dir| format!("{dir}/{command}")));
            let dirs = path_var.split(':').filter(|dir| !dir.is_empty()).chain(FALLBACK_PATH_DIRS);
            candidates
                .extend(dirs.map(|dir| crate::fs::normalize(self.filesystem().cwd(), &format!("{dir}/{command}"))));
        }
        let max_module_bytes = self.limits().wasm.max_module_file_bytes;
        for candidate in candidates {
            let Some(FsReply::Stat(stat)) = self.kernel_call(&candidate, FsOp::Stat, now) else {
                continue;
            };
            if stat.is_directory || stat.mode & S_IFMT != S_IFREG {
                continue;
            }
            if stat.size > max_module_bytes {
                return Err(Rejection::new(
                    RejectCode::ExecutionError,
                    format!(
                        "invalid WebAssembly module: {candidate} is {} bytes, over the module limit of {max_module_bytes}",
                        stat.size
                    ),
                ));
            }
            if let Some(module) = self.exec_modules.unchanged(&candidate, self.filesystem.root_bytes(&candidate)) {
                return Ok((candidate, SharedModule::Bytes(module)));
            }
            let bytes = self.kernel_read(&candidate, now).ok_or_else(not_found)?;
            if !bytes.starts_with(WASM_MAGIC) {
                // A stub or a script: only WebAssembly runs here (yet).
                continue;
            }
            let module: std::sync::Arc<[u8]> = std::sync::Arc::from(bytes);
            self.exec_modules.remember(&candidate, &module);
            return Ok((candidate, SharedModule::Bytes(module)));
        }
        // Last, the programs the sidecar provides (`node`).
        match self.programs.find(command) {
            Some((name, module)) => Ok((format!("{PROGRAM_DIR}/{name}"), module.clone())),
            None => Err(not_found()),
        }
    }

    /// The numbered command-package directories, in string order.
    fn command_package_dirs(&mut self, now: Now) -> Vec<String> {
        let entries = match self.kernel_call(COMMANDS_DIR, FsOp::ReadDir, now) {
            Some(FsReply::Entries(entries)) => entries,
            _ => Vec::new(),
        };
        let mut dirs: Vec<String> = entries
            .into_iter()
            .filter(|name| !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_digit()))
            .collect();
        dirs.sort();
        dirs.into_iter().map(|dir| format!("{COMMANDS_DIR}/{dir}")).collect()
    }

    /// A whole file's bytes, read by the kernel: straight from the root filesystem when no
    /// mount is in the way (no copy), else through the mounts.
    fn kernel_read(&mut self, path: &str, now: Now) -> Option<Vec<u8>> {
        if let Some(bytes) = self.filesystem().read_on_root(path) {
            return Some(bytes);
        }
        match self.kernel_call(path, FsOp::ReadFile, now) {
            Some(FsReply::Content(bytes)) => Some(bytes),
            _ => None,
        }
    }

    /// A filesystem operation by the kernel itself (not subject to the guest policy), across
    /// mounts; `None` on any failure.
    fn kernel_call(&mut self, path: &str, op: FsOp<'_>, now: Now) -> Option<FsReply> {
        // The kernel's own reads never touch devices that draw entropy.
        let mut entropy = Entropy::from_seed(0);
        static KERNEL_POLICY: OnceLock<CompiledPolicy> = OnceLock::new();
        let policy = KERNEL_POLICY.get_or_init(|| {
            CompiledPolicy::compile(&PermissionsPolicy::allow_all()).unwrap_or_else(|_| CompiledPolicy::deny_all())
        });
        match self.filesystem_call_with(policy, path, op, &mut entropy, now) {
            Ok(FsOutcome::Done(reply)) => Some(reply),
            _ => None,
        }
    }

    /// The guest limits from `limits.resources`.
    pub(crate) fn guest_limits(&self) -> GuestLimits {
        let limits = self.process_limits();
        GuestLimits {
            max_wasm_fuel: limits.max_wasm_fuel,
            slice_fuel: SLICE_FUEL,
            max_wasm_memory_bytes: limits.max_wasm_memory_bytes,
            max_wasm_stack_bytes: limits.max_wasm_stack_bytes,
        }
    }

    /// A running or stopped process by the host's id.
    pub(crate) fn active_process_mut(&mut self, process_id: &str) -> Result<&mut Process, Rejection> {
        let vm_id = self.id().to_owned();
        let missing = || Rejection::invalid_state(format!("VM {vm_id} has no active process {process_id}"));
        let pid = self.processes().active_pid(process_id).ok_or_else(missing)?;
        self.processes_mut().get_mut(pid).ok_or_else(missing)
    }

    /// Forgets exited processes retained longer than [`EXITED_RETENTION_MS`], and the oldest
    /// beyond [`MAX_RETAINED_EXITED_PER_VM`].
    pub(crate) fn forget_exited(&mut self, now_ms: u64) {
        // Zombies of living parents wait to be reaped; orphaned ones go after ZOMBIE_TTL_MS.
        let orphaned_zombies: Vec<u32> = self
            .processes()
            .iter()
            .filter(|process| !process.top_level && process.ppid == HOST_PPID)
            .filter(|process| process.exited_at_ms.is_some_and(|at| at.saturating_add(ZOMBIE_TTL_MS) <= now_ms))
            .map(|process| process.pid)
            .collect();
        for pid in orphaned_zombies {
            self.processes_mut().remove(pid);
        }
        let mut exited: Vec<(u64, u64, u32)> = self
            .processes()
            .iter()
            .filter(|process| process.top_level)
            .filter_map(|process| process.exited_at_ms.map(|at| (at, process.exit_order, process.pid)))
            .collect();
        exited.sort_unstable();
        let excess = exited.len().saturating_sub(MAX_RETAINED_EXITED_PER_VM);
        for (index, (exited_at_ms, _, pid)) in exited.into_iter().enumerate() {
            if index < excess || exited_at_ms.saturating_add(EXITED_RETENTION_MS) <= now_ms {
                self.processes_mut().remove(pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_file_runs_as_the_same_bytes_and_a_rewritten_one_does_not() {
        let mut modules = ExecModules::default();
        let first: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"\0asm one"[..]);
        modules.remember("/bin/a", &first);
        let again = modules.unchanged("/bin/a", Some(b"\0asm one"));
        assert!(again.is_some_and(|module| std::sync::Arc::ptr_eq(&module, &first)));
        assert!(modules.unchanged("/bin/a", Some(b"\0asm two")).is_none(), "rewritten");
        assert!(modules.unchanged("/bin/a", None).is_none(), "not on the root filesystem now");
        assert!(modules.unchanged("/bin/b", Some(b"\0asm one")).is_none(), "another path");
        for index in 0..MAX_EXEC_MODULES {
            modules.remember(&format!("/bin/{index}"), &first);
        }
        assert!(modules.unchanged("/bin/a", Some(b"\0asm one")).is_none(), "the oldest is forgotten");
        assert_eq!(modules.recent.len(), MAX_EXEC_MODULES);
    }
}
