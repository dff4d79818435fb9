"""The Wasmtime backend (the default): CPython for WASI, one child process per guest.

Each session's guest runs in a child process of its own (``_wasm_child.py``) so that what
a hostile guest can take from the machine is bounded by that child's rlimits, not paid by
the host: descriptors (``RLIMIT_NOFILE``: a guest opening files by the thousand gets
``EMFILE``, the host's own ``open()`` keeps working), memory (the store's linear-memory
limit plus ``RLIMIT_DATA`` for Wasmtime's host side), CPU (a lower priority than the host,
and ``SIGKILL`` at the deadline or when the guest works while idle). The guest's stdin,
stdout and stderr are pipes straight between this process and the child's WASI, so an
execution costs what it cost in-process.

A spare child is spawned ahead of time (it imports wasmtime and loads the verified
compiled module, then waits), so a session's start pays only CPython's own start-up.
What the guest can reach is only what WASI gives it: the granted directories, the
granted environment variables, stdin/stdout/stderr and the clocks. There are no sockets,
no processes, no host files otherwise.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import termios
import threading
import weakref
from pathlib import Path
from typing import Any

from dsx.sandbox import _wasm_runtime
from dsx.sandbox._session import Sandbox
from dsx.sandbox._types import SandboxError, SandboxUnavailable

__all__ = ["CHILD_MAX_FDS", "CHILD_NICE", "CHILD_HOST_MEMORY", "WasmtimeSandbox"]

#: Descriptors a guest's process may hold (its stdio, preopened grants and open files).
CHILD_MAX_FDS = 256
#: Bytes of the child's data segment beyond the guest's memory limit: Python, Wasmtime
#: and the instance's host-side structures (``RLIMIT_DATA`` = memory limit + this).
CHILD_HOST_MEMORY = 512 * 1024 * 1024
#: How much lower than the host's the guest process's CPU priority is (``nice``).
CHILD_NICE = 10
_CHILD_SCRIPT = Path(__file__).with_name("_wasm_child.py")
_READ_CHUNK = 1 << 20


def _wasmtime_path() -> str:
    """The directory holding the ``wasmtime`` package (put on the child's ``sys.path``)."""
    spec = importlib.util.find_spec("wasmtime")
    if spec is None or not spec.origin:
        _wasm_runtime._wasmtime()  # raises SandboxUnavailable with the install hint
        raise SandboxUnavailable("the `wasmtime` package cannot be located")
    return str(Path(spec.origin).resolve().parent.parent)


class _Child:
    """A child process for one guest and the host's ends of its pipes."""

    def __init__(self, pinned: Any) -> None:
        if not sys.executable:
            raise SandboxUnavailable(
                "the Wasmtime sandbox runs its guests in a child Python process, and this "
                "interpreter does not know its own executable (sys.executable is empty)"
            )
        self.pinned = pinned  # the verified module this child loaded
        self.killed = False
        self.status = bytearray()
        self.status_eof = False
        stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, stdout_w = os.pipe()
        self.stderr_r, stderr_w = os.pipe()
        ctl_r, self.ctl_w = os.pipe()
        self.status_r, status_w = os.pipe()
        boot = {
            "path": [_wasmtime_path()],
            "engine": list(_wasm_runtime.ENGINE_SETTINGS),
            "module": pinned.fd,
            "ctl": ctl_r,
            "status": status_w,
        }
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(_CHILD_SCRIPT), json.dumps(boot)],
                stdin=stdin_r,
                stdout=stdout_w,
                stderr=stderr_w,
                pass_fds=(pinned.fd, ctl_r, status_w),
                env={},
                cwd="/",
            )
        except OSError as exc:
            for fd in (self.stdin_w, self.stdout_r, self.stderr_r, self.ctl_w, self.status_r):
                _close(fd)
            raise SandboxError(f"could not start the Wasmtime guest process: {exc}") from exc
        finally:
            for fd in (stdin_r, stdout_w, stderr_w, ctl_r, status_w):
                _close(fd)
        for fd in (self.stdout_r, self.stderr_r, self.status_r, self.stdin_w):
            os.set_blocking(fd, False)

    def configure(self, settings: dict[str, Any]) -> None:
        """Hand the waiting child its session: it then starts the guest."""
        data = (json.dumps(settings) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.ctl_w, view) :]
        except OSError as exc:
            raise SandboxError(f"the Wasmtime guest process is gone ({exc})") from None

    def alive(self) -> bool:
        return not self.killed and self.proc.poll() is None

    def gone(self) -> bool:
        """Drain the status pipe; True once the child has ended (the pipe is closed)."""
        while not self.status_eof:
            data, eof = _drain(self.status_r)
            self.status += data[:65536]
            self.status_eof = eof
            if not data:
                break
        return self.status_eof

    def outcome(self) -> dict[str, Any]:
        """How the guest ended, as the child reported it (empty if it could not)."""
        self.gone()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        try:
            found = json.loads(bytes(self.status).decode() or "{}")
        except ValueError:
            found = {}
        return found if isinstance(found, dict) else {}

    def cpu_seconds(self) -> float | None:
        """CPU time the child has used so far (``None`` when it is not known)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def kill(self) -> None:
        """Stop the guest now and release everything (idempotent)."""
        if self.killed:
            return
        self.killed = True
        with contextlib.suppress(OSError):
            self.proc.send_signal(signal.SIGKILL)
        for fd in (self.stdin_w, self.stdout_r, self.stderr_r, self.ctl_w, self.status_r):
            _close(fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


_spare_lock = threading.Lock()
_spare: _Child | None = None


def _take_child() -> _Child:
    """The spare child if it is ready for the current module, else a new one."""
    global _spare
    pinned = _wasm_runtime.pinned_module()
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None and (child.pinned is not pinned or not child.alive()):
        child.kill()
        child = None
    return child if child is not None else _Child(pinned)


def _refill_spare() -> None:
    """Spawn the next session's child now, while nobody waits for it."""
    global _spare
    with _spare_lock:
        if _spare is not None and _spare.alive():
            return
        try:
            _spare = _Child(_wasm_runtime.pinned_module())
        except SandboxError:
            _spare = None


@atexit.register
def _drop_spare() -> None:
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None:
        child.kill()


def _drain(fd: int) -> tuple[bytes, bool]:
    """What can be read from ``fd`` now (at most one chunk), and whether it is closed."""
    try:
        chunk = os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return b"", False
    except OSError:
        return b"", True
    return chunk, not chunk


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class WasmtimeSandbox(Sandbox):
    """A session running CPython 3.12 for WASI in a child process (the default backend).

    Options are those of :class:`~dsx.sandbox.Sandbox`. The first session of a process
    verifies the runtime's sha256 (and compiles it once per machine, cached on disk).
    Limits: the memory limit caps the guest's linear memory (a memory bomb raises
    ``MemoryError`` inside the guest); the guest's process may hold
    :data:`CHILD_MAX_FDS` descriptors and runs at a lower CPU priority than the host; a
    timeout stops the guest mid-instruction and restarts the interpreter, so its state
    is lost (``session_reset``).
    """

    backend = "wasmtime"

    _child: _Child | None = None
    _finalizer: Any = None
    _bad_module = False

    def _boot(self, argv_tail: list[str], deadline: float) -> None:
        settings = {
            "argv": ["python", "-I", "-S", "-B", *argv_tail],
            "env": sorted(self.env.items()),
            "mounts": [[m.host_path, m.guest_path, m.writable] for m in self.mounts],
            "memory": self.limits.memory,
            "max_fds": CHILD_MAX_FDS,
            "max_data": self.limits.memory + CHILD_HOST_MEMORY,
            "nice": CHILD_NICE,
            "max_file_size": self._file_size_limit(),
        }
        child = _take_child()
        self._child = child
        self._finalizer = weakref.finalize(self, child.kill)
        child.configure(settings)
        # The next session's child warms up while this guest's CPython starts.
        _refill_spare()

    def start(self) -> Sandbox:
        try:
            super().start()
        except SandboxError:
            if not self._bad_module:
                raise
            # Verified, but written by an incompatible build: compile afresh, once.
            self._bad_module = False
            _wasm_runtime.pinned_module(refresh=True)
            super().start()
        return self

    def _shutdown(self) -> None:
        child = self._child
        if child is not None and not child.killed and child.gone():
            self._bad_module = "bad_module" in child.outcome()
        if self._finalizer is not None:
            self._finalizer()  # child.kill, once
        self._finalizer = None
        self._child = None

    def _fds(self) -> list[int]:
        child = self._require()
        return [child.stdout_r, child.stderr_r, child.status_r]

    def _require(self) -> _Child:
        if self._child is None:
            raise SandboxError("the wasmtime guest is not running")
        return self._child

    def _read(self) -> tuple[bytes, bytes, bool]:
        child = self._require()
        dead = child.gone()  # checked first: output written before death is drained
        out, out_eof = _drain(child.stdout_r)
        err, _ = _drain(child.stderr_r)
        return out, err, (dead or out_eof) and not out

    def _write_some(self, data: memoryview) -> int:
        child = self._require()
        if child.killed:
            raise BrokenPipeError("the guest is gone")
        try:
            return os.write(child.stdin_w, data)
        except BlockingIOError:
            return 0

    def _write_fd(self) -> int:
        return self._require().stdin_w

    def _unread_input(self) -> int:
        # The driver reads each reply before it makes the next call, so bytes still in
        # the pipe then mean a guest that forges calls without reading (ioctl on a pipe's
        # write end counts what its reader has not taken yet).
        buf = array.array("i", [0])
        try:
            fcntl.ioctl(self._require().stdin_w, termios.FIONREAD, buf)
        except OSError:
            return 0
        return buf[0]

    def _kill_guest(self) -> None:
        child = self._child
        if child is not None:
            with contextlib.suppress(OSError):
                child.proc.send_signal(signal.SIGKILL)

    def _guest_cpu(self) -> float | None:
        child = self._child
        return None if child is None else child.cpu_seconds()

    def _death_reason(self) -> tuple[str, str]:
        child = self._child
        if child is None:
            return "SandboxCrash", "the guest interpreter is gone"
        outcome = child.outcome()
        if isinstance(outcome.get("exit_code"), int):
            code = outcome["exit_code"]
            return "SystemExit", f"the guest interpreter exited with status {code}"
        trap = str(outcome.get("trap") or "")
        if "call stack exhausted" in trap:
            return "RecursionError", f"the guest overflowed its stack ({trap})"
        if trap:
            return "SandboxCrash", f"the guest interpreter crashed ({trap})"
        code = child.proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            return "SandboxCrash", f"the guest's process was killed by signal {name}"
        return "SandboxCrash", "the guest's process ended unexpectedly"
