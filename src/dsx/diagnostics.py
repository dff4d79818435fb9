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
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "REGISTRY",
    "Code",
    "DiagnosticCode",
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


class DiagnosticCode(StrEnum):
    """Every diagnostic code by name: ``DiagnosticCode.UNKNOWN_NAME == "DSX100"``. Passes
    emit these (a misspelt constant fails at import, a misspelt string would be a new code);
    :data:`REGISTRY` gives each one's severity and meaning, and the kebab-case form of the
    constant's name is the code's name (``unknown-name``)."""

    SYNTAX_ERROR = "DSX001"
    INVALID_STRING = "DSX002"
    INVALID_SIGNATURE_SHORTHAND = "DSX003"
    UNKNOWN_NAME = "DSX100"
    UNKNOWN_TYPE = "DSX101"
    DUPLICATE_DECLARATION = "DSX102"
    DUPLICATE_FIELD = "DSX103"
    UNKNOWN_SIGNATURE = "DSX104"
    UNKNOWN_MODULE_KIND = "DSX105"
    WRONG_DECLARATION_KIND = "DSX106"
    RESERVED_OUTPUT_NAME = "DSX107"
    RECURSIVE_TYPE = "DSX108"
    MISSING_INPUT = "DSX110"
    UNKNOWN_INPUT = "DSX111"
    UNKNOWN_OUTPUT = "DSX112"
    TYPE_MISMATCH = "DSX113"
    POSITIONAL_ARGUMENT = "DSX114"
    UNKNOWN_ARGUMENT = "DSX115"
    MISSING_ARGUMENT = "DSX116"
    IMPORT_NOT_FOUND = "DSX120"
    IMPORT_CYCLE = "DSX121"
    INVALID_DATA = "DSX122"
    INVALID_OPTIMIZE = "DSX123"
    INVALID_TEST = "DSX124"
    MISSING_FORWARD = "DSX125"
    MISSING_RETURN = "DSX126"
    LOOP_CONTROL_OUTSIDE_LOOP = "DSX127"
    UNBOUNDED_WHILE = "DSX128"
    INVALID_ASSIGNMENT_TARGET = "DSX129"
    INVALID_IS_COMPARISON = "DSX130"
    INVALID_REPLY = "DSX131"
    INVALID_LM = "DSX140"
    INVALID_RETRIEVER = "DSX141"
    UNUSED_DECLARATION = "DSX200"
    UNUSED_VARIABLE = "DSX201"


def _codes(*entries: tuple[Any, ...]) -> dict[str, Code]:
    """The registry from ``(DiagnosticCode.X, severity, doc)`` entries (or, as before the
    constants, ``("DSXnnn", "name", severity, doc)``: give it a constant too)."""
    out: dict[str, Code] = {}
    for entry in entries:
        if len(entry) == 3:
            code, severity, doc = entry
            name = code.name.lower().replace("_", "-")
        else:
            code, name, severity, doc = entry
        out[str(code)] = Code(str(code), name, severity, doc)
    return out


#: Every diagnostic code dsx can emit. ``docs/diagnostics.md`` documents each; a test
#: checks the two agree.
REGISTRY: dict[str, Code] = _codes(
    (
        DiagnosticCode.SYNTAX_ERROR,
        "error",
        "The block could not be parsed; the message names what was expected.",
    ),
    (
        DiagnosticCode.INVALID_STRING,
        "error",
        "A string literal has a bad escape or an unterminated interpolation.",
    ),
    (
        DiagnosticCode.INVALID_SIGNATURE_SHORTHAND,
        "error",
        'A `signature X = "..."` string is not of the form `a, b: T -> c: T`.',
    ),
    (
        DiagnosticCode.UNKNOWN_NAME,
        "error",
        "A name is used that no declaration, parameter or local variable defines.",
    ),
    (
        DiagnosticCode.UNKNOWN_TYPE,
        "error",
        "A type is used that is neither built in nor declared with `type`/`enum`.",
    ),
    (
        DiagnosticCode.DUPLICATE_DECLARATION,
        "error",
        "Two top-level declarations (or imports) share a name.",
    ),
    (
        DiagnosticCode.DUPLICATE_FIELD,
        "error",
        "A signature, type, enum, module or parameter list declares the same name twice.",
    ),
    (
        DiagnosticCode.UNKNOWN_SIGNATURE,
        "error",
        "A predictor is given something that is not a signature.",
    ),
    (
        DiagnosticCode.UNKNOWN_MODULE_KIND,
        "error",
        "A sub-module is built from something that is neither a built-in module kind nor a declared module.",
    ),
    (
        DiagnosticCode.WRONG_DECLARATION_KIND,
        "error",
        "A name refers to a declaration of the wrong kind (e.g. a metric where data is expected).",
    ),
    (
        DiagnosticCode.RESERVED_OUTPUT_NAME,
        "error",
        "An output field is named like a method of every prediction (`items`, `keys`, ...).",
    ),
    (
        DiagnosticCode.RECURSIVE_TYPE,
        "error",
        "A record type contains itself, directly or through other records.",
    ),
    (
        DiagnosticCode.MISSING_INPUT,
        "error",
        "A predictor call does not pass a required input of its signature.",
    ),
    (
        DiagnosticCode.UNKNOWN_INPUT,
        "error",
        "A predictor call passes an argument its signature has no input for.",
    ),
    (
        DiagnosticCode.UNKNOWN_OUTPUT,
        "error",
        "An output field is read that the predictor's signature does not have.",
    ),
    (
        DiagnosticCode.TYPE_MISMATCH,
        "error",
        "An argument's statically known type does not fit the parameter or field.",
    ),
    (
        DiagnosticCode.POSITIONAL_ARGUMENT,
        "error",
        "A predictor or module is called with positional arguments where keywords are required.",
    ),
    (
        DiagnosticCode.UNKNOWN_ARGUMENT,
        "error",
        "A constructor or call gets a keyword argument it does not accept.",
    ),
    (DiagnosticCode.MISSING_ARGUMENT, "error", "A constructor or call lacks a required argument."),
    (
        DiagnosticCode.IMPORT_NOT_FOUND,
        "error",
        'An `import "file.dsx"` names a file that does not exist.',
    ),
    (DiagnosticCode.IMPORT_CYCLE, "error", "Files import each other in a cycle."),
    (
        DiagnosticCode.INVALID_DATA,
        "error",
        "A `data` declaration is not `jsonl(...)`, `csv(...)` or `json(...)` with a path and `inputs = [...]`.",
    ),
    (
        DiagnosticCode.INVALID_OPTIMIZE,
        "error",
        "An `optimize` block lacks an optimizer, training data or a metric, or has an unknown setting.",
    ),
    (
        DiagnosticCode.INVALID_TEST,
        "error",
        "A `test` block refers to inputs or outputs its program does not have.",
    ),
    (DiagnosticCode.MISSING_FORWARD, "error", "A module declares no `forward` body."),
    (DiagnosticCode.MISSING_RETURN, "warning", "A `forward` body has a path that returns nothing."),
    (
        DiagnosticCode.LOOP_CONTROL_OUTSIDE_LOOP,
        "error",
        "A `break` or `continue` stands outside a `for` or `while` loop.",
    ),
    (
        DiagnosticCode.UNBOUNDED_WHILE,
        "error",
        "A `while` loop has no bound (`while cond max 10 { ... }`), or its bound is not an int.",
    ),
    (
        DiagnosticCode.INVALID_ASSIGNMENT_TARGET,
        "error",
        "An assignment's target is neither a name nor an item (`x.y = 1`), or the value cannot be changed.",
    ),
    (
        DiagnosticCode.INVALID_IS_COMPARISON,
        "error",
        "`is` / `is not` compares with something other than `none`.",
    ),
    (
        DiagnosticCode.INVALID_REPLY,
        "error",
        "A `test` block's scripted `reply` names an output no predictor has, or gives it a value of the wrong type.",
    ),
    (
        DiagnosticCode.INVALID_LM,
        "error",
        "An `lm` declaration is not a model name or `fallback(...)`, has an unknown or wrong-typed setting, or a predictor's `lm =` names no declared LM.",
    ),
    (
        DiagnosticCode.INVALID_RETRIEVER,
        "error",
        "A `retriever` declaration names an unknown kind, lacks a required setting or has an unknown or wrong-typed one, or `Retrieve(...)` names no declared retriever.",
    ),
    (DiagnosticCode.UNUSED_DECLARATION, "warning", "A declaration is never used."),
    (DiagnosticCode.UNUSED_VARIABLE, "warning", "A local variable is assigned but never read."),
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
    code = str(code)  # a DiagnosticCode is stored as its plain code
    severity = kw.pop("severity", None) or REGISTRY[code].severity
    return Diagnostic(code=code, message=message, span=span, severity=severity, **kw)
