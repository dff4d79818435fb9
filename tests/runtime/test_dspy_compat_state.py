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
from typing import Literal

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


class Classify(dspy.Signature):
    """Classify the sentiment of a review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative"] = dspy.OutputField()
    confidence: float = dspy.OutputField()


class Triage(dspy.Module):
    def __init__(self):
        self.classify = dspy.Predict(Classify)
        self.explain = dspy.ChainOfThought("review, sentiment -> explanation")

    def forward(self, review):
        sentiment = self.classify(review=review).sentiment
        return self.explain(review=review, sentiment=sentiment)


def test_module_load_reads_a_file_dspy_saved():
    """``program.load`` on DSPy 3.4.1's own file (data/make_dspy_saved_classify.py made it)."""
    program = Triage()
    assert program.load(DATA / "dspy_saved_classify.json") is program
    assert [dict(d) for d in program.classify.demos] == [
        {"review": "Awful", "sentiment": "negative", "confidence": 0.8},
        {"review": "Loved it", "sentiment": "positive", "confidence": 0.9},
    ]
    assert program.classify.signature.instructions == (
        "Classify the review's sentiment.\nAnswer with a calibrated confidence."
    )
    lm = program.explain.predict.lm
    assert (lm.model, lm.kwargs) == ("openai/gpt-4o-mini", {"temperature": 0.2, "max_tokens": 50})
    assert program.classify.lm is None
    expected = json.loads((DATA / "dspy_saved_classify_messages.json").read_text("utf-8"))
    with dsx.context(adapter=dspy.ChatAdapter()):
        assert program.classify.render(review="Great film") == expected["classify"]
        assert (
            program.explain.predict.render(review="Great film", sentiment="positive")
            == expected["explain"]
        )


def test_module_load_of_a_dspy_file_keeps_the_checks(tmp_path):
    state = json.loads((DATA / "dspy_saved_classify.json").read_text("utf-8"))
    state["explain.predict"]["lm"]["api_base"] = "https://attacker.example/v1"
    path = tmp_path / "x.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    program = Triage()
    with pytest.raises(StateError, match="api_base"):
        program.load(path)
    assert program.classify.demos == []  # nothing was loaded
    program.load(path, allow_unsafe_lm_state=True)  # DSPy's name for trusting the file
    assert program.explain.predict.lm.api_base == "https://attacker.example/v1"

    # Without DSPy's metadata it is neither format: dsx's own message stands.
    del state["metadata"]
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(StateError, match="is not a dsx state file \\(no 'state' object\\)"):
        Triage().load(path)
