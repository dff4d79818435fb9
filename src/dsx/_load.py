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
        from dsx._textfile import read_text

        text = read_text(p, what="IR file")  # TextFileError says what is wrong
        try:
            unit = ir.Unit.from_json(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
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


def load_program(
    path: str | Path,
    program: str | None = None,
    *,
    state: str | Path | None = None,
    allow_endpoints: bool = False,
) -> Any:
    """A fresh instance of ``program`` (default: the first) from a .dsx or .ir.json file.

    Args:
        path: the ``.dsx`` or ``.ir.json`` file.
        program: the program's name (default: the first one declared).
        state: a learned-state file (written by ``dsx optimize``, ``dsx build`` or
            ``Module.save``) to apply; it must fit the program's predictors. Without it, an
            IR file's own learned state is applied and a ``.dsx`` program is unoptimized.
        allow_endpoints: trust LM endpoints, keys, headers and settings outside the
            model-settings allow-list in the state (or the IR file's learned state); without
            it they are refused with a :class:`~dsx.errors.StateError` (see docs/runtime.md).

    Example:
        >>> classify = dsx.load_program("classifier.dsx", state="build/classify.state.json")
    """
    ns = load_namespace(path)
    if state is None:
        return ns.program(program, allow_endpoints=allow_endpoints)
    from dsx.errors import StateError
    from dsx.runtime.module import Module
    from dsx.runtime.state import read_state

    saved = read_state(state)
    instance = ns.program(program, learned=False)
    try:
        # program-level, also for a Predict
        Module.load_state(instance, saved.predictors, allow_endpoints=allow_endpoints)
    except StateError as exc:
        name = program or ns.unit.programs[0].name
        raise StateError(f"{state} does not fit program `{name}`: {exc}") from None
    return instance
