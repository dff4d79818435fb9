"""dsx.retrievers.ChromadbRM over Chroma's real embedded, persistent engine."""

from __future__ import annotations

import asyncio
import importlib.util

import numpy as np
import pytest
from tests.retrievers._corpus import CORPUS, bow

import dsx
from dsx.retrievers import ChromadbRM, Passage, RetrieverError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("chromadb") is None,
    reason="chromadb is not installed (pip install 'dsx[chroma]'; make test installs it)",
)


def test_search_add_persist_and_retrieve(tmp_path):
    path = str(tmp_path / "chroma")
    rm = ChromadbRM("facts", path, embedder=bow, k=2)
    meta = [{"source": f"doc{i}"} for i in range(len(CORPUS))]
    ids = [f"d{i}" for i in range(len(CORPUS))]
    assert rm.add(CORPUS, ids=ids, metadata=meta) == len(CORPUS)
    assert rm.add(CORPUS, ids=ids, metadata=meta) == 0  # unchanged: skipped
    out = rm.search("What is the capital of Germany?")
    assert len(out) == 2 and isinstance(out[0], Passage)
    assert out[0] == CORPUS[1] and out[0].id == "d1" and out[0].metadata["source"] == "doc1"
    assert out[0].rank == 1 and out[0].score >= out[1].score and out[0].score <= 1.0 + 1e-6
    queries = ["France", "World Cup 1930", "deepest ocean"]
    sync = rm.search_batch(queries, k=1)
    asyn = asyncio.run(rm.asearch_batch(queries, k=1))
    assert [p[0] for p in sync] == [CORPUS[0], CORPUS[2], CORPUS[6]]
    assert [[p.to_dict() for p in ps] for ps in sync] == [[p.to_dict() for p in ps] for ps in asyn]
    with dsx.context(rm=rm):
        assert dsx.Retrieve(k=1)("highest mountain").passages == [CORPUS[3]]
    again = ChromadbRM("facts", path, embedder=bow)  # a new client over the same directory
    assert again.count() == len(CORPUS)
    assert again.search("river Africa", k=1)[0].id == "d4"


def test_integer_ids_survive_and_errors_are_clear(tmp_path):
    with pytest.raises(RetrieverError, match="Expected a name containing 3-512 characters"):
        ChromadbRM("c", str(tmp_path / "c"), embedder=bow).add(["x"])
    rm = ChromadbRM("ints", str(tmp_path / "c"), embedder=bow)
    with pytest.raises(RetrieverError, match="does not exist.*dsx index"):
        rm.search("x")
    assert rm.count() == 0
    rm.add(CORPUS[:3], ids=[1, 2, 3])
    assert rm.search("Berlin Germany", k=1)[0].id == 2
    other = ChromadbRM("ints", str(tmp_path / "c"), embedder=lambda t: np.ones((len(t), 3)))
    with pytest.raises(RetrieverError, match="dimension"):
        other.search("x")
