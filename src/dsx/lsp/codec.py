"""Offsets ↔ LSP positions: the one place where code-point offsets become 0-based lines and
UTF-16 (or the negotiated UTF-8 / UTF-32) columns, and back.

The front end counts characters (code points) from the start of a file; LSP counts lines
from 0 and columns in UTF-16 code units unless client and server agreed on another
encoding. A :class:`PositionCodec` is built once per text and answers in O(log lines).
"""

from __future__ import annotations

import bisect
import re
from typing import Literal

from lsprotocol import types

__all__ = ["Encoding", "PositionCodec"]

#: LSP line breaks: ``\r\n``, ``\n`` and a lone ``\r``.
_LINE_BREAK = re.compile(r"\r\n?|\n")

Encoding = Literal["utf-8", "utf-16", "utf-32"]


class PositionCodec:
    """Converts between character offsets into ``text`` and LSP positions.

    Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``, as LSP defines them. Positions past
    the end of a line clamp to the line's end; lines past the end clamp to the end of the
    text, as LSP asks.
    """

    __slots__ = ("_ascii", "_line_starts", "encoding", "text")

    def __init__(self, text: str, encoding: Encoding = "utf-16") -> None:
        self.text = text
        self.encoding = encoding
        if "\r" in text:
            starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]
        else:
            starts = [0]
            find = text.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
        self._line_starts = starts
        # Whole-text ASCII check once: most files are, and then units == code points.
        self._ascii = text.isascii() or encoding == "utf-32"

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    def line_start(self, line: int) -> int:
        return self._line_starts[max(0, min(line, len(self._line_starts) - 1))]

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line`` (before its line break)."""
        line = max(0, min(line, len(self._line_starts) - 1))
        if line + 1 >= len(self._line_starts):
            return len(self.text)
        end = self._line_starts[line + 1] - 1
        if self.text[end] == "\n" and end > self._line_starts[line] and self.text[end - 1] == "\r":
            end -= 1
        return end

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._line_starts, offset) - 1

    def _units(self, s: str) -> int:
        if self.encoding == "utf-16":
            return len(s.encode("utf-16-le", "surrogatepass")) // 2
        if self.encoding == "utf-8":
            return len(s.encode("utf-8", "surrogatepass"))
        return len(s)

    def position(self, offset: int) -> types.Position:
        """The LSP position of character ``offset`` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        start = self._line_starts[line]
        if self._ascii:
            return types.Position(line=line, character=offset - start)
        segment = self.text[start:offset]
        if segment.isascii():
            return types.Position(line=line, character=offset - start)
        return types.Position(line=line, character=self._units(segment))

    def line_col(self, offset: int) -> tuple[int, int]:
        """``(line, column)`` of ``offset``, as :meth:`position` (without building one)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        start = self._line_starts[line]
        if self._ascii:
            return line, offset - start
        segment = self.text[start:offset]
        return line, offset - start if segment.isascii() else self._units(segment)

    def offset(self, position: types.Position) -> int:
        """The character offset of an LSP ``position`` (clamped as LSP specifies)."""
        line, character = position.line, position.character
        if line < 0:
            return 0
        if line >= len(self._line_starts):
            return len(self.text)
        start = self._line_starts[line]
        end = self.line_end(line)
        if character <= 0:
            return start
        if self._ascii:
            return min(start + character, end)
        text = self.text[start:end]
        if text.isascii():
            return min(start + character, end)
        units = 0
        for i, ch in enumerate(text):
            if units >= character:
                return start + i
            code = ord(ch)
            if self.encoding == "utf-16":
                units += 2 if code > 0xFFFF else 1
            elif self.encoding == "utf-8":
                units += 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
            else:
                units += 1
        return end

    def range(self, start: int, end: int) -> types.Range:
        return types.Range(start=self.position(start), end=self.position(max(start, end)))

    def to_offsets(self, rng: types.Range) -> tuple[int, int]:
        start, end = self.offset(rng.start), self.offset(rng.end)
        return (start, end) if start <= end else (end, start)
