"""``BootstrapFewShotWithRandomSearch``: several few-shot candidates, the best on the valset wins.

Candidates, in order: the zero-shot student, labeled demos only, ``BootstrapFewShot`` on
the unshuffled trainset, then ``num_candidate_programs`` bootstraps on seeded shuffles of
the trainset with a seeded number of bootstrapped demos. Each is scored on the valset
(default: the trainset) with :class:`~dsx.Evaluate`; ties go to the earlier candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dsx.errors import DsxError
from dsx.runtime.evaluate import Evaluate
from dsx.runtime.example import Example
from dsx.runtime.module import Module
from dsx.runtime.parallel import BatchError, run_coroutine_sync
from dsx.teleprompt.base import Teleprompter, check_examples, fresh_copy
from dsx.teleprompt.bootstrap import BootstrapFewShot
from dsx.teleprompt.labeled import LabeledFewShot

__all__ = ["BootstrapFewShotWithRandomSearch", "Candidate"]


@dataclass
class Candidate:
    """One program tried by the random search.

    Attributes:
        index: its position in the order tried.
        kind: ``"zero-shot"``, ``"labeled"``, ``"bootstrap"`` or ``"bootstrap-shuffled"``.
        seed: the shuffle's seed (``None`` for the first three kinds).
        score: percent on the valset (``None`` if the budget ran out before it was scored).
        program: the candidate program.
        demos: demos per predictor.
    """

    index: int
    kind: str
    seed: int | None
    score: float | None
    program: Module
    demos: dict[str, int]


class BootstrapFewShotWithRandomSearch(Teleprompter):
    """Random search over bootstrapped few-shot programs.

    Args:
        metric: the metric for bootstrapping and for scoring candidates.
        num_candidate_programs: how many shuffled bootstrap candidates (three fixed
            candidates come first).
        max_bootstrapped_demos, max_labeled_demos, max_rounds, metric_threshold,
            teacher_settings, max_errors: as for :class:`BootstrapFewShot`.
        min_num_samples: fewest bootstrapped demos a shuffled candidate asks for.
        stop_at_score: stop once a candidate scores at least this (percent).
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress``.

    After ``compile``, ``optimizer.candidates`` lists every :class:`Candidate` tried, and
    ``optimizer.best_score`` is the winner's score.
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        num_candidate_programs: int = 16,
        max_errors: int | None = None,
        stop_at_score: float | None = None,
        metric_threshold: float | None = None,
        min_num_samples: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.metric = metric
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.num_candidate_programs = num_candidate_programs
        self.max_errors = max_errors
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold
        self.min_num_samples = min_num_samples
        self.candidates: list[Candidate] = []
        self.best_score: float | None = None

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
        labeled_sample: bool = True,
    ) -> Module:
        if self.metric is None:
            raise DsxError(
                f"{type(self).__name__} needs a metric: {type(self).__name__}(metric=...)"
            )
        train = check_examples(trainset)
        val = check_examples(valset, "valset") if valset is not None else train
        self.candidates = []
        self.best_score = None
        total = 3 + self.num_candidate_programs
        best: Candidate | None = None
        with self.session(student, teacher, self.teacher_settings.get("lm")):
            for index, seed in enumerate(range(-3, self.num_candidate_programs)):
                if (reason := self.budget_exhausted()) is not None:
                    self.stopped = reason
                    break
                kind, program = self._candidate(seed, student, teacher, train, labeled_sample)
                score = self._score(program, val, index, total)
                cand = self._record(index, kind, seed, score, program)
                if score is not None and (best is None or score > (best.score or 0.0)):
                    best = cand
                self._report(cand, total, best)
                if score is None:  # the budget ran out while scoring it: it cannot compete
                    self.stopped = self.budget_exhausted() or "stopped while scoring"
                    break
                if self.stop_at_score is not None and score >= self.stop_at_score:
                    self.log.append(
                        {"event": "stop", "reason": f"score >= stop_at_score={self.stop_at_score}"}
                    )
                    break
            if best is None:  # nothing was scored: the zero-shot student is all we know
                program = fresh_copy(student)
            else:
                program, self.best_score = best.program, best.score
                self.say(
                    f"{type(self).__name__}: best is candidate {best.index + 1}/{total} "
                    f"({best.kind}) with {best.score:.2f}%"
                )
            self.log.append(
                {
                    "event": "result",
                    "best": best.index if best else None,
                    "score": self.best_score,
                    "stopped": self.stopped,
                }
            )
        program._compiled = True  # type: ignore[attr-defined]
        return program

    def _candidate(
        self,
        seed: int,
        student: Module,
        teacher: Module | None,
        train: list[Example],
        labeled_sample: bool,
    ) -> tuple[str, Module]:
        common: dict[str, Any] = {"seed": self.seed, "num_threads": self.num_threads}
        if seed == -3:
            return "zero-shot", fresh_copy(student)
        if seed == -2:
            labeled = LabeledFewShot(k=self.max_labeled_demos, sample=labeled_sample, **common)
            return "labeled", labeled.compile(student, trainset=train)
        shuffled, size = train, self.max_bootstrapped_demos
        kind = "bootstrap"
        if seed >= 0:
            rng = self.rng("candidate", seed)
            shuffled = list(train)
            rng.shuffle(shuffled)
            size = rng.randint(
                min(self.min_num_samples, self.max_bootstrapped_demos), self.max_bootstrapped_demos
            )
            kind = "bootstrap-shuffled"
        inner = BootstrapFewShot(
            metric=self.metric,
            metric_threshold=self.metric_threshold,
            teacher_settings=self.teacher_settings,
            max_bootstrapped_demos=size,
            max_labeled_demos=self.max_labeled_demos,
            max_rounds=self.max_rounds,
            max_errors=self.max_errors,
            **common,
        )
        program = inner.compile(student, trainset=shuffled, teacher=teacher)
        self.log.extend({**e, "candidate": seed + 3} for e in inner.log if e["event"] == "run")
        return kind, program

    def _score(self, program: Module, val: list[Example], index: int, total: int) -> float | None:
        """The candidate's valset score, or ``None`` if the budget stopped the evaluation."""
        evaluate = Evaluate(
            devset=val, metric=self.metric, num_threads=self.concurrency, max_errors=self.max_errors
        )
        run = evaluate._prepare(program, None, None, None, False, should_stop=self.budget_exhausted)
        run.progress = self.progress(len(val), f"Candidate {index + 1}/{total}")
        run_coroutine_sync(run.go)
        result = run.result(None)
        if result.stopped is not None and result.failures and not self.budget_exhausted():
            raise BatchError(
                f"{type(self).__name__} stopped scoring candidate {index + 1}: {result.stopped}"
            )
        return result.score if result.complete else None

    def _record(
        self, index: int, kind: str, seed: int, score: float | None, program: Module
    ) -> Candidate:
        demos = {n: len(p.demos) for n, p in program.named_predictors()}
        cand = Candidate(index, kind, seed if seed >= 0 else None, score, program, demos)
        self.candidates.append(cand)
        self.log.append(
            {
                "event": "candidate",
                "index": index,
                "kind": kind,
                "seed": cand.seed,
                "score": score,
                "demos": demos,
            }
        )
        return cand

    def _report(self, cand: Candidate, total: int, best: Candidate | None) -> None:
        what = cand.kind if cand.seed is None else f"{cand.kind}, seed {cand.seed}"
        shown = f"{cand.score:.2f}%" if cand.score is not None else "not scored (budget)"
        tail = f" · best {best.score:.2f}%" if best is not None and best.score is not None else ""
        self.say(f"candidate {cand.index + 1}/{total} ({what}): {shown}{tail}")
