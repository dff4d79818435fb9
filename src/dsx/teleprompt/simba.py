"""``SIMBA``: stochastic introspective mini-batch ascent (DSPy's SIMBA).

Each of ``max_steps`` steps:

1. takes the next ``bsize`` examples of a seeded shuffle of the trainset;
2. runs every example ``num_candidates`` times, each time with a program drawn from the
   best ones so far (a softmax over their mean scores at ``temperature_for_sampling``;
   the student always takes part) and a resampling LM setting (temperature 1.0 and its own
   ``rollout_id``), all runs at once on the batch engine;
3. ranks the examples by how much their runs' scores vary (max - min, then the max, then
   max - mean): those are where the program sometimes succeeds;
4. for each such example builds a candidate from a program drawn at
   ``temperature_for_candidates``, drops a few of its demos at random, and applies a
   strategy drawn at random: **append a demo** (every predictor's inputs and outputs from
   the best run) or **append a rule** (the prompt model compares the better and the worse
   run and writes advice per predictor, appended to its instruction);
5. scores the ``num_candidates + 1`` candidates on the mini-batch and keeps them all in the
   pool; the step's best is a *winner*.

At the end, up to ``num_candidates + 1`` winners spread over the steps are scored on the
trainset (or the valset when given) and the best is returned, with ``candidate_programs``
and ``trial_logs`` on it as in DSPy.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM
from dsx.runtime.module import Module
from dsx.runtime.parallel import run_coroutine_sync
from dsx.runtime.predict import Predict
from dsx.runtime.signature import InputField, OutputField, Signature
from dsx.teleprompt._propose import as_lm, program_summary
from dsx.teleprompt._resume import examples_from_json, examples_to_json, save_json
from dsx.teleprompt._rollouts import Rollout, arun_rollouts, metric_arity, score_and_feedback
from dsx.teleprompt._scoring import Slots
from dsx.teleprompt.base import OptimizerSettingError, Teleprompter, check_examples

__all__ = ["SIMBA", "OfferAdvice", "SimbaCandidate"]


class OfferAdvice(Signature):
    """You study two runs of a program made of language-model modules on the same input:
    one earned a higher reward, the other a lower one. Help each module do better on
    similar inputs in the future. The modules will not see these runs, only your advice, so
    make it concrete and yet general. Contrast what each module did in the worse run with
    what it did in the better run, keep each module's advice to its own sub-task, and name
    every module exactly once: "if you receive inputs like ..., then do ... and avoid ..."."""

    program_code: str = InputField(desc="the program's code or structure")
    modules_defn: str = InputField(desc="each module with its inputs, outputs and instructions")
    program_inputs: str = InputField(desc="the program's inputs in both runs")
    oracle_metadata: str = InputField(desc="the example's labels, hidden from the program")
    worse_program_trajectory: str = InputField(desc="each module's inputs and outputs")
    worse_program_outputs: str = InputField(desc="what the program returned")
    worse_reward_value: str = InputField(desc="the reward of the worse run")
    worse_reward_info: str = InputField(desc="the metric's feedback on the worse run")
    better_program_trajectory: str = InputField(desc="each module's inputs and outputs")
    better_program_outputs: str = InputField(desc="what the program returned")
    better_reward_value: str = InputField(desc="the reward of the better run")
    better_reward_info: str = InputField(desc="the metric's feedback on the better run")
    module_names: list[str] = InputField(desc="the modules to advise")
    discussion: str = OutputField(desc="where each module went wrong, if it did")
    module_advice: dict[str, str] = OutputField(desc="per module name, the advice for it")


@dataclass
class SimbaCandidate:
    """A program SIMBA built, with where it came from and how it scored.

    Attributes:
        index: its number in the pool (0 is the student).
        step: the step that built it (``None`` for the student).
        source: the pool program it was built from.
        strategy: ``"demo"`` or ``"rule"`` (``None`` for the student).
        applied: whether the strategy changed anything (it skips weak examples).
        scores: its scores on the mini-batch it was built for.
        program: the program.
    """

    index: int
    step: int | None
    source: int | None
    strategy: str | None
    applied: bool
    scores: list[float]
    program: Module

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


class SIMBA(Teleprompter):
    """Improve a program by mini-batch ascent with introspective rules and demos (DSPy's SIMBA).

    Args:
        metric: ``(example, prediction[, trace])`` → a number (or a score with feedback).
        bsize: examples per mini-batch.
        num_candidates: runs per example and candidates built per step.
        max_steps: steps of ascent.
        max_demos: demos a predictor may hold before some are dropped (0: rules only).
        prompt_model: the LM that writes rules (an LM or a model string; default
            ``dsx.settings.lm``).
        teacher_settings: ``dsx.context`` settings (e.g. ``{"lm": ...}``) for one of the
            resampling runs per example.
        demo_input_field_maxlen: characters of an input kept in a new demo.
        temperature_for_sampling: softmax temperature for drawing the programs to run.
        temperature_for_candidates: softmax temperature for drawing a candidate's source.
        max_errors: stop after this many failed runs (default ``dsx.settings.max_errors``).
        run_dir: keep a checkpoint here after every step; running again with the same
            inputs after an interruption goes on from the last finished step.
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress`` (see :class:`~dsx.teleprompt.Teleprompter`).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        bsize: int = 32,
        num_candidates: int = 6,
        max_steps: int = 8,
        max_demos: int = 4,
        prompt_model: BaseLM | str | None = None,
        teacher_settings: dict[str, Any] | None = None,
        demo_input_field_maxlen: int = 100_000,
        temperature_for_sampling: float = 0.2,
        temperature_for_candidates: float = 0.2,
        max_errors: int | None = None,
        run_dir: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        for name, value, least in (
            ("bsize", bsize, 1),
            ("num_candidates", num_candidates, 1),
            ("max_steps", max_steps, 1),
            ("max_demos", max_demos, 0),
            ("demo_input_field_maxlen", demo_input_field_maxlen, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise OptimizerSettingError(
                    f"SIMBA({name}={value!r}): it must be an int >= {least}"
                )
        for name, temp in (
            ("temperature_for_sampling", temperature_for_sampling),
            ("temperature_for_candidates", temperature_for_candidates),
        ):
            if not isinstance(temp, int | float) or isinstance(temp, bool) or temp <= 0:
                raise OptimizerSettingError(f"SIMBA({name}={temp!r}): it must be a number > 0")
        self.metric = metric
        self.bsize = bsize
        self.num_candidates = num_candidates
        self.max_steps = max_steps
        self.max_demos = max_demos
        self.prompt_model = as_lm(prompt_model, "prompt_model")
        self.teacher_settings = dict(teacher_settings or {})
        self.demo_input_field_maxlen = demo_input_field_maxlen
        self.temperature_for_sampling = float(temperature_for_sampling)
        self.temperature_for_candidates = float(temperature_for_candidates)
        self.max_errors = max_errors
        self.run_dir = run_dir
        #: Every program of the pool (0: the student).
        self.candidates: list[SimbaCandidate] = []
        #: The final scoring, best first: ``{"score", "program"}`` (DSPy's shape).
        self.candidate_programs: list[dict[str, Any]] = []
        #: Per step: the mini-batch, the sampled score, the candidates' scores.
        self.trial_logs: dict[int, dict[str, Any]] = {}
        self.best_score: float | None = None

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        for name in ("best_score", "candidate_programs", "trial_logs", "teacher_settings"):
            out.pop(name, None)
        out["prompt_model"] = self.prompt_model.model if self.prompt_model is not None else None
        teacher = self.teacher_settings.get("lm")
        out["teacher_lm"] = getattr(teacher, "model", None)
        return out

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
        seed: int | None = None,
    ) -> Module:
        """Optimize ``student``; ``seed`` overrides the constructor's, as in DSPy."""
        if self.metric is None:
            raise OptimizerSettingError("SIMBA needs a metric: SIMBA(metric=...)")
        if teacher is not None:
            raise OptimizerSettingError("SIMBA does not take a teacher; see teacher_settings")
        if seed is not None:
            self.seed = seed
        train = check_examples(trainset)
        if len(train) < self.bsize:
            raise OptimizerSettingError(
                f"SIMBA: the trainset has {len(train)} examples, fewer than bsize={self.bsize}; "
                "set a smaller bsize"
            )
        final = check_examples(valset, "valset") if valset is not None else train
        if not final:
            raise OptimizerSettingError("SIMBA: the valset is empty")
        self.candidates, self.candidate_programs, self.trial_logs = [], [], {}
        self.best_score = None
        program = student.deepcopy()
        state = self.run_state(program, [train, final])
        with self.session(program, self.prompt_model, self.teacher_settings.get("lm")):
            self.say(
                f"SIMBA: {self.max_steps} steps on mini-batches of {self.bsize}, "
                f"{self.num_candidates} samples and candidates per step"
            )
            if state is not None:
                self.say(f"SIMBA: run state in {state}")
            best = _Ascent(self, program, train, final, state).run()
        best._compiled = True  # type: ignore[attr-defined]
        return best


class _Ascent:
    """One SIMBA run."""

    def __init__(
        self,
        opt: SIMBA,
        program: Module,
        train: list[Example],
        final: list[Example],
        state: Path | None = None,
    ) -> None:
        self.opt = opt
        self.checkpoint = None if state is None else state / "checkpoint.json"
        self.train = train
        self.final = final
        self.rng = opt.rng("simba")
        self.arity = min(3, metric_arity(opt.metric))  # type: ignore[arg-type]
        self.pool = [SimbaCandidate(0, None, None, None, False, [], program)]
        self.winners: list[Module] = [program]
        self.inline = getattr(opt.metric, "_dsx_inline", False)
        #: Runs of programs at their own settings: (instructions and demos, example) -> run.
        self.runs: dict[tuple[str, int], Rollout] = {}
        #: Runs started and not finished yet, by the same key: the batch making them.
        self.pending: dict[tuple[str, int], asyncio.Future[None]] = {}
        self.batches: list[asyncio.Future[None]] = []
        self.slots = Slots(opt.concurrency)
        # Without a budget, work needed later starts early (the winners' final runs in
        # slots a step leaves idle, a step's demo candidates while its rules are written):
        # the same runs, so the same result; with one, it would move where the budget stops.
        self.ahead = opt.max_lm_calls is None and opt.max_cost is None
        #: The finalists' final runs, to make in idle slots before the final scoring.
        self.later: list[tuple[Module, Example]] = []
        #: Runs of batches started by ``start`` and not finished (the slots they will hold).
        self.open_runs = 0

    # -- helpers ----------------------------------------------------------------------------
    def score(self, example: Example, pred: Any, trace: list[Any]) -> tuple[float, str | None]:
        metric = self.opt.metric
        assert metric is not None
        return score_and_feedback(metric(*(example, pred, trace)[: self.arity]))

    async def rollouts(self, jobs: list[tuple[Module, Example]], desc: str) -> list[Rollout] | None:
        found = await arun_rollouts(
            self.opt, jobs, score=self.score, desc=desc, inline=self.inline, limiter=self.slots
        )
        if any(r is None for r in found):
            self.opt.stopped = self.opt.budget_exhausted() or "stopped while scoring"
            return None
        return [r for r in found if r is not None]

    async def evaluate(self, jobs: list[tuple[Module, Example]], desc: str) -> list[Rollout] | None:
        """Rollouts of programs at their own settings, each distinct run made once.

        A program with the same instructions and demos as one already run (or running) on
        the same example reuses that run (the LM cache would answer it the same):
        candidates that a skipped strategy left unchanged, and repeated finalists, cost no
        LM call.
        """
        keys = self.start(jobs, desc)
        for key in dict.fromkeys(keys):
            if key not in self.runs and key in self.pending:
                await self.pending[key]
        if any(key not in self.runs for key in keys):
            self.opt.stopped = self.opt.budget_exhausted() or "stopped while scoring"
            return None
        return [self.runs[key] for key in keys]

    def start(
        self, jobs: list[tuple[Module, Example]], desc: str, *, quiet: bool = False
    ) -> list[tuple[str, int]]:
        """Start the runs of ``jobs`` not made or started yet; each job's run key."""
        texts: dict[int, str] = {}
        keys = []
        for program, example in jobs:
            if id(program) not in texts:
                texts[id(program)] = json.dumps(_snapshot(program), sort_keys=True, default=repr)
            keys.append((texts[id(program)], id(example)))
        todo: dict[tuple[str, int], int] = {}  # a distinct new run -> its first job
        for i, key in enumerate(keys):
            if key not in self.runs and key not in self.pending and key not in todo:
                todo[key] = i
        if todo:
            batch = asyncio.ensure_future(
                self.run_batch(list(todo), [jobs[i] for i in todo.values()], desc, quiet)
            )
            self.batches.append(batch)
            self.pending.update(dict.fromkeys(todo, batch))
            self.open_runs += len(todo)
        return keys

    async def run_batch(
        self,
        keys: list[tuple[str, int]],
        jobs: list[tuple[Module, Example]],
        desc: str,
        quiet: bool,
    ) -> None:
        try:
            found = await arun_rollouts(
                self.opt,
                jobs,
                score=self.score,
                desc=desc,
                inline=self.inline,
                limiter=self.slots,
                quiet=quiet,
            )
            for key, rollout in zip(keys, found, strict=True):
                if rollout is not None:  # None: the budget kept it from starting
                    self.runs[key] = rollout
        finally:
            self.open_runs -= len(keys)
            for key in keys:
                self.pending.pop(key, None)

    def finalists(self, last: int) -> list[int]:
        """The winners scored at the end when ``last`` is the last winner's index."""
        n = self.opt.num_candidates + 1
        picks = [0] * n if last < 1 else [round(i * last / (n - 1)) for i in range(n)]
        return list(dict.fromkeys(picks))

    def score_ahead(self, index: int, last: int) -> None:
        """Queue winner ``index``'s final runs for idle slots if it will be a finalist once
        every step has its winner (``last``: that winner's index)."""
        if self.ahead and index in self.finalists(last):
            self.later.extend((self.winners[index], example) for example in self.final)

    def engaged(self) -> int:
        """Runs holding or waiting for a slot, or about to (a batch counts until it ends)."""
        return self.open_runs

    def fill(self, room: int) -> None:
        """Start up to ``room`` of the queued final runs (those not made or started yet)."""
        take: list[tuple[Module, Example]] = []
        seen: set[tuple[str, int]] = set()
        while self.later and len(take) < room:
            program, example = self.later.pop(0)
            key = (json.dumps(_snapshot(program), sort_keys=True, default=repr), id(example))
            if key not in self.runs and key not in self.pending and key not in seen:
                seen.add(key)
                take.append((program, example))
        if take:
            self.start(take, "SIMBA: final runs ahead", quiet=True)

    def top(self) -> list[int]:
        """The ``num_candidates`` best pool programs by mean score, the student always in."""
        ranked = sorted(self.pool, key=lambda c: c.mean, reverse=True)
        picked = [c.index for c in ranked[: self.opt.num_candidates]]
        if 0 not in picked:
            picked[-1] = 0
        return list(dict.fromkeys(picked))

    def draw(self, indices: list[int], temperature: float) -> int:
        weights = [math.exp(self.pool[i].mean / temperature) for i in indices]
        return self.rng.choices(indices, weights=weights, k=1)[0]

    def variants(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Per resampling run: predictor config overrides and ``dsx.context`` settings."""
        out: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for r in range(self.opt.num_candidates):
            if r == 0 and self.opt.teacher_settings:
                out.append(({"rollout_id": r}, dict(self.opt.teacher_settings)))
            else:
                out.append(({"rollout_id": r, "temperature": 1.0}, {}))
        return out

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> Module:
        return run_coroutine_sync(self.arun)

    async def arun(self) -> Module:
        try:
            return await self.ascend()
        finally:  # runs started ahead and not needed (a budget stop, an error)
            for batch in self.batches:
                batch.cancel()
            await asyncio.gather(*self.batches, return_exceptions=True)

    async def ascend(self) -> Module:
        opt = self.opt
        order = list(range(len(self.train)))
        self.rng.shuffle(order)
        position, first = 0, 0
        saved = self.resume()
        if saved is not None:
            first, order, position = saved
        last = len(self.winners) - 1 + opt.max_steps - first
        for index in range(len(self.winners)):
            self.score_ahead(index, last)
        for step in range(first, opt.max_steps):
            if (reason := opt.budget_exhausted()) is not None:
                opt.stopped = reason
                break
            if position + opt.bsize > len(self.train):
                self.rng.shuffle(order)
                position = 0
            picks = order[position : position + opt.bsize]
            position += opt.bsize
            before = len(self.winners)
            if not await self.step(step, [self.train[i] for i in picks], picks):
                break
            if len(self.winners) > before:
                self.score_ahead(len(self.winners) - 1, last)
            self.save(step + 1, order, position)
        return await self.finish()

    # -- resuming ---------------------------------------------------------------------------
    def save(self, next_step: int, order: list[int], position: int) -> None:
        """Checkpoint after a finished step: what the next steps depend on, nothing more."""
        if self.checkpoint is None:
            return
        save_json(
            self.checkpoint,
            {
                "next_step": next_step,
                "order": order,
                "position": position,
                "rng": _jsonable_state(self.rng.getstate()),
                "pool": [
                    {**_candidate_fields(c), "program": _snapshot(c.program)} for c in self.pool
                ],
                "winners": [_snapshot(w) for w in self.winners],
                "trial_logs": {str(k): v for k, v in self.opt.trial_logs.items()},
                "log": self.opt.log,
            },
        )

    def resume(self) -> tuple[int, list[int], int] | None:
        """Restore the last checkpoint of this run, if any: ``(next step, order, position)``."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        opt = self.opt
        try:
            data = json.loads(self.checkpoint.read_text(encoding="utf-8"))
            base = self.pool[0].program
            pool = [
                SimbaCandidate(
                    **{k: v for k, v in c.items() if k != "program"},
                    program=_restore(base, c["program"]),
                )
                for c in data["pool"]
            ]
            winners = [_restore(base, w) for w in data["winners"]]
            rng_state = data["rng"]
            self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            opt.say(f"SIMBA: the checkpoint could not be read ({exc}); starting afresh")
            return None
        self.pool, self.winners = pool, winners
        opt.candidates = pool[1:]
        opt.trial_logs = {int(k): v for k, v in data["trial_logs"].items()}
        opt.log = list(data["log"])
        opt.say(f"SIMBA: resuming after step {data['next_step']} from the run directory")
        return int(data["next_step"]), list(data["order"]), int(data["position"])

    async def step(self, step: int, batch: list[Example], picks: list[int]) -> bool:
        opt = self.opt
        log: dict[str, Any] = {"batch": picks}
        opt.trial_logs[step] = log
        top = self.top()
        copies: dict[tuple[int, int], Module] = {}
        jobs: list[tuple[Module, Example]] = []
        for v, (config, ctx) in enumerate(self.variants()):
            for example in batch:
                source = self.draw(top, opt.temperature_for_sampling)
                if (source, v) not in copies:
                    copies[(source, v)] = _variant(self.pool[source].program, config, ctx)
                jobs.append((copies[(source, v)], example))
        sampled = await self.rollouts(jobs, f"SIMBA step {step + 1}/{opt.max_steps}: sampling")
        if sampled is None:
            return False
        scores = [r.score for r in sampled]
        p10, p90 = _percentile(scores, 10), _percentile(scores, 90)
        log["sampled_score"] = sum(scores) / len(scores)
        n = len(batch)
        buckets = []
        for i in range(n):
            runs = sorted((sampled[j] for j in range(i, len(sampled), n)), key=lambda r: -r.score)
            top_score, low = runs[0].score, runs[-1].score
            mean = sum(r.score for r in runs) / len(runs)
            buckets.append((runs, (top_score - low, top_score, top_score - mean)))
        buckets.sort(key=lambda b: b[1], reverse=True)
        desc = f"SIMBA step {step + 1}/{opt.max_steps}: candidates"
        built = await self.build(step, [runs for runs, _ in buckets], p10, p90, batch, desc)
        if built is None:
            return False
        jobs = [(c.program, ex) for c in built for ex in batch]
        self.start(jobs, desc)
        engaged = self.engaged()  # the candidates' last round of runs may leave room
        self.fill((-engaged) % self.slots.size if engaged else 0)
        scored = await self.evaluate(jobs, desc)
        if scored is None:
            return False
        means = []
        for k, cand in enumerate(built):
            cand.index = len(self.pool)
            cand.scores = [r.score for r in scored[k * n : (k + 1) * n]]
            self.pool.append(cand)
            means.append(cand.mean)
            opt.candidates.append(cand)
            opt.log.append(
                {
                    "event": "candidate",
                    "step": step,
                    "index": cand.index,
                    "source": cand.source,
                    "strategy": cand.strategy,
                    "applied": cand.applied,
                    "score": round(100 * cand.mean, 2),
                }
            )
        log["candidate_scores"] = means
        if built:
            winner = built[means.index(max(means))]
            self.winners.append(winner.program.deepcopy())
        best = max((c.mean for c in self.pool[1:]), default=0.0)
        opt.say(
            f"SIMBA step {step + 1}/{opt.max_steps}: sampled {len(sampled)} runs "
            f"({100 * log['sampled_score']:.2f}%), {len(built)} candidates, best "
            f"{100 * max(means, default=0.0):.2f}% on the mini-batch · best so far {100 * best:.2f}%"
        )
        return True

    async def build(
        self,
        step: int,
        buckets: list[list[Rollout]],
        p10: float,
        p90: float,
        batch: list[Example],
        desc: str,
    ) -> list[SimbaCandidate] | None:
        """Up to ``num_candidates + 1`` new candidates, one per bucket in order.

        Every random choice is drawn bucket by bucket, as one at a time would; the rule
        strategy's prompt-model calls of a wave then run at once, while the demo
        strategy's candidates start their runs on ``batch``. A failed strategy costs its
        candidate (as in DSPy) and the next bucket is tried. ``None``: the budget.
        """
        opt, want = self.opt, self.opt.num_candidates + 1
        built: list[SimbaCandidate] = []
        queue = list(buckets)
        while queue and len(built) < want:
            wave: list[tuple[list[Rollout], int, Module, str]] = []
            while queue and len(wave) < want - len(built):
                runs = queue.pop(0)
                source = self.draw(self.top(), opt.temperature_for_candidates)
                candidate = self.pool[source].program.deepcopy()
                self.drop_demos(candidate)
                strategies = ["demo", "rule"] if opt.max_demos > 0 else ["rule"]
                strategy = self.rng.choice(strategies)
                wave.append((runs, source, candidate, strategy))
            demos: dict[int, bool | BaseException] = {}
            for k, (runs, _, candidate, strategy) in enumerate(wave):
                if strategy != "demo":
                    continue
                try:
                    demos[k] = self.append_demo(runs, candidate, p10)
                except Exception as exc:  # reported below, in bucket order
                    demos[k] = exc
                    continue
                if self.ahead:  # its runs go while the rules are written
                    self.start([(candidate, example) for example in batch], desc)
            if self.ahead and any(strategy == "rule" for *_, strategy in wave):
                # the rules' LM calls leave the slots the demo candidates do not take idle
                self.fill(max(0, self.slots.size - self.engaged()))
            advice = await self.advise(
                [
                    (runs, candidate, p10, p90)
                    for runs, _, candidate, strategy in wave
                    if strategy == "rule"
                ]
            )
            for k, (_, source, candidate, strategy) in enumerate(wave):
                try:
                    if strategy == "demo":
                        done = demos[k]
                        if isinstance(done, BaseException):
                            raise done
                        applied = done
                    else:
                        outcome = advice.pop(0)
                        if isinstance(outcome, BaseException):
                            raise outcome
                        applied = _apply_advice(candidate, outcome)
                except Exception as exc:  # a failed strategy costs one candidate, as in DSPy
                    opt.say(
                        f"SIMBA step {step + 1}: {strategy} failed: {type(exc).__name__}: {exc}"
                    )
                    continue
                built.append(SimbaCandidate(0, step, source, strategy, applied, [], candidate))
            if (reason := opt.budget_exhausted()) is not None:
                opt.stopped = reason
                return None
        return built

    def drop_demos(self, program: Module) -> None:
        counts = [len(p.demos) for p in program.predictors()]
        num = max(counts, default=0)
        if num == 0:
            return
        limit = self.opt.max_demos if self.opt.max_demos > 0 else 3
        drop = min(num, max(_poisson(self.rng, num / limit), int(num >= limit)))
        gone = {self.rng.randrange(num) for _ in range(drop)}
        for p in program.predictors():
            p.demos = [d for i, d in enumerate(p.demos) if i not in gone]

    def append_demo(self, runs: list[Rollout], program: Module, p10: float) -> bool:
        good = runs[0]
        if good.score <= p10:
            return False
        width = self.opt.demo_input_field_maxlen
        latest: dict[str, Example] = {}
        for path, inputs, outputs in good.steps:
            shown = {
                k: (
                    f"{str(v)[:width]}\n\t\t... <TRUNCATED FOR BREVITY>"
                    if len(str(v)) > width
                    else v
                )
                for k, v in inputs.items()
            }
            demo = Example({**shown, **outputs.to_dict()}).with_inputs(*shown)
            demo["dsx_augmented"] = True
            latest[path] = demo  # one demo per predictor: its last call
        predictors = dict(program.named_predictors())
        for path, demo in latest.items():
            predictors[path].demos = [*predictors[path].demos, demo]
        return bool(latest)

    async def advise(
        self, asks: list[tuple[list[Rollout], Module, float, float]]
    ) -> list[dict[str, Any] | BaseException | None]:
        """The rule strategy's advice per ask, all prompt-model calls at once.

        ``None``: no call (no contrast worth a rule); an exception: the call failed.
        """

        async def one(
            runs: list[Rollout], program: Module, p10: float, p90: float
        ) -> dict[str, Any] | None:
            good, bad = runs[0], runs[-1]
            if good.score <= p10 or bad.score >= p90:
                return None
            better, worse = _side(good), _side(bad)
            if good.score <= bad.score:  # no contrast: show only the informative side
                blank = {"trajectory": "[]", "outputs": "{}", "reward": "N/A", "info": "{}"}
                if good.score > p90:
                    worse = blank
                else:
                    better = blank
            example = good.example
            pred = await Predict(OfferAdvice, lm=self.opt.prompt_model).acall(
                program_code=_code_of(program),
                modules_defn=program_summary(program),
                program_inputs=_json(example.inputs().to_dict()),
                oracle_metadata=_json(example.labels().to_dict()),
                worse_program_trajectory=worse["trajectory"],
                worse_program_outputs=worse["outputs"],
                worse_reward_value=worse["reward"],
                worse_reward_info=worse["info"],
                better_program_trajectory=better["trajectory"],
                better_program_outputs=better["outputs"],
                better_reward_value=better["reward"],
                better_reward_info=better["info"],
                module_names=[path for path, _ in program.named_predictors()],
            )
            return pred.module_advice or {}

        return list(await asyncio.gather(*(one(*ask) for ask in asks), return_exceptions=True))

    async def finish(self) -> Module:
        opt = self.opt
        chosen = [self.winners[i] for i in self.finalists(len(self.winners) - 1)]
        if opt.stopped is None:
            jobs = [(p, ex) for p in chosen for ex in self.final]
            done = await self.evaluate(jobs, "SIMBA: final scoring")
        else:
            done = None
        if done is None:  # the budget: the best mean on its mini-batch, else the student
            leader = max(self.pool, key=lambda c: c.mean)
            opt.log.append({"event": "result", "score": None, "stopped": opt.stopped})
            opt.say(f"SIMBA: stopped; the best on its mini-batch is candidate {leader.index}")
            return leader.program.deepcopy()
        k = len(self.final)
        scores = [sum(r.score for r in done[i * k : (i + 1) * k]) / k for i in range(len(chosen))]
        for i, s in enumerate(scores[1:]):
            if i in opt.trial_logs:
                opt.trial_logs[i]["train_score"] = s
        index = scores.index(max(scores))
        best = chosen[index].deepcopy()
        opt.best_score = round(100 * scores[index], 2)
        ranked = sorted(zip(scores, chosen, strict=True), key=lambda sp: -sp[0])
        opt.candidate_programs = [{"score": s, "program": p} for s, p in ranked]
        best.candidate_programs = opt.candidate_programs  # type: ignore[attr-defined]
        best.trial_logs = opt.trial_logs  # type: ignore[attr-defined]
        opt.log.append({"event": "result", "score": opt.best_score, "stopped": opt.stopped})
        opt.say(
            f"SIMBA: best {opt.best_score:.2f}% on the "
            f"{'valset' if self.final is not self.train else 'trainset'} "
            f"(of {len(chosen)} winners)"
        )
        return best


def _candidate_fields(c: SimbaCandidate) -> dict[str, Any]:
    return {
        "index": c.index,
        "step": c.step,
        "source": c.source,
        "strategy": c.strategy,
        "applied": c.applied,
        "scores": c.scores,
    }


def _snapshot(program: Module) -> dict[str, Any]:
    """What SIMBA changes in a program: each predictor's instruction and demos."""
    return {
        path: {"instructions": p.signature.instructions, "demos": examples_to_json(p.demos)}
        for path, p in program.named_predictors()
    }


def _restore(base: Module, snapshot: dict[str, Any]) -> Module:
    program = base.deepcopy()
    for path, p in program.named_predictors():
        saved = snapshot[path]
        p.signature = p.signature.with_instructions(saved["instructions"])
        p.demos = examples_from_json(saved["demos"])
    return program


def _jsonable_state(state: Any) -> Any:
    return [_jsonable_state(v) for v in state] if isinstance(state, tuple | list) else state


def _apply_advice(program: Module, advice: dict[str, Any] | None) -> bool:
    """Append each predictor's advice to its instruction; whether anything changed."""
    changed = False
    for path, predictor in program.named_predictors():
        text = (advice or {}).get(path)
        if text:
            sig = predictor.signature
            predictor.signature = sig.with_instructions(f"{sig.instructions}\n\n{text}")
            changed = True
    return changed


def _variant(program: Module, config: dict[str, Any], ctx: dict[str, Any]) -> Module:
    copy = program.deepcopy()
    for p in copy.predictors():
        p.config = {**p.config, **config}
        if "lm" in ctx:
            p.lm = ctx["lm"]
    return copy


def _side(run: Rollout) -> dict[str, str]:
    trajectory = [
        {"module_name": path, "inputs": inputs, "outputs": outputs.to_dict()}
        for path, inputs, outputs in run.steps
    ]
    outputs = run.prediction.to_dict() if hasattr(run.prediction, "to_dict") else {}
    return {
        "trajectory": _json(trajectory),
        "outputs": _json(outputs),
        "reward": f"{run.score:g}",
        "info": _json({"feedback": run.feedback} if run.feedback else {}),
    }


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


#: Program classes' source (``inspect.getsource`` tokenizes the whole file: once per class).
_SOURCES: dict[type, str | None] = {}


def _code_of(program: Module) -> str:
    """The program's class source; for dsx's own modules (a bare ``Predict``, ``ChainOfThought``)
    its structure instead: their source is dsx's implementation, not the user's task."""
    cls = type(program)
    if cls.__module__.split(".")[0] == "dsx":
        return program_summary(program)
    if cls not in _SOURCES:
        try:
            _SOURCES[cls] = inspect.getsource(cls)
        except (OSError, TypeError):
            _SOURCES[cls] = None
    source = _SOURCES[cls]
    return source if source is not None else program_summary(program)


def _percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (NumPy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; ``lam`` is small here)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
