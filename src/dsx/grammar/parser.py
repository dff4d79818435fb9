"""Parsing .dsx text into the AST, block by block.

A file is split at its top-level declarations; each block is parsed on its own with the
LALR parser (built once, cached on disk by Lark). A syntax error therefore costs one
diagnostic for its block and the rest of the file still parses; an editor re-parses only
the blocks whose text changed (:class:`BlockCache`).

Keywords are *soft*: where the grammar expects a name, a keyword is accepted as one
(``out type: str`` declares a field called ``type``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsx.diagnostics import Diagnostic, Origin, SourceFile, Span, make
from dsx.grammar import ast
from dsx.grammar._transform import AstError, ToAst

__all__ = [
    "BlockCache",
    "ParsedFile",
    "parse",
    "parse_expr_text",
    "parse_type_text",
    "split_blocks",
]

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
)
# A top-level block starts at column 0 with a keyword followed by a name or a string.
_BLOCK_START = re.compile(r"^(?:" + "|".join(TOP_KEYWORDS) + r")[ \t]+[A-Za-z_\"]", re.M)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COMMENT = re.compile(r"//[^\n]*")

_lock = threading.Lock()
_parser: Lark | None = None
_transformer: ToAst | None = None


def _get_parser() -> tuple[Lark, ToAst]:
    global _parser, _transformer
    if _parser is None:
        grammar = resources.files("dsx.grammar").joinpath("dsx.lark").read_text(encoding="utf-8")
        _transformer = ToAst()
        from dsx.grammar._lexer import DsxLexer

        _parser = Lark(
            grammar,
            parser="lalr",
            lexer=DsxLexer,
            start=["block", "type", "expr"],
            keep_all_tokens=True,
            maybe_placeholders=True,
            transformer=_transformer,
            cache=True,  # LALR tables pickled in the temp dir, keyed by grammar and options
        )
    assert _transformer is not None
    return _parser, _transformer


@dataclass(slots=True)
class ParsedFile:
    source: SourceFile
    blocks: list[ast.Block]

    @property
    def decls(self) -> list[Any]:
        return [b.decl for b in self.blocks if b.decl is not None]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for b in self.blocks for d in b.errors]

    @property
    def comments(self) -> list[ast.Comment]:
        return [c for b in self.blocks for c in b.comments]


def split_blocks(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of the top-level blocks of ``text``.

    Comment lines directly above a declaration belong to it. Text before the first
    declaration is a block of its own (usually comments).
    """
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    # Pull preceding comment lines into each block.
    adjusted = []
    for start in starts:
        s = start
        while s > 0:
            prev_end = s - 1  # the newline before line starting at s
            prev_start = text.rfind("\n", 0, prev_end) + 1
            line = text[prev_start:prev_end].strip()
            if line.startswith("//"):
                s = prev_start
            else:
                break
        adjusted.append(s)
    bounds = []
    if not adjusted or adjusted[0] > 0:
        adjusted.insert(0, 0)
    for i, start in enumerate(adjusted):
        end = adjusted[i + 1] if i + 1 < len(adjusted) else len(text)
        bounds.append((start, end))
    return bounds


class BlockCache:
    """Parsed blocks by text, reused across parses of an edited file (editor use)."""

    def __init__(self) -> None:
        self._entries: dict[str, list[ast.Block]] = {}

    def take(self, text: str) -> ast.Block | None:
        entries = self._entries.get(text)
        return entries.pop() if entries else None

    def replace(self, blocks: Iterable[ast.Block]) -> None:
        fresh: dict[str, list[ast.Block]] = {}
        for block in blocks:
            fresh.setdefault(block.text, []).append(block)
        self._entries = fresh


def parse(text: str, path: str = "<string>", *, cache: BlockCache | None = None) -> ParsedFile:
    """Parse a whole file. Never raises for bad input: errors are diagnostics on blocks."""
    source = SourceFile(path, text)
    blocks = []
    for start, end in split_blocks(text):
        block_text = text[start:end]
        block = cache.take(block_text) if cache is not None else None
        if block is not None and block.span.origin.file == path:
            block.span.origin.offset = start
        else:
            block = _parse_block(block_text, Origin(path, start))
        blocks.append(block)
    if cache is not None:
        cache.replace(blocks)
    return ParsedFile(source, blocks)


def _parse_block(text: str, origin: Origin) -> ast.Block:
    span = Span(origin, 0, len(text))
    comments = [ast.Comment(m.group(), Span(origin, m.start(), m.end())) for m in _comments(text)]
    block = ast.Block(span=span, text=text, decl=None, comments=comments)
    if not text.strip() or all(
        line.strip().startswith("//") or not line.strip() for line in text.splitlines()
    ):
        return block
    parser, transformer = _get_parser()
    errors: list[UnexpectedInput] = []

    def on_error(exc: UnexpectedInput) -> bool:
        if isinstance(exc, UnexpectedToken) and exc.token.type != "NAME":
            value = exc.token.value or ""
            if _NAME.match(value) and "NAME" in exc.accepts:
                exc.interactive_parser.feed_token(Token.new_borrow_pos("NAME", value, exc.token))
                return True
        errors.append(exc)
        return False

    with _lock:
        transformer.origin = origin
        transformer.comments = comments
        transformer._prefix_not.clear()
        transformer.problems = block.errors
        try:
            decl = parser.parse(text, start="block", on_error=on_error)
        except UnexpectedInput as exc:
            if not errors:
                errors.append(exc)
            decl = None
        except ast_error() as exc:
            block.errors.append(exc.diagnostic)
            decl = None
    if errors:
        block.errors.append(_syntax_diagnostic(errors[0], text, origin))
        decl = None
    block.decl = decl
    return block


def ast_error() -> type[AstError]:
    return AstError


def _comments(text: str) -> Iterable[re.Match[str]]:
    # Comments outside strings: skip string literals while scanning.
    pos = 0
    pattern = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|//[^\n]*')
    for m in pattern.finditer(text, pos):
        if m.group().startswith("//"):
            yield m


def parse_type_text(text: str, origin: Origin, offset: int) -> tuple[Any, Diagnostic | None]:
    """Parse a type written inside a string (signature shorthand); spans start at ``offset``."""
    return _parse_fragment(text, origin, offset, "type")


def parse_expr_text(text: str, origin: Origin, offset: int) -> tuple[Any, Diagnostic | None]:
    """Parse an expression inside a string (``"{expr}"`` interpolation)."""
    return _parse_fragment(text, origin, offset, "expr")


def _parse_fragment(
    text: str, origin: Origin, offset: int, start: str
) -> tuple[Any, Diagnostic | None]:
    parser, transformer = _get_parser()
    # Spans of the fragment are relative to the origin of the enclosing block.
    with _lock:
        transformer.origin = origin
        transformer.comments = []
        transformer.problems = []
        transformer.shift = offset
        try:
            return parser.parse(text, start=start), None
        except UnexpectedInput as exc:
            diag = _syntax_diagnostic(
                exc,
                text,
                Origin(origin.file, origin.offset + offset),
                what=start if start == "type" else "expression",
            )
            return None, diag
        finally:
            transformer.shift = 0


_READABLE = {
    "NAME": "a name",
    "STRING": "a string",
    "SIGNED_NUMBER": "a number",
}
_EXPRESSION_START = {"NAME", "STRING", "SIGNED_NUMBER", "LSQB", "LPAR"}
_literals: dict[str, str] = {}


def _literal_names() -> dict[str, str]:
    """Terminal name -> its text in backticks, read from the grammar (``LESSTHAN`` -> `<`)."""
    if not _literals:
        parser, _ = _get_parser()
        for term in parser.terminals:
            if term.pattern.type == "str":
                _literals[term.name] = f"`{term.pattern.value}`"
    return _literals


def describe_expected(expected: Iterable[str], *, end: str = "the end of the declaration") -> str:
    """What the parser could have accepted, in words (never a grammar token name)."""
    names = set(expected)
    literals = _literal_names()
    parts: list[str] = []
    if names >= _EXPRESSION_START:
        names -= _EXPRESSION_START | {"TRUE", "FALSE", "NONE", "LBRACE", "MINUS", "NOT"}
        parts.append("an expression")
    for name in sorted(names, key=lambda n: (n not in _READABLE, n)):
        if name == "$END":
            parts.append(end)
        else:
            parts.append(_READABLE.get(name) or literals.get(name) or "`" + name.lower() + "`")
    if not parts:
        # Lark reports no expected tokens when a fragment's start rule is complete.
        return end
    if len(parts) > 8:
        parts = [*parts[:8], "…"]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _token_text(token: Token) -> str:
    if token.type == "$END":
        return "end of input"
    value = str(token.value)
    return f"`{value if len(value) <= 30 else value[:27] + '...'}`"


def _syntax_diagnostic(
    exc: UnexpectedInput, text: str, origin: Origin, what: str = "declaration"
) -> Diagnostic:
    def expected(names: Iterable[str]) -> str:
        return describe_expected(names, end=f"the end of the {what}")

    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            pos = len(text.rstrip())
            span = Span(origin, max(0, pos - 1), pos)
            message = (
                f"this {what} ends too early: expected {expected(exc.accepts or exc.expected)}"
            )
        else:
            start = token.start_pos or 0
            span = Span(origin, start, token.end_pos or start + len(str(token.value)))
            message = (
                f"unexpected {_token_text(token)}: expected {expected(exc.accepts or exc.expected)}"
            )
    elif isinstance(exc, UnexpectedCharacters):
        pos = cast(int, exc.pos_in_stream)  # lark types it `None` (a class default); set here
        char = text[pos] if pos < len(text) else ""
        span = Span(origin, pos, pos + 1)
        if char == '"':
            message = 'unterminated string: close it with `"` on the same line, or use `"""` for text over several lines'
        else:
            message = f"unexpected character `{char}`"
            if exc.allowed:
                message += f": expected {expected(exc.allowed)}"
    elif isinstance(exc, UnexpectedEOF):
        pos = len(text.rstrip())
        span = Span(origin, max(0, pos - 1), pos)
        message = f"this {what} ends too early: expected {expected(exc.expected)}"
    else:  # pragma: no cover - lark has no other kinds
        span = Span(origin, 0, 1)
        message = str(exc)
    return make("DSX001", message, span)


@dataclass(slots=True)
class _Unused:
    items: list[Any] = field(default_factory=list)
