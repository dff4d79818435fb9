"""The position codec: code-point offsets <-> 0-based LSP positions in UTF-16 (and the
UTF-8 / UTF-32 encodings a client may negotiate)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from lsprotocol.types import Position, Range

from dsx.lsp.codec import PositionCodec

TEXT = "ab\n😀x\né\r\nlast"


def test_ascii_positions_and_offsets():
    codec = PositionCodec("abc\ndef\n")
    assert codec.position(0) == Position(line=0, character=0)
    assert codec.position(5) == Position(line=1, character=1)
    assert codec.position(8) == Position(line=2, character=0)
    assert codec.offset(Position(line=1, character=2)) == 6
    assert codec.line_count == 3


def test_utf16_counts_surrogate_pairs_as_two_units():
    codec = PositionCodec(TEXT)
    x = TEXT.index("x")
    assert codec.position(x) == Position(line=1, character=2)
    assert codec.offset(Position(line=1, character=2)) == x
    assert codec.range(3, x + 1) == Range(
        start=Position(line=1, character=0), end=Position(line=1, character=3)
    )


def test_utf8_and_utf32():
    x = TEXT.index("x")
    assert PositionCodec(TEXT, "utf-8").position(x) == Position(line=1, character=4)
    assert PositionCodec(TEXT, "utf-8").offset(Position(line=1, character=4)) == x
    assert PositionCodec(TEXT, "utf-32").position(x) == Position(line=1, character=1)
    e_end = TEXT.index("é") + 1
    assert PositionCodec(TEXT, "utf-8").position(e_end) == Position(line=2, character=2)


def test_positions_clamp_as_lsp_requires():
    codec = PositionCodec(TEXT)
    # past the end of a line: the line's end, before \r\n
    assert codec.offset(Position(line=2, character=99)) == TEXT.index("\r")
    # past the last line: the end of the text
    assert codec.offset(Position(line=99, character=0)) == len(TEXT)
    assert codec.position(10_000) == codec.position(len(TEXT))


def test_every_lsp_line_break_counts():
    codec = PositionCodec("a\rb\r\nc\nd")
    assert [codec.position(i).line for i in (0, 2, 5, 7)] == [0, 1, 2, 3]
    assert codec.offset(Position(line=1, character=9)) == 3  # before \r\n
    assert codec.line_count == 4


def test_lone_surrogates_do_not_break_the_codec():
    text = "a\ud800b"
    codec = PositionCodec(text)
    assert codec.position(3) == Position(line=0, character=3)
    assert codec.offset(Position(line=0, character=2)) == 2


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), st.data())
def test_round_trip(text: str, data: st.DataObject):
    for encoding in ("utf-16", "utf-8", "utf-32"):
        codec = PositionCodec(text, encoding)  # type: ignore[arg-type]
        offset = data.draw(st.integers(0, len(text)))
        if offset > 0 and text[offset - 1 : offset + 1] == "\r\n":
            continue  # between \r and \n is not a position an editor can name
        assert codec.offset(codec.position(offset)) == offset
