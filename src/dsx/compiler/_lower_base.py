"""Shared state and small helpers of the lowerer (see :mod:`dsx.compiler.lower`).

The first passes (declare, types, signatures, resources) are functions over their own
tables (``_pass_declare``, ``_pass_types``, ``_pass_signatures``, ``_pass_resources``),
reporting into one :class:`~dsx.compiler._records.Records`. The later ones are mixins, one
per concern (``_lower_modules``, ``_lower_exprs``, ``_lower_project``,
``_lower_incremental``). They all derive from :class:`LowerBase`, which holds the pass
tables (and exposes them under the names the mixins use), the later passes' state, and
declares, for the type checker only, the methods that one mixin calls on another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._pass_declare import TOP_KINDS, Names
from dsx.compiler._pass_resources import ResourceTables
from dsx.compiler._pass_signatures import SignatureTables, shorthand_fields
from dsx.compiler._pass_types import ANY, TypeTables, resolve_type
from dsx.compiler._records import Records
from dsx.compiler.symbols import Reference, Symbol
from dsx.diagnostics import Diagnostic, SourceFile, Span
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile

__all__ = ["LowerBase", "_ANY", "_TOP_KINDS", "_Entry", "_ModuleInfo", "_Sub", "_b"]

_TOP_KINDS = TOP_KINDS
_b = ir.build
_ANY = ANY


@dataclass(slots=True)
class _Sub:
    name: str
    kind: str  # a KINDS name or "module"
    signature: ir.Signature | None = None
    module: str | None = None
    wraps: _Sub | None = None
    key: str = ""


@dataclass(slots=True)
class _Entry:
    kind: str  # param | local | sub | python | builtin | result | decl
    type: Any = None  # ir.TypeRef | PredType | None
    key: str | None = None
    sub: _Sub | None = None


@dataclass(slots=True)
class _ModuleInfo:
    decl: ast.ModuleDecl
    params: dict[str, ir.Param] = field(default_factory=dict)
    subs: dict[str, _Sub] = field(default_factory=dict)
    submodules: list[ir.Submodule] = field(default_factory=list)
    forward: ir.Forward | None = None
    returns: Any = None
    state: str = "new"  # new | header | lowering | done
    scope: dict[str, _Entry] | None = None  # the forward body's names at its end (editors)


class LowerBase:
    """The lowerer's state and helpers; :class:`dsx.compiler.lower.Lowerer` adds the passes."""

    def __init__(self, files: list[ParsedFile], root: str) -> None:
        self.files = files
        self.root = root
        # What each pass records (see `dsx.compiler.lower.PASSES`): every pass reports into
        # `rec`; declare writes `names`, types `type_tables`, signatures `sig_tables`,
        # resources `res_tables`.
        self.rec = Records({f.source.path: f.source for f in files})
        self.names = Names()
        self.type_tables = TypeTables()
        self.sig_tables = SignatureTables()
        self.res_tables = ResourceTables()
        self.modules: dict[str, _ModuleInfo] = {}
        self.programs: dict[str, ir.Program] = {}
        self.program_io: dict[str, tuple[dict[str, Any], Any]] = {}
        self.data: dict[str, ir.DataSet] = {}
        self.metrics: dict[str, ir.Metric] = {}
        self.optimizes: list[ir.Optimize] = []
        self.tests: dict[int, ir.Test] = {}  # id(TestDecl) -> IR, in file order
        self._all_decls: list[tuple[ParsedFile, Any]] = []
        self.unit: ir.Unit | None = None
        self._forward_owner: str | None = None  # the module whose forward is being lowered
        self._loop_depth = 0  # loops around the statement being lowered (break/continue)
        self.collect_broken()

    def collect_broken(self) -> None:
        """What blocks with syntax errors name (again after an edit: :attr:`files` changed);
        see :meth:`Records.collect_broken`."""
        self.rec.collect_broken(self.files)

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
        # What one mixin calls on another, so that each mixin type-checks on its own;
        # mypy checks the implementations against these signatures.
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
        def _lower_test(self, decl: ast.TestDecl) -> None: ...
        def _lower_program(self, decl: ast.ProgramDecl) -> None: ...
        def _lower_data(self, decl: ast.DataDecl) -> None: ...
        def _lower_metric(self, decl: ast.MetricDecl) -> None: ...
        def _lower_optimize(self, decl: ast.OptimizeDecl) -> None: ...
        def _report_unused(self, all_decls: list[tuple[ParsedFile, Any]]) -> None: ...
        def _finish(self) -> ir.Unit: ...
