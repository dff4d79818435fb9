"""``LabeledFewShot``: attach k labeled training examples as demos to every predictor."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from dsx.runtime.module import Module
from dsx.teleprompt.base import Teleprompter

__all__ = ["LabeledFewShot"]


class LabeledFewShot(Teleprompter):
    """Use ``k`` labeled examples from the trainset as demos (a seeded sample when ``sample``)."""

    def __init__(self, k: int = 16, *, sample: bool = True, seed: int = 0) -> None:
        self.k = k
        self.sample = sample
        self.seed = seed

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        program = student.reset_copy()
        pool = list(trainset)
        if self.sample:
            chosen = random.Random(self.seed).sample(pool, min(self.k, len(pool)))
        else:
            chosen = pool[: self.k]
        for predictor in program.predictors():
            predictor.demos = list(chosen)
        program._compiled = True  # type: ignore[attr-defined]
        return program
