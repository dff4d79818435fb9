"""Issue 15, item 3: a Wasmtime guest's descriptors, memory and CPU are not the host's.

Each guest runs in a child process with its own rlimits; these attacks used to be paid
by the host process itself (19,984 of its descriptors, the guest's memory in its RSS, a
busy guest on one of its threads).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dsx.sandbox import Mount, Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture
def backend() -> str:
    return "wasmtime"  # Docker bounds all of this with its cgroup (see test_security.py)


OPEN_MANY = """
held, failure = [], None
for i in range(20000):
    try:
        held.append(open('/data/f.txt'))
    except OSError as exc:
        failure = type(exc).__name__
        break
(len(held), failure)
"""


def _host_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_guest_opening_20000_files_leaves_the_host_its_descriptors(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    (tmp_path / "f.txt").write_text("x")
    sb = make_sandbox(mounts=[Mount(str(tmp_path), "/data")])
    before = _host_fds()
    r = sb.execute(OPEN_MANY, timeout=60)
    assert r.ok, r.error
    opened, failure = r.value
    assert opened < 20000 and failure is not None  # the guest's own limit stopped it
    # The guest still holds every file it opened, and none of them is the host's.
    assert _host_fds() - before < 16
    handles = [open(tmp_path / "f.txt") for _ in range(200)]  # noqa: SIM115
    for handle in handles:
        handle.close()
    other = make_sandbox()
    assert other.execute("1 + 1").value == 2
    assert sb.execute("len(held)").value == opened  # and the guest keeps working


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_the_guest_memory_is_not_in_the_host_process(make_sandbox) -> None:
    sb = make_sandbox(memory_limit=256 * 1024 * 1024)
    before = _rss_bytes()
    r = sb.execute(
        "blob = bytearray(160 * 2**20)\nfor i in range(0, len(blob), 4096): blob[i] = 1\nlen(blob)"
    )
    assert r.ok, r.error
    assert _rss_bytes() - before < 40 * 2**20  # 160 MiB live in the guest, not here


def test_a_busy_guest_burns_its_own_cpu_at_a_lower_priority(make_sandbox) -> None:
    sb = make_sandbox()
    pid = sb._child.pid  # type: ignore[attr-defined]
    assert os.getpriority(os.PRIO_PROCESS, pid) > os.getpriority(os.PRIO_PROCESS, 0)
    cpu = _cpu_seconds()
    r = sb.execute("while True:\n    pass", timeout=1.5)
    assert r.timed_out and r.session_reset
    assert _cpu_seconds() - cpu < 0.75  # the guest's 1.5 s of CPU were not this process's
    assert sb.execute("2 + 2").value == 4


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_a_grant_holds_the_host_no_longer_than_the_timeout(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "fifo")
    sb = make_sandbox(mounts=[Mount(str(tmp_path), "/data")])
    began = time.monotonic()
    r = sb.execute("open('/data/fifo').read()", timeout=1)
    assert r.timed_out and time.monotonic() - began < 1 + 5
    began = time.monotonic()
    sb.close()
    assert time.monotonic() - began < 5


def test_the_guest_process_ends_with_the_host(wasm_module: None, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, threading, time
        from dsx.sandbox import create_sandbox
        sb = create_sandbox("wasmtime").start()
        print(sb._child.pid, flush=True)
        threading.Thread(target=sb.execute, args=("while True: pass",), daemon=True).start()
        time.sleep(0.5)
        os._exit(0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pid = int(out.stdout.split()[0])
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Orphans are reaped by init; a zombie counts as gone.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the guest process outlived its host")
