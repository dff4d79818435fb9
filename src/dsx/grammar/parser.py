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

from dsx.diagnostics import Diagnostic, DiagnosticCode, Origin, SourceFile, Span, make
from dsx.grammar import ast, lexspec
from dsx.grammar._transform import AstError, ToAst
from dsx.grammar.lexspec import TOP_KEYWORDS

__all__ = [
    "TOP_KEYWORDS",
    "BlockCache",
    "ParsedFile",
    "parse",
    "parse_expr_text",
    "parse_type_text",
    "split_blocks",
]

_NAME = re.compile(lexspec.NAME + r"\Z")
_COMMENTS = re.compile(rf"{lexspec.STRING}|(?P<comment>{lexspec.COMMENT})")

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
    declaration is a block of its own (usually comments). A keyword at column 0 inside a
    triple-quoted string does not start a block (``lexspec.block_starts``).
    """
    starts = lexspec.block_starts(text)
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
    decl, error, problems = _try_parse(text, origin, comments)
    if error is not None:
        block.errors.append(_syntax_diagnostic(error, text, origin))
        recovered = _recover(text, origin, comments, error) if _RECOVERABLE.match(text) else None
        if recovered is None:
            return block
        decl, problems, blanked = recovered
        block.recovered = blanked
    block.errors.extend(problems)
    block.decl = decl
    if decl is not None:
        block.errors.extend(_floor_division_lookalikes(text, comments, origin))
    return block


def _try_parse(
    text: str, origin: Origin, comments: list[ast.Comment]
) -> tuple[Any, UnexpectedInput | None, list[Diagnostic]]:
    """``(decl, None, problems)``, or ``(None, the first syntax error, [])``."""
    parser, transformer = _get_parser()
    errors: list[UnexpectedInput] = []
    problems: list[Diagnostic] = []

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
        transformer.problems = problems
        try:
            decl = parser.parse(text, start="block", on_error=on_error)
        except UnexpectedInput as exc:
            if not errors:
                errors.append(exc)
            decl = None
        except ast_error() as exc:
            return None, None, [exc.diagnostic]
    if errors:
        return None, errors[0], []
    return decl, None, problems


# Statement-level recovery is tried in module and test blocks: a statement is the unit that
# can be left out without changing what the declaration offers to others (a field left out
# of a signature would cause false errors at every use).
_RECOVERABLE = re.compile(rf"(?:\s|{lexspec.COMMENT})*(?:module|test)[ \t]")
_MAX_BAD_LINES = 4


def _recover(
    text: str, origin: Origin, comments: list[ast.Comment], error: UnexpectedInput
) -> tuple[Any, list[Diagnostic], str] | None:
    """Parse ``text`` again with the bad lines blanked out (so offsets stay put): the line
    of the error, else the statement line before it (an unclosed bracket shows on the next
    line). A choice that makes the block parse wins over one that only moves the error
    further. Returns ``(decl, problems, the blanked text)``; ``None`` when that fails."""
    work = text
    blanked: list[str] = []
    later: list[Diagnostic] = []
    for _ in range(_MAX_BAD_LINES):
        pos = _error_pos(error, work)
        if pos is None:
            return None
        step: tuple[str, UnexpectedInput, list[tuple[int, int]]] | None = None
        for ranges in _candidates(work, pos):
            attempt = work
            for lo, hi in ranges:
                attempt = attempt[:lo] + " " * (hi - lo) + attempt[hi:]
            decl, again, problems = _try_parse(attempt, origin, comments)
            if decl is not None:
                blanked += [text[lo:hi] for lo, hi in ranges]
                return decl, later + problems, "\n".join(blanked)
            again_pos = _error_pos(again, attempt)
            if (
                step is None
                and again is not None
                and again_pos is not None
                and again_pos > max(pos, *(hi for _, hi in ranges))
            ):
                step = (attempt, again, ranges)  # progress: the error moved on
        if step is None:
            return None
        work, error, ranges = step
        blanked += [text[lo:hi] for lo, hi in ranges]
        later.append(_syntax_diagnostic(error, work, origin))
    return None


def _error_pos(exc: UnexpectedInput | None, text: str) -> int | None:
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        return exc.token.start_pos
    if isinstance(exc, UnexpectedCharacters):
        return cast(int, exc.pos_in_stream)
    return None  # the end of the block: a bracket is never closed


def _candidates(text: str, pos: int) -> list[list[tuple[int, int]]]:
    """Line ranges to blank for an error at ``pos``: its line, the statement line before
    it, or both. Lines at column 0 (the declaration's head and its closing brace) and lines
    whose braces do not balance are never blanked."""
    line = _line_at(text, pos)
    prev = _line_before(text, line[0])
    if prev is None:
        options = [[line]]
    elif text[line[0] : pos].strip():
        options = [[line], [prev], [prev, line]]
    else:  # the error is at the start of its line: the line before is likelier to blame
        options = [[prev], [line], [prev, line]]
    return [o for o in options if all(_blankable(text[lo:hi]) for lo, hi in o)]


def _line_at(text: str, pos: int) -> tuple[int, int]:
    lo = text.rfind("\n", 0, pos) + 1
    hi = text.find("\n", pos)
    return lo, len(text) if hi < 0 else hi


def _line_before(text: str, lo: int) -> tuple[int, int] | None:
    while lo > 0:
        lo, hi = _line_at(text, lo - 1)
        stripped = text[lo:hi].strip()
        if stripped and not stripped.startswith("//"):
            return lo, hi
    return None


_BRACES = re.compile(rf"{lexspec.STRING}|{lexspec.COMMENT}|(?P<brace>[{{}}])")


def _blankable(line: str) -> bool:
    if not line.strip() or not line[:1].isspace():
        return False
    depth = 0
    for m in _BRACES.finditer(line):
        brace = m.group("brace")
        if brace is not None:
            depth += 1 if brace == "{" else -1
            if depth < 0:
                return False
    return depth == 0


_ENDS_OPERAND = re.compile(r"[A-Za-z0-9_)\]\"]\s*\Z")


def _floor_division_lookalikes(
    text: str, comments: list[ast.Comment], origin: Origin
) -> list[Diagnostic]:
    """``x = len(q) // 2``: ``//`` starts a comment, so the ``2`` would vanish silently.

    A trailing comment after an operand whose text is itself an expression (other than a
    lone name or string, which read as ordinary comments: ``// retry``) is an error.
    """
    problems = []
    names: set[str] | None = None  # the names the block uses, outside strings and comments
    for c in comments:
        if c.is_doc:
            continue
        line_start = text.rfind("\n", 0, c.span.lo) + 1
        if not _ENDS_OPERAND.search(text, line_start, c.span.lo):
            continue
        body = c.text[2:]
        if not body.strip():
            continue
        node, diag = parse_expr_text(body, origin, c.span.lo + 2)
        if diag is not None or isinstance(node, ast.Str):
            continue
        if isinstance(node, ast.NameRef):
            # `n // k`: a lone word is an ordinary comment (`// retry`) unless the block
            # uses that name as a variable, parameter or member.
            if names is None:
                names = lexspec.names_outside_strings(text)
            if node.name.name not in names or node.name.name in lexspec.TOP_KEYWORDS:
                continue
        if isinstance(node, ast.Lit) and (node.value is None or isinstance(node.value, bool)):
            continue
        problems.append(
            make(
                DiagnosticCode.SYNTAX_ERROR,
                f"`//` starts a comment in .dsx, so `{c.text.strip()}` is ignored here; "
                ".dsx has no floor division: write `int(a / b)`, or put a comment on its "
                "own line",
                Span(origin, c.span.lo, c.span.hi),
            )
        )
    return problems


def ast_error() -> type[AstError]:
    return AstError


def _comments(text: str) -> Iterable[re.Match[str]]:
    # Comments outside strings: string literals are matched (and skipped) whole.
    for m in _COMMENTS.finditer(text):
        if m.lastgroup == "comment":
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
    "INLINE_IF": "`if`",  # the `if` of `a if c else b` (declared, so not a literal)
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
    if what == "declaration":
        unsupported = _unsupported_statement(text, span.hi)
        if unsupported is not None:
            lo, hi, message = unsupported
            span = Span(origin, lo, hi)
    return make(DiagnosticCode.SYNTAX_ERROR, message, span)


_UNSUPPORTED = re.compile(
    rf"{lexspec.STRING}|{lexspec.COMMENT}"
    rf"|^[ \t]*(?P<kw>{'|'.join(lexspec.UNSUPPORTED_STATEMENTS)})\b(?![ \t]*[=.(\[,:])",
    re.M,
)


def _unsupported_statement(text: str, before: int) -> tuple[int, int, str] | None:
    """The first unsupported Python statement keyword at the start of a line before
    ``before`` (strings and comments skipped), as ``(start, end, message)``."""
    for m in _UNSUPPORTED.finditer(text, 0, before):
        kw = m.group("kw")
        if kw is not None:
            return m.start("kw"), m.end("kw"), lexspec.unsupported_message(kw)
    return None


@dataclass(slots=True)
class _Unused:
    items: list[Any] = field(default_factory=list)
