"""``dsx.retrievers.ChromadbRM``: passages from a Chroma collection, persistent and embedded.

Chroma runs inside this process and keeps its collections in a directory
(``persist_directory=``; in memory without one); ``client=`` takes a Chroma client you
made (an ``HttpClient`` for a server). dsx embeds (Chroma's own default embedding function,
which downloads a model, is never used); vectors are compared by cosine distance, and a
passage's score is the cosine similarity (``1 - distance``).

As with :class:`~dsx.retrievers.QdrantRM`, adding is idempotent and skips passages stored
unchanged, so ``dsx index ... --into chroma:DIR/COLLECTION`` resumes.
"""

from __future__ import annotations

import json
import os
import threading
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
from dsx.retrievers.qdrant import point_id

if TYPE_CHECKING:
    from dsx.runtime.embedder import Embedder

__all__ = ["ChromadbRM"]

_ID_KEY = "_dsx_id"  # the caller's id, as JSON (Chroma's ids are strings)


class ChromadbRM(Retriever):
    """A Chroma collection as a retriever (DSPy's ``ChromadbRM``).

    Args:
        collection_name: the collection.
        persist_directory: where Chroma keeps its data (created if missing); ``None``:
            in memory.
        embedder: what embeds queries and added passages (a :class:`dsx.Embedder`, a model
            name or a function) — the model the collection was built with.
        client: a Chroma client (instead of ``persist_directory``).
        k: passages per query when a call does not say (DSPy's default, 7).
    """

    def __init__(
        self,
        collection_name: str,
        persist_directory: str | None = None,
        *,
        embedder: Any,
        client: Any = None,
        k: int = 7,
    ) -> None:
        super().__init__(k=k)
        if not collection_name:
            raise ValueError("ChromadbRM needs a collection name")
        self.collection_name = collection_name
        self.persist_directory = persist_directory
        self.embedder: Embedder = as_embedder(embedder)
        self._lock = threading.RLock()
        self.client = client if client is not None else self._connect(persist_directory)
        self._collection: Any = None
        self._encoder: QueryEncoder | None = None

    def _connect(self, path: str | None) -> Any:
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # no phoning home, offline
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError:
            raise RetrieverError(missing_message("chroma", "chromadb", "ChromadbRM")) from None

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        try:
            if path is None:
                return chromadb.EphemeralClient(settings=settings)
            return chromadb.PersistentClient(path=path, settings=settings)
        except Exception as exc:
            raise RetrieverError(
                f"ChromadbRM cannot open {path!r}: {type(exc).__name__}: {exc}. A corrupt "
                "directory must be rebuilt (dsx index ... --into chroma:DIR/COLLECTION).",
                retriever=repr(self),
            ) from exc

    def __repr__(self) -> str:
        where = f", {self.persist_directory!r}" if self.persist_directory else ""
        return f"ChromadbRM({self.collection_name!r}{where}, k={self.k})"

    # -- the collection ------------------------------------------------------------------------
    def _get(self, *, create: bool) -> Any:
        if self._collection is None:
            with self._lock:
                if create:
                    try:
                        self._collection = self.client.get_or_create_collection(
                            self.collection_name,
                            embedding_function=None,
                            metadata={"hnsw:space": "cosine"},
                        )
                    except Exception as exc:  # e.g. a name Chroma refuses
                        raise self._error(exc) from exc
                else:
                    names = {getattr(c, "name", c) for c in self.client.list_collections()}
                    if self.collection_name not in names:
                        raise RetrieverError(
                            f"{self!r}: the collection {self.collection_name!r} does not exist. "
                            "Add passages with .add(...) or `dsx index DATA.jsonl --into "
                            "chroma:DIR/COLLECTION`.",
                            retriever=repr(self),
                        )
                    self._collection = self.client.get_collection(
                        self.collection_name, embedding_function=None
                    )
        return self._collection

    def count(self) -> int:
        """Passages in the collection (0 when it does not exist yet)."""
        try:
            return int(self._get(create=False).count())
        except RetrieverError:
            return 0

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
        written. Passages stored with the same id, text and metadata are skipped."""
        texts = check_passages(texts, ids, metadata)
        collection = self._get(create=True)
        written = 0
        for start in range(0, len(texts), batch_size):
            rows = []
            for i in range(start, min(start + batch_size, len(texts))):
                doc_id = ids[i] if ids is not None else texts[i]
                meta = dict(metadata[i]) if metadata is not None else {}
                meta[_ID_KEY] = json.dumps(doc_id)
                rows.append((point_id(doc_id), texts[i], meta))
            todo = self._changed(collection, rows) if skip_unchanged else rows
            if todo:
                vectors = embed_documents(self.embedder, [t for _, t, _ in todo], normalized=True)
                with self._lock:
                    try:
                        collection.upsert(
                            ids=[r[0] for r in todo],
                            embeddings=vectors.tolist(),
                            documents=[r[1] for r in todo],
                            metadatas=[r[2] for r in todo],
                        )
                    except Exception as exc:
                        raise self._error(exc) from exc
                written += len(todo)
            if progress is not None:
                progress(len(rows))
        return written

    def _changed(self, collection: Any, rows: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
        with self._lock:
            found = collection.get(ids=[r[0] for r in rows], include=["documents", "metadatas"])
        stored = {
            i: (doc, dict(meta or {}))
            for i, doc, meta in zip(
                found["ids"], found["documents"], found["metadatas"], strict=True
            )
        }
        return [r for r in rows if stored.get(r[0]) != (r[1], r[2])]

    def _error(self, exc: Exception) -> RetrieverError:
        text = str(exc)
        hint = (
            " The collection was built with another embedder: use that one, or index into a "
            "new collection."
            if "dimension" in text.lower()
            else ""
        )
        return RetrieverError(
            f"{self!r}: {type(exc).__name__}: {text}.{hint}", retriever=repr(self)
        )

    # -- searching ------------------------------------------------------------------------------
    def _search_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        collection = self._get(create=False)
        if self._encoder is None:
            self._encoder = QueryEncoder(self.embedder, normalized=True, dim=None, where=repr(self))
        vectors = self._encoder.encode(queries)
        with self._lock:
            try:
                n = collection.count()
                if n == 0:
                    return [[] for _ in queries]
                res = collection.query(
                    query_embeddings=vectors.tolist(),
                    n_results=min(k, n),
                    include=["documents", "metadatas", "distances"],
                )
            except Exception as exc:
                raise self._error(exc) from exc
        out = []
        for docs, metas, dists in zip(
            res["documents"], res["metadatas"], res["distances"], strict=True
        ):
            row = []
            for rank, (doc, meta, dist) in enumerate(zip(docs, metas, dists, strict=True)):
                meta = dict(meta or {})
                raw = meta.pop(_ID_KEY, None)
                meta["rank"] = rank + 1
                row.append(
                    Passage(
                        doc or "",
                        score=1.0 - float(dist),
                        id=json.loads(raw) if isinstance(raw, str) else raw,
                        metadata=meta,
                    )
                )
            out.append(row)
        return out
