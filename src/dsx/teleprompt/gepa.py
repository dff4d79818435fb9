"""``GEPA``: reflective prompt evolution from textual feedback (DSPy's GEPA).

Built on the `gepa <https://pypi.org/project/gepa/>`_ library, which owns the search: a
pool of candidates (a candidate is every predictor's instruction), a Pareto frontier over
the validation examples (a candidate stays in play while it is the best on *some*
example), reflective mutation and, optionally, merges of candidates. Each iteration:

1. pick a parent from the frontier (or the best so far with ``"current_best"``);
2. run it on a minibatch of ``reflection_minibatch_size`` trainset examples with tracing;
3. for one predictor (round robin), show the reflection LM that predictor's inputs, its
   outputs and the metric's **feedback** on each run, and ask for a better instruction;
4. run the child on the same minibatch; if it scores higher, score it on the whole valset
   and add it to the pool.

dsx supplies the adapter: every evaluation runs on the batch engine (all ``(candidate,
example)`` pairs of a step at once), the reflection is a dsx :class:`~dsx.Predict` on
``reflection_lm`` (so scripted LMs work), and the shared budget (``max_lm_calls``,
``max_cost``) stops the run with the best candidate so far. ``gepa`` is imported by
``compile`` only, so ``import dsx`` stays light.

A metric may return a number, or a score with feedback: ``dsx.Prediction(score=...,
feedback=...)``, ``{"score": ..., "feedback": ...}`` or ``(score, feedback)``. It is called
with as many of ``(gold, pred, trace, pred_name, pred_trace)`` as it takes; with all five,
GEPA asks it again per predictor (``pred_name`` = the predictor's path, ``pred_trace`` = that
predictor's calls) for feedback aimed at that predictor.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dsx._extras import require
from dsx.errors import DsxError
from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM
from dsx.runtime.module import Module
from dsx.runtime.predict import Predict
from dsx.runtime.signature import InputField, OutputField, Signature
from dsx.teleprompt._propose import as_lm, clean_instruction
from dsx.teleprompt._rollouts import Rollout, metric_arity, run_rollouts, score_and_feedback
from dsx.teleprompt.base import OptimizerSettingError, Teleprompter, check_examples

__all__ = ["AUTO_RUN_SETTINGS", "GEPA", "GEPAResults", "ProposeFromFeedback"]

#: What ``auto`` sets: the candidate count the metric-call budget is sized for.
AUTO_RUN_SETTINGS: dict[str, dict[str, int]] = {
    "light": {"n": 6},
    "medium": {"n": 12},
    "heavy": {"n": 18},
}

Auto = Literal["light", "medium", "heavy"]


class ProposeFromFeedback(Signature):
    """You improve the instruction of one step of a program that calls a language model.
    You see the instruction the step follows now and, for several runs, the step's inputs,
    what it produced, and feedback on the result. Work out from the feedback what the step
    gets wrong, what the task really asks for, and any facts or rules the feedback reveals
    that a general strategy should use. Then write a new, self-contained instruction for the
    step that avoids these mistakes. Reply with the instruction only."""

    current_instruction: str = InputField(desc="the instruction the step follows now")
    examples_with_feedback: str = InputField(desc="runs of the step, each with its feedback")
    new_instruction: str = OutputField(desc="the improved instruction")


@dataclass
class GEPAResults:
    """What a GEPA run found (``optimizer.detailed_results``; DSPy's ``DspyGEPAResult``).

    Attributes:
        instructions: per candidate, the instruction of every predictor (0: the student's).
        candidates: per candidate, the program.
        parents: per candidate, the indices of its parents (``[None]`` for the student).
        val_aggregate_scores: per candidate, its mean score on the valset (0..1 scale).
        val_subscores: per candidate, its score on each valset example (by index).
        per_val_instance_best_candidates: per valset example, the candidates best on it
            (the Pareto frontier).
        discovery_eval_counts: per candidate, the metric calls spent when it was found.
        total_metric_calls: metric calls of the run.
        num_full_val_evals: full valset evaluations of the run.
        run_dir: where the run's state is kept (``None`` without ``run_dir``).
        seed: the seed.
    """

    instructions: list[dict[str, str]]
    candidates: list[Module]
    parents: list[list[int | None]]
    val_aggregate_scores: list[float]
    val_subscores: list[dict[int, float]]
    per_val_instance_best_candidates: dict[int, set[int]]
    discovery_eval_counts: list[int]
    total_metric_calls: int | None = None
    num_full_val_evals: int | None = None
    run_dir: str | None = None
    seed: int | None = None
    best_outputs_valset: dict[int, list[tuple[int, Any]]] | None = field(default=None)

    @property
    def best_idx(self) -> int:
        """The candidate with the best valset score (the first of equals)."""
        scores = self.val_aggregate_scores
        return max(range(len(scores)), key=lambda i: scores[i])

    @property
    def best_candidate(self) -> Module:
        return self.candidates[self.best_idx]

    @property
    def highest_score_achieved_per_val_task(self) -> dict[int, float]:
        """Per valset example, the best score any candidate reached on it."""
        return {
            val_id: self.val_subscores[next(iter(front))][val_id]
            for val_id, front in self.per_val_instance_best_candidates.items()
        }


class GEPA(Teleprompter):
    """Evolve instructions by reflecting on the metric's textual feedback (DSPy's GEPA).

    Args:
        metric: ``(gold, pred, trace, pred_name, pred_trace)`` (or its first 2 or 3) → a
            number, or a score with feedback.
        auto: ``"light"``, ``"medium"`` or ``"heavy"`` sizes the metric-call budget.
        max_full_evals: budget in full passes over trainset plus valset.
        max_metric_calls: budget in metric calls (program runs).
        reflection_lm: the LM that writes new instructions (an LM or a model string; default
            ``dsx.settings.lm``).
        reflection_minibatch_size: trainset examples each reflection looks at.
        candidate_selection_strategy: ``"pareto"`` (a parent from the frontier) or
            ``"current_best"``.
        skip_perfect_score: do not reflect on a minibatch the parent already aces, and stop
            once a candidate scores ``perfect_score`` on every valset example (no later
            candidate could replace it).
        add_format_failure_as_feedback: show failed runs to the reflection LM too.
        use_merge: also try merging two candidates from the frontier.
        max_merge_invocations: the most merges to try.
        failure_score: the score of a run that raised.
        perfect_score: the best score the metric gives.
        track_stats: also put ``detailed_results`` on the returned program.
        track_best_outputs: keep each valset example's best outputs in the results.
        run_dir: keep the run's state here; running again with the same inputs resumes it.
        log_dir: DSPy's name for ``run_dir``.
        max_errors: stop after this many failed runs (default ``dsx.settings.max_errors``).
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress`` (see :class:`~dsx.teleprompt.Teleprompter`).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        auto: Auto | None = None,
        max_full_evals: int | None = None,
        max_metric_calls: int | None = None,
        reflection_lm: BaseLM | str | None = None,
        reflection_minibatch_size: int = 3,
        candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto",
        skip_perfect_score: bool = True,
        add_format_failure_as_feedback: bool = False,
        use_merge: bool = True,
        max_merge_invocations: int | None = 5,
        failure_score: float = 0.0,
        perfect_score: float = 1.0,
        track_stats: bool = False,
        track_best_outputs: bool = False,
        run_dir: str | None = None,
        log_dir: str | None = None,
        max_errors: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        chosen = [
            name
            for name, value in (
                ("auto", auto),
                ("max_full_evals", max_full_evals),
                ("max_metric_calls", max_metric_calls),
            )
            if value is not None
        ]
        if len(chosen) != 1:
            raise OptimizerSettingError(
                "GEPA needs exactly one budget: auto ('light', 'medium', 'heavy'), "
                "max_full_evals or max_metric_calls"
                + (f"; it got {', '.join(chosen)}" if chosen else "")
            )
        if auto is not None and auto not in AUTO_RUN_SETTINGS:
            raise OptimizerSettingError(
                f"GEPA(auto={auto!r}): use one of 'light', 'medium', 'heavy'"
            )
        for name, value in (
            ("max_full_evals", max_full_evals),
            ("max_metric_calls", max_metric_calls),
            ("reflection_minibatch_size", reflection_minibatch_size),
        ):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise OptimizerSettingError(f"GEPA({name}={value!r}): it must be an int >= 1")
        if candidate_selection_strategy not in ("pareto", "current_best"):
            raise OptimizerSettingError(
                f"GEPA(candidate_selection_strategy={candidate_selection_strategy!r}): use "
                "'pareto' or 'current_best'"
            )
        if max_merge_invocations is not None and max_merge_invocations < 0:
            raise OptimizerSettingError(
                f"GEPA(max_merge_invocations={max_merge_invocations!r}): it must be >= 0"
            )
        if track_best_outputs and not track_stats:
            raise OptimizerSettingError("GEPA(track_best_outputs=True) needs track_stats=True")
        if run_dir is not None and log_dir is not None and run_dir != log_dir:
            raise OptimizerSettingError("GEPA: give run_dir or log_dir (DSPy's name), not both")
        self.metric = metric
        self.auto = auto
        self.max_full_evals = max_full_evals
        self.max_metric_calls = max_metric_calls
        self.reflection_lm = as_lm(reflection_lm, "reflection_lm")
        self.reflection_minibatch_size = reflection_minibatch_size
        self.candidate_selection_strategy = candidate_selection_strategy
        self.skip_perfect_score = skip_perfect_score
        self.add_format_failure_as_feedback = add_format_failure_as_feedback
        self.use_merge = use_merge
        self.max_merge_invocations = max_merge_invocations
        self.failure_score = failure_score
        self.perfect_score = perfect_score
        self.track_stats = track_stats
        self.track_best_outputs = track_best_outputs
        self.run_dir = run_dir if run_dir is not None else log_dir
        self.max_errors = max_errors
        #: The winner's valset score in percent.
        self.best_score: float | None = None
        #: The metric-call budget of the last compile (from ``auto`` / ``max_full_evals``).
        self.metric_calls_budget: int | None = None
        self.detailed_results: GEPAResults | None = None

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        for name in ("best_score", "metric_calls_budget", "run_dir"):
            out.pop(name, None)
        out["reflection_lm"] = self.reflection_lm.model if self.reflection_lm is not None else None
        return out

    def auto_budget(
        self,
        num_preds: int,
        num_candidates: int,
        valset_size: int,
        minibatch_size: int = 35,
        full_eval_steps: int = 5,
    ) -> int:
        """The metric calls ``auto`` allows: what a MIPROv2 search of that size would spend."""
        trials = int(max(4 * num_preds * math.log2(num_candidates), 1.5 * num_candidates))
        total = valset_size + 5 * num_candidates + trials * minibatch_size
        if trials == 0:
            return total
        full_evals = (trials + 1) // full_eval_steps + 1 + (1 if trials < full_eval_steps else 0)
        return total + full_evals * valset_size

    # -- compile ----------------------------------------------------------------------------
    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        """Evolve ``student``'s instructions; the best program on ``valset`` is returned.

        The trainset feeds the reflections and the valset tracks the Pareto frontier
        (without a valset, the trainset does both).
        """
        if self.metric is None:
            raise OptimizerSettingError("GEPA needs a metric: GEPA(metric=...)")
        if teacher is not None:
            raise OptimizerSettingError("GEPA does not take a teacher")
        train = check_examples(trainset)
        if not train:
            raise OptimizerSettingError("GEPA: the trainset is empty")
        val = check_examples(valset, "valset") if valset is not None else None
        if val is not None and not val:
            raise OptimizerSettingError("GEPA: the valset is empty")
        paths = [path for path, _ in student.named_predictors()]
        if not paths:
            raise OptimizerSettingError("GEPA: the program has no predictors to optimize")
        budget = self._metric_budget(len(paths), train, val)
        self.metric_calls_budget = budget
        self.best_score, self.detailed_results = None, None
        program = student.deepcopy()
        run = _Run(self, program, train, val if val is not None else train)
        with self.session(program, self.reflection_lm):
            self.say(
                f"GEPA: up to {budget} metric calls; {len(paths)} instruction(s) to evolve, "
                f"{len(train)} trainset and {len(run.val)} valset examples"
            )
            run_dir = self.run_state(program, [train, val])
            if run_dir is not None:
                self.say(f"GEPA: run state in {run_dir}")
            results = run.optimize(budget, None if run_dir is None else str(run_dir))
            best = self._finish(program, results)
        best._compiled = True  # type: ignore[attr-defined]
        return best

    def _finish(self, program: Module, results: GEPAResults | None) -> Module:
        if results is None:
            self.log.append({"event": "result", "score": None, "stopped": self.stopped})
            return program
        self.detailed_results = results
        index = results.best_idx
        best = results.candidates[index]
        self.best_score = round(100 * results.val_aggregate_scores[index], 2)
        self.log.append(
            {
                "event": "result",
                "score": self.best_score,
                "candidate": index,
                "stopped": self.stopped,
            }
        )
        self.say(
            f"GEPA: best {self.best_score:.2f}% on the valset: candidate {index} of "
            f"{len(results.candidates)}"
        )
        if self.track_stats:
            best.detailed_results = results  # type: ignore[attr-defined]
        return best

    def _metric_budget(
        self, num_preds: int, train: list[Example], val: list[Example] | None
    ) -> int:
        if self.auto is not None:
            size = len(val) if val is not None else len(train)
            return self.auto_budget(num_preds, AUTO_RUN_SETTINGS[self.auto]["n"], size)
        if self.max_full_evals is not None:
            return self.max_full_evals * (len(train) + (len(val) if val is not None else 0))
        assert self.max_metric_calls is not None
        return self.max_metric_calls


class _BudgetStop(BaseException):
    """Raised through the gepa engine when the dsx budget stops a step half done.

    A ``BaseException`` so that the engine's per-iteration ``except Exception`` does not
    swallow it; :meth:`_Run.optimize` catches it and returns the best candidate so far.
    """


class _Run:
    """One GEPA compile: the gepa adapter, its callbacks and the result."""

    def __init__(self, opt: GEPA, program: Module, train: list[Example], val: list[Example]):
        self.opt = opt
        self.program = program
        self.train = train
        self.val = val
        self.paths = [path for path, _ in program.named_predictors()]
        self.arity = metric_arity(opt.metric)  # type: ignore[arg-type]
        self.rng = random.Random(opt.seed)
        self.sampler: Any = None
        self.state: Any = None  # the gepa state, once the seed candidate is scored
        self.reflections = 0
        # the gepa adapter protocol reads this attribute: we propose the texts ourselves
        self.propose_new_texts = self._propose

    # -- the gepa adapter ---------------------------------------------------------------------
    def build(self, candidate: Mapping[str, str]) -> Module:
        program = self.program.deepcopy()
        for path, predictor in program.named_predictors():
            if path in candidate:
                predictor.signature = predictor.signature.with_instructions(candidate[path])
        return program

    def score(self, example: Example, pred: Any, trace: list[Any]) -> tuple[float, str | None]:
        metric = self.opt.metric
        assert metric is not None
        args = (example, pred, trace, None, None)[: self.arity]
        return score_and_feedback(metric(*args))

    def evaluate(
        self, batch: list[Example], candidate: dict[str, str], capture_traces: bool = False
    ) -> Any:
        return self.batch_evaluate([(candidate, batch)], capture_traces=capture_traces)[0]

    def batch_evaluate(
        self, items: list[tuple[dict[str, str], list[Example]]], *, capture_traces: bool = True
    ) -> list[Any]:
        from gepa import EvaluationBatch

        programs = [self.build(candidate) for candidate, _ in items]
        jobs = [(p, ex) for p, (_, batch) in zip(programs, items, strict=True) for ex in batch]
        size = sum(len(batch) for _, batch in items)
        desc = (
            f"GEPA: {len(items)} candidate(s) on {size} run(s)"
            if len(items) > 1
            else (f"GEPA: a candidate on {size} example(s)")
        )
        inline = getattr(self.opt.metric, "_dsx_inline", False)
        rollouts = run_rollouts(
            self.opt,
            jobs,
            score=self.score,
            desc=desc,
            inline=inline,
            failure_score=self.opt.failure_score,
        )
        if any(r is None for r in rollouts):
            self.opt.stopped = self.opt.budget_exhausted() or "stopped while scoring"
            raise _BudgetStop
        done = [r for r in rollouts if r is not None]
        out, start = [], 0
        for _, batch in items:
            chunk = done[start : start + len(batch)]
            start += len(batch)
            out.append(
                EvaluationBatch(
                    outputs=[r.prediction for r in chunk],
                    scores=[r.score for r in chunk],
                    trajectories=list(chunk) if capture_traces else None,
                )
            )
        return out

    def make_reflective_dataset(
        self,
        candidate: dict[str, str],
        eval_batch: Any,
        components_to_update: list[str],
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for path in components_to_update:
            records = []
            for position, rollout in enumerate(eval_batch.trajectories or []):
                record = self._record(path, position, rollout, candidate)
                if record is not None:
                    records.append(record)
            if records:
                out[path] = records
        if not out:
            raise DsxError(
                "GEPA: no run of the minibatch reached the predictors "
                f"{components_to_update}; nothing to reflect on"
            )
        return out

    def _record(
        self, path: str, position: int, rollout: Rollout, candidate: dict[str, str]
    ) -> dict[str, Any] | None:
        calls = [step for step in rollout.steps if step[0] == path]
        if rollout.error is not None:
            if not self.opt.add_format_failure_as_feedback:
                return None
            inputs = calls[-1][1] if calls else rollout.example.inputs().to_dict()
            return {
                "Inputs": {k: str(v) for k, v in inputs.items()},
                "Generated Outputs": f"(the run failed: {rollout.error})",
                "Feedback": f"The program failed with {rollout.error}. Make the step's output "
                "follow the required format.",
            }
        if not calls:
            return None
        # several calls of one predictor in a run: one of them, the same one on every rerun
        pick = random.Random(f"{self.opt.seed}:{path}:{position}:{sorted(candidate.items())}")
        _, inputs, outputs = pick.choice(calls)
        feedback = rollout.feedback
        if self.arity >= 5:
            metric = self.opt.metric
            assert metric is not None
            pred_trace = [(p, i, o) for p, i, o in rollout.trace if i == inputs and o is outputs]
            _, feedback = score_and_feedback(
                metric(rollout.example, rollout.prediction, rollout.trace, path, pred_trace)
            )
        if feedback is None:
            feedback = f"This trajectory got a score of {rollout.score}."
        shown = outputs.to_dict() if hasattr(outputs, "to_dict") else {"output": outputs}
        return {
            "Inputs": {k: str(v) for k, v in inputs.items()},
            "Generated Outputs": {k: str(v) for k, v in shown.items()},
            "Feedback": feedback,
        }

    def _propose(
        self,
        candidate: dict[str, str],
        reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
        components_to_update: list[str],
    ) -> dict[str, str]:
        opt = self.opt
        out: dict[str, str] = {}
        for path in components_to_update:
            if path not in reflective_dataset:
                continue
            if (reason := opt.budget_exhausted()) is not None:
                opt.stopped = reason
                raise _BudgetStop
            self.reflections += 1
            reflect = Predict(ProposeFromFeedback, lm=opt.reflection_lm)
            try:
                pred = reflect(
                    current_instruction=candidate[path],
                    examples_with_feedback=_format_records(reflective_dataset[path]),
                )
            except Exception as exc:
                opt.log.append(
                    {
                        "event": "proposal",
                        "predictor": path,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
                opt.say(f"GEPA: reflecting on `{path}` failed: {type(exc).__name__}: {exc}")
                raise
            text = clean_instruction(str(pred.new_instruction))
            opt.log.append({"event": "proposal", "predictor": path, "instruction": text})
            if text:
                out[path] = text
        return out

    # -- resuming -------------------------------------------------------------------------------
    def get_adapter_state(self) -> dict[str, Any]:
        # gepa saves this with its state at every iteration: the random choices made so far,
        # so a resumed run draws what the uninterrupted one would have drawn
        sampler = self.sampler
        return {
            "rng": self.rng.getstate(),
            "sampler": {
                "shuffled_ids": list(sampler.shuffled_ids),
                "epoch": sampler.epoch,
                "id_freqs": dict(sampler.id_freqs),
                "last_trainset_size": sampler.last_trainset_size,
            },
        }

    def set_adapter_state(self, state: dict[str, Any]) -> None:
        if "rng" in state:
            self.rng.setstate(state["rng"])
        saved = state.get("sampler")
        if saved:
            from collections import Counter

            self.sampler.shuffled_ids = list(saved["shuffled_ids"])
            self.sampler.epoch = saved["epoch"]
            self.sampler.id_freqs = Counter(saved["id_freqs"])
            self.sampler.last_trainset_size = saved["last_trainset_size"]

    # -- the run --------------------------------------------------------------------------------
    def perfect(self, gepa_state: Any) -> bool:
        """Whether a candidate aces the valset: then nothing can replace it as the best
        (ties keep the earlier candidate), and the rest of the budget would buy nothing."""
        if not self.opt.skip_perfect_score:
            return False
        best = max(gepa_state.program_full_scores_val_set, default=None)
        if best is None or best < self.opt.perfect_score:
            return False
        self.opt.say(
            f"GEPA: candidate {gepa_state.program_full_scores_val_set.index(best)} is perfect on "
            "the valset; stopping"
        )
        return True

    def optimize(self, budget: int, run_dir: str | None) -> GEPAResults | None:
        require("optimize", "gepa", feature="GEPA")  # missing: names the extra
        import gepa
        from gepa.strategies.batch_sampler import EpochShuffledBatchSampler
        from gepa.strategies.candidate_selector import (
            CurrentBestCandidateSelector,
            ParetoCandidateSelector,
        )

        opt = self.opt
        self.sampler = EpochShuffledBatchSampler(opt.reflection_minibatch_size, rng=self.rng)
        selector = (
            ParetoCandidateSelector(rng=self.rng)
            if opt.candidate_selection_strategy == "pareto"
            else CurrentBestCandidateSelector()
        )
        seed = {path: p.signature.instructions for path, p in self.program.named_predictors()}
        reporter: Any = _Reporter(self)
        result: Any
        try:
            result = gepa.optimize(
                seed_candidate=seed,
                trainset=self.train,
                valset=self.val,
                adapter=self,  # type: ignore[arg-type]
                candidate_selection_strategy=selector,
                batch_sampler=self.sampler,
                skip_perfect_score=opt.skip_perfect_score,
                perfect_score=opt.perfect_score,
                use_merge=opt.use_merge,
                max_merge_invocations=opt.max_merge_invocations or 0,
                max_metric_calls=budget,
                stop_callbacks=[
                    lambda gepa_state: opt.budget_exhausted() is not None,
                    self.perfect,
                ],
                logger=_Log(opt),
                callbacks=[reporter],
                run_dir=run_dir,
                track_best_outputs=opt.track_best_outputs,
                display_progress_bar=False,
                raise_on_exception=True,
                seed=opt.seed,
            )
        except _BudgetStop:
            if self.state is None:  # stopped while scoring the student itself
                return None
            from gepa import GEPAResult

            result = GEPAResult.from_state(self.state, run_dir=run_dir, seed=opt.seed)
        if opt.stopped is None and (reason := opt.budget_exhausted()) is not None:
            opt.stopped = reason
        return self.results(result)

    def results(self, result: Any) -> GEPAResults:
        instructions = [dict(c) for c in result.candidates]
        return GEPAResults(
            instructions=instructions,
            candidates=[self.build(c) for c in instructions],
            parents=[list(p) for p in result.parents],
            val_aggregate_scores=list(result.val_aggregate_scores),
            val_subscores=[dict(s) for s in result.val_subscores],
            per_val_instance_best_candidates={
                k: set(v) for k, v in result.per_val_instance_best_candidates.items()
            },
            discovery_eval_counts=list(result.discovery_eval_counts),
            total_metric_calls=result.total_metric_calls,
            num_full_val_evals=result.num_full_val_evals,
            run_dir=result.run_dir,
            seed=result.seed,
            best_outputs_valset=result.best_outputs_valset,
        )


class _Reporter:
    """gepa callbacks → dsx progress lines and log entries."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.best: float | None = None

    def on_iteration_start(self, event: Any) -> None:
        self.run.state = event["state"]

    def on_valset_evaluated(self, event: Any) -> None:
        opt = self.run.opt
        score = round(100 * event["average_score"], 2)
        self.best = score if self.best is None else max(self.best, score)
        index = event["candidate_idx"]
        opt.log.append(
            {
                "event": "candidate",
                "candidate": index,
                "iteration": event["iteration"],
                "parents": list(event["parent_ids"]),
                "instructions": dict(event["candidate"]),
                "score": score,
            }
        )
        what = "the student" if index == 0 else f"candidate {index}"
        opt.say(
            f"GEPA iteration {event['iteration']}: {what} scored {score:.2f}% on the valset · "
            f"best {self.best:.2f}%"
        )

    def on_candidate_rejected(self, event: Any) -> None:
        opt = self.run.opt
        opt.log.append(
            {
                "event": "rejected",
                "iteration": event["iteration"],
                "old_score": event["old_score"],
                "new_score": event["new_score"],
            }
        )
        opt.say(
            f"GEPA iteration {event['iteration']}: proposal not better on the minibatch "
            f"({event['old_score']:g} → {event['new_score']:g})"
        )


class _Log:
    """gepa's log lines go into ``optimizer.log`` (they are too chatty for the display)."""

    def __init__(self, opt: GEPA) -> None:
        self.opt = opt

    def log(self, message: str) -> None:
        self.opt.log.append({"event": "gepa", "text": str(message)})


def _format_records(records: Sequence[Mapping[str, Any]]) -> str:
    blocks = []
    for i, record in enumerate(records, 1):
        lines = [f"### Run {i}"]
        for key, value in record.items():
            lines.append(f"#### {key}")
            if isinstance(value, Mapping):
                lines.extend(f"{k}: {v}" for k, v in value.items())
            else:
                lines.append(str(value))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
