"""How the command line reports an exception: its type, where in the .dsx source, a hint.

``--traceback`` prints the whole chain instead of the short form.
"""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path
from typing import TextIO

__all__ = ["dsx_location", "format_error", "report_error"]

_NOTE = re.compile(r"^\s*at (?P<file>.+):(?P<line>\d+):(?P<col>\d+) \(\.dsx source\)\s*$")


def dsx_location(exc: BaseException) -> tuple[str, int, int] | None:
    """The innermost ``.dsx`` location the interpreter noted on ``exc`` (or its causes)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for note in getattr(current, "__notes__", ()) or ():
            m = _NOTE.match(str(note))
            if m:
                return m["file"], int(m["line"]), int(m["col"])
        current = current.__cause__ or current.__context__
    return None


def _hint(exc: BaseException) -> str | None:
    from dsx.errors import AdapterParseError, DsxError, LMError

    if isinstance(exc, LMError):
        return None  # its message already says what to do
    if isinstance(exc, AdapterParseError):
        return (
            "the model's reply did not fit the output fields; a stronger model, demos "
            "(`dsx optimize`) or the JSON adapter usually help"
        )
    if isinstance(exc, DsxError):
        return None
    inside = _raised_inside_dsx(exc)
    if inside == "_interp.py" and dsx_location(exc) is not None:
        return "an operation in the .dsx program failed on the values it was given"
    if inside:
        return "this looks like a bug in dsx; please report it with the output of --traceback"
    return (
        "this was raised by Python code the program calls (a tool, a metric or a "
        "`use python` function), not by dsx"
    )


def _raised_inside_dsx(exc: BaseException) -> str | None:
    """The file name when the innermost frame of ``exc``'s traceback is dsx's own code."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    package = Path(__file__).resolve().parent
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    try:
        where.relative_to(package)
    except ValueError:
        return None
    return where.name


def format_error(exc: BaseException, *, prefix: str = "error") -> str:
    """``error: TypeError: ...``, then the .dsx location with its source line, then a hint."""
    text = str(exc).strip() or "(no message)"
    notes = [n for n in getattr(exc, "__notes__", ()) or () if not _NOTE.match(str(n))]
    lines = [f"{prefix}: {type(exc).__name__}: {text}"]
    lines.extend(f"  {n.strip()}" for n in notes)
    loc = dsx_location(exc)
    if loc is not None:
        file, line, col = loc
        lines.append(f"  --> {file}:{line}:{col}")
        source = _source_line(file, line)
        if source is not None:
            width = len(str(line))
            lines.append(f"  {' ' * width} |")
            lines.append(f"  {line} | {source}")
            lines.append(f"  {' ' * width} | {' ' * max(col - 1, 0)}^")
    hint = _hint(exc)
    if hint:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)


def report_error(
    exc: BaseException,
    *,
    show_traceback: bool = False,
    prefix: str = "error",
    stream: TextIO | None = None,
) -> None:
    """Print ``exc`` for a person: the short form, or the whole chain with ``--traceback``."""
    out = stream if stream is not None else sys.stderr
    if show_traceback:
        traceback.print_exception(exc, file=out)
        loc = dsx_location(exc)
        if loc is not None:
            print(f"(.dsx source: {loc[0]}:{loc[1]}:{loc[2]})", file=out)
        return
    print(format_error(exc, prefix=prefix), file=out)
    print("  (run again with --traceback to see the whole chain)", file=out)


def _source_line(file: str, line: int) -> str | None:
    try:
        lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return lines[line - 1].rstrip() if 0 < line <= len(lines) else None
