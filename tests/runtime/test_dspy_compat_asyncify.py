"""dsx.asyncify and dsx.syncify (issue 21, item 6): DSPy's helpers between sync and async."""

from __future__ import annotations

import asyncio
import threading

import pytest

import dsx
from dsx.errors import DsxError
from dsx.testing import DummyLM


class Echo(dsx.Module):
    def __init__(self):
        self.predict = dsx.Predict("question -> answer")

    def forward(self, question):
        return self.predict(question=question)


class AsyncOnly(dsx.Module):
    def __init__(self):
        self.predict = dsx.Predict("question -> answer")

    async def aforward(self, question):
        return await self.predict.acall(question=question)


async def test_asyncify_awaits_a_module_with_the_caller_s_settings():
    lm = DummyLM([{"answer": "a1"}, {"answer": "a2"}])
    run = dsx.asyncify(Echo())
    with dsx.context(lm=lm):
        first, second = await asyncio.gather(run(question="q1"), run(question="q2"))
    assert {first.answer, second.answer} == {"a1", "a2"}


async def test_asyncify_runs_plain_callables_in_bounded_worker_threads():
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def work(x):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        assert dsx.settings.lm == "the caller's"  # the context followed the call
        release.wait(timeout=10)
        with lock:
            running -= 1
        return x * 2

    run = dsx.asyncify(work)
    with dsx.context(lm="the caller's", async_max_workers=2):
        tasks = [asyncio.create_task(run(i)) for i in range(5)]
        while True:  # wait until the limiter is full, then let them all finish
            await asyncio.sleep(0.01)
            with lock:
                if running == 2:
                    break
        release.set()
        results = await asyncio.gather(*tasks)
    assert results == [0, 2, 4, 6, 8] and peak == 2


def test_asyncify_refuses_what_it_cannot_call():
    with pytest.raises(TypeError, match="needs a module or a callable"):
        dsx.asyncify(42)


async def test_syncify_makes_an_async_module_callable_inside_a_running_loop():
    program = AsyncOnly()
    with dsx.context(lm=DummyLM([{"answer": "x"}, {"answer": "y"}])):
        with pytest.raises(DsxError, match="only defines aforward"):
            program(question="q")  # without syncify, a running loop refuses
        assert dsx.syncify(program) is program
        assert program(question="q").answer == "x"
        wrapper = dsx.syncify(AsyncOnly(), in_place=False)
        assert isinstance(wrapper.program, AsyncOnly)
        assert wrapper(question="q").answer == "y"


def test_syncify_from_plain_sync_code_and_its_errors():
    program = dsx.syncify(AsyncOnly())
    with dsx.context(lm=DummyLM([{"answer": "z"}])):
        assert program(question="q").answer == "z"
    with pytest.raises(TypeError, match="no aforward"):
        dsx.syncify(Echo())
    with pytest.raises(TypeError, match="needs a dsx.Module"):
        dsx.syncify(lambda: None)
