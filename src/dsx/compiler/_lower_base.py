"""The tables the checker's passes share, and small helpers (see :mod:`dsx.compiler.lower`).

:class:`CheckerBase` is what the module checker is made over (the tables of the passes
before it, and the modules it writes); :class:`LowerBase` adds the files, the project
pass's tables and the unit, for the :class:`~dsx.compiler.lower.Lowerer`. Both expose the
tables under short names (``decls``, ``records``, ``signatures``...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._entries import _Entry, _ModuleInfo, _Sub
from dsx.compiler._pass_declare import TOP_KINDS, Names
from dsx.compiler._pass_project import ProjectPass, ProjectTables
from dsx.compiler._pass_resources import ResourceTables
from dsx.compiler._pass_signatures import SignatureTables, shorthand_fields
from dsx.compiler._pass_types import ANY, TypeTables, resolve_type
from dsx.compiler._records import Records
from dsx.compiler.symbols import Reference, Symbol
from dsx.diagnostics import Diagnostic, SourceFile, Span
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile

__all__ = ["CheckerBase", "LowerBase", "_ANY", "_TOP_KINDS", "_Entry", "_ModuleInfo", "_Sub", "_b"]

_TOP_KINDS = TOP_KINDS
_b = ir.build
_ANY = ANY


class CheckerBase:
    """The tables the module checker reads and writes, and its helpers.

    :class:`~dsx.compiler._lower_modules.ModuleChecker` (module headers and forward bodies,
    on :class:`~dsx.compiler._lower_exprs.ExprChecker`) is made over the tables the passes
    before it built — ``rec`` (every pass reports into it), ``names`` (declare),
    ``type_tables`` (types), ``sig_tables`` (signatures), ``res_tables`` (resources) — and
    writes ``modules``; the lowerer shares the same objects.
    """

    def __init__(
        self,
        rec: Records,
        names: Names,
        type_tables: TypeTables,
        sig_tables: SignatureTables,
        res_tables: ResourceTables,
        modules: dict[str, _ModuleInfo],
    ) -> None:
        self.rec = rec
        self.names = names
        self.type_tables = type_tables
        self.sig_tables = sig_tables
        self.res_tables = res_tables
        self.modules = modules
        self._forward_owner: str | None = None  # the module whose forward is being lowered
        self._loop_depth = 0  # loops around the statement being lowered (break/continue)

    # ---- the pass records, by the names the passes below use -------------------------------
    @property
    def sources(self) -> dict[str, SourceFile]:
        return self.rec.sources

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.rec.diagnostics

    @diagnostics.setter
    def diagnostics(self, value: list[Diagnostic]) -> None:
        self.rec.diagnostics = value

    @property
    def symbols(self) -> dict[str, Symbol]:
        return self.rec.symbols

    @property
    def references(self) -> list[Reference]:
        return self.rec.references

    @references.setter
    def references(self, value: list[Reference]) -> None:
        self.rec.references = value

    @property
    def _broken(self) -> set[str]:
        return self.rec.broken

    @property
    def _broken_words(self) -> set[str]:
        return self.rec.broken_words

    @property
    def decls(self) -> dict[str, tuple[str, Any]]:
        """Top-level name -> ``(kind, declaration)`` (the declare pass's)."""
        return self.names.decls

    @property
    def python(self) -> dict[str, ir.PythonImport]:
        return self.names.python

    @property
    def _python_names(self) -> dict[str, frozenset[str] | None]:
        return self.names.python_names

    @property
    def records(self) -> dict[str, ir.Record]:
        """The IR of each record (the types pass's)."""
        return self.type_tables.records

    @property
    def enums(self) -> dict[str, ir.Enum]:
        return self.type_tables.enums

    @property
    def signatures(self) -> dict[str, ir.Signature]:
        """The IR of each signature (the signatures pass's)."""
        return self.sig_tables.signatures

    @property
    def _extra_signatures(self) -> dict[str, ir.Signature]:
        """Inline signatures (``Predict("q -> a")``) by ``owner_member``."""
        return self.sig_tables.inline

    @_extra_signatures.setter
    def _extra_signatures(self, value: dict[str, ir.Signature]) -> None:
        self.sig_tables.inline = value

    # ---- helpers --------------------------------------------------------------------------
    def _loc(self, span: Span) -> ir.Loc | None:
        return self.rec.loc(span)

    def _error(self, code: str, message: str, span: Span, **kw: Any) -> None:
        self.rec.error(code, message, span, **kw)

    def _define(
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
        self.rec.define(key, name, kind, span, decl, detail=detail, doc=doc, container=container)

    def _ref(self, span: Span, key: str) -> None:
        self.rec.ref(span, key)

    def _unknown(
        self, code: str, what: str, ident: ast.Ident, candidates: Iterable[str], hint: str = ""
    ) -> None:
        self.rec.unknown(code, what, ident, candidates, hint)

    def _dup(
        self, ident: ast.Ident, seen: dict[str, Any], node: Any, what: str, owner: str
    ) -> bool:
        return self.rec.duplicate(ident, seen, node, what, owner)

    def _type(self, node: Any) -> ir.TypeRef:
        return resolve_type(self.rec, self.names, node)

    def _shorthand_fields(self, text: ast.Str, owner: str) -> list[ir.Field]:
        return shorthand_fields(self.rec, self.names, self.type_tables, text, owner)

    def _base_scope(self) -> dict[str, _Entry]:
        scope: dict[str, _Entry] = {n: _Entry("builtin") for n in _env.BUILTIN_FUNCTIONS}
        for alias in self.python:
            scope[alias] = _Entry("python", None, alias)
        return scope

    if TYPE_CHECKING:
        # What the expression checker calls on the module checker (its subclass), so that
        # each type-checks on its own; mypy checks the implementations against these.
        def _module_header(self, info: _ModuleInfo) -> None: ...
        def _module_forward(self, name: str) -> Any: ...
        def _submodule(
            self, name: str, value: Any, scope: dict[str, _Entry], *, owner: str
        ) -> tuple[ir.Submodule, _Sub]: ...
        def _check(self, stmt: ast.Check, scope: dict[str, _Entry]) -> ir.Check: ...
        def _expr(self, e: Any, scope: dict[str, _Entry]) -> tuple[Any, Any]: ...
        def _expr_type_only(self, e: Any, scope: dict[str, _Entry]) -> tuple[Any, Any]: ...
        def _target_types(
            self, targets: tuple[ast.Ident, ...], itype: Any, span: Span
        ) -> list[Any]: ...
        def _check_assignable(
            self, actual: Any, expected: ir.TypeRef | None, span: Span, what: str
        ) -> None: ...
        def _finish(self) -> ir.Unit: ...


class LowerBase(CheckerBase):
    """The lowerer's state: the files, every pass's tables (the module checker's above, the
    project pass's :class:`~dsx.compiler._pass_project.ProjectTables`), and the unit;
    :class:`dsx.compiler.lower.Lowerer` adds the passes."""

    def __init__(self, files: list[ParsedFile], root: str) -> None:
        super().__init__(
            Records({f.source.path: f.source for f in files}),
            Names(),
            TypeTables(),
            SignatureTables(),
            ResourceTables(),
            {},
        )
        self.files = files
        self.root = root
        self.proj_tables = ProjectTables()
        self._all_decls: list[tuple[ParsedFile, Any]] = []
        self.unit: ir.Unit | None = None
        self.collect_broken()

    def collect_broken(self) -> None:
        """What blocks with syntax errors name (again after an edit: :attr:`files` changed);
        see :meth:`Records.collect_broken`."""
        self.rec.collect_broken(self.files)

    @property
    def programs(self) -> dict[str, ir.Program]:
        """The IR of each program (the project pass's, as are the tables below)."""
        return self.proj_tables.programs

    @property
    def program_io(self) -> dict[str, tuple[dict[str, Any], Any]]:
        return self.proj_tables.program_io

    @property
    def data(self) -> dict[str, ir.DataSet]:
        return self.proj_tables.data

    @property
    def metrics(self) -> dict[str, ir.Metric]:
        return self.proj_tables.metrics

    @property
    def optimizes(self) -> list[ir.Optimize]:
        return self.proj_tables.optimizes

    @optimizes.setter
    def optimizes(self, value: list[ir.Optimize]) -> None:
        self.proj_tables.optimizes = value

    @property
    def tests(self) -> dict[int, ir.Test]:
        """``id(TestDecl)`` -> its IR, in file order."""
        return self.proj_tables.tests

    @tests.setter
    def tests(self, value: dict[int, ir.Test]) -> None:
        self.proj_tables.tests = value

    def _project(self) -> ProjectPass:
        """The project pass over this lowerer's tables (cheap: made where it is run)."""
        return ProjectPass(
            self.rec,
            self.names,
            self.type_tables,
            self.sig_tables,
            self.proj_tables,
            self.checker,  # what the project pass asks of the module checker
            self.root,
        )

    if TYPE_CHECKING:
        # Made by `dsx.compiler.lower.Lowerer` (which imports the checker's modules).
        from dsx.compiler._lower_modules import ModuleChecker

        checker: ModuleChecker

        def _make_checker(self) -> ModuleChecker: ...
