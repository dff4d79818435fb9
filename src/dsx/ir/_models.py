"""IR node models. Every node is a frozen pydantic model; expressions and statements are
discriminated unions on ``kind`` so that the JSON form is self-describing."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField

IR_VERSION = 1

JSONValue = Any


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Loc(NamedTuple):
    """Where a node came from: file and 1-based line/column range (a JSON array)."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


# ---- types ------------------------------------------------------------------------------

TypeKind = Literal[
    "str",
    "int",
    "float",
    "bool",
    "any",
    "list",
    "dict",
    "tuple",
    "optional",
    "union",
    "literal",
    "image",
    "history",
    "record",
    "enum",
]


class TypeRef(_Node):
    """A field or parameter type. ``record``/``enum`` name a declaration in the unit."""

    kind: TypeKind
    args: tuple[TypeRef, ...] = ()
    values: tuple[str | int | float | bool, ...] = ()  # for literal
    name: str | None = None  # for record / enum

    def __str__(self) -> str:
        if self.kind in ("record", "enum"):
            return self.name or self.kind
        if self.kind == "literal":
            return " | ".join(
                f'"{v}"' if isinstance(v, str) else str(v).lower() for v in self.values
            )
        if self.kind == "optional":
            return f"{self.args[0]}?"
        if self.kind == "union":
            return " | ".join(str(a) for a in self.args)
        if self.kind in ("image", "history"):
            return self.kind.capitalize()
        if self.args:
            return f"{self.kind}[{', '.join(str(a) for a in self.args)}]"
        return self.kind


# ---- expressions ------------------------------------------------------------------------


class Name(_Node):
    kind: Literal["name"] = "name"
    name: str
    loc: Loc | None = None


class Const(_Node):
    kind: Literal["const"] = "const"
    value: str | int | float | bool | None
    loc: Loc | None = None


class FString(_Node):
    """An interpolated string: literal text and expressions, in order."""

    kind: Literal["fstring"] = "fstring"
    parts: tuple[str | Expr, ...]
    loc: Loc | None = None


class List(_Node):
    kind: Literal["list"] = "list"
    items: tuple[Expr, ...]
    loc: Loc | None = None


class Dict(_Node):
    kind: Literal["dict"] = "dict"
    keys: tuple[Expr, ...]
    values: tuple[Expr, ...]
    loc: Loc | None = None


class Attr(_Node):
    kind: Literal["attr"] = "attr"
    obj: Expr
    name: str
    loc: Loc | None = None


class Index(_Node):
    kind: Literal["index"] = "index"
    obj: Expr
    index: Expr
    loc: Loc | None = None


class Slice(_Node):
    """``obj[lo:hi:step]``; a missing part is ``None``."""

    kind: Literal["slice"] = "slice"
    obj: Expr
    lo: Expr | None = None
    hi: Expr | None = None
    step: Expr | None = None
    loc: Loc | None = None


class IfExp(_Node):
    """``then if cond else orelse``."""

    kind: Literal["ifexp"] = "ifexp"
    cond: Expr
    then: Expr
    orelse: Expr
    loc: Loc | None = None


class CompFor(_Node):
    """A comprehension's later ``for var in iter if cond ...`` clause."""

    var: str | tuple[str, ...]
    iter: Expr
    conds: tuple[Expr, ...] = ()


class ListComp(_Node):
    """``[elt for var in iter if cond ...]``; ``var`` is a tuple when items are unpacked.
    ``more`` holds later ``for`` clauses, each nested in the one before."""

    kind: Literal["listcomp"] = "listcomp"
    elt: Expr
    var: str | tuple[str, ...]
    iter: Expr
    conds: tuple[Expr, ...] = ()
    loc: Loc | None = None
    # Left out of dumps when empty: a one-`for` comprehension dumps as it did before.
    more: tuple[CompFor, ...] = PField(default=(), exclude_if=lambda v: not v)


class Call(_Node):
    kind: Literal["call"] = "call"
    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()
    loc: Loc | None = None


class BinOp(_Node):
    kind: Literal["binop"] = "binop"
    op: Literal[
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "and",
        "or",
        "in",
        "not in",
        "is",
        "is not",
    ]
    left: Expr
    right: Expr
    loc: Loc | None = None


class Unary(_Node):
    kind: Literal["unary"] = "unary"
    op: Literal["not", "-"]
    operand: Expr
    loc: Loc | None = None


Expr = Annotated[
    Name
    | Const
    | FString
    | List
    | Dict
    | Attr
    | Index
    | Slice
    | Call
    | BinOp
    | Unary
    | IfExp
    | ListComp,
    PField(discriminator="kind"),
]

# ---- statements -------------------------------------------------------------------------


class Assign(_Node):
    kind: Literal["assign"] = "assign"
    target: str
    value: Expr
    loc: Loc | None = None


class SetItem(_Node):
    """``obj[index] = value``."""

    kind: Literal["setitem"] = "setitem"
    obj: Expr
    index: Expr
    value: Expr
    loc: Loc | None = None


class AugAssign(_Node):
    """``target op= value``; ``target`` is a name or an index, evaluated once."""

    kind: Literal["augassign"] = "augassign"
    target: Name | Index
    op: Literal["+", "-", "*", "/", "%"]
    value: Expr
    loc: Loc | None = None


class Return(_Node):
    kind: Literal["return"] = "return"
    value: Expr
    loc: Loc | None = None


class If(_Node):
    kind: Literal["if"] = "if"
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()
    loc: Loc | None = None


class For(_Node):
    """``for var in iter``; ``var`` is a tuple of names when each item is unpacked."""

    kind: Literal["for"] = "for"
    var: str | tuple[str, ...]
    iter: Expr
    body: tuple[Stmt, ...]
    loc: Loc | None = None


class While(_Node):
    """``while cond max bound``: ``bound`` is evaluated once; the body may run at most
    ``bound`` times, and a condition still true after that is a runtime error."""

    kind: Literal["while"] = "while"
    cond: Expr
    bound: Expr
    body: tuple[Stmt, ...]
    loc: Loc | None = None


class Break(_Node):
    kind: Literal["break"] = "break"
    loc: Loc | None = None


class Continue(_Node):
    kind: Literal["continue"] = "continue"
    loc: Loc | None = None


class Check(_Node):
    """``assert`` / ``suggest`` with an optional message."""

    kind: Literal["check"] = "check"
    severity: Literal["assert", "suggest"]
    cond: Expr
    message: Expr | None = None
    loc: Loc | None = None


class ExprStmt(_Node):
    kind: Literal["expr"] = "expr"
    expr: Expr
    loc: Loc | None = None


Stmt = Annotated[
    Assign | SetItem | AugAssign | Return | If | For | While | Break | Continue | Check | ExprStmt,
    PField(discriminator="kind"),
]

# ---- declarations -----------------------------------------------------------------------


class Field(_Node):
    name: str
    direction: Literal["in", "out"]
    type: TypeRef
    desc: str = ""
    default: JSONValue = None
    has_default: bool = False
    loc: Loc | None = None


class Signature(_Node):
    name: str
    instructions: str
    fields: tuple[Field, ...]
    loc: Loc | None = None

    @property
    def inputs(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.direction == "in")

    @property
    def outputs(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.direction == "out")


class RecordField(_Node):
    name: str
    type: TypeRef
    desc: str = ""
    default: JSONValue = None
    has_default: bool = False


class Record(_Node):
    name: str
    doc: str = ""
    fields: tuple[RecordField, ...]
    loc: Loc | None = None


class EnumMember(_Node):
    name: str
    desc: str = ""


class Enum(_Node):
    name: str
    doc: str = ""
    members: tuple[EnumMember, ...]
    loc: Loc | None = None


class PythonImport(_Node):
    alias: str
    module: str
    loc: Loc | None = None


SubmoduleKind = Literal[
    "Predict",
    "ChainOfThought",
    "ReAct",
    "ProgramOfThought",
    "CodeAct",
    "Retrieve",
    "Refine",
    "BestOfN",
    "module",
]


class Submodule(_Node):
    """A sub-module (or a program's root): a built-in kind or a user module, with arguments.

    For predictor kinds ``signature`` names the signature; ``module`` names the user
    module for kind ``module``. ``kwargs`` are the remaining constructor arguments.
    """

    name: str
    kind: SubmoduleKind
    signature: str | None = None
    module: str | None = None
    kwargs: tuple[tuple[str, Expr], ...] = ()
    loc: Loc | None = None


class Param(_Node):
    name: str
    type: TypeRef | None = None
    default: Expr | None = None


class Forward(_Node):
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    loc: Loc | None = None


class Module(_Node):
    name: str
    doc: str = ""
    params: tuple[Param, ...] = ()
    submodules: tuple[Submodule, ...] = ()
    forward: Forward | None = None
    loc: Loc | None = None


class Program(_Node):
    name: str
    root: Submodule
    doc: str = ""
    loc: Loc | None = None


class DataSet(_Node):
    """``data name = jsonl("path", inputs = [...])``; ``path`` is relative to ``base_dir``."""

    name: str
    format: Literal["jsonl", "csv", "json"]
    path: str
    base_dir: str
    inputs: tuple[str, ...]
    loc: Loc | None = None


class Metric(_Node):
    """A metric: a Python callable (``alias.attr``) or a built-in metric call."""

    name: str
    python: str | None = None  # "module.path:attr"
    builtin: str | None = None
    kwargs: tuple[tuple[str, JSONValue], ...] = ()
    loc: Loc | None = None


class Optimize(_Node):
    program: str
    optimizer: str
    settings: tuple[tuple[str, JSONValue], ...] = ()
    train: str | None = None  # a data name, or "tests" for the program's test blocks
    dev: str | None = None
    metric: str
    lm: str | None = None
    seed: int | None = None
    loc: Loc | None = None


class Test(_Node):
    name: str
    program: str
    given: tuple[tuple[str, Expr], ...]
    expect: tuple[tuple[str, Expr], ...] = ()
    checks: tuple[Check, ...] = ()
    # scripted LM replies, in order: a string (the completion verbatim) or a Dict of
    # output field values (rendered in the adapter's reply format)
    replies: tuple[Expr, ...] = ()
    loc: Loc | None = None


class LMDecl(_Node):
    """``lm name = "provider/model" { settings }`` (``model``) or
    ``lm name = fallback(a, b) { retries = n }`` (``fallback``: declared LM names, in order).
    ``settings`` are checked against ``dsx.runtime.resources`` (endpoints included: the
    program's author wrote them; state never sets them)."""

    name: str
    model: str | None = None
    fallback: tuple[str, ...] = ()
    settings: tuple[tuple[str, JSONValue], ...] = ()
    doc: str = ""
    loc: Loc | None = None


class RetrieverDecl(_Node):
    """``retriever name = Kind(settings)``: a retriever from ``dsx.runtime.resources``'
    registry; relative paths in ``settings`` are relative to the .dsx file."""

    name: str
    kind: str
    settings: tuple[tuple[str, JSONValue], ...] = ()
    doc: str = ""
    loc: Loc | None = None


class LearnedPredictor(_Node):
    instructions: str | None = None
    demos: tuple[dict[str, JSONValue], ...] = ()
    lm: dict[str, JSONValue] | None = None


class Learned(_Node):
    """Optimized state of one program: per predictor path (``"answer.predict"``)."""

    optimizer: str = ""
    score: float | None = None
    predictors: dict[str, LearnedPredictor] = PField(default_factory=dict)
    #: The best score so far (percent) after each candidate the optimizer scored in full.
    trajectory: tuple[float, ...] = ()
    #: A program-level selector that wraps the program at load time (per-call demos): a
    #: KNN index as data, checked by ``dsx.teleprompt.knn.prepare_selector``. See
    #: docs/optimizers.md ("KNNFewShot in a build").
    selector: dict[str, JSONValue] | None = None


class Unit(_Node):
    """Everything a .dsx file (with its imports) declares, ready to instantiate."""

    ir_version: int = IR_VERSION
    source: str
    files: tuple[str, ...] = ()
    python: tuple[PythonImport, ...] = ()
    signatures: tuple[Signature, ...] = ()
    records: tuple[Record, ...] = ()
    enums: tuple[Enum, ...] = ()
    modules: tuple[Module, ...] = ()
    programs: tuple[Program, ...] = ()
    data: tuple[DataSet, ...] = ()
    metrics: tuple[Metric, ...] = ()
    optimizes: tuple[Optimize, ...] = ()
    tests: tuple[Test, ...] = ()
    learned: dict[str, Learned] = PField(default_factory=dict)
    lms: tuple[LMDecl, ...] = ()
    retrievers: tuple[RetrieverDecl, ...] = ()

    def to_json(self, *, indent: int | None = 2) -> str:
        # A unit without `lm`/`retriever` declarations dumps as it did before they existed.
        empty = {k for k in ("lms", "retrievers") if not getattr(self, k)}
        return self.model_dump_json(indent=indent, exclude_defaults=False, exclude=empty)

    @classmethod
    def from_json(cls, text: str | bytes) -> Unit:
        import json

        data = json.loads(text)
        version = data.get("ir_version") if isinstance(data, dict) else None
        if version != IR_VERSION:
            raise ValueError(
                f"This IR has version {version!r}; this dsx reads IR version {IR_VERSION}. "
                "Rebuild it from the .dsx source with this dsx."
            )
        return cls.model_validate(data)

    def get(self, kind: str, name: str) -> Any:
        for item in getattr(self, kind):
            if item.name == name:
                return item
        return None


def build(cls: type[BaseModel], /, **values: Any) -> Any:
    """Construct a node without validation (for the lowerer, which builds valid nodes).

    About 5x cheaper than ``model_construct``; defaults are filled the same way.
    """
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _DEFAULTS[cls] = _collect_defaults(cls)
    fixed, factories = defaults
    data = dict(fixed)
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    data.update(values)
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_DEFAULTS: dict[type[Any], tuple[dict[str, Any], list[tuple[str, Any]]]] = {}


def _collect_defaults(cls: type[Any]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    fixed: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            factories.append((name, info.default_factory))
        elif not info.is_required():
            fixed[name] = info.default
    return fixed, factories


for _model in (
    FString,
    List,
    Dict,
    Attr,
    Index,
    Slice,
    IfExp,
    CompFor,
    ListComp,
    SetItem,
    AugAssign,
    While,
    Call,
    BinOp,
    Unary,
    If,
    For,
    Check,
    Return,
    Assign,
    ExprStmt,
    Submodule,
    Param,
    Forward,
    Module,
    Test,
    Program,
):
    _model.model_rebuild()
