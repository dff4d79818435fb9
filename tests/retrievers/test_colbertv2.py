"""dsx.ColBERTv2 against a real ColBERTv2-protocol HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import pickle

import pytest

import dsx
from dsx.errors import RealLMCallForbidden
from dsx.retrievers import (
    ColBERTv2,
    Passage,
    RetrieverConnectionError,
    RetrieverError,
    RetrieverRequestError,
    RetrieverResponseError,
    RetrieverServerError,
    RetrieverTimeoutError,
)
from dsx.testing import ColBERTv2Server, Fault

pytestmark = pytest.mark.integration

CORPUS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The first FIFA World Cup was held in Uruguay in 1930.",
    "Mount Everest is the highest mountain above sea level.",
    "The Nile is a major north-flowing river in Africa.",
]


@pytest.fixture(scope="module")
def server():
    with ColBERTv2Server(CORPUS) as srv:
        yield srv


@pytest.fixture
def fresh(server):
    server.requests.clear()
    server._faults.clear()
    return server


def _rm(server, **kw) -> ColBERTv2:
    rm = ColBERTv2(server.url, **{"cache": False, **kw})
    rm.retry_base_delay = 0.001
    return rm


@pytest.mark.parametrize("post", [False, True])
def test_get_and_post_return_typed_passages(fresh, post):
    rm = _rm(fresh, post_requests=post)
    out = rm("When was the first World Cup held?", k=2)
    assert len(out) == 2
    top = out[0]
    assert isinstance(top, Passage) and isinstance(top, str)
    assert top == CORPUS[2]
    assert top.id == top.pid == top["pid"] == 2
    assert top.score is not None and top.score > out[1].score
    assert top.rank == 1 and top["rank"] == 1
    assert 0 < top.metadata["prob"] <= 1
    assert top["text"] == top.long_text == top["long_text"] == CORPUS[2]
    assert fresh.requests[-1].method == ("POST" if post else "GET")
    assert fresh.requests[-1].k == 2


def test_simplify_gives_plain_strings_and_port_is_dspy_style(fresh):
    base, port = fresh.url.rsplit(":", 1)
    port_no, path = port.split("/", 1)
    rm = ColBERTv2(base, port=f"{port_no}/{path}", cache=False)
    out = rm("capital of Germany", k=1, simplify=True)
    assert out == [CORPUS[1]] and type(out[0]) is str


def test_default_k_is_ten_like_dspy_and_topk_is_cut_to_k(server):
    def search(query, k):
        return [{"text": f"p{i}", "pid": i, "score": 1.0 / (i + 1)} for i in range(k + 5)]

    with ColBERTv2Server(search=search) as srv:
        rm = _rm(srv)
        assert rm.k == 10
        assert len(rm("anything")) == 10
        assert [p.text for p in rm("x", k=3)] == ["p0", "p1", "p2"]


def test_batch_sync_and_async_agree_and_keep_order(fresh):
    rm = _rm(fresh, max_concurrency=3)
    queries = ["France", "Germany", "World Cup", "Everest", "Nile", "France"]
    sync = rm.search_batch(queries, k=1)
    asyn = asyncio.run(rm.asearch_batch(queries, k=1))
    assert [p[0].id for p in sync] == [0, 1, 2, 3, 4, 0]
    assert [[p.to_dict() for p in ps] for ps in sync] == [[p.to_dict() for p in ps] for ps in asyn]
    assert len(fresh.requests) == 12
    assert rm.search_batch([]) == []


async def test_async_search(fresh):
    rm = _rm(fresh, post_requests=True)
    out = await rm.asearch("highest mountain", k=1)
    assert out[0].id == 3
    assert (await rm.acall("river in Africa", 1))[0].id == 4


@pytest.mark.parametrize(
    "fault",
    [
        Fault.server_error(),
        Fault.unavailable(),
        Fault.rate_limit(retry_after=None),
        Fault.connection_reset(),
        Fault.truncated_stream(),
        Fault.malformed_json(),
    ],
    ids=lambda f: f.kind if f.kind != "status" else str(f.status_code),
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_transient_failures_are_retried(fresh, fault, mode):
    rm = _rm(fresh)
    fresh.inject(fault, fault)
    if mode == "sync":
        out = rm.search("capital of France", k=1)
    else:
        out = asyncio.run(rm.asearch("capital of France", k=1))
    assert out[0].id == 0
    assert len(fresh.requests) == 3


def test_retries_run_out_with_a_typed_error_saying_how_many(fresh):
    rm = _rm(fresh, num_retries=2)
    fresh.inject(*[Fault.server_error("index is rebuilding")] * 3)
    with pytest.raises(RetrieverServerError) as info:
        rm.search("France")
    err = info.value
    assert err.status_code == 500 and err.retryable and err.attempts == 3
    assert "index is rebuilding" in str(err) and fresh.url in str(err)
    assert isinstance(err, dsx.DsxError)


def test_malformed_json_is_a_response_error(fresh):
    rm = _rm(fresh, num_retries=0)
    fresh.inject(Fault.malformed_json())
    with pytest.raises(RetrieverResponseError, match="not JSON") as info:
        rm.search("France")
    assert isinstance(info.value, ValueError)


def test_client_errors_are_not_retried(fresh):
    rm = _rm(fresh)
    fresh.inject(Fault.status(404))
    with pytest.raises(RetrieverRequestError, match="HTTP 404.*Check the URL") as info:
        rm.search("France")
    assert info.value.attempts == 1 and not info.value.retryable
    assert len(fresh.requests) == 1


def test_an_error_answer_and_a_missing_topk_are_not_retried():
    answers = iter([{"error": True, "message": "index not loaded"}, {"results": []}])
    with ColBERTv2Server(search=lambda q, k: next(answers)) as srv:
        rm = _rm(srv)
        with pytest.raises(RetrieverResponseError, match="index not loaded"):
            rm.search("q")
        with pytest.raises(RetrieverResponseError, match="no 'topk'"):
            rm.search("q")
        assert len(srv.requests) == 2


def test_a_passage_without_text_is_a_response_error():
    with (
        ColBERTv2Server(search=lambda q, k: [{"pid": 1, "score": 2.0}]) as srv,
        pytest.raises(RetrieverResponseError, match=r"topk\[0\]"),
    ):
        _rm(srv).search("q")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_hanging_server_times_out(mode):
    with ColBERTv2Server(CORPUS) as srv:
        rm = _rm(srv, timeout=0.2, num_retries=1)
        srv.inject(Fault.timeout(), Fault.timeout())
        with pytest.raises(RetrieverTimeoutError, match="no answer within 0.2 s") as info:
            if mode == "sync":
                rm.search("France")
            else:
                asyncio.run(rm.asearch("France"))
        assert isinstance(info.value, TimeoutError) and info.value.attempts == 2


def test_a_server_that_is_down_is_a_connection_error():
    srv = ColBERTv2Server(CORPUS).start()
    url = srv.url
    srv.stop()
    rm = ColBERTv2(url, num_retries=1, cache=False)
    rm.retry_base_delay = 0.001
    with pytest.raises(RetrieverConnectionError, match="Is it running") as info:
        rm.search("France")
    assert isinstance(info.value, ConnectionError) and info.value.attempts == 2


def test_answers_are_cached_in_the_dsx_cache(fresh, tmp_path):
    dsx.configure_cache(disk_dir=tmp_path / "cache")
    try:
        rm = _rm(fresh, cache=True)
        first = rm.search("capital of France", k=2)
        again = ColBERTv2(fresh.url).search("capital of France", k=2)  # a new client
        assert len(fresh.requests) == 1
        assert [p.to_dict() for p in again] == [p.to_dict() for p in first]
        assert again[0].rank == 1
        rm.search("capital of France", k=3)  # another k is another request
        assert len(fresh.requests) == 2
        # The disk layer answers a new process too (here: a fresh cache object).
        dsx.configure_cache(disk_dir=tmp_path / "cache")
        assert ColBERTv2(fresh.url).search("capital of France", k=2) == first
        assert len(fresh.requests) == 2
    finally:
        dsx.configure_cache()


def test_failures_are_not_cached(fresh, tmp_path):
    dsx.configure_cache(disk_dir=tmp_path / "cache")
    try:
        rm = _rm(fresh, cache=True, num_retries=0)
        fresh.inject(Fault.server_error())
        with pytest.raises(RetrieverError):
            rm.search("Nile")
        assert rm.search("Nile")[0].id == 4
    finally:
        dsx.configure_cache()


def test_real_requests_are_forbidden_in_tests():
    rm = ColBERTv2("http://20.102.90.50:2017/wiki17_abstracts", cache=False)
    with pytest.raises(RealLMCallForbidden, match="ColBERTv2Server"):
        rm.search("anything")


def test_bad_arguments():
    rm = ColBERTv2("http://127.0.0.1:9", cache=False)
    with pytest.raises(ValueError, match="k must be"):
        rm.search("q", k=0)
    with pytest.raises(TypeError, match="query must be a string"):
        rm.search(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of queries"):
        rm.search_batch("one query")
    with pytest.raises(ValueError):
        ColBERTv2("http://x", num_retries=-1)


def test_client_pickles_and_is_usable_after(fresh):
    rm = _rm(fresh)
    rm.search("France")
    copy = pickle.loads(pickle.dumps(rm))
    assert copy.search("Germany", k=1)[0].id == 1
    rm.close()


def test_dsx_top_level_exports(fresh):
    assert dsx.ColBERTv2 is ColBERTv2
