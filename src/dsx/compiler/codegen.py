"""Codegen: IR → one readable Python module per program.

The module imports only ``dsx.runtime.generated`` (as ``_dsx``). Signatures become
``Signature`` classes, records pydantic models, enums ``Literal`` aliases, modules ``Module``
subclasses with one ``aforward`` body (``forward``, the sync face, runs it through the
runtime); learned state is embedded as data. A source map (generated line → .dsx line) lets
runtime errors name the .dsx location.

The output is reproducible and formatted: it holds no absolute path (``use python`` modules
are found relative to the generated file), and each line is laid out as ``ruff format``
would (``_pyfmt``), so the same input gives the same bytes wherever it is built.
"""

from __future__ import annotations

import itertools
import json
import keyword
import os
import re
from pathlib import Path
from typing import Any

from dsx import ir
from dsx._version import __version__
from dsx.compiler._codegen_resources import emit_resources, used_resources
from dsx.compiler._pyfmt import Raw, layout, literal, py_str
from dsx.grammar.precedence import (
    IFEXP,
    NEG,
    NOT,
    POSTFIX,
    PRECEDENCE,
    operand_precedence,
)

__all__ = ["generate", "python_root", "reachable"]

_DSX_BUILTINS = {"join", "lower", "upper", "strip", "Prediction"}
_MODULE_ATTRS = set(dir(__import__("dsx").Module)) | {"params"}


def py(name: str) -> str:
    """A Python identifier for a .dsx name (keywords get a trailing underscore)."""
    return name + "_" if keyword.iskeyword(name) or keyword.issoftkeyword(name) else name


class Writer:
    """Collects lines with indentation and a generated-line → .dsx-line map.

    Each statement is given as one logical line and laid out as ``ruff format`` would
    (split at its brackets when it is too long); every physical line of it maps to ``loc``.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.indent = 0
        self.source_map: dict[int, tuple[str, int]] = {}

    def line(self, text: str = "", loc: Any = None) -> None:
        indent = "    " * self.indent
        if not text:
            physical = [""]
        elif text.startswith("#") or "\n" in text:
            physical = [indent + text]  # a comment or a docstring: as it is
        else:
            physical = layout(text, indent)
        for piece in physical:
            self.lines.append(piece)
            if loc is not None:
                self.source_map[len(self.lines)] = (Path(loc[0]).name, loc[1])

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def reachable(unit: ir.Unit, program: str) -> dict[str, set[str]]:
    """Declarations a program needs: modules, signatures, types, python aliases."""
    prog = unit.get("programs", program)
    need: dict[str, set[str]] = {
        "modules": set(),
        "signatures": set(),
        "types": set(),
        "python": set(),
        "resources": set(),  # `lm` / `retriever` names (fallback chains: see used_resources)
    }
    resources = {d.name for d in unit.lms} | {d.name for d in unit.retrievers}
    mods = {m.name: m for m in unit.modules}
    sigs = {s.name: s for s in unit.signatures}
    recs = {r.name: r for r in unit.records}

    def visit_type(t: ir.TypeRef) -> None:
        if t.kind in ("record", "enum") and t.name and t.name not in need["types"]:
            need["types"].add(t.name)
            if t.name in recs:
                for f in recs[t.name].fields:
                    visit_type(f.type)
        for a in t.args:
            visit_type(a)

    def visit_sub(sub: ir.Submodule) -> None:
        if sub.signature and sub.signature not in need["signatures"]:
            need["signatures"].add(sub.signature)
            for f in sigs[sub.signature].fields:
                visit_type(f.type)
        if sub.module and sub.module not in need["modules"]:
            need["modules"].add(sub.module)
            m = mods[sub.module]
            for s in m.submodules:
                visit_sub(s)
            names: set[str] = set()
            _names(m, names)
            need["python"] |= names & {p.alias for p in unit.python}
            for name in sorted(names & set(recs)):  # records built in forward bodies
                visit_type(ir.build(ir.TypeRef, kind="record", name=name))
        names = set()
        _names(sub, names)
        need["python"] |= names & {p.alias for p in unit.python}
        need["resources"] |= names & resources

    visit_sub(prog.root)
    return need


def _names(node: Any, out: set[str]) -> None:
    if isinstance(node, ir.Name):
        out.add(node.name)
    if isinstance(node, ir.TypeRef):
        return
    if hasattr(type(node), "model_fields"):
        for f in type(node).model_fields:
            _names(getattr(node, f), out)
    elif isinstance(node, tuple | list):
        for n in node:
            _names(n, out)


def generate(unit: ir.Unit, program: str, *, python_root: str = ".") -> str:
    """The Python source of a module for ``program`` (with its learned state, if any).

    ``python_root`` is the folder of the .dsx file relative to the folder the module will
    be written to (``python_root(source, out_dir)``; ``"."`` when they are the same): the
    generated module looks there for ``use python`` modules before installed ones.
    """
    return _Gen(unit, program, python_root).run()


class _Gen:
    def __init__(self, unit: ir.Unit, program: str, python_root: str = ".") -> None:
        self.unit = unit
        self.program = program
        self.need = reachable(unit, program)
        self.w = Writer()
        self.source = Path(unit.source).name
        self.python_root = python_root

    def run(self) -> str:
        w, unit = self.w, self.unit
        shown = _plain_text(self.source)  # safe in a comment and a docstring
        w.line(f"# Generated by dsx {__version__} from {shown} (program `{self.program}`).")
        w.line(f"# Do not edit: change {shown} and run `dsx build {shown}`.")
        w.line(f'"""Program `{self.program}`, compiled from {shown}."""')
        w.line()
        w.line("from dsx.runtime import generated as _dsx")
        w.line()
        w.line(
            f'_dsx.check_versions(dsx="{__version__}", ir={ir.IR_VERSION}, source={self.source!r})'
        )
        # `use python` modules: looked up in the .dsx file's folder, given relative to this
        # module's folder (no absolute path, no sys.path change), then installed packages.
        for imp in unit.python:
            if imp.alias in self.need["python"]:
                w.line(
                    f"{py(imp.alias)} = _dsx.import_python({imp.module!r}, __file__, "
                    f"{self.python_root!r})"
                )
        emit_resources(w, used_resources(unit, self.need["resources"]), py, self.python_root)
        for enum in unit.enums:
            if enum.name in self.need["types"]:
                w.line()
                w.line()
                for doc_line in (enum.doc or "").splitlines():  # each line stays a comment
                    w.line(f"# {doc_line}".rstrip())
                values = ", ".join(repr(m.name) for m in enum.members)
                w.line(f"{py(enum.name)} = _dsx.Literal[{values}]", enum.loc)
        for rec in self._records_in_order():
            self.record(rec)
        for sig in unit.signatures:
            if sig.name in self.need["signatures"]:
                self.signature(sig)
        for mod in self._modules_in_order():
            self.module(mod)
        self.program_factory()
        w.line()
        w.line()
        w.line("_SOURCE_MAP = " + literal(w.source_map))
        return w.text()

    def _records_in_order(self) -> list[ir.Record]:
        recs = {r.name: r for r in self.unit.records if r.name in self.need["types"]}
        done: list[ir.Record] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen or name not in recs:
                return
            seen.add(name)
            deps: set[str] = set()
            for f in recs[name].fields:
                _type_names(f.type, deps)
            for d in sorted(deps):
                visit(d)
            done.append(recs[name])

        for name in recs:
            visit(name)
        return done

    def _modules_in_order(self) -> list[ir.Module]:
        mods = {m.name: m for m in self.unit.modules if m.name in self.need["modules"]}
        done: list[ir.Module] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen or name not in mods:
                return
            seen.add(name)
            for s in mods[name].submodules:
                if s.module:
                    visit(s.module)
            done.append(mods[name])

        for name in mods:
            visit(name)
        return done

    # -- declarations -----------------------------------------------------------------------
    def type(self, t: ir.TypeRef) -> str:
        k = t.kind
        if k in ("str", "int", "float", "bool"):
            return k
        if k == "any":
            return "_dsx.Any"
        if k in ("image", "history"):
            return f"_dsx.{k.capitalize()}"
        if k in ("record", "enum"):
            return py(t.name or "")
        args = ", ".join(self.type(a) for a in t.args)
        if k == "optional":
            return f"{args} | None"
        if k == "union":
            return " | ".join(self.type(a) for a in t.args)
        if k == "literal":
            return "_dsx.Literal[" + ", ".join(repr(v) for v in t.values) + "]"
        return f"{k}[{args}]" if args else k

    def record(self, rec: ir.Record) -> None:
        w = self.w
        w.line()
        w.line()
        w.line(f"class {py(rec.name)}(_dsx.BaseModel):", rec.loc)
        w.indent += 1
        if rec.doc:
            self.class_doc(rec.doc)
        for f in rec.fields:
            kw = []
            if f.has_default:
                kw.append(f"default={f.default!r}")
            elif f.type.kind == "optional":
                kw.append("default=None")
            if f.desc:
                kw.append(f"description={f.desc!r}")
            value = f" = _dsx.Field({', '.join(kw)})" if kw else ""
            w.line(f"{py(f.name)}: {self.type(f.type)}{value}")
        if not rec.fields:
            w.line("pass")
        w.indent -= 1

    def signature(self, sig: ir.Signature) -> None:
        w = self.w
        w.line()
        w.line()
        if (
            any(py(f.name) != f.name or f.name.startswith("_") for f in sig.fields)
            or sig.instructions != sig.instructions.strip()  # a docstring would lose it
        ):
            fields = [
                (
                    f.name,
                    f.direction,
                    Raw(self.type(f.type)),
                    {
                        **({"desc": f.desc} if f.desc else {}),
                        **({"default": f.default} if f.has_default else {}),
                    },
                )
                for f in sig.fields
            ]
            w.line(
                f"{py(sig.name)} = _dsx.signature({sig.name!r}, {literal(fields)}, "
                f"{py_str(sig.instructions)})",
                sig.loc,
            )
            return
        w.line(f"class {py(sig.name)}(_dsx.Signature):", sig.loc)
        w.indent += 1
        self.class_doc(sig.instructions)
        for f in sig.fields:
            maker = "InputField" if f.direction == "in" else "OutputField"
            kw = []
            if f.desc:
                kw.append(f"desc={f.desc!r}")
            if f.has_default and f.direction == "in":
                kw.append(f"default={f.default!r}")
            w.line(f"{f.name}: {self.type(f.type)} = _dsx.{maker}({', '.join(kw)})", f.loc)
        w.indent -= 1

    def module(self, mod: ir.Module) -> None:
        w = self.w
        w.line()
        w.line()
        w.line(f"class {py(mod.name)}(_dsx.Module):", mod.loc)
        w.indent += 1
        if mod.doc:
            self.class_doc(mod.doc)
        self.scope_params = {p.name for p in mod.params}
        self.scope_subs = {s.name for s in mod.submodules}
        self.locals: set[str] = set()
        params = ", ".join(
            f"{py(p.name)}"
            + (f": {self.type(p.type)}" if p.type else "")
            + (f" = {self.expr(p.default, 0, False)}" if p.default is not None else "")
            for p in mod.params
        )
        w.line(f"def __init__(self{', *, ' + params if params else ''}) -> None:")
        w.indent += 1
        for p in mod.params:
            w.line(f"self.{self.param_attr(p.name)} = {py(p.name)}")
        self.locals = {p.name for p in mod.params}
        for sub in mod.submodules:
            w.line(f"self.{py(sub.name)} = {self.construct(sub)}", sub.loc)
        if not mod.params and not mod.submodules:
            w.line("pass")
        w.indent -= 1
        if mod.forward is not None:
            # One body: `aforward`; the sync face runs it through the runtime (see
            # docs/build.md, "One forward body").
            self.forward(mod, mod.forward, True)
            w.line()
            w.line("forward = _dsx.sync_forward(aforward)")
        w.indent -= 1

    def class_doc(self, text: str) -> None:
        """A class's docstring (instructions, a description), kept exactly as written."""
        if _docstring_safe(text):
            self.w.line(f'"""{text}"""')
        else:  # a docstring ruff would re-indent or strip: the same value, assigned
            self.w.line(f"__doc__ = {py_str(text)}")
        self.w.line()  # as ruff writes it: an empty line after a class docstring

    def param_attr(self, name: str) -> str:
        return f"param_{name}" if name in _MODULE_ATTRS or keyword.iskeyword(name) else name

    def construct(self, sub: ir.Submodule, in_factory: bool = False) -> str:
        args = []
        if sub.signature:
            args.append(py(sub.signature))
        for key, value in sub.kwargs:
            if sub.kind in ("Refine", "BestOfN") and key == "module" and isinstance(value, ir.Name):
                args.append(f"module=self.{py(value.name)}")
            else:
                args.append(_kwarg(key, self.expr(value, 0, False)))
        if sub.kind == "module":
            callee = py(sub.module or "")
        elif sub.kind in ("Predict", "ChainOfThought", "Retrieve"):
            callee = f"_dsx.{sub.kind}"
        else:
            callee = f"_dsx.kind({sub.kind!r})"
        return f"{callee}({', '.join(args)})"

    def forward(self, mod: ir.Module, fwd: ir.Forward, is_async: bool) -> None:
        w = self.w
        w.line()
        w.line("@_dsx.mapped")
        params = ", ".join(
            py(p.name)
            + (f": {self.type(p.type)}" if p.type is not None else "")
            + (f" = {self.expr(p.default, 0, False)}" if p.default is not None else "")
            for p in fwd.params
        )
        prefix = "async def aforward" if is_async else "def forward"
        w.line(f"{prefix}(self{', ' + params if params else ''}):", fwd.loc)
        w.indent += 1
        self.locals = {p.name for p in fwd.params}
        _assigned(fwd.body, self.locals)
        self.is_async = is_async
        self.loops = 0
        for stmt in fwd.body:
            self.stmt(stmt)
        if not fwd.body:
            w.line("return None")
        w.indent -= 1

    # -- statements -------------------------------------------------------------------------
    def stmt(self, s: Any) -> None:
        w, k = self.w, s.kind
        if k == "assign":
            w.line(f"{py(s.target)} = {self.expr(s.value)}", s.loc)
        elif k == "return":
            w.line(f"return {self.expr(s.value)}", s.loc)
        elif k == "expr":
            w.line(self.expr(s.expr), s.loc)
        elif k == "if":
            w.line(f"if {self.expr(s.cond)}:", s.loc)
            self.block(s.then)
            orelse = s.orelse
            while len(orelse) == 1 and orelse[0].kind == "if":
                inner = orelse[0]
                w.line(f"elif {self.expr(inner.cond)}:", inner.loc)
                self.block(inner.then)
                orelse = inner.orelse
            if orelse:
                w.line("else:")
                self.block(orelse)
        elif k == "for":
            w.line(f"for {_targets(s.var)} in {self.expr(s.iter)}:", s.loc)
            self.block(s.body)
        elif k == "while":
            self.loops += 1
            guard = f"_dsx_loop{self.loops}"
            where = f"{Path(s.loc[0]).name}:{s.loc[1]}" if s.loc else ""
            w.line(f"{guard} = _dsx.LoopGuard({self.expr(s.bound)}, {where!r})", s.loc)
            w.line(f"while {self.expr(s.cond)}:", s.loc)
            self.w.indent += 1
            w.line(f"{guard}.step()")
            self.w.indent -= 1
            self.block(s.body, empty=False)
        elif k in ("break", "continue"):
            w.line(k, s.loc)
        elif k == "setitem":
            target = f"{self.expr(s.obj, 9)}[{self.expr(s.index)}]"
            w.line(f"{target} = {self.expr(s.value)}", s.loc)
        elif k == "augassign":
            w.line(f"{self.expr(s.target)} {s.op}= {self.expr(s.value)}", s.loc)
        elif k == "check":
            fn = "dsx_assert" if s.severity == "assert" else "dsx_suggest"
            msg = f", {self.expr(s.message)}" if s.message is not None else ""
            where = f"{Path(s.loc[0]).name}:{s.loc[1]}" if s.loc else ""
            w.line(f"_dsx.{fn}({self.expr(s.cond)}{msg}, where={where!r})", s.loc)

    def block(self, stmts: Any, *, empty: bool = True) -> None:
        self.w.indent += 1
        for s in stmts:
            self.stmt(s)
        if not stmts and empty:
            self.w.line("pass")
        self.w.indent -= 1

    # -- expressions ------------------------------------------------------------------------
    def name(self, name: str) -> str:
        if name in self.locals:
            return py(name)
        if name in self.scope_subs:
            return f"self.{py(name)}"
        if name in self.scope_params:
            return f"self.{self.param_attr(name)}"
        if name in _DSX_BUILTINS:
            return f"_dsx.{name}"
        return py(name)

    def expr(self, e: Any, parent: int = 0, in_forward: bool = True) -> str:
        k = e.kind
        if k == "const":
            return (
                {True: "True", False: "False", None: "None"}.get(e.value, repr(e.value))
                if not isinstance(e.value, int | float) or isinstance(e.value, bool)
                else repr(e.value)
            )
        if k == "name":
            return self.name(e.name) if in_forward else py(e.name)
        if k == "attr":
            return f"{self.expr(e.obj, POSTFIX, in_forward)}.{e.name}"
        if k == "index":
            return f"{self.expr(e.obj, POSTFIX, in_forward)}[{self.expr(e.index, 0, in_forward)}]"
        if k == "slice":
            parts = ["" if p is None else self.expr(p, 0, in_forward) for p in (e.lo, e.hi, e.step)]
            return f"{self.expr(e.obj, POSTFIX, in_forward)}[{_slice(parts, e.step is not None)}]"
        if k == "ifexp":
            # The lowest precedence: parenthesized inside any operator.
            text = (
                f"{self.expr(e.then, 1, in_forward)} if {self.expr(e.cond, 1, in_forward)}"
                f" else {self.expr(e.orelse, 0, in_forward)}"
            )
            return f"({text})" if parent > IFEXP else text
        if k == "listcomp":
            added: set[str] = set()
            try:
                clauses = []
                for var, it, conds in (
                    (e.var, e.iter, e.conds),
                    *((c.var, c.iter, c.conds) for c in e.more),
                ):
                    # An iterable is read before its clause's names are bound, but may use
                    # earlier clauses' names; they are plain Python names.
                    source = self.expr(it, 1, in_forward)
                    names = ({var} if isinstance(var, str) else set(var)) - self.locals
                    added |= names
                    self.locals |= names
                    tests = "".join(f" if {self.expr(c, 1, in_forward)}" for c in conds)
                    clauses.append(f" for {_targets(var)} in {source}{tests}")
                return f"[{self.expr(e.elt, 0, in_forward)}{''.join(clauses)}]"
            finally:
                self.locals -= added
        if k == "call":
            args = [self.expr(a, 0, in_forward) for a in e.args] + [
                _kwarg(n, self.expr(v, 0, in_forward)) for n, v in e.kwargs
            ]
            is_sub = (
                in_forward
                and e.func.kind == "name"
                and e.func.name in self.scope_subs
                and e.func.name not in self.locals
            )
            if is_sub and getattr(self, "is_async", False):
                return f"(await self.{py(e.func.name)}.acall({', '.join(args)}))"
            return f"{self.expr(e.func, POSTFIX, in_forward)}({', '.join(args)})"
        if k == "list":
            return "[" + ", ".join(self.expr(i, 0, in_forward) for i in e.items) + "]"
        if k == "dict":
            return (
                "{"
                + ", ".join(
                    f"{self.expr(a, 0, in_forward)}: {self.expr(b, 0, in_forward)}"
                    for a, b in zip(e.keys, e.values, strict=True)
                )
                + "}"
            )
        if k == "fstring":
            return self.fstring(e, in_forward)
        if k == "binop":
            prec = PRECEDENCE[e.op]
            # Python chains comparisons (`a == b == c`); .dsx does not: parenthesize.
            left, right = operand_precedence(e.op)
            text = f"{self.expr(e.left, left, in_forward)} {e.op} {self.expr(e.right, right, in_forward)}"
            return f"({text})" if prec < parent else text
        if k == "unary":
            if e.op == "not":
                text = f"not {self.expr(e.operand, NOT, in_forward)}"
                return f"({text})" if parent > NOT else text
            # `(-x).y`, `(-x)[i]`: Python reads `-x.y` as `-(x.y)`.
            text = f"-{self.expr(e.operand, NEG + 1, in_forward)}"
            return f"({text})" if parent > NEG else text
        raise ValueError(f"codegen: unknown expression kind {k!r}")

    def fstring(self, e: Any, in_forward: bool) -> str:
        parts = []
        for p in e.parts:
            if isinstance(p, str):
                parts.append(p.replace("{", "{{").replace("}", "}}"))
            else:
                inner = self.expr(p, 0, in_forward)
                if any(ch in inner for ch in "'\"\\{}") or "await" in inner:
                    return " + ".join(
                        repr(x) if isinstance(x, str) else f"str({self.expr(x, 0, in_forward)})"
                        for x in e.parts
                    )
                parts.append("{" + inner + "}")
        body = "".join(parts)
        quoted = json.dumps(body, ensure_ascii=False)
        return "f" + quoted

    # -- programs ---------------------------------------------------------------------------
    def program_factory(self) -> None:
        w = self.w
        prog = self.unit.get("programs", self.program)
        learned = self.unit.learned.get(self.program)
        w.line()
        w.line()
        state = learned.model_dump(mode="json") if learned is not None else None
        w.line(
            "# Learned state from optimization (instructions, demos, LM settings per predictor)."
        )
        w.line("_STATE = " + literal(state))
        w.line()
        w.line()
        self.locals, self.scope_subs, self.scope_params = set(), set(), set()
        root = prog.root
        ctor = self.construct(root)
        cls = (
            py(root.module)
            if root.kind == "module"
            else f"_dsx.{root.kind}"
            if root.kind in ("Predict", "ChainOfThought", "Retrieve")
            else "_dsx.Module"
        )
        w.line(f"def {py(self.program)}() -> {cls}:", prog.loc)
        w.indent += 1
        default = f"A fresh instance of the program `{self.program}`, with its learned state."
        doc = prog.doc or default
        safe = _docstring_safe(doc)
        shown = doc if safe else "A fresh instance of the program, with its learned state."
        w.line(f'"""{shown}"""')
        w.line(f"return _dsx.apply_state({ctor}, _STATE, {self.program!r})")
        w.indent -= 1
        if not safe:
            w.line()
            w.line()
            w.line(f"{py(self.program)}.__doc__ = {py_str(doc)}")
        w.line()
        w.line()
        w.line(f"program = {py(self.program)}")


def _plain_text(text: str) -> str:
    """``text`` with line breaks, quotes, backslashes, lone surrogates (a file name that is
    not UTF-8) and other unprintable characters escaped, for a comment or a docstring."""
    return repr(text)[1:-1].replace('"', '\\"')


def _kwarg(name: str, value: str) -> str:
    return (
        f"{name}={value}"
        if name.isidentifier() and not keyword.iskeyword(name)
        else f"**{{{name!r}: {value}}}"
    )


def _docstring_safe(text: str) -> bool:
    """Whether ``text`` in triple quotes is a docstring ruff leaves alone and whose value is
    ``text``: one printable line (no tab), no quote or backslash, no space at either end."""
    return (
        bool(text)
        and text == text.strip()
        and text.isprintable()
        and '"' not in text
        and "\\" not in text
    )


def python_root(source: str | Path, out_dir: str | Path) -> str:
    """The folder of ``source`` (a .dsx file) relative to ``out_dir``, with ``/``: where a
    module generated into ``out_dir`` looks for the file's ``use python`` modules."""
    rel = os.path.relpath(Path(source).resolve().parent, Path(out_dir).resolve())
    return Path(rel).as_posix()


def _type_names(t: ir.TypeRef, out: set[str]) -> None:
    if t.kind in ("record", "enum") and t.name:
        out.add(t.name)
    for a in t.args:
        _type_names(a, out)


def _slice(parts: list[str], with_step: bool) -> str:
    """``lo:hi[:step]`` spaced as ``ruff format`` does: around each `:` (where a part is
    present) once any part is more than a name or a number (``x[i + 1 :]``)."""
    if not with_step:
        parts = parts[:2]
    if all(_SIMPLE_PART.fullmatch(p) for p in parts if p):
        return ":".join(parts)
    text = parts[0]
    for before, part in itertools.pairwise(parts):
        text += (" " if before else "") + ":" + (" " if part else "") + part
    return text


_SIMPLE_PART = re.compile(r"-?\w+")


def _targets(var: str | tuple[str, ...]) -> str:
    return py(var) if isinstance(var, str) else ", ".join(py(v) for v in var)


def _assigned(stmts: Any, out: set[str]) -> None:
    for s in stmts:
        if s.kind == "assign":
            out.add(s.target)
        elif s.kind == "for":
            out.update([s.var] if isinstance(s.var, str) else s.var)
            _assigned(s.body, out)
        elif s.kind == "while":
            _assigned(s.body, out)
        elif s.kind == "if":
            _assigned(s.then, out)
            _assigned(s.orelse, out)
