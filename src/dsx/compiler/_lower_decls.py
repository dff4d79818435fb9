"""The *signatures* pass: signatures, their fields and instructions (block and shorthand).

Top-level names, ``use python``, records, enums and type expressions are the declare and
types passes' (:mod:`dsx.compiler._pass_declare`, :mod:`dsx.compiler._pass_types`)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._lower_base import _ANY, LowerBase, _b
from dsx.compiler._pass_types import NOT_CONST as _NOT_CONST
from dsx.compiler._pass_types import const_default, with_enum_values
from dsx.compiler._pass_types import const_value as _const_value
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Span, make
from dsx.grammar import ast
from dsx.grammar.parser import parse_type_text

__all__ = ["DeclsMixin", "_NOT_CONST", "_const_value"]

_RESERVED_OUTPUTS = _env.reserved_output_names()


class DeclsMixin(LowerBase):
    """Signatures (the checks on output names are shared with inline signatures)."""

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
                default, has_default = const_default(self.rec, f.default)
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
                        desc=with_enum_values(self.type_tables, desc or (f.doc or ""), type_),
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
                inputs = ", ".join(f.name for f in sig.inputs)
                outputs = ", ".join(f.name for f in sig.outputs)
                self.symbols[name] = dataclasses.replace(
                    sym, detail=f"signature {name}({inputs} -> {outputs})", doc=instructions
                )

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
                        desc=with_enum_values(self.type_tables, "", type_),
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
