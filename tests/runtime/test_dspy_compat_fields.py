"""Signatures and fields (issue 21, item 4): append_instructions, pydantic constraints on
fields (shown to the LM, enforced on outputs and inputs), fields as pydantic FieldInfo,
format=, and declaration order."""

from __future__ import annotations

import json
import warnings

import pydantic
import pytest
from pydantic.fields import FieldInfo

import dsx
from dsx.errors import AdapterParseError, InputTypeError, SignatureError
from dsx.testing import DummyLM


class Rate(dsx.Signature):
    """Rate the review."""

    review: str = dsx.InputField(max_length=200)
    stars: int = dsx.OutputField(ge=1, le=5, desc="how good")
    summary: str = dsx.OutputField(max_length=12)
    code: str = dsx.OutputField(pattern=r"^[A-Z]{3}$")


def test_append_instructions_keeps_the_old_ones():
    sig = dsx.Signature("text -> french", "Translate to French.")
    longer = sig.append_instructions("Keep proper nouns.")
    assert longer is not sig and sig.instructions == "Translate to French."
    assert longer.instructions == "Translate to French.\n\nKeep proper nouns."
    assert list(longer.fields) == ["text", "french"]


def test_constraints_are_shown_to_the_lm():
    lm = DummyLM([{"stars": 4, "summary": "good", "code": "ABC"}])
    with dsx.context(lm=lm):
        dsx.Predict(Rate)(review="nice")
    system = lm.history[-1]["messages"][0]["content"]
    assert "- `stars` (int; at least 1, at most 5): how good" in system
    assert "- `summary` (str; at most 12 long)" in system
    assert "- `code` (str; matching the regular expression `^[A-Z]{3}$`)" in system
    assert "- `review` (str; at most 200 long)" in system


def test_json_adapter_puts_constraints_in_the_schema():
    lm = DummyLM([{"stars": 4, "summary": "good", "code": "ABC"}])
    with dsx.context(lm=lm, adapter=dsx.JSONAdapter()):
        pred = dsx.Predict(Rate)(review="nice")
    assert pred.stars == 4
    schema = lm.history[-1]["kwargs"]["response_format"]["json_schema"]["schema"]
    props = schema["properties"]
    assert (props["stars"]["minimum"], props["stars"]["maximum"]) == (1, 5)
    assert props["summary"]["maxLength"] == 12 and props["code"]["pattern"] == "^[A-Z]{3}$"


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ({"stars": 9, "summary": "good", "code": "ABC"}, "stars"),
        ({"stars": 3, "summary": "far too long a summary", "code": "ABC"}, "summary"),
        ({"stars": 3, "summary": "ok", "code": "abc"}, "code"),
    ],
)
@pytest.mark.parametrize("adapter", [dsx.ChatAdapter, dsx.JSONAdapter])
def test_outputs_that_break_a_constraint_are_parse_errors(reply, problem, adapter):
    options = {"use_json_adapter_fallback": False} if adapter is dsx.ChatAdapter else {}
    context = dsx.context(lm=DummyLM([reply]), adapter=adapter(**options))
    with context, pytest.raises(AdapterParseError) as info:
        dsx.Predict(Rate)(review="nice")
    assert info.value.field == problem


def test_inputs_that_break_a_constraint_fail_before_the_lm_is_called():
    lm = DummyLM([{"stars": 4, "summary": "good", "code": "ABC"}])
    with (
        dsx.context(lm=lm),
        pytest.raises(InputTypeError, match=r"input `review` should be str \(at most 200 long\)"),
    ):
        dsx.Predict(Rate)(review="x" * 201)
    assert len(lm.history) == 0
    sig = dsx.Signature("k: int -> answer").with_updated_fields("k", ge=0)
    with dsx.context(lm=lm), pytest.raises(InputTypeError, match="at least 0"):
        dsx.Predict(sig)(k=-1)


def test_fields_are_exposed_as_pydantic_field_info():
    info = Rate.model_fields["stars"]
    assert isinstance(info, FieldInfo) and info.annotation is int
    assert info.description == "how good"
    assert info.json_schema_extra["__dspy_field_type"] == "output"
    assert info.json_schema_extra["desc"] == "how good"
    assert info.json_schema_extra["constraints"] == "at least 1, at most 5"
    assert list(Rate.model_fields) == ["review", "stars", "summary", "code"]
    field = Rate.output_fields["stars"]
    assert field.json_schema_extra["__dspy_field_type"] == "output"
    assert field.description == "how good" and field.constraints == {"ge": 1, "le": 5}
    # The FieldInfo validates like the field does.
    model = pydantic.create_model("M", stars=(info.annotation, info))
    with pytest.raises(pydantic.ValidationError):
        model(stars=0)
    defaulted = dsx.Signature("q -> a").prepend("k", dsx.InputField(default=3), int)
    assert defaulted.model_fields["k"].default == 3


def test_pydantic_style_description_and_unknown_arguments():
    field = dsx.Signature("q -> a").append("b", dsx.OutputField(description="bee"), str)
    assert field.output_fields["b"].desc == "bee"
    with pytest.raises(SignatureError, match="unexpected argument `maxlen`"):
        dsx.OutputField(maxlen=3)


def test_format_turns_an_input_into_prompt_text():
    def as_bullets(items: list[str]) -> str:
        return "\n".join(f"* {item}" for item in items)

    class Summarize(dsx.Signature):
        passages: list[str] = dsx.InputField(format=as_bullets)
        summary: str = dsx.OutputField()

    lm = DummyLM([{"summary": "s"}])
    with dsx.context(lm=lm):
        dsx.Predict(Summarize)(passages=["one", "two"])
    assert "* one\n* two" in lm.history[-1]["messages"][-1]["content"]
    with pytest.raises(SignatureError, match=r"format=\.\.\.\) takes a function"):
        dsx.InputField(format="bullets")


def test_parser_is_accepted_with_a_deprecation_warning_as_in_dspy():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dsx.OutputField(parser=int)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_fields_keep_their_declaration_order():
    class Mixed(dsx.Signature):
        first = dsx.InputField()  # no annotation: text
        second: int = dsx.InputField()
        third = dsx.InputField(desc="c")
        out_b: str = dsx.OutputField()
        out_a = dsx.OutputField()

    assert list(Mixed.fields) == ["first", "second", "third", "out_b", "out_a"]
    assert Mixed.input_fields["third"].annotation is str
    lm = DummyLM([{"out_b": "x", "out_a": "y"}])
    with dsx.context(lm=lm):
        dsx.Predict(Mixed)(first="1", second=2, third="3")
    user = lm.history[-1]["messages"][-1]["content"]
    assert user.index("first") < user.index("second") < user.index("third")
    assert json.dumps(list(Mixed.with_instructions("x").fields)) == json.dumps(list(Mixed.fields))
