"""``dsx.load_program``: a runnable program from a .dsx file or an IR JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsx.errors import DsxError

__all__ = ["load_namespace", "load_program"]


class CheckFailed(DsxError):
    """The .dsx file has errors; the message lists them."""


def load_namespace(path: str | Path) -> Any:
    """Check (for .dsx) or read (for .ir.json) ``path`` and instantiate everything in it."""
    from dsx import ir
    from dsx.runtime.instantiate import instantiate

    p = Path(path)
    if p.name.endswith(".json"):
        try:
            unit = ir.Unit.from_json(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DsxError(f"{p}: not a dsx IR file: {exc}") from None
        return instantiate(unit)
    if p.suffix != ".dsx":
        raise DsxError(f"{p}: expected a .dsx or .ir.json file")
    from dsx.compiler.analysis import analyze_path
    from dsx.diagnostics import render_text

    if not p.is_file():
        raise DsxError(f"{p}: no such file")
    analysis = analyze_path(p)
    if analysis.errors:
        shown = "\n\n".join(
            render_text(d, analysis.source(d.span.file)) for d in analysis.errors[:10]
        )
        raise CheckFailed(f"{p} has {len(analysis.errors)} error(s):\n\n{shown}")
    return instantiate(analysis.unit)


def load_program(path: str | Path, program: str | None = None) -> Any:
    """A fresh instance of ``program`` (default: the first) from a .dsx or .ir.json file."""
    return load_namespace(path).program(program)
