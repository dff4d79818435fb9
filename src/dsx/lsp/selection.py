"""Selection ranges (expand / shrink selection): the name under the cursor, then each
enclosing bracket's contents and the bracket itself (a call's arguments, a ``forward``
body, a signature's fields...), the line, the whole declaration, the file."""

from __future__ import annotations

import re

from lsprotocol import types

from dsx.grammar import lexspec
from dsx.grammar.parser import split_blocks
from dsx.lsp import locate
from dsx.lsp.state import Document, Session

__all__ = ["selection_ranges"]

_TOKEN = re.compile(
    rf"(?P<str3>{lexspec.OPEN_TRIPLE_STRING})|(?P<str>{lexspec.OPEN_LINE_STRING})"
    rf"|(?P<comment>{lexspec.COMMENT})|(?P<open>[{{(\[])|(?P<close>[}})\]])",
    re.S,
)


def selection_ranges(
    session: Session, doc: Document, positions: list[types.Position]
) -> list[types.SelectionRange]:
    codec = doc.codec(session.encoding)
    text = doc.text
    blocks = split_blocks(text)
    out = []
    for position in positions:
        offset = codec.offset(position)
        spans = _spans(text, blocks, offset)
        parent: types.SelectionRange | None = None
        for start, end in reversed(spans):  # outermost first
            parent = types.SelectionRange(range=codec.range(start, end), parent=parent)
        assert parent is not None
        out.append(parent)
    return out


def _spans(text: str, blocks: list[tuple[int, int]], offset: int) -> list[tuple[int, int]]:
    """Nested spans around ``offset``, innermost first, each strictly inside the next."""
    found: list[tuple[int, int]] = []
    word = locate.word_at(text, offset)
    if word is not None:
        found.append((word[0], word[1]))
    block = next(((s, e) for s, e in blocks if s <= offset < e), None)
    if block is None and blocks:
        block = blocks[-1]
    if block is not None:
        start, end = block
        stack: list[int] = []
        pairs: list[tuple[int, int]] = []
        for m in _TOKEN.finditer(text, start, end):
            kind = m.lastgroup
            if kind in ("str", "str3") and m.start() <= offset <= m.end():
                found.append((m.start(), m.end()))
            elif kind == "open":
                stack.append(m.start())
            elif kind == "close" and stack:
                opened = stack.pop()
                if opened < offset <= m.start():
                    pairs.append((opened, m.end()))
        for opened, closed in sorted(pairs, key=lambda p: p[1] - p[0]):
            found.append(_strip(text, opened + 1, closed - 1))
            found.append((opened, closed))
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        found.append(_strip(text, line_start, len(text) if line_end < 0 else line_end))
        found.append(_strip(text, start, end))
    found.append((0, len(text)))
    # Keep each span that contains the one before it and is larger.
    out: list[tuple[int, int]] = []
    for span in sorted(found, key=lambda s: (s[1] - s[0], -s[0])):
        if span[0] > offset or span[1] < offset:
            continue
        if out and (span == out[-1] or not (span[0] <= out[-1][0] and out[-1][1] <= span[1])):
            continue
        out.append(span)
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
