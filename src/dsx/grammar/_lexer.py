"""A single-regex lexer for the .dsx grammar, plugged into Lark's LALR parser.

Lark's contextual lexer tries terminals state by state; .dsx tokens are simple enough for
one master regular expression, which lexes about three times faster. Keywords are always
lexed as keywords; where the parser wants a name instead, the parser's error hook turns the
keyword back into a name (soft keywords, see ``parser.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import Lexer, LexerState

from dsx.grammar import lexspec

__all__ = ["DsxLexer"]

_IDENT = re.compile(rf"{lexspec.NAME}\Z")
_SCAN = re.compile(rf"{lexspec.STRING}|{lexspec.COMMENT}|(?P<tok>[{{}}()\[\]]|\belse\b)")


def _else_before_block(text: str, pos: int, end: int) -> bool:
    """Whether the `if` before ``pos`` is a conditional's: an ``else`` comes before any
    ``{`` or ``}`` outside brackets (an ``if`` statement's block opens with ``{`` first)."""
    depth = 0
    for m in _SCAN.finditer(text, pos, end):
        tok = m.group("tok")
        if tok is None:
            continue
        if tok in "([":
            depth += 1
        elif tok in ")]":
            depth -= 1
            if depth < 0:
                return False
        elif not depth:
            return tok == "else"
    return False


# Words after which an `if` starts a statement, not a conditional.
_NOT_OPERANDS = frozenset({"else", "break", "continue", "if", "return", "not", "and", "or"})


class DsxLexer(Lexer):
    """Lexes with one compiled pattern; terminal names come from the grammar."""

    __future_interface__ = 2
    _master: ClassVar[re.Pattern[str] | None] = None

    def __init__(self, lexer_conf: Any) -> None:
        keywords: dict[str, str] = {}
        punct: dict[str, str] = {}
        for term in lexer_conf.terminals:
            if term.pattern.type == "str":
                value = term.pattern.value
                (keywords if _IDENT.match(value) else punct)[value] = term.name
        self.keywords = keywords
        self.punct = punct
        ops = "|".join(re.escape(p) for p in sorted(punct, key=len, reverse=True))
        self.pattern = re.compile(
            rf"(?P<skip>(?:\s+|{lexspec.COMMENT})+)"
            rf"|(?P<STRING>{lexspec.STRING})"
            rf"|(?P<SIGNED_NUMBER>{lexspec.NUMBER})"
            rf"|(?P<NAME>{lexspec.NAME})"
            rf"|(?P<op>{ops})"
        )
        self.names = {
            n for n in ("TRUE", "FALSE", "NONE") if any(t.name == n for t in lexer_conf.terminals)
        }
        self.special = {"true": "TRUE", "false": "FALSE", "none": "NONE"}
        self.inline_if = "INLINE_IF" if "IF" in keywords.values() else None

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text_slice = lexer_state.text
        text = text_slice.text
        end = text_slice.end
        ctr = lexer_state.line_ctr
        pos = ctr.char_pos
        match = self.pattern.match
        keywords, punct, special = self.keywords, self.punct, self.special
        inline_if = self.inline_if
        depth = 0  # open `(` and `[`: no statement starts inside them
        operand_end = False  # the previous token ends an operand on this line
        while pos < end:
            m = match(text, pos, end)
            if m is None:
                raise UnexpectedCharacters(text, pos, ctr.line, ctr.column, state=parser_state)
            kind = m.lastgroup
            value = m.group()
            start = pos
            pos = m.end()
            ctr.char_pos = pos
            if kind == "skip":
                continue
            if kind == "NAME":
                kind = special.get(value) or keywords.get(value, "NAME")
                if (
                    kind == "IF"
                    and inline_if
                    and (depth or (operand_end and _else_before_block(text, pos, end)))
                ):
                    kind = inline_if  # `a if c else b` (see the grammar)
                operand_end = value not in _NOT_OPERANDS
            elif kind == "op":
                kind = punct[value]
                if value in "([":
                    depth += 1
                elif value in ")]":
                    depth = max(0, depth - 1)
                operand_end = value in ")]"
            else:
                operand_end = True
            token = Token(kind, value, start, None, None, None, None, pos)  # type: ignore[arg-type]
            lexer_state.last_token = token
            yield token
