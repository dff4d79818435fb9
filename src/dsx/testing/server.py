"""A real OpenAI-compatible HTTP server on 127.0.0.1, for integration tests.

:class:`OpenAIServer` speaks enough of the OpenAI REST API (chat completions, text
completions, embeddings, models; JSON and SSE streaming; HTTP/1.1 keep-alive) that the
``openai`` SDK and LiteLLM talk to it as to the real service. Replies come from a
responder callable, a script, or by default an echo of the last user message; injected
:class:`Fault` objects reproduce the failures clients must survive (429 with
``Retry-After``, 5xx, hangs, resets, truncated streams, malformed JSON).

It uses only the standard library (and dsx's names for structured-output modes) and runs
its own asyncio loop in a background thread, so sync and async tests can both use it::

    with OpenAIServer(script=["Paris"]) as srv:
        client = openai.OpenAI(base_url=srv.api_base, api_key="x")
        srv.inject(Fault.rate_limit(retry_after=0.01))
        ...

Run ``python -m dsx.testing.server --help`` for a stand-alone echo server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import math
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

from dsx.runtime._structured_output import mode_of

__all__ = [
    "BACKLOG",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "Fault",
    "FaultKind",
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "Responder",
    "StructuredOutput",
    "echo",
]

#: Listen backlog: hundreds of clients may connect in the same instant.
BACKLOG = 1024
#: Largest request line plus headers accepted (431 beyond).
MAX_HEAD_BYTES = 64 * 1024
#: Largest request body accepted (413 beyond).
MAX_BODY_BYTES = 32 * 1024 * 1024
_STOP_TIMEOUT_S = 5.0
_DEFAULT_MODEL = "dsx-test"
_SERVER_ERROR = "The server had an error while processing your request."

StructuredOutput = Literal["openai", "llama.cpp", "ollama", "vllm", "none"]
#: The ``response_format`` modes each server convention accepts (``"none"`` ignores the
#: field). What the others do with the rest is in ``OpenAIServer._check_format``.
_ACCEPTED_FORMATS: dict[str, frozenset[str]] = {
    "openai": frozenset({"json_schema", "json_object", "json_object_schema", "text"}),
    "vllm": frozenset({"json_schema", "json_object", "json_object_schema", "text"}),
    "llama.cpp": frozenset({"json_object", "json_object_schema", "text"}),
    "ollama": frozenset({"json_object", "json_object_schema", "text"}),
}

FaultKind = Literal[
    "status", "timeout", "malformed_json", "truncated_stream", "connection_reset", "trickle"
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure, consumed by one request. Build it with the classmethods.

    Attributes:
        kind: what happens instead of a normal reply.
        status_code: HTTP status of a ``"status"`` fault.
        message: the error message (``error.message`` in the JSON body).
        error_type: ``error.type`` in the JSON body.
        error_code: ``error.code`` in the JSON body.
        retry_after: seconds sent as ``Retry-After`` / ``retry-after-ms`` (``None``: no header).
        after_chunks: how many SSE chunks a truncated stream sends before it is cut.
        interval: seconds between two bytes of a ``"trickle"`` reply.
    """

    kind: FaultKind
    status_code: int = 500
    message: str = _SERVER_ERROR
    error_type: str = "server_error"
    error_code: str | None = None
    retry_after: float | None = None
    after_chunks: int = 2
    interval: float = 0.0

    @classmethod
    def status(
        cls,
        code: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        """Answer with HTTP ``code`` and an OpenAI-style ``{"error": {...}}`` body."""
        if not 400 <= code <= 599:
            raise ValueError(f"Fault.status needs a 4xx or 5xx code, got {code}")
        if message is None:
            try:
                message = HTTPStatus(code).phrase
            except ValueError:
                message = f"HTTP {code}"
        default_type = "server_error" if code >= 500 else "invalid_request_error"
        return cls(
            "status",
            status_code=code,
            message=message,
            error_type=error_type or _ERROR_TYPES.get(code, default_type),
            error_code=error_code,
            retry_after=retry_after,
        )

    @classmethod
    def rate_limit(cls, *, retry_after: float | None = 1.0, message: str | None = None) -> Fault:
        """HTTP 429 with ``Retry-After`` (whole seconds) and ``retry-after-ms`` headers."""
        msg = message or "Rate limit reached for requests. Please try again later."
        return cls.status(
            429,
            msg,
            error_type="requests",
            error_code="rate_limit_exceeded",
            retry_after=retry_after,
        )

    @classmethod
    def server_error(cls, message: str | None = None) -> Fault:
        """HTTP 500."""
        return cls.status(500, message or _SERVER_ERROR, error_type="server_error")

    @classmethod
    def unavailable(cls, message: str | None = None, *, retry_after: float | None = None) -> Fault:
        """HTTP 503 (the engine is overloaded)."""
        msg = message or "The engine is currently overloaded, please try again later."
        return cls.status(503, msg, error_type="server_error", retry_after=retry_after)

    @classmethod
    def timeout(cls) -> Fault:
        """Read the request and never answer, until the client hangs up or the server stops."""
        return cls("timeout")

    @classmethod
    def malformed_json(cls) -> Fault:
        """HTTP 200 whose body (or SSE event) is not valid JSON."""
        return cls("malformed_json", status_code=200)

    @classmethod
    def truncated_stream(cls, *, after_chunks: int = 2) -> Fault:
        """Send ``after_chunks`` SSE chunks, then drop the connection without ``[DONE]``.

        A non-streaming request gets half of its JSON body before the connection drops.
        """
        if after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        return cls("truncated_stream", status_code=200, after_chunks=after_chunks)

    @classmethod
    def trickle(cls, *, interval: float = 0.05) -> Fault:
        """Answer normally, but send the body one byte every ``interval`` seconds.

        Every read succeeds quickly, so only a deadline on the whole answer cuts it: the
        client that waits for it all waits ``interval`` times the body's length.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        return cls("trickle", status_code=200, interval=interval)

    @classmethod
    def connection_reset(cls) -> Fault:
        """Close the socket with ``SO_LINGER`` 0, so the client sees a TCP reset."""
        return cls("connection_reset")


@dataclass(frozen=True, slots=True)
class Reply:
    """A rich reply from a responder or script.

    Attributes:
        content: the text of every choice, or one text per choice (``None``: no content,
            as when the model only calls tools).
        tool_calls: chat tool calls, each ``{"name": str, "arguments": dict | str}`` with an
            optional ``"id"``; every choice carries them.
        finish_reason: defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
    """

    content: str | Sequence[str] | None = ""
    tool_calls: Sequence[Mapping[str, Any]] = ()
    finish_reason: str | None = None


ReplyLike: TypeAlias = "str | Sequence[str] | Reply | Fault"
Responder: TypeAlias = "Callable[[dict[str, Any]], ReplyLike | Awaitable[ReplyLike]]"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        path: the request path without the query string, e.g. ``"/v1/chat/completions"``.
        headers: header names lower-cased.
        body: the parsed JSON body (``None`` when absent or not JSON).
        fault: the injected fault this request consumed, if any.
        structured_output: how the body asked for JSON: ``"json_schema"``,
            ``"json_object_schema"`` (``json_object`` with a ``schema``, the llama.cpp
            dialect), ``"json_object"``, ``"text"``, another ``response_format`` type as
            given, or ``None`` when the body has no ``response_format``.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    fault: Fault | None = None
    structured_output: str | None = None


class _HTTPError(Exception):
    """Answered as an OpenAI-style JSON error; the connection survives."""

    def __init__(
        self, status: int, message: str, *, error_type: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or _ERROR_TYPES.get(status, "server_error")
        self.code = code


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass(slots=True)
class _Choice:
    text: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str


def echo(request: Mapping[str, Any]) -> str:
    """The default responder: the last user message (chat) or the last prompt (completions)."""
    if isinstance(request.get("messages"), list):
        messages = [m for m in request["messages"] if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"] or messages
        return _text_of(users[-1].get("content")) if users else ""
    prompt = request.get("prompt", "")
    if isinstance(prompt, list):
        prompt = prompt[-1] if prompt else ""
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def _format_of(body: Any) -> str | None:
    """How a request body asks for structured output (see ``RecordedRequest``)."""
    if not isinstance(body, dict) or "response_format" not in body:
        return None
    given = body["response_format"]
    mode = mode_of(given)
    if mode is not None:
        return mode
    kind = given.get("type") if isinstance(given, dict) else given
    return str(kind)


def _text_of(content: Any) -> str:
    """The text of a message ``content``: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _words(text: str | None) -> int:
    # Rough "tokens": clients only need plausible, consistent usage numbers.
    return len(text.split()) if text else 0


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    if isinstance(body.get("messages"), list):
        return sum(
            _words(_text_of(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
    prompt = body.get("prompt", "")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    return sum(_words(p) for p in prompts if isinstance(p, str))


def _pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized stream deltas that concatenate back to it exactly."""
    return re.findall(r"\s*\S+(?:\s+\Z)?", text) or ([text] if text else [])


def _embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector derived from a hash of ``text``."""
    values: list[float] = []
    block = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1.0 for v in struct.unpack(">8I", digest))
        block += 1
    vec = values[:dim]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        if all(isinstance(x, int) for x in raw):  # one pre-tokenised input
            return [json.dumps(raw)]
        if all(isinstance(x, str | list) for x in raw):
            return [x if isinstance(x, str) else json.dumps(x) for x in raw]
    raise _HTTPError(400, "'input' must be a non-empty string or array", code="invalid_input")


def _choices(reply: Any, n: int) -> list[_Choice]:
    """Normalise a responder's reply into choices (a list of texts sets their number)."""
    spec = reply if isinstance(reply, Reply) else Reply(content=reply)
    content = spec.content
    if content is None or isinstance(content, str):
        texts: list[str | None] = [content] * n
    elif isinstance(content, Sequence) and content and all(isinstance(t, str) for t in content):
        texts = list(content)
    else:
        raise _HTTPError(
            500,
            f"dsx test server: the responder returned {reply!r}; expected a str, a non-empty "
            "list of str (one per choice), a Reply or a Fault",
            code="bad_reply",
        )
    calls = [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": a
                if isinstance(a := call.get("arguments", {}), str)
                else json.dumps(a),
            },
        }
        for call in spec.tool_calls
    ]
    finish = spec.finish_reason or ("tool_calls" if calls else "stop")
    return [_Choice(text, calls, finish) for text in texts]


def _chat_chunks(
    base: dict[str, Any], choices: list[_Choice], extra: dict[str, Any]
) -> Iterator[dict]:
    def chunk(i: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra}

    for i, ch in enumerate(choices):
        yield chunk(i, {"role": "assistant", "content": "" if ch.text is not None else None})
        for piece in _pieces(ch.text or ""):
            yield chunk(i, {"content": piece})
        for j, call in enumerate(ch.tool_calls):
            yield chunk(i, {"tool_calls": [{"index": j, **call}]})
        yield chunk(i, {}, ch.finish_reason)


def _text_chunks(
    base: dict[str, Any], choices: list[_Choice], extra: dict[str, Any]
) -> Iterator[dict]:
    def chunk(i: int, text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra}

    for i, ch in enumerate(choices):
        for piece in _pieces(ch.text or ""):
            yield chunk(i, piece)
        yield chunk(i, "", ch.finish_reason)


def _completion(kind: str, model: str, choices: list[_Choice], prompt_tokens: int) -> _Completion:
    completion_tokens = sum(_words(c.text) for c in choices)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    prefix, obj = ("chatcmpl", "chat.completion") if kind == "chat" else ("cmpl", "text_completion")
    base = {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model}
    base["system_fingerprint"] = "fp_dsx_test"
    return _Completion(kind, base, obj, choices, usage)


@dataclass(slots=True)
class _Completion:
    """One completion, rendered as a JSON document or as stream chunks."""

    kind: str
    base: dict[str, Any]
    obj: str
    choices: list[_Choice]
    usage: dict[str, int]

    def document(self) -> dict[str, Any]:
        if self.kind == "chat":
            rendered = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c.text, "refusal": None}
                    | ({"tool_calls": c.tool_calls} if c.tool_calls else {}),
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(self.choices)
            ]
        else:
            rendered = [
                {
                    "text": c.text or "",
                    "index": i,
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(self.choices)
            ]
        return {**self.base, "object": self.obj, "choices": rendered, "usage": self.usage}

    def chunks(self, *, include_usage: bool) -> list[dict[str, Any]]:
        base = {**self.base, "object": "chat.completion.chunk" if self.kind == "chat" else self.obj}
        # With include_usage OpenAI sends "usage": null on every chunk, then one usage chunk.
        extra: dict[str, Any] = {"usage": None} if include_usage else {}
        make = _chat_chunks if self.kind == "chat" else _text_chunks
        chunks = list(make(base, self.choices, extra))
        if include_usage:
            chunks.append({**base, "choices": [], "usage": self.usage})
        return chunks


def _head(
    status: int,
    *,
    content_type: str,
    keep_alive: bool,
    length: int | None = None,
    chunked: bool = False,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", "Server: dsx-testing"]
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error_doc(message: str, error_type: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _abort(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST rather than an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _EventStream:
    """Writes SSE events; chunk-framed on HTTP/1.1 so the connection can be reused."""

    def __init__(self, writer: asyncio.StreamWriter, request: _Request) -> None:
        self._writer = writer
        self._chunked = request.version != "HTTP/1.0"
        self.keep_alive = request.keep_alive and self._chunked

    async def open(self) -> None:
        # HTTP/1.0 has no chunked framing: there the body ends when the connection closes.
        head = _head(
            200,
            content_type="text/event-stream; charset=utf-8",
            keep_alive=self.keep_alive,
            chunked=self._chunked,
            headers={"Cache-Control": "no-cache"},
        )
        self._writer.write(head)
        await self._writer.drain()

    async def send(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        if self._chunked:
            payload = b"%x\r\n%s\r\n" % (len(payload), payload)
        self._writer.write(payload)
        await self._writer.drain()

    async def close(self) -> bool:
        """End the stream; returns whether the connection stays open."""
        if self._chunked:
            self._writer.write(b"0\r\n\r\n")
            await self._writer.drain()
        return self.keep_alive


_ENDPOINTS = {
    "/chat/completions": ("POST", "chat"),
    "/completions": ("POST", "text"),
    "/embeddings": ("POST", "embeddings"),
    "/models": ("GET", "models"),
}


class OpenAIServer:
    """A local OpenAI-compatible HTTP server running in a background thread.

    Replies come from ``responder`` (called with the JSON body plus ``"_path"``; sync or
    async; returns a ``str``, one ``str`` per choice, a :class:`Reply` or a :class:`Fault`),
    or from ``script`` (served in order; a 500 error once exhausted), or by default from
    :func:`echo`. Queued faults are consumed one per request, before any reply.

    Args:
        responder: computes each completion reply.
        script: replies served in order instead of a responder.
        latency: seconds to wait before each response (requests overlap while waiting).
        chunk_interval: seconds between two SSE chunks of a streamed reply (a model that
            generates slowly; each chunk is about one word).
        host: interface to bind.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        faults: faults queued for the first requests, in order.
        embedding_dim: length of the pseudo-embeddings (a request's ``dimensions`` wins).
        structured_output: which ``response_format`` types to accept, as these servers do:
            ``"openai"`` (the default) and ``"vllm"`` take ``json_schema``, ``json_object``
            and ``text`` (vLLM also takes ``guided_json``); ``"llama.cpp"`` (llama-cpp-python's
            server) takes ``text`` and ``json_object`` with or without a ``schema`` and
            answers ``json_schema`` with HTTP 500 and a pydantic validation message;
            ``"ollama"`` takes ``json_object`` and ``text`` and answers ``json_schema`` with
            HTTP 400; ``"none"`` ignores ``response_format``. Each request's mode is in
            :attr:`RecordedRequest.structured_output`. Replies still come from the
            responder: the server checks the format, it does not enforce it.

    Example:
        >>> with OpenAIServer(script=["4"]) as srv:  # doctest: +SKIP
        ...     openai.OpenAI(base_url=srv.api_base, api_key="x").chat.completions.create(...)
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        script: Sequence[ReplyLike] | None = None,
        latency: float = 0.0,
        chunk_interval: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Sequence[Fault] | None = None,
        embedding_dim: int = 8,
        structured_output: StructuredOutput = "openai",
    ) -> None:
        if responder is not None and script is not None:
            raise TypeError("OpenAIServer takes a responder or a script, not both")
        if latency < 0:
            raise ValueError(f"latency must be >= 0, got {latency}")
        if chunk_interval < 0:
            raise ValueError(f"chunk_interval must be >= 0, got {chunk_interval}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if structured_output not in get_args(StructuredOutput):
            names = ", ".join(repr(c) for c in get_args(StructuredOutput))
            raise ValueError(f"structured_output must be one of {names}, got {structured_output!r}")
        self.structured_output: StructuredOutput = structured_output
        self.latency = latency
        self.chunk_interval = chunk_interval
        self._responder: Responder = responder or echo
        self._script = deque(script) if script is not None else None
        self._script_size = len(self._script or ())
        self._host, self._requested_port, self._embedding_dim = host, port, embedding_dim
        self._lock = threading.Lock()  # guards everything tests read from other threads
        self._faults: deque[Fault] = deque(faults or ())
        self._requests: list[RecordedRequest] = []
        self._models: dict[str, None] = {_DEFAULT_MODEL: None}
        self._in_flight = self._max_in_flight = 0
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_error: BaseException | None = None
        from dsx.testing.finetune_api import FineTuningAPI

        #: The fine-tuning endpoints' files and jobs (see :mod:`dsx.testing.finetune_api`).
        self.fine_tuning = FineTuningAPI()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        """Bind and serve in a background thread; returns ``self`` once it accepts requests.

        Raises:
            RuntimeError: the server is already running.
            OSError: the address cannot be bound (e.g. the port is taken).
        """
        if self._thread is not None:
            raise RuntimeError("OpenAIServer is already running; call stop() first")
        ready = threading.Event()
        self._start_error = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="dsx-openai-server", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (hung ones too), then join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=_STOP_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_STOP_TIMEOUT_S)
            self._thread = self._loop = self._server = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None and self._thread else "stopped"
        return f"<OpenAIServer {where} requests={self.request_count}>"

    # -- what tests look at ------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("OpenAIServer is not started; use `with OpenAIServer() as srv:`")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def api_base(self) -> str:
        """``http://HOST:PORT/v1``: the ``base_url`` for the openai SDK / LiteLLM."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many requests were received (``/health`` probes are not counted)."""
        with self._lock:
            return len(self._requests)

    @property
    def in_flight(self) -> int:
        """Requests received but not yet answered."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests ever in flight at once: proof that concurrent requests overlapped."""
        with self._lock:
            return self._max_in_flight

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults still queued, next first."""
        with self._lock:
            return list(self._faults)

    def inject(self, fault: Fault, *, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests (after faults already queued)."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            self._faults.extend([fault] * times)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        """Forget recorded requests and reset :attr:`max_in_flight`."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    # -- event-loop side ---------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(
                asyncio.start_server(
                    self._serve_connection,
                    self._host,
                    self._requested_port,
                    backlog=BACKLOG,
                    limit=MAX_HEAD_BYTES,
                )
            )
        except BaseException as exc:
            self._start_error = exc
            loop.close()
            ready.set()
            return
        self._loop, self._server = loop, server
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Python 3.12+ waits here for connections to close; all of them just were.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), _STOP_TIMEOUT_S)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            keep_alive = True
            while keep_alive:
                try:
                    request = await self._read_request(reader)
                except _HTTPError as exc:  # unparseable HTTP: answer, then hang up
                    body = _error_doc(str(exc), exc.error_type, exc.code)
                    await self._send_json(writer, exc.status, body, keep_alive=False)
                    return
                if request is None:
                    return
                keep_alive = await self._handle(request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client hung up mid-request, or the server is stopping
        except Exception as exc:
            # A bug here must not kill the loop (and every other test's connections).
            doc = _error_doc(f"dsx test server bug: {exc!r}", "server_error", "internal")
            with contextlib.suppress(Exception):
                await self._send_json(writer, 500, doc, keep_alive=False)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _HTTPError(400, "incomplete HTTP request head") from None
            return None  # a clean close between requests
        except asyncio.LimitOverrunError:
            raise _HTTPError(431, "request head too large") from None
        lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _HTTPError(400, f"malformed request line: {lines[0][:200]!r}")
        headers: dict[str, str] = {}
        for line in filter(None, lines[1:]):
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise _HTTPError(400, f"malformed header line: {line[:200]!r}")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _HTTPError(400, "Content-Length is not an integer") from None
            if not 0 <= length <= MAX_BODY_BYTES:
                raise _HTTPError(413 if length > 0 else 400, f"bad Content-Length {length}")
            body = await reader.readexactly(length)
        path = parts[1].split("?", 1)[0]
        return _Request(parts[0].upper(), path, parts[2], headers, body)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            try:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            except (ValueError, asyncio.LimitOverrunError):
                raise _HTTPError(400, "malformed chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers carry nothing a test server needs
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise _HTTPError(413, "request body too large")
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise _HTTPError(400, "malformed chunk framing")

    async def _handle(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; returns whether the connection stays open."""
        keep_alive = request.keep_alive
        if request.path == "/health":  # readiness probe: never recorded, never faulted
            await self._send_json(writer, 200, {"status": "ok"}, keep_alive=keep_alive)
            return keep_alive
        body: Any = None
        body_error = None
        if request.raw_body:
            try:
                body = json.loads(request.raw_body)
            except ValueError as exc:
                body_error = f"We could not parse the JSON body of your request: {exc}"
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            record = RecordedRequest(
                request.method, request.path, request.headers, body, fault, _format_of(body)
            )
            self._requests.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if fault is not None:
                return await self._apply_fault(fault, request, body, reader, writer)
            try:
                if body_error is not None and not self.fine_tuning.handles(request.path):
                    raise _HTTPError(400, body_error, code="invalid_json")
                return await self._route(request, body, reader, writer)
            except _HTTPError as exc:
                doc = _error_doc(str(exc), exc.error_type, exc.code)
                await self._send_json(writer, exc.status, doc, keep_alive=keep_alive)
                return keep_alive
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _route(
        self,
        request: _Request,
        body: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = request.path.rstrip("/")
        if self.fine_tuning.handles(path):
            status, doc = self.fine_tuning.handle(
                request.method, path, request.headers, request.raw_body
            )
            await self._send_json(writer, status, doc, keep_alive=request.keep_alive)
            return request.keep_alive
        endpoint = _ENDPOINTS.get(path.removeprefix("/v1"))
        if endpoint is None:
            raise _HTTPError(
                404,
                f"Unknown path {request.path!r}: this server answers /v1/chat/completions, "
                "/v1/completions, /v1/embeddings and /v1/models",
                code="unknown_url",
            )
        method, kind = endpoint
        if request.method != method:
            raise _HTTPError(405, f"{request.path} takes {method}, not {request.method}")
        keep_alive = request.keep_alive
        if kind == "models":
            with self._lock:
                names = list(self._models)
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "dsx"} for m in names]
            await self._send_json(
                writer, 200, {"object": "list", "data": data}, keep_alive=keep_alive
            )
            return keep_alive
        if not isinstance(body, dict):
            raise _HTTPError(400, "the request body must be a JSON object")
        model = str(body.get("model") or _DEFAULT_MODEL)
        with self._lock:
            self._models[model] = None
        if kind == "embeddings":
            doc = self._embeddings(body, model)
            await self._send_json(writer, 200, doc, keep_alive=keep_alive)
            return keep_alive
        if kind == "chat" and not isinstance(body.get("messages"), list):
            raise _HTTPError(
                400, "'messages' is a required array", code="missing_required_parameter"
            )
        if kind == "text" and "prompt" not in body:
            raise _HTTPError(400, "'prompt' is required", code="missing_required_parameter")
        n = 1 if body.get("n") is None else body["n"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
            raise _HTTPError(400, f"'n' must be an integer from 1 to 128, got {n!r}")
        self._check_format(kind, body)
        reply = await self._next_reply({**body, "_path": request.path})
        if isinstance(reply, Fault):
            return await self._apply_fault(reply, request, body, reader, writer)
        completion = _completion(kind, model, _choices(reply, n), _prompt_tokens(body))
        if not body.get("stream"):
            await self._send_json(writer, 200, completion.document(), keep_alive=keep_alive)
            return keep_alive
        options = body.get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        stream = _EventStream(writer, request)
        await stream.open()
        for i, chunk in enumerate(completion.chunks(include_usage=include_usage)):
            if i and self.chunk_interval:
                await asyncio.sleep(self.chunk_interval)
            await stream.send(json.dumps(chunk))
        await stream.send("[DONE]")
        return await stream.close()

    def _check_format(self, kind: str, body: dict[str, Any]) -> None:
        """Refuse a ``response_format`` the way the mimicked server does."""
        convention = self.structured_output
        mode = _format_of(body)
        if convention == "none" or mode is None or mode in _ACCEPTED_FORMATS[convention]:
            return
        given = body["response_format"]
        kind_given = given.get("type") if isinstance(given, dict) else given
        if convention == "llama.cpp":
            # llama-cpp-python's route handler reports every exception, FastAPI's request
            # validation included, as an internal server error; this is its wording.
            where = ("body", "response_format", "type") if isinstance(given, dict) else ("body",)
            detail = {
                "type": "literal_error",
                "loc": where,
                "msg": "Input should be 'text' or 'json_object'",
                "input": kind_given,
                "ctx": {"expected": "'text' or 'json_object'"},
            }
            endpoint = "create_chat_completion" if kind == "chat" else "create_completion"
            raise _HTTPError(
                500,
                f'1 validation error:\n  {detail!r}\n\n  File "llama_cpp/server/app.py", '
                f"in {endpoint}\n    POST /v1/{'chat/' if kind == 'chat' else ''}completions",
                error_type="internal_server_error",
            )
        if convention == "ollama":
            raise _HTTPError(
                400,
                f"invalid response_format type {kind_given!r}: supported types are "
                "'json_object' and 'text'",
                error_type="invalid_request_error",
            )
        raise _HTTPError(
            400,
            f"Invalid value: {kind_given!r}. Supported values are: 'json_object', "
            "'json_schema', and 'text'.",
            error_type="invalid_request_error",
            code="invalid_value",
        )

    async def _next_reply(self, request: dict[str, Any]) -> Any:
        if self._script is not None:
            with self._lock:
                if self._script:
                    return self._script.popleft()
            raise _HTTPError(
                500,
                f"dsx test server: the script is exhausted (all {self._script_size} replies "
                "were served); give OpenAIServer(script=...) more replies",
                code="script_exhausted",
            )
        try:
            reply = self._responder(request)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:
            message = f"dsx test server: the responder raised {type(exc).__name__}: {exc}"
            raise _HTTPError(500, message, code="responder_error") from exc
        return reply

    def _embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        inputs = _embedding_inputs(body.get("input"))
        dim = body.get("dimensions") or self._embedding_dim
        if not isinstance(dim, int) or not 1 <= dim <= 65536:
            raise _HTTPError(400, f"'dimensions' must be an integer from 1 to 65536, got {dim!r}")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vec: Any = _embedding(text, dim)
            if as_base64:  # what the openai SDK asks for by default: little-endian float32
                vec = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": vec})
        tokens = sum(_words(t) for t in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}

    async def _apply_fault(
        self,
        fault: Fault,
        request: _Request,
        body: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        keep_alive = request.keep_alive
        streaming = isinstance(body, dict) and bool(body.get("stream"))
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                # Retry-After must be whole seconds; the openai SDK prefers the precise -ms one.
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
                headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
            doc = _error_doc(fault.message, fault.error_type, fault.error_code)
            await self._send_json(
                writer, fault.status_code, doc, keep_alive=keep_alive, headers=headers
            )
            return keep_alive
        if fault.kind == "timeout":
            while await reader.read(65536):
                pass  # hold the request until the client gives up (EOF) or stop() cancels us
            return False
        if fault.kind == "connection_reset":
            _abort(writer)
            return False
        if fault.kind == "malformed_json":
            broken = '{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"ind'
            if not streaming:
                await self._send(writer, 200, broken.encode(), keep_alive=keep_alive)
                return keep_alive
            stream = _EventStream(writer, request)
            await stream.open()
            await stream.send(broken)
            await stream.send("[DONE]")
            return await stream.close()
        # truncated_stream and trickle: the echo reply.
        kind = "chat" if request.path.rstrip("/").endswith("/chat/completions") else "text"
        model = (
            str(body.get("model") or _DEFAULT_MODEL) if isinstance(body, dict) else _DEFAULT_MODEL
        )
        text = echo(body) if isinstance(body, dict) else ""
        completion = _completion(kind, model, _choices(text, 1), 0)
        if fault.kind == "trickle":
            await self._trickle(writer, completion, streaming, fault.interval)
            return False
        # truncated_stream: cut off; the connection then closes (FIN).
        if not streaming:
            payload = json.dumps(completion.document()).encode()
            writer.write(
                _head(200, content_type="application/json", keep_alive=True, length=len(payload))
                + payload[: len(payload) // 2]
            )
            await writer.drain()
            return False
        chunks = completion.chunks(include_usage=False)
        stream = _EventStream(writer, request)
        await stream.open()
        for chunk in chunks[: min(fault.after_chunks, len(chunks) - 1)]:
            await stream.send(json.dumps(chunk))
        return False

    async def _trickle(
        self,
        writer: asyncio.StreamWriter,
        completion: _Completion,
        streaming: bool,
        interval: float,
    ) -> None:
        """The whole reply, its body one byte per ``interval`` (HTTP/1.0-style framing:
        the body ends when the connection closes)."""
        if streaming:
            chunks = completion.chunks(include_usage=True)
            body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
            body += b"data: [DONE]\n\n"
            writer.write(
                _head(200, content_type="text/event-stream; charset=utf-8", keep_alive=False)
            )
        else:
            body = json.dumps(completion.document()).encode()
            writer.write(
                _head(200, content_type="application/json", keep_alive=False, length=len(body))
            )
        await writer.drain()
        for i in range(len(body)):
            await asyncio.sleep(interval)
            writer.write(body[i : i + 1])
            await writer.drain()

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        doc: Any,
        *,
        keep_alive: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self._send(
            writer, status, json.dumps(doc).encode(), keep_alive=keep_alive, headers=headers
        )

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        *,
        keep_alive: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        head = _head(
            status,
            content_type="application/json",
            keep_alive=keep_alive,
            length=len(payload),
            headers=headers,
        )
        writer.write(head + payload)
        await writer.drain()


# -- command line ----------------------------------------------------------------------


def _load_script(path: Path) -> list[ReplyLike]:
    """Replies from a JSONL file: a string, a list of strings, or a Reply-shaped object."""
    replies: list[ReplyLike] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            replies.append(value)
        elif isinstance(value, dict) and set(value) <= {"content", "tool_calls", "finish_reason"}:
            replies.append(Reply(**value))
        else:
            raise ValueError(
                f"{path}:{number}: expected a string, a list of strings or an object with "
                f"content/tool_calls/finish_reason, got {line[:80]!r}"
            )
    return replies


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from the command line until Ctrl-C (or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m dsx.testing.server",
        description="Serve a local OpenAI-compatible API (chat, completions, embeddings, "
        "models) that echoes the last user message, or replays a script of replies.",
        epilog="Point any OpenAI client at the printed api_base, e.g. "
        "OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=anything.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay before each response, like a slow model (default: %(default)s)",
    )
    parser.add_argument(
        "--script",
        type=Path,
        metavar="FILE.jsonl",
        help="serve these replies in order, one JSON value per line: a string, a list of "
        "strings (one per choice) or {content, tool_calls, finish_reason}; once they are "
        "used up, requests get HTTP 500",
    )
    parser.add_argument(
        "--embedding-dim",
        type=int,
        default=8,
        metavar="N",
        help="length of the deterministic pseudo-embeddings (default: %(default)s)",
    )
    parser.add_argument(
        "--structured-output",
        choices=get_args(StructuredOutput),
        default="openai",
        help="accept and refuse response_format types as this server does (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    script = None
    if args.script is not None:
        try:
            script = _load_script(args.script)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
    # Make `kill` (SIGTERM) unwind like Ctrl-C, so the server shuts down cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = OpenAIServer(
        script=script,
        latency=args.latency,
        host=args.host,
        port=args.port,
        embedding_dim=args.embedding_dim,
        structured_output=args.structured_output,
    )
    try:
        server.start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    try:
        print(server.api_base, flush=True)
        print(f"dsx test server on {server.api_base} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
