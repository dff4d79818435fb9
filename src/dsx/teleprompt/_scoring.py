"""Scoring several candidate programs at once on the batch engine.

Instruction optimizers score many candidates on the same examples; running every
``(candidate, example)`` pair through one :func:`~dsx.runtime.parallel.run_concurrently`
keeps the engine full instead of waiting for each candidate's slowest example. Scores are
assembled per candidate in example order, so they never depend on completion order.

The ``a``-prefixed coroutines do the same on the caller's event loop, so that an optimizer
can score some candidates while it proposes or scores others; shared :class:`Slots`
(``limiter``) then keep all of them within ``num_threads`` program runs at once.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from dsx.runtime import _otel
from dsx.runtime._progress import Progress
from dsx.runtime.example import Example
from dsx.runtime.metrics import call_metric, score_of
from dsx.runtime.module import Module
from dsx.runtime.parallel import (
    BatchError,
    Engine,
    Outcome,
    run_concurrently,
    run_coroutine_sync,
)
from dsx.runtime.settings import context, settings

if TYPE_CHECKING:
    from dsx.teleprompt.base import Teleprompter

__all__ = [
    "INLINE_METRIC_S",
    "InputsCache",
    "MetricCall",
    "Slots",
    "adrive",
    "ascore_jobs",
    "ascore_programs",
    "drive",
    "score_jobs",
    "score_programs",
]

T = TypeVar("T")
ItemT = TypeVar("ItemT")

#: A sync metric call that returns within this many seconds runs on the event loop (a
#: worker-thread hop costs more than a string comparison); once a call takes longer, that
#: metric's later calls in this optimizer go to worker threads, so that a slow metric (an
#: LM judge) holds the loop up once at most. Where it runs never changes what it returns.
INLINE_METRIC_S = 0.002


class MetricCall:
    """Calls a metric (or a scoring function around it) for one optimizer's batches.

    Coroutine functions are awaited, functions marked ``_dsx_inline`` (the built-ins) run
    on the loop, and any other sync function runs on the loop while it is fast (see
    :data:`INLINE_METRIC_S`), else on the engine's worker threads.
    """

    def __init__(
        self,
        opt: Teleprompter,
        fn: Callable[..., Any],
        metric: Any = None,
        *,
        inline: bool = False,
    ) -> None:
        metric = fn if metric is None else metric
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(metric)
        self.always_inline = inline or bool(getattr(metric, "_dsx_inline", False))
        # which metrics this optimizer found slow (kept across its batches)
        slow: set[int] = opt.__dict__.setdefault("_dsx_slow_metrics", set())
        self.slow = slow
        self.key = id(getattr(metric, "__func__", metric))

    async def __call__(self, engine: Engine, *args: Any) -> Any:
        if self.always_inline or self.is_async:
            value = self.fn(*args)
            return await value if inspect.isawaitable(value) else value
        if self.key in self.slow:
            return await engine.in_thread(self.fn, *args)
        start = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            if time.perf_counter() - start > INLINE_METRIC_S:
                self.slow.add(self.key)


class InputsCache:
    """Each example's inputs as call keywords, worked out once per batch (every candidate
    runs on the same examples)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[Example, dict[str, Any]]] = {}

    def __call__(self, example: Example) -> dict[str, Any]:
        made = self._made.get(id(example))
        if made is None or made[0] is not example:
            made = self._made[id(example)] = (example, example.inputs().to_dict())
        return made[1]  # unpacked into the call, so never changed by it


class Slots:
    """``size`` program-run slots shared by the batches of one optimizer run.

    A free slot goes to the waiting run of the lowest ``priority`` (then the longest
    waiting), so that an optimizer can finish its oldest work first (MIPROv2's earliest
    trial). A slot freed by a run is offered on the next turn of the loop, so the batch
    that freed it can take it for its next run if nothing more urgent waits. ``busy``
    counts the slots held. Bound to the event loop it is first used on.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.busy = 0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._offering = False

    async def acquire(self, priority: float = 0) -> None:
        self._drop_cancelled()
        if self.busy < self.size and (not self._waiting or priority < self._waiting[0][0]):
            self.busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), waiter))
        try:
            await waiter  # _offer() handed this run its slot
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as it was cancelled: pass it on
            raise

    def grow(self, extra: int) -> None:
        """``extra`` more slots (taken at once by runs waiting for one)."""
        self.size += max(0, extra)
        self._offer()

    def release(self) -> None:
        self.busy -= 1
        if self._waiting and not self._offering:
            self._offering = True
            asyncio.get_running_loop().call_soon(self._offer)

    def _offer(self) -> None:
        self._offering = False
        self._drop_cancelled()
        while self.busy < self.size and self._waiting:
            *_, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                self.busy += 1
                waiter.set_result(None)
            self._drop_cancelled()

    def _drop_cancelled(self) -> None:
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)


async def adrive(
    opt: Teleprompter,
    items: Sequence[ItemT],
    make: Callable[[Engine], Callable[[ItemT], Awaitable[T]]],
    *,
    desc: str,
    score: Callable[[T], float],
    limiter: Slots | None = None,
    priority: float = 0,
    quiet: bool = False,
) -> Outcome[T]:
    """Run ``make(engine)`` on every item at the optimizer's concurrency, with a progress
    display (the mean ``score`` so far; none when ``quiet``), its budget and its
    ``max_errors`` (else ``dsx.settings.max_errors``: that many failures raise
    :class:`BatchError`). With a ``limiter``, each run also holds one of its slots,
    asked for at ``priority`` (see :class:`Slots`)."""
    engine = Engine(opt.concurrency)
    progress = Progress(len(items), desc=desc, display=False) if quiet else None
    progress = progress or opt.progress(len(items), desc)
    limit = getattr(opt, "max_errors", None)
    limit = limit if limit is not None else settings.max_errors
    total = 0.0
    failed = ran = 0

    def on_done(index: int, value: T | None, exc: BaseException | None) -> None:
        nonlocal total, failed, ran
        ran += 1
        if exc is not None:
            failed += 1
        elif value is not None:
            total += score(value)
        progress.update(ran, score=100 * total / ran, errors=failed)

    one = make(engine)
    if limiter is not None:
        unlimited = one

        async def limited(item: ItemT) -> T:
            await limiter.acquire(priority)
            try:
                return await unlimited(item)
            finally:
                limiter.release()

        one = limited
    attributes = {
        "dsx.span.kind": "optimizer.trial",
        "dsx.optimizer": type(opt).__name__,
        "dsx.trial.description": desc,
        "dsx.trial.runs": len(items),
    }
    try:
        with _otel.span(f"trial {type(opt).__name__}", attributes) as span:
            outcome = await run_concurrently(
                one,
                list(items),
                concurrency=engine.concurrency,
                max_errors=limit,
                should_stop=opt.budget_exhausted,
                on_done=on_done,
            )
            if span is not None:
                span.set_attribute("dsx.trial.completed", outcome.num_done)
                span.set_attribute("dsx.trial.failed", failed)
                if ran:
                    span.set_attribute("dsx.trial.mean_score", round(100 * total / ran, 2))
    finally:
        engine.close()
    progress.close(f"{desc}: {outcome.num_done}/{len(items)} runs, {failed} failed")
    if outcome.stopped is not None and outcome.errors and opt.budget_exhausted() is None:
        first = outcome.errors[0][1]
        raise BatchError(f"{type(opt).__name__} stopped: {outcome.stopped}") from first
    return outcome


def drive(
    opt: Teleprompter,
    items: Sequence[ItemT],
    make: Callable[[Engine], Callable[[ItemT], Awaitable[T]]],
    *,
    desc: str,
    score: Callable[[T], float],
) -> Outcome[T]:
    """:func:`adrive` from sync code, on an event loop of its own."""
    return run_coroutine_sync(lambda: adrive(opt, items, make, desc=desc, score=score))


def score_programs(
    opt: Teleprompter,
    programs: Sequence[Module],
    examples: Sequence[Example],
    *,
    desc: str,
    overrides: dict[str, Any] | None = None,
) -> list[float | None]:
    """Each program's mean metric on ``examples`` in percent (two decimals).

    A program whose examples did not all run (the budget stopped the batch) scores
    ``None``. A failing run scores 0; ``max_errors`` failures (the optimizer's, else
    ``dsx.settings.max_errors``) stop the batch with a :class:`BatchError`.
    """
    return score_jobs(opt, [(p, examples) for p in programs], desc=desc, overrides=overrides)


async def ascore_programs(
    opt: Teleprompter,
    programs: Sequence[Module],
    examples: Sequence[Example],
    *,
    desc: str,
    overrides: dict[str, Any] | None = None,
    limiter: Slots | None = None,
    quiet: bool = False,
) -> list[float | None]:
    """:func:`score_programs` on the running event loop (see :func:`adrive`)."""
    return await ascore_jobs(
        opt,
        [(p, examples) for p in programs],
        desc=desc,
        overrides=overrides,
        limiter=limiter,
        quiet=quiet,
    )


def score_jobs(
    opt: Teleprompter,
    jobs: Sequence[tuple[Module, Sequence[Example]]],
    *,
    desc: str,
    overrides: dict[str, Any] | None = None,
) -> list[float | None]:
    """:func:`score_programs` where each program has its own examples (minibatches).

    All ``(program, example)`` pairs share one engine, in job order, so several trials
    keep it full; each job's score depends only on its own results.
    """
    if not any(examples for _, examples in jobs):
        return [None] * len(jobs)
    return run_coroutine_sync(lambda: ascore_jobs(opt, jobs, desc=desc, overrides=overrides))


async def ascore_jobs(
    opt: Teleprompter,
    jobs: Sequence[tuple[Module, Sequence[Example]]],
    *,
    desc: str,
    overrides: dict[str, Any] | None = None,
    limiter: Slots | None = None,
    priority: float = 0,
    quiet: bool = False,
) -> list[float | None]:
    """:func:`score_jobs` on the running event loop (see :func:`adrive`)."""
    metric = opt.metric  # type: ignore[attr-defined]
    pairs = [(p, e) for p, (_, ex) in enumerate(jobs) for e in range(len(ex))]
    if not pairs:
        return [None] * len(jobs)
    measure = MetricCall(opt, lambda ex, pred: call_metric(metric, ex, pred, None), metric)
    inputs_of = InputsCache()

    def make(engine: Engine) -> Callable[[tuple[int, int]], Awaitable[float]]:
        async def one(pair: tuple[int, int]) -> float:
            program, example = jobs[pair[0]][0], jobs[pair[0]][1][pair[1]]
            pred = await engine.call(program, (), inputs_of(example))
            value = await measure(engine, example, pred)
            if inspect.isawaitable(value):
                value = await value
            return score_of(value)

        return one

    with context(**(overrides or {})):
        outcome = await adrive(
            opt,
            pairs,
            make,
            desc=desc,
            score=lambda value: value,
            limiter=limiter,
            priority=priority,
            quiet=quiet,
        )
    scores: list[float | None] = []
    start = 0
    for _, examples in jobs:
        chunk = range(start, start + len(examples))
        start += len(examples)
        if not examples or not all(outcome.done[i] for i in chunk):
            scores.append(None)
            continue
        values = [outcome.results[i] or 0.0 for i in chunk]
        scores.append(round(100 * sum(values) / len(examples), 2))
    return scores
