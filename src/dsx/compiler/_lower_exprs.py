"""Lowering of expressions, with the checks on calls, attributes and assignability."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._lower_base import _ANY, CheckerBase, _b, _Entry, _Sub
from dsx.compiler._pass_types import mismatch
from dsx.compiler.symbols import PredType
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Span, make
from dsx.grammar import ast
from dsx.grammar.lexspec import UNSUPPORTED_STATEMENTS, unsupported_message
from dsx.grammar.parser import parse_expr_text
from dsx.retrievers import Passage

__all__ = ["ExprChecker"]


class ExprChecker(CheckerBase):
    """Expressions: names, attributes, calls (checked against their targets), strings."""

    def _expr(self, e: Any, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        # Expressions carry no location: statements do, and that is what source maps and
        # runtime errors point at. (It also keeps the IR small and lowering fast.)
        loc = None
        if isinstance(e, ast.Lit):
            t = (
                None
                if e.value is None
                else _b(ir.TypeRef, kind={bool: "bool", int: "int", float: "float"}[type(e.value)])
            )
            return _b(ir.Const, value=e.value, loc=loc), t
        if isinstance(e, ast.Str):
            return self._string(e, scope), _LitStr(e.value)
        if isinstance(e, ast.NameRef):
            return self._name(e, scope, loc)
        if isinstance(e, ast.ListExpr):
            items = [self._expr(i, scope) for i in e.items]
            return _b(ir.List, items=tuple(i for i, _ in items), loc=loc), _b(
                ir.TypeRef, kind="list", args=(_ANY,)
            )
        if isinstance(e, ast.DictExpr):
            keys = [self._expr(p.key, scope)[0] for p in e.pairs]
            values = [self._expr(p.value, scope)[0] for p in e.pairs]
            return _b(ir.Dict, keys=tuple(keys), values=tuple(values), loc=loc), _b(
                ir.TypeRef, kind="dict", args=(_ANY, _ANY)
            )
        if isinstance(e, ast.Attr):
            return self._attr(e, scope, loc)
        if isinstance(e, ast.Index):
            obj, otype = self._expr(e.obj, scope)
            idx, _ = self._expr(e.index, scope)
            elem = None
            if isinstance(otype, ir.TypeRef) and otype.args:
                if otype.kind == "list":
                    elem = otype.args[0]
                elif otype.kind == "dict" and len(otype.args) == 2:
                    elem = otype.args[1]
            elif isinstance(otype, ir.TypeRef | _LitStr) and otype.kind == "str":
                elem = _b(ir.TypeRef, kind="str")
            if isinstance(elem, ir.TypeRef) and elem.kind == "any":
                elem = None
            return _b(ir.Index, obj=obj, index=idx, loc=loc), elem
        if isinstance(e, ast.Call):
            return self._call(e, scope, loc)
        if isinstance(e, ast.Slice):
            return self._slice(e, scope)
        if isinstance(e, ast.IfExp):
            cond, _ = self._expr(e.cond, scope)
            then, ttype = self._expr(e.then, scope)
            orelse, otype2 = self._expr(e.orelse, scope)
            same = ttype if _plain(ttype) == _plain(otype2) else None
            return _b(ir.IfExp, cond=cond, then=then, orelse=orelse, loc=loc), same
        if isinstance(e, ast.ListComp):
            return self._list_comp(e, scope)
        if isinstance(e, ast.BinOp):
            left, ltype = self._expr(e.left, scope)
            right, rtype = self._expr(e.right, scope)
            rt: Any = None
            if e.op in ("is", "is not"):
                if not (isinstance(e.right, ast.Lit) and e.right.value is None):
                    eq = "==" if e.op == "is" else "!="
                    self._error(
                        DiagnosticCode.INVALID_IS_COMPARISON,
                        f"`{e.op}` compares with `none` only (`x {e.op} none`); "
                        f"compare values with `{eq}`",
                        e.right.span,
                    )
                rt = _b(ir.TypeRef, kind="bool")
            elif e.op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in"):
                rt = _b(ir.TypeRef, kind="bool")
            elif e.op == "+" and _is_str(ltype) and _is_str(rtype):
                rt = _b(ir.TypeRef, kind="str")
            return _b(ir.BinOp, op=e.op, left=left, right=right, loc=loc), rt
        if isinstance(e, ast.Not):
            operand, _ = self._expr(e.operand, scope)
            return _b(ir.Unary, op="not", operand=operand, loc=loc), _b(ir.TypeRef, kind="bool")
        if isinstance(e, ast.Neg):
            operand, otype = self._expr(e.operand, scope)
            return _b(ir.Unary, op="-", operand=operand, loc=loc), otype if isinstance(
                otype, ir.TypeRef
            ) else None
        return _b(ir.Const, value=None, loc=loc), None

    def _name(self, e: ast.NameRef, scope: dict[str, _Entry], loc: Any) -> tuple[Any, Any]:
        name = e.name.name
        entry = scope.get(name)
        if entry is None and name in UNSUPPORTED_STATEMENTS:
            self._error(DiagnosticCode.UNKNOWN_NAME, unsupported_message(name), e.name.span)
            return _b(ir.Name, name=name, loc=loc), None
        if entry is None and name in self.decls:
            self._declared_name_in_expr(e.name, self.decls[name][0])
            return _b(ir.Name, name=name, loc=loc), None
        if entry is None:
            self._unknown(
                DiagnosticCode.UNKNOWN_NAME,
                "name",
                e.name,
                [n for n in scope if scope[n].kind != "builtin"] + list(_env.BUILTIN_FUNCTIONS),
            )
            return _b(ir.Name, name=name, loc=loc), None
        if entry.key:
            self._ref(e.name.span, entry.key)
        return _b(ir.Name, name=name, loc=loc), entry.type

    def _declared_name_in_expr(self, ident: ast.Ident, kind: str) -> None:
        """A top-level declaration used as a value: say what it is and how to use it (a
        did-you-mean to a similar built-in, `Summarize` -> `enumerate`, would mislead)."""
        name = ident.name
        how = {
            "signature": f"declare a predictor member (`{name.lower()} = Predict({name})`) and "
            f"call that: `{name.lower()}(field = ...)`",
            "module": f"declare a member (`{name.lower()} = {name}()`) and call that",
            "enum": 'its values are strings: compare with `"value"`',
            "type": f"build a value of it with `{name}(field = ...)`",
            "lm": "a predictor's LM is chosen where the predictor is declared: "
            f"`answer = Predict(QA, lm = {name})` in the module, not in the call",
            "retriever": f"declare a member (`retrieve = Retrieve({name})`) and call that",
        }.get(kind, "it cannot be used as a value inside a forward body")
        self._ref(ident.span, name)  # it is used (no "never used" warning besides)
        self._error(
            DiagnosticCode.WRONG_DECLARATION_KIND,
            f"`{name}` is {_env.a(kind)}, not a value or function: {how}",
            ident.span,
        )

    def _slice(self, e: ast.Slice, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        obj, otype = self._expr(e.obj, scope)
        parts: list[Any] = []
        for part in (e.lo, e.hi, e.step):
            if part is None:
                parts.append(None)
                continue
            value, ptype = self._expr(part, scope)
            kind = getattr(ptype, "kind", None)
            if kind is not None and kind not in ("int", "any") and ptype is not None:
                self._error(
                    DiagnosticCode.TYPE_MISMATCH, f"a slice bound is an int, got {ptype}", part.span
                )
            parts.append(value)
        kind = getattr(otype, "kind", None)
        if kind in ("dict", "record") or isinstance(otype, PredType):
            what = "a prediction" if isinstance(otype, PredType) else _env.a(str(kind))
            self._error(
                DiagnosticCode.TYPE_MISMATCH,
                f"cannot slice {what}: slices take part of a list or a str",
                e.span,
            )
        result = otype if kind in ("list", "str", "tuple") else None
        if kind == "enum" or kind == "literal":
            result = _b(ir.TypeRef, kind="str")
        lo, hi, step = parts
        return _b(ir.Slice, obj=obj, lo=lo, hi=hi, step=step, loc=None), result

    def _list_comp(self, e: ast.ListComp, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        it, itype = self._expr(e.iter, scope)
        inner = dict(scope)  # the comprehension's names are its own
        types = self._target_types(e.targets, itype, e.iter.span)
        for ident, t in zip(e.targets, types, strict=True):
            inner[ident.name] = _Entry("local", t, self._comp_local(ident, t))
        conds = tuple(self._expr(c, inner)[0] for c in e.conds)
        more = []
        for clause in e.more:  # each later `for` sees the names of those before it
            cit, citype = self._expr(clause.iter, inner)
            ctypes = self._target_types(clause.targets, citype, clause.iter.span)
            for ident, t in zip(clause.targets, ctypes, strict=True):
                inner[ident.name] = _Entry("local", t, self._comp_local(ident, t))
            cconds = tuple(self._expr(c, inner)[0] for c in clause.conds)
            cvar = _comp_var(clause.targets)
            more.append(_b(ir.CompFor, var=cvar, iter=cit, conds=cconds))
        elt, etype = self._expr(e.elt, inner)
        var = _comp_var(e.targets)
        node = _b(ir.ListComp, elt=elt, var=var, iter=it, conds=conds, loc=None, more=tuple(more))
        elem = etype if isinstance(etype, ir.TypeRef) else _ANY
        return node, _b(ir.TypeRef, kind="list", args=(elem,))

    def _comp_local(self, ident: ast.Ident, vtype: Any) -> str | None:
        """The symbol of a name a comprehension binds (``x`` in ``[x.upper() for x in
        items]``): its own, one per comprehension (``RAG.forward.x@40``), so that hover,
        rename and semantic tokens treat it as the local it is."""
        if self._forward_owner is None:
            return None
        key = f"{self._forward_owner}.forward.{ident.name}@{ident.span.lo}"
        self._define_local(key, ident, vtype)
        return key

    def _define_local(self, key: str, ident: ast.Ident, vtype: Any) -> None:
        """Record the forward-body local ``key`` that ``ident`` binds, typed ``vtype``."""
        self._define(
            key,
            ident.name,
            "local",
            ident.span,
            ident,
            detail=f"{ident.name}: {type_label(vtype)}",
            container=self._forward_owner,
        )

    def _target_types(self, targets: tuple[ast.Ident, ...], itype: Any, span: Span) -> list[Any]:
        """The types of a loop's names: the iterable's item, or its unpacked parts."""
        elem = _elem_type(itype)
        if len(targets) == 1:
            return [elem]
        if isinstance(elem, ir.TypeRef) and elem.kind == "tuple" and elem.args:
            if len(elem.args) != len(targets):
                self._error(
                    DiagnosticCode.TYPE_MISMATCH,
                    f"each item is {elem} ({len(elem.args)} values), unpacked into "
                    f"{len(targets)} names",
                    span,
                )
                return [None] * len(targets)
            return [a if a.kind != "any" else None for a in elem.args]
        if isinstance(elem, ir.TypeRef) and elem.kind in ("str", "int", "float", "bool"):
            self._error(
                DiagnosticCode.TYPE_MISMATCH, f"each item is {elem}, which cannot be unpacked", span
            )
        return [None] * len(targets)

    def _attr(
        self, e: ast.Attr, scope: dict[str, _Entry], loc: Any, pre: Any = None
    ) -> tuple[Any, Any]:
        obj, otype = pre if pre is not None else self._expr(e.obj, scope)
        attr = e.name.name
        result: Any = None
        if isinstance(otype, PredType):
            if attr in otype.fields:
                result = otype.fields[attr]
                if attr in otype.keys:
                    self._ref(e.name.span, otype.keys[attr])
            else:
                guess = _env.did_you_mean(attr, otype.fields)
                fix = Fix(f"replace with `{guess}`", (Edit(e.name.span, guess),)) if guess else None
                outs = ", ".join(f"`{f}`" for f in otype.fields) or "none"
                self._error(
                    DiagnosticCode.UNKNOWN_OUTPUT,
                    f"{otype.owner} has no output `{attr}`"
                    + (f"; did you mean `{guess}`?" if guess else f" (its outputs: {outs})"),
                    e.name.span,
                    fix=fix,
                )
        elif (
            isinstance(e.obj, ast.NameRef)
            and scope.get(e.obj.name.name, _Entry("")).kind == "python"
        ):
            alias = e.obj.name.name
            names = self._python_names.get(alias)
            if names is not None and attr not in names:
                self._unknown(
                    DiagnosticCode.UNKNOWN_NAME,
                    f"name in Python module `{self.python[alias].module}`:",
                    e.name,
                    names,
                )
        elif (
            isinstance(otype, ir.TypeRef) and otype.kind == "record" and otype.name in self.records
        ):
            rec = self.records[otype.name]
            fields = {f.name: f.type for f in rec.fields}
            if attr in fields:
                result = fields[attr]
                self._ref(e.name.span, f"{rec.name}.{attr}")
            else:
                self._unknown(
                    DiagnosticCode.UNKNOWN_OUTPUT, f"field of `{rec.name}`:", e.name, fields
                )
        elif getattr(otype, "kind", None) in _VALUE_ATTRS:
            # A plain value: the interpreter and generated code do Python's getattr.
            kind = "str" if otype.kind == "enum" else otype.kind
            names = _VALUE_ATTRS[otype.kind]
            if attr not in names:
                # No did-you-mean: a near method name (`answer` -> `islower`) misleads.
                hint = {
                    "dict": f'; read a key with `[...]`: `{_short(e.obj)}["{attr}"]`',
                    "str": "; is it a prediction's output rather than the prediction?",
                }.get(kind, "")
                self._error(
                    DiagnosticCode.UNKNOWN_NAME,
                    f"{_env.a(kind).split()[0]} `{kind}` value has no attribute `{attr}`{hint}",
                    e.name.span,
                )
        return _b(ir.Attr, obj=obj, name=attr, loc=loc), result

    def _call(self, e: ast.Call, scope: dict[str, _Entry], loc: Any) -> tuple[Any, Any]:
        if (
            isinstance(e.func, ast.NameRef)
            and e.func.name.name not in scope
            and self.decls.get(e.func.name.name, ("", None))[0] == "type"
        ):
            return self._construct_record(e, scope)
        receiver: Any = None  # the type of `obj` in `obj.method(...)`
        if isinstance(e.func, ast.Attr):
            pre = self._expr(e.func.obj, scope)
            receiver = pre[1]
            func, _ = self._attr(e.func, scope, None, pre)
        else:
            func, _ = self._expr(e.func, scope)
        entry = scope.get(e.func.name.name) if isinstance(e.func, ast.NameRef) else None
        result: Any = None
        if entry is not None and entry.kind == "sub" and entry.sub is not None:
            result = self._check_sub_call(e, entry.sub, scope)
        args, kwargs = [], []
        arg_types = []
        for arg in e.args:
            value, atype = self._expr(arg.value, scope)
            if arg.name is None:
                args.append(value)
                arg_types.append(atype)
            else:
                kwargs.append((arg.name.name, value))
        if entry is not None and entry.kind == "builtin" and e.func.name.name == "Prediction":  # type: ignore[union-attr]
            result = self._prediction(e, scope)
        elif entry is not None and entry.kind == "builtin" and not kwargs:
            result = _builtin_result(e.func.name.name, arg_types)  # type: ignore[union-attr]
        elif isinstance(e.func, ast.Attr) and not args:
            result = _method_result(receiver, e.func.name.name)
        if isinstance(e.func, ast.NameRef) and e.func.name.name in (
            "str",
            "join",
            "lower",
            "upper",
            "strip",
        ):
            result = _b(ir.TypeRef, kind="str")
        elif isinstance(e.func, ast.NameRef) and e.func.name.name in ("len", "int", "round"):
            result = _b(ir.TypeRef, kind="int")
        return _b(ir.Call, func=func, args=tuple(args), kwargs=tuple(kwargs), loc=loc), result

    def _prediction(self, e: ast.Call, scope: dict[str, _Entry]) -> PredType:
        """``Prediction(answer = a, score = s)``: a forward's composite result, typed by its
        fields (so ``.answer`` on it, and ``expect answer`` on a program, are checked)."""
        fields: dict[str, Any] = {}
        reserved = _env.reserved_output_names()
        for arg in e.args:
            if arg.name is None:
                self._error(
                    DiagnosticCode.POSITIONAL_ARGUMENT,
                    "`Prediction` takes its fields as keywords: `Prediction(answer = a)`",
                    arg.span,
                )
                continue
            name = arg.name.name
            if name in fields:
                self._error(
                    DiagnosticCode.DUPLICATE_FIELD,
                    f"`Prediction` is given `{name}` twice",
                    arg.name.span,
                )
            elif name in reserved:
                better = _env.rename_reserved(name)
                self._error(
                    DiagnosticCode.RESERVED_OUTPUT_NAME,
                    f"`{name}` cannot be a field of a prediction: `pred.{name}` is a method of "
                    f"every prediction; call it `{better}`",
                    arg.name.span,
                    fix=Fix(f"rename to `{better}`", (Edit(arg.name.span, better),)),
                )
            fields[name] = _plain(self._expr_type_only(arg.value, scope)[1])
        return PredType(
            "`Prediction(...)`",
            {k: v if isinstance(v, ir.TypeRef) else None for k, v in fields.items()},
        )

    def _construct_record(self, e: ast.Call, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        """``Answer(text = t, score = 1.0)``: a value of a record type, checked field by field."""
        assert isinstance(e.func, ast.NameRef)
        name = e.func.name.name
        self._ref(e.func.name.span, name)
        rec = self.records.get(name)
        fields = {f.name: f for f in rec.fields} if rec is not None else {}
        kwargs = []
        for arg in e.args:
            value, vtype = self._expr(arg.value, scope)
            if arg.name is None:
                self._error(
                    DiagnosticCode.POSITIONAL_ARGUMENT,
                    f"`{name}` takes its fields as keywords: `{name}(field = value)`",
                    arg.span,
                )
                continue
            field = arg.name.name
            if rec is not None and field not in fields:
                self._unknown(
                    DiagnosticCode.UNKNOWN_ARGUMENT, f"field of `{name}`:", arg.name, fields
                )
            elif rec is not None:
                self._ref(arg.name.span, f"{name}.{field}")
                self._check_assignable(
                    vtype, fields[field].type, arg.value.span, f"field `{field}` of `{name}`"
                )
            kwargs.append((field, value))
        given = {a.name.name for a in e.args if a.name is not None}
        missing = [
            f
            for f, spec in fields.items()
            if f not in given and not spec.has_default and spec.type.kind != "optional"
        ]
        # A positional argument or an unknown (misspelt) field already explains a missing one.
        if missing and all(a.name is not None and a.name.name in fields for a in e.args):
            self._error(
                DiagnosticCode.MISSING_ARGUMENT,
                f"`{name}` needs {', '.join(f'`{m} = ...`' for m in missing)}",
                e.span,
            )
        call = _b(ir.Call, func=_b(ir.Name, name=name, loc=None), kwargs=tuple(kwargs), loc=None)
        return call, _b(ir.TypeRef, kind="record", name=name)

    def _check_sub_call(self, e: ast.Call, sub: _Sub, scope: dict[str, _Entry]) -> Any:
        target = sub.wraps if sub.wraps is not None else sub
        kind = _env.KINDS.get(target.kind)
        label = f"`{sub.name}`"
        if target.kind == "Retrieve":
            positional = [a for a in e.args if a.name is None]
            named = {a.name.name for a in e.args if a.name is not None}
            if not positional and "query" not in named:
                self._error(
                    DiagnosticCode.MISSING_INPUT,
                    f"{label} (Retrieve) needs a query: `{sub.name}(query)`",
                    e.span,
                )
            for a in e.args:
                if a.name is not None and a.name.name not in ("query", "k"):
                    self._error(
                        DiagnosticCode.UNKNOWN_INPUT,
                        f"{label} (Retrieve) takes a query and `k`, not `{a.name.name}`",
                        a.name.span,
                    )
            return PredType(
                f"{label} (Retrieve)",
                {"passages": _b(ir.TypeRef, kind="list", args=(_b(ir.TypeRef, kind="str"),))},
            )
        if target.kind == "module":
            return self._check_module_call(e, target, label)
        sig = target.signature
        if sig is None or kind is None:
            return None
        inputs = {f.name: f for f in sig.inputs}
        positional = [a for a in e.args if a.name is None]
        if positional:
            fix = None
            if len(inputs) == 1 and len(positional) == 1:
                only = next(iter(inputs))
                arg0 = positional[0]
                fix = Fix(
                    f"pass it as `{only} = ...`",
                    (Edit(Span(arg0.span.origin, arg0.span.lo, arg0.span.lo), f"{only} = "),),
                )
            self._error(
                DiagnosticCode.POSITIONAL_ARGUMENT,
                f"{label} takes keyword inputs ({', '.join(f'`{n} = ...`' for n in inputs)})",
                positional[0].span.cover(positional[-1].span),
                fix=fix,
            )
        for arg in e.args:
            if arg.name is None:
                continue
            fname = arg.name.name
            if fname not in inputs:
                if fname in ("config", "demos", "lm"):
                    continue
                guess = _env.did_you_mean(fname, inputs)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),)) if guess else None
                )
                self._error(
                    DiagnosticCode.UNKNOWN_INPUT,
                    f"{label} ({sig.name}) has no input `{fname}`"
                    + (
                        f"; did you mean `{guess}`?"
                        if guess
                        else f" (its inputs: {', '.join(f'`{n}`' for n in inputs) or 'none'})"
                    ),
                    arg.name.span,
                    fix=fix,
                )
                continue
            self._ref(arg.name.span, f"{sig.name}.{fname}")
            _, atype = self._expr_type_only(arg.value, scope)
            self._check_assignable(
                atype, inputs[fname].type, arg.value.span, f"input `{fname}` of {label}"
            )
        given = {a.name.name for a in e.args if a.name is not None}
        missing = [
            n
            for n, f in inputs.items()
            if n not in given and not f.has_default and f.type.kind != "optional"
        ]
        if missing and not any(a.name is None for a in e.args):
            self._error(
                DiagnosticCode.MISSING_INPUT,
                f"{label} ({sig.name}) is missing the input{'s' if len(missing) > 1 else ''} {', '.join(f'`{m}`' for m in missing)}",
                e.span,
            )
        fields: dict[str, Any] = {x: _b(ir.TypeRef, kind="str") for x in kind.extra_outputs}
        keys: dict[str, str] = {}
        for f in sig.outputs:
            fields[f.name] = f.type
            keys[f.name] = f"{sig.name}.{f.name}"
        return PredType(f"{label} ({target.kind}({sig.name}))", fields, keys)

    def _expr_type_only(self, e: Any, scope: dict[str, _Entry]) -> tuple[Any, Any]:
        # Arguments are lowered again by _call; lower quietly here just for the type.
        n_diag, n_ref = len(self.diagnostics), len(self.references)
        result = self._expr(e, scope)
        del self.diagnostics[n_diag:]
        del self.references[n_ref:]
        return result

    def _check_module_call(self, e: ast.Call, sub: _Sub, label: str) -> Any:
        info = self.modules.get(sub.module or "")
        if info is None or info.decl.forward is None:
            return None
        params = {p.name.name: p for p in info.decl.forward.params}
        for arg in e.args:
            if arg.name is not None:
                if arg.name.name not in params:
                    guess = _env.did_you_mean(arg.name.name, params)
                    fix = (
                        Fix(f"replace with `{guess}`", (Edit(arg.name.span, guess),))
                        if guess
                        else None
                    )
                    self._error(
                        DiagnosticCode.UNKNOWN_INPUT,
                        f"{label} (module {sub.module}) has no input `{arg.name.name}`"
                        + (f"; did you mean `{guess}`?" if guess else ""),
                        arg.name.span,
                        fix=fix,
                    )
                else:
                    self._ref(arg.name.span, f"{sub.module}.forward.{arg.name.name}")
        n_pos = sum(1 for a in e.args if a.name is None)
        given = {a.name.name for a in e.args if a.name is not None} | set(list(params)[:n_pos])
        missing = [n for n, p in params.items() if p.default is None and n not in given]
        if missing:
            self._error(
                DiagnosticCode.MISSING_INPUT,
                f"{label} (module {sub.module}) is missing {', '.join(f'`{m}`' for m in missing)}",
                e.span,
            )
        returned = self._module_forward(sub.module or "")
        if isinstance(returned, PredType):
            return PredType(f"{label} (module {sub.module})", returned.fields, returned.keys)
        if isinstance(returned, ir.TypeRef) and returned.kind == "record":
            return returned
        return None

    def _string(self, e: ast.Str, scope: dict[str, _Entry]) -> Any:
        raw = e.raw
        if "{" not in raw:
            return _b(ir.Const, value=e.value, loc=None)
        from dsx.grammar._transform import decode_string

        triple = raw.startswith('"""')
        body = raw[3:-3] if triple else raw[1:-1]
        base = e.span.lo + (3 if triple else 1)
        parts: list[Any] = []
        text_buf: list[str] = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch == "{" and body.startswith("{{", i):
                text_buf.append("{")
                i += 2
                continue
            if ch == "}" and body.startswith("}}", i):
                text_buf.append("}")
                i += 2
                continue
            if ch == "{":
                close = body.find("}", i)
                if close < 0:
                    self._error(
                        DiagnosticCode.INVALID_STRING,
                        "unterminated `{` in string interpolation; write `{{` for a literal brace",
                        Span(e.span.origin, base + i, base + i + 1),
                    )
                    text_buf.append(body[i:])
                    break
                inner = body[i + 1 : close]
                if text_buf:
                    parts.append(decode_string('"' + "".join(text_buf) + '"'))
                    text_buf = []
                node, diag = _simple_path(inner, e.span.origin, base + i + 1)
                if node is None:
                    node, diag = parse_expr_text(inner, e.span.origin, base + i + 1)
                if diag is not None:
                    self.diagnostics.append(
                        make(
                            DiagnosticCode.INVALID_STRING,
                            f"bad expression in string interpolation: {diag.message}"
                            + _interpolation_hint(inner),
                            # relative to the block's origin, so that re-checking the block
                            # after an edit replaces it
                            Span(
                                e.span.origin,
                                diag.span.start - e.span.origin.offset,
                                diag.span.end - e.span.origin.offset,
                            ),
                        )
                    )
                else:
                    parts.append(self._expr(node, scope)[0])
                i = close + 1
                continue
            text_buf.append(ch)
            i += 1
        if text_buf:
            parts.append(
                decode_string('"' + "".join(text_buf).replace('"', '\\"') + '"')
                if not triple
                else "".join(text_buf)
            )
        return _b(ir.FString, parts=tuple(parts), loc=None)

    def _check_assignable(
        self, actual: Any, expected: ir.TypeRef | None, span: Span, what: str
    ) -> None:
        if expected is None or actual is None or isinstance(actual, PredType):
            return
        problem = mismatch(actual, expected, self.type_tables)
        if problem:
            self._error(
                DiagnosticCode.TYPE_MISMATCH, f"{what} expects {expected}, got {problem}", span
            )


def _plain(t: Any) -> Any:
    """A type without the literal value a string literal's type remembers."""
    return ir.build(ir.TypeRef, kind="str") if isinstance(t, _LitStr) else t


def _elem_type(t: Any) -> Any:
    """The type of the items of a value of type ``t`` when iterated (``None``: unknown)."""
    kind = getattr(t, "kind", None)
    if kind in ("list", "dict") and t.args:
        return t.args[0] if t.args[0].kind != "any" else None
    if kind in ("str", "enum", "literal"):
        return ir.build(ir.TypeRef, kind="str")
    return None


def _list_of(t: Any) -> ir.TypeRef:
    return ir.build(ir.TypeRef, kind="list", args=(t if isinstance(t, ir.TypeRef) else _ANY,))


def _builtin_result(name: str, args: list[Any]) -> Any:
    """The result type of a built-in function called with positional arguments of ``args``."""
    if name == "enumerate" and len(args) == 1:
        item = _elem_type(args[0]) or _ANY
        return _list_of(
            ir.build(ir.TypeRef, kind="tuple", args=(ir.build(ir.TypeRef, kind="int"), item))
        )
    if name == "zip" and args:
        items = tuple(_elem_type(a) or _ANY for a in args)
        return _list_of(ir.build(ir.TypeRef, kind="tuple", args=items))
    if name in ("sorted", "list") and len(args) == 1:
        return _list_of(_elem_type(args[0]))
    if name == "range":
        return _list_of(ir.build(ir.TypeRef, kind="int"))
    return None


def _method_result(receiver: Any, method: str) -> Any:
    """The result type of ``obj.method()`` on a dict (``items``, ``keys``, ``values``)."""
    if getattr(receiver, "kind", None) != "dict" or len(receiver.args) != 2:
        return None
    key, value = receiver.args
    if method == "items":
        return _list_of(ir.build(ir.TypeRef, kind="tuple", args=(key, value)))
    if method == "keys":
        return _list_of(key)
    if method == "values":
        return _list_of(value)
    return None


def _short(e: Any) -> str:
    """A name or dotted path as written, else ``x`` (for messages)."""
    if isinstance(e, ast.NameRef):
        return e.name.name
    if isinstance(e, ast.Attr):
        return f"{_short(e.obj)}.{e.name.name}"
    return "x"


_PY_TYPES: dict[str, type] = {
    "str": str,
    "enum": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
}
#: The attributes (methods) of values of each built-in kind, as Python has them. A `str`
#: may be a retrieved passage (``Passage``, a ``str`` with ``score``, ``pid``, ...).
_VALUE_ATTRS = {
    k: frozenset(n for n in dir(t) if not n.startswith("_")) for k, t in _PY_TYPES.items()
}
_VALUE_ATTRS["str"] = _VALUE_ATTRS["enum"] = _VALUE_ATTRS["str"] | {
    n for n in (*dir(Passage), *vars(Passage).get("__annotations__", {})) if n[:1] != "_"
}


@dataclass(frozen=True, slots=True)
class _LitStr:
    """The static type of a string literal: a ``str`` that remembers its value."""

    _literal: str
    kind: str = "str"
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return "str"


_PATH = re.compile(r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\Z")


def _interpolation_hint(inner: str) -> str:
    # Python f-string habits that `{expr}` does not share.
    if ":" in inner or "!" in inner.replace("!=", ""):
        return (
            "; format specs and conversions (`{x:.2f}`, `{x!r}`) are not supported:"
            " format the value in Python (`use python`) and interpolate the result"
        )
    return "; an interpolation holds exactly one expression"


def _simple_path(text: str, origin: Any, offset: int) -> tuple[Any, Any]:
    """``name`` or ``a.b.c`` inside an interpolation, without a parser round trip."""
    m = _PATH.match(text)
    if m is None:
        return None, None
    lo = offset + m.start(1)
    node: Any = None
    for part in m.group(1).split("."):
        ident = ast.Ident(part, Span(origin, lo, lo + len(part)))
        if node is None:
            node = ast.NameRef(ident, ident.span)
        else:
            node = ast.Attr(node, ident, Span(origin, node.span.lo, ident.span.hi))
        lo += len(part) + 1
    return node, None


def _is_str(t: Any) -> bool:
    return isinstance(t, ir.TypeRef | _LitStr) and t.kind == "str"


def _comp_var(targets: tuple[ast.Ident, ...]) -> str | tuple[str, ...]:
    """A comprehension clause's loop variable: a name, or the names an item unpacks into."""
    return targets[0].name if len(targets) == 1 else tuple(t.name for t in targets)


def type_label(t: Any) -> str:
    """A value's type for hover: a prediction's owner, a type, or ``unknown``."""
    if isinstance(t, PredType):
        return f"prediction of {t.owner}"
    return "unknown" if t is None else str(t)
