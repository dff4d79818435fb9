"""The LM response cache: an in-memory LRU in front of an on-disk ``diskcache.Cache``.

One process-wide :class:`Cache` is created on first use (so ``import dsx`` never imports
diskcache); :func:`configure_cache` replaces it. :class:`dsx.LM` looks a request up by
:func:`request_key` — a SHA-256 of the request's *meaning* (model, messages, sampling
parameters, ``rollout_id``), never of endpoints, keys, headers, timeouts or retry counts.

Entries are text: a SHA-256 checksum of the key and the payload, then the payload as JSON
(``outputs``, ``usage``, ``cost``, ``model``), so reading the cache never unpickles
anything. An unreadable entry (garbled, tampered with, copied under another key) is a miss:
it is deleted, and the first one in a process is reported with a :class:`RuntimeWarning`.

Several processes may share one directory (diskcache locks through SQLite). The disk layer
never stalls an LM call for long (see ``docs/lm.md``, "Cache"):

* A database locked by another process is waited for ``lock_timeout`` seconds at most
  (:data:`DEFAULT_LOCK_TIMEOUT`); the call then proceeds without the disk layer, which is
  tried again after :data:`LOCK_RETRY_AFTER` seconds. The first such wait in a process is
  reported with one :class:`RuntimeWarning`.
* A corrupt database file is moved aside (``cache.db.corrupt-<time>-<pid>``) and an empty
  one is started, once per :class:`Cache`; a second corruption turns the disk layer off
  for the process. Each is reported with a warning that says what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx.errors import CacheLockedError
from dsx.runtime import _cache_disk
from dsx.runtime._cache_key import NON_SEMANTIC_PARAMS, request_key

if TYPE_CHECKING:
    import diskcache

__all__ = [
    "DEFAULT_DISK_SIZE_LIMIT",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MEMORY_MAX_ENTRIES",
    "LOCK_RETRY_AFTER",
    "NON_SEMANTIC_PARAMS",
    "Cache",
    "configure_cache",
    "default_cache_dir",
    "get_cache",
    "request_key",
]

#: Entries kept in memory before the least recently used is dropped.
DEFAULT_MEMORY_MAX_ENTRIES = 100_000
#: Bytes the disk layer may use before diskcache evicts least recently stored entries.
DEFAULT_DISK_SIZE_LIMIT = 2 * 1024**3
#: Seconds an LM call waits for a disk-cache lock held by another process (then it goes on
#: without the disk layer).
DEFAULT_LOCK_TIMEOUT = 2.0
#: Seconds the disk layer is left alone after a lock wait ran out.
LOCK_RETRY_AFTER = 30.0

_warned_corrupt = False
_warned_disk = False
_warned_lock = False
_warn_lock = threading.Lock()


def default_cache_dir() -> Path:
    """``$DSX_CACHE_DIR``, else ``~/.cache/dsx``."""
    env = os.environ.get("DSX_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dsx"


def _warn_once(kind: str, message: str) -> None:
    global _warned_corrupt, _warned_disk, _warned_lock
    with _warn_lock:
        if kind == "corrupt":
            if _warned_corrupt:
                return
            _warned_corrupt = True
        elif kind == "lock":
            if _warned_lock:
                return
            _warned_lock = True
        else:
            if _warned_disk:
                return
            _warned_disk = True
    warnings.warn(message, RuntimeWarning, stacklevel=4)


class Cache:
    """A two-layer cache of LM responses: bounded in-memory LRU, then disk.

    Thread-safe. Values are JSON-able dicts; keys come from :func:`request_key`.

    Args:
        enable_memory: keep recent entries in this process's memory.
        enable_disk: persist entries under ``disk_dir`` (shared by processes).
        disk_dir: where the disk layer lives (default :func:`default_cache_dir`).
        disk_size_limit: bytes the disk layer may use.
        memory_max_entries: entries the memory layer keeps (least recently used go first).
        lock_timeout: seconds to wait for the disk layer's lock when another process holds
            it; the call then goes on without the disk layer (see the module docstring).
    """

    def __init__(
        self,
        *,
        enable_memory: bool = True,
        enable_disk: bool = True,
        disk_dir: str | os.PathLike[str] | None = None,
        disk_size_limit: int = DEFAULT_DISK_SIZE_LIMIT,
        memory_max_entries: int = DEFAULT_MEMORY_MAX_ENTRIES,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if memory_max_entries < 1:
            raise ValueError(f"memory_max_entries must be >= 1, got {memory_max_entries}")
        if lock_timeout < 0:
            raise ValueError(f"lock_timeout must be >= 0, got {lock_timeout}")
        self.enable_memory = enable_memory
        self.enable_disk = enable_disk
        self.disk_dir = Path(disk_dir).expanduser() if disk_dir else default_cache_dir()
        self.disk_size_limit = disk_size_limit
        self.memory_max_entries = memory_max_entries
        self.lock_timeout = lock_timeout
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._disk_lock = threading.RLock()  # opening, repairing, closing the disk layer
        self._disk: diskcache.Cache | None = None
        self._disk_failed = False
        self._repaired = False
        self._skip_until = 0.0  # time.monotonic() before which a locked disk is not tried

    # -- layers -------------------------------------------------------------------------
    @property
    def disk(self) -> diskcache.Cache | None:
        """The ``diskcache.Cache`` (opened on first use), or ``None`` when disabled, broken,
        or locked by another process right now."""
        if not self.enable_disk or self._disk_failed:
            return None
        if self._disk is None:
            if time.monotonic() < self._skip_until:
                return None
            with self._disk_lock:
                if self._disk is None and not self._disk_failed:
                    try:
                        self._disk = self._open()
                    except Exception as exc:
                        if not self._trouble(exc):
                            self._give_up(
                                f"dsx: the LM disk cache at {self.disk_dir} cannot be opened "
                                f"({type(exc).__name__}: {exc}); caching in memory only. Set "
                                "DSX_CACHE_DIR or dsx.configure_cache(disk_dir=...) to a "
                                "writable directory."
                            )
        return self._disk

    def _open(self) -> diskcache.Cache:
        return _cache_disk.open_disk(
            self.disk_dir, size_limit=self.disk_size_limit, lock_timeout=self.lock_timeout
        )

    def _usable_disk(self) -> diskcache.Cache | None:
        if time.monotonic() < self._skip_until:
            return None
        return self.disk

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or ``None`` on a miss."""
        if self.enable_memory:
            with self._lock:
                value = self._memory.get(key)
                if value is not None:
                    self._memory.move_to_end(key)
                    return value
        disk = self._usable_disk()
        if disk is None:
            return None
        try:
            raw = disk.get(key, default=None, retry=False)
        except Exception as exc:  # a lock, a broken database, or an unreadable value
            if not self._trouble(exc):
                self._drop_corrupt(disk, key, exc)
            return None
        if raw is None:
            return None
        try:
            value = json.loads(_cache_disk.decode_entry(key, raw))
        except ValueError as exc:  # a checksum that does not match, or not JSON
            self._drop_corrupt(disk, key, exc)
            return None
        if not isinstance(value, dict) or not _cache_disk.valid_entry(value):
            self._drop_corrupt(disk, key, ValueError(f"unexpected entry {str(raw)[:80]!r}"))
            return None
        if self.enable_memory:
            self._remember(key, value)
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` (a JSON-able dict) under ``key`` in every enabled layer."""
        if self.enable_memory:
            self._remember(key, value)
        disk = self._usable_disk()
        if disk is None:
            return
        text = _cache_disk.encode_entry(key, _cache_disk.payload_text(value))
        try:
            disk.set(key, text, retry=False)
        except Exception as exc:  # a full disk must not fail the LM call
            if not self._trouble(exc):
                _warn_once("disk", f"dsx: could not write the LM disk cache: {exc}")

    def _remember(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_max_entries:
                self._memory.popitem(last=False)

    def _drop_corrupt(self, disk: diskcache.Cache, key: str, exc: BaseException) -> None:
        _warn_once(
            "corrupt",
            f"dsx: an unreadable LM cache entry in {self.disk_dir} was ignored and removed "
            f"({type(exc).__name__}: {exc}). Further ones are removed silently.",
        )
        with contextlib.suppress(Exception):  # else the fresh answer overwrites it
            disk.delete(key, retry=False)

    # -- faults of the database ---------------------------------------------------------
    def _trouble(self, exc: BaseException) -> bool:
        """Handle a lock held by another process or a corrupt database; ``False`` for
        anything else."""
        if _cache_disk.is_lock(exc):
            self._skip_until = time.monotonic() + LOCK_RETRY_AFTER
            _warn_once(
                "lock",
                f"dsx: the LM disk cache at {self.disk_dir} is locked by another process "
                f"(waited {self.lock_timeout:g}s); LM calls go on without the disk cache and "
                f"try it again after {LOCK_RETRY_AFTER:g}s. Further waits are not reported. "
                "(dsx.configure_cache(lock_timeout=...) sets the wait.)",
            )
            return True
        if _cache_disk.is_corrupt(exc):
            self._repair(exc)
            return True
        return False

    def _repair(self, exc: BaseException) -> None:
        """Move a corrupt database aside and start an empty one (once per cache)."""
        db = self.disk_dir / _cache_disk.DB_NAME
        with self._disk_lock:
            self._close_disk()
            if self._repaired:
                self._give_up(
                    f"dsx: the LM disk cache database {db} is corrupt ({exc}) again after it "
                    "was rebuilt; caching in memory only in this process. Check the disk, "
                    f"or remove {self.disk_dir} to start afresh."
                )
                return
            self._repaired = True
            try:
                # Another process may have rebuilt it already: a healthy file stays.
                if _cache_disk.damaged(self.disk_dir, self.lock_timeout):
                    aside: Path | None = _cache_disk.move_aside(self.disk_dir)
                else:
                    aside = None
            except FileNotFoundError:  # another process moved it first
                aside = None
            except OSError as err:
                self._give_up(
                    f"dsx: the LM disk cache database {db} is corrupt ({exc}) and cannot be "
                    f"moved aside ({err}); caching in memory only. Delete {db} to repair it."
                )
                return
            try:
                self._disk = self._open()
            except Exception as err:
                self._give_up(
                    f"dsx: the LM disk cache database {db} was corrupt ({exc}) and could not "
                    f"be rebuilt ({type(err).__name__}: {err}); caching in memory only."
                )
                return
        if aside is None:  # rebuilt by another process meanwhile: nothing was lost here
            return
        warnings.warn(
            f"dsx: the LM disk cache database {db} was corrupt ({exc}); moved it aside to "
            f"{aside} and started an empty cache, so answers cached before are not reused. "
            f"Delete {aside.name} once you no longer need it.",
            RuntimeWarning,
            stacklevel=4,
        )

    def _give_up(self, message: str) -> None:
        self._disk_failed = True
        self._close_disk()
        _warn_once("disk", message)

    def _close_disk(self) -> None:
        with self._disk_lock:
            if self._disk is not None:
                with contextlib.suppress(Exception):
                    self._disk.close()
                self._disk = None

    # -- maintenance --------------------------------------------------------------------
    def __len__(self) -> int:
        """Entries in the memory layer."""
        return len(self._memory)

    def clear(self, *, memory: bool = True, disk: bool = True) -> None:
        """Drop every entry from the chosen layers.

        Like reads and writes, clearing the disk layer waits ``lock_timeout`` seconds at
        most for a lock another process holds (before, it retried for as long as the lock
        was held).

        Raises:
            CacheLockedError: the disk layer stayed locked. The memory layer is cleared;
                the disk layer may be partly cleared: call ``clear()`` again once the other
                process is done, or raise ``lock_timeout``.
        """
        if memory:
            with self._lock:
                self._memory.clear()
        if not disk or not self.enable_disk or self._disk_failed:
            return
        try:
            with self._disk_lock:  # an explicit clear is tried even while reads skip a lock
                if self._disk is None:
                    self._disk = self._open()
                self._disk.clear(retry=False)
        except Exception as exc:
            if _cache_disk.is_lock(exc):
                raise CacheLockedError(
                    f"dsx: could not clear the LM disk cache at {self.disk_dir}: another "
                    f"process held its lock for more than {self.lock_timeout:g}s (lock_timeout). "
                    "It may be partly cleared; call clear() again once that process is done."
                ) from None
            if _cache_disk.is_corrupt(exc):
                self._repair(exc)  # the damaged database is moved aside: nothing is left
                return
            raise

    def close(self) -> None:
        """Close the disk layer's database handle (it reopens on next use)."""
        self._close_disk()

    def __repr__(self) -> str:
        disk = str(self.disk_dir) if self.enable_disk else "off"
        memory = f"{len(self._memory)}/{self.memory_max_entries}" if self.enable_memory else "off"
        return f"<dsx Cache memory={memory} disk={disk}>"


_cache: Cache | None = None
_cache_lock = threading.Lock()


def get_cache() -> Cache:
    """The process-wide LM cache, created on first use."""
    global _cache
    if _cache is None:
        with _cache_lock:
            if _cache is None:
                _cache = Cache()
    return _cache


def configure_cache(
    *,
    enable_memory: bool = True,
    enable_disk: bool = True,
    disk_dir: str | os.PathLike[str] | None = None,
    disk_size_limit: int = DEFAULT_DISK_SIZE_LIMIT,
    memory_max_entries: int = DEFAULT_MEMORY_MAX_ENTRIES,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    enable_memory_cache: bool | None = None,
    enable_disk_cache: bool | None = None,
    disk_cache_dir: str | os.PathLike[str] | None = None,
    disk_size_limit_bytes: int | None = None,
) -> Cache:
    """Replace the process-wide LM cache (the old one's entries stay on disk).

    DSPy's keyword names (``enable_memory_cache``, ``enable_disk_cache``,
    ``disk_cache_dir``, ``disk_size_limit_bytes``) are accepted for ``enable_memory``,
    ``enable_disk``, ``disk_dir`` and ``disk_size_limit``; giving both names of one setting
    with different values is an error.

    Args:
        enable_memory: keep recent responses in memory.
        enable_disk: persist responses on disk, shared across runs and processes.
        disk_dir: the disk layer's directory (default ``$DSX_CACHE_DIR`` or ``~/.cache/dsx``).
        disk_size_limit: bytes the disk layer may use.
        memory_max_entries: responses kept in memory.
        lock_timeout: seconds an LM call waits for the disk cache when another process
            holds its lock, before it goes on without it.

    Returns:
        The new cache.

    Example:
        >>> dsx.configure_cache(enable_disk=False)  # memory only, nothing written
    """
    global _cache
    enable_memory = _alias("enable_memory", enable_memory, True, enable_memory_cache)
    enable_disk = _alias("enable_disk", enable_disk, True, enable_disk_cache)
    disk_dir = _alias("disk_dir", disk_dir, None, disk_cache_dir)
    disk_size_limit = _alias(
        "disk_size_limit", disk_size_limit, DEFAULT_DISK_SIZE_LIMIT, disk_size_limit_bytes
    )
    new = Cache(
        enable_memory=enable_memory,
        enable_disk=enable_disk,
        disk_dir=disk_dir,
        disk_size_limit=disk_size_limit,
        memory_max_entries=memory_max_entries,
        lock_timeout=lock_timeout,
    )
    with _cache_lock:
        old, _cache = _cache, new
    if old is not None:
        old.close()
    return new


_DSPY_NAMES = {
    "enable_memory": "enable_memory_cache",
    "enable_disk": "enable_disk_cache",
    "disk_dir": "disk_cache_dir",
    "disk_size_limit": "disk_size_limit_bytes",
}


def _alias(name: str, value: Any, default: Any, dspy_value: Any) -> Any:
    """``value``, or the DSPy-named ``dspy_value`` when that one was given."""
    if dspy_value is None:
        return value
    if value != default and value != dspy_value:
        raise ValueError(
            f"configure_cache got {name}={value!r} and {_DSPY_NAMES[name]}={dspy_value!r}, "
            f"two names for one setting; pass only one ({_DSPY_NAMES[name]} is DSPy's name)"
        )
    return dspy_value
