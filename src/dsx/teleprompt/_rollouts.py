"""Traced runs of (program, example) pairs on the batch engine, for GEPA and SIMBA.

Where :func:`~dsx.teleprompt._scoring.score_programs` keeps only each program's mean,
these optimizers need every run: the prediction, the score, the metric's textual feedback
and the trace (which predictor saw which inputs and wrote which outputs). All pairs of one
call go through one :func:`~dsx.runtime.parallel.run_concurrently`, so the engine stays
full; results come back in job order, never in completion order.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsx.runtime.example import Example
from dsx.runtime.metrics import score_of
from dsx.runtime.module import Module
from dsx.runtime.parallel import BatchError, Engine, run_coroutine_sync
from dsx.runtime.settings import context
from dsx.teleprompt._scoring import InputsCache, MetricCall, Slots, adrive

if TYPE_CHECKING:
    from dsx.teleprompt.base import Teleprompter

__all__ = ["Rollout", "ScoreFn", "arun_rollouts", "run_rollouts", "score_and_feedback"]

#: ``(example, prediction, trace) -> (score, feedback or None)``.
ScoreFn = Callable[[Example, Any, list[Any]], tuple[float, str | None]]


@dataclass
class Rollout:
    """One run of a program on one example.

    Attributes:
        example: the example.
        prediction: what the program returned (``None`` when it raised).
        score: the metric's score (``failure_score`` when the run raised).
        feedback: the metric's textual feedback, if it gave any.
        trace: per predictor call, ``(predictor, inputs, outputs)`` in call order (what a
            metric gets as ``trace``).
        steps: the same calls as ``(predictor path, inputs, outputs)``, for this program's
            own predictors only.
        error: ``"Type: message"`` when the run raised.
    """

    example: Example
    prediction: Any
    score: float
    feedback: str | None = None
    trace: list[Any] = field(default_factory=list)
    steps: list[tuple[str, dict[str, Any], Any]] = field(default_factory=list)
    error: str | None = None


def score_and_feedback(value: Any) -> tuple[float, str | None]:
    """A metric's value as ``(score, feedback)``.

    Takes a number or bool, a :class:`~dsx.Prediction`/mapping with ``score`` (and
    ``feedback``), or a ``(score, feedback)`` pair.
    """
    if isinstance(value, Example | Mapping):
        if "score" not in value:
            raise BatchError(
                "The metric returned a record without `score`; return a number, "
                "dsx.Prediction(score=..., feedback=...) or (score, feedback)"
            )
        feedback = value.get("feedback")
        return score_of(value["score"]), (None if feedback is None else str(feedback))
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and not isinstance(value[1], int | float)
    ):
        feedback = value[1]
        return score_of(value[0]), (None if feedback is None else str(feedback))
    return score_of(value), None


def run_rollouts(
    opt: Teleprompter,
    jobs: Sequence[tuple[Module, Example]],
    *,
    score: ScoreFn,
    desc: str,
    inline: bool = False,
    failure_score: float = 0.0,
    overrides: dict[str, Any] | None = None,
) -> list[Rollout | None]:
    """Run every ``(program, example)`` job with tracing on and score it.

    A run that raises scores ``failure_score`` (its error is kept); ``max_errors`` failures
    (the optimizer's, else ``dsx.settings.max_errors``) raise :class:`BatchError`. Jobs the
    budget kept from starting are ``None``. ``score`` runs on the event loop when
    ``inline``, else as :class:`~dsx.teleprompt._scoring.MetricCall` decides.
    """
    if not jobs:
        return []
    return run_coroutine_sync(
        lambda: arun_rollouts(
            opt,
            jobs,
            score=score,
            desc=desc,
            inline=inline,
            failure_score=failure_score,
            overrides=overrides,
        )
    )


async def arun_rollouts(
    opt: Teleprompter,
    jobs: Sequence[tuple[Module, Example]],
    *,
    score: ScoreFn,
    desc: str,
    inline: bool = False,
    failure_score: float = 0.0,
    overrides: dict[str, Any] | None = None,
    limiter: Slots | None = None,
    quiet: bool = False,
) -> list[Rollout | None]:
    """:func:`run_rollouts` on the running event loop; with a ``limiter`` shared with other
    batches running at the same time (see :func:`~dsx.teleprompt._scoring.adrive`)."""
    if not jobs:
        return []
    names: dict[int, dict[int, str]] = {}
    for program, _ in jobs:
        if id(program) not in names:
            names[id(program)] = {id(p): path for path, p in program.named_predictors()}
    measure = MetricCall(opt, score, getattr(opt, "metric", None) or score, inline=inline)
    inputs_of = InputsCache()

    def make(engine: Engine) -> Callable[[int], Awaitable[Rollout]]:
        async def one(index: int) -> Rollout:
            program, example = jobs[index]
            trace: list[Any] = []
            with context(trace=trace):
                pred = await engine.call(program, (), inputs_of(example))
            value, feedback = await measure(engine, example, pred, trace)
            paths = names[id(program)]
            steps = [(paths[id(p)], dict(i), o) for p, i, o in trace if id(p) in paths]
            return Rollout(example, pred, value, feedback, trace, steps)

        return one

    with context(**(overrides or {})):
        outcome = await adrive(
            opt,
            range(len(jobs)),
            make,
            desc=desc,
            score=lambda rollout: rollout.score,
            limiter=limiter,
            quiet=quiet,
        )
    errors = dict(outcome.errors)
    out: list[Rollout | None] = []
    for i, (_program, example) in enumerate(jobs):
        if not outcome.done[i]:
            out.append(None)
        elif i in errors:
            exc = errors[i]
            out.append(Rollout(example, None, failure_score, error=f"{type(exc).__name__}: {exc}"))
        else:
            out.append(outcome.results[i])
    return out


def metric_arity(metric: Callable[..., Any]) -> int:
    """How many positional arguments ``metric`` takes (5 for ``*args``), at least 2."""
    try:
        params = list(inspect.signature(metric).parameters.values())
    except (TypeError, ValueError):
        return 3
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 5
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return max(2, min(5, len(positional)))
