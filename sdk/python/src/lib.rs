//! `secure_exec._native`: [`client::sandbox::Sandbox`] for Python. Every call that waits on the
//! sidecar releases the GIL, so other Python threads (and other sandboxes) run meanwhile. The
//! friendly API (`Sandbox`, `Process`, `AsyncSandbox`, typed errors) is Python, in
//! `python/secure_exec/__init__.py`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use client::sandbox::{Sandbox, SandboxOptions};
use client::ClientError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use schema::wire::*;

create_exception!(_native, NativeError, PyException, "A sandbox call failed: args are (code, message).");

/// The longest wait `next_event` accepts: a duration beyond it (or not a number) would make
/// `Duration::from_secs_f64` panic or hang a thread for days; an hour is far more than the SDK's
/// own waits (50 ms).
const MAX_EVENT_WAIT_S: f64 = 3600.0;

/// `(code, message)`: a rejection's own code, else what went wrong with the sidecar process.
fn error(error: ClientError) -> PyErr {
    let (code, message) = match error {
        ClientError::Rejected { code, message } => (code, message),
        ClientError::Spawn(io) => ("spawn".to_owned(), io.to_string()),
        ClientError::Io(io) => ("io".to_owned(), io.to_string()),
        ClientError::Closed => ("closed".to_owned(), "the sidecar exited".to_owned()),
        ClientError::Timeout(after) => ("timeout".to_owned(), format!("no answer within {after:?}")),
        other => ("protocol".to_owned(), other.to_string()),
    };
    NativeError::new_err((code, message))
}

fn closed() -> PyErr {
    NativeError::new_err(("closed".to_owned(), "the sandbox is closed".to_owned()))
}

/// A process event for Python: `(kind, process_id, exit_code, chunk)`.
type Event<'py> = (&'static str, String, i32, Bound<'py, PyBytes>);

/// One sandbox: a sidecar child and its VM.
#[pyclass(module = "secure_exec._native")]
struct NativeSandbox {
    inner: Mutex<Option<Sandbox>>,
}

impl NativeSandbox {
    fn lock(&self) -> MutexGuard<'_, Option<Sandbox>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` on the open sandbox with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&mut Sandbox) -> Result<T, ClientError> + Send,
    ) -> PyResult<T> {
        py.allow_threads(|| match self.lock().as_mut() {
            Some(sandbox) => call(sandbox).map_err(error),
            None => Err(closed()),
        })
    }
}

#[pymethods]
impl NativeSandbox {
    /// Starts `sidecar` with `sidecar_args` and creates a VM with the CreateVm `config` (JSON).
    #[new]
    fn new(py: Python<'_>, sidecar: PathBuf, config: String, sidecar_args: Vec<String>) -> PyResult<Self> {
        let options = SandboxOptions { sidecar, sidecar_args, config };
        let sandbox = py.allow_threads(|| Sandbox::start(&options)).map_err(error)?;
        Ok(Self { inner: Mutex::new(Some(sandbox)) })
    }

    /// Loads command packages (`(name, root)`) and mounts host directories
    /// (`(host, guest, read_only)`).
    fn configure(
        &self,
        py: Python<'_>,
        software: Vec<(String, String)>,
        mounts: Vec<(String, String, bool)>,
    ) -> PyResult<()> {
        let software =
            software.into_iter().map(|(package_name, root)| SoftwareDescriptor { package_name, root }).collect();
        let mounts = mounts
            .into_iter()
            .map(|(host, guest, read_only)| MountDescriptor::host_dir(guest, &host, read_only))
            .collect();
        let configure = ConfigureVmRequest { software, ..ConfigureVmRequest::mounts(mounts) };
        self.with(py, |sandbox| sandbox.configure(configure))
    }

    fn write_file(&self, py: Python<'_>, path: String, data: Vec<u8>) -> PyResult<()> {
        self.with(py, |sandbox| sandbox.write_file(&path, &data))
    }

    fn read_file<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(py, |sandbox| sandbox.read_file(&path))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Starts process `process_id`: `command` (a name on `PATH` or a path) with `args`.
    #[pyo3(signature = (process_id, command, args, env, cwd=None))]
    fn execute(
        &self,
        py: Python<'_>,
        process_id: String,
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    ) -> PyResult<()> {
        let execute = ExecuteRequest { env, cwd, ..ExecuteRequest::command(process_id, command, args) };
        self.with(py, |sandbox| sandbox.execute(execute))
    }

    /// `False` when the process has already ended.
    fn write_stdin(&self, py: Python<'_>, process_id: String, data: Vec<u8>) -> PyResult<bool> {
        self.with(py, |sandbox| sandbox.write_stdin(&process_id, data))
    }

    fn close_stdin(&self, py: Python<'_>, process_id: String) -> PyResult<()> {
        self.with(py, |sandbox| sandbox.close_stdin(&process_id))
    }

    /// `False` when the process has already ended.
    fn kill(&self, py: Python<'_>, process_id: String, signal: String) -> PyResult<bool> {
        self.with(py, |sandbox| sandbox.kill(&process_id, &signal))
    }

    /// The next process event within `timeout_s`: `("stdout" | "stderr", process_id, 0, chunk)`,
    /// `("exit", process_id, exit_code, b"")`, or `None`.
    fn next_event<'py>(&self, py: Python<'py>, timeout_s: f64) -> PyResult<Option<Event<'py>>> {
        let wait =
            Duration::from_secs_f64(if timeout_s.is_finite() { timeout_s.clamp(0.0, MAX_EVENT_WAIT_S) } else { 0.0 });
        loop {
            let event = self.with(py, |sandbox| sandbox.next_event(wait))?;
            return Ok(match event {
                Some(EventPayload::ProcessOutputEvent(output)) => {
                    let channel = match output.channel {
                        StreamChannel::Stdout => "stdout",
                        StreamChannel::Stderr => "stderr",
                    };
                    Some((channel, output.process_id, 0, PyBytes::new(py, &output.chunk)))
                }
                Some(EventPayload::ProcessExitedEvent(exited)) => {
                    Some(("exit", exited.process_id, exited.exit_code, PyBytes::new(py, b"")))
                }
                // VM lifecycle and structured events are the sidecar's business here.
                Some(_) => continue,
                None => None,
            });
        }
    }

    /// Disposes of the VM and stops the sidecar (again: nothing).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let sandbox = py.allow_threads(|| self.lock().take());
        match sandbox {
            Some(sandbox) => py.allow_threads(|| sandbox.close()).map_err(error),
            None => Ok(()),
        }
    }

    fn is_closed(&self) -> bool {
        self.lock().is_none()
    }
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeSandbox>()?;
    module.add("NativeError", module.py().get_type::<NativeError>())?;
    Ok(())
}
