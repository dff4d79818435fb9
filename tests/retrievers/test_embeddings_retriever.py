"""dsx.retrievers.Embeddings: exact NumPy search, FAISS for large corpora, save/load."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging

import numpy as np
import pytest
from tests.retrievers._corpus import CORPUS, DIM, bow

import dsx
from dsx.retrievers import Embeddings, Passage, RetrieverError

HAS_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss-cpu is not installed")


def _calls():
    calls: list[int] = []

    def embed(texts):
        calls.append(len(texts))
        return bow(texts)

    return embed, calls


def test_small_corpus_uses_exact_numpy_search_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="dsx.retrievers"):
        rm = Embeddings(CORPUS, bow, k=2)
    assert rm.backend == "numpy" and rm.dim == DIM
    assert "exact NumPy search over 8 x 64-dim" in rm.describe()
    assert "below brute_force_threshold" in caplog.text
    out = rm.search("What is the capital of Germany?")
    assert len(out) == 2 and isinstance(out[0], Passage)
    assert out[0] == CORPUS[1] and out[0].id == 1 and out[0].rank == 1
    assert out[0].score >= out[1].score
    assert -1.0 <= out[1].score <= 1.0 + 1e-6  # cosine


def test_dspy_forward_shape_and_k():
    rm = Embeddings(CORPUS, bow, k=3)
    pred = rm.forward("highest mountain")
    assert pred.passages[0] == CORPUS[3] and pred.indices[0] == 3 and len(pred.scores) == 3
    assert len(rm.search("ocean", k=100)) == len(CORPUS)  # k larger than the corpus


def test_ids_and_metadata_travel_with_passages():
    meta = [{"source": f"doc{i}"} for i in range(len(CORPUS))]
    ids = [f"id-{i}" for i in range(len(CORPUS))]
    rm = Embeddings(CORPUS, bow, k=1, ids=ids, metadata=meta)
    top = rm.search("river in Africa")[0]
    assert top.id == "id-4" and top.metadata["source"] == "doc4" and top.metadata["index"] == 4


def test_batches_sync_and_async_agree_and_async_queries_share_one_embedder_call():
    embed, calls = _calls()
    rm = Embeddings(CORPUS, embed, k=2)
    assert sum(calls) == len(CORPUS)
    calls.clear()
    queries = ["France", "World Cup 1930", "programming language", "deepest ocean"]
    sync = rm.search_batch(queries)
    assert calls == [4]

    async def concurrently():
        return await asyncio.gather(*(rm.asearch(q + " ") for q in queries))

    calls.clear()
    asyn = asyncio.run(concurrently())
    assert calls == [4]  # four concurrent queries, one embedder call
    assert [[p.to_dict() for p in ps] for ps in sync] == [[p.to_dict() for p in ps] for ps in asyn]


def test_query_embeddings_are_cached_by_the_embedder():
    embed, calls = _calls()
    rm = Embeddings(CORPUS, dsx.Embedder(embed), k=1)
    calls.clear()
    rm.search("France")
    rm.search("France")
    assert calls == [1]


def test_with_retrieve():
    with dsx.context(rm=Embeddings(CORPUS, bow)):
        assert dsx.Retrieve(k=1)("photosynthesis sugar").passages == [CORPUS[7]]


@needs_faiss
def test_large_corpus_gets_faiss_and_agrees_with_exact_search(caplog):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    corpus = [" ".join(rng.choice(words, 12)) for _ in range(400)]
    exact = Embeddings(corpus, bow, k=5)
    with caplog.at_level(logging.INFO, logger="dsx.retrievers"):
        fast = Embeddings(corpus, bow, k=5, brute_force_threshold=100, nprobe=1000)
    assert exact.backend == "numpy" and fast.backend == "faiss"
    assert "FAISS IVF index over 400 x 64-dim" in caplog.text
    queries = corpus[:20]
    a, b = exact.search_batch(queries), fast.search_batch(queries)
    for x, y in zip(a, b, strict=True):  # nprobe covers every list: the same top scores
        assert np.allclose([p.score for p in x], [p.score for p in y], atol=1e-5)
    assert asyncio.run(fast.asearch(queries[0]))[0].score == pytest.approx(1.0, abs=1e-5)


def test_faiss_missing_falls_back_with_a_warning(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.warns(RuntimeWarning, match="pip install faiss-cpu"):
        rm = Embeddings(CORPUS, bow, brute_force_threshold=2)
    assert rm.backend == "numpy" and "FAISS unavailable" in rm.describe()
    with pytest.raises(RetrieverError, match="faiss-cpu"):
        Embeddings(CORPUS, bow, backend="faiss")


def test_save_and_load_without_embedding_again(tmp_path):
    rm = Embeddings(CORPUS, bow, k=2, ids=list("abcdefgh"))
    rm.save(tmp_path / "idx")
    embed, calls = _calls()
    again = Embeddings.from_saved(tmp_path / "idx", embed)
    assert calls == []
    assert again.k == 2 and again.search("Berlin Germany")[0].id == "b"
    assert calls == [1]


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="non-empty corpus"):
        Embeddings([], bow)
    with pytest.raises(TypeError, match="strings"):
        Embeddings(["a", 3], bow)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="ids has 1 entries for 8"):
        Embeddings(CORPUS, bow, ids=[1])
    rm = Embeddings(CORPUS, bow)
    rm.embedder = dsx.Embedder(lambda texts: np.ones((len(texts), 3)))
    rm._encoder.embedder = rm.embedder
    with pytest.raises(RetrieverError, match="3-dimensional vectors but the index holds 64"):
        rm.search("x")
    with pytest.raises(RetrieverError, match="No saved Embeddings index"):
        Embeddings.from_saved(tmp_path / "nothing", bow)
    Embeddings(CORPUS, bow).save(tmp_path / "idx")
    (tmp_path / "idx" / "corpus_embeddings.npy").write_bytes(b"garbage")
    with pytest.raises(RetrieverError, match="unreadable"):
        Embeddings.from_saved(tmp_path / "idx", bow)
    (tmp_path / "idx" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(RetrieverError):
        Embeddings.from_saved(tmp_path / "idx", bow)
