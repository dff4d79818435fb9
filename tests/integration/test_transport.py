"""What only dsx's lean transport has: routing, HTTP sessions, server-sent events, prices.

The behaviours both transports share (retries, errors, cache, streaming, usage, history)
are tested once per transport in ``test_lm.py``. Here: which calls ``transport="auto"``
sends lean, that both transports send byte-for-byte the same request body and build the
same response, the event-loop lifecycle of the aiohttp sessions, server-sent events the
OpenAIServer never produces, and the price lookup that does not import LiteLLM.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest

import dsx
from dsx.errors import AuthenticationError, LMError, LMResponseError, LMTimeoutError, ServerError
from dsx.runtime import _openai_transport as lean
from dsx.runtime.cache import configure_cache
from dsx.runtime.lm import LM, Transport
from dsx.testing.server import OpenAIServer, Reply

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def srv() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated(srv: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    srv.clear_faults()
    srv.clear_requests()
    configure_cache(disk_dir=tmp_path / "cache")
    monkeypatch.setattr(LM, "retry_base_delay", 0.001)
    monkeypatch.setattr(LM, "retry_max_delay", 0.005)
    yield
    configure_cache()


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sent_by(srv: OpenAIServer) -> str:
    """Which transport sent the last request, from its User-Agent."""
    agent = srv.requests[-1].headers.get("user-agent", "")
    return "openai" if agent == "dsx" else "litellm"


# -- routing -------------------------------------------------------------------------------


def test_auto_sends_openai_compatible_endpoints_lean_and_other_providers_through_litellm(
    srv: OpenAIServer,
) -> None:
    assert LM("openai/x", api_base=srv.api_base, api_key="k")("a") == ["a"]
    assert sent_by(srv) == "openai"
    assert LM("hosted_vllm/x", api_base=srv.api_base)("b") == ["b"]
    assert sent_by(srv) == "litellm"  # LiteLLM rewrites tools for vLLM: kept
    assert LM("openai/x", api_base=srv.api_base, api_key="k", transport="litellm")("c") == ["c"]
    assert sent_by(srv) == "litellm"
    forced = LM("hosted_vllm/org/model", api_base=srv.api_base, transport="openai")
    assert forced("d") == ["d"]
    assert sent_by(srv) == "openai" and srv.requests[-1].body["model"] == "org/model"


def test_auto_keeps_litellm_where_it_rewrites_the_request() -> None:
    eligible = lean.auto_eligible
    local = "http://127.0.0.1:8000/v1"
    assert eligible("openai/gpt-4o-mini", None, {}, None)  # OpenAI's own API
    assert eligible("openai/gpt-4o-mini", "https://api.openai.com/v1/", {"n": 2}, 30)
    # OpenAI's reasoning models: LiteLLM renames max_tokens and checks parameters.
    for name in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"):
        assert not eligible(f"openai/{name}", None, {}, None)
        assert eligible(f"openai/{name}", local, {}, None)  # a local server of that name
    assert not eligible("anthropic/claude-3-5-haiku", None, {}, None)
    assert not eligible("hosted_vllm/m", local, {}, None)
    assert not eligible("gpt-4o-mini", local, {}, None)  # no provider prefix
    params: dict[str, Any]
    for params in ({"mock_response": "x"}, {"metadata": {}}, {"litellm_trace_id": "t"}):
        assert not eligible("openai/m", local, params, None)
    assert not eligible("openai/m", local, {"response_format": pydantic.BaseModel}, None)
    assert not eligible("openai/m", local, {}, object())  # an httpx.Timeout, say


def test_litellm_only_parameters_go_through_litellm_or_are_refused(srv: OpenAIServer) -> None:
    auto = LM("openai/x", api_base=srv.api_base, api_key="k", cache=False)
    assert auto("q", mock_response="mocked") == ["mocked"]  # LiteLLM answered itself
    assert srv.request_count == 0
    forced = LM("openai/x", api_base=srv.api_base, transport="openai")
    with pytest.raises(ValueError, match="transport='openai' cannot send this call.*mock_resp"):
        forced("q", mock_response="mocked")
    with pytest.raises(ValueError, match="response_format is a class"):
        forced("q", response_format=pydantic.create_model("Out", answer=(str, ...)))
    assert srv.request_count == 0


def test_a_response_format_class_is_turned_into_a_schema_by_litellm(srv: OpenAIServer) -> None:
    class Out(pydantic.BaseModel):
        answer: str

    LM("openai/x", api_base=srv.api_base, api_key="k")("q", response_format=Out)
    sent = srv.requests[-1]
    assert sent_by(srv) == "litellm"
    assert sent.body["response_format"]["type"] == "json_schema"


def test_forced_lean_needs_an_endpoint_when_the_provider_has_no_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOSTED_VLLM_API_BASE", raising=False)
    with pytest.raises(ValueError, match="hosted_vllm/m: .* needs an endpoint: pass api_base"):
        wire("hosted_vllm/m")


def wire(model: str, api_key: str | None = None) -> lean.Wire:
    return lean.build(
        model=model,
        model_type="chat",
        messages=ask("q"),
        prompt=None,
        params={},
        api_base=None,
        api_key=api_key,
        headers=None,
        timeout=None,
        stream=False,
    )


def test_endpoint_and_key_come_from_the_providers_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert lean.base_url("openai", None) == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_API_BASE", "http://old:1/v1")
    assert lean.base_url("openai", None) == "http://old:1/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://new:1/v1")
    assert lean.base_url("openai", None) == "http://new:1/v1"  # as LiteLLM orders them
    assert lean.base_url("openai", "http://given/v1") == "http://given/v1"
    monkeypatch.setenv("HOSTED_VLLM_API_BASE", "http://vllm:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("HOSTED_VLLM_API_KEY", "vllm-env")
    assert wire("openai/m").headers["Authorization"] == "Bearer sk-env"
    assert wire("openai/m", "sk-given").headers["Authorization"] == "Bearer sk-given"
    hosted = wire("hosted_vllm/m")
    assert hosted.url == "http://vllm:8000/v1/chat/completions"
    assert hosted.headers["Authorization"] == "Bearer vllm-env"
    assert wire("openai/m").timeout == lean.DEFAULT_TIMEOUT == 120.0


def test_without_a_key_litellm_refuses_and_the_lean_transport_sends_none(
    srv: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="no API key: Missing credentials") as info:
        LM("openai/x", api_base=srv.api_base, transport="litellm")("q")
    assert not info.value.retryable and info.value.attempts == 1
    assert srv.request_count == 0  # the openai SDK refused before sending
    assert LM("openai/x", api_base=srv.api_base)("q") == ["q"]  # local servers need none
    assert "authorization" not in srv.requests[-1].headers


def test_per_call_transport_override_shares_the_cache(srv: OpenAIServer) -> None:
    lm = LM("openai/x", api_base=srv.api_base, api_key="k")
    assert lm("override me", transport="litellm") == ["override me"]
    assert sent_by(srv) == "litellm"
    assert lm.request(ask("override me")).cached  # lean now, same entry
    assert srv.request_count == 1
    with pytest.raises(ValueError, match="transport must be"):
        lm("x", transport="grpc")


# -- one request, two transports -------------------------------------------------------------

_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
PARITY_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("openai/gpt-4o-mini", "chat", {"temperature": 0.3, "max_tokens": 5, "n": 2, "stop": ["x"]}),
    ("openai/gpt-4o-mini", "chat", {"seed": 1, "top_p": 0.5, "logprobs": True, "user": "u"}),
    ("openai/gpt-4o-mini", "chat", {"tools": [_TOOL], "tool_choice": "auto"}),
    ("openai/gpt-4o-mini", "chat", {"response_format": {"type": "json_object"}}),
    ("openai/gpt-4o-mini", "chat", {"extra_body": {"top_k": 3}, "organization": "org-1"}),
    ("openai/gpt-4o-mini", "chat", {"stream": True, "n": 2}),
    ("openai/meta-llama/Llama-3-8B", "chat", {"unknown_server_param": [1, 2]}),
    ("openai/gpt-3.5-turbo-instruct", "text", {"max_tokens": 3}),
    ("openai/gpt-3.5-turbo-instruct", "text", {"stream": True}),
]


@pytest.mark.parametrize(("model", "model_type", "params"), PARITY_CASES)
def test_both_transports_send_the_same_request_and_build_the_same_response(
    srv: OpenAIServer, model: str, model_type: Any, params: dict[str, Any]
) -> None:
    seen: dict[str, Any] = {}
    transports: tuple[Transport, ...] = ("litellm", "openai")
    for transport in transports:
        lm = LM(
            model,
            model_type=model_type,
            api_base=srv.api_base,
            api_key="k",
            transport=transport,
            cache=False,
        )
        messages = [{"role": "system", "content": "Be brief."}, *ask("one two three")]
        response = lm.request(messages, **params)
        assert sent_by(srv) == transport
        sent = srv.requests[-1]
        organization = sent.headers.get("openai-organization")
        seen[transport] = (sent.path, sent.body, organization, response.outputs, response.usage)
        seen[transport + " cost"] = response.cost
        assert response.model == model and not response.cached
    assert seen["litellm"] == seen["openai"]
    assert seen["litellm cost"] == pytest.approx(seen["openai cost"])


def test_tool_calls_come_back_the_same_streamed_or_not(srv: OpenAIServer) -> None:
    call = {"name": "search", "arguments": {"q": "paris"}, "id": "call_1"}
    transports: tuple[Transport, ...] = ("litellm", "openai")
    with OpenAIServer(script=[Reply(content=None, tool_calls=[call])] * 4) as server:
        outputs = [
            LM("openai/x", api_base=server.api_base, api_key="k", transport=transport, cache=False)(
                "q", stream=stream
            )
            for transport in transports
            for stream in (False, True)
        ]
    expected = {"tool_calls": [{"id": "call_1", "name": "search", "arguments": {"q": "paris"}}]}
    assert [json.loads(o[0]) for o in outputs] == [expected] * 4


# -- event-loop lifecycle of the async sessions ---------------------------------------------------


def test_each_loop_gets_a_session_closed_when_the_loop_shuts_down(
    srv: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    lm = LM("openai/x", api_base=srv.api_base, cache=False)
    # Sessions of loops other tests left open on purpose (a built module's per-thread loop
    # stays open between sync calls) are not this test's.
    before = set(lean._sessions)

    async def calls() -> list[list[str]]:
        first = await lm.acall("one")
        assert len(set(lean._sessions) - before) == 1
        return [first, *await asyncio.gather(*(lm.acall(f"c{i}") for i in range(20)))]

    gc.collect()  # earlier tests' garbage must not report here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert asyncio.run(calls())[0] == ["one"]
            assert (
                set(lean._sessions) == before
            )  # closed by shutdown_asyncgens, at asyncio.run's end
        gc.collect()
    ours = ("client session", "connector", "transport")  # not LiteLLM's own event loop
    assert [str(w.message) for w in caught if any(o in str(w.message) for o in ours)] == []
    assert "Unclosed" not in caplog.text
    assert srv.request_count == 63


def test_sessions_of_concurrent_loops_in_threads_are_separate(srv: OpenAIServer) -> None:
    lm = LM("openai/x", api_base=srv.api_base, cache=False)
    results: list[Any] = []
    before = set(lean._sessions)  # other tests' open loops

    def run(tag: str) -> None:
        async def go() -> list[str]:
            outs = await asyncio.gather(*(lm.acall(f"{tag}{i}") for i in range(10)))
            return [o[0] for o in outs]

        results.append(asyncio.run(go()))

    threads = [threading.Thread(target=run, args=(tag,)) for tag in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r[0] for r in results) == ["a0", "b0", "c0"]
    assert set(lean._sessions) == before


def test_a_loop_closed_without_shutdown_is_cleaned_up_quietly(
    srv: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    lm = LM("openai/x", api_base=srv.api_base, cache=False)
    before = set(lean._sessions)  # other tests' open loops
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(lm.acall("old loop")) == ["old loop"]
    loop.close()  # no shutdown_asyncgens(): the session is still registered
    assert len(set(lean._sessions) - before) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # sockets close when collected
        assert asyncio.run(lm.acall("new loop")) == ["new loop"]
        del loop
        gc.collect()
    assert set(lean._sessions) == before
    assert "Unclosed" not in caplog.text and "Event loop is closed" not in caplog.text


# -- HTTP the OpenAIServer never sends -------------------------------------------------------------


class CannedServer:
    """Answers each request with the next canned reply: raw bytes, sent in timed pieces.

    A reply is a list of ``(delay_seconds, bytes)``; the connection closes after it.
    """

    def __init__(self, replies: Sequence[Sequence[tuple[float, bytes]]]) -> None:
        self.replies = deque(replies)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.api_base = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                length = int(
                    next(
                        (
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        b"0",
                    )
                )
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < length:
                    body += conn.recv(65536)
                for delay, data in self.replies.popleft():
                    time.sleep(delay)
                    try:
                        conn.sendall(data)
                    except (BrokenPipeError, ConnectionResetError):
                        break  # the client gave up (a deadline test): nothing more to send

    def close(self) -> None:
        self.sock.close()


def http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def chunk(text: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice], **extra}


def lean_lm(api_base: str, **kwargs: Any) -> LM:
    return LM("openai/m", api_base=api_base, transport="openai", cache=False, **kwargs)


def both_ways(replies: Sequence[Sequence[tuple[float, bytes]]], **kwargs: Any) -> list[Any]:
    """Run the same canned exchange sync (httpx) and async (aiohttp); return both results."""
    out: list[Any] = []
    for run_async in (False, True):
        server = CannedServer(replies)
        lm = lean_lm(server.api_base, **kwargs)
        try:
            if run_async:
                out.append(asyncio.run(lm.arequest(ask("q"), stream=True)))
            else:
                out.append(lm.request(ask("q"), stream=True))
        except Exception as exc:
            out.append(exc)
        finally:
            server.close()
    return out


def test_server_sent_events_in_every_legal_shape_are_read() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    body = (
        b": keep-alive comment\r\n\r\n"
        b"event: message\r\nid: 1\r\ndata: " + json.dumps(chunk("Hel")).encode() + b"\r\n\r\n"
        # One event split over two data lines (joined with a newline: still JSON).
        b'data:{"id": "c", "choices": [{"index": 0,\n'
        b'data: "delta": {"content": "lo"}, "finish_reason": null}]}\n\n'
        b"data: " + json.dumps(chunk(" you", "stop")).encode() + b"\n\n"
        # The last event, with usage, ends the body without [DONE] or a blank line.
        b"data: " + json.dumps({"id": "c", "choices": [], "usage": usage}).encode()
    )
    for response in both_ways([[(0, SSE_HEAD + body)]]):
        assert response.outputs == ["Hello you"] and response.usage == usage


def test_an_error_event_mid_stream_raises_the_mapped_error() -> None:
    error = {"error": {"message": "engine crashed", "code": 503}}
    reply = [(0, SSE_HEAD + b"data: " + json.dumps(chunk("par")).encode() + b"\n\n")]
    reply.append((0, b"data: " + json.dumps(error).encode() + b"\n\n"))
    for err in both_ways([reply], num_retries=0):
        assert isinstance(err, ServerError) and err.status_code == 503
        assert err.provider_message == "engine crashed" and "engine crashed" in str(err)


def test_an_event_that_is_not_an_object_is_a_malformed_response() -> None:
    reply = [(0, SSE_HEAD + b"data: [1, 2]\n\n")]
    for err in both_ways([reply], num_retries=0):
        assert isinstance(err, LMResponseError) and "not valid JSON" in str(err)


def test_a_non_json_error_page_is_quoted_as_the_providers_message() -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"
    replies = [[(0, http("502 Bad Gateway", page, "text/html"))]] * 2
    for err in both_ways(replies, num_retries=1):
        assert isinstance(err, ServerError) and err.status_code == 502 and err.attempts == 2
        assert err.provider_message == page.decode() and "502 Bad Gateway" in str(err)


def test_json_that_is_not_a_completion_is_a_response_error() -> None:
    for body in (b"[1, 2]", b'{"object": "list"}'):
        server = CannedServer([[(0, http("200 OK", body))]])
        with pytest.raises(LMResponseError, match="has no choices") as info:
            lean_lm(server.api_base, num_retries=0)("q")
        assert info.value.retryable
        server.close()


def test_the_timeout_is_a_deadline_on_the_whole_stream() -> None:
    pieces = [(0.0, SSE_HEAD)]
    for word in ("a", " b", " c", " d"):
        pieces.append((0.15, b"data: " + json.dumps(chunk(word)).encode() + b"\n\n"))
    pieces.append(
        (0.15, b"data: " + json.dumps(chunk("", "stop")).encode() + b"\n\ndata: [DONE]\n\n")
    )
    # 0.75 s in all: within timeout=3.
    for response in both_ways([pieces], timeout=3, num_retries=0):
        assert response.outputs == ["a b c d"]
    # Never more than 0.15 s between two pieces, but 0.75 s in all: past timeout=0.5 (issue
    # 14: a trickling server is cut at the attempt's deadline, not only per read).
    for err in both_ways([pieces], timeout=0.5, num_retries=0):
        assert isinstance(err, LMTimeoutError) and "0.5s" in str(err)
    slow = [(0.0, SSE_HEAD), (0.6, b"data: " + json.dumps(chunk("late", "stop")).encode())]
    for err in both_ways([slow], timeout=0.3, num_retries=0):
        assert isinstance(err, LMTimeoutError) and "within 0.3s" in str(err)


def test_a_mid_stream_error_without_a_status_is_not_retried() -> None:
    reply = [(0, SSE_HEAD + b'data: {"error": {"message": "bad grammar"}}\n\n')]
    for err in both_ways([reply], num_retries=2):
        assert type(err) is LMError and not err.retryable and err.attempts == 1
        assert "bad grammar" in str(err)


# -- prices ------------------------------------------------------------------------------------


def test_cost_uses_litellms_price_list_without_importing_litellm() -> None:
    probe = (
        "import sys\n"
        "from dsx.runtime import _openai_transport as t\n"
        "u = {'prompt_tokens': 1000, 'completion_tokens': 100,"
        " 'prompt_tokens_details': {'cached_tokens': 400}}\n"
        "print(t.cost('openai/gpt-4o-mini', u), t.cost('openai/dsx-test', u),"
        " t.cost('openai/gpt-3.5-turbo-instruct', {'prompt_tokens': 10,"
        " 'completion_tokens': 10}), 'litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    mini, unknown, instruct, imported = out.stdout.split()
    # 600 fresh prompt tokens at $0.15/M, 400 cached at $0.075/M, 100 output at $0.60/M.
    assert float(mini) == pytest.approx(600 * 0.15e-6 + 400 * 0.075e-6 + 100 * 0.6e-6)
    assert unknown == "None" and float(instruct) == pytest.approx(10 * 1.5e-6 + 10 * 2e-6)
    assert imported == "False"


def test_cost_follows_litellms_table_when_litellm_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import litellm

    name = f"dsx-priced-{time.monotonic_ns()}"  # prices are remembered per model name
    table = {name: {"input_cost_per_token": 1.0, "output_cost_per_token": 2.0}}
    monkeypatch.setattr(litellm, "model_cost", table)
    assert lean.cost(name, {"prompt_tokens": 3, "completion_tokens": 4}) == 11.0
    assert lean.cost(name, None) is None


# -- imports ------------------------------------------------------------------------------------


def test_the_lean_transport_imports_only_what_it_uses(srv: OpenAIServer) -> None:
    probe = (
        "import sys, asyncio\n"
        "import dsx\n"
        "mods = lambda: [m for m in ('litellm', 'httpx', 'aiohttp') if m in sys.modules]\n"
        "print(mods())\n"
        f"lm = dsx.LM('openai/x', api_base={srv.api_base!r}, cache=False)\n"
        "lm('sync'); lm('sync stream', stream=True)\n"
        "print(mods())\n"
        "asyncio.run(lm.acall('async'))\n"
        "print(mods())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # One HTTP client: sync calls go through aiohttp too (on a private event loop thread).
    assert out.stdout.split("\n")[:3] == ["[]", "['aiohttp']", "['aiohttp']"]


def test_predict_through_the_lean_transport_end_to_end(srv: OpenAIServer) -> None:
    reply = dsx.testing.format_answer({"answer": "Paris"})
    with OpenAIServer(lambda _: reply, latency=0.05) as server:
        lm = LM("openai/gpt-4o-mini", api_base=server.api_base, cache=False)
        predict = dsx.Predict("question -> answer", lm=lm)

        async def many() -> list[Any]:
            return await asyncio.gather(*(predict.acall(question=f"q{i}") for i in range(256)))

        preds = asyncio.run(many())
        assert {p.answer for p in preds} == {"Paris"} and server.request_count == 256
        assert server.max_in_flight > 64  # they overlapped: one pooled connection each
        assert sent_by(server) == "openai"
        assert preds[0].get_lm_usage()["openai/gpt-4o-mini"]["total_tokens"] > 0
    assert logging.getLogger("asyncio").level in (logging.NOTSET, logging.WARNING)
