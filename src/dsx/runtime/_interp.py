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

__all__ = ["BUILTINS", "Return", "run_async", "run_sync", "exec_body", "eval_expr"]

log = logging.getLogger("dsx")

Gen = Generator[tuple[Any, tuple[Any, ...], dict[str, Any]], Any, Any]


def _join(items: Any, sep: str = " ") -> str:
    return sep.join(str(i) for i in items)


BUILTINS: dict[str, Any] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "range": range,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "enumerate": enumerate,
    "zip": zip,
    "any": any,
    "all": all,
    "abs": abs,
    "round": round,
    "print": print,
    "join": _join,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "strip": lambda s: str(s).strip(),
}


class Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class DsxRuntimeError(DsxError, RuntimeError):
    """An error raised while running a .dsx forward body, with its location."""


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
    raise DsxRuntimeError(f"cannot evaluate IR expression of kind {kind!r}")


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
}


def exec_body(stmts: Any, env: dict[str, Any]) -> Gen:
    """Run statements; a ``return`` raises :class:`Return`."""
    for stmt in stmts:
        try:
            yield from _exec(stmt, env)
        except (Return, AssertionFailed):
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
            env[stmt.var] = item
            yield from exec_body(stmt.body, env)
    elif kind == "check":
        ok = yield from eval_expr(stmt.cond, env)
        if not ok:
            message = "" if stmt.message is None else str((yield from eval_expr(stmt.message, env)))
            where = f"{Path(stmt.loc[0]).name}:{stmt.loc[1]}" if stmt.loc else ""
            check = dsx_assert if stmt.severity == "assert" else dsx_suggest
            check(ok, message, where=where)
    else:
        raise DsxRuntimeError(f"cannot run IR statement of kind {kind!r}")


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
