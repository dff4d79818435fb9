"""Incremental re-check: after an edit, re-lower only the changed blocks when that is sound."""

from __future__ import annotations

import copy
import re
from typing import Any, Self

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._lower_base import _TOP_KINDS, LowerBase, _ModuleInfo
from dsx.compiler._pass_declare import register
from dsx.compiler._pass_signatures import lower_signatures
from dsx.compiler._pass_types import lower_types
from dsx.compiler.symbols import PredType
from dsx.diagnostics import DiagnosticCode
from dsx.grammar import ast

__all__ = ["Rechecking"]

_RESOURCES = (ast.LmDecl, ast.RetrieverDecl)


class Rechecking(LowerBase):
    """Re-checking after an edit (:meth:`relower`) and trial copies (:meth:`fork`): the
    half of the lowerer that re-runs passes; :class:`dsx.compiler.lower.Lowerer` adds the
    full run."""

    _renames_ok = False  # set by each relower call

    def fork(self) -> Self:
        """A copy whose re-checks leave this lowerer as it is (what a rename's trial check
        runs on). Containers are copied; what they hold is shared, and a re-check replaces
        entries rather than changing them."""
        other = copy.copy(self)
        for name, value in vars(self).items():
            if type(value) in (dict, list, set):
                setattr(other, name, copy.copy(value))
        other.rec = self.rec.copy()
        other.names = self.names.copy()
        other.type_tables = self.type_tables.copy()
        other.sig_tables = self.sig_tables.copy()
        other.proj_tables = self.proj_tables.copy()
        other.res_tables = self.res_tables.copy()
        other.modules = copy.copy(self.modules)
        other.checker = other._make_checker()  # over the copies
        return other

    def relower(self, changes: list[tuple[Any, Any]], *, renames: bool = False) -> ir.Unit | None:
        """Re-check after edits, touching only the changed blocks when that is sound.

        ``changes`` pairs each changed block's old and new declaration (``None`` when the
        block does not parse). Sound here: a module whose header (parameters, members,
        forward parameters) is unchanged, whose inferred result stays the same; a test
        block; a block that stopped parsing (its old meaning is kept, its diagnostics go).
        Returns ``None`` when a full run is needed.

        Any other edit that keeps the declaration's name re-checks the declaration and
        what refers to it (:meth:`_relower_dependents`). A block that parses again after a
        syntax error is matched with the meaning kept for it meanwhile.

        ``renames``: a top-level declaration may also change its name (a rename's trial
        check).
        """
        self._renames_ok = renames
        resolved = self._resolve_unparsed(changes)
        if resolved is None:
            return None
        changes = resolved
        for old, new in changes:
            if old is None or isinstance(old, _RESOURCES) or isinstance(new, _RESOURCES):
                return None  # `lm` / `retriever`: a full run (they are few and cheap)
            if new is not None and (
                type(old) is not type(new) or not isinstance(new, ast.ModuleDecl | ast.TestDecl)
            ):
                return self._relower_dependents(changes)
            if isinstance(new, ast.ModuleDecl) and (
                new.name.name != old.name.name
                or _shape(_header(new)) != _shape(_header(old))
                # not registered (declared twice: `module tools` beside `use python ... as
                # tools`), or registered as another declaration
                or getattr(self.modules.get(old.name.name), "decl", None) is not old
            ):
                return self._relower_dependents(changes)
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
                self.checker._module_header(info)
                self.checker._module_forward(new.name.name)
                if not _same_result(previous.returns, info.returns):
                    # What calls it sees another result: re-check those too.
                    return self._relower_dependents(changes, resumed=True)
            else:
                tests: dict[int, ir.Test] = {}
                for test_id, value in self.tests.items():
                    if test_id == id(old):
                        self._project().test(new)
                        tests[id(new)] = self.tests.pop(id(new))
                    else:
                        tests[test_id] = value
                self.tests = tests
        self._all_decls = [(pf, _replace_decl(d, changes)) for pf, d in self._all_decls]
        self.diagnostics = [
            d for d in self.diagnostics if d.code != DiagnosticCode.UNUSED_DECLARATION
        ]
        self._project().report_unused(self._all_decls)
        return self._finish()

    def _resolve_unparsed(self, changes: list[tuple[Any, Any]]) -> list[tuple[Any, Any]] | None:
        """Drop changes between two unparsable texts; pair a block that parses again with
        the declaration kept for it while it did not (same kind and name)."""
        current = {id(b.decl) for f in self.files for b in f.blocks if b.decl is not None}
        olds = {id(old) for old, _ in changes if old is not None}
        orphans = [d for _, d in self._all_decls if id(d) not in current and id(d) not in olds]
        out = []
        for old, new in changes:
            if old is None:
                if new is None:
                    continue  # did not parse, still does not: nothing was checked there
                match = next(
                    (d for d in orphans if type(d) is type(new) and _ident(d) == _ident(new)),
                    None,
                )
                if match is None:
                    return None
                orphans.remove(match)
                old = match
            out.append((old, new))
        return out

    # ---- edits to any other declaration: re-check it and what depends on it ----------------
    def _relower_dependents(
        self, changes: list[tuple[Any, Any]], *, resumed: bool = False
    ) -> ir.Unit | None:
        """Re-check the changed declarations and, transitively, every declaration that
        refers to one of them (the references recorded while checking say who). Names must
        stay the same: a renamed, added or removed declaration needs a full run.

        ``resumed``: the module fast path already re-checked some changed blocks (and
        registered their new declarations) before finding that more is needed."""
        renamed: dict[str, str] = {}  # old name -> new name
        for old, new in changes:
            if old is None or isinstance(old, ast.UseDecl | ast.ImportDecl):
                return None
            name = _top_name(old)
            if new is not None and (type(old) is not type(new) or _top_name(new) != name):
                if not self._renamable(old, new):
                    return None
                renamed[name or ""] = _top_name(new) or ""
            registered = self.decls.get(name, ("", None))[1] if name is not None else old
            if registered is not old and not (resumed and registered is new):
                return None  # a duplicate declaration: its diagnostics depend on the other
        decls = [d for _, d in self._all_decls]
        by_id = {id(d): d for d in decls}
        by_origin = {id(d.span.origin): d for d in decls}
        # Who refers to what: declaration -> the top-level names its references lead to.
        users: dict[str, set[int]] = {}
        for ref in self.references:
            user = by_origin.get(id(ref.span.origin))
            if user is None:
                continue
            target = ref.key.split(".", 1)[0].split("(", 1)[0]
            users.setdefault(target, set()).add(id(user))
        affected: dict[int, Any] = {}
        work = [old for old, new in changes if new is not None]
        for old in work:
            affected[id(old)] = old
        while work:
            decl = work.pop()
            name = _top_name(decl)
            if name is None:
                continue
            for user_id in users.get(name, ()):
                if user_id not in affected:
                    affected[user_id] = by_id[user_id]
                    work.append(by_id[user_id])
        if any(isinstance(d, ast.SignatureDecl | ast.ModuleDecl) for d in affected.values()):
            # A scripted `reply { field = ... }` may name an output of any signature,
            # inline ones included: whether it exists is not a reference to follow.
            for d in decls:
                if isinstance(d, ast.TestDecl) and any(
                    isinstance(item, ast.ReplyItem) and item.text is None for item in d.items
                ):
                    affected.setdefault(id(d), d)
        if any(isinstance(d, ast.UseDecl | ast.ImportDecl) for d in affected.values()):
            return None
        if any(new is None and id(old) in affected for old, new in changes):
            return None  # a block that stopped parsing keeps its last meaning: not re-checked
        if renamed and self._new_names_used_elsewhere(renamed, affected, changes):
            return None
        changed_new = {id(old): new for old, new in changes}
        for decl in affected.values():
            name = _top_name(decl)
            registered = self.decls.get(name, ("", None))[1] if name is not None else decl
            if registered is not decl and not (resumed and registered is changed_new.get(id(decl))):
                return None  # a duplicate: its "declared twice" error belongs to the full run
        if any(isinstance(d, ast.OptimizeDecl) for d in affected.values()):
            for d in decls:  # optimize results form one list: redo them all, in order
                if isinstance(d, ast.OptimizeDecl):
                    affected[id(d)] = d
        # Forget what the affected declarations said, then say it again.
        origins = {id(d.span.origin) for d in affected.values()}
        origins |= {id(old.span.origin) for old, new in changes if new is None}
        # (after the fast path, what the new blocks said so far goes too)
        origins |= {id(new.span.origin) for old, new in changes if new is not None}
        self.diagnostics = [d for d in self.diagnostics if id(d.span.origin) not in origins]
        kept = {id(old.span.origin) for old, new in changes if new is None}
        self.references = [
            r
            for r in self.references
            if id(r.span.origin) not in origins or id(r.span.origin) in kept
        ]
        for key in [k for k, sym in self.symbols.items() if id(sym.span.origin) in origins]:
            if id(self.symbols[key].span.origin) not in kept:
                del self.symbols[key]
        for old, new in changes:
            if new is not None and _top_name(old) in renamed:
                self._forget_name(old)
        new_of = {id(old): new for old, new in changes if new is not None}
        self._all_decls = [(pf, new_of.get(id(d), d)) for pf, d in self._all_decls]
        todo_ids = {id(new_of.get(i, d)) for i, d in affected.items()}
        order = [d for _, d in self._all_decls if id(d) in todo_ids]
        for old, new in changes:
            if new is not None and isinstance(new, ast.TestDecl):
                self.tests = {(id(new) if k == id(old) else k): v for k, v in self.tests.items()}
        extra = dict(self._extra_signatures)
        tables: dict[type, list[dict[str, Any]]] = {
            ast.SignatureDecl: [self.signatures],
            ast.TypeDecl: [self.records],
            ast.EnumDecl: [self.enums],
            ast.ProgramDecl: [self.programs, self.program_io],
            ast.DataDecl: [self.data],
            ast.MetricDecl: [self.metrics],
        }
        before = {id(t): dict(t) for ts in tables.values() for t in ts}
        for decl in order:
            if type(decl) in _TOP_KINDS:
                register(self.rec, self.names, decl)
        lower_types(self.rec, self.names, self.type_tables, order)
        lower_signatures(self.rec, self.names, self.type_tables, self.sig_tables, order)
        modules = [d for d in order if isinstance(d, ast.ModuleDecl)]
        for decl in modules:
            self.modules[decl.name.name] = _ModuleInfo(decl)
        for decl in modules:
            self.checker._module_header(self.modules[decl.name.name])
        for decl in modules:
            self.checker._module_forward(decl.name.name)
        project = self._project()
        for decl in order:
            if isinstance(decl, ast.ProgramDecl):
                project.program(decl)
            elif isinstance(decl, ast.DataDecl):
                project.data(decl)
            elif isinstance(decl, ast.MetricDecl):
                project.metric(decl)
        # Inline signatures (`Predict("q -> a")`) the re-checked declarations no longer make
        # (under their old member names too: a renamed member's signature goes) — before
        # the test blocks, whose scripted replies may name any signature's outputs.
        owners = [*order, *(old for old, _ in changes)]
        for key, value in extra.items():
            if self._extra_signatures.get(key) is value and _inline_owner(key, owners):
                del self._extra_signatures[key]
        if any(isinstance(d, ast.OptimizeDecl) for d in order):
            self.optimizes = []
        for decl in order:
            if isinstance(decl, ast.OptimizeDecl):
                project.optimize(decl)
            elif isinstance(decl, ast.TestDecl):
                project.test(decl)
        # What a re-checked declaration no longer defines (now an error) must go: an entry
        # that was not set again is stale. (Deleting afterwards keeps the dicts' order.)
        for decl in order:
            name = _top_name(decl)
            for table in tables.get(type(decl), ()):
                if name in table and table[name] is before[id(table)].get(name):
                    del table[name]
        # An entry set again after it had gone (a declaration that failed, then checked
        # again; a renamed one) went to the end: put each table back in declaration order,
        # as a full run builds it (the IR lists declarations in that order).
        position: dict[str, int] = {}
        for i, (_, d) in enumerate(self._all_decls):
            position.setdefault(_top_name(d) or "", i)
        last = len(position) + len(self._all_decls)
        for decl_type in {type(d) for d in order}:
            for table in [
                *tables.get(decl_type, ()),
                *([self.modules] if decl_type is ast.ModuleDecl else []),
            ]:
                items = sorted(table.items(), key=lambda kv: position.get(kv[0], last))
                if list(table) != [k for k, _ in items]:
                    table.clear()
                    table.update(items)
        self.diagnostics = [
            d for d in self.diagnostics if d.code != DiagnosticCode.UNUSED_DECLARATION
        ]
        self._project().report_unused(self._all_decls)
        return self._finish()

    # ---- renamed declarations (a rename's trial check) -----------------------------------
    def _renamable(self, old: Any, new: Any) -> bool:
        """Whether ``old`` may become ``new`` (same kind, another name) in a re-check."""
        if not self._renames_ok or type(old) is not type(new):
            return False
        if isinstance(old, _RESOURCES) or _top_name(old) is None:
            return False
        name, new_name = _top_name(old), _top_name(new)
        return (
            new_name is not None
            and new_name not in self.decls
            and new_name not in self._broken
            and new_name not in _env.BUILTIN_FUNCTIONS
            and self.decls.get(name or "", ("", None))[1] is old
            # declared twice: the other one's "declared twice" error would go
            and not any(d is not old and _top_name(d) == name for _, d in self._all_decls)
        )

    def _new_names_used_elsewhere(
        self, renamed: dict[str, str], affected: dict[int, Any], changes: list[tuple[Any, Any]]
    ) -> bool:
        """Whether a block that is not re-checked mentions a new name: what it meant there
        (nothing, or another binding) may change, so only a full run can tell."""
        words = re.compile(
            r"(?<![A-Za-z0-9_])("
            + "|".join(map(re.escape, renamed.values()))
            + r")(?![A-Za-z0-9_])"
        )
        checked = set(affected) | {id(new) for _, new in changes if new is not None}
        for pf in self.files:
            for block in pf.blocks:
                if block.decl is not None and id(block.decl) in checked:
                    continue
                if words.search(block.text):
                    return True
        return False

    def _forget_name(self, old: Any) -> None:
        """Drop what the renamed declaration ``old`` registered under its old name."""
        name = _top_name(old) or ""
        self.decls.pop(name, None)
        tables: dict[type, tuple[dict[str, Any], ...]] = {
            ast.SignatureDecl: (self.signatures,),
            ast.TypeDecl: (self.records,),
            ast.EnumDecl: (self.enums,),
            ast.ModuleDecl: (self.modules,),
            ast.ProgramDecl: (self.programs, self.program_io),
            ast.DataDecl: (self.data,),
            ast.MetricDecl: (self.metrics,),
        }
        for table in tables.get(type(old), ()):
            table.pop(name, None)
        owners = [f"{name}_{s.name.name}" for s in getattr(old, "submodules", ())]
        for key in [*owners, f"{name}_{name}"]:
            self._extra_signatures.pop(key, None)


def _top_name(decl: Any) -> str | None:
    """The name a top-level declaration defines (``None`` for optimize and test blocks)."""
    if isinstance(decl, ast.UseDecl):
        return decl.alias.name
    if isinstance(decl, ast.OptimizeDecl | ast.TestDecl | ast.ImportDecl):
        return None
    return decl.name.name


def _ident(decl: Any) -> str | None:
    """What identifies a declaration among its kind: its name (a test's, an optimize's
    program)."""
    if isinstance(decl, ast.OptimizeDecl):
        return decl.target.name
    if isinstance(decl, ast.TestDecl):
        return decl.name.name
    if isinstance(decl, ast.ImportDecl):
        return decl.path.value
    return _top_name(decl)


def _inline_owner(key: str, decls: list[Any]) -> bool:
    """Whether the inline signature ``key`` (``owner_member``) belongs to one of ``decls``."""
    for decl in decls:
        if isinstance(decl, ast.ModuleDecl):
            if any(key == f"{decl.name.name}_{s.name.name}" for s in decl.submodules):
                return True
        elif isinstance(decl, ast.ProgramDecl) and key == f"{decl.name.name}_{decl.name.name}":
            return True
    return False


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
