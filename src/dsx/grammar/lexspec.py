"""The lexical spec of .dsx, declared once: token patterns, comments, top-level keywords
and where a top-level block starts.

The lexer, the block splitter, the formatter and the language server's scanners all read
these patterns, so they agree on what is a string (a keyword at column 0 *inside* a
triple-quoted string does not start a declaration) and what is a comment.
"""

from __future__ import annotations

import re

__all__ = [
    "BLOCK_START",
    "COMMENT",
    "NAME",
    "NUMBER",
    "OPEN_LINE_STRING",
    "OPEN_TRIPLE_STRING",
    "STRING",
    "TOP_KEYWORDS",
    "UNSUPPORTED_STATEMENTS",
    "block_starts",
    "declared_name",
    "names_outside_strings",
    "unsupported_message",
]

#: A string literal: ``\"\"\"...\"\"\"`` over several lines, or ``"..."`` on one line.
STRING = r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"'
#: A line comment (``//``, and ``///`` doc comments). See docs/language.md, "Comments".
COMMENT = r"//[^\n]*"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
#: A ``"""`` string as the editor sees it while it is typed: unterminated, it runs to the
#: end of the text (the language server's scanners; the parser reports it instead).
OPEN_TRIPLE_STRING = r'"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\Z)'
#: A one-line string as the editor sees it: unterminated, it ends with its line.
OPEN_LINE_STRING = r'"(?:[^"\\\n]|\\.)*"?'

#: Keywords that begin a top-level declaration.
TOP_KEYWORDS = (
    "use",
    "import",
    "signature",
    "type",
    "enum",
    "module",
    "program",
    "data",
    "metric",
    "optimize",
    "test",
    "lm",
    "retriever",
)
#: A top-level block starts at column 0 with a keyword followed by a name or a string.
BLOCK_START = r"^(?:" + "|".join(TOP_KEYWORDS) + r")[ \t]+[A-Za-z_\"]"

_START = re.compile(BLOCK_START, re.M)
_TRIPLE = '"' * 3
# Only a `"""` string can hold a line start; comments and strings are consumed whole so that
# a `"""` inside a comment or a one-line string does not open one. Other text is skipped in
# large steps.
_STRINGS = re.compile(rf'[^"/]+|(?P<str>{STRING})|{COMMENT}|["/]')


def block_starts(text: str) -> list[int]:
    """Offsets where top-level declarations start, outside strings and comments.

    An unterminated triple-quoted string is not treated as a string (the rest of the
    file would be swallowed while the user types it).
    """
    starts = [m.start() for m in _START.finditer(text)]
    if not starts or _TRIPLE not in text:
        return starts
    inside: list[tuple[int, int]] = [
        m.span() for m in _STRINGS.finditer(text) if m.lastgroup == "str" and "\n" in m.group()
    ]
    if not inside:
        return starts
    kept, i = [], 0
    for start in starts:
        while i < len(inside) and inside[i][1] <= start:
            i += 1
        if i < len(inside) and inside[i][0] < start:
            continue  # inside a multi-line string
        kept.append(start)
    return kept


#: Python statements .dsx does not have, and what to write instead. The parser names them
#: (instead of "expected `:`" somewhere after them), and so does the checker for one
#: that parsed as a name (`elif x { }`). (`with` is not listed: optimize blocks use it.)
UNSUPPORTED_STATEMENTS = {
    "try": "a failed `assert` retries the predictor; handle exceptions in Python (`use python`)",
    "except": "handle exceptions in Python (`use python`)",
    "finally": "handle exceptions in Python (`use python`)",
    "elif": "write `else if`",
    "def": "define functions in Python and reach them with `use python`",
    "class": "declare a `type` (a record) or a `module`",
    "lambda": "define functions in Python and reach them with `use python`",
    "raise": 'use `assert cond, "message"`',
    "pass": "leave the block empty: `{ }`",
}


def unsupported_message(keyword: str) -> str:
    """What to say about a Python statement keyword that .dsx does not have."""
    what = "definition" if keyword in ("def", "class", "lambda") else "statement"
    return (
        f"`{keyword}` is not supported in .dsx (a Python {what}): "
        + UNSUPPORTED_STATEMENTS[keyword]
    )


_HEAD = re.compile(
    rf"(?:\s|{COMMENT})*"
    rf"(?:use[ \t]+python[ \t]+(?:{STRING})[ \t]+as[ \t]+(?P<alias>{NAME})"
    rf"|(?P<kw>{'|'.join(TOP_KEYWORDS)})[ \t]+(?P<name>{NAME}))"
)
_WORDS = re.compile(rf"{STRING}|{COMMENT}|(?P<name>{NAME})")


def declared_name(block_text: str) -> str | None:
    """The name a top-level block declares, read from its first words (so that a block
    that does not parse still says what it declares)."""
    m = _HEAD.match(block_text)
    if m is None:
        return None
    return m.group("alias") or m.group("name")


def names_outside_strings(text: str) -> set[str]:
    """Every identifier in ``text`` outside strings and comments."""
    return {m.group("name") for m in _WORDS.finditer(text) if m.group("name")}
