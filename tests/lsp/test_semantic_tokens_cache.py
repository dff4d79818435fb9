"""Semantic tokens after edits equal the tokens of the same text analysed afresh.

The server keeps each block's converted tokens between edits (only the lines above a
block may move); these edits would leave stale tokens behind if a block were reused when
its tokens changed: a line added above, a declaration changing kind (its uses in blocks
the edit left alone change colour), a declaration removed (its uses lose theirs), non-ASCII
text before tokens (UTF-16 columns).

Only edits after which every block parses: while a block does not parse, the editor keeps
its last meaning on purpose, which a fresh analysis cannot know.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from lsprotocol import types

from dsx.lsp import semantic_tokens
from dsx.lsp.state import Session

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """\
/// Answer questions.
signature QA {
    in  question: str
    out answer: str
}

type Note {
    text: str
}

module Answerer {
    answer = ChainOfThought(QA)

    forward(question: str) {
        draft = answer(question = question)
        return draft
    }
}

program qa = Answerer()
"""

URI = "file:///tmp/tokens_cache.dsx"


def _fresh(text: str) -> list[semantic_tokens.Token]:
    session = Session()
    return semantic_tokens.tokens(session, session.open(URI, text, 1))


def _replace(session: Session, doc, old: str, new: str, version: int) -> None:
    start = doc.text.index(old)
    codec = doc.codec(session.encoding)
    change = types.TextDocumentContentChangePartial(
        range=types.Range(start=codec.position(start), end=codec.position(start + len(old))),
        text=new,
    )
    session.change(doc.uri, [change], version)


EDITS = [
    ("signature QA {", "// a line above\nsignature QA {"),  # every block below moves
    # QA becomes a record type: its uses in the module (left alone) change kind
    (
        "signature QA {\n    in  question: str\n    out answer: str\n}",
        "type QA {\n    question: str\n}",
    ),
    (
        "type QA {\n    question: str\n}",
        "signature QA {\n    in  question: str\n    out answer: str\n}",
    ),
    ("/// Answer questions.", "/// Réponds — aux questions ✓."),  # UTF-16 columns
    ("signature QA {", "signature QB {"),  # QA's uses lose their token
    ("signature QB {", "signature QA {"),
    ("        return draft", "        note = draft\n        return note"),
    ("program qa = Answerer()", "program qa = Answerer()  // one line: no token after it"),
    ("type Note {\n    text: str\n}\n\n", ""),  # a block removed
]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_tokens_after_each_edit_equal_a_fresh_analysis(encoding):
    session = Session()
    session.encoding = encoding
    doc = session.open(URI, PROGRAM, 1)
    assert semantic_tokens.tokens(session, doc)
    for version, (old, new) in enumerate(EDITS, start=2):
        _replace(session, doc, old, new, version)
        doc = session.get(URI)
        fresh_session = Session()
        fresh_session.encoding = encoding
        fresh = semantic_tokens.tokens(fresh_session, fresh_session.open(URI, doc.text, 1))
        assert semantic_tokens.tokens(session, doc) == fresh, (old, new)
        # the answer's encoding is joined from each block's: the same as encoding them all
        encoded = semantic_tokens.semantic_tokens(session, doc).data
        assert encoded == semantic_tokens.encode(fresh), (old, new)


def test_random_line_edits_on_an_example_match_a_fresh_analysis():
    text = (ROOT / "examples" / "multihop.dsx").read_text(encoding="utf-8")
    session = Session()
    doc = session.open(URI, text, 1)
    semantic_tokens.tokens(session, doc)
    rng = random.Random(7)
    for version in range(2, 40):
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
        session.change(URI, [types.TextDocumentContentChangeWholeDocument(text=new_text)], version)
        doc = session.get(URI)
        fresh = _fresh(new_text)
        encoded = semantic_tokens.semantic_tokens(session, doc).data
        assert encoded == semantic_tokens.encode(fresh), (version, action, i)
        assert semantic_tokens.tokens(session, doc) == fresh, (version, action, i)
