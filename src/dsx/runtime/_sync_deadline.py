"""A deadline on the whole of a blocking call that can only bound each read.

LiteLLM's sync path reads through the openai SDK (httpx), whose ``timeout`` applies to
each read: a server that trickles its answer a byte at a time holds the caller for as
long as it likes. The async path is cut with ``asyncio.wait_for``; the sync path runs the
call in a worker thread and waits for it at most the attempt's deadline instead.

Past the deadline the caller gets :class:`~dsx.runtime._openai_transport.DeadlineExceeded`
at once. The abandoned worker (a daemon thread) is left to finish on its own: it ends
when the server stops sending or a single read waits longer than the timeout, and its
answer is dropped. Streams are read by one worker that hands each chunk over, so the
deadline also holds while a single chunk trickles.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["call_within", "iterate_within"]


def _deadline_exceeded(seconds: float) -> BaseException:
    from dsx.runtime._openai_transport import DeadlineExceeded

    return DeadlineExceeded(seconds)


def _start(work: Callable[[], None]) -> None:
    # The caller's context (dsx settings, LiteLLM's per-call state) goes along.
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="dsx-lm-call", daemon=True).start()


def call_within(fn: Callable[[], Any], seconds: float | None) -> Any:
    """``fn()``, or :class:`DeadlineExceeded` once ``seconds`` have passed (``None``: wait)."""
    if seconds is None:
        return fn()
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller, raised there
            box["error"] = exc
        finally:
            done.set()

    _start(work)
    if not done.wait(max(seconds, 0.0)):
        raise _deadline_exceeded(seconds)
    if "error" in box:
        raise box["error"]
    return box["value"]


_END = object()


def iterate_within(
    open_stream: Callable[[], Any], seconds: float | None
) -> Generator[Any, None, None]:
    """The items of the iterable ``open_stream()`` returns, all within ``seconds`` from now.

    One worker opens and reads the stream; past the deadline :class:`DeadlineExceeded` is
    raised here and the worker closes the stream at its next item.
    """
    if seconds is None:
        stream = open_stream()
        try:
            yield from stream
        finally:
            _close(stream)
        return
    deadline = time.monotonic() + seconds
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        stream = None
        try:
            stream = open_stream()
            for item in stream:
                if stop.is_set():
                    break
                items.put(("item", item))
            items.put(("end", _END))
        except BaseException as exc:
            items.put(("error", exc))
        finally:
            if stream is not None:
                _close(stream)

    _start(work)
    try:
        while True:
            try:
                kind, value = items.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise _deadline_exceeded(seconds) from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()  # a consumer that stops early, or the deadline: the worker lets go


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # best effort: the answer is whole or dropped
            close()
