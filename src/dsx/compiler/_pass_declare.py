"""The *declare* pass: every top-level name of a unit, and its ``use python`` imports.

Reads the parsed files; writes :class:`Names` (which declaration each top-level name is,
the Python modules ``use`` names and what they define) and reports duplicates, bad module
names and modules that cannot be found into :class:`~dsx.compiler._records.Records`.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._records import Records
from dsx.diagnostics import DiagnosticCode, Related
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile

__all__ = ["TOP_KINDS", "Names", "declare", "declare_all", "lower_use", "register"]

#: The kind of name each top-level declaration defines.
TOP_KINDS: dict[type, str] = {
    ast.SignatureDecl: "signature",
    ast.TypeDecl: "type",
    ast.EnumDecl: "enum",
    ast.ModuleDecl: "module",
    ast.ProgramDecl: "program",
    ast.DataDecl: "data",
    ast.MetricDecl: "metric",
    ast.UseDecl: "python",
    ast.LmDecl: "lm",
    ast.RetrieverDecl: "retriever",
}

_MODULE_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


@dataclass(slots=True)
class Names:
    """What the declare pass records: the unit's top-level names."""

    decls: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (kind, decl)
    python: dict[str, ir.PythonImport] = field(default_factory=dict)  # alias -> import
    # alias -> the names its module defines (None: unknown, anything goes)
    python_names: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def copy(self) -> Names:
        return Names(copy.copy(self.decls), copy.copy(self.python), copy.copy(self.python_names))

    def kind(self, name: str) -> str | None:
        """The kind of the top-level ``name`` (``None`` when nothing declares it)."""
        found = self.decls.get(name)
        return found[0] if found is not None else None

    def owns(self, name: str, decl: Any) -> bool:
        """Whether ``decl`` is what ``name`` declares (not a duplicate of it)."""
        found = self.decls.get(name)
        return found is not None and found[1] is decl


def _ident(decl: Any) -> ast.Ident:
    return decl.alias if isinstance(decl, ast.UseDecl) else decl.name


def register(records: Records, names: Names, decl: Any) -> None:
    """Record ``decl`` as what its name declares (no duplicate check: a re-check after
    an edit re-registers a declaration that was there before)."""
    kind = TOP_KINDS[type(decl)]
    ident = _ident(decl)
    names.decls[ident.name] = (kind, decl)
    records.define(
        ident.name,
        ident.name,
        kind,
        ident.span,
        decl,
        detail=f"{kind} {ident.name}",
        doc=getattr(decl, "doc", None) or "",
    )


def declare(records: Records, names: Names, decl: Any) -> None:
    """Declare ``decl``'s name; a name declared twice is an error at the second."""
    kind = TOP_KINDS.get(type(decl))
    if kind is None:
        return  # import, optimize and test blocks declare no name
    ident = _ident(decl)
    if ident.name in names.decls:
        first_kind, first = names.decls[ident.name]
        records.error(
            DiagnosticCode.DUPLICATE_DECLARATION,
            f"`{ident.name}` is declared twice (first as a {first_kind})",
            ident.span,
            related=(Related(_ident(first).span, f"`{ident.name}` first declared here"),),
        )
        return
    register(records, names, decl)


def lower_use(records: Records, names: Names, decl: ast.UseDecl) -> None:
    """``use python "module" as alias``: the import, and what the module defines (read
    from its source next to the file or on ``sys.path``, never imported)."""
    alias = decl.alias.name
    if not names.owns(alias, decl):
        return
    module = decl.module.value
    loc = records.loc(decl.span)
    if not _MODULE_NAME.fullmatch(module):
        records.error(
            DiagnosticCode.UNKNOWN_NAME,
            f'`{module}` is not a Python module name (use dots: "pkg.module")',
            decl.module.span,
        )
        names.python_names[alias] = None
        names.python[alias] = ir.build(ir.PythonImport, alias=alias, module=module, loc=loc)
        return
    base = Path(decl.span.file).parent
    path, found_names = _env.python_module_names(module, base)
    if path is None and not _found_on_sys_path(module):
        records.error(
            DiagnosticCode.UNKNOWN_NAME,
            f"Python module `{module}` was not found next to {Path(decl.span.file).name} "
            "or on sys.path",
            decl.module.span,
            severity="warning",
        )
    names.python_names[alias] = found_names
    names.python[alias] = ir.build(ir.PythonImport, alias=alias, module=module, loc=loc)


def _found_on_sys_path(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def declare_all(records: Records, names: Names, decls: list[tuple[ParsedFile, Any]]) -> None:
    """The pass: every top-level name in file order, then the ``use python`` imports."""
    for _, decl in decls:
        declare(records, names, decl)
    for _, decl in decls:
        if isinstance(decl, ast.UseDecl):
            lower_use(records, names, decl)
