//! Compiling programs off the kernel's loop.
//!
//! Compiling a large module takes seconds of CPU (the original's `sh` is 3 MB of WebAssembly).
//! With compile effects on ([`Sidecar::with_compile_effects`]), the first time the kernel needs
//! a program it does not know to be compiled, it asks the driver for an
//! [`Effect::Compile`] and leaves what needed it waiting: an `Execute` is answered, a guest's
//! spawn or exec served, once the completion arrives; every other VM and request goes on
//! meanwhile. The driver compiles on a thread of its own into the guest engine's cache, so
//! when the kernel then loads the program, it is there.
//!
//! What the kernel knows to be compiled is its own record, fed only by completions, never the
//! engine's cache (which a driver's thread fills at times no input shows): so whether a request
//! waits depends on the inputs alone, and a replay waits where the recording did. A program
//! the record forgot (it keeps [`MAX_REMEMBERED_COMPILES`]) is compiled again, which the engine
//! answers from its cache at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use schema::wire::{ExecuteRequest, OwnershipScope};

use super::effects::Waiter;
use super::{Sidecar, StreamId};
use crate::error::{RejectCode, Rejection};
use crate::host::effect::{Completion, Effect, EffectId};
use crate::host::module::SharedModule;
use crate::host::python::PythonInstall;

/// Programs the kernel remembers as compiled: a command set has about a hundred; forgetting one
/// costs one more compile effect, which the engine's cache answers at once.
pub const MAX_REMEMBERED_COMPILES: usize = 4096;
/// `Execute` requests that may wait for one program's compilation. Each holds its request
/// until then; more are refused with `limit_exceeded` (the host retries).
pub const MAX_EXECUTES_PER_COMPILE: usize = 256;

/// A program as the record knows it: its length, a hash of its bytes, and the stack limit it
/// is compiled for. (A collision only makes the kernel load a program it believes compiled:
/// the engine then compiles it on the loop, as without compile effects.)
pub(crate) type CompileKey = (u64, u64, u64);

/// The record of compilations and what waits for them.
#[derive(Debug, Default)]
pub(crate) struct Compiles {
    enabled: bool,
    compiled: BTreeSet<CompileKey>,
    /// `compiled` from the oldest entry on.
    order: VecDeque<CompileKey>,
    in_flight: BTreeMap<CompileKey, EffectId>,
    executes: BTreeMap<CompileKey, Vec<PendingExecute>>,
    /// Processes whose spawn or exec waits for a compilation (`Wait::Compile`), by VM and pid.
    pub(crate) spawners: BTreeSet<(String, u32)>,
    /// Whether the driver has loaded the Python interpreter (see [`Effect::LoadPython`]).
    python: PythonLoad,
    /// Why the last load failed, until an `Execute` asks again: a guest's spawn of `python` is
    /// refused with it rather than asking again (a guest retrying would load in a loop).
    python_failure: Option<String>,
    /// `Execute`s waiting for the interpreter to load.
    python_executes: Vec<PendingExecute>,
    /// Keys of modules lately asked about, by the identity of their bytes (newest first): a
    /// large module's bytes are hashed once, not for every process. Each entry keeps its bytes
    /// alive, so an address is never another module's; [`RECENT_KEYS`] of them. (An installed
    /// module's key comes from its stated digest: the interpreter is never hashed here.)
    recent_keys: VecDeque<(Arc<[u8]>, CompileKey)>,
}

/// See `Compiles::recent_keys`.
const RECENT_KEYS: usize = 8;

/// Where loading the Python interpreter stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum PythonLoad {
    #[default]
    NotAsked,
    InFlight,
    Loaded,
}

/// The interpreter for an `Execute`, or not yet.
#[derive(Debug)]
pub(crate) enum PythonReadiness {
    /// The request does not run Python (or runs a `python` command of its own).
    NotNeeded,
    Ready(Arc<PythonInstall>),
    /// Its loading is asked for (or already was).
    Loading,
}

/// An `Execute` waiting for its program.
#[derive(Debug)]
pub(crate) struct PendingExecute {
    pub stream: StreamId,
    pub request_id: i64,
    pub ownership: OwnershipScope,
    pub vm_id: String,
    pub request: ExecuteRequest,
}

/// Whether a program can be loaded now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    /// Its compilation is asked for (or already was).
    Compiling(CompileKey),
}

impl Compiles {
    /// `module`'s key, from [`recent_keys`](Self::recent_keys) when these bytes were asked
    /// about lately.
    fn key_of(&mut self, module: &SharedModule, max_wasm_stack_bytes: u64) -> CompileKey {
        let module = match module {
            // The digest's head stands for the hash.
            SharedModule::Installed(installed) => {
                return (installed.len(), installed.short_digest(), max_wasm_stack_bytes)
            }
            SharedModule::Bytes(bytes) => bytes,
        };
        let known =
            self.recent_keys.iter().find(|(bytes, key)| Arc::ptr_eq(bytes, module) && key.2 == max_wasm_stack_bytes);
        if let Some((_, key)) = known {
            return *key;
        }
        let key = compile_key(module, max_wasm_stack_bytes);
        self.recent_keys.push_front((Arc::clone(module), key));
        self.recent_keys.truncate(RECENT_KEYS);
        key
    }

    fn remember(&mut self, key: CompileKey) {
        if self.compiled.insert(key) {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_REMEMBERED_COMPILES {
            if let Some(oldest) = self.order.pop_front() {
                self.compiled.remove(&oldest);
            }
        }
        debug_assert_eq!(self.order.len(), self.compiled.len());
    }
}

fn compile_key(module: &[u8], max_wasm_stack_bytes: u64) -> CompileKey {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    module.hash(&mut hasher);
    (u64::try_from(module.len()).unwrap_or(u64::MAX), hasher.finish(), max_wasm_stack_bytes)
}

impl Sidecar {
    /// Programs are compiled through [`Effect::Compile`]s the driver performs off the loop
    /// (see [`crate::dispatch::compile`]). Without it, the engine compiles when the kernel first
    /// loads a program, on the loop.
    pub fn with_compile_effects(mut self) -> Self {
        self.compiles.enabled = true;
        self
    }

    /// Ready to load `module` now, or its compilation asked for (once per program).
    pub(crate) fn program_readiness(
        &mut self,
        module: &SharedModule,
        max_wasm_stack_bytes: u64,
    ) -> Result<Readiness, Rejection> {
        if !self.compiles.enabled {
            return Ok(Readiness::Ready);
        }
        let key = self.compiles.key_of(module, max_wasm_stack_bytes);
        if self.compiles.compiled.contains(&key) {
            return Ok(Readiness::Ready);
        }
        if !self.compiles.in_flight.contains_key(&key) {
            let effect = Effect::Compile { module: module.clone(), max_wasm_stack_bytes };
            let id = self.ask_effect(effect, Waiter::compile(key))?;
            self.compiles.in_flight.insert(key, id);
        }
        Ok(Readiness::Compiling(key))
    }

    /// Leaves an `Execute` waiting for the program `key`.
    pub(crate) fn wait_for_compile(&mut self, key: CompileKey, pending: PendingExecute) -> Result<(), Rejection> {
        let waiting = self.compiles.executes.entry(key).or_default();
        if waiting.len() >= MAX_EXECUTES_PER_COMPILE {
            return Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!(
                    "EAGAIN: {MAX_EXECUTES_PER_COMPILE} Execute requests already wait for this program to compile; \
                     retry once they are answered"
                ),
            ));
        }
        waiting.push(pending);
        Ok(())
    }

    /// A compilation completed: the program is remembered, and what waited for it goes on
    /// (the `Execute`s run again from the start, so a VM disposed or a process id taken
    /// meanwhile is answered as it would be now).
    pub(crate) fn finish_compile(&mut self, key: CompileKey) {
        self.compiles.in_flight.remove(&key);
        self.compiles.remember(key);
        for pending in self.compiles.executes.remove(&key).unwrap_or_default() {
            self.execute_again(pending, Ok(()));
        }
        self.wake_spawns_after_compile();
    }

    /// The interpreter for `request` (see [`PythonReadiness`]). With compile effects on, the
    /// first one is loaded by the driver off the loop, through [`Effect::LoadPython`] (reading
    /// the 150 MB install takes a second or more); the kernel's own load afterwards finds it
    /// loaded. Whether it waits depends only on the kernel's record of that completion, so a
    /// replay waits where the recording did.
    pub(crate) fn python_readiness(&mut self, request: &ExecuteRequest) -> Result<PythonReadiness, Rejection> {
        if !crate::vm::exec::runs_python(request) {
            return Ok(PythonReadiness::NotNeeded);
        }
        if self.python.is_none() {
            return match self.python_for(request)? {
                Some(install) => Ok(PythonReadiness::Ready(install)),
                None => Ok(PythonReadiness::NotNeeded),
            };
        }
        self.compiles.python_failure = None;
        match self.python_install() {
            Ok(Some(install)) => Ok(PythonReadiness::Ready(install)),
            Ok(None) => Ok(PythonReadiness::Loading),
            Err(why) => Err(why),
        }
    }

    /// The interpreter for a guest's spawn or exec of `python`: now (`Some`), or `None` while the
    /// driver loads it (the caller waits as for a compilation); a load that failed since the
    /// last `Execute` asked refuses it.
    pub(crate) fn python_for_spawn(&mut self) -> Result<Option<Arc<PythonInstall>>, Rejection> {
        match &self.compiles.python_failure {
            Some(why) => Err(Rejection::new(RejectCode::Unsupported, why.clone())),
            None => self.python_install(),
        }
    }

    /// The sidecar's interpreter, loaded now when the kernel may (no compile effects, or the
    /// driver has loaded it), else `None` and its loading asked for (once).
    fn python_install(&mut self) -> Result<Option<Arc<PythonInstall>>, Rejection> {
        let source = self.python.clone().ok_or_else(|| Rejection::new(RejectCode::Unsupported, "no Python"))?;
        match (self.compiles.enabled, self.compiles.python) {
            (false, _) | (true, PythonLoad::Loaded) => {
                let install = source.load().map_err(|why| Rejection::new(RejectCode::Unsupported, why))?;
                Ok(Some(install))
            }
            (true, PythonLoad::InFlight) => Ok(None),
            (true, PythonLoad::NotAsked) => {
                self.ask_effect(Effect::LoadPython, Waiter::load_python())?;
                self.compiles.python = PythonLoad::InFlight;
                Ok(None)
            }
        }
    }

    /// Leaves an `Execute` waiting for the interpreter to load.
    pub(crate) fn wait_for_python(&mut self, pending: PendingExecute) -> Result<(), Rejection> {
        if self.compiles.python_executes.len() >= MAX_EXECUTES_PER_COMPILE {
            return Err(Rejection::new(
                RejectCode::LimitExceeded,
                format!(
                    "EAGAIN: {MAX_EXECUTES_PER_COMPILE} Execute requests already wait for the Python interpreter to \
                     load; retry once they are answered"
                ),
            ));
        }
        self.compiles.python_executes.push(pending);
        Ok(())
    }

    /// The interpreter's loading completed: the `Execute`s that waited run again (or, when it
    /// could not load, are refused with why; a later one asks again), and the spawns that
    /// waited are served again.
    pub(crate) fn finish_python_load(&mut self, completion: Completion) {
        let outcome = match completion {
            Completion::PythonLoaded(outcome) => outcome,
            _ => Err("loading the interpreter got another effect's completion".to_owned()),
        };
        self.compiles.python = if outcome.is_ok() { PythonLoad::Loaded } else { PythonLoad::NotAsked };
        self.compiles.python_failure = outcome.clone().err();
        for pending in std::mem::take(&mut self.compiles.python_executes) {
            let outcome = outcome.clone().map_err(|why| Rejection::new(RejectCode::Unsupported, why));
            self.execute_again(pending, outcome);
        }
        self.wake_spawns_after_compile();
    }

    /// A waiting `Execute` runs again from the start (so a VM disposed or a process id taken
    /// meanwhile is answered as it would be now), unless what it waited for failed.
    fn execute_again(&mut self, pending: PendingExecute, waited_for: Result<(), Rejection>) {
        let PendingExecute { stream, request_id, ownership, vm_id, request } = pending;
        let answer = waited_for.and_then(|()| self.execute(stream, request_id, &ownership, &vm_id, request));
        match answer {
            Ok(Some(response)) => self.respond(stream, request_id, ownership, response),
            Ok(None) => {}
            Err(rejection) => self.reject(stream, request_id, ownership, rejection),
        }
    }

    /// Programs compiling now.
    pub fn compiles_in_flight(&self) -> usize {
        self.compiles.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_forgets_its_oldest_past_the_bound() {
        let mut compiles = Compiles::default();
        for index in 0..=MAX_REMEMBERED_COMPILES {
            compiles.remember((u64::try_from(index).unwrap_or(0), 0, 0));
        }
        assert_eq!(compiles.compiled.len(), MAX_REMEMBERED_COMPILES);
        assert!(!compiles.compiled.contains(&(0, 0, 0)));
        assert!(compiles.compiled.contains(&(1, 0, 0)));
    }

    #[test]
    fn keys_of_shared_bytes_are_remembered_by_identity_a_few_at_a_time() {
        let mut compiles = Compiles::default();
        let module: Arc<[u8]> = Arc::from(&b"\0asm one"[..]);
        let shared = SharedModule::Bytes(Arc::clone(&module));
        let key = compiles.key_of(&shared, 1 << 20);
        assert_eq!(key, compile_key(&module, 1 << 20));
        assert_eq!(compiles.key_of(&shared, 1 << 20), key, "the same bytes: the same key");
        assert_eq!(compiles.recent_keys.len(), 1, "found by identity, not added again");
        assert_ne!(compiles.key_of(&shared, 2 << 20), key, "another stack limit: another key");
        let copy = SharedModule::Bytes(Arc::from(&b"\0asm one"[..]));
        assert_eq!(compiles.key_of(&copy, 1 << 20), key, "equal bytes elsewhere: hashed, the same key");
        for index in 0..20u8 {
            compiles.key_of(&SharedModule::Bytes(Arc::from(vec![index])), 0);
        }
        assert_eq!(compiles.recent_keys.len(), RECENT_KEYS);
    }

    #[test]
    fn keys_tell_apart_content_length_and_stack() {
        let key = compile_key(b"\0asm one", 1 << 20);
        assert_eq!(key, compile_key(b"\0asm one", 1 << 20));
        assert_ne!(key, compile_key(b"\0asm two", 1 << 20));
        assert_ne!(key, compile_key(b"\0asm one", 2 << 20));
    }

    #[test]
    fn an_installed_module_is_keyed_by_its_stated_digest_without_being_read() {
        let mut compiles = Compiles::default();
        let installed = crate::host::module::InstalledModule::new([7u8; 32], 8, || Err("never read".to_owned()));
        let installed = SharedModule::Installed(Arc::new(installed));
        assert_eq!(compiles.key_of(&installed, 1 << 20), (8, u64::from_le_bytes([7; 8]), 1 << 20));
        assert!(compiles.recent_keys.is_empty(), "nothing hashed, nothing held");
        // The same bytes in memory are hashed, as any module's.
        let bytes = SharedModule::Bytes(Arc::from(&b"\0asm big"[..]));
        assert_eq!(compiles.key_of(&bytes, 1 << 20), compile_key(b"\0asm big", 1 << 20));
    }
}
