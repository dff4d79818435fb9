"""Retrievers: typed passages from a ColBERTv2 server, an embeddings index, or a vector store.

Every retriever is a :class:`Retriever` — ``search``/``asearch`` for one query,
``search_batch``/``asearch_batch`` for many, all returning :class:`Passage` lists (strings
with ``score``, ``id`` and ``metadata``) — and works with ``dsx.Retrieve`` once configured
with ``dsx.configure(rm=...)``. Engines load on first use: ``import dsx.retrievers`` imports
none of httpx, numpy, faiss, qdrant-client or chromadb.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dsx.retrievers._base import Retriever as Retriever
from dsx.retrievers._errors import RetrieverConnectionError as RetrieverConnectionError
from dsx.retrievers._errors import RetrieverError as RetrieverError
from dsx.retrievers._errors import RetrieverRequestError as RetrieverRequestError
from dsx.retrievers._errors import RetrieverResponseError as RetrieverResponseError
from dsx.retrievers._errors import RetrieverServerError as RetrieverServerError
from dsx.retrievers._errors import RetrieverTimeoutError as RetrieverTimeoutError
from dsx.retrievers._passage import Passage as Passage
from dsx.retrievers._passage import to_passage as to_passage

if TYPE_CHECKING:
    from dsx.retrievers.chroma import ChromadbRM as ChromadbRM
    from dsx.retrievers.colbertv2 import ColBERTv2 as ColBERTv2
    from dsx.retrievers.embeddings import Embeddings as Embeddings
    from dsx.retrievers.qdrant import QdrantRM as QdrantRM

_LAZY = {
    "ChromadbRM": "dsx.retrievers.chroma",
    "ColBERTv2": "dsx.retrievers.colbertv2",
    "Embeddings": "dsx.retrievers.embeddings",
    "QdrantRM": "dsx.retrievers.qdrant",
}

__all__ = [
    "ChromadbRM",
    "ColBERTv2",
    "Embeddings",
    "Passage",
    "QdrantRM",
    "Retriever",
    "RetrieverConnectionError",
    "RetrieverError",
    "RetrieverRequestError",
    "RetrieverResponseError",
    "RetrieverServerError",
    "RetrieverTimeoutError",
    "to_passage",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dsx.retrievers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
