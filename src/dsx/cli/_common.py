"""What several commands share: options, messages, targets and program names, output.

Imported when the parser is built, so it imports nothing heavy at its top.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dsx.errors import DsxError

__all__ = [
    "add_lm_option",
    "add_lm_override_option",
    "add_state_options",
    "add_traceback",
    "err",
    "load",
    "note",
    "parse_value",
    "plain",
    "program_name",
    "ready_program",
    "shown",
    "split_target",
    "write_page",
]

#: ``--lm`` as the commands that run a program document it.
LM_HELP = (
    "the LM: a litellm model string (e.g. openai/gpt-4o-mini) or `local` for the local model "
    "(default: DSX_LM)"
)


# -- options ----------------------------------------------------------------------------------


def add_state_options(cmd: argparse.ArgumentParser) -> None:
    """``--state FILE`` | ``--no-state``: which learned state a program runs with."""
    group = cmd.add_mutually_exclusive_group()
    group.add_argument(
        "--state",
        metavar="FILE",
        help="apply this learned-state file (default: build/PROGRAM.state.json next to a .dsx "
        "file, when it was learned for the program as it is now)",
    )
    group.add_argument(
        "--no-state", action="store_true", help="run the bare program, without learned state"
    )


def add_traceback(cmd: argparse.ArgumentParser) -> None:
    """``--traceback`` after the command too (``dsx --traceback CMD`` works already)."""
    cmd.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an error, show the whole Python traceback",
    )


def add_lm_option(cmd: argparse.ArgumentParser, help: str = LM_HELP) -> None:
    """``--lm MODEL`` and ``--lm-option KEY=VALUE`` (resolved by :mod:`dsx.cli._lm`)."""
    cmd.add_argument("--lm", metavar="MODEL", help=help)
    cmd.add_argument(
        "--lm-option",
        metavar="KEY=VALUE",
        action="append",
        help="a setting of that LM, repeatable: max_tokens=512, temperature=0.7, "
        "num_retries=0, ... (the settings an `lm` declaration takes)",
    )


def add_lm_override_option(cmd: argparse.ArgumentParser) -> None:
    """``--lm-override``: the command's LM for every predictor, declared ``lm`` ones too."""
    cmd.add_argument(
        "--lm-override",
        action="store_true",
        help="use --lm (or DSX_LM) for every predictor, also those whose `lm = ...` the "
        ".dsx file declares (by default a declared LM wins)",
    )


# -- messages -----------------------------------------------------------------------------------


def err(message: str) -> int:
    """Say ``dsx: message`` on stderr; returns the usage-error status, 2."""
    print(f"dsx: {message}", file=sys.stderr)
    return 2


def note(message: str) -> None:
    print(f"dsx: {message}", file=sys.stderr)


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- programs -------------------------------------------------------------------------------


def split_target(target: str) -> tuple[str, str | None]:
    """``FILE[:program]`` → (file, program or ``None``)."""
    path, sep, program = target.rpartition(":")
    if sep and path.endswith((".dsx", ".json")):
        return path, program or None
    return target, None


def load(path: str) -> Any:
    """The namespace of a .dsx or IR file (``dsx._load``); raises ``CheckFailed``/``DsxError``."""
    from dsx._load import load_namespace

    return load_namespace(path)


def program_name(ns: Any, requested: str | None) -> str:
    """``requested``, checked to exist, or the file's first program."""
    if requested is None:
        if not ns.unit.programs:
            raise DsxError(
                f"{ns.unit.source} declares no `program`; add e.g. `program main = MyModule()`"
            )
        return str(ns.unit.programs[0].name)
    ns.program(requested, learned=False)  # raises a clear error for an unknown name
    return requested


def ready_program(ns: Any, path: str, name: str, args: argparse.Namespace) -> Any:
    """Program ``name`` of ``ns`` as ``dsx run`` and ``dsx eval`` run it.

    The command's LM is set up (``--lm``/``DSX_LM``), the learned state applied
    (``--state``/``--no-state``, else the last build's), ``--lm-override`` given every
    predictor the command's LM, and every predictor must then have an LM.

    Raises:
        DsxError: with the message to print (no LM, a state that cannot be used, ...).
    """
    from dsx.cli._lm import override_declared, require_lm, setup_lm
    from dsx.cli._state import with_state

    model = setup_lm(args.lm, getattr(args, "lm_option", None))
    program = with_state(ns, path, name, args)
    if getattr(args, "lm_override", False):
        override_declared(model, program)
    require_lm(program)
    return program


def parse_value(text: str) -> Any:
    """JSON when ``text`` is JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- output ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` as plain JSON-able data (predictions, models, passages...)."""
    from dsx.runtime.adapters._values import jsonable

    return jsonable(value)


def write_page(out: str, html: str, *, what: str, wrote: str) -> int:
    """Write an HTML page (``--trace-html``, ``--report``) atomically; 0, or 2 with a message."""
    from dsx._files import atomic_write

    try:
        atomic_write(out, html)
    except OSError as exc:
        return err(f"cannot write the {what} {out}: {exc.strerror or exc}")
    print(f"wrote the {wrote} to {out}", file=sys.stderr)
    return 0
