"""Generated code for ``lm`` and ``retriever`` declarations (see ``dsx.runtime.resources``).

Each resource a program uses becomes a module-level function, made once on first call
(``@_dsx.resource``), so that importing a built module neither builds an LM nor embeds a
corpus; sub-modules refer to it as ``fast()``, as the interpreter does.
"""

from __future__ import annotations

from typing import Any

from dsx import ir
from dsx.compiler._pyfmt import literal

__all__ = ["emit_resources", "used_resources"]


def used_resources(unit: ir.Unit, names: set[str]) -> list[ir.LMDecl | ir.RetrieverDecl]:
    """The declarations among ``names`` (names a program's code refers to), with the LMs
    their fallback chains need, each after what it needs."""
    lms = {d.name: d for d in unit.lms}
    retrievers = {d.name: d for d in unit.retrievers}
    out: list[ir.LMDecl | ir.RetrieverDecl] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        done.add(name)
        if name in lms:
            for other in lms[name].fallback:
                visit(other)
            out.append(lms[name])
        elif name in retrievers:
            out.append(retrievers[name])

    for name in sorted(names):
        visit(name)
    return out


def emit_resources(w: Any, decls: list[ir.LMDecl | ir.RetrieverDecl], py: Any, root: str) -> None:
    """Write a function for each resource to ``w`` (a ``codegen.Writer``); ``root`` is the
    .dsx file's folder relative to the generated module (relative retriever paths)."""
    for d in decls:
        settings = literal(dict(d.settings))
        if isinstance(d, ir.LMDecl):
            if d.fallback:
                chain = ", ".join(f"{py(n)}()" for n in d.fallback)
                call = f"_dsx.lm({d.name!r}, fallback=[{chain}], settings={settings})"
            else:
                call = f"_dsx.lm({d.name!r}, model={literal(d.model)}, settings={settings})"
        else:
            call = f"_dsx.retriever({d.name!r}, {d.kind!r}, {settings}, __file__, {root!r})"
        w.line()
        w.line()
        w.line("@_dsx.resource", d.loc)
        w.line(f"def {py(d.name)}() -> _dsx.Any:", d.loc)
        w.indent += 1
        w.line(f"return {call}", d.loc)
        w.indent -= 1
