"""The outline after edits equals the outline of the same text opened afresh.

Each block's symbol is kept between edits and moved when lines above it are added or
removed; a stale line number here would send "go to symbol" to the wrong place."""

from __future__ import annotations

import json
import random
from pathlib import Path

from lsprotocol import types

from dsx.lsp import outline
from dsx.lsp.state import Session

ROOT = Path(__file__).resolve().parents[2]
URI = "file:///tmp/outline_cache.dsx"


def _fresh(text: str) -> object:
    session = Session()
    return json.loads(outline.document_symbols_json(session, session.open(URI, text, 1)).text)


def test_the_outline_after_line_edits_equals_a_fresh_one():
    text = (ROOT / "examples" / "multihop.dsx").read_text(encoding="utf-8")
    text += "\n" + text.replace("MultiHop", "Other").replace("multihop", "other")
    session = Session()
    doc = session.open(URI, text, 1)
    outline.document_symbols_json(session, doc)
    rng = random.Random(3)
    moved = 0
    for version in range(2, 50):
        lines = doc.text.split("\n")
        i = rng.randrange(len(lines))
        action = rng.choice(["blank", "comment", "drop", "space"])
        if action == "blank":
            lines.insert(i, "")
        elif action == "comment":
            lines.insert(i, "// a note")
        elif action == "drop" and not lines[i].strip():
            del lines[i]
        else:
            lines[i] += " "
        new_text = "\n".join(lines)
        moved += new_text.count("\n") != doc.text.count("\n")
        session.change(URI, [types.TextDocumentContentChangeWholeDocument(text=new_text)], version)
        doc = session.get(URI)
        got = json.loads(outline.document_symbols_json(session, doc).text)
        assert got == _fresh(new_text), (version, action, i)
        objects = outline.document_symbols(session, doc)
        assert [s.range.start.line for s in objects] == [s["range"]["start"]["line"] for s in got]
    assert moved > 10  # the edits did move blocks
