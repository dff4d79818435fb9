"""The *resources* pass: ``lm`` and ``retriever`` declarations, and their use by
predictors (``Predict(QA, lm = fast)``) and ``Retrieve(wiki)``.

Reads :class:`~dsx.compiler._pass_declare.Names`; writes :class:`ResourceTables` (the IR
of each declared LM and retriever) and reports into :class:`~dsx.compiler._records.Records`.
Settings are checked against the runtime's registry (:mod:`dsx.runtime.resources`), so
the checker, the editor and both ways of running a program agree on what exists.

The module-headers pass calls :func:`resource_arg` for each sub-module argument that may
name a declared resource.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._pass_declare import Names
from dsx.compiler._records import Records
from dsx.compiler.resources import describe_lm, show_value
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Related
from dsx.grammar import ast
from dsx.runtime import resources

__all__ = [
    "LM_CODE",
    "RETRIEVER_CODE",
    "ResourceTables",
    "lower_resources",
    "resource_arg",
]

#: Diagnostic codes (see docs/diagnostics.md).
LM_CODE = DiagnosticCode.INVALID_LM
RETRIEVER_CODE = DiagnosticCode.INVALID_RETRIEVER
#: Sub-module kinds that take a declared retriever: `Retrieve(wiki)` / `Retrieve(rm = wiki)`.
_RETRIEVE = "Retrieve"
_NO_VALUE = object()
_NO_DECL = ir.RetrieverDecl(name="", kind="")
_b = ir.build


@dataclass(slots=True)
class ResourceTables:
    """What the resources pass records: the IR of each ``lm`` and ``retriever``, by name."""

    lms: dict[str, ir.LMDecl] = field(default_factory=dict)
    retrievers: dict[str, ir.RetrieverDecl] = field(default_factory=dict)

    def copy(self) -> ResourceTables:
        return ResourceTables(copy.copy(self.lms), copy.copy(self.retrievers))


# -- the pass -------------------------------------------------------------------------------
def lower_resources(rec: Records, names: Names, tables: ResourceTables, decls: list[Any]) -> None:
    """Lower every ``lm`` and ``retriever`` declaration of ``decls`` (fallbacks after the
    LMs they name); ``tables`` starts afresh."""
    tables.lms, tables.retrievers = {}, {}
    mine = [
        d
        for d in decls
        if isinstance(d, ast.LmDecl | ast.RetrieverDecl) and names.owns(d.name.name, d)
    ]
    for decl in mine:
        if isinstance(decl, ast.RetrieverDecl):
            _lower_retriever(rec, tables, decl)
    lms = {d.name.name: d for d in mine if isinstance(d, ast.LmDecl)}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in tables.lms or name in visiting:
            return
        visiting.append(name)
        _lower_lm(rec, names, tables, lms[name], lms, visit, visiting)
        visiting.pop()

    for name in lms:
        visit(name)


# -- lm -------------------------------------------------------------------------------------
def _lower_lm(
    rec: Records,
    names: Names,
    tables: ResourceTables,
    decl: ast.LmDecl,
    lms: dict[str, ast.LmDecl],
    visit: Any,
    visiting: list[str],
) -> None:
    name = decl.name.name
    value = decl.value
    model: str | None = None
    chain: list[str] = []
    registry = resources.LM_DECL_SETTINGS
    if isinstance(value, ast.Str):
        model = value.value
        if resources.is_local_model(model):
            registry = resources.LOCAL_LM_SETTINGS
        elif "/" not in model or not model.strip():
            rec.error(
                LM_CODE,
                f'lm `{name}`: "{model}" is not a model name; write "provider/model" '
                '(e.g. "openai/gpt-4o-mini"), or "local" for the local model',
                value.span,
            )
    elif (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.NameRef)
        and value.func.name.name == "fallback"
    ):
        registry = resources.FALLBACK_SETTINGS
        if not value.args:
            rec.error(
                LM_CODE, f"lm `{name}`: fallback(...) needs the LMs to try, in order", value.span
            )
        for arg in value.args:
            ref = arg.value
            if arg.name is not None or not isinstance(ref, ast.NameRef):
                rec.error(
                    LM_CODE,
                    "fallback(...) takes the names of declared LMs, in order "
                    "(`fallback(fast, local)`)",
                    arg.span,
                )
                continue
            other = ref.name.name
            if other not in lms:
                _unknown_lm(rec, names, ref.name)
                continue
            rec.ref(ref.name.span, other)
            if other in visiting:
                rec.error(
                    LM_CODE,
                    f"lm `{name}`: fallback chain is circular (`{other}` falls back to `{name}`)",
                    ref.name.span,
                )
                continue
            visit(other)
            chain.append(other)
    else:
        rec.error(
            LM_CODE,
            f'lm `{name}` must be a model name (`lm {name} = "openai/gpt-4o-mini"`) or '
            f"a fallback chain (`lm {name} = fallback(fast, local)`)",
            value.span,
        )
    settings = _settings(
        rec, f"lm `{name}`", decl.settings, registry, LM_CODE, fallback=bool(chain)
    )
    lowered = _b(
        ir.LMDecl,
        name=name,
        model=model,
        fallback=tuple(chain),
        settings=settings,
        doc=decl.doc or "",
        loc=rec.loc(decl.name.span),
    )
    tables.lms[name] = lowered
    rec.describe(name, detail=describe_lm(lowered))


def _unknown_lm(rec: Records, names: Names, ident: ast.Ident) -> None:
    rec.unknown(
        LM_CODE,
        "lm",
        ident,
        [n for n, (k, _) in names.decls.items() if k == "lm"],
        f'declare it: `lm {ident.name} = "openai/gpt-4o-mini"`',
    )


# -- retriever ------------------------------------------------------------------------------
def _lower_retriever(rec: Records, tables: ResourceTables, decl: ast.RetrieverDecl) -> None:
    name = decl.name.name
    value = decl.value
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.NameRef)):
        rec.error(
            RETRIEVER_CODE,
            f"retriever `{name}` must be built by a retriever kind: "
            f"{', '.join(f'{k}(...)' for k in resources.RETRIEVERS)}",
            value.span,
        )
        return
    kind_ident = value.func.name
    spec = resources.RETRIEVERS.get(kind_ident.name)
    if spec is None:
        rec.unknown(
            RETRIEVER_CODE,
            "retriever kind",
            kind_ident,
            resources.RETRIEVERS,
            f"use one of {', '.join(resources.RETRIEVERS)}",
        )
        return
    items = []
    for arg in value.args:
        if arg.name is None:
            rec.error(
                RETRIEVER_CODE,
                f"{spec.name} takes its settings as keywords "
                f"({', '.join(f'`{s} = ...`' for s in spec.settings)})",
                arg.span,
            )
            continue
        items.append(arg)
    settings = _settings(
        rec, f"{spec.name}", tuple(items), spec.settings, RETRIEVER_CODE, fallback=False
    )
    given = {k for k, _ in settings} | {a.name.name for a in items if a.name is not None}
    missing = [r for r in spec.required if r not in given]
    if missing:
        rec.error(
            RETRIEVER_CODE,
            f"retriever `{name}` ({spec.name}) needs " + ", ".join(f"`{m} = ...`" for m in missing),
            value.span,
        )
    lowered = _b(
        ir.RetrieverDecl,
        name=name,
        kind=spec.name,
        settings=settings,
        doc=decl.doc or "",
        loc=rec.loc(decl.name.span),
    )
    tables.retrievers[name] = lowered
    symbol = rec.symbols.get(name)
    if symbol is not None:
        shown = ", ".join(f"{k} = {show_value(v)}" for k, v in settings)
        rec.describe(
            name,
            detail=f"retriever {name} = {spec.name}({shown})",
            doc=symbol.doc or spec.doc,
        )


# -- settings -------------------------------------------------------------------------------
def _settings(
    rec: Records,
    owner: str,
    items: tuple[Any, ...],
    registry: dict[str, resources.Setting],
    code: str,
    *,
    fallback: bool,
) -> tuple[tuple[str, Any], ...]:
    out: list[tuple[str, Any]] = []
    seen: dict[str, Any] = {}
    for item in items:
        key = item.name.name
        if key in seen:
            rec.error(
                code,
                f"{owner}: `{key}` is set twice",
                item.name.span,
                related=(Related(seen[key].name.span, "first set here"),),
            )
            continue
        seen[key] = item
        if key == "api_key" and "api_key_env" in registry:
            rec.error(
                code,
                f"{owner}: a key is never written in a .dsx file (it would travel with "
                'the program); name its environment variable with `api_key_env = "MY_KEY"`',
                item.name.span,
            )
            continue
        if key not in registry:
            guess = _env.did_you_mean(key, registry)
            fix = Fix(f"replace with `{guess}`", (Edit(item.name.span, guess),)) if guess else None
            if fallback:
                hint = "a fallback chain takes `retries`; set model settings on its LMs"
            elif key in resources.LM_DECL_SETTINGS and registry is resources.LOCAL_LM_SETTINGS:
                hint = "the local model runs on this machine, at its own endpoint, with no key"
            else:
                hint = f"it accepts: {', '.join(registry)}"
            rec.error(
                code,
                f"{owner} has no setting `{key}`"
                + (f"; did you mean `{guess}`?" if guess else f" ({hint})"),
                item.name.span,
                fix=fix,
            )
            continue
        value = _constant(item.value)
        if value is _NO_VALUE:
            rec.error(
                code,
                f"{owner}: `{key}` must be a constant ({registry[key].expected})",
                item.value.span,
            )
            continue
        problem = resources.check_setting(registry, key, value)
        if problem is not None:
            rec.error(code, f"{owner}: {problem}", item.value.span)
            continue
        out.append((key, value))
    return tuple(out)


# -- uses -----------------------------------------------------------------------------------
def resource_arg(
    rec: Records,
    names: Names,
    tables: ResourceTables,
    kind_name: str,
    key: str | None,
    arg: ast.Arg,
    call: ast.Call,
    scope: Mapping[str, Any],
) -> list[tuple[str, ir.Expr]] | None:
    """The lowered arguments for a sub-module argument that names a declared resource
    (``None``: not one; the caller checks it as usual). ``key`` is ``None`` for a
    positional argument; ``scope`` maps the names in scope to entries with a ``kind``. A
    resource is referred to as a call of its name (``fast()``): each way of running a
    program makes it once, on first use, and shares it. ``Retrieve(wiki)`` also takes the
    retriever's declared ``k`` unless it gives one.
    """
    value = arg.value
    if (
        isinstance(value, ast.NameRef)
        and value.name.name in scope
        and scope[value.name.name].kind in ("param", "sub", "local")
        and names.kind(value.name.name) in ("lm", "retriever")
    ):
        what = names.kind(value.name.name)
        rec.error(
            LM_CODE if what == "lm" else RETRIEVER_CODE,
            f"`{value.name.name}` here is the module's {scope[value.name.name].kind}, "
            f"which hides the {what} declared with that name; rename one of them",
            value.span,
        )
        return []
    if key == "lm" and kind_name in _env.PREDICTOR_KINDS:
        if isinstance(value, ast.NameRef) and names.kind(value.name.name) == "lm":
            rec.ref(value.name.span, value.name.name)
            return [("lm", _use(rec, value))]
        if isinstance(value, ast.NameRef):
            _unknown_lm(rec, names, value.name)
        else:
            rec.error(
                LM_CODE,
                '`lm` names a declared LM (`lm fast = "openai/gpt-4o-mini"`, then `lm = fast`)',
                value.span,
            )
        return []
    if kind_name == _RETRIEVE and key in (None, "rm") and isinstance(value, ast.NameRef):
        name = value.name.name
        if names.kind(name) == "retriever":
            rec.ref(value.name.span, name)
            out = [("rm", _use(rec, value))]
            declared = dict(tables.retrievers.get(name, _NO_DECL).settings)
            if "k" in declared and call.kwarg("k") is None:
                out.append(("k", _b(ir.Const, value=declared["k"], loc=None)))
            return out
        if key is None:
            rec.unknown(
                RETRIEVER_CODE,
                "retriever",
                value.name,
                [n for n, (k, _) in names.decls.items() if k == "retriever"],
                f"declare it: `retriever {name} = Embeddings(...)`",
            )
            return []
    return None


def _use(rec: Records, ref: ast.NameRef) -> ir.Expr:
    loc = rec.loc(ref.span)
    return _b(ir.Call, func=_b(ir.Name, name=ref.name.name, loc=loc), loc=loc)


def _constant(e: Any) -> Any:
    """A setting's value: a constant (string, number, bool, none, or a list or dict of
    them); ``_NO_VALUE`` for anything else."""
    if isinstance(e, ast.Str):
        return e.value
    if isinstance(e, ast.Lit):
        return e.value
    if isinstance(e, ast.Neg) and isinstance(e.operand, ast.Lit):
        v = e.operand.value
        if isinstance(v, int | float) and not isinstance(v, bool):
            return -v
    if isinstance(e, ast.ListExpr):
        items = [_constant(i) for i in e.items]
        return _NO_VALUE if any(i is _NO_VALUE for i in items) else items
    if isinstance(e, ast.DictExpr):
        out = {}
        for pair in e.pairs:
            k, v = _constant(pair.key), _constant(pair.value)
            if not isinstance(k, str) or v is _NO_VALUE:
                return _NO_VALUE
            out[k] = v
        return out
    return _NO_VALUE
