"""``Retrieve``: top-k passages for a query from the configured retriever (``dsx.settings.rm``)."""

from __future__ import annotations

import inspect
from typing import Any

from dsx.errors import DsxError
from dsx.runtime.module import Module
from dsx.runtime.prediction import Prediction
from dsx.runtime.settings import settings

__all__ = ["Retrieve"]


class Retrieve(Module):
    """Retrieve passages: ``Retrieve(k=3)(query).passages``.

    The retriever is ``dsx.configure(rm=...)`` (or ``rm=`` here): any callable
    ``rm(query, k)`` returning passages as strings, or dicts with a ``text`` (or
    ``long_text``) key. It may be async.
    """

    def __init__(self, k: int = 3, *, rm: Any = None) -> None:
        self.k = k
        self.rm = rm

    def _rm(self) -> Any:
        rm = self.rm or settings.get("rm")
        if rm is None:
            raise DsxError(
                "No retriever is configured for Retrieve: call dsx.configure(rm=my_search) "
                "with a function (query, k) -> list of passages, or pass Retrieve(rm=...)."
            )
        return rm

    def forward(self, query: str, k: int | None = None) -> Prediction:
        result = self._rm()(query, k or self.k)
        if inspect.isawaitable(result):
            import asyncio

            result = asyncio.run(_await(result))
        return Prediction(passages=_passages(result))

    async def aforward(self, query: str, k: int | None = None) -> Prediction:
        result = self._rm()(query, k or self.k)
        if inspect.isawaitable(result):
            result = await result
        return Prediction(passages=_passages(result))

    def __repr__(self) -> str:
        return f"Retrieve(k={self.k})"


async def _await(value: Any) -> Any:
    return await value


def _passages(result: Any) -> list[str]:
    items = getattr(result, "passages", result)
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.append(str(item.get("text") or item.get("long_text") or item))
        else:
            out.append(str(item))
    return out
