from __future__ import annotations

import enum
import json
from typing import Literal

import pydantic
import pytest

import dsx
from dsx import AdapterParseError, ChatAdapter, JSONAdapter
from dsx.testing import DummyLM, FunctionLM


class Person(pydantic.BaseModel):
    name: str
    age: int


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Typed(dsx.Signature):
    """Extract facts."""

    text: str = dsx.InputField()
    count: int = dsx.OutputField()
    ratio: float = dsx.OutputField()
    ok: bool = dsx.OutputField()
    tags: list[str] = dsx.OutputField()
    person: Person = dsx.OutputField()
    label: Literal["yes", "no"] = dsx.OutputField()
    mood: Mood = dsx.OutputField()


CHAT_REPLY = """<<< count >>>
3

<<< ratio >>>
0.5

<<< ok >>>
true

<<< tags >>>
['a', 'b',]

<<< person >>>
```json
{"name": "Ada", "age": 36}
```

<<< label >>>
"Yes"

<<< mood >>>
HAPPY

<<< end >>>"""


def test_chat_adapter_parses_every_type_tolerating_near_json():
    out = ChatAdapter().parse(Typed, CHAT_REPLY)
    assert out == {
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "tags": ["a", "b"],
        "person": Person(name="Ada", age=36),
        "label": "yes",
        "mood": Mood.HAPPY,
    }


def test_chat_adapter_system_message_lists_fields_types_and_template():
    system = ChatAdapter().format(Typed, [], {"text": "t"})[0]["content"]
    assert "- `text` (str)" in system
    assert "- `tags` (list[str])" in system
    assert "{count — an integer}" in system
    assert "exactly one of: yes, no" in system
    assert '"age"' in system  # the JSON schema of the pydantic model
    assert system.rstrip().endswith("Extract facts.")


def test_parse_error_names_the_field_and_shows_the_raw_text():
    reply = CHAT_REPLY.replace("3\n", "three\n")
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(Typed, reply)
    err = info.value
    assert err.field == "count" and err.lm_text == reply
    assert "expected int" in str(err) and "three" in str(err)


def test_missing_marker_is_a_parse_error():
    with pytest.raises(AdapterParseError, match="marker <<< answer >>> is missing"):
        ChatAdapter().parse(dsx.Signature("q -> answer"), "Paris")


def test_chat_adapter_falls_back_to_json_adapter():
    lm = DummyLM(["not in the format", '{"answer": "Paris"}'])
    pred = dsx.Predict("question -> answer", lm=lm)(question="q")
    assert pred.answer == "Paris"
    assert "response_format" in lm.history[-1]["kwargs"]
    assert lm.calls == 2


def test_fallback_can_be_disabled_and_double_failure_reports_both():
    lm = DummyLM(["bad"])
    with (
        dsx.context(adapter=ChatAdapter(use_json_adapter_fallback=False)),
        pytest.raises(AdapterParseError, match="ChatAdapter could not parse"),
    ):
        dsx.Predict("question -> answer", lm=lm)(question="q")
    lm2 = DummyLM(["bad", "still bad"])
    with pytest.raises(AdapterParseError, match="JSON fallback also failed") as info:
        dsx.Predict("question -> answer", lm=lm2)(question="q")
    assert info.value.lm_text == "bad"


def test_json_adapter_requests_schema_and_validates():
    seen = {}

    def reply(messages, **kwargs):
        seen.update(kwargs)
        return json.dumps(
            {
                "count": "4",
                "ratio": 1,
                "ok": False,
                "tags": [],
                "person": {"name": "B", "age": 2},
                "label": "no",
                "mood": "sad",
            }
        )

    with dsx.context(adapter=JSONAdapter()):
        pred = dsx.Predict(Typed, lm=FunctionLM(reply))(text="t")
    assert pred.count == 4 and pred.person.age == 2 and pred.mood is Mood.SAD
    schema = seen["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == set(Typed.output_fields)
    assert schema["properties"]["count"]["type"] == "integer"


def test_json_adapter_errors():
    with pytest.raises(AdapterParseError, match="not a JSON object"):
        JSONAdapter().parse(dsx.Signature("q -> a"), "nothing here")
    with pytest.raises(AdapterParseError, match="key 'a' is missing"):
        JSONAdapter().parse(dsx.Signature("q -> a"), '{"b": 1}')
    with pytest.raises(AdapterParseError, match="expected int"):
        JSONAdapter().parse(dsx.Signature("q -> a: int"), '{"a": "many"}')


def test_demos_render_typed_outputs_as_json_and_partial_demos():
    sig = dsx.Signature("question -> answer: list[int], note")
    demo_full = dsx.Example(question="evens?", answer=[2, 4], note="n")
    demo_partial = dsx.Example(question="odds?", answer=[1, 3])
    demo_useless = dsx.Example(unrelated=1)
    msgs = ChatAdapter().format(sig, [demo_full, demo_partial, demo_useless], {"question": "q"})
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "<<< answer >>>\n[2, 4]" in msgs[2]["content"]
    assert "(not given for this example)" in msgs[4]["content"]


def test_list_of_strings_inputs_are_numbered():
    msgs = ChatAdapter().format(
        dsx.Signature("context: list[str] -> a"), [], {"context": ["x", "y"]}
    )
    assert "[1] x\n[2] y" in msgs[-1]["content"]


def test_images_become_content_parts(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    path = tmp_path / "pic.png"
    path.write_bytes(png)
    sig = dsx.Signature("photo: Image, question -> answer")
    for source in (
        dsx.Image(path),
        dsx.Image(png),
        dsx.Image.from_file(path),
        dsx.Image("https://x/y.png"),
    ):
        msgs = ChatAdapter().format(sig, [], {"photo": source, "question": "what?"})
        content = msgs[-1]["content"]
        assert isinstance(content, list)
        kinds = [p["type"] for p in content]
        assert kinds == ["text", "image_url", "text"]
        assert content[1]["image_url"]["url"].startswith(("data:image/png;base64,", "https://"))
        assert "what?" in content[2]["text"]
    with pytest.raises(ValueError, match="no such file"):
        dsx.Image("nope.png")


def test_history_becomes_prior_turns():
    sig = dsx.Signature("question, history: History -> answer")
    history = dsx.History(
        messages=[{"question": "2+2?", "answer": "4"}, {"question": "x2?", "answer": "8"}]
    )
    msgs = ChatAdapter().format(sig, [], {"question": "and +1?", "history": history})
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "2+2?" in msgs[1]["content"] and "<<< answer >>>\n8" in msgs[4]["content"]
    assert "history" not in msgs[-1]["content"]


def test_prepared_pieces_are_computed_once_per_signature():
    sig = dsx.Signature("question -> answer")
    adapter = ChatAdapter()
    first = adapter.prepare(sig)
    assert adapter.prepare(sig) is first
    assert ChatAdapter().prepare(sig) is first
    assert JSONAdapter().prepare(sig) is not first
