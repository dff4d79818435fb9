"""Scripted LM replies for ``test`` blocks: ``reply { field = value }`` / ``reply "text"``.

A test with replies runs its program against an in-process LM that answers from the
script, in order, instead of the configured model; ``dsx test`` then needs no ``DSX_LM``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from dsx import ir
from dsx.errors import DsxError

__all__ = ["scripted_replies"]


def _scripted_lm(test: ir.Test, replies: list[str | Mapping[str, Any]]) -> Any:
    """A DummyLM answering from ``replies`` that names the test when it runs out
    (``dsx.testing`` is imported only when a test scripts replies)."""
    from dsx.testing import DummyLM

    class _TestLM(DummyLM):
        def _next(self, messages: list[dict[str, Any]]) -> Any:
            with self._lock:
                if self._index >= len(replies):
                    count = len(replies)
                    raise DsxError(
                        f"test `{test.name}` scripts {count} "
                        f"repl{'y' if count == 1 else 'ies'} and the program asked the LM "
                        f"for reply {count + 1} (a retry after a reply it could not parse "
                        "counts too); add a `reply` line to the test"
                    )
            return super()._next(messages)

    return _TestLM(replies, model=f"scripted:{test.name}")


@contextlib.contextmanager
def scripted_replies(test: ir.Test, program: Any, env: dict[str, Any]) -> Iterator[Any]:
    """Within the block, every predictor of ``program`` (and the default LM) answers from
    ``test``'s replies; yields the scripted LM (``None`` when the test scripts none)."""
    if not test.replies:
        yield None
        return
    import dsx
    from dsx.runtime import _interp

    replies: list[str | Mapping[str, Any]] = []
    for expr in test.replies:
        value = _interp.run_sync(_interp.eval_expr(expr, env))
        replies.append(value if isinstance(value, str) else dict(value))
    lm = _scripted_lm(test, replies)
    predictors = list(program.predictors()) if hasattr(program, "predictors") else []
    saved = [p.lm for p in predictors]
    try:
        for p in predictors:
            p.lm = lm
        with dsx.context(lm=lm):
            yield lm
    finally:
        for p, old in zip(predictors, saved, strict=True):
            p.lm = old
