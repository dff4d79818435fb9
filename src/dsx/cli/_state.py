"""Which learned state a command runs a program with (``--state``, ``--no-state``, or the
state ``dsx build``/``dsx optimize`` last wrote), said in one line on stderr."""

from __future__ import annotations

from typing import Any

from dsx.cli._common import note, shown
from dsx.errors import StateError

__all__ = ["fingerprint", "with_state"]


def with_state(ns: Any, path: str, name: str, args: Any) -> Any:
    """Program ``name`` with the learned state the command should use, saying which.

    ``--no-state``: the bare program. ``--state FILE``: that file. Otherwise, for a .dsx
    file, the state ``dsx build``/``dsx optimize`` last wrote for the program
    (``build/NAME.state.json`` next to the file) while it matches the program's IR; for an
    IR file, the learned state it carries.
    """
    from dsx.runtime.state import read_state

    quiet = getattr(args, "quiet_state", False)
    say = (lambda m: None) if quiet else note
    if getattr(args, "no_state", False):
        say(f"running `{name}` without learned state (--no-state)")
        return ns.program(name, learned=False)
    explicit = getattr(args, "state", None)
    if explicit:
        state = read_state(explicit)
        program = ns.program(name, learned=False)
        _load_into(program, state, name)
        if state.fingerprint and state.fingerprint != fingerprint(ns, name):
            say(
                f"note: {explicit} was learned for another version of `{name}`; it still fits "
                "its predictors, so it is used"
            )
        say(f"using learned state {explicit} ({state.describe()})")
        return program
    if path.endswith(".json"):
        learned = ns.unit.learned.get(name)
        if learned is not None:
            say(f"using the learned state in {path} ({learned.optimizer or 'saved'})")
        else:
            say(f"`{name}` is not optimized (the IR file has no learned state for it)")
        return ns.program(name)
    from dsx.compiler.build import default_state_path

    default = default_state_path(path, name)
    where = shown(default)
    if not default.is_file():
        hint = (
            f"`dsx optimize {path}` learns one"
            if any(o.program == name for o in ns.unit.optimizes)
            else f"add an `optimize {name} {{ ... }}` block to learn one"
        )
        say(f"`{name}` is not optimized (no {where}); {hint}")
        return ns.program(name)
    try:
        state = read_state(default)
    except StateError as exc:
        say(f"ignoring {where}: {exc}")
        return ns.program(name)
    if state.fingerprint != fingerprint(ns, name):
        say(
            f"ignoring {where}: `{name}` changed since that state was learned; run "
            f"`dsx build {path}` (or `dsx optimize`) again, or pass --state {where} to use it anyway"
        )
        return ns.program(name)
    program = ns.program(name, learned=False)
    _load_into(program, state, name)
    say(f"using learned state {where} ({state.describe()}); --no-state runs the bare program")
    return program


def _load_into(program: Any, state: Any, name: str) -> None:
    from dsx.runtime.state import load_into

    try:
        load_into(program, state, name=name)  # predictors, then a KNN selector (issue 19)
    except StateError as exc:
        raise StateError(f"{state.source} does not fit program `{name}`: {exc}") from None


def fingerprint(ns: Any, name: str) -> str:
    """The IR fingerprint of program ``name``, as learned states record it."""
    from dsx.compiler.build import program_fingerprint

    return program_fingerprint(ns.unit, name)
