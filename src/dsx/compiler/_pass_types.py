"""The *types* pass: records (``type``) and enums, and type expressions.

Reads :class:`~dsx.compiler._pass_declare.Names`; writes :class:`TypeTables` (the IR of
each record and enum) and, into :class:`~dsx.compiler._records.Records`, the symbols of
their fields and members, the references of type names, and the problems found
(duplicates, unknown types, recursive records, non-constant defaults).

:func:`resolve_type` — a type expression to its :class:`dsx.ir.TypeRef` — is what every
later pass uses for the types it meets (signature fields, forward parameters...).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._pass_declare import Names
from dsx.compiler._records import Records
from dsx.diagnostics import DiagnosticCode
from dsx.grammar import ast

__all__ = [
    "ANY",
    "NOT_CONST",
    "TypeTables",
    "const_default",
    "const_value",
    "lower_types",
    "mismatch",
    "resolve_type",
    "with_enum_values",
]

ANY = ir.build(ir.TypeRef, kind="any")
#: What :func:`const_value` answers for an expression that is not a constant.
NOT_CONST: Any = object()

_SIMPLE = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "any": "any",
    "Image": "image",
    "History": "history",
}


@dataclass(slots=True)
class TypeTables:
    """What the types pass records: the IR of each record and enum, by name."""

    records: dict[str, ir.Record] = field(default_factory=dict)
    enums: dict[str, ir.Enum] = field(default_factory=dict)

    def copy(self) -> TypeTables:
        return TypeTables(copy.copy(self.records), copy.copy(self.enums))


def resolve_type(records: Records, names: Names, node: Any) -> ir.TypeRef:
    """The IR of the type expression ``node``; an unknown name is reported and is ``any``."""
    if isinstance(node, ast.NamedType):
        return _named(records, names, node)
    if isinstance(node, ast.GenericType):
        name = node.name.name
        args = tuple(resolve_type(records, names, a) for a in node.args)
        arity = _env.GENERIC_TYPES.get(name)
        if arity is None:
            records.unknown(
                DiagnosticCode.UNKNOWN_TYPE, "generic type", node.name, _env.GENERIC_TYPES
            )
            return ANY
        if arity > 0 and len(args) != arity:
            records.error(
                DiagnosticCode.UNKNOWN_TYPE,
                f"`{name}` takes {arity} type argument{'s' if arity > 1 else ''}, got {len(args)}",
                node.span,
            )
            args = (args + (ANY,) * arity)[:arity]
        return ir.build(ir.TypeRef, kind=name, args=args)
    if isinstance(node, ast.OptionalType):
        return ir.build(
            ir.TypeRef, kind="optional", args=(resolve_type(records, names, node.inner),)
        )
    if isinstance(node, ast.LiteralType):
        return ir.build(ir.TypeRef, kind="literal", values=(node.value,))
    if isinstance(node, ast.UnionType):
        options = [resolve_type(records, names, o) for o in node.options]
        if all(o.kind == "literal" for o in options):
            values = tuple(v for o in options for v in o.values)
            return ir.build(ir.TypeRef, kind="literal", values=values)
        return ir.build(ir.TypeRef, kind="union", args=tuple(options))
    return ANY


def _named(records: Records, names: Names, node: ast.NamedType) -> ir.TypeRef:
    name = node.name.name
    if name in _SIMPLE:
        return ir.build(ir.TypeRef, kind=_SIMPLE[name])
    if name in _env.GENERIC_TYPES:
        return ir.build(ir.TypeRef, kind=name, args=(ANY,) * max(0, _env.GENERIC_TYPES[name]))
    kind = names.kind(name)
    if kind in ("type", "enum"):
        records.ref(node.name.span, name)
        return ir.build(ir.TypeRef, kind="record" if kind == "type" else "enum", name=name)
    if kind is not None:
        records.ref(node.name.span, name)
        records.error(
            DiagnosticCode.WRONG_DECLARATION_KIND,
            f"`{name}` is {_env.a(kind)}, not a type",
            node.name.span,
        )
    else:
        candidates = [
            *_SIMPLE,
            *_env.GENERIC_TYPES,
            *(n for n, (k, _) in names.decls.items() if k in ("type", "enum")),
        ]
        records.unknown(
            DiagnosticCode.UNKNOWN_TYPE,
            "type",
            node.name,
            candidates,
            "declare it with `type` or `enum`",
        )
    return ANY


def const_value(expr: Any) -> Any:
    """The Python value of a constant expression, or :data:`NOT_CONST`."""
    if isinstance(expr, ast.Lit | ast.Str):
        return expr.value
    if (
        isinstance(expr, ast.Neg)
        and isinstance(expr.operand, ast.Lit)
        and isinstance(expr.operand.value, int | float)
    ):
        return -expr.operand.value
    if isinstance(expr, ast.ListExpr):
        items = [const_value(i) for i in expr.items]
        return NOT_CONST if any(i is NOT_CONST for i in items) else items
    if isinstance(expr, ast.DictExpr):
        out = {}
        for p in expr.pairs:
            k, v = const_value(p.key), const_value(p.value)
            if k is NOT_CONST or v is NOT_CONST or not isinstance(k, str):
                return NOT_CONST
            out[k] = v
        return out
    return NOT_CONST


def const_default(records: Records, expr: Any) -> tuple[Any, bool]:
    """``(value, has_default)`` of a field's default (``expr`` ``None``: none given)."""
    if expr is None:
        return None, False
    value = const_value(expr)
    if value is NOT_CONST:
        records.error(
            DiagnosticCode.TYPE_MISMATCH,
            "a default value must be a constant (string, number, true/false/none, or a "
            "list/dict of those)",
            expr.span,
        )
        return None, False
    return value, True


def with_enum_values(tables: TypeTables, desc: str, type_: ir.TypeRef) -> str:
    """``desc`` plus what each value means, for the enums ``type_`` mentions.

    Enums reach the runtime as ``Literal`` types, which carry no descriptions; the field
    description is what the prompt shows (in ``dsx run`` and built modules alike, as both
    read the IR).
    """
    notes = []
    for enum_name in _enum_names(type_):
        enum = tables.enums.get(enum_name)
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


def lower_record(records: Records, names: Names, tables: TypeTables, decl: ast.TypeDecl) -> None:
    name = decl.name.name
    seen: dict[str, ast.RecordField] = {}
    fields = []
    for f in decl.fields:
        if records.duplicate(f.name, seen, f, "field", name):
            continue
        type_ = resolve_type(records, names, f.type)
        records.define(
            f"{name}.{f.name.name}",
            f.name.name,
            "record_field",
            f.name.span,
            f,
            detail=f"{f.name.name}: {type_}",
            doc=(f.desc.value if f.desc else "") or (f.doc or ""),
            container=name,
        )
        default, has_default = const_default(records, f.default)
        fields.append(
            ir.build(
                ir.RecordField,
                name=f.name.name,
                type=type_,
                desc=f.desc.value if f.desc else "",
                default=default,
                has_default=has_default,
            )
        )
    if names.owns(name, decl):
        tables.records[name] = ir.build(
            ir.Record,
            name=name,
            doc=decl.doc or "",
            fields=tuple(fields),
            loc=records.loc(decl.name.span),
        )


def lower_enum(records: Records, names: Names, tables: TypeTables, decl: ast.EnumDecl) -> None:
    name = decl.name.name
    seen: dict[str, Any] = {}
    members = []
    for m in decl.members:
        if records.duplicate(m.name, seen, m, "member", name):
            continue
        desc = m.desc.value if m.desc else ""
        records.define(
            f"{name}.{m.name.name}",
            m.name.name,
            "enum_member",
            m.name.span,
            m,
            detail=f"{name}.{m.name.name}",
            doc=desc,
            container=name,
        )
        members.append(ir.build(ir.EnumMember, name=m.name.name, desc=desc))
    if names.owns(name, decl):
        tables.enums[name] = ir.build(
            ir.Enum,
            name=name,
            doc=decl.doc or "",
            members=tuple(members),
            loc=records.loc(decl.name.span),
        )


def check_recursive_records(records: Records, names: Names, decls: list[ast.TypeDecl]) -> None:
    """A record that contains itself (``type Node { children: list[Node] }``, or through
    other records) is an error: prompts describe outputs by an inlined JSON schema and the
    runtime builds each record once, from its fields' types."""
    edges: dict[str, list[tuple[str, ast.Ident]]] = {}
    for decl in decls:
        if not names.owns(decl.name.name, decl):
            continue
        out = edges[decl.name.name] = []
        for f in decl.fields:
            for ident in _type_idents(f.type):
                if names.kind(ident.name) == "type":
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
                records.error(
                    DiagnosticCode.RECURSIVE_TYPE,
                    f"record `{name}` contains itself{via}; recursive types are not "
                    "supported: use a list of ids, a `str` holding JSON, or a fixed depth "
                    "(`Leaf`, `Node { children: list[Leaf] }`)",
                    ident.span,
                )
                break  # one error per record


def describe_record_enums(tables: TypeTables, names: list[str]) -> None:
    """The fields of the records ``names`` that are typed with an enum also say what its
    values mean (once: call it for records just lowered)."""
    for name in names:
        record = tables.records.get(name)
        if record is None:
            continue
        fields = tuple(
            f.model_copy(update={"desc": with_enum_values(tables, f.desc, f.type)})
            for f in record.fields
        )
        if fields != record.fields:
            tables.records[name] = record.model_copy(update={"fields": fields})


def lower_types(records: Records, names: Names, tables: TypeTables, decls: list[Any]) -> None:
    """The pass over ``decls`` (the unit's, or those a re-check after an edit redoes)."""
    for decl in decls:
        if isinstance(decl, ast.TypeDecl):
            lower_record(records, names, tables, decl)
        elif isinstance(decl, ast.EnumDecl):
            lower_enum(records, names, tables, decl)
    types = [d for d in decls if isinstance(d, ast.TypeDecl)]
    check_recursive_records(records, names, types)
    describe_record_enums(tables, [d.name.name for d in types if names.owns(d.name.name, d)])


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


def mismatch(actual: Any, expected: ir.TypeRef, types: TypeTables) -> str | None:
    """A description of ``actual`` (a value's static type) when it cannot be ``expected``;
    ``None`` when it fits or is unknown. ``types``: the enums, for an enum's values."""
    ek, ak = expected.kind, actual.kind
    if ek in ("any",) or ak == "any":
        return None
    if ek == "optional":
        return mismatch(actual, expected.args[0], types)
    if ek == "union":
        fits = [a for a in expected.args if mismatch(actual, a, types) is None]
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
        enum = types.enums.get(expected.name or "")
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
