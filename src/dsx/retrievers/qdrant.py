"""``dsx.retrievers.QdrantRM``: passages from a Qdrant collection — embedded or a server.

Qdrant's *local mode* runs the engine inside this process and keeps the collection in a
directory (``path=``), with no server to start; ``url=`` talks to a Qdrant server instead;
``client=`` takes a ``QdrantClient`` you built. Vectors are cosine-compared; each point's
payload holds the passage text (``document_field``), the caller's id and metadata.

Adding is idempotent: a point's id is derived from the passage id (or, without one, from
the text), so adding the same documents again updates them in place instead of doubling
them — which is what makes ``dsx index`` resumable.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dsx._extras import missing_message
from dsx.retrievers._base import Retriever
from dsx.retrievers._embed import (
    QueryEncoder,
    as_embedder,
    check_passages,
    embed_documents,
)
from dsx.retrievers._errors import RetrieverError
from dsx.retrievers._passage import Passage

if TYPE_CHECKING:
    from dsx.runtime.embedder import Embedder

__all__ = ["QdrantRM", "point_id"]

_NAMESPACE = uuid.UUID("6f1d0c62-8d3e-4d4b-9a53-0b5c6d8e2f41")
_ID_KEY = "_dsx_id"


def point_id(doc_id: Any) -> str:
    """The Qdrant point id (a UUID) for a passage id: the same id, the same point."""
    return str(uuid.uuid5(_NAMESPACE, repr(doc_id)))


class QdrantRM(Retriever):
    """A Qdrant collection as a retriever (DSPy's ``QdrantRM``).

    Args:
        collection: the collection's name.
        client: a ``qdrant_client.QdrantClient`` (else one is made from ``path``/``url``).
        k: passages per query when a call does not say.
        document_field: the payload key that holds the passage text.
        embedder: what embeds queries and added passages (a :class:`dsx.Embedder`, a model
            name, or a function) — the same model the collection was built with.
        path: a directory for Qdrant's embedded local mode (created if missing).
        url: a Qdrant server, ``http://host:6333``.
        api_key: the server's API key.

    Example:
        >>> rm = QdrantRM("wiki", embedder=dsx.Embedder.local(), path="data/qdrant")
        >>> rm.add(["Paris is in France.", ...])
        >>> rm.search("capital of France")
    """

    def __init__(
        self,
        collection: str,
        client: Any = None,
        k: int = 3,
        document_field: str = "document",
        *,
        embedder: Any,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(k=k)
        if not collection:
            raise ValueError("QdrantRM needs a collection name")
        self.collection = collection
        self.document_field = document_field
        self.embedder: Embedder = as_embedder(embedder)
        self.path = path
        self.url = url
        self._lock = threading.RLock()  # local mode's storage is not for concurrent use
        self.client = client if client is not None else self._connect(path, url, api_key)
        self._encoder: QueryEncoder | None = None

    def _connect(self, path: str | None, url: str | None, api_key: str | None) -> Any:
        try:
            from qdrant_client import QdrantClient
        except ImportError:
            message = missing_message("retrieval", "qdrant-client", "QdrantRM")
            raise RetrieverError(message) from None
        if path is not None and url is not None:
            raise ValueError("give QdrantRM a path (embedded) or a url (server), not both")
        try:
            if url is not None:
                return QdrantClient(url=url, api_key=api_key)
            return QdrantClient(path=path) if path is not None else QdrantClient(":memory:")
        except Exception as exc:
            where = path if path is not None else url
            raise RetrieverError(
                f"QdrantRM cannot open {where!r}: {type(exc).__name__}: {exc}. "
                "A local-mode directory is used by one process at a time; a corrupt one "
                "must be rebuilt (dsx index ... --into qdrant:PATH/COLLECTION).",
                retriever=repr(self),
            ) from exc

    def __repr__(self) -> str:
        where = f"path={self.path!r}" if self.path else f"url={self.url!r}" if self.url else ""
        return f"QdrantRM({self.collection!r}{', ' + where if where else ''}, k={self.k})"

    # -- the collection ------------------------------------------------------------------------
    def exists(self) -> bool:
        with self._lock:
            return bool(self.client.collection_exists(self.collection))

    def count(self) -> int:
        """Points in the collection (0 when it does not exist yet)."""
        if not self.exists():
            return 0
        with self._lock:
            return int(self.client.count(self.collection, exact=True).count)

    def _dim(self) -> int | None:
        with self._lock:
            info = self.client.get_collection(self.collection)
        vectors = info.config.params.vectors
        size = getattr(vectors, "size", None)
        return int(size) if size is not None else None

    def _ensure(self, dim: int) -> None:
        from qdrant_client import models

        if self.exists():
            have = self._dim()
            if have is not None and have != dim:
                raise RetrieverError(
                    f"{self!r}: the collection holds {have}-dimensional vectors but the "
                    f"embedder makes {dim}-dimensional ones. Use the embedder the collection "
                    "was built with, or index into a new collection.",
                    retriever=repr(self),
                )
            return
        with self._lock:
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            )

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[Any] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        batch_size: int = 256,
        skip_unchanged: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Embed and upsert passages (creating the collection); returns how many were
        written.

        Without ``ids`` a passage's id is its text, so adding it twice stores it once. With
        ``skip_unchanged`` a passage already stored with the same id, text and metadata is
        neither embedded nor written again: re-running an interrupted indexing resumes it.
        """
        from qdrant_client import models

        texts = check_passages(texts, ids, metadata)
        written = 0
        for start in range(0, len(texts), batch_size):
            rows = []
            for i in range(start, min(start + batch_size, len(texts))):
                doc_id = ids[i] if ids is not None else texts[i]
                payload = dict(metadata[i]) if metadata is not None else {}
                payload[self.document_field] = texts[i]
                payload[_ID_KEY] = doc_id
                rows.append((point_id(doc_id), payload))
            todo = self._changed(rows) if skip_unchanged else rows
            if todo:
                chunk = [payload[self.document_field] for _, payload in todo]
                vectors = embed_documents(self.embedder, chunk, normalized=True)
                self._ensure(int(vectors.shape[1]))
                points = [
                    models.PointStruct(id=pid, vector=vector.tolist(), payload=payload)
                    for (pid, payload), vector in zip(todo, vectors, strict=True)
                ]
                with self._lock:
                    self.client.upsert(self.collection, points=points, wait=True)
                written += len(points)
            if progress is not None:
                progress(len(rows))
        return written

    def _changed(self, rows: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        if not self.exists():
            return rows
        with self._lock:
            found = self.client.retrieve(self.collection, ids=[pid for pid, _ in rows])
        stored = {str(p.id): p.payload for p in found}
        return [(pid, payload) for pid, payload in rows if stored.get(pid) != payload]

    # -- searching ------------------------------------------------------------------------------
    def _query_encoder(self) -> QueryEncoder:
        if self._encoder is None:
            if not self.exists():
                raise RetrieverError(
                    f"{self!r}: the collection {self.collection!r} does not exist. Add passages "
                    "with .add(...) or `dsx index DATA.jsonl --into qdrant:PATH/COLLECTION`.",
                    retriever=repr(self),
                )
            self._encoder = QueryEncoder(
                self.embedder, normalized=True, dim=self._dim(), where=repr(self)
            )
        return self._encoder

    def _query(self, vectors: Any, k: int) -> list[list[Passage]]:
        from qdrant_client import models

        requests = [
            models.QueryRequest(query=v.tolist(), limit=k, with_payload=True) for v in vectors
        ]
        with self._lock:
            answers = self.client.query_batch_points(self.collection, requests=requests)
        return [[self._passage(p, r) for r, p in enumerate(a.points)] for a in answers]

    def _passage(self, point: Any, rank: int) -> Passage:
        payload = dict(point.payload or {})
        text = payload.pop(self.document_field, "")
        doc_id = payload.pop(_ID_KEY, point.id)
        payload["rank"] = rank + 1
        return Passage(str(text), score=float(point.score), id=doc_id, metadata=payload)

    def _search_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        return self._query(self._query_encoder().encode(queries), k)

    async def _asearch_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        encoder = await asyncio.to_thread(self._query_encoder)
        vectors = await encoder.aencode(queries)
        return await asyncio.to_thread(self._query, vectors, k)

    def close(self) -> None:
        """Release the collection (local mode: the directory's lock)."""
        with self._lock:
            self.client.close()
