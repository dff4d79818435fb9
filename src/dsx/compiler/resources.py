"""A unit's declared resources (``lm`` and ``retriever`` declarations), described for
people: what ``dsx inspect FILE.dsx`` prints and the editor's hover shows."""

from __future__ import annotations

from typing import Any

from dsx import ir

__all__ = ["describe_lm", "describe_resources", "show_value"]


def describe_lm(decl: ir.LMDecl) -> str:
    """One line for hover and ``dsx inspect``: the model (or chain) and every setting,
    endpoints included, so a reader sees where prompts go."""
    head = (decl.model and f'"{decl.model}"') or f"fallback({', '.join(decl.fallback)})"
    settings = ", ".join(f"{k} = {show_value(v)}" for k, v in decl.settings)
    return f"lm {decl.name} = {head}" + (f" {{ {settings} }}" if settings else "")


def describe_resources(unit: ir.Unit) -> list[str]:
    """What ``dsx inspect FILE.dsx`` prints: each declared LM (endpoints and headers
    flagged: prompts and the provider's key go there) and retriever, and which
    predictors use each LM; predictors without one use ``--lm`` / ``DSX_LM``."""
    lines = []
    for d in unit.lms:
        lines.append(describe_lm(d))
        settings = dict(d.settings)
        if "api_base" in settings:
            lines.append(f"  note: sends prompts (and the key) to {settings['api_base']}")
        if "headers" in settings:
            lines.append(f"  note: adds headers {', '.join(sorted(settings['headers']))}")
    for r in unit.retrievers:
        shown = ", ".join(f"{k} = {show_value(v)}" for k, v in r.settings)
        lines.append(f"retriever {r.name} = {r.kind}({shown})")
        for key in ("embedder_api_base", "url"):
            where = dict(r.settings).get(key)
            if where is not None:
                what = "passages and queries" if key == "embedder_api_base" else "queries"
                lines.append(f"  note: sends {what} to {where}")
    for m in unit.modules:
        for sub in m.submodules:
            for key, value in sub.kwargs:
                if key == "lm" and isinstance(value, ir.Call) and isinstance(value.func, ir.Name):
                    lines.append(f"{m.name}.{sub.name} uses lm {value.func.name}")
    for p in unit.programs:
        for key, value in p.root.kwargs:
            if key == "lm" and isinstance(value, ir.Call) and isinstance(value.func, ir.Name):
                lines.append(f"program {p.name} uses lm {value.func.name}")
    return lines


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{show_value(k)}: {show_value(v)}" for k, v in value.items()) + "}"
    return "none" if value is None else repr(value)
