"""Docker containers that never outlive their host, and never hold up its caller.

* Every container is labelled with who made it: this machine's host name and boot id,
  the host process's PID and that process's start time. The first session of a process
  reaps the containers whose maker is gone (another boot, or a PID that is dead or
  reused), so even a host killed with ``SIGKILL`` leaves nothing running for long.
* Containers are created with ``auto_remove``: the engine removes them when they stop;
  and the driver exits when its stdin hangs up, even while user code runs, so a host
  that dies stops its containers at once.
* Stopping a container (close, restart) is a kill, then a removal, done by one worker
  thread off the caller's path; at interpreter exit the pending ones get
  :data:`STOP_TIMEOUT` seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import socket
import threading
from typing import Any

__all__ = ["LABEL", "STOP_TIMEOUT", "labels", "reap_orphans", "stop_later", "wait_for_stops"]

#: The label every dsx sandbox container has.
LABEL = "dsx.sandbox"
#: Seconds the pending kills and removals get when the interpreter exits.
STOP_TIMEOUT = 5.0

_reaped: set[str] = set()
_reap_lock = threading.Lock()
_stops: queue.Queue[tuple[Any, str]] = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" where unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def labels() -> dict[str, str]:
    """The labels that name this process as a container's maker."""
    pid = os.getpid()
    return {
        LABEL: "1",
        "dsx.host": socket.gethostname(),
        "dsx.boot_id": _boot_id(),
        "dsx.pid": str(pid),
        "dsx.pid_start": _start_time(pid),
    }


def _orphaned(found: dict[str, str], mine: dict[str, str]) -> bool:
    if found.get("dsx.host") != mine["dsx.host"]:
        return False  # another machine's: only it knows whether its maker lives
    if found.get("dsx.boot_id") != mine["dsx.boot_id"]:
        return True  # made before this machine last booted
    try:
        pid = int(found.get("dsx.pid", ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = found.get("dsx.pid_start", "")
    return bool(started) and started != _start_time(pid)  # the PID was reused


def reap_orphans(client: Any) -> list[str]:
    """Once per process and engine: stop the containers whose maker is gone."""
    api = client.api
    key = str(getattr(api, "base_url", id(api)))
    with _reap_lock:
        if key in _reaped:
            return []
        _reaped.add(key)
    mine = labels()
    gone: list[str] = []
    try:
        found = api.containers(all=True, filters={"label": f"{LABEL}=1"})
    except Exception:
        return gone
    for container in found:
        if _orphaned(container.get("Labels") or {}, mine):
            gone.append(container["Id"])
            stop_later(client, container["Id"])
    return gone


def stop_later(client: Any, container_id: str) -> None:
    """Kill and remove a container on the worker thread (the caller does not wait)."""
    global _worker
    _stops.put((client, container_id))
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="dsx-docker-stopper", daemon=True)
            _worker.start()


def _work() -> None:
    while True:
        client, container_id = _stops.get()
        try:
            _stop(client, container_id)
        finally:
            _stops.task_done()


def _stop(client: Any, container_id: str) -> None:
    api = client.api
    # Kill first: a container whose output floods or that ignores signals is gone at
    # once; auto_remove then removes it, and the removal below is for older ones.
    with contextlib.suppress(Exception):
        api.kill(container_id)
    with contextlib.suppress(Exception):
        api.remove_container(container_id, force=True)


def wait_for_stops(timeout: float = STOP_TIMEOUT) -> bool:
    """Wait (at most ``timeout`` seconds) until every pending stop is done."""
    done = threading.Event()

    def join() -> None:
        _stops.join()
        done.set()

    threading.Thread(target=join, daemon=True).start()
    return done.wait(timeout)


def _at_exit() -> None:
    if not _stops.empty() or _stops.unfinished_tasks:
        wait_for_stops()


atexit.register(_at_exit)
