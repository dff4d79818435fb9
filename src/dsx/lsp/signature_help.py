"""Signature help: inside the parentheses of a call, what the callee takes, with the
argument being written highlighted.

* a predictor or sub-module called in a ``forward`` body or a test: its inputs (the
  signature's input fields, or the module's ``forward`` parameters);
* a module kind in a member or program (``ChainOfThought(``, ``Retrieve(``): the signature
  and its settings; a declared module (``RAG(``): its parameters;
* a `use python` function (``tools.search(``): its Python parameters;
* a built-in function (``len(``): its Python signature where Python knows it.

The active parameter is the keyword being written (``question = |``), else the first
parameter the call does not give yet, else the argument's position.
"""

from __future__ import annotations

import builtins
import inspect
from dataclasses import dataclass

from lsprotocol import types

from dsx.compiler import _env
from dsx.lsp import pysource
from dsx.lsp.completion import _Builder, _Completer
from dsx.lsp.context import Frame, Tok, scan
from dsx.lsp.state import Document, Session

__all__ = ["TRIGGER_CHARACTERS", "signature_help"]

TRIGGER_CHARACTERS = ["(", ","]
RETRIGGER_CHARACTERS = ["="]


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    label: str
    doc: str = ""


def signature_help(
    session: Session, doc: Document, position: types.Position
) -> types.SignatureHelp | None:
    offset = doc.codec(session.encoding).offset(position)
    ctx = scan(doc.text, offset)
    if ctx.in_comment or ctx.in_string is not None:
        return None
    frame = next((f for f in reversed(ctx.stack) if f.role == "call"), None)
    if frame is None or frame.callee is None:
        return None
    analysis = session.latest(doc)
    completer = _Completer(session, doc, analysis, ctx, _Builder(False))
    found = _callee(completer, frame, ctx.tokens)
    if found is None:
        return None
    label_name, params, doc_text = found
    label = f"{label_name}({', '.join(p.label for p in params)})"
    infos = []
    at = len(label_name) + 1
    for p in params:
        infos.append(
            types.ParameterInformation(
                label=(at, at + len(p.label)),
                documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=p.doc)
                if p.doc
                else None,
            )
        )
        at += len(p.label) + 2
    active = _active(params, frame, ctx.tokens)
    signature = types.SignatureInformation(
        label=label,
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=doc_text)
        if doc_text
        else None,
        parameters=infos,
        active_parameter=active,
    )
    return types.SignatureHelp(signatures=[signature], active_signature=0, active_parameter=active)


def _callee(
    completer: _Completer, frame: Frame, tokens: list[Tok]
) -> tuple[str, list[_Param], str] | None:
    """``(name as shown, parameters, documentation)`` of the call's callee."""
    ctx = completer.ctx
    callee = frame.callee
    assert callee is not None
    model = completer.model
    if frame.callee_is_attr:
        # `alias.name(`: the token before `(` is the name, two before is the alias.
        if frame.index >= 2 and tokens[frame.index - 2].text == ".":
            alias = tokens[frame.index - 3].text if frame.index >= 3 else ""
            found = pysource.resolve(completer.analysis, completer.doc.path, alias)
            if found is not None and found[1] is not None:
                defs = pysource.module_defs(found[1]) or {}
                d = defs.get(callee)
                if d is not None and d.kind in ("function", "class"):
                    params = [_Param(p.name, p.label) for p in d.params]
                    return f"{alias}.{callee}", params, d.doc or ""
        return None
    in_body = ctx.in_role("forward") or ctx.block_kind == "test"
    if in_body and model is not None:
        inputs = model.call_inputs(callee, completer._scope())
        if inputs is not None:
            return callee, [_Param(m.name, m.detail or m.name, m.doc or "") for m in inputs], ""
    kind = _env.KINDS.get(callee)
    if kind is not None and not in_body:
        params = [_Param("signature", "signature")] if kind.takes_signature else []
        params += [_Param(s, f"{s} = …") for s in sorted(kind.kwargs)]
        return callee, params, kind.doc
    info = completer._decl(callee)
    if info is not None and info[0] == "module":
        decl = info[1]
        params = []
        for p in getattr(decl, "params", ()):
            text = completer._source_of(p.span)
            params.append(_Param(p.name.name, " ".join(text.split()) or p.name.name))
        return callee, params, getattr(decl, "doc", None) or ""
    if callee in _env.BUILTIN_FUNCTIONS:
        fn = getattr(builtins, callee, None)
        try:
            sig = inspect.signature(fn) if fn is not None else None
        except (TypeError, ValueError):
            sig = None
        if sig is None:
            return None
        return callee, [_Param(name, str(p)) for name, p in sig.parameters.items()], ""
    return None


def _active(params: list[_Param], frame: Frame, tokens: list[Tok]) -> int | None:
    """The index of the parameter being written."""
    if not params:
        return None
    names = [p.name for p in params]
    depth, commas, given = 0, 0, set()
    current: list[Tok] = []
    for j in range(frame.index + 1, len(tokens)):
        t = tokens[j]
        if t.text in ("(", "[", "{"):
            depth += 1
        elif t.text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and t.text == ",":
            if len(current) >= 2 and current[1].text == "=":
                given.add(current[0].text)
            commas += 1
            current = []
            continue
        if depth == 0 or current:
            current.append(t)
    keyword = len(current) >= 2 and current[0].kind == "name" and current[1].text == "="
    if keyword and current[0].text in names:
        return names.index(current[0].text)
    if not current and given:
        free = [i for i, n in enumerate(names) if n not in given]
        return free[0] if free else None
    return min(commas, len(params) - 1)
