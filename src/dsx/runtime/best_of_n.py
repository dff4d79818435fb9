"""``BestOfN`` and ``Refine``: run a module several times and keep the best-rewarded result.

Each attempt samples anew (a distinct ``rollout_id`` and temperature 1.0 for every predictor
inside). ``Refine`` also tells the next attempt why the previous one fell short: the feedback
is given to every predictor of the module as a ``hint`` input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dsx.errors import DsxError
from dsx.runtime.module import Module
from dsx.runtime.prediction import Prediction
from dsx.runtime.settings import context

__all__ = ["BestOfN", "Refine"]

log = logging.getLogger("dsx")


def _score(
    reward_fn: Callable[..., Any], inputs: dict[str, Any], pred: Any
) -> tuple[float, str | None]:
    """A reward function returns a number, or ``(number, feedback)``."""
    result = reward_fn(inputs, pred)
    if isinstance(result, tuple):
        return float(result[0]), str(result[1]) if len(result) > 1 and result[
            1
        ] is not None else None
    return float(result), None


class BestOfN(Module):
    """Run ``module`` up to ``N`` times; return the first prediction whose reward reaches
    ``threshold``, else the best one.

    Args:
        module: the module to run.
        N: the most attempts.
        reward_fn: ``reward_fn(inputs: dict, prediction) -> float`` (or ``(float, feedback)``).
        threshold: stop as soon as a reward reaches it.
        fail_count: how many attempts may raise before giving up (default ``N``).
    """

    hints = False

    def __init__(
        self,
        module: Module,
        N: int,
        reward_fn: Callable[..., Any],
        threshold: float,
        *,
        fail_count: int | None = None,
    ) -> None:
        self.module = module
        self.N = N
        self.reward_fn = reward_fn
        self.threshold = threshold
        self.fail_count = fail_count if fail_count is not None else N

    def _attempt_context(self, attempt: int, feedback: str | None) -> Any:
        override = {"rollout_id": attempt, "temperature": 1.0} if attempt > 0 else None
        values: dict[str, Any] = {}
        if override:
            values["config_override"] = override
        if self.hints and feedback:
            values["hint"] = feedback
        return context(**values)

    def forward(self, **inputs: Any) -> Prediction:
        best: tuple[float, Any] | None = None
        failures: list[BaseException] = []
        feedback: str | None = None
        for attempt in range(self.N):
            try:
                with self._attempt_context(attempt, feedback):
                    pred = self.module(**inputs)
                score, note = _score(self.reward_fn, inputs, pred)
            except Exception as exc:
                failures.append(exc)
                if len(failures) >= self.fail_count:
                    raise DsxError(
                        f"{type(self).__name__}: {len(failures)} attempt(s) failed; the last: {exc}"
                    ) from exc
                continue
            if best is None or score > best[0]:
                best = (score, pred)
            if score >= self.threshold:
                break
            feedback = self._feedback(pred, score, note)
        if best is None:
            raise DsxError(f"{type(self).__name__}: every attempt failed") from (
                failures[-1] if failures else None
            )
        return best[1]

    async def aforward(self, **inputs: Any) -> Prediction:
        best: tuple[float, Any] | None = None
        failures: list[BaseException] = []
        feedback: str | None = None
        for attempt in range(self.N):
            try:
                with self._attempt_context(attempt, feedback):
                    pred = await self.module.acall(**inputs)
                score, note = _score(self.reward_fn, inputs, pred)
            except Exception as exc:
                failures.append(exc)
                if len(failures) >= self.fail_count:
                    raise DsxError(
                        f"{type(self).__name__}: {len(failures)} attempt(s) failed; the last: {exc}"
                    ) from exc
                continue
            if best is None or score > best[0]:
                best = (score, pred)
            if score >= self.threshold:
                break
            feedback = self._feedback(pred, score, note)
        if best is None:
            raise DsxError(f"{type(self).__name__}: every attempt failed") from (
                failures[-1] if failures else None
            )
        return best[1]

    def _feedback(self, pred: Any, score: float, note: str | None) -> str:
        shown = pred.to_dict() if hasattr(pred, "to_dict") else pred
        text = f"A previous attempt scored {score:g} (it needs {self.threshold:g}). Its output was: {shown}."
        return f"{text} {note}" if note else text


class Refine(BestOfN):
    """Like :class:`BestOfN`, and each new attempt gets feedback on the previous one as a
    ``hint`` input of its predictors (the reward function may return ``(score, feedback)``)."""

    hints = True
