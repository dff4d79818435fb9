"""LabeledFewShot and BootstrapFewShot with scripted LMs."""

from __future__ import annotations

import asyncio
import random

import pytest
from teleprompt_helpers import demo_questions, field_of, parity_lm, parity_set

import dsx
from dsx.runtime.instantiate import extract_learned
from dsx.runtime.metrics import exact_match
from dsx.runtime.parallel import BatchError
from dsx.teleprompt import BootstrapFewShot, LabeledFewShot, get_optimizer
from dsx.testing import FunctionLM


class TwoStep(dsx.Module):
    """Two predictors: rewrite the question, then answer it."""

    def __init__(self):
        self.rewrite = dsx.Predict("question -> query")
        self.answer = dsx.Predict("query -> answer")

    def forward(self, question):
        query = self.rewrite(question=question).query
        return self.answer(query=query)


def two_step_lm(messages):
    if "<<< query >>>" in messages[0]["content"].split("Your outputs:")[1]:
        return {"query": "Q: " + field_of(messages, "question")}
    q = field_of(messages, "query")
    return {"answer": "yes" if "even" in q else "no"}


def test_labeled_few_shot_is_seeded_and_leaves_the_student_alone():
    student = dsx.Predict("question -> answer")
    train = parity_set(10)
    a = LabeledFewShot(k=3).compile(student, trainset=train)
    b = LabeledFewShot(k=3).compile(student, trainset=train)
    c = LabeledFewShot(k=3, seed=7).compile(student, trainset=train)
    assert demo_questions(a) == demo_questions(b) and len(a.demos) == 3
    assert demo_questions(c) != demo_questions(a)
    assert student.demos == [] and a is not student
    assert [
        d["question"]
        for d in LabeledFewShot(k=2, sample=False).compile(student, trainset=train).demos
    ] == ["even 0", "odd 1"]
    assert LabeledFewShot(k=50).compile(student, trainset=train).demos.__len__() == 10


def test_bootstrap_keeps_passing_traces_in_trainset_order():
    lm = parity_lm(wrong={"even 0", "odd 3"})
    student = dsx.Predict("question -> answer", lm=lm)
    opt = BootstrapFewShot(
        metric=exact_match(), max_bootstrapped_demos=3, max_labeled_demos=5, display_progress=False
    )
    compiled = opt.compile(student, trainset=parity_set(12))
    augmented = [d for d in compiled.demos if d.get("dsx_augmented")]
    assert [d["question"] for d in augmented] == ["odd 1", "even 2", "even 4"]
    assert len(compiled.demos) == 5 and student.demos == []
    assert compiled.lm is lm  # the program's own LM is kept
    runs = [e for e in opt.log if e["event"] == "run"]
    assert [(e["example"], e["passed"]) for e in runs[:4]] == [
        (0, False),
        (1, True),
        (2, True),
        (3, False),
    ]
    result = opt.log[-1]
    assert result["event"] == "result" and result["bootstrapped"] == [1, 2, 4]
    learned = extract_learned(compiled, optimizer="BootstrapFewShot")
    assert [d["question"] for d in learned.predictors["self"].demos[:3]] == [
        "odd 1",
        "even 2",
        "even 4",
    ]
    assert "dsx_augmented" not in learned.predictors["self"].demos[0]


def test_result_does_not_depend_on_completion_order():
    def program_with(seed):
        rng = random.Random(seed)

        async def respond(messages):
            await asyncio.sleep(rng.random() / 200)  # finish in a scrambled order
            q = field_of(messages, "question")
            return {
                "answer": "maybe"
                if q.endswith(("0", "3", "5"))
                else ("yes" if "even" in q else "no")
            }

        return dsx.Predict("question -> answer", lm=FunctionLM(respond))

    results = []
    for threads, seed in [(1, 0), (8, 1), (8, 2), (16, 3)]:
        opt = BootstrapFewShot(
            metric=exact_match(),
            max_bootstrapped_demos=4,
            max_labeled_demos=6,
            num_threads=threads,
            seed=5,
            display_progress=False,
        )
        results.append(demo_questions(opt.compile(program_with(seed), trainset=parity_set(30))))
    assert all(r == results[0] for r in results)
    assert results[0]["self"][:4] == ["odd 1", "even 2", "even 4", "even 6"]


def test_teacher_never_sees_the_example_it_is_asked():
    calls: list = []
    lm = parity_lm(calls=calls)
    train = parity_set(4)
    BootstrapFewShot(
        metric=exact_match(), max_bootstrapped_demos=4, max_labeled_demos=4, display_progress=False
    ).compile(dsx.Predict("question -> answer", lm=lm), trainset=train)
    for question, _, messages in calls:
        shown = [m["content"] for m in messages[1:-1] if m["role"] == "user"]
        assert f"<<< question >>>\n{question}" not in shown
        assert len(shown) == 3  # the other three labeled examples


def test_multi_predictor_programs_get_demos_per_predictor_and_metric_sees_the_trace():
    traces = []

    def metric(example, pred, trace):
        traces.append([type(p).__name__ for p, _, _ in trace])
        return example.answer == pred.answer

    student = TwoStep()
    student.set_lm(FunctionLM(two_step_lm))
    compiled = BootstrapFewShot(
        metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2, display_progress=False
    ).compile(student, trainset=parity_set(5))
    assert traces[0] == ["Predict", "Predict"]
    assert [d.toDict() for d in compiled.rewrite.demos] == [
        {"question": "even 0", "query": "Q: even 0", "dsx_augmented": True},
        {"question": "odd 1", "query": "Q: odd 1", "dsx_augmented": True},
    ]
    assert [d["query"] for d in compiled.answer.demos] == ["Q: even 0", "Q: odd 1"]
    assert compiled.answer.demos[0]["answer"] == "yes"


def test_metric_threshold_and_metric_none():
    lm = parity_lm()
    scores = {"even 0": 0.4, "odd 1": 0.9, "even 2": 0.6}
    compiled = BootstrapFewShot(
        metric=lambda ex, pred, trace=None: scores.get(ex.question, 0.0),
        metric_threshold=0.5,
        max_bootstrapped_demos=2,
        max_labeled_demos=2,
        display_progress=False,
    ).compile(dsx.Predict("question -> answer", lm=lm), trainset=parity_set(6))
    assert [d["question"] for d in compiled.demos] == ["odd 1", "even 2"]
    no_metric = BootstrapFewShot(
        max_bootstrapped_demos=1, max_labeled_demos=1, display_progress=False
    )
    assert (
        no_metric.compile(dsx.Predict("question -> answer", lm=lm), trainset=parity_set(3)).demos[
            0
        ]["question"]
        == "even 0"
    )


def test_later_rounds_sample_anew_with_rollout_id_and_temperature():
    calls: list = []
    attempts: dict[str, int] = {}

    def respond(messages, **kwargs):
        q = field_of(messages, "question")
        attempts[q] = attempts.get(q, 0) + 1
        calls.append((q, kwargs.get("temperature"), kwargs.get("rollout_id")))
        # right only on the second try
        return {"answer": ("yes" if "even" in q else "no") if attempts[q] > 1 else "maybe"}

    opt = BootstrapFewShot(
        metric=exact_match(),
        max_bootstrapped_demos=2,
        max_labeled_demos=0,
        max_rounds=3,
        display_progress=False,
    )
    compiled = opt.compile(
        dsx.Predict("question -> answer", lm=FunctionLM(respond)), trainset=parity_set(2)
    )
    assert calls == [
        ("even 0", None, None),
        ("odd 1", None, None),
        ("even 0", 1.0, 1),
        ("odd 1", 1.0, 1),
    ]
    assert [d["question"] for d in compiled.demos] == ["even 0", "odd 1"]
    assert [e["round"] for e in opt.log if e["event"] == "round"] == [0, 1]


def test_teacher_settings_and_an_explicit_teacher():
    big_calls: list = []
    small = parity_lm(wrong={"even 0"})
    big = parity_lm(calls=big_calls)
    opt = BootstrapFewShot(
        metric=exact_match(),
        max_bootstrapped_demos=1,
        max_labeled_demos=1,
        teacher_settings={"lm": big},
        display_progress=False,
    )
    compiled = opt.compile(dsx.Predict("question -> answer"), trainset=parity_set(3))
    assert compiled.demos[0]["question"] == "even 0" and len(big_calls) == 1
    teacher = dsx.Predict("question -> answer", lm=parity_lm())
    student = dsx.Predict("question -> answer", lm=small)
    compiled = BootstrapFewShot(
        metric=exact_match(), max_bootstrapped_demos=1, max_labeled_demos=1, display_progress=False
    ).compile(student, trainset=parity_set(3), teacher=teacher)
    assert compiled.demos[0]["question"] == "even 0" and compiled.lm is small
    with pytest.raises(dsx.DsxError, match="teacher's predictors"):
        BootstrapFewShot(display_progress=False).compile(
            student, trainset=parity_set(2), teacher=TwoStep()
        )


def test_max_errors_raises_with_the_cause_and_fewer_failures_are_logged():
    lm = parity_lm(fail={"even 0", "odd 1", "even 2"})
    opt = BootstrapFewShot(
        metric=exact_match(), max_errors=2, num_threads=1, display_progress=False
    )
    with pytest.raises(
        BatchError, match=r"2 runs of the teacher failed \(max_errors=2\).*cannot answer even 0"
    ):
        opt.compile(dsx.Predict("question -> answer", lm=lm), trainset=parity_set(6))
    lm = parity_lm(fail={"even 0"})
    opt = BootstrapFewShot(metric=exact_match(), max_bootstrapped_demos=1, display_progress=False)
    compiled = opt.compile(dsx.Predict("question -> answer", lm=lm), trainset=parity_set(3))
    assert compiled.demos[0]["question"] == "odd 1"
    assert opt.log[1] == {
        "event": "run",
        "round": 0,
        "example": 0,
        "error": "ValueError: cannot answer even 0",
    }


def test_budget_stops_with_the_best_so_far():
    lm = parity_lm(wrong={"even 0", "odd 1", "even 2"})
    opt = BootstrapFewShot(
        metric=exact_match(),
        max_bootstrapped_demos=4,
        max_labeled_demos=4,
        max_lm_calls=5,
        num_threads=1,
        display_progress=False,
    )
    compiled = opt.compile(dsx.Predict("question -> answer", lm=lm), trainset=parity_set(20))
    assert opt.stopped == "budget reached: 5 LM calls (max_lm_calls=5)"
    assert opt.lm_calls == 5 and lm.calls == 5
    assert [d["question"] for d in compiled.demos if d.get("dsx_augmented")] == ["odd 3", "even 4"]
    assert len(compiled.demos) == 4  # topped up with labeled examples


def test_progress_lines_go_to_the_reporter():
    lines: list[str] = []
    BootstrapFewShot(
        metric=exact_match(), max_bootstrapped_demos=2, display_progress=lines.append
    ).compile(dsx.Predict("question -> answer", lm=parity_lm()), trainset=parity_set(4))
    assert (
        "Bootstrap round 1: ran 2 of 4 examples, 0 failed, 2/2 demos "
        "(stopped: enough demos, 2 not run)"
    ) in lines
    assert lines[-1] == "BootstrapFewShot: done · 2 LM calls"


def test_progress_lines_count_every_run_and_say_why_a_round_stopped_early():
    # 12 examples, the first 7 fail the metric: the round stops at the 11th with 4/4 demos.
    # The reporter got 6/12 then 8/12 (a line per tenth), and "11 runs" with no reason.
    lines: list[str] = []
    BootstrapFewShot(
        metric=exact_match(),
        max_bootstrapped_demos=4,
        max_labeled_demos=4,
        num_threads=1,
        display_progress=lines.append,
    ).compile(
        dsx.Predict(
            "question -> answer",
            lm=parity_lm(wrong={"even 0", "odd 1", "even 2", "odd 3", "even 4", "odd 5", "even 6"}),
        ),
        trainset=parity_set(12),
    )
    counts = [line.split(" · ")[0] for line in lines if line.startswith("Bootstrap round 1: ")]
    assert counts[:-1] == [f"Bootstrap round 1: {n}/12" for n in range(1, 12)]
    assert counts[-1] == (
        "Bootstrap round 1: ran 11 of 12 examples, 0 failed, 4/4 demos "
        "(stopped: enough demos, 1 not run)"
    )


def test_a_round_that_runs_every_example_says_so():
    lines: list[str] = []
    BootstrapFewShot(
        metric=exact_match(), max_bootstrapped_demos=4, display_progress=lines.append
    ).compile(
        dsx.Predict("question -> answer", lm=parity_lm(wrong={"even 0", "odd 1"})),
        trainset=parity_set(3),
    )
    assert "Bootstrap round 1: ran 3 of 3 examples, 0 failed, 1/4 demos" in lines


def test_get_optimizer_knows_the_optimizers():
    assert get_optimizer("BootstrapFewShot") is BootstrapFewShot
    assert get_optimizer("Teleprompter") is None and get_optimizer("BetterTogether") is None


class PricedLM(dsx.BaseLM):
    """Answers like parity_lm and charges one cent per call."""

    def __init__(self):
        super().__init__("priced")
        self.inner = parity_lm(wrong={"even 0", "odd 1"})

    def forward(self, messages, **kwargs):
        response = self.inner.forward(messages, **kwargs)
        response.cost = 0.01
        return response


def test_max_cost_stops_with_the_best_so_far():
    lm = PricedLM()
    opt = BootstrapFewShot(
        metric=exact_match(),
        max_bootstrapped_demos=4,
        max_labeled_demos=0,
        max_cost=0.03,
        num_threads=1,
        display_progress=False,
    )
    compiled = opt.compile(dsx.Predict("question -> answer", lm=lm), trainset=parity_set(10))
    assert opt.stopped == "budget reached: $0.0300 spent (max_cost=0.03)"
    assert lm.calls == 3 and opt.cost == pytest.approx(0.03)
    assert [d["question"] for d in compiled.demos] == ["even 2"]
