"""``MIPROv2``: instructions and demos chosen jointly by Bayesian search.

Three stages, as in DSPy:

1. **Demo sets.** ``num_candidates`` few-shot demo sets, made the way random search makes
   its candidates: none, labeled only, ``BootstrapFewShot`` on the trainset, then
   bootstraps on seeded shuffles with a seeded number of demos.
2. **Instructions.** A :class:`~dsx.teleprompt._propose.GroundedProposer` asks the prompt
   model for new instructions per predictor, grounded in a dataset summary, the program's
   structure, demos, a random tip and the proposals so far. Candidate 0 is the current
   instruction.
3. **Search.** An optuna TPE sampler (seeded) picks, per trial, an instruction and a demo
   set for every predictor. With ``minibatch`` each trial scores a seeded minibatch of the
   valset, and every ``minibatch_full_eval_steps`` trials the combination with the best
   mean minibatch score is scored on the whole valset. The winner is the combination with
   the best full-valset score (the unchanged program is scored first, as the baseline).

``optimizer.trials`` lists every :class:`Trial` (the choices and the score), and
``optimizer.best_score`` is the winner's valset score. Optuna is imported by ``compile``
only, so ``import dsx`` stays light, and only once the search gets past TPE's random
start (see :class:`_Study`).

With ``run_dir``, the demo sets, the instruction candidates and every finished
evaluation's score are kept in a subdirectory keyed by the run's inputs (program,
datasets, settings, seed, metric). Running again with the same inputs after an
interruption (Ctrl-C, a crash, a budget) reuses them: the sampler is reseeded per trial
from the seed, so the search retraces its steps without LM calls and goes on from the
first evaluation that did not finish, ending where an uninterrupted run would.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import statistics
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, overload

from dsx._extras import check, require
from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM
from dsx.runtime.module import Module
from dsx.runtime.parallel import run_coroutine_sync
from dsx.runtime.settings import context
from dsx.teleprompt._propose import GroundedProposer, as_lm
from dsx.teleprompt._resume import (
    ScoreJournal,
    examples_from_json,
    examples_to_json,
    save_json,
)
from dsx.teleprompt._scoring import Slots, ascore_jobs
from dsx.teleprompt.base import (
    OptimizerSettingError,
    Teleprompter,
    check_examples,
    fresh_copy,
    side_by_side,
)
from dsx.teleprompt.bootstrap import BootstrapFewShot
from dsx.teleprompt.labeled import LabeledFewShot

__all__ = ["AUTO_RUN_SETTINGS", "MIPROv2", "Trial"]

#: What ``auto`` sets: ``n`` candidates and a valset of at most ``val_size`` examples.
AUTO_RUN_SETTINGS: dict[str, dict[str, int]] = {
    "light": {"n": 6, "val_size": 100},
    "medium": {"n": 12, "val_size": 300},
    "heavy": {"n": 18, "val_size": 1000},
}
#: ``auto`` scores minibatches only when the valset is larger than this.
MIN_MINIBATCH_SIZE = 50
#: Demos bootstrapped (only to ground proposals) when the search itself is zero-shot.
ZERO_SHOT_PROPOSAL_DEMOS = 3
#: Trials asked of the sampler (a constant liar) before their scores are told; they are
#: scored together, keeping ``num_threads`` busy. A constant, so that the search depends
#: on the seed and the settings only, never on ``num_threads`` or timing.
TRIAL_BATCH = 4
#: Trials TPE draws at random before it models the history (optuna's default).
TPE_STARTUP_TRIALS = 10

Auto = Literal["light", "medium", "heavy"]


@dataclass
class Trial:
    """One evaluation of the search.

    Attributes:
        number: 1-based, in the order run (the baseline is trial 1).
        kind: ``"baseline"``, ``"minibatch"`` or ``"full"`` (a full-valset evaluation).
        instructions: per predictor path, the index of its instruction candidate.
        demos: per predictor path, the index of its demo set (``None`` when zero-shot).
        score: percent on the examples scored (``None``: the budget stopped it).
        examples: how many valset examples were scored.
    """

    number: int
    kind: str
    instructions: dict[str, int]
    demos: dict[str, int] | None
    score: float | None
    examples: int


class MIPROv2(Teleprompter):
    """Jointly optimize instructions and few-shot demos with Bayesian search (DSPy's MIPROv2).

    Args:
        metric: ``(example, prediction, trace)`` → number/bool.
        prompt_model: the LM that proposes instructions (an LM or a model string; default
            ``dsx.settings.lm``).
        task_model: the LM the program runs with while optimizing (default: its own).
        teacher_settings: ``dsx.context`` settings for bootstrapping's teacher runs.
        max_bootstrapped_demos: bootstrapped demos per demo set.
        max_labeled_demos: labeled demos per demo set (both 0: instructions only).
        auto: ``"light"``, ``"medium"`` or ``"heavy"`` sets the candidates, trials and valset
            size; ``None`` takes ``num_candidates`` and ``num_trials``.
        num_candidates: instruction candidates and demo sets (with ``auto=None``).
        num_trials: search trials (with ``auto=None``).
        minibatch: score trials on minibatches of the valset.
        minibatch_size: examples per minibatch.
        minibatch_full_eval_steps: minibatch trials between full-valset evaluations.
        init_temperature: the temperature of instruction proposals.
        max_errors: stop after this many failed runs (default ``dsx.settings.max_errors``).
        metric_threshold: the score a bootstrapped run needs to pass.
        view_data_batch_size: examples per dataset-summary call of the proposer.
        program_aware_proposer: show the proposer the program's structure.
        data_aware_proposer: show the proposer a summary of the trainset.
        tip_aware_proposer: give the proposer a random style tip.
        fewshot_aware_proposer: show the proposer demos.
        track_stats: keep every trial in ``optimizer.trials``.
        run_dir: keep the run's state here; running again with the same inputs resumes it.
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress`` (see :class:`~dsx.teleprompt.Teleprompter`).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        prompt_model: BaseLM | str | None = None,
        task_model: BaseLM | str | None = None,
        teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        auto: Auto | None = "light",
        num_candidates: int | None = None,
        num_trials: int | None = None,
        minibatch: bool = True,
        minibatch_size: int = 35,
        minibatch_full_eval_steps: int = 5,
        init_temperature: float = 1.0,
        max_errors: int | None = None,
        metric_threshold: float | None = None,
        view_data_batch_size: int = 10,
        program_aware_proposer: bool = True,
        data_aware_proposer: bool = True,
        tip_aware_proposer: bool = True,
        fewshot_aware_proposer: bool = True,
        track_stats: bool = True,
        run_dir: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if auto not in (None, *AUTO_RUN_SETTINGS):
            raise OptimizerSettingError(
                f"MIPROv2(auto={auto!r}): use one of 'light', 'medium', 'heavy', or None with "
                "num_candidates and num_trials"
            )
        for name, value in (
            ("num_candidates", num_candidates),
            ("num_trials", num_trials),
            ("minibatch_size", minibatch_size),
            ("minibatch_full_eval_steps", minibatch_full_eval_steps),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise OptimizerSettingError(f"MIPROv2({name}={value!r}): it must be an int >= 1")
        for name, value in (
            ("max_bootstrapped_demos", max_bootstrapped_demos),
            ("max_labeled_demos", max_labeled_demos),
        ):
            if not isinstance(value, int) or value < 0:
                raise OptimizerSettingError(f"MIPROv2({name}={value!r}): it must be an int >= 0")
        self.metric = metric
        self.prompt_model = as_lm(prompt_model, "prompt_model")
        self.task_model = as_lm(task_model, "task_model")
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.auto = auto
        self.num_candidates = num_candidates
        self.num_trials = num_trials
        self.minibatch = minibatch
        self.minibatch_size = minibatch_size
        self.minibatch_full_eval_steps = minibatch_full_eval_steps
        self.init_temperature = init_temperature
        self.max_errors = max_errors
        self.metric_threshold = metric_threshold
        self.view_data_batch_size = view_data_batch_size
        self.program_aware_proposer = program_aware_proposer
        self.data_aware_proposer = data_aware_proposer
        self.tip_aware_proposer = tip_aware_proposer
        self.fewshot_aware_proposer = fewshot_aware_proposer
        self.track_stats = track_stats
        self.run_dir = run_dir
        self.trials: list[Trial] = []
        self.best_score: float | None = None
        #: Per predictor path, the instruction candidates (index 0: the original).
        self.instruction_candidates: dict[str, list[str]] = {}
        #: The demo sets: per set, demos per predictor path.
        self.demo_candidates: list[dict[str, list[Example]]] = []

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        for name in (
            "trials",
            "best_score",
            "instruction_candidates",
            "demo_candidates",
            "run_dir",
        ):
            out.pop(name, None)
        for name in ("prompt_model", "task_model"):  # an LM is part of what defines the result
            lm = getattr(self, name)
            out[name] = lm.model if lm is not None else None
        return out

    # -- compile ----------------------------------------------------------------------------
    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
        num_trials: int | None = None,
        max_bootstrapped_demos: int | None = None,
        max_labeled_demos: int | None = None,
        seed: int | None = None,
        minibatch: bool | None = None,
        minibatch_size: int | None = None,
        minibatch_full_eval_steps: int | None = None,
    ) -> Module:
        """Optimize ``student``; the keyword arguments override the constructor's for this run."""
        if self.metric is None:
            raise OptimizerSettingError("MIPROv2 needs a metric: MIPROv2(metric=...)")
        if seed is not None:
            self.seed = seed
        bootstrapped = (
            self.max_bootstrapped_demos
            if max_bootstrapped_demos is None
            else max_bootstrapped_demos
        )
        labeled = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        zeroshot = bootstrapped == 0 and labeled == 0
        use_minibatch = self.minibatch if minibatch is None else minibatch
        mb_size = self.minibatch_size if minibatch_size is None else minibatch_size
        full_every = (
            self.minibatch_full_eval_steps
            if minibatch_full_eval_steps is None
            else minibatch_full_eval_steps
        )
        trials = self.num_trials if num_trials is None else num_trials
        train, val = self._datasets(trainset, valset)
        n_instr, n_demo, trials, val, use_minibatch = self._run_mode(
            student, zeroshot, trials, val, use_minibatch
        )
        if use_minibatch and mb_size > len(val):
            raise OptimizerSettingError(
                f"MIPROv2: minibatch_size={mb_size} is larger than the valset ({len(val)} "
                "examples); set a smaller minibatch_size or minibatch=False"
            )
        # most evaluations finished when the last trial is asked: fewer than TPE's random
        # start, and optuna is never needed
        finished = 1 + trials - TRIAL_BATCH + (trials // full_every if use_minibatch else 0)
        if finished >= TPE_STARTUP_TRIALS:
            _preload_optuna()
        self.trials, self.best_score = [], None
        self.instruction_candidates, self.demo_candidates = {}, []
        program = student.deepcopy()
        state = None
        if self.run_dir is not None:
            effective = {
                **self.settings(),
                "num_trials": trials,
                "max_bootstrapped_demos": bootstrapped,
                "max_labeled_demos": labeled,
                "minibatch": use_minibatch,
                "minibatch_size": mb_size,
                "minibatch_full_eval_steps": full_every,
            }
            state = self.run_state(program, [train, val], effective)
        overrides = {"lm": self.task_model} if self.task_model is not None else {}
        watch = (program, teacher, self.prompt_model, self.task_model)
        with self.session(*watch, self.teacher_settings.get("lm")):
            self.say(
                f"MIPROv2: {n_demo} demo sets, {n_instr} instruction candidates per "
                f"predictor, {trials} trials on "
                + (f"minibatches of {mb_size} from " if use_minibatch else "")
                + f"{len(val)} valset examples"
            )
            if state is not None:
                self.say(f"MIPROv2: run state in {state}")
            proposer = self._proposer(train)
            saved_instructions = _load(state, "instructions.json")
            saved = _load(state, "demo_sets.json")
            search = _Search(
                self,
                program,
                None if zeroshot else [{}],  # the demo sets, once made
                val,
                overrides,
                ScoreJournal(None if state is None else state / "scores.jsonl"),
            )
            ready = _DemoSets(n_demo)  # each demo set as soon as it is made
            booted = threading.Event()  # the bootstraps are done: all slots to the baseline
            booting_threads = (
                0 if saved is not None else self._boot_threads(n_demo, 0 if zeroshot else labeled)
            )

            def propose() -> None:
                if saved_instructions is not None:
                    self.instruction_candidates = saved_instructions
                    self.say("MIPROv2: instruction candidates from the run directory")
                    return
                # the first proposals need only the demo sets made without LM calls
                self.instruction_candidates = self._propose(proposer, program, ready, n_instr)
                if state is not None and self.stopped is None:
                    save_json(state / "instructions.json", self.instruction_candidates)

            def baseline() -> float | None:
                return search.baseline(booted, self.concurrency - booting_threads)

            # the bootstraps, the proposals and the unchanged program's score at once: the
            # proposals start as soon as the demo sets they show exist, and the baseline
            # takes the slots the bootstraps leave (all of them once they are done)
            if saved is not None:
                demo_sets = [{k: examples_from_json(v) for k, v in s.items()} for s in saved]
                self.say(f"MIPROv2: {len(demo_sets)} demo sets from the run directory")
                ready.fill(demo_sets)
                booted.set()
                side_by_side([propose, baseline], self.concurrency)
            else:
                with context(**overrides):
                    demo_sets = self._demo_sets(
                        program,
                        train,
                        teacher,
                        n_demo,
                        ZERO_SHOT_PROPOSAL_DEMOS if zeroshot else bootstrapped,
                        0 if zeroshot else labeled,
                        alongside=[propose, baseline],
                        ready=ready,
                        booted=booted,
                    )
                if state is not None and self.stopped is None:
                    save_json(
                        state / "demo_sets.json",
                        [{k: examples_to_json(v) for k, v in s.items()} for s in demo_sets],
                    )
            self.demo_candidates = demo_sets
            search.demo_sets = None if zeroshot else (demo_sets or None)
            baseline_score = search.baseline_score
            search.instructions = self.instruction_candidates
            best = search.run(baseline_score, trials, use_minibatch, mb_size, full_every)
        best._compiled = True  # type: ignore[attr-defined]
        return best

    # -- stages ---------------------------------------------------------------------------
    def _datasets(
        self, trainset: Sequence[Any], valset: Sequence[Any] | None
    ) -> tuple[list[Example], list[Example]]:
        train = check_examples(trainset)
        if not train:
            raise OptimizerSettingError("MIPROv2: the trainset is empty")
        if valset is not None:
            val = check_examples(valset, "valset")
            if not val:
                raise OptimizerSettingError("MIPROv2: the valset is empty")
            return train, val
        if len(train) < 2:
            raise OptimizerSettingError(
                "MIPROv2: without a valset the trainset needs at least 2 examples (80% of it "
                "becomes the valset); pass valset=..."
            )
        size = min(1000, max(1, int(len(train) * 0.8)))
        return train[: len(train) - size], train[len(train) - size :]

    def _run_mode(
        self,
        student: Module,
        zeroshot: bool,
        trials: int | None,
        val: list[Example],
        use_minibatch: bool,
    ) -> tuple[int, int, int, list[Example], bool]:
        """Instruction candidates, demo sets, trials, valset and minibatching for this run."""
        if self.auto is None:
            if self.num_candidates is None or trials is None:
                hint = ""
                if self.num_candidates is not None:
                    hint = f" (about {_trials_for(student, zeroshot, self.num_candidates)} fits)"
                raise OptimizerSettingError(
                    "MIPROv2 with auto=None needs num_candidates and num_trials" + hint
                )
            return self.num_candidates, self.num_candidates, trials, val, use_minibatch
        if self.num_candidates is not None or trials is not None:
            raise OptimizerSettingError(
                f"MIPROv2(auto={self.auto!r}) sets num_candidates and num_trials itself; drop "
                "them, or set auto=None to choose them"
            )
        mode = AUTO_RUN_SETTINGS[self.auto]
        if len(val) > mode["val_size"]:
            keep = sorted(self.rng("valset").sample(range(len(val)), mode["val_size"]))
            val = [val[i] for i in keep]
        n = mode["n"]
        return (
            n if zeroshot else n // 2,
            n,
            _trials_for(student, zeroshot, n),
            val,
            len(val) > MIN_MINIBATCH_SIZE,
        )

    def _demo_sets(
        self,
        program: Module,
        train: list[Example],
        teacher: Module | None,
        count: int,
        bootstrapped: int,
        labeled: int,
        alongside: Sequence[Callable[[], Any]] = (),
        ready: _DemoSets | None = None,
        booted: threading.Event | None = None,
    ) -> list[dict[str, list[Example]]]:
        """``count`` demo sets: none, labeled, bootstrapped, then seeded shuffled bootstraps.

        The bootstraps and the ``alongside`` calls (the proposals, the baseline) run at
        once, the bootstraps with :meth:`_boot_threads` between them; each set goes to
        ``ready`` as soon as it is made, and ``booted`` is set once all are. Every random
        choice is drawn first, in order.
        """
        rng = self.rng("demo-sets")
        plans: list[tuple[int, list[Example], int]] = []
        for kind in range(-3, count - 3):
            shuffled, size = list(train), bootstrapped
            if _bootstraps(kind, labeled):
                rng.shuffle(shuffled)
                size = rng.randint(min(1, bootstrapped), bootstrapped)
            plans.append((kind, shuffled, size))
        booting = sum(_bootstraps(kind, labeled) for kind in range(-3, count - 3))
        threads = max(1, self.concurrency // (booting + 1))
        inners: list[BootstrapFewShot | None] = []

        def make(kind: int, shuffled: list[Example], size: int) -> Callable[[], Module]:
            common: dict[str, Any] = {"seed": self.seed, "num_threads": threads}
            if kind == -3:
                inners.append(None)
                return lambda: fresh_copy(program)
            if kind == -2 and labeled > 0:
                inners.append(None)
                return lambda: LabeledFewShot(k=labeled, **common).compile(program, trainset=train)
            inner = BootstrapFewShot(
                metric=self.metric,
                metric_threshold=self.metric_threshold,
                teacher_settings=self.teacher_settings,
                max_bootstrapped_demos=size,
                max_labeled_demos=labeled,
                max_errors=self.max_errors,
                **common,
            )
            inners.append(inner)
            return lambda: inner.compile(program, trainset=shuffled, teacher=teacher)

        if (reason := self.budget_exhausted()) is not None:
            self.stopped = reason
            if ready is not None:
                ready.fill([])
            if booted is not None:
                booted.set()
            side_by_side(list(alongside), self.concurrency)
            return []
        left = [len(plans)]
        lock = threading.Lock()

        def publish(index: int, call: Callable[[], Module]) -> Callable[[], Module]:
            def run() -> Module:
                compiled = None
                try:
                    compiled = call()
                    return compiled
                finally:  # on failure too: nobody may wait for it forever
                    if ready is not None:
                        demos = {} if compiled is None else _demos_of(compiled)
                        ready.put(index, demos)
                    with lock:
                        left[0] -= 1
                        if left[0] == 0 and booted is not None:
                            booted.set()

            return run

        calls = [publish(i, make(*plan)) for i, plan in enumerate(plans)]
        try:
            results = side_by_side([*calls, *alongside], self.concurrency)[: len(calls)]
        finally:
            if booted is not None:
                booted.set()
        sets: list[dict[str, list[Example]]] = []
        for index, (compiled, inner) in enumerate(zip(results, inners, strict=True)):
            if inner is not None:
                self.log.extend({**e, "demo_set": index} for e in inner.log if e["event"] == "run")
                if inner.stopped is not None:
                    self.stopped = self.stopped or inner.stopped
            sets.append(_demos_of(compiled))
        if self.stopped is None and (reason := self.budget_exhausted()) is not None:
            self.stopped = reason
        counts = [sum(len(d) for d in s.values()) for s in sets]
        self.log.append({"event": "demo_sets", "demos": counts})
        self.say(f"MIPROv2: {len(sets)} demo sets with {counts} demos")
        return sets

    def _boot_threads(self, count: int, labeled: int) -> int:
        """The threads the bootstraps of :meth:`_demo_sets` take together: ``num_threads``
        shared among them and the proposals (the baseline gets the rest)."""
        booting = sum(_bootstraps(kind, labeled) for kind in range(-3, count - 3))
        return booting * max(1, self.concurrency // (booting + 1)) if booting else 0

    def _proposer(self, train: list[Example]) -> GroundedProposer:
        return GroundedProposer(
            prompt_model=self.prompt_model,
            trainset=train,
            rng=self.rng("proposer"),
            init_temperature=self.init_temperature,
            view_data_batch_size=self.view_data_batch_size,
            data_aware=self.data_aware_proposer,
            program_aware=self.program_aware_proposer,
            tip_aware=self.tip_aware_proposer,
            fewshot_aware=self.fewshot_aware_proposer,
            should_stop=self.budget_exhausted,
            note=self.say,
        )

    def _propose(
        self,
        proposer: GroundedProposer,
        program: Module,
        demo_sets: Sequence[dict[str, list[Example]]],
        n: int,
    ) -> dict[str, list[str]]:
        found = proposer.propose(program, demo_sets, n)
        if proposer.data_summary:
            self.log.append({"event": "data_summary", "text": proposer.data_summary})
        for record in proposer.records:
            self.log.append({"event": "proposal", **record})
        if (reason := self.budget_exhausted()) is not None:
            self.stopped = reason
        for path, texts in found.items():
            self.say(f"MIPROv2: {len(texts)} instruction candidates for `{path}`")
        return found


def _bootstraps(kind: int, labeled: int) -> bool:
    """Whether demo set ``kind`` (-3: none, -2: labeled, then bootstraps) is bootstrapped."""
    return kind >= -1 or (kind == -2 and labeled <= 0)


def _demos_of(program: Module) -> dict[str, list[Example]]:
    return {name: list(p.demos) for name, p in program.named_predictors()}


class _DemoSets(Sequence[dict[str, list[Example]]]):
    """The demo sets as they are made: an item waits until its set exists, so the
    proposals that show the sets made without LM calls need not wait for the bootstraps."""

    def __init__(self, count: int) -> None:
        self._sets: list[dict[str, list[Example]]] = [{} for _ in range(count)]
        self._made = [threading.Event() for _ in range(count)]

    def put(self, index: int, demos: dict[str, list[Example]]) -> None:
        self._sets[index] = demos
        self._made[index].set()

    def fill(self, sets: Sequence[dict[str, list[Example]]]) -> None:
        for index in range(len(self._sets)):
            self.put(index, sets[index] if index < len(sets) else {})

    def __len__(self) -> int:
        return len(self._sets)

    @overload
    def __getitem__(self, index: int) -> dict[str, list[Example]]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, list[Example]]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._sets))[index]]
        self._made[index].wait()
        return self._sets[index]


def _load(state: Path | None, name: str) -> Any:
    """What an earlier run of the same inputs saved as ``name`` (``None``: nothing usable)."""
    if state is None or not (state / name).exists():
        return None
    try:
        return json.loads((state / name).read_text(encoding="utf-8"))
    except ValueError:  # a damaged file: make it anew
        return None


def _trials_for(program: Module, zeroshot: bool, n: int) -> int:
    variables = len(program.predictors()) * (1 if zeroshot else 2)
    return int(max(2 * variables * math.log2(max(n, 2)), 1.5 * n))


class _Search:
    """Stage 3: the TPE search over (instruction, demo set) per predictor."""

    def __init__(
        self,
        opt: MIPROv2,
        program: Module,
        demo_sets: list[dict[str, list[Example]]] | None,
        val: list[Example],
        overrides: dict[str, Any],
        journal: ScoreJournal,
    ) -> None:
        self.opt = opt
        self.journal = journal
        self.program = program
        self.paths = [path for path, _ in program.named_predictors()]
        #: Per predictor path: the instruction candidates (index 0: the current one).
        self.instructions = {
            path: [p.signature.instructions] for path, p in program.named_predictors()
        }
        self.demo_sets = demo_sets or None
        self.val = val
        self.overrides = overrides
        self.best: tuple[float, dict[str, int]] | None = None
        self.total = 0
        #: Scores being made, by journal key.
        self.scoring: dict[str, asyncio.Future[float | None]] = {}
        self.baseline_score: float | None = None
        self.slots = Slots(opt.concurrency)

    # -- parameters ---------------------------------------------------------------------------
    def distributions(self, optuna: Any) -> dict[str, Any]:
        cat = optuna.distributions.CategoricalDistribution
        out = {}
        for i, path in enumerate(self.paths):
            out[f"{i}_predictor_instruction"] = cat(list(range(len(self.instructions[path]))))
            if self.demo_sets:
                out[f"{i}_predictor_demos"] = cat(list(range(len(self.demo_sets))))
        return out

    def default(self) -> dict[str, int]:
        """The unchanged program's parameters: instruction 0, demo set 0 (no demos)."""
        names = []
        for i in range(len(self.paths)):
            names.append(f"{i}_predictor_instruction")
            if self.demo_sets:
                names.append(f"{i}_predictor_demos")
        return dict.fromkeys(names, 0)

    def baseline(self, booted: threading.Event, first: int) -> float | None:
        """The unchanged program's score on the whole valset (``None``: budget reached),
        with ``first`` program runs at a time until ``booted`` is set, then
        ``num_threads``. Also kept as ``self.baseline_score``."""
        if (reason := self.opt.stopped or self.opt.budget_exhausted()) is not None:
            self.opt.stopped = reason
            return None
        params, picks = self.default(), list(range(len(self.val)))
        key = self.journal.key(params, picks)
        score = self.journal.get(key)
        if score is None:
            program = self.candidate(params)

            async def scoring() -> float | None:
                slots = Slots(max(1, first))

                async def widen() -> None:
                    while not booted.is_set():  # the bootstraps run on other threads
                        await asyncio.sleep(0.005)
                    slots.grow(self.opt.concurrency - slots.size)

                widening = asyncio.ensure_future(widen())
                try:
                    (value,) = await ascore_jobs(
                        self.opt,
                        [(program, [self.val[k] for k in picks])],
                        desc="Baseline",
                        overrides=self.overrides,
                        limiter=slots,
                    )
                finally:
                    widening.cancel()
                    await asyncio.gather(widening, return_exceptions=True)
                return value

            score = run_coroutine_sync(scoring)
            if score is not None:
                self.journal.put(key, score)
        self.baseline_score = score
        return score

    def candidate(self, params: dict[str, int]) -> Module:
        program = self.program.deepcopy()
        for i, (path, predictor) in enumerate(program.named_predictors()):
            text = self.instructions[path][params[f"{i}_predictor_instruction"]]
            predictor.signature = predictor.signature.with_instructions(text)
            if self.demo_sets:
                predictor.demos = list(self.demo_sets[params[f"{i}_predictor_demos"]].get(path, []))
        return program

    def record(self, kind: str, params: dict[str, int], score: float | None, n: int) -> Trial:
        trial = Trial(
            number=len(self.opt.trials) + 1,
            kind=kind,
            instructions={
                p: params[f"{i}_predictor_instruction"] for i, p in enumerate(self.paths)
            },
            demos={p: params[f"{i}_predictor_demos"] for i, p in enumerate(self.paths)}
            if self.demo_sets
            else None,
            score=score,
            examples=n,
        )
        if self.opt.track_stats:
            self.opt.trials.append(trial)
        self.opt.log.append({"event": "trial", **asdict(trial)})
        shown = f"{score:.2f}%" if score is not None else "not scored (budget)"
        what = {"baseline": "baseline, full valset", "full": "full valset"}.get(
            kind, f"minibatch of {n}"
        )
        best = f" · best {self.best[0]:.2f}%" if self.best is not None else ""
        self.opt.say(
            f"trial {trial.number}/{self.total} ({what}) {self.describe(params)}: {shown}{best}"
        )
        return trial

    def describe(self, params: dict[str, int]) -> str:
        parts = []
        for i, path in enumerate(self.paths):
            text = f"{path}: instruction {params[f'{i}_predictor_instruction']}"
            if self.demo_sets:
                text += f", demos {params[f'{i}_predictor_demos']}"
            parts.append(text)
        return "[" + "; ".join(parts) + "]"

    def full(self, params: dict[str, int], kind: str, score: float | None) -> None:
        """Record a full-valset score (and the best so far)."""
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, params)
        self.record(kind, params, score, len(self.val))

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self,
        baseline: float | None,
        num_trials: int,
        minibatch: bool,
        mb_size: int,
        full_every: int,
    ) -> Module:
        return run_coroutine_sync(
            lambda: self.arun(baseline, num_trials, minibatch, mb_size, full_every)
        )

    def start(
        self, params: dict[str, int], picks: list[int], desc: str, order: float
    ) -> asyncio.Future[float | None]:
        """Start scoring ``params`` on the valset examples ``picks``; its score, later.

        Runs of a lower ``order`` go first. A score in the journal (an interrupted run) or
        one being made costs no LM call.
        """
        key = self.journal.key(params, picks)
        known = self.journal.get(key)
        if known is not None:
            done: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
            done.set_result(known)
            return done
        if key not in self.scoring:

            async def score() -> float | None:
                (value,) = await ascore_jobs(
                    self.opt,
                    [(self.candidate(params), [self.val[k] for k in picks])],
                    desc=desc,
                    overrides=self.overrides,
                    limiter=self.slots,
                    priority=order,
                    quiet=True,  # trials overlap: each reports its line when told
                )
                if value is not None:
                    self.journal.put(key, value)
                return value

            self.scoring[key] = asyncio.ensure_future(score())
        return self.scoring[key]

    async def arun(
        self,
        baseline: float | None,
        num_trials: int,
        minibatch: bool,
        mb_size: int,
        full_every: int,
    ) -> Module:
        """The search, ``TRIAL_BATCH`` trials in flight.

        Trial ``k`` is asked once trials ``< k - TRIAL_BATCH + 1`` are told (in order; the
        ones still running are the constant liar's), so what it draws depends on the seed
        and the settings only, while the engine always has the next trials' runs queued. In
        minibatch mode a full evaluation starts as soon as a minibatch trial chooses it and
        is told to the study ``TRIAL_BATCH`` trials later.
        """
        opt = self.opt
        default = self.default()
        self.total = (
            1 + num_trials + ((num_trials + full_every - 1) // full_every if minibatch else 0)
        )
        self.full(default, "baseline", baseline)
        if baseline is None:
            opt.stopped = opt.stopped or opt.budget_exhausted() or "stopped while scoring"
            return self.finish(default)
        everything = list(range(len(self.val)))
        window = TRIAL_BATCH
        study = _Study(self, window)
        study.add(default, baseline)
        self.slots = Slots(opt.concurrency)
        minibatch_scores: dict[tuple[int, ...], list[float]] = {}
        params_of: dict[tuple[int, ...], dict[str, int]] = {}
        fully_scored = {tuple(default.values())}
        chosen: set[tuple[int, ...]] = set()
        # trials asked and not told yet, in order; full evaluations: (told after, key, score)
        running: deque[tuple[Any, dict[str, int], list[int], asyncio.Future[float | None]]]
        running = deque()
        fulls: deque[tuple[int, tuple[int, ...], asyncio.Future[float | None]]] = deque()
        asked = told = since_full = 0

        def ask() -> None:
            nonlocal asked
            trial, params = study.ask(asked)
            picks = (
                sorted(opt.rng("minibatch", asked).sample(everything, mb_size))
                if minibatch
                else everything
            )
            asked += 1
            scoring = self.start(params, picks, f"Trial {asked}", asked)
            running.append((trial, params, picks, scoring))

        async def tell_fulls(upto: int) -> None:
            while fulls and fulls[0][0] <= upto:
                _, key, pending = fulls.popleft()
                score = await pending
                self.full(params_of[key], "full", score)
                if score is None:
                    opt.stopped = opt.stopped or opt.budget_exhausted() or "stopped while scoring"
                    continue
                fully_scored.add(key)
                study.add(params_of[key], score)

        try:
            while asked < min(window, num_trials) and not self.stopping():
                ask()
            while running:
                trial, params, picks, pending = running.popleft()
                score = await pending
                told += 1
                key = tuple(params.values())
                if minibatch:
                    self.record("minibatch", params, score, len(picks))
                else:
                    self.full(params, "full", score)
                if score is None or opt.stopped is not None:
                    study.tell(trial, params, None)
                    opt.stopped = opt.stopped or opt.budget_exhausted() or "stopped while scoring"
                else:
                    study.tell(trial, params, score)
                    if not minibatch:
                        fully_scored.add(key)
                    else:
                        minibatch_scores.setdefault(key, []).append(score)
                        params_of[key] = params
                        since_full += 1
                        if since_full >= full_every or told == num_trials:
                            since_full = 0
                            # the best-averaging combination not yet fully scored or chosen
                            left = [k for k in minibatch_scores if k not in fully_scored | chosen]
                            if left:
                                best = max(
                                    left, key=lambda k: statistics.fmean(minibatch_scores[k])
                                )
                                chosen.add(best)
                                # before the trials asked after it
                                full = self.start(
                                    params_of[best], everything, "Full evaluation", asked - 0.5
                                )
                                fulls.append((told + window - 1, best, full))
                await tell_fulls(told)
                if asked < num_trials and not self.stopping():
                    ask()
            await tell_fulls(told + window)
        finally:  # a stop or an error: what is still running is not needed
            for task in self.scoring.values():
                task.cancel()
            await asyncio.gather(*self.scoring.values(), return_exceptions=True)
        return self.finish(default)

    def stopping(self) -> bool:
        opt = self.opt
        if (reason := opt.stopped or opt.budget_exhausted()) is not None:
            opt.stopped = reason
            return True
        return False

    def sizes(self) -> dict[str, int]:
        """Each search parameter's number of choices (as :meth:`distributions`)."""
        out = {}
        for i, path in enumerate(self.paths):
            out[f"{i}_predictor_instruction"] = len(self.instructions[path])
            if self.demo_sets:
                out[f"{i}_predictor_demos"] = len(self.demo_sets)
        return out

    def sampler(self, optuna: Any, trial: int, batch: int) -> Any:
        """Trial ``trial``'s TPE sampler (seeded per trial; a constant liar when batched)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=self.opt.rng("tpe", trial).randrange(2**31),
                multivariate=True,
                constant_liar=batch > 1,
                n_startup_trials=TPE_STARTUP_TRIALS,
            )

    def finish(self, default: dict[str, int]) -> Module:
        opt = self.opt
        if self.best is None:  # nothing was fully scored: the unchanged program is all we know
            opt.log.append({"event": "result", "score": None, "stopped": opt.stopped})
            return self.candidate(default)
        score, params = self.best
        opt.best_score = score
        opt.log.append(
            {"event": "result", "score": score, "params": params, "stopped": opt.stopped}
        )
        opt.say(f"MIPROv2: best {score:.2f}% on the valset with {self.describe(params)}")
        return self.candidate(params)


class _Study:
    """The search's history and its sampler: TPE's random start without optuna, then
    optuna's TPE.

    TPE draws its first ``TPE_STARTUP_TRIALS`` points uniformly at random; those draws come
    from the seeded ``random.Random`` of each trial here, so a search that never gets past
    them (``num_trials`` of about ten, as ``auto="light"`` often gives) never imports
    optuna. From the first trial asked with that many evaluations finished, an optuna
    study with a seeded TPE sampler (multivariate, a constant liar) gets the history so far
    and asks every later trial; what a trial draws still depends on the seed and the
    history only.
    """

    def __init__(self, search: _Search, window: int) -> None:
        self.search = search
        self.window = window
        self.sizes = search.sizes()
        self.history: list[tuple[dict[str, int], float]] = []
        self.optuna: Any = None
        self.study: Any = None
        self.distributions: dict[str, Any] = {}

    def add(self, params: dict[str, int], value: float) -> None:
        """A finished evaluation (the baseline, a full evaluation)."""
        self.history.append((params, value))
        if self.study is not None:
            self.study.add_trial(
                self.optuna.trial.create_trial(
                    params=params, distributions=self.distributions, value=value
                )
            )

    def ask(self, k: int) -> tuple[Any, dict[str, int]]:
        """Trial ``k``'s choices, with the handle to tell its score with."""
        if self.study is None and len(self.history) < TPE_STARTUP_TRIALS:
            rng = self.search.opt.rng("startup", k)
            return None, {name: rng.randrange(size) for name, size in self.sizes.items()}
        optuna = self.start()
        self.study.sampler = self.search.sampler(optuna, k, self.window)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask(self.distributions)
        return trial, {name: int(trial.params[name]) for name in self.distributions}

    def tell(self, trial: Any, params: dict[str, int], value: float | None) -> None:
        """Trial's score (``None``: it failed or the budget stopped it)."""
        if trial is None:  # drawn before the study: history only (a failure is not kept)
            if value is not None:
                self.add(params, value)
            return
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.history.append((params, value))
            self.study.tell(trial, value)

    def start(self) -> Any:
        if self.study is None:
            self.search.opt.log.append(
                {"event": "sampler", "sampler": "tpe", "history": len(self.history)}
            )
            optuna = self.optuna = _import_optuna()
            self.distributions = self.search.distributions(optuna)
            self.study = optuna.create_study(
                direction="maximize", sampler=self.search.sampler(optuna, 0, self.window)
            )
            for params, value in self.history:
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=params, distributions=self.distributions, value=value
                    )
                )
        return self.optuna


def _preload_optuna() -> None:
    """Import optuna on a thread while the LM-bound stages run (its import takes ~0.2 s of
    CPU, numpy included)."""
    check("optimize", "optuna", feature="MIPROv2's Bayesian search (optuna's TPE)")
    if "optuna" not in sys.modules:
        threading.Thread(target=_quiet_import, name="dsx-import-optuna", daemon=True).start()


def _quiet_import() -> None:
    with contextlib.suppress(Exception):  # the search's own import reports any failure
        importlib.import_module("optuna")


def _import_optuna() -> Any:
    optuna = require("optimize", "optuna", feature="MIPROv2's Bayesian search (optuna's TPE)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
