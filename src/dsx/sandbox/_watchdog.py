"""The idle watchdog: a guest that uses CPU between executions is stopped.

Between two executions a guest's driver only waits for the next request, using no CPU.
Code can change that (a thread in Docker, a driver whose reader was replaced by a spin
loop, a process left behind): one daemon thread per host process looks at every started,
idle session every :data:`IDLE_CHECK` seconds and stops the guest of one whose CPU time
grew by more than :data:`IDLE_CPU` seconds since the execution ended. The session
starts a fresh interpreter at its next use, and that result says ``session_reset``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Protocol

__all__ = ["IDLE_CHECK", "IDLE_CPU", "watch"]

#: Seconds between two looks at the idle sessions.
IDLE_CHECK = 1.0
#: CPU seconds a guest may use while no execution runs (its driver needs almost none).
IDLE_CPU = 0.5


class Watched(Protocol):
    def _idle_check(self, limit: float) -> None: ...


_sessions: weakref.WeakSet[Watched] = weakref.WeakSet()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def watch(session: Watched) -> None:
    """Look after ``session`` from now on (until it is garbage)."""
    global _thread
    with _lock:
        _sessions.add(session)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="dsx-sandbox-watchdog", daemon=True)
            _thread.start()


def _run() -> None:
    while True:
        time.sleep(IDLE_CHECK)
        with _lock:
            sessions = list(_sessions)
        for session in sessions:
            with contextlib.suppress(Exception):  # a watchdog never takes the host down
                session._idle_check(IDLE_CPU)
        del sessions
