"""``LabeledFewShot``: attach k labeled training examples as demos to every predictor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsx.runtime.module import Module
from dsx.teleprompt.base import Teleprompter, check_examples, fresh_copy

__all__ = ["LabeledFewShot"]


class LabeledFewShot(Teleprompter):
    """Use ``k`` labeled examples from the trainset as every predictor's demos.

    Args:
        k: how many demos (fewer if the trainset is smaller).
        sample: a seeded random sample (``False``: the first ``k``).
        seed: the sample's seed.

    Makes no LM calls.
    """

    needs_lm = False

    def __init__(self, k: int = 16, *, sample: bool = True, seed: int = 0, **options: Any) -> None:
        super().__init__(seed=seed, **options)
        self.k = k
        self.sample = sample

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
        sample: bool | None = None,
    ) -> Module:
        program = fresh_copy(student)
        pool = check_examples(trainset)
        self.log = []
        if sample if sample is not None else self.sample:
            chosen = self.rng("labeled").sample(pool, min(self.k, len(pool)))
        else:
            chosen = pool[: self.k]
        for predictor in program.predictors():
            predictor.demos = list(chosen)
        self.log.append({"event": "result", "demos": len(chosen)})
        program._compiled = True  # type: ignore[attr-defined]
        return program
