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
import socket
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

__all__ = ["CHILD_HOST_MEMORY", "CHILD_MAX_FDS", "CHILD_NICE", "SPARE_CHILDREN", "WasmtimeSandbox"]

#: Descriptors a guest's process may hold (its stdio, preopened grants and open files).
CHILD_MAX_FDS = 256
#: Bytes of the child's data segment beyond the guest's memory limit: Python, Wasmtime
#: and the instance's host-side structures (``RLIMIT_DATA`` = memory limit + this).
CHILD_HOST_MEMORY = 512 * 1024 * 1024
#: How much lower than the host's the guest process's CPU priority is (``nice``).
CHILD_NICE = 10
#: Children kept started ahead of time (loaded, waiting for a session).
SPARE_CHILDREN = 1
#: Seconds the fork server may take to answer (it imports wasmtime first).
ZYGOTE_TIMEOUT = 30.0
_CHILD_SCRIPT = Path(__file__).with_name("_wasm_child.py")
_READ_CHUNK = 1 << 20


def _wasmtime_path() -> str:
    """The directory holding the ``wasmtime`` package (put on the child's ``sys.path``)."""
    spec = importlib.util.find_spec("wasmtime")
    if spec is None or not spec.origin:
        _wasm_runtime._wasmtime()  # raises SandboxUnavailable with the install hint
        raise SandboxUnavailable("the `wasmtime` package cannot be located")
    return str(Path(spec.origin).resolve().parent.parent)


def _interpreter() -> str:
    if not sys.executable:
        raise SandboxUnavailable(
            "the Wasmtime sandbox runs its guests in a child Python process, and this "
            "interpreter does not know its own executable (sys.executable is empty)"
        )
    return sys.executable


class _Zygote:
    """The fork server: a child Python that has imported wasmtime and forks guests."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        boot = {
            "path": [_wasmtime_path()],
            "engine": list(_wasm_runtime.ENGINE_SETTINGS),
            "sock": theirs.fileno(),
        }
        try:
            self.proc = subprocess.Popen(
                [_interpreter(), "-I", "-S", "-B", str(_CHILD_SCRIPT), "zygote", json.dumps(boot)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env={},
                cwd="/",
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(ZYGOTE_TIMEOUT)
        self.sock = ours
        self.lock = threading.Lock()

    def fork(self, fds: list[int]) -> int:
        """A new guest process with these six descriptors; its PID.

        Raises:
            OSError: the fork server is gone or does not answer.
        """
        with self.lock:
            socket.send_fds(self.sock, [b"f"], fds)
            answer = b""
            while len(answer) < 8:
                chunk = self.sock.recv(8 - len(answer))
                if not chunk:
                    raise ConnectionError("the fork server is gone")
                answer += chunk
        pid = int.from_bytes(answer, "little")
        if pid <= 0:
            raise ConnectionError("the fork server refused")
        return pid

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


_zygote_lock = threading.Lock()
_zygote: _Zygote | None = None


def _after_fork() -> None:
    """In a process forked from the host: the fork server and spares are the parent's."""
    global _zygote, _zygote_lock, _spares, _spare_lock
    _zygote, _zygote_lock = None, threading.Lock()  # not stopped: still the parent's
    _spares, _spare_lock = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _fork_guest(fds: list[int]) -> int | None:
    """A guest process forked by the fork server (started when needed), or ``None``."""
    global _zygote
    with _zygote_lock:
        for _attempt in range(2):
            if _zygote is None or _zygote.proc.poll() is not None:
                try:
                    _zygote = _Zygote()
                except OSError:
                    _zygote = None
                    return None
            try:
                return _zygote.fork(fds)
            except OSError:
                _zygote.stop()
                _zygote = None
    return None


class _Child:
    """A process for one guest and the host's ends of its pipes."""

    def __init__(self, pinned: Any) -> None:
        self.pinned = pinned  # the verified module this child loaded
        self.killed = False
        self.niced = False
        self.status = bytearray()
        self.status_eof = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfd: int | None = None
        stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, stdout_w = os.pipe()
        self.stderr_r, stderr_w = os.pipe()
        ctl_r, self.ctl_w = os.pipe()
        self.status_r, status_w = os.pipe()
        ends = [stdin_r, stdout_w, stderr_w, ctl_r, status_w]
        try:
            pid = _fork_guest([*ends, pinned.fd])
            if pid is None:  # no fork server: a process of its own (slower to start)
                pid = self._spawn(pinned, ends)
            self.pid = pid
            if hasattr(os, "pidfd_open"):
                with contextlib.suppress(OSError):
                    self.pidfd = os.pidfd_open(pid)  # alive now: signals reach it, or nothing
        except BaseException:
            for fd in (self.stdin_w, self.stdout_r, self.stderr_r, self.ctl_w, self.status_r):
                _close(fd)
            raise
        finally:
            for fd in ends:
                _close(fd)
        for fd in (self.stdout_r, self.stderr_r, self.status_r, self.stdin_w):
            os.set_blocking(fd, False)

    def _spawn(self, pinned: Any, ends: list[int]) -> int:
        stdin_r, stdout_w, stderr_w, ctl_r, status_w = ends
        boot = {
            "path": [_wasmtime_path()],
            "engine": list(_wasm_runtime.ENGINE_SETTINGS),
            "module": pinned.fd,
            "ctl": ctl_r,
            "status": status_w,
        }
        try:
            self.proc = subprocess.Popen(
                [_interpreter(), "-I", "-S", "-B", str(_CHILD_SCRIPT), "child", json.dumps(boot)],
                stdin=stdin_r,
                stdout=stdout_w,
                stderr=stderr_w,
                pass_fds=(pinned.fd, ctl_r, status_w),
                env={},
                cwd="/",
            )
        except OSError as exc:
            raise SandboxError(f"could not start the Wasmtime guest process: {exc}") from exc
        return self.proc.pid

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
        return not self.killed and not self.gone()

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
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2)
        try:
            found = json.loads(bytes(self.status).decode() or "{}")
        except ValueError:
            found = {}
        return found if isinstance(found, dict) else {}

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def cpu_seconds(self) -> float | None:
        """CPU time the child has used so far (``None`` when it is not known)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def lower_priority(self, by: int) -> None:
        """Make every thread of the child ``by`` nicer than this process (Linux nice is
        per thread; threads started later inherit it from the one that starts them)."""
        target = min(os.getpriority(os.PRIO_PROCESS, 0) + by, 19)
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        except OSError:
            tids = [self.pid]
        for tid in tids:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, target)

    def signal_kill(self) -> None:
        """SIGKILL the guest's process (never another one that reused its PID)."""
        with contextlib.suppress(OSError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif self.proc is not None:
                self.proc.send_signal(signal.SIGKILL)
            elif not self.gone():
                os.kill(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Stop the guest now and release everything (idempotent)."""
        if self.killed:
            return
        self.killed = True
        self.signal_kill()
        for fd in (self.stdin_w, self.stdout_r, self.stderr_r, self.ctl_w, self.status_r):
            _close(fd)
        if self.pidfd is not None:
            _close(self.pidfd)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


_spare_lock = threading.Lock()
_spares: list[_Child] = []


def _take_child() -> _Child:
    """The oldest (most warmed-up) spare child for the current module, else a new one."""
    pinned = _wasm_runtime.pinned_module()
    while True:
        with _spare_lock:
            child = _spares.pop(0) if _spares else None
        if child is None:
            return _Child(pinned)
        if child.pinned is pinned and child.alive():
            return child
        child.kill()


def _refill_spares() -> None:
    """Spawn the next sessions' children now, while nobody waits for them."""
    with _spare_lock:
        for child in [c for c in _spares if not c.alive()]:
            _spares.remove(child)
            child.kill()
        try:
            while len(_spares) < SPARE_CHILDREN:
                _spares.append(_Child(_wasm_runtime.pinned_module()))
        except SandboxError:
            pass


@atexit.register
def _drop_spares() -> None:
    global _zygote
    with _spare_lock:
        children = list(_spares)
        _spares.clear()
    for child in children:
        child.kill()
    with _zygote_lock:
        zygote, _zygote = _zygote, None
    if zygote is not None:
        zygote.stop()


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
            "max_file_size": self._file_size_limit(),
        }
        child = _take_child()
        self._child = child
        self._finalizer = weakref.finalize(self, child.kill)
        child.configure(settings)

    def _start(self) -> None:
        try:
            super()._start()
        except SandboxError:
            if not self._bad_module:
                raise
            # Verified, but written by an incompatible build: compile afresh, once.
            self._bad_module = False
            _wasm_runtime.pinned_module(refresh=True)
            super()._start()
        child = self._child
        if child is not None and not child.niced:
            child.niced = True
            child.lower_priority(CHILD_NICE)  # now: the start-up itself is on the caller's path
        # The next session's child (a fork of the fork server: it only has to load the
        # module, a few ms) is made after this start, not during it.
        _refill_spares()

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
            child.signal_kill()

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
        code = child.returncode()
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            return "SandboxCrash", f"the guest's process was killed by signal {name}"
        return "SandboxCrash", "the guest's process ended unexpectedly"
