"""``dsx.Assert`` and ``dsx.Suggest``, with backtracking.

When a check fails inside a program's forward, the predictor that produced the offending
output (the most recent predictor call, or ``target=``) is retried: the forward runs again,
and that predictor now also sees its previous outputs and the failure message as inputs. After
``max_backtracks`` retries an Assert raises :class:`~dsx.AssertionFailed` and a Suggest logs
and lets the program go on.

All state lives in a context variable owned by the outermost module call, so concurrent
programs (threads or asyncio tasks) never share it and no lock is needed.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from dsx.errors import AssertionFailed

__all__ = ["Assert", "BacktrackScope", "Suggest", "dsx_assert", "dsx_suggest"]

log = logging.getLogger("dsx")


class BacktrackScope:
    """Per-program-call state: the latest predictor call, and feedback for the retried one."""

    __slots__ = ("feedback", "last", "max_backtracks", "outputs", "remaining")

    def __init__(self, max_backtracks: int) -> None:
        self.max_backtracks = max_backtracks
        self.remaining = max_backtracks
        self.last: Any = None  # the predictor called most recently
        self.outputs: dict[int, Any] = {}  # id(predictor) -> its latest prediction
        self.feedback: dict[
            int, tuple[str, dict[str, Any]]
        ] = {}  # id(predictor) -> (message, previous outputs)

    def record(self, predictor: Any, prediction: Any) -> None:
        self.last = predictor
        self.outputs[id(predictor)] = prediction


scope_var: contextvars.ContextVar[BacktrackScope | None] = contextvars.ContextVar(
    "dsx_backtrack", default=None
)


class Backtrack(Exception):
    def __init__(self, kind: str, message: str, target: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.target = target


def _check(kind: str, ok: Any, message: str, target: Any, where: str) -> bool:
    if ok:
        return True
    at = f" ({where})" if where else ""
    text = message or "condition is false"
    scope = scope_var.get()
    target = target if target is not None else scope.last if scope is not None else None
    if scope is not None and target is not None and scope.remaining > 0:
        raise Backtrack(kind, text, target)
    if kind == "assert":
        raise AssertionFailed(f"assertion failed{at}: {text}")
    log.warning("suggestion not met%s: %s", at, text)
    return False


def Assert(cond: Any, msg: str = "", *, target: Any = None) -> bool:
    """Require ``cond``; on failure backtrack, then raise :class:`~dsx.AssertionFailed`."""
    return _check("assert", cond, msg, target, "")


def Suggest(cond: Any, msg: str = "", *, target: Any = None) -> bool:
    """Prefer ``cond``; on failure backtrack, then log and go on. Returns whether it held."""
    return _check("suggest", cond, msg, target, "")


def dsx_assert(ok: Any, message: str = "", *, where: str = "") -> None:
    """An ``assert`` statement of a .dsx forward body."""
    _check("assert", ok, message, None, where)


def dsx_suggest(ok: Any, message: str = "", *, where: str = "") -> None:
    """A ``suggest`` statement of a .dsx forward body."""
    _check("suggest", ok, message, None, where)
