"""A name a comprehension binds is a local of its own: hover shows its type, rename
changes it and its uses only (not a same-named local elsewhere), and semantic tokens
colour it (issue 16: comprehension-bound names had no symbol)."""

from __future__ import annotations

from lsprotocol import types

from dsx.lsp import hover, rename, semantic_tokens
from dsx.lsp.state import Session

TEXT = """\
signature QA {
    in  question: str
    out answer: str
}

module M {
    answer = Predict(QA)

    forward(words: list[str]) {
        x = "kept"
        loud = [x.upper() for x in words if x != ""]
        return answer(question = join(loud) + x)
    }
}

program p = M()
"""
URI = "file:///tmp/comprehension_names.dsx"


def _at(needle: str, skip: int = 0) -> tuple[int, int]:
    offset = -1
    for _ in range(skip + 1):
        offset = TEXT.index(needle, offset + 1)
    before = TEXT[:offset]
    return before.count("\n"), offset - (before.rfind("\n") + 1)


def _session():
    session = Session()
    return session, session.open(URI, TEXT, 1)


def test_hover_on_a_comprehension_name_shows_its_type():
    session, doc = _session()
    line, col = _at("x.upper")
    found = hover.hover(session, doc, types.Position(line=line, character=col))
    assert found is not None
    assert "x: str" in str(found.contents)


def test_rename_changes_the_comprehension_name_and_its_uses_only():
    session, doc = _session()
    line, col = _at("x in words")
    edit = rename.rename(session, doc, types.Position(line=line, character=col), "word")
    assert edit is not None and edit.changes is not None
    changed = sorted((e.range.start.line, e.range.start.character) for e in edit.changes[URI])
    # `x.upper()`, `for x`, `x != ""` — not `x = "kept"` nor the `+ x` after it
    assert changed == sorted([_at("x.upper"), _at("x in words"), _at('x != ""')])


def test_the_comprehension_name_is_a_variable_token():
    session, doc = _session()
    variable = semantic_tokens.TOKEN_TYPES.index("variable")
    found = {
        (line, col) for line, col, _, t, _ in semantic_tokens.tokens(session, doc) if t == variable
    }
    assert {_at("x.upper"), _at("x in words"), _at('x != ""')} <= found
