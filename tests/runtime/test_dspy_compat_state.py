"""A program state saved by DSPy loads into the equivalent dsx program (issue 21, item 9).

``data/dspy_saved_rag.json`` was written by DSPy 3.4.1's ``program.save`` for the program
below (a Predict and a ChainOfThought with demos, new instructions and its own LM);
``data/dspy_saved_rag_messages.json`` holds the messages DSPy's ChatAdapter sends for it
after loading. Loaded into dsx, the same program sends the same messages.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import dsx
import dsx.compat.dspy as dspy
from dsx.errors import StateError

DATA = Path(__file__).parent / "data"


class RAG(dspy.Module):
    def __init__(self):
        self.rewrite = dspy.Predict("question -> query")
        self.respond = dspy.ChainOfThought("context, question -> response")

    def forward(self, question):
        return self.respond(context=[], question=question)


def test_a_dspy_saved_state_loads_and_gives_dspy_s_prompts():
    program = dspy.load_dspy_state(RAG(), DATA / "dspy_saved_rag.json")
    respond = program.respond.predict
    assert [dict(d) for d in respond.demos] == [
        {"context": ["c1", "c2"], "question": "q", "reasoning": "r", "response": "a"},
        {"question": "q2", "response": "a2"},
    ]
    assert (
        program.rewrite.signature.instructions
        == "Rewrite the question as a search query.\nKeep names."
    )
    assert respond.signature.fields["question"].prefix == "Question"
    assert (
        respond.signature.fields["reasoning"].desc == "your step-by-step thinking before the answer"
    )
    assert respond.lm.model == "openai/gpt-4o-mini"
    assert respond.lm.kwargs == {"temperature": 0.3, "max_tokens": 100}
    expected = json.loads((DATA / "dspy_saved_rag_messages.json").read_text("utf-8"))
    with dsx.context(adapter=dspy.ChatAdapter()):
        assert respond.render(context=["x"], question="Who?") == expected["respond"]
        assert program.rewrite.render(question="Who?") == expected["rewrite"]


def test_a_state_that_does_not_fit_is_refused_whole():
    class Other(dspy.Module):
        def __init__(self):
            self.rewrite = dspy.Predict("question, lang -> query")
            self.respond = dspy.ChainOfThought("context, question -> response")

    program = Other()
    with pytest.raises(
        StateError, match="'rewrite' was saved with 2 fields but the program's has 3"
    ):
        dspy.load_dspy_state(program, DATA / "dspy_saved_rag.json")
    assert program.respond.predict.demos == []  # nothing was loaded


def test_endpoints_in_a_dspy_file_are_refused_unless_trusted(caplog):
    state = json.loads((DATA / "dspy_saved_rag.json").read_text("utf-8"))
    lm = state["respond.predict"]["lm"]
    lm["api_base"] = "https://attacker.example/v1"
    lm["custom_thing"] = 3
    with pytest.raises(StateError, match="api_base"):
        dspy.load_dspy_state(RAG(), state)
    with caplog.at_level(logging.WARNING, logger="dsx.compat"):
        program = dspy.load_dspy_state(RAG(), state, allow_endpoints=True)
    assert program.respond.predict.lm.api_base == "https://attacker.example/v1"
    assert "left out: custom_thing" in caplog.text


def test_unreadable_files_are_state_errors(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(StateError, match="is not JSON"):
        dspy.load_dspy_state(RAG(), bad)
    with pytest.raises(StateError, match="Cannot read DSPy state"):
        dspy.load_dspy_state(RAG(), tmp_path / "missing.json")
