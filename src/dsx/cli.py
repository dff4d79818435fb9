"""The ``dsx`` command line.

Subcommands arrive with the features they drive (``check``, ``fmt``, ``build``, ``run``,
``lsp``, ...); each is imported only when used so that ``dsx --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsx._version import __version__

__all__ = ["main"]


def _cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"dsx inspect: {path}: no such file", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"dsx inspect: {path}: not a JSON state file ({exc})", file=sys.stderr)
        return 2
    state = data.get("state") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        print(f"dsx inspect: {path}: no 'state' object; save one with program.save('x.json')", file=sys.stderr)
        return 2
    print(f"{path}: program {data.get('program', '?')}, dsx {data.get('dsx_version', '?')}, "
          f"schema {data.get('schema_version', '?')}, {len(state)} predictor(s)")
    for name, pstate in state.items():
        _print_predictor(name, pstate, show_demos=args.demos)
    return 0


def _print_predictor(name: str, state: dict[str, Any], *, show_demos: bool) -> None:
    sig = state.get("signature", {})
    fields = sig.get("fields", [])
    ins = ", ".join(f"{f['name']}: {f.get('type', 'str')}" for f in fields if f.get("kind") == "input")
    outs = ", ".join(f"{f['name']}: {f.get('type', 'str')}" for f in fields if f.get("kind") == "output")
    print(f"\n■ {name}  ({ins} -> {outs})")
    print(f"  instructions: {sig.get('instructions', '')}")
    lm = state.get("lm")
    if lm:
        print("  lm: " + ", ".join(f"{k}={v}" for k, v in lm.items()))
    demos = state.get("demos", [])
    print(f"  demos: {len(demos)}")
    if show_demos:
        for i, demo in enumerate(demos, 1):
            print(f"    {i}. " + json.dumps(demo, ensure_ascii=False)[:200])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsx",
        description="dsx — program language models: typed signatures, modules, optimizers.",
    )
    parser.add_argument("--version", action="version", version=f"dsx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    inspect = sub.add_parser(
        "inspect",
        help="show the learned state saved by program.save(path)",
        description="Show per predictor the instructions, LM settings and demos of a saved state file.",
    )
    inspect.add_argument("file", help="a state file written by Module.save (JSON)")
    inspect.add_argument("--demos", action="store_true", help="print every demo too")
    inspect.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
