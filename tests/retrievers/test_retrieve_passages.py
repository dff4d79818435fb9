"""Passage (typed, DSPy-compatible) and dsx.Retrieve with configured retrievers."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle

import pytest

import dsx
from dsx.retrievers import ColBERTv2, Passage, Retriever, to_passage
from dsx.testing import ColBERTv2Server

CORPUS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The first FIFA World Cup was held in Uruguay in 1930.",
]


def test_a_passage_is_its_text_and_carries_score_id_metadata():
    p = Passage("Paris is in France.", score=1, id=7, metadata={"rank": 1, "source": "wiki"})
    assert p == "Paris is in France." and hash(p) == hash("Paris is in France.")
    assert p.upper() == "PARIS IS IN FRANCE." and p[0:5] == "Paris" and p[0] == "P"
    assert p.score == 1.0 and isinstance(p.score, float)
    assert p.id == p.pid == p["id"] == p["pid"] == 7
    assert p.rank == 1 and p["source"] == "wiki" and p.get("missing", "d") == "d"
    assert type(p.text) is str and p.long_text == p["long_text"] == p["text"]
    assert list(p.keys()) == ["text", "long_text", "score", "id", "pid", "rank", "source"]
    assert json.dumps([p]) == '["Paris is in France."]'
    assert p.to_dict() == {"text": p.text, "score": 1.0, "id": 7, "rank": 1, "source": "wiki"}
    with pytest.raises(KeyError):
        p["nope"]
    with pytest.raises(TypeError):
        p.metadata["x"] = 1  # type: ignore[index]
    assert "score=1" in repr(p) and "id=7" in repr(p)


def test_passages_pickle_and_copy_with_their_fields():
    p = Passage("text", score=0.5, id="a", metadata={"m": [1]})
    for q in (pickle.loads(pickle.dumps(p)), copy.copy(p), copy.deepcopy(p)):
        assert q == p and q.to_dict() == p.to_dict() and isinstance(q, Passage)


@pytest.mark.parametrize(
    ("item", "text", "score", "pid"),
    [
        ("plain", "plain", None, None),
        ({"text": "t", "score": 2, "pid": 3, "rank": 1}, "t", 2.0, 3),
        ({"long_text": "lt", "id": "x"}, "lt", None, "x"),
        ({"other": 1}, "{'other': 1}", None, None),
    ],
)
def test_to_passage(item, text, score, pid):
    p = to_passage(item)
    assert (p.text, p.score, p.id) == (text, score, pid)


class _Doc:  # DSPy's dotdict-like objects with attributes
    long_text = "from an object"
    score = 0.25
    pid = 9


def test_retrieve_with_a_plain_function_gives_typed_passages():
    def search(query, k):
        return [{"text": f"{query} {i}", "score": 1 / (i + 1), "pid": i} for i in range(k)]

    with dsx.context(rm=search):
        out = dsx.Retrieve(k=2)("q")
    assert out.passages == ["q 0", "q 1"]
    assert [p.score for p in out.passages] == [1.0, 0.5]
    out = dsx.Retrieve(k=1, rm=lambda q, k: [_Doc()])("q")
    assert out.passages[0].text == "from an object" and out.passages[0].id == 9
    assert dsx.Retrieve(rm=lambda q, k: "one passage")("q").passages == ["one passage"]


def test_retrieve_with_an_async_function_sync_and_async():
    async def search(query, k):
        return [query] * k

    r = dsx.Retrieve(k=2, rm=search)
    assert r("x").passages == ["x", "x"]
    assert asyncio.run(r.acall("y")).passages == ["y", "y"]


def test_retrieve_without_a_retriever_says_how_to_configure_one():
    with pytest.raises(dsx.DsxError, match=r"dsx.configure\(rm=...\)"):
        dsx.Retrieve()("q")


class _Counting(Retriever):
    """A minimal Retriever: shows what a subclass implements."""

    def __init__(self):
        super().__init__(k=2)
        self.calls: list[tuple[list[str], int]] = []

    def _search_batch(self, queries, k):
        self.calls.append((queries, k))
        return [[Passage(f"{q}:{i}", score=-i, id=i) for i in range(k)] for q in queries]


def test_a_retriever_subclass_gets_sync_async_and_batches():
    rm = _Counting()
    assert rm("a") == ["a:0", "a:1"]
    assert rm.search("a", 1) == ["a:0"]
    assert asyncio.run(rm.asearch("b")) == ["b:0", "b:1"]
    assert rm.search_batch(["c", "d"], k=1) == [["c:0"], ["d:0"]]
    assert asyncio.run(rm.asearch_batch(["e"])) == [["e:0", "e:1"]]
    assert rm.calls[-2] == (["c", "d"], 1)
    with dsx.context(rm=rm):
        pred = dsx.Retrieve(k=3)("q")
        assert pred.passages == ["q:0", "q:1", "q:2"] and pred.passages[2].score == -2
        assert asyncio.run(dsx.Retrieve(k=1).acall("z")).passages == ["z:0"]


@pytest.mark.integration
def test_retrieve_with_colbertv2_as_in_dspy():
    with ColBERTv2Server(CORPUS) as srv:
        dsx.configure(rm=ColBERTv2(srv.url, cache=False))
        try:
            pred = dsx.Retrieve(k=2)("Where was the first World Cup?")
            assert isinstance(pred, dsx.Prediction)
            assert pred.passages[0] == CORPUS[2] and pred.passages[0].id == 2
            assert len(pred.passages) == 2 and all(isinstance(p, str) for p in pred.passages)
            pred = asyncio.run(dsx.Retrieve(k=1).acall("capital of Germany"))
            assert pred.passages == [CORPUS[1]]
            assert srv.requests[-1].k == 1
        finally:
            dsx.configure(rm=None)


def test_retrieve_in_a_module_with_a_predictor_sees_strings():
    from dsx.testing import DummyLM

    class RAG(dsx.Module):
        def __init__(self):
            self.retrieve = dsx.Retrieve(k=2)
            self.answer = dsx.Predict("context: list[str], question -> answer")

        def forward(self, question):
            context = self.retrieve(question).passages
            return self.answer(context=context, question=question)

    rm = _Counting()
    lm = DummyLM([{"answer": "ok"}])
    with dsx.context(rm=rm, lm=lm):
        assert RAG()(question="q").answer == "ok"
    assert "q:1" in str(lm.history[-1]["messages"])
