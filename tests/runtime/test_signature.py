from __future__ import annotations

import enum
from typing import Literal, Optional

import pydantic
import pytest

import dsx
from dsx import InputField, OutputField, Signature, SignatureError


class QA(Signature):
    """Answer questions with short factoid answers."""

    context: list[str] = InputField(desc="may contain relevant facts")
    question: str = InputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_class_form_fields_types_and_instructions():
    assert list(QA.input_fields) == ["context", "question"]
    assert list(QA.output_fields) == ["answer"]
    assert QA.instructions == "Answer questions with short factoid answers."
    assert QA.fields["context"].annotation == list[str]
    assert QA.fields["context"].desc == "may contain relevant facts"
    assert QA.fields["answer"].kind == "output"
    assert QA.signature == "context, question -> answer"


def test_class_form_without_docstring_gets_default_instructions():
    class S(Signature):
        q: str = InputField()
        a: int = OutputField()

    assert "`q`" in S.instructions and "`a`" in S.instructions


def test_class_field_without_input_or_output_is_an_error():
    with pytest.raises(SignatureError, match="`q`.*neither an input nor an output"):

        class Bad(Signature):
            q: str


def test_string_form_types_default_to_str():
    sig = Signature("context: list[str], question -> answer: float")
    assert sig.fields["context"].annotation == list[str]
    assert sig.fields["question"].annotation is str
    assert sig.fields["answer"].annotation is float
    assert sig.input_names == ("context", "question")


def test_string_form_with_instructions_and_complex_types():
    sig = Signature(
        "items: dict[str, list[int]], flag: Optional[bool] -> label: Literal['a', 'b'], pair: tuple[int, str]",
        "Classify.",
    )
    assert sig.instructions == "Classify."
    assert sig.fields["items"].annotation == dict[str, list[int]]
    assert sig.fields["flag"].annotation == Optional[bool]  # noqa: UP045
    assert sig.fields["label"].annotation == Literal["a", "b"]
    assert sig.fields["pair"].annotation == tuple[int, str]
    assert sig.fields["flag"].optional


def test_string_form_resolves_caller_types_and_custom_types():
    sig = Signature("person: Person -> color: Color")
    assert sig.fields["person"].annotation is Person
    assert sig.fields["color"].annotation is Color

    class Local(pydantic.BaseModel):
        x: int

    sig2 = Signature("a -> b: Thing", custom_types={"Thing": Local})
    assert sig2.fields["b"].annotation is Local


def test_string_form_union_and_dsx_types():
    sig = Signature("img: Image, history: History -> out: int | None")
    assert sig.fields["img"].annotation is dsx.Image
    assert sig.fields["history"].annotation is dsx.History
    assert sig.fields["out"].optional


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("question answer", "exactly one '->'"),
        ("a -> b -> c", "more than once"),
        ("question ->", "no output field"),
        ("a, , b -> c", "empty input field"),
        ("a -> b: Frobnicator", "unknown type `Frobnicator`"),
        ("a b -> c", "not a valid field name"),
        ("a -> b: list[str", "unbalanced"),
        ("a -> a", "appears twice"),
        ("a -> b:", "has ':' but no type"),
        ("a -> b: __import__('os')", "is not a type"),
    ],
)
def test_malformed_signature_strings_quote_the_string_and_say_why(text, why):
    with pytest.raises(SignatureError) as info:
        Signature(text)
    assert repr(text) in str(info.value)
    assert why in str(info.value)


def test_mutators_return_new_signatures_and_leave_the_original():
    sig = QA.with_instructions("Be terse.")
    assert sig.instructions == "Be terse." and QA.instructions.startswith("Answer")

    appended = QA.append("confidence", OutputField(desc="0-1"), float)
    assert list(appended.output_fields) == ["answer", "confidence"]
    assert appended.fields["confidence"].annotation is float
    assert "confidence" not in QA.fields

    prepended = QA.prepend("reasoning", OutputField())
    assert list(prepended.output_fields) == ["reasoning", "answer"]

    inserted = QA.insert(1, "hint", InputField())
    assert list(inserted.input_fields) == ["context", "hint", "question"]

    deleted = QA.delete("context")
    assert list(deleted.input_fields) == ["question"]
    assert deleted.instructions == QA.instructions

    updated = QA.with_updated_fields("answer", desc="one word", type_=int)
    assert updated.fields["answer"].desc == "one word"
    assert updated.fields["answer"].annotation is int
    assert QA.fields["answer"].annotation is str


def test_mutator_errors_name_the_problem():
    with pytest.raises(SignatureError, match="already has a field `question`"):
        QA.append("question", InputField())
    with pytest.raises(SignatureError, match="no field `nope`"):
        QA.delete("nope")
    with pytest.raises(SignatureError, match="InputField"):
        QA.append("x", "not a field")
    with pytest.raises(SignatureError, match="out of range"):
        QA.insert(7, "x", InputField())


def test_signature_classes_cannot_be_instantiated_and_equality():
    with pytest.raises(TypeError, match="dsx.Predict"):
        QA()
    assert QA.equals(QA.with_instructions(QA.instructions))
    assert not QA.equals(QA.with_instructions("other"))


def test_signature_inheritance_adds_fields():
    class WithScore(QA):
        score: float = OutputField()

    assert list(WithScore.output_fields) == ["answer", "score"]
    assert list(WithScore.input_fields) == ["context", "question"]


def test_ensure_signature_rejects_other_values():
    with pytest.raises(SignatureError, match="Expected a signature"):
        dsx.ensure_signature(42)
