"""MIPROv2 and COPRO on a prompt-sensitive scripted task: only some proposed instructions
make the task LM answer correctly, and the optimizers must find one, within their budget,
reproducibly."""

from __future__ import annotations

import asyncio
import sys

import pytest
from tests.teleprompt.instruction_task import (
    SUMMARY,
    dataset,
    echo_program,
    exact,
    prompt_lm,
    task_answer,
    task_lm,
)

import dsx
from dsx.teleprompt import COPRO, MIPROv2, OptimizerSettingError
from dsx.testing import FunctionLM


def mipro(**kwargs):
    prompt, script = prompt_lm()
    lines: list[str] = []
    options = {
        "metric": exact,
        "prompt_model": prompt,
        "auto": None,
        "num_candidates": 5,
        "num_trials": 8,
        "minibatch": False,
        "seed": 1,
        "display_progress": lines.append,
        **kwargs,
    }
    return MIPROv2(**options), script, lines


def trial_table(opt):
    return [(t.kind, t.instructions, t.demos, t.score, t.examples) for t in opt.trials]


# -- MIPROv2 ------------------------------------------------------------------------------------


def test_mipro_finds_an_instruction_that_works():
    dsx.configure(lm=task_lm())
    opt, _script, lines = mipro()
    best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(8, start=4))
    assert "uppercase" in best.signature.instructions.lower()
    assert opt.best_score == 100.0
    # candidate 0 is the original instruction, then the proposals in order
    assert opt.instruction_candidates["self"] == [
        "Repeat the text.",
        "Echo the text back exactly.",
        "Write the text in UPPERCASE letters.",
        "Answer carefully and concisely.",
        "Repeat the input word.",
    ]
    baseline = opt.trials[0]
    assert (baseline.kind, baseline.instructions, baseline.score) == ("baseline", {"self": 0}, 0.0)
    assert len(opt.trials) == 1 + 8
    for t in opt.trials:  # a trial scores 100 exactly when it chose the working instruction
        assert t.score == (100.0 if t.instructions["self"] == 2 else 0.0)
    assert any(t.instructions["self"] == 2 for t in opt.trials)
    # the log has every trial, and the progress lines show the best so far
    assert next(e for e in opt.log if e["event"] == "trial")["score"] == 0.0
    assert any("· best 100.00%" in line for line in lines)
    assert lines[-1].startswith("MIPROv2: done · ")
    # the original student is untouched
    assert echo_program().signature.instructions == "Repeat the text."


def test_mipro_same_seed_same_result_other_seed_other_search():
    def run(seed):
        dsx.configure(lm=task_lm())
        opt, _, _ = mipro(seed=seed)
        best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(8, start=4))
        return (
            trial_table(opt),
            best.signature.instructions,
            [d["self"] for d in opt.demo_candidates],
        )

    first, again = run(1), run(1)
    assert first == again
    assert run(2)[0] != first[0]


def test_mipro_scores_several_trials_at_once_and_stays_reproducible():
    """With threads to spare, a batch of trials shares the engine: more calls are in
    flight than one trial has examples, and the seed alone decides the search (the same
    with one thread)."""

    def run(threads):
        state = {"now": 0, "peak": 0}

        async def respond(messages):
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.005)
            state["now"] -= 1
            return task_answer(messages)

        dsx.configure(lm=FunctionLM(respond, model="scripted-task-model"))
        opt, _, _ = mipro(num_threads=threads)
        best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(4, start=4))
        return state["peak"], trial_table(opt), best.signature.instructions

    peak, table, instruction = run(16)
    assert peak > 4  # several 4-example trials in flight together
    assert "uppercase" in instruction.lower()
    assert run(16)[1:] == (table, instruction)
    one_peak, one_table, one_instruction = run(1)
    assert one_peak == 1
    assert (one_table, one_instruction) == (table, instruction)


def test_mipro_minibatches_with_periodic_full_evaluations():
    dsx.configure(lm=task_lm())
    opt, _, _ = mipro(minibatch=True, minibatch_size=3, minibatch_full_eval_steps=2, num_trials=6)
    opt.compile(echo_program(), trainset=dataset(4), valset=dataset(10, start=4))
    kinds = [t.kind for t in opt.trials]
    assert kinds[0] == "baseline"
    minibatches = [t for t in opt.trials if t.kind == "minibatch"]
    assert len(minibatches) == 6 and all(t.examples == 3 for t in minibatches)
    fulls = [t for t in opt.trials if t.kind == "full"]
    assert fulls and all(t.examples == 10 for t in fulls)
    # every second minibatch trial picks a combination seen on a minibatch for a full
    # evaluation (at most 6 / 2), each scored once, after the minibatch that chose it
    assert len(fulls) <= 3
    full_choices = [(t.instructions, t.demos) for t in fulls]
    assert len(set(map(repr, full_choices))) == len(full_choices)
    for i, t in enumerate(opt.trials):
        if t.kind == "full":
            earlier = [(m.instructions, m.demos) for m in opt.trials[:i] if m.kind == "minibatch"]
            assert (t.instructions, t.demos) in earlier
    # the result is the best *full* score, never a minibatch score
    assert opt.best_score == max(t.score for t in opt.trials if t.kind != "minibatch")


def test_mipro_auto_light_splits_the_trainset_and_sizes_the_search():
    dsx.configure(lm=task_lm())
    prompt, script = prompt_lm()
    opt = MIPROv2(metric=exact, prompt_model=prompt, auto="light", display_progress=False)
    opt.compile(echo_program(), trainset=dataset(10))
    # light: 6 demo sets, 3 instruction candidates; 2 variables -> int(max(4*log2(6), 9)) trials
    assert len(opt.demo_candidates) == 6
    assert len(opt.instruction_candidates["self"]) == 3
    assert len(opt.trials) == 1 + 10
    assert all(t.examples == 8 for t in opt.trials)  # 80% of the trainset is the valset
    # the proposer was grounded: summary, structure, demos, tip and history
    proposals = [m for m, _ in script.requests if "proposed_instruction" in m[0]["content"]]
    assert len(proposals) == 2
    first, second = (m[-1]["content"] for m in proposals)
    assert SUMMARY in first and "text -> answer" in first and "Repeat the text." in first
    assert "(none yet)" in first and "- Echo the text back exactly." in second
    tips = [e["tip"] for e in opt.log if e["event"] == "proposal"]
    assert len(tips) == 2


def test_mipro_zero_shot_searches_instructions_only():
    dsx.configure(lm=task_lm())
    opt, _, _ = mipro(max_bootstrapped_demos=0, max_labeled_demos=0)
    best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(6, start=4))
    assert all(t.demos is None for t in opt.trials)
    assert best.demos == [] and "uppercase" in best.signature.instructions.lower()


def test_mipro_with_demos_bootstraps_demo_sets():
    # With the working instruction the teacher passes, so demo sets get bootstrapped demos.
    dsx.configure(lm=task_lm())
    student = dsx.Predict(dsx.Signature("text -> answer", "Answer in uppercase."))
    opt, _, _ = mipro(max_bootstrapped_demos=2, max_labeled_demos=3)
    best = opt.compile(student, trainset=dataset(6), valset=dataset(4, start=6))
    sizes = [len(s["self"]) for s in opt.demo_candidates]
    assert sizes[0] == 0 and sizes[1] == 3  # zero-shot, then labeled only
    assert any(d.get("dsx_augmented") for s in opt.demo_candidates for d in s["self"])
    # the result is the first fully scored combination with the best score
    winner = next(t for t in opt.trials if t.kind != "minibatch" and t.score == opt.best_score)
    assert best.demos == opt.demo_candidates[winner.demos["self"]]["self"]
    assert (
        best.signature.instructions
        == (opt.instruction_candidates["self"][winner.instructions["self"]])
    )


def test_mipro_budget_stops_cleanly_with_the_best_so_far():
    dsx.configure(lm=task_lm())
    opt, _, lines = mipro(max_lm_calls=30)
    best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(8, start=4))
    assert opt.stopped is not None and "budget reached" in opt.stopped
    assert 30 <= opt.lm_calls < 30 + 8  # runs in flight finish, nothing new starts
    assert all(t.score is None or t.examples == 8 for t in opt.trials)
    scored = [t.score for t in opt.trials if t.score is not None and t.kind != "minibatch"]
    assert opt.best_score == (max(scored) if scored else None)
    assert isinstance(best, dsx.Predict)
    assert "stopped early" in lines[-1]


def test_mipro_does_not_import_optuna_until_compile():
    import subprocess

    code = "import dsx, sys; dsx.MIPROv2; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auto": "lite"}, "auto='lite'"),
        ({"auto": "light", "num_candidates": 4}, "sets num_candidates and num_trials itself"),
        ({"auto": None, "num_candidates": 4, "num_trials": None}, "about"),
        ({"auto": None, "num_candidates": None, "num_trials": 3}, "needs num_candidates"),
        ({"minibatch_size": 0}, "minibatch_size=0"),
        ({"max_bootstrapped_demos": -1}, "max_bootstrapped_demos=-1"),
        ({"minibatch": True, "minibatch_size": 50}, "larger than the valset"),
        ({"metric": None}, "needs a metric"),
    ],
)
def test_mipro_bad_settings_are_clear_errors(kwargs, message):
    dsx.configure(lm=task_lm())
    with pytest.raises(OptimizerSettingError, match=message.replace("(", r"\(")):
        opt, _, _ = mipro(**kwargs)
        opt.compile(echo_program(), trainset=dataset(4), valset=dataset(4, start=4))


def test_mipro_without_valset_needs_two_examples():
    dsx.configure(lm=task_lm())
    opt, _, _ = mipro()
    with pytest.raises(OptimizerSettingError, match="at least 2 examples"):
        opt.compile(echo_program(), trainset=dataset(1))


def test_mipro_task_model_runs_the_program():
    dsx.configure(lm=task_lm())
    calls: list[str] = []
    opt, _, _ = mipro(task_model=task_lm(calls), num_trials=2)
    opt.compile(echo_program(), trainset=dataset(4), valset=dataset(4, start=4))
    assert calls and opt.lm_calls >= len(calls)


def test_model_strings_become_lms():
    opt = MIPROv2(prompt_model="openai/gpt-4o-mini", task_model="openai/gpt-4o")
    assert isinstance(opt.prompt_model, dsx.LM) and opt.prompt_model.model == "openai/gpt-4o-mini"
    assert opt.settings()["task_model"] == "openai/gpt-4o"
    with pytest.raises(TypeError, match="prompt_model takes a dsx LM or a model string"):
        COPRO(prompt_model=3)  # type: ignore[arg-type]


# -- COPRO --------------------------------------------------------------------------------------


def copro(**kwargs):
    prompt, script = prompt_lm()
    lines: list[str] = []
    options = {
        "metric": exact,
        "prompt_model": prompt,
        "breadth": 3,
        "depth": 2,
        "display_progress": lines.append,
        **kwargs,
    }
    return COPRO(**options), script, lines


def test_copro_finds_an_instruction_that_works():
    dsx.configure(lm=task_lm())
    opt, script, lines = copro(track_stats=True)
    best = opt.compile(echo_program(), trainset=dataset(6))
    assert best.signature.instructions == "Write the text in UPPERCASE letters."
    assert opt.best_score == 100.0
    # depth 1: 2 proposals (one call with n=2) + the original; depth 2: 3 more from the attempts
    first = [(a.instruction, a.depth, a.score) for a in opt.candidates if a.depth == 0]
    assert first == [
        ("Echo the text back exactly.", 0, 0.0),
        ("Write the text in UPPERCASE letters.", 0, 100.0),
        ("Repeat the text.", 0, 0.0),
    ]
    assert [kw.get("n") for _, kw in script.requests] == [2, 3]
    history = script.requests[1][0][-1]["content"]
    # the attempts are shown lowest score first, the best last
    assert history.index("Score #1: 0.00") < history.index(
        "Instruction #3: Write the text in UPPERCASE letters."
    )
    assert opt.results_best["self"]["max"] == [100.0, 100.0]
    assert best.results_best is opt.results_best  # DSPy puts the stats on the program
    assert any("best so far 100.00%" in line for line in lines)


def test_copro_same_seed_same_result():
    def run(seed):
        dsx.configure(lm=task_lm())
        opt, script, _ = copro(seed=seed)
        best = opt.compile(echo_program(), trainset=dataset(6))
        rollouts = [kw["rollout_id"] for _, kw in script.requests]
        return (
            [(a.instruction, a.depth, a.score) for a in opt.candidates],
            best.signature.instructions,
            rollouts,
        )

    assert run(3) == run(3)
    assert run(3)[2] != run(4)[2]


def test_copro_does_not_rescore_a_program_it_has_scored():
    calls: list[str] = []
    dsx.configure(lm=task_lm(calls))
    opt, _, _ = copro(depth=3)
    opt.compile(echo_program(), trainset=dataset(4))
    scored = {a.instruction for a in opt.candidates}
    # each distinct instruction ran once over the 4 examples
    assert len(calls) == 4 * len(scored)


def test_copro_optimizes_each_predictor_of_a_pipeline():
    class TwoSteps(dsx.Module):
        def __init__(self):
            self.first = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))
            self.second = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))

        def forward(self, text):
            self.first(text=text)  # only the second step's answer counts
            return self.second(text=text)

    dsx.configure(lm=task_lm())
    opt, _, _ = copro(breadth=3, depth=2)
    best = opt.compile(TwoSteps(), trainset=dataset(4))
    assert opt.best_score == 100.0
    assert {a.predictor for a in opt.candidates} == {"first", "second"}
    assert "uppercase" in best.second.signature.instructions.lower()
    # with several predictors every candidate is re-scored in the new context each round
    second = [a.instruction for a in opt.candidates if a.predictor == "second" and a.depth == 1]
    assert len(second) == len(set(second)) >= 3


def test_copro_proposes_for_every_predictor_at_once_while_scoring_the_program():
    class TwoSteps(dsx.Module):
        def __init__(self):
            self.first = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))
            self.second = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))

        def forward(self, text):
            self.first(text=text)
            return self.second(text=text)

    _, script = prompt_lm()
    state = {"prompt": 0, "peak": 0, "task_during_prompt": 0}

    async def propose(messages, **kwargs):
        state["prompt"] += 1
        state["peak"] = max(state["peak"], state["prompt"])
        await asyncio.sleep(0.05)
        state["prompt"] -= 1
        return script(messages, **kwargs)

    def answer(messages):
        state["task_during_prompt"] += state["prompt"] > 0
        return task_answer(messages)

    dsx.configure(lm=FunctionLM(answer, model="scripted-task-model"))
    opt = COPRO(
        metric=exact,
        prompt_model=FunctionLM(propose, model="scripted-prompt-model"),
        breadth=3,
        depth=2,
        display_progress=False,
    )
    opt.compile(TwoSteps(), trainset=dataset(4))
    assert state["peak"] == 2  # both predictors' proposals in flight together
    assert state["task_during_prompt"] >= 4  # the program as given was scored meanwhile
    assert [e["predictor"] for e in opt.log if e["event"] == "proposal"][:2] == [
        "first",
        "second",
    ]


def test_copro_budget_stops_cleanly_with_the_best_so_far():
    dsx.configure(lm=task_lm())
    opt, _, lines = copro(max_lm_calls=10, num_threads=1)
    best = opt.compile(echo_program(), trainset=dataset(6))
    assert opt.stopped is not None and "budget reached" in opt.stopped
    assert 10 <= opt.lm_calls <= 11
    assert isinstance(best, dsx.Predict)
    assert all(a.score is not None for a in opt.candidates)
    assert "stopped early" in lines[-1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"breadth": 1}, "breadth must be an int > 1"), ({"depth": 0}, "depth must be an int >= 1")],
)
def test_copro_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(OptimizerSettingError, match=message):
        COPRO(**kwargs)
    with pytest.raises(OptimizerSettingError, match="needs a metric"):
        COPRO().compile(echo_program(), trainset=dataset(2))
