"""``dsx build FILE``: check, optimize (cached) and write Python modules plus learned state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dsx.cli._common import add_lm_option, add_traceback, err

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    build: argparse.ArgumentParser = subparsers.add_parser(
        "build",
        help="compile a .dsx program (and its optimization) into Python modules",
        description="Check FILE, run each `optimize` block whose inputs changed (results are cached "
        "in OUT/.cache), and write one Python module per program plus its learned state as JSON.",
    )
    build.add_argument("file", metavar="FILE", help="the .dsx file")
    build.add_argument(
        "--out", metavar="DIR", help="output directory (default: build/ next to FILE)"
    )
    build.add_argument(
        "--emit", choices=["py", "ir", "ast"], default="py", help="what to write (default: py)"
    )
    build.add_argument(
        "--explain",
        action="store_true",
        help="show the chosen instructions and demos per predictor",
    )
    add_lm_option(
        build,
        help="the LM to optimize with where an optimize block names no `lm`: a litellm model "
        "string or `local` for the local model (default: DSX_LM)",
    )
    add_traceback(build)
    build.set_defaults(func=run)
    return build


def run(args: argparse.Namespace) -> int:
    from dsx.cli._lm import lm_settings, model_name, parse_lm_options
    from dsx.compiler.build import BuildError, build, explain
    from dsx.errors import DsxError

    path = Path(args.file)
    if not path.is_file():
        return err(f"{path}: no such file")
    if path.suffix != ".dsx":
        return err(f"{path}: dsx build takes a .dsx file")
    try:
        options = parse_lm_options(args.lm_option, model_name(args.lm))
    except DsxError as exc:
        return err(str(exc))
    try:
        result = build(
            path,
            out=args.out,
            emit=args.emit,
            lm=args.lm,  # the build driver reads DSX_LM itself
            log=lambda m: print(m, file=sys.stderr),
            lm_factory=lm_settings,
            lm_options=options,
        )
    except BuildError as exc:
        print(f"dsx build: {exc}", file=sys.stderr)
        if "error(s)" in str(exc):
            from dsx.compiler.analysis import analyze_path
            from dsx.diagnostics import render_text

            analysis = analyze_path(path)
            for d in analysis.errors:
                print(render_text(d, analysis.source(d.span.file)) + "\n", file=sys.stderr)
        return 1
    for written in result.written:
        print(f"wrote {written}")
    if result.unit.optimizes and not result.optimized:
        print("nothing to optimize: every optimize block is unchanged since the last build")
    if args.explain:
        print(explain(result.unit))
    return 0
