"""Built-in metrics and how metrics are called."""

from __future__ import annotations

import pytest

import dsx
from dsx.runtime import metrics as m


def ex(**kw):
    return dsx.Example(**kw).with_inputs("question")


def test_exact_match_normalizes_and_accepts_several_answers():
    em = m.exact_match()
    assert em(ex(answer="The Eiffel Tower!"), dsx.Prediction(answer="eiffel  tower")) == 1.0
    assert em(ex(answer=["Paris", "City of Light"]), dsx.Prediction(answer="city of light")) == 1.0
    assert em(ex(answer="Paris"), dsx.Prediction(answer="Lyon")) == 0.0
    assert em(ex(answer="Paris"), dsx.Prediction()) == 0.0
    assert m.exact_match("label")(ex(label="Café"), dsx.Prediction(label="cafe")) == 1.0
    assert (
        m.exact_match(frac=0.5)(ex(answer="new york city"), dsx.Prediction(answer="new york"))
        == 1.0
    )
    assert m.answer_exact_match(ex(answer="Paris"), dsx.Prediction(answer="paris.")) == 1.0


def test_f1_passage_match_and_answer_in_context():
    assert m.f1()(ex(answer="new york city"), dsx.Prediction(answer="new york")) == pytest.approx(
        0.8
    )
    assert m.f1()(ex(answer="x"), dsx.Prediction(answer="y")) == 0.0
    pm = m.passage_match()
    pred = dsx.Prediction(context=["Paris is the capital of France."], answer="?")
    assert pm(ex(answer="paris"), pred) == 1.0 and pm(ex(answer="Rome"), pred) == 0.0
    assert m.answer_passage_match(ex(answer="paris"), pred) == 1.0
    aic = m.answer_in_context()
    assert aic(ex(context=["The sky is blue."]), dsx.Prediction(answer="blue")) == 1.0
    assert aic(ex(context="The sky is blue."), dsx.Prediction(answer="green")) == 0.0
    assert aic(ex(context=["x"]), dsx.Prediction(answer="")) == 0.0
    assert (
        aic(ex(), dsx.Prediction(answer="b", context=["a b c"])) == 1.0
    )  # the prediction's context first


def test_missing_gold_field_is_explained():
    with pytest.raises(dsx.DsxError, match="the example has no `answer`.*field=..."):
        m.exact_match()(ex(label="x"), dsx.Prediction(answer="x"))


def test_call_metric_passes_trace_only_to_metrics_that_take_it():
    calls = []
    m.call_metric(lambda e, p: calls.append("two"), 1, 2, ["t"])
    m.call_metric(lambda e, p, trace: calls.append(trace), 1, 2, ["t"])
    m.call_metric(lambda *args: calls.append(len(args)), 1, 2, ["t"])
    assert calls == ["two", ["t"], 3]
    assert m.score_of(True) == 1.0 and m.score_of(dsx.Prediction(score=0.5)) == 0.5
    with pytest.raises(dsx.DsxError, match="returned str"):
        m.score_of("high")


def test_builtins_registry_matches_the_language():
    from dsx.compiler._env import BUILTIN_METRICS

    assert set(m.BUILTIN_METRICS) == set(BUILTIN_METRICS)
