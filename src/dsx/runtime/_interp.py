"""Running IR forward bodies: one evaluator for the sync and the async path.

Evaluation is written once as generators that *yield* each call to a dsx module; a small
driver performs the call — ``module(...)`` when running sync, ``await module.acall(...)``
when running async — and sends the result back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator
from pathlib import Path
from typing import Any

from dsx import ir
from dsx.errors import AssertionFailed, DsxError
from dsx.runtime.assertions import dsx_assert, dsx_suggest
from dsx.runtime.builtins import BUILTINS

__all__ = [
    "BUILTINS",
    "LoopGuard",
    "LoopLimitError",
    "Return",
    "eval_expr",
    "exec_body",
    "run_async",
    "run_sync",
]

log = logging.getLogger("dsx")

Gen = Generator[tuple[Any, tuple[Any, ...], dict[str, Any]], Any, Any]


class Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class DsxRuntimeError(DsxError, RuntimeError):
    """An error raised while running a .dsx forward body, with its location."""


class LoopLimitError(DsxRuntimeError):
    """A ``while`` loop's condition still held after its body ran ``max`` times."""


class LoopGuard:
    """The bound of one run of a ``while cond max N`` loop, shared by the interpreter and
    generated code: :meth:`step` is called before each run of the body."""

    __slots__ = ("count", "limit", "where")

    def __init__(self, limit: Any, where: str = "") -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise DsxRuntimeError(
                f"the bound of the `while` loop{_at(where)} must be a whole number >= 0 "
                f"(`max 10`), got {limit!r}"
            )
        self.count = 0
        self.limit = limit
        self.where = where

    def step(self) -> None:
        if self.count >= self.limit:
            raise LoopLimitError(
                f"the `while` loop{_at(self.where)} ran its body {self.limit} "
                f"time{'s' if self.limit != 1 else ''} (its bound, `max {self.limit}`) and its "
                "condition still holds: raise the bound, or make the condition false sooner"
            )
        self.count += 1


def _at(where: str) -> str:
    return f" at {where}" if where else ""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _is_module(value: Any) -> bool:
    from dsx.runtime.module import Module

    return isinstance(value, Module)


def eval_expr(e: Any, env: dict[str, Any]) -> Gen:
    kind = e.kind
    if kind == "const":
        return e.value
    if kind == "name":
        try:
            return env[e.name]
        except KeyError:
            raise DsxRuntimeError(f"name `{e.name}` is not defined here") from None
    if kind == "attr":
        obj = yield from eval_expr(e.obj, env)
        return getattr(obj, e.name)
    if kind == "index":
        obj = yield from eval_expr(e.obj, env)
        idx = yield from eval_expr(e.index, env)
        return obj[idx]
    if kind == "call":
        func = yield from eval_expr(e.func, env)
        args = []
        for a in e.args:
            args.append((yield from eval_expr(a, env)))
        kwargs = {}
        for name, v in e.kwargs:
            kwargs[name] = yield from eval_expr(v, env)
        if _is_module(func):
            return (yield (func, tuple(args), kwargs))
        return func(*args, **kwargs)
    if kind == "fstring":
        parts = []
        for part in e.parts:
            if isinstance(part, str):
                parts.append(part)
            else:
                value = yield from eval_expr(part, env)
                parts.append(value if isinstance(value, str) else str(value))
        return "".join(parts)
    if kind == "list":
        out = []
        for item in e.items:
            out.append((yield from eval_expr(item, env)))
        return out
    if kind == "dict":
        d = {}
        for k, v in zip(e.keys, e.values, strict=True):
            d[(yield from eval_expr(k, env))] = yield from eval_expr(v, env)
        return d
    if kind == "binop":
        op = e.op
        left = yield from eval_expr(e.left, env)
        if op == "and":
            return (yield from eval_expr(e.right, env)) if left else left
        if op == "or":
            return left if left else (yield from eval_expr(e.right, env))
        right = yield from eval_expr(e.right, env)
        return _BINOPS[op](left, right)
    if kind == "unary":
        value = yield from eval_expr(e.operand, env)
        return (not value) if e.op == "not" else -value
    if kind == "ifexp":
        cond = yield from eval_expr(e.cond, env)
        return (yield from eval_expr(e.then if cond else e.orelse, env))
    if kind == "slice":
        obj = yield from eval_expr(e.obj, env)
        lo = None if e.lo is None else (yield from eval_expr(e.lo, env))
        hi = None if e.hi is None else (yield from eval_expr(e.hi, env))
        step = None if e.step is None else (yield from eval_expr(e.step, env))
        return obj[lo:hi:step]
    if kind == "listcomp":
        made: list[Any] = []
        # The comprehension's names do not leak, as in Python.
        clauses = ((e.var, e.iter, e.conds), *((c.var, c.iter, c.conds) for c in e.more))
        yield from _comprehend(e.elt, clauses, 0, dict(env), made)
        return made
    raise DsxRuntimeError(f"cannot evaluate IR expression of kind {kind!r}")


def _comprehend(
    elt: Any, clauses: tuple[tuple[Any, Any, Any], ...], i: int, env: dict[str, Any], out: list
) -> Gen:
    """Run ``for`` clause ``i`` of a comprehension (and the later ones nested in it), adding
    ``elt`` to ``out`` for each binding that passes every clause's conditions."""
    var, iter_expr, conds = clauses[i]
    iterable = yield from eval_expr(iter_expr, env)
    for item in iterable:
        _bind(env, var, item)
        for cond in conds:
            if not (yield from eval_expr(cond, env)):
                break
        else:
            if i + 1 < len(clauses):
                yield from _comprehend(elt, clauses, i + 1, env, out)
            else:
                out.append((yield from eval_expr(elt, env)))


_BINOPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "is": lambda a, b: a is b,
    "is not": lambda a, b: a is not b,
}


def _bind(env: dict[str, Any], var: str | tuple[str, ...], item: Any) -> None:
    if isinstance(var, str):
        env[var] = item
        return
    values = tuple(item)
    if len(values) != len(var):
        raise DsxRuntimeError(
            f"cannot unpack {len(values)} value{'s' if len(values) != 1 else ''} into "
            f"{len(var)} names ({', '.join(var)})"
        )
    for name, value in zip(var, values, strict=True):
        env[name] = value


def exec_body(stmts: Any, env: dict[str, Any]) -> Gen:
    """Run statements; a ``return`` raises :class:`Return`."""
    for stmt in stmts:
        try:
            yield from _exec(stmt, env)
        except (Return, AssertionFailed, _Break, _Continue):
            raise
        except Exception as exc:
            _note(exc, stmt)
            raise


def _note(exc: BaseException, stmt: Any) -> None:
    loc = getattr(stmt, "loc", None)
    if loc is None or getattr(exc, "_dsx_noted", False):
        return
    exc.add_note(f"  at {loc[0]}:{loc[1]}:{loc[2]} (.dsx source)")
    with contextlib.suppress(AttributeError):  # exceptions with __slots__ refuse new attributes
        exc._dsx_noted = True  # type: ignore[attr-defined]


def _exec(stmt: Any, env: dict[str, Any]) -> Gen:
    kind = stmt.kind
    if kind == "assign":
        env[stmt.target] = yield from eval_expr(stmt.value, env)
    elif kind == "return":
        raise Return((yield from eval_expr(stmt.value, env)))
    elif kind == "expr":
        yield from eval_expr(stmt.expr, env)
    elif kind == "if":
        cond = yield from eval_expr(stmt.cond, env)
        yield from exec_body(stmt.then if cond else stmt.orelse, env)
    elif kind == "for":
        iterable = yield from eval_expr(stmt.iter, env)
        for item in iterable:
            _bind(env, stmt.var, item)
            try:
                yield from exec_body(stmt.body, env)
            except _Break:
                break
            except _Continue:
                continue
    elif kind == "while":
        guard = LoopGuard((yield from eval_expr(stmt.bound, env)), _where(stmt))
        while (yield from eval_expr(stmt.cond, env)):
            guard.step()
            try:
                yield from exec_body(stmt.body, env)
            except _Break:
                break
            except _Continue:
                continue
    elif kind == "break":
        raise _Break
    elif kind == "continue":
        raise _Continue
    elif kind == "setitem":
        obj = yield from eval_expr(stmt.obj, env)
        index = yield from eval_expr(stmt.index, env)
        obj[index] = yield from eval_expr(stmt.value, env)
    elif kind == "augassign":
        target = stmt.target
        op = _BINOPS[stmt.op]
        if target.kind == "name":
            current = yield from eval_expr(target, env)
            env[target.name] = op(current, (yield from eval_expr(stmt.value, env)))
        else:
            obj = yield from eval_expr(target.obj, env)
            index = yield from eval_expr(target.index, env)
            obj[index] = op(obj[index], (yield from eval_expr(stmt.value, env)))
    elif kind == "check":
        ok = yield from eval_expr(stmt.cond, env)
        if not ok:
            message = "" if stmt.message is None else str((yield from eval_expr(stmt.message, env)))
            where = _where(stmt)
            check = dsx_assert if stmt.severity == "assert" else dsx_suggest
            check(ok, message, where=where)
    else:
        raise DsxRuntimeError(f"cannot run IR statement of kind {kind!r}")


def _where(stmt: Any) -> str:
    """``file.dsx:line`` of a statement, as generated code writes it too."""
    return f"{Path(stmt.loc[0]).name}:{stmt.loc[1]}" if stmt.loc else ""


def run_sync(gen: Gen) -> Any:
    """Drive an evaluation generator, calling modules synchronously."""
    try:
        request = gen.send(None)
        while True:
            module, args, kwargs = request
            try:
                result = module(*args, **kwargs)
            except BaseException as exc:
                request = gen.throw(exc)
                continue
            request = gen.send(result)
    except StopIteration as stop:
        return stop.value


async def run_async(gen: Gen) -> Any:
    """Drive an evaluation generator, awaiting ``module.acall`` for each module call."""
    try:
        request = gen.send(None)
        while True:
            module, args, kwargs = request
            try:
                result = await module.acall(*args, **kwargs)
            except BaseException as exc:
                request = gen.throw(exc)
                continue
            request = gen.send(result)
    except StopIteration as stop:
        return stop.value


def forward_body(forward: ir.Forward, env: dict[str, Any]) -> Gen:
    try:
        yield from exec_body(forward.body, env)
    except Return as ret:
        return ret.value
    return None
