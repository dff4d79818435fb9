"""BootstrapFewShotWithRandomSearch, KNNFewShot, Ensemble."""

from __future__ import annotations

import asyncio

import pytest
from teleprompt_helpers import demo_questions, field_of, parity_lm, parity_set

import dsx
from dsx.runtime.embedder import Embedder
from dsx.runtime.metrics import exact_match
from dsx.teleprompt import (
    BootstrapFewShotWithRandomSearch,
    Ensemble,
    KNNFewShot,
    majority,
)
from dsx.testing import FunctionLM


def demo_sensitive_lm():
    """Right only when it has seen at least two demos whose question parity matches."""

    def respond(messages):
        q = field_of(messages, "question")
        kind = q.split()[0]
        seen = sum(
            1 for m in messages[1:-1] if m["role"] == "user" and f"\n{kind} " in m["content"]
        )
        answer = ("yes" if kind == "even" else "no") if seen >= 2 else "maybe"
        return {"answer": answer}

    return FunctionLM(respond)


def search(**kw):
    defaults = dict(
        metric=exact_match(),
        max_bootstrapped_demos=2,
        max_labeled_demos=4,
        num_candidate_programs=3,
        display_progress=False,
    )
    return BootstrapFewShotWithRandomSearch(**{**defaults, **kw})


def test_random_search_scores_every_candidate_and_returns_the_best():
    lm = demo_sensitive_lm()
    student = dsx.Predict("question -> answer", lm=lm)
    opt = search()
    best = opt.compile(student, trainset=parity_set(10), valset=parity_set(6, start=20))
    kinds = [c.kind for c in opt.candidates]
    assert kinds == [
        "zero-shot",
        "labeled",
        "bootstrap",
        "bootstrap-shuffled",
        "bootstrap-shuffled",
        "bootstrap-shuffled",
    ]
    assert opt.candidates[0].score == 0.0  # no demos: always "maybe"
    scores = [c.score for c in opt.candidates]
    assert opt.best_score == max(scores)
    winner = next(c for c in opt.candidates if c.score == opt.best_score)
    assert demo_questions(best) == demo_questions(winner.program) and student.demos == []
    assert [e["event"] for e in opt.log].count("candidate") == 6 and opt.log[-1][
        "event"
    ] == "result"


def test_random_search_is_reproducible_and_seeded():
    def run(seed):
        opt = search(seed=seed)
        opt.compile(
            dsx.Predict("question -> answer", lm=demo_sensitive_lm()),
            trainset=parity_set(10),
            valset=parity_set(4, start=20),
        )
        return [(c.kind, c.score, demo_questions(c.program)) for c in opt.candidates]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_random_search_stop_at_score_and_budget():
    opt = search(stop_at_score=50.0)
    opt.compile(
        dsx.Predict("question -> answer", lm=demo_sensitive_lm()),
        trainset=parity_set(10),
        valset=parity_set(4, start=20),
    )
    assert opt.candidates[-1].score >= 50.0 and len(opt.candidates) < 6
    assert any(e["event"] == "stop" for e in opt.log)
    lm = demo_sensitive_lm()
    opt = search(max_lm_calls=10, num_threads=1)
    best = opt.compile(
        dsx.Predict("question -> answer", lm=lm),
        trainset=parity_set(10),
        valset=parity_set(4, start=20),
    )
    assert opt.stopped is not None and opt.stopped.startswith("budget reached")
    assert lm.calls <= 10 + 1
    scored = [c for c in opt.candidates if c.score is not None]
    assert scored and opt.best_score == max(c.score for c in scored)
    assert isinstance(best, dsx.Predict)


def test_random_search_needs_a_metric():
    with pytest.raises(dsx.DsxError, match="needs a metric"):
        BootstrapFewShotWithRandomSearch().compile(dsx.Predict("q -> a"), trainset=parity_set(2))


def bag_of_words(texts):
    vocab = ["even", "odd", "apple", "pear"]
    return [[t.split().count(w) for w in vocab] for t in texts]


def test_knn_picks_the_nearest_examples_per_input():
    calls = []
    lm = parity_lm(calls=calls)
    train = [
        dsx.Example(question=q, answer=a).with_inputs("question")
        for q, a in [
            ("even apple", "yes"),
            ("odd pear", "no"),
            ("even pear", "yes"),
            ("odd apple", "no"),
        ]
    ]
    student = dsx.Predict("question -> answer", lm=lm)
    compiled = KNNFewShot(k=2, vectorizer=Embedder(bag_of_words), display_progress=False).compile(
        student, trainset=train
    )
    assert compiled(question="odd odd apple").answer == "no"
    shown = [m["content"] for m in calls[-1][2][1:-1] if m["role"] == "user"]
    assert shown == ["<<< question >>>\nodd apple", "<<< question >>>\nodd pear"]
    assert compiled.demos == [] and student.demos == []  # demos live per call only
    assert asyncio.run(compiled.acall(question="even pear tree")).answer == "yes"
    shown = [m["content"] for m in calls[-1][2][1:-1] if m["role"] == "user"]
    assert shown == ["<<< question >>>\neven pear", "<<< question >>>\neven apple"]
    results = compiled.batch([{"question": "odd pear"}, {"question": "even apple"}], num_threads=2)
    assert [r.answer for r in results] == ["no", "yes"]
    assert KNNFewShot.exports_to_ir is True  # dsx build bakes the index in (issue 19)


def test_knn_bootstrap_uses_traces_and_trainset_in_the_constructor():
    lm = parity_lm(wrong={"odd pear"})
    train = [
        dsx.Example(question=q, answer=a).with_inputs("question")
        for q, a in [("even apple", "yes"), ("odd pear", "no")]
    ]
    opt = KNNFewShot(2, train, bag_of_words, metric=exact_match(), display_progress=False)
    assert opt.bootstrap
    compiled = opt.compile(dsx.Predict("question -> answer", lm=lm))
    state = compiled._dsx_knn
    assert state.demos[0]["self"][0].get("dsx_augmented") is True
    assert state.demos[1]["self"][0].get("dsx_augmented") is None  # failed: the labeled example
    with pytest.raises(dsx.DsxError, match="needs a vectorizer"):
        KNNFewShot(k=1).compile(dsx.Predict("q -> a"), trainset=train)


def test_majority_and_ensemble():
    preds = [dsx.Prediction(answer=a) for a in ["Paris", "paris.", "Lyon", "Rome"]]
    assert majority(preds).answer == "Paris"
    assert majority([dsx.Prediction(answer="a"), dsx.Prediction(answer="b")]).answer == "a"
    programs = [
        dsx.Predict("question -> answer", lm=FunctionLM(lambda m, a=a: {"answer": a}))
        for a in ["x", "y", "x"]
    ]
    ens = Ensemble(reduce_fn=majority).compile(programs)
    assert ens(question="q").answer == "x"
    assert asyncio.run(ens.acall(question="q")).answer == "x"
    sampled = Ensemble(size=2, seed=3).compile(programs)
    first = [p.answer for p in sampled(question="q1")]
    assert len(first) == 2 and [p.answer for p in sampled(question="q1")] == first
    with pytest.raises(dsx.DsxError, match="combines several programs"):
        Ensemble().compile(programs[0])
