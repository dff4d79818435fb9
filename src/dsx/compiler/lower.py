"""Lowering AST → IR, with every check on the way (name resolution, types, calls).

One :class:`Lowerer` handles a unit (a root file and the files it imports). It never
raises for bad input: each problem becomes a diagnostic and lowering goes on with a
best-effort IR, so that an editor gets every error in one pass.

Each pass works over explicit tables, all reporting into one
:class:`~dsx.compiler._records.Records` (diagnostics, symbols, references):

* ``_pass_declare`` (top-level names and ``use python``:
  :class:`~dsx.compiler._pass_declare.Names`), ``_pass_types`` (records, enums, type
  expressions: :class:`~dsx.compiler._pass_types.TypeTables`), ``_pass_signatures``
  (:class:`~dsx.compiler._pass_signatures.SignatureTables`) and ``_pass_resources``
  (``lm`` and ``retriever``: :class:`~dsx.compiler._pass_resources.ResourceTables`) are
  functions;
* module headers and forward bodies are checked by
  :class:`~dsx.compiler._lower_modules.ModuleChecker` (statements; on
  :class:`~dsx.compiler._lower_exprs.ExprChecker`, expressions and calls), made over the
  tables above and writing each module's :class:`~dsx.compiler._entries._ModuleInfo`. One
  object for both: a call's result type needs the callee's forward checked first, so
  forwards are checked on demand, in dependency order;
* :class:`~dsx.compiler._pass_project.ProjectPass` checks programs, data, metrics,
  optimize and test blocks and reports unused declarations
  (:class:`~dsx.compiler._pass_project.ProjectTables`), asking the module checker through
  a narrow interface (:class:`~dsx.compiler._pass_project.Bodies`).

The :class:`Lowerer` holds the tables (``_lower_base``), runs the passes in order
(:data:`PASSES` names each, what it does and the method that runs it), re-runs them after
an edit (``_lower_incremental``) and answers editors' queries through
:class:`~dsx.compiler._lower_query.Queries`; :class:`dsx.compiler.model.SemanticModel` is
the public view over all of it.

IR nodes are built without validation (:func:`dsx.ir.build`, several times cheaper). With
``DSX_VALIDATE_IR=1`` in the environment (the test suite sets it) each finished unit is
validated against the IR's pydantic models, strictly, so that a node built with a wrong
type fails the test that built it instead of surfacing later in codegen or at run time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from dsx import ir
from dsx.compiler._lower_base import _b, _ModuleInfo
from dsx.compiler._lower_incremental import Rechecking
from dsx.compiler._lower_modules import ModuleChecker
from dsx.compiler._lower_query import Queries
from dsx.compiler._pass_declare import declare_all
from dsx.compiler._pass_resources import lower_resources
from dsx.compiler._pass_signatures import lower_signatures
from dsx.compiler._pass_types import lower_types
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile

__all__ = ["PASSES", "Lowerer", "Pass", "validate_unit"]


class Lowerer(Rechecking):
    """Lowers and checks one unit. Use :meth:`run`; results are on the instance."""

    def __init__(self, files: list[ParsedFile], root: str) -> None:
        super().__init__(files, root)
        self.checker = self._make_checker()

    @property
    def queries(self) -> Queries:
        """What editors ask (scopes, types, members, call inputs), over the current tables."""
        return Queries(self.checker, self.proj_tables)

    def _make_checker(self) -> ModuleChecker:
        """The module checker over this lowerer's tables (the same objects)."""
        return ModuleChecker(
            self.rec, self.names, self.type_tables, self.sig_tables, self.res_tables, self.modules
        )

    # ---- driver ---------------------------------------------------------------------------
    def run(self) -> ir.Unit:
        """Run every pass of :data:`PASSES` in order, then build the unit."""
        self._all_decls = [(pf, d) for pf in self.files for d in pf.decls]
        for step in PASSES:
            step.run(self)
        return self._finish()

    # ---- the passes, in order (each reads what the ones before it recorded) ---------------
    def _pass_declare(self) -> None:
        declare_all(self.rec, self.names, self._all_decls)

    def _pass_types(self) -> None:
        lower_types(self.rec, self.names, self.type_tables, [d for _, d in self._all_decls])

    def _pass_signatures(self) -> None:
        lower_signatures(
            self.rec, self.names, self.type_tables, self.sig_tables, [d for _, d in self._all_decls]
        )

    def _pass_resources(self) -> None:
        lower_resources(self.rec, self.names, self.res_tables, [d for _, d in self._all_decls])

    def _pass_module_headers(self) -> None:
        for _, decl in self._all_decls:
            # The default is ("", None), not (None, None): with a None-typed first item,
            # mypy would narrow `decl` by the `is` to `Any | None`.
            if (
                isinstance(decl, ast.ModuleDecl)
                and self.decls.get(decl.name.name, ("", None))[1] is decl
            ):
                self.modules[decl.name.name] = _ModuleInfo(decl)
        for info in list(self.modules.values()):
            self.checker._module_header(info)

    def _pass_forwards(self) -> None:
        for name in list(self.modules):
            self.checker._module_forward(name)

    def _pass_project(self) -> None:
        project = self._project()
        for _, decl in self._all_decls:
            if isinstance(decl, ast.ProgramDecl):
                project.program(decl)
            elif isinstance(decl, ast.DataDecl):
                project.data(decl)
            elif isinstance(decl, ast.MetricDecl):
                project.metric(decl)
        for _, decl in self._all_decls:
            if isinstance(decl, ast.OptimizeDecl):
                project.optimize(decl)
            elif isinstance(decl, ast.TestDecl):
                project.test(decl)

    def _pass_unused(self) -> None:
        self._project().report_unused(self._all_decls)

    def _finish(self) -> ir.Unit:
        self.unit = _b(
            ir.Unit,
            source=self.root,
            files=tuple(f.source.path for f in self.files),
            python=tuple(self.python.values()),
            signatures=tuple(self.signatures.values()) + tuple(self._extra_signatures.values()),
            records=tuple(self.records.values()),
            enums=tuple(self.enums.values()),
            modules=tuple(
                _b(
                    ir.Module,
                    name=name,
                    doc=info.decl.doc or "",
                    params=tuple(info.params.values()),
                    submodules=tuple(info.submodules),
                    forward=info.forward,
                    loc=self._loc(info.decl.name.span),
                )
                for name, info in self.modules.items()
            ),
            programs=tuple(self.programs.values()),
            data=tuple(self.data.values()),
            metrics=tuple(self.metrics.values()),
            optimizes=tuple(self.optimizes),
            tests=tuple(self.tests.values()),
            lms=tuple(self.res_tables.lms.values()),
            retrievers=tuple(self.res_tables.retrievers.values()),
        )
        if os.environ.get("DSX_VALIDATE_IR") == "1":
            validate_unit(self.unit)
        return self.unit


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass of the checker over a unit: its name, what it does, and how to run it."""

    name: str
    doc: str
    run: Callable[[Lowerer], None]


#: The checker's passes, in the order :meth:`Lowerer.run` runs them.
PASSES: tuple[Pass, ...] = (
    Pass(
        "declare",
        "top-level names (duplicates reported) and `use python` imports",
        Lowerer._pass_declare,
    ),
    Pass("types", "records and enums; recursive records", Lowerer._pass_types),
    Pass("signatures", "signatures: fields, types, instructions", Lowerer._pass_signatures),
    Pass("resources", "`lm` and `retriever` declarations", Lowerer._pass_resources),
    Pass(
        "module-headers",
        "each module's parameters and members (what calling it takes)",
        Lowerer._pass_module_headers,
    ),
    Pass(
        "forwards",
        "forward bodies: statements, expressions, calls checked; results typed",
        Lowerer._pass_forwards,
    ),
    Pass(
        "project",
        "programs, data, metrics, then optimize and test blocks",
        Lowerer._pass_project,
    ),
    Pass("unused", "declarations and variables never used (warnings)", Lowerer._pass_unused),
)


def validate_unit(unit: ir.Unit) -> None:
    """Check every node of ``unit`` against the IR's models (strict: no coercion).

    Raises:
        AssertionError: a node has a field of the wrong type — a bug in the lowerer.
    """
    try:
        data = unit.model_dump(warnings="error")
    except ValueError as exc:
        if "Maximum serialization depth" in str(exc):
            return  # nested deeper than pydantic walks (a hostile file): left unchecked
        raise AssertionError(
            f"the checker built an invalid IR for {unit.source} (a dsx bug): {exc}"
        ) from exc
    try:
        ir.Unit.model_validate(data, strict=True)
    except RecursionError:
        return
    except (ValidationError, ValueError, TypeError) as exc:
        raise AssertionError(
            f"the checker built an invalid IR for {unit.source} (a dsx bug): {exc}"
        ) from exc
