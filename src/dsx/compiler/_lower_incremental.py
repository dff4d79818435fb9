"""Incremental re-check: after an edit, re-lower only the changed blocks when that is sound."""

from __future__ import annotations

from typing import Any

from dsx import ir
from dsx.compiler._lower_base import LowerBase, _ModuleInfo
from dsx.compiler.symbols import PredType
from dsx.grammar import ast

__all__ = ["IncrementalMixin"]


class IncrementalMixin(LowerBase):
    """Re-checking after an edit: :meth:`relower`."""

    def relower(self, changes: list[tuple[Any, Any]]) -> ir.Unit | None:
        """Re-check after edits, touching only the changed blocks when that is sound.

        ``changes`` pairs each changed block's old and new declaration (``None`` when the
        block does not parse). Sound here: a module whose header (parameters, members,
        forward parameters) is unchanged, whose inferred result stays the same; a test
        block; a block that stopped parsing (its old meaning is kept, its diagnostics go).
        Returns ``None`` when a full run is needed.
        """
        for old, new in changes:
            if old is None:
                return None
            if new is not None and (
                type(old) is not type(new) or not isinstance(new, ast.ModuleDecl | ast.TestDecl)
            ):
                return None
            if isinstance(new, ast.ModuleDecl) and (
                new.name.name != old.name.name
                or _shape(_header(new)) != _shape(_header(old))
                or self.modules.get(old.name.name, _ModuleInfo(old)).decl is not old
            ):
                return None
        for old, new in changes:
            origin = old.span.origin
            self.diagnostics = [d for d in self.diagnostics if d.span.origin is not origin]
            if new is None:
                continue  # keep what the old text declared and referenced
            self.references = [r for r in self.references if r.span.origin is not origin]
            if isinstance(new, ast.ModuleDecl):
                previous = self.modules[old.name.name]
                for key in [k for k, sym in self.symbols.items() if sym.span.origin is origin]:
                    del self.symbols[key]
                info = self.modules[new.name.name] = _ModuleInfo(new)
                self.decls[new.name.name] = ("module", new)
                self._define(
                    new.name.name,
                    new.name.name,
                    "module",
                    new.name.span,
                    new,
                    detail=f"module {new.name.name}",
                    doc=new.doc or "",
                )
                self._module_header(info)
                self._module_forward(new.name.name)
                if not _same_result(previous.returns, info.returns):
                    return None
            else:
                tests: dict[int, ir.Test] = {}
                for test_id, value in self.tests.items():
                    if test_id == id(old):
                        self._lower_test(new)
                        tests[id(new)] = self.tests.pop(id(new))
                    else:
                        tests[test_id] = value
                self.tests = tests
        self._all_decls = [(pf, _replace_decl(d, changes)) for pf, d in self._all_decls]
        self.diagnostics = [d for d in self.diagnostics if d.code != "DSX200"]
        self._report_unused(self._all_decls)
        return self._finish()


def _header(decl: ast.ModuleDecl) -> tuple[Any, ...]:
    params = decl.forward.params if decl.forward is not None else None
    return (decl.params, decl.submodules, params, decl.forward is None)


def _shape(node: Any) -> Any:
    """A comparable structure of an AST value, ignoring spans (what changed, not where)."""
    if isinstance(node, tuple | list):
        return tuple(_shape(n) for n in node)
    if hasattr(node, "__dataclass_fields__"):
        fields = (f for f in node.__dataclass_fields__ if f not in ("span", "keyword"))
        return (type(node).__name__, *(_shape(getattr(node, f)) for f in fields))
    return node


def _same_result(a: Any, b: Any) -> bool:
    if isinstance(a, PredType) and isinstance(b, PredType):
        return a.fields == b.fields and a.keys == b.keys
    return (a is None and b is None) or (
        not isinstance(a, PredType) and not isinstance(b, PredType) and a == b
    )


def _replace_decl(decl: Any, changes: list[tuple[Any, Any]]) -> Any:
    for old, new in changes:
        if decl is old and new is not None:
            return new
    return decl
