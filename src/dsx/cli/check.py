"""``dsx check FILE|DIR...``: parse and check .dsx files, print every diagnostic."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    check: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="check .dsx files and report every problem",
        description="Parse and check .dsx files (and what they import); print every diagnostic. "
        "Exit status 1 if there are errors.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help=".dsx files or directories")
    check.add_argument(
        "--format", choices=["text", "json"], default="text", help="output format (default: text)"
    )
    check.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the text output (default: auto, when writing to a terminal)",
    )
    check.set_defaults(func=run)
    return check


def run(args: argparse.Namespace) -> int:
    from dsx._textfile import TextFileError
    from dsx.compiler.analysis import analyze_path
    from dsx.diagnostics import render_json, render_text

    paths = _expand(args.files)
    if paths is None:
        return 2
    if not paths:  # "0 file(s) checked: no problems" would pass a CI that checked nothing
        print("dsx check: no .dsx files to check", file=sys.stderr)
        return 2
    collected = []
    errors = warnings = 0
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    unreadable: list[str] = []
    for path in paths:
        try:
            analysis = analyze_path(path)
        except TextFileError as exc:  # not UTF-8, unreadable: say so and check the rest
            unreadable.append(str(exc))
            print(f"dsx check: {exc}", file=sys.stderr)
            continue
        for diag in analysis.diagnostics:
            source = analysis.source(diag.span.file)
            collected.append((diag, source))
            errors += diag.severity == "error"
            warnings += diag.severity == "warning"
    if args.format == "json":
        print(render_json(collected))
    else:
        for diag, source in collected:
            print(render_text(diag, source, color=color) + "\n")
        summary = f"{len(paths)} file(s) checked: {errors} error(s), {warnings} warning(s)"
        if unreadable:
            summary += f", {len(unreadable)} unreadable"
        print(summary if collected or unreadable else f"{len(paths)} file(s) checked: no problems")
    return 1 if errors or unreadable else 0


def _expand(items: Sequence[str]) -> list[Path] | None:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            # A directory named `x.dsx` is not a source file.
            found = sorted(f for f in p.rglob("*.dsx") if f.is_file())
            if not found:
                print(f"dsx check: {item}: no .dsx files in this directory", file=sys.stderr)
            paths.extend(found)
        elif p.is_symlink() and not p.exists():
            print(
                f"dsx: {item}: a symbolic link that leads nowhere (dangling, or a loop)",
                file=sys.stderr,
            )
            return None
        elif p.exists():
            paths.append(p)  # a FIFO too: reading it never blocks (dsx._textfile)
        else:
            print(f"dsx: {item}: no such file or directory", file=sys.stderr)
            return None
    return paths
