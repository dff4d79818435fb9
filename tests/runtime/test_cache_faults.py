"""The LM disk cache under faults (issue 14, item 6): another process holding the SQLite
write lock, a corrupt database file, a tampered entry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsx.runtime import cache as cache_mod
from dsx.runtime.cache import Cache

ENTRY = {"outputs": ["4"], "usage": {"total_tokens": 3}, "cost": 0.5, "model": "openai/m"}
#: How long the other process holds the lock: far longer than any bound dsx may wait.
HOLD_SECONDS = 25


@pytest.fixture(autouse=True)
def _warn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_warned_corrupt", "_warned_disk", "_warned_lock"):
        monkeypatch.setattr(cache_mod, name, False, raising=False)


@pytest.fixture
def hold_lock(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that holds the write lock of ``tmp_path/cache.db``."""
    Cache(disk_dir=tmp_path).put("k1", ENTRY)  # the database exists, in WAL mode
    script = textwrap.dedent(
        f"""
        import sqlite3, sys, time
        con = sqlite3.connect({str(tmp_path / "cache.db")!r}, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep({HOLD_SECONDS})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def lock_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "locked by another process" in str(w.message)]


def test_a_held_write_lock_does_not_stall_calls(
    tmp_path: Path, hold_lock: subprocess.Popen[str]
) -> None:
    cache = Cache(disk_dir=tmp_path)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.put("k2", ENTRY)  # a write needs the lock: bounded wait, then uncached
        cache.put("k3", ENTRY)
        assert cache.get("k2") == ENTRY  # the memory layer still works
        assert Cache(disk_dir=tmp_path).get("k1") in (ENTRY, None)  # opening is bounded too
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"waited {elapsed:.1f}s for a lock held {HOLD_SECONDS}s"
    assert hold_lock.poll() is None, "the lock was held throughout"
    found = lock_warnings(caught)
    assert len(found) == 1, [str(w.message) for w in caught]
    assert str(tmp_path) in found[0] and "without the disk cache" in found[0]
    assert not any("corrupt" in str(w.message) for w in caught)


def test_the_disk_layer_is_used_again_once_the_lock_is_released(
    tmp_path: Path, hold_lock: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_mod, "LOCK_RETRY_AFTER", 0.0)
    cache = Cache(disk_dir=tmp_path, lock_timeout=0.2)
    with pytest.warns(RuntimeWarning, match="locked by another process"):
        cache.put("k2", ENTRY)
    hold_lock.kill()
    hold_lock.wait()
    cache.put("k2", ENTRY)
    assert Cache(disk_dir=tmp_path, enable_memory=False).get("k2") == ENTRY


def test_a_corrupt_database_is_moved_aside_and_rebuilt_once(tmp_path: Path) -> None:
    first = Cache(disk_dir=tmp_path)
    first.put("k", ENTRY)
    first.close()
    db = tmp_path / "cache.db"
    for extra in tmp_path.glob("cache.db-*"):
        extra.unlink()
    db.write_bytes(b"this is not an SQLite database " * 200)

    broken = Cache(disk_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match="corrupt") as caught:
        assert broken.get("k") is None  # its entries are lost, said so
    message = str(caught[0].message)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("cache.db.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "moved" in message and aside[0].name in message
    assert "DSX_CACHE_DIR" not in message  # the directory is fine: no wrong advice
    assert broken.disk is not None
    broken.put("k", ENTRY)
    broken.close()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt database is healthy: no more warnings
        assert Cache(disk_dir=tmp_path).get("k") == ENTRY  # later runs hit again


def test_a_tampered_entry_is_a_miss_and_deleted(tmp_path: Path) -> None:
    cache = Cache(disk_dir=tmp_path, enable_memory=False)
    cache.put("k", ENTRY)
    assert cache.disk is not None
    raw = cache.disk.get("k")
    assert isinstance(raw, str) and '"4"' in raw
    cache.disk.set("k", raw.replace('"4"', '"5"'))  # still valid JSON of the right shape
    with pytest.warns(RuntimeWarning, match="checksum"):
        assert cache.get("k") is None
    assert "k" not in cache.disk


def test_an_entry_moved_to_another_key_is_a_miss(tmp_path: Path) -> None:
    cache = Cache(disk_dir=tmp_path, enable_memory=False)
    cache.put("a", ENTRY)
    assert cache.disk is not None
    cache.disk.set("b", cache.disk.get("a"))  # a valid entry, but for another request
    with pytest.warns(RuntimeWarning, match="checksum"):
        assert cache.get("b") is None
    assert cache.get("a") == ENTRY
