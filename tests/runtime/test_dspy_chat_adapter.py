"""dsx.DSPyChatAdapter writes the messages DSPy's ChatAdapter writes (issue 21, item 9).

``data/dspy_chat_adapter_messages.json`` holds what DSPy 3.4.1's ``ChatAdapter.format``
returned for the same signatures, demos and inputs (recorded by running DSPy); each case
here builds the dsx equivalent and compares the messages byte for byte.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Literal

import pydantic
import pytest

import dsx
from dsx.errors import AdapterParseError
from dsx.testing import DummyLM
from dsx.testing.server import OpenAIServer

GOLDEN = json.loads(
    (Path(__file__).parent / "data" / "dspy_chat_adapter_messages.json").read_text("utf-8")
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(pydantic.BaseModel):
    name: str
    qty: int = 1


class QA(dsx.Signature):
    """Answer with a short factoid."""

    context: list[str] = dsx.InputField(desc="may contain facts")
    question: str = dsx.InputField()
    answer: str = dsx.OutputField(desc="1-5 words")
    score: float = dsx.OutputField()
    label: Literal["a", "b"] = dsx.OutputField()


class Typed(dsx.Signature):
    """Extract the order.

    Be careful with quantities."""

    text: str = dsx.InputField()
    items: list[Item] = dsx.OutputField()
    urgent: bool = dsx.OutputField()
    count: int = dsx.OutputField(ge=0, le=10)
    color: Color = dsx.OutputField()


def cases():
    adapter = dsx.DSPyChatAdapter()
    yield (
        "qa",
        adapter.format(
            QA,
            [
                dsx.Example(context=["c1"], question="q1", answer="a1", score=0.5, label="a"),
                {"question": "q2", "answer": "a2"},
            ],
            {"context": ["x", "y"], "question": "Who?"},
        ),
    )
    yield "string", adapter.format(dsx.Signature("question -> answer"), [], {"question": "hi"})
    demo = {
        "text": "2 pens",
        "items": [{"name": "pen", "qty": 2}],
        "urgent": False,
        "count": 2,
        "color": "red",
    }
    yield "typed", adapter.format(Typed, [demo], {"text": "three cups, urgent"})
    cot = dsx.ChainOfThought("question -> answer")
    yield "cot", adapter.format(cot.predict.signature, [], {"question": "2+2?"})
    history = dsx.History(
        messages=[{"question": "2+2?", "answer": "4"}, {"answer": "only an answer"}]
    )
    yield (
        "history",
        adapter.format(
            dsx.Signature("question, history: dsx.History -> answer"),
            [],
            {"question": "and doubled?", "history": history},
        ),
    )
    yield (
        "numbered",
        adapter.format(
            dsx.Signature("passages, question -> answer"),
            [],
            {"passages": ["one", "two\nlines", "x"], "question": "q"},
        ),
    )


@pytest.mark.parametrize(
    ("name", "messages"), list(cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_messages_equal_dspy_s(name, messages):
    assert messages == GOLDEN[name]


def test_replies_in_dspy_s_layout_parse_through_a_real_server():
    reply = (
        "[[ ## answer ## ]]\nParis\n\n[[ ## score ## ]]\n0.9\n\n[[ ## label ## ]] b\n\n"
        "[[ ## completed ## ]]"
    )
    with OpenAIServer(script=[reply]) as srv:
        lm = dsx.LM("openai/dsx-test", api_base=srv.api_base, api_key="k", cache=False)
        with dsx.context(lm=lm, adapter=dsx.DSPyChatAdapter()):
            pred = dsx.Predict(QA)(context=["x"], question="Capital of France?")
        sent = srv.requests[-1].body["messages"]
    assert (pred.answer, pred.score, pred.label) == ("Paris", 0.9, "b")
    assert sent[-1]["content"].endswith("ending with the marker for `[[ ## completed ## ]]`.")
    assert sent[0]["content"].startswith("Your input fields are:\n1. `context` (list[str])")


def test_a_reply_without_a_marker_is_a_parse_error_naming_the_field():
    lm = DummyLM(["[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"])
    adapter = dsx.DSPyChatAdapter(use_json_adapter_fallback=False)
    with dsx.context(lm=lm, adapter=adapter), pytest.raises(AdapterParseError) as info:
        dsx.Predict(QA)(context=["x"], question="q")
    assert info.value.field == "score" and info.value.parsed_result == {"answer": "Paris"}
    assert "[[ ## score ## ]] is missing" in str(info.value)
