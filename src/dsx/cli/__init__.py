"""The ``dsx`` command line: one module per command.

Each command module (``dsx.cli.check``, ``dsx.cli.run``, ...) exposes
``add_parser(subparsers)``, which declares the command's arguments and sets ``func``, and
``run(args) -> int``, which does the work. Building the parser imports every command
module, so they import at their top only ``argparse`` and light helpers; what a command
needs to run (the compiler, the runtime, pygls, ...) is imported inside ``run``, which keeps
``dsx --help`` fast. :mod:`dsx.cli._common` holds the options, messages and program
loading several commands share, :mod:`dsx.cli._lm` which LM a command uses.

Nothing outside this package imports it (``tests/test_layering.py``), except the
compatibility faces ``dsx.lsp.cli`` and ``dsx.sandbox.cli``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence

from dsx._version import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: The commands, in the order ``dsx --help`` lists them; each is the module ``dsx.cli.NAME``
#: (``from_dspy`` is the command ``from-dspy``).
COMMANDS = (
    "check",
    "fmt",
    "lsp",
    "sandbox",
    "model",
    "index",
    "build",
    "run",
    "test",
    "eval",
    "optimize",
    "inspect",
    "from_dspy",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dsx`` parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="dsx",
        description="dsx — program language models: typed signatures, modules, optimizers.",
    )
    parser.add_argument("--version", action="version", version=f"dsx {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, show the whole Python traceback"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"dsx.cli.{name}").add_parser(sub)
    return parser


def _tolerant_output() -> None:
    """Print text with lone surrogates (file names that are not UTF-8, escaped surrogates in
    a model's JSON) as escapes, whatever the locale, instead of failing mid-output."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dsx`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_usage(sys.stderr)
        print(
            "dsx: a command is needed, e.g. `dsx check FILE.dsx`; `dsx --help` lists them all",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("dsx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `dsx check | head`: the reader went away; say nothing more.
        import os

        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        from dsx._report import report_error

        report_error(exc, show_traceback=getattr(args, "traceback", False))
        return 1
