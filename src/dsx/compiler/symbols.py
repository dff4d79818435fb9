"""Symbols and references collected while checking: what go-to-definition, find-references,
rename, hover and completion are built on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsx.diagnostics import Span

__all__ = ["Member", "PredType", "Reference", "Symbol"]


@dataclass(frozen=True, slots=True)
class Symbol:
    """A named thing. ``key`` is unique in a unit: ``QA``, ``QA.question`` (field),
    ``RAG.answer`` (sub-module), ``RAG(k)`` (module parameter), ``RAG.forward.q`` (forward
    parameter), ``Citation.source`` (record field), ``Verdict.supported`` (enum member).

    Frozen: a pass that learns more about a symbol (a signature's fields, a program's
    inputs) replaces it (:meth:`dsx.compiler._records.Records.describe`)."""

    key: str
    name: str
    kind: str
    span: Span  # the defining identifier
    decl: Any = None
    detail: str = ""  # one line for hover / completion
    doc: str = ""
    container: str | None = None  # key of the enclosing symbol


@dataclass(frozen=True, slots=True)
class Reference:
    span: Span
    key: str


@dataclass(slots=True)
class PredType:
    """The static type of a predictor call's result: its output fields."""

    owner: str  # what produced it, for messages: "`answer` (ChainOfThought(GenerateAnswer))"
    fields: dict[str, Any]  # name -> ir.TypeRef | None
    keys: dict[str, str] = field(default_factory=dict)  # name -> symbol key


@dataclass(frozen=True, slots=True)
class Member:
    """Something an editor offers after ``value.`` or inside ``call(...)``: an output or
    record field, or a keyword input."""

    name: str
    kind: str  # output | record_field | input
    detail: str
    key: str | None = None  # its symbol key, when it has one
    doc: str = ""
