"""The Wasmtime backend (the default): CPython for WASI embedded in this process.

One guest interpreter per session runs the driver's read-eval loop in a dedicated thread
(wasmtime-py releases the GIL while wasm runs). Messages cross through OS pipes. What
the guest can reach is only what WASI gives it: the granted directories, the granted
environment variables, stdin/stdout/stderr and the clocks. There are no sockets, no
processes, no host files otherwise.

Stopping a guest: each session has its own engine, so incrementing that engine's epoch
traps the guest at its next loop or call without touching other sessions. A guest asleep
(``time.sleep``, ``select``) waits in our own ``poll_oneoff``, which wakes when the session
is killed; a guest blocked reading stdin gets end-of-file.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import struct
import sys
import termios
import threading
import time
import weakref
from typing import Any

from dsx.sandbox import _wasm_runtime
from dsx.sandbox._session import Sandbox
from dsx.sandbox._types import Mount, SandboxError

__all__ = ["WasmtimeSandbox"]

# WASI errno values (not the host's).
_WASI_EFAULT = 21
_WASI_EINVAL = 28
_SUB = struct.Struct("<QB")  # subscription: userdata, tag (then the union at +16)
_SUB_CLOCK = struct.Struct("<I4xQQH")  # clock id, timeout, precision, flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_FD_DIR = "/dev/fd" if sys.platform != "linux" else "/proc/self/fd"
_READ_CHUNK = 1 << 20


class _Guest:
    """One CPython-WASI instance, its pipes and the thread that runs it."""

    def __init__(
        self, argv: list[str], env: dict[str, str], mounts: tuple[Mount, ...], memory: int
    ) -> None:
        import wasmtime as wt

        self.killed = threading.Event()
        self.dead = threading.Event()
        self.exit_code: int | None = None
        self.trap: str | None = None
        self.engine = _wasm_runtime.new_engine()
        module = _wasm_runtime.load_module(self.engine)
        stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, stdout_w = os.pipe()
        self.stderr_r, stderr_w = os.pipe()
        self.death_r, self._death_w = os.pipe()
        try:
            wasi = wt.WasiConfig()
            wasi.argv = argv
            wasi.env = list(env.items())
            wasi.stdin_file = f"{_FD_DIR}/{stdin_r}"
            wasi.stdout_file = f"{_FD_DIR}/{stdout_w}"
            # A file, not stderr_custom: wasmtime may drop a custom stream on one of its
            # own threads at exit, calling back into a finalizing Python.
            wasi.stderr_file = f"{_FD_DIR}/{stderr_w}"
            for m in mounts:
                wasi.preopen_dir(m.host_path, m.guest_path, m.writable)
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):  # wasmtime opened its own descriptions
                os.close(fd)
        for fd in (self.stdout_r, self.stderr_r, self.death_r, self.stdin_w):
            os.set_blocking(fd, False)
        self.store = wt.Store(self.engine)
        self.store.set_wasi(wasi)
        self.store.set_limits(memory_size=memory)
        self.store.set_epoch_deadline(1)  # the epoch only moves when this guest is killed
        linker = wt.Linker(self.engine)
        linker.define_wasi()
        linker.allow_shadowing = True
        i32, i64 = wt.ValType.i32(), wt.ValType.i64()
        linker.define_func(
            "wasi_snapshot_preview1",
            "poll_oneoff",
            wt.FuncType([i32, i32, i32, i32], [i32]),
            self._poll_oneoff,
            access_caller=True,
        )
        linker.define_func(
            "wasi_snapshot_preview1",
            "clock_time_get",
            wt.FuncType([i32, i64, i32], [i32]),
            self._clock_time_get,
            access_caller=True,
        )
        instance = linker.instantiate(self.store, module)
        start = instance.exports(self.store)["_start"]
        self.thread = threading.Thread(
            target=self._run, args=(wt, start), name="dsx-sandbox-wasm", daemon=True
        )
        self.thread.start()

    def _run(self, wt: Any, start: Any) -> None:
        try:
            start(self.store)
            self.exit_code = 0
        except wt.ExitTrap as exc:
            self.exit_code = exc.code
        except BaseException as exc:
            text = str(exc)
            self.trap = next(
                (ln.strip() for ln in text.splitlines() if "wasm trap:" in ln),
                text.splitlines()[0] if text else type(exc).__name__,
            )
        finally:
            self.dead.set()
            with contextlib.suppress(OSError):
                os.write(self._death_w, b"x")

    # -- host functions (they must never raise: wasmtime-py keeps the last Python
    # exception in a process-wide global, which other sessions' threads would see) --

    def _clock_time_get(self, caller: Any, clock_id: int, precision: int, out: int) -> int:
        try:
            if clock_id == 0:
                now = time.time_ns()
            elif clock_id == 1:
                now = time.monotonic_ns()
            elif clock_id in (2, 3):
                now = time.thread_time_ns()  # this thread runs only the guest
            else:
                return _WASI_EINVAL
            caller["memory"].write(caller, now.to_bytes(8, "little"), out)
            return 0
        except BaseException:
            return _WASI_EFAULT

    def _poll_oneoff(self, caller: Any, subs: int, events: int, n: int, nevents: int) -> int:
        try:
            if n <= 0:
                return _WASI_EINVAL
            memory = caller["memory"]
            raw = memory.read(caller, subs, subs + 48 * n)
            if len(raw) != 48 * n:
                return _WASI_EFAULT
            now_real, now_mono = time.time_ns(), time.monotonic_ns()
            ready: list[bytes] = []
            clocks: list[tuple[int, int]] = []
            for i in range(n):
                userdata, tag = _SUB.unpack_from(raw, 48 * i)
                if tag == 0:
                    clock_id, timeout, _precision, flags = _SUB_CLOCK.unpack_from(raw, 48 * i + 16)
                    if flags & 1:  # absolute time on that clock
                        timeout -= now_real if clock_id == 0 else now_mono
                    clocks.append((userdata, max(timeout, 0)))
                elif tag in (1, 2):  # fd read/write: stdio and files never block long
                    ready.append(_EVENT.pack(userdata, 0, tag, 1, 0))
                else:
                    return _WASI_EINVAL
            if not ready and clocks:
                wait = min(t for _, t in clocks)
                if wait > 0:
                    self.killed.wait(wait / 1e9)  # a kill ends the sleep at once
                ready = [_EVENT.pack(u, 0, 0, 0, 0) for u, t in clocks if t <= wait]
            out = b"".join(ready)
            memory.write(caller, out, events)
            memory.write(caller, len(ready).to_bytes(4, "little"), nevents)
            return 0
        except BaseException:
            return _WASI_EFAULT

    # -- host side -------------------------------------------------------------------

    def kill(self) -> None:
        """Stop the guest now (idempotent); its thread ends and its resources go."""
        if not self.killed.is_set():
            self.killed.set()
            self.engine.increment_epoch()  # traps at the next loop back-edge or call
            for fd in (self.stdin_w, self.stdout_r, self.stderr_r):  # EOF/EPIPE for blocked I/O
                _close(fd)
            self.thread.join(timeout=10)
            _close(self.death_r)
            _close(self._death_w)
        # Drop the store (and with it wasmtime's own pipe descriptors) once it is idle.
        if not self.thread.is_alive():
            self.__dict__.pop("store", None)


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
    """A session running CPython 3.12 for WASI inside this process (the default backend).

    Options are those of :class:`~dsx.sandbox.Sandbox`. The first session of a process
    verifies the runtime's sha256 (and compiles it once per machine, cached on disk).
    Limits: the memory limit caps the guest's linear memory (a memory bomb raises
    ``MemoryError`` inside the guest); a timeout stops the guest mid-instruction and
    restarts the interpreter, so its state is lost (``session_reset``).
    """

    backend = "wasmtime"

    _guest: _Guest | None = None
    _finalizer: Any = None

    def _boot(self, argv_tail: list[str], deadline: float) -> None:
        argv = ["python", "-I", "-S", "-B", *argv_tail]
        guest = _Guest(argv, self.env, self.mounts, self.limits.memory)
        self._guest = guest
        self._finalizer = weakref.finalize(self, guest.kill)

    def _shutdown(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # guest.kill, once
        self._finalizer = None
        self._guest = None

    def _fds(self) -> list[int]:
        guest = self._require()
        return [guest.stdout_r, guest.stderr_r, guest.death_r]

    def _require(self) -> _Guest:
        if self._guest is None:
            raise SandboxError("the wasmtime guest is not running")
        return self._guest

    def _read(self) -> tuple[bytes, bytes, bool]:
        guest = self._require()
        dead = guest.dead.is_set()  # checked first: output written before death is drained
        out, out_eof = _drain(guest.stdout_r)
        err, _ = _drain(guest.stderr_r)
        return out, err, (dead or out_eof) and not out

    def _write_some(self, data: memoryview) -> int:
        guest = self._require()
        if guest.dead.is_set():
            raise BrokenPipeError("the guest is gone")
        try:
            return os.write(guest.stdin_w, data)
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

    def _death_reason(self) -> tuple[str, str]:
        guest = self._guest
        if guest is None:
            return "SandboxCrash", "the guest interpreter is gone"
        if guest.exit_code is not None:
            return "SystemExit", f"the guest interpreter exited with status {guest.exit_code}"
        trap = guest.trap or "unknown failure"
        if "call stack exhausted" in trap:
            return "RecursionError", f"the guest overflowed its stack ({trap})"
        if "interrupt" in trap and guest.killed.is_set():
            return "SandboxCrash", "the guest was stopped"
        return "SandboxCrash", f"the guest interpreter crashed ({trap})"
