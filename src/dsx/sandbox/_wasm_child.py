"""The process that runs one Wasmtime guest: CPython for WASI, bounded by its own rlimits.

The host never imports this module; it runs it as a script (``python -I -S -B <this file>
zygote <boot json>``, a fork server; or ``... child <boot json>`` for one guest) so that a guest's descriptors, memory and CPU are those of a child process:
a guest that opens 20,000 files exhausts the child's ``RLIMIT_NOFILE``, not the host's; a
runaway allocation on the host side of Wasmtime meets ``RLIMIT_DATA``; a busy guest runs
at a lower priority than the host (set by the host once the driver is ready) and is
stopped with ``SIGKILL``.

Start-up in steps keeps a session's start fast: one fork server per host process has
imported wasmtime (the slow part, ≈ 40-70 ms); each guest process is forked from it, and a
spare one is forked ahead of time: it deserializes the verified compiled module (from a
sealed descriptor the host passes, never from the cache file), then waits for the
session's settings on the control pipe. Once they arrive it lowers its limits,
instantiates CPython with the session's grants and environment and runs it; fds 0, 1 and
2 are the guest's stdin, stdout and stderr. When CPython ends, the child writes one JSON
line saying how (exit status or trap) to the status pipe and exits. When the host goes
away (its end of the control pipe closes), the child exits at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import struct
import sys
import threading
import time
from typing import Any

# WASI errno values (not the host's).
_WASI_EFAULT = 21
_WASI_EINVAL = 28
_SUB = struct.Struct("<QB")  # subscription: userdata, tag (then the union at +16)
_SUB_CLOCK = struct.Struct("<I4xQQH")  # clock id, timeout, precision, flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_FD_DIR = "/proc/self/fd" if sys.platform == "linux" else "/dev/fd"


# -- host functions (they must never raise: wasmtime-py keeps the last Python exception
# in a process-wide global) ---------------------------------------------------------------


def _clock_time_get(caller: Any, clock_id: int, precision: int, out: int) -> int:
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


def _poll_oneoff(caller: Any, subs: int, events: int, n: int, nevents: int) -> int:
    # Wasmtime's own poll_oneoff blocks in a way no signal interrupts cleanly; this one
    # sleeps on a clock and reports descriptors ready (stdio and files never block long).
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
            elif tag in (1, 2):
                ready.append(_EVENT.pack(userdata, 0, tag, 1, 0))
            else:
                return _WASI_EINVAL
        if not ready and clocks:
            wait = min(t for _, t in clocks)
            if wait > 0:
                time.sleep(wait / 1e9)
            ready = [_EVENT.pack(u, 0, 0, 0, 0) for u, t in clocks if t <= wait]
        memory.write(caller, b"".join(ready), events)
        memory.write(caller, len(ready).to_bytes(4, "little"), nevents)
        return 0
    except BaseException:
        return _WASI_EFAULT


# -- the child's life ------------------------------------------------------------------


def _read_line(fd: int) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _watch_host(fd: int) -> None:
    """Exit as soon as the host closes the control pipe (it died, or killed us)."""
    try:
        while os.read(fd, 4096):
            pass
    finally:
        os._exit(0)


def _limit(kind: int, value: int) -> None:
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _report(status_fd: int, outcome: dict[str, Any]) -> None:
    data = (json.dumps(outcome) + "\n").encode()
    with contextlib.suppress(OSError):
        os.write(status_fd, data[:65536])


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host's Ctrl-C is the host's
    boot = json.loads(sys.argv[-1])
    sys.path[:0] = boot["path"]
    import wasmtime  # noqa: F401  (the slow part: loaded once, before any fork)

    if sys.argv[1] == "zygote":
        _zygote(boot)
    else:
        serve(boot["engine"], boot["module"], boot["ctl"], boot["status"])


def _zygote(boot: dict[str, Any]) -> None:
    """Fork one guest process per request: wasmtime is imported once, here.

    A request is one byte on the socket with six descriptors: the guest's stdin, stdout
    and stderr, the control and status pipes, and the compiled module. The answer is the
    new process's PID (8 bytes). This process stays single-threaded (forking is safe)
    and ignores SIGCHLD, so its children never linger as zombies.
    """
    import socket

    sock = socket.socket(fileno=boot["sock"])
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 8)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)  # the host is gone
        if len(fds) != 6:
            for fd in fds:
                os.close(fd)
            sock.sendall((0).to_bytes(8, "little"))
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                stdin, stdout, stderr, ctl, status, module = fds
                for target, fd in enumerate((stdin, stdout, stderr)):
                    os.dup2(fd, target)
                    os.close(fd)
                serve(boot["engine"], module, ctl, status)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        sock.sendall(pid.to_bytes(8, "little"))


def serve(engine_settings: list[Any], module_fd: int, ctl: int, status: int) -> None:
    """Load the module, wait for the session's settings, then run the guest; never returns."""
    import wasmtime as wt

    config = wt.Config()
    for name, value in engine_settings:
        setattr(config, name, value)
    engine = wt.Engine(config)
    try:
        module = wt.Module.deserialize_file(engine, f"{_FD_DIR}/{module_fd}")
    except wt.WasmtimeError as exc:  # the host recompiles and tries again
        _report(status, {"bad_module": str(exc)[:2000]})
        os._exit(1)
    os.close(module_fd)
    line = _read_line(ctl)
    if not line:
        os._exit(0)  # a spare the host no longer needs
    cfg = json.loads(line)
    threading.Thread(target=_watch_host, args=(ctl,), daemon=True).start()

    # From here on the child runs hostile code: bound what it can take from the machine.
    _limit(resource.RLIMIT_NOFILE, cfg["max_fds"])
    _limit(resource.RLIMIT_DATA, cfg["max_data"])
    _limit(resource.RLIMIT_CORE, 0)
    if cfg.get("max_file_size") is not None:
        _limit(resource.RLIMIT_FSIZE, cfg["max_file_size"])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG in the guest, not death
    # The host lowers this process's priority once the driver is ready (CPython's own
    # start-up, trusted code, runs at the host's priority: it is on the caller's path).

    wasi = wt.WasiConfig()
    wasi.argv = cfg["argv"]
    wasi.env = [tuple(kv) for kv in cfg["env"]]
    wasi.stdin_file = f"{_FD_DIR}/0"
    wasi.stdout_file = f"{_FD_DIR}/1"
    wasi.stderr_file = f"{_FD_DIR}/2"
    for host_path, guest_path, writable in cfg["mounts"]:
        wasi.preopen_dir(host_path, guest_path, writable)
    store = wt.Store(engine)
    store.set_wasi(wasi)
    store.set_limits(memory_size=cfg["memory"])
    store.set_epoch_deadline(1)  # the epoch never moves: the host stops us with SIGKILL
    linker = wt.Linker(engine)
    linker.define_wasi()
    linker.allow_shadowing = True
    i32, i64 = wt.ValType.i32(), wt.ValType.i64()
    linker.define_func(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        wt.FuncType([i32, i32, i32, i32], [i32]),
        _poll_oneoff,
        access_caller=True,
    )
    linker.define_func(
        "wasi_snapshot_preview1",
        "clock_time_get",
        wt.FuncType([i32, i64, i32], [i32]),
        _clock_time_get,
        access_caller=True,
    )
    start: Any = linker.instantiate(store, module).exports(store)["_start"]
    try:
        start(store)
        outcome: dict[str, Any] = {"exit_code": 0}
    except wt.ExitTrap as exc:
        outcome = {"exit_code": exc.code}
    except BaseException as exc:
        text = str(exc)
        trap = next(
            (ln.strip() for ln in text.splitlines() if "wasm trap:" in ln),
            text.splitlines()[0] if text else type(exc).__name__,
        )
        outcome = {"trap": trap[:2000]}
    _report(status, outcome)
    os._exit(0)


if __name__ == "__main__":
    main()
