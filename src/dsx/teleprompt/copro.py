"""``COPRO``: coordinate ascent over each predictor's instruction (DSPy's COPRO).

For every predictor the prompt model proposes ``breadth - 1`` instructions (one call with
``n`` completions); with the current one they are scored on the valset (default: the
trainset), and the predictor keeps the best. Then, ``depth - 1`` more times, the prompt
model sees the best attempts so far with their scores (lowest first) and proposes
``breadth`` more. With several predictors each is optimized in turn with the others fixed
at their best, and every candidate is re-scored in the new context, as in DSPy.

Improvements over DSPy: a program already scored (the same instruction for every
predictor) is not scored again, the candidates of one round are scored together on the
batch engine, the program as given is scored while the first proposals are written, and
(without a budget) the next round's proposals are asked ahead (see ``_Ascent.ask_ahead``). dsx's adapters do not render output-field prefixes, so COPRO proposes
instructions only.

After ``compile``, ``optimizer.candidates`` lists every scored attempt and
``optimizer.best_score`` is the winner's score; with ``track_stats`` the per-depth
statistics are in ``optimizer.results_best`` / ``results_latest`` (and on the program, as
DSPy puts them).
"""

from __future__ import annotations

import asyncio
import statistics
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
from dsx.teleprompt._propose import as_lm, clean_instruction
from dsx.teleprompt._resume import Journal, ScoreJournal
from dsx.teleprompt._scoring import Slots, ascore_programs
from dsx.teleprompt.base import (
    OptimizerSettingError,
    Teleprompter,
    check_examples,
)

__all__ = ["COPRO", "Attempt", "BasicGenerateInstruction", "GenerateInstructionGivenAttempts"]

#: One proposal request: predictor path, signature, how many, the attempts shown (or None).
Ask = tuple[str, Any, int, "str | None"]


class BasicGenerateInstruction(Signature):
    """You improve instructions for language models. Given a task's fields and its current
    instruction, propose an instruction that will lead a capable language model to do the
    task well. Be inventive."""

    task_fields: str = InputField(desc="the task's input and output fields")
    basic_instruction: str = InputField(desc="the instruction before optimization")
    proposed_instruction: str = OutputField(desc="the improved instruction")


class GenerateInstructionGivenAttempts(Signature):
    """You improve instructions for language models. Below are instructions already tried for
    a task, each with its validation score, from the lowest score to the highest. Propose a
    new instruction that will score higher still. Be inventive."""

    task_fields: str = InputField(desc="the task's input and output fields")
    attempted_instructions: str = InputField(desc="instructions tried, with their scores")
    proposed_instruction: str = OutputField(desc="the improved instruction")


@dataclass
class Attempt:
    """One scored instruction of one predictor.

    Attributes:
        predictor: the predictor's path.
        instruction: the instruction tried.
        depth: the round (0-based) in which it was scored.
        score: percent on the valset.
        program: the whole program it was scored in.
    """

    predictor: str
    instruction: str
    depth: int
    score: float
    program: Module


class COPRO(Teleprompter):
    """Optimize each predictor's instruction by proposing, scoring and re-proposing (DSPy's COPRO).

    Args:
        prompt_model: the LM that proposes instructions (an LM or a model string; default
            ``dsx.settings.lm``).
        metric: ``(example, prediction, trace)`` → number/bool.
        breadth: instructions proposed per round (more than 1).
        depth: rounds of proposals.
        init_temperature: the temperature of proposal calls.
        track_stats: record per-depth score statistics.
        max_errors: stop after this many failed runs (default ``dsx.settings.max_errors``).
        run_dir: keep the run's proposals and scores here; running again with the same
            inputs after an interruption resumes it without repeating finished LM calls.
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress`` (see :class:`~dsx.teleprompt.Teleprompter`).
    """

    def __init__(
        self,
        prompt_model: BaseLM | str | None = None,
        metric: Callable[..., Any] | None = None,
        breadth: int = 10,
        depth: int = 3,
        init_temperature: float = 1.4,
        track_stats: bool = False,
        max_errors: int | None = None,
        run_dir: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(breadth, int) or breadth <= 1:
            raise OptimizerSettingError(f"COPRO(breadth={breadth!r}): breadth must be an int > 1")
        if not isinstance(depth, int) or depth < 1:
            raise OptimizerSettingError(f"COPRO(depth={depth!r}): depth must be an int >= 1")
        self.prompt_model = as_lm(prompt_model, "prompt_model")
        self.metric = metric
        self.breadth = breadth
        self.depth = depth
        self.init_temperature = init_temperature
        self.track_stats = track_stats
        self.max_errors = max_errors
        self.run_dir = run_dir
        self.candidates: list[Attempt] = []
        self.best_score: float | None = None
        self.results_best: dict[str, dict[str, list[float]]] = {}
        self.results_latest: dict[str, dict[str, list[float]]] = {}
        self.total_calls = 0

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        for name in ("candidates", "best_score", "results_best", "results_latest", "total_calls"):
            out.pop(name, None)
        out["prompt_model"] = self.prompt_model.model if self.prompt_model is not None else None
        return out

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
        eval_kwargs: dict[str, Any] | None = None,
    ) -> Module:
        """Optimize ``student``'s instructions on ``valset`` (default: ``trainset``).

        ``eval_kwargs`` is accepted for DSPy compatibility; ``num_threads`` in it sets the
        concurrency.
        """
        if self.metric is None:
            raise OptimizerSettingError("COPRO needs a metric: COPRO(metric=...)")
        examples = check_examples(valset if valset is not None else trainset, "trainset")
        if not examples:
            raise OptimizerSettingError("COPRO: the trainset is empty")
        if eval_kwargs and eval_kwargs.get("num_threads"):
            self.num_threads = int(eval_kwargs["num_threads"])
        self.candidates, self.best_score, self.total_calls = [], None, 0
        self.results_best, self.results_latest = {}, {}
        module = student.deepcopy()
        state = self.run_state(module, [examples])
        with self.session(module, self.prompt_model):
            if state is not None:
                self.say(f"COPRO: run state in {state}")
            best = _Ascent(self, module, examples, state).run()
        if best is None:
            program = module
        else:
            program = best.program.deepcopy()
            self.best_score = best.score
            if self.track_stats:
                program.results_best = self.results_best  # type: ignore[attr-defined]
                program.results_latest = self.results_latest  # type: ignore[attr-defined]
                program.total_calls = self.total_calls  # type: ignore[attr-defined]
        self.log.append({"event": "result", "score": self.best_score, "stopped": self.stopped})
        program._compiled = True  # type: ignore[attr-defined]
        return program


class _Ascent:
    """One COPRO run."""

    def __init__(
        self, opt: COPRO, module: Module, examples: list[Example], state: Path | None
    ) -> None:
        self.opt = opt
        self.module = module
        self.examples = examples
        self.paths = [path for path, _ in module.named_predictors()]
        self.rng = opt.rng("copro")
        # Per predictor: instruction -> its best attempt (insertion order = first scored).
        self.evaluated: dict[str, dict[str, Attempt]] = {p: {} for p in self.paths}
        # scores per instruction tuple, and proposals per round and predictor, kept in the
        # run directory (if any) as they are made
        self.scored = ScoreJournal(None if state is None else state / "scores.jsonl")
        self.proposed = Journal(None if state is None else state / "proposals.jsonl")
        self.round = 0
        #: Scorings started earlier and not awaited yet, by instruction key (and proposals
        #: asked ahead).
        self.inflight: dict[str, asyncio.Future[Any]] = {}
        # Without a budget the next proposals go out while a round is scored (see
        # ask_ahead); with one they would move where the budget stops.
        self.ahead = opt.max_lm_calls is None and opt.max_cost is None
        self.limiter = Slots(opt.concurrency)

    def stop(self) -> bool:
        reason = self.opt.budget_exhausted()
        if reason is not None:
            self.opt.stopped = reason
        return reason is not None

    def draw(self, paths: list[str]) -> tuple[list[int], list[str]]:
        """The next round's rollout ids (drawn in order, so the seed fixes every prompt)
        and journal keys, one per predictor."""
        ids = [self.rng.randrange(10**9) for _ in paths]
        keys = [self.proposed.key(self.round, path) for path in paths]
        self.round += 1
        return ids, keys

    async def propose_all(
        self,
        asks: list[Ask],
        drawn: tuple[list[int], list[str]] | None = None,
        ahead: tuple[list[Ask], asyncio.Future[list[list[str]]]] | None = None,
    ) -> list[list[str]]:
        """Each ask's proposals (``path, signature, count, attempts``), all at once.

        ``ahead``: proposals asked before the round's scores were known, for the asks
        expected then; when those are the asks after all, their answers are used, else
        they are dropped and the asks go out now.
        """
        ids, keys = drawn if drawn is not None else self.draw([ask[0] for ask in asks])
        proposals: list[list[str]] | None = None
        if ahead is not None:
            expected, early = ahead
            if [_prompt_of(a) for a in expected] == [_prompt_of(a) for a in asks]:
                proposals = await early
            else:  # a new candidate changed the attempts shown: ask again
                early.cancel()
                await asyncio.gather(early, return_exceptions=True)
        if proposals is None:
            proposals = await self.ask_model(asks, ids, keys)
        for key, texts in zip(keys, proposals, strict=True):
            if texts and self.proposed.get(key) is None:
                self.proposed.put(key, texts)
        # the log in predictor order, whichever answer came first
        for (path, _, _, _), texts in zip(asks, proposals, strict=True):
            self.opt.log.append({"event": "proposal", "predictor": path, "instructions": texts})
        return [[t for t in texts if t] for texts in proposals]

    async def ask_model(self, asks: list[Ask], ids: list[int], keys: list[str]) -> list[list[str]]:
        async def one(ask: Ask, rid: int, key: str) -> list[str]:
            known = self.proposed.get(key)
            if known is not None:  # proposed before this run was interrupted
                return list(known)
            return await self.propose(*ask, rid)

        return list(await asyncio.gather(*(one(*job) for job in zip(asks, ids, keys, strict=True))))

    def asks_for(self, current: Module, depth: int | None = None) -> list[Ask]:
        """Each predictor's next proposal request: its best attempts so far with their
        scores, lowest first (``depth``: record the statistics of that depth)."""
        opt = self.opt
        asks: list[Ask] = []
        for path, predictor in current.named_predictors():
            ranked = sorted(self.evaluated[path].values(), key=lambda a: -a.score)
            if opt.track_stats and depth is not None:
                _stats(opt.results_best, path, depth, [a.score for a in ranked[:10]])
            shown = ranked[: opt.breadth][::-1]  # lowest first, the best last
            attempts = "\n".join(
                f"Instruction #{i}: {a.instruction}\nResulting Score #{i}: {a.score:.2f}"
                for i, a in enumerate(shown, 1)
            )
            asks.append((path, predictor.signature, opt.breadth, attempts))
        return asks

    def ask_ahead(
        self, current: Module
    ) -> tuple[
        tuple[list[int], list[str]], tuple[list[Ask], asyncio.Future[list[list[str]]]] | None
    ]:
        """Draw the next round and, without a budget, start its proposals now, for the
        attempts as they stand: if the round being scored adds no attempt worth showing
        (none of its candidates beats the ones shown), those are the very requests the
        round's end would send, and their answers are ready a round-trip earlier."""
        drawn = self.draw(self.paths)
        ids, keys = drawn
        if not self.ahead or any(self.proposed.get(k) is not None for k in keys):
            return drawn, None
        expected = self.asks_for(current)
        return drawn, (expected, asyncio.ensure_future(self.ask_model(expected, ids, keys)))

    def key_of(self, program: Module) -> str:
        return self.scored.key(*(p.signature.instructions for p in program.predictors()))

    def score_unchanged(self) -> None:
        """Start scoring the program as given (a candidate of the first round anyway) while
        the first proposals are made; the first round's candidates join it as soon as the
        proposals arrive, sharing ``num_threads``."""
        key = self.key_of(self.module)
        if self.scored.get(key) is not None or self.stop():
            return

        async def score() -> None:
            (value,) = await ascore_programs(
                self.opt,
                [self.module.deepcopy()],
                self.examples,
                desc="COPRO: the program as given",
                limiter=self.limiter,
                quiet=True,
            )
            self.opt.total_calls += 1
            if value is not None:
                self.scored.put(key, value)

        self.inflight[key] = asyncio.ensure_future(score())

    async def propose(
        self, path: str, signature: Any, count: int, attempts: str | None, rollout_id: int
    ) -> list[str]:
        opt = self.opt
        predict = Predict(
            BasicGenerateInstruction if attempts is None else GenerateInstructionGivenAttempts,
            lm=opt.prompt_model,
            n=count,
            temperature=opt.init_temperature,
            rollout_id=rollout_id,
        )
        fields = _fields_text(signature)
        try:
            if attempts is None:
                pred = await predict.acall(
                    task_fields=fields, basic_instruction=signature.instructions
                )
            else:
                pred = await predict.acall(task_fields=fields, attempted_instructions=attempts)
        except Exception as exc:  # a failed proposal round leaves the candidates scored so far
            opt.say(f"COPRO: proposing for `{path}` failed: {type(exc).__name__}: {exc}")
            return []
        return [clean_instruction(str(t)) for t in pred.completions.proposed_instruction]

    def run(self) -> Attempt | None:
        return run_coroutine_sync(self.arun)

    async def arun(self) -> Attempt | None:
        # one limiter for every batch of the run: overlapping batches share num_threads
        self.limiter = Slots(self.opt.concurrency)
        try:
            return await self.ascend()
        finally:  # a budget stop can leave the unchanged program's scoring running
            for task in self.inflight.values():
                task.cancel()
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)

    async def ascend(self) -> Attempt | None:
        opt = self.opt
        current = self.module.deepcopy()
        latest: dict[str, list[str]] = {}
        every: dict[str, list[str]] = {}
        if self.stop():
            return self.best()
        named = list(self.module.named_predictors())
        self.score_unchanged()
        found = await self.propose_all(
            [(path, p.signature, opt.breadth - 1, None) for path, p in named]
        )
        for (path, predictor), texts in zip(named, found, strict=True):
            latest[path] = every[path] = _unique([*texts, predictor.signature.instructions])
        for d in range(opt.depth):
            drawn, ahead = None, None
            if d < opt.depth - 1 and all(self.evaluated[p] for p in self.paths):
                drawn, ahead = self.ask_ahead(current)
                if ahead is not None:
                    self.inflight[f"proposals {d + 1}"] = ahead[1]  # cancelled on a stop
            for path in self.paths:
                pool = latest[path] if len(self.paths) == 1 else every[path]
                if not await self.score_round(current, path, pool, d):
                    return self.best()
            if d == opt.depth - 1:
                break
            if self.stop():
                return self.best()
            asks = self.asks_for(current, d)
            found = await self.propose_all(asks, drawn, ahead)
            self.inflight.pop(f"proposals {d + 1}", None)
            for (path, _, _, _), texts in zip(asks, found, strict=True):
                latest[path] = _unique(texts)
                every[path] = _unique([*every[path], *texts])
        if opt.track_stats:
            for path in self.paths:
                scores = sorted((a.score for a in self.evaluated[path].values()), reverse=True)
                _stats(opt.results_best, path, opt.depth - 1, scores[:10])
        return self.best()

    async def score_round(self, current: Module, path: str, pool: list[str], depth: int) -> bool:
        """Score ``pool`` for ``path`` with the other predictors as in ``current``; keep the best."""
        opt = self.opt
        programs, keys = [], []
        for text in pool:
            program = current.deepcopy()
            predictor = dict(program.named_predictors())[path]
            predictor.signature = predictor.signature.with_instructions(text)
            programs.append(program)
            keys.append(self.key_of(program))
        todo = [
            i
            for i, k in enumerate(keys)
            if self.scored.get(k) is None and k not in self.inflight and k not in keys[:i]
        ]
        if todo and self.stop():
            return False
        fresh = await ascore_programs(
            opt,
            [programs[i] for i in todo],
            self.examples,
            desc=f"COPRO depth {depth + 1}/{opt.depth} · `{path}`",
            limiter=self.limiter,
        )
        opt.total_calls += len(todo)
        for i, score in zip(todo, fresh, strict=True):
            if score is not None:
                self.scored.put(keys[i], score)
        for key in dict.fromkeys(keys):  # scored by an earlier batch still running
            if key in self.inflight:
                await self.inflight.pop(key)
        latest_scores = []
        for text, program, key in zip(pool, programs, keys, strict=True):
            score = self.scored.get(key)
            if score is None:
                continue
            latest_scores.append(score)
            attempt = Attempt(path, text, depth, score, program)
            opt.candidates.append(attempt)
            known = self.evaluated[path].get(text)
            if known is None or score > known.score:
                self.evaluated[path][text] = attempt
            opt.log.append(
                {
                    "event": "candidate",
                    "predictor": path,
                    "depth": depth,
                    "instruction": text,
                    "score": score,
                }
            )
        if opt.track_stats and latest_scores:
            _stats(opt.results_latest, path, depth, latest_scores)
        if any(s is None for s in fresh) or any(self.scored.get(k) is None for k in keys):
            opt.stopped = opt.budget_exhausted() or "stopped while scoring"
        best = self.best_for(path)
        if best is not None:
            predictor = dict(current.named_predictors())[path]
            predictor.signature = predictor.signature.with_instructions(best.instruction)
            overall = self.best()
            opt.say(
                f"COPRO depth {depth + 1}/{opt.depth} · `{path}`: {len(pool)} candidates, "
                f"best {best.score:.2f}%"
                + (f" · best so far {overall.score:.2f}%" if overall is not None else "")
            )
        return opt.stopped is None

    def best_for(self, path: str) -> Attempt | None:
        attempts = list(self.evaluated[path].values())
        return max(attempts, key=lambda a: a.score) if attempts else None

    def best(self) -> Attempt | None:
        everything = [a for p in self.paths for a in self.evaluated[p].values()]
        return max(everything, key=lambda a: a.score) if everything else None


def _prompt_of(ask: Ask) -> tuple[str, str, int, str | None]:
    """What a proposal request sends: the predictor, its fields, the count, the attempts."""
    path, signature, count, attempts = ask
    return (path, _fields_text(signature), count, attempts)


def _fields_text(signature: Any) -> str:
    parts = []
    for name, f in signature.fields.items():
        parts.append(f"{f.kind} `{name}`" + (f": {f.desc}" if f.desc else ""))
    return "\n".join(parts)


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(t for t in texts if t))


def _stats(
    table: dict[str, dict[str, list[float]]], path: str, depth: int, scores: list[float]
) -> None:
    if not scores:
        return
    row = table.setdefault(path, {"depth": [], "max": [], "average": [], "min": [], "std": []})
    row["depth"].append(depth)
    row["max"].append(max(scores))
    row["average"].append(sum(scores) / len(scores))
    row["min"].append(min(scores))
    row["std"].append(statistics.pstdev(scores))
