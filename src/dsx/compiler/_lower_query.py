"""Queries an editor asks of a checked unit: which names are visible where, the static type
of an expression, the members of a type, the inputs a call takes.

Nothing here changes the checker's results: inference runs quietly (diagnostics and
references it would record are dropped).
"""

from __future__ import annotations

from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._entries import _Entry, _Sub
from dsx.compiler._lower_modules import ModuleChecker
from dsx.compiler._pass_project import ProjectTables
from dsx.compiler.symbols import Member, PredType

__all__ = ["Queries"]


class Queries:
    """Editor queries over the module checker's tables and the programs' inputs and outputs
    (what :class:`dsx.compiler.model.SemanticModel` answers with)."""

    __slots__ = ("checker", "project")

    def __init__(self, checker: ModuleChecker, project: ProjectTables) -> None:
        self.checker = checker
        self.project = project

    def scope_at(
        self, module: str | None = None, *, test_program: str | None = None
    ) -> dict[str, Any]:
        """The names visible in ``module``'s forward body (all of its locals included), in a
        test of ``test_program`` (``result`` too), or at the top level; values are opaque
        entries for :meth:`infer` and :meth:`describe_name`."""
        if module is not None:
            info = self.checker.modules.get(module)
            if info is not None and info.scope is not None:
                return dict(info.scope)
            scope = self.checker._base_scope()
            if info is not None:
                for pname, param in info.params.items():
                    scope[pname] = _Entry("param", param.type, f"{module}({pname})")
                for sname, sub in info.subs.items():
                    scope[sname] = _Entry("sub", None, sub.key, sub)
            return scope
        scope = self.checker._base_scope()
        if test_program is not None:
            scope["result"] = _Entry(
                "result", self.project.program_io.get(test_program, ({}, None))[1]
            )
        return scope

    def describe_name(self, entry: Any) -> tuple[str, str | None, str]:
        """``(kind, symbol key, type label)`` of a scope entry."""
        assert isinstance(entry, _Entry)
        label = ""
        if entry.sub is not None:
            label = _sub_label(entry.sub)
        elif isinstance(entry.type, PredType):
            label = f"prediction of {entry.type.owner}"
        elif entry.type is not None:
            label = str(entry.type)
        return entry.kind, entry.key, label

    def infer(self, expr: Any, scope: dict[str, Any]) -> Any:
        """The static type of the AST expression ``expr`` in ``scope`` (``None`` if unknown):
        an ``ir.TypeRef``, a :class:`PredType` for predictions, or a string-literal type."""
        n_diag, n_ref = len(self.checker.diagnostics), len(self.checker.references)
        extra = dict(self.checker._extra_signatures)
        try:
            return self.checker._expr(expr, scope)[1]
        finally:
            del self.checker.diagnostics[n_diag:]
            del self.checker.references[n_ref:]
            self.checker._extra_signatures = extra

    def members_of(self, t: Any) -> list[Member]:
        """What ``value.<name>`` may read on a value of type ``t``."""
        if isinstance(t, PredType):
            out = []
            for name, ftype in t.fields.items():
                key = t.keys.get(name)
                sym = self.checker.symbols.get(key) if key else None
                out.append(
                    Member(
                        name,
                        "output",
                        f"{name}: {ftype if ftype is not None else 'any'}",
                        key,
                        sym.doc if sym else "",
                    )
                )
            return out
        if isinstance(t, ir.TypeRef) and t.kind == "optional" and t.args:
            return self.members_of(t.args[0])
        if isinstance(t, ir.TypeRef) and t.kind == "record" and t.name in self.checker.records:
            rec = self.checker.records[t.name]
            return [
                Member(
                    f.name, "record_field", f"{f.name}: {f.type}", f"{rec.name}.{f.name}", f.desc
                )
                for f in rec.fields
            ]
        return []

    def call_inputs(self, callee: str, scope: dict[str, Any]) -> list[Member] | None:
        """The keyword inputs of calling the member/name ``callee`` in ``scope``; ``None``
        when it is not something dsx checks calls of."""
        entry = scope.get(callee)
        if not isinstance(entry, _Entry) or entry.sub is None:
            return None
        sub = entry.sub.wraps if entry.sub.wraps is not None else entry.sub
        if sub.kind == "Retrieve":
            return [
                Member("query", "input", "query: str", None, "what to search for"),
                Member("k", "input", "k: int", None, "how many passages"),
            ]
        if sub.kind == "module":
            info = self.checker.modules.get(sub.module or "")
            if info is None or info.forward is None:
                return []
            return [
                Member(
                    p.name,
                    "input",
                    f"{p.name}: {p.type or 'any'}",
                    f"{sub.module}.forward.{p.name}",
                    "",
                )
                for p in info.forward.params
            ]
        if sub.signature is None:
            return []
        return [
            Member(
                f.name, "input", f"in {f.name}: {f.type}", f"{sub.signature.name}.{f.name}", f.desc
            )
            for f in sub.signature.inputs
        ]


def _sub_label(sub: _Sub) -> str:
    if sub.kind == "module":
        return f"module {sub.module}"
    inner = sub.signature.name if sub.signature is not None else ""
    if sub.wraps is not None:
        inner = f"module = {sub.wraps.name}"
    kind = _env.KINDS.get(sub.kind)
    return f"{sub.kind}({inner})" if kind is not None else sub.kind
