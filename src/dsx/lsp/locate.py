"""What is at an offset: the symbol a name defines or refers to, and every occurrence of a
symbol in an analysis. Shared by hover, definition, references, rename and highlights."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from dsx.compiler.analysis import Analysis
from dsx.compiler.symbols import Symbol
from dsx.grammar import lexspec

__all__ = ["Hit", "Occurrence", "at", "identity", "occurrences", "word_at"]

_WORD = re.compile(lexspec.NAME)


@dataclass(frozen=True, slots=True)
class Hit:
    """A name at the cursor: its span in the file, and the symbol it means."""

    start: int
    end: int
    symbol: Symbol
    is_definition: bool


@dataclass(frozen=True, slots=True)
class Occurrence:
    path: str
    start: int
    end: int
    is_definition: bool


class _Index:
    """Definitions and references of one file of an analysis, sorted by start."""

    __slots__ = ("defs", "ends", "keys", "starts")

    def __init__(self, analysis: Analysis, path: str) -> None:
        items: list[tuple[int, int, str, bool]] = []
        for sym in analysis.symbols.values():
            if sym.span.file == path:
                items.append((sym.span.start, sym.span.end, sym.key, True))
        for ref in analysis.references:
            if ref.span.file == path and ref.key in analysis.symbols:
                items.append((ref.span.start, ref.span.end, ref.key, False))
        items.sort()
        self.starts = [i[0] for i in items]
        self.ends = [i[1] for i in items]
        self.keys = [i[2] for i in items]
        self.defs = [i[3] for i in items]


_CACHE_SIZE = 16
_indexes: dict[tuple[int, str], tuple[Analysis, int, _Index]] = {}


def _index(analysis: Analysis, path: str) -> _Index:
    # Keyed by identity (an Analysis is neither hashable nor weakly referable); the entry
    # holds the analysis, so its id cannot be reused while cached. The reference list can
    # change size in place (incremental re-checks), hence the stamp.
    stamp = len(analysis.references) * 1_000_003 + len(analysis.symbols)
    cached = _indexes.get((id(analysis), path))
    if cached is not None and cached[0] is analysis and cached[1] == stamp:
        return cached[2]
    if len(_indexes) >= _CACHE_SIZE:
        del _indexes[next(iter(_indexes))]
    index = _Index(analysis, path)
    _indexes[(id(analysis), path)] = (analysis, stamp, index)
    return index


def at(analysis: Analysis, path: str, offset: int) -> Hit | None:
    """The symbol defined or referred to by the name touching ``offset`` in ``path``."""
    idx = _index(analysis, path)
    i = bisect.bisect_right(idx.starts, offset) - 1
    # Spans do not nest, but a reference may sit right after another (`a.b`): prefer the
    # one containing the offset, then one ending exactly at it (cursor after a name).
    best: int | None = None
    j = i
    while j >= 0 and idx.starts[j] <= offset and j >= i - 3:
        if idx.starts[j] <= offset < idx.ends[j]:
            best = j
            break
        if idx.ends[j] == offset and best is None:
            best = j
        j -= 1
    if best is None:
        return None
    sym = analysis.symbols.get(idx.keys[best])
    if sym is None:
        return None
    return Hit(idx.starts[best], idx.ends[best], sym, idx.defs[best])


def identity(sym: Symbol) -> tuple[str, str, int]:
    """What makes two symbols of two analyses the same: key and where it is defined."""
    return (sym.key, sym.span.file, sym.span.start)


def occurrences(analysis: Analysis, target: tuple[str, str, int]) -> list[Occurrence]:
    """Every definition and reference of the symbol ``target`` (see :func:`identity`)."""
    key = target[0]
    sym = analysis.symbols.get(key)
    if sym is None or identity(sym) != target:
        return []
    out = [Occurrence(sym.span.file, sym.span.start, sym.span.end, True)]
    for ref in analysis.references:
        if ref.key == key:
            out.append(Occurrence(ref.span.file, ref.span.start, ref.span.end, False))
    return out


def word_at(text: str, offset: int) -> tuple[int, int, str] | None:
    """The identifier touching ``offset`` in ``text``."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    end = offset
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    if start == end:
        return None
    m = _WORD.fullmatch(text, start, end)
    if m is None:
        return None
    return start, end, m.group()
