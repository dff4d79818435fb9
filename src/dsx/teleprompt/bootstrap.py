"""``BootstrapFewShot``: demos from the program's own successful runs on the trainset.

The teacher (by default the student itself, with labeled demos) runs over the trainset;
every run whose prediction passes the metric contributes its trace — each predictor's
inputs and outputs — as demos for that predictor, up to ``max_bootstrapped_demos``; labeled
examples fill up to ``max_labeled_demos``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from dsx.runtime.example import Example
from dsx.runtime.module import Module
from dsx.runtime.settings import context
from dsx.teleprompt.base import Teleprompter
from dsx.teleprompt.labeled import LabeledFewShot

__all__ = ["BootstrapFewShot"]


class BootstrapFewShot(Teleprompter):
    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        *,
        metric_threshold: float | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
        teacher_settings: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.teacher_settings = teacher_settings or {}
        self.seed = seed
        self.log: list[dict[str, Any]] = []

    def _passes(self, example: Example, pred: Any, trace: list[Any]) -> bool:
        if self.metric is None:
            return True
        score = self.metric(example, pred, trace)
        if self.metric_threshold is not None:
            return float(score) >= self.metric_threshold
        return bool(score)

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        program = student.reset_copy()
        if teacher is None:
            teacher = LabeledFewShot(k=self.max_labeled_demos, seed=self.seed).compile(
                student.reset_copy(), trainset=trainset
            )
        names = {id(p): n for n, p in teacher.named_predictors()}
        demos: dict[str, list[Example]] = {n: [] for n, _ in program.named_predictors()}
        used: set[int] = set()
        errors = 0
        rng = random.Random(self.seed)
        for round_no in range(self.max_rounds):
            for index, example in enumerate(trainset):
                if index in used or all(len(d) >= self.max_bootstrapped_demos for d in demos.values()):
                    continue
                trace: list[Any] = []
                settings = dict(self.teacher_settings)
                if round_no > 0:
                    settings.setdefault("temperature", 1.0)
                try:
                    with context(trace=trace):
                        inputs = example.inputs().to_dict()
                        pred = teacher(**inputs) if not settings else _with_config(teacher, settings, inputs, round_no, rng)
                except Exception as exc:
                    errors += 1
                    self.log.append({"example": index, "round": round_no, "error": repr(exc)})
                    if self.max_errors is not None and errors >= self.max_errors:
                        raise
                    continue
                ok = self._passes(example, pred, trace)
                self.log.append({"example": index, "round": round_no, "passed": ok})
                if not ok:
                    continue
                used.add(index)
                for predictor, p_inputs, p_out in trace:
                    name = names.get(id(predictor))
                    if name in demos and len(demos[name]) < self.max_bootstrapped_demos:
                        demo = Example({**p_inputs, **p_out.to_dict()}).with_inputs(*p_inputs)
                        demo["dsx_augmented"] = True
                        demos[name].append(demo)
        labeled_pool = [ex for i, ex in enumerate(trainset) if i not in used]
        for name, predictor in program.named_predictors():
            room = max(0, self.max_labeled_demos - len(demos[name]))
            predictor.demos = demos[name] + labeled_pool[:room]
        program._compiled = True  # type: ignore[attr-defined]
        return program


def _with_config(teacher: Module, settings: dict[str, Any], inputs: dict[str, Any], round_no: int, rng: random.Random) -> Any:
    # Later rounds sample anew: distinct rollout ids and the teacher's temperature.
    config = dict(settings)
    if round_no > 0:
        config["rollout_id"] = rng.randrange(1 << 30)
    saved = [(p, dict(p.config)) for p in teacher.predictors()]
    try:
        for p, _ in saved:
            p.config.update(config)
        return teacher(**inputs)
    finally:
        for p, original in saved:
            p.config = original
