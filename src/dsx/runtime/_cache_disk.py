"""The disk layer of the LM cache, below :class:`dsx.runtime.cache.Cache`: opening the
``diskcache`` database with a bounded lock wait, telling a lock from a corrupt file,
moving a corrupt database aside, and the checksummed entry format.

Kept apart from :mod:`dsx.runtime.cache` so that the cache's policy (what to do on a
miss, a lock, a corrupt file) reads in one place, and ``diskcache``/``sqlite3`` stay
imported on first use only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = [
    "DB_NAME",
    "ChecksumError",
    "damaged",
    "decode_entry",
    "encode_entry",
    "is_corrupt",
    "is_lock",
    "move_aside",
    "open_disk",
    "payload_text",
    "valid_entry",
]

#: The SQLite file diskcache keeps in its directory.
DB_NAME = "cache.db"

_disk_class: type | None = None


class ChecksumError(ValueError):
    """A stored entry does not match its checksum (changed, garbled, or moved to another key)."""


def _checksum(key: str, payload: str) -> str:
    return hashlib.sha256(f"{key}\n{payload}".encode("utf-8", "surrogatepass")).hexdigest()


def payload_text(value: Any) -> str:
    """``value`` as JSON text SQLite can store: a lone surrogate (an escaped one in a
    reply) is written as its JSON escape, which reads back as the same string."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True)
    return text


def encode_entry(key: str, payload: str) -> str:
    """The stored text of an entry: a SHA-256 of the key and the JSON payload, a newline,
    the payload. Binding the key makes a valid entry copied under another key a miss."""
    return f"{_checksum(key, payload)}\n{payload}"


def decode_entry(key: str, raw: Any) -> str:
    """The JSON payload of a stored entry; raises :class:`ChecksumError` when it does not
    check out."""
    if not isinstance(raw, str):
        raise ChecksumError(f"checksum missing: a {type(raw).__name__} value, not dsx's text")
    digest, sep, payload = raw.partition("\n")
    if not sep or len(digest) != 64:
        raise ChecksumError(f"checksum missing in {raw[:80]!r}")
    if digest != _checksum(key, payload):
        raise ChecksumError("checksum mismatch: the entry was changed or garbled")
    return payload


def valid_entry(value: Any) -> bool:
    """Whether a decoded payload has the shape dsx writes (outputs, usage, model, cost)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("outputs"), list)
        and all(isinstance(o, str) for o in value["outputs"])
        and isinstance(value.get("usage", {}), dict)
        and isinstance(value.get("model", ""), str)
        and isinstance(value.get("cost"), int | float | type(None))
    )


def json_only_disk() -> type:
    """A ``diskcache.Disk`` that refuses to unpickle values.

    dsx stores text only; a pickled value in the directory was written by someone else,
    and unpickling it would run their code. It is reported as an unreadable entry.
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


def is_lock(exc: BaseException) -> bool:
    """Whether ``exc`` means another connection holds the database lock."""
    import sqlite3

    import diskcache

    if isinstance(exc, diskcache.Timeout):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def is_corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` means the database file itself is damaged (not a lock, not I/O)."""
    import sqlite3

    # OperationalError (locks, I/O, permissions) subclasses DatabaseError; corruption
    # ("file is not a database", "database disk image is malformed") does not.
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _probe(directory: Path, lock_timeout: float) -> None:
    """Take and release the write lock of an existing database, waiting ``lock_timeout``.

    ``diskcache.Cache()`` retries a locked database for 60 s while it opens; this check
    bounds that wait (and finds a corrupt file) first. It raises what SQLite raises.
    """
    import sqlite3

    db = directory / DB_NAME
    if not db.is_file():
        return
    con = sqlite3.connect(str(db), timeout=lock_timeout, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    finally:
        con.close()


def open_disk(directory: Path, *, size_limit: int, lock_timeout: float) -> Any:
    """Open the ``diskcache.Cache`` in ``directory``; a lock is waited for ``lock_timeout``
    seconds at most (then SQLite's error is raised, see :func:`is_lock`)."""
    import diskcache

    directory.mkdir(parents=True, exist_ok=True)
    _probe(directory, lock_timeout)
    return diskcache.Cache(
        str(directory),
        size_limit=size_limit,
        timeout=lock_timeout,
        disk=json_only_disk(),
    )


def damaged(directory: Path, lock_timeout: float) -> bool:
    """Whether the database in ``directory`` fails SQLite's ``quick_check`` (a missing
    file is not damaged: another process may have moved it aside already)."""
    import sqlite3

    db = directory / DB_NAME
    if not db.is_file():
        return False
    try:
        con = sqlite3.connect(str(db), timeout=lock_timeout, isolation_level=None)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # locked, unreadable: not known to be damaged
        return False
    except sqlite3.DatabaseError:
        return True
    return rows != [("ok",)]


def move_aside(directory: Path) -> Path:
    """Rename a corrupt ``cache.db`` (and its ``-wal``/``-shm`` files) to
    ``cache.db.corrupt-<time>``; returns the new name. Processes that have it open keep
    their handle to the old file."""
    db = directory / DB_NAME
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = db.with_name(f"{DB_NAME}.corrupt-{stamp}-{os.getpid()}")
    os.replace(db, target)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(db.with_name(DB_NAME + suffix), target.with_name(target.name + suffix))
    return target
