"""One lexical spec (dsx.grammar.lexspec) for the parser, the formatter and the language
server (issue 16): on any text they agree on what is a string or a comment, so a brace or a
keyword inside one is never taken for code by one of them and not the others."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dsx.compiler import formatter
from dsx.grammar import lexspec
from dsx.lsp import context, folding, selection

# Pieces of text, each with the offsets of its braces that are code (outside strings).
_CHARS = st.sampled_from(list("ab {}/\\'#"))
_INNER = st.text(_CHARS, max_size=6).map(lambda t: t.replace("\\", "\\\\"))
_PIECES = st.one_of(
    st.sampled_from(["{", "}", " ", "\n", "x", "use a", "(", ")"]).map(
        lambda t: (t, [i for i, ch in enumerate(t) if ch in "{}"])
    ),
    _INNER.map(lambda t: (f'"{t}"', [])),  # a one-line string holding braces and //
    st.lists(_INNER, min_size=1, max_size=3).map(
        lambda lines: ('"""' + "\n".join(lines) + '"""', [])  # over several lines
    ),
    _INNER.map(lambda t: ("// " + t.replace('"', "") + "\n", [])),  # a comment
)


@st.composite
def texts(draw):
    text, braces = "", []
    for piece, offsets in draw(st.lists(_PIECES, max_size=12)):
        braces += [len(text) + i for i in offsets]
        text += piece + " "  # apart: `""` then `"x"` would read as `""""x"`
    return text, braces


def _braces(pattern, text, groups=("open", "close")) -> list[int]:
    return [
        m.start()
        for m in pattern.finditer(text)
        if (m.lastgroup in groups if m.lastgroup else m.group() in "{}") and m.group() in "{}"
    ]


@settings(max_examples=300, deadline=None)
@given(texts())
def test_every_scanner_finds_the_same_code_braces(drawn):
    text, braces = drawn
    assert _braces(formatter._SCAN, text, groups=()) == braces
    assert _braces(selection._TOKEN, text) == braces
    assert _braces(folding._TOKEN, text) == braces
    assert _braces(context._TOKEN, text, groups=("op",)) == braces


def test_the_scanners_are_built_from_the_spec():
    # A change to the spec reaches every scanner (none keeps a copy of a pattern).
    for pattern in (selection._TOKEN, folding._TOKEN, context._TOKEN):
        assert lexspec.OPEN_TRIPLE_STRING in pattern.pattern
        assert lexspec.OPEN_LINE_STRING in pattern.pattern
        assert lexspec.COMMENT in pattern.pattern
    assert lexspec.STRING in formatter._SCAN.pattern


def test_a_keyword_line_inside_a_string_starts_no_block():
    text = (
        'signature S {\n    """\nuse the context only.\n"""\n    in q: str\n}\ntype T { a: str }\n'
    )
    assert lexspec.block_starts(text) == [0, text.index("type T")]
