"""dsx.LM against dsx.testing.OpenAIServer on 127.0.0.1, through both transports.

Every test that takes the ``make`` (or ``transport``) fixture runs twice: through the real
LiteLLM path (``transport="litellm"``) and through dsx's lean HTTP client
(``transport="openai"``). Both must behave the same. ``test_transport.py`` covers what only
the lean client has (routing, its HTTP sessions, server-sent events, price lookup).
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dsx
from dsx.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    LMConnectionError,
    LMError,
    LMResponseError,
    LMTimeoutError,
    ModelNotFoundError,
    RateLimitError,
    RealLMCallForbidden,
    ServerError,
)
from dsx.runtime import lm as lm_mod
from dsx.runtime.cache import configure_cache, get_cache, request_key
from dsx.runtime.lm import LM, Transport, _StreamAssembler
from dsx.runtime.lm_base import GLOBAL_HISTORY
from dsx.runtime.usage import track_usage
from dsx.testing import format_answer
from dsx.testing.server import Fault, OpenAIServer, Reply, ReplyLike

pytestmark = [
    pytest.mark.integration,
    # LiteLLM's internal pydantic warnings (dsx.LM filters them too, but pytest resets
    # warning filters between tests).
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]

SECRET = "sk-test-SECRET-0123456789"
TRANSPORTS: list[Transport] = ["litellm", "openai"]
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def srv() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated(srv: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    srv.clear_faults()
    srv.clear_requests()
    srv.latency = 0.0
    configure_cache(disk_dir=tmp_path / "cache")
    monkeypatch.setattr(LM, "retry_base_delay", 0.001)
    monkeypatch.setattr(LM, "retry_max_delay", 0.005)
    yield
    configure_cache()


def _make(
    srv: OpenAIServer, model: str = "openai/dsx-test", *, transport: Transport, **kwargs: Any
) -> LM:
    return LM(model, api_base=srv.api_base, api_key=SECRET, transport=transport, **kwargs)


Make = Callable[..., LM]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Transport:
    """Each test that takes it runs once per transport: LiteLLM, then the lean client."""
    value: Transport = request.param
    return value


@pytest.fixture
def make(transport: Transport) -> Make:
    """``make(srv, model, **settings)``: an LM for ``srv`` on the test's transport."""
    return functools.partial(_make, transport=transport)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- completions --------------------------------------------------------------------------


def test_chat_completion_fills_outputs_usage_cost_model_and_history(
    make: Make, srv: OpenAIServer
) -> None:
    lm = make(srv, "openai/gpt-4o-mini", temperature=0.3, max_tokens=50)
    assert lm("hello big world") == ["hello big world"]
    entry = lm.history[-1]
    assert entry["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    # LiteLLM's price list knows gpt-4o-mini: 3 * $0.15 + 3 * $0.60 per million tokens.
    assert entry["cost"] == pytest.approx(3 * 0.15e-6 + 3 * 0.6e-6)
    assert entry["model"] == "openai/gpt-4o-mini" and entry["cached"] is False
    assert GLOBAL_HISTORY[-1] is entry
    sent = srv.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": ask("hello big world"),
        "temperature": 0.3,
        "max_tokens": 50,
    }
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    if lm.transport == "litellm":
        assert sent.headers["x-stainless-retry-count"] == "0"  # the SDK never retries under us
    else:
        assert sent.headers["user-agent"] == "dsx"


def test_unknown_model_has_no_cost_and_does_not_crash(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, "openai/no-such-price")
    response = lm.request(ask("a b"))
    assert response.outputs == ["a b"] and response.cost is None
    assert response.usage["total_tokens"] == 4


def test_text_completion_joins_messages_into_one_prompt(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, "openai/gpt-3.5-turbo-instruct", model_type="text")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."}]
    assert lm(messages=messages) == ["Be brief.\n\nHi."]
    sent = srv.requests[-1]
    assert sent.path == "/v1/completions" and sent.body["prompt"] == "Be brief.\n\nHi."
    assert lm.history[-1]["cost"] > 0


def test_n_gives_n_choices(make: Make) -> None:
    with OpenAIServer(script=[["one", "two", "three"]]) as server:
        lm = make(server)
        assert lm("q", n=3) == ["one", "two", "three"]
        assert server.requests[0].body["n"] == 3


def test_tool_call_replies_keep_text_or_become_json(make: Make) -> None:
    call = {"name": "search", "arguments": {"q": "paris"}, "id": "call_1"}
    script = [
        Reply(content=None, tool_calls=[call]),
        Reply(content="Let me look.", tool_calls=[call]),
    ]
    with OpenAIServer(script=script) as server:
        lm = make(server, cache=False)
        only_calls = json.loads(lm("q")[0])
        assert only_calls == {
            "tool_calls": [{"id": "call_1", "name": "search", "arguments": {"q": "paris"}}]
        }
        assert lm("q") == ["Let me look."]


# -- cache --------------------------------------------------------------------------------


def test_second_identical_call_is_a_cache_hit_not_counted_twice(
    make: Make, srv: OpenAIServer
) -> None:
    lm = make(srv, "openai/gpt-4o-mini")
    with track_usage() as usage:
        first = lm.request(ask("cache me"))
        second = lm.request(ask("cache me"))
    assert srv.request_count == 1
    assert not first.cached and second.cached
    assert second.outputs == first.outputs and second.usage == first.usage
    assert lm.history[-1]["cached"] is True
    assert usage.get_total_tokens() == {"openai/gpt-4o-mini": first.usage}
    assert usage.cost == pytest.approx(first.cost)


def test_cache_false_bypasses_the_cache(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False)
    lm("again")
    lm("again")
    assert srv.request_count == 2
    make(srv)("again")
    make(srv)("again")
    assert srv.request_count == 3
    assert lm("again", cache=True) == ["again"]  # per call, too
    assert srv.request_count == 3


def test_sync_and_async_share_entries(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv)
    lm("shared entry")
    assert asyncio.run(lm.acall("shared entry")) == ["shared entry"]
    assert srv.request_count == 1


def test_transport_settings_do_not_split_the_cache(
    make: Make, srv: OpenAIServer, transport: Transport
) -> None:
    make(srv, timeout=30, num_retries=1)("same")
    other = LM(
        "openai/dsx-test",
        api_base=srv.api_base.replace("127.0.0.1", "localhost"),
        api_key="x",
        transport="openai" if transport == "litellm" else "litellm",  # nor does the transport
    )
    assert other("same") == ["same"]
    assert srv.request_count == 1


def test_rollout_ids_give_distinct_cached_samples(
    make: Make, srv: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = make(srv, temperature=1.0)
    for rid in (1, 2, 1, 2):
        lm("sample", rollout_id=rid)
    lm("sample")
    assert srv.request_count == 3
    assert all("rollout_id" not in r.body for r in srv.requests)  # never sent
    monkeypatch.setattr(lm_mod, "_warned_rollout", False)
    with pytest.warns(UserWarning, match="temperature=0"):
        make(srv, temperature=0)("sample", rollout_id=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(srv, temperature=0)("sample", rollout_id=8)  # once per process


def test_disk_cache_survives_a_fresh_memory_layer_and_a_new_process(
    make: Make, srv: OpenAIServer, tmp_path: Path
) -> None:
    directory = tmp_path / "cache"
    make(srv)("persist me")
    configure_cache(disk_dir=directory)  # same dir, empty memory
    assert len(get_cache()) == 0
    assert make(srv)("persist me") == ["persist me"]
    assert srv.request_count == 1
    probe = (
        "import sys\n"
        "from dsx.runtime.cache import configure_cache\n"
        "from dsx.runtime.lm import LM\n"
        f"configure_cache(disk_dir={str(directory)!r})\n"
        f"lm = LM('openai/dsx-test', api_base={srv.api_base!r}, api_key='k')\n"
        "r = lm.request([{'role': 'user', 'content': 'persist me'}])\n"
        "print(r.outputs[0], r.cached, 'litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["persist", "me", "True", "False"]  # a hit needs no litellm
    assert srv.request_count == 1


def test_corrupt_disk_entry_is_a_miss_with_one_warning(
    make: Make, srv: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsx.runtime import cache as cache_mod

    monkeypatch.setattr(cache_mod, "_warned_corrupt", False)
    lm = make(srv)
    lm("will rot")
    key = request_key(model="openai/dsx-test", messages=ask("will rot"), params={})
    disk = get_cache().disk
    assert disk is not None and key in disk
    disk.set(key, "\x00garbage{")
    configure_cache(disk_dir=tmp_path / "cache")
    with pytest.warns(RuntimeWarning, match="unreadable LM cache entry") as caught:
        assert lm("will rot") == ["will rot"]
    assert len(caught) == 1
    assert srv.request_count == 2  # a miss: asked again
    configure_cache(disk_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lm.request(ask("will rot")).cached  # the fresh answer replaced it


def test_errors_are_never_cached(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv)
    srv.inject(Fault.status(400, "nope"))
    with pytest.raises(BadRequestError):
        lm("error first")
    assert lm("error first") == ["error first"]
    assert srv.request_count == 2


# -- retries ------------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False)
    srv.inject(Fault.rate_limit(retry_after=0.3))
    start = time.perf_counter()
    assert lm("patience") == ["patience"]
    assert time.perf_counter() - start >= 0.28  # retry-after-ms: 300 was honoured
    assert srv.request_count == 2


def test_server_errors_are_retried_then_succeed(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False)
    srv.inject(Fault.server_error())
    srv.inject(Fault.unavailable())
    assert lm("resilient") == ["resilient"]
    assert srv.request_count == 3
    assert len(lm.history) == 1


@pytest.mark.parametrize(
    ("fault", "kind", "status"),
    [
        (Fault.rate_limit(retry_after=None), RateLimitError, 429),
        (Fault.unavailable(), ServerError, 503),
        (Fault.server_error("kaput"), ServerError, 500),
    ],
    ids=["429", "503", "500"],
)
def test_exhausted_retries_raise_a_retryable_error(
    make: Make, srv: OpenAIServer, fault: Fault, kind: type[LMError], status: int
) -> None:
    lm = make(srv, cache=False, num_retries=2)
    srv.inject(fault, times=3)
    with pytest.raises(kind) as info:
        lm("doomed")
    err = info.value
    assert err.retryable and err.status_code == status and err.attempts == 3
    assert err.provider_message == fault.message
    assert "openai/dsx-test" in str(err) and fault.message in str(err)
    assert "gave up after 3 attempts" in str(err)
    assert srv.request_count == 3
    assert len(lm.history) == 0


@pytest.mark.parametrize(
    ("code", "message", "kind", "words"),
    [
        (
            401,
            "Incorrect API key provided: sk-te***789.",
            AuthenticationError,
            "authentication failed (401)",
        ),
        (
            403,
            "You are not allowed to use this model.",
            AuthenticationError,
            "permission denied (403)",
        ),
        (
            404,
            "The model `dsx-test` does not exist.",
            ModelNotFoundError,
            "model or endpoint not found (404)",
        ),
        (
            400,
            "Invalid value for 'temperature'.",
            BadRequestError,
            "the provider rejected the request (400)",
        ),
        (422, "Unprocessable.", BadRequestError, "the provider rejected the request (422)"),
    ],
)
def test_client_errors_raise_at_once_naming_model_and_quoting_provider(
    make: Make, srv: OpenAIServer, code: int, message: str, kind: type[LMError], words: str
) -> None:
    lm = make(srv, cache=False)
    srv.inject(Fault.status(code, message))
    with pytest.raises(kind) as info:
        lm("bad")
    err = info.value
    assert srv.request_count == 1
    assert not err.retryable and err.status_code == code and err.attempts == 1
    assert err.provider_message == message and err.model == "openai/dsx-test"
    assert str(err).startswith(f"openai/dsx-test: {words}: {message.rstrip('.')}")
    assert SECRET not in str(err)
    if code == 401:
        assert "Check the api_key" in str(err) and isinstance(err, PermissionError)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(400, "Input too long for this model.", error_code="context_length_exceeded"),
        Fault.status(
            400,
            "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
        ),
    ],
    ids=["by-code", "by-message"],
)
def test_context_window_errors_are_mapped(make: Make, srv: OpenAIServer, fault: Fault) -> None:
    lm = make(srv, cache=False)
    srv.inject(fault)
    with pytest.raises(ContextWindowExceededError) as info:
        lm("too long")
    assert isinstance(info.value, BadRequestError) and not info.value.retryable
    assert "context window" in str(info.value) and fault.message.rstrip(".") in str(info.value)
    assert srv.request_count == 1


def test_timeouts_are_retried_then_raise_lm_timeout_error(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False, timeout=0.3, num_retries=1)
    srv.inject(Fault.timeout(), times=2)
    start = time.perf_counter()
    with pytest.raises(LMTimeoutError) as info:
        lm("hang")
    assert time.perf_counter() - start >= 0.55
    assert isinstance(info.value, TimeoutError) and info.value.retryable
    assert "within 0.3s" in str(info.value)
    assert srv.request_count == 2


def test_connection_reset_raises_lm_connection_error(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False, num_retries=0)
    srv.inject(Fault.connection_reset())
    with pytest.raises(LMConnectionError) as info:
        lm("reset")
    assert isinstance(info.value, ConnectionError) and info.value.retryable
    assert "Connection reset" in str(info.value)
    srv.inject(Fault.connection_reset())
    assert make(srv, cache=False)("reset") == ["reset"]  # retried


def test_refused_connection_raises_lm_connection_error(transport: Transport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    lm = LM(
        "openai/dsx-test",
        api_base=f"http://127.0.0.1:{port}/v1",
        api_key="k",
        num_retries=1,
        transport=transport,
    )
    with pytest.raises(LMConnectionError, match="connection to the provider failed") as info:
        lm("anyone?")
    assert info.value.attempts == 2 and info.value.retryable
    with pytest.raises(LMConnectionError, match="connection to the provider failed"):
        asyncio.run(lm.acall("anyone?"))


def test_malformed_json_raises_lm_response_error_and_is_retried(
    make: Make, srv: OpenAIServer
) -> None:
    lm = make(srv, cache=False, num_retries=0)
    srv.inject(Fault.malformed_json())
    with pytest.raises(LMResponseError, match="not valid JSON") as info:
        lm("garbled")
    assert info.value.retryable
    srv.inject(Fault.malformed_json())
    assert make(srv, cache=False)("garbled") == ["garbled"]


def test_truncated_responses_raise_lm_response_error(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False, num_retries=0)
    srv.inject(Fault.truncated_stream(after_chunks=2))
    with pytest.raises(LMResponseError, match="broke off"):
        lm("one two three four", stream=True)
    srv.inject(Fault.truncated_stream())
    with pytest.raises(LMResponseError, match="broke off"):
        lm("one two three four")  # a JSON body cut in half
    srv.inject(Fault.truncated_stream())
    assert make(srv, cache=False)("one two", stream=True) == ["one two"]  # retried


def test_stream_assembles_text_usage_and_cost(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, "openai/gpt-4o-mini")
    response = lm.request(ask("streamed words here"), stream=True)
    assert response.outputs == ["streamed words here"]
    assert response.usage["total_tokens"] == 6 and response.cost and response.cost > 0
    assert srv.requests[-1].body["stream"] is True
    assert lm.request(ask("streamed words here")).cached  # same entry as unstreamed


def test_stream_handles_n_choices_text_models_and_tool_calls(make: Make) -> None:
    call = {"name": "f", "arguments": {"a": 1}, "id": "call_9"}
    script: list[ReplyLike] = [["a b", "c d"], "x y z", Reply(content=None, tool_calls=[call])]
    with OpenAIServer(script=script) as server:
        chat = make(server, cache=False)
        # LiteLLM forwards only the first choice's finish_reason when n > 1: still complete.
        assert chat("q", n=2, stream=True) == ["a b", "c d"]
        text = make(server, "openai/gpt-3.5-turbo-instruct", model_type="text", cache=False)
        response = text.request(ask("p"), stream=True)
        assert response.outputs == ["x y z"] and response.usage["completion_tokens"] == 3
        assert server.requests[1].path == "/v1/completions"
        assert json.loads(chat("q", stream=True)[0]) == {
            "tool_calls": [{"id": "call_9", "name": "f", "arguments": {"a": 1}}]
        }


def test_stream_ending_without_finish_reason_is_detected() -> None:
    class Obj:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    lm = LM("openai/x")
    assembler = _StreamAssembler(lm, None)
    assembler.add(Obj(choices=[Obj(index=0, delta=Obj(content="half an"), finish_reason=None)]))
    with pytest.raises(LMResponseError, match="ended before the model finished"):
        assembler.result()


# -- async ----------------------------------------------------------------------------------


async def test_async_retries_rate_limits_and_fails_fast_on_auth(
    make: Make, srv: OpenAIServer
) -> None:
    lm = make(srv, cache=False)
    srv.inject(Fault.rate_limit(retry_after=0.2))
    start = time.perf_counter()
    assert await lm.acall("async patience") == ["async patience"]
    assert time.perf_counter() - start >= 0.18
    srv.inject(Fault.status(401, "bad key"))
    with pytest.raises(AuthenticationError, match="bad key"):
        await lm.acall("async auth")
    assert srv.request_count == 3


async def test_async_timeout_and_truncated_stream(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False, timeout=0.3, num_retries=0)
    srv.inject(Fault.timeout())
    with pytest.raises(LMTimeoutError):
        await lm.acall("async hang")
    srv.inject(Fault.truncated_stream())
    with pytest.raises(LMResponseError, match="broke off"):
        await lm.acall("a b c d", stream=True)
    srv.inject(Fault.connection_reset())
    with pytest.raises(LMConnectionError):
        await lm.acall("a b c d")


async def test_astream_yields_deltas_and_records_the_call(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, "openai/gpt-4o-mini")
    deltas = [d async for d in lm.astream(ask("stream to me now"))]
    assert deltas == ["stream", " to", " me", " now"]
    assert lm.history[-1]["outputs"] == ["stream to me now"] and lm.history[-1]["cost"]
    assert [d async for d in lm.astream(ask("stream to me now"))] == ["stream to me now"]
    assert srv.request_count == 1  # the second came from the cache


async def test_astream_retries_before_text_but_not_after(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, cache=False, num_retries=2)
    srv.inject(Fault.status(503, "busy"))
    assert [d async for d in lm.astream(ask("x y"))] == ["x", " y"]
    srv.clear_requests()
    srv.inject(Fault.truncated_stream(after_chunks=3))  # role chunk + two words, then cut
    got: list[str] = []
    with pytest.raises(LMResponseError):
        async for delta in lm.astream(ask("one two three four")):
            got.append(delta)
    assert got == ["one", " two"] and srv.request_count == 1


# -- safety -----------------------------------------------------------------------------------


def test_forbid_switch_blocks_non_loopback_endpoints_before_any_request(
    transport: Transport,
) -> None:
    for lm in (
        LM("openai/gpt-4o-mini", api_key=SECRET, transport=transport),
        LM(
            "openai/gpt-4o-mini",
            api_base="https://api.openai.com/v1",
            api_key=SECRET,
            transport=transport,
        ),
        LM(
            "openai/gpt-4o-mini",
            api_base="http://127.0.0.1.evil.example/v1",
            transport=transport,
        ),
    ):
        with pytest.raises(RealLMCallForbidden, match="forbidden"):
            lm("hi")
        with pytest.raises(RealLMCallForbidden):
            asyncio.run(lm.acall("hi"))
        assert lm.history == deque_empty()


def deque_empty() -> Any:
    from collections import deque

    return deque(maxlen=LM.history_size)


def test_secrets_never_reach_history_state_keys_or_disk(
    make: Make, srv: OpenAIServer, tmp_path: Path
) -> None:
    lm = make(srv, headers={"X-Secret": SECRET}, temperature=0.1)
    lm("keep it secret")
    lm("per call", api_key=SECRET, api_base=srv.api_base)
    assert srv.requests[0].headers["x-secret"] == SECRET  # sent...
    for entry in lm.history:  # ...never recorded
        assert SECRET not in json.dumps(entry, default=str)
        assert srv.api_base not in json.dumps(entry, default=str)
    state = lm.dump_state()
    assert state == {
        "model": "openai/dsx-test",
        "model_type": "chat",
        "temperature": 0.1,
        "cache": True,
        "num_retries": 3,
        "transport": lm.transport,  # only when not "auto"
    }
    assert SECRET not in repr(lm)
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
            assert srv.api_base.encode() not in path.read_bytes()


def test_copy_and_dump_state_round_trip(make: Make, srv: OpenAIServer) -> None:
    lm = make(srv, temperature=0.2, max_tokens=20, num_retries=1, timeout=9, n=2)
    again = LM(**lm.dump_state())
    assert again.dump_state() == lm.dump_state()
    assert again.api_key is None and again.api_base is None
    copy = lm.copy(temperature=0.9, num_retries=0, cache=False, api_base="http://localhost:1/v1")
    assert isinstance(copy, LM)
    assert copy.kwargs == {"temperature": 0.9, "max_tokens": 20, "n": 2}
    assert (copy.num_retries, copy.cache, copy.api_base, copy.api_key) == (
        0,
        False,
        "http://localhost:1/v1",
        SECRET,
    )
    assert lm.num_retries == 1 and lm.api_base == srv.api_base  # the original is untouched
    assert lm.copy(temperature=None).kwargs == {"max_tokens": 20, "n": 2}
    assert lm.copy(model="openai/other").model == "openai/other"
    assert copy.history is not lm.history
    assert copy.transport == lm.transport and "transport" in lm.dump_state()
    assert lm.copy(transport="auto").dump_state().get("transport") is None
    with pytest.raises(ValueError, match="transport must be"):
        lm.copy(transport="http")


# -- programs -------------------------------------------------------------------------------


def _qa_responder(request: dict[str, Any]) -> str:
    question = request["messages"][-1]["content"]
    return format_answer({"answer": "Paris" if "France" in question else "unknown"})


def test_predict_end_to_end_through_lm_and_server(make: Make) -> None:
    with OpenAIServer(_qa_responder) as server:
        lm = make(server, "openai/gpt-4o-mini")
        pred = dsx.Predict("question -> answer", lm=lm)(question="Capital of France?")
        assert pred.answer == "Paris"
        usage = pred.get_lm_usage()["openai/gpt-4o-mini"]
        assert usage["total_tokens"] > 0
        assert server.requests[0].body["messages"][0]["role"] == "system"


async def test_fifty_concurrent_predict_calls_overlap(make: Make) -> None:
    with OpenAIServer(_qa_responder, latency=0.1) as server:
        lm = make(server, cache=False)
        predict = dsx.Predict("question -> answer", lm=lm)
        questions = [f"Capital of France, take {i}?" for i in range(50)]
        start = time.perf_counter()
        preds = await asyncio.gather(*(predict.acall(question=q) for q in questions))
        elapsed = time.perf_counter() - start
        assert [p.answer for p in preds] == ["Paris"] * 50
        assert server.request_count == 50
        assert server.max_in_flight > 10, (server.max_in_flight, elapsed)


def test_track_usage_collects_nested_module_calls_and_cost(make: Make) -> None:
    class Two(dsx.Module):
        def __init__(self) -> None:
            self.a = dsx.Predict("question -> answer")
            self.b = dsx.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            self.a(question=question)
            return self.b(question=question + " again")

    reply = format_answer({"answer": "ok"})
    with OpenAIServer(lambda _: reply) as server:
        lm = make(server, "openai/gpt-4o-mini")
        program = Two()
        program.set_lm(lm)
        with track_usage() as outer:
            with track_usage() as inner:
                pred = program(question="q")
            program(question="q")  # two cache hits: free
    fresh = [e for e in lm.history if not e["cached"]]
    assert len(fresh) == 2 == server.request_count and len(lm.history) == 4
    tokens = sum(e["usage"]["total_tokens"] for e in fresh)
    cost = sum(e["cost"] for e in fresh)
    assert cost > 0
    for usage in (inner, outer):
        assert usage.get_total_tokens() == usage.totals()
        assert usage.totals()["openai/gpt-4o-mini"]["total_tokens"] == tokens == usage.total_tokens
        assert usage.cost == pytest.approx(cost)
    assert pred.get_lm_usage()["openai/gpt-4o-mini"]["total_tokens"] == tokens


def test_lm_module_imports_no_litellm_until_first_request() -> None:
    probe = (
        "import sys\nfrom dsx.runtime.lm import LM\n"
        "lm = LM('openai/x', api_base='http://127.0.0.1:9/v1')\n"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
