"""``BootstrapFewShot``: demos from the program's own successful runs on the trainset.

The teacher (by default the student with ``max_labeled_demos`` labeled demos) runs over the
trainset concurrently. Every run whose prediction passes the metric contributes its trace —
each predictor's inputs and outputs — as demos for that predictor. The first
``max_bootstrapped_demos`` passing examples *in trainset order* are used (so the result does
not depend on which run finished first); labeled examples fill up to ``max_labeled_demos``.
Later rounds (``max_rounds > 1``) retry the examples that failed, sampling anew: a fresh
``rollout_id`` (a separate cache entry) and temperature 1.0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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
from dsx.teleprompt.base import (
    Teleprompter,
    check_examples,
    check_same_structure,
    fresh_copy,
)
from dsx.teleprompt.labeled import LabeledFewShot

__all__ = ["BootstrapFewShot"]

_ENOUGH = "enough demos"


class BootstrapFewShot(Teleprompter):
    """Few-shot demos bootstrapped from the teacher's passing runs.

    Args:
        metric: ``(example, prediction, trace)`` → number/bool; a run passes when it is
            truthy (or ``>= metric_threshold``). ``None``: every run that does not raise.
        metric_threshold: the score a run needs to pass.
        teacher_settings: ``dsx.context`` settings for the teacher's runs (e.g. ``{"lm": big}``).
        max_bootstrapped_demos: bootstrapped demos per predictor.
        max_labeled_demos: total demos per predictor, filled up with labeled examples.
        max_rounds: passes over the examples that have not passed yet.
        max_errors: raise after this many failed runs (default: ``dsx.settings.max_errors``).
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress`` (see :class:`~dsx.teleprompt.Teleprompter`).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        metric_threshold: float | None = None,
        teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        examples = check_examples(trainset)
        program = fresh_copy(student)
        teacher = self._teacher(student, teacher, examples)
        check_same_structure(program, teacher)
        with self.session(program, teacher, self.teacher_settings.get("lm")):
            found = self.bootstrap(teacher, examples)
            self._assemble(program, examples, found)
        program._compiled = True  # type: ignore[attr-defined]
        return program

    # -- steps ---------------------------------------------------------------------------------
    def _teacher(self, student: Module, teacher: Module | None, trainset: list[Example]) -> Module:
        base = teacher.deepcopy() if teacher is not None else fresh_copy(student)
        if self.max_labeled_demos and not getattr(base, "_compiled", False):
            labeled = LabeledFewShot(k=self.max_labeled_demos, seed=self.seed)
            base = labeled.compile(base, trainset=trainset)
        return base

    def bootstrap(
        self, teacher: Module, trainset: list[Example]
    ) -> dict[int, dict[str, list[Example]]]:
        """Run the teacher; per passing example index, the demos its trace gives each predictor."""
        found: dict[int, dict[str, list[Example]]] = {}
        want = self.max_bootstrapped_demos
        if want <= 0 or not trainset:
            return found
        error_limit = self.max_errors if self.max_errors is not None else settings.max_errors
        errors = 0
        for round_no in range(self.max_rounds):
            pending = [i for i in range(len(trainset)) if i not in found]
            if not pending or len(found) >= want:
                break
            if (reason := self.budget_exhausted()) is not None:
                self.stopped = reason
                break
            round_teacher = teacher if round_no == 0 else _sampling_copy(teacher, round_no)
            self.log.append({"event": "round", "round": round_no, "examples": len(pending)})
            allowed = None if error_limit is None else max(1, error_limit - errors)
            outcome = self._round(round_teacher, trainset, pending, round_no, found, allowed)
            errors += len(outcome.errors)
            if allowed is not None and len(outcome.errors) >= allowed:
                raise BatchError(
                    f"{type(self).__name__} stopped: {errors} runs of the teacher failed "
                    f"(max_errors={error_limit}); the first failed with "
                    f"{type(outcome.errors[0][1]).__name__}: {outcome.errors[0][1]}"
                ) from outcome.errors[0][1]
            if outcome.stopped not in (None, _ENOUGH):
                self.stopped = outcome.stopped
                break
        return found

    def _round(
        self,
        teacher: Module,
        trainset: list[Example],
        pending: list[int],
        round_no: int,
        found: dict[int, dict[str, list[Example]]],
        max_errors: int | None,
    ) -> Outcome[Any]:
        want = self.max_bootstrapped_demos
        in_demos = {
            i
            for i in pending
            if any(trainset[i] == d for p in teacher.predictors() for d in p.demos)
        }
        names = {id(p): n for n, p in teacher.named_predictors()}
        engine = Engine(self.concurrency)
        progress = self.progress(len(pending), f"Bootstrap round {round_no + 1}")
        inline = getattr(self.metric, "_dsx_inline", False)
        failed = ran = 0

        async def one(index: int) -> tuple[float, bool, dict[str, list[Example]]]:
            example = trainset[index]
            runner, run_names = teacher, names
            if index in in_demos:  # never let the teacher see the answer it is asked for
                runner = teacher.deepcopy()
                for p in runner.predictors():
                    p.demos = [d for d in p.demos if d != example]
                run_names = {id(p): n for n, p in runner.named_predictors()}
            trace: list[Any] = []
            with context(trace=trace, **self.teacher_settings):
                pred = await engine.call(runner, (), example.inputs().to_dict())
                if self.metric is None:
                    value: Any = True
                elif inline:
                    value = call_metric(self.metric, example, pred, trace)
                else:
                    value = await engine.in_thread(call_metric, self.metric, example, pred, trace)
            score = score_of(value)
            if self.metric_threshold is not None:
                passed = score >= self.metric_threshold
            else:
                passed = bool(score)
            return score, passed, (_demos_from(trace, run_names) if passed else {})

        def on_done(pos: int, value: Any, exc: BaseException | None) -> None:
            nonlocal failed, ran
            ran += 1
            index = pending[pos]
            entry: dict[str, Any] = {"event": "run", "round": round_no, "example": index}
            if exc is not None:
                failed += 1
                entry["error"] = f"{type(exc).__name__}: {exc}"
            else:
                score, passed, demos = value
                entry.update(score=score, passed=passed)
                if passed:
                    found[index] = demos
            self.log.append(entry)
            progress.update(
                ran,
                errors=failed,
                info=f"{min(len(found), want)}/{want} demos",
            )

        def should_stop() -> str | None:
            return _ENOUGH if len(found) >= want else self.budget_exhausted()

        try:
            outcome = run_coroutine_sync(
                lambda: run_concurrently(
                    one,
                    pending,
                    concurrency=engine.concurrency,
                    max_errors=max_errors,
                    should_stop=should_stop,
                    on_done=on_done,
                )
            )
        finally:
            engine.close()
        progress.close(_summary(round_no, ran, len(pending), failed, len(found), want, outcome))
        return outcome

    def _assemble(
        self, program: Module, trainset: list[Example], found: dict[int, dict[str, list[Example]]]
    ) -> None:
        want = self.max_bootstrapped_demos
        chosen = sorted(found)[:want]
        used = set(chosen)
        pool = [ex for i, ex in enumerate(trainset) if i not in used]
        self.rng("labeled-pool").shuffle(pool)
        counts = {}
        for name, predictor in program.named_predictors():
            augmented = [d for i in chosen for d in found[i].get(name, [])][:want]
            room = max(0, self.max_labeled_demos - len(augmented))
            predictor.demos = augmented + pool[:room]
            counts[name] = {"bootstrapped": len(augmented), "labeled": len(pool[:room])}
        self.log.append(
            {"event": "result", "bootstrapped": chosen, "demos": counts, "stopped": self.stopped}
        )
        self.say(
            f"{type(self).__name__}: {len(chosen)} bootstrapped demo(s) from trainset "
            f"examples {chosen}" + (f" · stopped early: {self.stopped}" if self.stopped else "")
        )


def _summary(
    round_no: int, ran: int, total: int, failed: int, found: int, want: int, outcome: Outcome[Any]
) -> str:
    # Say how many of the round's examples ran, and why the rest did not: a round ends as soon
    # as it has enough demos, so "11 runs" over 12 examples needs its reason beside it.
    text = (
        f"Bootstrap round {round_no + 1}: ran {ran} of {total} examples, {failed} failed, "
        f"{min(found, want)}/{want} demos"
    )
    if ran < total:
        if outcome.stopped == _ENOUGH:
            text += f" (stopped: enough demos, {total - ran} not run)"
        elif outcome.stopped is not None:
            text += f" (stopped: {outcome.stopped})"
    return text


def _demos_from(trace: list[Any], names: dict[int, str]) -> dict[str, list[Example]]:
    demos: dict[str, list[Example]] = {}
    for predictor, inputs, outputs in trace:
        name = names.get(id(predictor))
        if name is None:  # a predictor outside the program (e.g. an LM judge in the metric)
            continue
        demo = Example({**inputs, **outputs.to_dict()}).with_inputs(*inputs)
        demo["dsx_augmented"] = True
        demos.setdefault(name, []).append(demo)
    return demos


def _sampling_copy(teacher: Module, round_no: int) -> Module:
    # Later rounds sample anew: a distinct rollout id (its own cache entry) at temperature 1.
    copy = teacher.deepcopy()
    for p in copy.predictors():
        p.config = {**p.config, "temperature": 1.0, "rollout_id": round_no}
    return copy
