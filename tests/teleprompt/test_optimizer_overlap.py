"""Instruction optimizers overlap their stages (issue 13's wall-time work): COPRO scores the
program as given while the first instructions are proposed, SIMBA starts a step's demo
candidates while its rules are written and makes the finalists' runs in slots a step leaves
idle, and a fast sync metric runs on the event loop. None of it may change the result or
exceed ``num_threads``: each run here is compared with the same run on one thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from tests.teleprompt.instruction_task import (
    PROPOSALS,
    PromptModel,
    dataset,
    echo_program,
    exact,
    instruction_of,
    task_answer,
)
from tests.teleprompt.test_simba import advisor, task_reply

import dsx
from dsx.teleprompt import COPRO, SIMBA
from dsx.testing import FunctionLM

ORIGINAL = echo_program().signature.instructions


class Flight:
    """Task-LM calls in flight: the peak, and per instruction how many are out right now;
    ``mixed`` counts calls with another instruction that started while a call with the
    program's own instruction was out."""

    def __init__(self) -> None:
        self.now = self.peak = self.calls = self.mixed = 0
        self.out: dict[str, int] = {}
        #: proposal calls (from attempts) made while task calls were out; all of them;
        #: MIPROv2's grounded proposals made while calls with demos (bootstraps) were out
        self.ahead = self.proposals = self.grounded = 0
        self.with_demos = 0

    def task(self, reply: Any, latency: float = 0.002) -> FunctionLM:
        async def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
            instruction = instruction_of(messages)
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
            self.mixed += instruction != ORIGINAL and self.out.get(ORIGINAL, 0) > 0
            self.out[instruction] = self.out.get(instruction, 0) + 1
            demos = len(messages) > 2
            self.with_demos += demos
            await asyncio.sleep(latency)
            self.with_demos -= demos
            self.out[instruction] -= 1
            self.now -= 1
            return reply(messages, **kwargs)

        return FunctionLM(respond, model="scripted-task-model")

    def prompt(self, latency: float = 0.001, by_request: bool = False) -> FunctionLM:
        """The scripted prompt model: ``PROPOSALS`` in call order, or (``by_request``) from
        the request's rollout id, so that the same request gets the same answer."""
        script = PromptModel()

        async def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
            self.proposals += 1
            if "attempted_instructions" in messages[0]["content"] and self.now > 0:
                self.ahead += 1
            if "task_demos" in messages[0]["content"] and self.with_demos > 0:
                self.grounded += 1
            await asyncio.sleep(latency)
            if not by_request:
                return script(messages, **kwargs)
            start, n = int(kwargs["rollout_id"]), int(kwargs.get("n") or 1)
            out = [
                {"proposed_instruction": PROPOSALS[(start + j) % len(PROPOSALS)]} for j in range(n)
            ]
            return out if n > 1 else out[0]

        return FunctionLM(respond, model="scripted-prompt-model")


def run_copro(
    threads: int, depth: int = 2, by_request: bool = False, **options: Any
) -> tuple[Flight, Any, COPRO]:
    flight = Flight()
    # the program as given takes two rounds of 5 ms; the first proposals come after 1 ms
    dsx.configure(lm=flight.task(lambda messages, **_: task_answer(messages), 0.005))
    opt = COPRO(
        metric=exact,
        prompt_model=flight.prompt(by_request=by_request),
        breadth=3,
        depth=depth,
        num_threads=threads,
        display_progress=False,
        **options,
    )
    best = opt.compile(echo_program(), trainset=dataset(6))
    return flight, best, opt


def test_copro_scores_the_program_as_given_while_proposing_within_num_threads():
    flight, best, opt = run_copro(4)
    assert flight.peak <= 4
    # the first proposals' runs started while the program as given was still being scored
    assert flight.mixed > 0
    one, best_one, opt_one = run_copro(1)
    assert one.peak == 1
    assert best.signature.instructions == best_one.signature.instructions
    assert opt.best_score == opt_one.best_score == 100.0
    assert [(a.instruction, a.depth, a.score) for a in opt.candidates] == [
        (a.instruction, a.depth, a.score) for a in opt_one.candidates
    ]
    assert flight.calls == one.calls


def test_copro_asks_for_the_next_proposals_while_a_round_is_scored():
    """Without a budget the next round's proposals go out when a round's scoring starts,
    for the attempts shown then; a round that changes them makes COPRO ask again. Either
    way the search is the one made without asking ahead (as with a budget), given a prompt
    model that answers the same request the same way."""
    flight, best, opt = run_copro(4, depth=4, by_request=True)
    plain, best_plain, opt_plain = run_copro(4, depth=4, by_request=True, max_lm_calls=10**6)
    assert flight.ahead > 0 and plain.ahead == 0
    assert best.signature.instructions == best_plain.signature.instructions
    assert [(a.instruction, a.depth, a.score) for a in opt.candidates] == [
        (a.instruction, a.depth, a.score) for a in opt_plain.candidates
    ]
    proposals = [e for e in opt.log if e["event"] == "proposal"]
    assert proposals == [e for e in opt_plain.log if e["event"] == "proposal"]
    assert flight.calls == plain.calls
    # a proposal asked ahead is sent again only when the round changed what it shows
    assert plain.proposals <= flight.proposals <= plain.proposals + 2


def run_simba(threads: int, lines: list[str] | None = None) -> tuple[Flight, Any, SIMBA]:
    flight = Flight()
    dsx.configure(lm=flight.task(task_reply))
    opt = SIMBA(
        metric=exact,
        bsize=4,
        num_candidates=3,
        max_steps=3,
        prompt_model=advisor(),
        num_threads=threads,
        display_progress=lines.append if lines is not None else False,
    )
    best = opt.compile(echo_program(), trainset=dataset(8))
    return flight, best, opt


def test_simba_runs_ahead_within_num_threads_and_finds_what_one_thread_finds():
    lines: list[str] = []
    flight, best, opt = run_simba(4, lines)
    assert flight.peak <= 4
    # the finalists' runs were all made in slots the steps left idle: nothing was left
    # for a final scoring batch
    assert not any("final scoring" in line for line in lines)
    one, best_one, opt_one = run_simba(1)
    assert one.peak == 1
    assert opt.best_score == opt_one.best_score
    assert best.signature.instructions == best_one.signature.instructions
    assert [d.toDict() for d in best.demos] == [d.toDict() for d in best_one.demos]

    def pool(o: SIMBA) -> list[Any]:
        return [(c.step, c.source, c.strategy, c.applied, c.scores) for c in o.candidates]

    assert pool(opt) == pool(opt_one)
    assert [c["score"] for c in opt.candidate_programs] == [
        c["score"] for c in opt_one.candidate_programs
    ]
    assert flight.calls == one.calls  # the runs made ahead are the ones the end needs


def test_a_fast_sync_metric_runs_on_the_loop_and_a_slow_one_moves_to_threads():
    where: dict[str, list[str]] = {"fast": [], "slow": []}

    def metric_for(kind: str) -> Any:
        def metric(example: Any, pred: Any, trace: Any = None) -> bool:
            where[kind].append(threading.current_thread().name)
            if kind == "slow" and len(where[kind]) == 1:
                time.sleep(0.01)  # an LM judge, say: too slow for the event loop
            return exact(example, pred, trace)

        return metric

    for kind in ("fast", "slow"):
        dsx.configure(lm=FunctionLM(lambda messages: task_answer(messages), model="task"))
        opt = COPRO(
            metric=metric_for(kind),
            prompt_model=FunctionLM(PromptModel(), model="prompt"),
            breadth=2,
            depth=1,
            num_threads=4,
            display_progress=False,
        )
        opt.compile(echo_program(), trainset=dataset(6))
    loop_thread = threading.current_thread().name
    assert set(where["fast"]) == {loop_thread}
    assert where["slow"][0] == loop_thread
    assert all(name.startswith("dsx-worker") for name in where["slow"][1:])
    assert len(where["slow"]) > 1


def test_slots_serve_the_lowest_priority_first_and_never_exceed_their_size():
    from dsx.teleprompt._scoring import Slots

    async def main() -> tuple[list[str], int]:
        slots = Slots(2)
        order: list[str] = []
        peak = 0

        async def run(name: str, priority: float) -> None:
            nonlocal peak
            await slots.acquire(priority)
            peak = max(peak, slots.busy)
            order.append(name)
            await asyncio.sleep(0.001)
            slots.release()

        await asyncio.gather(
            run("a", 5), run("b", 5), run("late", 9), run("early", 1), run("mid", 5)
        )
        return order, peak

    order, peak = asyncio.run(main())
    assert peak == 2
    # the first two take the free slots; then the waiters go by priority, then arrival
    assert order == ["a", "b", "early", "mid", "late"]


def run_mipro(threads: int, trials: int) -> Any:
    from tests.teleprompt.test_instruction_optimizers import mipro, trial_table

    dsx.configure(lm=Flight().task(lambda messages, **_: task_answer(messages)))
    opt, _, _ = mipro(num_trials=trials, num_threads=threads)
    best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(4, start=4))
    samplers = [e for e in opt.log if e["event"] == "sampler"]
    return trial_table(opt), best.signature.instructions, samplers


def test_mipro_hands_the_search_to_optunas_tpe_after_its_random_start():
    table, instruction, samplers = run_mipro(4, 16)
    # TPE took over once ten evaluations (the baseline and nine trials) were finished
    assert samplers == [{"event": "sampler", "sampler": "tpe", "history": 10}]
    assert len(table) == 1 + 16 and "uppercase" in instruction.lower()
    assert run_mipro(1, 16)[:2] == (table, instruction)
    assert run_mipro(4, 8)[2] == []  # eight trials never leave the random start


def test_a_short_mipro_search_never_imports_optuna():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tests.teleprompt.test_optimizer_overlap import run_mipro\n"
        "run_mipro(4, 8)\n"
        "print('optuna' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=root,
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_mipro_proposes_while_it_bootstraps_and_scores_the_baseline_alongside():
    from tests.teleprompt.test_instruction_optimizers import mipro, trial_table

    def run(threads: int) -> tuple[Flight, Any, Any]:
        flight = Flight()
        dsx.configure(lm=flight.task(lambda messages, **_: task_answer(messages), 0.005))
        opt, _, _ = mipro(num_threads=threads, prompt_model=flight.prompt())
        best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(4, start=4))
        return flight, trial_table(opt), best.signature.instructions

    flight, table, instruction = run(4)
    assert flight.peak <= 4  # bootstraps and baseline share num_threads
    # the first proposals (they show demo sets made without LM calls) went out while the
    # bootstraps' runs were still out
    assert flight.grounded > 0
    one, one_table, one_instruction = run(1)
    assert one.peak == 1 and (one_table, one_instruction) == (table, instruction)
    assert one.calls == flight.calls
