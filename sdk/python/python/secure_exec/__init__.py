"""Run untrusted commands and WebAssembly programs in a Secure Exec sandbox.

    from secure_exec import Sandbox

    with Sandbox(permissions={"fs": "allow"}, packages=["common"]) as sb:
        r = sb.run(["sh", "-c", "echo hi | tr a-z A-Z"])
        assert r.stdout == b"HI\\n" and r.exit_code == 0

Each `Sandbox` is one virtual machine in its own `secure-exec-sidecar` process: guests see only
the VM's files and what `mounts` expose, under the `permissions` policy. Calls that wait release
the GIL; `AsyncSandbox` offers the same API to asyncio code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import _native

__all__ = [
    "AsyncSandbox",
    "Completed",
    "InvalidRequest",
    "LimitExceeded",
    "PermissionDenied",
    "Process",
    "Sandbox",
    "SandboxClosed",
    "SandboxError",
    "SidecarError",
]

#: The command packages `common` names (the original's `@agentos-software` set).
PACKAGES = ("coreutils", "sed", "grep", "gawk", "findutils", "diffutils", "tar", "gzip")
#: The version `scripts/fetch-packages.sh` installs, as its cache directory names it.
PACKAGES_VERSION = "0.2.21"
#: How long one wait for an event lasts before deadlines are looked at again, in seconds.
_POLL_S = 0.05
#: The permissions a sandbox has when it names none: its own VM is private, so it may use it;
#: the network stays closed.
DEFAULT_PERMISSIONS: Mapping[str, Any] = {"fs": "allow", "childProcess": "allow", "process": "allow", "env": "allow"}


class SandboxError(Exception):
    """A sandbox call failed. `code` is the sidecar's rejection code (or `spawn`, `io`,
    `closed`, `timeout`, `protocol` for the sidecar process itself); `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PermissionDenied(SandboxError):
    """The permission policy refused the call (`EACCES`)."""


class LimitExceeded(SandboxError):
    """A limit of the VM or the sidecar was reached."""


class InvalidRequest(SandboxError):
    """The request was malformed or made in the wrong state (a process that ended, a missing
    file, ...)."""


class SidecarError(SandboxError):
    """The sidecar process could not be started, or stopped answering."""


class SandboxClosed(SandboxError):
    """The sandbox was closed."""


def _typed(error: BaseException) -> BaseException:
    """A native error as the typed exception its code names."""
    if not isinstance(error, _native.NativeError) or len(error.args) != 2:
        return error
    code, message = error.args
    if code == "closed":
        kind: type = SandboxClosed
    elif code in ("spawn", "io", "timeout", "protocol"):
        kind = SidecarError
    elif code == "limit_exceeded":
        kind = LimitExceeded
    elif "EACCES" in message or code == "permission_denied":
        kind = PermissionDenied
    else:
        kind = InvalidRequest
    return kind(code, message)


def _call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except _native.NativeError as error:
        raise _typed(error) from None


@dataclass
class Completed:
    """How a process run to its end went."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


def _sidecar_binary(given: Optional[os.PathLike]) -> str:
    """The sidecar: the one given, `$SECURE_EXEC_SIDECAR`, the one the wheel ships, or `PATH`'s."""
    if given is not None:
        return os.fspath(given)
    if os.environ.get("SECURE_EXEC_SIDECAR"):
        return os.environ["SECURE_EXEC_SIDECAR"]
    bundled = Path(__file__).parent / "bin" / "secure-exec-sidecar"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("secure-exec-sidecar")
    if found is None:
        raise SidecarError("spawn", "no secure-exec-sidecar: set SECURE_EXEC_SIDECAR or install the wheel that ships it")
    return found


def _packages_root() -> Path:
    base = os.environ.get("SECURE_EXEC_PACKAGES")
    if base:
        root = Path(base)
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        root = cache / "secure-exec-sidecar" / f"packages-{PACKAGES_VERSION}"
    if not (root / ".installed").is_file():
        raise SidecarError("spawn", f"the command packages are not installed in {root}: run scripts/fetch-packages.sh")
    return root / "node_modules" / "@agentos-software"


def _software(packages: Iterable[str]) -> List[Tuple[str, str]]:
    names: List[str] = []
    for package in packages:
        if package == "common":
            names.extend(PACKAGES)
        elif package in PACKAGES:
            names.append(package)
        else:
            raise ValueError(f"no command package {package!r}: the packages are common, {', '.join(PACKAGES)}")
    if not names:
        return []
    root = _packages_root()
    return [(f"@agentos-software/{name}", str(root / name)) for name in sorted(set(names))]


class _Stdin:
    """A running process's standard input."""

    def __init__(self, process: "Process") -> None:
        self._process = process

    def write(self, data: bytes) -> None:
        """Sends `data` to the process (nothing, once it has ended)."""
        sandbox = self._process._sandbox
        with sandbox._lock:
            _call(sandbox._native.write_stdin, self._process.process_id, bytes(data))

    def close(self) -> None:
        """Closes the process's standard input (end of file for it)."""
        sandbox = self._process._sandbox
        with sandbox._lock:
            _call(sandbox._native.close_stdin, self._process.process_id)


@dataclass
class Process:
    """A process started with `Sandbox.spawn`: feed `stdin`, then `wait()` for its status; its
    output collects in `stdout` and `stderr` (and goes to `on_output` as it arrives)."""

    _sandbox: "Sandbox"
    process_id: str
    on_output: Optional[Callable[[str, bytes], None]] = None
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: Optional[int] = None
    timed_out: bool = False
    stdin: _Stdin = field(init=False)

    def __post_init__(self) -> None:
        self.stdin = _Stdin(self)

    def _output(self, channel: str, chunk: bytes) -> None:
        if channel == "stdout":
            self.stdout += chunk
        else:
            self.stderr += chunk
        if self.on_output is not None:
            self.on_output(channel, chunk)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Waits for the process to end and returns its exit status; past `timeout` seconds it
        is killed (`timed_out` is then true, the status 137)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._sandbox._pump(lambda: self.exit_code is not None, deadline, self)
        return self.exit_code if self.exit_code is not None else -1

    def kill(self, signal: str = "SIGKILL") -> None:
        """Sends `signal` to the process (nothing, once it has ended)."""
        with self._sandbox._lock:
            _call(self._sandbox._native.kill, self.process_id, signal)


class Sandbox:
    """One VM in its own sidecar process. Close it (or use `with`) to stop both.

    Args:
        permissions: The VM's permission policy by domain (the CreateVm `permissions` object);
            domains it does not name keep `DEFAULT_PERMISSIONS`: the guest may use its own VM
            (files, processes, environment) and nothing of the host or the network.
        packages: Command packages to load (`"common"` for all; `sh` needs them).
        mounts: Host directories as `(host, guest)` or `(host, guest, read_only)`.
        env: Environment variables every process gets.
        cwd: The working directory processes start in.
        limits: The CreateVm `limits` object.
        sidecar: The `secure-exec-sidecar` binary (default: see `_sidecar_binary`).
    """

    def __init__(
        self,
        *,
        permissions: Optional[Mapping[str, Any]] = None,
        packages: Sequence[str] = (),
        mounts: Sequence[Sequence[Any]] = (),
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        limits: Optional[Mapping[str, Any]] = None,
        sidecar: Optional[os.PathLike] = None,
    ) -> None:
        config: Dict[str, Any] = {"permissions": {**DEFAULT_PERMISSIONS, **(permissions or {})}}
        if cwd is not None:
            config["cwd"] = cwd
        if limits is not None:
            config["limits"] = dict(limits)
        software = _software(packages)
        mount_list = []
        for mount in mounts:
            host, guest = os.path.realpath(os.fspath(mount[0])), str(mount[1])
            read_only = bool(mount[2]) if len(mount) > 2 else False
            mount_list.append((host, guest, read_only))
        self._lock = threading.RLock()
        self._env = dict(env or {})
        self._ids = itertools.count(1)
        self._processes: Dict[str, Process] = {}
        self._native = _call(_native.NativeSandbox, _sidecar_binary(sidecar), json.dumps(config), [])
        if software or mount_list:
            try:
                _call(self._native.configure, software, mount_list)
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops every process, disposes of the VM and the sidecar. Closing twice does nothing."""
        with self._lock:
            _call(self._native.close)

    @property
    def closed(self) -> bool:
        return bool(self._native.is_closed())

    def write_file(self, path: str, data: bytes) -> None:
        """Creates or replaces a file of the VM (its directories made as needed)."""
        with self._lock:
            _call(self._native.write_file, path, bytes(data))

    def read_file(self, path: str) -> bytes:
        """A file of the VM, whole."""
        with self._lock:
            return _call(self._native.read_file, path)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        on_output: Optional[Callable[[str, bytes], None]] = None,
    ) -> Process:
        """Starts `argv[0]` (a command on `PATH` or a path) with `argv[1:]`."""
        if not argv:
            raise ValueError("argv must name a command")
        process = Process(self, f"py-{next(self._ids)}", on_output)
        merged = {**self._env, **(env or {})}
        with self._lock:
            _call(self._native.execute, process.process_id, argv[0], list(argv[1:]), merged, cwd)
            self._processes[process.process_id] = process
        return process

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        on_output: Optional[Callable[[str, bytes], None]] = None,
    ) -> Completed:
        """Runs `argv` to its end with `stdin`; past `timeout` seconds it is killed."""
        process = self.spawn(argv, env=env, cwd=cwd, on_output=on_output)
        if stdin:
            process.stdin.write(stdin)
        process.stdin.close()
        code = process.wait(timeout)
        return Completed(code, process.stdout, process.stderr, process.timed_out)

    def _pump(self, done: Callable[[], bool], deadline: Optional[float], process: Process) -> None:
        """Hands events to their processes until `done()`; kills `process` at `deadline`."""
        while not done():
            if deadline is not None and not process.timed_out and time.monotonic() >= deadline:
                process.timed_out = True
                process.kill()
            with self._lock:
                event = _call(self._native.next_event, _POLL_S)
            if event is None:
                continue
            kind, process_id, code, chunk = event
            owner = self._processes.get(process_id)
            if owner is None:
                continue
            if kind == "exit":
                owner.exit_code = code
                del self._processes[process_id]
            else:
                owner._output(kind, chunk)


class AsyncSandbox:
    """`Sandbox` for asyncio: each call runs on a worker thread (the GIL released while the
    sandbox waits), so the event loop keeps going.

        async with AsyncSandbox(packages=["common"]) as sb:
            r = await sb.run(["sh", "-c", "echo hi"])
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._sandbox: Optional[Sandbox] = None

    async def __aenter__(self) -> "AsyncSandbox":
        self._sandbox = await asyncio.to_thread(lambda: Sandbox(**self._options))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(self) -> Sandbox:
        if self._sandbox is None:
            raise SandboxClosed("closed", "the sandbox is not started: use `async with`")
        return self._sandbox

    async def close(self) -> None:
        if self._sandbox is not None:
            await asyncio.to_thread(self._sandbox.close)

    async def run(self, argv: Sequence[str], **options: Any) -> Completed:
        sandbox = self._open()
        return await asyncio.to_thread(lambda: sandbox.run(argv, **options))

    async def write_file(self, path: str, data: bytes) -> None:
        sandbox = self._open()
        await asyncio.to_thread(sandbox.write_file, path, data)

    async def read_file(self, path: str) -> bytes:
        sandbox = self._open()
        return await asyncio.to_thread(sandbox.read_file, path)
