"""The lifecycle the local test servers share: ``aiohttp.web`` on a loop in a background thread.

:class:`ThreadedServer` binds a low-level :class:`aiohttp.web.Server` (one handler, no
router: each test server routes its few paths itself, and skips the application's
middleware machinery, which a throughput benchmark would pay on every request) to a
host and port, runs its event loop in a daemon thread, and stops it promptly: requests
still running when :meth:`ThreadedServer.stop` is called (a hung one, by design) are
cancelled after :data:`SHUTDOWN_GRACE_S`, their connections closed without an answer.

Raw-socket faults (a TCP reset, a connection closed mid-body) go through
``request.transport``: aiohttp has no API for breaking its own framing on purpose.
:func:`abort` and :func:`hang_up` do that, and :func:`until_disconnected` holds a request
until its client hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http import HttpVersion11

__all__ = [
    "BACKLOG",
    "MAX_HEAD_BYTES",
    "SHUTDOWN_GRACE_S",
    "Handler",
    "ThreadedServer",
    "abort",
    "hang_up",
    "until_disconnected",
]

#: Listen backlog: hundreds of clients may connect in the same instant.
BACKLOG = 1024
#: Longest request line, and longest header field, accepted (aiohttp answers 400 beyond).
MAX_HEAD_BYTES = 64 * 1024
#: Seconds a request still running at ``stop()`` may take before it is cancelled.
SHUTDOWN_GRACE_S = 0.05
_TIMEOUT_S = 10.0
#: How often a request held by :func:`until_disconnected` looks at its connection.
_POLL_S = 0.02
#: aiohttp's stand-in for a request it could not parse (its answer would say HTTP/1.0).
_UNPARSED: Any = getattr(web_protocol, "ERROR", None)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class ThreadedServer:
    """One ``aiohttp.web`` low-level server on its own event loop in a daemon thread.

    Args:
        handler: answers every request (any method, any path).
        host: interface to bind.
        port: TCP port; 0 picks a free one (:attr:`port` then says which).
        name: the thread's name.
    """

    def __init__(self, handler: Handler, *, host: str, port: int, name: str) -> None:
        self._handler = handler
        self._host, self._requested_port, self._name = host, port, name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.BaseRunner | None = None
        self.port: int | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The server's event loop while it runs."""
        return self._loop

    def start(self) -> None:
        """Bind, then serve in the background; returns once connections are accepted.

        Raises:
            RuntimeError: already running.
            OSError: the address cannot be bound (e.g. the port is taken).
        """
        if self._thread is not None:
            raise RuntimeError("the server is already running; call stop() first")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_run_forever, args=(loop,), name=self._name, daemon=True)
        thread.start()
        try:
            future = asyncio.run_coroutine_threadsafe(self._open(), loop)
            self.port = future.result(_TIMEOUT_S)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_TIMEOUT_S)
            raise
        self._loop, self._thread = loop, thread

    def stop(self) -> None:
        """Close the listener and every connection (hung requests too), then end the thread.

        Does nothing when the server is not running.
        """
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        try:
            if runner is not None:
                future = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)
                future.result(_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_TIMEOUT_S)
            self._loop = self._thread = self._runner = None

    async def _open(self) -> int:
        loop = asyncio.get_running_loop()

        def make_request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            if message is _UNPARSED:
                # Garbage instead of a request line gets its 400 on HTTP/1.1, the version
                # this server speaks, rather than aiohttp's HTTP/1.0 fallback.
                message = message._replace(version=HttpVersion11)
            return web.BaseRequest(message, payload, protocol, writer, task, loop)

        server = web.Server(
            self._handler,
            request_factory=make_request,
            access_log=None,
            max_line_size=MAX_HEAD_BYTES,
            max_field_size=MAX_HEAD_BYTES,
        )
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, backlog=BACKLOG)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return int(runner.addresses[0][1])


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _transport(request: web.BaseRequest) -> Any:
    return request.transport


def abort(request: web.BaseRequest) -> web.Response:
    """Drop the connection with a TCP reset (``SO_LINGER`` 0), not an orderly close.

    Returns a response for the handler to return: aiohttp fails to write it to the dead
    connection and treats that as the client having gone, without logging an error.
    """
    transport = _transport(request)
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response()


def hang_up(request: web.BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection (FIN) after what was written so far, leaving the body unfinished.

    Returns ``response`` for the handler to return (see :func:`abort`).
    """
    transport = _transport(request)
    if transport is not None:
        transport.close()  # flushes what is buffered first
    return response


async def until_disconnected(request: web.BaseRequest) -> None:
    """Wait until the client closes the connection (or the server cancels the request)."""
    while True:
        transport = _transport(request)
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(_POLL_S)
