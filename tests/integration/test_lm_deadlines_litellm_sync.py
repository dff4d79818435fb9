"""LiteLLM's sync path keeps the attempt's deadline too (issue 14, item 8): the openai SDK
bounds each read only, so a server trickling its answer one byte at a time held a sync,
non-streamed call for as long as it kept sending (and a stream for as long as one chunk
trickled). No time is measured here: before the fix the call returned the whole answer;
now it raises LMTimeoutError."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsx.errors import LMTimeoutError
from dsx.runtime import _openai_transport
from dsx.runtime._sync_deadline import call_within, iterate_within
from dsx.runtime.cache import configure_cache
from dsx.runtime.lm import LM
from dsx.testing.server import Fault, OpenAIServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]

#: A trickled answer of a few hundred bytes at 0.05 s each takes ~20 s; the deadline is 1 s.
PROMPT = "tell me a story " * 20


@pytest.fixture(scope="module")
def srv() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated(srv: OpenAIServer, tmp_path: Path) -> Iterator[None]:
    srv.clear_faults()
    configure_cache(disk_dir=tmp_path / "cache")
    yield
    srv.clear_faults()
    configure_cache()


def _lm(srv: OpenAIServer, timeout: float) -> LM:
    return LM(
        "openai/dsx-test",
        api_base=srv.api_base,
        api_key="sk-test",
        transport="litellm",
        num_retries=0,
        cache=False,
        timeout=timeout,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_a_trickling_answer_is_cut_at_the_deadline_litellm_sync(srv, stream):
    srv.inject(Fault.trickle(interval=0.05))
    with pytest.raises(LMTimeoutError, match="timed out") as info:
        _lm(srv, 1.0).forward([{"role": "user", "content": PROMPT}], stream=stream)
    assert "within 1.0s" in str(info.value)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_an_answer_within_the_deadline_is_untouched_litellm_sync(srv, stream):
    lm = _lm(srv, 30.0)
    got = lm.forward([{"role": "user", "content": "hello there"}], stream=stream)
    assert got.outputs == ["hello there"]


def test_call_within_hands_over_the_value_and_the_error():
    assert call_within(lambda: 42, 5.0) == 42
    assert call_within(lambda: 43, None) == 43

    def fails() -> None:
        raise KeyError("from the worker")

    with pytest.raises(KeyError, match="from the worker"):
        call_within(fails, 5.0)


def test_call_within_stops_waiting_at_the_deadline():
    release = threading.Event()
    with pytest.raises(_openai_transport.DeadlineExceeded):
        call_within(release.wait, 0.05)  # would wait forever
    release.set()


def test_iterate_within_yields_everything_and_closes_a_stream_left_early():
    closed = threading.Event()

    class Stream:
        def __iter__(self):
            yield from range(5)

        def close(self) -> None:
            closed.set()

    assert list(iterate_within(Stream, 5.0)) == [0, 1, 2, 3, 4]
    assert closed.wait(5)
    closed.clear()
    chunks = iterate_within(Stream, 5.0)
    assert next(chunks) == 0
    chunks.close()
    assert closed.wait(5)


def test_iterate_within_stops_waiting_at_the_deadline():
    release = threading.Event()

    def stuck() -> Iterator[int]:
        yield 1
        release.wait()  # one chunk that never ends
        yield 2

    chunks = iterate_within(stuck, 0.2)
    assert next(chunks) == 1
    with pytest.raises(_openai_transport.DeadlineExceeded):
        next(chunks)
    release.set()
