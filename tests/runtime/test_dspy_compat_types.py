"""Type checks at the boundary (issue 21, item 2): a text or media input given another
kind of value logs a warning once per field (DSPy's warn_on_type_mismatch), typed inputs
still fail fast, and string signatures take qualified type names (dsx.Image, dspy.Image)."""

from __future__ import annotations

import logging

import pytest

import dsx
from dsx.errors import InputTypeError, SignatureError
from dsx.testing import DummyLM


def mismatch_warnings(caplog):
    return [r for r in caplog.records if r.name == "dsx.predict" and "declared as" in r.message]


def test_a_text_input_given_a_dict_warns_once_per_field(caplog):
    sig = dsx.Signature("question, context -> answer")
    predict = dsx.Predict(sig)
    lm = DummyLM([{"answer": "a"}] * 4)
    with caplog.at_level(logging.WARNING, logger="dsx.predict"), dsx.context(lm=lm):
        predict(question={"q": 1}, context="fine")
        predict(question={"q": 2}, context="fine")  # same field: no second warning
        predict(question="fine", context=42)  # another field: its own warning
    warnings = mismatch_warnings(caplog)
    assert len(warnings) == 2
    assert "input `question` is declared as str but got dict {'q': 1}" in warnings[0].message
    assert "warn_on_type_mismatch=False" in warnings[0].message
    assert "input `context` is declared as str but got int 42" in warnings[1].message
    assert len(lm.history) == 3  # warnings, not errors: every call was sent


def test_values_that_fit_do_not_warn(caplog):
    sig = dsx.Signature("question, passages, image: dsx.Image -> answer")
    image = dsx.Image("https://example.com/cat.png")
    with (
        caplog.at_level(logging.WARNING, logger="dsx.predict"),
        dsx.context(lm=DummyLM([{"answer": "a"}] * 3)),
    ):
        dsx.Predict(sig)(question="q", passages=["a", "b"], image=image)
        dsx.Predict(sig)(question="q", passages="p", image=[image, image])
        dsx.Predict(sig)(question=None, passages="p", image=image)
    assert mismatch_warnings(caplog) == []


def test_a_media_input_given_text_warns(caplog):
    sig = dsx.Signature("photo: dsx.Image -> caption")
    with (
        caplog.at_level(logging.WARNING, logger="dsx.predict"),
        dsx.context(lm=DummyLM([{"caption": "c"}])),
    ):
        dsx.Predict(sig)(photo="https://example.com/cat.png")
    (warning,) = mismatch_warnings(caplog)
    assert "input `photo` is declared as Image but got str" in warning.message


def test_the_warning_can_be_turned_off(caplog):
    sig = dsx.Signature("question -> answer")
    with (
        caplog.at_level(logging.WARNING, logger="dsx.predict"),
        dsx.context(lm=DummyLM([{"answer": "a"}]), warn_on_type_mismatch=False),
    ):
        dsx.Predict(sig)(question=3.5)
    assert mismatch_warnings(caplog) == []


def test_typed_inputs_still_fail_before_the_lm_is_called():
    # dsx's deliberate difference: a typed input that cannot be validated is an error.
    lm = DummyLM([{"answer": "a"}])
    with dsx.context(lm=lm, warn_on_type_mismatch=False), pytest.raises(InputTypeError):
        dsx.Predict("question, k: int -> answer")(question="q", k="three")
    assert len(lm.history) == 0


@pytest.mark.parametrize("prefix", ["", "dsx.", "dspy."])
def test_qualified_type_names_in_string_signatures(prefix):
    sig = dsx.Signature(
        f"photo: {prefix}Image, chat: {prefix}History, tools: list[{prefix}Tool], "
        f"results: {prefix}ToolCallResults | None -> calls: {prefix}ToolCalls"
    )
    types = {n: f.annotation for n, f in sig.fields.items()}
    assert types["photo"] is dsx.Image and types["chat"] is dsx.History
    assert types["tools"] == list[dsx.Tool] and types["calls"] is dsx.ToolCalls
    assert types["results"] == dsx.ToolCallResults | None


def test_an_unknown_qualified_name_is_explained():
    with pytest.raises(SignatureError, match=r"`dsx.Imag` does not name a type"):
        dsx.Signature("photo: dsx.Imag -> caption")
