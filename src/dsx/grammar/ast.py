"""The .dsx syntax tree: small immutable nodes, each with a full :class:`~dsx.diagnostics.Span`.

Identifiers are :class:`Ident` nodes (with their own span) so that go-to-definition,
references and rename can point at exactly the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dsx.diagnostics import Span

__all__ = [
    "Arg",
    "Assign",
    "AugAssign",
    "Break",
    "Continue",
    "IfExp",
    "ListComp",
    "SetItem",
    "Slice",
    "While",
    "Attr",
    "BinOp",
    "Call",
    "CompFor",
    "Check",
    "Comment",
    "DataDecl",
    "Decl",
    "DictExpr",
    "EnumDecl",
    "EnumMember",
    "ExpectItem",
    "Expr",
    "ExprStmt",
    "FieldDecl",
    "For",
    "ForwardDecl",
    "GenericType",
    "GivenItem",
    "Ident",
    "If",
    "ImportDecl",
    "ListExpr",
    "LiteralType",
    "LmDecl",
    "LmSetting",
    "Lit",
    "MetricDecl",
    "ModuleDecl",
    "NameRef",
    "Neg",
    "Not",
    "OptItem",
    "OptimizeDecl",
    "OptionalType",
    "Param",
    "ProgramDecl",
    "RecordField",
    "ReplyField",
    "ReplyItem",
    "RetrieverDecl",
    "Return",
    "SignatureDecl",
    "Stmt",
    "Str",
    "SubmoduleDecl",
    "TestDecl",
    "TypeDecl",
    "TypeExpr",
    "NamedType",
    "UnionType",
    "UseDecl",
    "Index",
    "Pair",
]


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # including the leading // or ///
    span: Span

    @property
    def is_doc(self) -> bool:
        return self.text.startswith("///")


# ---- types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamedType:
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class GenericType:
    name: Ident
    args: tuple[TypeExpr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class OptionalType:
    inner: TypeExpr
    span: Span


@dataclass(frozen=True, slots=True)
class UnionType:
    options: tuple[TypeExpr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class LiteralType:
    value: str | int | float | bool
    raw: str
    span: Span


TypeExpr = NamedType | GenericType | OptionalType | UnionType | LiteralType

# ---- expressions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameRef:
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class Lit:
    """A number, ``true``, ``false`` or ``none``."""

    value: int | float | bool | None
    raw: str
    span: Span


@dataclass(frozen=True, slots=True)
class Str:
    """A string literal; ``value`` is decoded (escapes applied), ``raw`` as written."""

    value: str
    raw: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Pair:
    key: Expr
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class DictExpr:
    pairs: tuple[Pair, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    index: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Slice:
    """``obj[lo:hi]`` / ``obj[lo:hi:step]``; each part may be omitted."""

    obj: Expr
    lo: Expr | None
    hi: Expr | None
    step: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class IfExp:
    """``then if cond else orelse``."""

    cond: Expr
    then: Expr
    orelse: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class CompFor:
    """A comprehension's later ``for a, b in iter if cond ...`` clause."""

    targets: tuple[Ident, ...]
    iter: Expr
    conds: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ListComp:
    """``[elt for a, b in iter if cond ... for c in ... if ...]``; its names are local to
    it. The first ``for`` clause is held inline; ``more`` are the later ones, each nested in
    the one before (as in Python)."""

    elt: Expr
    targets: tuple[Ident, ...]
    iter: Expr
    conds: tuple[Expr, ...]
    span: Span
    more: tuple[CompFor, ...] = ()


@dataclass(frozen=True, slots=True)
class Arg:
    name: Ident | None  # None for a positional argument
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    func: Expr
    args: tuple[Arg, ...]
    span: Span

    def kwarg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name is not None and a.name.name == name), None)


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * / % == != < <= > >= and or in "not in" is "is not"
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span


Expr = (
    NameRef
    | Lit
    | Str
    | ListExpr
    | DictExpr
    | Attr
    | Index
    | Slice
    | Call
    | BinOp
    | Not
    | Neg
    | IfExp
    | ListComp
)

# ---- statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assign:
    target: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class SetItem:
    """``obj[index] = value``."""

    target: Index
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class AugAssign:
    """``target op= value`` (``+= -= *= /= %=``); the target is a name or an item."""

    target: NameRef | Index
    op: str  # the operator without `=`: + - * / %
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None  # an `else if` is a single If in the tuple
    span: Span
    else_if: bool = False


@dataclass(frozen=True, slots=True)
class For:
    targets: tuple[Ident, ...]  # `for i, x in ...` unpacks each item
    iter: Expr
    body: tuple[Stmt, ...]
    span: Span

    @property
    def var(self) -> Ident:
        return self.targets[0]


@dataclass(frozen=True, slots=True)
class While:
    """``while cond max bound { ... }``; ``bound`` is ``None`` when missing (an error)."""

    cond: Expr
    bound: Expr | None
    body: tuple[Stmt, ...]
    span: Span
    keyword: Span  # the `while` keyword


@dataclass(frozen=True, slots=True)
class Break:
    span: Span


@dataclass(frozen=True, slots=True)
class Continue:
    span: Span


@dataclass(frozen=True, slots=True)
class Check:
    kind: Literal["assert", "suggest"]
    cond: Expr
    message: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class ExprStmt:
    expr: Expr
    span: Span


Stmt = (
    Assign | SetItem | AugAssign | Return | If | For | While | Break | Continue | Check | ExprStmt
)

# ---- declarations -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UseDecl:
    module: Str
    alias: Ident
    span: Span
    doc: str | None = None

    @property
    def name(self) -> Ident:
        return self.alias


@dataclass(frozen=True, slots=True)
class ImportDecl:
    path: Str
    alias: Ident | None
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class FieldDecl:
    direction: Literal["in", "out"]
    name: Ident
    type: TypeExpr
    default: Expr | None
    desc: Str | None
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class SignatureDecl:
    name: Ident
    fields: tuple[FieldDecl, ...]
    shorthand: Str | None  # `signature X = "a -> b"`
    instructions: Str | None  # an `instructions "..."` item
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class RecordField:
    name: Ident
    type: TypeExpr
    default: Expr | None
    desc: Str | None
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class TypeDecl:
    name: Ident
    fields: tuple[RecordField, ...]
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class EnumMember:
    name: Ident
    desc: Str | None
    span: Span


@dataclass(frozen=True, slots=True)
class EnumDecl:
    name: Ident
    members: tuple[EnumMember, ...]
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Param:
    name: Ident
    type: TypeExpr | None
    default: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class SubmoduleDecl:
    name: Ident
    value: Expr
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class ForwardDecl:
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    keyword: Span  # the `forward` keyword


@dataclass(frozen=True, slots=True)
class ModuleDecl:
    name: Ident
    params: tuple[Param, ...]
    has_params: bool
    submodules: tuple[SubmoduleDecl, ...]
    forward: ForwardDecl | None
    members_order: tuple[SubmoduleDecl | ForwardDecl, ...]
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class ProgramDecl:
    name: Ident
    value: Expr
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class DataDecl:
    name: Ident
    value: Expr
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class MetricDecl:
    name: Ident
    value: Expr
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class OptItem:
    key: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class OptimizeDecl:
    target: Ident
    items: tuple[OptItem, ...]
    span: Span
    doc: str | None = None

    def get(self, key: str) -> OptItem | None:
        return next((i for i in self.items if i.key.name == key), None)


@dataclass(frozen=True, slots=True)
class GivenItem:
    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class ExpectItem:
    """``expect name = value``, or ``expect name.field.field = value`` into a record."""

    name: Ident
    value: Expr
    span: Span
    path: tuple[Ident, ...] = ()  # the fields after the output's name


@dataclass(frozen=True, slots=True)
class ReplyField:
    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class ReplyItem:
    """``reply { field = value, ... }`` (output values, rendered in the adapter's reply
    format) or ``reply "text"`` (the completion verbatim): the LM's next scripted reply."""

    text: Str | None
    fields: tuple[ReplyField, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class TestDecl:
    name: Ident
    program: Ident
    items: tuple[GivenItem | ExpectItem | ReplyItem | Check, ...]
    span: Span
    doc: str | None = None

    __test__ = False  # not a pytest test class


@dataclass(frozen=True, slots=True)
class LmSetting:
    """``name = value`` in an ``lm`` declaration's settings block."""

    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class LmDecl:
    """``lm fast = "openai/gpt-4o-mini" { temperature = 0 }`` or
    ``lm robust = fallback(fast, local) { retries = 2 }``: a named LM for predictors."""

    name: Ident
    value: Expr
    settings: tuple[LmSetting, ...]
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class RetrieverDecl:
    """``retriever wiki = Chroma(path = "data/chroma", k = 5)``: a named retriever."""

    name: Ident
    value: Expr
    span: Span
    doc: str | None = None


Decl = (
    UseDecl
    | ImportDecl
    | SignatureDecl
    | TypeDecl
    | EnumDecl
    | ModuleDecl
    | ProgramDecl
    | DataDecl
    | MetricDecl
    | OptimizeDecl
    | TestDecl
    | LmDecl
    | RetrieverDecl
)


@dataclass(slots=True)
class Block:
    """One top-level block of a file as parsed on its own."""

    span: Span
    text: str
    decl: Any  # Decl | None when it failed to parse
    comments: list[Comment] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)  # Diagnostics
    # The lines left out to parse it despite a syntax error (its `decl` is then what the
    # rest says); "" when it parsed as written.
    recovered: str = ""
