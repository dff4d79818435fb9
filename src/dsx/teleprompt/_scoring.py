"""Scoring several candidate programs at once on the batch engine.

Instruction optimizers score many candidates on the same examples; running every
``(candidate, example)`` pair through one :func:`~dsx.runtime.parallel.run_concurrently`
keeps the engine full instead of waiting for each candidate's slowest example. Scores are
assembled per candidate in example order, so they never depend on completion order.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from dsx.runtime import _otel
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

__all__ = ["drive", "score_jobs", "score_programs"]

T = TypeVar("T")
ItemT = TypeVar("ItemT")


def drive(
    opt: Teleprompter,
    items: Sequence[ItemT],
    make: Callable[[Engine], Callable[[ItemT], Awaitable[T]]],
    *,
    desc: str,
    score: Callable[[T], float],
) -> Outcome[T]:
    """Run ``make(engine)`` on every item at the optimizer's concurrency, with a progress
    display (the mean ``score`` so far), its budget and its ``max_errors`` (else
    ``dsx.settings.max_errors``: that many failures raise :class:`BatchError`)."""
    engine = Engine(opt.concurrency)
    progress = opt.progress(len(items), desc)
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
    attributes = {
        "dsx.span.kind": "optimizer.trial",
        "dsx.optimizer": type(opt).__name__,
        "dsx.trial.description": desc,
        "dsx.trial.runs": len(items),
    }
    try:
        with _otel.span(f"trial {type(opt).__name__}", attributes) as span:
            outcome = run_coroutine_sync(
                lambda: run_concurrently(
                    one,
                    list(items),
                    concurrency=engine.concurrency,
                    max_errors=limit,
                    should_stop=opt.budget_exhausted,
                    on_done=on_done,
                )
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
    metric = opt.metric  # type: ignore[attr-defined]
    pairs = [(p, e) for p, (_, ex) in enumerate(jobs) for e in range(len(ex))]
    if not pairs:
        return [None] * len(jobs)
    inline = getattr(metric, "_dsx_inline", False) or inspect.iscoroutinefunction(metric)

    def make(engine: Engine) -> Callable[[tuple[int, int]], Awaitable[float]]:
        async def one(pair: tuple[int, int]) -> float:
            program, example = jobs[pair[0]][0], jobs[pair[0]][1][pair[1]]
            pred = await engine.call(program, (), example.inputs().to_dict())
            if inline:
                value = call_metric(metric, example, pred, None)
                if inspect.isawaitable(value):
                    value = await value
            else:
                value = await engine.in_thread(call_metric, metric, example, pred, None)
            return score_of(value)

        return one

    with context(**(overrides or {})):
        outcome = drive(opt, pairs, make, desc=desc, score=lambda value: value)
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
