"""``dsx.Evaluate``: score a program on a dataset, every example concurrently.

Examples run on one asyncio event loop through the batch engine (:mod:`dsx.runtime.parallel`):
async programs natively, sync ones in a thread pool of ``num_threads``. A failing example
scores ``failure_score`` and is reported; ``max_errors`` failures stop the run cleanly with
the reason in :attr:`EvaluationResult.stopped`; Ctrl-C returns what finished so far.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsx.errors import DsxError
from dsx.runtime import callbacks as _cb
from dsx.runtime._progress import Progress, Reporter
from dsx.runtime.example import Example
from dsx.runtime.metrics import Metric, call_metric, score_of
from dsx.runtime.parallel import Engine, Outcome, run_concurrently, run_coroutine_sync
from dsx.runtime.prediction import Prediction
from dsx.runtime.settings import settings
from dsx.runtime.usage import UsageReport, track_usage

__all__ = ["EvaluationResult", "Evaluate"]

logger = logging.getLogger("dsx.evaluate")

_UNSET: Any = object()


@dataclass
class EvaluationResult:
    """What an evaluation produced.

    Attributes:
        score: the mean metric over the examples that finished, in percent (two decimals).
        results: ``(example, prediction, score)`` per finished example, in devset order;
            a failed example has an empty ``Prediction`` and ``failure_score``.
        failures: ``(index, example, exception)`` per failed example.
        num_examples: the size of the devset.
        stopped: why the run ended before every example ran (``max_errors``, a budget,
            ``"interrupted"`` for Ctrl-C), or ``None``.
        elapsed: wall-clock seconds.
        usage: tokens per model and cost of the LM calls made (cache hits excluded).
        save_errors: why ``save_as_json``/``save_as_csv`` could not be written, one line
            each (the result is returned all the same).
    """

    score: float
    results: list[tuple[Any, Prediction, float]]
    failures: list[tuple[int, Any, BaseException]] = field(default_factory=list)
    num_examples: int = 0
    stopped: str | None = None
    elapsed: float = 0.0
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    cost: float = 0.0
    indices: list[int] = field(default_factory=list, repr=False)
    save_errors: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """How many examples failed."""
        return len(self.failures)

    @property
    def num_done(self) -> int:
        return len(self.results)

    @property
    def complete(self) -> bool:
        """Whether every example ran."""
        return self.stopped is None and self.num_done == self.num_examples

    def __float__(self) -> float:
        return self.score

    def __repr__(self) -> str:
        extra = f", stopped={self.stopped!r}" if self.stopped else ""
        return (
            f"EvaluationResult(score={self.score}, done={self.num_done}/{self.num_examples}, "
            f"errors={self.errors}{extra})"
        )

    # -- export ------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per finished example: ``example.*``, ``pred.*``, ``score``, ``error``."""
        from dsx.runtime.adapters._values import jsonable

        errors = {i: exc for i, _, exc in self.failures}
        out = []
        for index, (example, pred, score) in zip(self.indices, self.results, strict=True):
            row: dict[str, Any] = {"index": index}
            for k, v in _items(example):
                row[f"example.{k}"] = jsonable(v)
            for k, v in _items(pred):
                row[f"pred.{k}"] = jsonable(v)
            row["score"] = score
            exc = errors.get(index)
            row["error"] = f"{type(exc).__name__}: {exc}" if exc is not None else None
            out.append(row)
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON (summary and one record per example); written to ``path`` if given."""
        from dsx.runtime.adapters._values import jsonable

        errors = {i: exc for i, _, exc in self.failures}
        records = []
        for index, (example, pred, score) in zip(self.indices, self.results, strict=True):
            exc = errors.get(index)
            records.append(
                {
                    "index": index,
                    "example": {k: jsonable(v) for k, v in _items(example)},
                    "prediction": {k: jsonable(v) for k, v in _items(pred)},
                    "score": score,
                    "error": f"{type(exc).__name__}: {exc}" if exc is not None else None,
                }
            )
        doc = {
            "score": self.score,
            "num_examples": self.num_examples,
            "num_done": self.num_done,
            "errors": self.errors,
            "stopped": self.stopped,
            "elapsed": round(self.elapsed, 3),
            "usage": self.usage,
            "cost": self.cost,
            "results": records,
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False, default=str)
        if path is not None:
            # A lone surrogate (an escaped one in a reply) is written as its JSON escape.
            _write_file(path, text + "\n")
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        """One CSV row per example (lists and dicts as JSON); written to ``path`` if given."""
        rows = self.rows()
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns) or ["index", "score"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        text = buf.getvalue()
        if path is not None:
            _write_file(path, text)
        return text

    def to_pandas(self) -> Any:
        """The rows as a pandas ``DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise DsxError(
                "EvaluationResult.to_pandas() needs pandas: pip install pandas "
                "(or use to_csv() / to_json())"
            ) from None
        return pd.DataFrame(self.rows())

    def table(self, max_rows: int | None = 20, *, width: int = 30) -> str:
        """A plain-text table of the first ``max_rows`` examples."""
        rows = self.rows()[: max_rows if max_rows is not None else None]
        if not rows:
            return "(no results)"
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(k for k in row if k != "error" or row[k]))
        cells = [[_short(_cell(row.get(c)), width) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        line = " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
        out = [line, "-+-".join("-" * w for w in widths)]
        out += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        more = self.num_done - len(rows)
        if more > 0:
            out.append(f"... {more} more")
        return "\n".join(out)


def _items(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, Example):
        return obj.items()
    if isinstance(obj, dict):
        return list(obj.items())
    return [("value", obj)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_EVALUATE_ARGS = ("program", "metric", "devset", "num_threads", "display_progress", "display_table")


class Evaluate:
    """Score a program on a devset with a metric, running examples concurrently.

    Args:
        devset: ``dsx.Example`` objects with their inputs marked (``with_inputs``).
        metric: ``(example, prediction)`` or ``(example, prediction, trace)`` → number/bool.
        num_threads: how many examples run at once (default: ``dsx.settings.num_threads``).
        display_progress: show a progress bar with the running score (``True``: stderr;
            or a function that takes progress lines).
        display_table: print a table of the results (``True``: 20 rows; an int: that many).
        max_errors: stop after this many failed examples (default:
            ``dsx.settings.max_errors``).
        failure_score: the score of an example whose program or metric raised.
        provide_traceback: print each failure's traceback (otherwise one line each).
        save_as_json, save_as_csv: write the results there after each run.

    Calling it returns an :class:`EvaluationResult`; ``await evaluate.acall(program)`` does
    the same inside an event loop.

    Example:
        >>> evaluate = dsx.Evaluate(devset=dev, metric=dsx.exact_match(), num_threads=32)
        >>> evaluate(program).score
        71.5
    """

    #: Callbacks of this evaluator only (``on_evaluate_start``/``end``).
    callbacks = _cb.CallbackList()

    def __init__(
        self,
        *,
        devset: Sequence[Any],
        metric: Metric | None = None,
        num_threads: int | None = None,
        display_progress: Reporter = True,
        display_table: bool | int = False,
        max_errors: int | None = None,
        failure_score: float = 0.0,
        provide_traceback: bool | None = None,
        save_as_json: str | Path | None = None,
        save_as_csv: str | Path | None = None,
    ) -> None:
        self.devset = list(devset)
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.display_table = display_table
        self.max_errors = max_errors
        self.failure_score = failure_score
        self.provide_traceback = provide_traceback
        self.save_as_json = save_as_json
        self.save_as_csv = save_as_csv

    def __call__(
        self,
        program: Any,
        metric: Metric | None = None,
        devset: Sequence[Any] | None = None,
        *,
        num_threads: int | None = None,
        display_progress: Reporter | None = None,
        display_table: bool | int | None = None,
    ) -> EvaluationResult:
        """Evaluate ``program``; the keyword arguments override the constructor's for this run."""
        args = (program, metric, devset, num_threads, display_progress, display_table)
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = dict(zip(_EVALUATE_ARGS, args, strict=True))
                return _cb.call_sync("evaluate", self, hooks, inputs, self._evaluate, *args)
        return self._evaluate(*args)

    def _evaluate(
        self,
        program: Any,
        metric: Metric | None,
        devset: Sequence[Any] | None,
        num_threads: int | None,
        display_progress: Reporter | None,
        display_table: bool | int | None,
    ) -> EvaluationResult:
        run = self._prepare(program, metric, devset, num_threads, display_progress)
        with track_usage() as usage:
            try:
                run_coroutine_sync(lambda: run.go())
            except KeyboardInterrupt:
                # Ctrl-C: keep what finished (the run marked itself "interrupted").
                run.outcome.stopped = run.outcome.stopped or "interrupted"
        return self._finish(run, usage, display_table)

    async def acall(
        self,
        program: Any,
        metric: Metric | None = None,
        devset: Sequence[Any] | None = None,
        *,
        num_threads: int | None = None,
        display_progress: Reporter | None = None,
        display_table: bool | int | None = None,
    ) -> EvaluationResult:
        """The async form of calling the evaluator."""
        args = (program, metric, devset, num_threads, display_progress, display_table)
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = dict(zip(_EVALUATE_ARGS, args, strict=True))
                return await _cb.call_async("evaluate", self, hooks, inputs, self._aevaluate, *args)
        return await self._aevaluate(*args)

    async def _aevaluate(
        self,
        program: Any,
        metric: Metric | None,
        devset: Sequence[Any] | None,
        num_threads: int | None,
        display_progress: Reporter | None,
        display_table: bool | int | None,
    ) -> EvaluationResult:
        run = self._prepare(program, metric, devset, num_threads, display_progress)
        with track_usage() as usage:
            try:
                await run.go()
            except asyncio.CancelledError:
                # Like Ctrl-C on the sync path: keep what finished (the run is marked
                # "interrupted") and return it; the cancellation is consumed here.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
        return self._finish(run, usage, display_table)

    # -- internals (optimizers use these) ----------------------------------------------------
    def _prepare(
        self,
        program: Any,
        metric: Metric | None,
        devset: Sequence[Any] | None,
        num_threads: int | None,
        display_progress: Reporter | None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> _Run:
        metric = metric if metric is not None else self.metric
        if metric is None:
            raise DsxError("Evaluate needs a metric: Evaluate(devset=..., metric=...)")
        examples = list(devset) if devset is not None else self.devset
        for i, ex in enumerate(examples):
            if not isinstance(ex, Example) or ex.input_keys is None:
                raise DsxError(
                    f"devset[{i}] is not a dsx.Example with its inputs marked; build it as "
                    "dsx.Example(question=..., answer=...).with_inputs('question')"
                )
        limit = self.max_errors if self.max_errors is not None else settings.max_errors
        return _Run(
            program=program,
            metric=metric,
            examples=examples,
            concurrency=num_threads or self.num_threads or settings.num_threads,
            max_errors=limit,
            failure_score=self.failure_score,
            provide_traceback=bool(self.provide_traceback),
            display=self.display_progress if display_progress is None else display_progress,
            should_stop=should_stop,
        )

    def _finish(
        self, run: _Run, usage: UsageReport | None, display_table: bool | int | None
    ) -> EvaluationResult:
        result = run.result(usage)
        table = self.display_table if display_table is None else display_table
        if table:
            print(result.table(None if table is True else int(table)))
        # A failed save never loses the evaluation: it is reported after the score and
        # recorded on the result, which is returned all the same.
        for path, write in ((self.save_as_json, result.to_json), (self.save_as_csv, result.to_csv)):
            if path is None:
                continue
            try:
                write(path)
            except (OSError, UnicodeError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                line = f"could not save the results to {path}: {reason}"
                result.save_errors.append(line)
                if run.progress.silent:
                    logger.warning("Evaluate %s", line)
                else:
                    run.progress.note(f"Evaluate: {line}")
        return result


def _write_file(path: str | Path, text: str) -> None:
    """Write a results file atomically: a full disk or a kill mid-write keeps the file that
    was there before, whole (``Path.write_text`` would have truncated it first)."""
    from dsx.runtime._files import atomic_write

    atomic_write(path, text.encode("utf-8", "backslashreplace"), make_parents=False)


class _Run:
    """One evaluation in progress."""

    def __init__(
        self,
        *,
        program: Any,
        metric: Metric,
        examples: list[Any],
        concurrency: int,
        max_errors: int | None,
        failure_score: float,
        provide_traceback: bool,
        display: Reporter,
        should_stop: Callable[[], str | None] | None,
    ) -> None:
        self.program = program
        self.metric = metric
        self.examples = examples
        self.engine = Engine(concurrency)
        self.max_errors = max_errors
        self.failure_score = failure_score
        self.provide_traceback = provide_traceback
        self.should_stop = should_stop
        self.outcome: Outcome[tuple[Prediction, float]] = Outcome(len(examples))
        self.progress = Progress(len(examples), desc="Evaluate", display=display)
        self.score_sum = 0.0
        self.start = time.perf_counter()
        self.elapsed = 0.0
        self.inline_metric = getattr(metric, "_dsx_inline", False) or _is_async(metric)

    async def one(self, example: Example) -> tuple[Prediction, float]:
        pred = await self.engine.call(self.program, (), example.inputs().to_dict())
        if self.inline_metric:
            value = call_metric(self.metric, example, pred, None)
            if hasattr(value, "__await__"):
                value = await value
        else:
            value = await self.engine.in_thread(call_metric, self.metric, example, pred, None)
        return pred, score_of(value)

    def on_done(
        self, index: int, value: tuple[Prediction, float] | None, exc: BaseException | None
    ) -> None:
        if exc is not None:
            self.score_sum += self.failure_score
            example = self.examples[index]
            if self.provide_traceback:
                detail = "".join(traceback.format_exception(exc)).rstrip()
            else:
                detail = f"{type(exc).__name__}: {exc}"
            self.progress.note(
                f"Evaluate: example #{index} failed: {_first_lines(detail, example, self.provide_traceback)}"
            )
        elif value is not None:
            self.score_sum += value[1]
        done = self.outcome.num_done
        score = 100 * self.score_sum / done if done else None
        self.progress.update(done, score=score, errors=len(self.outcome.errors))

    async def go(self) -> None:
        interrupted = False
        try:
            await run_concurrently(
                self.one,
                self.examples,
                concurrency=self.engine.concurrency,
                max_errors=self.max_errors,
                should_stop=self.should_stop,
                on_done=self.on_done,
                outcome=self.outcome,
            )
        except BaseException:
            interrupted = True
            raise
        finally:
            self.engine.close(wait=not interrupted)
            self.elapsed = time.perf_counter() - self.start

    def result(self, usage: UsageReport | None) -> EvaluationResult:
        out = self.outcome
        if not self.elapsed:
            self.elapsed = time.perf_counter() - self.start
        failures = {i: exc for i, exc in out.errors}
        results: list[tuple[Any, Prediction, float]] = []
        indices = []
        for i, example in enumerate(self.examples):
            if not out.done[i]:
                continue
            indices.append(i)
            value = out.results[i]
            if i in failures or value is None:
                results.append((example, Prediction(), float(self.failure_score)))
            else:
                results.append((example, value[0], value[1]))
        total = sum(s for _, _, s in results)
        score = round(100 * total / len(results), 2) if results else 0.0
        result = EvaluationResult(
            score=score,
            results=results,
            failures=[(i, self.examples[i], failures[i]) for i in sorted(failures)],
            num_examples=len(self.examples),
            stopped=out.stopped,
            elapsed=self.elapsed,
            usage=usage.totals() if usage is not None else {},
            cost=usage.cost if usage is not None else 0.0,
            indices=indices,
        )
        self.progress.close(self._summary(result))
        if out.stopped is not None and self.progress.silent:
            logger.warning("Evaluate stopped early: %s", out.stopped)
        return result

    def _summary(self, result: EvaluationResult) -> str:
        done, n = result.num_done, result.num_examples
        total = sum(s for _, _, s in result.results)
        text = f"Evaluate: {total:g} / {done} ({result.score:.2f}%)"
        if result.errors:
            text += f" · {result.errors} failed"
        text += f" · {result.elapsed:.1f}s"
        if result.stopped is not None:
            text += f"\nEvaluate stopped after {done} of {n} examples: {result.stopped}"
        return text


def _first_lines(detail: str, example: Any, full: bool) -> str:
    if full:
        return f"{example!r}\n{detail}"
    first = detail.splitlines()[0] if detail else ""
    return first if len(first) <= 300 else first[:299] + "…"


def _is_async(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(type(fn), "__call__", None)  # noqa: B004
    )
