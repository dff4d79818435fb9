"""Hover: what a name is — signatures with their instructions and fields, fields with types
and descriptions, modules with parameters, members and outputs, parameters, locals,
built-in kinds — plus the documentation of any diagnostic code under the cursor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lsprotocol import types

from dsx.compiler import _env
from dsx.compiler.analysis import Analysis
from dsx.compiler.symbols import Symbol
from dsx.diagnostics import REGISTRY
from dsx.grammar import ast
from dsx.lsp import locate, pysource
from dsx.lsp.completion import _dsx_constant
from dsx.lsp.state import Document, Session
from dsx.teleprompt._registry import REQUIRED

__all__ = ["hover"]

_KEYWORD_DOCS = {
    "use": 'use python "pkg.module" as name — a Python module for tools, metrics and helpers.',
    "import": 'import "other.dsx" — every declaration of another file.',
    "signature": "signature — typed inputs (`in`) and outputs (`out`) of an LM call.",
    "type": "type — a record of named, typed fields.",
    "enum": "enum — a closed set of values.",
    "module": "module — sub-modules built from kinds, and a `forward` body.",
    "program": "program — a runnable program.",
    "data": "data — a data set: `jsonl(...)`, `csv(...)` or `json(...)`.",
    "metric": "metric — a built-in metric or a Python function.",
    "optimize": "optimize — optimizer (`with`), `train`/`dev` data, `metric`, `lm`, `seed`.",
    "test": "test — `given` inputs, `expect`ed outputs and `assert`ions for a program.",
    "forward": "forward — the module's body: what calling it does.",
    "lm": (
        'lm name = "provider/model" { settings } — a named LM for predictors '
        "(`Predict(QA, lm = name)`); `lm name = fallback(a, b) { retries = n }` tries "
        "declared LMs in order on retryable errors."
    ),
    "retriever": (
        "retriever name = Kind(settings) — a named retriever (Embeddings, FAISS, Chroma, "
        "Qdrant, ColBERTv2) for `Retrieve(name)`."
    ),
    "fallback": (
        "fallback(a, b, ...) — try the declared LMs in order: a rate limit, a 5xx, a "
        "timeout or a dropped connection moves on to the next; `retries` rounds more."
    ),
    "assert": "assert cond, message — on failure the predictor that produced the value retries.",
    "suggest": "suggest cond, message — like assert, but only logs when retries run out.",
    "while": (
        "while cond max N { ... } — repeat the body while `cond` holds, at most `N` times "
        "(`N` is evaluated once; still true after `N` runs stops with `LoopLimitError`)."
    ),
    "break": "break — leave the innermost `for` or `while` loop.",
    "continue": "continue — skip to the next run of the innermost `for` or `while` loop.",
    "is": "x is none / x is not none — whether a value is `none` (`==` compares values).",
    "given": "given input = value — an input of the program the test runs it on.",
    "expect": "expect output = value — what the program must return (text compares loosely).",
    "reply": (
        'reply {field = value, ...} or reply "text" — the LM\'s next scripted reply in a '
        "test: output values, or the completion verbatim. A test with replies runs "
        "without a live LM."
    ),
}
#: `max` after a `while` condition: the loop's bound, not the built-in function.
_WHILE_MAX = "while cond max N — the bound: the most times the loop body may run."
_TYPE_DOCS = {
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "any": "any JSON value",
    "Image": "an image (URL, path or data URI)",
    "History": "a conversation history",
    "list": "list[T] — a list",
    "dict": "dict[K, V] — a mapping",
    "tuple": "tuple[A, B, ...] — a fixed-length sequence",
}


def hover(session: Session, doc: Document, position: types.Position) -> types.Hover | None:
    analysis = session.analyze(doc)
    codec = doc.codec(session.encoding)
    offset = codec.offset(position)
    parts: list[str] = []
    rng: tuple[int, int] | None = None
    hit = locate.at(analysis, doc.path, offset)
    if hit is not None:
        parts.append(describe(analysis, hit.symbol))
        rng = (hit.start, hit.end)
    elif (target := pysource.member_at(analysis, doc.path, doc.text, offset)) is not None:
        parts.append(_python_member(target))
        rng = (target.start, target.end)
    else:
        word = locate.word_at(doc.text, offset)
        if word is not None:
            text = _builtin(word[2]) or _lm_setting(analysis, doc.path, word[0])
            if word[2] == "max" and _loop_bound(doc.text, word[0], word[1]):
                text = _WHILE_MAX
            if text:
                parts.append(text)
                rng = (word[0], word[1])
    for diag in analysis.diagnostics:
        if diag.span.file == doc.path and diag.span.start <= offset <= max(
            diag.span.end, diag.span.start + 1
        ):
            code = REGISTRY.get(diag.code)
            if code is not None:
                parts.append(f"**{code.code}** `{code.name}` ({code.severity}) — {code.doc}")
                if rng is None:
                    rng = (diag.span.start, diag.span.end)
    if not parts:
        return None
    return types.Hover(
        contents=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)
        ),
        range=codec.range(*rng) if rng is not None else None,
    )


def describe(analysis: Analysis, sym: Symbol) -> str:
    """Markdown for ``sym``."""
    fn = _DESCRIBERS.get(sym.kind)
    if fn is not None and analysis.model is not None:
        try:
            text = fn(analysis, sym)
            if text:
                return text
        except (KeyError, AttributeError, IndexError):
            pass  # a half-checked declaration: fall back to the symbol's own detail
    return _code(sym.detail or f"{sym.kind} {sym.name}") + _doc(sym.doc)


def _code(text: str, language: str = "dsx") -> str:
    return f"```{language}\n{text}\n```"


def _doc(text: str) -> str:
    return f"\n\n{text}" if text else ""


def _source(analysis: Analysis, span: Any, limit: int = 160) -> str:
    text = analysis.texts.get(span.file) or ""
    snippet = re.sub(r"\s+", " ", text[span.start : span.end]).strip()
    return snippet if len(snippet) <= limit else snippet[: limit - 1] + "…"


def _signature(analysis: Analysis, sym: Symbol) -> str:
    assert analysis.model is not None
    sig = analysis.model.signature(sym.name)
    assert sig is not None
    lines = [_code(sym.detail or f"signature {sym.name}")]
    if sig.instructions:
        lines.append(f"\n\n{sig.instructions}")
    rows = [
        f"- `{f.direction} {f.name}: {f.type}`" + (f" — {f.desc}" if f.desc else "")
        for f in sig.fields
    ]
    if rows:
        lines.append("\n\n" + "\n".join(rows))
    return "".join(lines)


def _field(analysis: Analysis, sym: Symbol) -> str:
    owner = sym.container or ""
    where = f"\n\nField of signature `{owner}`." if owner else ""
    return _code(sym.detail or sym.name) + _doc(sym.doc) + where


def _record(analysis: Analysis, sym: Symbol) -> str:
    assert analysis.model is not None
    rec = analysis.model.record(sym.name)
    assert rec is not None
    rows = [f"- `{f.name}: {f.type}`" + (f" — {f.desc}" if f.desc else "") for f in rec.fields]
    return _code(f"type {sym.name}") + _doc(sym.doc) + ("\n\n" + "\n".join(rows) if rows else "")


def _enum(analysis: Analysis, sym: Symbol) -> str:
    assert analysis.model is not None
    enum = analysis.model.enum(sym.name)
    assert enum is not None
    rows = [f"- `{m.name}`" + (f" — {m.desc}" if m.desc else "") for m in enum.members]
    return _code(f"enum {sym.name}") + _doc(sym.doc) + ("\n\n" + "\n".join(rows) if rows else "")


def _module(analysis: Analysis, sym: Symbol) -> str:
    model = analysis.model
    assert model is not None
    info = model.module(sym.name)
    assert info is not None
    decl = info.node
    params = ", ".join(_source(analysis, p.span) for p in decl.params)
    header = f"module {sym.name}" + (f"({params})" if decl.has_params else "")
    lines = [_code(header), _doc(sym.doc)]
    members = [
        f"- `{sub.name.name} = {_source(analysis, sub.value.span, 80)}`" for sub in decl.submodules
    ]
    if members:
        lines.append("\n\nMembers:\n" + "\n".join(members))
    if decl.forward is not None:
        fparams = ", ".join(_source(analysis, p.span) for p in decl.forward.params)
        lines.append(f"\n\n`forward({fparams})`")
        outs = model.members_of(info.returns)
        if outs:
            lines.append(" returns " + ", ".join(f"`{m.detail}`" for m in outs))
    return "".join(lines)


def _submodule(analysis: Analysis, sym: Symbol) -> str:
    assert analysis.model is not None
    decl = sym.decl
    text = f"{sym.name} = {_source(analysis, decl.value.span)}" if decl is not None else sym.detail
    lines = [_code(text), _doc(sym.doc)]
    owner = sym.container or ""
    info = analysis.model.module(owner)
    sub = info.members.get(sym.name) if info is not None else None
    if sub is not None:
        kind = _env.KINDS.get(sub.kind)
        if kind is not None and kind.doc:
            lines.append(f"\n\n**{sub.kind}** — {kind.doc}")
        target = sub.wraps or sub
        if target.signature is not None:
            ins = ", ".join(f"`{f.name}: {f.type}`" for f in target.signature.inputs)
            outs = [*(_env.KINDS[target.kind].extra_outputs if target.kind in _env.KINDS else ())]
            outs += [f.name for f in target.signature.outputs]
            lines.append(
                f"\n\nCall with {ins or 'no inputs'}; returns " + ", ".join(f"`{o}`" for o in outs)
            )
    if owner:
        lines.append(f"\n\nMember of module `{owner}`.")
    return "".join(lines)


def _param(analysis: Analysis, sym: Symbol) -> str:
    decl = sym.decl
    text = _source(analysis, decl.span) if decl is not None else sym.detail
    where = (
        f"Input of `{sym.container}.forward`."
        if ".forward." in sym.key
        else f"Parameter of module `{sym.container}`."
    )
    return _code(text) + f"\n\n{where}"


def _local(analysis: Analysis, sym: Symbol) -> str:
    return _code(sym.detail or sym.name) + f"\n\nLocal variable of `{sym.container}.forward`."


def _program(analysis: Analysis, sym: Symbol) -> str:
    model = analysis.model
    assert model is not None
    decl = sym.decl
    text = f"program {sym.name} = {_source(analysis, decl.value.span)}" if decl else sym.detail
    io = model.program_io(sym.name)
    inputs, outputs = (io.inputs, io.outputs) if io is not None else ({}, None)
    lines = [_code(text), _doc(sym.doc)]
    if inputs:
        lines.append("\n\nInputs: " + ", ".join(f"`{n}`" for n in inputs))
    outs = model.members_of(outputs)
    if outs:
        lines.append("\n\nOutputs: " + ", ".join(f"`{m.detail}`" for m in outs))
    return "".join(lines)


def _value_decl(analysis: Analysis, sym: Symbol) -> str:
    decl = sym.decl
    text = f"{sym.kind} {sym.name} = {_source(analysis, decl.value.span)}" if decl else sym.detail
    return _code(text) + _doc(sym.doc)


def _python(analysis: Analysis, sym: Symbol) -> str:
    decl = sym.decl
    module = decl.module.value if decl is not None else "?"
    text = f'use python "{module}" as {sym.name}'
    path = None
    if decl is not None and not sym.span.file.startswith("<"):
        path, _ = _env.python_module_names(module, Path(sym.span.file).parent)
    where = f"\n\nPython module at `{path}`." if path else "\n\nPython module (source not found)."
    return _code(text) + where


def _python_member(target: pysource.PyTarget) -> str:
    """``tools.search``: the Python signature, docstring and where it is defined."""
    d = target.definition
    if d is None:
        where = f"`{target.path}`" if target.path else "its source was not found"
        return (
            _code(f"{target.alias}.{target.name}")
            + f"\n\nNot a top-level definition of Python module `{target.module}` ({where})."
        )
    text = _code(d.signature, "python") + _doc(d.doc or "")
    if target.path is not None:
        text += f"\n\nFrom `{target.module}` — `{target.path}`, line {d.line + 1}."
    return text


def _simple(analysis: Analysis, sym: Symbol) -> str:
    owner = f"\n\nIn `{sym.container}`." if sym.container else ""
    return _code(sym.detail or sym.name) + _doc(sym.doc) + owner


_DESCRIBERS = {
    "signature": _signature,
    "field": _field,
    "type": _record,
    "enum": _enum,
    "module": _module,
    "submodule": _submodule,
    "param": _param,
    "local": _local,
    "program": _program,
    "data": _value_decl,
    "metric": _value_decl,
    "python": _python,
    "record_field": _simple,
    "enum_member": _simple,
}


def _lm_setting(analysis: Analysis, path: str, start: int) -> str | None:
    """A setting's name in an ``lm`` declaration: its meaning, from the runtime's registry."""
    from dsx.runtime import resources

    pf = analysis.files.get(path)
    for decl in pf.decls if pf is not None else ():
        if isinstance(decl, ast.LmDecl) and decl.span.start <= start < decl.span.end:
            chain = isinstance(decl.value, ast.Call)
            registry = resources.FALLBACK_SETTINGS if chain else resources.LM_DECL_SETTINGS
            for item in decl.settings:
                setting = registry.get(item.name.name)
                if item.name.span.start == start and setting is not None:
                    return _code(f"{item.name.name} = ...") + (
                        f"\n\nLM setting: {setting.doc}; {setting.expected}."
                    )
    return None


def _loop_bound(text: str, start: int, end: int) -> bool:
    """Whether ``max`` at ``start:end`` is a ``while`` loop's bound: the line starts with
    ``while`` and the word is not called."""
    line_start = text.rfind("\n", 0, start) + 1
    return text[line_start:start].lstrip().startswith("while ") and not text[
        end:
    ].lstrip().startswith("(")


def _builtin(word: str) -> str | None:
    kind = _env.KINDS.get(word)
    if kind is not None:
        outs = ", ".join(f"`{o}`" for o in kind.extra_outputs)
        settings = ", ".join(f"`{s}`" for s in sorted(kind.kwargs))
        text = (
            _code(f"{word}({'Signature, ' if kind.takes_signature else ''}...)") + f"\n\n{kind.doc}"
        )
        if settings:
            text += f"\n\nSettings: {settings}"
        if kind.takes_signature:
            text += "\n\nReturns the signature's outputs" + (f" and {outs}" if outs else "") + "."
        elif outs:
            text += f"\n\nReturns {outs}."
        return text
    if word in _env.KNOWN_OPTIMIZERS:
        return _optimizer_hover(word)
    from dsx.runtime import resources

    spec = resources.RETRIEVERS.get(word)
    if spec is not None:
        settings = ", ".join(
            f"`{k}`" + (" (required)" if k in spec.required else "") for k in spec.settings
        )
        return _code(f"{word}(...)") + f"\n\n{spec.doc}\n\nSettings: {settings}"
    if word in _env.BUILTIN_METRICS:
        return _code(word) + "\n\nA built-in metric."
    if word in _TYPE_DOCS:
        return _code(word) + f"\n\nBuilt-in type: {_TYPE_DOCS[word]}."
    if word in _env.BUILTIN_FUNCTIONS:
        return _code(f"{word}(...)") + "\n\nA built-in function."
    if word in _KEYWORD_DOCS:
        return _KEYWORD_DOCS[word]
    return None


def _optimizer_hover(word: str) -> str:
    """An optimizer's doc and settings, read from the runtime's registry."""
    info = _env.optimizer_info(word)
    if info is None or not info.available:
        doc = f" (it {info.doc.rstrip('.')})" if info is not None and info.doc else ""
        return _code(word) + f"\n\nAn optimizer this version of dsx does not have yet{doc}."
    text = _code(f"{word}(...)") + (f"\n\n{info.doc}" if info.doc else "")
    text += f"\n\nUse it in `optimize ... {{ with {word}(...) }}`."
    rows = []
    for name, setting in info.settings.items():
        if not setting.settable or name == "metric":
            continue
        default = "" if setting.default is REQUIRED else f" = `{_dsx_constant(setting.default)}`"
        doc = f" — {setting.doc}" if setting.doc else ""
        rows.append(f"- `{name}`: {setting.type_text}{default}{doc}")
    if rows:
        text += "\n\nSettings:\n" + "\n".join(rows)
    return text
