"""Signature help, folding ranges, inlay hints, `use python` hover/definition/completion,
`expect` lines in references and rename across files, and no "never used" warnings for a
library's declarations its importers use — over a real stdio session."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest_asyncio

from ._helpers import apply_edits, pos
from ._raw import RawClient

TOOLS_PY = '''\
from __future__ import annotations

import os
from typing import Any

LIMIT = 3


def search(query: str, k: int = 3) -> list[str]:
    """Search the corpus for `query`."""
    return [query] * k


class Ranker:
    """Orders passages."""

    def __init__(self, model: str) -> None:
        self.model = model
'''

MAIN = """\
use python "tools" as tools

/// Answer with facts.
signature Answer {
    in  context: list[str]
    in  question: str
    out answer: str
}

// Two comment lines
// fold together.
module Rag {
    answer = ChainOfThought(Answer)

    forward(question: str) {
        hits = tools.search(query = question, k = 2)
        n = len(hits)
        pred = answer(context = hits, question = question)
        return pred
    }
}

program rag = Rag()
"""

LIB = """\
signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

signature Lonely {
    in  a: str
    out b: str
}

signature Shared {
    in  a: str
    out b: str
}
"""

IMPORTER = """\
import "lib.dsx"

program other = Predict(Shared)

test capital for qa {
    given  question = "What is the capital of France?"
    expect answer = "Paris"
}
"""


@pytest_asyncio.fixture
async def raw(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS_PY)
    (tmp_path / "main.dsx").write_text(MAIN)
    (tmp_path / "lib.dsx").write_text(LIB)
    (tmp_path / "importer.dsx").write_text(IMPORTER)
    client = await RawClient.start()
    await client.call(
        "initialize",
        {
            "processId": None,
            "rootUri": tmp_path.as_uri(),
            "workspaceFolders": [{"uri": tmp_path.as_uri(), "name": "ws"}],
            "capabilities": {},
            "initializationOptions": {"diagnosticsDelay": 10},
        },
    )
    client.notify("initialized", {})
    yield client
    await client.kill()


def _open(raw: RawClient, path: Path) -> str:
    uri = path.as_uri()
    raw.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "dsx", "version": 1, "text": path.read_text()}},
    )
    return uri


def _at(uri: str, text: str, needle: str, delta: int = 0) -> dict[str, Any]:
    p = pos(text, needle, delta)
    return {"textDocument": {"uri": uri}, "position": {"line": p.line, "character": p.character}}


async def _result(raw: RawClient, method: str, params: Any) -> Any:
    answer = await raw.call(method, params)
    assert "result" in answer, answer
    return answer["result"]


async def _diagnostics(raw: RawClient, uri: str) -> list[dict[str, Any]]:
    """The first diagnostics published for ``uri``."""
    while True:
        for message in raw.notifications:
            if (
                message.get("method") == "textDocument/publishDiagnostics"
                and message["params"]["uri"] == uri
            ):
                return message["params"]["diagnostics"]
        raw.notifications.append(await raw.read())


async def test_signature_help_for_a_predictor_call_shows_the_active_input(
    raw: RawClient, tmp_path: Path
):
    uri = _open(raw, tmp_path / "main.dsx")
    help_ = await _result(
        raw, "textDocument/signatureHelp", _at(uri, MAIN, "question = question)", 0)
    )
    sig = help_["signatures"][0]
    assert sig["label"] == "answer(in context: list[str], in question: str)"
    labels = [sig["label"][a:b] for a, b in (p["label"] for p in sig["parameters"])]
    assert labels == ["in context: list[str]", "in question: str"]
    assert help_["activeParameter"] == 1  # `question = |`
    first = await _result(raw, "textDocument/signatureHelp", _at(uri, MAIN, "context = hits"))
    assert first["activeParameter"] == 0


async def test_signature_help_for_python_functions_and_module_kinds(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "main.dsx")
    py = await _result(raw, "textDocument/signatureHelp", _at(uri, MAIN, "k = 2)"))
    sig = py["signatures"][0]
    assert sig["label"] == "tools.search(query: str, k: int = 3)"
    assert py["activeParameter"] == 1
    assert "Search the corpus" in sig["documentation"]["value"]
    kind = await _result(raw, "textDocument/signatureHelp", _at(uri, MAIN, "Answer)\n"))
    assert kind["signatures"][0]["label"].startswith("ChainOfThought(signature")
    assert kind["activeParameter"] == 0
    none = await raw.call("textDocument/signatureHelp", _at(uri, MAIN, "return pred"))
    assert none["result"] is None


async def test_folding_ranges(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "main.dsx")
    ranges = await _result(raw, "textDocument/foldingRange", {"textDocument": {"uri": uri}})
    found = {(r["startLine"], r["endLine"], r.get("kind")) for r in ranges}
    lines = MAIN.split("\n")

    def line(needle: str) -> int:
        return next(i for i, text in enumerate(lines) if needle in text)

    assert (line("signature Answer"), line("out answer"), "region") in found
    assert (line("module Rag"), line("return pred") + 1, "region") in found  # `}` of forward
    assert (line("forward("), line("return pred"), "region") in found
    assert (line("// Two"), line("// fold"), "comment") in found


async def test_inlay_hints_show_the_inferred_types_of_locals(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "main.dsx")
    whole = {"start": {"line": 0, "character": 0}, "end": {"line": 100, "character": 0}}
    hints = await _result(
        raw, "textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": whole}
    )
    by_line = {h["position"]["line"]: h for h in hints}
    hits, n, pred = pos(MAIN, "hits ="), pos(MAIN, "n ="), pos(MAIN, "pred =")
    assert hits.line not in by_line  # a Python function's result: not known
    assert by_line[n.line]["label"] == ": int"
    assert by_line[n.line]["position"]["character"] == n.character + len("n")
    assert by_line[pred.line]["label"] == ": Prediction"
    assert "answer" in by_line[pred.line]["tooltip"]
    # Only the range asked for.
    one = {"start": {"line": n.line, "character": 0}, "end": {"line": n.line + 1, "character": 0}}
    assert (
        len(
            await _result(
                raw, "textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": one}
            )
        )
        == 1
    )


async def test_hover_definition_and_completion_of_a_python_module(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "main.dsx")
    hover = await _result(raw, "textDocument/hover", _at(uri, MAIN, "search(", 2))
    text = hover["contents"]["value"]
    assert "def search(query: str, k: int = 3) -> list[str]" in text
    assert "Search the corpus" in text and "line 9" in text
    where = await _result(raw, "textDocument/definition", _at(uri, MAIN, "search(", 2))
    assert where[0]["uri"] == (tmp_path / "tools.py").as_uri()
    assert where[0]["range"]["start"]["line"] == 8
    # `tools.` lists what the module defines, not what it imports.
    edited = MAIN.replace("        return pred\n", "        x = tools.\n        return pred\n")
    raw.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"text": edited}],
        },
    )
    items = (await _result(raw, "textDocument/completion", _at(uri, edited, "tools.\n", 6)))[
        "items"
    ]
    labels = {i["label"] for i in items}
    assert {"search", "Ranker", "LIMIT"} <= labels
    assert not labels & {"annotations", "os", "Any"}


async def test_references_and_rename_reach_expect_lines_in_importing_files(
    raw: RawClient, tmp_path: Path
):
    uri = _open(raw, tmp_path / "lib.dsx")
    at = _at(uri, LIB, "answer: str")
    refs = await _result(
        raw, "textDocument/references", {**at, "context": {"includeDeclaration": True}}
    )
    importer = (tmp_path / "importer.dsx").as_uri()
    assert {(r["uri"], r["range"]["start"]["line"]) for r in refs} == {
        (uri, pos(LIB, "answer: str").line),
        (importer, pos(IMPORTER, "expect answer").line),
    }
    edit = await _result(raw, "textDocument/rename", {**at, "newName": "reply"})
    changes = edit["changes"]
    assert "expect reply = " in _apply(IMPORTER, changes[importer])
    assert "out reply: str" in _apply(LIB, changes[uri])


def _apply(text: str, edits: list[dict[str, Any]]) -> str:
    from lsprotocol import types

    return apply_edits(
        text,
        [
            types.TextEdit(
                range=types.Range(
                    start=types.Position(**e["range"]["start"]),
                    end=types.Position(**e["range"]["end"]),
                ),
                new_text=e["newText"],
            )
            for e in edits
        ],
    )


async def test_a_library_does_not_warn_about_what_its_importers_use(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "lib.dsx")
    diagnostics = await _diagnostics(raw, uri)
    unused = sorted(d["message"] for d in diagnostics if d.get("code") == "DSX200")
    assert unused == ["signature `Lonely` is never used"]


async def test_selection_ranges_grow_from_the_name_to_the_file(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "main.dsx")
    at = pos(MAIN, "question = question)", 2)
    found = await _result(
        raw,
        "textDocument/selectionRange",
        {"textDocument": {"uri": uri}, "positions": [{"line": at.line, "character": at.character}]},
    )
    chain = []
    node = found[0]
    while node is not None:
        chain.append(_slice(MAIN, node["range"]))
        node = node.get("parent")
    assert chain[:4] == [
        "question",
        "context = hits, question = question",
        "(context = hits, question = question)",
        "pred = answer(context = hits, question = question)",
    ]
    assert chain[-2].startswith("// Two comment lines") and chain[-2].endswith("}")
    assert chain[-1] == MAIN
    assert all(inner in outer for inner, outer in itertools.pairwise(chain))


def _slice(text: str, rng: dict[str, Any]) -> str:
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    a = starts[rng["start"]["line"]] + rng["start"]["character"]
    b = (
        starts[rng["end"]["line"]] + rng["end"]["character"]
        if rng["end"]["line"] < len(starts)
        else len(text)
    )
    return text[a:b]
