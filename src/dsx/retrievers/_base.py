"""``Retriever``: what every dsx retriever is — typed passages, sync and async, batched.

A subclass implements :meth:`Retriever._search_batch` (and, when it has a native async
path, :meth:`Retriever._asearch_batch`); everything else — one query or many, sync or
async, the default ``k`` — is here once. ``dsx.Retrieve`` asks a ``Retriever`` through
:meth:`search` / :meth:`asearch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dsx.retrievers._passage import Passage

__all__ = ["Retriever"]


class Retriever:
    """Base class of dsx retrievers.

    Args:
        k: passages per query when a call does not say.
    """

    def __init__(self, *, k: int = 3) -> None:
        self.k = _check_k(k)

    # -- what subclasses implement ------------------------------------------------------------
    def _search_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        raise NotImplementedError

    async def _asearch_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        # Engines without a native async path run in a worker thread: the loop stays free.
        return await asyncio.to_thread(self._search_batch, queries, k)

    # -- the public surface ---------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> list[Passage]:
        """The top ``k`` passages for ``query``, best first."""
        return self._search_batch([_check_query(query)], self._k(k))[0]

    async def asearch(self, query: str, k: int | None = None) -> list[Passage]:
        """:meth:`search`, awaitable."""
        return (await self._asearch_batch([_check_query(query)], self._k(k)))[0]

    def search_batch(self, queries: Sequence[str], k: int | None = None) -> list[list[Passage]]:
        """The top ``k`` passages for each query, in the queries' order."""
        qs = [_check_query(q) for q in _as_list(queries)]
        return self._search_batch(qs, self._k(k)) if qs else []

    async def asearch_batch(
        self, queries: Sequence[str], k: int | None = None
    ) -> list[list[Passage]]:
        """:meth:`search_batch`, awaitable (requests run concurrently where the engine can)."""
        qs = [_check_query(q) for q in _as_list(queries)]
        return await self._asearch_batch(qs, self._k(k)) if qs else []

    def __call__(self, query: str, k: int | None = None) -> list[Passage]:
        """``rm(query, k)``: the form ``dsx.configure(rm=...)`` callables have."""
        return self.search(query, k)

    async def acall(self, query: str, k: int | None = None) -> list[Passage]:
        """``await rm.acall(query, k)``."""
        return await self.asearch(query, k)

    def _k(self, k: int | None) -> int:
        return self.k if k is None else _check_k(k)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return k


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        raise TypeError(f"a query must be a string, got {type(query).__name__}")
    return query


def _as_list(queries: Sequence[str]) -> list[str]:
    if isinstance(queries, str):
        raise TypeError("search_batch takes a list of queries; use search() for one")
    return list(queries)
