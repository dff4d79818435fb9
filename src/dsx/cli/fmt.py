"""``dsx fmt``: format .dsx files in place, or check / show what formatting would change.

The work is done by :mod:`dsx.compiler.formatter`.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["add_parser", "run"]

#: Exit codes: all formatted (or nothing to change), something to report, bad usage.
EXIT_OK, EXIT_CHANGES_OR_ERRORS, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fmt`` to the sub-commands of the ``dsx`` parser; returns its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fmt",
        help="format .dsx files",
        description=(
            "Rewrite .dsx files in the one canonical layout: 4-space indentation, aligned "
            "fields and members, long calls one argument per line. Comments are kept and "
            "the meaning never changes; a declaration with a syntax error is left as "
            "written while the rest of its file is formatted."
        ),
        epilog=(
            "exit status: 0 when done (or, with --check, nothing would change); 1 when a "
            "file has syntax errors or, with --check, would be reformatted; 2 when a file "
            "is missing, unreadable or cannot be written."
        ),
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a .dsx file, a directory (formats every **/*.dsx in it), or - for stdin to stdout",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; list the files that would be reformatted and exit 1 if any",
    )
    parser.add_argument(
        "--diff",
        action="store_true",
        help="write nothing; print a unified diff of what formatting would change",
    )
    parser.set_defaults(func=run)
    return parser


def _expand(paths: list[str], err: TextIO) -> tuple[list[str], bool]:
    """The files named by ``paths`` (directories expanded) and whether one is missing."""
    files: list[str] = []
    missing = False
    for raw in paths:
        if raw == "-":
            files.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.dsx") if p.is_file())
            if not found:
                print(f"dsx fmt: {raw}: no .dsx files in this directory", file=err)
            files.extend(str(p) for p in found)
        elif path.exists():
            files.append(raw)
        else:
            print(f"dsx fmt: {raw}: no such file or directory", file=err)
            missing = True
    return list(dict.fromkeys(files)), missing


def _read(name: str) -> str:
    from dsx._textfile import read_text

    if name == "-":
        return sys.stdin.read()
    # Line endings are kept as they are (the formatter is told about CRLF below); a FIFO
    # with no writer reads as empty instead of hanging.
    return read_text(name, what=".dsx file")


def _report_errors(shown: str, text: str, diagnostics: list[Any], err: TextIO) -> None:
    from dsx.diagnostics import DiagnosticCode, SourceFile

    source = SourceFile(shown, text)
    for d in diagnostics:
        line, col = source.position(d.span.start)
        kind = "syntax error" if d.code == DiagnosticCode.SYNTAX_ERROR else f"error[{d.code}]"
        print(
            f"{shown}:{line}:{col}: {kind}: {d.message} (formatted the rest, left the bad block as is)",
            file=err,
        )


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``dsx fmt`` for parsed ``args`` (``files``, ``check``, ``diff``); returns the exit code."""
    from dsx._files import atomic_write
    from dsx._textfile import TextFileError
    from dsx.compiler.formatter import format_with_diagnostics
    from dsx.diagnostics import display_path

    out = out or sys.stdout
    err = err or sys.stderr
    check, diff = bool(getattr(args, "check", False)), bool(getattr(args, "diff", False))
    files, unusable = _expand(list(args.files), err)
    errors = would_change = 0
    for name in files:
        shown = "<stdin>" if name == "-" else display_path(name)
        try:
            text = _read(name)
        except TextFileError as exc:
            print(f"dsx fmt: {exc}", file=err)
            unusable = True
            continue
        except (OSError, UnicodeDecodeError) as exc:  # stdin
            print(f"dsx fmt: {shown}: cannot read ({exc})", file=err)
            unusable = True
            continue
        normalized = text.replace("\r\n", "\n")  # what the formatter parses
        formatted, diagnostics = format_with_diagnostics(normalized, name)
        _report_errors(shown, normalized, diagnostics, err)
        errors += bool(diagnostics)
        changed = formatted != text
        if diff and changed:
            out.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    formatted.splitlines(keepends=True),
                    fromfile=shown,
                    tofile=f"{shown} (formatted)",
                )
            )
        if check:
            if changed:
                would_change += 1
                print(f"would reformat {shown}", file=out)
        elif diff:
            pass
        elif name == "-":
            out.write(formatted)
        elif changed:
            try:
                # A crash leaves the old file or the new one, whole, with its mode.
                atomic_write(Path(name), formatted, fsync=False, make_parents=False)
            except OSError as exc:  # a read-only directory, a full disk: the file is unchanged
                print(
                    f"dsx fmt: cannot write {shown}: {exc.strerror or exc}; the file is "
                    "unchanged (make its directory writable, or use --diff to see the changes)",
                    file=err,
                )
                unusable = True
                continue
            print(f"reformatted {shown}", file=err)
    if unusable:
        return EXIT_USAGE
    if errors or would_change:
        return EXIT_CHANGES_OR_ERRORS
    return EXIT_OK
