"""GEPA on the prompt-sensitive scripted task: the reflection LM writes a working instruction
only when the metric's textual feedback tells it what is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.teleprompt.instruction_task import (
    BAD_REFLECTION,
    GOOD_REFLECTION,
    dataset,
    echo_program,
    exact,
    reflection_lm,
    task_lm,
)

import dsx
from dsx.teleprompt import GEPA, OptimizerSettingError

HINT = "the answer must be the text in uppercase letters"


def feedback_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = gold.answer == pred.answer
    text = "Correct." if ok else f"Wrong: expected {gold.answer!r}; {HINT}."
    return dsx.Prediction(score=float(ok), feedback=text)


def gepa(prompts=None, **kwargs):
    lines: list[str] = []
    options = {
        "metric": feedback_metric,
        "max_metric_calls": 30,
        "reflection_lm": reflection_lm(prompts),
        "use_merge": False,
        "display_progress": lines.append,
        **kwargs,
    }
    return GEPA(**options), lines


def run(opt, train=6, val=4):
    dsx.configure(lm=task_lm())
    return opt.compile(echo_program(), trainset=dataset(train), valset=dataset(val, start=train))


def test_gepa_finds_a_working_instruction_from_textual_feedback():
    prompts: list[str] = []
    opt, lines = gepa(prompts)
    best = run(opt)
    assert best.signature.instructions == GOOD_REFLECTION
    assert opt.best_score == 100.0
    # the reflection LM saw the student's instruction, the runs and the metric's feedback
    first = prompts[0]
    assert "Repeat the text." in first and "no idea" in first and HINT in first
    results = opt.detailed_results
    assert results is not None
    assert results.instructions[0] == {"self": "Repeat the text."}
    assert results.val_aggregate_scores[0] == 0.0 and max(results.val_aggregate_scores) == 1.0
    assert results.parents[0] == [None] and results.parents[results.best_idx] == [0]
    # the Pareto frontier: the winner is best on every valset example
    assert all(
        results.best_idx in front for front in results.per_val_instance_best_candidates.values()
    )
    assert results.highest_score_achieved_per_val_task == dict.fromkeys(range(4), 1.0)
    # a candidate perfect on the valset ends the run: nothing could replace it
    assert results.total_metric_calls is not None and results.total_metric_calls < 30
    assert any("perfect on the valset; stopping" in line for line in lines)
    assert any("best 100.00%" in line for line in lines) and lines[-1].startswith("GEPA: done")
    assert echo_program().signature.instructions == "Repeat the text."  # untouched
    assert not hasattr(best, "detailed_results")  # only with track_stats


def test_without_skip_perfect_score_the_whole_budget_is_spent_for_the_same_result():
    stopping, _ = gepa([])
    spending, lines = gepa([], skip_perfect_score=False)
    best_stopping, best_spending = run(stopping), run(spending)
    assert best_spending.signature.instructions == best_stopping.signature.instructions
    assert spending.best_score == stopping.best_score == 100.0
    calls = spending.detailed_results.total_metric_calls
    assert calls >= 30 > stopping.detailed_results.total_metric_calls
    assert not any("perfect on the valset" in line for line in lines)


def test_without_feedback_the_reflection_has_nothing_to_go_on():
    opt, _ = gepa(metric=exact)  # a plain score: the feedback is only "got a score of 0.0"
    best = run(opt)
    assert opt.best_score == 0.0
    assert best.signature.instructions == "Repeat the text."
    proposals = [e["instruction"] for e in opt.log if e["event"] == "proposal"]
    assert proposals and set(proposals) == {BAD_REFLECTION}


@pytest.mark.parametrize(
    "metric",
    [
        lambda gold, pred, trace=None: (float(gold.answer == pred.answer), HINT),
        lambda gold, pred: {"score": gold.answer == pred.answer, "feedback": HINT},
    ],
    ids=["tuple", "dict"],
)
def test_feedback_can_be_a_pair_or_a_dict(metric):
    opt, _ = gepa(metric=metric)
    assert run(opt).signature.instructions == GOOD_REFLECTION


def test_a_five_argument_metric_gives_feedback_per_predictor():
    class TwoSteps(dsx.Module):
        def __init__(self):
            self.draft = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))
            self.final = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))

        def forward(self, text):
            self.draft(text=text)
            return self.final(text=text)

    asked: list[tuple[str | None, int]] = []

    def metric(gold, pred, trace, pred_name, pred_trace):
        asked.append((pred_name, len(pred_trace or [])))
        ok = gold.answer == pred.answer
        # only the final step's feedback says what to do
        hint = HINT if pred_name == "final" else "this step's output is not shown to the user"
        return dsx.Prediction(score=float(ok), feedback=None if ok else hint)

    dsx.configure(lm=task_lm())
    opt, _ = gepa(metric=metric, max_metric_calls=60)
    best = opt.compile(TwoSteps(), trainset=dataset(6), valset=dataset(4, start=6))
    assert opt.best_score == 100.0
    assert best.final.signature.instructions == GOOD_REFLECTION
    assert best.draft.signature.instructions in ("Repeat the text.", BAD_REFLECTION)
    # scoring calls have no pred_name; reflections ask per predictor with its own calls
    assert (None, 0) in asked and ("final", 1) in asked and ("draft", 1) in asked


def test_same_seed_same_run_other_seed_other_minibatches():
    def once(seed):
        prompts: list[str] = []
        opt, _ = gepa(prompts, seed=seed, metric=exact, max_metric_calls=40)
        best = run(opt, train=8)
        events = [
            (e["event"], e.get("score"), e.get("instructions"))
            for e in opt.log
            if e["event"] in ("candidate", "rejected", "proposal")
        ]
        return events, best.signature.instructions, prompts, opt.lm_calls

    first = once(1)
    assert first == once(1)
    assert first[2] != once(2)[2]  # the seed draws the reflection minibatches


def test_budget_stops_cleanly_with_the_best_so_far():
    opt, lines = gepa(max_lm_calls=12, num_threads=1, max_metric_calls=100)
    best = run(opt)
    assert opt.stopped is not None and "budget reached" in opt.stopped
    assert opt.lm_calls == 12  # one thread: the stop is exact
    assert isinstance(best, dsx.Predict)
    # 4 valset runs for the student, 3 for the parent's minibatch, 1 reflection, 3 for the
    # child, then the budget stops the child's valset evaluation: the student is the best
    assert opt.best_score == 0.0 and best.signature.instructions == "Repeat the text."
    assert "stopped early" in lines[-1]


def test_budget_stop_while_scoring_the_student_returns_it():
    opt, _ = gepa(max_lm_calls=2, num_threads=1)
    best = run(opt)
    assert opt.best_score is None and opt.detailed_results is None
    assert best.signature.instructions == "Repeat the text."
    assert "budget reached" in (opt.stopped or "")


def test_the_metric_call_budget_bounds_the_run():
    opt, _ = gepa(max_metric_calls=10, metric=exact)
    run(opt)
    results = opt.detailed_results
    assert results is not None
    # the student's 4 valset runs, then whole iterations (3 + 3 runs) while under the budget
    assert results.total_metric_calls == 10


def test_auto_and_max_full_evals_size_the_budget():
    opt, _ = gepa(max_metric_calls=None, max_full_evals=2)
    run(opt)
    assert opt.metric_calls_budget == 2 * (6 + 4)
    light = GEPA(metric=exact, auto="light")
    # one predictor, 6 candidates: int(4 * log2(6)) = 10 trials of 35, 3 full evaluations
    assert light.auto_budget(1, 6, 10) == 10 + 6 * 5 + 10 * 35 + 3 * 10
    assert light.auto_budget(2, 12, 10) == 10 + 12 * 5 + 28 * 35 + 6 * 10


def test_merge_and_current_best_run():
    opt, _ = gepa(use_merge=True, candidate_selection_strategy="current_best", track_stats=True)
    best = run(opt)
    assert opt.best_score == 100.0
    assert best.detailed_results is opt.detailed_results


def test_gepa_is_not_imported_until_compile():
    code = "import dsx, sys; dsx.GEPA; print('gepa' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_metric_calls": None}, "exactly one budget"),
        ({"auto": "light"}, "got auto, max_metric_calls"),
        ({"max_metric_calls": None, "auto": "lite"}, "auto='lite'"),
        ({"max_metric_calls": 0}, "max_metric_calls=0"),
        ({"reflection_minibatch_size": 0}, "reflection_minibatch_size=0"),
        ({"candidate_selection_strategy": "best"}, "'pareto' or 'current_best'"),
        ({"track_best_outputs": True}, "needs track_stats=True"),
        ({"run_dir": "a", "log_dir": "b"}, "not both"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(OptimizerSettingError, match=message):
        gepa(**kwargs)


def test_compile_checks_its_inputs():
    opt, _ = gepa(metric=None)
    with pytest.raises(OptimizerSettingError, match="needs a metric"):
        run(opt)
    opt, _ = gepa()
    with pytest.raises(OptimizerSettingError, match="does not take a teacher"):
        opt.compile(echo_program(), trainset=dataset(2), teacher=echo_program())
    with pytest.raises(OptimizerSettingError, match="trainset is empty"):
        opt.compile(echo_program(), trainset=[])
