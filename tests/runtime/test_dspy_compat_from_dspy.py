"""``dsx from-dspy`` (issue 21): the migration suite's DSPy-style programs (RAG, multi-hop,
few-shot classifier, ReAct) become a .dsx file that checks clean and sends the LM the same
messages as the Python; what is left out is listed as ``FILE.py:LINE: why``."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
from dsx.compat.dspy.utils.dummies import DummyLM

import dsx
import dsx.compat.dspy as dspy
from dsx.cli import main
from dsx.compiler.analysis import analyze_path

APP = '''
"""The migration suite's programs, as a DSPy user writes them."""
from typing import Literal

import dsx.compat.dspy as dspy

CORPUS = {
    "france": "Paris is the capital of France.",
    "paris": "Paris has about two million inhabitants.",
    "eiffel": "The Eiffel Tower is in Paris.",
}


def search(query: str, k: int = 2) -> list[str]:
    """Search a tiny corpus."""
    words = query.lower().replace("?", "").split()
    return [text for key, text in CORPUS.items() if key in words][:k]


def get_population(city: str) -> str:
    """The population of a city."""
    return {"paris": "2.1 million"}.get(city.lower(), "unknown")


class RAG(dspy.Module):
    def __init__(self):
        self.respond = dspy.ChainOfThought("context, question -> response")

    def forward(self, question):
        context = search(question)
        return self.respond(context=context, question=question)


class GenerateQuery(dspy.Signature):
    """Write a search query for the missing fact."""

    context: list[str] = dspy.InputField()
    question: str = dspy.InputField()
    query: str = dspy.OutputField(desc="a few words")


class MultiHop(dspy.Module):
    def __init__(self, hops: int = 2):
        super().__init__()
        self.hops = hops
        self.generate_query = dspy.ChainOfThought(GenerateQuery)
        self.answer = dspy.ChainOfThought("context, question -> answer")

    def forward(self, question):
        context = []
        for hop in range(self.hops):
            query = self.generate_query(context=context, question=question).query
            context = context + search(query)
        return self.answer(context=context, question=question)


class Classify(dspy.Signature):
    """Classify the sentiment of a review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative"] = dspy.OutputField()
    confidence: float = dspy.OutputField()


rag = RAG()
multihop = MultiHop(hops=2)
classify = dspy.Predict(Classify)
agent = dspy.ReAct("question -> answer", tools=[get_population], max_iters=3)
'''

#: The calls each program gets, and the replies (in call order) that answer them.
CASES = {
    "rag": (
        {"question": "What is the capital of france?"},
        [{"reasoning": "The context says so.", "response": "Paris"}],
    ),
    "multihop": (
        {"question": "Where is the tower?"},
        [
            {"reasoning": "r", "query": "france"},
            {"reasoning": "r", "query": "paris eiffel"},
            {"reasoning": "r", "answer": "Paris"},
        ],
    ),
    "classify": (
        {"review": "Loved it"},
        [{"sentiment": "positive", "confidence": 0.9}],
    ),
    "agent": (
        {"question": "How many people live in Paris?"},
        [
            {
                "next_thought": "look it up",
                "next_tool_name": "get_population",
                "next_tool_args": {"city": "Paris"},
            },
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "the tool said so", "answer": "2.1 million"},
        ],
    ),
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mig_app.py").write_text(APP.lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("mig_app", None)


def _messages(program, inputs, replies):
    lm = DummyLM(list(replies))
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        pred = program(**inputs)
    return pred, [entry["messages"] for entry in lm.history]


def test_the_migration_programs_translate_check_clean_and_send_the_same_messages(project, capsys):
    assert main(["from-dspy", "mig_app.py"]) == 0
    out, err = capsys.readouterr()
    assert "wrote mig_app.dsx" in out
    # CORPUS stays in Python (search reads it there); that is the one line left out.
    assert err.splitlines() == [
        "mig_app.py:6: top-level code runs in Python; only programs (x = Module(...)) translate"
    ]
    dsx_file = project / "mig_app.dsx"
    assert analyze_path(dsx_file).errors == []
    assert main(["check", str(dsx_file)]) == 0

    original = importlib.import_module("mig_app")
    for name, (inputs, replies) in CASES.items():
        translated = dsx.load_program(dsx_file, name)
        want, sent = _messages(getattr(original, name), inputs, replies)
        got, received = _messages(translated, inputs, replies)
        assert received == sent, name
        assert len(sent) == len(replies), name
        assert dict(got.items()) == dict(want.items()), name
    # the messages compared are DSPy's layout, with the retrieved passages in them
    last = sent[-1][-1]["content"]
    assert "[[ ## question ## ]]" in last


def test_what_is_left_out_is_listed_as_file_line_and_a_failing_check_exits_1(project, capsys):
    (project / "loop.py").write_text(
        textwrap.dedent(
            """
            import dspy

            class MultiHop(dspy.Module):
                def __init__(self, hops=2):
                    self.generate_query = [dspy.Predict("q -> query") for _ in range(hops)]
                    self.answer = dspy.Predict("q -> answer")

                def forward(self, q):
                    for generate in self.generate_query:
                        q = generate(q=q).query
                    return self.answer(q=q)
            """
        ),
        encoding="utf-8",
    )
    assert main(["from-dspy", "loop.py", "-o", "out/loop.dsx"]) == 2  # no out/ directory
    assert "out/loop.dsx: cannot write" in capsys.readouterr().err
    (project / "out").mkdir()
    assert main(["from-dspy", "loop.py", "-o", "out/loop.dsx"]) == 1
    err = capsys.readouterr().err
    assert "loop.py:6: member `generate_query` is not a predictor or module" in err
    assert "error[DSX100]: unknown name `generate_query`" in err
    assert "out/loop.dsx does not check clean (" in err
    assert (project / "out" / "loop.dsx").read_text(encoding="utf-8").startswith("module MultiHop")


def test_stdout_bad_python_and_a_missing_file(project, capsys):
    assert main(["from-dspy", "mig_app.py", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith('use python "mig_app" as py\n')
    assert not (project / "mig_app.dsx").exists()

    (project / "broken.py").write_text("class X(:\n", encoding="utf-8")
    assert main(["from-dspy", "broken.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dsx from-dspy: broken.py:1: not valid Python (")
    assert not (project / "broken.dsx").exists()

    assert main(["from-dspy", "nowhere.py"]) == 2
    assert "dsx from-dspy: nowhere.py: no such file" in capsys.readouterr().err
    assert main(["from-dspy", "mig_app.py", "-o", "mig_app.py"]) == 2
    assert "would overwrite the Python file" in capsys.readouterr().err
