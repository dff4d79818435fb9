"""Lowering AST → IR, with every check on the way (name resolution, types, calls).

One :class:`Lowerer` handles a unit (a root file and the files it imports). It never
raises for bad input: each problem becomes a diagnostic and lowering goes on with a
best-effort IR, so that an editor gets every error in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler.symbols import PredType, Reference, Symbol
from dsx.diagnostics import Diagnostic, Edit, Fix, Related, SourceFile, Span, make
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile, parse_expr_text, parse_type_text

__all__ = ["Lowerer"]

_TOP_KINDS = {
    ast.SignatureDecl: "signature",
    ast.TypeDecl: "type",
    ast.EnumDecl: "enum",
    ast.ModuleDecl: "module",
    ast.ProgramDecl: "program",
    ast.DataDecl: "data",
    ast.MetricDecl: "metric",
    ast.UseDecl: "python",
}
_b = ir.build
_ANY = _b(ir.TypeRef, kind="any")


@dataclass(slots=True)
class _Sub:
    name: str
    kind: str  # a KINDS name or "module"
    signature: ir.Signature | None = None
    module: str | None = None
    wraps: _Sub | None = None
    key: str = ""


@dataclass(slots=True)
class _Entry:
    kind: str  # param | local | sub | python | builtin | result | decl
    type: Any = None  # ir.TypeRef | PredType | None
    key: str | None = None
    sub: _Sub | None = None


@dataclass(slots=True)
class _ModuleInfo:
    decl: ast.ModuleDecl
    params: dict[str, ir.Param] = field(default_factory=dict)
    subs: dict[str, _Sub] = field(default_factory=dict)
    submodules: list[ir.Submodule] = field(default_factory=list)
    forward: ir.Forward | None = None
    returns: Any = None
    state: str = "new"  # new | header | lowering | done


class Lowerer:
    """Lowers and checks one unit. Use :meth:`run`; results are on the instance."""

    def __init__(self, files: list[ParsedFile], root: str) -> None:
        self.files = files
        self.root = root
        self.sources: dict[str, SourceFile] = {f.source.path: f.source for f in files}
        self.diagnostics: list[Diagnostic] = []
        self.symbols: dict[str, Symbol] = {}
        self.references: list[Reference] = []
        self.decls: dict[str, tuple[str, Any]] = {}  # top-level name -> (kind, decl)
        self.python: dict[str, ir.PythonImport] = {}
        self._python_names: dict[str, frozenset[str] | None] = {}
        self.signatures: dict[str, ir.Signature] = {}
        self.records: dict[str, ir.Record] = {}
        self.enums: dict[str, ir.Enum] = {}
        self.modules: dict[str, _ModuleInfo] = {}
        self.programs: dict[str, ir.Program] = {}
        self.program_io: dict[str, tuple[dict[str, Any], Any]] = {}
        self.data: dict[str, ir.DataSet] = {}
        self.metrics: dict[str, ir.Metric] = {}
        self.optimizes: list[ir.Optimize] = []
        self.tests: dict[int, ir.Test] = {}  # id(TestDecl) -> IR, in file order
        self._extra_signatures: dict[str, ir.Signature] = {}
        self._all_decls: list[tuple[ParsedFile, Any]] = []
        self.unit: ir.Unit | None = None

    # ---- driver ---------------------------------------------------------------------------
    def run(self) -> ir.Unit:
        all_decls = self._all_decls = [(pf, d) for pf in self.files for d in pf.decls]
        for pf, decl in all_decls:
            self._declare(decl, pf)
        for _, decl in all_decls:
            if isinstance(decl, ast.UseDecl):
                self._lower_use(decl)
        for _, decl in all_decls:
            if isinstance(decl, ast.TypeDecl):
                self._lower_record(decl)
            elif isinstance(decl, ast.EnumDecl):
                self._lower_enum(decl)
        for _, decl in all_decls:
            if isinstance(decl, ast.SignatureDecl):
                self._lower_signature(decl)
        for _, decl in all_decls:
            if (
                isinstance(decl, ast.ModuleDecl)
                and self.decls.get(decl.name.name, (None, None))[1] is decl
            ):
                self.modules[decl.name.name] = _ModuleInfo(decl)
        for info in list(self.modules.values()):
            self._module_header(info)
        for name in list(self.modules):
            self._module_forward(name)
        for _, decl in all_decls:
            if isinstance(decl, ast.ProgramDecl):
                self._lower_program(decl)
            elif isinstance(decl, ast.DataDecl):
                self._lower_data(decl)
            elif isinstance(decl, ast.MetricDecl):
                self._lower_metric(decl)
        for _, decl in all_decls:
            if isinstance(decl, ast.OptimizeDecl):
                self._lower_optimize(decl)
            elif isinstance(decl, ast.TestDecl):
                self._lower_test(decl)
        self._report_unused(all_decls)
        return self._finish()

    def _finish(self) -> ir.Unit:
        self.unit = _b(
            ir.Unit,
            source=self.root,
            files=tuple(f.source.path for f in self.files),
            python=tuple(self.python.values()),
            signatures=tuple(self.signatures.values()) + tuple(self._extra_signatures.values()),
            records=tuple(self.records.values()),
            enums=tuple(self.enums.values()),
            modules=tuple(
                _b(
                    ir.Module,
                    name=name,
                    doc=info.decl.doc or "",
                    params=tuple(info.params.values()),
                    submodules=tuple(info.submodules),
                    forward=info.forward,
                    loc=self._loc(info.decl.name.span),
                )
                for name, info in self.modules.items()
            ),
            programs=tuple(self.programs.values()),
            data=tuple(self.data.values()),
            metrics=tuple(self.metrics.values()),
            optimizes=tuple(self.optimizes),
            tests=tuple(self.tests.values()),
        )
        return self.unit

    # ---- incremental re-check ------------------------------------------------------------
    def relower(self, changes: list[tuple[Any, Any]]) -> ir.Unit | None:
        """Re-check after edits, touching only the changed blocks when that is sound.

        ``changes`` pairs each changed block's old and new declaration (``None`` when the
        block does not parse). Sound here: a module whose header (parameters, members,
        forward parameters) is unchanged, whose inferred result stays the same; a test
        block; a block that stopped parsing (its old meaning is kept, its diagnostics go).
        Returns ``None`` when a full run is needed.
        """
        for old, new in changes:
            if old is None:
                return None
            if new is not None and (
                type(old) is not type(new) or not isinstance(new, ast.ModuleDecl | ast.TestDecl)
            ):
                return None
            if isinstance(new, ast.ModuleDecl) and (
                new.name.name != old.name.name
                or _shape(_header(new)) != _shape(_header(old))
                or self.modules.get(old.name.name, _ModuleInfo(old)).decl is not old
            ):
                return None
        for old, new in changes:
            origin = old.span.origin
            self.diagnostics = [d for d in self.diagnostics if d.span.origin is not origin]
            if new is None:
                continue  # keep what the old text declared and referenced
            self.references = [r for r in self.references if r.span.origin is not origin]
            if isinstance(new, ast.ModuleDecl):
                previous = self.modules[old.name.name]
                for key in [k for k, sym in self.symbols.items() if sym.span.origin is origin]:
                    del self.symbols[key]
                info = self.modules[new.name.name] = _ModuleInfo(new)
                self.decls[new.name.name] = ("module", new)
                self._define(
                    new.name.name,
                    new.name.name,
                    "module",
                    new.name.span,
                    new,
                    detail=f"module {new.name.name}",
                    doc=new.doc or "",
                )
                self._module_header(info)
                self._module_forward(new.name.name)
                if not _same_result(previous.returns, info.returns):
                    return None
            else:
                tests = {}
                for key, value in self.tests.items():
                    if key == id(old):
                        self._lower_test(new)
                        tests[id(new)] = self.tests.pop(id(new))
                    else:
                        tests[key] = value
                self.tests = tests
        self._all_decls = [(pf, _replace_decl(d, changes)) for pf, d in self._all_decls]
        self.diagnostics = [d for d in self.diagnostics if d.code != "DSX200"]
        self._report_unused(self._all_decls)
        return self._finish()

    # ---- helpers --------------------------------------------------------------------------
    def _loc(self, span: Span) -> ir.Loc | None:
        source = self.sources.get(span.file)
        if source is None:
            return None
        line, col = source.position(span.start)
        end_line, end_col = source.position(span.end)
        return ir.Loc(span.file, line, col, end_line, end_col)

    def _error(self, code: str, message: str, span: Span, **kw: Any) -> None:
        self.diagnostics.append(make(code, message, span, **kw))

    def _define(
        self,
        key: str,
        name: str,
        kind: str,
        span: Span,
        decl: Any = None,
        *,
        detail: str = "",
        doc: str = "",
        container: str | None = None,
    ) -> None:
        self.symbols.setdefault(
            key, Symbol(key, name, kind, span, decl, detail, doc or "", container)
        )

    def _ref(self, span: Span, key: str) -> None:
        self.references.append(Reference(span, key))

    def _unknown(
        self, code: str, what: str, ident: ast.Ident, candidates: Iterable[str], hint: str = ""
    ) -> None:
        guess = _env.did_you_mean(ident.name, candidates)
        fix = None
        message = f"unknown {what} `{ident.name}`"
        if guess:
            message += f"; did you mean `{guess}`?"
            fix = Fix(f"replace with `{guess}`", (Edit(ident.span, guess),))
        elif hint:
            message += f"; {hint}"
        self._error(code, message, ident.span, fix=fix)

    # ---- declarations ---------------------------------------------------------------------
    def _declare(self, decl: Any, pf: ParsedFile) -> None:
        kind = _TOP_KINDS.get(type(decl))
        if kind is None:
            return
        ident = decl.name if not isinstance(decl, ast.UseDecl) else decl.alias
        name = ident.name
        if name in self.decls:
            first_kind, first = self.decls[name]
            first_ident = first.name if not isinstance(first, ast.UseDecl) else first.alias
            self._error(
                "DSX102",
                f"`{name}` is declared twice (first as a {first_kind})",
                ident.span,
                related=(Related(first_ident.span, f"`{name}` first declared here"),),
            )
            return
        self.decls[name] = (kind, decl)
        self._define(
            name,
            name,
            kind,
            ident.span,
            decl,
            detail=f"{kind} {name}",
            doc=getattr(decl, "doc", None) or "",
        )

    def _lower_use(self, decl: ast.UseDecl) -> None:
        if self.decls.get(decl.alias.name, (None, None))[1] is not decl:
            return
        module = decl.module.value
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
            self._error(
                "DSX100",
                f'`{module}` is not a Python module name (use dots: "pkg.module")',
                decl.module.span,
            )
            self._python_names[decl.alias.name] = None
            self.python[decl.alias.name] = _b(
                ir.PythonImport, alias=decl.alias.name, module=module, loc=self._loc(decl.span)
            )
            return
        base = Path(decl.span.file).parent
        path, names = _env.python_module_names(module, base)
        if path is None and re.fullmatch(r"[\w.]+", module):
            try:
                import importlib.util

                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                self._error(
                    "DSX100",
                    f"Python module `{module}` was not found next to {Path(decl.span.file).name} or on sys.path",
                    decl.module.span,
                    severity="warning",
                )
        self._python_names[decl.alias.name] = names
        self.python[decl.alias.name] = _b(
            ir.PythonImport, alias=decl.alias.name, module=module, loc=self._loc(decl.span)
        )

    def _lower_record(self, decl: ast.TypeDecl) -> None:
        name = decl.name.name
        seen: dict[str, ast.RecordField] = {}
        fields = []
        for f in decl.fields:
            if self._dup(f.name, seen, f, "field", name):
                continue
            key = f"{name}.{f.name.name}"
            type_ = self._type(f.type)
            self._define(
                key,
                f.name.name,
                "record_field",
                f.name.span,
                f,
                detail=f"{f.name.name}: {type_}",
                doc=(f.desc.value if f.desc else "") or (f.doc or ""),
                container=name,
            )
            default, has_default = self._const_default(f.default)
            fields.append(
                _b(
                    ir.RecordField,
                    name=f.name.name,
                    type=type_,
                    desc=f.desc.value if f.desc else "",
                    default=default,
                    has_default=has_default,
                )
            )
        if self.decls.get(name, (None, None))[1] is decl:
            self.records[name] = _b(
                ir.Record,
                name=name,
                doc=decl.doc or "",
                fields=tuple(fields),
                loc=self._loc(decl.name.span),
            )

    def _lower_enum(self, decl: ast.EnumDecl) -> None:
        name = decl.name.name
        seen: dict[str, Any] = {}
        members = []
        for m in decl.members:
            if self._dup(m.name, seen, m, "member", name):
                continue
            self._define(
                f"{name}.{m.name.name}",
                m.name.name,
                "enum_member",
                m.name.span,
                m,
                detail=f"{name}.{m.name.name}",
                doc=m.desc.value if m.desc else "",
                container=name,
            )
            members.append(_b(ir.EnumMember, name=m.name.name, desc=m.desc.value if m.desc else ""))
        if self.decls.get(name, (None, None))[1] is decl:
            self.enums[name] = _b(
                ir.Enum,
                name=name,
                doc=decl.doc or "",
                members=tuple(members),
                loc=self._loc(decl.name.span),
            )

    def _dup(
        self, ident: ast.Ident, seen: dict[str, Any], node: Any, what: str, owner: str
    ) -> bool:
        if ident.name in seen:
            first = seen[ident.name]
            self._error(
                "DSX103",
                f"{what} `{ident.name}` appears twice in `{owner}`",
                ident.span,
                related=(
                    Related(
                        first.name.span if hasattr(first, "name") else first.span,
                        "first declared here",
                    ),
                ),
            )
            return True
        seen[ident.name] = node
        return False

    def _lower_signature(self, decl: ast.SignatureDecl) -> None:
        name = decl.name.name
        if decl.shorthand is not None:
            fields = self._shorthand_fields(decl.shorthand, name)
        else:
            fields = []
            seen: dict[str, Any] = {}
            for f in decl.fields:
                if self._dup(f.name, seen, f, "field", name):
                    continue
                type_ = self._type(f.type)
                default, has_default = self._const_default(f.default)
                desc = f.desc.value if f.desc else ""
                key = f"{name}.{f.name.name}"
                self._define(
                    key,
                    f.name.name,
                    "field",
                    f.name.span,
                    f,
                    detail=f"{f.direction} {f.name.name}: {type_}",
                    doc=desc or (f.doc or ""),
                    container=name,
                )
                fields.append(
                    _b(
                        ir.Field,
                        name=f.name.name,
                        direction=f.direction,
                        type=type_,
                        desc=desc or (f.doc or ""),
                        default=default,
                        has_default=has_default,
                        loc=self._loc(f.name.span),
                    )
                )
            if decl.fields and not any(f.direction == "out" for f in fields):
                self._error("DSX003", f"signature `{name}` has no `out` field", decl.name.span)
        if decl.instructions is not None:
            instructions = decl.instructions.value
        elif decl.doc:
            instructions = decl.doc
        else:
            ins = ", ".join(f"`{f.name}`" for f in fields if f.direction == "in") or "nothing"
            outs = ", ".join(f"`{f.name}`" for f in fields if f.direction == "out")
            instructions = f"From {ins}, produce {outs}."
        sig = _b(
            ir.Signature,
            name=name,
            instructions=instructions,
            fields=tuple(fields),
            loc=self._loc(decl.name.span),
        )
        if self.decls.get(name, (None, None))[1] is decl:
            self.signatures[name] = sig
            sym = self.symbols.get(name)
            if sym is not None:
                sym.detail = f"signature {name}({', '.join(f.name for f in sig.inputs)} -> {', '.join(f.name for f in sig.outputs)})"
                sym.doc = instructions

    def _shorthand_fields(self, text: ast.Str, owner: str) -> list[ir.Field]:
        raw = text.raw
        body_offset = text.span.lo + (3 if raw.startswith('"""') else 1)
        body = raw[3:-3] if raw.startswith('"""') else raw[1:-1]
        if body.count("->") != 1:
            self._error(
                "DSX003",
                f'signature shorthand {raw} must contain exactly one `->`, like "question -> answer"',
                text.span,
            )
            return []
        arrow = body.index("->")
        fields: list[ir.Field] = []
        seen: set[str] = set()
        for side, start, part in (("in", 0, body[:arrow]), ("out", arrow + 2, body[arrow + 2 :])):
            for item_start, item in _split_top(part, start):
                stripped = item.strip()
                if not stripped:
                    if part.strip():
                        self._error(
                            "DSX003",
                            "empty field in signature shorthand (a stray comma?)",
                            Span(
                                text.span.origin,
                                body_offset + item_start,
                                body_offset + item_start + max(1, len(item)),
                            ),
                        )
                    continue
                lead = len(item) - len(item.lstrip())
                fname, colon, type_text = stripped.partition(":")
                fname = fname.strip()
                fspan = Span(
                    text.span.origin,
                    body_offset + item_start + lead,
                    body_offset + item_start + lead + len(fname),
                )
                if not re.fullmatch(r"[A-Za-z_]\w*", fname):
                    self._error("DSX003", f"`{fname}` is not a valid field name", fspan)
                    continue
                if fname in seen:
                    self._error("DSX103", f"field `{fname}` appears twice in `{owner}`", fspan)
                    continue
                seen.add(fname)
                type_ = _b(ir.TypeRef, kind="str")
                if colon:
                    t_off = body_offset + item_start + lead + len(stripped.partition(":")[0]) + 1
                    tnode, diag = parse_type_text(type_text, text.span.origin, t_off)
                    if diag is not None:
                        self.diagnostics.append(
                            make(
                                "DSX003",
                                f"bad type in signature shorthand: {diag.message}",
                                diag.span,
                            )
                        )
                        type_ = _ANY
                    else:
                        type_ = self._type(tnode)
                key = f"{owner}.{fname}"
                self._define(
                    key,
                    fname,
                    "field",
                    fspan,
                    None,
                    detail=f"{side} {fname}: {type_}",
                    container=owner,
                )
                fields.append(
                    _b(ir.Field, name=fname, direction=side, type=type_, loc=self._loc(fspan))
                )  # type: ignore[arg-type]
        if not any(f.direction == "out" for f in fields):
            self._error(
                "DSX003", f"signature shorthand {raw} has no output field after `->`", text.span
            )
        return fields

    def _const_default(self, expr: Any) -> tuple[Any, bool]:
        if expr is None:
            return None, False
        value = _const_value(expr)
        if value is _NOT_CONST:
            self._error(
                "DSX113",
                "a default value must be a constant (string, number, true/false/none, or a list/dict of those)",
                expr.span,
            )
            return None, False
        return value, True

    # ---- types ----------------------------------------------------------------------------
    def _type(self, node: Any) -> ir.TypeRef:
        if isinstance(node, ast.NamedType):
            name = node.name.name
            simple = {
                "str": "str",
                "int": "int",
                "float": "float",
                "bool": "bool",
                "any": "any",
                "Image": "image",
                "History": "history",
            }
            if name in simple:
                return _b(ir.TypeRef, kind=simple[name])  # type: ignore[arg-type]
            if name in _env.GENERIC_TYPES:
                return _b(ir.TypeRef, kind=name, args=(_ANY,) * max(0, _env.GENERIC_TYPES[name]))  # type: ignore[arg-type]
            kind, _ = self.decls.get(name, (None, None))
            if kind == "type":
                self._ref(node.name.span, name)
                return _b(ir.TypeRef, kind="record", name=name)
            if kind == "enum":
                self._ref(node.name.span, name)
                return _b(ir.TypeRef, kind="enum", name=name)
            candidates = [
                *simple,
                *_env.GENERIC_TYPES,
                *(n for n, (k, _) in self.decls.items() if k in ("type", "enum")),
            ]
            if kind is not None:
                self._ref(node.name.span, name)
                self._error("DSX106", f"`{name}` is a {kind}, not a type", node.name.span)
            else:
                self._unknown(
                    "DSX101", "type", node.name, candidates, "declare it with `type` or `enum`"
                )
            return _ANY
        if isinstance(node, ast.GenericType):
            name = node.name.name
            args = tuple(self._type(a) for a in node.args)
            arity = _env.GENERIC_TYPES.get(name)
            if arity is None:
                self._unknown("DSX101", "generic type", node.name, _env.GENERIC_TYPES)
                return _ANY
            if arity > 0 and len(args) != arity:
                self._error(
                    "DSX101",
                    f"`{name}` takes {arity} type argument{'s' if arity > 1 else ''}, got {len(args)}",
                    node.span,
                )
                args = (args + (_ANY,) * arity)[:arity]
            return _b(ir.TypeRef, kind=name, args=args)  # type: ignore[arg-type]
        if isinstance(node, ast.OptionalType):
            return _b(ir.TypeRef, kind="optional", args=(self._type(node.inner),))
        if isinstance(node, ast.LiteralType):
            return _b(ir.TypeRef, kind="literal", values=(node.value,))
        if isinstance(node, ast.UnionType):
            opts = [self._type(o) for o in node.options]
            if all(o.kind == "literal" for o in opts):
                values = tuple(v for o in opts for v in o.values)
                return _b(ir.TypeRef, kind="literal", values=values)
            return _b(ir.TypeRef, kind="union", args=tuple(opts))
        return _ANY

    # ---- modules --------------------------------------------------------------------------
    def _module_header(self, info: _ModuleInfo) -> None:
        decl = info.decl
        mname = decl.name.name
        seen: dict[str, Any] = {}
        for p in decl.params:
            if self._dup(p.name, seen, p, "parameter", mname):
                continue
            info.params[p.name.name] = self._param(p, f"{mname}({p.name.name})", mname, {})
        scope = self._base_scope()
        for pname, param in info.params.items():
            scope[pname] = _Entry("param", param.type, f"{mname}({pname})")
        subs_seen: dict[str, Any] = {}
        for sub in decl.submodules:
            if self._dup(sub.name, subs_seen, sub, "member", mname):
                continue
            if sub.name.name in info.params:
                self._error(
                    "DSX103",
                    f"`{sub.name.name}` is both a parameter and a member of `{mname}`",
                    sub.name.span,
                )
            key = f"{mname}.{sub.name.name}"
            lowered, subinfo = self._submodule(sub.name.name, sub.value, scope, owner=mname)
            subinfo.key = key
            info.subs[sub.name.name] = subinfo
            info.submodules.append(lowered.model_copy(update={"loc": self._loc(sub.name.span)}))
            detail = f"{sub.name.name} = {subinfo.kind}({subinfo.signature.name if subinfo.signature else subinfo.module or ''})"
            self._define(
                key,
                sub.name.name,
                "submodule",
                sub.name.span,
                sub,
                detail=detail,
                doc=sub.doc or "",
                container=mname,
            )
            scope[sub.name.name] = _Entry("sub", None, key, subinfo)
        if decl.forward is None:
            self._error(
                "DSX125", f"module `{mname}` has no `forward(...) {{ ... }}` body", decl.name.span
            )
        else:
            for p in decl.forward.params:
                self._define(
                    f"{mname}.forward.{p.name.name}",
                    p.name.name,
                    "param",
                    p.name.span,
                    p,
                    container=mname,
                )
        info.state = "header"

    def _param(self, p: ast.Param, key: str, owner: str, scope: dict[str, _Entry]) -> ir.Param:
        type_ = self._type(p.type) if p.type is not None else None
        default = None
        if p.default is not None:
            default, dtype = self._expr(p.default, scope or self._base_scope())
            if type_ is not None:
                self._check_assignable(
                    dtype, type_, p.default.span, f"the default of `{p.name.name}`"
                )
        self._define(
            key,
            p.name.name,
            "param",
            p.name.span,
            p,
            detail=f"{p.name.name}: {type_ or 'any'}",
            container=owner,
        )
        return _b(ir.Param, name=p.name.name, type=type_, default=default)

    def _submodule(
        self, name: str, value: Any, scope: dict[str, _Entry], *, owner: str
    ) -> tuple[ir.Submodule, _Sub]:
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.NameRef)):
            self._error(
                "DSX105",
                f"`{name}` must be built with a module kind, e.g. `{name} = Predict(MySignature)`",
                value.span,
            )
            return _b(ir.Submodule, name=name, kind="Predict"), _Sub(name, "Predict")
        kind_name = value.func.name.name
        kind = _env.KINDS.get(kind_name)
        if kind is None:
            decl_kind, _ = self.decls.get(kind_name, (None, None))
            if decl_kind == "module":
                self._ref(value.func.name.span, kind_name)
                return self._user_module_instance(name, value, scope)
            if decl_kind is not None:
                self._ref(value.func.name.span, kind_name)
                self._error(
                    "DSX105",
                    f"`{kind_name}` is a {decl_kind}, not a module kind",
                    value.func.name.span,
                )
            else:
                candidates = [
                    *_env.KINDS,
                    *(n for n, (k, _) in self.decls.items() if k == "module"),
                ]
                self._unknown(
                    "DSX105",
                    "module kind",
                    value.func.name,
                    candidates,
                    "use Predict, ChainOfThought, ReAct, ... or a declared module",
                )
            return _b(ir.Submodule, name=name, kind="Predict"), _Sub(name, "Predict")
        signature = None
        kwargs: list[tuple[str, ir.Expr]] = []
        wraps = None
        positional = [a for a in value.args if a.name is None]
        if kind.takes_signature:
            sig_arg = (
                positional[0].value
                if positional
                else (value.kwarg("signature").value if value.kwarg("signature") else None)
            )  # type: ignore[union-attr]
            if sig_arg is None:
                self._error(
                    "DSX116",
                    f'{kind_name} needs a signature: `{kind_name}(MySignature)` or `{kind_name}("question -> answer")`',
                    value.span,
                )
            else:
                signature = self._signature_ref(sig_arg, f"{owner}_{name}")
            extra_pos = positional[1:]
        else:
            extra_pos = positional
        for arg in extra_pos:
            self._error(
                "DSX114", f"{kind_name} takes its settings as keywords (`name = value`)", arg.span
            )
        for arg in value.args:
            if arg.name is None or arg.name.name == "signature":
                continue
            key = arg.name.name
            if key not in kind.kwargs:
                guess = _env.did_you_mean(key, kind.kwargs)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),)) if guess else None
                )
                allowed = ", ".join(sorted(kind.kwargs)) or "none"
                self._error(
                    "DSX115",
                    f"{kind_name} has no setting `{key}`"
                    + (f"; did you mean `{guess}`?" if guess else f" (it accepts: {allowed})"),
                    arg.name.span,
                    fix=fix,
                )
                continue
            if kind.wraps_module and key == "module":
                if (
                    isinstance(arg.value, ast.NameRef)
                    and arg.value.name.name in scope
                    and scope[arg.value.name.name].kind == "sub"
                ):
                    wraps = scope[arg.value.name.name].sub
                    self._ref(arg.value.name.span, scope[arg.value.name.name].key or "")
                    kwargs.append((key, _b(ir.Name, name=arg.value.name.name, loc=None)))
                    continue
                self._error(
                    "DSX106",
                    f"`module` of {kind_name} must name another member of this module",
                    arg.value.span,
                )
                continue
            lowered, _ = self._expr(arg.value, scope)
            kwargs.append((key, lowered))
        if (
            kind.wraps_module
            and wraps is None
            and not any(k == "module" for k, _ in kwargs)
            and value.kwarg("module") is None
        ):
            self._error(
                "DSX116", f"{kind_name} needs `module = <member>`: the module it runs", value.span
            )
        sub = _Sub(name, kind_name, signature=signature, wraps=wraps)
        return _b(
            ir.Submodule,
            name=name,
            kind=kind_name,
            signature=signature.name if signature else None,
            kwargs=tuple(kwargs),
        ), sub  # type: ignore[arg-type]

    def _user_module_instance(
        self, name: str, value: ast.Call, scope: dict[str, _Entry]
    ) -> tuple[ir.Submodule, _Sub]:
        mname = value.func.name.name  # type: ignore[union-attr]
        target = self.modules.get(mname)
        kwargs: list[tuple[str, ir.Expr]] = []
        params = target.decl.params if target else ()
        by_name = {p.name.name: p for p in params}
        for arg in value.args:
            if arg.name is None:
                self._error(
                    "DSX114", f"module `{mname}` takes keyword arguments (`name = value`)", arg.span
                )
                continue
            if target is not None and arg.name.name not in by_name:
                guess = _env.did_you_mean(arg.name.name, by_name)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),)) if guess else None
                )
                self._error(
                    "DSX115",
                    f"module `{mname}` has no parameter `{arg.name.name}`"
                    + (f"; did you mean `{guess}`?" if guess else ""),
                    arg.name.span,
                    fix=fix,
                )
                continue
            self._ref(arg.name.span, f"{mname}({arg.name.name})")
            lowered, atype = self._expr(arg.value, scope)
            p = by_name.get(arg.name.name)
            if p is not None and p.type is not None:
                self._check_assignable(
                    atype,
                    self._type_quiet(p.type),
                    arg.value.span,
                    f"parameter `{arg.name.name}` of `{mname}`",
                )
            kwargs.append((arg.name.name, lowered))
        given = {a.name.name for a in value.args if a.name is not None}
        missing = [p.name.name for p in params if p.default is None and p.name.name not in given]
        if missing:
            self._error(
                "DSX116",
                f"module `{mname}` needs {', '.join(f'`{m} = ...`' for m in missing)}",
                value.span,
            )
        return _b(ir.Submodule, name=name, kind="module", module=mname, kwargs=tuple(kwargs)), _Sub(
            name, "module", module=mname
        )

    def _type_quiet(self, node: Any) -> ir.TypeRef:
        n = len(self.diagnostics)
        t = self._type(node)
        del self.diagnostics[n:]
        return t

    def _signature_ref(self, arg: Any, anon_name: str) -> ir.Signature | None:
        if isinstance(arg, ast.Str):
            fields = self._shorthand_fields(arg, anon_name)
            ins = ", ".join(f"`{f.name}`" for f in fields if f.direction == "in") or "nothing"
            outs = ", ".join(f"`{f.name}`" for f in fields if f.direction == "out")
            sig = _b(
                ir.Signature,
                name=anon_name,
                instructions=f"From {ins}, produce {outs}.",
                fields=tuple(fields),
                loc=self._loc(arg.span),
            )
            self._extra_signatures[anon_name] = sig
            return sig
        if isinstance(arg, ast.NameRef):
            name = arg.name.name
            kind, _ = self.decls.get(name, (None, None))
            if kind == "signature":
                self._ref(arg.name.span, name)
                return self.signatures.get(name)
            if kind is not None:
                self._ref(arg.name.span, name)
                self._error("DSX104", f"`{name}` is a {kind}, not a signature", arg.name.span)
            else:
                self._unknown(
                    "DSX104",
                    "signature",
                    arg.name,
                    [n for n, (k, _) in self.decls.items() if k == "signature"],
                )
            return None
        self._error("DSX104", 'expected a signature name or a "inputs -> outputs" string', arg.span)
        return None

    def _module_forward(self, name: str) -> Any:
        info = self.modules.get(name)
        if info is None:
            return None
        if info.state in ("done", "lowering"):
            return info.returns
        if info.state == "new":
            self._module_header(info)
        info.state = "lowering"
        fwd = info.decl.forward
        if fwd is not None:
            scope = self._base_scope()
            for pname, param in info.params.items():
                scope[pname] = _Entry("param", param.type, f"{name}({pname})")
            for sname, sub in info.subs.items():
                scope[sname] = _Entry("sub", None, sub.key, sub)
            params = []
            seen: dict[str, Any] = {}
            for p in fwd.params:
                if self._dup(p.name, seen, p, "parameter", f"{name}.forward"):
                    continue
                param = self._param(p, f"{name}.forward.{p.name.name}", name, scope)
                params.append(param)
                scope[p.name.name] = _Entry("param", param.type, f"{name}.forward.{p.name.name}")
            returns: list[Any] = []
            body = self._block(fwd.body, scope, returns)
            info.forward = _b(
                ir.Forward, params=tuple(params), body=tuple(body), loc=self._loc(fwd.keyword)
            )
            info.returns = next((r for r in returns if r is not None), None)
            if not returns:
                self._error("DSX126", f"`forward` of `{name}` never returns a value", fwd.keyword)
        info.state = "done"
        return info.returns

    def _base_scope(self) -> dict[str, _Entry]:
        scope: dict[str, _Entry] = {n: _Entry("builtin") for n in _env.BUILTIN_FUNCTIONS}
        for alias in self.python:
            scope[alias] = _Entry("python", None, alias)
        return scope

    # ---- statements -----------------------------------------------------------------------
    def _block(
        self, stmts: Iterable[Any], scope: dict[str, _Entry], returns: list[Any]
    ) -> list[Any]:
        out = []
        for stmt in stmts:
            lowered = self._stmt(stmt, scope, returns)
            if lowered is not None:
                out.append(lowered)
        return out

    def _stmt(self, stmt: Any, scope: dict[str, _Entry], returns: list[Any]) -> Any:
        loc = self._loc(stmt.span)
        if isinstance(stmt, ast.Assign):
            value, vtype = self._expr(stmt.value, scope)
            target = stmt.target.name
            existing = scope.get(target)
            if existing is not None and existing.kind in ("sub", "param"):
                self._error(
                    "DSX103",
                    f"`{target}` is a {'member' if existing.kind == 'sub' else 'parameter'}; assign to a new name",
                    stmt.target.span,
                )
            scope[target] = _Entry("local", vtype)
            return _b(ir.Assign, target=target, value=value, loc=loc)
        if isinstance(stmt, ast.Return):
            value, vtype = self._expr(stmt.value, scope)
            returns.append(vtype)
            return _b(ir.Return, value=value, loc=loc)
        if isinstance(stmt, ast.If):
            cond, _ = self._expr(stmt.cond, scope)
            then = self._block(stmt.then, scope, returns)
            orelse = self._block(stmt.orelse, scope, returns) if stmt.orelse else []
            return _b(ir.If, cond=cond, then=tuple(then), orelse=tuple(orelse), loc=loc)
        if isinstance(stmt, ast.For):
            it, itype = self._expr(stmt.iter, scope)
            elem = (
                itype.args[0]
                if isinstance(itype, ir.TypeRef) and itype.kind == "list" and itype.args
                else None
            )
            scope[stmt.var.name] = _Entry("local", elem)
            body = self._block(stmt.body, scope, returns)
            return _b(ir.For, var=stmt.var.name, iter=it, body=tuple(body), loc=loc)
        if isinstance(stmt, ast.Check):
            return self._check(stmt, scope)
        if isinstance(stmt, ast.ExprStmt):
            value, _ = self._expr(stmt.expr, scope)
            return _b(ir.ExprStmt, expr=value, loc=loc)
        return None

    def _check(self, stmt: ast.Check, scope: dict[str, _Entry]) -> ir.Check:
        cond, _ = self._expr(stmt.cond, scope)
        message = self._expr(stmt.message, scope)[0] if stmt.message is not None else None
        return _b(
            ir.Check, severity=stmt.kind, cond=cond, message=message, loc=self._loc(stmt.span)
        )

    # ---- expressions ----------------------------------------------------------------------
    def _expr(self, e: Any, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        # Expressions carry no location: statements do, and that is what source maps and
        # runtime errors point at. (It also keeps the IR small and lowering fast.)
        loc = None
        if isinstance(e, ast.Lit):
            t = (
                None
                if e.value is None
                else _b(ir.TypeRef, kind={bool: "bool", int: "int", float: "float"}[type(e.value)])
            )  # type: ignore[index]
            return _b(ir.Const, value=e.value, loc=loc), t
        if isinstance(e, ast.Str):
            return self._string(e, scope), _LitStr(e.value)
        if isinstance(e, ast.NameRef):
            return self._name(e, scope, loc)
        if isinstance(e, ast.ListExpr):
            items = [self._expr(i, scope) for i in e.items]
            return _b(ir.List, items=tuple(i for i, _ in items), loc=loc), _b(
                ir.TypeRef, kind="list", args=(_ANY,)
            )
        if isinstance(e, ast.DictExpr):
            keys = [self._expr(p.key, scope)[0] for p in e.pairs]
            values = [self._expr(p.value, scope)[0] for p in e.pairs]
            return _b(ir.Dict, keys=tuple(keys), values=tuple(values), loc=loc), _b(
                ir.TypeRef, kind="dict", args=(_ANY, _ANY)
            )
        if isinstance(e, ast.Attr):
            return self._attr(e, scope, loc)
        if isinstance(e, ast.Index):
            obj, otype = self._expr(e.obj, scope)
            idx, _ = self._expr(e.index, scope)
            elem = (
                otype.args[0]
                if isinstance(otype, ir.TypeRef) and otype.kind == "list" and otype.args
                else None
            )
            return _b(ir.Index, obj=obj, index=idx, loc=loc), elem
        if isinstance(e, ast.Call):
            return self._call(e, scope, loc)
        if isinstance(e, ast.BinOp):
            left, ltype = self._expr(e.left, scope)
            right, rtype = self._expr(e.right, scope)
            rt: Any = None
            if e.op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in"):
                rt = _b(ir.TypeRef, kind="bool")
            elif e.op == "+" and _is_str(ltype) and _is_str(rtype):
                rt = _b(ir.TypeRef, kind="str")
            return _b(ir.BinOp, op=e.op, left=left, right=right, loc=loc), rt  # type: ignore[arg-type]
        if isinstance(e, ast.Not):
            operand, _ = self._expr(e.operand, scope)
            return _b(ir.Unary, op="not", operand=operand, loc=loc), _b(ir.TypeRef, kind="bool")
        if isinstance(e, ast.Neg):
            operand, otype = self._expr(e.operand, scope)
            return _b(ir.Unary, op="-", operand=operand, loc=loc), otype if isinstance(
                otype, ir.TypeRef
            ) else None
        return _b(ir.Const, value=None, loc=loc), None

    def _name(self, e: ast.NameRef, scope: dict[str, _Entry], loc: Any) -> tuple[Any, Any]:
        name = e.name.name
        entry = scope.get(name)
        if entry is None:
            self._unknown(
                "DSX100",
                "name",
                e.name,
                [n for n in scope if scope[n].kind != "builtin"] + list(_env.BUILTIN_FUNCTIONS),
            )
            return _b(ir.Name, name=name, loc=loc), None
        if entry.key:
            self._ref(e.name.span, entry.key)
        return _b(ir.Name, name=name, loc=loc), entry.type

    def _attr(self, e: ast.Attr, scope: dict[str, _Entry], loc: Any) -> tuple[Any, Any]:
        obj, otype = self._expr(e.obj, scope)
        attr = e.name.name
        result: Any = None
        if isinstance(otype, PredType):
            if attr in otype.fields:
                result = otype.fields[attr]
                if attr in otype.keys:
                    self._ref(e.name.span, otype.keys[attr])
            else:
                guess = _env.did_you_mean(attr, otype.fields)
                fix = Fix(f"replace with `{guess}`", (Edit(e.name.span, guess),)) if guess else None
                outs = ", ".join(f"`{f}`" for f in otype.fields) or "none"
                self._error(
                    "DSX112",
                    f"{otype.owner} has no output `{attr}`"
                    + (f"; did you mean `{guess}`?" if guess else f" (its outputs: {outs})"),
                    e.name.span,
                    fix=fix,
                )
        elif (
            isinstance(e.obj, ast.NameRef)
            and scope.get(e.obj.name.name, _Entry("")).kind == "python"
        ):
            alias = e.obj.name.name
            names = self._python_names.get(alias)
            if names is not None and attr not in names:
                self._unknown(
                    "DSX100", f"name in Python module `{self.python[alias].module}`:", e.name, names
                )
        elif (
            isinstance(otype, ir.TypeRef) and otype.kind == "record" and otype.name in self.records
        ):
            rec = self.records[otype.name]
            fields = {f.name: f.type for f in rec.fields}
            if attr in fields:
                result = fields[attr]
                self._ref(e.name.span, f"{rec.name}.{attr}")
            else:
                self._unknown("DSX112", f"field of `{rec.name}`:", e.name, fields)
        return _b(ir.Attr, obj=obj, name=attr, loc=loc), result

    def _call(self, e: ast.Call, scope: dict[str, _Entry], loc: Any) -> tuple[Any, Any]:
        func, _ = self._expr(e.func, scope)
        entry = scope.get(e.func.name.name) if isinstance(e.func, ast.NameRef) else None
        result: Any = None
        if entry is not None and entry.kind == "sub" and entry.sub is not None:
            result = self._check_sub_call(e, entry.sub, scope)
        args, kwargs = [], []
        for arg in e.args:
            value, _ = self._expr(arg.value, scope)
            if arg.name is None:
                args.append(value)
            else:
                kwargs.append((arg.name.name, value))
        if isinstance(e.func, ast.NameRef) and e.func.name.name in (
            "str",
            "join",
            "lower",
            "upper",
            "strip",
        ):
            result = _b(ir.TypeRef, kind="str")
        elif isinstance(e.func, ast.NameRef) and e.func.name.name in ("len", "int", "round"):
            result = _b(ir.TypeRef, kind="int")
        return _b(ir.Call, func=func, args=tuple(args), kwargs=tuple(kwargs), loc=loc), result

    def _check_sub_call(self, e: ast.Call, sub: _Sub, scope: dict[str, _Entry]) -> Any:
        target = sub.wraps if sub.wraps is not None else sub
        kind = _env.KINDS.get(target.kind)
        label = f"`{sub.name}`"
        if target.kind == "Retrieve":
            positional = [a for a in e.args if a.name is None]
            named = {a.name.name for a in e.args if a.name is not None}
            if not positional and "query" not in named:
                self._error(
                    "DSX110", f"{label} (Retrieve) needs a query: `{sub.name}(query)`", e.span
                )
            for a in e.args:
                if a.name is not None and a.name.name not in ("query", "k"):
                    self._error(
                        "DSX111",
                        f"{label} (Retrieve) takes a query and `k`, not `{a.name.name}`",
                        a.name.span,
                    )
            return PredType(
                f"{label} (Retrieve)",
                {"passages": _b(ir.TypeRef, kind="list", args=(_b(ir.TypeRef, kind="str"),))},
            )
        if target.kind == "module":
            return self._check_module_call(e, target, label)
        sig = target.signature
        if sig is None or kind is None:
            return None
        inputs = {f.name: f for f in sig.inputs}
        positional = [a for a in e.args if a.name is None]
        if positional:
            fix = None
            if len(inputs) == 1 and len(positional) == 1:
                only = next(iter(inputs))
                arg0 = positional[0]
                fix = Fix(
                    f"pass it as `{only} = ...`",
                    (Edit(Span(arg0.span.origin, arg0.span.lo, arg0.span.lo), f"{only} = "),),
                )
            self._error(
                "DSX114",
                f"{label} takes keyword inputs ({', '.join(f'`{n} = ...`' for n in inputs)})",
                positional[0].span.cover(positional[-1].span),
                fix=fix,
            )
        for arg in e.args:
            if arg.name is None:
                continue
            fname = arg.name.name
            if fname not in inputs:
                if fname in ("config", "demos", "lm"):
                    continue
                guess = _env.did_you_mean(fname, inputs)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),)) if guess else None
                )
                self._error(
                    "DSX111",
                    f"{label} ({sig.name}) has no input `{fname}`"
                    + (
                        f"; did you mean `{guess}`?"
                        if guess
                        else f" (its inputs: {', '.join(f'`{n}`' for n in inputs) or 'none'})"
                    ),
                    arg.name.span,
                    fix=fix,
                )
                continue
            self._ref(arg.name.span, f"{sig.name}.{fname}")
            _, atype = self._expr_type_only(arg.value, scope)
            self._check_assignable(
                atype, inputs[fname].type, arg.value.span, f"input `{fname}` of {label}"
            )
        given = {a.name.name for a in e.args if a.name is not None}
        missing = [
            n
            for n, f in inputs.items()
            if n not in given and not f.has_default and f.type.kind != "optional"
        ]
        if missing and not any(a.name is None for a in e.args):
            self._error(
                "DSX110",
                f"{label} ({sig.name}) is missing the input{'s' if len(missing) > 1 else ''} {', '.join(f'`{m}`' for m in missing)}",
                e.span,
            )
        fields: dict[str, Any] = {x: _b(ir.TypeRef, kind="str") for x in kind.extra_outputs}
        keys: dict[str, str] = {}
        for f in sig.outputs:
            fields[f.name] = f.type
            keys[f.name] = f"{sig.name}.{f.name}"
        return PredType(f"{label} ({target.kind}({sig.name}))", fields, keys)

    def _expr_type_only(self, e: Any, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        # Arguments are lowered again by _call; lower quietly here just for the type.
        n_diag, n_ref = len(self.diagnostics), len(self.references)
        result = self._expr(e, scope)
        del self.diagnostics[n_diag:]
        del self.references[n_ref:]
        return result

    def _check_module_call(self, e: ast.Call, sub: _Sub, label: str) -> Any:
        info = self.modules.get(sub.module or "")
        if info is None or info.decl.forward is None:
            return None
        params = {p.name.name: p for p in info.decl.forward.params}
        for arg in e.args:
            if arg.name is not None:
                if arg.name.name not in params:
                    guess = _env.did_you_mean(arg.name.name, params)
                    fix = (
                        Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),))
                        if guess
                        else None
                    )
                    self._error(
                        "DSX111",
                        f"{label} (module {sub.module}) has no input `{arg.name.name}`"
                        + (f"; did you mean `{guess}`?" if guess else ""),
                        arg.name.span,
                        fix=fix,
                    )
                else:
                    self._ref(arg.name.span, f"{sub.module}.forward.{arg.name.name}")
        n_pos = sum(1 for a in e.args if a.name is None)
        given = {a.name.name for a in e.args if a.name is not None} | set(list(params)[:n_pos])
        missing = [n for n, p in params.items() if p.default is None and n not in given]
        if missing:
            self._error(
                "DSX110",
                f"{label} (module {sub.module}) is missing {', '.join(f'`{m}`' for m in missing)}",
                e.span,
            )
        returned = self._module_forward(sub.module or "")
        if isinstance(returned, PredType):
            return PredType(f"{label} (module {sub.module})", returned.fields, returned.keys)
        return None

    def _string(self, e: ast.Str, scope: dict[str, _Entry]) -> Any:
        raw = e.raw
        if "{" not in raw:
            return _b(ir.Const, value=e.value, loc=None)
        from dsx.grammar._transform import decode_string

        triple = raw.startswith('"""')
        body = raw[3:-3] if triple else raw[1:-1]
        base = e.span.lo + (3 if triple else 1)
        parts: list[Any] = []
        text_buf: list[str] = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch == "{" and body.startswith("{{", i):
                text_buf.append("{")
                i += 2
                continue
            if ch == "}" and body.startswith("}}", i):
                text_buf.append("}")
                i += 2
                continue
            if ch == "{":
                close = body.find("}", i)
                if close < 0:
                    self._error(
                        "DSX002",
                        "unterminated `{` in string interpolation; write `{{` for a literal brace",
                        Span(e.span.origin, base + i, base + i + 1),
                    )
                    text_buf.append(body[i:])
                    break
                inner = body[i + 1 : close]
                if text_buf:
                    parts.append(decode_string('"' + "".join(text_buf) + '"'))
                    text_buf = []
                node, diag = _simple_path(inner, e.span.origin, base + i + 1)
                if node is None:
                    node, diag = parse_expr_text(inner, e.span.origin, base + i + 1)
                if diag is not None:
                    self.diagnostics.append(
                        make(
                            "DSX002",
                            f"bad expression in string interpolation: {diag.message}",
                            diag.span,
                        )
                    )
                else:
                    parts.append(self._expr(node, scope)[0])
                i = close + 1
                continue
            text_buf.append(ch)
            i += 1
        if text_buf:
            parts.append(
                decode_string('"' + "".join(text_buf).replace('"', '\\"') + '"')
                if not triple
                else "".join(text_buf)
            )
        return _b(ir.FString, parts=tuple(parts), loc=None)

    def _check_assignable(
        self, actual: Any, expected: ir.TypeRef | None, span: Span, what: str
    ) -> None:
        if expected is None or actual is None or isinstance(actual, PredType):
            return
        problem = _mismatch(actual, expected, self)
        if problem:
            self._error("DSX113", f"{what} expects {expected}, got {problem}", span)

    # ---- other top-level declarations ------------------------------------------------------
    def _lower_program(self, decl: ast.ProgramDecl) -> None:
        name = decl.name.name
        scope = self._base_scope()
        lowered, sub = self._submodule(name, decl.value, scope, owner=name)
        if self.decls.get(name, (None, None))[1] is not decl:
            return
        self.programs[name] = _b(
            ir.Program, name=name, root=lowered, doc=decl.doc or "", loc=self._loc(decl.name.span)
        )
        inputs: dict[str, Any] = {}
        outputs: Any = None
        if sub.kind == "module" and sub.module in self.modules:
            info = self.modules[sub.module]
            if info.forward is not None:
                inputs = {p.name: p for p in info.forward.params}
            outputs = self._module_forward(sub.module)
        elif sub.signature is not None:
            inputs = {f.name: f for f in sub.signature.inputs}
            kind = _env.KINDS[sub.kind]
            outputs = PredType(
                name,
                {
                    **{x: _b(ir.TypeRef, kind="str") for x in kind.extra_outputs},
                    **{f.name: f.type for f in sub.signature.outputs},
                },
            )
        self.program_io[name] = (inputs, outputs)
        sym = self.symbols.get(name)
        if sym is not None:
            sym.detail = f"program {name} = {sub.module or sub.kind}({', '.join(inputs)})"

    def _lower_data(self, decl: ast.DataDecl) -> None:
        name = decl.name.name
        value = decl.value
        usage = (
            'write `data NAME = jsonl("file.jsonl", inputs = [question])` (or csv(...), json(...))'
        )
        if not (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.NameRef)
            and value.func.name.name in ("jsonl", "csv", "json")
        ):
            self._error("DSX122", f"`data {name}` must load a file: {usage}", value.span)
            return
        fmt = value.func.name.name
        positional = [a for a in value.args if a.name is None]
        if not positional or not isinstance(positional[0].value, ast.Str):
            self._error(
                "DSX122", f"`{fmt}(...)` needs the file path as a string first: {usage}", value.span
            )
            return
        path = positional[0].value.value
        inputs: list[str] = []
        inputs_arg = value.kwarg("inputs")
        for arg in value.args:
            if arg.name is not None and arg.name.name != "inputs":
                self._error(
                    "DSX122",
                    f"`{fmt}(...)` accepts a path and `inputs = [...]`, not `{arg.name.name}`",
                    arg.name.span,
                )
        if inputs_arg is None or not isinstance(inputs_arg.value, ast.ListExpr):
            self._error(
                "DSX122",
                f"`{fmt}(...)` needs `inputs = [...]` naming the input fields of each example",
                value.span,
            )
        else:
            for item in inputs_arg.value.items:
                if isinstance(item, ast.NameRef):
                    inputs.append(item.name.name)
                elif isinstance(item, ast.Str):
                    inputs.append(item.value)
                else:
                    self._error("DSX122", "each input must be a field name", item.span)
        base_dir = str(Path(decl.span.file).parent)
        try:
            exists = (Path(base_dir) / path).exists()
        except (OSError, ValueError):
            exists = False
        if not exists:
            self._error(
                "DSX122",
                f"data file `{path}` does not exist (relative to {Path(decl.span.file).name})",
                positional[0].value.span,
                severity="warning",
            )
        self.data[name] = _b(
            ir.DataSet,
            name=name,
            format=fmt,
            path=path,
            base_dir=base_dir,
            inputs=tuple(inputs),
            loc=self._loc(decl.name.span),
        )  # type: ignore[arg-type]

    def _lower_metric(self, decl: ast.MetricDecl) -> None:
        name = decl.name.name
        value = decl.value
        metric: ir.Metric | None = None
        if isinstance(value, ast.Attr) and isinstance(value.obj, ast.NameRef):
            alias = value.obj.name.name
            if alias in self.python:
                self._ref(value.obj.name.span, alias)
                names = self._python_names.get(alias)
                if names is not None and value.name.name not in names:
                    self._unknown(
                        "DSX100",
                        f"name in Python module `{self.python[alias].module}`:",
                        value.name,
                        names,
                    )
                metric = _b(
                    ir.Metric,
                    name=name,
                    python=f"{self.python[alias].module}:{value.name.name}",
                    loc=self._loc(decl.name.span),
                )
            else:
                self._unknown(
                    "DSX100",
                    "Python module alias",
                    value.obj.name,
                    self.python,
                    'declare it with `use python "module" as alias`',
                )
                return
        elif isinstance(value, ast.NameRef) and value.name.name in _env.BUILTIN_METRICS:
            metric = _b(
                ir.Metric, name=name, builtin=value.name.name, loc=self._loc(decl.name.span)
            )
        elif (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.NameRef)
            and value.func.name.name in _env.BUILTIN_METRICS
        ):
            kwargs = []
            for arg in value.args:
                v = _const_value(arg.value)
                if arg.name is None or v is _NOT_CONST:
                    self._error(
                        "DSX106", "built-in metric settings are `name = constant`", arg.span
                    )
                    continue
                kwargs.append((arg.name.name, v))
            metric = _b(
                ir.Metric,
                name=name,
                builtin=value.func.name.name,
                kwargs=tuple(kwargs),
                loc=self._loc(decl.name.span),
            )
        elif isinstance(value, ast.NameRef):
            self._unknown(
                "DSX100",
                "metric",
                value.name,
                _env.BUILTIN_METRICS,
                "use a built-in metric (exact_match, f1, ...) or `alias.function` from `use python`",
            )
            return
        else:
            self._error(
                "DSX106",
                "a metric is a Python function (`alias.name`) or a built-in (exact_match, f1, passage_match, answer_in_context)",
                value.span,
            )
            return
        if self.decls.get(name, (None, None))[1] is decl:
            self.metrics[name] = metric

    def _lookup(self, ident: ast.Ident, kind: str) -> bool:
        found_kind, _ = self.decls.get(ident.name, (None, None))
        if found_kind == kind:
            self._ref(ident.span, ident.name)
            return True
        if found_kind is not None:
            self._ref(ident.span, ident.name)
            self._error("DSX106", f"`{ident.name}` is a {found_kind}, not a {kind}", ident.span)
        else:
            self._unknown(
                "DSX100", kind, ident, [n for n, (k, _) in self.decls.items() if k == kind]
            )
        return False

    def _lower_optimize(self, decl: ast.OptimizeDecl) -> None:
        program = decl.target.name
        ok = self._lookup(decl.target, "program")
        optimizer, settings = "", []
        train = dev = metric = lm = None
        seed = None
        for item in decl.items:
            key = item.key.name
            if key not in _env.OPTIMIZE_KEYS:
                guess = _env.did_you_mean(key, _env.OPTIMIZE_KEYS)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(item.key.span, guess),)) if guess else None
                )
                self._error(
                    "DSX123",
                    f"unknown optimize setting `{key}`"
                    + (
                        f"; did you mean `{guess}`?"
                        if guess
                        else f" (settings: {', '.join(sorted(_env.OPTIMIZE_KEYS))})"
                    ),
                    item.key.span,
                    fix=fix,
                )
                continue
            v = item.value
            if key == "with":
                if isinstance(v, ast.NameRef):
                    v = ast.Call(v, (), v.span)
                if not (isinstance(v, ast.Call) and isinstance(v.func, ast.NameRef)):
                    self._error(
                        "DSX123",
                        "`with` takes an optimizer, e.g. `with BootstrapFewShot(max_bootstrapped_demos = 4)`",
                        v.span,
                    )
                    continue
                optimizer = v.func.name.name
                if optimizer not in _env.OPTIMIZERS:
                    self._unknown(
                        "DSX123",
                        "optimizer",
                        v.func.name,
                        _env.OPTIMIZERS,
                        f"optimizers: {', '.join(sorted(_env.OPTIMIZERS))}",
                    )
                for arg in v.args:
                    cv = _const_value(arg.value)
                    if arg.name is None or cv is _NOT_CONST:
                        self._error("DSX123", "optimizer settings are `name = constant`", arg.span)
                        continue
                    settings.append((arg.name.name, cv))
            elif key in ("train", "dev"):
                if (
                    isinstance(v, ast.NameRef)
                    and v.name.name == "tests"
                    and "tests" not in self.decls
                ):
                    value = "tests"
                elif isinstance(v, ast.NameRef) and self._lookup(v.name, "data"):
                    value = v.name.name
                else:
                    if not isinstance(v, ast.NameRef):
                        self._error("DSX123", f"`{key}` takes a data name (or `tests`)", v.span)
                    continue
                if key == "train":
                    train = value
                else:
                    dev = value
            elif key == "metric":
                if isinstance(v, ast.NameRef) and self._lookup(v.name, "metric"):
                    metric = v.name.name
                elif not isinstance(v, ast.NameRef):
                    self._error("DSX123", "`metric` takes a metric name", v.span)
            elif key == "lm":
                if isinstance(v, ast.Str):
                    lm = v.value
                else:
                    self._error(
                        "DSX123",
                        '`lm` takes a model string, e.g. `lm "openai/gpt-4o-mini"`',
                        v.span,
                    )
            elif key == "seed":
                if (
                    isinstance(v, ast.Lit)
                    and isinstance(v.value, int)
                    and not isinstance(v.value, bool)
                ):
                    seed = v.value
                else:
                    self._error("DSX123", "`seed` takes an integer", v.span)
        for key, val in (("with", optimizer), ("train", train), ("metric", metric)):
            if not val and not any(i.key.name == key for i in decl.items):
                self._error("DSX123", f"optimize `{program}` needs `{key} ...`", decl.target.span)
        if ok and optimizer and metric:
            self.optimizes.append(
                _b(
                    ir.Optimize,
                    program=program,
                    optimizer=optimizer,
                    settings=tuple(settings),
                    train=train,
                    dev=dev,
                    metric=metric,
                    lm=lm,
                    seed=seed,
                    loc=self._loc(decl.target.span),
                )
            )

    def _lower_test(self, decl: ast.TestDecl) -> None:
        program = decl.program.name
        known = self._lookup(decl.program, "program")
        inputs, outputs = self.program_io.get(program, ({}, None)) if known else ({}, None)
        scope = self._base_scope()
        scope["result"] = _Entry("result", outputs)
        given, expect, checks = [], [], []
        for item in decl.items:
            if isinstance(item, ast.GivenItem):
                if known and inputs and item.name.name not in inputs:
                    self._unknown("DSX124", f"input of program `{program}`:", item.name, inputs)
                value, _ = self._expr(item.value, scope)
                given.append((item.name.name, value))
            elif isinstance(item, ast.ExpectItem):
                if known and isinstance(outputs, PredType) and item.name.name not in outputs.fields:
                    self._unknown(
                        "DSX124", f"output of program `{program}`:", item.name, outputs.fields
                    )
                value, _ = self._expr(item.value, scope)
                expect.append((item.name.name, value))
            elif isinstance(item, ast.Check):
                checks.append(self._check(item, scope))
        if known and inputs:
            given_names = {g for g, _ in given}
            missing = [n for n, p in inputs.items() if n not in given_names and not _has_default(p)]
            if missing:
                self._error(
                    "DSX124",
                    f"test `{decl.name.name}` gives no value for {', '.join(f'`{m}`' for m in missing)} (add `given {missing[0]} = ...`)",
                    decl.name.span,
                )
        self.tests[id(decl)] = _b(
            ir.Test,
            name=decl.name.name,
            program=program,
            given=tuple(given),
            expect=tuple(expect),
            checks=tuple(checks),
            loc=self._loc(decl.name.span),
        )

    def _report_unused(self, all_decls: list[tuple[ParsedFile, Any]]) -> None:
        used = {r.key for r in self.references}
        for pf, decl in all_decls:
            if pf.source.path != self.root:
                continue
            kind = _TOP_KINDS.get(type(decl))
            if kind in (None, "program"):
                continue
            ident = decl.alias if isinstance(decl, ast.UseDecl) else decl.name
            if ident.name not in used and self.decls.get(ident.name, (None, None))[1] is decl:
                self._error(
                    "DSX200", f"{kind} `{ident.name}` is never used", ident.span, severity="warning"
                )


@dataclass(frozen=True, slots=True)
class _LitStr:
    """The static type of a string literal: a ``str`` that remembers its value."""

    _literal: str
    kind: str = "str"
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return "str"


def _header(decl: ast.ModuleDecl) -> tuple[Any, ...]:
    params = decl.forward.params if decl.forward is not None else None
    return (decl.params, decl.submodules, params, decl.forward is None)


def _shape(node: Any) -> Any:
    """A comparable structure of an AST value, ignoring spans (what changed, not where)."""
    if isinstance(node, tuple | list):
        return tuple(_shape(n) for n in node)
    if hasattr(node, "__dataclass_fields__"):
        fields = (f for f in node.__dataclass_fields__ if f not in ("span", "keyword"))
        return (type(node).__name__, *(_shape(getattr(node, f)) for f in fields))
    return node


def _same_result(a: Any, b: Any) -> bool:
    if isinstance(a, PredType) and isinstance(b, PredType):
        return a.fields == b.fields and a.keys == b.keys
    return (a is None and b is None) or (
        not isinstance(a, PredType) and not isinstance(b, PredType) and a == b
    )


def _replace_decl(decl: Any, changes: list[tuple[Any, Any]]) -> Any:
    for old, new in changes:
        if decl is old and new is not None:
            return new
    return decl


_PATH = re.compile(r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\Z")


def _simple_path(text: str, origin: Any, offset: int) -> tuple[Any, Any]:
    """``name`` or ``a.b.c`` inside an interpolation, without a parser round trip."""
    m = _PATH.match(text)
    if m is None:
        return None, None
    lo = offset + m.start(1)
    node: Any = None
    for part in m.group(1).split("."):
        ident = ast.Ident(part, Span(origin, lo, lo + len(part)))
        if node is None:
            node = ast.NameRef(ident, ident.span)
        else:
            node = ast.Attr(node, ident, Span(origin, node.span.lo, ident.span.hi))
        lo += len(part) + 1
    return node, None


_NOT_CONST = object()


def _const_value(expr: Any) -> Any:
    if isinstance(expr, ast.Lit):
        return expr.value
    if isinstance(expr, ast.Str):
        return expr.value
    if (
        isinstance(expr, ast.Neg)
        and isinstance(expr.operand, ast.Lit)
        and isinstance(expr.operand.value, int | float)
    ):
        return -expr.operand.value
    if isinstance(expr, ast.ListExpr):
        items = [_const_value(i) for i in expr.items]
        return _NOT_CONST if any(i is _NOT_CONST for i in items) else items
    if isinstance(expr, ast.DictExpr):
        out = {}
        for p in expr.pairs:
            k, v = _const_value(p.key), _const_value(p.value)
            if k is _NOT_CONST or v is _NOT_CONST or not isinstance(k, str):
                return _NOT_CONST
            out[k] = v
        return out
    return _NOT_CONST


def _is_str(t: Any) -> bool:
    return isinstance(t, ir.TypeRef | _LitStr) and t.kind == "str"


def _has_default(p: Any) -> bool:
    if isinstance(p, ir.Param):
        return p.default is not None
    if isinstance(p, ir.Field):
        return p.has_default or p.type.kind == "optional"
    return False


def _mismatch(actual: Any, expected: ir.TypeRef, lowerer: Lowerer) -> str | None:
    """A description of ``actual`` when it cannot be ``expected``; ``None`` when it fits or is unknown."""
    ek, ak = expected.kind, actual.kind
    if ek in ("any",) or ak == "any":
        return None
    if ek == "optional":
        return _mismatch(actual, expected.args[0], lowerer)
    if ek == "union":
        fits = [a for a in expected.args if _mismatch(actual, a, lowerer) is None]
        return None if fits else str(actual)
    if ek == "literal":
        literal = getattr(actual, "_literal", None)
        if literal is not None:
            return None if literal in expected.values else f'"{literal}"'
        if ak == "str" and all(isinstance(v, str) for v in expected.values):
            return None
        if ak in ("int", "float", "bool") and any(type(v).__name__ == ak for v in expected.values):
            return None
        return str(actual)
    if ek == "enum":
        literal = getattr(actual, "_literal", None)
        enum = lowerer.enums.get(expected.name or "")
        if (
            literal is not None
            and enum is not None
            and literal not in {m.name for m in enum.members}
        ):
            return f'"{literal}"'
        return None if ak in ("str", "enum") else str(actual)
    if ek == "float":
        return None if ak in ("int", "float") else str(actual)
    if ek == "record":
        return None if ak in ("dict", "record") else str(actual)
    if ek in ("image", "history"):
        return None if ak in ("str", ek, "dict") else str(actual)
    if ek == ak:
        return None
    if ek == "tuple" and ak == "list":
        return None
    return str(actual) if ak in ("str", "int", "float", "bool", "list", "dict") else None


def _split_top(text: str, base: int) -> list[tuple[int, str]]:
    """Split at top-level commas; returns (offset, item) pairs."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append((base + start, text[start:i]))
            start = i + 1
    items.append((base + start, text[start:]))
    return items
