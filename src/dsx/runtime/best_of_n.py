"""``BestOfN`` and ``Refine``: run a module several times and keep the best-rewarded result.

Each attempt samples anew (a distinct ``rollout_id`` and temperature 1.0 for every predictor
inside). ``Refine`` also tells the next attempt why the previous one fell short: the feedback
is given to every predictor of the module as a ``hint`` input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from dsx.errors import DsxError
from dsx.runtime._attempt import Call, Core, run_async, run_sync
from dsx.runtime.kinds import KindInfo
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

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "BestOfN",
        False,
        frozenset({"module", "N", "reward_fn", "threshold", "fail_count"}),
        wraps_module=True,
        doc="Runs a module N times and keeps the best-rewarded prediction.",
    )

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

    # The attempts are written once, as the generator ``_loop`` that yields each call of
    # the module (dsx.runtime._attempt); ``forward`` and ``aforward`` only perform them.
    def forward(self, **inputs: Any) -> Prediction:
        result: Prediction = run_sync(self._loop(inputs))
        return result

    async def aforward(self, **inputs: Any) -> Prediction:
        result: Prediction = await run_async(self._loop(inputs))
        return result

    def _loop(self, inputs: dict[str, Any]) -> Core:
        run = _Attempts(self, inputs)
        for attempt in range(self.N):
            try:
                with self._attempt_context(attempt, run.feedback):
                    pred = yield Call(self.module, (), inputs)
                if run.scored(pred):
                    break
            except Exception as exc:
                run.failed(exc)
        return run.result()

    def _feedback(self, pred: Any, score: float, note: str | None) -> str:
        shown = pred.to_dict() if hasattr(pred, "to_dict") else pred
        text = f"A previous attempt scored {score:g} (it needs {self.threshold:g}). Its output was: {shown}."
        return f"{text} {note}" if note else text


class _Attempts:
    """The bookkeeping of one BestOfN/Refine call, shared by the sync and async loops."""

    def __init__(self, owner: BestOfN, inputs: dict[str, Any]) -> None:
        self.owner = owner
        self.inputs = inputs
        self.best: tuple[float, Any] | None = None
        self.failures: list[BaseException] = []
        self.feedback: str | None = None

    def scored(self, pred: Any) -> bool:
        """Record an attempt's prediction; True when it reaches the threshold."""
        score, note = _score(self.owner.reward_fn, self.inputs, pred)
        if self.best is None or score > self.best[0]:
            self.best = (score, pred)
        if score >= self.owner.threshold:
            return True
        self.feedback = self.owner._feedback(pred, score, note)
        return False

    def failed(self, exc: BaseException) -> None:
        self.failures.append(exc)
        if len(self.failures) >= self.owner.fail_count:
            # The module's own exception, as DSPy re-raises it; a note says why it surfaced.
            exc.add_note(
                f"{type(self.owner).__name__}: {len(self.failures)} attempt(s) failed "
                f"(fail_count={self.owner.fail_count}); this is the last one's error."
            )
            raise exc

    def result(self) -> Any:
        if self.best is None:
            if self.failures:
                last = self.failures[-1]
                last.add_note(
                    f"{type(self.owner).__name__}: every attempt failed; this is the last "
                    "one's error."
                )
                raise last
            raise DsxError(f"{type(self.owner).__name__}: no attempt was made (N={self.owner.N})")
        return self.best[1]


class Refine(BestOfN):
    """Like :class:`BestOfN`, and each new attempt gets feedback on the previous one as a
    ``hint`` input of its predictors (the reward function may return ``(score, feedback)``)."""

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "Refine",
        False,
        frozenset({"module", "N", "reward_fn", "threshold", "fail_count"}),
        wraps_module=True,
        doc="Runs a module up to N times, feeding back hints, until the reward reaches the "
        "threshold.",
    )

    hints = True
