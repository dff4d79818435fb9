"""DSPy Python → .dsx (issue 21, item 9): the translation checks clean, its programs send the
same prompts as the Python ones, and what it cannot translate is listed line by line."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

import dsx
from dsx.compat.dspy import translate_dspy, translate_dspy_file
from dsx.compiler.analysis import analyze_path
from dsx.testing import DummyLM

RAG_APP = '''
"""A DSPy RAG program."""
from typing import Literal

import dsx.compat.dspy as dspy


def search(query: str, k: int = 2) -> list[str]:
    """Search a tiny corpus."""
    return ["Paris is the capital of France.", "Paris has two million people."][:k]


class GenerateAnswer(dspy.Signature):
    """Answer questions with short factoid answers.

    Be brief."""

    context: list[str] = dspy.InputField(desc="may contain relevant facts")
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="often between 1 and 5 words")
    confidence: Literal["low", "high"] = dspy.OutputField()


Rewrite = dspy.Signature("question -> search_query")


class RAG(dspy.Module):
    def __init__(self, k: int = 3):
        super().__init__()
        self.rewrite = dspy.Predict(Rewrite)
        self.answer = dspy.ChainOfThought(GenerateAnswer)
        self.agent = dspy.ReAct("question -> answer", tools=[search], max_iters=3)

    def forward(self, question: str):
        query = self.rewrite(question=question).search_query
        context = search(query, 2)
        if len(context) == 0:
            context = [f"nothing found for {query}"]
        elif len(context) > 1 and query is not None:
            context = [c for c in context if "Paris" in c]
        return self.answer(context=context, question=question)


qa = RAG(k=3)
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "rag_app.py").write_text(RAG_APP.lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("rag_app", None)


def test_the_translation_checks_clean_and_gives_the_same_prompts(project):
    translation = translate_dspy_file(project / "rag_app.py")
    assert translation.notes == []
    dsx_file = project / "rag_app.dsx"
    dsx_file.write_text(translation.text, encoding="utf-8")
    analysis = analyze_path(dsx_file)
    assert analysis.errors == []
    assert 'use python "rag_app" as py' in translation.text
    assert 'out confidence: "low" | "high"' in translation.text
    assert (
        'agent = ReAct("question -> answer", tools = [py.search], max_iters = 3)'
        in translation.text
    )

    translated = dsx.load_program(dsx_file, "qa")
    original = importlib.import_module("rag_app").qa
    inputs = {"context": ["a fact"], "question": "Capital of France?"}
    assert translated.answer.render(**inputs) == original.answer.render(**inputs)
    assert translated.rewrite.render(question="q") == original.rewrite.render(question="q")
    lm = DummyLM(
        [{"search_query": "france"}, {"reasoning": "r", "answer": "Paris", "confidence": "high"}]
        * 2
    )
    with dsx.context(lm=lm):
        assert translated(question="Capital?").answer == original(question="Capital?").answer
    first, second = lm.history[1]["messages"], lm.history[3]["messages"]
    assert first == second  # the same prompt reached the LM from both programs


def test_what_cannot_be_translated_is_listed_by_line():
    source = textwrap.dedent(
        """
        import dspy
        from pydantic import BaseModel

        class Item(BaseModel):
            name: str

        class Extract(dspy.Signature):
            text: str = dspy.InputField()
            items: list[Item] = dspy.OutputField()
            count: int = dspy.OutputField(ge=0)

        class Program(dspy.Module):
            def __init__(self):
                self.extract = dspy.Predict(Extract)

            def forward(self, text):
                try:
                    out = self.extract(text=text)
                except ValueError:
                    out = None
                return out

        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))
        """
    )
    translation = translate_dspy(source)
    notes = {n.line: n.message for n in translation.notes}
    assert notes[5] == "class Item is neither a dspy.Signature nor a dspy.Module"
    assert notes[10] == "type `Item` has no .dsx form (declare it with `type`)"
    assert notes[11] == "field `count`: `ge=` has no .dsx form and was left out"
    assert notes[18] == "Try has no .dsx form; move it into a Python helper"
    assert notes[24].startswith("top-level code runs in Python")
    assert "        // untranslated: try:" in translation.text
    assert "out count: int" in translation.text and "items" not in translation.text
    assert (
        str(translation.notes[0])
        == "line 5: class Item is neither a dspy.Signature nor a dspy.Module"
    )
