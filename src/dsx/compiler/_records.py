"""What every checker pass records about a unit: diagnostics, symbols and references.

Each pass of :mod:`dsx.compiler.lower` reads the tables the passes before it built and
writes its own (:class:`dsx.compiler._pass_declare.Names`,
:class:`dsx.compiler._pass_types.TypeTables`, ...); all of them report into one
:class:`Records`, which the semantic model (:mod:`dsx.compiler.model`) is built from.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler.symbols import Reference, Symbol
from dsx.diagnostics import Diagnostic, DiagnosticCode, Edit, Fix, Related, SourceFile, Span, make
from dsx.grammar import lexspec
from dsx.grammar.parser import ParsedFile

__all__ = ["Records"]

# "Unknown X" codes that a declaration with a syntax error would explain.
_MAYBE_BROKEN = frozenset(
    {
        DiagnosticCode.UNKNOWN_NAME,
        DiagnosticCode.UNKNOWN_TYPE,
        DiagnosticCode.UNKNOWN_SIGNATURE,
        DiagnosticCode.UNKNOWN_MODULE_KIND,
    }
)


@dataclass(slots=True)
class Records:
    """The diagnostics, symbols and references of a unit, and how to add to them."""

    sources: dict[str, SourceFile]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    symbols: dict[str, Symbol] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    # Blocks that do not parse: the names they declare (references to them are not
    # "unknown") and every name they mention (declarations they use are not "unused").
    broken: set[str] = field(default_factory=set)
    broken_words: set[str] = field(default_factory=set)

    def copy(self) -> Records:
        """A copy whose containers can change without changing this one's."""
        return Records(
            copy.copy(self.sources),
            list(self.diagnostics),
            dict(self.symbols),
            list(self.references),
            set(self.broken),
            set(self.broken_words),
        )

    def collect_broken(self, files: Iterable[ParsedFile]) -> None:
        """What blocks with syntax errors name (again after an edit).

        A block that does not parse declares its name (references to it are not unknown)
        and mentions its words (declarations it uses are not unused). A block parsed with
        bad lines left out (``Block.recovered``): the words of those lines, so that a
        variable they assigned is not unknown either.
        """
        broken: set[str] = set()
        words: set[str] = set()
        for pf in files:
            for block in pf.blocks:
                if block.decl is None and block.errors:
                    name = lexspec.declared_name(block.text)
                    if name:
                        broken.add(name)
                    words |= lexspec.names_outside_strings(block.text)
                elif block.recovered:
                    left_out = lexspec.names_outside_strings(block.recovered)
                    broken |= left_out
                    words |= left_out
        self.broken, self.broken_words = broken, words

    def loc(self, span: Span) -> ir.Loc | None:
        source = self.sources.get(span.file)
        if source is None:
            return None
        line, col = source.position(span.start)
        end_line, end_col = source.position(span.end)
        return ir.Loc(span.file, line, col, end_line, end_col)

    def error(self, code: str, message: str, span: Span, **kw: Any) -> None:
        self.diagnostics.append(make(code, message, span, **kw))

    def define(
        self,
        key: str,
        name: str,
        kind: str,
        span: Span,
        decl: Any = None,
        *,
        detail: str = "",
        doc: str = "",
        container: str | None = None,
    ) -> None:
        """Record the symbol ``key`` (the first definition of a key wins)."""
        self.symbols.setdefault(
            key, Symbol(key, name, kind, span, decl, detail, doc or "", container)
        )

    def describe(self, key: str, *, detail: str | None = None, doc: str | None = None) -> None:
        """Replace the symbol ``key``'s hover line and documentation (when it exists)."""
        sym = self.symbols.get(key)
        if sym is not None:
            self.symbols[key] = dataclasses.replace(
                sym,
                detail=sym.detail if detail is None else detail,
                doc=sym.doc if doc is None else doc,
            )

    def ref(self, span: Span, key: str) -> None:
        self.references.append(Reference(span, key))

    def unknown(
        self, code: str, what: str, ident: Any, candidates: Iterable[str], hint: str = ""
    ) -> None:
        """``unknown <what> `name```, with a "did you mean" and its fix when one is close."""
        if ident.name in self.broken and code in _MAYBE_BROKEN:
            return  # declared by a block with a syntax error (reported there)
        guess = _env.did_you_mean(ident.name, candidates)
        fix = None
        message = f"unknown {what} `{ident.name}`"
        if guess:
            message += f"; did you mean `{guess}`?"
            fix = Fix(f"replace with `{guess}`", (Edit(ident.span, guess),))
        elif hint:
            message += f"; {hint}"
        self.error(code, message, ident.span, fix=fix)

    def duplicate(self, ident: Any, seen: dict[str, Any], node: Any, what: str, owner: str) -> bool:
        """Whether ``ident`` names something ``seen`` already in ``owner`` (reported);
        otherwise ``node`` is recorded in ``seen``."""
        if ident.name in seen:
            first = seen[ident.name]
            self.error(
                DiagnosticCode.DUPLICATE_FIELD,
                f"{what} `{ident.name}` appears twice in `{owner}`",
                ident.span,
                related=(
                    Related(
                        first.name.span if hasattr(first, "name") else first.span,
                        "first declared here",
                    ),
                ),
            )
            return True
        seen[ident.name] = node
        return False
