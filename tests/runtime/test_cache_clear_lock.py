"""`Cache.clear` under another process's lock (issue 14, item 6): bounded by lock_timeout
like reads and writes, then a CacheLockedError that says what to do (before: it retried
for as long as the lock was held). Also: the split of the key recipe keeps its names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dsx.errors import CacheLockedError, DsxError
from dsx.runtime import cache as cache_mod
from dsx.runtime.cache import Cache

#: How long the test waits for clear() to come back before calling it hung (not a timing
#: assertion: the lock is held for far longer, and a bounded clear returns in ~lock_timeout).
HANG = 60


def _hold_lock(folder: Path) -> subprocess.Popen[str]:
    script = textwrap.dedent(
        f"""
        import sqlite3, time
        con = sqlite3.connect({str(folder / "cache.db")!r}, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep(600)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _clear_in_thread(cache: Cache) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            cache.clear()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG)
    assert not worker.is_alive(), "Cache.clear() waited on the lock without bound"
    return outcome[0]


@pytest.mark.parametrize("opened", [True, False], ids=["open", "not-yet-open"])
def test_clear_gives_up_on_a_held_lock_with_a_clear_error(tmp_path, opened):
    folder = tmp_path / "cache"
    Cache(disk_dir=folder).put("seed", {"outputs": ["x"]})  # the database exists
    cache = Cache(disk_dir=folder, lock_timeout=0.2)
    cache.put("k", {"outputs": ["y"]})
    if not opened:
        cache.close()
    holder = _hold_lock(folder)
    try:
        error = _clear_in_thread(cache)
    finally:
        holder.kill()
        holder.wait()
    assert isinstance(error, CacheLockedError) and isinstance(error, DsxError | TimeoutError)
    assert str(folder) in str(error) and "clear() again" in str(error)
    assert len(cache) == 0  # the memory layer is cleared all the same
    cache.clear()  # the lock is gone: now it works
    assert cache.get("seed") is None and cache.get("k") is None


def test_clear_works_while_reads_skip_a_recently_locked_disk(tmp_path):
    folder = tmp_path / "cache"
    cache = Cache(disk_dir=folder)
    cache.put("k", {"outputs": ["y"]})
    cache.close()
    cache._skip_until = float("inf")  # as after a lock wait ran out
    cache.clear()  # an explicit clear still reaches the disk layer
    cache._skip_until = 0.0
    assert cache.get("k") is None


def test_the_key_recipe_is_still_reachable_from_the_cache_module():
    from dsx.runtime import _cache_key

    assert cache_mod.request_key is _cache_key.request_key
    assert cache_mod.NON_SEMANTIC_PARAMS is _cache_key.NON_SEMANTIC_PARAMS
    key = cache_mod.request_key(model="m", messages=[{"role": "user", "content": "x"}], params={})
    assert len(key) == 64
