"""Lark callbacks that build the AST directly while parsing (no intermediate tree).

The parser runs with ``keep_all_tokens=True`` so that every node's span covers its
keywords and brackets; callbacks pick the meaningful children out.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import textwrap
from typing import TYPE_CHECKING, Any, Literal, cast

from lark import Token, Transformer

from dsx.diagnostics import Diagnostic, DiagnosticCode, Origin, Related, Span, make
from dsx.grammar import ast
from dsx.grammar.precedence import COMPARISON as COMPARISON_PRECEDENCE
from dsx.grammar.precedence import NOT as NOT_PRECEDENCE
from dsx.grammar.precedence import PRECEDENCE, operand_precedence

__all__ = [
    "COMPARISON_PRECEDENCE",
    "NOT_PRECEDENCE",
    "PRECEDENCE",
    "AstError",
    "ToAst",
    "decode_string",
    "operand_precedence",
]


class AstError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "0": "\0",
    "{": "\\{",
    "}": "\\}",
}
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]{1,6}\}|.)", re.S)


def decode_string(raw: str) -> str:
    """The value of a string literal as written (``raw`` includes the quotes)."""
    if raw.startswith('"""'):
        body = raw[3:-3]
        if body.startswith("\n"):
            body = body[1:]
        body = textwrap.dedent(body).rstrip()
    else:
        body = raw[1:-1]
    if "\\" not in body:
        return body

    def repl(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc.startswith("u{"):
            return chr(int(esc[2:-1], 16))
        return _ESCAPES.get(esc, "\\" + esc)

    return _ESCAPE.sub(repl, body)


class _Default:
    __slots__ = ("expr",)

    def __init__(self, expr: Any) -> None:
        self.expr = expr


if TYPE_CHECKING:

    class _Token(Token):
        """A token from our lexer (``_lexer.DsxLexer``), which always sets both offsets."""

        start_pos: int
        end_pos: int

else:
    _Token = Token


def _is_tok(x: Any, type_: str | None = None) -> bool:
    return isinstance(x, Token) and (type_ is None or x.type == type_)


class ToAst(Transformer):
    """Inline transformer: ``origin`` and ``comments`` are set per block before parsing."""

    origin: Origin
    comments: list[ast.Comment]

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.origin = Origin("<string>")
        self.comments = []
        self.shift = 0  # added to token offsets (fragments parsed from inside strings)
        self.problems: list[Diagnostic] = []  # non-syntax problems found while building the AST
        self._prefix_not: set[int] = set()  # `not` nodes from a prefix, not from parentheses

    # -- helpers --------------------------------------------------------------------------
    def _lo(self, x: Any) -> int:
        return x.start_pos + self.shift if isinstance(x, _Token) else x.span.lo

    def _hi(self, x: Any) -> int:
        return x.end_pos + self.shift if isinstance(x, _Token) else x.span.hi

    def _span(self, children: list[Any]) -> Span:
        items = [c for c in children if c is not None and not isinstance(c, _Default | tuple)]
        return Span(self.origin, self._lo(items[0]), self._hi(items[-1]))

    def _tspan(self, tok: _Token) -> Span:
        return Span(self.origin, tok.start_pos + self.shift, tok.end_pos + self.shift)

    def _ident(self, tok: _Token) -> ast.Ident:
        return ast.Ident(str(tok), self._tspan(tok))

    def _str(self, tok: _Token) -> ast.Str:
        return ast.Str(decode_string(str(tok)), str(tok), self._tspan(tok))

    def _doc(self, lo: int, after: int = -1) -> str | None:
        lines = [
            c.text[3:].strip() if c.text[3:4] == " " else c.text[3:]
            for c in self.comments
            if c.is_doc and after <= c.span.lo < lo
        ]
        if not lines:
            return None
        return "\n".join(line.rstrip() for line in lines).strip() or None

    @staticmethod
    def _nodes(children: list[Any]) -> list[Any]:
        return [c for c in children if c is not None and not isinstance(c, Token)]

    # -- declarations ---------------------------------------------------------------------
    def block(self, c: list[Any]) -> Any:
        decl = c[0]
        if hasattr(decl, "doc"):
            doc = self._doc(decl.span.lo)
            if doc:
                decl = dataclasses.replace(decl, doc=doc)
        return decl

    def use_decl(self, c: list[Any]) -> ast.UseDecl:
        return ast.UseDecl(self._str(c[2]), self._ident(c[4]), self._span(c))

    def import_decl(self, c: list[Any]) -> ast.ImportDecl:
        alias = self._ident(c[3]) if len(c) > 3 else None
        return ast.ImportDecl(self._str(c[1]), alias, self._span(c))

    def signature_block(self, c: list[Any]) -> ast.SignatureDecl:
        fields, instructions, prev = [], None, c[2].end_pos
        for item in c[3:-1]:
            if isinstance(item, tuple):
                if instructions is not None:
                    self.problems.append(
                        make(
                            DiagnosticCode.DUPLICATE_FIELD,
                            f"signature `{c[1]}` has two `instructions` items; keep one "
                            "(or write the instructions as a `///` doc comment above it)",
                            item[1].span,
                            related=(Related(instructions.span, "the first `instructions`"),),
                        )
                    )
                    continue  # keep the first
                instructions = item[1]
                prev = item[1].span.hi
            else:
                doc = self._doc(item.span.lo, prev)
                fields.append(dataclasses.replace(item, doc=doc) if doc else item)
                prev = item.span.hi
        return ast.SignatureDecl(
            self._ident(c[1]), tuple(fields), None, instructions, self._span(c)
        )

    def signature_short(self, c: list[Any]) -> ast.SignatureDecl:
        return ast.SignatureDecl(self._ident(c[1]), (), self._str(c[3]), None, self._span(c))

    def instructions_item(self, c: list[Any]) -> tuple[str, ast.Str]:
        return ("instructions", self._str(c[1]))

    def direction(self, c: list[Any]) -> Token:
        return c[0]

    def check_kind(self, c: list[Any]) -> Token:
        return c[0]

    def default(self, c: list[Any]) -> _Default:
        return _Default(c[1])

    def field_decl(self, c: list[Any]) -> ast.FieldDecl:
        direction, name, _colon, type_ = c[0], c[1], c[2], c[3]
        default = next((x.expr for x in c[4:] if isinstance(x, _Default)), None)
        desc_tok = next((x for x in c[4:] if _is_tok(x, "STRING")), None)
        last = desc_tok or (default if default is not None else type_)
        span = Span(self.origin, self._lo(direction), self._hi(last))
        return ast.FieldDecl(
            cast(Literal["in", "out"], str(direction)),
            self._ident(name),
            type_,
            default,
            self._str(desc_tok) if desc_tok else None,
            span,
        )

    def type_decl(self, c: list[Any]) -> ast.TypeDecl:
        fields, prev = [], c[2].end_pos
        for item in self._nodes(c[3:-1]):
            doc = self._doc(item.span.lo, prev)
            fields.append(dataclasses.replace(item, doc=doc) if doc else item)
            prev = item.span.hi
        return ast.TypeDecl(self._ident(c[1]), tuple(fields), self._span(c))

    def record_field(self, c: list[Any]) -> ast.RecordField:
        default = next((x.expr for x in c[3:] if isinstance(x, _Default)), None)
        desc_tok = next((x for x in c[3:] if _is_tok(x, "STRING")), None)
        last = desc_tok or (default if default is not None else c[2])
        span = Span(self.origin, self._lo(c[0]), self._hi(last))
        return ast.RecordField(
            self._ident(c[0]), c[2], default, self._str(desc_tok) if desc_tok else None, span
        )

    def enum_decl(self, c: list[Any]) -> ast.EnumDecl:
        return ast.EnumDecl(self._ident(c[1]), tuple(self._nodes(c[3:-1])), self._span(c))

    def enum_member(self, c: list[Any]) -> ast.EnumMember:
        desc = self._str(c[1]) if len(c) > 1 and c[1] is not None else None
        return ast.EnumMember(self._ident(c[0]), desc, self._span(c))

    def params(self, c: list[Any]) -> tuple[ast.Param, ...]:
        return tuple(self._nodes(c))

    def param(self, c: list[Any]) -> ast.Param:
        type_ = None
        default = None
        for i, x in enumerate(c):
            if _is_tok(x, "COLON"):
                type_ = c[i + 1]
            elif isinstance(x, _Default):
                default = x.expr
        last = default if default is not None else type_ if type_ is not None else c[0]
        return ast.Param(
            self._ident(c[0]), type_, default, Span(self.origin, self._lo(c[0]), self._hi(last))
        )

    def module_decl(self, c: list[Any]) -> ast.ModuleDecl:
        has_params = isinstance(c[2], tuple)
        params = c[2] if has_params else ()
        members = [
            m
            for m in c[3 if has_params else 2 :]
            if isinstance(m, ast.SubmoduleDecl | ast.ForwardDecl)
        ]
        subs, forward, prev = [], None, (c[3] if has_params else c[2]).end_pos
        ordered: list[Any] = []
        for m in members:
            if isinstance(m, ast.SubmoduleDecl):
                doc = self._doc(m.span.lo, prev)
                m = dataclasses.replace(m, doc=doc) if doc else m
                subs.append(m)
            elif forward is None:
                forward = m
            ordered.append(m)
            prev = m.span.hi
        return ast.ModuleDecl(
            self._ident(c[1]),
            params,
            has_params,
            tuple(subs),
            forward,
            tuple(ordered),
            self._span(c),
        )

    def submodule(self, c: list[Any]) -> ast.SubmoduleDecl:
        return ast.SubmoduleDecl(self._ident(c[0]), c[2], self._span(c))

    def forward(self, c: list[Any]) -> ast.ForwardDecl:
        body = c[2]
        span = Span(self.origin, self._lo(c[0]), body[1])
        return ast.ForwardDecl(c[1], body[0], span, self._tspan(c[0]))

    def program_decl(self, c: list[Any]) -> ast.ProgramDecl:
        return ast.ProgramDecl(self._ident(c[1]), c[3], self._span(c))

    def data_decl(self, c: list[Any]) -> ast.DataDecl:
        return ast.DataDecl(self._ident(c[1]), c[3], self._span(c))

    def metric_decl(self, c: list[Any]) -> ast.MetricDecl:
        return ast.MetricDecl(self._ident(c[1]), c[3], self._span(c))

    def optimize_decl(self, c: list[Any]) -> ast.OptimizeDecl:
        return ast.OptimizeDecl(self._ident(c[1]), tuple(self._nodes(c[3:-1])), self._span(c))

    def opt_item(self, c: list[Any]) -> ast.OptItem:
        return ast.OptItem(self._ident(c[0]), c[1], self._span(c))

    def test_decl(self, c: list[Any]) -> ast.TestDecl:
        return ast.TestDecl(
            self._ident(c[1]), self._ident(c[3]), tuple(self._nodes(c[5:-1])), self._span(c)
        )

    def given_item(self, c: list[Any]) -> ast.GivenItem:
        return ast.GivenItem(self._ident(c[1]), c[3], self._span(c))

    def expect_item(self, c: list[Any]) -> ast.ExpectItem:
        names = [self._ident(t) for t in c[1:-2] if _is_tok(t, "NAME")]
        return ast.ExpectItem(names[0], c[-1], self._span(c), tuple(names[1:]))

    def reply_text(self, c: list[Any]) -> ast.ReplyItem:
        return ast.ReplyItem(self._str(c[1]), (), self._span(c))

    def reply_fields(self, c: list[Any]) -> ast.ReplyItem:
        fields = tuple(x for x in c if isinstance(x, ast.ReplyField))
        return ast.ReplyItem(None, fields, self._span(c))

    def reply_field(self, c: list[Any]) -> ast.ReplyField:
        return ast.ReplyField(self._ident(c[0]), c[2], self._span(c))

    def lm_decl(self, c: list[Any]) -> ast.LmDecl:
        settings = tuple(x for x in c if isinstance(x, ast.LmSetting))
        return ast.LmDecl(self._ident(c[1]), c[3], settings, self._span(c))

    def lm_setting(self, c: list[Any]) -> ast.LmSetting:
        return ast.LmSetting(self._ident(c[0]), c[2], self._span(c))

    def retriever_decl(self, c: list[Any]) -> ast.RetrieverDecl:
        return ast.RetrieverDecl(self._ident(c[1]), c[3], self._span(c))

    # -- types ----------------------------------------------------------------------------
    def union_type(self, c: list[Any]) -> ast.UnionType:
        left, right = c[0], c[2]
        options = (*left.options, right) if isinstance(left, ast.UnionType) else (left, right)
        return ast.UnionType(options, self._span(c))

    def optional_type(self, c: list[Any]) -> ast.OptionalType:
        return ast.OptionalType(c[0], self._span(c))

    def named_type(self, c: list[Any]) -> ast.NamedType:
        return ast.NamedType(self._ident(c[0]), self._tspan(c[0]))

    def generic_type(self, c: list[Any]) -> ast.GenericType:
        return ast.GenericType(self._ident(c[0]), tuple(self._nodes(c[1:])), self._span(c))

    def literal_type(self, c: list[Any]) -> ast.LiteralType:
        tok = c[0]
        raw = str(tok)
        value: Any
        if tok.type == "STRING":
            value = decode_string(raw)
        elif tok.type == "TRUE":
            value = True
        elif tok.type == "FALSE":
            value = False
        else:
            value = _number(raw)
        return ast.LiteralType(value, raw, self._tspan(tok))

    def base_type(self, c: list[Any]) -> Any:
        return c[1]  # "(" type ")"

    # -- statements -----------------------------------------------------------------------
    def body(self, c: list[Any]) -> tuple[tuple[Any, ...], int]:
        return tuple(self._nodes(c[1:-1])), self._hi(c[-1])

    def assign(self, c: list[Any]) -> Any:
        target, value = c[0], c[2]
        span = self._span(c)
        if isinstance(target, ast.NameRef):
            return ast.Assign(target.name, value, span)
        if isinstance(target, ast.Index):
            return ast.SetItem(target, value, span)
        return self._bad_target(target, value, span)

    def aug_assign(self, c: list[Any]) -> Any:
        target, op, value = c[0], c[1], c[2]
        span = self._span(c)
        if isinstance(target, ast.NameRef | ast.Index):
            return ast.AugAssign(target, op[:-1], value, span)
        return self._bad_target(target, value, span)

    def augop(self, c: list[Any]) -> str:
        return str(c[0])

    def _bad_target(self, target: Any, value: Any, span: Span) -> ast.ExprStmt:
        what = "an attribute" if isinstance(target, ast.Attr) else "this expression"
        how = (
            "build a new value instead (records and predictions are read-only in .dsx)"
            if isinstance(target, ast.Attr)
            else "assign to a name (`x = ...`) or an item (`d[key] = ...`)"
        )
        self.problems.append(
            make(
                DiagnosticCode.INVALID_ASSIGNMENT_TARGET,
                f"cannot assign to {what}: {how}",
                target.span,
            )
        )
        return ast.ExprStmt(value, span)  # the value is still checked

    def return_stmt(self, c: list[Any]) -> ast.Return:
        return ast.Return(c[1], self._span(c))

    def if_stmt(self, c: list[Any]) -> ast.If:
        then, end = c[2]
        orelse = None
        else_if = False
        if len(c) > 3 and c[3] is not None:
            branch = c[4]
            if isinstance(branch, ast.If):
                orelse, end, else_if = (branch,), branch.span.hi, True
            else:
                orelse, end = branch
        return ast.If(c[1], then, orelse, Span(self.origin, self._lo(c[0]), end), else_if)

    def for_stmt(self, c: list[Any]) -> ast.For:
        body, end = c[4]
        return ast.For(c[1], c[3], body, Span(self.origin, self._lo(c[0]), end))

    def targets(self, c: list[Any]) -> tuple[ast.Ident, ...]:
        return tuple(self._ident(t) for t in c if _is_tok(t) and t.type != "COMMA")

    def while_stmt(self, c: list[Any]) -> ast.While:
        body, end = c[-1]
        bound = c[3] if len(c) > 3 and c[2] is not None else None
        return ast.While(
            c[1], bound, body, Span(self.origin, self._lo(c[0]), end), self._tspan(c[0])
        )

    def break_stmt(self, c: list[Any]) -> ast.Break:
        return ast.Break(self._tspan(c[0]))

    def continue_stmt(self, c: list[Any]) -> ast.Continue:
        return ast.Continue(self._tspan(c[0]))

    def check_stmt(self, c: list[Any]) -> ast.Check:
        message = c[3] if len(c) > 3 else None
        return ast.Check(str(c[0]), c[1], message, self._span(c))  # type: ignore[arg-type]

    def expr_stmt(self, c: list[Any]) -> ast.ExprStmt:
        return ast.ExprStmt(c[0], c[0].span)

    # -- expressions ----------------------------------------------------------------------
    def binop(self, c: list[Any]) -> str:
        return " ".join(str(t) for t in c)

    def not_op(self, c: list[Any]) -> ast.Not:
        node = ast.Not(c[1], self._span(c))
        self._prefix_not.add(id(node))
        return node

    def opseq(self, c: list[Any]) -> Any:
        """Build the operator tree of ``operand (op operand)+`` by precedence climbing."""
        operands = c[0::2]
        ops = c[1::2]
        pos = 0

        def operand() -> Any:
            nonlocal pos
            node = operands[pos]
            if isinstance(node, ast.Not) and id(node) in self._prefix_not:
                # `not` binds looser than comparisons: `not a == b` is `not (a == b)`.
                self._prefix_not.discard(id(node))
                operands[pos] = node.operand
                inner = climb(NOT_PRECEDENCE + 1)
                return ast.Not(inner, Span(self.origin, node.span.lo, inner.span.hi))
            return node

        def climb(min_bp: int) -> Any:
            nonlocal pos
            left = operand()
            while pos < len(ops) and PRECEDENCE[ops[pos]] >= min_bp:
                op = ops[pos]
                pos += 1
                right = climb(PRECEDENCE[op] + 1)
                left = ast.BinOp(op, left, right, Span(self.origin, left.span.lo, right.span.hi))
            return left

        return climb(0)

    def neg(self, c: list[Any]) -> ast.Neg:
        return ast.Neg(c[1], self._span(c))

    def attr(self, c: list[Any]) -> ast.Attr:
        return ast.Attr(c[0], self._ident(c[2]), self._span(c))

    def index(self, c: list[Any]) -> ast.Index:
        return ast.Index(c[0], c[2], self._span(c))

    def slice(self, c: list[Any]) -> ast.Slice:
        parts: list[Any] = [None]
        for x in c[2:-1]:
            if _is_tok(x, "COLON"):
                parts.append(None)
            elif x is not None:
                parts[-1] = x
        parts += [None] * (3 - len(parts))
        return ast.Slice(c[0], parts[0], parts[1], parts[2], self._span(c))

    def cond_expr(self, c: list[Any]) -> ast.IfExp:
        return ast.IfExp(c[2], c[0], c[4], self._span(c))

    def list_comp(self, c: list[Any]) -> ast.ListComp:
        first, *more = c[2:-1]
        return ast.ListComp(
            c[1], first.targets, first.iter, first.conds, self._span(c), tuple(more)
        )

    def comp_for(self, c: list[Any]) -> ast.CompFor:
        conds = tuple(x for x in c[4:] if x is not None and not _is_tok(x))
        return ast.CompFor(c[1], c[3], conds, self._span(c))

    def call(self, c: list[Any]) -> ast.Call:
        return ast.Call(c[0], tuple(self._nodes(c[1:])), self._span(c))

    def kwarg(self, c: list[Any]) -> ast.Arg:
        return ast.Arg(self._ident(c[0]), c[2], self._span(c))

    def posarg(self, c: list[Any]) -> ast.Arg:
        return ast.Arg(None, c[0], c[0].span)

    def name(self, c: list[Any]) -> ast.NameRef:
        return ast.NameRef(self._ident(c[0]), self._tspan(c[0]))

    def number(self, c: list[Any]) -> ast.Lit:
        return ast.Lit(_number(str(c[0])), str(c[0]), self._tspan(c[0]))

    def string(self, c: list[Any]) -> ast.Str:
        return self._str(c[0])

    def true(self, c: list[Any]) -> ast.Lit:
        return ast.Lit(True, "true", self._tspan(c[0]))

    def false(self, c: list[Any]) -> ast.Lit:
        return ast.Lit(False, "false", self._tspan(c[0]))

    def none(self, c: list[Any]) -> ast.Lit:
        return ast.Lit(None, "none", self._tspan(c[0]))

    # `list` and `dict` are rule callbacks (Lark calls methods by rule name); below them,
    # a bare `list` in an annotation would mean the method, hence `builtins.list`.
    def list(self, c: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(self._nodes(c[1:-1])), self._span(c))

    def dict(self, c: builtins.list[Any]) -> ast.DictExpr:
        return ast.DictExpr(tuple(self._nodes(c[1:-1])), self._span(c))

    def pair(self, c: builtins.list[Any]) -> ast.Pair:
        return ast.Pair(c[0], c[2], self._span(c))

    def atom(self, c: builtins.list[Any]) -> Any:
        self._prefix_not.discard(id(c[1]))  # a parenthesised `(not x)` is a closed operand
        return c[1]  # "(" expr ")"


def _number(raw: str) -> int | float:
    if any(ch in raw for ch in ".eE"):
        return float(raw)
    return int(raw)
