"""The lean transport of :class:`dsx.LM`: JSON over HTTP to OpenAI-compatible endpoints.

LiteLLM spends milliseconds of CPU on every call (a thread hop, a logging object, a cost
lookup, the openai SDK's request and response models), which caps one process near 200
calls/s however fast the server is. For endpoints that speak the OpenAI REST API this
module posts the request itself and decodes the answer: one ``aiohttp.ClientSession`` (a
keep-alive connection pool) per event loop. Sync calls are sent to a private event loop that
a daemon thread runs, so there is one HTTP client, one stream reader and one set of
exceptions for both.

It only moves bytes. :class:`dsx.LM` keeps everything else (cache, retries and backoff,
history, usage, stream assembly, error mapping through :func:`dsx.runtime.lm.map_error`),
so both transports behave the same. A failed HTTP status is raised as
:class:`ProviderHTTPError`; a body that is not JSON as :class:`MalformedResponse`;
network failures as the HTTP library's own exceptions.

Which calls use it (``LM(transport=...)``; see ``docs/lm.md``):

* ``"openai"``: every call. The model's ``openai/`` or ``hosted_vllm/`` prefix is
  stripped; any other name is sent as is.
* ``"auto"`` (the default): ``openai/...`` models, except OpenAI's reasoning models
  (``o1``, ``o3``, ``gpt-5``, ...) on OpenAI's own API, for which LiteLLM rewrites
  parameters; and except calls that carry LiteLLM-only parameters (``mock_response``,
  ``fallbacks``, ``metadata``, ...), a ``response_format`` class, or a timeout object.
* ``"litellm"``: never.

``aiohttp`` is imported on first use, never at ``import dsx``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsx.runtime import usage as _usage
from dsx.runtime._model_names import BASE_VARIABLES, KEY_VARIABLES

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_TIMEOUT",
    "LITELLM_ONLY_PARAMS",
    "DeadlineExceeded",
    "MAX_CONNECTIONS",
    "MalformedResponse",
    "ProviderHTTPError",
    "ServerSentEvents",
    "Wire",
    "cost",
]

#: Connections kept per event loop (async) and per process (sync). Calls beyond it wait.
MAX_CONNECTIONS = 1024
#: Seconds one attempt may take when the LM sets no ``timeout``: the whole answer, streamed
#: or not, must arrive within it (also the limit on connecting and on each wait for data).
DEFAULT_TIMEOUT = 120.0
#: Request parameters only LiteLLM understands: ``"auto"`` sends such calls through it.
LITELLM_ONLY_PARAMS = frozenset(
    {
        "additional_drop_params",
        "allowed_openai_params",
        "api_version",
        "azure_ad_token",
        "base_model",
        "caching",
        "context_window_fallback_dict",
        "custom_llm_provider",
        "deployment_id",
        "drop_params",
        "extra_query",
        "fallbacks",
        "input_cost_per_second",
        "input_cost_per_token",
        "logger_fn",
        "metadata",
        "mock_delay",
        "mock_response",
        "mock_timeout",
        "mock_tool_calls",
        "model_list",
        "no-log",
        "output_cost_per_second",
        "output_cost_per_token",
        "proxy_url",
        "thinking",
    }
)
_LITELLM_PREFIXES = ("litellm_", "aws_", "vertex_")

_OPENAI_API = "https://api.openai.com/v1"
#: Provider prefix → (base URL variables, key variables), as LiteLLM reads them.
_PROVIDERS = {
    "openai": (BASE_VARIABLES["openai"], KEY_VARIABLES["openai"]),
    "hosted_vllm": (BASE_VARIABLES["hosted_vllm"], ("HOSTED_VLLM_API_KEY",)),
}
#: OpenAI models for which LiteLLM renames ``max_tokens`` and checks parameters.
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5|codex)")
_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)", re.IGNORECASE)


class ProviderHTTPError(Exception):
    """The endpoint answered with an HTTP error status.

    Shaped like the openai SDK's ``APIStatusError`` (``status_code``, ``body``,
    ``message``, ``headers``) so that :func:`dsx.runtime.lm.map_error` reads it the same.
    """

    #: Marks errors of this transport as provider failures for the error mapping.
    dsx_transport = True

    def __init__(self, status_code: int | None, body: Any, text: str, headers: Any) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = headers
        inner = body.get("error") if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        if not isinstance(message, str) or not message:
            message = text.strip()[:500] or f"HTTP {status_code}"
        self.message = message
        super().__init__(f"HTTP {status_code}: {message}" if status_code else message)


class MalformedResponse(Exception):
    """The endpoint's answer (or one stream event) is not JSON; chained to the parse error."""

    dsx_transport = True


class DeadlineExceeded(TimeoutError):
    """The whole answer did not arrive within the attempt's deadline (data may still have
    been trickling in: every single read was quick enough)."""

    dsx_transport = True

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g}s (deadline per attempt)")
        self.seconds = seconds


@dataclass(slots=True)
class Wire:
    """One request as it goes out: where, what, and how long it may take in all."""

    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float


# -- choosing and building ---------------------------------------------------------------------


def split_model(model: str) -> tuple[str | None, str]:
    """``("openai", "gpt-4o")`` for ``"openai/gpt-4o"``; ``(None, model)`` without a known prefix."""
    prefix, sep, name = model.partition("/")
    if sep and prefix in _PROVIDERS:
        return prefix, name
    return None, model


def base_url(provider: str | None, api_base: str | None) -> str | None:
    """The endpoint's base URL: ``api_base``, else the provider's variable, else OpenAI's."""
    if api_base:
        return api_base
    names = _PROVIDERS[provider or "openai"][0]
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return _OPENAI_API if provider in (None, "openai") else None


def is_openai_api(url: str) -> bool:
    """Whether ``url`` is OpenAI's own API (not a server that speaks its protocol)."""
    match = _HOST.match(url)
    return match is not None and match.group(1).lower() == "api.openai.com"


def unsupported(params: dict[str, Any], timeout: Any) -> str | None:
    """Why this call needs LiteLLM (``None``: the lean transport can send it as is)."""
    if not LITELLM_ONLY_PARAMS.isdisjoint(params):
        return f"LiteLLM-only parameter {sorted(LITELLM_ONLY_PARAMS.intersection(params))[0]!r}"
    for key in params:
        if key.startswith(_LITELLM_PREFIXES):
            return f"LiteLLM-only parameter {key!r}"
    if isinstance(params.get("response_format"), type):
        return "response_format is a class (LiteLLM turns it into a JSON schema; pass a dict)"
    if timeout is not None and not isinstance(timeout, int | float):
        return f"timeout {timeout!r} is not a number of seconds"
    return None


def auto_eligible(model: str, api_base: str | None, params: dict[str, Any], timeout: Any) -> bool:
    """Whether ``transport="auto"`` sends this call through the lean transport."""
    provider, name = split_model(model)
    if provider != "openai":
        return False
    url = base_url(provider, api_base)
    if url is None or (is_openai_api(url) and _OPENAI_REASONING.match(name)):
        return False
    return unsupported(params, timeout) is None


def build(
    *,
    model: str,
    model_type: str,
    messages: list[dict[str, Any]],
    prompt: str | None,
    params: dict[str, Any],
    api_base: str | None,
    api_key: str | None,
    headers: dict[str, Any] | None,
    timeout: float | None,
    stream: bool,
) -> Wire:
    """The HTTP request for one call; raises ``ValueError`` when it cannot be sent lean."""
    why = unsupported(params, timeout)
    if why is not None:
        raise ValueError(f"{model}: transport='openai' cannot send this call: {why}.")
    provider, name = split_model(model)
    url = base_url(provider, api_base)
    if url is None:
        raise ValueError(
            f"{model}: transport='openai' needs an endpoint: pass api_base=... "
            "(e.g. 'http://127.0.0.1:8000/v1')."
        )
    body: dict[str, Any] = {"model": name}
    if model_type == "chat":
        body["messages"] = messages
    else:
        body["prompt"] = prompt
    extra_body = None
    organization = None
    for key, value in params.items():
        if value is None:
            continue
        if key == "extra_body":
            extra_body = value
        elif key == "organization":
            organization = value
        else:
            body[key] = value
    if stream:
        body["stream"] = True
        body.setdefault("stream_options", {"include_usage": True})
    if isinstance(extra_body, dict):
        body.update(extra_body)
    out_headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    secret = api_key or _env(_PROVIDERS[provider or "openai"][1])
    if secret:
        out_headers["Authorization"] = f"Bearer {secret}"
    if organization:
        out_headers["OpenAI-Organization"] = str(organization)
    if headers:
        out_headers.update({str(k): str(v) for k, v in headers.items()})
    path = "/chat/completions" if model_type == "chat" else "/completions"
    return Wire(
        url=url.rstrip("/") + path,
        body=_json_body(body),
        headers=out_headers,
        timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
    )


def _json_body(body: dict[str, Any]) -> bytes:
    """The request body as UTF-8 JSON. Text with a lone surrogate (an escaped one in an
    earlier reply, a file name that is not UTF-8) cannot be UTF-8: it goes as JSON escapes
    (``\\udcff``) instead of failing the call."""
    text = json.dumps(body, ensure_ascii=False, default=_json_default)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(body, ensure_ascii=True, default=_json_default).encode()


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # pydantic objects in messages or tools
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- async: one aiohttp session per event loop ---------------------------------------------------


@dataclass(slots=True)
class _LoopClient:
    session: aiohttp.ClientSession
    closer: Any  # the async generator that closes the session when the loop shuts down


_sessions: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
_sessions_lock = threading.Lock()
_aiohttp: Any = None
_timeouts: dict[float, Any] = {}


async def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    client = _sessions.get(loop)
    if client is not None:
        return client.session
    if loop is _loop:  # the private loop of sync calls: one session for the process
        global _sync_session
        if _sync_session is None:
            _sync_session = _new_session()
        return _sync_session
    _forget_closed_loops()
    session = _new_session()
    closer = _close_at_shutdown(loop, session)
    # The loop registers an async generator on its first step and closes it in
    # shutdown_asyncgens() (asyncio.run, asyncio.Runner, pytest-asyncio): that closes the
    # session on the loop that owns it, before the loop goes away.
    await closer.__anext__()
    with _sessions_lock:
        _sessions[loop] = _LoopClient(session, closer)
    return session


def _new_session() -> aiohttp.ClientSession:
    global _aiohttp
    if _aiohttp is None:
        import aiohttp

        _aiohttp = aiohttp
    connector = _aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0)
    return _aiohttp.ClientSession(
        connector=connector,
        # Proxy variables are honoured like LiteLLM does; looking them up costs on every
        # request, so only when some are set.
        trust_env=_proxies_configured(),
        headers={"User-Agent": "dsx"},
        cookie_jar=_aiohttp.DummyCookieJar(),  # an API client keeps no cookies
        read_bufsize=2**20,  # room for long server-sent event lines (tool-call arguments)
    )


async def _close_at_shutdown(
    loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with _sessions_lock:
            if (client := _sessions.get(loop)) is not None and client.session is session:
                del _sessions[loop]
        if not loop.is_closed():
            await session.close()
        else:  # driven by _forget_closed_loops: nothing may be scheduled on a closed loop
            with contextlib.suppress(Exception):
                # The synchronous half of TCPConnector.close(): on a closed loop it only
                # forgets the connections (their sockets close when collected), and marks
                # the connector closed, so that it logs no "Unclosed connector" error.
                if session.connector is not None:
                    session.connector._close()
                session.detach()  # the session counts as closed: no "Unclosed" warning


def _forget_closed_loops() -> None:
    """Close the sessions of loops that were closed without ``shutdown_asyncgens()``.

    Their closing generators are finished here, synchronously: left to the garbage
    collector, they would ask their closed loop to schedule the clean-up, and fail.
    """
    with _sessions_lock:
        dead = [loop for loop in _sessions if loop.is_closed()]
        clients = [_sessions.pop(loop) for loop in dead]
    for client in clients:
        step = client.closer.aclose()
        try:
            step.send(None)  # runs the finally block above; it does not suspend
        except StopIteration:
            pass
        except Exception:
            step.close()


def _proxies_configured() -> bool:
    return any(k.lower().endswith("_proxy") for k in os.environ)


def _client_timeout(seconds: float) -> Any:
    timeout = _timeouts.get(seconds)
    if timeout is None:
        # ``total`` is the attempt's deadline: connecting, waiting for a pooled connection,
        # sending and reading the whole answer (streamed or not). A server that trickles
        # bytes passes every per-read limit; only this one cuts it.
        timeout = _timeouts[seconds] = _aiohttp.ClientTimeout(
            total=seconds, connect=None, sock_connect=seconds, sock_read=seconds
        )
    return timeout


def _deadline_error(exc: TimeoutError, wire: Wire) -> TimeoutError:
    # aiohttp's own timeouts (a read or a connect) are reported as they are; a bare
    # TimeoutError is its ``total`` limit: the attempt's deadline.
    if type(exc).__module__.split(".")[0] == "aiohttp":
        return exc
    return DeadlineExceeded(wire.timeout)


async def acomplete(wire: Wire) -> Any:
    """POST ``wire`` and return the decoded JSON answer."""
    session = await _session()
    try:
        async with session.post(
            wire.url, data=wire.body, headers=wire.headers, timeout=_client_timeout(wire.timeout)
        ) as resp:
            data = await resp.read()
            if resp.status >= 400:
                raise _status_error(resp.status, data, resp.headers)
    except TimeoutError as exc:
        raise _deadline_error(exc, wire) from exc
    return _decode(data)


async def astream(wire: Wire) -> AsyncGenerator[dict[str, Any], None]:
    """POST ``wire`` and yield each server-sent event's JSON until ``[DONE]``."""
    events = _astream(wire)
    try:
        async for event in events:
            yield event
    except TimeoutError as exc:
        raise _deadline_error(exc, wire) from exc
    finally:
        await events.aclose()


async def _astream(wire: Wire) -> AsyncGenerator[dict[str, Any], None]:
    session = await _session()
    async with session.post(
        wire.url, data=wire.body, headers=wire.headers, timeout=_client_timeout(wire.timeout)
    ) as resp:
        if resp.status >= 400:
            raise _status_error(resp.status, await resp.read(), resp.headers)
        events = ServerSentEvents()
        async for line in resp.content:
            event = events.line(line)
            if event is not None:
                yield event
            elif events.done:
                return
        if (event := events.end()) is not None:
            yield event


# -- sync: the same client, on a private event loop thread --------------------------------------
#
# Sync calls go through aiohttp too: each is sent to one event loop that a daemon thread runs
# for the whole process, and the calling thread waits for its answer. Measured against an
# httpx.Client (docs/lm.md, "Connections"): about half the latency and CPU per
# serial call, and 3-4x the calls/s from 32 threads. One client also means one way to read
# answers and streams and one set of exceptions.

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_sync_session: aiohttp.ClientSession | None = None  # lives on _loop
_from_parent: list[Any] = []  # in a forked child: what the parent's sync calls used
_loop_lock = threading.Lock()


def _sync_loop() -> asyncio.AbstractEventLoop:
    """The private event loop, started on first use (again in a forked child)."""
    global _loop, _loop_pid, _sync_session
    if _loop is None or _loop_pid != os.getpid():
        with _loop_lock:
            if _loop is None or _loop_pid != os.getpid():
                if _loop is not None:  # a forked child (see _forget_parent_loop)
                    _from_parent.append((_loop, _sync_session))
                _sync_session = None
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="dsx-lm-http", daemon=True)
                thread.start()
                _loop, _loop_pid = loop, os.getpid()
                atexit.register(_stop_loop, loop, thread)
    return _loop


def _forget_parent_loop() -> None:
    """In a forked child: let go of the parent's private loop and its connections.

    The child shares the parent's epoll instance: closing the parent's connections through
    the inherited loop would unregister the parent's sockets from it, and the parent's loop
    would wait forever. The inherited loop gets a selector of its own first, so that nothing
    the child closes reaches the parent's.
    """
    loop, session = _loop, _sync_session
    if loop is None:
        return
    import selectors

    with contextlib.suppress(Exception):
        loop._selector = selectors.DefaultSelector()  # type: ignore[attr-defined]
        if session is not None:
            if session.connector is not None:
                session.connector._close()  # forgets the connections; nothing is sent
            session.detach()  # counts as closed: no "Unclosed" warning


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_loop)


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """At exit: close the loop's session (its pooled connections), then the loop."""
    if loop.is_closed() or not thread.is_alive():
        return
    session = _sync_session if loop is _loop else None
    with contextlib.suppress(Exception):
        if session is not None:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    if not thread.is_alive():
        loop.close()


def _wait(coro: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """Run ``coro`` on ``loop`` and wait for it here; cancelled if this thread stops waiting."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # interrupted (KeyboardInterrupt): do not leave the request running
        raise


def complete(wire: Wire) -> Any:
    """POST ``wire`` and return the decoded JSON answer (blocking)."""
    return _wait(acomplete(wire), _sync_loop())


def stream(wire: Wire) -> Generator[dict[str, Any], None, None]:
    """POST ``wire`` and yield each server-sent event's JSON until ``[DONE]`` (blocking)."""
    loop = _sync_loop()
    events = astream(wire)
    try:
        while True:
            try:
                yield _wait(events.__anext__(), loop)
            except StopAsyncIteration:
                return
    finally:  # a consumer that stops early frees the connection now
        with contextlib.suppress(Exception):
            _wait(events.aclose(), loop)


# -- answers -------------------------------------------------------------------------------------


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise MalformedResponse(f"not JSON: {data[:200]!r}") from exc


class ServerSentEvents:
    """A server-sent event stream read one line at a time, without I/O: the stream feeds it
    the lines it receives.

    :meth:`line` returns each complete event's JSON object; after the ``[DONE]`` event
    :attr:`done` is true. :meth:`end` returns an event the stream left unterminated.
    """

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.done = False

    def line(self, raw: bytes) -> dict[str, Any] | None:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            self.data.append(line[6:] if line[5:6] == b" " else line[5:])
            return None
        if line or not self.data:  # other fields (event:, id:, comments) carry nothing here
            return None
        return self._dispatch()

    def end(self) -> dict[str, Any] | None:
        return self._dispatch() if self.data and not self.done else None

    def _dispatch(self) -> dict[str, Any] | None:
        event, self.data = b"\n".join(self.data), []
        if event == b"[DONE]":
            self.done = True
            return None
        return _event(event)


def _event(data: bytes) -> dict[str, Any]:
    doc = _decode(data)
    if not isinstance(doc, dict):
        text = data.decode("utf-8", "replace")
        problem = json.JSONDecodeError("a stream event must be a JSON object", text, 0)
        raise MalformedResponse(f"not a JSON object: {text[:200]!r}") from problem
    error = doc.get("error")
    if error and not doc.get("choices"):  # an error reported mid-stream (vLLM, OpenRouter)
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
        raise ProviderHTTPError(status, doc, str(error), None)
    return doc


def _status_error(status: int, data: bytes, headers: Any) -> ProviderHTTPError:
    text = data.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return ProviderHTTPError(status, body, text, headers)


# -- cost ---------------------------------------------------------------------------------------

#: USD for an answer's ``usage`` object, from LiteLLM's price table (see dsx.runtime.usage).
cost = _usage.cost
