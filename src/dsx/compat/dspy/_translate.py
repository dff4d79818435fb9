"""DSPy Python → ``.dsx``: signatures, modules and programs within the language's reach.

:func:`translate_dspy` reads a DSPy source file (never runs it) and writes the equivalent
``.dsx`` text, plus one :class:`Note` per line it could not translate. What the language
cannot say stays in Python: the file's own functions (tools, helpers) are reached through
``use python "<module>" as py``.

Translated: ``class X(dspy.Signature)`` (docstring, fields with ``desc``, types: ``str``
``int`` ``float`` ``bool`` lists, dicts, tuples, ``Optional``/``| None``, ``Literal``),
``dspy.Signature("...")`` assignments, ``class M(dspy.Module)`` with predictor members
(``Predict``, ``ChainOfThought``, ``ReAct``, ``ProgramOfThought``, ``CodeAct``,
``BestOfN``, ``Refine``) set in ``__init__`` and a ``forward`` of assignments, ``return``,
``if``/``for``, calls with keyword arguments, f-strings and the expressions the language has,
and module-level ``x = M(...)`` as ``program x = M(...)``.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Note", "Translation", "translate_dspy", "translate_dspy_file"]

_KINDS = frozenset(
    {"Predict", "ChainOfThought", "ReAct", "ProgramOfThought", "CodeAct", "BestOfN", "Refine"}
)
_BUILTINS = frozenset(
    {"len", "str", "int", "float", "bool", "list", "dict", "range", "min", "max", "sum",
     "sorted", "enumerate", "zip", "any", "all", "abs", "round", "print"}
)  # fmt: skip
_SCALARS = {"str": "str", "int": "int", "float": "float", "bool": "bool", "Any": "any"}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_CMPOPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip


@dataclass(frozen=True)
class Note:
    """A line of the Python file that was not translated, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Translation:
    """The ``.dsx`` text and the notes on what it leaves out."""

    text: str
    notes: list[Note] = field(default_factory=list)


class _Skip(Exception):
    """This construct has no .dsx form; the message says why."""


def translate_dspy(source: str, *, module: str = "program") -> Translation:
    """Translate DSPy Python ``source`` into ``.dsx``.

    Args:
        source: the Python file's text.
        module: its importable module name, for the ``use python`` line that reaches the
            file's own functions (tools, helpers, metrics).
    """
    tree = ast.parse(source)
    return _Translator(module).run(tree)


def translate_dspy_file(path: str | Path) -> Translation:
    """:func:`translate_dspy` for a file (its stem names the Python module)."""
    p = Path(path)
    return translate_dspy(p.read_text(encoding="utf-8"), module=p.stem)


class _Translator:
    def __init__(self, module: str) -> None:
        self.module = module
        self.notes: list[Note] = []
        self.functions: set[str] = set()
        self.signatures: set[str] = set()
        self.modules: set[str] = set()
        self.uses_python = False

    def note(self, node: ast.AST, message: str) -> None:
        self.notes.append(Note(getattr(node, "lineno", 0), message))

    def run(self, tree: ast.Module) -> Translation:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.add(node.name)
        blocks: list[str] = []
        for node in tree.body:
            try:
                block = self.top(node)
            except _Skip as why:
                self.note(node, str(why))
                continue
            if block:
                blocks.append(block)
        head = [f'use python "{self.module}" as py'] if self.uses_python else []
        text = "\n\n".join(head + blocks) + "\n"
        return Translation(text, self.notes)

    # -- top level ------------------------------------------------------------------------
    def top(self, node: ast.stmt) -> str | None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            return None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return None  # stays in Python, reached as py.<name>
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return None  # the file's docstring
        if isinstance(node, ast.ClassDef):
            bases = {_dotted(b).rsplit(".", 1)[-1] for b in node.bases}
            if "Signature" in bases:
                return self.signature(node)
            if "Module" in bases:
                return self.module_decl(node)
            raise _Skip(f"class {node.name} is neither a dspy.Signature nor a dspy.Module")
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Call):
                callee = _dotted(node.value.func).rsplit(".", 1)[-1]
                if callee == "Signature" and node.value.args:
                    spec = node.value.args[0]
                    if isinstance(spec, ast.Constant) and isinstance(spec.value, str):
                        self.signatures.add(target.id)
                        return f"signature {target.id} = {_string(spec.value)}"
                if callee in self.modules or callee in _KINDS:
                    return f"program {target.id} = {self.member_call(node.value)}"
        if isinstance(node, ast.Expr | ast.Assign | ast.If | ast.With):
            raise _Skip("top-level code runs in Python; only programs (x = Module(...)) translate")
        raise _Skip(f"{type(node).__name__} has no .dsx form")

    def signature(self, node: ast.ClassDef) -> str:
        lines: list[str] = []
        doc = ast.get_docstring(node)
        if doc:
            lines += [f"/// {line}".rstrip() for line in doc.splitlines()]
        lines.append(f"signature {node.name} {{")
        for item in node.body:
            if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant):
                continue
            try:
                lines.append("    " + self.signature_field(item))
            except _Skip as why:
                self.note(item, str(why))
        lines.append("}")
        self.signatures.add(node.name)
        return "\n".join(lines)

    def signature_field(self, item: ast.stmt) -> str:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            name, annotation, value = item.target.id, self.type(item.annotation), item.value
        elif isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
            name, annotation, value = item.targets[0].id, "str", item.value
        else:
            raise _Skip("only fields (name: T = dspy.InputField(...)) translate in a signature")
        if not isinstance(value, ast.Call):
            raise _Skip(f"field `{name}` needs dspy.InputField() or dspy.OutputField()")
        kind = _dotted(value.func).rsplit(".", 1)[-1]
        if kind not in ("InputField", "OutputField"):
            raise _Skip(f"field `{name}` needs dspy.InputField() or dspy.OutputField()")
        desc = ""
        for kw in value.keywords:
            if kw.arg in ("desc", "description") and isinstance(kw.value, ast.Constant):
                desc = f" {_string(str(kw.value.value))}"
            elif kw.arg == "prefix":
                continue
            else:
                self.note(item, f"field `{name}`: `{kw.arg}=` has no .dsx form and was left out")
        direction = "in " if kind == "InputField" else "out"
        return f"{direction} {name}: {annotation}{desc}"

    def type(self, node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            if node.id in _SCALARS:
                return _SCALARS[node.id]
            raise _Skip(f"type `{node.id}` has no .dsx form (declare it with `type`)")
        if isinstance(node, ast.Attribute) and node.attr in ("Image", "History"):
            return node.attr
        if isinstance(node, ast.Constant) and node.value is None:
            return "none"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self.union([node.left, node.right])
        if isinstance(node, ast.Subscript):
            base = _dotted(node.value).rsplit(".", 1)[-1]
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if base in ("list", "List"):
                return f"list[{self.type(args[0])}]"
            if base in ("dict", "Dict") and len(args) == 2:
                return f"dict[{self.type(args[0])}, {self.type(args[1])}]"
            if base in ("tuple", "Tuple"):
                return f"tuple[{', '.join(self.type(a) for a in args)}]"
            if base == "Optional":
                return f"{self.type(args[0])}?"
            if base == "Union":
                return self.union(args)
            if base == "Literal":
                return " | ".join(_literal(a) for a in args)
        raise _Skip(f"type `{ast.unparse(node)}` has no .dsx form")

    def union(self, members: list[ast.expr]) -> str:
        flat: list[ast.expr] = []
        for m in members:
            if isinstance(m, ast.BinOp) and isinstance(m.op, ast.BitOr):
                flat += [m.left, m.right]
            else:
                flat.append(m)
        others = [m for m in flat if not (isinstance(m, ast.Constant) and m.value is None)]
        text = " | ".join(self.type(m) for m in others)
        return f"{text}?" if len(others) < len(flat) and len(others) == 1 else text

    # -- modules ----------------------------------------------------------------------------
    def module_decl(self, node: ast.ClassDef) -> str:
        members: list[str] = []
        forward = ""
        params = ""
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                params = self.params(item.args, skip_self=True, defaults=True)
                names = {a.arg for a in item.args.args[1:]}
                for stmt in item.body:
                    try:
                        member = self.member(stmt, names)
                        if member:
                            members.append(member)
                    except _Skip as why:
                        self.note(stmt, str(why))
            elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in (
                "forward",
                "aforward",
            ):
                if forward:
                    continue  # forward and aforward: one body is enough
                body = self.block(item.body, 2)
                forward = (
                    f"    forward({self.params(item.args, skip_self=True, defaults=False)}) "
                    f"{{\n{body}\n    }}"
                )
            elif isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant):
                continue
            else:
                self.note(item, f"`{getattr(item, 'name', type(item).__name__)}` stays in Python")
        if not forward:
            raise _Skip(f"module {node.name} has no forward()")
        self.modules.add(node.name)
        doc = ast.get_docstring(node)
        head = [f"/// {line}".rstrip() for line in doc.splitlines()] if doc else []
        inner = "\n".join("    " + m for m in members)
        sig = f"({params})" if params else ""
        return "\n".join(
            [*head, f"module {node.name}{sig} {{", inner, "", forward, "}"] if inner else
            [*head, f"module {node.name}{sig} {{", forward, "}"]
        )  # fmt: skip

    def params(self, args: ast.arguments, *, skip_self: bool, defaults: bool) -> str:
        plain = args.args[1:] if skip_self else args.args
        if args.vararg or args.kwarg or args.kwonlyargs:
            raise _Skip("*args, **kwargs and keyword-only parameters have no .dsx form")
        first_default = len(plain) - len(args.defaults)
        out = []
        for i, a in enumerate(plain):
            text = a.arg
            if a.annotation is not None:
                text += f": {self.type(a.annotation)}"
            if defaults and i >= first_default:
                text += f" = {self.expr(args.defaults[i - first_default])}"
            out.append(text)
        return ", ".join(out)

    def member(self, stmt: ast.stmt, params: frozenset[str] | set[str] = frozenset()) -> str:
        if (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and _dotted(stmt.value.func).endswith("__init__")
        ):
            return ""  # super().__init__()
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            raise _Skip("only members (self.x = dspy.Predict(...)) translate in __init__")
        target = stmt.targets[0]
        if not (isinstance(target, ast.Attribute) and _is_self(target.value)):
            raise _Skip("only self.<member> = ... translates in __init__")
        if isinstance(stmt.value, ast.Name) and stmt.value.id == target.attr in params:
            return ""  # self.hops = hops: the module's parameter, read as `hops` in forward
        if not isinstance(stmt.value, ast.Call):
            raise _Skip(f"member `{target.attr}` is not a predictor or module")
        return f"{target.attr} = {self.member_call(stmt.value)}"

    def member_call(self, call: ast.Call) -> str:
        kind = _dotted(call.func).rsplit(".", 1)[-1]
        if kind not in _KINDS and kind not in self.modules:
            raise _Skip(f"`{kind}` is not a predictor or module the language has")
        args = []
        for a in call.args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                args.append(_string(a.value))
            elif isinstance(a, ast.Name) and a.id in self.signatures:
                args.append(a.id)
            else:
                args.append(self.expr(a))
        for kw in call.keywords:
            if kw.arg is None:
                raise _Skip("**kwargs has no .dsx form")
            args.append(f"{kw.arg} = {self.expr(kw.value)}")
        return f"{kind}({', '.join(args)})"

    # -- forward bodies ---------------------------------------------------------------------
    def block(self, body: list[ast.stmt], depth: int) -> str:
        pad = "    " * depth
        lines = []
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring
            try:
                lines.append(self.statement(stmt, depth))
            except _Skip as why:
                self.note(stmt, str(why))
                first = ast.unparse(stmt).splitlines()[0]
                lines.append(f"{pad}// untranslated: {first}")
        return "\n".join(lines) if lines else f"{pad}// (empty)"

    def statement(self, stmt: ast.stmt, depth: int) -> str:
        pad = "    " * depth
        if isinstance(stmt, ast.Return):
            return f"{pad}return {self.expr(stmt.value)}" if stmt.value else f"{pad}return none"
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            return f"{pad}{self.target(stmt.targets[0])} = {self.expr(stmt.value)}"
        if isinstance(stmt, ast.AugAssign) and type(stmt.op) in _BINOPS:
            op = _BINOPS[type(stmt.op)]
            return f"{pad}{self.target(stmt.target)} {op}= {self.expr(stmt.value)}"
        if isinstance(stmt, ast.Expr):
            return f"{pad}{self.expr(stmt.value)}"
        if isinstance(stmt, ast.If):
            text = f"{pad}if {self.expr(stmt.test)} {{\n{self.block(stmt.body, depth + 1)}\n{pad}}}"
            if stmt.orelse:
                if len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
                    return text + " else " + self.statement(stmt.orelse[0], depth).lstrip()
                text += f" else {{\n{self.block(stmt.orelse, depth + 1)}\n{pad}}}"
            return text
        if isinstance(stmt, ast.For) and not stmt.orelse:
            return (
                f"{pad}for {self.target(stmt.target)} in {self.expr(stmt.iter)} {{\n"
                f"{self.block(stmt.body, depth + 1)}\n{pad}}}"
            )
        if isinstance(stmt, ast.Break | ast.Continue):
            return pad + ("break" if isinstance(stmt, ast.Break) else "continue")
        if isinstance(stmt, ast.Assert):
            message = f", {self.expr(stmt.msg)}" if stmt.msg else ""
            return f"{pad}assert {self.expr(stmt.test)}{message}"
        raise _Skip(f"{type(stmt).__name__} has no .dsx form; move it into a Python helper")

    def target(self, node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Name) for e in node.elts):
            return ", ".join(e.id for e in node.elts)  # type: ignore[attr-defined]
        if isinstance(node, ast.Subscript):
            return f"{self.expr(node.value)}[{self.expr(node.slice)}]"
        raise _Skip(f"assigning to `{ast.unparse(node)}` has no .dsx form")

    def expr(self, node: ast.expr | None) -> str:
        if node is None:
            return "none"
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None:
                return "none"
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, str):
                return _string(value, interpolating=True)
            if isinstance(value, int | float):
                return repr(value)
            raise _Skip(f"the constant {value!r} has no .dsx form")
        if isinstance(node, ast.Name):
            if node.id in self.functions:
                self.uses_python = True
                return f"py.{node.id}"
            return node.id
        if isinstance(node, ast.Attribute):
            if _is_self(node.value):
                return node.attr
            if isinstance(node.value, ast.Name) and node.value.id == "dspy":
                if node.attr == "Prediction":
                    return "Prediction"
                raise _Skip(f"dspy.{node.attr} cannot be used inside forward()")
            return f"{self.expr(node.value)}.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.expr(node.func)
            args = [self.expr(a) for a in node.args]
            for kw in node.keywords:
                if kw.arg is None:
                    raise _Skip("**kwargs has no .dsx form")
                args.append(f"{kw.arg} = {self.expr(kw.value)}")
            return f"{func}({', '.join(args)})"
        if isinstance(node, ast.List | ast.Tuple):
            return f"[{', '.join(self.expr(e) for e in node.elts)}]"
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _Skip("**-unpacking in a dict has no .dsx form")
            items = ", ".join(
                f"{self.expr(k)}: {self.expr(v)}"
                for k, v in zip(node.keys, node.values, strict=True)
            )
            return "{" + items + "}"
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return f"({self.expr(node.left)} {_BINOPS[type(node.op)]} {self.expr(node.right)})"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return f"not {self.expr(node.operand)}"
            if isinstance(node.op, ast.USub):
                return f"-{self.expr(node.operand)}"
        if isinstance(node, ast.BoolOp):
            joiner = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + joiner.join(self.expr(v) for v in node.values) + ")"
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            op, right = node.ops[0], node.comparators[0]
            if isinstance(op, ast.Is | ast.IsNot) and isinstance(right, ast.Constant):
                word = "is" if isinstance(op, ast.Is) else "is not"
                return f"{self.expr(node.left)} {word} none"
            if type(op) in _CMPOPS:
                return f"{self.expr(node.left)} {_CMPOPS[type(op)]} {self.expr(right)}"
        if isinstance(node, ast.Subscript):
            return f"{self.expr(node.value)}[{self.slice(node.slice)}]"
        if isinstance(node, ast.IfExp):
            return (
                f"({self.expr(node.body)} if {self.expr(node.test)} else {self.expr(node.orelse)})"
            )
        if isinstance(node, ast.ListComp) and len(node.generators) == 1:
            gen = node.generators[0]
            conds = "".join(f" if {self.expr(c)}" for c in gen.ifs)
            return f"[{self.expr(node.elt)} for {self.target(gen.target)} in {self.expr(gen.iter)}{conds}]"
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node)
        raise _Skip(f"`{ast.unparse(node)}` has no .dsx form")

    def slice(self, node: ast.expr) -> str:
        if isinstance(node, ast.Slice):
            if node.step is not None:
                return f"{self.expr(node.lower) if node.lower else ''}:{self.expr(node.upper) if node.upper else ''}:{self.expr(node.step)}"
            return f"{self.expr(node.lower) if node.lower else ''}:{self.expr(node.upper) if node.upper else ''}"
        return self.expr(node)

    def fstring(self, node: ast.JoinedStr) -> str:
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                out.append(_escape(part.value).replace("{", "{{").replace("}", "}}"))
            elif (
                isinstance(part, ast.FormattedValue)
                and part.format_spec is None
                and part.conversion == -1
            ):
                out.append("{" + self.expr(part.value) + "}")
            else:
                raise _Skip("f-string formatting (`!r`, `:spec`) has no .dsx form")
        return '"' + "".join(out) + '"'


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return ""


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _string(text: str, *, interpolating: bool = False) -> str:
    """A .dsx string literal; in forward bodies, where ``{expr}`` interpolates, braces are
    doubled so the text stays literal."""
    body = _escape(text)
    if interpolating:
        body = body.replace("{", "{{").replace("}", "}}")
    return '"' + body + '"'


def _literal(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        if isinstance(node.value, str):
            return '"' + _escape(node.value) + '"'
        if isinstance(node.value, int | float):
            return repr(node.value)
    raise _Skip(f"Literal value `{ast.unparse(node)}` has no .dsx form")
