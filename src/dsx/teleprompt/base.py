"""The optimizer interface and what every optimizer shares: seed, budget, progress, log.

``compile(student, *, trainset, teacher=None, valset=None)`` returns a *new* program; the
student is never modified. Every optimizer takes the same run options:

* ``seed`` — every random choice comes from ``random.Random`` seeded from it, and results
  are assembled in dataset order (never in completion order), so the same seed and the same
  LM answers give the same program whatever the concurrency.
* ``max_lm_calls`` / ``max_cost`` — a budget. It is checked before each program run starts;
  once reached, nothing new starts, runs in flight finish, and the optimizer returns the
  best program found so far (``optimizer.stopped`` says why). LM calls are the requests the
  programs' LMs answer, cache hits included (so a rerun over a warm cache stops at the same
  point); cost counts only what providers charged.
* ``num_threads`` — how many program runs go at once (default ``dsx.settings.num_threads``).
* ``display_progress`` — ``True`` (stderr), ``False``, or a function that takes lines.

``optimizer.log`` records what was tried: one dict per event, each with an ``"event"`` key
(``"run"`` for one program run — with ``"error"`` when it failed —, ``"candidate"``,
``"round"``, ``"result"``).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from dsx.errors import DsxError
from dsx.runtime import _otel
from dsx.runtime._progress import Progress, Reporter
from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM
from dsx.runtime.module import Module
from dsx.runtime.settings import settings
from dsx.runtime.usage import UsageReport, track_usage

__all__ = ["Budget", "OptimizerSettingError", "Teleprompter"]


class OptimizerSettingError(DsxError, ValueError):
    """An optimizer was given a setting it cannot work with; the message says how to fix it."""


class Budget:
    """LM calls and cost spent by an optimization, against optional limits."""

    def __init__(self, *, max_lm_calls: int | None = None, max_cost: float | None = None) -> None:
        self.max_lm_calls = max_lm_calls
        self.max_cost = max_cost
        self._lms: dict[int, tuple[BaseLM, int]] = {}
        self.usage: UsageReport | None = None

    def watch(self, *things: Any) -> None:
        """Count the calls of these LMs, or of every LM that these programs' predictors use."""
        for thing in things:
            if thing is None:
                continue
            if isinstance(thing, Module):
                self.watch(*(p.lm for p in thing.predictors()))
            elif isinstance(thing, BaseLM) and id(thing) not in self._lms:
                self._lms[id(thing)] = (thing, thing.num_calls)

    @property
    def lm_calls(self) -> int:
        return sum(lm.num_calls - start for lm, start in list(self._lms.values()))

    @property
    def cost(self) -> float:
        return self.usage.cost if self.usage is not None else 0.0

    def exhausted(self) -> str | None:
        """Why the budget is used up, or ``None``."""
        if self.max_lm_calls is not None and self.lm_calls >= self.max_lm_calls:
            return f"budget reached: {self.lm_calls} LM calls (max_lm_calls={self.max_lm_calls})"
        if self.max_cost is not None and self.cost >= self.max_cost:
            return f"budget reached: ${self.cost:.4f} spent (max_cost={self.max_cost})"
        return None


class _Session:
    """The shared state of one optimization (nested optimizers join their parent's)."""

    def __init__(
        self, owner: Teleprompter, budget: Budget, say: Callable[[str], None], display: Reporter
    ) -> None:
        self.owner = owner
        self.budget = budget
        self.say = say
        self.display = display


T = TypeVar("T")

_session: contextvars.ContextVar[_Session | None] = contextvars.ContextVar(
    "dsx_optimizer_session", default=None
)


class Teleprompter:
    """Base class of optimizers. ``compile`` returns a *new* program; the student is untouched.

    Args:
        seed: seeds every random choice.
        max_lm_calls: stop after about this many LM calls (see the module docs).
        max_cost: stop after about this much provider cost in USD.
        num_threads: program runs at once (default: ``dsx.settings.num_threads``).
        display_progress: ``True`` (stderr), ``False`` or a function taking progress lines.
    """

    #: Whether the compiled program's learned state fits the IR (``dsx build`` needs it).
    exports_to_ir: bool = True
    #: Whether ``compile`` calls an LM (``dsx build``/``optimize`` check for one up front).
    needs_lm: bool = True

    @classmethod
    def requires_lm(cls, settings: Mapping[str, Any]) -> bool:
        """Whether compiling with ``settings`` (an optimize block's) calls an LM; the
        class's :attr:`needs_lm`, unless the settings decide it (see ``Ensemble``)."""
        return cls.needs_lm

    def __init__(
        self,
        *,
        seed: int = 0,
        max_lm_calls: int | None = None,
        max_cost: float | None = None,
        num_threads: int | None = None,
        display_progress: Reporter = True,
    ) -> None:
        self.seed = seed
        self.max_lm_calls = max_lm_calls
        self.max_cost = max_cost
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.log: list[dict[str, Any]] = []
        #: Why the last compile stopped early (a budget), or ``None``.
        self.stopped: str | None = None
        #: LM calls and cost of the last compile.
        self.lm_calls = 0
        self.cost = 0.0
        #: Where progress lines go instead of ``display_progress`` (``dsx build`` sets it).
        self.on_progress: Callable[[str], Any] | None = None

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The settings that define this optimizer's result (for build caching)."""
        return {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_") and k not in _RUN_STATE and _jsonable(v)
        }

    def run_state(
        self,
        program: Module,
        datasets: Sequence[Sequence[Example] | None],
        settings: dict[str, Any] | None = None,
    ) -> Path | None:
        """This run's resumable-state directory under ``run_dir`` (``None`` without one).

        The key hashes what defines the result: the optimizer, ``settings`` (default: its
        own), the program, the datasets and the metric's name (see ``_resume``).
        """
        root = getattr(self, "run_dir", None)
        if root is None:
            return None
        from dsx.teleprompt._resume import run_dir_for

        return run_dir_for(
            root,
            type(self).__name__,
            program=program,
            datasets=datasets,
            settings=self.settings() if settings is None else settings,
            metric=getattr(self, "metric", None),
        )

    def score_trajectory(self) -> list[float]:
        """The best score so far (percent) after each candidate the last compile scored in
        full (minibatch scores, which are not comparable, are left out)."""
        best: float | None = None
        out = []
        for event in self.log:
            if event.get("event") not in ("trial", "candidate"):
                continue
            score = event.get("score")
            if event.get("kind") == "minibatch" or not isinstance(score, int | float):
                continue
            best = float(score) if best is None else max(best, float(score))
            out.append(round(best, 2))
        return out

    # -- helpers for subclasses -------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        return self.num_threads or settings.num_threads

    def rng(self, *tags: Any) -> random.Random:
        """A random generator determined by the seed and ``tags`` (stable across processes)."""
        return random.Random(":".join(["dsx", str(self.seed), *map(str, tags)]))

    @contextlib.contextmanager
    def session(self, *watch: Any) -> Iterator[_Session]:
        """Run one compile: reset the log, count the budget, report progress at the end.

        Inside another optimizer's session (random search bootstrapping a candidate) it
        joins that one: the budget and the progress display are shared.
        """
        self.log = []
        self.stopped = None
        parent = _session.get()
        if parent is not None:
            parent.budget.watch(settings.lm, *watch)
            before_calls, before_cost = parent.budget.lm_calls, parent.budget.cost
            yield parent
            self.lm_calls = parent.budget.lm_calls - before_calls
            self.cost = parent.budget.cost - before_cost
            return
        budget = Budget(max_lm_calls=self.max_lm_calls, max_cost=self.max_cost)
        budget.watch(settings.lm, *watch)
        say = self._sayer()
        sess = _Session(self, budget, say, self._display())
        token = _session.set(sess)
        name = type(self).__name__
        attributes = {"dsx.span.kind": "optimize", "dsx.optimizer": name}
        try:
            with _otel.span(f"optimize {name}", attributes) as span, track_usage() as usage:
                budget.usage = usage
                try:
                    yield sess
                finally:
                    if span is not None:
                        span.set_attribute("dsx.optimizer.lm_calls", budget.lm_calls)
                        trajectory = self.score_trajectory()
                        if trajectory:
                            span.set_attribute("dsx.optimizer.best_score", trajectory[-1])
        finally:
            _session.reset(token)
            self.lm_calls, self.cost = budget.lm_calls, budget.cost
        summary = f"{type(self).__name__}: done · {self.lm_calls} LM calls"
        if self.cost:
            summary += f" · ${self.cost:.4f}"
        if self.stopped:
            summary += f" · stopped early ({self.stopped})"
        say(summary)

    def progress(self, total: int, desc: str) -> Progress:
        """A progress display; inside a parent optimizer's session it is transient."""
        sess = _session.get()
        if sess is None:
            return Progress(total, desc=desc, display=self._display())
        return Progress(total, desc=desc, display=sess.display, transient=sess.owner is not self)

    def say(self, text: str) -> None:
        """Report a line of progress (only the top-level optimizer's lines are shown)."""
        sess = _session.get()
        if sess is None:
            self._sayer()(text)
        elif sess.owner is self:
            sess.say(text)

    def budget_exhausted(self) -> str | None:
        sess = _session.get()
        return sess.budget.exhausted() if sess is not None else None

    def _display(self) -> Reporter:
        return self.on_progress if self.on_progress is not None else self.display_progress

    def _sayer(self) -> Callable[[str], None]:
        display = self._display()
        if callable(display):
            sink = display

            def send(text: str) -> None:
                sink(text)

            return send
        if not display:
            return lambda text: None
        import sys

        def write(text: str) -> None:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

        return write


def side_by_side(calls: Sequence[Callable[[], T]], limit: int) -> list[T]:
    """Run LM-bound sync stages at once, up to ``limit`` on threads; results in call order.

    Each call runs in a copy of the caller's context (settings, the optimizer's session
    and budget), with progress displays silenced so that stages do not draw over one
    another. The first exception (in call order) is raised once all calls have ended.
    """
    if len(calls) <= 1 or limit <= 1:
        return [call() for call in calls]
    sess = _session.get()
    quiet = None if sess is None else _Session(sess.owner, sess.budget, sess.say, False)

    def run(call: Callable[[], T]) -> T:
        if quiet is not None:
            _session.set(quiet)
        return call()

    workers = min(len(calls), limit)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dsx-stage") as pool:
        futures = [pool.submit(contextvars.copy_context().run, run, call) for call in calls]
        wait(futures)
    return [future.result() for future in futures]


_RUN_STATE = frozenset({"log", "stopped", "lm_calls", "cost", "on_progress", "display_progress"})


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def fresh_copy(program: Module) -> Module:
    """A deep copy of ``program`` with no demos (LMs, instructions and settings are kept)."""
    new = program.deepcopy()
    for predictor in new.predictors():
        predictor.demos = []
    return new


def check_examples(trainset: Sequence[Any], name: str = "trainset") -> list[Example]:
    """The dataset as a list of Examples with inputs marked, or a DsxError saying what is wrong."""
    examples = list(trainset)
    for i, ex in enumerate(examples):
        if not isinstance(ex, Example) or ex.input_keys is None:
            raise DsxError(
                f"{name}[{i}] is not a dsx.Example with its inputs marked; build it as "
                "dsx.Example(question=..., answer=...).with_inputs('question')"
            )
    return examples


def check_same_structure(student: Module, teacher: Module) -> None:
    """Teacher and student must have the same predictors (demos move between them by name)."""
    a = [n for n, _ in student.named_predictors()]
    b = [n for n, _ in teacher.named_predictors()]
    if a != b:
        raise DsxError(
            f"The teacher's predictors {b} differ from the student's {a}; the teacher must "
            "be the same program (e.g. a compiled copy of the student)."
        )
