"""Byte quotas for writable grants (``Mount(..., writable=True, quota=N)``).

A guest with a writable grant writes straight into a host directory, as fast as the disk
goes (1 GiB in about a second). With a quota, two things bound it:

* no single file may grow past the quota: ``RLIMIT_FSIZE`` of the guest's process
  (Wasmtime) or container (Docker); a write beyond it fails with ``EFBIG`` in the guest;
* one thread per such session measures each quota'd grant every :data:`QUOTA_CHECK`
  seconds (sizes of everything in it, symlinks not followed; sparse files count by their
  length) and stops the guest when the grant has grown past what it held when the
  session started plus the quota. The execution then fails with ``QuotaExceeded``.
  A restarted guest is stopped again only if the grant grows further, so it may delete
  files and write again, but the grant never ends up much over its quota: by at most
  what the guest writes within one check interval.

More than :data:`MAX_ENTRIES` entries in a grant count as over quota too (millions of
empty files exhaust a disk's inodes and make every check slow).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Protocol

from dsx.sandbox._types import Mount

__all__ = ["MAX_ENTRIES", "QUOTA_CHECK", "guard", "usage"]

#: Seconds between two measurements of a quota'd grant.
QUOTA_CHECK = 0.1
#: Entries a quota'd grant may hold (files and directories, at any depth).
MAX_ENTRIES = 100_000


class Guarded(Protocol):
    @property
    def closed(self) -> bool: ...

    @property
    def started(self) -> bool: ...

    def _over_quota(self, mount: Mount, used: int) -> None: ...


def usage(path: str, *, max_entries: int = MAX_ENTRIES) -> tuple[int, int]:
    """(bytes, entries) under ``path``, never following a symlink; stops past the cap."""
    total = entries = 0
    stack = [path]
    while stack and entries <= max_entries:
        try:
            with os.scandir(stack.pop()) as listing:
                for entry in listing:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_size
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total, entries


def guard(session: Guarded, mounts: tuple[Mount, ...]) -> None:
    """Watch ``session``'s quota'd grants until it is closed (or garbage)."""
    limited = [m for m in mounts if m.writable and m.quota is not None]
    if not limited:
        return
    base = {m.host_path: usage(m.host_path)[0] for m in limited}
    thread = threading.Thread(
        target=_run, args=(weakref.ref(session), limited, base), name="dsx-quota", daemon=True
    )
    thread.start()


def _run(ref: weakref.ref[Guarded], mounts: list[Mount], base: dict[str, int]) -> None:
    stopped_at: dict[str, int] = {}
    while True:
        time.sleep(QUOTA_CHECK)
        session = ref()
        if session is None or session.closed:
            return
        if session.started:
            for m in mounts:
                assert m.quota is not None
                size, entries = usage(m.host_path)
                grown = size - base[m.host_path]
                over = grown > m.quota or entries > MAX_ENTRIES
                if over and size > stopped_at.get(m.host_path, -1):
                    stopped_at[m.host_path] = size
                    session._over_quota(m, grown)
        del session
