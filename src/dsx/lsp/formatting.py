"""Formatting: the ``dsx fmt`` formatter, as one minimal text edit."""

from __future__ import annotations

from lsprotocol import types

from dsx.compiler.formatter import format_source
from dsx.lsp.state import Document, Session

__all__ = ["format_document"]


def format_document(session: Session, doc: Document) -> list[types.TextEdit]:
    """Edits turning the document into its canonical formatting (``[]`` when it is).

    Blocks with syntax errors are kept as written, so formatting a file while typing is
    safe. The edit covers only the changed middle of the text, which keeps the cursor and
    undo history steady in the editor.
    """
    text = doc.text
    formatted = format_source(text, doc.path)
    if formatted == text:
        return []
    prefix = 0
    limit = min(len(text), len(formatted))
    while prefix < limit and text[prefix] == formatted[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < limit - prefix
        and text[len(text) - 1 - suffix] == formatted[len(formatted) - 1 - suffix]
    ):
        suffix += 1
    # An LSP position cannot point between \r and \n: widen the edit to whole line breaks.
    if 0 < prefix < len(text) and text[prefix - 1] == "\r" and text[prefix] == "\n":
        prefix -= 1
    end = len(text) - suffix
    if 0 < end < len(text) and text[end - 1] == "\r" and text[end] == "\n" and suffix > 0:
        suffix -= 1
    codec = doc.codec(session.encoding)
    return [
        types.TextEdit(
            range=codec.range(prefix, len(text) - suffix),
            new_text=formatted[prefix : len(formatted) - suffix],
        )
    ]
