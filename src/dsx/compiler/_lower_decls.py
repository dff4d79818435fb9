"""Lowering of declarations: ``use python``, ``type``, ``enum``, ``signature`` and types."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._lower_base import _ANY, _TOP_KINDS, LowerBase, _b
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Related, Span, make
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile, parse_type_text

__all__ = ["DeclsMixin", "_NOT_CONST", "_const_value"]

_RESERVED_OUTPUTS = _env.reserved_output_names()


class DeclsMixin(LowerBase):
    """Top-level names, ``use python``, records, enums, signatures and type expressions."""

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
                DiagnosticCode.DUPLICATE_DECLARATION,
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
                DiagnosticCode.UNKNOWN_NAME,
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
                    DiagnosticCode.UNKNOWN_NAME,
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

    def _check_output_name(self, field: str, span: Span, owner: str) -> None:
        if field not in _RESERVED_OUTPUTS:
            return
        better = _env.rename_reserved(field)
        of = f" of `{owner}`" if owner in self.decls else ""  # not an inline signature's
        self._error(
            DiagnosticCode.RESERVED_OUTPUT_NAME,
            f"output `{field}`{of} would be hidden: `.{field}` of a prediction is its "
            f"`{field}` method, in `dsx run` and built modules alike; rename the field "
            f"(e.g. `{better}`)",
            span,
            fix=Fix(f"rename to `{better}`", (Edit(span, better),)),
        )

    def _with_enum_values(self, desc: str, type_: ir.TypeRef) -> str:
        """``desc`` plus what each value means, for the enums ``type_`` mentions.

        Enums reach the runtime as ``Literal`` types, which carry no descriptions; the
        field description is what the prompt shows (in ``dsx run`` and built modules
        alike, as both read the IR).
        """
        notes = []
        for enum_name in _enum_names(type_):
            enum = self.enums.get(enum_name)
            if enum is None or not any(m.desc for m in enum.members):
                continue
            values = ", ".join(f"{m.name} ({m.desc})" if m.desc else m.name for m in enum.members)
            notes.append(f"{enum_name} values: {values}.")
        if not notes:
            return desc
        desc = desc.rstrip()
        if desc and desc[-1] not in ".!?:":
            desc += "."
        return " ".join([desc, *notes]).strip()

    def _check_recursive_records(self, decls: list[ast.TypeDecl]) -> None:
        """A record that contains itself (``type Node { children: list[Node] }``, or
        through other records) is an error: prompts describe outputs by an inlined JSON
        schema and the runtime builds each record once, from its fields' types."""
        edges: dict[str, list[tuple[str, ast.Ident]]] = {}
        for decl in decls:
            if self.decls.get(decl.name.name, (None, None))[1] is not decl:
                continue
            out = edges[decl.name.name] = []
            for f in decl.fields:
                for ident in _type_idents(f.type):
                    if self.decls.get(ident.name, (None, None))[0] == "type":
                        out.append((ident.name, ident))

        def reaches(start: str, goal: str) -> bool:
            seen, todo = {start}, [start]
            while todo:
                for target, _ in edges.get(todo.pop(), ()):
                    if target == goal:
                        return True
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
            return False

        for name, out in edges.items():
            for target, ident in out:
                if target == name or reaches(target, name):
                    via = "" if target == name else f" (through `{target}`)"
                    self._error(
                        DiagnosticCode.RECURSIVE_TYPE,
                        f"record `{name}` contains itself{via}; recursive types are not "
                        "supported: use a list of ids, a `str` holding JSON, or a fixed depth "
                        "(`Leaf`, `Node { children: list[Leaf] }`)",
                        ident.span,
                    )
                    break  # one error per record

    def _describe_record_enums(self) -> None:
        """Record fields typed with an enum also say what its values mean (see above)."""
        for name, record in self.records.items():
            fields = tuple(
                f.model_copy(update={"desc": self._with_enum_values(f.desc, f.type)})
                for f in record.fields
            )
            if fields != record.fields:
                self.records[name] = record.model_copy(update={"fields": fields})

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
                if f.direction == "out":
                    self._check_output_name(f.name.name, f.name.span, name)
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
                        desc=self._with_enum_values(desc or (f.doc or ""), type_),
                        default=default,
                        has_default=has_default,
                        loc=self._loc(f.name.span),
                    )
                )
            if decl.fields and not any(f.direction == "out" for f in fields):
                self._error(
                    DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
                    f"signature `{name}` has no `out` field",
                    decl.name.span,
                )
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
                DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
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
                            DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
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
                    self._error(
                        DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
                        f"`{fname}` is not a valid field name",
                        fspan,
                    )
                    continue
                if fname in seen:
                    self._error(
                        DiagnosticCode.DUPLICATE_FIELD,
                        f"field `{fname}` appears twice in `{owner}`",
                        fspan,
                    )
                    continue
                seen.add(fname)
                type_ = _b(ir.TypeRef, kind="str")
                if colon:
                    t_off = body_offset + item_start + lead + len(stripped.partition(":")[0]) + 1
                    tnode, diag = parse_type_text(type_text, text.span.origin, t_off)
                    if diag is not None:
                        self.diagnostics.append(
                            make(
                                DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
                                f"bad type in signature shorthand: {diag.message}",
                                # relative to the block's origin, so that re-checking the block
                                # after an edit replaces it
                                Span(
                                    text.span.origin,
                                    diag.span.start - text.span.origin.offset,
                                    diag.span.end - text.span.origin.offset,
                                ),
                            )
                        )
                        type_ = _ANY
                    else:
                        type_ = self._type(tnode)
                if side == "out":
                    self._check_output_name(fname, fspan, owner)
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
                    _b(
                        ir.Field,
                        name=fname,
                        direction=side,
                        type=type_,
                        desc=self._with_enum_values("", type_),
                        loc=self._loc(fspan),
                    )
                )
        if not any(f.direction == "out" for f in fields):
            self._error(
                DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
                f"signature shorthand {raw} has no output field after `->`",
                text.span,
            )
        return fields

    def _const_default(self, expr: Any) -> tuple[Any, bool]:
        if expr is None:
            return None, False
        value = _const_value(expr)
        if value is _NOT_CONST:
            self._error(
                DiagnosticCode.TYPE_MISMATCH,
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
                return _b(ir.TypeRef, kind=simple[name])
            if name in _env.GENERIC_TYPES:
                return _b(ir.TypeRef, kind=name, args=(_ANY,) * max(0, _env.GENERIC_TYPES[name]))
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
                self._error(
                    DiagnosticCode.WRONG_DECLARATION_KIND,
                    f"`{name}` is {_env.a(kind)}, not a type",
                    node.name.span,
                )
            else:
                self._unknown(
                    DiagnosticCode.UNKNOWN_TYPE,
                    "type",
                    node.name,
                    candidates,
                    "declare it with `type` or `enum`",
                )
            return _ANY
        if isinstance(node, ast.GenericType):
            name = node.name.name
            args = tuple(self._type(a) for a in node.args)
            arity = _env.GENERIC_TYPES.get(name)
            if arity is None:
                self._unknown(
                    DiagnosticCode.UNKNOWN_TYPE, "generic type", node.name, _env.GENERIC_TYPES
                )
                return _ANY
            if arity > 0 and len(args) != arity:
                self._error(
                    DiagnosticCode.UNKNOWN_TYPE,
                    f"`{name}` takes {arity} type argument{'s' if arity > 1 else ''}, got {len(args)}",
                    node.span,
                )
                args = (args + (_ANY,) * arity)[:arity]
            return _b(ir.TypeRef, kind=name, args=args)
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


def _enum_names(t: ir.TypeRef) -> list[str]:
    """The enums a type mentions, in order, once each."""
    found: list[str] = []

    def walk(t: ir.TypeRef) -> None:
        if t.kind == "enum" and t.name and t.name not in found:
            found.append(t.name)
        for a in t.args:
            walk(a)

    walk(t)
    return found


def _type_idents(t: Any) -> list[ast.Ident]:
    """The names a type expression mentions (``list[Node]`` -> ``list``, ``Node``)."""
    if isinstance(t, ast.NamedType):
        return [t.name]
    if isinstance(t, ast.GenericType):
        return [t.name, *(i for a in t.args for i in _type_idents(a))]
    if isinstance(t, ast.OptionalType):
        return _type_idents(t.inner)
    if isinstance(t, ast.UnionType):
        return [i for o in t.options for i in _type_idents(o)]
    return []
