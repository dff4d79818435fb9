"""A program's inputs from the command line: ``-i name=value`` items and ``--jsonl`` rows,
checked against the program's inputs (names and types) before anything runs."""

from __future__ import annotations

import difflib
import json
import sys
from typing import Any

from dsx.cli._common import parse_value
from dsx.errors import DsxError

__all__ = ["input_names", "read_inputs", "read_rows"]


def _inputs(ns: Any, program: str) -> list[tuple[str, Any, bool]]:
    from dsx.compiler.inputs import program_inputs

    return program_inputs(ns.unit, program)


def input_names(ns: Any, program: str) -> list[str]:
    return [name for name, _, _ in _inputs(ns, program)]


def read_inputs(ns: Any, program: str, items: list[str]) -> dict[str, Any]:
    """``-i name=value`` items, checked against the program's inputs and their types."""
    inputs = _inputs(ns, program)
    types = {name: t for name, t, _ in inputs}
    row: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise DsxError(f"--input {item!r}: write it as name=value")
        if key not in types:
            close = difflib.get_close_matches(key, list(types), n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise DsxError(
                f"--input {key}: `{program}` has no input `{key}`.{hint} "
                f"Its inputs: {', '.join(types) or '(none)'}"
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8, kept as surrogates
                raise DsxError(
                    f"--input {key}: the value is not UTF-8 text (the terminal or the script "
                    "sent another encoding); pass it as UTF-8"
                ) from None
        row[key] = _typed_value(ns, key, types[key], text)
    missing = [name for name, _, required in inputs if required and name not in row]
    if missing:
        raise DsxError(
            f"`{program}` needs the input(s) {', '.join(missing)}: pass "
            + " ".join(f"-i {m}=VALUE" for m in missing)
        )
    return row


def _typed_value(ns: Any, name: str, irtype: Any, text: str) -> Any:
    if irtype is None or irtype.kind == "str":
        return text
    value = parse_value(text)
    if irtype.kind == "any":
        return value
    import pydantic

    adapter = pydantic.TypeAdapter(ns.pytype(irtype))
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        if value != text:
            try:
                return adapter.validate_python(text)
            except pydantic.ValidationError:
                pass
        errors = exc.errors()
        problem = errors[0].get("msg", str(exc)) if errors else str(exc)
        raise DsxError(
            f"--input {name}={text!r}: not a valid {irtype} ({problem}). Give JSON for "
            """structured values, e.g. -i tags='["a", "b"]'"""
        ) from None


def read_rows(ns: Any, name: str, args: Any) -> list[dict[str, Any]]:
    """The rows to run: one from ``--input`` items, or one per object of ``--jsonl``."""
    if args.input and args.jsonl:
        raise DsxError("give either --input name=value ... or --jsonl FILE, not both")
    if not args.jsonl:
        return [read_inputs(ns, name, args.input or [])]
    from dsx._textfile import read_text

    lines = read_text(args.jsonl, what="--jsonl file").splitlines()  # a FIFO must not hang
    rows: list[dict[str, Any]] = []
    inputs = _inputs(ns, name)
    known = [n for n, _, _ in inputs]
    required = [n for n, _, req in inputs if req]
    ignored: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise DsxError(f"--jsonl {args.jsonl}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise DsxError(f"--jsonl {args.jsonl}:{number}: expected a JSON object")
        unknown = [k for k in row if k not in known]
        if unknown and all(k in row for k in required):
            # A data file carries the expected outputs too (`dsx eval --data` reads the same
            # file): with every input there, the other fields are labels, not misspellings.
            ignored += [k for k in unknown if k not in ignored]
            row = {k: v for k, v in row.items() if k in known}
        elif unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise DsxError(
                f"--jsonl {args.jsonl}:{number}: `{name}` has no input `{unknown[0]}`.{hint} "
                f"Its inputs: {', '.join(known)}"
            )
        rows.append(row)
    if not rows:
        raise DsxError(f"--jsonl {args.jsonl}: no JSON objects in it (one per line is expected)")
    if ignored:
        print(
            f"dsx: --jsonl {args.jsonl}: not inputs of `{name}`, left out: {', '.join(ignored)}",
            file=sys.stderr,
        )
    return rows
