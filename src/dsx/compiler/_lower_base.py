"""Shared state and small helpers of the lowerer (see :mod:`dsx.compiler.lower`).

The lowerer is one class assembled from mixins, one per concern (``_lower_decls``,
``_lower_modules``, ``_lower_exprs``, ``_lower_project``, ``_lower_incremental``). They
all derive from :class:`LowerBase`, which owns the state and declares, for the type
checker only, the methods that one mixin calls on another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler.symbols import Reference, Symbol
from dsx.diagnostics import Diagnostic, DiagnosticCode, Edit, Fix, Related, SourceFile, Span, make
from dsx.grammar import ast, lexspec
from dsx.grammar.parser import ParsedFile

__all__ = ["LowerBase", "_ANY", "_TOP_KINDS", "_Entry", "_ModuleInfo", "_Sub", "_b"]

_TOP_KINDS = {
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
_b = ir.build
_ANY = _b(ir.TypeRef, kind="any")
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
        self.sources: dict[str, SourceFile] = {f.source.path: f.source for f in files}
        self.diagnostics: list[Diagnostic] = []
        self.symbols: dict[str, Symbol] = {}
        self.references: list[Reference] = []
        self.decls: dict[str, tuple[str, Any]] = {}  # top-level name -> (kind, decl)
        self.python: dict[str, ir.PythonImport] = {}
        self._python_names: dict[str, frozenset[str] | None] = {}
        self.signatures: dict[str, ir.Signature] = {}
        self.records: dict[str, ir.Record] = {}
        self.enums: dict[str, ir.Enum] = {}
        self.modules: dict[str, _ModuleInfo] = {}
        self.programs: dict[str, ir.Program] = {}
        self.program_io: dict[str, tuple[dict[str, Any], Any]] = {}
        self.data: dict[str, ir.DataSet] = {}
        self.metrics: dict[str, ir.Metric] = {}
        self.optimizes: list[ir.Optimize] = []
        self.tests: dict[int, ir.Test] = {}  # id(TestDecl) -> IR, in file order
        self._extra_signatures: dict[str, ir.Signature] = {}
        self._all_decls: list[tuple[ParsedFile, Any]] = []
        self.unit: ir.Unit | None = None
        self._forward_owner: str | None = None  # the module whose forward is being lowered
        self._loop_depth = 0  # loops around the statement being lowered (break/continue)
        # Blocks that do not parse: the names they declare (references to them are not
        # "unknown") and every name they mention (declarations they use are not "unused").
        self._broken: set[str] = set()
        self._broken_words: set[str] = set()
        self.collect_broken()

    def collect_broken(self) -> None:
        """What blocks with syntax errors name (again after an edit: :attr:`files` changed).

        A block that does not parse declares its name (references to it are not unknown)
        and mentions its words (declarations it uses are not unused). A block parsed with
        bad lines left out (``Block.recovered``): the words of those lines, so that a
        variable they assigned is not unknown either.
        """
        broken: set[str] = set()
        words: set[str] = set()
        for pf in self.files:
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
        self._broken, self._broken_words = broken, words

    # ---- helpers --------------------------------------------------------------------------
    def _loc(self, span: Span) -> ir.Loc | None:
        source = self.sources.get(span.file)
        if source is None:
            return None
        line, col = source.position(span.start)
        end_line, end_col = source.position(span.end)
        return ir.Loc(span.file, line, col, end_line, end_col)

    def _error(self, code: str, message: str, span: Span, **kw: Any) -> None:
        self.diagnostics.append(make(code, message, span, **kw))

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
        self.symbols.setdefault(
            key, Symbol(key, name, kind, span, decl, detail, doc or "", container)
        )

    def _ref(self, span: Span, key: str) -> None:
        self.references.append(Reference(span, key))

    def _unknown(
        self, code: str, what: str, ident: ast.Ident, candidates: Iterable[str], hint: str = ""
    ) -> None:
        if ident.name in self._broken and code in _MAYBE_BROKEN:
            return  # declared by a block with a syntax error (reported there)
        guess = _env.did_you_mean(ident.name, candidates)
        fix = None
        message = f"unknown {what} `{ident.name}`"
        if guess:
            message += f"; did you mean `{guess}`?"
            fix = Fix(f"replace with `{guess}`", (Edit(ident.span, guess),))
        elif hint:
            message += f"; {hint}"
        self._error(code, message, ident.span, fix=fix)

    def _dup(
        self, ident: ast.Ident, seen: dict[str, Any], node: Any, what: str, owner: str
    ) -> bool:
        if ident.name in seen:
            first = seen[ident.name]
            self._error(
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

    def _base_scope(self) -> dict[str, _Entry]:
        scope: dict[str, _Entry] = {n: _Entry("builtin") for n in _env.BUILTIN_FUNCTIONS}
        for alias in self.python:
            scope[alias] = _Entry("python", None, alias)
        return scope

    if TYPE_CHECKING:
        # What one mixin calls on another, so that each mixin type-checks on its own;
        # mypy checks the implementations against these signatures.
        def _type(self, node: Any) -> ir.TypeRef: ...
        def _shorthand_fields(self, text: ast.Str, owner: str) -> list[ir.Field]: ...
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
        def _lower_record(self, decl: ast.TypeDecl) -> None: ...
        def _lower_enum(self, decl: ast.EnumDecl) -> None: ...
        def _lower_signature(self, decl: ast.SignatureDecl) -> None: ...
        def _lower_program(self, decl: ast.ProgramDecl) -> None: ...
        def _lower_data(self, decl: ast.DataDecl) -> None: ...
        def _lower_metric(self, decl: ast.MetricDecl) -> None: ...
        def _lower_optimize(self, decl: ast.OptimizeDecl) -> None: ...
        def _report_unused(self, all_decls: list[tuple[ParsedFile, Any]]) -> None: ...
        def _finish(self) -> ir.Unit: ...
        def _resource_arg(
            self,
            kind_name: str,
            key: str | None,
            arg: ast.Arg,
            call: ast.Call,
            scope: dict[str, _Entry],
        ) -> list[tuple[str, ir.Expr]] | None: ...
