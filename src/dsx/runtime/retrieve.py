"""``Retrieve``: top-k passages for a query from the configured retriever (``dsx.settings.rm``)."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from dsx.errors import DsxError
from dsx.runtime.kinds import KindInfo
from dsx.runtime.module import Module
from dsx.runtime.prediction import Prediction
from dsx.runtime.settings import settings

__all__ = ["Retrieve"]


class Retrieve(Module):
    """Retrieve passages: ``Retrieve(k=3)(query).passages``.

    The retriever is ``dsx.configure(rm=...)`` (or ``rm=`` here): a :mod:`dsx.retrievers`
    retriever (``dsx.ColBERTv2(url)``, ``dsx.retrievers.Embeddings(...)``, a vector store),
    or any callable ``rm(query, k)`` returning passages as strings, dicts with a ``text``
    (or ``long_text``) key, or objects with such an attribute. It may be async.

    ``passages`` is a list of :class:`dsx.retrievers.Passage` — strings, as in DSPy, that
    also carry ``score``, ``id`` and ``metadata``.
    """

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "Retrieve",
        False,
        frozenset({"k", "rm"}),
        ("passages",),
        doc="Retrieves the top `k` passages for a query, from `rm` (a Python function "
        "(query, k)) or the configured retriever.",
    )

    def __init__(self, k: int = 3, *, rm: Any = None) -> None:
        self.k = k
        self.rm = rm

    def _rm(self) -> Any:
        rm = self.rm or settings.get("rm")
        if rm is None:
            raise DsxError(
                "No retriever is configured for Retrieve: call dsx.configure(rm=...) with a "
                "retriever (dsx.ColBERTv2(url), dsx.retrievers.Embeddings(corpus, embedder)) "
                "or a function (query, k) -> list of passages, or pass Retrieve(rm=...)."
            )
        return rm

    def forward(self, query: str, k: int | None = None) -> Prediction:
        from dsx.retrievers import Retriever

        rm, k = self._rm(), k or self.k
        if isinstance(rm, Retriever):
            return Prediction(passages=rm.search(query, k))
        result = rm(query, k)
        if inspect.isawaitable(result):
            from dsx.runtime.parallel import run_coroutine_sync

            result = run_coroutine_sync(lambda: _await(result))
        return Prediction(passages=_passages(result))

    async def aforward(self, query: str, k: int | None = None) -> Prediction:
        from dsx.retrievers import Retriever

        rm, k = self._rm(), k or self.k
        if isinstance(rm, Retriever):
            return Prediction(passages=await rm.asearch(query, k))
        result = rm(query, k)
        if inspect.isawaitable(result):
            result = await result
        return Prediction(passages=_passages(result))

    def __repr__(self) -> str:
        return f"Retrieve(k={self.k})"


async def _await(value: Any) -> Any:
    return await value


def _passages(result: Any) -> list[Any]:
    from dsx.retrievers import to_passage

    items = getattr(result, "passages", result)
    if isinstance(items, str | dict) or not hasattr(items, "__iter__"):
        items = [items]  # DSPy wraps a lone passage the same way
    return [to_passage(item) for item in items]
