"""The LM response cache: an in-memory LRU in front of an on-disk ``diskcache.Cache``.

One process-wide :class:`Cache` is created on first use (so ``import dsx`` never imports
diskcache); :func:`configure_cache` replaces it. :class:`dsx.LM` looks a request up by
:func:`request_key` — a SHA-256 of the request's *meaning* (model, messages, sampling
parameters, ``rollout_id``), never of endpoints, keys, headers, timeouts or retry counts.

Entries are plain JSON text (``outputs``, ``usage``, ``cost``, ``model``), so reading the
cache never unpickles anything. An unreadable entry is a miss: it is deleted, and the
first one in a process is reported with a :class:`RuntimeWarning`. Several processes may
share one directory (diskcache locks through SQLite).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import diskcache

__all__ = [
    "DEFAULT_DISK_SIZE_LIMIT",
    "DEFAULT_MEMORY_MAX_ENTRIES",
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

#: Request parameters that do not change what the model answers: left out of the key.
NON_SEMANTIC_PARAMS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "headers",
        "extra_headers",
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        "cache",
        "stream",
        "stream_options",
        "metadata",
        "rollout_id",
    }
)

# Bump when the key recipe or the entry format changes: old entries then simply miss.
_KEY_VERSION = "dsx-lm-1"
_warned_corrupt = False
_warned_disk = False
_warn_lock = threading.Lock()


def default_cache_dir() -> Path:
    """``$DSX_CACHE_DIR``, else ``~/.cache/dsx``."""
    env = os.environ.get("DSX_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dsx"


def _json_default(value: Any) -> Any:
    # Pydantic models (instances and classes, e.g. a response_format) and other objects:
    # something stable where possible, repr otherwise (a repr with an address only
    # makes the request uncacheable in practice, never wrong).
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"__schema__": value.model_json_schema()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def request_key(
    *,
    model: str,
    messages: Any,
    params: dict[str, Any],
    rollout_id: Any = None,
    model_type: str = "chat",
) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON.

    ``params`` listed in :data:`NON_SEMANTIC_PARAMS` (endpoints, secrets, timeouts, retry
    counts, streaming) and ``None`` values are left out, so they never split or leak into
    keys. A ``rollout_id`` other than ``None`` is part of the key: distinct ids give
    distinct cached samples.
    """
    payload: dict[str, Any] = {
        "v": _KEY_VERSION,
        "model": model,
        "model_type": model_type,
        "messages": messages,
        "params": {
            k: v for k, v in params.items() if k not in NON_SEMANTIC_PARAMS and v is not None
        },
    }
    if rollout_id is not None:
        payload["rollout_id"] = rollout_id
    blob = json.dumps(
        payload,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _valid_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("outputs"), list)
        and all(isinstance(o, str) for o in value["outputs"])
        and isinstance(value.get("usage", {}), dict)
        and isinstance(value.get("model", ""), str)
        and isinstance(value.get("cost"), int | float | type(None))
    )


_disk_class: type | None = None


def _json_only_disk() -> type:
    """A ``diskcache.Disk`` that refuses to unpickle values.

    dsx stores JSON text only; a pickled value in the directory was written by someone
    else, and unpickling it would run their code. It is reported as a corrupt entry.
    """
    global _disk_class
    if _disk_class is None:
        import diskcache

        class _JSONOnlyDisk(diskcache.Disk):
            def fetch(self, mode: int, filename: str, value: Any, read: bool) -> Any:
                if mode == diskcache.core.MODE_PICKLE:
                    raise ValueError("a pickled value (dsx stores JSON text only)")
                return super().fetch(mode, filename, value, read)

        _disk_class = _JSONOnlyDisk
    return _disk_class


def _warn_once(kind: str, message: str) -> None:
    global _warned_corrupt, _warned_disk
    with _warn_lock:
        if kind == "corrupt":
            if _warned_corrupt:
                return
            _warned_corrupt = True
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
    """

    def __init__(
        self,
        *,
        enable_memory: bool = True,
        enable_disk: bool = True,
        disk_dir: str | os.PathLike[str] | None = None,
        disk_size_limit: int = DEFAULT_DISK_SIZE_LIMIT,
        memory_max_entries: int = DEFAULT_MEMORY_MAX_ENTRIES,
    ) -> None:
        if memory_max_entries < 1:
            raise ValueError(f"memory_max_entries must be >= 1, got {memory_max_entries}")
        self.enable_memory = enable_memory
        self.enable_disk = enable_disk
        self.disk_dir = Path(disk_dir).expanduser() if disk_dir else default_cache_dir()
        self.disk_size_limit = disk_size_limit
        self.memory_max_entries = memory_max_entries
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._disk: diskcache.Cache | None = None
        self._disk_failed = False

    # -- layers -------------------------------------------------------------------------
    @property
    def disk(self) -> diskcache.Cache | None:
        """The ``diskcache.Cache`` (opened on first use), or ``None`` when disabled/broken."""
        if not self.enable_disk or self._disk_failed:
            return None
        if self._disk is None:
            with self._lock:
                if self._disk is None and not self._disk_failed:
                    try:
                        import diskcache

                        self._disk = diskcache.Cache(
                            str(self.disk_dir),
                            size_limit=self.disk_size_limit,
                            disk=_json_only_disk(),
                        )
                    except Exception as exc:  # unwritable dir, broken database, ...
                        self._disk_failed = True
                        _warn_once(
                            "disk",
                            f"dsx: the LM disk cache at {self.disk_dir} cannot be opened "
                            f"({type(exc).__name__}: {exc}); caching in memory only. Set "
                            "DSX_CACHE_DIR or dsx.configure_cache(disk_dir=...) to a "
                            "writable directory.",
                        )
                        return None
        return self._disk

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or ``None`` on a miss."""
        if self.enable_memory:
            with self._lock:
                value = self._memory.get(key)
                if value is not None:
                    self._memory.move_to_end(key)
                    return value
        disk = self.disk
        if disk is None:
            return None
        try:
            raw = disk.get(key, default=None, retry=True)
        except Exception as exc:  # unpicklable/garbled value, broken database file
            self._drop_corrupt(disk, key, exc)
            return None
        if raw is None:
            return None
        try:
            value = json.loads(raw) if isinstance(raw, str | bytes) else None
        except ValueError as exc:
            self._drop_corrupt(disk, key, exc)
            return None
        if not isinstance(value, dict) or not _valid_entry(value):
            self._drop_corrupt(disk, key, ValueError(f"unexpected entry {str(raw)[:80]!r}"))
            return None
        if self.enable_memory:
            self._remember(key, value)
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` (a JSON-able dict) under ``key`` in every enabled layer."""
        if self.enable_memory:
            self._remember(key, value)
        disk = self.disk
        if disk is not None:
            try:
                disk.set(key, json.dumps(value, ensure_ascii=False), retry=True)
            except Exception as exc:  # a full disk must not fail the LM call
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
            disk.delete(key, retry=True)

    # -- maintenance --------------------------------------------------------------------
    def __len__(self) -> int:
        """Entries in the memory layer."""
        return len(self._memory)

    def clear(self, *, memory: bool = True, disk: bool = True) -> None:
        """Drop every entry from the chosen layers."""
        if memory:
            with self._lock:
                self._memory.clear()
        if disk and self.disk is not None:
            self.disk.clear(retry=True)

    def close(self) -> None:
        """Close the disk layer's database handle (it reopens on next use)."""
        with self._lock:
            if self._disk is not None:
                self._disk.close()
                self._disk = None

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
) -> Cache:
    """Replace the process-wide LM cache (the old one's entries stay on disk).

    Args:
        enable_memory: keep recent responses in memory.
        enable_disk: persist responses on disk, shared across runs and processes.
        disk_dir: the disk layer's directory (default ``$DSX_CACHE_DIR`` or ``~/.cache/dsx``).
        disk_size_limit: bytes the disk layer may use.
        memory_max_entries: responses kept in memory.

    Returns:
        The new cache.

    Example:
        >>> dsx.configure_cache(enable_disk=False)  # memory only, nothing written
    """
    global _cache
    new = Cache(
        enable_memory=enable_memory,
        enable_disk=enable_disk,
        disk_dir=disk_dir,
        disk_size_limit=disk_size_limit,
        memory_max_entries=memory_max_entries,
    )
    with _cache_lock:
        old, _cache = _cache, new
    if old is not None:
        old.close()
    return new
