"""``BootstrapFinetune``: fine-tune the predictors' LMs on the program's own passing traces.

DSPy's weight optimizer: the teacher (default: the student) runs over the trainset with
tracing on; the runs that pass the metric become chat training data — one set per LM
(``multitask=True``) or per predictor — rendered by the student's predictors through the
adapter used at inference (:mod:`dsx.teleprompt.finetune_data`); each set fine-tunes its
LM through the LM's provider (``LM.finetune``: the OpenAI-compatible API, or local LoRA for a
:class:`~dsx.runtime.finetune.local.LocalLM`); the returned program's predictors use the
fine-tuned models, whose reference (provider, model, base model, data hash, job id) is part
of each predictor's learned state (``lm.finetuned``).

A job that fails, is cancelled or times out raises :class:`~dsx.runtime.finetune.FinetuneError`
saying why; the student is never modified, so the previous state stays as it was.
Composition with prompt optimizers (DSPy's ``BetterTogether``) is plain chaining:
``BootstrapFewShot(...).compile(BootstrapFinetune(...).compile(p, trainset=t), trainset=t)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from dsx.errors import DsxError
from dsx.runtime.adapters.base import Adapter
from dsx.runtime.example import Example
from dsx.runtime.finetune.base import FinetuneError, FinetuneJob, provider_for
from dsx.runtime.metrics import call_metric, score_of
from dsx.runtime.module import Module
from dsx.runtime.settings import settings
from dsx.teleprompt._rollouts import run_rollouts
from dsx.teleprompt.base import (
    OptimizerSettingError,
    Teleprompter,
    check_examples,
    check_same_structure,
)
from dsx.teleprompt.finetune_data import (
    EXPORT_FORMATS,
    FinetuneData,
    TraceRecord,
    build_finetune_data,
    write_jsonl,
)

__all__ = ["BootstrapFinetune"]


class BootstrapFinetune(Teleprompter):
    """Fine-tunes the predictors' LMs on the program's own passing runs (DSPy's semantics).

    Args:
        metric: ``(example, prediction, trace)`` → number/bool; a run's calls become training
            data when it is truthy (or ``>= metric_threshold``). ``None``: every run that
            does not raise.
        multitask: one fine-tuning job per distinct LM on all its predictors' calls (``True``)
            or one job per predictor.
        train_kwargs: the fine-tuning job's settings (``n_epochs``, ``learning_rate``, ...;
            see the provider), the same for every job.
        adapter: the adapter that renders the training prompts; give the one used at
            inference (``None``: ``dsx.settings.adapter``, else ChatAdapter). In ``.dsx``:
            ``"chat"`` or ``"json"``.
        exclude_demos: train on prompts without demos, and drop the demos of the result.
        metric_threshold: the score a run needs to pass.
        provider: the fine-tuning provider (``"openai"``, ``"local"``; ``None``: the LM's own).
        timeout: seconds to wait for each fine-tuning job (``None``: no limit).
        poll_interval: the first wait between two job status checks (it backs off).
        export_dir: also write each training set there as JSONL.
        export_format: the layout of those files: ``"openai"`` (chat), ``"gemini"``,
            ``"anthropic"`` or ``"prompt_completion"`` (see ``finetune_data.write_jsonl``).
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress`` (see :class:`~dsx.teleprompt.Teleprompter`).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        multitask: bool = True,
        train_kwargs: dict[str, Any] | None = None,
        adapter: Adapter | Literal["chat", "json"] | None = None,
        exclude_demos: bool = False,
        metric_threshold: float | None = None,
        provider: Literal["openai", "local"] | None = None,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        export_dir: str | None = None,
        export_format: Literal["openai", "gemini", "anthropic", "prompt_completion"] = "openai",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if export_format not in EXPORT_FORMATS:
            raise OptimizerSettingError(
                f"BootstrapFinetune(export_format={export_format!r}): use one of "
                + ", ".join(EXPORT_FORMATS)
            )
        self.metric = metric
        self.multitask = multitask
        self.train_kwargs = dict(train_kwargs or {})
        self.adapter = adapter
        self.exclude_demos = exclude_demos
        self.metric_threshold = metric_threshold
        self.provider = provider
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.export_dir = export_dir
        self.export_format = export_format
        #: The jobs of the last compile (for their events and ids).
        self.jobs: list[FinetuneJob] = []
        #: The training sets of the last compile.
        self.data: list[FinetuneData] = []

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        # How long to wait and where to export do not change the model, so they are not
        # part of what defines the result.
        for key in ("jobs", "data", "timeout", "poll_interval", "export_dir", "export_format"):
            out.pop(key, None)
        if isinstance(self.adapter, Adapter):
            out["adapter"] = type(self.adapter).__name__
        return out

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | Sequence[Module] | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        """Fine-tune ``student``'s LMs; ``teacher`` may be one program or a list (as in
        DSPy: every teacher runs over the trainset and all their passing runs count)."""
        examples = check_examples(trainset)
        program = student.deepcopy()
        for path, pred in program.named_predictors():
            if pred.lm is None:  # DSPy's set_missing_predictor_lms: the context LM
                if settings.lm is None:
                    raise DsxError(
                        f"BootstrapFinetune: predictor {path!r} has no LM and none is "
                        "configured; give it one (program.set_lm(lm)) or dsx.configure(lm=...)"
                    )
                pred.lm = settings.lm
        given = [teacher] if isinstance(teacher, Module) else list(teacher or [])
        runners = [t.deepcopy() for t in given] or [program.deepcopy()]
        for runner in runners:
            check_same_structure(program, runner)
        self.jobs, self.data = [], []
        with self.session(program, *runners):
            records = [r for runner in runners for r in self.traces(runner, examples)]
            passed = sum(r.passed for r in records)
            self.say(f"BootstrapFinetune: {passed}/{len(records)} runs pass the metric")
            self.data = build_finetune_data(
                program,
                records,
                multitask=self.multitask,
                adapter=_adapter(self.adapter),
                exclude_demos=self.exclude_demos,
                seed=self.seed,
            )
            tuned = self._finetune(program, self.data)
        for data, lm in zip(self.data, tuned, strict=True):
            for path in data.predictors:
                pred = dict(program.named_predictors())[path]
                pred.lm = lm
                if self.exclude_demos:
                    pred.demos = []
        program._compiled = True  # type: ignore[attr-defined]
        return program

    def traces(self, program: Module, examples: list[Example]) -> list[TraceRecord]:
        """Run ``program`` on every example with tracing; one record per run (in order)."""
        metric = self.metric

        def score(example: Example, pred: Any, trace: list[Any]) -> tuple[float, str | None]:
            if metric is None:
                return 1.0, None
            return score_of(call_metric(metric, example, pred, trace)), None

        rollouts = run_rollouts(
            self,
            [(program, ex) for ex in examples],
            score=score,
            desc="BootstrapFinetune traces",
            inline=getattr(metric, "_dsx_inline", False) or metric is None,
            failure_score=0.0,
        )
        records = []
        for i, rollout in enumerate(rollouts):
            if rollout is None:  # the budget kept it from starting
                self.stopped = self.stopped or self.budget_exhausted()
                continue
            ok = rollout.error is None and (
                rollout.score >= self.metric_threshold
                if self.metric_threshold is not None
                else bool(rollout.score)
            )
            records.append(TraceRecord(i, rollout.score, ok, list(rollout.steps)))
            entry: dict[str, Any] = {"event": "run", "example": i, "passed": ok}
            if rollout.error:
                entry["error"] = rollout.error
            else:
                entry["score"] = rollout.score
            self.log.append(entry)
        return records

    def _finetune(self, program: Module, sets: list[FinetuneData]) -> list[Any]:
        preds = dict(program.named_predictors())
        for data in sets:
            if not data.examples:
                raise FinetuneError(
                    f"BootstrapFinetune: no run passed the metric, so there is no training "
                    f"data for {', '.join(data.predictors)}; the program is left as it was. "
                    "Check the metric, the teacher or metric_threshold."
                )
        if self.export_dir is not None:
            for data in sets:
                name = "multitask" if self.multitask else data.predictors[0]
                path = Path(self.export_dir) / f"{name}-lm{data.lm_key}.jsonl"
                write_jsonl(data.examples, path, self.export_format)
        jobs: list[FinetuneJob] = []
        try:
            for data in sets:
                lm = preds[data.predictors[0]].lm
                assert lm is not None
                job = provider_for(lm, self.provider).start(
                    lm,
                    data.examples,
                    dict(self.train_kwargs),
                    poll_interval=self.poll_interval,
                    timeout=self.timeout,
                )
                jobs.append(job)
                self.jobs.append(job)
                self.log.append(
                    {
                        "event": "finetune",
                        "job": job.id,
                        "provider": job.provider,
                        "base_model": job.base_model,
                        "examples": len(data.examples),
                        "data_hash": data.hash,
                        "predictors": data.predictors,
                    }
                )
                self.say(
                    f"BootstrapFinetune: {job.provider} job {job.id} fine-tunes "
                    f"{job.base_model} on {len(data.examples)} examples "
                    f"({', '.join(data.predictors)})"
                )
            tuned = []
            for job in jobs:
                lm = job.result()
                self.say(f"BootstrapFinetune: job {job.id} done: {lm.model}")
                self.log.append({"event": "result", "job": job.id, "model": lm.model})
                tuned.append(lm)
            return tuned
        except BaseException as exc:
            for job in jobs:  # one failed: the others would give a half-tuned program
                if not job.done:
                    with contextlib.suppress(FinetuneError):
                        job.cancel()
            self.log.append({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise


def _adapter(choice: Adapter | str | None) -> Adapter | None:
    if choice is None or isinstance(choice, Adapter):
        return choice
    from dsx.runtime.adapters import ChatAdapter, JSONAdapter

    if choice == "chat":
        return ChatAdapter()
    if choice == "json":
        return JSONAdapter()
    raise DsxError(
        f"BootstrapFinetune: adapter must be 'chat', 'json' or an Adapter, not {choice!r}"
    )
