"""SIMBA on a scripted task where a demo or a rule fixes the program: the task LM answers
correctly when the instruction says "uppercase" or when the prompt carries a demo; while
resampling (temperature 1.0) it also gets odd rollouts right, so runs of one example vary."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.teleprompt.instruction_task import dataset, echo_program, exact, input_of, task_answer

import dsx
from dsx.compiler.build import build
from dsx.teleprompt import SIMBA, OptimizerSettingError
from dsx.testing import FunctionLM

ADVICE = "Write the answer in uppercase letters."


def task_reply(messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, str]:
    answer = task_answer(messages)
    has_demo = len(messages) > 2  # demos are user/assistant pairs before the question
    lucky = kwargs.get("temperature") == 1.0 and kwargs.get("rollout_id", 0) % 2 == 1
    if answer["answer"] == "no idea" and (has_demo or lucky):
        answer = {"answer": input_of(messages, "text").upper()}
    return answer


def task_lm(calls: list[dict[str, Any]] | None = None) -> FunctionLM:
    def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        if calls is not None:
            calls.append(kwargs)
        return task_reply(messages, **kwargs)

    return FunctionLM(respond, model="scripted-task-model")


def advisor(advice: str = ADVICE, seen: list[str] | None = None) -> FunctionLM:
    def respond(messages: list[dict[str, Any]]) -> Any:
        if seen is not None:
            seen.append(messages[-1]["content"])
        return {"discussion": "The worse run did not shout.", "module_advice": {"self": advice}}

    return FunctionLM(respond, model="scripted-advisor")


def simba(**kwargs):
    lines: list[str] = []
    options = {
        "metric": exact,
        "bsize": 4,
        "num_candidates": 3,
        "max_steps": 3,
        "prompt_model": advisor(),
        "display_progress": lines.append,
        **kwargs,
    }
    return SIMBA(**options), lines


def test_a_rule_from_the_prompt_model_fixes_the_program():
    seen: list[str] = []
    dsx.configure(lm=task_lm())
    opt, lines = simba(max_demos=0, prompt_model=advisor(seen=seen))
    best = opt.compile(echo_program(), trainset=dataset(8))
    assert opt.best_score == 100.0
    assert best.signature.instructions == f"Repeat the text.\n\n{ADVICE}"
    assert best.demos == []
    assert {c.strategy for c in opt.candidates} == {"rule"}
    # the prompt model compared a better run (the word in capitals) with a worse one
    prompt = seen[0]
    assert '"answer": "no idea"' in prompt and "self" in prompt and "Repeat the text." in prompt
    assert best.candidate_programs[0]["score"] == 1.0 and best.trial_logs is opt.trial_logs
    assert any("best so far 100.00%" in line for line in lines)
    assert lines[-1].startswith("SIMBA: done")
    assert echo_program().signature.instructions == "Repeat the text."


def test_rule_calls_of_a_step_run_at_once_and_stay_reproducible():
    """The prompt-model calls of one step's rules are in flight together; the seed still
    fixes which buckets, sources and rules make the candidates."""

    def run():
        state = {"now": 0, "peak": 0}

        async def respond(messages: list[dict[str, Any]]) -> Any:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.01)
            state["now"] -= 1
            return {"discussion": "-", "module_advice": {"self": ADVICE}}

        dsx.configure(lm=task_lm())
        opt, _ = simba(max_demos=0, prompt_model=FunctionLM(respond, model="scripted-advisor"))
        best = opt.compile(echo_program(), trainset=dataset(8))
        table = [(c.step, c.source, c.strategy, c.applied, c.scores) for c in opt.candidates]
        return state["peak"], table, best.signature.instructions

    peak, table, instruction = run()
    assert peak > 1
    assert instruction.endswith(ADVICE)
    assert run()[1:] == (table, instruction)


def test_a_demo_from_a_successful_run_fixes_the_program():
    dsx.configure(lm=task_lm())
    opt, _ = simba(prompt_model=advisor("Be careful."), seed=0)  # rules do not help here
    best = opt.compile(echo_program(), trainset=dataset(8))
    assert opt.best_score == 100.0
    assert best.demos and all(d["dsx_augmented"] for d in best.demos)
    assert all(d["answer"] == d["text"].upper() for d in best.demos)
    assert "uppercase" not in best.signature.instructions
    winners = [c for c in opt.candidates if c.strategy == "demo" and c.applied]
    assert winners and all(c.mean == 1.0 for c in winners)


def test_resampling_uses_temperature_and_rollout_ids():
    calls: list[dict[str, Any]] = []
    dsx.configure(lm=task_lm(calls))
    opt, _ = simba(max_steps=1, max_demos=0)
    opt.compile(echo_program(), trainset=dataset(8))
    sampled = calls[: 4 * 3]  # the first pass: 4 examples x 3 resampling runs
    assert sorted({c["rollout_id"] for c in sampled}) == [0, 1, 2]
    assert all(c["temperature"] == 1.0 for c in sampled)
    assert opt.trial_logs[0]["sampled_score"] == pytest.approx(1 / 3)


def test_same_seed_same_result_other_seed_other_batches():
    def once(seed):
        dsx.configure(lm=task_lm())
        opt, _ = simba(seed=seed, max_steps=4, bsize=3)
        best = opt.compile(echo_program(), trainset=dataset(8))
        pool = [(c.index, c.source, c.strategy, c.scores) for c in opt.candidates]
        batches = [log["batch"] for log in opt.trial_logs.values()]
        return pool, batches, best.signature.instructions, [d["text"] for d in best.demos]

    first = once(5)
    assert first == once(5)
    assert once(6)[1] != first[1]


def test_budget_stops_cleanly_with_the_best_so_far():
    dsx.configure(lm=task_lm())
    opt, lines = simba(max_lm_calls=30, num_threads=1, max_demos=0)
    best = opt.compile(echo_program(), trainset=dataset(8))
    assert opt.stopped is not None and "budget reached" in opt.stopped
    assert opt.lm_calls == 30
    assert opt.best_score is None  # no final scoring
    assert isinstance(best, dsx.Predict)
    assert "stopped early" in lines[-1]


def test_a_valset_scores_the_finalists():
    dsx.configure(lm=task_lm())
    opt, lines = simba(max_demos=0)
    opt.compile(echo_program(), trainset=dataset(8), valset=dataset(5, start=8))
    assert opt.best_score == 100.0 and "on the valset" in lines[-2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bsize": 0}, "bsize=0"),
        ({"num_candidates": 0}, "num_candidates=0"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"max_demos": -1}, "max_demos=-1"),
        ({"temperature_for_sampling": 0}, "temperature_for_sampling=0"),
        ({"temperature_for_candidates": -1.0}, "temperature_for_candidates=-1.0"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(OptimizerSettingError, match=message):
        simba(**kwargs)


def test_compile_checks_its_inputs():
    opt, _ = simba(bsize=5)
    with pytest.raises(OptimizerSettingError, match="fewer than bsize=5"):
        opt.compile(echo_program(), trainset=dataset(4))
    opt, _ = simba(metric=None)
    with pytest.raises(OptimizerSettingError, match="needs a metric"):
        opt.compile(echo_program(), trainset=dataset(8))


def test_dsx_build_runs_simba(tmp_path):
    rows = [{"text": ex.text, "answer": ex.answer} for ex in dataset(8)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "echo.dsx").write_text(
        "/// Repeat the text.\n"
        "signature Echo {\n    in  text: str\n    out answer: str\n}\n"
        "program echo = Predict(Echo)\n"
        'data train = jsonl("train.jsonl", inputs = [text])\n'
        "metric em = exact_match\n"
        "optimize echo {\n"
        "    with   SIMBA(bsize = 4, num_candidates = 3, max_steps = 2, max_demos = 0)\n"
        "    train  train\n    metric em\n}\n"
    )

    def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        if "module_advice" in messages[0]["content"]:
            return {"discussion": "-", "module_advice": {"self": ADVICE}}
        return task_reply(messages, **kwargs)

    dsx.configure(lm=FunctionLM(respond, model="scripted"))
    logs: list[str] = []
    result = build(tmp_path / "echo.dsx", log=logs.append)
    learned = result.unit.learned["echo"]
    assert learned.score == 100.0
    assert ADVICE in (learned.predictors["self"].instructions or "")
    assert any(line.startswith("optimize echo: SIMBA step 1/2") for line in logs)


def test_a_program_is_never_run_twice_on_the_same_example():
    """Candidates that a strategy left unchanged, and repeated finalists, reuse the runs of
    the identical program instead of calling the LM again (as its cache would answer)."""
    calls: list[dict[str, Any]] = []
    dsx.configure(lm=task_lm(calls))
    opt, _ = simba(max_demos=0, max_steps=3, prompt_model=advisor(advice=""))
    opt.compile(echo_program(), trainset=dataset(8))
    # no rule changes the student, so every candidate is the student itself
    assert {c.program.signature.instructions for c in opt.candidates} == {"Repeat the text."}
    evaluations = [kw for kw in calls if kw.get("temperature") != 1.0 and "rollout_id" not in kw]
    assert 0 < len(evaluations) <= 8  # at most once per training example
