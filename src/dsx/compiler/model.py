"""The semantic model of a checked unit: what the compiler knows, as a public, typed API.

:func:`dsx.compiler.analysis.analyze_source` checks a unit; ``analysis.model`` is a
:class:`SemanticModel` over the result. It answers what editors, ``dsx inspect`` and tools
ask — the top-level declarations, symbols and every reference to them, the names visible in
a forward body or a test, the static type of an expression, the members of a type, the
inputs of a call, and each program's inputs and outputs — so that no consumer reaches into
the lowerer's private state.

The model is a view over what the checker's passes recorded (``dsx.compiler.lower.PASSES``:
the symbols and references every pass reports, the declare pass's names, the types and
signatures passes' tables, the later passes' modules, programs and scopes): it reads them
as they are when asked and copies nothing. An
analysis that an incremental re-check has replaced must not be queried again (its successor
shares and has updated the same state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsx import ir
from dsx.compiler._pass_project import MODULE_OUTPUTS as _MODULE_OUTPUTS
from dsx.compiler.symbols import Member, PredType, Reference, Symbol

if TYPE_CHECKING:
    from dsx.compiler.lower import Lowerer

__all__ = [
    "MODULE_OUTPUTS",
    "Binding",
    "Declaration",
    "Member",
    "ModuleInfo",
    "ModuleMember",
    "PredType",
    "ProgramIO",
    "Reference",
    "Scope",
    "SemanticModel",
    "Symbol",
]

#: Outputs the runtime's modules add to a signature's (ChainOfThought's reasoning, ReAct's
#: steps): what a test's scripted ``reply`` may give besides the signatures' outputs.
MODULE_OUTPUTS: tuple[str, ...] = _MODULE_OUTPUTS


@dataclass(frozen=True, slots=True)
class Declaration:
    """A top-level name: ``kind`` is signature, type, enum, module, program, data, metric,
    python (a ``use python`` alias), lm or retriever; ``node`` is its AST declaration."""

    name: str
    kind: str
    node: Any


@dataclass(frozen=True, slots=True)
class Binding:
    """A name visible at some place: ``kind`` is param, local, sub (a module member),
    python, builtin, result (a test's program result) or decl; ``key`` the symbol it
    means (``None`` for built-ins); ``label`` its type as shown to a user."""

    name: str
    kind: str
    key: str | None
    label: str


@dataclass(frozen=True, slots=True)
class ModuleMember:
    """A module's member (``answer = ChainOfThought(QA)``): ``kind`` is a built-in module
    kind (``Predict``, ``ReAct``, …) or ``module`` for a declared one (then ``module`` names
    it); ``signature`` is the one it calls; ``wraps`` the member a wrapper such as
    ``Refine(module = …)`` runs."""

    name: str
    kind: str
    key: str
    signature: ir.Signature | None = None
    module: str | None = None
    wraps: ModuleMember | None = None


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """A checked module: its AST, parameters, members and lowered ``forward`` (``None``
    when it has none), and the static type of what ``forward`` returns."""

    name: str
    node: Any
    params: Mapping[str, ir.Param]
    members: Mapping[str, ModuleMember]
    submodules: Sequence[ir.Submodule]
    forward: ir.Forward | None
    returns: Any  # ir.TypeRef | PredType | None


@dataclass(frozen=True, slots=True)
class ProgramIO:
    """What a program takes (input name -> its ``ir.Param``) and gives (a
    :class:`PredType` for a prediction, an ``ir.TypeRef``, or ``None`` when unknown)."""

    inputs: Mapping[str, Any]
    outputs: Any


class Scope(Mapping[str, Binding]):
    """The names visible at one place, as :class:`Binding` values. Pass the scope itself
    back to :meth:`SemanticModel.type_of` and :meth:`SemanticModel.call_inputs`."""

    __slots__ = ("_entries", "_model")

    def __init__(self, model: SemanticModel | None, entries: dict[str, Any]) -> None:
        self._model = model
        self._entries = entries

    @classmethod
    def empty(cls) -> Scope:
        """A scope with no names (where nothing was checked)."""
        return cls(None, {})

    def __getitem__(self, name: str) -> Binding:
        entry = self._entries[name]
        assert self._model is not None  # only an empty scope has no model
        kind, key, label = self._model._lowerer.queries.describe_name(entry)
        return Binding(name, kind, key, label)

    def filtered(self, keep: Callable[[Binding], bool]) -> Scope:
        """The names of this scope whose binding ``keep`` accepts."""
        return Scope(self._model, {n: e for n, e in self._entries.items() if keep(self[n])})

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


class SemanticModel:
    """Queries over one checked unit (see the module docstring)."""

    __slots__ = ("_lowerer", "_refs_by_key", "_refs_stamp")

    def __init__(self, lowerer: Lowerer) -> None:
        self._lowerer = lowerer
        self._refs_by_key: dict[str, list[Reference]] = {}
        self._refs_stamp: tuple[int, int] | None = None

    # ---- declarations and symbols ---------------------------------------------------------
    @property
    def symbols(self) -> Mapping[str, Symbol]:
        """Every named thing by key (see :class:`Symbol` for the key forms)."""
        return self._lowerer.rec.symbols

    @property
    def references(self) -> Sequence[Reference]:
        """Every resolved use of a name, in checking order."""
        return self._lowerer.rec.references

    def references_to(self, key: str) -> list[Reference]:
        """The uses of the symbol ``key`` (its definition not included)."""
        refs = self._lowerer.rec.references
        stamp = (id(refs), len(refs))
        if stamp != self._refs_stamp:
            index: dict[str, list[Reference]] = {}
            for ref in refs:
                index.setdefault(ref.key, []).append(ref)
            self._refs_by_key, self._refs_stamp = index, stamp
        return list(self._refs_by_key.get(key, ()))

    def declaration(self, name: str) -> Declaration | None:
        """The top-level declaration ``name`` (the first one when it is declared twice)."""
        found = self._lowerer.names.decls.get(name)
        return Declaration(name, found[0], found[1]) if found is not None else None

    def declarations(self) -> list[Declaration]:
        """Every top-level declaration that has a name, in checking order."""
        return [Declaration(n, k, d) for n, (k, d) in self._lowerer.names.decls.items()]

    # ---- what declarations mean ------------------------------------------------------------
    @property
    def signatures(self) -> Mapping[str, ir.Signature]:
        """Every declared signature by name (inline ones not included)."""
        return self._lowerer.sig_tables.signatures

    def signature(self, name: str) -> ir.Signature | None:
        return self._lowerer.sig_tables.signatures.get(name)

    def record(self, name: str) -> ir.Record | None:
        return self._lowerer.type_tables.records.get(name)

    def enum(self, name: str) -> ir.Enum | None:
        return self._lowerer.type_tables.enums.get(name)

    def module(self, name: str) -> ModuleInfo | None:
        info = self._lowerer.modules.get(name)
        if info is None:
            return None
        return ModuleInfo(
            name,
            info.decl,
            dict(info.params),
            {n: _member(sub) for n, sub in info.subs.items()},
            tuple(info.submodules),
            info.forward,
            info.returns,
        )

    def python_import(self, alias: str) -> ir.PythonImport | None:
        """What ``use python "…" as alias`` imports."""
        return self._lowerer.names.python.get(alias)

    @property
    def python_imports(self) -> Mapping[str, ir.PythonImport]:
        return self._lowerer.names.python

    def program_io(self, name: str) -> ProgramIO | None:
        """The inputs and outputs of ``program name`` (what ``dsx run`` and tests use)."""
        found = self._lowerer.proj_tables.program_io.get(name)
        return ProgramIO(dict(found[0]), found[1]) if found is not None else None

    # ---- names, types and members at a place -----------------------------------------------
    def scope(self, module: str | None = None, *, test_program: str | None = None) -> Scope:
        """The names visible in ``module``'s forward body (all of its locals), in a test of
        ``test_program`` (its ``result`` too), or at the top level."""
        return Scope(self, self._lowerer.queries.scope_at(module, test_program=test_program))

    def type_of(self, expr: Any, scope: Scope) -> Any:
        """The static type of the AST expression ``expr`` in ``scope``: an ``ir.TypeRef``,
        a :class:`PredType`, a string-literal type, or ``None`` when unknown. Checking it
        records nothing."""
        return self._lowerer.queries.infer(expr, scope._entries)

    def members_of(self, t: Any) -> list[Member]:
        """What ``value.<name>`` may read on a value of type ``t``."""
        return self._lowerer.queries.members_of(t)

    def call_inputs(self, callee: str, scope: Scope) -> list[Member] | None:
        """The keyword inputs of calling ``callee`` in ``scope`` (``None`` when dsx does not
        check calls of it)."""
        return self._lowerer.queries.call_inputs(callee, scope._entries)


def _member(sub: Any) -> ModuleMember:
    wraps = _member(sub.wraps) if sub.wraps is not None else None
    return ModuleMember(sub.name, sub.kind, sub.key, sub.signature, sub.module, wraps)
