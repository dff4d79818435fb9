"""Where the cursor is, syntactically: the enclosing declaration, the open brackets and what
each opens, and the tokens of the current statement.

Completion runs on text that usually does not parse (the user is typing), so this is a
small tolerant scanner over the current top-level block only — never the whole file.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from dsx.grammar import lexspec
from dsx.grammar.lexspec import TOP_KEYWORDS, block_starts

__all__ = ["Context", "Tok", "scan"]

_TOKEN = re.compile(
    rf"(?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<comment>{lexspec.COMMENT})"
    rf"|(?P<str3>{lexspec.OPEN_TRIPLE_STRING})|(?P<str>{lexspec.OPEN_LINE_STRING})"
    rf"|(?P<name>{lexspec.NAME})|(?P<num>{lexspec.NUMBER})"
    r"|(?P<op>==|!=|<=|>=|->|[{}()\[\],.:=|?+\-*/%<>])|(?P<other>.)",
    re.S,
)
_OPEN = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str  # name | num | str | op | other
    text: str
    start: int  # offset in the file
    line_start: bool  # first token on its line


@dataclass(slots=True)
class Frame:
    """An open bracket: its token index and what it opens."""

    char: str
    index: int
    role: str  # body | forward | stmt | call | params | list | dict | index | type | group
    callee: str | None = None  # for a call: the name before `(`
    callee_is_attr: bool = False  # `a.b(`


@dataclass(slots=True)
class Context:
    block_start: int
    tokens: list[Tok]
    stack: list[Frame]
    partial: str = ""  # the identifier being typed, before the cursor
    partial_start: int = 0
    in_string: Tok | None = None  # an unterminated string the cursor is in
    in_comment: bool = False
    after_dot: bool = False
    at_line_start: bool = False  # nothing before the cursor on its line but the partial
    line_column: int = 0  # column of the partial / cursor
    block_kind: str | None = None
    block_name: str | None = None
    segment: list[Tok] = field(default_factory=list)  # the current statement / argument

    @property
    def top(self) -> Frame | None:
        return self.stack[-1] if self.stack else None

    def in_role(self, *roles: str) -> bool:
        return any(f.role in roles for f in self.stack)


def block_start(text: str, offset: int) -> int:
    """Start of the top-level block containing ``offset`` (see ``split_blocks``)."""
    global _last
    if _last[0] is not text:
        # String-aware (a keyword at column 0 inside a triple-quoted string starts no
        # block), so the whole text is scanned once; completion requests on the same
        # text reuse the result.
        _last = (text, block_starts(text))
    starts = _last[1]
    i = bisect.bisect_right(starts, offset)
    return starts[i - 1] if i else 0


_last: tuple[str | None, list[int]] = (None, [])


def scan(text: str, offset: int) -> Context:
    """The context of the cursor at ``offset`` in ``text``."""
    start = block_start(text, offset)
    # A keyword typed at column 0 of a fresh line would start a block; `sig|` alone is not
    # one yet, so a partial identifier at column 0 is judged on its own line.
    line_begin = text.rfind("\n", 0, offset) + 1
    tokens: list[Tok] = []
    ctx = Context(start, tokens, [])
    pos = start
    newline = True
    while pos < offset:
        m = _TOKEN.match(text, pos, offset)
        if m is None:  # pragma: no cover - `other` matches any character
            break
        kind = m.lastgroup or "other"
        end = m.end()
        if kind == "ws":
            pos = end
            continue
        if kind == "nl":
            newline = True
            pos = end
            continue
        if kind == "comment":
            if end >= offset and text.find("\n", m.start(), offset) < 0:
                ctx.in_comment = True
            pos = end
            continue
        if kind in ("str", "str3"):
            value = m.group()
            closed = len(value) >= (6 if kind == "str3" else 2) and value.endswith(
                '"""' if kind == "str3" else '"'
            )
            tok = Tok("str", value, m.start(), newline)
            if not closed and end >= offset:
                ctx.in_string = tok
                pos = end
                break
            tokens.append(tok)
        else:
            tokens.append(Tok(kind, m.group(), m.start(), newline))
        newline = False
        pos = end
    # The identifier being typed is not a token of the context.
    if ctx.in_string is None and tokens and tokens[-1].kind == "name":
        last = tokens[-1]
        if last.start + len(last.text) == offset:
            ctx.partial, ctx.partial_start = last.text, last.start
            tokens.pop()
    if not ctx.partial:
        ctx.partial_start = offset
    before = text[line_begin : ctx.partial_start]
    ctx.at_line_start = before.strip() == ""
    ctx.line_column = ctx.partial_start - line_begin
    if tokens and tokens[0].kind == "name" and tokens[0].text in TOP_KEYWORDS:
        ctx.block_kind = tokens[0].text
        if len(tokens) > 1 and tokens[1].kind in ("name", "str"):
            ctx.block_name = tokens[1].text
    _brackets(ctx)
    ctx.after_dot = bool(tokens) and tokens[-1].text == "." and tokens[-1].kind == "op"
    ctx.segment = _segment(ctx)
    return ctx


def _brackets(ctx: Context) -> None:
    toks = ctx.tokens
    stack = ctx.stack
    for i, tok in enumerate(toks):
        if tok.kind != "op":
            continue
        ch = tok.text
        if ch in _OPEN:
            stack.append(_frame(ctx, i, ch))
        elif ch in (")", "]", "}"):
            # Pop to the matching opener; tolerate stray closers.
            for j in range(len(stack) - 1, -1, -1):
                if _OPEN[stack[j].char] == ch:
                    del stack[j:]
                    break


def _frame(ctx: Context, i: int, ch: str) -> Frame:
    toks = ctx.tokens
    prev = toks[i - 1] if i > 0 else None
    enclosing = ctx.stack[-1] if ctx.stack else None
    if ch == "{":
        if enclosing is None:
            return Frame(ch, i, "body")
        if prev is not None and prev.text == ")":
            opener = _matching_open(toks, i - 1)
            if opener is not None and opener > 0 and toks[opener - 1].text == "forward":
                return Frame(ch, i, "forward")
        if enclosing.role in ("forward", "stmt"):
            seg = _statement_tokens(toks, enclosing.index, i)
            if seg and seg[0].text in ("if", "for", "else"):
                return Frame(ch, i, "stmt")
            if prev is not None and prev.text == "else":
                return Frame(ch, i, "stmt")
        return Frame(ch, i, "dict")
    if ch == "(":
        if prev is not None and prev.kind == "name":
            if enclosing is None and prev.text == ctx.block_name and ctx.block_kind == "module":
                return Frame(ch, i, "params")
            if prev.text == "forward" and enclosing is not None and enclosing.role == "body":
                return Frame(ch, i, "params")
            is_attr = i > 1 and toks[i - 2].text == "."
            return Frame(ch, i, "call", prev.text, is_attr)
        if prev is not None and prev.text in (")", "]"):
            return Frame(ch, i, "call", None, True)
        return Frame(ch, i, "group")
    # `[`
    if prev is not None and prev.kind == "name" and _in_type(ctx, i):
        return Frame(ch, i, "type")
    if prev is not None and (prev.kind in ("name", "str") or prev.text in (")", "]")):
        return Frame(ch, i, "index")
    return Frame(ch, i, "list")


def _in_type(ctx: Context, i: int) -> bool:
    """Whether the `[` at token ``i`` follows a type name (``list[``) rather than a value:
    inside another type's brackets, or after a `:` of a field or parameter."""
    toks = ctx.tokens
    enclosing = ctx.stack[-1] if ctx.stack else None
    if enclosing is not None and enclosing.role == "type":
        return True
    if enclosing is not None and enclosing.role not in ("body", "params"):
        return False
    lo = enclosing.index + 1 if enclosing is not None else 0
    depth = 0
    for j in range(i - 2, lo - 1, -1):
        t = toks[j]
        if t.text in (")", "]", "}"):
            depth += 1
        elif t.text in ("(", "[", "{"):
            depth -= 1
        elif depth == 0 and t.text == ":":
            return True
        elif depth == 0 and t.text in ("=", ","):
            return False
        if depth == 0 and t.line_start:
            break
    return False


def _matching_open(toks: list[Tok], close: int) -> int | None:
    depth = 0
    for j in range(close, -1, -1):
        t = toks[j].text
        if t in (")", "]", "}"):
            depth += 1
        elif t in ("(", "[", "{"):
            depth -= 1
            if depth == 0:
                return j
    return None


def _statement_tokens(toks: list[Tok], body_index: int, end: int) -> list[Tok]:
    """Tokens of the statement that ends at ``end`` in the body opened at ``body_index``:
    from the last token that starts a line at the body's level."""
    start = body_index + 1
    depth = 0
    for j in range(body_index + 1, end):
        t = toks[j]
        if depth == 0 and t.line_start:
            start = j
        if t.text in _OPEN:
            depth += 1
        elif t.text in (")", "]", "}"):
            depth = max(0, depth - 1)
            if depth == 0 and t.text == "}":
                start = j + 1
    return toks[start:end]


def _segment(ctx: Context) -> list[Tok]:
    toks = ctx.tokens
    top = ctx.top
    if top is None:
        # At the level of the declaration header (`program x = ...`, `use ...`).
        return toks
    if top.role in ("call", "params", "list", "dict", "index", "group", "type"):
        # The current argument: after the last `,` at this level.
        start = top.index + 1
        depth = 0
        for j in range(top.index + 1, len(toks)):
            t = toks[j].text
            if t in _OPEN:
                depth += 1
            elif t in (")", "]", "}"):
                depth -= 1
            elif t == "," and depth == 0:
                start = j + 1
        return toks[start:]
    seg = _statement_tokens(toks, top.index, len(toks))
    if ctx.at_line_start and ctx.partial_start > (toks[-1].start if toks else -1):
        # The cursor starts a new line: a new statement (newlines end statements in practice).
        return []
    return seg
