"""Diagnostics: the one shape every problem in a .dsx file is reported in.

A diagnostic has a code from :data:`REGISTRY`, a severity, a message, a primary span,
related spans with notes, and optionally a fix (text edits). Passes collect them instead of
raising on the first problem. Rendering (rustc-style text, JSON) lives here too; LSP
conversion lives in ``dsx.lsp``.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "REGISTRY",
    "Code",
    "Diagnostic",
    "Edit",
    "Fix",
    "Origin",
    "Related",
    "Severity",
    "SourceFile",
    "Span",
    "render_json",
    "render_text",
]

Severity = Literal["error", "warning", "info"]


class SourceFile:
    """A file's text with a line index, for turning offsets into line/column."""

    __slots__ = ("_line_starts", "path", "text")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        starts = [0]
        find = text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self._line_starts = starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column); columns count code points."""
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def offset(self, line: int, column: int) -> int:
        """Inverse of :meth:`position` (1-based)."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + column - 1, len(self.text))

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)


class Origin:
    """Where a block starts in its file. Spans are stored relative to an origin so that a
    block parsed once can be reused (by an editor) after text above it moved: only the
    origin's ``offset`` changes."""

    __slots__ = ("file", "offset")

    def __init__(self, file: str, offset: int = 0) -> None:
        self.file = file
        self.offset = offset

    def __repr__(self) -> str:
        return f"Origin({self.file!r}, {self.offset})"


class Span:
    """A range of a file: ``start``/``end`` are character offsets (end exclusive)."""

    __slots__ = ("hi", "lo", "origin")

    def __init__(self, origin: Origin | str, lo: int, hi: int) -> None:
        self.origin = Origin(origin) if isinstance(origin, str) else origin
        self.lo = lo
        self.hi = hi

    @property
    def file(self) -> str:
        return self.origin.file

    @property
    def start(self) -> int:
        return self.origin.offset + self.lo

    @property
    def end(self) -> int:
        return self.origin.offset + self.hi

    def cover(self, other: Span) -> Span:
        if other.origin is self.origin:
            return Span(self.origin, min(self.lo, other.lo), max(self.hi, other.hi))
        return Span(self.file, min(self.start, other.start), max(self.end, other.end))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and (self.file, self.start, self.end) == (
            other.file,
            other.start,
            other.end,
        )

    def __hash__(self) -> int:
        return hash((self.file, self.start, self.end))

    def __repr__(self) -> str:
        return f"Span({self.file}:{self.start}-{self.end})"


@dataclass(frozen=True, slots=True)
class Related:
    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Edit:
    span: Span
    new_text: str


@dataclass(frozen=True, slots=True)
class Fix:
    title: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    name: str
    severity: Severity
    doc: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: Severity = "error"
    related: tuple[Related, ...] = field(default=())
    fix: Fix | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def _codes(*entries: tuple[str, str, Severity, str]) -> dict[str, Code]:
    return {c: Code(c, n, s, d) for c, n, s, d in entries}


#: Every diagnostic code dsx can emit. ``docs/diagnostics.md`` documents each; a test
#: checks the two agree.
REGISTRY: dict[str, Code] = _codes(
    (
        "DSX001",
        "syntax-error",
        "error",
        "The block could not be parsed; the message names what was expected.",
    ),
    (
        "DSX002",
        "invalid-string",
        "error",
        "A string literal has a bad escape or an unterminated interpolation.",
    ),
    (
        "DSX003",
        "invalid-signature-shorthand",
        "error",
        'A `signature X = "..."` string is not of the form `a, b: T -> c: T`.',
    ),
    (
        "DSX100",
        "unknown-name",
        "error",
        "A name is used that no declaration, parameter or local variable defines.",
    ),
    (
        "DSX101",
        "unknown-type",
        "error",
        "A type is used that is neither built in nor declared with `type`/`enum`.",
    ),
    (
        "DSX102",
        "duplicate-declaration",
        "error",
        "Two top-level declarations (or imports) share a name.",
    ),
    (
        "DSX103",
        "duplicate-field",
        "error",
        "A signature, type, enum, module or parameter list declares the same name twice.",
    ),
    (
        "DSX104",
        "unknown-signature",
        "error",
        "A predictor is given something that is not a signature.",
    ),
    (
        "DSX105",
        "unknown-module-kind",
        "error",
        "A sub-module is built from something that is neither a built-in module kind nor a declared module.",
    ),
    (
        "DSX106",
        "wrong-declaration-kind",
        "error",
        "A name refers to a declaration of the wrong kind (e.g. a metric where data is expected).",
    ),
    (
        "DSX107",
        "reserved-output-name",
        "error",
        "An output field is named like a method of every prediction (`items`, `keys`, ...).",
    ),
    (
        "DSX108",
        "recursive-type",
        "error",
        "A record type contains itself, directly or through other records.",
    ),
    (
        "DSX110",
        "missing-input",
        "error",
        "A predictor call does not pass a required input of its signature.",
    ),
    (
        "DSX111",
        "unknown-input",
        "error",
        "A predictor call passes an argument its signature has no input for.",
    ),
    (
        "DSX112",
        "unknown-output",
        "error",
        "An output field is read that the predictor's signature does not have.",
    ),
    (
        "DSX113",
        "type-mismatch",
        "error",
        "An argument's statically known type does not fit the parameter or field.",
    ),
    (
        "DSX114",
        "positional-argument",
        "error",
        "A predictor or module is called with positional arguments where keywords are required.",
    ),
    (
        "DSX115",
        "unknown-argument",
        "error",
        "A constructor or call gets a keyword argument it does not accept.",
    ),
    ("DSX116", "missing-argument", "error", "A constructor or call lacks a required argument."),
    (
        "DSX120",
        "import-not-found",
        "error",
        'An `import "file.dsx"` names a file that does not exist.',
    ),
    ("DSX121", "import-cycle", "error", "Files import each other in a cycle."),
    (
        "DSX122",
        "invalid-data",
        "error",
        "A `data` declaration is not `jsonl(...)`, `csv(...)` or `json(...)` with a path and `inputs = [...]`.",
    ),
    (
        "DSX123",
        "invalid-optimize",
        "error",
        "An `optimize` block lacks an optimizer, training data or a metric, or has an unknown setting.",
    ),
    (
        "DSX124",
        "invalid-test",
        "error",
        "A `test` block refers to inputs or outputs its program does not have.",
    ),
    ("DSX125", "missing-forward", "error", "A module declares no `forward` body."),
    ("DSX126", "missing-return", "warning", "A `forward` body has a path that returns nothing."),
    (
        "DSX127",
        "loop-control-outside-loop",
        "error",
        "A `break` or `continue` stands outside a `for` or `while` loop.",
    ),
    (
        "DSX128",
        "unbounded-while",
        "error",
        "A `while` loop has no bound (`while cond max 10 { ... }`), or its bound is not an int.",
    ),
    (
        "DSX129",
        "invalid-assignment-target",
        "error",
        "An assignment's target is neither a name nor an item (`x.y = 1`), or the value cannot be changed.",
    ),
    (
        "DSX130",
        "invalid-is-comparison",
        "error",
        "`is` / `is not` compares with something other than `none`.",
    ),
    (
        "DSX131",
        "invalid-reply",
        "error",
        "A `test` block's scripted `reply` names an output no predictor has, or gives it a value of the wrong type.",
    ),
    (
        "DSX140",
        "invalid-lm",
        "error",
        "An `lm` declaration is not a model name or `fallback(...)`, has an unknown or wrong-typed setting, or a predictor's `lm =` names no declared LM.",
    ),
    (
        "DSX141",
        "invalid-retriever",
        "error",
        "A `retriever` declaration names an unknown kind, lacks a required setting or has an unknown or wrong-typed one, or `Retrieve(...)` names no declared retriever.",
    ),
    ("DSX200", "unused-declaration", "warning", "A declaration is never used."),
    ("DSX201", "unused-variable", "warning", "A local variable is assigned but never read."),
)


def _severity_label(sev: Severity) -> str:
    return sev


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it is inside it."""
    import os

    if path.startswith("<"):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def render_text(diag: Diagnostic, source: SourceFile | None, *, color: bool = False) -> str:
    """rustc-style text: header, location, the source line with carets, notes, fix."""
    red, yellow, blue, bold, reset = (
        ("\x1b[31m", "\x1b[33m", "\x1b[34m", "\x1b[1m", "\x1b[0m") if color else ("",) * 5
    )
    tint = red if diag.severity == "error" else yellow if diag.severity == "warning" else blue
    lines = [f"{bold}{tint}{diag.severity}[{diag.code}]{reset}{bold}: {diag.message}{reset}"]
    if source is None:
        lines.append(f"  --> {display_path(diag.span.file)}")
        return "\n".join(lines)
    line, col = source.position(diag.span.start)
    end_line, end_col = source.position(max(diag.span.start, diag.span.end))
    gutter = " " * len(str(line))
    lines.append(f"{gutter}{blue}-->{reset} {display_path(source.path)}:{line}:{col}")
    text = source.line_text(line)
    width = (end_col - col) if end_line == line else len(text) - col + 1
    lines.append(f"{gutter} {blue}|{reset}")
    lines.append(f"{blue}{line} |{reset} {text}")
    lines.append(f"{gutter} {blue}|{reset} {' ' * (col - 1)}{tint}{'^' * max(1, width)}{reset}")
    for rel in diag.related:
        rline, rcol = source.position(rel.span.start) if rel.span.file == source.path else (0, 0)
        where = (
            f"{display_path(rel.span.file)}:{rline}:{rcol}"
            if rline
            else display_path(rel.span.file)
        )
        lines.append(f"{gutter} {blue}={reset} note: {rel.message} ({where})")
    if diag.fix is not None:
        lines.append(f"{gutter} {blue}={reset} help: {diag.fix.title}")
    return "\n".join(lines)


def to_dict(diag: Diagnostic, source: SourceFile | None) -> dict[str, Any]:
    def loc(span: Span, src: SourceFile | None) -> dict[str, Any]:
        out: dict[str, Any] = {"file": span.file, "start": span.start, "end": span.end}
        if src is not None and span.file == src.path:
            out["line"], out["column"] = src.position(span.start)
            out["end_line"], out["end_column"] = src.position(span.end)
        return out

    return {
        "code": diag.code,
        "name": REGISTRY[diag.code].name if diag.code in REGISTRY else None,
        "severity": diag.severity,
        "message": diag.message,
        "span": loc(diag.span, source),
        "related": [{"message": r.message, "span": loc(r.span, source)} for r in diag.related],
        "fix": None
        if diag.fix is None
        else {
            "title": diag.fix.title,
            "edits": [
                {"span": loc(e.span, source), "new_text": e.new_text} for e in diag.fix.edits
            ],
        },
    }


def render_json(diags: list[tuple[Diagnostic, SourceFile | None]]) -> str:
    return json.dumps([to_dict(d, s) for d, s in diags], indent=2)


def make(code: str, message: str, span: Span, **kw: Any) -> Diagnostic:
    """A diagnostic with the registry's default severity for ``code``."""
    severity = kw.pop("severity", None) or REGISTRY[code].severity
    return Diagnostic(code=code, message=message, span=span, severity=severity, **kw)
