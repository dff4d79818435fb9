"""dsx.testing.OpenAIServer over real sockets: stdlib clients, the openai SDK, the CLI."""

from __future__ import annotations

import http.client
import json
import math
import os
import selectors
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dsx.testing.server import Fault, OpenAIServer, Reply, ReplyLike

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"


def _chat(text: str = "hello there world", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def _request(
    srv: OpenAIServer,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    timeout: float = 5.0,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPResponse, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer test-key"}
    try:
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp, resp.read()
    finally:
        if own:
            conn.close()


def _post(srv: OpenAIServer, body: Any, path: str = "/v1/chat/completions") -> tuple[int, Any]:
    status, _, raw = _request(srv, path, body)
    return status, json.loads(raw)


def _events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body."""
    return [
        line.removeprefix("data: ")
        for line in raw.decode().split("\n\n")
        if line.startswith("data: ")
    ]


# -- replies ----------------------------------------------------------------------------


def test_default_echo_chat_completion_and_recorded_request() -> None:
    with OpenAIServer() as srv:
        assert srv.api_base == f"http://127.0.0.1:{srv.port}/v1"
        status, doc = _post(srv, _chat("hello there world"))
    assert status == 200
    assert doc["object"] == "chat.completion"
    assert doc["id"].startswith("chatcmpl-")
    assert isinstance(doc["created"], int)
    assert doc["model"] == "m"
    assert doc["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello there world", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert doc["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    [record] = srv.requests
    assert srv.request_count == 1
    assert (record.method, record.path) == ("POST", "/v1/chat/completions")
    assert record.body == _chat("hello there world")
    assert record.headers["authorization"] == "Bearer test-key"
    assert record.fault is None


def test_sync_and_async_responders_see_body_and_path() -> None:
    seen: list[dict[str, Any]] = []

    def responder(request: dict[str, Any]) -> str:
        seen.append(request)
        return request["messages"][-1]["content"].upper()

    async def async_responder(request: dict[str, Any]) -> list[str]:
        return ["a", "b", "c"]

    with OpenAIServer(responder) as srv:
        _, doc = _post(srv, _chat("shout"))
    assert doc["choices"][0]["message"]["content"] == "SHOUT"
    assert seen[0]["_path"] == "/v1/chat/completions"
    assert seen[0]["model"] == "m"

    with OpenAIServer(async_responder) as srv:
        _, doc = _post(srv, _chat(n=3))
    assert [c["message"]["content"] for c in doc["choices"]] == ["a", "b", "c"]
    assert [c["index"] for c in doc["choices"]] == [0, 1, 2]


def test_n_choices_repeat_a_single_text() -> None:
    with OpenAIServer(lambda r: "same") as srv:
        _, doc = _post(srv, _chat(n=2))
    assert [c["message"]["content"] for c in doc["choices"]] == ["same", "same"]
    assert doc["usage"]["completion_tokens"] == 2


def test_script_is_served_in_order_then_reports_exhaustion() -> None:
    script: list[ReplyLike] = [
        "first",
        Reply(["x", "y"]),
        Reply(None, tool_calls=[{"name": "f", "arguments": {"a": 1}}]),
    ]
    with OpenAIServer(script=script) as srv:
        replies = [_post(srv, _chat())[1] for _ in range(3)]
        status, doc = _post(srv, _chat())
    assert replies[0]["choices"][0]["message"]["content"] == "first"
    assert [c["message"]["content"] for c in replies[1]["choices"]] == ["x", "y"]
    tool_choice = replies[2]["choices"][0]
    assert tool_choice["finish_reason"] == "tool_calls"
    call = tool_choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert status == 500
    assert "script is exhausted" in doc["error"]["message"]
    assert doc["error"]["code"] == "script_exhausted"


def test_responder_errors_and_bad_replies_become_500s() -> None:
    def broken(request: dict[str, Any]) -> str:
        raise KeyError("boom")

    with OpenAIServer(broken) as srv:
        status, doc = _post(srv, _chat())
        assert status == 500
        assert "KeyError" in doc["error"]["message"]
    with OpenAIServer(lambda r: 42) as srv:  # type: ignore[arg-type, return-value]
        status, doc = _post(srv, _chat())
        assert status == 500
        assert "expected a str" in doc["error"]["message"]


def test_text_completions_models_and_embeddings() -> None:
    with OpenAIServer(embedding_dim=16) as srv:
        status, doc = _post(srv, {"model": "t", "prompt": "say hi"}, "/v1/completions")
        assert status == 200
        assert doc["object"] == "text_completion"
        assert doc["choices"][0]["text"] == "say hi"
        _, models, raw = _request(srv, "/v1/models", method="GET")
        assert models.status == 200
        assert {"dsx-test", "t"} <= {m["id"] for m in json.loads(raw)["data"]}
        _, one = _post(srv, {"model": "e", "input": "alpha"}, "/v1/embeddings")
        _, many = _post(srv, {"model": "e", "input": ["alpha", "beta gamma"]}, "/v1/embeddings")
        _, small = _post(srv, {"model": "e", "input": "alpha", "dimensions": 4}, "/v1/embeddings")
    vectors = [d["embedding"] for d in many["data"]]
    assert one["data"][0]["embedding"] == vectors[0]  # deterministic
    assert vectors[0] != vectors[1]
    assert all(len(v) == 16 and math.isclose(math.hypot(*v), 1.0) for v in vectors)
    assert len(small["data"][0]["embedding"]) == 4
    assert [d["index"] for d in many["data"]] == [0, 1]
    assert many["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_streaming_chat_with_usage_chunk() -> None:
    body = _chat("one two three", stream=True, stream_options={"include_usage": True})
    with OpenAIServer() as srv:
        status, resp, raw = _request(srv, "/v1/chat/completions", body)
    assert status == 200
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    events = _events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_keep_alive_reuses_one_connection() -> None:
    with OpenAIServer() as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        try:
            _request(srv, "/v1/chat/completions", _chat("a"), conn=conn)
            sock = conn.sock
            _request(srv, "/v1/chat/completions", _chat("b", stream=True), conn=conn)
            status, _, raw = _request(srv, "/v1/chat/completions", _chat("c"), conn=conn)
            assert conn.sock is sock and sock is not None  # never reconnected
        finally:
            conn.close()
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"] == "c"


def test_bad_requests_get_400_json_and_the_server_survives() -> None:
    with OpenAIServer() as srv:
        assert _request(srv, "/v1/chat/completions", b"{not json")[0] == 400
        assert _post(srv, {"model": "m"})[0] == 400  # no messages
        assert _post(srv, _chat(n=0))[0] == 400
        assert _post(srv, {"model": "e", "input": []}, "/v1/embeddings")[0] == 400
        status, doc = _post(srv, _chat(), "/v1/nope")
        assert status == 404
        assert doc["error"]["type"] == "not_found_error"
        assert _request(srv, "/v1/chat/completions", method="GET")[0] == 405
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
        assert _post(srv, _chat("still fine"))[0] == 200


# -- faults -----------------------------------------------------------------------------


def test_status_faults_are_consumed_fifo() -> None:
    faults = [Fault.rate_limit(retry_after=2), Fault.server_error()]
    with OpenAIServer(faults=faults) as srv:
        srv.inject(Fault.unavailable())
        srv.inject(Fault.status(401, "Incorrect API key provided", error_code="invalid_api_key"))
        assert len(srv.pending_faults) == 4
        status, resp, raw = _request(srv, "/v1/chat/completions", _chat())
        assert status == 429
        assert resp.getheader("Retry-After") == "2"
        assert resp.getheader("retry-after-ms") == "2000"
        assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
        assert _post(srv, _chat())[0] == 500
        assert _post(srv, _chat())[0] == 503
        status, doc = _post(srv, _chat())
        assert status == 401
        assert doc["error"] == {
            "message": "Incorrect API key provided",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_api_key",
        }
        assert _post(srv, _chat())[0] == 200
        assert [r.fault is not None for r in srv.requests] == [True] * 4 + [False]


def test_inject_times_and_clear_faults() -> None:
    with OpenAIServer() as srv:
        srv.inject(Fault.server_error(), times=2)
        assert [_post(srv, _chat())[0] for _ in range(3)] == [500, 500, 200]
        srv.inject(Fault.server_error(), times=3)
        srv.clear_faults()
        assert _post(srv, _chat())[0] == 200
        with pytest.raises(ValueError):
            srv.inject(Fault.server_error(), times=0)


def test_responder_may_return_a_fault() -> None:
    with OpenAIServer(script=[Fault.status(400, "context_length_exceeded"), "ok"]) as srv:
        assert _post(srv, _chat())[0] == 400
        assert _post(srv, _chat())[1]["choices"][0]["message"]["content"] == "ok"


def test_malformed_json_fault() -> None:
    with OpenAIServer(faults=[Fault.malformed_json(), Fault.malformed_json()]) as srv:
        status, _, raw = _request(srv, "/v1/chat/completions", _chat())
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(raw)
        _, _, raw = _request(srv, "/v1/chat/completions", _chat(stream=True))
        events = _events(raw)
        assert events[-1] == "[DONE]"
        with pytest.raises(ValueError):
            json.loads(events[0])


def test_truncated_stream_fault_ends_without_done() -> None:
    with OpenAIServer(faults=[Fault.truncated_stream(after_chunks=2)]) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("POST", "/v1/chat/completions", json.dumps(_chat("a b c d", stream=True)))
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        conn.close()
        events = _events(info.value.partial)
        assert len(events) == 2
        assert "[DONE]" not in events
        assert json.loads(events[1])["choices"][0]["delta"]["content"] == "a"
        srv.inject(Fault.truncated_stream())  # non-streaming: half a JSON body
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("POST", "/v1/chat/completions", json.dumps(_chat()))
        with pytest.raises(http.client.IncompleteRead):
            conn.getresponse().read()
        conn.close()


def test_connection_reset_fault_is_a_tcp_reset() -> None:
    with OpenAIServer(faults=[Fault.connection_reset()]) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            body = json.dumps(_chat()).encode()
            head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body)
            with pytest.raises(ConnectionResetError):
                sock.recv(1024)
        assert _post(srv, _chat())[0] == 200


def test_timeout_fault_hangs_until_the_client_gives_up() -> None:
    with OpenAIServer(faults=[Fault.timeout()]) as srv:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _request(srv, "/v1/chat/completions", _chat(), timeout=1.0)
        assert time.monotonic() - started >= 0.9
        assert _post(srv, _chat())[0] == 200


def test_stop_does_not_wait_for_hung_requests() -> None:
    srv = OpenAIServer(faults=[Fault.timeout()]).start()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps(_chat()))
    deadline = time.monotonic() + 5
    while srv.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.in_flight == 1
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        conn.getresponse()
    conn.close()
    srv.stop()  # idempotent


def test_start_errors_and_restart() -> None:
    with OpenAIServer() as first:
        with pytest.raises(OSError):
            OpenAIServer(port=first.port).start()
        with pytest.raises(RuntimeError):
            first.start()
    with pytest.raises(RuntimeError):
        _ = OpenAIServer().port
    with pytest.raises(TypeError):
        OpenAIServer(lambda r: "x", script=["y"])


# -- load -------------------------------------------------------------------------------


def test_hundreds_of_concurrent_requests_overlap() -> None:
    with OpenAIServer(latency=0.2) as srv:

        def one(i: int) -> str:
            status, doc = _post(srv, _chat(f"request {i}"))
            assert status == 200
            return doc["choices"][0]["message"]["content"]

        with ThreadPoolExecutor(max_workers=300) as pool:
            answers = list(pool.map(one, range(300)))
        assert answers == [f"request {i}" for i in range(300)]
        assert srv.request_count == 300
        assert srv.max_in_flight > 100  # they waited out the latency together
        assert srv.in_flight == 0


# -- real clients -----------------------------------------------------------------------


def test_openai_sdk_chat_stream_embeddings_and_errors() -> None:
    openai = pytest.importorskip("openai")
    with OpenAIServer(lambda r: "Paris is the capital") as srv:
        client = openai.OpenAI(base_url=srv.api_base, api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "?"}]
        )
        assert reply.choices[0].message.content == "Paris is the capital"
        assert reply.usage.total_tokens == 5

        stream = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Paris is the capital"
        assert chunks[-1].usage.completion_tokens == 4

        embedded = client.embeddings.create(model="e", input=["a", "b"])  # base64 on the wire
        assert [len(d.embedding) for d in embedded.data] == [8, 8]
        assert math.isclose(math.hypot(*embedded.data[0].embedding), 1.0, rel_tol=1e-5)

        srv.inject(Fault.rate_limit(retry_after=0.01))
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "?"}])
        srv.inject(Fault.rate_limit(retry_after=0.01))
        retrying = client.with_options(max_retries=1)
        reply = retrying.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "?"}]
        )
        assert reply.choices[0].message.content == "Paris is the capital"

        srv.inject(Fault.connection_reset())
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "?"}])
        srv.inject(Fault.timeout())
        with pytest.raises(openai.APITimeoutError):
            client.with_options(timeout=0.5).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "?"}]
            )


# -- command line -----------------------------------------------------------------------


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("the server printed nothing in time")
    return proc.stdout.readline()


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    helped = subprocess.run(
        [sys.executable, "-m", "dsx.testing.server", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert helped.returncode == 0
    assert "--latency" in helped.stdout and "--script" in helped.stdout

    script = tmp_path / "replies.jsonl"
    script.write_text('"first"\n\n{"content": "second"}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsx.testing.server", "--port", "0", "--script", str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api_base = _readline(proc, timeout=20).strip()
        assert api_base, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert api_base.startswith("http://127.0.0.1:") and api_base.endswith("/v1")
        port = int(api_base.rsplit(":", 1)[1].removesuffix("/v1"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        answers = []
        for _ in range(3):
            conn.request("POST", "/v1/chat/completions", json.dumps(_chat()))
            resp = conn.getresponse()
            answers.append((resp.status, json.loads(resp.read())))
        conn.close()
        assert [a[1]["choices"][0]["message"]["content"] for a in answers[:2]] == [
            "first",
            "second",
        ]
        assert answers[2][0] == 500
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
