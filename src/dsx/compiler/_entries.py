"""What the checker knows about names inside a unit: a scope's entries (:class:`_Entry`),
a module's members (:class:`_Sub`) and each module's checking state (:class:`_ModuleInfo`).

Shared by the passes from module headers on; :mod:`dsx.compiler.model` turns them into its
public records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsx import ir
from dsx.grammar import ast

__all__ = ["_Entry", "_ModuleInfo", "_Sub"]


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
