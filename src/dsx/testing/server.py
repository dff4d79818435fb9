"""A real OpenAI-compatible HTTP server on 127.0.0.1, for integration tests.

:class:`OpenAIServer` speaks enough of the OpenAI REST API (chat completions, text
completions, embeddings, models, fine-tuning; JSON and SSE streaming; HTTP/1.1
keep-alive) that the ``openai`` SDK and LiteLLM talk to it as to the real service.
Replies come from a responder callable, a script, or by default an echo of the last user
message; injected :class:`Fault` objects reproduce the failures clients must survive (429
with ``Retry-After``, 5xx, hangs, resets, truncated streams, malformed JSON).

HTTP is ``aiohttp.web``'s, on its own event loop in a background thread
(:mod:`dsx.testing._threaded_server`), so sync and async tests can both use it::

    with OpenAIServer(script=["Paris"]) as srv:
        client = openai.OpenAI(base_url=srv.api_base, api_key="x")
        srv.inject(Fault.rate_limit(retry_after=0.01))
        ...

The documents it answers are built in :mod:`dsx.testing._openai_payloads`. Run
``python -m dsx.testing.server --help`` for a stand-alone echo server.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, TypeAlias, get_args

from aiohttp import web

from dsx.testing._openai_payloads import (
    DEFAULT_MODEL,
    ERROR_TYPES,
    Completion,
    HTTPError,
    check_format,
    count_prompt_tokens,
    embeddings_document,
    error_doc,
    format_of,
    make_choices,
    make_completion,
)
from dsx.testing._openai_payloads import Reply as Reply
from dsx.testing._openai_payloads import StructuredOutput as StructuredOutput
from dsx.testing._openai_payloads import _embedding as _embedding  # tests import it from here
from dsx.testing._openai_payloads import echo as echo
from dsx.testing._threaded_server import BACKLOG as BACKLOG
from dsx.testing._threaded_server import MAX_HEAD_BYTES as MAX_HEAD_BYTES
from dsx.testing._threaded_server import ThreadedServer, abort, hang_up, until_disconnected

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

#: Largest request body accepted (413 beyond).
MAX_BODY_BYTES = 32 * 1024 * 1024
_SERVER_ERROR = "The server had an error while processing your request."
#: On every answer, as before aiohttp: tests and logs can tell this server from others.
_SERVER_HEADER = {"Server": "dsx-testing"}

FaultKind = Literal[
    "status", "timeout", "malformed_json", "truncated_stream", "connection_reset", "trickle"
]


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
            error_type=error_type or ERROR_TYPES.get(code, default_type),
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
        self._host, self._embedding_dim = host, embedding_dim
        self._lock = threading.Lock()  # guards everything tests read from other threads
        self._faults: deque[Fault] = deque(faults or ())
        self._requests: list[RecordedRequest] = []
        self._models: dict[str, None] = {DEFAULT_MODEL: None}
        self._in_flight = self._max_in_flight = 0
        self._server = ThreadedServer(self._serve, host=host, port=port, name="dsx-openai-server")
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
        if self._server.running:
            raise RuntimeError("OpenAIServer is already running; call stop() first")
        self._server.start()
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (hung ones too), then join the thread."""
        self._server.stop()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server.running else "stopped"
        return f"<OpenAIServer {where} requests={self.request_count}>"

    # -- what tests look at ------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with ``port=0``)."""
        if self._server.port is None:
            raise RuntimeError("OpenAIServer is not started; use `with OpenAIServer() as srv:`")
        return self._server.port

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

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except ConnectionError:  # the client hung up while we answered
            return hang_up(request, web.Response())
        except Exception as exc:
            # A bug here must not take the connection down silently: say what it was.
            doc = error_doc(f"dsx test server bug: {exc!r}", "server_error", "internal")
            if request.writer.output_size:  # too late for a status line
                return hang_up(request, web.Response())
            response = _json_response(500, doc)
            response.force_close()
            return response

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        if path == "/health":  # readiness probe: never recorded, never faulted
            return _json_response(200, {"status": "ok"})
        try:
            raw_body = await _read_body(request)
        except HTTPError as exc:  # too large: answer, then hang up without reading the rest
            response = _json_response(exc.status, exc.document())
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            return hang_up(request, response)
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body: Any = None
        body_error = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError as exc:
                body_error = f"We could not parse the JSON body of your request: {exc}"
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            record = RecordedRequest(request.method, path, headers, body, fault, format_of(body))
            self._requests.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if fault is not None:
                return await self._apply_fault(fault, request, path, body)
            try:
                if body_error is not None and not self.fine_tuning.handles(path):
                    raise HTTPError(400, body_error, code="invalid_json")
                return await self._route(request, path, headers, raw_body, body)
            except HTTPError as exc:
                return _json_response(exc.status, exc.document())
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _route(
        self,
        request: web.BaseRequest,
        path: str,
        headers: dict[str, str],
        raw_body: bytes,
        body: Any,
    ) -> web.StreamResponse:
        path = path.rstrip("/")
        if self.fine_tuning.handles(path):
            status, doc = self.fine_tuning.handle(request.method, path, headers, raw_body)
            return _json_response(status, doc)
        endpoint = _ENDPOINTS.get(path.removeprefix("/v1"))
        if endpoint is None:
            raise HTTPError(
                404,
                f"Unknown path {request.raw_path.partition('?')[0]!r}: this server answers "
                "/v1/chat/completions, /v1/completions, /v1/embeddings and /v1/models",
                code="unknown_url",
            )
        method, kind = endpoint
        if request.method != method:
            raise HTTPError(405, f"{path} takes {method}, not {request.method}")
        if kind == "models":
            with self._lock:
                names = list(self._models)
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "dsx"} for m in names]
            return _json_response(200, {"object": "list", "data": data})
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        model = str(body.get("model") or DEFAULT_MODEL)
        with self._lock:
            self._models[model] = None
        if kind == "embeddings":
            return _json_response(200, embeddings_document(body, model, self._embedding_dim))
        if kind == "chat" and not isinstance(body.get("messages"), list):
            raise HTTPError(
                400, "'messages' is a required array", code="missing_required_parameter"
            )
        if kind == "text" and "prompt" not in body:
            raise HTTPError(400, "'prompt' is required", code="missing_required_parameter")
        n = 1 if body.get("n") is None else body["n"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
            raise HTTPError(400, f"'n' must be an integer from 1 to 128, got {n!r}")
        check_format(self.structured_output, kind, body)
        reply = await self._next_reply({**body, "_path": request.raw_path.partition("?")[0]})
        if isinstance(reply, Fault):
            return await self._apply_fault(reply, request, path, body)
        completion = make_completion(kind, model, make_choices(reply, n), count_prompt_tokens(body))
        if not body.get("stream"):
            return _json_response(200, completion.document())
        options = body.get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        stream = await _open_event_stream(request)
        for i, chunk in enumerate(completion.chunks(include_usage=include_usage)):
            if i and self.chunk_interval:
                await asyncio.sleep(self.chunk_interval)
            await stream.write(_event(json.dumps(chunk)))
        await stream.write(_event("[DONE]"))
        await stream.write_eof()
        return stream

    async def _next_reply(self, request: dict[str, Any]) -> Any:
        if self._script is not None:
            with self._lock:
                if self._script:
                    return self._script.popleft()
            raise HTTPError(
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
            raise HTTPError(500, message, code="responder_error") from exc
        return reply

    async def _apply_fault(
        self, fault: Fault, request: web.BaseRequest, path: str, body: Any
    ) -> web.StreamResponse:
        streaming = isinstance(body, dict) and bool(body.get("stream"))
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                # Retry-After must be whole seconds; the openai SDK prefers the precise -ms one.
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
                headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
            doc = error_doc(fault.message, fault.error_type, fault.error_code)
            return _json_response(fault.status_code, doc, headers)
        if fault.kind == "timeout":
            await until_disconnected(request)  # or until stop() cancels us
            return hang_up(request, web.Response())
        if fault.kind == "connection_reset":
            return abort(request)
        if fault.kind == "malformed_json":
            broken = '{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"ind'
            if not streaming:
                return _json_response(200, raw=broken.encode())
            stream = await _open_event_stream(request)
            await stream.write(_event(broken) + _event("[DONE]"))
            await stream.write_eof()
            return stream
        # truncated_stream and trickle: the echo reply.
        kind = "chat" if path.rstrip("/").endswith("/chat/completions") else "text"
        model = str(body.get("model") or DEFAULT_MODEL) if isinstance(body, dict) else DEFAULT_MODEL
        text = echo(body) if isinstance(body, dict) else ""
        completion = make_completion(kind, model, make_choices(text, 1), 0)
        if fault.kind == "trickle":
            return await _trickle(request, completion, streaming, fault.interval)
        # truncated_stream: cut off; the connection then closes (FIN).
        if not streaming:
            payload = json.dumps(completion.document()).encode()
            response = web.StreamResponse(headers=_SERVER_HEADER)
            response.content_type = "application/json"
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            return hang_up(request, response)
        chunks = completion.chunks(include_usage=False)
        stream = await _open_event_stream(request)
        for chunk in chunks[: min(fault.after_chunks, len(chunks) - 1)]:
            await stream.write(_event(json.dumps(chunk)))
        return hang_up(request, stream)


def _json_response(
    status: int,
    doc: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    raw: bytes | None = None,
) -> web.Response:
    payload = raw if raw is not None else json.dumps(doc).encode()
    all_headers = {**_SERVER_HEADER, **headers} if headers else _SERVER_HEADER
    return web.Response(
        status=status, body=payload, content_type="application/json", headers=all_headers
    )


async def _read_body(request: web.BaseRequest) -> bytes:
    """The whole request body (aiohttp undoes chunked framing), at most ``MAX_BODY_BYTES``."""
    if not request.body_exists:
        return b""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise HTTPError(413, f"request body too large ({length} bytes)")
    parts: list[bytes] = []
    size = 0
    while part := await request.content.readany():
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, "request body too large")
        parts.append(part)
    return b"".join(parts)


def _event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


async def _open_event_stream(request: web.BaseRequest) -> web.StreamResponse:
    """Send the head of an SSE answer; aiohttp frames the body in chunks on HTTP/1.1 (so the
    connection can be reused) and ends it by closing the connection on HTTP/1.0."""
    stream = web.StreamResponse(headers={**_SERVER_HEADER, "Cache-Control": "no-cache"})
    stream.content_type = "text/event-stream"
    stream.charset = "utf-8"
    await stream.prepare(request)
    return stream


async def _trickle(
    request: web.BaseRequest, completion: Completion, streaming: bool, interval: float
) -> web.StreamResponse:
    """The whole reply, its body one byte per ``interval``; the connection closes after it."""
    response = web.StreamResponse(headers=_SERVER_HEADER)
    response.force_close()
    if streaming:
        chunks = completion.chunks(include_usage=True)
        body = b"".join(_event(json.dumps(c)) for c in chunks) + _event("[DONE]")
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
    else:
        body = json.dumps(completion.document()).encode()
        response.content_type = "application/json"
        response.content_length = len(body)
    await response.prepare(request)
    for i in range(len(body)):
        await asyncio.sleep(interval)
        await response.write(body[i : i + 1])
    await response.write_eof()
    return response


if __name__ == "__main__":  # python -m dsx.testing.server: the command line lives apart
    from dsx.testing._server_cli import main

    sys.exit(main())
