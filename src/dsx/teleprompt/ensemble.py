"""``Ensemble``: one program that runs several and combines their answers.

``Ensemble(reduce_fn=dsx.majority).compile([p1, p2, p3])`` returns a program that calls the
members (concurrently when called async) and reduces their predictions. With ``size`` it
calls a sample of that many members per input — seeded by the optimizer's seed and the
inputs, so the same input always gets the same members.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from dsx.errors import DsxError
from dsx.runtime.metrics import normalize_text
from dsx.runtime.module import Module
from dsx.runtime.prediction import Completions, Prediction
from dsx.teleprompt.base import Teleprompter

__all__ = ["Ensemble", "EnsembledProgram", "majority"]


def majority(
    predictions: Prediction | Completions | Sequence[Any],
    *,
    normalize: Callable[[Any], Any] | None = normalize_text,
    field: str | None = None,
) -> Prediction:
    """The prediction whose ``field`` value is most common (ties: the first seen).

    ``field`` defaults to the last output field; ``normalize`` maps values before counting
    (``None`` from it drops the value). Takes predictions, or a prediction's completions.
    """
    if isinstance(predictions, Prediction):
        predictions = predictions.completions
    preds = [p if isinstance(p, Prediction) else Prediction(p) for p in predictions]
    if not preds:
        raise DsxError("majority() got no predictions")
    if field is None:
        keys = preds[0].keys()
        if not keys:
            raise DsxError("majority() got predictions without fields")
        field = keys[-1]
    votes: Counter[Any] = Counter()
    first: dict[Any, Prediction] = {}
    for pred in preds:
        value = pred.get(field)
        key = normalize(value) if normalize is not None else value
        if key is None:
            continue
        key = json.dumps(key, sort_keys=True, default=str) if not isinstance(key, str) else key
        votes[key] += 1
        first.setdefault(key, pred)
    if not votes:
        return preds[0]
    best = max(votes, key=lambda k: votes[k])  # max() keeps the first of equal counts
    return first[best]


class EnsembledProgram(Module):
    """Runs its member programs on each input and reduces their predictions."""

    def __init__(
        self,
        programs: Sequence[Module],
        *,
        reduce_fn: Callable[[list[Any]], Any] | None = None,
        size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.programs = list(programs)
        self.reduce_fn = reduce_fn
        self.size = size
        self.seed = seed

    def _members(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Module]:
        if self.size is None or self.size >= len(self.programs):
            return self.programs
        key = json.dumps([args, kwargs], sort_keys=True, default=str)
        return random.Random(f"dsx:{self.seed}:{key}").sample(self.programs, self.size)

    def _reduce(self, outputs: list[Any]) -> Any:
        return self.reduce_fn(outputs) if self.reduce_fn is not None else outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._reduce([p(*args, **kwargs) for p in self._members(args, kwargs)])

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        members = self._members(args, kwargs)
        return self._reduce(
            list(await asyncio.gather(*(p.acall(*args, **kwargs) for p in members)))
        )


class Ensemble(Teleprompter):
    """Combine programs into one.

    Args:
        reduce_fn: combines the members' predictions (e.g. :func:`majority`); ``None``
            returns the list.
        size: call a seeded sample of this many members per input (default: all).
        deterministic: accepted for DSPy compatibility (sampling here is always seeded).
        seed: the sampling seed.

    ``compile(programs)`` takes the list of programs (copies are used; the inputs are
    untouched). Makes no LM calls. The result is several programs, which the IR of one
    program cannot hold: ``dsx build`` refuses it.
    """

    exports_to_ir = False

    def __init__(
        self,
        *,
        reduce_fn: Callable[[list[Any]], Any] | None = None,
        size: int | None = None,
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if size is not None and size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.reduce_fn = reduce_fn
        self.size = size
        self.deterministic = deterministic

    def compile(  # type: ignore[override]
        self,
        programs: Sequence[Module],
        *,
        trainset: Sequence[Any] | None = None,
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        if isinstance(programs, Module) or not all(isinstance(p, Module) for p in programs):
            raise DsxError(
                "Ensemble combines several programs: ensemble.compile([program1, program2, ...])"
            )
        if not programs:
            raise DsxError("Ensemble.compile() got no programs")
        self.log = [{"event": "result", "members": len(programs), "size": self.size}]
        ensembled = EnsembledProgram(
            [p.deepcopy() for p in programs],
            reduce_fn=self.reduce_fn,
            size=self.size,
            seed=self.seed,
        )
        ensembled._compiled = True  # type: ignore[attr-defined]
        return ensembled
