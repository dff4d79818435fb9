"""A program's inputs, read from the IR: what ``dsx run -i`` checks against and what the
editor's prompt preview offers to fill in."""

from __future__ import annotations

from dsx import ir

__all__ = ["program_inputs"]


def program_inputs(unit: ir.Unit, program: str) -> list[tuple[str, ir.TypeRef | None, bool]]:
    """The inputs of ``program`` in ``unit``: (name, IR type or ``None``, required).

    A module's are its ``forward`` parameters; a signature's its ``in`` fields.
    """
    prog = next(p for p in unit.programs if p.name == program)
    root = prog.root
    if root.kind == "module":
        mod = next(m for m in unit.modules if m.name == root.module)
        if mod.forward is None:
            return []
        return [(p.name, p.type, p.default is None) for p in mod.forward.params]
    sig = next(s for s in unit.signatures if s.name == root.signature)
    return [(f.name, f.type, not f.has_default) for f in sig.fields if f.direction == "in"]
