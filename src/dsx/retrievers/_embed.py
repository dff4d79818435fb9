"""Query and document embedding shared by the embedding-based retrievers.

``as_embedder`` accepts what users pass (a :class:`dsx.Embedder`, a model name, a function);
:class:`QueryEncoder` embeds and normalises, and coalesces concurrent async queries on one
event loop into one embedder call — a local model embeds 32 queries in one forward pass
far faster than in 32.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dsx._extras import require
from dsx.retrievers._errors import RetrieverError

if TYPE_CHECKING:
    import numpy as np

    from dsx.runtime.embedder import Embedder

__all__ = ["QueryEncoder", "as_embedder", "check_passages", "normalize"]

#: numpy is not in the core install (issue 17): a missing one names the extra.
_NUMPY = "Embedding retrieval"


def as_embedder(embedder: Any) -> Embedder:
    """A :class:`dsx.Embedder` for ``embedder`` (an Embedder, a model name or a function)."""
    from dsx.runtime.embedder import Embedder

    if isinstance(embedder, Embedder):
        return embedder
    if isinstance(embedder, str) or callable(embedder):
        return Embedder(embedder)
    raise TypeError(
        'embedder must be a dsx.Embedder, a model name ("local:all-MiniLM-L6-v2", '
        f'"openai/text-embedding-3-small") or a function texts -> vectors, got {embedder!r}'
    )


def check_passages(
    texts: Sequence[str],
    ids: Sequence[Any] | None,
    metadata: Sequence[Any] | None,
) -> list[str]:
    """The passages a store's ``add`` takes, as a list, with ``ids``/``metadata`` (when
    given) one per passage."""
    texts = list(texts)
    for name, seq in (("ids", ids), ("metadata", metadata)):
        if seq is not None and len(seq) != len(texts):
            raise ValueError(f"{name} has {len(seq)} entries for {len(texts)} passages")
    return texts


def normalize(vectors: np.ndarray) -> np.ndarray:
    np = require("retrieval", "numpy", feature=_NUMPY)

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-10)


def embed_documents(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    normalized: bool,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed ``texts`` batch by batch (``embedder.batch_size``), reporting progress."""
    np = require("retrieval", "numpy", feature=_NUMPY)

    chunks = []
    step = max(1, embedder.batch_size)
    for start in range(0, len(texts), step):
        batch = list(texts[start : start + step])
        chunks.append(np.asarray(embedder(batch), dtype=np.float32))
        if progress is not None:
            progress(len(batch))
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.concatenate(chunks)
    return normalize(out) if normalized else out


class QueryEncoder:
    """Embeds queries (normalised when asked), checking the dimension against the index."""

    def __init__(self, embedder: Embedder, *, normalized: bool, dim: int | None, where: str):
        self.embedder = embedder
        self.normalized = normalized
        self.dim = dim
        self.where = where
        self._pending: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[str, asyncio.Future[Any]]]
        ] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    def _finish(self, vectors: Any, n: int) -> np.ndarray:
        np = require("retrieval", "numpy", feature=_NUMPY)

        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != n:
            raise RetrieverError(
                f"{self.where}: the embedder returned shape {array.shape} for {n} queries",
                retriever=self.where,
            )
        if self.dim is not None and array.shape[1] != self.dim:
            raise RetrieverError(
                f"{self.where}: the embedder makes {array.shape[1]}-dimensional vectors but the "
                f"index holds {self.dim}-dimensional ones. Query with the embedder the index "
                "was built with, or rebuild the index.",
                retriever=self.where,
            )
        return normalize(array) if self.normalized else array

    def encode(self, queries: list[str]) -> np.ndarray:
        return self._finish(self.embedder(queries), len(queries))

    async def aencode(self, queries: list[str]) -> np.ndarray:
        """Embed ``queries``; concurrent calls on this loop share one embedder call."""
        np = require("retrieval", "numpy", feature=_NUMPY)

        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._start_flush, loop)
        futures = []
        for q in queries:
            fut: asyncio.Future[Any] = loop.create_future()
            pending.append((q, fut))
            futures.append(fut)
        rows = await asyncio.gather(*futures)
        return np.stack(rows) if rows else np.zeros((0, self.dim or 0), dtype=np.float32)

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._flush(loop))
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        if not batch:
            return
        texts = [q for q, _ in batch]
        try:
            vectors = self._finish(await self.embedder.acall(texts), len(texts))
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), row in zip(batch, vectors, strict=True):
            if not fut.done():
                fut.set_result(row)
