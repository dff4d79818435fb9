"""Embedder, Evaluate, BootstrapFewShot and KNNFewShot over the real LiteLLM path, against
dsx.testing.OpenAIServer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

import dsx
from dsx.errors import AuthenticationError
from dsx.runtime.embedder import Embedder
from dsx.runtime.evaluate import Evaluate
from dsx.runtime.lm import LM
from dsx.runtime.metrics import exact_match
from dsx.runtime.usage import track_usage
from dsx.teleprompt import BootstrapFewShot, KNNFewShot
from dsx.testing.server import Fault, OpenAIServer, _embedding

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]


def answer(request):
    user = request["messages"][-1]["content"]
    q = re.search(r"<<< question >>>\n(.*?)(\n\n|$)", user, re.S).group(1)
    return f"<<< answer >>>\n{'yes' if 'even' in q else 'no'}\n\n<<< end >>>"


def parity_set(n):
    return [
        dsx.Example(
            question=f"{'even' if i % 2 == 0 else 'odd'} {i}", answer="yes" if i % 2 == 0 else "no"
        ).with_inputs("question")
        for i in range(n)
    ]


@pytest.fixture
def server():
    with OpenAIServer(answer, latency=0.01) as srv:
        yield srv


def test_embedder_through_litellm(server):
    embed = Embedder(
        "openai/text-embedding-3-small", api_base=server.api_base, api_key="x", batch_size=2
    )
    with track_usage() as usage:
        vecs = embed(["alpha", "beta", "gamma"])
    assert vecs.shape == (3, 8)
    assert np.allclose(vecs[1], _embedding("beta", 8), atol=1e-6)
    embeds = [r for r in server.requests if r.path.endswith("/embeddings")]
    assert len(embeds) == 2 and embeds[0].body["input"] == ["alpha", "beta"]
    assert usage.total_tokens > 0
    more = asyncio.run(embed.acall(["delta", "alpha", "eps", "zeta"]))  # alpha is cached
    assert (
        more.shape == (4, 8)
        and len([r for r in server.requests if r.path.endswith("/embeddings")]) == 4
    )
    assert Embedder(
        "openai/text-embedding-3-small", api_base=server.api_base, api_key="x", dimensions=4
    )("q").shape == (4,)


def test_embedder_retries_and_maps_errors(server):
    embed = Embedder("openai/text-embedding-3-small", api_base=server.api_base, api_key="x")
    embed.retry_base_delay = 0.001
    server.inject(Fault.server_error())
    assert embed("one").shape == (8,)
    server.inject(Fault.status(401, "bad key"))
    with pytest.raises(AuthenticationError, match="authentication failed"):
        embed("two")


def test_evaluate_and_bootstrap_through_the_lm_client(server):
    lm = LM("openai/test", api_base=server.api_base, api_key="x", cache=False)
    program = dsx.Predict("question -> answer", lm=lm)
    result = Evaluate(
        devset=parity_set(32), metric=exact_match(), num_threads=16, display_progress=False
    )(program)
    assert result.score == 100.0 and result.errors == 0
    assert server.max_in_flight > 1  # the requests overlapped
    optimizer = BootstrapFewShot(
        metric=exact_match(), max_bootstrapped_demos=2, max_labeled_demos=2, display_progress=False
    )
    compiled = optimizer.compile(program, trainset=parity_set(8))
    assert [d.get("dsx_augmented") for d in compiled.demos] == [
        True,
        True,
    ] and optimizer.lm_calls >= 2


def test_knn_with_provider_embeddings(server):
    embed = Embedder("openai/text-embedding-3-small", api_base=server.api_base, api_key="x")
    lm = LM("openai/test", api_base=server.api_base, api_key="x", cache=False)
    train = parity_set(6)
    compiled = KNNFewShot(k=2, vectorizer=embed, display_progress=False).compile(
        dsx.Predict("question -> answer", lm=lm), trainset=train
    )
    # The pseudo-embeddings are hashes of the text, so the exact same input is its own nearest neighbour.
    assert compiled(question="odd 3").answer == "no"
    sent = server.requests[-1].body["messages"]
    assert sent[1]["content"] == "<<< question >>>\nodd 3"
