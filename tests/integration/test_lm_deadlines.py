"""Deadlines on whole answers (issue 14, item 8) and the disk cache's lock (item 6), driven
through dsx.LM against dsx.testing.OpenAIServer: a server that trickles its answer one byte
at a time is cut at the attempt's deadline with LMTimeoutError, and an LM call does not wait
on another process's lock of the disk cache."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsx.errors import LMTimeoutError
from dsx.runtime import _openai_transport
from dsx.runtime import cache as cache_mod
from dsx.runtime.cache import configure_cache
from dsx.runtime.lm import LM, Transport
from dsx.testing.server import Fault, OpenAIServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]

#: The trickled answer takes ~20 s (a few hundred bytes, 0.05 s each); the deadline is 1 s.
DEADLINE = 1.0
#: A generous bound on how long the cut may take (no benchmark: far below the ~20 s).
BOUND = 8.0
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


def make(srv: OpenAIServer, transport: Transport, **kwargs: object) -> LM:
    return LM(
        "openai/dsx-test",
        api_base=srv.api_base,
        api_key="sk-test",
        transport=transport,
        num_retries=0,
        cache=False,
        **kwargs,  # type: ignore[arg-type]
    )


def ask() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


CASES = [
    pytest.param("openai", False, id="lean"),
    pytest.param("openai", True, id="lean-stream"),
]


# LiteLLM's sync path (a worker thread waited for with the deadline) is tested in
# test_lm_deadlines_litellm_sync.py; its async path is cut like the lean transport.
@pytest.mark.parametrize(("transport", "stream"), CASES)
def test_a_trickling_answer_is_cut_at_the_deadline_sync(
    srv: OpenAIServer, transport: Transport, stream: bool
) -> None:
    srv.inject(Fault.trickle(interval=0.05))
    lm = make(srv, transport, timeout=DEADLINE)
    start = time.monotonic()
    with pytest.raises(LMTimeoutError, match="timed out"):
        lm.forward(ask(), stream=stream)
    assert time.monotonic() - start < BOUND


@pytest.mark.parametrize(
    ("transport", "stream"),
    [
        *CASES,
        pytest.param("litellm", False, id="litellm"),
        pytest.param("litellm", True, id="litellm-stream"),
    ],
)
async def test_a_trickling_answer_is_cut_at_the_deadline_async(
    srv: OpenAIServer, transport: Transport, stream: bool
) -> None:
    srv.inject(Fault.trickle(interval=0.05))
    lm = make(srv, transport, timeout=DEADLINE)
    start = time.monotonic()
    with pytest.raises(LMTimeoutError, match="timed out"):
        await lm.aforward(ask(), stream=stream)
    assert time.monotonic() - start < BOUND


async def test_astream_is_cut_at_the_deadline_too(srv: OpenAIServer) -> None:
    srv.inject(Fault.trickle(interval=0.05))
    lm = make(srv, "openai", timeout=DEADLINE)
    start = time.monotonic()
    with pytest.raises(LMTimeoutError):
        async for _ in lm.astream(ask()):
            pass
    assert time.monotonic() - start < BOUND


def test_a_normal_answer_within_the_deadline_is_untouched(srv: OpenAIServer) -> None:
    for transport in ("openai", "litellm"):
        lm = make(srv, transport, timeout=5)  # type: ignore[arg-type]
        assert lm.forward([{"role": "user", "content": "hello"}]).outputs == ["hello"]


def test_the_default_deadline_is_finite_and_documented() -> None:
    assert _openai_transport.DEFAULT_TIMEOUT == 120.0
    lm = LM("openai/dsx-test", api_base="http://127.0.0.1:9/v1", api_key="k")
    call = lm._prepare([{"role": "user", "content": "x"}], {})
    assert lm._wire(call, stream=False).timeout == 120.0
    assert lm._litellm_kwargs(call, stream=False)["timeout"] == 120.0


def test_litellm_pool_saturation_warnings_are_quieted() -> None:
    from dsx.runtime.lm import _lib

    _lib()
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("LiteLLM")
    logger.addHandler(handler)
    pool = logging.getLogger("urllib3.connectionpool")
    pool.addHandler(handler)
    try:
        logger.warning(
            "aiohttp connection pool saturated: host=%s port=%s waited=%.3fs", "h", 1, 5.0
        )
        pool.warning("Connection pool is full, discarding connection: %s", "h")
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
        pool.removeHandler(handler)
    assert seen == ["something else"]


def test_an_lm_call_does_not_wait_on_another_process_holding_the_cache_lock(
    srv: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_mod, "_warned_lock", False)
    folder = tmp_path / "locked"
    configure_cache(disk_dir=folder).put("seed", {"outputs": ["x"]})
    script = textwrap.dedent(
        f"""
        import sqlite3, time
        con = sqlite3.connect({str(folder / "cache.db")!r}, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep(30)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        lm = LM("openai/dsx-test", api_base=srv.api_base, api_key="k", transport="openai")
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(5):
                assert lm.forward([{"role": "user", "content": f"q{i}"}]).outputs == [f"q{i}"]
        assert time.monotonic() - start < 15
        assert holder.poll() is None
        assert sum("locked by another process" in str(w.message) for w in caught) == 1
    finally:
        holder.kill()
        holder.wait()
