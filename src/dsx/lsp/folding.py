"""Folding ranges: every multi-line ``{...}``, ``(...)`` and ``[...]`` (declarations,
``forward`` bodies, ``if``/``for`` blocks, long calls and lists), multi-line strings, runs
of comment lines and of ``use``/``import`` lines.

Computed per top-level block; a block an edit left alone (same text, same first line)
keeps its ranges from the last answer.
"""

from __future__ import annotations

import re

from lsprotocol import types

from dsx.grammar import lexspec
from dsx.grammar.parser import split_blocks
from dsx.lsp.state import Document, Session

__all__ = ["folding_ranges"]

_TOKEN = re.compile(
    rf"(?P<str3>{lexspec.OPEN_TRIPLE_STRING})|(?P<str>{lexspec.OPEN_LINE_STRING})"
    rf"|(?P<comment>{lexspec.COMMENT})|(?P<open>[{{(\[])|(?P<close>[}})\]])|(?P<nl>\n)",
    re.S,
)
_IMPORT = re.compile(r"(?:use|import)\b")
FRK = types.FoldingRangeKind

Fold = tuple[int, int, str | None]  # (first line, last line, kind) relative to the block


def folding_ranges(session: Session, doc: Document) -> list[types.FoldingRange]:
    done = doc.extras.get("folding_result")
    if isinstance(done, tuple) and done[0] == (doc.revision, doc.text):
        return list(done[1])
    text = doc.text
    codec = doc.codec(session.encoding)
    previous = doc.extras.get("folding")
    last: dict[tuple[str, int], list[Fold]] = previous if isinstance(previous, dict) else {}
    cache: dict[tuple[str, int], list[Fold]] = {}
    out: list[types.FoldingRange] = []
    imports: list[int] = []
    for start, end in split_blocks(text):
        block = text[start:end]
        first = codec.line_of(start)
        key = (block, first)
        folds = last.get(key)
        if folds is None:
            folds = _block_folds(block)
        cache[key] = folds
        for a, b, kind in folds:
            out.append(types.FoldingRange(start_line=first + a, end_line=first + b, kind=kind))
        if _IMPORT.match(block):
            imports.append(first)
        elif imports:
            out.extend(_import_run(imports))
            imports = []
    out.extend(_import_run(imports))
    doc.extras["folding"] = cache
    out.sort(key=lambda r: (r.start_line, -r.end_line))
    doc.extras["folding_result"] = ((doc.revision, text), out)
    return list(out)


def _import_run(lines: list[int]) -> list[types.FoldingRange]:
    if len(lines) < 2:
        return []
    return [types.FoldingRange(start_line=lines[0], end_line=lines[-1], kind=FRK.Imports)]


def _block_folds(block: str) -> list[Fold]:
    folds: list[Fold] = []
    stack: list[int] = []
    line = 0
    comments: list[int] = []  # lines of the current run of comment lines
    line_has_code = False

    def end_comments() -> None:
        if len(comments) >= 2:
            folds.append((comments[0], comments[-1], FRK.Comment))
        comments.clear()

    for m in _TOKEN.finditer(block):
        kind = m.lastgroup
        if kind == "nl":
            line += 1
            line_has_code = False
            continue
        if kind == "comment":
            if not line_has_code:
                if comments and comments[-1] != line - 1:
                    end_comments()
                comments.append(line)
            continue
        if comments:
            end_comments()  # code after a run of comment lines ends it
        line_has_code = True
        if kind == "str3":
            lines = m.group().count("\n")
            if lines:
                folds.append((line, line + lines, None))
                line += lines
        elif kind == "open":
            stack.append(line)
        elif kind == "close" and stack:
            opened = stack.pop()
            # Fold up to the line before the closing bracket, which stays visible.
            if line - 1 > opened:
                folds.append((opened, line - 1, FRK.Region))
    end_comments()
    return folds
