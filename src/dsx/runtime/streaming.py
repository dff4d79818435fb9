"""Streaming a program's output fields while it runs (``dsx.streamify``), with DSPy's names.

``streamify(program, stream_listeners=[...])`` returns a function that runs the program
and yields, as they happen: :class:`StreamResponse` pieces of the fields the listeners
watch, :class:`StatusMessage` lines (module/LM/tool start and end, from a
:class:`StatusMessageProvider`), and finally the :class:`~dsx.Prediction`.

How it works: the program runs as an asyncio task with one extra callback in its settings
(:class:`_Session`). When a predictor that a listener watches starts, the callback marks the
call in a context variable; :class:`dsx.LM` then asks the provider for a stream and hands
each piece of text to :func:`tap` (a cache hit, or an LM that cannot stream, gives the
whole reply at once). :mod:`dsx.runtime._stream_parse` turns the text so far into the
stable part of each field, and the listeners emit what is new. Concurrent predictor calls
(``asyncio.gather``, ``Parallel``, threads) each see their own mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from dsx.errors import DsxError
from dsx.runtime._stream_parse import fields_so_far
from dsx.runtime.callbacks import BaseCallback, raw_result
from dsx.runtime.settings import settings

__all__ = [
    "StatusMessage",
    "StatusMessageProvider",
    "StreamListener",
    "StreamResponse",
    "streamify",
    "tap",
]


@dataclass
class StreamResponse:
    """A piece of one output field of one predictor call.

    Attributes:
        predict_name: the predictor's name in the program (``"self"`` for the program itself).
        signature_field_name: the output field.
        chunk: the new text; the pieces of one field concatenate to its value.
        is_last_chunk: whether the field is complete with this piece.
    """

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool


@dataclass
class StatusMessage:
    """A line about what the program is doing (``Calling tool search...``)."""

    message: str


class StatusMessageProvider:
    """The status lines :func:`streamify` yields; override a method to change or add one.

    A method returning ``None`` (the default for modules and LMs) yields nothing.
    """

    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        return f"Calling tool {instance.name}..."

    def tool_end_status_message(self, outputs: Any) -> str | None:
        return "Tool calling finished! Querying the LLM with tool calling results..."

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        return None

    def module_end_status_message(self, outputs: Any) -> str | None:
        return None

    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        return None

    def lm_end_status_message(self, outputs: Any) -> str | None:
        return None


class StreamListener:
    """Watches one output field of one predictor.

    Args:
        signature_field_name: the output field to stream.
        predict: the predictor (or a module with exactly one predictor); ``None``: the
            first predictor of the program whose signature has the field.
        predict_name: its name, when ``predict`` is given (found otherwise).
        allow_reuse: stream the field every time the predictor runs (a ReAct loop);
            otherwise only its first complete occurrence.
    """

    def __init__(
        self,
        signature_field_name: str,
        predict: Any = None,
        predict_name: str | None = None,
        allow_reuse: bool = False,
    ) -> None:
        self.signature_field_name = signature_field_name
        self.predict = predict
        self.predict_name = predict_name
        self.allow_reuse = allow_reuse

    def __repr__(self) -> str:
        return (
            f"StreamListener({self.signature_field_name!r}, predict_name={self.predict_name!r}, "
            f"allow_reuse={self.allow_reuse})"
        )


def _bind(program: Any, listeners: Sequence[StreamListener]) -> list[StreamListener]:
    """Find each listener's predictor in ``program`` (a listener is never changed in place)."""
    named = program.named_predictors()
    bound = []
    for listener in listeners:
        field = listener.signature_field_name
        predict, name = listener.predict, listener.predict_name
        if predict is not None and not hasattr(predict, "signature"):
            inner = predict.named_predictors()
            if len(inner) != 1:
                raise DsxError(
                    f"StreamListener({field!r}): predict= must be a predictor or a module "
                    f"with exactly one predictor; {type(predict).__name__} has {len(inner)}"
                )
            predict = inner[0][1]
        if predict is None:
            found = [(n, p) for n, p in named if field in p.signature.output_fields]
            if not found:
                fields = sorted({f for _, p in named for f in p.signature.output_fields})
                raise DsxError(
                    f"StreamListener({field!r}): no predictor of {type(program).__name__} has "
                    f"an output field {field!r}; its output fields are {fields}"
                )
            name, predict = found[0]
        elif name is None:
            name = next((n for n, p in named if p is predict), type(predict).__name__)
        if field not in predict.signature.output_fields:
            raise DsxError(
                f"StreamListener({field!r}): {name} has no output field {field!r}; its "
                f"outputs are {list(predict.signature.output_fields)}"
            )
        copy = StreamListener(field, predict, name, listener.allow_reuse)
        bound.append(copy)
    return bound


# -- the per-call mark the LM reads ---------------------------------------------------------

_current: contextvars.ContextVar[_PredictCall | None] = contextvars.ContextVar(
    "dsx_stream_predict", default=None
)


def tap() -> Callable[[str], None] | None:
    """Where the LM sends text as it streams, when a listener watches the running call."""
    call = _current.get()
    if call is None or not call.watching:
        return None
    return call.delta


class _PredictCall:
    """One predictor call being watched: its listeners and the reply of its current request."""

    def __init__(self, session: _Session, listeners: list[StreamListener]) -> None:
        self.session = session
        self.listeners = listeners
        self.watching = bool(listeners)
        self.parts: list[str] = []
        self.streamed = False
        self.sent: dict[int, int] = {}
        self.closed: set[int] = set()

    def begin(self) -> None:
        """A new LM request (a retry, or the JSON fallback) starts a new reply."""
        self.parts = []
        self.streamed = False
        self.sent = {}

    def delta(self, text: str) -> None:
        self.streamed = True
        self.parts.append(text)
        self._update(final=False)

    def end(self, response: Any) -> None:
        if not self.streamed:  # a cache hit or an LM that does not stream: all at once
            outputs = getattr(response, "outputs", None) or [""]
            self.parts = [outputs[0] if isinstance(outputs[0], str) else ""]
        self._update(final=True)

    def _update(self, *, final: bool) -> None:
        if not self.listeners:
            return
        fields = fields_so_far("".join(self.parts), final=final)
        # in the order the fields appear in the reply, so pieces come out in reply order
        for name, (text, complete) in fields.items():
            for listener in self.listeners:
                if listener.signature_field_name == name and id(listener) not in self.closed:
                    self._send(listener, text, complete)

    def _send(self, listener: StreamListener, text: str, complete: bool) -> None:
        key = id(listener)
        sent = self.sent.get(key, 0)
        piece = text[sent:]
        if not piece and not complete:
            return
        self.sent[key] = len(text)
        if complete:
            self.closed.add(key)
            self.session.finished(listener)
        self.session.emit(
            StreamResponse(
                str(listener.predict_name), listener.signature_field_name, piece, complete
            )
        )


class _Session(BaseCallback):
    """One streamed run: the queue items go to, and the callback that feeds it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        listeners: list[StreamListener],
        provider: StatusMessageProvider,
    ) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        self.queue = queue
        self.listeners = listeners
        self.provider = provider
        self.done_listeners: set[int] = set()
        self.tokens: dict[str, contextvars.Token[_PredictCall | None]] = {}
        self.lock = threading.Lock()

    # -- output -----------------------------------------------------------------------
    def emit(self, item: Any) -> None:
        if threading.get_ident() == self.thread:
            self.queue.put_nowait(item)
        else:  # a sync module running in a worker thread
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def status(self, message: str | None) -> None:
        if message:
            self.emit(StatusMessage(message))

    def finished(self, listener: StreamListener) -> None:
        if not listener.allow_reuse:
            with self.lock:
                self.done_listeners.add(id(listener))

    # -- callbacks --------------------------------------------------------------------
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        watching = [
            listener
            for listener in self.listeners
            if listener.predict is instance and id(listener) not in self.done_listeners
        ]
        if watching or any(listener.predict is instance for listener in self.listeners):
            self.tokens[call_id] = _current.set(_PredictCall(self, watching))
        elif _current.get() is not None:
            # a module inside a watched call (none in dsx's predictors) is not watched
            self.tokens[call_id] = _current.set(None)
        self.status(self.provider.module_start_status_message(instance, inputs))

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        token = self.tokens.pop(call_id, None)
        if token is not None:
            _current.reset(token)
        self.status(self.provider.module_end_status_message(outputs))

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        call = _current.get()
        if call is not None:
            call.begin()
        self.status(self.provider.lm_start_status_message(instance, inputs))

    def on_lm_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        call = _current.get()
        if call is not None and exception is None:
            call.end(raw_result())
        self.status(self.provider.lm_end_status_message(outputs))

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if getattr(instance, "name", None) != "finish":
            self.status(self.provider.tool_start_status_message(instance, inputs))

    def on_tool_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        if outputs != "Completed.":
            self.status(self.provider.tool_end_status_message(outputs))


_DONE = object()


def streamify(
    program: Any,
    status_message_provider: StatusMessageProvider | None = None,
    stream_listeners: Sequence[StreamListener] | None = None,
    include_final_prediction_in_output_stream: bool = True,
    is_async_program: bool = False,
    async_streaming: bool = True,
) -> Callable[..., Any]:
    """Wrap ``program`` so that calling it streams its progress and output fields.

    Args:
        program: any dsx module.
        status_message_provider: what status lines to yield (default:
            :class:`StatusMessageProvider`: tool calls only).
        stream_listeners: the fields to stream (:class:`StreamListener`).
        include_final_prediction_in_output_stream: yield the program's result last.
        is_async_program: accepted for DSPy compatibility; dsx runs every module with
            ``acall``.
        async_streaming: return an async generator (default), or a plain generator that
            runs the program on a private event loop.

    Returns:
        A function taking the program's inputs and returning the generator.

    Example:
        >>> stream = dsx.streamify(program, stream_listeners=[StreamListener("answer")])
        >>> async for item in stream(question="Why is the sky blue?"):
        ...     if isinstance(item, StreamResponse):
        ...         print(item.chunk, end="")
    """
    if isinstance(status_message_provider, list | tuple):
        raise TypeError(
            "streamify's second argument is the status_message_provider; pass the listeners "
            "as stream_listeners=[...]"
        )
    listeners = _bind(program, stream_listeners or ())
    provider = status_message_provider or StatusMessageProvider()
    del is_async_program

    async def astream(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        session = _Session(loop, queue, listeners, provider)

        async def run() -> Any:
            callbacks = [*(settings.get("callbacks") or ()), session]
            with settings.context(callbacks=callbacks):
                return await program.acall(*args, **kwargs)

        task = asyncio.create_task(run())
        # Queued after every item the program put there (same loop, in order).
        task.add_done_callback(lambda _: queue.put_nowait(_DONE))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield item
            result = task.result()  # the program's exception, if any, is raised here
            if include_final_prediction_in_output_stream:
                yield result
        finally:
            if not task.done():  # the consumer stopped early: stop the program too
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task  # its outcome is no longer wanted

    if async_streaming:
        return astream

    def sync_stream(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise DsxError(
                "streamify(..., async_streaming=False) cannot run inside an event loop; "
                "use the default async_streaming=True and `async for` there"
            )
        loop = asyncio.new_event_loop()
        agen = astream(*args, **kwargs)
        try:
            while True:
                try:
                    yield loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            try:
                loop.run_until_complete(agen.aclose())
                # closes what the run opened on this loop (the HTTP client's session)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    return sync_stream
