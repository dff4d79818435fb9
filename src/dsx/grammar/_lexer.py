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

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text_slice = lexer_state.text
        text = text_slice.text
        end = text_slice.end
        ctr = lexer_state.line_ctr
        pos = ctr.char_pos
        match = self.pattern.match
        keywords, punct, special = self.keywords, self.punct, self.special
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
            elif kind == "op":
                kind = punct[value]
            token = Token(kind, value, start, None, None, None, None, pos)  # type: ignore[arg-type]
            lexer_state.last_token = token
            yield token
