"""``dsx from-dspy FILE.py [-o OUT.dsx]``: translate a DSPy program into a ``.dsx`` file.

The work is done by :func:`dsx.compat.dspy.translate_dspy` (which reads the Python file and
never runs it). The command writes the ``.dsx`` text, lists what it left out as
``FILE.py:LINE: why`` on stderr, and checks the file it wrote as ``dsx check`` would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

#: Exit codes: translated (notes are warnings, not failures); the output does not check
#: clean; bad usage or an unreadable / unparsable input.
EXIT_OK, EXIT_CHECK_ERRORS, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``from-dspy`` to the sub-commands of the ``dsx`` parser; returns its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "from-dspy",
        help="translate a DSPy Python program into a .dsx file",
        description=(
            "Read a DSPy program (a .py file; it is parsed, never run) and write the "
            "equivalent .dsx: signatures, modules with their predictors and forward, "
            "programs. The file's own functions stay in Python, reached through "
            "`use python`. Each line that could not be translated is listed as "
            "FILE.py:LINE: why."
        ),
        epilog=(
            "exit status: 0 when written (untranslated lines are listed, not failures); "
            "1 when the written .dsx does not check clean; 2 when the input is missing, "
            "unreadable or not valid Python, or the output cannot be written."
        ),
    )
    parser.add_argument("file", metavar="FILE.py", help="the DSPy program to translate")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT.dsx",
        help="where to write the .dsx (default: FILE.dsx next to FILE.py; - for stdout)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from dsx._textfile import TextFileError, read_text
    from dsx.compat.dspy import translate_dspy

    source_path = Path(args.file)
    if not source_path.is_file():
        print(f"dsx from-dspy: {args.file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = read_text(source_path)
    except TextFileError as exc:
        print(f"dsx from-dspy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        translation = translate_dspy(source, module=source_path.stem)
    except SyntaxError as exc:
        where = f"{args.file}:{exc.lineno}" if exc.lineno else args.file
        print(
            f"dsx from-dspy: {where}: not valid Python ({exc.msg}); fix it so that "
            "`python -m py_compile` accepts it, then translate again",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for note in translation.notes:
        print(f"{args.file}:{note.line}: {note.message}", file=sys.stderr)

    if args.output == "-":
        sys.stdout.write(translation.text)
        return EXIT_OK
    out = Path(args.output) if args.output else source_path.with_suffix(".dsx")
    if out.resolve() == source_path.resolve():
        print(
            f"dsx from-dspy: {out}: the output would overwrite the Python file; "
            "name another with -o OUT.dsx",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        out.write_text(translation.text, encoding="utf-8")
    except OSError as exc:
        print(f"dsx from-dspy: {out}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_USAGE
    left_out = len(translation.notes)
    print(
        f"wrote {out}"
        + (f"; {left_out} line(s) left out (listed above)" if left_out else "; nothing left out")
    )
    if f'use python "{source_path.stem}"' in translation.text and _imports_dspy(source):
        # Running the .dsx imports the Python file, DSPy and its top-level code included.
        print(
            f"note: {out} reaches functions of {args.file} through "
            f'`use python "{source_path.stem}"`, so running it imports {args.file}, which '
            "imports dspy and runs its top-level code; move those functions into a module "
            "of their own without dspy and point the `use python` line at it",
            file=sys.stderr,
        )
    return _check(out)


def _imports_dspy(source: str) -> bool:
    import ast

    return any(
        (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "dspy" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dspy")
        for node in ast.parse(source).body
    )


def _check(path: Path) -> int:
    """Check the written file as ``dsx check`` does; print its diagnostics."""
    from dsx.compiler.analysis import analyze_path
    from dsx.diagnostics import render_text

    analysis = analyze_path(path)
    for diag in analysis.diagnostics:
        print(render_text(diag, analysis.source(diag.span.file), color=False), file=sys.stderr)
    if analysis.errors:
        print(
            f"dsx from-dspy: {path} does not check clean ({len(analysis.errors)} error(s) "
            "above); edit it, or the Python, and run `dsx check` on it",
            file=sys.stderr,
        )
        return EXIT_CHECK_ERRORS
    return EXIT_OK
