from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

import dsx
from dsx.errors import RealLMCallForbidden
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.testing import (
    ColBERTv2Server,
    DummyLM,
    Fault,
    FunctionLM,
    OpenAIServer,
    Reply,
    forbid_real_lm_requests,
)


def test_dummy_lm_list_in_order_then_runs_out():
    lm = DummyLM([{"answer": "1"}, {"answer": "2"}])
    predict = dsx.Predict("question -> answer", lm=lm)
    assert [predict(question="q").answer for _ in range(2)] == ["1", "2"]
    with pytest.raises(dsx.DsxError, match="ran out of answers"):
        predict(question="q")


def test_dummy_lm_keyed_by_prompt_substring():
    lm = DummyLM({"France": {"answer": "Paris"}, "Italy": {"answer": "Rome"}})
    predict = dsx.Predict("question -> answer", lm=lm)
    assert predict(question="Capital of Italy?").answer == "Rome"
    assert predict(question="Capital of France?").answer == "Paris"
    with pytest.raises(dsx.DsxError, match="no answer for this prompt"):
        predict(question="Spain?")


def test_dummy_lm_follows_matching_demo():
    lm = DummyLM([{"answer": "fallback"}], follow_examples=True)
    predict = dsx.Predict("question -> answer", lm=lm)
    predict.demos = [
        dsx.Example(question="2+2?", answer="4"),
        dsx.Example(question="3+3?", answer="6"),
    ]
    assert predict(question="3+3?").answer == "6"
    assert predict(question="unseen").answer == "fallback"


def test_dummy_lm_answers_json_for_json_adapter():
    lm = DummyLM([{"answer": [1, 2]}])
    with dsx.context(adapter=dsx.JSONAdapter()):
        assert dsx.Predict("q -> answer: list[int]", lm=lm)(q="x").answer == [1, 2]
    assert lm.history[-1]["outputs"] == ['{"answer": [1, 2]}']


def test_function_lm_gets_messages_and_kwargs():
    calls = []

    def reply(messages, **kwargs):
        calls.append((messages, kwargs))
        return ["<<< answer >>>\nx\n\n<<< end >>>", {"answer": "y"}]

    pred = dsx.Predict("q -> answer", lm=FunctionLM(reply), n=2)(q="hi")
    assert pred.completions.answer == ["x", "y"]
    assert calls[0][1]["n"] == 2 and "hi" in calls[0][0][-1]["content"]


class FakeProviderLM(BaseLM):
    is_real = True

    def __init__(self, api_base=None):
        super().__init__("openai/gpt-x")
        self.api_base = api_base

    def forward(self, messages, **kwargs):
        self.check_allowed(self.api_base)
        return LMResponse(outputs=["<<< answer >>>\nreal\n\n<<< end >>>"])


def test_real_lm_requests_fail_loudly_while_forbidden():
    # conftest turns the switch on for the whole suite.
    with pytest.raises(RealLMCallForbidden, match="openai/gpt-x.*forbidden"):
        dsx.Predict("q -> answer", lm=FakeProviderLM())(q="x")
    local = FakeProviderLM(api_base="http://127.0.0.1:8000/v1")
    assert dsx.Predict("q -> answer", lm=local)(q="x").answer == "real"
    with forbid_real_lm_requests(False):
        assert dsx.Predict("q -> answer", lm=FakeProviderLM())(q="x").answer == "real"
    with pytest.raises(RealLMCallForbidden):
        FakeProviderLM()(prompt="hi")


def test_inspect_history_prints_recent_calls(capsys):
    lm = DummyLM([{"answer": "Paris"}])
    dsx.Predict("question -> answer", lm=lm)(question="Capital?")
    text = dsx.inspect_history(1)
    out = capsys.readouterr().out
    assert "Capital?" in out and "Paris" in out and "--- system ---" in out
    assert text in out
    assert "Capital?" in lm.inspect_history(1)


async def test_dummy_lm_out_of_answers_shows_the_parse_error_that_made_the_adapter_retry():
    # The unparsable reply makes the adapter ask again, and the script has nothing left.
    predict = dsx.Predict("question -> answer: int", lm=DummyLM([{"answer": "forty-two"}]))
    with pytest.raises(dsx.DsxError, match="ran out of answers") as info:
        predict(question="q")
    message = str(info.value)
    assert "could not be parsed" in message and "could not parse field `answer`" in message
    assert "forty-two" in message and isinstance(info.value.__cause__, dsx.AdapterParseError)
    predict = dsx.Predict("question -> answer: int", lm=DummyLM([{"answer": "forty-two"}]))
    with pytest.raises(dsx.DsxError, match="ran out of answers(.|\n)*could not parse field"):
        await predict.acall(question="q")


def test_dummy_lm_out_of_answers_without_a_retry_says_only_that():
    predict = dsx.Predict("question -> answer", lm=DummyLM([]))
    with pytest.raises(dsx.DsxError, match="ran out of answers") as info:
        predict(question="q")
    assert "parse" not in str(info.value) and info.value.__cause__ is None


def test_dummy_lm_without_an_answer_for_a_retry_shows_the_parse_error():
    # The key matches the chat prompt only, not the adapter's JSON retry.
    lm = DummyLM({"then <<< end >>>": {"answer": "forty-two"}})
    predict = dsx.Predict("question -> answer: int", lm=lm)
    with pytest.raises(dsx.DsxError, match="no answer for this prompt") as info:
        predict(question="q")
    assert "could not parse field `answer`" in str(info.value)


# -- the local servers on aiohttp.web (dsx.testing.server, colbert_server) -----------------


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _chat_body(text: str = "one two three", **extra: Any) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    ).encode()


@pytest.mark.integration
def test_openai_server_reads_a_chunked_request_body():
    with OpenAIServer() as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        pieces = iter([b'{"model": "m", "mess', b'ages": [{"role": "user", "content": "hi"}]}'])
        conn.request("POST", "/v1/chat/completions", body=pieces, encode_chunked=True)
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        conn.close()
        [record] = srv.requests
    assert resp.status == 200 and doc["choices"][0]["message"]["content"] == "hi"
    assert record.headers["transfer-encoding"] == "chunked"
    assert record.body["messages"][0]["content"] == "hi"


@pytest.mark.integration
def test_openai_server_refuses_a_body_over_the_limit_with_json_413():
    from dsx.testing.server import MAX_BODY_BYTES

    with OpenAIServer() as srv:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
        )
        answer = _raw_exchange(srv.port, head.encode())  # the body is never sent
        assert srv.request_count == 0  # refused before it was recorded
        status, body = _post_json(srv, "/v1/chat/completions", _chat_body("still fine"))
    head_text, _, payload = answer.partition(b"\r\n\r\n")
    assert head_text.startswith(b"HTTP/1.1 413")
    assert b"Content-Type: application/json" in head_text
    assert "too large" in json.loads(payload)["error"]["message"]
    assert status == 200 and body["choices"][0]["message"]["content"] == "still fine"


def _post_json(srv: OpenAIServer, path: str, body: bytes) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.integration
def test_openai_server_streams_to_an_http_1_0_client_until_close():
    # HTTP/1.0 has no chunked framing: the event stream ends when the connection closes.
    body = _chat_body("a b c", stream=True)
    head = f"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: {len(body)}\r\n\r\n"
    with OpenAIServer() as srv:
        answer = _raw_exchange(srv.port, head.encode() + body)
    head_text, _, payload = answer.partition(b"\r\n\r\n")
    assert head_text.startswith(b"HTTP/1.0 200")
    assert b"Transfer-Encoding" not in head_text and b"Server: dsx-testing" in head_text
    events = [e.removeprefix(b"data: ") for e in payload.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "a b c"


@pytest.mark.integration
def test_openai_server_survives_a_client_that_hangs_up_mid_stream(caplog):
    with OpenAIServer(chunk_interval=0.05) as srv:
        body = _chat_body(" ".join(["word"] * 40), stream=True)
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(head.encode() + body)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # The server notices on its next write and lets the request go.
        deadline = time.monotonic() + 5
        while srv.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.in_flight == 0
        status, doc = _post_json(srv, "/v1/chat/completions", _chat_body("next"))
    assert status == 200 and doc["choices"][0]["message"]["content"] == "next"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.integration
def test_openai_server_reports_its_own_bug_as_json_500():
    # A tool call without a name breaks the reply renderer, not the client's request.
    with OpenAIServer(script=[Reply(None, tool_calls=[{"arguments": {}}]), "ok"]) as srv:
        status, doc = _post_json(srv, "/v1/chat/completions", _chat_body())
        assert status == 500 and "dsx test server bug" in doc["error"]["message"]
        assert (
            _post_json(srv, "/v1/chat/completions", _chat_body())[1]["choices"][0]["message"][
                "content"
            ]
            == "ok"
        )


@pytest.mark.integration
def test_openai_server_restarts_on_a_new_port_and_stop_is_idempotent():
    srv = OpenAIServer()
    assert "stopped" in repr(srv)
    with srv:
        first = srv.port
        assert f"127.0.0.1:{first}" in repr(srv)
        assert _post_json(srv, "/v1/chat/completions", _chat_body("a"))[0] == 200
    srv.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first), timeout=1).close()
    with srv:
        assert _post_json(srv, "/v1/chat/completions", _chat_body("b"))[0] == 200
    assert srv.request_count == 2


@pytest.mark.integration
def test_colbert_server_answers_unknown_paths_and_methods_like_a_router():
    with ColBERTv2Server(["Paris is in France."]) as srv:
        base = srv.url.removesuffix(srv.path)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/elsewhere?query=x", timeout=5)
        request = urllib.request.Request(f"{srv.url}?query=x", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen(request, timeout=5)
        with urllib.request.urlopen(f"{srv.url}?query=France&k=1", timeout=5) as ok:
            doc = json.loads(ok.read())
    assert missing.value.code == 404
    assert wrong.value.code == 405 and wrong.value.headers["Allow"] == "GET,POST"
    assert doc["topk"][0]["text"] == "Paris is in France." and len(srv.requests) == 1


@pytest.mark.integration
def test_colbert_server_stop_drops_a_hanging_request_promptly():
    srv = ColBERTv2Server(["Paris is in France."]).start()
    srv.inject(Fault.timeout())
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(f"GET {srv.path}?query=x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        deadline = time.monotonic() + 5
        while not srv.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
        assert sock.recv(1024) == b""  # closed without an answer
    srv.stop()
