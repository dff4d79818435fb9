"""The *signatures* pass: each signature's fields, types and instructions (block and
shorthand), and the checks on output names that inline signatures (``Predict("q -> a")``)
share.

Reads :class:`~dsx.compiler._pass_declare.Names` and
:class:`~dsx.compiler._pass_types.TypeTables`; writes :class:`SignatureTables` and reports
into :class:`~dsx.compiler._records.Records`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._pass_declare import Names
from dsx.compiler._pass_types import ANY, TypeTables, const_default, resolve_type, with_enum_values
from dsx.compiler._records import Records
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Span, make
from dsx.grammar import ast
from dsx.grammar.parser import parse_type_text

__all__ = [
    "SignatureTables",
    "check_output_name",
    "lower_signature",
    "lower_signatures",
    "shorthand_fields",
]

_RESERVED_OUTPUTS = _env.reserved_output_names()
_b = ir.build
_ANY = ANY


@dataclass(slots=True)
class SignatureTables:
    """What the signatures pass records: each signature's IR, by name; and the inline
    signatures later passes make (``Predict("q -> a")``: ``owner_member`` -> IR)."""

    signatures: dict[str, ir.Signature] = field(default_factory=dict)
    inline: dict[str, ir.Signature] = field(default_factory=dict)

    def copy(self) -> SignatureTables:
        return SignatureTables(copy.copy(self.signatures), copy.copy(self.inline))


def check_output_name(records: Records, names: Names, field: str, span: Span, owner: str) -> None:
    """A reserved output name (``items``, ``keys``...: a prediction's methods) is an error."""
    if field not in _RESERVED_OUTPUTS:
        return
    better = _env.rename_reserved(field)
    of = f" of `{owner}`" if owner in names.decls else ""  # not an inline signature's
    records.error(
        DiagnosticCode.RESERVED_OUTPUT_NAME,
        f"output `{field}`{of} would be hidden: `.{field}` of a prediction is its "
        f"`{field}` method, in `dsx run` and built modules alike; rename the field "
        f"(e.g. `{better}`)",
        span,
        fix=Fix(f"rename to `{better}`", (Edit(span, better),)),
    )


def lower_signature(
    records: Records,
    names: Names,
    types: TypeTables,
    tables: SignatureTables,
    decl: ast.SignatureDecl,
) -> None:
    name = decl.name.name
    if decl.shorthand is not None:
        fields = shorthand_fields(records, names, types, decl.shorthand, name)
    else:
        fields = []
        seen: dict[str, Any] = {}
        for f in decl.fields:
            if records.duplicate(f.name, seen, f, "field", name):
                continue
            if f.direction == "out":
                check_output_name(records, names, f.name.name, f.name.span, name)
            type_ = resolve_type(records, names, f.type)
            default, has_default = const_default(records, f.default)
            desc = f.desc.value if f.desc else ""
            key = f"{name}.{f.name.name}"
            records.define(
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
                    desc=with_enum_values(types, desc or (f.doc or ""), type_),
                    default=default,
                    has_default=has_default,
                    loc=records.loc(f.name.span),
                )
            )
        if decl.fields and not any(f.direction == "out" for f in fields):
            records.error(
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
        loc=records.loc(decl.name.span),
    )
    if names.owns(name, decl):
        tables.signatures[name] = sig
        inputs = ", ".join(f.name for f in sig.inputs)
        outputs = ", ".join(f.name for f in sig.outputs)
        records.describe(name, detail=f"signature {name}({inputs} -> {outputs})", doc=instructions)


def shorthand_fields(
    records: Records, names: Names, types: TypeTables, text: ast.Str, owner: str
) -> list[ir.Field]:
    """The fields of a signature written as a string (``\"question -> answer: int\"``)."""
    raw = text.raw
    body_offset = text.span.lo + (3 if raw.startswith('"""') else 1)
    body = raw[3:-3] if raw.startswith('"""') else raw[1:-1]
    if body.count("->") != 1:
        records.error(
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
                    records.error(
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
                records.error(
                    DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
                    f"`{fname}` is not a valid field name",
                    fspan,
                )
                continue
            if fname in seen:
                records.error(
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
                    records.diagnostics.append(
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
                    type_ = resolve_type(records, names, tnode)
            if side == "out":
                check_output_name(records, names, fname, fspan, owner)
            key = f"{owner}.{fname}"
            records.define(
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
                    desc=with_enum_values(types, "", type_),
                    loc=records.loc(fspan),
                )
            )
    if not any(f.direction == "out" for f in fields):
        records.error(
            DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
            f"signature shorthand {raw} has no output field after `->`",
            text.span,
        )
    return fields


def lower_signatures(
    records: Records,
    names: Names,
    types: TypeTables,
    tables: SignatureTables,
    decls: list[Any],
) -> None:
    """The pass over ``decls`` (the unit's, or those a re-check after an edit redoes)."""
    for decl in decls:
        if isinstance(decl, ast.SignatureDecl):
            lower_signature(records, names, types, tables, decl)


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
