"""The .dsx formatter behind ``dsx fmt``: one canonical layout for a file.

The formatter prints the AST again, so layout never depends on how the input was laid
out, and puts every ``//`` and ``///`` comment back next to the node it belongs to:

* a comment on the line where a node ends trails that node; any other comment leads the
  next node of the same list (statements, fields, members, items, arguments), or is kept
  at the end of the list;
* a comment inside a node where nothing can hold it (say between a keyword and a name)
  moves up to the line above that node. A ``///`` comment cannot move where it would
  become someone's documentation, so such a node is kept exactly as written instead.

Expressions go through a small Wadler-style document printer (groups that print flat if
they fit in :data:`WIDTH` columns and one item per line otherwise), with parentheses put
back only where precedence needs them. A block that does not parse is kept as written;
and every formatted block is parsed again and compared with the original (AST without
spans, tokens, comments), so a formatter bug costs a block its formatting, never its
meaning.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from dsx.diagnostics import Diagnostic, Span
from dsx.grammar import ast, lexspec
from dsx.grammar import precedence as _precedence
from dsx.grammar.parser import BlockCache, parse

__all__ = [
    "INDENT",
    "WIDTH",
    "FormatCache",
    "check_formatted",
    "format_source",
    "format_with_diagnostics",
]

#: Lines longer than this get their calls, lists and dicts broken one item per line.
WIDTH = 100
#: Spaces per nesting level.
INDENT = 4

OnMismatch = Literal["keep", "raise"]

# ---- a tiny document printer ------------------------------------------------------------
# A doc is a str, a list of docs (concatenation), or one of the classes below.


class _Group:
    """Printed flat if it fits on the rest of the line, else with its lines broken."""

    __slots__ = ("breaks", "contents")

    def __init__(self, contents: Any) -> None:
        self.contents = contents
        self.breaks = _has_hard(contents)


class _Indent:
    __slots__ = ("contents",)

    def __init__(self, contents: Any) -> None:
        self.contents = contents


class _Line:
    """A line break in a broken group; a space (``soft``: nothing) in a flat one."""

    __slots__ = ("hard", "soft")

    def __init__(self, *, soft: bool = False, hard: bool = False) -> None:
        self.soft = soft
        self.hard = hard


class _IfBreak:
    __slots__ = ("broken", "flat")

    def __init__(self, broken: Any, flat: Any = "") -> None:
        self.broken = broken
        self.flat = flat


class _BreakParent:
    """Forces the enclosing groups to break (after a ``//`` comment, say)."""


_SOFT = _Line(soft=True)
_LINE = _Line()
_HARD = _Line(hard=True)
_BREAK = _BreakParent()


def _has_hard(doc: Any) -> bool:
    if isinstance(doc, list):
        return any(_has_hard(d) for d in doc)
    if isinstance(doc, _Group):
        return doc.breaks
    if isinstance(doc, _Indent):
        return _has_hard(doc.contents)
    if isinstance(doc, _Line):
        return doc.hard
    return isinstance(doc, _BreakParent)


def _fits(first: tuple[int, bool, Any], rest: list[tuple[int, bool, Any]], width: int) -> bool:
    cmds = [first]
    ri = len(rest)
    while width >= 0:
        if not cmds:
            if ri == 0:
                return True
            ri -= 1
            cmds.append(rest[ri])
            continue
        ind, brk, d = cmds.pop()
        if isinstance(d, str):
            nl = d.find("\n")
            if nl >= 0:
                return width - nl >= 0
            width -= len(d)
        elif isinstance(d, list):
            cmds.extend((ind, brk, x) for x in reversed(d))
        elif isinstance(d, _Indent):
            cmds.append((ind, brk, d.contents))
        elif isinstance(d, _Group):
            cmds.append((ind, brk or d.breaks, d.contents))
        elif isinstance(d, _Line):
            if brk or d.hard:
                return True
            width -= 0 if d.soft else 1
        elif isinstance(d, _IfBreak):
            cmds.append((ind, brk, d.broken if brk else d.flat))
    return False


def _render(doc: Any, indent: int) -> str:
    """Print ``doc`` starting at column ``indent`` (the indentation itself not included)."""
    out: list[str] = []
    col = indent
    stack: list[tuple[int, bool, Any]] = [(indent, True, doc)]
    while stack:
        ind, brk, d = stack.pop()
        if isinstance(d, str):
            out.append(d)
            nl = d.rfind("\n")
            col = col + len(d) if nl < 0 else len(d) - nl - 1
        elif isinstance(d, list):
            stack.extend((ind, brk, x) for x in reversed(d))
        elif isinstance(d, _Indent):
            stack.append((ind + INDENT, brk, d.contents))
        elif isinstance(d, _Group):
            flat = not d.breaks and (not brk or _fits((ind, False, d.contents), stack, WIDTH - col))
            stack.append((ind, not flat, d.contents))
        elif isinstance(d, _Line):
            if brk or d.hard:
                out.append("\n" + " " * ind)
                col = ind
            elif not d.soft:
                out.append(" ")
                col += 1
        elif isinstance(d, _IfBreak):
            stack.append((ind, brk, d.broken if brk else d.flat))
    return "".join(out)


# ---- precedence ---------------------------------------------------------------------------

# The parser's table (dsx.grammar.precedence): printing and parsing agree by construction,
# and codegen parenthesizes with the same levels.
_BIN_PREC = _precedence.PRECEDENCE
_NOT, _NEG, _POSTFIX, _ATOM = (
    _precedence.NOT,
    _precedence.NEG,
    _precedence.POSTFIX,
    _precedence.ATOM,
)


def _prec(e: Any) -> int:
    if isinstance(e, ast.IfExp):
        return _precedence.IFEXP  # the loosest: parenthesized as the operand of any operator
    if isinstance(e, ast.BinOp):
        return _BIN_PREC[e.op]
    if isinstance(e, ast.Not):
        return _NOT
    if isinstance(e, ast.Neg):
        return _NEG
    if isinstance(e, ast.Attr | ast.Index | ast.Slice | ast.Call):
        return _POSTFIX
    return _ATOM


_operand_prec = _precedence.operand_precedence  # comparisons do not chain


def _type_str(t: Any) -> str:
    if isinstance(t, ast.NamedType):
        return t.name.name
    if isinstance(t, ast.GenericType):
        return f"{t.name.name}[{', '.join(_type_str(a) for a in t.args)}]"
    if isinstance(t, ast.OptionalType):
        inner = _type_str(t.inner)
        return (
            f"({inner})?" if isinstance(t.inner, ast.UnionType | ast.OptionalType) else inner + "?"
        )
    if isinstance(t, ast.UnionType):
        return " | ".join(
            f"({_type_str(o)})" if isinstance(o, ast.UnionType) else _type_str(o) for o in t.options
        )
    if isinstance(t, ast.LiteralType):
        return t.raw
    raise _Unformattable(f"unknown type node {type(t).__name__}")


# ---- comments -----------------------------------------------------------------------------


class _Unformattable(Exception):
    """This block (or node) cannot be formatted safely; it is kept as written."""


class _DocInside(_Unformattable):
    """A ``///`` comment inside a declaration's header: moving it would make it a doc."""


@dataclass(slots=True)
class _Comment:
    text: str  # right-stripped
    lo: int
    hi: int
    is_doc: bool
    taken: bool = False


@dataclass(slots=True)
class _Region:
    header: _Comment | None
    leading: list[list[_Comment]]
    trailing: list[_Comment | None]
    dangling: list[_Comment]


@dataclass(slots=True)
class _Entry:
    """One item of a braced list: its comments and what ``prepare`` made of it."""

    node: Any
    data: Any
    lead: list[tuple[_Comment, bool]]  # (comment, blank line before it)
    hoisted: list[_Comment]  # comments from inside the node, printed just above it
    blank: bool  # a blank line before the node (before ``hoisted``)
    trail: _Comment | None
    verbatim: str | None = None


@dataclass(slots=True)
class _Body:
    header: _Comment | None
    entries: list[_Entry] = field(default_factory=list)
    dangling: list[tuple[_Comment, bool]] = field(default_factory=list)
    # The name that `name = value` entries line up on; None for entries that do not.
    align: Callable[[Any], str | None] | None = None

    @property
    def empty(self) -> bool:
        return not self.entries and not self.dangling and self.header is None


_SCAN = re.compile(rf"{lexspec.STRING}|{lexspec.COMMENT}|[(){{}}\[\]]")
_TRIVIA = re.compile(rf"(?:\s+|{lexspec.COMMENT})*")

Render = Callable[[_Entry, int], list[str]]


class _BlockFormatter:
    """Formats one parsed top-level block. All offsets are relative to the block."""

    def __init__(self, block: ast.Block) -> None:
        self.text = block.text
        self.decl = block.decl
        self.widths: dict[int, int] = {}  # id(entry) -> column width to pad its name to
        self.comment_lines_after = False  # comments on lines of their own after the decl
        self.comments = sorted(
            (_Comment(c.text.rstrip(), c.span.lo, c.span.hi, c.is_doc) for c in block.comments),
            key=lambda c: c.lo,
        )
        self.starts = [c.lo for c in self.comments]

    # -- text helpers -----------------------------------------------------------------------
    def skip_trivia(self, pos: int) -> int:
        m = _TRIVIA.match(self.text, pos)
        return m.end() if m else pos

    def find(self, pos: int, char: str) -> int:
        """Index of ``char`` after ``pos``, skipping trivia and closing parentheses."""
        p = self.skip_trivia(pos)
        while p < len(self.text) and self.text[p] == ")" and char != ")":
            p = self.skip_trivia(p + 1)
        if not self.text.startswith(char, p):
            raise _Unformattable(f"expected {char!r} at offset {p}")
        return p

    def match(self, open_idx: int) -> int:
        """Index of the bracket closing the one at ``open_idx``."""
        depth = 0
        for m in _SCAN.finditer(self.text, open_idx):
            g = m.group()
            if len(g) != 1:
                continue
            if g in "([{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return m.start()
        raise _Unformattable(f"unbalanced bracket at offset {open_idx}")

    def ext(self, hi: int, limit: int) -> int:
        """``hi`` moved past closing parentheses of parenthesized sub-expressions."""
        pos = best = hi
        while True:
            p = self.skip_trivia(pos)
            if p < limit and self.text.startswith(")", p):
                pos = best = p + 1
            else:
                return best

    def blank(self, lo: int, hi: int) -> bool:
        return self.text.count("\n", lo, max(lo, hi)) >= 2

    def newline_between(self, lo: int, hi: int) -> bool:
        return "\n" in self.text[lo:hi]

    # -- comment bookkeeping ----------------------------------------------------------------
    def free(self, lo: int, hi: int) -> list[_Comment]:
        """The comments not placed yet that lie within ``[lo, hi)``."""
        out = []
        i = bisect.bisect_left(self.starts, lo)
        while i < len(self.comments) and self.comments[i].lo < hi:
            c = self.comments[i]
            if not c.taken and c.hi <= hi:
                out.append(c)
            i += 1
        return out

    def take_inside(self, lo: int, hi: int) -> list[_Comment]:
        out = self.free(lo, hi)
        for c in out:
            c.taken = True
        return out

    def claim(
        self,
        lo: int,
        hi: int,
        spans: Sequence[tuple[int, int]],
        *,
        header: bool,
        close: int | None = None,
    ) -> _Region:
        """Assign the free comments in ``[lo, hi)`` that are outside every child span.

        Comments after ``close`` (the closing bracket) are kept at the end of the list.
        """
        n = len(spans)
        region = _Region(None, [[] for _ in range(n)], [None] * n, [])
        starts = [a for a, _ in spans]
        for c in self.free(lo, hi):
            j = bisect.bisect_left(starts, c.hi)  # the first child after the comment
            if j > 0 and spans[j - 1][0] <= c.lo and c.hi <= spans[j - 1][1]:
                continue  # inside a child: the child places it
            c.taken = True
            if close is not None and c.lo > close:
                region.dangling.append(c)
            elif (
                j > 0
                and region.trailing[j - 1] is None
                and not self.newline_between(spans[j - 1][1], c.lo)
            ):
                region.trailing[j - 1] = c
            elif j == 0 and header and region.header is None and not self.newline_between(lo, c.lo):
                region.header = c
            elif j < n:
                region.leading[j].append(c)
            else:
                region.dangling.append(c)
        return region

    # -- braced lists -----------------------------------------------------------------------
    def body(
        self,
        open_idx: int,
        close_idx: int,
        comments_hi: int,
        items: Sequence[tuple[Any, int]],
        prepare: Callable[[Any], Any],
        *,
        doc_sensitive: Callable[[Any], bool] = lambda node: False,
    ) -> _Body:
        """The items of ``{ ... }`` (at ``open_idx``/``close_idx``) with their comments.

        ``comments_hi`` may reach past ``close_idx`` (comments between ``}`` and ``else``).
        ``doc_sensitive`` items take ``///`` comments above them as their documentation, so
        a ``///`` comment inside one cannot move above it.
        """
        spans = [(lo, self.ext(node.span.hi, close_idx)) for node, lo in items]
        region = self.claim(open_idx + 1, comments_hi, spans, header=True, close=close_idx)
        result = _Body(region.header)
        prev = region.header.hi if region.header else open_idx + 1
        for i, (node, _) in enumerate(items):
            lo, hi = spans[i]
            data = prepare(node)
            hoisted = self.take_inside(lo, hi)
            verbatim = None
            sensitive = doc_sensitive(node)
            if sensitive and any(c.is_doc for c in hoisted):
                verbatim, hoisted = self.text[lo:hi], []
            lead = []
            for c in region.leading[i]:
                lead.append((c, self.blank(prev, c.lo)))
                prev = c.hi
            blank = self.blank(prev, lo) and not (sensitive and lead and lead[-1][0].is_doc)
            trail = region.trailing[i]
            result.entries.append(_Entry(node, data, lead, hoisted, blank, trail, verbatim))
            prev = trail.hi if trail else hi
        for c in region.dangling:
            result.dangling.append((c, self.blank(prev, c.lo)))
            prev = c.hi
        return result

    def emit(self, body: _Body, indent: int, render: Render) -> list[str]:
        pad = " " * indent
        lines: list[str] = []
        self.align_runs(body, indent, render)
        for e in body.entries:
            for c, blank in e.lead:
                if blank and lines:
                    lines.append("")
                lines.append(pad + c.text)
            if e.blank and lines:
                lines.append("")
            lines.extend(pad + c.text for c in e.hoisted)
            lines.extend(
                (pad + e.verbatim).split("\n") if e.verbatim is not None else render(e, indent)
            )
            if e.trail:
                lines[-1] += "  " + e.trail.text
        for c, blank in body.dangling:
            if blank and lines:
                lines.append("")
            lines.append(pad + c.text)
        return lines

    def braced(self, head: list[str], body: _Body, indent: int, render: Render) -> list[str]:
        """``head`` (ending in ``{``) + the body one level deeper + ``}``."""
        if body.empty:
            head[-1] += "}"
            return head
        if body.header:
            head[-1] += "  " + body.header.text
        return [*head, *self.emit(body, indent + INDENT, render), " " * indent + "}"]

    def doc_lines(self, doc: Any, indent: int) -> list[str]:
        return (" " * indent + _render(doc, indent)).split("\n")

    def render_prepared(self, e: _Entry, indent: int) -> list[str]:
        lines: list[str] = e.data(indent, self.widths.get(id(e), 0))
        return lines

    def align_runs(self, body: _Body, indent: int, render: Render) -> None:
        """Record, per entry, the width of ``body.align(node)`` in its run of entries to align.

        A run is broken by an entry without a key, one kept as written, one that takes more
        than one line, or a blank line.
        """
        key = body.align
        if key is None:
            return
        run: list[_Entry] = []
        for e in [*body.entries, None]:
            k = key(e.node) if e is not None and e.verbatim is None else None
            if k is not None and e is not None:
                self.widths.pop(id(e), None)
                if len(render(e, indent)) > 1:
                    k = None
            if k is None or (run and e is not None and (e.blank or any(b for _, b in e.lead))):
                width = max((len(key(r.node) or "") for r in run), default=0)
                self.widths.update((id(r), width) for r in run)
                run = []
            if k is not None and e is not None:
                run.append(e)

    # -- expressions --------------------------------------------------------------------------
    def expr(self, e: Any, need: int = 0) -> Any:
        method = getattr(self, "e_" + type(e).__name__, None)
        if method is None:
            raise _Unformattable(f"unknown expression node {type(e).__name__}")
        doc = method(e)
        return ["(", doc, ")"] if _prec(e) < need else doc

    def e_NameRef(self, e: ast.NameRef) -> Any:
        return e.name.name

    def e_Lit(self, e: ast.Lit) -> Any:
        return e.raw

    def e_Str(self, e: ast.Str) -> Any:
        return e.raw

    def e_ListExpr(self, e: ast.ListExpr) -> Any:
        return self.container("[", "]", e.span.lo, e.span.hi - 1, e.items, self.expr)

    def e_DictExpr(self, e: ast.DictExpr) -> Any:
        return self.container("{", "}", e.span.lo, e.span.hi - 1, e.pairs, self.pair)

    def pair(self, p: ast.Pair) -> Any:
        return [self.expr(p.key), ": ", self.expr(p.value)]

    def e_Attr(self, e: ast.Attr) -> Any:
        return [self.expr(e.obj, _POSTFIX), ".", e.name.name]

    def e_Index(self, e: ast.Index) -> Any:
        return [self.expr(e.obj, _POSTFIX), "[", self.expr(e.index), "]"]

    def e_Slice(self, e: ast.Slice) -> Any:
        doc: list[Any] = [self.expr(e.obj, _POSTFIX), "["]
        parts = [e.lo, e.hi] if e.step is None else [e.lo, e.hi, e.step]
        for i, part in enumerate(parts):
            if i:
                doc.append(":")
            if part is not None:
                doc.append(self.expr(part))
        return [*doc, "]"]

    def e_IfExp(self, e: ast.IfExp) -> Any:
        # Kept on one line: an `if` that starts a line would start an `if` statement.
        return [self.expr(e.then, 1), " if ", self.expr(e.cond, 1), " else ", self.expr(e.orelse)]

    def e_ListComp(self, e: ast.ListComp) -> Any:
        # Flat when it fits, else (as ruff lays out Python) each `for` and `if` on its own line.
        inner: list[Any] = [_SOFT, self.expr(e.elt)]
        clauses = ((e.targets, e.iter, e.conds), *((c.targets, c.iter, c.conds) for c in e.more))
        for targets, it, conds in clauses:
            names = ", ".join(t.name for t in targets)
            inner += [_LINE, f"for {names} in ", self.expr(it, 1)]
            for cond in conds:
                inner += [_LINE, "if ", self.expr(cond, 1)]
        return _Group(["[", _Indent(inner), _SOFT, "]"])

    def e_Call(self, e: ast.Call) -> Any:
        func = self.expr(e.func, _POSTFIX)
        open_idx = self.find(e.func.span.hi, "(")
        return [func, self.container("(", ")", open_idx, e.span.hi - 1, e.args, self.arg)]

    def arg(self, a: ast.Arg) -> Any:
        value = self.expr(a.value)
        return value if a.name is None else [a.name.name, " = ", value]

    def e_BinOp(self, e: ast.BinOp) -> Any:
        left, right = _operand_prec(e.op)
        return [self.expr(e.left, left), f" {e.op} ", self.expr(e.right, right)]

    def e_Not(self, e: ast.Not) -> Any:
        # `not (a == b)` rather than the minimal `not a == b` (which parses the same, `not`
        # binding looser than comparisons): clearer to a reader who knows other languages.
        operand = e.operand
        return ["not ", self.expr(operand, _ATOM if isinstance(operand, ast.BinOp) else _NOT)]

    def e_Neg(self, e: ast.Neg) -> Any:
        # `--x` parses, but reads like a decrement: a double negation keeps parentheses.
        return ["-", self.expr(e.operand, _NEG + isinstance(e.operand, ast.Neg))]

    def param(self, p: ast.Param) -> Any:
        doc: list[Any] = [p.name.name]
        if p.type is not None:
            doc.append(": " + _type_str(p.type))
        if p.default is not None:
            doc += [" = ", self.expr(p.default)]
        return doc

    def container(
        self,
        open_: str,
        close: str,
        open_idx: int,
        close_idx: int,
        items: Sequence[Any],
        item_doc: Callable[[Any], Any],
    ) -> Any:
        """``open_ item, item close`` flat, or one item per line with a trailing comma."""
        spans = [(it.span.lo, self.ext(it.span.hi, close_idx)) for it in items]
        region = self.claim(open_idx + 1, close_idx, spans, header=False)
        inner: list[Any] = []
        for i, it in enumerate(items):
            doc = item_doc(it)
            lead = sorted(region.leading[i] + self.take_inside(*spans[i]), key=lambda c: c.lo)
            inner.append(_SOFT if i == 0 else _LINE)
            for c in lead:
                inner += [c.text, _HARD]
            inner += [doc, "," if i < len(items) - 1 else _IfBreak(",")]
            trail = region.trailing[i]
            if trail:
                inner += ["  " + trail.text, _BREAK]
        for c in region.dangling:
            inner += [_HARD, c.text]
        if not inner:
            return open_ + close
        return _Group([open_, _Indent(inner), _SOFT, close])

    # -- statements ---------------------------------------------------------------------------
    def stmt_body(
        self, open_idx: int, close_idx: int, comments_hi: int, stmts: Sequence[Any]
    ) -> _Body:
        body = self.body(
            open_idx, close_idx, comments_hi, [(s, s.span.lo) for s in stmts], self.stmt
        )
        body.align = lambda n: n.target.name if isinstance(n, ast.Assign) else None
        return body

    def stmt(self, s: Any) -> Callable[..., list[str]]:
        """Prepare a statement (claiming its comments); returns its renderer, which takes
        the indentation and the width to pad an assignment's name (or given/expect) to."""
        if isinstance(s, ast.Assign):
            value = self.expr(s.value)
            return lambda indent, width=0: self.doc_lines(
                [s.target.name.ljust(width), " = ", value], indent
            )
        elif isinstance(s, ast.SetItem):
            doc = [self.expr(s.target), " = ", self.expr(s.value)]
        elif isinstance(s, ast.AugAssign):
            doc = [self.expr(s.target), f" {s.op}= ", self.expr(s.value)]
        elif isinstance(s, ast.Break | ast.Continue):
            doc = ["break" if isinstance(s, ast.Break) else "continue"]
        elif isinstance(s, ast.While):
            return self.while_stmt(s)
        elif isinstance(s, ast.Return):
            doc = ["return ", self.expr(s.value)]
        elif isinstance(s, ast.ExprStmt):
            doc = self.expr(s.expr)
        elif isinstance(s, ast.Check):
            doc = [s.kind, " ", self.expr(s.cond)]
            if s.message is not None:
                doc += [", ", self.expr(s.message)]
        elif isinstance(s, ast.GivenItem | ast.ExpectItem):
            kw = "given" if isinstance(s, ast.GivenItem) else "expect"
            value = self.expr(s.value)
            target = s.name.name
            if isinstance(s, ast.ExpectItem):
                target += "".join("." + p.name for p in s.path)
            return lambda indent, width=0: self.doc_lines(
                [kw.ljust(width), " ", target, " = ", value], indent
            )
        elif isinstance(s, ast.ReplyItem):
            reply: Any = (
                self.expr(s.text)
                if s.text is not None
                else self.container(
                    "{",
                    "}",
                    self.find(s.span.lo + len("reply"), "{"),
                    s.span.hi - 1,
                    s.fields,
                    lambda f: [f.name.name, " = ", self.expr(f.value)],
                )
            )
            return lambda indent, width=0: self.doc_lines(
                ["reply".ljust(width), " ", reply], indent
            )
        elif isinstance(s, ast.If):
            return self.if_stmt(s)
        elif isinstance(s, ast.For):
            return self.for_stmt(s)
        else:
            raise _Unformattable(f"unknown statement node {type(s).__name__}")
        return lambda indent, width=0: self.doc_lines(doc, indent)

    def if_stmt(self, s: ast.If) -> Callable[..., list[str]]:
        cond = self.expr(s.cond)
        open_idx = self.find(s.cond.span.hi, "{")
        close_idx = self.match(open_idx)
        comments_hi = close_idx
        other: Any = None
        if s.orelse is not None:
            p = self.skip_trivia(close_idx + 1)
            if not self.text.startswith("else", p):
                raise _Unformattable("expected `else`")
            comments_hi = self.skip_trivia(p + 4)  # comments before the else branch stay above it
        then = self.stmt_body(open_idx, close_idx, comments_hi, s.then)
        if s.orelse is not None:
            if s.else_if:
                nested = s.orelse[0]
                assert isinstance(nested, ast.If)
                other = self.if_stmt(nested)
            else:
                else_open = self.find(comments_hi, "{")
                else_close = self.match(else_open)
                other = self.stmt_body(else_open, else_close, else_close, s.orelse)

        def render(indent: int, width: int = 0, prefix: str = "") -> list[str]:
            lines = self.braced(
                self.doc_lines([prefix, "if ", cond, " {"], indent),
                then,
                indent,
                self.render_prepared,
            )
            if other is None:
                return lines
            last = lines.pop()[indent:] + " else "
            if s.else_if:
                return [*lines, *other(indent, prefix=last)]
            return [
                *lines,
                *self.braced([" " * indent + last + "{"], other, indent, self.render_prepared),
            ]

        return render

    def for_stmt(self, s: ast.For) -> Callable[..., list[str]]:
        it = self.expr(s.iter)
        open_idx = self.find(s.iter.span.hi, "{")
        close_idx = s.span.hi - 1
        body = self.stmt_body(open_idx, close_idx, close_idx, s.body)

        names = ", ".join(t.name for t in s.targets)

        def render(indent: int, width: int = 0) -> list[str]:
            head = self.doc_lines(["for ", names, " in ", it, " {"], indent)
            return self.braced(head, body, indent, self.render_prepared)

        return render

    def while_stmt(self, s: ast.While) -> Callable[..., list[str]]:
        cond = self.expr(s.cond)
        head: list[Any] = ["while ", cond]
        if s.bound is not None:
            head += [" max ", self.expr(s.bound)]
        open_idx = self.find((s.bound or s.cond).span.hi, "{")
        close_idx = s.span.hi - 1
        body = self.stmt_body(open_idx, close_idx, close_idx, s.body)

        def render(indent: int, width: int = 0) -> list[str]:
            lines = self.doc_lines([*head, " {"], indent)
            return self.braced(lines, body, indent, self.render_prepared)

        return render

    # -- declarations -------------------------------------------------------------------------
    def format(self) -> list[str]:
        d = self.decl
        lo, hi = d.span.lo, self.ext(d.span.hi, len(self.text))
        lead = self.take_inside(0, lo)
        method = getattr(self, "d_" + type(d).__name__, None)
        if method is None:
            raise _Unformattable(f"unknown declaration node {type(d).__name__}")
        body: list[str] = method(d)
        hoisted = self.take_inside(lo, hi)
        if any(c.is_doc for c in hoisted):
            raise _DocInside("a /// comment inside the declaration would become its documentation")
        lines = [c.text for c in lead] + [c.text for c in hoisted] + body
        prev = hi
        for c in self.take_inside(hi, len(self.text)):
            if prev == hi and not self.newline_between(hi, c.lo):
                lines[-1] += "  " + c.text
            else:
                if self.blank(prev, c.lo):
                    lines.append("")
                lines.append(c.text)
                self.comment_lines_after = True
            prev = c.hi
        if any(not c.taken for c in self.comments):  # pragma: no cover - defensive
            raise _Unformattable("a comment was not placed")
        return lines

    def d_UseDecl(self, d: ast.UseDecl) -> list[str]:
        return [f"use python {d.module.raw} as {d.alias.name}"]

    def d_ImportDecl(self, d: ast.ImportDecl) -> list[str]:
        return [f"import {d.path.raw}" + (f" as {d.alias.name}" if d.alias else "")]

    def _value_decl(self, kw: str, d: Any) -> list[str]:
        return self.doc_lines([f"{kw} {d.name.name} = ", self.expr(d.value)], 0)

    def d_ProgramDecl(self, d: ast.ProgramDecl) -> list[str]:
        return self._value_decl("program", d)

    def d_DataDecl(self, d: ast.DataDecl) -> list[str]:
        return self._value_decl("data", d)

    def d_MetricDecl(self, d: ast.MetricDecl) -> list[str]:
        return self._value_decl("metric", d)

    def d_RetrieverDecl(self, d: ast.RetrieverDecl) -> list[str]:
        return self._value_decl("retriever", d)

    def d_LmDecl(self, d: ast.LmDecl) -> list[str]:
        """``lm name = value`` and its settings: ``{ a = 1, b = 2 }`` on one line when that
        fits and holds no comment, else one setting a line, aligned on ``=``, each with a
        comma."""
        head = self.doc_lines([f"lm {d.name.name} = ", self.expr(d.value)], 0)
        value_hi = self.ext(d.value.span.hi, d.span.hi)
        if self.skip_trivia(value_hi) >= d.span.hi:  # no settings block
            return head
        open_idx = self.find(value_hi, "{")
        close_idx = d.span.hi - 1
        body = self.body(
            open_idx, close_idx, close_idx, [(s, s.span.lo) for s in d.settings], self._setting
        )
        body.align = lambda n: n.name.name
        if body.empty:
            head[-1] += " {}"  # kept: dropping it would change the tokens
            return head
        items = [f"{e.node.name.name} = {_render(e.data, 0)}" for e in body.entries]
        simple = not (body.header or body.dangling) and all(
            not (e.lead or e.hoisted or e.trail) and "\n" not in item
            for e, item in zip(body.entries, items, strict=True)
        )
        line = f"{head[-1]} {{ {', '.join(items)} }}"
        if simple and len(head) == 1 and len(line) <= WIDTH:
            return [line]

        def render(e: _Entry, indent: int) -> list[str]:
            # A comma after each setting: a trailing `// comment` then never follows a value
            # directly (where `//` could read as an operator).
            name = e.node.name.name.ljust(self.widths.get(id(e), 0))
            return self.doc_lines([name, " = ", e.data, ","], indent)

        head[-1] += " {"
        return self.braced(head, body, 0, render)

    def _setting(self, s: ast.LmSetting) -> Any:
        return self.expr(s.value)

    def _head(self, name: str, type_: Any, default: Any, col: int) -> str:
        doc: list[Any] = [f"{name}: {_type_str(type_)}"]
        if default is not None:
            doc += [" = ", self.expr(default)]
        return _render(doc, col)

    def _described(
        self, body: _Body, heads: dict[int, str], lead: Callable[[_Entry], str]
    ) -> Render:
        """Renderer for ``<lead><head>  "desc"`` lines, the descriptions in one column: two
        spaces after the longest one-line head among the entries that have one."""
        width = max(
            (
                len(heads[id(e)])
                for e in body.entries
                if id(e) in heads and e.node.desc is not None and "\n" not in heads[id(e)]
            ),
            default=0,
        )

        def render(e: _Entry, indent: int) -> list[str]:
            head = heads[id(e)]
            line = " " * indent + lead(e) + head
            if e.node.desc is not None:
                line += (
                    " " * (width - len(head) if "\n" not in head else 0) + "  " + e.node.desc.raw
                )
            return line.split("\n")

        return render

    def d_SignatureDecl(self, d: ast.SignatureDecl) -> list[str]:
        if d.shorthand is not None:
            return [f"signature {d.name.name} = {d.shorthand.raw}"]
        open_idx = self.find(d.name.span.hi, "{")
        close_idx = d.span.hi - 1
        items: list[tuple[Any, int]] = [(f, f.span.lo) for f in d.fields]
        if d.instructions is not None:
            kw = self.text.rfind("instructions", open_idx, d.instructions.span.lo)
            items.append((d.instructions, kw if kw >= 0 else d.instructions.span.lo))
        items.sort(key=lambda x: x[1])
        body = self.body(
            open_idx, close_idx, close_idx, items, lambda n: n,
            doc_sensitive=lambda n: isinstance(n, ast.FieldDecl),
        )  # fmt: skip
        heads = {
            id(e): self._head(e.node.name.name, e.node.type, e.node.default, INDENT + 4)
            for e in body.entries
            if isinstance(e.node, ast.FieldDecl) and e.verbatim is None
        }
        fields_render = self._described(body, heads, lambda e: f"{e.node.direction:<3} ")

        def render(e: _Entry, indent: int) -> list[str]:
            if isinstance(e.node, ast.Str):
                return [" " * indent + "instructions " + e.node.raw]
            return fields_render(e, indent)

        return self.braced([f"signature {d.name.name} {{"], body, 0, render)

    def d_TypeDecl(self, d: ast.TypeDecl) -> list[str]:
        open_idx = self.find(d.name.span.hi, "{")
        close_idx = d.span.hi - 1
        body = self.body(
            open_idx, close_idx, close_idx, [(f, f.span.lo) for f in d.fields], lambda n: n,
            doc_sensitive=lambda n: True,
        )  # fmt: skip
        heads = {
            id(e): self._head(e.node.name.name, e.node.type, e.node.default, INDENT)
            for e in body.entries
            if e.verbatim is None
        }
        one_line = self._one_line(
            f"type {d.name.name}", body, [heads.get(id(e), "") for e in body.entries]
        )
        if one_line is not None:
            return [one_line]
        return self.braced(
            [f"type {d.name.name} {{"], body, 0, self._described(body, heads, lambda e: "")
        )

    def d_EnumDecl(self, d: ast.EnumDecl) -> list[str]:
        open_idx = self.find(d.name.span.hi, "{")
        close_idx = d.span.hi - 1
        body = self.body(
            open_idx, close_idx, close_idx, [(m, m.span.lo) for m in d.members], lambda n: n
        )
        heads = {id(e): e.node.name.name for e in body.entries}
        one_line = self._one_line(f"enum {d.name.name}", body, list(heads.values()))
        if one_line is not None:
            return [one_line]
        return self.braced(
            [f"enum {d.name.name} {{"], body, 0, self._described(body, heads, lambda e: "")
        )

    def _one_line(self, head: str, body: _Body, items: list[str]) -> str | None:
        """``head { a, b }`` when nothing in the body needs a line of its own."""
        if body.header or body.dangling:
            return None
        for e, item in zip(body.entries, items, strict=True):
            if (
                e.lead
                or e.hoisted
                or e.trail
                or e.verbatim is not None
                or e.node.desc is not None
                or "\n" in item
            ):
                return None
        line = f"{head} {{ {', '.join(items)} }}" if items else f"{head} {{}}"
        return line if len(line) <= WIDTH else None

    def d_ModuleDecl(self, d: ast.ModuleDecl) -> list[str]:
        pos = d.name.span.hi
        params: Any = ""
        if d.has_params:
            popen = self.find(pos, "(")
            pclose = self.match(popen)
            params = self.container("(", ")", popen, pclose, d.params, self.param)
            pos = pclose + 1
        open_idx = self.find(pos, "{")
        close_idx = d.span.hi - 1
        body = self.body(
            open_idx, close_idx, close_idx, [(m, m.span.lo) for m in d.members_order], self.member,
            doc_sensitive=lambda n: isinstance(n, ast.SubmoduleDecl),
        )  # fmt: skip
        # Sub-modules align on `=` in runs not broken by a blank line or a `forward`.
        body.align = lambda n: n.name.name if isinstance(n, ast.SubmoduleDecl) else None

        def render(e: _Entry, indent: int) -> list[str]:
            if isinstance(e.node, ast.SubmoduleDecl):
                name = e.node.name.name.ljust(self.widths.get(id(e), 0))
                return self.doc_lines([name, " = ", e.data], indent)
            return self.render_prepared(e, indent)

        head = self.doc_lines([f"module {d.name.name}", params, " {"], 0)
        return self.braced(head, body, 0, render)

    def member(self, m: Any) -> Any:
        if isinstance(m, ast.SubmoduleDecl):
            return self.expr(m.value)
        popen = self.find(m.keyword.hi, "(")
        pclose = self.match(popen)
        params = self.container("(", ")", popen, pclose, m.params, self.param)
        open_idx = self.find(pclose + 1, "{")
        close_idx = m.span.hi - 1
        body = self.stmt_body(open_idx, close_idx, close_idx, m.body)
        return lambda indent, width=0: self.braced(
            self.doc_lines(["forward", params, " {"], indent), body, indent, self.render_prepared
        )

    def d_OptimizeDecl(self, d: ast.OptimizeDecl) -> list[str]:
        open_idx = self.find(d.target.span.hi, "{")
        close_idx = d.span.hi - 1
        body = self.body(
            open_idx,
            close_idx,
            close_idx,
            [(i, i.span.lo) for i in d.items],
            lambda i: self.expr(i.value),
        )
        width = max((len(i.key.name) for i in d.items), default=0)

        def render(e: _Entry, indent: int) -> list[str]:
            return self.doc_lines([e.node.key.name.ljust(width), " ", e.data], indent)

        return self.braced([f"optimize {d.target.name} {{"], body, 0, render)

    def d_TestDecl(self, d: ast.TestDecl) -> list[str]:
        open_idx = self.find(d.program.span.hi, "{")
        close_idx = d.span.hi - 1
        body = self.stmt_body(open_idx, close_idx, close_idx, d.items)
        # `given`, `reply` and `expect` line up: their keywords are padded to the longest used.
        keyword = {ast.GivenItem: "given", ast.ExpectItem: "expect", ast.ReplyItem: "reply"}
        width = max((len(keyword[type(i)]) for i in d.items if type(i) in keyword), default=0)
        self.widths.update((id(e), width) for e in body.entries if type(e.node) in keyword)
        return self.braced(
            [f"test {d.name.name} for {d.program.name} {{"], body, 0, self.render_prepared
        )


# ---- whole files --------------------------------------------------------------------------


def _trim_blank_lines(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def _comment_lines(block: ast.Block) -> list[str]:
    lines: list[str] = []
    prev = 0
    for c in sorted(block.comments, key=lambda c: c.span.lo):
        if lines and block.text.count("\n", prev, c.span.lo) >= 2:
            lines.append("")
        lines.append(c.text.rstrip())
        prev = c.span.hi
    return lines


_TOKEN = re.compile(
    rf"{lexspec.STRING}|{lexspec.COMMENT}|\s+"
    rf"|{lexspec.NAME}|{lexspec.NUMBER}|[=!<>]=|.",
    re.S,
)


def _tokens(text: str) -> list[str]:
    """The tokens that carry meaning: no blanks, comments, parentheses or commas."""
    return [
        t
        for t in _TOKEN.findall(text)
        if not t.isspace() and not t.startswith("//") and t not in "(),"
    ]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _same(a: Any, b: Any) -> bool:
    """Whether two AST values are equal when spans are left out."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Span):
        return True
    names = _FIELD_NAMES.get(type(a))
    if names is None:
        if not is_dataclass(a):
            if isinstance(a, tuple | list):
                return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
            return bool(a == b)
        names = _FIELD_NAMES[type(a)] = tuple(f.name for f in fields(a))
    return all(_same(getattr(a, n), getattr(b, n)) for n in names)


def _same_meaning(block: ast.Block, formatted: str, path: str) -> str | None:
    """Why ``formatted`` is not an exact re-layout of ``block``, or None when it is."""
    again = parse(formatted, path)
    if again.diagnostics:
        return f"the output does not parse: {again.diagnostics[0].message}"
    if not _same(again.decls, [block.decl]):
        return "the output parses to a different AST"
    if _tokens(formatted) != _tokens(block.text):
        return "the output has different tokens"
    if sorted(c.text.rstrip() for c in again.comments) != sorted(
        c.text.rstrip() for c in block.comments
    ):
        return "the output has different comments"
    return None


@dataclass(slots=True)
class _Formatted:
    lines: list[str]
    # A one-line declaration that a next one of the same group may follow directly, with no
    # blank line: "import" (`use`/`import`), "lm" or "retriever"; None for the rest.
    group: str | None = None
    blank_after: bool = True  # the input had a blank line after this block


def _line_group(decl: Any, lines: list[str], comments_after: bool) -> str | None:
    if comments_after:
        return None
    if isinstance(decl, ast.UseDecl | ast.ImportDecl):
        return "import"
    if isinstance(decl, ast.LmDecl | ast.RetrieverDecl) and len(lines) == 1 and not decl.doc:
        return "lm" if isinstance(decl, ast.LmDecl) else "retriever"
    return None


#: `lm NAME = ...` / `retriever NAME = ...`: what aligns in a run of them.
_RESOURCE_HEAD = re.compile(r"^(lm|retriever) ([A-Za-z_]\w*) = ")


def _aligned(run: list[list[str]]) -> list[str]:
    """A run of one-line ``lm`` (or ``retriever``) declarations, ``=`` aligned."""
    heads = [_RESOURCE_HEAD.match(lines[0]) for lines in run]
    if any(h is None for h in heads):
        return [lines[0] for lines in run]
    width = max(len(h.group(2)) for h in heads if h is not None)
    return [
        f"{h.group(1)} {h.group(2).ljust(width)} = {lines[0][h.end() :]}"
        for h, lines in zip(heads, run, strict=True)
        if h is not None
    ]


def _format_block(block: ast.Block, path: str, on_mismatch: OnMismatch) -> _Formatted:
    verbatim = _Formatted(_trim_blank_lines(block.text))
    if block.errors:
        return verbatim
    if block.decl is None:
        return _Formatted(_comment_lines(block))
    formatter = _BlockFormatter(block)
    try:
        lines = formatter.format()
    except _DocInside:
        return verbatim
    except Exception:
        if on_mismatch == "raise":
            raise
        return verbatim
    problem = _same_meaning(block, "\n".join(lines) + "\n", path)
    if problem is not None:
        if on_mismatch == "raise":
            raise AssertionError(f"formatter bug in {path} at offset {block.span.start}: {problem}")
        return verbatim
    tail = block.text[len(block.text.rstrip()) :]
    return _Formatted(
        lines,
        group=_line_group(block.decl, lines, bool(formatter.comment_lines_after)),
        blank_after=tail.count("\n") >= 2,
    )


class FormatCache:
    """Formatted blocks by text, reused when the same file is formatted again after an edit
    (the language server keeps one per document): only changed blocks are re-formatted."""

    def __init__(self) -> None:
        self.blocks = BlockCache()
        self.formatted: dict[str, _Formatted] = {}


def format_with_diagnostics(
    text: str,
    path: str = "<string>",
    *,
    on_mismatch: OnMismatch = "keep",
    cache: FormatCache | None = None,
) -> tuple[str, list[Diagnostic]]:
    """Format ``text`` and return it with the file's parse diagnostics.

    Blocks with syntax errors are kept as written (their diagnostics are returned); every
    other block is formatted. Declarations are separated by one blank line, except that
    ``use``/``import`` lines written one under the other stay together, and so do one-line
    ``lm`` (or ``retriever``) declarations, aligned on ``=``.

    Args:
        text: the file's contents (``\\r\\n`` line ends are read as ``\\n``).
        path: the file name, used in diagnostics.
        on_mismatch: what to do when a formatted block would not parse back to the same
            declaration (a formatter bug): ``"keep"`` the block as written, or ``"raise"``
            ``AssertionError`` (for tests).
        cache: blocks formatted by an earlier call, by text (a block's formatting depends
            on its text only).
    """
    text = text.replace("\r\n", "\n")
    parsed = parse(text, path, cache=cache.blocks if cache is not None else None)
    runs: list[list[_Formatted]] = []  # blocks that follow one another with no blank line
    done: dict[str, _Formatted] = {}
    for block in parsed.blocks:
        current = cache.formatted.get(block.text) if cache is not None else None
        if current is None:
            current = _format_block(block, path, on_mismatch)
        done[block.text] = current
        if not current.lines:
            continue
        prev = runs[-1][-1] if runs else None
        if (
            prev is not None
            and current.group is not None
            and prev.group == current.group
            and not prev.blank_after
        ):
            runs[-1].append(current)
        else:
            runs.append([current])
    if cache is not None:
        cache.formatted = done
    out: list[str] = []
    for run in runs:
        if len(run) > 1 and run[0].group in ("lm", "retriever"):
            out.append("\n".join(_aligned([f.lines for f in run])))
        else:
            out.append("\n".join(line for f in run for line in f.lines))
    return ("\n\n".join(out) + "\n" if out else ""), parsed.diagnostics


def format_source(text: str, path: str = "<string>", *, on_mismatch: OnMismatch = "keep") -> str:
    """The canonical formatting of a whole ``.dsx`` file.

    Idempotent, keeps every comment, and never changes what the file means; a block that
    does not parse is kept as written. See :func:`format_with_diagnostics` for the options.
    """
    return format_with_diagnostics(text, path, on_mismatch=on_mismatch)[0]


def check_formatted(text: str, path: str = "<string>") -> bool:
    """Whether ``text`` is already formatted (``format_source(text) == text``)."""
    return format_source(text, path) == text
