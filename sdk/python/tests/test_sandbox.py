"""The Python SDK against the real sidecar: files, processes, stdin streaming, timeouts, typed
errors, asyncio, many sandboxes in one process, and a sandbox closed under a running process."""

import asyncio
import os
import tempfile
import threading
import time

import pytest

import secure_exec
from secure_exec import AsyncSandbox, PermissionDenied, Sandbox, SandboxClosed


def test_the_readme_example():
    with Sandbox(permissions={"fs": "allow"}, packages=["common"]) as sb:
        r = sb.run(["sh", "-c", "echo hi | tr a-z A-Z"])
        assert r.stdout == b"HI\n" and r.exit_code == 0
        sb.write_file("/data/x.txt", b"...")
        assert sb.read_file("/data/x.txt") == b"..."
        p = sb.spawn(["cat"])
        p.stdin.write(b"x")
        p.stdin.close()
        assert p.wait() == 0 and p.stdout == b"x"


def test_files_round_trip_bytes_of_any_kind():
    payload = bytes(range(256)) * 1000
    with Sandbox() as sb:
        sb.write_file("/home/user/deep/er/blob", payload)
        assert sb.read_file("/home/user/deep/er/blob") == payload
        with pytest.raises(secure_exec.InvalidRequest) as missing:
            sb.read_file("/nope")
        assert "ENOENT" in missing.value.message


def test_exit_status_stderr_and_environment():
    with Sandbox(packages=["common"], env={"GREETING": "hello"}) as sb:
        r = sb.run(["sh", "-c", 'echo "$GREETING $1" >&2; exit 5', "sh", "world"])
        assert (r.exit_code, r.stdout, r.stderr) == (5, b"", b"hello world\n")
        r = sb.run(["sh", "-c", "pwd"], cwd="/tmp")
        assert r.stdout == b"/tmp\n"


def test_stdin_streams_in_chunks_and_output_streams_out():
    seen = []
    with Sandbox(packages=["common"]) as sb:
        p = sb.spawn(["sh", "-c", "while read line; do echo got $line; done"], on_output=lambda ch, b: seen.append((ch, b)))
        for index in range(50):
            p.stdin.write(b"line %d\n" % index)
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    assert p.stdout == b"".join(b"got line %d\n" % i for i in range(50))
    assert b"".join(chunk for channel, chunk in seen if channel == "stdout") == p.stdout


def test_a_timeout_kills_the_process():
    with Sandbox(packages=["common"]) as sb:
        started = time.monotonic()
        r = sb.run(["sh", "-c", "sleep 60"], timeout=0.5)
        assert r.timed_out and r.exit_code == 137
        assert time.monotonic() - started < 30


def test_errors_are_typed():
    with Sandbox(permissions={"fs": {"default": "allow", "rules": [{"mode": "deny", "operations": ["write"], "paths": ["/locked/**"]}]}}) as sb:
        with pytest.raises(PermissionDenied) as denied:
            sb.write_file("/locked/f", b"x")
        assert denied.value.code == "kernel_error" and "EACCES" in denied.value.message
    with pytest.raises(ValueError):
        Sandbox(packages=["nope"])
    with pytest.raises(secure_exec.SidecarError):
        Sandbox(sidecar="/no/such/sidecar")
    sb = Sandbox()
    # A wait that is not a number of seconds waits not at all (it never hangs or panics).
    for odd in (float("nan"), float("inf"), -5.0):
        started = time.monotonic()
        assert sb._native.next_event(odd) is None
        assert time.monotonic() - started < 5
    sb.close()
    sb.close()
    with pytest.raises(SandboxClosed):
        sb.read_file("/etc/hostname")


def test_a_mounted_host_directory_and_nothing_beside_it():
    with tempfile.TemporaryDirectory() as host:
        with open(os.path.join(host, "in.txt"), "wb") as f:
            f.write(b"from the host\n")
        with Sandbox(packages=["common"], mounts=[(host, "/data", True)]) as sb:
            assert sb.run(["cat", "/data/in.txt"]).stdout == b"from the host\n"
            r = sb.run(["sh", "-c", "echo x > /data/out.txt"])
            assert r.exit_code != 0 and not os.path.exists(os.path.join(host, "out.txt"))
            assert sb.run(["cat", "/data/../" + os.path.basename(host)]).exit_code != 0


def test_asyncio():
    async def main():
        async with AsyncSandbox(packages=["common"]) as sb:
            results = await asyncio.gather(*(sb.run(["sh", "-c", f"echo {i}"]) for i in range(4)))
            await sb.write_file("/tmp/a", b"async")
            return [r.stdout for r in results], await sb.read_file("/tmp/a")

    outputs, content = asyncio.run(main())
    assert sorted(outputs) == [b"0\n", b"1\n", b"2\n", b"3\n"] and content == b"async"


def test_many_sandboxes_in_one_process_and_threads():
    sandboxes = [Sandbox(packages=["common"]) for _ in range(4)]
    try:
        results = [None] * len(sandboxes)

        def work(index):
            results[index] = sandboxes[index].run(["sh", "-c", f"echo sandbox {index}"]).stdout

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sandboxes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [b"sandbox %d\n" % i for i in range(len(sandboxes))]
    finally:
        for sb in sandboxes:
            sb.close()


def test_closing_a_sandbox_under_a_running_process():
    sb = Sandbox(packages=["common"])
    p = sb.spawn(["sh", "-c", "sleep 60"])
    errors = []

    def waiter():
        try:
            p.wait()
        except SandboxClosed as error:
            errors.append(error)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    sb.close()
    thread.join(30)
    assert not thread.is_alive()
    assert errors and errors[0].code == "closed"


def test_python_runs_in_the_sandbox():
    with Sandbox() as sb:
        sb.write_file("/home/user/data.txt", b"21")
        r = sb.run(["python", "-c", "print(int(open('/home/user/data.txt').read()) * 2)"])
        assert (r.exit_code, r.stdout) == (0, b"42\n")
