"""The batch engine, dsx.Parallel and Module.batch."""

from __future__ import annotations

import asyncio

import pytest

import dsx
from dsx.runtime.parallel import BatchError, Parallel, run_concurrently


class Double(dsx.Module):
    def forward(self, x, y=0):
        if x == 3:
            raise ValueError("bad three")
        return x * 2 + y


def test_parallel_accepts_examples_dicts_tuples_and_plain_values():
    double = Double()
    pairs = [
        (double, dsx.Example(x=1, label=9).with_inputs("x")),
        (double, {"x": 2, "y": 1}),
        (double, (4, 1)),
        (double, 5),
        (lambda v: v + 1, 6),
    ]
    assert Parallel(num_threads=3)(pairs) == [2, 5, 9, 10, 7]


def test_parallel_reports_failures_and_stops_at_max_errors():
    double = Double()
    pairs = [(double, {"x": i}) for i in range(6)]
    results, failed, errors = Parallel(return_failed_examples=True)(pairs)
    assert (
        results == [0, 2, 4, None, 8, 10]
        and failed == [{"x": 3}]
        and isinstance(errors[0], ValueError)
    )
    with pytest.raises(BatchError, match=r"The batch stopped: max_errors=1 reached .*bad three"):
        Parallel(max_errors=1)(pairs)


async def test_parallel_acall_runs_async_modules_concurrently():
    in_flight = peak = 0

    class Slow(dsx.Module):
        async def aforward(self, x):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1
            return x

    slow = Slow()
    assert await Parallel(num_threads=5).acall([(slow, {"x": i}) for i in range(20)]) == list(
        range(20)
    )
    assert peak == 5


def test_batch_takes_examples_or_dicts_only():
    with pytest.raises(TypeError, match="batch\\(\\) takes Examples or dicts"):
        Double().batch([1, 2])
    assert Double().batch([{"x": 1}, dsx.Example(x=2).with_inputs("x")]) == [2, 4]


async def test_run_concurrently_starts_items_in_order_and_stops_when_asked():
    started: list[int] = []

    async def work(i):
        started.append(i)
        await asyncio.sleep(0)
        return i

    out = await run_concurrently(
        work,
        list(range(10)),
        concurrency=3,
        should_stop=lambda: "enough" if len(started) >= 4 else None,
    )
    assert started == [0, 1, 2, 3] and out.stopped == "enough"
    assert out.results[:4] == [0, 1, 2, 3] and out.num_done == 4 and not out.complete


async def test_run_concurrently_cancellation_keeps_the_outcome():
    from dsx.runtime.parallel import Outcome

    out: Outcome = Outcome(5)

    async def work(i):
        if i == 2:
            await asyncio.sleep(10)
        return i

    task = asyncio.ensure_future(run_concurrently(work, list(range(5)), concurrency=1, outcome=out))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert out.stopped == "interrupted" and out.results[:2] == [0, 1] and out.num_done == 2
