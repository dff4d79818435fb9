from __future__ import annotations

import asyncio
import threading

import dsx


def test_configure_sets_defaults_and_context_overrides_then_restores():
    dsx.configure(lm="default-lm", num_threads=3)
    assert dsx.settings.lm == "default-lm"
    with dsx.context(lm="ctx-lm"):
        assert dsx.settings.lm == "ctx-lm" and dsx.settings.num_threads == 3
        with dsx.context(num_threads=9):
            assert dsx.settings.lm == "ctx-lm" and dsx.settings.num_threads == 9
        assert dsx.settings.num_threads == 3
    assert dsx.settings.lm == "default-lm"


def test_threads_open_their_own_contexts_in_isolation():
    dsx.configure(lm="default")
    barrier = threading.Barrier(8)
    seen = {}

    def worker(i):
        with dsx.context(lm=f"lm{i}"):
            barrier.wait()
            seen[i] = dsx.settings.lm
        seen[f"after{i}"] = dsx.settings.lm

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(seen[i] == f"lm{i}" for i in range(8))
    assert all(seen[f"after{i}"] == "default" for i in range(8))
    assert dsx.settings.lm == "default"


async def test_asyncio_tasks_are_isolated():
    async def task(i):
        with dsx.context(lm=i):
            await asyncio.sleep(0.001 * (5 - i))
            return dsx.settings.lm

    assert await asyncio.gather(*(task(i) for i in range(5))) == list(range(5))


def test_unknown_setting_is_a_clear_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no setting 'nope'"):
        _ = dsx.settings.nope
