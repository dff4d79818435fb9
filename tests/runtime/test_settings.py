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


def test_unknown_setting_names_are_refused_with_a_suggestion():
    import pytest

    with pytest.raises(dsx.UnknownSettingError, match="`num_thread`. Did you mean `num_threads`"):
        dsx.configure(num_thread=4)
    with pytest.raises(TypeError, match="Did you mean `lm`"), dsx.context(lmm=None):
        pass
    assert dsx.settings.num_threads == 8  # nothing was stored
    assert "num_thread" not in dsx.settings.snapshot()


def test_extensions_declare_their_settings():
    dsx.settings.declare("my_extension_flag", default=False)
    assert dsx.settings.my_extension_flag is False
    dsx.configure(my_extension_flag=True)
    with dsx.context(my_extension_flag="ctx"):
        assert dsx.settings.my_extension_flag == "ctx"
    assert dsx.settings.my_extension_flag is True
