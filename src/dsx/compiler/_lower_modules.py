"""Lowering of modules: headers (parameters, members), member construction, ``forward``
bodies and their statements. ``forward`` bodies are lowered on demand, so that a call to
another module can use that module's inferred result type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._lower_base import _b, _Entry, _ModuleInfo, _Sub
from dsx.compiler._lower_exprs import ExprChecker, type_label
from dsx.compiler._pass_resources import resource_arg
from dsx.compiler.symbols import PredType
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Span
from dsx.grammar import ast

__all__ = ["ModuleChecker"]


class ModuleChecker(ExprChecker):
    """Module headers and members, and the statements of ``forward`` bodies."""

    def _module_header(self, info: _ModuleInfo) -> None:
        decl = info.decl
        mname = decl.name.name
        seen: dict[str, Any] = {}
        for p in decl.params:
            if self._dup(p.name, seen, p, "parameter", mname):
                continue
            info.params[p.name.name] = self._param(p, f"{mname}({p.name.name})", mname, {})
        scope = self._base_scope()
        for pname, param in info.params.items():
            scope[pname] = _Entry("param", param.type, f"{mname}({pname})")
        subs_seen: dict[str, Any] = {}
        for sub in decl.submodules:
            if self._dup(sub.name, subs_seen, sub, "member", mname):
                continue
            if sub.name.name in info.params:
                self._error(
                    DiagnosticCode.DUPLICATE_FIELD,
                    f"`{sub.name.name}` is both a parameter and a member of `{mname}`",
                    sub.name.span,
                )
            key = f"{mname}.{sub.name.name}"
            lowered, subinfo = self._submodule(sub.name.name, sub.value, scope, owner=mname)
            subinfo.key = key
            info.subs[sub.name.name] = subinfo
            info.submodules.append(lowered.model_copy(update={"loc": self._loc(sub.name.span)}))
            detail = f"{sub.name.name} = {subinfo.kind}({subinfo.signature.name if subinfo.signature else subinfo.module or ''})"
            self._define(
                key,
                sub.name.name,
                "submodule",
                sub.name.span,
                sub,
                detail=detail,
                doc=sub.doc or "",
                container=mname,
            )
            scope[sub.name.name] = _Entry("sub", None, key, subinfo)
        if decl.forward is None:
            self._error(
                DiagnosticCode.MISSING_FORWARD,
                f"module `{mname}` has no `forward(...) {{ ... }}` body",
                decl.name.span,
            )
        else:
            for p in decl.forward.params:
                self._define(
                    f"{mname}.forward.{p.name.name}",
                    p.name.name,
                    "param",
                    p.name.span,
                    p,
                    container=mname,
                )
        info.state = "header"

    def _param(self, p: ast.Param, key: str, owner: str, scope: dict[str, _Entry]) -> ir.Param:
        type_ = self._type(p.type) if p.type is not None else None
        default = None
        if p.default is not None:
            default, dtype = self._expr(p.default, scope or self._base_scope())
            if type_ is not None:
                self._check_assignable(
                    dtype, type_, p.default.span, f"the default of `{p.name.name}`"
                )
        self._define(
            key,
            p.name.name,
            "param",
            p.name.span,
            p,
            detail=f"{p.name.name}: {type_ or 'any'}",
            container=owner,
        )
        return _b(ir.Param, name=p.name.name, type=type_, default=default)

    def _submodule(
        self, name: str, value: Any, scope: dict[str, _Entry], *, owner: str
    ) -> tuple[ir.Submodule, _Sub]:
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.NameRef)):
            self._error(
                DiagnosticCode.UNKNOWN_MODULE_KIND,
                f"`{name}` must be built with a module kind, e.g. `{name} = Predict(MySignature)`",
                value.span,
            )
            return _b(ir.Submodule, name=name, kind="Predict"), _Sub(name, "Predict")
        kind_name = value.func.name.name
        kind = _env.KINDS.get(kind_name)
        if kind is None:
            decl_kind, _ = self.decls.get(kind_name, (None, None))
            if decl_kind == "module":
                self._ref(value.func.name.span, kind_name)
                return self._user_module_instance(name, value, scope)
            if decl_kind is not None:
                self._ref(value.func.name.span, kind_name)
                self._error(
                    DiagnosticCode.UNKNOWN_MODULE_KIND,
                    f"`{kind_name}` is {_env.a(decl_kind)}, not a module kind",
                    value.func.name.span,
                )
            else:
                candidates = [
                    *_env.KINDS,
                    *(n for n, (k, _) in self.decls.items() if k == "module"),
                ]
                self._unknown(
                    DiagnosticCode.UNKNOWN_MODULE_KIND,
                    "module kind",
                    value.func.name,
                    candidates,
                    "use Predict, ChainOfThought, ReAct, ... or a declared module",
                )
            return _b(ir.Submodule, name=name, kind="Predict"), _Sub(name, "Predict")
        signature = None
        kwargs: list[tuple[str, ir.Expr]] = []
        wraps = None
        positional = [a for a in value.args if a.name is None]
        if kind.takes_signature:
            sig_kwarg = value.kwarg("signature")
            sig_arg = (
                positional[0].value if positional else (sig_kwarg.value if sig_kwarg else None)
            )
            if sig_arg is None:
                self._error(
                    DiagnosticCode.MISSING_ARGUMENT,
                    f'{kind_name} needs a signature: `{kind_name}(MySignature)` or `{kind_name}("question -> answer")`',
                    value.span,
                )
            else:
                signature = self._signature_ref(sig_arg, f"{owner}_{name}")
            extra_pos = positional[1:]
        else:
            extra_pos = positional
        for arg in extra_pos:
            resource = resource_arg(
                self.rec, self.names, self.res_tables, kind_name, None, arg, value, scope
            )  # `Retrieve(wiki)`
            if resource is not None and arg is extra_pos[0]:
                kwargs.extend(resource)
                continue
            self._error(
                DiagnosticCode.POSITIONAL_ARGUMENT,
                f"{kind_name} takes its settings as keywords (`name = value`)",
                arg.span,
            )
        for arg in value.args:
            if arg.name is None or arg.name.name == "signature":
                continue
            key = arg.name.name
            resource = resource_arg(  # `lm = fast`, `rm = wiki`
                self.rec, self.names, self.res_tables, kind_name, key, arg, value, scope
            )
            if resource is not None:
                kwargs.extend(resource)
                continue
            if key not in kind.kwargs:
                guess = _env.did_you_mean(key, kind.kwargs)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),)) if guess else None
                )
                allowed = ", ".join(sorted(kind.kwargs)) or "none"
                self._error(
                    DiagnosticCode.UNKNOWN_ARGUMENT,
                    f"{kind_name} has no setting `{key}`"
                    + (f"; did you mean `{guess}`?" if guess else f" (it accepts: {allowed})"),
                    arg.name.span,
                    fix=fix,
                )
                continue
            if kind.wraps_module and key == "module":
                if (
                    isinstance(arg.value, ast.NameRef)
                    and arg.value.name.name in scope
                    and scope[arg.value.name.name].kind == "sub"
                ):
                    wraps = scope[arg.value.name.name].sub
                    self._ref(arg.value.name.span, scope[arg.value.name.name].key or "")
                    kwargs.append((key, _b(ir.Name, name=arg.value.name.name, loc=None)))
                    continue
                self._error(
                    DiagnosticCode.WRONG_DECLARATION_KIND,
                    f"`module` of {kind_name} must name another member of this module",
                    arg.value.span,
                )
                continue
            lowered, _ = self._expr(arg.value, scope)
            kwargs.append((key, lowered))
        if (
            kind.wraps_module
            and wraps is None
            and not any(k == "module" for k, _ in kwargs)
            and value.kwarg("module") is None
        ):
            self._error(
                DiagnosticCode.MISSING_ARGUMENT,
                f"{kind_name} needs `module = <member>`: the module it runs",
                value.span,
            )
        sub = _Sub(name, kind_name, signature=signature, wraps=wraps)
        return _b(
            ir.Submodule,
            name=name,
            kind=kind_name,
            signature=signature.name if signature else None,
            kwargs=tuple(kwargs),
        ), sub

    def _user_module_instance(
        self, name: str, value: ast.Call, scope: dict[str, _Entry]
    ) -> tuple[ir.Submodule, _Sub]:
        mname = value.func.name.name  # type: ignore[union-attr]
        target = self.modules.get(mname)
        kwargs: list[tuple[str, ir.Expr]] = []
        params = target.decl.params if target else ()
        by_name = {p.name.name: p for p in params}
        for arg in value.args:
            if arg.name is None:
                self._error(
                    DiagnosticCode.POSITIONAL_ARGUMENT,
                    f"module `{mname}` takes keyword arguments (`name = value`)",
                    arg.span,
                )
                continue
            if target is not None and arg.name.name not in by_name:
                guess = _env.did_you_mean(arg.name.name, by_name)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),)) if guess else None
                )
                self._error(
                    DiagnosticCode.UNKNOWN_ARGUMENT,
                    f"module `{mname}` has no parameter `{arg.name.name}`"
                    + (f"; did you mean `{guess}`?" if guess else ""),
                    arg.name.span,
                    fix=fix,
                )
                continue
            self._ref(arg.name.span, f"{mname}({arg.name.name})")
            lowered, atype = self._expr(arg.value, scope)
            p = by_name.get(arg.name.name)
            if p is not None and p.type is not None:
                self._check_assignable(
                    atype,
                    self._type_quiet(p.type),
                    arg.value.span,
                    f"parameter `{arg.name.name}` of `{mname}`",
                )
            kwargs.append((arg.name.name, lowered))
        given = {a.name.name for a in value.args if a.name is not None}
        missing = [p.name.name for p in params if p.default is None and p.name.name not in given]
        if missing:
            self._error(
                DiagnosticCode.MISSING_ARGUMENT,
                f"module `{mname}` needs {', '.join(f'`{m} = ...`' for m in missing)}",
                value.span,
            )
        return _b(ir.Submodule, name=name, kind="module", module=mname, kwargs=tuple(kwargs)), _Sub(
            name, "module", module=mname
        )

    def _type_quiet(self, node: Any) -> ir.TypeRef:
        n = len(self.diagnostics)
        t = self._type(node)
        del self.diagnostics[n:]
        return t

    def _signature_ref(self, arg: Any, anon_name: str) -> ir.Signature | None:
        if isinstance(arg, ast.Str):
            fields = self._shorthand_fields(arg, anon_name)
            ins = ", ".join(f"`{f.name}`" for f in fields if f.direction == "in") or "nothing"
            outs = ", ".join(f"`{f.name}`" for f in fields if f.direction == "out")
            sig = _b(
                ir.Signature,
                name=anon_name,
                instructions=f"From {ins}, produce {outs}.",
                fields=tuple(fields),
                loc=self._loc(arg.span),
            )
            self._extra_signatures[anon_name] = sig
            return sig
        if isinstance(arg, ast.NameRef):
            name = arg.name.name
            kind, _ = self.decls.get(name, (None, None))
            if kind == "signature":
                self._ref(arg.name.span, name)
                return self.signatures.get(name)
            if kind is not None:
                self._ref(arg.name.span, name)
                self._error(
                    DiagnosticCode.UNKNOWN_SIGNATURE,
                    f"`{name}` is {_env.a(kind)}, not a signature",
                    arg.name.span,
                )
            else:
                self._unknown(
                    DiagnosticCode.UNKNOWN_SIGNATURE,
                    "signature",
                    arg.name,
                    [n for n, (k, _) in self.decls.items() if k == "signature"],
                )
            return None
        self._error(
            DiagnosticCode.UNKNOWN_SIGNATURE,
            'expected a signature name or a "inputs -> outputs" string',
            arg.span,
        )
        return None

    def _module_forward(self, name: str) -> Any:
        info = self.modules.get(name)
        if info is None:
            return None
        if info.state in ("done", "lowering"):
            return info.returns
        if info.state == "new":
            self._module_header(info)
        info.state = "lowering"
        fwd = info.decl.forward
        # Forward bodies lower on demand (a call to another module lowers that one first).
        outer_owner, self._forward_owner = self._forward_owner, name
        outer_loops, self._loop_depth = self._loop_depth, 0
        if fwd is not None:
            scope = self._base_scope()
            for pname, param in info.params.items():
                scope[pname] = _Entry("param", param.type, f"{name}({pname})")
            for sname, sub in info.subs.items():
                scope[sname] = _Entry("sub", None, sub.key, sub)
            params = []
            seen: dict[str, Any] = {}
            for p in fwd.params:
                if self._dup(p.name, seen, p, "parameter", f"{name}.forward"):
                    continue
                param = self._param(p, f"{name}.forward.{p.name.name}", name, scope)
                params.append(param)
                scope[p.name.name] = _Entry("param", param.type, f"{name}.forward.{p.name.name}")
            returns: list[Any] = []
            body = self._block(fwd.body, scope, returns)
            info.forward = _b(
                ir.Forward, params=tuple(params), body=tuple(body), loc=self._loc(fwd.keyword)
            )
            info.returns = next((r for r in returns if r is not None), None)
            info.scope = scope
            if not returns:
                self._error(
                    DiagnosticCode.MISSING_RETURN,
                    f"`forward` of `{name}` never returns a value",
                    fwd.keyword,
                )
        self._forward_owner = outer_owner
        self._loop_depth = outer_loops
        info.state = "done"
        return info.returns

    # ---- statements -----------------------------------------------------------------------
    def _block(
        self, stmts: Iterable[Any], scope: dict[str, _Entry], returns: list[Any]
    ) -> list[Any]:
        out = []
        for stmt in stmts:
            lowered = self._stmt(stmt, scope, returns)
            if lowered is not None:
                out.append(lowered)
        return out

    def _stmt(self, stmt: Any, scope: dict[str, _Entry], returns: list[Any]) -> Any:
        loc = self._loc(stmt.span)
        if isinstance(stmt, ast.Assign):
            value, vtype = self._expr(stmt.value, scope)
            target = stmt.target.name
            existing = scope.get(target)
            if existing is not None and existing.kind in ("sub", "param"):
                self._error(
                    DiagnosticCode.DUPLICATE_FIELD,
                    f"`{target}` is a {'member' if existing.kind == 'sub' else 'parameter'}; assign to a new name",
                    stmt.target.span,
                )
            scope[target] = _Entry("local", vtype, self._local(stmt.target, existing, vtype))
            return _b(ir.Assign, target=target, value=value, loc=loc)
        if isinstance(stmt, ast.Return):
            value, vtype = self._expr(stmt.value, scope)
            returns.append(vtype)
            return _b(ir.Return, value=value, loc=loc)
        if isinstance(stmt, ast.If):
            cond, _ = self._expr(stmt.cond, scope)
            then = self._block(stmt.then, scope, returns)
            orelse = self._block(stmt.orelse, scope, returns) if stmt.orelse else []
            return _b(ir.If, cond=cond, then=tuple(then), orelse=tuple(orelse), loc=loc)
        if isinstance(stmt, ast.For):
            it, itype = self._expr(stmt.iter, scope)
            types = self._target_types(stmt.targets, itype, stmt.iter.span)
            for ident, t in zip(stmt.targets, types, strict=True):
                scope[ident.name] = _Entry("local", t, self._local(ident, scope.get(ident.name), t))
            body = self._loop_body(stmt.body, scope, returns)
            var = _target_names(stmt.targets)
            return _b(ir.For, var=var, iter=it, body=tuple(body), loc=loc)
        if isinstance(stmt, ast.While):
            return self._while(stmt, scope, returns, loc)
        if isinstance(stmt, ast.Break | ast.Continue):
            word = "break" if isinstance(stmt, ast.Break) else "continue"
            if self._loop_depth == 0:
                self._error(
                    DiagnosticCode.LOOP_CONTROL_OUTSIDE_LOOP,
                    f"`{word}` outside a loop: it can only stand inside `for` or `while`",
                    stmt.span,
                )
            return _b(ir.Break if word == "break" else ir.Continue, loc=loc)
        if isinstance(stmt, ast.SetItem):
            obj, otype = self._expr(stmt.target.obj, scope)
            index, _ = self._expr(stmt.target.index, scope)
            value, _ = self._expr(stmt.value, scope)
            self._check_mutable(otype, stmt.target.obj)
            return _b(ir.SetItem, obj=obj, index=index, value=value, loc=loc)
        if isinstance(stmt, ast.AugAssign):
            return self._aug_assign(stmt, scope, loc)
        if isinstance(stmt, ast.Check):
            return self._check(stmt, scope)
        if isinstance(stmt, ast.ExprStmt):
            value, _ = self._expr(stmt.expr, scope)
            return _b(ir.ExprStmt, expr=value, loc=loc)
        return None

    def _loop_body(
        self, stmts: Iterable[Any], scope: dict[str, _Entry], returns: list[Any]
    ) -> list[Any]:
        self._loop_depth += 1
        try:
            return self._block(stmts, scope, returns)
        finally:
            self._loop_depth -= 1

    def _while(
        self, stmt: ast.While, scope: dict[str, _Entry], returns: list[Any], loc: Any
    ) -> ir.While:
        cond, _ = self._expr(stmt.cond, scope)
        if stmt.bound is None:
            at = stmt.cond.span
            self._error(
                DiagnosticCode.UNBOUNDED_WHILE,
                "a `while` loop needs a bound, the most times its body may run: "
                "`while cond max 10 { ... }` (a condition still true after that many runs "
                "is a runtime error)",
                stmt.keyword,
                fix=Fix("add `max 10`", (Edit(Span(at.origin, at.hi, at.hi), " max 10"),)),
            )
            bound: Any = _b(ir.Const, value=0, loc=None)
        else:
            bound, btype = self._expr(stmt.bound, scope)
            kind = getattr(btype, "kind", None)
            if isinstance(stmt.bound, ast.Neg) and isinstance(stmt.bound.operand, ast.Lit):
                self._error(
                    DiagnosticCode.UNBOUNDED_WHILE,
                    "the bound of a `while` loop is the most times its body runs: a whole "
                    "number >= 0",
                    stmt.bound.span,
                )
            elif kind is not None and kind not in ("int", "any"):
                self._error(
                    DiagnosticCode.UNBOUNDED_WHILE,
                    f"the bound of a `while` loop is an int (the most times its body runs), "
                    f"got {type_label(btype)}",
                    stmt.bound.span,
                )
        body = self._loop_body(stmt.body, scope, returns)
        return _b(ir.While, cond=cond, bound=bound, body=tuple(body), loc=loc)

    def _aug_assign(self, stmt: ast.AugAssign, scope: dict[str, _Entry], loc: Any) -> Any:
        target, ttype = self._expr(stmt.target, scope)
        value, vtype = self._expr(stmt.value, scope)
        if isinstance(stmt.target, ast.NameRef):
            existing = scope.get(stmt.target.name.name)
            if existing is not None and existing.kind in ("sub", "param", "builtin", "python"):
                what = {"sub": "a member", "param": "a parameter"}.get(existing.kind, "built in")
                self._error(
                    DiagnosticCode.INVALID_ASSIGNMENT_TARGET,
                    f"`{stmt.target.name.name}` is {what}; assign to a new name "
                    f"(`total = {stmt.target.name.name} {stmt.op} ...`)",
                    stmt.target.span,
                )
        else:
            self._check_mutable(self._expr_type_only(stmt.target.obj, scope)[1], stmt.target.obj)
        tkind, vkind = getattr(ttype, "kind", None), getattr(vtype, "kind", None)
        numeric = ("int", "float", "bool")
        if tkind is not None and vkind is not None and "any" not in (tkind, vkind):
            fits = (
                (tkind in numeric and vkind in numeric)
                or (stmt.op == "+" and tkind == vkind and tkind in ("str", "list"))
                or (stmt.op == "*" and tkind in ("str", "list") and vkind == "int")
            )
            if not fits:
                self._error(
                    DiagnosticCode.TYPE_MISMATCH,
                    f"`{stmt.op}=` cannot combine {type_label(ttype)} with {type_label(vtype)}",
                    stmt.value.span,
                )
        return _b(ir.AugAssign, target=target, op=stmt.op, value=value, loc=loc)

    def _check_mutable(self, otype: Any, obj: Any) -> None:
        """Item assignment changes a list or a dict in place; anything else is an error."""
        if isinstance(otype, PredType):
            what = "a prediction is read-only"
        else:
            kind = getattr(otype, "kind", None)
            if kind not in ("str", "enum", "tuple", "int", "float", "bool", "record", "literal"):
                return
            what = {
                "record": "a record is read-only",
                "tuple": "a tuple cannot be changed",
            }.get(
                kind or "", f"{_env.a('str' if kind == 'enum' else kind or '')} cannot be changed"
            )
        self._error(
            DiagnosticCode.INVALID_ASSIGNMENT_TARGET,
            f"cannot assign to an item of `{_short_text(obj)}`: {what}; build a new value instead",
            obj.span,
        )

    def _local(self, ident: ast.Ident, existing: _Entry | None, vtype: Any) -> str | None:
        """The symbol key of a local variable (``RAG.forward.query``): defined at its first
        assignment, referenced by later ones, so editors can navigate and rename locals."""
        if self._forward_owner is None:
            return None
        key = f"{self._forward_owner}.forward.{ident.name}"
        if existing is not None and existing.kind == "local" and existing.key == key:
            self._ref(ident.span, key)
            return key
        if key in self.symbols and self.symbols[key].kind != "local":
            return None  # a parameter of that name (already reported)
        self._define_local(key, ident, vtype)
        if key in self.symbols and self.symbols[key].span != ident.span:
            self._ref(ident.span, key)  # assigned first in another branch
        return key

    def _check(self, stmt: ast.Check, scope: dict[str, _Entry]) -> ir.Check:
        cond, _ = self._expr(stmt.cond, scope)
        message = self._expr(stmt.message, scope)[0] if stmt.message is not None else None
        return _b(
            ir.Check, severity=stmt.kind, cond=cond, message=message, loc=self._loc(stmt.span)
        )


def _target_names(targets: tuple[ast.Ident, ...]) -> str | tuple[str, ...]:
    return targets[0].name if len(targets) == 1 else tuple(t.name for t in targets)


def _short_text(e: Any) -> str:
    if isinstance(e, ast.NameRef):
        return e.name.name
    if isinstance(e, ast.Attr):
        return f"{_short_text(e.obj)}.{e.name.name}"
    if isinstance(e, ast.Index):
        return f"{_short_text(e.obj)}[...]"
    return "this value"
