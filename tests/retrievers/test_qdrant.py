"""dsx.retrievers.QdrantRM over Qdrant's real embedded engine (local mode)."""

from __future__ import annotations

import asyncio
import importlib.util

import numpy as np
import pytest
from tests.retrievers._corpus import CORPUS, bow

import dsx
from dsx.retrievers import Passage, QdrantRM, RetrieverError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("qdrant_client") is None,
    reason="qdrant-client is not installed (pip install 'dsx[retrieval]'; make test installs it)",
)


@pytest.fixture
def rm(tmp_path):
    rm = QdrantRM("facts", embedder=bow, path=str(tmp_path / "qdrant"), k=2)
    rm.add(CORPUS, metadata=[{"source": f"doc{i}"} for i in range(len(CORPUS))])
    yield rm
    rm.close()


def test_search_returns_typed_passages(rm):
    out = rm.search("What is the capital of Germany?")
    assert len(out) == 2 and isinstance(out[0], Passage)
    assert out[0] == CORPUS[1] and out[0].id == CORPUS[1]  # no ids given: the text is the id
    assert out[0].metadata["source"] == "doc1" and out[0].rank == 1
    assert out[0].score >= out[1].score


def test_batches_sync_async_and_retrieve(rm):
    queries = ["France", "World Cup 1930", "deepest ocean"]
    sync = rm.search_batch(queries, k=1)
    asyn = asyncio.run(rm.asearch_batch(queries, k=1))
    assert [p[0] for p in sync] == [CORPUS[0], CORPUS[2], CORPUS[6]]
    assert [[p.to_dict() for p in ps] for ps in sync] == [[p.to_dict() for p in ps] for ps in asyn]
    with dsx.context(rm=rm):
        assert dsx.Retrieve(k=1)("highest mountain").passages == [CORPUS[3]]


def test_adding_again_is_idempotent_and_persists(tmp_path):
    path = str(tmp_path / "q")
    rm = QdrantRM("c", embedder=bow, path=path)
    assert rm.add(CORPUS[:5], ids=[10, 11, 12, 13, 14]) == 5
    assert rm.add(CORPUS[:6], ids=[10, 11, 12, 13, 14, 15]) == 1  # only the new one
    assert rm.add(CORPUS[:5], ids=[10, 11, 12, 13, 14], skip_unchanged=False) == 5
    assert rm.add(["Berlin is the capital of Germany, updated."], ids=[11]) == 1
    assert rm.count() == 6
    rm.close()
    again = QdrantRM("c", embedder=bow, path=path)  # a new engine over the same directory
    assert again.count() == 6
    top = again.search("Berlin Germany updated", k=1)[0]
    assert top.id == 11 and top.endswith("updated.")
    again.close()


def test_clear_errors(tmp_path):
    rm = QdrantRM("missing", embedder=bow, path=str(tmp_path / "q"))
    with pytest.raises(RetrieverError, match="does not exist.*dsx index"):
        rm.search("x")
    rm.add(CORPUS[:2])
    rm.embedder = dsx.Embedder(lambda texts: np.ones((len(texts), 3)))
    rm._encoder = None
    with pytest.raises(RetrieverError, match="3-dimensional vectors but the"):
        rm.search("x")
    with pytest.raises(RetrieverError, match="64-dimensional vectors but the embedder makes 3"):
        rm.add(["more"])
    rm.close()
    with pytest.raises(ValueError, match="not both"):
        QdrantRM("c", embedder=bow, path="p", url="http://127.0.0.1:6333")


def test_in_memory_and_given_client():
    from qdrant_client import QdrantClient

    rm = QdrantRM("m", embedder=bow)
    rm.add(CORPUS)
    assert rm.search("Nile river Africa", k=1)[0] == CORPUS[4]
    shared = QdrantClient(":memory:")
    rm2 = QdrantRM("m2", shared, 1, "text", embedder=bow)
    rm2.add(CORPUS)
    assert shared.collection_exists("m2") and rm2("Python language")[0] == CORPUS[5]
