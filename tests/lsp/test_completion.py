"""Completion contexts, driven in-process on a :class:`Session` (fast, many cases); the
end-to-end tests cover the same feature over stdio."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from dsx.lsp import completion
from dsx.lsp.state import Session

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE = """use python "search_tools" as tools

type Evidence { quote: str, relevance: float }
enum Urgency { low, normal, high }

signature Answer {
    in  context: list[str] "facts"
    in  question: str
    out answer: str
    out evidence: list[Evidence]
    out urgency: Urgency
}

module Rag(k: int = 3) {
    retrieve = Retrieve(k = k)
    answer   = ChainOfThought(Answer)
    better   = Refine(module = answer, N = 3, reward_fn = tools.is_short)

    forward(question: str) {
        context = retrieve(question).passages
        pred = answer(context = context, question = question)
        first = pred.evidence[0]
        return pred
    }
}

program rag = Rag(k = 2)
data train = jsonl("data/train.jsonl", inputs = [question])
"""


def complete(text: str, *, root: Path = EXAMPLES, analysed: str | None = None) -> list[str]:
    """Labels offered at `|` in ``text``; ``analysed`` is the text last checked (the server
    completes against the last analysis, which may be older than the text)."""
    offset = text.index("|")
    text = text.replace("|", "", 1)
    session = Session()
    doc = session.open((root / "completion_test.dsx").as_uri(), analysed or BASE, 1)
    session.analyze(doc)
    doc.text = text
    doc.revision += 1
    position = doc.codec("utf-16").position(offset)
    return [i.label for i in completion.complete(session, doc, position).items]


def at(marker: str, insert: str) -> str:
    """BASE with ``insert`` (containing `|`) placed after ``marker``."""
    i = BASE.index(marker) + len(marker)
    return BASE[:i] + insert + BASE[i:]


FORWARD_END = "        return pred\n"


@pytest.mark.parametrize(
    ("text", "expected", "exact"),
    [
        # record fields after `.` on a list element of a prediction's output
        (at(FORWARD_END, "        first.|\n"), ["quote", "relevance"], True),
        # outputs through a local assigned in this very edit (not yet analysed)
        (
            at(
                FORWARD_END,
                "        again = answer(context = context, question = question)\n        again.|\n",
            ),
            ["reasoning", "answer", "evidence", "urgency"],
            False,
        ),
        # Retrieve's output
        (at(FORWARD_END, "        retrieve(question).|\n"), ["passages"], True),
        # calling a Refine member checks against the wrapped predictor
        (at(FORWARD_END, "        better(|)\n"), ["context", "question"], True),
        # enum members
        (at(FORWARD_END, "        u = Urgency.|\n"), ["low", "normal", "high"], True),
        # `module = ` of Refine: the module's other members
        (
            at("    answer   = ChainOfThought(Answer)\n", "    twice = BestOfN(module = |)\n"),
            ["retrieve", "answer", "better"],
            False,
        ),
        # declared types and enums are offered in type positions
        (
            at("    out urgency: Urgency\n", "    out more: list[|]\n"),
            ["Evidence", "Urgency", "str"],
            False,
        ),
        (
            at("type Evidence { quote: str, relevance: float", ", extra: |"),
            ["Evidence", "int"],
            False,
        ),
        # inputs of a data file
        (
            at(
                'data train = jsonl("data/train.jsonl", inputs = [question])\n',
                'data dev = jsonl("x.jsonl", |)\n',
            ),
            ["inputs"],
            True,
        ),
        # optimizer names after `with`
        (BASE + "optimize rag {\n    with |\n}\n", ["BootstrapFewShot", "MIPROv2"], False),
        # data names (and `tests`) after `train`
        (BASE + "optimize rag {\n    train |\n}\n", ["train", "tests"], True),
        # `use python "..." |` -> `as`
        ('use python "x" |', ["as"], True),
        ("use |", ["python"], True),
        # module parameters of a declared module
        (BASE + "program other = Rag(|)\n", ["k"], True),
        # outputs of a program in a test
        (
            BASE + "test t for rag {\n    expect |\n}\n",
            ["reasoning", "answer", "evidence", "urgency"],
            True,
        ),
        (BASE + 'test t for rag {\n    given question = "q"\n    given |\n}\n', [], True),
        # built-in metrics
        (BASE + "metric m = |\n", ["exact_match", "f1", "tools"], False),
        # `for x |` offers `in`
        (at(FORWARD_END, "        for p |\n"), ["in"], True),
        # `else` after an if block
        (at(FORWARD_END, "        if true {\n        }\n        |\n"), ["else"], False),
        # a statement being started: keywords and names, filtered by the client
        (at(FORWARD_END, "        fresh|\n"), ["return", "context"], False),
        # in a string (not an import): nothing
        (at(FORWARD_END, '        x = "abc|"\n'), [], True),
    ],
)
def test_completion(text: str, expected: list[str], exact: bool):
    labels = complete(text)
    if exact:
        assert labels == expected
    else:
        assert set(expected) <= set(labels), labels


def test_scope_offers_params_members_locals_and_builtins():
    labels = complete(at(FORWARD_END, "        x = |\n"))
    for name in (
        "question",
        "context",
        "pred",
        "first",
        "k",
        "retrieve",
        "answer",
        "better",
        "tools",
        "len",
    ):
        assert name in labels
    # locals and parameters come before built-ins
    assert labels.index("pred") < labels.index("len")


def test_completion_items_carry_details_and_docs():
    session = Session()
    doc = session.open((EXAMPLES / "x.dsx").as_uri(), BASE, 1)
    text = at(FORWARD_END, "        answer(|)\n")
    offset = text.index("|")
    doc.text = text.replace("|", "")
    doc.revision += 1
    items = completion.complete(session, doc, doc.codec("utf-16").position(offset)).items
    context = next(i for i in items if i.label == "context")
    assert context.detail == "in context: list[str]"
    assert context.insert_text == "context = "
    assert isinstance(context.documentation, types.MarkupContent)
    assert context.documentation.value == "facts"


def test_top_level_keywords_without_snippet_support():
    session = Session()
    doc = session.open("untitled:Untitled-1", "", 1)
    items = completion.complete(
        session, doc, types.Position(line=0, character=0), snippets=False
    ).items
    assert [i.label for i in items][:3] == ["use", "import", "signature"]
    assert all(i.insert_text_format is None for i in items)


def test_completion_on_an_unparsable_document_still_answers():
    labels = complete(
        "module M {\n    forward(q: str) {\n        x = (((\n        |", analysed="module M {"
    )
    assert "q" not in labels or "return" in labels  # whatever it offers, it answers


def test_reply_is_offered_in_a_test_block():
    labels = complete(BASE + 'test t for rag {\n    given question = "q"\n    |\n}\n')
    assert {"given", "expect", "reply", "assert"} <= set(labels)


def test_reply_fields_are_outputs_of_signatures_and_module_added_fields():
    # Issue 16: a scripted reply gives output values (checked as DSX131); completion
    # offers the same names the checker accepts, less those this reply already gives.
    labels = complete(BASE + 'test t for rag {\n    reply { answer = "x", | }\n}\n')
    assert {"evidence", "urgency", "reasoning", "next_thought"} <= set(labels)
    assert "answer" not in labels
    assert "question" not in labels  # an input, not an output
    # the value after `=` is an expression: scope names, not fields
    labels = complete(BASE + "test t for rag {\n    reply { answer = | }\n}\n")
    assert "evidence" not in labels


def test_in_is_offered_after_a_comprehension_clause_target():
    # Issue 16: a comprehension may have several `for` clauses; each target is followed by `in`.
    assert complete(at(FORWARD_END, "        xs = [p for p |]\n")) == ["in"]
    assert complete(at(FORWARD_END, "        xs = [p for ps in context for p |]\n")) == ["in"]
    assert complete(at(FORWARD_END, "        xs = [p for i, p |]\n")) == ["in"]
    # after `in` (and in the element) an expression: scope names
    assert "context" in complete(at(FORWARD_END, "        xs = [p for ps in context for p in |]\n"))
