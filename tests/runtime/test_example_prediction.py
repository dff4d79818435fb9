from __future__ import annotations

import pytest

import dsx
from dsx import Example, Prediction


def test_example_is_dict_like_and_attribute_like():
    ex = Example(question="q?", answer="a")
    assert ex.question == "q?" and ex["answer"] == "a"
    assert len(ex) == 2 and set(ex) == {"question", "answer"}
    assert "question" in ex and ex.get("missing", 3) == 3
    ex.extra = 1
    assert ex["extra"] == 1
    del ex["extra"]
    assert "extra" not in ex
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = ex.nope


def test_with_inputs_inputs_labels():
    ex = Example(question="q?", context="c", answer="a").with_inputs("question", "context")
    assert ex.inputs().to_dict() == {"question": "q?", "context": "c"}
    assert ex.labels().to_dict() == {"answer": "a"}
    with pytest.raises(ValueError, match="with_inputs"):
        Example(a=1).inputs()


def test_copy_without_and_equality():
    ex = Example(a=1, b=2).with_inputs("a")
    copy = ex.copy(b=3)
    assert copy.b == 3 and ex.b == 2
    assert copy.input_keys == frozenset({"a"})
    assert ex.without("b").to_dict() == {"a": 1}
    assert Example(a=1) == Example(a=1) and Example(a=1) == {"a": 1}
    assert hash(Example(a=[1, 2])) == hash(Example(a=[1, 2]))
    assert Example(Example(a=1), b=2).to_dict() == {"a": 1, "b": 2}


def test_prediction_attributes_and_completions():
    pred = Prediction.from_completions([{"answer": "x"}, {"answer": "y"}])
    assert pred.answer == "x"
    assert len(pred.completions) == 2
    assert pred.completions.answer == ["x", "y"]
    assert pred.completions[1].answer == "y"
    single = Prediction(answer="z")
    assert single.completions.answer == ["z"]


def test_prediction_usage_and_float():
    pred = Prediction(score=0.5)
    assert float(pred) == 0.5
    pred.set_lm_usage({"m": {"total_tokens": 3}})
    assert pred.get_lm_usage() == {"m": {"total_tokens": 3}}
    with pytest.raises(TypeError):
        float(Prediction(answer="a"))


def test_example_round_trips_through_dsx_namespace():
    assert dsx.Example is Example and dsx.Prediction is Prediction
